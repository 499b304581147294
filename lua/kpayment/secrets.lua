--- Secrets: which strings of a configuration are secret, every form they
-- can take where they may show up, and the one scrubber that replaces them
-- by "[redacted]" in errors, log lines, hook data and the command's output.
--
-- A secret may show up as given (a password echoed by a server), as the
-- request's URL carries it (percent-encoded, when a secret is passed as a
-- parameter), form-encoded (`+` for a space), inside an Authorization:
-- Basic value (Base64 of `user:password`), as a server's JSON encoder
-- writes it inside a string, or in Base64 of its own.  Proxy URLs are read by one
-- parser here, for the secrets, for the masked URLs kpayment.info() and the
-- command show, and nowhere else.
-- @module kpayment.secrets

local core = require("kpayment.core")
local json = require("kpayment.json")

local type, ipairs, pairs, next, setmetatable, getmetatable, tonumber =
  type, ipairs, pairs, next, setmetatable, getmetatable, tonumber
local string_find, string_sub, string_gsub, string_format, string_byte, string_char =
  string.find, string.sub, string.gsub, string.format, string.byte, string.char
local table_concat, table_sort = table.concat, table.sort
local math_floor, math_max = math.floor, math.max
local base64 = core.base64

local M = {}

--- Secrets shorter than this are not scrubbed: they would match ordinary
-- words of libcurl's messages.
M.MIN_LENGTH = 4

M.REDACTED = "[redacted]"

local function percent_decode(s)
  return (string_gsub(s, "%%(%x%x)", function(h) return string_char(tonumber(h, 16)) end))
end

local function encode_upper(c) return string_format("%%%02X", string_byte(c)) end
local function encode_lower(c) return string_format("%%%02x", string_byte(c)) end

-- user[:password] split off the front of `after` at the "@" ending at
-- `at`, or nil.
local function split_userinfo(scheme, after, at)
  if not at then return nil end
  local userinfo = after:sub(1, at - 1)
  local user, password = userinfo:match("^([^:]*):(.*)$")
  return { scheme = scheme, user = user or userinfo, password = password, userinfo = userinfo,
           rest = after:sub(at + 1) }
end

--- The parts of a proxy URL (`[scheme://][user[:password]@]host[:port][/…]`):
-- scheme (with its "://", or ""), user and password (percent-encoded as
-- written; nil without), and the rest from the host on.  The credentials
-- are those libcurl sends: up to the last "@" before the first "/", "?"
-- or "#".  When that part has no "@" but one comes later, `loose` holds
-- the parts up to the last "@" of all: a password with an unencoded "/"
-- (libcurl reads its start as a port, and its message may quote it).
function M.proxy(url)
  if type(url) ~= "string" then return nil end
  local scheme, after = url:match("^([%w+.-]+://)(.*)$")
  if not scheme then scheme, after = "", url end
  local authority = after:match("^[^/?#]*")
  local p = split_userinfo(scheme, after, authority:match("^.*()@"))
  if p then return p end
  return { scheme = scheme, rest = after, loose = split_userinfo(scheme, after, after:match("^.*()@")) }
end

--- A proxy URL with its credentials replaced by "[redacted]".
function M.mask_proxy(url)
  local p = M.proxy(url)
  if not p then return url end
  p = p.userinfo and p or p.loose
  if not p then return url end
  return p.scheme .. M.REDACTED .. "@" .. p.rest
end

-- A UTF-8 character's code point as \u escapes (a surrogate pair above
-- U+FFFF) in hex of the case `fmt` gives; nil (kept as it is) when the
-- bytes are not one character.
local function u_escape(ch, fmt)
  local b1, n = string_byte(ch), #ch
  local cp
  if n == 2 and b1 >= 0xC2 and b1 <= 0xDF then cp = b1 - 0xC0
  elseif n == 3 and b1 >= 0xE0 and b1 <= 0xEF then cp = b1 - 0xE0
  elseif n == 4 and b1 >= 0xF0 and b1 <= 0xF4 then cp = b1 - 0xF0
  else return nil end
  for i = 2, n do cp = cp * 64 + (string_byte(ch, i) - 0x80) end
  if cp < 0x10000 then return string_format(fmt, cp) end
  cp = cp - 0x10000
  return string_format(fmt, 0xD800 + math_floor(cp / 1024)) .. string_format(fmt, 0xDC00 + cp % 1024)
