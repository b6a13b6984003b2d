-- unlink-owned: delete a record kept outside the user's slot only if it still belongs to that user
-- and was issued at the given instant, so clean-up never removes a record someone else now owns.
-- KEYS[1] record (hash with fields 'tag' and 'iat')
-- ARGV[1] user tag   ARGV[2] issuedAt ms
-- Returns 1 when deleted, else 0.
local f = redis.call('HMGET', KEYS[1], 'tag', 'iat')
if f[1] == ARGV[1] and f[2] == ARGV[2] then return redis.call('UNLINK', KEYS[1]) end
return 0
