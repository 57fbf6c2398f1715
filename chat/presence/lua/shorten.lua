-- ARGV: room, proc, seconds: this process's entries expire within `seconds` at the latest.
local mine = ARGV[2] .. ':'
local latest = now + tonumber(ARGV[3])
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #entries, 2 do
  if string.sub(entries[i], 1, #mine) == mine and tonumber(entries[i + 1]) > latest then
    redis.call('ZADD', KEYS[1], score(latest), entries[i])
  end
end
return 1
