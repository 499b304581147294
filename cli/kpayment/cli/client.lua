--- The kpayment client of a command: its options from the command's
-- flags, the password prompt for --user, the logger, and what kpayment
-- raises turned into usage errors that name the command's flags.  The
-- command checks nothing kpayment checks: it passes the values through.
-- @module kpayment.cli.client

local kpayment = require("kpayment")
local config = require("kpayment.config")
local term = require("kpayment.cli.term")

local pairs, pcall, error, tostring = pairs, pcall, error, tostring
local string_gsub, string_find, string_sub = string.gsub, string.find, string.sub
local io_open, io_popen = io.open, io.popen

local M = {}

--- The command's flag for each option of kpayment.new and parameter of a
-- call: what a message of kpayment names comes back as.
M.FLAGS = {
  base_url = "--base-url", username = "--user", skin = "--skin", locale = "--locale",
  timeout = "--timeout", retries = "--retries", ca_file = "--ca-file", debug = "--verbose",
  customer_uuid = "--customer", dealer_uuid = "--dealer", fields = "--fields",
}

-- The variable kpayment reads an option from when the command gives none.
local VARIABLES = {
  base_url = "KPAYMENT_BASE_URL", skin = "KPAYMENT_SKIN", locale = "KPAYMENT_LOCALE",
  username = "KPAYMENT_USERNAME", password = "KPAYMENT_PASSWORD", bearer_token = "KPAYMENT_BEARER_TOKEN",
  client_id = "KPAYMENT_CLIENT_ID", client_secret = "KPAYMENT_CLIENT_SECRET",
  token_url = "KPAYMENT_TOKEN_URL",
}

--- Where a call's `name` (skin, locale) comes from when it has none: the
-- flag or the variable.
function M.sources(name)
  return "pass " .. M.FLAGS[name] .. " or set " .. VARIABLES[name]
end

--- A message kpayment raised, with each 'name' it quotes replaced by the
-- flag that set it (`given[name]`), else by the variable it came from,
-- else by its flag or, with none, its variable.
-- What kpayment tells a Lua caller to do becomes what a shell user does:
-- where a missing value comes from (`sources`), and "'name' (or
-- VARIABLE)" for an option without a flag becomes the variable.
function M.renamed(cli, why, given)
  local s = cli.message(why)
  for name, advice in pairs(config.MISSING) do
    local i, j = string_find(s, advice, 1, true)
    if i then s = string_sub(s, 1, i - 1) .. M.sources(name) .. string_sub(s, j + 1) end
  end
  s = string_gsub(s, "'([%w_]+)' %(or ([%w_]+)%)", function(name, variable)
    if not M.FLAGS[name] and VARIABLES[name] == variable then return variable end
  end)
  return (string_gsub(s, "'([%w_]+)'", function(name)
    if given[name] ~= nil and M.FLAGS[name] then return M.FLAGS[name] end
    if given[name] == nil and VARIABLES[name] and term.env(VARIABLES[name]) then return VARIABLES[name] end
    -- neither given nor set: the way the shell gives it
    return M.FLAGS[name] or VARIABLES[name]
  end))
end

--- Raise what kpayment raised as a usage error of `command`; Ctrl-C
-- (raised inside the call) goes on as it is.
function M.refused(cli, command, why, given)
  if cli.is_interrupt(why) then error(why, 0) end
  cli.usage(command, M.renamed(cli, why, given))
end

-- Asks for the password on the terminal with echo off; the shell restores
-- echo however it ends.  The password comes back through a pipe, never
-- on a command line.
local PROMPT = [[
exec 3<>/dev/tty || exit 1
trap 'stty echo <&3' EXIT
trap 'exit 130' HUP INT TERM
printf 'Password for %s: ' "$1" >&3
stty -echo <&3 || exit 1
IFS= read -r p <&3 || exit 1
printf '\n' >&3
printf '%s' "$p"
]]

--- The password for `--user`: KPAYMENT_PASSWORD, or asked for; and where
-- it came from.
function M.password(cli, command, user)
  local from_env = term.env("KPAYMENT_PASSWORD")
  if from_env then return from_env, "KPAYMENT_PASSWORD" end
  local tty = io_open("/dev/tty", "r")
  if not tty then
    cli.usage(command, "--user needs a password: set KPAYMENT_PASSWORD (no terminal to ask on)")
  end
  tty:close()
  local p = io_popen("sh -c " .. term.shell_quote(PROMPT) .. " kpayment " .. term.shell_quote(user), "r")
  local password = p and p:read("*a")
  if p then p:close() end
  if not password or password == "" then cli.usage(command, "no password given for --user") end
  return password, "typed"
end

--- Log lines on stderr, as kpayment's own logger writes them, each
-- cleaned as every text the command shows (`term.clean`): a record holds
-- the server's text (an offer's status, an error's message), and is one
-- line however that text is made.  An interrupt that kpayment contained
-- (raised inside one of our callbacks) comes here as an error line: it is
-- noted for the loops, not shown.
function M.logger(cli)
  return function(level, message)
    if level == "error" and cli.is_interrupt(message) then
      cli.interrupted = true
      return
    end
    io.stderr:write(term.clean("kpayment [" .. tostring(level) .. "] " .. tostring(message)), "\n")
  end
end

--- The options of kpayment.new for a command's options; the set of those
-- the user gave (option name -> true), for messages; and where the
-- password of --user came from ("KPAYMENT_PASSWORD" or "typed").
function M.options(cli, command, opts)
  local o = {
    base_url = opts.base_url, skin = opts.skin, locale = opts.locale, timeout = opts.timeout,
    retries = opts.retries, ca_file = opts.ca_file, debug = opts.verbose, logger = M.logger(cli),
  }
  local password_from
  if opts.user then
    o.username = opts.user
    o.password, password_from = M.password(cli, command, opts.user)
  end
  local given = {}
  for k in pairs(o) do
    if k ~= "logger" then given[k] = true end
  end
  return o, given, password_from
end

--- A client for `o`, or a usage error naming the flag (or variable)
-- behind what kpayment refused.
function M.new(cli, command, o, given)
  local ok, client = pcall(kpayment.new, o)
  if not ok then M.refused(cli, command, client, given) end
  return client
end

return M
