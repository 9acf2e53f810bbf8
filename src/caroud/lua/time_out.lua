-- time_out.lua: end queued tickets that waited past the queue's maximum wait (a bounded batch).
--
-- KEYS[1]  lease key             KEYS[2]  queue index (zset)
-- KEYS[3]  queue events stream   KEYS[4..] per ticket: its hash, then its player keys
-- ARGV[1]  lease token           ARGV[2]  cutoff: tickets created at or before it (ms) time out
-- ARGV[3]  TTL (s) of ended tickets       ARGV[4]  events stream max length
-- ARGV[5..] per ticket: ticket id, number of player keys
--
-- Returns {"LEASE"} if the caller no longer holds the lease, else {"OK", timed_out_count}.
-- A ticket that is no longer queued, or is younger than the cutoff, is left alone.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {'LEASE'}
end
local cutoff = tonumber(ARGV[2])
local k = 4
local done = 0
for a = 5, #ARGV, 2 do
  local id = ARGV[a]
  local nplayers = tonumber(ARGV[a + 1])
  local tkey = KEYS[k]
  local fields = redis.call('HMGET', tkey, 's', 'c', 'p')
  if fields[1] == 'queued' and tonumber(fields[2]) <= cutoff then
    redis.call('HSET', tkey, 's', 'timed_out')
    redis.call('EXPIRE', tkey, ARGV[3])
    redis.call('ZREM', KEYS[2], id)
    for i = k + 1, k + nplayers do
      if redis.call('GET', KEYS[i]) == id then
        redis.call('DEL', KEYS[i])
      end
    end
    local players = string.gsub(fields[3], '=[^,]*', '')
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'e', 'timed_out', 't', id, 'p', players)
    done = done + 1
  end
  k = k + 1 + nplayers
end
return {'OK', done}
