--- The handler spec/nginx/framing_nginx.lua runs inside nginx: one
-- get_offers, on the clients support.nginx_handlers shares per worker and
-- option set, answered in one line that also says whether the failure is
-- retryable (which /t/call leaves out):
--
--   "<count|kind> <status> <attempts> <request id> <retryable|-> <seconds> <message|->"

local handlers = require("support.nginx_handlers")
local ngx = ngx   -- luacheck: globals ngx

local M = {}

--- One get_offers: ?customer= and support.nginx_handlers' options.
function M.call()
  local args = ngx.req.get_uri_args()
  local c = handlers.client(args)
  ngx.update_time()
  local t0 = ngx.now()
  local offers, err = c:get_offers({ customer_uuid = args.customer or "ok", dealer_uuid = "d-1" })
  ngx.update_time()
  local meta = offers and offers:meta() or err
  ngx.say(table.concat({ offers and #offers or err.kind, tostring(meta.status), tostring(meta.attempts),
    tostring(meta.request_id), offers and "-" or tostring(err.retryable),
    string.format("%.3f", ngx.now() - t0), offers and "-" or tostring(err.message) }, " "))
end

return M
