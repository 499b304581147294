-- Retries: which failures are retried, backoff within one deadline,
-- Retry-After, attempt counts and result metadata, in every API.
local kpayment = require("kpayment")
local core = require("kpayment.core")
local mock = require("support.mock")
local drive = require("support.poll")

describe("kpayment retries", function()
  local server, dealer_seq = nil, 0

  lazy_setup(function() server = mock.start({}) end)
  lazy_teardown(function() if server then server.stop() end end)

  -- a fresh dealer per call keeps the mock's flaky counters apart
  local function dealer()
    dealer_seq = dealer_seq + 1
    return "retry-dealer-" .. dealer_seq
  end

  local function client(opts)
    opts = opts or {}
    opts.base_url, opts.skin = server.url, "s"
    opts.timeout = opts.timeout or 5
    return kpayment.new(opts)
  end

  describe("client:get_offers()", function()
    it("retries a transient failure and reports the attempts", function()
      local c = client()
      for _, mode in ipairs({ "503:0", "429:0", "502x", "close", "truncate", "html500" }) do
        local fault = mode == "502x" and "html502" or mode
        local offers, err = c:get_offers({ customer_uuid = "mock:flaky:2:" .. fault,
                                           dealer_uuid = dealer() })
        assert.is_nil(err, mode)
        if mode == "close" then
          -- libcurl itself resends once when a reused connection dies before
          -- any response, so two failures may cost only one attempt of ours
          assert.is_true(offers:meta().attempts >= 2)
        else
          assert.equal(3, offers:meta().attempts, mode)
        end
        assert.equal(200, offers:meta().status)
      end
    end)

    it("gives up after `retries` retries with the last error", function()
      local c = client({ retries = 3 })
      local _, err = c:get_offers({ customer_uuid = "mock:503:0", dealer_uuid = dealer() })
      assert.equal(503, err.status)
      assert.equal(4, err.attempts)
      assert.is_true(err.retryable)
    end)

    it("does not retry what a retry cannot fix", function()
      local c = client()
      for _, mode in ipairs({ "error500", "badjson", "no-such-mode" }) do
        server.reset()
        local _, err = c:get_offers({ customer_uuid = "mock:" .. mode, dealer_uuid = dealer() })
        assert.equal(1, err.attempts, mode)
        assert.equal(1, server.stats().requests, mode)
      end
      local m = mock.start({ "--user", "u", "--password", "right-pw" })
      local strict = kpayment.new({ base_url = m.url, skin = "s", username = "u", password = "wrong-pw" })
      local _, err = strict:get_offers({ customer_uuid = "c", dealer_uuid = "d" })
      assert.equal(401, err.status)
      assert.equal(1, err.attempts)
      assert.equal(1, m.stats().requests)
      m.stop()
    end)

    it("never retries a TLS failure", function()
      local tls = require("support.tls").start()
      local c = kpayment.new({ base_url = tls.url, skin = "s", retries = 5 })
      local _, err = c:get_offers({ customer_uuid = "c", dealer_uuid = "d" })
      tls.stop()
      assert.equal("tls", err.kind)
      assert.equal(1, err.attempts)
    end)

    it("waits at least what Retry-After asks", function()
      local c = client({ retries = 1 })
      local t0 = core.monotonic()
      local offers = assert(c:get_offers({ customer_uuid = "mock:flaky:1:503:1", dealer_uuid = dealer() }))
      assert.is_true(core.monotonic() - t0 >= 1.0)
      assert.equal(2, offers:meta().attempts)
    end)

    it("bounds all attempts together by the deadline", function()
      -- 51 attempts of 0.4 s would take over 20 s; the deadline ends the
      -- call at 1 s.  SLACK is for a loaded machine, and more for valgrind
      -- (make memcheck sets KPAYMENT_SLOW), where each attempt's own work
      -- is 20 to 50 times slower.
      local SLACK = os.getenv("KPAYMENT_SLOW") and 2 or 0.5
      local c = client({ retries = 50, deadline = 1, timeout = 0.4 })
      local t0 = core.monotonic()
      local _, err = c:get_offers({ customer_uuid = "mock:stall:3", dealer_uuid = dealer() })
      local took = core.monotonic() - t0
      assert.equal("timeout", err.kind)
      assert.is_true(err.attempts >= 2 and err.attempts < 50)
      assert.is_true(took < 1 + SLACK, ("took %.2f s"):format(took))
    end)

    it("does not start a retry that the deadline leaves no time for", function()
      local c = client({ retries = 5, deadline = 0.5 })
      local _, err = c:get_offers({ customer_uuid = "mock:503:2", dealer_uuid = dealer() })
      assert.equal(503, err.status)
      assert.equal(1, err.attempts)   -- Retry-After: 2 cannot fit in 0.5 s
    end)

    it("fills the result's metadata", function()
      local c = client()
      local offers = assert(c:get_offers({ customer_uuid = "meta", dealer_uuid = dealer() }))
      local meta = offers:meta()
      assert.equal(200, meta.status)
      assert.equal(1, meta.attempts)
      assert.matches("^mock%-%d+$", meta.request_id)
      assert.is_number(meta.total_time)
      assert.is_nil(meta.warnings)   -- the body has none
      assert.equal(meta, offers:active():meta())
      local _, err = c:get_offers({ customer_uuid = "mock:error500", dealer_uuid = dealer() })
      assert.matches("^mock%-%d+$", err.request_id)
    end)
  end)

  describe("batch and poll", function()
    it("get_offers_many retries each customer on its own", function()
      local c = client()
      local list = {}
      for i = 1, 6 do
        list[i] = { customer_uuid = i % 2 == 0 and "mock:flaky:1:503:0" or "ok-" .. i,
                    dealer_uuid = dealer() }
      end
      local results = c:get_offers_many(list, { concurrency = 3 })
      for i, r in ipairs(results) do
        assert.is_table(r.offers, tostring(r.err))
        assert.equal(i % 2 == 0 and 2 or 1, r.offers:meta().attempts)
      end
    end)

    it("a waiting retry is a timer inside poll, never a sleep", function()
      local c = client()
      local req = c:start_offers({ customer_uuid = "mock:flaky:2:503:0", dealer_uuid = dealer() })
      local slowest = drive(c, req, 10)
      local offers = assert(req:result())
      assert.equal(3, offers:meta().attempts)
      assert.is_true(slowest < 0.1, ("slowest poll(0): %.1f ms"):format(slowest * 1000))
    end)

    it("cancel() between attempts ends the request", function()
      local c = client()
      local req = c:start_offers({ customer_uuid = "mock:503:1", dealer_uuid = dealer() })
      local deadline = core.monotonic() + 5
      while not tostring(req):find("waiting") and core.monotonic() < deadline do
        c:poll(10)
        req:done()
      end
      assert.matches("waiting to retry", tostring(req))
      req:cancel()
      assert.is_true(req:done())
      assert.equal("cancelled", select(2, req:result()).kind)
    end)
  end)

  describe("callbacks", function()
    it("contains errors raised in on_done and on_progress, logging them", function()
      local logged = {}
      local c = client({ logger = function(level, msg) logged[#logged + 1] = level .. ": " .. msg end })
      c:start_offers({ customer_uuid = "cb", dealer_uuid = dealer(),
                       on_done = function() error("boom in on_done") end })
      local deadline = core.monotonic() + 5
      while c:poll(10) > 0 and core.monotonic() < deadline do end
      local results = c:get_offers_many({ { customer_uuid = "cb2", dealer_uuid = dealer() } },
        { on_progress = function() error("boom in on_progress") end })
      assert.is_table(results[1].offers)
      local all = table.concat(logged, "\n")
      assert.matches("error: on_done callback failed: .*boom in on_done", all)
      assert.matches("error: on_progress callback failed: .*boom in on_progress", all)
      assert.is_table(c:get_offers({ customer_uuid = "still-fine", dealer_uuid = dealer() }))
    end)
  end)

  describe("Retry-After", function()
    local retry = require("kpayment.retry")

    it("reads delta-seconds and HTTP dates", function()
      assert.equal(7, retry.retry_after_seconds("7"))
      assert.equal(30, retry.retry_after_seconds("Wed, 21 Oct 2015 07:28:30 GMT", 1445412480))
      assert.equal(0, retry.retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1445412500))
      assert.is_nil(retry.retry_after_seconds("soon"))
      assert.is_nil(retry.retry_after_seconds(nil))
    end)
  end)
end)
