-- delete-entries: one bounded batch of revocation clean-up in a user's slot.
-- Deletes session records and their index entries issued before the given not-before, so a
-- session born after the revocation is never touched (invariant 2). The not-before comes from the
-- caller (the stamp it just wrote), not re-read here: were the stamp key gone, the batch must still
-- make progress.
-- KEYS[1] user index   KEYS[2..n] session records
-- ARGV[1] not-before ms   ARGV[2..n] the index members of KEYS[2..n] (format 's:<issuedAt>:<handle>')
-- Returns the number of sessions deleted.
local nb = tonumber(ARGV[1])
local deleted = 0
for i = 2, #KEYS do
  local member = ARGV[i]
  local iat = tonumber(string.match(member, '^%a:(%d+):'))
  if iat and iat < nb then
    deleted = deleted + redis.call('UNLINK', KEYS[i])
    redis.call('ZREM', KEYS[1], member)
  end
end
return deleted
