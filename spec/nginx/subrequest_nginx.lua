-- The subrequest transport (transport = "subrequest") inside nginx, with
-- kpayment's nginx/server.conf included as shipped and the one line that
-- is the user's: where the API is (`upstream kpayment_api`).  Run by
-- `make test-openresty`.
local nginx = require("support.nginx")
local mock = require("support.mock")
local server = require("support.server")
local socket = require("socket")

local USER, PASSWORD = "sub-user", "sub-password-0e7b"

local ENV = "env KPAYMENT_BASE_URL; env KPAYMENT_USERNAME; env KPAYMENT_PASSWORD; env KPAYMENT_SKIN;"

local ROOT = os.getenv("PWD")

local LOCATIONS = [[
location = /t/call { content_by_lua_block { require("support.nginx_handlers").call() } }
location = /t/many { content_by_lua_block { require("support.nginx_handlers").many() } }
location = /t/thread_and_poll { content_by_lua_block { require("support.nginx_handlers").thread_and_poll() } }
location = /t/kill_one { content_by_lua_block { require("support.nginx_handlers").kill_one() } }
location = /t/cached { content_by_lua_block { require("support.nginx_handlers").cached() } }
location = /t/timer {
  content_by_lua_block {
    local out = {}
    ngx.timer.at(0, function()
      local ok, err = pcall(function()
        return require("kpayment").new({ transport = "subrequest" }):get_offers({ customer_uuid = "c",
          dealer_uuid = "d" })
      end)
      out.line = ok and "no error" or tostring(err)
    end)
    for _ = 1, 300 do
      if out.line then break end
      ngx.sleep(0.01)
    end
    ngx.say(out.line)
  }
}
location = /t/options {
  content_by_lua_block {
    for _, k in ipairs({ "ca_file", "insecure", "proxy", "connect_timeout", "follow_redirects",
                         "resolve", "pool_size", "pool_idle_timeout" }) do
      local v = ({ ca_file = "/x", insecure = true, proxy = "http://p:1", connect_timeout = 1,
                   follow_redirects = true, resolve = { "a:1:127.0.0.1" }, pool_size = 2,
                   pool_idle_timeout = 1 })[k]
      local ok, err = pcall(require("kpayment").new, { transport = "subrequest", [k] = v })
      ngx.say(ok and "no error" or tostring(err))
    end
  }
}
]]

local function start(m, opts)
  opts = opts or {}
  local include = ("include %s/nginx/server.conf;"):format(ROOT)
  local server_part = LOCATIONS .. (opts.include == false and "" or include)
  return nginx.start({
    main = ENV, server = server_part,
    http = ("lua_shared_dict kp_cache 10m; upstream kpayment_api { server %s; keepalive 8; }")
      :format(opts.upstream or m.url:match("//(.*)$")),
    env = opts.env or { KPAYMENT_BASE_URL = m.url, KPAYMENT_USERNAME = USER, KPAYMENT_PASSWORD = PASSWORD,
                        KPAYMENT_SKIN = "sub-spec" },
  })
end

local function dir_is_empty(path)
  local p = io.popen("find " .. server.shell_quote(path) .. " -type f 2>/dev/null | wc -l")
  local count = tonumber(p:read("*a"))
  p:close()
  return count == 0
end

