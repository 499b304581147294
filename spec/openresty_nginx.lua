-- kpayment inside nginx, for real: examples/openresty/run.sh starts Debian's
-- nginx + libnginx-mod-http-lua with examples/openresty/nginx.conf as is,
-- pointed at the mock (or at a TLS server), and these checks talk HTTP to
-- it.  Run by `make test-openresty` (needs build/luajit: the module as
-- nginx's LuaJIT loads it); not part of `make test`, whose file pattern
-- this name does not match.
local mock = require("support.mock")
local tls = require("support.tls")
local kpayment = require("kpayment")
local socket = require("socket")
local socket_http = require("socket.http")
local ltn12 = require("ltn12")

local USER, PASSWORD = "nginx-user", "nginx-password-5c1d"

local support_server = require("support.server")
local free_port, read_file, quote = support_server.free_port, support_server.read_file,
  support_server.shell_quote

-- run.sh API_BASE_URL PORT with `env` (a table) on top of ours; returns
-- { url, stop, log() } once it printed its URL.
local function start_nginx(base_url, env)
  local port = free_port()
  local out, err = os.tmpname(), os.tmpname()
  local vars = { KPAYMENT_USERNAME = USER, KPAYMENT_PASSWORD = PASSWORD, KPAYMENT_SKIN = "nginx-spec",
                 KPAYMENT_TIMEOUT = "5" }
  for k, v in pairs(env or {}) do vars[k] = v end
  local words = {}
  for k, v in pairs(vars) do words[#words + 1] = k .. "=" .. quote(v) end
  local shell = assert(io.popen(("env %s sh examples/openresty/run.sh %s %d </dev/null >%s 2>%s & echo $!")
    :format(table.concat(words, " "), quote(base_url), port, out, err)))
  local pid = tonumber(shell:read("l"))
  shell:close()
  local function stop()
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    -- run.sh stops nginx and removes its prefix on the way out
    local deadline = socket.gettime() + 5
    while pid and os.execute("kill -0 " .. pid .. " 2>/dev/null") == true and socket.gettime() < deadline do
      socket.sleep(0.05)
    end
    pid = nil
    os.remove(out)
    os.remove(err)
  end
  local deadline = socket.gettime() + 15
  while true do
    local url = read_file(out):match("^(http://[^\n]+)\n")
    if url then
      local prefix = read_file(err):match("nginx prefix (%S+)")
      return { url = url, stop = stop,
               log = function() return prefix and read_file(prefix .. "/logs/error.log") or "" end }
    end
    if os.execute("kill -0 " .. pid .. " 2>/dev/null") ~= true or socket.gettime() > deadline then
      local why = read_file(err)
      stop()
      error("run.sh did not start nginx: " .. why, 2)
    end
    socket.sleep(0.05)
  end
end

local function get(url)
  local chunks = {}
  local t0 = socket.gettime()
  local _, status = socket_http.request({ url = url, sink = ltn12.sink.table(chunks) })
  return status, table.concat(chunks), socket.gettime() - t0
end

-- The ids of an answer's JSON text, as the digits (or strings) sent.
local function ids_of(body)
  local list = body:match('"ids":%[(.-)%]')
  local ids = {}
  for token in (list or ""):gmatch("[^,]+") do ids[#ids + 1] = (token:gsub('"', "")) end
  return ids
end

describe("kpayment inside nginx", function()
  local m, ngx_server
  setup(function()
    m = mock.start({ "--user", USER, "--password", PASSWORD })
    ngx_server = start_nginx(m.url, { KPAYMENT_NGINX_INCLUDE = "spec/openresty_locations.conf" })
  end)
  teardown(function()
    if ngx_server then ngx_server.stop() end
    if m then m.stop() end
  end)

  it("answers /offers with the decoded offers, ids exact", function()
    local status, body = get(ngx_server.url .. "/offers?customer=c-1&dealer=d-1")
    assert.equal(200, status, body)
    -- the same call over libcurl, from this Lua 5.4
    local c = kpayment.new({ base_url = m.url, username = USER, password = PASSWORD, skin = "nginx-spec" })
    local offers = assert(c:get_offers({ customer_uuid = "c-1", dealer_uuid = "d-1" }))
    local want = {}
    for i = 1, #offers do want[i] = tostring(math.tointeger(offers[i].id) or offers[i].id) end
    assert.equal(#offers, tonumber(body:match('"count":(%d+)')))
    assert.same(want, ids_of(body))
  end)

  it("answers an API error as the error object", function()
    local status, body = get(ngx_server.url .. "/offers?customer=mock:error500&dealer=d-1")
    assert.equal(502, status)
    assert.equal('{"error":{"kind":"http","status":500}}\n', body)
    local _, html = get(ngx_server.url .. "/offers?customer=mock:html502&dealer=d-1")
    assert.equal('{"error":{"kind":"http","status":502}}\n', html, "the API's own 502 is an http error")
  end)

  it("keeps credentials out of its logs", function()
    get(ngx_server.url .. "/offers?customer=mock:error500&dealer=d-1")
    assert.is_nil(ngx_server.log():find(PASSWORD, 1, true))
  end)

  it("answers 50 concurrent requests in about one API delay, /ping at once meanwhile", function()
    local DELAY, N = 2, 50
    local host, port = ngx_server.url:match("^http://([^:/]+):(%d+)")
    local conns = {}
    local t0 = socket.gettime()
    for i = 1, N do
      local c = assert(socket.connect(host, tonumber(port)))
      c:send(("GET /offers?customer=mock:stall:%d&dealer=d-%d HTTP/1.0\r\nHost: x\r\n\r\n"):format(DELAY, i))
      c:settimeout(0)
      conns[i] = { sock = c, data = {} }
    end
    socket.sleep(0.3)
    local ping_status, ping_body, ping_time = get(ngx_server.url .. "/ping")
    assert.equal(200, ping_status)
    assert.equal("pong\n", ping_body)
    assert.is_true(ping_time < 0.25, "/ping took " .. ping_time .. " s")
    local open = N
    while open > 0 and socket.gettime() - t0 < 60 do
      local socks = {}
      for _, c in ipairs(conns) do if not c.done then socks[#socks + 1] = c.sock end end
      local ready = socket.select(socks, nil, 1)
      for _, s in ipairs(ready) do
        for _, c in ipairs(conns) do
          if c.sock == s then
            local chunk, err, partial = s:receive(65536)
            local got = chunk or partial
            if got and #got > 0 then c.data[#c.data + 1] = got end
            if err == "closed" then
              c.done = true
              open = open - 1
              s:close()
            end
          end
        end
      end
    end
    local elapsed = socket.gettime() - t0
    io.stderr:write(("\n[openresty] %d concurrent calls, API delay %d s: %.2f s; /ping meanwhile: %.3f s\n")
      :format(N, DELAY, elapsed, ping_time))
    for i, c in ipairs(conns) do
      assert.matches('^HTTP/1%.%d 200.*"count":3', table.concat(c.data), "request " .. i)
    end
    -- one worker blocking per call would take N / 2 workers * DELAY = 50 s
    assert.is_true(elapsed < DELAY * 2.5, N .. " requests took " .. elapsed .. " s")
  end)

  it("runs get_offers_many at its concurrency, with on_progress", function()
    local status, body = get(ngx_server.url .. "/t/many?n=20&concurrency=10&customer=mock:stall:1")
    assert.equal(200, status, body)
    local ok, progress, seconds = body:match("^(%d+) (%d+) ([%d.]+)")
    assert.equal("20", ok)
    assert.equal("20", progress)
    -- two rounds of ten: not one (the limit holds), not twenty (concurrent)
    assert.is_true(tonumber(seconds) >= 1.9 and tonumber(seconds) < 4, body)
  end)

  it("retries as libcurl does, waiting with ngx.sleep while the worker serves others", function()
    local host, port = ngx_server.url:match("^http://([^:/]+):(%d+)")
    local c = assert(socket.connect(host, tonumber(port)))
    -- 503 with Retry-After: 1, then the offers
    c:send("GET /t/call?customer=mock:flaky:1:503:1&retries=2 HTTP/1.0\r\nHost: x\r\n\r\n")
    socket.sleep(0.3)
    local _, pong, ping_time = get(ngx_server.url .. "/ping")
    assert.equal("pong\n", pong)
    assert.is_true(ping_time < 0.25, "/ping took " .. ping_time .. " s during a retry wait")
    c:settimeout(10)
    local answer = c:receive("*a")
    c:close()
    local count, status, attempts, request_id, seconds = answer:match("\r\n\r\n(%S+) (%S+) (%S+) (%S+) (%S+)")
    assert.equal("3", count, answer)
    assert.equal("200", status)
    assert.equal("2", attempts)
    assert.matches("^mock%-%d+$", request_id)
    assert.is_true(tonumber(seconds) >= 0.95, "waited for Retry-After: " .. seconds)
  end)

  it("holds max_body and keeps the API's error metadata", function()
    local _, body = get(ngx_server.url .. "/t/call?customer=c-1&max_body=100")
    assert.matches("^body_too_large 200 1 mock%-%d+ ", body)
    _, body = get(ngx_server.url .. "/t/call?customer=mock:429:0&retries=0")
    assert.matches("^http 429 1 mock%-%d+ ", body)
  end)

  it("runs start_offers and poll on light threads", function()
    local status, body = get(ngx_server.url .. "/t/poll")
    assert.equal(200, status, body)
    assert.matches("^3 3 %d+ 3\n$", body)
  end)

  it("calls the hooks on every attempt, through the subrequests", function()
    local status, body = get(ngx_server.url .. "/t/hooks?customer=mock:flaky:1:503:0")
    assert.equal(200, status, body)
    local base = m.url .. "/payment/kpayment/v1/finance/getFinanceOffersForCustomer?customerUUID="
    local flaky = base .. "mock%3Aflaky%3A1%3A503%3A0&dealerUUID=d-hooks&skin=nginx-spec&locale=en-US"
    local plain = base .. "c-hooks&dealerUUID=d-hooks&skin=nginx-spec&locale=en-US"
    local lines = {}
    -- byte counts as N, once they are seen to be counts of something
    for line in body:gmatch("[^\n]+") do
      lines[#lines + 1] = (line:gsub("^(on_response %d+ %S+ %S+) [1-9]%d* ", "%1 N "))
    end
    assert.same({
      "on_request 1 nil nil nil " .. flaky,
      "on_response 1 503 http N " .. flaky,
      "on_request 2 nil nil nil " .. flaky,
      "on_response 2 200 nil N " .. flaky,
      "on_request 1 nil nil nil " .. plain,
      "on_response 1 200 nil N " .. plain,
      "transport ngx",
    }, lines)
    assert.is_nil(body:find(PASSWORD, 1, true))
  end)

  it("refuses the options that nginx's configuration decides, naming the directive", function()
    local status, body = get(ngx_server.url .. "/t/options")
    assert.equal(200, status, body)
    local want = { { "ca_file", "proxy_ssl_trusted_certificate" }, { "insecure", "proxy_ssl_verify" },
                   { "proxy", "nginx connects to the API itself" },
                   { "connect_timeout", "proxy_connect_timeout" },
                   { "follow_redirects", "returns a redirect as it is" } }
    local n = 0
    for line in body:gmatch("[^\n]+") do
      n = n + 1
      local prefix = "kpayment: option '" .. want[n][1] .. "' has no effect inside nginx: set "
      assert.equal(prefix, line:sub(1, #prefix))
      assert.is_truthy(line:find(want[n][2], #prefix, true), line)
    end
    assert.equal(#want, n, body)
  end)

  it("raises where nginx allows no subrequests, naming the context and the way out", function()
    local _, body = get(ngx_server.url .. "/t/set")
    assert.matches("nginx allows no subrequests in set_by_lua%* %(phase 'set'%)", body)
    assert.matches("transport = function%(req%)", body)
    local status, timer = get(ngx_server.url .. "/t/timer")
    assert.equal(200, status, timer)
    local err, count = timer:match("^(.-)\n(.-)\n$")
    assert.matches("nginx allows no subrequests in an ngx.timer callback", err)
    assert.equal("3", count, "a transport over cosockets works in a timer")
    local _, raised = get(ngx_server.url .. "/t/raise")
    assert.matches("^kpayment: transport function raised: .*boom in transport", raised)
  end)

  it("tells an unreachable API (network) and a timeout from the API's answers", function()
    local gone = start_nginx("http://127.0.0.1:" .. free_port())
    local status, body = get(gone.url .. "/offers?customer=c&dealer=d")
    gone.stop()
    assert.equal(502, status)
    assert.equal('{"error":{"kind":"network","status":null}}\n', body)
    local slow = start_nginx(m.url, { KPAYMENT_TIMEOUT = "0.5" })
    local t
    status, body, t = get(slow.url .. "/offers?customer=mock:stall:3&dealer=d")
    slow.stop()
    assert.equal(502, status)
    assert.equal('{"error":{"kind":"timeout","status":null}}\n', body)
    assert.is_true(t < 2, "the deadline held: " .. t .. " s")
  end)

  it("verifies TLS against its CA file, and fails as tls with another", function()
    local server = tls.start()
    finally(server.stop)
    -- openssl s_server -www answers with an HTML page: a response, so TLS
    -- verified and the body does not decode
    local good = start_nginx(server.url, { KPAYMENT_CA_FILE = server.ca_file })
    local _, body = get(good.url .. "/offers?customer=c&dealer=d")
    good.stop()
    assert.equal('{"error":{"kind":"decode","status":200}}\n', body)
    local wrong = start_nginx(server.url, { KPAYMENT_CA_FILE = "/etc/ssl/certs/ca-certificates.crt" })
    _, body = get(wrong.url .. "/offers?customer=c&dealer=d")
    local log = wrong.log()
    wrong.stop()
    assert.equal('{"error":{"kind":"tls","status":null}}\n', body, log)
  end)
end)
