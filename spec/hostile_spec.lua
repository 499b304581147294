-- Against a server that misbehaves on purpose (spec/support/hostile_server.lua):
-- credentials echoed back everywhere an error can carry them, 2xx bodies of
-- the wrong shape, offers with fields named like our accessors, and user
-- loggers that raise.
local kpayment = require("kpayment")
local mime = require("mime")
local hostile = require("support.hostile")

local function base64(s) return (mime.b64(s)) end

local USER, PASSWORD = "hostile-user", "hostile-pass-8f3a91"
local TOKEN = "hostile-bearer-77c2e0d4"
local BASIC = base64(USER .. ":" .. PASSWORD)

-- Proxy credentials: the password as written in the URL and as sent.
local PROXY_USER, PROXY_PASS_RAW, PROXY_PASS = "puser", "pa%40ss-w0rd-x9", "pa@ss-w0rd-x9"
local PROXY_SECRETS = {
  PROXY_PASS_RAW, PROXY_PASS, PROXY_USER .. ":" .. PROXY_PASS, PROXY_USER .. ":" .. PROXY_PASS_RAW,
  base64(PROXY_USER .. ":" .. PROXY_PASS),
}
-- A proxy URL libcurl itself quotes in its messages.
local QUOTED_PASS = "pa55-word-x"
local QUOTED_SECRETS = {
  QUOTED_PASS, PROXY_USER .. ":" .. QUOTED_PASS, base64(PROXY_USER .. ":" .. QUOTED_PASS),
}

local REDACTED = "[redacted]"
local SNIPPET = 512

