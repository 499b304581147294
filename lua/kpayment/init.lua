--- kpayment: a dealer customer's finance offers from myKaarma's payments
-- API, as native Lua tables.
--
--     local kpayment = require("kpayment")
--     local client = kpayment.new{ username = "…", password = "…", skin = "…" }
--     local offers, err = client:get_offers{ customer_uuid = "…", dealer_uuid = "…" }
--
-- Misuse (a bad option or parameter) raises; failures of the call itself
-- return `nil, err` with `err` a table (see kpayment.errors).
-- @module kpayment

local core = require("kpayment.core")
local request = require("kpayment.request")
local response = require("kpayment.response")
local errors = require("kpayment.errors")
local offer = require("kpayment.offer")

local setmetatable, getmetatable, pairs, type, tostring, error =
  setmetatable, getmetatable, pairs, type, tostring, error
local os_getenv = os.getenv
local math_floor = math.floor
local monotonic = core.monotonic

local M = {
  _VERSION = core._VERSION,
  --- Stands for JSON null inside arrays (also `kpayment.core.null`).
  null = core.null,
  --- JSON text to Lua values, as used on responses (`kpayment.core.decode`).
  decode = core.decode,
  --- Epoch seconds of an ISO-8601 timestamp, or nil.
  parse_time = offer.parse_time,
  --- True for the error tables this module returns.
  is_error = errors.is,
  DEFAULT_BASE_URL = "https://api.mykaarma.com",
}

-- Every option new{} accepts; anything else is a mistake worth raising.
local OPTIONS = {
  base_url = "string", username = "string", password = "string", bearer_token = "string",
  skin = "string", locale = "string", timeout = "number", connect_timeout = "number",
  max_body = "number", ca_file = "string", proxy = "string", user_agent = "string",
  retries = "number", deadline = "number", insecure = "boolean", follow_redirects = "boolean",
  debug = "boolean", log_personal_data = "boolean", logger = "function",
}

local ENV = {
  base_url = "KPAYMENT_BASE_URL", skin = "KPAYMENT_SKIN", locale = "KPAYMENT_LOCALE",
}
local ENV_AUTH = {
  username = "KPAYMENT_USERNAME", password = "KPAYMENT_PASSWORD", bearer_token = "KPAYMENT_BEARER_TOKEN",
}

-- Client -> strings to scrub from errors.  Kept off the client table, so
-- neither tostring nor a table dump shows them.
local secrets = setmetatable({}, { __mode = "k" })

local Client = {}
Client.__index = Client
Client.__name = "kpayment.Client"

local function from_env(cfg, names)
  for k, var in pairs(names) do
    local v = os_getenv(var)
    if cfg[k] == nil and v ~= nil and v ~= "" then cfg[k] = v end
  end
end

-- Explicit options over the environment over defaults; raises at `level`
-- on anything wrong, naming the option.
local function resolve(opts, level)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("kpayment: bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", level)
  end
  local cfg = {}
  for k, v in pairs(opts) do
    local want = OPTIONS[k]
    if want == nil then error("kpayment: unknown option '" .. tostring(k) .. "'", level) end
    if type(v) ~= want then
      error("kpayment: bad option '" .. k .. "' (" .. want .. " expected, got " .. type(v) .. ")", level)
    end
    cfg[k] = v
  end
  from_env(cfg, ENV)
  -- Credentials come as a set: explicit ones replace the environment's.
  if cfg.username == nil and cfg.password == nil and cfg.bearer_token == nil then
    from_env(cfg, ENV_AUTH)
  end
  local base, msg = request.check_base_url(cfg.base_url or M.DEFAULT_BASE_URL)
  if not base then error("kpayment: " .. msg, level) end
  cfg.base_url = base
  if cfg.locale == nil then cfg.locale = "en-US" end
  for _, k in pairs({ "skin", "locale" }) do
    if cfg[k] ~= nil then
      local ok, why = request.check_value(k, cfg[k])
      if not ok then error("kpayment: " .. why:gsub("parameter", "option"), level) end
    end
  end
  if cfg.bearer_token and (cfg.username or cfg.password) then
    error("kpayment: give either username/password or bearer_token, not both", level)
  end
  if (cfg.username == nil) ~= (cfg.password == nil) then
    error("kpayment: username and password go together", level)
  end
  for _, k in pairs({ "username", "password", "bearer_token", "proxy", "ca_file", "user_agent" }) do
    if cfg[k] ~= nil and cfg[k]:find("[%z\1-\31\127]") then
      error("kpayment: bad option '" .. k .. "' (contains control characters)", level)
    end
  end
  for _, k in pairs({ "timeout", "connect_timeout" }) do
    if cfg[k] ~= nil and not (cfg[k] >= 0 and cfg[k] <= 86400) then
      error("kpayment: bad option '" .. k .. "' (seconds from 0 to 86400 expected)", level)
    end
  end
  if cfg.max_body ~= nil and not (cfg.max_body >= 1 and cfg.max_body < 2 ^ 52) then
    error("kpayment: bad option 'max_body' (a positive number of bytes expected)", level)
  end
  if cfg.retries ~= nil and (math.type(cfg.retries) ~= "integer" or cfg.retries < 0 or cfg.retries > 100) then
    error("kpayment: bad option 'retries' (an integer from 0 to 100 expected)", level)
  end
  if cfg.deadline ~= nil and not (cfg.deadline > 0 and cfg.deadline <= 86400) then
    error("kpayment: bad option 'deadline' (seconds from 0 to 86400 expected)", level)
  end
  return cfg
