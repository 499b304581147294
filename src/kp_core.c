/*
 * kp_core.c -- the kpayment.core module: registration of the types
 * (kp_client.c, kp_request.c), core.decode and core.fields (the decoder
 * without the network), core.LIMITS, the clock and sleep the Lua side
 * needs for budgets and backoff, core.base64, and core.info (libcurl's
 * versions and capabilities).  luaopen_kpayment_core is the only exported
 * symbol.
 *
 * The core hands Lua named outcomes (kp_outcome.c); turning them into
 * offers or error objects, retries and callbacks are the Lua side's job
 * (lua/kpayment/).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include "kp_client.h"
#include "kp_json.h"
#include "kp_outcome.h"

void kp_new_type(lua_State *L, const char *name, const luaL_Reg *meta,
                 const luaL_Reg *methods) {
  if (luaL_newmetatable(L, name)) {
    luaL_setfuncs(L, meta, 0);
    if (methods != NULL) {
      lua_newtable(L);
      luaL_setfuncs(L, methods, 0);
      lua_setfield(L, -2, "__index");
    }
  }
  lua_pop(L, 1);
}

const void *kp_fields_check(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx))
    return NULL;
  return luaL_checkudata(L, idx, KP_FIELDS);
}

/* core.fields(list) -> a projection for core.decode and client:start,
 * built once: the trie copies the paths, so later changes to the list do
 * not matter.  Raises on a bad list. */
static int core_fields(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  (void)kp_json_paths(L, 1);
  luaL_setmetatable(L, KP_FIELDS);
  return 1;
}

/* The projection of core.decode's options.fields: a Fields, a list (built
 * here), or nil.  Leaves one value on the stack. */
static const kp_json_path *decode_fields(lua_State *L, int opts) {
  int t = lua_isnil(L, opts) ? LUA_TNIL : lua_getfield(L, opts, "fields");
  if (lua_isnil(L, opts))
    lua_pushnil(L);
  if (t == LUA_TNIL)
    return NULL;
  if (t == LUA_TTABLE) {
    const kp_json_path *paths = kp_json_paths(L, -1);
    lua_remove(L, -2);
    return paths;
  }
  return (const kp_json_path *)kp_fields_check(L, -1);
}

/*
 * The records walk in steps of step_ms, as a request's outcome(budget)
 * runs it, with on_step (when a function) called between two steps: for
 * specs and benchmarks to compare with the one-shot decode.  Pushes the
 * value and the number of steps, or returns 0 with *err filled.
 */
static int decode_steps(lua_State *L, const char *text, size_t len,
                        const kp_json_opts *opts, double step_ms, int on_step,
                        kp_json_error *err) {
  kp_json_slicer s;
  lua_Integer steps = 1;
  int state, rc;
  kp_json_slicer_init(&s);
  kp_json_push_slices(L);
  state = lua_gettop(L);
  while ((rc = kp_json_decode_step(L, &s, state, text, len, opts, step_ms)) ==
         KP_JSON_MORE) {
    steps++;
    if (on_step != 0) {
      lua_pushvalue(L, on_step);
      lua_call(L, 0, 0);
    }
  }
  *err = s.err;
  if (!rc)
    return 0;
  lua_pushinteger(L, steps);
  return 1;
}

/* core.decode(text [, { fields = list|Fields, records = "name",
 * step_ms = ms, on_step = function }]) -> value; malformed text raises with
 * the byte offset.  records: the top level must be an object whose member
 * of that name, when present, is an array of objects.  step_ms (with
 * records): decode in steps of that many milliseconds, at least one record
 * each, calling on_step between two, and return the number of steps too. */
static int core_decode(lua_State *L) {
  size_t len;
  const char *text;
  kp_json_opts opts;
  kp_json_error err;
  char msg[160];
  int ok, nret = 1;
  luaL_checktype(L, 1, LUA_TSTRING);    /* no silent number coercion */
  text = lua_tolstring(L, 1, &len);
  lua_settop(L, 2);
  if (!lua_isnil(L, 2))
    luaL_checktype(L, 2, LUA_TTABLE);
  opts.paths = decode_fields(L, 2);             /* 3 */
  opts.records = NULL;
  opts.meta = 0;
  if (!lua_isnil(L, 2)) {
    int t = lua_getfield(L, 2, "records");      /* 4: anchors the name */
    if (t == LUA_TSTRING)
      opts.records = lua_tostring(L, 4);
    else if (t != LUA_TNIL)
      return luaL_error(L, "kpayment.decode: option 'records' must be a string");
  }
  if (!lua_isnil(L, 2) && lua_getfield(L, 2, "step_ms") != LUA_TNIL) { /* 5 */
    lua_Number ms = lua_tonumber(L, 5);
    if (lua_type(L, 5) != LUA_TNUMBER || !(ms >= 0 && ms <= KP_MAX_SECONDS * 1e3))
      return luaL_error(L, "kpayment.decode: option 'step_ms' must be a number of milliseconds");
    lua_getfield(L, 2, "on_step");              /* 6 */
    ok = decode_steps(L, text, len, &opts, (double)ms,
                      lua_isfunction(L, 6) ? 6 : 0, &err);
    nret = 2;
  } else {
    ok = kp_json_decode_opts(L, text, len, &opts, &err);
  }
  if (!ok)
    return luaL_error(L, "kpayment.decode: %s",
                      kp_json_message(&err, msg, sizeof msg));
  return nret;
}

