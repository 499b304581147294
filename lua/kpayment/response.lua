--- A core outcome (see kpayment.core's request:outcome) as offers or an
-- error object.  The core has already decided the kind and whether a retry
-- may help, but for one case that only the decoded body shows: a 2xx that
-- carries the API's `errors` and no `financeOffers` failed (kind `http`,
-- not retryable), as the same body under a 4xx would.
-- @module kpayment.response

local core = require("kpayment.core")
local errors = require("kpayment.errors")
local offer = require("kpayment.offer")
local scrubber = require("kpayment.secrets")

local type, ipairs = type, ipairs
local string_sub, string_find = string.sub, string.find
local math_max = math.max

local SNIPPET = core.LIMITS.snippet

local M = {}

local TEXTS = { "errorMessage", "errorTitle", "errorDescription" }

local REASONS = {
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [407] = "Proxy Authentication Required", [408] = "Request Timeout",
  [429] = "Too Many Requests", [500] = "Internal Server Error", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

-- Where to cut a body for an error: SNIPPET bytes, or further to the end
-- of a secret that crosses that byte, so that scrubbing sees it whole (the
-- core keeps SNIPPET plus the longest secret's length for this).  Cutting
-- first and scrubbing after would leave the secret's head in the text.
local function cut_point(s, secrets)
  local cut, moved = SNIPPET, true
  while moved do
    moved = false
    for i = 1, #secrets do
      local secret = secrets[i]
      local b, e = string_find(s, secret, math_max(1, cut - #secret + 2), true)
      while b and b <= cut do
        if e > cut then cut, moved = e, true end
        b, e = string_find(s, secret, b + 1, true)
      end
    end
  end
  return cut
end

--- An error of kind "cancelled" for a request that was ended before its
-- outcome was taken.
function M.cancelled(attempts)
  return errors.new({ kind = "cancelled", message = "request cancelled", attempts = attempts })
end

-- The first of an API error's texts that says something.
local function error_text(e)
  for _, k in ipairs(TEXTS) do
    local v = e[k]
    if type(v) == "string" and v ~= "" then return v end
  end
  return nil
end

--- Offers, or nil and an error with `secrets` scrubbed from every string.
-- @tparam table o the core's outcome
-- @tparam table secrets strings to scrub (kpayment.config.secrets)
-- @return offers, nil and their metadata table (`offer.meta`), for the
-- caller to complete; or nil and the error
function M.from_outcome(o, secrets)
  local body = o.kind == nil and o.value
  if body and body.financeOffers == nil and type(body.errors) == "table" and body.errors[1] ~= nil then
    o = { kind = "http", status = o.status, retryable = false, errors = body.errors,
          warnings = body.warnings }
  elseif body then
    local offers = offer.wrap(body.financeOffers or {})
    -- every field the caller fills in too (kpayment.async), so the
    -- table is made at its final size
    -- the API's warnings are its texts, as its errors are: they may echo
    -- what it was sent
    local warnings = body.warnings
    if warnings ~= nil and #secrets > 0 then warnings = scrubber.scrub_value(warnings, secrets) end
    local meta = { status = o.status, warnings = warnings, attempts = nil,
                   request_id = nil, total_time = nil }
    offer.meta(offers, meta)
    return offers, nil, meta
  end
  local e = {
    -- the transport's message is cut to the core's limit before it is
    -- scrubbed: a secret's start at its end goes too
    kind = o.kind, status = o.status, curl_code = o.curl_code,
    message = o.message and errors.scrub(o.message, secrets, true),
    retryable = o.retryable, errors = o.errors, warnings = o.warnings, body = o.body,
    decode_message = o.decode_message,
  }
  if o.kind == "http" then
    local first = type(o.errors) == "table" and o.errors[1]
    if type(first) == "table" then
      e.code = first.errorCode
      e.message = error_text(first)
    end
    if e.message == nil then
      e.message = "HTTP " .. o.status .. (REASONS[o.status] and (" " .. REASONS[o.status]) or "")
    end
  end
  if type(e.body) == "string" and #e.body > SNIPPET then
    -- a secret longer than the core kept past the snippet (a token fetched
    -- after the client was made) is cut there: its start at the end goes
    e.body = errors.scrub(string_sub(e.body, 1, cut_point(e.body, secrets)), secrets, true)
  end
  errors.redact(e, secrets)
  if type(e.body) == "string" and #e.body > SNIPPET then e.body = string_sub(e.body, 1, SNIPPET) end
  return nil, errors.new(e)
end

return M
