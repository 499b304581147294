--- Runs bin/kpayment as a process for spec/cli_spec.lua.
--
--   local cli = require("support.cli_run")
--   local r = cli.run({ "offers", "--customer", c, "--dealer", d }, { env = { KPAYMENT_SKIN = "s" } })
--   -- r.status (exit status), r.out (stdout), r.err (stderr)
--   local r = cli.pty("offers --batch f.csv", { env = … })   -- under a pseudo-terminal
--   -- r.status, r.out (what the terminal showed: stdout and stderr)
--
-- The command runs under the interpreter under test (KPAYMENT_LUA, see
-- support.version) unless opts.lua says otherwise, with the KPAYMENT_*,
-- proxy and COLUMNS variables of the environment removed: a spec sets what
-- it needs in opts.env.  opts.stdin is a file to read standard input from
-- (default /dev/null); opts.setsid runs it without a controlling terminal.

local server = require("support.server")
local version = require("support.version")

local shell_quote, read_file = server.shell_quote, server.read_file

local M = {}

local CLEARED = { "KPAYMENT_BASE_URL", "KPAYMENT_USERNAME", "KPAYMENT_PASSWORD", "KPAYMENT_BEARER_TOKEN",
                  "KPAYMENT_SKIN", "KPAYMENT_LOCALE", "COLUMNS", "http_proxy", "HTTP_PROXY", "https_proxy",
                  "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY" }

-- "env -u … K=V … " for opts.env, names sorted so commands are stable.
local function env_prefix(vars)
  local words = { "env" }
  for _, name in ipairs(CLEARED) do words[#words + 1] = "-u " .. name end
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
  return string.format("%s %s%s bin/kpayment %s", env_prefix(opts.env), opts.setsid and "setsid -w " or "",
    opts.lua or version.lua, table.concat(words, " "))
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

--- True when the `script` command (util-linux) is here.
function M.have_script()
  local ok = os.execute("command -v script >/dev/null 2>&1")
  return ok == true or ok == 0
end

return M
