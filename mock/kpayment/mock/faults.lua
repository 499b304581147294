--- kpayment.mock.faults: the fault modes of the mock.
--
-- A request asks for one with the header `X-Mock-Fault: <mode>` or with
-- `customerUUID=mock:<mode>`; the header wins. The modes, their arguments
-- and what they do are listed in kpayment.mock (init.lua).
--
--   faults.MODES                       every mode, in the documented order
--   faults.requested(headers, params)  the fault text a request asks for, or nil
--   faults.parse(text)                 mode and argument, or nil and the reason
--   faults.apply(text, params, seen)   a response when the fault answers by
--                                      itself; else nil, mode, argument
--   faults.body_options(mode, value)   offers_json options, and the number of
--                                      offers when the mode sets it
--   faults.shape(res, mode, value)     marks a response to be truncated or
--                                      delayed

local http = require("kpayment.mock.http")
local data = require("kpayment.mock.data")

local M = {}

local format, concat = string.format, table.concat
local error_response = data.error_response
local HTML, JSON_UTF8 = http.HTML, http.JSON_UTF8

local function html_page(status)
  local title = status .. " " .. http.REASONS[status]
  return format("<html>\r\n<head><title>%s</title></head>\r\n<body>\r\n<center><h1>%s</h1></center>\r\n"
    .. "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n", title, title)
end

local BAD_JSON = '{"financeOffers":[{"id":9007199254740993,"version":1,"status":"FUNDED","isActive":tru}]}'

-- Faults that answer at once, whatever the parameters.
local IMMEDIATE = {
  error500 = function()
    return error_response(500, "Internal server error",
      "An unexpected error occurred while fetching finance offers (fault error500).")
  end,
  html500 = function() return { status = 500, ctype = HTML, body = html_page(500) } end,
  html502 = function() return { status = 502, ctype = HTML, body = html_page(502) } end,
  ["503"] = function(seconds)
    return error_response(503, "Service temporarily unavailable",
      "The finance service is down for maintenance; retry later.",
      { { "Retry-After", tostring(seconds) } })
  end,
  ["429"] = function(seconds)
    return error_response(429, "Rate limit exceeded",
      "Too many requests for this service subscriber; retry later.",
      { { "Retry-After", tostring(seconds) } })
  end,
  empty502 = function() return { status = 502, ctype = HTML, body = "" } end,
  badjson = function() return { status = 200, ctype = JSON_UTF8, body = BAD_JSON } end,
  close = function() return { drop = true } end,
}

-- The fault modes that take an argument: its range and default. The other
-- modes parse() knows take none.
local FAULT_ARGS = {
  ["503"] = { min = 0, max = 86400, default = 1 },
  ["429"] = { min = 0, max = 86400, default = 1 },
  stall = { min = 0, max = 3600, default = 5, fraction = true },
  big = { min = 1, max = 268435456, default = 1048576 },
  offers = { min = 0, max = data.MAX_OFFERS }, -- default: the server's count
}

-- The modes that wrap a target (another mode, a URL): apply() reads them
-- before parse(), which only sees them when they are misspelt.
local WRAPPERS = { flaky = "flaky:n:mode", redirect = "redirect:url" }

M.MODES = { "error500", "html500", "html502", "503", "429", "empty502", "badjson",
  "close", "stall", "truncate", "big", "offers", "unicode", "flaky", "redirect" }
local IS_MODE = {}
for _, mode in ipairs(M.MODES) do IS_MODE[mode] = true end

--- The fault text a request asks for: the X-Mock-Fault header, else what
-- follows `mock:` in customerUUID; nil when neither.
function M.requested(headers, params)
  local fault = headers["x-mock-fault"]
  if not fault and params.customerUUID then fault = params.customerUUID:match("^mock:(.*)$") end
  return fault
end

--- Parses "mode" or "mode:arg"; returns mode and argument value, or nil and
-- the reason.
function M.parse(text)
  local mode, arg = text:match("^%s*([^:]-)%s*:(.-)%s*$")
  if not mode then mode, arg = text:match("^%s*(.-)%s*$"), "" end
  if not IS_MODE[mode] then
    return nil, format("unknown fault mode '%s' (known: %s)", mode, concat(M.MODES, ", "))
  end
  if WRAPPERS[mode] then
    return nil, format("fault mode '%s' is written %s", mode, WRAPPERS[mode])
  end
  local spec = FAULT_ARGS[mode]
  if arg == "" then return mode, spec and spec.default end
  if not spec then return nil, format("fault mode '%s' takes no argument", mode) end
  local value = arg:match(spec.fraction and "^%d*%.?%d+$" or "^%d+$") and tonumber(arg)
  if spec.fraction then
    value = value and value + 0.0
  else
    value = value and math.tointeger(value)
  end
  if not value or value < spec.min or value > spec.max then
    return nil, format("bad argument '%s' for fault mode '%s' (expected %s from %d to %d)",
      arg, mode, spec.fraction and "seconds" or "an integer", spec.min, spec.max)
  end
  return mode, value
end

--- Acts on a requested fault. seen counts the requests of each customer
-- and dealer for flaky:n:mode (the server's, emptied by /_mock/reset).
-- Returns the response when the fault decides it alone (a fault answering
-- at once, a redirect, a bad mode); otherwise nil, then the mode and its
-- argument that shape the normal response (no mode once a flaky fault has
-- passed).
function M.apply(text, params, seen)
  local flaky_n, flaky_rest = text:match("^flaky:(%d+):(.+)$")
  if flaky_n then
    -- the first n requests for this customer and dealer fail, later ones do not
    local key = (params.customerUUID or "") .. "\0" .. (params.dealerUUID or "")
    local count = (seen[key] or 0) + 1
    seen[key] = count
    if count > tonumber(flaky_n) then return nil end
    text = flaky_rest
  end
  local location = text:match("^redirect:(.+)$")
  if location then
    return { status = 302, ctype = HTML, body = "", headers = { { "Location", location } } }
  end
  local mode, value = M.parse(text)
  if not mode then return error_response(400, value, "Fault modes are listed in kpayment.mock.") end
  if IMMEDIATE[mode] then return IMMEDIATE[mode](value) end
  return nil, mode, value
end

--- Options for data.offers_json under mode, and the number of offers when
-- the mode sets it (nil: the server's count).
function M.body_options(mode, value)
  local opts = { unicode = mode == "unicode", min_bytes = mode == "big" and value or nil }
  return opts, mode == "offers" and value or nil
end

--- Marks a response (a 200 or a late 400) for truncate and stall.
function M.shape(res, mode, value)
  res.truncate = mode == "truncate"
  res.delay = mode == "stall" and value or nil
  return res
end

return M
