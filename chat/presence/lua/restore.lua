-- ARGV: room, proc, user, name, ttl, horizon -> 1 when the user still has an entry (live
-- or expired: nobody announced them gone), which this process then holds instead of the
-- entries a stopped process left to expire within `horizon` seconds.
local present = 0
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #entries, 2 do
  if user_of(entries[i]) == ARGV[3] then
    present = 1
    if tonumber(entries[i + 1]) <= now + tonumber(ARGV[6]) then
      redis.call('ZREM', KEYS[1], entries[i])
    end
  end
end
if present == 0 then return 0 end
redis.call('ZADD', KEYS[1], score(now + tonumber(ARGV[5])), ARGV[2] .. ':' .. ARGV[3])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
