/*
 * kp_request.c -- kpayment.Request in the core: one attempt, a single GET
 * (or the POST its `extra` asks for) on its client's transport, and its
 * outcome (kp_outcome.c), built once.  The
 * same object serves every transport: libcurl fills it itself, the others
 * report into it (kp_report.c), so state, outcome, decoding in steps and
 * cancellation are written once.
 *
 * Lua code can run inside any allocation (finalizers), and such code may
 * cancel this request, close its client or ask for the same outcome again.
 * So the outcome is built from a copy of the transfer's result and from a
 * body that nothing may free while the decoding flag is set (the request
 * itself, anchored on the stack, owns it); the request's slots (its user
 * values, kp_compat.h) are all made with it, so storing into them
 * allocates nothing; and state is re-checked after each allocation.
 */
#include <string.h>
#include "kp_outcome.h"
#include "kp_request.h"


/* Forget a decode in steps (its partial tables go with the slot). */
static void drop_slices(lua_State *L, kp_request *r) {
  kp_json_slicer_init(&r->slicer);
  kp_pushslots(L, 1);
  lua_pushboolean(L, 0);
  kp_slot_set(L, -2, UV_SLICES);        /* an existing slot: no allocation */
  lua_pop(L, 1);
}

kp_request *kp_request_check(lua_State *L, int idx) {
  return (kp_request *)luaL_checkudata(L, idx, KP_REQUEST);
}

static kp_request *to_request(lua_State *L) {
  return kp_request_check(L, 1);
}

static const char *check_url(lua_State *L, int idx) {
  size_t len;
  const char *url = luaL_checklstring(L, idx, &len);
  luaL_argcheck(L, strlen(url) == len, idx, "URL contains a NUL byte");
  return url;
}

/* Whether s[0..n) can be a header value: no NUL, CR or LF. */
static int header_safe(const char *s, size_t n) {
  return memchr(s, '\0', n) == NULL && memchr(s, '\r', n) == NULL && memchr(s, '\n', n) == NULL;
}

/* A field of the `extra` table at idx, raw (no metamethod runs): the
 * string pushed, or nil pushed and NULL.  Messages name the field, never
 * its value (a body or an authorization may be a secret). */
static const char *extra_string(lua_State *L, int idx, const char *key, size_t *len,
                                int header, const char *what) {
  const char *s;
  lua_pushstring(L, key);
  lua_rawget(L, idx);
  if (lua_isnil(L, -1))
    return NULL;
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_argerror(L, idx, what);
  s = lua_tolstring(L, -1, len);
  if (header && !header_safe(s, *len))
    luaL_argerror(L, idx, what);
  return s;
}

/*
 * client:start's `extra` at idx (nil, or a table of method, body,
 * content_type, authorization) checked into *x; NULL for a plain GET with
 * the client's headers.  The strings x points to stay on the stack, pushed
 * here.  Misuse raises before the request exists.
 */
static const kp_http_extra *check_extra(lua_State *L, int idx, kp_http_extra *x) {
  size_t mlen = 0, blen = 0, clen = 0, alen = 0;
  const char *method, *body, *ctype, *auth;
  if (lua_isnoneornil(L, idx))
    return NULL;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    if (strcmp(k, "method") != 0 && strcmp(k, "body") != 0 && strcmp(k, "content_type") != 0 &&
        strcmp(k, "authorization") != 0)
      luaL_argerror(L, idx, "extra takes only method, body, content_type and authorization");
    lua_pop(L, 1);
  }
  memset(x, 0, sizeof *x);
  method = extra_string(L, idx, "method", &mlen, 0, "extra.method must be \"GET\" or \"POST\"");
  if (method != NULL && strcmp(method, "POST") == 0 && mlen == 4)
    x->post = 1;
  else if (method != NULL && !(strcmp(method, "GET") == 0 && mlen == 3))
    luaL_argerror(L, idx, "extra.method must be \"GET\" or \"POST\"");
  body = extra_string(L, idx, "body", &blen, 0, "extra.body must be a string");
  ctype = extra_string(L, idx, "content_type", &clen, 1,
                       "extra.content_type must be a string without NUL, CR or LF");
  auth = extra_string(L, idx, "authorization", &alen, 1,
                      "extra.authorization must be a string without NUL, CR or LF");
  if (!x->post && (body != NULL || ctype != NULL))
    luaL_argerror(L, idx, body != NULL ? "extra.body needs method \"POST\""
                                       : "extra.content_type needs method \"POST\"");
  x->body = body;
  x->body_len = blen;
  if (ctype != NULL)
    x->content_type = lua_pushfstring(L, "Content-Type: %s", ctype);
  if (auth != NULL) {
    x->replace_auth = 1;        /* "": none sent on this attempt */
    x->authorization = alen > 0 ? lua_pushfstring(L, "Authorization: %s", auth) : NULL;
  }
  return x->post || x->replace_auth ? x : NULL;
}

