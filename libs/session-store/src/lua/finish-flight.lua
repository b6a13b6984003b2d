-- finish-flight: the caller that verified a token for everyone waiting on it leaves the outcome in the
-- flight key, if the flight is still its own (a flight that outlived its lease may have a new owner);
-- with no outcome (it failed for a reason of its own, e.g. the IdP was down) it gives the flight up.
-- KEYS[1] flight key   ARGV[1] owner id   ARGV[2] outcome, or '' to give up   ARGV[3] keep the outcome for (ms)
-- Returns 1 when written or given up, else 0.
if redis.call('GET', KEYS[1]) ~= 'p:' .. ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
