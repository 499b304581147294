--- Print a customer's finance offers.
--
--   lua5.4 examples/get_offers.lua CUSTOMER_UUID DEALER_UUID
--
-- Configuration comes from the environment: KPAYMENT_BASE_URL (default: the
-- real API), KPAYMENT_USERNAME / KPAYMENT_PASSWORD or KPAYMENT_BEARER_TOKEN,
-- KPAYMENT_SKIN, KPAYMENT_LOCALE.  `make demo` runs it against the mock.

local kpayment = require("kpayment")

local customer = arg[1] or os.getenv("KPAYMENT_CUSTOMER_UUID")
local dealer = arg[2] or os.getenv("KPAYMENT_DEALER_UUID")
if not customer or not dealer then
  io.stderr:write("usage: lua5.4 examples/get_offers.lua CUSTOMER_UUID DEALER_UUID\n")
  os.exit(2)
end

local offers, err = kpayment.get_offers({ customer_uuid = customer, dealer_uuid = dealer })
if not offers then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end

local function expiry(offer)
  local t = offer:expires_at()
  if not t then return "no expiry" end
  return os.date("!%Y-%m-%d %H:%M UTC", math.floor(t)) .. (offer:is_expired() and " (expired)" or "")
end

print(string.format("%d offer(s) for customer %s", #offers, customer))
for _, o in ipairs(offers) do
  print(string.format("  #%-17s  %-9s  %12.2f  %-30s  %-22s  %s",
    tostring(o.id), tostring(o.status), tonumber(o.foAmount) or 0, expiry(o),
    o:customer_name(), o:vehicle_label()))
end
local meta = offers:meta()
print(string.format("%d active; HTTP %d after %d attempt(s) in %.1f ms%s", #offers:active(), meta.status,
  meta.attempts, meta.total_time * 1000, meta.request_id and (", request " .. meta.request_id) or ""))
