-- revoke-idp-user: in one user's slot, stamp the not-before of one IdP session and delete that
-- user's sessions and cached tokens born of it before the stamp. The stamp makes get-session and create-session
-- refuse them even if a racing login writes one after this runs.
-- KEYS[1] user IdP-session not-before (hash)   KEYS[2] user index   KEYS[3..n] session or token records
-- ARGV[1] IdP-session hash   ARGV[2] not-before ms   ARGV[3] minimum lifetime of the stamp in ms
-- ARGV[4..] the index kind and id of KEYS[3..]: 's:<handle>' for a session, 't:<hash>' for a token
-- Returns the number of sessions deleted (tokens are not counted).
--#include redis-now
local now = redisNow()
local nb = math.max(tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0'), tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.0f', nb))
local keep = now + tonumber(ARGV[3])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if last[2] then keep = math.max(keep, tonumber(last[2])) end
local pttl = redis.call('PTTL', KEYS[1])
if pttl > 0 then keep = math.max(keep, now + pttl) end
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', keep))
local deleted = 0
for i = 3, #KEYS do
  local f = redis.call('HMGET', KEYS[i], 'iat', 'ih')
  if f[1] and f[2] == ARGV[1] and tonumber(f[1]) < nb then
    local kind, id = string.match(ARGV[i + 1], '^(%a):(.+)$')
    redis.call('UNLINK', KEYS[i])
    redis.call('ZREM', KEYS[2], kind .. ':' .. f[1] .. ':' .. id)
    if kind == 's' then deleted = deleted + 1 end
  end
end
return deleted
