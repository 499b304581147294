-- Secrets in every shape they take, user values that cannot be printed,
-- and base URLs checked whole: what a hostile review found, each a spec
-- that failed before its fix.
local kpayment = require("kpayment")
local core = require("kpayment.core")
local mock = require("support.mock")

local USER = "shape-user"

-- A logger and hooks that keep every line and URL they see.
local function recorder()
  local seen = {}
  local function keep(s) seen[#seen + 1] = s end
  return seen, {
    logger = function(level, message) keep(level .. ": " .. message) end,
    on_request = function(info) keep("on_request " .. info.url) end,
    on_response = function(info) keep("on_response " .. info.url) end,
  }
end

local function joined(seen) return table.concat(seen, "\n") end

describe("secrets", function()
  local m
  lazy_setup(function() m = mock.start({}) end)
  lazy_teardown(function() if m then m.stop() end end)

  it("are scrubbed in every encoding a URL gives them, hooks and debug log alike", function()
    local password = "p@ss w0rd!"
    for _, param in ipairs({ "customer_uuid", "dealer_uuid", "skin" }) do
      local seen, opts = recorder()
      opts.base_url, opts.username, opts.password, opts.debug = m.url, USER, password, true
      opts.skin = "s"
      local c = kpayment.new(opts)
      local params = { customer_uuid = "c", dealer_uuid = "d" }
      params[param] = password
      c:get_offers(params)
      local text = joined(seen)
      assert.matches("on_request .*%[redacted%]", text, nil, false, param)
      local encoded = "p%40ss%20w0rd%21"
      for _, form in ipairs({ password, encoded, "p%40ss+w0rd%21", encoded:lower() }) do
        assert.is_nil(text:find(form, 1, true), param .. ": " .. form .. " in\n" .. text)
      end
    end
  end)

  it("of a proxy, an @ left in its password included, are scrubbed from libcurl's messages", function()
    for _, proxy in ipairs({ "http://u:p@ss:w@rd99@127.0.0.1:9", "http://bob:hunter@22@127.0.0.1:9" }) do
      local seen, opts = recorder()
      opts.base_url, opts.skin, opts.proxy, opts.retries, opts.debug = m.url, "s", proxy, 0, true
      local c = kpayment.new(opts)
      local _, err = c:get_offers({ customer_uuid = "c", dealer_uuid = "d" })
      local password = proxy:match("^http://[^:]+:(.*)@")
      local text = tostring(err) .. "\n" .. tostring(err.message) .. "\n" .. joined(seen)
      assert.is_nil(text:find(password, 1, true), proxy .. " leaked in: " .. text)
      assert.is_nil(text:find(password:match("^[^@]+@"), 1, true), proxy .. " partly leaked in: " .. text)
    end
  end)

  it("of the environment's proxy are masked by kpayment.info() with one parser", function()
    local secrets = require("kpayment.secrets")
    assert.equal("http://[redacted]@proxy:3128", secrets.mask_proxy("http://u:p/w@rd@proxy:3128"))
    assert.equal("http://[redacted]@proxy:3128", secrets.mask_proxy("http://u:p@ss:w@rd99@proxy:3128"))
    assert.equal("[redacted]@proxy:3128", secrets.mask_proxy("user:pass@proxy:3128"))
    assert.equal("socks5h://[redacted]@[::1]:1080/", secrets.mask_proxy("socks5h://u%40x:p@[::1]:1080/"))
    assert.equal("http://proxy:3128", secrets.mask_proxy("http://proxy:3128"))
    local p = secrets.proxy("http://bob:hunter@22@proxy:3128")
    assert.equal("bob", p.user)
    assert.equal("hunter@22", p.password)
    assert.equal("proxy:3128", p.rest)
  end)

  it("include the Basic value of user:password, and are kept from hooks' URLs", function()
    local list = kpayment.new({ base_url = m.url, username = USER, password = "pw 1234" })._secrets
    local want = { ["pw 1234"] = true, ["pw%201234"] = true, ["pw+1234"] = true,
                   [core.base64(USER .. ":pw 1234")] = true }
    for _, s in ipairs(list) do want[s] = nil end
    assert.same({}, want)
  end)
end)

describe("a user's value that cannot be printed", function()
  local m
  lazy_setup(function() m = mock.start({}) end)
  lazy_teardown(function() if m then m.stop() end end)

  -- error(value) with a __tostring that raises, or gives no string
  local function unprintable(kind)
    local mt = kind == "raises" and { __tostring = function() error("x") end }
      or { __tostring = function() return {} end }
    return setmetatable({}, mt)
  end

  for _, kind in ipairs({ "raises", "no string" }) do
    it("raised by a callback or a hook changes no outcome (__tostring " .. kind .. ")", function()
      local lines = {}
      local function boom() error(unprintable(kind)) end
      local c = kpayment.new({ base_url = m.url, skin = "s", on_request = boom, on_response = boom,
                               logger = function(_, message) lines[#lines + 1] = message end })
      local offers, err = c:get_offers({ customer_uuid = "c", dealer_uuid = "d" })
      assert.is_nil(err)
      assert.equal(3, #offers)
      local results = c:get_offers_many({ { customer_uuid = "c1", dealer_uuid = "d" },
                                          { customer_uuid = "c2", dealer_uuid = "d" } },
                                        { on_progress = boom })
      assert.equal(3, #results[1].offers)
      assert.equal(3, #results[2].offers)
      local done = 0
      c:start_offers({ customer_uuid = "c3", dealer_uuid = "d",
                       on_done = function() done = done + 1; boom() end })
      local polls = 0
      while c:poll(50) > 0 and polls < 200 do polls = polls + 1 end
      assert.equal(1, done)
      assert.matches("on_request callback failed: %(a table that cannot be shown",
        table.concat(lines, "\n"))
    end)
  end

  it("raised by the logger itself changes no outcome", function()
    local c = kpayment.new({ base_url = m.url, skin = "s", debug = true,
                             logger = function() error(unprintable("raises")) end })
    local stderr = io.stderr
    local captured = {}
    rawset(io, "stderr", { write = function(_, ...)
      for _, v in ipairs({ ... }) do captured[#captured + 1] = v end
    end })
    local ok, offers = pcall(c.get_offers, c, { customer_uuid = "c", dealer_uuid = "d" })
    rawset(io, "stderr", stderr)
    assert.is_true(ok, tostring(offers))
    assert.equal(3, #offers)
    assert.matches("logger raised %(%(a table that cannot be shown", table.concat(captured))
  end)

  it("given as an option or a parameter name, is named without raising its own error", function()
    local key = unprintable("raises")
    assert.has_error(function() kpayment.new({ [key] = 1 }) end,
      "kpayment: unknown option '(a table that cannot be shown: its __tostring raised)'")
    local c = kpayment.new({ base_url = m.url, skin = "s" })
    assert.has_error(function() c:get_offers({ customer_uuid = "c", dealer_uuid = "d", [key] = 1 }) end,
      "kpayment: unknown parameter '(a table that cannot be shown: its __tostring raised)'")
  end)

  it("raised by a transport function is raised as kpayment's error", function()
    local c = kpayment.new({ base_url = m.url, skin = "s",
                             transport = function() error(unprintable("raises")) end })
    local ok, why = pcall(c.get_offers, c, { customer_uuid = "c", dealer_uuid = "d" })
    assert.is_false(ok)
    assert.equal("kpayment: transport function raised: " ..
      "(a table that cannot be shown: its __tostring raised)", why)
  end)
end)

describe("base_url", function()
  it("is checked whole when the client is made, naming the part at fault", function()
    for url, why in pairs({
      ["http://127.0.0.1:99999/"] = "port 99999 is not from 1 to 65535",
      ["http://127.0.0.1:0"] = "port 0 is not from 1 to 65535",
      ["http://127.0.0.1:x/"] = "port 'x' is not a number",
      ["http://u:p@127.0.0.1/"] = "has credentials (user@): give username and password instead",
      -- a "/" in a password ends the host part: the rest must not be quoted
      -- as a port, nor taken for a path
      ["http://svc-user:Hunter2/Pass@api.example.com"] =
        "has credentials (user@): give username and password instead",
      ["http://svc-user:4242/x@api.example"] = "has credentials (user@): give username and password instead",
      ["http://127.0.0.1/#top"] = "has a fragment (#…)",
      ["http://127.0.0.1/?a=1"] = "has a query (?…): parameters go to each call",
      ["ftp://127.0.0.1/"] = "scheme 'ftp' is not http or https",
      ["http:///path"] = "has no host",
      ["http://[::1x]/"] = "host [::1x] is not an IPv6 address",
      ["http://a b/"] = "contains whitespace or control characters",
      ["127.0.0.1:8080"] = "expected http:// or https:// and a host",
    }) do
      assert.has_error(function() kpayment.new({ base_url = url }) end,
        "kpayment: bad option 'base_url' (" .. why .. ")", url)
    end
    for _, url in ipairs({ "http://127.0.0.1:1", "https://api.example.com:65535/prefix/",
                           "http://[::1]:8080", "HTTPS://API.EXAMPLE.COM", "http://my_service:8080" }) do
      assert.is_table(kpayment.new({ base_url = url }), url)
    end
  end)
end)

describe("Client:settings", function()
  it("shows the resolved configuration and where each part came from, never a secret", function()
    local c = kpayment.new({ base_url = "http://127.0.0.1:9", username = "u", password = "secret-pw-1",
                             timeout = 5, proxy = "http://pu:secret-proxy@127.0.0.1:3128" })
    local s = c:settings()
    assert.equal("http://127.0.0.1:9", s.base_url)
    assert.equal("option", s.from.base_url)
    assert.equal(5, s.timeout)
    assert.equal(5, s.deadline)
    assert.equal("default", s.from.deadline)
    assert.equal(core.DEFAULTS.pool_size, s.pool_size)
    assert.equal("basic", s.credentials)
    assert.equal("option", s.from.credentials)
    assert.equal("http://[redacted]@127.0.0.1:3128", s.proxy)
    assert.equal("curl", s.transport)
    local text = require("kpayment.json").encode(s)
    assert.is_nil(text:find("secret", 1, true), text)
  end)
end)
