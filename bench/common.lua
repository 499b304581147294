--- Helpers the benchmark scripts share: shell quoting, reading a file,
-- failing, the HTTP benchmarks' environment and URLs, and the facts about
-- the machine that every report prints.
local M = {}

function M.shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- A file's whole text, or nil.
function M.read_file(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- A function that prints `prog: msg` on stderr and exits 1.
function M.dier(prog)
  return function(msg)
    io.stderr:write(prog, ": ", msg, "\n")
    os.exit(1)
  end
end

--- The environment variable `name`, which bench/http-run.sh sets; `die`
-- when it is missing or empty.
function M.need(name, die)
  local v = os.getenv(name)
  if v == nil or v == "" then die(name .. " is not set (run through bench/http-run.sh)") end
  return v
end

--- The collector mode of the HTTP benchmarks, now set in this process:
-- BENCH_HTTP_GC, else the one this interpreter started in (asking for a
-- mode returns the previous one).
function M.gc_mode(die)
  local mode = os.getenv("BENCH_HTTP_GC")
  if mode == "" then mode = nil end
  if mode ~= nil and mode ~= "incremental" and mode ~= "generational" then
    die("BENCH_HTTP_GC must be incremental or generational (got " .. mode .. ")")
  end
  if mode then
    collectgarbage(mode)
  else
    mode = collectgarbage("incremental")
    collectgarbage(mode)
  end
  return mode
end

-- The API path and the query values nginx's recorded responses answer.
M.API = "/payment/kpayment/v1/finance/getFinanceOffersForCustomer"
M.DEALER = "bench-dealer"
M.SKIN, M.LOCALE = "s", "en-US"

--- The URL of the recorded response with `offers` offers on server `base`.
function M.api_url(base, offers)
  return base .. M.API .. "?customerUUID=bench-" .. offers .. "&dealerUUID=" .. M.DEALER ..
    "&skin=" .. M.SKIN .. "&locale=" .. M.LOCALE
end

--- The CPU model named by /proc/cpuinfo.
function M.cpu_model()
  return (M.read_file("/proc/cpuinfo") or ""):match("model name%s*:%s*([^\n]+)") or "unknown CPU"
end

--- The 1, 5 and 15 minute load averages, as one string.
function M.load_average()
  return (M.read_file("/proc/loadavg") or ""):match("^(%S+ %S+ %S+)") or "?"
end

return M
