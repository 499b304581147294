-- Identical calls on a worker's client share one API call across nginx
-- requests, in a timer of their own: the mock counts the calls, and a
-- request that carried the call can go away without the others noticing.
-- Run by `make test-openresty`.
local nginx = require("support.nginx")
local mock = require("support.mock")
local socket = require("socket")

local ENV = "env KPAYMENT_BASE_URL; env KPAYMENT_SKIN;"

local LOCATIONS = [[
location = /t/call { content_by_lua_block { require("support.nginx_handlers").call() } }
location = /t/call_abortable {
  lua_check_client_abort on;
  content_by_lua_block { require("support.nginx_handlers").call() }
}
location = /t/threads { content_by_lua_block { require("support.nginx_handlers").threads() } }
location = /t/threads_kill { content_by_lua_block { require("support.nginx_handlers").threads_kill() } }
location = /t/poll { content_by_lua_block { require("support.nginx_handlers").poll() } }
location = /t/thread_and_poll { content_by_lua_block { require("support.nginx_handlers").thread_and_poll() } }
location = /t/close_wait { content_by_lua_block { require("support.nginx_handlers").close_wait() } }
location = /t/close_now { content_by_lua_block { require("support.nginx_handlers").close_now() } }
location = /t/max_drivers {
  content_by_lua_block { require("kpayment.nginx").MAX_DRIVERS = tonumber(ngx.var.arg_n) ngx.say("ok") }
}
location = /t/abandoned {
  lua_check_client_abort on;
  content_by_lua_block {
    local mine = { tag = "mine" }
    require("support.nginx_handlers").client({ coalesce = "false" }):start_offers({
      customer_uuid = "mock:stall:20", dealer_uuid = ngx.var.arg_dealer,
      on_done = function() ngx.log(ngx.ERR, "on_done of an abandoned request ran: ", mine.tag) end })
    ngx.sleep(30)
  }
}
location = /t/drivers {
  content_by_lua_block { ngx.say(require("support.nginx_handlers").client({})._core._drivers) }
}
location = /t/hog {
  content_by_lua_block {
    local s = tonumber(ngx.var.arg_s)
    for _ = 1, tonumber(ngx.var.arg_n) do ngx.timer.at(0, function() ngx.sleep(s) end) end
    ngx.say("ok")
  }
}
]]

-- n requests for each of urls, all at once, and how many answered "3 200"
-- (the offers, HTTP 200), with what came.
local function burst(urls, n)
  local out = nginx.burst(urls, n)
  return nginx.count(out, "3 200 "), out
end

