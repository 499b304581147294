-- kpayment inside nginx over cosockets (the default transport) against
-- spec/support/framing_server.lua, a server that frames its responses badly
-- in every way it knows: what each call reports, that none hangs, which
-- connections go back to nginx's pool (the server's /stats counts them), and
-- that 100 MB bodies over max_body cost the worker no memory.  Run by
-- `make test-openresty`.
local nginx = require("support.nginx")
local server = require("support.server")
local socket = require("socket")
local socket_http = require("socket.http")

local ENV = "env KPAYMENT_BASE_URL; env KPAYMENT_USERNAME; env KPAYMENT_PASSWORD; env KPAYMENT_SKIN;"

local LOCATIONS = [[
location = /t/frame { content_by_lua_block { require("support.nginx_framing").call() } }
location = /t/call { content_by_lua_block { require("support.nginx_handlers").call() } }
]]

local KIB_16MB = 16 * 1024

-- Framing errors: the message each gives, and whether the final response's
-- status (and X-Request-Id) had been read when it broke.
local FRAMING_ERRORS = {
  { "badchunk", "the response has a bad chunk size", "200" },
  { "chunkoverflow", "the response has a bad chunk size", "200" },
  { "chunklong", "the response has a chunk longer than its size", "200" },
  { "dupcl", "the response has two different Content-Lengths", "200" },
  { "gzip", "the response has a Content-Encoding that was not asked for", "200" },
  { "te-gzip", "the response has a Transfer-Encoding other than chunked", "200" },
  { "badstatus", "the server's answer is not an HTTP/1.x status line", "nil" },
  { "garbage", "the server's answer is not an HTTP/1.x status line", "nil" },
  { "fold", "the response folds a header over two lines", "200" },
  -- one 100 KiB header line: the line limit (8192) breaks before the head's (65536)
  { "bighead", "the response has a line over 8192 bytes", "200" },
  -- a 10000-byte header line: over kpayment's 8192 per line (KP_H1_MAX_LINE;
  -- libcurl's own limit is larger, so the curl transport takes this response)
  { "longline", "the response has a line over 8192 bytes", "200" },
  -- endless 100 Continue responses: every interim head counts against the limit
  { "flood", "the response's head is over 65536 bytes", "nil" },
}

-- A /t/frame answer as a table.
local function parse(body)
  local what, status, attempts, id, retryable, seconds, message =
    body:match("^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (.-)\n$")
  assert(what, "not a /t/frame answer: " .. tostring(body))
  return { what = what, status = status, attempts = tonumber(attempts), id = id, retryable = retryable,
           seconds = tonumber(seconds), message = message }
end

