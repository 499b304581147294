/*
 * kp_buf.h -- a growable byte buffer for response bodies.
 *
 * Plain malloc memory: libcurl's write callback fills it and must not touch
 * the Lua API.  A buffer always lives inside a userdata (a request or a
 * client, as its spare), whose __gc frees it, so a Lua error between two
 * calls cannot leak it.
 */
#ifndef KP_BUF_H
#define KP_BUF_H

#include <stddef.h>
#include "kp_common.h"

typedef struct kp_buf {
  char *data;   /* NUL-terminated after data[len] once kp_buf_terminate ran */
  size_t len;
  size_t cap;   /* bytes allocated, the terminator's byte included */
} kp_buf;

KP_HIDDEN int kp_buf_reserve(kp_buf *b, size_t extra);
KP_HIDDEN int kp_buf_append(kp_buf *b, const char *p, size_t n);
KP_HIDDEN int kp_buf_terminate(kp_buf *b);
KP_HIDDEN void kp_buf_free(kp_buf *b);

#endif

