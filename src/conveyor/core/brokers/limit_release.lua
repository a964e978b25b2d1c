-- Give concurrency slots back and learn how long slots are held (which paces deferrals).
-- KEYS: pairs of (slot set, its meta hash). ARGV: pairs of (member, seconds it was held),
--   aligned with KEYS.
-- Returns: how many slots were still held (a slot whose lease ran out was already pruned).

local released = 0
for i = 1, #KEYS, 2 do
  if redis.call('ZREM', KEYS[i], ARGV[i]) == 1 then
    released = released + 1
    local held = math.max(0.001, tonumber(ARGV[i + 1]))
    local average = tonumber(redis.call('HGET', KEYS[i + 1], 'a')) or held
    redis.call('HSET', KEYS[i + 1], 'a', tostring(average * 0.8 + held * 0.2))
    local ttl = redis.call('PTTL', KEYS[i + 1])
    if ttl < 3600000 then
      redis.call('PEXPIRE', KEYS[i + 1], 3600000)
    end
  end
end
return released
