--- kpayment.Request: the one state machine every request goes through,
-- blocking or not, and the loops that drive requests (`poll`, the batch,
-- the wait of a blocking call).
--
-- States: "running" (an attempt is on the wire), "waiting" (for a retry
-- timer), "decoding" (a 2xx arrived; `poll` decodes it in slices of its
-- budget), "finished" (the outcome is ready but not yet taken),
-- "delivered" (the outcome was taken by `result()` or the callback) and
-- "cancelled" (ended by `cancel()` or `client:close()` before that).  The
-- outcome is fixed by the first of delivery or cancellation and never
-- changes after; a request with `on_done` gets exactly one call either way.
--
-- Requests with the same key (URL and projection) in flight in one scope
-- share a flight: an internal request, never seen by users, that makes the
-- attempts and retries.  Its callers follow it: each has its own state,
-- deadline, cancellation, callback and result tables (the first caller to
-- take the result gets the flight's own decode, the others decode a copy of
-- the body).  The flight ends when its last caller leaves.
--
-- User code (loggers, hooks, callbacks, finalizers inside any allocation)
-- can run at every step and may cancel a request or close its client: every
-- step re-reads the state after anything that can run it.
-- @module kpayment

local core = require("kpayment.core")
local response = require("kpayment.response")
local retry = require("kpayment.retry")
local log = require("kpayment.log")
local errors = require("kpayment.errors")

local offer = require("kpayment.offer")

local setmetatable, next, error, pcall, tostring = setmetatable, next, error, pcall, tostring
local math_floor, math_min, math_max, math_huge = math.floor, math.min, math.max, math.huge
local table_sort, table_remove = table.sort, table.remove
local monotonic, sleep = core.monotonic, core.sleep

local RUNNING, WAITING, DECODING, FINISHED, DELIVERED, CANCELLED =
  "running", "waiting", "decoding", "finished", "delivered", "cancelled"

local M = {}

--- A request started by `Client:start_offers`: it runs while its client is
-- polled (`Client:poll`), and ends exactly once, with offers, an error, or
-- cancelled.  Its outcome is fixed by whichever comes first: its delivery
-- (`result` returning it, or its `on_done` being called) or its
-- cancellation (`cancel`, or `Client:close`); a cancelled request's
-- outcome is the `"cancelled"` error even when its response had arrived.
-- A `<close>` variable (Lua 5.4) cancels it on scope exit;
-- `tostring(req)` shows its state.
-- @type Request
local Request = {}
Request.__index = Request
Request.__name = "kpayment.Request"

-- The core's own sleep when it has one (inside nginx it yields instead
-- of blocking the worker).
local function pause(client, seconds)
  local c = client._core
  if c.idle then return c:idle(seconds) end   -- nginx: woken by close too
  (c.sleep or sleep)(seconds)
end

local function ended(req)
  local st = req._state
  return st == DELIVERED or st == CANCELLED
end

-- The calling context's part of a client: `live` (requests not yet ended,
-- weak) and `watch` (requests with on_done not yet called back, in start
-- order).  One per client, but inside nginx one per nginx request or timer
-- (kpayment.nginx), so that a poll there sees its own requests only.
local function scope(client)
  local f = client._scoped
  if f then return f(client._core) end
  return client._one
end

--- Every scope of a client (for close).
local function scopes(client)
  if client._scoped then return require("kpayment.nginx").scopes(client._core) end
  return { client._one }
end

-- Forget a request that the client no longer needs to track.
local function untrack(req)
  req._scope.live[req] = nil
end

-- The request's callback, once: marked before it runs, so a callback that
-- polls, cancels or closes cannot have it called again.
local function notify(req)
  if not req._on_done or req._notified then return end
  req._notified = true
  local client = req._client
  local watch = req._scope.watch
  for i = 1, #watch do
    if watch[i] == req then
      table_remove(watch, i)
      break
    end
  end
  log.call(client, "on_done", req._on_done, req._offers, req._err, req)
end

-- The hooks of an attempt: `on_request` once it is on its way, then
-- `on_response` once, however it ends (req._hook is set while one is
-- owed, so a hook that cancels or closes cannot have it called twice).
local function hook_request(req)
  local client = req._client
  if client._on_request == nil and client._on_response == nil then return end
  local info = log.hook_info(client, req._url, req._attempts)
  if info == nil then return end
  req._hook, req._hook_at = info, monotonic()
  log.hook(client, "on_request", info)
end

-- A server's request id as errors, hooks and offers carry it: scrubbed,
-- and of a secret's start too where the core cut a long one (only then:
-- this runs on every call).
local function server_id(list, id)
  if id == nil then return nil end
  return errors.scrub(id, list, #id >= core.LIMITS.request_id)
end

-- The secrets to scrub what answers req's attempt: the client's, and the
-- token it was sent with, which the client may have replaced twice since.
local function secrets_of(req)
  local client = req._client
  if req._token == nil then return client._secrets end
  return client._oauth:secrets_for(client, req._token)
end

local function hook_response(req, kind, retrying)
  local info = req._hook
  if info == nil then return end
  local client = req._client
  local status, seconds, bytes, request_id = req._core:stats()
  info.status, info.bytes, info.error, info.retry = status, bytes, kind, retrying
  -- libcurl's time for the transfer; the time since it started for one
  -- stopped before it ended
  info.duration = seconds > 0 and seconds or monotonic() - req._hook_at
  info.request_id = server_id(secrets_of(req), request_id)
  req._hook = nil
  log.hook(client, "on_response", info)
end

-- Send the next attempt.  Until it is on the wire the request counts as
-- waiting with its timer run out, so an out-of-memory error in here leaves
-- it to be sent again by the next step.  The client may be closed already
-- (by a finalizer or a logger): the request then ends cancelled.
local launch

-- Milliseconds the token request may take: what the request's deadline
-- leaves, within the client's timeout.
local function oauth_timeout(req)
  return retry.attempt_timeout(req._client._timeout, req._deadline_at)
end

-- Requests that wait on work another runs (a shared call's timer, a token
-- request) count as running for nginx's poll of their scope (followers:
-- request -> how many such waits).  A weak set: a request that is
-- collected counts no more.
local WEAK_K, WEAK_V = { __mode = "k" }, { __mode = "v" }

