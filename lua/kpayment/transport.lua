--- Cores over another HTTP client than libcurl: a function given as the
-- `transport` option, or nginx's subrequests inside an OpenResty worker
-- (kpayment.transport_ngx).
--
-- A core here offers what the C core's client offers kpayment.async:
-- `start(url, fields, timeout_ms)` -> attempt (nil once closed),
-- `poll(ms)` -> attempts still running, `close()`, `closed()`, and the
-- field `sleep(seconds)` for retry waits; an attempt has `done()`,
-- `stats()`, `outcome()`, `release()` and `cancel()`.  Outcomes are built by the C
-- core (core.response_outcome, core.failure_outcome), so kinds, retry
-- decisions, messages and decoding are the libcurl transport's.
--
-- The transport function:
--
--     status, body, headers = send(req)     -- a complete response
--     nil, kind, message = send(req)        -- none arrived
--
-- `req` has `method` ("GET"), `url`, `headers` (a table: Accept,
-- Authorization when credentials are configured, User-Agent), `timeout`
-- (seconds for this attempt, nil for none) and `max_body` (bytes).
-- `status` is the HTTP status (integer), `body` a string, `headers` a table
-- of response headers (any case; values strings or lists), or nil.  `kind`
-- is "network", "timeout" or "tls".  A function that raises makes the call
-- raise.
--
-- Where attempts run: inside an nginx worker in a phase that can yield
-- (rewrite, access, content, timers), each attempt runs in a light thread
-- (`ngx.thread.spawn`), so many run at once and `poll` waits on a
-- semaphore; retries wait with `ngx.sleep`.  Elsewhere `poll` runs the
-- attempts started so far, one after another.
-- @module kpayment.transport

local core = require("kpayment.core")
local errors = require("kpayment.errors")

local setmetatable, type, pairs, next, tostring, error, pcall, rawget =
  setmetatable, type, pairs, next, tostring, error, pcall, rawget
local math_min, math_max, math_floor = math.min, math.max, math.floor
local string_lower, string_format = string.lower, string.format
local monotonic, response_outcome, failure_outcome =
  core.monotonic, core.response_outcome, core.failure_outcome

-- Attempt states.
local QUEUED, RUNNING, DONE, CANCELLED = "queued", "running", "done", "cancelled"

local M = {}

local FAILURE_KINDS = { network = true, timeout = true, tls = true }

-- Phases of an nginx worker where a light thread may yield (cosockets,
-- ngx.sleep, semaphores), and those that also allow subrequests.
M.YIELDING_PHASES = { rewrite = true, access = true, content = true, timer = true,
                      ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true }
M.SUBREQUEST_PHASES = { rewrite = true, access = true, content = true }

--- The `ngx` table of an nginx worker's Lua VM, or nil outside one.
function M.ngx()
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.get_phase) == "function" then return ngx end
  return nil
end

--- The phase of the nginx worker running this code, or nil outside nginx.
function M.phase()
  local ngx = M.ngx()
  return ngx and ngx.get_phase()
end

local function can_yield()
  local phase = M.phase()
  return phase ~= nil and M.YIELDING_PHASES[phase] == true
end

-- Blocks the process outside nginx's yielding phases; yields there (for a
-- millisecond at least: nginx's timers count whole ones).
local function sleep(seconds)
  if can_yield() then
    M.ngx().sleep(math_max(seconds, 0.001))
  else
    core.sleep(seconds)
  end
end

local Attempt = {}
Attempt.__index = Attempt
Attempt.__name = "kpayment.transport.Attempt"

local Core = {}
Core.__index = Core
Core.__name = "kpayment.transport.Core"

-- One value of a response header, any case; the first of a list.
local function header(headers, name)
  if type(headers) ~= "table" then return nil end
  for k, v in pairs(headers) do
    if type(k) == "string" and string_lower(k) == name then
      if type(v) == "table" then v = v[1] end
      if type(v) == "string" then return v end
      return nil
    end
  end
  return nil
end

-- The attempt leaves the core's running set, whatever ended it.
local function retire(self)
  local c = self._core
  if c._running[self] then
    c._running[self] = nil
    c._nrunning = c._nrunning - 1
  end
end

