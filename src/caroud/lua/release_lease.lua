-- release_lease.lua: give up a queue's lease, only if the caller still holds it.
--
-- KEYS[1]  lease key
-- ARGV[1]  the worker's token
--
-- Returns 1 if released, 0 if the caller did not hold it.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
