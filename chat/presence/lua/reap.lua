-- ARGV: room, proc -> {user, name, ...} of users whose last entry expired and was removed
-- here. Entries of `proc` itself are left to its heartbeat.
local touched, order = {}, {}
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', score(now))) do
  local sep = string.find(entry, ':', 1, true)
  if string.sub(entry, 1, sep - 1) ~= ARGV[2] then
    redis.call('ZREM', KEYS[1], entry)
    local user = string.sub(entry, sep + 1)
    if not touched[user] then touched[user] = true table.insert(order, user) end
  end
end
local still = {}
for _, entry in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do still[user_of(entry)] = true end
local gone = {}
for _, user in ipairs(order) do
  if not still[user] then
    table.insert(gone, user)
    table.insert(gone, redis.call('HGET', KEYS[2], user) or '')
    redis.call('HDEL', KEYS[2], user)
  end
end
forget_room_if_empty()
return gone