-- What the transport function returned, checked, kept until the outcome
-- is built; nil, message for a return that breaks the contract.
local function finish(self, status, body, headers, elapsed)
  local c = self._core
  if status == nil then
    local kind, message = body, headers
    if not FAILURE_KINDS[kind] then
      return nil, "failure kind 'network', 'timeout' or 'tls' expected, got " .. tostring(kind)
    end
    self._kind, self._message = kind, message ~= nil and tostring(message) or kind
  else
    if type(status) ~= "number" or status % 1 ~= 0 or status < 100 or status > 999 then
      return nil, "HTTP status (an integer from 100 to 999) expected, got " .. tostring(status)
    end
    if type(body) ~= "string" then
      return nil, "body (a string) expected, got " .. type(body)
    end
    if headers ~= nil and type(headers) ~= "table" then
      return nil, "headers (a table or nil) expected, got " .. type(headers)
    end
    self._status, self._bytes = status, #body
    self._retry_after = header(headers, "retry-after")
    self._request_id = header(headers, "x-request-id") or header(headers, "x-correlation-id")
    if #body > c._max_body then
      self._kind = "body_too_large"
    else
      self._body = body
    end
  end
  self._elapsed = elapsed
  self._state = DONE
  retire(self)
  c._news = c._news + 1
  return true
end

-- Run the transport function for one attempt; the first error it raises
-- (or a contract breach) is kept for `poll` to raise.
local function run(self)
  local c = self._core
  self._state = RUNNING
  local timeout = self._timeout_ms >= 0 and self._timeout_ms / 1000 or nil
  local headers = {}
  for k, v in pairs(c._headers) do headers[k] = v end
  local req = { method = "GET", url = self._url, headers = headers, timeout = timeout,
                max_body = c._max_body }
  local t0 = monotonic()
  local ok, status, body, hdrs = pcall(c._send, req)
  if self._state ~= RUNNING then return end   -- cancelled, timed out or closed meanwhile
  local why
  if not ok then
    if errors.is_memory_error(status) then
      why = status
    else
      why = "kpayment: transport function raised: " .. tostring(status)
    end
  else
    local done
    done, why = finish(self, status, body, hdrs, monotonic() - t0)
    if done then return end
    why = "kpayment: transport function returned a bad response: " .. why
  end
  self._state, self._raised = CANCELLED, why
  retire(self)
  if c._raised == nil then c._raised, c._raised_by = why, self end
end

-- Body of a light thread: run, then wake whoever waits in `poll`.
local function thread_main(self)
  run(self)
  self._core._sema:post(1)
end

