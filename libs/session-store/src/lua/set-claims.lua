-- set-claims: replace a live session's claims (e.g. after the edge refreshed its tokens), unless the
-- session is gone or a not-before stamp now refuses it: a refresh never brings a revoked session back.
-- KEYS[1] session record   KEYS[2] user not-before   KEYS[3] user IdP-session not-before (hash)
-- ARGV[1] claims (JSON, or '' for none)
-- Returns 1 when replaced, 0 when there is no live session.
--#include session-revoked
local f = redis.call('HMGET', KEYS[1], 'uid', 'iat', 'ih')
if not f[1] then return 0 end
if sessionRevoked(tonumber(f[2]), KEYS[2], KEYS[3], f[3]) then return 0 end
if ARGV[1] == '' then redis.call('HDEL', KEYS[1], 'c') else redis.call('HSET', KEYS[1], 'c', ARGV[1]) end
return 1
