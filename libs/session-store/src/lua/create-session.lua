-- create-session: write one session and its index entry atomically (design invariant 3).
-- All keys share the user's hash tag, so this holds on Redis Cluster.
-- KEYS[1] session record (hash)   KEYS[2] user not-before (string, epoch ms)
-- KEYS[3] user index (zset: member -> expiresAt)   KEYS[4] user IdP-session not-before (hash)
-- ARGV[1] user id   ARGV[2] ttl ms   ARGV[3] notAfter ms or ''   ARGV[4] issuedAt ms or '' (then Redis time)
-- ARGV[5] IdP session id or ''   ARGV[6] its hash or ''
-- ARGV[7] the highest not-before of the stamps kept outside this slot that cover the session (its IdP
--         session's, its groups'), read by the caller just before, or ''
-- ARGV[8] groups (JSON) or ''   ARGV[9] claims (JSON) or ''   ARGV[10] handle
-- Returns {issuedAt, expiresAt}; an error with code EXPIRED when notAfter leaves no lifetime, with
-- code REVOKED when the session would be born before a not-before stamp (a racing login loses).
--#include redis-now
--#include index-upkeep
--#include born-revoked
local now = redisNow()
local iat = now
if ARGV[4] ~= '' then iat = tonumber(ARGV[4]) end
local exp = now + tonumber(ARGV[2])
if ARGV[3] ~= '' then exp = math.min(exp, tonumber(ARGV[3])) end
if exp <= now then return redis.error_reply('EXPIRED notAfter leaves the session no lifetime') end

local ih = ARGV[6]
local revoked = bornRevoked(iat, KEYS[2], ARGV[7], KEYS[4], ih)
if revoked then return redis.error_reply(revoked) end

local siat = string.format('%.0f', iat)
local sexp = string.format('%.0f', exp)
local fields = { 'uid', ARGV[1], 'iat', siat, 'exp', sexp, 'ttl', ARGV[2] }
if ARGV[3] ~= '' then table.insert(fields, 'na'); table.insert(fields, ARGV[3]) end
if ih ~= '' then
  table.insert(fields, 'idp'); table.insert(fields, ARGV[5])
  table.insert(fields, 'ih'); table.insert(fields, ih)
end
if ARGV[8] ~= '' then table.insert(fields, 'g'); table.insert(fields, ARGV[8]) end
if ARGV[9] ~= '' then table.insert(fields, 'c'); table.insert(fields, ARGV[9]) end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIREAT', KEYS[1], sexp)

-- Index: add, trim what has expired, and let the key live as long as its latest member (invariant 4).
keepIndex(KEYS[3], sexp, 's:' .. siat .. ':' .. ARGV[10], now)
return { siat, sexp }
