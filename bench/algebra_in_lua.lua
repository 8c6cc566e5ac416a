-- For comparison only (make bench): the set algebra and the sort inside Redis, as the seed did it.
-- Same KEYS as lua/evaluate.lua (positive keys, then negative keys); returns the enabled features, sorted.
local half = #KEYS / 2
local disabled = {}
for i = half + 1, #KEYS do
  for _, member in ipairs(redis.call('SMEMBERS', KEYS[i])) do
    disabled[member] = true
  end
end
local seen, enabled = {}, {}
for i = 1, half do
  for _, member in ipairs(redis.call('SMEMBERS', KEYS[i])) do
    if not disabled[member] and not seen[member] then
      seen[member] = true
      enabled[#enabled + 1] = member
    end
  end
end
table.sort(enabled)
return enabled
