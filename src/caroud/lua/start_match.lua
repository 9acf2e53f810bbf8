-- start_match.lua: the game server confirmed that an assigned match started.
--
-- KEYS[1]  match hash
-- ARGV[1]  match id (unused; for logs)
--
-- Returns {"OK", started_ms} (also when it had already started: idempotent) or
-- {"STATE", status} when the match is not assigned (nothing written).

local f = redis.call('HMGET', KEYS[1], 's', 'st')
if f[1] == 'started' then
  return {'OK', f[2]}
end
if f[1] ~= 'assigned' then
  return {'STATE', f[1] or 'missing'}
end
local t = redis.call('TIME')
local now_ms = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
redis.call('HSET', KEYS[1], 's', 'started', 'st', now_ms)
return {'OK', now_ms}
