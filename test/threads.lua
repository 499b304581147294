--- What each thread of test/threads.c runs in its own lua_State: clients
-- created, used and closed while the other threads do the same.
--
-- Called with the thread's number and the rounds to run; returns the
-- offers fetched and the libcurl version kpayment.core reports.  Each
-- round creates a client (all threads at once: creation reads libcurl's
-- version data), fetches with get_offers, with start_offers/poll and with
-- get_offers_many, reads kpayment.info(), decodes a document with
-- kpayment.decode, and closes.
-- The base URL comes from KPAYMENT_BASE_URL (examples/with-mock.sh).

local kpayment = require("kpayment")
local core = require("kpayment.core")

local id, rounds = ...
local fetched = 0

local function check(offers, err, customer)
  assert(offers, tostring(err))
  assert(#offers == 3, customer .. ": " .. #offers .. " offers")
  for _, o in ipairs(offers) do
    assert(o.customerUUID == customer, customer .. ": an offer for " .. tostring(o.customerUUID))
  end
  fetched = fetched + #offers
end

for round = 1, rounds do
  local client = kpayment.new({ timeout = 20, retries = 0 })
  local base = string.format("t%d-r%d", id, round)

  local offers, err = client:get_offers({ customer_uuid = base, dealer_uuid = "threads" })
  check(offers, err, base)

  local requests = {}
  for k = 1, 3 do
    requests[k] = client:start_offers({ customer_uuid = base .. "-" .. k, dealer_uuid = "threads" })
  end
  while client:poll(5) > 0 do end
  for k, req in ipairs(requests) do
    local o, e = req:result()
    check(o, e, base .. "-" .. k)
  end

  local list = {}
  for k = 1, 4 do list[k] = { customer_uuid = base .. "-m" .. k, dealer_uuid = "threads" } end
  for k, r in ipairs(client:get_offers_many(list, { concurrency = 4 })) do
    check(r.offers, r.err, list[k].customer_uuid)
  end

  -- libcurl's version record, read by every thread at once
  local info = kpayment.info()
  assert(info.curl == core.curl_version and type(info.curl_info.protocols) == "table")

  local doc = kpayment.decode('{"n":-42.5e1,"s":"\\u00e9","a":[1,null]}')
  assert(doc.n == -425 and doc.s == "\195\169" and doc.a[2] == kpayment.null)
  client:close()
end

return fetched, core.curl_version
