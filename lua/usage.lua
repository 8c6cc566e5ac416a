-- Flipper's usage flush: one instance's evaluation counts since its last flush, added in one atomic call.
--
-- KEYS[1] the counts hash (feature -> evaluations), KEYS[2] the last-seen hash (feature -> Unix time in
-- milliseconds), KEYS[3] the time recording began (a string, set once), KEYS[4] the flags' registry (read
-- only). All under the flags' prefix, so in a cluster they share the flags' slot. Not the write path's: no
-- revision, no audit entry.
-- ARGV[1] the most fields the hashes may hold, ARGV[2] the flush's time in milliseconds, then one triple
-- per feature: name, evaluations, last seen (milliseconds).
--
-- A feature not yet counted is added only while the counts hash holds fewer than ARGV[1] fields, or when it
-- is a registered flag: callers choose the names they ask about, so the store stays bounded whatever they
-- send, and names that are no flag cannot take the flags' places (a flag never counted would look stale).
-- The registry is the operators', bounded by them. Last seen only moves
-- forward, whichever instance flushes first. Answers how many features were left out at the bound.
local limit = tonumber(ARGV[1])
-- A registry of another type (written by hand) is none here: SISMEMBER on it would fail the script halfway.
local registry = redis.call('TYPE', KEYS[4])['ok'] == 'set'
local size = redis.call('HLEN', KEYS[1])
local dropped = 0
redis.call('SET', KEYS[3], ARGV[2], 'NX')
for i = 3, #ARGV, 3 do
  local feature, seen = ARGV[i], tonumber(ARGV[i + 2])
  local known = redis.call('HEXISTS', KEYS[1], feature) == 1
  if known or size < limit or (registry and redis.call('SISMEMBER', KEYS[4], feature) == 1) then
    if not known then
      size = size + 1
    end
    redis.call('HINCRBY', KEYS[1], feature, ARGV[i + 1])
    local before = tonumber(redis.call('HGET', KEYS[2], feature) or '')
    if before == nil or seen > before then
      redis.call('HSET', KEYS[2], feature, ARGV[i + 2])
    end
  else
    dropped = dropped + 1
  end
end
return dropped