describe("kpayment inside nginx against a misbehaving HTTP/1.1 server", function()
  local fs, n, port
  local pools = 0

  setup(function()
    fs = server.start("spec/support/framing_server.lua", {}, "framing server")
    port = fs.url:match(":(%d+)$")
    n = nginx.start({
      main = ENV, server = LOCATIONS, workers = 1,
      env = { KPAYMENT_BASE_URL = fs.url, KPAYMENT_USERNAME = "framing-user",
              KPAYMENT_PASSWORD = "framing-password", KPAYMENT_SKIN = "framing-spec" },
    })
  end)
  teardown(function()
    if n then n.stop() end
    if fs then fs.stop() end
  end)

  local function side(what)
    local body, status = socket_http.request(fs.url .. "/" .. what)
    assert.equal(200, status)
    return body
  end

  -- The server's counts since the last reset.
  local function stats()
    local body = side("stats")
    return { connections = tonumber(body:match('"connections":(%d+)')),
             requests = tonumber(body:match('"requests":(%d+)')) }
  end

  before_each(function() side("reset") end)

  -- Options for a connection pool of the caller's own: nginx pools cosockets
  -- by host name among others, so a name no other test uses (which `resolve`
  -- points at the framing server) takes no connection pooled before, and the
  -- server's counts are this test's alone.
  local function own_pool()
    pools = pools + 1
    local host = ("pool%d.framing.test"):format(pools)
    return ("base_url=http://%s:%s&resolve=%s:%s:127.0.0.1"):format(host, port, host, port)
  end

  -- One call through /t/frame; it must answer within `bound` seconds
  -- (default 1), its own time too.
  local function call(query, bound)
    bound = bound or 1
    local status, body, t = n.get("/t/frame?" .. query, bound + 5)
    assert.equal(200, status, body)
    local r = parse(body)
    assert.is_true(t < bound and r.seconds < bound, query .. " took " .. t .. " s: " .. body)
    return r, t
  end

  local function assert_offers(r, id, attempts)
    assert.equal("3", r.what, r.message)
    assert.equal("200", r.status)
    assert.equal(attempts or 1, r.attempts)
    if id then assert.equal(id, r.id) end
  end

  it("reads whole responses however they are framed, and reuses the connection", function()
    -- drip:2 comes one byte per read (about 0.4 s), slowhead:300 after 0.3 s
    for _, s in ipairs({ "ok", "chunked", "interim", "interim:4", "drip:2", "slowhead:300" }) do
      local q = own_pool() .. "&retries=0&timeout=2&customer="
      side("reset")
      local r = call(q .. s, 1.5)
      assert_offers(r, "frame-1")
      if s == "slowhead:300" then assert.is_true(r.seconds >= 0.29, s .. ": " .. r.seconds) end
      assert_offers(call(q .. "ok"), "frame-2")
      assert.same({ connections = 1, requests = 2 }, stats(), s .. ": one kept-alive connection")
    end
  end)

  it("reads bodies that end with the connection, and pools no connection it may not reuse", function()
    -- close and http10: the body ends with the connection; tecl: chunked
    -- wins over Content-Length, but such a response is never reused
    for _, s in ipairs({ "close", "http10", "tecl" }) do
      local q = own_pool() .. "&retries=0&timeout=2&customer="
      side("reset")
      assert_offers(call(q .. s), "frame-1")
      assert_offers(call(q .. "ok"), "frame-2")
      assert.same({ connections = 2, requests = 2 }, stats(), s .. ": a new connection after it")
    end
  end)

  it("takes Content-Length's bytes of a longer body, and does not wait for the rest", function()
    -- long: Content-Length 10 and the whole body, then the connection held 2 s
    local q = own_pool() .. "&retries=0&timeout=5&customer="
    local r = call(q .. "long", 0.5)
    assert.equal("decode", r.what)
    assert.equal("200", r.status)
    assert.equal("frame-1", r.id)
    assert.equal("unexpected end of input at byte 11", r.message)
    assert_offers(call(q .. "ok"), "frame-2")
    assert.same({ connections = 2, requests = 2 }, stats(), "the connection with bytes left over was closed")
  end)

  it("fails on each framing error as a network error that names it, and drops the connection", function()
    for _, case in ipairs(FRAMING_ERRORS) do
      local s, message, status = case[1], case[2], case[3]
      local q = own_pool() .. "&retries=1&timeout=2&customer="
      side("reset")
      local r = call(q .. s)
      assert.equal("network", r.what, s .. ": " .. r.message)
      assert.equal(message, r.message, s)
      assert.equal(status, r.status, s)
      assert.equal(status == "200" and "frame-1" or "nil", r.id, s)
      -- the same server would frame it the same way again: retries=1, one attempt
      assert.equal("false", r.retryable, s)
      assert.equal(1, r.attempts, s)
      assert_offers(call(q .. "ok"), "frame-2")
      assert.same({ connections = 2, requests = 2 }, stats(), s .. ": a new connection after it")
    end
  end)

  it("reports a body cut short, a reset and a close without answer as retryable network errors", function()
    local CASES = {
      { "short", "the response was cut short" },
      { "reset", "receiving the response: connection reset by peer" },
      { "nothing", "the server closed the connection without answering" },
    }
    for _, case in ipairs(CASES) do
      local s, message = case[1], case[2]
      local q = own_pool() .. "&timeout=2&customer=" .. s
      side("reset")
      local r = call(q .. "&retries=0")
      assert.equal("network", r.what, s .. ": " .. r.message)
      assert.equal(message, r.message, s)
      assert.equal("true", r.retryable, s)
      assert.equal(1, r.attempts, s)
      assert.equal(s == "nothing" and "nil" or "frame-1", r.id, s)
      -- a status that came stays, whatever ended the attempt after it
      assert.equal(s == "nothing" and "nil" or "200", r.status, s)
      assert.same({ connections = 1, requests = 1 }, stats(), s)
      -- retried once, on a new connection (the broken one was not pooled)
      r = call(q .. "&retries=1", 2)
      assert.equal("network", r.what, s)
      assert.equal(2, r.attempts, s)
      assert.same({ connections = 3, requests = 3 }, stats(), s)
    end
  end)

  it("sends again on a new connection, as the same attempt, when a pooled one closes unanswered", function()
    -- nothing: the server closes a kept-alive connection as soon as the
    -- request came; kpayment cannot tell that from one closed while idle
    local q = own_pool() .. "&retries=0&timeout=2&customer="
    assert_offers(call(q .. "ok"), "frame-1")
    local r = call(q .. "nothing")
    assert.equal("network", r.what)
    assert.equal("the server closed the connection without answering", r.message)
    assert.equal(1, r.attempts)
    assert.same({ connections = 2, requests = 3 }, stats(), "the request went on both connections")
  end)

  it("times out a server that stalls, before or in the body or between bytes, at the timeout", function()
    -- stall: no answer; stallbody: a head, then nothing; drip:400: a byte every 0.4 s
    for _, s in ipairs({ "stall", "stallbody", "drip:400" }) do
      local q = own_pool() .. "&retries=0&timeout=1&customer="
      side("reset")
      local r = call(q .. s, 1.5)
      assert.equal("timeout", r.what, s .. ": " .. r.message)
      assert.equal(s == "stallbody" and "200" or "nil", r.status, s)
      assert.matches("^operation timed out after %d+ milliseconds$", r.message, s)
      assert.equal("true", r.retryable, s)
      assert.equal(1, r.attempts, s)
      assert.is_true(r.seconds >= 0.95, s .. " gave up after " .. r.seconds .. " s")
      assert_offers(call(q .. "ok"), "frame-2")
      assert.same({ connections = 2, requests = 2 }, stats(), s .. ": the timed-out connection was closed")
    end
  end)

  it("waits for Retry-After between attempts, on the kept-alive connection", function()
    local q = own_pool() .. "&timeout=2&customer=retry:503:1"
    local r = call(q .. "&retries=0")
    assert.equal("http", r.what)
    assert.equal("503", r.status)
    assert.equal("try later", r.message)
    assert.equal("true", r.retryable)
    assert.equal(1, r.attempts)
    side("reset")
    r = call(q .. "&retries=1", 2)
    assert.equal("http", r.what)
    assert.equal("503", r.status)
    assert.equal(2, r.attempts)
    assert.equal("frame-2", r.id)
    assert.is_true(r.seconds >= 0.95 and r.seconds < 1.5, "waited " .. r.seconds .. " s for Retry-After: 1")
    assert.same({ connections = 0, requests = 2 }, stats(), "both attempts on the connection pooled before")
  end)

  it("reports a 2xx without a body as a decode error, and reuses the connection", function()
    local q = own_pool() .. "&retries=1&timeout=2&customer="
    local r = call(q .. "status204")
    assert.equal("decode", r.what)
    assert.equal("204", r.status)
    assert.equal("frame-1", r.id)
    assert.equal("false", r.retryable)
    assert.equal(1, r.attempts)
    assert.matches("unexpected end of input", r.message, 1, true)
    assert_offers(call(q .. "ok"), "frame-2")
    assert.same({ connections = 1, requests = 2 }, stats())
  end)

  it("finds out a pooled connection the server closed, and sends on a new one in the same attempt", function()
    -- keepalive-close: the server closes the idle connection 50 ms after
    -- the response; at once, the next request is written to it before the
    -- close; 200 ms later, the close came first
    for _, pause in ipairs({ 0, 0.2 }) do
      local q = own_pool() .. "&retries=0&timeout=2&customer="
      side("reset")
      assert_offers(call(q .. "keepalive-close"), "frame-1")
      socket.sleep(pause)
      assert_offers(call(q .. "ok"), "frame-2", 1)
      assert.same({ connections = 2, requests = 2 }, stats(), "pause " .. pause)
    end
    -- onlyonce: closed right after each response, which says nothing of it
    local q = own_pool() .. "&retries=0&timeout=2&customer=onlyonce"
    side("reset")
    for i = 1, 5 do assert_offers(call(q), "frame-" .. i, 1) end
    assert.same({ connections = 5, requests = 5 }, stats())
  end)

  it("refuses 100 MB bodies over max_body at once, and the worker's memory does not grow", function()
    local workers = n.workers()
    assert.equal(1, #workers)
    local pid = workers[1]
    local q = own_pool() .. "&retries=0&timeout=10&max_body=1048576&customer="
    -- the same paths with 2 MB first, so that what grows after is per call
    for _, s in ipairs({ "huge:2", "hugechunked:2", "hugeclose:2" }) do
      assert.equal("body_too_large", call(q .. s, 2).what)
    end
    local before = nginx.rss_kib(pid)
    local function round()
      local times = {}
      for _, s in ipairs({ "huge:100", "hugechunked:100", "hugeclose:100" }) do
        local r, t = call(q .. s, 2)
        assert.equal("body_too_large", r.what, s .. ": " .. r.message)
        assert.equal("200", r.status)
        assert.equal(1, r.attempts)
        assert.equal("false", r.retryable)
        if s == "huge:100" then
          -- refused from Content-Length, before a byte of the body
          assert.equal("Content-Length larger than max_body", r.message)
          assert.is_true(r.seconds < 0.2, s .. " took " .. r.seconds .. " s")
        else
          assert.equal("response body larger than max_body", r.message, s)
        end
        times[#times + 1] = ("%s %.3f s"):format(s, t)
      end
      return table.concat(times, ", ")
    end
    local first = round()
    local after = nginx.rss_kib(pid)
    assert.is_true(after - before < KIB_16MB, ("RSS %d -> %d KiB"):format(before, after))
    local last
    for _ = 1, 4 do last = round() end
    local after5 = nginx.rss_kib(pid)
    assert.is_true(after5 - before < KIB_16MB, ("RSS %d -> %d KiB after 5 rounds"):format(before, after5))
    assert_offers((call(q .. "ok")))
    io.stderr:write(("\n[framing] 100 MB bodies, max_body 1 MiB: %s; last of 5 rounds: %s; " ..
      "worker RSS %d KiB before, %d after one round, %d after five\n")
      :format(first, last, before, after, after5))
  end)

  it("answers 50 concurrent calls at mixed framings, each as it should, /ping at once meanwhile", function()
    local SCENARIOS = { "ok", "chunked", "short", "drip:20", "keepalive-close", "onlyonce" }
    local N = 50
    local q = own_pool() .. "&retries=0&timeout=10&customer="
    local host, nport = n.url:match("^http://([^:/]+):(%d+)")
    local conns = {}
    local t0 = socket.gettime()
    for i = 1, N do
      local s = SCENARIOS[(i - 1) % #SCENARIOS + 1]
      local c = assert(socket.connect(host, tonumber(nport)))
      c:send(("GET /t/call?%s%s&dealer=d%d HTTP/1.0\r\nHost: x\r\n\r\n"):format(q, s, i))
      c:settimeout(0)
      conns[i] = { sock = c, data = {}, scenario = s }
    end
    socket.sleep(0.3)
    local ping_status, ping_body, ping_time = n.get("/ping", 5)
    assert.equal(200, ping_status)
    assert.equal("pong\n", ping_body)
    assert.is_true(ping_time < 0.25, "/ping took " .. ping_time .. " s")
    local open = N
    while open > 0 and socket.gettime() - t0 < 20 do
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
    for i, c in ipairs(conns) do
      if not c.done then c.sock:close() end
      local answer = table.concat(c.data)
      local body = answer:match("\r\n\r\n(.*)$") or ""
      local what = c.scenario
      if what == "short" then
        assert.matches("^network 200 1 frame%-%d+ [%d.]+ the response was cut short\n$", body,
          "call " .. i .. " (" .. what .. "): " .. answer)
      else
        assert.matches("^3 200 1 frame%-%d+ [%d.]+ %-\n$", body,
          "call " .. i .. " (" .. what .. "): " .. answer)
      end
    end
    -- drip:20 takes about 4 s (one byte every 20 ms): all at once, not one after another
    assert.is_true(elapsed < 8, N .. " calls took " .. elapsed .. " s")
    assert.is_true(stats().requests >= N)
    io.stderr:write(("\n[framing] %d concurrent calls at mixed framings: %.2f s; /ping meanwhile: %.3f s\n")
      :format(N, elapsed, ping_time))
  end)
end)
