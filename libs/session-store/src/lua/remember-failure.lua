-- remember-failure: remember, for a short while, that a token failed verification, within a bound on
-- how many are remembered at once, so that random garbage cannot fill Redis.
-- KEYS[1] the token's bucket of remembered failures (zset: token hash -> until)   KEYS[2] this token's reason
-- ARGV[1] token hash   ARGV[2] reason   ARGV[3] remember for (ms)   ARGV[4] most remembered at once in
-- this bucket (its share of the total bound: the shares of every bucket add up to the bound)
-- Both keys share the bucket's hash tag. Returns 1 when remembered, 0 when the bucket is full.
--#include redis-now
--#include index-upkeep
local now = redisNow()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
local untilMs = string.format('%.0f', now + tonumber(ARGV[3]))
redis.call('SET', KEYS[2], ARGV[2], 'PXAT', untilMs)
keepIndex(KEYS[1], untilMs, ARGV[1], now)
return 1
