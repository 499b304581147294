--- A misbehaving API for the command's specs (spec/cli_*_spec.lua): it
-- answers what the mock never does, picked by the request's customerUUID.
--
--   lua5.4 spec/support/cli_server.lua [seconds]
--   local s = require("support.cli_server").start()   -- s.url, s.pid, s.stop()
--
-- Prints its base URL as the first line of stdout, then serves one
-- connection at a time, each closed after one response, until killed or
-- for `seconds` (default 600).  Scenarios:
--
--   forged     200, one offer whose status holds a newline, a line that
--              looks like the command's own ("kpayment offers: forged
--              line") and a terminal escape (ESC [2J); its X-Request-Id
--              holds ESC, a terminal escape and bytes that are not UTF-8
--   big-ints   200, one offer with integers beyond int64 (id
--              12345678901234567890, lenderID -9223372036854775809), at its
--              edges (version 9223372036854775807) and above 2^53
--              (financeOfferId 9007199254740993), and one above 2^53 in a
--              field the API's reference does not list (odometer)
--   anything else: 404 with an API error
--
-- Only luasocket is needed (support.listen serves); run from the
-- checkout's top.

package.path = "spec/?.lua;" .. package.path
local send_response = require("support.respond")

local LIFETIME = tonumber(arg and arg[1]) or 600
local READ_TIMEOUT = 5

local FORGED_STATUS = [[OK\nkpayment offers: forged line\u001b[2J]]
local FORGED_REQUEST_ID = "id-\255\254\27[2J\27]0;title\7end"

local BODIES = {
  forged = '{"financeOffers":[{"id":1,"status":"' .. FORGED_STATUS .. '","isActive":true}]}',
  ["big-ints"] = '{"financeOffers":[{"id":12345678901234567890,"lenderID":-9223372036854775809,'
    .. '"version":9223372036854775807,"financeOfferId":9007199254740993,'
    .. '"odometer":9007199254740993,"status":"BIG"}]}',
}

local function unescape(s)
  s = s:gsub("%+", " ")
  return (s:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

local function respond(conn, status, body, headers)
  send_response(conn, status, status == 200 and "OK" or "Not Found", "application/json", body, headers)
end

local function serve(conn)
  conn:settimeout(READ_TIMEOUT)
  local request = conn:receive("*l")
  if not request then return end
  repeat
    local line = conn:receive("*l")
  until not line or line == ""
  local query = request:match("^%u+ [^?]*%?([^ #]*)") or ""
  local scenario = ""
  for pair in query:gmatch("[^&]+") do
    local name, value = pair:match("^([^=]*)=?(.*)$")
    if unescape(name) == "customerUUID" then scenario = unescape(value) end
  end
  local body = BODIES[scenario]
  if not body then
    respond(conn, 404, '{"errors":[{"errorCode":404,"errorMessage":"no such scenario"}]}')
  elseif scenario == "forged" then
    respond(conn, 200, body, { "X-Request-Id: " .. FORGED_REQUEST_ID })
  else
    respond(conn, 200, body)
  end
end

if ... == "support.cli_server" then
  -- required by a spec: start the server as its own process
  return {
    start = function()
      return require("support.server").start("spec/support/cli_server.lua", {}, "cli server")
    end,
  }
end

require("support.listen")("cli server", serve, LIFETIME)
