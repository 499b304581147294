--- `kpayment mock`: the mock API server (the kpayment.mock modules, as
-- `kpayment-mock` runs them).  The server runs on Lua 5.4 only.
-- @module kpayment.cli.mock

local pairs, pcall, tostring, rawget, type = pairs, pcall, tostring, rawget, type
local string_gsub, string_match = string.gsub, string.match
local io_open = io.open

local M = {}

local HEAD = [[
Usage: kpayment mock [options]

Serves a mock of myKaarma's getFinanceOffersForCustomer API over HTTP/1.1
(as kpayment-mock does). Prints its base URL as the first line of standard
output, then serves until it is killed. Needs Lua 5.4 and luasocket, and the
kpayment.mock modules (the kpayment-mock rock, or mock/ in a checkout).

]]

local TAIL = [[

Exit status: 2 for a bad option or when not on Lua 5.4, 3 when it cannot
listen; otherwise it serves until killed.
]]

-- The options' kinds as kpayment.cli.parse names them.
local PARSE_KIND = { string = "string", integer = "integer", seconds = "number" }

-- The option spec and the help, from the mock's own options
-- (kpayment.mock.options is plain Lua: they are known under any Lua); with
-- the kpayment.mock modules not installed, --help alone.
local function spec_and_usage()
  local ok, options = pcall(require, "kpayment.mock.options")
  local spec = { help = "flag" }
  if not (ok and type(options) == "table") then
    return spec, HEAD .. "The kpayment.mock modules are not installed here: their options show once\n"
      .. "they are." .. TAIL
  end
  for name, kind in pairs(options.KINDS) do spec[name] = PARSE_KIND[kind] end
  return spec, HEAD .. options.HELP .. TAIL
end

local USAGE
M.SPEC, USAGE = spec_and_usage()

local function exists(path)
  local f = io_open(path, "r")
  if f then f:close() end
  return f ~= nil
end

-- How to run the server under Lua 5.4: the kpayment-mock script beside
-- this command (bin/ of a checkout), named as the command was, and the
-- checkout's examples/with-mock.sh; else where they are found.
local function how_to_run()
  local script = rawget(_G, "arg") and arg[0]
  local dir = type(script) == "string" and (string_match(script, "^(.*)/[^/]*$") or ".")
  if not (dir and exists(dir .. "/kpayment-mock")) then
    return "install the kpayment-mock rock for Lua 5.4 and run kpayment-mock, or in a checkout run "
      .. "lua5.4 bin/kpayment-mock or examples/with-mock.sh COMMAND"
  end
  local how = "run lua5.4 " .. dir .. "/kpayment-mock"
  local top = (dir == "bin" and "") or (dir == "." and "../") or string_match(dir, "^(.*/)bin$")
  if top and exists(top .. "examples/with-mock.sh") then
    how = how .. ", or " .. top .. "examples/with-mock.sh COMMAND to run a command against it"
  end
  return how
end

function M.run(args, cli)
  local opts = cli.command_options(args, M.SPEC, "mock", USAGE)
  if not opts then return cli.EXIT.ok end
  opts.help = nil
  if _VERSION ~= "Lua 5.4" or rawget(_G, "jit") then
    cli.say("mock", "the mock API server needs Lua 5.4, not " .. cli.lua_version() .. ": " .. how_to_run())
    return cli.EXIT.usage
  end
  local loaded, mock = pcall(require, "kpayment.mock")
  if not loaded then
    cli.say("mock", "the mock API server is not installed (the kpayment-mock rock, with luasocket): "
      .. (string_match(tostring(mock), "^[^\n]*")))
    return cli.EXIT.usage
  end
  local ok, why = mock.check_options(opts)
  if not ok then cli.usage("mock", why) end
  local created, server = pcall(mock.new, opts)
  if not created then
    cli.say("mock", (string_gsub(cli.message(server), "^kpayment%.mock: ", "")))
    return cli.EXIT.network
  end
  cli.write(io.stdout, server:url(), "\n")
  cli.flush(io.stdout)
  server:run()
  return cli.EXIT.ok
end

return M
