--- Soak test: many calls against the mock, checking that every call ends
-- in offers or a known error, and that memory and file descriptors stop
-- growing once warmed up.
--
--     lua5.4 test/soak.lua MOCK_URL [CALLS]
--
-- Run by `make soak` (test/soak.mk), which starts the mock and sets
-- LUA_PATH / LUA_CPATH for the checkout.  CALLS (default 20000, a multiple
-- of 1000) counts every get_offers call and every entry of a
-- get_offers_many batch.
--
-- Each round of 50 calls makes 10 sequential `get_offers` calls and one
-- `get_offers_many` of 40 (concurrency 8).  Customers are mostly normal,
-- with fault modes of the mock mixed in; every 1000 calls a few calls
-- stall past the client's 0.5 s timeout (one of them first in a batch on a
-- new client), two go through short-lived clients (one closed, one left to
-- the garbage collector) and two through a client that retries a `flaky`
-- failure, and the main client is replaced.
-- Every call's outcome is checked against its mode: offers for a normal
-- customer must be that customer's (a response crossing over between
-- requests on a reused connection would show), a fault must give its
-- error kind and status.
--
-- Every 1000 calls, after collectgarbage(), the process's VmRSS, its open
-- file descriptors and the Lua heap are sampled.  From the sample after
-- the warm-up (the first 20% of the calls) to the last one, RSS and the
-- Lua heap must grow less than 5% and descriptors by at most 2.  The main
-- client is replaced just before each sample, so no pooled connection of
-- it is open then.  Exit status 0 when all checks pass, 1 otherwise.

local kpayment = require("kpayment")
local core = require("kpayment.core")

local URL = arg[1] or os.getenv("KPAYMENT_SOAK_URL")
local TOTAL = math.tointeger(tonumber(arg[2] or os.getenv("SOAK_CALLS") or "20000"))
if not URL or not TOTAL or TOTAL < 5000 or TOTAL % 1000 ~= 0 then
  io.stderr:write("usage: lua5.4 test/soak.lua MOCK_URL [CALLS, a multiple of 1000 >= 5000]\n")
  os.exit(2)
end

local SAMPLE_EVERY = 1000
local ROUND = 50                  -- calls per round: 10 sequential + a batch of 40
local SEQUENTIAL = 10
local BATCH = ROUND - SEQUENTIAL
local CONCURRENCY = 8
local WARMUP = TOTAL // 5
local RSS_LIMIT = 0.05            -- relative growth after the warm-up
local FD_LIMIT = 2                -- absolute growth after the warm-up
local LUA_LIMIT = 0.05            -- relative growth of the Lua heap, likewise
local TIMEOUT = 0.5               -- seconds; a stall of 2 s times out
local MAX_BODY = 100000           -- bytes; mock:big:200000 is refused

local KINDS = { network = true, timeout = true, tls = true, http = true, decode = true,
  body_too_large = true, cancelled = true }
local KIND_ORDER = { "offers", "network", "timeout", "tls", "http", "decode", "body_too_large",
  "cancelled" }

-- Fault modes mixed into the normal traffic: customer, expected outcome.
local FAULTS = {
  { name = "error500", customer = "mock:error500", kind = "http", status = 500 },
  { name = "html502", customer = "mock:html502", kind = "http", status = 502 },
  { name = "503", customer = "mock:503", kind = "http", status = 503 },
  { name = "badjson", customer = "mock:badjson", kind = "decode" },
  { name = "truncate", customer = "mock:truncate", kind = "network" },
  { name = "close", customer = "mock:close", kind = "network" },
  { name = "big", customer = "mock:big:200000", kind = "body_too_large" },
}
local FAULT_PERCENT = 14          -- of the calls, spread evenly over FAULTS
local STALL = { name = "stall", customer = "mock:stall:2", kind = "timeout" }
-- html502 rather than close: libcurl itself retries a request whose reused
-- connection closes without a response, so a close may need no retry here
local FLAKY = { name = "flaky", customer = "mock:flaky:1:html502", kind = "offers", attempts = 2 }

