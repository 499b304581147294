--- Runs spec/support/echo_server.lua (a server that answers each request
-- with what it received) as a separate process for busted specs, and reads
-- its answers back.
--
--   local echo = require("support.echo")
--   local e = echo.start()
--   -- e.url, e.pid, e.stop()
--   local got = echo.parse(body)
--   -- got.method, got.target, got.headers (lower-case name -> value),
--   -- got.list ({ name, value } as sent), got.body
--   echo.all(got, "authorization")   -- every value of that header, in order

local server = require("support.server")

local M = {}

--- Starts the server; returns a handle once it serves, or raises with the
-- server's stderr.
function M.start()
  return server.start("spec/support/echo_server.lua", {}, "echo server")
end

--- What the server received, from its answer's body; nil for anything
-- else.
function M.parse(text)
  if type(text) ~= "string" then return nil end
  local head_end = text:find("\n\n", 1, true)
  if not head_end then return nil end
  local lines = {}
  for line in text:sub(1, head_end):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local method, target = lines[1]:match("^(%S+) (%S+)$")
  local got = { method = method, target = target, headers = {}, list = {},
                body = text:sub(head_end + 2) }
  for i = 2, #lines do
    local name, value = lines[i]:match("^([^:]+): ?(.*)$")
    if name then
      got.list[#got.list + 1] = { name, value }
      got.headers[name:lower()] = value
    end
  end
  return got
end

--- The values of every header named `name` (lower case; any case
-- matches) in what the server received, in order.
function M.all(got, name)
  local out = {}
  for _, h in ipairs(got.list) do
    if h[1]:lower() == name then out[#out + 1] = h[2] end
  end
  return out
end

return M
