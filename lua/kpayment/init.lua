--- kpayment: a dealer customer's finance offers from myKaarma's payments
-- API, as native Lua tables.
--
--     local kpayment = require("kpayment")
--     local client = kpayment.new{ username = "…", password = "…", skin = "…" }
--     local offers, err = client:get_offers{ customer_uuid = "…", dealer_uuid = "…" }
--
-- Misuse (a bad option or parameter) raises; failures of the call itself
-- return `nil, err` with `err` an `Error` table.
--
-- This page: the module's functions and fields; the `options` of `new`;
-- the classes `Client`, `Request`, `OfferList`, `Offer` and `Error`
-- (`kpayment.Client` and `kpayment.Request` are the metatables of the
-- first two).  The C core underneath is `kpayment.core`.
-- @module kpayment

local core = require("kpayment.core")
local config = require("kpayment.config")
local client = require("kpayment.client")
local async = require("kpayment.async")
local errors = require("kpayment.errors")
local time = require("kpayment.time")
local info = require("kpayment.info")

-- Inside nginx this runs in the master (init_by_lua) before the workers
-- start as nginx's `user`, who may not be able to read these files: the
-- modules a worker would load on first use are loaded now.
if require("kpayment.transport").ngx() then
  for _, name in ipairs({ "kpayment.nginx", "kpayment.cosocket", "kpayment.subrequest", "kpayment.oauth" }) do
    require(name)
  end
end

local M = {
  --- The version of kpayment, such as `"0.2.0"` (also `kpayment.core._VERSION`).
  _VERSION = core._VERSION,
  --- Stands for JSON null inside arrays (a light userdata, equal to
  -- `cjson.null`; also `kpayment.core.null`).  A null object member is
  -- left out instead.
  null = core.null,
  --- Decode JSON text into Lua values, with the decoder `get_offers` uses
  -- (`kpayment.core.decode`):
  --
  -- - objects become tables with string keys (a repeated key: the last
  --   wins), arrays sequences; an object that leaves an empty table (`{}`,
  --   or nulls only) gets the metatable `kpayment.core.empty_object`, which
  --   has no metamethods and tells it from an empty array;
  -- - integral numbers that fit in 64 bits become exact Lua integers
  --   (`9007199254740993` stays `9007199254740993`; before Lua 5.3, beyond
  --   2^53: strings of the digits), larger integral numbers strings of the
  --   digits on every Lua, `-0` becomes `-0.0`, other numbers correctly
  --   rounded floats; a fraction or exponent too large for a double is an
  --   error;
  -- - strings: every escape, `\u` surrogate pairs to UTF-8, `\u0000` kept
  --   as a NUL byte; the text must be valid UTF-8 (no overlongs, surrogates
  --   or code points above U+10FFFF), and unpaired `\u` surrogates are errors;
  -- - `null` as an object value leaves the key out; `null` in an array
  --   becomes `null`, so indices stay dense;
  -- - nesting deeper than 1000 levels is an error (never a C stack overflow);
  -- - strict RFC 8259: no NaN or Infinity, leading zeros, hex, `+1`, `.5`,
  --   comments, trailing commas, single quotes, BOM or raw control
  --   characters; whitespace is space, tab, CR and LF only; nothing but
  --   whitespace after the value.
  --
  -- With `fields`, only the listed dotted paths are built; unlisted fields
  -- are absent, and so are listed ones the document lacks.  Paths apply
  -- inside array elements (`"financeEvents.eventCode"` keeps the code of
  -- every event; an element that is not an object or array, null
  -- included, is kept as it is, so each keeps its place), and an envelope
  -- needs no path of its own: above the
  -- first record, members no path names that hold an object or array are
  -- descended, so on `{"financeOffers":[…]}` the path `"id"` selects every
  -- offer's `id` (not the `id` of an offer's lender, which is inside a
  -- record).  A listed object or array is kept whole.  What is skipped is
  -- checked with the same strictness, so a text is rejected, at the same
  -- byte, with or without `fields`; a member's last occurrence wins as in a
  -- full decode (`{"a":1,"a":null}` projected on `a` gives `{}`).
  -- @function decode
  -- @tparam string text JSON text
  -- @tparam[opt] table opts `fields`: a list of dotted paths (or a
  -- projection from `kpayment.core.fields`); only those are built
  -- @return the decoded value
  -- @raise `kpayment.decode: <what was expected> at byte N` on malformed text
  -- @usage local v = kpayment.decode('{"id":9007199254740993}')  -- v.id == 9007199254740993
  decode = core.decode,
  --- Read an ISO-8601 timestamp (`2025-03-28T11:34:46.759Z`, with a
  -- `±hh:mm`, `±hhmm` or `±hh` offset, or with none, read as UTC as the API
  -- writes every time) as epoch seconds, fractions kept, independent of the
  -- process's time zone: what `Offer:expires_at` uses.
  -- @function parse_time
  -- @tparam string s the timestamp
  -- @treturn ?number epoch seconds, or nil when `s` is not such a timestamp
  parse_time = time.parse_time,
  --- Tell the error tables this module returns (`Error`) from other values.
  -- @function is_error
  -- @param v any value
  -- @treturn boolean
  is_error = errors.is,
  --- Versions and capabilities, for diagnostics (`kpayment doctor`): a new
  -- table each call with `kpayment` (this version), `lua`, `luajit` (nil
  -- but under LuaJIT), `curl` (libcurl's version), `ssl` (its TLS
  -- library), `http2`, `compression` (encodings it decodes: `"gzip"`,
  -- `"br"`, …), `ca_file` and `ca_path` (its built-in CA defaults),
  -- `proxy` (the proxy variables set, name -> value, credentials
  -- `[redacted]`), `transport` (`"curl"`, or `"cosocket"` inside nginx) and
  -- `curl_info` (all of `kpayment.core.info()`).
  -- @function info
  -- @treturn table
  -- @usage print(kpayment.info().curl, kpayment.info().ssl)
  info = info.collect,
  --- The API's address when neither the `base_url` option nor
  -- `KPAYMENT_BASE_URL` gives one: `"https://api.mykaarma.com"`.
  DEFAULT_BASE_URL = config.DEFAULT_BASE_URL,
}

