--[[
bench/decode-summary.lua -- the last table of `make bench`: each
interpreter's decode ratios against lua-cjson side by side, one column
pair per interpreter, read from the file bench/decode.lua appends to when
BENCH_SUMMARY names it (lines: interpreter, offers, candidate, ratio,
ratio with GC).

    lua5.4 bench/decode-summary.lua build/bench/decode-summary.tsv

Ratios are cjson time / candidate time ('decode' figures; > 1 is faster),
each measured against cjson under the same interpreter in the same run.
]]

local format = string.format

-- Targets of kpayment against cjson under LuaJIT, by payload size.
local LUAJIT_TARGETS = { [10] = 2.5, [1000] = 2.0 }

local path = arg[1]
local f = path and io.open(path, "r")
if not f then
  io.stderr:write("usage: lua5.4 bench/decode-summary.lua <summary file of bench/decode.lua>\n")
  os.exit(2)
end

local luas, sizes, seen, ratio = {}, {}, {}, {}
for line in f:lines() do
  local lua, offers, cand, r = line:match("^([^\t]+)\t(%d+)\t([^\t]+)\t([%d.]+)\t")
  if lua then
    offers = tonumber(offers)
    if not ratio[lua] then luas[#luas + 1] = lua; ratio[lua] = {} end
    if not seen[offers] then seen[offers] = true; sizes[#sizes + 1] = offers end
    ratio[lua][offers .. " " .. cand] = tonumber(r)
  end
end
f:close()
if #luas == 0 then
  print("decode summary: no figures")
  return
end
table.sort(sizes)

local function cell(lua, offers, cand)
  local r = ratio[lua][offers .. " " .. cand]
  return r and format("%.2fx", r) or "-"
end

print("kpayment.core.decode against cjson.decode under each interpreter, same run "
  .. "(cjson time / candidate time, collector stopped; > 1 is faster)")
local cols = { "offers" }
for _, lua in ipairs(luas) do
  cols[#cols + 1] = lua .. ": kpayment"
  cols[#cols + 1] = "floor"
  cols[#cols + 1] = "projected"
end
local widths = {}
for i, c in ipairs(cols) do widths[i] = math.max(#c, 8) end
local function row(cells)
  local out = {}
  for i, c in ipairs(cells) do
    out[i] = format((i == 1 and "%-" or "%") .. widths[i] .. "s", c)
  end
  return table.concat(out, "  ")
end
local header = row(cols)
print(header)
print(string.rep("-", #header))
for _, offers in ipairs(sizes) do
  local cells = { tostring(offers) }
  for _, lua in ipairs(luas) do
    cells[#cells + 1] = cell(lua, offers, "kpayment")
    cells[#cells + 1] = cell(lua, offers, "floor")
    cells[#cells + 1] = cell(lua, offers, "kp projected")
  end
  print(row(cells))
end

-- The issue's targets under LuaJIT (reported, not asserted).
for _, lua in ipairs(luas) do
  if lua:match("^LuaJIT") then
    print()
    print("Targets under " .. lua .. " (reported, not asserted):")
    for _, offers in ipairs(sizes) do
      local want, got = LUAJIT_TARGETS[offers], ratio[lua][offers .. " kpayment"]
      if want and got then
        print(format("  kpayment vs cjson at %5d offers: %.2fx, target >= %.1fx: %s", offers, got, want,
          got >= want and "met" or "NOT met"))
      end
    end
  end
end
