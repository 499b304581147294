-- OAuth2 client credentials inside nginx: the token request goes over a
-- cosocket, one for all the requests and light threads of a worker that
-- wait for it, and an expired token is replaced without a caller seeing
-- the 401.  Run by `make test-openresty`.
local nginx = require("support.nginx")
local mock = require("support.mock")

local ENV = "env KPAYMENT_BASE_URL; env KPAYMENT_SKIN;"
local LOCATIONS = [[
location = /t/call { content_by_lua_block { require("support.nginx_handlers").call() } }
location = /t/poll { content_by_lua_block { require("support.nginx_handlers").poll() } }
]]

local ID, SECRET = "nginx client:1", "nginx s3cret%+"

local burst, count = nginx.burst, nginx.count

describe("client credentials inside nginx", function()
  local m, n
  setup(function()
    m = mock.start({ "--client-id", ID, "--client-secret", SECRET })
    n = nginx.start({ workers = 1, main = ENV, server = LOCATIONS,
                      env = { KPAYMENT_BASE_URL = m.url, KPAYMENT_SKIN = "oauth-spec" } })
  end)
  teardown(function()
    if n then n.stop() end
    if m then m.stop() end
  end)

  local q = nginx.encode

  it("works when the workers cannot read the site: everything is loaded before they start", function()
    -- As root, nginx's workers run as nobody: a site in a directory only
    -- root reads (root's home) has its modules loaded by the master
    -- (init_by_lua) and no file read later.
    local uid = io.popen("id -u"):read("*l")
    if uid ~= "0" then return pending("needs root: the workers then run as nobody") end
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute(("mkdir -p %s/spec && cp -R lua %s/ && cp -R spec/support %s/spec/ && chmod 700 %s")
      :format(dir, dir, dir, dir)))
    local own = nginx.start({ workers = 1, main = ENV, server = LOCATIONS, package_root = dir,
                              http = 'init_by_lua_block { require("support.nginx_handlers") }',
                              env = { KPAYMENT_BASE_URL = m.url, KPAYMENT_SKIN = "oauth-spec" } })
    finally(function()
      own.stop()
      os.execute("rm -rf " .. dir)
    end)
    local creds = "client_id=" .. q(ID) .. "&client_secret=" .. q(SECRET) .. "&token_url="
      .. q(m.url .. "/oauth2/token")
    local status, text = own.get("/t/call?" .. creds .. "&customer=c-1", 10)
    assert.equal(200, status, text)
    assert.matches("^3 200 1 ", text)
  end)

  it("fetches one token for a burst of requests and light threads, then replaces an expired one", function()
    local creds = "client_id=" .. q(ID) .. "&client_secret=" .. q(SECRET) .. "&token_url="
      .. q(m.url .. "/oauth2/token")
    m.reset()
    local urls = {}
    for i = 1, 20 do
      urls[i] = n.url .. "/t/call?" .. creds .. "&customer=mock:stall:0.2&dealer=d" .. i
    end
    urls[#urls + 1] = n.url .. "/t/poll?n=4&" .. creds .. "&customer=mock:stall:0.2"
    local out = burst(urls)
    assert.equal(20, count(out, "3 200 1 "), out)
    assert.equal(1, count(out, "4 3,3,3,3 "), out)
    assert.equal(1, m.stats().token_requests)
    m.control("/_mock/expire_tokens")
    out = burst({ urls[1], urls[2], urls[3] })
    -- no caller sees the 401: those that sent the expired token sent again
    -- with a new one (a second attempt), the later ones had the new one
    assert.equal(3, count(out, "3 200 [12] "), out)
    assert.is_true(count(out, "3 200 2 ") >= 1, out)
    assert.equal(2, m.stats().token_requests)
    -- a refusing endpoint: the auth error, no API call
    m.control("/_mock/token_fault?mode=500")
    local bad = n.url .. "/t/call?client_id=" .. q(ID) .. "&client_secret=wrong-one&token_url="
      .. q(m.url .. "/oauth2/token")
    local status, body = n.get(bad:sub(#n.url + 1), 5)
    assert.equal(200, status)
    assert.matches("^auth 500 ", body)
    m.control("/_mock/token_fault?mode=none")
  end)

  it("shares one token between two workers through token_dict", function()
    local two = nginx.start({ workers = 2, main = ENV, http = "lua_shared_dict kp_tokens 1m;",
                              server = LOCATIONS,
                              env = { KPAYMENT_BASE_URL = m.url, KPAYMENT_SKIN = "oauth-spec" } })
    finally(two.stop)
    m.reset()
    local creds = "client_id=" .. q(ID) .. "&client_secret=" .. q(SECRET) .. "&token_url="
      .. q(m.url .. "/oauth2/token") .. "&token_dict=kp_tokens"
    local urls = {}
    for i = 1, 30 do
      urls[i] = two.url .. "/t/call?" .. creds .. "&customer=mock:stall:0.2&dealer=w" .. i
    end
    local out = burst(urls)
    assert.equal(30, count(out, "3 200 1 "), out)
    assert.equal(1, m.stats().token_requests)
  end)
end)
