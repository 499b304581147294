-- The HTTP/1.x response framing of the transports that are not libcurl
-- (src/kp_h1.c, reached through request:feed in src/kp_report.c), fed piece
-- by piece without any network.  A socket hands over whatever the kernel
-- had, so a response may arrive cut anywhere: every cut must give the
-- outcome of the whole.  Also request:response and request:fail, the other
-- two ways such a transport reports an attempt.
local core = require("kpayment.core")
local deepcompare = require("luassert.util").deepcompare

local MAX_BODY = 1000
local HEAD_LIMIT, LINE_LIMIT = 65536, 8192     -- KP_H1_MAX_HEAD, KP_H1_MAX_LINE

-- In a list of pieces: feed(nil), the peer closed the connection.
local EOF = setmetatable({}, { __tostring = function() return "EOF" end })

local BODY = '{"financeOffers":[{"id":1,"name":"Ada"},{"id":2,"name":"Lin"}]}'
-- Long enough for chunks whose sizes take two hex digits.
local LONG_BODY = '{"financeOffers":[{"id":1,"note":"abcdefghijklmnopqrstuvwxyz0123456789"},'
  .. '{"id":2,"note":"ABCDEFGHIJKLMNOPQRSTUVWXYZ"},{"id":3}]}'
local API_ERROR = '{"errors":[{"code":"CUSTOMER_NOT_FOUND","message":"no such customer"}]}'

-- One client per max_body, shared by every attempt: an attempt costs a
-- userdata, a client a transport.
local clients = {}
local function attempt(max_body)
  max_body = max_body or MAX_BODY
  clients[max_body] = clients[max_body] or core.external({ max_body = max_body })
  return clients[max_body]:start("http://x/")
end

-- A response: its head lines joined by `eol` (CRLF unless told), the
-- empty line, then the body.
local function http(lines, body, eol)
  eol = eol or "\r\n"
  return table.concat(lines, eol) .. eol .. eol .. (body or "")
end

