/*
 * kp_client.c -- kpayment.Client: one transport (kp_http.h) shared by every
 * request of a Lua client: over libcurl its connections, DNS cache and TLS
 * sessions; otherwise the attempts that Lua code sends.  core.new,
 * core.external, the request headers every transport sends, and the
 * methods start, poll, headers and close.
 *
 * The userdata exists, closed, before any resource is taken, so a raise in
 * the middle of core.new leaks nothing: __gc releases what was acquired.
 * Every method re-checks the closed state after its last Lua allocation
 * (a finalizer may have closed the client in between).
 *
 * lua_close runs every finalizer, newest first, and an on_done called from
 * a client's may start more.  What is made then is lost: 5.2 to 5.4
 * register no finalizer for it (its libcurl handles leak), and LuaJIT
 * finalizes it after unloading this library (a crash).  So two objects,
 * reachable only from the registry, watch the state:
 * - the sentinel, remade after each client (core.track_close), so newer
 *   than all of them: its __gc runs only at lua_close, first, and marks
 *   the state closing, after which no client or request can be made;
 * - the keeper, made before the first client, so older than all: its __gc
 *   runs last and closes whatever client is still open (one made by a
 *   finalizer newer than the sentinel).
 */
#include <string.h>
#include "kp_client.h"

typedef struct kp_keeper {
  kp_client *head;              /* the open clients */
  int closing;                  /* lua_close has begun */
} kp_keeper;

/* their addresses are the registry keys (const: no state of the library) */
static const char keeper_key = 'k';
static const char sentinel_key = 's';

static void unlink_client(kp_client *c) {
  if (c->keeper == NULL)
    return;
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    c->keeper->head = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  c->keeper = NULL;
  c->prev = c->next = NULL;
}

static int keeper_gc(lua_State *L) {
  kp_keeper *k = (kp_keeper *)lua_touserdata(L, 1);
  k->closing = 1;
  while (k->head != NULL) {
    kp_client *c = k->head;
    kp_transport_close(&c->tp);
    unlink_client(c);
  }
  return 0;
}

/* The registry's value at key (pushes nothing): a userdata, or NULL. */
static void *registry_ud(lua_State *L, const char *key) {
  void *p;
  lua_rawgetp(L, LUA_REGISTRYINDEX, key);
  p = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return p;
}

/* Anchor at the registry's key a new userdata of n bytes, zeroed, whose
 * __gc is gc; returns it (not left on the stack). */
static void *anchor(lua_State *L, const char *key, size_t n, lua_CFunction gc) {
  void *p = lua_newuserdata(L, n);
  memset(p, 0, n);
  lua_newtable(L);
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
  return p;
}

/* Raises once lua_close has begun: what would be made now is lost. */
static void check_open(lua_State *L, const kp_keeper *k) {
  if (k != NULL && k->closing)
    luaL_error(L, "the Lua state is closing (lua_close): no new client or request");
}

/* The state's keeper, made by the first client. */
static kp_keeper *keeper(lua_State *L) {
  kp_keeper *k = (kp_keeper *)registry_ud(L, &keeper_key);
  if (k == NULL)
    k = (kp_keeper *)anchor(L, &keeper_key, sizeof *k, keeper_gc);
  check_open(L, k);
  return k;
}

/* Only the sentinel the registry holds is collected at lua_close alone;
 * one it replaced is garbage, and its __gc does nothing. */
static int sentinel_gc(lua_State *L) {
  if (registry_ud(L, &sentinel_key) == lua_touserdata(L, 1)) {
    kp_keeper *k = (kp_keeper *)registry_ud(L, &keeper_key);
    if (k != NULL)
      k->closing = 1;
  }
  return 0;
}

/* core.track_close(): a new sentinel, newer than the client just made
 * (kpayment.new calls it last). */
static int core_track_close(lua_State *L) {
  (void)anchor(L, &sentinel_key, 1, sentinel_gc);
  return 0;
}

/* core.closing() -> whether lua_close has begun (no client or request
 * can be made). */
static int core_closing(lua_State *L) {
  const kp_keeper *k = (const kp_keeper *)registry_ud(L, &keeper_key);
  lua_pushboolean(L, k != NULL && k->closing);
  return 1;
}

void kp_client_check_open(lua_State *L, const kp_client *c) {
  check_open(L, c->keeper);
}

static kp_client *to_client(lua_State *L) {
  return (kp_client *)luaL_checkudata(L, 1, KP_CLIENT);
}

