--- Runs bin/kpayment-mock as a separate process for busted specs.
--
--   local mock = require("support.mock")
--   local m = mock.start{ "--user", "u", "--password", "p" }
--   -- m.url, m.pid, m.stats(), m.requests(), m.reset(), m.stop()
--
-- Specs run from the repository root. The interpreter is taken from the
-- environment variable KPAYMENT_MOCK_LUA (default lua5.4); it is passed to
-- the shell as is, so it may carry options.

local socket = require("socket")
local http = require("socket.http")
local cjson = require("cjson")

local M = {}

local START_TIMEOUT = 5 -- seconds

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local text = f:read("a")
  f:close()
  return text
end

local function alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

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
  local words = {}
  for i, word in ipairs(args or {}) do words[i] = shell_quote(word) end
  local out, err = os.tmpname(), os.tmpname()
  local command = string.format("%s bin/kpayment-mock --port 0 %s </dev/null >%s 2>%s & echo $!",
    os.getenv("KPAYMENT_MOCK_LUA") or "lua5.4", table.concat(words, " "), shell_quote(out),
    shell_quote(err))
  local shell = assert(io.popen(command, "r"))
  local pid = tonumber(shell:read("l"))
  shell:close()

  local stopped = false
  local function stop()
    if stopped then return end
    stopped = true
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    os.remove(out)
    os.remove(err)
  end

  local url
  local deadline = socket.gettime() + START_TIMEOUT
  while true do
    url = read_file(out):match("^(http://[^\n]+)\n")
    if url then break end
    local problem = not pid and "no process id"
      or not alive(pid) and "it exited"
      or socket.gettime() > deadline and "no URL after " .. START_TIMEOUT .. " s"
    if problem then
      local stderr = read_file(err)
      stop()
      error(string.format("kpayment mock did not start (%s): %s", problem,
        stderr ~= "" and stderr or "no output on stderr"), 2)
    end
    socket.sleep(0.02)
  end

  return {
    url = url,
    pid = pid,
    stop = stop,
    stats = function() return control(url, "/_mock/stats") end,
    requests = function() return control(url, "/_mock/requests") end,
    reset = function() control(url, "/_mock/reset") end,
  }
end

return M
