-- A response decoded in slices (poll's budget) gives exactly what the
-- one-step decode gives, errors and their byte offsets included; a request
-- can be cancelled, closed or collected between two slices; the slices do
-- spread over polls.  Real HTTP against the mock.
local kpayment = require("kpayment")
local core = require("kpayment.core")
local mock = require("support.mock")
local server_support = require("support.server")
local gc = require("support.gc")
local http = require("socket.http")
local socket = require("socket")

local RECORDS = "financeOffers"
local FIELDS = { "id", "customer.firstName", "vehicle", "financeOffers.missing" }

-- nil when a and b are identical (integer and float subtypes too), else
-- where they differ.
local function diff(a, b, path)
  path = path or "value"
  if type(a) ~= "table" or type(b) ~= "table" then
    local ta, tb = math.type and math.type(a), math.type and math.type(b)
    if type(a) ~= type(b) or a ~= b or ta ~= tb then
      return string.format("%s: %s / %s", path, tostring(a), tostring(b))
    end
    return nil
  end
  for k, v in pairs(a) do
    local d = diff(v, rawget(b, k), path .. "." .. tostring(k))
    if d then return d end
  end
  for k in pairs(b) do
    if rawget(a, k) == nil then return path .. "." .. tostring(k) .. ": only in the second" end
  end
  return nil
end

-- What core.decode gives, one step or in steps of one record with full
-- collections between steps: ok, value or message, and the number of steps.
-- A full collection is over the whole suite's heap (about 30 ms once busted
-- has loaded every file), and steps after the first few run the same code:
-- it collects after steps 1 to 3 and every 7th, not after all of them
-- (every step: 20 s of the suite's 47 s of CPU).
local function decode(text, opts, stepped)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  if stepped then
    local n = 0
    o.step_ms, o.on_step = 0, function()
      n = n + 1
      if n <= 3 or n % 7 == 0 then collectgarbage() end
    end
  end
  local ok, value, steps = pcall(core.decode, text, o)
  return ok, value, steps
end

local function same_both_ways(text, opts)
  local ok1, v1 = decode(text, opts, false)
  local ok2, v2, steps = decode(text, opts, true)
  assert.equal(ok1, ok2, tostring(v1) .. " / " .. tostring(v2))
  if ok1 then
    assert.is_nil(diff(v1, v2))
  else
    assert.equal(v1, v2)
  end
  return ok1, steps
end

describe("a response decoded in slices", function()
  local server

  lazy_setup(function() server = mock.start({}) end)
  lazy_teardown(function() if server then server.stop() end end)

  local function body_of(customer)
    local url = server.url .. "/payment/kpayment/v1/finance/getFinanceOffersForCustomer?customerUUID="
      .. customer .. "&dealerUUID=d&skin=s&locale=en-US"
    local text, status = http.request(url)
    assert.equal(200, status)
    return text
  end

  describe("core.decode with step_ms", function()
    it("builds what one step builds, record for record, with and without fields", function()
      for _, n in ipairs({ 0, 1, 2, 57 }) do
        local text = body_of("mock:offers:" .. n)
        local ok, steps = same_both_ways(text, { records = RECORDS })
        assert.is_true(ok)
        assert.is_true(steps >= n, steps .. " steps for " .. n .. " records")
        assert.is_true(same_both_ways(text, { records = RECORDS, fields = FIELDS }))
        assert.is_true(same_both_ways(text, { records = RECORDS, fields = { RECORDS } }))
      end
      assert.is_true(same_both_ways(body_of("mock:unicode"), { records = RECORDS }))
    end)

    it("builds what one step builds on generated responses #int64", function()
      -- bench/gen.lua: every field of the reference offer, escapes,
      -- surrogate pairs, ids above 2^53, nulls; 5.3+ only (its own PRNG)
      local generate = assert(loadfile("bench/gen.lua"))()
      for _, seed in ipairs({ 1, 2, 3 }) do
        local text = generate(40, seed)
        assert.is_true(same_both_ways(text, { records = RECORDS }))
        assert.is_true(same_both_ways(text, { records = RECORDS, fields = FIELDS }))
        -- cut short: the same error at the same byte
        assert.is_false(same_both_ways(text:sub(1, math.floor(#text * 2 / 3)), { records = RECORDS }))
      end
    end)

    it("gives the same errors at the same bytes", function()
      local texts = {
        '{"financeOffers":[{},{}, 3]}',
        '{"a":1,"financeOffers":[{"x":1},{"y":[1,2}]}',
        '{"financeOffers":[{"a":1},{"b":2}',
        '{"financeOffers":[{"a":1},]}',
        '{"financeOffers":[{"a":1}]} x',
        '{"financeOffers":{}}',
        '{"financeOffers":[{}],"financeOffers":[{"k":1}],"z":null}',
        '{"warnings":[1,2],"financeOffers":null,"errors":[{"e":"\\u00e9"}]}',
        '{"financeOffers":[{"s":"\\ud800"}]}',
        '[{"financeOffers":[]}]',
        '{"financeOffers":[' .. string.rep('{"a":[1,2,3]},', 50) .. '{"b":1e999}]}',
        '',
      }
      for _, text in ipairs(texts) do
        same_both_ways(text, { records = RECORDS })
        same_both_ways(text, { records = RECORDS, fields = FIELDS })
      end
      local ok, msg = decode(texts[4], { records = RECORDS }, true)
      assert.is_false(ok)
      assert.equal("kpayment.decode: expected a value at byte 27", msg)
    end)

    it("agrees with one step on every seed of the fuzz corpus", function()
      local listing = io.popen("ls fuzz/seeds")
      local n = 0
      for name in listing:lines() do
        local text = server_support.read_file("fuzz/seeds/" .. name)
        same_both_ways(text, { records = RECORDS })
        same_both_ways(text, { records = RECORDS, fields = FIELDS })
        n = n + 1
      end
      listing:close()
      assert.is_true(n >= 50, n .. " seeds")
    end)

    it("rejects a step_ms that is not milliseconds", function()
      for _, bad in ipairs({ -1, "2", 0 / 0, 1e12 }) do
        assert.has_error(function() core.decode("{}", { records = RECORDS, step_ms = bad }) end,
          "kpayment.decode: option 'step_ms' must be a number of milliseconds")
      end
    end)
  end)

  describe("poll", function()
    local N = 100
    local clients = {}

    local function client(opts)
      local o = { base_url = server.url, skin = "s", retries = 0, timeout = 60 }
      for k, v in pairs(opts or {}) do o[k] = v end
      local c = kpayment.new(o)
      clients[#clients + 1] = c
      return c
    end

    after_each(function()
      for i = #clients, 1, -1 do
        clients[i]:close()
        clients[i] = nil
      end
    end)

    local function params(customer, extra)
      local p = { customer_uuid = customer, dealer_uuid = "d" }
      for k, v in pairs(extra or {}) do p[k] = v end
      return p
    end

    -- Poll until req is decoding (the response is in, not yet decoded);
    -- each poll decodes at most one record (budget 0).
    local function until_decoding(c, req)
      local deadline = os.time() + 30
      while tostring(req):find("running") and os.time() < deadline do c:poll(10, 0) end
      assert.equal("kpayment.Request (decoding)", tostring(req))
    end

    local function ids(offers)
      local out = {}
      for i = 1, #offers do out[i] = offers[i].id end
      return out
    end

    it("spreads a response over polls and delivers what a blocking call gets", function()
      local c = client({ decode_budget = 0 })
      local want = assert(c:get_offers(params("mock:offers:" .. N)))
      local got, calls = nil, 0
      local req = c:start_offers(params("mock:offers:" .. N, {
        on_done = function(offers, err) calls = calls + 1; got = offers or err end,
      }))
      until_decoding(c, req)
      local decoding_polls = 0
      while calls == 0 do
        assert.is_false(req:done())
        local pending = c:poll(0)
        assert.equal(calls == 0 and 1 or 0, pending)
        decoding_polls = decoding_polls + 1
        assert.is_true(decoding_polls <= N + 10, "no end to the decode")
      end
      assert.is_true(decoding_polls >= N - 1, decoding_polls .. " polls for " .. N .. " records")
      assert.is_true(req:done())
      assert.equal(1, calls)
      assert.same(ids(want), ids(got))
      assert.is_nil(diff(want[N].customer, got[N].customer))
      assert.equal(0, c:poll(0))
    end)

    it("takes a budget per call: math.huge decodes the rest in one poll", function()
      local c = client({ decode_budget = 0 })
      local req = c:start_offers(params("mock:offers:" .. N))
      until_decoding(c, req)
      c:poll(0)
      assert.equal("kpayment.Request (decoding)", tostring(req))
      c:poll(0, math.huge)
      assert.is_true(req:done())
      assert.equal(N, #assert(req:result()))
    end)

    it("finishes the decode at once when the result is asked for", function()
      local c = client({ decode_budget = 0 })
      local req = c:start_offers(params("mock:offers:" .. N))
      until_decoding(c, req)
      for _ = 1, 5 do c:poll(0) end
      local offers = assert(req:result())
      assert.equal(N, #offers)
      assert.equal("mock:offers:" .. N, offers[N].customerUUID)
      assert.equal(0, c:poll(0))
    end)

    it("ends a request cancelled between two slices as cancelled, once", function()
      local c = client({ decode_budget = 0 })
      local calls = {}
      local req = c:start_offers(params("mock:offers:" .. N, {
        on_done = function(offers, err) calls[#calls + 1] = { offers = offers, err = err } end,
      }))
      until_decoding(c, req)
      for _ = 1, 5 do c:poll(0) end
      req:cancel()
      assert.equal(1, #calls)
      assert.equal("cancelled", calls[1].err.kind)
      collectgarbage()
      assert.equal(0, c:poll(0))
      assert.equal(1, #calls)
      assert.equal(3, #assert(c:get_offers(params("after-cancel"))))
    end)

    it("ends every request of a client closed between two slices", function()
      local c = client({ decode_budget = 0 })
      local calls = 0
      local req = c:start_offers(params("mock:offers:" .. N, {
        on_done = function(_, err) calls = calls + 1; assert.equal("cancelled", err.kind) end,
      }))
      until_decoding(c, req)
      for _ = 1, 5 do c:poll(0) end
      c:close()
      assert.equal(1, calls)
      collectgarbage()
      assert.equal(0, c:poll(0))
      local _, err = req:result()
      assert.equal("cancelled", err.kind)
    end)

    it("lets a request be collected between two slices", function()
      local c = client({ decode_budget = 0 })
      do
        local req = c:start_offers(params("mock:offers:" .. N))
        until_decoding(c, req)
        for _ = 1, 5 do c:poll(0) end
      end
      collectgarbage()
      collectgarbage()
      c:poll(0)
      assert.equal(0, c:poll(0))
      assert.equal(3, #assert(c:get_offers(params("after-collect"))))
    end)

    it("survives finalizers that cancel or poll while slices run #lua54", function()
      local c = client({ decode_budget = 0 })
      local calls = 0
      local req = c:start_offers(params("mock:offers:" .. N, {
        on_done = function() calls = calls + 1 end,
      }))
      until_decoding(c, req)
      local fin = gc.storm(function(f)
        f.polls = (f.polls or 0) + 1
        if f.polls == 40 then req:cancel() end
        if f.polls % 7 == 0 then c:poll(0) end
      end, function()
        local n = 0
        while calls == 0 and n < 10 * N do
          c:poll(0)
          n = n + 1
        end
        return n
      end)
      assert.same({}, fin.errors)
      assert.is_true(fin.ok, tostring(fin.results[1]))
      assert.equal(1, calls)
      assert.equal(0, c:poll(0))
      assert.equal(3, #assert(c:get_offers(params("after-storm"))))
    end)

    -- Receiving is not the budget's: each poll takes the bytes that came
    -- for a slice of its own (KP_RECV_SLICE_MS), pausing a transfer past it
    -- until the next poll, and the time a transfer spends paused is not
    -- counted against its timeout.
    local function receiving(c, req, polls)
      for _ = 1, polls do
        c:poll(0, 0)
        assert.equal("kpayment.Request (running)", tostring(req))
      end
    end

    it("decodes in slices the copies that joined callers and cache hits get #slow", function()
      -- in a process of its own (a frame host's small heap and incremental
      -- collector).  Decoding a copy on delivery took a whole decode in one
      -- poll, so no poll ever found a copy decoding (only the caller that
      -- decodes the call itself); in slices, each copy of the 1 000-offer
      -- body spans polls.  The times are shown, not checked: a busy machine
      -- may stop any one poll for as long as a decode.
      local lua = os.getenv("KPAYMENT_LUA") or "lua5.4"
      local build = lua:find("jit") and "luajit" or lua:match("%d%.%d")
      local p = assert(io.popen(("LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/%s/?.so;;' "
        .. "%s spec/support/copy_polls.lua %s 1000 2>&1"):format(build, lua, server.url)))
      local out = p:read("*a")
      p:close()
      local joined, hits = out:match("seen decoding (%d+) (%d+)")
      assert.is_not_nil(joined, out)
      -- three callers, two of them copies; twenty hits, each a copy
      assert.equal(3, tonumber(joined), out)
      assert.equal(20, tonumber(hits), out)
    end)

    it("receives a large body sent at once in a few polls of budget 0, never timing out", function()
      -- 4 MB sent at once, a timeout of 1.5 s, a 60 Hz loop of poll(0, 0):
      -- before, one 16 KB piece per poll took 4 s and timed out
      -- (not coalesced: the request's own attempt tells the bytes received)
      -- the mock builds the 4 MB body once (0.15 s of CPU, several times
      -- that on a loaded machine), and the timeouts below are the client's
      assert(client({ timeout = 30 }):get_offers(params("mock:big:4000000")))
      local c = client({ decode_budget = 0, timeout = 1.5, retries = 0, coalesce = false })
      local req = c:start_offers(params("mock:big:4000000"))
      local polls, paused = 0, 0
      local t0 = core.monotonic()
      while tostring(req):find("running") and core.monotonic() - t0 < 10 do
        c:poll(0, 0)
        -- counted from the first byte: the mock's time to build the body
        -- (long on a loaded machine) is not receiving
        if select(3, req._core:stats()) > 0 then polls = polls + 1 end
        socket.sleep(1 / 60)
      end
      local offers, err = req:result()
      assert.is_nil(err, tostring(err))
      assert.is_true(#offers > 0)
      -- one 16 KB piece per poll would take 245 polls; (under valgrind and
      -- the sanitizers, KPAYMENT_SLOW, each poll's slice receives less)
      assert.is_true(polls < (os.getenv("KPAYMENT_SLOW") and 240 or 60), polls .. " polls to receive 4 MB")
      -- the same connection and handles serve the next request
      assert.equal(3, #assert(c:get_offers(params("after-paused"))))
      -- a paused transfer's time stops: a timeout shorter than the frames
      -- it spends paused still lets it finish
      c = client({ decode_budget = 0, timeout = 0.2, retries = 0 })
      req = c:start_offers(params("mock:big:4000000"))
      t0 = core.monotonic()
      while tostring(req):find("running") and core.monotonic() - t0 < 10 do
        c:poll(0, 0)
        paused = paused + 1
        socket.sleep(0.05)
      end
      local _, late = req:result()
      assert.is_nil(late, tostring(late) .. " after " .. paused .. " polls")
    end)

    it("holds a deadline given in wall-clock time, while the budget pauses the transfer", function()
      -- 20 MB (the mock takes about 1 s to start sending it) received in
      -- polls of budget 0 every 0.5 s: each receives for 1 ms, so a few
      -- MB a poll, seconds of polls in all, nearly all of it paused.  The
      -- attempt's timeout leaves the paused time out; the deadline of 3 s
      -- ends the call however much has arrived.  (Before, it ran on and
      -- succeeded after about 5 s.)
      local DEADLINE, EVERY = 3, 0.5
      local c = client({ decode_budget = 0, timeout = 20, deadline = DEADLINE, retries = 2,
                         coalesce = false })
      local req = c:start_offers(params("mock:big:20000000"))
      local t0 = core.monotonic()
      while not req:done() and core.monotonic() - t0 < 20 do
        c:poll(0, 0)
        socket.sleep(EVERY)
      end
      local ended = core.monotonic() - t0
      local offers, err = req:result()
      assert.is_nil(offers, "all 20 MB in " .. ended .. " s")
      assert.equal("timeout", err.kind)
      local slack = os.getenv("KPAYMENT_SLOW") and 3 or 0.5
      assert.is_true(ended < DEADLINE + EVERY + slack, "ended after " .. ended .. " s")
      -- and a host that sleeps until watch's timeout wakes for it
      req = c:start_offers(params("mock:stall:5"))
      c:poll(0, 0)
      local _, timeout = c:watch()
      assert.is_true(timeout > 0 and timeout <= 1000, "watch's timeout: " .. timeout)
      req:cancel()
    end)

    it("cancels, closes and collects a transfer paused by the budget", function()
      -- bodies large enough to take more polls than these (16 MB each)
      local BIG = "mock:big:16000000"
      local c = client({ decode_budget = 0 })
      local calls = 0
      local cancelled = c:start_offers(params(BIG))
      local closed = c:start_offers(params(BIG, {
        on_done = function(_, err) calls = calls + 1; assert.equal("cancelled", err.kind) end,
      }))
      do
        local dropped = c:start_offers(params(BIG))
        receiving(c, dropped, 3)
      end
      receiving(c, cancelled, 2)
      cancelled:cancel()
      collectgarbage()
      collectgarbage()
      receiving(c, closed, 2)
      -- a handle that was paused is never reused: this one runs clean
      assert.equal(3, #assert(c:get_offers(params("after-pause-cancel"))))
      c:close()
      assert.equal(1, calls)
      local _, err = cancelled:result()
      assert.equal("cancelled", err.kind)
    end)

    it("validates the budget option and argument", function()
      for _, bad in ipairs({ -1, "2", 0 / 0 }) do
        assert.has_error(function() kpayment.new({ decode_budget = bad }) end)
      end
      local c = client()
      for _, bad in ipairs({ -1, "2", 0 / 0, true }) do
        assert.has_error(function() c:poll(0, bad) end,
          "kpayment: bad argument #2 to 'poll' (milliseconds from 0 up, or math.huge, expected)")
      end
    end)
  end)
end)