/* core.monotonic() -> seconds from an arbitrary start, never going back:
 * for frame budgets and deadlines, unlike os.time or os.clock. */
static int core_monotonic(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* core.sleep(seconds): for waits between retries of a blocking call. */
static int core_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  struct timespec ts;
  luaL_argcheck(L, s >= 0 && s <= 3600, 1, "seconds from 0 to 3600 expected");
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;                           /* interrupted: sleep the rest */
  return 0;
}

void kp_push_base64(lua_State *L, const char *s, size_t n) {
  static const char digits[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  luaL_Buffer b;
  size_t i;
  luaL_buffinit(L, &b);
  for (i = 0; i < n; i += 3) {
    unsigned long v = (unsigned long)(unsigned char)s[i] << 16;
    char out[4];
    if (i + 1 < n)
      v |= (unsigned long)(unsigned char)s[i + 1] << 8;
    if (i + 2 < n)
      v |= (unsigned char)s[i + 2];
    out[0] = digits[(v >> 18) & 63];
    out[1] = digits[(v >> 12) & 63];
    out[2] = i + 1 < n ? digits[(v >> 6) & 63] : '=';
    out[3] = i + 2 < n ? digits[v & 63] : '=';
    luaL_addlstring(&b, out, 4);
  }
  luaL_pushresult(&b);
}

/* core.base64(s) -> its Base64 (kp_push_base64). */
static int core_base64(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  kp_push_base64(L, s, n);
  return 1;
}

static void set_opt_string(lua_State *L, const char *key, const char *v) {
  if (v != NULL && v[0] != '\0') {
    lua_pushstring(L, v);
    lua_setfield(L, -2, key);
  }
}

static void set_flag(lua_State *L, const char *key, int features, int bit) {
  lua_pushboolean(L, (features & bit) != 0);
  lua_setfield(L, -2, key);
}

/* A NULL-terminated list of names as a Lua list at field `key`. */
static void set_names(lua_State *L, const char *key, const char *const *names) {
  lua_Integer i;
  if (names == NULL)
    return;
  lua_newtable(L);
  for (i = 0; names[i] != NULL; i++) {
    lua_pushstring(L, names[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, key);
}

/*
 * core.info() -> a new table of what the libcurl in use says of itself
 * (read once, at load: kp_http_curl_info): version, the version built
 * against, TLS backend, HTTP/2 and HTTP/3, the compression libraries, the
 * built-in CA file and directory, protocols and feature names.  A field
 * this libcurl is too old to report is absent (nil).
 */
static int core_info(lua_State *L) {
  const curl_version_info_data *cv = kp_http_curl_info();
  lua_createtable(L, 0, 20);
  lua_pushliteral(L, LIBCURL_VERSION);
  lua_setfield(L, -2, "compiled");
  if (cv == NULL)
    return 1;
  set_opt_string(L, "version", cv->version);
  lua_pushinteger(L, (lua_Integer)cv->version_num);
  lua_setfield(L, -2, "version_num");
  set_opt_string(L, "host", cv->host);
  set_opt_string(L, "ssl", cv->ssl_version);
  set_flag(L, "http2", cv->features, CURL_VERSION_HTTP2);
  set_flag(L, "http3", cv->features, CURL_VERSION_HTTP3);
  set_flag(L, "https_proxy", cv->features, CURL_VERSION_HTTPS_PROXY);
  set_flag(L, "asynch_dns", cv->features, CURL_VERSION_ASYNCHDNS);
  set_flag(L, "ipv6", cv->features, CURL_VERSION_IPV6);
  if (cv->features & CURL_VERSION_LIBZ)
    set_opt_string(L, "libz", cv->libz_version);
  set_names(L, "protocols", cv->protocols);
#if LIBCURL_VERSION_NUM >= 0x073900     /* 7.57.0: CURLVERSION_FIFTH */
  if (cv->age >= CURLVERSION_FIFTH && (cv->features & CURL_VERSION_BROTLI))
    set_opt_string(L, "brotli", cv->brotli_version);
#endif
#if LIBCURL_VERSION_NUM >= 0x074200     /* 7.66.0: CURLVERSION_SIXTH */
  if (cv->age >= CURLVERSION_SIXTH)
    set_opt_string(L, "nghttp2", cv->nghttp2_version);
#endif
#if LIBCURL_VERSION_NUM >= 0x074600     /* 7.70.0: CURLVERSION_SEVENTH */
  if (cv->age >= CURLVERSION_SEVENTH) {
    set_opt_string(L, "ca_file", cv->cainfo);
    set_opt_string(L, "ca_path", cv->capath);
  }
#endif
#if LIBCURL_VERSION_NUM >= 0x074800     /* 7.72.0: CURLVERSION_EIGHTH */
  if (cv->age >= CURLVERSION_EIGHTH && (cv->features & CURL_VERSION_ZSTD))
    set_opt_string(L, "zstd", cv->zstd_version);
#endif
#if LIBCURL_VERSION_NUM >= 0x075700     /* 7.87.0: CURLVERSION_ELEVENTH */
  if (cv->age >= CURLVERSION_ELEVENTH)
    set_names(L, "features", cv->feature_names);
#endif
  return 1;
}

/* The limits the C side enforces, for the Lua validator to use as well. */
static void push_limits(lua_State *L) {
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, KP_MAX_SECONDS);
  lua_setfield(L, -2, "seconds");
  lua_pushnumber(L, KP_MAX_BODY);
  lua_setfield(L, -2, "max_body");
  lua_pushinteger(L, KP_SNIPPET);
  lua_setfield(L, -2, "snippet");
  lua_pushinteger(L, KP_MAX_SNIPPET);
  lua_setfield(L, -2, "max_snippet");
  lua_pushinteger(L, (lua_Integer)sizeof(((kp_result *)0)->request_id) - 1);
  lua_setfield(L, -2, "request_id");
}

/* The defaults of the options C applies, for the Lua side and the docs. */
static void push_defaults(lua_State *L) {
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, KP_DEFAULT_TIMEOUT);
  lua_setfield(L, -2, "timeout");
  lua_pushinteger(L, KP_DEFAULT_CONNECT_TIMEOUT);
  lua_setfield(L, -2, "connect_timeout");
  lua_pushinteger(L, (lua_Integer)KP_DEFAULT_MAX_BODY);
  lua_setfield(L, -2, "max_body");
  lua_pushinteger(L, KP_DEFAULT_POOL_SIZE);
  lua_setfield(L, -2, "pool_size");
  lua_pushinteger(L, KP_DEFAULT_POOL_IDLE);
  lua_setfield(L, -2, "pool_idle_timeout");
}

/* core.record_metatable(mt): the metatable each record of a request's
 * decoded body gets as it is built (the wrapper's Offer), so no pass over
 * the records is left for the end of a sliced decode. */
static int core_record_metatable(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  kp_outcome_set_meta(L, 1);
  return 0;
}

static const luaL_Reg core_funcs[] = {
  {"record_metatable", core_record_metatable},
  {"sleep", core_sleep},
  {"decode", core_decode},
  {"fields", core_fields},
  {"monotonic", core_monotonic},
  {"base64", core_base64},
  {"info", core_info},
  {NULL, NULL}
};

static const luaL_Reg fields_meta[] = {
  {NULL, NULL}
};

KP_EXPORT int luaopen_kpayment_core(lua_State *L);

KP_EXPORT int luaopen_kpayment_core(lua_State *L) {
  int rc = kp_http_global_init();
  if (rc != 0)
    return luaL_error(L, "kpayment: libcurl global init failed: %s",
                      curl_easy_strerror((CURLcode)rc));
  kp_new_type(L, KP_FIELDS, fields_meta, NULL);
  kp_request_register(L);
  luaL_newlib(L, core_funcs);
  kp_client_register(L);
  push_limits(L);
  lua_setfield(L, -2, "LIMITS");
  push_defaults(L);
  lua_setfield(L, -2, "DEFAULTS");
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  kp_json_push_empty_object(L);
  lua_setfield(L, -2, "empty_object");
  lua_pushliteral(L, KP_VERSION);
  lua_setfield(L, -2, "_VERSION");
  lua_pushstring(L, kp_http_curl_version());
  lua_setfield(L, -2, "curl_version");
  return 1;
}
