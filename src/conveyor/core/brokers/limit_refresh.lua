-- Renew the leases of concurrency slots whose jobs still run (called with heartbeats).
-- Plain ZADD, not XX: after Redis lost its data, the next heartbeat puts running jobs' slots
-- back, so a limit is blind for one heartbeat interval at most.
-- KEYS: slot sets. ARGV: lease seconds, then the member for each key.

local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local lease = tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now + lease, ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], math.ceil(lease * 2000))
end
return #KEYS
