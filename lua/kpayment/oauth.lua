--- kpayment.oauth: a client's OAuth2 access token (the client credentials
-- grant, RFC 6749 §4.4), fetched on first use, kept until shortly before
-- it expires, and refreshed once for all the calls that wait for it.
--
-- The token request is an attempt of the client's own transport (a POST
-- with the API's TLS, CA, proxy and `resolve` settings), authenticated
-- with HTTP Basic over the form-encoded id and secret (§2.3.1).
-- kpayment.async runs it: a request whose attempt needs a token waits for
-- the one fetch in flight, then goes out with `Authorization: Bearer …`.
-- @module kpayment.oauth

local core = require("kpayment.core")
local errors = require("kpayment.errors")
local secrets = require("kpayment.secrets")

local setmetatable, type, tostring, pcall = setmetatable, type, tostring, pcall
local string_format, string_gsub, string_byte, string_lower =
  string.format, string.gsub, string.byte, string.lower
local math_max, math_huge = math.max, math.huge

local M = {}

--- The scope asked for by default (the endpoint's `ApiScope`).
M.SCOPE = "payment.financeOffer.read"

-- A refresh comes at the later of this long before expiry and 90 % of the
-- token's lifetime, so that short-lived tokens work too.
local EARLY = 30

-- application/x-www-form-urlencoded: unreserved characters kept, space as
-- "+", every other byte %XX.
local function form(s)
  s = string_gsub(s, "[^%w%-%._~ ]", function(c) return string_format("%%%02X", string_byte(c)) end)
  return (string_gsub(s, " ", "+"))
end
M.form = form

local Token = {}
Token.__index = Token

--- A token holder for the resolved configuration `cfg` (client_id,
-- client_secret, token_url, scope).
function M.new(cfg)
  local scope = cfg.scope or M.SCOPE
  local shared
  if cfg.token_dict then
    local ngx = rawget(_G, "ngx")
    local dict = ngx and ngx.shared and ngx.shared[cfg.token_dict]
    if dict == nil then
      error(("kpayment: bad option 'token_dict' (no lua_shared_dict named '%s': inside nginx, declare "
        .. "it in the http block)"):format(cfg.token_dict), 0)
    end
    local id = ngx.md5(table.concat({ cfg.token_url, cfg.client_id, cfg.client_secret, scope }, "\0"))
    shared = { dict = dict, key = "kp-token|" .. id, lock = "kp-token-lock|" .. id, now = ngx.now,
               update = ngx.update_time }
  end
  return setmetatable({
    shared = shared,   -- inside nginx, with token_dict: the workers' token
    url = cfg.token_url,
    basic = "Basic " .. core.base64(form(cfg.client_id) .. ":" .. form(cfg.client_secret)),
    body = "grant_type=client_credentials" .. (scope ~= "" and "&scope=" .. form(scope) or ""),
    token = nil, refresh_at = nil,
    kept = {},              -- the tokens in the client's secrets (remember)
    attempt = nil,          -- the token request in flight
    results = setmetatable({}, { __mode = "k" }),   -- attempt -> its error, once ended
    scopes = setmetatable({}, { __mode = "k" }),    -- inside nginx: scopes waiting for it
  }, Token)
end

--- The secrets of a client credentials configuration: the secret and
-- the Basic value (kpayment.secrets adds their encoded forms).
function M.secrets(cfg)
  if not cfg.client_secret then return {} end
  return { cfg.client_secret, form(cfg.client_secret),
           core.base64(form(cfg.client_id or "") .. ":" .. form(cfg.client_secret)) }
end

-- Add `token` to the client's secrets, longest first, so the scrubber
-- knows it.
-- The tokens kept there are the current one and the one before it (an
-- answer to an attempt sent with that may still come back): a long-lived
-- client's list does not grow with every refresh.
local function remember(self, client, token)
  local tokens = self.kept
  for i = 1, #tokens do if tokens[i].token == token then return end end
  local list = client._secrets
  if #tokens == 2 then secrets.drop(list, table.remove(tokens, 1).forms) end
  -- every encoded form too: an API may echo the token percent-encoded
  tokens[#tokens + 1] = { token = token, forms = secrets.add(list, token) }
end

--- The secrets to scrub an answer to an attempt sent with `token` of: the
-- client's, with that token's forms added when the client no longer keeps
-- them (it was replaced twice while the answer waited to be taken).
function Token:secrets_for(client, token)
  local tokens = self.kept
  for i = 1, #tokens do if tokens[i].token == token then return client._secrets end end
  local list = {}
  for i, v in ipairs(client._secrets) do list[i] = v end
  secrets.add(list, token)
  return list
end

--- The token to send now, or nil when none is held or it is due for a
-- refresh.
function Token:current(now, client)
  if self.token ~= nil and now < self.refresh_at then return self.token end
  local sh = self.shared
  if sh then   -- another worker's token, if it is fresh
    local v = sh.dict:get(sh.key)
    local at, token = (v or ""):match("^([%d.]+)\n(.+)$")
    if token then
      sh.update()
      local left = tonumber(at) - sh.now()
      if left > 0 then
        remember(self, client, token)
        self.token, self.refresh_at = token, now + left
        return token
      end
    end
  end
  return nil
end

--- With token_dict: whether this worker may fetch now (it holds the
-- workers' lock, for at most `seconds`); true without a dict.
function Token:may_fetch(seconds)
  local sh = self.shared
  if sh == nil or self.attempt then return true end
  return (sh.dict:add(sh.lock, true, seconds)) == true
end

-- With token_dict: give the workers the token just fetched (until its
-- refresh is due; a token without expires_in for a day, or until a 401),
-- and let go of the lock whatever the fetch gave.
local function share(self, now, fetched)
  local sh = self.shared
  if sh == nil then return end
  if fetched then
    sh.update()
    local left = self.refresh_at == math_huge and 86400 or math_max(self.refresh_at - now, 0.001)
    sh.dict:set(sh.key, string_format("%.3f\n%s", sh.now() + left, self.token), left)
  end
  sh.dict:delete(sh.lock)
end

--- Forget `token` (the API refused it) unless a newer one came meanwhile.
function Token:invalidate(token)
  if self.token == token then self.token, self.refresh_at = nil, nil end
  local sh = self.shared
  if sh then
    local v = sh.dict:get(sh.key)
    if v and v:sub(-#token - 1) == "\n" .. token then sh.dict:delete(sh.key) end
  end
end

--- Start the token request unless one is in flight; the attempt, or nil
-- when the client is closed.
function Token:fetch(client, timeout_ms)
  if self.attempt then return self.attempt end
  -- direct: to token_url's host, also when API calls go through nginx's
  -- upstream for the API (the subrequest transport)
  local a = client._core:start(self.url, nil, timeout_ms, {
    method = "POST", body = self.body, content_type = "application/x-www-form-urlencoded",
    authorization = self.basic,
  }, true)
  self.attempt = a
  return a
end

-- The endpoint's error of a failed token request, as an `auth` error.
local function auth_error(client, o, status, body)
  local e = { kind = "auth", status = status, retryable = false }
  if o and o.kind ~= nil and o.kind ~= "http" then
    -- no response: unreachable, timed out, TLS
    -- cut to the core's limit before scrubbing: a secret's start goes too
    e.message = "token endpoint: " .. errors.scrub(tostring(o.message or o.kind), client._secrets, true)
    e.retryable = o.kind == "network" or o.kind == "timeout"
    e.curl_code = o.curl_code
  else
    local ok, doc = pcall(core.decode, body or "")
    local code = ok and type(doc) == "table" and type(doc.error) == "string" and doc.error or nil
    local desc = ok and type(doc) == "table" and type(doc.error_description) == "string"
      and doc.error_description or nil
    e.oauth_error, e.error_description = code, desc
    e.retryable = status ~= nil and status >= 500
    if status and status >= 200 and status < 300 then
      e.message = "token endpoint: " .. (desc or "a response without a bearer access_token")
    else
      e.message = string_format("token endpoint: HTTP %s%s%s", tostring(status),
        code and (": " .. code) or "", desc and (" (" .. desc .. ")") or "")
    end
    if not code and body and status and (status < 200 or status >= 300) then
      e.body = errors.scrub(body:sub(1, 512), client._secrets, true)
    end
  end
  errors.redact(e, client._secrets)
  return errors.new(e)
end

--- Take the ended token request: keep its token (nil) or the error of
-- the fetch.  Called once per attempt by whichever waiter sees it end.
function Token:finish(client, now)
  local a = self.attempt
  self.attempt = nil
  local done, success = a:done()
  local err
  if done and success then
    local status = a:stats()
    local body = a:body()
    local ok, doc = pcall(core.decode, body or "")
    if not ok and errors.passes_through(doc) then error(doc, 0) end
    local token = ok and type(doc) == "table" and doc.access_token
    local kind = ok and type(doc) == "table" and doc.token_type
    if type(token) == "string" and token ~= "" and not token:find("[%c ]")
       and (kind == nil or (type(kind) == "string" and string_lower(kind) == "bearer")) then
      local life = ok and doc.expires_in
      life = type(life) == "number" and life > 0 and life or nil
      remember(self, client, token)
      self.token = token
      self.refresh_at = life and now + math_max(life - EARLY, 0.9 * life) or math_huge
    else
      err = auth_error(client, nil, status, body)
      err.message = "token endpoint: the response has no bearer access_token"
    end
    a:release()
  else
    local o = a:outcome()
    err = auth_error(client, o, o.status, o.body)
    a:release()
  end
  self.results[a] = err or false
  share(self, now, err == nil)
  return err
end

return M