-- Raise what the transport function raised for this attempt, once (from
-- done() or the core's poll, whichever comes first).
local function raise_attempt(self)
  local why, c = self._raised, self._core
  self._raised = nil
  if c._raised_by == self then c._raised, c._raised_by = nil, nil end
  error(why, 0)
end

--- done() -> finished (or cancelled), and whether with a complete 2xx.
function Attempt:done()
  if self._raised then raise_attempt(self) end
  local st = self._state
  if st == QUEUED or st == RUNNING then return false, false end
  local s = self._status
  return true, st == DONE and self._kind == nil and s >= 200 and s <= 299
end

--- stats() -> status (nil when no response came), seconds, body bytes,
-- request id (nil when none), as the C core's attempts give them.
function Attempt:stats()
  return self._status, self._elapsed or 0, self._bytes or 0, self._request_id
end

--- The outcome table (see kp_outcome.h), built once; raises while running.
function Attempt:outcome()
  local st = self._state
  if st == QUEUED or st == RUNNING then
    error("request still running (poll until done())", 2)
  end
  if self._released then error("outcome already released", 2) end
  local o = self._outcome
  if o then return o end
  if st == CANCELLED then
    o = failure_outcome("cancelled")
  elseif self._kind then
    o = failure_outcome(self._kind, self._message, self._status, self._retry_after,
                        self._request_id, self._elapsed)
    o.curl_code = nil   -- no libcurl was involved
  else
    o = response_outcome(self._status, self._body, self._fields, self._core._snippet,
                         self._retry_after, self._request_id, self._elapsed)
  end
  if self._outcome then return self._outcome end   -- built by a finalizer meanwhile
  self._outcome, self._body = o, nil
  return o
end

--- Forget the outcome once the caller has it.
function Attempt:release()
  if self._outcome then
    self._outcome, self._released = nil, true
  end
end

--- Stop waiting for the attempt.  A transfer already under way in a light
-- thread is left to finish (nginx cannot kill a thread with a pending
-- subrequest); its result is dropped.  A finished attempt whose outcome
-- was not taken becomes cancelled, as in the C core.
function Attempt:cancel()
  local st = self._state
  if st == QUEUED or st == RUNNING or (st == DONE and not self._outcome and not self._released) then
    self._state, self._body = CANCELLED, nil
    retire(self)
  end
end

function Attempt.__tostring(self)
  return "kpayment.Request (" .. self._state .. ")"
end

--- start(url, fields, timeout_ms) -> attempt, or nil once closed.
function Core:start(url, fields, timeout_ms)
  if self._closed then return nil end
  if self._check then self._check() end
  timeout_ms = timeout_ms or -1
  local a = setmetatable({ _core = self, _url = url, _fields = fields, _timeout_ms = timeout_ms,
                           _state = QUEUED }, Attempt)
  self._running[a] = true
  self._nrunning = self._nrunning + 1
  if can_yield() then
    local ngx = M.ngx()
    a._state = RUNNING
    a._deadline = timeout_ms >= 0 and monotonic() + timeout_ms / 1000 or nil
    if not self._sema then self._sema = assert(require("ngx.semaphore").new(0)) end
    local thread, err = ngx.thread.spawn(thread_main, a)
    if not thread then
      a:cancel()
      error("kpayment: cannot start a light thread: " .. tostring(err), 0)
    end
  else
    self._queue[#self._queue + 1] = a
  end
  return a
end

-- Attempts in light threads whose time ran out end as timeouts; returns
-- the seconds to the next such end (nil for none).
local function expire(self)
  local now, soonest, running = monotonic(), nil, self._running
  local a = next(running)
  while a ~= nil do   -- not pairs: runs inside finalizers (see async.live_list)
    local at = a._deadline
    if at and a._state == RUNNING then
      if now >= at then
        finish(a, nil, "timeout", string_format("operation timed out after %d milliseconds",
                                                a._timeout_ms), a._timeout_ms / 1000)
      elseif not soonest or at < soonest then
        soonest = at
      end
    end
    a = next(running, a)
  end
  return soonest and soonest - now
end

local function raise_kept(self)
  if self._raised_by then raise_attempt(self._raised_by) end
end

--- poll(ms) -> attempts still running: runs the queued ones, then waits up
-- to ms (1 at least) for one in a light thread to end (not at all if one
-- ended since the last poll).
function Core:poll(ms)
  ms = ms or 0
  raise_kept(self)
  while #self._queue > 0 and not self._closed do
    local a = table.remove(self._queue, 1)
    if a._state == QUEUED then run(a) end
    raise_kept(self)
  end
  if self._sema then
    local left = expire(self)
    if self._news == 0 and self._nrunning > 0 and can_yield() then
      -- poll(0) yields too (a millisecond): a loop of poll(0) calls must
      -- let the light threads run, or it would wait for them forever
      local wait = math_max(ms / 1000, 0.001)
      if left then wait = math_min(wait, math_max(left, 0.001)) end
      self._sema:wait(wait)
      expire(self)
    end
    while self._sema:count() > 0 do self._sema:wait(0) end   -- woken: drop the rest
  end
  self._news = 0
  raise_kept(self)
  return self._closed and 0 or self._nrunning
end

--- close(): every attempt not finished ends cancelled.
function Core:close()
  if self._closed then return end
  self._closed = true
  local running = self._running
  local a = next(running)
  while a ~= nil do   -- not pairs: see expire
    a:cancel()
    a = next(running, a)
  end
  self._queue = {}
end

function Core:closed()
  return self._closed
end

function Core.__tostring(self)
  return "kpayment.transport (" .. self._name .. (self._closed and ", closed" or "") .. ")"
end

--- The request headers of configuration `cfg`: what libcurl would send.
function M.headers(cfg)
  local h = { Accept = "application/json" }
  if cfg.bearer_token then
    h.Authorization = "Bearer " .. cfg.bearer_token
  elseif cfg.username then
    h.Authorization = "Basic " .. errors.base64(cfg.username .. ":" .. (cfg.password or ""))
  end
  h["User-Agent"] = (cfg.user_agent and cfg.user_agent .. " " or "") .. "kpayment/" .. core._VERSION
    .. " (" .. (rawget(_G, "jit") and _G.jit.version or _VERSION) .. ")"
  return h
end

--- A core over `send` (see the module's header) for the resolved options
-- `cfg` (plus `snippet`, as the client computes it).  `check`, when given,
-- runs before each attempt starts and may raise.  `name` shows in tostring.
function M.new(cfg, send, name, check)
  return setmetatable({
    _send = send, _check = check, _name = name or "function",
    _headers = M.headers(cfg),
    _max_body = cfg.max_body or 64 * 1024 * 1024,
    _snippet = math_floor(cfg.snippet or core.LIMITS.snippet),
    _queue = {}, _running = {}, _nrunning = 0, _news = 0,
    _closed = false,
    sleep = sleep,
  }, Core)
end

--- The transport a client without the `transport` option gets here:
-- "ngx" (subrequests) inside an nginx worker, "curl" otherwise.
function M.default()
  local ngx = M.ngx()
  if ngx and type(ngx.location) == "table" and type(ngx.location.capture) == "function" then
    return "ngx"
  end
  return "curl"
end

--- The core for a client: the `transport` function when given, nginx's
-- subrequests inside an nginx worker, libcurl otherwise.
function M.select(cfg)
  if cfg.transport then return M.new(cfg, cfg.transport, "function") end
  if M.default() == "ngx" then return require("kpayment.transport_ngx").new(cfg) end
  return core.new(cfg)
end

return M
