-- redis-now (pasted into the scripts that include it): the Redis clock in epoch milliseconds.
-- Scripts take "now" from the Redis server they run on, never from the caller's clock.
-- Returns the current instant in ms (a whole number).
local function redisNow()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
