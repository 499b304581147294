-- How get_offers() fails: every HTTP error shape and transport fault the mock
-- can produce, each over real HTTP, each leaving the client usable.
local kpayment = require("kpayment")
local errors = require("kpayment.errors")
local mock = require("support.mock")

local USER, PASSWORD = "spec-user", "spec-password-7f3a"
local BASIC = errors.base64(USER .. ":" .. PASSWORD)
local DEALER = "7d2f9a40-dealer"

-- Credentials must appear nowhere: not in tostring, not in any field.
local function assert_no_secrets(err)
  local function walk(v, path)
    if type(v) == "string" then
      for _, s in ipairs({ PASSWORD, BASIC }) do
        assert.is_nil(v:find(s, 1, true), "credential in " .. path)
      end
    elseif type(v) == "table" then
      for k, x in pairs(v) do walk(x, path .. "." .. tostring(k)) end
    end
  end
  walk(err, "err")
  walk(tostring(err), "tostring(err)")
end

describe("kpayment errors", function()
  local server, client

  lazy_setup(function()
    server = mock.start({ "--user", USER, "--password", PASSWORD })
    -- one attempt each: retries are retry_spec's subject
    client = kpayment.new({ base_url = server.url, username = USER, password = PASSWORD,
                            skin = "spec-skin", timeout = 1.5, max_body = 200000, retries = 0 })
  end)

  lazy_teardown(function()
    if client then client:close() end
    if server then server.stop() end
  end)

  local function fault(mode, c)
    local offers, err = (c or client):get_offers({ customer_uuid = "mock:" .. mode, dealer_uuid = DEALER })
    assert.is_nil(offers)
    assert.is_true(errors.is(err))
    assert_no_secrets(err)
    -- one readable line
    assert.is_nil(tostring(err):find("\n"))
    assert.matches("^kpayment: ", tostring(err))
    return err
  end

  after_each(function()
    -- whatever happened, the same client goes on working
    local offers = client:get_offers({ customer_uuid = "after-fault", dealer_uuid = DEALER })
    assert.is_table(offers)
  end)

  describe("HTTP errors with the API's error body", function()
    it("401 for wrong credentials carries errors, code and message", function()
      local c = kpayment.new({ base_url = server.url, username = USER, password = "wrong-password",
                               skin = "s" })
      local offers, err = c:get_offers({ customer_uuid = "c", dealer_uuid = DEALER })
      c:close()
      assert.is_nil(offers)
      assert.equal("http", err.kind)
      assert.equal(401, err.status)
      assert.equal(401, err.errors[1].errorCode)
      assert.equal(401, err.code)
      assert.equal(err.errors[1].errorMessage, err.message)
      assert.is_table(err.warnings)
      assert.is_false(err.retryable)
      assert.is_nil(err.body)
      assert.is_nil(tostring(err):find("wrong-password", 1, true))
      assert.matches("^kpayment: http error %(HTTP 401%): .+ %[code 401%]$", tostring(err))
    end)

    it("401 without credentials", function()
      local c = kpayment.new({ base_url = server.url, skin = "s" })
      local _, err = c:get_offers({ customer_uuid = "c", dealer_uuid = DEALER })
      c:close()
      assert.equal(401, err.status)
      assert.equal("http", err.kind)
    end)

    it("400 for a request the API rejects", function()
      local err = fault("no-such-mode")
      assert.equal(400, err.status)
      assert.equal(400, err.code)
      assert.matches("no%-such%-mode", err.message)
      assert.is_false(err.retryable)
    end)

    it("500 with an API error is not retryable", function()
      local err = fault("error500")
      assert.equal("http", err.kind)
      assert.equal(500, err.status)
      assert.equal(500, err.code)
      assert.is_false(err.retryable)
    end)

    it("503 and 429 are retryable", function()
      for _, mode in ipairs({ "503", "429" }) do
        local err = fault(mode)
        assert.equal(tonumber(mode), err.status)
        assert.is_table(err.errors)
        assert.is_true(err.retryable)
      end
    end)
  end)

  describe("HTTP errors without JSON", function()
    it("keeps a snippet of an HTML body", function()
      for _, case in ipairs({ { "html500", 500 }, { "html502", 502 } }) do
        local err = fault(case[1])
        assert.equal("http", err.kind)
        assert.equal(case[2], err.status)
        assert.is_nil(err.errors)
        assert.matches("<html", err.body:lower())
        assert.is_true(#err.body <= 512)
        assert.equal("HTTP " .. case[2] .. (case[2] == 500 and " Internal Server Error" or " Bad Gateway"),
          err.message)
        assert.is_true(err.retryable)
      end
    end)

    it("copes with an empty body", function()
      local err = fault("empty502")
      assert.equal(502, err.status)
      assert.equal("", err.body)
      assert.is_true(err.retryable)
    end)
  end)

  describe("transport faults", function()
    it("times out on a stalled response", function()
      local err = fault("stall:4")
      assert.equal("timeout", err.kind)
      assert.equal(28, err.curl_code)
      assert.is_true(err.retryable)
    end)

    it("reports a body cut short of its Content-Length", function()
      local err = fault("truncate")
      assert.equal("network", err.kind)
      assert.equal(18, err.curl_code)
      assert.equal(200, err.status)
      assert.is_true(err.retryable)
    end)

    it("reports a connection closed without a response", function()
      local err = fault("close")
      assert.equal("network", err.kind)
      assert.equal(52, err.curl_code)
      assert.is_true(err.retryable)
    end)

    it("reports a refused connection", function()
      local c = kpayment.new({ base_url = "http://127.0.0.1:1", skin = "s", username = USER,
                               password = PASSWORD })
      local _, err = c:get_offers({ customer_uuid = "c", dealer_uuid = DEALER })
      c:close()
      assert.equal("network", err.kind)
      assert.equal(7, err.curl_code)
      assert.is_nil(err.status)
      assert.is_true(err.retryable)
      assert_no_secrets(err)
    end)

    describe("over TLS", function()
      local tls_server
      lazy_setup(function() tls_server = require("support.tls").start() end)
      lazy_teardown(function() if tls_server then tls_server.stop() end end)

      it("reports an untrusted certificate as tls, not retryable", function()
        local c = kpayment.new({ base_url = tls_server.url, skin = "s", username = USER,
                                 password = PASSWORD, timeout = 5 })
        local _, err = c:get_offers({ customer_uuid = "c", dealer_uuid = DEALER })
        c:close()
        assert.equal("tls", err.kind)
        assert.equal(60, err.curl_code)
        assert.is_false(err.retryable)
        assert_no_secrets(err)
      end)

      it("verifies against ca_file", function()
        -- the handshake succeeds; the server's status page is not the API
        local c = kpayment.new({ base_url = tls_server.url, skin = "s", ca_file = tls_server.ca_file,
                                 timeout = 5 })
        local _, err = c:get_offers({ customer_uuid = "c", dealer_uuid = DEALER })
        c:close()
        assert.equal("decode", err.kind)
        assert.equal(200, err.status)
      end)
    end)
  end)

  describe("bodies", function()
    it("reports invalid JSON with its byte offset and a snippet", function()
      local err = fault("badjson")
      assert.equal("decode", err.kind)
      assert.equal(200, err.status)
      assert.matches("at byte %d+$", err.message)
      assert.is_string(err.body)
      assert.is_false(err.retryable)
    end)

    it("refuses a body larger than max_body", function()
      local err = fault("big:400000")
      assert.equal("body_too_large", err.kind)
      assert.is_false(err.retryable)
    end)

    it("accepts a large body under max_body", function()
      local c = kpayment.new({ base_url = server.url, username = USER, password = PASSWORD, skin = "s",
                               max_body = 4000000 })
      local offers = c:get_offers({ customer_uuid = "mock:big:400000", dealer_uuid = DEALER })
      c:close()
      assert.is_table(offers)
    end)
  end)
end)
