-- release-flight: end a token's single-flight lease, if it is still the caller's (a lease that
-- expired may have been taken by another caller since, whose flight must go on).
-- KEYS[1] flight key   ARGV[1] owner id
-- Returns 1 when released, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
