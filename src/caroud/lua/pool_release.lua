-- pool_release.lua: the match ended; free its slot (pool_lib.lua comes first).
--
-- KEYS[1..8], KEYS[9..], ARGV[1], ARGV[2]: the pool's keys, regions and clock (pool_lib.lua)
-- ARGV[3]  match id
--
-- A draining server whose last match this was leaves the pool.
-- Returns {"OK", allocation} (now released), {"ENDED", allocation} if it had ended before
-- (released, expired or lost: nothing written), or {"NOTFOUND"}.

local match = ARGV[3]
local value = redis.call('HGET', ALLOC, match)
if not value then
  return {'NOTFOUND'}
end
local parts = split(value)
if parts[1] ~= 'allocated' and parts[1] ~= 'started' then
  return {'ENDED', value}
end
value = end_allocation(match, parts, 'released')
free_slot(parts[2])
return {'OK', value}