end

-- What JSON encoders write for v inside a string: the escapes JSON needs
-- (kpayment.json's own), "/" as "\/" too (PHP), and non-ASCII as \u
-- escapes (Python), in either case of hex.
local function json_forms(v, out)
  local min = string_sub(json.quote(v), 2, -2)
  local slash = string_gsub(min, "/", "\\/")
  out[#out + 1] = min
  out[#out + 1] = slash
  for _, fmt in ipairs({ "\\u%04x", "\\u%04X" }) do
    local function escape(ch) return u_escape(ch, fmt) end
    out[#out + 1] = string_gsub(min, "[\192-\255][\128-\191]*", escape)
    out[#out + 1] = string_gsub(slash, "[\192-\255][\128-\191]*", escape)
  end
end

-- What HTML escaping writes for the five characters it escapes, a quote
-- as &#x27; (Python's html.escape) or &#39; (most others).
local HTML_X27 = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#x27;" }
local HTML_39 = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

-- A byte of UTF-8 read as Latin-1 and written back as UTF-8: what a
-- server that decodes headers as Latin-1 echoes for a non-ASCII secret.
local function latin1(c)
  local b = string_byte(c)
  return string_char(0xC0 + math_floor(b / 64), 0x80 + b % 64)
end

--- Every form a secret value takes where it may show up: as given;
-- percent-encoded (upper- and lower-case hex, as a URL parameter; keeping
-- "/" as Python's quote does; keeping !*'() as JavaScript's
-- encodeURIComponent does); form-encoded; HTML-escaped; with its UTF-8
-- read as Latin-1; as JSON text inside a string; and in Base64 (standard
-- and base64url, without the padding, which may or may not follow).
function M.forms(v)
  local upper = string_gsub(v, "[^%w%-%._~]", encode_upper)
  local lower = string_gsub(v, "[^%w%-%._~]", encode_lower)
  local plus = string_gsub(string_gsub(v, "[^%w%-%._~ ]", encode_upper), " ", "+")
  local out = { v, upper, lower, plus,
                (string_gsub(v, "[^%w%-%._~/]", encode_upper)),
                (string_gsub(v, "[^%w%-%._~!*'()]", encode_upper)),
                (string_gsub(v, "[&<>\"']", HTML_X27)),
                (string_gsub(v, "[&<>\"']", HTML_39)),
                (string_gsub(v, "[\128-\255]", latin1)) }
  json_forms(v, out)
  local b64 = string_gsub(base64(v), "=+$", "")
  out[#out + 1] = b64
  out[#out + 1] = string_gsub(b64, "[+/]", { ["+"] = "-", ["/"] = "_" })
  return out
end

-- user:password as given and decoded, and the Basic value of each.
local function credential_forms(user, password, out)
  out[#out + 1] = { password }
  out[#out + 1] = { user .. ":" .. password }
  out[#out + 1] = { base64(user .. ":" .. password) }
end

-- Every form of each value of `raw` ({ value } entries), each once,
-- longest first (so a secret inside another is scrubbed with it).
local function list_of(raw)
  local list, seen = {}, {}
  for _, entry in ipairs(raw) do
    for _, form in ipairs(M.forms(entry[1])) do
      if #form >= M.MIN_LENGTH and not seen[form] then
        seen[form] = true
        list[#list + 1] = form
      end
    end
  end
  table_sort(list, function(a, b) return #a > #b end)
  return list
end

--- The secrets of a resolved configuration, every form of each, longest
-- first (so a secret inside another is scrubbed with it): the password,
-- the bearer token, the Basic value, and a proxy's credentials (the
-- option's, or those of the environment variables libcurl reads).
-- `proxy_env`: the proxy variables' names.
function M.of(cfg, proxy_env)
  local raw = {}
  if cfg.password then
    raw[#raw + 1] = { cfg.password }
    if cfg.username then
      -- user:password's own forms carry its Base64 variants (base64url)
      raw[#raw + 1] = { cfg.username .. ":" .. cfg.password }
      raw[#raw + 1] = { base64(cfg.username .. ":" .. cfg.password) }
    end
  end
  if cfg.bearer_token then raw[#raw + 1] = { cfg.bearer_token } end
  for _, v in ipairs(require("kpayment.oauth").secrets(cfg)) do raw[#raw + 1] = { v } end
  local proxies = {}
  if cfg.proxy then
    proxies[1] = cfg.proxy
  else
    for _, var in ipairs(proxy_env or {}) do proxies[#proxies + 1] = os.getenv(var) end
  end
  local parts = {}
  for _, url in ipairs(proxies) do
    local p = M.proxy(url)
    parts[#parts + 1] = p
    if p and p.loose then parts[#parts + 1] = p.loose end
  end
  for _, p in ipairs(parts) do
    if p.password then
      credential_forms(p.user, p.password, raw)
      credential_forms(percent_decode(p.user), percent_decode(p.password), raw)
    elseif p.userinfo then
      -- a key alone, as some proxies take it: the user part is the secret
      for _, key in ipairs({ p.user, percent_decode(p.user) }) do
        raw[#raw + 1] = { key }
        credential_forms(key, "", raw)
      end
    end
  end
  return list_of(raw)
end

--- Add the forms of `value` (a secret learnt later: a fetched token) to
-- `list`, keeping it longest first; returns the forms added, for `drop`.
function M.add(list, value)
  local have = {}
  for i = 1, #list do have[list[i]] = true end
  local added = {}
  for _, form in ipairs(list_of({ { value } })) do
    if not have[form] then
      added[#added + 1] = form
      list[#list + 1] = form
    end
  end
  table_sort(list, function(a, b) return #a > #b end)
  return added
end

--- Remove `forms` (what `add` returned) from `list`.
function M.drop(list, forms)
  local gone = {}
  for i = 1, #forms do gone[forms[i]] = true end
  for i = #list, 1, -1 do
    if gone[list[i]] then table.remove(list, i) end
  end
end

-- The start of a secret (4 bytes or more) at the very end of s: what a
-- limit that cut s before scrubbing leaves of it.
local function scrub_head(s, secrets)
  for i = 1, #secrets do
    local secret = secrets[i]
    local from = math_max(#s - #secret + 2, 1)
    local b = string_find(s, string_sub(secret, 1, M.MIN_LENGTH), from, true)
    while b do
      if #s - b + 1 >= M.MIN_LENGTH and string_sub(s, b) == string_sub(secret, 1, #s - b + 1) then
        return string_sub(s, 1, b - 1) .. M.REDACTED
      end
      b = string_find(s, string_sub(secret, 1, M.MIN_LENGTH), b + 1, true)
    end
  end
  return s
end

--- `s` with every occurrence of each secret (a list, longest first)
-- replaced by "[redacted]".  With `cut` (s was cut to a limit before it
-- could be scrubbed), a secret's start at the end of s goes too.
function M.scrub(s, secrets, cut)
  for i = 1, #secrets do
    local secret = secrets[i]
    if string_find(s, secret, 1, true) then
      local out, at = {}, 1
      while true do
        local b, e = string_find(s, secret, at, true)
        if not b then break end
        out[#out + 1] = string_sub(s, at, b - 1)
        out[#out + 1] = M.REDACTED
        at = e + 1
      end
      out[#out + 1] = string_sub(s, at)
      s = table_concat(out)
    end
  end
  if cut then s = scrub_head(s, secrets) end
  return s
end

--- `v` scrubbed: a string, or a table (decoded JSON, so no cycles) as a
-- copy with its keys and values scrubbed at any depth; other values as
-- they are.
function M.scrub_value(v, secrets)
  local t = type(v)
  if t == "string" then return M.scrub(v, secrets) end
  if t ~= "table" or next(v) == nil then return v end
  local copy = {}
  for k, x in pairs(v) do
    copy[M.scrub_value(k, secrets)] = M.scrub_value(x, secrets)
  end
  return setmetatable(copy, getmetatable(v))
end

return M
