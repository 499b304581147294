/*
 * kp_outcome.c -- a finished transfer as one outcome table (see
 * kp_outcome.h).  Lua turns it into offers or an error object without
 * re-deriving anything from raw numbers.
 */
#include <stdint.h>
#include <string.h>
#include "kp_outcome.h"

static void set_string(lua_State *L, const char *key, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, key);
}

static void set_integer(lua_State *L, const char *key, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, key);
}

/* into the outcome at idx (-1: the top) */
static void set_bool(lua_State *L, int idx, const char *key, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, idx - 1, key);
}

/* The first bytes of the body, for an error to show. */
static void set_snippet(lua_State *L, const kp_buf *body, size_t snippet) {
  lua_pushlstring(L, body->data ? body->data : "",
                  body->len < snippet ? body->len : snippet);
  lua_setfield(L, -2, "body");
}

/* Move member `key` of the table at -1 into the outcome at -2 when it is
 * a table; returns whether it was. */
static int move_table(lua_State *L, const char *key) {
  int is_table = lua_getfield(L, -1, key) == LUA_TTABLE;
  if (is_table)
    lua_setfield(L, -3, key);
  else
    lua_pop(L, 1);
  return is_table;
}

/* A 2xx whose body's decode gave `decoded` (the value at -1, or *jerr):
 * outcome at -2 when decoded, else at -1. */
static void success(lua_State *L, const kp_buf *body, int decoded,
                    const kp_json_error *jerr, size_t snippet) {
  char msg[160];
  set_bool(L, decoded ? -2 : -1, "retryable", 0);
  if (decoded) {
    lua_setfield(L, -2, "value");
    return;
  }
  set_string(L, "kind", "decode");
  set_string(L, "message", kp_json_message(jerr, msg, sizeof msg));
  set_snippet(L, body, snippet);
}

/* A complete response that is not a 2xx: outcome at -1.  Its body is
 * decoded whole: the API's own error, or a page of another server. */
static void failure(lua_State *L, const kp_result *r, const kp_buf *body,
                    size_t snippet) {
  kp_json_error jerr;
  char msg[160];
  set_string(L, "kind", "http");
  if (kp_json_decode_opts(L, body->data ? body->data : "", body->len, NULL,
                          &jerr)) {
    /* the API's own error: { "errors": [...], "warnings": [...] } */
    int api = lua_type(L, -1) == LUA_TTABLE;
    if (api) {
      int has_errors = move_table(L, "errors");
      int has_warnings = move_table(L, "warnings");
      api = has_errors || has_warnings;
    }
    lua_pop(L, 1);
    if (api) {
      set_bool(L, -1, "retryable", kp_status_retryable(r->status, 1));
      return;
    }
  } else {
    set_string(L, "decode_message", kp_json_message(&jerr, msg, sizeof msg));
  }
  set_snippet(L, body, snippet);
  set_bool(L, -1, "retryable", kp_status_retryable(r->status, 0));
}

/* The fields every outcome has: a new outcome table pushed. */
static void common(lua_State *L, const kp_result *r) {
  luaL_checkstack(L, 8, NULL);
  if (r->oom)
    luaL_error(L, "not enough memory");
  lua_createtable(L, 0, 8);
  lua_pushnumber(L, r->total_time);
  lua_setfield(L, -2, "total_time");
  if (r->retry_after[0])
    set_string(L, "retry_after", r->retry_after);
  if (r->request_id[0])
    set_string(L, "request_id", r->request_id);
  if (r->status > 0)
    set_integer(L, "status", r->status);
}

void kp_outcome_push_decoded(lua_State *L, const kp_result *r,
                             const kp_buf *body, int decoded,
                             const kp_json_error *jerr, size_t snippet) {
  common(L, r);
  if (decoded)
    lua_insert(L, -2);          /* outcome below the value */
  success(L, body, decoded, jerr, snippet);
}

/* The registry key of the records' metatable: this address (const: no
 * writable global state in src/; the cast through uintptr_t only drops the
 * qualifier for lua_pushlightuserdata, which never writes through it). */
static const char META_KEY = 0;
#define META_KEY_P ((void *)(uintptr_t)&META_KEY)

int kp_outcome_push_meta(lua_State *L) {
  lua_pushlightuserdata(L, META_KEY_P);
  lua_rawget(L, LUA_REGISTRYINDEX);
  return lua_istable(L, -1) ? lua_gettop(L) : 0;
}

void kp_outcome_set_meta(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_pushlightuserdata(L, META_KEY_P);
  lua_pushvalue(L, idx);
  lua_rawset(L, LUA_REGISTRYINDEX);
}

void kp_outcome_push(lua_State *L, const kp_result *r, const kp_buf *body,
                     const kp_json_path *paths, size_t snippet) {
  if (kp_result_success(r)) {
    kp_json_opts opts;
    kp_json_error jerr;
    int decoded;
    opts.paths = paths;
    opts.records = KP_RECORDS;
    opts.meta = kp_outcome_push_meta(L);
    decoded = kp_json_decode_opts(L, body->data ? body->data : "", body->len,
                                  &opts, &jerr);
    lua_remove(L, decoded ? -2 : -1);           /* the metatable */
    kp_outcome_push_decoded(L, r, body, decoded, &jerr, snippet);
    return;
  }
  common(L, r);
  if (kp_result_complete(r)) {
    failure(L, r, body, snippet);
    return;
  }
  set_string(L, "kind", kp_result_kind(r));
  set_string(L, "message", kp_result_message(r));
  set_bool(L, -1, "retryable", kp_result_retryable(r));
  if (r->curl_code != 0 && r->state != KP_CANCELLED)
    set_integer(L, "curl_code", (lua_Integer)r->curl_code);
}
