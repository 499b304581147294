/*
 * kp_core.c -- the kpayment.core module: the client type (kpayment.Client),
 * core.decode and core.null.  luaopen_kpayment_core is the only exported
 * symbol.
 *
 * A client returns plain values; turning them into offers or an error table
 * is the Lua side's job (lua/kpayment/response.lua), shared by every
 * transport.
 */
#include <string.h>
#include "kp_compat.h"
#include "kp_http.h"
#include "kp_json.h"

#define KP_VERSION "0.1.0"
#define KP_CLIENT "kpayment.Client"
#define KP_SNIPPET 512          /* bytes of an undecodable body kept */

typedef struct client {
  kp_http http;                 /* http.easy == NULL: closed */
} client;

static client *check_open(lua_State *L) {
  client *c = (client *)luaL_checkudata(L, 1, KP_CLIENT);
  if (c->http.easy == NULL)
    luaL_error(L, "attempt to use a closed kpayment client");
  return c;
}

/* Optional string field of the options table, left on the stack so the
 * pointer stays valid until the caller is done. */
static const char *opt_string(lua_State *L, const char *key) {
  int t = lua_getfield(L, 1, key);
  if (t == LUA_TNIL)
    return NULL;
  if (t != LUA_TSTRING)
    luaL_error(L, "option '%s' must be a string", key);
  if (strlen(lua_tostring(L, -1)) != lua_rawlen(L, -1))
    luaL_error(L, "option '%s' must not contain NUL bytes", key);
  return lua_tostring(L, -1);
}

/* Optional non-negative number of seconds, as whole milliseconds. */
static long opt_ms(lua_State *L, const char *key, long dflt) {
  int t = lua_getfield(L, 1, key);
  lua_Number s = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (t == LUA_TNIL)
    return dflt;
  if (t != LUA_TNUMBER || !(s >= 0 && s <= 86400.0 * 365))
    luaL_error(L, "option '%s' must be a number of seconds >= 0", key);
  return (long)(s * 1000 + 0.5);
}

static size_t opt_size(lua_State *L, const char *key, size_t dflt) {
  int t = lua_getfield(L, 1, key);
  lua_Number n = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (t == LUA_TNIL)
    return dflt;
  if (t != LUA_TNUMBER || !(n >= 1 && n <= (lua_Number)((size_t)-1 / 2)))
    luaL_error(L, "option '%s' must be a positive number of bytes", key);
  return (size_t)n;
}

/* The projection asked for by options.fields at idx (a table or nil);
 * NULL for a full decode.  Leaves one value (the trie or nil) on the
 * stack. */
static const kp_json_path *opt_fields(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) {
    lua_pushnil(L);
    return NULL;
  }
  return kp_json_paths(L, idx);
}

/*
 * core.new(options) -> client.  The userdata exists, closed, before any
 * resource is taken: if anything below raises, __gc releases what was
 * acquired so far.
 */
static int core_new(lua_State *L) {
  kp_http_config cfg;
  client *c;
  CURLcode rc;
  const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkstack(L, 16, NULL);
  memset(&cfg, 0, sizeof cfg);
  cfg.timeout_ms = opt_ms(L, "timeout", 30000);
  cfg.connect_timeout_ms = opt_ms(L, "connect_timeout", 10000);
  cfg.max_body = opt_size(L, "max_body", (size_t)64 * 1024 * 1024);
  cfg.username = opt_string(L, "username");
  cfg.password = opt_string(L, "password");
  cfg.bearer_token = opt_string(L, "bearer_token");
  cfg.ca_file = opt_string(L, "ca_file");
  cfg.proxy = opt_string(L, "proxy");
  cfg.user_agent = opt_string(L, "user_agent");
  lua_pushfstring(L, "%s%skpayment/" KP_VERSION " (" LUA_VERSION "; libcurl/%s)",
                  cfg.user_agent ? cfg.user_agent : "",
                  cfg.user_agent ? " " : "", cv->version);
  cfg.user_agent = lua_tostring(L, -1);

  c = (client *)kp_newuserdata(L, sizeof *c);
  memset(c, 0, sizeof *c);
  luaL_setmetatable(L, KP_CLIENT);
  if ((rc = kp_http_open(&c->http, &cfg)) != CURLE_OK) {
    kp_http_close(&c->http);
    return luaL_error(L, "cannot set up libcurl: %s", curl_easy_strerror(rc));
  }
  return 1;
}

/*
 * client:request(url [, fields]) performs one GET and reports, without
 * raising (fields: a list of paths projecting a 2xx body; error bodies are
 * always decoded whole):
 *   nil, kind, message, curl_code, status|nil   the transfer failed
 *   status, value                               the body decoded as JSON
 *   status, nil, decode_message, snippet        it did not
 * The body is decoded straight from the client's receive buffer.
 */
