-- Flipper's evaluation script: the store's revision, and the contents of the caller's keys it needs.
--
-- KEYS[1] is `<prefix>revision` (a string integer every write through Flipper INCRs; absent reads as 0),
-- KEYS[2] `<prefix>revision:stamp` (a random token each write through Flipper sets, never the same twice);
-- KEYS[3..] are the caller's keys. The revision answered is the count, then `:` and the stamp once a write
-- has set one: a count can come back (a flush, a lagging replica promoted, a hand-written SET) and be
-- written up to a value a cache knows, but Flipper's write path never writes the same stamp twice, so it
-- cannot make another state answer as the revision a cache knows. ARGV[1] is the revision the caller's cache knows ('' for none) and
-- ARGV[2] holds, per caller key, '1' if the cache holds that key at that revision, else '0'.
-- When the revision is the one known and every key is held, the answer is the revision alone (a few
-- bytes). Otherwise it is {revision, contents...}: held keys as nil, the others read; when the revision
-- changed, every key is read, for any key held may be stale.
--
-- One atomic, read-only snapshot in one round trip: the members of each set (`...:positive`,
-- `...:negative`, the registry `features`) and the fields and values of each hash (`...:rollout`,
-- `...:values`, `...:variants`, `global:rules`: HGETALL's flat list), each key read by its last `:`-part alone (model.HASH_KINDS). The rule (union of positives and rollouts minus union of negatives,
-- buckets, sorting) runs in the caller, not here: Redis is single-threaded and shared by every function
-- instance, and measured on the large data set reading the members runs at about 1.1x the rate of a
-- native SUNION of the positive sets, while doing the algebra and sorting in Lua runs at about 0.4x
-- (docs/performance.md). Read commands only and no temporary keys, so it can run on replicas.
local revision = redis.call('GET', KEYS[1]) or '0'
-- MGET, not GET: a stamp key of another type (written by hand) reads as none, as in a store no write through
-- Flipper has stamped yet, rather than failing every evaluation.
local stamp = redis.call('MGET', KEYS[2])[1]
if stamp then
  revision = revision .. ':' .. stamp
end
local current = ARGV[1] ~= '' and revision == ARGV[1]
if current and not string.find(ARGV[2], '0', 1, true) then
  return revision  -- the steady state, answered without looking at the keys
end
local reply = {revision}
local hashes = {rollout = true, values = true, variants = true, rules = true}
for i = 3, #KEYS do
  if current and string.sub(ARGV[2], i - 2, i - 2) == '1' then
    reply[i - 1] = false
  elseif hashes[string.match(KEYS[i], ':([^:]*)$') or ''] then
    reply[i - 1] = redis.call('HGETALL', KEYS[i])
  else
    reply[i - 1] = redis.call('SMEMBERS', KEYS[i])
  end
end
return reply
