--[[
bench/gen.lua -- realistic getFinanceOffersForCustomer responses for benchmarks.

    lua5.4 bench/gen.lua N [seed]     prints {"financeOffers":[...]} with N offers
    local generate = require("gen")   (package.path holding bench/?.lua)
    generate(n, seed) -> string

Every offer carries every field of the reference example (example-200.json) at
every nesting level, in the same order, with values of the kinds a real backend
sends: UUIDs, ISO-8601 UTC timestamps with milliseconds, amounts with cents,
64-bit ids (some above 2^53, where a float loses digits), UTF-8 names (raw, and
some written as \u escapes, surrogate pairs included), nulls where the API has
optional data, free text with quotes and line breaks.  An offer is about
4.5 KB of compact JSON (10 offers about 46 KB, 1 000 about 4.5 MB), close to
the 4 KB offers of the measurements the project compares against.

The output depends only on (n, seed): the generator has its own PRNG and its
own JSON text emitter, so neither math.random nor an encoder's number
formatting can change the bytes between machines or library versions.
]]

local byte, format, concat = string.byte, string.format, table.concat

-- SplitMix64 on Lua 5.4's wrapping 64-bit integers: tiny, fast and good enough
-- for test data, and identical everywhere for a given seed.
local function new_rng(seed)
  local state = seed
  local rng = {}

  function rng.u64()
    state = state + 0x9E3779B97F4A7C15
    local z = state
    z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ~ (z >> 27)) * 0x94D049BB133111EB
    return z ~ (z >> 31)
  end

  -- Uniform enough on [lo, hi] for spans far below 2^62 (the bias is < 2^-40).
  function rng.int(lo, hi)
    return lo + (rng.u64() >> 2) % (hi - lo + 1)
  end

  function rng.chance(p)
    return (rng.u64() >> 11) * 0x1p-53 < p
  end

  function rng.pick(list)
    return list[rng.int(1, #list)]
  end

  return rng
end

---------------------------------------------------------------------------
-- JSON text emitter.  Values are emitted as they are produced, straight into
-- a piece list, so a 40 MB payload is one table.concat and no tree.
---------------------------------------------------------------------------

local ESCAPES = {
  ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r',
  ['\t'] = '\\t', ['\b'] = '\\b', ['\f'] = '\\f',
}

local function escape_control(c)
  return ESCAPES[c] or format("\\u%04x", byte(c))
end

-- One UTF-8 sequence as \uXXXX, or as a surrogate pair above the BMP.
local function escape_codepoint(seq)
  local cp = utf8.codepoint(seq)
  if cp < 0x10000 then
    return format("\\u%04x", cp)
  end
  cp = cp - 0x10000
  return format("\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF))
end

-- ascii_only writes non-ASCII characters as escapes, as some serializers and
-- proxies do; otherwise they stay raw UTF-8, as the API normally sends them.
local function quote(s, ascii_only)
  s = s:gsub('[%c"\\]', escape_control)
  if ascii_only then
    s = s:gsub(utf8.charpattern, function(seq)
      if byte(seq) >= 0x80 then return escape_codepoint(seq) end
    end)
  end
  return '"' .. s .. '"'
end

---------------------------------------------------------------------------
-- Value pools.  Names mix ASCII, Latin-1, Latin Extended, Vietnamese, CJK
-- and one astral character (U+20BB7 in the surname 𠮷田), so that escapes
-- with surrogate pairs appear even without emoji.
---------------------------------------------------------------------------

local FIRST = {
  "James", "Maria", "José", "Zoë", "Łukasz", "Siobhán", "Øyvind", "François",
  "Ángel", "Björn", "Chloé", "Renée", "Thảo", "Minh", "Aiko", "Mei", "Olusegun",
  "Priya", "Ahmed", "Noémie", "Dvořák", "Sørina", "Ana", "Michael", "Jennifer",
  "Robert", "Linda", "David", "Patricia", "Élodie", "Jürgen", "Ōta", "翔太", "美咲",
}
local MIDDLE = { "A.", "Lee", "Marie", "José", "Anne", "Ray", "Ngọc", "J.", "Louise", "Kai" }
local LAST = {
  "Smith", "García", "Müller", "Nguyễn", "O'Brien", "Kowalczyk", "Johansson",
  "Dubois", "Martínez", "Schäfer", "Ødegård", "Wiśniewski", "Tanaka", "Yılmaz",
  "Novák", "Brontë", "D'Angelo", "Lefèvre", "Peña", "Williams", "Brown", "Jones",
  "佐藤", "𠮷田", "김", "Okonkwo", "Patel", "Hernández", "Çelik", "Åberg",
}
local NICK_TAIL = { "", "", "", "", " 🚗", " 👍", " ★", " 😀", " (work)" }
local COMPANIES = {
  "Acme Logistics LLC", "Sunrise Dental Group", "Blue Ridge Landscaping",
  "Müller & Söhne GmbH", "Café Olé Inc.", "Northwind Traders", "Peña Construction",
}
local LOCALES = { "en-US", "en-US", "en-US", "es-US", "fr-CA", "en-CA", "vi-VN" }
local OFFER_STATUS = { "OFFERED", "ACCEPTED", "DOCS_SIGNED", "FUNDED", "EXPIRED", "DECLINED", "CANCELLED" }
local ORDER_TYPES = { "RO", "INVOICE", "DEPOSIT", "SALE" }
local ORDER_STATUS = { "OPEN", "CLOSED", "INVOICED", "PAID", "VOID" }
local DEPARTMENTS = { "SERVICE", "PARTS", "SALES", "BODY_SHOP" }
local PAY_TYPES = { "C", "C,W", "C,I", "W", "C,W,I" }
local LABOR_TYPES = { "CP", "CP,W", "W", "I", "CP,I" }
local EVENT_CODES = {
  "OFFER_CREATED", "OFFER_SENT", "OFFER_VIEWED", "APPLICATION_STARTED",
  "APPLICATION_APPROVED", "DOCS_SIGNED", "FUNDED", "OFFER_EXPIRED", "REMINDER_SENT",
}
local ATTR_OPTIONS = {
  "term_months", "apr", "monthly_payment", "promo_code", "first_payment_date",
  "autopay", "credit_tier", "channel", "lender_product",
}
local LENDERS = {
  { "Sunbit", "Buy now, pay later for service and parts." },
  { "Affirm", "Point-of-sale loans; rates from 0% APR, \"no hidden fees\"." },
  { "Synchrony Car Care", "Revolving credit card for automotive service." },
  { "Crédit Agricole Auto", "Financement automobile, taux fixe." },
  { "Klarna", "Pay in 4 or monthly financing." },
}
local VEHICLES = {
  { "Toyota", "Camry", { "LE", "SE", "XLE" }, "2.5L I4", "Sedan" },
  { "Honda", "CR-V", { "LX", "EX", "EX-L" }, "1.5L I4 Turbo", "SUV" },
  { "Ford", "F-150", { "XL", "XLT", "Lariat" }, "3.5L V6 EcoBoost", "Pickup" },
  { "Chevrolet", "Equinox", { "LS", "LT", "Premier" }, "1.5L I4 Turbo", "SUV" },
  { "Hyundai", "Ioniq 5", { "SE", "SEL", "Limited" }, "Electric", "Crossover" },
  { "Škoda", "Octavia", { "Ambition", "Style" }, "2.0L TDI", "Wagon" },
  { "Tesla", "Model 3", { "RWD", "Long Range" }, "Electric", "Sedan" },
  { "Subaru", "Outback", { "Premium", "Limited", "Wilderness" }, "2.5L H4", "Wagon" },
}
local COLORS = { "Silver", "Black", "White", "Blue", "Red", "Magnetic Gray", "Pearl White" }
local STATES = {
  { "CA", "California" }, { "TX", "Texas" }, { "NY", "New York" }, { "WA", "Washington" },
  { "FL", "Florida" }, { "IL", "Illinois" }, { "QC", "Québec" },
}
local CITIES = { "Springfield", "Riverside", "Fairview", "San José", "Montréal", "Georgetown" }
-- Dealer management systems keep short upper-case summaries.
local DMS_TEXT = {
  "CUST PAY - BRAKES", "OIL CHG/ROTATE", "WARR - WATER PUMP", "MPI", "ALIGN 4WHL",
  "BATT REPLACE", "INT - RECON", "CUST STATES CEL ON", "TIRES X4 + BAL",
}
local WORDS = {
  "customer", "requested", "brake", "pads", "and", "rotors", "replaced", "front",
  "rear", "oil", "change", "tire", "rotation", "alignment", "check", "engine",
  "light", "diagnosed", "coolant", "leak", "at", "water", "pump", "recommend",
  "follow-up", "in", "3", "months", "battery", "tested", "OK", "wipers", "cabin",
  "filter", "the", "with", "for", "of", "vehicle", "inspection", "multi-point",
  "approved", "by", "phone", "waiting", "on", "parts", "ETA", "tomorrow", "loaner",
  "provided", "warranty", "covers", "labor", "only", "declined", "service",
}

---------------------------------------------------------------------------
-- Value generators.
---------------------------------------------------------------------------

local ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
local VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"   -- VINs have no I, O, Q

local function token(rng, alphabet, n)
  local t = {}
  for i = 1, n do
    local k = rng.int(1, #alphabet)
    t[i] = alphabet:sub(k, k)
  end
  return concat(t)
end

local function uuid(rng)
  local a, b = rng.u64(), rng.u64()
  -- version 4, variant 10xx, as java.util.UUID.randomUUID() makes them
  return format("%08x-%04x-4%03x-%x%03x-%012x",
    a >> 32, (a >> 16) & 0xFFFF, a & 0xFFF,
    8 + (b >> 62), (b >> 48) & 0xFFF, b & 0xFFFFFFFFFFFF)
end

local EPOCH_2023 = 1672531200

-- ISO-8601 UTC with milliseconds; os.date with "!" is plain UTC arithmetic.
-- t defaults to a random second of 2023-2025.
local function timestamp(rng, t)
  t = t or EPOCH_2023 + rng.int(0, 3 * 365 * 86400)
  return os.date("!%Y-%m-%dT%H:%M:%S", t) .. format(".%03dZ", rng.int(0, 999))
end

-- Amounts are written from integer cents so the text is exact ("1234.50").
local function amount(rng, lo_cents, hi_cents)
  local c = rng.int(lo_cents, hi_cents)
  return format("%d.%02d", c // 100, c % 100)
end

-- Java longs: most ids are database sequences, some are snowflake-style ids
-- above 2^53 that a double cannot hold exactly.
local function id64(rng)
  if rng.chance(0.2) then
    return format("%d", 0x1000000000000000 + (rng.u64() >> 4))
  end
  return format("%d", rng.int(100000, 99999999))
end

local function sentence(rng)
  local n = rng.int(3, 10)
  local t = {}
  for i = 1, n do
    local w = rng.pick(WORDS)
    if rng.chance(0.04) then w = '"' .. w .. '"' end
    t[i] = w
  end
  local s = concat(t, " ")
  return s:sub(1, 1):upper() .. s:sub(2) .. "."
end

-- Free text of roughly `len` bytes; sentences sometimes on new lines.
local function text(rng, len)
  local t, size = {}, 0
  repeat
    local s = sentence(rng)
    t[#t + 1] = s
    size = size + #s + 1
  until size >= len
  local out = t[1]
  for i = 2, #t do
    out = out .. (rng.chance(0.15) and "\n" or " ") .. t[i]
  end
  return out
end

local function phone(rng)
  return format("+1%03d%03d%04d", rng.int(201, 989), rng.int(200, 999), rng.int(0, 9999))
end

local function ascii_handle(s)
  return (s:gsub("[^%w]", ""):lower())
end

---------------------------------------------------------------------------
-- The offer writer: fields in the order of the reference example.
---------------------------------------------------------------------------

local function generate(n, seed)
  assert(math.type(n) == "integer" and n >= 0, "generate: n must be a non-negative integer")
  seed = seed or 1
  local rng = new_rng(seed)
  local out, k = {}, 0

  local function raw(s) k = k + 1; out[k] = s end
  -- Each object opens with "{" and its first key; the others are preceded by ","
  local first = false
  local function open(c) raw(c); first = true end
  local function key(name)
    if first then first = false else raw(",") end
    raw('"' .. name .. '":')
  end
  local function str(name, v, ascii_only)
    key(name)
    if v == nil then raw("null") else raw(quote(v, ascii_only)) end
  end
  local function num(name, v) key(name); raw(v == nil and "null" or v) end
  local function int(name, v) key(name); raw(format("%d", v)) end
  local function bool(name, v) key(name); raw(v and "true" or "false") end
  local function maybe_ts(name, p_null)
    str(name, not rng.chance(p_null) and timestamp(rng) or nil)
  end
  local function esc() return rng.chance(0.3) end   -- this string \u-escaped?

  local function customer()
    key("customer"); open("{")
    local fn, ln = rng.pick(FIRST), rng.pick(LAST)
    str("firstName", fn, esc())
    str("middleName", not rng.chance(0.6) and rng.pick(MIDDLE) or nil, esc())
    str("lastName", ln, esc())
    str("gender", rng.pick({ "M", "F", "U" }))
    str("company", rng.chance(0.3) and rng.pick(COMPANIES) or nil, esc())
    str("nickName", fn .. rng.pick(NICK_TAIL), esc())
    str("customerKey", token(rng, ALNUM, 24))
    str("imageUrl", rng.chance(0.4) and "https://cdn.mykaarma.com/img/" .. uuid(rng) .. ".jpg" or nil)
    str("guid", uuid(rng))
    bool("isValid", rng.chance(0.95))
    str("status", rng.chance(0.9) and "ACTIVE" or "INACTIVE")
    bool("optedOut", rng.chance(0.1))
    bool("isIndexed", rng.chance(0.8))
    str("preferredLocale", rng.pick(LOCALES))
    int("availability", rng.int(0, 3))
    str("phone", phone(rng))
    -- Addresses are ASCII: keep the ASCII letters of the name, if any.
    local a, b = ascii_handle(fn), ascii_handle(ln)
    local handle = (a ~= "" and b ~= "") and a .. "." .. b or (a ~= "" and a or b ~= "" and b or "customer")
    str("email", handle .. rng.int(1, 999) .. "@example.com")
    num("phoneCommunicationId", id64(rng))
    num("emailCommunicationId", id64(rng))
    raw("}")
  end

  local function vehicle()
    local v = rng.pick(VEHICLES)
    local year = tostring(rng.int(2012, 2025))
    local trim = rng.pick(v[3])
    local miles = rng.int(1200, 148000)
    local st = rng.pick(STATES)
    key("vehicle"); open("{")
    num("id", id64(rng))
    int("version", rng.int(0, 9))
    key("brand"); open("{")
    int("id", rng.int(1, 60))
    int("version", rng.int(0, 3))
    str("brandName", v[1], esc())
    bool("isValid", true)
    raw("}")
    str("vin", token(rng, VIN_CHARS, 17))
    bool("hasObddevice", rng.chance(0.2))
    str("licensePlate", token(rng, "ABCDEFGHJKLMNPRSTUVWXYZ", 3) .. rng.int(1000, 9999))
    maybe_ts("boughtDate", 0.3)
    maybe_ts("soldDate", 0.85)
    maybe_ts("addedDate", 0)
    str("model", v[2])
    str("year", year)
    str("trim", trim)
    str("engine", v[4])
    str("body", v[5])
    str("latestMileage", tostring(miles))
    str("transmission", v[4] == "Electric" and "Single-speed" or rng.pick({ "Automatic", "CVT", "Manual" }))
    str("name", year .. " " .. v[1] .. " " .. v[2] .. " " .. trim, esc())
    str("make", v[1], esc())
    str("mileage", format("%d,%03d mi", miles // 1000, miles % 1000))
    bool("isPrimary", rng.chance(0.7))
    maybe_ts("lastServiceDate", 0.2)
    str("licenseStateCode", st[1])
    str("licenseStateDescription", st[2], esc())
    str("vehicleKey", token(rng, ALNUM, 20))
    str("status", rng.chance(0.9) and "ACTIVE" or "SOLD")
    int("parent", rng.chance(0.8) and 0 or rng.int(100000, 9999999))
    str("color", rng.pick(COLORS))
    str("uuid", uuid(rng))
    bool("isValid", true)
    raw("}")
  end

  -- Service hours span lines; the other departments usually fit on one.
  local function hours(multiline)
    local open_h, close_h = rng.int(6, 9), rng.int(5, 8)
    if multiline then
      return format("Mon-Fri %d:00 AM - %d:00 PM\nSat %d:00 AM - 3:00 PM\nSun Closed",
        open_h, close_h, open_h + 1)
    end
    return format("Mon-Sat %d:00 AM - %d:00 PM", open_h, close_h)
  end

  local function dealer()
    local city = rng.pick(CITIES)
    local lat = rng.int(25000000, 48999999)
    local lng = -rng.int(70000000, 123999999)
    key("dealer"); open("{")
    num("id", format("%d", rng.int(1000, 99999)))
    str("name", city .. " " .. rng.pick(VEHICLES)[1] .. " of " .. rng.pick(LAST), esc())
    str("contractName", city .. " Motors Holdings, Inc.", esc())
    str("number", format("D%05d", rng.int(0, 99999)))
    str("comments", rng.chance(0.6) and text(rng, rng.int(10, 40)) or nil)
    bool("isValid", true)
    str("phoneNumber", phone(rng))
    str("emailID", "service@" .. ascii_handle(city) .. "motors.example.com")
    str("website", "https://www." .. ascii_handle(city) .. "motors.example.com/")
    str("mapUrl", format("https://maps.google.com/?q=%d.%06d,%d.%06d",
      lat // 1000000, lat % 1000000, -(-lng // 1000000), -lng % 1000000))
    bool("pickupOffered", rng.chance(0.5))
    bool("dropoffOffered", rng.chance(0.5))
    bool("shuttleOffered", rng.chance(0.6))
    bool("couponOffered", rng.chance(0.3))
    bool("loanerOffered", rng.chance(0.4))
    str("serviceDeptHoursText", hours(true))
    str("partsDeptHoursText", hours())
    str("salesDeptHoursText", hours())
    str("fiDeptHoursText", rng.chance(0.5) and "" or hours())
    bool("inNetwork", rng.chance(0.9))
    num("latitude", format("%d.%06d", lat // 1000000, lat % 1000000))
    num("longitude", format("-%d.%06d", -lng // 1000000, -lng % 1000000))
    num("altitude", format("%d.%d", rng.int(0, 2200), rng.int(0, 9)))
    bool("isSystemDealer", rng.chance(0.05))
    str("nickName", city, esc())
    str("uuid", uuid(rng))
    raw("}")
  end

  local function dealer_order(signed)
    local created = timestamp(rng)
    key("dealerOrder"); open("{")
    num("id", id64(rng))
    str("orderNumber", format("RO%07d", rng.int(0, 9999999)))
    str("orderType", rng.pick(ORDER_TYPES))
    num("amount", amount(rng, 4999, 1500000))
    str("orderDate", created)
    str("description", text(rng, rng.int(10, 100)), esc())
    str("orderStatus", rng.pick(ORDER_STATUS))
    str("invoiceURL", "https://app.mykaarma.com/inv/" .. token(rng, ALNUM, 16))
    str("readyROData", rng.chance(0.5) and format('{"bay":%d,"tech":"%s","promised":"%s"}',
      rng.int(1, 24), rng.pick(FIRST), timestamp(rng)) or nil)
    str("mileageText", format("%d mi", rng.int(1200, 148000)))
    str("departmentType", rng.pick(DEPARTMENTS))
    str("labourOpTypes", format("%02d%s,%02d%s", rng.int(1, 99), token(rng, "ABCDE", 1),
      rng.int(1, 99), token(rng, "ABCDE", 1)))
    str("dmsdescription", rng.pick(DMS_TEXT))
    str("uuid", uuid(rng))
    str("updated_dt", timestamp(rng))
    str("created_dt", created)
    str("payTypes", rng.pick(PAY_TYPES))
    str("laborTypes", rng.pick(LABOR_TYPES))
    str("tagOrHat", format("T%04d", rng.int(1, 9999)))
    vehicle()
    num("signatureRequestID", id64(rng))
    num("paidAmount", amount(rng, 0, 500000))
    num("deliveryAmount", amount(rng, 0, 9999))
    str("customerSignatureUrl", signed and "https://sign.mykaarma.com/s/" .. token(rng, ALNUM, 32) or nil)
    dealer()
    int("numberOfInvoices", rng.int(0, 4))
    bool("paid", rng.chance(0.4))
    bool("paymentRequestSent", rng.chance(0.8))
    bool("paidOnline", rng.chance(0.3))
    raw("}")
  end

  local function lender(lender_id)
    local l = LENDERS[lender_id % #LENDERS + 1]
    key("lender"); open("{")
    int("id", lender_id)
    int("version", rng.int(0, 5))
    str("name", l[1], esc())
    str("description", l[2], esc())
    raw("}")
  end

  local function finance_events()
    key("financeEvents"); open("[")
    for i = 1, rng.int(1, 4) do
      if i > 1 then raw(",") end
      open("{")
      num("id", id64(rng))
      int("version", rng.int(0, 3))
      str("eventCode", rng.pick(EVENT_CODES))
      str("timeStamp", timestamp(rng))
      str("eventParam", rng.chance(0.35)
        and format('{"amount":"%s","channel":"%s"}', amount(rng, 100, 900000),
                   rng.pick({ "SMS", "EMAIL", "WEB" }))
        or nil)
      bool("isVisible", rng.chance(0.8))
      str("eventText", text(rng, 1) .. (rng.chance(0.1) and " 👍" or ""), esc())
      raw("}")
    end
    raw("]")
  end

  local function finance_offer_attributes(offer_id)
    key("financeOfferAttributes"); open("[")
    for i = 1, rng.int(1, 4) do
      if i > 1 then raw(",") end
      open("{")
      num("id", id64(rng))
      num("financeOfferId", offer_id)
      local option = rng.pick(ATTR_OPTIONS)
      str("option", option)
      local value
      if option == "term_months" then value = tostring(rng.pick({ 3, 6, 12, 18, 24, 36 }))
      elseif option == "apr" then value = format("%d.%02d", rng.int(0, 35), rng.int(0, 99))
      elseif option == "monthly_payment" then value = amount(rng, 1000, 90000)
      elseif option == "first_payment_date" then value = timestamp(rng):sub(1, 10)
      elseif option == "autopay" then value = rng.chance(0.5) and "true" or "false"
      else value = token(rng, ALNUM, rng.int(6, 16))
      end
      str("value", value)
      raw("}")
    end
    raw("]")
  end

  local function offer()
    local offer_id = id64(rng)
    local lender_id = rng.int(1, 40)
    local loan = rng.int(25000, 2500000)
    open("{")
    num("id", offer_id)
    int("version", rng.int(0, 12))
    str("dealerUUID", uuid(rng))
    str("dealerOrderUUID", uuid(rng))
    str("customerUUID", uuid(rng))
    str("url", "https://pay.mykaarma.com/fo/" .. token(rng, ALNUM, 22))
    str("guid", uuid(rng))
    num("foAmount", amount(rng, loan, loan + 50000))
    num("loanAmount", format("%d.%02d", loan // 100, loan % 100))
    num("maxFinanceAmount", amount(rng, loan + 50000, loan * 2 + 100000))
    num("loanFee", amount(rng, 0, 30000))
    str("lenderLoanID", format("LN-%d-%06d", rng.int(2023, 2025), rng.int(0, 999999)))
    int("lenderID", lender_id)
    -- One timeline per offer: created, then maybe signed, funded, deposited.
    local created = EPOCH_2023 + rng.int(0, 3 * 365 * 86400)
    local signed = rng.chance(0.55) and created + rng.int(600, 10 * 86400) or nil
    local funded = signed and rng.chance(0.7) and signed + rng.int(3600, 5 * 86400) or nil
    local deposited = funded and rng.chance(0.8) and funded + rng.int(3600, 3 * 86400) or nil
    str("expiryDate", timestamp(rng, created + 30 * 86400))
    str("docSignedTS", signed and timestamp(rng, signed))
    str("fundedTS", funded and timestamp(rng, funded))
    str("depositConfirmationDate", deposited and timestamp(rng, deposited))
    str("status", funded and "FUNDED" or signed and "DOCS_SIGNED" or rng.pick(OFFER_STATUS))
    str("callbackId", "cb_" .. token(rng, ALNUM, 18))
    bool("isActive", rng.chance(0.7))
    str("creationTS", timestamp(rng, created))
    customer()
    dealer_order(signed ~= nil)
    lender(lender_id)
    finance_events()
    finance_offer_attributes(offer_id)
    raw("}")
  end

  raw('{"financeOffers":[')
  for i = 1, n do
    if i > 1 then raw(",") end
    offer()
  end
  raw("]}")
  return concat(out)
end

-- Run as a script (not through require): print one payload.
local this_file = debug.getinfo(1, "S").source:match("^@(.*)$")
if arg and arg[0] == this_file then
  local n = math.tointeger(tonumber(arg[1]))
  local seed = math.tointeger(tonumber(arg[2] or "1"))
  if not n or n < 0 or not seed then
    io.stderr:write("usage: lua5.4 bench/gen.lua N [seed]\n")
    os.exit(2)
  end
  io.write(generate(n, seed), "\n")
end

return generate
