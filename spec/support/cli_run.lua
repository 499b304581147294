--- Runs bin/kpayment as a process for spec/cli_spec.lua and spec/cli_*_spec.lua.
--
--   local cli = require("support.cli_run")
--   local r = cli.run({ "offers", "--customer", c, "--dealer", d }, { env = { KPAYMENT_SKIN = "s" } })
--   -- r.status (exit status), r.out (stdout), r.err (stderr)
--   local r = cli.pty("offers --batch f.csv", { env = … })   -- under a pseudo-terminal
--   -- r.status, r.out (what the terminal showed: stdout and stderr)
--
-- The command runs under the interpreter under test (KPAYMENT_LUA, see
-- support.version) unless opts.lua says otherwise, with the KPAYMENT_*,
-- proxy, TZ and COLUMNS variables of the environment removed: a spec sets
-- what it needs in opts.env (opts.unset: more names to remove).
-- opts.stdin is a file to read standard input from (default /dev/null);
-- opts.setsid runs it without a controlling terminal.
--
--   local b = cli.start(args, opts)   -- in the background: b.pid, b.out(), b.err(),
--                                     -- b.status() (nil while it runs), b.wait(seconds)
--   local r = cli.measure(args, opts) -- as run, plus r.rss_kb (its maximum RSS) and r.seconds;
--                                     -- with opts.out_path, stdout goes to that file (r.out nil)

local server = require("support.server")
local version = require("support.version")

local shell_quote, read_file = server.shell_quote, server.read_file

local M = {}

local CLEARED = { "KPAYMENT_BASE_URL", "KPAYMENT_USERNAME", "KPAYMENT_PASSWORD", "KPAYMENT_BEARER_TOKEN",
                  "KPAYMENT_SKIN", "KPAYMENT_LOCALE", "COLUMNS", "http_proxy", "HTTP_PROXY", "https_proxy",
                  "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY", "TZ" }

