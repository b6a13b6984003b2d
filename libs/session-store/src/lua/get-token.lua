-- get-token: read a cached token and refuse it if a not-before stamp covers it, exactly as a session
-- is read (design invariant 1). One round trip; all keys share the user's hash tag.
-- KEYS[1] token record   KEYS[2] user not-before   KEYS[3] user IdP-session not-before (hash)
-- Returns the entry as one JSON text, [uid, iat, exp, claims] (claims as stored), 0 when a stamp
-- revoked it, nil when missing or expired. One bulk string, as get-session answers: the client parses
-- one reply and one JSON text.
--#include session-revoked
local f = redis.call('HMGET', KEYS[1], 'uid', 'iat', 'exp', 'ih', 'c')
if not f[1] then return nil end
if sessionRevoked(tonumber(f[2]), KEYS[2], KEYS[3], f[4]) then return 0 end
return '[' .. cjson.encode(f[1]) .. ',' .. f[2] .. ',' .. f[3] .. ',' .. (f[5] or '{}') .. ']'
