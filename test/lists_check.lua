-- One fact, one place: the facts that are written once and read (or
-- repeated) elsewhere, checked against their one source.  Run by make lint:
--
--   lua5.4 test/lists_check.lua SRCS_ELSEWHERE PACKAGES
--
-- SRCS_ELSEWHERE: the Makefile's C files of src/ that are not kpayment.core's;
-- PACKAGES: the Debian packages of the goals CI runs, under every Lua (the
-- Makefile's PACKAGES_<goal> lists and the fragments' own).
--
-- - The version: include/kpayment.h's KPAYMENT_VERSION.  src/kp_common.h's
--   KP_VERSION (the C core cannot include kpayment.h, which needs lua.h, from
--   the parser that is fuzzed without Lua), a versioned rockspec's name and
--   version, and in every tracked file each "kpayment/X.Y.Z" (the
--   User-Agent) and "version of kpayment, such as `"X.Y.Z"`" must say the
--   same.
-- - The C sources: kpayment-scm-1.rockspec's build.modules["kpayment.core"]
--   .sources, which the Makefile reads; every src/*.c is in it or in
--   SRCS_ELSEWHERE, and every file it names exists.
-- - The Lua modules of each rockspec: exactly the files of its tree
--   (lua/kpayment/, cli/kpayment/cli/, mock/kpayment/mock/), each under the
--   name its path gives.
-- - The Debian packages: .ci/debian-packages and .ci/debian-packages-tools
--   (what CI installs before make exists on the machine) hold exactly the
--   packages of the goals CI runs.

local problems = {}
local function problem(fmt, ...) problems[#problems + 1] = fmt:format(...) end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

local function lines_of(command)
  local p = assert(io.popen(command))
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

local function set(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

local function words(s)
  local out = {}
  for w in (s or ""):gmatch("%S+") do out[#out + 1] = w end
  return out
end

-- Names in a but not in b, sorted, as one string.
local function minus(a, b)
  local out = {}
  for k in pairs(a) do if not b[k] then out[#out + 1] = k end end
  table.sort(out)
  return table.concat(out, " ")
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function rockspec(path)
  local env = {}
  assert(load(read(path), "@" .. path, "t", env))()
  return env
end

local tracked = lines_of("git ls-files")

-- The version ----------------------------------------------------------

local version = read("include/kpayment.h"):match('\n#define KPAYMENT_VERSION "([^"]+)"')
if not version then
  problem('include/kpayment.h: no line #define KPAYMENT_VERSION "X.Y.Z"')
else
  local core = read("src/kp_common.h"):match('\n#define KP_VERSION "([^"]+)"')
  if core ~= version then
    problem('src/kp_common.h: KP_VERSION is %q, include/kpayment.h says %q', tostring(core), version)
  end
  for _, file in ipairs(tracked) do
    local name_version = file:match("^kpayment%-(%d[^-]*)%-%d+%.rockspec$")
    if name_version and name_version ~= version then
      problem("%s: version %s, include/kpayment.h says %s", file, name_version, version)
    end
    if not file:match("^spec/fixtures/") and not file:match("^fuzz/seeds") then
      local text = exists(file) and read(file) or ""
      local n = 0
      for line in (text .. "\n"):gmatch("(.-)\n") do
        n = n + 1
        for v in line:gmatch("kpayment/(%d+%.%d+%.%d+)") do
          if v ~= version then
            problem("%s:%d: kpayment/%s, include/kpayment.h says %s", file, n, v, version)
          end
        end
        for v in line:gmatch('version of kpayment, such as `"(%d+%.%d+%.%d+)"`') do
          if v ~= version then
            problem('%s:%d: "%s", include/kpayment.h says %s', file, n, v, version)
          end
        end
      end
    end
  end
end

-- The C sources ---------------------------------------------------------

local core_spec = rockspec("kpayment-scm-1.rockspec")
local core_module = core_spec.build and core_spec.build.modules and core_spec.build.modules["kpayment.core"]
local sources = set(core_module and core_module.sources or {})
if not next(sources) then problem("kpayment-scm-1.rockspec: no build.modules[\"kpayment.core\"].sources") end
for file in pairs(sources) do
  if not exists(file) then problem("kpayment-scm-1.rockspec: %s does not exist", file) end
end
local c_files = set(lines_of("ls src/*.c"))
local elsewhere = set(words(arg[1]))
local stray = minus(c_files, setmetatable(elsewhere, { __index = sources }))
if stray ~= "" then
  problem("src: %s in neither kpayment-scm-1.rockspec's sources nor the Makefile's SRCS_ELSEWHERE", stray)
end

-- The rocks' Lua modules -----------------------------------------------

for _, rock in ipairs({
  { spec = "kpayment-scm-1.rockspec", dir = "lua/kpayment", prefix = "lua/" },
  { spec = "kpayment-cli-scm-1.rockspec", dir = "cli/kpayment/cli", prefix = "cli/" },
  { spec = "kpayment-mock-scm-1.rockspec", dir = "mock/kpayment/mock", prefix = "mock/" },
}) do
  local modules = rockspec(rock.spec).build.modules
  local listed = {}
  for name, v in pairs(modules) do
    if type(v) == "string" then
      listed[v] = true
      local want = v:sub(#rock.prefix + 1):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
      if v:sub(1, #rock.prefix) ~= rock.prefix or want ~= name then
        problem("%s: module %s is %s (its path says %s)", rock.spec, name, v, want)
      end
      if not exists(v) then problem("%s: %s does not exist", rock.spec, v) end
    end
  end
  local files = set(lines_of("find " .. rock.dir .. " -name '*.lua' | sort"))
  local missing = minus(files, listed)
  if missing ~= "" then problem("%s: does not install %s", rock.spec, missing) end
end

-- The Debian packages ---------------------------------------------------

local wanted = set(words(arg[2]))
local ci = {}
for _, file in ipairs({ ".ci/debian-packages", ".ci/debian-packages-tools" }) do
  for p in read(file):gmatch("[^\n]+") do
    p = p:gsub("#.*", ""):match("^%s*(.-)%s*$")
    if p ~= "" then ci[p] = true end
  end
end
if not next(wanted) then problem("no packages given (the Makefile's print-packages)") end
local not_installed = minus(wanted, ci)
if not_installed ~= "" then
  problem(".ci/debian-packages*: a goal CI runs needs %s", not_installed)
end
local unused = minus(ci, wanted)
if unused ~= "" then
  problem(".ci/debian-packages*: %s, which no goal CI runs names (PACKAGES_<goal> in the Makefile)", unused)
end

if #problems > 0 then
  for _, p in ipairs(problems) do io.stderr:write("lists-check: ", p, "\n") end
  os.exit(1)
end
print(("lists-check: version %s in every place; %d C sources, the rocks' modules and CI's "
  .. "%d Debian packages agree with their one list"):format(version, (function()
    local n = 0
    for _ in pairs(sources) do n = n + 1 end
    return n
  end)(), (function()
    local n = 0
    for _ in pairs(ci) do n = n + 1 end
    return n
  end)()))
