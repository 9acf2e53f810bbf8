-- requeue_match.lua: put a match that never started back into the queue, or let one of
-- its tickets leave it (the others go back).
--
-- Its tickets that still belong to it become queued again with their original
-- creation time, so they are matched ahead of newer tickets; their records and
-- player keys lose the match TTL. The match ends as "requeued", with why. A leaving
-- ticket (ARGV[5]) ends "cancelled" instead: its players are free, it expires after
-- the ended TTL, and its "cancelled" event names the match it left.
--
-- KEYS[1]  match hash            KEYS[2]  pending-assignment set (zset)
-- KEYS[3]  queue events stream   KEYS[4]  queue index (zset)
-- KEYS[5..] per ticket: its hash, then its player keys
-- ARGV[1]  match id              ARGV[2]  why (for the events: no_capacity, player_left, ...)
-- ARGV[3]  events stream max length
-- ARGV[4]  TTL (s) of the ended match record (and of the leaving ticket)
-- ARGV[5]  id of the ticket that leaves, or "" when the whole match goes back
-- ARGV[6..] per ticket: ticket id, number of player keys, player ids "p1,p2"
--
-- Returns {"OK", requeued_ticket_count}; {"STATE", status} if the match had started or
-- ended; {"MOVED", ticket_status} if the leaving ticket no longer belongs to the match
-- (or is not among ARGV[6..]). Nothing is written unless "OK".

local match = ARGV[1]
local status = redis.call('HGET', KEYS[1], 's')
if status ~= 'matched' and status ~= 'assigned' then
  redis.call('ZREM', KEYS[2], match) -- not waiting for a server any more, if it was
  return {'STATE', status or 'missing'}
end

-- whether a ticket's {status, match} says it is still in this match
local function belongs(f)
  return f[2] == match and (f[1] == 'matched' or f[1] == 'assigned')
end

local leaver = ARGV[5]
if leaver ~= '' then
  local f = {false, false}
  local k = 5
  for a = 6, #ARGV, 3 do
    if ARGV[a] == leaver then
      f = redis.call('HMGET', KEYS[k], 's', 'm')
      break
    end
    k = k + 1 + tonumber(ARGV[a + 1])
  end
  if not belongs(f) then
    return {'MOVED', f[1] or 'missing'}
  end
end

redis.call('HSET', KEYS[1], 's', 'requeued', 'why', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZREM', KEYS[2], match)
local k = 5
local done = 0
for a = 6, #ARGV, 3 do
  local id, nplayers, players = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
  local tkey = KEYS[k]
  local f = redis.call('HMGET', tkey, 's', 'm', 'c')
  if belongs(f) and id == leaver then
    redis.call('HSET', tkey, 's', 'cancelled')
    redis.call('HDEL', tkey, 'm', 'tm')
    redis.call('EXPIRE', tkey, ARGV[4])
    for p = k + 1, k + nplayers do
      if redis.call('GET', KEYS[p]) == id then
        redis.call('DEL', KEYS[p])
      end
    end
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'e', 'cancelled', 't', id,
      'p', players, 'm', match, 'why', ARGV[2])
  elseif belongs(f) then
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
