--- A 60 Hz frame loop that fetches offers without ever blocking a frame.
--
--   examples/with-mock.sh lua5.4 examples/frame_loop.lua [CUSTOMER …]
--
-- Each frame calls client:poll(0), which does the network work that is
-- ready and at most 2 ms of decoding (the decode_budget option: a large
-- response is decoded over several frames); offers are printed from
-- on_done as they arrive.  The default customers suit the mock, one of them
-- answering slowly (mock:stall:0.5).  The loop reports how many frames ran
-- while requests were in flight and the slowest poll(0).

local kpayment = require("kpayment")
local core = require("kpayment.core")
local socket = require("socket")

local FRAME = 1 / 60
local customers = #arg > 0 and arg or { "cust-a", "cust-b", "mock:stall:0.5", "cust-c" }
local dealer = os.getenv("KPAYMENT_DEALER_UUID") or "dealer-1"

local client = kpayment.new({ timeout = 10 })
local pending, started = 0, core.monotonic()

for _, customer in ipairs(customers) do
  pending = pending + 1
  client:start_offers({
    customer_uuid = customer, dealer_uuid = dealer,
    on_done = function(offers, err)
      pending = pending - 1
      local at = (core.monotonic() - started) * 1000
      if offers then
        print(string.format("%7.1f ms  %-16s %d offer(s), %d active, first: %s",
          at, customer, #offers, #offers:active(), offers[1] and offers[1]:vehicle_label() or "-"))
      else
        print(string.format("%7.1f ms  %-16s %s", at, customer, tostring(err)))
      end
    end,
  })
end

local frames, slowest = 0, 0
while pending > 0 do
  local frame_start = core.monotonic()
  client:poll(0)
  local spent = core.monotonic() - frame_start
  if spent > slowest then slowest = spent end
  frames = frames + 1
  -- the rest of the frame belongs to the host: simulate it by sleeping
  local left = FRAME - (core.monotonic() - frame_start)
  if left > 0 then socket.sleep(left) end
end

print(string.format("%d frames in flight (%.2f s), slowest poll(0): %.2f ms (a frame is %.1f ms)",
  frames, core.monotonic() - started, slowest * 1000, FRAME * 1000))
client:close()
