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
local request = require("kpayment.request")
local response = require("kpayment.response")
local errors = require("kpayment.errors")
local offer = require("kpayment.offer")

local setmetatable, getmetatable, pairs, type, tostring, error =
  setmetatable, getmetatable, pairs, type, tostring, error
local os_getenv = os.getenv

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
  DEFAULT_BASE_URL = "https://api.mykaarma.com",
}

-- Every option new{} accepts; anything else is a mistake worth raising.
local OPTIONS = {
  base_url = "string", username = "string", password = "string", bearer_token = "string",
  skin = "string", locale = "string", timeout = "number", connect_timeout = "number",
  max_body = "number", ca_file = "string", proxy = "string", user_agent = "string",
}

local ENV = {
  base_url = "KPAYMENT_BASE_URL", skin = "KPAYMENT_SKIN", locale = "KPAYMENT_LOCALE",
}
local ENV_AUTH = {
  username = "KPAYMENT_USERNAME", password = "KPAYMENT_PASSWORD", bearer_token = "KPAYMENT_BEARER_TOKEN",
}

-- Client -> strings to scrub from errors.  Kept off the client table, so
-- neither tostring nor a table dump shows them.
local secrets = setmetatable({}, { __mode = "k" })

local Client = {}
Client.__index = Client
Client.__name = "kpayment.Client"

local function from_env(cfg, names)
  for k, var in pairs(names) do
    local v = os_getenv(var)
    if cfg[k] == nil and v ~= nil and v ~= "" then cfg[k] = v end
  end
end

-- Explicit options over the environment over defaults; raises at `level`
-- on anything wrong, naming the option.
local function resolve(opts, level)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("kpayment: bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", level)
  end
  local cfg = {}
  for k, v in pairs(opts) do
    local want = OPTIONS[k]
    if want == nil then error("kpayment: unknown option '" .. tostring(k) .. "'", level) end
    if type(v) ~= want then
      error("kpayment: bad option '" .. k .. "' (" .. want .. " expected, got " .. type(v) .. ")", level)
    end
    cfg[k] = v
  end
  from_env(cfg, ENV)
  -- Credentials come as a set: explicit ones replace the environment's.
  if cfg.username == nil and cfg.password == nil and cfg.bearer_token == nil then
    from_env(cfg, ENV_AUTH)
  end
  local base, msg = request.check_base_url(cfg.base_url or M.DEFAULT_BASE_URL)
  if not base then error("kpayment: " .. msg, level) end
  cfg.base_url = base
  if cfg.locale == nil then cfg.locale = "en-US" end
  for _, k in pairs({ "skin", "locale" }) do
    if cfg[k] ~= nil then
      local ok, why = request.check_value(k, cfg[k])
      if not ok then error("kpayment: " .. why:gsub("parameter", "option"), level) end
    end
  end
  if cfg.bearer_token and (cfg.username or cfg.password) then
    error("kpayment: give either username/password or bearer_token, not both", level)
  end
  if (cfg.username == nil) ~= (cfg.password == nil) then
    error("kpayment: username and password go together", level)
  end
  for _, k in pairs({ "username", "password", "bearer_token", "proxy", "ca_file", "user_agent" }) do
    if cfg[k] ~= nil and cfg[k]:find("[%z\1-\31\127]") then
      error("kpayment: bad option '" .. k .. "' (contains control characters)", level)
    end
  end
  for _, k in pairs({ "timeout", "connect_timeout" }) do
    if cfg[k] ~= nil and not (cfg[k] >= 0 and cfg[k] <= 86400) then
      error("kpayment: bad option '" .. k .. "' (seconds from 0 to 86400 expected)", level)
    end
  end
  if cfg.max_body ~= nil and not (cfg.max_body >= 1 and cfg.max_body < 2 ^ 52) then
    error("kpayment: bad option 'max_body' (a positive number of bytes expected)", level)
  end
  return cfg
end

--- Create a client.  Options: `base_url`, `username`/`password` or
-- `bearer_token`, `skin`, `locale`, `timeout`, `connect_timeout`,
-- `max_body`, `ca_file`, `proxy`, `user_agent` (see README).
-- @tparam[opt] table opts
-- @treturn Client
function M.new(opts)
  local cfg = resolve(opts, 3)
  local self = setmetatable({
    base_url = cfg.base_url,
    _defaults = { skin = cfg.skin, locale = cfg.locale },
    _core = core.new(cfg),
  }, Client)
  -- Secrets shorter than 4 bytes are not scrubbed: they would match
  -- ordinary words of libcurl's messages.
  local s = {}
  for _, k in pairs({ "password", "bearer_token" }) do
    if cfg[k] and #cfg[k] >= 4 then s[#s + 1] = cfg[k] end
  end
  if cfg.username and cfg.password then
    -- what a server would echo back of an Authorization: Basic header
    s[#s + 1] = errors.base64(cfg.username .. ":" .. cfg.password)
  end
  secrets[self] = s
  return self
end

-- The body of get_offers, raising at `level` for misuse.
local function get(self, params, level)
  if getmetatable(self) ~= Client then
    error("kpayment: get_offers must be called as client:get_offers{…}", level)
  end
  local url, msg = request.url(self.base_url, params, self._defaults)
  if not url then error("kpayment: " .. msg, level) end
  local fields = params.fields
  if fields ~= nil then
    fields, msg = request.check_fields(fields)
    if not fields then error("kpayment: " .. msg, level) end
  end
  local status, a, b, c, d = self._core:request(url, fields)
  local offers, err
  if status == nil then
    err = response.transport_error(a, b, c, d)
  else
    offers, err = response.from_response(status, a, b, c)
  end
  if err then return nil, errors.redact(err, secrets[self]) end
  return offers
end

--- Fetch a customer's finance offers.
-- @tparam table params `customer_uuid`, `dealer_uuid`, and optionally
-- `skin`, `locale` (over the client's defaults) and `fields` (a list of
-- dotted paths inside each offer: only those are decoded)
-- @return an offer list, or nil and an error table
function Client:get_offers(params)
  local offers, err = get(self, params, 3)
  return offers, err
end

--- Release the connection and its buffers now rather than at collection.
function Client:close()
  self._core:close()
end

Client.__close = Client.close

function Client.__tostring(self)
  return "kpayment.Client (" .. self.base_url .. ")"
end

local default_opts, default_client = nil, nil

--- Set the options of the module-level client used by `kpayment.get_offers`
-- (validated now; the client itself is made on first use).
function M.configure(opts)
  resolve(opts, 3)
  if default_client then default_client:close() end
  default_opts, default_client = opts, nil
end

--- `client:get_offers` on a default client built from `configure{}` or the
-- environment.
function M.get_offers(params)
  if default_client == nil then default_client = M.new(default_opts) end
  local offers, err = get(default_client, params, 3)
  return offers, err
end

M.Client = Client
return M
