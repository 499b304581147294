-- The number rule on every Lua: integers are exact.  On 5.3+ any integral
-- value that fits in int64 is a Lua integer; without 64-bit integers (5.1,
-- 5.2, LuaJIT) integral values up to 2^53 in magnitude are numbers.  Any
-- other integral value is the string of exactly its JSON digits, never
-- rounded.
local core = require("kpayment.core")
local kpayment = require("kpayment")
local offer = require("kpayment.offer")
local version = require("support.version")

local EXACT = { "0", "1", "-1", "42", "9007199254740991", "9007199254740992", "-9007199254740992" }
local BEYOND = { "9007199254740993", "-9007199254740993", "9223372036854775807", "-9223372036854775808" }
local HUGE = { "18446744073709551616", "123456789012345678901234567890" }

describe("kpayment.core decode() numbers on " .. _VERSION, function()
  it("keeps integral values up to 2^53 as exact numbers", function()
    for _, s in ipairs(EXACT) do
      local v = core.decode("[" .. s .. "]")[1]
      assert.equal("number", type(v), s)
      assert.equal(tonumber(s), v, s)
      if version.int64 then assert.equal("integer", math.type(v), s) end
    end
  end)

  it("never rounds a larger integral value", function()
    for _, s in ipairs(BEYOND) do
      local v = core.decode("[" .. s .. "]")[1]
      if version.int64 then
        assert.equal("integer", math.type(v), s)
        assert.equal(s, string.format("%d", v), s)
      else
        assert.equal(s, v, s)   -- the JSON digits, as a string
      end
    end
  end)

  it("gives integers beyond int64 as their digits, on every Lua", function()
    for _, s in ipairs(HUGE) do
      assert.equal(s, core.decode("[" .. s .. "]")[1], s)
      assert.equal(s, core.decode('{"financeOffers":[{"id":' .. s .. '}]}', { fields = { "id" } })
        .financeOffers[1].id, s)
    end
    -- however long: not out of range, as a float would be
    local long = "1" .. string.rep("0", 400)
    assert.equal(long, core.decode(long))
  end)

  it("decodes fractions and exponents as numbers on every version", function()
    local t = core.decode("[1.5, -0.25, 1e3, 9007199254740993.0, 2E-2]")
    assert.same({ 1.5, -0.25, 1000, 9007199254740992, 0.02 }, t)
    for i = 1, #t do assert.equal("number", type(t[i])) end
  end)

  it("keeps the rule in objects, in projections and when skipping", function()
    local text = '{"financeOffers":[{"id":9007199254740993,"n":7,"skip":[12345678901234567890123]}]}'
    local whole = core.decode(text).financeOffers[1]
    local projected = core.decode(text, { fields = { "id", "n" } }).financeOffers[1]
    for _, o in ipairs({ whole, projected }) do
      assert.equal(version.integer("9007199254740993"), o.id)
      assert.equal(7, o.n)
    end
    assert.is_nil(projected.skip)
  end)

  it("lets offers:find() take the id as a number or as its digits", function()
    local list = offer.wrap(kpayment.decode(
      '{"financeOffers":[{"id":9007199254740992},{"id":9007199254740993},{"id":-9007199254740993}]}'
    ).financeOffers)
    assert.equal(list[1], list:find(9007199254740992))
    assert.equal(list[1], list:find("9007199254740992"))
    assert.equal(list[2], list:find("9007199254740993"))
    assert.equal(list[3], list:find("-9007199254740993"))
    assert.is_nil(list:find("9007199254740994"))
    if version.int64 then
      assert.equal(list[2], list:find(version.integer("9007199254740993")))
    else
      -- 9007199254740993 is no Lua 5.1 number: the literal is 2^53
      assert.equal(list[1], list:find(9007199254740993))
    end
  end)
end)
