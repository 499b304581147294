--- Drive a started request the way a frame loop would: poll(0), a short
-- sleep, again, until it is done or `seconds` pass.
--
--   local drive = require("support.poll")
--   local slowest = drive(client, req, 5)   -- seconds of the slowest poll(0)

local core = require("kpayment.core")
local socket = require("socket")

return function(client, req, seconds)
  local slowest, deadline = 0, core.monotonic() + seconds
  while not req:done() and core.monotonic() < deadline do
    local t0 = core.monotonic()
    client:poll(0)
    slowest = math.max(slowest, core.monotonic() - t0)
    socket.sleep(0.002)
  end
  return slowest
end
