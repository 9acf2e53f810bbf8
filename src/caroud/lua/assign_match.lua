-- assign_match.lua: record the game server a match got; its tickets become assigned.
--
-- KEYS[1]  match hash            KEYS[2]  pending-assignment set (zset)
-- KEYS[3]  queue events stream   KEYS[4..] the match's ticket hashes
-- ARGV[1]  match id              ARGV[2]  server id
-- ARGV[3]  server address        ARGV[4]  server port
-- ARGV[5]  region                ARGV[6]  events stream max length
-- ARGV[7..] per ticket (same order as KEYS[4..]): ticket id
--
-- A match that is matched (or assigned, when a slot expired and it was placed again)
-- takes the server; its tickets that still belong to it become assigned, and an
-- "assigned" event per ticket carries the address. The match leaves the pending set.
-- Returns {"OK"} or {"STATE", status} (e.g. requeued or ended: nothing written).

local status = redis.call('HGET', KEYS[1], 's')
if status ~= 'matched' and status ~= 'assigned' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {'STATE', status or 'missing'}
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 's', 'assigned', 'srv', ARGV[2], 'host', ARGV[3], 'port', ARGV[4],
  'r', ARGV[5], 'as', now_ms)
redis.call('ZREM', KEYS[2], ARGV[1])
local address = ARGV[3] .. ':' .. ARGV[4]
for i = 4, #KEYS do
  local f = redis.call('HMGET', KEYS[i], 's', 'm', 'p')
  if f[2] == ARGV[1] and (f[1] == 'matched' or f[1] == 'assigned') then
    redis.call('HSET', KEYS[i], 's', 'assigned')
    local players = string.gsub(f[3], '=[^,]*', '') -- "id=rating,..." -> "id,..."
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'e', 'assigned', 't', ARGV[i + 3],
      'p', players, 'm', ARGV[1], 'a', address, 'r', ARGV[5])
  end
end
return {'OK'}
