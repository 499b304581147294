-- Numbers decode the same whatever LC_NUMERIC the host has set: a C
-- library reads "1.5" by the locale's decimal point.  The child process
-- runs under a de_DE locale (decimal comma) built privately with localedef.
local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  local ok = p:close()
  return ok, out
end

describe("kpayment.core", function()
  describe("decode() under a decimal-comma locale", function()
    local dir

    lazy_setup(function()
      dir = os.tmpname()
      os.remove(dir)
      -- env -u: under the sanitizer suite, localedef (which leaks by design)
      -- must not inherit the preloaded runtime; the decoding child does
      local ok, out = sh("mkdir -p " .. dir .. " && env -u LD_PRELOAD localedef -i de_DE -f UTF-8 " ..
        dir .. "/de_DE.UTF-8")
      assert(ok, "localedef failed (Debian package 'locales' provides its sources): " .. out)
    end)

    lazy_teardown(function()
      if dir then os.execute("rm -rf " .. dir) end
    end)

    -- Runs script in a child process under the de_DE locale: it prints ok.
    local function run_under_locale(script)
      local file = dir .. "/check.lua"
      local f = assert(io.open(file, "w"))
      f:write('assert(os.setlocale("de_DE.UTF-8", "numeric"), "no de_DE locale")\n', script)
      f:close()
      local env = "LOCPATH=%s LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='%s' %s %s"
      local ok, out = sh(string.format(env, dir, package.cpath, require("support.version").lua, file))
      assert.is_true(ok, out)
      assert.equal("ok\n", out)
    end

    it("writes numbers back with a decimal point (kpayment.json)", function()
      run_under_locale([[
        local core = require("kpayment.core")
        local json = require("kpayment.json")
        local text = '{"a":0.1,"b":19999.99,"c":-2.5e-300,"d":1.5e+300,"e":0.30000000000000004}'
        local v = core.decode(text)
        local back = json.encode(v)
        assert(not back:find(","  .. "%d"), "a decimal comma: " .. back)
        local w = core.decode(back)
        for k, x in pairs(v) do assert(w[k] == x, k .. " in " .. back) end
        assert(json.number(0.1) == "0.1", json.number(0.1))
        print("ok")
      ]])
    end)

    it("reads every number exactly as under the C locale", function()
      run_under_locale([[
        -- LuaJIT formats numbers itself, whatever the locale
        assert(tostring(1.5) == "1,5" or jit and os.setlocale(nil, "numeric") == "de_DE.UTF-8",
          "the locale is not in effect")
        local core = require("kpayment.core")
        local long = "0." .. ("1"):rep(300)
        local t = core.decode("[1.5, -2.25e-3, 123456789012345678901234567890.5, 1e300, " .. long .. "]")
        assert(#t == 5, "stack damaged: " .. #t)
        assert(t[1] == 1.5, "1.5")
        assert(t[2] == -2.25e-3, "-2.25e-3")
        assert(t[3] == 123456789012345678901234567890.5, "30 digits")
        assert(t[4] == 1e300, "1e300")
        assert(t[5] == 0.11111111111111111, "300 digits")
        assert(not pcall(core.decode, "[1e309]"), "range")
        local p = core.decode('{"a":{"x":' .. long .. '},"b":1}', { fields = { "b" } })
        assert(p.b == 1 and next(p.a) == nil, "projection")
        print("ok")
      ]])
    end)
  end)
end)
