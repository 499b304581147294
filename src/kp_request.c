/*
 * kp_request.c -- kpayment.Request in the core: one attempt, a single GET on
 * its client's transport, and its outcome (kp_outcome.c), built once.
 *
 * Lua code can run inside any allocation (finalizers), and such code may
 * cancel this request, close its client or ask for the same outcome again.
 * So the outcome is built from a copy of the transfer's result and from a
 * body moved into a GC-owned box before the first allocation; the user
 * value table is made with every slot it will ever use, so storing into it
 * allocates nothing; and state is re-checked after each allocation.
 */
#include <string.h>
#include "kp_client.h"
#include "kp_outcome.h"

/* User value slots. */
enum { UV_CLIENT = 1, UV_FIELDS, UV_OUTCOME, UV_BOX, UV_SLOTS = UV_BOX };

typedef struct request {
  kp_transfer t;
  int taken;                    /* UV_OUTCOME holds the outcome... */
  int released;                 /* ...unless the caller let it go */
  int decoding;                 /* UV_BOX holds the body being decoded */
} request;

static request *to_request(lua_State *L) {
  return (request *)luaL_checkudata(L, 1, KP_REQUEST);
}

static const char *check_url(lua_State *L, int idx) {
  size_t len;
  const char *url = luaL_checklstring(L, idx, &len);
  luaL_argcheck(L, strlen(url) == len, idx, "URL contains a NUL byte");
  return url;
}

/* client:start(url [, fields [, timeout_ms]]) -> request, at once; nil
 * when the client is closed (also by a finalizer while this ran).  The
 * request keeps its client and projection alive through its user value. */
int kp_request_start(lua_State *L) {
  kp_client *c = (kp_client *)luaL_checkudata(L, 1, KP_CLIENT);
  const char *url = check_url(L, 2);
  lua_Integer ms = luaL_optinteger(L, 4, -1);
  request *r;
  CURLcode rc;
  int i;
  (void)kp_fields_check(L, 3);
  luaL_argcheck(L, ms >= -1 && ms <= (lua_Integer)KP_MAX_SECONDS * 1000, 4,
                "timeout in ms expected");
  lua_settop(L, 3);
  r = (request *)kp_newuserdata1(L, sizeof *r);
  memset(r, 0, sizeof *r);
  luaL_setmetatable(L, KP_REQUEST);
  lua_createtable(L, UV_SLOTS, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, UV_CLIENT);
  for (i = UV_FIELDS; i <= UV_SLOTS; i++) {
    if (i == UV_FIELDS && !lua_isnoneornil(L, 3))
      lua_pushvalue(L, 3);
    else
      lua_pushboolean(L, 0);
    lua_rawseti(L, -2, i);
  }
  kp_setuservalue(L, -2);
  if (c->tp.multi == NULL)      /* closed, maybe by a finalizer just now */
    return 0;
  if ((rc = kp_transfer_start(&c->tp, &r->t, url, (long)ms)) != CURLE_OK)
    return luaL_error(L, "cannot start a request: %s", curl_easy_strerror(rc));
  return 1;
}

/* request:done() -> finished (or cancelled), and whether it is a complete
 * 2xx response (the outcome then only needs decoding). */
static int request_done(lua_State *L) {
  const kp_result *res = &to_request(L)->t.res;
  lua_pushboolean(L, res->state != KP_RUNNING);
  lua_pushboolean(L, kp_result_success(res));
  return 2;
}

/* Box for a body: its __gc frees what it still holds. */
static int body_gc(lua_State *L) {
  kp_buf_free((kp_buf *)luaL_checkudata(L, 1, KP_BODY));
  return 0;
}

/*
 * request:outcome() -> the outcome table (kp_outcome.h), built on the first
 * call and kept; raises while the request runs.  A call made by a finalizer
 * while the first one decodes decodes the same box and whichever finishes
 * first is kept, so every caller sees one outcome.
 */
