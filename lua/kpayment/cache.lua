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

-- What an entry costs besides its body and URL: the entry table, its
-- list links and the index's slot (Lua 5.4, 64-bit; measured with
-- collectgarbage("count") over 10 000 entries, spec/cache_spec.lua).
M.OVERHEAD = 200

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

--- Keep body (a 2xx response's, with its HTTP status) for url as of
-- `now`, then evict the least recently used entries over the bounds.  A
-- body larger than `max_bytes` alone is not kept.
function Cache:put(url, customer, body, status, now)
  local old = self.index[url]
  if old then drop(self, old) end
  local size = #body + #url + M.OVERHEAD
  if size > self.max_bytes then return end
  local e = { url = url, customer = customer, body = body, status = status, at = now, size = size }
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

return M