/* Optional string field of the options table, left on the stack so the
 * pointer stays valid until the caller is done. */
static const char *opt_string(lua_State *L, const char *key) {
  size_t len;
  const char *s;
  int t = lua_getfield(L, 1, key);
  if (t == LUA_TNIL)
    return NULL;
  if (t != LUA_TSTRING)
    luaL_error(L, "option '%s' must be a string", key);
  s = lua_tolstring(L, -1, &len);
  if (strlen(s) != len)
    luaL_error(L, "option '%s' must not contain NUL bytes", key);
  return s;
}

/* Optional boolean: only `true` turns it on. */
static int opt_flag(lua_State *L, const char *key) {
  int t = lua_getfield(L, 1, key), on = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (t != LUA_TNIL && t != LUA_TBOOLEAN)
    luaL_error(L, "option '%s' must be a boolean", key);
  return on;
}

/* Optional number within [lo, hi] (the limits the Lua side checks too). */
static lua_Number opt_number(lua_State *L, const char *key, lua_Number dflt,
                             lua_Number lo, lua_Number hi) {
  int t = lua_getfield(L, 1, key);
  lua_Number n = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (t == LUA_TNIL)
    return dflt;
  if (t != LUA_TNUMBER || !(n >= lo && n <= hi))
    luaL_error(L, "option '%s' must be a number from %f to %f", key, lo, hi);
  return n;
}

/* Seconds as whole milliseconds; KP_MAX_SECONDS keeps it within a long. */
static long opt_ms(lua_State *L, const char *key, long dflt_ms) {
  lua_Number s = opt_number(L, key, (lua_Number)dflt_ms / 1000, 0, KP_MAX_SECONDS);
  return (long)(s * 1000 + 0.5);
}

static size_t max_body_limit(void) {
  return (lua_Number)((size_t)-1 / 2) < KP_MAX_BODY ? (size_t)-1 / 2
                                                    : (size_t)KP_MAX_BODY;
}

/* The "Authorization: ..." line of the options' credentials pushed, or
 * nothing pushed and NULL without credentials. */
static const char *push_authorization(lua_State *L, const char *username,
                                      const char *password, const char *bearer) {
  if (bearer != NULL)
    return lua_pushfstring(L, "Authorization: Bearer %s", bearer);
  if (username == NULL)
    return NULL;
  /* Basic: sent with the first request, no 401 round trip */
  lua_pushliteral(L, "Authorization: Basic ");
  lua_pushfstring(L, "%s:%s", username, password ? password : "");
  kp_push_base64(L, lua_tostring(L, -1), lua_rawlen(L, -1));
  lua_remove(L, -2);
  lua_concat(L, 2);
  return lua_tostring(L, -1);
}

/* The name of the Lua running us: LuaJIT's own version when the global
 * `jit` says so, else _VERSION as lua.h spells it. */
static const char *push_runtime(lua_State *L) {
  lua_getglobal(L, "jit");
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_getfield(L, -1, "version");
    lua_remove(L, -2);
    if (lua_type(L, -1) == LUA_TSTRING)
      return lua_tostring(L, -1);
  }
  lua_pop(L, 1);
  return lua_pushliteral(L, LUA_VERSION);
}

/* "User-Agent: [app ]kpayment/<version> (<Lua>[; <via>])" pushed: the one
 * format, whatever sends the request (via: "libcurl/7.88.1",
 * "nginx/1.22.1", or NULL for a user's transport function). */
static const char *push_user_agent(lua_State *L, const char *app, const char *via) {
  const char *runtime = push_runtime(L);
  lua_pushfstring(L, "User-Agent: %s%skpayment/" KP_VERSION " (%s%s%s)", app ? app : "",
                  app ? " " : "", runtime, via ? "; " : "", via ? via : "");
  lua_remove(L, -2);
  return lua_tostring(L, -1);
}

/* The `resolve` option (a list of "host:port:address") into the
 * transport's list, which the userdata owns: a raise halfway leaks nothing. */
