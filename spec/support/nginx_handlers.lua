--- Handlers that the nginx specs' locations run inside nginx (LuaJIT):
-- kpayment called as an OpenResty user would, answers in one line of
-- text that the specs read.
--
-- Clients are made once per worker and shared by every request, as the
-- guide advises, one per set of options (the query's `opts`).

local kpayment = require("kpayment")
local ngx = ngx   -- luacheck: globals ngx

local M = {}

local clients = {}

-- Options from the query: base_url (default KPAYMENT_BASE_URL), retries,
-- max_body, timeout, deadline, transport, insecure, resolve (one entry),
-- debug; plus `fresh` for a client of this request alone.
local function options(args)
  local o = {}
  for _, k in ipairs({ "retries", "max_body", "timeout", "connect_timeout", "deadline", "pool_size",
                       "pool_idle_timeout" }) do
    if args[k] then o[k] = tonumber(args[k]) end
  end
  for _, k in ipairs({ "base_url", "transport", "client_id", "client_secret", "token_url", "token_dict" }) do
    o[k] = args[k]
  end
  if args.insecure then o.insecure = true end
  if args.coalesce then o.coalesce = args.coalesce == "true" end
  if args.debug then o.debug = true end
  if args.resolve then o.resolve = { args.resolve } end
  if args.cache_dict then
    o.cache = { dict = args.cache_dict, ttl = tonumber(args.ttl) or 60,
                stale_if_error = tonumber(args.stale) }
  end
  return o
end

--- The client for the query's options, made once per worker.
function M.client(args)
  args = args or ngx.req.get_uri_args()
  local o = options(args)
  if args.fresh then return kpayment.new(o) end
  local key = {}
  for k, v in pairs(o) do
    if type(v) == "table" then v = v[1] or table.concat({ v.dict, v.ttl, v.stale_if_error or "" }, ",") end
    key[#key + 1] = k .. "=" .. tostring(v)
  end
  table.sort(key)
  key = table.concat(key, "&")
  local c = clients[key]
  if not c then
    c = kpayment.new(o)
    clients[key] = c
  end
  return c
end

-- "<count|kind> <status> <attempts> <request id> <seconds> <message>"
local function line(offers, err, t0)
  ngx.update_time()
  local meta = offers and offers:meta() or err
  return table.concat({ offers and #offers or err.kind, tostring(meta.status), tostring(meta.attempts),
    tostring(meta.request_id), string.format("%.3f", ngx.now() - t0),
    offers and "-" or tostring(err.message) }, " ")
end

-- The call's parameters: ?customer=&dealer= (default c-1, d-1).
local function params_of(args)
  return { customer_uuid = args.customer or "c-1", dealer_uuid = args.dealer or "d-1" }
end

--- One get_offers: ?customer=&dealer= and options.
function M.call()
  local args = ngx.req.get_uri_args()
  local c = M.client(args)
  ngx.update_time()
  local t0 = ngx.now()
  local offers, err = c:get_offers(params_of(args))
  ngx.say(line(offers, err, t0))
end

--- One get_offers through a client with a cache (`nocache`: the call's
-- `cache = false`): "<count|kind> cached=<bool> stale=<bool>".
function M.cached()
  local args = ngx.req.get_uri_args()
  local c = M.client(args)
  local params = { customer_uuid = args.customer or "c-1", dealer_uuid = args.dealer or "d-1" }
  if args.nocache then params.cache = false end
  local offers, err = c:get_offers(params)
  local meta = offers and offers:meta() or err
  ngx.say(offers and #offers or err.kind, " cached=", tostring(meta.cached == true), " stale=",
    tostring(meta.stale == true))
end

-- n get_offers in light threads of this request, the i-th for dealer
-- dealer_of(i): the threads, and the start time for `line`.
local function spawn_calls(c, args, n, dealer_of)
  local list = {}
  ngx.update_time()
  local t0 = ngx.now()
  for i = 1, n do
    list[i] = ngx.thread.spawn(function()
      local offers, err = c:get_offers({ customer_uuid = args.customer or "c-1", dealer_uuid = dealer_of(i) })
      return line(offers, err, t0)
    end)
  end
  return list
end

-- Each thread's line from the first-th on, in thread order.
local function say_each(list, first)
  for i = first, #list do
    local ok, res = ngx.thread.wait(list[i])
    ngx.say(ok and res or ("raised " .. tostring(res)))
  end
end

--- Several get_offers in light threads of this request (?threads=N),
-- one line each, in thread order.
function M.threads()
  local args = ngx.req.get_uri_args()
  local list = spawn_calls(M.client(args), args, tonumber(args.threads) or 5,
    function(i) return "d-" .. i end)
  say_each(list, 1)
end

--- Light threads sharing one call, the first of them (the one that sends
-- it) killed after `kill_after` seconds: ?threads=&customer=&kill_after=,
-- and `max_drivers` (the worker's timers for shared calls; 0: none, so the
-- call is sent by a waiter of this request) -> one line per survivor.
function M.threads_kill()
  local args = ngx.req.get_uri_args()
  local nginx_mod = require("kpayment.nginx")
  local drivers = nginx_mod.MAX_DRIVERS
  nginx_mod.MAX_DRIVERS = tonumber(args.max_drivers) or drivers
  local list = spawn_calls(M.client(args), args, tonumber(args.threads) or 5,
    function() return "same" end)
  ngx.sleep(tonumber(args.kill_after) or 0.1)
  ngx.thread.kill(list[1])
  nginx_mod.MAX_DRIVERS = drivers
  say_each(list, 2)
end

--- get_offers_many: ?n=&concurrency=&customer= -> "<ok> <progress> <seconds>"
function M.many()
  local args = ngx.req.get_uri_args()
  local c = M.client(args)
  local n, concurrency = tonumber(args.n), tonumber(args.concurrency)
  local list = {}
  for i = 1, n do list[i] = { customer_uuid = args.customer or "c-1", dealer_uuid = "d-" .. i } end
  local progress = 0
  ngx.update_time()
  local t0 = ngx.now()
  local results = c:get_offers_many(list, { concurrency = concurrency,
    on_progress = function(done) progress = done end })
  ngx.update_time()
  local ok = 0
  for i = 1, n do if results[i].offers then ok = ok + 1 end end
  ngx.say(ok, " ", progress, " ", string.format("%.3f", ngx.now() - t0))
end

--- start_offers + poll: ?n=&customer= -> "<delivered> <offers each> <polls>"
function M.poll()
  local args = ngx.req.get_uri_args()
  local c = M.client(args)
  local n = tonumber(args.n) or 3
  local got = {}
  for i = 1, n do
    c:start_offers({ customer_uuid = args.customer or "c-1", dealer_uuid = args.dealer or "d-" .. i,
      on_done = function(offers, err) got[#got + 1] = offers and #offers or err.kind end })
  end
  local polls = 0
  local ms = tonumber(args.ms) or 100
  while c:poll(ms) > 0 and polls < 100000 do polls = polls + 1 end
  ngx.say(#got, " ", table.concat(got, ","), " ", polls)
end

--- In one nginx request, a light thread's get_offers and, in the main
-- thread, start_offers + poll (or get_offers_many with `many`) of the same
-- customer: ?customer=&max_drivers=&kill_after= and options ->
-- "thread=<count|kind|killed> main=<count|kind>[,<count|kind>]".
function M.thread_and_poll()
  local args = ngx.req.get_uri_args()
  local nginx_mod = require("kpayment.nginx")
  local drivers = nginx_mod.MAX_DRIVERS
  nginx_mod.MAX_DRIVERS = tonumber(args.max_drivers) or drivers
  local c = M.client(args)
  local params = params_of(args)
  local function text(offers, err) return offers and tostring(#offers) or err.kind end
  local th = ngx.thread.spawn(function() return text(c:get_offers(params)) end)
  local main
  if args.kill_after then   -- the thread, which sends the shared call, killed
    ngx.sleep(tonumber(args.kill_after))
    ngx.thread.kill(th)
  end
  if args.many then
    local res = c:get_offers_many({ params, params })
    main = text(res[1].offers, res[1].err) .. "," .. text(res[2].offers, res[2].err)
  else
    c:start_offers({ customer_uuid = params.customer_uuid, dealer_uuid = params.dealer_uuid,
                     on_done = function(offers, err) main = text(offers, err) end })
    local turns = 0
    while c:poll(50) > 0 and turns < 1000 do turns = turns + 1 end
  end
  nginx_mod.MAX_DRIVERS = drivers
  local thread = "killed"
  if not args.kill_after then thread = select(2, ngx.thread.wait(th)) end
  ngx.say("thread=", tostring(thread), " main=", tostring(main))
end

--- One get_offers in a light thread, killed after ?after= seconds
-- (default 0.1): "killed <ok> <err>".  The request must still end.
function M.kill_one()
  local args = ngx.req.get_uri_args()
  local c = M.client(args)
  local th = ngx.thread.spawn(function() return c:get_offers(params_of(args)) end)
  ngx.sleep(tonumber(args.after) or 0.1)
  local ok, err = ngx.thread.kill(th)
  ngx.say("killed ", tostring(ok), " ", tostring(err))
end

--- The `close` spec's pair, on a client of their own (`pool_size=3`):
-- /t/close_wait starts a call with on_done and polls until it is
-- delivered, saying where its on_done ran; /t/close_now closes the client.
function M.close_wait()
  local args = ngx.req.get_uri_args()
  local c = M.client(args)
  local ran
  c:start_offers({ customer_uuid = args.customer or "mock:stall:2", dealer_uuid = "d-close",
                   on_done = function(_, err)
                     ran = ngx.var.uri .. " " .. (err and err.kind or "offers")
                     ngx.say("on_done ran in ", ran)
                   end })
  local polls, ms = 0, tonumber(args.ms) or 100
  while c:poll(ms) > 0 and polls < 100 do polls = polls + 1 end
  ngx.say("polled until ", tostring(ran))
end

function M.close_now()
  M.client(ngx.req.get_uri_args()):close()
  ngx.say("closed")
end

return M
