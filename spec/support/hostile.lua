--- Runs spec/support/hostile_server.lua (a server that echoes credentials
-- and answers malformed bodies) as a separate process for busted specs.
--
--   local hostile = require("support.hostile")
--   local h = hostile.start()
--   -- h.url, h.pid, h.stop()

local server = require("support.server")

return {
  --- Starts the server; returns a handle once it serves, or raises with the
  -- server's stderr.
  start = function()
    return server.start("spec/support/hostile_server.lua", {}, "hostile server")
  end,
}
