-- kpayment inside nginx over verified TLS, for real: Debian's nginx with the
-- lua module, against a TLS server block of the same nginx (a certificate of
-- a test PKI made on the spot: root CA -> intermediate CA -> api.kpayment.test),
-- one nginx per trust configuration.  Run by `make test-openresty`.
local nginx = require("support.nginx")
local tls = require("support.tls")
local free_port = require("support.server").free_port
local read_file = require("support.server").read_file

local ROOT = os.getenv("PWD") or "."
local ENV = "env KPAYMENT_SKIN;"
local OFFERS = '{"financeOffers":[{"id":1},{"id":2}]}'

-- /t/call answers "<count|kind> <status> <attempts> <request id> <seconds> <message>";
-- /t/error "<kind> <retryable> <attempts> <message>" (or "offers <count>").
local LOCATIONS = [[
location = /t/call { content_by_lua_block { require("support.nginx_handlers").call() } }
location = /t/error {
  content_by_lua_block {
    local offers, err = require("support.nginx_handlers").client():get_offers({ customer_uuid = "c-1",
      dealer_uuid = "d-1" })
    if offers then return ngx.say("offers ", #offers) end
    ngx.say(err.kind, " ", tostring(err.retryable), " ", tostring(err.attempts), " ", err.message)
  }
}
]]

-- The API: TLS server blocks of the nginx under test, each request logged
-- with its port, its connection's number, its rank on that connection,
-- whether the TLS session was resumed, and SNI.
local LOG_FORMAT =
  "log_format kp_tls '$server_port $connection $connection_requests $ssl_session_reused $ssl_server_name';\n"

-- One server block on `port` sending `chain` (with its `key`), plus `extra` lines.
local function api_server(port, chain, key, extra)
  return ([[
server {
  listen 127.0.0.1:%d ssl;
  ssl_certificate %s;
  ssl_certificate_key %s;
  %s
  access_log logs/tls_access.log kp_tls;
  location / { default_type application/json; return 200 '%s'; }
}
]]):format(port, chain, key, extra or "", OFFERS)
end

-- nginx with the API's server blocks, `http` lines (trust) and, with
-- `subrequest`, kpayment's nginx/server.conf and its upstream; the handle
-- gets the API's ports: .api (leaf + intermediate), .api_close (the same,
-- TLS 1.2, closing each connection after one request so that every call
-- shakes hands anew), .api_deep (leaf + two intermediates).
local function start(pki, opts)
  local port, port_close, port_deep = free_port(), free_port(), free_port()
  local http = LOG_FORMAT .. api_server(port, pki.chain, pki.key)
    .. api_server(port_close, pki.chain, pki.key,
      "ssl_protocols TLSv1.2; ssl_session_cache shared:kp_tls:1m; keepalive_requests 1;")
    .. api_server(port_deep, pki.deep_chain, pki.deep_key) .. (opts.http or "")
  local server = LOCATIONS
  if opts.subrequest then
    http = http .. ("upstream kpayment_api { server 127.0.0.1:%d; keepalive 4; }\n"):format(port)
    server = server .. ("include %s/nginx/server.conf;\n"):format(ROOT)
  end
  local n = nginx.start({ main = ENV, env = { KPAYMENT_SKIN = "tls-spec" }, http = http, server = server,
    kpayment_http = opts.kpayment_http })
  n.api, n.api_close, n.api_deep = tonumber(port), tonumber(port_close), tonumber(port_deep)
  return n
end

-- The query for base_url https://<host>:<port>, resolved to 127.0.0.1, and
-- `retries` (default 0).
local function via(host, port, retries)
  return ("base_url=https://%s:%d&resolve=%s:%d:127.0.0.1&retries=%d"):format(host, port, host, port,
    retries or 0)
end

