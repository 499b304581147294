--[[
bench/decode.lua -- how fast kpayment.core.decode turns a response into tables,
beside Debian's lua-cjson 2.1.0 and dkjson (pure Lua).

Run from the repository root (make bench does this, under Lua 5.4 and then
under LuaJIT):

    LUA_PATH='lua/?.lua;lua/?/init.lua;bench/?.lua;;' LUA_CPATH='build/5.4/?.so;;' \
      lua5.4 bench/decode.lua [max_offers]
    LUA_PATH=... LUA_CPATH='build/luajit/?.so;;' luajit bench/decode.lua [max_offers]

max_offers (default 10000) drops the larger payload sizes, for a quick look.
The script runs on Lua 5.4 and on LuaJIT 2.1.  bench/gen.lua needs 5.4's
integers, so elsewhere the payloads come from a `lua5.4 bench/gen.lua`
child (BENCH_GEN_LUA names another 5.4 interpreter): the same bytes.  With
BENCH_SUMMARY set, each size's ratios are appended to that file, for
bench/decode-summary.lua to put the interpreters side by side.

Method, and why:
  * Payloads of 1 to 10 000 offers from bench/gen.lua (fixed seed), so every
    run and every machine decodes the same bytes.
  * All candidates run in this one process, in alternating rounds (the order
    rotates each round): on a shared 2-core machine the speed drifts by up to
    2x over a minute, and interleaving makes the drift hit every candidate
    alike.  Ratios are the median of per-round ratios (the cjson round and the
    candidate's round of the same round number ran seconds apart at most).
  * os.clock() is process CPU time: time the scheduler gives to neighbours is
    not counted, which is most of the noise on such machines.
  * Two figures per candidate.  "decode": a full collection before the round,
    then the collector stopped while timing, so the figure is the decoder's own
    work.  "with GC": the collector runs as in an application and a full
    collection at the end of the round is counted, so the cost of the garbage
    each decoder leaves (its tables, and any temporaries) is included.
    The two figures alternate which goes first, round by round.
  * Small payloads are decoded many times per round so a round lasts about
    ROUND_TARGET seconds, far above the clock's resolution; a payload whose
    one decode takes longer is decoded once per round.
Before any timing, kpayment's result must equal cjson's (see compare()); a
difference aborts the run.
]]

local common = require("common")
local core = require("kpayment.core")
local cjson = require("cjson")
local has_gen, gen = pcall(require, "gen")
local has_dkjson, dkjson = pcall(require, "dkjson")
-- Without 64-bit integers (LuaJIT), kpayment gives integers above 2^53 as
-- strings of their digits, and math.type does not exist.
local INT64 = math.type ~= nil
local mtype = math.type or function(x)
  if type(x) ~= "number" then return nil end
  return x % 1 == 0 and "integer" or "float"
end
-- dkjson (pure Lua) is timed under Lua 5.4 only: the LuaJIT run is about
-- kpayment against cjson.
if not INT64 then has_dkjson = false end

local clock, format = os.clock, string.format

local SEED = 20250328
local ROUND_TARGET = 0.025                  -- seconds of decoding per timed round
local PLAN = {                              -- offers, rounds
  { 1, 31 }, { 10, 31 }, { 100, 25 }, { 1000, 21 }, { 10000, 15 },
}
local PEAK_OFFERS = 10000
-- dkjson is skipped at a size where its timed rounds alone would take longer.
local DKJSON_BUDGET = 30                    -- seconds
local PROJ_FIELDS = { "id", "status", "foAmount", "expiryDate", "customer.lastName" }

local started_wall, started_cpu = os.time(), clock()

---------------------------------------------------------------------------
-- Small helpers.
---------------------------------------------------------------------------


-- Errors of the command go to our stderr only when show_errors is set.
local function command_output(cmd, show_errors)
  local p = io.popen(show_errors and cmd or cmd .. " 2>/dev/null")
  if not p then return nil end
  local out = p:read("a")
  p:close()
  out = out and out:gsub("%s+$", "")
  return out ~= "" and out or nil
end


-- The interpreter this script runs under, for the child processes.
local function interpreter()
  local i = -1
  while arg[i - 1] do i = i - 1 end
  return arg[i] or "lua5.4"
end

local function median(t)
  local s = table.move(t, 1, #t, 1, {})
  table.sort(s)
  local n = #s
  local h = math.floor(n / 2)
  if n % 2 == 1 then return s[h + 1] end
  return (s[h] + s[h + 1]) / 2
end

local function quantile(t, q)
  local s = table.move(t, 1, #t, 1, {})
  table.sort(s)
  local pos = 1 + (#s - 1) * q
  local lo = math.floor(pos)
  local hi = math.min(lo + 1, #s)
  return s[lo] + (s[hi] - s[lo]) * (pos - lo)
end

local function fmt_size(bytes)
  if bytes >= 1e6 then return format("%.2f MB", bytes / 1e6) end
  return format("%.1f KB", bytes / 1e3)
end

local function fmt_ms(seconds)
  local ms = seconds * 1e3
  if ms < 0.1 then return format("%.4f", ms) end
  if ms < 10 then return format("%.3f", ms) end
  if ms < 1000 then return format("%.1f", ms) end
  return format("%.0f", ms)
end

-- The payload of n offers: bench/gen.lua in this process where it runs
-- (Lua 5.4), else its script form in a Lua 5.4 child.
local function generate(n, seed)
  if has_gen then return gen(n, seed) end
  local lua54 = os.getenv("BENCH_GEN_LUA") or "lua5.4"
  local text = command_output(format("%s bench/gen.lua %d %d", common.shell_quote(lua54), n, seed), true)
  if not text or text:sub(1, 1) ~= "{" then
    error("bench/gen.lua under " .. lua54 .. " gave no payload (set BENCH_GEN_LUA to a Lua 5.4)", 0)
  end
  return text
end

---------------------------------------------------------------------------
-- Result comparison.
---------------------------------------------------------------------------

-- Walks a (kpayment) and b (the reference) together and raises an error at
-- the first difference, naming its path.  Numbers compare with ==, which in
-- Lua 5.4 compares integers and floats by exact value.  Two documented
-- differences of the reference are allowed when loose is set, and counted:
--   * Debian's lua-cjson 2.1.0 reads every number as a double, so an integer
--     above 2^53 arrives rounded; kpayment keeps it exact.  Allowed only when
--     the rounding of kpayment's integer is exactly cjson's float.
--   * kpayment leaves an object member that is null out of the table, cjson
--     stores cjson.null.  (A null array element must be core.null in both.)
local function compare(a, b, loose, counts, path)
  local ta, tb = type(a), type(b)
  if ta == "number" and tb == "number" then
    if a == b and (loose or mtype(a) == mtype(b)) then return end
    if loose and mtype(a) == "integer" and mtype(b) == "float"
        and (a > 2^53 or a < -2^53) and a + 0.0 == b then
      counts.rounded = counts.rounded + 1
      return
    end
  elseif ta == "string" and tb == "number" and not INT64 then
    -- kpayment's exact digits, the reference's rounded double.
    if a:match("^%-?%d+$") and (b >= 2^53 or b <= -2^53) and tonumber(a) == b then
      counts.rounded = counts.rounded + 1
      return
    end
  elseif ta == "table" and tb == "table" then
    for k, vb in pairs(b) do
      local va = rawget(a, k)
      local kpath = path .. (mtype(k) == "integer" and "[" .. k .. "]" or "." .. tostring(k))
      if va == nil and vb == cjson.null and loose and type(k) == "string" then
        counts.nulls = counts.nulls + 1
      else
        compare(va, vb, loose, counts, kpath)
      end
    end
    for k in pairs(a) do
      if rawget(b, k) == nil then
        error(format("results differ at %s.%s: key only in the kpayment result", path, tostring(k)), 0)
      end
    end
    return
  elseif a == b then
    return
  end
  error(format("results differ at %s: %s (%s) vs %s (%s)", path,
    tostring(a), mtype(a) or ta, tostring(b), mtype(b) or tb), 0)
end

local function check_same(a, b, loose, what)
  local counts = { rounded = 0, nulls = 0 }
  local ok, err = pcall(compare, a, b, loose, counts, "$")
  if not ok then error("sanity check failed (" .. what .. "): " .. err, 0) end
  return counts
end

---------------------------------------------------------------------------
-- Optional parts of the core: projection and the floor.
---------------------------------------------------------------------------

-- Projection is supported when decode(text, {fields = ...}) keeps, in each
-- offer, exactly the listed fields ("customer.lastName" keeping only that
-- member of customer) with their full-decode values.
local function offer_is_projected(p, full)
  if type(p) ~= "table" or type(p.customer) ~= "table" then return false end
  for k in pairs(p) do
    if not (k == "id" or k == "status" or k == "foAmount" or k == "expiryDate" or k == "customer") then
      return false
    end
  end
  if next(p.customer) ~= "lastName" or next(p.customer, "lastName") ~= nil then return false end
  return p.id == full.id and p.status == full.status and p.foAmount == full.foAmount
    and p.expiryDate == full.expiryDate and p.customer.lastName == full.customer.lastName
end

local function projection_works(text)
  local ok, r = pcall(core.decode, text, { fields = PROJ_FIELDS })
  if not ok or type(r) ~= "table" or type(r.financeOffers) ~= "table" then return false end
  local full = core.decode(text)
  if #r.financeOffers ~= #full.financeOffers then return false end
  for i, offer in ipairs(full.financeOffers) do
    if not offer_is_projected(r.financeOffers[i], offer) then return false end
  end
  return true
end

local PROBE = '{"financeOffers":[{"id":7,"url":"u","status":"OFFERED","foAmount":12.5,'
  .. '"expiryDate":"2025-03-28T11:34:46.759Z","customer":{"firstName":"A","lastName":"B"}}]}'
local has_projection = projection_works(PROBE)

-- The floor is what building the same tables costs with nothing left to
-- parse: a lower bound for any decoder that produces these tables.  It needs
-- the tables built from C, as a decoder builds them (a Lua loop pays the
-- interpreter per value, so it would be slower than a C decoder and no
-- floor at all): bench/floor.c, built beside the core by `make bench`,
-- tapes a decoded value once and returns rebuild(), which builds one fresh
-- copy of the tables from the tape each call.
local has_floor, floor = pcall(require, "kpayment_floor")

---------------------------------------------------------------------------
-- Timing.
---------------------------------------------------------------------------

-- One loop per arity: cjson.decode refuses a second argument, even nil.
local function loop0(f, _, _, n) for _ = 1, n do f() end end
local function loop1(f, a, _, n) for _ = 1, n do f(a) end end
local function loop2(f, a, b, n) for _ = 1, n do f(a, b) end end

-- Seconds per call for one round of c.inner calls.
local function timed_round(c, with_gc)
  local loop, f, a, b, n = c.loop, c.fn, c.a, c.b, c.inner
  collectgarbage()
  if with_gc then
    local t0 = clock()
    loop(f, a, b, n)
    collectgarbage()
    return (clock() - t0) / n
  end
  collectgarbage("stop")
  local t0 = clock()
  loop(f, a, b, n)
  local t = clock() - t0
  collectgarbage("restart")
  return t / n
end

-- Calls per round for about ROUND_TARGET seconds of work (at least one).
local function calibrate(c)
  c.loop(c.fn, c.a, c.b, 1)                    -- warm caches and the string table
  local n = 1
  while true do
    collectgarbage()
    collectgarbage("stop")
    local t0 = clock()
    c.loop(c.fn, c.a, c.b, n)
    local t = clock() - t0
    collectgarbage("restart")
    if t >= ROUND_TARGET / 4 then
      return math.max(1, math.ceil(n * ROUND_TARGET / t))
    end
    n = n * 4
  end
end

local function run_size(cands, rounds)
  for _, c in ipairs(cands) do
    c.inner = calibrate(c)
    c.t, c.tgc = {}, {}
  end
  local m = #cands
  for r = 1, rounds do
    for j = 0, m - 1 do
      local c = cands[(r + j - 1) % m + 1]     -- a different candidate leads each round
      local gc_first = r % 2 == 0
      if gc_first then c.tgc[r] = timed_round(c, true) end
      c.t[r] = timed_round(c, false)
      if not gc_first then c.tgc[r] = timed_round(c, true) end
    end
  end
end

-- Median over rounds of reference time / candidate time.
local function paired_ratio(ref, cand)
  local q = {}
  for r = 1, #cand do q[r] = ref[r] / cand[r] end
  return median(q)
end

---------------------------------------------------------------------------
-- Peak memory, one child process per candidate.
---------------------------------------------------------------------------

local function peak_of(lua, candidate, file)
  local line = command_output(format("%s bench/peak.lua %s %s", common.shell_quote(lua),
    candidate, common.shell_quote(file)), true)
  if not line then return nil end
  local r = {}
  for k, v in line:gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) or v end
  if not (r.hwm_before and r.hwm_after) then return nil end
  return r
end

---------------------------------------------------------------------------
-- Report.
---------------------------------------------------------------------------

local lua = interpreter()
local lua_name = (command_output(common.shell_quote(lua) .. " -v") or _VERSION):match("^Lua%S* %S+")
  or _VERSION
local summary = os.getenv("BENCH_SUMMARY")
summary = summary and summary ~= "" and assert(io.open(summary, "a"))
local cpu_model = common.cpu_model()
-- Lua 5.4 names its collector's mode (and switching returns the old one);
-- LuaJIT's is incremental and has no such option.
local has_modes, gc_mode = pcall(collectgarbage, "incremental")
if has_modes then collectgarbage(gc_mode) else gc_mode = "incremental" end
local cjson_deb = command_output("dpkg-query -W -f='${Version}' lua-cjson")

print("kpayment decode benchmark")
print(format("machine:  %s CPU(s), %s; load average %s", command_output("nproc") or "?", cpu_model,
  common.load_average()))
print(format("software: %s; kpayment %s; lua-cjson %s%s; %s",
  lua_name,
  core._VERSION or "?", cjson._VERSION or "?",
  cjson_deb and " (Debian " .. cjson_deb .. ")" or "",
  has_dkjson and "dkjson " .. tostring(dkjson.version):gsub("^dkjson ", "") .. " (pure Lua, no LPeg)"
    or INT64 and "dkjson not installed" or "dkjson not timed (Lua 5.4 only)"))
print(format("method:   CPU time (os.clock), medians over interleaved rounds of >= %.0f ms; "
  .. "GC %s mode, default parameters", ROUND_TARGET * 1e3, gc_mode))
print("          'decode': collector stopped while timing; 'with GC': collector running, "
  .. "final full collection counted")
print("          vs cjson = cjson time / candidate time (median of per-round ratios): "
  .. "> 1 means faster than cjson")
print("          1 KB = 1000 bytes, MB/s = 10^6 bytes of payload per second")
print("          spread = half the interquartile range of 'decode' rounds, in % of their median")
print(format("floor:    %s", has_floor and "bench/floor.c (C: the same tables rebuilt from a parsed tape)"
  or "n/a (kpayment_floor not built)"))
print(format("projection: %s", has_projection
  and "decode(text, {fields = {" .. table.concat(PROJ_FIELDS, ", ") .. "}}) vs cjson full decode"
  or "n/a (decode(text, {fields = ...}) does not project)"))
print()

local header = format("%-8s %-9s %-12s %10s %7s %9s %12s %9s %7s",
  "offers", "size", "candidate", "ms/decode", "MB/s", "vs cjson", "with GC: ms", "vs cjson", "spread")
print(header)
print(string.rep("-", #header))

local notes = {}
local peak_payload                             -- { file, size } of the payload for peak RSS
local dkjson_per_offer                         -- seconds, from the last size dkjson ran at

-- One payload size: check, time, print.  A function of its own so that the
-- payload and every result are garbage once it returns.
local function bench_size(offers, rounds)
  local text = generate(offers, SEED)
  local size = #text

  -- Sanity before timing: same data from kpayment and cjson (and dkjson,
  -- which leaves nulls out and keeps integers exact, as kpayment does).
  local kp_result = core.decode(text)
  local counts = check_same(kp_result, cjson.decode(text), true, "kpayment vs cjson, " .. offers .. " offers")

  local cands = {
    { name = "kpayment", fn = core.decode, a = text, loop = loop1 },
    { name = "cjson", fn = cjson.decode, a = text, loop = loop1 },
  }
  if has_dkjson then
    local projected = dkjson_per_offer and dkjson_per_offer * offers * 2 * rounds
    if projected and projected > DKJSON_BUDGET then
      notes[#notes + 1] = format("dkjson skipped at %d offers: about %.1f s per decode (projected), "
        .. "%d rounds x 2 figures would take about %.0f s",
        offers, dkjson_per_offer * offers, rounds, projected)
    else
      check_same(kp_result, dkjson.decode(text), false, "kpayment vs dkjson, " .. offers .. " offers")
      cands[#cands + 1] = { name = "dkjson", fn = dkjson.decode, a = text, loop = loop1 }
    end
  end
  if has_floor then
    local rebuild = floor.tape(core.decode(text))
    check_same(rebuild(), kp_result, false, "floor rebuild vs kpayment, " .. offers .. " offers")
    cands[#cands + 1] = { name = "floor", fn = rebuild, loop = loop0 }
  end
  if has_projection then
    if not projection_works(text) then
      error("sanity check failed: projection result differs on " .. offers .. " offers", 0)
    end
    cands[#cands + 1] = { name = "kp projected", fn = core.decode, a = text,
      b = { fields = PROJ_FIELDS }, loop = loop2 }
  end
  kp_result = nil                              -- luacheck: ignore 311 (garbage before timing)

  run_size(cands, rounds)

  local ref = cands[2]                         -- cjson
  local per_round = {}
  for i, c in ipairs(cands) do
    local t, tgc = median(c.t), median(c.tgc)
    local spread = (quantile(c.t, 0.75) - quantile(c.t, 0.25)) / 2 / t * 100
    print(format("%-8s %-9s %-12s %10s %7.0f %9.2f %12s %9.2f %6.1f%%",
      i == 1 and tostring(offers) or "", i == 1 and fmt_size(size) or "", c.name,
      fmt_ms(t), size / t / 1e6, paired_ratio(ref.t, c.t), fmt_ms(tgc),
      paired_ratio(ref.tgc, c.tgc), spread))
    if c.name == "dkjson" then dkjson_per_offer = t / offers end
    per_round[i] = c.name .. " " .. c.inner
    if summary then
      summary:write(format("%s\t%d\t%s\t%.4f\t%.4f\n", lua_name, offers, c.name,
        paired_ratio(ref.t, c.t), paired_ratio(ref.tgc, c.tgc)))
    end
  end
  if summary then summary:flush() end
  print(format("%-8s %-9s (%d rounds; calls per round: %s; sanity: %d integers > 2^53 rounded by cjson, "
    .. "%d null members)", "", "", rounds, table.concat(per_round, ", "), counts.rounded, counts.nulls))

  if offers == PEAK_OFFERS then
    os.execute("mkdir -p build/bench")
    local file = format("build/bench/payload-%d.json", offers)
    local f = assert(io.open(file, "wb"))
    f:write(text)
    f:close()
    peak_payload = { file = file, size = size }
  end
end

local max_offers = tonumber(arg[1] or "") or PLAN[#PLAN][1]
for _, step in ipairs(PLAN) do
  if step[1] <= max_offers then
    bench_size(step[1], step[2])
    collectgarbage()
  end
end

for _, n in ipairs(notes) do print("note: " .. n) end

-- Peak RSS, each decoder alone in a fresh process on the largest payload.
if peak_payload then
  print()
  print(format("peak RSS of one decode, %d offers (%s), each in its own process "
    .. "(vs cjson = cjson increase / candidate increase: > 1 means less memory)", PEAK_OFFERS,
    fmt_size(peak_payload.size)))
  local h = format("%-12s %12s %14s %12s %10s %9s", "candidate", "before: MB", "peak after: MB",
    "increase: MB", "x payload", "vs cjson")
  print(h)
  print(string.rep("-", #h))
  local names = { "kpayment", "cjson" }
  if has_dkjson then names[#names + 1] = "dkjson" end
  local res = {}
  for _, name in ipairs(names) do res[name] = peak_of(lua, name, peak_payload.file) end
  local ref = res.cjson and (res.cjson.hwm_after - res.cjson.hwm_before)
  for _, name in ipairs(names) do
    local r = res[name]
    if r then
      local inc = r.hwm_after - r.hwm_before
      -- /proc reports kB of 1024 bytes; printed MB are 10^6 bytes like the payload's.
      print(format("%-12s %12.1f %14.1f %12.1f %10.2f %9s%s", name, r.hwm_before * 1024 / 1e6,
        r.hwm_after * 1024 / 1e6, inc * 1024 / 1e6, inc * 1024 / peak_payload.size,
        ref and format("%.2f", ref / inc) or "n/a",
        r.reset == "yes" and "" or "  (peak not reset before decoding: increase understated)"))
    else
      print(format("%-12s %s", name, "failed (see bench/peak.lua)"))
    end
  end
  print("(VmHWM of the child; 'before' already holds the payload string and the loaded library)")
end

print()
print(format("total: %d s wall, %.1f s CPU", os.time() - started_wall, clock() - started_cpu))
