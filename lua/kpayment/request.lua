--- Building a getFinanceOffersForCustomer request: parameter checks and the
-- URL.  Transport-independent, so every transport sends the same request.
-- @module kpayment.request

local string_byte, string_format, string_gsub, string_find =
  string.byte, string.format, string.gsub, string.find
local type, pairs, tonumber = type, pairs, tonumber
local text = require("kpayment.errors").text

local M = {}

M.PATH = "/payment/kpayment/v1/finance/getFinanceOffersForCustomer"

--- Longest parameter value accepted, in bytes.
M.MAX_VALUE = 1024

-- Per-call parameters: Lua name -> API query name, in the order sent.
local PARAMS = {
  { "customer_uuid", "customerUUID" },
  { "dealer_uuid", "dealerUUID" },
  { "skin", "skin" },
  { "locale", "locale" },
}
local KNOWN = {}
for _, p in pairs(PARAMS) do KNOWN[p[1]] = true end
local NAME1, NAME2, NAME3, NAME4 = PARAMS[1][1], PARAMS[2][1], PARAMS[3][1], PARAMS[4][1]

local function encode_byte(c)
  return string_format("%%%02X", string_byte(c))
end

--- Percent-encode everything but RFC 3986's unreserved characters, so `&`,
-- `=`, `#`, `+`, space or UTF-8 stay inside their value.
function M.escape(s)
  return (string_gsub(s, "[^%w%-%._~]", encode_byte))
end

--- Check one parameter value.  `missing`, when given, says where else a
-- value may come from (for a parameter with a client default).
-- @return the value, or nil and a message naming the parameter
function M.check_value(name, v, missing)
  if v == nil and missing then
    return nil, string_format("bad parameter '%s' (no value: %s)", name, missing)
  end
  if type(v) ~= "string" then
    return nil, string_format("bad parameter '%s' (string expected, got %s)", name,
      v == nil and "no value" or type(v))
  end
  if v == "" then
    return nil, string_format("bad parameter '%s' (empty string)", name)
  end
  if #v > M.MAX_VALUE then
    return nil, string_format("bad parameter '%s' (longer than %d bytes)", name, M.MAX_VALUE)
  end
  if string_find(v, "[%z\1-\31\127]") then
    return nil, string_format("bad parameter '%s' (contains control characters)", name)
  end
  return v
end

--- Check a base URL whole, as the client is made: `http` or `https`, a
-- host (a name, an IPv4 address, or an IPv6 one in brackets), an optional
-- port from 1 to 65535, an optional path; no credentials (no "@" at all),
-- query, fragment, whitespace or control character.  The message names the part at fault.
-- @return the URL without a trailing slash, or nil and a message
function M.check_base_url(url)
  local function bad(why) return nil, "bad option 'base_url' (" .. why .. ")" end
  if type(url) ~= "string" then return bad("string expected, got " .. type(url)) end
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return bad("expected http:// or https:// and a host") end
  local lower = scheme:lower()
  if lower ~= "http" and lower ~= "https" then
    return bad("scheme '" .. scheme .. "' is not http or https")
  end
  -- anywhere, not only before the first "/": a "/" left unencoded in a
  -- password would end the host there, and what follows must not be quoted
  -- as a port nor taken for a path
  if url:find("@", 1, true) then
    return bad("has credentials (user@): give username and password instead")
  end
  if url:find("[%s%c]") then return bad("contains whitespace or control characters") end
  if url:find("#", 1, true) then return bad("has a fragment (#…)") end
  if url:find("?", 1, true) then return bad("has a query (?…): parameters go to each call") end
  local authority = rest:match("^[^/]*")
  local host, port = authority:match("^(%[[^%]]*%])(.*)$")
  if host then
    if not host:find("^%[[%x:.]+%]$") or not host:find(":", 1, true) then
      return bad("host " .. host .. " is not an IPv6 address")
    end
  else
    host, port = authority:match("^([^:]*)(.*)$")
  end
  if host == "" then return bad("has no host") end
  if not host:find("^%[") and not host:find("^[%w._-]+$") then
    return bad("host '" .. host .. "' has characters a host name cannot have")
  end
  if port ~= "" then
    local digits = port:match("^:(%d+)$")
    if not digits then return bad("port '" .. port:sub(2) .. "' is not a number") end
    local n = tonumber(digits)
    if n < 1 or n > 65535 then return bad("port " .. digits .. " is not from 1 to 65535") end
  end
  return (string_gsub(url, "/+$", ""))
end

--- Build the request URL from call parameters over client defaults.
-- @tparam string base checked base URL
-- @tparam table params per-call parameters
-- @tparam table defaults `skin` / `locale` defaults
-- @tparam[opt] table extra other keys the caller accepts (e.g. `fields`)
-- @tparam[opt] table missing per parameter with a default, where a value
-- may come from (for the message when there is none)
-- @return url, or nil and a message naming the offending parameter
function M.url(base, params, defaults, extra, missing)
  if type(params) ~= "table" then
    return nil, "bad parameters (table expected, got " .. type(params) .. ")"
  end
  for k in pairs(params) do
    if not KNOWN[k] and not (extra and extra[k]) then
      return nil, "unknown parameter '" .. text(k) .. "'"
    end
  end
  local parts, n = { base, M.PATH }, 2
  for i = 1, #PARAMS do
    local name, api = PARAMS[i][1], PARAMS[i][2]
    local v = params[name]
    if v == nil then v = defaults[name] end
    local ok, err = M.check_value(name, v, missing and missing[name])
    if not ok then return nil, err end
    parts[n + 1] = i == 1 and "?" or "&"
    parts[n + 2] = api
    parts[n + 3] = "="
    parts[n + 4] = M.escape(v)
    n = n + 4
  end
  return table.concat(parts, "", 1, n)
end

--- `M.url` with a one-entry cache: a client calls for the same customer
-- again and again, and checking and escaping its values then concatenating
-- them cost as much as a small response's transfer.  Both depend on the
-- values alone, so when the four values are those of the last URL built
-- (the same strings), that URL is the answer.  The unknown-key check runs
-- every call.
-- @tparam table cache the caller's, empty at first; holds the last values and URL
-- @return url, or nil and a message, as `M.url`
function M.cached_url(cache, base, params, defaults, extra, missing)
  if type(params) == "table" then
    local v1, v2, v3, v4 = params[NAME1], params[NAME2], params[NAME3], params[NAME4]
    if v1 == nil then v1 = defaults[NAME1] end
    if v2 == nil then v2 = defaults[NAME2] end
    if v3 == nil then v3 = defaults[NAME3] end
    if v4 == nil then v4 = defaults[NAME4] end
    if v1 == cache[1] and v2 == cache[2] and v3 == cache[3] and v4 == cache[4] and v1 ~= nil then
      for k in pairs(params) do
        if not KNOWN[k] and not (extra and extra[k]) then
          return nil, "unknown parameter '" .. text(k) .. "'"
        end
      end
      return cache[5]
    end
    local url, err = M.url(base, params, defaults, extra, missing)
    if url then cache[1], cache[2], cache[3], cache[4], cache[5] = v1, v2, v3, v4, url end
    return url, err
  end
  return M.url(base, params, defaults, extra, missing)
end

return M
