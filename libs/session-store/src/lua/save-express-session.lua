-- save-express-session: write an express-session record, keeping the instant its user logged in.
-- KEYS[1] record (hash: uid, tag, iat, data)
-- ARGV[1] user id or ''   ARGV[2] user tag or ''   ARGV[3] session JSON   ARGV[4] expiresAt ms
-- Returns {issuedAt, 1 when the user index must be (re)written else 0}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HMGET', KEYS[1], 'tag', 'iat', 'ix')
local iat = string.format('%.0f', now)
if cur[1] and cur[1] == ARGV[2] and cur[2] then iat = cur[2] end
local reindex = 0
if ARGV[2] ~= '' and (cur[1] ~= ARGV[2] or tonumber(cur[3] or '0') < tonumber(ARGV[4])) then reindex = 1 end
redis.call('HSET', KEYS[1], 'uid', ARGV[1], 'tag', ARGV[2], 'iat', iat, 'data', ARGV[3])
if reindex == 1 then redis.call('HSET', KEYS[1], 'ix', ARGV[4]) end
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return { iat, reindex }
