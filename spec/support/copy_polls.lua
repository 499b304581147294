--- The slowest poll(0) of a frame loop whose responses are copies: three
-- callers of one shared call (the first takes its decode, the others decode
-- copies of its body) and twenty cache hits, beside one whole decode of the
-- same body.  Run in a process of its own, as a frame host's state is: a
-- small heap, the incremental collector (docs/hosts.md).
--
--   lua spec/support/copy_polls.lua BASE_URL OFFERS [timed]
--
-- Prints "whole MS joined MS hits MS seen decoding N N" (of 3 and 20).

local kpayment = require("kpayment")
local core = require("kpayment.core")
local socket = require("socket")

pcall(collectgarbage, "incremental")

local base, offers, timed = arg[1], arg[2], arg[3] == "timed"
local customer = "mock:offers:" .. offers

-- The slowest poll(0) until n requests are delivered, and how many of
-- them a poll found decoding (a copy decoded in slices spans polls; one
-- decoded whole on delivery is never seen so).
local function slowest_poll(c, n)
  local worst, delivered, decoding, seen = 0, 0, 0, {}
  local reqs = {}
  for i = 1, n do
    reqs[i] = c:start_offers({ customer_uuid = customer, dealer_uuid = "d",
                               on_done = function(o) if o then delivered = delivered + 1 end end })
  end
  local deadline = core.monotonic() + 60
  while delivered < n and core.monotonic() < deadline do
    -- the collector's debt paid before each poll, untimed, when the times
    -- are to be read: what is timed is then kpayment's work, not a step of
    -- the collector that the previous frame's garbage brought on
    -- (docs/hosts.md measures that apart).  A full collection a poll costs
    -- most of the run, so the spec, which checks no time, goes without.
    if timed then collectgarbage() end
    for i = 1, n do
      if not seen[i] and tostring(reqs[i]) == "kpayment.Request (decoding)" then
        seen[i] = true
        decoding = decoding + 1
      end
    end
    local t = core.monotonic()
    c:poll(0)
    worst = math.max(worst, core.monotonic() - t)
    socket.sleep(0.001)
  end
  assert(delivered == n, delivered .. " of " .. n .. " delivered")
  return worst, decoding
end

local opts = { base_url = base, skin = "s", retries = 0, timeout = 60 }
local c = kpayment.new(opts)
local joined, joined_polls = slowest_poll(c, 3)
c:close()
opts.cache = { ttl = 60 }
c = kpayment.new(opts)
assert(c:get_offers({ customer_uuid = customer, dealer_uuid = "d" }))
-- twenty: their copies are made one at a time, within the budget
local hits, hits_polls = slowest_poll(c, 20)
-- the whole decode of the same body, the work no poll(0) may do at once
local a = c._core:start(base .. "/payment/kpayment/v1/finance/getFinanceOffersForCustomer?customerUUID="
  .. customer .. "&dealerUUID=d&skin=s&locale=en-US", nil, 60000)
while not a:done() do c._core:poll(100) end
local t0 = core.monotonic()
assert(a:outcome().value)
local whole = core.monotonic() - t0
c:close()
print(("whole %.2f joined %.2f hits %.2f seen decoding %d %d"):format(whole * 1000, joined * 1000,
  hits * 1000, joined_polls, hits_polls))
