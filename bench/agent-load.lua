-- wrk script for bench/agent-load: POST /v1/functions/PREFIXn/invoke with
-- a tenant token, n rotating over EMBER_FUNCTIONS functions, a 64-byte
-- payload; counts non-200 answers and cold starts, and prints one JSON line
-- ("EMBER {...}") with the latency percentiles wrk measured.
local token = os.getenv("EMBER_TOKEN")
local nfn = tonumber(os.getenv("EMBER_FUNCTIONS") or "1")
local prefix = os.getenv("EMBER_PREFIX") or "f"
local payload = string.rep("x", 64)
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  non200 = 0
  cold = 0
  counter = 0
end

function request()
  counter = counter + 1
  local i = (counter + tid * 7) % nfn
  return wrk.format("POST", "/v1/functions/" .. prefix .. i .. "/invoke",
    { ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/octet-stream" }, payload)
end

function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
  if headers["X-Ember-Start"] == "cold" then cold = cold + 1 end
end

function done(summary, latency, requests)
  local bad, c = 0, 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("non200")
    c = c + t:get("cold")
  end
  local e = summary.errors
  io.write(string.format(
    "EMBER {\"requests\":%d,\"duration_us\":%d,\"socket_errors\":%d," ..
    "\"non200\":%d,\"cold\":%d,\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d," ..
    "\"p999_us\":%d,\"max_us\":%d,\"mean_us\":%.1f}\n",
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, bad, c,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
