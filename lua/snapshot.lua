-- Flipper's snapshot script: the revision and the contents of every key in KEYS[2..], read atomically.
--
-- KEYS[1] is the revision counter; then flag keys: sets answer their members, rollout hashes
-- (`...:rollout`) their fields and values as a flat list. Read-only: what an operator's list, export and
-- plan are made from, so a plan names the revision it was made against.
local contents = {redis.call('GET', KEYS[1]) or '0'}
for i = 2, #KEYS do
  if string.sub(KEYS[i], -8) == ':rollout' then
    contents[i] = redis.call('HGETALL', KEYS[i])
  else
    contents[i] = redis.call('SMEMBERS', KEYS[i])
  end
end
return contents
