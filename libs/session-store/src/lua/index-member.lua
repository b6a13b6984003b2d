-- index-member: before a session born of an IdP session, or holding a group, is written, record it in
-- that IdP session's or group's index (its own hash slot) and read the index's not-before. The caller
-- passes that stamp to create-session, so a login racing a back-channel logout or a group revocation's
-- fan-out cannot slip past it.
-- KEYS[1] index (zset: member -> latest expiresAt)   KEYS[2] not-before
-- ARGV[1] member: '<user tag>:<handle>' for an IdP session, the user id for a group
-- ARGV[2] expiresAt upper bound (ms)
-- Returns the not-before, or '' when there is none. The score only grows (GT), expired members are
-- trimmed, the key lives as long as its latest member.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return redis.call('GET', KEYS[2]) or ''
