-- claim_matches.lua: turn proposed matches into matches, each all-or-nothing (a bounded batch).
--
-- A match is claimed only if every one of its tickets is still queued; then the
-- tickets become matched (with match id and team), leave the queue index, their
-- player keys and records get the match TTL, and a "matched" event per ticket is
-- appended. Otherwise nothing of that match is written.
--
-- KEYS[1]  lease key             KEYS[2]  queue index (zset)
-- KEYS[3]  queue events stream   KEYS[4..] per match: its hash, then per ticket its hash
--                                          and its player keys
-- ARGV[1]  lease token           ARGV[2]  queue name
-- ARGV[3]  match TTL (s)         ARGV[4]  events stream max length
-- ARGV[5..] per match: match id, region, spread, teams "t1,t2|t3,t4", ticket count,
--           then per ticket: ticket id, team index, number of player keys
--
-- Returns {"LEASE"} if the caller no longer holds the lease, else {"OK", r1, r2, ...}
-- with one r per match: 1 if claimed, or a string "t1,t3" of the tickets that were
-- not queued any more.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {'LEASE'}
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = ARGV[3]
local maxlen = ARGV[4]
local out = {'OK'}
local k = 4
local a = 5
while a <= #ARGV do
  local match_id, region, spread, teams = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local count = tonumber(ARGV[a + 4])
  local mkey = KEYS[k]
  k = k + 1
  a = a + 5
  -- first pass: check every ticket, remembering where its keys are
  local tickets = {}
  local missing = {}
  for i = 1, count do
    local id, team, nplayers = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
    a = a + 3
    tickets[i] = {id, team, k, nplayers}
    if redis.call('HGET', KEYS[k], 's') ~= 'queued' then
      missing[#missing + 1] = id
    end
    k = k + 1 + nplayers
  end
  if #missing > 0 or redis.call('EXISTS', mkey) == 1 then
    out[#out + 1] = table.concat(missing, ',')
  else
    for i = 1, count do
      local id, team, tk, nplayers = tickets[i][1], tickets[i][2], tickets[i][3], tickets[i][4]
      redis.call('HSET', KEYS[tk], 's', 'matched', 'm', match_id, 'tm', team)
      redis.call('EXPIRE', KEYS[tk], ttl)
      redis.call('ZREM', KEYS[2], id)
      for p = tk + 1, tk + nplayers do
        redis.call('EXPIRE', KEYS[p], ttl)
      end
      local players = string.gsub(redis.call('HGET', KEYS[tk], 'p'), '=[^,]*', '')
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*',
        'e', 'matched', 't', id, 'p', players, 'm', match_id)
    end
    redis.call('HSET', mkey, 'q', ARGV[2], 's', 'matched', 'r', region, 'sp', spread,
      'tm', teams, 'c', now_ms)
    redis.call('EXPIRE', mkey, ttl)
    out[#out + 1] = 1
  end
end
return out
