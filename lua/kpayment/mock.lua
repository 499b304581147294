--- kpayment.mock: a mock of myKaarma's finance-offers API.
--
-- A small HTTP/1.1 server in pure Lua on luasocket, for kpayment's tests,
-- examples and benchmarks. It answers
--
--     GET /payment/kpayment/v1/finance/getFinanceOffersForCustomer
--         ?customerUUID=…&dealerUUID=…&skin=…&locale=…
--
-- with `{"financeOffers":[…]}`: schema-complete offers (every field of the
-- API reference) with realistic values. The same customerUUID always gets
-- the same offers; every offer echoes the received customerUUID, dealerUUID
-- and locale (`customer.preferredLocale`) and carries an extra field
-- `"skin"` (the received skin) that the reference does not list. On purpose
-- the body contains: the first offer's `id` 9007199254740993 (above 2^53),
-- `null`s (fundedTS/docSignedTS of unfunded offers, middleName, company),
-- non-ASCII UTF-8 names, JSON escapes (`\"`, `\\`, `\n`, `\u00e9`), active
-- and inactive offers, and expiry dates in the past (2020) and the future
-- (2099).
--
-- Query values are percent-decoded (`%XX`, and `+` as a space); when a
-- parameter repeats, its first occurrence counts.
--
-- Authentication
--   With `user` and `password` configured, requests need
--   `Authorization: Basic base64(user:password)`; with `token` configured,
--   `Authorization: Bearer <token>` is accepted too. With neither, every
--   request is accepted. Otherwise: 401 with a JSON error body and
--   `WWW-Authenticate: Basic realm="kpayment-mock"`.
--
-- Responses of the endpoint, in the order they are decided
--   404  any other path (JSON error body)
--   405  any method other than GET (with `Allow: GET`)
--   401  missing or wrong credentials
--   fault mode, when one is asked for (below)
--   400  absent or empty parameters: one error per missing parameter, in
--        the order customerUUID, dealerUUID, skin, locale, each naming it
--        ("customerUUID is required")
--   200  `application/json;charset=UTF-8`, `offers` offers (default 3)
--   A malformed request gets 400 and the connection is closed. Error bodies
--   have the API's shape:
--   {"errors":[{"errorCode":…,"errorTitle":…,"errorMessage":…,
--   "errorDescription":…}],"warnings":[]}
--
-- Fault modes
--   Asked for per request, either with the header `X-Mock-Fault: <mode>` or
--   with `customerUUID=mock:<mode>` (so that tests can trigger them through
--   the normal client API); the header wins when both are present. A mode
--   may take an argument after a colon, e.g. `mock:stall:0.5`.
--     error500        500, JSON error body
--     html500         500, text/html page, as a gateway would send
--     html502         502, text/html page
--     503[:s]         503, JSON error body, `Retry-After: s` (default 1)
--     429[:s]         429, JSON error body, `Retry-After: s` (default 1)
--     empty502        502 with an empty body (Content-Length: 0)
--     badjson         200 application/json with an invalid JSON body
--     close           the connection is closed without a response
--     stall[:s]       the response is sent after s seconds (default 5,
--                     fractions allowed, at most 3600); other connections
--                     are served meanwhile
--     truncate        200 whose Content-Length announces the whole body but
--                     only about half of it is sent, then the connection is
--                     closed
--     big[:bytes]     200 with a valid body of at least `bytes` bytes
--                     (default 1048576, at most 268435456): the first offer
--                     carries an extra "padding" string
--     offers:n        200 with n offers (0 to 10000; 0 gives
--                     {"financeOffers":[]})
--     unicode         200 whose names also hold characters outside the BMP,
--                     written raw and as a `\ud83d\ude97` surrogate pair
--     flaky:n:mode    the first n requests for this customerUUID and
--                     dealerUUID get `mode` (any mode above), later ones a
--                     normal response: for testing retries
--     redirect:url    302 to url (for testing that redirects are not
--                     followed, or never carry credentials to another host)
--   Every API response carries `X-Request-Id: mock-<n>`.
--   error500 … close answer whatever the parameters are; stall, truncate,
--   big, offers and unicode first validate the parameters like a normal
--   request (a stalled request with a missing parameter gets a late 400).
--   An unknown mode or a bad argument gets 400 with a JSON error naming it.
--
-- Control endpoints (no authentication, never counted or logged)
--   GET /_mock/stats     {"connections":N,"requests":N}: requests to the API
--                        endpoint (any status) and the connections that
--                        carried at least one of them
--   GET /_mock/reset     zeroes the counters and empties the request log
--   GET /_mock/requests  the last 50 API requests, oldest first:
--                        [{"method":…,"target":…,"params":{…},"headers":{…}}]
--                        with lower-cased header names; the value of
--                        Authorization is replaced by its scheme alone
--
-- Module API
--   local mock = require("kpayment.mock")
--   local srv = mock.new{ host = "127.0.0.1", port = 0, user = nil,
--                         password = nil, token = nil, offers = 3 }
--   srv:url()        base URL, e.g. "http://127.0.0.1:43127"
--   srv:step(t)      one select-loop iteration waiting at most t seconds
--                    (nil: until something happens)
--   srv:run()        serve until srv:close()
--   srv:close()
--   srv:stats()      { connections = n, requests = n }
--   mock.offers_json(params, n [, opts])  the 200 body as a string, for
--                    params {customerUUID=, dealerUUID=, skin=, locale=};
--                    opts.unicode, opts.min_bytes as the faults above
--   mock.check_options(opts)  true, or nil and a message
--   mock.ENDPOINT, mock.MAX_OFFERS, mock._VERSION

local socket = require("socket")
local mime = require("mime")

