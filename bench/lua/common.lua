-- Shared by every bench script (loaded with dofile from the script's own folder).
--
-- Configuration comes from the environment (the harness sets it for each wrk run):
--   BENCH_EXPECT   optional Lua pattern a 2xx body must contain to count as a success
--   BENCH_ACCEPT_REDIRECT=1  count 3xx as successes too (minting codes from redirects)
--   BENCH_CAPTURE  optional Lua pattern with one capture, looked up in the body (or, with
--                  BENCH_CAPTURE_FROM=location, in the Location header) of each successful
--                  response; each capture is written as one line to BENCH_OUT.<thread id>
--   BENCH_TARGET   with BENCH_CAPTURE: a thread is finished after capturing this many values
--
-- A finished thread (target reached, pool used up, or more than 1000 failures and 10 times
-- more failures than captures) stops and creates BENCH_OUT.<thread id>.done; wrk itself runs
-- until its -d duration or SIGINT, so the harness watches those files and sends SIGINT.
--
-- Per-thread counters: ok (success), non2xx, unexpected (2xx without BENCH_EXPECT),
-- exhausted (requests sent after the thread's pool ran out), captured, sent (pool values
-- used). done() sums them over the threads (and lists "sent" per thread, so the harness can
-- reuse values that were never sent) and prints one line "BENCHJSON {...}".

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

ok, non2xx, unexpected, exhausted, captured, sent = 0, 0, 0, 0, 0, 0

local expect = os.getenv("BENCH_EXPECT")
if expect == "" then expect = nil end
local capture = os.getenv("BENCH_CAPTURE")
if capture == "" then capture = nil end
local capture_location = os.getenv("BENCH_CAPTURE_FROM") == "location"
local max_ok = os.getenv("BENCH_ACCEPT_REDIRECT") == "1" and 399 or 299
local target = tonumber(os.getenv("BENCH_TARGET") or "") or math.huge
local out = nil
local finished = false

function open_capture()
  if capture and id ~= nil then
    out = assert(io.open(os.getenv("BENCH_OUT") .. "." .. id, "w"))
    out:setvbuf("line")
  end
end

function capturing()
  return out ~= nil
end

function finish_thread()
  if finished then return end
  finished = true
  if out then
    out:close()
    out = nil
    local marker = io.open(os.getenv("BENCH_OUT") .. "." .. id .. ".done", "w")
    if marker then marker:close() end
  end
  wrk.thread:stop()
end

-- the lines of BENCH_POOL.<thread id>: this thread's share of single-use values
function load_pool()
  local values = {}
  local path = os.getenv("BENCH_POOL") .. "." .. id
  for line in io.lines(path) do
    if line ~= "" then values[#values + 1] = line end
  end
  return values
end

local function failed()
  if out and non2xx + unexpected > 1000 and non2xx + unexpected > 10 * captured then
    finish_thread() -- give up: the harness reports what was captured
  end
end

function response(status, headers, body)
  if status < 200 or status > max_ok then
    non2xx = non2xx + 1
    return failed()
  end
  if expect and not string.find(body, expect) then
    unexpected = unexpected + 1
    return failed()
  end
  ok = ok + 1
  if out then
    local source = body
    if capture_location then source = headers["location"] or headers["Location"] or "" end
    local value = string.match(source, capture)
    if value then
      out:write(value, "\n")
      captured = captured + 1
      if captured >= target then finish_thread() end
    end
  end
end

function done(summary, latency, requests)
  local sums = { ok = 0, non2xx = 0, unexpected = 0, exhausted = 0, captured = 0 }
  local per_thread_sent = {}
  for _, t in ipairs(threads) do
    for k, _ in pairs(sums) do sums[k] = sums[k] + (tonumber(t:get(k)) or 0) end
    per_thread_sent[#per_thread_sent + 1] = tostring(tonumber(t:get("sent")) or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"status":%d,"ok":%d,"non2xx":%d,"unexpected":%d,' ..
    '"exhausted":%d,"captured":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"mean_us":%.1f,"threads":%d,"sent":[%s]}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.timeout, e.status, sums.ok, sums.non2xx, sums.unexpected, sums.exhausted,
    sums.captured, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, #threads, table.concat(per_thread_sent, ",")))
end
