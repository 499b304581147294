--- The customers of `kpayment offers --batch FILE`: CSV as RFC 4180 writes
-- it, one customer,dealer record per line.
--
-- A UTF-8 BOM at the start is dropped; lines end with LF or CRLF; blank
-- lines and lines starting with `#` are skipped, and so is a first record
-- `customer,dealer` (any case; `customerUUID,dealerUUID` too).  A field may
-- be quoted (`"c4,q"`, `"c5""x"`); spaces around a field are dropped.  A
-- quoted field may not run past its line: ids hold no line breaks.  A line
-- with the customer alone, or an empty dealer field (`c1,`), takes
-- --dealer; an empty customer is an error.  Anything else, invalid UTF-8,
-- and a value kpayment would refuse as a parameter are usage errors naming
-- the line, found before any request is sent.
-- @module kpayment.cli.input

local json = require("kpayment.json")
local request = require("kpayment.request")

local ipairs, tostring = ipairs, tostring
local string_find, string_sub, string_gsub, string_lower, string_format, string_byte, string_gmatch =
  string.find, string.sub, string.gsub, string.lower, string.format, string.byte, string.gmatch
local table_concat = table.concat

local M = {}

local HEADER = { customer = true, customeruuid = true }
local HEADER_DEALER = { dealer = true, dealeruuid = true }
-- what a field is called in messages, for each parameter
local FIELD = { customer_uuid = "customer", dealer_uuid = "dealer" }

local function trim(s)
  return (string_gsub(s, "^[ \t]*(.-)[ \t]*$", "%1"))
end

-- The fields of one line, or nil and why.
local function fields_of(line)
  local fields, i, n = {}, 1, #line
  while true do
    local _, after = string_find(line, "^[ \t]*", i)
    i = after + 1
    if string_byte(line, i) == 34 then   -- a quoted field: "" is a quote
      local parts, j = {}, i + 1
      while true do
        local q = string_find(line, '"', j, true)
        if not q then return nil, "a quoted field runs past its line" end
        parts[#parts + 1] = string_sub(line, j, q - 1)
        if string_byte(line, q + 1) ~= 34 then
          i = q + 1
          break
        end
        parts[#parts + 1] = '"'
        j = q + 2
      end
      fields[#fields + 1] = table_concat(parts)
      _, after = string_find(line, "^[ \t]*", i)
      i = after + 1
      if i <= n and string_byte(line, i) ~= 44 then return nil, "text after the closing quote" end
    else
      local comma = string_find(line, ",", i, true) or n + 1
      local field = trim(string_sub(line, i, comma - 1))
      if string_find(field, '"', 1, true) then return nil, "a quote inside an unquoted field" end
      fields[#fields + 1] = field
      i = comma
    end
    if i > n then return fields end
    i = i + 1   -- past the comma
  end
end

--- The customers of batch text `text` (named `name` in messages): a table
-- { customers = {…}, dealers = {…}, lines = {…} } in input order.
-- `fail(message)` raises the usage error.
function M.parse(text, name, dealer, fail)
  if string_sub(text, 1, 3) == "\239\187\191" then text = string_sub(text, 4) end
  local list = { customers = {}, dealers = {}, lines = {} }
  local n, first = 0, true
  local function bad(fmt, ...)
    fail(string_format("%s:%d: " .. fmt, name, n, ...))
  end
  for line in string_gmatch(text .. "\n", "([^\n]*)\n") do
    n = n + 1
    line = string_gsub(line, "\r$", "")
    if not string_find(line, "^[ \t]*$") and not string_find(line, "^[ \t]*#") then
      local fields, why = fields_of(line)
      if not fields then bad("%s", why) end
      local header = first and HEADER[string_lower(fields[1])]
        and (fields[2] == nil or HEADER_DEALER[string_lower(fields[2])]) and #fields <= 2
      first = false
      if not header then
        if #fields > 2 then bad("expected customer,dealer (%d fields)", #fields) end
        -- an empty dealer field ("c1,", as spreadsheets export) is no dealer
        local own = fields[2] ~= "" and fields[2] or nil
        local values = { customer_uuid = fields[1], dealer_uuid = own or dealer }
        if fields[1] == "" then bad("expected customer,dealer (no customer)") end
        if values.dealer_uuid == nil or values.dealer_uuid == "" then
          bad("expected customer,dealer (no dealer, and no --dealer)")
        end
        for _, key in ipairs({ "customer_uuid", "dealer_uuid" }) do
          local v = values[key]
          if json.valid_utf8(v) ~= v then bad("invalid UTF-8 in the %s", FIELD[key]) end
          -- what kpayment would raise for it, found before anything is sent
          local ok, msg = request.check_value(key, v)
          if not ok then bad("%s", (string_gsub(msg, "parameter '([%w_]+)'", FIELD))) end
        end
        local k = #list.customers + 1
        list.customers[k], list.dealers[k], list.lines[k] = values.customer_uuid, values.dealer_uuid, n
      end
    end
  end
  if #list.customers == 0 then fail(name .. ": no customer,dealer lines") end
  return list
end

--- The customers of the file at `path` ("-": standard input).
function M.read(path, dealer, fail)
  local f, why
  if path == "-" then
    f = io.stdin
  else
    f, why = io.open(path, "rb")
    if not f then fail("cannot read --batch file: " .. tostring(why)) end
  end
  local name = path == "-" and "standard input" or path
  -- nil is a read error (a directory, a closed descriptor), not an empty file
  local text, err = f:read("*a")
  if f ~= io.stdin then f:close() end
  if text == nil then fail("cannot read --batch file " .. name .. ": " .. tostring(err)) end
  return M.parse(text, name, dealer, fail)
end

return M
