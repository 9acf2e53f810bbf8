-- end_match.lua: a match is over, with a result (ended) or without one (interrupted).
--
-- The players are free to queue again (their keys are deleted if they still point
-- to the ticket), tickets and match expire after the ended TTL, an "ended" event per
-- ticket is appended and, for a result, one entry on the results stream for the
-- rating update. Idempotent: a second call returns the recorded outcome.
--
-- KEYS[1]  match hash            KEYS[2]  queue events stream
-- KEYS[3]  results stream        KEYS[4]  pending-assignment set (zset)
-- KEYS[5..] per ticket: its hash, then its player keys
-- ARGV[1]  match id              ARGV[2]  final status: "ended" or "interrupted"
-- ARGV[3]  winner: team index, "draw", or "" when interrupted
-- ARGV[4]  TTL (s) of ended records      ARGV[5]  events stream max length
-- ARGV[6]  players by team "p1,p2|p3,p4" (for the results stream)
-- ARGV[7..] per ticket: ticket id, number of player keys, player ids "p1,p2"
--
-- Returns {"OK", status, winner}, {"DONE", status, winner} if it had already ended,
-- or {"STATE", status} if the match is not assigned or started (nothing written).
-- A results entry has m (match), q (queue), teams, w (winner), at (ended, ms), and the
-- match's srv (server id), addr (host:port), st (started, ms) and c (formed, ms), so
-- the durable record is complete even after the match expires from Redis.

local f = redis.call('HMGET', KEYS[1], 's', 'w', 'q', 'tm', 'srv', 'host', 'port', 'st', 'c')
local status = f[1]
if status == 'ended' or status == 'interrupted' then
  return {'DONE', status, f[2] or ''}
end
if status ~= 'assigned' and status ~= 'started' and not (ARGV[2] == 'interrupted' and status == 'matched') then
  return {'STATE', status or 'missing'}
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 's', ARGV[2], 'w', ARGV[3], 'en', now_ms)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZREM', KEYS[4], ARGV[1])
local k = 5
for a = 7, #ARGV, 3 do
  local id, nplayers, players = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
  redis.call('EXPIRE', KEYS[k], ARGV[4])
  for p = k + 1, k + nplayers do
    if redis.call('GET', KEYS[p]) == id then
      redis.call('DEL', KEYS[p])
    end
  end
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'e', ARGV[2], 't', id, 'p', players,
    'm', ARGV[1], 'w', ARGV[3])
  k = k + 1 + nplayers
end
if ARGV[2] == 'ended' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'm', ARGV[1], 'q', f[3],
    'teams', ARGV[6], 'w', ARGV[3], 'at', now_ms, 'srv', f[5] or '',
    'addr', (f[6] or '') .. ':' .. (f[7] or ''), 'st', f[8] or '', 'c', f[9] or '')
end
return {'OK', ARGV[2], ARGV[3]}
