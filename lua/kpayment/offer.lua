--- Convenience accessors on offers and on the offer list.
--
-- Offers keep the API's own field names; these methods are snake_case and
-- reached through `__index`, so they never shadow a field.  None of them
-- fails when a nested object is missing.
-- @module kpayment

local setmetatable, getmetatable, type, ipairs = setmetatable, getmetatable, type, ipairs
local math_floor, math_type, os_time = math.floor, math.type, os.time
local string_format = string.format
local table_concat = table.concat
local core = require("kpayment.core")
local parse_time = require("kpayment.time").parse_time

local M = {}

local Offer = {}
Offer.__index = Offer
Offer.__name = "kpayment.Offer"

local OfferList = {}
OfferList.__index = OfferList
OfferList.__name = "kpayment.OfferList"

local function field(t, ...)
  for _, k in ipairs({ ... }) do
    if type(t) ~= "table" then return nil end
    t = t[k]
  end
  return t
end

-- The decimal digits of an integral number held exactly (any integer on
-- 5.3+, up to 2^53 in magnitude otherwise), or nil.
local function digits(n)
  if math_type and math_type(n) == "integer" then return string_format("%d", n) end
  if n == math_floor(n) and n >= -2^53 and n <= 2^53 then return string_format("%.0f", n) end
  return nil
end

local function text(v)
  if type(v) == "string" and v ~= "" then return v end
  -- whole floats without ".0": 2021.0 reads "2021" on 5.3+ as on 5.1
  if type(v) == "number" then return digits(v) or tostring(v) end
  return nil
end

--- One offer: a table with every field of the API's response under the
-- API's own names (`offer.id`, `offer.foAmount`,
-- `offer.dealerOrder.vehicle.brand.brandName`, …), fields the API
-- reference does not list included, and these methods.  The methods are
-- snake_case and reached through the metatable, so they never hide a
-- field; none fails when a nested object is missing.
-- @type Offer

--- Whether the API marks the offer active: `isActive == true`.
-- @treturn boolean
function Offer:is_active()
  return self.isActive == true
end

--- The expiry (`expiryDate`) as epoch seconds with milliseconds
-- (`1743161686.759`), independent of the process's time zone.
-- @treturn ?number nil when absent or unreadable
function Offer:expires_at()
  return parse_time(self.expiryDate)
end

--- Whether the offer's expiry is at or before `now`.  An offer without an
-- expiry (absent or `null`) never expires: false.  One whose expiry cannot
-- be read (`kpayment.parse_time`) gives nil, neither expired nor not:
-- test `== false` before showing an offer as current.
-- @tparam[opt=os.time()] number now epoch seconds
-- @treturn ?boolean
function Offer:is_expired(now)
  local at = self.expiryDate
  if at == nil or at == core.null then return false end
  local t = parse_time(at)
  if t == nil then return nil end
  return t <= (now or os_time())
end

--- The `value` of the `financeOfferAttributes` entry whose `option` is
-- `option`.
-- @param option the attribute's name, as the API gives it
-- @return the value, or nil when there is no such entry
function Offer:attribute(option)
  local attrs = self.financeOfferAttributes
  if type(attrs) ~= "table" or option == nil then return nil end
  for _, a in ipairs(attrs) do
    if type(a) == "table" and a.option == option then return a.value end
  end
  return nil
end

local function join(parts)
  local out = {}
  for i = 1, #parts do
    local v = text(parts[i])
    if v then out[#out + 1] = v end
  end
  return table_concat(out, " ")
end

--- The customer's name, `"First Middle Last"` from `customer`, skipping
-- missing parts.
-- @treturn string `""` when there is none
function Offer:customer_name()
  local c = self.customer
  return join({ field(c, "firstName"), field(c, "middleName"), field(c, "lastName") })
end

--- The vehicle, `"Year Make Model"` from `dealerOrder.vehicle`, such as
-- `"2021 Toyota Camry"` (the make falls back to the brand's name).
-- @treturn string `""` when there is none
function Offer:vehicle_label()
  local v = field(self, "dealerOrder", "vehicle")
  local make = text(field(v, "make")) or field(v, "brand", "brandName")
  return join({ field(v, "year"), make, field(v, "model") })
end

-- List -> its result metadata, beside the list so that the list itself
-- stays a plain sequence (pairs and comparisons see only offers).
local metas = setmetatable({}, { __mode = "k" })

--- The offers of one call: a sequence (`#offers`, `ipairs`) of `Offer`
-- tables, empty when the response has no offers, with these methods.  The
-- list itself holds only the offers.
-- @type OfferList

--- What the call that returned this list went through.
-- @treturn table `status` (HTTP status), `attempts`, `request_id` (from
-- `X-Request-Id` or `X-Correlation-Id`, when the server sent one),
-- `total_time` (seconds, all attempts together), `warnings` (the
-- response's, if any), `joined` (`true` when the call joined one already
-- in flight on its client, `false` when it made the call, nil when it did
-- not share: the `coalesce` option)
function OfferList:meta()
  return metas[self]
end

--- Attach (or read, without `meta`) the metadata of list.
-- @local
function M.meta(list, meta)
  if meta ~= nil then metas[list] = meta end
  return metas[list]
end

--- The active offers (`Offer:is_active`).
-- @treturn OfferList a new list, with the same `meta`
function OfferList:active()
  local out = setmetatable({}, OfferList)
  metas[out] = metas[self]
  for _, o in ipairs(self) do
    -- through the module, never o:is_active(): server data may shadow it
    if type(o) == "table" and Offer.is_active(o) then out[#out + 1] = o end
  end
  return out
end

-- Ids compare as numbers or as their digits: without 64-bit integers the
-- decoder gives ids above 2^53 as strings, so "9007199254740993" finds the
-- offer on every Lua, and 9007199254740993 on 5.3+.
local function same_id(a, b)
  if a == b then return true end
  if type(a) == "number" and type(b) == "string" then return digits(a) == b end
  if type(a) == "string" and type(b) == "number" then return digits(b) == a end
  return false
end

--- The offer with this `id` (or `guid`).  Ids compare exactly, even above
-- 2^53, as numbers or as their digits: `find("9007199254740993")` finds that
-- offer on every Lua; `find(9007199254740993)` on Lua 5.3 and later.
-- @tparam number|string id an id, its digits, or a guid
-- @treturn ?Offer nil when there is none
function OfferList:find(id)
  if id == nil then return nil end
  for _, o in ipairs(self) do
    if type(o) == "table" and (same_id(o.id, id) or o.guid == id) then return o end
  end
  return nil
end

-- The core gives each record this metatable as it builds it, within the
-- decode's own steps: a pass over 10 000 offers at the end would cost one
-- frame several milliseconds.
core.record_metatable(Offer)

--- Give a decoded `financeOffers` array its metatables (in place).  A
-- request's records already have theirs, from the core.
-- @local
function M.wrap(list)
  if getmetatable(list[1]) ~= Offer then
    for i = 1, #list do
      if type(list[i]) == "table" then setmetatable(list[i], Offer) end
    end
  end
  return setmetatable(list, OfferList)
end

M.Offer, M.OfferList = Offer, OfferList
return M
