-- examples/openresty/nginx.conf as shipped, started by
-- examples/openresty/run.sh (which changes only its `listen` port),
-- against the mock.  Run by `make test-openresty`.
local mock = require("support.mock")
local server = require("support.server")
local kpayment = require("kpayment")
local socket = require("socket")
local socket_http = require("socket.http")
local ltn12 = require("ltn12")

local USER, PASSWORD = "example-user", "example-password-77c1"

local quote, read_file = server.shell_quote, server.read_file

-- run.sh API_BASE_URL PORT; returns { url, log(), access(), stop() }.
local function start(base_url)
  local port = server.free_port()
  local out, err = os.tmpname(), os.tmpname()
  local shell = assert(io.popen(("env KPAYMENT_USERNAME=%s KPAYMENT_PASSWORD=%s KPAYMENT_SKIN=example " ..
    "sh examples/openresty/run.sh %s %d </dev/null >%s 2>%s & echo $!")
    :format(USER, PASSWORD, quote(base_url), port, out, err)))
  local pid = tonumber(shell:read("*l"))
  shell:close()
  local function stop()
    os.execute("kill " .. pid .. " 2>/dev/null")
    local deadline = socket.gettime() + 5
    while os.execute("kill -0 " .. pid .. " 2>/dev/null") == true and socket.gettime() < deadline do
      socket.sleep(0.05)
    end
    os.remove(out)
    os.remove(err)
  end
  local deadline = socket.gettime() + 15
  while true do
    local url = read_file(out):match("^(http://[^\n]+)\n")
    if url then
      local prefix = read_file(err):match("nginx prefix (%S+)")
      return { url = url, stop = stop,
               log = function() return read_file(prefix .. "/logs/error.log") end,
               access = function() return read_file(prefix .. "/logs/access.log") end }
    end
    if os.execute("kill -0 " .. pid .. " 2>/dev/null") ~= true or socket.gettime() > deadline then
      local why = read_file(err)
      stop()
      error("run.sh did not start nginx: " .. why, 2)
    end
    socket.sleep(0.05)
  end
end

local function get(url)
  local chunks = {}
  local _, status = socket_http.request({ url = url, sink = ltn12.sink.table(chunks) })
  return status, table.concat(chunks)
end

describe("examples/openresty/nginx.conf", function()
  local m, site
  setup(function()
    m = mock.start({ "--user", USER, "--password", PASSWORD })
    site = start(m.url)
  end)
  teardown(function()
    if site then site.stop() end
    if m then m.stop() end
  end)

  it("answers /offers with the decoded offers, ids exact", function()
    local status, body = get(site.url .. "/offers?customer=c-1&dealer=d-1")
    assert.equal(200, status, body)
    local c = kpayment.new({ base_url = m.url, username = USER, password = PASSWORD, skin = "example" })
    local offers = assert(c:get_offers({ customer_uuid = "c-1", dealer_uuid = "d-1" }))
    local want = {}
    for i = 1, #offers do want[i] = tostring(math.tointeger(offers[i].id) or offers[i].id) end
    local got = {}
    for token in body:match('"ids":%[(.-)%]'):gmatch("[^,]+") do got[#got + 1] = (token:gsub('"', "")) end
    assert.same(want, got)
  end)

  it("answers an API error as the error object, and a bad request as 400", function()
    local status, body = get(site.url .. "/offers?customer=mock:error500&dealer=d-1")
    assert.equal(502, status)
    assert.equal('{"error":{"kind":"http","status":500}}\n', body)
    status = get(site.url .. "/offers?customer=c-1")
    assert.equal(400, status)
  end)

  it("keeps credentials and customer ids out of its logs", function()
    get(site.url .. "/offers?customer=secret-customer-31&dealer=d-1")
    get(site.url .. "/offers?customer=mock:error500&dealer=d-1")
    socket.sleep(0.1)
    local logs = site.log() .. site.access()
    assert.is_nil(logs:find(PASSWORD, 1, true))
    assert.is_nil(logs:find("secret-customer-31", 1, true))
    assert.matches('"GET /offers" 200', site.access())
  end)
end)
