--- kpayment.Client: a configured connection to the API and the calls on
-- it.  Every call runs through one request state machine
-- (kpayment.async); this module checks arguments and wires the parts.
-- @module kpayment.client

local core = require("kpayment.core")
local config = require("kpayment.config")
local request = require("kpayment.request")
local async = require("kpayment.async")
local transport = require("kpayment.transport")
local log = require("kpayment.log")
local errors = require("kpayment.errors")

local setmetatable, getmetatable, pairs, type, tostring, error, pcall =
  setmetatable, getmetatable, pairs, type, tostring, error, pcall
local math_type, math_huge = config.math_type, math.huge

local M = {}

local Client = {}
Client.__index = Client
Client.__name = "kpayment.Client"

--- A client for the resolved configuration `cfg` (kpayment.config).
function M.new(cfg)
  local timeout = cfg.timeout or 30
  local secrets = config.secrets(cfg)
  local longest = secrets[1] and #secrets[1] or 0
  local core_cfg = {}
  for k, v in pairs(cfg) do core_cfg[k] = v end
  -- enough of an error body that a secret cut at the kept length is whole
  core_cfg.snippet = math.min(core.LIMITS.snippet + longest, core.LIMITS.max_snippet)
  return setmetatable({
    base_url = cfg.base_url,
    _defaults = { skin = cfg.skin, locale = cfg.locale },
    _core = transport.select(core_cfg),   -- libcurl, nginx or the `transport` option
    _closed = false,
    _live = setmetatable({}, { __mode = "k" }),   -- requests not yet ended
    _watch = {},   -- requests with on_done not yet called back, in start order
    _seq = 0,
    _retries = cfg.retries or 2,
    -- one bound for all attempts together; by default the timeout
    _deadline = cfg.deadline or (timeout > 0 and timeout or math_huge),
    _timeout = timeout,
    _budget = cfg.decode_budget or config.DEFAULT_DECODE_BUDGET,
    _insecure = cfg.insecure == true,
    _debug = cfg.debug == true,
    _personal = cfg.log_personal_data == true,
    _logger = cfg.logger or log.stderr,
    _secrets = secrets,
    _auth = cfg.username ~= nil or cfg.bearer_token ~= nil,
  }, Client)
end

-- Keys a parameter table may carry besides the query parameters.
local GET_KEYS = { fields = true }
local START_KEYS = { fields = true, on_done = true }

-- The URL and projection of one parameter table; raises at `level`.
local function prepare(self, params, level, extra, what)
  if getmetatable(self) ~= Client then
    error("kpayment: " .. what .. " must be called as client:" .. what .. "{…}", level)
  end
  if self._closed then error("kpayment: attempt to use a closed client", level) end
  local url, msg = request.url(self.base_url, params, self._defaults, extra, config.MISSING)
  if not url then error("kpayment: " .. msg, level) end
  local fields = params.fields
  if fields ~= nil then
    -- the core's trie builder is the one check of a projection
    local ok, trie = pcall(core.fields, fields)
    if not ok and errors.is_memory_error(trie) then error(trie, 0) end
    if not ok then
      error("kpayment: bad parameter 'fields': " .. (tostring(trie):match("fields: (.*)$")
        or "a list of field paths expected"), level)
    end
    fields = trie
  end
  return url, fields
end

--- Fetch a customer's finance offers, retrying what is worth retrying.
-- @tparam table params `customer_uuid`, `dealer_uuid`, and optionally
-- `skin`, `locale` (over the client's defaults) and `fields` (a list of
-- dotted paths inside each offer: only those are decoded)
-- @return an offer list (see `offers:meta()`), or nil and an error table
function M.get(self, params, level)
  local url, fields = prepare(self, params, level + 1, GET_KEYS, "get_offers")
  local req = async.new(self, url, fields)
  async.wait(req)
  return req:result()
end

function Client:get_offers(params)
  local offers, err = M.get(self, params, 3)
  return offers, err
end

--- Start fetching offers and return at once with a `Request`; the work
-- happens in `client:poll`.  With `on_done = function(offers, err, req)`
-- in the parameters the client keeps the request until it has called it;
-- without, the caller keeps the request, and one that is garbage
-- collected while running is cancelled.
function Client:start_offers(params)
  local url, fields = prepare(self, params, 3, START_KEYS, "start_offers")
  local on_done = params.on_done
  if on_done ~= nil and type(on_done) ~= "function" then
    error("kpayment: bad parameter 'on_done' (function expected, got " .. type(on_done) .. ")", 2)
  end
  return async.new(self, url, fields, on_done)
end

--- Do the work that is ready for every request of this client: network
-- I/O (waiting at most `ms` milliseconds, default 0, for some), retry
-- timers, then decoding finished responses for at most `budget_ms`
-- milliseconds (default: the `decode_budget` option, 2), a large one over
-- several calls, and delivering those complete to their `on_done`.
-- @tparam[opt] number ms
-- @tparam[opt] number budget_ms
-- @treturn integer requests not yet delivered (0 once closed)
function Client:poll(ms, budget_ms)
  ms = ms or 0
  if type(ms) ~= "number" or ms ~= ms or ms < 0 or ms > core.LIMITS.seconds * 1000 then
    error("kpayment: bad argument #1 to 'poll' (milliseconds from 0 to 86400000 expected)", 2)
  end
  if budget_ms ~= nil and not config.budget_ok(budget_ms) then
    error("kpayment: bad argument #2 to 'poll' (milliseconds from 0 up, or math.huge, expected)", 2)
  end
  return async.poll(self, ms, budget_ms or self._budget)
end

--- Fetch offers for many customers at once over the client's connections:
-- at most `concurrency` requests in flight (default 8), each retried as
-- `get_offers` would.  Returns a list in input order of `{ offers = … }` or
-- `{ err = … }`, one entry per input even if the client is closed meanwhile
-- (unfinished entries are then `cancelled`).
-- @tparam table list parameter tables, as for `get_offers`
-- @tparam[opt] table opts `concurrency`, `on_progress(done, total)`
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
      error("kpayment: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  local concurrency, on_progress = opts.concurrency or 8, opts.on_progress
  if math_type(concurrency) ~= "integer" or concurrency < 1 or concurrency > 1024 then
    error("kpayment: bad option 'concurrency' (an integer from 1 to 1024 expected)", 2)
  end
  if on_progress ~= nil and type(on_progress) ~= "function" then
    error("kpayment: bad option 'on_progress' (function expected)", 2)
  end
  -- Every entry is checked before anything is sent.
  local urls, fields = {}, {}
  for i = 1, #list do
    local ok, url, f = pcall(prepare, self, list[i], 0, GET_KEYS, "get_offers_many")
    if not ok and errors.is_memory_error(url) then error(url, 0) end
    if not ok then error((url:gsub("^kpayment: ", "kpayment: list[" .. i .. "]: ")), 2) end
    urls[i], fields[i] = url, f
  end
  return async.many(self, urls, fields, concurrency, on_progress)
end

--- Release the connections and buffers now rather than at collection.
-- Every request not yet delivered ends as "cancelled" (requests waiting for
-- a retry too), and each pending `on_done` is called once, in start order.
function Client:close()
  if self._closed then return end
  self._closed = true
  self._core:close()
  async.close_all(self)
end

Client.__close = Client.close

function Client.__tostring(self)
  return "kpayment.Client (" .. self.base_url .. (self._closed and ", closed" or "") .. ")"
end

M.Client = Client
return M
