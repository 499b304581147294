--[[
bench/peak.lua -- peak resident memory of one decode, in a process of its own.

    lua5.4 bench/peak.lua <kpayment|cjson|dkjson> <payload-file>

Prints one line of key=value pairs (sizes in kB, from /proc/self/status):
hwm_before, hwm_after (VmHWM, the peak RSS), rss_before, rss_after, reset
(whether the peak could be reset to the current RSS before decoding) and
cpu_s (the decode's CPU time).

A process of its own because a heap that earlier rounds have grown and
fragmented hides the cost of the next decode: the peak only moves once the
allocator runs out of free pages.  Reading the payload with io.read("a")
itself peaks at a few times its size (the buffer grows by doubling), so the
peak is reset afterwards (writing 5 to /proc/self/clear_refs, Linux >= 4.0)
and the decode's own increase is hwm_after - hwm_before.  Where the reset is
refused, hwm_before still includes the read and the increase can only be
understated; reset=no says so.
]]

local candidate, path = arg[1], arg[2]

local decoders = {
  kpayment = function() return require("kpayment.core").decode end,
  cjson = function() return require("cjson").decode end,
  dkjson = function() return require("dkjson").decode end,
}
if not (decoders[candidate] and path) then
  io.stderr:write("usage: lua5.4 bench/peak.lua <kpayment|cjson|dkjson> <payload-file>\n")
  os.exit(2)
end

-- Load the library before the first reading: its code and data are not the
-- decode's memory.
local decode = decoders[candidate]()

local function status()
  local f = assert(io.open("/proc/self/status", "r"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmHWM:%s*(%d+)")), tonumber(s:match("VmRSS:%s*(%d+)"))
end

local f = assert(io.open(path, "rb"))
local text = f:read("a")
f:close()
collectgarbage()
collectgarbage()

local reset = false
local cr = io.open("/proc/self/clear_refs", "w")
if cr then
  reset = cr:write("5") ~= nil
  reset = cr:close() and reset
end

local hwm_before, rss_before = status()
local t0 = os.clock()
local result = decode(text)   -- the collector runs as it would in an application
local cpu = os.clock() - t0
local hwm_after, rss_after = status()

-- The result stays referenced until after the second reading.
assert(type(result) == "table" and result.financeOffers, "decode returned no offers")
io.write(string.format("hwm_before=%d hwm_after=%d rss_before=%d rss_after=%d reset=%s cpu_s=%.3f\n",
  hwm_before, hwm_after, rss_before, rss_after, reset and "yes" or "no", cpu))
