-- The mock API server, spoken to with raw HTTP over luasocket (not through
-- kpayment), so that it can be trusted by the client's own specs.

local socket = require("socket")
local mime = require("mime")
local cjson = require("cjson")
local mock = require("kpayment.mock")
local support = require("support.mock")

local ENDPOINT = mock.ENDPOINT
local TIMESTAMP = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"
local BASIC = "Authorization: Basic " .. mime.b64("u:p")
local BEARER = "Authorization: Bearer t0k3n"

local fixture = require("support.fixtures")

local function read_json(name)
  return cjson.decode(fixture(name))
end

local function percent_encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local DEFAULTS = {
  customerUUID = "6f1d2c3b-8a9e-4f70-b1c2-d3e4f5a6b7c8",
  dealerUUID = "0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9",
  skin = "kaarma",
  locale = "en_US",
}

--- The endpoint's request-target; a parameter set to false is left out.
local function target(params)
  params = params or {}
  local parts = {}
  for _, name in ipairs({ "customerUUID", "dealerUUID", "skin", "locale" }) do
    local value = params[name]
    if value == nil then value = DEFAULTS[name] end
    if value ~= false then parts[#parts + 1] = name .. "=" .. percent_encode(value) end
  end
  return ENDPOINT .. "?" .. table.concat(parts, "&")
end

local function connect(url)
  local host, port = url:match("^http://([^:/]+):(%d+)$")
  local sock = assert(socket.tcp())
  sock:settimeout(10)
  assert(sock:connect(host, tonumber(port)))
  return sock
end

--- Sends a request; opts: method, version, headers (lines), body.
local function send(sock, path, opts)
  opts = opts or {}
  local lines = { string.format("%s %s HTTP/%s", opts.method or "GET", path, opts.version or "1.1"),
    "Host: 127.0.0.1" }
  for _, header in ipairs(opts.headers or {}) do lines[#lines + 1] = header end
  if opts.body then lines[#lines + 1] = "Content-Length: " .. #opts.body end
  lines[#lines + 1] = ""
  lines[#lines + 1] = opts.body or ""
  assert(sock:send(table.concat(lines, "\r\n")))
end

--- Reads one response: { status, headers (lower-case names), body, err }.
-- err is set when the connection ended early (body holds what came).
local function receive(sock)
  local line, err = sock:receive("*l")
  if not line then return { err = err } end
  local res = { status = tonumber(line:match("^HTTP/1%.1 (%d%d%d) ")), headers = {}, body = "" }
  while true do
    local header = assert(sock:receive("*l"))
    if header == "" then break end
    local name, value = header:match("^([^:]+):%s*(.*)$")
    res.headers[name:lower()] = value
  end
  local length = tonumber(res.headers["content-length"])
  if length > 0 then
    local body, body_err, partial = sock:receive(length)
    res.body, res.err = body or partial, body_err
  end
  return res
end

--- One request on a connection of its own.
local function request(url, path, opts)
  local sock = connect(url)
  send(sock, path, opts)
  local res = receive(sock)
  sock:close()
  return res
end

local function closed(sock)
  local data, err = sock:receive(1)
  return data == nil and err == "closed"
end

--- Asserts that every field of the reference example is in actual, at every
-- level, with the same JSON type (or null); timestamps must be ISO-8601.
local function assert_shape(expected, actual, where)
  for key, want in pairs(expected) do
    local got, at = actual[key], where .. "." .. key
    assert(got ~= nil, at .. " is missing")
    if got ~= cjson.null then
      assert.are.equal(type(want), type(got), at .. " has the wrong type")
      if type(want) == "table" and want[1] ~= nil then
        assert(#got > 0, at .. " is empty")
        for i, item in ipairs(got) do assert_shape(want[1], item, at .. "[" .. i .. "]") end
      elseif type(want) == "table" then
        assert_shape(want, got, at)
      elseif type(want) == "string" and want:match(TIMESTAMP) then
        assert(got:match(TIMESTAMP), at .. " is not an ISO-8601 timestamp: " .. got)
      end
    end
  end
end

local function assert_error_body(res, status, example_error)
  assert.are.equal(status, res.status)
  assert.are.equal("application/json", res.headers["content-type"])
  local body = cjson.decode(res.body)
  assert.are.same({}, body.warnings)
  assert(#body.errors > 0, "no errors in the body")
  for _, e in ipairs(body.errors) do
    assert_shape(example_error.errors[1], e, "$.errors[]")
    assert.are.equal(status, e.errorCode)
  end
  return body
end

describe("kpayment.mock", function()
  local server, open_server, example, example_error

  local function get(path, headers)
    return request(server.url, path, { headers = headers or { BASIC } })
  end

  local function fault(mode, params)
    return get(target(params), { BASIC, "X-Mock-Fault: " .. mode })
  end

  lazy_setup(function()
    server = support.start({ "--user", "u", "--password", "p", "--token", "t0k3n" })
    open_server = support.start({ "--offers", "5" })
    example = read_json("example-200.json")
    example_error = read_json("example-error.json")
  end)

  lazy_teardown(function()
    if server then server.stop() end
    if open_server then open_server.stop() end
  end)

  describe("module", function()
    local params = { customerUUID = "c-1", dealerUUID = "d-1", skin = "s", locale = "fr_CA" }

    it("has a version", function()
      assert.matches("^kpayment%.mock %d+%.%d+%.%d+$", mock._VERSION)
    end)

    it("leaves connections past its limit in the listen queue, for select", function()
      -- socket.select takes descriptors below 1024 only: the mock crashed
      -- at 1024 connections from the command's --concurrency 1024. Here
      -- with a limit of 3, in this process, five clients at once.
      local limit = mock.MAX_CONNECTIONS
      mock.MAX_CONNECTIONS = 3
      local srv = mock.new({})
      finally(function()
        mock.MAX_CONNECTIONS = limit
        srv:close()
      end)
      local socks = {}
      for i = 1, 5 do
        socks[i] = connect(srv:url())
        send(socks[i], target({ customerUUID = "c-" .. i }))
      end
      for _ = 1, 20 do srv:step(0.01) end
      assert.equal(3, srv._nconns)
      -- each client that got its answer leaves, and a waiting one comes in
      for i = 1, 5 do
        for _ = 1, 20 do srv:step(0.01) end
        socks[i]:settimeout(2)
        local res = receive(socks[i])
        assert.equal(200, res.status, "client " .. i)
        socks[i]:close()
        assert.is_true(srv._nconns <= 3)
      end
    end)

    it("builds the same body for the same request", function()
      assert.are.equal(mock.offers_json(params, 3), mock.offers_json(params, 3))
    end)

    it("builds other offers for another customer", function()
      local other = { customerUUID = "c-2", dealerUUID = "d-1", skin = "s", locale = "fr_CA" }
      local a = cjson.decode(mock.offers_json(params, 1)).financeOffers[1]
      local b = cjson.decode(mock.offers_json(other, 1)).financeOffers[1]
      assert.are_not.equal(a.guid, b.guid)
    end)

    it("keeps the first offers when more are asked for", function()
      local two, three = mock.offers_json(params, 2), mock.offers_json(params, 3)
      assert.are.equal(two:sub(1, -3), three:sub(1, #two - 2))
    end)

    it("pads a body to a minimum size", function()
      local body = mock.offers_json(params, 0, { min_bytes = 100000 })
      assert(#body >= 100000)
      assert.are.equal(1, #cjson.decode(body).financeOffers)
    end)

    it("rejects bad options", function()
      assert.has_error(function() mock.new({ offers = -1 }) end)
      assert.has_error(function() mock.new({ user = "u" }) end)
      assert.has_error(function() mock.new({ port = "80" }) end)
      local ok, why = mock.check_options({ password = "p" })
      assert.is_nil(ok)
      assert.matches("user and password", why)
    end)

    it("raises when it cannot listen", function()
      local port = tonumber(server.url:match(":(%d+)$"))
      assert.has_error(function() mock.new({ port = port }) end)
    end)

    it("serves in-process, one step at a time", function()
      local srv = mock.new({ offers = 1 })
      local sock
      finally(function()   -- one finally: busted keeps only a test's last
        if sock then sock:close() end
        srv:close()
      end)
      assert.matches("^http://127%.0%.0%.1:%d+$", srv:url())
      sock = connect(srv:url())
      send(sock, target())
      -- the request waits in the kernel until the server steps; the small
      -- response is sent in the same step that reads it
      local deadline = socket.gettime() + 5
      repeat srv:step(0.05) until srv:stats().requests == 1 or socket.gettime() > deadline
      local res = receive(sock)
      assert.are.equal(200, res.status)
      assert.are.equal(1, #cjson.decode(res.body).financeOffers)
      assert.are.same({ connections = 1, requests = 1 }, srv:stats())
    end)
  end)

  describe("command line", function()
    local lua = os.getenv("KPAYMENT_MOCK_LUA") or "lua5.4"

    it("prints its URL first", function()
      assert.matches("^http://127%.0%.0%.1:%d+$", server.url)
    end)

    it("prints usage with --help", function()
      local pipe = assert(io.popen(lua .. " bin/kpayment-mock --help"))
      local text = pipe:read("a")
      assert.are.same({ true, "exit", 0 }, { pipe:close() })
      assert.matches("^Usage: kpayment%-mock", text)
      assert.matches("--offers N", text, 1, true)
    end)

    it("exits with status 2 and a message on bad arguments", function()
      local err_file = os.tmpname()
      finally(function() os.remove(err_file) end)
      for _, args in ipairs({ "--port abc", "--nope", "--user u", "--offers", "--offers 99999" }) do
        local command = lua .. " bin/kpayment-mock " .. args .. " >/dev/null 2>" .. err_file
        assert.are.same({ nil, "exit", 2 }, { os.execute(command) }, args)
        local f = assert(io.open(err_file))
        assert.matches("^kpayment%-mock: ", f:read("a"), nil, false, args)
        f:close()
      end
    end)
  end)

  describe("finance offers", function()
    local res, body

    lazy_setup(function()
      res = get(target())
      body = cjson.decode(res.body)
    end)

    it("answers 200 with JSON", function()
      assert.are.equal(200, res.status)
      assert.are.equal("application/json;charset=UTF-8", res.headers["content-type"])
      assert.are.equal("keep-alive", res.headers.connection)
      assert.are.equal(#res.body, tonumber(res.headers["content-length"]))
      assert.are.equal(3, #body.financeOffers)
    end)

    it("has every field of the reference at every level", function()
      assert_shape(example, body, "$")
      assert_shape(example, cjson.decode(request(open_server.url, target()).body), "$")
    end)

    it("echoes the request parameters and the skin", function()
      for _, offer in ipairs(body.financeOffers) do
        assert.are.equal(DEFAULTS.customerUUID, offer.customerUUID)
        assert.are.equal(DEFAULTS.dealerUUID, offer.dealerUUID)
        assert.are.equal(DEFAULTS.dealerUUID, offer.dealerOrder.dealer.uuid)
        assert.are.equal(DEFAULTS.locale, offer.customer.preferredLocale)
        assert.are.equal(DEFAULTS.skin, offer.skin)
      end
    end)

    it("writes the first id as an exact 64-bit integer", function()
      assert.truthy(res.body:find('{"financeOffers":[{"id":9007199254740993,', 1, true))
      assert.truthy(res.body:find('"financeOfferId":9007199254740993,', 1, true))
    end)

    it("holds nulls, non-ASCII names and JSON escapes", function()
      local funded, pending = body.financeOffers[1], body.financeOffers[2]
      assert.are.equal(cjson.null, pending.fundedTS)
      assert.are.equal(cjson.null, pending.docSignedTS)
      assert.are.equal(cjson.null, funded.customer.middleName)
      assert.matches(TIMESTAMP, funded.fundedTS)
      assert.matches("[\128-\255]", funded.customer.firstName)
      for _, escape in ipairs({ '\\"', "\\\\", "\\n", "\\u00e9" }) do
        assert.truthy(res.body:find(escape, 1, true), escape)
      end
      local description = funded.dealerOrder.description
      assert.truthy(description:find('"', 1, true) and description:find("\\", 1, true)
        and description:find("\n", 1, true))
      assert.matches("^Café", funded.dealerOrder.dealer.comments)
    end)

    it("mixes active and expired offers", function()
      local active, expiry = {}, {}
      for _, offer in ipairs(body.financeOffers) do
        active[offer.isActive] = true
        expiry[offer.expiryDate:sub(1, 4)] = true
      end
      assert.are.same({ [true] = true, [false] = true }, active)
      assert.are.same({ ["2020"] = true, ["2099"] = true }, expiry)
    end)

    it("answers the same customer with the same offers", function()
      assert.are.equal(res.body, get(target()).body)
      local other = cjson.decode(get(target({ customerUUID = "someone-else" })).body)
      assert.are_not.equal(body.financeOffers[1].guid, other.financeOffers[1].guid)
    end)

    it("decodes percent-encoded parameters", function()
      local hostile = "a&b=c#d e%f+g/?é王"
      local params = { customerUUID = hostile, dealerUUID = "d=1&x", skin = "100%", locale = "fr CA" }
      local offers = cjson.decode(get(target(params)).body).financeOffers
      assert.are.equal(hostile, offers[1].customerUUID)
      assert.are.equal("d=1&x", offers[1].dealerUUID)
      assert.are.equal("100%", offers[1].skin)
      assert.are.equal("fr CA", offers[1].customer.preferredLocale)
    end)

    it("reads + as a space", function()
      local offers = cjson.decode(get(target() .. "&skin=x").body).financeOffers
      assert.are.equal(DEFAULTS.skin, offers[1].skin) -- the first occurrence counts
      offers = cjson.decode(get(target({ skin = false }) .. "&skin=two+words").body).financeOffers
      assert.are.equal("two words", offers[1].skin)
    end)

    it("serves the configured number of offers", function()
      assert.are.equal(5, #cjson.decode(request(open_server.url, target()).body).financeOffers)
    end)
  end)

  describe("request validation", function()
    it("names each missing parameter, in order", function()
      local res = get(target({ customerUUID = false, dealerUUID = false, skin = false, locale = false }))
      local body = assert_error_body(res, 400, example_error)
      local messages = {}
      for i, e in ipairs(body.errors) do messages[i] = e.errorMessage end
      assert.are.same({ "customerUUID is required", "dealerUUID is required", "skin is required",
        "locale is required" }, messages)
    end)

    it("treats an empty parameter as missing", function()
      local body = assert_error_body(get(target({ skin = "" })), 400, example_error)
      assert.are.equal(1, #body.errors)
      assert.are.equal("skin is required", body.errors[1].errorMessage)
    end)

    it("answers 404 on other paths", function()
      assert_error_body(get("/payment/kpayment/v1/finance/nope"), 404, example_error)
    end)

    it("answers 405 to other methods and skips their body", function()
      local sock = connect(server.url)
      finally(function() sock:close() end)
      send(sock, target(), { method = "POST", headers = { BASIC }, body = "a=1&b=2" })
      local res = receive(sock)
      assert_error_body(res, 405, example_error)
      assert.are.equal("GET", res.headers.allow)
      send(sock, target(), { headers = { BASIC } })
      assert.are.equal(200, receive(sock).status)
    end)

    it("answers 400 to a malformed request and closes", function()
      local sock = connect(server.url)
      finally(function() sock:close() end)
      assert(sock:send("NONSENSE\r\n\r\n"))
      local res = receive(sock)
      assert_error_body(res, 400, example_error)
      assert.are.equal("close", res.headers.connection)
      assert.is_true(closed(sock))
    end)
  end)

  describe("authentication", function()
    it("answers 401 without credentials", function()
      local res = get(target(), {})
      assert_error_body(res, 401, example_error)
      assert.are.equal('Basic realm="kpayment-mock"', res.headers["www-authenticate"])
    end)

    it("answers 401 to a wrong password or token", function()
      assert.are.equal(401, get(target(), { "Authorization: Basic " .. mime.b64("u:wrong") }).status)
      assert.are.equal(401, get(target(), { "Authorization: Bearer wrong" }).status)
      assert.are.equal(401, get(target(), { "Authorization: Bearer " .. mime.b64("u:p") }).status)
    end)

    it("accepts the right Basic credentials", function()
      assert.are.equal(200, get(target(), { BASIC }).status)
    end)

    it("accepts the right bearer token", function()
      assert.are.equal(200, get(target(), { BEARER }).status)
    end)

    it("accepts any request when no credentials are configured", function()
      assert.are.equal(200, request(open_server.url, target()).status)
    end)
  end)

  describe("fault modes", function()
    it("error500 answers 500 with a JSON error", function()
      local body = assert_error_body(fault("error500"), 500, example_error)
      assert.are.equal("Internal Server Error", body.errors[1].errorTitle)
    end)

    it("is chosen through customerUUID too", function()
      assert_error_body(get(target({ customerUUID = "mock:error500" })), 500, example_error)
      assert.are.equal(7, #cjson.decode(get(target({ customerUUID = "mock:offers:7" })).body).financeOffers)
    end)

    it("html500 and html502 answer HTML pages", function()
      for mode, status in pairs({ html500 = 500, html502 = 502 }) do
        local res = fault(mode)
        assert.are.equal(status, res.status)
        assert.are.equal("text/html", res.headers["content-type"])
        assert.matches("^<html>", res.body)
      end
    end)

    it("503 and 429 send Retry-After", function()
      for _, status in ipairs({ 503, 429 }) do
        local res = fault(tostring(status))
        assert_error_body(res, status, example_error)
        assert.are.equal("1", res.headers["retry-after"])
        assert.are.equal("30", fault(status .. ":30").headers["retry-after"])
      end
    end)

    it("empty502 answers 502 with an empty body", function()
      local res = fault("empty502")
      assert.are.equal(502, res.status)
      assert.are.equal("0", res.headers["content-length"])
      assert.are.equal("", res.body)
    end)

    it("badjson answers 200 with invalid JSON", function()
      local res = fault("badjson")
      assert.are.equal(200, res.status)
      assert.matches("^application/json", res.headers["content-type"])
      assert.is_false(pcall(cjson.decode, res.body))
    end)

    it("close closes the connection without an answer", function()
      local res = fault("close")
      assert.is_nil(res.status)
      assert.are.equal("closed", res.err)
    end)

    it("stall delays the response", function()
      local started = socket.gettime()
      local res = get(target({ customerUUID = "mock:stall:0.3" }))
      assert(socket.gettime() - started >= 0.28, "answered too early")
      assert.are.equal(200, res.status)
      assert.are.equal("mock:stall:0.3", cjson.decode(res.body).financeOffers[1].customerUUID)
    end)

    it("truncate sends part of the body, then closes", function()
      local res = fault("truncate")
      assert.are.equal(200, res.status)
      assert.are.equal("closed", res.err)
      assert(#res.body > 0 and #res.body < tonumber(res.headers["content-length"]))
    end)

    it("big answers a valid body of the asked size", function()
      local body = fault("big").body
      assert(#body >= 1048576)
      assert_shape(example, cjson.decode(body), "$")
      body = fault("big:5000000").body
      assert(#body >= 5000000)
      assert.are.equal("table", type(cjson.decode(body).financeOffers))
    end)

    it("offers:n sets the number of offers", function()
      assert.are.equal('{"financeOffers":[]}', fault("offers:0").body)
      assert.are.equal(7, #cjson.decode(fault("offers:7").body).financeOffers)
    end)

    it("unicode adds characters outside the BMP, raw and escaped", function()
      local res = fault("unicode")
      assert.are.equal(200, res.status)
      assert.truthy(res.body:find("\\ud83d\\ude97", 1, true))
      local customer = cjson.decode(res.body).financeOffers[1].customer
      assert.truthy(customer.firstName:find("\u{1F697}", 1, true))
      assert.truthy(customer.nickName:find("\u{1F697}", 1, true))
    end)

    it("validates the parameters before shaping a body", function()
      assert_error_body(fault("offers:2", { skin = false }), 400, example_error)
    end)

    it("rejects unknown modes and bad arguments", function()
      local body = assert_error_body(fault("nope"), 400, example_error)
      assert.matches("'nope'", body.errors[1].errorMessage)
      body = assert_error_body(fault("stall:soon"), 400, example_error)
      assert.matches("'stall'", body.errors[1].errorMessage)
      assert_error_body(fault("error500:1"), 400, example_error)
    end)

    it("lists every mode when the mode is unknown", function()
      local body = assert_error_body(fault("nope"), 400, example_error)
      assert.are.equal("unknown fault mode 'nope' (known: error500, html500, html502, 503, 429, "
        .. "empty502, badjson, close, stall, truncate, big, offers, unicode, flaky, redirect)",
        body.errors[1].errorMessage)
    end)

    it("says how flaky and redirect are written when they are misspelt", function()
      for text, message in pairs({
        ["flaky"] = "fault mode 'flaky' is written flaky:n:mode",
        ["flaky:x:error500"] = "fault mode 'flaky' is written flaky:n:mode",
        ["redirect"] = "fault mode 'redirect' is written redirect:url",
      }) do
        local body = assert_error_body(fault(text), 400, example_error)
        assert.are.equal(message, body.errors[1].errorMessage, text)
      end
    end)
  end)

  describe("connections", function()
    before_each(function() server.reset() end)

    it("keeps a connection alive across requests", function()
      local sock = connect(server.url)
      finally(function() sock:close() end)
      for _ = 1, 2 do
        send(sock, target(), { headers = { BASIC } })
        assert.are.equal(200, receive(sock).status)
      end
      assert.are.same({ connections = 1, requests = 2 }, server.stats())
    end)

    it("closes when asked with Connection: close", function()
      local sock = connect(server.url)
      finally(function() sock:close() end)
      send(sock, target(), { headers = { BASIC, "Connection: close" } })
      local res = receive(sock)
      assert.are.equal(200, res.status)
      assert.are.equal("close", res.headers.connection)
      assert.is_true(closed(sock))
    end)

    it("closes HTTP/1.0 connections unless keep-alive is asked for", function()
      local sock = connect(server.url)
      finally(function() sock:close() end)
      send(sock, target(), { version = "1.0", headers = { BASIC, "Connection: Keep-Alive" } })
      assert.are.equal("keep-alive", receive(sock).headers.connection)
      send(sock, target(), { version = "1.0", headers = { BASIC } })
      assert.are.equal("close", receive(sock).headers.connection)
      assert.is_true(closed(sock))
    end)

    it("answers pipelined requests in order", function()
      local sock = connect(server.url)
      finally(function() sock:close() end)
      local batch = {}
      for i = 1, 3 do
        batch[i] = string.format("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n",
          target({ skin = "skin-" .. i }), BASIC)
      end
      assert(sock:send(table.concat(batch)))
      for i = 1, 3 do
        assert.are.equal("skin-" .. i, cjson.decode(receive(sock).body).financeOffers[1].skin)
      end
    end)

    it("reads a request that arrives in pieces", function()
      local sock = connect(server.url)
      finally(function() sock:close() end)
      local text = string.format("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n", target(), BASIC)
      for i = 1, #text, 7 do
        assert(sock:send(text:sub(i, i + 6)))
        socket.sleep(0.001)
      end
      assert.are.equal(200, receive(sock).status)
    end)

    it("serves other connections while a big body drains slowly", function()
      local slow, fast = connect(server.url), connect(server.url)
      finally(function()
        slow:close()
        fast:close()
      end)
      -- far more than socket buffers hold, so the mock must send in parts
      send(slow, target(), { headers = { BASIC, "X-Mock-Fault: big:8000000" } })
      socket.sleep(0.1)
      send(fast, target(), { headers = { BASIC } })
      assert.are.equal(200, receive(fast).status)
      local res = receive(slow)
      assert.is_nil(res.err)
      assert.are.equal(tonumber(res.headers["content-length"]), #res.body)
      assert.are.equal("table", type(cjson.decode(res.body).financeOffers))
    end)

    it("serves other connections while one stalls", function()
      local slow, fast = connect(server.url), connect(server.url)
      finally(function()
        slow:close()
        fast:close()
      end)
      local started = socket.gettime()
      send(slow, target(), { headers = { BASIC, "X-Mock-Fault: stall:1" } })
      send(fast, target(), { headers = { BASIC } })
      assert.are.equal(200, receive(fast).status)
      assert(socket.gettime() - started < 0.8, "the fast request waited for the stalled one")
      assert.are.equal(200, receive(slow).status)
      assert(socket.gettime() - started >= 0.95, "the stalled request was answered early")
      assert.are.same({ connections = 2, requests = 2 }, server.stats())
    end)
  end)

  describe("control endpoints", function()
    before_each(function() server.reset() end)

    it("counts only requests to the API", function()
      get("/elsewhere")
      server.requests()
      assert.are.same({ connections = 0, requests = 0 }, server.stats())
      get(target(), {})
      assert.are.same({ connections = 1, requests = 1 }, server.stats())
    end)

    it("logs requests without their credentials", function()
      get(target({ customerUUID = "a b" }), { BASIC })
      get(target(), { BEARER, "X-Extra: 1" })
      local log = server.requests()
      assert.are.equal(2, #log)
      assert.are.equal("GET", log[1].method)
      assert.are.equal(target({ customerUUID = "a b" }), log[1].target)
      assert.are.equal("a b", log[1].params.customerUUID)
      assert.are.equal("Basic", log[1].headers.authorization)
      assert.are.equal("Bearer", log[2].headers.authorization)
      assert.are.equal("1", log[2].headers["x-extra"])
      local raw = request(server.url, "/_mock/requests").body
      assert.is_nil(raw:find(mime.b64("u:p"), 1, true))
      assert.is_nil(raw:find("t0k3n", 1, true))
    end)

    it("keeps the last 50 requests", function()
      local sock = connect(server.url)
      finally(function() sock:close() end)
      for i = 1, 55 do
        send(sock, target({ skin = "n" .. i }), { headers = { BASIC } })
        receive(sock)
      end
      local log = server.requests()
      assert.are.equal(50, #log)
      assert.are.equal("n6", log[1].params.skin)
      assert.are.equal("n55", log[50].params.skin)
    end)

    it("resets the counters and the log", function()
      get(target())
      server.reset()
      assert.are.same({ connections = 0, requests = 0 }, server.stats())
      assert.are.same({}, server.requests())
    end)
  end)
end)
