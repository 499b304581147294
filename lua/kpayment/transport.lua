--- The cores a client runs on, and the one that runs a user's `transport`
-- function.
--
-- A core offers kpayment.async what the C core's libcurl client offers:
-- `start(url, fields, timeout_ms [, extra])` -> attempt (nil once closed),
-- `poll(ms, budget_ms [, mark])` -> attempts still under way,
-- `wait(attempt, ms)`, `close()`, `closed()`, and the field `sleep` for
-- retry waits.  An attempt is always the C core's request object
-- (kp_request.c): its state, outcome, decoding and cancellation are the
-- same whatever sends it.  A core over another HTTP client only sends each
-- attempt and reports how it went into that object (`feed`, `response`
-- or `fail`).
--
-- `extra` (checked by the C core: see `Client:start` in kpayment.core)
-- makes the attempt a POST with a body, or gives it its own
-- Authorization.  A sender reads what it checked with `M.extra(core,
-- attempt)`: nil for a plain GET with the client's headers, else `{ method,
-- body, content_type, authorization }` (authorization: nil for the
-- client's, "" for none).  A body and an authorization may be secrets:
-- nothing here logs them or puts them in a message.
--
-- Here: `M.new(cfg, send, runner)` builds such a core over `send(core,
-- attempt, url, timeout_ms)`, with a runner that decides where attempts
-- run (this module's runs each one, in turn, inside `poll` or `wait`;
-- kpayment.nginx's runs them in the nginx request that waits for them).
-- `M.select(cfg)` picks the core for a client.
--
-- The transport function (the `transport` option):
--
--     status, body, headers = send(req)     -- a complete response
--     nil, kind, message = send(req)        -- none arrived
--
-- `req` has `method` ("GET", or "POST" when the attempt's `extra` says
-- so), `url`, `headers` (a table: Accept, Authorization when credentials
-- are configured or the attempt gives its own (which then replaces the
-- client's), User-Agent, and a POST's Content-Type when given), `body` (a
-- POST's body, any bytes, "" for an empty one; nil for a GET), `timeout`
-- (seconds for this attempt, nil for none) and `max_body` (bytes).  A
-- POST's Content-Length is the function's to send, from #body; a POST
-- follows no redirect.  `body` and `headers.Authorization` may hold
-- secrets: keep them out of logs.
-- `status` is the HTTP status (integer), `body` a string, `headers` a table
-- of response headers (any case; values strings or lists), or nil.  `kind`
-- is "network", "timeout" or "tls".  A function that raises makes the call
-- raise.
-- @module kpayment.transport

local core = require("kpayment.core")
local errors = require("kpayment.errors")

local setmetatable, type, pairs, error, pcall, rawget =
  setmetatable, type, pairs, error, pcall, rawget
local math_floor = math.floor

local M = {}

--- The `ngx` table of an nginx worker's Lua VM, or nil outside one.
function M.ngx()
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.get_phase) == "function" then return ngx end
  return nil
end

local Core = {}
Core.__index = Core
Core.__name = "kpayment.transport.Core"

--- start(url, fields, timeout_ms, extra, direct) -> attempt, or nil once
-- closed.  The C core checks `extra`; what it says is kept for the sender,
-- a copy (a caller's later changes to the table do not matter).  `direct`:
-- the attempt goes to the URL's own host even when the core's attempts go
-- through nginx's upstream (the subrequest transport): the token request.
function Core:start(url, fields, timeout_ms, extra, direct)
  local a = self._c:start(url, fields, timeout_ms, extra)
  if a == nil then return nil end
  if extra ~= nil or direct then
    local method = extra and extra.method or "GET"
    if method == "POST" or direct or extra.authorization ~= nil then
      self._extra[a] = { method = method, body = extra and extra.body or (method == "POST" and "" or nil),
                         content_type = extra and extra.content_type,
                         authorization = extra and extra.authorization, direct = direct == true }
    end
  end
  self._runner.start(self, a, url, timeout_ms or -1)
  return a
end

--- What attempt `a` of core `c` sends besides a plain GET with the
-- client's headers (see the module's header), or nil.
function M.extra(c, a)
  return c._extra[a]
end

--- The request headers attempt `a` of core `c` sends, a new table: the
-- client's, its Authorization replaced as the attempt says, and a POST's
-- Content-Type.
function M.headers(c, a)
  local headers = {}
  for k, v in pairs(c._headers) do headers[k] = v end
  local x = c._extra[a]
  if x then
    if x.authorization ~= nil then
      headers.Authorization = x.authorization ~= "" and x.authorization or nil
    end
    headers["Content-Type"] = x.content_type
  end
  return headers
end

--- poll(ms, budget_ms, mark) -> attempts under way (in the caller's
-- scope, inside nginx): runs or waits for them, at most ms milliseconds,
-- returning as soon as one ends (or one ended since `mark`).
function Core:poll(ms, _, mark)
  if self._c:closed() then return 0 end
  return self._runner.poll(self, ms or 0, mark)
end

--- mark() -> a token for poll: attempts that end after it make poll
-- return at once.
function Core:mark()
  return self._runner.mark(self)
end

--- wait(attempt, ms): until that attempt ends, at most ms milliseconds.
function Core:wait(a, ms)
  if not a:done() then self._runner.wait(self, a, ms) end
end

--- close(): every attempt not finished ends cancelled.
function Core:close()
  self._c:close()
  if self._runner.close then self._runner.close(self) end
end

function Core:closed()
  return self._c:closed()
end

function Core.__tostring(self)
  return "kpayment.transport (" .. self._name .. (self._c:closed() and ", closed" or "") .. ")"
end

-- The runner of a plain Lua VM: attempts wait in a queue and run one
-- after another, in the calling coroutine, when the client is polled or
-- an attempt is waited for.
local queued = {}

function queued.start(c, a, url, timeout_ms)
  local q = c._queue
  q[#q + 1] = { a, url, timeout_ms }
end

local function run_next(c)
  local q = c._queue
  local item = q[c._head]
  q[c._head] = nil
  c._head = c._head + 1
  if q[c._head] == nil then c._queue, c._head = {}, 1 end
  local a = item[1]
  if not a:done() then c._send(c, a, item[2], item[3]) end
end

function queued.poll(c)
  while c._queue[c._head] ~= nil and not c._c:closed() do run_next(c) end
  return 0
end

function queued.mark()
  return nil
end

-- Run the queue up to `a` (attempts started before it go first, as they
-- would on the wire).
function queued.wait(c, a)
  while not a:done() and c._queue[c._head] ~= nil do run_next(c) end
end

function queued.close(c)
  c._queue, c._head = {}, 1
end

queued.sleep = core.sleep

M.queued = queued

--- A core over `send(core, attempt, url, timeout_ms)` for the resolved
-- options `cfg` (plus `snippet`, as the client computes it), with
-- `runner` (default: attempts run in turn when polled).  `via` names the
-- HTTP stack in the User-Agent; `name` shows in tostring.
function M.new(cfg, send, name, runner, via)
  runner = runner or queued
  local c = core.external(cfg, via)
  return setmetatable({
    _c = c, _send = send, _name = name, _runner = runner,
    _headers = c:headers(),
    -- attempt -> what it sends besides a GET (its values refer to no
    -- attempt, so entries go with their attempts, LuaJIT included)
    _extra = setmetatable({}, { __mode = "k" }),
    _queue = {}, _head = 1,
    sleep = runner.sleep, idle = runner.idle,
  }, Core)
end

-- A transport function's answer reported into the attempt; nil, message
-- for an answer that breaks the contract.
local FAILURE_KINDS = { network = true, timeout = true, tls = true }

local function report(a, status, body, headers)
  if status == nil then
    local kind, message = body, headers
    if not FAILURE_KINDS[kind] then
      return nil, "failure kind 'network', 'timeout' or 'tls' expected, got " .. errors.text(kind)
    end
    a:fail(kind, message ~= nil and errors.text(message) or kind)
    return true
  end
  if type(status) ~= "number" or status % 1 ~= 0 or status < 100 or status > 999 then
    return nil, "HTTP status (an integer from 100 to 999) expected, got " .. errors.text(status)
  end
  if type(body) ~= "string" then
    return nil, "body (a string) expected, got " .. type(body)
  end
  if headers ~= nil and type(headers) ~= "table" then
    return nil, "headers (a table or nil) expected, got " .. type(headers)
  end
  a:response(math_floor(status), body, headers)
  return true
end

-- One attempt through the user's function.  What it raises, or an answer
-- that breaks the contract, cancels the attempt and is raised from the
-- call that ran it.
local function send_function(c, a, url, timeout_ms)
  local x = c._extra[a]
  local req = { method = x and x.method or "GET", url = url, headers = M.headers(c, a),
                body = x and x.body, timeout = timeout_ms >= 0 and timeout_ms / 1000 or nil,
                max_body = c._max_body }
  local ok, status, body, hdrs = pcall(c._fn, req)
  local why
  if not ok then
    if errors.passes_through(status) then error(status, 0) end
    why = "kpayment: transport function raised: " .. errors.text(status)
  else
    local done
    done, why = report(a, status, body, hdrs)
    if done then return end
    why = "kpayment: transport function returned a bad response: " .. why
  end
  a:cancel()
  -- the function had the request's headers: what it says may quote them
  error(errors.scrub(why, c._secrets), 0)
end

--- The core for a client: the `transport` function when given, nginx's
-- cosockets or subrequests inside an nginx worker, libcurl otherwise.
-- `secrets`: the client's list (kpayment.secrets), for what a function raises.
function M.select(cfg, secrets)
  if type(cfg.transport) == "function" then
    local c = M.new(cfg, send_function, "function")
    c._fn, c._max_body = cfg.transport, cfg.max_body or core.DEFAULTS.max_body
    c._secrets = secrets
    return c
  end
  local name = M.default(cfg)
  if name == "curl" then
    -- a CA file that cannot be read would fail every request alike, as a
    -- tls error: said once, as the client is made (other transports
    -- refuse the option)
    if cfg.ca_file ~= nil then
      local f, why = io.open(cfg.ca_file, "rb")
      if not f then error("kpayment: bad option 'ca_file' (cannot read " .. tostring(why) .. ")", 0) end
      f:close()
    end
    return core.new(cfg)
  end
  if not M.ngx() then
    error("kpayment: the " .. name .. " transport runs inside nginx only (transport = \"curl\" " ..
      "or a function here)", 0)
  end
  return require("kpayment.nginx").core(cfg, name)
end

--- The transport a client made with `cfg` gets: its `transport` option
-- when that names one, else "cosocket" inside an nginx worker and "curl"
-- elsewhere.
function M.default(cfg)
  local t = cfg and cfg.transport
  if type(t) == "string" then return t end
  if type(t) == "function" then return "function" end
  return M.ngx() and "cosocket" or "curl"
end

return M
