-- KEYS: leases, own hash. ARGV: proc, lease -> 1 when the lease was still live (the hash
-- is intact), 0 when it had run out (the hash must be written again).
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], score(now + tonumber(ARGV[2])), ARGV[1])
redis.call('PEXPIRE', KEYS[2], ms(ARGV[2]))
if held and tonumber(held) > now then return 1 end
return 0
