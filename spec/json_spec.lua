-- Specification of kpayment.core.decode(): a strict RFC 8259 JSON decoder.
--
-- Mapping: objects -> tables with string keys, arrays -> sequences, integral
-- numbers that fit in int64 -> Lua integers (before 5.3: numbers up to 2^53,
-- strings of their digits above), other numbers -> floats, null in an
-- array -> core.null, null as an object value -> key absent. Errors are Lua
-- errors that name the 1-based byte position ("at byte N").

local core = require("kpayment.core")
local cjson = require("cjson")

local fixture = require("support.fixtures")
local version = require("support.version")
-- The 64-bit generator parts: Lua 5.3+ only (integer operators).
local gen = version.int64 and require("support.json_gen") or nil

-- math.type where it exists; before 5.3 every number is a float.
local math_type = math.type or function(v) return type(v) == "number" and "float" or nil end

-- An integral token beyond int64 is its own digits on every Lua (before
-- 5.3, so is every one above 2^53).
local function beyond(text)
  return text
end

local NEG_ZERO = -1 / math.huge
local MAX_DEPTH = 1000

---------------------------------------------------------------------------
-- helpers
---------------------------------------------------------------------------

-- A printable rendering of a JSON text for test names and messages.
local function show(text)
  local out = text:gsub("[%c\128-\255]", function(c)
    return string.format("\\x%02X", c:byte())
  end)
  if #out > 60 then
    out = out:sub(1, 57) .. "..."
  end
  return "<" .. out .. ">"
end

local function show_value(v)
  if math_type(v) == "float" then
    return string.format("float %.17g", v)
  elseif math_type(v) == "integer" then
    return string.format("integer %d", v)
  elseif type(v) == "string" then
    return "string " .. show(v)
  elseif v == core.null then
    return "core.null"
  end
  return type(v) .. " " .. tostring(v)
end

local function same_number(a, b)
  if math_type(a) ~= math_type(b) or a ~= b then
    return false
  end
  if a == 0 and math_type(a) == "float" then
    return 1 / a == 1 / b -- distinguishes 0.0 from -0.0
  end
  return true
end

-- Returns nil when `actual` equals `expected` deeply (numbers must agree in
-- subtype and sign of zero, tables must have the same key sets), otherwise a
-- description of the first difference.
local function diff(expected, actual, path)
  path = path or "$"
  if type(expected) ~= type(actual) then
    return string.format("%s: expected %s, got %s", path, show_value(expected), show_value(actual))
  end
  if type(expected) == "number" then
    if not same_number(expected, actual) then
      return string.format("%s: expected %s, got %s", path, show_value(expected), show_value(actual))
    end
  elseif type(expected) == "table" then
    for k, v in pairs(expected) do
      local d = diff(v, actual[k], string.format("%s[%s]", path, show_value(k)))
      if d then return d end
    end
    for k, v in pairs(actual) do
      if expected[k] == nil then
        return string.format("%s: unexpected key [%s] = %s", path, show_value(k), show_value(v))
      end
    end
  elseif expected ~= actual then
    return string.format("%s: expected %s, got %s", path, show_value(expected), show_value(actual))
  end
  return nil
end

local function assert_decodes_to(text, expected)
  local ok, result = pcall(core.decode, text)
  assert(ok, "decoding " .. show(text) .. " failed: " .. tostring(result))
  local d = diff(expected, result)
  assert(d == nil, "decoding " .. show(text) .. ": " .. tostring(d))
  return result
end

-- Decodes `text`, requires an error, returns its message.
local function decode_error(text)
  local ok, err = pcall(core.decode, text)
  assert(not ok, "expected an error for " .. show(text) .. ", got " .. show_value(err))
  assert(type(err) == "string", "error value is a " .. type(err) .. ", not a string")
  return err
end

local function assert_rejected(text)
  local err = decode_error(text)
  assert(err:match("at byte %d+"), "error message lacks 'at byte N': " .. err)
  return err
end

local function assert_rejected_at(text, byte)
  local err = assert_rejected(text)
  local got = tonumber(err:match("at byte (%d+)"))
  assert(got == byte, string.format("%s: expected 'at byte %d', got: %s", show(text), byte, err))
  return err
end

local function mentions_depth(err)
  local lower = err:lower()
  return lower:find("depth", 1, true) ~= nil or lower:find("nest", 1, true) ~= nil
end

-- Nesting depth of a decoded value: scalars are 0, [] and {} are 1.
local function depth_of(v)
  if type(v) ~= "table" then return 0 end
  local deepest = 0
  for _, child in pairs(v) do
    local d = depth_of(child)
    if d > deepest then deepest = d end
  end
  return deepest + 1
end

-- Iterative variant for very deep values (no recursion limits involved).
local function chain_depth(v)
  local depth = 0
  while type(v) == "table" do
    depth = depth + 1
    local _, child = next(v)
    v = child
  end
  return depth
end

local function nested_arrays(n)
  return string.rep("[", n) .. string.rep("]", n)
end

local function nested_objects(n)
  return string.rep('{"a":', n - 1) .. "{}" .. string.rep("}", n - 1)
end

local function nested_mixed(n)
  -- levels alternate: [ {"k": [ {"k": ... } ] } ]
  local open, close = {}, {}
  for level = 1, n do
    if level % 2 == 1 then
      open[level], close[n - level + 1] = "[", "]"
    else
      open[level], close[n - level + 1] = '{"k":', "}"
    end
  end
  -- the innermost level is empty
  if n % 2 == 1 then
    open[n] = "["
  else
    open[n] = "{"
  end
  return table.concat(open) .. table.concat(close)
end

---------------------------------------------------------------------------
-- a deterministic generator of JSON values and their texts
---------------------------------------------------------------------------

local WHITESPACE = { "", "", "", " ", "  ", "\t", "\n", "\r\n", " \n\t " }

local function ws(rng)
  return rng.pick(WHITESPACE)
end

local function escape_code_point(cp)
  if cp >= 0x10000 then
    local v = cp - 0x10000
    return string.format("\\u%04x\\u%04X", 0xD800 + math.floor(v / 0x400), 0xDC00 + v % 0x400)
  end
  if cp % 2 == 0 then
    return string.format("\\u%04x", cp)
  end
  return string.format("\\u%04X", cp)
end

