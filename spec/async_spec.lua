-- Many customers at once and non-blocking requests for frame loops, over
-- real HTTP against the mock (slow responses, failures, cancel, GC).
local kpayment = require("kpayment")
local core = require("kpayment.core")
local mock = require("support.mock")
local drive = require("support.poll")

-- seconds: one frame of a 60 Hz loop; under valgrind (make memcheck sets
-- KPAYMENT_SLOW) code runs 20 to 50 times slower, and that is not what
-- these specs measure
local SLOW = os.getenv("KPAYMENT_SLOW") ~= nil
local FRAME = (SLOW and 50 or 1) / 60

describe("kpayment", function()
  local server, client

  lazy_setup(function()
    server = mock.start({})
    client = kpayment.new({ base_url = server.url, skin = "s", timeout = 10 })
  end)

  lazy_teardown(function()
    if client then client:close() end
    if server then server.stop() end
  end)

  describe("client:start_offers()", function()
    it("returns at once and completes in poll", function()
      -- the mock answers STALL seconds after the request: a start_offers
      -- that waited for the answer takes at least that, one that returns at
      -- once far less; half of it leaves room for a loaded machine and
      -- for valgrind
      local STALL = SLOW and 2 or 1
      local t0 = core.monotonic()
      local req = client:start_offers({ customer_uuid = "mock:stall:" .. STALL, dealer_uuid = "d" })
      local took = core.monotonic() - t0
      assert.is_true(took < STALL / 2, ("start_offers took %.2f s"):format(took))
      assert.is_false(req:done())
      assert.has_error(function() req:result() end,
        "kpayment: request still running (poll the client until done())")
      drive(client, req, 5)
      assert.is_true(req:done())
      local offers, err = req:result()
      assert.is_nil(err)
      assert.equal(3, #offers)
      assert.equal(offers, (req:result()))
    end)

    it("never lets poll(0) take a frame while a slow response is in flight", function()
      local slow = client:start_offers({ customer_uuid = "mock:stall:0.5", dealer_uuid = "d" })
      local fast = client:start_offers({ customer_uuid = "c-fast", dealer_uuid = "d" })
      local slowest = drive(client, slow, 5)
      assert.is_true(fast:done())
      assert.is_truthy(fast:result())
      assert.is_truthy(slow:result())
      assert.is_true(slowest < FRAME, ("a poll(0) took %.1f ms"):format(slowest * 1000))
    end)

    it("calls on_done only from poll, with offers or an error", function()
      local got = {}
      client:start_offers({ customer_uuid = "c-cb", dealer_uuid = "d",
                            on_done = function(offers, err, req)
                              got[#got + 1] = { offers = offers, err = err, req = req }
                            end })
      client:start_offers({ customer_uuid = "mock:error500", dealer_uuid = "d",
                            on_done = function(offers, err)
                              got[#got + 1] = { offers = offers, err = err }
                            end })
      require("socket").sleep(0.2)
      assert.equal(0, #got)
      local deadline = core.monotonic() + 5
      while #got < 2 and core.monotonic() < deadline do client:poll(10) end
      assert.equal(2, #got)
      local ok_one = got[1].offers and got[1] or got[2]
      local bad_one = got[1].offers and got[2] or got[1]
      assert.equal("c-cb", ok_one.offers[1].customerUUID)
      assert.equal(500, bad_one.err.status)
      assert.equal(0, client:poll(0))
    end)

    it("with a budget of 0, decodes and delivers at most one response per poll", function()
      local n = 0
      for i = 1, 3 do
        client:start_offers({ customer_uuid = "c-many-" .. i, dealer_uuid = "d",
                              on_done = function() n = n + 1 end })
      end
      local deadline = core.monotonic() + 5
      local pending = 3
      while pending > 0 and core.monotonic() < deadline do
        local before = n
        pending = client:poll(0, 0)
        assert.is_true(n - before <= 1)
      end
      assert.equal(3, n)
    end)

    it("cancel() abandons a request, which reports kind 'cancelled'", function()
      local req = client:start_offers({ customer_uuid = "mock:stall:5", dealer_uuid = "d" })
      client:poll(0)
      req:cancel()
      assert.is_true(req:done())
      local offers, err = req:result()
      assert.is_nil(offers)
      assert.equal("cancelled", err.kind)
      assert.equal(0, client:poll(0))
      assert.is_table(client:get_offers({ customer_uuid = "after-cancel", dealer_uuid = "d" }))
    end)

    it("cancels a running request that is garbage collected", function()
      local weak = setmetatable({}, { __mode = "v" })
      do
        local req = client:start_offers({ customer_uuid = "mock:stall:5", dealer_uuid = "d" })
        client:poll(0)
        weak[1] = req
      end
      assert.equal(1, client:poll(0))
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak[1])
      assert.equal(0, client:poll(0))
    end)

    -- the process's open descriptors: each running transfer holds a socket
    local function open_fds()
      local stat = assert(io.open("/proc/self/stat"))
      local pid = stat:read("*l"):match("^%d+")
      stat:close()
      local p = io.popen("ls /proc/" .. pid .. "/fd | wc -l")
      local n = tonumber(p:read("*a"))
      p:close()
      return n
    end

    it("stops a shared call whose callers were all garbage collected, and forgets it", function()
      -- coalesce is on: each request is the one caller of a shared call
      local c = kpayment.new({ base_url = server.url, skin = "s", timeout = 10 })
      local before = open_fds()
      for i = 1, 20 do c:start_offers({ customer_uuid = "mock:stall:5", dealer_uuid = "gc" .. i }) end
      -- connected once their names are resolved (libcurl's resolver thread)
      local t0 = require("socket").gettime()
      repeat c:poll(10) until open_fds() >= before + 10 or require("socket").gettime() - t0 > 5
      assert.is_true(open_fds() >= before + 10, "the transfers connected")
      collectgarbage()
      collectgarbage()
      c:poll(0)
      assert.is_true(open_fds() <= before + 2, (open_fds() - before) .. " sockets still open")
      -- and nothing of them stays: 2 000 requests dropped while running
      local function heap()
        collectgarbage()
        collectgarbage()
        return collectgarbage("count")
      end
      local function round(from)
        for i = from, from + 99 do
          c:start_offers({ customer_uuid = "mock:offers:1", dealer_uuid = "r" .. i })
        end
        c:poll(0)
        for _ = 1, 5 do c:poll(2) end
      end
      for r = 1, 4 do round(r * 100) end
      local base = heap()
      for r = 5, 24 do round(r * 100) end
      local grown = heap() - base
      assert.is_true(grown < 300, ("the Lua heap grew by %.0f KiB"):format(grown))
      c:close()
    end)

    it("lets the collector take dropped requests while a loop polls", function()
      -- nothing forces a collection: poll's own allocations run the
      -- collector, and poll must not hold the requests while they do
      for _, coalesce in ipairs({ true, false }) do
        local c = kpayment.new({ base_url = server.url, skin = "s", timeout = 10, coalesce = coalesce })
        -- the first 300 are watched; the same work goes on until the
        -- collector has had time for them (its pace depends on the heap)
        local seen = setmetatable({}, { __mode = "v" })
        local kept
        for i = 1, 3000 do
          local req = c:start_offers({ customer_uuid = "mock:offers:3", dealer_uuid = "drop" .. i })
          if i <= 300 then seen[i] = req end
          req = nil   -- luacheck: ignore 311
          c:poll(0)
          if i % 20 == 0 then for _ = 1, 5 do c:poll(2) end end
          if i % 100 == 0 and i >= 300 then
            kept = 0
            for k = 1, 300 do if seen[k] ~= nil then kept = kept + 1 end end
            if kept < 30 then break end
          end
        end
        assert.is_true(kept < 30, ("%d of 300 dropped requests not collected (coalesce %s)"):format(kept,
          tostring(coalesce)))
        c:close()
      end
    end)

    it("marks running requests cancelled when the client closes", function()
      local c = kpayment.new({ base_url = server.url, skin = "s" })
      local req = c:start_offers({ customer_uuid = "mock:stall:5", dealer_uuid = "d" })
      c:poll(0)
      c:close()
      assert.is_true(req:done())
      assert.equal("cancelled", select(2, req:result()).kind)
    end)

    it("calls every pending on_done on close, even when one runs out of memory", function()
      -- running out of memory and Ctrl-C pass through a callback: close
      -- still ends the others first, then passes it on
      for _, why in ipairs({ "not enough memory", "interrupted!" }) do
        for _, how in ipairs({ "close", "collect" }) do
          local calls = {}
          do
            local c = kpayment.new({ base_url = server.url, skin = "s" })
            for i = 1, 3 do
              c:start_offers({ customer_uuid = "mock:stall:5", dealer_uuid = "d" .. i,
                on_done = function(_, err)
                  calls[i] = (calls[i] or 0) + 1
                  assert(err.kind == "cancelled")
                  if i == 1 then error(why, 0) end
                end })
            end
            c:poll(0)
            if how == "close" then
              local ok, err = pcall(c.close, c)
              assert.is_false(ok, how)
              assert.equal(why, err)
              c:close()   -- nothing left: does nothing
            end
          end
          collectgarbage()
          collectgarbage()
          assert.same({ 1, 1, 1 }, calls, why .. ", " .. how)
        end
      end
    end)

    it("raises on misuse", function()
      assert.has_error(function() client:start_offers({ dealer_uuid = "d" }) end,
        "kpayment: bad parameter 'customer_uuid' (string expected, got no value)")
      assert.has_error(function()
        client:start_offers({ customer_uuid = "c", dealer_uuid = "d", on_done = 1 })
      end,
        "kpayment: bad parameter 'on_done' (function expected, got number)")
      assert.has_error(function() client:poll(-1) end,
        "kpayment: bad argument #1 to 'poll' (milliseconds from 0 to 86400000 expected)")
    end)

    it("reuses its connections with more requests in flight than pool_size", function()
      -- pool_size counts idle connections.  Six requests kept in flight,
      -- each answered 0.1 s late, over a pool of five: a request that ends
      -- frees its connection for the next.  (libcurl's cache limit counts
      -- connections in use too: set to pool_size alone, it closed nearly
      -- every connection as its request ended, and 30 requests made 30.)
      local c = kpayment.new({ base_url = server.url, skin = "s", timeout = 10, pool_size = 5,
                               coalesce = false })
      local started, finished, failed = 0, 0, nil
      local function on_done(offers, err)
        finished = finished + 1
        if not offers then failed = failed or tostring(err) end
      end
      local function run(n, in_flight)
        local goal = finished + n
        while finished < goal do
          while started - finished < in_flight and started < goal do
            started = started + 1
            c:start_offers({ customer_uuid = "mock:stall:0.1", dealer_uuid = "d" .. started,
                             on_done = on_done })
          end
          c:poll(10)
        end
        assert.is_nil(failed)
        return server.stats().connections   -- the mock's: distinct ones since reset
      end
      -- the specs before this one dropped thousands of requests: the mock
      -- may still be reading them (slowly, on a busy machine), and each
      -- one read after the reset would count here
      local last, t0 = -1, require("socket").gettime()
      while require("socket").gettime() - t0 < 10 do
        local now = server.stats().requests
        if now == last then break end
        last = now
        require("socket").sleep(0.3)
      end
      server.reset()
      local used = run(30, 6)
      assert.equal(30, server.stats().requests)
      -- six when each poll ends a request or two; at most one more for
      -- each later six when a slow machine ends all six in one poll, which
      -- leaves six idle before new requests start: one closes, as
      -- pool_size says, and the next six open one
      assert.is_true(used >= 6 and used <= 10, "connections: " .. used)
      -- and five stay idle, not six: after calls one at a time, six at
      -- once reuse five and open one
      for _ = 1, 4 do assert.equal(used, run(1, 1)) end
      assert.equal(used + 1, run(6, 6))
      c:close()
    end)
  end)

  describe("client:get_offers_many()", function()
    it("returns results in input order, one failure hiding nothing", function()
      local list = {}
      for i = 1, 7 do list[i] = { customer_uuid = "batch-" .. i, dealer_uuid = "d" } end
      list[3] = { customer_uuid = "mock:error500", dealer_uuid = "d" }
      list[5] = { customer_uuid = "mock:close", dealer_uuid = "d" }
      local progress = {}
      local results = client:get_offers_many(list, {
        concurrency = 3,
        on_progress = function(done, total) progress[#progress + 1] = { done, total } end,
      })
      assert.equal(7, #results)
      for i, r in ipairs(results) do
        if i == 3 then
          assert.is_nil(r.offers)
          assert.equal(500, r.err.status)
        elseif i == 5 then
          assert.equal("network", r.err.kind)
        else
          assert.is_nil(r.err)
          assert.equal("batch-" .. i, r.offers[1].customerUUID)
        end
      end
      assert.equal(7, #progress)
      for k, p in ipairs(progress) do assert.same({ k, 7 }, p) end
    end)

    it("keeps at most `concurrency` connections, reusing them", function()
      server.reset()
      local list = {}
      for i = 1, 24 do list[i] = { customer_uuid = "conc-" .. i, dealer_uuid = "d" } end
      local results = client:get_offers_many(list, { concurrency = 4 })
      for _, r in ipairs(results) do assert.is_table(r.offers) end
      local stats = server.stats()
      assert.equal(24, stats.requests)
      assert.is_true(stats.connections <= 4, "connections: " .. stats.connections)
    end)

    it("runs requests concurrently", function()
      -- four requests the mock holds STALL seconds each: one after the
      -- other they take 4 * STALL, all at once a little over STALL; the
      -- bound, 2.5 * STALL, leaves room for a loaded machine and for
      -- valgrind.  A new client: the four at once open four connections.
      local STALL = SLOW and 1.5 or 0.6
      local c = kpayment.new({ base_url = server.url, skin = "s", timeout = 10 })
      server.reset()
      local list = {}
      for i = 1, 4 do list[i] = { customer_uuid = "mock:stall:" .. STALL, dealer_uuid = "d" .. i } end
      local t0 = core.monotonic()
      local results = c:get_offers_many(list, { concurrency = 4 })
      local took = core.monotonic() - t0
      c:close()
      for _, r in ipairs(results) do assert.is_table(r.offers) end
      assert.is_true(took < 2.5 * STALL, ("took %.2f s"):format(took))
      assert.equal(4, server.stats().connections)
    end)

    it("does not hold the others back behind a slow first request", function()
      -- a new client over plain http: nothing may wait for the slow
      -- request's connection to learn whether it could be shared
      local c = kpayment.new({ base_url = server.url, skin = "s", timeout = 0.5, retries = 0 })
      local list = { { customer_uuid = "mock:stall:2", dealer_uuid = "d" } }
      for i = 2, 8 do list[i] = { customer_uuid = "quick-" .. i, dealer_uuid = "d" } end
      local results = c:get_offers_many(list, { concurrency = 8 })
      assert.equal("timeout", results[1].err.kind)
      for i = 2, 8 do assert.is_table(results[i].offers, tostring(results[i].err)) end
      c:close()
    end)

    it("accepts fields per entry and an empty list", function()
      local results = client:get_offers_many({
        { customer_uuid = "f", dealer_uuid = "d", fields = { "id" } },
      })
      assert.same({ "id" }, (function()
        local ks = {}
        for k in pairs(results[1].offers[1]) do ks[#ks + 1] = k end
        return ks
      end)())
      assert.same({}, client:get_offers_many({}))
    end)

    it("checks every entry before sending anything", function()
      server.reset()
      assert.has_error(function()
        client:get_offers_many({ { customer_uuid = "ok", dealer_uuid = "d" }, { customer_uuid = "x" } })
      end, "kpayment: list[2]: bad parameter 'dealer_uuid' (string expected, got no value)")
      assert.equal(0, server.stats().requests)
      assert.has_error(function() client:get_offers_many({}, { concurrency = 0 }) end,
        "kpayment: bad option 'concurrency' (an integer from 1 to 1024 expected)")
      assert.has_error(function() client:get_offers_many({}, { parallel = 2 }) end,
        "kpayment: unknown option 'parallel'")
    end)
  end)
end)
