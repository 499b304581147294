--- Scenarios for test/oom_host.c, the out-of-memory sweep.
--
-- The host loads this file in every fresh lua_State (allocations not
-- counted), asks `prepare(name, env)` for the scenario's function, and then
-- runs that function with the failing allocator: everything it allocates is
-- counted, and the N-th allocation fails.  A run that succeeds hands its
-- value to `summarize` (again not counted); the host compares that text
-- with the one from the run without failures, so an allocation failure that
-- is swallowed and turns into a different result is caught too.
--
-- env: url (the mock's base URL, or nil: no network scenarios), fixtures
-- (a list of JSON file paths) and run (a number unique to each run of the
-- process, for requests the mock must see for the first time).

local core = require("kpayment.core")
local kpayment = require("kpayment")

local M = {}

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

local function basename(path)
  return path:match("([^/]+)$") or path
end

local FIELDS = { "id", "customer.lastName" }

-- Fields of an error table that say what happened; anything else (timings
-- a later version may add) does not take part in the comparison.
local ERROR_FIELDS = { "kind", "status", "code", "message", "retryable", "curl_code", "body",
  "errors", "warnings" }

--- Scenario names for this environment, in the order they are swept.
function M.list(env)
  local names = {}
  for _, path in ipairs(env.fixtures) do
    local base = basename(path)
    names[#names + 1] = "decode:" .. base
    names[#names + 1] = "decode-fields:" .. base
    names[#names + 1] = "decode-invalid:" .. base
  end
  names[#names + 1] = "decode-steps:example-200.json"
  names[#names + 1] = "recover:decode"
  -- attempts of a core.external client, reported by Lua code: no network
  for _, name in ipairs({ "external:feed", "external:response", "external:fail", "recover:external" }) do
    names[#names + 1] = name
  end
  if env.url then
    for _, name in ipairs({ "get:normal", "get:badjson", "get:error500", "log:debug",
      "retry:flaky-502", "async:start-poll", "async:cancel-close", "async:slices", "many:3",
      "recover:get", "recover:async", "recover:on-done", "recover:slices", "recover:many",
      "hooks:flaky-502", "hooks:close", "coalesce:3", "cache:hit" }) do
      names[#names + 1] = name
    end
  end
  return names
end

local function fixture(env, base)
  for _, path in ipairs(env.fixtures) do
    if basename(path) == base then return read_file(path) end
  end
  error("no fixture named " .. base)
end

local function new_client(env, extra)
  local opts = { base_url = env.url, timeout = 20, connect_timeout = 5, skin = "oom-skin" }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return kpayment.new(opts)
end

-- Calls f; after a memory error calls it once more with the same arguments
-- (only one allocation fails per run, so that call has memory): whatever
-- the failure left behind must not change the second call's result.
-- Other errors go through.
local function again(f, ...)
  local ok, a, b = pcall(f, ...)
  if ok then return a, b end
  if not tostring(a):find("memory") then error(a, 0) end
  return f(...)
end

-- A request with on_done polled until delivered, each step again after a
-- memory error: what on_done got, and how often.
local function recover_on_done(env, opts, customer, dealer)
  local client = again(new_client, env, opts)
  local got = { calls = 0, offers = false, err = false }
  again(client.start_offers, client, {
    customer_uuid = customer, dealer_uuid = dealer,
    on_done = function(offers, err) got.calls, got.offers, got.err = got.calls + 1, offers, err end,
  })
  local deadline = core.monotonic() + 30
  while again(client.poll, client, 5) > 0 do
    if core.monotonic() > deadline then error("request still pending after 30 s") end
  end
  client:close()
  return got
end

-- For the external: scenarios, a 2xx body and the response framings the
-- attempts are fed (src/kp_h1.c through request:feed, src/kp_report.c).
local EXT_BODY = '{"financeOffers":[{"id":1,"name":"Ada"},{"id":2,"name":"Lin"}]}'
local EXT_MAX_BODY = 200

-- text in pieces of `size` bytes (the last one shorter)
local function pieces_of(text, size)
  local list = {}
  for i = 1, #text, size do list[#list + 1] = text:sub(i, i + size - 1) end
  return list
end

-- The outcome fields that say how an attempt ended (total_time is a clock
-- reading, different in every run).
local function outcome_of(req)
  local o = req:outcome()
  return { kind = o.kind or false, status = o.status or false, message = o.message or false,
    retryable = o.retryable, request_id = o.request_id or false,
    retry_after = o.retry_after or false, value = o.value or false, errors = o.errors or false }
end

local GET_CUSTOMERS = {
  ["get:normal"] = "oom-customer-1",
  ["get:badjson"] = "mock:badjson",
  ["get:error500"] = "mock:error500",
}

--- The function to run under the failing allocator.  Work that must not be
-- counted (reading files, building inputs) happens here, outside it.
function M.prepare(name, env)
  local kind, arg = name:match("^([^:]+):(.*)$")
  if kind == "decode" then
    local text = fixture(env, arg)
    return function() return core.decode(text) end
  elseif kind == "decode-fields" then
    local text = fixture(env, arg)
    return function() return core.decode(text, { fields = FIELDS }) end
  elseif kind == "decode-steps" then
    -- one record per step, whole and projected: what each step keeps
    -- between two must survive a failure in the next
    local text = fixture(env, arg)
    return function()
      return { core.decode(text, { records = "financeOffers", step_ms = 0 }),
               core.decode(text, { records = "financeOffers", step_ms = 0, fields = FIELDS }) }
    end
  elseif kind == "decode-invalid" then
    -- cut short inside the document: the decoder builds most of it, then
    -- fails and must drop what it built
    local whole = fixture(env, arg)
    local text = whole:sub(1, #whole * 3 // 4)
    return function()
      local ok, msg = pcall(core.decode, text)
      if ok then error("a truncated document decoded") end
      if not tostring(msg):find("^kpayment%.decode: ") then error(msg, 0) end
      return msg
    end
  elseif name == "external:feed" then
    -- a chunked response with extensions and trailers, fed in pieces cut
    -- inside every part of it, then decoded; a close-delimited body fed
    -- past max_body; one cancelled in its body; one still in its head
    -- when the client closes
    local chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Request-Id: ext-feed\r\n"
      .. "Retry-After: 7\r\n\r\n"
      .. string.format("%x;ext=1\r\n%s\r\n", 30, EXT_BODY:sub(1, 30))
      .. string.format("%X\r\n%s\r\n", #EXT_BODY - 30, EXT_BODY:sub(31))
      .. "0\r\nX-Checksum: abc\r\nExpires: never\r\n\r\n"
    local feed_pieces = pieces_of(chunked, 23)
    local big_head = "HTTP/1.1 200 OK\r\nX-Request-Id: ext-big\r\n\r\n"
    local big_body = pieces_of(("x"):rep(EXT_MAX_BODY + 1), 64)
    local cut_head = "HTTP/1.1 200 OK\r\nContent-Length: " .. #EXT_BODY .. "\r\n\r\n" .. EXT_BODY:sub(1, 9)
    return function()
      local client = core.external({ max_body = EXT_MAX_BODY })
      local got = { feeds = {} }
      local a = client:start("http://x/")
      for _, piece in ipairs(feed_pieces) do
        local done, reusable = a:feed(piece)
        got.feeds[#got.feeds + 1] = done and (reusable and "reusable" or "done") or "more"
      end
      got.complete = outcome_of(a)
      local b = client:start("http://x/")
      local ended = b:feed(big_head) ~= false
      for _, piece in ipairs(big_body) do
        if b:feed(piece) == nil then ended = true break end
      end
      got.too_large = ended and outcome_of(b)
      local c = client:start("http://x/")
      got.cut = c:feed(cut_head)
      c:cancel()
      got.cut_after = c:feed(EXT_BODY:sub(10)) == nil
      got.cancelled = outcome_of(c)
      local d = client:start("http://x/")
      got.head = d:feed("HTTP/1.1 200 O")
      client:close()
      got.head_after = d:feed("K\r\n") == nil
      got.closed = outcome_of(d)
      got.start_after_close = client:start("http://x/") == nil
      return got
    end
  elseif name == "external:response" then
    -- a whole response with a headers table (a list of values: the first
    -- counts), then a 404 with the API's error body
    local api_error = '{"errors":[{"code":"CUSTOMER_NOT_FOUND","message":"no such customer"}]}'
    local headers = { ["x-REQUEST-id"] = "ext-resp", ["Retry-After"] = { "5", "6" },
      ["Content-Type"] = "application/json" }
    return function()
      local client = core.external({ max_body = EXT_MAX_BODY })
      local a = client:start("http://x/")
      local got = { response = a:response(200, EXT_BODY, headers) }
      got.complete = outcome_of(a)
      local b = client:start("http://x/")
      b:response(404, api_error, { ["X-Correlation-Id"] = "ext-corr" })
      got.not_found = outcome_of(b)
      client:close()
      return got
    end
  elseif name == "recover:external" then
    -- a decode that ran out of memory leaves the attempt as it was: the
    -- outcome asked again is the whole one, release() lets it go, and the
    -- body is freed by cancel() (a decode flag left set would keep it)
    return function()
      local client = core.external({ max_body = EXT_MAX_BODY })
      local a = client:start("http://x/")
      a:response(200, EXT_BODY)
      local got = { complete = again(outcome_of, a) }
      a:release()
      got.released = select(2, pcall(a.outcome, a))
      local b = client:start("http://x/")
      b:response(200, EXT_BODY)
      again(b.outcome, b, 0)   -- a decode in steps: its first record
      b:cancel()
      got.cancelled = b:outcome().kind
      client:close()
      return got
    end
  elseif name == "external:fail" then
    -- a failure with the status of a response refused for its size; a
    -- timeout after a head was read keeps that head's status
    return function()
      local client = core.external({ max_body = EXT_MAX_BODY })
      local a = client:start("http://x/")
      local got = { fail = a:fail("body_too_large", "the proxy refused a large body", nil, 413) }
      got.too_large = outcome_of(a)
      local b = client:start("http://x/")
      b:feed("HTTP/1.1 502 Bad Gateway\r\nX-Request-Id: ext-502\r\nContent-Length: 10\r\n\r\nbad")
      b:fail("timeout", "the body stopped coming")
      got.timeout = outcome_of(b)
      client:close()
      return got
    end
  elseif kind == "get" then
    local customer = assert(GET_CUSTOMERS[name], name)
    return function()
      local client = new_client(env)
      local offers, err = client:get_offers{ customer_uuid = customer, dealer_uuid = "oom-dealer" }
      client:close()
      return { offers = offers, err = err }
    end
  elseif name == "recover:decode" then
    local text = fixture(env, basename(env.fixtures[#env.fixtures]))
    return function()
      return { again(core.decode, text), again(core.decode, text, { fields = FIELDS }) }
    end
  elseif name == "recover:get" then
    return function()
      local client = again(new_client, env)
      local offers, err = again(client.get_offers, client,
        { customer_uuid = "oom-customer-1", dealer_uuid = "oom-dealer" })
      client:close()
      return { offers = offers, err = err }
    end
  elseif name == "recover:async" then
    return function()
      local client = again(new_client, env)
      local req = again(client.start_offers, client,
        { customer_uuid = "oom-async-1", dealer_uuid = "oom-dealer" })
      local deadline = core.monotonic() + 30
      while not again(req.done, req) do
        again(client.poll, client, 5)
        if core.monotonic() > deadline then error("request still pending after 30 s") end
      end
      local offers, err = again(req.result, req)
      client:close()
      return { offers = offers, err = err }
    end
  elseif name == "recover:slices" then
    -- decoded one record per poll; a memory error in a slice is followed by
    -- the next poll, which must still deliver every offer, once
    return function()
      return recover_on_done(env, { decode_budget = 0 }, "mock:offers:4", "oom-slices-2")
    end
  elseif name == "recover:on-done" then
    return function() return recover_on_done(env, nil, "oom-async-2", "oom-dealer") end
  elseif name == "recover:many" then
    return function()
      local client = again(new_client, env)
      local results = again(client.get_offers_many, client, {
        { customer_uuid = "oom-many-1", dealer_uuid = "oom-dealer" },
        { customer_uuid = "oom-many-2", dealer_uuid = "oom-dealer", fields = FIELDS },
        { customer_uuid = "oom-many-3", dealer_uuid = "oom-dealer", locale = "fr-CA" },
      })
      client:close()
      return results
    end
  elseif name == "log:debug" then
    -- every attempt and response logged (customer data masked); the
    -- logger only counts, so that it allocates nothing itself
    local lines = 0
    local function logger() lines = lines + 1 end
    return function()
      local client = new_client(env, { debug = true, logger = logger })
      local offers, err = client:get_offers{ customer_uuid = "oom-customer-2", dealer_uuid = "oom-dealer" }
      client:close()
      return { offers = offers, err = err, lines = lines }
    end
  elseif name == "retry:flaky-502" then
    -- the first request of this customer and dealer gets a 502 page, the
    -- retry (after a backoff of up to 0.25 s) the offers
    local dealer = string.format("oom-flaky-%012d", env.run)
    return function()
      local client = new_client(env, { retries = 1 })
      local offers, err = client:get_offers{ customer_uuid = "mock:flaky:1:html502", dealer_uuid = dealer }
      client:close()
      return { offers = offers and #offers, attempts = offers and offers:meta().attempts, err = err }
    end
  elseif name == "hooks:flaky-502" then
    -- both hooks on each of two attempts (a 502 page, then the offers)
    local dealer = string.format("oom-hooks-%012d", env.run)
    return function()
      local trace = {}
      local client = new_client(env, {
        retries = 1,
        on_request = function(info) trace[#trace + 1] = "request " .. info.attempt end,
        on_response = function(info)
          trace[#trace + 1] = string.format("response %d %s %s %s", info.attempt, tostring(info.status),
            tostring(info.error), tostring(info.retry))
        end,
      })
      local offers, err = client:get_offers{ customer_uuid = "mock:flaky:1:html502", dealer_uuid = dealer }
      client:close()
      return { offers = offers and #offers, err = err, trace = trace }
    end
  elseif name == "hooks:close" then
    -- the first on_response closes the client: both requests end
    -- cancelled, each hook and callback called once
    return function()
      local client
      local got = { responses = 0, kinds = {} }
      local function on_done(_, err) got.kinds[#got.kinds + 1] = err and err.kind or "offers" end
      client = new_client(env, { on_response = function()
        got.responses = got.responses + 1
        client:close()
      end })
      client:start_offers{ customer_uuid = "oom-hooks-1", dealer_uuid = "oom-dealer", on_done = on_done }
      client:start_offers{ customer_uuid = "oom-hooks-2", dealer_uuid = "oom-dealer", on_done = on_done }
      local deadline = core.monotonic() + 30
      while client:poll(5) > 0 do
        if core.monotonic() > deadline then error("requests still pending after 30 s") end
      end
      return got
    end
  elseif name == "async:cancel-close" then
    -- a request cancelled while running, one dropped while running (its
    -- finalizer cancels it), one still running when the client closes
    return function()
      local client = new_client(env)
      local cancelled = client:start_offers{ customer_uuid = "mock:stall:1", dealer_uuid = "oom-dealer" }
      client:start_offers{ customer_uuid = "mock:stall:1", dealer_uuid = "oom-dropped" }
      client:poll(0)
      cancelled:cancel()
      collectgarbage()
      local running = client:start_offers{ customer_uuid = "mock:stall:1", dealer_uuid = "oom-closed" }
      client:poll(0)
      client:close()
      local _, err1 = cancelled:result()
      local _, err2 = running:result()
      return { cancelled = err1 and err1.kind, closed = err2 and err2.kind }
    end
  elseif name == "async:slices" then
    -- decoded one record per poll: one delivered, one cancelled and one
    -- dropped between two slices
    return function()
      local client = new_client(env, { decode_budget = 0 })
      local got = { offers = false, err = false }
      client:start_offers{
        customer_uuid = "mock:offers:4", dealer_uuid = "oom-slices", fields = FIELDS,
        on_done = function(offers, err) got.offers, got.err = offers, err end,
      }
      local cancelled = client:start_offers{ customer_uuid = "mock:offers:4", dealer_uuid = "oom-cancel" }
      client:start_offers{ customer_uuid = "mock:offers:4", dealer_uuid = "oom-drop" }
      local deadline = core.monotonic() + 30
      while client:poll(5) > 0 and not got.offers and not got.err do
        if core.monotonic() > deadline then error("requests still pending after 30 s") end
      end
      cancelled:cancel()
      collectgarbage()
      client:close()
      local _, err = cancelled:result()
      return { callback = got, cancelled = err and err.kind }
    end
  elseif name == "async:start-poll" then
    return function()
      local client = new_client(env)
      -- the callback must not allocate: kpayment logs and swallows an
      -- error raised inside a callback, so a failure there would only
      -- show as a missing result
      local got = { offers = false, err = false }
      local plain = client:start_offers{ customer_uuid = "oom-async-1", dealer_uuid = "oom-dealer" }
      client:start_offers{
        customer_uuid = "oom-async-2", dealer_uuid = "oom-dealer", fields = FIELDS,
        on_done = function(offers, err) got.offers, got.err = offers, err end,
      }
      local deadline = core.monotonic() + 30
      while client:poll(5) > 0 or not plain:done() do
        if core.monotonic() > deadline then error("requests still pending after 30 s") end
      end
      local offers, err = plain:result()
      client:close()
      return { plain = { offers = offers, err = err }, callback = got }
    end
  elseif name == "coalesce:3" then
    -- three identical requests share one call: the first to take the
    -- result gets the call's decode, the others decode the body's copy.
    -- No stall is needed for the second to join the first: nothing
    -- completes before a poll, and all three start before the first poll.
    local dealer = "oom-coalesce"
    return function()
      local client = new_client(env)
      local reqs = {}
      for i = 1, 2 do
        reqs[i] = client:start_offers{ customer_uuid = "oom-coalesce-1", dealer_uuid = dealer,
                                       fields = FIELDS }
      end
      reqs[3] = client:start_offers{ customer_uuid = "oom-coalesce-1", dealer_uuid = dealer }
      local deadline = core.monotonic() + 30
      while client:poll(5) > 0 or not (reqs[1]:done() and reqs[2]:done() and reqs[3]:done()) do
        if core.monotonic() > deadline then error("requests still pending after 30 s") end
      end
      local out = {}
      for i = 1, 3 do
        local offers, err = reqs[i]:result()
        out[i] = { offers = offers, err = err, joined = offers and offers:meta().joined }
      end
      client:close()
      return out
    end
  elseif name == "cache:hit" then
    -- the second call answered from the cache: the body decoded again
    return function()
      local client = new_client(env, { cache = { ttl = 60 } })
      local first, err1 = client:get_offers{ customer_uuid = "oom-cache-1", dealer_uuid = "oom-dealer" }
      local second, err2 = client:get_offers{ customer_uuid = "oom-cache-1", dealer_uuid = "oom-dealer",
                                             fields = FIELDS }
      client:close()
      return { first = first, err1 = err1, second = second, err2 = err2,
               cached = second and second:meta().cached }
    end
  elseif name == "many:3" then
    return function()
      local client = new_client(env)
      local results = client:get_offers_many({
        { customer_uuid = "oom-many-1", dealer_uuid = "oom-dealer" },
        { customer_uuid = "oom-many-2", dealer_uuid = "oom-dealer", fields = FIELDS },
        { customer_uuid = "oom-many-3", dealer_uuid = "oom-dealer", locale = "fr-CA" },
      }, { concurrency = 8 })
      client:close()
      return results
    end
  end
  error("unknown scenario " .. name)
end

-- What each scenario must produce when it succeeds, so that a broken
-- environment (no mock, a wrong URL) cannot pass for a sweep: nil when the
-- value is right, otherwise what is wrong.
local function offers_of(v, n)
  if type(v) ~= "table" or #v ~= n then return false end
  for i = 1, n do
    if type(v[i]) ~= "table" or v[i].id == nil then return false end
  end
  return true
end

local function describe(v)
  if type(v) == "table" and v.err then return tostring(v.err) end
  return M.summarize(v):sub(1, 200)
end

local CHECKS = {
  decode = function(v)
    return type(v) == "table" and offers_of(v.financeOffers, #v.financeOffers) and #v.financeOffers > 0
  end,
  ["decode-fields"] = function(v)
    return type(v) == "table" and offers_of(v.financeOffers, #v.financeOffers) and #v.financeOffers > 0
  end,
  ["decode-invalid"] = function(v) return type(v) == "string" end,
  ["decode-steps"] = function(v)
    return type(v) == "table" and type(v[1]) == "table" and type(v[2]) == "table"
      and offers_of(v[1].financeOffers, #v[1].financeOffers) and #v[1].financeOffers > 0
      and #v[2].financeOffers == #v[1].financeOffers
  end,
  ["get:normal"] = function(v)
    return offers_of(v.offers, 3) and v.offers[1].customerUUID == "oom-customer-1"
  end,
  ["get:badjson"] = function(v) return v.err and v.err.kind == "decode" end,
  ["get:error500"] = function(v) return v.err and v.err.kind == "http" and v.err.status == 500
    and v.err.code ~= nil end,
  ["log:debug"] = function(v) return offers_of(v.offers, 3) and v.lines >= 2 end,
  ["retry:flaky-502"] = function(v) return v.offers == 3 and v.attempts == 2 end,
  ["coalesce:3"] = function(v)
    return offers_of(v[1].offers, 3) and offers_of(v[2].offers, 3) and offers_of(v[3].offers, 3)
      and v[1].joined == false and v[2].joined == true and v[3].joined == false
      and v[1].offers ~= v[2].offers
  end,
  ["cache:hit"] = function(v)
    return offers_of(v.first, 3) and offers_of(v.second, 3) and v.cached == true
  end,
  ["async:start-poll"] = function(v)
    return offers_of(v.plain.offers, 3) and offers_of(v.callback.offers, 3)
  end,
  ["async:slices"] = function(v)
    return offers_of(v.callback.offers, 4) and v.cancelled == "cancelled"
  end,
  ["recover:slices"] = function(v)
    return v.calls == 1 and offers_of(v.offers, 4) and v.offers[4].customerUUID == "mock:offers:4"
  end,
  ["async:cancel-close"] = function(v) return v.cancelled == "cancelled" and v.closed == "cancelled" end,
  ["hooks:flaky-502"] = function(v)
    return v.offers == 3 and table.concat(v.trace, ";") ==
      "request 1;response 1 502 http true;request 2;response 2 200 nil false"
  end,
  ["hooks:close"] = function(v)
    return v.responses == 2 and #v.kinds == 2 and v.kinds[1] == "cancelled" and v.kinds[2] == "cancelled"
  end,
  ["external:feed"] = function(v)
    local o = v.complete
    local feeds = table.concat(v.feeds, " ")
    return #v.feeds > 4 and feeds == ("more "):rep(#v.feeds - 1) .. "reusable"
      and o.kind == false and o.status == 200 and offers_of(o.value.financeOffers, 2)
      and o.request_id == "ext-feed" and o.retry_after == "7"
      and v.too_large and v.too_large.kind == "body_too_large" and v.too_large.status == 200
      and v.too_large.request_id == "ext-big" and v.too_large.retryable == false
      and v.cut == false and v.cut_after and v.cancelled.kind == "cancelled"
      and v.head == false and v.head_after and v.closed.kind == "cancelled" and v.start_after_close
  end,
  ["external:response"] = function(v)
    local o, e = v.complete, v.not_found
    return v.response == true and o.kind == false and o.status == 200
      and offers_of(o.value.financeOffers, 2) and o.request_id == "ext-resp" and o.retry_after == "5"
      and e.kind == "http" and e.status == 404 and e.request_id == "ext-corr"
      and type(e.errors) == "table" and e.errors[1].code == "CUSTOMER_NOT_FOUND"
  end,
  ["external:fail"] = function(v)
    local a, b = v.too_large, v.timeout
    return v.fail == true and a.kind == "body_too_large" and a.status == 413
      and a.message == "the proxy refused a large body" and a.retryable == false
      and b.kind == "timeout" and b.status == 502 and b.request_id == "ext-502"
      and b.message == "the body stopped coming" and b.retryable == true
  end,
  ["recover:external"] = function(v)
    return v.complete.kind == false and offers_of(v.complete.value.financeOffers, 2)
      and tostring(v.released):find("outcome already released", 1, true) ~= nil
      and v.cancelled == "cancelled"
  end,
  ["recover:decode"] = function(v)
    return type(v[1]) == "table" and type(v[2]) == "table" and #v[1].financeOffers > 0
      and #v[2].financeOffers == #v[1].financeOffers
  end,
  ["recover:get"] = function(v)
    return offers_of(v.offers, 3) and v.offers[1].customerUUID == "oom-customer-1"
  end,
  ["recover:async"] = function(v)
    return offers_of(v.offers, 3) and v.offers[1].customerUUID == "oom-async-1"
  end,
  ["recover:on-done"] = function(v)
    return v.calls == 1 and offers_of(v.offers, 3) and v.offers[1].customerUUID == "oom-async-2"
  end,
  ["recover:many"] = function(v)
    for i = 1, 3 do
      if type(v[i]) ~= "table" or not offers_of(v[i].offers, 3) then return false end
    end
    return #v == 3
  end,
  ["many:3"] = function(v)
    for i = 1, 3 do
      if type(v[i]) ~= "table" or not offers_of(v[i].offers, 3) then return false end
    end
    return #v == 3
  end,
}

--- nil when a successful run of `name` gave the value it must, else a
-- message.
function M.check(name, v)
  local check = CHECKS[name] or CHECKS[name:match("^([^:]+):")]
  if not check then return "no check for scenario " .. name end
  if check(v) then return nil end
  return "unexpected result: " .. describe(v)
end

-- A canonical text for a value: keys sorted, floats with every digit,
-- errors reduced to ERROR_FIELDS.
local function dump(v, out)
  local t = type(v)
  if t == "table" then
    local keys = {}
    if kpayment.is_error(v) then
      for _, k in ipairs(ERROR_FIELDS) do
        if v[k] ~= nil then keys[#keys + 1] = k end
      end
    else
      for k in next, v do keys[#keys + 1] = k end
      table.sort(keys, function(a, b)
        local ta, tb = type(a), type(b)
        if ta ~= tb then return ta < tb end
        return a < b
      end)
    end
    out[#out + 1] = "{"
    for _, k in ipairs(keys) do
      out[#out + 1] = type(k) == "string" and string.format("%q", k) or tostring(k)
      out[#out + 1] = "="
      dump(rawget(v, k), out)
      out[#out + 1] = ","
    end
    out[#out + 1] = "}"
  elseif t == "string" then
    out[#out + 1] = string.format("%q", v)
  elseif math.type(v) == "float" then
    out[#out + 1] = string.format("%.17g", v)
  elseif v == core.null then
    out[#out + 1] = "null"
  else
    out[#out + 1] = tostring(v)
  end
end

--- The text the host compares between runs.
function M.summarize(v)
  local out = {}
  dump(v, out)
  return table.concat(out)
end

return M