local M = {
  _VERSION = "kpayment.mock 0.1.0",
  ENDPOINT = "/payment/kpayment/v1/finance/getFinanceOffersForCustomer",
  MAX_OFFERS = 10000,
}

local format, concat = string.format, table.concat
local gettime = socket.gettime

local PARAMS = { "customerUUID", "dealerUUID", "skin", "locale" }
local BIG_ID = 9007199254740993 -- 2^53 + 1: not representable as a double
local LOG_SIZE = 50
local MAX_HEAD = 65536 -- bytes of request line + headers
local READ_SIZE = 65536
local INLINE_BODY = 16384 -- smaller bodies go out in one send with the head
local CACHE_BYTES = 256 * 1024 * 1024

local JSON_UTF8 = "application/json;charset=UTF-8"
local JSON = "application/json"
local HTML = "text/html"

local REASONS = {
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
}

---------------------------------------------------------------------------
-- JSON encoding
--
-- cjson cannot keep integers above 2^53 exact nor keep field order, so the
-- mock writes its own JSON: ordered objects, exact integers.

local OBJECT = {} -- metatable of ordered objects, see obj()
local RAW = {} -- metatable of pre-encoded JSON text, see raw()

--- An ordered JSON object from alternating keys and values; a nil value is
-- written as null.
local function obj(...)
  return setmetatable(table.pack(...), OBJECT)
end

--- JSON text written as is (used for escapes the encoder would not choose).
local function raw(text)
  return setmetatable({ text }, RAW)
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
for byte = 0, 31 do
  local c = string.char(byte)
  ESCAPES[c] = ESCAPES[c] or format("\\u%04x", byte)
end
ESCAPES["\127"] = "\\u007f"

