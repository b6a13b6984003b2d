-- get-session: read a session and refuse it if a not-before stamp covers it (design invariant 1).
-- One round trip; all keys share the user's hash tag.
-- KEYS[1] session record   KEYS[2] user not-before   KEYS[3] user IdP-session not-before (hash)
-- Returns the session as one JSON text, [uid, iat, exp, idp or null, groups, claims], or nil when
-- missing, expired or revoked. One bulk string rather than an array of fields: the client parses one
-- reply and one JSON text (groups and claims are stored as JSON and go in as they are), which is what
-- brings the read close to a plain GET's cost.
--#include session-revoked
local f = redis.call('HMGET', KEYS[1], 'uid', 'iat', 'exp', 'idp', 'ih', 'g', 'c')
if not f[1] then return nil end
if sessionRevoked(tonumber(f[2]), KEYS[2], KEYS[3], f[5]) then return nil end
return '[' .. cjson.encode(f[1]) .. ',' .. f[2] .. ',' .. f[3] .. ',' ..
  (f[4] and cjson.encode(f[4]) or 'null') .. ',' .. (f[6] or '[]') .. ',' .. (f[7] or '{}') .. ']'
