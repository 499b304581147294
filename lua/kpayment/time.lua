--- Time stamps as the API and HTTP write them, read without `os.time` (so
-- without the machine's time zone): ISO 8601 for the offers' dates, and
-- the HTTP date a `Retry-After` may carry.
-- @module kpayment.time
-- @local

local type, tonumber = type, tonumber
local math_floor = math.floor

local M = {}

-- Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
-- days_from_civil), in plain arithmetic: no os.time, so no TZ dependence.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math_floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = math_floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math_floor(yoe / 4) - math_floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local DAYS_IN_MONTH = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function days_in_month(y, m)
  if m == 2 and y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0) then return 29 end
  return DAYS_IN_MONTH[m]
end

--- Parse an ISO-8601 timestamp (`2025-03-28T11:34:46.759Z`, with a
-- `+hh:mm`, `+hhmm` or `+hh` offset, or with no zone, read as UTC as the
-- API writes every time) into epoch seconds, fractions kept
-- (kpayment.parse_time).
-- @return number, or nil when the text is not such a timestamp
function M.parse_time(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec, rest =
    s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  y, mo, d, h, mi, sec = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(sec)
  if mo < 1 or mo > 12 or d < 1 or d > days_in_month(y, mo) or h > 23 or mi > 59 or sec > 60 then
    return nil
  end
  local frac, zone = rest:match("^(%.%d+)(.*)$")
  if not frac then frac, zone = "", rest end
  local offset = 0
  if zone ~= "" and zone ~= "Z" and zone ~= "z" then
    local sign, oh, om = zone:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then
      sign, oh = zone:match("^([+-])(%d%d)$")
      om = "00"
    end
    if not sign or tonumber(oh) > 23 or tonumber(om) > 59 then return nil end
    offset = (tonumber(oh) * 60 + tonumber(om)) * 60
    if sign == "-" then offset = -offset end
  end
  local t = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + sec - offset
  if frac ~= "" then t = t + tonumber("0" .. frac) end
  return t
end

local MONTHS = { Jan = "01", Feb = "02", Mar = "03", Apr = "04", May = "05", Jun = "06",
                 Jul = "07", Aug = "08", Sep = "09", Oct = "10", Nov = "11", Dec = "12" }

--- Parse an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`, RFC 9110's
-- preferred form) into epoch seconds.
-- @return number, or nil when the text is not such a date
function M.parse_http_date(s)
  if type(s) ~= "string" then return nil end
  local d, mon, y, hms = s:match("^%a%a%a, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d:%d%d:%d%d) GMT$")
  return d and MONTHS[mon] and M.parse_time(y .. "-" .. MONTHS[mon] .. "-" .. d .. "T" .. hms .. "Z") or nil
end

return M
