--- The OpenResty rows of `make bench-http` (bench/nginx/nginx.conf.in): four
-- content handlers of the same server, each fetching the 10-offer recorded
-- response through the same internal location (/_kpayment, proxying to the
-- HTTP server of the same nginx over kept-alive connections) with
-- ngx.location.capture, and answering the number of offers (the capture
-- row: the body's size).
--
--   kpayment   client:get_offers (kpayment's nginx transport)
--   decode     capture + kpayment.core.decode: the decoder without the client
--   cjson      capture + cjson.decode: what Lua code without kpayment does
--   capture    capture only, body not decoded: the transport limit
--
-- The capture of the last three passes the same variables and the same
-- kind of ctx as kpayment's transport, so the subrequest costs the same.
local ngx = ngx   -- luacheck: globals ngx
local kpayment = require("kpayment")
local core = require("kpayment.core")
local cjson = require("cjson")

local M = {}

local API = "/payment/kpayment/v1/finance/getFinanceOffersForCustomer"
local DEALER = "bench-dealer"
local SKIN, LOCALE = "s", "en-US"
local QUERY = "customerUUID=bench-10&dealerUUID=" .. DEALER .. "&skin=" .. SKIN .. "&locale=" .. LOCALE

-- Set by init_by_lua (nginx.conf.in): host:port of the HTTP server.
M.authority = nil

local client             -- one per worker, made on first use

local function answer(n)
  ngx.say(n)
end

local function fail(msg)
  ngx.log(ngx.ERR, msg)
  ngx.status = 500
  ngx.say(msg)
end

function M.kpayment()
  client = client or kpayment.new({ base_url = "http://" .. M.authority, skin = SKIN,
                                    locale = LOCALE, timeout = 30 })
  local offers, err = client:get_offers({ customer_uuid = "bench-10", dealer_uuid = DEALER })
  if not offers then return fail("get_offers: " .. tostring(err)) end
  answer(#offers)
end

-- The subrequest kpayment's transport makes, made by hand.
local function fetch()
  local res = ngx.location.capture("/_kpayment?" .. QUERY, {
    ctx = { kpayment = true, scheme = "http", sni = "127.0.0.1" },
    vars = {
      kpayment_scheme = "http", kpayment_host = M.authority, kpayment_sni = "127.0.0.1",
      kpayment_path = API, kpayment_auth = "", kpayment_accept = "application/json",
      kpayment_agent = "bench",
    },
  })
  if res.status ~= 200 or res.truncated then
    fail("capture: status " .. tostring(res.status))
    return nil
  end
  return res.body
end

function M.decode()
  local body = fetch()
  if body then answer(#core.decode(body).financeOffers) end
end

function M.cjson()
  local body = fetch()
  if body then answer(#cjson.decode(body).financeOffers) end
end

function M.capture()
  local body = fetch()
  if body then answer(#body) end
end

return M
