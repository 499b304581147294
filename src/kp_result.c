/*
 * kp_result.c -- an attempt's ending in kpayment's own terms (see
 * kp_result.h).
 */
#include <string.h>
#include "kp_result.h"

static const char *const kind_names[KP_NKINDS] = {
  NULL, "network", "timeout", "tls", "body_too_large"
};

const char *kp_result_kind(const kp_result *r) {
  if (r->state == KP_CANCELLED)
    return "cancelled";
  return kind_names[r->kind] ? kind_names[r->kind] : "network";
}

int kp_kind_named(const char *name) {
  int k;
  for (k = 1; k < KP_NKINDS; k++)
    if (strcmp(name, kind_names[k]) == 0)
      return k;
  return -1;
}

int kp_kind_retryable(int kind) {
  return kind == KP_NETWORK || kind == KP_TIMEOUT;
}

void kp_result_fail(kp_result *r, int kind, int retryable, const char *message,
                    size_t len) {
  if (len >= sizeof r->message)
    len = sizeof r->message - 1;
  memcpy(r->message, message, len);
  r->message[len] = '\0';
  r->kind = kind;
  r->retryable = retryable;
  r->state = KP_DONE;
}

const char *kp_result_message(const kp_result *r) {
  if (r->state == KP_CANCELLED)
    return "request cancelled";
  if (r->message[0])
    return r->message;
  if (r->kind == KP_TOO_LARGE)
    return KP_MSG_TOO_LARGE;
  return kp_result_kind(r);
}

int kp_result_retryable(const kp_result *r) {
  return r->state != KP_CANCELLED && r->retryable;
}

int kp_status_retryable(long status, int api_error) {
  switch (status) {
  case 408: case 429: case 502: case 503: case 504:
    return 1;
  case 500:                     /* a gateway's page, not the API's answer */
    return !api_error;
  default:
    return 0;
  }
}

/* Copy a header's value (truncated to fit) into dst. */
static void keep(char *dst, size_t size, const char *v, size_t n) {
  if (n >= size)
    n = size - 1;
  memcpy(dst, v, n);
  dst[n] = '\0';
}

static int name_is(const char *name, size_t n, const char *want) {
  size_t i;
  if (strlen(want) != n)
    return 0;
  for (i = 0; i < n; i++)
    if ((name[i] | 0x20) != want[i])
      return 0;
  return 1;
}

void kp_result_header(kp_result *r, const char *name, size_t nlen,
                      const char *value, size_t vlen) {
  if (name_is(name, nlen, "retry-after"))
    keep(r->retry_after, sizeof r->retry_after, value, vlen);
  else if (name_is(name, nlen, "x-request-id"))
    keep(r->request_id, sizeof r->request_id, value, vlen);
  else if (r->request_id[0] == '\0' && name_is(name, nlen, "x-correlation-id"))
    keep(r->request_id, sizeof r->request_id, value, vlen);
}

void kp_result_header_reset(kp_result *r) {
  r->retry_after[0] = r->request_id[0] = '\0';
}