local function follow_on(s, req)
  local set = s.followers
  if set == nil then
    set = setmetatable({}, WEAK_K)
    s.followers = set
  end
  set[req] = (set[req] or 0) + 1
end

local function follow_off(s, req)
  local set = s.followers
  local n = set and set[req]
  if n then set[req] = n > 1 and n - 1 or nil end
end

-- A request whose attempt needs a token that the client does not hold:
-- it waits for the client's one token request (started here if none is in
-- flight), which counts against its deadline, not its retries.
local function await_token(req)
  local client = req._client
  local oauth = client._oauth
  local a = oauth:fetch(client, oauth_timeout(req))
  if a == nil then return req:cancel() end   -- the client was closed
  req._state, req._retry_at, req._awaiting = WAITING, math_huge, a
  local s = req._scope
  if client._core._flights then   -- inside nginx: its pollers wait for it
    oauth.scopes[s] = true
    follow_on(s, req)
    req._following_token = true
  end
end

-- The request no longer waits for a token (it got its turn, or ended):
-- inside nginx its scope stops counting it as running.
local function stop_awaiting(req)
  req._awaiting = nil
  if req._following_token then
    req._following_token = nil
    follow_off(req._scope, req)
  end
end

-- A request waiting for a token: once the token request has ended (taken
-- here or by another waiter), it goes out with the token, or ends with the
-- fetch's `auth` error.
local function token_step(req)
  local client = req._client
  local oauth = client._oauth
  local a = req._awaiting
  if oauth.attempt == a then
    if not a:done() then return end
    oauth:finish(client, monotonic())
    if client._core._flights then require("kpayment.nginx").wake_all(oauth.scopes, {}) end
  end
  stop_awaiting(req)
  local err = oauth.results[a]
  if err then
    local own = errors.copy(err)
    own.attempts, own.total_time = req._attempts, monotonic() - req._started
    req._state, req._err = FINISHED, own
    log.outcome(client, nil, req._err)
  else
    launch(req, true)
  end
end

function launch(req, fresh_token)
  local client = req._client
  req._state, req._retry_at = WAITING, monotonic()
  local extra
  local oauth = client._oauth
  if oauth then
    local now = monotonic()
    local token = oauth:current(now, client)
    if token == nil then
      -- with token_dict, one worker fetches: the others look again shortly
      if now + 0.1 < req._deadline_at and not oauth:may_fetch(oauth_timeout(req) / 1000 + 1) then
        req._retry_at = now + 0.02
        return
      end
      return await_token(req)
    end
    extra = oauth.header == token and oauth.extra or nil
    if extra == nil then
      extra = { authorization = "Bearer " .. token }
      oauth.header, oauth.extra = token, extra
    end
    req._token, req._fresh_token = token, fresh_token == true
  end
  local timeout = retry.attempt_timeout(client._timeout, req._deadline_at)
  local attempt = client._core:start(req._url, req._fields, timeout, extra)
  if attempt == nil then return req:cancel() end
  req._attempts = req._attempts + 1
  req._state, req._retry_at, req._core = RUNNING, nil, attempt
  -- it only logs when one of these is set
  if client._insecure or client._debug then log.attempt(client, req._url, req._attempts) end
  hook_request(req)
end

-- The core's outcome of the current attempt as offers or an error, with
-- the request's bookkeeping.  Runs Lua code (decoding allocates).  Once
-- the request has fixed what it keeps, `settle` lets the core forget it.
local function take_outcome(req)
  local client = req._client
  local o = req._core:outcome()
  local list = secrets_of(req)
  local offers, err, meta = response.from_outcome(o, list)
  meta = meta or err
  meta.attempts = req._attempts
  -- a server's header, so scrubbed like the rest of what it sent
  meta.request_id = server_id(list, o.request_id)
  meta.total_time = monotonic() - req._started
  local cache = client._cache
  if offers and cache and req._body then
    local now = monotonic()
    cache:put(req._url, req._customer, req._body, o.status, now, now - req._body_at)
  end
  if req._locked then   -- kept (or not worth keeping): other workers may go on
    req._locked = nil
    cache:unlock(req._url)
  end
  return offers, err, o
end

