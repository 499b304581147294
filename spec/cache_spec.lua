-- The opt-in cache: a fresh entry answers without an API call (the mock
-- counts them), an entry past its ttl answers while the API fails, errors
-- are never kept, and it is bounded.
local kpayment = require("kpayment")
local mock = require("support.mock")

describe("the cache option", function()
  local server
  lazy_setup(function() server = mock.start({}) end)
  lazy_teardown(function() if server then server.stop() end end)
  before_each(function() server.reset() end)

  local function client(cache, opts)
    local o = { base_url = server.url, skin = "s", timeout = 10, cache = cache }
    for k, v in pairs(opts or {}) do o[k] = v end
    return kpayment.new(o)
  end

  local function calls() return server.stats().requests end

  local P = { customer_uuid = "mock:offers:3", dealer_uuid = "d" }

  it("answers from a fresh entry without an API call, in fresh tables", function()
    local requests = 0
    local c = client({ ttl = 60 }, { on_request = function() requests = requests + 1 end })
    local first = assert(c:get_offers(P))
    local second = assert(c:get_offers(P))
    assert.equal(1, calls())
    assert.equal(1, requests, "no attempt, no on_request")
    assert.is_true(second:meta().cached)
    assert.is_false(second:meta().stale)
    assert.is_true(second:meta().age >= 0)
    assert.equal(0, second:meta().attempts)
    assert.is_nil(first:meta().cached)
    assert.are_not.equal(first, second)
    assert.are_not.equal(first[1], second[1])
    assert.same(first[1].id, second[1].id)
    second[1].id = "changed"
    assert.are_not.equal("changed", assert(c:get_offers(P))[1].id)
    -- start_offers too: delivered by the next poll
    local got
    c:start_offers({ customer_uuid = P.customer_uuid, dealer_uuid = "d",
                     on_done = function(offers) got = offers end })
    c:poll(0)
    assert.is_true(got:meta().cached)
    assert.equal(1, calls())
    c:close()
  end)

  it("applies each call's own fields to a hit", function()
    local c = client({ ttl = 60 })
    assert(c:get_offers(P))
    local some = assert(c:get_offers({ customer_uuid = P.customer_uuid, dealer_uuid = "d",
                                       fields = { "id" } }))
    assert.equal(1, calls())
    assert.is_not_nil(some[1].id)
    assert.is_nil(some[1].status)
    c:close()
  end)

  it("asks the API again once the ttl has passed, or when a call says cache = false", function()
    local c = client({ ttl = 0.2 })
    assert(c:get_offers(P))
    require("socket").sleep(0.3)
    assert.is_nil(assert(c:get_offers(P)):meta().cached)
    assert.equal(2, calls())
    local fresh = assert(c:get_offers({ customer_uuid = P.customer_uuid, dealer_uuid = "d", cache = false }))
    assert.is_nil(fresh:meta().cached)
    assert.equal(3, calls())
    assert.is_true(assert(c:get_offers(P)):meta().cached, "what cache = false fetched is kept")
    assert.equal(3, calls())
    c:close()
  end)

  it("counts an entry's age from the response's arrival, not from when its result is taken", function()
    local c = client({ ttl = 0.3 })
    local req = c:start_offers(P)
    while not req:done() do c:poll(10) end
    require("socket").sleep(0.4)
    assert(req:result())
    local again = assert(c:get_offers(P))
    assert.is_nil(again:meta().cached, "a body 0.4 s old is past a ttl of 0.3")
    assert.equal(2, calls())
    c:close()
  end)

  it("never keeps an error", function()
    local c = client({ ttl = 60 }, { retries = 0 })
    local p = { customer_uuid = "mock:error500", dealer_uuid = "d" }
    assert.is_nil((c:get_offers(p)))
    assert.is_nil((c:get_offers(p)))
    assert.equal(2, calls())
    c:close()
  end)

  it("answers with an entry past its ttl while the API is down, marked stale", function()
    local own = mock.start({})
    local seen = {}
    local c = kpayment.new({ base_url = own.url, skin = "s", timeout = 2, retries = 0,
                             cache = { ttl = 0.1, stale_if_error = 60 },
                             on_response = function(info) seen[#seen + 1] = info end })
    assert(c:get_offers(P))
    own.stop()
    require("socket").sleep(0.2)
    local offers, err = c:get_offers(P)
    assert.is_nil(err)
    local meta = offers:meta()
    assert.is_true(meta.stale)
    assert.is_true(meta.cached)
    assert.equal("network", meta.error.kind)
    assert.is_true(meta.age >= 0.1)
    assert.equal(3, #offers)
    assert.is_true(seen[#seen].stale, "on_response says so")
    assert.equal("network", seen[#seen].error)
    c:close()
    -- without stale_if_error, the error
    local d = kpayment.new({ base_url = own.url, skin = "s", timeout = 2, retries = 0,
                             cache = { ttl = 60 } })
    local _, e = d:get_offers(P)
    assert.equal("network", e.kind)
    d:close()
  end)

  it("gives each caller of a shared call its own copy of the error a stale answer stands in for", function()
    local own = mock.start({})
    local c = kpayment.new({ base_url = own.url, skin = "s", timeout = 2, retries = 0,
                             cache = { ttl = 0.1, stale_if_error = 60 } })
    assert(c:get_offers(P))
    own.stop()
    require("socket").sleep(0.2)
    local a, b = c:start_offers(P), c:start_offers(P)
    while not (a:done() and b:done()) do c:poll(10) end
    local ea, eb = assert(a:result()):meta().error, assert(b:result()):meta().error
    assert.equal("network", ea.kind)
    assert.equal("network", eb.kind)
    assert.are_not.equal(ea, eb)
    ea.message = "changed"
    assert.are_not.equal("changed", eb.message)
    c:close()
  end)

  it("forgets one customer's entries, or every entry", function()
    local c = client({ ttl = 60 })
    assert(c:get_offers(P))
    assert(c:get_offers({ customer_uuid = "mock:offers:2", dealer_uuid = "d" }))
    assert.equal(1, c:purge(P.customer_uuid))
    assert(c:get_offers(P))
    assert.equal(3, calls())
    assert.is_true(assert(c:get_offers({ customer_uuid = "mock:offers:2", dealer_uuid = "d" })):meta().cached)
    assert.equal(2, c:purge())
    assert.equal(0, client():purge(), "no cache, nothing to forget")
    c:close()
  end)

  it("is bounded by entries and bytes, least recently used out first", function()
    local c = client({ ttl = 60, max_entries = 3 })
    for i = 1, 3 do assert(c:get_offers({ customer_uuid = P.customer_uuid, dealer_uuid = "d" .. i })) end
    assert(c:get_offers({ customer_uuid = P.customer_uuid, dealer_uuid = "d1" }))   -- d1 used: d2 oldest
    assert(c:get_offers({ customer_uuid = P.customer_uuid, dealer_uuid = "d4" }))
    assert.equal(3, c._cache:stats().entries)
    assert.equal(4, calls())
    local function cached(dealer)
      return assert(c:get_offers({ customer_uuid = P.customer_uuid, dealer_uuid = dealer })):meta().cached
    end
    assert.is_true(cached("d1"))
    assert.is_nil(cached("d2"))
    c:close()
    local small = client({ ttl = 60, max_bytes = 1000 })
    assert(small:get_offers(P))
    assert.equal(0, small._cache:stats().entries, "a body over max_bytes is not kept")
    small:close()
  end)

  it("counts the memory it holds (bodies, URLs and each entry's overhead) #lua54", function()
    local cache = require("kpayment.cache")
    local body = require("kpayment.mock").offers_json({ customerUUID = "c", dealerUUID = "d", skin = "s",
                                                        locale = "en-US" }, 1)
    collectgarbage()
    collectgarbage()
    local before = collectgarbage("count")
    local c = cache.new({ ttl = 60, max_entries = 100000, max_bytes = 2 ^ 40 })
    for i = 1, 1000 do
      c:put("http://h/p?customerUUID=c" .. i .. "&dealerUUID=d", "c" .. i, i .. body, 200, 0, 0)
    end
    collectgarbage()
    collectgarbage()
    local used = (collectgarbage("count") - before) * 1024
    local counted = c:stats().bytes
    assert.is_true(used <= counted * 1.05 and used >= counted * 0.9,
      ("measured %d bytes, counted %d"):format(used, counted))
  end)

  it("checks the option", function()
    local cases = {
      { {}, "bad option 'cache' ('ttl' is required)" },
      { { ttl = 0 }, "bad option 'cache' ('ttl': seconds above 0, up to 86400 expected)" },
      { { ttl = 1, stale_if_error = -1 },
        "bad option 'cache' ('stale_if_error': seconds from 0 to 86400 expected)" },
      { { ttl = 1, max_entries = 1.5 },
        "bad option 'cache' ('max_entries': an integer from 1 to 10000000 expected)" },
      { { ttl = 1, max_bytes = 0 }, "bad option 'cache' ('max_bytes': bytes from 1 to 2^52 expected)" },
      { { ttl = 1, size = 1 }, "bad option 'cache' (unknown key 'size')" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(kpayment.new, { base_url = server.url, cache = case[1] })
      assert.is_false(ok)
      assert.matches(case[2], err, 1, true)
    end
    local bad = { customer_uuid = "c", dealer_uuid = "d", cache = "no" }
    assert.has_error(function() client({ ttl = 1 }):get_offers(bad) end,
      "kpayment: bad parameter 'cache' (boolean expected, got string)")
  end)
end)
