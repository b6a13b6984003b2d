-- revoke-group: stamp a group's not-before, then list the users holding a live session with it.
-- Stamp first: a login with the group that registers after this read is refused by create-session
-- (it reads the stamp in index-group); one that registered before is in the list, and its user's
-- revocation (a job per member) refuses it.
-- KEYS[1] group index   KEYS[2] group not-before
-- ARGV[1] cutoff ms or '' (then Redis time)   ARGV[2] minimum lifetime of the stamp in ms
-- Returns {notBefore in force, Redis time, user id, user id, ...}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cutoff = now
if ARGV[1] ~= '' then cutoff = tonumber(ARGV[1]) end
local nb = math.max(tonumber(redis.call('GET', KEYS[2]) or '0'), cutoff + 1)
local snb = string.format('%.0f', nb)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local keep = now + tonumber(ARGV[2])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then keep = math.max(keep, tonumber(last[2])) end
local pttl = redis.call('PTTL', KEYS[2])
if pttl > 0 then keep = math.max(keep, now + pttl) end
redis.call('SET', KEYS[2], snb, 'PXAT', string.format('%.0f', keep))
local out = { snb, string.format('%.0f', now) }
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do table.insert(out, m) end
return out
