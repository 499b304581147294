/*
 * kp_http.h -- a client's transport: the attempts under way and, over
 * libcurl, moving their bytes.  No Lua API here, so no Lua error ever
 * unwinds through libcurl's frames.
 */
#ifndef KP_HTTP_H
#define KP_HTTP_H

#include <stdint.h>
#include <curl/curl.h>
#include "kp_buf.h"
#include "kp_common.h"
#include "kp_result.h"

typedef struct kp_http_config {
  const char *const *headers;   /* "Name: value" lines every attempt sends, NULL-ended */
  const char *ca_file;          /* NULL: the system's CA store */
  const char *proxy;            /* NULL: libcurl's default (environment) */
  struct curl_slist *resolve;   /* "host:port:address" entries; taken over */
  long timeout_ms;              /* each attempt, whole; 0: none */
  long connect_timeout_ms;
  long pool_size;               /* idle connections kept */
  long pool_idle_s;             /* seconds an idle connection is kept */
  size_t max_body;              /* bytes after decompression */
  size_t snippet;               /* bytes of an error body kept (kp_outcome) */
  int insecure;                 /* skip TLS verification (explicit only) */
  int follow_redirects;         /* credentials never go to another host */
  int external;                 /* attempts are sent by Lua code, not libcurl */
} kp_http_config;

#define KP_IDLE_MAX 16          /* idle easy handles kept for reuse */

/*
 * What one attempt sends besides a GET with the client's headers
 * (client:start's `extra`, checked by kp_request.c); NULL stands for that
 * plain GET.  Everything is copied by the transfer before
 * kp_transfer_start returns: the caller's strings may go afterwards.
 */
typedef struct kp_http_extra {
  int post;                     /* POST, else GET */
  const char *body;             /* with post: the body, any bytes */
  size_t body_len;
  const char *content_type;     /* with post: "Content-Type: ..." or NULL (none sent) */
  int replace_auth;             /* authorization replaces the client's for this attempt */
  const char *authorization;    /* "Authorization: ..." or NULL (none sent) */
} kp_http_extra;

typedef struct kp_transfer kp_transfer;

/* A socket libcurl wants watched, and for what (CURL_POLL_IN, _OUT, _INOUT). */
typedef struct kp_sock {
  curl_socket_t fd;
  int what;
} kp_sock;

/*
 * A client's transport.  Over libcurl: a multi handle (so all transfers
 * share connections and DNS), a share object for TLS sessions, a
 * configured template easy handle and a pool of idle easy handles made
 * from it.  External (another HTTP client in Lua sends each attempt and
 * reports how it went, kp_report.c): none of those, only the list of
 * attempts under way, so that closing the client cancels them all alike.
 */
typedef struct kp_transport {
  int closed;
  int external;
  CURLM *multi;
  CURLSH *share;
  CURL *proto;                  /* configured; duplicated per transfer */
  struct curl_slist *headers;   /* the request headers, whatever sends them */
  struct curl_slist *resolve;
  CURL *idle[KP_IDLE_MAX];
  int nidle;
  kp_transfer *active;          /* transfers under way */
  kp_sock *socks;               /* what libcurl's socket callback asked to watch */
  int nsocks, capsocks;
  double timer_at;              /* kp_monotonic_ms() libcurl wants a timeout action at, or < 0 */
  int running;                  /* libcurl's count of running transfers */
  double recv_until;            /* kp_monotonic_ms() to stop receiving at, or < 0 */
  int npaused;                  /* active transfers paused by recv_until */
  int nadded;                   /* easy handles in the multi handle */
  long pool_size;               /* idle connections to keep */
  kp_buf spare;                 /* a body buffer kept for the next transfer */
  size_t max_body;
  size_t snippet;
  long timeout_ms;              /* the configured per-transfer timeout */
  int unarmed;                  /* a transfer started since the last arm() */
  int follow_redirects;         /* as configured: a POST never follows */
} kp_transport;

