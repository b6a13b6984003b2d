-- index-foreign: index a record that lives outside the user's slot (a cached token, an
-- express-session record) under the user, unless a not-before stamp already covers it.
-- KEYS[1] user not-before   KEYS[2] user index
-- ARGV[1] kind ('t' or 'e')   ARGV[2] record id   ARGV[3] issuedAt ms or '' (then Redis time)   ARGV[4] expiresAt ms
-- Returns the issuedAt used; error 'REVOKED' when the record was issued before the user's not-before.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local iat = now
if ARGV[3] ~= '' then iat = tonumber(ARGV[3]) end
if iat < tonumber(redis.call('GET', KEYS[1]) or '0') then return redis.error_reply('REVOKED') end
if tonumber(ARGV[4]) <= now then return redis.error_reply('EXPIRED') end
local siat = string.format('%.0f', iat)
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1] .. ':' .. siat .. ':' .. ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], last[2])
return siat
