--- Runs a Lua server script as a separate process for busted specs: the
-- script prints its base URL as the first line of standard output, then
-- serves until it is killed.
--
--   local server = require("support.server")
--   local s = server.start("bin/kpayment-mock", { "--port", "0" }, "kpayment mock")
--   -- s.url, s.pid, s.stop()
--
-- Specs run from the repository root. The interpreter is taken from the
-- environment variable KPAYMENT_MOCK_LUA (default lua5.4); it is passed to
-- the shell as is, so it may carry options.

local socket = require("socket")

local M = {}

--- The servers started and not stopped yet: pid -> what.  The suite's
-- summary (support/summary.lua) reports any left at its end: busted keeps
-- only a test's last `finally`, so a stop can be silently dropped.  Kept
-- in the registry, which busted's insulation of each file (it restores
-- package.loaded and the globals) leaves alone.
local REGISTRY_KEY = "kpayment.spec.servers"
local registry = debug.getregistry()
registry[REGISTRY_KEY] = registry[REGISTRY_KEY] or {}
M.running = registry[REGISTRY_KEY]

local START_TIMEOUT = 5 -- seconds

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local text = f:read("*a")
  f:close()
  return text
end

--- A TCP port free on 127.0.0.1 right now (for servers that take a port).
local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

local function alive(pid)
  local ok = os.execute("kill -0 " .. pid .. " 2>/dev/null")
  return ok == true or ok == 0 -- 5.1 and LuaJIT give the exit status
end

--- Starts `script` with `args` (a list of words); returns { url, pid, stop }
-- once it serves, or raises (at `level`, default the caller's caller) with
-- its stderr, naming it `what`.
function M.start(script, args, what, level)
  local words = {}
  for i, word in ipairs(args or {}) do words[i] = shell_quote(word) end
  local out, err = os.tmpname(), os.tmpname()
  local command = string.format("%s %s %s </dev/null >%s 2>%s & echo $!",
    os.getenv("KPAYMENT_MOCK_LUA") or "lua5.4", shell_quote(script), table.concat(words, " "),
    shell_quote(out), shell_quote(err))
  local shell = assert(io.popen(command, "r"))
  local pid = tonumber(shell:read("*l"))
  shell:close()

  local stopped = false
  local function stop()
    if stopped then return end
    stopped = true
    if pid then
      os.execute("kill " .. pid .. " 2>/dev/null")
      M.running[pid] = nil
    end
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
      error(string.format("%s did not start (%s): %s", what, problem,
        stderr ~= "" and stderr or "no output on stderr"), level or 3)
    end
    socket.sleep(0.02)
  end
  M.running[pid] = what
  return { url = url, pid = pid, stop = stop }
end

--- Stops every server still running; returns a line naming each.
function M.stop_leftovers()
  local lines = {}
  for pid, what in pairs(M.running) do
    lines[#lines + 1] = string.format("left running: %s (pid %d), started by a spec that did not stop it",
      what, pid)
    os.execute("kill " .. pid .. " 2>/dev/null")
    M.running[pid] = nil
  end
  return lines
end

M.read_file, M.shell_quote, M.free_port = read_file, shell_quote, free_port
return M
