--- The subrequest transport (`transport = "subrequest"`), for users who
-- want nginx's upstream features (proxies, upstream blocks, balancing):
-- each attempt is an `ngx.location.capture` to the internal location of
-- kpayment's nginx/server.conf, which proxies to `upstream kpayment_api`.
--
-- That location's header filter (`M.header_filter`) keeps what nginx knows
-- of the attempt in the capture's ngx.ctx: whether a response header came
-- from the API at all, which tells nginx's own failure to reach it (a
-- refused connection, a failed TLS handshake, a timeout) from the API's
-- own 502 or 504 page.  Only a failed handshake needs more (probe_tls).
-- Its body filter (`M.body_filter`) keeps at most max_body bytes of a body
-- in memory.
--
-- An attempt whose `extra` (kpayment.transport) makes it a POST is a POST
-- subrequest carrying the body; the location sends it from
-- $kpayment_body with its $kpayment_length and $kpayment_type (never the
-- nginx request's own body).  An attempt's own Authorization goes in
-- $kpayment_auth in place of the client's.
-- @module kpayment.subrequest

local core = require("kpayment.core")

local error, tostring, tonumber, pcall, pairs = error, tostring, tonumber, pcall, pairs
local string_format = string.format
local monotonic = core.monotonic

local transport = require("kpayment.transport")
local ngx = transport.ngx()
local extra_of = transport.extra

local M = {}

M.DEFAULT_LOCATION = "/_kpayment"

-- Options nginx's configuration decides for a subrequest, and where.
local INSTEAD = {
  ca_file = "set proxy_ssl_trusted_certificate (nginx/http.conf sets Debian's bundle)",
  insecure = "the location verifies TLS (proxy_ssl_verify on in nginx/server.conf)",
  proxy = "nginx connects to the API itself: point `upstream kpayment_api` at your proxy's way out",
  connect_timeout = "nginx/server.conf sets proxy_connect_timeout",
  follow_redirects = "a subrequest returns a redirect as it is",
  resolve = "`upstream kpayment_api` says which address to connect to",
  pool_size = "give `upstream kpayment_api` a `keepalive` size",
  pool_idle_timeout = "give `upstream kpayment_api` a `keepalive_timeout`",
}

--- Checks the options for this transport and keeps what attempts need.
function M.setup(c, cfg)
  for k, why in pairs(INSTEAD) do
    if cfg[k] ~= nil then
      error(string_format("kpayment: option '%s' has no effect with the subrequest transport: %s",
        k, why), 0)
    end
  end
  c._location = cfg.ngx_location or M.DEFAULT_LOCATION
  c._max_body = cfg.max_body or core.DEFAULTS.max_body
  -- The location proxies to `upstream kpayment_api` whatever the URL's
  -- host: attempts for another host (the token request) go over a
  -- cosocket, with that transport's settings kept beside this core's.
  local direct = setmetatable({}, { __index = c })
  require("kpayment.cosocket").setup(direct, cfg)
  c._direct = direct
end

--- The location's header filter (nginx/server.conf).
function M.header_filter()
  local ctx = ngx.ctx
  if not ctx.kpayment then return end
  local var = ngx.var
  ctx.upstream_status = var.upstream_status
  ctx.header_time = var.upstream_header_time
  ctx.upstream_addr = var.upstream_addr
end

--- The location's body filter: at most max_body bytes reach the capture;
-- the rest is dropped, and the attempt ends as body_too_large.
function M.body_filter()
  local ctx = ngx.ctx
  local limit = ctx.kpayment
  if not limit then return end
  local chunk = ngx.arg[1]
  local n = (ctx.bytes or 0) + #chunk
  ctx.bytes = n
  if n > limit then
    ctx.too_large = true
    ngx.arg[1] = ""
  end
end

-- The last entry of a list of upstream values ("a, b : c").
local function last(v)
  return v and v:match("([^,%s]+)%s*$") or "-"
end

local INCLUDE = "include kpayment's nginx/server.conf in this server block (see docs/openresty.md)"

-- Why nginx's TLS handshake with the upstream at `addr` ("ip:port") failed,
-- or nil when it did not: nginx tells that only in its error log (no
-- variable sets a handshake failure apart from a refused connection), so
-- on that failure alone a cosocket shakes hands with the same address and
-- name, verifying as nginx/http.conf has both sides verify.
local function probe_tls(addr, sni)
  local host, port = addr:match("^%[?([^%]]+)%]?:(%d+)$")
  if not host then return nil end
  local sock = ngx.socket.tcp()
  sock:settimeout(5000)
  if not sock:connect(host, tonumber(port)) then return nil end
  local ok, err = sock:sslhandshake(nil, sni, true)
  sock:close()
  if ok then return nil end
  return tostring(err)
end

-- How nginx's own failure to reach the API (no response header came from
-- it) is reported: kind, message, retryable.
local function failure(seen, scheme, sni)
  if last(seen.upstream_status) == "504" then
    return "timeout", "nginx timed out waiting for the API"
  end
  local why = scheme == "https" and probe_tls(last(seen.upstream_addr), sni)
  if why then
    return "tls", "nginx's TLS handshake with the API failed (" .. why .. "): nginx verifies with " ..
      "the CA file of proxy_ssl_trusted_certificate, chains up to proxy_ssl_verify_depth " ..
      "(nginx/http.conf sets both)", false
  end
  return "network", "nginx could not reach the API (refused, unreachable, or not resolved: its " ..
    "error log says which)"
