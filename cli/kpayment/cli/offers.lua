--- `kpayment offers`: one customer's offers as a table or JSON, or many
-- customers' (`--batch`) through `client:get_offers_many`.
-- @module kpayment.cli.offers

local kpayment = require("kpayment")
local core = require("kpayment.core")
local offer = require("kpayment.offer")
local term = require("kpayment.cli.term")
local json = require("kpayment.json")

local type, tostring, ipairs, pairs, pcall = type, tostring, ipairs, pairs, pcall
local string_format, string_gsub, string_match, string_find =
  string.format, string.gsub, string.match, string.find
local table_concat = table.concat
local math_floor, math_type = math.floor, math.type
local os_date, io_open, io_popen = os.date, io.open, io.popen
local Offer = offer.Offer

local M = {}

--- Integer fields of the API reference (and of its error bodies): before
-- 5.3 the decoder gives those above 2^53 as strings of their digits, which
-- are numbers in the JSON the command writes.
M.INTEGER_KEYS = {
  id = true, version = true, lenderID = true, availability = true, phoneCommunicationId = true,
  emailCommunicationId = true, signatureRequestID = true, numberOfInvoices = true, parent = true,
  financeOfferId = true, errorCode = true, warningCode = true,
}
local JSON_OPTS = { indent = "  ", integer_keys = M.INTEGER_KEYS }
local INLINE_OPTS = { integer_keys = M.INTEGER_KEYS }

