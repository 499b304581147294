rockspec_format = "3.0"
package = "kpayment-cli"
version = "scm-1"
source = {
  url = "git+https://github.com/kpayment/kpayment.git",
}
description = {
  summary = "The kpayment command: finance offers from myKaarma's payments API in a shell",
  detailed = [[
    kpayment offers (a customer's offers as a table, JSON, NDJSON, CSV or
    TSV; many customers with --batch, NDJSON, CSV and TSV streamed),
    kpayment doctor (what the library sees and one real call), kpayment
    mock (with the kpayment-mock rock), kpayment completion bash.
  ]],
  license = "MIT",
  labels = { "cli", "payments" },
}
dependencies = {
  "lua >= 5.1",
  "kpayment",
}
-- The builtin backend also installs any lua/ directory next to this
-- rockspec: build from a copy without lua/ (the runtime's modules), as
-- `make rock` does.
build = {
  type = "builtin",
  modules = {
    ["kpayment.cli"] = "cli/kpayment/cli/init.lua",
    ["kpayment.cli.offers"] = "cli/kpayment/cli/offers.lua",
    ["kpayment.cli.doctor"] = "cli/kpayment/cli/doctor.lua",
    ["kpayment.cli.mock"] = "cli/kpayment/cli/mock.lua",
    ["kpayment.cli.term"] = "cli/kpayment/cli/term.lua",
    ["kpayment.cli.client"] = "cli/kpayment/cli/client.lua",
    ["kpayment.cli.input"] = "cli/kpayment/cli/input.lua",
    ["kpayment.cli.output"] = "cli/kpayment/cli/output.lua",
    ["kpayment.cli.completion"] = "cli/kpayment/cli/completion.lua",
  },
  install = {
    bin = { ["kpayment"] = "bin/kpayment" },
  },
}
