--- The script examples/host/host.c runs: fetches offers for some customers
-- without blocking the host's frames.
--
-- Called once with the customers; returns the functions the host calls:
--   frame(n) -> pending, poll_seconds   once per frame (n counts from 1)
--   close()                             at the end
-- Each frame does one client:poll(0): the network work that is ready, then
-- at most 2 ms (the default decode budget) of decoding, a large response
-- over several frames, and the on_done of every complete response.
-- Everything comes from the library (kpayment_preload): the host leaves
-- package.path and package.cpath empty.

local kpayment = require("kpayment")
local core = require("kpayment.core")

local customers = { ... }
local dealer = os.getenv("KPAYMENT_DEALER_UUID") or "dealer-1"
local SHOWN = 3   -- offers printed per customer

local client = kpayment.new({ timeout = 10 })
local pending, frame_no = 0, 0

local function show(customer, offers, err)
  if not offers then
    print(string.format("offers %s: error: %s (frame %d)", customer, tostring(err), frame_no))
    return
  end
  print(string.format("offers %s: %d offer(s), %d active (frame %d, %.1f ms)", customer, #offers,
    #offers:active(), frame_no, offers:meta().total_time * 1000))
  for i = 1, math.min(#offers, SHOWN) do
    local o = offers[i]
    print(string.format("  #%-12s %-9s %10.2f  %-22s %s", tostring(o.id), tostring(o.status),
      tonumber(o.foAmount) or 0, o:customer_name(), o:vehicle_label()))
  end
  if #offers > SHOWN then print(string.format("  … and %d more", #offers - SHOWN)) end
end

for _, customer in ipairs(customers) do
  pending = pending + 1
  client:start_offers({
    customer_uuid = customer, dealer_uuid = dealer,
    on_done = function(offers, err)
      pending = pending - 1
      show(customer, offers, err)
    end,
  })
end

local function frame(n)
  frame_no = n
  local t0 = core.monotonic()
  client:poll(0)
  return pending, core.monotonic() - t0
end

local function close()
  client:close()
end

-- client: for the host's event loop (kpayment_watch); pending: what is
-- left after close.
return setmetatable({ frame = frame, close = close, client = client },
  { __index = function(_, k) if k == "pending" then return pending end end })
