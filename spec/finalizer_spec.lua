-- Lua 5.4 runs __gc finalizers inside any allocation, so user code can run
-- in the middle of a response's decode.  Here finalizers close the client,
-- make a nested blocking call, start and poll requests, and cancel or ask
-- for the result of the very request being decoded.  Nothing may crash or
-- read freed memory (this file also runs under ASan and valgrind), and each
-- call still gives a valid outcome: all the offers, or nil and a
-- "cancelled" error.  Real HTTP against the mock.
local kpayment = require("kpayment")
local mock = require("support.mock")
local gc = require("support.gc")
local launcher = require("support.server")

local BIG = 3000     -- offers: about 13 MB of JSON, many collections per decode
local SMALL = 600    -- offers: about 2.6 MB, several collections even when a loaded machine
                     -- left a larger heap (300 sometimes gave one round)
local ACT_AT = 25    -- a finalizer acts at this firing in the decode (second round)
-- The specs whose finalizers act three times act at firings 5, 15 and 25:
-- how many rounds a decode gets depends on the heap the wait left, which a
-- loaded machine (longer waits) makes larger, and 45 was not always reached.
local TIMEOUT = 120  -- seconds: generous, for valgrind
local CLOSED = "kpayment: attempt to use a closed client"

describe("kpayment under finalizers", function()
  -- Under LuaJIT the storms run with the compiler on: a compiled loop
  -- inside a finalizer is part of what they test (see the last block).
  local server
  local want = {}      -- offer count -> position -> id, from a quiet call
  local active         -- the storm whose phase the debug logger moves
  local clients = {}

  local function params(customer, extra)
    local p = { customer_uuid = customer, dealer_uuid = "d" }
    for k, v in pairs(extra or {}) do p[k] = v end
    return p
  end

  -- A client whose debug log tells the storm when a blocking call has sent
  -- its request: from then on, what allocates is the decode.
  local function client()
    local c = kpayment.new({
      base_url = server.url, skin = "s", timeout = TIMEOUT, retries = 0, debug = true,
      -- poll decodes a response in one call here, so that the storm runs
      -- inside it (the sliced decode has its own specs below)
      decode_budget = math.huge,
      logger = function(level, message)
        if active and active.phase ~= "decode" and level == "debug" and message:find("^GET ") then
          active.set_phase("decode")
        end
      end,
    })
    clients[#clients + 1] = c
    return c
  end

  lazy_setup(function()
    server = mock.start({})
    local c = kpayment.new({ base_url = server.url, skin = "s", timeout = TIMEOUT })
    for _, n in ipairs({ BIG, SMALL }) do
      local offers = assert(c:get_offers(params("mock:offers:" .. n)))
      want[n] = {}
      for _, pos in ipairs({ 1, 2, math.floor(n / 2), n }) do want[n][pos] = offers[pos].id end
    end
    c:close()
  end)

  lazy_teardown(function() if server then server.stop() end end)

  after_each(function()
    active = nil
    for i = #clients, 1, -1 do
      pcall(clients[i].close, clients[i])
      clients[i] = nil
    end
  end)

  local function check_full(offers, n)
    assert.is_table(offers)
    assert.equal(n, #offers)
    for pos, id in pairs(want[n]) do assert.equal(id, offers[pos].id, "offer #" .. pos) end
    assert.equal("mock:offers:" .. n, offers[n].customerUUID)
  end

  -- All the offers, or nil and a "cancelled" error: nothing else.
  local function check_outcome(offers, err, n)
    if offers ~= nil then
      assert.is_nil(err)
      check_full(offers, n)
      return "offers"
    end
    assert.is_true(kpayment.is_error(err), "neither offers nor an error: " .. tostring(err))
    assert.equal("cancelled", err.kind, tostring(err))
    return "cancelled"
  end

  -- The storm ran cleanly and its finalizers fired inside the decode.
  local function check_storm(fin)
    assert.same({}, fin.errors)
    assert.is_true(fin.ok, tostring(fin.results[1]))
    assert.equal("decode", fin.phase)
    assert.is_true(fin.in_phase >= ACT_AT, fin.in_phase .. " finalizers ran in the decode")
  end

  -- The transfer of a started request is over, its outcome not taken yet
  -- (polls with a budget of 0 decode at most one record).
  local function arrived(c, req)
    local deadline = os.time() + TIMEOUT
    while tostring(req):find("running") and os.time() < deadline do c:poll(10, 0) end
    assert.equal("kpayment.Request (decoding)", tostring(req))
  end

  describe("a blocking call", function()
    it("survives a finalizer that closes the client", function()
      local c = client()
      local fin = gc.storm(function(f)
        if f.phase == "decode" and f.in_phase >= ACT_AT and not f.closed then
          f.closed = true
          c:close()
        end
      end, function(f)
        active = f
        return c:get_offers(params("mock:offers:" .. BIG))
      end)
      check_storm(fin)
      assert.is_true(fin.closed)
      check_outcome(fin.results[1], fin.results[2], BIG)
      assert.has_error(function() c:get_offers(params("fin-after-close")) end, CLOSED)
      assert.equal(0, c:poll(0))
    end)

    it("survives finalizers that make blocking calls on the same client", function()
      local c = client()
      local nested = {}
      local fin = gc.storm(function(f)
        if f.phase == "decode" and f.in_phase % 10 == 5 and #nested < 3 then
          local k = #nested + 1
          nested[k] = false
          local offers, err = c:get_offers(params("fin-nested-" .. k))
          nested[k] = { offers = offers, err = err }
        end
      end, function(f)
        active = f
        return c:get_offers(params("mock:offers:" .. SMALL))
      end)
      check_storm(fin)
      assert.is_nil(fin.results[2])
      check_full(fin.results[1], SMALL)
      assert.equal(3, #nested)
      for k, got in ipairs(nested) do
        assert.is_nil(got.err, tostring(got.err))
        assert.equal(3, #got.offers)
        assert.equal("fin-nested-" .. k, got.offers[1].customerUUID)
      end
      assert.equal(3, #c:get_offers(params("fin-after-nested")))
    end)

    it("survives finalizers that start requests and poll", function()
      local c = client()
      local started, polls, calls = {}, {}, {}
      local fin = gc.storm(function(f)
        if f.phase == "decode" and f.in_phase % 10 == 5 and #started < 3 then
          local k = #started + 1
          calls[k] = {}
          started[k] = c:start_offers(params("fin-started-" .. k, {
            on_done = function(offers, err) table.insert(calls[k], { offers = offers, err = err }) end,
          }))
          polls[#polls + 1] = c:poll(0)
        end
      end, function(f)
        active = f
        return c:get_offers(params("mock:offers:" .. SMALL))
      end)
      check_storm(fin)
      assert.is_nil(fin.results[2])
      check_full(fin.results[1], SMALL)
      assert.equal(3, #started)
      for _, n in ipairs(polls) do assert.is_true(n == math.floor(n) and n >= 0) end
      local t0 = os.time()
      while c:poll(10) > 0 and os.time() - t0 < TIMEOUT do end
      for k = 1, 3 do
        assert.equal(1, #calls[k], "on_done of request " .. k)
        assert.is_nil(calls[k][1].err)
        assert.equal("fin-started-" .. k, calls[k][1].offers[1].customerUUID)
      end
      assert.equal(0, c:poll(0))
    end)
  end)

  describe("poll delivering a request", function()
    -- A started request with on_done whose response is in; the returned
    -- list receives each on_done call.
    local function arrived_with_callback(c, n)
      local calls = {}
      local req = c:start_offers(params("mock:offers:" .. n, {
        on_done = function(offers, err, r) calls[#calls + 1] = { offers = offers, err = err, req = r } end,
      }))
      arrived(c, req)
      assert.equal(0, #calls)
      return req, calls
    end

    -- One on_done call, with what result() gives then and later.
    local function check_delivered_once(c, req, calls, n)
      assert.equal(1, #calls)
      assert.equal(req, calls[1].req)
      local kind = check_outcome(calls[1].offers, calls[1].err, n)
      local offers, err = req:result()
      assert.equal(calls[1].offers, offers)
      assert.equal(calls[1].err, err)
      local ok, pending = pcall(c.poll, c, 0)
      assert.is_true(ok, tostring(pending))
      assert.equal(0, pending)
      assert.equal(1, #calls)
      return kind
    end

    it("survives a finalizer that cancels the request being decoded", function()
      local c = client()
      local req, calls = arrived_with_callback(c, BIG)
      local fin = gc.storm(function(f)
        if f.in_phase >= ACT_AT and not f.cancelled then
          f.cancelled = true
          req:cancel()
        end
      end, function() return c:poll(0) end, { phase = "decode" })
      check_storm(fin)
      assert.is_true(fin.cancelled)
      check_delivered_once(c, req, calls, BIG)
      assert.equal(3, #c:get_offers(params("fin-after-cancel")))
    end)

    it("survives a finalizer that asks for the result being decoded", function()
      local c = client()
      local req, calls = arrived_with_callback(c, SMALL)
      local fin = gc.storm(function(f)
        if f.in_phase >= ACT_AT and not f.nested then
          f.nested = gc.pack(pcall(req.result, req))
        end
      end, function() return c:poll(0) end, { phase = "decode" })
      check_storm(fin)
      assert.is_table(fin.nested)
      assert.is_true(fin.nested[1], tostring(fin.nested[2]))
      assert.equal("offers", check_delivered_once(c, req, calls, SMALL))
      -- one outcome, whoever asked first
      assert.equal(calls[1].offers, fin.nested[2])
      assert.is_nil(fin.nested[3])
    end)

    it("survives a finalizer that closes the client", function()
      local c = client()
      local req, calls = arrived_with_callback(c, SMALL)
      local fin = gc.storm(function(f)
        if f.in_phase >= ACT_AT and not f.closed then
          f.closed = true
          c:close()
        end
      end, function() return c:poll(0) end, { phase = "decode" })
      check_storm(fin)
      assert.is_true(fin.closed)
      check_delivered_once(c, req, calls, SMALL)
      assert.has_error(function() c:start_offers(params("fin-after-close")) end, CLOSED)
    end)
  end)

  describe("under LuaJIT's compiler", function()
    -- LuaJIT 2.1 (Debian's 2.1-20230119 among others) can spin for ever in
    -- a compiled pairs loop run inside a finalizer; the client's loops over
    -- its requests must end there all the same.  A child process, so that
    -- a spin fails this spec instead of holding busted.
    it("a finalizer closes a client whose poll loops are compiled", function()
      local lua = os.getenv("KPAYMENT_LUA") or (jit and "luajit" or "lua5.4")
      local q = launcher.shell_quote
      local command = string.format("LUA_PATH=%s LUA_CPATH=%s timeout -k 5 60 %s %s %s 2>&1",
        q(package.path), q(package.cpath), lua, q("spec/support/jit_close.lua"), q(server.url))
      local pipe = assert(io.popen(command, "r"))
      local out = pipe:read("*a")
      pipe:close()
      assert.equal("ok 120 120\n", out, "the child did not finish in 60 s (a spinning loop?)")
    end)
  end)

  describe("result() of a finished request", function()
    it("gives one outcome when a finalizer cancels it and asks again", function()
      local c = client()
      local req = c:start_offers(params("mock:offers:" .. SMALL))
      arrived(c, req)
      local fin = gc.storm(function(f)
        if f.in_phase >= ACT_AT and not f.nested then
          req:cancel()
          f.nested = gc.pack(pcall(req.result, req))
        end
      end, function() return req:result() end, { phase = "decode" })
      check_storm(fin)
      assert.is_table(fin.nested)
      assert.is_true(fin.nested[1], tostring(fin.nested[2]))
      local offers, err = fin.results[1], fin.results[2]
      check_outcome(offers, err, SMALL)
      assert.equal(offers, fin.nested[2])
      assert.equal(err, fin.nested[3])
      local again_offers, again_err = req:result()
      assert.equal(offers, again_offers)
      assert.equal(err, again_err)
      assert.equal(3, #c:get_offers(params("fin-after-result")))
    end)
  end)
end)
