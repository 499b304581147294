/*
 * kp_core.c -- the kpayment.core module: the client type (kpayment.Client:
 * blocking requests, started requests, poll), the request type
 * (kpayment.Request), core.decode, core.null and the clock and sleep the
 * Lua side needs for budgets and backoff.  luaopen_kpayment_core is the
 * only exported symbol.
 *
 * A client returns plain values; turning them into offers or an error table
 * is the Lua side's job (lua/kpayment/response.lua), shared by every
 * transport.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include "kp_compat.h"
#include "kp_http.h"
#include "kp_json.h"

#define KP_VERSION "0.1.0"
#define KP_CLIENT "kpayment.Client"
#define KP_REQUEST "kpayment.Request"
#define KP_SNIPPET 512          /* bytes of an undecodable body kept */

typedef struct client {
  kp_transport tp;              /* tp.multi == NULL: closed */
  kp_transfer sync;             /* reused by every blocking request */
} client;

typedef struct request {
  kp_transfer t;
  int taken;                    /* the outcome is kept in the user value */
} request;

static client *check_open(lua_State *L) {
  client *c = (client *)luaL_checkudata(L, 1, KP_CLIENT);
  if (c->tp.multi == NULL)
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

/* Optional boolean: only `true` turns it on. */
static int opt_flag(lua_State *L, const char *key) {
  int t = lua_getfield(L, 1, key), on = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (t != LUA_TNIL && t != LUA_TBOOLEAN)
    luaL_error(L, "option '%s' must be a boolean", key);
  return on;
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
  cfg.insecure = opt_flag(L, "insecure");
  cfg.follow_redirects = opt_flag(L, "follow_redirects");
  lua_pushfstring(L, "%s%skpayment/" KP_VERSION " (" LUA_VERSION "; libcurl/%s)",
                  cfg.user_agent ? cfg.user_agent : "",
                  cfg.user_agent ? " " : "", cv->version);
  cfg.user_agent = lua_tostring(L, -1);

  c = (client *)kp_newuserdata(L, sizeof *c);
  memset(c, 0, sizeof *c);
  luaL_setmetatable(L, KP_CLIENT);
  if ((rc = kp_transport_open(&c->tp, &cfg)) != CURLE_OK) {
    kp_transport_close(&c->tp);
    return luaL_error(L, "cannot set up libcurl: %s", curl_easy_strerror(rc));
  }
  return 1;
}

/*
 * A finished transfer as plain values, without raising (paths: a
 * projection for a 2xx body; error bodies are always decoded whole):
 *   nil, kind, message, curl_code, status|nil, info   the transfer failed
 *   status, value, nil, nil, nil, info                the body decoded
 *   status, nil, decode_message, snippet, nil, info   it did not
 * info: { total_time = s, retry_after = "…"?, request_id = "…"? }
 * The body is decoded straight from the receive buffer, then released.
 */
/* What else the response said, for retries and result metadata. */
static void push_info(lua_State *L, const kp_transfer *t) {
  lua_createtable(L, 0, 3);
  lua_pushnumber(L, t->total_time);
  lua_setfield(L, -2, "total_time");
  if (t->retry_after[0]) {
    lua_pushstring(L, t->retry_after);
    lua_setfield(L, -2, "retry_after");
  }
  if (t->request_id[0]) {
    lua_pushstring(L, t->request_id);
    lua_setfield(L, -2, "request_id");
  }
}

/* The outcome pushed; the body is kept, so that a caller interrupted by an
 * out-of-memory error can ask again. */
static int outcome_values(lua_State *L, kp_transfer *t, const kp_json_path *paths) {
  kp_json_error jerr;
  char msg[128];
  luaL_checkstack(L, 8, NULL);
  if (t->oom)
    return luaL_error(L, "not enough memory");
  if (t->state != KP_DONE || t->rc != CURLE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, kp_transfer_failure_kind(t));
    lua_pushstring(L, kp_transfer_failure_message(t));
    lua_pushinteger(L, (lua_Integer)t->rc);
    if (t->status > 0)
      lua_pushinteger(L, t->status);
    else
      lua_pushnil(L);
    push_info(L, t);
    return 6;
  }
  lua_pushinteger(L, t->status);
  if (t->status < 200 || t->status > 299)
    paths = NULL;
  if (kp_json_decode(L, t->body.data ? t->body.data : "", t->body.len, paths,
                     &jerr)) {
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushnil(L);
    push_info(L, t);
    return 6;
  }
  lua_pushnil(L);
  lua_pushstring(L, kp_json_message(&jerr, msg, sizeof msg));
  lua_pushlstring(L, t->body.data ? t->body.data : "",
                  t->body.len < KP_SNIPPET ? t->body.len : KP_SNIPPET);
  lua_pushnil(L);
  push_info(L, t);
  return 6;
}

