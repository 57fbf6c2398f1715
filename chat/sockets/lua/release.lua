-- KEYS: own hash. ARGV: user field, address field ('' = none).
for _, field in ipairs(ARGV) do
  if field ~= '' and redis.call('HINCRBY', KEYS[1], field, -1) <= 0 then
    redis.call('HDEL', KEYS[1], field)
  end
end
return 1
