/*
 * kp_http.h -- moving bytes with libcurl.  Every client owns one transport:
 * a multi handle (so all its transfers share connections and DNS), a share
 * object for TLS sessions, a configured template easy handle and a pool of
 * idle easy handles made from it.  A transfer is one GET into its own body
 * buffer.  No Lua API here, so no Lua error ever unwinds through libcurl's
 * frames.
 */
#ifndef KP_HTTP_H
#define KP_HTTP_H

#include <curl/curl.h>
#include "kp_buf.h"
#include "kp_common.h"

typedef struct kp_http_config {
  const char *user_agent;       /* the complete User-Agent value */
  const char *username;         /* Basic credentials, or NULL */
  const char *password;
  const char *bearer_token;     /* instead of Basic, or NULL */
  const char *ca_file;          /* NULL: the system's CA store */
  const char *proxy;            /* NULL: libcurl's default (environment) */
  long timeout_ms;              /* whole transfer; 0: none */
  long connect_timeout_ms;
  size_t max_body;              /* bytes after decompression */
  size_t snippet;               /* bytes of an error body kept (kp_outcome) */
  int insecure;                 /* skip TLS verification (explicit only) */
  int follow_redirects;         /* credentials never go to another host */
} kp_http_config;

#define KP_IDLE_MAX 16          /* idle easy handles kept for reuse */

typedef struct kp_transfer kp_transfer;

typedef struct kp_transport {
  CURLM *multi;                 /* NULL once closed */
  CURLSH *share;
  CURL *proto;                  /* configured; duplicated per transfer */
  struct curl_slist *headers;
  CURL *idle[KP_IDLE_MAX];
  int nidle;
  kp_transfer *active;          /* transfers inside the multi */
  double recv_until;            /* kp_monotonic_ms() to stop receiving at, or < 0 */
  int npaused;                  /* active transfers paused by recv_until */
  kp_buf spare;                 /* a body buffer kept for the next transfer */
  size_t max_body;
  size_t snippet;
  long timeout_ms;              /* the configured per-transfer timeout */
} kp_transport;

enum { KP_IDLE, KP_RUNNING, KP_DONE, KP_CANCELLED };

/* What a transfer ended with, apart from its body: plain values, so a
 * caller can copy them before running any Lua code. */
typedef struct kp_result {
  int state;
  int too_large;                /* the body went over max_body */
  int oom;                      /* the body could not be stored */
  CURLcode rc;
  long status;                  /* 0 when no response arrived */
  double total_time;            /* seconds, from libcurl */
  size_t bytes;                 /* body bytes received (decoded), kept after
                                 * the body itself is freed */
  char retry_after[40];         /* response headers worth keeping, as sent */
  char request_id[100];
  char errbuf[CURL_ERROR_SIZE];
} kp_result;

struct kp_transfer {
  kp_transport *tp;             /* set while running */
  CURL *easy;                   /* set while running */
  kp_buf body;
  size_t max_body;
  kp_result res;                /* res.state: KP_IDLE ... KP_CANCELLED */
  int paused;                   /* receiving stopped until the next poll */
  kp_transfer *prev, *next;
};

/* Who owns libcurl's global state (curl_global_init/cleanup): decided
 * once per process, by whichever of the two calls below comes first. */
enum { KP_CURL_UNSET, KP_CURL_OURS, KP_CURL_HOST };

/* Once per process: curl_global_init, unless the host said it owns
 * libcurl; returns 0 or a CURLcode.  Called by luaopen_kpayment_core.
 * kpayment never calls curl_global_cleanup. */
KP_HIDDEN int kp_http_global_init(void);

/* The host owns libcurl (kpayment_curl_by_host in include/kpayment.h):
 * returns 1 if so from now on, 0 if kpayment had already initialised it. */
KP_HIDDEN int kp_http_curl_by_host(void);

/* What libcurl says of itself (curl_version_info), read once by whichever
 * call above came first; NULL if initialisation failed.  Immutable. */
KP_HIDDEN const curl_version_info_data *kp_http_curl_info(void);

/* libcurl's version string from it, or "unknown". */
KP_HIDDEN const char *kp_http_curl_version(void);

/* tp must be zeroed.  On failure whatever was acquired is released by
 * kp_transport_close, which is safe to call any number of times and
 * cancels the transfers still running. */
KP_HIDDEN CURLcode kp_transport_open(kp_transport *tp, const kp_http_config *cfg);
KP_HIDDEN void kp_transport_close(kp_transport *tp);

/* Start t (zeroed) on url; timeout_ms < 0: the configured timeout,
 * otherwise this one (retries shorten it to fit a deadline).  The body
 * buffer comes from the transport's spare when it has one. */
KP_HIDDEN CURLcode kp_transfer_start(kp_transport *tp, kp_transfer *t,
                                     const char *url, long timeout_ms);

/* Do the network work that is ready, waiting up to timeout_ms for some;
 * finished transfers become KP_DONE.  Returns the number still running,
 * or -1 if the multi handle failed. */
/*
 * Network work of every transfer, waiting at most timeout_ms for some;
 * returns the transfers still running, or -1 when the multi handle fails.
 * budget_ms >= 0 bounds the time spent receiving bodies: past it, a
 * transfer that gets more data is paused (libcurl keeps that data) until
 * the next poll, which resumes it first, so each poll takes at least one
 * piece of each.  A poll whose budget ran out does not wait.
 */
KP_HIDDEN int kp_transport_poll(kp_transport *tp, int timeout_ms, double budget_ms);

/* Stop t if it runs (KP_CANCELLED) and free its body. */
KP_HIDDEN void kp_transfer_cancel(kp_transfer *t);

/* Give a body buffer back to the transport for its next transfer when it
 * is modest and the transport open and without one; otherwise free it.
 * *b is empty afterwards either way. */
KP_HIDDEN void kp_transport_recycle(kp_transport *tp, kp_buf *b);

/* Whether r is a complete response (any status). */
#define kp_result_complete(r) ((r)->state == KP_DONE && (r)->rc == CURLE_OK && !(r)->oom)

/* The one 2xx test: a complete response whose body is the API's answer. */
#define kp_result_success(r) \
  (kp_result_complete(r) && (r)->status >= 200 && (r)->status <= 299)

/* The one classification of transfer failures (r not complete):
 * "network", "timeout", "tls", "body_too_large" or "cancelled", and
 * whether another attempt may succeed. */
KP_HIDDEN const char *kp_result_failure_kind(const kp_result *r);
KP_HIDDEN int kp_result_failure_retryable(const kp_result *r);

/* The most specific message libcurl gave. */
KP_HIDDEN const char *kp_result_failure_message(const kp_result *r);

/* Whether another attempt may fix a complete response with this status
 * (api_error: the body is the API's own error, which a retry won't change). */
KP_HIDDEN int kp_status_retryable(long status, int api_error);

#endif
