--- Run by spec/finalizer_spec.lua as its own process (a hang must not hold
-- busted): a finalizer closes a client, once after each number of polls
-- from 1 to ROUNDS, each round with the JIT's state reset.  Under LuaJIT
-- the poll loops get compiled at some round; a round whose close runs
-- before the compiled loops have all their exits linked is the one that
-- used to spin for ever.  Prints "ok <rounds> <closed>" at the end.
--
--   luajit spec/support/jit_close.lua BASE_URL
local kpayment = require("kpayment")
local gc = require("support.gc")

local ROUNDS = 120
local url = assert(arg[1], "usage: jit_close.lua BASE_URL")

local closed = 0
for round = 1, ROUNDS do
  if jit then jit.flush() end
  local c = kpayment.new({ base_url = url, skin = "s", timeout = 10, retries = 0 })
  local calls = 0
  c:start_offers({ customer_uuid = "jit-close-" .. round, dealer_uuid = "d",
                   on_done = function() calls = calls + 1 end })
  for _ = 1, round do c:poll(0) end
  gc.garbage(function()
    c:close()
    closed = closed + 1
  end)
  collectgarbage()
  collectgarbage()
  assert(calls == 1, "round " .. round .. ": on_done ran " .. calls .. " times")
end
io.write("ok ", ROUNDS, " ", closed, "\n")
