--- kpayment.Client: a configured connection to the API and the calls on
-- it.  Every call runs through one request state machine
-- (kpayment.async); this module checks arguments and wires the parts.
-- @module kpayment

local core = require("kpayment.core")
local config = require("kpayment.config")
local request = require("kpayment.request")
local async = require("kpayment.async")
local transport = require("kpayment.transport")
local log = require("kpayment.log")
local errors = require("kpayment.errors")
local cache = require("kpayment.cache")

local setmetatable, getmetatable, pairs, type, tostring, error, pcall =
  setmetatable, getmetatable, pairs, type, tostring, error, pcall
local newproxy = rawget(_G, "newproxy")   -- 5.1 and LuaJIT only
local math_huge = math.huge

local M = {}

--- A client: the configuration of `kpayment.new`, and the connections,
-- DNS cache and TLS sessions that its calls share (connections are kept
-- alive from call to call).  Release it with `close`, a `<close>` variable
-- (Lua 5.4), or let the garbage collector do it: either way every request
-- still pending ends as `"cancelled"` and its `on_done` is called once
-- (also when the Lua state closes, `lua_close`: finalizers run there on
-- every Lua; from then on no client or request can be made, and trying
-- raises).  A request without `on_done` that its caller still holds
-- keeps its client alive.  `tostring(client)` shows the base URL only.
--
-- Over libcurl a client holds a multi handle (connections and the DNS
-- cache, at most `pool_size` idle connections), a share handle (TLS
-- sessions) and a pool of up to 16 idle easy handles, each reused for one
-- transfer at a time; inside nginx, the worker's cosocket pools.
-- @type Client
local Client = {}
Client.__index = Client
Client.__name = "kpayment.Client"

-- The `cache` option's store: the client's own, or inside nginx a shared
-- dict, keyed by a hash of what identifies the client and the API it
-- reaches: the base URL and the addresses its names resolve to
-- (`resolve`: staging and production behind one name), the credentials,
-- and where and for what scope tokens come from.
local function new_cache(cfg, timeout)
  if cfg.cache.dict == nil then return cache.new(cfg.cache) end
  if transport.ngx() == nil then
    error("kpayment: bad option 'cache' ('dict' needs nginx's lua_shared_dict: inside nginx only)", 0)
  end
  local identity = table.concat({ cfg.base_url, table.concat(cfg.resolve or {}, "\1"),
                                  cfg.username or "", cfg.password or "", cfg.bearer_token or "",
                                  cfg.client_id or "", cfg.client_secret or "", cfg.token_url or "",
                                  cfg.scope or "" }, "\0")
  -- a worker that died while asking the API holds its lock no longer than this
  local lock_seconds = (cfg.deadline or (timeout > 0 and timeout or 30)) + 1
  return cache.new_dict(cfg.cache, identity, lock_seconds)
end

