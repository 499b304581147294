--- The error object returned as the second value when a call fails.
-- @module kpayment.errors

local setmetatable, getmetatable, tostring, type, ipairs = setmetatable, getmetatable, tostring, type, ipairs
local string_gsub, string_byte, string_sub = string.gsub, string.byte, string.sub
local math_floor = math.floor

local M = {}

local Error = {}
Error.__index = Error
Error.__name = "kpayment.Error"

--- One readable line: kind, HTTP status, API code and message.
function Error.__tostring(e)
  local s = "kpayment: " .. tostring(e.kind) .. " error"
  if e.status then s = s .. " (HTTP " .. e.status .. ")" end
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

local function escape_pattern(s)
  return (string_gsub(s, "[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

--- Remove every occurrence of the given secrets from the error's text
-- fields, so credentials cannot leak through a server's echo or a library
-- message.
function M.redact(e, secrets)
  for i = 1, #secrets do
    local pat = escape_pattern(secrets[i])
    for _, k in ipairs({ "message", "body" }) do
      if type(e[k]) == "string" then
        e[k] = string_gsub(e[k], pat, "[redacted]")
      end
    end
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
  return table.concat(out)
end

M.Error = Error
return M
