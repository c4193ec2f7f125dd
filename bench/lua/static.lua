-- The same request over and over: client_credentials, introspection, bearer GET, ceiling.
--   BENCH_METHOD (GET), BENCH_PATH (/), BENCH_AUTH (Authorization header, optional),
--   BENCH_BODY (form body, optional)
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local headers = {}
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then headers["Authorization"] = auth end
local body = os.getenv("BENCH_BODY")
if body == "" then body = nil end
if body then headers["Content-Type"] = "application/x-www-form-urlencoded" end
local req = nil

function init(args)
  -- built here, not at load time: wrk sets the Host header just before init()
  req = wrk.format(os.getenv("BENCH_METHOD") or "GET", os.getenv("BENCH_PATH") or "/",
                   headers, body)
  open_capture()
end

function request()
  return req
end
