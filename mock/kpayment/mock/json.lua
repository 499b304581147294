--- kpayment.mock.json: the mock's JSON writer.
--
-- cjson cannot keep integers above 2^53 exact nor keep field order, so the
-- mock writes its own JSON: ordered objects, exact integers, and text that
-- is always valid UTF-8.
--
--   json.object(k1, v1, k2, v2, …)  an ordered object; a nil value is null
--   json.object_of(list)             the same from an array {k1, v1, …}
--   json.append(object, key, value)  adds a member at the end
--   json.raw(text)                   JSON text written as is
--   json.quote(s)                    a JSON string literal
--   json.encode(value)               JSON text; tables that are neither
--                                    objects nor raw text are arrays

local M = {}

local format, concat = string.format, table.concat
local setmetatable, getmetatable = setmetatable, getmetatable

local OBJECT = {} -- metatable of ordered objects: { k1, v1, …, n = 2 * members }
local RAW = {} -- metatable of pre-encoded JSON text: { text }

--- An ordered JSON object from alternating keys and values; a nil value is
-- written as null.
function M.object(...)
  return setmetatable(table.pack(...), OBJECT)
end

--- An ordered JSON object from an array of alternating keys and values (no
-- nil among them); the array itself becomes the object.
function M.object_of(list)
  list.n = #list
  return setmetatable(list, OBJECT)
end

--- Adds a member after the existing ones.
function M.append(object, key, value)
  local n = object.n
  object[n + 1], object[n + 2], object.n = key, value, n + 2
end

--- JSON text written as is (for escapes the encoder would not choose).
function M.raw(text)
  return setmetatable({ text }, RAW)
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
for byte = 0, 31 do
  local c = string.char(byte)
  ESCAPES[c] = ESCAPES[c] or format("\\u%04x", byte)
end
ESCAPES["\127"] = "\\u007f"

-- JSON text must be Unicode: echoed bytes that are not UTF-8 become U+FFFD,
-- as a Java backend decoding the query would make them.
local function valid_utf8(s)
  if utf8.len(s) then return s end
  local parts, i = {}, 1
  while true do
    local ok, bad = utf8.len(s, i)
    if ok then
      parts[#parts + 1] = s:sub(i)
      return concat(parts)
    end
    parts[#parts + 1] = s:sub(i, bad - 1)
    parts[#parts + 1] = "\u{FFFD}"
    i = bad + 1
  end
end

local function quote(s)
  return '"' .. valid_utf8(s):gsub('[%c"\\]', ESCAPES) .. '"'
end
M.quote = quote

local function encode_into(buf, v)
  local kind = type(v)
  if v == nil then
    buf[#buf + 1] = "null"
  elseif kind == "string" then
    buf[#buf + 1] = quote(v)
  elseif kind == "number" then
    buf[#buf + 1] = math.type(v) == "integer" and format("%d", v) or format("%.14g", v)
  elseif kind == "boolean" then
    buf[#buf + 1] = v and "true" or "false"
  elseif getmetatable(v) == RAW then
    buf[#buf + 1] = v[1]
  elseif getmetatable(v) == OBJECT then
    buf[#buf + 1] = "{"
    for i = 1, v.n, 2 do
      if i > 1 then buf[#buf + 1] = "," end
      buf[#buf + 1] = quote(v[i])
      buf[#buf + 1] = ":"
      encode_into(buf, v[i + 1])
    end
    buf[#buf + 1] = "}"
  else -- any other table is an array
    buf[#buf + 1] = "["
    for i = 1, #v do
      if i > 1 then buf[#buf + 1] = "," end
      encode_into(buf, v[i])
    end
    buf[#buf + 1] = "]"
  end
end

function M.encode(v)
  local buf = {}
  encode_into(buf, v)
  return concat(buf)
end

return M
