-- pool_drain.lua: stop new allocations on a server; running ones go on (pool_lib.lua first).
--
-- KEYS[1..8], KEYS[9..], ARGV[1], ARGV[2]: the pool's keys, regions and clock (pool_lib.lua)
-- ARGV[3]  server id
--
-- The server leaves the pool when its last match ends (at once if none runs).
-- Returns {"OK", running matches} or {"NOTFOUND"} (nothing written).

local id = ARGV[3]
local rec = server_record(id)
if not rec[4] then
  return {'NOTFOUND'}
end
return {'OK', drain_server(id, rec)}