static int client_request(lua_State *L) {
  client *c = check_open(L);
  size_t len;
  const char *url = luaL_checklstring(L, 2, &len);
  kp_http *h = &c->http;
  kp_json_error jerr;
  char msg[128];
  long status;
  CURLcode rc;
  const kp_json_path *paths;
  luaL_argcheck(L, strlen(url) == len, 2, "URL contains a NUL byte");
  paths = opt_fields(L, 3);     /* before the transfer: misuse raises now */
  luaL_checkstack(L, 6, NULL);
  rc = kp_http_get(h, url, &status);
  if (h->oom) {
    kp_http_release_body(h);
    return luaL_error(L, "not enough memory");
  }
  if (rc != CURLE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, kp_http_failure_kind(h, rc));
    lua_pushstring(L, kp_http_failure_message(h, rc));
    lua_pushinteger(L, (lua_Integer)rc);
    if (status > 0)
      lua_pushinteger(L, status);
    else
      lua_pushnil(L);
    kp_http_release_body(h);
    return 5;
  }
  lua_pushinteger(L, status);
  if (status < 200 || status > 299)
    paths = NULL;
  if (kp_json_decode(L, h->body.data ? h->body.data : "", h->body.len, paths,
                     &jerr)) {
    kp_http_release_body(h);
    return 2;
  }
  lua_pushnil(L);
  lua_pushstring(L, kp_json_message(&jerr, msg, sizeof msg));
  lua_pushlstring(L, h->body.data ? h->body.data : "",
                  h->body.len < KP_SNIPPET ? h->body.len : KP_SNIPPET);
  kp_http_release_body(h);
  return 4;
}

/* close(), __gc and __close: idempotent. */
static int client_close(lua_State *L) {
  client *c = (client *)luaL_checkudata(L, 1, KP_CLIENT);
  kp_http_close(&c->http);
  return 0;
}

static int client_tostring(lua_State *L) {
  client *c = (client *)luaL_checkudata(L, 1, KP_CLIENT);
  if (c->http.easy == NULL)
    lua_pushliteral(L, KP_CLIENT " (closed)");
  else
    lua_pushfstring(L, KP_CLIENT " (%p)", (void *)c);
  return 1;
}

/* core.decode(text [, { fields = { "a", "b.c" } }]) -> value; malformed
 * text raises with the byte offset. */
static int core_decode(lua_State *L) {
  size_t len;
  const char *text;
  const kp_json_path *paths;
  kp_json_error err;
  char msg[128];
  luaL_checktype(L, 1, LUA_TSTRING);    /* no silent number coercion */
  text = lua_tolstring(L, 1, &len);
  lua_settop(L, 2);
  if (!lua_isnil(L, 2))
    luaL_checktype(L, 2, LUA_TTABLE);
  lua_getfield(L, lua_isnil(L, 2) ? LUA_REGISTRYINDEX : 2, "fields");
  paths = opt_fields(L, 3);
  if (!kp_json_decode(L, text, len, paths, &err))
    return luaL_error(L, "kpayment.decode: %s",
                      kp_json_message(&err, msg, sizeof msg));
  return 1;
}

static const luaL_Reg client_methods[] = {
  {"request", client_request},
  {"close", client_close},
  {NULL, NULL}
};

static const luaL_Reg client_meta[] = {
  {"__gc", client_close},
#if LUA_VERSION_NUM >= 504
  {"__close", client_close},
#endif
  {"__tostring", client_tostring},
  {NULL, NULL}
};

static const luaL_Reg core_funcs[] = {
  {"new", core_new},
  {"decode", core_decode},
  {NULL, NULL}
};

KP_EXPORT int luaopen_kpayment_core(lua_State *L);

KP_EXPORT int luaopen_kpayment_core(lua_State *L) {
  const curl_version_info_data *cv;
  int rc = kp_http_global_init();
  if (rc != 0)
    return luaL_error(L, "kpayment: libcurl global init failed: %s",
                      curl_easy_strerror((CURLcode)rc));
  cv = curl_version_info(CURLVERSION_NOW);
  if (luaL_newmetatable(L, KP_CLIENT)) {
    luaL_setfuncs(L, client_meta, 0);
    luaL_newlib(L, client_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, core_funcs);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_pushliteral(L, KP_VERSION);
  lua_setfield(L, -2, "_VERSION");
  lua_pushstring(L, cv->version);
  lua_setfield(L, -2, "curl_version");
  return 1;
}
