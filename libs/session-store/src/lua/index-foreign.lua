-- index-foreign: index a record that lives outside the user's slot (an express-session record; the
-- kind is kept for older records) under the user, unless a not-before stamp already covers it.
-- KEYS[1] user not-before   KEYS[2] user index
-- ARGV[1] kind ('t' or 'e')   ARGV[2] record id   ARGV[3] issuedAt ms or '' (then Redis time)   ARGV[4] expiresAt ms
-- Returns the issuedAt used; an error with code REVOKED when the record was issued before the user's
-- not-before, with code EXPIRED when expiresAt is already past.
--#include redis-now
--#include index-upkeep
local now = redisNow()
local iat = now
if ARGV[3] ~= '' then iat = tonumber(ARGV[3]) end
if iat < tonumber(redis.call('GET', KEYS[1]) or '0') then
  return redis.error_reply("REVOKED issued before the user's not-before")
end
if tonumber(ARGV[4]) <= now then return redis.error_reply('EXPIRED expiresAt is already past') end
local siat = string.format('%.0f', iat)
keepIndex(KEYS[2], ARGV[4], ARGV[1] .. ':' .. siat .. ':' .. ARGV[2], now)
return siat