/* The outcome of a finished transfer, then its body released. */
static int push_outcome(lua_State *L, kp_transfer *t, const kp_json_path *paths) {
  int n = outcome_values(L, t, paths);
  kp_transfer_release_body(t);
  return n;
}

static const char *check_url(lua_State *L, int idx) {
  size_t len;
  const char *url = luaL_checklstring(L, idx, &len);
  luaL_argcheck(L, strlen(url) == len, idx, "URL contains a NUL byte");
  return url;
}

/* client:request(url [, fields [, timeout_ms]]) -> outcome: one GET,
 * waiting for it.  It
 * runs on the client's multi handle, so it reuses the connections of
 * every other request of this client (and drives them along). */
static long opt_timeout(lua_State *L, int idx) {
  lua_Integer ms = luaL_optinteger(L, idx, -1);
  luaL_argcheck(L, ms >= -1 && ms <= 86400000, idx, "timeout in ms expected");
  return (long)ms;
}

static int client_request(lua_State *L) {
  client *c = check_open(L);
  const char *url = check_url(L, 2);
  long timeout = opt_timeout(L, 4);
  const kp_json_path *paths = opt_fields(L, 3);  /* misuse raises first */
  CURLcode rc;
  if ((rc = kp_transfer_start(&c->tp, &c->sync, url, timeout)) != CURLE_OK)
    return luaL_error(L, "cannot start a request: %s", curl_easy_strerror(rc));
  while (c->sync.state == KP_RUNNING) {
    if (kp_transport_poll(&c->tp, 1000) < 0) {
      kp_transfer_cancel(&c->sync);
      return luaL_error(L, "kpayment: libcurl's multi handle failed");
    }
  }
  return push_outcome(L, &c->sync, paths);
}

/*
 * client:start(url [, fields [, timeout_ms]]) -> request, at once.  The request keeps its
 * client (and fields) alive through its user value, so the client is
 * finalized after it.
 */
static int client_start(lua_State *L) {
  client *c = check_open(L);
  const char *url = check_url(L, 2);
  long timeout = opt_timeout(L, 4);
  request *r;
  CURLcode rc;
  lua_settop(L, 3);
  if (!lua_isnil(L, 3)) {
    (void)kp_json_paths(L, 3);  /* validate now, not when it is done */
    lua_pop(L, 1);
  }
  r = (request *)kp_newuserdata1(L, sizeof *r);
  memset(r, 0, sizeof *r);
  luaL_setmetatable(L, KP_REQUEST);
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, 3);
  lua_rawseti(L, -2, 2);
  kp_setuservalue(L, -2);
  if ((rc = kp_transfer_start(&c->tp, &r->t, url, timeout)) != CURLE_OK)
    return luaL_error(L, "cannot start a request: %s", curl_easy_strerror(rc));
  return 1;
}

/* client:poll([ms]) -> number of transfers still running.  Does the
 * network work that is ready, waiting up to ms (default 0) for some. */
static int client_poll(lua_State *L) {
  client *c = check_open(L);
  lua_Integer ms = luaL_optinteger(L, 2, 0);
  int running;
  luaL_argcheck(L, ms >= 0 && ms <= 86400000, 2, "milliseconds from 0 to 86400000");
  if ((running = kp_transport_poll(&c->tp, (int)ms)) < 0)
    return luaL_error(L, "kpayment: libcurl's multi handle failed");
  lua_pushinteger(L, running);
  return 1;
}

