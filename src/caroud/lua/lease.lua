-- lease.lua: take or renew the lease of a queue for one worker.
--
-- KEYS[1]  lease key
-- ARGV[1]  the worker's token    ARGV[2]  lease TTL in ms
--
-- Returns 1 if the caller holds the lease now (taken or renewed), 0 if another worker does.

local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
