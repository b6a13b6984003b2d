-- quarantine-add: add an entry to the quarantine and trim the oldest until both bounds hold; the
-- newest entry is always kept, however big.
-- KEYS[1] the quarantine (stream)   KEYS[2] the bytes of raw text it holds (integer)
-- ARGV[1] max entries   ARGV[2] max bytes   ARGV[3] source   ARGV[4] reason   ARGV[5] receivedAt ms
-- ARGV[6] event id or ''   ARGV[7] raw text   ARGV[8] how many events it holds
-- Returns the new entry's id.
-- The count starts afresh whenever the stream is empty or trimmed down to the newest entry, so one
-- that drifted (entries deleted by hand, or kept from before the count existed) comes right again.
--#include raw-size
if redis.call('XLEN', KEYS[1]) == 0 then redis.call('SET', KEYS[2], 0) end
local raw = ARGV[7]
local id = redis.call('XADD', KEYS[1], '*', 'source', ARGV[3], 'reason', ARGV[4], 'receivedAt', ARGV[5],
  'eventId', ARGV[6], 'events', ARGV[8], 'raw', raw)
local bytes = redis.call('INCRBY', KEYS[2], #raw)
local maxEntries, maxBytes = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = redis.call('XLEN', KEYS[1])
while n > 1 and (n > maxEntries or bytes > maxBytes) do
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  redis.call('XDEL', KEYS[1], oldest[1])
  bytes = redis.call('DECRBY', KEYS[2], rawSize(oldest[2]))
  n = n - 1
  if n == 1 then
    bytes = #raw
    redis.call('SET', KEYS[2], bytes)
  end
end
return id