local DEALER = "soak-dealer"
local OFFERS = 3                  -- what the mock sends a normal customer

math.randomseed(20000)

---------------------------------------------------------------------------
-- Process figures

local function read_file(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

local PID = math.tointeger((read_file("/proc/self/stat") or ""):match("^(%d+)"))
  or error("cannot read /proc/self/stat")

local function rss_kb()
  return tonumber((read_file("/proc/self/status") or ""):match("VmRSS:%s*(%d+)%s*kB"))
end

-- Entries of /proc/PID/fd, without the pipe that reads them.
local function fd_list()
  local p = assert(io.popen("ls -l /proc/" .. PID .. "/fd 2>/dev/null", "r"))
  local text = p:read("a")
  p:close()
  local fds = {}
  for fd, target in text:gmatch("\n[^\n]- (%d+) %-> ([^\n]*)") do
    fds[#fds + 1] = fd .. " -> " .. target
  end
  return #fds - 1, fds
end

---------------------------------------------------------------------------
-- Counting and checking outcomes

local kinds = {}
for _, k in ipairs(KIND_ORDER) do kinds[k] = 0 end
local by_mode = {}                -- mode name -> { calls, unexpected }
local problems, shown = 0, 0
local calls = 0

local function problem(fmt, ...)
  problems = problems + 1
  if shown < 25 then
    shown = shown + 1
    io.write("soak: PROBLEM at call ", calls, ": ", string.format(fmt, ...), "\n")
  end
end

local function describe(offers, err)
  if offers then return "offers (" .. #offers .. ")" end
  return tostring(err)
end

-- One finished call of `mode` (a fault, STALL, FLAKY or a normal customer).
local function record(mode, customer, dealer, offers, err)
  calls = calls + 1
  local m = by_mode[mode.name]
  if not m then
    m = { calls = 0, unexpected = 0 }
    by_mode[mode.name] = m
  end
  m.calls = m.calls + 1
  local got
  if offers ~= nil then
    got = "offers"
    if type(offers) ~= "table" then
      problem("%s: offers of type %s", mode.name, type(offers))
      return
    end
  elseif kpayment.is_error(err) then
    got = err.kind
    if not KINDS[got] then
      problem("%s: error of unknown kind %s: %s", mode.name, tostring(got), tostring(err))
      return
    end
  else
    problem("%s: neither offers nor an error table (%s, %s)", mode.name, tostring(offers), tostring(err))
    return
  end
  kinds[got] = kinds[got] + 1

  local want = mode.kind or "offers"
  local ok = got == want
  if ok and got == "offers" then
    ok = #offers == OFFERS and offers[1].customerUUID == customer and offers[1].dealerUUID == dealer
    if ok and mode.attempts then
      local meta = offers:meta()
      ok = meta ~= nil and meta.attempts == mode.attempts
    end
  elseif ok and mode.status then
    ok = err.status == mode.status
  end
  if not ok then
    m.unexpected = m.unexpected + 1
    problem("%s (customer %s): expected %s%s, got %s", mode.name, customer, want,
      mode.status and (" " .. mode.status) or "", describe(offers, err))
  end
end

---------------------------------------------------------------------------
-- Clients and calls

local NORMAL = { name = "normal" }

local function new_client(opts)
  local o = { base_url = URL, timeout = TIMEOUT, max_body = MAX_BODY, retries = 0, skin = "soak" }
  for k, v in pairs(opts or {}) do o[k] = v end
  return kpayment.new(o)
end

-- A random mode and its customer.
local function pick()
  if math.random(100) <= FAULT_PERCENT then
    local f = FAULTS[math.random(#FAULTS)]
    return f, f.customer
  end
  return NORMAL, "soak-customer-" .. math.random(40)
end

local function call(client, mode, customer, dealer)
  dealer = dealer or DEALER
  local offers, err = client:get_offers{ customer_uuid = customer, dealer_uuid = dealer }
  record(mode, customer, dealer, offers, err)
end

local retrying = new_client({ retries = 1, timeout = 2, deadline = 5 })
local clients_made, clients_dropped = 2, 0   -- this one and the first main client

-- SEQUENTIAL get_offers calls; at the start of every 1000 calls some are
-- special.
local function sequential(client, round, phase)
  for slot = 1, SEQUENTIAL do
    if phase == 0 and slot == 1 then
      call(client, STALL, STALL.customer)
    elseif phase == 0 and slot == 2 then
      local c = new_client()             -- a short-lived client, closed
      clients_made = clients_made + 1
      local mode, customer = pick()
      call(c, mode, customer)
      c:close()
    elseif phase == 0 and slot == 3 then
      local c = new_client()             -- one left to the collector
      clients_made, clients_dropped = clients_made + 1, clients_dropped + 1
      call(c, NORMAL, "soak-dropped-" .. round)
    elseif phase == 0 and (slot == 4 or slot == 5) then
      -- the first request of this customer and dealer gets a 502; the
      -- client's one retry gets the offers
      call(retrying, FLAKY, FLAKY.customer, "soak-flaky-" .. PID .. "-" .. round .. "-" .. slot)
    else
      call(client, pick())
    end
  end
end

-- One get_offers_many of BATCH entries (in a function of its own, so that
-- its results are garbage by the time a sample is taken).  Halfway through
-- every 1000 calls the batch runs on a new client and starts with a
-- stalling request: the other first CONCURRENCY - 1 requests open their own
-- connections meanwhile and must not wait for the stalled one.
local function batch(client, phase)
  local fresh = phase == SAMPLE_EVERY // ROUND // 2
  local list, modes = {}, {}
  for i = 1, BATCH do
    local mode, customer
    if fresh and i == 1 then
      mode, customer = STALL, STALL.customer
    else
      mode, customer = pick()
    end
    list[i] = { customer_uuid = customer, dealer_uuid = DEALER }
    modes[i] = mode
  end
  if fresh then
    client = new_client()
    clients_made = clients_made + 1
  end
  local results = client:get_offers_many(list, { concurrency = CONCURRENCY })
  if fresh then client:close() end
  for i = 1, BATCH do
    local r = results[i]
    if type(r) ~= "table" then
      calls = calls + 1
      problem("get_offers_many: no result for entry %d", i)
    else
      record(modes[i], list[i].customer_uuid, DEALER, r.offers, r.err)
    end
  end
end

---------------------------------------------------------------------------
-- Samples

-- Made in advance, so that keeping samples does not grow the Lua heap
-- that they measure.
local samples, nsamples = {}, 0
for i = 1, TOTAL // SAMPLE_EVERY + 1 do
  samples[i] = { calls = 0, time = 0.0, rss = 0, fds = 0, lua_kb = 0.0 }
end
local last_fd_list = {}            -- of the latest sample, for the report

local function sample(t0)
  collectgarbage()
  collectgarbage()
  local nfds
  nfds, last_fd_list = fd_list()
  nsamples = nsamples + 1
  local s = samples[nsamples]
  s.calls, s.time, s.rss, s.fds = calls, core.monotonic() - t0, rss_kb(), nfds
  collectgarbage()
  s.lua_kb = collectgarbage("count")
end

---------------------------------------------------------------------------
-- The run

local t0 = core.monotonic()
local client = new_client()
sample(t0)
io.write(string.format("soak: %d calls against %s (rounds of %d sequential + a batch of %d, " ..
  "concurrency %d), timeout %.1f s, max_body %d\n", TOTAL, URL, SEQUENTIAL, BATCH, CONCURRENCY,
  TIMEOUT, MAX_BODY))
io.flush()

local rounds = TOTAL // ROUND
local per_sample = SAMPLE_EVERY // ROUND
for round = 0, rounds - 1 do
  local phase = round % per_sample

  sequential(client, round, phase)
  batch(client, phase)

  if calls % SAMPLE_EVERY == 0 then
    -- a new main client: the sample then holds none of the old one's
    -- pooled connections, so descriptors compare exactly
    client:close()
    client = new_client()
    clients_made = clients_made + 1
    sample(t0)
    local s = samples[nsamples]
    io.write(string.format("soak: %6d calls  %6.1f s  rss %6d kB  fds %3d  lua %7.1f kB\n", s.calls,
      s.time, s.rss, s.fds, s.lua_kb))
    io.flush()
  end
end
client:close()
retrying:close()
local elapsed = core.monotonic() - t0

---------------------------------------------------------------------------
-- Report

io.write("\nsoak: samples (after collectgarbage())\n")
io.write(string.format("%8s %9s %10s %6s %11s\n", "calls", "time s", "RSS kB", "fds", "Lua kB"))
local warm
for i = 1, nsamples do
  local s = samples[i]
  local mark = ""
  if not warm and s.calls >= WARMUP then
    warm = s
    mark = "   <- after warm-up"
  end
  io.write(string.format("%8d %9.1f %10d %6d %11.1f%s\n", s.calls, s.time, s.rss, s.fds, s.lua_kb, mark))
end
local last = samples[nsamples]

io.write("\nsoak: outcomes by kind\n")
for _, k in ipairs(KIND_ORDER) do io.write(string.format("  %-16s %7d\n", k, kinds[k])) end
io.write("soak: calls by mode (unexpected outcomes)\n")
local names = {}
for name in pairs(by_mode) do names[#names + 1] = name end
table.sort(names)
for _, name in ipairs(names) do
  io.write(string.format("  %-16s %7d  (%d)\n", name, by_mode[name].calls, by_mode[name].unexpected))
end
io.write(string.format("soak: %d calls in %.1f s (%.0f calls/s), %d clients made (%d left to the GC)\n",
  calls, elapsed, calls / elapsed, clients_made, clients_dropped))

local failed = false
local function verdict(ok, fmt, ...)
  io.write("soak: ", ok and "ok    " or "FAILED", " ", string.format(fmt, ...), "\n")
  if not ok then failed = true end
end

verdict(calls == TOTAL, "%d calls made, %d planned", calls, TOTAL)
verdict(problems == 0, "%d calls with a problem (unknown kind, no result or unexpected outcome)", problems)
local rss_growth = (last.rss - warm.rss) / warm.rss
verdict(rss_growth < RSS_LIMIT, "RSS %d kB at %d calls -> %d kB at %d: %+.1f%% (limit +%.0f%%)",
  warm.rss, warm.calls, last.rss, last.calls, rss_growth * 100, RSS_LIMIT * 100)
verdict(last.fds - warm.fds <= FD_LIMIT, "fds %d at %d calls -> %d at %d: %+d (limit +%d)",
  warm.fds, warm.calls, last.fds, last.calls, last.fds - warm.fds, FD_LIMIT)
local lua_growth = (last.lua_kb - warm.lua_kb) / warm.lua_kb
verdict(lua_growth < LUA_LIMIT, "Lua heap %.1f kB at %d calls -> %.1f kB at %d: %+.1f%% (limit +%.0f%%)",
  warm.lua_kb, warm.calls, last.lua_kb, last.calls, lua_growth * 100, LUA_LIMIT * 100)
if last.fds - warm.fds > FD_LIMIT then
  io.write("soak: open descriptors at the end:\n")
  for _, line in ipairs(last_fd_list) do io.write("  ", line, "\n") end
end
io.write("soak: ", failed and "FAILED" or "passed", "\n")
os.exit(failed and 1 or 0)
