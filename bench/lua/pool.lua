-- One single-use value per request, e.g. an authorization code or a refresh token.
-- Each wrk thread reads its own file BENCH_POOL.<thread id> (the harness splits the pool),
-- so no value is ever sent twice. When a thread's pool runs out it keeps sending an
-- invalid value (the server answers 4xx) and counts it in "exhausted"; the harness reports
-- those as errors. (When capturing, e.g. minting refresh tokens from codes, the thread
-- finishes instead.)
--   BENCH_PATH, BENCH_AUTH, BENCH_BODY_PREFIX .. value .. BENCH_BODY_SUFFIX (POST form)
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local path = os.getenv("BENCH_PATH")
local prefix = os.getenv("BENCH_BODY_PREFIX") or ""
local suffix = os.getenv("BENCH_BODY_SUFFIX") or ""
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then headers["Authorization"] = auth end

local values, n = nil, 0

function init(args)
  values = load_pool()
  n = #values
  open_capture()
end

function request()
  local v
  if sent < n then
    sent = sent + 1
    v = values[sent]
  else
    exhausted = exhausted + 1
    v = "pool-exhausted"
    if capturing() then finish_thread() end
  end
  return wrk.format("POST", path, headers, prefix .. v .. suffix)
end
