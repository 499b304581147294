--- A TLS server for specs: `openssl s_server` with a certificate made on the
-- spot for localhost / 127.0.0.1, as a separate process.
--
--   local tls = require("support.tls")
--   local s = tls.start()   -- s.url ("https://localhost:PORT"), s.ca_file, s.stop()

local socket = require("socket")

local M = {}

local free_port = require("support.server").free_port

function M.start()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
  assert(os.execute(("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost " ..
    "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout %s -out %s >/dev/null 2>&1")
    :format(key, cert)), "openssl could not make a certificate")
  local port = free_port()
  local p = assert(io.popen(("openssl s_server -quiet -www -accept 127.0.0.1:%d -cert %s -key %s " ..
    "</dev/null >/dev/null 2>&1 & echo $!"):format(port, cert, key)))
  local pid = tonumber(p:read("*l"))
  p:close()
  local function stop()
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    pid = nil
    os.execute("rm -rf " .. dir)
  end
  local deadline = socket.gettime() + 5
  repeat
    local c = socket.connect("127.0.0.1", port)
    if c then
      c:close()
      return { url = "https://localhost:" .. port, ca_file = cert, stop = stop }
    end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  stop()
  error("openssl s_server did not start", 2)
end

return M
