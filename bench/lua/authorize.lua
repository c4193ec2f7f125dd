-- Mints authorization codes through the real authorization endpoint: a logged-in browser
-- session (BENCH_COOKIE) that already consented to the client, so each GET of BENCH_PATH
-- (the authorize URL) redirects straight to the client with a fresh code. The harness runs
-- it with BENCH_CAPTURE='[?&]code=([^&]+)' BENCH_CAPTURE_FROM=location, BENCH_OUT, BENCH_TARGET.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local req = nil

function init(args)
  -- built here, not at load time: wrk sets the Host header just before init()
  req = wrk.format("GET", os.getenv("BENCH_PATH"), { ["Cookie"] = os.getenv("BENCH_COOKIE") })
  open_capture()
end

function request()
  return req
end
