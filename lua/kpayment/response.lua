--- Turning a finished transfer (or a failed one) into offers or an error.
-- Shared by every transport: each reports a status and a decoded body.
-- @module kpayment.response

local errors = require("kpayment.errors")
local offer = require("kpayment.offer")

local type = type

local M = {}

-- libcurl failures worth another attempt: the request may well succeed.
local RETRYABLE_CURL = {
  [5] = true,  -- couldn't resolve proxy
  [6] = true,  -- couldn't resolve host
  [7] = true,  -- couldn't connect
  [16] = true, -- HTTP/2 framing
  [18] = true, -- partial file (truncated body)
  [28] = true, -- timed out
  [52] = true, -- got nothing
  [55] = true, -- send error
  [56] = true, -- receive error
  [92] = true, -- HTTP/2 stream
}

local RETRYABLE_STATUS = { [408] = true, [429] = true, [502] = true, [503] = true, [504] = true }

local REASONS = {
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout", [429] = "Too Many Requests",
  [500] = "Internal Server Error", [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout",
}

--- The transfer failed before a complete response arrived.
-- @param kind "network", "timeout", "tls", "body_too_large" or "cancelled"
function M.transport_error(kind, message, curl_code, status)
  return errors.new({
    kind = kind,
    status = status,
    message = message,
    curl_code = curl_code,
    retryable = kind == "timeout" or (kind == "network" and RETRYABLE_CURL[curl_code] == true),
  })
end

local function is_api_error_body(v)
  return type(v) == "table" and (type(v.errors) == "table" or type(v.warnings) == "table")
end

local function http_error(status, body, decode_msg, snippet)
  local e = {
    kind = "http",
    status = status,
    retryable = RETRYABLE_STATUS[status] == true,
  }
  if is_api_error_body(body) then
    e.errors, e.warnings = body.errors, body.warnings
    local first = type(body.errors) == "table" and body.errors[1]
    if type(first) == "table" then
      e.code = first.errorCode
      e.message = first.errorMessage or first.errorTitle or first.errorDescription
    end
    -- A 500 with the API's own errors is the API's answer, not a hiccup.
  else
    e.body = snippet
    e.decode_message = decode_msg
    if status == 500 then e.retryable = true end
  end
  if e.message == nil then
    e.message = "HTTP " .. status .. (REASONS[status] and (" " .. REASONS[status]) or "")
  end
  return errors.new(e)
end

local MONTHS = { Jan = "01", Feb = "02", Mar = "03", Apr = "04", May = "05", Jun = "06",
                 Jul = "07", Aug = "08", Sep = "09", Oct = "10", Nov = "11", Dec = "12" }

--- Seconds a Retry-After header asks to wait: delta-seconds, or an HTTP
-- date (`Wed, 21 Oct 2015 07:28:00 GMT`) measured from `now` (default
-- os.time()); nil when absent or unreadable.
function M.retry_after_seconds(v, now)
  if type(v) ~= "string" then return nil end
  local n = v:match("^%s*(%d+)%s*$")
  if n then return tonumber(n) end
  local d, mon, y, hms = v:match("^%a%a%a, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d:%d%d:%d%d) GMT$")
  local t = d and MONTHS[mon] and offer.parse_time(y .. "-" .. MONTHS[mon] .. "-" .. d .. "T" .. hms .. "Z")
  if not t then return nil end
  local wait = t - (now or os.time())
  return wait > 0 and wait or 0
end

--- A complete response: `body` is the decoded JSON, or nil with
-- `decode_msg` and the first bytes of the raw body in `snippet`.
-- @return offers, or nil and an error
function M.from_response(status, body, decode_msg, snippet)
  if status < 200 or status > 299 then
    return nil, http_error(status, body, decode_msg, snippet)
  end
  if body == nil then
    return nil, errors.new({ kind = "decode", status = status, message = decode_msg, body = snippet })
  end
  if type(body) ~= "table" then
    return nil, errors.new({ kind = "decode", status = status,
      message = "expected a JSON object with 'financeOffers'" })
  end
  local list = body.financeOffers
  if list == nil then
    list = {}   -- a Java backend writes an empty list as null: key absent
  elseif type(list) ~= "table" then
    return nil, errors.new({ kind = "decode", status = status,
      message = "'financeOffers' is not an array" })
  end
  local offers = offer.wrap(list)
  offer.meta(offers, { status = status, warnings = body.warnings })
  return offers
end

return M