-- UTF-8 of a code point (utf8.char is 5.3+).
local function utf8_char(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40) end
  if cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 0x1000), 0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
  end
  return string.char(0xF0 + math.floor(cp / 0x40000), 0x80 + math.floor(cp / 0x1000) % 0x40,
    0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local SHORT_ESCAPES = {
  [0x22] = '\\"', [0x5C] = "\\\\", [0x2F] = "\\/", [0x08] = "\\b",
  [0x0C] = "\\f", [0x0A] = "\\n", [0x0D] = "\\r", [0x09] = "\\t",
}

local CODE_POINT_RANGES = {
  { 0x00, 0x1F }, { 0x20, 0x7E }, { 0x20, 0x7E }, { 0x20, 0x7E }, { 0x7F, 0x7F },
  { 0x80, 0x7FF }, { 0x800, 0xD7FF }, { 0xE000, 0xFFFF }, { 0x10000, 0x10FFFF },
  { 0x22, 0x22 }, { 0x5C, 0x5C }, { 0x2F, 0x2F },
}

-- Returns the Lua string and a JSON text for it, mixing raw UTF-8 with all
-- kinds of escapes.
local function gen_string(rng)
  local raw, json = {}, { '"' }
  for i = 1, rng.int(12) - 1 do
    local range = rng.pick(CODE_POINT_RANGES)
    local cp = range[1] + (rng.next() % (range[2] - range[1] + 1))
    raw[i] = utf8_char(cp)
    local style = rng.int(3)
    local piece
    if cp < 0x20 or cp == 0x22 or cp == 0x5C then
      piece = (style == 1 and SHORT_ESCAPES[cp]) or escape_code_point(cp)
    elseif style == 1 then
      piece = escape_code_point(cp)
    elseif style == 2 and SHORT_ESCAPES[cp] then
      piece = SHORT_ESCAPES[cp]
    else
      piece = utf8_char(cp)
    end
    json[#json + 1] = piece
  end
  json[#json + 1] = '"'
  return table.concat(raw), table.concat(json)
end

local function float_text(x)
  local s = string.format("%.17g", x)
  if not s:find("[.eEn]") then
    s = s .. ".0" -- keep integral floats floats: 100.0, -0.0
  end
  return s
end

local gen_value

local function gen_array(rng, depth)
  local value, parts = {}, {}
  for i = 1, rng.int(6) - 1 do
    local v, text
    if rng.int(8) == 1 then
      v, text = core.null, "null"
    else
      v, text = gen_value(rng, depth + 1)
    end
    value[i] = v
    parts[i] = ws(rng) .. text .. ws(rng)
  end
  if #parts == 0 then
    return value, "[" .. ws(rng) .. "]"
  end
  return value, "[" .. table.concat(parts, ",") .. "]"
end

local function gen_object(rng, depth)
  local value, parts = {}, {}
  local seen = {}
  for _ = 1, rng.int(6) - 1 do
    local key, key_text = gen_string(rng)
    if not seen[key] then
      seen[key] = true
      local v, text
      if rng.int(8) == 1 then
        text = "null" -- the key stays absent
      else
        v, text = gen_value(rng, depth + 1)
      end
      value[key] = v
      parts[#parts + 1] = ws(rng) .. key_text .. ws(rng) .. ":" .. ws(rng) .. text .. ws(rng)
    end
  end
  if #parts == 0 then
    return value, "{" .. ws(rng) .. "}"
  end
  return value, "{" .. table.concat(parts, ",") .. "}"
end

function gen_value(rng, depth)
  local kinds = depth >= 4 and 5 or 7
  local kind = rng.int(kinds)
  if kind == 1 then
    local v = rng.int(2) == 1
    return v, tostring(v)
  elseif kind == 2 then
    local v = gen.integer(rng)
    return v, string.format("%d", v)
  elseif kind == 3 then
    local v = gen.float(rng)
    return v, float_text(v)
  elseif kind == 4 or kind == 5 then
    return gen_string(rng)
  elseif kind == 6 then
    return gen_array(rng, depth)
  end
  return gen_object(rng, depth)
end

---------------------------------------------------------------------------
-- case tables
---------------------------------------------------------------------------

local LITERALS = {
  { "true", true },
  { "false", false },
  { "null", core.null },
  { " \t\r\n true \t\r\n ", true },
}

local NUMBERS = {
  -- integers
  { "0", 0 },
  { "7", 7 },
  { "-7", -7 },
  { "42", 42 },
  { "1200", 1200 },
  { "9007199254740992", 9007199254740992 },
  { "9007199254740993", version.integer("9007199254740993") },
  { "-9007199254740993", version.integer("-9007199254740993") },
  { "9223372036854775806", version.integer("9223372036854775806") },
  { "9223372036854775807", version.integer("9223372036854775807") },
  { "-9223372036854775807", version.integer("-9223372036854775807") },
  { "-9223372036854775808", version.integer("-9223372036854775808") },
  -- integral but outside int64: their digits
  { "9223372036854775808", beyond("9223372036854775808") },
  { "-9223372036854775809", beyond("-9223372036854775809") },
  { "18446744073709551616", beyond("18446744073709551616") },
  { "100000000000000000000000", beyond("100000000000000000000000") },
  { "-100000000000000000000000000000", beyond("-100000000000000000000000000000") },
  -- negative zero
  { "-0", NEG_ZERO },
  { "-0.0", NEG_ZERO },
  { "-0e0", NEG_ZERO },
  -- fraction or exponent: floats
  { "0.0", 0.0 },
  { "0e0", 0.0 },
  { "1.0", 1.0 },
  { "-1.0", -1.0 },
  { "1e2", 100.0 },
  { "1E2", 100.0 },
  { "1e+2", 100.0 },
  { "1e-2", 0.01 },
  { "1E-2", 0.01 },
  { "1e00002", 100.0 },
  { "2.5", 2.5 },
  { "-1.5e-3", -0.0015 },
  { "123e-2", 1.23 },
  { "1250.75", 1250.75 },
  { "0.1", 0.1 },
  { "0.2", 0.2 },
  { "0.3", 0.3 },
  { "37.7749", 37.7749 },
  { "-122.4194", -122.4194 },
  { "9007199254740993.0", 9007199254740992.0 },
  { "1e23", 1e23 },
  { "8.98846567431158e307", 8.98846567431158e307 },
  { "1.7976931348623157e308", 1.7976931348623157e308 },
  { "-1.7976931348623157e308", -1.7976931348623157e308 },
  { "2.2250738585072014e-308", 2.2250738585072014e-308 },
  { "2.2250738585072011e-308", 2.2250738585072011e-308 },
  { "4.9406564584124654e-324", 4.9406564584124654e-324 },
  { "5e-324", 4.9406564584124654e-324 },
  { "0.1000000000000000055511151231257827021181583404541015625", 0.1 },
  -- exactly halfway between 1 and the next double: ties to even
  { "1.00000000000000011102230246251565404236316680908203125", 1.0 },
  -- a hair above halfway: rounds up
  { "1.00000000000000011102230246251565404236316680908203126", 1.0000000000000002 },
  { "0.00000000000000000000000000000000000000000000000000001", 1e-53 },
  { "123456789012345678901234567890.5", 1.2345678901234568e29 },
}

local STRINGS = {
  { [[""]], "" },
  { [["abc"]], "abc" },
  { [["with spaces and / slash"]], "with spaces and / slash" },
  { [["\""]], '"' },
  { [["\\"]], "\\" },
  { [["\/"]], "/" },
  { [["\b"]], "\b" },
  { [["\f"]], "\f" },
  { [["\n"]], "\n" },
  { [["\r"]], "\r" },
  { [["\t"]], "\t" },
  { [["a\"b\\c\/d\be\ff\ng\rh\ti"]], "a\"b\\c/d\be\ff\ng\rh\ti" },
  { [["\u0041"]], "A" },
  { [["\u007f"]], "\127" },
  { [["\u0080"]], "\194\128" },
  { [["\u00e9"]], "\195\169" },
  { [["\u00E9"]], "\195\169" },
  { [["\u07FF"]], "\223\191" },
  { [["\u0800"]], "\224\160\128" },
  { [["\u20AC"]], "\226\130\172" },
  { [["\u20ac"]], "\226\130\172" },
  { [["\uD7FF"]], "\237\159\191" },
  { [["\uE000"]], "\238\128\128" },
  { [["\uFFFF"]], "\239\191\191" },
  { [["\ud83d\ude00"]], "\240\159\152\128" },
  { [["\uD83D\uDE00"]], "\240\159\152\128" },
  { [["\uD834\uDD1E"]], "\240\157\132\158" },
  { [["\uD800\uDC00"]], "\240\144\128\128" },
  { [["\udbff\udfff"]], "\244\143\191\191" },
  { [["\u0000"]], "\0" },
  { [["a\u0000b"]], "a\0b" },
  { [["\u0000\u0000"]], "\0\0" },
  { [["caf\u00e9 \ud83d\ude97!"]], "caf\195\169 \240\159\154\151!" },
  -- raw (unescaped) characters
  { '"\127"', "\127" },
  { '"\194\128"', "\194\128" },
  { '"\195\169t\195\169"', "\195\169t\195\169" },
  { '"\223\191"', "\223\191" },
  { '"\224\160\128"', "\224\160\128" },
  { '"\226\130\172"', "\226\130\172" },
  { '"\237\159\191"', "\237\159\191" },
  { '"\238\128\128"', "\238\128\128" },
  { '"\239\191\191"', "\239\191\191" },
  { '"\240\144\128\128"', "\240\144\128\128" },
  { '"\240\159\152\128"', "\240\159\152\128" },
  { '"\244\143\191\191"', "\244\143\191\191" },
  { '"\239\187\191"', "\239\187\191" }, -- U+FEFF inside a string is an ordinary character
}

local null = core.null

local CONTAINERS = {
  { "[]", {} },
  { "{}", {} },
  { "[ ]", {} },
  { "{ }", {} },
  { "[1,2,3]", { 1, 2, 3 } },
  { '["a",true,false,1.5]', { "a", true, false, 1.5 } },
  { "[null]", { null } },
  { "[null,null]", { null, null } },
  { "[1,null,3]", { 1, null, 3 } },
  { "[null,1]", { null, 1 } },
  { "[[],[[]],{}]", { {}, { {} }, {} } },
  { '{"a":1}', { a = 1 } },
  { '{"a":1,"b":[true,false]}', { a = 1, b = { true, false } } },
  { '{"a":null}', {} },
  { '{"a":null,"b":1}', { b = 1 } },
  { '{"a":[null]}', { a = { null } } },
  { '{"a":1,"a":2}', { a = 2 } },
  { '{"a":{"x":1},"a":[2]}', { a = { 2 } } },
  { '{"a":1,"a":null}', {} },
  { '{"":0}', { [""] = 0 } },
  { '{"1":true}', { ["1"] = true } },
  { '{"a\\u0062":1}', { ab = 1 } },
  { '{"\\u0000":1}', { ["\0"] = 1 } },
  { '{"\\u00e9":1,"\195\169x":2}', { ["\195\169"] = 1, ["\195\169x"] = 2 } },
  { '[{"a":[{"b":{}}]}]', { { a = { { b = {} } } } } },
  { ' \t\r\n[ \t\r\n1 \t\r\n, \t\r\n2 \t\r\n] \t\r\n', { 1, 2 } },
  { ' { "a" : 1 , "b" : [ ] } ', { a = 1, b = {} } },
}

-- Texts that are not JSON. Each must raise an error naming a byte position.
local REJECTED = {
  -- empty input and whitespace outside the four JSON characters
  "", " ", "\t\r\n ", "\f1", "1\f", "\v1", "\194\1601", "[1,\194\1602]", "\0",
  -- byte order mark
  "\239\187\191{}", "\239\187\191\"a\"",
  -- literals
  "tru", "nul", "fals", "True", "FALSE", "Null", "NULL", "truex", "nulll", "t", "undefined",
  "NaN", "nan", "Infinity", "-Infinity", "inf", "-inf", "[NaN]", '{"a":Infinity}',
  -- numbers
  "01", "-01", "00", "-00", "+1", "+0", ".5", "-.5", "5.", "-5.", "1.e5", "1e", "1E", "1e+", "1e-",
  "1ee5", "1e5.5", "1.5.2", "0x10", "0X10", "-", "--1", "- 1", "1_000", "1,5", "[1.]",
  "[.1]", "[01]", '{"a":-}',
  -- strings
  '"', '"abc', "'abc'", "['a']", '"\\x"', '"\\a"', '"\\0"', '"\\U0041"', '"\\u12"', '"\\u12"]',
  '"\\u123"', '"\\u00G0"', '"\\u 041"', '"\\\'"', '"\\', '"\\"', '"a\\u"',
  -- raw control bytes inside strings
  '"\1"', '"a\tb"', '"a\nb"', '"a\rb"', '"\0"', '"a\0b"', '"\31"', '"\8"',
  -- unpaired surrogates
  '"\\ud800"', '"\\uDBFF"', '"\\udc00"', '"\\uDFFF"', '"\\ud800x"', '"\\ud800\\u0041"',
  '"\\ud800\\ud800"', '"\\udc00\\ud800"', '"\\ud800\\n"', '"\\ud800\\"', '"\\ud83d"',
  '"\\ude00\\ud83d"',
  -- invalid UTF-8
  '"\128"', '"\191"', '"a\128b"', '"\195"', '"\195(x"', '"\195\195"', '"\226\130"', '"\226\130x"',
  '"\226(\161"', '"\240\159\152"', '"\240\159\152x"', '"\240(\140\188"',
  '"\192\128"', '"\192\175"', '"\193\191"', '"\224\128\128"', '"\224\128\175"', '"\224\159\191"',
  '"\240\128\128\128"', '"\240\143\191\191"', '"\237\160\128"', '"\237\191\191"',
  '"\237\160\189\237\184\128"', '"\244\144\128\128"', '"\247\191\191\191"',
  '"\245\128\128\128"', '"\248\136\128\128\128"', '"\252\132\128\128\128\128"',
  '"\254"', '"\255"', '"\226\130', '"\240\159', '{"\255":1}', "\195\169",
  -- arrays
  "[", "]", "[1", "[1,", "[1,]", "[,1]", "[,]", "[1,,2]", "[1 2]", "[1:2]", "[}", "[1}", "[[]",
  "[1]]",
  -- objects
  "{", "}", "{,}", '{"a"}', '{"a":}', '{"a" 1}', '{"a"1}', '{"a";1}', '{"a"::1}', '{"a":1,}',
  '{"a":1 "b":2}', '{"a":1,,"b":2}', '{,"a":1}', '{"a":1]', "{]", '{"a":1}}', '{"a":1,"b"}',
  '{"a":1', '{"a"', '{"a', "{a:1}", "{'a':1}", "{1:1}", "{null:1}", "{true:1}", "{[]:1}",
  '{{}:1}',
  -- comments
  "/* c */ 1", "1 /* c */", "// c\n1", "1 // c", "# c\n1", "[1 /* c */]",
  -- anything after the value
  "{} x", "[] []", "{}{}", "1 2", '"a" "b"', "true false", "null,", "[1],", "1]", "[1]\0",
  '"a"\0', "0 0",
  -- stray punctuation
  ",", ":", "[:]", "{:}",
}

-- The byte positions reported for a few rejected texts.
local POSITIONS = {
  { '{"a":1 "b":2}', 8 },
  { "[1,2", 5 },
  { "tru", 1 },
  { "nul", 1 },
  { "fals", 1 },
  { '"\1"', 2 },
  { '["ok","a\nb"]', 9 },
  { "", 1 },
  { "   ", 4 },
  { "[", 2 },
  { "[1,]", 4 },
  { '{"a":1,}', 8 },
  { '{"a"1}', 5 },
  { "[1 2]", 4 },
  { "{} x", 4 },
  { "1 2", 3 },
  { '"abc', 5 },
  { "[1]\0", 4 },
  { "\239\187\191{}", 1 },
  { "{a:1}", 2 },
  { "[1,\194\1602]", 4 },
}

---------------------------------------------------------------------------
-- the specification
---------------------------------------------------------------------------

describe("kpayment.core", function()
  describe("decode()", function()
    it("is a function of the core module", function()
      assert.is_function(core.decode)
    end)

    describe("null sentinel", function()
      it("is a userdata", function()
        assert.equal("userdata", type(core.null))
      end)

      it("equals cjson.null", function()
        assert.is_true(core.null == cjson.null)
      end)

      it("is returned for a top-level null", function()
        assert.is_true(core.decode("null") == core.null)
      end)
    end)

    describe("literals", function()
      for _, case in ipairs(LITERALS) do
        it("decodes " .. show(case[1]) .. " to " .. show_value(case[2]), function()
          assert_decodes_to(case[1], case[2])
        end)
      end
    end)

    describe("numbers", function()
      for _, case in ipairs(NUMBERS) do
        it("decodes " .. case[1] .. " to " .. show_value(case[2]), function()
          assert_decodes_to(case[1], case[2])
        end)
      end

      it("keeps int64 integers exact #int64", function()
        local v = core.decode("[9007199254740993,9223372036854775807,-9223372036854775808]")
        assert.equal("integer", math.type(v[1]))
        assert.equal("integer", math.type(v[2]))
        assert.equal("integer", math.type(v[3]))
        assert.is_true(v[1] == 9007199254740993)
        assert.is_true(v[1] ~= 9007199254740992)
        assert.is_true(v[2] == math.maxinteger)
        assert.is_true(v[3] == math.mininteger)
      end)

      it("decodes -0 to a float whose reciprocal is -inf", function()
        local v = core.decode("-0")
        assert.equal("float", math_type(v))
        assert.equal(-math.huge, 1 / v)
      end)

      it("parses the same decimals as Lua's tonumber", function()
        for _, text in ipairs({ "0.1", "2.675", "1e-7", "3.141592653589793", "6.02214076e23",
          "1.602176634e-19", "0.30000000000000004", "4503599627370497.5", "2.5e-310" }) do
          local v = core.decode(text)
          assert(same_number(tonumber(text), v), text .. " decoded to " .. show_value(v))
        end
      end)

      for _, text in ipairs({ "1e400", "-1e400", "1e309", "1.7976931348623159e308", "[1e400]",
        '{"a":-1e999}', "123456789e400" }) do
        it("rejects " .. show(text) .. " as out of range", function()
          local err = assert_rejected(text)
          assert(err:find("out of range", 1, true), "message does not say 'out of range': " .. err)
        end)
      end

      it("reads an exponent of any length, long fractions beside it included", function()
        -- 10^-100000 written out, then an exponent past 10^5: the value
        -- is 10^900000 (out of range), or 10^5
        local tiny = "0." .. ("0"):rep(99999) .. "1"
        local err = assert_rejected("[" .. tiny .. "e1000000]")
        assert(err:find("out of range", 1, true), err)
        local ok
        ok, err = pcall(core.decode, '{"a":[' .. tiny .. 'e1000000],"b":1}', { fields = { "b" } })
        assert(not ok and err:find("out of range", 1, true), tostring(err))
        assert.equal(1e5, core.decode("[" .. tiny .. "e100005]")[1])
        assert.equal(1e-5, core.decode("[1e-000000000000000000005]")[1])
      end)

      it("decodes 1e-400 to 0.0 or rejects it, never anything else", function()
        local ok, v = pcall(core.decode, "1e-400")
        if ok then
          assert(same_number(0.0, v), "1e-400 decoded to " .. show_value(v))
        else
          assert.truthy(v:match("at byte %d+"))
        end
      end)
    end)

    describe("strings", function()
      for _, case in ipairs(STRINGS) do
        it("decodes " .. show(case[1]) .. " to " .. show_value(case[2]), function()
          assert_decodes_to(case[1], case[2])
        end)
      end

      it("keeps \\u0000 as an embedded NUL counted by the length", function()
        local v = core.decode('"a\\u0000b\\u0000"')
        assert.equal(4, #v)
        assert.equal("a\0b\0", v)
      end)

      it("decodes a long string", function()
        local body = string.rep("0123456789abcdef\195\169", 20000)
        assert.equal(body, core.decode('"' .. body .. '"'))
      end)

      it("decodes a long run of escapes", function()
        local n = 10000
        local v = core.decode('"' .. string.rep("\\n\\u00e9\\ud83d\\ude00", n) .. '"')
        assert.equal(string.rep("\n\195\169\240\159\152\128", n), v)
      end)

      it("decodes escapes between plain runs of every length up to 40", function()
        -- an embedded JSON document: escapes with runs between them, which
        -- the decoder copies sixteen bytes at a time where it can
        local text, want = { '"' }, {}
        for len = 0, 40 do
          for _, esc in ipairs({ { '\\"', '"' }, { "\\\\", "\\" }, { "\\u00e9", "\195\169" },
                                { "\\ud83d\\ude00", "\240\159\152\128" }, { "\195\169", "\195\169" } }) do
            local run = string.rep(string.char(97 + len % 26), len)
            text[#text + 1] = run .. esc[1]
            want[#want + 1] = run .. esc[2]
          end
        end
        text[#text + 1] = '"'
        assert.equal(table.concat(want), core.decode(table.concat(text)))
        -- a control character after a long run is still found
        assert.has_error(function() core.decode('"\\n' .. string.rep("x", 37) .. '\1"') end,
          "kpayment.decode: control character in string at byte 41")
      end)

      it("decodes every code point in the BMP and one per supplementary plane", function()
        local text, want = {}, {}
        for cp = 0, 0x10FFFF do
          if (cp < 0xD800 or cp > 0xDFFF) and (cp <= 0xFFFF or cp % 0x10000 == 0x1234) then
            text[#text + 1] = escape_code_point(cp)
            want[#want + 1] = utf8_char(cp)
          end
        end
        local escaped = core.decode('"' .. table.concat(text) .. '"')
        assert.equal(table.concat(want), escaped)
        -- and raw, except the characters that must be escaped
        local raw = table.concat(want):gsub("[%z\1-\31\"\\]", "")
        assert.equal(raw, core.decode('"' .. raw .. '"'))
      end)
    end)

    describe("arrays and objects", function()
      for _, case in ipairs(CONTAINERS) do
        it("decodes " .. show(case[1]), function()
          assert_decodes_to(case[1], case[2])
        end)
      end

      it("keeps array indices dense around nulls", function()
        local v = core.decode("[1,null,3]")
        assert.equal(3, #v)
        assert.is_true(v[2] == core.null)
        assert.equal(3, v[3])
      end)

      it("leaves out object members whose value is null", function()
        local v = core.decode('{"a":null,"b":false}')
        assert.is_nil(v.a)
        assert.is_false(v.b)
        assert.equal("b", next(v))
        assert.is_nil(next(v, "b"))
      end)

      it("uses string keys even when they look like numbers", function()
        local v = core.decode('{"1":"x","2":"y"}')
        assert.is_nil(v[1])
        assert.equal("x", v["1"])
        assert.equal("y", v["2"])
      end)

      it("returns a new table on every call", function()
        local a = core.decode('{"a":[1]}')
        local b = core.decode('{"a":[1]}')
        assert.are_not.equal(a, b)
        a.a[1] = 2
        assert.equal(1, b.a[1])
      end)

      it("decodes a large array", function()
        local n = 100000
        local parts = {}
        for i = 1, n do parts[i] = tostring(i) end
        local v = core.decode("[" .. table.concat(parts, ",") .. "]")
        assert.equal(n, #v)
        for i = 1, n do
          if v[i] ~= i or version.int64 and math.type(v[i]) ~= "integer" then
            error("element " .. i .. " is " .. show_value(v[i]))
          end
        end
      end)

      it("decodes a large object", function()
        local n = 20000
        local parts = {}
        for i = 1, n do parts[i] = string.format('"k%d":%d', i, i) end
        local v = core.decode("{" .. table.concat(parts, ",") .. "}")
        for i = 1, n do
          if v["k" .. i] ~= i then
            error("member k" .. i .. " is " .. show_value(v["k" .. i]))
          end
        end
      end)
    end)

    describe("nesting", function()
      it("decodes arrays nested " .. MAX_DEPTH .. " levels deep", function()
        local v = core.decode(nested_arrays(MAX_DEPTH))
        assert.equal(MAX_DEPTH, chain_depth(v))
      end)

      it("decodes objects nested " .. MAX_DEPTH .. " levels deep", function()
        local v = core.decode(nested_objects(MAX_DEPTH))
        assert.equal(MAX_DEPTH, chain_depth(v))
      end)

      it("decodes arrays and objects alternating " .. MAX_DEPTH .. " levels deep", function()
        local v = core.decode(nested_mixed(MAX_DEPTH))
        assert.equal(MAX_DEPTH, depth_of(v))
      end)

      it("decodes a value inside " .. MAX_DEPTH .. " levels", function()
        local text = string.rep("[", MAX_DEPTH) .. '"deep"' .. string.rep("]", MAX_DEPTH)
        local v = core.decode(text)
        for _ = 1, MAX_DEPTH do v = v[1] end
        assert.equal("deep", v)
      end)

      local too_deep = {
        { "arrays nested " .. (MAX_DEPTH + 1) .. " levels", nested_arrays(MAX_DEPTH + 1) },
        { "objects nested " .. (MAX_DEPTH + 1) .. " levels", nested_objects(MAX_DEPTH + 1) },
        { "mixed nesting " .. (MAX_DEPTH + 1) .. " levels", nested_mixed(MAX_DEPTH + 1) },
        { "100000 unclosed '['", string.rep("[", 100000) },
        { "100000 unclosed '{\"a\":'", string.rep('{"a":', 100000) },
        { "100000 balanced '[' and ']'", nested_arrays(100000) },
        { "1000000 unclosed '['", string.rep("[", 1000000) },
      }
      for _, case in ipairs(too_deep) do
        it("rejects " .. case[1] .. " with a nesting error", function()
          local err = assert_rejected(case[2])
          assert(mentions_depth(err), "message does not mention depth or nesting: " .. err)
        end)
      end

      it("reports the byte of the first bracket beyond the limit", function()
        assert_rejected_at(nested_arrays(MAX_DEPTH + 1), MAX_DEPTH + 1)
      end)

      it("keeps working after a nesting error", function()
        for _ = 1, 3 do
          assert.is_false((pcall(core.decode, nested_arrays(MAX_DEPTH + 1))))
          assert.equal(MAX_DEPTH, chain_depth(core.decode(nested_arrays(MAX_DEPTH))))
        end
      end)

      it("rejects an error deep inside the limit without crashing", function()
        local text = string.rep("[", MAX_DEPTH) .. "x" .. string.rep("]", MAX_DEPTH)
        assert_rejected_at(text, MAX_DEPTH + 1)
      end)
    end)

    describe("rejects", function()
      for _, text in ipairs(REJECTED) do
        it(show(text) .. " with an error naming a byte", function()
          assert_rejected(text)
        end)
      end
    end)

    describe("error positions", function()
      for _, case in ipairs(POSITIONS) do
        it("reports byte " .. case[2] .. " for " .. show(case[1]), function()
          assert_rejected_at(case[1], case[2])
        end)
      end

      it("says what was expected", function()
        local err = assert_rejected_at('{"a":1 "b":2}', 8)
        assert(err:find("expected", 1, true), "message does not say what was expected: " .. err)
      end)

      it("says what was expected at the end of input", function()
        local err = assert_rejected_at("[1,2", 5)
        assert(err:find("expected", 1, true) or err:find("end", 1, true),
          "message does not describe the problem: " .. err)
      end)
    end)

    describe("arguments", function()
      local bad = {
        { "no argument", function() return core.decode() end },
        { "nil", function() return core.decode(nil) end },
        { "a table", function() return core.decode({}) end },
        { "a boolean", function() return core.decode(true) end },
        { "a function", function() return core.decode(print) end },
        { "core.null", function() return core.decode(core.null) end },
        { "a number", function() return core.decode(42) end },
      }
      for _, case in ipairs(bad) do
        it("raises 'bad argument #1' for " .. case[1], function()
          local ok, err = pcall(case[2])
          assert(not ok, "no error raised")
          assert(tostring(err):find("bad argument #1", 1, true), "unexpected message: " .. tostring(err))
        end)
      end

      it("takes the length of the text from Lua, not from a NUL byte", function()
        assert_rejected_at("[1]\0", 4)
        assert_rejected_at("[1,\0 2]", 4)
        assert_rejected_at('{"a":1}\0\0', 8)
      end)

      it("returns exactly one value", function()
        assert.equal(1, select("#", core.decode("1")))
        assert.equal(1, select("#", core.decode("[1,2,3]")))
        assert.equal(1, select("#", core.decode('{"a":null}')))
        assert.equal(1, select("#", core.decode("null")))
      end)
    end)

    describe("repeated use", function()
      local doc = '{"id":9007199254740993,"amount":12.5,"tags":["a",null,"\\u00e9"],'
        .. '"nested":{"ok":true,"none":null},"list":[[1],[2,[3]]]}'

      it("returns the same result across 10000 calls with roughly flat memory", function()
        local first = core.decode(doc)
        collectgarbage("collect")
        collectgarbage("collect")
        local before = collectgarbage("count")
        for _ = 1, 10000 do
          local v = core.decode(doc)
          assert(v.id == first.id and v.id == version.integer("9007199254740993") and v.tags[2] == core.null)
        end
        collectgarbage("collect")
        collectgarbage("collect")
        local after = collectgarbage("count")
        assert(after - before < 512, string.format("memory grew by %.0f KiB", after - before))
        assert.is_nil(diff(first, core.decode(doc)))
      end)

      it("keeps working across 10000 failing calls with roughly flat memory", function()
        collectgarbage("collect")
        collectgarbage("collect")
        local before = collectgarbage("count")
        local texts = { '{"a":[1,2,{"b":', '"\\ud800"', "[1,]", nested_arrays(MAX_DEPTH + 1), '"\192\128"' }
        for i = 1, 10000 do
          local ok = pcall(core.decode, texts[i % #texts + 1])
          assert(not ok)
        end
        collectgarbage("collect")
        collectgarbage("collect")
        local after = collectgarbage("count")
        assert(after - before < 512, string.format("memory grew by %.0f KiB", after - before))
        local id = version.integer("9007199254740993")
        assert.is_nil(diff({ id = id }, core.decode('{"id":9007199254740993}')))
      end)

      it("works inside coroutines", function()
        local co = coroutine.wrap(function(text)
          local v = core.decode(text)
          coroutine.yield(v)
          return core.decode(text)
        end)
        assert.equal(2, co("[1,2]")[2])
        assert.equal(2, co()[2])
      end)
    end)

    describe("fixtures", function()
      -- Compares our result with cjson's: numbers by ==, nulls in objects are
      -- absent on our side, nulls in arrays are core.null == cjson.null.
      local function agrees_with_cjson(theirs, ours, path)
        if type(theirs) ~= "table" then
          -- cjson returns floats, so an int64 beyond 2^53 compares as a float
          local same = theirs == ours
            or (math_type(ours) == "integer" and type(theirs) == "number" and theirs == ours + 0.0)
            or (type(ours) == "string" and not version.int64 and tonumber(ours) == theirs)
          if not same then
            return string.format("%s: cjson has %s, we have %s", path, show_value(theirs), show_value(ours))
          end
          return nil
        end
        if type(ours) ~= "table" then
          return string.format("%s: cjson has a table, we have %s", path, show_value(ours))
        end
        for k, v in pairs(theirs) do
          local sub = string.format("%s[%s]", path, show_value(k))
          if v == cjson.null and type(k) == "string" then
            if ours[k] ~= nil then
              return sub .. ": a null member is present as " .. show_value(ours[k])
            end
          else
            local d = agrees_with_cjson(v, ours[k], sub)
            if d then return d end
          end
        end
        for k, v in pairs(ours) do
          if theirs[k] == nil then
            return string.format("%s: unexpected key [%s] = %s", path, show_value(k), show_value(v))
          end
        end
        return nil
      end

      local function numbers_in(v, out)
        out = out or {}
        if type(v) == "number" then
          out[#out + 1] = v
        elseif type(v) == "table" then
          for _, child in pairs(v) do numbers_in(child, out) end
        end
        return out
      end

      local function example_200()
        return fixture("example-200.json")
      end

      it("decodes example-200.json like cjson does", function()
        local text = example_200()
        local d = agrees_with_cjson(cjson.decode(text), core.decode(text), "$")
        assert(d == nil, d)
      end)

      it("decodes the integers of example-200.json to Lua integers #int64", function()
        local v = core.decode(example_200())
        local offer = v.financeOffers[1]
        assert.equal("integer", math.type(offer.id))
        assert.equal("integer", math.type(offer.customer.availability))
        assert.equal("integer", math.type(offer.dealerOrder.vehicle.brand.id))
        assert.equal("integer", math.type(offer.financeOfferAttributes[1].financeOfferId))
        -- every number in the example is written without fraction or exponent
        local numbers = numbers_in(v)
        assert.is_true(#numbers > 0)
        for _, n in ipairs(numbers) do
          assert.equal("integer", math.type(n))
        end
      end)

      it("decodes a response with nulls, big ids, amounts and escapes", function()
        local text = fixture("json/finance-offers-live.json")
        local d = agrees_with_cjson(cjson.decode(text), core.decode(text), "$")
        assert(d == nil, d)
        local offer = core.decode(text).financeOffers[1]
        assert.is_nil(diff(version.integer("9007199254740993"), offer.id))
        assert.is_nil(diff(version.integer("9223372036854775807"), offer.lenderID))
        assert.is_nil(diff(version.integer("-9223372036854775808"), offer.dealerOrder.id))
        assert.is_nil(diff(1250.75, offer.foAmount))
        assert.is_nil(diff(1200, offer.loanAmount))
        assert.is_nil(diff(0.1, offer.loanFee))
        assert.is_nil(diff(1000.0, offer.dealerOrder.amount))
        assert.is_nil(diff(NEG_ZERO, offer.dealerOrder.dealer.altitude))
        assert.is_nil(offer.docSignedTS)
        assert.is_nil(offer.fundedTS)
        assert.equal("Ren\195\169e", offer.customer.firstName)
        assert.equal('"Ree" \\ /', offer.customer.nickName)
        assert.equal("Caf\195\169 Motors \240\159\154\151", offer.dealerOrder.dealer.name)
        assert.equal("Brake pads \226\128\147 front\nrotors resurfaced", offer.dealerOrder.description)
        assert.is_nil(diff({}, offer.financeEvents))
        assert.equal(3, #offer.financeOfferAttributes)
        assert.is_true(offer.financeOfferAttributes[2] == core.null)
        assert.is_nil(diff({ nested = { 1, 2.5, "three", true, false, core.null } }, offer.unlistedField))
      end)
    end)

    describe("generated documents", function()
      if not gen then
        pending("generated documents need 64-bit integers (Lua 5.3+)")
        return
      end
      local rng = gen.new_rng(0x6B7061796D656E74) -- "kpayment"
      for i = 1, 300 do
        local value, text
        if i % 10 == 0 then
          value, text = gen_value(rng, 4) -- scalars at the top level
        elseif i % 2 == 0 then
          value, text = gen_array(rng, 0)
        else
          value, text = gen_object(rng, 0)
        end
        text = ws(rng) .. text .. ws(rng)
        it(string.format("round-trips generated document #%d", i), function()
          local ok, result = pcall(core.decode, text)
          assert(ok, string.format("decoding %s failed: %s", show(text), tostring(result)))
          local d = diff(value, result)
          assert(d == nil, string.format("%s\nin document: %s", tostring(d), text))
        end)
      end
    end)
  end)

  -- The shape of a response, checked while decoding (where {} and [] still
  -- differ): records names the member that must hold an array of objects.
  it("tells an empty object from an empty array: core.empty_object, whole, in steps, with fields", function()
    assert.is_table(core.empty_object)
    local text = '{"x":{},"y":[],"financeOffers":[{"a":{},"b":[],"c":{"d":{"z":null}}},{"e":1}]}'
    local t
    for _, opts in ipairs({ {}, { records = "financeOffers" }, { records = "financeOffers", step_ms = 0 },
                            { records = "financeOffers", fields = { "a", "b", "c.d", "e" } } }) do
      t = core.decode(text, opts)
      assert.equal(core.empty_object, getmetatable(t.x))
      assert.is_nil(getmetatable(t.y))
      local r = t.financeOffers[1]
      assert.same({}, r.a)
      assert.equal(core.empty_object, getmetatable(r.a))
      assert.is_nil(getmetatable(r.b))
      assert.equal(core.empty_object, getmetatable(r.c.d))
      assert.is_nil(getmetatable(r.c))
    end
    -- a key whose later value is null leaves it out: empty too
    t = core.decode('{"a":{"k":1,"k":null},"b":{"k":null,"j":2}}')
    assert.equal(core.empty_object, getmetatable(t.a))
    assert.is_nil(getmetatable(t.b))
    -- an object none of whose members a path selects is still an object
    t = core.decode('{"financeOffers":[{"a":1,"n":{"m":2}}]}', { records = "financeOffers",
                                                                     fields = { "n.zzz" } })
    assert.equal(core.empty_object, getmetatable(t.financeOffers[1].n))
  end)

  it("never reads a key written with escapes as raw bytes of a later document", function()
    -- The decoder caches keys per state, and each object position predicts
    -- its keys from that cache by comparing raw input bytes.  A key decoded
    -- from escapes (JSON text \\\", bytes backslash and quote) must never
    -- be the entry a position predicts from: a later raw \" (one quote)
    -- would read as backslash and quote.  Which two-byte keys share its
    -- entry is the cache's business, so every alphanumeric pair is tried.
    local alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    local cases = {
      -- the escaped key (JSON text), then a probe whose raw key bytes are
      -- that key's decoded bytes, and the key the probe really has
      { [[\\\"]], [=[ [{"\"":"v"}] ]=], '"' },
      { [[a\\]], [=[ [{"a\"":"v"}] ]=], 'a"' },
    }
    for _, case in ipairs(cases) do
      for i = 1, #alnum do
        for j = 1, #alnum do
          local k = alnum:sub(i, i) .. alnum:sub(j, j)
          core.decode('[{"' .. k .. '":1},{"' .. k .. '":2,"' .. case[1] .. '":3}]')
          local ok, t = pcall(core.decode, case[2])
          assert(ok and t[1][case[3]] == "v" and next(t[1], next(t[1])) == nil,
            "after key " .. k .. ", " .. case[2] .. " gave " .. (ok and "a wrong key" or tostring(t)))
        end
      end
    end
    -- and a raw quote inside a key stays an error
    core.decode([=[ [{"gs":1},{"gs":0,"a\"":2}] ]=])
    assert.is_false(pcall(core.decode, [=[ [{"gs":1},{"gs":0,"a\"":2},{"a"":3}] ]=]))
  end)

  describe("decode() with records", function()
    local RECORDS = { records = "financeOffers" }
    local OPTIONS = {
      { "without fields", RECORDS },
      { "with fields", { records = "financeOffers", fields = { "id" } } },
      { "with the records member as a field", { records = "financeOffers", fields = { "financeOffers" } } },
      { "with a path through it", { records = "financeOffers", fields = { "financeOffers.id" } } },
    }

    local function rejects(text, opts, message)
      local ok, err = pcall(core.decode, text, opts)
      assert(not ok, "accepted " .. show(text))
      assert.equal("kpayment.decode: " .. message, err)
    end

    -- "{"financeOffers":" is 17 bytes: its value starts at byte 18.
    for _, o in ipairs(OPTIONS) do
      local opts = o[2]
      describe(o[1], function()
        it("accepts an object whose records member is an array of objects", function()
          local t = core.decode('{"meta":[1,"x"],"n":5,"financeOffers":[{"id":1},{}]}', opts)
          assert.equal(2, #t.financeOffers)
          assert.equal(1, t.financeOffers[1].id)
          assert.same({}, t.financeOffers[2])
        end)

        it("accepts an absent, null or empty records member", function()
          assert.same({}, core.decode("{}", opts))
          assert.same({}, core.decode('{"financeOffers":null}', opts))
          assert.same({ financeOffers = {} }, core.decode('{"financeOffers":[]}', opts))
        end)

        it("rejects a top-level value that is not an object", function()
          for _, text in ipairs({ "[]", '[{"id":1}]', '"x"', "5", "-1", "true", "false", "null" }) do
            rejects(text, opts, "top-level value is not an object at byte 1")
          end
          rejects(" \n [] ", opts, "top-level value is not an object at byte 4")
        end)

        it("rejects a records member that is not an array", function()
          for _, value in ipairs({ "{}", '{"id":1}', '"offers"', "0", "-2.5", "true", "false" }) do
            rejects('{"financeOffers":' .. value .. "}", opts, "'financeOffers' is not an array at byte 18")
          end
          rejects('{"financeOffers":  {"a":1}}', opts, "'financeOffers' is not an array at byte 20")
        end)

        it("rejects an element of the records array that is not an object", function()
          for _, value in ipairs({ "1", "[]", '[{"id":1}]', "null", '"x"', "true" }) do
            rejects('{"financeOffers":[{},' .. value .. "]}", opts,
              "'financeOffers' element is not an object at byte 22")
          end
          rejects('{"financeOffers":[ 7 ]}', opts, "'financeOffers' element is not an object at byte 20")
        end)

        it("checks every occurrence of a duplicated records member", function()
          rejects('{"financeOffers":[{}],"financeOffers":5}', opts,
            "'financeOffers' is not an array at byte 39")
          rejects('{"financeOffers":5,"financeOffers":[{}]}', opts,
            "'financeOffers' is not an array at byte 18")
          rejects('{"financeOffers":[{}],"financeOffers":[{},2]}', opts,
            "'financeOffers' element is not an object at byte 43")
          assert.same({}, core.decode('{"financeOffers":[{}],"financeOffers":null}', opts))
        end)

        it("reports a syntax error before the offending value", function()
          rejects('{"a":tru,"financeOffers":5}', opts, "expected a value at byte 6")
          rejects('{"a" 1,"financeOffers":5}', opts, "expected ':' at byte 6")
          rejects('{"financeOffers":[{"id":1 2},3]}', opts, "expected ',' or '}' at byte 27")
        end)

        it("takes a value's kind from its first byte", function()
          rejects('{"financeOffers":tru}', opts, "'financeOffers' is not an array at byte 18")
          rejects('{"financeOffers":01}', opts, "'financeOffers' is not an array at byte 18")
          rejects('{"financeOffers":[{},nul]}', opts, "'financeOffers' element is not an object at byte 22")
          rejects("tru", opts, "top-level value is not an object at byte 1")
          rejects("1e999", opts, "top-level value is not an object at byte 1")
          -- 'n' is null, which the records member may be
          rejects('{"financeOffers":nul}', opts, "expected a value at byte 18")
        end)

        it("leaves a byte that starts no value to the grammar", function()
          rejects('{"financeOffers":x}', opts, "expected a value at byte 18")
          rejects('{"financeOffers":[{},x]}', opts, "expected a value at byte 22")
          rejects('{"financeOffers":[{},]}', opts, "expected a value at byte 22")
          rejects("", opts, "unexpected end of input at byte 1")
          rejects('{"financeOffers":', opts, "unexpected end of input at byte 18")
        end)

        it("reports the offending value before a later syntax error", function()
          rejects('{"financeOffers":5,"a":tru}', opts, "'financeOffers' is not an array at byte 18")
          rejects('{"financeOffers":{"a":tru}}', opts, "'financeOffers' is not an array at byte 18")
          rejects('{"financeOffers":[{},"\\q"]}', opts, "'financeOffers' element is not an object at byte 22")
          rejects('{"financeOffers":[{},-x]}', opts, "'financeOffers' element is not an object at byte 22")
          rejects("[1,", opts, "top-level value is not an object at byte 1")
        end)

        it("checks only the top-level member, matched after unescaping", function()
          assert.is_table(core.decode('{"data":{"financeOffers":5}}', opts))
          assert.is_table(core.decode('{"financeOffers":[{"financeOffers":5}]}', opts))
          rejects('{"finance\\u004Fffers":5}', opts, "'financeOffers' is not an array at byte 23")
        end)
      end)
    end

    it("names the member it was given", function()
      rejects('{"items":5}', { records = "items" }, "'items' is not an array at byte 10")
      rejects('{"items":[1]}', { records = "items" }, "'items' element is not an object at byte 11")
      assert.same({ financeOffers = 5 }, core.decode('{"financeOffers":5}', { records = "items" }))
    end)

    it("keeps the projection's result", function()
      local text = '{"financeOffers":[{"id":1,"x":2},{"id":3,"y":{"z":4}}]}'
      assert.same(core.decode(text, { fields = { "id" } }),
        core.decode(text, { records = "financeOffers", fields = { "id" } }))
      assert.same(core.decode(text), core.decode(text, RECORDS))
    end)
  end)
end)
