-- pool_heartbeat.lua: a server reports it is alive, its state and its load (pool_lib.lua first).
--
-- KEYS[1..8], KEYS[9..], ARGV[1], ARGV[2]: the pool's keys, regions and clock (pool_lib.lua)
-- ARGV[3]  server id     ARGV[4]  "ready" or "draining"     ARGV[5]  load (a number)
-- ARGV[6]  health TTL in ms: the server is unhealthy if no heartbeat comes within it
--
-- The first "ready" from a starting server makes it ready: from now on it takes matches.
-- "ready" changes nothing else: a benched server stays benched, and draining is one-way
-- (a draining server stays draining). A draining server with nothing running leaves the
-- pool at once.
--
-- Returns {"OK", record, health_deadline_ms} (record: HMGET of ATTRS after the update;
-- used 0 and st "draining" means it has just left), or {"NOTFOUND"} (nothing written).

local id = ARGV[3]
local rec = server_record(id)
if not rec[4] then
  return {'NOTFOUND'}
end
local deadline = NOW + tonumber(ARGV[6])
redis.call('HSET', SRV, id .. ':hb', NOW, id .. ':load', ARGV[5])
redis.call('ZADD', HB, deadline, id)
rec[8] = ARGV[5]
rec[10] = tostring(NOW)
if ARGV[4] == 'draining' then
  drain_server(id, rec)
elseif rec[6] == 'starting' then
  redis.call('HSET', SRV, id .. ':st', 'ready')
  rec[6] = 'ready'
  place(id, rec[3], tonumber(rec[5]), tonumber(rec[4]), 'ready')
end
return {'OK', rec, deadline}
