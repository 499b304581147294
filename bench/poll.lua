--- What one frame's poll(0) costs while a large response arrives, beside
-- one decode of the same body.
--
--   examples/with-mock.sh lua5.4 bench/poll.lua [offers]      (make bench-poll)
--
-- A 60 Hz loop polls a request for a response of 1 000 offers (about
-- 4.5 MB) and records every poll(0); the same body is then decoded on its
-- own, several times.  poll(0) decodes at most one response per call, so
-- its slowest call should cost about one decode and no more.

local kpayment = require("kpayment")
local core = require("kpayment.core")
local socket = require("socket")

local offers = tonumber(arg[1]) or 1000
local ROUNDS = 7
local client = kpayment.new({ timeout = 60 })
local customer = "mock:offers:" .. offers

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

local slowest, frames = {}, {}
for r = 1, ROUNDS do
  collectgarbage()   -- as before each lone decode below: the same GC state
  local done = false
  client:start_offers({ customer_uuid = customer, dealer_uuid = "bench",
                        on_done = function(o, err) done = assert(o, err) and true end })
  local worst, n = 0, 0
  while not done do
    local t0 = core.monotonic()
    client:poll(0)
    local dt = core.monotonic() - t0
    if dt > worst then worst = dt end
    n = n + 1
    socket.sleep(1 / 60)
  end
  slowest[r], frames[r] = worst, n
end

-- the same body, fetched once more and decoded alone
local chunks = {}
local credentials = (os.getenv("KPAYMENT_USERNAME") or "") .. ":" .. (os.getenv("KPAYMENT_PASSWORD") or "")
local _, status = require("socket.http").request({
  url = os.getenv("KPAYMENT_BASE_URL") .. "/payment/kpayment/v1/finance/getFinanceOffersForCustomer" ..
    "?customerUUID=mock%3Aoffers%3A" .. offers .. "&dealerUUID=bench&skin=s&locale=en-US",
  headers = { authorization = "Basic " .. require("mime").b64(credentials) },
  sink = require("ltn12").sink.table(chunks),
})
assert(status == 200, "fetching the body gave " .. tostring(status))
local body = table.concat(chunks)
local decodes = {}
for r = 1, ROUNDS do
  collectgarbage()
  local t0 = core.monotonic()
  core.decode(body)
  decodes[r] = core.monotonic() - t0
end

local p, d = median(slowest), median(decodes)
print(string.format("response: %d offers, %.2f MB; %d rounds, %d frames per round (median)",
  offers, #body / 1e6, ROUNDS, median(frames)))
print(string.format("slowest poll(0) per round, median: %.2f ms", p * 1000))
print(string.format("one decode of the same body, median: %.2f ms", d * 1000))
print(string.format("slowest poll(0) / one decode: %.2f", p / d))
client:close()