--- A client for the resolved configuration `cfg` (kpayment.config).
-- @local
function M.new(cfg)
  if core.closing() then
    error("kpayment: the Lua state is closing (lua_close): no new client", 0)
  end
  local timeout = cfg.timeout or 30
  local secrets = config.secrets(cfg)
  local longest = secrets[1] and #secrets[1] or 0
  local core_cfg = {}
  for k, v in pairs(cfg) do core_cfg[k] = v end
  -- enough of an error body that a secret cut at the kept length is whole
  core_cfg.snippet = math.min(core.LIMITS.snippet + longest, core.LIMITS.max_snippet)
  local core_of = transport.select(core_cfg, secrets)
  local in_nginx = transport.ngx() ~= nil
  local settings = config.settings(cfg)
  settings.transport = transport.default(cfg)
  settings.from.transport = cfg.transport ~= nil and "option" or "default"
  local self = setmetatable({
    base_url = cfg.base_url,
    _defaults = { skin = cfg.skin, locale = cfg.locale },
    _url_cache = {},   -- the last URL built and its values (request.cached_url)
    _core = core_of,   -- libcurl, nginx or the `transport` option
    _closed = false,
    -- the requests of kpayment.async: one scope, or one per nginx request
    _one = { live = setmetatable({}, { __mode = "k" }), watch = {} },
    _scoped = type(core_of) == "table" and core_of._scope or nil,
    _seq = 0,
    _retries = cfg.retries or 2,
    -- one bound for all attempts together; by default the timeout
    _deadline = cfg.deadline or (timeout > 0 and timeout or math_huge),
    -- given, it holds in wall-clock time even while the budget pauses a
    -- transfer (the timeout does not count that time)
    _hard_deadline = cfg.deadline ~= nil,
    _timeout = timeout,
    _budget = cfg.decode_budget or config.DEFAULT_DECODE_BUDGET,
    _insecure = cfg.insecure == true,
    _debug = cfg.debug == true,
    _personal = cfg.log_personal_data == true,
    _logger = cfg.logger or (in_nginx and require("kpayment.nginx").logger or log.stderr),
    _url_in_logs = not in_nginx,   -- inside nginx, log lines carry no customer id
    _on_request = cfg.on_request,     -- observability hooks (kpayment.log)
    _on_response = cfg.on_response,
    _secrets = secrets,
    _settings = settings,
    _auth = cfg.username ~= nil or cfg.bearer_token ~= nil or cfg.client_id ~= nil,
    _oauth = cfg.client_id and require("kpayment.oauth").new(cfg) or nil,
    _coalesce = cfg.coalesce ~= false,
    _cache = cfg.cache and new_cache(cfg, timeout) or nil,
    -- the core that decodes copies of bodies (cache hits, a shared call's
    -- other callers) in slices, made on first use (kpayment.async)
    _copy_cfg = { max_body = cfg.max_body },
    _copier = nil,
  }, Client)
  if newproxy then
    -- 5.1 and LuaJIT: a table has no finalizer; a proxy's stands in
    local proxy = newproxy(true)
    getmetatable(proxy).__gc = function() Client.__gc(self) end
    self._gc = proxy
  end
  -- last: the core's watch on lua_close must be newer than this client's
  -- finalizer, to run before it (kp_client.c)
  core.track_close()
  return self
end

-- Keys a parameter table may carry besides the query parameters.
local GET_KEYS = { fields = true, coalesce = true, cache = true }
local START_KEYS = { fields = true, on_done = true, coalesce = true, cache = true }

-- The per-call switches of coalescing and the cache.
local FLAGS = { "coalesce", "cache" }

-- What calls in flight share one API call by: the URL (customer, dealer,
-- skin, locale) and the projection; nil when the call is not to share.
local function coalesce_key(self, url, params)
  local on = params.coalesce
  if on == nil then on = self._coalesce end
  if not on then return nil end
  local fields = params.fields
  if fields == nil then return url end
  if type(fields) ~= "table" then return url .. "\0" .. tostring(fields) end  -- a projection: itself
  local paths = {}
  for i = 1, #fields do paths[i] = fields[i] end
  table.sort(paths)
  return url .. "\0" .. table.concat(paths, "\0")
end

-- The URL, projection, coalescing key, customer and whether a fresh cache
-- entry may answer, of one parameter table; raises at `level`.
local function prepare(self, params, level, extra, what)
  if getmetatable(self) ~= Client then
    error("kpayment: " .. what .. " must be called as client:" .. what .. "{…}", level)
  end
  if self._closed then error("kpayment: attempt to use a closed client", level) end
  local url, msg = request.cached_url(self._url_cache, self.base_url, params, self._defaults, extra,
    config.MISSING)
  if not url then error("kpayment: " .. msg, level) end
  local fields = params.fields
  if fields ~= nil then
    -- the core's trie builder is the one check of a projection
    local ok, trie = pcall(core.fields, fields)
    if not ok and errors.passes_through(trie) then error(trie, 0) end
    if not ok then
      error("kpayment: bad parameter 'fields': " .. (tostring(trie):match("fields: (.*)$")
        or "a list of field paths expected"), level)
    end
    fields = trie
  end
  for _, k in ipairs(FLAGS) do
    local v = params[k]
    if v ~= nil and type(v) ~= "boolean" then
      error("kpayment: bad parameter '" .. k .. "' (boolean expected, got " .. type(v) .. ")", level)
    end
  end
  return url, fields, coalesce_key(self, url, params), params.customer_uuid, params.cache ~= false
