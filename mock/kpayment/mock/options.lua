--- kpayment.mock.options: the mock server's command-line options, their
-- kinds and their help, for both front ends (bin/kpayment-mock and
-- `kpayment mock`).  Plain Lua with no dependency, so that the command can
-- show them under any Lua.
--
--   options.KINDS        option name -> "string", "integer" or "seconds"
--                        (a number, fractions allowed)
--   options.MAX_OFFERS   the most offers a body holds
--   options.HELP         the help from "Options:" to the end

local M = {
  MAX_OFFERS = 10000,
  KINDS = {
    host = "string", port = "integer", user = "string", password = "string", token = "string",
    offers = "integer", ["client-id"] = "string", ["client-secret"] = "string",
    ["token-ttl"] = "seconds", scope = "string",
  },
}

M.HELP = ([[
Options:
  --host H        address to listen on (default 127.0.0.1)
  --port N        TCP port; 0 picks a free one (default 0)
  --user U        require HTTP Basic credentials U ...
  --password P    ... and P (the mock's own test credentials; give both or neither)
  --token T       accept "Authorization: Bearer T" (too)
  --offers N      offers per response, 0 to %d (default 3)
  --client-id I   serve an OAuth2 token endpoint, POST /oauth2/token
                  (client credentials grant), for client I ...
  --client-secret S  ... authenticated with secret S (give both or neither);
                  then "Authorization: Bearer <token>" is accepted too for
                  the tokens it issued, until they expire
  --token-ttl S   seconds a token lives, fractions allowed (default 3600)
  --scope S       the scope granted (default payment.financeOffer.read)
  -h, --help      show this help and exit
Without --user/--password, --token and --client-id, every request is
accepted.

Fault modes, per request: header "X-Mock-Fault: <mode>" or
customerUUID=mock:<mode>
  error500  html500  html502  503[:s]  429[:s]  empty502  badjson  close
  stall[:s]  truncate  big[:bytes]  offers:n  unicode  flaky:n:mode
  redirect:url
Control: GET /_mock/stats, /_mock/reset, /_mock/requests; with --client-id
also /_mock/expire_tokens, /_mock/token_ttl?s=S,
/_mock/token_fault?mode=none|500|badjson|slow[:s]|close|error:code
]]):format(M.MAX_OFFERS)

return M
