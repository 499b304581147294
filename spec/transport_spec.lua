-- The `transport` option: a user's HTTP client (here luasocket, over real
-- loopback HTTP to the mock) gives the same offers, errors, retries and
-- metadata as libcurl.
local kpayment = require("kpayment")
local core = require("kpayment.core")
local mock = require("support.mock")
local socket = require("socket")
local socket_http = require("socket.http")
local ltn12 = require("ltn12")

local USER, PASSWORD, SKIN = "spec-user", "spec-password-7f3a", "spec"
local CUSTOMER, DEALER = "0b5e3c1a-customer", "7d2f9a40-dealer"

-- An HTTP client a user might plug in: luasocket's, with the attempt's
-- timeout on the socket.  Returns what the option's contract asks.
local function luasocket_transport(seen)
  return function(req)
    if seen then seen[#seen + 1] = req end
    local chunks = {}
    socket_http.TIMEOUT = req.timeout   -- luasocket applies it to every socket operation
    local ok, status, headers = socket_http.request({
      url = req.url, method = req.method, headers = req.headers,
      sink = ltn12.sink.table(chunks),
    })
    if not ok then
      return nil, status == "timeout" and "timeout" or "network", tostring(status)
    end
    return status, table.concat(chunks), headers
  end
end

local function ids(offers)
  local list = {}
  for i, o in ipairs(offers) do list[i] = o.id end
  return list
end

-- What an error shows a caller, less what only the HTTP client can say
-- (its messages for transport failures).
local function shape(err)
  local from_body = err.kind == "http" or err.kind == "decode"
  return { kind = err.kind, status = err.status, retryable = err.retryable, code = err.code,
           message = from_body and err.message or nil,
           errors = err.errors, warnings = err.warnings, body = err.body, attempts = err.attempts }
end

describe("the transport option", function()
  local m
  setup(function() m = mock.start({ "--user", USER, "--password", PASSWORD, "--offers", "4" }) end)
  teardown(function() m.stop() end)
  before_each(function() m.reset() end)

  local function clients(opts)
    local curl_opts, fn_opts = {}, {}
    for k, v in pairs(opts or {}) do curl_opts[k], fn_opts[k] = v, v end
    for _, o in ipairs({ curl_opts, fn_opts }) do
      o.base_url = o.base_url or m.url
      o.username, o.password = USER, PASSWORD
      o.skin = SKIN
    end
    fn_opts.transport = fn_opts.transport or luasocket_transport()
    return kpayment.new(curl_opts), kpayment.new(fn_opts)
  end

  it("sends the request libcurl sends: GET, URL, Accept, Authorization, User-Agent, timeout", function()
    local seen = {}
    local c = kpayment.new({ base_url = m.url, username = USER, password = PASSWORD, skin = SKIN,
                             timeout = 7, user_agent = "spec-app/1", transport = luasocket_transport(seen) })
    assert.is_table(c:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER }))
    local req = seen[1]
    assert.equal("GET", req.method)
    assert.equal(m.url .. "/payment/kpayment/v1/finance/getFinanceOffersForCustomer?customerUUID="
      .. CUSTOMER .. "&dealerUUID=" .. DEALER .. "&skin=spec&locale=en-US", req.url)
    assert.equal("application/json", req.headers.Accept)
    assert.equal("Basic " .. require("mime").b64(USER .. ":" .. PASSWORD), req.headers.Authorization)
    local ua = "^spec%-app/1 kpayment/" .. core._VERSION:gsub("%.", "%%.")
    assert.matches(ua, req.headers["User-Agent"])
    assert.is_true(req.timeout > 6.9 and req.timeout <= 7)
    assert.is_number(req.max_body)
    local bearer = {}
    local b = kpayment.new({ base_url = m.url, bearer_token = "tok-1234", skin = SKIN,
                             transport = luasocket_transport(bearer) })
    b:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER })
    assert.equal("Bearer tok-1234", bearer[1].headers.Authorization)
  end)

  it("gives the same offers and metadata as libcurl, projection included", function()
    local curl, fn = clients()
    for _, fields in ipairs({ false, { "id", "customer.lastName" } }) do
      local params = { customer_uuid = CUSTOMER, dealer_uuid = DEALER, fields = fields or nil }
      local a = assert(curl:get_offers(params))
      local b = assert(fn:get_offers(params))
      assert.same(ids(a), ids(b))
      assert.equal(4, #b)
      assert.same(a[1], b[1])
      local ma, mb = a:meta(), b:meta()
      assert.equal(200, mb.status)
      assert.equal(ma.attempts, mb.attempts)
      assert.matches("^mock%-%d+$", mb.request_id)
      assert.is_number(mb.total_time)
      assert.same(ma.warnings, mb.warnings)
    end
  end)

  it("gives the same error objects as libcurl", function()
    local curl, fn = clients({ retries = 0, max_body = 1000000 })
    for _, fault in ipairs({ "error500", "html500", "html502", "empty502", "badjson", "503:0",
                             "429:0", "truncate", "big:2000000", "unicode" }) do
      local params = { customer_uuid = "mock:" .. fault, dealer_uuid = DEALER }
      local a, ea = curl:get_offers(params)
      local b, eb = fn:get_offers(params)
      if fault == "truncate" then
        -- libcurl sees the short body; luasocket does not check Content-Length
        assert.equal("network", ea.kind)
      elseif a then
        assert.same(ids(a), ids(b))
      else
        assert.is_nil(b, fault)
        assert.is_true(kpayment.is_error(eb), fault)
        assert.same(shape(ea), shape(eb), fault)
        assert.equal(ea.request_id ~= nil, eb.request_id ~= nil, fault)
        assert.is_nil(eb.curl_code)
      end
    end
    -- the API's 401 with its own error body
    local bad = kpayment.new({ base_url = m.url, username = USER, password = "wrong-password", skin = SKIN,
                               transport = luasocket_transport() })
    local _, err = bad:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER })
    assert.equal("http", err.kind)
    assert.equal(401, err.status)
    assert.is_false(err.retryable)
    assert.is_nil(tostring(err):find("wrong-password", 1, true))
  end)

  it("retries what libcurl retries, with the same attempts and Retry-After", function()
    local curl, fn = clients({ retries = 2 })
    local params = { customer_uuid = "mock:flaky:2:503:0", dealer_uuid = DEALER }
    local a = assert(curl:get_offers(params))
    m.reset()
    local b = assert(fn:get_offers(params))
    assert.equal(3, a:meta().attempts)
    assert.equal(3, b:meta().attempts)
    assert.equal(3, m.stats().requests)
    -- exhausted: the last error, with its attempts
    local _, err = fn:get_offers({ customer_uuid = "mock:503:0", dealer_uuid = DEALER })
    assert.equal("http", err.kind)
    assert.equal(503, err.status)
    assert.equal(3, err.attempts)
  end)

  it("reports a failure the function names, retried as libcurl's", function()
    local calls = 0
    local c = kpayment.new({ base_url = m.url, skin = SKIN, retries = 1, transport = function()
      calls = calls + 1
      return nil, "network", "connection refused by spec"
    end })
    local _, err = c:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER })
    assert.equal("network", err.kind)
    assert.is_true(err.retryable)
    assert.equal("connection refused by spec", err.message)
    assert.equal(2, err.attempts)
    assert.equal(2, calls)
    local tls = kpayment.new({ base_url = m.url, skin = SKIN, retries = 3,
                               transport = function() return nil, "tls", "certificate verify failed" end })
    _, err = tls:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER })
    assert.equal("tls", err.kind)
    assert.is_false(err.retryable)
    assert.equal(1, err.attempts)
  end)

  it("times out as libcurl does against a stalled server, within the deadline", function()
    local _, fn = clients({ timeout = 0.3, retries = 0 })
    local t0 = socket.gettime()
    local _, err = fn:get_offers({ customer_uuid = "mock:stall:2", dealer_uuid = DEALER })
    assert.equal("timeout", err.kind)
    assert.is_true(err.retryable)
    assert.is_true(socket.gettime() - t0 < 1.5)
  end)

  it("reaches nothing as a network error, like libcurl", function()
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    local curl, fn = clients({ base_url = "http://127.0.0.1:" .. port, retries = 0 })
    local _, ea = curl:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER })
    local _, eb = fn:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER })
    assert.equal(ea.kind, eb.kind)
    assert.equal(ea.retryable, eb.retryable)
  end)

  it("holds max_body", function()
    local _, fn = clients({ max_body = 1000, retries = 0 })
    local _, err = fn:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER })
    assert.equal("body_too_large", err.kind)
    assert.equal(200, err.status)
    assert.is_false(err.retryable)
  end)

  it("runs get_offers_many, start_offers and poll", function()
    local curl, fn = clients()
    local list = {}
    for i = 1, 5 do list[i] = { customer_uuid = CUSTOMER .. i, dealer_uuid = DEALER } end
    list[3].customer_uuid = "mock:error500"
    local progress = {}
    local a = curl:get_offers_many(list, { concurrency = 2 })
    local b = fn:get_offers_many(list, { concurrency = 2, on_progress = function(d, n)
      progress[#progress + 1] = d .. "/" .. n
    end })
    for i = 1, 5 do
      if a[i].offers then
        assert.same(ids(a[i].offers), ids(b[i].offers))
      else
        assert.same(shape(a[i].err), shape(b[i].err))
      end
    end
    assert.same({ "1/5", "2/5", "3/5", "4/5", "5/5" }, progress)

    local got = {}
    local r1 = fn:start_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER })
    fn:start_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER,
                      on_done = function(offers) got[#got + 1] = #offers end })
    assert.is_false(r1:done())
    local rounds = 0
    while fn:poll(100) > 0 and rounds < 100 do rounds = rounds + 1 end
    assert.is_true(r1:done())
    assert.equal(4, #assert(r1:result()))
    assert.same({ 4 }, got)
    -- cancelled before it ran: never sent
    m.reset()
    local r2 = fn:start_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER })
    r2:cancel()
    fn:poll(0)
    local _, err = r2:result()
    assert.equal("cancelled", err.kind)
    assert.equal(0, m.stats().requests)
    fn:close()
    assert.equal(0, fn:poll(0))
  end)

  it("raises when the function raises or breaks the contract", function()
    local function call(send)
      local c = kpayment.new({ base_url = m.url, skin = SKIN, transport = send })
      return pcall(c.get_offers, c, { customer_uuid = CUSTOMER, dealer_uuid = DEALER })
    end
    local ok, why = call(function() error("boom in transport") end)
    assert.is_false(ok)
    assert.matches("transport function raised: .*boom in transport", why)
    for _, case in ipairs({
      { function() return "200", "{}" end, "HTTP status" },
      { function() return 200.5, "{}" end, "HTTP status" },
      { function() return 200, nil end, "body %(a string%) expected" },
      { function() return 200, "{}", "x" end, "headers" },
      { function() return nil, "dns" end, "failure kind" },
    }) do
      ok, why = call(case[1])
      assert.is_false(ok)
      assert.matches("transport function returned a bad response: " .. case[2], why)
    end
  end)

  it("is checked as an option", function()
    assert.has_error(function() kpayment.new({ transport = 42 }) end,
      "kpayment: bad option 'transport' (function or transport name expected, got number)")
    assert.has_error(function() kpayment.new({ transport = "ngx" }) end,
      "kpayment: bad option 'transport' (a function, \"curl\", \"cosocket\" or \"subrequest\" expected)")
    assert.is_table(kpayment.new({ transport = "curl" }))
    -- nginx's transports need nginx
    assert.has_error(function() kpayment.new({ transport = "cosocket" }) end,
      "kpayment: the cosocket transport runs inside nginx only (transport = \"curl\" or a function here)")
    assert.has_error(function() kpayment.new({ ngx_location = "_kpayment" }) end,
      "kpayment: bad option 'ngx_location' (a location path such as \"/_kpayment\" expected)")
    assert.has_error(function() kpayment.new({ ngx_location = "/_k?x=1" }) end)
    assert.is_table(kpayment.new({ ngx_location = "/_kpayment" }))
  end)
end)
