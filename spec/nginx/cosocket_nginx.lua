-- kpayment inside nginx over cosockets (the default transport), for real:
-- Debian's nginx with the lua module, kpayment's nginx/http.conf included,
-- against the mock over loopback.  Run by `make test-openresty`.
local nginx = require("support.nginx")
local mock = require("support.mock")
local kpayment = require("kpayment")
local socket = require("socket")

local USER, PASSWORD = "nginx-user", "nginx-password-5c1d"

local ENV = "env KPAYMENT_BASE_URL; env KPAYMENT_USERNAME; env KPAYMENT_PASSWORD; env KPAYMENT_SKIN;"

local LOCATIONS = [[
location = /t/call { content_by_lua_block { require("support.nginx_handlers").call() } }
location = /t/threads { content_by_lua_block { require("support.nginx_handlers").threads() } }
location = /t/many { content_by_lua_block { require("support.nginx_handlers").many() } }
location = /t/poll { content_by_lua_block { require("support.nginx_handlers").poll() } }
location = /t/blocking_loop {
  content_by_lua_block {
    local c = require("support.nginx_handlers").client({ coalesce = "false" })
    local function heap()
      collectgarbage()
      collectgarbage()
      return collectgarbage("count")
    end
    local p = { customer_uuid = "c-loop", dealer_uuid = "d" }
    for _ = 1, 100 do assert(c:get_offers(p)) end
    local base = heap()
    for _ = 1, tonumber(ngx.var.arg_n) do assert(c:get_offers(p)) end
    ngx.say(string.format("%.0f", heap() - base))
  }
}
location = /t/access {
  access_by_lua_block {
    local offers, err = require("support.nginx_handlers").client():get_offers({ customer_uuid = "c-a",
      dealer_uuid = "d-a" })
    ngx.ctx.count = offers and #offers or err.kind
  }
  content_by_lua_block { ngx.say(ngx.ctx.count) }
}
location = /t/rewrite {
  rewrite_by_lua_block {
    local offers = require("support.nginx_handlers").client():get_offers({ customer_uuid = "c-r",
      dealer_uuid = "d-r" })
    ngx.ctx.count = offers and #offers
  }
  content_by_lua_block { ngx.say(ngx.ctx.count) }
}
location = /t/set {
  set_by_lua_block $kp_set {
    local ok, err = pcall(function()
      return require("support.nginx_handlers").client():get_offers({ customer_uuid = "c", dealer_uuid = "d" })
    end)
    return ok and "no error" or tostring(err)
  }
  return 200 "$kp_set\n";
}
location = /t/log {
  content_by_lua_block { ngx.say("ok") }
  log_by_lua_block {
    local ok, err = pcall(function()
      return require("support.nginx_handlers").client():get_offers({ customer_uuid = "c", dealer_uuid = "d" })
    end)
    ngx.log(ngx.WARN, "kpayment-spec log phase: ", ok and "no error" or tostring(err))
  }
}
location = /t/timer {
  content_by_lua_block {
    local out = {}
    local ok, err = ngx.timer.at(0, function()
      local offers, e = require("support.nginx_handlers").client({}):get_offers({ customer_uuid = "c-t",
        dealer_uuid = "d-t" })
      out.line = offers and tostring(#offers) or e.kind
    end)
    assert(ok, err)
    for _ = 1, 500 do
      if out.line then break end
      ngx.sleep(0.01)
    end
    ngx.say(out.line)
  }
}
location = /t/init_worker { content_by_lua_block { ngx.say(KPAYMENT_INIT_WORKER) } }
location = /t/init { content_by_lua_block { ngx.say(KPAYMENT_INIT) } }
location = /t/options {
  content_by_lua_block {
    for _, opts in ipairs({ { ca_file = "/etc/ssl/certs/ca-certificates.crt" },
                            { proxy = "http://127.0.0.1:3128" }, { follow_redirects = true } }) do
      local ok, err = pcall(require("kpayment").new, opts)
      ngx.say(ok and "no error" or tostring(err))
    end
  }
}
location = /t/info { content_by_lua_block { ngx.say(require("kpayment").info().transport) } }
location = /t/hooks {
  content_by_lua_block {
    local lines = {}
    local function record(name)
      return function(info)
        lines[#lines + 1] = table.concat({ name, info.attempt, tostring(info.status),
                                           tostring(info.error) }, " ")
      end
    end
    local c = require("kpayment").new({ on_request = record("on_request"),
                                        on_response = record("on_response") })
    c:get_offers({ customer_uuid = ngx.var.arg_customer, dealer_uuid = "d-hooks" })
    ngx.say(table.concat(lines, "\n"))
  }
}
]]

