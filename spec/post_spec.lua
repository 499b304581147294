-- Attempts that carry a method, a body and headers of their own
-- (client:start's `extra`): over libcurl and through a user's transport
-- function, against a server on loopback that records what it received
-- (spec/support/echo_server.lua).  The nginx transports: spec/nginx/post_nginx.lua.
local core = require("kpayment.core")
local transport = require("kpayment.transport")
local echo = require("support.echo")
local server = require("support.server")

local USER, PASSWORD = "post-user", "post-password-5d1c"
local BASIC = "Basic " .. core.base64(USER .. ":" .. PASSWORD)
local FORM = "application/x-www-form-urlencoded"

-- Every byte value, NULs among them, and longer than libcurl's threshold
-- for Expect: 100-continue.
local function binary_body(n)
  local t = {}
  for i = 1, n do t[i] = string.char((i * 7) % 256) end
  return "\0" .. table.concat(t) .. "\0"
end

-- One attempt on libcurl client c, to its end: the attempt and what the
-- server received (nil when no echo came back).
local function run(c, url, extra)
  local a = assert(c:start(url, nil, 10000, extra))
  local deadline = core.monotonic() + 15
  while not a:done() and core.monotonic() < deadline do c:poll(50) end
  assert(a:done(), "the attempt did not end")
  return a, echo.parse(a:body())
end

local function count(url)
  local c = core.new({})
  local a = run(c, url .. "/_count")
  local n = tonumber(a:body())
  c:close()
  return n
end

local all = echo.all

describe("kpayment.core", function()
  local e
  setup(function() e = echo.start() end)
  teardown(function() if e then e.stop() end end)

  describe("Client:start() with extra, over libcurl", function()
    local c
    before_each(function() c = core.new({ username = USER, password = PASSWORD }) end)
    after_each(function() c:close() end)

    it("sends a POST's body, Content-Type and its own Authorization exactly", function()
      local body = "grant_type=client_credentials&scope=offers%20read"
      local a, got = run(c, e.url .. "/oauth/token?x=1", {
        method = "POST", body = body, content_type = FORM, authorization = "Basic Y2lkOmNzZWNyZXQ=",
      })
      assert.equal(200, (a:stats()))
      assert.equal("POST", got.method)
      assert.equal("/oauth/token?x=1", got.target)
      assert.equal(body, got.body)
      assert.equal(FORM, got.headers["content-type"])
      assert.equal(tostring(#body), got.headers["content-length"])
      assert.same({ "Basic Y2lkOmNzZWNyZXQ=" }, all(got, "authorization"))
      assert.equal("application/json", got.headers.accept)
      assert.matches("^kpayment/", got.headers["user-agent"])
      assert.is_nil(got.headers.expect)
      assert.is_nil(got.headers["transfer-encoding"])
    end)

    it("sends a binary body with NUL bytes whole, without waiting for 100-continue", function()
      local body = binary_body(100000)
      local t0 = core.monotonic()
      local _, got = run(c, e.url .. "/bin", { method = "POST", body = body,
                                                content_type = "application/octet-stream" })
      assert.equal(#body, #got.body)
      assert.is_true(got.body == body, "the body arrived changed")
      assert.is_nil(got.headers.expect)
      assert.is_true(core.monotonic() - t0 < 0.9, "waited for a 100-continue")
    end)

    it("sends an empty body with Content-Length 0, and no Content-Type unless given", function()
      for _, extra in ipairs({ { method = "POST", body = "" }, { method = "POST" } }) do
        local _, got = run(c, e.url .. "/empty", extra)
        assert.equal("POST", got.method)
        assert.equal("", got.body)
        assert.equal("0", got.headers["content-length"])
        assert.is_nil(got.headers["content-type"])
        assert.same({ BASIC }, all(got, "authorization"))
      end
    end)

    it("replaces the client's Basic with the attempt's authorization, or sends none for \"\"", function()
      local _, got = run(c, e.url .. "/a")
      assert.same({ BASIC }, all(got, "authorization"))
      _, got = run(c, e.url .. "/a", { authorization = "Bearer abc" })
      assert.equal("GET", got.method)
      assert.same({ "Bearer abc" }, all(got, "authorization"))
      _, got = run(c, e.url .. "/a", { authorization = "" })
      assert.same({}, all(got, "authorization"))
      local bare = core.new({})
      finally(function() bare:close() end)
      _, got = run(bare, e.url .. "/a", { authorization = "Bearer t0k" })
      assert.same({ "Bearer t0k" }, all(got, "authorization"))
      _, got = run(bare, e.url .. "/a")
      assert.same({}, all(got, "authorization"))
    end)

    it("leaves a GET as it was: no body, Content-Length, Content-Type or Expect", function()
      for _, extra in ipairs({ false, { method = "GET" } }) do
        local _, got = run(c, e.url .. "/g?q=1", extra or nil)
        assert.equal("GET", got.method)
        assert.equal("/g?q=1", got.target)
        assert.equal("", got.body)
        assert.is_nil(got.headers["content-length"])
        assert.is_nil(got.headers["content-type"])
        assert.is_nil(got.headers.expect)
        assert.same({ BASIC }, all(got, "authorization"))
      end
    end)

    it("sends a plain GET on an easy handle that carried a POST before", function()
      for _ = 1, 3 do
        local _, got = run(c, e.url .. "/p", { method = "POST", body = "secret=s3cr3t",
                                               content_type = FORM, authorization = "Bearer x" })
        assert.equal("POST", got.method)
        assert.equal("secret=s3cr3t", got.body)
        _, got = run(c, e.url .. "/g")
        assert.equal("GET", got.method)
        assert.equal("", got.body)
        assert.is_nil(got.headers["content-length"])
        assert.is_nil(got.headers["content-type"])
        assert.same({ BASIC }, all(got, "authorization"))
      end
      -- several at once: some handles come back from POSTs, some from GETs
      local list = {}
      for i = 1, 8 do
        local post = i % 2 == 0
        list[i] = { post, assert(c:start(e.url .. "/m" .. i, nil, 10000,
          post and { method = "POST", body = "n=" .. i, authorization = "Bearer " .. i } or nil)) }
      end
      local deadline = core.monotonic() + 15
      while c:poll(50) > 0 and core.monotonic() < deadline do end
      for i, item in ipairs(list) do
        local got = echo.parse(item[2]:body())
        assert.equal(item[1] and "POST" or "GET", got.method)
        assert.equal(item[1] and "n=" .. i or "", got.body)
        assert.same({ item[1] and "Bearer " .. i or BASIC }, all(got, "authorization"))
      end
      local _, got = run(c, e.url .. "/last")
      assert.equal("GET", got.method)
      assert.is_nil(got.headers["content-type"])
      assert.same({ BASIC }, all(got, "authorization"))
    end)

    it("never follows a redirect with a POST, and keeps its authorization to the first host", function()
      local other = echo.start()
      local fc = core.new({ username = USER, password = PASSWORD, follow_redirects = true })
      finally(function()   -- one finally: busted keeps only a test's last
        fc:close()
        other.stop()
      end)
      for _, status in ipairs({ 301, 302, 303, 307, 308 }) do
        local a = run(fc, e.url .. "/redirect?status=" .. status .. "&to=" .. other.url .. "/stolen",
          { method = "POST", body = "client_secret=s3cr3t", content_type = FORM,
            authorization = "Basic c2VjcmV0" })
        assert.equal(status, (a:stats()))
      end
      assert.equal(0, count(other.url), "a POST followed a redirect")
      -- a GET follows, as configured, without the attempt's authorization
      local _, got = run(fc, e.url .. "/redirect?status=302&to=" .. other.url .. "/next",
        { authorization = "Bearer t0k3n" })
      assert.equal("/next", got.target)
      assert.same({}, all(got, "authorization"))
      -- and the handle is a plain one again for the next GET
      _, got = run(fc, e.url .. "/redirect?status=302&to=" .. e.url .. "/same")
      assert.equal("/same", got.target)
      assert.same({ BASIC }, all(got, "authorization"))
    end)

    it("keeps the body and the authorization out of a failure's message", function()
      local dead = "http://127.0.0.1:" .. server.free_port()
      local a = run(c, dead .. "/token", { method = "POST", body = "client_secret=s3cr3t-b0dy",
                                           authorization = "Bearer s3cr3t-t0k3n" })
      local o = a:outcome()
      assert.equal("network", o.kind)
      assert.is_nil(tostring(o.message):find("s3cr3t", 1, true))
    end)

    it("raises on a bad extra, naming the field and never its value", function()
      local url = e.url .. "/x"
      local cases = {
        { "text", "bad argument #4 to 'start' (table expected, got string)" },
        { { method = "PUT" }, "bad argument #4 to 'start' (extra.method must be \"GET\" or \"POST\")" },
        { { method = "post" }, "bad argument #4 to 'start' (extra.method must be \"GET\" or \"POST\")" },
        { { method = 1 }, "bad argument #4 to 'start' (extra.method must be \"GET\" or \"POST\")" },
        { { method = "GET", body = "b" }, "bad argument #4 to 'start' (extra.body needs method \"POST\")" },
        { { body = "b" }, "bad argument #4 to 'start' (extra.body needs method \"POST\")" },
        { { content_type = "text/plain" },
          "bad argument #4 to 'start' (extra.content_type needs method \"POST\")" },
        { { method = "POST", body = 12 }, "bad argument #4 to 'start' (extra.body must be a string)" },
        { { method = "POST", body = {} }, "bad argument #4 to 'start' (extra.body must be a string)" },
        { { method = "POST", content_type = "a\r\nX-Evil: 1" },
          "bad argument #4 to 'start' (extra.content_type must be a string without NUL, CR or LF)" },
        { { authorization = "Bearer s3cr3t\r\nX-Evil: 1" },
          "bad argument #4 to 'start' (extra.authorization must be a string without NUL, CR or LF)" },
        { { authorization = "Bearer s3cr3t\n" },
          "bad argument #4 to 'start' (extra.authorization must be a string without NUL, CR or LF)" },
        { { authorization = "Bearer s3\0cr3t" },
          "bad argument #4 to 'start' (extra.authorization must be a string without NUL, CR or LF)" },
        { { authorization = true },
          "bad argument #4 to 'start' (extra.authorization must be a string without NUL, CR or LF)" },
        { { methd = "POST" },
          "bad argument #4 to 'start' (extra takes only method, body, content_type and authorization)" },
        { { "POST" },
          "bad argument #4 to 'start' (extra takes only method, body, content_type and authorization)" },
      }
      for _, case in ipairs(cases) do
        -- not a tail call: LuaJIT would lose the method's name
        local ok, err = pcall(function() local r = c:start(url, nil, -1, case[1]) return r end)
        assert.is_false(ok)
        assert.equal(case[2], (err:gsub("^[^:]+:%d+: ", "")))
        assert.is_nil(err:find("s3cr3t", 1, true))
        assert.is_nil(err:find("s3", 1, true))
      end
      -- nothing was started by the refused calls
      local _, got = run(c, url)
      assert.equal("GET", got.method)
    end)
  end)
end)

describe("kpayment.transport", function()
  describe("a transport function", function()
    it("receives the method, the body and the attempt's headers", function()
      local seen = {}
      local t = transport.select({ transport = function(req)
        seen[#seen + 1] = req
        return 200, "{}", { ["Content-Type"] = "application/json" }
      end, username = USER, password = PASSWORD })
      finally(function() t:close() end)
      local extra = { method = "POST", body = "a=1\0b", content_type = FORM,
                      authorization = "Bearer abc" }
      local a = t:start("http://api.invalid/token", nil, 5000, extra)
      extra.body, extra.authorization = "changed", "changed"   -- a copy was kept
      t:wait(a, 5000)
      assert.is_true((a:done()))
      assert.equal("{}", a:body())
      local req = seen[1]
      assert.equal("POST", req.method)
      assert.equal("a=1\0b", req.body)
      assert.equal("Bearer abc", req.headers.Authorization)
      assert.equal(FORM, req.headers["Content-Type"])
      assert.equal("application/json", req.headers.Accept)
      assert.equal("http://api.invalid/token", req.url)

      t:wait(t:start("http://api.invalid/empty", nil, 5000, { method = "POST" }), 5000)
      assert.equal("POST", seen[2].method)
      assert.equal("", seen[2].body)
      assert.is_nil(seen[2].headers["Content-Type"])
      assert.equal(BASIC, seen[2].headers.Authorization)

      t:wait(t:start("http://api.invalid/none", nil, 5000, { authorization = "" }), 5000)
      assert.equal("GET", seen[3].method)
      assert.is_nil(seen[3].headers.Authorization)

      t:wait(t:start("http://api.invalid/get", nil, 5000), 5000)
      local get = seen[4]
      assert.equal("GET", get.method)
      assert.is_nil(get.body)
      assert.equal(BASIC, get.headers.Authorization)
      assert.is_nil(get.headers["Content-Type"])
    end)

    it("is refused a bad extra before it runs", function()
      local called = false
      local t = transport.select({ transport = function() called = true return 200, "" end })
      finally(function() t:close() end)
      local ok, err = pcall(t.start, t, "http://api.invalid/", nil, 5000, { method = "DELETE" })
      assert.is_false(ok)
      assert.matches('extra%.method must be "GET" or "POST"', err)
      t:poll(0)
      assert.is_false(called)
    end)
  end)
end)