static void opt_resolve(lua_State *L, kp_transport *tp) {
  lua_Integer i, n;
  if (lua_getfield(L, 1, "resolve") == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (!lua_istable(L, -1))
    luaL_error(L, "option 'resolve' must be a list of \"host:port:address\" strings");
  n = (lua_Integer)lua_rawlen(L, -1);
  for (i = 1; i <= n; i++) {
    struct curl_slist *l;
    size_t len;
    const char *s;
    lua_rawgeti(L, -1, i);
    s = lua_tolstring(L, -1, &len);
    if (lua_type(L, -1) != LUA_TSTRING || strlen(s) != len)
      luaL_error(L, "option 'resolve' must be a list of \"host:port:address\" strings");
    if ((l = curl_slist_append(tp->resolve, s)) == NULL)
      luaL_error(L, "not enough memory");
    tp->resolve = l;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/*
 * core.new(options) -> a client over libcurl; core.external(options [,
 * via]) -> a client whose attempts Lua code sends (kp_report.c), `via`
 * naming that code's HTTP stack in the User-Agent.  Options are those of
 * kpayment.new after the Lua side resolved and validated them; the checks
 * here only keep a direct caller of kpayment.core from passing nonsense on.
 */
static int new_client(lua_State *L, int external) {
  kp_http_config cfg;
  kp_keeper *k;
  kp_client *c;
  CURLcode rc;
  const char *lines[4];
  int n = 0;
  const char *via;
  luaL_checktype(L, 1, LUA_TTABLE);
  via = external ? luaL_optstring(L, 2, NULL) : NULL;
  lua_settop(L, 2);
  luaL_checkstack(L, 24, NULL);
  memset(&cfg, 0, sizeof cfg);
  cfg.timeout_ms = opt_ms(L, "timeout", KP_DEFAULT_TIMEOUT * 1000);
  cfg.connect_timeout_ms = opt_ms(L, "connect_timeout", KP_DEFAULT_CONNECT_TIMEOUT * 1000);
  cfg.max_body = (size_t)opt_number(L, "max_body", KP_DEFAULT_MAX_BODY, 1,
                                    (lua_Number)max_body_limit());
  cfg.pool_size = (long)opt_number(L, "pool_size", KP_DEFAULT_POOL_SIZE, 1, KP_MAX_POOL_SIZE);
  cfg.pool_idle_s = (long)opt_number(L, "pool_idle_timeout", KP_DEFAULT_POOL_IDLE, 0,
                                     KP_MAX_SECONDS);
  cfg.snippet = (size_t)opt_number(L, "snippet", KP_SNIPPET, 0, KP_MAX_SNIPPET);
  cfg.ca_file = opt_string(L, "ca_file");
  cfg.proxy = opt_string(L, "proxy");
  cfg.insecure = opt_flag(L, "insecure");
  cfg.follow_redirects = opt_flag(L, "follow_redirects");
  cfg.external = external;
  lines[n++] = "Accept: application/json";
  {
    const char *username = opt_string(L, "username");
    const char *password = opt_string(L, "password");
    const char *bearer = opt_string(L, "bearer_token");
    const char *auth = push_authorization(L, username, password, bearer);
    if (auth != NULL)
      lines[n++] = auth;
  }
  if (!external) {
    lua_pushfstring(L, "libcurl/%s", kp_http_curl_version());
    via = lua_tostring(L, -1);
  }
  lines[n++] = push_user_agent(L, opt_string(L, "user_agent"), via);
  lines[n] = NULL;
  cfg.headers = lines;

  k = keeper(L);
  c = (kp_client *)kp_newuserdata(L, sizeof *c);
  memset(c, 0, sizeof *c);
  luaL_setmetatable(L, KP_CLIENT);
  c->keeper = k;
  c->next = k->head;
  if (k->head != NULL)
    k->head->prev = c;
  k->head = c;
  opt_resolve(L, &c->tp);
  cfg.resolve = c->tp.resolve;
  if ((rc = kp_transport_open(&c->tp, &cfg)) != CURLE_OK) {
    kp_transport_close(&c->tp);
    return luaL_error(L, "cannot set up libcurl: %s", curl_easy_strerror(rc));
  }
  return 1;
}

static int core_new(lua_State *L) {
  return new_client(L, 0);
}

static int core_external(lua_State *L) {
  return new_client(L, 1);
}

/* client:headers() -> { name = value }: the request headers every attempt
 * of this client sends (Accept, Authorization, User-Agent), for the
 * transports that are not libcurl to send alike. */
static int client_headers(lua_State *L) {
  kp_client *c = to_client(L);
  const struct curl_slist *l;
  lua_newtable(L);
  for (l = c->tp.headers; l != NULL; l = l->next) {
    const char *colon = strchr(l->data, ':');
    if (colon == NULL)
      continue;
    lua_pushlstring(L, l->data, (size_t)(colon - l->data));
    lua_pushstring(L, colon[1] == ' ' ? colon + 2 : colon + 1);
    lua_rawset(L, -3);
  }
  return 1;
}

/* client:poll([ms [, budget_ms]]) -> transfers still running (0 once
 * closed).  Does the network work that is ready, waiting up to ms (default
 * 0) for some, and receiving bodies for about budget_ms at most (default:
 * no limit; see kp_transport_poll).  No Lua code runs inside: libcurl's
 * callbacks only fill buffers. */
static int client_poll(lua_State *L) {
  kp_client *c = to_client(L);
  lua_Integer ms = luaL_optinteger(L, 2, 0);
  lua_Number budget = luaL_optnumber(L, 3, -1);
  int running = 0;
  luaL_argcheck(L, ms >= 0 && ms <= (lua_Integer)KP_MAX_SECONDS * 1000, 2,
                "milliseconds from 0 to 86400000 expected");
  luaL_argcheck(L, budget == budget, 3, "milliseconds expected");
  if (c->tp.multi != NULL && !c->tp.closed &&
      (running = kp_transport_poll(&c->tp, (int)ms, (double)budget)) < 0)
    return luaL_error(L, "kpayment: libcurl's multi handle failed");
  lua_pushinteger(L, running);
  return 1;
}

/*
 * client:watch() -> fds, timeout_ms: what a host's event loop waits on
 * between two polls: the sockets libcurl watches, each { fd = n, read =
 * bool, write = bool }, and the milliseconds until the next poll is due
 * for the transport (0: now, a paused transfer; -1: nothing under way).
 * kpayment.Client:watch adds what the Lua side knows (results to deliver,
 * retry timers).
 */
static int client_watch(lua_State *L) {
  kp_client *c = to_client(L);
  int stackfds[32], stackwhat[32], *fds = stackfds, *what = stackwhat;
  int n, i, max = 32;
  long timeout = -1;
  if (c->tp.closed || c->tp.multi == NULL) {
    lua_newtable(L);
    lua_pushinteger(L, -1);
    return 2;
  }
  n = kp_transport_watch(&c->tp, fds, what, max, &timeout);
  if (n > max) {                /* userdata scratch: freed by the collector */
    max = n;
    fds = (int *)lua_newuserdata(L, 2 * (size_t)max * sizeof *fds);
    what = fds + max;
    /* a finalizer run by that allocation may have changed the sockets */
    n = kp_transport_watch(&c->tp, fds, what, max, &timeout);
  }
  if (n > max)
    n = max;
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, fds[i]);
    lua_setfield(L, -2, "fd");
    lua_pushboolean(L, (what[i] & CURL_POLL_IN) != 0);
    lua_setfield(L, -2, "read");
    lua_pushboolean(L, (what[i] & CURL_POLL_OUT) != 0);
    lua_setfield(L, -2, "write");
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushinteger(L, (lua_Integer)timeout);
  return 2;
}

/* close(), __gc and __close: idempotent; running transfers are cancelled. */
static int client_close(lua_State *L) {
  kp_client *c = to_client(L);
  kp_transport_close(&c->tp);
  unlink_client(c);
  return 0;
}

static int client_closed(lua_State *L) {
  lua_pushboolean(L, to_client(L)->tp.closed);
  return 1;
}

static int client_tostring(lua_State *L) {
  kp_client *c = to_client(L);
  if (c->tp.closed)
    lua_pushliteral(L, KP_CLIENT " (closed)");
  else
    lua_pushfstring(L, KP_CLIENT " (%p)", (void *)c);
  return 1;
}

static const luaL_Reg client_methods[] = {
  {"start", kp_request_start},
  {"poll", client_poll},
  {"close", client_close},
  {"closed", client_closed},
  {"headers", client_headers},
  {"watch", client_watch},
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

void kp_client_register(lua_State *L) {
  kp_new_type(L, KP_CLIENT, client_meta, client_methods);
  lua_pushcfunction(L, core_new);
  lua_setfield(L, -2, "new");
  lua_pushcfunction(L, core_external);
  lua_setfield(L, -2, "external");
  lua_pushcfunction(L, core_track_close);
  lua_setfield(L, -2, "track_close");
  lua_pushcfunction(L, core_closing);
  lua_setfield(L, -2, "closing");
}
