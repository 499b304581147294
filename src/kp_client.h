/*
 * kp_client.h -- the C types behind kpayment.Client and kpayment.Request,
 * and the registration of their metatables.
 */
#ifndef KP_CLIENT_H
#define KP_CLIENT_H

#include "kp_compat.h"
#include "kp_http.h"

#define KP_CLIENT "kpayment.Client"
#define KP_REQUEST "kpayment.Request"
#define KP_FIELDS "kpayment.Fields"     /* a projection trie */

struct kp_keeper;

typedef struct kp_client {
  kp_transport tp;
  /* every open client of a lua_State is in its keeper's list (kp_client.c) */
  struct kp_keeper *keeper;
  struct kp_client *prev, *next;
} kp_client;

/* Metatables of the client and its requests (kp_client.c, kp_request.c). */
KP_HIDDEN void kp_client_register(lua_State *L);
KP_HIDDEN void kp_request_register(lua_State *L);

/* Raises once lua_close has begun (kp_client.c): a request made then is
 * never finalized. */
KP_HIDDEN void kp_client_check_open(lua_State *L, const kp_client *c);

/* client:start(url, fields, timeout_ms, extra) -> request (kp_request.c). */
KP_HIDDEN int kp_request_start(lua_State *L);

/* A kpayment.Fields at idx, or NULL for nil/none; raises on anything else. */
KP_HIDDEN const void *kp_fields_check(lua_State *L, int idx);

/* Push the Base64 of s[0..n) (RFC 4648, padded): an Authorization: Basic
 * value, and the form of a secret the scrubber looks for (kp_core.c). */
KP_HIDDEN void kp_push_base64(lua_State *L, const char *s, size_t n);

/* Register a metatable `name` with metamethods `meta` and an __index
 * table of `methods` (kp_core.c). */
KP_HIDDEN void kp_new_type(lua_State *L, const char *name, const luaL_Reg *meta,
                           const luaL_Reg *methods);

#endif