-- JSON text must be Unicode: echoed bytes that are not UTF-8 become U+FFFD,
-- as a Java backend decoding the query would make them.
local function valid_utf8(s)
  if utf8.len(s) then return s end
  local parts, i = {}, 1
  while true do
    local ok, bad = utf8.len(s, i)
    if ok then
      parts[#parts + 1] = s:sub(i)
      return concat(parts)
    end
    parts[#parts + 1] = s:sub(i, bad - 1)
    parts[#parts + 1] = "\u{FFFD}"
    i = bad + 1
  end
end

local function quote(s)
  return '"' .. valid_utf8(s):gsub('[%c"\\]', ESCAPES) .. '"'
end

local function encode_into(buf, v)
  local kind = type(v)
  if v == nil then
    buf[#buf + 1] = "null"
  elseif kind == "string" then
    buf[#buf + 1] = quote(v)
  elseif kind == "number" then
    buf[#buf + 1] = math.type(v) == "integer" and format("%d", v) or format("%.14g", v)
  elseif kind == "boolean" then
    buf[#buf + 1] = v and "true" or "false"
  elseif getmetatable(v) == RAW then
    buf[#buf + 1] = v[1]
  elseif getmetatable(v) == OBJECT then
    buf[#buf + 1] = "{"
    for i = 1, v.n, 2 do
      if i > 1 then buf[#buf + 1] = "," end
      buf[#buf + 1] = quote(v[i])
      buf[#buf + 1] = ":"
      encode_into(buf, v[i + 1])
    end
    buf[#buf + 1] = "}"
  else -- any other table is an array
    buf[#buf + 1] = "["
    for i = 1, #v do
      if i > 1 then buf[#buf + 1] = "," end
      encode_into(buf, v[i])
    end
    buf[#buf + 1] = "]"
  end
end

local function encode(v)
  local buf = {}
  encode_into(buf, v)
  return concat(buf)
end

---------------------------------------------------------------------------
-- Deterministic data
--
-- A 32-bit xorshift generator seeded from a hash of the customerUUID, so
-- that the offers depend on the customer alone, and are identical on every
-- platform and Lua version (math.random is neither).

local MASK32 = 0xffffffff

local function seed_of(s)
  local h = 2166136261 -- FNV-1a
  for i = 1, #s do
    h = ((h ~ s:byte(i)) * 16777619) & MASK32
  end
  -- FNV leaves similar strings with similar hashes; mix the bits so that
  -- similar customers do not get similar offers.
  h = h ~ (h >> 16)
  h = (h * 0x85ebca6b) & MASK32
  h = h ~ (h >> 13)
  h = (h * 0xc2b2ae35) & MASK32
  h = h ~ (h >> 16)
  return h ~= 0 and h or 0x9e3779b9 -- xorshift must not start at zero
end

local Rng = {}
Rng.__index = Rng

local function new_rng(seed)
  return setmetatable({ state = seed }, Rng)
end

function Rng:next()
  local x = self.state
  x = (x ~ (x << 13)) & MASK32
  x = x ~ (x >> 17)
  x = (x ~ (x << 5)) & MASK32
  self.state = x
  return x
end

function Rng:int(lo, hi)
  return lo + self:next() % (hi - lo + 1)
end

function Rng:pick(list)
  return list[self:int(1, #list)]
end

function Rng:bool()
  return self:next() & 1 == 1
end

function Rng:uuid()
  return format("%08x-%04x-4%03x-%04x-%04x%08x", self:next(), self:next() & 0xffff,
    self:next() & 0xfff, (self:next() & 0x3fff) | 0x8000, self:next() & 0xffff, self:next())
end

function Rng:digits(n)
  local d = {}
  for i = 1, n do d[i] = self:int(0, 9) end
  return concat(d)
end

--- ISO-8601 UTC with milliseconds from milliseconds since the epoch.
local function iso(ms)
  return os.date("!%Y-%m-%dT%H:%M:%S", ms // 1000) .. format(".%03dZ", ms % 1000)
end

local DAY_MS = 86400 * 1000
local Y2019, Y2025, Y2099 = 1546300800000, 1735689600000, 4070908800000

local function money(cents)
  return cents / 100
end

local function cents_text(cents)
  return format("%d.%02d", cents // 100, cents % 100)
end

local FIRST_NAMES = {
  { "José", "MALE" }, { "Zoë", "FEMALE" }, { "Łukasz", "MALE" }, { "Chloé", "FEMALE" },
  { "Søren", "MALE" }, { "Amélie", "FEMALE" }, { "Björn", "MALE" }, { "Mónica", "FEMALE" },
  { "Jürgen", "MALE" }, { "Siobhán", "FEMALE" }, { "Thắng", "MALE" }, { "Renée", "FEMALE" },
}
local LAST_NAMES = { "García", "Müller", "Kowalski", "王", "Nguyễn", "O'Brien", "Dvořák",
  "Johnson", "Østergaard", "Smith", "Peña", "Novák" }

local VEHICLES = { -- make, brand id, model, trims, engine, body, world manufacturer id
  { "Toyota", 11, "Camry", { "LE", "SE", "XLE" }, "2.5L I4", "Sedan", "4T1" },
  { "Honda", 12, "Civic", { "LX", "EX", "Sport" }, "2.0L I4", "Sedan", "2HG" },
  { "Ford", 13, "F-150", { "XL", "XLT", "Lariat" }, "3.5L V6 EcoBoost", "Pickup", "1FT" },
  { "Chevrolet", 14, "Equinox", { "LS", "LT", "RS" }, "1.5L I4 Turbo", "SUV", "2GN" },
  { "Hyundai", 15, "Tucson", { "SE", "SEL", "Limited" }, "2.5L I4", "SUV", "5NM" },
  { "Subaru", 16, "Outback", { "Premium", "Limited", "Touring" }, "2.5L H4", "Wagon", "4S4" },
  { "Tesla", 17, "Model 3", { "Standard Range", "Long Range" }, "Electric", "Sedan", "5YJ" },
  { "Kia", 18, "Telluride", { "LX", "S", "EX" }, "3.8L V6", "SUV", "5XY" },
}
local COLORS = { "Midnight Black Metallic", "Celestial Silver", "Pearl White", "Blueprint",
  "Ruby Flare Pearl", "Magnetic Gray" }
local TRANSMISSIONS = { "Automatic", "CVT", "10-Speed Automatic" }

local DEALERS = { -- name, nickname, state code, state, latitude, longitude, altitude, domain
  { "Peña Motors of San José", "Peña Motors", "CA", "California", 37.338208, -121.886329, 25.5,
    "penamotors.example" },
  { "Lone Star Ford", "Lone Star", "TX", "Texas", 30.267153, -97.743061, 149.0, "lonestarford.example" },
  { "Evergreen Subaru", "Evergreen", "WA", "Washington", 47.606209, -122.332071, 53.2,
    "evergreensubaru.example" },
  { "Hudson Valley Honda", "HV Honda", "NY", "New York", 41.700371, -73.92097, 61.0,
    "hvhonda.example" },
  { "Sunshine Chevrolet", "Sunshine", "FL", "Florida", 28.538336, -81.379234, 32.0,
    "sunshinechevy.example" },
}

local LENDERS = { -- id, name, description
  { 1001, "Toyota Financial Services", "Captive finance for Toyota and Lexus vehicles" },
  { 1002, "Ally Financial", "Indirect retail installment contracts and leases" },
  { 1003, "Capital One Auto Finance", "Prime and near-prime auto loans" },
  { 1004, "Chase Auto", "Dealer-arranged auto financing" },
  { 1005, "Crédit Agricole Auto Finance", "Prêts automobiles — taux promotionnels" },
  { 1006, "Golden 1 Credit Union", "Member-owned credit union, California" },
}

local VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789" -- I, O and Q are not used
local VIN_VALUES = { A = 1, B = 2, C = 3, D = 4, E = 5, F = 6, G = 7, H = 8, J = 1, K = 2, L = 3,
  M = 4, N = 5, P = 7, R = 9, S = 2, T = 3, U = 4, V = 5, W = 6, X = 7, Y = 8, Z = 9 }
local VIN_WEIGHTS = { 8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2 }
local VIN_YEARS = { [2018] = "J", [2019] = "K", [2020] = "L", [2021] = "M", [2022] = "N",
  [2023] = "P", [2024] = "R", [2025] = "S" }

--- A VIN with a correct check digit (position 9) and model-year code.
local function vin(rng, wmi, year)
  local chars = { wmi:byte(1, 3) }
  for i = 4, 17 do
    local k = rng:int(1, #VIN_CHARS)
    chars[i] = VIN_CHARS:byte(k)
  end
  chars[10] = VIN_YEARS[year]:byte()
  for i = 12, 17 do chars[i] = 48 + rng:int(0, 9) end -- serial number
  local sum = 0
  for i = 1, 17 do
    if i ~= 9 then
      local c = string.char(chars[i])
      sum = sum + (VIN_VALUES[c] or tonumber(c)) * VIN_WEIGHTS[i]
    end
  end
  local check = sum % 11
  chars[9] = check == 10 and 88 or 48 + check -- "X" or the digit
  return string.char(table.unpack(chars))
end

local function phone(rng, area)
  return format("+1%d55501%02d", area, rng:int(0, 99)) -- 555-01xx: fictional numbers
end

local function make_customer(rng, params, unicode)
  local first, gender = table.unpack(rng:pick(FIRST_NAMES))
  local last = rng:pick(LAST_NAMES)
  local nick = first
  if unicode then
    first = first .. " \u{1F697}"
    last = "\u{20BB7}田" -- 𠮷 lies outside the BMP
    nick = raw('"\\ud83d\\ude97 ' .. quote(nick):sub(2))
  end
  local guid = rng:uuid()
  local number = rng:digits(6)
  return obj(
    "firstName", first,
    "middleName", nil,
    "lastName", last,
    "gender", gender,
    "company", nil,
    "nickName", nick,
    "customerKey", "CK" .. rng:digits(8),
    "imageUrl", "https://cdn.mykaarma.example/customers/" .. guid .. "/avatar.png",
    "guid", guid,
    "isValid", true,
    "status", "ACTIVE",
    "optedOut", false,
    "isIndexed", true,
    "preferredLocale", params.locale,
    "availability", rng:int(0, 2),
    "phone", phone(rng, rng:pick({ 408, 512, 206, 845, 407 })),
    "email", "customer." .. number .. "@mail.example",
    "phoneCommunicationId", rng:int(10000000, 99999999),
    "emailCommunicationId", rng:int(10000000, 99999999))
end

--- The dealer object, and its state's code and name (for license plates).
local function make_dealer(rng, params)
  local name, nick, state_code, state_name, lat, lon, alt, domain = table.unpack(rng:pick(DEALERS))
  local area = rng:pick({ 408, 512, 206, 845, 407 })
  return obj(
    "id", rng:int(1000, 9999),
    "name", name,
    "contractName", name .. " LLC",
    "number", format("D%05d", rng:int(0, 99999)),
    -- written with \u escapes, as some JSON writers do for non-ASCII
    "comments", raw('"Caf\\u00e9 and Wi-Fi in the customer lounge; se habla espa\\u00f1ol"'),
    "isValid", true,
    "phoneNumber", phone(rng, area),
    "emailID", "sales@" .. domain,
    "website", "https://www." .. domain,
    "mapUrl", format("https://maps.example/?q=%.6f,%.6f", lat, lon),
    "pickupOffered", rng:bool(),
    "dropoffOffered", rng:bool(),
    "shuttleOffered", rng:bool(),
    "couponOffered", rng:bool(),
    "loanerOffered", rng:bool(),
    "serviceDeptHoursText", "Mon–Fri 7:00–18:00, Sat 8:00–16:00",
    "partsDeptHoursText", "Mon–Fri 7:30–17:30",
    "salesDeptHoursText", "Mon–Sat 9:00–21:00, Sun 10:00–19:00",
    "fiDeptHoursText", "Mon–Sat 9:00–20:00",
    "inNetwork", true,
    "latitude", lat,
    "longitude", lon,
    "altitude", alt,
    "isSystemDealer", false,
    "nickName", nick,
    "uuid", params.dealerUUID), state_code, state_name
end

-- Offers cycle through three states, so that any response of three offers
-- or more has funded, pending and expired ones.
local STATES = { "FUNDED", "PENDING", "EXPIRED" }

local EVENTS = {
  FUNDED = { { "OFFER_CREATED", "Offer created by the F&I manager", false },
    { "DOCS_SIGNED", "Customer signed the retail installment contract", true },
    { "OFFER_FUNDED", "Lender funded the loan", true } },
  PENDING = { { "OFFER_CREATED", "Offer created by the F&I manager", false },
    { "OFFER_SENT", "Offer sent to the customer by text message", true } },
  EXPIRED = { { "OFFER_CREATED", "Offer created by the F&I manager", false },
    { "OFFER_EXPIRED", "Offer expired without a signature", true } },
}

local function make_vehicle(rng, state_code, state_name, bought_ms, added_ms)
  local make, brand_id, model, trims, engine, body, wmi = table.unpack(rng:pick(VEHICLES))
  local year = rng:int(2018, 2025)
  local trim = rng:pick(trims)
  local mileage = tostring(year >= 2025 and rng:int(5, 900) or rng:int(3000, 85000))
  return obj(
    "id", rng:int(2000000, 2999999),
    "version", rng:int(0, 3),
    "brand", obj("id", brand_id, "version", 0, "brandName", make, "isValid", true),
    "vin", vin(rng, wmi, year),
    "hasObddevice", rng:bool(),
    "licensePlate", format("%d%c%c%c%03d", rng:int(1, 9), rng:int(65, 90), rng:int(65, 90),
      rng:int(65, 90), rng:int(0, 999)),
    "boughtDate", bought_ms and iso(bought_ms),
    "soldDate", nil,
    "addedDate", iso(added_ms),
    "model", model,
    "year", tostring(year),
    "trim", trim,
    "engine", engine,
    "body", body,
    "latestMileage", mileage,
    "transmission", engine == "Electric" and "Single-Speed" or rng:pick(TRANSMISSIONS),
    "name", format("%d %s %s %s", year, make, model, trim),
    "make", make,
    "mileage", mileage,
    "isPrimary", rng:bool(),
    "lastServiceDate", year < 2025 and iso(added_ms - rng:int(30, 300) * DAY_MS) or nil,
    "licenseStateCode", state_code,
    "licenseStateDescription", state_name,
    "vehicleKey", "VK" .. rng:digits(7),
    "status", "ACTIVE",
    "parent", 0,
    "color", rng:pick(COLORS),
    "uuid", rng:uuid(),
    "isValid", true), year, make, model, trim, mileage
end

local function make_offer(rng, i, params, customer, dealer, state_code, state_name)
  local state = STATES[(i - 1) % #STATES + 1]
  local funded, expired = state == "FUNDED", state == "EXPIRED"
  local id = i == 1 and BIG_ID or 73400000 + i * 1000 + rng:int(0, 999)

  -- expired offers are created late in 2019 and expire in 2020
  local created = expired and Y2019 + rng:int(250, 340) * DAY_MS or Y2025 + rng:int(0, 300) * DAY_MS
  created = created + rng:int(0, DAY_MS - 1)
  local signed = funded and created + rng:int(1, 3) * DAY_MS + rng:int(0, 36000000) or nil
  local funded_at = funded and signed + rng:int(1, 4) * DAY_MS + rng:int(0, 36000000) or nil
  local expiry = expired and created + 120 * DAY_MS
    or Y2099 + rng:int(0, 360) * DAY_MS + rng:int(0, DAY_MS - 1)
  local order_date = created - rng:int(0, 2) * DAY_MS

  local price = rng:int(1800000, 5800000)
  local down = rng:pick({ 0, 100000, 250000, 500000 })
  local loan = price - down
  local lender = rng:pick(LENDERS)
  local order_uuid, guid = rng:uuid(), rng:uuid()
  local order_number = format("DO-%06d", rng:int(0, 999999))
  local vehicle, year, make, model, trim, mileage =
    make_vehicle(rng, state_code, state_name, signed, order_date)

  local events = {}
  for k, e in ipairs(EVENTS[state]) do
    local at = ({ created, signed or created + 3600000, funded_at or expiry })[k]
    events[k] = obj(
      "id", rng:int(50000000, 59999999),
      "version", 0,
      "eventCode", e[1],
      "timeStamp", iso(at),
      "eventParam", k == 1 and order_number or (funded and "lenderLoan" or "sms"),
      "isVisible", e[3],
      "eventText", e[2])
  end

  local attribute_values = {
    { "term_months", tostring(rng:pick({ 36, 48, 60, 72, 84 })) },
    { "apr", cents_text(rng:int(249, 1299)) },
    { "down_payment", cents_text(down) },
  }
  local attributes = {}
  local attribute_id = rng:int(600000, 699999) * 10
  for k = 1, rng:int(1, #attribute_values) do
    attributes[k] = obj(
      "id", attribute_id + k,
      "financeOfferId", id,
      "option", attribute_values[k][1],
      "value", attribute_values[k][2])
  end

  local order = obj(
    "id", rng:int(3000000, 3999999),
    "orderNumber", order_number,
    "orderType", "SALES",
    "amount", money(price),
    "orderDate", iso(order_date),
    -- free text with quotes, a backslash and a newline, as DMS exports have
    "description", format('%s %s %s %s, deal jacket "%s"\nTrade-in documents: C:\\deals\\%s',
      year, make, model, trim, order_number, order_number),
    "orderStatus", funded and "CLOSED" or "OPEN",
    "invoiceURL", "https://app.mykaarma.example/invoices/" .. order_uuid .. ".pdf",
    "readyROData", format('{"roNumber":"R%s","advisor":"%s"}', rng:digits(6),
      rng:pick({ "Ana", "Bob", "Chen" })),
    "mileageText", mileage .. " mi",
    "departmentType", "SALES",
    "labourOpTypes", "",
    "dmsdescription", "CDK Drive",
    "uuid", order_uuid,
    "updated_dt", iso(funded_at or created),
    "created_dt", iso(order_date),
    "payTypes", "CUSTOMER",
    "laborTypes", "",
    "tagOrHat", "T" .. rng:digits(4),
    "vehicle", vehicle,
    "signatureRequestID", signed and rng:int(8000000, 8999999) or nil,
    "paidAmount", money(funded and down or 0),
    "deliveryAmount", money(rng:pick({ 0, 49900, 99500 })),
    "customerSignatureUrl", signed and "https://sign.mykaarma.example/r/" .. guid or nil,
    "dealer", dealer,
    "numberOfInvoices", funded and 1 or 0,
    "paid", funded,
    "paymentRequestSent", not expired,
    "paidOnline", funded and rng:bool())

  return obj(
    "id", id,
    "version", rng:int(0, 4),
    "dealerUUID", params.dealerUUID,
    "dealerOrderUUID", order_uuid,
    "customerUUID", params.customerUUID,
    "url", "https://pay.mykaarma.example/finance/offers/" .. guid,
    "guid", guid,
    "foAmount", money(price),
    "loanAmount", money(loan),
    "maxFinanceAmount", money(loan + rng:int(100000, 800000)),
    "loanFee", money(rng:pick({ 0, 29500, 49500, 69950 })),
    "lenderLoanID", "LN-" .. rng:digits(8),
    "lenderID", lender[1],
    "expiryDate", iso(expiry),
    "docSignedTS", signed and iso(signed),
    "fundedTS", funded_at and iso(funded_at),
    "depositConfirmationDate", funded_at and iso(funded_at + rng:int(1, 2) * DAY_MS),
    "status", state,
    "callbackId", format("cb-%08x", rng:next()),
    "isActive", not expired,
    "creationTS", iso(created),
    "customer", customer,
    "dealerOrder", order,
    "lender", obj("id", lender[1], "version", 1, "name", lender[2], "description", lender[3]),
    "financeEvents", events,
    "financeOfferAttributes", attributes,
    "skin", params.skin)
end

local PADDING_UNIT = "kpayment-mock padding. "

--- The body of a 200 response: n offers for params (customerUUID,
-- dealerUUID, skin, locale). opts.unicode adds names outside the BMP;
-- opts.min_bytes pads the first offer (at least one offer is then made)
-- so that the body has at least that many bytes.
function M.offers_json(params, n, opts)
  opts = opts or {}
  if opts.min_bytes and n == 0 then n = 1 end
  local rng = new_rng(seed_of(params.customerUUID))
  local customer = make_customer(rng, params, opts.unicode)
  local dealer, state_code, state_name = make_dealer(rng, params)
  local offers = {}
  for i = 1, n do
    offers[i] = make_offer(rng, i, params, customer, dealer, state_code, state_name)
  end
  local body = encode(obj("financeOffers", offers))
  if opts.min_bytes and #body < opts.min_bytes then
    local first = offers[1]
    -- the field adds its name and punctuation, `,"padding":""`, to the body
    local size = math.max(0, opts.min_bytes - #body - #',"padding":""')
    local n_fields = first.n
    first[n_fields + 1] = "padding"
    first[n_fields + 2] = PADDING_UNIT:rep(size // #PADDING_UNIT + 1):sub(1, size)
    first.n = n_fields + 2
    body = encode(obj("financeOffers", offers))
  end
  return body
end

---------------------------------------------------------------------------
-- Responses

local function error_body(status, entries)
  local errors = {}
  for i, e in ipairs(entries) do
    errors[i] = obj("errorCode", status, "errorTitle", REASONS[status],
      "errorMessage", e[1], "errorDescription", e[2])
  end
  return encode(obj("errors", errors, "warnings", {}))
end

local function json_error(status, message, description, headers)
  return { status = status, ctype = JSON, body = error_body(status, { { message, description } }),
    headers = headers }
end

local function html_page(status)
  local title = status .. " " .. REASONS[status]
  return format("<html>\r\n<head><title>%s</title></head>\r\n<body>\r\n<center><h1>%s</h1></center>\r\n"
    .. "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n", title, title)
end

local BAD_JSON = '{"financeOffers":[{"id":9007199254740993,"version":1,"status":"FUNDED","isActive":tru}]}'

-- Faults that answer at once, whatever the parameters.
local IMMEDIATE = {
  error500 = function()
    return json_error(500, "Internal server error",
      "An unexpected error occurred while fetching finance offers (fault error500).")
  end,
  html500 = function() return { status = 500, ctype = HTML, body = html_page(500) } end,
  html502 = function() return { status = 502, ctype = HTML, body = html_page(502) } end,
  ["503"] = function(seconds)
    return json_error(503, "Service temporarily unavailable",
      "The finance service is down for maintenance; retry later.",
      { { "Retry-After", tostring(seconds) } })
  end,
  ["429"] = function(seconds)
    return json_error(429, "Rate limit exceeded",
      "Too many requests for this service subscriber; retry later.",
      { { "Retry-After", tostring(seconds) } })
  end,
  empty502 = function() return { status = 502, ctype = HTML, body = "" } end,
  badjson = function() return { status = 200, ctype = JSON_UTF8, body = BAD_JSON } end,
  close = function() return { drop = true } end,
}

-- The fault modes that take an argument: its range and default. The other
-- modes take none.
local FAULT_ARGS = {
  ["503"] = { min = 0, max = 86400, default = 1 },
  ["429"] = { min = 0, max = 86400, default = 1 },
  stall = { min = 0, max = 3600, default = 5, fraction = true },
  big = { min = 1, max = 268435456, default = 1048576 },
  offers = { min = 0, max = M.MAX_OFFERS }, -- default: the server's count
}
local FAULT_MODES = { "error500", "html500", "html502", "503", "429", "empty502", "badjson",
  "close", "stall", "truncate", "big", "offers", "unicode" }
local IS_FAULT_MODE = {}
for _, mode in ipairs(FAULT_MODES) do IS_FAULT_MODE[mode] = true end

--- Parses "mode" or "mode:arg"; returns mode and argument value, or nil and
-- the reason.
local function parse_fault(text)
  local mode, arg = text:match("^%s*([^:]-)%s*:(.-)%s*$")
  if not mode then mode, arg = text:match("^%s*(.-)%s*$"), "" end
  if not IS_FAULT_MODE[mode] then
    return nil, format("unknown fault mode '%s' (known: %s)", mode, concat(FAULT_MODES, ", "))
  end
  local spec = FAULT_ARGS[mode]
  if arg == "" then return mode, spec and spec.default end
  if not spec then return nil, format("fault mode '%s' takes no argument", mode) end
  local value = arg:match(spec.fraction and "^%d*%.?%d+$" or "^%d+$") and tonumber(arg)
  if spec.fraction then
    value = value and value + 0.0
  else
    value = value and math.tointeger(value)
  end
  if not value or value < spec.min or value > spec.max then
    return nil, format("bad argument '%s' for fault mode '%s' (expected %s from %d to %d)",
      arg, mode, spec.fraction and "seconds" or "an integer", spec.min, spec.max)
  end
  return mode, value
end

---------------------------------------------------------------------------
-- Requests

local function unescape(s)
  s = s:gsub("%+", " ")
  return (s:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

--- Decoded query parameters: a name → value map and the names in order.
local function parse_query(query)
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
-- Server

local Server = {}
Server.__index = Server

function M.check_options(opts)
  if type(opts) ~= "table" then return nil, "options must be a table" end
  for _, key in ipairs({ "host", "user", "password", "token" }) do
    if opts[key] ~= nil and type(opts[key]) ~= "string" then
      return nil, key .. " must be a string"
    end
  end
  if (opts.user == nil) ~= (opts.password == nil) then
    return nil, "user and password go together"
  end
  local port = opts.port
  if port ~= nil and (math.type(port) ~= "integer" or port < 0 or port > 65535) then
    return nil, "port must be an integer from 0 to 65535"
  end
  local offers = opts.offers
  if offers ~= nil and (math.type(offers) ~= "integer" or offers < 0 or offers > M.MAX_OFFERS) then
    return nil, "offers must be an integer from 0 to " .. M.MAX_OFFERS
  end
  return true
end

--- Creates a server listening at once; raises when it cannot.
function M.new(opts)
  opts = opts or {}
  local ok, why = M.check_options(opts)
  if not ok then error("kpayment.mock: " .. why, 2) end
  local host, port = opts.host or "127.0.0.1", opts.port or 0
  local server, err = socket.bind(host, port, 128)
  if not server then
    error(format("kpayment.mock: cannot listen on %s:%d: %s", host, port, err), 2)
  end
  server:settimeout(0)
  return setmetatable({
    _server = server,
    _offers = opts.offers or 3,
    _basic = opts.user and (mime.b64(opts.user .. ":" .. opts.password)),
    _token = opts.token,
    _conns = {}, -- socket → connection state
    _requests = 0,
    _connections = 0,
    _epoch = 1, -- bumped by reset, so connections already counted count again
    _log = {},
    _flaky = {}, -- customer and dealer → requests seen, for flaky:n:mode
    _cache = {},
    _cache_bytes = 0,
  }, Server)
end

function Server:url()
  local ip, port = self._server:getsockname()
  if ip == "0.0.0.0" then ip = "127.0.0.1" elseif ip == "::" then ip = "::1" end
  if ip:find(":", 1, true) then ip = "[" .. ip .. "]" end
  return format("http://%s:%d", ip, port)
end

function Server:stats()
  return { connections = self._connections, requests = self._requests }
end

function Server:close()
  for sock in pairs(self._conns) do sock:close() end
  self._conns = {}
  if self._server then self._server:close() end
  self._server = nil
end

function Server:run()
  while self._server do self:step() end
end

function Server:_body(params, n, opts)
  local key = concat({ params.customerUUID, params.dealerUUID, params.skin, params.locale, n,
    opts.unicode and "u" or "", opts.min_bytes or "" }, "\0")
  local body = self._cache[key]
  if not body then
    body = M.offers_json(params, n, opts)
    if self._cache_bytes + #body > CACHE_BYTES then
      self._cache, self._cache_bytes = {}, 0
    end
    if #body <= CACHE_BYTES then
      self._cache[key], self._cache_bytes = body, self._cache_bytes + #body
    end
  end
  return body
end

function Server:_authorized(value)
  if not self._basic and not self._token then return true end
  local scheme, credentials = (value or ""):match("^(%S+)[ \t]+(.-)[ \t]*$")
  scheme = scheme and scheme:lower()
  return (scheme == "basic" and credentials == self._basic)
    or (scheme == "bearer" and self._token ~= nil and credentials == self._token)
end

function Server:_record(conn, req, params, names)
  self._requests = self._requests + 1
  if conn.epoch ~= self._epoch then
    conn.epoch = self._epoch
    self._connections = self._connections + 1
  end
  local logged_params, logged_headers = {}, {}
  for _, name in ipairs(names) do
    logged_params[#logged_params + 1] = name
    logged_params[#logged_params + 1] = params[name]
  end
  for _, name in ipairs(req.header_order) do
    local value = req.headers[name]
    if name == "authorization" or name == "proxy-authorization" then
      value = value:match("^%S*") -- the scheme only: never echo credentials
    end
    logged_headers[#logged_headers + 1] = name
    logged_headers[#logged_headers + 1] = value
  end
  logged_params.n, logged_headers.n = #logged_params, #logged_headers
  local log = self._log
  log[#log + 1] = obj("method", req.method, "target", req.target,
    "params", setmetatable(logged_params, OBJECT), "headers", setmetatable(logged_headers, OBJECT))
  if #log > LOG_SIZE then table.remove(log, 1) end
end

function Server:_control(path)
  if path == "/_mock/reset" then
    self._requests, self._connections, self._epoch, self._log = 0, 0, self._epoch + 1, {}
    self._flaky = {}
  elseif path == "/_mock/requests" then
    return { status = 200, ctype = JSON_UTF8, body = encode(self._log) }
  elseif path ~= "/_mock/stats" then
    return json_error(404, "Not found", "No mock control endpoint at " .. path)
  end
  return { status = 200, ctype = JSON_UTF8,
    body = encode(obj("connections", self._connections, "requests", self._requests)) }
end

--- The response to a complete request.
function Server:_handle(conn, req)
  local path, query = req.target:match("^([^?]*)%??(.*)$")
  if path:find("^/_mock/") then return self:_control(path) end
  if path ~= M.ENDPOINT then
    return json_error(404, "Not found", "No resource at " .. path)
  end
  local params, names = parse_query(query)
  self:_record(conn, req, params, names)
  if req.method ~= "GET" then
    return json_error(405, "Method " .. req.method .. " not allowed",
      "getFinanceOffersForCustomer only supports GET.", { { "Allow", "GET" } })
  end
  if not self:_authorized(req.headers.authorization) then
    return json_error(401, "Full authentication is required to access this resource",
      "Send HTTP Basic credentials of a service subscriber, or a bearer token.",
      { { "WWW-Authenticate", 'Basic realm="kpayment-mock"' } })
  end

  local fault = req.headers["x-mock-fault"]
  if not fault and params.customerUUID then fault = params.customerUUID:match("^mock:(.*)$") end
  local flaky_n, flaky_rest = (fault or ""):match("^flaky:(%d+):(.+)$")
  if flaky_n then
    -- the first n requests for this customer and dealer fail, later ones do not
    local key = (params.customerUUID or "") .. "\0" .. (params.dealerUUID or "")
    local seen = (self._flaky[key] or 0) + 1
    self._flaky[key] = seen
    fault = seen <= tonumber(flaky_n) and flaky_rest or nil
  end
  local target = (fault or ""):match("^redirect:(.+)$")
  if target then
    return { status = 302, ctype = HTML, body = "", headers = { { "Location", target } } }
  end
  local mode, value
  if fault then
    mode, value = parse_fault(fault)
    if not mode then return json_error(400, value, "Fault modes are listed in kpayment.mock.") end
    if IMMEDIATE[mode] then return IMMEDIATE[mode](value) end
  end

  local missing = {}
  for _, name in ipairs(PARAMS) do
    if (params[name] or "") == "" then
      missing[#missing + 1] = { name .. " is required",
        "Query parameter " .. name .. " must be a non-empty string." }
    end
  end
  local res
  if #missing > 0 then
    res = { status = 400, ctype = JSON, body = error_body(400, missing) }
  else
    local opts = { unicode = mode == "unicode", min_bytes = mode == "big" and value or nil }
    local n = mode == "offers" and (value or self._offers) or self._offers
    res = { status = 200, ctype = JSON_UTF8, body = self:_body(params, n, opts) }
  end
  res.truncate = mode == "truncate"
  res.delay = mode == "stall" and value or nil
  return res
end

--- Every API response carries a request id, as the real API's gateway does.
local handle = Server._handle
function Server:_handle(conn, req)
  local res = handle(self, conn, req)
  if not res.drop and req.target:find("^" .. M.ENDPOINT) then
    res.headers = res.headers or {}
    res.headers[#res.headers + 1] = { "X-Request-Id", "mock-" .. self._requests }
  end
  return res
end

local function queue(conn, data)
  conn.tail = conn.tail + 1
  conn.out[conn.tail] = data
end

--- Queues a response (or, for the close fault, arranges to close).
local function emit(conn, res)
  if res.drop then
    conn.closing = true
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
    queue(conn, head .. body)
  else -- big bodies are sent from the cached string, not copied
    queue(conn, head)
    queue(conn, body)
  end
  if res.close then conn.closing = true end
end

--- Serves the complete requests in the connection's input, in order.
function Server:_process(conn)
  while not conn.closing and not conn.wake_at do
    if conn.body_left > 0 then -- request bodies are read and ignored
      local n = math.min(#conn.inbuf, conn.body_left)
      conn.inbuf, conn.body_left = conn.inbuf:sub(n + 1), conn.body_left - n
      if conn.body_left > 0 then break end
    end
    if conn.inbuf:find("^[\r\n]") then -- stray line ends between requests
      conn.inbuf = conn.inbuf:gsub("^[\r\n]+", "")
    end
    local req, taken = parse_head(conn.inbuf)
    if req == false then break end
    if not req then
      local res = json_error(400, "Malformed request", taken)
      res.close = true
      emit(conn, res)
      break
    end
    conn.inbuf = conn.inbuf:sub(taken + 1)
    conn.body_left = req.body_size
    local res = self:_handle(conn, req)
    res.close = res.close or not wants_keep_alive(req)
    if res.delay then
      conn.wake_at, conn.stalled = gettime() + res.delay, res
    else
      emit(conn, res)
    end
  end
  self:_flush(conn)
end

function Server:_drop(conn)
  conn.sock:close()
  self._conns[conn.sock] = nil
end

--- Sends what the socket takes; closes the connection when it is done.
function Server:_flush(conn)
  while conn.head <= conn.tail do
    local chunk = conn.out[conn.head]
    local last, err, sent = conn.sock:send(chunk, conn.pos)
    if last == #chunk then
      conn.out[conn.head], conn.head, conn.pos = nil, conn.head + 1, 1
    elseif err == "timeout" then
      conn.pos = sent + 1
      return
    else
      return self:_drop(conn)
    end
  end
  if (conn.closing or conn.eof) and not conn.wake_at then self:_drop(conn) end
end

function Server:_accept()
  while true do
    local sock = self._server:accept()
    if not sock then return end
    sock:settimeout(0)
    sock:setoption("tcp-nodelay", true) -- heads and bodies may go in separate sends
    self._conns[sock] = { sock = sock, inbuf = "", body_left = 0,
      out = {}, head = 1, tail = 0, pos = 1 }
  end
end

function Server:_read(conn)
  local data, err, partial = conn.sock:receive(READ_SIZE)
  data = data or partial
  if data ~= "" then conn.inbuf = conn.inbuf .. data end
  -- the peer is done sending: answer what it sent, then close
  if err and err ~= "timeout" then conn.eof = true end
  self:_process(conn)
end

--- One iteration of the loop: waits at most timeout seconds (nil: until
-- something happens), then accepts, reads, writes and fires stall timers.
function Server:step(timeout)
  assert(self._server, "kpayment.mock: server is closed")
  local recvt, sendt = { self._server }, {}
  local wake
  for sock, conn in pairs(self._conns) do
    if conn.wake_at then
      wake = math.min(wake or math.huge, conn.wake_at)
    elseif not conn.closing and not conn.eof then
      recvt[#recvt + 1] = sock
    end
    if conn.head <= conn.tail then sendt[#sendt + 1] = sock end
  end
  if wake then
    local until_wake = math.max(0, wake - gettime())
    timeout = timeout and math.min(timeout, until_wake) or until_wake
  end
  local readable, writable = socket.select(recvt, sendt, timeout)
  for _, sock in ipairs(readable) do
    if sock == self._server then
      self:_accept()
    elseif self._conns[sock] then
      self:_read(self._conns[sock])
    end
  end
  for _, sock in ipairs(writable) do
    if self._conns[sock] then self:_flush(self._conns[sock]) end
  end
  local now = gettime()
  for _, conn in pairs(self._conns) do
    if conn.wake_at and conn.wake_at <= now then
      local res = conn.stalled
      conn.wake_at, conn.stalled = nil, nil
      emit(conn, res)
      self:_process(conn)
    end
  end
end

return M
