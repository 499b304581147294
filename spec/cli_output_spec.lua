-- kpayment offers when what it writes goes wrong: standard output full,
-- closed, or a pipe whose reader left; and a server whose text would
-- reach the terminal raw (its request id, an offer's status in the
-- --verbose log), or whose integers go beyond int64.

local run = require("support.cli_run")
local server = require("support.server")
local cli_server = require("support.cli_server")
local version = require("support.version")

local USER, PASSWORD = "out-user", "out-s3cret-password"
local SKIN = "out-skin"
local CUSTOMER, DEALER = "4f1c2a7e-demo-customer", "9b3d5e11-demo-dealer"
local FORMATS = { "table", "json", "ndjson", "csv", "tsv" }

local lines_of, write_file, shell_quote = run.lines, run.write_file, server.shell_quote

-- Run with `args`, standard output sent where `redirect` says (">/dev/full",
-- ">&-"); returns { status, err }.
local function run_to(redirect, args, env)
  local err = os.tmpname()
  local p = assert(io.popen(string.format("%s </dev/null %s 2>%s; echo $?", run.command(args, { env = env }),
    redirect, shell_quote(err))))
  local status = tonumber(p:read("*a"):match("(%d+)%s*$"))
  p:close()
  local r = { status = status, err = server.read_file(err) }
  os.remove(err)
  return r
end

local function assert_unwritable(r, what)
  assert.equal(4, r.status, what .. ": " .. r.err)
  assert.matches("^kpayment: cannot write output: [^\n]+\n$", r.err, 1, what)
end

local function valid_utf8(s)
  return require("kpayment.json").valid_utf8(s) == s
end

