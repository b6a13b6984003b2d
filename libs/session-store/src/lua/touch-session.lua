-- touch-session: slide a live session's expiry, never past its notAfter, and keep its index entry in step.
-- KEYS[1] session record   KEYS[2] user not-before   KEYS[3] user index   KEYS[4] user IdP-session not-before
-- ARGV[1] handle   ARGV[2] ttl ms or '' (then the ttl the session was created with)
-- Returns {expiresAt, idp hash or nil, groups JSON or nil, user id} or nil when missing, expired or revoked.
--#include redis-now
--#include index-upkeep
--#include session-revoked
local f = redis.call('HMGET', KEYS[1], 'iat', 'ttl', 'na', 'ih', 'g', 'uid')
if not f[1] then return nil end
if sessionRevoked(tonumber(f[1]), KEYS[2], KEYS[4], f[4]) then return nil end
local now = redisNow()
local ttl = tonumber(ARGV[2] ~= '' and ARGV[2] or f[2])
local exp = now + ttl
if f[3] then exp = math.min(exp, tonumber(f[3])) end
if exp <= now then return nil end
local sexp = string.format('%.0f', exp)
redis.call('HSET', KEYS[1], 'exp', sexp)
redis.call('PEXPIREAT', KEYS[1], sexp)
keepIndex(KEYS[3], sexp, 's:' .. f[1] .. ':' .. ARGV[1], now)
return { sexp, f[4] or false, f[5] or false, f[6] }
