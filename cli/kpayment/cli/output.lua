--- What `kpayment offers` writes, in each --format: the cells of an
-- offer, and a writer per format that takes each customer's result as it
-- finishes.  ndjson, csv and tsv write it at once and keep nothing; table
-- and json keep what they need and write it at the end.
-- @module kpayment.cli.output

local core = require("kpayment.core")
local offer = require("kpayment.offer")
local json = require("kpayment.json")
local term = require("kpayment.cli.term")
local cli = require("kpayment.cli")

local type, tostring, ipairs, pairs, pcall = type, tostring, ipairs, pairs, pcall
local string_format, string_gsub, string_find, string_gmatch =
  string.format, string.gsub, string.find, string.gmatch
local string_match, string_sub, string_byte, string_char, string_rep =
  string.match, string.sub, string.byte, string.char, string.rep
local table_concat, table_sort, table_remove = table.concat, table.sort, table.remove
local math_floor, math_type = math.floor, math.type
local os_date = os.date
local Offer = offer.Offer

local M = {}

--- The formats, in the order help lists them, and those that stream.
M.FORMATS = { "table", "json", "ndjson", "csv", "tsv" }
M.STREAMED = { ndjson = true, csv = true, tsv = true }

--- Integer fields of the API reference (and of its error bodies): before
-- 5.3 the decoder gives those above 2^53 as strings of their digits, which
-- are numbers in the JSON the command writes.
M.INTEGER_KEYS = {
  id = true, version = true, lenderID = true, availability = true, phoneCommunicationId = true,
  emailCommunicationId = true, signatureRequestID = true, numberOfInvoices = true, parent = true,
  financeOfferId = true, errorCode = true, warningCode = true,
}
-- records are objects, also when --fields left none of their members
local RECORDS = { [Offer] = true }
local PRETTY = { indent = "  ", integer_keys = M.INTEGER_KEYS, objects = RECORDS }
local INLINE = { integer_keys = M.INTEGER_KEYS, objects = RECORDS }

---------------------------------------------------------------------------
-- Cells

local function id_text(v)
  if type(v) == "number" then
    if math_type and math_type(v) == "integer" then return string_format("%d", v) end
    if v == math_floor(v) and v >= -2^53 and v <= 2^53 then return string_format("%.0f", v) end
    -- beyond 2^53 a float: the digits that read back the same number
    -- (tostring gives 14, another number), as the JSON formats write it
    -- but with no ".0", which only 5.3 and later would add
    if v == v and v ~= math.huge and v ~= -math.huge then return (string_gsub(json.number(v), "%.0$", "")) end
    return tostring(v)
  end
  if type(v) == "string" then return v end
  return ""
end

local function text(v)
  if type(v) == "string" then return v end
  if type(v) == "number" or type(v) == "boolean" then return tostring(v) end
  return ""
end

