--[[
bench/instructions.lua -- instructions per call of the sequential candidates
of bench/http.lua, counted by valgrind's callgrind: the figures that the
noise of a shared machine does not move, beside bench/http.lua's req/s.

Run by `make bench-instructions` through bench/http-run.sh (nginx on
loopback serving the recorded responses).  By hand, from the repository root:

    bench/http-run.sh env LUA_PATH='lua/?.lua;lua/?/init.lua;bench/?.lua;;' \
      LUA_CPATH='build/5.4/?.so;;' lua5.4 bench/instructions.lua

Environment: BENCH_INSTR_OFFERS (sizes, default "1 10 100"),
BENCH_HTTP_GC (as bench/http.lua), and what http-run.sh sets.

Method:
  * Each candidate runs in a fresh process under callgrind twice, with n and
    3n calls; (I(3n) - I(n)) / 2n is its instructions per call, with the
    process's start, its connection and its first call cancelled out.
  * Candidates: the C client's discard and kpayment modes (bench/http_client.c),
    and bench/http.lua's children floor, decode, core and kp.
  * Counted: the client process's own user-space instructions, all libraries
    included.  Not counted: the kernel's work for it (socket calls) and
    nginx's.  So "of limit" here is the share of the limit's instructions,
    1 - (what the candidate adds to them) / (what it executes): what a
    client could still reach by executing less, on any machine.
  * The limit is bench/http.lua's, in instructions: the transport (C libcurl,
    body discarded) plus the floor (bench/floor.c building the tables).
]]

local common = require("common")

local format, concat = string.format, table.concat
local getenv = os.getenv

local die = common.dier("bench-instructions")
local HTTP_URL = common.need("BENCH_HTTP_URL", die)
local C_CLIENT = common.need("BENCH_HTTP_CLIENT", die)
local GC_MODE = common.gc_mode(die)
local LUA = arg[-1] or "lua5.4"

local SIZES = {}
for n in (getenv("BENCH_INSTR_OFFERS") or "1 10 100"):gmatch("%d+") do SIZES[#SIZES + 1] = tonumber(n) end
if #SIZES == 0 then die("BENCH_INSTR_OFFERS names no size") end

-- Calls of the shorter run, by size: about a second of callgrind each.
local function calls_for(offers)
  if offers <= 1 then return 50 end
  if offers <= 10 then return 20 end
  if offers <= 100 then return 4 end
  return 2
end

-- The command of a candidate making `calls` calls.
local function command(name, offers, calls)
  local q = common.shell_quote
  if name == "discard" or name == "kpayment" then
    return concat({ q(C_CLIENT), "-g", GC_MODE, name, q(common.api_url(HTTP_URL, offers)),
                    tostring(calls) }, " ")
  end
  return concat({ q(LUA), "bench/http.lua", "--child", name, tostring(offers), tostring(calls) }, " ")
end

-- Instructions of one run under callgrind.
local function collected(name, offers, calls)
  local cmd = concat({ "BENCH_HTTP_GC=" .. GC_MODE, "valgrind --tool=callgrind",
                       "--callgrind-out-file=/dev/null", command(name, offers, calls), "2>&1" }, " ")
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok = p:close()
  local n = out:match("Collected%s*:%s*(%d+)")
  if not ok or not n then die("failed: " .. cmd .. "\n" .. out) end
  return tonumber(n)
end

local function per_call(name, offers)
  local n = calls_for(offers)
  return (collected(name, offers, 3 * n) - collected(name, offers, n)) / (2 * n)
end

local ROWS = {
  { "discard", "C libcurl, body discarded (transport)" },
  { "floor", "floor: its tables built (bench/floor.c)" },
  { "decode", "kpayment.core.decode of the body, no HTTP" },
  { "kpayment", "C libcurl + kpayment.core.decode", true },
  { "core", "kpayment.core from Lua, no client around it", true },
  { "kp", "client:get_offers", true },
}

local function k(x) return format("%.1f K", x / 1000) end

print("kpayment instructions per call (bench/instructions.lua, valgrind's callgrind)")
print(format("machine: %s; collector: %s mode; the client process's user-space instructions",
  common.cpu_model(), GC_MODE))
for _, offers in ipairs(SIZES) do
  local got = {}
  for _, r in ipairs(ROWS) do
    io.stderr:write(format("bench-instructions: %d offers, %s\n", offers, r[1]))
    got[r[1]] = per_call(r[1], offers)
  end
  local limit = got.discard + got.floor
  print()
  print(format("%d offer%s (%d and %d calls per run)", offers, offers == 1 and "" or "s",
    calls_for(offers), 3 * calls_for(offers)))
  print(format("%-46s %14s %9s", "candidate", "instr/call", "of limit"))
  print(string.rep("-", 71))
  for _, r in ipairs(ROWS) do
    print(format("%-46s %14s %9s", r[2], k(got[r[1]]), r[3] and format("%.2f", limit / got[r[1]]) or ""))
  end
  print(format("  limit = transport + floor = %s + %s = %s", k(got.discard), k(got.floor), k(limit)))
  print(format("  get_offers = transport %s + floor %s + parsing %s + transfer and decode in one"
    .. " process %s + Lua driving the core %s + the client %s",
    k(got.discard), k(got.floor), k(got.decode - got.floor),
    k(got.kpayment - got.discard - got.decode), k(got.core - got.kpayment), k(got.kp - got.core)))
end
