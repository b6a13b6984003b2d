-- raise-stamp (pasted into the scripts that include it): raise a not-before stamp.
-- The stamp becomes cutoff + 1 (cutoffArg in ms, or Redis time when ''), never lower than it was
-- (invariant 2). It is kept at least as long as the index's latest entry, its own current lifetime and
-- the retention window (retentionArg ms): it must outlive every session it refuses. The index's
-- expired entries are trimmed on the way.
-- Returns the stamp in force (number, and as an integer string) and Redis time in ms.
--#include redis-now
local function raiseStamp(stampKey, indexKey, cutoffArg, retentionArg)
  local now = redisNow()
  local cutoff = now
  if cutoffArg ~= '' then cutoff = tonumber(cutoffArg) end
  local nb = math.max(tonumber(redis.call('GET', stampKey) or '0'), cutoff + 1)
  local snb = string.format('%.0f', nb)
  redis.call('ZREMRANGEBYSCORE', indexKey, '-inf', now)
  local keep = now + tonumber(retentionArg)
  local last = redis.call('ZRANGE', indexKey, -1, -1, 'WITHSCORES')
  if last[2] then keep = math.max(keep, tonumber(last[2])) end
  local pttl = redis.call('PTTL', stampKey)
  if pttl > 0 then keep = math.max(keep, now + pttl) end
  redis.call('SET', stampKey, snb, 'PXAT', string.format('%.0f', keep))
  return nb, snb, now
end
