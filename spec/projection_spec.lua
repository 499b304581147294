-- Field projection: decode(text, { fields = … }) and get_offers{ fields = … }
-- keep only the listed paths and build nothing else.
local core = require("kpayment.core")
local kpayment = require("kpayment")
local mock = require("support.mock")
local read_fixture = require("support.fixtures")
local version = require("support.version")
local gc = require("support.gc")

local FIELDS = { "id", "status", "foAmount", "expiryDate", "customer.lastName" }

local function keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

describe("kpayment.core", function()
  describe("decode() with fields", function()
    it("keeps only the listed paths inside each offer, without naming financeOffers", function()
      local text = read_fixture("example-200.json")
      local full = core.decode(text)
      local t = core.decode(text, { fields = FIELDS })
      assert.same({ "financeOffers" }, keys(t))
      assert.equal(#full.financeOffers, #t.financeOffers)
      local o, f = t.financeOffers[1], full.financeOffers[1]
      assert.same({ "customer", "expiryDate", "foAmount", "id", "status" }, keys(o))
      assert.same({ "lastName" }, keys(o.customer))
      assert.equal(f.id, o.id)
      assert.equal(f.customer.lastName, o.customer.lastName)
    end)

    it("keeps a listed container whole", function()
      local t = core.decode('{"financeOffers":[{"lender":{"id":1,"name":"L"},"id":2}]}',
        { fields = { "lender" } })
      assert.same({ financeOffers = { { lender = { id = 1, name = "L" } } } }, t)
    end)

    it("projects through arrays", function()
      local t = core.decode('{"financeOffers":[{"financeEvents":[{"eventCode":"A","id":1},{"id":2}]}]}',
        { fields = { "financeEvents.eventCode" } })
      assert.same({ financeOffers = { { financeEvents = { { eventCode = "A" }, {} } } } }, t)
    end)

    it("keeps every element of an array it projects through at its place", function()
      local text = '{"financeOffers":[{"financeEvents":'
        .. '[{"eventCode":"A","id":1},null,7,"s",[],{"eventCode":"C"}]}]}'
      local records = "financeOffers"
      for _, opts in ipairs({ {}, { records = records }, { records = records, step_ms = 0 } }) do
        opts.fields = { "financeEvents.eventCode" }
        local events = core.decode(text, opts).financeOffers[1].financeEvents
        assert.equal(6, #events)
        assert.same({ eventCode = "A" }, events[1])
        assert.equal(core.null, events[2])
        assert.equal(7, events[3])
        assert.equal("s", events[4])
        assert.same({}, events[5])
        assert.same({ eventCode = "C" }, events[6])
      end
      -- as the full decode places them
      local full = core.decode(text).financeOffers[1].financeEvents
      assert.equal(core.null, full[2])
      assert.equal(7, full[3])
    end)

    it("leaves out listed fields that are missing or null", function()
      local t = core.decode('{"financeOffers":[{"id":1,"status":null},{"customer":{}}]}', { fields = FIELDS })
      assert.same({ financeOffers = { { id = 1 }, { customer = {} } } }, t)
    end)

    it("does not select same-named fields of nested records", function()
      local t = core.decode('{"financeOffers":[{"lender":{"id":7},"financeEvents":[{"id":8}]}]}',
        { fields = { "id" } })
      assert.same({ financeOffers = { {} } }, t)
    end)

    it("keeps integers exact and strings unescaped", function()
      local t = core.decode('{"financeOffers":[{"id":9007199254740993,"status":"A\\u00e9\\n"}]}',
        { fields = { "id", "status" } })
      assert.equal(version.integer("9007199254740993"), t.financeOffers[1].id)
      if version.int64 then assert.equal("integer", math.type(t.financeOffers[1].id)) end
      assert.equal("Aé\n", t.financeOffers[1].status)
    end)

    it("still rejects malformed JSON in the parts it skips", function()
      for _, bad in ipairs({
        '{"financeOffers":[{"id":1,"x":[1,2}]}',
        '{"financeOffers":[{"id":1,"x":"\\q"}]}',
        '{"financeOffers":[{"id":1,"x":01}]}',
        '{"financeOffers":[{"id":1,"x":"\192\128"}]}',
        '{"financeOffers":[{"id":1,"x":tru}]}',
        '{"financeOffers":[{"id":1}]} x',
      }) do
        assert.has_error(function() core.decode(bad, { fields = { "id" } }) end)
        local ok, msg = pcall(core.decode, bad, { fields = { "id" } })
        assert.is_false(ok)
        assert.matches("at byte %d+$", msg)
      end
    end)

    it("rejects a number out of range in the parts it skips", function()
      for _, bad in ipairs({ "[1e309]", '{"b":1e309}', '{"financeOffers":[{"x":-1e400,"id":1}]}' }) do
        local ok, msg = pcall(core.decode, bad, { fields = { "a" } })
        assert.is_false(ok, bad)
        assert.matches("number out of range at byte %d+$", msg)
      end
    end)

    it("lets the last duplicate win, as the full decode does", function()
      local cases = {
        { '{"a":1,"a":null}', { "a" } },
        { '{"a":{"b":1},"a":null}', { "a.b" } },
        { '{"a":{"b":1},"a":5}', { "a.b" } },
        { '{"x":[{"a":1}],"x":5}', { "a" } },
        { '{"a":null,"a":2}', { "a" } },
      }
      for _, case in ipairs(cases) do
        local full = core.decode(case[1])
        local projected = core.decode(case[1], { fields = case[2] })
        for k, v in pairs(projected) do assert.same(full[k], v, case[1]) end
      end
      assert.same({}, core.decode('{"a":1,"a":null}', { fields = { "a" } }))
      assert.same({ a = 2 }, core.decode('{"a":null,"a":2}', { fields = { "a" } }))
    end)

    it("limits nesting in skipped parts too", function()
      local deep = '{"financeOffers":[{"x":' .. ("["):rep(1001) .. ("]"):rep(1001) .. "}]}"
      local ok, msg = pcall(core.decode, deep, { fields = { "id" } })
      assert.is_false(ok)
      assert.matches("nesting", msg)
    end)

    it("rejects a bad list of fields", function()
      for _, bad in ipairs({ {}, { "" }, { ".a" }, { "a." }, { "a..b" }, { 1 } }) do
        assert.has_error(function() core.decode("{}", { fields = bad }) end)
      end
      assert.has_error(function() core.decode("{}", { fields = "id" }) end)
    end)
  end)

  -- In Lua 5.4 any allocation may run a finalizer, and a finalizer may change
  -- the list of fields or drop its strings while the trie is built or used.
  describe("decode() with fields, while finalizers change the list", function()
    -- Runs f with a collector that completes a whole cycle, finalizers
    -- included, at every allocation check (pause 0, unbounded step; the
    -- full collection first puts it in step): a finalizer left as garbage
    -- just before core.decode runs at the first allocation inside it, the
    -- trie's, once the list has been read.
    local function eager_gc(f)
      local mode, pause, stepmul
      if version.lua54 then
        mode = collectgarbage("incremental", 1, 100, 63)
      else
        pause, stepmul = collectgarbage("setpause", 1), collectgarbage("setstepmul", 1e6)
      end
      collectgarbage()
      local ok, res = pcall(f)
      if version.lua54 then
        collectgarbage("incremental", 200, 100, 13)   -- Lua 5.4's defaults
        if mode == "generational" then collectgarbage("generational") end
      else
        collectgarbage("setpause", pause)
        collectgarbage("setstepmul", stepmul)
      end
      assert(ok, res)
      return res
    end

    -- Leaves one object with finalizer fin as garbage; in a frame of its
    -- own, so that no register of the caller keeps it alive.
    local function garbage(fin)
      gc.garbage(fin)
    end

    -- Lua 5.2's collector runs no finalizer at the first allocation of the
    -- decode, however it is tuned: there these cases cannot be set up.
    local it_gc = _VERSION == "Lua 5.2" and pending or it

    it_gc("reads each path once: a list changed after that does not count", function()
      local text = '{"financeOffers":[{"id":1,"x":{"x":2}}]}'
      local deep = ("x."):rep(450) .. "x"   -- 451 nodes where "id" needs 1
      local list = { "id" }
      local opts = { fields = list }
      local fired = false
      local t = eager_gc(function()
        garbage(function() list[1] = deep; fired = true end)
        return core.decode(text, opts)
      end)
      assert.is_true(fired)
      assert.equal(deep, list[1])
      assert.same({ financeOffers = { { id = 1 } } }, t)
    end)

    it_gc("keeps its own copy of the paths while it decodes", function()
      local key = ("k"):rep(60)
      local text = '{"financeOffers":[{"a":{}},{"a":{}},{"' .. key .. '":7}]}'
      local list = { ("k"):rep(60) }       -- a string only the list holds
      local opts = { fields = list }
      local fired = false
      local t = eager_gc(function()
        -- the first finalizer runs at the trie's allocation and leaves a
        -- second one, which runs at the next allocation, inside the decode:
        -- the list's string is then garbage, freed by the cycle after
        garbage(function()
          garbage(function() list[1] = "other"; fired = true end)
        end)
        return core.decode(text, opts)
      end)
      assert.is_true(fired)
      assert.same({ financeOffers = { {}, {}, { [key] = 7 } } }, t)
    end)
  end)
end)

describe("kpayment", function()
  describe("client:get_offers{ fields = … }", function()
    local server, client

    lazy_setup(function()
      server = mock.start({})
      client = kpayment.new({ base_url = server.url, skin = "s" })
    end)

    lazy_teardown(function()
      if client then client:close() end
      if server then server.stop() end
    end)

    it("returns projected offers with their accessors", function()
      local offers = assert(client:get_offers({ customer_uuid = "c", dealer_uuid = "d", fields = FIELDS }))
      assert.equal(3, #offers)
      for _, o in ipairs(offers) do
        for _, k in ipairs(keys(o)) do
          local listed = { id = true, status = true, foAmount = true, expiryDate = true, customer = true }
          assert.is_true(listed[k], k)
        end
        assert.is_number(o:expires_at())
        assert.equal("", o:vehicle_label())
      end
      assert.equal(version.integer("9007199254740993"), offers[1].id)
    end)

    it("decodes error bodies whole", function()
      local _, err = client:get_offers({ customer_uuid = "mock:error500", dealer_uuid = "d",
                                         fields = FIELDS })
      assert.equal(500, err.status)
      assert.is_table(err.errors)
      assert.is_string(err.errors[1].errorTitle)
    end)

    it("raises on a bad list of fields before any request", function()
      server.reset()
      assert.has_error(function()
        client:get_offers({ customer_uuid = "c", dealer_uuid = "d", fields = { "a..b" } })
      end,
        "kpayment: bad parameter 'fields': bad path #1 (dotted names expected, e.g. \"customer.lastName\")")
      assert.equal(0, server.stats().requests)
    end)
  end)
end)
