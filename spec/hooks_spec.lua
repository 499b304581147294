-- The observability hooks, on_request(info) and on_response(info): once per
-- attempt, retries included, on every path (blocking, batch, start/poll, a
-- transport function), with the URL scrubbed of secrets; a hook that raises
-- or re-enters the client changes no outcome.  Real HTTP against the mock.
local kpayment = require("kpayment")
local core = require("kpayment.core")
local mock = require("support.mock")
local drive = require("support.poll")
local http = require("socket.http")
local ltn12 = require("ltn12")

local PATH = "/payment/kpayment/v1/finance/getFinanceOffersForCustomer"
local USER, PASSWORD = "hook-user", "hook-password-7f3a"

describe("kpayment hooks", function()
  local server, seq = nil, 0

  lazy_setup(function() server = mock.start({ "--user", USER, "--password", PASSWORD }) end)
  lazy_teardown(function() if server then server.stop() end end)

  -- a fresh dealer per call keeps the mock's flaky counters apart
  local function dealer()
    seq = seq + 1
    return "hook-dealer-" .. seq
  end

  -- A client whose hooks record every call, in order, in `seen`: copies of
  -- the info tables, tagged with the hook's name.  Hooks in `opts` run
  -- after the recording.
  local function recording(opts)
    local seen = {}
    opts = opts or {}
    local function record(name)
      local after = opts[name]
      return function(info)
        local copy = { hook = name }
        for k, v in pairs(info) do copy[k] = v end
        seen[#seen + 1] = copy
        if after then after(info) end
      end
    end
    opts.base_url = opts.base_url or server.url
    opts.skin, opts.timeout = "s", opts.timeout or 5
    if opts.username == nil and opts.bearer_token == nil then
      opts.username, opts.password = USER, PASSWORD
    end
    opts.on_request, opts.on_response = record("on_request"), record("on_response")
    return kpayment.new(opts), seen
  end

  local function url_of(customer, dealer_uuid, base)
    return (base or server.url) .. PATH .. "?customerUUID=" .. customer:gsub(":", "%%3A")
      .. "&dealerUUID=" .. dealer_uuid .. "&skin=s&locale=en-US"
  end

  -- The hook calls of one URL, as "hook attempt status error retry" lines.
  local function trace(seen, url)
    local lines = {}
    for _, s in ipairs(seen) do
      if url == nil or s.url == url then
        lines[#lines + 1] = table.concat({ s.hook, tostring(s.attempt), tostring(s.status),
                                           tostring(s.error), tostring(s.retry) }, " ")
      end
    end
    return lines
  end

  local function body_size(url)
    local chunks = {}
    local basic = "Basic " .. require("kpayment.errors").base64(USER .. ":" .. PASSWORD)
    local _, code = http.request({ url = url, sink = ltn12.sink.table(chunks),
                                   headers = { authorization = basic } })
    assert.equal(200, code)
    return #table.concat(chunks)
  end

  describe("on a blocking get_offers", function()
    it("fire once per attempt, retries included, with what each attempt got", function()
      local c, seen = recording()
      local d = dealer()
      local offers = assert(c:get_offers({ customer_uuid = "mock:flaky:2:503:0", dealer_uuid = d }))
      local url = url_of("mock:flaky:2:503:0", d)
      assert.same({
        "on_request 1 nil nil nil", "on_response 1 503 http true",
        "on_request 2 nil nil nil", "on_response 2 503 http true",
        "on_request 3 nil nil nil", "on_response 3 200 nil false",
      }, trace(seen))
      for _, s in ipairs(seen) do
        assert.equal("GET", s.method)
        assert.equal(url, s.url)
      end
      local last = seen[6]
      local meta = offers:meta()
      assert.equal(3, meta.attempts)
      assert.equal(meta.request_id, last.request_id)
      assert.matches("^mock%-%d+$", seen[2].request_id)
      assert.are_not.equal(seen[2].request_id, last.request_id)
      for i = 2, 6, 2 do
        assert.equal("number", type(seen[i].duration))
        assert.is_true(seen[i].duration > 0 and seen[i].duration <= meta.total_time, seen[i].duration)
        assert.is_true(seen[i].bytes > 0)
      end
      -- the body's size: what the same request gets over another client
      assert.equal(body_size(url_of("hook-size", d)), (function()
        local c2, seen2 = recording()
        assert(c2:get_offers({ customer_uuid = "hook-size", dealer_uuid = d }))
        return seen2[2].bytes
      end)())
    end)

    it("report a failure without a response: error kind, no status, no bytes", function()
      local port = require("support.server").free_port()
      local c, seen = recording({ base_url = "http://127.0.0.1:" .. port, retries = 1, deadline = 5 })
      local _, err = c:get_offers({ customer_uuid = "c", dealer_uuid = "d" })
      assert.equal("network", err.kind)
      assert.same({ "on_request 1 nil nil nil", "on_response 1 nil network true",
                    "on_request 2 nil nil nil", "on_response 2 nil network false" }, trace(seen))
      assert.equal(0, seen[2].bytes)
      assert.is_nil(seen[2].request_id)
    end)

    it("report a cancelled attempt: every on_request gets its on_response", function()
      local c, seen = recording()
      local req = c:start_offers({ customer_uuid = "mock:stall:5", dealer_uuid = dealer() })
      c:poll(10)
      core.sleep(0.05)
      req:cancel()
      assert.same({ "on_request 1 nil nil nil", "on_response 1 nil cancelled false" }, trace(seen))
      assert.is_true(seen[2].duration >= 0.04, seen[2].duration)
      c:close()
      assert.equal(2, #seen)
    end)
  end)

  describe("on get_offers_many", function()
    it("fire for every attempt of every entry", function()
      local c, seen = recording()
      local d = dealer()
      local results = c:get_offers_many({
        { customer_uuid = "hook-many-1", dealer_uuid = d },
        { customer_uuid = "mock:flaky:1:503:0", dealer_uuid = d },
        { customer_uuid = "mock:error500", dealer_uuid = d },
      }, { concurrency = 2 })
      assert.is_table(results[1].offers)
      assert.is_table(results[2].offers)
      assert.equal(500, results[3].err.status)
      assert.same({ "on_request 1 nil nil nil", "on_response 1 200 nil false" },
        trace(seen, url_of("hook-many-1", d)))
      assert.same({ "on_request 1 nil nil nil", "on_response 1 503 http true",
                    "on_request 2 nil nil nil", "on_response 2 200 nil false" },
        trace(seen, url_of("mock:flaky:1:503:0", d)))
      assert.same({ "on_request 1 nil nil nil", "on_response 1 500 http false" },
        trace(seen, url_of("mock:error500", d)))
      assert.equal(8, #seen)
    end)
  end)

  describe("on start_offers and poll", function()
    it("fire as the client is polled, on_response before on_done", function()
      local c, seen = recording()
      local d = dealer()
      local done_at
      local req = c:start_offers({ customer_uuid = "mock:flaky:1:429:0", dealer_uuid = d,
                                   on_done = function() done_at = #seen end })
      assert.same({ "on_request 1 nil nil nil" }, trace(seen))
      drive(c, req, 5)
      local deadline = core.monotonic() + 5
      while c:poll(10) > 0 and core.monotonic() < deadline do end
      assert.same({ "on_request 1 nil nil nil", "on_response 1 429 http true",
                    "on_request 2 nil nil nil", "on_response 2 200 nil false" }, trace(seen))
      assert.equal(4, done_at)
      assert.equal(req:result():meta().request_id, seen[4].request_id)
    end)
  end)

  describe("over a transport function", function()
    -- luasocket as the HTTP client
    local function send(req)
      local chunks, headers = {}, {}
      for k, v in pairs(req.headers) do headers[k:lower()] = v end
      local ok, code, response_headers = http.request({ url = req.url, headers = headers,
                                                        sink = ltn12.sink.table(chunks) })
      if not ok then return nil, "network", tostring(code) end
      return code, table.concat(chunks), response_headers
    end

    it("fire per attempt with the function's status, body size and request id", function()
      local sizes = {}
      local c, seen = recording({ transport = function(req)
        local status, body, headers = send(req)
        if type(body) == "string" then sizes[#sizes + 1] = #body end
        return status, body, headers
      end })
      local d = dealer()
      local offers = assert(c:get_offers({ customer_uuid = "mock:flaky:1:503:0", dealer_uuid = d }))
      assert.same({ "on_request 1 nil nil nil", "on_response 1 503 http true",
                    "on_request 2 nil nil nil", "on_response 2 200 nil false" }, trace(seen))
      assert.equal(url_of("mock:flaky:1:503:0", d), seen[1].url)
      assert.same(sizes, { seen[2].bytes, seen[4].bytes })
      assert.equal(offers:meta().request_id, seen[4].request_id)
      assert.is_true(seen[4].duration > 0)
    end)

    it("report the function's failure kind", function()
      local c, seen = recording({ retries = 0,
                                  transport = function() return nil, "timeout", "too slow" end })
      local _, err = c:get_offers({ customer_uuid = "c", dealer_uuid = "d" })
      assert.equal("timeout", err.kind)
      assert.same({ "on_request 1 nil nil nil", "on_response 1 nil timeout false" }, trace(seen))
    end)
  end)

  describe("the URL they get", function()
    it("carries no credentials, and a secret in a parameter is redacted", function()
      local auths = { { username = USER, password = PASSWORD }, { bearer_token = "tok-93c1e55a" } }
      for _, auth in ipairs(auths) do
        local c, seen = recording(auth)
        -- a parameter that happens to hold the secret
        local secret = auth.password or auth.bearer_token
        c:get_offers({ customer_uuid = "hook-url", dealer_uuid = secret })
        assert.is_true(#seen >= 2)
        for _, s in ipairs(seen) do
          assert.is_nil(s.url:find(secret, 1, true), s.url)
          assert.is_nil(s.url:find("@", 1, true), s.url)
          assert.equal(url_of("hook-url", "[redacted]"), s.url)
        end
      end
    end)
  end)

  describe("a hook that raises", function()
    it("changes no outcome; its error is logged as a callback's", function()
      for _, name in ipairs({ "on_request", "on_response" }) do
        local logs = {}
        local c = kpayment.new({ base_url = server.url, skin = "s", username = USER, password = PASSWORD,
          logger = function(level, message) logs[#logs + 1] = level .. ": " .. message end,
          [name] = function() error("hook exploded with " .. PASSWORD) end })
        local offers, err = c:get_offers({ customer_uuid = "hook-raise", dealer_uuid = dealer() })
        assert.is_nil(err)
        assert.equal(3, #offers)
        local results = c:get_offers_many({ { customer_uuid = "hook-raise-many", dealer_uuid = "d" } })
        assert.is_table(results[1].offers)
        local req = c:start_offers({ customer_uuid = "hook-raise-poll", dealer_uuid = "d" })
        drive(c, req, 5)
        assert.is_table((req:result()))
        assert.equal(3, #logs, name)
        for _, line in ipairs(logs) do
          assert.matches("^error: " .. name .. " callback failed: .*hook exploded with %[redacted%]$", line)
        end
      end
    end)

    it("passes on running out of memory, on every path", function()
      for _, name in ipairs({ "on_request", "on_response" }) do
        local c = kpayment.new({ base_url = server.url, skin = "s", username = USER, password = PASSWORD,
          [name] = function() error("not enough memory", 0) end })
        assert.has_error(function()
          c:get_offers({ customer_uuid = "hook-oom", dealer_uuid = "d" })
        end, "not enough memory")
        assert.has_error(function()
          c:get_offers_many({ { customer_uuid = "hook-oom-many", dealer_uuid = "d" } })
        end, "not enough memory")
        if name == "on_response" then
          c:start_offers({ customer_uuid = "hook-oom-poll", dealer_uuid = "d" })
          assert.has_error(function()
            local deadline = core.monotonic() + 5
            while c:poll(10) >= 0 and core.monotonic() < deadline do end
          end, "not enough memory")
        else
          assert.has_error(function()
            c:start_offers({ customer_uuid = "hook-oom-start", dealer_uuid = "d" })
          end, "not enough memory")
        end
        c:close()
      end
    end)
  end)

  describe("a hook that re-enters the client", function()
    it("may close it from on_response: every on_done runs once, no poll raises", function()
      local closed, c = false, nil
      local seen
      c, seen = recording({ on_response = function()
        if not closed then
          closed = true
          c:close()
        end
      end })
      local calls, kinds = {}, {}
      for i = 1, 4 do
        calls[i] = 0
        c:start_offers({ customer_uuid = i == 1 and "hook-close-first" or "mock:stall:2",
                         dealer_uuid = dealer(),
                         on_done = function(_, err)
                           calls[i] = calls[i] + 1
                           kinds[i] = err and err.kind or "ok"
                         end })
      end
      local deadline = core.monotonic() + 5
      while core.monotonic() < deadline do
        local pending = c:poll(20)   -- raises nothing
        if pending == 0 then break end
      end
      assert.is_true(closed)
      assert.same({ 1, 1, 1, 1 }, calls)
      assert.same({ "cancelled", "cancelled", "cancelled", "cancelled" }, kinds)
      -- every attempt announced got its answer, once
      local requests, responses = 0, 0
      for _, s in ipairs(seen) do
        if s.hook == "on_request" then requests = requests + 1 else responses = responses + 1 end
      end
      assert.equal(4, requests)
      assert.equal(4, responses)
    end)

    it("may close it from on_request of a blocking call, which ends cancelled", function()
      local c, seen
      c, seen = recording({ on_request = function() c:close() end })
      local offers, err = c:get_offers({ customer_uuid = "hook-close-req", dealer_uuid = dealer() })
      assert.is_nil(offers)
      assert.equal("cancelled", err.kind)
      assert.same({ "on_request 1 nil nil nil", "on_response 1 nil cancelled false" }, trace(seen))
      assert.has_error(function() c:get_offers({ customer_uuid = "c", dealer_uuid = "d" }) end,
        "kpayment: attempt to use a closed client")
    end)

    it("may make a call of its own from on_response", function()
      local c, seen, nested
      c, seen = recording({ on_response = function()
        if nested == nil then
          nested = false
          nested = #assert(c:get_offers({ customer_uuid = "hook-nested", dealer_uuid = "d" }))
        end
      end })
      local results = c:get_offers_many({ { customer_uuid = "hook-outer-1", dealer_uuid = "d" },
                                          { customer_uuid = "hook-outer-2", dealer_uuid = "d" } })
      assert.equal(3, nested)
      assert.is_table(results[1].offers)
      assert.is_table(results[2].offers)
      assert.equal(6, #seen)
    end)
  end)

  describe("either hook alone", function()
    it("is called once per attempt, and the other is not stood in for", function()
      for _, name in ipairs({ "on_request", "on_response" }) do
        local calls, logs = {}, {}
        local c = kpayment.new({ base_url = server.url, skin = "s", username = USER, password = PASSWORD,
          logger = function(level, message) logs[#logs + 1] = level .. ": " .. message end,
          [name] = function(info) calls[#calls + 1] = info.status or "none" end })
        assert(c:get_offers({ customer_uuid = "mock:flaky:1:503:0", dealer_uuid = dealer() }))
        if name == "on_request" then
          assert.same({ "none", "none" }, calls)
        else
          assert.same({ 503, 200 }, calls)
        end
        assert.same({}, logs)
      end
    end)
  end)

  describe("options", function()
    it("must be functions", function()
      assert.has_error(function() kpayment.new({ skin = "s", on_request = "print" }) end,
        "kpayment: bad option 'on_request' (function expected, got string)")
      assert.has_error(function() kpayment.new({ skin = "s", on_response = true }) end,
        "kpayment: bad option 'on_response' (function expected, got boolean)")
    end)
  end)
end)
