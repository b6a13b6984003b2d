-- revoke-user: raise the user's not-before stamp; the revocation is in force once this returns
-- (design invariant 1). Deleting the revoked sessions is clean-up, done by the caller in bounded
-- batches (invariant 5), so this script stays O(log n) however many sessions the user holds.
-- KEYS[1] user not-before   KEYS[2] user index
-- ARGV[1] cutoff ms (sessions issued at or before it go) or '' (then Redis time: "now")
-- ARGV[2] minimum lifetime of the stamp in ms
-- Returns {notBefore in force, Redis time, index size}. The stamp only moves forward (invariant 2).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cutoff = now
if ARGV[1] ~= '' then cutoff = tonumber(ARGV[1]) end
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local nb = math.max(current, cutoff + 1)
local snb = string.format('%.0f', nb)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
-- The stamp must outlive every session it refuses, and a retention window for late writers.
local keep = now + tonumber(ARGV[2])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if last[2] then keep = math.max(keep, tonumber(last[2])) end
local pttl = redis.call('PTTL', KEYS[1])
if pttl > 0 then keep = math.max(keep, now + pttl) end
redis.call('SET', KEYS[1], snb, 'PXAT', string.format('%.0f', keep))
return { snb, string.format('%.0f', now), redis.call('ZCARD', KEYS[2]) }
