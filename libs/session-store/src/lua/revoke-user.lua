-- revoke-user: raise the user's not-before stamp; the revocation is in force once this returns
-- (design invariant 1). Deleting the revoked sessions is clean-up. A user who holds few entries
-- (at most ARGV[3], the clean-up batch size) has them deleted here too, in the same call: one round
-- trip for the common case; cached tokens live in the user's slot too and go with them. A bigger
-- index, or one that lists revoked express sessions (their keys live in other slots), is left to the
-- caller's bounded batches (invariant 5), so this script stays bounded however many sessions the user
-- holds.
-- KEYS[1] user not-before   KEYS[2] user index
-- ARGV[1] cutoff ms (sessions issued at or before it go) or '' (then Redis time: "now")
-- ARGV[2] minimum lifetime of the stamp in ms
-- ARGV[3] most entries deleted here   ARGV[4] key prefix of the user's session records
-- ARGV[5] key prefix of the user's cached-token records
-- The session and token records are not in KEYS (they are known only once the index is read), but they share
-- KEYS[2]'s hash tag by construction, so they live in the same slot on the same node. (While that slot
-- migrates between cluster nodes the script can fail after the stamp; so can any multi-key script
-- then. The stamp is in force either way, and the caller's error leads to a retry.)
-- Returns {notBefore in force, Redis time, index size, sessions deleted here or -1 if none were,
-- tokens deleted here}.
-- The stamp only moves forward (invariant 2).
--#include raise-stamp
local nb, snb, now = raiseStamp(KEYS[1], KEYS[2], ARGV[1], ARGV[2])

local size = redis.call('ZCARD', KEYS[2])
local snow = string.format('%.0f', now)
if size > tonumber(ARGV[3]) then return { snb, snow, size, -1, 0 } end
local doomed = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local kind, iat, id = string.match(member, '^(%a):(%d+):(.+)$')
  if iat and tonumber(iat) < nb then
    if kind ~= 's' and kind ~= 't' then return { snb, snow, size, -1, 0 } end
    doomed[#doomed + 1] = { member, id, kind }
  end
end
local sessions, tokens = 0, 0
for _, entry in ipairs(doomed) do
  if entry[3] == 's' then
    sessions = sessions + redis.call('UNLINK', ARGV[4] .. entry[2])
  else
    tokens = tokens + redis.call('UNLINK', ARGV[5] .. entry[2])
  end
  redis.call('ZREM', KEYS[2], entry[1])
end
return { snb, snow, size, sessions, tokens }
