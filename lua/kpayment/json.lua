--- JSON text: the one writer of everything kpayment writes as JSON (the
-- command's output, the mock's responses).
--
-- Why not a packaged encoder: Debian's lua-cjson 2.1.0 writes numbers with
-- 14 significant digits (9007199254740993 becomes 9.007199254741e+15, and
-- 0.1 + 0.2 becomes 0.3), and dkjson 2.6 writes floats through `tostring`
-- and cannot write `kpayment.null`.  Here:
--
-- - integers are written with all their digits; floats with the fewest
--   digits that read back as the same double (`5e-324`, `0.30000000000000004`),
--   with ".0" when that looks like an integer on 5.3+ (where the decoder
--   keeps the difference), and `-0.0` for negative zero;
-- - strings are always valid JSON: control characters escaped, bytes that
--   are not UTF-8 written as U+FFFD;
-- - `object(k1, v1, …)` keeps its members in order (a nil value is null),
--   `raw(text)` is written as it is, `null` is `kpayment.null`; any other
--   table is an array when its keys are 1..n, else an object with its keys
--   sorted.  An empty table is `[]`, but `{}` when the decoder made it of
--   an empty object (its metatable is `kpayment.core.empty_object`) or its
--   metatable is among the `objects` option's (the command's records).
--
-- The decoder gives integers beyond int64 (before 5.3, above 2^53) as
-- strings of their digits, which nothing tells from a string field holding
-- digits: the caller names the keys whose such strings are numbers
-- (`integer_keys`).
-- @module kpayment.json

local type, pairs, next, tostring, tonumber, error, select, setmetatable, getmetatable =
  type, pairs, next, tostring, tonumber, error, select, setmetatable, getmetatable
local string_format, string_gsub, string_byte, string_find, string_rep, string_sub =
  string.format, string.gsub, string.byte, string.find, string.rep, string.sub
local table_concat, table_sort = table.concat, table.sort
local math_floor, math_huge = math.floor, math.huge
local math_type = math.type

local M = {}

-- kpayment.null where the C core loads (the mock may run without it).
local EMPTY_OBJECT
do
  local ok, core = pcall(require, "kpayment.core")
  M.null = ok and core.null or setmetatable({}, { __tostring = function() return "null" end })
  EMPTY_OBJECT = ok and core.empty_object or nil
end

local OBJECT = {}   -- metatable of ordered objects: { k1, v1, …, n = 2 * members }
local RAW = {}      -- metatable of JSON text written as is: { text }

--- An ordered object from alternating keys and values; a nil value is null.
function M.object(...)
  return setmetatable({ n = select("#", ...), ... }, OBJECT)
end

--- The same from an array of alternating keys and values (no nil among
-- them): the array itself becomes the object.
function M.object_of(list)
  list.n = #list
  return setmetatable(list, OBJECT)
end

--- Add a member after the object's others.
function M.append(object, key, value)
  local n = object.n
  object[n + 1], object[n + 2], object.n = key, value, n + 2
end

--- JSON text written as it is.
function M.raw(text)
  return setmetatable({ text }, RAW)
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
                  ["\r"] = "\\r", ["\t"] = "\\t" }
for byte = 0, 31 do
  local c = string.char(byte)
  ESCAPES[c] = ESCAPES[c] or string_format("\\u%04x", byte)
end
ESCAPES["\127"] = "\\u007f"

-- The length of a valid UTF-8 sequence starting at i, or nil (RFC 3629: no
-- overlong forms, no surrogates, nothing above U+10FFFF).
local function sequence(s, i)
  local a = string_byte(s, i)
  if a < 0x80 then return 1 end
  local n, lo, hi
  lo, hi = 0x80, 0xBF
  if a >= 0xC2 and a <= 0xDF then n = 1
  elseif a == 0xE0 then n, lo = 2, 0xA0
  elseif a >= 0xE1 and a <= 0xEC or a == 0xEE or a == 0xEF then n = 2
  elseif a == 0xED then n, hi = 2, 0x9F
  elseif a == 0xF0 then n, lo = 3, 0x90
  elseif a >= 0xF1 and a <= 0xF3 then n = 3
  elseif a == 0xF4 then n, hi = 3, 0x8F
  else return nil end
  local b = string_byte(s, i + 1)
  if not b or b < lo or b > hi then return nil end
  for k = 2, n do
    local c = string_byte(s, i + k)
    if not c or c < 0x80 or c > 0xBF then return nil end
  end
  return n + 1
end

