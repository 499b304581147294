--- `kpayment doctor`: what this kpayment is built with and configured
-- for, then the way to the API step by step, saying which step failed and
-- what to try.
--
-- The steps: the host name is resolved with `getent ahosts` (the system
-- resolver, which libcurl uses too); connecting, the TLS handshake and
-- authentication are read from the outcome of one authenticated call
-- through kpayment (libcurl does them in one go, and kpayment reports the
-- first that failed: libcurl's code for connect and resolve, the error kind
-- `tls`, the HTTP status).  The output says so.
-- @module kpayment.cli.doctor

local kpayment = require("kpayment")
local core = require("kpayment.core")
local offers_cmd = require("kpayment.cli.offers")
local term = require("kpayment.cli.term")

local type, tostring, ipairs, pairs, pcall = type, tostring, ipairs, pairs, pcall
local string_format, string_gsub, string_match, string_find, string_lower =
  string.format, string.gsub, string.match, string.find, string.lower
local table_concat = table.concat
local io_popen = io.popen

local M = {}

local USAGE = [[
Usage: kpayment doctor [options]

Prints the versions of kpayment, Lua and libcurl, the TLS backend, CA file,
HTTP/2 and compression support, the proxy variables (credentials masked) and
the settings in use; then checks the way to the API: resolves the host,
connects, completes the TLS handshake (https) and makes one authenticated
call. It says which step failed and what to try.

Options:
  --base-url URL     the API (default: KPAYMENT_BASE_URL, else https://api.mykaarma.com)
  --user NAME        Basic authentication as NAME (password: KPAYMENT_PASSWORD or asked for)
  --customer UUID    a customer for the call (default: a placeholder)
  --dealer UUID      a dealer for the call (default: a placeholder)
  --skin S           the skin (default: KPAYMENT_SKIN)
  --locale L         the locale (default: KPAYMENT_LOCALE, else en-US)
  --ca-file FILE     CA certificates to verify the server with (default: libcurl's)
  --timeout S        seconds the call may take (default 10)
  --help             show this help

Exit status: 0 every check passed, 1 the API refused or failed the call,
2 usage error, 3 resolve, connect, TLS or timeout failed.
]]

local SPEC = {
  ["base-url"] = "string", user = "string", customer = "string", dealer = "string", skin = "string",
  locale = "string", ["ca-file"] = "string", timeout = "number", help = "flag",
}

local PLACEHOLDER = "00000000-0000-0000-0000-000000000000"
local PLACEHOLDER_SKIN = "kpayment-doctor"

local PROXY_VARS = { "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                     "no_proxy", "NO_PROXY" }

local env, shell_quote = term.env, term.shell_quote

--- A proxy URL with its credentials masked: `http://***@proxy:3128`.
-- Everything up to the last "@" goes, so a password holding "/" or "@"
-- cannot show.
function M.mask_proxy(url)
  local scheme, rest = string_match(url, "^([%w+.-]+://)(.*)$")
  if not scheme then scheme, rest = "", url end
  local host = string_match(rest, "^.*@([^@]*)$")
  if host then rest = "***@" .. host end
  return scheme .. rest
end

-- scheme, host, port of a URL (host without brackets).
local function split_url(url)
  local scheme, authority = string_match(url, "^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme then scheme, authority = "http", string_match(url, "^([^/?#]*)") end
  scheme = string_lower(scheme)
  authority = string_gsub(authority, "^.*@", "")
  local host, port = string_match(authority, "^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = string_match(authority, "^([^:]*):?(%d*)$") end
  port = tonumber(port) or (scheme == "https" and 443 or scheme == "http" and 80 or 1080)
  return scheme, host or "", port
end

-- no_proxy: a comma-separated list of host names (a leading dot or none:
-- the domain and its subdomains), or "*".
local function bypassed(host, list)
  for entry in string.gmatch(list or "", "[^,%s]+") do
    entry = string_lower(string_gsub(entry, "^%.", ""))
    local h = string_lower(host)
    if entry == "*" or h == entry or (#h > #entry and h:sub(-#entry - 1) == "." .. entry) then
      return true
    end
  end
  return false
end

--- The proxy variable libcurl would use for `url`, and its value; nil when
-- none applies.
function M.proxy_for(url)
  local scheme, host = split_url(url)
  if bypassed(host, env("no_proxy") or env("NO_PROXY")) then return nil end
  local names = scheme == "https" and { "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY" }
    or { "http_proxy", "all_proxy", "ALL_PROXY" }   -- libcurl ignores HTTP_PROXY
  for _, name in ipairs(names) do
    if env(name) then return name, env(name) end
  end
  return nil
end

local function is_address(host)
  return string_find(host, "^%d+%.%d+%.%d+%.%d+$") ~= nil or string_find(host, ":") ~= nil
end

-- The addresses of host through getent, or nil and why.
local function resolve(host)
  if not term.succeeded(os.execute("command -v getent >/dev/null 2>&1")) then
    return nil, "no getent"
  end
  local p = io_popen("getent ahosts " .. shell_quote(host) .. " 2>/dev/null")
  if not p then return nil, "no getent" end
  local seen, list = {}, {}
  for line in p:lines() do
    local addr = string_match(line, "^(%S+)")
    if addr and not seen[addr] then
      seen[addr] = true
      list[#list + 1] = addr
    end
  end
  p:close()
  if #list == 0 then return nil, "not found" end
  return list
end

---------------------------------------------------------------------------
-- What this kpayment reports about itself

local function text_of(v)
  if v == nil then return nil end
  if type(v) == "boolean" then return v and "yes" or "no" end
  if type(v) == "table" then
    -- a list (of compression methods, …), or a record of named values
    local parts = {}
    for _, x in ipairs(v) do parts[#parts + 1] = tostring(x) end
    if #parts > 0 then return "yes (" .. table_concat(parts, ", ") .. ")" end
    for k, x in pairs(v) do parts[#parts + 1] = tostring(k) .. " " .. tostring(x) end
    if #parts == 0 then return "no" end
    table.sort(parts)
    return table_concat(parts, ", ")
  end
  return tostring(v)
end

--- Versions and capabilities: kpayment.info() where this kpayment has it,
-- else what kpayment.core and the interpreter say.
function M.facts(cli)
  local info
  if type(kpayment.info) == "function" then
    local ok, t = pcall(kpayment.info)
    if ok and type(t) == "table" then info = t end
  end
  local unknown = info and "not reported" or "unknown (this kpayment has no kpayment.info())"
  local i = info or {}
  return {
    { "kpayment", text_of(i.kpayment) or tostring(core._VERSION) },
    { "Lua", type(i.lua) == "string" and i.lua or cli.lua_version() },
    { "libcurl", text_of(i.curl) or tostring(core.curl_version) },
    { "TLS backend", text_of(i.ssl) or unknown },
    { "HTTP/2", text_of(i.http2) or unknown },
    { "compression", text_of(i.compression) or unknown },
    { "CA file", text_of(i.ca_file) or (info and "none (libcurl's default)") or unknown },
    { "CA path", text_of(i.ca_path) or (info and "none") or unknown },
  }
end

---------------------------------------------------------------------------
-- The checks

local MARK = { ok = "ok  ", fail = "FAIL", skip = "--  ", warn = "warn" }

-- libcurl codes among kpayment's "network" errors.
local CURL_RESOLVE_PROXY, CURL_RESOLVE_HOST, CURL_CONNECT = 5, 6, 7

local TLS_HINTS = {
  [60] = "the server's certificate is not trusted: check the CA file above, the host name, "
    .. "and whether a TLS-inspecting proxy is in the way (its CA must be in the file)",
  [35] = "the handshake failed: is it https on this port (http:// or https://?), "
    .. "or does the server want another TLS version?",
  [77] = "the CA file cannot be read: check the CA file above",
  [58] = "the client certificate was refused or cannot be read",
}

local function steps_of(cli, ctx, offers, err)
  local steps, status, failed = {}, cli.EXIT.ok, nil
  local function add(mark, name, msg)
    steps[#steps + 1] = { mark, name, msg }
    if mark == "fail" and not failed then failed = name end
  end
  local derived = " (read from the call)"
  local where = ctx.host .. ":" .. ctx.port
  local tls_used = ctx.scheme == "https"

  if offers then
    add("ok", "connect", where .. derived)
    add(tls_used and "ok" or "skip", "TLS", tls_used and ("handshake and certificate" .. derived)
      or "not used (http://)")
    local meta = offers:meta() or {}
    add("ok", "call", string_format("HTTP %s, %d offer(s)%s, %.0f ms", tostring(meta.status), #offers,
      meta.request_id and (", request " .. meta.request_id) or "", (meta.total_time or 0) * 1000))
    return steps, status
  end

  local kind, code = err.kind, err.curl_code
  local msg = string_gsub(tostring(err.message or err.kind), "%c+", " ")
  if kind == "network" and (code == CURL_RESOLVE_HOST or code == CURL_RESOLVE_PROXY) then
    add("fail", "resolve", msg .. derived)
    add("skip", "connect", "not tried")
    add("skip", "TLS", "not tried")
    add("skip", "call", "not tried")
    return steps, cli.EXIT.network, "libcurl could not resolve the " .. (code == CURL_RESOLVE_PROXY
      and "proxy's host: check the proxy variable above" or "host: check the host name and DNS")
  end
  if kind == "network" and code == CURL_CONNECT then
    add("fail", "connect", msg .. derived)
    add("skip", "TLS", "not tried")
    add("skip", "call", "not tried")
    return steps, cli.EXIT.network, "nothing accepts connections at " .. (ctx.proxy and "the proxy" or where)
      .. ": check the port, that the server runs, and firewalls"
      .. (ctx.proxy and "" or "; behind a proxy, set https_proxy")
  end
  if kind == "timeout" then
    -- libcurl's message names the phase that ran out of time
    local hint = "no answer in time: a firewall that drops packets, a proxy needed (https_proxy), "
      .. "or a slow server: try --timeout 30"
    if string_find(msg, "^Resolving timed out") then
      add("fail", "resolve", msg .. derived)
      add("skip", "connect", "not tried")
      add("skip", "TLS", "not tried")
    elseif string_find(msg, "^Connection timed out") then
      add("fail", "connect", msg .. (tls_used and " (connect or the TLS handshake did not finish;" or
        " (") .. " read from the call)")
      add("skip", "TLS", tls_used and "unknown" or "not used (http://)")
      if tls_used then
        hint = hint .. "; a server that does not speak TLS on this port (http:// instead?) looks the same"
      end
    else
      add("ok", "connect", where .. derived)
      add(tls_used and "ok" or "skip", "TLS", tls_used and ("handshake and certificate" .. derived)
        or "not used (http://)")
      add("fail", "call", msg)
      return steps, cli.EXIT.network, "connected, but no answer in time: a slow server, or try --timeout 30"
    end
    add("skip", "call", "not tried")
    return steps, cli.EXIT.network, hint
  end
  if kind == "tls" then
    add("ok", "connect", where .. derived)
    add("fail", "TLS", msg .. derived)
    add("skip", "call", "not tried")
    return steps, cli.EXIT.network, TLS_HINTS[code] or "the TLS handshake failed: see the message above"
  end
  if kind == "network" then
    -- connected (or the proxy did), then the connection broke
    add("ok", "connect", where .. derived)
    add(tls_used and "warn" or "skip", "TLS",
      tls_used and "unknown: the connection broke" or "not used (http://)")
    add("fail", "call", msg)
    return steps, cli.EXIT.network, "the server closed the connection or sent nothing: is this port an "
      .. "HTTP server, and is a proxy in the way?"
  end
  add("ok", "connect", where .. derived)
  add(tls_used and "ok" or "skip", "TLS", tls_used and ("handshake and certificate" .. derived)
    or "not used (http://)")
  local answer = "HTTP " .. tostring(err.status) .. ": " .. msg
  if kind == "http" and err.status == 401 then
    add("fail", "call", answer)
    return steps, cli.EXIT.api, ctx.auth and "the API refused the credentials: check " .. ctx.auth
      or "no credentials are set: set KPAYMENT_USERNAME and KPAYMENT_PASSWORD (or KPAYMENT_BEARER_TOKEN)"
  elseif kind == "http" and err.status == 403 then
    add("fail", "call", answer)
    return steps, cli.EXIT.api, "the credentials lack the scope payment.financeOffer.read"
  elseif kind == "http" and err.status == 407 then
    add("fail", "call", answer)
    return steps, cli.EXIT.api, "the proxy wants credentials: put them in the proxy URL"
  elseif kind == "http" and err.status == 404 then
    add("fail", "call", answer)
    return steps, cli.EXIT.api, "no API at this URL: the base URL is scheme, host and port, "
      .. "e.g. https://api.mykaarma.com"
  elseif kind == "http" and err.status >= 400 and err.status < 500 and err.errors and ctx.placeholder then
    add("warn", "call", answer .. " (authenticated; the placeholder customer got this answer)")
    return steps, cli.EXIT.ok, "pass --customer and --dealer of a real customer for a full call"
  elseif kind == "http" and err.status >= 500 then
    add("fail", "call", answer)
    return steps, cli.EXIT.api, "the server failed: try again later"
  elseif kind == "decode" then
    add("fail", "call", "not the API's JSON: " .. msg)
    return steps, cli.EXIT.api, "is the base URL the API, not a web page or a proxy's?"
  end
  add("fail", "call", answer)
  return steps, cli.EXIT.api, "the API refused the call: see its message"
end

---------------------------------------------------------------------------

local function section(title, rows)
  local out = { title }
  local w = 0
  for _, r in ipairs(rows) do w = math.max(w, #r[1]) end
  for _, r in ipairs(rows) do
    out[#out + 1] = "  " .. r[1] .. string.rep(" ", w - #r[1] + 2) .. r[2]
  end
  return table_concat(out, "\n") .. "\n"
end

local function source(opt, var, default)
  if opt then return "option" end
  if env(var) then return var end
  return default
end

function M.run(args, cli)
  local opts = cli.parse(args, 1, SPEC, "doctor")
  if opts.help then
    io.stdout:write(USAGE)
    return cli.EXIT.ok
  end
  local out = io.stdout
  out:write(section("Versions", M.facts(cli)))

  local skin = opts.skin or env("KPAYMENT_SKIN")
  local o = offers_cmd.client_options(cli, "doctor", opts)
  o.timeout, o.retries = opts.timeout or 10, 0
  o.skin = skin or PLACEHOLDER_SKIN
  local client = offers_cmd.client(cli, "doctor", o)
  local base = client.base_url
  local scheme, host, port = split_url(base)

  local auth
  if opts.user then
    auth = "--user and " .. (env("KPAYMENT_PASSWORD") and "KPAYMENT_PASSWORD" or "the password typed")
  elseif env("KPAYMENT_USERNAME") or env("KPAYMENT_PASSWORD") then
    auth = "KPAYMENT_USERNAME and KPAYMENT_PASSWORD"
  elseif env("KPAYMENT_BEARER_TOKEN") then
    auth = "KPAYMENT_BEARER_TOKEN"
  end
  local proxy_var, proxy_url = M.proxy_for(base)
  local proxies = {}
  for _, name in ipairs(PROXY_VARS) do
    local v = env(name)
    if v then proxies[#proxies + 1] = name .. "=" .. (string_find(name, "no_proxy", 1, true)
      and v or M.mask_proxy(v)) end
  end
  if #proxies == 0 then proxies[1] = "none set" end
  local settings = {
    { "base URL", base .. " (" .. source(opts.base_url, "KPAYMENT_BASE_URL", "default") .. ")" },
    { "credentials", auth and ((opts.user or env("KPAYMENT_USERNAME")) and "Basic" or "Bearer")
      .. ", from " .. auth or "none" },
    { "skin", skin and (skin .. " (" .. source(opts.skin, "KPAYMENT_SKIN") .. ")")
      or "none set (give --skin or KPAYMENT_SKIN; the call uses a placeholder)" },
    { "locale", (opts.locale or env("KPAYMENT_LOCALE") or "en-US") .. " ("
      .. source(opts.locale, "KPAYMENT_LOCALE", "default") .. ")" },
    { "CA file", opts.ca_file and (opts.ca_file .. " (option)") or "libcurl's (see above)" },
    { "proxy", proxy_var and (proxy_var .. " applies: " .. M.mask_proxy(proxy_url)) or "none applies" },
  }
  for i, p in ipairs(proxies) do settings[#settings + 1] = { i == 1 and "proxy variables" or "", p } end
  out:write(section("Settings", settings))
  out:write("Checks (resolve with getent ahosts, the system resolver; connect, TLS and authentication\n"
    .. "are read from the outcome of one authenticated call, as libcurl does them in one go)\n")
  out:flush()

  -- resolve: the proxy's host when a proxy applies (it resolves the API's)
  local rhost = host
  if proxy_url then
    local _, phost = split_url(proxy_url)
    rhost = phost
  end
  local steps, status, hint = {}, cli.EXIT.ok, nil
  local resolved = true
  if is_address(rhost) then
    steps[1] = { "ok", "resolve", rhost .. " is an address: nothing to resolve" }
  else
    local addrs, why = resolve(rhost)
    if addrs then
      steps[1] = { "ok", "resolve", rhost .. " -> " .. table_concat(addrs, " ", 1, math.min(#addrs, 4))
        .. (proxy_url and " (the proxy; it resolves " .. host .. ")" or "") }
    elseif why == "no getent" then
      steps[1] = { "skip", "resolve", "no getent here: read from the call" }
    else
      resolved = false
      steps[1] = { "fail", "resolve", rhost .. ": not found by the system resolver" }
      status = cli.EXIT.network
      hint = "check the host name in " .. (proxy_url and proxy_var or "--base-url or KPAYMENT_BASE_URL")
        .. ", and DNS (/etc/resolv.conf)"
      for _, name in ipairs({ "connect", "TLS", "call" }) do
        steps[#steps + 1] = { "skip", name, "not tried" }
      end
    end
  end
  if resolved then
    local params = { customer_uuid = opts.customer or PLACEHOLDER, dealer_uuid = opts.dealer or PLACEHOLDER,
                     fields = { "id" } }
    local ok, offers, err = pcall(client.get_offers, client, params)
    if not ok then cli.usage("doctor", cli.message(offers)) end
    local more
    more, status, hint = steps_of(cli, { scheme = scheme, host = host, port = port, auth = auth,
      proxy = proxy_url, placeholder = opts.customer == nil }, offers, err)
    for _, s in ipairs(more) do steps[#steps + 1] = s end
  end
  client:close()

  local failed
  for _, s in ipairs(steps) do
    out:write("  ", MARK[s[1]], "  ", s[2], string.rep(" ", 9 - #s[2]), s[3], "\n")
    if s[1] == "fail" and not failed then failed = s[2] end
  end
  if failed then
    out:write("Failed at ", failed, ": ", hint, "\n")
  elseif hint then
    out:write("Passed, with a note: ", hint, "\n")
  else
    out:write("All checks passed.\n")
  end
  out:flush()
  if failed then cli.say("doctor", "failed at " .. failed .. " (see the checks above)") end
  return status
end

return M