/* client:start(url [, fields [, timeout_ms [, extra]]]) -> request, at
 * once; nil when the client is closed (also by a finalizer while this
 * ran).  extra: check_extra.  The request keeps its client and projection
 * alive through its user value. */
int kp_request_start(lua_State *L) {
  kp_client *c = (kp_client *)luaL_checkudata(L, 1, KP_CLIENT);
  const char *url = check_url(L, 2);
  lua_Integer ms = luaL_optinteger(L, 4, -1);
  kp_http_extra xs;
  const kp_http_extra *x;
  kp_request *r;
  CURLcode rc;
  int i;
  (void)kp_fields_check(L, 3);
  luaL_argcheck(L, ms >= -1 && ms <= (lua_Integer)KP_MAX_SECONDS * 1000, 4,
                "timeout in ms expected");
  kp_client_check_open(L, c);
  lua_settop(L, 5);
  luaL_checkstack(L, 12, NULL);
  x = check_extra(L, 5, &xs);   /* its strings stay on the stack until the end */
  r = (kp_request *)kp_newslots(L, sizeof *r, UV_SLOTS);
  memset(r, 0, sizeof *r);
  kp_json_slicer_init(&r->slicer);
  kp_h1_init(&r->h1, c->tp.max_body);
  luaL_setmetatable(L, KP_REQUEST);
  kp_pushslots(L, -1);
  lua_pushvalue(L, 1);
  kp_slot_set(L, -2, UV_CLIENT);
  for (i = UV_FIELDS; i <= UV_SLOTS; i++) {
    if (i == UV_FIELDS && !lua_isnoneornil(L, 3))
      lua_pushvalue(L, 3);
    else
      lua_pushboolean(L, 0);
    kp_slot_set(L, -2, i);
  }
  lua_pop(L, 1);
  if (c->tp.closed)             /* maybe by a finalizer just now */
    return 0;
  if ((rc = kp_transfer_start(&c->tp, &r->t, url, (long)ms, x)) != CURLE_OK)
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

/* request:stats() -> status (nil when no response came), seconds, body
 * bytes (received so far while it runs), request id (nil when none): what
 * an observer of the attempt wants, without building the outcome (a 2xx is
 * decoded only on delivery). */
static int request_stats(lua_State *L) {
  const kp_transfer *t = &to_request(L)->t;
  const kp_result *res = &t->res;
  if (res->status > 0)
    lua_pushinteger(L, (lua_Integer)res->status);
  else
    lua_pushnil(L);
  lua_pushnumber(L, (lua_Number)res->total_time);
  lua_pushinteger(L, (lua_Integer)(res->state == KP_RUNNING ? t->body.len : res->bytes));
  if (res->request_id[0])
    lua_pushstring(L, res->request_id);
  else
    lua_pushnil(L);
  return 4;
}

/*
 * A 2xx body's decode, in steps of budget_ms (< 0: to the end), into the
 * outcome: 1 with it pushed, 0 when the budget ran out first.  The request
 * is at 1, its user value at 2, the trie at 3, the client at 4.
 */
static int decode_success(lua_State *L, kp_request *r, const kp_result *res,
                          double budget_ms) {
  kp_json_opts opts;
  int rc;
  opts.paths = (const kp_json_path *)lua_touserdata(L, 3);
  opts.records = KP_RECORDS;
  /* 5: the slices of a decode in steps; a whole decode (what a blocking
   * call asks for) needs none unless steps came before it */
  if (kp_slot_get(L, 2, UV_SLICES) != LUA_TTABLE && budget_ms >= 0) {
    lua_pop(L, 1);
    kp_json_push_slices(L);
    lua_pushvalue(L, -1);
    kp_slot_set(L, 2, UV_SLICES);
  }
  opts.meta = kp_outcome_push_meta(L);          /* 6 */
  rc = kp_json_decode_step(L, &r->slicer, lua_istable(L, 5) ? 5 : 0,
                           r->t.body.data ? r->t.body.data : "", r->t.body.len, &opts,
                           budget_ms);
  lua_remove(L, 6);
  if (rc == KP_JSON_MORE)
    return 0;
  lua_pushboolean(L, 0);                        /* done: the slot is free */
  kp_slot_set(L, 2, UV_SLICES);
  kp_outcome_push_decoded(L, res, &r->t.body, rc, &r->slicer.err,
                          ((kp_client *)lua_touserdata(L, 4))->tp.snippet);
  return 1;
}

/*
 * request:outcome([budget_ms]) -> the outcome table (kp_outcome.h), built
 * on the first call and kept; raises while the request runs.  With a
 * budget, a 2xx body is decoded in steps: each call stops once budget_ms
 * have passed (after at least one record) and returns nothing until the
 * decode is complete.  Without one, the decode (or its rest) runs now.
 *
 * A call made by a finalizer while another decodes decodes the same body
 * whole, and whichever finishes first is kept, so every caller sees one
 * outcome.  A request cancelled while its decode was under way keeps its
 * decode if it completed, and gets the cancelled outcome otherwise.
 */
/* The building part of request:outcome, run protected (stack: 1
 * request, 2 user value, 3 trie, 4 client, 5 budget, 6 outer), so that a
 * raise in it (out of memory) reaches its caller, which clears the
 * decoding flag before passing the error on.  Pushes the outcome, or
 * nothing when a decode in steps is not complete. */
static int build_outcome(lua_State *L) {
  kp_request *r = (kp_request *)lua_touserdata(L, 1);
  double budget = (double)lua_tonumber(L, 5);
  int outer = lua_toboolean(L, 6);
  kp_result res = r->t.res;     /* a copy: cancel() may change the original */
  lua_settop(L, 4);
  if (outer && kp_result_success(&res))
    return decode_success(L, r, &res, budget);
  kp_outcome_push(L, &res, &r->t.body, (const kp_json_path *)lua_touserdata(L, 3),
                  ((kp_client *)lua_touserdata(L, 4))->tp.snippet);
  return 1;
}

static int request_outcome(lua_State *L) {
  kp_request *r = to_request(L);
  double budget = luaL_optnumber(L, 2, -1);
  kp_result res;
  int outer, built, status;
  if (r->t.res.state == KP_RUNNING)
    return luaL_error(L, "request still running (poll until done())");
  if (r->released)
    return luaL_error(L, "outcome already released");
  lua_settop(L, 1);
  luaL_checkstack(L, 12, NULL);
  kp_pushslots(L, 1);                           /* 2: the slots */
  if (r->taken) {
    kp_slot_get(L, 2, UV_OUTCOME);
    return 1;
  }
  kp_slot_get(L, 2, UV_FIELDS);                 /* 3: anchors the trie */
  kp_slot_get(L, 2, UV_CLIENT);                 /* 4 */
  lua_pushcfunction(L, build_outcome);          /* may allocate: before the flag */
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_pushvalue(L, 4);
  lua_pushnumber(L, (lua_Number)budget);
  /* While decoding is set, cancel() leaves the body alone: it is read in
   * place, and nothing else frees or moves a finished transfer's body. */
  outer = !r->decoding;
  lua_pushboolean(L, outer);
  r->decoding = 1;
  status = lua_pcall(L, 6, LUA_MULTRET, 0);
  if (outer)
    r->decoding = 0;
  if (status != 0) {
    /* a decode in steps that raised starts over next time (kp_json.h) */
    if (outer && kp_json_slicer_busy(&r->slicer))
      drop_slices(L, r);
    return lua_error(L);
  }
  built = lua_gettop(L) > 4;
  if (r->taken) {               /* a nested call finished first */
    if (!built)
      drop_slices(L, r);
    kp_slot_get(L, 2, UV_OUTCOME);
    built = 1;
  } else if (!built && r->t.res.state == KP_CANCELLED) {
    /* cancelled meanwhile: the decode stops here */
    drop_slices(L, r);
    res = r->t.res;
    kp_outcome_push(L, &res, &r->t.body, NULL, 0);
    built = 1;
  }
  if (outer && (built || r->t.res.state == KP_CANCELLED))
    kp_transport_recycle(&((kp_client *)lua_touserdata(L, 4))->tp, &r->t.body);
  if (!built)
    return 0;
  if (!r->taken) {
    lua_pushvalue(L, -1);
    kp_slot_set(L, 2, UV_OUTCOME);
    r->taken = 1;
  }
  return 1;
}

/* The copy of request:body, run protected: an allocation that fails must
 * not leave the decoding flag set. */
static int copy_body(lua_State *L) {
  const kp_buf *body = (const kp_buf *)lua_touserdata(L, 1);
  lua_pushlstring(L, body->data ? body->data : "", body->len);
  return 1;
}

/*
 * request:body() -> the body of a complete response (any status) as a
 * string (a copy), before its outcome is built; nil once the outcome was
 * built (its body is recycled then), when cancelled, or when no complete
 * response arrived.  A call shared by
 * several callers decodes each one's tables from it (kpayment.async).
 */
static int request_body(lua_State *L) {
  kp_request *r = to_request(L);
  int outer, status;
  if (!kp_result_complete(&r->t.res) || r->taken || r->released) {
    lua_pushnil(L);
    return 1;
  }
  lua_settop(L, 1);
  lua_pushcfunction(L, copy_body);      /* may allocate: before the flag */
  lua_pushlightuserdata(L, &r->t.body);
  /* the copy allocates, and a finalizer run there may cancel this request:
   * while decoding is set, cancel() leaves the body where it is */
  outer = !r->decoding;
  r->decoding = 1;
  status = lua_pcall(L, 1, 1, 0);
  if (outer) {
    r->decoding = 0;
    if (r->t.res.state == KP_CANCELLED)   /* cancelled meanwhile: free it now */
      kp_transfer_cancel(&r->t);
  }
  if (status != 0)
    return lua_error(L);
  return 1;
}

/*
 * request:release(): forget the kept outcome once the caller has it.  A
 * request has a finalizer, so the collector keeps it (and all it refers
 * to) one cycle longer than plain data: without this, every response's
 * tables would too.
 */
static int request_release(lua_State *L) {
  kp_request *r = to_request(L);
  if (r->taken && !r->decoding) {
    kp_pushslots(L, 1);
    lua_pushboolean(L, 0);
    kp_slot_set(L, -2, UV_OUTCOME);     /* an existing slot: no allocation */
    r->released = 1;
  }
  return 0;
}

/* request:cancel() and __close: stop it and free its body (unless it is
 * being decoded: the decoder recycles it when done).  A finished request
 * whose outcome was not built yet becomes cancelled. */
static int request_cancel(lua_State *L) {
  kp_request *r = to_request(L);
  if (!r->decoding) {
    kp_transfer_cancel(&r->t);
    kp_h1_free(&r->h1);
    if (kp_json_slicer_busy(&r->slicer))
      drop_slices(L, r);
  }
  if (!r->taken && r->t.res.state != KP_IDLE)
    r->t.res.state = KP_CANCELLED;
  return 0;
}

/* __gc: no decode can be running on an unreachable request. */
static int request_gc(lua_State *L) {
  kp_request *r = to_request(L);
  kp_transfer_cancel(&r->t);
  kp_h1_free(&r->h1);
  return 0;
}

static int request_tostring(lua_State *L) {
  static const char *const names[] = {"new", "running", "done", "cancelled"};
  lua_pushfstring(L, KP_REQUEST " (%s)", names[to_request(L)->t.res.state]);
  return 1;
}

static const luaL_Reg request_methods[] = {
  {"done", request_done},
  {"stats", request_stats},
  {"outcome", request_outcome},
  {"release", request_release},
  {"body", request_body},
  {"cancel", request_cancel},
  {NULL, NULL}
};

static const luaL_Reg request_meta[] = {
  {"__gc", request_gc},
#if LUA_VERSION_NUM >= 504
  {"__close", request_cancel},
#endif
  {"__tostring", request_tostring},
  {NULL, NULL}
};

void kp_request_register(lua_State *L) {
  kp_new_type(L, KP_REQUEST, request_meta, request_methods);
  luaL_getmetatable(L, KP_REQUEST);
  lua_getfield(L, -1, "__index");
  luaL_setfuncs(L, kp_report_methods, 0);
  lua_pop(L, 2);
}
