-- retry_match.lua: the server of an assigned match let its start expire: place it again.
--
-- The server joins the servers the match avoids (field "av", comma-separated, one per
-- failed placement), and the match goes back to the front of the pending set, where the
-- assigning worker allocates it elsewhere, or requeues its tickets once it has failed
-- too often (caroud.matchmaking.assignment.MAX_PLACEMENTS).
--
-- KEYS[1]  match hash            KEYS[2]  pending-assignment set (zset)
-- ARGV[1]  match id              ARGV[2]  id of the server where the start expired
--
-- Returns {"OK", failed_placements}, or {"STATE", status} if the match is not assigned
-- to that server any more (started, requeued, ended, placed elsewhere: nothing written).

local f = redis.call('HMGET', KEYS[1], 's', 'srv', 'av')
if f[1] ~= 'assigned' or f[2] ~= ARGV[2] then
  return {'STATE', f[1] or 'missing'}
end
local avoid = f[3] or ''
if avoid == '' then
  avoid = ARGV[2]
elseif not string.find(',' .. avoid .. ',', ',' .. ARGV[2] .. ',', 1, true) then
  avoid = avoid .. ',' .. ARGV[2]
end -- else: this failure was recorded already (a retry)
redis.call('HSET', KEYS[1], 'av', avoid)
redis.call('ZADD', KEYS[2], 0, ARGV[1])
local _, commas = string.gsub(avoid, ',', '')
return {'OK', commas + 1}
