-- ARGV: room, proc, ttl, user, name, user, name, ... -> the entries this process holds in
-- the room, exactly: listed ones pushed forward (re-added if lost), others removed.
-- Returns {users re-added who had no entry anywhere (Redis lost them, or reaped them
-- while this process stalled), users removed who have none left}, each as user, name.
local mine = ARGV[2] .. ':'
local function present()
  local users = {}
  for _, entry in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do users[user_of(entry)] = true end
  return users
end
local before = present()
local keep, returned = {}, {}
for i = 4, #ARGV, 2 do
  keep[mine .. ARGV[i]] = true
  if not before[ARGV[i]] then
    table.insert(returned, ARGV[i])
    table.insert(returned, ARGV[i + 1])
  end
  redis.call('ZADD', KEYS[1], score(now + tonumber(ARGV[3])), mine .. ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
local dropped = {}
for _, entry in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(entry, 1, #mine) == mine and not keep[entry] then
    redis.call('ZREM', KEYS[1], entry)
    table.insert(dropped, user_of(entry))
  end
end
local gone = {}
if #dropped > 0 then
  local still = present()
  for _, user in ipairs(dropped) do
    if not still[user] then
      table.insert(gone, user)
      table.insert(gone, redis.call('HGET', KEYS[2], user) or '')
      redis.call('HDEL', KEYS[2], user)
    end
  end
end
if not forget_room_if_empty() then redis.call('SADD', KEYS[3], ARGV[1]) end
return {returned, gone}