local USAGE = [[
Usage: kpayment offers --customer UUID --dealer UUID [options]
       kpayment offers --batch FILE [--concurrency N] [options]

Prints a customer's finance offers as a table sized to the terminal (id,
status, active, amount, expiry in local time, customer, vehicle), or with
--json the response as JSON whose integers are exact (ids above 2^53 too).

Options:
  --customer UUID    the customer (customerUUID)
  --dealer UUID      the dealer (dealerUUID); with --batch, for lines without one
  --skin S           the skin (default: KPAYMENT_SKIN)
  --locale L         the locale (default: KPAYMENT_LOCALE, else en-US)
  --fields A,B.C     decode only these dotted paths inside each offer
  --json             print JSON instead of a table
  --base-url URL     the API (default: KPAYMENT_BASE_URL, else https://api.mykaarma.com)
  --user NAME        Basic authentication as NAME; the password comes from
                     KPAYMENT_PASSWORD, or is asked for on the terminal
  --ca-file FILE     CA certificates to verify the server with (default: libcurl's)
  --timeout S        seconds a call may take, retries included (default 30)
  --retries N        retries of a failure worth retrying (default 2)
  --batch FILE       customer,dealer on each line ('-': standard input);
                     prints one row per customer, then a summary line
  --concurrency N    requests in flight with --batch (default 8)
  --help             show this help

Without --user, credentials come from KPAYMENT_USERNAME and KPAYMENT_PASSWORD,
or KPAYMENT_BEARER_TOKEN; a password is never an option.  With --batch and
standard error on a terminal, a progress line is drawn there.

Exit status: 0 success, 1 API or HTTP error, 2 usage error, 3 network,
timeout or TLS error.  With --batch: 3 if any customer got no answer,
else 1 if any failed.
]]

local SPEC = {
  customer = "string", dealer = "string", skin = "string", locale = "string", fields = "string",
  json = "flag", ["base-url"] = "string", user = "string", ["ca-file"] = "string", timeout = "number",
  retries = "integer", batch = "string", concurrency = "integer", help = "flag",
}

local env, shell_quote = term.env, term.shell_quote

-- Asks for the password on the terminal with echo off; the shell restores
-- echo however it ends.  The password comes back through a pipe, never
-- on a command line.
local PROMPT = [[
exec 3<>/dev/tty || exit 1
trap 'stty echo <&3' EXIT
trap 'exit 130' HUP INT TERM
printf 'Password for %s: ' "$1" >&3
stty -echo <&3 || exit 1
IFS= read -r p <&3 || exit 1
printf '\n' >&3
printf '%s' "$p"
]]

--- The password for `--user`: KPAYMENT_PASSWORD, or asked for.
function M.password(cli, user)
  local from_env = env("KPAYMENT_PASSWORD")
  if from_env then return from_env end
  local tty = io_open("/dev/tty", "r")
  if not tty then
    cli.usage("offers", "--user needs a password: set KPAYMENT_PASSWORD (no terminal to ask on)")
  end
  tty:close()
  local p = io_popen("sh -c " .. shell_quote(PROMPT) .. " kpayment " .. shell_quote(user), "r")
  local password = p and p:read("*a")
  if p then p:close() end
  if not password or password == "" then cli.usage("offers", "no password given for --user") end
  return password
end

--- The options of kpayment.new for a command's options (shared with doctor).
function M.client_options(cli, command, opts)
  local o = {
    base_url = opts.base_url, skin = opts.skin, locale = opts.locale,
    timeout = opts.timeout, retries = opts.retries, ca_file = opts.ca_file,
  }
  if opts.user then
    o.username = opts.user
    o.password = M.password(cli, opts.user)
  end
  if opts.retries and opts.retries > 100 then
    cli.usage(command, "option --retries needs a number from 0 to 100")
  end
  return o
end

-- Options of kpayment.new as the command's options are called.
local OPTION_NAMES = { base_url = "--base-url", skin = "--skin", locale = "--locale",
                       timeout = "--timeout", retries = "--retries", username = "--user",
                       ca_file = "--ca-file" }

-- kpayment.new's complaints about credentials, as they come to the command.
local CREDENTIALS = {
  ["kpayment: username and password go together"] =
    "KPAYMENT_USERNAME and KPAYMENT_PASSWORD go together (set both, or use --user)",
  ["kpayment: give either username/password or bearer_token, not both"] =
    "set KPAYMENT_USERNAME and KPAYMENT_PASSWORD, or KPAYMENT_BEARER_TOKEN, not both",
}

--- A client for `o`, or a usage error naming what kpayment refused.
function M.client(cli, command, o)
  local ok, client = pcall(kpayment.new, o)
  if not ok then
    local why = cli.message(client)
    why = CREDENTIALS[why] or string_gsub(why, "option '([%w_]+)'", function(name)
      return OPTION_NAMES[name] and ("option " .. OPTION_NAMES[name]) or nil
    end)
    cli.usage(command, why)
  end
  return client
end

---------------------------------------------------------------------------
-- Table cells

local function id_text(v)
  if type(v) == "number" then
    if math_type and math_type(v) == "integer" then return string_format("%d", v) end
    if v == math_floor(v) and v >= -2^53 and v <= 2^53 then return string_format("%.0f", v) end
    return tostring(v)
  end
  if type(v) == "string" then return v end
  return ""
end

local function amount_text(v)
  if type(v) == "number" then return string_format("%.2f", v) end
  if type(v) == "string" then return v end
  return ""
end

local function text(v)
  if type(v) == "string" then return (string_gsub(v, "%c", " ")) end
  if type(v) == "number" or type(v) == "boolean" then return tostring(v) end
  return ""
end

local function expiry_text(o)
  local t = Offer.expires_at(o)
  if not t then return "" end
  local ok, s = pcall(os_date, "%Y-%m-%d %H:%M", math_floor(t))
  return ok and s or ""
end

local function offer_row(o)
  if type(o) ~= "table" then return { "", "", "", "", "", "", "" } end
  local active = o.isActive == true and "yes" or o.isActive == false and "no" or ""
  return { id_text(o.id), text(o.status), active, amount_text(o.foAmount), expiry_text(o),
           text(Offer.customer_name(o)), text(Offer.vehicle_label(o)) }
end

local function offer_columns()
  local zone = os_date("%Z")
  return {
    { title = "ID" }, { title = "STATUS" }, { title = "ACTIVE" }, { title = "AMOUNT", right = true },
    { title = zone and zone ~= "" and ("EXPIRES (" .. zone .. ")") or "EXPIRES" },
    { title = "CUSTOMER", flex = true, min = 6 }, { title = "VEHICLE", flex = true, min = 6 },
  }
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

-- "http 500: Internal server error" for a batch row.
local function short_error(err)
  local s = tostring(err.kind) .. (err.status and (" " .. tostring(err.status)) or "")
  if err.message then s = s .. ": " .. string_gsub(tostring(err.message), "%c+", " ") end
  return s
end

---------------------------------------------------------------------------
-- One customer

-- The value at a dotted path of an offer, as table text: through arrays
-- (`financeEvents.eventCode`) each element's, joined; objects as JSON.
local function path_text(v, segments, i)
  if i > #segments or type(v) ~= "table" then
    if i <= #segments then return "" end
    if type(v) == "table" then return json.encode(v, INLINE_OPTS) end
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

local function field_table(offers, fields)
  local columns, paths = {}, {}
  for c, f in ipairs(fields) do
    columns[c] = { title = f, flex = true, min = 6 }
    local segments = {}
    for seg in string.gmatch(f, "[^.]+") do segments[#segments + 1] = seg end
    paths[c] = segments
  end
  local rows = {}
  for i, o in ipairs(offers) do
    local row = {}
    for c = 1, #paths do row[c] = path_text(o, paths[c], 1) end
    rows[i] = row
  end
  -- numbers are never cut
  for c = 1, #columns do
    local numeric = true
    for i = 1, #rows do
      if not string_find(rows[i][c], "^%-?[%d.]*$") then numeric = false end
    end
    columns[c].flex = not numeric
  end
  return columns, rows
end

local function print_offers(offers, opts, fields)
  local meta = offers:meta() or {}
  if opts.json then
    local list = {}
    for i = 1, #offers do list[i] = offers[i] end
    local doc = { financeOffers = list }
    if type(meta.warnings) == "table" and #meta.warnings > 0 then doc.warnings = meta.warnings end
    io.stdout:write(json.encode(doc, JSON_OPTS), "\n")
    return
  end
  local columns, rows
  if fields then
    columns, rows = field_table(offers, fields)
  else
    columns, rows = offer_columns(), {}
    for i, o in ipairs(offers) do rows[i] = offer_row(o) end
  end
  if #rows > 0 then
    io.stdout:write(table_concat(term.table(columns, rows, term.width(1)), "\n"), "\n")
  end
  local notes = { "HTTP " .. tostring(meta.status) }
  if meta.request_id then notes[#notes + 1] = "request " .. meta.request_id end
  if meta.total_time then notes[#notes + 1] = string_format("%.0f ms", meta.total_time * 1000) end
  if meta.attempts and meta.attempts > 1 then notes[#notes + 1] = meta.attempts .. " attempts" end
  local count = plural(#offers, "offer")
  if not fields then count = count .. ", " .. active_count(offers) .. " active" end
  io.stdout:write(string_format("%s (%s)\n", count, table_concat(notes, ", ")))
end

local HINTS = {
  [401] = "check KPAYMENT_USERNAME and KPAYMENT_PASSWORD, KPAYMENT_BEARER_TOKEN, or --user",
  [403] = "the credentials lack the scope payment.financeOffer.read",
}

local function report(cli, err)
  local line = tostring(err)
  local hint = err.kind == "http" and HINTS[err.status]
  if cli.status_of(err) == cli.EXIT.network then hint = "'kpayment doctor' checks the way to the API" end
  if hint then line = line .. " (" .. hint .. ")" end
  cli.say("offers", line)
  return cli.status_of(err)
end

local function fields_list(spec)
  if spec == nil then return nil end
  local list = {}
  for path in string.gmatch(spec, "[^,]+") do
    path = string_match(path, "^%s*(.-)%s*$")
    if path ~= "" then list[#list + 1] = path end
  end
  return list
end

local function one(cli, client, opts)
  local fields = fields_list(opts.fields)
  local params = { customer_uuid = opts.customer, dealer_uuid = opts.dealer, fields = fields }
  local ok, offers, err = pcall(client.get_offers, client, params)
  if not ok then cli.usage("offers", cli.message(offers)) end
  if not offers then return report(cli, err) end
  print_offers(offers, opts, fields)
  return cli.EXIT.ok
end

---------------------------------------------------------------------------
-- Many customers

--- The customer,dealer pairs of a batch file's text: blank lines and lines
-- starting with # are skipped, so is a first line "customer,dealer"
-- (or "customerUUID,dealerUUID");
-- fields may be quoted; a line with the customer alone takes `dealer`.
function M.read_pairs(cli, textin, dealer, name)
  local list, n = {}, 0
  for line in string.gmatch(textin .. "\n", "([^\n]*)\n") do
    n = n + 1
    line = string_match(string_gsub(line, "\r$", ""), "^%s*(.-)%s*$")
    local cells = {}
    for cell in string.gmatch(line .. ",", "([^,]*),") do
      cells[#cells + 1] = string_match(string_match(cell, "^%s*(.-)%s*$"), '^"(.*)"$')
        or string_match(cell, "^%s*(.-)%s*$")
    end
    local first = string.lower(cells[1])
    local header = n == 1 and (first == "customer" or first == "customeruuid")
    if line ~= "" and not string_find(line, "^#") and not header then
      if #cells > 2 or cells[1] == "" or (#cells == 1 and not dealer) or cells[2] == "" then
        cli.usage("offers", string_format("%s:%d: expected customer,dealer", name, n))
      end
      list[#list + 1] = { customer_uuid = cells[1], dealer_uuid = cells[2] or dealer }
    end
  end
  if #list == 0 then cli.usage("offers", name .. ": no customer,dealer lines") end
  return list
end

local function read_batch(cli, path, dealer)
  local f, why
  if path == "-" then
    f = io.stdin
  else
    f, why = io_open(path, "rb")
    if not f then cli.usage("offers", "cannot read --batch file: " .. tostring(why)) end
  end
  local textin = f:read("*a") or ""
  if f ~= io.stdin then f:close() end
  return M.read_pairs(cli, textin, dealer, path == "-" and "standard input" or path)
end

local function batch(cli, client, opts)
  local list = read_batch(cli, opts.batch, opts.dealer)
  local fields = fields_list(opts.fields)
  for _, p in ipairs(list) do p.fields = fields end
  local concurrency = opts.concurrency or 8
  if concurrency < 1 or concurrency > 1024 then
    cli.usage("offers", "option --concurrency needs a number from 1 to 1024")
  end
  local progress
  if term.isatty(2) then progress = term.progress(io.stderr, #list, core.monotonic, term.width(2)) end
  local started = core.monotonic()
  if progress then progress.update(0) end
  local ok, results = pcall(client.get_offers_many, client, list, {
    concurrency = concurrency,
    on_progress = progress and function(done) progress.update(done) end,
  })
  if progress then progress.finish() end
  if not ok then cli.usage("offers", cli.message(results)) end
  local elapsed = core.monotonic() - started

  local failed, kinds, status = 0, {}, cli.EXIT.ok
  for _, r in ipairs(results) do
    if r.err then
      failed = failed + 1
      kinds[r.err.kind] = (kinds[r.err.kind] or 0) + 1
      local s = cli.status_of(r.err)
      if s > status then status = s end
    end
  end

  if opts.json then
    local out = {}
    for i, r in ipairs(results) do
      local entry = { customerUUID = list[i].customer_uuid, dealerUUID = list[i].dealer_uuid }
      if r.offers then
        local offers = {}
        for k = 1, #r.offers do offers[k] = r.offers[k] end
        entry.financeOffers = offers
      else
        entry.error = { kind = r.err.kind, status = r.err.status, message = r.err.message,
                        code = r.err.code }
      end
      out[i] = entry
    end
    io.stdout:write(json.encode(out, JSON_OPTS), "\n")
    return status
  end

  local dealers, many_dealers = nil, false
  for _, p in ipairs(list) do
    if dealers and dealers ~= p.dealer_uuid then many_dealers = true end
    dealers = p.dealer_uuid
  end
  local columns = { { title = "CUSTOMER" } }
  if many_dealers then columns[#columns + 1] = { title = "DEALER" } end
  columns[#columns + 1] = { title = "OFFERS", right = true }
  columns[#columns + 1] = { title = "ACTIVE", right = true }
  columns[#columns + 1] = { title = "RESULT", flex = true, min = 12 }
  -- with --fields, offers say whether they are active only if asked
  local active_known = fields == nil
  for _, f in ipairs(fields or {}) do
    if f == "isActive" then active_known = true end
  end
  local rows = {}
  for i, r in ipairs(results) do
    local row = { text(list[i].customer_uuid) }
    if many_dealers then row[#row + 1] = text(list[i].dealer_uuid) end
    if r.offers then
      row[#row + 1] = tostring(#r.offers)
      row[#row + 1] = active_known and tostring(active_count(r.offers)) or ""
      row[#row + 1] = "ok"
    else
      row[#row + 1] = ""
      row[#row + 1] = ""
      row[#row + 1] = short_error(r.err)
    end
    rows[i] = row
  end
  io.stdout:write(table_concat(term.table(columns, rows, term.width(1)), "\n"), "\n")
  local summary = string_format("%s: %d ok, %d failed", plural(#list, "customer"), #list - failed, failed)
  if failed > 0 then
    local parts = {}
    for kind, count in pairs(kinds) do parts[#parts + 1] = kind .. " " .. count end
    table.sort(parts)
    summary = summary .. " (" .. table_concat(parts, ", ") .. ")"
  end
  io.stdout:write(summary, string_format(" in %.2f s\n", elapsed))
  return status
end

---------------------------------------------------------------------------

function M.run(args, cli)
  local opts = cli.parse(args, 1, SPEC, "offers")
  if opts.help then
    io.stdout:write(USAGE)
    return cli.EXIT.ok
  end
  if opts.batch then
    if opts.customer then cli.usage("offers", "give --customer or --batch, not both") end
  else
    if not opts.customer then cli.usage("offers", "--customer is required (or --batch FILE)") end
    if not opts.dealer then cli.usage("offers", "--dealer is required") end
    if opts.concurrency then cli.usage("offers", "--concurrency goes with --batch") end
  end
  if not opts.skin and not env("KPAYMENT_SKIN") then
    cli.usage("offers", "no skin: give --skin or set KPAYMENT_SKIN")
  end
  local client = M.client(cli, "offers", M.client_options(cli, "offers", opts))
  local status
  if opts.batch then
    status = batch(cli, client, opts)
  else
    status = one(cli, client, opts)
  end
  client:close()
  return status
end

return M
