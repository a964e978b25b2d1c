-- Admit a batch of claimed jobs under rate and concurrency limits, in one call. This mirrors
-- `decide` in core/admission.py line for line; read that one first.
--
-- KEYS: every key the batch's limits touch, each once: rate windows (hashes of starts per
--   slice, plus the deferral horizon 'h'), factor hashes ('f', 't': a type slowed by 429s),
--   slot sets (job members scored by lease expiry) and their meta hashes ('h', 'a': the
--   deferral horizon and the average hold). All share the {limits} hash tag.
-- ARGV: lease seconds, throttle recovery seconds, number of jobs, then per job:
--   member, number of rate checks, number of slot checks,
--   per rate check: window key index, limit, period seconds, factor key index (0: none),
--   per slot check: slot set key index, meta key index, limit.
-- Returns: per job the seconds to defer it, as text; "0" means it starts (slots taken).
-- The clock is Redis's own, so workers on hosts whose clocks disagree share one window.

local SLICES = 10
local MIN_FACTOR = 1 / 16
local MIN_WAIT = 0.01
local DEFAULT_HOLD = 1.0
local MAX_SPAN = math.ceil(SLICES / MIN_FACTOR)

local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local lease = tonumber(ARGV[1])
local recovery = math.max(tonumber(ARGV[2]), 0.001)
local njobs = tonumber(ARGV[3])

local windows, factors, slots = {}, {}, {}

local function factor_of(index)
  if index == 0 then
    return 1
  end
  if factors[index] == nil then
    local value = redis.call('HMGET', KEYS[index], 'f', 't')
    local f = 1
    if value[1] then
      local doublings = math.min(64, math.max(0, now - tonumber(value[2])) / recovery)
      f = math.min(1, tonumber(value[1]) * 2 ^ doublings)
    end
    factors[index] = f
  end
  return factors[index]
end

local function window_of(index, period, factor)
  local w = windows[index]
  if w then
    return w
  end
  local size = period / SLICES
  local cur = math.floor(now / size)
  -- A slowed type keeps its limit over a longer window.
  local span = math.ceil(SLICES / factor - 1e-9)
  w = { counts = {}, horizon = 0, size = size, cur = cur, span = span, used = 0, taken = 0 }
  local raw = redis.call('HGETALL', KEYS[index])
  for i = 1, #raw, 2 do
    if raw[i] == 'h' then
      w.horizon = tonumber(raw[i + 1])
    else
      local slice = tonumber(raw[i])
      if slice <= cur - MAX_SPAN then
        redis.call('HDEL', KEYS[index], raw[i])
      else
        local count = tonumber(raw[i + 1])
        w.counts[slice] = count
        if slice >= cur - span then
          w.used = w.used + count
        end
      end
    end
  end
  windows[index] = w
  return w
end

-- When enough slots come back for one more start: a slice's starts return once the whole
-- slice has left the window.
local function back_at(w, limit)
  local needed, freed = w.used - limit + 1, 0
  for slice = w.cur - w.span, w.cur do
    freed = freed + (w.counts[slice] or 0)
    if freed >= needed then
      return (slice + w.span + 1) * w.size
    end
  end
  return (w.cur + w.span + 1) * w.size
end

local function slots_of(index, meta)
  local s = slots[index]
  if s then
    return s
  end
  -- Slots whose lease ran out belong to workers that died: they free themselves here.
  redis.call('ZREMRANGEBYSCORE', KEYS[index], '-inf', now)
  local value = redis.call('HMGET', KEYS[meta], 'h', 'a')
  s = {
    count = redis.call('ZCARD', KEYS[index]),
    horizon = tonumber(value[1]) or 0,
    hold = tonumber(value[2]) or DEFAULT_HOLD,
    meta = meta,
    taken = 0,
  }
  slots[index] = s
  return s
end

local out = {}
local pos = 4
for _ = 1, njobs do
  local member = ARGV[pos]
  local nrates, nslots = tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2])
  pos = pos + 3
  local rates, sets, blocked = {}, {}, {}
  for _ = 1, nrates do
    local index, limit = tonumber(ARGV[pos]), tonumber(ARGV[pos + 1])
    local period, factor = tonumber(ARGV[pos + 2]), factor_of(tonumber(ARGV[pos + 3]))
    pos = pos + 4
    local w = window_of(index, period, factor)
    table.insert(rates, w)
    if w.used >= limit then
      table.insert(blocked, { w, back_at(w, limit), period / (factor * limit) })
    end
  end
  for _ = 1, nslots do
    local index, meta, limit = tonumber(ARGV[pos]), tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2])
    pos = pos + 3
    local s = slots_of(index, meta)
    table.insert(sets, index)
    if s.count >= limit then
      local spacing = s.hold / limit
      table.insert(blocked, { s, now + spacing, spacing })
    end
  end
  if #blocked == 0 then
    for _, w in ipairs(rates) do
      w.counts[w.cur] = (w.counts[w.cur] or 0) + 1
      w.used = w.used + 1
      w.taken = w.taken + 1
    end
    for _, index in ipairs(sets) do
      slots[index].count = slots[index].count + 1
      slots[index].taken = slots[index].taken + 1
      redis.call('ZADD', KEYS[index], now + lease, member)
    end
    table.insert(out, '0')
  else
    -- Each limit that held the job back moves its horizon on by one slot's worth of time,
    -- so a backlog comes back at the pace the limit lets through.
    local comeback = now
    for _, b in ipairs(blocked) do
      local at = math.max(b[2], b[1].horizon)
      b[1].horizon = at + b[3]
      b[1].moved = true
      if at > comeback then
        comeback = at
      end
    end
    table.insert(out, tostring(math.max(MIN_WAIT, comeback - now)))
  end
end

for index, w in pairs(windows) do
  if w.taken > 0 then
    redis.call('HINCRBY', KEYS[index], tostring(w.cur), w.taken)
  end
  if w.moved then
    redis.call('HSET', KEYS[index], 'h', tostring(w.horizon))
  end
  if w.taken > 0 or w.moved then
    local keep = math.max(MAX_SPAN * w.size, w.horizon - now) + w.size
    redis.call('PEXPIRE', KEYS[index], math.ceil(keep * 1000))
  end
end
for index, s in pairs(slots) do
  if s.taken > 0 then
    redis.call('PEXPIRE', KEYS[index], math.ceil(lease * 2000))
  end
  if s.moved then
    redis.call('HSET', KEYS[s.meta], 'h', tostring(s.horizon))
    redis.call('PEXPIRE', KEYS[s.meta], math.ceil((math.max(0, s.horizon - now) + 3600) * 1000))
  end
end
return out
