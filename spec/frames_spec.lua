-- What a frame host (a 60 Hz loop polling with poll(0)) needs: every
-- ready result delivered by one poll within its budget, receiving that
-- does not eat into the requests' timeouts, requests that end when their
-- client is collected, and the sockets and timeout to sleep on.
local kpayment = require("kpayment")
local core = require("kpayment.core")
local config = require("kpayment.config")
local mock = require("support.mock")
local socket = require("socket")

local FRAME = 1 / 60
-- Under valgrind (make memcheck sets KPAYMENT_SLOW) code runs 20 to 50
-- times slower: a poll's decode budget is scaled the same way, so that
-- "within its budget" means the same amount of work.
local SLOW = os.getenv("KPAYMENT_SLOW") and 50 or 1

describe("a frame loop", function()
  local server
  lazy_setup(function() server = mock.start({}) end)
  lazy_teardown(function() if server then server.stop() end end)

  local function client(opts)
    local o = { base_url = server.url, skin = "s", timeout = 20 }
    for k, v in pairs(opts or {}) do o[k] = v end
    return kpayment.new(o)
  end

  it("gets every ready result from one poll(0) while its budget lasts: 200 small requests", function()
    local c = client({ decode_budget = config.DEFAULT_DECODE_BUDGET * SLOW })
    local delivered = 0
    for i = 1, 200 do
      c:start_offers({ customer_uuid = "mock:offers:1", dealer_uuid = "d-" .. i,
                       on_done = function(offers) if offers then delivered = delivered + 1 end end })
    end
    -- the responses arrive while the host sleeps; then frames of poll(0).
    -- How fast the mock answers and how much a 2 ms budget decodes both
    -- depend on the machine's load, so the spec holds the contract itself:
    -- once everything has arrived (the frame after the one at which the
    -- mock had answered all 200), a poll that leaves results undelivered
    -- has spent its whole budget on them. One result a poll would leave
    -- about 150 after well under a millisecond.
    server.reset()
    local budget = config.DEFAULT_DECODE_BUDGET * SLOW
    local frames, answered_at, short = 0, nil, {}
    while delivered < 200 and frames < 1200 do
      socket.sleep(FRAME)
      local t0 = core.monotonic()
      c:poll(0)
      local took = (core.monotonic() - t0) * 1000
      frames = frames + 1
      if answered_at and frames > answered_at + 1 and delivered < 200 and took < 0.9 * budget then
        short[#short + 1] = ("frame %d: %.2f ms, %d delivered"):format(frames, took, delivered)
      end
      if not answered_at and server.stats().requests >= 200 then answered_at = frames end
    end
    io.stderr:write(("\n[frames] 200 small requests delivered in %d frames, %s after all had arrived\n")
      :format(frames, answered_at and frames - answered_at or "?"))
    assert.equal(200, delivered)
    assert.is_not_nil(answered_at)
    assert.same({}, short)
    c:close()
  end)

  it("sends a request started before a frame longer than its timeout: time counts from the wire", function()
    -- a host starts a request, then spends 1.5 s elsewhere (loading a
    -- level) before its next poll: nothing was sent meanwhile
    local c = client({ timeout = 1, retries = 0 })
    server.reset()
    -- one alone, and three identical ones that share one call
    local reqs = { c:start_offers({ customer_uuid = "c-long-frame", dealer_uuid = "d" }) }
    for i = 2, 4 do reqs[i] = c:start_offers({ customer_uuid = "c-long-frame", dealer_uuid = "d-shared" }) end
    socket.sleep(1.5)
    local deadline = core.monotonic() + 10 * SLOW
    local function all_done()
      for _, req in ipairs(reqs) do if not req:done() then return false end end
      return true
    end
    while not all_done() and core.monotonic() < deadline do
      c:poll(0)
      socket.sleep(FRAME)
    end
    for i, req in ipairs(reqs) do
      local offers, err = req:result()
      assert.is_nil(err, i .. ": " .. tostring(err))
      assert.equal(3, #offers)
    end
    assert.equal(2, server.stats().requests)
    c:close()
  end)

  it("ends a request at its deadline inside a long poll(ms), whenever it was first polled", function()
    -- a deadline given is wall-clock time from the call; the attempt's
    -- timeout (10 s) counts from the wire, so only the deadline ends it
    local c = client({ timeout = 10, deadline = 1, retries = 0 })
    local t0 = core.monotonic()
    local a = c:start_offers({ customer_uuid = "mock:stall:5", dealer_uuid = "d-deadline" })
    socket.sleep(0.5)
    local b = c:start_offers({ customer_uuid = "mock:stall:5", dealer_uuid = "d-deadline" })   -- joins a
    while not a:done() and core.monotonic() - t0 < 10 do c:poll(3000) end
    local took = core.monotonic() - t0
    local _, err = a:result()
    assert.equal("timeout", err.kind)
    assert.is_true(took < 1.3 * SLOW, ("ended %.2f s after the call"):format(took))
    while not b:done() and core.monotonic() - t0 < 10 do c:poll(3000) end
    assert.is_true(core.monotonic() - t0 < 1.8 * SLOW, ("the second ended %.2f s after the first call")
      :format(core.monotonic() - t0))
    c:close()
  end)

  it("returns from a long poll(ms) as soon as an answer came, a deadline given or not", function()
    -- a request with a deadline has a timer; one that ended in this poll
    -- still looked running when poll chose what to wait for, and it slept
    -- to its deadline, or the whole ms
    for _, opts in ipairs({ { deadline = 5, coalesce = false }, { deadline = 5 }, {} }) do
      local c = client(opts)
      local got
      c:start_offers({ customer_uuid = "mock:stall:0.05", dealer_uuid = "d-fast",
                       on_done = function(offers) got = offers end })
      local t0 = core.monotonic()
      while got == nil and core.monotonic() - t0 < 10 do c:poll(3000) end
      local took = core.monotonic() - t0
      c:close()
      assert.is_truthy(got)
      assert.is_true(took < 1 * SLOW, ("delivered %.2f s after the first poll (deadline %s)")
        :format(took, tostring(opts.deadline)))
    end
  end)

  it("spends a poll's budget on decoding and callbacks, then leaves the rest to the next", function()
    local c = client()
    local delivered = 0
    for i = 1, 50 do
      c:start_offers({ customer_uuid = "mock:offers:40", dealer_uuid = "d-" .. i,
                       on_done = function() delivered = delivered + 1 end })
    end
    local deadline = core.monotonic() + 20 * SLOW
    while c:poll(0, 0) > 0 and delivered == 0 and core.monotonic() < deadline do socket.sleep(0.001) end
    -- budget 0: one record, or one delivery, per poll, never all 50 at once
    assert.is_true(delivered >= 1 and delivered < 50, delivered .. " delivered by one poll(0, 0)")
    while c:poll(0) > 0 and core.monotonic() < deadline do socket.sleep(0.001) end
    assert.equal(50, delivered)
    c:close()
  end)
end)

describe("a client that goes away", function()
  local server
  lazy_setup(function() server = mock.start({}) end)
  lazy_teardown(function() if server then server.stop() end end)

  -- The Lua under test (its build directory too) running `script` in a
  -- state of its own, which its end closes (lua_close): what it printed,
  -- and how it exited.
  local LUA = os.getenv("KPAYMENT_LUA") or "lua5.4"
  local function child(script)
    local build = LUA:find("jit") and "luajit" or LUA:match("%d%.%d")
    local cmd = ("LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/%s/?.so;;' %s -e %s 2>&1")
      :format(build, LUA, require("support.server").shell_quote(script))
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    local ok, _, code = p:close()
    return out, ok, code
  end

  it("ends its pending requests with on_done(nil, cancelled), once each, when collected", function()
    local kinds = {}
    do
      local c = kpayment.new({ base_url = server.url, skin = "s" })
      for i = 1, 3 do
        c:start_offers({ customer_uuid = "mock:stall:5", dealer_uuid = "d-" .. i,
                         on_done = function(offers, err)
                           kinds[#kinds + 1] = offers and "offers" or err.kind
                         end })
      end
      c:poll(0)
    end
    for _ = 1, 4 do collectgarbage() end
    assert.same({ "cancelled", "cancelled", "cancelled" }, kinds)
  end)

  it("ends them too when the Lua state closes (lua_close runs finalizers)", function()
    local out = child(([[
      local c = require("kpayment").new({ base_url = %q, skin = "s" })
      c:start_offers({ customer_uuid = "mock:stall:5", dealer_uuid = "d",
                       on_done = function(offers, err) io.stdout:write("on_done ", err.kind, "\n") end })
      c:poll(0)
      io.stdout:write("end of script\n")
    ]]):format(server.url))
    assert.equal("end of script\non_done cancelled\n", out)
  end)

  it("refuses a client or request that an on_done makes while the state closes", function()
    -- Lua gives no finalizer to what is made during lua_close (5.2 to
    -- 5.4: its libcurl handles were lost, as LeakSanitizer finds under
    -- make test-asan) or finalizes it once kpayment.core is unloaded
    -- (LuaJIT: a crash); so kpayment refuses, with a clear error
    local out, ok, code = child(([[
      local kpayment = require("kpayment")
      -- older than c: finalized after it, so still open in its on_done
      local older = kpayment.new({ base_url = %q, skin = "s" })
      local c = kpayment.new({ base_url = %q, skin = "s" })
      c:start_offers({ customer_uuid = "mock:stall:5", dealer_uuid = "d", on_done = function(_, err)
        io.stdout:write("on_done ", err.kind, "\n")
        -- a retry, as a host might write it: on a client of its own, on
        -- another still open, and on this one (closed)
        local ok, why = pcall(kpayment.new, { base_url = %q, skin = "s" })
        io.stdout:write(tostring(ok), " ", tostring(why), "\n")
        for _, client in ipairs({ older, c }) do
          ok, why = pcall(client.start_offers, client, { customer_uuid = "mock:stall:5",
            dealer_uuid = "d2", on_done = function() io.stdout:write("again\n") end })
          io.stdout:write(tostring(ok), " ", tostring(why), "\n")
        end
      end })
      c:poll(0)
      io.stdout:write("end of script\n")
    ]]):format(server.url, server.url, server.url))
    local closing = "the Lua state is closing (lua_close)"
    assert.equal("end of script\non_done cancelled\n"
      .. "false kpayment: " .. closing .. ": no new client\n"
      .. "false kpayment: " .. closing .. ": no new request\n"
      .. "false kpayment: attempt to use a closed client\n", out)
    if _VERSION ~= "Lua 5.1" then assert.is_true(ok, "exit status " .. tostring(code)) end
  end)

  it("frees a client made by a finalizer that runs before kpayment sees the state close", function()
    -- a finalizer of the host's, newer than every client, runs first at
    -- lua_close: what it makes gets no finalizer, and the state's keeper
    -- closes it last (under make test-asan, LeakSanitizer checks this child)
    if LUA:find("jit") or LUA:find("5%.1") then return end   -- no __gc on tables there
    local out, ok, code = child(([[
      local kpayment = require("kpayment")
      local c = kpayment.new({ base_url = %q, skin = "s" })
      HOLD = setmetatable({}, { __gc = function()
        local late = kpayment.new({ base_url = %q, skin = "s" })
        late:start_offers({ customer_uuid = "mock:stall:5", dealer_uuid = "d" })
        late:poll(0)
        io.stdout:write("made one\n")
      end })
      c:start_offers({ customer_uuid = "mock:stall:5", dealer_uuid = "d" })
      c:poll(0)
    ]]):format(server.url, server.url))
    assert.equal("made one\n", out)
    assert.is_true(ok, "exit status " .. tostring(code))
  end)
end)

describe("client:watch", function()
  local server
  lazy_setup(function() server = mock.start({}) end)
  lazy_teardown(function() if server then server.stop() end end)

  -- Poll c until watch gives a socket (to read, with `read`).
  local function until_socket(c, read)
    local fds, timeout
    for _ = 1, 20 do
      c:poll(10)
      fds, timeout = c:watch()
      if #fds > 0 and (not read or fds[1].read) then break end
    end
    return fds, timeout
  end

  it("tells an event loop what to sleep on, and for how long", function()
    local c = kpayment.new({ base_url = server.url, skin = "s", timeout = 10 })
    local fds, timeout = c:watch()
    assert.same({}, fds)
    assert.equal(-1, timeout, "nothing pending")
    -- the API late: a socket to read, and no reason to poll before it
    local req = c:start_offers({ customer_uuid = "mock:stall:1", dealer_uuid = "d" })
    fds, timeout = until_socket(c, true)
    assert.is_true(#fds >= 1, "a socket to watch")
    assert.is_true(fds[1].read)
    assert.is_number(fds[1].fd)
    assert.is_true(timeout ~= 0, "no poll due while the API thinks")
    assert.is_true(timeout <= 10000, "within the attempt's timeout: " .. timeout)
    local deadline = core.monotonic() + 5
    while not req:done() and core.monotonic() < deadline do c:poll(100) end
    assert.is_truthy(req:result())
    assert.equal(-1, select(2, c:watch()))
    -- a retry's timer: no socket, the time until it
    req = c:start_offers({ customer_uuid = "mock:flaky:1:503:1", dealer_uuid = "d" })
    deadline = core.monotonic() + 5
    while req._state ~= "waiting" and core.monotonic() < deadline do c:poll(10) end
    timeout = select(2, c:watch())
    assert.equal("waiting", req._state)
    assert.is_true(timeout > 500 and timeout <= 1000, "the retry's timer: " .. timeout)
    -- a response to decode: poll now
    local slow = kpayment.new({ base_url = server.url, skin = "s", decode_budget = 0 })
    req = slow:start_offers({ customer_uuid = "mock:offers:50", dealer_uuid = "d" })
    deadline = core.monotonic() + 5
    while req._state ~= "decoding" and core.monotonic() < deadline do slow:poll(10, 0) end
    assert.equal(0, select(2, slow:watch()))
    slow:close()
    c:close()
    fds, timeout = c:watch()
    assert.same({}, fds)
    assert.equal(-1, timeout)
  end)

  it("lets the loop sleep while a finished request waits for its caller's result()", function()
    local c = kpayment.new({ base_url = server.url, skin = "s", timeout = 10, retries = 0 })
    -- held without on_done: nothing for poll to do once they end
    local ok = c:start_offers({ customer_uuid = "mock:offers:3", dealer_uuid = "d" })
    local failed = c:start_offers({ customer_uuid = "mock:error500", dealer_uuid = "d" })
    local deadline = core.monotonic() + 5
    while not (ok:done() and failed:done()) and core.monotonic() < deadline do c:poll(100) end
    assert.is_true(ok:done() and failed:done())
    assert.equal(0, c:poll(0))
    local fds, timeout = c:watch()
    assert.same({}, fds)
    assert.equal(-1, timeout, "nothing for a poll to do")
    -- beside one the API is slow with: sleep on its socket, not spin
    local slow = c:start_offers({ customer_uuid = "mock:stall:1", dealer_uuid = "d" })
    fds, timeout = until_socket(c)
    assert.is_true(#fds >= 1, "the slow request's socket")
    assert.is_true(timeout ~= 0, "no poll due: " .. timeout)
    -- and the held results are all still there
    assert.equal(3, #assert(ok:result()))
    local offers, err = failed:result()
    assert.is_nil(offers)
    assert.equal("http", err.kind)
    slow:cancel()
    c:close()
  end)
end)
