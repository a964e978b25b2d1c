-- Pop up to ARGV[2] job ids for a worker, high priority before medium before low, oldest
-- run_at first across the worker's queues; first move due jobs from each queue's delayed set
-- to its ready sets. One call, so a batch costs one round trip.
--
-- KEYS: for each queue, 4 keys: ready:0 (high), ready:1 (medium), ready:2 (low), delayed.
--   Ready sets score an id by run_at; delayed members are "<priority>|<id>" scored by run_at.
--   Every key of a queue carries the queue's hash tag, so a single-queue call is single-slot.
-- ARGV: now (epoch seconds), limit, how many due jobs to promote per queue at most.
-- Returns: { next_due or "", id, queue_index, priority, score, id, ... }
--   Scores come back as strings: Lua numbers would be truncated to integers.

local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local promote_limit = tonumber(ARGV[3])
local nqueues = #KEYS / 4
local next_due = nil

for q = 0, nqueues - 1 do
  local base = q * 4
  local delayed = KEYS[base + 4]
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'WITHSCORES', 'LIMIT', 0,
    promote_limit)
  for i = 1, #due, 2 do
    local member = due[i]
    local sep = string.find(member, '|', 1, true)
    local priority = tonumber(string.sub(member, 1, sep - 1))
    redis.call('ZADD', KEYS[base + priority + 1], 'NX', due[i + 1], string.sub(member, sep + 1))
    redis.call('ZREM', delayed, member)
  end
  local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
  if first[2] ~= nil then
    local score = tonumber(first[2])
    if next_due == nil or score < next_due then
      next_due = score
    end
  end
end

local out = { next_due == nil and '' or tostring(next_due) }
local left = limit

for priority = 0, 2 do
  if left <= 0 then
    break
  end
  if nqueues == 1 then
    local popped = redis.call('ZPOPMIN', KEYS[priority + 1], left)
    for i = 1, #popped, 2 do
      table.insert(out, popped[i])
      table.insert(out, 0)
      table.insert(out, priority)
      table.insert(out, popped[i + 1])
    end
    left = left - #popped / 2
  else
    -- Several queues: merge their oldest candidates so the batch is ordered as one queue.
    local candidates = {}
    for q = 0, nqueues - 1 do
      local items = redis.call('ZRANGE', KEYS[q * 4 + priority + 1], 0, left - 1, 'WITHSCORES')
      for i = 1, #items, 2 do
        table.insert(candidates, { tonumber(items[i + 1]), items[i], q, items[i + 1] })
      end
    end
    table.sort(candidates, function(a, b)
      if a[1] ~= b[1] then
        return a[1] < b[1]
      end
      return a[2] < b[2]
    end)
    local take = math.min(left, #candidates)
    for i = 1, take do
      local c = candidates[i]
      redis.call('ZREM', KEYS[c[3] * 4 + priority + 1], c[2])
      table.insert(out, c[2])
      table.insert(out, c[3])
      table.insert(out, priority)
      table.insert(out, c[4])
    end
    left = left - take
  end
end

return out
