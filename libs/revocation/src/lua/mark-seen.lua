-- mark-seen: the dedup marks of a batch of commands, as one command instead of a SET each (a command
-- each cost the client more than Redis's work: building, encoding and parsing a hundred of them for a
-- 100-event delivery). The marks share the queue's hash tag, so they are one slot on a Cluster.
-- KEYS[i] command i's dedup mark
-- ARGV[1] the dedup window (ms)   ARGV[2] 'nx' to set a mark only where none is, '' to set them all
-- Returns, per mark in order, 1 where it was set and 0 where one was there already.
local nx = ARGV[2] == 'nx'
local out = {}
for i, key in ipairs(KEYS) do
  if nx then
    out[i] = redis.call('SET', key, '1', 'PX', ARGV[1], 'NX') and 1 or 0
  else
    redis.call('SET', key, '1', 'PX', ARGV[1])
    out[i] = 1
  end
end
return out