/* close(), __gc and __close: idempotent; running requests are cancelled. */
static int client_close(lua_State *L) {
  client *c = (client *)luaL_checkudata(L, 1, KP_CLIENT);
  kp_transfer_cancel(&c->sync);
  kp_transport_close(&c->tp);
  return 0;
}

static int client_tostring(lua_State *L) {
  client *c = (client *)luaL_checkudata(L, 1, KP_CLIENT);
  if (c->tp.multi == NULL)
    lua_pushliteral(L, KP_CLIENT " (closed)");
  else
    lua_pushfstring(L, KP_CLIENT " (%p)", (void *)c);
  return 1;
}

static request *check_request(lua_State *L) {
  return (request *)luaL_checkudata(L, 1, KP_REQUEST);
}

/* request:done() -> true once finished, failed or cancelled. */
static int request_done(lua_State *L) {
  lua_pushboolean(L, check_request(L)->t.state != KP_RUNNING);
  return 1;
}

#define OUTCOME_SLOT 3          /* user value slots 3..8 keep the outcome */

/*
 * request:result() -> outcome (as client:request).  The first call decodes
 * and keeps the values in the request's user value; only once they are
 * kept is the body released.  Any later call, also one after an
 * out-of-memory error cut the first short, gets the same values.
 */
static int request_result(lua_State *L) {
  request *r = check_request(L);
  const kp_json_path *paths;
  int i, n;
  if (r->t.state == KP_RUNNING)
    return luaL_error(L, "request still running (poll until done())");
  lua_settop(L, 1);
  kp_getuservalue(L, 1);        /* 2: { client, fields, outcome… } */
  if (!r->taken) {
    lua_rawgeti(L, 2, 2);       /* the fields list, or nil */
    paths = opt_fields(L, 3);   /* 4: trie */
    n = outcome_values(L, &r->t, paths);
    for (i = n; i >= 1; i--)    /* keeps (and pops) the values */
      lua_rawseti(L, 2, OUTCOME_SLOT + i);
    r->taken = 1;
    kp_transfer_release_body(&r->t);
  }
  luaL_checkstack(L, 6, NULL);
  for (i = 1; i <= 6; i++)
    lua_rawgeti(L, 2, OUTCOME_SLOT + i);
  return 6;
}

/* request:status() -> HTTP status (0 if none), libcurl code, without
 * decoding or consuming anything: enough to tell success from failure. */
static int request_status(lua_State *L) {
  request *r = check_request(L);
  lua_pushinteger(L, r->t.status);
  lua_pushinteger(L, r->t.state == KP_CANCELLED ? -1 : (lua_Integer)r->t.rc);
  return 2;
}

/* request:cancel(), __gc and __close: stop it and free its buffer. */
static int request_cancel(lua_State *L) {
  kp_transfer_cancel(&check_request(L)->t);
  return 0;
}

static int request_tostring(lua_State *L) {
  static const char *const names[] = {"new", "running", "done", "cancelled"};
  request *r = check_request(L);
  lua_pushfstring(L, KP_REQUEST " (%s)", names[r->t.state]);
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
  {"start", client_start},
  {"poll", client_poll},
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

static const luaL_Reg request_methods[] = {
  {"done", request_done},
  {"status", request_status},
  {"result", request_result},
  {"cancel", request_cancel},
  {NULL, NULL}
};

static const luaL_Reg request_meta[] = {
  {"__gc", request_cancel},
#if LUA_VERSION_NUM >= 504
  {"__close", request_cancel},
#endif
  {"__tostring", request_tostring},
  {NULL, NULL}
};

static void new_type(lua_State *L, const char *name, const luaL_Reg *meta,
                     const luaL_Reg *methods) {
  if (luaL_newmetatable(L, name)) {
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
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

static const luaL_Reg core_funcs[] = {
  {"sleep", core_sleep},
  {"new", core_new},
  {"decode", core_decode},
  {"monotonic", core_monotonic},
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
  new_type(L, KP_CLIENT, client_meta, client_methods);
  new_type(L, KP_REQUEST, request_meta, request_methods);
  luaL_newlib(L, core_funcs);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_pushliteral(L, KP_VERSION);
  lua_setfield(L, -2, "_VERSION");
  lua_pushstring(L, cv->version);
  lua_setfield(L, -2, "curl_version");
  return 1;
}
