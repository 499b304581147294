--- kpayment.cache: a client's cache of response bodies (the `cache`
-- option), least recently used first out, bounded by entries and bytes.
--
-- An entry is the body of a 2xx response that decoded, as received, under
-- its URL (customer, dealer, skin, locale): each hit decodes it into fresh
-- tables, with the caller's own `fields`.  Errors are never stored.  It
-- lives in the Lua state's memory only, never on disk.
-- @module kpayment.cache

local setmetatable, next = setmetatable, next

local M = {}

-- What an entry costs besides its body's and URL's bytes: the entry
-- table, its list links, the index's slot and the strings' headers (Lua
-- 5.4, 64-bit: 360 bytes measured with collectgarbage("count") over 2 000
-- entries; spec/cache_spec.lua holds the count within 5 % of the
-- measure), rounded up so that max_bytes is never undercounted.
M.OVERHEAD = 400

local Cache = {}
Cache.__index = Cache

--- A cache for the checked option table `opts` (kpayment.config).
function M.new(opts)
  local head = {}
  head.newer, head.older = head, head   -- the list's sentinel: newest after it
  return setmetatable({
    ttl = opts.ttl, stale = opts.stale_if_error or 0,
    max_entries = opts.max_entries or M.DEFAULTS.max_entries,
    max_bytes = opts.max_bytes or M.DEFAULTS.max_bytes,
    index = {}, head = head, entries = 0, bytes = 0,
  }, Cache)
end

M.DEFAULTS = { max_entries = 1000, max_bytes = 64 * 1024 * 1024, stale_if_error = 0 }

local function unlink(e)
  e.newer.older, e.older.newer = e.older, e.newer
end

local function push_newest(self, e)
  local head = self.head
  e.older, e.newer = head.older, head
  head.older.newer = e
  head.older = e
end

local function drop(self, e)
  unlink(e)
  self.index[e.url] = nil
  self.entries = self.entries - 1
  self.bytes = self.bytes - e.size
end

--- The entry for url no older than `ttl` seconds (plus `stale_if_error`
-- with `stale`) at `now`, made the most recently used; or nil.
function Cache:get(url, now, stale)
  local e = self.index[url]
  if e == nil then return nil end
  local age = now - e.at
  if age > self.ttl + self.stale then
    drop(self, e)
    return nil
  end
  if age > self.ttl and not stale then return nil end
  unlink(e)
  push_newest(self, e)
  return e
end

--- Keep body (a 2xx response's, with its HTTP status) for url, `age`
-- seconds old at `now` (its age counts from its arrival, not from when its
-- caller took it), then evict the least recently used entries over the
-- bounds.  A body larger than `max_bytes` alone is not kept.
function Cache:put(url, customer, body, status, now, age)
  local old = self.index[url]
  if old then drop(self, old) end
  local size = #body + #url + M.OVERHEAD
  if size > self.max_bytes then return end
  local e = { url = url, customer = customer, body = body, status = status, at = now - age, size = size }
  self.index[url] = e
  push_newest(self, e)
  self.entries = self.entries + 1
  self.bytes = self.bytes + size
  local head = self.head
  while self.entries > self.max_entries or self.bytes > self.max_bytes do
    drop(self, head.newer)   -- the least recently used
  end
end

--- Forget every entry of one customer (all of them with nil); returns
-- how many went.
function Cache:purge(customer)
  local n, index = 0, self.index
  local url, e = next(index)
  while url ~= nil do
    local following = next(index, url)   -- before dropping: next needs the key
    if customer == nil or e.customer == customer then
      drop(self, e)
      n = n + 1
    end
    url = following
    e = url ~= nil and index[url] or nil
  end
  return n
end

--- `entries` and `bytes` (bodies and URLs, with `OVERHEAD` each).
function Cache:stats()
  return { entries = self.entries, bytes = self.bytes }
end

-- Whether another holds the refresh of url (a shared dict's lock).
function Cache.busy() return false end

-- Take the refresh of url; true when taken (or when there is no lock).
function Cache.lock() return true end

function Cache.unlock() end

-- Inside nginx: entries in a lua_shared_dict, shared by every worker and
-- kept across reloads (HUP).  A key is "kp|<identity>|<url>": identity is a
-- hash of the client's base URL and credentials, so that two clients with
-- different credentials never share, and no credential is in the dict.  A
-- value is "<status>\n<stored at>\n<body>"; the dict expires it once
-- ttl + stale_if_error have passed, and evicts the least recently used
-- when full (its size in nginx.conf is the bound).  A refresh takes a lock,
-- "kp-lock|…", added with an expiry, so that one worker asks the API for a
-- key while the others wait or answer stale.
local Dict = {}
Dict.__index = Dict

--- A cache in the shared dict named `opts.dict`, for a client whose
-- identity (base URL and credentials, hashed here) is `identity`.
function M.new_dict(opts, identity, lock_seconds)
  local ngx = rawget(_G, "ngx")
  local dict = ngx and ngx.shared and ngx.shared[opts.dict]
  if dict == nil then
    error(("kpayment: bad option 'cache' (no lua_shared_dict named '%s': declare it in nginx's "
      .. "http block, e.g. lua_shared_dict %s 10m;)"):format(tostring(opts.dict), tostring(opts.dict)), 0)
  end
  local id = ngx.md5(identity)
  return setmetatable({ dict = dict, ttl = opts.ttl, stale = opts.stale_if_error or 0,
                        prefix = "kp|" .. id .. "|", lock_prefix = "kp-lock|" .. id .. "|",
                        lock_seconds = lock_seconds, now = ngx.now, update = ngx.update_time }, Dict)
end

function Dict:get(url, _, stale)
  local value = self.dict:get(self.prefix .. url)
  if value == nil then return nil end
  local status, at, body = value:match("^(%d+)\n([%d.]+)\n(.*)$")
  if status == nil then return nil end
  self.update()
  local age = self.now() - tonumber(at)
  if age > self.ttl and not stale then return nil end
  return { body = body, status = tonumber(status), at = tonumber(at), age = age }
end

function Dict:put(url, _, body, status, _, age)
  local keep = self.ttl + self.stale - age
  if keep <= 0 then return end
  self.update()
  -- set, not safe_set: a full dict evicts its least recently used entries
  self.dict:set(self.prefix .. url, status .. "\n" .. string.format("%.3f", self.now() - age) .. "\n" .. body,
                keep)
end

function Dict:purge(customer)
  local keys = self.dict:get_keys(0)
  local n, prefix = 0, self.prefix
  local want = customer and "customerUUID=" .. require("kpayment.request").escape(customer) .. "&"
  for i = 1, #keys do
    local k = keys[i]
    if k:sub(1, #prefix) == prefix and (want == nil or k:find(want, 1, true)) then
      self.dict:delete(k)
      n = n + 1
    end
  end
  return n
end

function Dict:stats()
  return { capacity = self.dict:capacity(), free = self.dict:free_space() }
end

function Dict:busy(url)
  return self.dict:get(self.lock_prefix .. url) ~= nil
end

function Dict:lock(url)
  return (self.dict:add(self.lock_prefix .. url, true, self.lock_seconds)) == true
end

function Dict:unlock(url)
  self.dict:delete(self.lock_prefix .. url)
end

return M
