-- stamp-index: stamp an IdP session's or a group's not-before, then (when asked) list the index's
-- members: the local sessions born of an IdP session ('<user tag>:<handle>'; a handful). A group's
-- members (the users holding a live session with it, any number) are not listed here: the caller
-- reads them afterwards in bounded batches (ZSCAN), so no script holds Redis for the whole group.
-- Stamp first: a login that registers in the index after this read is refused by create-session (its
-- caller read the stamp in index-member); one that registered before is in the list, and the
-- revocation of its sessions (or of its user, a job per group member) refuses it.
-- KEYS[1] index   KEYS[2] not-before
-- ARGV[1] cutoff ms or '' (then Redis time)   ARGV[2] minimum lifetime of the stamp in ms
-- ARGV[3] '1' to list the members, '' not to
-- Returns {notBefore in force, Redis time, member, member, ...}.
--#include raise-stamp
local _, snb, now = raiseStamp(KEYS[2], KEYS[1], ARGV[1], ARGV[2])
local out = { snb, string.format('%.0f', now) }
if ARGV[3] == '1' then
  for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do table.insert(out, m) end
end
return out
