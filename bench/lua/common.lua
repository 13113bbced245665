-- Shared by every bench script (loaded with dofile from the scenario's script). wrk runs the script in
-- one Lua state per thread plus a main state for setup() and done(); values cross them via thread:get().
-- A script defines prepare(args) and request(); it may define its own response() that calls
-- count_status(status).

ck_statuses = {}   -- status code (string) -> responses, per thread
ck_cpu0 = 0        -- this process's CPU ticks when the run starts

-- utime + stime of the whole wrk process (all threads) from /proc/self/stat, in clock ticks.
function cpu_ticks()
  local f = io.open("/proc/self/stat", "r")
  local s = f:read("*a")
  f:close()
  local fields = {}
  for v in s:match("%) (.*)"):gmatch("%S+") do
    fields[#fields + 1] = v
    if #fields == 13 then break end
  end
  return tonumber(fields[12]) + tonumber(fields[13])
end

function count_status(status)
  local k = tostring(status)
  ck_statuses[k] = (ck_statuses[k] or 0) + 1
end

-- The request head for `body_len` bytes of body: a request is then head .. body.
function request_head(method, path, body_len)
  local s = wrk.format(method, path, nil, string.rep("x", body_len))
  return s:sub(1, #s - body_len)
end

-- wrk passes what follows `--` on its command line; the last argument is always the API key.
function init(args)
  wrk.headers["Authorization"] = "Bearer " .. args[#args]
  wrk.headers["Content-Type"] = "application/json"
  prepare(args)
  ck_cpu0 = cpu_ticks()
end

function response(status, headers, body)
  count_status(status)
end

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

-- One line: WRK_JSON {...}, latencies in microseconds, CPU in clock ticks since the run started.
function done(summary, latency, requests)
  local statuses, cpu0 = {}, nil
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("ck_statuses")) do statuses[k] = (statuses[k] or 0) + v end
    local c = t:get("ck_cpu0")
    if cpu0 == nil or c < cpu0 then cpu0 = c end
  end
  local parts = {}
  for k, v in pairs(statuses) do parts[#parts + 1] = string.format('"%s":%d', k, v) end
  local e = summary.errors
  io.write(string.format(
    '\nWRK_JSON {"duration_us":%d,"requests":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"cpu_ticks":%d,"statuses":{%s}}\n',
    summary.duration, summary.requests, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.timeout, cpu_ticks() - (cpu0 or 0), table.concat(parts, ",")))
end
