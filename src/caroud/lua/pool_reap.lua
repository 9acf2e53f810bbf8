-- pool_reap.lua: remove unhealthy servers, free slots never confirmed, trim old tombstones.
--
-- KEYS[1..8], KEYS[9..], ARGV[1], ARGV[2]: the pool's keys, regions and clock (pool_lib.lua)
-- ARGV[3]  at most this many unhealthy servers per call
-- ARGV[4]  at most this many expired allocations (and tombstones) per call
-- ARGV[5]  how long ended allocations are kept, in ms
-- ARGV[6]  strikes that bench a server          ARGV[7]  events stream max length
-- ARGV[8]  "1": excuse the servers first (the caller could not reach Redis for a while)
-- ARGV[9]  a server's health budget (ms)         ARGV[10] a start's deadline (ms)
--
-- Excused, every health deadline is first moved to at least now + ARGV[9] and every
-- pending start to at least now + ARGV[10]: while Redis was away no server could
-- heartbeat or confirm a start, so none is judged late for it (a server that really
-- died is removed one budget later).
--
-- A server is unhealthy once its health deadline has passed; its running allocations end
-- as "lost". An allocation still unconfirmed past its start deadline ends as "expired",
-- its slot goes back to the pool and its server gets a strike; a ready server reaching
-- ARGV[6] strikes is benched (it takes no new match; see pool_confirm_started for the
-- way back) and a "server_benched" event (srv, r, strikes, m: the match that expired
-- last) goes on the pool's stream.
-- Returns {more, lost, expired, benched}: more is 1 if a limit was reached (call again);
-- lost is {{id, record, health_deadline_ms, {match, allocation before, ...}}, ...};
-- expired is {match, allocation before, ...}; benched is {server id, ...}.

local server_limit, alloc_limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local strike_limit, maxlen = tonumber(ARGV[6]), ARGV[7]
local benched = {}

if ARGV[8] == '1' then
  local healthy, starts = NOW + tonumber(ARGV[9]), NOW + tonumber(ARGV[10])
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', HB, '-inf', '(' .. healthy)) do
    redis.call('ZADD', HB, 'XX', healthy, id)
  end
  for _, match in ipairs(redis.call('ZRANGEBYSCORE', PENDING, '-inf', '(' .. starts)) do
    redis.call('ZADD', PENDING, 'XX', starts, match)
  end
  redis.call('HINCRBY', STATS, 'excused', 1)
end

-- one more expired start on the server; bench it at the limit (if it is still ready)
local function strike(id, match)
  local rec = server_record(id)
  if not rec[4] then
    return
  end
  local strikes = redis.call('HINCRBY', SRV, id .. ':sk', 1)
  if strikes < strike_limit or rec[6] ~= 'ready' then
    return
  end
  redis.call('HSET', SRV, id .. ':st', 'benched')
  if FREE[rec[3]] then
    redis.call('ZREM', FREE[rec[3]], id)
  end
  redis.call('HINCRBY', STATS, 'benched', 1)
  redis.call('XADD', EVENTS, 'MAXLEN', '~', maxlen, '*', 'e', 'server_benched', 'srv', id,
    'r', rec[3], 'strikes', strikes, 'm', match)
  benched[#benched + 1] = id
end

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
    strike(parts[2], match)
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
return {more and 1 or 0, lost, expired, benched}
