-- checker.lua -- the Lua half of the fuzz target's oracle (fuzz_decode.c).
--
-- Compiled into the fuzzer (fuzz.mk turns it into a C string) and run once
-- with (core, cjson); returns check, FIELDS, has_projection and has_records
-- (the last two only tell the log which core.decode options are checked).
-- C calls
--   check(text, ok, value, pok, pvalue, rok, rvalue, rpok, rpvalue,
--         sok, svalue, spok, spvalue)
-- for every input, where ok/value come from core.decode(text) (value is the
-- error message when ok is false), pok/pvalue from kp_json_decode_opts with the
-- projection trie built from FIELDS (pvalue is the bare message on failure),
-- rok/rvalue and rpok/rpvalue from kp_json_decode_opts with records =
-- RECORDS, without and with the trie, and sok/svalue, spok/spvalue the same
-- two decoded in steps of one record (kp_json_decode_step).
-- check returns nil when all is well, else a description of the problem; C
-- prints it and aborts.  Anything raised in here is a finding too.

local core, cjson = ...
local type, pairs, ipairs, rawget, tostring, tonumber =
  type, pairs, ipairs, rawget, tostring, tonumber
local fmt, abs, max, mtype = string.format, math.abs, math.max, math.type
local find = string.find

-- cjson 2.1.0 prints numbers with %.14g, so a round trip may move a number
-- by up to ~5e-14 relatively; 1e-12 leaves a margin without hiding real
-- misparses (a dropped digit, a wrong exponent, a wrong sign).
local function close_enough(a, b)
  if a == b then return true end
  local x, y = a + 0.0, b + 0.0
  return abs(x - y) <= 1e-12 * max(abs(x), abs(y))
end

-- nil when a and b are the same JSON value, else where they differ.
local function same(a, b, path)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return fmt("%s: %s became %s", path, ta, tb) end
  if ta == "number" then
    if not close_enough(a, b) then
      return fmt("%s: %.17g became %.17g", path, a, b)
    end
  elseif ta == "table" then
    for k, v in pairs(a) do
      local w = rawget(b, k)
      if w == nil then return path .. "." .. tostring(k) .. ": lost" end
      local e = same(v, w, path .. "." .. tostring(k))
      if e then return e end
    end
    for k in pairs(b) do
      if rawget(a, k) == nil then
        return path .. "." .. tostring(k) .. ": appeared"
      end
    end
  elseif a ~= b then
    return fmt("%s: %q became %q", path, tostring(a), tostring(b))
  end
end

-- nil when every value in p is also in f at the same place, exactly (the
-- same decoder read the same bytes).  A projection keeps every element of
-- an array at its place (those no path can select from as they are), so
-- arrays have the same length.
local function subset(p, f, path)
  if type(p) ~= "table" then
    if type(p) ~= type(f) or p ~= f or mtype(p) ~= mtype(f) then
      return fmt("%s: projected %q, full %q", path, tostring(p), tostring(f))
    end
    return nil
  end
  if type(f) ~= "table" then
    return path .. ": projected a table where the full value is " .. type(f)
  end
  if rawget(f, 1) ~= nil then           -- an array (objects have string keys)
    local n = #f
    for k in pairs(p) do
      if mtype(k) ~= "integer" or k < 1 or k > n then
        return path .. ": projected array has key " .. tostring(k)
      end
    end
    for i = 1, n do
      if rawget(p, i) == nil then return fmt("%s[%d]: left out of the projected array", path, i) end
      local e = subset(p[i], f[i], fmt("%s[%d]", path, i))
      if e then return e end
    end
    return nil
  end
  for k, v in pairs(p) do
    local w = rawget(f, k)
    if w == nil then return path .. "." .. tostring(k) .. ": not in full result" end
    local e = subset(v, w, path .. "." .. tostring(k))
    if e then return e end
  end
end

