--- When to try again: backoff with jitter inside one deadline, and the
-- timeout each attempt gets.
-- @module kpayment.retry

local core = require("kpayment.core")
local parse_http_date = require("kpayment.time").parse_http_date

local type, tonumber = type, tonumber
local math_random, math_min, math_max, math_floor, math_huge =
  math.random, math.min, math.max, math.floor, math.huge
local os_time = os.time
local monotonic = core.monotonic

local M = {}

local BACKOFF_BASE, BACKOFF_CAP = 0.25, 8   -- seconds
local MIN_ATTEMPT = 0.1   -- a retry needs at least this long before the deadline

--- Seconds a Retry-After header asks to wait: delta-seconds, or an HTTP
-- date (`Wed, 21 Oct 2015 07:28:00 GMT`) measured from `now` (default
-- os.time()); nil when absent or unreadable.
function M.retry_after_seconds(v, now)
  if type(v) ~= "string" then return nil end
  local n = v:match("^%s*(%d+)%s*$")
  if n then return tonumber(n) end
  local t = parse_http_date(v)
  if not t then return nil end
  local wait = t - (now or os_time())
  return wait > 0 and wait or 0
end

--- Seconds to wait before another attempt after `err`, or nil for none:
-- exponential backoff with full jitter, at least what Retry-After asks
-- (both capped), and only while the deadline leaves room for an attempt.
function M.backoff(retries, err, attempts, retry_after, deadline_at)
  if not err.retryable or attempts > retries then return nil end
  local wait = math_random() * math_min(BACKOFF_CAP, BACKOFF_BASE * 2 ^ (attempts - 1))
  local asked = M.retry_after_seconds(retry_after)
  if asked then wait = math_max(wait, math_min(BACKOFF_CAP, asked)) end
  if deadline_at - monotonic() - wait < MIN_ATTEMPT then return nil end
  return wait
end

--- The timeout in milliseconds for an attempt: the configured one (`timeout`
-- seconds, 0 for none), cut to the deadline; -1 for none at all.
function M.attempt_timeout(timeout, deadline_at)
  local left = deadline_at - monotonic()
  if timeout > 0 and timeout < left then left = timeout end
  if left == math_huge then return -1 end
  return math_floor(math_max(left, 0.001) * 1000)
end

return M
