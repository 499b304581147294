--- The error object returned as the second value when a call fails, and
-- the scrubbing of secrets from it.
-- @module kpayment.errors

local setmetatable, getmetatable, tostring, type, pairs, next =
  setmetatable, getmetatable, tostring, type, pairs, next
local string_gsub, string_byte, string_sub, string_find =
  string.gsub, string.byte, string.sub, string.find
local table_concat = table.concat
local math_floor = math.floor

local M = {}

local Error = {}
Error.__index = Error
Error.__name = "kpayment.Error"

--- One readable line: kind, HTTP status, API code and message.
function Error.__tostring(e)
  local s = "kpayment: " .. tostring(e.kind) .. " error"
  if e.status then s = s .. " (HTTP " .. tostring(e.status) .. ")" end
  if e.message then s = s .. ": " .. string_gsub(tostring(e.message), "[%c]+", " ") end
  if e.code ~= nil and e.kind == "http" then s = s .. " [code " .. tostring(e.code) .. "]" end
  return s
end

--- Make an error table.
-- @tparam table fields kind, status, message, code, errors, warnings, body, retryable, curl_code
function M.new(fields)
  if fields.retryable == nil then fields.retryable = false end
  return setmetatable(fields, Error)
end

--- True for errors made by this module.
function M.is(v)
  return type(v) == "table" and getmetatable(v) == Error
end

--- True for the error Lua raises when an allocation fails.  Code that
-- contains user functions (pcall) passes it on: running out of memory is
-- nobody's mistake to log and carry on from.
function M.is_memory_error(why)
  return why == "not enough memory"
end

local REDACTED = "[redacted]"

--- `s` with every occurrence of each secret (a list, longest first)
-- replaced by "[redacted]".
function M.scrub(s, secrets)
  for i = 1, #secrets do
    local secret = secrets[i]
    if string_find(s, secret, 1, true) then
      local out, at = {}, 1
      while true do
        local b, e = string_find(s, secret, at, true)
        if not b then break end
        out[#out + 1] = string_sub(s, at, b - 1)
        out[#out + 1] = REDACTED
        at = e + 1
      end
      out[#out + 1] = string_sub(s, at)
      s = table_concat(out)
    end
  end
  return s
end

-- v scrubbed: strings directly, tables (decoded JSON, so no cycles) as
-- copies with their keys and values scrubbed at any depth.
local function scrub_value(v, secrets)
  local t = type(v)
  if t == "string" then return M.scrub(v, secrets) end
  if t ~= "table" or next(v) == nil then return v end
  local copy = {}
  for k, x in pairs(v) do
    copy[scrub_value(k, secrets)] = scrub_value(x, secrets)
  end
  return setmetatable(copy, getmetatable(v))
end

--- Scrub every string the error carries (message, code, errors and
-- warnings at any depth, body, …) of the given secrets, in place.
function M.redact(e, secrets)
  if #secrets == 0 then return e end
  local fields = {}
  for k, v in pairs(e) do fields[k] = v end
  for k, v in pairs(fields) do
    e[k] = scrub_value(v, secrets)
  end
  return e
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

--- Base64 of `s` (RFC 4648, padded): what an `Authorization: Basic` header
-- carries, so that an echo of it can be scrubbed too.
function M.base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = string_byte(s, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local q = { math_floor(n / 262144), math_floor(n / 4096) % 64, math_floor(n / 64) % 64, n % 64 }
    for j = 1, 4 do out[#out + 1] = string_sub(B64, q[j] + 1, q[j] + 1) end
    if c == nil then out[#out] = "=" end
    if b == nil then out[#out - 1] = "=" end
  end
  return table_concat(out)
end

M.Error = Error
return M
