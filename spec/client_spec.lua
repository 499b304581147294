-- get_offers() end to end over real HTTP against the bundled mock API.
local kpayment = require("kpayment")
local mock = require("support.mock")
local read_fixture = require("support.fixtures")
local dkjson = require("dkjson")
local socket_http = require("socket.http")
local ltn12 = require("ltn12")
local version = require("support.version")

local USER, PASSWORD, TOKEN = "spec-user", "spec-password-7f3a", "spec-token-91c2e"
local CUSTOMER, DEALER = "0b5e3c1a-customer", "7d2f9a40-dealer"

-- The integer fields of the reference (64-bit on the Java backend).
local INTEGER_FIELDS = {
  id = true, version = true, lenderID = true, availability = true, phoneCommunicationId = true,
  emailCommunicationId = true, signatureRequestID = true, numberOfInvoices = true, parent = true,
  financeOfferId = true,
}

-- The raw body the mock sends, decoded independently (dkjson keeps integers
-- exact on 5.4; nulls become dkjson.null so they can be told apart).
local function raw_offers(url, query)
  local chunks = {}
  local _, code = socket_http.request({
    url = url .. "/payment/kpayment/v1/finance/getFinanceOffersForCustomer?" .. query,
    headers = { authorization = "Basic " .. require("mime").b64(USER .. ":" .. PASSWORD) },
    sink = ltn12.sink.table(chunks),
  })
  assert.equal(200, code)
  return assert(dkjson.decode(table.concat(chunks), 1, dkjson.null)).financeOffers
end

-- Deep comparison: same keys, same values, same number subtypes; a null
-- member of `raw` must be absent from `ours`.
local function same(ours, raw, path)
  if raw == dkjson.null then
    assert.is_nil(ours, path .. " should be absent (null)")
    return
  end
  if not (type(raw) == "number" and type(ours) == "string" and not version.int64) then
    assert.equal(type(raw), type(ours), path)
  end
  if type(raw) == "table" then
    for k, v in pairs(raw) do same(ours[k], v, path .. "." .. tostring(k)) end
    for k in pairs(ours) do
      assert.is_true(raw[k] ~= nil, path .. "." .. tostring(k) .. " is extra")
    end
  elseif type(raw) == "number" and type(ours) == "string" and not version.int64 then
    -- above 2^53 without 64-bit integers: the exact digits, which dkjson rounds
    assert.is_true(math.abs(raw) >= 2^53 and ours:find("^%-?%d+$") and tonumber(ours) == raw, path)
  elseif type(raw) == "number" then
    assert.equal(version.subtype(raw), version.subtype(ours), path)
    assert.equal(raw, ours, path)
  else
    assert.equal(raw, ours, path)
  end
end

-- Every field of the reference example exists (or was sent as null) at every
-- level, with the reference's type.
local function covers_example(ours, raw, example, path)
  for k, ev in pairs(example) do
    local p = path .. "." .. tostring(k)
    if raw[k] ~= dkjson.null then
      assert.is_not_nil(ours[k], p .. " is missing")
      if type(ev) == "table" and ev[1] ~= nil then
        for i = 1, #raw[k] do covers_example(ours[k][i], raw[k][i], ev[1], p .. "[" .. i .. "]") end
      elseif type(ev) == "table" then
        covers_example(ours[k], raw[k], ev, p)
      elseif type(ev) == "number" and INTEGER_FIELDS[k] and version.int64 then
        assert.equal("integer", math.type(ours[k]), p)
      elseif type(ev) == "number" and INTEGER_FIELDS[k] then
        local v = ours[k]
        assert.is_true(type(v) == "number" and v == math.floor(v)
          or type(v) == "string" and v:find("^%-?%d+$") ~= nil, p)
      else
        assert.equal(type(ev), type(ours[k]), p)
      end
    end
  end
end