-- `body` in chunks: one per size line of `heads` (a size in hex, as written,
-- and whatever follows it on the line), the rest in one last chunk; then
-- the last-chunk line and the trailer lines.
local function chunked(body, heads, last, trailers, eol)
  eol = eol or "\r\n"
  local out, at = {}, 1
  for _, line in ipairs(heads) do
    local n = tonumber(line:match("^%x+"), 16)
    out[#out + 1] = line .. eol .. body:sub(at, at + n - 1) .. eol
    at = at + n
  end
  if at <= #body then
    out[#out + 1] = string.format("%X", #body - at + 1) .. eol .. body:sub(at) .. eol
  end
  out[#out + 1] = (last or "0") .. eol
  for _, t in ipairs(trailers or {}) do out[#out + 1] = t .. eol end
  out[#out + 1] = eol
  return table.concat(out)
end

local function without_total_time(o)
  local copy = {}
  for k, v in pairs(o) do
    if k ~= "total_time" then copy[k] = v end
  end
  return copy
end

-- What feeding `pieces` gives: the values of the feed that ended the
-- attempt (true, reusable; or nil), done()'s success and the outcome less
-- total_time (a clock reading); `running` when no feed ended it.  Second
-- result: which piece ended it.  Every feed after that one must be
-- refused: the attempt no longer runs.
local function verdict(pieces, max_body)
  local a = attempt(max_body)
  local v, ended_at = {}, nil
  for i = 1, #pieces do
    local p = pieces[i]
    if p == EOF then p = nil end
    local r1, r2 = a:feed(p)
    if ended_at then
      assert(r1 == nil, "piece " .. i .. ": a feed after the end gave " .. tostring(r1))
    elseif r1 ~= false then
      ended_at, v.complete, v.reusable = i, r1, r2
    end
  end
  if not ended_at then
    v.running = true
    return v, nil
  end
  local done, success = a:done()
  assert(done, "ended but not done")
  v.success = success
  v.outcome = without_total_time(a:outcome())
  return v, ended_at
end

-- Calls fn(pieces, label) for every cut of `text`: whole, in two pieces at
-- every byte, and one byte at a time; EOF after the last piece when `eof`.
local function each_cut(text, eof, fn)
  local function go(pieces, label)
    if eof then pieces[#pieces + 1] = EOF end
    fn(pieces, label)
  end
  go({ text }, "whole")
  for i = 1, #text - 1 do
    go({ text:sub(1, i), text:sub(i + 1) }, "cut at byte " .. i)
  end
  local bytes = {}
  for i = 1, #text do bytes[i] = text:sub(i, i) end
  go(bytes, "byte by byte")
end

-- The verdict of `text` fed whole, after checking that every cut gives
-- the same one.  `to_the_end`: the response ends with the text (or with
-- the EOF after it), so it must end at the last piece of every cut, not
-- before.
local function same_at_every_cut(text, eof, to_the_end, max_body)
  local whole
  each_cut(text, eof, function(pieces, label)
    local v, ended_at = verdict(pieces, max_body)
    if not whole then
      whole = v
    elseif not deepcompare(whole, v, true) then
      assert.same(whole, v, label) -- fails, and shows the difference
    end
    if to_the_end then
      assert.equal(#pieces, ended_at, label .. ": ended at another piece than the last")
    end
  end)
  return whole
end

local function ids(o)
  local list = {}
  for i, offer in ipairs(o.value.financeOffers) do list[i] = offer.id end
  return list
end

-- A head of exactly `size` bytes (status line, Content-Length of `body`,
-- padding headers of at most 8000 bytes a line, the empty line), then `body`.
local function head_of_size(size, body)
  local lines = { "HTTP/1.1 200 OK", "Content-Length: " .. #body }
  local used = #"HTTP/1.1 200 OK\r\n" + #("Content-Length: " .. #body .. "\r\n") + 2
  local k = 0
  while used < size do
    k = k + 1
    local name = string.format("X-Pad-%05d: ", k)
    local room = size - used - #name - 2
    if room > 8000 then room = 8000 end
    if room < 0 then error("no room for a padding header") end
    lines[#lines + 1] = name .. ("p"):rep(room)
    used = used + #name + room + 2
  end
  local text = http(lines, body)
  assert(#text - #body == size)
  return text
end

describe("HTTP/1.x framing of fed bytes", function()

  describe("a valid response gives the outcome of the whole at every cut", function()
    -- name, text, eof after it, reusable (nil: told below), and what the
    -- whole gives
    local cases = {
      { "Content-Length", http({ "HTTP/1.1 200 OK", "Content-Type: application/json",
          "Content-Length: " .. #BODY }, BODY), false, true,
        function(o) assert.same({ 1, 2 }, ids(o)) end },
      { "two equal Content-Lengths", http({ "HTTP/1.1 200 OK", "Content-Length: " .. #BODY,
          "Content-Length: " .. #BODY .. ", " .. #BODY }, BODY), false, true,
        function(o) assert.same({ 1, 2 }, ids(o)) end },
      { "chunked: extensions, mixed-case hex sizes, trailers",
        http({ "HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "X-Request-Id: chunky" },
          -- (16 hex digits is the most a size may take)
          chunked(LONG_BODY, { "1a;name=value", "1B ; q=\"a;b\" ; flag", "0000a",
            "0000000000000003;x", "2C" }, "0;last=yes", { "X-Checksum: abc", "expires: never" })),
        false, true,
        function(o) assert.same({ 1, 2, 3 }, ids(o)); assert.equal("chunky", o.request_id) end },
      { "chunked, upper-case coding name, then a Content-Encoding of identity",
        http({ "HTTP/1.1 200 OK", "Transfer-Encoding: identity, CHUNKED", "Content-Encoding: identity" },
          chunked(BODY, { "10", "F" })), false, true,
        function(o) assert.same({ 1, 2 }, ids(o)) end },
      { "close-delimited", http({ "HTTP/1.1 200 OK", "Content-Type: application/json" }, BODY),
        true, false, function(o) assert.same({ 1, 2 }, ids(o)) end },
      { "HTTP/1.0 with Content-Length", http({ "HTTP/1.0 200 OK", "Content-Length: " .. #BODY }, BODY),
        false, false, function(o) assert.same({ 1, 2 }, ids(o)) end },
      { "HTTP/1.0 close-delimited", http({ "HTTP/1.0 200 OK" }, BODY), true, false,
        function(o) assert.same({ 1, 2 }, ids(o)) end },
      { "HTTP/1.0 keep-alive", http({ "HTTP/1.0 200 OK", "Connection: Keep-Alive",
          "Content-Length: " .. #BODY }, BODY), false, nil,
        function(o) assert.same({ 1, 2 }, ids(o)) end },
      -- An interim response's headers are not the final one's: its request
      -- id and its framing headers are forgotten.
      { "interim 100 and 103 with headers", "HTTP/1.1 100 Continue\r\n\r\n"
          .. http({ "HTTP/1.1 103 Early Hints", "Link: </a.css>; rel=preload", "X-Request-Id: early",
            "Retry-After: 99", "Content-Length: 5", "Transfer-Encoding: gzip" })
          .. http({ "HTTP/1.1 200 OK", "Content-Length: " .. #BODY, "X-Request-Id: final" }, BODY),
        false, true,
        function(o)
          assert.same({ 1, 2 }, ids(o))
          assert.equal("final", o.request_id)
          assert.is_nil(o.retry_after)
        end },
      { "interim response with the only request id", http({ "HTTP/1.1 103 Early Hints",
          "X-Request-Id: early" }) .. http({ "HTTP/1.1 200 OK", "Content-Length: " .. #BODY }, BODY),
        false, true, function(o) assert.is_nil(o.request_id) end },
      { "odd whitespace and case in headers", http({ "HTTP/1.1 200 ",
          "content-LENGTH:\t  " .. #BODY .. " \t", "CONNECTION:   Keep-Alive ,  x ",
          "x-REQUEST-id:req-7  ", "retry-AFTER:\t 120\t", "X-Empty:", "X-Blank:  \t " }, BODY),
        false, true,
        function(o)
          assert.same({ 1, 2 }, ids(o))
          assert.equal("req-7", o.request_id)
          assert.equal("120", o.retry_after)
        end },
      { "bare LF line ends", http({ "HTTP/1.1 200 OK", "Content-Length: " .. #BODY,
          "X-Request-Id: lf" }, BODY, "\n"), false, true,
        function(o) assert.same({ 1, 2 }, ids(o)); assert.equal("lf", o.request_id) end },
      { "bare LF line ends, chunked", http({ "HTTP/1.1 200 OK", "Transfer-Encoding: chunked" },
          chunked(LONG_BODY, { "1f", "2" }, "0", { "T: 1" }, "\n"), "\n"), false, true,
        function(o) assert.same({ 1, 2, 3 }, ids(o)) end },
      { "CRLF and bare LF mixed", "HTTP/1.1 200 OK\nContent-Length: " .. #BODY .. "\r\n"
          .. "X-Request-Id: mixed\n\r\n" .. BODY, false, true,
        function(o) assert.same({ 1, 2 }, ids(o)) end },
      -- A 204 has no body whatever its headers say; as a 2xx its (empty)
      -- body is decoded: what matters here is only that it ends at once.
      { "204 with no body", http({ "HTTP/1.1 204 No Content", "Content-Length: 10",
          "X-Request-Id: r204" }), false, true,
        function(o) assert.equal(204, o.status); assert.equal("r204", o.request_id) end },
      { "404 with the API's error body", http({ "HTTP/1.1 404 Not Found",
          "Content-Type: application/json", "Content-Length: " .. #API_ERROR }, API_ERROR),
        false, true,
        function(o)
          assert.equal("http", o.kind)
          assert.equal(404, o.status)
          assert.equal("CUSTOMER_NOT_FOUND", o.errors[1].code)
          assert.is_false(o.retryable)
        end },
      { "503 with Retry-After, X-Correlation-Id before X-Request-Id", http({ "HTTP/1.1 503 Busy",
          "Retry-After: 30", "X-Correlation-Id: corr-1", "X-Request-Id: req-1",
          "Content-Length: 4" }, "busy"), false, true,
        function(o)
          assert.equal("http", o.kind)
          assert.equal(503, o.status)
          assert.equal("30", o.retry_after)
          assert.equal("req-1", o.request_id)
          assert.is_true(o.retryable)
        end },
      { "X-Request-Id before X-Correlation-Id", http({ "HTTP/1.1 200 OK", "X-Request-Id: req-2",
          "x-correlation-id: corr-2", "Content-Length: " .. #BODY }, BODY), false, true,
        function(o) assert.equal("req-2", o.request_id) end },
      { "X-Correlation-Id alone", http({ "HTTP/1.1 429 Too Many", "X-Correlation-Id: corr-3",
          "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT", "Content-Length: 0" }), false, true,
        function(o)
          assert.equal("corr-3", o.request_id)
          assert.equal("Wed, 21 Oct 2015 07:28:00 GMT", o.retry_after)
          assert.equal(429, o.status)
        end },
    }
    for _, case in ipairs(cases) do
      local name, text, eof, reusable, check = case[1], case[2], case[3], case[4], case[5]
      it(name, function()
        local whole = same_at_every_cut(text, eof, true)
        assert.is_true(whole.complete, name)
        if reusable ~= nil then assert.equal(reusable, whole.reusable, name) end
        check(whole.outcome)
      end)
    end
  end)

  describe("tells whether the connection may carry another request", function()
    -- The flag of feeding the whole text (then EOF when asked).
    local function reusable(text, eof)
      local pieces = { text }
      if eof then pieces[2] = EOF end
      local v = verdict(pieces)
      assert.is_true(v.complete, text)
      return v.reusable
    end

    it("keep-alive HTTP/1.1, framed by Content-Length or chunked: yes", function()
      assert.is_true(reusable(http({ "HTTP/1.1 200 OK", "Content-Length: " .. #BODY }, BODY)))
      assert.is_true(reusable(http({ "HTTP/1.1 200 OK", "Transfer-Encoding: chunked" }, chunked(BODY, {}))))
      assert.is_true(reusable(http({ "HTTP/1.1 404 Not Found", "Content-Length: 0" })))
      assert.is_true(reusable(http({ "HTTP/1.1 200 OK", "Connection: keep-alive",
        "Content-Length: " .. #BODY }, BODY)))
    end)

    it("HTTP/1.0 with Connection: keep-alive and Content-Length: yes", function()
      assert.is_true(reusable(http({ "HTTP/1.0 200 OK", "Connection: keep-alive",
        "Content-Length: " .. #BODY }, BODY)))
      assert.is_true(reusable(http({ "HTTP/1.0 200 OK", "connection: upgrade, KEEP-ALIVE",
        "Content-Length: " .. #BODY }, BODY)))
    end)

    it("Connection: close, HTTP/1.0, a close-delimited body, chunked with Content-Length: no", function()
      assert.is_false(reusable(http({ "HTTP/1.1 200 OK", "Connection: close",
        "Content-Length: " .. #BODY }, BODY)))
      assert.is_false(reusable(http({ "HTTP/1.1 200 OK", "Connection: keep-alive, Close",
        "Content-Length: " .. #BODY }, BODY)))
      assert.is_false(reusable(http({ "HTTP/1.1 200 OK", "Connection: close",
        "Transfer-Encoding: chunked" }, chunked(BODY, {}))))
      assert.is_false(reusable(http({ "HTTP/1.0 200 OK", "Content-Length: " .. #BODY }, BODY)))
      -- RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
      -- framing: the connection closes after it, keep-alive or not
      assert.is_false(reusable(http({ "HTTP/1.0 200 OK", "Connection: keep-alive",
        "Transfer-Encoding: chunked" }, chunked(BODY, {}))))
      -- keep-alive does not make a body that ends with the connection reusable
      assert.is_false(reusable(http({ "HTTP/1.0 200 OK", "Connection: keep-alive" }, BODY), true))
      assert.is_false(reusable(http({ "HTTP/1.1 200 OK" }, BODY), true))
      -- RFC 9112 6.3: chunked wins over Content-Length, and the connection
      -- must close (a request smuggling vector otherwise)
      for _, order in ipairs({ { "Transfer-Encoding: chunked", "Content-Length: 3" },
                               { "Content-Length: 3", "Transfer-Encoding: chunked" } }) do
        local text = http({ "HTTP/1.1 200 OK", order[1], order[2] }, chunked(BODY, { "7" }))
        local whole = same_at_every_cut(text, false, true)
        assert.is_true(whole.complete)
        assert.is_false(whole.reusable)
        assert.same({ 1, 2 }, ids(whole.outcome))
      end
    end)

    it("bytes after the end in the same piece: complete, but no", function()
      local text = http({ "HTTP/1.1 200 OK", "Content-Length: " .. #BODY }, BODY)
      local v = verdict({ text .. "HTTP/1.1 200 OK\r\n" })
      assert.is_true(v.complete)
      assert.is_false(v.reusable)
      assert.same({ 1, 2 }, ids(v.outcome))
      v = verdict({ http({ "HTTP/1.1 200 OK", "Transfer-Encoding: chunked" }, chunked(BODY, {})) .. "\r\n" })
      assert.is_true(v.complete)
      assert.is_false(v.reusable)
      v = verdict({ http({ "HTTP/1.1 204 No Content" }) .. "x" })
      assert.is_true(v.complete)
      assert.is_false(v.reusable)
      -- in a piece of their own they come after the end: refused
      local a = attempt()
      assert.same({ true, true }, { a:feed(text) })
      assert.is_nil(a:feed("HTTP/1.1 200 OK\r\n"))
    end)
  end)

  describe("fails on a framing error, as a network failure", function()
    local HEAD = "HTTP/1.1 200 OK\r\n"
    -- name, text, message (a plain substring), eof after it, retryable
    local cases = {
      { "a bad status code", "HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n", "not an HTTP/1.x status line" },
      { "HTTP/2 on the status line", "HTTP/2 200\r\n\r\n", "not an HTTP/1.x status line" },
      { "no space after the status code", "HTTP/1.1 200OK\r\n\r\n", "not an HTTP/1.x status line" },
      { "a status code of two digits", "HTTP/1.1 20 OK\r\n\r\n", "not an HTTP/1.x status line" },
      { "a lower-case protocol name", "http/1.1 200 OK\r\n\r\n", "not an HTTP/1.x status line" },
      { "blank before the status line", " HTTP/1.1 200 OK\r\n\r\n", "not an HTTP/1.x status line" },
      { "an HTML page", "<html><body>Bad Gateway</body></html>\r\n", "not an HTTP/1.x status line" },
      { "an SSH banner", "SSH-2.0-OpenSSH_9.2p1\r\n", "not an HTTP/1.x status line" },
      { "garbage after an interim response", "HTTP/1.1 100 Continue\r\n\r\nnonsense here\r\n",
        "not an HTTP/1.x status line" },
      { "101 Switching Protocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        "switched protocols" },
      { "a chunk size that is not hex", HEAD .. "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        "bad chunk size" },
      { "a chunk size with a sign", HEAD .. "Transfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n",
        "bad chunk size" },
      { "a chunk size with junk after it", HEAD .. "Transfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n",
        "bad chunk size" },
      { "an empty chunk size line", HEAD .. "Transfer-Encoding: chunked\r\n\r\n\r\nhello\r\n",
        "bad chunk size" },
      { "a chunk size over 16 hex digits", HEAD .. "Transfer-Encoding: chunked\r\n\r\n"
          .. "00000000000000005\r\nhello\r\n0\r\n\r\n", "bad chunk size" },
      { "chunk data longer than its size", HEAD .. "Transfer-Encoding: chunked\r\n\r\n"
          .. "5\r\nhello world\r\n0\r\n\r\n", "chunk longer than its size" },
      { "a Content-Length that is not a number", HEAD .. "Content-Length: abc\r\n\r\n",
        "bad Content-Length" },
      { "a negative Content-Length", HEAD .. "Content-Length: -1\r\n\r\n", "bad Content-Length" },
      { "a Content-Length in exponent form", HEAD .. "Content-Length: 1e3\r\n\r\n", "bad Content-Length" },
      { "a Content-Length with a blank inside", HEAD .. "Content-Length: 1 2\r\n\r\n", "bad Content-Length" },
      -- RFC 9110 8.6: Content-Length = 1*DIGIT; an empty one is no length
      -- (it must not leave the body to end with the connection)
      { "an empty Content-Length", HEAD .. "Content-Length: \r\n\r\n{}", "bad Content-Length", true },
      { "a Content-Length of only a comma", HEAD .. "Content-Length: ,\r\n\r\n{}",
        "bad Content-Length", true },
      { "a Content-Length of 19 digits", HEAD .. "Content-Length: 0000000000000000005\r\n\r\nhello",
        "bad Content-Length" },
      { "two different Content-Lengths", HEAD .. "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "two different Content-Lengths" },
      { "two different Content-Lengths in one header", HEAD .. "Content-Length: 5, 6\r\n\r\nhello!",
        "two different Content-Lengths" },
      { "Transfer-Encoding: gzip", HEAD .. "Transfer-Encoding: gzip\r\n\r\n", "other than chunked" },
      { "Transfer-Encoding: gzip, chunked", HEAD .. "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "other than chunked" },
      { "Transfer-Encoding: chunked, gzip", HEAD .. "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        "after chunked" },
      { "chunked twice", HEAD .. "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "after chunked" },
      { "Content-Encoding: gzip", HEAD .. "Content-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}",
        "Content-Encoding" },
      { "Content-Encoding: identity, br",
        HEAD .. "Content-Encoding: identity, br\r\nContent-Length: 2\r\n\r\n{}",
        "Content-Encoding" },
      { "an obsolete folded header line", HEAD .. "X-Long: one\r\n  two\r\nContent-Length: 2\r\n\r\n{}",
        "folds a header" },
      { "a folded line in an interim response", "HTTP/1.1 103 Early Hints\r\nLink: a\r\n\tb\r\n\r\n",
        "folds a header" },
      { "a header line without a name", HEAD .. ": value\r\nContent-Length: 2\r\n\r\n{}", "without a name" },
      { "a header line without a colon", HEAD .. "Content-Length 2\r\n\r\n{}", "without a name" },
      { "a header name with a blank", HEAD .. "Content Length: 2\r\n\r\n{}", "not a token" },
      { "a blank before the colon", HEAD .. "Content-Length : 2\r\n\r\n{}", "not a token" },
      -- the connection ended too early: another attempt may do better
      { "EOF after the status line", HEAD, "cut short", true, true },
      { "EOF in the middle of a header", HEAD .. "Content-Le", "cut short", true, true },
      { "EOF before the empty line", HEAD .. "Content-Length: 2\r\n", "cut short", true, true },
      { "EOF after an interim response", "HTTP/1.1 100 Continue\r\n\r\n", "cut short", true, true },
      { "EOF in a Content-Length body", HEAD .. "Content-Length: " .. #BODY .. "\r\n\r\n" .. BODY:sub(1, 20),
        "cut short", true, true },
      { "EOF in a chunk", HEAD .. "Transfer-Encoding: chunked\r\n\r\n" .. chunked(BODY, {}):sub(1, 20),
        "cut short", true, true },
      { "EOF before the last chunk", HEAD .. "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        "cut short", true, true },
      { "EOF in the trailers", HEAD .. "Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n",
        "cut short", true, true },
      { "EOF in the status line", "HTTP/1.1 20", "cut short", true, true },
    }
    for _, case in ipairs(cases) do
      local name, text, message, eof, retryable = case[1], case[2], case[3], case[4], case[5] or false
      it(name, function()
        local whole = same_at_every_cut(text, eof, false)
        assert.is_nil(whole.running, name .. ": still running")
        assert.is_nil(whole.complete, name .. ": complete")
        assert.is_false(whole.success)
        local o = whole.outcome
        assert.equal("network", o.kind, name)
        assert.truthy(o.message:find(message, 1, true), name .. ": " .. o.message)
        assert.equal(retryable, o.retryable, name)
      end)
    end

    it("EOF before any byte: the server closed the connection without answering", function()
      local v = verdict({ EOF })
      assert.is_nil(v.complete)
      assert.equal("network", v.outcome.kind)
      assert.equal("the server closed the connection without answering", v.outcome.message)
      assert.is_true(v.outcome.retryable)
      assert.is_nil(v.outcome.status)
      -- an empty piece is not a byte
      v = verdict({ "", "", EOF })
      assert.equal("the server closed the connection without answering", v.outcome.message)
    end)

    it("keeps the final response's status and request id when its framing is bad", function()
      local v = verdict({ "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 502 Bad Gateway\r\nX-Request-Id: gw-1\r\n"
        .. "Content-Length: x\r\n\r\n" })
      assert.equal("network", v.outcome.kind)
      assert.equal(502, v.outcome.status)
      assert.equal("gw-1", v.outcome.request_id)
      -- an interim response's status is no response's
      v = verdict({ "HTTP/1.1 100 Continue\r\nX:\r\n y\r\n\r\n" })
      assert.is_nil(v.outcome.status)
    end)

    it("refuses a line over 8192 bytes (its line end included), at every cut", function()
      -- the longest line that passes, with CRLF and with a bare LF
      local fits = "X-Big: " .. ("b"):rep(LINE_LIMIT - #"X-Big: " - 2)
      local text = http({ "HTTP/1.1 200 OK", fits, "Content-Length: " .. #BODY }, BODY)
      assert.is_true(verdict({ text }).complete)
      assert.is_true(verdict({ text:sub(1, 5000), text:sub(5001, 9000), text:sub(9001) }).complete)
      assert.is_true(verdict({ http({ "HTTP/1.1 200 OK", fits .. "b", "Content-Length: " .. #BODY },
        BODY, "\n") }).complete)
      local over = http({ "HTTP/1.1 200 OK", fits .. "b", "Content-Length: " .. #BODY }, BODY)
      local whole = same_at_every_cut(over, false, false)
      assert.equal("network", whole.outcome.kind)
      assert.equal("the response has a line over 8192 bytes", whole.outcome.message)
      assert.is_false(whole.outcome.retryable)
      -- a status line, a chunk size line (extensions are free-form), a
      -- trailer, and a line that never ends
      local long = ("x"):rep(LINE_LIMIT)
      for _, t in ipairs({
        "HTTP/1.1 200 " .. long .. "\r\n\r\n",
        http({ "HTTP/1.1 200 OK", "Transfer-Encoding: chunked" }, "2;" .. long .. "\r\n{}\r\n0\r\n\r\n"),
        http({ "HTTP/1.1 200 OK", "Transfer-Encoding: chunked" },
          "2\r\n{}\r\n0\r\nX-T: " .. long .. "\r\n\r\n"),
        "HTTP/1.1 200 OK\r\nX-Endless: " .. long,
      }) do
        local v = verdict({ t })
        assert.equal("the response has a line over 8192 bytes", v.outcome and v.outcome.message)
        local bytes = {}
        for i = 1, #t do bytes[i] = t:sub(i, i) end
        assert.same(v, (verdict(bytes)))
      end
    end)

    it("refuses a head over 65536 bytes, interim responses included", function()
      -- exactly the limit passes, one byte more fails: fed whole, in
      -- pieces of every 997 bytes, cut around the limit, byte by byte
      local fits = head_of_size(HEAD_LIMIT, BODY)
      local over = head_of_size(HEAD_LIMIT + 1, BODY)
      for _, t in ipairs({ fits, over }) do
        local cuts = { { t } }
        local pieces = {}
        for i = 1, #t, 997 do pieces[#pieces + 1] = t:sub(i, i + 996) end
        cuts[#cuts + 1] = pieces
        for i = HEAD_LIMIT - 3, HEAD_LIMIT + 3 do cuts[#cuts + 1] = { t:sub(1, i), t:sub(i + 1) } end
        local bytes = {}
        for i = 1, #t do bytes[i] = t:sub(i, i) end
        cuts[#cuts + 1] = bytes
        local first = verdict(cuts[1])
        for k = 2, #cuts do assert.same(first, verdict(cuts[k]), "cut " .. k) end
        if t == fits then
          assert.is_true(first.complete)
          assert.same({ 1, 2 }, ids(first.outcome))
        else
          assert.equal("network", first.outcome.kind)
          assert.equal("the response's head is over 65536 bytes", first.outcome.message)
          assert.is_false(first.outcome.retryable)
        end
      end
      -- small heads, but many: 103s with 5000-byte Link headers
      local hint = http({ "HTTP/1.1 103 Early Hints", "Link: " .. ("l"):rep(5000) })
      local final = http({ "HTTP/1.1 200 OK", "Content-Length: " .. #BODY }, BODY)
      assert.is_true(verdict({ hint:rep(12) .. final }).complete)
      local v = verdict({ hint:rep(14) .. final })
      assert.equal("the response's head is over 65536 bytes", v.outcome.message)
      -- trailers count with the head
      local trailer = ("X-T: " .. ("t"):rep(4000) .. "\r\n"):rep(17)
      v = verdict({ http({ "HTTP/1.1 200 OK", "Transfer-Encoding: chunked" },
        "2\r\n{}\r\n0\r\n" .. trailer .. "\r\n") })
      assert.equal("the response's head is over 65536 bytes", v.outcome.message)
    end)

    it("ends an endless flood of 100 Continue once past the head limit", function()
      local continue = "HTTP/1.1 100 Continue\r\n\r\n"
      local a, fed, r = attempt(), 0, false
      while r == false and fed < 1000000 do
        r = a:feed(continue)
        fed = fed + 1
      end
      assert.is_nil(r)
      -- the first 100 over the limit ends it
      assert.equal(math.floor(HEAD_LIMIT / #continue) + 1, fed)
      local o = a:outcome()
      assert.equal("network", o.kind)
      assert.equal("the response's head is over 65536 bytes", o.message)
      assert.is_false(o.retryable)
      assert.is_nil(o.status)
      -- in one piece, and a byte at a time
      local flood = continue:rep(3000)
      assert.equal(o.message, verdict({ flood }).outcome.message)
      local bytes = {}
      for i = 1, #flood do bytes[i] = flood:sub(i, i) end
      assert.equal(o.message, verdict(bytes).outcome.message)
    end)

    -- Which limit a long line breaks must not depend on where the pieces
    -- were cut: a line over 8192 bytes that would also take the head over
    -- 65536 if it were read whole.
    it("gives the same message for a line over both limits however it is cut", function()
      local head = "HTTP/1.1 200 OK\r\n" .. ("X-Pad: " .. ("p"):rep(4990) .. "\r\n"):rep(10)
      local text = head .. "X-Long: " .. ("l"):rep(20000) .. "\r\n\r\n"
      local whole = verdict({ text })
      assert.equal("network", whole.outcome.kind)
      assert.same(whole, (verdict({ text:sub(1, #head + 9000), text:sub(#head + 9001) })))
      -- 70000 bytes of anything but a line end
      local junk = ("j"):rep(70000)
      whole = verdict({ junk })
      assert.equal("network", whole.outcome.kind)
      local pieces = {}
      for i = 1, #junk, 1000 do pieces[#pieces + 1] = junk:sub(i, i + 999) end
      assert.same(whole, (verdict(pieces)))
      -- a long line that starts near the head's limit (the fuzzer's case):
      -- cut inside it, it is still refused for its length
      head = "HTTP/1.1 200 OK\r\n" .. ("X-Pad: " .. ("p"):rep(4990) .. "\r\n"):rep(12)
      text = head .. "X-Long: " .. ("l"):rep(9000) .. "\r\n\r\n"
      whole = verdict({ text })
      assert.equal("the response has a line over 8192 bytes", whole.outcome.message)
      for cut = #head, #head + 9010, 1000 do
        assert.same(whole, (verdict({ text:sub(1, cut), text:sub(cut + 1) })), "cut at " .. cut)
      end
    end)
  end)

  describe("holds max_body", function()
    it("fails at once on a Content-Length over max_body, before any body byte", function()
      local a = attempt()
      assert.is_nil(a:feed("HTTP/1.1 200 OK\r\nX-Request-Id: big\r\nContent-Length: "
        .. (MAX_BODY + 1) .. "\r\n\r\n"))
      local o = a:outcome()
      assert.equal("body_too_large", o.kind)
      assert.truthy(o.message:find("Content-Length", 1, true), o.message)
      assert.equal(200, o.status)
      assert.equal("big", o.request_id)
      assert.is_false(o.retryable)
      local status, _, bytes = a:stats()
      assert.equal(200, status)
      assert.equal(0, bytes)
      -- at every cut, and for a non-2xx too; 18 digits do not overflow
      for _, length in ipairs({ tostring(MAX_BODY + 1), "999999999999999999" }) do
        local whole = same_at_every_cut(http({ "HTTP/1.1 404 Not Found", "Content-Length: " .. length }),
          false, true)
        assert.equal("body_too_large", whole.outcome.kind)
        assert.equal(404, whole.outcome.status)
      end
    end)

    it("takes a body of exactly max_body bytes, whatever its framing", function()
      local body = BODY .. (" "):rep(MAX_BODY - #BODY)
      for _, text in ipairs({
        http({ "HTTP/1.1 200 OK", "Content-Length: " .. MAX_BODY }, body),
        http({ "HTTP/1.1 200 OK", "Transfer-Encoding: chunked" }, chunked(body, { "100", "2E8" })),
        http({ "HTTP/1.1 200 OK" }, body),
      }) do
        local eof = not text:find("Content-Length", 1, true) and not text:find("chunked", 1, true)
        local pieces = { text }
        if eof then pieces[2] = EOF end
        local v = verdict(pieces)
        assert.is_true(v.complete)
        assert.same({ 1, 2 }, ids(v.outcome))
        local bytes = {}
        for i = 1, #text do bytes[i] = text:sub(i, i) end
        if eof then bytes[#bytes + 1] = EOF end
        assert.same(v, (verdict(bytes)))
      end
    end)

    it("fails a chunked body once it passes max_body", function()
      local body = BODY .. (" "):rep(MAX_BODY + 1 - #BODY)
      -- two chunks of 500 bytes fill it; the size line of a third is refused
      local text = http({ "HTTP/1.1 200 OK", "X-Request-Id: ch", "Transfer-Encoding: chunked" },
        chunked(body, { "1f4", "1F4" }))
      local third = text:find("\r\n1\r\n", 1, true)
      local a = attempt()
      assert.is_false(a:feed(text:sub(1, third + 1)))
      local _, _, bytes = a:stats()
      assert.equal(MAX_BODY, bytes)
      assert.is_nil(a:feed(text:sub(third + 2)))
      local o = a:outcome()
      assert.equal("body_too_large", o.kind)
      assert.equal("response body larger than max_body", o.message)
      assert.equal(200, o.status)
      assert.equal("ch", o.request_id)
      assert.is_false(o.retryable)
      -- a chunk size beyond any max_body
      local whole = same_at_every_cut(http({ "HTTP/1.1 200 OK", "Transfer-Encoding: chunked" },
        "FFFFFFFFFFFFFFFF\r\n"), false, false)
      assert.equal("body_too_large", whole.outcome.kind)
      whole = same_at_every_cut(http({ "HTTP/1.1 200 OK", "Transfer-Encoding: chunked" }, chunked(body, {})),
        false, false)
      assert.equal("body_too_large", whole.outcome.kind)
    end)

    it("fails a close-delimited body once it passes max_body", function()
      local a = attempt()
      assert.is_false(a:feed("HTTP/1.1 200 OK\r\n\r\n"))
      assert.is_false(a:feed(("x"):rep(MAX_BODY - 1)))
      assert.is_false(a:feed("x"))
      assert.is_nil(a:feed("x"))
      local o = a:outcome()
      assert.equal("body_too_large", o.kind)
      assert.equal(200, o.status)
      assert.is_false(o.retryable)
      local whole = same_at_every_cut(http({ "HTTP/1.1 200 OK" }, ("x"):rep(MAX_BODY + 1)), true, false)
      assert.equal("body_too_large", whole.outcome.kind)
    end)
  end)

  describe("once the attempt no longer runs", function()
    it("refuses feed, response and fail after a complete response or a failure", function()
      local a = attempt()
      assert.same({ true, true }, { a:feed(http({ "HTTP/1.1 200 OK", "Content-Length: " .. #BODY }, BODY)) })
      assert.equal(0, select("#", a:feed("more")))
      assert.is_nil(a:feed(nil))
      assert.is_nil(a:response(500, "late"))
      assert.is_nil(a:fail("network", "late"))
      assert.same({ 1, 2 }, ids(a:outcome()))
      local b = attempt()
      assert.is_nil(b:feed("nonsense\r\n"))
      assert.is_nil(b:feed("HTTP/1.1 200 OK\r\n\r\n"))
      assert.is_nil(b:feed(nil))
      assert.is_nil(b:response(200, BODY))
      assert.equal("network", b:outcome().kind)
      local e = attempt()
      assert.is_nil(e:feed(nil))
      assert.is_nil(e:feed(nil))
      assert.equal("the server closed the connection without answering", e:outcome().message)
    end)

    it("refuses feed on a cancelled attempt, whose outcome is cancelled", function()
      local a = attempt()
      assert.is_false(a:feed("HTTP/1.1 200 OK\r\nContent-Length: " .. #BODY .. "\r\n\r\n" .. BODY:sub(1, 9)))
      a:cancel()
      assert.is_nil(a:feed(BODY:sub(10)))
      assert.is_nil(a:response(200, BODY))
      assert.is_nil(a:fail("timeout", "late"))
      local done, success = a:done()
      assert.is_true(done)
      assert.is_false(success)
      local o = a:outcome()
      assert.equal("cancelled", o.kind)
      assert.is_false(o.retryable)
      a:cancel()                -- again: nothing changes
      assert.equal("cancelled", a:outcome().kind)
      -- cancelled before a byte
      local b = attempt()
      b:cancel()
      assert.is_nil(b:feed("HTTP/1.1 200 OK\r\n"))
      assert.equal("cancelled", b:outcome().kind)
    end)

    it("cancels every running attempt when its client closes", function()
      local c = core.external({ max_body = MAX_BODY })
      local a, b, d = c:start("http://x/"), c:start("http://x/"), c:start("http://x/")
      assert.is_false(a:feed("HTTP/1.1 200 OK\r\nContent-Length: " .. #BODY .. "\r\n\r\n{"))
      assert.is_false(b:feed("HTTP/1.1 200 O"))
      assert.same({ true, true }, { d:feed(http({ "HTTP/1.1 200 OK", "Content-Length: " .. #BODY }, BODY)) })
      c:close()
      for _, r in ipairs({ a, b }) do
        assert.is_true((r:done()))
        assert.is_nil(r:feed(BODY))
        assert.is_nil(r:feed(nil))
        assert.equal("cancelled", r:outcome().kind)
      end
      -- a finished one keeps its response
      assert.same({ 1, 2 }, ids(d:outcome()))
      assert.is_nil(c:start("http://x/"))
      c:close()
    end)
  end)

  describe("request:response and request:fail", function()
    it("keeps request id and Retry-After from a headers table, names in any case", function()
      local a = attempt()
      assert.is_true(a:response(200, BODY, { ["x-REQUEST-id"] = "r-1", ["RETRY-AFTER"] = "5",
        ["Content-Type"] = "application/json" }))
      local o = a:outcome()
      assert.same({ 1, 2 }, ids(o))
      assert.is_nil(o.kind)
      assert.equal(200, o.status)
      assert.equal("r-1", o.request_id)
      assert.equal("5", o.retry_after)
      assert.same({ true, true }, { a:done() })
      -- a list of values: the first counts
      a = attempt()
      a:response(503, "down", { ["X-Request-Id"] = { "first", "second" }, ["Retry-After"] = { "7" } })
      o = a:outcome()
      assert.equal("http", o.kind)
      assert.equal(503, o.status)
      assert.equal("first", o.request_id)
      assert.equal("7", o.retry_after)
      assert.is_true(o.retryable)
      -- X-Request-Id wins over X-Correlation-Id, whatever the table's order
      for _ = 1, 3 do
        a = attempt()
        a:response(200, BODY, { ["X-Correlation-Id"] = "corr", ["X-Request-Id"] = "req", ["x-other"] = "o" })
        assert.equal("req", a:outcome().request_id)
      end
      a = attempt()
      a:response(404, API_ERROR, { ["X-Correlation-Id"] = "corr" })
      o = a:outcome()
      assert.equal("corr", o.request_id)
      assert.equal("CUSTOMER_NOT_FOUND", o.errors[1].code)
      -- no headers at all
      a = attempt()
      a:response(200, BODY)
      o = a:outcome()
      assert.is_nil(o.request_id)
      assert.is_nil(o.retry_after)
    end)

    it("fails a body over max_body as body_too_large, the status kept", function()
      local a = attempt()
      assert.is_true(a:response(200, ("x"):rep(MAX_BODY + 1), { ["X-Request-Id"] = "big" }))
      local o = a:outcome()
      assert.equal("body_too_large", o.kind)
      assert.equal("response body larger than max_body", o.message)
      assert.equal(200, o.status)
      assert.equal("big", o.request_id)
      assert.is_false(o.retryable)
      a = attempt()
      a:response(200, BODY .. (" "):rep(MAX_BODY - #BODY))
      assert.same({ 1, 2 }, ids(a:outcome()))
    end)

    it("fails with each kind, retryable as the kind says unless told", function()
      for _, case in ipairs({ { "network", true }, { "timeout", true }, { "tls", false },
                              { "body_too_large", false } }) do
        local a = attempt()
        assert.is_true(a:fail(case[1], "why: " .. case[1]))
        local o = a:outcome()
        assert.equal(case[1], o.kind)
        assert.equal("why: " .. case[1], o.message)
        assert.equal(case[2], o.retryable, case[1])
        assert.is_nil(o.status)
        assert.same({ true, false }, { a:done() })
        a = attempt()
        a:fail(case[1], "told", not case[2])
        assert.equal(not case[2], a:outcome().retryable, case[1])
      end
      local a = attempt()
      a:fail("network", "refused", false)
      assert.is_false(a:outcome().retryable)
    end)

    it("raises on a kind it does not know, the attempt left running", function()
      local a = attempt()
      for _, kind in ipairs({ "cancelled", "http", "decode", "NETWORK", "" }) do
        assert.has_error(function() a:fail(kind, "x") end)
      end
      assert.has_error(function() a:response(99, "") end)
      assert.has_error(function() a:response(200, "", "headers") end)
      assert.is_false((a:done()))
      assert.is_false(a:feed("HTTP/1.1 200 OK\r\n"))
      assert.is_true(a:fail("timeout", "slow"))
      assert.equal("timeout", a:outcome().kind)
    end)
  end)

  describe("stats", function()
    it("counts body bytes while running; no status before the head is complete", function()
      local a = attempt()
      local _, status, seconds, bytes, request_id
      status, seconds, bytes, request_id = a:stats()
      assert.is_nil(status)
      assert.is_number(seconds)
      assert.equal(0, bytes)
      assert.is_nil(request_id)
      assert.is_false(a:feed(""))
      assert.is_false(a:feed("HTTP/1.1 200 OK\r\nX-Request-Id: st-1\r\nContent-Len"))
      status, _, bytes, request_id = a:stats()
      assert.is_nil(status)
      assert.equal(0, bytes)
      assert.equal("st-1", request_id)      -- kept as soon as its line is read
      assert.is_false(a:feed("gth: " .. #BODY .. "\r\n\r\n"))
      _, _, bytes = a:stats()
      assert.equal(0, bytes)
      assert.is_false(a:feed(BODY:sub(1, 10)))
      _, _, bytes = a:stats()
      assert.equal(10, bytes)
      assert.same({ true, true }, { a:feed(BODY:sub(11)) })
      status, seconds, bytes, request_id = a:stats()
      assert.equal(200, status)
      assert.is_true(seconds >= 0)
      assert.equal(#BODY, bytes)
      assert.equal("st-1", request_id)
      -- chunked and close-delimited: the bytes of the body, not of the framing
      a = attempt()
      a:feed(http({ "HTTP/1.1 200 OK", "Transfer-Encoding: chunked" }, "5;ext\r\nhello\r\n3\r\nabc"))
      _, _, bytes = a:stats()
      assert.equal(8, bytes)
      a = attempt()
      a:feed(http({ "HTTP/1.0 200 OK" }, "abcdefg"))
      _, _, bytes = a:stats()
      assert.equal(7, bytes)
      assert.same({ true, false }, { a:feed(nil) })
      status, _, bytes = a:stats()
      assert.equal(200, status)
      assert.equal(7, bytes)
    end)
  end)

  describe("the reporting methods", function()
    it("take one way of reporting per attempt: response() after feed() raises", function()
      local a = attempt()
      assert.is_false(a:feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"))
      assert.has_error(function() a:response(200, "{}") end, "response() after feed() on the same attempt")
      a = attempt()
      assert.is_false(a:feed("HTTP/1.1 20"))
      assert.has_error(function() a:response(200, "{}") end, "response() after feed() on the same attempt")
    end)

    it("look at the attempt after converting their arguments, which may run a finalizer", function()
      local gc = require("support.gc")
      -- Finalizers that cancel the attempt of the moment fire at any
      -- allocation, the conversion of feed's number argument to a string
      -- among them.  An attempt cancelled at any point ends cancelled,
      -- never done with what was fed after that.
      local current, cancelled, wrong = nil, setmetatable({}, { __mode = "k" }), 0
      local fin = gc.storm(function()
        if current then
          cancelled[current] = true
          current:cancel()
        end
      end, function()
        for round = 1, 3000 do
          local a = attempt()
          current = a
          a:feed("HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n")
          a:feed(1000000000000000 + round)   -- 16 digits: a new string
          current = nil
          if cancelled[a] and a:outcome().kind ~= "cancelled" then wrong = wrong + 1 end
        end
      end)
      assert.is_true(fin.ok, tostring(fin.results[1]))
      assert.is_true(fin.n > 0, "no finalizer fired")
      assert.equal(0, wrong)
    end)
  end)
end)
