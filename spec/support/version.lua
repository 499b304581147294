--- What the specs need to know about the Lua running them.
--
--   local version = require("support.version")
--   version.lua        the interpreter to start subprocesses with
--   version.int64      true on 5.3+ (64-bit integers)
--   version.integer(s) what the decoder gives for the JSON integer s
--   version.subtype(v) math.type(v) on 5.3+, "number" before

local M = {}

-- Set by the Makefile (make test LUA_VERSION=…): the interpreter under test.
M.lua = os.getenv("KPAYMENT_LUA") or "lua5.4"

M.int64 = math.type ~= nil
M.lua54 = _VERSION == "Lua 5.4"

--- The decoder's value for the JSON integer token `s`: an integer on 5.3+;
-- before, a number up to 2^53 in magnitude, else the token itself.
function M.integer(s)
  if M.int64 then return math.tointeger(tonumber(s)) end
  local digits = s:match("^%-?(%d+)$")
  if #digits < 16 or (#digits == 16 and digits <= "9007199254740992") then return tonumber(s) end
  return s
end

--- math.type where it exists; "number" for any number before 5.3.
function M.subtype(v)
  if M.int64 then return math.type(v) end
  return type(v) == "number" and "number" or nil
end

return M
