-- pool_deregister.lua: take a server out of the pool now (pool_lib.lua comes first).
--
-- KEYS[1..8], KEYS[9..], ARGV[1], ARGV[2]: the pool's keys, regions and clock (pool_lib.lua)
-- ARGV[3]  server id
--
-- Its running allocations end as "lost" (kept as tombstones, so releasing them is a no-op).
-- Returns {"OK", record, health_deadline_ms, {match, allocation before, ...}} or
-- {"NOTFOUND"} (nothing written).

local id = ARGV[3]
local rec = server_record(id)
if not rec[4] then
  return {'NOTFOUND'}
end
local deadline = redis.call('ZSCORE', HB, id)
return {'OK', rec, deadline, remove_server(id, rec)}
