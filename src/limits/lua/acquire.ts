import { LUA_CLOCK } from './clock.js'

/**
 * One decision, one round trip: check every counter of a request and charge them all only if all admit.
 * Time comes from Redis TIME, never from the replica (replica clocks disagree). Keys of one call share a
 * hash tag (one Cluster slot); the caller groups them.
 *
 * KEYS[i]   counter key
 * ARGV[1]   lease id (request id + random)
 * ARGV[2]   the counters' specs, space-separated, 5 per counter: kind (w window | p period | l lease), limit, cost,
 *           ms, period (h|d|m|-); none is ever empty. One argument rather than 5 per counter: the call is built
 *           on every request, and each argument is a RESP field the client serialises.
 *           Read into A: A[1] the lease id, A[1 + 5(i-1) + 1..5] counter i's spec.
 * returns   { allowed 0|1, refused index (0-based, -1), retryAfterMs, then per counter: remaining, resetMs, mark }
 */
export const ACQUIRE_LUA = `
${LUA_CLOCK}
local lease = ARGV[1]
local n = #KEYS
local A = { lease }
for field in string.gmatch(ARGV[2], '%S+') do A[#A + 1] = field end

local function days_from_civil (y, m)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5)
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function period_of (p)
  if p == 'h' then
    local h = math.floor(now / 3600000)
    return string.format('%d', h), (h + 1) * 3600000
  elseif p == 'd' then
    local d = math.floor(now / 86400000)
    return string.format('%d', d), (d + 1) * 86400000
  end
  local y, m = civil(math.floor(now / 86400000))
  local ny, nm = y, m + 1
  if nm == 13 then ny, nm = y + 1, 1 end
  return string.format('%d', y * 12 + m - 1), days_from_civil(ny, nm) * 86400000
end

local used, marks, resets, aux = {}, {}, {}, {}
local refused, retry = -1, 0

for i = 1, n do
  local b = 1 + (i - 1) * 5
  local kind, limit, cost, ms = A[b + 1], tonumber(A[b + 2]), tonumber(A[b + 3]), tonumber(A[b + 4])
  local key = KEYS[i]
  local need = cost
  if need < 1 then need = 1 end
  if kind == 'w' then
    local bms = math.max(1, math.floor(ms / 60))
    local cur = math.floor(now / bms)
    local h = redis.call('HGETALL', key)
    local sum, old, live = 0, {}, {}
    for j = 1, #h, 2 do
      local bk, v = tonumber(h[j]), tonumber(h[j + 1])
      if bk <= cur - 60 then old[#old + 1] = h[j] else sum = sum + v; live[#live + 1] = bk; aux[key .. ':' .. h[j]] = v end
    end
    if #old > 0 then redis.call('HDEL', key, unpack(old)) end
    table.sort(live)
    used[i], marks[i] = sum, string.format('%d', cur)
    local newest = live[#live]
    resets[i] = newest and ((newest + 60) * bms - now) or 0
    if refused < 0 and sum + need > limit then
      refused = i - 1
      if need > limit then retry = ms else
        local acc, over = 0, sum + need - limit
        for _, bk in ipairs(live) do
          acc = acc + aux[key .. ':' .. string.format('%d', bk)]
          if acc >= over then retry = (bk + 60) * bms - now; break end
        end
      end
    end
  elseif kind == 'p' then
    local pid, pend = period_of(A[b + 5])
    local cur = redis.call('HMGET', key, 'p', 'n')
    local sum = 0
    if cur[1] == pid then sum = tonumber(cur[2]) or 0 end
    used[i], marks[i], resets[i] = sum, pid, pend - now
    aux[i] = pend
    if refused < 0 and sum + need > limit then refused = i - 1; retry = pend - now end
  else
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    local card = redis.call('ZCARD', key)
    used[i], marks[i], resets[i] = card, lease, 0
    if refused < 0 and card + 1 > limit then refused = i - 1; retry = 1000 end
  end
end

local out = { refused < 0 and 1 or 0, refused, retry }
for i = 1, n do
  local b = 1 + (i - 1) * 5
  local kind, limit, cost, ms = A[b + 1], tonumber(A[b + 2]), tonumber(A[b + 3]), tonumber(A[b + 4])
  local key = KEYS[i]
  local charged = 0
  if refused < 0 then
    if kind == 'w' then
      local bms = math.max(1, math.floor(ms / 60))
      if cost > 0 then redis.call('HINCRBY', key, marks[i], cost) end
      redis.call('PEXPIRE', key, ms + bms)
      resets[i] = ms
      charged = cost
    elseif kind == 'p' then
      if used[i] == 0 then redis.call('HSET', key, 'p', marks[i], 'n', cost) else redis.call('HINCRBY', key, 'n', cost) end
      redis.call('PEXPIREAT', key, aux[i] + 3600000)
      charged = cost
    else
      redis.call('ZADD', key, now + ms, lease)
      redis.call('PEXPIRE', key, ms)
      charged = 1
    end
  end
  local rem = limit - used[i] - charged
  if rem < 0 then rem = 0 end
  out[#out + 1] = rem
  out[#out + 1] = resets[i]
  out[#out + 1] = marks[i]
end
return out
`
