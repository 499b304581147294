--- Finalizers that fire while a call runs, for specs of code that Lua
-- 5.4 may interrupt with `__gc` inside any allocation.
--
--   local gc = require("support.gc")
--   local fin = gc.storm(function(fin) … end, function(fin) return client:get_offers{…} end,
--                        { phase = "decode" })
--   -- fin.ok, fin.results (what the call returned, packed), fin.n, fin.errors
--
-- `storm(on_fire, call, opts)` leaves `opts.width` (default 20) garbage
-- objects with finalizers, tunes the collector to run often, then runs
-- `call`.  Each finalizer calls `on_fire(fin)` and, while the storm lasts,
-- leaves a new garbage object behind it, so finalizers keep firing at
-- every collection for as long as `call` allocates (a large decode fires
-- them many times).  `fin` is a table shared by the finalizers of one
-- storm: `fin.n` counts the firings, `fin.phase` is whatever the spec sets
-- (`opts.phase`, default "call", then `fin.set_phase("decode")` once the
-- response is on its way), `fin.in_phase` counts the firings in the
-- current phase.  What `on_fire` raises is recorded in
-- `fin.errors` (Lua itself would only warn).  `call(fin)` runs protected;
-- the collector's mode and parameters are restored afterwards, whatever it
-- did.  Finalizers cannot query or drive the collector (Lua 5.4 refuses
-- collectgarbage inside them), hence the phase the spec keeps.

local M = {}

local table_pack = table.pack or function(...) return { n = select("#", ...), ... } end
local table_unpack = table.unpack or unpack

M.pack = table_pack

--- Leave one garbage object whose finalizer is `fn`: a table on 5.2+,
-- a proxy userdata on 5.1 and LuaJIT (their tables have no __gc).
function M.garbage(fn)
  if newproxy then
    local p = newproxy(true)
    getmetatable(p).__gc = fn
  else
    setmetatable({}, { __gc = fn })
  end
end

--- Set the collector's mode ("incremental" or "generational") where Lua
-- has modes (5.4); returns the previous one, or nil.
function M.mode(mode)
  if _VERSION ~= "Lua 5.4" then return nil end
  return collectgarbage(mode)
end

--- Run `call` under a storm of finalizers; returns the shared `fin` table,
-- with `fin.ok` and `fin.results` (a packed list: what `call` returned, or
-- its error).
function M.storm(on_fire, call, opts)
  opts = opts or {}
  local fin = { n = 0, in_phase = 0, phase = opts.phase or "call", errors = {} }
  local armed = true
  local function arm()
    M.garbage(function()
      if not armed then return end
      fin.n = fin.n + 1
      fin.in_phase = fin.in_phase + 1
      local ok, why = pcall(on_fire, fin)
      if not ok then fin.errors[#fin.errors + 1] = tostring(why) end
      arm()
    end)
  end
  function fin.set_phase(phase)
    fin.phase, fin.in_phase = phase, 0
  end
  -- Incremental (generational mode decides by itself when to collect):
  -- a short pause and a high step multiplier make collections, and so
  -- rounds of finalizers, follow each other every few hundred kilobytes.
  -- The step starts the first cycle now.
  local mode = M.mode("incremental")
  local pause = collectgarbage("setpause", opts.pause or (_VERSION == "Lua 5.4" and 110 or 100))
  local stepmul = collectgarbage("setstepmul", opts.stepmul or (_VERSION == "Lua 5.4" and 400 or 1000))
  collectgarbage("collect")
  fin.base_kb = collectgarbage("count")
  collectgarbage("step")
  for _ = 1, opts.width or 20 do arm() end
  local packed = table_pack(pcall(call, fin))
  armed = false
  collectgarbage("setpause", pause)
  collectgarbage("setstepmul", stepmul)
  if mode then M.mode(mode) end
  collectgarbage("collect")
  fin.ok = packed[1]
  fin.results = table_pack(table_unpack(packed, 2, packed.n))
  return fin
end

return M
