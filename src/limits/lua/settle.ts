import { LUA_CLOCK } from './clock.js'

/**
 * Settle a finished request: release its leases and move each token charge from the reservation to the
 * actual usage. A refund lands in the bucket / period the reservation was charged to (if that is still
 * counted); an overrun is charged to the current bucket / period, so the next requests see it.
 * Never retried by the caller: ZREM is idempotent, HINCRBY is not. One call settles any number of requests
 * (the store batches the settles of one event-loop turn), so each item names its own lease.
 *
 * KEYS[i]   counter key (a key may appear more than once: one item per request)
 * ARGV[1]   the items, space-separated, 5 fields per item: kind (w window | p:h, p:d, p:m period | l lease), mark
 *           (bucket or period id from acquire; "-" for none), delta (tokens to add, negative to refund), ms (window
 *           length / lease ttl), lease id. One argument rather than five per item: the client serialises a
 *           batch of a few hundred items as one string. No field is empty or holds a space (ids are integers,
 *           lease ids UUIDs; redis-store.ts checks).
 */
export const SETTLE_LUA = `
${LUA_CLOCK}
local function period_id (p)
  if p == 'h' then return string.format('%d', math.floor(now / 3600000)) end
  if p == 'd' then return string.format('%d', math.floor(now / 86400000)) end
  local y, m = civil(math.floor(now / 86400000))
  return string.format('%d', y * 12 + m - 1)
end

local A = {}
for field in string.gmatch(ARGV[1], '%S+') do A[#A + 1] = field end
for i = 1, #KEYS do
  local b = (i - 1) * 5
  local kind, mark, delta, ms, lease = A[b + 1], A[b + 2], tonumber(A[b + 3]), tonumber(A[b + 4]), A[b + 5]
  if mark == '-' then mark = '' end
  local key = KEYS[i]
  if kind == 'l' then
    redis.call('ZREM', key, lease)
  elseif kind == 'w' and delta ~= 0 then
    local bms = math.max(1, math.floor(ms / 60))
    local cur = math.floor(now / bms)
    local v = redis.call('HGET', key, mark)
    if v and tonumber(mark) > cur - 60 then
      local nv = tonumber(v) + delta
      if nv > 0 then redis.call('HSET', key, mark, nv) else redis.call('HDEL', key, mark) end
    elseif delta > 0 then
      redis.call('HINCRBY', key, string.format('%d', cur), delta)
      redis.call('PEXPIRE', key, ms + bms)
    end
  elseif string.sub(kind, 1, 1) == 'p' and delta ~= 0 then
    local p = redis.call('HGET', key, 'p')
    if p == mark then
      local nv = tonumber(redis.call('HGET', key, 'n') or '0') + delta
      if nv < 0 then nv = 0 end
      redis.call('HSET', key, 'n', nv)
    elseif delta > 0 then
      local pid = period_id(string.sub(kind, 3, 3))
      if p == pid then redis.call('HINCRBY', key, 'n', delta) else redis.call('HSET', key, 'p', pid, 'n', delta) end
      if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, 32 * 86400000) end
    end
  end
end
return 1
`

/** Push live leases' expiry forward. KEYS: lease sets; ARGV: lease id, ttl ms. ZADD XX: a lease already gone stays gone. */
export const RENEW_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local renewed = 0
for i = 1, #KEYS do
  renewed = renewed + redis.call('ZADD', KEYS[i], 'XX', 'CH', now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return renewed
`
