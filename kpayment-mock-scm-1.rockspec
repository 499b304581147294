rockspec_format = "3.0"
package = "kpayment-mock"
version = "scm-1"
source = {
  url = "git+https://github.com/kpayment/kpayment.git",
}
description = {
  summary = "A mock of myKaarma's finance-offers API, for kpayment's tests and prototypes",
  detailed = [[
    kpayment-mock serves getFinanceOffersForCustomer over HTTP/1.1 on
    loopback: deterministic, schema-complete offers, Basic and Bearer
    authentication, an OAuth2 client-credentials token endpoint, and fault
    modes on demand (errors, stalls, truncated or huge bodies, redirects). A script, kpayment-mock, and a module,
    kpayment.mock, to run it in-process.
  ]],
  license = "MIT",
  labels = { "http", "mock", "testing", "payments" },
}
dependencies = {
  "lua >= 5.4",
  "luasocket",
  "kpayment",   -- kpayment.json, the JSON writer
}
-- The builtin backend also installs any lua/ directory next to this
-- rockspec: build from a copy without lua/ (the runtime's modules), as
-- `make rock` does.
build = {
  type = "builtin",
  modules = {
    ["kpayment.mock"] = "mock/kpayment/mock/init.lua",
    ["kpayment.mock.http"] = "mock/kpayment/mock/http.lua",
    ["kpayment.mock.data"] = "mock/kpayment/mock/data.lua",
    ["kpayment.mock.faults"] = "mock/kpayment/mock/faults.lua",
    ["kpayment.mock.oauth"] = "mock/kpayment/mock/oauth.lua",
    ["kpayment.mock.options"] = "mock/kpayment/mock/options.lua",
  },
  install = {
    bin = { ["kpayment-mock"] = "bin/kpayment-mock" },
  },
}
