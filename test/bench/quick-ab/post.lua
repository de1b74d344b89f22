wrk.method = "POST"
wrk.body = '{"model":"llama-3.1-8b","messages":[{"role":"user","content":"hello there"}],"max_tokens":16}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer test-key-tier1"
local n = 0
request = function()
  n = n + 1
  local m = n % 4096
  wrk.headers["X-Forwarded-For"] = string.format("8.%d.%d.%d", 1 + math.floor(m / 256), m % 256, 7)
  return wrk.format()
end
