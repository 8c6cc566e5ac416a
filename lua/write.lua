-- Flipper's write script: every change to the flags, applied, counted and audited in one atomic step.
--
-- KEYS[1] the revision counter, KEYS[2] the revision's stamp, KEYS[3] the audit stream, KEYS[4] the registry
-- (`features`, the set of every feature this path has given a membership), KEYS[5..] the flag keys the
-- change touches: sets (`...:positive`, `...:negative`) and hashes written field by field (`...:rollout`,
-- `...:values`, `global:variants`, `global:rules`). Every key is declared, so the script runs in a cluster (all keys share
-- the prefix's hash tag) and on ElastiCache Serverless.
-- ARGV[1] the revision the change was planned against ('' for any), ARGV[2] the stamp this change sets
-- (random, chosen by the caller: see lua/evaluate.lua), ARGV[3] the audit stream's MAXLEN, ARGV[4] the key
-- prefix's length in bytes (audit entries name keys without it), ARGV[5] n, then n pairs of audit fields
-- (actor, operation, ...), then m and m features to register with the change if the registry does not exist
-- yet (a store written around Flipper: its flags stay known), then one triple per membership: KEYS index,
-- member, wanted value.
-- A value is '1' for a set member, a percentage for a rollout field, canonical JSON for a values or variants
-- field, '' for absent. A triple may name the registry itself (KEYS[4]): `delete` takes a feature out of it.
--
-- Answers {'ok', revision, entry id, changes as JSON}, {'unchanged', revision}, {'stale', revision} or
-- {'wrongtype', key}. Nothing is written unless every check passes, and nothing at all when no
-- membership changes: an empty change leaves the revision and the audit alone.
local revision = redis.call('GET', KEYS[1]) or '0'
-- Only what INCR will take, and exact as a Lua number: anything else (written by hand) refuses the change
-- here, before any write, rather than failing at the INCR below after the memberships were written.
if not string.match(revision, '^%d+$') or #revision > 15 then
  return {'wrongtype', KEYS[1]}
end
revision = tonumber(revision)
local function text(number)
  return string.format('%d', number)  -- tostring would write 1e+14
end
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= revision then
  return {'stale', text(revision)}
end

-- Refuse before the first write: Redis does not roll a script back when a command in it fails.
-- A key's kind is its last word, as model.is_hash_key reads it (no identifier can make a key end in another).
local hashes = {rollout = true, values = true, variants = true, rules = true}
local function is_hash(key)
  return hashes[string.match(key, ':(%a+)$') or ''] == true
end
for i = 4, #KEYS do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind ~= 'none' and kind ~= (is_hash(KEYS[i]) and 'hash' or 'set') then
    return {'wrongtype', KEYS[i]}
  end
end
local audit_kind = redis.call('TYPE', KEYS[3])['ok']
if audit_kind ~= 'none' and audit_kind ~= 'stream' then
  return {'wrongtype', KEYS[3]}
end

local prefix_length = tonumber(ARGV[4])
local known = 6 + 2 * tonumber(ARGV[5])  -- m, then the features known before the registry was kept
local first = known + 1 + tonumber(ARGV[known])
-- A store that kept no registry knows every flag it names: they are registered first, implied (not changes of
-- their own), so that a triple taking one out of the registry (delete, a pruning apply) is a change as planned.
local registry_kept = redis.call('EXISTS', KEYS[4]) == 1
if not registry_kept then
  for i = known + 1, first - 1 do
    redis.call('SADD', KEYS[4], ARGV[i])
  end
end
local changes = {}
for i = first, #ARGV, 3 do
  local key, member, wanted = KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2]
  local before
  if is_hash(key) then
    before = redis.call('HGET', key, member) or ''
    if before ~= wanted then
      if wanted == '' then redis.call('HDEL', key, member) else redis.call('HSET', key, member, wanted) end
    end
  else
    before = redis.call('SISMEMBER', key, member) == 1 and '1' or ''
    if before ~= wanted then
      if wanted == '' then redis.call('SREM', key, member) else redis.call('SADD', key, member) end
    end
  end
  if before ~= wanted then
    changes[#changes + 1] = {string.sub(key, prefix_length + 1), member, before, wanted}
    -- Known from now on (what makes a flag found, not FLAG_NOT_FOUND): implied by the membership given, not a
    -- change of its own. The registry's own triple (delete's) says for itself what it wants.
    if wanted ~= '' and key ~= KEYS[4] then
      redis.call('SADD', KEYS[4], member)
    end
  end
end
if #changes == 0 then
  if not registry_kept then
    redis.call('DEL', KEYS[4])  -- as it was: an empty change writes nothing at all
  end
  return {'unchanged', text(revision)}
end

revision = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], ARGV[2])
local now = redis.call('TIME')
local encoded = cjson.encode(changes)
local entry = {'MAXLEN', '~', ARGV[3], '*', 'revision', text(revision), 'time', now[1] .. '.' .. string.format('%06d', now[2])}
for i = 6, known - 1 do
  entry[#entry + 1] = ARGV[i]
end
entry[#entry + 1] = 'changes'
entry[#entry + 1] = encoded
local id = redis.call('XADD', KEYS[3], unpack(entry))
return {'ok', text(revision), id, encoded}