struct kp_transfer {
  kp_transport *tp;             /* set while running */
  CURL *easy;                   /* set while running over libcurl */
  kp_buf body;
  size_t max_body;
  double started_ms;            /* kp_monotonic_ms() at the start */
  double deadline_ms;           /* when the attempt times out (kpayment's own
                                 * clock, not libcurl's: paused time is added
                                 * back), or < 0 for never */
  double paused_ms;             /* when receiving was paused */
  long timeout_ms;              /* the attempt's timeout (0: none) */
  int armed;                    /* its timeout runs: a poll has driven it */
  kp_result res;                /* res.state: KP_IDLE ... KP_CANCELLED */
  int too_large;                /* the body went over max_body */
  int has_length;               /* a Content-Length was read (its value:) */
  uint64_t length;
  const char *bad_framing;      /* why the headers were refused, or NULL */
  int paused;                   /* receiving stopped until the next poll */
  int custom;                   /* its easy handle carries a kp_http_extra's options,
                                 * undone before the handle is reused */
  struct curl_slist *headers;   /* with custom: this attempt's request headers */
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
 * cancels the transfers still running (each becomes KP_CANCELLED). */
KP_HIDDEN CURLcode kp_transport_open(kp_transport *tp, const kp_http_config *cfg);
KP_HIDDEN void kp_transport_close(kp_transport *tp);

/* Start t (zeroed) on url; timeout_ms < 0: the configured timeout,
 * otherwise this one (retries shorten it to fit a deadline).  x: the
 * method, body and headers of this attempt, or NULL for a GET with the
 * client's headers.  The body buffer comes from the transport's spare
 * when it has one.  On an external transport t is only marked running
 * (x ignored): Lua code sends it. */
KP_HIDDEN CURLcode kp_transfer_start(kp_transport *tp, kp_transfer *t, const char *url,
                                     long timeout_ms, const kp_http_extra *x);

/* An external transfer ends (t->res filled by its reporter): it leaves the
 * transport's list, its body is terminated for the decoder. */
KP_HIDDEN void kp_transfer_end(kp_transfer *t);

/*
 * Network work of every transfer, waiting at most timeout_ms for some;
 * returns the transfers still running, or -1 when the multi handle fails.
 * Transfers are driven through libcurl's socket API: the sockets and the
 * timeout libcurl asks for are what kp_transport_watch tells a host.
 * budget_ms >= 0 (any finite budget) bounds the time spent receiving
 * bodies to KP_RECV_SLICE_MS per poll: past it, a transfer that gets more
 * data is paused (libcurl keeps that data) until the next poll, which
 * resumes it first.  The time a transfer spends paused does not count
 * against its timeout, which kpayment keeps itself.  A poll that paused a
 * transfer does not wait.
 */
KP_HIDDEN int kp_transport_poll(kp_transport *tp, int timeout_ms, double budget_ms);

/* Milliseconds of receiving one poll does at most (a finite budget). */
#define KP_RECV_SLICE_MS 1.0

/* What a host's event loop must watch for the transport: up to max sockets
 * into fds/what (CURL_POLL_IN, _OUT, _INOUT), their count as the result
 * (it may exceed max: call again with room), and in *timeout_ms how long
 * the host may sleep before the next poll is due: 0 when work is ready
 * now (a paused transfer), -1 when nothing is under way. */
KP_HIDDEN int kp_transport_watch(const kp_transport *tp, int *fds, int *what, int max,
                                 long *timeout_ms);

/* Stop t if it runs (KP_CANCELLED) and free its body. */
KP_HIDDEN void kp_transfer_cancel(kp_transfer *t);

/* Give a body buffer back to the transport for its next transfer when it
 * is modest and the transport open and without one; otherwise free it.
 * *b is empty afterwards either way. */
KP_HIDDEN void kp_transport_recycle(kp_transport *tp, kp_buf *b);

#endif
