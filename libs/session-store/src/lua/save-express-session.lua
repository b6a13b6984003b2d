-- save-express-session: write an express-session record, keeping the instant its user logged in.
-- A save of a session read earlier must not bring it back once it was deleted (logout, revocation
-- clean-up, admin revoke): with an expected issuedAt, the record must still be that one, checked and
-- written atomically here. Only a login (no expected issuedAt) may issue a record.
-- KEYS[1] record (hash: uid, tag, iat, data, ix, ih)
-- ARGV[1] user id or ''   ARGV[2] user tag or ''   ARGV[3] session JSON   ARGV[4] expiresAt ms
-- ARGV[5] expected issuedAt of the record it was read from, or ''   ARGV[6] '1' to only extend an existing record
-- ARGV[7] its IdP session's hash, or ''
-- ARGV[8] the IdP session's not-before kept outside the user's slot (read by the caller just before), or ''
-- Returns {issuedAt, 1 when the user index must be (re)written else 0, previous tag, previous issuedAt,
-- previous IdP-session hash}, or {'', 0, '', '', ''} when nothing was written (the record is gone or is
-- no longer the one read). A record its IdP session's not-before covers is deleted instead:
-- {'', 0, previous tag, previous issuedAt, previous hash}, so the caller can drop its index entry.
--#include redis-now
local now = redisNow()
local cur = redis.call('HMGET', KEYS[1], 'tag', 'iat', 'ix', 'ih')
local curTag, curIat, curIh = cur[1] or '', cur[2] or '', cur[4] or ''
if ARGV[6] == '1' and curIat == '' then return { '', 0, '', '', '' } end
if ARGV[5] ~= '' and (curIat ~= ARGV[5] or curTag ~= ARGV[2]) then return { '', 0, '', '', '' } end
local iat = string.format('%.0f', now)
if curIat ~= '' and curTag == ARGV[2] then iat = curIat end
if ARGV[8] ~= '' and tonumber(iat) < tonumber(ARGV[8]) then
  redis.call('UNLINK', KEYS[1])
  return { '', 0, curTag, curIat, curIh }
end
local reindex = 0
if ARGV[2] ~= '' and (curTag ~= ARGV[2] or tonumber(cur[3] or '0') < tonumber(ARGV[4])) then reindex = 1 end
redis.call('HSET', KEYS[1], 'uid', ARGV[1], 'tag', ARGV[2], 'iat', iat, 'data', ARGV[3])
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'ih', ARGV[7]) elseif curIh ~= '' then redis.call('HDEL', KEYS[1], 'ih') end
if reindex == 1 then redis.call('HSET', KEYS[1], 'ix', ARGV[4]) end
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return { iat, reindex, curTag, curIat, curIh }
