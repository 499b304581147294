rockspec_format = "3.0"
package = "kpayment"
version = "scm-1"
source = {
  url = "git+https://github.com/kpayment/kpayment.git",
}
description = {
  summary = "A dealer customer's finance offers from myKaarma's payments API, as Lua tables",
  detailed = [[
    kpayment fetches finance offers with libcurl and decodes the JSON
    response straight into Lua tables in C (exact 64-bit integers, strict
    RFC 8259). The mock API server (kpayment-mock) and the command
    (kpayment-cli) are rocks of their own.
  ]],
  license = "MIT",
  labels = { "http", "json", "payments", "curl" },
}
dependencies = {
  "lua >= 5.1",   -- 5.1, 5.2, 5.3, 5.4 and LuaJIT (5.1 and 5.2 build with lua-compat53-dev)
}
test_dependencies = {
  "busted",
  "lua-cjson",
  "luasocket",   -- the specs' mock server (mock/, kpayment-mock-scm-1.rockspec)
}
external_dependencies = {
  CURL = { header = "curl/curl.h", library = "curl" },
}
build = {
  type = "builtin",
  -- nginx/http.conf and nginx/server.conf, in the rock's directory
  -- (`luarocks show --rock-dir kpayment`; docs/openresty.md)
  copy_directories = { "nginx" },
  modules = {
    ["kpayment.core"] = {
      sources = { "src/kp_core.c", "src/kp_client.c", "src/kp_request.c", "src/kp_report.c",
                  "src/kp_outcome.c", "src/kp_result.c", "src/kp_http.c", "src/kp_h1.c",
                  "src/kp_json.c", "src/kp_json_proj.c", "src/kp_json_records.c", "src/kp_buf.c" },
      libraries = { "curl" },
      incdirs = { "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)" },
      defines = { "_POSIX_C_SOURCE=200809L" },
    },
    ["kpayment"] = "lua/kpayment/init.lua",
    ["kpayment.config"] = "lua/kpayment/config.lua",
    ["kpayment.client"] = "lua/kpayment/client.lua",
    ["kpayment.async"] = "lua/kpayment/async.lua",
    ["kpayment.retry"] = "lua/kpayment/retry.lua",
    ["kpayment.time"] = "lua/kpayment/time.lua",
    ["kpayment.cache"] = "lua/kpayment/cache.lua",
    ["kpayment.oauth"] = "lua/kpayment/oauth.lua",
    ["kpayment.log"] = "lua/kpayment/log.lua",
    ["kpayment.info"] = "lua/kpayment/info.lua",
    ["kpayment.request"] = "lua/kpayment/request.lua",
    ["kpayment.response"] = "lua/kpayment/response.lua",
    ["kpayment.errors"] = "lua/kpayment/errors.lua",
    ["kpayment.offer"] = "lua/kpayment/offer.lua",
    ["kpayment.transport"] = "lua/kpayment/transport.lua",
    ["kpayment.nginx"] = "lua/kpayment/nginx.lua",
    ["kpayment.cosocket"] = "lua/kpayment/cosocket.lua",
    ["kpayment.subrequest"] = "lua/kpayment/subrequest.lua",
    ["kpayment.secrets"] = "lua/kpayment/secrets.lua",
    ["kpayment.json"] = "lua/kpayment/json.lua",
  },
}
