-- ARGV: room, proc, user, name, ttl -> {1 when the user had no entry anywhere before,
-- the name they had}.
local present = 0
for _, entry in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if user_of(entry) == ARGV[3] then present = 1 break end
end
local previous = redis.call('HGET', KEYS[2], ARGV[3]) or ''
redis.call('ZADD', KEYS[1], score(now + tonumber(ARGV[5])), ARGV[2] .. ':' .. ARGV[3])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[1])
return {1 - present, previous}
