-- unlink-owned: delete a record kept outside the user's slot only if it still belongs to that user
-- and was issued at the given instant (and, when given, still belongs to that IdP session), so
-- clean-up never removes a record someone else, or another login, now owns.
-- KEYS[1] record (hash with fields 'tag', 'iat' and 'ih')
-- ARGV[1] user tag   ARGV[2] issuedAt ms   ARGV[3] (optional) IdP-session hash
-- Returns 1 when deleted, else 0.
local f = redis.call('HMGET', KEYS[1], 'tag', 'iat', 'ih')
if f[1] == ARGV[1] and f[2] == ARGV[2] and (ARGV[3] == nil or f[3] == ARGV[3]) then
  return redis.call('UNLINK', KEYS[1])
end
return 0