end

--- Client:get_offers, and kpayment.get_offers on the module's client;
-- raises at `level` (as `error` counts).
-- @local
function M.get(self, params, level)
  local url, fields, key, customer, fresh_ok = prepare(self, params, level + 1, GET_KEYS, "get_offers")
  local req = async.new(self, url, fields, nil, key, customer, fresh_ok)
  async.wait(req)
  return req:result()
end

--- Fetch a customer's finance offers, retrying what another attempt may
-- fix (the `retries` and `deadline` options).  Blocks until the call ends;
-- inside nginx it yields instead, so the worker serves other requests.
-- @tparam table params the call's parameters:
-- @tparam string params.customer_uuid the customer
-- @tparam string params.dealer_uuid the dealer
-- @tparam[opt] string params.skin over the client's `skin` option
-- @tparam[opt] string params.locale over the client's `locale` option
-- @tparam[opt] {string,...} params.fields dotted paths inside each offer,
-- e.g. `{ "id", "status", "customer.lastName" }`: only those are decoded,
-- everything else is skipped without being built
-- @tparam[opt] boolean params.coalesce `false`: make an API call of its
-- own rather than join an identical one in flight (the `coalesce` option)
-- @tparam[opt] boolean params.cache `false`: ask the API even when the
-- `cache` option holds a fresh entry (what it answers is kept)
-- @treturn[1] OfferList the offers, with the API's own field names
-- @return[2] nil
-- @treturn[2] Error what went wrong
-- @raise on a missing, empty, non-string or unknown parameter, a value over
-- 1024 bytes or with control characters, a bad `fields` list, and on a
-- closed client
-- @usage
-- local offers, err = client:get_offers{ customer_uuid = c, dealer_uuid = d }
-- if not offers then print(err) return end
-- for _, offer in ipairs(offers) do print(offer.id, offer:customer_name()) end
function Client:get_offers(params)
  local offers, err = M.get(self, params, 3)
  return offers, err
end

--- Start fetching offers and return at once with a `Request`; the work
-- happens in `Client:poll`.  With `on_done` the client keeps the request
-- until it has called it back; without, the caller keeps the request, and
-- one that is garbage collected while running is cancelled.
-- @tparam table params as for `get_offers`, and:
-- @tparam[opt] function params.on_done `function(offers, err, req)`,
-- called once by `poll` when the request ends (or at once by
-- `Request:cancel` or `close`); what it raises is logged, never passed on
-- @treturn Request
-- @raise as `get_offers` does, and when `on_done` is not a function
-- @usage
-- client:start_offers{ customer_uuid = c, dealer_uuid = d,
--   on_done = function(offers, err) --[[ … ]] end }
-- while client:poll(10) > 0 do end
function Client:start_offers(params)
  local url, fields, key, customer, fresh_ok = prepare(self, params, 3, START_KEYS, "start_offers")
  local on_done = params.on_done
  if on_done ~= nil and type(on_done) ~= "function" then
    error("kpayment: bad parameter 'on_done' (function expected, got " .. type(on_done) .. ")", 2)
  end
  return async.new(self, url, fields, on_done, key, customer, fresh_ok)
end

