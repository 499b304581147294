--- A TLS server for specs: `openssl s_server` with a certificate made on the
-- spot for localhost / 127.0.0.1, as a separate process.
--
--   local tls = require("support.tls")
--   local s = tls.start()   -- s.url ("https://localhost:PORT"), s.ca_file, s.stop()
--
-- And test PKI material made with `openssl` in a temporary directory: a root
-- CA, an intermediate CA it signed, a server certificate for
-- api.kpayment.test and localhost signed by the intermediate, the chain a
-- server sends (leaf + intermediate), and an unrelated "wrong" root CA; and,
-- for depth limits, a deeper chain for the same names: a leaf signed by a
-- second intermediate CA that the first signed (leaf + both intermediates).
--
--   local p = tls.pki()   -- p.root_ca, p.intermediate_ca, p.cert, p.key, p.chain,
--                         -- p.wrong_ca, p.deep_chain, p.deep_key, p.dir, p.cleanup()

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

-- The extensions of each certificate of tls.pki().
local PKI_EXTENSIONS = [[
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[intermediate]
basicConstraints = critical, CA:TRUE, pathlen:1
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[intermediate2]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:api.kpayment.test, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
]]

-- The shell script that makes the material in the current directory:
-- P-256 keys (quick to make), certificates valid for two days.
local PKI_SCRIPT = [[
set -e
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; }
csr() { key "$1"; openssl req -new -key "$1.key" -subj "/O=kpayment specs/CN=$2" -out "$1.csr"; }
selfsigned() {
  csr "$1" "$2"
  openssl x509 -req -in "$1.csr" -signkey "$1.key" -days 2 -set_serial "$3" \
    -extfile ext.cnf -extensions root -out "$1.pem"
}
signed() {
  csr "$1" "$2"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -days 2 -set_serial "$4" \
    -extfile ext.cnf -extensions "$5" -out "$1.pem"
}
selfsigned root "kpayment test root CA" 1001
signed intermediate "kpayment test intermediate CA" root 1002 intermediate
signed server "api.kpayment.test" intermediate 1003 leaf
selfsigned wrong "kpayment wrong root CA" 1004
signed intermediate2 "kpayment test intermediate CA 2" intermediate 1005 intermediate2
signed deep "api.kpayment.test" intermediate2 1006 leaf
cat server.pem intermediate.pem > chain.pem
cat deep.pem intermediate2.pem intermediate.pem > deep_chain.pem
openssl verify -CAfile root.pem -untrusted intermediate.pem server.pem
openssl verify -CAfile root.pem -untrusted deep_chain.pem deep.pem
rm -f ./*.csr
]]

--- Test PKI material in a new temporary directory (see the top of this
-- file); raises with openssl's output when it cannot be made.
function M.pki()
  local quote = require("support.server").shell_quote
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. quote(dir)))
  local function cleanup() os.execute("rm -rf " .. quote(dir)) end
  local f = assert(io.open(dir .. "/ext.cnf", "wb"))
  f:write(PKI_EXTENSIONS)
  f:close()
  f = assert(io.open(dir .. "/make.sh", "wb"))
  f:write(PKI_SCRIPT)
  f:close()
  local p = assert(io.popen(("cd %s && sh make.sh 2>&1; echo \"exit $?\""):format(quote(dir))))
  local out = p:read("*a")
  p:close()
  if not out:find("exit 0\n$") then
    cleanup()
    error("openssl could not make the test PKI: " .. out, 2)
  end
  return {
    dir = dir,
    root_ca = dir .. "/root.pem",                -- the root CA (trust anchor)
    intermediate_ca = dir .. "/intermediate.pem", -- signed by the root
    cert = dir .. "/server.pem",                 -- api.kpayment.test, localhost; signed by the intermediate
    key = dir .. "/server.key",
    chain = dir .. "/chain.pem",                 -- cert + intermediate, as a server sends them
    wrong_ca = dir .. "/wrong.pem",              -- a root CA that signed none of these
    deep_chain = dir .. "/deep_chain.pem",       -- a leaf for the same names + two intermediates
    deep_key = dir .. "/deep.key",
    cleanup = cleanup,
  }
end

return M
