--- The `kpayment` command: `kpayment offers`, `kpayment doctor`,
-- `kpayment mock`, `kpayment completion`.  This module parses the command
-- line, dispatches, and turns failures into one line on stderr and an exit
-- status:
--
--   0    success
--   1    an answer that is not offers (error kinds http, decode, body_too_large)
--   2    a usage error (bad option, missing value, unreadable file)
--   3    no answer (error kinds network, timeout, tls)
--   4    standard output cannot be written (disk full, closed)
--   130  interrupted (Ctrl-C)
--   141  killed by SIGPIPE (standard output a pipe its reader closed), and
--   143  by SIGTERM: the system's doing, the command catches neither
--
-- `main(args)` returns the status; bin/kpayment exits with it.
-- @module kpayment.cli

local term = require("kpayment.cli.term")

local type, tostring, tonumber, setmetatable, getmetatable, error, pcall, ipairs, rawget =
  type, tostring, tonumber, setmetatable, getmetatable, error, pcall, ipairs, rawget
local string_gsub, string_match, string_find = string.gsub, string.match, string.find
local table_concat = table.concat

local M = {}

M.EXIT = { ok = 0, api = 1, usage = 2, network = 3, output = 4, interrupted = 130 }

-- The exit status of each error kind (kpayment's `err.kind`); a request is
-- cancelled only when Ctrl-C closed its client.
local KIND_EXIT = { http = 1, decode = 1, body_too_large = 1, network = 3, timeout = 3, tls = 3,
                    cancelled = 130 }

--- The exit status for a kpayment error table, by its kind alone.
function M.status_of(err)
  -- the token endpoint: no answer is a network failure, a refusal the API's
  if err.kind == "auth" then return err.status == nil and M.EXIT.network or M.EXIT.api end
  return KIND_EXIT[err.kind] or M.EXIT.api
end

--- The status of a batch given one more customer's: no answer (3) wins
-- over an answer that is not offers (1), which wins over success.
function M.worse(status, other)
  if status == M.EXIT.network or other == M.EXIT.network then return M.EXIT.network end
  if status ~= M.EXIT.ok then return status end
  return other
end

--- Whether an error value is Ctrl-C: the standalone interpreters (lua.c,
-- luajit.c) turn SIGINT into the error "interrupted!" raised wherever Lua
-- runs next.
function M.is_interrupt(why)
  return type(why) == "string" and string_find(why, "interrupted!$") ~= nil
end

--- Set when an interrupt was raised inside a callback that kpayment
-- contains (its logger then gets the error): the loops check it.
M.interrupted = false

local Usage = {}
Usage.__index = Usage
function Usage.__tostring(u) return u.message end

--- Raise a usage error for `command` ("offers", …, or nil at the top).
function M.usage(command, message)
  error(setmetatable({ command = command, message = message }, Usage), 0)
end

local Unwritable = {}
Unwritable.__index = Unwritable
function Unwritable.__tostring(u) return "cannot write output: " .. u.message end

--- `ok` when a write or flush of standard output succeeded (what
-- `file:write` and `file:flush` return); else raise the error that ends the
-- command with one line on stderr and status 4 (EXIT.output).
function M.written(ok, why)
  if not ok then error(setmetatable({ message = tostring(why or "write failed") }, Unwritable), 0) end
  return ok
end

--- Write the values to `out` (standard output), checked as `written`.
function M.write(out, ...)
  return M.written(out:write(...))
end

--- Flush `out` (standard output), checked as `written`.
function M.flush(out)
  return M.written(out:flush())
end

--- Whether an error value is a failed write of standard output.
function M.is_unwritable(why)
  return getmetatable(why) == Unwritable
end

--- A message raised by kpayment (`error(msg, level)`) without the
-- position Lua puts in front of it.
function M.message(why)
  local s = string_gsub(tostring(why), "^[^\n:]-%.lua:%d+: ", "")
  return (string_gsub(s, '^%[string "[^\n]-"%]:%d+: ', ""))
end

--- Parse `words[first..]` against `spec`: option name -> "flag",
-- "string", "file" (a string naming a file), "number", "integer", or a
-- list of the values it takes.  `--name value` and `--name=value`; `-h` is
-- `--help`.  Numbers are converted, not checked: kpayment.new checks what
-- it is given.  Returns a table keyed by the names with `-` as `_`.
function M.parse(words, first, spec, command)
  local opts = {}
  local i = first
  while i <= #words do
    local word = words[i]
    local name, value = string_match(word, "^%-%-([%w-]+)=(.*)$")
    if not name then name = string_match(word, "^%-%-([%w-]+)$") end
    if word == "-h" then name = "help" end
    if not name then M.usage(command, "unexpected argument '" .. word .. "'") end
    local kind = spec[name]
    if not kind then M.usage(command, "unknown option '--" .. name .. "'") end
    local key = string_gsub(name, "-", "_")
    if opts[key] ~= nil then M.usage(command, "option --" .. name .. " given twice") end
    if kind == "flag" then
      if value ~= nil then M.usage(command, "option --" .. name .. " takes no value") end
      opts[key] = true
    else
      if value == nil then
        i = i + 1
        value = words[i]
        if value == nil or string_find(value, "^%-%-") then
          M.usage(command, "option --" .. name .. " needs a value")
        end
      end
      if type(kind) == "table" then
        local known = false
        for _, v in ipairs(kind) do known = known or v == value end
        if not known then
          M.usage(command, "option --" .. name .. " takes " .. table_concat(kind, ", ") .. ", not '"
            .. value .. "'")
        end
      elseif kind == "number" or kind == "integer" then
        local n = tonumber(value)
        if kind == "integer" and not string_find(value, "^%-?%d+$") then n = nil end
        if n == nil then
          M.usage(command, "option --" .. name .. " needs a " .. (kind == "integer" and "whole " or "")
            .. "number, not '" .. value .. "'")
        end
        value = n
      end
      opts[key] = value
    end
    i = i + 1
  end
  return opts
end

--- A subcommand's options, parsed by its spec; with --help its usage is
-- printed instead and nil returned (the command then exits 0).
function M.command_options(args, spec, command, usage)
  local opts = M.parse(args, 1, spec, command)
  if opts.help then
    M.write(io.stdout, usage)
    return nil
  end
  return opts
end

--- A message or error of kpayment as the command shows it: without the
-- "kpayment: " in front, which the command's own prefix replaces.
function M.unprefixed(why)
  return (string_gsub(tostring(why), "^kpayment: ", ""))
end

--- One line on stderr, "kpayment: …" or "kpayment COMMAND: …".
function M.say(command, message)
  message = term.clean(M.unprefixed(message))
  io.stderr:write("kpayment", command and (" " .. command) or "", ": ", message, "\n")
  io.stderr:flush()
end

--- The interpreter's name and version: "Lua 5.4", "LuaJIT 2.1.…".
function M.lua_version()
  local jit = rawget(_G, "jit")
  if type(jit) == "table" and jit.version then return jit.version end
  return _VERSION
end

local USAGE = [[
Usage: kpayment COMMAND [options]

A dealer customer's finance offers from myKaarma's payments API.

Commands:
  offers      a customer's offers (table, JSON, NDJSON, CSV or TSV); many with --batch
  doctor      what kpayment runs on and is configured with, then one real call
  mock        serve the mock API on this machine (Lua 5.4)
  completion  print a completion script: 'kpayment completion bash'

Options:
  -h, --help     show this help ('kpayment COMMAND --help' for a command's)
  -V, --version  show the versions of kpayment, Lua and libcurl

Environment: KPAYMENT_BASE_URL; KPAYMENT_USERNAME and KPAYMENT_PASSWORD, or
KPAYMENT_BEARER_TOKEN, or KPAYMENT_CLIENT_ID, KPAYMENT_CLIENT_SECRET and
KPAYMENT_TOKEN_URL; KPAYMENT_SKIN, KPAYMENT_LOCALE; the proxy variables
libcurl reads (https_proxy, no_proxy, ...).

Exit status: 0 success, 1 an answer that is not offers, 2 usage error, 3 no
answer (network, timeout or TLS), 4 standard output cannot be written (disk
full, closed), 130 interrupted (SIGINT); killed by SIGPIPE (141) when a
pipe's reader closed, by SIGTERM (143).
]]

--- The commands and their modules, in the order help lists them.
M.COMMANDS = { "offers", "doctor", "mock", "completion" }
local MODULES = { offers = "kpayment.cli.offers", doctor = "kpayment.cli.doctor",
                  mock = "kpayment.cli.mock", completion = "kpayment.cli.completion" }

--- The module of command `name`, loaded.
function M.command(name)
  return require(MODULES[name])
end

local function version_line()
  local ok, core = pcall(require, "kpayment.core")
  if not ok then return "kpayment (its C core does not load: " .. M.message(core) .. ")" end
  return "kpayment " .. tostring(core._VERSION) .. " (" .. M.lua_version() .. ", libcurl "
    .. tostring(core.curl_version) .. ")"
end

local function run(args)
  local first = args[1]
  if first == nil then M.usage(nil, "no command given (offers, doctor, mock or completion)") end
  if first == "--help" or first == "-h" or first == "help" then
    local topic = args[2] and MODULES[args[2]]
    if topic then return require(topic).run({ "--help" }, M) end
    M.write(io.stdout, USAGE)
    return M.EXIT.ok
  end
  if first == "--version" or first == "-V" then
    M.write(io.stdout, version_line(), "\n")
    return M.EXIT.ok
  end
  local module = MODULES[first]
  if not module then
    if string_find(first, "^%-") then M.usage(nil, "unknown option '" .. first .. "'") end
    M.usage(nil, "unknown command '" .. first .. "' (offers, doctor, mock or completion)")
  end
  local rest = {}
  for i = 2, #args do rest[#rest + 1] = args[i] end
  return require(module).run(rest, M)
end

-- Standard output closed (`>&-`): the first file or socket opened would
-- take its descriptor, and what the command writes would go there.
local EBADF = 9
local function check_stdout()
  local pos, why, code = io.stdout:seek("cur")
  if pos == nil and code == EBADF then M.written(nil, why) end
end

-- The command, then the last flush of standard output: its status stands
-- once all it wrote was taken.
local function run_flushed(args)
  check_stdout()
  local status = run(args)
  M.flush(io.stdout)
  return status
end

--- Run the command line `args` (a list of strings); returns the exit
-- status.  Usage errors, Ctrl-C, a failed write of standard output and
-- anything unexpected become one line on stderr.
function M.main(args)
  local ok, status = pcall(run_flushed, args)
  if ok then return status or M.EXIT.ok end
  if M.is_unwritable(status) then
    M.say(nil, tostring(status))
    return M.EXIT.output
  end
  -- what was written stays written; a flush that fails now is said, and
  -- the error's own status stands
  local flushed, why = io.stdout:flush()
  if not flushed then M.say(nil, "cannot write output: " .. tostring(why)) end
  if M.is_interrupt(status) then
    M.say(nil, "interrupted")
    return M.EXIT.interrupted
  end
  if getmetatable(status) == Usage then
    local where = status.command and ("kpayment " .. status.command) or "kpayment"
    M.say(status.command, status.message .. " (see '" .. where .. " --help')")
    return M.EXIT.usage
  end
  M.say(nil, M.message(status))
  return M.EXIT.api
end

return M
