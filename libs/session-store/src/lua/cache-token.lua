-- cache-token: write a verified token's record and its index entry in the user's slot, atomically,
-- unless a not-before stamp already covers it (a token issued before its user's revocation is refused
-- even when it verifies). Mirrors create-session.
-- KEYS[1] token record (hash: iat, ih when known, j)   KEYS[2] user not-before   KEYS[3] user index   KEYS[4] user IdP-session not-before (hash)
-- ARGV[1] user id   ARGV[2] issuedAt ms or '' (then Redis time)   ARGV[3] the token's expiry ms
-- ARGV[4] keep the record until (ms, at most ARGV[3])   ARGV[5] IdP-session hash or ''
-- ARGV[6] the highest not-before kept outside this slot that covers the token (IdP session, groups) or ''
-- ARGV[7] claims (JSON) or ''   ARGV[8] the token's hash
-- Returns the issuedAt used; an error with code REVOKED or EXPIRED.
--#include redis-now
--#include index-upkeep
--#include born-revoked
local now = redisNow()
local iat = now
if ARGV[2] ~= '' then iat = tonumber(ARGV[2]) end
local keep = tonumber(ARGV[4])
if keep <= now then return redis.error_reply('EXPIRED the token expires before it could be cached') end
local ih = ARGV[5]
local revoked = bornRevoked(iat, KEYS[2], ARGV[6], KEYS[4], ih)
if revoked then return redis.error_reply(revoked) end
local siat = string.format('%.0f', iat)
local skeep = string.format('%.0f', keep)
-- The record: what a read checks (iat, ih) and, in 'j', what a read answers, built once here (a cached
-- token never changes): [uid, iat, exp, claims] as one JSON text (claims as given).
local j = '[' .. cjson.encode(ARGV[1]) .. ',' .. siat .. ',' .. ARGV[3] .. ',' ..
  (ARGV[7] ~= '' and ARGV[7] or '{}') .. ']'
local fields = { 'iat', siat, 'j', j }
if ih ~= '' then table.insert(fields, 'ih'); table.insert(fields, ih) end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIREAT', KEYS[1], skeep)
keepIndex(KEYS[3], skeep, 't:' .. siat .. ':' .. ARGV[8], now)
return siat
