-- index-member: before a session born of an IdP session, or holding a group, is written, record it in
-- that IdP session's or group's index (its own hash slot) and read the index's not-before. The caller
-- passes that stamp to create-session, so a login racing a back-channel logout or a group revocation's
-- fan-out cannot slip past it.
-- KEYS[1] index (zset: member -> latest expiresAt)   KEYS[2] not-before
-- ARGV[1] member: '<user tag>:<handle>' for an IdP session, the user id for a group
-- ARGV[2] expiresAt upper bound (ms)
-- Returns the not-before, or '' when there is none. The score only grows (GT), expired members are
-- trimmed, the key lives as long as its latest member.
--#include redis-now
--#include index-upkeep
keepIndex(KEYS[1], ARGV[2], ARGV[1], redisNow(), 'GT')
return redis.call('GET', KEYS[2]) or ''
