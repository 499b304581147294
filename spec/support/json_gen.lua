--- The 64-bit parts of spec/json_spec.lua's document generator: only Lua
-- 5.3+ loads this file (integer operators, string.pack), the rest of the
-- generator is portable and stays in the spec.
--
--   local gen = require("support.json_gen")
--   local rng = gen.new_rng(seed)   -- rng.next(), rng.int(n), rng.pick(list)
--   gen.integer(rng), gen.float(rng)

local M = {}

local NEG_ZERO = -1 / math.huge

-- xorshift64 (13, 7, 17); independent of math.random so that the cases do not
-- depend on how the test runner seeds it.
function M.new_rng(seed)
  local s = seed
  local rng = {}
  function rng.next()
    s = s ~ (s << 13)
    s = s ~ (s >> 7)
    s = s ~ (s << 17)
    return s
  end
  function rng.int(n) -- 1..n
    return rng.next() % n + 1
  end
  function rng.pick(list)
    return list[rng.int(#list)]
  end
  return rng
end

function M.float(rng)
  local kind = rng.int(4)
  if kind == 1 then
    -- any finite double, including subnormals and huge magnitudes
    while true do
      local x = string.unpack("<d", string.pack("<i8", rng.next()))
      if x == x and x ~= math.huge and x ~= -math.huge then
        return x
      end
    end
  elseif kind == 2 then
    return (rng.next() % 100000000) / 100 -- money-like amounts
  elseif kind == 3 then
    return (rng.next() % 2000001 - 1000000) / 1000.0
  end
  return rng.pick({ 0.0, NEG_ZERO, 0.1, 0.2, 0.3, 1.0, -1.0, 1e23, 5e-324, 2.0 ^ 53, 2.0 ^ 63,
    -2.0 ^ 63, 1.7976931348623157e308, 2.2250738585072014e-308, 123456.789 })
end

function M.integer(rng)
  local kind = rng.int(4)
  if kind == 1 then
    return rng.next() -- full int64 range
  elseif kind == 2 then
    return rng.next() % 2000 - 1000
  elseif kind == 3 then
    return rng.next() >> rng.int(63) -- every magnitude
  end
  return rng.pick({ 0, 1, -1, math.maxinteger, math.mininteger, math.maxinteger - 1,
    math.mininteger + 1, 9007199254740993, -9007199254740993, 4294967296 })
end

return M
