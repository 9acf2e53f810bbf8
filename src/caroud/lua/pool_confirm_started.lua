-- pool_confirm_started.lua: the server says the match started; its slot is no longer pending.
--
-- KEYS[1..8], KEYS[9..], ARGV[1], ARGV[2]: the pool's keys, regions and clock (pool_lib.lua)
-- ARGV[3]  match id
--
-- A confirmation after the start deadline still counts if pool_reap has not freed the
-- slot yet. Confirming a started match again changes nothing. A confirmed start clears
-- the server's strikes (pool_reap): a benched server that confirms a start it still held
-- is ready again, since it shows it does start its matches.
-- Returns {"OK", allocation}, {"STATE", allocation} if it has ended (released, expired,
-- lost), or {"NOTFOUND"}. Nothing is written unless "OK".

local match = ARGV[3]
local value = redis.call('HGET', ALLOC, match)
if not value then
  return {'NOTFOUND'}
end
local parts = split(value)
if parts[1] == 'started' then
  return {'OK', value}
elseif parts[1] ~= 'allocated' then
  return {'STATE', value}
end
parts[1] = 'started'
parts[8] = tostring(NOW)
value = table.concat(parts, '|')
redis.call('HSET', ALLOC, match, value)
redis.call('ZREM', PENDING, match)
local id = parts[2]
local rec = server_record(id)
if rec[4] then
  redis.call('HSET', SRV, id .. ':sk', 0)
  if rec[6] == 'benched' then
    redis.call('HSET', SRV, id .. ':st', 'ready')
    place(id, rec[3], tonumber(rec[5]), tonumber(rec[4]), 'ready')
  end
end
return {'OK', value}
