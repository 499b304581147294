--- An HTTP/1.1 server for the specs that answers each request with what it
-- received: the method, the target, every header as sent, and the body.
--
--   lua5.4 spec/support/echo_server.lua [seconds]
--
-- Prints its base URL (http://127.0.0.1:PORT) as the first line of stdout,
-- then serves one connection at a time, each closed after one response,
-- until killed or for `seconds` (default 600).  A request's body is read by
-- its Content-Length (every kpayment transport sends one with a body).
--
-- Answers:
--   GET /_count              200, the number of requests served before,
--                            /_count's own left out
--   /redirect?status=N&to=U  status N (a 3xx) with Location: U
--   anything else            200 application/octet-stream, the echo:
--
--     <method> <target>\n
--     <name>: <value>\n      one line per header, in the order received
--     \n
--     <the body's bytes, exactly>
--
-- (support.echo's `parse` reads it back.)  Only luasocket is needed: this
-- runs as its own process, from the checkout's top (support.listen serves).

package.path = "spec/?.lua;" .. package.path   -- run from the checkout's top

local LIFETIME = tonumber(arg and arg[1]) or 600   -- seconds, then exit
local READ_TIMEOUT = 5        -- seconds for a request's head and body
local MAX_HEAD = 65536        -- bytes of request line + headers
local MAX_BODY = 16 * 1024 * 1024

local served = 0

local respond = require("support.respond")

local function unescape(s)
  return (s:gsub("%+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- The request: method, target, headers (a list of { name, value } as
-- sent), body; nil on a broken or slow one.
local function read_request(conn)
  conn:settimeout(READ_TIMEOUT)
  local line = conn:receive("*l")
  if not line then return nil end
  local method, target = line:match("^(%u+) (%S+) HTTP/1%.[01]$")
  if not method then return nil end
  local headers, size, length = {}, #line, 0
  while true do
    local h = conn:receive("*l")
    if not h then return nil end
    size = size + #h
    if h == "" then break end
    if size > MAX_HEAD then return nil end
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    if name then
      headers[#headers + 1] = { name, value }
      if name:lower() == "content-length" then length = tonumber(value) or 0 end
    end
  end
  if length > MAX_BODY then return nil end
  local body = ""
  if length > 0 then
    body = conn:receive(length)
    if not body then return nil end
  end
  return method, target, headers, body
end

local function serve(conn)
  local method, target, headers, body = read_request(conn)
  if not method then return end
  local path, query = target:match("^([^?]*)%??(.*)$")
  if path == "/_count" then
    respond(conn, 200, "OK", "text/plain", tostring(served))
    return
  end
  served = served + 1
  if path == "/redirect" then
    local args = {}
    for pair in query:gmatch("[^&]+") do
      local k, v = pair:match("^([^=]*)=?(.*)$")
      args[unescape(k)] = unescape(v)
    end
    local status = tonumber(args.status) or 302
    respond(conn, status, "Redirect", "text/plain", "", { "Location: " .. (args.to or "/") })
    return
  end
  local out = { method .. " " .. target .. "\n" }
  for _, h in ipairs(headers) do out[#out + 1] = h[1] .. ": " .. h[2] .. "\n" end
  out[#out + 1] = "\n"
  out[#out + 1] = body
  respond(conn, 200, "OK", "application/octet-stream", table.concat(out))
end

require("support.listen")("echo server", serve, LIFETIME)
