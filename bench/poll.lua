--- What one frame's poll(0) costs while a large response arrives and is
-- decoded, with the decode in slices (the default budget) beside the whole
-- decode in one poll (budget math.huge), in one run.
--
--   examples/with-mock.sh lua5.4 bench/poll.lua [offers ...]   (make bench-poll)
--
-- BENCH_GC picks the collector mode (incremental or generational; unset:
-- the interpreter's own).  For each size, rounds alternate the two ways on
-- one client: a 60 Hz loop polls a request and records every
-- poll(0).  Reported per way, as medians over the rounds: the slowest
-- poll(0), the frames it took, and the time all polls of the round took
-- together.  Then the body alone, decoded whole and in steps of the budget
-- (core.decode's step_ms), alternately.

-- The collector mode, chosen before anything else runs: the lua5.4
-- interpreter starts in generational mode, a C host's luaL_newstate in
-- incremental; other Luas have incremental only.
local MODE = os.getenv("BENCH_GC")
if MODE and MODE ~= "" then
  assert(_VERSION == "Lua 5.4" or MODE == "incremental", "only Lua 5.4 has " .. MODE)
  if _VERSION == "Lua 5.4" then collectgarbage(MODE) end
else
  MODE = _VERSION == "Lua 5.4" and collectgarbage("incremental") or "incremental"
  if MODE == "generational" then collectgarbage("generational") end
end

local kpayment = require("kpayment")
local core = require("kpayment.core")
local config = require("kpayment.config")
local socket = require("socket")

local sizes = {}
for i = 1, #arg do sizes[i] = assert(tonumber(arg[i]), "offers expected") end
if #sizes == 0 then sizes = { 100, 1000, 10000 } end
local BUDGET = tonumber(os.getenv("BENCH_BUDGET")) or config.DEFAULT_DECODE_BUDGET
local WAYS = { { name = "sliced", budget = BUDGET }, { name = "whole", budget = math.huge } }

local function median(t)
  local s = {}
  for i = 1, #t do s[i] = t[i] end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
end

local client = kpayment.new({ timeout = 120 })

-- One request polled at 60 Hz: slowest poll, frames, time in all polls.
local function frame_loop(customer, budget)
  collectgarbage()
  local done = false
  client:start_offers({ customer_uuid = customer, dealer_uuid = "bench",
                        on_done = function(o, err) done = assert(o, err) and true end })
  local worst, frames, total = 0, 0, 0
  while not done do
    local t0 = core.monotonic()
    client:poll(0, budget)
    local dt = core.monotonic() - t0
    if dt > worst then worst = dt end
    total = total + dt
    frames = frames + 1
    local left = 1 / 60 - (core.monotonic() - t0)
    if left > 0 then socket.sleep(left) end
  end
  return worst, frames, total
end

local function fetch_body(offers)
  local chunks = {}
  local credentials = (os.getenv("KPAYMENT_USERNAME") or "") .. ":" .. (os.getenv("KPAYMENT_PASSWORD") or "")
  local _, status = require("socket.http").request({
    url = os.getenv("KPAYMENT_BASE_URL") .. "/payment/kpayment/v1/finance/getFinanceOffersForCustomer" ..
      "?customerUUID=mock%3Aoffers%3A" .. offers .. "&dealerUUID=bench&skin=s&locale=en-US",
    headers = { authorization = "Basic " .. require("mime").b64(credentials) },
    sink = require("ltn12").sink.table(chunks),
  })
  assert(status == 200, "fetching the body gave " .. tostring(status))
  return table.concat(chunks)
end

local OPTS = { records = "financeOffers" }
local SLICED = { records = "financeOffers", step_ms = BUDGET }

print(string.format("decode budget %g ms (the default); a 60 Hz frame is %.1f ms", BUDGET, 1000 / 60))
print(string.format("%-7s %-13s %-7s %7s %16s %8s %16s",
  "offers", "collector", "way", "MB", "slowest poll(0)", "frames", "all polls"))
for _, offers in ipairs(sizes) do
  local rounds = offers >= 10000 and 3 or 7
  local customer = "mock:offers:" .. offers
  local got = { sliced = { worst = {}, frames = {}, total = {} },
                whole = { worst = {}, frames = {}, total = {} } }
  for r = 1, rounds do
    for w = 1, #WAYS do
      local way = WAYS[(r + w) % 2 + 1]   -- alternate which goes first
      local g = got[way.name]
      g.worst[r], g.frames[r], g.total[r] = frame_loop(customer, way.budget)
    end
  end
  local body = fetch_body(offers)
  for _, way in ipairs({ "whole", "sliced" }) do
    local g = got[way]
    print(string.format("%-7d %-13s %-7s %7.2f %13.2f ms %8d %13.2f ms", offers, MODE, way,
      #body / 1e6, median(g.worst) * 1000, median(g.frames), median(g.total) * 1000))
  end
  print(string.format("        slowest poll(0) sliced / whole: %.3f; all polls sliced / whole: %.2f",
    median(got.sliced.worst) / median(got.whole.worst), median(got.sliced.total) / median(got.whole.total)))
  local whole, sliced, steps, longest, longest_stopped = {}, {}, 0, {}, {}
  -- the slowest step of the body alone, with the collector running and
  -- stopped: what is left of a slice when the collector adds nothing
  local last, worst = 0, 0
  local timed = { records = "financeOffers", step_ms = BUDGET, on_step = function()
    local now = core.monotonic()
    worst, last = math.max(worst, now - last), now
  end }
  for r = 1, rounds do
    collectgarbage()
    local t0 = core.monotonic()
    core.decode(body, OPTS)
    whole[r] = core.monotonic() - t0
    collectgarbage()
    t0 = core.monotonic()
    local _, n = core.decode(body, SLICED)
    sliced[r] = core.monotonic() - t0
    steps = n
    for _, stopped in ipairs({ false, true }) do
      collectgarbage()
      if stopped then collectgarbage("stop") end
      last, worst = core.monotonic(), 0
      core.decode(body, timed)
      collectgarbage("restart")
      if stopped then longest_stopped[r] = worst else longest[r] = worst end
    end
  end
  print(string.format("        body alone: whole %.2f ms, in %d steps of %g ms %.2f ms: %.2fx",
    median(whole) * 1000, steps, BUDGET, median(sliced) * 1000, median(sliced) / median(whole)))
  print(string.format("        body alone, slowest step: %.2f ms; with the collector stopped: %.2f ms",
    median(longest) * 1000, median(longest_stopped) * 1000))
end
client:close()
