-- stamp-index: stamp an IdP session's or a group's not-before, then list the index's members: the
-- local sessions born of the IdP session ('<user tag>:<handle>'; a handful), or the users holding a
-- live session with the group.
-- Stamp first: a login that registers in the index after this read is refused by create-session (its
-- caller read the stamp in index-member); one that registered before is in the list, and the
-- revocation of its sessions (or of its user, a job per group member) refuses it.
-- KEYS[1] index   KEYS[2] not-before
-- ARGV[1] cutoff ms or '' (then Redis time)   ARGV[2] minimum lifetime of the stamp in ms
-- Returns {notBefore in force, Redis time, member, member, ...}.
--#include raise-stamp
local _, snb, now = raiseStamp(KEYS[2], KEYS[1], ARGV[1], ARGV[2])
local out = { snb, string.format('%.0f', now) }
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do table.insert(out, m) end
return out
