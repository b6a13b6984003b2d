-- delete-entries: one bounded batch of revocation clean-up in a user's slot.
-- Deletes session records and their index entries, but only entries issued before the
-- not-before in force, so a session born after the revocation is never touched (invariant 2).
-- KEYS[1] user not-before   KEYS[2] user index   KEYS[3..n] session records
-- ARGV[1..n-2] the index members of those records (format 's:<issuedAt>:<handle>')
-- Returns the number of sessions deleted.
local nb = tonumber(redis.call('GET', KEYS[1]) or '0')
local deleted = 0
for i = 3, #KEYS do
  local member = ARGV[i - 2]
  local iat = tonumber(string.match(member, '^%a:(%d+):'))
  if iat and iat < nb then
    deleted = deleted + redis.call('UNLINK', KEYS[i])
    redis.call('ZREM', KEYS[2], member)
  end
end
return deleted
