-- One validator for options: kpayment.new and the C core accept and refuse
-- the same values, and the caller is blamed, with the module's prefix.
local kpayment = require("kpayment")
local core = require("kpayment.core")

local NUMBERS = { -1, 0, 0.0005, 1, 86400, 86400.5, 86401, 86400 * 365, 2 ^ 31, 2 ^ 52, 2 ^ 52 + 2,
                  math.huge, -math.huge, 0 / 0 }

describe("kpayment", function()
  describe("new() options", function()
    for _, key in ipairs({ "timeout", "connect_timeout", "max_body" }) do
      it("'" .. key .. "': the Lua check and the C core agree on every value", function()
        for _, v in ipairs(NUMBERS) do
          local lua_ok = pcall(kpayment.new, { [key] = v, base_url = "http://127.0.0.1:9" })
          local c_ok, c = pcall(core.new, { [key] = v })
          if c_ok then c:close() end
          assert.equal(c_ok, lua_ok, key .. " = " .. tostring(v))
        end
      end)
    end

    it("accepts the longest timeout, which still fits a 32-bit long in milliseconds", function()
      local c = kpayment.new({ timeout = core.LIMITS.seconds, base_url = "http://127.0.0.1:9" })
      c:close()
      assert.equal(86400, core.LIMITS.seconds)
      assert.is_true(core.LIMITS.seconds * 1000 < 2 ^ 31)
    end)

    it("blames the caller's line, with the module's prefix", function()
      local ok, msg = pcall(function() local _ = kpayment.new({ timeout = 86400 * 365 }) end)
      assert.is_false(ok)
      assert.matches("^spec/options_spec%.lua:%d+: kpayment: bad option 'timeout' "
        .. "%(seconds from 0 to 86400 expected%)$", msg)
      ok, msg = pcall(function() local _ = kpayment.new({ max_body = 2 ^ 53 }) end)
      assert.is_false(ok)
      assert.matches("^spec/options_spec%.lua:%d+: kpayment: bad option 'max_body'", msg)
    end)
  end)

  describe("core.decode()", function()
    it("without options ignores whatever the registry holds", function()
      local registry = debug.getregistry()
      registry.fields = { "nothing" }
      local ok, v = pcall(core.decode, '{"a":1,"b":{"c":2}}')
      registry.fields = nil
      assert.is_true(ok, tostring(v))
      assert.same({ a = 1, b = { c = 2 } }, v)
    end)

    it("takes a projection built once with core.fields", function()
      local list = { "a" }
      local fields = core.fields(list)
      list[1] = "b"   -- the projection copied its paths
      assert.same({ a = 1 }, core.decode('{"a":1,"b":2}', { fields = fields }))
      assert.equal("kpayment.Fields", getmetatable(fields).__name)
    end)
  end)
end)