--- Create a client: the defaults of every call, and the connections its
-- calls share, kept alive from call to call (over libcurl: a multi handle
-- for connections and the DNS cache, a share handle for TLS sessions, and
-- a pool of up to 16 idle easy handles; inside nginx, the worker's
-- cosocket pools).
--
-- Every option is optional and falls back to the environment
-- (`KPAYMENT_*`) and then to a default; see `options`.  `skin` has no
-- default: a call without one, from the call, the option or
-- `KPAYMENT_SKIN`, raises naming all three.
-- @tparam[opt] table opts see `options`
-- @treturn Client
-- @raise on an unknown option, or a bad value (naming the option)
-- @usage local client = kpayment.new{ skin = "acme", timeout = 10 }
function M.new(opts)
  return (client.new(config.resolve(opts, 2)))
end

local default_opts, default_client = nil, nil

--- Set the options of the module-level client used by `get_offers`
-- (validated now; the client itself is made on first use).  A client made
-- before is closed.
-- @tparam[opt] table opts see `options`
-- @raise as `new` does
function M.configure(opts)
  config.resolve(opts, 2)
  if default_client then default_client:close() end
  default_opts, default_client = opts, nil
end

--- `Client:get_offers` on the module-level client, made on first use from
-- the options given to `configure`, or from the environment.
-- @tparam table params as for `Client:get_offers`
-- @treturn[1] OfferList the offers
-- @return[2] nil
-- @treturn[2] Error what went wrong
function M.get_offers(params)
  if default_client == nil then default_client = client.new(config.resolve(default_opts, 2)) end
  local offers, err = client.get(default_client, params, 3)
  return offers, err
end

M.Client, M.Request = client.Client, async.Request
return M
