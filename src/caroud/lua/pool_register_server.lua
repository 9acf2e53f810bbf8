-- pool_register_server.lua: add a game server to the pool (pool_lib.lua comes first).
--
-- KEYS[1..8], KEYS[9..], ARGV[1], ARGV[2]: the pool's keys, regions and clock (pool_lib.lua)
-- ARGV[3]  server id             ARGV[4]  host           ARGV[5]  port
-- ARGV[6]  region                ARGV[7]  capacity (match slots)
-- ARGV[8]  labels ",key=value,key=value," ("" for none)
-- ARGV[9]  grace before the first heartbeat, in ms
--
-- It is "starting": it takes no match until its first "ready" heartbeat (pool_heartbeat).
-- Returns {"OK", registered_ms, health_deadline_ms}, {"EXISTS"} if the id is taken,
-- or {"REGION"} if the region has no key here. Nothing is written unless "OK".

local id, region, cap = ARGV[3], ARGV[6], tonumber(ARGV[7])
if redis.call('HEXISTS', SRV, id .. ':cap') == 1 then
  return {'EXISTS'}
end
if not FREE[region] then
  return {'REGION'}
end
redis.call('HSET', SRV, id .. ':host', ARGV[4], id .. ':port', ARGV[5], id .. ':reg', region,
  id .. ':cap', cap, id .. ':used', 0, id .. ':st', 'starting', id .. ':lab', ARGV[8],
  id .. ':load', 0, id .. ':at', NOW, id .. ':hb', '', id .. ':sk', 0)
local deadline = NOW + tonumber(ARGV[9])
redis.call('ZADD', HB, deadline, id)
redis.call('HINCRBY', STATS, 'capacity', cap)
return {'OK', NOW, deadline}
