--- Client options: the one place that validates them, resolves the
-- environment and defaults, and derives the secrets to keep out of every
-- error and log line.
-- @module kpayment

local core = require("kpayment.core")
local request = require("kpayment.request")
local secrets = require("kpayment.secrets")
local errors = require("kpayment.errors")

local pairs, ipairs, type, tonumber, error = pairs, ipairs, type, tonumber, error
local os_getenv = os.getenv
local math_floor, math_huge = math.floor, math.huge
-- math.type before 5.3: an integral, finite number counts as an integer.
local math_type = math.type or function(v)
  if type(v) ~= "number" then return nil end
  return (v == math_floor(v) and v > -math_huge and v < math_huge) and "integer" or "float"
end
local string_format = string.format

local LIMITS = core.LIMITS

local M = {}

M.DEFAULT_BASE_URL = "https://api.mykaarma.com"

-- The decode work one `client:poll` does at most, in milliseconds: a
-- 60 Hz frame (16.7 ms) keeps most of its time for the host.
M.DEFAULT_DECODE_BUDGET = 2

-- Whether v is a decode budget: milliseconds from 0 (one record per
-- poll), math.huge for no limit.
function M.budget_ok(v)
  return type(v) == "number" and v >= 0
end
M.math_type = math_type

--- The options of `kpayment.new` and `kpayment.configure`: every one is
-- optional; an unknown option, or a value of the wrong type or range,
-- raises naming the option.  Where a `KPAYMENT_*` variable is named, an
-- option not given is read from it (an empty variable counts as unset).
--
-- Credentials come as a set: giving `username`/`password` ignores
-- `KPAYMENT_BEARER_TOKEN`, giving `bearer_token` ignores
-- `KPAYMENT_USERNAME`/`KPAYMENT_PASSWORD`; giving both kinds raises.
-- Secrets (the password, the bearer token, the Basic header value, a
-- proxy's credentials) never appear in an error or a log line.
-- @table options
-- @tfield string base_url scheme, host and optional path prefix of the API;
-- no credentials, query or fragment.  Default: `KPAYMENT_BASE_URL`, else
-- `"https://api.mykaarma.com"` (`kpayment.DEFAULT_BASE_URL`)
-- @tfield string username HTTP Basic user (with `password`), sent with the
-- first request; no `:` (RFC 7617: the first one ends the user name).
-- Default: `KPAYMENT_USERNAME`
-- @tfield string password HTTP Basic password (with `username`).
-- Default: `KPAYMENT_PASSWORD`
-- @tfield string bearer_token sent as `Authorization: Bearer …` (OAuth2)
-- instead of Basic.  Default: `KPAYMENT_BEARER_TOKEN`
-- @tfield string client_id OAuth2 client credentials (RFC 6749 §4.4), with
-- `client_secret` and `token_url`: kpayment fetches a token from
-- `token_url` (a POST, the id and secret in HTTP Basic), sends it as
-- `Authorization: Bearer …`, refreshes it before it expires (at the later
-- of 30 s before and 90 % of its lifetime; without `expires_in`, when the
-- API answers 401) once for all calls waiting, and retries a call once
-- when the API refuses a token that was not fetched for it.  A failed
-- fetch ends the call with an error of kind `"auth"`.  Not with username,
-- password or bearer_token.  Default: `KPAYMENT_CLIENT_ID`
-- @tfield string client_secret the OAuth2 client's secret (a secret:
-- never in errors, logs or hooks, nor the tokens).
-- Default: `KPAYMENT_CLIENT_SECRET`
-- @tfield string token_url the token endpoint's URL; required with
-- client credentials.  Default: `KPAYMENT_TOKEN_URL`
-- @tfield string scope the scope asked for with client credentials (`""`
-- for none).  Default: `"payment.financeOffer.read"`
-- @tfield string token_dict inside nginx, with client credentials: the
-- `lua_shared_dict` where the workers keep one token, so that one of them
-- at a time fetches it (the others look for it every 20 ms meanwhile).
-- Default: none (each worker's client fetches its own)
-- @tfield string skin the default `skin` parameter of every call.
-- Default: `KPAYMENT_SKIN`; the API requires one, so a call that has none
-- raises, naming this option and the variable
-- @tfield string locale the default `locale` parameter of every call.
-- Default: `KPAYMENT_LOCALE`, else `"en-US"`
-- @tfield number timeout seconds for each attempt (connecting, sending,
-- receiving), fractions allowed, `0` for none (up to 86400).  Default: `30`
-- @tfield number connect_timeout seconds to connect (up to 86400), `0`
-- for no limit of its own (the attempt's `timeout` still bounds it).
-- Default: `10`
-- @tfield number max_body bytes a response may have (after decompression):
-- a larger one is refused, not buffered, as a `body_too_large` error.
-- Default: 64 MiB
-- @tfield string ca_file PEM bundle to verify the server with.
-- Default: the system's CA store
-- @tfield string proxy proxy URL (credentials allowed; they are treated as
-- secrets).  Default: libcurl's, from `http_proxy`, `https_proxy`,
-- `all_proxy` and their upper-case forms
-- @tfield string user_agent your product token, sent first in the
-- `User-Agent` header: `APP kpayment/<version> (<Lua>; <stack>)`.  `<Lua>`
-- is the Lua running kpayment (`Lua 5.4`, or under LuaJIT its version,
-- `LuaJIT 2.1.0-beta3`); `<stack>` what sends the request: `libcurl/7.88.1`,
-- or inside nginx (cosocket and subrequest transports) `nginx/1.22.1`; a
-- `transport` function has none: `kpayment/0.2.0 (Lua 5.4)`.  Default:
-- none, so the header starts with `kpayment/`
-- @tfield integer retries automatic retries of a failed call that another
-- attempt may fix (0 to 100; see `Error`'s `retryable`).  Default: `2`
-- @tfield number deadline seconds bounding all attempts of one call
-- together (above 0, up to 86400): each attempt's timeout is cut to fit,
-- and no retry starts with less than 0.1 s left.  Wall-clock time: a
-- transfer that a poll's budget paused goes on counting (its `timeout`
-- does not), and the call ends as `"timeout"` when it passes.  Default:
-- `timeout` (none when `timeout` is `0`)
-- @tfield boolean insecure `true` turns TLS verification off, and logs a
-- warning with every request.  Default: `false`
-- @tfield boolean follow_redirects follow redirects (up to 5);
-- credentials never go to another host.  Default: `false`
-- @tfield boolean debug log every attempt and response through `logger`,
-- personal data masked.  Default: `false`
-- @tfield boolean log_personal_data with `debug`, show customer names,
-- phones and emails unmasked.  Default: `false`
-- @tfield function logger `function(level, message)` receiving every log
-- line (levels `"debug"`, `"warn"`, `"error"`), scrubbed of secrets; one
-- that raises changes no call's outcome.  Default: one line on stderr
-- @tfield string|function transport what sends each attempt: `"curl"`
-- (libcurl), `"cosocket"` (inside nginx: `ngx.socket.tcp`, kept-alive
-- connections, in the nginx request or timer that waits), `"subrequest"`
-- (inside nginx: `ngx.location.capture` to the location of kpayment's
-- nginx/server.conf, for nginx's upstream features: proxies, balancing), or
-- a `function(req)` sending each attempt with an HTTP client of yours:
-- `req` has `method` (`"GET"`, or `"POST"` for an attempt that asks for
-- it, such as a token request), `url`, `headers` (the attempt's own
-- `Authorization` in place of the client's when it has one; a POST's
-- `Content-Type` when given), `body` (a POST's, any bytes; nil for a GET;
-- the function sends its Content-Length), `timeout` (seconds, or nil) and
-- `max_body`; `body` and `headers.Authorization` may be secrets, to keep
-- out of logs; it returns `status, body, headers` for a complete response,
-- or `nil, kind, message` (kind `"network"`, `"timeout"` or `"tls"`) when
-- none arrived.  Default: `"cosocket"` inside nginx, `"curl"` elsewhere
-- @tfield {string,...} resolve addresses to use for host names, as
-- curl's `--resolve`: `{ "api.example.com:443:10.0.0.7" }` connects to
-- 10.0.0.7 for `api.example.com` port 443 while sending and verifying the
-- name (an IPv6 address in brackets).  Default: none (libcurl resolves
-- names itself; inside nginx, nginx's `resolver` directive does)
-- @tfield integer pool_size idle connections kept for reuse (libcurl:
-- per client; cosockets: per nginx worker and API address), 1 to 10000.
-- Default: 32
-- @tfield number pool_idle_timeout seconds an idle connection is kept
-- (above 0, up to 86400).  Default: 60
-- @tfield string ngx_location with the subrequest transport, the internal
-- location that proxies to the API.  Default: `"/_kpayment"`
-- @tfield number decode_budget milliseconds of decoding one `client:poll`
-- does at most (at least one record): a large response is decoded over
-- several polls, between two of its records.  `0`: one record per poll;
-- `math.huge`: each response whole.  Blocking calls and `req:result()`
-- decode at once.  Default: 2, for a 60 Hz frame loop
-- @tfield boolean coalesce requests in flight on this client with the same
-- customer, dealer, skin, locale and `fields` share one API call (its
-- attempts and retries); each caller still gets its own result tables,
-- `on_done`, deadline and cancellation, and `meta().joined` (or the
-- error's `joined`) is `true` for a caller that joined a call already in
-- flight.  A call's own `coalesce = false` parameter leaves it out.
-- Inside nginx, a worker's client shares calls across all its requests and
-- timers (each shared call runs in a timer of its own); with the
-- subrequest transport, within one nginx request.  Default: `true`
-- @tfield table cache keep the bodies of successful responses in this
-- client's memory (never on disk; they hold customer data) and answer
-- from them: `ttl` (seconds, required) an entry answers without an API
-- call; `stale_if_error` (seconds, default 0) past its `ttl`, an entry
-- still answers when the API fails with a retryable error (network,
-- timeout, 5xx, 429), marked `stale`; `max_entries` (default 1000) and
-- `max_bytes` (default 64 MiB) bound it, least recently used out first.
-- Each hit decodes the body into fresh tables, with the call's own
-- `fields`; errors are never kept.  A call's `cache = false` parameter
-- asks the API (and keeps what it answers); `Client:purge` forgets a
-- customer's entries.  Inside nginx, `dict = "name"` keeps the entries in
-- that `lua_shared_dict` instead, shared by every worker and kept across
-- reloads, under a hash of the client's base URL and credentials; one
-- worker at a time asks the API for a key while the others wait for its
-- answer (or answer stale), and the dict's size bounds it.  Default: none
-- @tfield function on_request `function(info)` called as each attempt goes
-- out, retries included, on every path: `info` has `method`, `url` (no
-- credentials; a secret in a parameter `[redacted]`) and `attempt` (1,
-- 2, …).  Contained as `on_done` is, running out of memory excepted
-- @tfield function on_response `function(info)` called once when that
-- attempt ends, with the same table, filled in: `status` (nil when no
-- response came), `duration` (seconds), `bytes` (body bytes received),
-- `request_id`, `error` (the error kind, nil on success; `"cancelled"`
-- for an attempt stopped by `cancel` or `close`) and `retry` (another
-- attempt follows).  Contained as `on_done` is

-- Every option new{} accepts, with its type; anything else raises.
local OPTIONS = {
  base_url = "string", username = "string", password = "string", bearer_token = "string",
  skin = "string", locale = "string", timeout = "number", connect_timeout = "number",
  max_body = "number", ca_file = "string", proxy = "string", user_agent = "string",
  retries = "number", deadline = "number", insecure = "boolean", follow_redirects = "boolean",
  debug = "boolean", log_personal_data = "boolean", logger = "function",
  transport = { ["function"] = true, string = true }, ngx_location = "string",
  decode_budget = "number", on_request = "function", on_response = "function",
  resolve = "table", pool_size = "number", pool_idle_timeout = "number", coalesce = "boolean",
  cache = "table", client_id = "string", client_secret = "string", token_url = "string",
  scope = "string", token_dict = "string",
}

-- The transports a name may choose.
M.TRANSPORTS = { curl = true, cosocket = true, subrequest = true }

local ENV = {
  base_url = "KPAYMENT_BASE_URL", skin = "KPAYMENT_SKIN", locale = "KPAYMENT_LOCALE",
}
--- Where a parameter with a client default may come from, for the
-- message when it has no value at all.
-- @local
M.MISSING = {}
for k, var in pairs(ENV) do
  if k ~= "base_url" then
    M.MISSING[k] = "give it per call, as the '" .. k .. "' option of kpayment.new, or in " .. var
  end
end

local ENV_AUTH = {
  username = "KPAYMENT_USERNAME", password = "KPAYMENT_PASSWORD", bearer_token = "KPAYMENT_BEARER_TOKEN",
  client_id = "KPAYMENT_CLIENT_ID", client_secret = "KPAYMENT_CLIENT_SECRET",
}
local ENV_TOKEN_URL = { token_url = "KPAYMENT_TOKEN_URL" }
-- Where libcurl finds a proxy when none is given: its credentials are
-- secrets too.
local ENV_PROXY = { "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY" }
-- ...and the hosts it reaches without one.
local ENV_NO_PROXY = { "no_proxy", "NO_PROXY" }


-- Options not given, from the environment; `from` keeps which variable
-- each came from (for Client:settings).
local function from_env(cfg, names, from)
  for k, var in pairs(names) do
    local v = os_getenv(var)
    if cfg[k] == nil and v ~= nil and v ~= "" then
      cfg[k] = v
      from[k] = var
    end
  end
end

local function bad(level, fmt, ...)
  error("kpayment: " .. string_format(fmt, ...), level + 1)
end

--- Options (a table or nil) over the environment over defaults, checked;
-- raises at `level` (as `error` counts) naming the option.
-- @return the resolved configuration
-- @local
function M.resolve(opts, level)
  level = level + 1
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    bad(level, "bad argument #1 to 'new' (table expected, got %s)", type(opts))
  end
  local cfg = {}
  for k, v in pairs(opts) do
    local want = OPTIONS[k]
    if want == nil then bad(level, "unknown option '%s'", errors.text(k)) end
    if type(want) == "table" then
      if not want[type(v)] then
        bad(level, "bad option '%s' (function or transport name expected, got %s)", k, type(v))
      end
    elseif type(v) ~= want then
      bad(level, "bad option '%s' (%s expected, got %s)", k, want, type(v))
    end
    cfg[k] = v
  end
  local from = {}
  for k in pairs(cfg) do from[k] = "option" end
  from_env(cfg, ENV, from)
  -- Credentials come as a set: explicit ones replace the environment's.
  if cfg.username == nil and cfg.password == nil and cfg.bearer_token == nil
     and cfg.client_id == nil and cfg.client_secret == nil then
    from_env(cfg, ENV_AUTH, from)
  end
  if cfg.client_id ~= nil or cfg.client_secret ~= nil then from_env(cfg, ENV_TOKEN_URL, from) end
  local base, msg = request.check_base_url(cfg.base_url or M.DEFAULT_BASE_URL)
  if not base then bad(level, "%s", msg) end
  cfg.base_url = base
  if cfg.locale == nil then cfg.locale = "en-US" end
  cfg._from = from
  for _, k in ipairs({ "skin", "locale" }) do
    if cfg[k] ~= nil then
      local ok, why = request.check_value(k, cfg[k])
      if not ok then bad(level, "%s", (why:gsub("parameter", "option"))) end
    end
  end
  local kinds = (cfg.bearer_token and 1 or 0) + ((cfg.username or cfg.password) and 1 or 0)
    + ((cfg.client_id or cfg.client_secret) and 1 or 0)
  if kinds > 1 then
    bad(level, "give one kind of credentials: username/password, bearer_token, or "
      .. "client_id/client_secret (OAuth2)")
  end
  if (cfg.client_id == nil) ~= (cfg.client_secret == nil) then
    bad(level, "'client_id' and 'client_secret' go together")
  end
  if cfg.client_id ~= nil then
    if cfg.token_url == nil then
      bad(level, "client credentials need 'token_url' (or KPAYMENT_TOKEN_URL): the token endpoint's URL")
    end
    local url, why = request.check_base_url(cfg.token_url)
    if not url then bad(level, "%s", (why:gsub("'base_url'", "'token_url'"))) end
  elseif cfg.token_url ~= nil or cfg.scope ~= nil or cfg.token_dict ~= nil then
    bad(level, "'token_url', 'scope' and 'token_dict' go with client_id and client_secret")
  end
  if (cfg.username == nil) ~= (cfg.password == nil) then
    bad(level, "'username' and 'password' go together")
  end
  -- an empty one is an unset variable's, never the API's account
  if cfg.username == "" then bad(level, "bad option 'username' (empty)") end
  if cfg.username ~= nil and cfg.username:find(":", 1, true) then
    bad(level, "bad option 'username' (contains ':', which Basic authentication reads as the end of "
      .. "the user name)")
  end
  for _, k in ipairs({ "username", "password", "bearer_token", "proxy", "ca_file", "user_agent",
                       "client_id", "client_secret", "scope" }) do
    if cfg[k] ~= nil and cfg[k]:find("[%z\1-\31\127]") then
      bad(level, "bad option '%s' (contains control characters)", k)
    end
  end
  -- an nginx location: a path, no query, nothing nginx would rewrite
  if cfg.ngx_location ~= nil and not cfg.ngx_location:find("^/[%w_./~-]*$") then
    bad(level, "bad option 'ngx_location' (a location path such as \"/_kpayment\" expected)")
  end
  for _, k in ipairs({ "timeout", "connect_timeout" }) do
    if cfg[k] ~= nil and not (cfg[k] >= 0 and cfg[k] <= LIMITS.seconds) then
      bad(level, "bad option '%s' (seconds from 0 to %d expected)", k, LIMITS.seconds)
    end
  end
  if cfg.deadline ~= nil and not (cfg.deadline > 0 and cfg.deadline <= LIMITS.seconds) then
    bad(level, "bad option 'deadline' (seconds above 0, up to %d expected)", LIMITS.seconds)
  end
  if cfg.decode_budget ~= nil and not M.budget_ok(cfg.decode_budget) then
    bad(level, "bad option 'decode_budget' (milliseconds from 0 up, or math.huge, expected)")
  end
  if cfg.max_body ~= nil and not (cfg.max_body >= 1 and cfg.max_body <= LIMITS.max_body) then
    bad(level, "bad option 'max_body' (bytes from 1 to 2^52 expected)")
  end
  if cfg.retries ~= nil and (math_type(cfg.retries) ~= "integer" or cfg.retries < 0 or cfg.retries > 100) then
    bad(level, "bad option 'retries' (an integer from 0 to 100 expected)")
  end
  if type(cfg.transport) == "string" and not M.TRANSPORTS[cfg.transport] then
    bad(level, "bad option 'transport' (a function, \"curl\", \"cosocket\" or \"subrequest\" expected)")
  end
  if cfg.pool_size ~= nil and (math_type(cfg.pool_size) ~= "integer" or cfg.pool_size < 1
                               or cfg.pool_size > 10000) then
    bad(level, "bad option 'pool_size' (an integer from 1 to 10000 expected)")
  end
  local idle = cfg.pool_idle_timeout
  if idle ~= nil and not (idle > 0 and idle <= LIMITS.seconds) then
    bad(level, "bad option 'pool_idle_timeout' (seconds above 0, up to %d expected)", LIMITS.seconds)
  end
  if cfg.resolve ~= nil then
    local why = M.check_resolve(cfg.resolve)
    if why then bad(level, "bad option 'resolve' (%s)", why) end
  end
  if cfg.cache ~= nil then
    local why = M.check_cache(cfg.cache)
    if why then bad(level, "bad option 'cache' (%s)", why) end
  end
  return cfg
end

-- The keys of the `cache` option: what each must be, as a check and the
-- words of the message.
local CACHE_KEYS = {
  ttl = { function(v) return type(v) == "number" and v > 0 and v <= LIMITS.seconds end,
          "seconds above 0, up to " .. LIMITS.seconds },
  stale_if_error = { function(v) return type(v) == "number" and v >= 0 and v <= LIMITS.seconds end,
                     "seconds from 0 to " .. LIMITS.seconds },
  max_entries = { function(v) return math_type(v) == "integer" and v >= 1 and v <= 10000000 end,
                  "an integer from 1 to 10000000" },
  max_bytes = { function(v) return math_type(v) == "integer" and v >= 1 and v <= LIMITS.max_body end,
                "bytes from 1 to 2^52" },
}

--- Why a `cache` option is not one, or nil.
-- @local
function M.check_cache(c)
  for k in pairs(c) do
    if CACHE_KEYS[k] == nil and k ~= "dict" then return "unknown key '" .. errors.text(k) .. "'" end
  end
  if c.dict ~= nil then
    if type(c.dict) ~= "string" or c.dict == "" then
      return "'dict': the name of a lua_shared_dict expected"
    end
    if c.max_entries ~= nil or c.max_bytes ~= nil then
      return "with 'dict', the lua_shared_dict's size bounds it: no 'max_entries' or 'max_bytes'"
    end
  end
  if c.ttl == nil then return "'ttl' is required" end
  for k, rule in pairs(CACHE_KEYS) do
    if c[k] ~= nil and not rule[1](c[k]) then return "'" .. k .. "': " .. rule[2] .. " expected" end
  end
  return nil
end

-- An IPv4 address, or an IPv6 one in brackets.
local function ip_literal(a)
  local o = { a:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$") }
  if #o == 4 then
    for i = 1, 4 do if tonumber(o[i]) > 255 then return false end end
    return true
  end
  return a:find("^%[[%x:.]+%]$") ~= nil and a:find(":", 1, true) ~= nil
end

--- Why a `resolve` list is not one, or nil: each entry
-- "host:port:address", port 1 to 65535, address an IP literal.
-- @local
function M.check_resolve(list)
  local n = #list
  for k in pairs(list) do
    if math_type(k) ~= "integer" or k < 1 or k > n then return "a list expected" end
  end
  for i = 1, n do
    local e = list[i]
    if type(e) ~= "string" then return "entry " .. i .. ": a string expected" end
    local host, port, addr = e:match("^([^:%[%]%s/@]+):(%d+):(%S+)$")
    if not host then return "entry " .. i .. ": \"host:port:address\" expected" end
    local p = tonumber(port)
    if p < 1 or p > 65535 then return "entry " .. i .. ": port from 1 to 65535 expected" end
    if not ip_literal(addr) then
      return "entry " .. i .. ": an IP address expected after the port (IPv6 in brackets)"
    end
  end
  return nil
end

-- The defaults the Lua side applies (C's are core.DEFAULTS).
M.DEFAULTS = { retries = 2, decode_budget = M.DEFAULT_DECODE_BUDGET, locale = "en-US",
               base_url = M.DEFAULT_BASE_URL, coalesce = true }

-- get_offers_many's window (and the command's --concurrency): not an
-- option of new, so apart from DEFAULTS.
M.CONCURRENCY = { default = 8, max = 1024 }

--- nil when n is a concurrency get_offers_many takes, else what it expects
-- ("an integer from 1 to 1024").
-- @local
function M.concurrency_problem(n)
  if math_type(n) == "integer" and n >= 1 and n <= M.CONCURRENCY.max then return nil end
  return string_format("an integer from 1 to %d", M.CONCURRENCY.max)
end

--- What a resolved configuration says, without secrets: every option's
-- value (password, bearer token and functions left out, a proxy's
-- credentials masked; defaults filled in), `credentials` ("basic",
-- "bearer" or "none"), and `from`: for each option, "option", the
-- environment variable it came from, or "default".
-- @local
function M.settings(cfg)
  local view, from = {}, {}
  for k, v in pairs(cfg) do
    if k ~= "_from" and k ~= "password" and k ~= "bearer_token" and k ~= "client_secret"
       and type(v) ~= "function" then
      view[k] = v
      from[k] = cfg._from and cfg._from[k] or "default"
    end
  end
  for _, defaults in ipairs({ core.DEFAULTS, M.DEFAULTS }) do
    for k, v in pairs(defaults) do
      if view[k] == nil then view[k], from[k] = v, "default" end
    end
  end
  if cfg.deadline == nil then
    view.deadline, from.deadline = view.timeout > 0 and view.timeout or nil, "default"
  end
  if cfg.proxy then view.proxy = secrets.mask_proxy(cfg.proxy) end
  view.credentials = cfg.bearer_token and "bearer" or cfg.username and "basic"
    or cfg.client_id and "client_credentials" or "none"
  from.credentials = cfg._from and (cfg._from.bearer_token or cfg._from.password or cfg._from.client_secret)
    or "option"
  if cfg.client_id and view.scope == nil then
    view.scope, from.scope = require("kpayment.oauth").SCOPE, "default"
  end
  if view.credentials == "none" then from.credentials = nil end
  view.from = from
  return view
end

--- The proxy variables of the environment that libcurl reads, name ->
-- value, credentials in a value replaced by "[redacted]".
-- @local
function M.proxy_env()
  local found = {}
  for _, names in ipairs({ ENV_PROXY, ENV_NO_PROXY }) do
    for _, var in ipairs(names) do
      local v = os_getenv(var)
      if v ~= nil and v ~= "" then found[var] = names == ENV_PROXY and secrets.mask_proxy(v) or v end
    end
  end
  return found
end

--- The strings to scrub from errors and log lines for this configuration
-- (kpayment.secrets: every form of the password, the bearer token, the
-- Basic value and a proxy's credentials: the option's, or the
-- environment's that libcurl would use), longest first.
-- @local
function M.secrets(cfg)
  return secrets.of(cfg, ENV_PROXY)
end

return M
