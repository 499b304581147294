-- The decoder remembers, per Lua state, key strings, table sizes and the
-- key order of objects at each position.  None of that may ever change a
-- result: these cases try to make a stale memory lie.
local core = require("kpayment.core")
local gc = require("support.gc")

local function decode_all(docs)
  local out = {}
  for i, d in ipairs(docs) do out[i] = core.decode(d) end
  return out
end

describe("kpayment.core", function()
  describe("decode() across calls", function()
    it("does not trust a predicted key that only starts the same", function()
      local r = decode_all({ '[{"id":1,"ab":2}]', '[{"idx":1,"a":2}]', '[{"i":1,"abc":2}]' })
      assert.same({ { id = 1, ab = 2 } }, r[1])
      assert.same({ { idx = 1, a = 2 } }, r[2])
      assert.same({ { i = 1, abc = 2 } }, r[3])
    end)

    it("decodes escaped keys at a predicted position", function()
      local t = core.decode('[{"a":1,"b":2},{"a":1,"b":2},{"\\u0061":3,"b\\"":4},{"a\\\\":5}]')
      assert.same({ a = 3, ['b"'] = 4 }, t[3])
      assert.same({ ["a\\"] = 5 }, t[4])
    end)

    it("keeps results right when members change order or go missing", function()
      local t = core.decode('[{"a":1,"b":2,"c":3},{"c":3,"a":1},{"b":null,"a":1,"c":3},{"a":1,"b":2,"c":3}]')
      assert.same({ { a = 1, b = 2, c = 3 }, { c = 3, a = 1 }, { a = 1, c = 3 }, { a = 1, b = 2, c = 3 } }, t)
    end)

    it("stays right after the key cache is overrun by many distinct keys", function()
      local parts, want = {}, {}
      for i = 1, 5000 do parts[i], want["k" .. i] = string.format('"k%d":%d', i, i), i end
      assert.same(want, core.decode("{" .. table.concat(parts, ",") .. "}"))
      local again = core.decode('[{"k1":"x","k2":"y"},{"k1":"x","k2":"y"}]')
      assert.same({ { k1 = "x", k2 = "y" }, { k1 = "x", k2 = "y" } }, again)
    end)

    it("sizes by the last container seen, so a large one does not stick", function()
      local big = "[" .. string.rep("1,", 9999) .. "1]"
      core.decode('{"a":' .. big .. '}')
      local small = core.decode('{"a":[1,2]}')
      assert.equal(2, #small.a)
      assert.same({ a = { 1, 2 } }, small)
    end)

    it("gives the same answers in a coroutine and after a failed decode", function()
      local doc = '[{"id":1,"name":"A"},{"id":2,"name":"B"}]'
      local want = core.decode(doc)
      assert.is_false(pcall(core.decode, '[{"id":1,"name":"A"},{"id":2,"name":'))
      assert.same(want, core.decode(doc))
      local co = coroutine.wrap(function() return core.decode(doc) end)
      assert.same(want, co())
    end)

    it("stays right when a finalizer decodes in the middle of a decode", function()
      -- allocation inside a decode can run __gc, and a __gc may decode too:
      -- both calls share this state's key cache, hints and shapes
      local doc = '[{"id":1,"name":"A","tags":["x"]},{"id":2,"name":"B","tags":["y"]}]'
      local want = core.decode(doc)
      local inner, inner_doc = {}, '{"other":{"name":"Z","id":9},"id":"outer-key?"}'
      local decoding, nested = false, 0
      local function arm(n)
        for _ = 1, n do
          gc.garbage(function()
            if decoding then nested = nested + 1 end
            inner[#inner + 1] = core.decode(inner_doc)
          end)
        end
      end
      local big, wants = {}, {}
      for i = 1, 200 do big[i], wants[i] = doc, want end
      local text = "[" .. table.concat(big, ",") .. "]"
      -- an incremental collector paced to run cycles back to back, from a
      -- full collection: at the default pace, or in the generational mode
      -- that lua5.4 starts in, no collection may finalize inside any of the
      -- decodes (none did, once the loop made little other garbage)
      local mode = gc.mode("incremental")
      local lua54 = _VERSION == "Lua 5.4"   -- the pace of support.gc's storms
      local pause = collectgarbage("setpause", lua54 and 110 or 100)
      local stepmul = collectgarbage("setstepmul", lua54 and 400 or 1000)
      finally(function()
        collectgarbage("setpause", pause)
        collectgarbage("setstepmul", stepmul)
        if mode then gc.mode(mode) end
      end)
      collectgarbage("collect")
      for _ = 1, 50 do
        arm(20)
        decoding = true
        local got = core.decode(text)
        decoding = false
        assert.same(wants, got)
      end
      assert.is_true(nested > 0, "no finalizer ran inside a decode")
      for _, v in ipairs(inner) do assert.same({ other = { name = "Z", id = 9 }, id = "outer-key?" }, v) end
    end)

    it("keeps keys longer than the cache holds", function()
      local long = string.rep("k", 100)
      local t = core.decode('[{"' .. long .. '":1},{"' .. long .. '":2}]')
      assert.equal(1, t[1][long])
      assert.equal(2, t[2][long])
    end)
  end)
end)