end

-- Whether nginx knows the $kpayment_* variables (nginx/server.conf
-- declares them).  A capture that sets an unknown one fails the whole
-- request with a 500, so ask first, once: writing an unknown variable
-- raises, writing a known one touches only this request's copy.  Those of
-- a POST came later: a configuration from before them still sends GETs.
local declared, declared_post = false, nil
local function variables_declared()
  if not declared then
    declared = pcall(function() ngx.var.kpayment_scheme = "" end)
  end
  return declared
end

local function post_variables_declared()
  if declared_post == nil then
    declared_post = pcall(function()
      ngx.var.kpayment_body, ngx.var.kpayment_length, ngx.var.kpayment_type = "", "", ""
    end)
  end
  return declared_post
end

-- One capture; what it returned, or raised.
local function capture(c, a, url, seen)
  local scheme, authority, rest = url:match("^(https?)://([^/?#]+)(.*)$")
  local path, query = rest:match("^([^?]*)%??(.*)$")
  if path == "" then path = "/" end
  local h = c._headers
  local sni = authority:gsub(":%d+$", ""):gsub("^%[(.*)%]$", "%1")
  seen.sni = sni
  local vars = {
    kpayment_scheme = scheme, kpayment_host = authority, kpayment_sni = sni,
    kpayment_path = path, kpayment_auth = h.Authorization or "",
    kpayment_accept = h.Accept, kpayment_agent = h["User-Agent"],
  }
  local opts = { ctx = seen, vars = vars }
  local x = extra_of(c, a)
  if post_variables_declared() then
    vars.kpayment_body, vars.kpayment_length, vars.kpayment_type = "", "", ""
  end
  if x ~= nil then
    if x.authorization ~= nil then vars.kpayment_auth = x.authorization end
    if x.method == "POST" then
      -- the subrequest is the POST with its body, for any location; the
      -- shipped one sends the body from the variable
      opts.method, opts.body = ngx.HTTP_POST, x.body
      vars.kpayment_body, vars.kpayment_length = x.body, tostring(#x.body)
      vars.kpayment_type = x.content_type or ""
    end
  end
  local ok, res = pcall(ngx.location.capture, c._location .. (query ~= "" and "?" .. query or ""),
    opts)
  return ok, res, scheme
end

-- Report what a capture gave into attempt a.
local function report(c, a, ok, res, scheme, seen)
  if not ok then error(res, 0) end
  if seen.upstream_status == nil then
    return a:fail("network", "kpayment: no location of kpayment's answered " .. c._location ..
      " (nginx said " .. tostring(res.status) .. "): " .. INCLUDE, false)
  end
  if last(seen.header_time) == "-" then
    return a:fail(failure(seen, scheme, seen.sni))
  end
  if seen.too_large then
    return a:fail("body_too_large", "response body larger than max_body", false, res.status)
  end
  if res.truncated then
    return a:fail("network", "the API's response was cut short")
  end
  a:response(res.status, res.body or "", res.header)
end

--- Send one attempt (kpayment.transport's `send`): the capture runs in a
-- light thread of its own when the attempt has a timeout, so the caller
-- stops waiting when it runs out (nginx cannot abort a subrequest: the
-- thread finishes later, and its answer is dropped).
function M.send(c, a, url, timeout_ms)
  local x = extra_of(c, a)
  if x ~= nil and x.direct then return require("kpayment.cosocket").send(c._direct, a, url, timeout_ms) end
  if not variables_declared() then
    return a:fail("network", "kpayment: the subrequest transport's $kpayment_* variables are not " ..
      "declared: " .. INCLUDE, false)
  end
  if x ~= nil and x.method == "POST" and not post_variables_declared() then
    return a:fail("network", "kpayment: a POST through the subrequest transport needs " ..
      "$kpayment_body, $kpayment_length and $kpayment_type, which this configuration does not " ..
      "declare: " .. INCLUDE .. " (the current one)", false)
  end
  local seen = { kpayment = c._max_body }
  if timeout_ms < 0 then
    local ok, res, scheme = capture(c, a, url, seen)
    return report(c, a, ok, res, scheme, seen)
  end
  local sema = require("ngx.semaphore").new(0)
  local got
  local thread = ngx.thread.spawn(function()
    got = { capture(c, a, url, seen) }
    sema:post(1)
  end)
  local start = monotonic()
  sema:wait(timeout_ms / 1000)
  if got == nil then
    local ms = (monotonic() - start) * 1000
    a:fail("timeout", string_format("operation timed out after %d milliseconds", ms))
    return thread
  end
  -- reaped: nginx never finishes a request one of whose light threads was
  -- killed while a child it spawned had ended unwaited for
  ngx.thread.wait(thread)
  return report(c, a, got[1], got[2], got[3], seen)
end

return M
