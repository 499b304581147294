--- The transport of a client inside nginx by default: each attempt over
-- `ngx.socket.tcp`, in the nginx request (or timer) that waits for it, on
-- kept-alive connections.  The response's framing is read by the C core
-- (`attempt:feed`, kp_h1.c), which also keeps max_body while reading; this
-- file connects, verifies TLS, writes the request and moves bytes.
--
-- An attempt is a GET with the client's headers, or what its `extra` says
-- (kpayment.transport): a POST with Content-Type, Content-Length and its
-- body, and its own Authorization in place of the client's.
--
-- Connections are pooled by scheme, host, port, address, TLS name and
-- verification (nginx's cosocket pools, per worker): a connection goes back
-- only when its response was read whole and the server allows reuse.  One
-- that the server closed while it was idle is found out on its first use
-- and the attempt goes on a fresh one.
-- @module kpayment.cosocket

local core = require("kpayment.core")

local error, tostring, tonumber, pairs, type = error, tostring, tonumber, pairs, type
local string_format, string_lower, string_find = string.format, string.lower, string.find
local math_max, math_floor = math.max, math.floor
local table_concat = table.concat
local monotonic = core.monotonic

local transport = require("kpayment.transport")
local ngx = transport.ngx()
local tcp = ngx.socket.tcp
local extra_of = transport.extra

local M = {}

local DEFAULTS = core.DEFAULTS

-- Bytes asked of each read; nginx returns what its socket buffer holds
-- (lua_socket_buffer_size), at most this.
local READ_SIZE = 65536
-- A socket timeout that stands for none (nginx's timers take 32-bit ms).
local NO_LIMIT = 2 ^ 31 - 1

-- Options that cannot work over cosockets, and what does their job.
local INSTEAD = {
  ca_file = "nginx verifies with the CA file of its lua_ssl_trusted_certificate directive " ..
    "(and lua_ssl_verify_depth); set them, and leave out ca_file",
  proxy = "cosockets connect to the API themselves; for an HTTP proxy use transport = " ..
    "\"subrequest\" with nginx's proxy configuration (see docs/openresty.md)",
  follow_redirects = "the cosocket transport does not follow redirects (the API does not " ..
    "redirect): leave it out",
}

--- Checks the options for this transport and keeps what attempts need.
function M.setup(c, cfg)
  for k, why in pairs(INSTEAD) do
    if cfg[k] ~= nil then
      error(string_format("kpayment: option '%s' has no effect with the cosocket transport: %s",
        k, why), 0)
    end
  end
  c._insecure = cfg.insecure == true
  -- 0: no limit of its own, as libcurl's 0 (the attempt's timeout holds)
  local connect = cfg.connect_timeout or DEFAULTS.connect_timeout
  c._connect_ms = connect > 0 and math_floor(connect * 1000) or nil
  c._pool_size = cfg.pool_size or DEFAULTS.pool_size
  c._idle_ms = math_floor((cfg.pool_idle_timeout or DEFAULTS.pool_idle_timeout) * 1000)
  c._resolve = {}
  for _, entry in pairs(cfg.resolve or {}) do
    local host, port, addr = entry:match("^(.+):(%d+):(.+)$")
    c._resolve[string_lower(host) .. ":" .. port] = addr:match("^%[(.*)%]$") or addr
  end
  -- Host comes first, then the headers every transport sends; for an
  -- attempt with its own Authorization, those others and the client's
  -- Authorization line apart.
  local lines, others = {}, {}
  for name, value in pairs(c._headers) do
    local line = name .. ": " .. value .. "\r\n"
    lines[#lines + 1] = line
    if name == "Authorization" then c._auth_line = line else others[#others + 1] = line end
  end
  table.sort(lines)
  table.sort(others)
  c._tail = table_concat(lines) .. "\r\n"
  c._others = table_concat(others)
  c._auth_line = c._auth_line or ""
  c._targets = {}
  c._sessions = {}
end

-- What a URL's scheme and authority mean for a connection, worked out once
-- per authority.
local function target(c, scheme, authority)
  local key = scheme .. "://" .. authority
  local t = c._targets[key]
  if t then return t end
  local host, port = authority:match("^%[(.+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  local tls = scheme == "https"
  port = tonumber(port) or (tls and 443 or 80)
  local lhost = string_lower(host)
  local addr = c._resolve[lhost .. ":" .. port] or host
  t = {
    tls = tls, host = host, port = port, addr = addr,
    -- nginx parses host:port, so an IPv6 address goes in brackets
    connect_to = string_find(addr, ":", 1, true) and "[" .. addr .. "]" or addr,
    host_header = "Host: " .. authority .. "\r\n",
    ip = host:find("^[%d.]+$") ~= nil or host:find(":", 1, true) ~= nil,
  }
  t.pool = table_concat({ scheme, lhost, port, addr, c._insecure and "insecure" or "verified" }, "|")
  t.opts = { pool = t.pool, pool_size = c._pool_size }
  c._targets[key] = t
  return t
end

-- Milliseconds left before `deadline` (nil: none), at most `cap` (nil:
-- none); nil when neither bounds it, 0 or less once the deadline is near.
local function left_ms(deadline, cap)
  if not deadline then return cap end
  local ms = math_floor((deadline - monotonic()) * 1000)
  if cap and cap < ms then ms = cap end
  return ms
end

-- Why a connection could not be made, as (kind, message, retryable).
local function connect_failure(t, err, ms)
  if err == "timeout" then
    return "timeout", string_format("connecting to %s port %d timed out after %d ms", t.host, t.port, ms)
  end
  if string_find(err, "no resolver defined", 1, true) then
    return "network", string_format("nginx cannot look up %s: cosockets resolve names only " ..
      "through nginx's `resolver` directive (not /etc/hosts); add one to the http block, or " ..
      "give the `resolve` option an address for %s:%d", t.host, t.host, t.port), false
  end
  return "network", string_format("cannot connect to %s port %d: %s", t.host, t.port, err)
end

-- Why a TLS handshake failed, as (kind, message, retryable).
local function tls_failure(t, err)
  if err == "timeout" then
    return "timeout", "the TLS handshake with " .. t.host .. " timed out"
  end
  if err == "certificate host mismatch" then
    local why = "the TLS certificate of " .. t.host .. " does not name it (certificate host mismatch)"
    if t.ip then
      why = why .. "; nginx cannot verify a certificate for an IP address: use a host name, " ..
        "with the `resolve` option to pick the address"
    end
    return "tls", why, false
  end
  if tostring(err):find("^%d+:") then
    return "tls", "the TLS certificate of " .. t.host .. " is not verified (" .. err .. "): nginx " ..
      "verifies with the CA file named by lua_ssl_trusted_certificate, and chains up to " ..
      "lua_ssl_verify_depth (default 1); check both, or give insecure = true", false
  end
  return "tls", "the TLS handshake with " .. t.host .. " failed (" .. tostring(err) .. "): nginx's " ..
    "error log says why; a server that speaks TLS 1.3 only needs lua_ssl_protocols TLSv1.2 TLSv1.3 " ..
    "(kpayment's nginx/http.conf sets it)", false
end

local function fail_timeout(a, timeout_ms)
  a:fail("timeout", string_format("operation timed out after %d milliseconds", timeout_ms))
end

local function timed_out(a, deadline, timeout_ms)
  if deadline and monotonic() >= deadline then
    fail_timeout(a, timeout_ms)
    return true
  end
  return false
end

-- Connect (or take a pooled connection) and shake hands: the socket and
-- whether it came from the pool, or nil once the attempt has failed.
local function open(c, a, t, deadline, timeout_ms)
  local sock = tcp()
  local ms = left_ms(deadline, c._connect_ms) or NO_LIMIT
  if ms <= 0 then   -- under a millisecond left: no time to connect
    fail_timeout(a, timeout_ms)
    return nil
  end
  sock:settimeout(ms)
  local ok, err = sock:connect(t.connect_to, t.port, t.opts)
  if not ok then
    a:fail(connect_failure(t, tostring(err), ms))
    return nil
  end
  local reused = (sock:getreusedtimes() or 0) > 0
  if t.tls and not reused then
    local session
    session, err = sock:sslhandshake(c._sessions[t.pool], t.host, not c._insecure)
    if not session then
      sock:close()
      a:fail(tls_failure(t, err))
      return nil
    end
    if type(session) ~= "boolean" then c._sessions[t.pool] = session end
  end
  return sock, reused
end

-- The response, read and fed until it is whole or the attempt failed:
-- "done" (sock kept or closed), "stale" (a pooled connection the server had
-- closed: nothing came), or nil (failed, reported).
local function read(c, a, sock, reused, deadline, timeout_ms)
  local got = false
  while true do
    if timed_out(a, deadline, timeout_ms) then
      sock:close()
      return nil
    end
    sock:settimeout(math_max(left_ms(deadline, NO_LIMIT), 1))
    local data, err = sock:receiveany(READ_SIZE)
    if data then
      got = true
      local done, reusable = a:feed(data)
      if done ~= false then   -- complete, failed, or no longer wanted
        if done and reusable then
          sock:setkeepalive(c._idle_ms, c._pool_size)
        else
          sock:close()
        end
        return "done"
      end
    elseif reused and not got and err ~= "timeout" then
      sock:close()
      return "stale"
    else
      sock:close()
      if err == "closed" then
        a:feed(nil)
      elseif err == "timeout" then
        a:fail("timeout", string_format("operation timed out after %d milliseconds", timeout_ms))
      else
        a:fail("network", "receiving the response: " .. tostring(err))
      end
      return nil
    end
  end
end

-- The request's text (a list for sock:send) for attempt a: a GET with the
-- client's headers, or what its extra says.
local function request_text(c, a, t, target_path)
  local x = extra_of(c, a)
  if x == nil then return { "GET ", target_path, " HTTP/1.1\r\n", t.host_header, c._tail } end
  local auth = c._auth_line
  if x.authorization ~= nil then
    auth = x.authorization ~= "" and "Authorization: " .. x.authorization .. "\r\n" or ""
  end
  local request = { x.method, " ", target_path, " HTTP/1.1\r\n", t.host_header, c._others, auth }
  if x.method == "POST" then
    if x.content_type then request[#request + 1] = "Content-Type: " .. x.content_type .. "\r\n" end
    request[#request + 1] = "Content-Length: " .. #x.body .. "\r\n\r\n"
    request[#request + 1] = x.body
  else
    request[#request + 1] = "\r\n"
  end
  return request
end

--- Send one attempt (kpayment.transport's `send`).
function M.send(c, a, url, timeout_ms)
  local scheme, authority, target_path = url:match("^(https?)://([^/?#]+)(.*)$")
  local t = target(c, scheme, authority)
  if target_path == "" then target_path = "/" end
  local deadline = timeout_ms >= 0 and monotonic() + timeout_ms / 1000 or nil
  local request = request_text(c, a, t, target_path)
  -- each stale pooled connection is closed, so this ends within pool_size tries
  for _ = 0, c._pool_size do
    local sock, reused = open(c, a, t, deadline, timeout_ms)
    if not sock then return end
    sock:settimeout(math_max(left_ms(deadline, NO_LIMIT), 1))
    local sent, err = sock:send(request)
    local how
    if not sent then
      sock:close()
      if not reused then
        if err == "timeout" then
          a:fail("timeout", string_format("operation timed out after %d milliseconds", timeout_ms))
        else
          a:fail("network", "sending the request: " .. tostring(err))
        end
        return
      end
      how = "stale"
    else
      how = read(c, a, sock, reused, deadline, timeout_ms)
    end
    if how ~= "stale" then return end
    if a:done() then return end
  end
  a:fail("network", "every pooled connection to " .. t.host .. " was closed by the server")
end

return M
