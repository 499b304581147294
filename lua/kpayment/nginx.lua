--- Inside an nginx worker (OpenResty, or Debian's nginx with
-- libnginx-mod-http-lua): where attempts run and how their callers wait,
-- so that the worker never blocks and every waiter wakes when its own work
-- is done.
--
-- Scopes.  A client made once per worker is shared by many nginx
-- requests (and timers).  Each request or timer sees its own part of it, a
-- scope: the requests it started, the attempts it queued, the pollers it
-- runs.  `client:poll` there steps, delivers and counts that scope's
-- requests only, and the attempts of a scope run in light threads of that
-- request, so they end with it when it ends early, and the client stays
-- usable for the others.
--
-- Wake-ups.  A blocking call (`get_offers`) sends its attempt in its own
-- coroutine: the cosocket (or subrequest) wakes exactly that coroutine.
-- Attempts started with `start_offers` or by `get_offers_many` run in light
-- threads spawned by `poll`; a poller waits on a semaphore of its own,
-- posted by every attempt of its scope that ends (and, through `mark`,
-- never misses one that ended while it was not waiting); a waiter for one
-- attempt waits on that attempt's own semaphore.  No semaphore is shared
-- between waiters, and none is drained.
-- @module kpayment.nginx

local transport = require("kpayment.transport")
local core = require("kpayment.core")

local setmetatable, pairs, error, pcall, tostring, type, next =
  setmetatable, pairs, error, pcall, tostring, type, next
local string_format = string.format
local math_max, math_floor = math.max, math.floor
local monotonic = core.monotonic

local ngx = transport.ngx()
local semaphore = require("ngx.semaphore")
local spawn, sleep_ngx, get_phase = ngx.thread.spawn, ngx.sleep, ngx.get_phase

local M = {}

-- Phases where cosockets (and light threads, and ngx.sleep) work, and
-- those that allow subrequests too.
M.COSOCKET_PHASES = { rewrite = true, access = true, content = true, timer = true,
                      ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
                      server_rewrite = true }
M.SUBREQUEST_PHASES = { rewrite = true, access = true, content = true }

-- The directive behind each phase, for messages.
local WHERE = {
  init = "init_by_lua*", init_worker = "init_worker_by_lua*", exit_worker = "exit_worker_by_lua*",
  set = "set_by_lua*", header_filter = "header_filter_by_lua*", body_filter = "body_filter_by_lua*",
  log = "log_by_lua*", timer = "an ngx.timer callback", balancer = "balancer_by_lua*",
  ssl_cert = "ssl_certificate_by_lua*", ssl_session_fetch = "ssl_session_fetch_by_lua*",
  ssl_session_store = "ssl_session_store_by_lua*", ssl_client_hello = "ssl_client_hello_by_lua*",
  server_rewrite = "server_rewrite_by_lua*",
}

--- Raises, naming the phase and the way out, where the transport `name`
-- cannot run.
function M.check_phase(name)
  local phase = get_phase()
  local phases = name == "subrequest" and M.SUBREQUEST_PHASES or M.COSOCKET_PHASES
  if phases[phase] then return end
  local way
  if name == "subrequest" then
    way = "call kpayment from rewrite_by_lua*, access_by_lua* or content_by_lua*, or use the " ..
      "cosocket transport (the default), which works in ngx.timer callbacks too"
  elseif phase == "init_worker" then
    way = "start a timer there and call kpayment from it: ngx.timer.at(0, function() ... end)"
  else
    way = "call kpayment from rewrite_by_lua*, access_by_lua*, content_by_lua* or an " ..
      "ngx.timer callback (ngx.timer.at(0, function() ... end))"
  end
  error(string_format("kpayment: nginx allows no %s in %s (phase '%s'), so the %s transport " ..
    "cannot run here; %s", name == "subrequest" and "subrequests" or "cosockets",
    WHERE[phase] or "this context", tostring(phase), name, way), 0)
end

-- Log levels by kpayment's names.
local LEVELS = { debug = ngx.DEBUG, info = ngx.INFO, warn = ngx.WARN, error = ngx.ERR }

--- The default logger inside nginx: nginx's error log, at the matching
-- level.
function M.logger(level, message)
  ngx.log(LEVELS[level] or ngx.ERR, "kpayment: ", message)
end

