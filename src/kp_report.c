/*
 * kp_report.c -- how a transport that is not libcurl (nginx's cosockets or
 * subrequests, a user's transport function) reports one attempt into the
 * same request object libcurl fills: the bytes it read (framed here, by
 * kp_h1), a complete response it got whole, or a failure in kpayment's
 * kinds.  Each method does nothing and returns nil once the attempt is no
 * longer running (cancelled, its client closed, or already reported), so
 * the sender learns to stop from the answer.
 */
#include <string.h>
#include "kp_request.h"

/* Whether r still runs.  Asked after every argument is converted: a
 * conversion allocates, and a finalizer run by it may cancel the attempt
 * or close its client. */
static int running(const kp_request *r) {
  return r->t.res.state == KP_RUNNING;
}

static void on_header(void *ud, const char *name, size_t nlen, const char *value,
                      size_t vlen) {
  kp_result_header((kp_result *)ud, name, nlen, value, vlen);
}

/* The attempt ends as a failure of `kind`. */
static void end_failed(kp_request *r, int kind, int retryable, const char *why) {
  kp_result_fail(&r->t.res, kind, retryable, why, strlen(why));
  kp_transfer_end(&r->t);
  kp_h1_free(&r->h1);
}

/*
 * request:feed(bytes) -> false while more is needed; true, reusable once
 * the response is complete (reusable: the connection may carry another
 * request: the response said so and nothing came after it); nil when the
 * attempt failed on what was fed (a framing error, a body over max_body:
 * its outcome says which) or no longer runs.  bytes nil: the peer closed
 * the connection.
 */
static int request_feed(lua_State *L) {
  kp_request *r = kp_request_check(L, 1);
  size_t n = 0, used = 0;
  const char *data = lua_isnoneornil(L, 2) ? NULL : luaL_checklstring(L, 2, &n);
  int rc;
  if (!running(r))
    return 0;
  rc = kp_h1_feed(&r->h1, data, n, data == NULL, &used, &r->t.body, on_header,
                  &r->t.res);
  if (r->h1.final)              /* stats() shows the status from here on */
    r->t.res.status = r->h1.status;
  if (rc == KP_H1_MORE) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (rc == KP_H1_FAIL) {
    if (r->h1.status >= 200)    /* a final response's, even if its head broke */
      r->t.res.status = r->h1.status;
    if (r->h1.fail == KP_H1_NOMEM)
      r->t.res.oom = 1;
    end_failed(r, r->h1.fail == KP_H1_TOO_LARGE ? KP_TOO_LARGE : KP_NETWORK,
               r->h1.fail == KP_H1_BAD && kp_h1_retryable(&r->h1), r->h1.message);
    return 0;
  }
  lua_pushboolean(L, 1);
  lua_pushboolean(L, kp_h1_reusable(&r->h1) && used == n);
  kp_transfer_end(&r->t);
  kp_h1_free(&r->h1);
  return 2;
}

/* Keep what a header table says (name -> string, or a list of them: the
 * first counts), through the same keeper as every transport. */
static void keep_headers(lua_State *L, int idx, kp_result *res) {
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      if (lua_type(L, -1) == LUA_TTABLE) {
        lua_rawgeti(L, -1, 1);
        lua_replace(L, -2);
      }
      if (lua_type(L, -1) == LUA_TSTRING) {
        size_t nlen, vlen;
        const char *name = lua_tolstring(L, -2, &nlen);
        const char *value = lua_tolstring(L, -1, &vlen);
        kp_result_header(res, name, nlen, value, vlen);
      }
    }
    lua_pop(L, 1);
  }
}

/*
 * request:response(status, body [, headers]) -> true: a complete response
 * that the sender got whole (status 100-999, body a string, headers a
 * table or nil).  A body over max_body makes it a body_too_large failure
 * (the status kept).  nil when the attempt no longer runs.
 */
static int request_response(lua_State *L) {
  kp_request *r = kp_request_check(L, 1);
  lua_Integer status = luaL_checkinteger(L, 2);
  size_t len;
  const char *body = luaL_checklstring(L, 3, &len);
  kp_result *res;
  luaL_argcheck(L, status >= 100 && status <= 999, 2, "HTTP status expected");
  if (!lua_isnoneornil(L, 4))
    luaL_checktype(L, 4, LUA_TTABLE);
  if (!running(r))
    return 0;
  /* one way of reporting per attempt: bytes fed, or a whole response */
  if (r->t.body.len > 0 || r->h1.head > 0 || r->h1.line.len > 0)
    return luaL_error(L, "response() after feed() on the same attempt");
  res = &r->t.res;
  res->status = (long)status;
  if (!lua_isnoneornil(L, 4))
    keep_headers(L, 4, res);      /* allocates nothing: no finalizer runs */
  if (len > r->t.max_body) {
    end_failed(r, KP_TOO_LARGE, 0, KP_MSG_TOO_LARGE);
  } else {
    if (kp_buf_append(&r->t.body, body, len) != 0)
      res->oom = 1;
    kp_transfer_end(&r->t);
    kp_h1_free(&r->h1);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/*
 * request:fail(kind, message [, retryable [, status]]) -> true: the attempt
 * got no usable response.  kind: "network", "timeout", "tls" or
 * "body_too_large"; retryable defaults to the kind's (network and
 * timeout: true); status: of a response refused for its size.  nil when
 * the attempt no longer runs.
 */
static int request_fail(lua_State *L) {
  kp_request *r = kp_request_check(L, 1);
  const char *name = luaL_checkstring(L, 2);
  const char *message = luaL_checkstring(L, 3);
  int kind = kp_kind_named(name);
  lua_Integer status = luaL_optinteger(L, 5, 0);
  int retryable;
  luaL_argcheck(L, kind > 0, 2, "failure kind expected");
  luaL_argcheck(L, status == 0 || (status >= 100 && status <= 999), 5, "HTTP status expected");
  retryable = lua_isnoneornil(L, 4) ? kp_kind_retryable(kind) : lua_toboolean(L, 4);
  if (!running(r))
    return 0;
  if (status != 0)              /* else the status of a head already read stays */
    r->t.res.status = (long)status;
  end_failed(r, kind, retryable, message);
  lua_pushboolean(L, 1);
  return 1;
}

const luaL_Reg kp_report_methods[] = {
  {"feed", request_feed},
  {"response", request_response},
  {"fail", request_fail},
  {NULL, NULL}
};
