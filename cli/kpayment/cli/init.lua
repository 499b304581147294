--- The `kpayment` command: `kpayment offers`, `kpayment doctor`,
-- `kpayment mock`.  This module parses the command line, dispatches, and
-- turns failures into one line on stderr and an exit status:
--
--   0  success
--   1  an API or HTTP error (any answer that is not offers)
--   2  a usage error (bad option, missing value, unreadable file)
--   3  a network, timeout or TLS error (no answer)
--
-- `main(args)` returns the status; bin/kpayment exits with it.
-- @module kpayment.cli

local type, tostring, tonumber, setmetatable, getmetatable, error, pcall =
  type, tostring, tonumber, setmetatable, getmetatable, error, pcall
local string_gsub, string_match, string_find = string.gsub, string.match, string.find
local math_floor = math.floor

local M = {}

M.EXIT = { ok = 0, api = 1, usage = 2, network = 3 }

-- Error kinds (kpayment.errors) that mean no answer came back.
local NO_ANSWER = { network = true, timeout = true, tls = true }

--- The exit status for a kpayment error table.
function M.status_of(err)
  return NO_ANSWER[err.kind] and M.EXIT.network or M.EXIT.api
end

local Usage = {}
Usage.__index = Usage
function Usage.__tostring(u) return u.message end

--- Raise a usage error for `command` ("offers", …, or nil at the top).
function M.usage(command, message)
  error(setmetatable({ command = command, message = message }, Usage), 0)
end

--- A message raised by kpayment (`error(msg, level)`) without the
-- position Lua puts in front of it.
function M.message(why)
  local s = string_gsub(tostring(why), "^[^\n:]-%.lua:%d+: ", "")
  return (string_gsub(s, '^%[string "[^\n]-"%]:%d+: ', ""))
end

--- Parse `words[first..]` against `spec`: option name -> "flag",
-- "string", "integer" or "number".  `--name value` and `--name=value`;
-- `-h` is `--help`.  Returns a table keyed by the names with `-` as `_`.
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
      if kind ~= "string" then
        local n = tonumber(value)
        if kind == "integer" and not (string_find(value, "^%d+$") and n) then
          M.usage(command, "option --" .. name .. " needs a whole number, not '" .. value .. "'")
        elseif kind == "number" and not (string_find(value, "^%d*%.?%d+$") and n) then
          M.usage(command, "option --" .. name .. " needs a number, not '" .. value .. "'")
        end
        value = kind == "integer" and math_floor(n) or n
        -- an integer subtype where there is one (5.3+ options check it)
        if kind == "integer" and math.tointeger then value = math.tointeger(value) end
      end
      opts[key] = value
    end
    i = i + 1
  end
  return opts
end

--- One line on stderr, "kpayment: …" or "kpayment COMMAND: …".
function M.say(command, message)
  message = string_gsub(string_gsub(message, "^kpayment: ", ""), "%c+", " ")
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
  offers    a customer's offers as a table or as JSON; many customers with --batch
  doctor    versions, TLS and proxy settings, then a check of the way to the API
  mock      serve the mock API on this machine (Lua 5.4)

Options:
  --help     show this help ('kpayment COMMAND --help' for a command's)
  --version  show the versions of kpayment, Lua and libcurl

Environment: KPAYMENT_BASE_URL, KPAYMENT_USERNAME and KPAYMENT_PASSWORD (or
KPAYMENT_BEARER_TOKEN), KPAYMENT_SKIN, KPAYMENT_LOCALE.

Exit status: 0 success, 1 API or HTTP error, 2 usage error, 3 network,
timeout or TLS error.
]]

local COMMANDS = { offers = "kpayment.cli.offers", doctor = "kpayment.cli.doctor",
                   mock = "kpayment.cli.mock" }

local function version_line()
  local ok, core = pcall(require, "kpayment.core")
  if not ok then return "kpayment (its C core does not load: " .. M.message(core) .. ")" end
  return "kpayment " .. tostring(core._VERSION) .. " (" .. M.lua_version() .. ", libcurl "
    .. tostring(core.curl_version) .. ")"
end

local function run(args)
  local first = args[1]
  if first == nil then M.usage(nil, "no command given (offers, doctor or mock)") end
  if first == "--help" or first == "-h" or first == "help" then
    local topic = args[2] and COMMANDS[args[2]]
    if topic then return require(topic).run({ "--help" }, M) end
    io.stdout:write(USAGE)
    return M.EXIT.ok
  end
  if first == "--version" then
    io.stdout:write(version_line(), "\n")
    return M.EXIT.ok
  end
  local module = COMMANDS[first]
  if not module then
    if string_find(first, "^%-") then M.usage(nil, "unknown option '" .. first .. "'") end
    M.usage(nil, "unknown command '" .. first .. "' (offers, doctor or mock)")
  end
  local rest = {}
  for i = 2, #args do rest[#rest + 1] = args[i] end
  return require(module).run(rest, M)
end

--- Run the command line `args` (a list of strings); returns the exit
-- status.  Usage errors and anything unexpected become one line on stderr.
function M.main(args)
  local ok, status = pcall(run, args)
  if ok then return status or M.EXIT.ok end
  if getmetatable(status) == Usage then
    local where = status.command and ("kpayment " .. status.command) or "kpayment"
    M.say(status.command, status.message .. " (see '" .. where .. " --help')")
    return M.EXIT.usage
  end
  M.say(nil, M.message(status))
  return M.EXIT.api
end

return M
