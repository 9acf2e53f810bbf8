-- cancel.lua: cancel a queued ticket; any other state is refused.
--
-- KEYS[1]  ticket hash           KEYS[2]  queue index (zset)
-- KEYS[3]  queue events stream   KEYS[4..] the ticket's player keys
-- ARGV[1]  ticket id             ARGV[2]  TTL (s) of the ended ticket
-- ARGV[3]  events stream max length
--
-- Returns {"OK"}, {"NOTFOUND"} or {"STATE", current_status}.

local status = redis.call('HGET', KEYS[1], 's')
if not status then
  return {'NOTFOUND'}
end
if status ~= 'queued' then
  return {'STATE', status}
end
redis.call('HSET', KEYS[1], 's', 'cancelled')
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
for i = 4, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
  end
end
local players = string.gsub(redis.call('HGET', KEYS[1], 'p'), '=[^,]*', '')
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'e', 'cancelled', 't', ARGV[1], 'p', players)
return {'OK'}
