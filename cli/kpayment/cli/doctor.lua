--- `kpayment doctor`: what the library knows and one real call.  It
-- prints `kpayment.info()` (versions, TLS library, CA file and path, the
-- proxy variables with their credentials masked by the library), the
-- client's `settings()` and where each comes from, then makes one
-- authenticated call and shows it as the `on_request`/`on_response` hooks
-- saw it: status, time, request id, error kind and message.  libcurl
-- resolves, connects, picks a proxy and does TLS in that one call; the
-- doctor reads the outcome and says what to try, and exits by its kind.
-- A configuration that kpayment offers refuses (a missing skin) fails
-- the doctor too, with the status offers exits with; the call is made all
-- the same, with a placeholder skin.
-- @module kpayment.cli.doctor

local kpayment = require("kpayment")
local connect = require("kpayment.cli.client")
local term = require("kpayment.cli.term")
local command = require("kpayment.cli")

-- writes of standard output, checked: a failed one ends the command (status 4)
local write, flush = command.write, command.flush

local type, tostring, ipairs, pairs, pcall = type, tostring, ipairs, pairs, pcall
local string_format, string_rep = string.format, string.rep
local table_concat, table_sort = table.concat, table.sort
local math_max = math.max

local M = {}

local USAGE = [[
Usage: kpayment doctor [options]

Prints what kpayment runs on (kpayment.info(): versions, TLS library, CA file,
HTTP/2, compression, the proxy variables with credentials masked) and the
client's settings with where each comes from; then makes one authenticated
call and shows its status, time, request id and error, says what to try,
and exits by the error's kind.

Options:
  --base-url URL     the API (default: KPAYMENT_BASE_URL, else https://api.mykaarma.com)
  --user NAME        Basic authentication as NAME (password: KPAYMENT_PASSWORD or asked for)
  --customer UUID    a customer for the call (default: a placeholder)
  --dealer UUID      a dealer for the call (default: a placeholder)
  --skin S           the skin (default: KPAYMENT_SKIN); without one the doctor
                     fails as offers does, its call made with a placeholder
  --locale L         the locale (default: KPAYMENT_LOCALE, else en-US)
  --ca-file FILE     CA certificates to verify the server with (default: libcurl's)
  --timeout S        seconds the call may take (default 10)
  --verbose          log the request and response on standard error
  -h, --help         show this help

Exit status: 0 the call succeeded (or the API answered the placeholder
customer), 1 an answer that is not offers, 2 usage error, or a
configuration that offers refuses (a missing skin), whatever the call got,
3 no answer (network, timeout, tls), 4 standard output cannot be written,
130 interrupted.
]]

M.SPEC = {
  ["base-url"] = "string", user = "string", customer = "string", dealer = "string", skin = "string",
  locale = "string", ["ca-file"] = "file", timeout = "number", verbose = "flag", help = "flag",
}

local PLACEHOLDER = "00000000-0000-0000-0000-000000000000"
local PLACEHOLDER_SKIN = "kpayment-doctor"

-- What to try, by the error's kind, then libcurl's code or the HTTP status.
local HINTS = {
  network = {
    [5] = "the proxy's host name does not resolve: check the proxy variables above",
    [6] = "the host name does not resolve: check the base URL and DNS",
    [7] = "nothing accepts connections there: check the port, that the server runs, firewalls, "
      .. "and whether a proxy is needed (https_proxy)",
    other = "the connection broke or nothing came back: is this an HTTP server, and is a proxy in the way?",
  },
  timeout = { other = "no answer in time: a firewall that drops packets, a proxy needed (https_proxy), "
    .. "or a slow server: try --timeout 30" },
  tls = {
    [60] = "the server's certificate is not trusted: check the CA file (--ca-file), the host name, "
      .. "and whether a TLS-inspecting proxy is in the way (its CA must be in the file)",
    [35] = "the TLS handshake failed: is it https on this port, or does the server want another TLS version?",
    [77] = "the CA file cannot be read: check --ca-file",
    other = "the TLS handshake failed: see the error above",
  },
  http = {
    [401] = "the API refused the credentials: check them (KPAYMENT_USERNAME and KPAYMENT_PASSWORD, "
      .. "KPAYMENT_BEARER_TOKEN, KPAYMENT_CLIENT_ID and KPAYMENT_CLIENT_SECRET, or --user)",
    [403] = "the credentials lack the scope payment.financeOffer.read",
    [404] = "no API at this URL: the base URL is scheme, host and port, e.g. https://api.mykaarma.com",
    [407] = "the proxy wants credentials: put them in the proxy URL",
    other = "the API refused the call: see its message",
  },
  decode = { other = "not the API's JSON: is the base URL the API, not a web page or a proxy's?" },
  auth = { other = "the OAuth2 token endpoint failed: check KPAYMENT_TOKEN_URL, KPAYMENT_CLIENT_ID and "
    .. "KPAYMENT_CLIENT_SECRET, and the endpoint's error above" },
  body_too_large = { other = "the answer is larger than the client accepts" },
}

local function hint_for(err)
  local hints = HINTS[err.kind] or HINTS.http
  if err.kind == "http" and err.status and err.status >= 500 then
    return "the server failed: try again later"
  end
  return hints[err.curl_code or err.status] or hints.other
end

local function section(title, rows)
  local out, w = { title }, 0
  for _, r in ipairs(rows) do w = math_max(w, #r[1]) end
  for _, r in ipairs(rows) do
    local value = term.clean(r[2])
    out[#out + 1] = "  " .. r[1] .. string_rep(" ", w - #r[1] + 2) .. value
      .. (r[3] and ("  (" .. r[3] .. ")") or "")
  end
  write(io.stdout, table_concat(out, "\n"), "\n")
end

local function yes_no(v) return v and "yes" or "no" end

-- kpayment.info(): what this kpayment runs on.
local function facts(cli)
  local info = kpayment.info()
  local rows = {
    { "kpayment", info.kpayment },
    { "Lua", info.luajit and (info.luajit .. " (" .. tostring(info.lua) .. ")")
      or info.lua or cli.lua_version() },
    { "libcurl", info.curl },
    { "TLS library", info.ssl or "none" },
    { "HTTP/2", yes_no(info.http2) },
    { "compression", #info.compression > 0 and table_concat(info.compression, ", ") or "none" },
    { "CA file", info.ca_file or "none built in" },
    { "CA path", info.ca_path or "none built in" },
    { "transport", info.transport },
  }
  local names = {}
  for name in pairs(info.proxy or {}) do names[#names + 1] = name end
  table_sort(names)
  for i, name in ipairs(names) do
    rows[#rows + 1] = { i == 1 and "proxy variables" or "", name .. "=" .. info.proxy[name] }
  end
  if #names == 0 then rows[#rows + 1] = { "proxy variables", "none set" } end
  section("kpayment.info()", rows)
end

-- client:settings(), each with where it came from: the flag, a variable,
-- kpayment's default, or the doctor's own choice.
local function settings(client, given, password_from)
  local s = client:settings()
  local function from(name)
    local f = s.from[name]
    if f == "option" then return given[name] and connect.FLAGS[name] or "kpayment doctor" end
    return f or "default"
  end
  local credentials = s.from.credentials
  if given.username then credentials = "--user, password " .. (password_from == "typed" and "typed"
    or "from " .. tostring(password_from)) end
  local rows = {
    { "base URL", s.base_url, from("base_url") },
    { "credentials", s.credentials, credentials },
    { "skin", s.skin or ("none: the call below uses a placeholder, " .. PLACEHOLDER_SKIN),
      s.skin and from("skin") },
    { "locale", s.locale, from("locale") },
    { "timeout", s.timeout .. " s", from("timeout") },
    { "connect timeout", s.connect_timeout .. " s", from("connect_timeout") },
    { "retries", s.retries, from("retries") },
    { "proxy", s.proxy or "none given: libcurl follows the proxy variables above",
      s.proxy and from("proxy") },
    { "CA file", s.ca_file or "none given: libcurl's (above)", s.ca_file and from("ca_file") },
    { "transport", s.transport, from("transport") },
  }
  if s.token_url then   -- OAuth2 client credentials: where the token comes from
    table.insert(rows, 3, { "token URL", s.token_url, from("token_url") })
    table.insert(rows, 4, { "scope", s.scope, from("scope") })
  end
  section("client:settings()", rows)
  return s
end

function M.run(args, cli)
  local opts = cli.command_options(args, M.SPEC, "doctor", USAGE)
  if not opts then return cli.EXIT.ok end
  local o, given, password_from = connect.options(cli, "doctor", opts)
  -- one attempt, soon over: the doctor reports it, it does not insist
  if o.timeout == nil then o.timeout = 10 end
  o.retries = 0
  -- the hooks fill in the same table for the attempt
  local seen
  o.on_request = function(info) seen = info end
  o.on_response = function() end
  local client = connect.new(cli, "doctor", o, given)
  facts(cli)
  local s = settings(client, given, password_from)
  flush(io.stdout)

  local params = { customer_uuid = opts.customer or PLACEHOLDER, dealer_uuid = opts.dealer or PLACEHOLDER,
                   skin = not s.skin and PLACEHOLDER_SKIN or nil, fields = { "id" } }
  local ok, offers, err = pcall(client.get_offers, client, params)
  if not ok then
    client:close()
    connect.refused(cli, "doctor", offers, given)
  end
  local call = seen
  -- The call as kpayment offers makes it, without the placeholder skin:
  -- what kpayment refuses (before sending anything) fails the doctor too.
  local refusal
  if params.skin then
    params.skin = nil
    local sent, why = pcall(client.get_offers, client, params)
    if not sent then
      if cli.is_interrupt(why) then
        client:close()
        error(why, 0)
      end
      refusal = cli.unprefixed(connect.renamed(cli, why, given))
    end
  end
  client:close()
  local rows = {}
  if call then
    rows[#rows + 1] = { "request", "GET " .. tostring(call.url) }
    rows[#rows + 1] = { "status", call.status or "none (no answer)" }
    rows[#rows + 1] = { "time", string_format("%.0f ms", (call.duration or 0) * 1000) }
    rows[#rows + 1] = { "bytes", call.bytes or 0 }
    rows[#rows + 1] = { "request id", call.request_id or "none" }
  else
    rows[#rows + 1] = { "request", "not sent" }
  end
  rows[#rows + 1] = { "error", err and (tostring(err.kind) .. ": " .. tostring(err.message or "")) or "none" }
  if offers then rows[#rows + 1] = { "offers", #offers } end
  section("The call (as on_request and on_response saw it)", rows)

  -- the call's outcome; with a refusal, never a pass
  local passed = refusal and "The call passed (with the placeholder skin): " or "Passed: "
  local status
  if offers then
    write(io.stdout, passed, "the API answered with ", tostring(#offers), " offer(s).\n")
    status = cli.EXIT.ok
  elseif err.kind == "http" and type(err.status) == "number" and err.status >= 400 and err.status < 500
      and err.errors and not HINTS.http[err.status] and opts.customer == nil then
    write(io.stdout, refusal and passed or "Passed, with a note: ", "the credentials were accepted and ",
      "the API answered the placeholder customer; pass --customer and --dealer of a real customer for a ",
      "full call.\n")
    status = cli.EXIT.ok
  else
    write(io.stdout, "Failed: ", hint_for(err), "\n")
    flush(io.stdout)
    cli.say("doctor", "the call failed: " .. cli.unprefixed(err) .. " (see above)")
    status = cli.status_of(err)
  end
  if refusal then
    write(io.stdout, "Failed: kpayment offers refuses this configuration: ", refusal, "\n")
    flush(io.stdout)
    cli.say("doctor", refusal)
    -- what kpayment offers exits with for it: a usage error
    status = cli.EXIT.usage
  end
  return status
end

return M
