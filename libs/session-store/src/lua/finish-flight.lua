-- finish-flight: the caller that verified a token for everyone waiting on it leaves the outcome in the
-- flight key, if the flight is still its own (a flight that outlived its lease may have a new owner).
-- KEYS[1] flight key   ARGV[1] owner id   ARGV[2] outcome   ARGV[3] keep the outcome for (ms)
-- Returns 1 when written, else 0.
if redis.call('GET', KEYS[1]) ~= 'p:' .. ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
