/*
 * kp_buf.c -- growable byte buffer (see kp_buf.h).  Functions return 0 on
 * success and -1 when memory runs out, leaving the buffer as it was.
 */
#include <stdlib.h>
#include <string.h>
#include "kp_buf.h"

/* Make room for `extra` more bytes plus a terminator. */
int kp_buf_reserve(kp_buf *b, size_t extra) {
  size_t need, cap;
  char *p;
  if (extra > (size_t)-1 - b->len - 1)
    return -1;
  need = b->len + extra + 1;
  if (need <= b->cap)
    return 0;
  cap = b->cap ? b->cap : 16384;
  while (cap < need)
    cap = cap > (size_t)-1 / 2 ? need : cap * 2;
  p = realloc(b->data, cap);
  if (p == NULL)
    return -1;
  b->data = p;
  b->cap = cap;
  return 0;
}

int kp_buf_append(kp_buf *b, const char *p, size_t n) {
  if (kp_buf_reserve(b, n) != 0)
    return -1;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

/* The decoder reads up to a NUL sentinel after the text, as it does on a
 * Lua string. */
int kp_buf_terminate(kp_buf *b) {
  if (kp_buf_reserve(b, 0) != 0)
    return -1;
  b->data[b->len] = '\0';
  return 0;
}

void kp_buf_free(kp_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
