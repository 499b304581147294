-- OAuth2 client credentials against the mock's token endpoint: a token
-- fetched once for every call waiting, refreshed before it expires or when
-- the API refuses it, endpoint failures as `auth` errors, and the secret
-- and tokens kept out of everything printed.
local kpayment = require("kpayment")
local mock = require("support.mock")
local json = require("kpayment.json")

-- Characters that HTTP Basic's form-encoding (RFC 6749 §2.3.1) must carry.
local ID, SECRET = "kp:client id+1", "s3cr3t p@ss%word:é"

describe("client credentials", function()
  local m
  lazy_setup(function()
    m = mock.start({ "--client-id", ID, "--client-secret", SECRET, "--token-ttl", "3600" })
  end)
  lazy_teardown(function() if m then m.stop() end end)
  before_each(function()
    m.reset()
    m.control("/_mock/token_fault?mode=none")
  end)

  local function client(opts)
    local o = { base_url = m.url, skin = "s", timeout = 5, client_id = ID, client_secret = SECRET,
                token_url = m.url .. "/oauth2/token" }
    for k, v in pairs(opts or {}) do o[k] = v end
    return kpayment.new(o)
  end

  local function stats() return m.stats() end

  it("fetches a token on first use and sends it as a bearer token", function()
    local c = client()
    for _ = 1, 3 do assert(c:get_offers({ customer_uuid = "c", dealer_uuid = "d" })) end
    assert.equal(1, stats().token_requests)
    assert.equal(3, stats().requests)
    local log = m.requests()
    assert.equal("POST", log[1].method)
    assert.equal("Basic", log[1].headers.authorization)
    assert.equal("Bearer", log[#log].headers.authorization)
    assert.equal("client_credentials", c:settings().credentials)
    assert.equal("payment.financeOffer.read", c:settings().scope)
    assert.is_nil(c:settings().client_secret)
    c:close()
  end)

  it("fetches one token for many calls waiting at once, in every runtime", function()
    local c = client()
    local list = {}
    for i = 1, 20 do list[i] = { customer_uuid = "c" .. i, dealer_uuid = "d" } end
    for _, r in ipairs(c:get_offers_many(list)) do assert.is_table(r.offers) end
    assert.equal(1, stats().token_requests)
    local p = client()
    local done = 0
    for i = 1, 10 do
      p:start_offers({ customer_uuid = "c" .. i, dealer_uuid = "d",
                       on_done = function(offers) if offers then done = done + 1 end end })
    end
    while p:poll(10) > 0 do end
    assert.equal(10, done)
    assert.equal(2, stats().token_requests)
    c:close()
    p:close()
  end)

  it("refreshes a token the API refused, once, and nobody sees the 401", function()
    local c = client()
    assert(c:get_offers({ customer_uuid = "c", dealer_uuid = "d" }))
    m.control("/_mock/expire_tokens")
    local offers, err = c:get_offers({ customer_uuid = "c", dealer_uuid = "d" })
    assert.is_nil(err)
    assert.equal(2, offers:meta().attempts)
    assert.equal(2, stats().token_requests)
    c:close()
  end)

  it("keeps a batch going while tokens expire in the middle of it", function()
    m.control("/_mock/token_ttl?s=1")
    local c = client()
    local list = {}
    for i = 1, 24 do list[i] = { customer_uuid = "mock:stall:0.2", dealer_uuid = "d" .. i } end
    local results = c:get_offers_many(list, { concurrency = 4 })
    for i, r in ipairs(results) do assert.is_table(r.offers, "entry " .. i .. ": " .. tostring(r.err)) end
    assert.is_true(stats().token_requests >= 2, json.encode(stats()))
    c:close()
  end)

  it("reports the token endpoint's failures as auth errors", function()
    local cases = {
      { "500", true, "HTTP 500" },
      { "badjson", false, "no bearer access_token" },
      { "close", true, nil },
      { "slow:3", true, nil },
    }
    for _, case in ipairs(cases) do
      m.control("/_mock/token_fault?mode=" .. case[1])
      local c = client({ timeout = 1 })
      local offers, err = c:get_offers({ customer_uuid = "c", dealer_uuid = "d" })
      assert.is_nil(offers, case[1])
      assert.equal("auth", err.kind, case[1])
      assert.equal(case[2], err.retryable, case[1])
      if case[3] then assert.matches(case[3], err.message, 1, true) end
      assert.equal(0, stats().requests, case[1] .. ": no API call without a token")
      c:close()
    end
    m.control("/_mock/token_fault?mode=none")
    local wrong = client({ client_secret = "not-the-secret" })
    local _, err = wrong:get_offers({ customer_uuid = "c", dealer_uuid = "d" })
    assert.equal("auth", err.kind)
    assert.equal("invalid_client", err.oauth_error)
    assert.equal(401, err.status)
    assert.is_false(err.retryable)
    local gone = client({ token_url = "http://127.0.0.1:1/oauth2/token" })
    _, err = gone:get_offers({ customer_uuid = "c", dealer_uuid = "d" })
    assert.equal("auth", err.kind)
    assert.is_true(err.retryable)
  end)

  it("never shows the secret or a token in errors, logs or hooks", function()
    local seen = {}
    local function keep(...)
      for _, v in ipairs({ ... }) do
        seen[#seen + 1] = type(v) == "table" and json.encode(v) or tostring(v)
      end
    end
    local c = client({ debug = true, logger = keep, on_request = keep, on_response = keep })
    assert(c:get_offers({ customer_uuid = "c", dealer_uuid = "d" }))
    local token = c._oauth.token
    m.control("/_mock/expire_tokens")
    assert(c:get_offers({ customer_uuid = "c", dealer_uuid = "d" }))
    m.control("/_mock/token_fault?mode=500")
    c._oauth:invalidate(c._oauth.token)
    local _, err = c:get_offers({ customer_uuid = SECRET, dealer_uuid = token })
    keep(tostring(err), err)
    local text = table.concat(seen, "\n")
    assert.is_true(#seen > 5)
    assert.is_nil(text:find(SECRET, 1, true))
    assert.is_nil(text:find(token, 1, true))
    assert.is_nil(text:find(require("kpayment.oauth").form(SECRET), 1, true))
    c:close()
  end)

  it("runs the command with client credentials from the environment", function()
    local cli = require("support.cli_run")
    local env = { KPAYMENT_BASE_URL = m.url, KPAYMENT_SKIN = "s", KPAYMENT_CLIENT_ID = ID,
                  KPAYMENT_CLIENT_SECRET = SECRET, KPAYMENT_TOKEN_URL = m.url .. "/oauth2/token" }
    local r = cli.run({ "offers", "--customer", "c", "--dealer", "d", "--json" }, { env = env })
    assert.equal(0, r.status, r.err)
    assert.equal(3, #require("kpayment.core").decode(r.out).financeOffers)
    assert.equal(1, stats().token_requests)
    r = cli.run({ "doctor" }, { env = env })
    assert.matches("credentials%s+client_credentials", r.out)
    assert.matches("token URL%s+http://", r.out)
    assert.is_nil((r.out .. r.err):find(SECRET, 1, true))
    env.KPAYMENT_CLIENT_SECRET = "not-the-secret"
    r = cli.run({ "offers", "--customer", "c", "--dealer", "d" }, { env = env })
    assert.equal(1, r.status)
    assert.matches("auth error %(HTTP 401%)", r.err)
  end)

  it("takes one kind of credentials, and the token URL with client credentials", function()
    local base = { base_url = "http://127.0.0.1:1" }
    local function fails(extra, message)
      local o = {}
      for k, v in pairs(base) do o[k] = v end
      for k, v in pairs(extra) do o[k] = v end
      local ok, err = pcall(kpayment.new, o)
      assert.is_false(ok)
      assert.matches(message, err, 1, true)
    end
    fails({ client_id = "a", client_secret = "b", token_url = "http://h/t", username = "u", password = "p" },
      "give one kind of credentials")
    fails({ client_id = "a", client_secret = "b", token_url = "http://h/t", bearer_token = "t" },
      "give one kind of credentials")
    fails({ client_id = "a" }, "'client_id' and 'client_secret' go together")
    fails({ client_id = "a", client_secret = "b" }, "client credentials need 'token_url'")
    fails({ client_id = "a", client_secret = "b", token_url = "ftp://h/t" }, "bad option 'token_url'")
    fails({ token_url = "http://h/t" },
      "'token_url', 'scope' and 'token_dict' go with client_id and client_secret")
    fails({ client_id = "a", client_secret = "b", token_url = "http://h/t", token_dict = "d" },
      "bad option 'token_dict' (no lua_shared_dict named 'd'")
  end)
end)
