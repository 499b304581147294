--- kpayment: a dealer customer's finance offers from myKaarma's payments
-- API, as native Lua tables.
--
--     local kpayment = require("kpayment")
--     local client = kpayment.new{ username = "…", password = "…", skin = "…" }
--     local offers, err = client:get_offers{ customer_uuid = "…", dealer_uuid = "…" }
--
-- Misuse (a bad option or parameter) raises; failures of the call itself
-- return `nil, err` with `err` a table (see kpayment.errors).
-- @module kpayment

local core = require("kpayment.core")
local config = require("kpayment.config")
local client = require("kpayment.client")
local async = require("kpayment.async")
local errors = require("kpayment.errors")
local offer = require("kpayment.offer")

local M = {
  _VERSION = core._VERSION,
  --- Stands for JSON null inside arrays (also `kpayment.core.null`).
  null = core.null,
  --- JSON text to Lua values, as used on responses (`kpayment.core.decode`).
  decode = core.decode,
  --- Epoch seconds of an ISO-8601 timestamp, or nil.
  parse_time = offer.parse_time,
  --- True for the error tables this module returns.
  is_error = errors.is,
  DEFAULT_BASE_URL = config.DEFAULT_BASE_URL,
}

--- Create a client.  Options: `base_url`, `username`/`password` or
-- `bearer_token`, `skin`, `locale`, `timeout`, `connect_timeout`,
-- `max_body`, `ca_file`, `proxy`, `user_agent`, `retries`, `deadline`,
-- `insecure`, `follow_redirects`, `debug`, `log_personal_data`, `logger`
-- (see README).
-- @tparam[opt] table opts
-- @treturn Client
function M.new(opts)
  return (client.new(config.resolve(opts, 2)))
end

local default_opts, default_client = nil, nil

--- Set the options of the module-level client used by `kpayment.get_offers`
-- (validated now; the client itself is made on first use).
function M.configure(opts)
  config.resolve(opts, 2)
  if default_client then default_client:close() end
  default_opts, default_client = opts, nil
end

--- `client:get_offers` on a default client built from `configure{}` or the
-- environment.
function M.get_offers(params)
  if default_client == nil then default_client = client.new(config.resolve(default_opts, 2)) end
  local offers, err = client.get(default_client, params, 3)
  return offers, err
end

M.Client, M.Request = client.Client, async.Request
return M