--- Seconds to wait without blocking the worker (a millisecond at least:
-- nginx's timers count whole ones).
function M.sleep(seconds)
  sleep_ngx(math_max(seconds, 0.001))
end

-- Scopes (see the module's header), kept in the nginx request's ngx.ctx
-- under a key of our own, per core; and per coroutine where a phase has
-- no ngx.ctx.
local SCOPES = {}
local by_coroutine = setmetatable({}, { __mode = "k" })
-- The key of the main thread, which LuaJIT's coroutine.running() gives as
-- nil (init_by_lua*: the call then raises from check_phase, by name).
local MAIN = {}

local function get_ctx()
  return ngx.ctx
end

--- The calling request's (or timer's) scope of core `c`: `live` and
-- `watch` (kpayment.async's requests), `queue` (attempts not yet sent, in
-- start order), `info` (attempt -> its url, timeout and whether it went
-- out), `running` (attempts in light threads), `ends` (how many of those
-- ended), `waiters` (pollers' semaphores).
--
-- Nothing here refers back from a value to its weak key (LuaJIT's weak
-- tables are not ephemerons: such an entry would never go): `info` holds no
-- attempt, and the core finds an attempt's scope through a table weak on
-- both sides.
function M.scope(c)
  local ok, ctx = pcall(get_ctx)
  local map
  if ok and type(ctx) == "table" then
    map = ctx[SCOPES]
    if map == nil then
      map = setmetatable({}, { __mode = "k" })
      ctx[SCOPES] = map
    end
  else
    local co = coroutine.running() or MAIN
    map = by_coroutine[co]
    if map == nil then
      map = setmetatable({}, { __mode = "k" })
      by_coroutine[co] = map
    end
  end
  local s = map[c]
  if s == nil then
    s = { live = setmetatable({}, { __mode = "k" }), watch = {}, queue = {}, head = 1,
          info = setmetatable({}, { __mode = "k" }), running = 0, ends = 0,
          waiters = setmetatable({}, { __mode = "k" }) }
    map[c] = s
    c._scopes[s] = true
  end
  return s
end

--- Every scope of core `c` still alive (for close).
function M.scopes(c)
  local list = {}
  local s = next(c._scopes)
  while s ~= nil do   -- not pairs: may run inside a finalizer (kpayment.async)
    list[#list + 1] = s
    s = next(c._scopes, s)
  end
  return list
end

-- Wake every poller of scope s (each has its own semaphore).
local function wake(s)
  for sema in pairs(s.waiters) do sema:post(1) end
end

-- Wake whoever waits for attempt a itself.
local function wake_attempt(c, a)
  local sema = c._waits[a]
  if sema then
    c._waits[a] = nil
    local n = -sema:count()
    sema:post(n > 0 and n or 1)
  end
end

-- Send one attempt; a raise (a fault of ours, or memory) ends the attempt
-- as cancelled and is kept for the next poll or wait of its scope to
-- raise, so no waiter is left hanging.
local function send(c, s, a, info)
  local ok, why = pcall(c._send, c, a, info.url, info.ms)
  if not ok then
    a:cancel()
    if s.raised == nil then s.raised = why end
  elseif not a:done() then
    -- every way out of a send ends its attempt; one that did not would
    -- leave its waiters with nothing to wait on
    a:fail("network", "the attempt ended without an outcome (a fault of kpayment's)", false)
  end
  s.info[a] = nil
  c._scope_of[a] = nil
end

local function thread_main(c, s, a, info)
  send(c, s, a, info)
  s.running = s.running - 1
  s.ends = s.ends + 1
  wake(s)
  wake_attempt(c, a)
end

local function raise_kept(s)
  local why = s.raised
  if why ~= nil then
    s.raised = nil
    error(why, 0)
  end
end

-- The runner of an nginx core (see kpayment.transport).
local runner = { sleep = M.sleep }

function runner.start(c, a, url, ms)
  M.check_phase(c._kind)
  local s = M.scope(c)
  local q = s.queue
  q[#q + 1] = a
  s.info[a] = { url = url, ms = ms }
  c._scope_of[a] = s
end

-- An attempt goes out: whoever waits for it finds it lost once its
-- timeout and a second have passed without an outcome (runner.wait).
local function mark_sent(info)
  info.sent = true
  info.until_at = info.ms >= 0 and monotonic() + info.ms / 1000 + 1 or nil
end

-- Take queued attempts of scope s off the queue's head: with `spawn`, a
-- light thread for each one still to send; without, only those already
-- sent (a waiter sent them itself) or ended, up to the first still to
-- send, so that a scope whose calls all block keeps no queue.
local function take_queued(c, s, spawn_them)
  local q = s.queue
  while q[s.head] ~= nil do
    local a = q[s.head]
    local info = s.info[a]
    local to_send = info and not info.sent and not a:done()
    if to_send and not spawn_them then break end
    q[s.head] = nil
    s.head = s.head + 1
    if to_send then
      mark_sent(info)
      s.running = s.running + 1
      local th, err = spawn(thread_main, c, s, a, info)
      if not th then
        s.running = s.running - 1
        a:cancel()
        error("kpayment: cannot start a light thread: " .. tostring(err), 0)
      end
    elseif info and not info.sent then
      s.info[a], c._scope_of[a] = nil, nil
    end
  end
  if q[s.head] == nil then s.queue, s.head = {}, 1 end
end

local function spawn_queued(c, s)
  take_queued(c, s, true)
end

function runner.mark(c)
  return M.scope(c).ends
end

-- How many waits the requests of scope s have on work that others run
-- (kpayment.async's followers): a walk with `next`, as live_list's.
local function following(s)
  local set, n = s.followers, 0
  if set == nil then return 0 end
  local req, k = next(set)
  while req ~= nil do
    n = n + k
    req, k = next(set, req)
  end
  return n
end

local LOST = "the light thread or nginx request that sent this attempt ended before it"

-- How many attempts of scope s callers are sending in their own
-- coroutines (runner.wait).  One whose light thread was killed meanwhile
-- is ended as lost once its timeout and a second have passed, as a waiter
-- of it would (runner.wait), so that those who follow it end too.
local function inline(s)
  local set, n, now = s.inline, 0, nil
  if set == nil then return 0 end
  local a, info = next(set)
  while a ~= nil do
    local na, ninfo = next(set, a)
    if a:done() then
      set[a] = nil
    elseif info.until_at then
      now = now or monotonic()
      if now > info.until_at then
        set[a] = nil
        a:fail("network", LOST)
        s.ends = s.ends + 1
      else
        n = n + 1
      end
    else
      n = n + 1
    end
    a, info = na, ninfo
  end
  return n
end

-- poll(ms, mark): with a mark, the caller has nothing to do until an
-- attempt ends, so poll(0) yields a millisecond too (a loop of poll(0)
-- calls must let the light threads run); without one, poll(0) only starts
-- the queued attempts.
function runner.poll(c, ms, mark)
  local s = M.scope(c)
  raise_kept(s)
  spawn_queued(c, s)
  -- requests of this scope that follow a shared call count as running: its
  -- timer wakes this scope's pollers (M.wake_all) whenever it moves; so do
  -- attempts a caller sends itself (runner.wait wakes them)
  local running = s.running + following(s) + inline(s)
  if running == 0 or mark == nil and ms <= 0 or (mark ~= nil and s.ends ~= mark) then
    raise_kept(s)
    return running
  end
  M.wait_on(s.waiters, ms)
  raise_kept(s)
  return s.running + following(s) + inline(s)
end

function runner.wait(c, a, ms)
  local s = c._scope_of[a]
  local info = s and s.info[a]
  if info == nil then return end
  if not info.sent then
    -- not sent yet: send it here, in the caller's own coroutine; others
    -- may wait for it too (callers of a shared call), and find it lost if
    -- this light thread is killed meanwhile.  A poll of this scope counts
    -- it as running, and is woken when it ends.
    mark_sent(info)
    s.inline = s.inline or setmetatable({}, { __mode = "k" })
    s.inline[a] = info
    send(c, s, a, info)
    s.inline[a] = nil
    s.ends = s.ends + 1
    take_queued(c, s, false)
    wake(s)
    wake_attempt(c, a)
    raise_kept(s)
    return
  end
  -- under way in a light thread: wait for that attempt alone
  local sema = c._waits[a]
  if sema == nil then
    sema = semaphore.new(0)
    c._waits[a] = sema
  end
  sema:wait(ms / 1000)
  raise_kept(s)
  -- the light thread that sent it may have been killed, or the nginx
  -- request that ran it ended, and its thread with it
  if not a:done() and info.until_at and monotonic() > info.until_at then
    a:fail("network", LOST)
  end
end

-- A caller's pause (a retry's wait): as long as `seconds`, or until an
-- attempt of its scope ends or the client closes (a poller's wake-up), so
-- that a close never waits for a retry's time.  Waking early is allowed:
-- every pause is in a loop that looks again.
function runner.idle(c, seconds)
  M.wait_on(M.scope(c).waiters, seconds * 1000)
end

function runner.close(c)
  local list = M.scopes(c)
  for i = 1, #list do wake(list[i]) end
end

-- Shared calls.  Requests with the same key in flight on a worker's
-- client share one call (kpayment.async's flights); inside nginx that call
-- runs in a timer of its own, so that it outlives the nginx request that
-- started it, and every request that follows it waits on a semaphore of
-- its own that the timer posts whenever the call moves.  At most
-- MAX_DRIVERS such timers run per client (each holds one of nginx's
-- lua_max_running_timers, 256 by default); past that, and with the
-- subrequest transport (no subrequests in timers), a call is shared within
-- its own nginx request only.
M.MAX_DRIVERS = 64

-- nginx accepts a timer, then drops it when it is due if
-- lua_max_running_timers are running ("are not enough" in the error log):
-- a timer not started this long after it was due is taken for dropped.
M.DROPPED_AFTER = 0.2

-- Forget the timers given out that have started or were dropped: a drop
-- that no caller saw (its callers gone first) still frees its place.
local function sweep(c)
  local list, keep = c._unstarted, 0
  for i = 1, #list do
    local h = list[i]
    list[i] = nil
    if not h.started and not M.dropped(c, h) then
      keep = keep + 1
      list[keep] = h
    end
  end
end

--- Run fn(premature) in a timer of its own.  The handle it returns says
-- whether the timer has started (`started`); false when it cannot.
function M.drive(c, fn)
  M.check_phase(c._kind)   -- where the caller cannot wait, it cannot follow
  if c._kind ~= "cosocket" then return false end
  sweep(c)
  if c._drivers >= M.MAX_DRIVERS then return false end
  local handle = { started = false, dropped = false, due = monotonic() }
  local function run(premature)
    if handle.dropped then return end   -- given up for lost: counted already
    handle.started = true
    local ok, why = pcall(fn, premature)
    c._drivers = c._drivers - 1
    if not ok then ngx.log(ngx.ERR, "kpayment: a shared call failed: ", tostring(why)) end
  end
  local ok, started = pcall(ngx.timer.at, 0, run)
  if not ok or not started then return false end
  c._drivers = c._drivers + 1
  c._unstarted[#c._unstarted + 1] = handle
  return handle
end

--- Whether the timer of `handle` (M.drive) was dropped by nginx: not
-- started DROPPED_AFTER seconds after it was due.  Once so, it never runs
-- its function, and no longer counts against MAX_DRIVERS.
function M.dropped(c, handle)
  if handle.dropped then return true end
  if handle.started or monotonic() < handle.due + M.DROPPED_AFTER then return false end
  handle.dropped = true
  c._drivers = c._drivers - 1
  return true
end

--- Wait at most ms milliseconds for a post to a semaphore of the caller's
-- own, kept in the set `waiters` meanwhile.
function M.wait_on(waiters, ms)
  local sema = semaphore.new(0)
  waiters[sema] = true
  sema:wait(math_max(ms, 1) / 1000)
  waiters[sema] = nil
end

--- Wake every poller of each scope in `scopes` (counting it as an end,
-- for their marks) and every semaphore in `waiters`.
function M.wake_all(scopes, waiters)
  for s in pairs(scopes) do
    s.ends = s.ends + 1
    wake(s)
  end
  for sema in pairs(waiters) do sema:post(1) end
end

--- A core for the transport `name` ("cosocket" or "subrequest") over
-- resolved options `cfg`.
function M.core(cfg, name)
  if name ~= "cosocket" and name ~= "subrequest" then
    error("kpayment: bad option 'transport' (\"curl\", \"cosocket\" or \"subrequest\" expected)", 0)
  end
  local module = require("kpayment." .. name)
  local c = transport.new(cfg, module.send, name, runner, "nginx/" .. M.nginx_version())
  c._kind = name
  c._scopes = setmetatable({}, { __mode = "k" })
  c._scope_of = setmetatable({}, { __mode = "kv" })   -- attempt -> its scope
  c._waits = setmetatable({}, { __mode = "k" })   -- attempt -> its waiter's semaphore
  c._scope = M.scope
  -- the worker's shared calls, by key (kpayment.async), held by their
  -- callers and timers
  c._flights = setmetatable({}, { __mode = "v" })
  c._drivers = 0
  c._unstarted = {}   -- timer handles not seen started yet (M.drive)
  module.setup(c, cfg)
  return c
end

--- nginx's version as "1.22.1".
function M.nginx_version()
  local v = ngx.config and ngx.config.nginx_version or 0
  return string_format("%d.%d.%d", math_floor(v / 1000000), math_floor(v / 1000) % 1000, v % 1000)
end

return M
