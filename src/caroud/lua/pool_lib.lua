-- pool_lib.lua: what every pool_*.lua script shares; prepended to each one at registration.
--
-- Every pool script is called with the same first keys and first two arguments:
--
-- KEYS[1]  server attributes (hash, field "<server>:<attr>", attrs as in ATTRS below)
-- KEYS[2]  health deadlines (zset: every registered server, scored in ms)
-- KEYS[3]  allocations (hash: match id -> "state|server|region|host|port|at|deadline|started|ended")
-- KEYS[4]  pending starts (zset: allocated, unconfirmed matches by start deadline in ms)
-- KEYS[5]  running allocations (zset of "<server>/<match>", score 0, read by lex range)
-- KEYS[6]  ended allocations (zset: tombstones by end time in ms, trimmed by pool_reap)
-- KEYS[7]  stats (hash: no_capacity allocations expired unhealthy benched capacity draining)
-- KEYS[8]  pool events (stream: servers benched; servers lost are added by the caller)
-- KEYS[9..] one free-slot zset per region named in ARGV[1], in that order
-- ARGV[1]  the regions of KEYS[9..], comma-separated
-- ARGV[2]  now in ms, or "" for the server clock
--
-- Script arguments start at ARGV[3]. Nothing here writes until a script calls it.

local SRV, HB, ALLOC, PENDING, RUNNING, DONE, STATS, EVENTS =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local FIXED = 8 -- keys before the free-slot zsets
local REGIONS, FREE = {}, {}
for region in string.gmatch(ARGV[1], '[^,]+') do
  REGIONS[#REGIONS + 1] = region
  FREE[region] = KEYS[FIXED + #REGIONS]
end
local NOW
if ARGV[2] ~= '' then
  NOW = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- a server record is HMGET of these, in this order: rec[4] (cap) is false if it is unknown.
-- st: starting (no ready heartbeat yet), ready, benched (too many expired starts) or
-- draining; only a ready server is in its region's free set. sk: expired starts since
-- the last confirmed one.
local ATTRS = {'host', 'port', 'reg', 'cap', 'used', 'st', 'lab', 'load', 'at', 'hb', 'sk'}

local function attr_fields(id)
  local f = {}
  for i, a in ipairs(ATTRS) do
    f[i] = id .. ':' .. a
  end
  return f
end

local function server_record(id)
  return redis.call('HMGET', SRV, unpack(attr_fields(id)))
end

local function split(value)
  local parts = {}
  for part in string.gmatch(value .. '|', '([^|]*)|') do
    parts[#parts + 1] = part
  end
  return parts
end

-- keep a server in its region's free set exactly while it is ready with a free slot
local function place(id, region, used, cap, state)
  local key = FREE[region]
  if not key then
    return
  end
  if state == 'ready' and used < cap then
    redis.call('ZADD', key, used / cap, id)
  else
    redis.call('ZREM', key, id)
  end
end

-- end a running allocation as released / expired / lost (its server's slot is not touched)
local function end_allocation(match, parts, state)
  redis.call('ZREM', RUNNING, parts[2] .. '/' .. match)
  redis.call('ZREM', PENDING, match)
  parts[1] = state
  parts[9] = tostring(NOW)
  local value = table.concat(parts, '|')
  redis.call('HSET', ALLOC, match, value)
  redis.call('ZADD', DONE, NOW, match)
  return value
end

-- take a server out of the pool; its running allocations end as lost.
-- Returns {match, value before, ...} of those allocations.
local function remove_server(id, rec)
  local lost = {}
  -- ids never hold '/', and '0' is the character after '/': this range is "<id>/*"
  local members = redis.call('ZRANGEBYLEX', RUNNING, '[' .. id .. '/', '(' .. id .. '0')
  for _, member in ipairs(members) do
    local match = string.sub(member, #id + 2)
    local value = redis.call('HGET', ALLOC, match)
    if value then
      lost[#lost + 1] = match
      lost[#lost + 1] = value
      end_allocation(match, split(value), 'lost')
    else
      redis.call('ZREM', RUNNING, member)
    end
  end
  redis.call('HDEL', SRV, unpack(attr_fields(id)))
  redis.call('ZREM', HB, id)
  if FREE[rec[3]] then
    redis.call('ZREM', FREE[rec[3]], id)
  end
  redis.call('HINCRBY', STATS, 'capacity', -tonumber(rec[4]))
  if rec[6] == 'draining' then
    redis.call('HINCRBY', STATS, 'draining', -1)
  end
  return lost
end

-- give back the slot of an ended allocation; a draining server left empty leaves the pool
local function free_slot(id)
  local rec = server_record(id)
  if not rec[4] then
    return
  end
  local used = redis.call('HINCRBY', SRV, id .. ':used', -1)
  if rec[6] == 'draining' then
    if used <= 0 then
      remove_server(id, rec)
    end
  else
    place(id, rec[3], used, tonumber(rec[4]), rec[6])
  end
end

-- stop new allocations on a server; it leaves at once if nothing runs on it.
-- Returns how many matches still run on it.
local function drain_server(id, rec)
  if rec[6] ~= 'draining' then
    redis.call('HSET', SRV, id .. ':st', 'draining')
    redis.call('HINCRBY', STATS, 'draining', 1)
    if FREE[rec[3]] then
      redis.call('ZREM', FREE[rec[3]], id)
    end
    rec[6] = 'draining'
  end
  local used = tonumber(rec[5])
  if used <= 0 then
    remove_server(id, rec)
  end
  return used
end

-- ========================= script ==========================