static int request_outcome(lua_State *L) {
  request *r = to_request(L);
  kp_result res;
  kp_buf *box;
  int outer;
  if (r->t.res.state == KP_RUNNING)
    return luaL_error(L, "request still running (poll until done())");
  if (r->released)
    return luaL_error(L, "outcome already released");
  lua_settop(L, 1);
  kp_getuservalue(L, 1);                        /* 2: user value */
  if (r->taken) {
    lua_rawgeti(L, 2, UV_OUTCOME);
    return 1;
  }
  outer = !r->decoding;
  if (outer) {
    box = (kp_buf *)kp_newuserdata(L, sizeof *box);   /* 3 */
    memset(box, 0, sizeof *box);
    luaL_setmetatable(L, KP_BODY);
    if (r->taken) {             /* a finalizer built it meanwhile */
      lua_rawgeti(L, 2, UV_OUTCOME);
      return 1;
    }
    /* From here the body is the box's: cancel() or close() can no longer
     * free it under the decoder. */
    *box = r->t.body;
    memset(&r->t.body, 0, sizeof r->t.body);
    lua_pushvalue(L, 3);
    lua_rawseti(L, 2, UV_BOX);
    r->decoding = 1;
  } else {
    lua_rawgeti(L, 2, UV_BOX);                  /* 3 */
    box = (kp_buf *)lua_touserdata(L, 3);
  }
  res = r->t.res;               /* a copy: cancel() may change the original */
  lua_rawgeti(L, 2, UV_FIELDS);                 /* 4: anchors the trie */
  lua_rawgeti(L, 2, UV_CLIENT);                 /* 5 */
  kp_outcome_push(L, &res, box, (const kp_json_path *)lua_touserdata(L, 4),
                  ((kp_client *)lua_touserdata(L, 5))->tp.snippet);
  if (outer) {
    r->decoding = 0;
    lua_pushboolean(L, 0);
    lua_rawseti(L, 2, UV_BOX);
    kp_transport_recycle(&((kp_client *)lua_touserdata(L, 5))->tp, box);
  }
  if (r->taken) {               /* a nested call finished first */
    lua_rawgeti(L, 2, UV_OUTCOME);
    return 1;
  }
  lua_pushvalue(L, -1);
  lua_rawseti(L, 2, UV_OUTCOME);
  r->taken = 1;
  return 1;
}

/*
 * request:release(): forget the kept outcome once the caller has it.  A
 * request has a finalizer, so the collector keeps it (and all it refers
 * to) one cycle longer than plain data: without this, every response's
 * tables would too.
 */
static int request_release(lua_State *L) {
  request *r = to_request(L);
  if (r->taken && !r->decoding) {
    kp_getuservalue(L, 1);
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, UV_OUTCOME);     /* an existing slot: no allocation */
    r->released = 1;
  }
  return 0;
}

/* request:cancel(), __gc and __close: stop it and free its body.  A
 * finished request whose outcome was not built yet becomes cancelled. */
static int request_cancel(lua_State *L) {
  request *r = to_request(L);
  kp_transfer_cancel(&r->t);
  if (!r->taken && r->t.res.state != KP_IDLE)
    r->t.res.state = KP_CANCELLED;
  return 0;
}

static int request_tostring(lua_State *L) {
  static const char *const names[] = {"new", "running", "done", "cancelled"};
  lua_pushfstring(L, KP_REQUEST " (%s)", names[to_request(L)->t.res.state]);
  return 1;
}

static const luaL_Reg request_methods[] = {
  {"done", request_done},
  {"outcome", request_outcome},
  {"release", request_release},
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

static const luaL_Reg body_meta[] = {
  {"__gc", body_gc},
  {NULL, NULL}
};

void kp_request_register(lua_State *L) {
  kp_new_type(L, KP_REQUEST, request_meta, request_methods);
  kp_new_type(L, KP_BODY, body_meta, NULL);
}
