--- kpayment.mock.http: HTTP/1.1 framing for the mock, on non-blocking
-- luasocket sockets.
--
-- Reads requests (request line, headers, a Content-Length body: kept for
-- POST requests of at most 64 KiB, read and ignored otherwise), writes
-- responses (status line, the mock's fixed headers,
-- extra headers, body), and keeps connections alive as HTTP/1.1 and 1.0
-- ask. What a request gets is decided elsewhere, by a function
--
--     respond(conn, req [, malformed]) -> res
--
-- where req is { method, target, version, headers (lower-case names; a
-- repeated header's values joined by ", "), header_order, body_size, body
-- (a kept body; a POST is answered once its body is in) }; for
-- a malformed request req is nil and malformed says what is wrong (the
-- connection is closed after the answer). A response is
--
--     { status, ctype, body, headers = { { name, value }, … },
--       close = true to close after it, truncate = true to send half of
--       the body and close, delay = seconds before it is sent,
--       drop = true to close without any answer }
--
-- Requests on a connection are answered in order: while one is delayed,
-- the next ones wait (other connections do not).

local socket = require("socket")

local M = {
  JSON = "application/json",
  JSON_UTF8 = "application/json;charset=UTF-8",
  HTML = "text/html",
  REASONS = {
    [200] = "OK",
    [302] = "Found",
    [400] = "Bad Request",
    [401] = "Unauthorized",
    [404] = "Not Found",
    [405] = "Method Not Allowed",
    [429] = "Too Many Requests",
    [500] = "Internal Server Error",
    [502] = "Bad Gateway",
    [503] = "Service Unavailable",
  },
}

local concat = table.concat
local gettime = socket.gettime
local REASONS = M.REASONS

local MAX_HEAD = 65536 -- bytes of request line + headers
local READ_SIZE = 65536
local INLINE_BODY = 16384 -- smaller bodies go out in one send with the head
local KEPT_BODY = 65536 -- POST bodies up to this size are given to respond

---------------------------------------------------------------------------
-- Requests

--- A form-urlencoded name or value decoded: `%XX`, and `+` as a space.
function M.unescape(s)
  s = s:gsub("%+", " ")
  return (s:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end
local unescape = M.unescape

--- Decoded query parameters: a name → value map and the names in order.
-- Values are percent-decoded (`%XX`, and `+` as a space); when a name
-- repeats, its first occurrence counts.
function M.parse_query(query)
  local map, names = {}, {}
  for pair in query:gmatch("[^&]+") do
    local name, value = pair:match("^([^=]*)=?(.*)$")
    name = unescape(name)
    if map[name] == nil then
      map[name] = unescape(value)
      names[#names + 1] = name
    end
  end
  return map, names
end

local function has_token(list, token)
  for item in list:gmatch("[^,]+") do
    if item:match("^%s*(.-)%s*$"):lower() == token then return true end
  end
  return false
end

local function wants_keep_alive(req)
  local connection = req.headers.connection
  if req.version == "1.1" then
    return not (connection and has_token(connection, "close"))
  end
  return connection ~= nil and has_token(connection, "keep-alive")
end

--- Parses the head (request line and headers) at the start of buf.
-- Returns the request and the number of bytes it took, false when the head
-- is incomplete, or nil and the reason it is malformed.
local function parse_head(buf)
  local head_end, taken = buf:find("\r?\n\r?\n")
  if not head_end then
    if #buf > MAX_HEAD then return nil, "request head too large" end
    return false
  end
  local lines = {}
  for line in (buf:sub(1, head_end - 1) .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = line end
  local method, target, version = lines[1]:match("^(%S+) (%S+) HTTP/(%d%.%d)$")
  if not method then return nil, "malformed request line" end
  if version ~= "1.1" and version ~= "1.0" then return nil, "unsupported HTTP version " .. version end
  local headers, order = {}, {}
  for i = 2, #lines do
    local name, value = lines[i]:match("^([^%s%c:]+):[ \t]*(.-)[ \t]*$")
    if not name then return nil, "malformed header line" end
    name = name:lower()
    if headers[name] then
      headers[name] = headers[name] .. ", " .. value
    else
      headers[name] = value
      order[#order + 1] = name
    end
  end
  local body_size = 0
  if headers["transfer-encoding"] then return nil, "request bodies must have a Content-Length" end
  local length = headers["content-length"]
  if length then
    body_size = length:match("^%d+$") and math.tointeger(tonumber(length))
    if not body_size then return nil, "bad Content-Length" end
  end
  return { method = method, target = target, version = version, headers = headers,
    header_order = order, body_size = body_size }, taken
end

---------------------------------------------------------------------------
-- Connections
--
-- A connection's state: its input not yet parsed, the request body bytes
-- still to skip, the queue of chunks to send (out[head..tail], the first
-- sent from byte pos), and flags: closing (close once the queue is sent),
-- eof (the peer sent its last byte), wake_at and stalled (a delayed
-- response and when it is due).

local Conn = {}
Conn.__index = Conn

--- A connection on an accepted socket, made non-blocking.
function M.connection(sock)
  sock:settimeout(0)
  sock:setoption("tcp-nodelay", true) -- heads and bodies may go in separate sends
  return setmetatable({ sock = sock, inbuf = "", body_left = 0,
    out = {}, head = 1, tail = 0, pos = 1 }, Conn)
end

function Conn:_queue(data)
  self.tail = self.tail + 1
  self.out[self.tail] = data
end

--- Queues a response (or, for a dropped one, arranges to close).
function Conn:_emit(res)
  if res.drop then
    self.closing = true
    return
  end
  local body = res.body
  local parts = { "HTTP/1.1 ", res.status, " ", REASONS[res.status],
    "\r\nServer: kpayment-mock\r\nContent-Type: ", res.ctype,
    "\r\nContent-Length: ", #body,
    "\r\nConnection: ", res.close and "close" or "keep-alive", "\r\n" }
  for _, header in ipairs(res.headers or {}) do
    parts[#parts + 1] = header[1] .. ": " .. header[2] .. "\r\n"
  end
  parts[#parts + 1] = "\r\n"
  local head = concat(parts)
  if res.truncate then
    body = body:sub(1, #body // 2)
    res.close = true
  end
  if #body <= INLINE_BODY then
    self:_queue(head .. body)
  else -- big bodies are sent from the caller's string, not copied
    self:_queue(head)
    self:_queue(body)
  end
  if res.close then self.closing = true end
end

--- Whether the connection waits for input (not for a timer, not closing).
function Conn:reading()
  return not self.wake_at and not self.closing and not self.eof
end

--- Whether there is something to send.
function Conn:writing()
  return self.head <= self.tail
end

--- Sends what the socket takes. Returns true when the connection is over
-- (its last response is sent, or the peer is gone): the caller closes it.
function Conn:flush()
  while self.head <= self.tail do
    local chunk = self.out[self.head]
    local last, err, sent = self.sock:send(chunk, self.pos)
    if last == #chunk then
      self.out[self.head], self.head, self.pos = nil, self.head + 1, 1
    elseif err == "timeout" then
      self.pos = sent + 1
      return false
    else
      return true
    end
  end
  return (self.closing or self.eof) and not self.wake_at or false
end

--- Answers the complete requests in the input, in order, with respond;
-- then flushes. Returns what flush returns.
function Conn:process(respond)
  while not self.closing and not self.wake_at do
    if self.body_left > 0 then -- bodies not kept are read and ignored
      local n = math.min(#self.inbuf, self.body_left)
      self.inbuf, self.body_left = self.inbuf:sub(n + 1), self.body_left - n
      if self.body_left > 0 then break end
    end
    if self.inbuf:find("^[\r\n]") then -- stray line ends between requests
      self.inbuf = self.inbuf:gsub("^[\r\n]+", "")
    end
    local req, taken = parse_head(self.inbuf)
    if req == false then break end
    if not req then
      local res = respond(self, nil, taken)
      res.close = true
      self:_emit(res)
      break
    end
    if req.method == "POST" and req.body_size <= KEPT_BODY then
      if #self.inbuf < taken + req.body_size then break end -- the body is not all in yet
      req.body = self.inbuf:sub(taken + 1, taken + req.body_size)
      self.inbuf = self.inbuf:sub(taken + req.body_size + 1)
    else
      self.inbuf = self.inbuf:sub(taken + 1)
      self.body_left = req.body_size
    end
    local res = respond(self, req)
    res.close = res.close or not wants_keep_alive(req)
    if res.delay then
      self.wake_at, self.stalled = gettime() + res.delay, res
    else
      self:_emit(res)
    end
  end
  return self:flush()
end

--- Reads what the socket has, then processes it as process does.
function Conn:receive(respond)
  local data, err, partial = self.sock:receive(READ_SIZE)
  data = data or partial
  if data ~= "" then self.inbuf = self.inbuf .. data end
  -- the peer is done sending: answer what it sent, then close
  if err and err ~= "timeout" then self.eof = true end
  return self:process(respond)
end

--- Sends a delayed response once it is due (now: the current time), then
-- goes on with the requests behind it. Returns nil when it is not due yet,
-- else what process returns.
function Conn:wake(now, respond)
  if not self.wake_at or self.wake_at > now then return nil end
  local res = self.stalled
  self.wake_at, self.stalled = nil, nil
  self:_emit(res)
  return self:process(respond)
end

return M