-- Fresh tables decoded from a copy of a body (a flight's, for its other
-- callers; a cache entry's), with fields, as take_outcome would give.
local function decode_copy(req, body, status, fields, attempts)
  local client = req._client
  local offers, err, meta
  local copy = req._copy
  if copy then   -- decoded by poll in slices, the rest now
    offers, err, meta = response.from_outcome(copy:outcome(), client._secrets)
  else
    local ok, value = pcall(core.decode, body, { records = "financeOffers", fields = fields })
    if not ok and errors.passes_through(value) then error(value, 0) end
    if not ok then
      return nil, errors.new({ kind = "decode", retryable = false, attempts = attempts,
                               message = tostring(value), status = status,
                               total_time = monotonic() - req._started })
    end
    offers, err, meta = response.from_outcome({ value = value, status = status }, client._secrets)
  end
  meta = meta or err
  meta.attempts = attempts
  meta.total_time = monotonic() - req._started
  return offers, err
end

-- The offers of a cache entry: a hit (cause nil), or a stale answer to the
-- error `cause`.
local function from_entry(req, e, fields, attempts, cause, stale)
  local offers, err = decode_copy(req, e.body, e.status, fields, attempts)
  local meta = offers and offer.meta(offers) or err
  meta.cached, meta.stale, meta.error = true, stale or cause ~= nil, cause
  meta.age = e.age or monotonic() - e.at
  return offers, err
end

-- Keep a copy of a 2xx body before it is decoded: for the client's cache,
-- and for a flight's callers beyond the first.
local function keep_body(req)
  local status, _, _, request_id = req._core:stats()
  req._body = req._core:body()
  req._body_at = monotonic()
  req._status = status
  req._request_id = server_id(secrets_of(req), request_id)
end

local function settle(req)
  if req._core then req._core:release() end
  local copy = req._copy
  if copy then
    req._copy = nil
    copy:release()
  end
end

-- A caller leaves its flight (delivered, cancelled or past its deadline);
-- the flight ends with its last caller.
local function leave(req)
  local f = req._flight
  if f == nil or req._left then return end
  req._left = true
  f._callers = f._callers - 1
  if req._following then follow_off(req._scope, req) end
  if f._callers > 0 then return end
  local flights = f._flights
  if flights[f._key] == f then flights[f._key] = nil end
  if f._driven and not f._drive.started then   -- a dropped timer counts no more
    require("kpayment.nginx").dropped(f._client._core, f._drive)
  end
  if ended(f) then return end
  if f._taken and not f._taking then
    -- its outcome was taken and its attempt released (caller_outcome):
    -- nothing is left to stop, and nobody reads a cancelled error
    f._state = DELIVERED
    return
  end
  f:cancel()
end

-- The error of a request whose deadline passed before its attempt ended:
-- its own, or a caller's while the call it shares goes on for callers
-- that came later.
local function deadline_error(req)
  local f = req._flight
  return errors.new({ kind = "timeout", retryable = true, attempts = (f or req)._attempts,
                      joined = req._joined, total_time = monotonic() - req._started,
                      message = f and "no response within the deadline (the call it shared goes on for "
                        .. "the callers that joined later)" or "no response within the deadline" })
end

-- Once its attempts are over, a flight takes no new callers (with more
-- than one, it kept a copy of a 2xx body for the others: keep_body).
local function flight_settled(f)
  local flights = f._flights
  if flights[f._key] == f then flights[f._key] = nil end
end

-- Move the request along without delivering it: start a retry whose timer
-- ran out, or look at an attempt that ended.  A failure is turned into its
-- error here (to decide on a retry); a 2xx is decoded by `poll`, in
-- slices, or on delivery.
local follow, join, send_shared, caller_settles

-- How often a shared call waiting for another worker's answer looks at
-- the shared dict.
local WAIT_OTHERS = 0.01

local function step(req)
  if req._flight then return follow(req) end
  local st = req._state
  if st == WAITING then
    if req._awaiting then return token_step(req) end
    -- a shared call in a timer of its own is sent by that timer (drive)
    local now = monotonic()
    if now < req._retry_at or req._driven then return end
    if req._callers == nil then return launch(req) end
    if not send_shared(req, now) then req._retry_at = now + WAIT_OTHERS end
    return
  end
  if st ~= RUNNING then return end
  local done, success = req._core:done()
  if not done then
    -- A deadline given is the caller's clock: the attempt's timeout (the
    -- core's) leaves out what the budget paused, which the deadline does not.
    if req._client._hard_deadline and monotonic() >= req._deadline_at then
      req._core:cancel()
      local err = deadline_error(req)
      req._state, req._err = FINISHED, err
      settle(req)
      log.outcome(req._client, nil, err)
      hook_response(req, "timeout", false)
    end
    return
  end
  if success then
    req._state = DECODING
    if req._client._cache or (req._callers or 0) > 1 then keep_body(req) end
    hook_response(req, nil, false)
    return
  end
  local _, err, o = take_outcome(req)
  if req._state ~= RUNNING then return end   -- cancelled meanwhile
  local oauth = req._client._oauth
  if oauth and err.status == 401 and not req._fresh_token and not req._reauthorized then
    -- the API refused a token it was not fetched for: fetch one, once,
    -- and send this attempt again (not counted as a retry)
    req._reauthorized = true
    oauth:invalidate(req._token)
    req._state, req._retry_at = WAITING, monotonic()
    settle(req)
    hook_response(req, err.kind, true)
    return
  end
  local tried = req._attempts - (req._reauthorized and 1 or 0)
  local wait = retry.backoff(req._client._retries, err, tried, o.retry_after, req._deadline_at)
  local cache = req._client._cache
  local stale = not wait and err.retryable and cache and cache:get(req._url, monotonic(), true)
  if wait then
    req._state, req._retry_at = WAITING, monotonic() + wait
  elseif stale then   -- the API failed: an entry past its ttl answers
    req._state, req._entry, req._cause = FINISHED, stale, err
    -- a copy of it, decoded by poll (start_copy); a flight's callers each
    -- decode their own (caller_settles)
    if req._callers == nil then req._state, req._copying = DECODING, true end
    if req._hook then req._hook.stale = true end
  else
    req._state, req._err = FINISHED, err
  end
  settle(req)
  log.outcome(req._client, nil, err)
  hook_response(req, err.kind, wait ~= nil)
end

-- A caller's step: move its flight along, and take on the flight's state
-- (decoding or finished) once its attempts are over; or end with a timeout
-- when the caller's own deadline passes first.
local function in_flight(req)
  local st = req._state
  return st == RUNNING or st == WAITING
end

-- When a caller ends on its own while its flight goes on: at its deadline
-- if that is earlier than the call's.  One whose deadline the call carries
-- takes the call's outcome at that deadline (its timeout, a stale answer),
-- but a call in a timer moves without it: if that call has not ended
-- LOST_AFTER seconds past the deadline, it is taken for lost.
local LOST_AFTER = 1

local function until_at(req, f)
  -- only a deadline given is the caller's own clock: by default (the
  -- timeout), the call's attempts bound it, counted from the wire as a
  -- request's of its own are
  if req._client._hard_deadline and req._deadline_at < f._deadline_at then return req._deadline_at end
  return f._driven and req._deadline_at + LOST_AFTER or nil
end

-- Whether nginx dropped the timer of a shared call (never sent).
local function timer_dropped(f)
  return f._driven and not f._drive.started and require("kpayment.nginx").dropped(f._client._core, f._drive)
end

-- A caller of a shared call whose timer nginx dropped leaves it, and
-- joins or starts a call of its own scope, sent there.
local function rejoin(req)
  local f = req._flight
  if f._flights[f._key] == f then f._flights[f._key] = nil end   -- nobody else joins it
  leave(req)
  req._flight, req._left, req._following, req._joined = nil, nil, nil, nil
  join(req, f._key, true)
end

function follow(req)
  if not in_flight(req) then return end
  local f = req._flight
  if timer_dropped(f) then return rejoin(req) end
  if not ended(f) then step(f) end
  if not in_flight(req) then return end   -- a hook ended it meanwhile
  local fs = f._state
  if fs == RUNNING or fs == WAITING then
    local at = until_at(req, f)
    if at and monotonic() >= at then
      req._state, req._err = FINISHED, deadline_error(req)
      leave(req)
    else
      req._state = fs
    end
    return
  end
  if fs == CANCELLED then return req:cancel() end
  flight_settled(f)
  if in_flight(req) then
    if fs == DECODING and not f._taken then
      req._state = DECODING   -- follows the flight's own decode
    else
      caller_settles(req, f)
    end
  end
end

-- The body whose copy req's outcome is, with its status and the fields
-- asked: its cache entry's, or its flight's; nil when there is none.
local function copy_source(req)
  local e = req._entry
  if e then return e.body, e.status, req._fields end
  local f = req._flight
  if f == nil then return nil end
  e = f._entry
  if e then return e.body, e.status, f._fields end
  return f._body, f._status, f._fields
end

-- Feed req's copy of its body (copy_source), whole, to an attempt of the
-- client's copier core, which then decodes it in slices as poll does a
-- response.  Decoding it on delivery took one poll for the whole body
-- (half a second at 10 000 offers).  Run by poll within its budget, one
-- request at a time, so copies are not all made at once.
local function start_copy(req)
  local body, status, fields = copy_source(req)
  if body == nil then return end   -- result() says what is missing
  local client = req._client
  local copier = client._copier
  if copier == nil then
    copier = core.external(client._copy_cfg, "copy")
    client._copier = copier
  end
  local a = copier:start(req._url, fields, -1)
  -- a finalizer run by those allocations may have ended it or its client
  if a == nil then return end
  if req._state ~= DECODING or req._copy ~= nil or client._closed then
    a:cancel()
    return
  end
  a:response(status, body)
  req._copy = a
end

-- A caller once its flight's attempts and decode are over: the first to
-- get here owns the flight's own outcome (caller_outcome gives it that
-- one), and the others, like every caller of a flight answered from a
-- cache entry, decode copies (DECODING until poll has, so done() never
-- turns back to false); after an error, each gets a copy of it.
function caller_settles(req, f)
  if f._entry or (f._err == nil and f._body ~= nil and (f._owner or req) ~= req) then
    req._state, req._copying = DECODING, true
    return
  end
  if f._err == nil and f._owner == nil then f._owner = req end
  req._state = FINISHED
