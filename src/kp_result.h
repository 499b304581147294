/*
 * kp_result.h -- what one attempt ended with, whichever transport sent it:
 * its state, its kind (a whole response, or which failure), whether
 * another attempt may help, and the response headers worth keeping.
 * Plain values, so a caller can copy them before running any Lua code.
 *
 * Transports report in kpayment's own kinds: libcurl's codes are mapped to
 * them in kp_http.c, the other transports name a kind themselves
 * (kp_report.c).  No Lua API and no libcurl here.
 */
#ifndef KP_RESULT_H
#define KP_RESULT_H

#include <stddef.h>
#include "kp_common.h"

/* Attempt states. */
enum { KP_IDLE, KP_RUNNING, KP_DONE, KP_CANCELLED };

/* How a KP_DONE attempt ended: a whole response (any status), or a failure
 * of the transport. */
enum { KP_COMPLETE, KP_NETWORK, KP_TIMEOUT, KP_TLS, KP_TOO_LARGE, KP_NKINDS };

#define KP_MESSAGE_SIZE 512     /* libcurl needs CURL_ERROR_SIZE (256) at least */

/* The messages of a body over max_body, whoever refuses it. */
#define KP_MSG_TOO_LARGE "response body larger than max_body"
#define KP_MSG_LENGTH_TOO_LARGE "Content-Length larger than max_body"

typedef struct kp_result {
  int state;
  int kind;                     /* KP_COMPLETE ... (meaningful once KP_DONE) */
  int retryable;                /* of a failure: whether another attempt may help */
  int oom;                      /* the body could not be stored */
  int curl_code;                /* libcurl's code for a libcurl failure, else 0 */
  long status;                  /* 0 when no response arrived */
  double total_time;            /* seconds */
  size_t bytes;                 /* body bytes received, kept after the body is freed */
  char retry_after[40];         /* response headers worth keeping, as sent */
  char request_id[100];
  char message[KP_MESSAGE_SIZE]; /* a failure's message, from the transport */
} kp_result;

/* Whether r is a complete response (any status). */
#define kp_result_complete(r) \
  ((r)->state == KP_DONE && (r)->kind == KP_COMPLETE && !(r)->oom)

/* The one 2xx test: a complete response whose body is the API's answer. */
#define kp_result_success(r) \
  (kp_result_complete(r) && (r)->status >= 200 && (r)->status <= 299)

/* The kind names, as Lua sees them: "network", "timeout", "tls",
 * "body_too_large"; kp_result_kind gives "cancelled" for a cancelled
 * attempt.  kp_kind_named: the kind of a name, or -1. */
KP_HIDDEN const char *kp_result_kind(const kp_result *r);
KP_HIDDEN int kp_kind_named(const char *name);

/* Whether another attempt may fix a failure of this kind when its
 * transport does not say (network and timeout: yes; tls, size: no). */
KP_HIDDEN int kp_kind_retryable(int kind);

/* End r as a failure of `kind`, with `message` (cut to fit). */
KP_HIDDEN void kp_result_fail(kp_result *r, int kind, int retryable,
                              const char *message, size_t len);

/* A failure's message: the transport's, else one for its kind. */
KP_HIDDEN const char *kp_result_message(const kp_result *r);
KP_HIDDEN int kp_result_retryable(const kp_result *r);

/* Whether another attempt may fix a complete response with this status
 * (api_error: the body is the API's own error, which a retry won't change). */
KP_HIDDEN int kp_status_retryable(long status, int api_error);

/* One response header (name as sent, value trimmed): keeps Retry-After and
 * a request id.  Every transport calls it for each header of the final
 * response; kp_result_header_reset forgets them when another response
 * (a redirect, an interim 1xx) starts. */
KP_HIDDEN void kp_result_header(kp_result *r, const char *name, size_t nlen,
                                const char *value, size_t vlen);
KP_HIDDEN void kp_result_header_reset(kp_result *r);

#endif
