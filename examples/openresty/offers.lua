--- The /offers location of examples/openresty/nginx.conf:
-- GET /offers?customer=C&dealer=D answers {"count":N,"ids":[...]} or
-- {"error":{"kind":...,"status":...}}.  Ids are exact: JSON numbers, or
-- strings where the Lua has no exact number for them (LuaJIT above 2^53).
local kpayment = require("kpayment")
local ngx = ngx   -- luacheck: globals ngx

local M = {}

-- One client per worker, made on first use from the KPAYMENT_* environment
-- (nginx.conf keeps those variables with `env`).  Inside nginx it sends
-- through the /_kpayment location, never blocking the worker.
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

-- The answer, ended at once: an attempt that ran out of time may still
-- wait for its subrequest (nginx cannot abort one), which must not hold
-- the response back.
local function answer(status, body)
  ngx.status = status
  ngx.say(body)
  ngx.eof()
end

function M.handle()
  local args = ngx.req.get_uri_args()
  local customer, dealer = args.customer, args.dealer
  if type(customer) ~= "string" or type(dealer) ~= "string" then
    return answer(400, '{"error":{"kind":"bad_request","status":400,' ..
      '"message":"customer and dealer query parameters expected"}}')
  end
  client = client or kpayment.new({ timeout = tonumber(os.getenv("KPAYMENT_TIMEOUT")) })
  local offers, err = client:get_offers({ customer_uuid = customer, dealer_uuid = dealer,
                                          fields = { "id" } })
  if not offers then
    ngx.log(ngx.WARN, tostring(err))   -- errors carry no secrets
    return answer(502, '{"error":{"kind":' .. json_string(err.kind) .. ',"status":' ..
      (err.status and string.format("%d", err.status) or "null") .. '}}')
  end
  local ids = {}
  for i = 1, #offers do ids[i] = json_id(offers[i].id) end
  answer(200, '{"count":' .. #offers .. ',"ids":[' .. table.concat(ids, ",") .. ']}')
end

return M