-- Decimal digits d plus one in the last place ("0199" -> "0200").
local function plus_one(d)
  local i = #d
  while i > 0 and string_byte(d, i) == 57 do i = i - 1 end   -- '9'
  if i == 0 then return "1" .. string_rep("0", #d) end
  return string_sub(d, 1, i - 1) .. string_char(string_byte(d, i) + 1) .. string_rep("0", #d - i)
end

-- An amount for people: two decimals, rounded half up from the digits it
-- is written with (json.number), not from its binary value, which
-- printf's %.2f rounds (19999.995 is a little under, 0.125 half-even) and
-- LuaJIT rounds otherwise: the same text under every Lua.
local function cents(v)
  if math_type and math_type(v) == "integer" then return string_format("%d.00", v) end
  local sign, int, frac = string_match(json.number(v), "^(%-?)(%d+)%.?(%d*)$")
  if not int then return string_format("%.2f", v) end   -- beyond 1e17, or below 1e-5
  frac = frac .. "000"
  local d = int .. string_sub(frac, 1, 2)
  if string_byte(frac, 3) >= 53 then d = plus_one(d) end   -- '5'
  if not string_find(d, "[1-9]") then sign = "" end
  return sign .. string_sub(d, 1, -3) .. "." .. string_sub(d, -2)
end

-- An amount as data: every digit it has, no ".0" (the same under every Lua).
local function exact_number(v)
  if type(v) ~= "number" then return text(v) end
  return (string_gsub(json.number(v), "%.0$", ""))
end

--- An expiry (epoch seconds) in local time with that moment's own UTC
-- offset, so a January and a July row of one zone with summer time each
-- show theirs: "2099-01-15 07:00 -05:00".
function M.local_time(t)
  local ok, s = pcall(os_date, "%Y-%m-%d %H:%M %z", math_floor(t))
  if not ok or type(s) ~= "string" then return "" end
  return (string_gsub(s, "([+-]%d%d)(%d%d)$", "%1:%2"))
end

--- An expiry in UTC, ISO 8601 with milliseconds: "2099-01-15T12:00:00.250Z".
-- Finer digits are cut, as local_time cuts seconds: never rounded into the
-- next minute.  (A microsecond of slack: t - secs, near 2^32, carries
-- binary error of half of one.)
function M.utc_time(t)
  local secs = math_floor(t)
  local ms = math_floor((t - secs) * 1000 + 0.001)
  if ms >= 1000 then secs, ms = secs + 1, ms - 1000 end
  local ok, s = pcall(os_date, "!%Y-%m-%dT%H:%M:%S", secs)
  if not ok or type(s) ~= "string" then return "" end
  return string_format("%s.%03dZ", s, ms)
end

-- The offer columns: table title and the cell, then the CSV name and its cell.
local function active(o, yes, no)
  return o.isActive == true and yes or o.isActive == false and no or ""
end
local function expiry(o, as)
  local t = Offer.expires_at(o)
  return t and as(t) or ""
end
local OFFER = {
  { "ID", function(o) return id_text(o.id) end, "id" },
  { "STATUS", function(o) return text(o.status) end, "status" },
  { "ACTIVE", function(o) return active(o, "yes", "no") end, "active",
    function(o) return active(o, "true", "false") end },
  { "AMOUNT", function(o) return type(o.foAmount) == "number" and cents(o.foAmount)
    or text(o.foAmount) end, "amount", function(o) return exact_number(o.foAmount) end },
  { "EXPIRES (LOCAL)", function(o) return expiry(o, M.local_time) end, "expires",
    function(o) return expiry(o, M.utc_time) end },
  { "CUSTOMER", function(o) return Offer.customer_name(o) end, "customer_name" },
  { "VEHICLE", function(o) return Offer.vehicle_label(o) end, "vehicle" },
}

-- The value at a dotted path of an offer, as text: through arrays
-- (`financeEvents.eventCode`) each element's, joined; objects as JSON.
local function path_text(v, segments, i)
  if i > #segments or type(v) ~= "table" then
    if i <= #segments then return "" end
    if type(v) == "table" then return json.encode(v, INLINE) end
    if type(v) == "number" then return id_text(v) end
    if v == core.null then return "null" end
    return text(v)
  end
  if v[1] ~= nil then
    local parts = {}
    for k = 1, #v do parts[k] = path_text(v[k], segments, i) end
    return table_concat(parts, ", ")
  end
  return path_text(v[segments[i]], segments, i + 1)
end

--- The columns of an offer: `{ title, cell(o), name, data_cell(o) }` for
-- the default ones, or one per path of `fields`.
function M.offer_columns(fields)
  if not fields then return OFFER end
  local columns = {}
  for c, f in ipairs(fields) do
    local segments = {}
    for seg in string_gmatch(f, "[^.]+") do segments[#segments + 1] = seg end
    local cell = function(o) return path_text(o, segments, 1) end
    columns[c] = { f, cell, f }
  end
  return columns
end

local function active_count(offers)
  local n = 0
  for _, o in ipairs(offers) do
    if type(o) == "table" and o.isActive == true then n = n + 1 end
  end
  return n
end

local function plural(n, word)
  return n .. " " .. word .. (n == 1 and "" or "s")
end
M.plural = plural

--- An error as JSON: kind, status, message and code, null where absent.
function M.error_object(err)
  return json.object("kind", err.kind, "status", err.status, "message", err.message, "code", err.code)
end

-- One customer as a JSON object: its input line, ids, then offers or error.
local function customer_object(item, offers, err)
  return json.object("line", item.line, "customerUUID", item.customer, "dealerUUID", item.dealer,
    offers and "financeOffers" or "error", offers or M.error_object(err))
end

---------------------------------------------------------------------------
-- Writers: w.customer(item, offers, err) for each as it finishes
-- (item = { line =, customer =, dealer = }, in input order k), then w.finish().

local function csv_field(s)
  if string_find(s, '[,"\r\n]') then return '"' .. string_gsub(s, '"', '""') .. '"' end
  return s
end
local TSV_ESCAPES = { ["\\"] = "\\\\", ["\t"] = "\\t", ["\n"] = "\\n", ["\r"] = "\\r" }
local function tsv_field(s)
  return (string_gsub(s, "[\\\t\n\r]", TSV_ESCAPES))
end

-- csv and tsv: a header, then a row per offer; a failed customer is one
-- row with its error, one without offers a row of its own columns alone.
local function rows_writer(out, ctx, sep, field, eol)
  local columns = M.offer_columns(ctx.fields)
  local names = { "line", "customer", "dealer" }
  -- a field named like one of the command's own columns gets "offer." in
  -- front, so that no two columns share a name (a CSV reader keyed by name
  -- would lose one)
  local own = { line = true, customer = true, dealer = true, error_kind = true, error_status = true,
                error_message = true }
  for _, col in ipairs(columns) do names[#names + 1] = own[col[3]] and "offer." .. col[3] or col[3] end
  names[#names + 1], names[#names + 2], names[#names + 3] = "error_kind", "error_status", "error_message"
  local width = #names
  local lines
  local function record(cells)
    for c = 1, width do cells[c] = field(cells[c] or "") end
    lines[#lines + 1] = table_concat(cells, sep, 1, width)
  end
  local w, started = {}, false
  function w.customer(item, offers, err)
    lines = {}
    -- the header with the first customer: a usage error found at the first
    -- request leaves stdout empty
    if not started then
      started = true
      record(names)
    end
    local head = { tostring(item.line), item.customer, item.dealer }
    if not offers or #offers == 0 then
      local cells = { head[1], head[2], head[3] }
      if err then
        cells[width - 2], cells[width - 1], cells[width] =
          text(err.kind), err.status and tostring(err.status) or "", text(err.message)
      end
      record(cells)
    end
    for _, o in ipairs(offers or {}) do
      local cells = { head[1], head[2], head[3] }
      for c, col in ipairs(columns) do
        cells[3 + c] = type(o) == "table" and (col[4] or col[2])(o) or ""
      end
      record(cells)
    end
    -- one write a customer: Ctrl-C lands before or after it, not inside
    lines[#lines + 1] = ""
    cli.write(out, table_concat(lines, eol))
    cli.flush(out)
  end
  function w.finish() end
  return w
end

local WRITERS = {}

function WRITERS.csv(out, ctx) return rows_writer(out, ctx, ",", csv_field, "\r\n") end
function WRITERS.tsv(out, ctx) return rows_writer(out, ctx, "\t", tsv_field, "\n") end

function WRITERS.ndjson(out)
  local w = {}
  function w.customer(item, offers, err)
    cli.write(out, json.encode(customer_object(item, offers, err), INLINE), "\n")
    cli.flush(out)
  end
  function w.finish() end
  return w
end

-- json: one customer's response as it came ({"financeOffers": […]}) or its
-- error; with --batch an array in input order, each element encoded as it
-- finishes (text keeps much less than the decoded offers).
function WRITERS.json(out, ctx)
  local w, kept = {}, {}
  function w.customer(item, offers, err)
    if ctx.batch then
      kept[item.k] = string_gsub(json.encode(customer_object(item, offers, err), PRETTY), "\n", "\n  ")
    elseif offers then
      local meta = offers:meta() or {}
      local doc = { financeOffers = offers }
      if type(meta.warnings) == "table" and #meta.warnings > 0 then doc.warnings = meta.warnings end
      kept[1] = json.encode(doc, PRETTY)
    else
      kept[1] = json.encode(json.object("error", M.error_object(err)), PRETTY)
    end
  end
  function w.finish()
    if ctx.batch then
      cli.write(out, "[\n  ", table_concat(kept, ",\n  "), "\n]\n")
    elseif kept[1] then
      cli.write(out, kept[1], "\n")
    end
  end
  return w
end

-- "http 500: Internal server error" for a batch row.
local function short_error(err)
  local s = tostring(err.kind) .. (err.status and (" " .. tostring(err.status)) or "")
  if err.message then s = s .. ": " .. tostring(err.message) end
  return s
end

-- table: one customer's offers, a row each (the footer on stderr); with
-- --batch a row per customer, in input order.
function WRITERS.table(out, ctx)
  local w, rows, single = {}, {}, nil
  local dealers, many_dealers = nil, false
  -- with --fields, offers say whether they are active only if asked
  local active_known = ctx.fields == nil
  for _, f in ipairs(ctx.fields or {}) do active_known = active_known or f == "isActive" end
  function w.customer(item, offers, err)
    if not ctx.batch then
      single = offers
      return
    end
    if dealers and dealers ~= item.dealer then many_dealers = true end
    dealers = item.dealer
    rows[item.k] = { item.customer, item.dealer, offers and tostring(#offers) or "",
                     offers and active_known and tostring(active_count(offers)) or "",
                     offers and "ok" or short_error(err) }
  end
  function w.finish()
    local columns, lines
    if ctx.batch then
      columns = { { title = "CUSTOMER" }, { title = "DEALER" }, { title = "OFFERS", right = true },
                  { title = "ACTIVE", right = true }, { title = "RESULT", flex = true, min = 12 } }
      if not many_dealers then
        table_remove(columns, 2)
        for _, row in pairs(rows) do table_remove(row, 2) end
      end
      lines = term.table(columns, rows, ctx.width)
    elseif single and #single > 0 then
      columns, rows = {}, {}
      local cols = M.offer_columns(ctx.fields)
      for c, col in ipairs(cols) do
        columns[c] = { title = col[1], right = col[1] == "AMOUNT",
                       flex = col[1] == "CUSTOMER" or col[1] == "VEHICLE", min = 6 }
      end
      for i, o in ipairs(single) do
        local row = {}
        for c, col in ipairs(cols) do row[c] = type(o) == "table" and col[2](o) or "" end
        rows[i] = row
      end
      if ctx.fields then
        -- numbers are never cut
        for c = 1, #columns do
          local numeric = true
          for i = 1, #rows do numeric = numeric and string_find(rows[i][c], "^%-?[%d.]*$") ~= nil end
          columns[c].flex = not numeric
        end
      end
      lines = term.table(columns, rows, ctx.width)
    end
    if lines then cli.write(out, table_concat(lines, "\n"), "\n") end
    cli.flush(out)
    if single then
      local meta = single:meta() or {}
      local notes = { "HTTP " .. tostring(meta.status) }
      if meta.request_id then notes[#notes + 1] = "request " .. meta.request_id end
      if meta.total_time then notes[#notes + 1] = string_format("%.0f ms", meta.total_time * 1000) end
      if meta.attempts and meta.attempts > 1 then notes[#notes + 1] = meta.attempts .. " attempts" end
      local count = plural(#single, "offer")
      if not ctx.fields then count = count .. ", " .. active_count(single) .. " active" end
      -- the request id is the server's text: shown cleaned, as every such text
      io.stderr:write(term.clean(string_format("%s (%s)", count, table_concat(notes, ", "))), "\n")
    end
  end
  return w
end

--- A writer of `format` on `out`.  ctx: `batch` (many customers),
-- `fields` (the paths decoded), `width` (the table's, or nil: no limit).
function M.writer(format, out, ctx)
  return WRITERS[format](out, ctx)
end

--- "4 customers: 3 ok, 1 failed (http 1) in 0.12 s"
function M.summary(total, failed, kinds, seconds)
  local s = string_format("%s: %d ok, %d failed", plural(total, "customer"), total - failed, failed)
  if failed > 0 then
    local parts = {}
    for kind, count in pairs(kinds) do parts[#parts + 1] = kind .. " " .. count end
    table_sort(parts)
    s = s .. " (" .. table_concat(parts, ", ") .. ")"
  end
  return s .. string_format(" in %.2f s", seconds)
end

return M
