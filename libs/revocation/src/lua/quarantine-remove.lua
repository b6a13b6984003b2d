-- quarantine-remove: remove one entry and give its bytes back to the count.
-- KEYS[1] the quarantine (stream)   KEYS[2] the bytes of raw text it holds (integer)
-- ARGV[1] the entry's id
-- Returns 1 when an entry was removed, 0 when there was none.
--#include raw-size
local entry = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])[1]
if not entry then return 0 end
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('DECRBY', KEYS[2], rawSize(entry[2]))
return 1
