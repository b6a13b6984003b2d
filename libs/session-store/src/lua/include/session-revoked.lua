-- session-revoked (pasted into the scripts that include it): whether a not-before stamp covers a
-- session (design invariant 1): issued before its user's stamp, or before its IdP session's.
-- iat: the session's issuedAt (ms)   userStampKey: the user's not-before (string)
-- idpStampsKey: the user's IdP-session not-befores (hash)   ih: the session's IdP-session hash, or nil
-- Returns true when the session is revoked.
local function sessionRevoked(iat, userStampKey, idpStampsKey, ih)
  if iat < tonumber(redis.call('GET', userStampKey) or '0') then return true end
  if ih then
    local inb = redis.call('HGET', idpStampsKey, ih)
    if inb and iat < tonumber(inb) then return true end
  end
  return false
end
