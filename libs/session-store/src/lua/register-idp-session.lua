-- register-idp-session: before a session born of an IdP session is written, record it in that IdP
-- session's index (its own hash slot) and read the IdP session's not-before. The caller passes that
-- stamp to create-session, so a login racing a back-channel logout cannot slip past it.
-- KEYS[1] IdP-session index (zset: '<user tag>:<handle>' -> expiresAt)   KEYS[2] IdP-session not-before
-- ARGV[1] member   ARGV[2] expiresAt upper bound (ms)
-- Returns the IdP session's not-before, or '' when it has none.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return redis.call('GET', KEYS[2]) or ''
