-- pool_allocate.lua: take a slot for a match on a server of the first region that has one.
--
-- KEYS[1..8], ARGV[1], ARGV[2]: the pool's keys and clock (pool_lib.lua, which comes first)
-- KEYS[9..] the free-slot zsets of the match's regions, in fallback order (named in ARGV[1])
-- ARGV[3]  match id          ARGV[4]  "packed" or "distributed"
-- ARGV[5]  candidates scanned at most per region (bounds the work of one call)
-- ARGV[6]  start deadline, in ms from now
-- ARGV[7]  servers to avoid as ",id,id," ("" for none)
-- ARGV[8..] required labels, each as ",key=value,"
--
-- A candidate is ready (it has reported ready, and is neither benched nor draining: the
-- free sets hold only those), has a free slot, a health deadline not yet passed, every
-- required label, and is not one to avoid (an avoided one still counts against the
-- scan bound). Packed takes the fullest first (used/capacity, ties by id descending),
-- distributed the emptiest (ties by id ascending). Idempotent per match id: a running
-- allocation is returned as it is, an expired or lost one is replaced.
--
-- Returns {"OK", allocation}, {"EXISTS", allocation} (a retry), {"RELEASED", allocation},
-- or {"NOCAP"} after counting it in stats' no_capacity (the only write then).

local match = ARGV[3]
local existing = redis.call('HGET', ALLOC, match)
if existing then
  local state = string.match(existing, '^[^|]*')
  if state == 'allocated' or state == 'started' then
    return {'EXISTS', existing}
  elseif state == 'released' then
    return {'RELEASED', existing}
  end
end
local packed = ARGV[4] == 'packed'
local limit = tonumber(ARGV[5])
local start_deadline = NOW + tonumber(ARGV[6])
local avoid = ARGV[7]
local PAGE = 16
local removed = 0 -- candidates dropped from the page being read: the next page starts earlier

-- the attributes allocation needs, if the server can take the match now; else nil
local function fits(key, id)
  if avoid ~= '' and string.find(avoid, ',' .. id .. ',', 1, true) then
    return nil
  end
  local health = redis.call('ZSCORE', HB, id)
  if not health or tonumber(health) < NOW then
    return nil
  end
  local f = redis.call('HMGET', SRV, id .. ':st', id .. ':used', id .. ':cap', id .. ':lab',
    id .. ':host', id .. ':port')
  if f[1] ~= 'ready' or tonumber(f[2]) >= tonumber(f[3]) then
    redis.call('ZREM', key, id) -- not a candidate: never expected, but keep the set honest
    removed = removed + 1
    return nil
  end
  for j = 8, #ARGV do
    if not string.find(f[4], ARGV[j], 1, true) then
      return nil
    end
  end
  return f
end

for r, region in ipairs(REGIONS) do
  local key = KEYS[FIXED + r]
  local first = 0
  while first < limit do
    local last = math.min(first + PAGE, limit) - 1
    local ids
    if packed then
      ids = redis.call('ZREVRANGE', key, first, last)
    else
      ids = redis.call('ZRANGE', key, first, last)
    end
    removed = 0
    for _, id in ipairs(ids) do
      local f = fits(key, id)
      if f then
        local used = redis.call('HINCRBY', SRV, id .. ':used', 1)
        place(id, region, used, tonumber(f[3]), 'ready')
        local value = table.concat({'allocated', id, region, f[5], f[6], NOW, start_deadline,
          '', ''}, '|')
        redis.call('HSET', ALLOC, match, value)
        redis.call('ZADD', PENDING, start_deadline, match)
        redis.call('ZADD', RUNNING, 0, id .. '/' .. match)
        if existing then
          redis.call('ZREM', DONE, match)
        end
        redis.call('HINCRBY', STATS, 'allocations', 1)
        return {'OK', value}
      end
    end
    if #ids <= last - first then
      break
    end
    first = last + 1 - removed
    limit = limit - removed -- what was dropped still counts against the scan bound
  end
end
redis.call('HINCRBY', STATS, 'no_capacity', 1)
return {'NOCAP'}