end

-- Decode a 2xx for at most budget_ms (at least one record); the core
-- keeps the outcome once it is complete.  A caller drives its flight's
-- decode, which its owner gets (caller_settles); a request whose outcome
-- is a copy of a body decodes that (start_copy).
local function advance(req, budget_ms)
  if req._copying then
    if req._copy == nil then start_copy(req) end
    local copy = req._copy
    if copy == nil then
      -- no copy could be made (its client closed meanwhile): result()
      -- decodes the body, or says what ended the request
      if req._state == DECODING then req._state = FINISHED end
    elseif copy:outcome(budget_ms) and req._state == DECODING then
      req._state = FINISHED
    end
    return
  end
  local f = req._flight
  if f then
    if f._state == DECODING and not f._taken then advance(f, budget_ms) end
    if req._state == DECODING and (f._state ~= DECODING or f._taken) then caller_settles(req, f) end
    return
  end
  if req._core:outcome(budget_ms) and req._state == DECODING then
    req._state = FINISHED
  end
end

-- A caller's outcome: a copy of its flight's error; for the first caller
-- to ask, the flight's own decode; for the others, their own tables
-- decoded from the flight's copy of the body.
local function caller_outcome(req)
  local f = req._flight
  local offers, err
  -- another caller owns the flight's own decode (caller_settles)
  local owned = f._body and f._owner ~= nil and f._owner ~= req and not f._taking
  if f._entry then
    offers, err = from_entry(req, f._entry, f._fields, f._attempts, f._cause and errors.copy(f._cause))
  elseif f._err then
    err = errors.copy(f._err)
  elseif not owned and (not f._taken or (f._taking and not f._body)) then
    -- The first to ask takes the flight's own outcome.  A finalizer that
    -- runs inside that decode and asks again (the same caller: with more
    -- than one, the others have the body's copy) asks the core too, which
    -- gives every nested caller its one outcome.
    local nested = f._taking
    f._taken, f._taking = true, true
    f._owner = f._owner or req
    local ok, a, b = pcall(take_outcome, f)
    if not nested then f._taking = nil end
    if not ok then
      if not nested then f._taken = false end
      error(a, 0)
    end
    offers, err = a, b
    if err then f._err = err end   -- the same error for every caller
    settle(f)
  elseif f._body then
    offers, err = decode_copy(req, f._body, f._status, f._fields, f._attempts)
    if offers then offer.meta(offers).request_id = f._request_id end
  else
    err = response.cancelled(f._attempts)
  end
  local meta = offers and offer.meta(offers) or err
  meta.joined = req._joined
  meta.total_time = monotonic() - req._started
  return offers, err
end

-- A request's outcome once finished: from the cache, its flight's, or
-- its own attempt's.
local function outcome_of(req)
  if req._entry then
    return from_entry(req, req._entry, req._fields, req._attempts, req._cause, req._stale)
  end
  if req._flight then return caller_outcome(req) end
  return take_outcome(req)
end

-- Whether the network part is over (the outcome may still need decoding).
local function settled(req)
  local st = req._state
  return st ~= RUNNING and st ~= WAITING
end

-- Whether the next poll has work for this request without waiting for the
-- wire: a decode to advance or a callback to call.  A request held without
-- on_done that has ended waits for its caller's result(), not for a poll.
local function ready(req)
  return req._state == DECODING or (req._on_done ~= nil and not req._notified and settled(req))
end

-- The flights of a scope: inside nginx, the worker's (its client's core
-- keeps them), shared by all its requests and timers.  Held weakly: a
-- flight lives as long as a caller (or its timer) holds it, so one whose
-- callers were all collected goes too, and its attempt with it.
local function scope_flights(s)
  local flights = s.flights
  if flights == nil then
    flights = setmetatable({}, WEAK_V)
    s.flights = flights
  end
  return flights
