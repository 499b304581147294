--- Inside an nginx worker (OpenResty, or Debian's nginx with
-- libnginx-mod-http-lua): requests as subrequests to an internal location
-- that proxies to the API (see examples/openresty/nginx.conf), so a call
-- yields its light thread instead of blocking the worker.  Attempts run in
-- light threads (kpayment.transport), retries wait with `ngx.sleep`.
--
-- The location (option `ngx_location`, default "/_kpayment") gets the
-- target through subrequest variables: $kpayment_scheme, $kpayment_host,
-- $kpayment_sni, $kpayment_path, $kpayment_auth, $kpayment_accept and
-- $kpayment_agent (declared with `set` in some location, so nginx knows
-- them).  The location's log phase (`M.log`) keeps $upstream_status,
-- $upstream_header_time, $upstream_connect_time and
-- $upstream_bytes_received in the table the capture passed as ngx.ctx:
-- that is how nginx's own failure to reach the API (no response header
-- came) is told apart from the API's own 502 or 504 page, a timeout (504)
-- from a refused connection, and a TLS handshake that failed (bytes came,
-- no connection was made) from both.
-- @module kpayment.transport_ngx

local transport = require("kpayment.transport")

local tostring, tonumber, error, pcall, ipairs = tostring, tonumber, error, pcall, ipairs

local M = {}

M.DEFAULT_LOCATION = "/_kpayment"

-- The directive behind each phase where subrequests are not allowed.
local WHERE = {
  init = "init_by_lua*", init_worker = "init_worker_by_lua*", exit_worker = "exit_worker_by_lua*",
  set = "set_by_lua*", header_filter = "header_filter_by_lua*", body_filter = "body_filter_by_lua*",
  log = "log_by_lua*", timer = "an ngx.timer callback", balancer = "balancer_by_lua*",
  ssl_cert = "ssl_certificate_by_lua*", ssl_session_fetch = "ssl_session_fetch_by_lua*",
  ssl_session_store = "ssl_session_store_by_lua*", ssl_client_hello = "ssl_client_hello_by_lua*",
}

--- Raises, naming the phase and the way out, where nginx allows no
-- subrequests.
function M.check_phase()
  local phase = transport.phase()
  if transport.SUBREQUEST_PHASES[phase] then return end
  error("kpayment: nginx allows no subrequests in " .. (WHERE[phase] or "this context") ..
    " (phase '" .. tostring(phase) .. "'), so the nginx transport cannot run here; call kpayment from " ..
    "rewrite_by_lua*, access_by_lua* or content_by_lua*, or give kpayment.new a " ..
    "`transport = function(req) ... end` over an HTTP client that works here " ..
    "(lua-resty-http over cosockets in a timer, for instance; see the README)", 0)
end

-- The last entry of a list of upstream values ("a, b : c").
local function last(v)
  return v and v:match("([^,%s]+)%s*$") or "-"
end

--- The log phase of the location (nginx.conf's log_by_lua_block): keeps
-- what nginx knows of the attempt in the subrequest's ngx.ctx, which is
-- the table the capture passed, so kpayment reads it once it resumes.
function M.log()
  local ngx = transport.ngx()
  local ctx, var = ngx.ctx, ngx.var
  if not ctx.kpayment then return end
  ctx.upstream_status = var.upstream_status
  ctx.header_time = var.upstream_header_time
  ctx.upstream_addr = var.upstream_addr
end

-- Why nginx got no response from an https upstream: nginx tells a failed
-- TLS handshake only in its error log, so ask the upstream again, with a
-- cosocket verifying against lua_ssl_trusted_certificate (nginx.conf sets
-- the same CA file as for proxy_ssl_trusted_certificate).  A TCP connection
-- that fails is "network"; one whose handshake fails is "tls", as libcurl
-- would say.
local function probe_tls(addr, sni)
  local ngx = transport.ngx()
  local host, port = addr:match("^%[?([^%]]+)%]?:(%d+)$")
  if not host then return nil end
  local sock = ngx.socket.tcp()
  sock:settimeout(2000)
  if not sock:connect(host, tonumber(port)) then return nil end
  -- In a light thread this resty.core raises (an assertion) where it
  -- should return the verification error: a failed handshake either way.
  local ran, ok, err = pcall(sock.sslhandshake, sock, nil, sni, true)
  sock:close()
  if ran and ok then return nil end
  return ran and tostring(err) or "certificate not verified"
end

-- nginx's own failure to reach the API as kind and message, or nil when
-- the response came from the API.  `seen` is what the location's log phase
-- kept: no response header from the upstream means no response at all.
local function failure(res, seen)
  if seen.kpayment == nil or seen.upstream_status == nil then
    error("kpayment: the nginx location for kpayment is missing, or lacks its " ..
      "log_by_lua_block (it answered " .. tostring(res.status) .. "); see examples/openresty/nginx.conf", 0)
  end
  if last(seen.header_time) ~= "-" then
    if res.truncated then return "network", "the API's response was cut short" end
    return nil
  end
  if last(seen.upstream_status) == "504" then
    return "timeout", "nginx timed out waiting for the API"
  end
  if seen.scheme == "https" then
    local why = probe_tls(last(seen.upstream_addr), seen.sni)
    if why then return "tls", "TLS handshake with the API failed: " .. why end
  end
  return "network", "nginx could not reach the API (see nginx's error log)"
end

--- A core for resolved options `cfg` that sends through nginx.
-- Options that nginx's configuration decides for a subrequest: given to
-- kpayment.new inside nginx they would be silently ignored, so they raise,
-- naming where to say it instead.
local NGINX_DECIDES = {
  ca_file = "proxy_ssl_trusted_certificate in the internal location",
  insecure = "proxy_ssl_verify in the internal location",
  proxy = "the internal location (nginx connects to the API itself)",
  connect_timeout = "proxy_connect_timeout in the internal location",
  follow_redirects = "nothing: a subrequest returns a redirect as it is",
}

function M.new(cfg)
  for _, k in ipairs({ "ca_file", "insecure", "proxy", "connect_timeout", "follow_redirects" }) do
    if cfg[k] ~= nil then
      error(string.format("kpayment: option '%s' has no effect inside nginx: set %s (see " ..
        "examples/openresty/nginx.conf), or give a transport function", k, NGINX_DECIDES[k]), 0)
    end
  end
  local ngx = transport.ngx()
  local capture = ngx.location.capture
  local location = cfg.ngx_location or M.DEFAULT_LOCATION
  local function send(req)
    local scheme, authority, rest = req.url:match("^(https?)://([^/?#]+)(.*)$")
    local path, query = rest:match("^([^?]*)%??(.*)$")
    if path == "" then path = "/" end
    local h = req.headers
    local sni = authority:gsub(":%d+$", ""):gsub("^%[(.*)%]$", "%1")
    local seen = { kpayment = true, scheme = scheme, sni = sni }
    local res = capture(location .. (query ~= "" and "?" .. query or ""), {
      ctx = seen,
      vars = {
        kpayment_scheme = scheme, kpayment_host = authority,
        kpayment_sni = sni,
        kpayment_path = path, kpayment_auth = h.Authorization or "",
        kpayment_accept = h.Accept, kpayment_agent = h["User-Agent"],
      },
    })
    local kind, message = failure(res, seen)
    if kind then return nil, kind, message end
    return res.status, res.body or "", res.header
  end
  return transport.new(cfg, send, "nginx " .. location, M.check_phase)
end

return M
