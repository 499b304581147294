-- kpayment offers --batch: the CSV it reads, the exit status of a batch,
-- its memory when it streams 20 000 customers, and Ctrl-C.

local kpayment = require("kpayment")
local cli = require("kpayment.cli")
local run = require("support.cli_run")
local server = require("support.server")
local socket = require("socket")

local USER, PASSWORD = "batch-user", "batch-s3cret-password"
local SKIN = "batch-skin"
local DEALER = "9b3d5e11-demo-dealer"

local lines_of, write_file = run.lines, run.write_file

describe("kpayment offers --batch", function()
  local ctx = run.mock_for(USER, PASSWORD, SKIN)
  setup(ctx.start)
  teardown(ctx.stop)

  -- The batch `text` as ndjson: status, the decoded lines by input line, stderr.
  local function batch(text, ...)
    local path = write_file(text)
    local args = { "offers", "--batch", path, "--format", "ndjson", "--retries", "0" }
    for _, word in ipairs({ ... }) do args[#args + 1] = word end
    local r = run.run(args, { env = ctx.env })
    os.remove(path)
    local by_line = {}
    for _, line in ipairs(lines_of(r.out)) do
      local doc = kpayment.decode(line)
      by_line[doc.line] = doc
    end
    return r, by_line
  end

  local function count(t)
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    return n
  end

  describe("reads CSV", function()
    it("drops a UTF-8 BOM, and skips the customer,dealer header after it", function()
      local r, docs = batch("\239\187\191customer,dealer\nc-one," .. DEALER .. "\n")
      assert.equal(0, r.status, r.err)
      assert.equal(1, count(docs))
      assert.equal("c-one", docs[2].customerUUID)
      r, docs = batch("\239\187\191c-one," .. DEALER .. "\n")
      assert.equal(0, r.status, r.err)
      assert.equal("c-one", docs[1].customerUUID)
    end)

    it("skips a header in any case, and reads CRLF lines", function()
      for _, header in ipairs({ "Customer,Dealer", "CUSTOMERUUID,DEALERUUID", "customer" }) do
        local r, docs = batch(header .. "\r\nc-one," .. DEALER .. "\r\n\r\nc-two," .. DEALER .. "\r\n")
        assert.equal(0, r.status, r.err)
        assert.equal(2, count(docs))
        assert.equal("c-one", docs[2].customerUUID)
        assert.equal(DEALER, docs[2].dealerUUID)
        assert.equal("c-two", docs[4].customerUUID)
      end
    end)

    it("unescapes quoted fields: commas and doubled quotes", function()
      local text = '"c4,q",' .. DEALER .. '\n"c5""x", "' .. DEALER .. '"\n  "c6"  \n'
      local r, docs = batch(text, "--dealer", "d6")
      assert.equal(0, r.status, r.err)
      assert.equal("c4,q", docs[1].customerUUID)
      assert.equal('c5"x', docs[2].customerUUID)
      assert.equal(DEALER, docs[2].dealerUUID)
      assert.equal("c6", docs[3].customerUUID)
      assert.equal("d6", docs[3].dealerUUID)
      -- as sent: the mock echoes the customer it was asked for
      assert.equal("c4,q", docs[1].financeOffers[1].customerUUID)
      assert.equal('c5"x', docs[2].financeOffers[1].customerUUID)
    end)

    it("takes --dealer for an empty dealer field (c1, as spreadsheets export), not for an empty customer",
      function()
        local text = 'c-one,\n"c-two",""\nc-three, \nc-four,' .. DEALER .. "\n"
        local r, docs = batch(text, "--dealer", "d-flag")
        assert.equal(0, r.status, r.err)
        assert.equal(4, count(docs))
        assert.equal("d-flag", docs[1].dealerUUID)
        assert.equal("d-flag", docs[2].dealerUUID)
        assert.equal("d-flag", docs[3].dealerUUID)
        assert.equal(DEALER, docs[4].dealerUUID)
        r = batch("c-one,\n")
        assert.equal(2, r.status, r.err)
        assert.matches(":1: expected customer,dealer %(no dealer, and no %-%-dealer%)", r.err)
        r = batch("," .. DEALER .. "\n", "--dealer", "d-flag")
        assert.equal(2, r.status, r.err)
        assert.matches(":1: expected customer,dealer %(no customer%)", r.err)
      end)

    local refused = {
      { "c-one," .. DEALER .. '\n"c-two\nsecond",' .. DEALER .. "\n",
        ":2: a quoted field runs past its line" },
      { "c-one," .. DEALER .. "\nc-\255two," .. DEALER .. "\n", ":2: invalid UTF%-8 in the customer" },
      { "c-one,d-\192\128\n", ":1: invalid UTF%-8 in the dealer" },
      { '"c-one"x,' .. DEALER .. "\n", ":1: text after the closing quote" },
      { 'c-"one",' .. DEALER .. "\n", ":1: a quote inside an unquoted field" },
      { '"c-one,' .. DEALER .. "\n", ":1: a quoted field runs past its line" },
      { "c-one," .. DEALER .. ",x\n", ":1: expected customer,dealer %(3 fields%)" },
      { "\n# only a comment\n", ": no customer,dealer lines" },
    }
    it("says why it cannot read the batch, not that it is empty", function()
      local r = run.run({ "offers", "--batch", "/tmp", "--format", "ndjson" }, { env = ctx.env })
      assert.equal(2, r.status, r.err)
      assert.equal("", r.out)
      assert.matches("^kpayment offers: cannot read %-%-batch file /tmp: .*[Dd]irectory", r.err)
    end)

    for _, case in ipairs(refused) do
      it("refuses, naming the line: " .. case[2], function()
        local path = write_file(case[1])
        local r = run.run({ "offers", "--batch", path, "--format", "ndjson" }, { env = ctx.env })
        assert.equal(2, r.status, r.err)
        assert.equal("", r.out)
        assert.matches("^kpayment offers: " .. path:gsub("%p", "%%%0") .. case[2], r.err)
        assert.is_truthy(r.err:find("^[^\n]*\n$"), r.err)
        r = run.run({ "offers", "--batch", "-", "--format", "ndjson" }, { env = ctx.env, stdin = path })
        os.remove(path)
        assert.equal(2, r.status, r.err)
        assert.matches("^kpayment offers: standard input" .. case[2], r.err)
      end)
    end

    it("never writes invalid JSON: a field the library refuses is a usage error", function()
      local path = write_file('c-one,' .. DEALER .. '\n"c\ttab",' .. DEALER .. "\n")
      local r = run.run({ "offers", "--batch", path, "--format", "ndjson" }, { env = ctx.env })
      os.remove(path)
      assert.equal(2, r.status, r.err)
      assert.equal("", r.out)
      assert.matches(":2: bad customer %(contains control characters%)", r.err)
    end)
  end)

  describe("exit status", function()
    it("follows the error's kind, never its message", function()
      local cases = { network = 3, timeout = 3, tls = 3, http = 1, decode = 1, body_too_large = 1 }
      for kind, status in pairs(cases) do
        assert.equal(status, cli.status_of({ kind = kind, message = "timeout network tls" }), kind)
        assert.equal(status, cli.status_of({ kind = kind, message = "HTTP 500 decode" }), kind)
      end
      assert.equal(0, cli.EXIT.ok)
      assert.equal(2, cli.EXIT.usage)
      assert.equal(130, cli.EXIT.interrupted)
    end)

    it("is 1 for an answer that is not offers, 3 for none, one customer at a time", function()
      local cases = { { "mock:badjson", 1, "decode" }, { "mock:error500", 1, "http" },
                      { "mock:stall:3", 3, "timeout" }, { "mock:close", 3, "network" } }
      for _, case in ipairs(cases) do
        local r = run.run({ "offers", "--customer", case[1], "--dealer", DEALER, "--retries", "0",
                            "--timeout", "0.5", "--json" }, { env = ctx.env })
        assert.equal(case[2], r.status, case[1] .. ": " .. r.err)
        assert.equal(case[3], kpayment.decode(r.out).error.kind)
      end
    end)

    it("of a batch is the worst: 3 if any customer got no answer, else 1 if any failed", function()
      local ok = "c-one," .. DEALER .. "\n"
      local cases = {
        { ok .. "c-two," .. DEALER .. "\n", 0 },
        { ok .. "mock:badjson," .. DEALER .. "\n", 1 },
        { ok .. "mock:error500," .. DEALER .. "\nmock:badjson," .. DEALER .. "\n", 1 },
        { "mock:stall:3," .. DEALER .. "\n" .. ok, 3 },
        { "mock:error500," .. DEALER .. "\nmock:close," .. DEALER .. "\n" .. ok, 3 },
        { "mock:stall:3," .. DEALER .. "\nmock:error500," .. DEALER .. "\n", 3 },
      }
      for _, case in ipairs(cases) do
        local r = batch(case[1], "--timeout", "0.5")
        assert.equal(case[2], r.status, case[1] .. r.err)
      end
    end)
  end)

  describe("streams", function()
    it("20 000 customers in little memory #slow", function()
      local path = os.tmpname()
      local f = assert(io.open(path, "wb"))
      for i = 1, 20000 do f:write("mock:offers:1,d-", i, "\n") end
      f:close()
      local out = os.tmpname()
      local e = {}
      for k, v in pairs(ctx.env) do e[k] = v end
      -- the sanitizers' runtime (make test-asan) would be measured too
      local r = run.measure({ "offers", "--batch", path, "--format", "csv", "--fields", "id",
                              "--concurrency", "16" }, { env = e, out_path = out, unset = { "LD_PRELOAD" } })
      os.remove(path)
      local rows, seen, missing = 0, {}, 0
      for line in io.lines(out) do
        rows = rows + 1
        local n = tonumber((line:match("^(%d+),mock:offers:1,d%-%d+,")))
        if n then seen[n] = true end
      end
      os.remove(out)
      for i = 1, 20000 do if not seen[i] then missing = missing + 1 end end
      print(string.format("\n  20 000 customers as csv: max RSS %.1f MB, %.1f s",
        (r.rss_kb or 0) / 1024, r.seconds))
      assert.equal(0, r.status, r.err)
      assert.equal(20001, rows)
      assert.equal(0, missing)
      assert.is_true(r.rss_kb ~= nil and r.rss_kb > 0, "no RSS measured")
      assert.is_true(r.rss_kb < 64 * 1024, string.format("max RSS %.1f MB", r.rss_kb / 1024))
    end)

    it("on Ctrl-C: exit 130 within a second, what finished written, one line on stderr", function()
      local lines = { "c-one", "c-two", "c-three" }
      for _ = 1, 5 do lines[#lines + 1] = "mock:stall:5" end
      local path = write_file(table.concat(lines, "\n") .. "\n")
      local b = run.start({ "offers", "--batch", path, "--dealer", DEALER, "--format", "csv",
                            "--concurrency", "8" }, { env = ctx.env })
      local written
      for _ = 1, 500 do
        written = lines_of(b.out())
        if #written >= 1 + 3 * 3 then break end
        socket.sleep(0.01)
      end
      assert.equal(10, #written, "the fast customers' rows were not written: " .. b.err())
      socket.sleep(0.2)
      local t0 = socket.gettime()
      os.execute("kill -INT " .. b.pid)
      local status = b.wait(5)
      local took = socket.gettime() - t0
      local out, err = b.out(), b.err()
      b.cleanup()
      os.remove(path)
      assert.equal(130, status, err)
      assert.is_true(took < 1.5, string.format("%.2f s after the signal", took))
      assert.equal(10, #lines_of(out))
      assert.is_truthy(err:find("^[^\n]*\n$"), "one line on stderr: " .. err)
      assert.matches("^kpayment offers: interrupted", err)
      assert.is_falsy(err:find("interrupted!", 1, true), err)
    end)

    -- Ctrl-C while a customer's 8 MB line is being written into a pipe
    -- that nobody reads yet: the interrupt lands as that write returns.
    it("on Ctrl-C: the count of customers finished is the lines written, even as one is written",
      function()
        local path = write_file("c-one\nmock:big:8000000\nmock:stall:10\n")
        local out, pidfile, statusfile, go = os.tmpname(), os.tmpname(), os.tmpname(), os.tmpname()
        local err = os.tmpname()
        os.remove(statusfile)
        os.remove(go)
        local command = run.command({ "offers", "--batch", path, "--dealer", DEALER, "--format", "ndjson",
                                      "--concurrency", "1" }, { env = ctx.env })
        local q = server.shell_quote
        local script = string.format(
          "(%s </dev/null 2>%s & echo $! >%s; wait $!; echo $? >%s) | "
            .. "(while [ ! -e %s ]; do sleep 0.05; done; cat >%s) &",
          command, q(err), q(pidfile), q(statusfile), q(go), q(out))
        assert(os.execute("sh -c " .. q(script) .. " >/dev/null 2>&1"))
        local pid, blocked
        for _ = 1, 1000 do
          pid = pid or tonumber(server.read_file(pidfile):match("^(%d+)"))
          -- blocked writing the big line into the full pipe
          blocked = pid and server.read_file("/proc/" .. pid .. "/wchan"):find("pipe_write", 1, true)
          if blocked then break end
          socket.sleep(0.02)
        end
        assert.is_truthy(blocked, "the command never blocked writing: " .. server.read_file(err))
        os.execute("kill -INT " .. pid)
        socket.sleep(0.3)
        assert(os.rename(write_file(""), go))   -- the reader starts
        local status
        for _ = 1, 500 do
          status = tonumber(server.read_file(statusfile):match("^(%d+)"))
          if status then break end
          socket.sleep(0.02)
        end
        socket.sleep(0.2)
        local text, written = server.read_file(err), #lines_of(server.read_file(out))
        for _, f in ipairs({ path, out, pidfile, statusfile, go, err }) do os.remove(f) end
        assert.equal(130, status, text)
        assert.equal(2, written)
        local finished = tonumber(text:match("^kpayment offers: interrupted: (%d+) of 3 customers finished"))
        assert.is_truthy(finished, text)
        if text:find("perhaps the next one's", 1, true) then
          -- LuaJIT: one hook for every coroutine, so Ctrl-C may land inside a turn
          assert.is_truthy(rawget(_G, "jit"), "in doubt under " .. _VERSION .. ": " .. text)
          assert.is_true(written == finished or written == finished + 1, text)
        else
          assert.equal(written, finished, text)
        end
      end)

    it("on Ctrl-C with a buffered format: exit 130, nothing half written", function()
      local path = write_file("c-one\nmock:stall:5\n")
      local b = run.start({ "offers", "--batch", path, "--dealer", DEALER, "--json" }, { env = ctx.env })
      socket.sleep(0.5)
      local t0 = socket.gettime()
      os.execute("kill -INT " .. b.pid)
      local status = b.wait(5)
      local took = socket.gettime() - t0
      local out, err = b.out(), b.err()
      b.cleanup()
      os.remove(path)
      assert.equal(130, status, err)
      assert.is_true(took < 1.5, string.format("%.2f s after the signal", took))
      assert.equal("", out)
      assert.matches("^kpayment offers: interrupted", err)
    end)
  end)
end)
