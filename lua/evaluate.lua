-- Flipper's evaluation script: the contents of every key in KEYS, in KEYS order.
--
-- One atomic, read-only snapshot of a caller's flags in one round trip: the members of each set
-- (`...:positive`, `...:negative`) and the fields and values of each rollout hash (`...:rollout`,
-- HGETALL's flat list). Keys are read by their suffix alone, whichever of the caller's keys are asked
-- for. The rule (union of positives and rollouts minus union of negatives, buckets, sorting) runs in
-- the caller, not here: Redis is single-threaded and shared by every function instance, and measured
-- on the large data set this script runs at about 1.1x the rate of a native SUNION of the positive
-- sets, while doing the algebra and sorting in Lua runs at about 0.4x (docs/performance.md).
-- Read commands only and no temporary keys, so it can run on replicas.
local contents = {}
for i, key in ipairs(KEYS) do
  if string.sub(key, -8) == ':rollout' then
    contents[i] = redis.call('HGETALL', key)
  else
    contents[i] = redis.call('SMEMBERS', key)
  end
end
return contents
