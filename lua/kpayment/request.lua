--- Building a getFinanceOffersForCustomer request: parameter checks and the
-- URL.  Transport-independent, so every transport sends the same request.
-- @module kpayment.request

local string_byte, string_format, string_gsub, string_find =
  string.byte, string.format, string.gsub, string.find
local type, pairs, tostring = type, pairs, tostring

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

--- Check a base URL: http(s), no credentials, query or fragment in it.
-- @return the URL without a trailing slash, or nil and a message
function M.check_base_url(url)
  if type(url) ~= "string" then
    return nil, "bad option 'base_url' (string expected, got " .. type(url) .. ")"
  end
  local authority = url:match("^[Hh][Tt][Tt][Pp][Ss]?://([^/?#]*)")
  if not authority or authority == "" then
    return nil, "bad option 'base_url' (expected http:// or https:// and a host)"
  end
  if authority:find("@", 1, true) then
    return nil, "bad option 'base_url' (credentials in the URL; use username/password)"
  end
  if url:find("[?#%s%c]") then
    return nil, "bad option 'base_url' (must not contain a query, fragment or whitespace)"
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
      return nil, "unknown parameter '" .. tostring(k) .. "'"
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

return M
