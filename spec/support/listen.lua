--- The listening part of the specs' standalone HTTP servers
-- (echo_server.lua, hostile_server.lua): bind a free port on 127.0.0.1,
-- print the base URL as stdout's first line, then serve one connection at
-- a time with serve(conn), each closed after it, for `lifetime` seconds.
-- A raise in serve is written to stderr under `name`; the server goes on.
-- Only luasocket is needed.
--
--   require("support.listen")("echo server", serve, 600)

local socket = require("socket")

return function(name, serve, lifetime)
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  io.stdout:write("http://127.0.0.1:", port, "\n")
  io.stdout:flush()
  server:settimeout(0.5)
  local stop_at = socket.gettime() + lifetime
  while socket.gettime() < stop_at do
    local conn = server:accept()
    if conn then
      local ok, why = pcall(serve, conn)
      if not ok then io.stderr:write(name, ": ", tostring(why), "\n") end
      conn:close()
    end
  end
  server:close()
end