describe("the subrequest transport", function()
  local m, n
  setup(function()
    m = mock.start({ "--user", USER, "--password", PASSWORD })
    n = start(m)
  end)
  teardown(function()
    if n then n.stop() end
    if m then m.stop() end
  end)
  before_each(function() m.reset() end)

  it("gives the offers through the shipped location, with the request headers of every transport", function()
    local _, body = n.get("/t/call?transport=subrequest&customer=c-1")
    assert.matches("^3 200 1 mock%-%d+ ", body)
    local req = m.requests()[1]
    assert.equal("application/json", req.headers.accept)
    assert.equal("Basic", req.headers.authorization)
    assert.matches("^kpayment/%S+ %(LuaJIT [^;]+; nginx/%d+%.%d+%.%d+%)$", req.headers["user-agent"])
    assert.is_nil(req.headers.cookie)
    _, body = n.get("/t/many?transport=subrequest&n=6&concurrency=3&customer=mock:stall:0.5")
    assert.matches("^6 6 ", body)
  end)

  it("asks the API once for a burst with a shared dict cache, then answers stale past the ttl", function()
    local url = n.url .. "/t/cached?transport=subrequest&cache_dict=kp_cache&ttl=1&stale=30"
      .. "&customer=mock:stall:0.5&dealer=burst"
    local out = nginx.burst({ url }, 30)
    assert.equal(30, nginx.count(out, "3 cached=%a+ stale=false\n"), out)
    assert.equal(1, #m.requests(), out)
    socket.sleep(1.2)
    m.reset()
    out = nginx.burst({ url }, 30)
    assert.equal(30, nginx.count(out, "3 cached=%a+ stale=%a+\n"), out)
    assert.equal(1, #m.requests(), out)
  end)

  it("keeps customer data off the disk: no proxy temp file for a large response", function()
    local _, body = n.get("/t/call?transport=subrequest&customer=mock:offers:40")
    assert.matches("^40 200 1 ", body)
    assert.is_true(dir_is_empty(n.prefix .. "/temp/proxy"), "proxy temp files written")
    assert.is_nil(n.log():find("buffered to a temporary file", 1, true))
  end)

  it("holds max_body in the location, keeping the status", function()
    local _, body = n.get("/t/call?transport=subrequest&customer=mock:big:3000000&max_body=100000&retries=0")
    assert.matches("^body_too_large 200 1 ", body)
  end)

  it("tells the API's answers, nginx's failure to reach it and a timeout apart", function()
    local _, body = n.get("/t/call?transport=subrequest&customer=mock:error500&retries=0")
    assert.matches("^http 500 1 ", body)
    _, body = n.get("/t/call?transport=subrequest&customer=mock:html502&retries=0")
    assert.matches("^http 502 1 ", body, "the API's own 502")
    -- nginx cannot abort a subrequest: the call returns in time, and the
    -- handler's response waits for the subrequest (or ngx.eof() ends it)
    _, body = n.get("/t/call?transport=subrequest&customer=mock:stall:3&retries=0&timeout=0.5")
    assert.matches("^timeout nil 1 ", body)
    local seconds = tonumber(body:match("^%S+ %S+ %S+ %S+ (%S+)"))
    assert.is_true(seconds < 1.5, "the timeout held for the caller: " .. seconds .. " s")
    local dead = start(m, { upstream = "127.0.0.1:" .. server.free_port() })
    finally(dead.stop)
    _, body = dead.get("/t/call?transport=subrequest&retries=0")
    assert.matches("^network nil 1 nil [%d.]+ nginx could not reach the API", body)
  end)

  it("polls beside a light thread whose get_offers sends the same call", function()
    -- this transport runs no shared call in a timer: the light thread sends
    -- it, and the main thread's poll spun for ever without yielding
    local own = start(m)
    finally(own.stop)
    for _, many in ipairs({ "", "&many=1" }) do
      local status, text = own.get("/t/thread_and_poll?transport=subrequest&customer=mock:stall:0.3"
        .. many, 6)
      assert.equal(200, status, text)
      assert.equal(many == "" and "thread=3 main=3\n" or "thread=3 main=3,3\n", text)
    end
  end)

  it("ends the nginx request whose light thread is killed after an attempt ended", function()
    -- the first attempt gets a 503 asking for a second's wait, and the
    -- thread is killed while it waits to retry: the attempt's finished
    -- capture thread was never waited for, and nginx never finished the
    -- request
    local own = start(m)
    finally(own.stop)
    local status, text = own.get("/t/kill_one?transport=subrequest&customer=mock:503:1"
      .. "&dealer=k1&after=0.4&retries=2", 5)
    assert.equal(200, status, text)
    assert.equal("killed 1 nil\n", text)
  end)

  it("refuses the options nginx's configuration decides, naming where", function()
    local _, body = n.get("/t/options")
    local lines = {}
    for l in body:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal(8, #lines, body)
    for _, l in ipairs(lines) do
      assert.matches("^kpayment: option '[%w_]+' has no effect with the subrequest transport: ", l)
    end
    assert.matches("proxy_ssl_trusted_certificate", lines[1])
  end)

  it("raises in a timer, naming the cosocket transport as the way", function()
    local _, body = n.get("/t/timer")
    assert.matches("nginx allows no subrequests in an ngx%.timer callback %(phase 'timer'%)", body)
    assert.matches("cosocket transport", body)
  end)

  it("names the missing include when the location is not there", function()
    local bare = start(m, { include = false })
    finally(bare.stop)
    local _, body = bare.get("/t/call?transport=subrequest&retries=3")
    assert.matches("^network nil 1 nil [%d.]+ kpayment: the subrequest transport's %$kpayment_%* " ..
      "variables are not declared: include kpayment's nginx/server.conf", body)
    socket.sleep(0.05)
  end)
end)

describe("the subrequest transport with client credentials", function()
  local api, tokens, n
  local ID, SECRET = "sub client", "sub s3cret-9f2"
  setup(function()
    api = mock.start({})   -- takes any Authorization
    tokens = mock.start({ "--client-id", ID, "--client-secret", SECRET })
    n = start(api, { env = { KPAYMENT_BASE_URL = api.url, KPAYMENT_SKIN = "sub-spec" } })
  end)
  teardown(function()
    if n then n.stop() end
    if tokens then tokens.stop() end
    if api then api.stop() end
  end)

  local q = nginx.encode

  it("sends the token request, with the client's secret, to token_url's host, not the upstream", function()
    local _, body = n.get("/t/call?transport=subrequest&customer=c-1&client_id=" .. q(ID) ..
      "&client_secret=" .. q(SECRET) .. "&token_url=" .. q(tokens.url .. "/oauth2/token"))
    assert.equal(1, tokens.stats().token_requests)
    for _, r in ipairs(api.requests()) do
      assert.is_nil(r.target:find("oauth2", 1, true), r.target)
    end
    assert.matches("^3 200 1 ", body)
  end)
end)
