-- Identical requests in flight on one client share one API call: the mock
-- counts the calls it gets.  Every caller still gets its own tables, its own
-- on_done, deadline and cancellation.
local kpayment = require("kpayment")
local core = require("kpayment.core")
local mock = require("support.mock")

describe("coalescing", function()
  local server
  lazy_setup(function() server = mock.start({}) end)
  lazy_teardown(function() if server then server.stop() end end)
  before_each(function() server.reset() end)

  local function client(opts)
    local o = { base_url = server.url, skin = "s", timeout = 10 }
    for k, v in pairs(opts or {}) do o[k] = v end
    return kpayment.new(o)
  end

  local function calls() return server.stats().requests end

  local function drain(c, seconds)
    local deadline = core.monotonic() + (seconds or 10)
    while c:poll(10) > 0 and core.monotonic() < deadline do end
    assert.equal(0, c:poll(0), "every request delivered")
  end

  it("makes one API call for 100 identical requests, one each for 10 others", function()
    local hooks = 0
    local c = client({ on_request = function() hooks = hooks + 1 end })
    local got, joined = {}, 0
    local function on_done(offers, err)
      assert.is_nil(err)
      got[#got + 1] = offers
      if offers:meta().joined then joined = joined + 1 end
    end
    for _ = 1, 100 do
      c:start_offers({ customer_uuid = "mock:stall:0.3", dealer_uuid = "same", on_done = on_done })
    end
    for i = 1, 10 do
      c:start_offers({ customer_uuid = "mock:stall:0.3", dealer_uuid = "d-" .. i, on_done = on_done })
    end
    drain(c)
    assert.equal(110, #got)
    assert.equal(11, calls())
    assert.equal(11, hooks, "on_request once per API attempt")
    assert.equal(99, joined, "every caller but the first of each key joined")
    c:close()
  end)

  it("says done() once for good, and poll() 0 only when every held caller is done", function()
    -- callers without on_done: the first to see the call decoded owns its
    -- decode, the others decode copies; none turns back to not done
    local c = client()
    local reqs = {}
    for i = 1, 3 do reqs[i] = c:start_offers({ customer_uuid = "mock:offers:40", dealer_uuid = "same" }) end
    local deadline = core.monotonic() + 10
    while c:poll(10) > 0 and core.monotonic() < deadline do end
    for i = 1, 3 do assert.is_true(reqs[i]:done(), "request " .. i) end
    for i = 1, 3 do
      assert.equal(40, #assert(reqs[i]:result()))
      for j = 1, 3 do assert.is_true(reqs[j]:done(), "request " .. j .. " after result() of " .. i) end
    end
    assert.equal(1, calls())
    c:close()
  end)

  it("gives every caller its own tables: changing one changes no other", function()
    local c = client()
    local a = c:start_offers({ customer_uuid = "mock:offers:3", dealer_uuid = "d" })
    local b = c:start_offers({ customer_uuid = "mock:offers:3", dealer_uuid = "d" })
    drain(c)
    local oa, ob = a:result(), b:result()
    assert.equal(1, calls())
    assert.are_not.equal(oa, ob)
    assert.are_not.equal(oa[1], ob[1])
    assert.are_not.equal(oa:meta(), ob:meta())
    assert.same(oa[1].id, ob[1].id)
    assert.equal(getmetatable(oa[1]), getmetatable(ob[1]), "both are Offers")
    oa[1].id = "changed"
    oa[1].customer = nil
    assert.are_not.equal("changed", ob[1].id)
    assert.is_table(ob[1].customer)
    assert.is_false(oa:meta().joined)
    assert.is_true(ob:meta().joined)
    assert.equal(1, ob:meta().attempts)
    c:close()
  end)

  it("lets a blocking call join a request started with start_offers", function()
    local c = client()
    local started = c:start_offers({ customer_uuid = "mock:stall:0.2", dealer_uuid = "d" })
    local offers, err = c:get_offers({ customer_uuid = "mock:stall:0.2", dealer_uuid = "d" })
    assert.is_nil(err)
    assert.is_true(offers:meta().joined)
    drain(c)
    assert.is_table(started:result())
    assert.equal(1, calls())
    c:close()
  end)

  it("shares duplicates within one get_offers_many batch", function()
    local c = client()
    local x = { customer_uuid = "mock:stall:0.2", dealer_uuid = "x" }
    local y = { customer_uuid = "mock:stall:0.2", dealer_uuid = "y" }
    local results = c:get_offers_many({ x, x, y, x })
    assert.equal(2, calls())
    for i = 1, 4 do assert.is_table(results[i].offers, "entry " .. i) end
    assert.are_not.equal(results[1].offers, results[2].offers)
    assert.are_not.equal(results[1].offers, results[4].offers)
    c:close()
  end)

  it("hands a shared call's result to every caller as soon as it ends, not at their deadlines", function()
    local c = client({ timeout = 5 })
    local x = { customer_uuid = "c", dealer_uuid = "same" }
    local t0 = core.monotonic()
    local results = c:get_offers_many({ x, x, x }, { concurrency = 3 })
    for i = 1, 3 do assert.is_table(results[i].offers, "entry " .. i) end
    local many = core.monotonic() - t0
    t0 = core.monotonic()
    local reqs = { c:start_offers(x), c:start_offers(x), c:start_offers(x) }
    while c:poll(1000) > 0 do end
    for i = 1, 3 do assert.is_table(reqs[i]:result(), "request " .. i) end
    local polled = core.monotonic() - t0
    -- before, both waited for the first caller's deadline (5 s)
    assert.is_true(many < 2 and polled < 2, ("get_offers_many %.2f s, poll %.2f s"):format(many, polled))
    c:close()
  end)

  it("keeps calls apart that differ in fields, or that ask not to share", function()
    local c = client()
    local p = { customer_uuid = "mock:stall:0.2", dealer_uuid = "d" }
    local reqs = {
      c:start_offers(p),
      c:start_offers({ customer_uuid = p.customer_uuid, dealer_uuid = "d", fields = { "id" } }),
      c:start_offers({ customer_uuid = p.customer_uuid, dealer_uuid = "d", fields = { "status", "id" } }),
      c:start_offers({ customer_uuid = p.customer_uuid, dealer_uuid = "d", fields = { "id", "status" } }),
      c:start_offers({ customer_uuid = p.customer_uuid, dealer_uuid = "d", coalesce = false }),
    }
    drain(c)
    for i = 1, #reqs do assert.is_table(reqs[i]:result(), "request " .. i) end
    assert.equal(4, calls(), "the two orders of one projection share")
    assert.is_nil(reqs[2]:result()[1].status, "a projection's own tables")
    assert.is_not_nil(reqs[3]:result()[1].status)
    c:close()
    local off = client({ coalesce = false })
    off:start_offers(p)
    off:start_offers(p)
    drain(off)
    assert.equal(6, calls())
    off:close()
    local bad = { customer_uuid = "c", dealer_uuid = "d", coalesce = 1 }
    assert.has_error(function() client():start_offers(bad) end,
      "kpayment: bad parameter 'coalesce' (boolean expected, got number)")
  end)

  it("never shares between two clients", function()
    local c1, c2 = client(), client()
    local p = { customer_uuid = "mock:stall:0.2", dealer_uuid = "d" }
    c1:start_offers(p)
    c2:start_offers(p)
    drain(c1)
    drain(c2)
    assert.equal(2, calls())
    c1:close()
    c2:close()
  end)

  it("cancels one caller without touching the others; the call stops with the last", function()
    local responses = {}
    local c = client({ on_response = function(info) responses[#responses + 1] = info.error or "ok" end })
    local p = { customer_uuid = "mock:stall:0.3", dealer_uuid = "d" }
    local a, b, d = c:start_offers(p), c:start_offers(p), c:start_offers(p)
    c:poll(0)
    a:cancel()
    assert.equal("cancelled", select(2, a:result()).kind)
    drain(c)
    assert.is_table(b:result())
    assert.is_table(d:result())
    assert.same({ "ok" }, responses)
    -- all callers gone: the shared attempt is cancelled, once
    responses = {}
    local e, f = c:start_offers(p), c:start_offers(p)
    c:poll(0)
    e:cancel()
    assert.same({}, responses)
    f:cancel()
    assert.same({ "cancelled" }, responses)
    assert.equal(0, c:poll(0))
    c:close()
  end)

  it("ends a caller at its own deadline while the call goes on for one that came later", function()
    -- the first attempt stalls past the first caller's deadline; the
    -- second caller's later deadline lets the call retry, and the retry
    -- answers at once
    local c = client({ timeout = 1, deadline = 1, retries = 2 })
    local p = { customer_uuid = "mock:flaky:1:stall:5", dealer_uuid = "d" }
    local a = c:start_offers(p)
    local t0 = core.monotonic()
    while core.monotonic() - t0 < 0.5 do c:poll(10) end
    local b = c:start_offers(p)
    drain(c)
    local _, err = a:result()
    assert.equal("timeout", err.kind)
    assert.is_false(err.joined)
    local offers = b:result()
    assert.is_table(offers)
    assert.is_true(offers:meta().joined)
    assert.equal(2, offers:meta().attempts)
    assert.equal(2, calls())
    c:close()
  end)

  it("ends every caller once when the client closes", function()
    local c = client()
    local p = { customer_uuid = "mock:stall:1", dealer_uuid = "d" }
    local ended = 0
    for _ = 1, 5 do
      c:start_offers({ customer_uuid = p.customer_uuid, dealer_uuid = "d",
                       on_done = function(_, err)
                         assert.equal("cancelled", err.kind)
                         ended = ended + 1
                       end })
    end
    c:poll(0)
    c:close()
    assert.equal(5, ended)
  end)

  it("gives every caller the error of a call that failed, each its own", function()
    local c = client({ retries = 0 })
    local p = { customer_uuid = "mock:error500", dealer_uuid = "d" }
    local a, b = c:start_offers(p), c:start_offers(p)
    drain(c)
    local _, ea = a:result()
    local _, eb = b:result()
    assert.equal("http", ea.kind)
    assert.equal(500, eb.status)
    assert.are_not.equal(ea, eb)
    assert.is_false(ea.joined)
    assert.is_true(eb.joined)
    assert.equal(1, calls())
    c:close()
  end)
end)