end

local function flights_of(client, s)
  local shared = client._core._flights
  if shared then return shared, true end
  return scope_flights(s), false
end

-- Wake whoever follows flight f (inside nginx): it moved.
local function changed(f)
  if f._driven then require("kpayment.nginx").wake_all(f._scopes, f._waiters) end
end

-- Send the next attempt of shared call f, due at `now`.  With a cache in a
-- shared dict, one worker at a time asks the API for a key: the first
-- attempt takes the key's lock, or finds the answer another worker kept
-- meanwhile, or waits for it (false: look again after WAIT_OTHERS); a
-- lock left past the deadline is not waited for.  A call that one of its
-- callers may not answer from the cache (cache = false) asks the API.
function send_shared(f, now)
  local cache = f._client._cache
  local e
  if f._attempts == 0 and cache and f._fresh_ok and not f._locked and not cache:lock(f._url) then
    e = cache:get(f._url, now, false)
    if not e and now + 0.1 < f._deadline_at then return false end
    if not e then f._locked = false end
  else
    if cache and f._locked == nil then
      f._locked = f._attempts == 0 and (f._fresh_ok or cache:lock(f._url))
    end
    -- the lock taken: an answer that came in meanwhile is the answer
    e = f._locked and f._fresh_ok and cache:get(f._url, now, false)
    if e then
      f._locked = nil
      cache:unlock(f._url)
    end
  end
  if e then
    f._state, f._entry = FINISHED, e
  else
    launch(f)
  end
  return true
end

-- A shared call inside nginx, in a timer of its own: send its attempts
-- and retries until it is settled or no caller wants it, waking its
-- followers each time it moves.  The timer ends with the worker
-- (premature): the call ends cancelled.
local function drive(f, premature)
  local client = f._client
  local c = client._core
  if premature and not ended(f) then f:cancel() end
  local cache = client._cache
  while f._callers > 0 and not ended(f) and not client._closed do
    local st = f._state
    if st == WAITING and f._awaiting then
      c:wait(f._awaiting, 1000)   -- the client's token request
      step(f)
      changed(f)
    elseif st == WAITING then
      local now = monotonic()
      local wait = f._retry_at - now
      if wait > 0 then
        pause(client, wait)
      else
        if not send_shared(f, now) then pause(client, WAIT_OTHERS) end
        changed(f)
      end
    elseif st == RUNNING then
      c:wait(f._core, 1000)   -- sent here, in this timer
      step(f)
    else
      break   -- settled: its callers take the outcome
    end
  end
  if f._locked and f._state ~= DECODING then   -- no body to keep: let the others go on
    f._locked = nil
    cache:unlock(f._url)
  end
  changed(f)
end

-- With `own`, only a call of this scope is joined, and none gets a timer
-- (its callers found its timer dropped).
function join(req, key, own)
  local s = req._scope
  local client = req._client
  local flights, worker = flights_of(client, s)
  -- inside nginx, a call that found no timer is in its scope's own map
  local f = (not own and flights[key]) or (worker and s.flights and s.flights[key]) or nil
  if f ~= nil and (f._state == RUNNING or f._state == WAITING) then
    req._joined = true
  else
    local now = monotonic()
    f = setmetatable({ _client = client, _url = req._url, _fields = req._fields, _scope = s,
                       _attempts = 0, _started = req._started, _deadline_at = req._deadline_at,
                       _seq = req._seq, _state = WAITING, _retry_at = now, _key = key, _callers = 0,
                       _customer = req._customer, _flights = flights,
                       _fresh_ok = req._fresh_ok ~= false }, Request)
    local handle = worker and not own
      and require("kpayment.nginx").drive(client._core, function(premature) drive(f, premature) end)
    if handle then
      f._driven, f._drive, f._scopes, f._waiters = true, handle, setmetatable({}, { __mode = "k" }), {}
    else
      if worker then   -- no timer for it: shared within this scope only
        flights = scope_flights(s)
        f._flights = flights
      end
      if not send_shared(f, now) then f._retry_at = now + WAIT_OTHERS end
      if ended(f) then   -- the client was closed meanwhile
        req._state, req._offers, req._err = CANCELLED, nil, response.cancelled(0)
        return
      end
    end
    flights[key] = f
    req._joined = false
  end
  f._callers = f._callers + 1
  -- one caller that may not be answered from the cache: none is
  if req._fresh_ok == false then f._fresh_ok = false end
  req._flight = f
  if f._driven then
    f._scopes[s] = true
    follow_on(s, req)
    req._following = true
  end
  if req._deadline_at > f._deadline_at then f._deadline_at = req._deadline_at end
end

