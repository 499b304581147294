--- kpayment.mock.oauth: the mock's OAuth2 token endpoint (RFC 6749 §4.4,
-- the client credentials grant) and the bearer tokens it issues.
--
-- What the endpoint answers, its fault modes and control endpoints are
-- listed in kpayment.mock (init.lua). Here:
--
--   oauth.PATH, oauth.DEFAULT_TTL, oauth.DEFAULT_SCOPE, oauth.MAX_TTL
--   oauth.FAULTS                    the token fault modes, documented order
--   oauth.check_options(opts)       true, or nil and a message (client_id,
--                                   client_secret, token_ttl, scope)
--   oauth.parse_fault(text)         a fault { mode, value, text }, or nil
--                                   and the reason
--   oauth.parse_ttl(text)           seconds, or nil
--   oauth.new(opts)                 the endpoint's state:
--     state:respond(req)            the response to a request to PATH, and
--                                   its form parameters for the request log
--                                   (client_secret replaced)
--     state:check(token)            true, or false and why a bearer token
--                                   is refused
--     state:expire_all()            how many valid tokens it expired
--     state:reset()                 the counter, the fault and the ttl back
--                                   to how the server started
--     state.requests, state.ttl, state.fault (nil: none)

local socket = require("socket")
local mime = require("mime")
local json = require("kpayment.json")
local http = require("kpayment.mock.http")

local M = {
  PATH = "/oauth2/token",
  DEFAULT_TTL = 3600,
  DEFAULT_SCOPE = "payment.financeOffer.read",
  MAX_TTL = 31536000, -- a year
  FAULTS = { "none", "500", "badjson", "slow[:s]", "close", "error:code" },
}

local format = string.format
local gettime = socket.gettime
local obj, encode = json.object, json.encode
local JSON_UTF8 = http.JSON_UTF8

local SLOW = { default = 5, max = 3600 }

