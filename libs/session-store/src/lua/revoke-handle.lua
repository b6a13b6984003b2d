-- revoke-handle: delete one session and its index entry (logout, or an admin revoking one session).
-- KEYS[1] session record   KEYS[2] user index
-- ARGV[1] handle
-- Returns 1 when a session was deleted, 0 when there was none.
local iat = redis.call('HGET', KEYS[1], 'iat')
if not iat then return 0 end
redis.call('UNLINK', KEYS[1])
redis.call('ZREM', KEYS[2], 's:' .. iat .. ':' .. ARGV[1])
return 1
