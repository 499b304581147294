--- Secrets: which strings of a configuration are secret, every form they
-- can take where they may show up, and the one scrubber that replaces them
-- by "[redacted]" in errors, log lines, hook data and the command's output.
--
-- A secret may show up as given (a password echoed by a server), as the
-- request's URL carries it (percent-encoded, when a secret is passed as a
-- parameter), form-encoded (`+` for a space), or inside an Authorization:
-- Basic value (Base64 of `user:password`).  Proxy URLs are read by one
-- parser here, for the secrets, for the masked URLs kpayment.info() and the
-- command show, and nowhere else.
-- @module kpayment.secrets

local core = require("kpayment.core")

local type, ipairs, pairs, next, setmetatable, getmetatable, tonumber =
  type, ipairs, pairs, next, setmetatable, getmetatable, tonumber
local string_find, string_sub, string_gsub, string_format, string_byte, string_char =
  string.find, string.sub, string.gsub, string.format, string.byte, string.char
local table_concat, table_sort = table.concat, table.sort
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

--- The parts of a proxy URL (`[scheme://][user[:password]@]host[:port][/…]`):
-- scheme (with its "://", or ""), user and password (percent-encoded as
-- written; nil without), and the rest from the host on.  The credentials
-- end at the LAST "@": a host has none, so an "@" left unencoded in a
-- password stays in the password (libcurl refuses such a URL, and its
-- message quotes it).
function M.proxy(url)
  if type(url) ~= "string" then return nil end
  local scheme, after = url:match("^([%w+.-]+://)(.*)$")
  if not scheme then scheme, after = "", url end
  local at = after:match("^.*()@")
  if not at then return { scheme = scheme, rest = after } end
  local userinfo = after:sub(1, at - 1)
  local user, password = userinfo:match("^([^:]*):(.*)$")
  return { scheme = scheme, user = user or userinfo, password = password, userinfo = userinfo,
           rest = after:sub(at + 1) }
end

--- A proxy URL with its credentials replaced by "[redacted]".
function M.mask_proxy(url)
  local p = M.proxy(url)
  if not p then return url end
  if not p.userinfo then return url end
  return p.scheme .. M.REDACTED .. "@" .. p.rest
end

--- Every form a secret value takes where it may show up: as given,
-- percent-encoded (upper- and lower-case hex, as a URL parameter), and
-- form-encoded.
function M.forms(v)
  local upper = string_gsub(v, "[^%w%-%._~]", encode_upper)
  local lower = string_gsub(v, "[^%w%-%._~]", encode_lower)
  local plus = string_gsub(string_gsub(v, "[^%w%-%._~ ]", encode_upper), " ", "+")
  return { v, upper, lower, plus }
end

-- user:password as given and decoded, and the Basic value of each.
local function credential_forms(user, password, out)
  out[#out + 1] = { password }
  out[#out + 1] = { user .. ":" .. password }
  out[#out + 1] = { base64(user .. ":" .. password) }
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
    if cfg.username then raw[#raw + 1] = { base64(cfg.username .. ":" .. cfg.password) } end
  end
  if cfg.bearer_token then raw[#raw + 1] = { cfg.bearer_token } end
  for _, v in ipairs(require("kpayment.oauth").secrets(cfg)) do raw[#raw + 1] = { v } end
  local proxies = {}
  if cfg.proxy then
    proxies[1] = cfg.proxy
  else
    for _, var in ipairs(proxy_env or {}) do proxies[#proxies + 1] = os.getenv(var) end
  end
  for _, url in ipairs(proxies) do
    local p = M.proxy(url)
    if p and p.password then
      credential_forms(p.user, p.password, raw)
      credential_forms(percent_decode(p.user), percent_decode(p.password), raw)
    end
  end
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

--- `s` with every occurrence of each secret (a list, longest first)
-- replaced by "[redacted]".
function M.scrub(s, secrets)
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