-- The API's access log lines for `port`, each as { connection, requests, reused, sni }.
local function api_log(n, port)
  local lines = {}
  for l in read_file(n.prefix .. "/logs/tls_access.log"):gmatch("[^\n]+") do
    local p, conn, reqs, reused, sni = l:match("^(%d+) (%d+) (%d+) (%S+) (%S+)$")
    if tonumber(p) == port then lines[#lines + 1] = { conn, tonumber(reqs), reused, sni } end
  end
  return lines
end

local function call(n, query)
  local status, body = n.get("/t/call?" .. query)
  assert.equal(200, status, body)
  return body
end

describe("kpayment inside nginx over verified TLS", function()
  local pki
  setup(function() pki = tls.pki() end)
  teardown(function() if pki then pki.cleanup() end end)

  describe("with nginx trusting the test root CA", function()
    local n
    setup(function()
      n = start(pki, { kpayment_http = false, subrequest = true, http = ([[
lua_ssl_trusted_certificate %s;
lua_ssl_verify_depth 5;
proxy_ssl_trusted_certificate %s;
proxy_ssl_verify_depth 5;
]]):format(pki.root_ca, pki.root_ca) })
    end)
    teardown(function() if n then n.stop() end end)

    it("gets the offers of a host name resolved with `resolve`, the chain verified", function()
      local before = #api_log(n, n.api)
      local body = call(n, via("api.kpayment.test", n.api))
      assert.matches("^2 200 1 nil [%d.]+ %-\n$", body)
      local log = api_log(n, n.api)
      assert.equal(before + 1, #log)
      assert.equal("api.kpayment.test", log[#log][4], "the name went as SNI")
      assert.matches("^2 200 1 ", call(n, via("api.kpayment.test", n.api_deep)), nil, false,
        "two intermediates are within lua_ssl_verify_depth 5")
    end)

    it("refuses an IP address, naming the `resolve` option", function()
      local body = call(n, ("base_url=https://127.0.0.1:%d&retries=0"):format(n.api))
      assert.matches("^tls nil 1 nil [%d.]+ ", body)
      assert.matches("nginx cannot verify a certificate for an IP address", body, 1, true)
      assert.matches("`resolve` option", body, 1, true)
    end)

    it("refuses a name the certificate does not carry", function()
      local body = call(n, via("other.kpayment.test", n.api))
      assert.matches("^tls nil 1 nil [%d.]+ the TLS certificate of other%.kpayment%.test does not name it",
        body)
      assert.is_nil(body:find("IP address", 1, true))
    end)

    it("reuses the verified connection: five calls of one client, one TLS connection", function()
      -- localhost: a name no other spec uses, so a pool of its own
      for _ = 1, 5 do assert.matches("^2 200 1 ", call(n, via("localhost", n.api))) end
      local log = {}
      for _, l in ipairs(api_log(n, n.api)) do
        if l[4] == "localhost" then log[#log + 1] = l end
      end
      assert.equal(5, #log)
      for i = 1, 5 do
        assert.equal(log[1][1], log[i][1], "request " .. i .. " on the first connection")
        assert.equal(i, log[i][2])
      end
    end)

    it("resumes the TLS session when the server closed the connection (TLS 1.2)", function()
      for _ = 1, 3 do assert.matches("^2 200 1 ", call(n, via("api.kpayment.test", n.api_close))) end
      local log = api_log(n, n.api_close)
      assert.equal(3, #log)
      assert.are_not.equal(log[1][1], log[2][1], "a new connection each time")
      assert.equal(".", log[1][3], "the first handshake is a full one")
      assert.equal("r", log[2][3], "the second resumes the first's session")
      assert.equal("r", log[3][3])
    end)

    it("gets the offers over the subrequest transport, nginx verifying the chain", function()
      local body = call(n, "transport=subrequest&retries=0&base_url=https://api.kpayment.test:" .. n.api)
      assert.matches("^2 200 1 nil [%d.]+ %-\n$", body)
    end)
  end)

  describe("with kpayment's nginx/http.conf (Debian's CA bundle)", function()
    local n
    setup(function() n = start(pki, {}) end)
    teardown(function() if n then n.stop() end end)

    it("fails with kind tls, OpenSSL's reason and both directives, and does not retry", function()
      local _, body = n.get("/t/error?" .. via("api.kpayment.test", n.api, 2))
      assert.matches("^tls false 1 ", body)
      assert.matches("(20: unable to get local issuer certificate)", body, 1, true)
      assert.matches("lua_ssl_trusted_certificate", body, 1, true)
      assert.matches("lua_ssl_verify_depth", body, 1, true)
      assert.equal(0, #api_log(n, n.api), "the handshake failed: no request reached the API")
      assert.matches("lua ssl certificate verify error: %(20: unable to get local issuer certificate%)",
        n.log())
    end)

    it("gives its whole message, the way out included (no cut at 255 bytes)", function()
      local _, body = n.get("/t/error?" .. via("api.kpayment.test", n.api))
      assert.matches("^tls false 1 ", body)
      assert.matches("check both, or give insecure = true\n$", body)
    end)
  end)

  describe("with nginx trusting another CA", function()
    local n
    setup(function()
      n = start(pki, { kpayment_http = false, subrequest = true, http = ([[
lua_ssl_trusted_certificate %s;
lua_ssl_verify_depth 5;
proxy_ssl_trusted_certificate %s;
proxy_ssl_verify_depth 5;
]]):format(pki.wrong_ca, pki.wrong_ca) })
    end)
    teardown(function() if n then n.stop() end end)

    it("fails with kind tls, OpenSSL's reason and both directives", function()
      local _, body = n.get("/t/error?" .. via("api.kpayment.test", n.api, 2))
      assert.matches("^tls false 1 ", body)
      assert.matches("(20: unable to get local issuer certificate)", body, 1, true)
      assert.matches("lua_ssl_trusted_certificate", body, 1, true)
      assert.matches("lua_ssl_verify_depth", body, 1, true)
    end)

    it("gets the offers with insecure = true, and warns in nginx's error log", function()
      local body = call(n, via("api.kpayment.test", n.api) .. "&insecure=1")
      assert.matches("^2 200 1 ", body)
      assert.matches("%[warn%][^\n]*kpayment: TLS verification is off %(insecure = true%): " ..
        "https://api%.kpayment%.test:%d+/", n.log())
      local _, verified = n.get("/t/error?" .. via("api.kpayment.test", n.api))
      assert.matches("^tls false 1 ", verified, nil, false,
        "a verified client does not get the insecure client's pooled connection")
    end)

    it("fails with kind tls over the subrequest transport, naming proxy_ssl_trusted_certificate", function()
      local body = call(n, "transport=subrequest&retries=2&base_url=https://api.kpayment.test:" .. n.api)
      assert.matches("upstream SSL certificate verify error: %(20:unable to get local issuer certificate%)",
        n.log(), nil, false, "nginx's own handshake failed")
      assert.matches("^tls nil 1 nil [%d.]+ ", body)
      assert.matches("proxy_ssl_trusted_certificate", body, 1, true)
    end)
  end)

  describe("with nginx trusting the root CA at lua_ssl_verify_depth 1", function()
    local n
    setup(function()
      n = start(pki, { kpayment_http = false,
        http = ("lua_ssl_trusted_certificate %s;\nlua_ssl_verify_depth 1;\n"):format(pki.root_ca) })
    end)
    teardown(function() if n then n.stop() end end)

    it("fails with kind tls on a chain deeper than 1, naming lua_ssl_verify_depth", function()
      local _, body = n.get("/t/error?" .. via("api.kpayment.test", n.api_deep, 2))
      assert.matches("^tls false 1 ", body)
      -- nginx's verify callback goes on past OpenSSL's 22 (chain too long), so
      -- the result nginx reads is 20 (no issuer found within the depth)
      assert.matches("is not verified %(2[02]: [^)]+%)", body)
      assert.matches("lua_ssl_verify_depth", body, 1, true)
    end)

    it("verifies leaf + one intermediate at depth 1 (OpenSSL counts no trust anchor)", function()
      assert.matches("^2 200 1 ", call(n, via("api.kpayment.test", n.api)))
    end)
  end)
end)
