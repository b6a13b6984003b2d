-- get-token: read a cached token and refuse it if a not-before stamp covers it, exactly as a session
-- is read (design invariant 1). One round trip; all keys share the user's hash tag.
-- KEYS[1] token record   KEYS[2] user not-before   KEYS[3] user IdP-session not-before (hash)
-- Returns the entry as one JSON text, [uid, iat, exp, claims] (claims as stored), 0 when a stamp
-- revoked it, nil when missing or expired. One bulk string, as get-session answers: the client parses
-- one reply and one JSON text. cache-token stores that text ready ('j'), so this only checks and answers.
--#include session-revoked
local f = redis.call('HMGET', KEYS[1], 'iat', 'ih', 'j')
if not f[1] then return nil end
if sessionRevoked(tonumber(f[1]), KEYS[2], KEYS[3], f[2]) then return 0 end
if f[3] then return f[3] end
-- A record cached before 'j' was kept (its parts in fields of their own): the text is built here.
local o = redis.call('HMGET', KEYS[1], 'uid', 'exp', 'c')
if not o[1] then return nil end
return '[' .. cjson.encode(o[1]) .. ',' .. f[1] .. ',' .. o[2] .. ',' .. (o[3] or '{}') .. ']'