-- "env -u … K=V … " for opts.env (and opts.unset, names to remove too),
-- names sorted so commands are stable.
local function env_prefix(vars, unset)
  local words = { "env" }
  for _, name in ipairs(CLEARED) do words[#words + 1] = "-u " .. name end
  for _, name in ipairs(unset or {}) do words[#words + 1] = "-u " .. name end
  local names = {}
  for name in pairs(vars or {}) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do words[#words + 1] = name .. "=" .. shell_quote(vars[name]) end
  return table.concat(words, " ")
end

--- The command line (a string) that runs bin/kpayment with `args`.
function M.command(args, opts)
  opts = opts or {}
  local words = {}
  for i, a in ipairs(args) do words[i] = shell_quote(a) end
  return string.format("%s %s%s bin/kpayment %s", env_prefix(opts.env, opts.unset),
    opts.setsid and "setsid -w " or "", opts.lua or version.lua, table.concat(words, " "))
end

local function exit_status(text)
  return tonumber(text:match("(%d+)%s*$"))
end

--- Run with args (a list of words); returns { status, out, err }.
function M.run(args, opts)
  opts = opts or {}
  local out, err = os.tmpname(), os.tmpname()
  local p = assert(io.popen(string.format("%s <%s >%s 2>%s; echo $?", M.command(args, opts),
    shell_quote(opts.stdin or "/dev/null"), shell_quote(out), shell_quote(err))))
  local status = exit_status(p:read("*a"))
  p:close()
  local r = { status = status, out = read_file(out), err = read_file(err) }
  os.remove(out)
  os.remove(err)
  return r
end

--- Run with args under a pseudo-terminal (`script`): stdout and stderr
-- are the terminal.  opts.input is written to the terminal after
-- opts.input_delay seconds (default 1).
function M.pty(args, opts)
  opts = opts or {}
  local out = os.tmpname()
  -- `script` itself runs without the sanitizers `make test-asan` preloads
  -- (it leaks by design); the command inside keeps them.
  local preload = os.getenv("LD_PRELOAD")
  local inner = opts
  if preload then
    inner = {}
    for k, v in pairs(opts) do inner[k] = v end
    inner.env = { LD_PRELOAD = preload }
    for k, v in pairs(opts.env or {}) do inner.env[k] = v end
  end
  local run = string.format("env -u LD_PRELOAD script -qec %s /dev/null >%s 2>&1",
    shell_quote(M.command(args, inner)), shell_quote(out))
  if opts.input then
    run = string.format("(sleep %s; printf '%%s' %s) | %s", tostring(opts.input_delay or 1),
      shell_quote(opts.input), run)
  else
    run = run .. " </dev/null"
  end
  local p = assert(io.popen(run .. "; echo $?"))
  local status = exit_status(p:read("*a"))
  p:close()
  local r = { status = status, out = read_file(out) }
  os.remove(out)
  return r
end

-- Seconds since some fixed point, as a float.
local function now()
  return require("socket").gettime()
end

--- Start with args in the background (stdout, stderr and the exit status
-- to files); returns a handle.  The shell that waits for it is itself in
-- the background, so a signal sent to `pid` reaches the command alone.
function M.start(args, opts)
  opts = opts or {}
  local out, err, status, pidfile = os.tmpname(), os.tmpname(), os.tmpname(), os.tmpname()
  os.remove(status)
  local inner = string.format("%s <%s >%s 2>%s & echo $! >%s; wait $!; echo $? >%s.part; mv %s.part %s",
    M.command(args, opts), shell_quote(opts.stdin or "/dev/null"), shell_quote(out), shell_quote(err),
    shell_quote(pidfile), shell_quote(status), shell_quote(status), shell_quote(status))
  assert(os.execute("sh -c " .. shell_quote(inner) .. " >/dev/null 2>&1 &"))
  local pid
  local give_up = now() + 10
  while not pid and now() < give_up do
    pid = tonumber(read_file(pidfile):match("^(%d+)"))
    if not pid then require("socket").sleep(0.01) end
  end
  assert(pid, "the command did not start")
  local h = { pid = pid, out_file = out }
  function h.out() return read_file(out) end
  function h.err() return read_file(err) end
  function h.status() return tonumber(read_file(status):match("^(%d+)")) end
  --- Wait at most `seconds` for it to end; its status, or nil.
  function h.wait(seconds)
    local stop = now() + seconds
    while now() < stop do
      local s = h.status()
      if s then return s end
      require("socket").sleep(0.01)
    end
    return h.status()
  end
  function h.cleanup()
    if not h.status() then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
    for _, f in ipairs({ out, err, status, pidfile }) do os.remove(f) end
  end
  return h
end

--- Run with args as `run` does, measuring the command's maximum resident
-- set: GNU time's %M where /usr/bin/time is, else VmHWM of
-- /proc/PID/status, read until it exits.  r.rss_kb, r.seconds.
function M.measure(args, opts)
  opts = opts or {}
  local t0 = now()
  local f = io.open("/usr/bin/time")
  if f then
    f:close()
    local rss = os.tmpname()
    local words = {}
    for i, a in ipairs(args) do words[i] = shell_quote(a) end
    local cmd = string.format("%s /usr/bin/time -f %%M -o %s %s bin/kpayment %s",
      env_prefix(opts.env, opts.unset), shell_quote(rss), opts.lua or version.lua, table.concat(words, " "))
    local out, err = opts.out_path or os.tmpname(), os.tmpname()
    local p = assert(io.popen(string.format("%s <%s >%s 2>%s; echo $?", cmd,
      shell_quote(opts.stdin or "/dev/null"), shell_quote(out), shell_quote(err))))
    local status = exit_status(p:read("*a"))
    p:close()
    local r = { status = status, out = not opts.out_path and read_file(out) or nil, err = read_file(err),
                rss_kb = tonumber(read_file(rss):match("(%d+)%s*$")), seconds = now() - t0 }
    for _, name in ipairs({ err, rss, not opts.out_path and out or nil }) do os.remove(name) end
    return r
  end
  local h = M.start(args, opts)
  local hwm = 0
  while not h.status() do
    local status = read_file("/proc/" .. h.pid .. "/status")
    hwm = math.max(hwm, tonumber(status:match("VmHWM:%s*(%d+)")) or 0)
    require("socket").sleep(0.02)
  end
  local r = { status = h.status(), out = not opts.out_path and h.out() or nil, err = h.err(), rss_kb = hwm,
              seconds = now() - t0 }
  if opts.out_path then os.execute("mv " .. shell_quote(h.out_file) .. " " .. shell_quote(opts.out_path)) end
  h.cleanup()
  return r
end

--- The lines of `s` (LF or CRLF), without a last empty one.
function M.lines(s)
  local t = {}
  for line in (s .. "\n"):gmatch("([^\n]*)\n") do t[#t + 1] = (line:gsub("\r$", "")) end
  if t[#t] == "" then t[#t] = nil end
  return t
end

--- A temporary file holding `text`; its name.
function M.write_file(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

--- True when the `script` command (util-linux) is here.
function M.have_script()
  local ok = os.execute("command -v script >/dev/null 2>&1")
  return ok == true or ok == 0
end

--- For a describe block of command specs: the mock with these
-- credentials.  `setup(ctx.start)` and `teardown(ctx.stop)` run it; start
-- fills in `mock` (support.mock's handle) and `env` (the KPAYMENT_*
-- variables the command needs for it); `with(extra)` is a copy of env
-- plus extra.
function M.mock_for(user, password, skin)
  local ctx = {}
  function ctx.start()
    ctx.mock = require("support.mock").start({ "--user", user, "--password", password })
    ctx.env = { KPAYMENT_BASE_URL = ctx.mock.url, KPAYMENT_USERNAME = user, KPAYMENT_PASSWORD = password,
                KPAYMENT_SKIN = skin }
  end
  function ctx.stop()
    ctx.mock.stop()
  end
  function ctx.with(extra)
    local e = {}
    for k, v in pairs(ctx.env) do e[k] = v end
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end
  return ctx
end

return M
