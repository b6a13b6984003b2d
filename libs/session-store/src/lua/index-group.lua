-- index-group: note that a user holds a live session with this group, for group-wide revocation, and
-- read the group's not-before: the caller passes it to create-session, so a login racing a group
-- revocation's fan-out cannot slip past it.
-- KEYS[1] group index (zset: user id -> latest expiresAt of that user's sessions with the group)
-- KEYS[2] group not-before
-- ARGV[1] user id   ARGV[2] expiresAt upper bound (ms)
-- Returns the group's not-before or ''. The score only grows (GT), expired members are trimmed, the
-- key lives as long as its latest member.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return redis.call('GET', KEYS[2]) or ''
