--- kpayment.mock: a mock of myKaarma's finance-offers API.
--
-- A small HTTP/1.1 server in pure Lua on luasocket, for kpayment's tests,
-- examples and benchmarks. It answers
--
--     GET /payment/kpayment/v1/finance/getFinanceOffersForCustomer
--         ?customerUUID=…&dealerUUID=…&skin=…&locale=…
--
-- with `{"financeOffers":[…]}`: schema-complete offers (every field of the
-- API reference) with realistic values. The same customerUUID always gets
-- the same offers; every offer echoes the received customerUUID, dealerUUID
-- and locale (`customer.preferredLocale`) and carries an extra field
-- `"skin"` (the received skin) that the reference does not list. On purpose
-- the body contains: the first offer's `id` 9007199254740993 (above 2^53),
-- `null`s (fundedTS/docSignedTS of unfunded offers, middleName, company),
-- non-ASCII UTF-8 names, JSON escapes (`\"`, `\\`, `\n`, `\u00e9`), active
-- and inactive offers, and expiry dates in the past (2020) and the future
-- (2099).
--
-- Query values are percent-decoded (`%XX`, and `+` as a space); when a
-- parameter repeats, its first occurrence counts.
--
-- Authentication
--   With `user` and `password` configured, requests need
--   `Authorization: Basic base64(user:password)`; with `token` configured,
--   `Authorization: Bearer <token>` is accepted too; with `client_id`
--   configured, so is `Authorization: Bearer <token>` for a token the token
--   endpoint (below) issued and that has not expired. With none of them,
--   every request is accepted. Otherwise: 401 with a JSON error body and
--   `WWW-Authenticate: Basic realm="kpayment-mock"`; but with `client_id`
--   configured, a bearer token that is neither `token` nor a valid issued
--   one gets 401 with the JSON error body and
--   `WWW-Authenticate: Bearer error="invalid_token",
--   error_description="The access token expired."` (or "…is unknown to this
--   server.").
--
-- Responses of the endpoint, in the order they are decided
--   404  any other path (JSON error body), but the token endpoint's
--   405  any method other than GET (with `Allow: GET`)
--   401  missing or wrong credentials, or a refused bearer token
--   fault mode, when one is asked for (below)
--   400  absent or empty parameters: one error per missing parameter, in
--        the order customerUUID, dealerUUID, skin, locale, each naming it
--        ("customerUUID is required")
--   200  `application/json;charset=UTF-8`, `offers` offers (default 3)
--   A malformed request gets 400 and the connection is closed. Error bodies
--   have the API's shape:
--   {"errors":[{"errorCode":…,"errorTitle":…,"errorMessage":…,
--   "errorDescription":…}],"warnings":[]}
--
-- Fault modes
--   Asked for per request, either with the header `X-Mock-Fault: <mode>` or
--   with `customerUUID=mock:<mode>` (so that tests can trigger them through
--   the normal client API); the header wins when both are present. A mode
--   may take an argument after a colon, e.g. `mock:stall:0.5`.
--     error500        500, JSON error body
--     html500         500, text/html page, as a gateway would send
--     html502         502, text/html page
--     503[:s]         503, JSON error body, `Retry-After: s` (default 1)
--     429[:s]         429, JSON error body, `Retry-After: s` (default 1)
--     empty502        502 with an empty body (Content-Length: 0)
--     badjson         200 application/json with an invalid JSON body
--     close           the connection is closed without a response
--     stall[:s]       the response is sent after s seconds (default 5,
--                     fractions allowed, at most 3600); other connections
--                     are served meanwhile
--     truncate        200 whose Content-Length announces the whole body but
--                     only about half of it is sent, then the connection is
--                     closed
--     big[:bytes]     200 with a valid body of at least `bytes` bytes
--                     (default 1048576, at most 268435456): the first offer
--                     carries an extra "padding" string
--     offers:n        200 with n offers (0 to 10000; 0 gives
--                     {"financeOffers":[]})
--     unicode         200 whose names also hold characters outside the BMP,
--                     written raw and as a `\ud83d\ude97` surrogate pair
--     flaky:n:mode    the first n requests for this customerUUID and
--                     dealerUUID get `mode` (any mode above), later ones a
--                     normal response: for testing retries
--     redirect:url    302 to url (for testing that redirects are not
--                     followed, or never carry credentials to another host)
--   Every API response carries `X-Request-Id: mock-<n>`.
--   error500 … close answer whatever the parameters are; stall, truncate,
--   big, offers and unicode first validate the parameters like a normal
--   request (a stalled request with a missing parameter gets a late 400).
--   An unknown mode or a bad argument gets 400 with a JSON error naming it
--   (an unknown mode's error lists every mode).
--
-- OAuth2 token endpoint (only with `client_id` and `client_secret`;
-- without them the path gets 404 like any other)
--   POST /oauth2/token, the client credentials grant of RFC 6749 §4.4: a
--   body `application/x-www-form-urlencoded` (parameters may follow the
--   type) with `grant_type=client_credentials` and an optional `scope`. The
--   client authenticates with HTTP Basic as §2.3.1 has it: client_id and
--   client_secret are each form-urlencoded, then joined by a colon and
--   Base64-encoded (an id `a:b c` is sent as `a%3Ab+c`; the mock decodes
--   `%XX` and `+`, so credentials sent without that encoding may not
--   match). Instead of Basic, the body may carry `client_id` and
--   `client_secret`. Body parameters without a value count as omitted;
--   bodies over 64 KiB are not read.
--   200  {"access_token":"mock-at-…","token_type":"Bearer","expires_in":N,
--        "scope":"…"}, `application/json;charset=UTF-8`, with
--        `Cache-Control: no-store` and `Pragma: no-cache` (as every answer
--        of the endpoint). The token is valid for `token_ttl` seconds from
--        now (default 3600, fractions allowed); N is that rounded up to a
--        whole second. scope: the requested one, else the configured
--        `scope` (default "payment.financeOffer.read", scope-tokens one
--        space apart).
--   Errors, in the order they are decided, have the body
--   {"error":…,"error_description":…} of §5.2:
--   405  a method other than POST (`Allow: POST`; error invalid_request)
--   token fault, when one is set (below)
--   400  invalid_request: another Content-Type, a body over 64 KiB, a
--        repeated parameter, Basic together with client_secret in the body
--   401  invalid_client, with `WWW-Authenticate: Basic realm="kpayment-mock"`:
--        no credentials, a scheme other than Basic, malformed Basic, an
--        unknown client_id or a wrong client_secret
--   400  invalid_request: no grant_type
--   400  unsupported_grant_type: a grant_type other than client_credentials
--   400  invalid_scope: a scope-token that the configured scope lacks
--   Token faults, one at a time, set by /_mock/token_fault (below) and kept
--   until changed or reset; they hit every POST to the endpoint:
--     none            normal answers (the default)
--     500             500, {"error":"server_error","error_description":…}
--     badjson         200 application/json with an invalid JSON body
--     slow[:s]        the normal answer, after s seconds (default 5,
--                     fractions allowed, at most 3600); other connections
--                     are served meanwhile
--     close           the connection is closed without a response
--     error:code      the §5.2 error `code` (invalid_request,
--                     invalid_client, invalid_grant, unauthorized_client,
--                     unsupported_grant_type, invalid_scope) with its status
--                     (401 for invalid_client, else 400), whatever the
--                     request: e.g. error:invalid_grant
--
-- Control endpoints (no authentication, never counted or logged)
--   GET /_mock/stats     {"connections":N,"requests":N}: requests to the API
--                        endpoint (any status) and the connections that
--                        carried at least one of them; with `client_id`,
--                        also "token_requests":N, the POSTs to the token
--                        endpoint (any answer, faults included)
--   GET /_mock/reset     zeroes the counters and empties the request log;
--                        with `client_id`, also clears the token fault and
--                        sets the token lifetime back to `token_ttl` (tokens
--                        already issued stay valid)
--   GET /_mock/requests  the last 50 requests to the API and token
--                        endpoints, oldest first:
--                        [{"method":…,"target":…,"params":{…},"headers":{…}}]
--                        with lower-cased header names; the value of
--                        Authorization is replaced by its scheme alone; for
--                        the token endpoint params are the form body's, with
--                        client_secret's value replaced by "[redacted]"
--   Only with `client_id` (404 without):
--   GET /_mock/expire_tokens       every token issued so far expires now:
--                                  {"expired":N}, N the tokens still valid
--   GET /_mock/token_ttl[?s=S]     tokens issued from now on live S seconds
--                                  (0 to 31536000, fractions allowed; 0:
--                                  they are expired at once):
--                                  {"token_ttl":S}; without s, the current
--   GET /_mock/token_fault[?mode=M]  sets the token fault (M as above, "none"
--                                  clears it): {"token_fault":"M"}; without
--                                  mode, the current; a bad mode gets 400
--
-- Module API
--   local mock = require("kpayment.mock")
--   local srv = mock.new{ host = "127.0.0.1", port = 0, user = nil,
--                         password = nil, token = nil, offers = 3,
--                         client_id = nil, client_secret = nil,
--                         token_ttl = 3600, scope = "payment.financeOffer.read" }
--   (token_ttl and scope only with client_id and client_secret)
--   srv:url()        base URL, e.g. "http://127.0.0.1:43127"
--   srv:step(t)      one select-loop iteration waiting at most t seconds
--                    (nil: until something happens)
--   srv:run()        serve until srv:close()
--   srv:close()
--   srv:stats()      { connections = n, requests = n }, and token_requests = n
--                    with client_id
--   mock.offers_json(params, n [, opts])  the 200 body as a string, for
--                    params {customerUUID=, dealerUUID=, skin=, locale=};
--                    opts.unicode, opts.min_bytes as the faults above
--   mock.check_options(opts)  true, or nil and a message
--   mock.ENDPOINT, mock.TOKEN_ENDPOINT, mock.MAX_OFFERS, mock._VERSION
--
-- This module routes requests; beside it: kpayment.mock.http (HTTP/1.1
-- framing, keep-alive), kpayment.mock.data (the generated offers and the
-- error bodies), kpayment.mock.faults (the fault modes),
-- kpayment.mock.oauth (the token endpoint and its tokens); its JSON is
-- written by kpayment.json, kpayment's one writer.

local socket = require("socket")
local mime = require("mime")
local http = require("kpayment.mock.http")
local json = require("kpayment.json")
local data = require("kpayment.mock.data")
local faults = require("kpayment.mock.faults")
local oauth = require("kpayment.mock.oauth")

local M = {
  _VERSION = "kpayment.mock 0.1.0",
  ENDPOINT = "/payment/kpayment/v1/finance/getFinanceOffersForCustomer",
  TOKEN_ENDPOINT = oauth.PATH,
  MAX_OFFERS = data.MAX_OFFERS,
  offers_json = data.offers_json,
}

local format, concat = string.format, table.concat
local gettime = socket.gettime
local obj, encode = json.object, json.encode
local error_response = data.error_response
local JSON, JSON_UTF8 = http.JSON, http.JSON_UTF8

local PARAMS = { "customerUUID", "dealerUUID", "skin", "locale" }
local LOG_SIZE = 50
local CACHE_BYTES = 256 * 1024 * 1024

---------------------------------------------------------------------------
-- Server

local Server = {}
Server.__index = Server

function M.check_options(opts)
  if type(opts) ~= "table" then return nil, "options must be a table" end
  for _, key in ipairs({ "host", "user", "password", "token" }) do
    if opts[key] ~= nil and type(opts[key]) ~= "string" then
      return nil, key .. " must be a string"
    end
  end
  if (opts.user == nil) ~= (opts.password == nil) then
    return nil, "user and password go together"
  end
  local port = opts.port
  if port ~= nil and (math.type(port) ~= "integer" or port < 0 or port > 65535) then
    return nil, "port must be an integer from 0 to 65535"
  end
  local offers = opts.offers
  if offers ~= nil and (math.type(offers) ~= "integer" or offers < 0 or offers > M.MAX_OFFERS) then
    return nil, "offers must be an integer from 0 to " .. M.MAX_OFFERS
  end
  return oauth.check_options(opts)
end

--- Creates a server listening at once; raises when it cannot.
function M.new(opts)
  opts = opts or {}
  local ok, why = M.check_options(opts)
  if not ok then error("kpayment.mock: " .. why, 2) end
  local host, port = opts.host or "127.0.0.1", opts.port or 0
  local server, err = socket.bind(host, port, 128)
  if not server then
    error(format("kpayment.mock: cannot listen on %s:%d: %s", host, port, err), 2)
  end
  server:settimeout(0)
  local srv = setmetatable({
    _server = server,
    _offers = opts.offers or 3,
    _basic = opts.user and (mime.b64(opts.user .. ":" .. opts.password)),
    _token = opts.token,
    _oauth = opts.client_id and oauth.new(opts), -- the token endpoint, with client_id
    _conns = {}, -- socket → connection (kpayment.mock.http)
    _nconns = 0,
    _requests = 0,
    _connections = 0,
    _epoch = 1, -- bumped by reset, so connections already counted count again
    _log = {},
    _flaky = {}, -- customer and dealer → requests seen, for flaky:n:mode
    _cache = {},
    _cache_bytes = 0,
  }, Server)
  -- what the connections call for each request
  srv._respond = function(conn, req, malformed) return srv:_respond_to(conn, req, malformed) end
  return srv
end

function Server:url()
  local ip, port = self._server:getsockname()
  if ip == "0.0.0.0" then ip = "127.0.0.1" elseif ip == "::" then ip = "::1" end
  if ip:find(":", 1, true) then ip = "[" .. ip .. "]" end
  return format("http://%s:%d", ip, port)
end

function Server:stats()
  local stats = { connections = self._connections, requests = self._requests }
  if self._oauth then stats.token_requests = self._oauth.requests end
  return stats
end

function Server:close()
  for sock in pairs(self._conns) do sock:close() end
  self._conns, self._nconns = {}, 0
  if self._server then self._server:close() end
  self._server = nil
end

function Server:run()
  while self._server do self:step() end
end

---------------------------------------------------------------------------
-- Routing

function Server:_body(params, n, opts)
  local key = concat({ params.customerUUID, params.dealerUUID, params.skin, params.locale, n,
    opts.unicode and "u" or "", opts.min_bytes or "" }, "\0")
  local body = self._cache[key]
  if not body then
    body = M.offers_json(params, n, opts)
    if self._cache_bytes + #body > CACHE_BYTES then
      self._cache, self._cache_bytes = {}, 0
    end
    if #body <= CACHE_BYTES then
      self._cache[key], self._cache_bytes = body, self._cache_bytes + #body
    end
  end
  return body
end

--- Whether credentials are good; false and a description when they are a
-- bearer token the token endpoint did not issue or that expired.
function Server:_authorized(value)
  if not self._basic and not self._token and not self._oauth then return true end
  local scheme, credentials = (value or ""):match("^(%S+)[ \t]+(.-)[ \t]*$")
  scheme = scheme and scheme:lower()
  if (scheme == "basic" and credentials == self._basic)
    or (scheme == "bearer" and self._token ~= nil and credentials == self._token) then
    return true
  end
  if scheme == "bearer" and self._oauth then return self._oauth:check(credentials) end
  return false
end

--- Adds a request to the log; logged_params is a flat name, value list.
function Server:_log_request(req, logged_params)
  local logged_headers = {}
  for _, name in ipairs(req.header_order) do
    local value = req.headers[name]
    if name == "authorization" or name == "proxy-authorization" then
      value = value:match("^%S*") -- the scheme only: never echo credentials
    end
    logged_headers[#logged_headers + 1] = name
    logged_headers[#logged_headers + 1] = value
  end
  local log = self._log
  log[#log + 1] = obj("method", req.method, "target", req.target,
    "params", json.object_of(logged_params), "headers", json.object_of(logged_headers))
  if #log > LOG_SIZE then table.remove(log, 1) end
end

function Server:_record(conn, req, params, names)
  self._requests = self._requests + 1
  if conn.epoch ~= self._epoch then
    conn.epoch = self._epoch
    self._connections = self._connections + 1
  end
  local logged_params = {}
  for _, name in ipairs(names) do
    logged_params[#logged_params + 1] = name
    logged_params[#logged_params + 1] = params[name]
  end
  self:_log_request(req, logged_params)
end

--- The token endpoint's control endpoints; nil for another path.
function Server:_token_control(path, params)
  local state = self._oauth
  if path == "/_mock/expire_tokens" then
    return obj("expired", state:expire_all())
  elseif path == "/_mock/token_ttl" then
    if params.s then
      local ttl = oauth.parse_ttl(params.s)
      if not ttl then
        return error_response(400, "Bad token_ttl '" .. params.s .. "'",
          "s must be seconds from 0 to " .. oauth.MAX_TTL .. ", fractions allowed.")
      end
      state.ttl = ttl
    end
    return obj("token_ttl", state.ttl)
  elseif path == "/_mock/token_fault" then
    if params.mode then
      local fault, why = oauth.parse_fault(params.mode)
      if not fault and why then
        return error_response(400, why, "Token fault modes are listed in kpayment.mock.")
      end
      state.fault = fault
    end
    return obj("token_fault", state.fault and state.fault.text or "none")
  end
end

local TOKEN_CONTROL = { ["/_mock/expire_tokens"] = true, ["/_mock/token_ttl"] = true,
  ["/_mock/token_fault"] = true }

function Server:_control(path, query)
  if TOKEN_CONTROL[path] then
    if not self._oauth then
      return error_response(404, "Not found", "No token endpoint: the mock runs without client_id.")
    end
    local answer = self:_token_control(path, http.parse_query(query))
    if answer.status then return answer end
    return { status = 200, ctype = JSON_UTF8, body = encode(answer) }
  end
  if path == "/_mock/reset" then
    self._requests, self._connections, self._epoch, self._log = 0, 0, self._epoch + 1, {}
    self._flaky = {}
    if self._oauth then self._oauth:reset() end
  elseif path == "/_mock/requests" then
    return { status = 200, ctype = JSON_UTF8, body = encode(self._log) }
  elseif path ~= "/_mock/stats" then
    return error_response(404, "Not found", "No mock control endpoint at " .. path)
  end
  local stats = obj("connections", self._connections, "requests", self._requests)
  if self._oauth then json.append(stats, "token_requests", self._oauth.requests) end
  return { status = 200, ctype = JSON_UTF8, body = encode(stats) }
end

--- The response to a complete request.
function Server:_route(conn, req)
  local path, query = req.target:match("^([^?]*)%??(.*)$")
  if path:find("^/_mock/") then return self:_control(path, query) end
  if path == oauth.PATH and self._oauth then
    local res, logged_params = self._oauth:respond(req)
    self:_log_request(req, logged_params)
    return res
  end
  if path ~= M.ENDPOINT then
    return error_response(404, "Not found", "No resource at " .. path)
  end
  local params, names = http.parse_query(query)
  self:_record(conn, req, params, names)
  if req.method ~= "GET" then
    return error_response(405, "Method " .. req.method .. " not allowed",
      "getFinanceOffersForCustomer only supports GET.", { { "Allow", "GET" } })
  end
  local authorized, why = self:_authorized(req.headers.authorization)
  if not authorized and why then
    return error_response(401, "Invalid access token", why,
      { { "WWW-Authenticate", format('Bearer error="invalid_token", error_description="%s"', why) } })
  elseif not authorized then
    return error_response(401, "Full authentication is required to access this resource",
      "Send HTTP Basic credentials of a service subscriber, or a bearer token.",
      { { "WWW-Authenticate", 'Basic realm="kpayment-mock"' } })
  end

  local mode, value
  local fault = faults.requested(req.headers, params)
  if fault then
    local res
    res, mode, value = faults.apply(fault, params, self._flaky)
    if res then return res end
  end

  local missing = {}
  for _, name in ipairs(PARAMS) do
    if (params[name] or "") == "" then
      missing[#missing + 1] = { name .. " is required",
        "Query parameter " .. name .. " must be a non-empty string." }
    end
  end
  local res
  if #missing > 0 then
    res = { status = 400, ctype = JSON, body = data.error_body(400, missing) }
  else
    local opts, n = faults.body_options(mode, value)
    res = { status = 200, ctype = JSON_UTF8, body = self:_body(params, n or self._offers, opts) }
  end
  return faults.shape(res, mode, value)
end

--- The response to a request, or to a malformed one (req nil). Every API
-- response carries a request id, as the real API's gateway does.
function Server:_respond_to(conn, req, malformed)
  if not req then return error_response(400, "Malformed request", malformed) end
  local res = self:_route(conn, req)
  if not res.drop and req.target:find("^" .. M.ENDPOINT) then
    res.headers = res.headers or {}
    res.headers[#res.headers + 1] = { "X-Request-Id", "mock-" .. self._requests }
  end
  return res
end

---------------------------------------------------------------------------
-- The loop

-- The loop waits with socket.select, which takes descriptors below 1024
-- only (FD_SETSIZE): past this many connections, new ones wait in the
-- listen queue until one closes.
M.MAX_CONNECTIONS = 1000

function Server:_drop(conn)
  conn.sock:close()
  self._conns[conn.sock] = nil
  self._nconns = self._nconns - 1
end

function Server:_accept()
  while self._nconns < M.MAX_CONNECTIONS do
    local sock = self._server:accept()
    if not sock then return end
    self._conns[sock] = http.connection(sock)
    self._nconns = self._nconns + 1
  end
end

--- One iteration of the loop: waits at most timeout seconds (nil: until
-- something happens), then accepts, reads, writes and fires stall timers.
function Server:step(timeout)
  assert(self._server, "kpayment.mock: server is closed")
  local recvt, sendt = { self._nconns < M.MAX_CONNECTIONS and self._server or nil }, {}
  local wake
  for sock, conn in pairs(self._conns) do
    if conn.wake_at then
      wake = math.min(wake or math.huge, conn.wake_at)
    elseif conn:reading() then
      recvt[#recvt + 1] = sock
    end
    if conn:writing() then sendt[#sendt + 1] = sock end
  end
  if wake then
    local until_wake = math.max(0, wake - gettime())
    timeout = timeout and math.min(timeout, until_wake) or until_wake
  end
  local readable, writable = socket.select(recvt, sendt, timeout)
  for _, sock in ipairs(readable) do
    if sock == self._server then
      self:_accept()
    elseif self._conns[sock] then
      local conn = self._conns[sock]
      if conn:receive(self._respond) then self:_drop(conn) end
    end
  end
  for _, sock in ipairs(writable) do
    local conn = self._conns[sock]
    if conn and conn:flush() then self:_drop(conn) end
  end
  local now = gettime()
  for _, conn in pairs(self._conns) do
    if conn:wake(now, self._respond) then self:_drop(conn) end
  end
end

return M
