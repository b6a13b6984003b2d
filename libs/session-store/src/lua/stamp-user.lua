-- stamp-user: raise the user's not-before stamp and nothing else (revoke-user without its clean-up):
-- the revocation is in force once this returns (design invariant 1), and a later revoke-user of the
-- same instant deletes what it covers. Touches only the stamp and the index it is kept as long as.
-- KEYS[1] user not-before   KEYS[2] user index
-- ARGV[1] cutoff ms (sessions issued at or before it are refused)   ARGV[2] minimum lifetime of the stamp in ms
-- Returns the not-before in force (integer string). The stamp only moves forward (invariant 2).
--#include raise-stamp
local _, snb = raiseStamp(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
return snb
