-- born-revoked (pasted into the scripts that include it): why a record about to be written (a session,
-- a cached token) is already covered by a not-before stamp, so a write racing a revocation loses.
-- iat: its issuedAt (ms)   userStampKey: the user's not-before (string)
-- outside: the highest not-before kept outside the user's slot that covers it (IdP session, groups),
--          read by the caller just before, or ''
-- idpStampsKey: the user's IdP-session not-befores (hash)   ih: its IdP-session hash, or ''
-- Returns the error reply's text (code REVOKED), or nil when no stamp covers it.
local function bornRevoked(iat, userStampKey, outside, idpStampsKey, ih)
  if iat < tonumber(redis.call('GET', userStampKey) or '0') then
    return "REVOKED issued before the user's not-before"
  end
  if outside ~= '' and iat < tonumber(outside) then
    return "REVOKED issued before a not-before kept outside the user's slot (IdP session, group)"
  end
  if ih ~= '' and iat < tonumber(redis.call('HGET', idpStampsKey, ih) or '0') then
    return "REVOKED issued before its IdP session's not-before"
  end
  return nil
end