local function join(...)
  local out = {}
  for _, list in ipairs({ ... }) do
    for _, s in ipairs(list) do out[#out + 1] = s end
  end
  return out
end

-- Where any secret shows in v (strings, and tables at any depth, keys
-- included): a list of "path: secret".
local function leaks(v, secrets, path, found)
  found = found or {}
  if type(v) == "string" then
    for _, s in ipairs(secrets) do
      if v:find(s, 1, true) then found[#found + 1] = path .. ": " .. s end
    end
  elseif type(v) == "table" then
    for k, x in pairs(v) do
      local at = path .. "." .. tostring(k)
      leaks(k, secrets, at .. " (key)", found)
      leaks(x, secrets, at, found)
    end
  end
  return found
end

-- Keys anywhere in v that carry "[redacted]", with their depth.
local function redacted_keys(v, depth, found)
  found = found or {}
  if type(v) == "table" then
    for k, x in pairs(v) do
      if type(k) == "string" and k:find(REDACTED, 1, true) then found[#found + 1] = depth end
      redacted_keys(x, depth + 1, found)
    end
  end
  return found
end

-- Every place an error and the log can carry a secret, checked: the whole
-- error table, tostring(err), each logged line, and the end of err.body
-- for the start (4 bytes or more) of a secret cut by the snippet limit.
local function assert_clean(err, secrets, lines)
  local found = leaks(err, secrets, "err")
  leaks(tostring(err), secrets, "tostring(err)", found)
  for i, line in ipairs(lines or {}) do leaks(line, secrets, "log[" .. i .. "]", found) end
  if type(err.body) == "string" then
    for _, s in ipairs(secrets) do
      for n = 4, #s do
        if err.body:sub(-n) == s:sub(1, n) then
          found[#found + 1] = "err.body ends with " .. s:sub(1, n)
          break
        end
      end
    end
  end
  assert.same({}, found)
end

local function capture()
  local lines = {}
  return lines, function(level, msg) lines[#lines + 1] = level .. ": " .. msg end
end

-- Replaces io.stderr (looked up at each write by the default logger) for
-- the rest of the spec; returns the lines written.
local function capture_stderr()
  local saved, text = io.stderr, {}
  io.stderr = { write = function(self, ...) -- luacheck: ignore 122
    for _, s in ipairs({ ... }) do text[#text + 1] = tostring(s) end
    return self
  end }
  finally(function() io.stderr = saved end) -- luacheck: ignore 122
  return function()
    local lines = {}
    for line in table.concat(text):gmatch("[^\n]+") do lines[#lines + 1] = line end
    return lines
  end
end

local function ids(list)
  local out = {}
  for i, o in ipairs(list) do out[i] = o.id end
  return out
end

describe("kpayment", function()
  local server, proxy_port

  lazy_setup(function()
    server = hostile.start()
    proxy_port = server.url:match(":(%d+)$")
  end)
  lazy_teardown(function() if server then server.stop() end end)

  local function client(opts)
    local o = { base_url = server.url, skin = "s", retries = 0, timeout = 5 }
    for k, v in pairs(opts or {}) do o[k] = v end
    return kpayment.new(o)
  end

  local function get(c, scenario)
    return c:get_offers({ customer_uuid = scenario, dealer_uuid = "d" })
  end

  describe("redaction of echoed credentials", function()
    it("scrubs the password and Basic value from every field of an API error, keys too", function()
      local lines, logger = capture()
      local c = client({ username = USER, password = PASSWORD, debug = true, logger = logger })
      local offers, err = get(c, "echo")
      assert.is_nil(offers)
      assert.equal("http", err.kind)
      assert.equal(401, err.status)
      assert.matches("^Credentials rejected: ", err.message)
      assert.truthy(err.message:find(REDACTED, 1, true), err.message)
      assert.truthy(err.code:find(REDACTED, 1, true), err.code)
      assert.is_table(err.errors)
      assert.is_table(err.warnings)
      -- keys are scrubbed, not dropped: some sit at depth 3 and more
      local depths = redacted_keys(err.errors, 1)
      table.sort(depths)
      assert.truthy(depths[#depths] and depths[#depths] >= 3, "no scrubbed key at depth 3+")
      assert.truthy(#redacted_keys(err.warnings, 1) > 0, "no scrubbed key in warnings")
      assert.truthy(#lines >= 2)
      assert_clean(err, { PASSWORD, BASIC }, lines)
    end)

    it("scrubs the bearer token from a 400 API error", function()
      local lines, logger = capture()
      local c = client({ bearer_token = TOKEN, debug = true, logger = logger })
      local _, err = get(c, "echo-400")
      assert.equal("http", err.kind)
      assert.equal(400, err.status)
      assert.truthy(err.message:find(REDACTED, 1, true), err.message)
      assert_clean(err, { TOKEN }, lines)
    end)

    it("scrubs an HTML error page, a password cut at byte 512 too", function()
      local lines, logger = capture()
      local c = client({ username = USER, password = PASSWORD, debug = true, logger = logger })
      local _, err = get(c, "echo-html")
      assert.equal("http", err.kind)
      assert.equal(500, err.status)
      assert.is_string(err.body)
      assert.truthy(#err.body <= SNIPPET, "body of " .. #err.body .. " bytes")
      assert.matches("^<!DOCTYPE html>", err.body)
      assert.truthy(err.body:find(REDACTED, 1, true), err.body)
      assert_clean(err, { PASSWORD, BASIC }, lines)
    end)

    it("scrubs a bearer token cut at byte 512", function()
      local lines, logger = capture()
      local c = client({ bearer_token = TOKEN, debug = true, logger = logger })
      local _, err = get(c, "echo-html")
      assert.equal(500, err.status)
      assert.truthy(err.body:find(REDACTED, 1, true), err.body)
      assert_clean(err, { TOKEN }, lines)
    end)

    it("scrubs a 2xx page that is not JSON (a decode error)", function()
      local lines, logger = capture()
      local c = client({ username = USER, password = PASSWORD, debug = true, logger = logger })
      local _, err = get(c, "echo-html-200")
      assert.equal("decode", err.kind)
      assert.equal(200, err.status)
      assert.truthy(#err.body <= SNIPPET, "body of " .. #err.body .. " bytes")
      assert.truthy(err.body:find(REDACTED, 1, true), err.body)
      assert_clean(err, { PASSWORD, BASIC }, lines)
    end)

    describe("in unusual shapes", function()
      local ODD_PASS = 'S3cr%t "pa:ss" w\195\182rd@x/y'
      local ODD_SHAPES = {
        ODD_PASS,
        'S3cr%t \\"pa:ss\\" w\195\182rd@x/y',
        'S3cr%t \\"pa:ss\\" w\195\182rd@x\\/y',
        'S3cr%t \\"pa:ss\\" w\\u00f6rd@x\\/y',
        'S3cr%t \\"pa:ss\\" w\\u00F6rd@x\\/y',
        base64(ODD_PASS),
        (base64(USER .. ":" .. ODD_PASS):gsub("=+$", ""):gsub("[+/]", { ["+"] = "-", ["/"] = "_" })),
      }

      -- The end of every string of err (and of the log lines) against the
      -- start of each secret: what cutting before scrubbing leaves.
      local function assert_no_head(err, secrets, lines)
        local texts = { tostring(err) }
        for k, v in pairs(err) do
          if type(v) == "string" then texts[#texts + 1] = k .. "=" .. v end
        end
        for _, line in ipairs(lines or {}) do texts[#texts + 1] = line end
        local found = {}
        for _, text in ipairs(texts) do
          for _, s in ipairs(secrets) do
            for n = 4, #s do
              if text:sub(-n) == s:sub(1, n) then found[#found + 1] = text end
            end
          end
        end
        assert.same({}, found)
      end

      it("scrubs a password a server wrote as JSON text or Base64 of its own", function()
        local lines, logger = capture()
        local c = client({ username = USER, password = ODD_PASS, debug = true, logger = logger })
        local _, err = get(c, "echo-escaped")
        assert.equal(401, err.status)
        assert.matches("json: %[redacted%]\n", err.body)
        assert.matches("base64url: %[redacted%]\n", err.body)
        assert_clean(err, ODD_SHAPES, lines)
      end)

      it("scrubs the API's warnings on a 2xx, not only on an error", function()
        for _, opts in ipairs({ { username = USER, password = PASSWORD }, { bearer_token = TOKEN } }) do
          local lines, logger = capture()
          opts.debug, opts.logger = true, logger
          local offers = assert(get(client(opts), "echo-warn"))
          local meta = offers:meta()
          assert.truthy(#meta.warnings >= 2)
          local text = meta.warnings[1].warningMessage
          assert.truthy(text:find(REDACTED, 1, true), text)
          assert_clean(meta, { PASSWORD, BASIC, TOKEN }, lines)
        end
      end)

      it("scrubs a fetched token longer than the client's secrets were, cut at byte 512", function()
        local token = ("Lng7-tok3n-"):rep(110)
        local lines, logger = capture()
        local c = client({ client_id = "id-1", client_secret = "secret-1",
                           token_url = server.url .. "/long/token", debug = true, logger = logger })
        local _, err = get(c, "echo-html")
        assert.equal(500, err.status)
        assert.truthy(#err.body <= SNIPPET, "body of " .. #err.body .. " bytes")
        assert_clean(err, { token, token:sub(1, 8) }, lines)
      end)

      it("scrubs a token the client replaced twice while an answer sent with it waited", function()
        local lines, logger = capture()
        local c = client({ client_id = "id-1", client_secret = "secret-1",
                           token_url = server.url .. "/seq/token", debug = true, logger = logger })
        assert(get(c, "ok"))   -- the first token
        local first = c:start_offers({ customer_uuid = "echo-html", dealer_uuid = "d" })
        -- tokens last 1 s (refreshed after 0.9 s): two more replace the first
        for _ = 1, 2 do
          require("socket").sleep(1)
          assert(get(c, "ok"))
        end
        while not first:done() do c:poll(100) end
        local _, err = first:result()
        assert.equal(500, err.status)
        assert_clean(err, { "seq-token-1-Xq93vLw" }, lines)
      end)

      it("scrubs a password as other encoders write it: quote, encodeURIComponent, HTML, Latin-1", function()
        local pass = "Zq9-S3CR3T/p&ss<w>rd!*'()x\195\182"
        local lines, logger = capture()
        local c = client({ username = USER, password = pass, debug = true, logger = logger })
        local _, err = get(c, "echo-encoded")
        assert.equal(401, err.status)
        for _, name in ipairs({ "quote", "uricomponent", "html", "html39", "latin1" }) do
          assert.matches("\n?" .. name .. ": %[redacted%]\n", err.body)
        end
        assert_clean(err, { "Zq9-S3CR3T" }, lines)
      end)

      it("scrubs a token fetched from the token endpoint, percent-encoded too", function()
        local lines, logger = capture()
        local c = client({ client_id = "id-1", client_secret = "secret-1",
                           token_url = server.url .. "/token", debug = true, logger = logger })
        local _, err = get(c, "echo-escaped")
        assert.equal(401, err.status)
        assert.matches("token: %[redacted%]\n", err.body)
        assert_clean(err, { "tQ+x/Zr9Kp3w+Lm8/Vb2=", "tQ%2Bx%2FZr9Kp3w%2BLm8%2FVb2%3D" }, lines)
      end)

      it("scrubs a secret that the core's limit on the request id cuts", function()
        for _, opts in ipairs({ { username = USER, password = PASSWORD }, { bearer_token = TOKEN } }) do
          local lines, logger = capture()
          local seen = {}
          opts.debug, opts.logger = true, logger
          opts.on_response = function(info) seen[#seen + 1] = info.request_id end
          local _, err = get(client(opts), "echo-reqid")
          assert.equal(401, err.status)
          assert.matches("^x+", err.request_id)
          assert.equal(err.request_id, seen[1])
          local secrets = { "Basic " .. BASIC, "Bearer " .. TOKEN, BASIC, TOKEN }
          assert_clean(err, secrets, lines)
          assert_no_head(err, secrets, lines)
        end
      end)

      it("scrubs a proxy password from a libcurl message cut at its buffer's end", function()
        local pass = ("k9-"):rep(112)
        local lines, logger = capture()
        local c = client({ debug = true, logger = logger,
                           proxy = "http://puser:" .. pass .. "@[::1]:3128:bad" })
        local _, err = get(c, "ok")
        assert.equal("network", err.kind)
        assert.truthy(err.message:find(REDACTED, 1, true), err.message)
        assert_clean(err, { pass }, lines)
        assert_no_head(err, { pass }, lines)
      end)

      it("scrubs a proxy password when the proxy URL has an '@' after its host too", function()
        local pass = "Pr0xyPW-1"
        local lines, logger = capture()
        local proxy = "http://puser:" .. pass .. "@127.0.0.1:" .. proxy_port .. "/x@y"
        local c = client({ base_url = "http://origin.invalid", debug = true, logger = logger, proxy = proxy })
        local _, err = get(c, "proxy-407")
        assert.equal(407, err.status)
        assert_clean(err, { pass, base64("puser:" .. pass) }, lines)
        -- shown with its host, as libcurl reads it
        assert.equal("http://[redacted]@127.0.0.1:" .. proxy_port .. "/x@y", c:settings().proxy)
        -- a "/" left unencoded in a password: libcurl takes "pa" for the
        -- port, so the whole of "pa/ss-9x" is the user's secret
        local odd = client({ proxy = "http://puser:pa/ss-9x@127.0.0.1:" .. proxy_port, debug = true,
                             logger = logger })
        assert.equal("http://[redacted]@127.0.0.1:" .. proxy_port, odd:settings().proxy)
        _, err = get(odd, "ok")
        assert_clean(err, { "pa/ss-9x", "ss-9x" }, lines)
      end)

      it("scrubs a proxy given with a key alone, no password", function()
        local key = "KEY-4e5f6a-proxy"
        local lines, logger = capture()
        local c = client({ base_url = "http://origin.invalid", debug = true, logger = logger,
                           proxy = "http://" .. key .. "@127.0.0.1:" .. proxy_port })
        local _, err = get(c, "proxy-407")
        assert.equal(407, err.status)
        assert_clean(err, { key, base64(key .. ":") }, lines)
      end)

      it("scrubs what a transport function raises or answers", function()
        local lines, logger = capture()
        local long = ("z"):rep(490)
        local answers = {
          function(req) error("exploded on " .. req.headers.Authorization .. " password " .. PASSWORD) end,
          function() return nil, "network", long .. " password=" .. PASSWORD end,
          function() return "status " .. PASSWORD end,
        }
        for i, answer in ipairs(answers) do
          local c = client({ username = USER, password = PASSWORD, debug = true, logger = logger,
                             transport = answer })
          local ok, offers, err = pcall(get, c, "ok")
          local what = ok and err or { raised = offers }
          if ok then assert.is_nil(offers, i) end
          assert_clean(what, { PASSWORD, BASIC }, lines)
          assert_no_head(what, { PASSWORD, BASIC }, lines)
        end
      end)
    end)

    describe("through a proxy", function()
      local function proxied(opts)
        local o = { base_url = "http://origin.invalid", debug = true,
                    proxy = "http://" .. PROXY_USER .. ":" .. PROXY_PASS_RAW .. "@127.0.0.1:" .. proxy_port }
        for k, v in pairs(opts) do o[k] = v end
        return client(o)
      end

      it("scrubs the proxy credentials from the proxy's 407 page", function()
        local lines, logger = capture()
        local _, err = get(proxied({ logger = logger }), "proxy-407")
        assert.equal("http", err.kind)
        assert.equal(407, err.status)
        assert.truthy(#err.body <= SNIPPET, "body of " .. #err.body .. " bytes")
        assert.truthy(err.body:find(REDACTED, 1, true), err.body)
        assert_clean(err, PROXY_SECRETS, lines)
      end)

      it("scrubs the proxy credentials from the proxy's 502 page", function()
        local lines, logger = capture()
        local _, err = get(proxied({ logger = logger }), "proxy-502")
        assert.equal("http", err.kind)
        assert.equal(502, err.status)
        assert.truthy(err.body:find(REDACTED, 1, true), err.body)
        assert_clean(err, PROXY_SECRETS, lines)
      end)

      it("scrubs both sets of credentials from an origin that echoes them", function()
        local lines, logger = capture()
        local c = proxied({ username = USER, password = PASSWORD, logger = logger })
        local _, err = get(c, "echo")
        assert.equal(401, err.status)
        assert.truthy(err.message:find(REDACTED, 1, true), err.message)
        assert_clean(err, join({ PASSWORD, BASIC }, PROXY_SECRETS), lines)
        _, err = get(c, "echo-html")
        assert.equal(500, err.status)
        assert_clean(err, join({ PASSWORD, BASIC }, PROXY_SECRETS), lines)
      end)

      it("scrubs the proxy password when libcurl quotes the proxy URL", function()
        local lines, logger = capture()
        local c = client({ debug = true, logger = logger,
                           proxy = "http://" .. PROXY_USER .. ":" .. QUOTED_PASS .. "@bad host:1" })
        local _, err = get(c, "ok")
        assert.equal("network", err.kind)
        assert.matches("[Pp]roxy", err.message)
        assert.truthy(err.message:find(REDACTED, 1, true), err.message)
        assert_clean(err, QUOTED_SECRETS, lines)
      end)

      it("scrubs the proxy password when the proxy host does not resolve", function()
        local lines, logger = capture()
        local c = client({ debug = true, logger = logger,
          proxy = "http://" .. PROXY_USER .. ":" .. QUOTED_PASS .. "@no-such-proxy.invalid:1" })
        local _, err = get(c, "ok")
        assert.equal("network", err.kind)
        assert.matches("[Pp]roxy", err.message)
        assert_clean(err, QUOTED_SECRETS, lines)
      end)
    end)
  end)

  describe("2xx bodies of the wrong shape", function()
    -- scenario, what it is, the byte the message names, words it names
    local WRONG = {
      { "top-array", "a top-level array", 1, { "object" } },
      { "string", "a top-level string", 1, { "object" } },
      { "number", "a top-level number", 1, { "object" } },
      { "object", "financeOffers as an object", 18, { "financeOffers", "array" } },
      { "null-element", "a null offer", 28, { "financeOffers", "object" } },
      { "number-element", "a number offer", 19, { "financeOffers", "object" } },
      { "string-element", "a string offer", 19, { "financeOffers", "object" } },
      { "array-element", "an array offer", 19, { "financeOffers", "object" } },
    }

    for _, case in ipairs(WRONG) do
      local name, what, byte, words = case[1], case[2], case[3], case[4]
      it("rejects " .. what .. " as a decode error naming it and its byte", function()
        local offers, err = get(client(), "shape-" .. name)
        assert.is_nil(offers)
        assert.is_true(kpayment.is_error(err))
        assert.equal("decode", err.kind)
        assert.equal(200, err.status)
        assert.is_false(err.retryable)
        for _, word in ipairs(words) do assert.matches(word, err.message) end
        assert.matches(" at byte " .. byte .. "$", err.message)
      end)
    end

    it("logs the decode error as the outcome of the attempt, with debug", function()
      local lines, logger = capture()
      local _, err = get(client({ debug = true, logger = logger }), "shape-object")
      assert.equal("decode", err.kind)
      assert.equal(2, #lines, table.concat(lines, "\n"))
      assert.matches("^debug: GET ", lines[1])
      assert.equal("debug: " .. tostring(err), lines[2])
    end)

    it("takes a compressed body within max_body whose compressed length is over it", function()
      local body = '{"financeOffers":[{"id":1}],"warnings":[]}'
      local offers, err = get(client({ max_body = #body }), "gzip-small")
      assert.is_nil(err, tostring(err))
      assert.equal(1, #offers)
      local _, over = get(client({ max_body = #body - 1 }), "gzip-small")
      assert.equal("body_too_large", over.kind)
    end)

    it("refuses two different Content-Lengths, as every transport does", function()
      local offers, err = get(client(), "two-lengths")
      assert.is_nil(offers)
      assert.equal("network", err.kind)
      assert.is_false(err.retryable)
      assert.equal("the response has two different Content-Lengths", err.message)
    end)

    it("says exactly what is wrong with financeOffers as an object", function()
      local _, err = get(client(), "shape-object")
      assert.equal("'financeOffers' is not an array at byte 18", err.message)
    end)

    it("rejects them with fields too", function()
      local c = client()
      for _, case in ipairs(WRONG) do
        local offers, err = c:get_offers({ customer_uuid = "shape-" .. case[1], dealer_uuid = "d",
                                           fields = { "id" } })
        assert.is_nil(offers, case[1])
        assert.equal("decode", err.kind, case[1])
        assert.matches(" at byte " .. case[3] .. "$", err.message)
      end
    end)

    it("rejects them in a batch, entry by entry", function()
      local list = {}
      for i, case in ipairs(WRONG) do list[i] = { customer_uuid = "shape-" .. case[1], dealer_uuid = "d" } end
      list[#list + 1] = { customer_uuid = "ok", dealer_uuid = "d" }
      local results = client():get_offers_many(list, { concurrency = 3 })
      assert.equal(#list, #results)
      for i = 1, #WRONG do
        assert.equal("decode", results[i].err and results[i].err.kind, WRONG[i][1])
      end
      assert.equal(3, #results[#list].offers)
    end)

    it("fails a 2xx that carries the API's errors and no offers, as the same body under a 4xx", function()
      local c = client()
      local offers, err = get(c, "shape-api-errors")
      assert.is_nil(offers)
      assert.equal("http", err.kind)
      assert.equal(200, err.status)
      assert.is_false(err.retryable)
      assert.equal(1, err.attempts)
      assert.equal(404, err.code)
      assert.equal("customer not found", err.message)
      assert.equal("w", err.warnings[1].warningMessage)
      assert.equal("kpayment: http error (HTTP 200): customer not found [code 404]", tostring(err))
      -- shared by several callers, each gets it
      local results = c:get_offers_many({ { customer_uuid = "shape-api-errors", dealer_uuid = "d" },
                                          { customer_uuid = "shape-api-errors", dealer_uuid = "d" } })
      for i = 1, 2 do assert.equal("http", results[i].err and results[i].err.kind) end
      -- never kept by a cache
      local cached = client({ cache = { ttl = 60 } })
      for _ = 1, 2 do assert.equal("http", select(2, get(cached, "shape-api-errors")).kind) end
      -- an empty errors array is no failure
      local none = assert(get(c, "shape-no-errors"))
      assert.equal(0, #none)
    end)

    it("says what an API error says, skipping its texts that are empty or not text", function()
      local _, err = get(client(), "odd-message")
      assert.equal("http", err.kind)
      assert.equal("the description", err.message)
    end)

    for _, name in ipairs({ "null", "empty" }) do
      it("gives an empty list for " .. (name == "null" and "a null" or "an absent") .. " financeOffers",
        function()
          local offers, err = get(client(), "shape-" .. name)
          assert.is_nil(err)
          assert.equal(0, #offers)
          assert.same({}, ids(offers:active()))
          assert.is_nil(offers:find(1))
          assert.equal(200, offers:meta().status)
        end)
    end
  end)

  describe("server fields named like accessors", function()
    local Offer = require("kpayment.offer").Offer

    it("leave debug logging working", function()
      local lines, logger = capture()
      local c = client({ debug = true, logger = logger })
      local offers, err = get(c, "shadow")
      assert.is_nil(err)
      assert.equal(3, #offers)
      local log = table.concat(lines, "\n")
      assert.matches("debug: 200 in [%d.]+ ms, 3 offer%(s%)", log)
      assert.truthy(log:find("customer=A*** L***", 1, true), log)
      assert.is_nil(log:find("Mallory", 1, true))
    end)

    it("stay the server's values beside the accessors", function()
      local offers = assert(get(client({ debug = true, logger = function() end }), "shadow"))
      local o = offers[1]
      assert.equal("Mallory", o.customer_name)
      assert.equal("yes", o.is_active)
      assert.equal(7, o.vehicle_label)
      assert.equal("Ann Lee", Offer.customer_name(o))
      assert.is_true(Offer.is_active(o))
      assert.equal("2021 Toyota Camry", Offer.vehicle_label(o))
      assert.equal("36", Offer.attribute(o, "term"))
    end)

    it("leave offers:active(), :find() and :meta() working", function()
      local offers = assert(get(client(), "shadow"))
      assert.same({ 1, 3 }, ids(offers:active()))
      assert.equal(2, offers:find(2).id)
      assert.equal(3, offers:find("g-3").id)
      assert.is_nil(offers:find("f"))
      assert.equal(3, offers:active():find(3).id)
      assert.is_nil(offers:active():find(2))
      assert.equal(200, offers:meta().status)
    end)

    it("leave start_offers and get_offers_many working with debug = true", function()
      local lines, logger = capture()
      local c = client({ debug = true, logger = logger })
      local got
      c:start_offers({ customer_uuid = "shadow", dealer_uuid = "d",
                       on_done = function(offers, err) got = { offers = offers, err = err } end })
      local deadline = os.time() + 5
      while not got and os.time() <= deadline do c:poll(50) end
      assert.is_table(got)
      assert.is_nil(got.err)
      assert.same({ 1, 3 }, ids(got.offers:active()))
      local results = c:get_offers_many({ { customer_uuid = "shadow", dealer_uuid = "d" },
                                          { customer_uuid = "shadow", dealer_uuid = "d" } })
      assert.equal(3, #results[1].offers)
      assert.equal(3, #results[2].offers)
      local offer_lines = 0
      for _, l in ipairs(lines) do
        if l:find("3 offer(s)", 1, true) then offer_lines = offer_lines + 1 end
      end
      assert.equal(3, offer_lines)
    end)
  end)

  describe("a logger that raises", function()
    local function raising()
      local calls = { n = 0 }
      return calls, function(_, msg)
        calls.n = calls.n + 1
        error("logger failed on: " .. msg)
      end
    end

    it("leaves get_offers returning its offers", function()
      local stderr = capture_stderr()
      local calls, logger = raising()
      local offers, err = get(client({ debug = true, logger = logger }), "ok")
      assert.is_nil(err)
      assert.equal(3, #offers)
      assert.truthy(calls.n >= 2)
      assert.equal(calls.n, #stderr())
    end)

    it("leaves a failing call returning nil, err, and stderr free of secrets", function()
      local stderr = capture_stderr()
      local calls, logger = raising()
      local offers, err = get(client({ username = USER, password = PASSWORD, debug = true,
                                       logger = logger }), "echo")
      assert.is_nil(offers)
      assert.equal("http", err.kind)
      assert.equal(401, err.status)
      local lines = stderr()
      assert.equal(calls.n, #lines)
      assert_clean(err, { PASSWORD, BASIC }, lines)
    end)

    it("leaves poll delivering each request once", function()
      local stderr = capture_stderr()
      local _, logger = raising()
      local c = client({ debug = true, logger = logger })
      local calls = {}
      for _, scenario in ipairs({ "ok", "echo" }) do
        c:start_offers({ customer_uuid = scenario, dealer_uuid = "d", on_done = function(offers, err)
          calls[#calls + 1] = { scenario = scenario, offers = offers, err = err }
        end })
      end
      local deadline = os.time() + 5
      while #calls < 2 and os.time() <= deadline do c:poll(50) end
      assert.equal(0, c:poll(0))
      assert.equal(0, c:poll(0))
      assert.equal(2, #calls)
      for _, call in ipairs(calls) do
        if call.scenario == "ok" then assert.equal(3, #call.offers)
        else assert.equal(401, call.err.status) end
      end
      assert.truthy(#stderr() >= 4)
    end)

    it("reports a raising on_done on stderr when the logger raises too", function()
      local stderr = capture_stderr()
      local _, logger = raising()
      local c = client({ logger = logger })
      local called = 0
      c:start_offers({ customer_uuid = "ok", dealer_uuid = "d", on_done = function()
        called = called + 1
        error("on_done blew up")
      end })
      local deadline = os.time() + 5
      while called == 0 and os.time() <= deadline do c:poll(50) end
      assert.equal(0, c:poll(0))
      assert.equal(1, called)
      local lines = stderr()
      assert.equal(1, #lines)
      assert.truthy(lines[1]:find("on_done callback failed", 1, true), lines[1])
    end)

    it("leaves get_offers_many returning every entry", function()
      capture_stderr()
      local _, logger = raising()
      local results = client({ debug = true, logger = logger }):get_offers_many({
        { customer_uuid = "ok", dealer_uuid = "d" }, { customer_uuid = "echo", dealer_uuid = "d" },
        { customer_uuid = "shadow", dealer_uuid = "d" },
      })
      assert.equal(3, #results)
      assert.equal(3, #results[1].offers)
      assert.equal(401, results[2].err.status)
      assert.equal(3, #results[3].offers)
    end)
  end)
end)
