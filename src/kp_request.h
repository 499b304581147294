/*
 * kp_request.h -- the C type behind an attempt (kp_request.c), shared with
 * the methods by which a transport that is not libcurl reports how an
 * attempt went (kp_report.c).
 */
#ifndef KP_REQUEST_H
#define KP_REQUEST_H

#include "kp_client.h"
#include "kp_h1.h"
#include "kp_json.h"

/* The request's slots (kp_newslots in kp_compat.h).  UV_SLICES: what a decode in steps has built so far
 * (kp_json_push_slices), while one is under way. */
enum { UV_CLIENT = 1, UV_FIELDS, UV_OUTCOME, UV_SLICES, UV_SLOTS = UV_SLICES };

typedef struct kp_request {
  kp_transfer t;
  kp_json_slicer slicer;        /* a 2xx body's decode in steps */
  kp_h1 h1;                     /* an external attempt's framing (kp_report.c) */
  int taken;                    /* UV_OUTCOME holds the outcome... */
  int released;                 /* ...unless the caller let it go */
  int decoding;                 /* the body is being decoded in place */
} kp_request;

KP_HIDDEN kp_request *kp_request_check(lua_State *L, int idx);

/* The methods of kp_report.c, added to the request's method table. */
KP_HIDDEN extern const luaL_Reg kp_report_methods[];

#endif
