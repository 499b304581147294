-- kpayment offers: what it writes where.  Output to a pipe is never cut;
-- --format table, json, ndjson, csv and tsv, for one customer and with
-- --batch; the footer and the summary on stderr; an error as JSON; the
-- expiry's time zone on every row.

local kpayment = require("kpayment")
local term = require("kpayment.cli.term")
local support = require("support.mock")
local hostile = require("support.hostile")
local server = require("support.server")
local version = require("support.version")
local run = require("support.cli_run")

local USER, PASSWORD = "fmt-user", "fmt-s3cret-password"
local SKIN = "fmt-skin"
local CUSTOMER, DEALER = "4f1c2a7e-demo-customer", "9b3d5e11-demo-dealer"
local BIG_ID = "9007199254740993"
local LONG_NAME = "Zoë O'Connor-Featherstonehaugh de la Fuente y Zaragoza"
local COLUMNS = { "line", "customer", "dealer", "id", "status", "active", "amount", "expires",
                  "customer_name", "vehicle", "error_kind", "error_status", "error_message" }

local SERVER_ERROR = { kind = "http", status = 500, message = "Internal server error", code = 500 }

local lines_of, write_file = run.lines, run.write_file
local unpack = table.unpack or unpack

-- Records of RFC 4180 text (quoted fields with "" inside, CRLF or LF);
-- raises on text that is not.
local function parse_csv(text)
  local rows, row, field, i = {}, {}, {}, 1
  local function end_field()
    row[#row + 1] = table.concat(field)
    field = {}
  end
  while i <= #text do
    local c = text:sub(i, i)
    if c == '"' and #field == 0 then
      local j = i + 1
      while true do
        local q = assert(text:find('"', j, true), "unclosed quote")
        field[#field + 1] = text:sub(j, q - 1)
        if text:sub(q + 1, q + 1) == '"' then
          field[#field + 1] = '"'
          j = q + 2
        else
          i = q + 1
          break
        end
      end
      local after = text:sub(i, i)
      assert(after == "," or after == "\r" or after == "\n" or after == "", "text after a quote")
    elseif c == "," then
      end_field()
      i = i + 1
    elseif c == "\r" or c == "\n" then
      assert(c == "\r" and text:sub(i + 1, i + 1) == "\n", "a record must end with CRLF")
      end_field()
      rows[#rows + 1] = row
      row = {}
      i = i + 2
    else
      assert(c ~= '"', "a quote inside an unquoted field")
      field[#field + 1] = c
      i = i + 1
    end
  end
  assert(#row == 0 and #field == 0, "the last record has no CRLF")
  return rows
end

-- Records of the command's TSV: tab-separated, \t \n \r \\ escaped.
local function parse_tsv(text)
  local rows = {}
  assert(text:sub(-1) == "\n", "the last record has no LF")
  for line in text:gmatch("([^\n]*)\n") do
    assert(not line:find("\r", 1, true), "a raw CR")
    local row = {}
    for cell in (line .. "\t"):gmatch("([^\t]*)\t") do
      row[#row + 1] = cell:gsub("\\(.)", { t = "\t", n = "\n", r = "\r", ["\\"] = "\\" })
    end
    rows[#rows + 1] = row
  end
  return rows
end

-- Each row of a parsed table as a record keyed by the header's names.
local function records(rows)
  assert.same(COLUMNS, rows[1])
  local list = {}
  for i = 2, #rows do
    assert.equal(#COLUMNS, #rows[i], "row " .. i .. " has " .. #rows[i] .. " fields")
    local r = {}
    for c, name in ipairs(COLUMNS) do r[name] = rows[i][c] end
    list[#list + 1] = r
  end
  return list
end

local function one(customer, ...)
  local args = { "offers", "--customer", customer, "--dealer", DEALER }
  for _, word in ipairs({ ... }) do args[#args + 1] = word end
  return args
end

local function widest(text)
  local w = 0
  for _, line in ipairs(lines_of(text)) do w = math.max(w, term.text_width(line)) end
  return w
end

describe("kpayment offers output", function()
  local m, h, env, henv

  setup(function()
    m = support.start({ "--user", USER, "--password", PASSWORD })
    h = hostile.start()
    env = { KPAYMENT_BASE_URL = m.url, KPAYMENT_USERNAME = USER, KPAYMENT_PASSWORD = PASSWORD,
            KPAYMENT_SKIN = SKIN }
    henv = { KPAYMENT_BASE_URL = h.url, KPAYMENT_SKIN = SKIN }
  end)

  teardown(function()
    m.stop()
    h.stop()
  end)

  local function with(base, extra)
    local e = {}
    for k, v in pairs(base) do e[k] = v end
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  local function library_offers(customer)
    local client = kpayment.new({ base_url = m.url, username = USER, password = PASSWORD, skin = SKIN })
    local offers, err = client:get_offers({ customer_uuid = customer, dealer_uuid = DEALER })
    client:close()
    assert.is_nil(err)
    return offers
  end

  describe("to a pipe", function()
    it("cuts nothing, whatever COLUMNS says", function()
      for _, columns in ipairs({ false, "40", "80" }) do
        local r = run.run(one("cli-text"), { env = with(henv, { COLUMNS = columns or nil }) })
        assert.equal(0, r.status, r.err)
        assert.is_falsy(r.out:find("…", 1, true), r.out)
        assert.is_truthy(r.out:find(LONG_NAME, 1, true), r.out)
        assert.is_truthy(r.out:find('2024 Toyota Camry "XSE", V6', 1, true), r.out)
        assert.is_true(widest(r.out) > 100)
      end
    end)

    it("shows a server's terminal escapes in batch cells as spaces, C1 ones too", function()
      local path = write_file("term-500," .. DEALER .. "\n")
      local r = run.run({ "offers", "--batch", path, "--retries", "0" }, { env = henv })
      os.remove(path)
      assert.equal(1, r.status, r.err)
      assert.matches("ESC", r.out)
      assert.matches("C1 end", r.out)
      assert.is_falsy(r.out:find("\27", 1, true), r.out)
      assert.is_falsy(r.out:find("\194\155", 1, true), r.out)
    end)

    it("cuts no batch row or error text", function()
      local long = "a-customer-id-long-enough-to-pass-any-terminal-" .. string.rep("0123456789", 4)
      local path = write_file(long .. "," .. DEALER .. "\nmock:error500," .. DEALER .. "\n")
      local r = run.run({ "offers", "--batch", path, "--retries", "0" },
        { env = with(env, { COLUMNS = "60" }) })
      os.remove(path)
      assert.equal(1, r.status, r.err)
      assert.is_falsy(r.out:find("…", 1, true), r.out)
      assert.is_truthy(r.out:find(long, 1, true), r.out)
      assert.is_truthy(r.out:find("http 500: Internal server error", 1, true), r.out)
    end)

    it("fits the table to the terminal's width on a terminal, cutting names with …", function()
      if not run.have_script() then pending("no script command here") return end
      for _, width in ipairs({ 60, 80, 100 }) do
        local r = run.pty(one("cli-text"), { env = with(henv, { COLUMNS = tostring(width) }) })
        assert.equal(0, r.status, r.out)
        local table_lines = {}
        for _, line in ipairs(lines_of(r.out)) do
          if not line:find("^%d+ offers") then table_lines[#table_lines + 1] = line end
        end
        assert.equal(4, #table_lines, r.out)
        -- the fixed columns take 72 and each flexible one at least 6
        for _, line in ipairs(table_lines) do
          assert.is_true(term.text_width(line) <= math.max(width, 86), width .. ": " .. line)
        end
        assert.is_truthy(r.out:find("…", 1, true))
      end
    end)
  end)

  describe("--format", function()
    it("refuses a format it does not know, and --json beside another format", function()
      for _, args in ipairs({ one(CUSTOMER, "--format", "xml"), one(CUSTOMER, "--format"),
                              one(CUSTOMER, "--json", "--format", "csv") }) do
        local r = run.run(args, { env = env })
        assert.equal(2, r.status, r.err)
        assert.equal("", r.out)
        assert.matches("%-%-format", r.err)
      end
      local r = run.run(one(CUSTOMER, "--format", "xml"), { env = env })
      assert.matches("table, json, ndjson, csv, tsv", r.err, 1, true)
    end)

    it("--json is --format json", function()
      local a = run.run(one(CUSTOMER, "--json"), { env = env })
      local b = run.run(one(CUSTOMER, "--format", "json"), { env = env })
      local c = run.run(one(CUSTOMER, "--format=json", "--json"), { env = env })
      assert.equal(0, a.status)
      assert.equal(a.out, b.out)
      assert.equal(a.out, c.out)
      assert.same(kpayment.decode(a.out).financeOffers[2], kpayment.decode(b.out).financeOffers[2])
    end)

    it("json: an empty object stays {}, an empty array [], with --fields too", function()
      local r = run.run(one("shape-empty-members", "--json"), { env = henv })
      assert.equal(0, r.status, r.err)
      assert.matches('"customer": {}', r.out, 1, true)
      assert.matches('"tags": []', r.out, 1, true)
      assert.matches('"terms": {}', r.out, 1, true)
      -- records that keep no field are still objects
      r = run.run(one("mock:offers:2", "--fields", "nonexist", "--format", "ndjson"), { env = env })
      assert.equal(0, r.status, r.err)
      assert.matches('"financeOffers":%[{},{}%]', r.out)
    end)

    it("csv and tsv: no two columns share a name, with --fields named like the command's own", function()
      for _, format in ipairs({ "csv", "tsv" }) do
        local r = run.run(one(CUSTOMER, "--fields", "customer,line,id", "--format", format), { env = env })
        assert.equal(0, r.status, r.err)
        local sep = format == "csv" and "," or "\t"
        local header = r.out:match("^([^\r\n]*)")
        assert.equal(table.concat({ "line", "customer", "dealer", "offer.customer", "offer.line", "id",
                                    "error_kind", "error_status", "error_message" }, sep), header)
      end
    end)

    it("csv: a header, then a row per offer, quoted as RFC 4180 says", function()
      local r = run.run(one("cli-text", "--format", "csv"), { env = henv })
      assert.equal(0, r.status, r.err)
      assert.equal("", r.err)
      local rows = records(parse_csv(r.out))
      assert.equal(3, #rows)
      assert.same({ line = "1", customer = "cli-text", dealer = DEALER, id = BIG_ID, status = "FUNDED",
                    active = "true", amount = "25000", expires = "2099-01-15T12:00:00.250Z",
                    customer_name = LONG_NAME, vehicle = '2024 Toyota Camry "XSE", V6',
                    error_kind = "", error_status = "", error_message = "" }, rows[1])
      assert.equal("Tab\there Line\nbreak\r\nand \\ backslash", rows[2].customer_name)
      assert.equal("2021 Kia Telluride, SX", rows[2].vehicle)
      assert.equal("41490.64", rows[2].amount)
      assert.equal("false", rows[2].active)
      assert.equal("2099-07-15T12:00:00.000Z", rows[2].expires)
      assert.same({ "3", "EXPIRED", "false", "", "", "" },
        { rows[3].id, rows[3].status, rows[3].active, rows[3].expires, rows[3].customer_name,
          rows[3].vehicle })
      -- the quoting itself
      assert.is_truthy(r.out:find(',"2024 Toyota Camry ""XSE"", V6",', 1, true))
      assert.is_truthy(r.out:find(',"Tab\there Line\nbreak\r\nand \\ backslash",', 1, true))
      assert.equal(table.concat(COLUMNS, ",") .. "\r\n", r.out:match("^[^\n]*\n"))
    end)

    it("tsv: the same columns, tab, newline, CR and backslash escaped", function()
      local r = run.run(one("cli-text", "--format", "tsv"), { env = henv })
      assert.equal(0, r.status, r.err)
      local rows = records(parse_tsv(r.out))
      assert.equal(3, #rows)
      assert.equal(LONG_NAME, rows[1].customer_name)
      assert.equal("Tab\there Line\nbreak\r\nand \\ backslash", rows[2].customer_name)
      assert.is_truthy(r.out:find("\tTab\\there Line\\nbreak\\r\\nand \\\\ backslash\t", 1, true))
      assert.equal(4, #lines_of(r.out))
    end)

    it("ndjson: one line for the customer, as a batch line", function()
      local r = run.run(one(CUSTOMER, "--format", "ndjson"), { env = env })
      assert.equal(0, r.status, r.err)
      local lines = lines_of(r.out)
      assert.equal(1, #lines)
      local doc = kpayment.decode(lines[1])
      assert.equal(1, doc.line)
      assert.equal(CUSTOMER, doc.customerUUID)
      assert.equal(DEALER, doc.dealerUUID)
      assert.equal(version.integer(BIG_ID), doc.financeOffers[1].id)
      assert.equal(#library_offers(CUSTOMER), #doc.financeOffers)
      assert.equal('{"line":1,"customerUUID":', lines[1]:sub(1, 25))
    end)

    it("csv: a customer with no offers is one row with only its own columns", function()
      local r = run.run(one("cli-empty", "--format", "csv"), { env = henv })
      assert.equal(0, r.status, r.err)
      local rows = records(parse_csv(r.out))
      assert.equal(1, #rows)
      assert.equal("cli-empty", rows[1].customer)
      assert.equal("", rows[1].id)
      assert.equal("", rows[1].error_kind)
    end)
  end)

  describe("an error", function()
    it("is a JSON object on stdout with --json, and one line on stderr", function()
      for _, flag in ipairs({ { "--json" }, { "--format", "json" } }) do
        local r = run.run(one("mock:error500", "--retries", "0", unpack(flag)), { env = env })
        assert.equal(1, r.status)
        assert.same({ error = SERVER_ERROR }, kpayment.decode(r.out))
        assert.matches("^kpayment offers: http error %(HTTP 500%): Internal server error[^\n]*\n$", r.err)
      end
    end)

    it("has a null status when no answer came, and the exit status of its kind", function()
      local url = "http://127.0.0.1:" .. server.free_port()
      local r = run.run(one(CUSTOMER, "--json", "--retries", "0", "--base-url", url), { env = env })
      assert.equal(3, r.status)
      assert.is_truthy(r.out:find('"status": null', 1, true), r.out)
      local doc = kpayment.decode(r.out)
      assert.equal("network", doc.error.kind)
      assert.matches("^kpayment offers: network error", r.err)
    end)

    it("is a line of ndjson, or a row of csv, with its kind, status and message", function()
      local r = run.run(one("mock:error500", "--retries", "0", "--format", "ndjson"), { env = env })
      assert.equal(1, r.status)
      local doc = kpayment.decode(r.out)
      assert.same(SERVER_ERROR, doc.error)
      assert.equal(1, doc.line)
      assert.is_nil(doc.financeOffers)
      r = run.run(one("mock:badjson", "--format", "csv"), { env = env })
      assert.equal(1, r.status)
      local rows = records(parse_csv(r.out))
      assert.equal(1, #rows)
      assert.same({ "1", "mock:badjson", DEALER, "", "decode", "200" },
        { rows[1].line, rows[1].customer, rows[1].dealer, rows[1].id, rows[1].error_kind,
          rows[1].error_status })
      assert.is_truthy(rows[1].error_message ~= "")
      assert.matches("^kpayment offers: decode error", r.err)
    end)
  end)

  describe("stdout holds the table alone", function()
    it("the footer goes to stderr", function()
      local r = run.run(one(CUSTOMER), { env = env })
      assert.equal(0, r.status)
      local lines = lines_of(r.out)
      assert.equal(4, #lines)
      assert.matches("^ID +STATUS", lines[1])
      assert.matches("^3 offers, 2 active %(HTTP 200, request mock%-%d+, %d+ ms%)\n$", r.err)
    end)

    it("so tail and awk see only rows", function()
      local cmd = run.command(one(CUSTOMER), { env = env })
        .. " 2>/dev/null | tail -n +2 | awk '{ print $2 }'"
      local p = assert(io.popen(cmd))
      local out = p:read("*a")
      p:close()
      assert.equal("FUNDED\nPENDING\nEXPIRED\n", out)
    end)

    it("the batch summary goes to stderr, in every format", function()
      local path = write_file("c-one," .. DEALER .. "\nmock:error500," .. DEALER .. "\n")
      for _, format in ipairs({ "table", "json", "ndjson", "csv", "tsv" }) do
        local r = run.run({ "offers", "--batch", path, "--retries", "0", "--format", format }, { env = env })
        assert.equal(1, r.status)
        assert.matches("^2 customers: 1 ok, 1 failed %(http 1%) in %d+%.%d%d s\n$", r.err)
        assert.is_falsy(r.out:find("customers:", 1, true))
      end
      os.remove(path)
    end)
  end)

  describe("--batch", function()
    local csv

    setup(function()
      csv = write_file(table.concat({
        "customer,dealer",
        "c-one," .. DEALER,
        "mock:error500," .. DEALER,
        "mock:offers:0," .. DEALER,
        "c-two",
      }, "\n") .. "\n")
    end)

    teardown(function()
      os.remove(csv)
    end)

    it("ndjson: one object per customer with its input line", function()
      local r = run.run({ "offers", "--batch", csv, "--dealer", DEALER, "--retries", "0",
                          "--format", "ndjson" }, { env = env })
      assert.equal(1, r.status)
      local by_line = {}
      for _, line in ipairs(lines_of(r.out)) do
        local doc = kpayment.decode(line)
        by_line[doc.line] = doc
      end
      assert.same({ 2, 3, 4, 5 }, (function()
        local t = {}
        for k in pairs(by_line) do t[#t + 1] = k end
        table.sort(t)
        return t
      end)())
      assert.equal("c-one", by_line[2].customerUUID)
      assert.equal(3, #by_line[2].financeOffers)
      assert.equal("http", by_line[3].error.kind)
      assert.same({}, by_line[4].financeOffers)
      assert.equal(DEALER, by_line[5].dealerUUID)
    end)

    it("csv: a row per offer and per failed customer", function()
      local r = run.run({ "offers", "--batch", csv, "--dealer", DEALER, "--retries", "0", "--format", "csv" },
        { env = env })
      assert.equal(1, r.status)
      local rows = records(parse_csv(r.out))
      local count = {}
      for _, row in ipairs(rows) do count[row.line] = (count[row.line] or 0) + 1 end
      assert.same({ ["2"] = 3, ["3"] = 1, ["4"] = 1, ["5"] = 3 }, count)
      for _, row in ipairs(rows) do
        if row.line == "3" then
          assert.same({ "mock:error500", "", "http", "500", "Internal server error" },
            { row.customer, row.id, row.error_kind, row.error_status, row.error_message })
        elseif row.line == "2" then
          assert.matches("^%d+$", row.id)
          assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", row.expires)
        end
      end
    end)

    it("json: one array in input order, each element with its line", function()
      local r = run.run({ "offers", "--batch", csv, "--dealer", DEALER, "--retries", "0", "--json" },
        { env = env })
      assert.equal(1, r.status)
      local doc = kpayment.decode(r.out)
      assert.equal(4, #doc)
      for i, line in ipairs({ 2, 3, 4, 5 }) do assert.equal(line, doc[i].line) end
      assert.equal(version.integer(BIG_ID), doc[1].financeOffers[1].id)
      assert.same(SERVER_ERROR, doc[2].error)
    end)

    it("streams: a customer's line is written when it finishes, in completion order", function()
      local path = write_file("mock:stall:1\nc-one\nc-two\n")
      local b = run.start({ "offers", "--batch", path, "--dealer", DEALER, "--format", "ndjson" },
        { env = env })
      -- the two fast customers are out while the first still stalls
      local lines
      for _ = 1, 100 do
        lines = lines_of(b.out())
        if #lines >= 2 then break end
        require("socket").sleep(0.02)
      end
      local running = b.status() == nil
      local status = b.wait(10)
      local all = lines_of(b.out())
      b.cleanup()
      os.remove(path)
      assert.is_true(running, "the command ended before its fast lines were read")
      assert.equal(2, #lines)
      assert.equal(0, status)
      assert.same({ 2, 3, 1 }, { kpayment.decode(all[1]).line, kpayment.decode(all[2]).line,
                                 kpayment.decode(all[3]).line })
    end)
  end)

  describe("the expiry", function()
    it("shows each row's own UTC offset in local time, and says so", function()
      local r = run.run(one("cli-text"), { env = with(henv, { TZ = "EST5EDT,M3.2.0,M11.1.0" }) })
      assert.equal(0, r.status, r.err)
      local lines = lines_of(r.out)
      assert.matches("EXPIRES %(LOCAL%)", lines[1])
      assert.is_truthy(lines[2]:find("2099-01-15 07:00 -05:00", 1, true), lines[2])
      assert.is_truthy(lines[3]:find("2099-07-15 08:00 -04:00", 1, true), lines[3])
      r = run.run(one("cli-text"), { env = with(henv, { TZ = "XST-5:30" }) })
      assert.is_truthy(r.out:find("2099-01-15 17:30 +05:30", 1, true), r.out)
    end)

    it("is UTC, ISO 8601, in csv whatever the zone", function()
      local r = run.run(one("cli-text", "--format", "csv"), { env = with(henv, { TZ = "XST-5:30" }) })
      local rows = records(parse_csv(r.out))
      assert.equal("2099-01-15T12:00:00.250Z", rows[1].expires)
    end)
  end)
end)

describe("kpayment offers cells", function()
  local output = require("kpayment.cli.output")
  local columns = output.offer_columns()
  local function cell(title, offer, data)
    for _, c in ipairs(columns) do
      if c[1] == title or c[3] == title then return (data and c[4] or c[2])(offer) end
    end
    error("no column " .. title)
  end

  it("AMOUNT: two decimals rounded half up from the amount's own digits, the same under every Lua", function()
    local cases = {
      { "0.125", "0.13" }, { "19999.995", "20000.00" }, { "19999.994", "19999.99" }, { "0.005", "0.01" },
      { "-2.5", "-2.50" }, { "-0.001", "0.00" }, { "25000.0", "25000.00" }, { "25000", "25000.00" },
      { "99.999", "100.00" }, { "1234.5678", "1234.57" },
    }
    for _, case in ipairs(cases) do
      local o = kpayment.decode('{"foAmount":' .. case[1] .. '}')
      assert.equal(case[2], cell("AMOUNT", o), case[1])
    end
    if version.int64 then
      local o = kpayment.decode('{"foAmount":' .. BIG_ID .. '}')
      assert.equal(BIG_ID .. ".00", cell("AMOUNT", o))
    end
  end)

  it("expires in csv: milliseconds cut as the table cuts minutes, never rounded into the next one", function()
    local o = kpayment.decode('{"expiryDate":"2099-01-15T10:01:59.9996Z"}')
    assert.equal("2099-01-15T10:01:59.999Z", cell("expires", o, true))
    o = kpayment.decode('{"expiryDate":"2099-01-15T10:01:59.250Z"}')
    assert.equal("2099-01-15T10:01:59.250Z", cell("expires", o, true))
  end)

  it("--fields: a number written the same under every Lua", function()
    local col = output.offer_columns({ "foAmount" })[1]
    for text, want in pairs({ ["1e16"] = "10000000000000000", ["2.5"] = "2.5", ["1E2"] = "100" }) do
      assert.equal(want, col[2](kpayment.decode('{"foAmount":' .. text .. '}')), text)
    end
  end)
end)
