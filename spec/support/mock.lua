--- Runs bin/kpayment-mock as a separate process for busted specs.
--
--   local mock = require("support.mock")
--   local m = mock.start{ "--user", "u", "--password", "p" }
--   -- m.url, m.pid, m.stats(), m.requests(), m.reset(), m.stop(),
--   -- m.control(path): any control endpoint, e.g. "/_mock/token_ttl?s=1"
--
-- The process is started by support.server (interpreter: KPAYMENT_MOCK_LUA).

local http = require("socket.http")
local cjson = require("cjson")
local server = require("support.server")

local M = {}

--- GET on a control endpoint, decoded.
local function control(url, path)
  local body, code = http.request(url .. path)
  if code ~= 200 then
    error(string.format("kpayment mock: GET %s gave %s", path, tostring(code)), 3)
  end
  return cjson.decode(body)
end

--- Starts the mock with extra command-line arguments (an array); returns
-- a handle once it serves, or raises with the mock's stderr.
function M.start(args)
  local words = { "--port", "0" }
  for _, word in ipairs(args or {}) do words[#words + 1] = word end
  local s = server.start("bin/kpayment-mock", words, "kpayment mock")
  local url = s.url
  return {
    url = url,
    pid = s.pid,
    stop = s.stop,
    stats = function() return control(url, "/_mock/stats") end,
    requests = function() return control(url, "/_mock/requests") end,
    reset = function() control(url, "/_mock/reset") end,
    control = function(path) return control(url, path) end,
  }
end

return M
