--- What kpayment runs on: its version, the Lua and the libcurl under it
-- and what they can do, the proxy settings libcurl will follow, and the
-- transport a client gets here.  What `kpayment.info()` returns.
-- @module kpayment.info

local core = require("kpayment.core")
local config = require("kpayment.config")
local transport = require("kpayment.transport")

local type, rawget = type, rawget

local M = {}

-- The content codings libcurl decodes (Accept-Encoding names), each with
-- the library behind it as core.info() names it.
local CODINGS = { { "deflate", "libz" }, { "gzip", "libz" }, { "br", "brotli" }, { "zstd", "zstd" } }

--- A new table each call:
--
-- - `kpayment`: this module's version
-- - `lua`: `_VERSION`; `luajit`: `jit.version` under LuaJIT, else nil
-- - `curl`: the version of the libcurl loaded; `ssl`: its TLS backend
--   and version (nil without TLS); `http2`: whether it speaks HTTP/2;
--   `compression`: the response encodings it decodes (`"gzip"`, `"br"`, …)
-- - `ca_file`, `ca_path`: the CA bundle and directory libcurl verifies
--   against when no `ca_file` option is given (nil when it has none built in)
-- - `proxy`: the proxy variables set in the environment, name -> value,
--   credentials in a value replaced by "[redacted]"
-- - `transport`: "cosocket" inside an nginx worker, "curl" elsewhere (what a
--   client without the `transport` option uses)
-- - `curl_info`: everything libcurl reports (core.info(): `version`,
--   `compiled`, `ssl`, `http2`, `http3`, `libz`, `brotli`, `zstd`,
--   `nghttp2`, `ca_file`, `ca_path`, `protocols`, `features`, …)
function M.collect()
  local curl = core.info()   -- a new table: handed out as it is
  local compression = {}
  for i = 1, #CODINGS do
    if curl[CODINGS[i][2]] then compression[#compression + 1] = CODINGS[i][1] end
  end
  local jit = rawget(_G, "jit")
  return {
    kpayment = core._VERSION,
    lua = _VERSION,
    luajit = type(jit) == "table" and jit.version or nil,
    curl = curl.version,
    ssl = curl.ssl,
    http2 = curl.http2 == true,
    compression = compression,
    ca_file = curl.ca_file,
    ca_path = curl.ca_path,
    proxy = config.proxy_env(),
    transport = transport.default(),
    curl_info = curl,
  }
end

return M
