--- A misbehaving HTTP/1.1 server for the specs that attack the client's
-- response framing: responses that are cut short, too long, badly chunked,
-- endless, dripped, stalled, reset, or that close a kept-alive connection.
--
--   lua5.4 spec/support/framing_server.lua [seconds]
--
-- Prints its base URL (http://127.0.0.1:PORT) as the first line of stdout,
-- then serves many connections at once (non-blocking sockets, one coroutine
-- per connection), several requests per connection (keep-alive), until
-- killed or for `seconds` (default 600). A request head over 64 KiB, or not
-- complete 10 s after its first byte, closes the connection; so does 60 s
-- of silence between requests.
--
-- The scenario is the request's customerUUID query parameter (percent-
-- decoded); its parameters follow after colons ("drip:100"). An unknown
-- scenario, or a malformed parameter, is answered 404 (keep-alive).
-- Responses carry Content-Type: application/json and X-Request-Id:
-- frame-<n> (n = the request counter) unless said otherwise; keep-alive
-- responses end the connection anyway when the request asked to close.
--
-- Side channel, on any path whose last segment is stats or reset:
--   GET /stats   200 {"connections":N,"requests":M}, Content-Length, keep-alive
--   GET /reset   zeroes both counters, 200 {}
-- N counts connections accepted since start or the last reset, but not one
-- that has so far carried only /stats and /reset requests; M counts request
-- heads read, except /stats and /reset.
--
-- Scenarios (OK = the small valid offers body, OK_BODY below):
--   ok              200, Content-Length, keep-alive
--   chunked         200 chunked: chunks of 1 to 11 bytes, hex sizes in both cases,
--                   chunk extensions, two trailer fields; keep-alive
--   close           HTTP/1.1 200, Connection: close, no Content-Length, OK, close
--   http10          HTTP/1.0 200, no Content-Length, OK, close
--   interim:N       N (3) interim responses (100 and 103 alternately), then ok
--   flood           "100 Continue" responses forever, never a final response
--   short           Content-Length: 1000, 40 bytes of OK, close
--   long            Content-Length: 10, all of OK, held open 2 s, close
--   badchunk        chunked, first chunk-size line "zz"; keep-alive
--   chunkoverflow   chunked, first chunk-size line "ffffffffffffffffffff"; keep-alive
--   chunklong       chunked, a chunk announced as 3 bytes carries 5; keep-alive
--   drip:MS         the ok response one byte at a time, MS (100) ms apart
--   stall           no answer; held open until the client closes
--   stallbody       200 head with Content-Length: 10000, then nothing, held open
--   reset           200 head with Content-Length: 5000, 100 body bytes, TCP RST
--   bighead:KB      200 with an "X-Big" header of KB (100) KiB, then OK
--   longline        200 with a 10000-byte header line, then OK
--   huge:MB         200, Content-Length MB (100) MiB of '{"financeOffers":[' and
--                   spaces, written 64 KiB at a time as the client reads
--   hugechunked:MB  the same bytes chunked (64 KiB chunks), no Content-Length
--   hugeclose:MB    the same bytes delimited by close (no length, no chunks)
--   dupcl           Content-Length: 10 and Content-Length: 20, 20 body bytes
--   tecl            Transfer-Encoding: chunked and Content-Length: 5, chunked OK
--   gzip            Content-Encoding: gzip (OK, not compressed), Content-Length
--   te-gzip         Transfer-Encoding: gzip, chunked (OK chunked, not compressed)
--   badstatus       status line "HTTP/1.1 abc OK", then OK with Content-Length
--   garbage         "SSH-2.0-OpenSSH_9.2\r\n", close
--   nothing         close right after reading the request
--   fold            200 with a folded header ("X-A: one\r\n two\r\n"), then OK
--   status204       204 No Content, no body, keep-alive
--   retry:S:SECS    status S (503) with Retry-After: SECS (1) and an error body
--   keepalive-close ok (keep-alive headers), then the server closes 50 ms later
--   onlyonce        ok, then the server closes at once (no Connection: close)
--   slowhead:MS     ok after MS (1500) ms
--
-- Only luasocket is needed: this runs as its own process.

local socket = require("socket")