--- A new request on `client`, its first attempt started, or joined to the
-- call in flight with the same `key` (nil: a call of its own).
-- @local
function M.new(client, url, fields, on_done, key, customer, fresh_ok)
  -- an on_done that lua_close's finalizers call may not start anything:
  -- it would never end, and be lost
  if core.closing() then
    error("kpayment: the Lua state is closing (lua_close): no new request", 0)
  end
  local now = monotonic()
  client._seq = client._seq + 1
  local s = scope(client)
  local req = setmetatable({ _client = client, _url = url, _fields = fields, _scope = s,
                             _attempts = 0, _started = now, _deadline_at = now + client._deadline,
                             _seq = client._seq, _state = RUNNING, _customer = customer,
                             _fresh_ok = fresh_ok }, Request)
  local cache = client._cache
  local hit = cache and fresh_ok and cache:get(url, now, false)
  local stale = false
  if cache and fresh_ok and not hit and cache:busy(url) then
    -- another worker refreshes it: an entry past its ttl answers meanwhile
    hit = cache:get(url, now, true)
    stale = hit ~= nil
  end
  -- Sent before the client tracks it: if sending raises (out of memory),
  -- the caller gets the error and no half-made request stays behind.
  if hit then
    -- no API call: a copy of the entry, decoded by poll (start_copy)
    req._state, req._entry, req._stale, req._copying = DECODING, hit, stale, true
  elseif key then
    join(req, key)
  else
    launch(req)
  end
  if not ended(req) then
    s.live[req] = true
    if on_done then
      s.watch[#s.watch + 1] = req
      -- only now: had the line above raised, no callback may be pending for
      -- a request its caller never got
      req._on_done = on_done
    end
    if client._closed then req:cancel() end   -- closed meanwhile
  elseif on_done then   -- the client was closed before it could be sent
    req._on_done = on_done
    notify(req)
  end
  return req
end

--- Whether the request has finished (with offers or an error, its
-- response decoded by `client:poll`) or was cancelled.  Never blocks: a
-- failed attempt that is worth retrying waits for its backoff as a timer,
-- and starts again when it has run out.
-- @treturn boolean
function Request:done()
  step(self)
  local st = self._state
  return st ~= RUNNING and st ~= WAITING and st ~= DECODING
end

--- The request's outcome, once `done` is true (or once its response is
-- in: what `client:poll` has not decoded yet is decoded now, at once);
-- every later call returns the same values.
-- @treturn[1] OfferList the offers
-- @return[2] nil
-- @treturn[2] Error what went wrong (kind `"cancelled"` if it was cancelled)
-- @raise while the request is still running
function Request:result()
  local st = self._state
  if st ~= DELIVERED and st ~= CANCELLED then
    step(self)
    st = self._state
    if st == RUNNING or st == WAITING then
      error("kpayment: request still running (poll the client until done())", 2)
    end
    if st == FINISHED or st == DECODING then
      local offers, err
      if self._err == nil then offers, err = outcome_of(self) end
      if not ended(self) then              -- not cancelled or taken meanwhile
        if self._err == nil then self._offers, self._err = offers, err end
        self._state = DELIVERED
        settle(self)
        leave(self)
        untrack(self)
        -- what the network part logged (step) is not logged again; a 2xx
        -- is logged here, as offers or as what its decode found
        if self._client._debug and (offers or (err and err.status and err.status < 300)) then
          log.outcome(self._client, offers, err)
        end
      end
    end
  end
  return self._offers, self._err
end

