--- kpayment.mock.data: the bodies the mock API sends.
--
-- The finance offers of a 200 response, generated from the request alone
-- (deterministic data: the same customerUUID always gets the same offers),
-- and the error bodies, in the shape of the API reference.
--
--   data.offers_json(params, n [, opts])  the 200 body (see offers_json)
--   data.error_body(status, entries)      {"errors":[…],"warnings":[]}
--   data.error_response(status, message, description [, headers])
--                                         a response with such a body
--   data.MAX_OFFERS                       the most offers a body holds

local json = require("kpayment.json")
local http = require("kpayment.mock.http")
local options = require("kpayment.mock.options")

local M = {
  MAX_OFFERS = options.MAX_OFFERS,
}

local format, concat = string.format, table.concat
local obj, raw, quote, encode = json.object, json.raw, json.quote, json.encode

local BIG_ID = 9007199254740993 -- 2^53 + 1: not representable as a double

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
-- The last padded body up to 16 MB is kept: building 4 MB takes 0.15 s of
-- CPU, which a client's short timeout should not pay again on each call.
local padded = { key = nil, body = nil }
local KEEP_PADDED = 16 * 1048576

function M.offers_json(params, n, opts)
  opts = opts or {}
  if opts.min_bytes and not opts.fresh and opts.min_bytes <= KEEP_PADDED then
    local key = table.concat({ tostring(params.customerUUID), tostring(params.dealerUUID),
      tostring(params.skin), tostring(params.locale), n, opts.min_bytes, tostring(opts.unicode) }, "\0")
    if padded.key ~= key then
      padded.body = nil   -- the old one may go first
      padded.body = M.offers_json(params, n, { min_bytes = opts.min_bytes, unicode = opts.unicode,
                                               fresh = true })
      padded.key = key
    end
    return padded.body
  end
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
    -- the field adds its name and punctuation, `,"padding":""`, to the body
    local size = math.max(0, opts.min_bytes - #body - #',"padding":""')
    json.append(offers[1], "padding", PADDING_UNIT:rep(size // #PADDING_UNIT + 1):sub(1, size))
    body = encode(obj("financeOffers", offers))
  end
  return body
end

---------------------------------------------------------------------------
-- Error bodies

--- The API's error body: one error per entry { message, description }.
function M.error_body(status, entries)
  local errors = {}
  for i, e in ipairs(entries) do
    errors[i] = obj("errorCode", status, "errorTitle", http.REASONS[status],
      "errorMessage", e[1], "errorDescription", e[2])
  end
  return encode(obj("errors", errors, "warnings", {}))
end

--- A response with a one-error body.
function M.error_response(status, message, description, headers)
  return { status = status, ctype = http.JSON, body = M.error_body(status, { { message, description } }),
    headers = headers }
end

return M
