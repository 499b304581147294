--- A misbehaving HTTP/1.1 server (and HTTP proxy) for the specs: it echoes
-- the credentials it receives back in every place an error can carry them,
-- and answers 2xx bodies of every wrong shape.
--
--   lua5.4 spec/support/hostile_server.lua [seconds]
--
-- Prints its base URL (http://127.0.0.1:PORT) as the first line of stdout,
-- then serves one connection at a time, each closed after one response,
-- until killed or for `seconds` (default 600).
--
-- The scenario is the request's customerUUID query parameter. A request
-- line with an absolute target (`GET http://host/… HTTP/1.1`) is a proxy
-- request: the same scenarios apply to the target's query, plus the proxy's
-- own pages "proxy-407" and "proxy-502". Scenarios:
--
--   ok            200, three ordinary offers
--   shadow        200, offers with fields named like the client's accessors
--   shape-NAME    200 application/json, a body of a wrong or odd shape (SHAPES)
--   echo          401 API error body echoing every credential received, in
--                 messages, codes, nested objects, warnings and keys
--   echo-400      the same with status 400
--   echo-html     500 text/html page echoing them; one copy of the first
--                 secret (password, else token) starts at byte STRADDLE_AT
--   echo-html-200 the same page with status 200
--   proxy-407     407 page from the proxy echoing Proxy-Authorization, the
--                 decoded credentials and the password (straddling as above)
--   proxy-502     502 page from the proxy, the same echoes
--   cli-text      200, offers whose text needs care in a table, CSV or TSV:
--                 a long name (cut at 80 columns by a careless table), commas,
--                 quotes, tab, CR, LF and backslash in names; an id above
--                 2^53; expiries in January and July (a zone with summer
--                 time shows two offsets); one offer with no expiry or customer
--   cli-empty     200, no offers
--   odd-message   400 API error whose errorMessage is empty and errorTitle an
--                 object: only errorDescription says something
--   echo-escaped  401 text/plain echoing the password as JSON encoders write
--                 it inside a string (`\"`, `\/`, `\u00f6`, `\u00F6`), its Base64
--                 alone, user:password in unpadded base64url, and the bearer
--                 token percent-encoded
--   echo-reqid    401 whose X-Request-Id is 60 bytes, then the Authorization
--                 value (the core keeps 99 bytes of it)
--   gzip-small    200, a 42-byte body gzip-compressed to 60 bytes (more than
--                 the body: compression does not pay on so little)
--   two-lengths   200 with two different Content-Lengths, 10 and the body's
--
--   term-500      500 API error whose message holds terminal escapes: ESC
--                 sequences and U+009B (CSI as one C1 character)
--   echo-warn     200, no offers, and `warnings` echoing every credential
--   echo-encoded  401 text/plain echoing the password as other encoders
--                 write it: percent-encoded keeping "/" (Python's quote),
--                 keeping !*'() (JavaScript's encodeURIComponent), HTML-escaped
--                 (&#x27; and &#39; for a quote), and its UTF-8 read as Latin-1
--
-- A POST whose path ends in /token gets a client credentials token,
-- TOKEN_ODD, which percent-encoding changes; one ending in /long/token, a
-- token of 1 200 bytes; one ending in /seq/token, a new token each time
-- ("seq-token-N-…"), valid for 1 s.
--
-- Whatever the customer, a request whose dealerUUID is `echo-query` gets a
-- 400 API error whose message echoes the customerUUID (decoded) and the
-- request target (percent-encoded): a secret given as a customer id comes
-- back in both forms (the command's secrets spec).
--
-- Only luasocket is needed: this runs as its own process, from the
-- checkout's top (support.listen serves).

package.path = "spec/?.lua;" .. package.path   -- run from the checkout's top
local mime = require("mime")
local send_response = require("support.respond")

local LIFETIME = tonumber(arg and arg[1]) or 600   -- seconds, then exit
local READ_TIMEOUT = 5        -- seconds for a request's head
local MAX_HEAD = 65536        -- bytes of request line + headers
local STRADDLE_AT = 505       -- 1-based byte where a secret crosses byte 512

local TOKEN_ODD = "tQ+x/Zr9Kp3w+Lm8/Vb2="
local TOKEN_LONG = string.rep("Lng7-tok3n-", 110)   -- 1 210 bytes
local seq_tokens = 0

-- {"financeOffers":[{"id":1}],"warnings":[]}, gzip-compressed (gzip-small)
local GZIP_SMALL = "\31\139\8\0\0\0\0\0\2\3\171\86\74\203\204\75\204\75\78\245\79\75\75\45\42\86\178"
  .. "\138\174\86\202\76\81\178\50\172\141\213\81\42\79\44\202\203\204\75\7\137\198"
  .. "\214\2\0\60\206\53\40\42\0\0\0"

local REASONS = {
  [200] = "OK", [400] = "Bad Request", [401] = "Unauthorized", [404] = "Not Found",
  [407] = "Proxy Authentication Required", [500] = "Internal Server Error", [502] = "Bad Gateway",
}

local SHAPES = {
  ["top-array"] = '[{"id":1}]',
  ["object"] = '{"financeOffers":{"id":1}}',
  ["null-element"] = '{"financeOffers":[{"id":1},null]}',
  ["number-element"] = '{"financeOffers":[1]}',
  ["string-element"] = '{"financeOffers":["x"]}',
  ["array-element"] = '{"financeOffers":[[]]}',
  ["null"] = '{"financeOffers":null}',
  ["empty"] = "{}",
  ["empty-members"] = '{"financeOffers":[{"id":1,"customer":{},"tags":[],"deal":{"terms":{}}}]}',
  -- the API's error body under a 2xx, as a backend that maps every outcome to 200 sends it
  ["api-errors"] = '{"errors":[{"errorCode":404,"errorMessage":"customer not found"}],'
    .. '"warnings":[{"warningCode":1,"warningMessage":"w"}]}',
  ["no-errors"] = '{"errors":[],"warnings":[]}',
  ["string"] = '"str"',
  ["number"] = "42",
}

local OK_BODY = [[{"financeOffers":[
{"id":1,"guid":"g-1","status":"ACTIVE","isActive":true,
 "customer":{"firstName":"Ann","lastName":"Lee","phone":"5551234567","email":"ann@example.com"},
 "dealerOrder":{"vehicle":{"year":2021,"make":"Toyota","model":"Camry"}}},
{"id":2,"guid":"g-2","status":"EXPIRED","isActive":false,"customer":{"firstName":"Bo"}},
{"id":3,"guid":"g-3","status":"ACTIVE","isActive":true}
],"warnings":[]}]]

-- Every accessor name of an offer or offer list as a field, holding
-- strings and numbers, beside the fields the accessors read.
local SHADOW_BODY = [[{"financeOffers":[
{"id":1,"guid":"g-1","status":"ACTIVE","isActive":true,
 "customer_name":"Mallory","is_active":"yes","vehicle_label":7,"attribute":"attr","meta":"m",
 "active":"a","find":"f","expires_at":"soon","is_expired":0,
 "customer":{"firstName":"Ann","lastName":"Lee","phone":"5551234567","email":"ann@example.com"},
 "dealerOrder":{"vehicle":{"year":2021,"make":"Toyota","model":"Camry"}},
 "financeOfferAttributes":[{"option":"term","value":"36"}],"expiryDate":"2099-01-01T00:00:00Z"},
{"id":2,"guid":"g-2","status":"EXPIRED","isActive":false,
 "customer_name":42,"is_active":1,"vehicle_label":"x","attribute":0,"meta":1,"active":true,"find":"2",
 "customer":{"firstName":"Bo","lastName":"Ng"}},
{"id":3,"guid":"g-3","status":"ACTIVE","isActive":true,"customer_name":"","is_active":false,
 "active":"no","find":3,"meta":{"status":0}}
]}]]

-- Text fields a table, CSV or TSV writer must handle (the command's specs).
local CLI_TEXT_BODY = [[{"financeOffers":[
{"id":9007199254740993,"status":"FUNDED","isActive":true,"foAmount":25000,
 "expiryDate":"2099-01-15T12:00:00.250Z",
 "customer":{"firstName":"Zo\u00eb","lastName":"O'Connor-Featherstonehaugh de la Fuente y Zaragoza"},
 "dealerOrder":{"vehicle":{"year":2024,"make":"Toyota","model":"Camry \"XSE\", V6"}}},
{"id":2,"status":"PENDING","isActive":false,"foAmount":41490.64,"expiryDate":"2099-07-15T12:00:00Z",
 "customer":{"firstName":"Tab\there","lastName":"Line\nbreak\r\nand \\ backslash"},
 "dealerOrder":{"vehicle":{"year":2021,"make":"Kia","model":"Telluride, SX"}}},
{"id":3,"status":"EXPIRED","isActive":false}
]}]]

local function unescape(s)
  s = s:gsub("%+", " ")
  return (s:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

local function percent_encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

-- The escapes of JSON text: what must be escaped, then "/" too (as PHP
-- writes it), then non-ASCII as \u in lower- or upper-case hex (Python).
local function json_escapes(s)
  local min = s:gsub('[%c"\\]', function(c)
    local short = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r" }
    return short[c] or string.format("\\u%04x", c:byte())
  end)
  local slash = min:gsub("/", "\\/")
  local out = { min, slash }
  for _, fmt in ipairs({ "\\u%04x", "\\u%04X" }) do
    out[#out + 1] = (slash:gsub("[\194-\223][\128-\191]", function(ch)
      local a, b = ch:byte(1, 2)
      return string.format(fmt, (a - 192) * 64 + (b - 128))
    end))
  end
  return out
end

local function base64url(s)
  return (mime.b64(s):gsub("=+$", ""):gsub("[+/]", { ["+"] = "-", ["/"] = "_" }))
end

-- The shapes of echo-escaped, each on a line.
local function odd_shapes(headers)
  local out = {}
  local value = headers.authorization or ""
  local scheme, rest = value:match("^(%S+)%s+(.*)$")
  scheme = scheme and scheme:lower()
  if scheme == "basic" then
    local decoded = mime.unb64(rest) or ""
    local pass = decoded:match("^[^:]*:(.*)$")
    if pass then
      for _, form in ipairs(json_escapes(pass)) do out[#out + 1] = "json: " .. form end
      out[#out + 1] = "base64 of the password: " .. mime.b64(pass)
      out[#out + 1] = "base64url: " .. base64url(decoded)
    end
  elseif scheme == "bearer" then
    out[#out + 1] = "token: " .. percent_encode(rest)
  end
  return table.concat(out, "\n") .. "\n"
end

-- The password of a Basic Authorization, as other encoders write it.
local function other_encodings(headers)
  local rest = (headers.authorization or ""):match("^[Bb][Aa][Ss][Ii][Cc]%s+(.*)$")
  local pass = ((rest and mime.unb64(rest)) or ""):match("^[^:]*:(.*)$") or ""
  local function keeping(extra)
    return (pass:gsub("[^%w%-%._~" .. extra .. "]", function(c) return string.format("%%%02X", c:byte()) end))
  end
  local function html(quote)
    return (pass:gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
                                    ["'"] = quote }))
  end
  local latin1 = pass:gsub("[\128-\255]", function(c)
    local b = c:byte()
    return string.char(0xC0 + math.floor(b / 64), 0x80 + b % 64)
  end)
  return table.concat({ "quote: " .. keeping("/"), "uricomponent: " .. keeping("!*'()"),
                        "html: " .. html("&#x27;"), "html39: " .. html("&#39;"), "latin1: " .. latin1 }, "\n")
    .. "\n"
end

-- Every form of the credentials in the Authorization and
-- Proxy-Authorization headers, and the first secret (to straddle byte 512).
local function credentials(headers)
  local list, seen, first = {}, {}, nil
  local function add(s)
    if s and s ~= "" and not seen[s] then
      seen[s] = true
      list[#list + 1] = s
    end
  end
  for _, name in ipairs({ "authorization", "proxy-authorization" }) do
    local value = headers[name]
    if value then
      add(value)
      local scheme, rest = value:match("^(%S+)%s+(.*)$")
      scheme = scheme and scheme:lower()
      if scheme == "basic" then
        add(rest)
        local decoded = mime.unb64(rest) or ""
        add(decoded)
        local user, pass = decoded:match("^([^:]*):(.*)$")
        if pass then
          add(user .. ":" .. percent_encode(pass))
          add(pass)
          add(percent_encode(pass))
          first = first or pass
        end
      elseif scheme == "bearer" then
        add(rest)
        first = first or rest
      end
    end
  end
  return list, first or "no-credentials-received"
end

-- The API's error shape with the credentials everywhere: codes, titles,
-- messages, nested objects at depth 3 and more, warnings, and keys.
local function echo_json(creds)
  local all = table.concat(creds, " | ")
  local first = creds[1] or "none"
  local keyed, deep = {}, {}
  for i, s in ipairs(creds) do
    keyed[#keyed + 1] = json_string(s) .. ":" .. json_string("value " .. i .. " " .. s)
    deep[#deep + 1] = string.format('{"level":{"deeper":{%s:[%s,{%s:%d}]}}}',
      json_string(s), json_string(s), json_string("key " .. s), i)
  end
  local strings = {}
  for i, s in ipairs(creds) do strings[i] = json_string("seen " .. s) end
  return string.format(
    '{"errors":[{"errorCode":%s,"errorTitle":%s,"errorMessage":%s,"errorDescription":%s,' ..
    '"details":{"request":{"headers":{%s},"echo":[%s]}}},{"errorCode":%s,"errorMessage":%s}],' ..
    '"warnings":[{"warningCode":%s,"warningMessage":%s,"context":{"a":{"b":{%s}}}},%s]}',
    json_string("AUTH:" .. first), json_string("Rejected " .. all),
    json_string("Credentials rejected: " .. all), json_string("Received " .. all),
    table.concat(keyed, ","), table.concat(deep, ","),
    json_string(first), json_string(all),
    json_string("W:" .. first), json_string("Warning about " .. all), table.concat(keyed, ","),
    table.concat(strings, ","))
end

-- An HTML page echoing the credentials in its first bytes, with one copy of
-- `straddle` starting at byte STRADDLE_AT (so that it crosses byte 512).
local function echo_html(title, creds, straddle)
  local head = "<!DOCTYPE html><html><head><title>" .. title .. "</title></head><body><h1>" ..
    title .. "</h1><pre>" .. table.concat(creds, "\n") .. "</pre><p>"
  local pad = STRADDLE_AT - 1 - #head
  if pad < 0 then
    -- too many echoes to fit before the cut: keep the straddle, echo after it
    head = "<!DOCTYPE html><html><body><p>"
    pad = STRADDLE_AT - 1 - #head
  end
  return head .. string.rep(".", pad) .. straddle .. "</p><pre>" .. table.concat(creds, "\n") ..
    "</pre></body></html>\n"
end

local function respond(conn, status, ctype, body, extra)
  send_response(conn, status, REASONS[status] or "Status", ctype, body, extra)
end

-- Reads the request line and headers: method, target, headers (lower-case
-- names), or nil on a broken or slow request.
local function read_request(conn)
  conn:settimeout(READ_TIMEOUT)
  local line = conn:receive("*l")
  if not line then return nil end
  local method, target = line:match("^(%u+) (%S+) HTTP/1%.[01]$")
  if not method then return nil end
  local headers, size = {}, #line
  while true do
    local h = conn:receive("*l")
    if not h then return nil end
    size = size + #h
    if h == "" then break end
    if size > MAX_HEAD then return nil end
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    if name then headers[name:lower()] = value end
  end
  return method, target, headers
end

local function serve(conn)
  local method, target, headers = read_request(conn)
  if not method then return end
  local proxied = target:match("^%a[%w+.-]*://") ~= nil
  local query = target:match("%?([^#]*)") or ""
  local scenario, dealer
  for pair in query:gmatch("[^&]+") do
    local name, value = pair:match("^([^=]*)=?(.*)$")
    if unescape(name) == "customerUUID" then scenario = scenario or unescape(value) end
    if unescape(name) == "dealerUUID" then dealer = dealer or unescape(value) end
  end
  scenario = scenario or ""
  local creds, straddle = credentials(headers)
  local JSON, HTML = "application/json", "text/html; charset=utf-8"

  if method == "POST" and target:match("/long/token$") then
    respond(conn, 200, JSON,
      '{"access_token":"' .. TOKEN_LONG .. '","token_type":"Bearer","expires_in":3600}')
  elseif method == "POST" and target:match("/seq/token$") then
    seq_tokens = seq_tokens + 1
    respond(conn, 200, JSON, '{"access_token":"seq-token-' .. seq_tokens ..
      '-Xq93vLw","token_type":"Bearer","expires_in":1}')
  elseif method == "POST" and target:match("/token$") then
    respond(conn, 200, JSON, '{"access_token":"' .. TOKEN_ODD .. '","token_type":"Bearer","expires_in":3600}')
  elseif dealer == "echo-query" then
    respond(conn, 400, JSON, '{"errors":[{"errorCode":"BAD_CUSTOMER","errorMessage":' ..
      json_string("no customer " .. scenario .. " (GET " .. target .. ")") .. "}]}")
  elseif proxied and (scenario == "proxy-407" or scenario == "proxy-502") then
    local status = scenario == "proxy-407" and 407 or 502
    respond(conn, status, HTML, echo_html(status .. " " .. REASONS[status], creds, straddle),
      status == 407 and { 'Proxy-Authenticate: Basic realm="hostile"' } or nil)
  elseif scenario == "ok" then
    respond(conn, 200, JSON, OK_BODY)
  elseif scenario == "cli-text" then
    respond(conn, 200, JSON, CLI_TEXT_BODY)
  elseif scenario == "cli-empty" then
    respond(conn, 200, JSON, '{"financeOffers":[]}')
  elseif scenario == "shadow" then
    respond(conn, 200, JSON, SHADOW_BODY)
  elseif scenario:match("^shape%-") and SHAPES[scenario:sub(7)] then
    respond(conn, 200, JSON, SHAPES[scenario:sub(7)])
  elseif scenario == "odd-message" then
    respond(conn, 400, JSON, '{"errors":[{"errorCode":7,"errorMessage":"","errorTitle":{"text":"no"},'
      .. '"errorDescription":"the description"}]}')
  elseif scenario == "echo" or scenario == "echo-400" then
    respond(conn, scenario == "echo" and 401 or 400, JSON, echo_json(creds))
  elseif scenario == "gzip-small" then
    respond(conn, 200, JSON, GZIP_SMALL, { "Content-Encoding: gzip" })
  elseif scenario == "two-lengths" then
    respond(conn, 200, JSON, OK_BODY, { "Content-Length: 10" })
  elseif scenario == "term-500" then
    respond(conn, 500, JSON,
      '{"errors":[{"errorCode":500,"errorMessage":"bad \\u001b[31mESC \\u009b31mC1 end"}]}')
  elseif scenario == "echo-warn" then
    local warnings = {}
    for i, c in ipairs(creds) do
      warnings[i] = '{"warningCode":' .. json_string("W:" .. c) .. ',"warningMessage":' ..
        json_string("seen " .. c) .. "}"
    end
    respond(conn, 200, JSON, '{"financeOffers":[],"warnings":[' .. table.concat(warnings, ",") .. "]}")
  elseif scenario == "echo-encoded" then
    respond(conn, 401, "text/plain", other_encodings(headers))
  elseif scenario == "echo-escaped" then
    respond(conn, 401, "text/plain", odd_shapes(headers))
  elseif scenario == "echo-reqid" then
    respond(conn, 401, JSON, '{"errors":[]}',
      { "X-Request-Id: " .. string.rep("x", 60) .. (headers.authorization or "") })
  elseif scenario == "echo-html" or scenario == "echo-html-200" then
    local status = scenario == "echo-html" and 500 or 200
    respond(conn, status, HTML, echo_html(status .. " " .. REASONS[status], creds, straddle))
  else
    respond(conn, 404, JSON, '{"errors":[{"errorCode":"NOT_FOUND","errorMessage":' ..
      json_string("no scenario " .. scenario) .. "}]}")
  end
end

require("support.listen")("hostile server", serve, LIFETIME)
