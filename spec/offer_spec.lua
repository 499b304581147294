-- Offer and offer-list accessors (kpayment.offer), on decoded JSON.
local kpayment = require("kpayment")
local offer = require("kpayment.offer")
local time = require("kpayment.time")
local version = require("support.version")

-- 9007199254740993 as this Lua decodes it (a string without 64-bit integers).
local BIG = version.integer("9007199254740993")

local function wrap(json)
  return offer.wrap(kpayment.decode(json).financeOffers)
end

describe("kpayment.offer", function()
  describe("kpayment.time parse_time()", function()
    it("reads UTC timestamps with milliseconds", function()
      assert.equal(1743161686.759, time.parse_time("2025-03-28T11:34:46.759Z"))
    end)

    it("matches os.time for whole seconds in UTC", function()
      -- 2000-02-29 00:00:00 UTC, computed independently: 10957 days + 59
      assert.equal((10957 + 59) * 86400, time.parse_time("2000-02-29T00:00:00Z"))
      assert.equal(0, time.parse_time("1970-01-01T00:00:00Z"))
    end)

    it("handles offsets", function()
      assert.equal(time.parse_time("2025-03-28T11:34:46Z"), time.parse_time("2025-03-28T13:34:46+02:00"))
      assert.equal(time.parse_time("2025-03-28T11:34:46Z"), time.parse_time("2025-03-28T06:34:46-0500"))
    end)

    it("does not depend on the process's TZ", function()
      -- os.time on a table reads local time; parse_time must not.
      local t = time.parse_time("2025-07-01T12:00:00.500Z")
      assert.equal(1751371200.5, t)
    end)

    it("reads a time without a zone as UTC, as the API writes every time, and +hh offsets", function()
      assert.equal(1743161686.759, time.parse_time("2025-03-28T11:34:46.759"))
      assert.equal(time.parse_time("2025-03-28T11:34:46Z"), time.parse_time("2025-03-28T13:34:46+02"))
    end)

    it("knows which years have a 29 February", function()
      assert.equal((10957 + 59) * 86400, time.parse_time("2000-02-29T00:00:00Z"))
      assert.is_number(time.parse_time("2024-02-29T00:00:00Z"))
      for _, s in ipairs({ "2025-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2100-02-29T00:00:00Z" }) do
        assert.is_nil(time.parse_time(s), s)
      end
    end)

    it("returns nil for anything else", function()
      for _, s in ipairs({ "", "2025-03-28", "2025-13-01T00:00:00Z", "2025-02-30T00:00:00Z",
                           "2025-03-28T24:00:00Z", "2025-03-28T11:34:46.Z", "2025-03-28T11:34:46+2",
                           "2025-03-28T11:34:46759Z", "2025-03-28T11:34:46-23:99",
                           "2025-03-28T11:34:46+24:00", "2025-03-28T11:34:46+0", "yesterday" }) do
        assert.is_nil(time.parse_time(s), s)
      end
      assert.is_nil(time.parse_time(nil))
      assert.is_nil(time.parse_time(42))
    end)
  end)

  describe("offer methods", function()
    local offers = wrap([[{"financeOffers":[
      {"id":1,"status":"APPROVED","isActive":true,"expiryDate":"2099-01-01T00:00:00.000Z",
       "customer":{"firstName":"José","middleName":null,"lastName":"García"},
       "dealerOrder":{"vehicle":{"year":"2021","make":"Toyota","model":"Camry"}},
       "financeOfferAttributes":[{"option":"apr","value":"6.49"},{"option":"term_months","value":"60"}]},
      {"id":9007199254740993,"guid":"g-2","isActive":false,"expiryDate":"2020-01-01T00:00:00.000Z",
       "dealerOrder":{"vehicle":{"year":"2019","brand":{"brandName":"Honda"},"model":"Civic"}}},
      {"id":3}
    ]}]])

    it("is_active() reads isActive", function()
      assert.is_true(offers[1]:is_active())
      assert.is_false(offers[2]:is_active())
      assert.is_false(offers[3]:is_active())
    end)

    it("expires_at() and is_expired([now])", function()
      assert.equal(4070908800, offers[1]:expires_at())
      assert.is_false(offers[1]:is_expired())
      assert.is_true(offers[2]:is_expired())
      assert.is_false(offers[2]:is_expired(0))
      assert.is_true(offers[1]:is_expired(4070908800))
      assert.is_nil(offers[3]:expires_at())
      assert.is_false(offers[3]:is_expired())
    end)

    it("is_expired() is nil, not false, for an expiry it cannot read", function()
      local list = wrap([[{"financeOffers":[{"expiryDate":"28/03/2025"},{"expiryDate":1743161686759},
        {"expiryDate":null},{"expiryDate":"2000-01-01T00:00:00.000"}]}]])
      assert.is_nil(list[1]:is_expired())
      assert.is_nil(list[2]:is_expired())
      assert.is_false(list[3]:is_expired())
      assert.is_true(list[4]:is_expired())
    end)

    it("attribute() finds financeOfferAttributes by option", function()
      assert.equal("6.49", offers[1]:attribute("apr"))
      assert.equal("60", offers[1]:attribute("term_months"))
      assert.is_nil(offers[1]:attribute("missing"))
      assert.is_nil(offers[3]:attribute("apr"))
    end)

    it("attribute(nil) finds nothing, not an entry without an option", function()
      local o = wrap([[{"financeOffers":[{"financeOfferAttributes":[{"value":"orphan"}]}]}]])[1]
      assert.is_nil(o:attribute(nil))
    end)

    it("customer_name() joins the parts present", function()
      assert.equal("José García", offers[1]:customer_name())
      assert.equal("", offers[3]:customer_name())
    end)

    it("vehicle_label() gives year make model, falling back to the brand", function()
      assert.equal("2021 Toyota Camry", offers[1]:vehicle_label())
      assert.equal("2019 Honda Civic", offers[2]:vehicle_label())
      assert.equal("", offers[3]:vehicle_label())
    end)

    it("vehicle_label() falls back to the brand for an empty make, writing whole numbers alike everywhere",
      function()
        local o = wrap([[{"financeOffers":[{"dealerOrder":{"vehicle":{"year":2021.0,"make":"",
          "brand":{"brandName":"Toyota"},"model":"Camry"}}}]}]])[1]
        assert.equal("2021 Toyota Camry", o:vehicle_label())
      end)

    it("never shadows a field of the API", function()
      local o = wrap([[{"financeOffers":[{"status":"X","is_active":"field wins"}]}]])[1]
      assert.equal("X", o.status)
      assert.equal("field wins", o.is_active)
    end)
  end)

  describe("list methods", function()
    local offers = wrap([[{"financeOffers":[{"id":1,"isActive":true},{"id":2,"isActive":false,"guid":"g2"},
      {"id":9007199254740993,"isActive":true}]}]])

    it("active() keeps the active offers, as a list with the same methods", function()
      local a = offers:active()
      assert.equal(2, #a)
      assert.equal(1, a[1].id)
      assert.equal(BIG, a[2].id)
      assert.equal(a[1], a:find(1))
    end)

    it("find() looks up by id (exactly, above 2^53) or guid", function()
      assert.equal(2, offers:find(2).id)
      assert.equal(2, offers:find("g2").id)
      assert.equal(BIG, offers:find(BIG).id)
      assert.equal(BIG, offers:find("9007199254740993").id)
      assert.is_nil(offers:find(9007199254740992))
      assert.is_nil(offers:find("9007199254740992"))
      assert.equal(1, offers:find("1").id)
      assert.is_nil(offers:find(42))
    end)

    it("find(nil) finds nothing, not an offer without a guid", function()
      assert.is_nil(offers:find(nil))
      assert.is_nil(offers:find())
    end)

    it("is a plain sequence", function()
      assert.equal(3, #offers)
      local n = 0
      for _ in ipairs(offers) do n = n + 1 end
      assert.equal(3, n)
    end)
  end)
end)
