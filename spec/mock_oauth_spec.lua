-- The mock's OAuth2 token endpoint (client credentials grant) and the bearer
-- tokens it issues, spoken to over HTTP with luasocket (not through
-- kpayment), so that the client's OAuth2 specs can trust it.  The mock runs
-- as a process of its own (spec/support/mock.lua).

local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local mime = require("mime")
local cjson = require("cjson")
local support = require("support.mock")

local TOKEN = "/oauth2/token"
local API = "/payment/kpayment/v1/finance/getFinanceOffersForCustomer"
  .. "?customerUUID=c-1&dealerUUID=d-1&skin=s&locale=en_US"
local CLIENT_ID, CLIENT_SECRET = "client-1", "s3cret"
-- every character §2.3.1 makes a client encode: `:`, space, `%`, `@`, `+`, non-ASCII
local ODD_ID, ODD_SECRET = "shop:eu west@\195\169", "p%41ss+w:rd @\226\130\172"

--- application/x-www-form-urlencoded: unreserved characters as they are,
-- space as `+`, every other byte as %XX.
local function form_encode(s)
  return (s:gsub("[^%w%-%._~ ]", function(c) return string.format("%%%02X", c:byte()) end)
    :gsub(" ", "+"))
end

local function form(params)
  local parts = {}
  for i = 1, #params, 2 do
    parts[#parts + 1] = form_encode(params[i]) .. "=" .. form_encode(params[i + 1])
  end
  return table.concat(parts, "&")
end

--- The Basic value of RFC 6749 §2.3.1: each part form-encoded, then Base64.
local function basic(id, secret)
  return "Basic " .. mime.b64(form_encode(id) .. ":" .. form_encode(secret))
end

--- One request with socket.http: { status, headers, body }, or { err }
-- when no response came.
local function request(url, method, path, headers, body)
  local chunks = {}
  headers = headers or {}
  if body then headers["content-length"] = tostring(#body) end
  local ok, status, res_headers = http.request({ url = url .. path, method = method, headers = headers,
    source = body and ltn12.source.string(body), sink = ltn12.sink.table(chunks) })
  if not ok then return { err = status } end
  return { status = status, headers = res_headers, body = table.concat(chunks) }
end

--- POST to the token endpoint; opts: auth (an Authorization value, false
-- for none; default Basic with the main client), body (default the grant),
-- ctype.
local function post_token(url, opts)
  opts = opts or {}
  local headers = { ["content-type"] = opts.ctype or "application/x-www-form-urlencoded" }
  local auth = opts.auth
  if auth == nil then auth = basic(CLIENT_ID, CLIENT_SECRET) end
  if auth then headers.authorization = auth end
  return request(url, "POST", TOKEN, headers, opts.body or "grant_type=client_credentials")
end

local function oauth_error(res, status, code)
  assert.are.equal(status, res.status, res.body)
  assert.are.equal("application/json;charset=UTF-8", res.headers["content-type"])
  assert.are.equal("no-store", res.headers["cache-control"])
  local body = cjson.decode(res.body)
  assert.are.equal(code, body.error)
  assert.are.equal("string", type(body.error_description))
  return body
end

local function access_token(url, opts)
  local res = post_token(url, opts)
  assert.are.equal(200, res.status, res.body)
  return cjson.decode(res.body).access_token
end

local function api(url, authorization)
  return request(url, "GET", API, { authorization = authorization })
end

describe("kpayment.mock token endpoint", function()
  local server, odd_server, short_server, plain_server

  lazy_setup(function()
    server = support.start({ "--user", "u", "--password", "p", "--token", "t0k3n",
      "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET,
      "--scope", "payment.financeOffer.read payment.financeOffer.write" })
    odd_server = support.start({ "--client-id", ODD_ID, "--client-secret=" .. ODD_SECRET })
    short_server = support.start({ "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET,
      "--token-ttl", "0.5" })
    plain_server = support.start({ "--user", "u", "--password", "p" })
  end)

  lazy_teardown(function()
    for _, s in ipairs({ server, odd_server, short_server, plain_server }) do
      if s then s.stop() end
    end
  end)

  before_each(function() server.reset() end)

  describe("issuing", function()
    it("issues a bearer token for the client credentials grant", function()
      local res = post_token(server.url)
      assert.are.equal(200, res.status, res.body)
      assert.are.equal("application/json;charset=UTF-8", res.headers["content-type"])
      assert.are.equal("no-store", res.headers["cache-control"])
      assert.are.equal("no-cache", res.headers.pragma)
      local body = cjson.decode(res.body)
      assert.are.equal("string", type(body.access_token))
      assert.matches("^[%w%-]+$", body.access_token)
      assert.are.same({ access_token = body.access_token, token_type = "Bearer", expires_in = 3600,
        scope = "payment.financeOffer.read payment.financeOffer.write" }, body)
      assert.are_not.equal(body.access_token, access_token(server.url))
    end)

    it("grants a requested scope it has, and refuses one it has not", function()
      local res = post_token(server.url,
        { body = form({ "grant_type", "client_credentials", "scope", "payment.financeOffer.read" }) })
      assert.are.equal("payment.financeOffer.read", cjson.decode(res.body).scope)
      res = post_token(server.url,
        { body = form({ "grant_type", "client_credentials", "scope", "payment.financeOffer.read admin" }) })
      assert.matches("admin", oauth_error(res, 400, "invalid_scope").error_description)
    end)

    it("takes a form type with parameters, and parameters in any order", function()
      local res = post_token(server.url, { ctype = "application/x-www-form-urlencoded; charset=UTF-8",
        body = "scope=&grant_type=client_credentials" })
      assert.are.equal(200, res.status, res.body)
    end)

    it("takes the client credentials in the body instead", function()
      local body = form({ "grant_type", "client_credentials", "client_id", CLIENT_ID,
        "client_secret", CLIENT_SECRET })
      assert.are.equal(200, post_token(server.url, { auth = false, body = body }).status)
      body = form({ "grant_type", "client_credentials", "client_id", ODD_ID, "client_secret", ODD_SECRET })
      assert.are.equal(200, post_token(odd_server.url, { auth = false, body = body }).status)
    end)

    it("decodes Basic credentials encoded as RFC 6749 section 2.3.1 has it", function()
      local res = post_token(odd_server.url, { auth = basic(ODD_ID, ODD_SECRET) })
      assert.are.equal(200, res.status, res.body)
      assert.are.equal("payment.financeOffer.read", cjson.decode(res.body).scope)
      -- without the form-encoding the colon of the id splits it, %41 is read as A, + as a space
      local raw = "Basic " .. mime.b64(ODD_ID .. ":" .. ODD_SECRET)
      oauth_error(post_token(odd_server.url, { auth = raw }), 401, "invalid_client")
      local no_id_colon = "Basic " .. mime.b64(ODD_ID:gsub(":", "%%3A") .. ":" .. ODD_SECRET)
      oauth_error(post_token(odd_server.url, { auth = no_id_colon }), 401, "invalid_client")
    end)
  end)

  describe("errors", function()
    it("refuses a wrong secret, an unknown client and no credentials with 401 invalid_client", function()
      for _, auth in ipairs({ basic(CLIENT_ID, "wrong"), basic("client-2", CLIENT_SECRET), false,
        "Basic !!not-base64", "Basic " .. mime.b64("no colon"), "Bearer t0k3n" }) do
        local res = post_token(server.url, { auth = auth })
        oauth_error(res, 401, "invalid_client")
        assert.are.equal('Basic realm="kpayment-mock"', res.headers["www-authenticate"])
      end
    end)

    it("refuses other grant types with 400 unsupported_grant_type", function()
      for _, grant in ipairs({ "password", "refresh_token", "authorization_code", "Client_Credentials" }) do
        local res = post_token(server.url, { body = "grant_type=" .. grant })
        oauth_error(res, 400, "unsupported_grant_type")
      end
    end)

    it("refuses malformed requests with 400 invalid_request", function()
      for _, body in ipairs({ "scope=payment.financeOffer.read", "grant_type=" }) do -- no grant_type
        oauth_error(post_token(server.url, { body = body }), 400, "invalid_request")
      end
      oauth_error(post_token(server.url, { ctype = "application/json",
        body = '{"grant_type":"client_credentials"}' }), 400, "invalid_request")
      oauth_error(post_token(server.url, { body = "grant_type=client_credentials&grant_type=password" }),
        400, "invalid_request")
      local both = form({ "grant_type", "client_credentials", "client_secret", CLIENT_SECRET })
      oauth_error(post_token(server.url, { body = both }), 400, "invalid_request")
    end)

    it("answers other methods with 405", function()
      local res = request(server.url, "GET", TOKEN)
      assert.are.equal(405, res.status)
      assert.are.equal("POST", res.headers.allow)
      assert.are.equal("invalid_request", cjson.decode(res.body).error)
    end)

    it("is not there without --client-id", function()
      assert.are.equal(404, post_token(plain_server.url).status)
      assert.are.equal(404, request(plain_server.url, "GET", "/_mock/expire_tokens").status)
      assert.are.same({ connections = 0, requests = 0 }, plain_server.stats())
    end)
  end)

  describe("bearer tokens", function()
    it("are accepted by the API while valid", function()
      local token = access_token(server.url)
      local res = api(server.url, "Bearer " .. token)
      assert.are.equal(200, res.status, res.body)
      assert.are.equal(3, #cjson.decode(res.body).financeOffers)
      assert.are.equal(200, api(odd_server.url, "Bearer " .. access_token(odd_server.url,
        { auth = basic(ODD_ID, ODD_SECRET) })).status)
    end)

    it("leave Basic and the static token as they were", function()
      assert.are.equal(200, api(server.url, "Basic " .. mime.b64("u:p")).status)
      assert.are.equal(200, api(server.url, "Bearer t0k3n").status)
      for _, auth in ipairs({ false, "Basic " .. mime.b64("u:wrong") }) do
        local res = api(server.url, auth or nil)
        assert.are.equal(401, res.status)
        assert.are.equal('Basic realm="kpayment-mock"', res.headers["www-authenticate"])
      end
      local res = api(odd_server.url, nil)
      assert.are.equal(401, res.status)
      assert.are.equal(401, cjson.decode(res.body).errors[1].errorCode)
    end)

    it("are refused with invalid_token when unknown", function()
      local res = api(server.url, "Bearer mock-at-1-0000000000000000")
      assert.are.equal(401, res.status)
      assert.are.equal('Bearer error="invalid_token", '
        .. 'error_description="The access token is unknown to this server."', res.headers["www-authenticate"])
      local body = cjson.decode(res.body)
      assert.are.same({}, body.warnings)
      assert.are.equal(401, body.errors[1].errorCode)
      assert.are.equal("Invalid access token", body.errors[1].errorMessage)
      -- a token of another server is unknown here too
      assert.are.equal(401, api(server.url, "Bearer " .. access_token(short_server.url)).status)
    end)

    it("expire after --token-ttl seconds, fractions allowed", function()
      local res = post_token(short_server.url)
      local issued = socket.gettime()
      local body = cjson.decode(res.body)
      assert.are.equal(1, body.expires_in) -- 0.5 s, rounded up
      socket.sleep(math.max(0, issued + 0.8 - socket.gettime()))
      res = api(short_server.url, "Bearer " .. body.access_token)
      assert.are.equal(401, res.status)
      assert.are.equal('Bearer error="invalid_token", error_description="The access token expired."',
        res.headers["www-authenticate"])
      assert.are.equal("The access token expired.", cjson.decode(res.body).errors[1].errorDescription)
    end)

    it("expire all at once with /_mock/expire_tokens", function()
      server.control("/_mock/expire_tokens") -- those of the tests before
      local first, second = access_token(server.url), access_token(server.url)
      assert.are.same({ expired = 2 }, server.control("/_mock/expire_tokens"))
      for _, token in ipairs({ first, second }) do
        local res = api(server.url, "Bearer " .. token)
        assert.are.equal(401, res.status)
        assert.matches('error="invalid_token"', res.headers["www-authenticate"], 1, true)
      end
      assert.are.same({ expired = 0 }, server.control("/_mock/expire_tokens"))
      assert.are.equal(200, api(server.url, "Bearer " .. access_token(server.url)).status)
    end)

    it("live as long as /_mock/token_ttl says, until a reset", function()
      assert.are.same({ token_ttl = 3600 }, server.control("/_mock/token_ttl"))
      assert.are.same({ token_ttl = 0.25 }, server.control("/_mock/token_ttl?s=0.25"))
      local res = post_token(server.url)
      local issued = socket.gettime()
      assert.are.equal(1, cjson.decode(res.body).expires_in)
      socket.sleep(math.max(0, issued + 0.5 - socket.gettime()))
      assert.are.equal(401, api(server.url, "Bearer " .. cjson.decode(res.body).access_token).status)
      assert.are.same({ token_ttl = 0 }, server.control("/_mock/token_ttl?s=0"))
      assert.are.equal(401, api(server.url, "Bearer " .. access_token(server.url)).status)
      for _, bad in ipairs({ "-1", "abc", "1e3", "99999999" }) do
        assert.are.equal(400, request(server.url, "GET", "/_mock/token_ttl?s=" .. bad).status, bad)
      end
      server.reset()
      assert.are.same({ token_ttl = 3600 }, server.control("/_mock/token_ttl"))
      assert.are.equal(3600, cjson.decode(post_token(server.url).body).expires_in)
    end)
  end)

  describe("faults", function()
    local function set_fault(mode)
      return server.control("/_mock/token_fault?mode=" .. mode)
    end

    it("500 answers a JSON server_error", function()
      assert.are.same({ token_fault = "500" }, set_fault("500"))
      local res = post_token(server.url)
      assert.are.equal(500, res.status)
      assert.are.equal("server_error", cjson.decode(res.body).error)
      assert.are.equal(500, post_token(server.url).status, "the fault stays")
    end)

    it("badjson answers 200 with a body that is not JSON", function()
      set_fault("badjson")
      local res = post_token(server.url)
      assert.are.equal(200, res.status)
      assert.matches("^application/json", res.headers["content-type"])
      assert.is_false((pcall(cjson.decode, res.body)))
    end)

    it("close closes the connection without an answer", function()
      set_fault("close")
      local res = post_token(server.url)
      assert.is_nil(res.status)
      assert.are.equal("closed", res.err)
    end)

    it("error:code answers that error whatever the request", function()
      set_fault("error:invalid_grant")
      oauth_error(post_token(server.url), 400, "invalid_grant")
      set_fault("error:invalid_client")
      local res = post_token(server.url)
      oauth_error(res, 401, "invalid_client")
      assert.are.equal('Basic realm="kpayment-mock"', res.headers["www-authenticate"])
    end)

    it("slow answers late while other connections are served", function()
      assert.are.same({ token_fault = "slow:1.5" }, set_fault("slow:1.5"))
      local host, port = server.url:match("^http://([^:/]+):(%d+)$")
      local sock = assert(socket.connect(host, tonumber(port)))
      finally(function() sock:close() end)
      sock:settimeout(10)
      local body = "grant_type=client_credentials"
      local started = socket.gettime()
      assert(sock:send(table.concat({ "POST " .. TOKEN .. " HTTP/1.1", "Host: x",
        "Authorization: " .. basic(CLIENT_ID, CLIENT_SECRET),
        "Content-Type: application/x-www-form-urlencoded", "Content-Length: " .. #body, "", body }, "\r\n")))
      -- meanwhile, the API answers on another connection
      assert.are.equal(200, api(server.url, "Basic " .. mime.b64("u:p")).status)
      local readable = socket.select({ sock }, nil, 0)
      if socket.gettime() - started < 1.4 then assert.are.same({}, readable) end
      local line = assert(sock:receive("*l"))
      assert.are.equal("HTTP/1.1 200 OK", line)
      assert(socket.gettime() - started >= 1.4, "answered too early")
      set_fault("none")
      assert.are.equal(200, post_token(server.url).status)
    end)

    it("none, a reset or a new mode ends a fault; a bad mode gets 400", function()
      set_fault("500")
      assert.are.same({ token_fault = "none" }, set_fault("none"))
      assert.are.equal(200, post_token(server.url).status)
      set_fault("500")
      assert.are.same({ token_fault = "badjson" }, set_fault("badjson"))
      server.reset()
      assert.are.same({ token_fault = "none" }, server.control("/_mock/token_fault"))
      assert.are.equal(200, post_token(server.url).status)
      for _, bad in ipairs({ "nope", "slow:soon", "error:nope", "500:1" }) do
        local res = request(server.url, "GET", "/_mock/token_fault?mode=" .. bad)
        assert.are.equal(400, res.status, bad)
      end
      assert.are.same({ token_fault = "none" }, server.control("/_mock/token_fault"))
    end)
  end)

  describe("control endpoints", function()
    it("count the POSTs to the token endpoint, whatever their answer", function()
      assert.are.same({ connections = 0, requests = 0, token_requests = 0 }, server.stats())
      post_token(server.url)
      post_token(server.url, { auth = basic(CLIENT_ID, "wrong") })
      server.control("/_mock/token_fault?mode=close")
      post_token(server.url)
      request(server.url, "GET", TOKEN) -- not a POST
      api(server.url, "Bearer t0k3n")
      assert.are.same({ connections = 1, requests = 1, token_requests = 3 }, server.stats())
      server.reset()
      assert.are.same({ connections = 0, requests = 0, token_requests = 0 }, server.stats())
    end)

    it("log token requests without the secret, the Basic value or tokens", function()
      local token = access_token(server.url)
      api(server.url, "Bearer " .. token)
      post_token(server.url, { auth = false, body = form({ "grant_type", "client_credentials",
        "client_id", CLIENT_ID, "client_secret", CLIENT_SECRET }) })
      local url = server.url .. "/_mock/requests"
      local text = assert(http.request(url))
      for _, secret in ipairs({ CLIENT_SECRET, mime.b64(CLIENT_ID .. ":" .. CLIENT_SECRET), token }) do
        assert.is_nil(text:find(secret, 1, true), "the log shows " .. secret)
      end
      local log = cjson.decode(text)
      assert.are.equal(3, #log)
      assert.are.same({ "POST", TOKEN, { grant_type = "client_credentials" }, "Basic" },
        { log[1].method, log[1].target, log[1].params, log[1].headers.authorization })
      assert.are.equal("Bearer", log[2].headers.authorization)
      assert.are.same({ grant_type = "client_credentials", client_id = CLIENT_ID,
        client_secret = "[redacted]" }, log[3].params)
    end)
  end)

  describe("command line", function()
    local lua = os.getenv("KPAYMENT_MOCK_LUA") or "lua5.4"

    it("documents its OAuth2 options", function()
      local pipe = assert(io.popen(lua .. " bin/kpayment-mock --help"))
      local text = pipe:read("a")
      pipe:close()
      for _, option in ipairs({ "--client-id I", "--client-secret S", "--token-ttl S", "--scope S",
        "/_mock/token_fault", "/_mock/expire_tokens", "/_mock/token_ttl" }) do
        assert.matches(option, text, 1, true)
      end
    end)

    it("refuses bad OAuth2 options with status 2", function()
      local err_file = os.tmpname()
      finally(function() os.remove(err_file) end)
      for _, args in ipairs({ "--client-id a", "--client-secret b", "--token-ttl 5",
        "--client-id a --client-secret b --token-ttl soon", "--client-id a --client-secret b --token-ttl -1",
        "--client-id a --client-secret b --scope ''", "--client-id a --client-secret b --token-ttl" }) do
        local command = lua .. " bin/kpayment-mock " .. args .. " >/dev/null 2>" .. err_file
        assert.are.same({ nil, "exit", 2 }, { os.execute(command) }, args)
        local f = assert(io.open(err_file))
        assert.matches("^kpayment%-mock: ", f:read("a"), nil, false, args)
        f:close()
      end
    end)
  end)
end)