-- Numbers against Lua's own reader (strtod, correctly rounded like the
-- decoder's fast path): same value and same subtype, bit for bit.  Only
-- where the text's tokens map to values in order: a lone number, or an
-- array of numbers.  JSON -0 is the float -0.0 by design, where Lua reads
-- the integer 0.  tonumber gives nil for a long number under a locale whose
-- decimal point is not '.' (Lua gives up above 200 bytes): no reference then.
local function same_number(token, v)
  local want = tonumber(token)
  if want == nil then return nil end
  if want == 0 and v == 0 and mtype(want) == "integer" and 1 / v < 0 then
    return nil
  end
  if mtype(v) ~= mtype(want) or v ~= want then
    return fmt("number %s decoded as %s %.17g, Lua reads %s %.17g",
               token, mtype(v), v, mtype(want), want)
  end
end

local function check_numbers(text, value)
  if type(value) == "number" then
    return same_number(text:match("^%s*(.-)%s*$"), value)
  end
  if type(value) ~= "table" or value[1] == nil then return nil end
  for _, v in ipairs(value) do
    if type(v) ~= "number" then return nil end
  end
  local i = 0
  for token in text:gmatch("[^%s,%[%]]+") do
    i = i + 1
    local e = same_number(token, value[i])
    if e then return e end
  end
  if i ~= #value then return fmt("%d number tokens, %d values", i, #value) end
end

local function round_trip(value)
  -- cjson refuses some values (nesting past its depth limit, tables it
  -- takes for sparse arrays): nothing to compare then.
  local ok, again = pcall(cjson.encode, value)
  if not ok then return nil end
  local ok2, back = pcall(core.decode, again)
  if not ok2 then
    return "cjson output rejected: " .. tostring(back) .. "\n  cjson: " .. again:sub(1, 200)
  end
  local e = same(value, back, "$")
  if e then return "round trip through cjson changed " .. e end
end

-- Projection is probed, not assumed: a decode that ignored its second
-- argument would pass a probe whose full result holds only "a", so the probe
-- document also has a member the projection must drop.
local FIELDS = { "id", "status", "customer.lastName", "a", "a.b" }
local PROJECTION = { fields = FIELDS }
local has_projection
do
  local ok, v = pcall(core.decode, '{"a":1,"b":2}', { fields = { "a" } })
  has_projection = ok and type(v) == "table" and v.a == 1 and v.b == nil
end

-- Skipped parts are checked as strictly as built ones, so projecting must
-- not change whether, or where, a text is rejected.
local function projection(text, ok, value, pok, pvalue)
  if pok ~= ok then
    return fmt("full decode %s, projected %s", ok and "succeeded" or value,
               pok and "succeeded" or pvalue)
  end
  local aok, av = pcall(core.decode, text, PROJECTION)
  if aok ~= pok then
    return "core.decode with fields and kp_json_decode_opts with the trie disagree: "
      .. tostring(av)
  end
  if not ok then
    if av ~= "kpayment.decode: " .. pvalue then
      return "projected errors differ: " .. tostring(av) .. " / " .. pvalue
    end
    if av ~= value then
      return "projection moved the error: " .. value .. " became " .. av
    end
    return nil
  end
  local e = same(av, pvalue, "$")
  if e then return "core.decode with fields differs from the trie: " .. e end
  e = subset(pvalue, value, "$")
  if e then return "projection is not a subset: " .. e end
end

-- Records: the top level must be an object, its member RECORDS an array
-- (or null, or absent), that array's elements objects.  A value's first byte
-- gives its kind, and the first error in text order wins: a shape error is
-- reported at the first byte of the offending value, so against the plain
-- decode it may only come first (at one byte, the kind goes first); a syntax
-- error must be the plain decode's own.
local RECORDS = "financeOffers"
local R_OPTIONS = { records = RECORDS }
local RP_OPTIONS = { records = RECORDS, fields = FIELDS }
local TOP = "top-level value is not an object"
local NOT_ARRAY = "'" .. RECORDS .. "' is not an array"
local NOT_OBJECT = "'" .. RECORDS .. "' element is not an object"
local has_records
do
  local ok, err = pcall(core.decode, "[]", R_OPTIONS)
  has_records = not ok and find(tostring(err), TOP, 1, true) ~= nil
end

local function where(msg)
  local what, pos = msg:match("^(.-) at byte (%d+)$")
  return what, tonumber(pos)
end