local gettime = socket.gettime

local LIFETIME = tonumber(arg and arg[1]) or 600   -- seconds, then exit
local HEAD_TIMEOUT = 10       -- seconds from a request head's first byte to its end
local IDLE_TIMEOUT = 60       -- seconds of silence before a request
local MAX_HEAD = 65536        -- bytes of request line + headers
local LINGER = 2              -- seconds to drain input after a graceful close
local MAX_OPEN = 900          -- connections served at once (select's FD_SETSIZE is 1024)
local PIECE = 65536           -- bytes per read and per write of a huge body
local MIB = 1048576

local OK_BODY = '{"financeOffers":[{"id":1,"status":"ACTIVE"},{"id":2,"status":"PENDING"},' ..
  '{"id":3,"status":"EXPIRED"}]}'
local OK_LINE = "HTTP/1.1 200 OK"
local JSON_PREFIX = '{"financeOffers":['
local FIRST_PIECE = JSON_PREFIX .. string.rep(" ", PIECE - #JSON_PREFIX)
local FILL_PIECE = string.rep(" ", PIECE)
local RESET_BODY = JSON_PREFIX .. string.rep(" ", 100 - #JSON_PREFIX)
local CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n"
local FLOOD = string.rep(CONTINUE, PIECE // #CONTINUE)

local REASONS = {
  [200] = "OK", [400] = "Bad Request", [404] = "Not Found", [408] = "Request Timeout",
  [429] = "Too Many Requests", [500] = "Internal Server Error", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

-- The chunked form of OK_BODY for "chunked": chunk sizes cycle through SIZES
-- (10 and 11 give hex letters, lower case on odd chunks, upper on even ones),
-- every third size line carries extensions, and two trailer fields follow.
local CHUNKED_OK = (function()
  local SIZES = { 1, 7, 10, 3, 5, 11, 2, 6, 4 }
  local parts, i, k = {}, 1, 0
  while i <= #OK_BODY do
    k = k + 1
    local n = math.min(SIZES[(k - 1) % #SIZES + 1], #OK_BODY - i + 1)
    local size = string.format("%x", n)
    if k % 2 == 0 then size = size:upper() end
    if k % 3 == 0 then size = size .. ";name=value;x" end
    parts[#parts + 1] = size .. "\r\n" .. OK_BODY:sub(i, i + n - 1) .. "\r\n"
    i = i + n
  end
  parts[#parts + 1] = "0\r\nX-Trailer: one\r\nX-Other: two\r\n\r\n"
  return table.concat(parts)
end)()

-- `body` in chunks of `size` bytes, with the last chunk and no trailers.
local function chunk(body, size)
  local parts = {}
  for i = 1, #body, size do
    local piece = body:sub(i, i + size - 1)
    parts[#parts + 1] = string.format("%x\r\n%s\r\n", #piece, piece)
  end
  parts[#parts + 1] = "0\r\n\r\n"
  return table.concat(parts)
end

local function unescape(s)
  s = s:gsub("%+", " ")
  return (s:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

---------------------------------------------------------------------------
-- Scheduler: each connection is a coroutine that yields what it waits for:
-- "r" (readable) or "w" (writable) on a socket, optionally until a deadline,
-- or "t" (a deadline alone). It is resumed with true when the socket is
-- ready, false when the deadline has passed.

local waiting = {}   -- coroutine -> { kind = "r" | "w" | "t", sock = ..., deadline = ... }
local open = 0       -- connections being served

local function wait(kind, sock, deadline)
  return coroutine.yield(kind, sock, deadline)
end

local function sleep(seconds)
  wait("t", nil, gettime() + seconds)
end

local function resume(co, ...)
  local ok, kind, sock, deadline = coroutine.resume(co, ...)
  if not ok then io.stderr:write("framing server: ", tostring(kind), "\n") end
  if coroutine.status(co) == "dead" then
    waiting[co] = nil
  else
    waiting[co] = { kind = kind, sock = sock, deadline = deadline }
  end
end

---------------------------------------------------------------------------
-- Counters for the side channel.

local stats = { connections = 0, requests = 0, generation = 0 }

---------------------------------------------------------------------------
-- A connection: a non-blocking socket, the bytes read but not used yet,
-- and its part in the counters.

local Conn = {}
Conn.__index = Conn

function Conn.new(sock)
  stats.connections = stats.connections + 1
  return setmetatable({
    sock = sock, buf = "", closed = false, rid = 0,
    fresh = true,                      -- no counted request yet
    counted = true,                    -- part of stats.connections
    generation = stats.generation,     -- the reset epoch it was counted in
  }, Conn)
end

-- Some bytes, or nil and "closed" / "timeout" / an error.
function Conn:read_some(deadline)
  while true do
    local data, err, partial = self.sock:receive(PIECE)
    data = data or partial
    if data and data ~= "" then return data end
    if err ~= "timeout" then return nil, err end
    if not wait("r", self.sock, deadline) then return nil, "timeout" end
  end
end

-- Writes all of `data`, waiting while the socket is not writable:
-- true, or nil and an error (the client closed).
function Conn:send(data)
  local i = 1
  while i <= #data do
    local last, err, partial = self.sock:send(data, i)
    if last then
      i = last + 1
    elseif err == "timeout" then
      i = partial + 1
      wait("w", self.sock)
    else
      return nil, err
    end
  end
  return true
end

-- Keeps the connection open, discarding input, until the client closes it
-- (or the deadline, if any).
function Conn:hold(deadline)
  while self:read_some(deadline) do end
end

-- Graceful close: FIN, then drain the input for a while (so that unread
-- input does not turn the close into a reset), then close.
function Conn:close()
  if self.closed then return end
  self.closed = true
  self.sock:shutdown("send")
  self:hold(gettime() + LINGER)
  self.sock:close()
end

-- Abortive close: a TCP RST.
function Conn:abort()
  if self.closed then return end
  self.closed = true
  self.sock:setoption("linger", { on = true, timeout = 0 })
  self.sock:close()
end

-- The next request head (up to and with its blank line), or nil when the
-- client closed, was too slow, or sent too much.
function Conn:read_head()
  local idle_deadline, started = gettime() + IDLE_TIMEOUT, nil
  while true do
    self.buf = self.buf:gsub("^[\r\n]+", "")   -- stray line ends before a request line
    if self.buf ~= "" and not started then started = gettime() end
    local _, stop = self.buf:find("\r?\n\r?\n")
    if stop then
      if stop > MAX_HEAD then return nil end
      local head = self.buf:sub(1, stop)
      self.buf = self.buf:sub(stop + 1)
      return head
    end
    if #self.buf > MAX_HEAD then return nil end
    local data = self:read_some(started and started + HEAD_TIMEOUT or idle_deadline)
    if not data then return nil end
    self.buf = self.buf .. data
  end
end

-- Discards a request body of n bytes: true, or false on close or timeout.
function Conn:skip(n)
  while true do
    local take = math.min(n, #self.buf)
    self.buf = self.buf:sub(take + 1)
    n = n - take
    if n == 0 then return true end
    local data = self:read_some(gettime() + HEAD_TIMEOUT)
    if not data then return false end
    self.buf = data
  end
end

---------------------------------------------------------------------------
-- Requests.

-- { scenario, side, close, length } from a request head, or nil.
local function parse_request(head)
  local line, rest = head:match("^([^\r\n]*)\r?\n(.*)$")
  local method, target, version = (line or ""):match("^(%u+) (%S+) HTTP/(%d%.%d)$")
  if not method then return nil end
  local headers = {}
  for h in rest:gmatch("([^\r\n]*)\r?\n") do
    local name, value = h:match("^([^:%s]+):%s*(.-)%s*$")
    if name then headers[name:lower()] = value end
  end
  local path, query = target:match("^([^?#]*)%??([^#]*)")
  local scenario = ""
  for pair in query:gmatch("[^&]+") do
    local name, value = pair:match("^([^=]*)=?(.*)$")
    if unescape(name) == "customerUUID" then
      scenario = unescape(value)
      break
    end
  end
  local connection = (headers.connection or ""):lower()
  local close = connection:find("close", 1, true) ~= nil or headers["transfer-encoding"] ~= nil
    or (version == "1.0" and not connection:find("keep-alive", 1, true))
  local length = tonumber((headers["content-length"] or ""):match("^%d+$"))
  local side = path:match("/(stats)$") or path:match("/(reset)$")
  return { scenario = scenario, side = side, close = close, length = length }
end

-- A counted (non side-channel) request on connection c.
local function count_request(c)
  if c.fresh then
    c.fresh = false
    if not c.counted then
      stats.connections = stats.connections + 1
      c.counted, c.generation = true, stats.generation
    end
  end
  stats.requests = stats.requests + 1
  c.rid = stats.requests
end

-- A status line, the usual headers, `extra` header lines and the blank line.
local function head(status_line, c, extra)
  local lines = { status_line, "Content-Type: application/json", "X-Request-Id: frame-" .. c.rid }
  for _, line in ipairs(extra or {}) do lines[#lines + 1] = line end
  lines[#lines + 1] = ""
  lines[#lines + 1] = ""
  return table.concat(lines, "\r\n")
end

local function ok_response(c)
  return head(OK_LINE, c, { "Content-Length: " .. #OK_BODY }) .. OK_BODY
end

local function error_response(c, status, message, extra)
  local body = string.format('{"errors":[{"errorCode":%d,"errorMessage":"%s"}]}', status, message)
  local lines = { "Content-Length: " .. #body }
  for _, line in ipairs(extra or {}) do lines[#lines + 1] = line end
  return head(string.format("HTTP/1.1 %d %s", status, REASONS[status] or "Status"), c, lines) .. body
end

local function unknown(c)
  return c:send(error_response(c, 404, "unknown scenario"))
end

-- A scenario parameter: `default` when absent, nil when malformed.
local function number_arg(s, default)
  if s == "" then return default end
  return s:match("^%d+%.?%d*$") and tonumber(s) or nil
end

local function integer_arg(s, default)
  if s == "" then return default end
  return s:match("^%d+$") and tonumber(s) or nil
end

-- Piece i (0-based) of a huge body: '{"financeOffers":[' then spaces.
local function huge_piece(i, n)
  local piece = i == 0 and FIRST_PIECE or FILL_PIECE
  return n == PIECE and piece or piece:sub(1, n)
end

-- Streams MB MiB of a huge body, 64 KiB per write, each write only once
-- select says the socket is writable; "chunked" wraps each write in a chunk.
-- True when all was sent, false when the client closed first.
local function stream_huge(c, mb, chunked)
  local total = math.floor(mb * MIB)
  local sent, i = 0, 0
  while sent < total do
    local n = math.min(PIECE, total - sent)
    local data = huge_piece(i, n)
    if chunked then data = string.format("%x\r\n", n) .. data .. "\r\n" end
    wait("w", c.sock)
    if not c:send(data) then return false end
    sent, i = sent + n, i + 1
  end
  if chunked then return c:send("0\r\n\r\n") ~= nil end
  return true
end

---------------------------------------------------------------------------
-- The scenarios: function(c, arg), where arg is the text after "name:" ("" if
-- none); true to keep the connection for the next request, false to close it
-- gracefully (unless the scenario already closed or reset it).

local SCENARIOS = {
  -- ok: 200, Content-Length, keep-alive.
  ["ok"] = function(c)
    return c:send(ok_response(c))
  end,

  -- chunked: 200 chunked (CHUNKED_OK: small chunks, mixed-case hex sizes,
  -- extensions, trailers X-Trailer and X-Other), keep-alive.
  ["chunked"] = function(c)
    return c:send(head(OK_LINE, c, { "Transfer-Encoding: chunked" }) .. CHUNKED_OK)
  end,

  -- close: HTTP/1.1 200 with Connection: close and no length; the body ends
  -- with the connection.
  ["close"] = function(c)
    c:send(head(OK_LINE, c, { "Connection: close" }) .. OK_BODY)
    return false
  end,

  -- http10: an HTTP/1.0 200 without length; the body ends with the connection.
  ["http10"] = function(c)
    c:send(head("HTTP/1.0 200 OK", c) .. OK_BODY)
    return false
  end,

  -- interim:N: N (default 3) interim responses, 100 Continue and 103 Early
  -- Hints (with a Link header) alternately, then the ok response.
  ["interim"] = function(c, arg)
    local n = integer_arg(arg, 3)
    if not n then return unknown(c) end
    local parts = {}
    for i = 1, n do
      parts[i] = i % 2 == 1 and CONTINUE or "HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n"
    end
    return c:send(table.concat(parts) .. ok_response(c))
  end,

  -- flood: 100 Continue responses for ever (64 KiB per write, as the client
  -- reads), never a final response; ends when the client closes.
  ["flood"] = function(c)
    while wait("w", c.sock) and c:send(FLOOD) do end
    return false
  end,

  -- short: Content-Length: 1000 but only 40 bytes of body, then close.
  ["short"] = function(c)
    c:send(head(OK_LINE, c, { "Content-Length: 1000" }) .. OK_BODY:sub(1, 40))
    return false
  end,

  -- long: Content-Length: 10 but all of OK_BODY, then the connection is held
  -- open for 2 s and closed.
  ["long"] = function(c)
    if not c:send(head(OK_LINE, c, { "Content-Length: 10" }) .. OK_BODY) then return false end
    sleep(2)
    return false
  end,

  -- badchunk: chunked, the first chunk-size line is "zz" (the rest as if it
  -- were a size); keep-alive.
  ["badchunk"] = function(c)
    return c:send(head(OK_LINE, c, { "Transfer-Encoding: chunked" }) ..
      "zz\r\n" .. OK_BODY .. "\r\n0\r\n\r\n")
  end,

  -- chunkoverflow: chunked, the first chunk size (20 hex digits) overflows
  -- 64 bits; keep-alive.
  ["chunkoverflow"] = function(c)
    return c:send(head(OK_LINE, c, { "Transfer-Encoding: chunked" }) ..
      "ffffffffffffffffffff\r\n" .. OK_BODY .. "\r\n0\r\n\r\n")
  end,

  -- chunklong: chunked, a chunk announced as 3 bytes carries 5 before its
  -- CRLF, then the rest of OK_BODY as one chunk; keep-alive.
  ["chunklong"] = function(c)
    return c:send(head(OK_LINE, c, { "Transfer-Encoding: chunked" }) ..
      "3\r\n" .. OK_BODY:sub(1, 5) .. "\r\n" ..
      string.format("%x\r\n", #OK_BODY - 5) .. OK_BODY:sub(6) .. "\r\n0\r\n\r\n")
  end,

  -- drip:MS: the whole ok response one byte per write, MS (default 100) ms
  -- between bytes; keep-alive.
  ["drip"] = function(c, arg)
    local ms = number_arg(arg, 100)
    if not ms then return unknown(c) end
    local data = ok_response(c)
    for i = 1, #data do
      if i > 1 then sleep(ms / 1000) end
      if not c:send(data:sub(i, i)) then return false end
    end
    return true
  end,

  -- stall: never answers; the connection stays open until the client closes.
  ["stall"] = function(c)
    c:hold()
    return false
  end,

  -- stallbody: the head of a 200 with Content-Length: 10000, then nothing;
  -- open until the client closes.
  ["stallbody"] = function(c)
    if c:send(head(OK_LINE, c, { "Content-Length: 10000" })) then c:hold() end
    return false
  end,

  -- reset: the head of a 200 with Content-Length: 5000 and 100 body bytes,
  -- then (50 ms later, so that they are on their way) a TCP RST.
  ["reset"] = function(c)
    if c:send(head(OK_LINE, c, { "Content-Length: 5000" }) .. RESET_BODY) then
      sleep(0.05)
      c:abort()
    end
    return false
  end,

  -- bighead:KB: a 200 with one header "X-Big: " and KB (default 100) KiB of
  -- "a", then OK_BODY with Content-Length; keep-alive.
  ["bighead"] = function(c, arg)
    local kb = number_arg(arg, 100)
    if not kb then return unknown(c) end
    return c:send(head(OK_LINE, c, {
      "X-Big: " .. string.rep("a", math.floor(kb * 1024)), "Content-Length: " .. #OK_BODY,
    }) .. OK_BODY)
  end,

  -- longline: a 200 with one 10000-byte header line ("X-Long: " and 9992
  -- "b"), then OK_BODY with Content-Length; keep-alive.
  ["longline"] = function(c)
    return c:send(head(OK_LINE, c, {
      "X-Long: " .. string.rep("b", 9992), "Content-Length: " .. #OK_BODY,
    }) .. OK_BODY)
  end,

  -- huge:MB: a 200 with Content-Length MB (default 100) MiB and that many
  -- bytes, '{"financeOffers":[' then spaces, written as the client reads;
  -- keep-alive if it all went out.
  ["huge"] = function(c, arg)
    local mb = number_arg(arg, 100)
    if not mb then return unknown(c) end
    return c:send(head(OK_LINE, c, { "Content-Length: " .. math.floor(mb * MIB) }))
      and stream_huge(c, mb, false)
  end,

  -- hugechunked:MB: the same bytes chunked, 64 KiB per chunk; keep-alive.
  ["hugechunked"] = function(c, arg)
    local mb = number_arg(arg, 100)
    if not mb then return unknown(c) end
    return c:send(head(OK_LINE, c, { "Transfer-Encoding: chunked" })) and stream_huge(c, mb, true)
  end,

  -- hugeclose:MB: the same bytes with neither length nor chunks (HTTP/1.1,
  -- no Connection header): the body ends with the connection.
  ["hugeclose"] = function(c, arg)
    local mb = number_arg(arg, 100)
    if not mb then return unknown(c) end
    if c:send(head(OK_LINE, c)) then stream_huge(c, mb, false) end
    return false
  end,

  -- dupcl: Content-Length: 10 and Content-Length: 20, 20 body bytes; keep-alive.
  ["dupcl"] = function(c)
    return c:send(head(OK_LINE, c, { "Content-Length: 10", "Content-Length: 20" }) .. OK_BODY:sub(1, 20))
  end,

  -- tecl: Transfer-Encoding: chunked and Content-Length: 5, OK_BODY chunked
  -- correctly; keep-alive.
  ["tecl"] = function(c)
    return c:send(head(OK_LINE, c, { "Transfer-Encoding: chunked", "Content-Length: 5" }) ..
      chunk(OK_BODY, 32))
  end,

  -- gzip: Content-Encoding: gzip on the plain OK_BODY, Content-Length; keep-alive.
  ["gzip"] = function(c)
    return c:send(head(OK_LINE, c, { "Content-Encoding: gzip", "Content-Length: " .. #OK_BODY }) ..
      OK_BODY)
  end,

  -- te-gzip: Transfer-Encoding: gzip, chunked on the plain OK_BODY chunked;
  -- keep-alive.
  ["te-gzip"] = function(c)
    return c:send(head(OK_LINE, c, { "Transfer-Encoding: gzip, chunked" }) .. chunk(OK_BODY, 32))
  end,

  -- badstatus: status line "HTTP/1.1 abc OK", then OK_BODY with
  -- Content-Length; keep-alive.
  ["badstatus"] = function(c)
    return c:send(head("HTTP/1.1 abc OK", c, { "Content-Length: " .. #OK_BODY }) .. OK_BODY)
  end,

  -- garbage: an SSH banner instead of HTTP, then close.
  ["garbage"] = function(c)
    c:send("SSH-2.0-OpenSSH_9.2\r\n")
    return false
  end,

  -- nothing: close right after reading the request.
  ["nothing"] = function()
    return false
  end,

  -- fold: a 200 with the header "X-A: one" folded onto a continuation line
  -- " two", then OK_BODY with Content-Length; keep-alive.
  ["fold"] = function(c)
    return c:send(head(OK_LINE, c, { "X-A: one", " two", "Content-Length: " .. #OK_BODY }) .. OK_BODY)
  end,

  -- status204: 204 No Content, no body, keep-alive.
  ["status204"] = function(c)
    return c:send(head("HTTP/1.1 204 No Content", c))
  end,

  -- retry:STATUS:SECONDS: STATUS (default 503, three digits) with
  -- Retry-After: SECONDS (default 1, sent as given, so it may be any text)
  -- and an error body, Content-Length; keep-alive.
  ["retry"] = function(c, arg)
    local status, seconds = arg:match("^([^:]*):?(.*)$")
    if status == "" then status = "503" end
    if not status:match("^%d%d%d$") then return unknown(c) end
    if seconds == "" then seconds = "1" end
    return c:send(error_response(c, tonumber(status), "try later", { "Retry-After: " .. seconds }))
  end,

  -- keepalive-close: the ok response (keep-alive headers), then the server
  -- closes the idle connection 50 ms later.
  ["keepalive-close"] = function(c)
    if c:send(ok_response(c)) then sleep(0.05) end
    return false
  end,

  -- onlyonce: the ok response (no Connection: close), then the server closes
  -- the connection at once.
  ["onlyonce"] = function(c)
    c:send(ok_response(c))
    return false
  end,

  -- slowhead:MS: the ok response after MS (default 1500) ms; keep-alive.
  ["slowhead"] = function(c, arg)
    local ms = number_arg(arg, 1500)
    if not ms then return unknown(c) end
    sleep(ms / 1000)
    return c:send(ok_response(c))
  end,
}

---------------------------------------------------------------------------
-- Serving a connection.

local function side_channel(c, what)
  if c.fresh and c.counted then
    -- a connection that carries only side-channel requests is not counted
    if c.generation == stats.generation then stats.connections = stats.connections - 1 end
    c.counted = false
  end
  local body = "{}"
  if what == "stats" then
    body = string.format('{"connections":%d,"requests":%d}', stats.connections, stats.requests)
  else
    stats.connections, stats.requests = 0, 0
    stats.generation = stats.generation + 1
  end
  return c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body ..
    "\r\n\r\n" .. body)
end

local function serve(c)
  while true do
    local request_head = c:read_head()
    if not request_head then return end
    local req = parse_request(request_head)
    if not req then
      count_request(c)
      c:send(error_response(c, 400, "bad request", { "Connection: close" }))
      return
    end
    if req.length and not c:skip(req.length) then return end
    local keep
    if req.side then
      keep = side_channel(c, req.side)
    else
      count_request(c)
      local name, arg = req.scenario:match("^([^:]*):?(.*)$")
      local run = SCENARIOS[name]
      if run then
        keep = run(c, arg)
      else
        keep = unknown(c)
      end
    end
    if not keep or c.closed or req.close then return end
  end
end

local function connection(sock)
  open = open + 1
  local c = Conn.new(sock)
  local ok, err = pcall(serve, c)
  if not ok then io.stderr:write("framing server: ", tostring(err), "\n") end
  pcall(c.close, c)
  open = open - 1
end

---------------------------------------------------------------------------
-- Main loop.

local server = assert(socket.bind("127.0.0.1", 0, 1024))
server:settimeout(0)
local _, port = server:getsockname()
io.stdout:write("http://127.0.0.1:", port, "\n")
io.stdout:flush()

local stop_at = gettime() + LIFETIME
while true do
  local now = gettime()
  if now >= stop_at then break end
  local recvt, sendt, timeout = {}, {}, stop_at - now
  if open < MAX_OPEN then recvt[1] = server end
  for _, w in pairs(waiting) do
    if w.kind == "r" then
      recvt[#recvt + 1] = w.sock
    elseif w.kind == "w" then
      sendt[#sendt + 1] = w.sock
    end
    if w.deadline and w.deadline - now < timeout then timeout = w.deadline - now end
  end
  local readable, writable = socket.select(recvt, sendt, math.max(timeout, 0))
  readable, writable = readable or {}, writable or {}
  if readable[server] then
    while open < MAX_OPEN do
      local sock = server:accept()
      if not sock then break end
      sock:settimeout(0)
      sock:setoption("tcp-nodelay", true)
      resume(coroutine.create(connection), sock)
    end
  end
  now = gettime()
  local ready = {}
  for co, w in pairs(waiting) do
    if (w.kind == "r" and readable[w.sock]) or (w.kind == "w" and writable[w.sock]) then
      ready[#ready + 1] = { co, true }
    elseif w.deadline and now >= w.deadline then
      ready[#ready + 1] = { co, false }
    end
  end
  for _, r in ipairs(ready) do resume(r[1], r[2]) end
end
server:close()
os.exit(0)
