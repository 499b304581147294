-- The generated reference covers the whole public surface: every function
-- and field of `kpayment` and `kpayment.core`, every method of their
-- classes, and every option config.lua accepts.  The names are taken from
-- the loaded modules (and from config.lua's OPTIONS table), not from a
-- list kept here, so a new function or option without a doc comment fails
-- `make docs`; so does an entry for something that is not public (an
-- internal function's doc comment without @local).
--
--   lua5.4 test/docs_check.lua [DOCS_DIR]     (after ldoc; `make docs` runs it)
--
-- Needs the checkout's modules and the built core on the paths (the
-- Makefile's LUA_ENV).

local docs = arg[1] or "docs/reference"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local failures = {}
local function fail(fmt, ...)
  failures[#failures + 1] = string.format(fmt, ...)
end

-- The anchors LDoc writes for documented items (`<a name = "Client:poll">`).
local function anchors(html)
  local set = {}
  for name in html:gmatch('<a name%s*=%s*"([^"]+)"') do set[name] = true end
  return set
end

local pages = {
  kpayment = read(docs .. "/modules/kpayment.html"),
  core = read(docs .. "/modules/kpayment.core.html"),
}
local names = { kpayment = anchors(pages.kpayment), core = anchors(pages.core) }

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    if type(k) == "string" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  return keys
end

-- Names a page must document: the module's keys, and the methods of each
-- class as Class:method.  Metamethods are covered by their class's text.
local function expect(page, module_name, what, prefix, t, skip)
  for _, k in ipairs(sorted_keys(t)) do
    if not k:find("^__") and not (skip and skip[k]) then
      local anchor = prefix and (prefix .. ":" .. k) or k
      if not names[page][anchor] then
        fail("%s: %s '%s' has no entry in %s/modules/%s.html", module_name, what, anchor, docs, module_name)
      end
    end
  end
end

local kpayment = require("kpayment")
local core = require("kpayment.core")
local offer = require("kpayment.offer")

-- kpayment.Client and kpayment.Request are the metatables of two classes
-- documented as such.
local class_fields = { Client = "Class_Client", Request = "Class_Request" }
for name, section in pairs(class_fields) do
  if not names.kpayment[section] then fail("kpayment: class %s is not documented", name) end
end
expect("kpayment", "kpayment", "field or function", nil, kpayment, class_fields)
expect("kpayment", "kpayment", "method", "Client", kpayment.Client)
expect("kpayment", "kpayment", "method", "Request", kpayment.Request)
expect("kpayment", "kpayment", "method", "Offer", offer.Offer)
expect("kpayment", "kpayment", "method", "OfferList", offer.OfferList)
for _, class in ipairs({ "Offer", "OfferList", "Error" }) do
  if not names.kpayment["Class_" .. class] then fail("kpayment: class %s is not documented", class) end
end
if not names.kpayment["Error.fields"] then fail("kpayment: the fields of Error are not documented") end

-- The C core: its functions and fields, and the methods of its two types
-- (their metatables are registered under their names).
local registry = debug.getregistry()
expect("core", "kpayment.core", "field or function", nil, core)
expect("core", "kpayment.core", "method", "Client", registry["kpayment.Client"].__index)
expect("core", "kpayment.core", "method", "Request", registry["kpayment.Request"].__index)

-- And the other way round: an entry for something that is not public (an
-- internal function whose doc comment lacks @local) fails too.
local function reverse(page, module_name, t, classes, extra)
  for anchor in pairs(names[page]) do
    local class, method = anchor:match("^(%w+):([%w_]+)$")
    local known
    if class then
      known = classes[class] and classes[class][method] ~= nil
    else
      known = t[anchor] ~= nil or extra[anchor] or anchor:find("^Class_")
        or ({ Functions = true, Tables = true, Fields = true })[anchor]
    end
    if not known then
      fail("%s: the reference documents '%s', which is not public (mark its doc comment @local)",
        module_name, anchor)
    end
  end
end
reverse("kpayment", "kpayment", kpayment,
  { Client = kpayment.Client, Request = kpayment.Request, Offer = offer.Offer, OfferList = offer.OfferList,
    Error = { __tostring = true } },
  { options = true, ["Error.fields"] = true })
reverse("core", "kpayment.core", core,
  { Client = registry["kpayment.Client"].__index, Request = registry["kpayment.Request"].__index },
  { outcome = true })

-- Every option of config.lua's OPTIONS table is a field of `options`.
local config_src = read("lua/kpayment/config.lua")
local options_src = config_src:match("\nlocal OPTIONS = (%b{})")
if not options_src then
  fail("lua/kpayment/config.lua: no 'local OPTIONS = { … }' table found")
else
  local html = pages.kpayment
  local from = html:find('<a name%s*=%s*"options"')
  local to = from and html:find('<a name%s*=%s*"', from + 1)
  local documented = {}
  if not from then
    fail("kpayment: the options table is not documented")
  else
    for field in html:sub(from, to):gmatch('<span class="parameter">([%w_]+)</span>') do
      documented[field] = true
    end
  end
  local count = 0
  for option in options_src:gmatch("([%a_][%w_]*)%s*=%s*[\"{]") do
    count = count + 1
    if from and not documented[option] then
      fail("kpayment: option '%s' (lua/kpayment/config.lua) is not a field of the options table", option)
    end
    documented[option] = nil
  end
  if count == 0 then fail("lua/kpayment/config.lua: no option found in OPTIONS") end
  for field in pairs(documented) do
    fail("kpayment: the options table documents '%s', which config.lua does not accept", field)
  end
end

-- The defaults the options' doc comments quote are the ones the code
-- applies (core.DEFAULTS, config.DEFAULTS): "Default: `30`", "Default: 64
-- MiB", "Default: `KPAYMENT_LOCALE`, else `"en-US"`".
do
  local config = require("kpayment.config")
  local defaults, checked = {}, 0
  for _, t in ipairs({ core.DEFAULTS, config.DEFAULTS }) do
    for k, v in pairs(t) do defaults[k] = v end
  end
  local comments = {}
  for line in config_src:gmatch("[^\n]*") do
    local text = line:match("^%-%-%-?%s?(.*)$")
    if text then comments[#comments + 1] = text end
  end
  local fields = table.concat(comments, " ")
  for name, value in pairs(defaults) do
    local doc = fields:match("@tfield [%w|{},.]+ " .. name .. " (.-)@tfield")
      or fields:match("@tfield [%w|{},.]+ " .. name .. " (.*)$")
    local said = doc and doc:match("Default: (.*)$")
    if not said then
      fail("lua/kpayment/config.lua: option '%s' has no \"Default:\" in its doc comment", name)
    else
      checked = checked + 1
      local ok
      if type(value) == "number" then
        local n, unit = said:match("^`?(%d+%.?%d*)`?%s*(%a*)")
        n = tonumber(n)
        if unit == "MiB" and n then n = n * 1048576 end
        ok = n == value
      elseif type(value) == "boolean" then
        ok = said:find("`" .. tostring(value) .. "`", 1, true) ~= nil
      else
        ok = said:find('"' .. value .. '"', 1, true) ~= nil
      end
      if not ok then
        fail("lua/kpayment/config.lua: option '%s' says \"Default: %s\", the code applies %s",
          name, said:sub(1, 40), tostring(value))
      end
    end
  end
  if checked == 0 then fail("no option default checked") end
end

if #failures > 0 then
  io.stderr:write("docs: the reference does not match the code:\n  ", table.concat(failures, "\n  "), "\n")
  os.exit(1)
end
print("docs: every public function, method, field and option has an entry, and nothing else")
