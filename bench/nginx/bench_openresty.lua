--- The OpenResty rows of `make bench-http` (bench/nginx/nginx.conf.in):
-- content handlers of one server, each fetching a recorded response from
-- the HTTP server of the same nginx (?offers=N picks offers-N.json: 1, 10
-- or 1000) and answering the number of offers (the cosocket row, which
-- does not decode, answers the body's size).
--
--   kpayment        client:get_offers, the default (cosocket) transport
--   kpayment_sub    the same with transport = "subrequest": a capture to
--                   the /_kpayment location of nginx/server.conf
--   cosocket_cjson  what Lua code without kpayment writes by hand over
--                   ngx.socket.tcp, then cjson.decode: a lower bound of
--                   lua-resty-http + cjson (which Debian does not package)
--   cosocket        the same, body not decoded: the transport limit
--   capture_cjson   ngx.location.capture to the same /_kpayment location,
--                   then cjson.decode
--
-- And the hot-key rows: /hot?mode=… asks the delayed server (every answer
-- 20 ms late, 10 offers) for one of 10 customers, the next one of this
-- worker's each request, through a client made once per worker and mode:
--
--   mode=default    coalescing on (kpayment's default)
--   mode=off        coalesce = false
--   mode=cache      cache = { dict = "bench_hot_cache", ttl = 60 }
--
-- /hot_flush empties that dict, so a run of the cache row starts cold.
--
-- Every path sends the same request (path, query, Host, Accept and a
-- User-Agent) to the same server over connections kept alive per worker.
local ngx = ngx   -- luacheck: globals ngx
local kpayment = require("kpayment")
local cjson = require("cjson")

local tonumber, tostring = tonumber, tostring
local sub, match = string.sub, string.match
local tcp = ngx.socket.tcp
local capture = ngx.location.capture

local M = {}

local API = "/payment/kpayment/v1/finance/getFinanceOffersForCustomer"
local DEALER = "bench-dealer"
local SKIN, LOCALE = "s", "en-US"
local AGENT = "kpayment-bench (by hand)"
-- As kpayment's cosocket transport: a pool per target, 32 idle connections
-- kept for 60 s (its pool_size and pool_idle_timeout defaults).
local POOL_SIZE, IDLE_MS = 32, 60000
local TIMEOUT_MS = 30000   -- kpayment's default timeout

-- Per number of offers: the customer, the query, and the request made by
-- hand (filled by M.setup).
local CUSTOMER, QUERY, REQUEST = {}, {}, {}
for _, n in ipairs({ 1, 10, 1000 }) do
  CUSTOMER[n] = "bench-" .. n
  QUERY[n] = "customerUUID=bench-" .. n .. "&dealerUUID=" .. DEALER .. "&skin=" .. SKIN
    .. "&locale=" .. LOCALE
end

local host, port, authority, pool_opts, capture_vars, delay_base

--- Called by init_by_lua (nginx.conf.in) with the HTTP server's address
-- and the delayed server's port.
function M.setup(h, p, delay_port)
  host, port, authority = h, p, h .. ":" .. p
  delay_base = "http://" .. h .. ":" .. delay_port
  pool_opts = { pool = "bench_by_hand", pool_size = POOL_SIZE }
  for n, q in pairs(QUERY) do
    REQUEST[n] = "GET " .. API .. "?" .. q .. " HTTP/1.1\r\nHost: " .. authority
      .. "\r\nAccept: application/json\r\nUser-Agent: " .. AGENT .. "\r\n\r\n"
  end
  -- The variables kpayment's subrequest transport sets (kpayment.subrequest).
  capture_vars = {
    kpayment_scheme = "http", kpayment_host = authority, kpayment_sni = host,
    kpayment_path = API, kpayment_auth = "", kpayment_accept = "application/json",
    kpayment_agent = AGENT,
  }
end

local function fail(msg)
  ngx.log(ngx.ERR, msg)
  ngx.status = 500
  ngx.say(msg)
end

-- The ?offers= argument, or nil (and a 400) when it names no recording.
local function offers_arg()
  local n = tonumber(ngx.var.arg_offers)
  if n and CUSTOMER[n] then return n end
  ngx.status = 400
  ngx.say("?offers=1, 10 or 1000 expected")
  return nil
end

-- One client per worker and transport, made on first use.
local clients = {}

local function get_offers(transport)
  local n = offers_arg()
  if not n then return end
  local key = transport or "cosocket"
  local client = clients[key]
  if not client then
    client = kpayment.new({ base_url = "http://" .. authority, skin = SKIN, locale = LOCALE,
                            transport = transport })
    clients[key] = client
  end
  local offers, err = client:get_offers({ customer_uuid = CUSTOMER[n], dealer_uuid = DEALER })
  if not offers then return fail("get_offers: " .. tostring(err)) end
  ngx.say(#offers)
end

function M.kpayment() get_offers(nil) end
function M.kpayment_sub() get_offers("subrequest") end

-- The body by hand: no chunked encoding, no retry on a connection the
-- server closed while idle, no redirect; only what this server's answers
-- need (a 200 framed by Content-Length, on a connection kept alive).  The
-- head comes in one receiveuntil rather than a receive("*l") per line:
-- fewer calls, so a lower bound.
local function by_hand(n)
  local sock = tcp()
  sock:settimeout(TIMEOUT_MS)
  local ok, err = sock:connect(host, port, pool_opts)
  if not ok then return nil, "connect: " .. tostring(err) end
  ok, err = sock:send(REQUEST[n])
  if not ok then
    sock:close()
    return nil, "send: " .. tostring(err)
  end
  local head
  head, err = sock:receiveuntil("\r\n\r\n")()
  if not head then
    sock:close()
    return nil, "head: " .. tostring(err)
  end
  local length = tonumber(match(head, "\n[Cc]ontent%-[Ll]ength:[ \t]*(%d+)"))
  if sub(head, 1, 13) ~= "HTTP/1.1 200 " or not length then
    sock:close()
    return nil, "unexpected head: " .. head
  end
  local body
  body, err = sock:receive(length)
  if not body then
    sock:close()
    return nil, "body: " .. tostring(err)
  end
  sock:setkeepalive(IDLE_MS, POOL_SIZE)
  return body
end

function M.cosocket_cjson()
  local n = offers_arg()
  if not n then return end
  local body, err = by_hand(n)
  if not body then return fail("cosocket: " .. err) end
  ngx.say(#cjson.decode(body).financeOffers)
end

function M.cosocket()
  local n = offers_arg()
  if not n then return end
  local body, err = by_hand(n)
  if not body then return fail("cosocket: " .. err) end
  ngx.say(#body)
end

-- The capture a user writes for the shipped location: kpayment's
-- variables, no ctx (so that location's Lua filters return at once; with
-- kpayment's ctx they also keep the upstream's status and count the body).
function M.capture_cjson()
  local n = offers_arg()
  if not n then return end
  local res = capture("/_kpayment?" .. QUERY[n], { vars = capture_vars })
  if res.status ~= 200 or res.truncated then
    return fail("capture: status " .. tostring(res.status))
  end
  ngx.say(#cjson.decode(res.body).financeOffers)
end

-- The hot-key rows: a client per worker and mode, and this worker's turn
-- through the 10 customers.
local HOT_CUSTOMERS = 10
local HOT_OPTIONS = {
  default = {},
  off = { coalesce = false },
  cache = { cache = { dict = "bench_hot_cache", ttl = 60 } },
}
local hot_clients, hot_turn = {}, 0

function M.hot()
  local mode = ngx.var.arg_mode
  local extra = HOT_OPTIONS[mode]
  if not extra then
    ngx.status = 400
    ngx.say("?mode=default, off or cache expected")
    return
  end
  local client = hot_clients[mode]
  if not client then
    local opts = { base_url = delay_base, skin = SKIN, locale = LOCALE }
    for k, v in pairs(extra) do opts[k] = v end
    client = kpayment.new(opts)
    hot_clients[mode] = client
  end
  hot_turn = hot_turn % HOT_CUSTOMERS + 1
  local offers, err = client:get_offers({ customer_uuid = "hot-" .. hot_turn, dealer_uuid = DEALER })
  if not offers then return fail("get_offers: " .. tostring(err)) end
  ngx.say(#offers)
end

function M.hot_flush()
  ngx.shared.bench_hot_cache:flush_all()
  ngx.say("flushed")
end

return M
