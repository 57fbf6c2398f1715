-- KEYS: leases, own hash. ARGV: proc, hash prefix, user field, address field ('' = no
-- address limit), user limit, address limit, lease -> 0 taken, 1 user full, 2 address full.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', score(now))
local users, addresses = 0, 0
local function add(key)
  local counts = redis.call('HMGET', key, ARGV[3], ARGV[4] ~= '' and ARGV[4] or ARGV[3])
  users = users + (tonumber(counts[1]) or 0)
  if ARGV[4] ~= '' then addresses = addresses + (tonumber(counts[2]) or 0) end
end
add(KEYS[2])
for _, proc in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if proc ~= ARGV[1] then add(ARGV[2] .. proc) end
end
if users >= tonumber(ARGV[5]) then return 1 end
if ARGV[4] ~= '' and addresses >= tonumber(ARGV[6]) then return 2 end
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
if ARGV[4] ~= '' then redis.call('HINCRBY', KEYS[2], ARGV[4], 1) end
redis.call('PEXPIRE', KEYS[2], ms(ARGV[7]))
return 0
