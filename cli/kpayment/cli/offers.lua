--- `kpayment offers`: one customer's offers, or many customers'
-- (`--batch`), fetched through a window of `--concurrency` requests
-- (`client:start_offers` with `on_done`, driven by `client:poll`) and
-- written in `--format` as each finishes (kpayment.cli.output).
-- @module kpayment.cli.offers

local core = require("kpayment.core")
local config = require("kpayment.config")
local term = require("kpayment.cli.term")
local output = require("kpayment.cli.output")
local input = require("kpayment.cli.input")
local connect = require("kpayment.cli.client")

local tostring, pcall, error = tostring, pcall, error
local coroutine_create, coroutine_resume, coroutine_yield =
  coroutine.create, coroutine.resume, coroutine.yield
local math_huge = math.huge
local string_format, string_match, string_gmatch = string.format, string.match, string.gmatch

local M = {}

local USAGE = ([[
Usage: kpayment offers --customer UUID --dealer UUID [options]
       kpayment offers --batch FILE [--dealer UUID] [--concurrency N] [options]

A customer's finance offers; with --batch, many customers' at once.

Formats (--format F):
  table   the default: id, status, active, amount, expiry (local time, each
          row with its own UTC offset), customer, vehicle; fitted to the
          terminal, and never cut when standard output is not a terminal.
          With --batch, a row per customer. The footer or summary goes to
          standard error.
  json    the response, {"financeOffers":[...]}, integers exact; an error is
          {"error":{"kind","status","message","code"}}. With --batch one array
          of {line, customerUUID, dealerUUID, financeOffers or error}.
  ndjson  one such object per customer, one per line
  csv     a header, then a row per offer: line, customer, dealer, id, status,
          active, amount, expires (UTC, ISO 8601), customer_name, vehicle,
          error_kind, error_status, error_message (RFC 4180, CRLF)
  tsv     the same columns tab-separated; a tab, newline, CR or backslash in
          a field is written \t, \n, \r or \\
  ndjson, csv and tsv stream: each customer's lines are written as it
  finishes (in that order; sort on the line), and not kept. table and json
  keep every result until the end.

Options:
  --customer UUID    the customer (customerUUID)
  --dealer UUID      the dealer (dealerUUID); with --batch, for lines without one
  --batch FILE       CSV of customer,dealer lines ('-': standard input)
  --concurrency N    requests in flight with --batch (default %d, up to %d)
  --format F         table, json, ndjson, csv or tsv (default table)
  --json             the same as --format json
  --fields A,B.C     decode only these dotted paths inside each offer; they
                     are the columns of table, csv and tsv
  --skin S           the skin (default: KPAYMENT_SKIN)
  --locale L         the locale (default: KPAYMENT_LOCALE, else en-US)
  --base-url URL     the API (default: KPAYMENT_BASE_URL, else https://api.mykaarma.com)
  --user NAME        Basic authentication as NAME; the password comes from
                     KPAYMENT_PASSWORD, or is asked for on the terminal
  --ca-file FILE     CA certificates to verify the server with (default: libcurl's)
  --timeout S        seconds a call may take, retries included (default 30):
                     the library's timeout, its deadline left equal to it
  --retries N        retries of a failure worth retrying (default 2)
  --verbose          log each request and response on standard error
  -h, --help         show this help

Without --user, credentials come from KPAYMENT_USERNAME and KPAYMENT_PASSWORD,
KPAYMENT_BEARER_TOKEN, or KPAYMENT_CLIENT_ID, KPAYMENT_CLIENT_SECRET and
KPAYMENT_TOKEN_URL (OAuth2 client credentials: a token is fetched and
refreshed); a password or secret is never an option.  With --batch and
standard error on a terminal, a progress line is drawn there.

Batch files: a UTF-8 BOM is dropped; blank lines, # comments and a header
customer,dealer are skipped; fields may be quoted as in RFC 4180 ("c4,q",
"c5""x") but not run past their line.  A line without a dealer, or with
an empty one (c1,), takes --dealer.  Invalid UTF-8 is a usage error.

Exit status: 0 success, 1 an answer that is not offers (http, decode,
body_too_large, a token endpoint's refusal), 2 usage error, 3 no answer
(network, timeout, tls, a token endpoint that did not answer), 4 standard
output cannot be written (the command stops at once), 130 interrupted: what
finished is written (ndjson, csv, tsv).  With --batch the worst: 3 if any
customer got no answer, else 1 if any failed.  Killed by SIGPIPE (a pipe's
reader gone): 141; by SIGTERM: 143.
]]):format(config.CONCURRENCY.default, config.CONCURRENCY.max)

M.SPEC = {
  customer = "string", dealer = "string", batch = "file", concurrency = "integer",
  format = output.FORMATS, json = "flag", fields = "string", skin = "string", locale = "string",
  ["base-url"] = "string", user = "string", ["ca-file"] = "file", timeout = "number", retries = "number",
  verbose = "flag", help = "flag",
}

local HINTS = {
  [401] = "check KPAYMENT_USERNAME and KPAYMENT_PASSWORD, KPAYMENT_BEARER_TOKEN, KPAYMENT_CLIENT_ID "
    .. "and KPAYMENT_CLIENT_SECRET, or --user",
  [403] = "the credentials lack the scope payment.financeOffer.read",
}

-- One customer's error, one line on stderr.
local function report(cli, err)
  local line = tostring(err)
  local hint = err.kind == "http" and HINTS[err.status]
  if cli.status_of(err) == cli.EXIT.network then hint = "'kpayment doctor' checks the way to the API" end
  if hint then line = line .. " (" .. hint .. ")" end
  cli.say("offers", line)
end

local function fields_list(spec)
  if spec == nil then return nil end
  local list = {}
  for path in string_gmatch(spec, "[^,]+") do
    path = string_match(path, "^%s*(.-)%s*$")
    if path ~= "" then list[#list + 1] = path end
  end
  return list
end

--- Fetch the customers of `list` through a window of `concurrency`
-- requests, calling `done(k, offers, err)` for each as it finishes
-- (completion order); nothing is kept once it returns.  What start_offers
-- raises (a parameter kpayment refuses) becomes a usage error.
function M.drive(cli, client, list, opts, done, tick)
  local n, next_k, inflight, queue = #list.customers, 1, 0, {}
  while true do
    while inflight < opts.concurrency and next_k <= n do
      local k = next_k
      next_k = k + 1
      local ok, why = pcall(client.start_offers, client, {
        customer_uuid = list.customers[k], dealer_uuid = list.dealers[k], fields = opts.fields,
        -- as short as can be: Ctrl-C raised in here would be contained
        on_done = function(offers, err) queue[#queue + 1] = { k, offers, err } end,
      })
      if not ok then connect.refused(cli, "offers", why, opts.given) end
      inflight = inflight + 1
    end
    if inflight == 0 then return end
    client:poll(250, math_huge)
    if cli.interrupted then error("interrupted!", 0) end
    local ready = queue
    queue = {}
    for i = 1, #ready do
      inflight = inflight - 1
      done(ready[i][1], ready[i][2], ready[i][3])
    end
    if tick then tick() end
  end
end

-- `write(k, offers, err)` for each customer and its count (`.written`),
-- both in one turn of a coroutine: lua.c's Ctrl-C hook is set on the main
-- thread only (5.1 to 5.4 keep a hook per coroutine), so it lands before
-- or after a turn, never between the write and the count.  LuaJIT keeps
-- one hook for all coroutines: there Ctrl-C may land inside a turn, whose
-- customer may or may not have been written then (`.in_doubt`).
function M.counted(write)
  local self = { written = 0, in_doubt = false }
  local co = coroutine_create(function(k, offers, err)
    while true do
      write(k, offers, err)
      self.written = self.written + 1
      k, offers, err = coroutine_yield()
    end
  end)
  function self.customer(k, offers, err)
    local ok, why = coroutine_resume(co, k, offers, err)
    if not ok then
      self.in_doubt = true
      error(why, 0)
    end
  end
  return self
end

--- The line on stderr after Ctrl-C: how many customers' lines were written.
function M.interrupted_note(written, total, format)
  if not output.STREAMED[format] then
    return string_format("interrupted: %d of %d customers finished, nothing written (--format %s writes "
      .. "at the end; ndjson, csv and tsv stream)", written.written, total, format)
  end
  return string_format("interrupted: %d of %d customers finished, their lines written%s", written.written,
    total, written.in_doubt and " (and perhaps the next one's: Ctrl-C came as it was written)" or "")
end

function M.run(args, cli)
  local opts = cli.command_options(args, M.SPEC, "offers", USAGE)
  if not opts then return cli.EXIT.ok end
  local format = opts.format or "table"
  if opts.json then
    if opts.format and opts.format ~= "json" then
      cli.usage("offers", "--json is --format json: give one of them")
    end
    format = "json"
  end
  if opts.batch then
    if opts.customer then cli.usage("offers", "--batch replaces --customer: give one of them") end
  else
    if not opts.customer then cli.usage("offers", "--customer is required (or --batch FILE)") end
    if not opts.dealer then cli.usage("offers", "--dealer is required") end
    if opts.concurrency then cli.usage("offers", "--concurrency goes with --batch") end
  end
  opts.concurrency = opts.concurrency or config.CONCURRENCY.default
  local problem = config.concurrency_problem(opts.concurrency)
  if problem then cli.usage("offers", "option --concurrency needs " .. problem) end
  opts.fields = fields_list(opts.fields)
  local fail = function(message) cli.usage("offers", message) end
  local list = opts.batch and input.read(opts.batch, opts.dealer, fail)
    or { customers = { opts.customer }, dealers = { opts.dealer }, lines = { 1 } }
  local o, given = connect.options(cli, "offers", opts)
  opts.given = given
  local client = connect.new(cli, "offers", o, given)

  local total = #list.customers
  local writer = output.writer(format, io.stdout, { batch = opts.batch ~= nil, fields = opts.fields,
                                                    width = term.width(1) })
  local progress
  if opts.batch and term.isatty(2) then
    progress = term.progress(io.stderr, total, core.monotonic, term.width(2))
    progress.update(0)
  end
  -- a row streamed to the terminal the bar is on must not land after it
  local rows_under_bar = progress and output.STREAMED[format] and term.isatty(1)
  local started = core.monotonic()
  local failed, kinds, status = 0, {}, cli.EXIT.ok
  local written = M.counted(function(k, offers, err)
    if rows_under_bar then progress.clear() end
    writer.customer({ k = k, line = list.lines[k], customer = list.customers[k], dealer = list.dealers[k] },
      offers, err)
    if rows_under_bar then io.stdout:flush() end
  end)
  local ok, why = pcall(M.drive, cli, client, list, opts, function(k, offers, err)
    if err then
      failed = failed + 1
      kinds[err.kind] = (kinds[err.kind] or 0) + 1
      status = cli.worse(status, cli.status_of(err))
      if not opts.batch then report(cli, err) end
    end
    written.customer(k, offers, err)
    if progress then progress.update(written.written) end
  end, progress and function() progress.update(written.written) end)
  -- ends what is in flight now, on Ctrl-C too
  client:close()
  if progress then progress.finish() end
  if not ok then
    if not cli.is_interrupt(why) then error(why, 0) end
    cli.flush(io.stdout)
    if not opts.batch then error(why, 0) end
    cli.say("offers", M.interrupted_note(written, total, format))
    return cli.EXIT.interrupted
  end
  writer.finish()
  cli.flush(io.stdout)
  if opts.batch then
    io.stderr:write(output.summary(total, failed, kinds, core.monotonic() - started), "\n")
  end
  return status
end

return M
