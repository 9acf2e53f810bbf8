-- claim_matches.lua: turn proposed matches into matches, each all-or-nothing (a bounded batch).
--
-- A match is claimed only if every one of its tickets is still queued; then the
-- tickets become matched (with match id and team), leave the queue index, their
-- player keys and records get the match TTL, a "matched" event per ticket is
-- appended and, when assignment is on, the match waits in the pending set for a
-- game server, scored by its oldest ticket's creation time so that the longest
-- waiting players get servers first; its "spread:imbalance" goes on the queue's list of
-- recent match quality. Otherwise nothing of that match is written.
--
-- KEYS[1]  lease key             KEYS[2]  queue index (zset)
-- KEYS[3]  queue events stream   KEYS[4]  pending-assignment set (zset)
-- KEYS[5]  recent match quality (list, newest first)
-- KEYS[6..] per match: its hash, then per ticket its hash and its player keys
-- ARGV[1]  lease token           ARGV[2]  queue name
-- ARGV[3]  match TTL (s)         ARGV[4]  events stream max length
-- ARGV[5]  "1" to queue matches for server assignment, "0" not to
-- ARGV[6]  the cycle's time (ms, the Redis clock as the worker read it): the match's time
-- ARGV[7]  how many entries the quality list keeps
-- ARGV[8..] per match: match id, region, acceptable regions "r1,r2", spread, imbalance,
--           teams "t1,t2|t3,t4", ticket count, then per ticket: ticket id, team index,
--           number of player keys, player ids "p1,p2"
--
-- Returns {"LEASE"} if the caller no longer holds the lease, else {"OK", r1, r2, ...}
-- with one r per match: 1 if claimed, or a string "t1,t3" of the tickets that were
-- not queued any more.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {'LEASE'}
end
local now_ms = ARGV[6]
local ttl = ARGV[3]
local maxlen = ARGV[4]
local assign = ARGV[5] == '1'
local keep = tonumber(ARGV[7])
local out = {'OK'}
local claimed = 0
local k = 6
local a = 8
while a <= #ARGV do
  local match_id, region, regions, spread, imbalance, teams =
    ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local count = tonumber(ARGV[a + 6])
  local mkey = KEYS[k]
  k = k + 1
  a = a + 7
  -- first pass: check every ticket, remembering where its keys and arguments are
  local tickets = {}
  local missing = {}
  local oldest = nil
  for i = 1, count do
    local nplayers = tonumber(ARGV[a + 2])
    tickets[i] = {a, k, nplayers}
    local f = redis.call('HMGET', KEYS[k], 's', 'c')
    if f[1] ~= 'queued' then
      missing[#missing + 1] = ARGV[a]
    elseif oldest == nil or tonumber(f[2]) < oldest then
      oldest = tonumber(f[2])
    end
    a = a + 4
    k = k + 1 + nplayers
  end
  if #missing > 0 or redis.call('EXISTS', mkey) == 1 then
    out[#out + 1] = table.concat(missing, ',')
  else
    local ids = {}
    for i = 1, count do
      local at, tk, nplayers = tickets[i][1], tickets[i][2], tickets[i][3]
      local id = ARGV[at]
      ids[i] = id
      redis.call('HSET', KEYS[tk], 's', 'matched', 'm', match_id, 'tm', ARGV[at + 1])
      redis.call('EXPIRE', KEYS[tk], ttl)
      for p = tk + 1, tk + nplayers do
        redis.call('EXPIRE', KEYS[p], ttl)
      end
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*',
        'e', 'matched', 't', id, 'p', ARGV[at + 3], 'm', match_id)
    end
    redis.call('ZREM', KEYS[2], unpack(ids))
    redis.call('HSET', mkey, 'q', ARGV[2], 's', 'matched', 'r', region, 'rs', regions,
      'sp', spread, 'ib', imbalance, 'tm', teams, 'c', now_ms)
    redis.call('EXPIRE', mkey, ttl)
    if assign then
      redis.call('ZADD', KEYS[4], oldest, match_id)
    end
    redis.call('LPUSH', KEYS[5], spread .. ':' .. imbalance)
    claimed = claimed + 1
    out[#out + 1] = 1
  end
end
if claimed > 0 then
  redis.call('LTRIM', KEYS[5], 0, keep - 1)
end
return out
