--- The /offers location of examples/openresty/nginx.conf:
-- GET /offers?customer=C&dealer=D answers {"count":N,"ids":[...]} or
-- {"error":{"kind":...,"status":...}}.  Ids are exact: JSON numbers, or
-- strings where LuaJIT has no exact number for them (above 2^53).
local kpayment = require("kpayment")
local ngx = ngx   -- luacheck: globals ngx

local M = {}

-- One client per worker, made on first use from the KPAYMENT_* environment
-- (nginx.conf keeps those variables with `env`), shared by every request.
local client

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

local function json_id(id)
  if type(id) == "number" then
    if id % 1 == 0 and id > -2^63 and id < 2^63 then return string.format("%.0f", id) end
    return string.format("%.17g", id)
  end
  return json_string(tostring(id))
end

function M.handle()
  local args = ngx.req.get_uri_args()
  local customer, dealer = args.customer, args.dealer
  if type(customer) ~= "string" or type(dealer) ~= "string" then
    ngx.status = 400
    ngx.say('{"error":{"kind":"bad_request","status":400,' ..
      '"message":"customer and dealer query parameters expected"}}')
    return
  end
  client = client or kpayment.new()
  local offers, err = client:get_offers({ customer_uuid = customer, dealer_uuid = dealer, fields = { "id" } })
  if not offers then
    ngx.log(ngx.WARN, tostring(err))   -- errors carry no secrets
    ngx.status = 502
    ngx.say('{"error":{"kind":' .. json_string(err.kind) .. ',"status":' ..
      (err.status and string.format("%d", err.status) or "null") .. '}}')
    return
  end
  local ids = {}
  for i = 1, #offers do ids[i] = json_id(offers[i].id) end
  ngx.say('{"count":' .. #offers .. ',"ids":[' .. table.concat(ids, ",") .. ']}')
end

return M
