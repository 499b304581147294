-- The kpayment command (bin/kpayment), run as a process against the mock
-- API server, a TLS server and closed ports; its JSON writer and terminal
-- helpers directly.  Beside it: spec/cli_format_spec.lua (formats, where
-- output goes, time zones), spec/cli_batch_spec.lua (CSV input, exit
-- statuses, streaming, Ctrl-C), spec/cli_options_spec.lua (options,
-- completion, secrets), spec/cli_doctor_spec.lua.

local kpayment = require("kpayment")
local core = require("kpayment.core")
local json = require("kpayment.json")
local term = require("kpayment.cli.term")
local server = require("support.server")
local version = require("support.version")
local run = require("support.cli_run")

local USER, PASSWORD = "cli-user", "cli-s3cret-password"
local SKIN = "cli-skin"
local CUSTOMER, DEALER = "4f1c2a7e-demo-customer", "9b3d5e11-demo-dealer"
local BIG_ID = "9007199254740993"

local function lines_of(s)
  local t = {}
  for line in (s .. "\n"):gmatch("([^\n]*)\n") do t[#t + 1] = line end
  if t[#t] == "" then t[#t] = nil end
  return t
end

local function valid_utf8(s)
  local i = 1
  while i <= #s do
    local c = s:byte(i)
    local n = c < 0x80 and 0 or (c >= 0xC2 and c <= 0xDF) and 1 or (c >= 0xE0 and c <= 0xEF) and 2
      or (c >= 0xF0 and c <= 0xF4) and 3 or nil
    if not n then return false end
    for k = 1, n do
      local b = s:byte(i + k)
      if not b or b < 0x80 or b > 0xBF then return false end
    end
    i = i + n + 1
  end
  return true
end

-- A plain copy of decoded values (no metatables), for deep comparison.
local function plain(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = plain(x) end
  return t
end

local function write_file(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- `kpayment offers` for CUSTOMER and DEALER, then the words given.
local function one(...)
  local args = { "offers", "--customer", CUSTOMER, "--dealer", DEALER }
  for _, word in ipairs({ ... }) do args[#args + 1] = word end
  return args
end

local function assert_one_line(s)
  assert.is_truthy(s:find("^[^\n]+\n$"), "expected one line on stderr, got: " .. s)
end

describe("kpayment command", function()
  local ctx = run.mock_for(USER, PASSWORD, SKIN)
  setup(ctx.start)
  teardown(ctx.stop)

  -- The offers the library itself returns for a customer, as plain tables.
  local function library_offers(customer, fields)
    local client = kpayment.new({ base_url = ctx.mock.url, username = USER, password = PASSWORD,
                                  skin = SKIN })
    local offers, err = client:get_offers({ customer_uuid = customer, dealer_uuid = DEALER, fields = fields })
    client:close()
    assert.is_nil(err)
    return offers
  end

  describe("--help", function()
    it("prints the commands at the top level and exits 0", function()
      for _, flag in ipairs({ "--help", "-h", "help" }) do
        local r = run.run({ flag })
        assert.equal(0, r.status)
        assert.matches("^Usage: kpayment COMMAND", r.out)
        for _, command in ipairs({ "offers", "doctor", "mock" }) do
          assert.matches("\n  " .. command, r.out)
        end
        assert.matches("2 usage error", r.out)
        assert.equal("", r.err)
      end
    end)

    it("prints each command's options", function()
      local options = { offers = "--batch FILE", doctor = "--base-url URL", mock = "--port N" }
      for command, option in pairs(options) do
        local r = run.run({ command, "--help" })
        assert.equal(0, r.status)
        assert.matches("^Usage: kpayment " .. command, r.out)
        assert.is_truthy(r.out:find(option, 1, true), command .. " --help names " .. option)
        assert.equal("", r.err)
        assert.equal(r.out, run.run({ "help", command }).out)
      end
    end)

    it("--version names kpayment, Lua and libcurl", function()
      local r = run.run({ "--version" })
      assert.equal(0, r.status)
      assert.equal("kpayment " .. core._VERSION .. " (", r.out:sub(1, #core._VERSION + 11))
      assert.matches("libcurl " .. core.curl_version:gsub("%p", "%%%0") .. "%)\n$", r.out)
    end)

    it("runs through a symbolic link to bin/kpayment, from any directory", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir " .. dir))
      finally(function() os.execute("rm -rf " .. dir) end)
      local lua = os.getenv("KPAYMENT_LUA") or "lua5.4"
      assert(os.execute(("ln -s %s/bin/kpayment %s/kp"):format(os.getenv("PWD"), dir)))
      local p = assert(io.popen(("cd / && %s %s/kp --version 2>&1; echo \"rc=$?\""):format(lua, dir)))
      local out = p:read("*a")
      p:close()
      assert.matches("^kpayment " .. core._VERSION:gsub("%p", "%%%0") .. " %(", out)
      assert.matches("rc=0\n$", out)
    end)
  end)

  describe("usage errors", function()
    local cases = {
      { {}, "no command given" },
      { { "offer" }, "unknown command 'offer'" },
      { { "--frobnicate" }, "unknown option '%-%-frobnicate'" },
      { { "offers", "--customer", CUSTOMER }, "%-%-dealer is required" },
      { { "offers", "--dealer", DEALER }, "%-%-customer is required" },
      { { "offers", "--customer" }, "option %-%-customer needs a value" },
      { { "offers", "--customer", "--dealer", DEALER }, "option %-%-customer needs a value" },
      { one("--password", "x"), "unknown option '%-%-password'" },
      { one("--json=yes"), "%-%-json takes no value" },
      { one("stray"), "unexpected argument 'stray'" },
      { one("--timeout", "soon"), "needs a number" },
      { { "offers", "--batch", "x.csv", "--concurrency", "-1" }, "needs an integer from 1 to 1024" },
      { { "offers", "--batch", "x.csv", "--concurrency", "2.5" }, "needs a whole number" },
      { one("--base-url", "ftp://x"),
        "bad option %-%-base%-url" },
      { one("--fields", "a..b"), "bad parameter %-%-fields" },
      { { "offers", "--batch", "/nonexistent/pairs.csv" }, "cannot read %-%-batch file" },
      { { "doctor", "--timeout" }, "option %-%-timeout needs a value" },
      { { "mock", "--port", "x" }, "needs a whole number" },
    }
    for _, case in ipairs(cases) do
      it("exit 2 with one line on stderr: kpayment " .. table.concat(case[1], " "), function()
        local r = run.run(case[1], { env = ctx.env })
        assert.equal(2, r.status)
        assert.equal("", r.out)
        assert_one_line(r.err)
        assert.matches("^kpayment[%w ]*: ", r.err)
        assert.matches(case[2], r.err)
        assert.matches("%(see 'kpayment[%w ]* %-%-help'%)\n$", r.err)
      end)
    end

    it("--user without KPAYMENT_PASSWORD and no terminal asks for it", function()
      local r = run.run({ "offers", "--user", USER, "--customer", CUSTOMER, "--dealer", DEALER },
        { env = ctx.with({ KPAYMENT_USERNAME = "", KPAYMENT_PASSWORD = "" }), setsid = true })
      assert.equal(2, r.status)
      assert_one_line(r.err)
      assert.matches("%-%-user needs a password: set KPAYMENT_PASSWORD %(no terminal to ask on%)", r.err)
    end)
  end)

  describe("offers", function()
    it("prints a table of id, status, active, amount, expiry, customer and vehicle", function()
      local r = run.run(one(), { env = ctx.env })
      assert.equal(0, r.status)
      local lines = lines_of(r.out)
      assert.equal(4, #lines)   -- header, 3 offers; the footer on stderr
      assert.matches("^ID +STATUS +ACTIVE +AMOUNT +EXPIRES %(LOCAL%) +CUSTOMER +VEHICLE$", lines[1])
      local expected = library_offers(CUSTOMER)
      for i, o in ipairs(expected) do
        local line = lines[i + 1]
        local id = i == 1 and BIG_ID or string.format("%d", o.id)
        assert.equal(id, line:match("^(%d+)"))
        assert.is_truthy(line:find("  " .. o.status .. " ", 1, true))
        assert.is_truthy(line:find(o.isActive and "  yes  " or "  no  ", 1, true))
        assert.is_truthy(line:find(string.format("%.2f", o.foAmount), 1, true))
        assert.is_truthy(line:find(o:customer_name(), 1, true), line)
        assert.is_truthy(line:find(o:vehicle_label(), 1, true), line)
      end
      assert.equal("3 offers, 2 active (HTTP 200, request mock-", r.err:match("^.-mock%-"))
    end)

    it("shows the expiry in local time with its UTC offset", function()
      local function expiry(tz)
        local r = run.run(one(), { env = ctx.with({ TZ = tz }) })
        assert.equal(0, r.status)
        local lines = lines_of(r.out)
        return lines[2]:match("(%d%d%d%d%-%d%d%-%d%d %d%d:%d%d [+-]%d%d:%d%d)")
      end
      local expiry_date = library_offers(CUSTOMER)[1].expiryDate
      assert.equal(expiry_date:sub(1, 10) .. " " .. expiry_date:sub(12, 16) .. " +00:00", expiry("UTC0"))
      -- a zone 5:30 east of UTC (a POSIX TZ string: no tzdata needed)
      local t = kpayment.parse_time(expiry_date) + 5.5 * 3600
      assert.equal(os.date("!%Y-%m-%d %H:%M", math.floor(t)) .. " +05:30", expiry("XST-5:30"))
    end)

    it("fits the table to COLUMNS on a terminal, cutting names with … and keeping UTF-8 whole", function()
      if not run.have_script() then pending("no script command here") return end
      for _, width in ipairs({ 60, 80, 100 }) do
        local r = run.pty({ "offers", "--customer", "mock:unicode", "--dealer", DEALER },
          { env = ctx.with({ COLUMNS = tostring(width) }) })
        assert.equal(0, r.status)
        assert.is_true(valid_utf8(r.out))
        local lines = lines_of(r.out:gsub("\r", ""))
        -- the fixed columns take 72 and each flexible one at least 6
        for i = 1, #lines - 1 do
          assert.is_true(term.text_width(lines[i]) <= math.max(width, 84), width .. ": " .. lines[i])
        end
        if width == 80 then assert.is_truthy(r.out:find("…", 1, true)) end
      end
    end)

    it("--fields prints a column per path", function()
      local r = run.run(one("--fields", "id,status"),
        { env = ctx.env })
      assert.equal(0, r.status)
      local lines = lines_of(r.out)
      assert.matches("^id +status$", lines[1])
      assert.matches("^" .. BIG_ID .. " +FUNDED$", lines[2])
      assert.equal(4, #lines)
      assert.matches("^3 offers %(HTTP 200", r.err)
    end)

    it("--json prints the response with exact integers, as the library decodes it", function()
      local r = run.run(one("--json"), { env = ctx.env })
      assert.equal(0, r.status)
      assert.equal("", r.err)
      assert.is_truthy(r.out:find('"id": ' .. BIG_ID .. ",", 1, true))
      assert.is_falsy(r.out:find("e+15", 1, true))
      local doc = kpayment.decode(r.out)
      assert.equal(version.integer(BIG_ID), doc.financeOffers[1].id)
      assert.same(plain(library_offers(CUSTOMER)), doc.financeOffers)
    end)

    it("--json prints the same values under every Lua", function()
      local here = run.run(one("--json"), { env = ctx.env })
      local f = io.open("build/5.4/kpayment/core.so")
      if version.lua54 or not f then
        pending("compared with Lua 5.4 when another Lua runs the specs")
        return
      end
      f:close()
      local reference = run.run(one("--json"), { env = ctx.env, lua = "lua5.4" })
      assert.equal(0, reference.status, reference.err)
      -- the same numbers (a float with no fraction is written 32.0 where
      -- the Lua tells floats from integers, 32 before 5.3), ids exact
      assert.same(kpayment.decode(reference.out), kpayment.decode(here.out))
      assert.equal(reference.out:gsub("(%d)%.0([,\n])", "%1%2"), (here.out:gsub("(%d)%.0([,\n])", "%1%2")))
    end)

    it("--json with --fields prints only those fields", function()
      local r = run.run(one("--json", "--fields", "id,lender.name"),
        { env = ctx.env })
      assert.equal(0, r.status)
      local doc = kpayment.decode(r.out)
      assert.same(plain(library_offers(CUSTOMER, { "id", "lender.name" })), doc.financeOffers)
      assert.is_nil(doc.financeOffers[1].status)
    end)

    it("--user takes the password from KPAYMENT_PASSWORD", function()
      local r = run.run({ "offers", "--user", USER, "--customer", CUSTOMER, "--dealer", DEALER },
        { env = ctx.with({ KPAYMENT_USERNAME = "" }) })
      assert.equal(0, r.status)
      assert.equal(4, #lines_of(r.out))
      assert.matches("^3 offers", r.err)
    end)

    it("exits 1 with one line on stderr on an API error", function()
      local r = run.run({ "offers", "--customer", "mock:error500", "--dealer", DEALER, "--retries", "0" },
        { env = ctx.env })
      assert.equal(1, r.status)
      assert.equal("", r.out)
      assert_one_line(r.err)
      assert.matches("^kpayment offers: http error %(HTTP 500%): Internal server error", r.err)
    end)

    it("exits 1 on refused credentials, and names where they come from, not what they are", function()
      local r = run.run(one(),
        { env = ctx.with({ KPAYMENT_PASSWORD = "wrong-" .. PASSWORD }) })
      assert.equal(1, r.status)
      assert_one_line(r.err)
      assert.matches("HTTP 401", r.err)
      assert.matches("KPAYMENT_USERNAME and KPAYMENT_PASSWORD", r.err)
      assert.is_falsy(r.err:find(PASSWORD, 1, true))
    end)

    it("exits 3 on a network error (a closed port)", function()
      local url = "http://127.0.0.1:" .. server.free_port()
      local r = run.run(one("--base-url", url, "--retries", "0"),
        { env = ctx.env })
      assert.equal(3, r.status)
      assert.equal("", r.out)
      assert_one_line(r.err)
      assert.matches("^kpayment offers: network error: .*kpayment doctor", r.err)
    end)

    it("exits 3 on a TLS error", function()
      local tls = require("support.tls").start()
      local r = run.run(one("--base-url", tls.url), { env = ctx.env })
      tls.stop()
      assert.equal(3, r.status)
      assert_one_line(r.err)
      assert.matches("^kpayment offers: tls error", r.err)
    end)

    it("asks for the --user password on the terminal without echo", function()
      if not run.have_script() then pending("no script command here") return end
      local r = run.pty(one("--user", USER, "--fields", "id"),
        { env = ctx.with({ KPAYMENT_USERNAME = "", KPAYMENT_PASSWORD = "" }), input = PASSWORD .. "\n" })
      assert.equal(0, r.status, r.out)
      assert.matches("^Password for " .. USER:gsub("%p", "%%%0") .. ": \r?\n", r.out)
      assert.matches(BIG_ID, r.out)
      assert.is_falsy(r.out:find(PASSWORD, 1, true), "the password was echoed")
    end)
  end)

  describe("offers --batch", function()
    local csv

    setup(function()
      csv = write_file(table.concat({
        "customer,dealer",
        "# a comment, then a blank line",
        "",
        "c-one," .. DEALER,
        "\"c-two\", " .. DEALER,
        "mock:error500," .. DEALER,
        "c-three",
      }, "\n") .. "\n")
    end)

    teardown(function()
      os.remove(csv)
    end)

    it("prints one row per customer, failures with their kind, then a summary", function()
      local r = run.run({ "offers", "--batch", csv, "--dealer", DEALER, "--retries", "0",
                          "--concurrency", "2" },
        { env = ctx.env })
      assert.equal(1, r.status)
      local lines = lines_of(r.out)
      assert.equal(5, #lines)
      assert.matches("^CUSTOMER +OFFERS +ACTIVE +RESULT$", lines[1])
      assert.matches("^c%-one +3 +2 +ok$", lines[2])
      assert.matches("^c%-two +3 +2 +ok$", lines[3])
      assert.matches("^mock:error500 +http 500: Internal server error$", lines[4])
      assert.matches("^c%-three +3 +2 +ok$", lines[5])
      -- the summary alone on stderr: no progress line, stderr is not a terminal
      assert.matches("^4 customers: 3 ok, 1 failed %(http 1%) in %d+%.%d%d s\n$", r.err)
    end)

    it("exits 3 when a customer got no answer, 0 when all succeed", function()
      local path = write_file("c-one," .. DEALER .. "\nmock:close," .. DEALER .. "\n")
      local r = run.run({ "offers", "--batch", path, "--retries", "0" }, { env = ctx.env })
      assert.equal(3, r.status)
      assert.matches("\nmock:close +network: ", r.out)
      assert.matches("%(network 1%)", r.err)
      local bad = run.run({ "offers", "--batch", "-" }, { env = ctx.env, stdin = csv })
      assert.equal(2, bad.status)   -- c-three has no dealer without --dealer
      assert.matches("^kpayment offers: standard input:7: expected customer,dealer", bad.err)
      local fine = write_file("c-one," .. DEALER .. "\nc-two," .. DEALER .. "\n")
      r = run.run({ "offers", "--batch", "-" }, { env = ctx.env, stdin = fine })
      os.remove(path)
      os.remove(fine)
      assert.equal(0, r.status)
      assert.matches("2 customers: 2 ok, 0 failed", r.err)
    end)

    it("with --fields leaves ACTIVE empty unless isActive is asked for", function()
      local path = write_file("c-one," .. DEALER .. "\n")
      local r = run.run({ "offers", "--batch", path, "--fields", "id" }, { env = ctx.env })
      local active = run.run({ "offers", "--batch", path, "--fields", "id,isActive" }, { env = ctx.env })
      os.remove(path)
      assert.equal(0, r.status)
      assert.matches("\nc%-one +3 +ok\n", r.out)
      assert.matches("\nc%-one +3 +2 +ok\n", active.out)
    end)

    it("--json prints each customer's offers or error", function()
      local r = run.run({ "offers", "--batch", csv, "--dealer", DEALER, "--retries", "0", "--json" },
        { env = ctx.env })
      assert.equal(1, r.status)
      local doc = kpayment.decode(r.out)
      assert.equal(4, #doc)
      assert.equal("c-one", doc[1].customerUUID)
      assert.equal(version.integer(BIG_ID), doc[1].financeOffers[1].id)
      assert.same({ kind = "http", status = 500, message = "Internal server error", code = 500 },
        doc[3].error)
      assert.equal(DEALER, doc[4].dealerUUID)
    end)

    -- A batch of `lines` on a terminal (nil when `script` is missing),
    -- with `more` arguments; it must exit 0.
    local function batch_on_terminal(lines, more)
      if not run.have_script() then return nil end
      local path = write_file(lines)
      local args = { "offers", "--batch", path, "--dealer", DEALER }
      for _, a in ipairs(more) do args[#args + 1] = a end
      local r = run.pty(args, { env = ctx.env })
      os.remove(path)
      assert.equal(0, r.status, r.out)
      return r
    end

    -- The counts the progress bars in text show, in order.
    local function draws_of(text, total)
      local draws = {}
      for done in text:gmatch("\r%[[#%-]+%] (%d)/" .. total) do draws[#draws + 1] = tonumber(done) end
      return draws
    end

    it("draws a progress line on a terminal, redrawn in place", function()
      local r = batch_on_terminal("c-one\nmock:stall:0.3\nc-two\nmock:stall:0.3\n", { "--concurrency", "1" })
      if not r then pending("no script command here") return end
      local bar = r.out:match("^(.-)\r\27%[K")   -- the line is erased before the table
      assert.is_truthy(bar, "no progress line erased in: " .. r.out)
      assert.is_falsy(bar:find("\n"), "the progress line has a newline")
      local draws = draws_of(bar, 4)
      assert.is_true(#draws >= 3, "redraws: " .. #draws)
      assert.equal(0, draws[1])
      assert.equal(4, draws[#draws])
      assert.matches("CUSTOMER +OFFERS", r.out)
      assert.matches("4 customers: 4 ok, 0 failed", r.out)
    end)

    it("shows a count held back by its redraw interval while the rest is still waited for", function()
      -- c-one and c-two end within a few ms, inside one redraw interval;
      -- the stall keeps the batch going for a second after them
      local r = batch_on_terminal("c-one\nc-two\nmock:stall:1\n", { "--concurrency", "3" })
      if not r then pending("no script command here") return end
      local draws = draws_of(r.out, 3)
      local two = false
      for _, d in ipairs(draws) do two = two or d == 2 end
      assert.is_true(two, "2/3 never drawn: " .. table.concat(draws, ","))
    end)

    it("erases the progress line before a streamed row on the same terminal", function()
      local r = batch_on_terminal("c-one\nmock:stall:0.3\nc-two\n",
        { "--concurrency", "1", "--format", "ndjson" })
      if not r then pending("no script command here") return end
      local rows = 0
      -- each row starts a line: after a newline, or after the bar was erased
      for before in r.out:gmatch("(.?.?.?)%{\"line\":") do
        rows = rows + 1
        assert.is_truthy(before == "" or before:find("\n$") or before:find("\27%[K$"),
          "a row follows the bar on its line, after: " .. before)
      end
      assert.equal(3, rows)
      -- and the bar is drawn again after it
      assert.matches("\n\r%[[#%-]+%] 1/3", r.out)
    end)
  end)

  describe("mock", function()
    it("starts from examples/with-mock.sh in a shell set up for another Lua's modules", function()
      -- as `luarocks --lua-version 5.1 path` leaves it: the plain LUA_CPATH,
      -- which lua5.4 reads too, first names a C module it cannot load
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. term.shell_quote(dir .. "/socket")))
      local f = assert(io.open(dir .. "/socket/core.so", "w"))
      f:write("not a shared object\n")
      f:close()
      -- (without the sanitizers `make test-asan` preloads: the script's
      -- mktemp leaks by design, and nothing of ours runs in it)
      local p = assert(io.popen("env -u LD_PRELOAD -u LUA_PATH_5_4 -u LUA_CPATH_5_4 LUA_CPATH="
        .. term.shell_quote(dir .. "/?.so;;")
        .. " examples/with-mock.sh sh -c 'echo \"url $KPAYMENT_BASE_URL\"' 2>&1"))
      local out = p:read("*a")
      p:close()
      os.execute("rm -rf " .. term.shell_quote(dir))
      assert.matches("\nurl http://127%.0%.0%.1:%d+\n", out)
    end)

    it("takes and lists the options kpayment-mock takes, OAuth's too", function()
      local function options_of(text)
        return text:match("\nOptions:\n.-\nControl:[^\n]*")
      end
      local mine = run.run({ "mock", "--help" }, { lua = "lua5.4" })
      local p = assert(io.popen("lua5.4 bin/kpayment-mock -h"))
      local its = p:read("*a")
      p:close()
      assert.equal(0, mine.status)
      assert.is_truthy(options_of(its), its)
      assert.equal(options_of(its), options_of(mine.out))
      assert.matches("%-%-client%-id I", mine.out)
      local s = server.start("bin/kpayment", { "mock", "--port", "0", "--client-id", "kp-id",
                                               "--client-secret", "kp-secret", "--token-ttl", "0.5" },
                             "kpayment mock")
      local r = run.run({ "offers", "--customer", CUSTOMER, "--dealer", DEALER, "--base-url", s.url },
        { env = ctx.with({ KPAYMENT_USERNAME = "", KPAYMENT_PASSWORD = "", KPAYMENT_CLIENT_ID = "kp-id",
                           KPAYMENT_CLIENT_SECRET = "kp-secret",
                           KPAYMENT_TOKEN_URL = s.url .. "/oauth2/token" }) })
      s.stop()
      assert.equal(0, r.status, r.err)
      assert.matches("^3 offers, ", r.err)
    end)

    it("names every credential variable in its help", function()
      local r = run.run({ "--help" })
      for _, name in ipairs({ "USERNAME", "PASSWORD", "BEARER_TOKEN", "CLIENT_ID", "CLIENT_SECRET",
                              "TOKEN_URL" }) do
        assert.matches("KPAYMENT_" .. name, r.out, 1, true)
      end
    end)

    it("serves the mock API (under lua5.4)", function()
      local s = server.start("bin/kpayment", { "mock", "--port", "0", "--offers", "2" }, "kpayment mock")
      local r = run.run(one("--base-url", s.url),
        { env = ctx.with({ KPAYMENT_USERNAME = "", KPAYMENT_PASSWORD = "" }) })
      s.stop()
      assert.equal(0, r.status, r.err)
      assert.matches("^2 offers, ", r.err)
    end)

    it("says it needs Lua 5.4 under another Lua, and how to run it there", function()
      local others = {}
      if not version.lua54 then others[1] = version.lua end
      for _, lua in ipairs({ "lua5.1", "lua5.3" }) do
        local ok = os.execute("command -v " .. lua .. " >/dev/null 2>&1")
        if (ok == true or ok == 0) and lua ~= version.lua then others[#others + 1] = lua end
      end
      if #others == 0 then pending("no Lua but 5.4 here") return end
      for _, other in ipairs(others) do
        local r = run.run({ "mock", "--port", "0" }, { lua = other })
        assert.equal(2, r.status, other)
        assert_one_line(r.err)
        assert.matches("^kpayment mock: the mock API server needs Lua 5.4, not ", r.err)
        -- the script beside this one, as it was named, and the checkout's wrapper
        assert.matches("lua5%.4 bin/kpayment%-mock", r.err)
        assert.matches("examples/with%-mock%.sh", r.err)
        assert.is_falsy(r.err:find("use kpayment-mock", 1, true), r.err)
      end
    end)

    it("exits 3 when it cannot listen", function()
      local r = run.run({ "mock", "--port", ctx.mock.url:match(":(%d+)$") }, { lua = "lua5.4" })
      assert.equal(3, r.status)
      assert_one_line(r.err)
      assert.matches("^kpayment mock: cannot listen on 127.0.0.1:%d+", r.err)
    end)
  end)
end)

describe("kpayment.json", function()
  it("writes integers with all their digits #int64", function()
    assert.equal("9007199254740993", json.encode(math.tointeger(9007199254740993)))
    assert.equal("-9223372036854775808", json.encode(math.mininteger))
    assert.equal("9223372036854775807", json.encode(math.maxinteger))
    assert.equal("25000.0", json.encode(25000.0))
  end)

  it("writes the digit strings that the decoder gives for integer fields as numbers", function()
    local v = { id = "9007199254740993", version = "18446744073709551616", name = "9007199254740993",
                parent = "-9223372036854775809", lenderID = "-9223372036854775808" }
    local text = json.encode(v, { integer_keys = require("kpayment.cli.output").INTEGER_KEYS })
    if version.int64 then
      -- within int64 the decoder gives an integer: such a string was a JSON string
      assert.equal('{"id":"9007199254740993","lenderID":"-9223372036854775808","name":"9007199254740993",'
        .. '"parent":-9223372036854775809,"version":18446744073709551616}', text)
    else
      assert.equal('{"id":9007199254740993,"lenderID":-9223372036854775808,"name":"9007199254740993",'
        .. '"parent":-9223372036854775809,"version":18446744073709551616}', text)
    end
  end)

  it("writes only what the decoder could not give as a number as one, so its text stays JSON", function()
    local ik = require("kpayment.cli.output").INTEGER_KEYS
    for _, digits in ipairs({ "0123", "-00", "123", "-0", "0", "9007199254740992",
                              "000000000000000000000099999999999999999999", "-09223372036854775809" }) do
      local text = json.encode({ id = digits }, { integer_keys = ik })
      assert.equal('{"id":"' .. digits .. '"}', text)
      assert.equal(digits, kpayment.decode(text).id)
    end
  end)

  it("writes floats with the fewest digits that read back the same", function()
    for _, v in ipairs({ 0.1, 0.1 + 0.2, 1 / 3, 5e-324, 1e300, -2.5, 123456.789, 2 ^ 60 + 0.0 }) do
      local text = json.encode(v)
      assert.equal(v, tonumber(text))
      assert.equal(v, kpayment.decode("[" .. text .. "]")[1])
    end
    assert.equal("0.30000000000000004", json.encode(0.1 + 0.2))
    assert.equal("0.1", json.encode(0.1))
  end)

  it("escapes strings as RFC 8259 asks, leaving UTF-8 as it is", function()
    assert.equal([["a\"b\\c\n\t\u0001\u001f é 🚗"]], json.encode("a\"b\\c\n\t\1\31 é 🚗"))
  end)

  it("writes null, booleans, arrays and sorted objects, pretty or not", function()
    local v = { b = { 1, core.null, true }, a = {}, c = { d = false } }
    assert.equal('{"a":[],"b":[1,null,true],"c":{"d":false}}', json.encode(v))
    assert.equal('{\n  "a": [],\n  "b": [\n    1,\n    null,\n    true\n  ],\n'
      .. '  "c": {\n    "d": false\n  }\n}', json.encode(v, { indent = "  " }))
  end)

  it("reads back what the decoder gave", function()
    local text = '{"financeOffers":[{"id":9007199254740993,"amount":41490.64,"n":null,"s":"\\u00e9\\n",' ..
      '"list":[1.5,-0.0,1e-7,null,{"x":[]}],"ok":true}]}'
    local v = kpayment.decode(text)
    assert.same(v, kpayment.decode(json.encode(v)))
    assert.same(v, kpayment.decode(json.encode(v, { indent = "  " })))
  end)

  it("raises on values JSON cannot hold", function()
    assert.has_error(function() json.encode(0 / 0) end)
    assert.has_error(function() json.encode(math.huge) end)
    assert.has_error(function() json.encode({ [true] = 1, x = 2 }) end)
    assert.has_error(function() json.encode(print) end)
  end)
end)

describe("kpayment.cli.term", function()
  it("measures text in terminal columns", function()
    assert.equal(5, term.text_width("hello"))
    assert.equal(6, term.text_width("Amélie"))
    assert.equal(2, term.text_width("王"))
    assert.equal(4, term.text_width("🚗 a"))
    assert.equal(1, term.text_width("e\204\129"))   -- e and a combining acute accent
  end)

  it("cuts text to a width without splitting a character", function()
    assert.equal("Amé…", term.fit("Amélie Nguyễn", 4))
    assert.equal("王…", term.fit("王王王", 4))
    assert.equal("Amélie", term.fit("Amélie", 6))
    assert.equal("…", term.fit("abc", 1))
  end)

  it("lays out tables in the width, shrinking flexible columns", function()
    local columns = { { title = "ID" }, { title = "NAME", flex = true, min = 4 },
                      { title = "N", right = true } }
    local rows = { { "1", "a long name here", "7" }, { "22", "short", "10" } }
    assert.same({ "ID  NAME               N", "1   a long name here   7", "22  short             10" },
      term.table(columns, rows, 80))
    assert.same({ "ID  NAME        N", "1   a long n…   7", "22  short      10" },
      term.table(columns, rows, 17))
  end)
end)