describe("shared calls inside nginx", function()
  local m
  setup(function() m = mock.start({}) end)
  teardown(function() if m then m.stop() end end)

  local function start(workers, http)
    return nginx.start({ workers = workers, main = ENV, server = LOCATIONS, http = http,
                         env = { KPAYMENT_BASE_URL = m.url, KPAYMENT_SKIN = "coalesce-spec" } })
  end

  local function calls() return m.stats().requests end

  it("makes one API call for 30 nginx requests asking the same at once (one worker)", function()
    local n = start(1)
    finally(n.stop)
    m.reset()
    local ok, out = burst({ n.url .. "/t/call?customer=mock:stall:0.5&dealer=same" }, 30)
    assert.equal(30, ok, out)
    assert.equal(1, calls())
    -- 10 other customers beside 50 more: one call each
    m.reset()
    local urls = { n.url .. "/t/call?customer=mock:stall:0.5&dealer=same" }
    for i = 1, 10 do urls[#urls + 1] = n.url .. "/t/call?customer=mock:stall:0.5&dealer=d" .. i end
    ok, out = burst(urls, 5)
    assert.equal(55, ok, out)
    assert.equal(11, calls())
  end)

  it("shares per worker with two workers", function()
    local n = start(2)
    finally(n.stop)
    m.reset()
    local ok, out = burst({ n.url .. "/t/call?customer=mock:stall:0.5&dealer=same" }, 40)
    assert.equal(40, ok, out)
    assert.is_true(calls() >= 1 and calls() <= 2, calls() .. " calls")
  end)

  it("answers the others when the request that carried the call goes away", function()
    local n = start(1)
    finally(n.stop)
    m.reset()
    local host, port = n.url:match("^http://([^:/]+):(%d+)")
    local carrier = assert(socket.connect(host, tonumber(port)))
    carrier:send("GET /t/call_abortable?customer=mock:stall:1&dealer=same HTTP/1.1\r\nHost: x\r\n\r\n")
    socket.sleep(0.2)
    -- a second request joins, then the first goes away
    local p = io.popen(("curl -s -m 5 '%s/t/call?customer=mock:stall:1&dealer=same'"):format(n.url))
    socket.sleep(0.2)
    carrier:close()
    local body = p:read("*a")
    p:close()
    assert.matches("^3 200 1 ", body)
    assert.equal(1, calls())
    -- light threads and poll in one request share too, and with others
    m.reset()
    local status, text = n.get("/t/poll?n=4&customer=mock:stall:0.3&dealer=same", 5)
    assert.equal(200, status)
    assert.matches("^4 3,3,3,3 ", text)
    assert.equal(1, calls())
  end)

  it("sends a shared call itself when nginx drops the call's timer (lua_max_running_timers)", function()
    -- nginx accepts the timers, then drops at run time those past its
    -- limit of running timers: their calls were never sent, and every
    -- request for those keys waited for ever, later ones too
    local n = start(1, "lua_max_running_timers 2;")
    finally(n.stop)
    local function urls()
      local list = {}
      for i = 1, 5 do
        list[i] = n.url .. "/t/call?customer=mock:stall:0.5&dealer=k" .. i .. "&timeout=3&retries=0"
      end
      return list
    end
    local t0 = socket.gettime()
    local ok, out = burst(urls(), 1)
    assert.equal(5, ok, out)
    assert.is_true(socket.gettime() - t0 < 3, out)
    -- and again, one at a time: nothing was left hanging
    for _, url in ipairs(urls()) do
      local status, text = n.get(url:sub(#n.url + 1), 5)
      assert.equal(200, status)
      assert.matches("^3 200 ", text)
    end
    assert.matches("lua_max_running_timers are not enough", n.log())
  end)

  it("frees the place of a dropped timer whose callers went away before anyone saw it dropped", function()
    -- every running timer busy, then callers whose requests the client
    -- aborts at once: their calls' timers are dropped unseen; MAX_DRIVERS
    -- (64) such drops used to take every place for shared calls for good
    local n = start(1, "lua_max_running_timers 2;")
    finally(n.stop)
    n.get("/t/max_drivers?n=8")   -- a few such drops suffice
    for round = 1, 4 do
      n.get("/t/hog?n=2&s=0.6", 2)
      local cmd = {}
      for i = 1, 10 do
        cmd[#cmd + 1] = ("curl -s -m 0.05 '%s/t/call_abortable?customer=mock:stall:0.3&dealer=k%d-%d' &")
          :format(n.url, round, i)
      end
      os.execute(table.concat(cmd, " ") .. " wait")
      socket.sleep(0.8)
    end
    local _, drops = n.log():gsub("lua_max_running_timers are not enough", "")
    assert.is_true(drops >= 4, drops .. " timers dropped")
    -- (nginx runs two timers at once here, so a burst cannot show the
    -- places: the client's count of timers held can) one more shared call
    -- later, every place is free again
    m.reset()
    local ok, out = burst({ n.url .. "/t/call?customer=mock:stall:0.2&dealer=same" }, 10)
    assert.equal(10, ok, out)
    assert.equal(1, calls())
    assert.equal("0\n", select(2, n.get("/t/drivers")))
  end)

  it("calls no on_done of a request whose nginx request was aborted, when the worker exits", function()
    -- its handler's coroutine is gone: the callback's upvalues are stale
    -- (they read nil), and no nginx request is left to answer
    local n = start(1)
    finally(n.stop)
    local cmd = {}
    for i = 1, 3 do cmd[i] = ("curl -s -m 0.3 '%s/t/abandoned?dealer=a%d' &"):format(n.url, i) end
    os.execute(table.concat(cmd, " ") .. " wait")
    socket.sleep(0.3)
    n.signal("QUIT")
    local t0 = socket.gettime()
    while #n.workers() > 0 and socket.gettime() - t0 < 10 do socket.sleep(0.1) end
    local log = n.log()
    assert.is_nil(log:find("on_done", 1, true), log)
  end)

  it("polls, and runs get_offers_many, beside a light thread that sends their shared call itself", function()
    -- no timer free for the shared call (max_drivers=0) and no deadline: the
    -- light thread's get_offers sends the call in its own coroutine, and
    -- the main thread's poll (or get_offers_many) saw nothing running and
    -- spun without yielding, for ever, holding the worker
    local n = start(1)
    finally(n.stop)
    for _, many in ipairs({ "", "&many=1" }) do
      local status, text = n.get("/t/thread_and_poll?customer=mock:stall:0.3&dealer=tp&max_drivers=0"
        .. "&pool_size=5" .. many, 6)
      assert.equal(200, status, text)
      assert.equal(many == "" and "thread=3 main=3\n" or "thread=3 main=3,3\n", text)
    end
    assert.equal(200, (n.get("/t/drivers", 2)))
    -- that thread killed while it sends: the others end once its timeout
    -- (1 s) and a second have passed, where they spun without yielding
    for _, many in ipairs({ "", "&many=1" }) do
      local status, text = n.get("/t/thread_and_poll?customer=mock:stall:0.4&dealer=tpk&max_drivers=0"
        .. "&pool_size=6&timeout=1&retries=0&kill_after=0.1" .. many, 6)
      assert.equal(200, status, text)
      assert.equal("thread=killed main=network" .. (many == "" and "" or ",network") .. "\n", text)
    end
  end)

  it("calls a request's on_done in that request when another one closes the client", function()
    local n = start(1)
    finally(n.stop)
    local waiting = io.popen(("curl -s -m 8 '%s/t/close_wait?pool_size=3'"):format(n.url))
    socket.sleep(0.5)
    local status, text = n.get("/t/close_now?pool_size=3", 5)
    local other = waiting:read("*a")
    waiting:close()
    assert.equal(200, status, text)
    assert.equal("closed\n", text)
    assert.equal("on_done ran in /t/close_wait cancelled\npolled until /t/close_wait cancelled\n", other)
    -- and a poll that waits out a retry's Retry-After (3 s) returns at the
    -- close, not when the wait is over
    local t0 = socket.gettime()
    waiting = io.popen(("curl -s -m 8 '%s/t/close_wait?pool_size=4&retries=1&coalesce=false"
      .. "&customer=mock:503:3&ms=5000'"):format(n.url))
    socket.sleep(0.5)
    assert.equal(200, (n.get("/t/close_now?pool_size=4&retries=1&coalesce=false", 5)))
    other = waiting:read("*a")
    waiting:close()
    local took = socket.gettime() - t0
    assert.equal("on_done ran in /t/close_wait cancelled\npolled until /t/close_wait cancelled\n", other)
    assert.is_true(took < 1.5, ("the waiting request ended %.2f s after it started"):format(took))
  end)

  it("answers the others when the light thread that sent their call is killed", function()
    -- no timer free for the shared call (max_drivers=0): the first waiter
    -- sends it in its own light thread, and that thread is killed while the
    -- API thinks; the nine others waited for it for ever
    local n = start(1)
    finally(n.stop)
    local t0 = socket.gettime()
    local status, text = n.get("/t/threads_kill?threads=10&customer=mock:stall:0.5&kill_after=0.2"
      .. "&max_drivers=0&fresh=1&timeout=1&retries=0", 15)
    local took = socket.gettime() - t0
    assert.equal(200, status, text)
    local lines = 0
    for l in text:gmatch("[^\n]+") do
      lines = lines + 1
      -- each ends at its own deadline; the one whose deadline the shared
      -- call carries, once the call is known lost
      assert.is_truthy(l:match("^timeout nil 1 ") or l:match("^network nil 1 .* sent this attempt ended"), l)
    end
    assert.equal(9, lines, text)
    -- the attempt's timeout (1 s) and one second more: then it is known lost
    assert.is_true(took < 4, took .. " s")
  end)
end)
