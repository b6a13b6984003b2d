-- stamp-users: raise users' not-before stamps and nothing else (revoke-user without its clean-up): each
-- revocation is in force once this returns (design invariant 1), and a later revoke-user of the same
-- instant deletes what it covers. Several users in one call on a single Redis (their keys are in as
-- many slots as there are users, which a Cluster refuses: there, one user a call); the caller bounds
-- how many, so the script stays short. Each user's stamp is its own: one that fails (a key of the
-- wrong type) is false in the reply, and the others still go.
-- KEYS[2i-1] user i's not-before   KEYS[2i] user i's index
-- ARGV[1] minimum lifetime of the stamps in ms   ARGV[i+1] user i's cutoff ms
-- Returns each user's not-before in force (integer string), or false, in the order given.
--#include raise-stamp
local stamps = {}
for i = 1, #KEYS / 2 do
  local ok, _, snb = pcall(raiseStamp, KEYS[2 * i - 1], KEYS[2 * i], ARGV[i + 1], ARGV[1])
  stamps[i] = ok and snb or false
end
return stamps
