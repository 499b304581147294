--- Everything a client says or calls out to: the logger (every line
-- scrubbed of secrets), debug summaries of responses, the observability
-- hooks, and user callbacks run so that nothing they raise changes a
-- call's outcome.
-- @module kpayment.log

local errors = require("kpayment.errors")

local type, tostring, pcall, getmetatable = type, tostring, pcall, getmetatable
local string_format, string_rep = string.format, string.rep
local math_min, math_max = math.min, math.max
local table_concat = table.concat

local M = {}

--- The default logger: one line on stderr (looked up at each call, so a
-- host that swaps io.stderr is followed).
function M.stderr(level, message)
  io.stderr:write("kpayment [", tostring(level), "] ", tostring(message), "\n")
end

--- Log one line through the client's logger, scrubbed of its secrets.  A
-- logger that raises is reported once on stderr, with the line (running
-- out of memory is passed on, as everywhere).
function M.line(client, level, message)
  local secrets = client._secrets
  message = errors.scrub(message, secrets)
  local logger = client._logger
  local ok, why = pcall(logger, level, message)
  if not ok and errors.passes_through(why) then error(why, 0) end
  if not ok then
    M.stderr("error", "logger raised (" .. errors.scrub(errors.text(why), secrets) .. ") on: "
      .. level .. ": " .. message)
  end
end

--- Run a user callback; what it raises is logged at "error" and goes no
-- further, so the client and the other requests carry on.
function M.call(client, what, fn, ...)
  local ok, why = pcall(fn, ...)
  if not ok and errors.passes_through(why) then error(why, 0) end
  if not ok then M.line(client, "error", what .. " callback failed: " .. errors.text(why)) end
end

--- The table the `on_request` and `on_response` hooks of one attempt get
-- (the same table, filled in for the second), or nil when the client has
-- neither: the URL scrubbed as every log line is.
function M.hook_info(client, url, attempt)
  if client._on_request == nil and client._on_response == nil then return nil end
  return { method = "GET", url = errors.scrub(url, client._secrets), attempt = attempt }
end

--- Call the client's hook `name` ("on_request" or "on_response"), if it
-- has one, contained as every callback is.
function M.hook(client, name, info)
  local fn
  if name == "on_request" then fn = client._on_request else fn = client._on_response end
  if fn ~= nil then M.call(client, name, fn, info) end
end

-- UTF-8 characters, so masking never cuts one.
local CHAR = "[!-\127\194-\244][\128-\191]*"

-- "J*** G***", "******1234", "j***@example.com": enough to tell records apart.
local function mask(v, keep_tail)
  if type(v) ~= "string" or v == "" then return v end
  if keep_tail then
    local n = #v
    return string_rep("*", math_max(n - 4, 0)) .. v:sub(math_max(n - 3, 1))
  end
  local user, domain = v:match("^([^@]*)@(.+)$")
  if user then return (user:match("^" .. CHAR) or "") .. "***@" .. domain end
  return (v:gsub("(" .. CHAR .. ")%S*", "%1***"))
end

-- A summary of the first offers, personal data masked unless asked for.
-- Reads fields raw and calls accessors through the offer's metatable, so
-- server data (an offer with a field named like an accessor) cannot break
-- it.
local function describe(client, offers)
  local parts = {}
  for i = 1, math_min(#offers, 5) do
    local o = offers[i]
    local c = type(o.customer) == "table" and o.customer or {}
    local name, phone, email = getmetatable(o).customer_name(o), c.phone, c.email
    if not client._personal then name, phone, email = mask(name), mask(phone, true), mask(email) end
    parts[i] = string_format("#%s %s customer=%s phone=%s email=%s", tostring(o.id), tostring(o.status),
      tostring(name), tostring(phone), tostring(email))
  end
  return table_concat(parts, "; ")
end

--- Before each attempt: the insecure warning, and the request when debugging.
-- Inside nginx a line shows the URL without its query (customer ids are
-- personal data, and nginx's error log is read by many).
function M.attempt(client, url, attempt)
  if not client._url_in_logs then url = url:match("^[^?]*") end
  if client._insecure then
    M.line(client, "warn", "TLS verification is off (insecure = true): " .. url)
  end
  if client._debug then
    M.line(client, "debug", string_format("GET %s (attempt %d) Authorization: %s", url, attempt,
      client._auth and "[redacted]" or "(none)"))
  end
end

--- After an attempt, when debugging: offers (their metadata says the
-- time) or the error.
function M.outcome(client, offers, err)
  if not client._debug then return end
  if offers then
    local meta = getmetatable(offers).meta(offers)
    M.line(client, "debug", string_format("%d in %.1f ms, %d offer(s): %s", meta.status,
      (meta.total_time or 0) * 1000, #offers, describe(client, offers)))
  else
    M.line(client, "debug", tostring(err))
  end
end

M.mask = mask
return M
