-- kpayment.info(): versions and capabilities, checked against what the
-- curl command (the same libcurl, in Debian) and libcurl's own tools say,
-- and the proxy variables of the environment with credentials masked.
local kpayment = require("kpayment")
local core = require("kpayment.core")
local version = require("support.version")
local quote = require("support.server").shell_quote

-- cmd's output.  The curl command runs without the sanitizers `make
-- test-asan` preloads (it hangs under them); Lua keeps them, as it loads
-- the module built for them.
local function run(cmd)
  if not cmd:find("^env ") then cmd = "env -u LD_PRELOAD " .. cmd end
  local p = assert(io.popen(cmd .. " 2>/dev/null"))
  local out = p:read("*a")
  p:close()
  return out
end

local function has(list, value)
  for _, v in ipairs(list) do
    if v == value then return true end
  end
  return false
end

describe("kpayment.info()", function()
  local info = kpayment.info()

  it("names kpayment's and Lua's versions", function()
    assert.equal(kpayment._VERSION, info.kpayment)
    assert.matches("^%d+%.%d+%.%d+$", info.kpayment)
    assert.equal(_VERSION, info.lua)
    local jit = rawget(_G, "jit")
    if jit then
      assert.equal(jit.version, info.luajit)
      assert.matches("^LuaJIT ", info.luajit)
    else
      assert.is_nil(info.luajit)
    end
  end)

  it("says what the libcurl loaded is and can do, as `curl --version` does", function()
    local out = run("curl --version")
    local first, features = out:match("^([^\n]*)"), out:match("\nFeatures: ([^\n]*)") or ""
    local libcurl, tls = first:match(" libcurl/(%S+) (%S+)")
    assert.is_string(libcurl, out)
    assert.equal(libcurl, info.curl)
    assert.equal(core.curl_version, info.curl)
    assert.equal(info.curl, info.curl_info.version)
    assert.equal(tls, info.ssl)
    assert.equal(info.ssl, info.curl_info.ssl)
    assert.equal(features:find("%f[%w]HTTP2%f[%W]") ~= nil, info.http2)
    assert.equal(features:find("%f[%w]HTTP3%f[%W]") ~= nil, info.curl_info.http3)
    local zlib = features:find("%f[%w]libz%f[%W]") ~= nil
    assert.equal(zlib, has(info.compression, "gzip"))
    assert.equal(zlib, has(info.compression, "deflate"))
    assert.equal(features:find("%f[%w]brotli%f[%W]") ~= nil, has(info.compression, "br"))
    assert.equal(features:find("%f[%w]zstd%f[%W]") ~= nil, has(info.compression, "zstd"))
    if zlib then assert.equal(first:match(" zlib/(%S+)"), info.curl_info.libz) end
    assert.is_true(has(info.curl_info.protocols, "https"))
    if info.curl_info.features then   -- libcurl 7.87 and later
      local words = {}
      for w in features:gmatch("%S+") do words[#words + 1] = w end
      table.sort(words)
      local ours = {}
      for i, w in ipairs(info.curl_info.features) do ours[i] = w end
      table.sort(ours)
      assert.same(words, ours)
    end
    assert.equal("number", type(info.curl_info.version_num))
    assert.equal("string", type(info.curl_info.compiled))
  end)

  it("names the CA file and directory libcurl verifies against by default", function()
    local ca = run("curl-config --ca"):match("^(%S+)")
    if ca then assert.equal(ca, info.ca_file) end
    assert.equal(info.ca_file, info.curl_info.ca_file)
    assert.equal(info.ca_path, info.curl_info.ca_path)
    for _, path in ipairs({ info.ca_file, info.ca_path }) do
      assert.is_string(path)
      local f = io.open(path)   -- the bundle, or the directory, exists
      assert.is_truthy(f, path)
      f:close()
    end
  end)

  it("names the transport a client gets here", function()
    assert.equal("curl", info.transport)
  end)

  it("returns a new table each call", function()
    local a, b = kpayment.info(), kpayment.info()
    assert.are_not.equal(a, b)
    assert.are_not.equal(a.curl_info, b.curl_info)
    a.compression[1], a.curl_info.version, a.proxy.x = "changed", "changed", "changed"
    local c = kpayment.info()
    assert.same(b, c)
  end)

  it("lists the proxy variables set, credentials masked", function()
    local env = {
      "https_proxy=" .. quote("http://puser:ppass-4f1e@proxy.example:3128"),
      "ALL_PROXY=" .. quote("socks5://tok@en:x-9d2@socks.example"),
      "http_proxy=" .. quote("proxy.example:8080"),
      "NO_PROXY=" .. quote("localhost,.internal"),
    }
    local script = "local p = require('kpayment').info().proxy; local k = {}; "
      .. "for n in pairs(p) do k[#k + 1] = n end; table.sort(k); "
      .. "for _, n in ipairs(k) do print(n .. '=' .. p[n]) end"
    local out = run(table.concat({ "env -u HTTPS_PROXY -u https_proxy -u HTTP_PROXY -u http_proxy",
      "-u ALL_PROXY -u all_proxy -u NO_PROXY -u no_proxy", table.concat(env, " "),
      "LUA_PATH=" .. quote(package.path), "LUA_CPATH=" .. quote(package.cpath),
      version.lua, "-e", quote(script) }, " "))
    assert.equal(table.concat({
      "ALL_PROXY=socks5://[redacted]@socks.example",
      "NO_PROXY=localhost,.internal",
      "http_proxy=proxy.example:8080",
      "https_proxy=http://[redacted]@proxy.example:3128",
      "",
    }, "\n"), out)
    assert.is_nil(out:find("ppass", 1, true))
    assert.is_nil(out:find("x-9d2", 1, true))
  end)
end)
