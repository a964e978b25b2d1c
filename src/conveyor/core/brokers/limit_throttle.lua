-- A provider answered 429 to a job of this type: halve the type's rate (once per debounce
-- interval), down to a floor; it doubles back every `recovery` seconds (core/admission.py,
-- `throttle_factor`).
-- KEYS[1]: the type's factor hash ('f': factor when last halved, 't': when).
-- ARGV: recovery seconds, debounce seconds, floor.
-- Returns: the factor now, as text.

local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local recovery = math.max(tonumber(ARGV[1]), 0.001)
local debounce, floor = tonumber(ARGV[2]), tonumber(ARGV[3])
local value = redis.call('HMGET', KEYS[1], 'f', 't')
local f, at = tonumber(value[1]) or 1, tonumber(value[2]) or 0
if now - at < debounce then
  return tostring(f)
end
local current = math.min(1, f * 2 ^ math.min(64, math.max(0, now - at) / recovery))
f = math.max(floor, current / 2)
redis.call('HSET', KEYS[1], 'f', tostring(f), 't', tostring(now))
-- From the floor back to 1 takes log2(1 / floor) recoveries; keep the key that long.
redis.call('PEXPIRE', KEYS[1], math.ceil(recovery * (math.log(1 / floor) / math.log(2) + 1) * 1000))
return tostring(f)
