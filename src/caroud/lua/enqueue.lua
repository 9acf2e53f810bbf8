-- enqueue.lua: create a queued ticket, unless one of its players already has an active ticket.
--
-- KEYS[1]  ticket hash           KEYS[2]  queue index (zset)
-- KEYS[3]  queue events stream   KEYS[4..] one player key per player
-- ARGV[1]  ticket id             ARGV[2]  queue name
-- ARGV[3]  players "id=rating,..."        ARGV[4]  latencies "region=ms,..." ("" for none)
-- ARGV[5]  created_at in ms, or "" to use the server clock
-- ARGV[6]  events stream max length (approximate trim)
-- ARGV[7]  player ids "id,id" (for the event)
--
-- Returns {"OK", created_ms}, {"BUSY", player_id, ticket_id} or {"EXISTS", ticket_id}.
-- Nothing is written unless every check passed.

if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'EXISTS', ARGV[1]}
end
local n = #KEYS
for i = 4, n do
  local holder = redis.call('GET', KEYS[i])
  if holder then
    local id = string.match(KEYS[i], ':p:(.*)$')
    return {'BUSY', id, holder}
  end
end
local created = ARGV[5]
if created == '' then
  local t = redis.call('TIME')
  created = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
end
redis.call('HSET', KEYS[1], 'q', ARGV[2], 's', 'queued', 'p', ARGV[3], 'c', created)
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'l', ARGV[4])
end
redis.call('ZADD', KEYS[2], created, ARGV[1])
for i = 4, n do
  redis.call('SET', KEYS[i], ARGV[1])
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'e', 'queued', 't', ARGV[1], 'p', ARGV[7])
return {'OK', created}
