--- The error object returned as the second value when a call fails, and
-- the scrubbing of secrets from it.
-- @module kpayment

local setmetatable, getmetatable, tostring, type, pairs =
  setmetatable, getmetatable, tostring, type, pairs
local string_gsub = string.gsub
local secrets = require("kpayment.secrets")
local scrub_value = secrets.scrub_value

local M = {}

--- What a call that failed at run time returns as its second value
-- (`kpayment.is_error` tells it from other values).  Programming errors
-- (bad options or parameters) raise instead.  Secrets (the password, the
-- bearer token, the Basic header value, proxy credentials) are replaced by
-- `[redacted]` in every string it carries, keys included.
--
-- Which kind when: `http` for any non-2xx status, and for a 2xx whose
-- body has the API's `errors` and no `financeOffers` (a JSON body with
-- `errors` fills `errors`, `warnings`, `code` and `message`; anything else
-- fills `body`); `decode` for a 2xx whose body is not valid JSON, not an
-- object, or whose `financeOffers` is not an array of objects;
-- `body_too_large` over the `max_body` option; `tls` for certificate and
-- handshake failures; `timeout` and `network` for the rest of the
-- transport's failures; `cancelled` for a request cancelled, or whose
-- client was closed, before its outcome was taken.
-- @type Error

--- The fields of an error table.
-- @table fields
-- @tfield string kind `"network"`, `"timeout"`, `"tls"`, `"http"`,
-- `"decode"`, `"body_too_large"`, `"cancelled"` or `"auth"` (the OAuth2
-- token endpoint failed: `status` is its HTTP status, `retryable` when it
-- was unreachable, timed out or answered 5xx)
-- @tfield ?string oauth_error with kind `"auth"`: the endpoint's `error`
-- (`"invalid_client"`, …)
-- @tfield ?string error_description with kind `"auth"`: the endpoint's
-- `error_description`
-- @tfield ?integer status the HTTP status; nil when no response arrived
-- @tfield ?string message the first API error's `errorMessage` (else its
-- `errorTitle`, else its `errorDescription`: the first non-empty text), or the
-- transport's or the decoder's message (a decode error gives the byte
-- offset)
-- @tfield ?integer code the first API error's `errorCode`
-- @tfield ?table errors the API's `errors` array, when the error body had one
-- @tfield ?table warnings the API's `warnings` array, when the body had one
-- @tfield boolean retryable whether another attempt may succeed: `true` for
-- connection failures, timeouts, truncated bodies, HTTP 408, 429, 502, 503,
-- 504, and a 500 whose body is not the API's error (a gateway's page);
-- never for TLS failures
-- @tfield ?string body the first 512 bytes of a body that was not the
-- API's JSON (an HTML page, an empty body)
-- @tfield ?integer curl_code libcurl's code for transport failures (7
-- refused, 28 timeout, 18 truncated, 52 nothing received, …); absent with
-- other transports
-- @tfield integer attempts how many attempts the call made
-- @tfield ?string request_id the server's `X-Request-Id` or
-- `X-Correlation-Id`, when it sent one
-- @tfield number total_time seconds the call took, all attempts together
-- @tfield ?boolean joined `true` when the call joined one already in flight
-- on its client (the `coalesce` option), `false` when it made the call;
-- nil when it did not share
local Error = {}
Error.__index = Error
Error.__name = "kpayment.Error"

--- One readable line: kind, HTTP status, message and API code, as in
-- `kpayment: http error (HTTP 401): Invalid credentials [code 401]`.
-- @function __tostring
-- @treturn string
function Error.__tostring(e)
  local s = "kpayment: " .. tostring(e.kind) .. " error"
  if e.status then s = s .. " (HTTP " .. tostring(e.status) .. ")" end
  if e.message then s = s .. ": " .. string_gsub(tostring(e.message), "[%c]+", " ") end
  if e.code ~= nil and e.kind == "http" then s = s .. " [code " .. tostring(e.code) .. "]" end
  return s
end

--- Make an error table.
-- @tparam table fields kind, status, message, code, errors, warnings, body, retryable, curl_code
-- @local
function M.new(fields)
  if fields.retryable == nil then fields.retryable = false end
  return setmetatable(fields, Error)
end

--- A caller's own copy of an error that several callers get (a shared
-- call's): its fields, not its nested tables.
-- @local
function M.copy(e)
  local own = {}
  for k, v in pairs(e) do own[k] = v end
  return setmetatable(own, Error)
end

--- True for errors made by this module.
-- @local
function M.is(v)
  return type(v) == "table" and getmetatable(v) == Error
end

--- `v` as text for a message, whatever a user's code made it: what
-- `tostring` gives, or a description when its `__tostring` raises or gives
-- no string (user code may raise anything; kpayment's outcome must not
-- depend on it).  Running out of memory is passed on.
-- @local
function M.text(v)
  if type(v) == "string" then return v end
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  if not ok and M.passes_through(s) then error(s, 0) end
  return "(a " .. type(v) .. " that cannot be shown: its __tostring " ..
    (ok and "gave no string" or "raised") .. ")"
end

--- True for the errors that code containing user functions (pcall)
-- passes on instead of logging and carrying on: running out of memory
-- (nobody's mistake), and the interpreter's "interrupted!" (its SIGINT:
-- Ctrl-C is the user's, wherever Lua happened to be).
-- @local
function M.passes_through(why)
  return why == "not enough memory" or why == "interrupted!"
end

--- `s` scrubbed of `secrets` (kpayment.secrets, the one scrubber).
-- @local
M.scrub = secrets.scrub

--- Scrub every string the error carries (message, code, errors and
-- warnings at any depth, body, …) of the given secrets, in place.
-- @local
function M.redact(e, list)
  if #list == 0 then return e end
  local fields = {}
  for k, v in pairs(e) do fields[k] = v end
  for k, v in pairs(fields) do
    e[k] = scrub_value(v, list)
  end
  return e
end

--- Base64 of `s` (RFC 4648, padded): what an `Authorization: Basic`
-- header carries, so that an echo of it can be scrubbed too.  The C core's,
-- which also builds that header.
-- @local
M.base64 = require("kpayment.core").base64

M.Error = Error
return M
