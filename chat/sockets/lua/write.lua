-- KEYS: leases, own hash. ARGV: proc, lease, field, count, field, count, ...: the hash
-- becomes exactly these counts, and the lease is renewed.
redis.call('DEL', KEYS[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[2], ms(ARGV[2]))
redis.call('ZADD', KEYS[1], score(now + tonumber(ARGV[2])), ARGV[1])
return 1
