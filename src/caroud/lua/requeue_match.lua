-- requeue_match.lua: put a match that never started back into the queue.
--
-- Its tickets that still belong to it become queued again with their original
-- creation time, so they are matched ahead of newer tickets; their records and
-- player keys lose the match TTL. The match ends as "requeued".
--
-- KEYS[1]  match hash            KEYS[2]  pending-assignment set (zset)
-- KEYS[3]  queue events stream   KEYS[4]  queue index (zset)
-- KEYS[5..] per ticket: its hash, then its player keys
-- ARGV[1]  match id              ARGV[2]  why (for the events: no_capacity, server_lost, ...)
-- ARGV[3]  events stream max length      ARGV[4]  TTL (s) of the ended match record
-- ARGV[5..] per ticket: ticket id, number of player keys, player ids "p1,p2"
--
-- Returns {"OK", requeued_ticket_count} or {"STATE", status} if the match had started
-- or ended (nothing written).

local status = redis.call('HGET', KEYS[1], 's')
if status ~= 'matched' and status ~= 'assigned' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {'STATE', status or 'missing'}
end
redis.call('HSET', KEYS[1], 's', 'requeued', 'why', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZREM', KEYS[2], ARGV[1])
local k = 5
local done = 0
for a = 5, #ARGV, 3 do
  local id, nplayers, players = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
  local tkey = KEYS[k]
  local f = redis.call('HMGET', tkey, 's', 'm', 'c')
  if f[2] == ARGV[1] and (f[1] == 'matched' or f[1] == 'assigned') then
    redis.call('HSET', tkey, 's', 'queued')
    redis.call('HDEL', tkey, 'm', 'tm')
    redis.call('PERSIST', tkey)
    redis.call('ZADD', KEYS[4], f[3], id)
    for p = k + 1, k + nplayers do
      redis.call('SET', KEYS[p], id)
    end
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'e', 'queued', 't', id, 'p', players,
      'why', ARGV[2])
    done = done + 1
  end
  k = k + 1 + nplayers
end
return {'OK', done}
