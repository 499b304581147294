-- The kpayment command's options: what kpayment.new refuses comes back
-- naming the command's flag; repeated options; -V, --verbose and bash
-- completion; and secrets that stay out of what it writes.

local support = require("support.mock")
local hostile = require("support.hostile")
local core = require("kpayment.core")
local run = require("support.cli_run")

local USER, PASSWORD = "opt-user", "opt-s3cret-password"
local SKIN = "opt-skin"
local CUSTOMER, DEALER = "4f1c2a7e-demo-customer", "9b3d5e11-demo-dealer"

local lines_of = run.lines

local function one(...)
  local args = { "offers", "--customer", CUSTOMER, "--dealer", DEALER }
  for _, word in ipairs({ ... }) do args[#args + 1] = word end
  return args
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function assert_usage(r, pattern, command)
  assert.equal(2, r.status, r.err)
  assert.equal("", r.out)
  assert.is_truthy(r.err:find("^[^\n]+\n$"), "one line on stderr: " .. r.err)
  assert.matches("^kpayment " .. (command or "offers") .. ": ", r.err)
  assert.matches(pattern, r.err)
end

describe("kpayment command options", function()
  local ctx = run.mock_for(USER, PASSWORD, SKIN)
  setup(ctx.start)
  teardown(ctx.stop)

  describe("what kpayment.new refuses", function()
    -- flag, value, what kpayment.new says about it
    local cases = {
      { "--timeout", "100000", "bad option %-%-timeout %(seconds from 0 to 86400 expected%)" },
      { "--timeout", "-5", "bad option %-%-timeout %(seconds from 0 to 86400 expected%)" },
      { "--retries", "101", "bad option %-%-retries %(an integer from 0 to 100 expected%)" },
      { "--retries", "-1", "bad option %-%-retries %(an integer from 0 to 100 expected%)" },
      { "--retries", "2.5", "bad option %-%-retries %(an integer from 0 to 100 expected%)" },
      { "--base-url", "ftp://x", "bad option %-%-base%-url %(scheme 'ftp' is not http or https%)" },
      { "--skin", "a\1b", "bad option %-%-skin %(contains control characters%)" },
      { "--locale", "a\1b", "bad option %-%-locale %(contains control characters%)" },
      { "--ca-file", "a\1b", "bad option %-%-ca%-file %(contains control characters%)" },
      { "--user", "", "bad option %-%-user %(empty%)" },
      -- before any request: not a tls error of every customer of a batch
      { "--ca-file", "/nonexistent/ca.pem",
        "bad option %-%-ca%-file %(cannot read /nonexistent/ca%.pem: No such file or directory%)" },
    }
    for _, case in ipairs(cases) do
      it("is a usage error naming the flag: " .. case[1] .. " " .. case[2]:gsub("%c", "?"), function()
        local r = run.run(one(case[1], case[2]), { env = ctx.env })
        assert_usage(r, case[3])
        assert.is_falsy(r.err:find("'" .. case[1]:sub(3):gsub("%-", "_") .. "'", 1, true), r.err)
      end)
    end

    it("names --user for a bad user name, in doctor too", function()
      local r = run.run(one("--user", "a\1b"), { env = ctx.env })
      assert_usage(r, "bad option %-%-user %(contains control characters%)")
      r = run.run({ "doctor", "--user", "a\1b" }, { env = ctx.env })
      assert_usage(r, "bad option %-%-user %(contains control characters%)", "doctor")
      r = run.run({ "doctor", "--timeout", "-1" }, { env = ctx.env })
      assert_usage(r, "bad option %-%-timeout", "doctor")
    end)

    it("says what kpayment.new says of credentials that do not go together", function()
      local r = run.run(one(), { env = ctx.with({ KPAYMENT_PASSWORD = "" }) })
      -- the shell's names for them: the flag or the variable each came from
      assert_usage(r, "KPAYMENT_USERNAME and KPAYMENT_PASSWORD go together")
      r = run.run(one(), { env = ctx.with({ KPAYMENT_USERNAME = "", KPAYMENT_PASSWORD = "",
        KPAYMENT_CLIENT_ID = "opt-client", KPAYMENT_TOKEN_URL = "http://127.0.0.1:9/t" }) })
      assert_usage(r, "KPAYMENT_CLIENT_ID and KPAYMENT_CLIENT_SECRET go together")
      r = run.run(one(), { env = ctx.with({ KPAYMENT_BEARER_TOKEN = "a-bearer-token" }) })
      assert_usage(r, "give one kind of credentials: username/password, bearer_token, or "
        .. "client_id/client_secret %(OAuth2%)")
    end)

    it("says what the library says of a missing skin, naming --skin", function()
      local r = run.run(one(), { env = ctx.with({ KPAYMENT_SKIN = "" }) })
      assert_usage(r, "bad parameter %-%-skin %(no value: pass %-%-skin or set KPAYMENT_SKIN%)")
      -- the library's advice to a Lua caller is not the shell's
      assert.is_falsy(r.err:find("kpayment.new", 1, true), r.err)
      local path = run.write_file("c-one," .. DEALER .. "\n")
      ctx.mock.reset()
      r = run.run({ "offers", "--batch", path, "--format", "csv" },
                  { env = ctx.with({ KPAYMENT_SKIN = "" }) })
      os.remove(path)
      assert_usage(r, "bad parameter %-%-skin")
      assert.equal(0, ctx.mock.stats().requests)
    end)

    it("names KPAYMENT_TOKEN_URL, not kpayment.new's option, for client credentials without one", function()
      local r = run.run(one(), { env = ctx.with({ KPAYMENT_USERNAME = "", KPAYMENT_PASSWORD = "",
        KPAYMENT_CLIENT_ID = "opt-client", KPAYMENT_CLIENT_SECRET = "opt-secret" }),
        unset = { "KPAYMENT_TOKEN_URL" } })
      assert_usage(r, "client credentials need KPAYMENT_TOKEN_URL: the token endpoint's URL")
      assert.is_falsy(r.err:find("token_url", 1, true), r.err)
    end)

    it("is not checked by the command a second time", function()
      for _, file in ipairs({ "init", "offers", "doctor", "client" }) do
        local f = io.open("cli/kpayment/cli/" .. file .. ".lua", "rb")
        if f then
          local src = f:read("*a")
          f:close()
          for _, copy in ipairs({ "0 to 100", "go together", "not both", "no skin", "86400" }) do
            assert.is_falsy(src:find(copy, 1, true), file .. ".lua holds '" .. copy .. "'")
          end
        end
      end
    end)
  end)

  describe("the command line", function()
    it("refuses an option given twice, naming it", function()
      local r = run.run(one("--customer", "another"), { env = ctx.env })
      assert_usage(r, "option %-%-customer given twice")
      r = run.run(one("--json", "--json"), { env = ctx.env })
      assert_usage(r, "option %-%-json given twice")
      r = run.run({ "doctor", "--timeout", "1", "--timeout=2" }, { env = ctx.env })
      assert_usage(r, "option %-%-timeout given twice", "doctor")
    end)

    it("-V is --version", function()
      local a, b = run.run({ "-V" }), run.run({ "--version" })
      assert.equal(0, a.status)
      assert.equal(b.out, a.out)
      assert.matches("^kpayment " .. core._VERSION:gsub("%p", "%%%0") .. " ", a.out)
    end)

    it("--verbose logs each request and response on stderr, stdout unchanged", function()
      local plain = run.run(one("--format", "csv"), { env = ctx.env })
      local r = run.run(one("--format", "csv", "--verbose"), { env = ctx.env })
      assert.equal(0, r.status, r.err)
      assert.equal((plain.out:gsub("mock%-%d+", "")), (r.out:gsub("mock%-%d+", "")))
      local customer = CUSTOMER:gsub("%p", "%%%0")
      assert.matches("kpayment %[debug%] GET http://127%.0%.0%.1:%d+/[^\n]*customerUUID=" .. customer
        .. "[^\n]*%(attempt 1%) Authorization: %[redacted%]\n", r.err)
      assert.matches("kpayment %[debug%] 200 in [%d.]+ ms, 3 offer%(s%)", r.err)
      assert.is_falsy(r.err:find(PASSWORD, 1, true))
      local d = run.run({ "doctor", "--verbose" }, { env = ctx.env })
      assert.equal(0, d.status, d.out .. d.err)
      assert.matches("kpayment %[debug%] GET ", d.err)
    end)
  end)

  describe("kpayment completion bash", function()
    local script

    setup(function()
      local r = run.run({ "completion", "bash" })
      assert.equal(0, r.status, r.err)
      script = os.tmpname()
      local f = assert(io.open(script, "wb"))
      f:write(r.out)
      f:close()
    end)

    teardown(function()
      os.remove(script)
    end)

    -- What bash completes for the words typed so far (the last is the
    -- word being completed), sorted.
    local function complete(...)
      local words = { "kpayment", ... }
      local quoted = {}
      for i, w in ipairs(words) do quoted[i] = "'" .. w:gsub("'", "'\\''") .. "'" end
      local body = table.concat({
        "source " .. script,
        "COMP_WORDS=(" .. table.concat(quoted, " ") .. ")",
        "COMP_CWORD=" .. (#words - 1),
        "COMP_LINE=\"${COMP_WORDS[*]}\"",
        "COMP_POINT=${#COMP_LINE}",
        "complete -p kpayment >/dev/null || exit 9",
        "_kpayment kpayment \"${COMP_WORDS[COMP_CWORD]}\" \"${COMP_WORDS[COMP_CWORD-1]}\"",
        "printf '%s\\n' \"${COMPREPLY[@]}\"",
      }, "\n")
      local path = os.tmpname()
      local f = assert(io.open(path, "wb"))
      f:write(body)
      f:close()
      local p = assert(io.popen("cd /tmp && bash --norc --noprofile " .. path .. " 2>&1"))
      local out = p:read("*a")
      p:close()
      os.remove(path)
      local found = {}
      for _, w in ipairs(lines_of(out)) do
        if w ~= "" then found[#found + 1] = w end
      end
      table.sort(found)
      return found
    end

    it("prints a script that registers _kpayment for kpayment", function()
      local text = read(script)
      assert.matches("^# bash completion for kpayment", text)
      assert.matches("\ncomplete %-F _kpayment kpayment\n", text)
    end)

    it("completes the commands", function()
      assert.same({ "completion", "doctor", "help", "mock", "offers" }, complete(""))
      assert.same({ "offers" }, complete("of"))
      assert.same({ "--help", "--version" }, complete("--"))
    end)

    it("completes each command's own options", function()
      local offers = complete("offers", "--")
      for _, o in ipairs({ "--customer", "--dealer", "--batch", "--format", "--json", "--verbose",
                           "--concurrency", "--fields", "--help" }) do
        assert.is_truthy(table.concat(offers, " "):find(o, 1, true), o)
      end
      local doctor = complete("doctor", "--")
      assert.is_falsy(table.concat(doctor, " "):find("--batch", 1, true))
      assert.is_truthy(table.concat(doctor, " "):find("--verbose", 1, true))
      assert.same({ "--customer" }, complete("offers", "--cus"))
      assert.same({ "--port" }, complete("mock", "--po"))
    end)

    it("completes --format's values, and nothing after an option that takes one", function()
      assert.same({ "csv", "json", "ndjson", "table", "tsv" }, complete("offers", "--format", ""))
      assert.same({ "ndjson" }, complete("offers", "--batch", "x", "--format", "nd"))
      assert.same({}, complete("offers", "--customer", ""))
      assert.same({ "bash" }, complete("completion", ""))
    end)

    it("refuses a shell it does not know", function()
      local r = run.run({ "completion", "fish" })
      assert_usage(r, "bash", "completion")
    end)
  end)
end)

describe("kpayment command secrets", function()
  -- URL-special characters, a space and UTF-8: every encoded form differs
  local SPECIAL = "p&ss=w#rd/+%?x é"
  local PROXY_PASSWORD = "p@ss:w@rd99"
  local m, h

  setup(function()
    m = support.start({ "--user", USER, "--password", SPECIAL })
    h = hostile.start()
  end)

  teardown(function()
    m.stop()
    h.stop()
  end)

  -- Every form of `secret` that may show: as is, percent-encoded
  -- (either case), form-encoded, and the Basic value with USER.
  local function forms(secret)
    local upper = secret:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end)
    local lower = secret:gsub("[^%w%-%._~]", function(c) return string.format("%%%02x", c:byte()) end)
    local plus = secret:gsub("[^%w%-%._~ ]", function(c) return string.format("%%%02X", c:byte()) end)
      :gsub(" ", "+")
    return { secret, upper, lower, plus, core.base64(USER .. ":" .. secret) }
  end

  local function assert_clean(text, secret)
    for _, form in ipairs(forms(secret)) do
      assert.is_falsy(text:find(form, 1, true), "found " .. form .. " in:\n" .. text)
    end
  end

  it("a password used as a customer id shows nowhere with --verbose", function()
    local env = { KPAYMENT_BASE_URL = m.url, KPAYMENT_USERNAME = USER, KPAYMENT_PASSWORD = SPECIAL,
                  KPAYMENT_SKIN = SKIN }
    local r = run.run({ "offers", "--customer", SPECIAL, "--dealer", DEALER, "--verbose" }, { env = env })
    assert.equal(0, r.status, r.err)
    assert.matches("%[debug%] GET .*customerUUID=%[redacted%]", r.err)
    assert_clean(r.out .. r.err, SPECIAL)
    -- a server that echoes the customer id and the request target in its
    -- error (ndjson, csv and tsv have the customer id as it was given in a
    -- column of their own)
    env.KPAYMENT_BASE_URL = h.url
    for _, format in ipairs({ "table", "json" }) do
      r = run.run({ "offers", "--customer", SPECIAL, "--dealer", "echo-query", "--verbose",
                    "--format", format }, { env = env })
      assert.equal(1, r.status, r.err)
      assert.matches("no customer %[redacted%]", r.out .. r.err)
      assert_clean(r.out .. r.err, SPECIAL)
    end
  end)

  it("a proxy password holding a raw @ shows nowhere, in offers and doctor", function()
    local proxy = "http://u:" .. PROXY_PASSWORD .. "@127.0.0.1:9"
    local env = { KPAYMENT_BASE_URL = m.url, KPAYMENT_USERNAME = USER, KPAYMENT_PASSWORD = SPECIAL,
                  KPAYMENT_SKIN = SKIN, http_proxy = proxy, HTTPS_PROXY = proxy }
    local outputs = {}
    for _, args in ipairs({ { "offers", "--customer", CUSTOMER, "--dealer", DEALER, "--retries", "0" },
                            { "offers", "--customer", CUSTOMER, "--dealer", DEALER, "--verbose", "--json",
                              "--retries", "0" },
                            { "doctor" }, { "doctor", "--verbose" } }) do
      local r = run.run(args, { env = env })
      assert.equal(3, r.status, r.out .. r.err)
      outputs[#outputs + 1] = r.out .. r.err
    end
    local all = table.concat(outputs, "\n")
    for _, piece in ipairs({ PROXY_PASSWORD, "ss:w@rd", "w@rd99", "u:p@ss" }) do
      assert.is_falsy(all:find(piece, 1, true), "found " .. piece .. " in:\n" .. all)
    end
    assert_clean(all, SPECIAL)
    assert.is_truthy(all:find("[redacted]", 1, true))
  end)
end)
