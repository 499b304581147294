-- The cache in a lua_shared_dict: every worker answers from it, one of
-- them at a time asks the API for a key, and entries outlive a reload.
-- The mock counts the API calls.  Run by `make test-openresty`.
local nginx = require("support.nginx")
local mock = require("support.mock")
local socket = require("socket")

local ENV = "env KPAYMENT_BASE_URL; env KPAYMENT_SKIN;"
local HTTP = "lua_shared_dict kp_cache 10m;"
local LOCATIONS = [[
location = /t/cached { content_by_lua_block { require("support.nginx_handlers").cached() } }
]]

local count = nginx.count
local function burst(url, n) return nginx.burst({ url }, n) end
local MISS, HIT = "3 cached=false stale=false\n", "3 cached=true stale=false\n"

describe("the cache in a shared dict", function()
  local m
  setup(function() m = mock.start({}) end)
  teardown(function() if m then m.stop() end end)

  local function start(base)
    return nginx.start({ workers = 2, main = ENV, http = HTTP, server = LOCATIONS,
                         env = { KPAYMENT_BASE_URL = base or m.url, KPAYMENT_SKIN = "cache-spec" } })
  end

  it("makes one API call for a burst on two workers, then answers from the dict", function()
    local n = start()
    finally(n.stop)
    m.reset()
    local url = n.url .. "/t/cached?cache_dict=kp_cache&ttl=60&customer=mock:stall:0.5&dealer=burst"
    local out = burst(url, 40)
    assert.equal(40, count(out, "3 cached=%a+ stale=false\n"), out)
    assert.equal(1, m.stats().requests)
    out = burst(url, 20)
    assert.equal(20, count(out, "3 cached=true stale=false\n"), out)
    assert.equal(1, m.stats().requests)
    -- past the ttl, a burst again makes one call; with stale_if_error the
    -- others answer stale meanwhile
    local short = n.url .. "/t/cached?cache_dict=kp_cache&ttl=3&stale=30&customer=mock:stall:0.5"
      .. "&dealer=expiry"
    burst(short, 1)
    socket.sleep(3.2)
    m.reset()
    out = burst(short, 30)
    assert.equal(30, count(out, "3 cached=%a+ stale=%a+\n"), out)
    assert.equal(1, m.stats().requests)
    -- entries outlive a reload
    n.reload()
    socket.sleep(1)
    m.reset()
    out = burst(url, 5)
    assert.equal(5, count(out, "3 cached=true stale=false\n"), out)
    assert.equal(0, m.stats().requests)
  end)

  -- A fresh nginx (stopped with the spec), and the URL of a key on it whose
  -- first call was made: a miss.
  local function first_call(query)
    local n = start()
    finally(n.stop)
    local url = n.url .. "/t/cached?cache_dict=kp_cache&ttl=60&" .. query
    assert.equal(MISS, burst(url))
    return url
  end

  it("asks the API for a call with cache = false, even with a fresh entry", function()
    local url = first_call("customer=mock:stall:0.2&dealer=nocache")
    m.reset()
    for _ = 1, 4 do assert.equal(MISS, burst(url .. "&nocache=1")) end
    assert.equal(4, m.stats().requests)
    -- and what it answered is kept
    assert.equal(HIT, burst(url))
    assert.equal(4, m.stats().requests)
  end)

  it("keeps the entries of clients that reach the API differently apart (resolve)", function()
    local url = first_call("customer=c-1&dealer=resolve")
    assert.equal(HIT, burst(url))
    -- the same base URL and credentials, names resolved otherwise: another API
    assert.equal(MISS, burst(url .. "&resolve=staging.invalid:443:127.0.0.2"))
  end)

  it("answers stale while the API is down", function()
    local own = mock.start({})
    local n = start(own.url)
    finally(function()
      n.stop()
      own.stop()
    end)
    local url = n.url .. "/t/cached?cache_dict=kp_cache&ttl=0.5&stale=60&retries=0&customer=c-1&dealer=down"
    assert.equal("3 cached=false stale=false\n", select(2, n.get(url:sub(#n.url + 1))))
    own.stop()
    socket.sleep(0.7)
    local status, body = n.get(url:sub(#n.url + 1), 5)
    assert.equal(200, status)
    assert.equal("3 cached=true stale=true\n", body)
  end)
end)
