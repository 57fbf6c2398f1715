-- ARGV: room, proc, user -> 1 when the user has no live entry left anywhere (they left).
-- The user's expired entries (of dead processes) go too, so no reaper announces again.
redis.call('ZREM', KEYS[1], ARGV[2] .. ':' .. ARGV[3])
local live = 0
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #entries, 2 do
  if user_of(entries[i]) == ARGV[3] then
    if tonumber(entries[i + 1]) > now then live = 1
    else redis.call('ZREM', KEYS[1], entries[i]) end
  end
end
if live == 0 then redis.call('HDEL', KEYS[2], ARGV[3]) end
forget_room_if_empty()
return 1 - live