-- Whether the text agrees with a shape error: the byte at pos starts the
-- wrong kind of value, at the right place (after the leading whitespace,
-- after a ':' or after '[' or ',').
local function shape_fits(text, what, pos)
  local c = text:sub(pos, pos)
  local before = text:sub(1, pos - 1):match("([^ \t\r\n]?)[ \t\r\n]*$")
  if what == TOP then
    return before == "" and c ~= "{"
  elseif what == NOT_ARRAY then
    return before == ":" and c ~= "[" and c ~= "n"
  elseif what == NOT_OBJECT then
    return (before == "[" or before == ",") and c ~= "{"
  end
  return false
end

-- A second opinion on valid JSON, from the text itself (Lua cannot tell {}
-- from [] in the decoded value): the shape error records must report, as
-- what and byte, or nil.  Only for texts the plain decode accepts, so the
-- scanning below needs no error handling.
local WS = "[^ \t\r\n]"

local function string_end(text, p)      -- p on the opening quote
  local i = p + 1
  while true do
    local q = text:find('["\\]', i)
    if text:sub(q, q) == '"' then return q end
    i = q + 2
  end
end

local function value_end(text, p)       -- p on the value's first byte
  local c = text:sub(p, p)
  if c == '"' then return string_end(text, p) end
  if c ~= "{" and c ~= "[" then
    return (text:find("[,%]} \t\r\n]", p) or #text + 1) - 1
  end
  local depth, i = 0, p
  while true do
    i = text:find('[%[%]{}"]', i)
    c = text:sub(i, i)
    if c == '"' then
      i = string_end(text, i)
    elseif c == "{" or c == "[" then
      depth = depth + 1
    else
      depth = depth - 1
      if depth == 0 then return i end
    end
    i = i + 1
  end
end

local function expected_shape(text)
  local p = text:find(WS)
  if text:sub(p, p) ~= "{" then return TOP, p end
  p = text:find(WS, p + 1)
  while text:sub(p, p) ~= "}" do
    local kend = string_end(text, p)
    local key = core.decode(text:sub(p, kend))
    p = text:find(WS, text:find(":", kend + 1, true) + 1)
    local c = text:sub(p, p)
    if key == RECORDS and c ~= "n" then
      if c ~= "[" then return NOT_ARRAY, p end
      local q = text:find(WS, p + 1)
      while text:sub(q, q) ~= "]" do
        if text:sub(q, q) ~= "{" then return NOT_OBJECT, q end
        q = text:find(WS, value_end(text, q) + 1)
        if text:sub(q, q) == "," then q = text:find(WS, q + 1) end
      end
    end
    p = text:find(WS, value_end(text, p) + 1)
    if text:sub(p, p) == "," then p = text:find(WS, p + 1) end
  end
end

-- nil when value is a list of tables (what records lets through).
local function list_of_tables(list)
  local n = #list
  for k, v in pairs(list) do
    if mtype(k) ~= "integer" or k < 1 or k > n then
      return "financeOffers has key " .. tostring(k)
    end
    if type(v) ~= "table" then return fmt("financeOffers[%d] is a %s", k, type(v)) end
  end
end

local function records(text, ok, value, pok, pvalue, rok, rvalue, rpok, rpvalue)
  if ok then
    local what, pos = expected_shape(text)
    local want = what and fmt("%s at byte %d", what, pos)
    if rok and want then
      return "records accepted what breaks the shape: " .. want
    elseif not rok and rvalue ~= want then
      return fmt("records: %s, expected %s", rvalue, want or "success")
    end
  end
  if rok then
    if not ok then return "records accepted what the plain decode rejects: " .. value end
    if type(value) ~= "table" or not text:match("^[ \t\r\n]*{") then
      return "records accepted a top-level value that is not an object"
    end
    local e = same(value, rvalue, "$")
    if e then return "records changed the value: " .. e end
    local list = rawget(value, RECORDS)
    if list ~= nil then
      if type(list) ~= "table" then return "records accepted financeOffers, a " .. type(list) end
      e = list_of_tables(list)
      if e then return "records accepted " .. e end
    end
  else
    local what, pos = where(rvalue)
    if not what then return "records: unexpected error " .. tostring(rvalue) end
    if what == TOP or what == NOT_ARRAY or what == NOT_OBJECT then
      if not shape_fits(text, what, pos) then
        return fmt("records: %q at byte %d does not fit the text", what, pos)
      end
      if not ok then
        local _, ppos = where(value)
        if pos > ppos then
          return fmt("records: %s at byte %d, but the text is malformed at byte %d (%s)",
                     what, pos, ppos, value)
        end
      end
    elseif ok or value ~= "kpayment.decode: " .. rvalue then
      return "records changed the syntax error: " .. rvalue .. " / " .. tostring(ok and "(success)" or value)
    end
  end
  -- A projection changes neither whether nor where records rejects a text,
  -- and records does not change what a projection keeps.
  if rpok ~= rok or (not rok and rpvalue ~= rvalue) then
    return "records with and without the trie disagree: " .. tostring(rok and "(success)" or rvalue)
      .. " / " .. tostring(rpok and "(success)" or rpvalue)
  end
  if rpok then
    if not pok then return "records with the trie accepted what the trie rejects" end
    local e = same(pvalue, rpvalue, "$")
    if e then return "records changed the projection: " .. e end
  end
  if has_records then
    local aok, av = pcall(core.decode, text, R_OPTIONS)
    if aok ~= rok or (not aok and av ~= "kpayment.decode: " .. rvalue) then
      return "core.decode with records and kp_json_decode_opts disagree: " .. tostring(av)
    end
    if aok then
      local e = same(rvalue, av, "$")
      if e then return "core.decode with records differs: " .. e end
    end
    aok, av = pcall(core.decode, text, RP_OPTIONS)
    if aok ~= rpok or (not aok and av ~= "kpayment.decode: " .. rpvalue) then
      return "core.decode with records and fields and kp_json_decode_opts disagree: " .. tostring(av)
    end
  end
end

-- nil when a and b are identical, down to integer and float subtypes:
-- the same decoder read the same bytes, in one step or in several.
local function identical(a, b, path)
  if type(a) ~= "table" or type(b) ~= "table" then
    if type(a) ~= type(b) or (a ~= b and a == a) or mtype(a) ~= mtype(b) then
      return fmt("%s: %q in one step, %q in steps", path, tostring(a),
        tostring(b))
    end
    return nil
  end
  for k, v in pairs(a) do
    local e = identical(v, rawget(b, k), path .. "." .. tostring(k))
    if e then return e end
  end
  for k in pairs(b) do
    if rawget(a, k) == nil then return path .. "." .. tostring(k) .. ": appeared in steps" end
  end
end

-- A decode in steps gives what the one-step decode gives, errors included.
local function steps(what, ok, value, sok, svalue)
  if ok ~= sok then
    return what .. " in steps and in one step disagree: " .. tostring(ok and "(success)" or value)
      .. " / " .. tostring(sok and "(success)" or svalue)
  end
  if not ok then
    if value ~= svalue then
      return what .. " in steps: " .. tostring(svalue) .. ", not " .. tostring(value)
    end
    return nil
  end
  return identical(value, svalue, what)
end

local function check(text, ok, value, pok, pvalue, rok, rvalue, rpok, rpvalue,
                     sok, svalue, spok, spvalue)
  local wrong = steps("records", rok, rvalue, sok, svalue)
    or steps("records with fields", rpok, rpvalue, spok, spvalue)
  if wrong then return wrong end
  if not ok then
    -- The only acceptable failure: a decode error with a position inside
    -- the input or just past its end.
    local pos = type(value) == "string"
      and value:match("^kpayment%.decode: .+ at byte (%d+)$")
    if not pos then return "unexpected error: " .. tostring(value) end
    pos = tonumber(pos)
    if pos < 1 or pos > #text + 1 then
      return fmt("error position %d outside 1..%d", pos, #text + 1)
    end
  else
    local e = check_numbers(text, value) or round_trip(value)
    if e then return e end
  end
  if has_projection then
    local e = projection(text, ok, value, pok, pvalue)
    if e then return e end
  end
  return records(text, ok, value, pok, pvalue, rok, rvalue, rpok, rpvalue)
end

return check, FIELDS, has_projection, has_records