--- Do the work that is ready for every request of this client: network
-- I/O (waiting at most `ms` milliseconds for some; receiving what has
-- arrived takes at most about 1 ms a call, and a transfer left paused
-- never loses time from its timeout, only from a `deadline` given),
-- retry timers, then, for at most
-- `budget_ms` milliseconds, decoding finished responses (a large one over
-- several calls, between two of its records) and calling the `on_done` of
-- every complete request, in start order, while the budget lasts (the
-- callbacks' time counts; a response whose decode ends in this call is
-- delivered in it).  So a frame's `poll(0)` costs the network work that is
-- ready and about one budget.  Inside nginx, waiting yields.
-- @tparam[opt=0] number ms milliseconds to wait at most (0 to 86400000);
-- `0` never waits
-- @tparam[opt] number budget_ms milliseconds of decoding at most (at least
-- one record is decoded); default: the `decode_budget` option (2);
-- `math.huge` decodes each response whole
-- @treturn integer requests not yet delivered, counted after the callbacks
-- ran: those with `on_done` until it was called, others while running,
-- waiting for a retry or decoding; `0` on a closed client
-- @raise when `ms` or `budget_ms` is out of range
-- @usage
-- -- once a frame:
-- client:poll(0)
function Client:poll(ms, budget_ms)
  ms = ms or 0
  if type(ms) ~= "number" or ms ~= ms or ms < 0 or ms > core.LIMITS.seconds * 1000 then
    error(("kpayment: bad argument #1 to 'poll' (milliseconds from 0 to %d expected)")
      :format(core.LIMITS.seconds * 1000), 2)
  end
  if budget_ms ~= nil and not config.budget_ok(budget_ms) then
    error("kpayment: bad argument #2 to 'poll' (milliseconds from 0 up, or math.huge, expected)", 2)
  end
  return async.poll(self, ms, budget_ms or self._budget)
end

