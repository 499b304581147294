--- JSON text of decoded responses, numbers exact, for `kpayment offers
-- --json`.
--
-- Why not a packaged encoder: Debian's lua-cjson 2.1.0 writes numbers with
-- 14 significant digits (9007199254740993 becomes 9.007199254741e+15, and
-- 0.1 + 0.2 becomes 0.3), and dkjson 2.6 writes integers exactly on 5.3+
-- but floats through `tostring` (14 digits too) and cannot write
-- `kpayment.null`.  Here integers are written with all their digits and
-- floats with the fewest digits that read back as the same double.
--
-- Before 5.3 the decoder gives integers above 2^53 as strings of their
-- digits (see the README's number rule), which a string field holding
-- digits cannot be told from.  Those strings are written back as numbers
-- under the keys the API reference declares as integers (`id`, `version`,
-- `lenderID`, …; see INTEGER_KEYS); under any other key they stay strings.
--
-- What the decoded value no longer says is written as follows: an object
-- member that was null is absent (the decoder leaves it out), an empty
-- table is `[]`, and object keys come out sorted.
-- @module kpayment.cli_json

local core = require("kpayment.core")

local type, pairs, next, tostring, tonumber, error = type, pairs, next, tostring, tonumber, error
local string_format, string_gsub, string_byte, string_find, string_rep =
  string.format, string.gsub, string.byte, string.find, string.rep
local table_concat, table_sort = table.concat, table.sort
local math_floor, math_huge = math.floor, math.huge
local math_type = math.type
local NULL = core.null

local M = {}

--- Integer fields of the API reference (and of its error bodies): before
-- 5.3 a string of digits under one of these keys is written as a number.
M.INTEGER_KEYS = {
  id = true, version = true, lenderID = true, availability = true, phoneCommunicationId = true,
  emailCommunicationId = true, signatureRequestID = true, numberOfInvoices = true, parent = true,
  financeOfferId = true, errorCode = true, warningCode = true,
}

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
                  ["\r"] = "\\r", ["\t"] = "\\t" }

local function escape_char(c)
  return ESCAPES[c] or string_format("\\u%04x", string_byte(c))
end

--- A Lua string as a JSON string (UTF-8 passes through as is).
function M.quote(s)
  return '"' .. string_gsub(s, '[%c"\\]', function(c)
    if c == "\127" then return c end
    return escape_char(c)
  end) .. '"'
end

-- The shortest "%.<n>g" text that reads back as the same double.
local function float_text(v)
  for digits = 15, 17 do
    local s = string_format("%." .. digits .. "g", v)
    if tonumber(s) == v then return s end
  end
  return string_format("%.17g", v)
end

--- A number as JSON text: integers with all their digits; floats as the
-- shortest text that reads back as the same value, with ".0" when that
-- looks like an integer on 5.3+ (where the decoder keeps the difference).
function M.number(v)
  if v ~= v or v == math_huge or v == -math_huge then
    error("kpayment: JSON has no " .. tostring(v), 2)
  end
  if math_type then
    if math_type(v) == "integer" then return string_format("%d", v) end
    local s = float_text(v)
    if not string_find(s, "[.eEn]") then s = s .. ".0" end
    return s
  end
  if v == math_floor(v) and v >= -2^53 and v <= 2^53 then return string_format("%.0f", v) end
  return float_text(v)
end

local function is_array(t)
  local n = #t
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then
      error("kpayment: JSON object keys must be strings (got " .. type(k) .. ")", 0)
    end
    keys[#keys + 1] = k
  end
  table_sort(keys)
  return keys
end

-- Appends the text of v to out; indent is nil for compact output.
local function write(out, v, key, indent, depth)
  local t = type(v)
  if t == "string" then
    if not math_type and key and M.INTEGER_KEYS[key] and string_find(v, "^%-?%d+$") then
      out[#out + 1] = v
    else
      out[#out + 1] = M.quote(v)
    end
  elseif t == "number" then
    out[#out + 1] = M.number(v)
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif v == NULL then
    out[#out + 1] = "null"
  elseif t == "table" then
    if depth > 1000 then error("kpayment: JSON nested too deeply", 0) end
    local nl = indent and ("\n" .. string_rep(indent, depth + 1)) or ""
    local close = indent and ("\n" .. string_rep(indent, depth)) or ""
    local colon = indent and ": " or ":"
    if next(v) == nil then
      out[#out + 1] = "[]"
    elseif is_array(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = nl
        write(out, v[i], nil, indent, depth + 1)
      end
      out[#out + 1] = close .. "]"
    else
      out[#out + 1] = "{"
      local keys = sorted_keys(v)
      for i = 1, #keys do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = nl .. M.quote(keys[i]) .. colon
        write(out, v[keys[i]], keys[i], indent, depth + 1)
      end
      out[#out + 1] = close .. "}"
    end
  else
    error("kpayment: cannot write a " .. t .. " as JSON", 0)
  end
end

--- JSON text of `v` (tables, strings, numbers, booleans, kpayment.null).
-- @tparam[opt] string indent indentation per level (pretty output), or
-- nil for one line
function M.encode(v, indent)
  local out = {}
  write(out, v, nil, indent, 0)
  return table_concat(out)
end

return M
