-- TLS verification only off on request, logs without secrets or personal
-- data, redirects that never carry credentials to another host.
local kpayment = require("kpayment")
local errors = require("kpayment.errors")
local mock = require("support.mock")

local USER, PASSWORD = "sec-user", "sec-password-5d1e"
local BASIC = errors.base64(USER .. ":" .. PASSWORD)

describe("kpayment security", function()
  local server

  lazy_setup(function() server = mock.start({ "--user", USER, "--password", PASSWORD }) end)
  lazy_teardown(function() if server then server.stop() end end)

  local function capture()
    local lines = {}
    return lines, function(level, msg) lines[#lines + 1] = level .. ": " .. msg end
  end

  describe("TLS", function()
    local tls
    lazy_setup(function() tls = require("support.tls").start() end)
    lazy_teardown(function() if tls then tls.stop() end end)

    it("is verified unless insecure = true is given", function()
      local c = kpayment.new({ base_url = tls.url, skin = "s", retries = 0 })
      local _, err = c:get_offers({ customer_uuid = "c", dealer_uuid = "d" })
      assert.equal("tls", err.kind)
      assert.has_error(function() kpayment.new({ base_url = tls.url, insecure = "yes" }) end,
        "kpayment: bad option 'insecure' (boolean expected, got string)")
    end)

    it("with insecure = true, connects and logs a warning on every request", function()
      local lines, logger = capture()
      local c = kpayment.new({ base_url = tls.url, skin = "s", retries = 0, insecure = true,
                               logger = logger })
      for _ = 1, 2 do
        local _, err = c:get_offers({ customer_uuid = "c", dealer_uuid = "d" })
        assert.equal("decode", err.kind)   -- the handshake passed; the page is not the API
      end
      local warnings = 0
      for _, l in ipairs(lines) do
        if l:find("^warn: TLS verification is off") then warnings = warnings + 1 end
      end
      assert.equal(2, warnings)
    end)
  end)

  describe("debug logging", function()
    it("redacts credentials and masks customer data", function()
      local lines, logger = capture()
      local c = kpayment.new({ base_url = server.url, skin = "s", username = USER, password = PASSWORD,
                               debug = true, logger = logger })
      local offers = assert(c:get_offers({ customer_uuid = "debug-me", dealer_uuid = "d" }))
      local log = table.concat(lines, "\n")
      assert.matches("debug: GET " .. server.url:gsub("%p", "%%%0") .. ".-Authorization: %[redacted%]", log)
      assert.matches("debug: 200 in [%d.]+ ms, 3 offer%(s%)", log)
      assert.is_nil(log:find(PASSWORD, 1, true))
      assert.is_nil(log:find(BASIC, 1, true))
      for _, o in ipairs(offers) do
        local cu = o.customer
        for _, v in ipairs({ cu.firstName, cu.lastName, cu.phone, cu.email }) do
          assert.is_nil(log:find(v, 1, true), "unmasked: " .. v)
        end
      end
    end)

    it("shows customer data only with log_personal_data = true", function()
      local lines, logger = capture()
      local c = kpayment.new({ base_url = server.url, skin = "s", username = USER, password = PASSWORD,
                               debug = true, log_personal_data = true, logger = logger })
      local offers = assert(c:get_offers({ customer_uuid = "debug-me", dealer_uuid = "d" }))
      local log = table.concat(lines, "\n")
      assert.truthy(log:find(offers[1].customer.email, 1, true))
      assert.is_nil(log:find(PASSWORD, 1, true))
    end)

    it("is silent by default", function()
      local lines, logger = capture()
      local c = kpayment.new({ base_url = server.url, skin = "s", username = USER, password = PASSWORD,
                               logger = logger })
      assert(c:get_offers({ customer_uuid = "quiet", dealer_uuid = "d" }))
      assert.same({}, lines)
    end)
  end)

  describe("redirects", function()
    local other
    lazy_setup(function() other = mock.start({}) end)
    lazy_teardown(function() if other then other.stop() end end)

    local function redirect_to_other()
      local port = other.url:match(":(%d+)$")
      return "mock:redirect:http://localhost:" .. port ..
        "/payment/kpayment/v1/finance/getFinanceOffersForCustomer?customerUUID=moved&dealerUUID=d" ..
        "&skin=s&locale=en-US"
    end

    it("are not followed by default", function()
      local c = kpayment.new({ base_url = server.url, skin = "s", username = USER, password = PASSWORD })
      local _, err = c:get_offers({ customer_uuid = redirect_to_other(), dealer_uuid = "d" })
      assert.equal("http", err.kind)
      assert.equal(302, err.status)
    end)

    it("when followed, never carry credentials to another host", function()
      other.reset()
      local c = kpayment.new({ base_url = server.url, skin = "s", username = USER, password = PASSWORD,
                               follow_redirects = true })
      local offers = assert(c:get_offers({ customer_uuid = redirect_to_other(), dealer_uuid = "d" }))
      assert.equal("moved", offers[1].customerUUID)
      local req = other.requests()[1]
      assert.is_nil(req.headers.authorization)
    end)
  end)
end)
