-- kpayment doctor: what the library knows (kpayment.info(),
-- client:settings()) and one real call as its hooks saw it; the exit
-- status by the error's kind.

local kpayment = require("kpayment")
local server = require("support.server")
local run = require("support.cli_run")

local unpack = table.unpack or unpack

local USER, PASSWORD = "doc-user", "doc-s3cret-password"
local SKIN = "doc-skin"

local function escape(s)
  return (s:gsub("%p", "%%%0"))
end

describe("kpayment doctor", function()
  local ctx = run.mock_for(USER, PASSWORD, SKIN)
  setup(ctx.start)
  teardown(ctx.stop)

  it("reports kpayment.info(), the client's settings and where each comes from, and one call", function()
    local proxy = "http://proxy-user:pr0xy-s3cret@127.0.0.1:9"
    local r = run.run({ "doctor", "--timeout", "7" },
      { env = ctx.with({ http_proxy = proxy, no_proxy = "127.0.0.1", KPAYMENT_LOCALE = "fr-CA" }) })
    assert.equal(0, r.status, r.out .. r.err)
    assert.equal("", r.err)
    local info = kpayment.info()
    assert.matches("\n  kpayment +" .. escape(info.kpayment) .. "\n", r.out)
    assert.matches("\n  libcurl +" .. escape(info.curl) .. "\n", r.out)
    assert.matches("\n  TLS library +" .. escape(info.ssl) .. "\n", r.out)
    assert.matches("\n  HTTP/2 +" .. (info.http2 and "yes" or "no") .. "\n", r.out)
    assert.matches("\n  compression +" .. escape(table.concat(info.compression, ", ")) .. "\n", r.out)
    if info.ca_file then assert.matches("\n  CA file +" .. escape(info.ca_file) .. "\n", r.out) end
    -- the proxy variables as the library masks them
    assert.matches("http_proxy=http://%[redacted%]@127%.0%.0%.1:9\n", r.out)
    assert.matches("no_proxy=127%.0%.0%.1\n", r.out)
    assert.is_falsy(r.out:find("pr0xy-s3cret", 1, true))
    assert.is_falsy(r.out:find("proxy-user", 1, true))
    assert.is_falsy(r.out:find(PASSWORD, 1, true))
    -- settings
    assert.matches("\n  base URL +" .. escape(ctx.mock.url) .. " +%(KPAYMENT_BASE_URL%)\n", r.out)
    assert.matches("\n  credentials +basic +%(KPAYMENT_PASSWORD%)\n", r.out)
    assert.matches("\n  skin +" .. escape(SKIN) .. " +%(KPAYMENT_SKIN%)\n", r.out)
    assert.matches("\n  locale +fr%-CA +%(KPAYMENT_LOCALE%)\n", r.out)
    assert.matches("\n  timeout +7 s +%(%-%-timeout%)\n", r.out)
    assert.matches("\n  retries +0 +%(kpayment doctor%)\n", r.out)
    assert.matches("\n  transport +curl +%(default%)\n", r.out)
    -- the call, as on_request and on_response saw it
    assert.matches("\n  request +GET " .. escape(ctx.mock.url) .. "/[^\n]*customerUUID=", r.out)
    assert.matches("\n  status +200\n", r.out)
    assert.matches("\n  request id +mock%-%d+\n", r.out)
    assert.matches("\n  time +%d+ ms\n", r.out)
    assert.matches("\n  error +none\n", r.out)
    assert.matches("\nPassed", r.out)
    assert.is_falsy(r.out:find("getent", 1, true))
  end)

  it("names --user as where the credentials come from", function()
    local r = run.run({ "doctor", "--user", USER }, { env = ctx.with({ KPAYMENT_USERNAME = "" }) })
    assert.equal(0, r.status, r.out .. r.err)
    assert.matches("\n  credentials +basic +%(%-%-user, password from KPAYMENT_PASSWORD%)\n", r.out)
  end)

  local failures = {
    { "a closed port", function() return { "--base-url", "http://127.0.0.1:" .. server.free_port() } end,
      3, "network", "nothing accepts connections" },
    { "a name that does not resolve",
      function() return { "--base-url", "http://kpayment-doctor.invalid" } end, 3, "network", "resolve" },
    { "refused credentials", function() return {} end, 1, "http", "credentials",
      { KPAYMENT_PASSWORD = "wrong-" .. PASSWORD } },
    { "a server that stalls", function() return { "--customer", "mock:stall:3", "--dealer", "d",
      "--timeout", "0.5" } end, 3, "timeout", "no answer in time" },
    { "an answer that is not JSON", function() return { "--customer", "mock:badjson", "--dealer", "d" } end,
      1, "decode", "not the API's JSON" },
  }
  for _, case in ipairs(failures) do
    it("reports the call's error kind and exits by it: " .. case[1], function()
      local r = run.run({ "doctor", unpack(case[2]()) },
        { env = ctx.with(case[6]) })
      assert.equal(case[3], r.status, r.out .. r.err)
      assert.matches("\n  error +" .. case[4] .. ": ", r.out)
      assert.matches("\nFailed: [^\n]*" .. case[5], r.out)
      assert.is_truthy(r.err:find("^kpayment doctor: [^\n]+\n$"), r.err)
      assert.is_falsy((r.out .. r.err):find(PASSWORD, 1, true))
      assert.is_falsy(r.out:find("getent", 1, true))
    end)
  end

  it("fails without a skin, as offers does, naming --skin and KPAYMENT_SKIN, and still makes its call",
     function()
    local env = ctx.with({ KPAYMENT_SKIN = "" })
    local offers = run.run({ "offers", "--customer", "c", "--dealer", "d" }, { env = env })
    local r = run.run({ "doctor" }, { env = env })
    assert.equal(2, offers.status, offers.err)
    assert.equal(offers.status, r.status, r.out .. r.err)
    assert.is_falsy(r.out:find("\nPassed", 1, true), r.out)
    -- the other checks ran: the call went out, with a placeholder skin
    assert.matches("\n  status +200\n", r.out)
    local fix = "pass %-%-skin or set KPAYMENT_SKIN"
    assert.matches("\n  skin +none[^\n]*\n", r.out)
    assert.matches("\nFailed: [^\n]*" .. fix, r.out)
    -- stderr says what offers says
    assert.equal(offers.err:match("^kpayment offers: (.-) %(see"),
      r.err:match("^kpayment doctor: ([^\n]*)\n$"))
    assert.matches(fix, r.err)
    assert.is_falsy((r.out .. r.err):find("kpayment.new", 1, true))
  end)

  it("without a skin and without an answer, reports both and exits as offers does", function()
    local r = run.run({ "doctor", "--base-url", "http://127.0.0.1:" .. server.free_port() },
      { env = ctx.with({ KPAYMENT_SKIN = "" }) })
    assert.equal(2, r.status, r.out .. r.err)
    assert.matches("\nFailed: nothing accepts connections", r.out)
    assert.matches("\nFailed: [^\n]*pass %-%-skin or set KPAYMENT_SKIN", r.out)
    assert.matches("^kpayment doctor: the call failed: network error: [^\n]*\n"
      .. "kpayment doctor: [^\n]*KPAYMENT_SKIN[^\n]*\n$", r.err)
  end)

  it("says the call's error once prefixed, as docs/command.md shows", function()
    local r = run.run({ "doctor", "--base-url", "http://127.0.0.1:" .. server.free_port() },
      { env = ctx.env })
    assert.equal(3, r.status, r.out .. r.err)
    assert.matches("^kpayment doctor: the call failed: network error: [^\n]* %(see above%)\n$", r.err)
    assert.is_falsy(r.err:find("kpayment: ", 1, true), r.err)
  end)

  it("tells an untrusted certificate from a trusted one", function()
    local tls = require("support.tls").start()
    local r = run.run({ "doctor", "--base-url", tls.url }, { env = ctx.env })
    local trusted = run.run({ "doctor", "--base-url", tls.url, "--ca-file", tls.ca_file }, { env = ctx.env })
    tls.stop()
    assert.equal(3, r.status, r.out)
    assert.matches("\n  error +tls: [^\n]*certificate", r.out)
    assert.matches("\nFailed: [^\n]*CA file", r.out)
    -- openssl s_server answers with a web page: TLS passes, the call does not
    assert.equal(1, trusted.status, trusted.out)
    assert.matches("\n  CA file +" .. escape(tls.ca_file) .. " +%(%-%-ca%-file%)\n", trusted.out)
    assert.matches("\n  error +decode: ", trusted.out)
  end)

  it("keeps no resolver, proxy logic or proxy masker of its own", function()
    local f = assert(io.open("cli/kpayment/cli/doctor.lua", "rb"))
    local src = f:read("*a")
    f:close()
    for _, own in ipairs({ "getent", "no_proxy", "function M.mask_proxy", "proxy_for", "popen" }) do
      assert.is_falsy(src:find(own, 1, true), "doctor.lua holds '" .. own .. "'")
    end
  end)
end)
