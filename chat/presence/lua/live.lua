-- -> {user, name, ...} of the users with a live entry, each once.
local seen, out = {}, {}
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. score(now), '+inf')) do
  local user = user_of(entry)
  if not seen[user] then
    seen[user] = true
    table.insert(out, user)
    table.insert(out, redis.call('HGET', KEYS[2], user) or '')
  end
end
return out
