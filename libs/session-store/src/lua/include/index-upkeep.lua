-- index-upkeep (pasted into the scripts that include it): keep a sorted-set index (member -> expiresAt
-- ms) in shape after writing to it (invariant 4). Adds the member with its score (zaddFlag: nil, or a
-- ZADD flag such as 'GT' so the score only grows), trims the members expired at `now` (ms) and lets the
-- key live as long as its latest member.
local function keepIndex(indexKey, score, member, now, zaddFlag)
  if zaddFlag then
    redis.call('ZADD', indexKey, zaddFlag, score, member)
  else
    redis.call('ZADD', indexKey, score, member)
  end
  redis.call('ZREMRANGEBYSCORE', indexKey, '-inf', now)
  local last = redis.call('ZRANGE', indexKey, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', indexKey, last[2])
end
