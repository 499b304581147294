-- User code that runs inside the client's own loops: on_done callbacks
-- that poll, start or close; on_progress that closes; cancel at every
-- stage; loggers and callbacks that raise.  Whatever they do, every request
-- ends exactly once and the client stays usable (or cleanly closed).
-- Real HTTP against the mock.
local kpayment = require("kpayment")
local core = require("kpayment.core")
local mock = require("support.mock")
local drive = require("support.poll")

local CLOSED = "kpayment: attempt to use a closed client"

-- The default logger looks io.stderr up at each call, so a spec can
-- collect what it writes.
local function set_stderr(f)
  io.stderr = f -- luacheck: ignore 122
end

describe("kpayment re-entrancy", function()
  local server
  local clients = {}

  lazy_setup(function() server = mock.start({}) end)
  lazy_teardown(function() if server then server.stop() end end)

  after_each(function()
    for i = #clients, 1, -1 do
      pcall(clients[i].close, clients[i])
      clients[i] = nil
    end
  end)

  local function client(opts)
    opts = opts or {}
    opts.base_url, opts.skin = server.url, "s"
    opts.timeout = opts.timeout or 10
    local c = kpayment.new(opts)
    clients[#clients + 1] = c
    return c
  end

  -- poll(ms) until done() says so or `seconds` pass; every poll is
  -- protected, and what any of them raised is returned.
  local function poll_until(c, done, seconds, ms)
    local raised = {}
    local deadline = core.monotonic() + (seconds or 5)
    while not done() and core.monotonic() < deadline do
      local ok, why = pcall(c.poll, c, ms or 10)
      if not ok then raised[#raised + 1] = tostring(why) end
    end
    return raised
  end

  local function params(customer, extra)
    local p = { customer_uuid = customer, dealer_uuid = "d" }
    for k, v in pairs(extra or {}) do p[k] = v end
    return p
  end

  describe("on_done", function()
    it("may call poll(): no request is delivered twice or never", function()
      local c = client()
      local n = 5
      local calls, nested_errors, failed, reqs = {}, {}, {}, {}
      for i = 1, n do
        calls[i] = 0
        reqs[i] = c:start_offers(params("re-poll-" .. i, {
          on_done = function(offers, err)
            calls[i] = calls[i] + 1
            if not offers or err then failed[#failed + 1] = i end
            local ok, why = pcall(c.poll, c, 0)
            if not ok then nested_errors[#nested_errors + 1] = tostring(why) end
          end,
        }))
      end
      -- Blocking calls on the same client drive every transfer to its end
      -- without delivering any: the next poll then has all of them ready.
      -- (done() waits for poll's decode: a response that is in but not
      -- decoded is in state "decoding".)
      local deadline = core.monotonic() + 10
      local all
      repeat
        assert.equal(3, #c:get_offers(params("mock:stall:0.2")))
        all = true
        for i = 1, n do all = (reqs[i]:done() or reqs[i]._state == "decoding") and all end
      until all or core.monotonic() > deadline
      assert.is_true(all, "the blocking calls did not drive the transfers to their end")
      assert.same({ 0, 0, 0, 0, 0 }, calls)
      assert.has_no_error(function() c:poll(1000) end)
      local raised = poll_until(c, function()
        for i = 1, n do if calls[i] == 0 then return false end end
        return true
      end, 5)
      assert.same({}, raised)
      assert.same({}, nested_errors)
      assert.same({}, failed)
      assert.same({ 1, 1, 1, 1, 1 }, calls)
      assert.equal(0, c:poll(0))
      assert.same({ 1, 1, 1, 1, 1 }, calls)
    end)

    it("may start a request: poll() counts it until it is delivered", function()
      local c = client()
      local second = {}
      local returned_after_first
      local first_called = false
      c:start_offers(params("re-first", {
        on_done = function()
          first_called = true
          c:start_offers(params("mock:stall:0.2", {
            on_done = function(offers, err) second[#second + 1] = { offers = offers, err = err } end,
          }))
        end,
      }))
      -- the frame-loop idiom: poll while anything is pending
      local deadline = core.monotonic() + 5
      local pending
      repeat
        pending = c:poll(10)
        if first_called and returned_after_first == nil then returned_after_first = pending end
      until pending == 0 or core.monotonic() > deadline
      assert.is_true(first_called)
      assert.is_true(returned_after_first > 0,
        "poll returned 0 while a request started in on_done was pending")
      assert.equal(1, #second)
      assert.is_nil(second[1].err)
      assert.equal(3, #second[1].offers)
      assert.equal(0, c:poll(0))
      assert.equal(1, #second)
    end)

    it("may close the client: every other on_done runs once, cancelled, in start order", function()
      local c = client()
      local calls, order = {}, {}
      local function watch(name, extra)
        calls[name] = {}
        local p = params(name == "closer" and "re-closer" or "mock:stall:5", {
          on_done = function(offers, err, req)
            local list = calls[name]
            list[#list + 1] = { offers = offers, err = err, req = req }
            order[#order + 1] = name
            if extra then extra() end
          end,
        })
        return c:start_offers(p)
      end
      local reqs = {
        slow1 = watch("slow1"),
        closer = watch("closer", function() c:close() end),
        slow2 = watch("slow2"),
        slow3 = watch("slow3"),
      }
      local raised = poll_until(c, function() return #calls.closer > 0 end, 5)
      assert.same({}, raised)
      assert.same({ "closer", "slow1", "slow2", "slow3" }, order)
      assert.equal(1, #calls.closer)
      assert.equal(3, #calls.closer[1].offers)
      for _, name in ipairs({ "slow1", "slow2", "slow3" }) do
        assert.equal(1, #calls[name], name)
        local got = calls[name][1]
        assert.is_nil(got.offers, name)
        assert.equal("cancelled", got.err.kind, name)
        assert.equal(reqs[name], got.req, name)
        assert.is_true(reqs[name]:done(), name)
        local offers, err = reqs[name]:result()
        assert.is_nil(offers, name)
        assert.equal(got.err, err, name)
      end
      local ok, pending = pcall(c.poll, c, 0)
      assert.is_true(ok, tostring(pending))
      assert.equal(0, pending)
      ok, pending = pcall(c.poll, c, 10)
      assert.is_true(ok, tostring(pending))
      assert.equal(0, pending)
      assert.equal(4, #order)
      assert.has_error(function() c:get_offers(params("re-after-close")) end, CLOSED)
      assert.has_no_error(function() c:close() end)
    end)

    it("may raise: the error is logged, the others are delivered, the client goes on", function()
      local logs = {}
      local c = client({ logger = function(level, message) logs[#logs + 1] = { level, message } end })
      local calls = { 0, 0, 0, 0 }
      c:start_offers(params("re-raise-1", {
        on_done = function() calls[1] = calls[1] + 1; error("first on_done exploded") end,
      }))
      c:start_offers(params("re-raise-2", { on_done = function() calls[2] = calls[2] + 1 end }))
      c:start_offers(params("re-raise-3", {
        on_done = function() calls[3] = calls[3] + 1; error({ "not a string" }) end,
      }))
      local slow = c:start_offers(params("mock:stall:5", {
        on_done = function() calls[4] = calls[4] + 1; error("cancelled on_done exploded") end,
      }))
      local raised = poll_until(c, function() return calls[1] + calls[2] + calls[3] == 3 end, 5)
      assert.same({}, raised)
      assert.same({ 1, 1, 1, 0 }, calls)
      -- called from inside cancel(): its error does not escape either
      assert.has_no_error(function() slow:cancel() end)
      assert.same({ 1, 1, 1, 1 }, calls)
      local errors, first, cancelled = 0, 0, 0
      for _, l in ipairs(logs) do
        if l[1] == "error" then
          errors = errors + 1
          assert.matches("^on_done callback failed: ", l[2])
          if l[2]:find("first on_done exploded", 1, true) then first = first + 1 end
          if l[2]:find("cancelled on_done exploded", 1, true) then cancelled = cancelled + 1 end
        end
      end
      assert.equal(3, errors)
      assert.equal(1, first)
      assert.equal(1, cancelled)
      assert.equal(0, c:poll(0))
      local offers = c:get_offers(params("re-raise-after"))
      assert.equal(3, #offers)
      assert.same({ 1, 1, 1, 1 }, calls)
    end)
  end)

  describe("get_offers_many", function()
    it("returns one entry per input when on_progress closes the client", function()
      local c = client()
      local list = {
        params("re-many-1"), params("mock:stall:5"), params("mock:stall:5"),
        params("mock:stall:5"), params("re-many-5"), params("re-many-6"),
      }
      local progress = {}
      local ok, results = pcall(c.get_offers_many, c, list, {
        concurrency = 4,
        on_progress = function(done, total)
          progress[#progress + 1] = { done, total }
          c:close()
        end,
      })
      assert.is_true(ok, tostring(results))
      assert.same({ 1, 6 }, progress[1])
      for i, p in ipairs(progress) do assert.same({ i, 6 }, p) end
      assert.equal(6, #results)
      assert.is_nil(results[1].err)
      assert.equal("re-many-1", results[1].offers[1].customerUUID)
      for i = 2, 6 do
        assert.is_nil(results[i].offers, "entry " .. i)
        assert.is_true(kpayment.is_error(results[i].err), "entry " .. i)
        assert.equal("cancelled", results[i].err.kind, "entry " .. i)
      end
      assert.has_error(function() c:get_offers_many({ params("re-many-7") }) end, CLOSED)
      assert.equal(0, c:poll(0))
    end)
  end)

  describe("client:close()", function()
    it("ends a request waiting between retries at once", function()
      local c = client({ retries = 2, deadline = 30 })
      local calls = {}
      local watched = c:start_offers(params("mock:503:3", {
        on_done = function(offers, err) calls[#calls + 1] = { offers = offers, err = err } end,
      }))
      local kept = c:start_offers({ customer_uuid = "mock:503:3", dealer_uuid = "d2" })
      -- done() moves a request on (and stays false while it waits)
      local raised = poll_until(c, function()
        local waiting = true
        for _, req in ipairs({ watched, kept }) do
          waiting = not req:done() and tostring(req):find("waiting", 1, true) and waiting
        end
        return waiting
      end, 3)
      assert.same({}, raised)
      assert.matches("waiting to retry", tostring(watched))
      assert.matches("waiting to retry", tostring(kept))
      assert.equal(0, #calls)
      local t0 = core.monotonic()
      c:close()
      assert.is_true(watched:done())
      assert.is_true(kept:done())
      for _, req in ipairs({ watched, kept }) do
        local offers, err = req:result()
        assert.is_nil(offers)
        assert.equal("cancelled", err.kind)
      end
      assert.is_true(core.monotonic() - t0 < 1)
      assert.equal(1, #calls)
      assert.is_nil(calls[1].offers)
      assert.equal("cancelled", calls[1].err.kind)
      assert.equal(select(2, watched:result()), calls[1].err)
      local ok, pending = pcall(c.poll, c, 10)
      assert.is_true(ok, tostring(pending))
      assert.equal(0, pending)
      assert.equal(1, #calls)
    end)
  end)

  describe("req:cancel()", function()
    it("after the response arrived, before result(), gives 'cancelled'", function()
      local c = client()
      local req = c:start_offers(params("re-late-cancel"))
      drive(c, req, 5)
      assert.is_true(req:done())
      req:cancel()
      assert.is_true(req:done())
      local offers, err = req:result()
      assert.is_nil(offers)
      assert.equal("cancelled", err.kind)
      local again_offers, again_err = req:result()
      assert.is_nil(again_offers)
      assert.equal(err, again_err)
      assert.equal(3, #c:get_offers(params("re-after-late-cancel")))
    end)

    it("calls on_done once, at once, with 'cancelled'; after delivery it changes nothing", function()
      local c = client()
      local calls = {}
      local req
      req = c:start_offers(params("mock:stall:5", {
        on_done = function(offers, err, r) calls[#calls + 1] = { offers = offers, err = err, req = r } end,
      }))
      c:poll(0)
      req:cancel()
      assert.equal(1, #calls)
      assert.is_nil(calls[1].offers)
      assert.equal("cancelled", calls[1].err.kind)
      assert.equal(req, calls[1].req)
      for _ = 1, 3 do c:poll(10) end
      req:cancel()
      assert.equal(1, #calls)
      assert.equal(calls[1].err, select(2, req:result()))

      local later = {}
      local delivered = c:start_offers(params("re-delivered", {
        on_done = function(offers, err) later[#later + 1] = { offers = offers, err = err } end,
      }))
      assert.same({}, poll_until(c, function() return #later > 0 end, 5))
      assert.equal(1, #later)
      assert.equal(3, #later[1].offers)
      delivered:cancel()
      assert.equal(1, #later)
      local offers, err = delivered:result()
      assert.is_nil(err)
      assert.equal(later[1].offers, offers)
      assert.equal(0, c:poll(0))
      assert.equal(1, #later)
    end)
  end)

  describe("a logger that raises", function()
    it("changes no outcome; each of its errors goes once to stderr", function()
      local logger_calls = 0
      local c = client({ debug = true, logger = function()
        logger_calls = logger_calls + 1
        error("logger exploded")
      end })
      local written = {}
      local sink = {}
      function sink.write(self, ...)
        for i = 1, select("#", ...) do written[#written + 1] = tostring((select(i, ...))) end
        return self
      end
      local real_stderr = io.stderr
      finally(function() set_stderr(real_stderr) end)
      set_stderr(sink)

      local ok_get, offers, err = pcall(c.get_offers, c, params("re-logger-get"))
      local calls = {}
      local ok_start, req = pcall(c.start_offers, c, params("re-logger-poll", {
        on_done = function(o, e) calls[#calls + 1] = { offers = o, err = e } end,
      }))
      local raised = {}
      if ok_start then
        raised = poll_until(c, function() return #calls > 0 end, 5)
        for _ = 1, 3 do
          local ok, why = pcall(c.poll, c, 10)
          if not ok then raised[#raised + 1] = tostring(why) end
        end
      end
      set_stderr(real_stderr)

      assert.is_true(ok_get, tostring(offers))
      assert.is_nil(err)
      assert.equal(3, #offers)
      assert.is_true(ok_start, tostring(req))
      assert.same({}, raised)
      assert.equal(1, #calls)
      assert.equal(3, #calls[1].offers)
      assert.is_true(req:done())
      local text = table.concat(written)
      local lines = {}
      for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.is_true(logger_calls >= 4, "the logger was called " .. logger_calls .. " times")
      assert.equal(logger_calls, #lines, text)
      for _, line in ipairs(lines) do assert.matches("logger exploded", line, 1, true) end
    end)
  end)

  describe("the garbage collector", function()
    it("collecting a running request leaves the client usable", function()
      local c = client()
      local weak = setmetatable({}, { __mode = "v" })
      do
        local req = c:start_offers(params("mock:stall:5"))
        c:poll(0)
        weak[1] = req
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak[1])
      assert.equal(0, c:poll(0))
      assert.equal(3, #c:get_offers(params("re-after-gc")))
      assert.equal(0, c:poll(0))
    end)
  end)
end)
