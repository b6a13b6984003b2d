-- get-session: read a session and refuse it if a not-before stamp covers it (design invariant 1).
-- One round trip; all keys share the user's hash tag.
-- KEYS[1] session record   KEYS[2] user not-before   KEYS[3] user IdP-session not-before (hash)
-- Returns {uid, iat, exp, idp, g, c} (missing fields as nil), or nil when missing, expired or revoked.
--#include session-revoked
local f = redis.call('HMGET', KEYS[1], 'uid', 'iat', 'exp', 'idp', 'ih', 'g', 'c')
if not f[1] then return nil end
if sessionRevoked(tonumber(f[2]), KEYS[2], KEYS[3], f[5]) then return nil end
return { f[1], f[2], f[3], f[4], f[6], f[7] }