--- What an event loop (epoll, libuv, SDL's wait, poll(2)) waits on
-- between two `poll` calls, so that a host sleeps until there is work
-- instead of polling: the sockets to watch, and how long it may sleep.
-- After `poll`, call `watch`, wait until one of `fds` is ready as asked or
-- `timeout_ms` passes, then `poll` again.  No descriptor-number limit (no
-- `select`): descriptors above 1024 work.  From C: `kpayment_watch`
-- (include/kpayment.h).
-- @treturn {table,...} fds: `{ fd = n, read = bool, write = bool }` each
-- @treturn integer timeout_ms: `0` when there is work now (a response to
-- decode or deliver, a transfer paused by the budget, a retry due), `-1`
-- when nothing is pending, else the milliseconds until kpayment needs a
-- `poll` (a timeout, a retry timer), whatever the sockets do.  A request
-- held without `on_done` that has ended is no work for `poll`: it waits
-- for its caller's `result()`, and the loop may sleep meanwhile
-- @usage
-- local fds, timeout = client:watch()
-- my_loop_wait(fds, timeout)   -- e.g. poll(2), epoll_wait
-- client:poll(0)
function Client:watch()
  if getmetatable(self) ~= Client then
    error("kpayment: watch must be called as client:watch()", 2)
  end
  return async.watch(self)
end

--- Fetch offers for many customers at once over the client's connections
-- (multiplexed over HTTP/2 where the server offers it), each call retried
-- as `get_offers` would.  One failing customer never hides the others.
-- All results stay in memory until the call returns: for very long lists,
-- split them or use `start_offers` with `on_done`.
-- @tparam {table,...} list parameter tables, as for `get_offers`
-- (`fields` included); every entry is checked before anything is sent
-- @tparam[opt] table opts
-- @tparam[opt=8] integer opts.concurrency requests in flight at most (1 to 1024)
-- @tparam[opt] function opts.on_progress `function(done, total)`, called
-- after each completion; what it raises is logged, never passed on
-- @treturn {table,...} one entry per input, in input order: `{ offers = OfferList }`
-- or `{ err = Error }`; if the client is closed meanwhile, unfinished
-- entries are errors of kind `"cancelled"`
-- @raise on a bad entry (`kpayment: list[3]: bad parameter …`), a bad or
-- unknown option, and on a closed client
-- @usage
-- local results = client:get_offers_many({
--   { customer_uuid = c1, dealer_uuid = d },
--   { customer_uuid = c2, dealer_uuid = d },
-- }, { concurrency = 4 })
-- for i, r in ipairs(results) do print(i, r.offers and #r.offers or tostring(r.err)) end
function Client:get_offers_many(list, opts)
  if getmetatable(self) ~= Client then
    error("kpayment: get_offers_many must be called as client:get_offers_many(…)", 2)
  end
  if type(list) ~= "table" then
    error("kpayment: bad argument #1 to 'get_offers_many' (table expected, got " .. type(list) .. ")", 2)
  end
  if self._closed then error("kpayment: attempt to use a closed client", 2) end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "concurrency" and k ~= "on_progress" then
      error("kpayment: unknown option '" .. errors.text(k) .. "'", 2)
    end
  end
  local concurrency, on_progress = opts.concurrency or config.CONCURRENCY.default, opts.on_progress
  local problem = config.concurrency_problem(concurrency)
  if problem then error("kpayment: bad option 'concurrency' (" .. problem .. " expected)", 2) end
  if on_progress ~= nil and type(on_progress) ~= "function" then
    error("kpayment: bad option 'on_progress' (function expected)", 2)
  end
  -- Every entry is checked before anything is sent.
  local urls, fields, keys, customers, fresh_ok = {}, {}, {}, {}, {}
  for i = 1, #list do
    local ok, url, f, key, customer, fresh = pcall(prepare, self, list[i], 0, GET_KEYS, "get_offers_many")
    if not ok and errors.passes_through(url) then error(url, 0) end
    if not ok then error((url:gsub("^kpayment: ", "kpayment: list[" .. i .. "]: ")), 2) end
    urls[i], fields[i], keys[i], customers[i], fresh_ok[i] = url, f, key, customer, fresh
  end
  return async.many(self, urls, fields, keys, customers, fresh_ok, concurrency, on_progress)
end

--- Forget what the `cache` option keeps for one customer, or for all.
-- @tparam[opt] string customer_uuid nil: every entry
-- @treturn integer how many entries went (0 without a cache)
function Client:purge(customer_uuid)
  if getmetatable(self) ~= Client then
    error("kpayment: purge must be called as client:purge(customer_uuid)", 2)
  end
  if customer_uuid ~= nil and type(customer_uuid) ~= "string" then
    error("kpayment: bad argument #1 to 'purge' (string expected, got " .. type(customer_uuid) .. ")", 2)
  end
  return self._cache and self._cache:purge(customer_uuid) or 0
end

--- Release the connections and buffers now rather than at collection
-- (also the `__close` of a `<close>` variable).  Every request not yet
-- delivered ends as `"cancelled"` (those waiting for a retry too), and each
-- pending `on_done` is called once, in start order.  When one of them
-- runs out of memory (or is interrupted by Ctrl-C), the others are still
-- called, then that error is raised.  Closing twice does nothing; any
-- other call on a closed client raises, but `poll` returns 0.
function Client:close()
  if self._closing then return end   -- closed already, or a callback of this close
  self._closing = true
  if not self._closed then
    self._closed = true
    self._core:close()
    if self._copier then self._copier:close() end
  end
  local ok, why = pcall(async.close_all, self)
  if not ok then
    -- out of memory or Ctrl-C: the next close (or the collector's) ends
    -- whatever this one could not
    self._closing = nil
    error(why, 0)
  end
end

Client.__close = Client.close

-- A client collected with requests pending ends them as close() does:
-- each pending on_done gets (nil, cancelled), once.  Finalizers run when
-- the state closes too (lua_close), on every Lua.  What close would raise
-- has no caller here: 5.4 would make it a warning, 5.1 and LuaJIT raise it
-- from whatever allocation ran the collector.
local function finalize(self)
  pcall(Client.close, self)
end
Client.__gc = finalize

--- The client's configuration as `kpayment.new` resolved it, without its
-- secrets: what a diagnostic (`kpayment doctor`) shows.  A new table each
-- call with every option's value, defaults filled in (the password, the
-- bearer token and functions left out; a proxy's credentials
-- `[redacted]`), `credentials` (`"basic"`, `"bearer"`,
-- `"client_credentials"` or `"none"`),
-- `transport` (`"curl"`, `"cosocket"`, `"subrequest"` or `"function"`),
-- and `from`: for each, `"option"`, the environment variable it came from,
-- or `"default"`.
-- @treturn table
function Client:settings()
  local copy, from = {}, {}
  for k, v in pairs(self._settings) do
    if k ~= "from" then copy[k] = v end
  end
  for k, v in pairs(self._settings.from) do from[k] = v end
  copy.from = from
  return copy
end

function Client.__tostring(self)
  return "kpayment.Client (" .. self.base_url .. (self._closed and ", closed" or "") .. ")"
end

M.Client = Client
return M