end

-- The default logger: one line on stderr.
local function stderr_logger(level, message)
  io.stderr:write("kpayment [", level, "] ", message, "\n")
end

--- Create a client.  Options: `base_url`, `username`/`password` or
-- `bearer_token`, `skin`, `locale`, `timeout`, `connect_timeout`,
-- `max_body`, `ca_file`, `proxy`, `user_agent` (see README).
-- @tparam[opt] table opts
-- @treturn Client
function M.new(opts)
  local cfg = resolve(opts, 3)
  local timeout = cfg.timeout or 30
  local self = setmetatable({
    base_url = cfg.base_url,
    _defaults = { skin = cfg.skin, locale = cfg.locale },
    _core = core.new(cfg),
    _watch = {},   -- started requests with an on_done callback
    _retries = cfg.retries or 2,
    -- one bound for all attempts together; by default the timeout
    _deadline = cfg.deadline or (timeout > 0 and timeout or math.huge),
    _timeout = timeout,
    _insecure = cfg.insecure == true,
    _debug = cfg.debug == true,
    _personal = cfg.log_personal_data == true,
    _log = cfg.logger or stderr_logger,
  }, Client)
  -- Secrets shorter than 4 bytes are not scrubbed: they would match
  -- ordinary words of libcurl's messages.
  local s = {}
  for _, k in pairs({ "password", "bearer_token" }) do
    if cfg[k] and #cfg[k] >= 4 then s[#s + 1] = cfg[k] end
  end
  if cfg.username and cfg.password then
    -- what a server would echo back of an Authorization: Basic header
    s[#s + 1] = errors.base64(cfg.username .. ":" .. cfg.password)
  end
  secrets[self] = { list = s, auth = cfg.username ~= nil or cfg.bearer_token ~= nil }
  return self
end

-- Keys a parameter table may carry besides the query parameters.
local GET_KEYS = { fields = true }
local START_KEYS = { fields = true, on_done = true }

-- The URL and projection of one parameter table; raises at `level`.
local function prepare(self, params, level, extra, what)
  if getmetatable(self) ~= Client then
    error("kpayment: " .. what .. " must be called as client:" .. what .. "{…}", level)
  end
  local url, msg = request.url(self.base_url, params, self._defaults, extra)
  if not url then error("kpayment: " .. msg, level) end
  local fields = params.fields
  if fields ~= nil then
    fields, msg = request.check_fields(fields)
    if not fields then error("kpayment: " .. msg, level) end
  end
  return url, fields
end

local BACKOFF_BASE, BACKOFF_CAP = 0.25, 8   -- seconds
local MIN_ATTEMPT = 0.1   -- a retry needs at least this long before the deadline

-- "J*** G***", "******1234", "j***@example.com": enough to tell records apart.
local function mask(v, keep_tail)
  if type(v) ~= "string" or v == "" then return v end
  if keep_tail then return ("*"):rep(math.max(#v - 4, 0)) .. v:sub(-4) end
  local user, domain = v:match("^([^@]*)@(.+)$")
  if user then return user:sub(1, 1) .. "***@" .. domain end
  return (v:gsub("(%S)%S*", "%1***"))
end

-- One debug line for a response: status, time and a summary per offer, with
-- customer names, phones and emails masked unless log_personal_data.
local function describe_offers(self, offers)
  local parts = {}
  for i = 1, math.min(#offers, 5) do
    local o = offers[i]
    if type(o) ~= "table" then   -- not an offer: shown as it is, never a failure
      parts[i] = tostring(o)
    else
      local c = type(o.customer) == "table" and o.customer or {}
      local name, phone, email = o:customer_name(), c.phone, c.email
      if not self._personal then name, phone, email = mask(name), mask(phone, true), mask(email) end
      parts[i] = string.format("#%s %s customer=%s phone=%s email=%s", tostring(o.id), tostring(o.status),
        tostring(name), tostring(phone), tostring(email))
    end
  end
  return table.concat(parts, "; ")
end

local function log_attempt(self, url, attempt)
  if self._insecure then
    self._log("warn", "TLS verification is off (insecure = true): " .. url)
  end
  if self._debug then
    self._log("debug", string.format("GET %s (attempt %d) Authorization: %s", url, attempt,
      secrets[self].auth and "[redacted]" or "(none)"))
  end
end

-- A core outcome (see kpayment.core's client:request) as offers, or nil
-- and an error with the client's secrets scrubbed; both carry how many
-- attempts were made and what the response said (request id, time).
local function outcome(self, started, attempts, status, a, b, c, d, info)
  local offers, err
  if status == nil then
    err = response.transport_error(a, b, c, d)
  else
    offers, err = response.from_response(status, a, b, c)
  end
  info = info or {}
  local meta = offers and offer.meta(offers) or err
  meta.attempts = attempts
  meta.request_id = info.request_id
  meta.total_time = monotonic() - started
  if err then errors.redact(err, secrets[self].list) end
  if self._debug then
    self._log("debug", offers
      and string.format("%d in %.1f ms, %d offer(s): %s", status, info.total_time * 1000, #offers,
        describe_offers(self, offers))
      or tostring(err))
  end
  return offers, err, info
end

-- Seconds to wait before another attempt after err, or nil for none:
-- exponential backoff with full jitter, at least what Retry-After asks
-- (both capped), and only while the deadline leaves room for an attempt.
local function backoff(self, err, attempts, info, deadline_at)
  if not err.retryable or attempts > self._retries then return nil end
  local wait = math.random() * math.min(BACKOFF_CAP, BACKOFF_BASE * 2 ^ (attempts - 1))
  local asked = response.retry_after_seconds(info and info.retry_after)
  if asked then wait = math.max(wait, math.min(BACKOFF_CAP, asked)) end
  if deadline_at - monotonic() - wait < MIN_ATTEMPT then return nil end
  return wait
end

-- The timeout for an attempt: the configured one, cut to the deadline.
local function attempt_timeout(self, deadline_at)
  local left = deadline_at - monotonic()
  if self._timeout > 0 and self._timeout < left then left = self._timeout end
  if left == math.huge then return -1 end
  return math_floor(math.max(left, 0.001) * 1000)
end

local function get(self, params, level)
  local url, fields = prepare(self, params, level + 1, GET_KEYS, "get_offers")
  local started = monotonic()
  local deadline_at = started + self._deadline
  local attempts = 0
  while true do
    attempts = attempts + 1
    log_attempt(self, url, attempts)
    local offers, err, info = outcome(self, started, attempts,
      self._core:request(url, fields, attempt_timeout(self, deadline_at)))
    if offers then return offers end
    local wait = backoff(self, err, attempts, info, deadline_at)
    if not wait then return nil, err end
    core.sleep(wait)
  end
end

--- Fetch a customer's finance offers, retrying what is worth retrying.
-- @tparam table params `customer_uuid`, `dealer_uuid`, and optionally
-- `skin`, `locale` (over the client's defaults) and `fields` (a list of
-- dotted paths inside each offer: only those are decoded)
-- @return an offer list (see `offers:meta()`), or nil and an error table
function Client:get_offers(params)
  local offers, err = get(self, params, 3)
  return offers, err
end

-- Run a user callback; an error in it is logged, not raised, so the
-- client and the other requests go on.
local function call_back(self, what, fn, ...)
  local ok, msg = pcall(fn, ...)
  if not ok then self._log("error", what .. " callback failed: " .. tostring(msg)) end
end

--- A request started by `client:start_offers`.
local Request = {}
Request.__index = Request
Request.__name = "kpayment.Request"

local function launch(req)
  local c = req._client
  req._attempts = req._attempts + 1
  log_attempt(c, req._url, req._attempts)
  req._core = c._core:start(req._url, req._fields, attempt_timeout(c, req._deadline_at))
end

local function new_request(self, url, fields, on_done)
  local now = monotonic()
  local req = setmetatable({ _client = self, _url = url, _fields = fields, _on_done = on_done,
                             _attempts = 0, _started = now, _deadline_at = now + self._deadline,
                             _taken = false }, Request)
  launch(req)
  return req
end

--- True once the request has finished (with offers or an error) or was
-- cancelled.  Never blocks: a failed attempt that is worth retrying waits
-- for its backoff here, as a timer, and starts again when it has run out.
function Request:done()
  if self._taken then return true end
  if self._retry_at then
    if monotonic() < self._retry_at then return false end
    self._retry_at = nil
    launch(self)
    return false
  end
  local cr = self._core
  if not cr:done() then return false end
  local status, code = cr:status()
  if code == 0 and status >= 200 and status <= 299 then return true end   -- decoded in result()
  local offers, err, info = outcome(self._client, self._started, self._attempts, cr:result())
  local wait = err and backoff(self._client, err, self._attempts, info, self._deadline_at)
  if wait then
    self._retry_at = monotonic() + wait
    return false
  end
  self._offers, self._err, self._taken = offers, err, true
  return true
end

--- The offers, or nil and an error, once `done()`; decodes the response
-- on the first call (raises while the request is still running).
function Request:result()
  if not self:done() then
    error("kpayment: request still running (poll the client until done())", 2)
  end
  if not self._taken then
    self._offers, self._err = outcome(self._client, self._started, self._attempts, self._core:result())
    self._taken = true
  end
  return self._offers, self._err
end

--- Abandon the request: its transfer stops and its connection is closed;
-- `result()` then reports an error of kind "cancelled".
function Request:cancel()
  if self._taken then return end
  self._core:cancel()
  if self._retry_at then   -- between attempts: nothing left in the core
    self._retry_at = nil
    self._err = response.transport_error("cancelled", "request cancelled", -1)
    self._err.attempts = self._attempts
    self._taken = true
  end
end

Request.__close = Request.cancel

function Request.__tostring(self)
  return "kpayment.Request (" .. (self._taken and "done" or self._retry_at and "waiting to retry"
    or self._core:done() and "done" or "running") .. ")"
end

-- Seconds until the earliest retry timer among reqs, or nil.
local function next_timer(reqs, pick)
  local soonest
  for i = 1, #reqs do
    local at = pick(reqs[i])._retry_at
    if at and (not soonest or at < soonest) then soonest = at end
  end
  return soonest and math.max(soonest - monotonic(), 0)
end

local function self_req(r) return r end

--- Start fetching offers and return at once with a `Request`; the work
-- happens in `client:poll`.  With `on_done = function(offers, err, req)`
-- in the parameters the client keeps the request until it is done and
-- calls it from `poll`; without, the caller keeps the request, and one
-- that is garbage collected while running is cancelled.
function Client:start_offers(params)
  local url, fields = prepare(self, params, 3, START_KEYS, "start_offers")
  local on_done = params.on_done
  if on_done ~= nil and type(on_done) ~= "function" then
    error("kpayment: bad parameter 'on_done' (function expected, got " .. type(on_done) .. ")", 2)
  end
  local req = new_request(self, url, fields, on_done)
  if on_done then self._watch[#self._watch + 1] = req end
  return req
end

--- Do the work that is ready for every request of this client: network
-- I/O, waiting at most `ms` milliseconds (default 0: never waits) for
-- some, retry timers, then decoding responses that had finished before
-- this call and have an `on_done` callback, and calling it.  One such
-- response is decoded per call, more only while `ms` has not run out, so a
-- `poll(0)` in a frame costs its network work or one decode, not both.  An
-- error raised by a callback is logged, not raised.
-- @treturn integer requests still pending (running, waiting to retry, or
-- done with a callback not yet called)
function Client:poll(ms)
  ms = ms or 0
  if type(ms) ~= "number" or ms ~= ms or ms < 0 then
    error("kpayment: bad argument #1 to 'poll' (milliseconds >= 0 expected)", 2)
  end
  local deadline = monotonic() + ms / 1000
  local watch = self._watch
  -- Deliver only what had finished before this call's network work, so a
  -- poll(0) costs that work or one decode, never both: the call in which a
  -- large body arrives leaves its decoding to the next one.
  local ready = {}
  for i = 1, #watch do
    if watch[i]:done() then ready[#ready + 1] = watch[i] end
  end
  local running = self._core:poll(math_floor(ms))
  if running == 0 and ms > 0 then
    -- nothing on the wire: a retry timer is the only thing worth waiting for
    local t = next_timer(watch, self_req)
    if t then core.sleep(math.min(t, deadline - monotonic() > 0 and deadline - monotonic() or 0)) end
  end
  for d = 1, #ready do
    if d > 1 and monotonic() >= deadline then break end
    local req = ready[d]
    -- the result first: if it raises (out of memory), the request stays
    -- watched and the next poll delivers it
    local offers, err = req:result()
    for i = 1, #watch do
      if watch[i] == req then
        table.remove(watch, i)
        break
      end
    end
    call_back(self, "on_done", req._on_done, offers, err, req)
  end
  local pending = running
  for k = 1, #watch do
    if watch[k]._retry_at or watch[k]._taken or watch[k]._core:done() then pending = pending + 1 end
  end
  return pending
end

--- Fetch offers for many customers at once over the client's connections:
-- at most `concurrency` requests in flight (default 8), each retried as
-- `get_offers` would.  Returns a list in input order of `{ offers = … }` or
-- `{ err = … }`, so one failing customer never hides the others.
-- `on_progress(done, total)` is called after each (its errors are logged).
-- @tparam table list parameter tables, as for `get_offers`
-- @tparam[opt] table opts `concurrency`, `on_progress`
function Client:get_offers_many(list, opts)
  if getmetatable(self) ~= Client then
    error("kpayment: get_offers_many must be called as client:get_offers_many(…)", 2)
  end
  if type(list) ~= "table" then
    error("kpayment: bad argument #1 to 'get_offers_many' (table expected, got " .. type(list) .. ")", 2)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "concurrency" and k ~= "on_progress" then
      error("kpayment: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  local concurrency, on_progress = opts.concurrency or 8, opts.on_progress
  if math.type(concurrency) ~= "integer" or concurrency < 1 or concurrency > 1024 then
    error("kpayment: bad option 'concurrency' (an integer from 1 to 1024 expected)", 2)
  end
  if on_progress ~= nil and type(on_progress) ~= "function" then
    error("kpayment: bad option 'on_progress' (function expected)", 2)
  end
  -- Every entry is checked before anything is sent.
  local n = #list
  local urls, fields = {}, {}
  for i = 1, n do
    local ok, url, f = pcall(prepare, self, list[i], 0, GET_KEYS, "get_offers_many")
    if not ok then error((url:gsub("^kpayment: ", "kpayment: list[" .. i .. "]: ")), 2) end
    urls[i], fields[i] = url, f
  end
  local results, inflight, nextup, finished = {}, {}, 1, 0
  local function entry_req(e) return e[2] end
  while finished < n do
    while #inflight < concurrency and nextup <= n do
      inflight[#inflight + 1] = { nextup, new_request(self, urls[nextup], fields[nextup]) }
      nextup = nextup + 1
    end
    -- Wait for the wire (returning as soon as anything happened), but no
    -- longer than the next retry timer; with nothing on the wire, sleep to it.
    local t = next_timer(inflight, entry_req)
    local running = self._core:poll(t and math_floor(math.min(t, 1) * 1000) or 1000)
    if running == 0 and t then
      t = next_timer(inflight, entry_req)
      if t then core.sleep(t) end
    end
    local k = 1
    while k <= #inflight do
      local entry = inflight[k]
      if entry[2]:done() then
        table.remove(inflight, k)
        local offers, err = entry[2]:result()
        results[entry[1]] = offers and { offers = offers } or { err = err }
        finished = finished + 1
        if on_progress then call_back(self, "on_progress", on_progress, finished, n) end
      else
        k = k + 1
      end
    end
  end
  return results
end

--- Release the connection and its buffers now rather than at collection.
function Client:close()
  self._core:close()
end

Client.__close = Client.close

function Client.__tostring(self)
  return "kpayment.Client (" .. self.base_url .. ")"
end

local default_opts, default_client = nil, nil

--- Set the options of the module-level client used by `kpayment.get_offers`
-- (validated now; the client itself is made on first use).
function M.configure(opts)
  resolve(opts, 3)
  if default_client then default_client:close() end
  default_opts, default_client = opts, nil
end

--- `client:get_offers` on a default client built from `configure{}` or the
-- environment.
function M.get_offers(params)
  if default_client == nil then default_client = M.new(default_opts) end
  local offers, err = get(default_client, params, 3)
  return offers, err
end

M.Client, M.Request = Client, Request
return M
