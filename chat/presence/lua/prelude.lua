local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function score(x) return string.format('%.6f', x) end
local function user_of(entry)
  local sep = string.find(entry, ':', 1, true)
  return string.sub(entry, sep + 1)
end
local function forget_room_if_empty()
  if redis.call('ZCARD', KEYS[1]) == 0 then
    redis.call('DEL', KEYS[2])
    redis.call('SREM', KEYS[3], ARGV[1])
    return true
  end
  return false
end