describe("kpayment", function()
  local server, client

  lazy_setup(function()
    server = mock.start({ "--user", USER, "--password", PASSWORD, "--token", TOKEN })
    client = kpayment.new({ base_url = server.url, username = USER, password = PASSWORD,
                            skin = "spec-skin", timeout = 5 })
  end)

  lazy_teardown(function()
    if client then client:close() end
    if server then server.stop() end
  end)

  describe("client:get_offers()", function()
    it("returns every field of the response with its type", function()
      local offers = assert(client:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER }))
      local raw = raw_offers(server.url, "customerUUID=" .. CUSTOMER .. "&dealerUUID=" .. DEALER ..
        "&skin=spec-skin&locale=en-US")
      assert.equal(#raw, #offers)
      assert.is_true(#offers >= 1)
      same(offers, raw, "financeOffers")
      local example = dkjson.decode(read_fixture("example-200.json"), 1, dkjson.null).financeOffers[1]
      for i = 1, #offers do covers_example(offers[i], raw[i], example, "financeOffers[" .. i .. "]") end
    end)

    it("keeps 64-bit integers exact", function()
      local offers = assert(client:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER }))
      assert.equal(version.integer("9007199254740993"), offers[1].id)
      if version.int64 then assert.equal("integer", math.type(offers[1].id)) end
      assert.equal(offers[1], offers:find("9007199254740993"))
      if version.int64 then assert.equal(offers[1], offers:find(version.integer("9007199254740993"))) end
      assert.is_nil(offers:find(9007199254740992))
    end)

    it("keeps fields the reference does not list", function()
      local offers = assert(client:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER }))
      assert.equal("spec-skin", offers[1].skin)
    end)

    it("decodes unicode, escapes and surrogate pairs as UTF-8", function()
      local offers = assert(client:get_offers({ customer_uuid = "mock:unicode", dealer_uuid = DEALER }))
      local raw = raw_offers(server.url, "customerUUID=mock%3Aunicode&dealerUUID=" .. DEALER ..
        "&skin=spec-skin&locale=en-US")
      same(offers, raw, "financeOffers")
      local all = {}
      for _, o in ipairs(offers) do all[#all + 1] = o:customer_name() end
      assert.matches("[\240-\244]", table.concat(all), nil, false)  -- a 4-byte sequence
    end)

    it("returns the same offers for the same customer every time", function()
      local a = assert(client:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER }))
      local b = assert(client:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER }))
      assert.same(a, b)
    end)

    it("returns an empty list when there are no offers", function()
      local offers = assert(client:get_offers({ customer_uuid = "mock:offers:0", dealer_uuid = DEALER }))
      assert.equal(0, #offers)
      assert.equal(0, #offers:active())
    end)

    it("sends the request the API expects", function()
      server.reset()
      assert(client:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER, locale = "fr-CA" }))
      local req = server.requests()[1]
      assert.equal("GET", req.method)
      assert.matches("^/payment/kpayment/v1/finance/getFinanceOffersForCustomer%?", req.target)
      assert.same({ customerUUID = CUSTOMER, dealerUUID = DEALER, skin = "spec-skin", locale = "fr-CA" },
        req.params)
      assert.equal("application/json", req.headers.accept)
      assert.equal("Basic", req.headers.authorization)
      assert.matches("gzip", req.headers["accept-encoding"])
      -- the Lua that runs us: LuaJIT names itself
      assert.matches("^kpayment/%d+%.%d+%.%d+ %(Lua[JIT]* [%d.]+[%w.-]*; libcurl/%d",
        req.headers["user-agent"])
    end)

    it("sends each call's own parameters, whether or not they are the last call's", function()
      local calls = {
        { { customer_uuid = CUSTOMER, dealer_uuid = DEALER }, "spec-skin" },
        { { customer_uuid = CUSTOMER, dealer_uuid = DEALER }, "spec-skin" },
        { { customer_uuid = CUSTOMER, dealer_uuid = DEALER, skin = "spec-skin" }, "spec-skin" },
        { { customer_uuid = CUSTOMER .. "-2", dealer_uuid = DEALER }, "spec-skin" },
        { { customer_uuid = CUSTOMER, dealer_uuid = DEALER, skin = "other" }, "other" },
        { { customer_uuid = CUSTOMER, dealer_uuid = DEALER, locale = "fr CA" }, "spec-skin", "fr CA" },
        { { customer_uuid = CUSTOMER, dealer_uuid = DEALER }, "spec-skin" },
      }
      server.reset()
      for _, c in ipairs(calls) do assert(client:get_offers(c[1])) end
      local seen = server.requests()
      assert.equal(#calls, #seen)
      for i, c in ipairs(calls) do
        assert.same({ customerUUID = c[1].customer_uuid, dealerUUID = DEALER, skin = c[2],
                      locale = c[3] or "en-US" },
          seen[i].params, "call " .. i)
      end
    end)

    it("checks every call's parameters, the same values as the last call's too", function()
      local params = { customer_uuid = CUSTOMER, dealer_uuid = DEALER }
      assert(client:get_offers(params))
      params.dealer = DEALER
      assert.has_error(function() client:get_offers(params) end, "kpayment: unknown parameter 'dealer'")
      params.dealer, params.skin = nil, 42
      assert.has_error(function() client:get_offers(params) end,
        "kpayment: bad parameter 'skin' (string expected, got number)")
      params.skin = nil
      assert(client:get_offers(params))
    end)

    it("percent-encodes hostile parameter values so they arrive intact", function()
      local values = { "a&b=c#d e+f%20g/h?i", "élan ü 王 🚗", "x;y,z'\"<>\\|`~!@$^*()[]{}" }
      for _, v in ipairs(values) do
        server.reset()
        local offers = assert(client:get_offers({ customer_uuid = v, dealer_uuid = v .. "!", skin = v,
                                                   locale = v }))
        local req = server.requests()[1]
        assert.same({ customerUUID = v, dealerUUID = v .. "!", skin = v, locale = v }, req.params)
        assert.equal(v, offers[1].customerUUID)
        assert.equal(v .. "!", offers[1].dealerUUID)
      end
    end)

    it("reuses one connection across calls (keep-alive)", function()
      server.reset()
      for _ = 1, 10 do assert(client:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER })) end
      assert.same({ connections = 1, requests = 10 }, server.stats())
    end)

    it("authenticates with a bearer token instead of Basic", function()
      local c = kpayment.new({ base_url = server.url, bearer_token = TOKEN, skin = "s" })
      server.reset()
      assert(c:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER }))
      assert.equal("Bearer", server.requests()[1].headers.authorization)
      c:close()
    end)

    it("gives offers the accessor methods", function()
      local offers = assert(client:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER }))
      for _, o in ipairs(offers) do
        assert.is_boolean(o:is_active())
        assert.is_number(o:expires_at())
        assert.is_string(o:customer_name())
        assert.matches("^%d%d%d%d %S", o:vehicle_label())
      end
      assert.is_true(#offers:active() <= #offers)
    end)
  end)

  describe("kpayment.get_offers()", function()
    it("uses the client set by configure{}", function()
      kpayment.configure({ base_url = server.url, username = USER, password = PASSWORD })
      local offers = assert(kpayment.get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER,
                                                  skin = "s", locale = "en-US" }))
      assert.equal(CUSTOMER, offers[1].customerUUID)
    end)

    it("reads its configuration from the environment", function()
      local cmd = table.concat({
        "KPAYMENT_BASE_URL='" .. server.url .. "'", "KPAYMENT_USERNAME=" .. USER,
        "KPAYMENT_PASSWORD=" .. PASSWORD, "KPAYMENT_SKIN=env-skin", "KPAYMENT_LOCALE=de-DE",
        "LUA_PATH='lua/?.lua;lua/?/init.lua;;'", "LUA_CPATH='" .. package.cpath .. "'",
        version.lua,
        "-e \"local o = assert(require('kpayment').get_offers{customer_uuid='c1', dealer_uuid='d1'})",
        "print(o[1].skin, o[1].customer.preferredLocale)\"",
      }, " ")
      local p = assert(io.popen(cmd))
      local out = p:read("*a")
      p:close()
      assert.equal("env-skin\tde-DE\n", out)
    end)
  end)

  describe("misuse", function()
    local function call(params) return client:get_offers(params) end

    it("raises on a missing or non-string parameter, naming it", function()
      assert.has_error(function() call({ dealer_uuid = DEALER }) end,
        "kpayment: bad parameter 'customer_uuid' (string expected, got no value)")
      assert.has_error(function() call({ customer_uuid = CUSTOMER, dealer_uuid = 42 }) end,
        "kpayment: bad parameter 'dealer_uuid' (string expected, got number)")
      assert.has_error(function() call({ customer_uuid = CUSTOMER, dealer_uuid = DEALER, skin = "" }) end,
        "kpayment: bad parameter 'skin' (empty string)")
    end)

    it("raises on control characters in a value", function()
      for _, bad in ipairs({ "a\r\nX-Injected: 1", "a\0b", "tab\there", "del\127" }) do
        assert.has_error(function() call({ customer_uuid = bad, dealer_uuid = DEALER }) end,
          "kpayment: bad parameter 'customer_uuid' (contains control characters)")
      end
    end)

    it("raises on an over-long value and on unknown parameters", function()
      assert.has_error(function() call({ customer_uuid = ("x"):rep(1025), dealer_uuid = DEALER }) end,
        "kpayment: bad parameter 'customer_uuid' (longer than 1024 bytes)")
      assert.has_error(function() call({ customer_uuid = CUSTOMER, dealer_uuid = DEALER, dealer = 1 }) end,
        "kpayment: unknown parameter 'dealer'")
    end)

    it("raises on a missing skin when no default was configured", function()
      local c = kpayment.new({ base_url = server.url })
      assert.has_error(function() c:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER }) end,
        "kpayment: bad parameter 'skin' (no value: give it per call, as the 'skin' option of kpayment.new, "
        .. "or in KPAYMENT_SKIN)")
    end)

    it("raises on bad configuration", function()
      assert.has_error(function() kpayment.new({ base_url = server.url, timout = 3 }) end,
        "kpayment: unknown option 'timout'")
      assert.has_error(function() kpayment.new({ base_url = "ftp://example.com" }) end,
        "kpayment: bad option 'base_url' (scheme 'ftp' is not http or https)")
      assert.has_error(function() kpayment.new({ base_url = "https://u:p@example.com" }) end,
        "kpayment: bad option 'base_url' (has credentials (user@): give username and password instead)")
      assert.has_error(function() kpayment.new({ username = "u" }) end,
        "kpayment: 'username' and 'password' go together")
      assert.has_error(function() kpayment.new({ username = "u", password = "p", bearer_token = "t" }) end,
        "kpayment: give one kind of credentials: username/password, bearer_token, or "
        .. "client_id/client_secret (OAuth2)")
      assert.has_error(function() kpayment.new({ timeout = -1 }) end,
        "kpayment: bad option 'timeout' (seconds from 0 to 86400 expected)")
      assert.has_error(function() kpayment.new({ bearer_token = "a\nb" }) end,
        "kpayment: bad option 'bearer_token' (contains control characters)")
      -- RFC 7617: the first colon of user:password ends the user name
      assert.has_error(function() kpayment.new({ username = "a:b", password = "p" }) end,
        "kpayment: bad option 'username' (contains ':', which Basic authentication reads as the "
        .. "end of the user name)")
    end)

    it("raises when get_offers is called with a dot", function()
      assert.has_error(function() client.get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER }) end,
        "kpayment: get_offers must be called as client:get_offers{…}")
    end)
  end)

  describe("client lifetime", function()
    it("close() releases the client; later calls raise", function()
      local c = kpayment.new({ base_url = server.url, skin = "s" })
      c:close()
      c:close()
      assert.has_error(function() c:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER }) end,
        "kpayment: attempt to use a closed client")
    end)

    it("closes at the end of a <close> scope #lua54", function()
      local f = assert(load([[
        local kpayment, url = ...
        local core
        do
          local c <close> = kpayment.new({ base_url = url, skin = "s" })
          core = c._core
        end
        return tostring(core)
      ]]))
      assert.equal("kpayment.Client (closed)", f(kpayment, server.url))
    end)

    it("is collected when unreachable", function()
      local weak = setmetatable({}, { __mode = "v" })
      do
        local c = kpayment.new({ base_url = server.url, skin = "s", username = USER, password = PASSWORD })
        assert(c:get_offers({ customer_uuid = CUSTOMER, dealer_uuid = DEALER }))
        weak[1], weak[2] = c, c._core
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak[1])
      assert.is_nil(weak[2])
    end)

    it("shows no credentials in tostring", function()
      assert.equal("kpayment.Client (" .. server.url .. ")", tostring(client))
    end)
  end)
end)
