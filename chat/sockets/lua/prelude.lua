local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function score(x) return string.format('%.6f', x) end
local function ms(seconds) return math.floor(tonumber(seconds) * 1000) end
