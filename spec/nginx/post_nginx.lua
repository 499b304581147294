-- Attempts with a method, a body and an Authorization of their own
-- (client:start's `extra`) through nginx's transports: cosockets and
-- subrequests (kpayment's nginx/server.conf as shipped), against a server
-- that records what it received (spec/support/echo_server.lua).  Run by
-- `make test-openresty`.
local nginx = require("support.nginx")
local echo = require("support.echo")
local core = require("kpayment.core")
local socket_http = require("socket.http")
local ltn12 = require("ltn12")

local USER, PASSWORD = "ngx-user", "ngx-password-77ab"
local BASIC = "Basic " .. core.base64(USER .. ":" .. PASSWORD)
local FORM = "application/x-www-form-urlencoded"

local ROOT = os.getenv("PWD")

-- One attempt of a client made for this request: ?transport=&url= and the
-- extra's fields (method, body, ctype, auth; bin=N: a binary body of N
-- bytes); the echo, or "failed <kind> <message>".  The nginx request's own
-- body, when it has one, is read first (it must not reach the API).
local LOCATION = [[
location = /t/post {
  content_by_lua_block {
    ngx.req.read_body()
    local args = ngx.req.get_uri_args()
    local client = require("kpayment").new({ transport = args.transport, username = "ngx-user",
                                             password = "ngx-password-77ab", retries = 0 })
    local c = client._core
    local extra
    if args.method or args.auth then
      extra = { method = args.method, body = args.body, content_type = args.ctype,
                authorization = args.auth }
      if args.bin then
        local t = {}
        for i = 1, tonumber(args.bin) do t[i] = string.char((i * 7) % 256) end
        extra.body = "\0" .. table.concat(t) .. "\0"
      end
    end
    local a = c:start(args.url, nil, 5000, extra)
    c:wait(a, 5000)
    local _, success = a:done()
    if success then
      ngx.print(a:body())
    else
      local o = a:outcome()
      ngx.print("failed ", tostring(o.kind), " ", tostring(o.message))
    end
    client:close()
  }
}
]]

local function binary_body(n)
  local t = {}
  for i = 1, n do t[i] = string.char((i * 7) % 256) end
  return "\0" .. table.concat(t) .. "\0"
end

local function query(t)
  local parts = {}
  for k, v in pairs(t) do
    parts[#parts + 1] = k .. "=" .. tostring(v):gsub("[^%w%-%._~]", function(ch)
      return string.format("%%%02X", ch:byte())
    end)
  end
  return table.concat(parts, "&")
end

-- The server.conf given, written under a name of its own, without the
-- lines that name the POST's variables: a configuration from before them.
local function old_server_conf()
  local f = assert(io.open(ROOT .. "/nginx/server.conf", "rb"))
  local text = f:read("*a")
  f:close()
  local kept = {}
  for line in text:gmatch("[^\n]*\n?") do
    if not line:find("kpayment_body", 1, true) and not line:find("kpayment_length", 1, true) and
       not line:find("kpayment_type", 1, true) then
      kept[#kept + 1] = line
    end
  end
  local path = os.tmpname()
  f = assert(io.open(path, "wb"))
  f:write(table.concat(kept))
  f:close()
  return path
end

local function start(e, include)
  return nginx.start({
    server = LOCATION .. ("include %s;"):format(include or (ROOT .. "/nginx/server.conf")),
    http = ("upstream kpayment_api { server %s; keepalive 8; }"):format(e.url:match("//(.*)$")),
  })
end

local all = echo.all

-- POST to nginx's location with a body of the nginx request's own.
local function post(url, body)
  local chunks = {}
  local _, status = socket_http.request({
    url = url, method = "POST", source = ltn12.source.string(body),
    headers = { ["content-length"] = tostring(#body), ["content-type"] = "text/plain" },
    sink = ltn12.sink.table(chunks),
  })
  return status, table.concat(chunks)
end

describe("kpayment inside nginx", function()
  local e, n
  setup(function()
    e = echo.start()
    n = start(e)
  end)
  teardown(function()
    if n then n.stop() end
    if e then e.stop() end
  end)

  for _, name in ipairs({ "cosocket", "subrequest" }) do
    describe("the " .. name .. " transport", function()
      local function call(args)
        args.transport, args.url = name, args.url or e.url .. "/oauth/token?x=1"
        local status, body = n.get("/t/post?" .. query(args))
        assert.equal(200, status, body)
        return echo.parse(body) or body
      end

      it("sends a POST's body, Content-Type, Content-Length and its own Authorization", function()
        local body = "grant_type=client_credentials&scope=offers%20read"
        local got = call({ method = "POST", body = body, ctype = FORM, auth = "Basic Y2lkOmNz" })
        assert.is_table(got, got)
        assert.equal("POST", got.method)
        assert.equal("/oauth/token?x=1", got.target)
        assert.equal(body, got.body)
        assert.equal(FORM, got.headers["content-type"])
        assert.equal(tostring(#body), got.headers["content-length"])
        assert.same({ "Basic Y2lkOmNz" }, all(got, "authorization"))
        assert.equal("application/json", got.headers.accept)
        assert.matches("^kpayment/", got.headers["user-agent"])
        assert.is_nil(got.headers.expect)
      end)

      it("sends a binary body with NUL bytes whole, and an empty one with Content-Length 0", function()
        local got = call({ method = "POST", bin = 70000, ctype = "application/octet-stream" })
        assert.is_table(got, got)
        local want = binary_body(70000)
        assert.equal(#want, #got.body)
        assert.is_true(want == got.body, "the body arrived changed")
        got = call({ method = "POST" })
        assert.equal("POST", got.method)
        assert.equal("", got.body)
        assert.equal("0", got.headers["content-length"])
        assert.is_nil(got.headers["content-type"])
        assert.same({ BASIC }, all(got, "authorization"))
      end)

      it("gives a GET the attempt's authorization, none for \"\", and leaves a plain one as it was",
        function()
        local got = call({ auth = "Bearer t0k" })
        assert.equal("GET", got.method)
        assert.same({ "Bearer t0k" }, all(got, "authorization"))
        got = call({ auth = "" })
        assert.same({}, all(got, "authorization"))
        got = call({})
        assert.equal("GET", got.method)
        assert.equal("", got.body)
        assert.same({ BASIC }, all(got, "authorization"))
        assert.is_nil(got.headers["content-length"])
        assert.is_nil(got.headers["content-type"])
      end)

      it("never sends the nginx request's own body", function()
        local url = n.url .. "/t/post?" .. query({ transport = name, url = e.url .. "/p" })
        local status, body = post(url, "parent-body-secret")
        assert.equal(200, status, body)
        local got = echo.parse(body)
        assert.equal("GET", got.method)
        assert.equal("", got.body)
        assert.is_nil(got.headers["content-length"])
        url = n.url .. "/t/post?" .. query({ transport = name, url = e.url .. "/p", method = "POST",
                                              body = "mine" })
        status, body = post(url, "parent-body-secret")
        assert.equal(200, status, body)
        got = echo.parse(body)
        assert.equal("POST", got.method)
        assert.equal("mine", got.body)
        assert.equal("4", got.headers["content-length"])
      end)
    end)
  end

  describe("the subrequest transport with a server.conf from before POSTs", function()
    it("still sends GETs, and fails a POST naming the include", function()
      local path = old_server_conf()
      local old = start(e, path)
      finally(function()
        old.stop()
        os.remove(path)
      end)
      local _, body = old.get("/t/post?" .. query({ transport = "subrequest", url = e.url .. "/g" }))
      local got = echo.parse(body)
      assert.is_table(got, body)
      assert.equal("GET", got.method)
      assert.same({ BASIC }, all(got, "authorization"))
      _, body = old.get("/t/post?" .. query({ transport = "subrequest", url = e.url .. "/p",
                                              method = "POST", body = "client_secret=s3cr3t" }))
      assert.matches("^failed network kpayment: a POST through the subrequest transport needs " ..
        "%$kpayment_body", body)
      assert.is_nil(body:find("s3cr3t", 1, true))
      assert.is_nil(old.log():find("s3cr3t", 1, true))
    end)
  end)

  it("keeps bodies and authorizations out of nginx's error log", function()
    assert.is_nil(n.log():find("Y2lkOmNz", 1, true))
    assert.is_nil(n.log():find("t0k", 1, true))
    assert.is_nil(n.log():find("client_credentials", 1, true))
  end)
end)