-- init_worker_by_lua can start a timer that calls kpayment (cosockets are
-- not allowed there, but are in the timer); a direct call raises.
local INIT_WORKER = [[
init_by_lua_block {
  local ok, err = pcall(function()
    return require("kpayment").new():get_offers({ customer_uuid = "c", dealer_uuid = "d" })
  end)
  KPAYMENT_INIT = ok and "no error" or tostring(err)
}
init_worker_by_lua_block {
  local ok, err = pcall(function()
    return require("kpayment").new():get_offers({ customer_uuid = "c", dealer_uuid = "d" })
  end)
  KPAYMENT_INIT_WORKER = ok and "no error" or tostring(err)
  ngx.timer.at(0, function()
    local offers, e = require("kpayment").new():get_offers({ customer_uuid = "c-iw", dealer_uuid = "d-iw" })
    KPAYMENT_INIT_WORKER = KPAYMENT_INIT_WORKER .. "\n" .. (offers and #offers or e.kind)
  end)
}
]]

local function fields(line)
  local t = {}
  for w in line:gmatch("%S+") do t[#t + 1] = w end
  return t
end

describe("kpayment inside nginx, over cosockets", function()
  local m, n
  setup(function()
    m = mock.start({ "--user", USER, "--password", PASSWORD })
    n = nginx.start({
      main = ENV, http = INIT_WORKER, server = LOCATIONS, log_level = "debug",
      env = { KPAYMENT_BASE_URL = m.url, KPAYMENT_USERNAME = USER, KPAYMENT_PASSWORD = PASSWORD,
              KPAYMENT_SKIN = "nginx-spec" },
    })
  end)
  teardown(function()
    if n then n.stop() end
    if m then m.stop() end
  end)
  before_each(function() m.reset() end)

  it("gives the offers libcurl gives, with metadata, on kept-alive connections", function()
    local c = kpayment.new({ base_url = m.url, username = USER, password = PASSWORD, skin = "nginx-spec" })
    local want = assert(c:get_offers({ customer_uuid = "c-1", dealer_uuid = "d-1" }))
    m.reset()
    for i = 1, 5 do
      local status, body = n.get("/t/call?customer=c-1&dealer=d-1")
      assert.equal(200, status, body)
      local f = fields(body)
      assert.equal(tostring(#want), f[1], body)
      assert.equal("200", f[2])
      assert.equal("1", f[3])
      assert.equal("mock-" .. i, f[4])
    end
    local stats = m.stats()
    assert.equal(5, stats.requests)
    assert.equal(1, stats.connections, "one kept-alive connection for five calls")
  end)

  it("sends the request headers every transport sends", function()
    n.get("/t/call?customer=c-h")
    local req = m.requests()[1]
    assert.equal("application/json", req.headers.accept)
    assert.equal("Basic", req.headers.authorization, "the mock logs the scheme, and accepted the credentials")
    assert.matches("^kpayment/%S+ %(LuaJIT [^;]+; nginx/%d+%.%d+%.%d+%)$", req.headers["user-agent"])
    assert.is_nil(req.headers["accept-encoding"])
  end)

  it("answers from rewrite, access and content phases, and from timers", function()
    assert.equal("3\n", select(2, n.get("/t/access")))
    assert.equal("3\n", select(2, n.get("/t/rewrite")))
    assert.equal("3\n", select(2, n.get("/t/timer")))
  end)

  it("raises where cosockets are not allowed, naming the phase and the way out", function()
    local _, body = n.get("/t/set")
    assert.matches("nginx allows no cosockets in set_by_lua%* %(phase 'set'%)", body)
    n.get("/t/log")
    socket.sleep(0.1)
    assert.matches("kpayment%-spec log phase: kpayment: nginx allows no cosockets in log_by_lua%*", n.log())
    local _, iw = n.get("/t/init_worker")
    local direct, timer = iw:match("^(.-)\n(.-)\n$")
    assert.matches("nginx allows no cosockets in init_worker_by_lua%*", direct)
    assert.matches("ngx%.timer%.at%(0, function%(%)", direct)
    assert.equal("3", timer, "a timer started by init_worker_by_lua calls it")
    local _, init = n.get("/t/init")
    assert.matches("nginx allows no cosockets in init_by_lua%* %(phase 'init'%)", init)
  end)

  it("reports the API's errors, retries with Retry-After while the worker serves others", function()
    local _, body = n.get("/t/call?customer=mock:error500&retries=0")
    assert.matches("^http 500 1 mock%-%d+ ", body)
    _, body = n.get("/t/call?customer=mock:html502&retries=0")
    assert.matches("^http 502 1 ", body)
    local host, port = n.url:match("^http://([^:/]+):(%d+)")
    local s = assert(socket.connect(host, tonumber(port)))
    s:send("GET /t/call?customer=mock:flaky:1:503:1&retries=2 HTTP/1.0\r\nHost: x\r\n\r\n")
    socket.sleep(0.3)
    local _, pong, ping_time = n.get("/ping")
    assert.equal("pong\n", pong)
    assert.is_true(ping_time < 0.25, "/ping took " .. ping_time .. " s during a retry wait")
    s:settimeout(10)
    local answer = s:receive("*a")
    s:close()
    local f = fields(answer:match("\r\n\r\n(.*)$"))
    assert.equal("3", f[1], answer)
    assert.equal("2", f[3])
    assert.is_true(tonumber(f[5]) >= 0.95, "waited for Retry-After: " .. f[5])
  end)

  it("holds max_body, and tells a refused connection and a timeout apart", function()
    local _, body = n.get("/t/call?customer=c-1&max_body=100")
    assert.matches("^body_too_large 200 1 ", body)
    local dead = "http://127.0.0.1:" .. require("support.server").free_port()
    _, body = n.get("/t/call?retries=0&base_url=" .. dead)
    assert.matches("^network nil 1 nil [%d.]+ cannot connect to 127%.0%.0%.1 port %d+: connection refused",
      body)
    local t
    _, body, t = n.get("/t/call?customer=mock:stall:3&retries=0&timeout=0.5")
    assert.matches("^timeout nil 1 ", body)
    assert.is_true(t < 1.5, "the timeout held: " .. t .. " s")
    -- under a millisecond left to connect: the attempt times out at once
    -- (it used to end without an outcome, and the worker spun for ever);
    -- connect_timeout = 0 is no limit of its own, as with libcurl
    for q, want in pairs({ ["timeout=0.001"] = "^timeout nil 1 ", ["timeout=0.0004&deadline=0.0004"] =
                           "^timeout nil 1 ", ["connect_timeout=0"] = "^3 200 1 " }) do
      local status
      status, body, t = n.get("/t/call?customer=c-ms&retries=0&" .. q, 5)
      assert.equal(200, status, q)
      assert.matches(want, body, q)
      assert.is_true(t < 1, q .. ": " .. t .. " s")
    end
    assert.equal(200, (n.get("/ping", 2)))
  end)

  it("names nginx's resolver when a host name cannot be looked up, and takes `resolve`", function()
    local port = m.url:match(":(%d+)$")
    local _, body = n.get("/t/call?retries=0&base_url=http://api.kpayment.test:" .. port)
    assert.matches("^network nil 1 nil [%d.]+ nginx cannot look up api%.kpayment%.test: .*`resolver`", body)
    _, body = n.get(("/t/call?base_url=http://api.kpayment.test:%s&resolve=api.kpayment.test:%s:127.0.0.1")
      :format(port, port))
    assert.matches("^3 200 1 ", body)
    assert.equal("api.kpayment.test:" .. port, m.requests()[1].headers.host)
  end)

  it("connects to an IPv6 address, in base_url and in `resolve`, as libcurl does", function()
    local m6 = mock.start({ "--host", "::1", "--user", USER, "--password", PASSWORD })
    finally(function() m6.stop() end)
    local port = m6.url:match(":(%d+)$")
    local q = nginx.encode
    local _, body = n.get("/t/call?retries=0&base_url=" .. q("http://[::1]:" .. port))
    assert.matches("^3 200 1 ", body)
    _, body = n.get("/t/call?retries=0&base_url=" .. q("http://api.kpayment.test:" .. port) ..
      "&resolve=" .. q("api.kpayment.test:" .. port .. ":[::1]"))
    assert.matches("^3 200 1 ", body)
  end)

  it("runs get_offers_many at its concurrency, and start_offers with poll", function()
    local _, body = n.get("/t/many?n=20&concurrency=10&customer=mock:stall:1")
    local ok, progress, seconds = body:match("^(%d+) (%d+) ([%d.]+)")
    assert.equal("20", ok, body)
    assert.equal("20", progress)
    assert.is_true(tonumber(seconds) >= 1.9 and tonumber(seconds) < 3, body)
    _, body = n.get("/t/poll?n=4")
    assert.matches("^4 3,3,3,3 %d+\n$", body)
    _, body = n.get("/t/poll?n=3&ms=0")
    assert.matches("^3 3,3,3 %d+\n$", body, "a loop of poll(0) lets the light threads run")
    -- also while its requests only wait to retry (Retry-After: 1 s): a
    -- millisecond a turn, not a busy loop that holds the worker
    for _, coalesce in ipairs({ "false", "true" }) do
      _, body = n.get("/t/poll?n=1&ms=0&retries=1&customer=mock:503:1&coalesce=" .. coalesce, 10)
      local polls = tonumber(body:match("^1 http (%d+)\n$"))
      assert.is_true(polls and polls < 3000, body)
    end
  end)

  it("keeps nothing of the blocking calls made in one long-lived request", function()
    local status, body = n.get("/t/blocking_loop?n=1000", 60)
    assert.equal(200, status, body)
    assert.is_true(tonumber(body) < 300, "the Lua heap grew by " .. body .. " KiB over 1 000 calls")
  end)

  it("refuses the options that cannot work over cosockets, naming what does", function()
    local _, body = n.get("/t/options")
    local lines = {}
    for l in body:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.matches("option 'ca_file' has no effect with the cosocket transport: " ..
      ".*lua_ssl_trusted_certificate", lines[1])
    assert.matches("option 'proxy' has no effect with the cosocket transport: " ..
      ".*transport = \"subrequest\"", lines[2])
    assert.matches("option 'follow_redirects' has no effect", lines[3])
    assert.equal("cosocket\n", select(2, n.get("/t/info")))
  end)

  it("calls the hooks on every attempt", function()
    local _, body = n.get("/t/hooks?customer=mock:flaky:1:503:0")
    assert.equal("on_request 1 nil nil\non_response 1 503 http\n" ..
      "on_request 2 nil nil\non_response 2 200 nil\n", body)
  end)

  it("logs through nginx's error log, with no customer id or secret", function()
    n.get("/t/call?customer=secret-customer-77&debug=1")
    socket.sleep(0.1)
    -- kpayment's own lines (at debug level nginx logs the request line too)
    local log = {}
    for l in n.log():gmatch("[^\n]+") do
      if l:find("kpayment: ", 1, true) then log[#log + 1] = l end
    end
    log = table.concat(log, "\n")
    assert.matches("%[debug%].-kpayment: GET http://127%.0%.0%.1:%d+/payment/kpayment/v1/finance/" ..
      "getFinanceOffersForCustomer %(attempt 1%)", log)
    assert.is_nil(log:find("secret-customer-77", 1, true))
    assert.is_nil(log:find(PASSWORD, 1, true))
  end)
end)