-- Request:cancel, with its on_done called now (`call_back`) or left to
-- the next poll of its scope (close_all, for another nginx request's).
local function cancel(self, call_back)
  if ended(self) then return end
  if self._locked then   -- a shared call that held a dict's refresh lock
    self._locked = nil
    self._client._cache:unlock(self._url)
  end
  self._state = CANCELLED
  stop_awaiting(self)   -- a cancelled request waits for no token
  local f = self._flight
  self._offers, self._err = nil, response.cancelled(f and f._attempts or self._attempts)
  untrack(self)
  if f then leave(self) elseif self._core then self._core:cancel() end
  local copy = self._copy
  if copy then
    self._copy = nil
    copy:cancel()
  end
  hook_response(self, "cancelled", false)
  if call_back then notify(self) end
end

--- Abandon the request: its transfer stops and its connection is closed.
-- A request whose outcome was not taken yet ends with an error of kind
-- `"cancelled"` (its `on_done`, if any, is called with it now); one already
-- delivered is left as it is.  Also the `__close` of a `<close>` variable.
function Request:cancel()
  cancel(self, true)
end

Request.__close = Request.cancel

local SHOWN = { [RUNNING] = "running", [WAITING] = "waiting to retry", [DECODING] = "decoding",
                [FINISHED] = "done",
                [DELIVERED] = "done", [CANCELLED] = "cancelled" }

function Request.__tostring(self)
  return "kpayment.Request (" .. SHOWN[self._state] .. ")"
end

-- When req needs a step whatever the network does: its retry timer (its
-- flight's), or a caller's own deadline before its flight's; or nil.
local function timer_of(req)
  local f = req._flight
  local n = f or req
  if n._awaiting then   -- its token request's end is the network's news
    return n._awaiting:done() and monotonic() or nil
  end
  if f == nil then
    local st = req._state
    if st == WAITING then return req._retry_at end
    -- the core's own timer ends the attempt, but no later than this
    if st == RUNNING and req._client._hard_deadline then return req._deadline_at end
    return nil
  end
  if not in_flight(req) then return nil end
  -- its flight's attempt ended (or it settled) while nobody stepped it:
  -- work for now, not a reason to sleep to the caller's deadline
  local fs = f._state
  if fs ~= RUNNING and fs ~= WAITING or (fs == RUNNING and f._core and f._core:done()) then
    return monotonic()
  end
  -- a shared call in a timer wakes its followers itself (drive), once
  -- its timer has started
  local at = f._state == WAITING and not f._driven and f._retry_at or nil
  if f._driven and not f._drive.started then
    at = f._drive.due + require("kpayment.nginx").DROPPED_AFTER
  end
  local own = until_at(req, f)
  if own and (at == nil or own < at) then at = own end
  return at
end

-- Seconds until the earliest timer among reqs, or nil.
local function next_timer(reqs, n)
  local soonest
  for i = 1, n or #reqs do
    local req = reqs[i]
    local at = req and timer_of(req)
    if at and (not soonest or at < soonest) then soonest = at end
  end
  return soonest and math_max(soonest - monotonic(), 0)
end

local function by_seq(a, b) return a._seq < b._seq end

-- The client's live requests in start order (a copy: stepping them may
-- start or end others).
--
-- The set is walked with `next` in a `while` loop, not `pairs`: these
-- walks run inside finalizers (a `__gc` that closes the client or polls
-- it), and LuaJIT 2.1 up to 2023 can spin for ever in a compiled `pairs`
-- loop there: the trace's exit at the end of the table goes back to the
-- loop's head, which enters the same trace again, and inside `__gc` no
-- side trace may be recorded to break the cycle.  A `while` loop's exit
-- leaves the loop.  (spec/finalizer_spec.lua, spec/support/jit_close.lua)
local function live_list(s)
  local list, live = {}, s.live
  local req = next(live)
  while req ~= nil do
    list[#list + 1] = req
    req = next(live, req)
  end
  table_sort(list, by_seq)
  return list
end

--- Wait for one request as a blocking call does: for its attempt to end
-- (over libcurl, network work that returns as soon as any transfer ends),
-- or the sleep to its retry timer.
-- @local
function M.wait(req)
  local client = req._client
  -- An attempt just started has not ended yet (nothing moves it but the
  -- work below), so the first look at it comes after that work.
  local fresh = req._state == RUNNING and not req._joined
  while true do
    if fresh then fresh = false else step(req) end
    local st = req._state
    if st ~= RUNNING and st ~= WAITING then return end
    local n = req._flight or req   -- what makes the attempts
    local at = timer_of(req)
    if n._driven then
      local ms = at and math_min(math_max(math_floor((at - monotonic()) * 1000) + 1, 1), 1000) or 1000
      require("kpayment.nginx").wait_on(n._waiters, ms)
    elseif n._awaiting then
      local c = client._core
      local wait = c.wait
      if wait then wait(c, n._awaiting, 1000) else c:poll(1000) end
    elseif n._state == WAITING then
      pause(client, math_max(at - monotonic(), 0))
    elseif n._state == RUNNING then
      local ms = at and math_min(math_max(math_floor((at - monotonic()) * 1000) + 1, 1), 1000) or 1000
      local c = client._core
      local wait = c.wait
      if wait then wait(c, n._core, ms) else c:poll(ms) end
    end
  end
end

local poll_closed   -- below, beside close_all

-- Steps the first n requests of live (nil once collected); whether one of
-- them is ready to be delivered.
local function step_all(live, n)
  local any = false
  for i = 1, n do
    local req = live[i]
    if req then
      step(req)
      if ready(req) then any = true end
    end
  end
  return any
end

--- client:poll(ms, budget_ms): see kpayment.Client.
-- @local
function M.poll(client, ms, budget_ms)
  if client._closed then return poll_closed(client) end
  local deadline = monotonic() + ms / 1000
  local c = client._core
  local mark = c.mark and c:mark()
  local s = scope(client)
  -- Held weakly while poll works: its allocations run the collector, and a
  -- request that its caller dropped must stay collectable meanwhile (a
  -- request with on_done is held by the scope's watch list).
  local live = live_list(s)
  local n = #live
  setmetatable(live, WEAK_V)
  -- With work ready, the network is not waited for (nor, with no mark,
  -- yielded to inside nginx).
  local has_work = step_all(live, n)
  local watch = s.watch
  for i = 1, #watch do   -- delivered by result() but not called back yet
    if ended(watch[i]) and not watch[i]._notified then has_work = true end
  end
  local wait_ms = has_work and 0 or math_floor(ms)
  if wait_ms > 0 then
    -- no longer than a request's own timer (a deadline given, a retry):
    -- the wire's timeouts count from their first poll, not from the call
    local t = next_timer(live, n)
    if t then wait_ms = math_min(wait_ms, math_floor(t * 1000) + 1) end
  end
  local running = c:poll(wait_ms, budget_ms, not has_work and mark or nil)
  -- what that brought: a request whose answer came in it is ready now,
  -- not a timer to wait for
  if running == 0 and not has_work then has_work = step_all(live, n) end
  if running == 0 and not has_work then
    -- nothing on the wire: a retry timer is the only thing worth waiting
    -- for; inside nginx (a mark), even poll(0) yields a millisecond to it,
    -- as it does to the wire, so that a loop of them lets the worker serve
    local t = next_timer(live, n)
    if t and wait_ms > 0 then
      pause(client, math_min(t, math_max(deadline - monotonic(), 0)))
    elseif t and mark then
      pause(client, math_min(t, 0.001))
    end
  end
  -- What the network work brought, then the budget's work in start order:
  -- decoding (at least one record) and callbacks, every ready result
  -- while the budget lasts.
  for i = 1, n do
    local req = live[i]
    if req then step(req) end
  end
  local stop_at, worked = monotonic() + budget_ms / 1000, false
  local function spent() return worked and monotonic() >= stop_at end
  for i = 1, n do
    if client._closed or spent() then break end
    local req = live[i]   -- nil once collected
    local decoded = false
    if req and req._state == DECODING then
      advance(req, math_max((stop_at - monotonic()) * 1000, 0))
      worked, decoded = true, true
      -- its flight's decode went to another caller: its copy, while the
      -- budget lasts
      if req._copying and req._copy == nil and req._state == DECODING and not spent() then
        advance(req, math_max((stop_at - monotonic()) * 1000, 0))
      end
    end
    -- a response whose decode ended here is delivered with it
    if req and req._on_done and not req._notified and settled(req) and req._state ~= DECODING
       and not client._closed and (decoded or not spent()) then
      -- the result first: if it raises (out of memory), the request stays
      -- watched and the next poll delivers it
      req:result()
      notify(req)
      worked = true
    end
  end
  local late = {}
  for i = 1, #watch do late[i] = watch[i] end
  for i = 1, #late do
    if client._closed or spent() then break end
    if ended(late[i]) and not late[i]._notified then
      notify(late[i])
      worked = true
    end
  end
  if client._closed then return poll_closed(client) end
  return M.pending(client)
end

--- client:watch(): see kpayment.Client.
-- @local
function M.watch(client)
  if client._closed then return {}, -1 end
  local c = client._core
  local fds, t = {}, -1
  if c.watch then fds, t = c:watch() end
  local function sooner(ms)
    if t < 0 or ms < t then t = ms end
  end
  local s = scope(client)
  local live = s.live
  local now = monotonic()
  local req = next(live)
  while req ~= nil do   -- not pairs: see live_list
    local n = req._flight or req   -- what makes the attempts
    -- a caller whose flight has ended takes it on at the next poll
    local nst = not settled(req) and n._state
    local at = timer_of(req)
    if ready(req) or nst == DECODING or nst == FINISHED or nst == CANCELLED
       or (nst == RUNNING and n._core and n._core:done()) then
      sooner(0)
    elseif nst == RUNNING and not c.watch then
      sooner(0)   -- another transport: its attempts run when polled
    elseif at then
      sooner(math_max(math_floor((at - now) * 1000 + 0.5), 0))
    end
    req = next(live, req)
  end
  local watch = s.watch
  for i = 1, #watch do
    if ended(watch[i]) and not watch[i]._notified then sooner(0) end
  end
  return fds, t
end

--- Requests not yet delivered: watched ones until their callback ran,
-- others while they run or wait for a retry.
-- @local
function M.pending(client)
  if client._closed then return 0 end
  local s = scope(client)
  local n, live = 0, s.live
  local req = next(live)
  while req ~= nil do   -- not pairs: see live_list
    if not req._on_done and (req._state == RUNNING or req._state == WAITING or req._state == DECODING) then
      n = n + 1
    end
    req = next(live, req)
  end
  local watch = s.watch
  for i = 1, #watch do
    if not watch[i]._notified then n = n + 1 end
  end
  return n
end

local function cancel_quietly(req)
  cancel(req, false)
end

-- Calls fn(req) under pcall; what the first failing call raised is kept
-- in box (box.failed, box.first), for the caller to raise once every call
-- has run.
local function each(box, fn, req)
  local ok, why = pcall(fn, req)
  if not ok and not box.failed then box.failed, box.first = true, why end
end

-- The ended requests of scope s whose on_done has not run: each called
-- once, in start order (kept in box as `each` does).
local function call_ended(box, s)
  local watch = s.watch
  local pending = {}
  for i = 1, #watch do pending[i] = watch[i] end
  for i = 1, #pending do
    if ended(pending[i]) then each(box, notify, pending[i]) end
  end
end

--- End every request of a closed client as cancelled, calling each
-- pending `on_done` once, in start order.  What a callback passes on
-- (running out of memory, Ctrl-C) waits until every other one has run,
-- then is raised: the first of them.  Inside nginx, only the calling
-- request's (or timer's) callbacks run here: another request's run in
-- that request, at its next poll (M.poll), never in this one.
-- @local
function M.close_all(client)
  local box = { failed = false }
  -- An nginx worker that exits (lua_close) has no request left to answer,
  -- and the handlers of those it aborted are gone: their callbacks would
  -- run with stale upvalues.  It calls none.
  local callbacks = not (client._scoped and core.closing())
  local own = callbacks and client._scoped and scope(client)
  local all = scopes(client)
  for k = 1, #all do
    local here = callbacks and (not own or all[k] == own)
    local live = live_list(all[k])
    for i = 1, #live do
      if not callbacks then live[i]._notified = true end
      each(box, here and Request.cancel or cancel_quietly, live[i])
    end
    if here then call_ended(box, all[k]) end
  end
  if box.failed then error(box.first, 0) end
end

-- A poll of a closed client: the callbacks close_all left to this scope
-- (another nginx request closed it), then nothing is pending.
function poll_closed(client)
  if client._scoped and not core.closing() then
    local box = { failed = false }
    call_ended(box, scope(client))
    if box.failed then error(box.first, 0) end
  end
  return 0
end

--- client:get_offers_many after its checks: urls and fields per entry.
-- @local
function M.many(client, urls, fields, keys, customers, fresh_ok, concurrency, on_progress)
  local n = #urls
  local results, inflight, nextup, finished = {}, {}, 1, 0
  local c0 = client._core
  local mark = c0.mark and c0:mark()
  while finished < n and not client._closed do
    while #inflight < concurrency and nextup <= n and not client._closed do
      inflight[#inflight + 1] = M.new(client, urls[nextup], fields[nextup], nil, keys[nextup],
                                      customers[nextup], fresh_ok[nextup])
      inflight[#inflight]._index = nextup
      nextup = nextup + 1
    end
    -- Wait for the wire (returning as soon as anything happened), but no
    -- longer than the next retry timer; with nothing on the wire, sleep to it.
    local t = next_timer(inflight)
    local running = c0:poll(t and math_floor(math_min(t, 1) * 1000) or 1000, nil, mark)
    if running == 0 and t then
      t = next_timer(inflight)
      if t then pause(client, t) end
    end
    mark = c0.mark and c0:mark()
    local k = 1
    while k <= #inflight and not client._closed do   -- a callback may close it
      local req = inflight[k]
      step(req)
      if settled(req) then   -- a 2xx is decoded by result(), at once
        table_remove(inflight, k)
        local offers, err = req:result()
        results[req._index] = offers and { offers = offers } or { err = err }
        finished = finished + 1
        if on_progress then log.call(client, "on_progress", on_progress, finished, n) end
      else
        k = k + 1
      end
    end
  end
  -- Closed under us: what had not finished ends cancelled, one entry each.
  for i = 1, #inflight do
    local req = inflight[i]
    req:cancel()
    local _, err = req:result()
    results[req._index] = results[req._index] or { err = err }
  end
  for i = 1, n do
    if results[i] == nil then results[i] = { err = response.cancelled(0) } end
  end
  return results
end

M.Request = Request
return M
