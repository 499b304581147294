/*
 * kp_http.h -- moving bytes with libcurl: one easy handle per client, its
 * options, a GET, and the body collected into a kp_buf.  No Lua API here, so
 * no Lua error can ever unwind through libcurl's frames.
 */
#ifndef KP_HTTP_H
#define KP_HTTP_H

#include <curl/curl.h>
#include "kp_buf.h"

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
} kp_http_config;

typedef struct kp_http {
  CURL *easy;                   /* NULL once closed */
  struct curl_slist *headers;
  kp_buf body;
  size_t max_body;
  int too_large;                /* the last body went over max_body */
  int oom;                      /* the last body could not be stored */
  char errbuf[CURL_ERROR_SIZE];
} kp_http;

/* Once per process (libcurl's global state); returns 0 or a CURLcode. */
KP_HIDDEN int kp_http_global_init(void);

/* h must be zeroed.  On failure whatever was acquired is released by
 * kp_http_close, which is safe to call any number of times. */
KP_HIDDEN CURLcode kp_http_open(kp_http *h, const kp_http_config *cfg);
KP_HIDDEN void kp_http_close(kp_http *h);

/* GET url into h->body (NUL-terminated on success).  *status is the HTTP
 * status, 0 when none arrived. */
KP_HIDDEN CURLcode kp_http_get(kp_http *h, const char *url, long *status);

/* Drop the last body; keeps a modest buffer for the next call. */
KP_HIDDEN void kp_http_release_body(kp_http *h);

/* "network", "timeout", "tls" or "body_too_large" for a failed transfer. */
KP_HIDDEN const char *kp_http_failure_kind(const kp_http *h, CURLcode rc);

/* The most specific message libcurl gave for rc. */
KP_HIDDEN const char *kp_http_failure_message(const kp_http *h, CURLcode rc);

#endif