-- n random bytes as hex, from /dev/urandom: a token no one can guess
-- (math.random's seed is not enough under every runtime the specs use).
local function random_hex(n)
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(n)
  if f then f:close() end
  if not bytes or #bytes < n then
    bytes = format("%0" .. n .. "x", math.random(0, 0x7fffffff) ~ math.floor(gettime() * 1000))
  end
  return (bytes:gsub(".", function(c) return format("%02x", c:byte()) end))
end
local REDACTED = "[redacted]"
local PRUNE_AT = 10000 -- tokens kept before expired ones are forgotten

-- The §5.2 error codes and the status each is sent with.
local ERROR_STATUS = {
  invalid_request = 400, invalid_client = 401, invalid_grant = 400,
  unauthorized_client = 400, unsupported_grant_type = 400, invalid_scope = 400,
}
local CHALLENGE = { "WWW-Authenticate", 'Basic realm="kpayment-mock"' }

local BAD_JSON = '{"access_token":"mock-badjson","token_type":"Bearer","expires_in":tru}'

---------------------------------------------------------------------------
-- Options and parsing

--- Seconds from "3600", "0.5", ".5"; nil for anything else or out of range.
function M.parse_ttl(text)
  local value = type(text) == "string" and text:match("^%d*%.?%d+$") and tonumber(text)
  if not value or value > M.MAX_TTL then return nil end
  return math.tointeger(value) or value
end

-- Whether s is a scope (RFC 6749 §3.3): scope-tokens of printable ASCII
-- but `"` and `\`, one space apart.
local function valid_scope(s)
  if s == "" or s:find("^ ") or s:find(" $") or s:find("  ", 1, true) then return false end
  return not s:find('[^\33-\126 ]') and not s:find('["\\]')
end

function M.check_options(opts)
  for _, key in ipairs({ "client_id", "client_secret", "scope" }) do
    if opts[key] ~= nil and type(opts[key]) ~= "string" then
      return nil, key .. " must be a string"
    end
  end
  if (opts.client_id == nil) ~= (opts.client_secret == nil) then
    return nil, "client_id and client_secret go together"
  end
  if opts.client_id == nil and (opts.token_ttl ~= nil or opts.scope ~= nil) then
    return nil, "token_ttl and scope need client_id and client_secret"
  end
  local ttl = opts.token_ttl
  if ttl ~= nil and (type(ttl) ~= "number" or ttl ~= ttl or ttl < 0 or ttl > M.MAX_TTL) then
    return nil, "token_ttl must be a number of seconds from 0 to " .. M.MAX_TTL
  end
  if opts.scope ~= nil and not valid_scope(opts.scope) then
    return nil, "scope must be scope tokens (printable ASCII but \" and \\) separated by single spaces"
  end
  return true
end

--- Parses a token fault: none, 500, badjson, slow[:s], close, error:code.
function M.parse_fault(text)
  text = text:match("^%s*(.-)%s*$")
  local mode, arg = text:match("^([^:]*):(.*)$")
  if not mode then mode = text end
  if (mode == "none" or mode == "500" or mode == "badjson" or mode == "close") and not arg then
    if mode == "none" then return nil end
    return { mode = mode, text = mode }
  elseif mode == "slow" then
    local value = SLOW.default
    if arg then
      value = arg:match("^%d*%.?%d+$") and tonumber(arg)
      if not value or value > SLOW.max then
        return nil, format("bad argument '%s' for token fault 'slow' (expected seconds from 0 to %d)",
          arg, SLOW.max)
      end
    end
    return { mode = mode, value = value, text = "slow:" .. (arg or value) }
  elseif mode == "error" and arg and ERROR_STATUS[arg] then
    return { mode = mode, value = arg, text = text }
  elseif mode == "error" then
    return nil, format("token fault 'error' is written error:code, code one of invalid_request, "
      .. "invalid_client, invalid_grant, unauthorized_client, unsupported_grant_type, invalid_scope")
  end
  return nil, format("unknown token fault '%s' (known: %s)", text, table.concat(M.FAULTS, ", "))
end

-- A form body's parameters (application/x-www-form-urlencoded): a map, the
-- names in order, and the first name that repeats, if one does.
local function parse_form(body)
  local map, names, repeated = {}, {}, nil
  for pair in body:gmatch("[^&]+") do
    local name, value = pair:match("^([^=]*)=?(.*)$")
    name, value = http.unescape(name), http.unescape(value)
    if map[name] == nil then
      map[name] = value
      names[#names + 1] = name
    else
      repeated = repeated or name
    end
  end
  return map, names, repeated
end

-- client_id and client_secret from an HTTP Basic value, each
-- form-urlencoded before Base64 (§2.3.1); nil when it is malformed.
local function basic_credentials(value)
  if #value % 4 ~= 0 or not value:match("^[%w+/]*=?=?$") then return nil end
  local decoded = mime.unb64(value)
  local id, secret = (decoded or ""):match("^([^:]*):(.*)$")
  if not id then return nil end
  return http.unescape(id), http.unescape(secret)
end

---------------------------------------------------------------------------
-- Responses

local function oauth_error(code, description, extra)
  local headers = { { "Cache-Control", "no-store" }, { "Pragma", "no-cache" } }
  for _, header in ipairs(extra or {}) do headers[#headers + 1] = header end
  if code == "invalid_client" then headers[#headers + 1] = CHALLENGE end
  return { status = ERROR_STATUS[code], ctype = JSON_UTF8, headers = headers,
    body = encode(obj("error", code, "error_description", description)) }
end

local IMMEDIATE = {
  ["500"] = function()
    return { status = 500, ctype = JSON_UTF8, headers = { { "Cache-Control", "no-store" } },
      body = encode(obj("error", "server_error", "error_description",
        "The token service failed (token fault 500).")) }
  end,
  badjson = function()
    return { status = 200, ctype = JSON_UTF8, body = BAD_JSON,
      headers = { { "Cache-Control", "no-store" }, { "Pragma", "no-cache" } } }
  end,
  close = function() return { drop = true } end,
  error = function(code) return oauth_error(code, "Token fault error:" .. code .. ".") end,
}

---------------------------------------------------------------------------
-- State

local State = {}
State.__index = State

function M.new(opts)
  return setmetatable({
    client_id = opts.client_id,
    client_secret = opts.client_secret,
    configured_ttl = opts.token_ttl or M.DEFAULT_TTL,
    ttl = opts.token_ttl or M.DEFAULT_TTL,
    scope = opts.scope or M.DEFAULT_SCOPE,
    requests = 0,
    fault = nil,
    tokens = {}, -- token → the time it expires
    issued = 0,
    kept = 0,
  }, State)
end

function State:reset()
  self.requests, self.fault, self.ttl = 0, nil, self.configured_ttl
end

function State:check(token)
  local expires = self.tokens[token]
  if not expires then return false, "The access token is unknown to this server." end
  if expires <= gettime() then return false, "The access token expired." end
  return true
end

function State:expire_all()
  local now, n = gettime(), 0
  for token, expires in pairs(self.tokens) do
    if expires > now then
      self.tokens[token], n = now, n + 1
    end
  end
  return n
end

function State:_issue(scope)
  local now = gettime()
  if self.kept >= PRUNE_AT then -- forget expired tokens, long expired or not
    self.kept = 0
    for token, expires in pairs(self.tokens) do
      if expires <= now then self.tokens[token] = nil else self.kept = self.kept + 1 end
    end
  end
  self.issued = self.issued + 1
  local token = format("mock-at-%d-%s", self.issued, random_hex(8))
  self.tokens[token], self.kept = now + self.ttl, self.kept + 1
  return { status = 200, ctype = JSON_UTF8,
    headers = { { "Cache-Control", "no-store" }, { "Pragma", "no-cache" } },
    body = encode(obj("access_token", token, "token_type", "Bearer",
      "expires_in", math.ceil(self.ttl), "scope", scope)) }
end

-- The scope granted for a requested one (nil: the configured scope), or nil
-- and the first scope-token that is not configured.
function State:_scope(requested)
  if not requested then return self.scope end
  if not valid_scope(requested) then return nil, requested end
  local allowed = {}
  for token in self.scope:gmatch("%S+") do allowed[token] = true end
  for token in requested:gmatch("%S+") do
    if not allowed[token] then return nil, token end
  end
  return requested
end

-- The response to a POST, once the fault modes that answer alone are out
-- of the way.
function State:_answer(req, form, repeated)
  local ctype = (req.headers["content-type"] or ""):match("^%s*([^;%s]*)"):lower()
  if ctype ~= "application/x-www-form-urlencoded" then
    return oauth_error("invalid_request",
      "The request body must be application/x-www-form-urlencoded.")
  end
  if not req.body then return oauth_error("invalid_request", "The request body is too large.") end
  if repeated then
    return oauth_error("invalid_request", "Parameter " .. repeated .. " is repeated.")
  end
  -- parameters without a value count as omitted (§3.1)
  local function param(name) return form[name] ~= "" and form[name] or nil end

  local id, secret
  local authorization = req.headers.authorization
  if authorization then
    if param("client_secret") then
      return oauth_error("invalid_request", "The client authenticates with more than one method.")
    end
    local scheme, value = authorization:match("^(%S+)[ \t]+(.-)[ \t]*$")
    if not scheme or scheme:lower() ~= "basic" then
      return oauth_error("invalid_client", "Client authentication must use HTTP Basic.")
    end
    id, secret = basic_credentials(value)
    if not id then return oauth_error("invalid_client", "The Basic credentials are malformed.") end
  else
    id, secret = param("client_id"), param("client_secret")
    if not id or not secret then
      return oauth_error("invalid_client", "Client authentication is required.")
    end
  end
  if id ~= self.client_id or secret ~= self.client_secret then
    return oauth_error("invalid_client", "Unknown client or wrong client secret.")
  end

  local grant = param("grant_type")
  if not grant then return oauth_error("invalid_request", "grant_type is required.") end
  if grant ~= "client_credentials" then
    return oauth_error("unsupported_grant_type", "Only grant_type=client_credentials is supported.")
  end
  local scope, bad = self:_scope(param("scope"))
  if not scope then
    return oauth_error("invalid_scope", "Scope " .. bad .. " is not granted to this client.")
  end
  return self:_issue(scope)
end

--- The response to a request to PATH, and the parameters to log: the form
-- body's, in order, as a flat name, value list (client_secret redacted).
function State:respond(req)
  local form, names, repeated = parse_form(req.body or "")
  local logged = {}
  for _, name in ipairs(names) do
    logged[#logged + 1] = name
    logged[#logged + 1] = name == "client_secret" and REDACTED or form[name]
  end
  if req.method ~= "POST" then
    local res = oauth_error("invalid_request", "The token endpoint only supports POST.",
      { { "Allow", "POST" } })
    res.status = 405
    return res, logged
  end
  self.requests = self.requests + 1
  local fault = self.fault
  if fault and IMMEDIATE[fault.mode] then return IMMEDIATE[fault.mode](fault.value), logged end
  local res = self:_answer(req, form, repeated)
  if fault and fault.mode == "slow" then res.delay = fault.value end
  return res, logged
end

return M