describe("kpayment when standard output cannot be written", function()
  local ctx = run.mock_for(USER, PASSWORD, SKIN)
  setup(ctx.start)
  teardown(ctx.stop)

  local function requests()
    return ctx.mock.stats().requests
  end

  it("a full disk: exit 4 and one line on stderr, in every format", function()
    for _, format in ipairs(FORMATS) do
      local r = run_to(">/dev/full", { "offers", "--customer", CUSTOMER, "--dealer", DEALER,
                                       "--format", format }, ctx.env)
      assert_unwritable(r, format)
      assert.matches("No space left on device", r.err)
    end
  end)

  it("closed standard output: exit 4 before any request is sent", function()
    local before = requests()
    for _, format in ipairs(FORMATS) do
      local r = run_to(">&-", { "offers", "--customer", CUSTOMER, "--dealer", DEALER, "--format", format },
        ctx.env)
      assert_unwritable(r, format)
    end
    assert.equal(before, requests())
  end)

  it("a batch stops starting requests at the first failed write, and says no summary", function()
    local pairs_csv = {}
    for i = 1, 50 do pairs_csv[i] = "c-" .. i .. "," .. DEALER end
    local path = write_file(table.concat(pairs_csv, "\n") .. "\n")
    for _, format in ipairs({ "ndjson", "csv", "json", "table" }) do
      local before = requests()
      local r = run_to(">/dev/full", { "offers", "--batch", path, "--format", format, "--concurrency", "2" },
        ctx.env)
      assert_unwritable(r, format)
      assert.is_falsy(r.err:find(" ok", 1, true), r.err)
      if format == "ndjson" or format == "csv" then
        -- the first customer's line fails: those in flight then, no more
        assert.is_true(requests() - before <= 3, format .. ": " .. (requests() - before) .. " requests")
      end
    end
    os.remove(path)
  end)

  it("--help, --version, completion and doctor too", function()
    local cases = { { "--help" }, { "-V" }, { "offers", "--help" }, { "completion", "bash" }, { "doctor" } }
    for _, args in ipairs(cases) do
      for _, redirect in ipairs({ ">/dev/full", ">&-" }) do
        assert_unwritable(run_to(redirect, args, ctx.env), table.concat(args, " ") .. " " .. redirect)
      end
    end
  end)

  -- The batch's ndjson into a pipe whose reader leaves after a byte, SIGPIPE
  -- as `signal` says (env's --default-signal or --ignore-signal): the
  -- command's status and stderr.
  local function into_closed_pipe(signal)
    local pairs_csv = {}
    for i = 1, 50 do pairs_csv[i] = "c-" .. i .. "," .. DEALER end
    local path = write_file(table.concat(pairs_csv, "\n") .. "\n")
    local err = os.tmpname()
    local command = run.command({ "offers", "--batch", path, "--format", "ndjson", "--concurrency", "1" },
      { env = ctx.env })
    local p = assert(io.popen("bash -c " .. shell_quote(string.format(
      "env %s=PIPE %s </dev/null 2>%s | head -c 1 >/dev/null; echo ${PIPESTATUS[0]}", signal, command,
      shell_quote(err)))))
    local status = tonumber(p:read("*a"):match("(%d+)%s*$"))
    p:close()
    local text = server.read_file(err)
    os.remove(err)
    os.remove(path)
    return status, text
  end

  it("a pipe whose reader left: killed by SIGPIPE (141), nothing on stderr", function()
    local status, err = into_closed_pipe("--default-signal")
    assert.equal(141, status, err)
    assert.equal("", err)
  end)

  it("a pipe whose reader left, SIGPIPE ignored: exit 4, 'Broken pipe' on stderr", function()
    local status, err = into_closed_pipe("--ignore-signal")
    assert_unwritable({ status = status, err = err }, "SIGPIPE ignored")
    assert.matches("Broken pipe", err)
  end)
end)

describe("kpayment shows a server's text cleaned", function()
  local s
  setup(function() s = cli_server.start() end)
  teardown(function() s.stop() end)

  local env = function() return { KPAYMENT_BASE_URL = s.url, KPAYMENT_SKIN = SKIN } end

  it("the table footer's request id: no control character, valid UTF-8", function()
    local r = run.run({ "offers", "--customer", "forged", "--dealer", DEALER }, { env = env() })
    assert.equal(0, r.status, r.err)
    assert.is_truthy(r.err:find("^[^\n]*\n$"), "one line on stderr: " .. r.err)
    assert.equal("1 offer, 1 active", r.err:match("^(.-) %("))
    assert.is_falsy(r.err:sub(1, -2):find("[%c\127]"), "a control character: " .. r.err)
    assert.is_true(valid_utf8(r.err), "invalid UTF-8: " .. r.err)
    assert.is_truthy(r.err:find("request id-\239\191\189\239\191\189 [2J ]0;title end,", 1, true), r.err)
  end)

  it("--verbose: each log record is one line, control characters a space, bad bytes U+FFFD", function()
    local r = run.run({ "offers", "--customer", "forged", "--dealer", DEALER, "--verbose" }, { env = env() })
    assert.equal(0, r.status, r.err)
    local lines = lines_of(r.err)
    assert.is_true(#lines >= 3, r.err)
    for i, line in ipairs(lines) do
      assert.is_falsy(line:find("[%c\127]"), "a control character: " .. line)
      assert.is_true(valid_utf8(line), "invalid UTF-8: " .. line)
      assert.is_falsy(line:find("^kpayment offers: forged"), "a forged line: " .. line)
      if i < #lines then assert.matches("^kpayment %[debug%] ", line) end
    end
    assert.is_truthy(r.err:find("#1 OK kpayment offers: forged line [2J customer=", 1, true), r.err)
  end)

  -- The big-ints offer written in `format`, the command's success checked:
  -- a function that finds a text in its output.
  local function big_ints(format)
    local r = run.run({ "offers", "--customer", "big-ints", "--dealer", DEALER, "--format", format },
      { env = env() })
    assert.equal(0, r.status, r.err)
    return function(text) assert.is_truthy(r.out:find(text, 1, true), r.out) end
  end

  it("writes integers beyond int64 as docs/command.md says, under this Lua", function()
    local has = big_ints("ndjson")
    -- within int64, exact under every Lua
    has('"version":9223372036854775807')
    has('"financeOfferId":9007199254740993')
    -- the decoder's string of digits, written as the number for the
    -- reference's integer fields, as a string for others
    has('"id":12345678901234567890')
    has('"lenderID":-9223372036854775809')
    -- above 2^53 within int64: an integer on 5.3+, the digits before
    has(version.int64 and '"odometer":9007199254740993' or '"odometer":"9007199254740993"')
  end)

  it("writes the id cell of csv with the digits JSON has, beyond int64 too", function()
    big_ints("csv")(",12345678901234567890,")
  end)
end)
