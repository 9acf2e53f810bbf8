-- pool_reap.lua: remove unhealthy servers, free slots never confirmed, trim old tombstones.
--
-- KEYS[1..7], KEYS[8..], ARGV[1], ARGV[2]: the pool's keys, regions and clock (pool_lib.lua)
-- ARGV[3]  at most this many unhealthy servers per call
-- ARGV[4]  at most this many expired allocations (and tombstones) per call
-- ARGV[5]  how long ended allocations are kept, in ms
--
-- A server is unhealthy once its health deadline has passed; its running allocations end
-- as "lost". An allocation still unconfirmed past its start deadline ends as "expired"
-- and its slot goes back to the pool.
-- Returns {more, lost, expired}: more is 1 if a limit was reached (call again); lost is
-- {{id, record, health_deadline_ms, {match, allocation before, ...}}, ...}; expired is
-- {match, allocation before, ...}.

local server_limit, alloc_limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local lost = {}
local ids = redis.call('ZRANGEBYSCORE', HB, '-inf', '(' .. NOW, 'LIMIT', 0, server_limit)
for _, id in ipairs(ids) do
  local rec = server_record(id)
  local deadline = redis.call('ZSCORE', HB, id)
  if rec[4] then
    lost[#lost + 1] = {id, rec, deadline, remove_server(id, rec)}
    redis.call('HINCRBY', STATS, 'unhealthy', 1)
  else
    redis.call('ZREM', HB, id)
  end
end
local expired = {}
local matches = redis.call('ZRANGEBYSCORE', PENDING, '-inf', '(' .. NOW, 'LIMIT', 0, alloc_limit)
for _, match in ipairs(matches) do
  local value = redis.call('HGET', ALLOC, match)
  redis.call('ZREM', PENDING, match)
  local parts = value and split(value)
  if parts and parts[1] == 'allocated' then
    expired[#expired + 1] = match
    expired[#expired + 1] = value
    end_allocation(match, parts, 'expired')
    free_slot(parts[2])
    redis.call('HINCRBY', STATS, 'expired', 1)
  end
end
local old = redis.call('ZRANGEBYSCORE', DONE, '-inf', NOW - tonumber(ARGV[5]),
  'LIMIT', 0, alloc_limit)
if #old > 0 then
  redis.call('ZREM', DONE, unpack(old))
  redis.call('HDEL', ALLOC, unpack(old))
end
local more = #ids == server_limit or #matches == alloc_limit or #old == alloc_limit
return {more and 1 or 0, lost, expired}