--- `s` with every byte that is not part of valid UTF-8 replaced by U+FFFD.
function M.valid_utf8(s)
  if not string_find(s, "[\128-\255]") then return s end
  local out, i, from, len = {}, 1, 1, #s
  while i <= len do
    local n = sequence(s, i)
    if n then
      i = i + n
    else
      out[#out + 1] = string_sub(s, from, i - 1)
      out[#out + 1] = "\239\191\189"
      i = i + 1
      from = i
    end
  end
  if from == 1 then return s end
  out[#out + 1] = string_sub(s, from)
  return table_concat(out)
end

--- A Lua string as a JSON string.
function M.quote(s)
  -- most strings need nothing done: printable ASCII without " or \
  if not string_find(s, '[%c"\\\127-\255]') then return '"' .. s .. '"' end
  return '"' .. string_gsub(M.valid_utf8(s), '[%c"\\\127]', ESCAPES) .. '"'
end

-- The fewest significant digits that read back as the same double, in
-- plain notation where %g would use an exponent for an ordinary magnitude
-- (100, not 1e+02).
local function float_text(v)
  local p = 17
  for digits = 1, 16 do
    if tonumber(string_format("%." .. digits .. "g", v)) == v then
      p = digits
      break
    end
  end
  local s = string_format("%." .. p .. "g", v)
  local e = tonumber(string.match(s, "e([-+]%d+)$"))
  if e and e >= 0 and e < 17 then s = string_format("%." .. (e + 1 > p and e + 1 or p) .. "g", v) end
  -- PUC Lua formats (and reads) with the C locale's decimal point, which a
  -- host may have set to a comma
  return (string_gsub(s, "[^%deE+%-.]+", "."))
end

--- A number as JSON text (see the module's header); raises for NaN and
-- the infinities, which JSON has no text for.
function M.number(v)
  if v ~= v or v == math_huge or v == -math_huge then
    error("kpayment: JSON has no " .. tostring(v), 2)
  end
  if v == 0 and 1 / v < 0 then return "-0.0" end
  if math_type then
    if math_type(v) == "integer" then return string_format("%d", v) end
    local s = float_text(v)
    if not string_find(s, "[.eEn]") then s = s .. ".0" end
    return s
  end
  if v == math_floor(v) and v >= -2^53 and v <= 2^53 then return string_format("%.0f", v) end
  return float_text(v)
end

-- Whether t's keys are exactly 1..#t.
local function is_array(t)
  local n, count = #t, 0
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

-- Whether string s is the JSON text of an integer that the decoder gave
-- as a string: written as JSON writes integers (no leading zero), and
-- beyond what it gives as numbers, int64 where Lua has integers, else
-- 2^53.  Anything else was a JSON string.
local function decoded_integer(s)
  if not string_find(s, "^%-?[1-9]%d*$") then return false end
  local neg = string_sub(s, 1, 1) == "-"
  local digits = neg and string_sub(s, 2) or s
  local max = not math_type and "9007199254740992" or neg and "9223372036854775808" or "9223372036854775807"
  return #digits > #max or (#digits == #max and digits > max)
end

-- Appends the text of v to out.  w: { indent, integer_keys }.
local function write(out, v, key, w, depth)
  local t = type(v)
  if t == "string" then
    local ik = w.integer_keys
    if ik and key and ik[key] and decoded_integer(v) then
      out[#out + 1] = v
    else
      out[#out + 1] = M.quote(v)
    end
  elseif t == "number" then
    out[#out + 1] = M.number(v)
  elseif t == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif v == nil or v == M.null then
    out[#out + 1] = "null"
  elseif t == "table" then
    local mt = getmetatable(v)
    if mt == RAW then
      out[#out + 1] = v[1]
      return
    end
    if depth > 1000 then error("kpayment: JSON nested too deeply", 0) end
    local indent = w.indent
    local nl = indent and ("\n" .. string_rep(indent, depth + 1)) or ""
    local close = indent and ("\n" .. string_rep(indent, depth)) or ""
    local colon = indent and ": " or ":"
    if mt == OBJECT then
      if v.n == 0 then
        out[#out + 1] = "{}"
        return
      end
      out[#out + 1] = "{"
      for i = 1, v.n, 2 do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = nl .. M.quote(v[i]) .. colon
        write(out, v[i + 1], v[i], w, depth + 1)
      end
      out[#out + 1] = close .. "}"
    elseif next(v) == nil then
      local objects = w.objects
      out[#out + 1] = mt ~= nil and (mt == EMPTY_OBJECT or objects and objects[mt]) and "{}" or "[]"
    elseif is_array(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = nl
        write(out, v[i], nil, w, depth + 1)
      end
      out[#out + 1] = close .. "]"
    else
      out[#out + 1] = "{"
      local keys = sorted_keys(v)
      for i = 1, #keys do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = nl .. M.quote(keys[i]) .. colon
        write(out, v[keys[i]], keys[i], w, depth + 1)
      end
      out[#out + 1] = close .. "}"
    end
  else
    error("kpayment: cannot write a " .. t .. " as JSON", 0)
  end
end

--- JSON text of `v`.
-- @tparam[opt] table opts `indent` (a string per level: pretty output;
-- default one line), `objects` (a set of metatables: an empty table with
-- one of them is `{}`), `integer_keys` (a set of keys: a digit string under
-- one of them that the decoder gave for a number, beyond int64 or before
-- 5.3 above 2^53, is written as that number)
function M.encode(v, opts)
  local out = {}
  write(out, v, nil, opts or {}, 0)
  return table_concat(out)
end

return M
