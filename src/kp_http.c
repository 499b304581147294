/*
 * kp_http.c -- the libcurl transport (see kp_http.h).
 */
#include <pthread.h>
#include <string.h>
#include "kp_http.h"

/* A body buffer up to this size is kept between calls; a larger one is
 * freed after use so an idle client does not pin a huge response. */
#define KP_BODY_KEEP (1024 * 1024)

/* Process-wide and written once, under pthread_once: libcurl's global init
 * is not thread-safe on every version we may meet. */
static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;

static void global_init(void) {
  global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int kp_http_global_init(void) {
  pthread_once(&global_once, global_init);
  return (int)global_rc;
}

/* Runs inside curl_easy_perform: touches only our buffer.  Returning less
 * than given makes libcurl abort the transfer (CURLE_WRITE_ERROR). */
static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  kp_http *h = (kp_http *)ud;
  size_t n = size * nmemb;
  if (n > h->max_body - h->body.len) {
    h->too_large = 1;
    return 0;
  }
  if (h->body.len == 0) {
    /* Size the buffer once from Content-Length (a hint: it may be the
     * compressed size, and the server may lie). */
    curl_off_t cl = -1;
    if (curl_easy_getinfo(h->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) ==
            CURLE_OK &&
        cl > 0 && (curl_off_t)h->max_body >= cl)
      (void)kp_buf_reserve(&h->body, (size_t)cl);
  }
  if (kp_buf_append(&h->body, data, n) != 0) {
    h->oom = 1;
    return 0;
  }
  return n;
}

#define SET(opt, val)                                                      \
  do {                                                                     \
    if ((rc = curl_easy_setopt(h->easy, opt, val)) != CURLE_OK)            \
      return rc;                                                           \
  } while (0)

CURLcode kp_http_open(kp_http *h, const kp_http_config *cfg) {
  CURLcode rc;
  struct curl_slist *l;
  h->max_body = cfg->max_body;
  if ((h->easy = curl_easy_init()) == NULL)
    return CURLE_FAILED_INIT;
  if ((l = curl_slist_append(NULL, "Accept: application/json")) == NULL)
    return CURLE_OUT_OF_MEMORY;
  h->headers = l;
  SET(CURLOPT_HTTPHEADER, h->headers);
  SET(CURLOPT_ERRORBUFFER, h->errbuf);
  SET(CURLOPT_WRITEFUNCTION, on_body);
  SET(CURLOPT_WRITEDATA, h);
  /* No signals: safe in threaded hosts and under nginx.  */
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_HTTPGET, 1L);
  /* Every encoding this libcurl can decode. */
  SET(CURLOPT_ACCEPT_ENCODING, "");
  SET(CURLOPT_USERAGENT, cfg->user_agent);
  /* TLS verification stays on: these are libcurl's defaults, set anyway so
   * nothing inherited can weaken them. */
  SET(CURLOPT_SSL_VERIFYPEER, 1L);
  SET(CURLOPT_SSL_VERIFYHOST, 2L);
  /* The API does not redirect; never carry credentials elsewhere. */
  SET(CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
  SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  SET(CURLOPT_TCP_KEEPALIVE, 1L);
  SET(CURLOPT_TIMEOUT_MS, cfg->timeout_ms);
  SET(CURLOPT_CONNECTTIMEOUT_MS, cfg->connect_timeout_ms);
  /* Refuse early when Content-Length already says too much. */
  SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cfg->max_body);
  if (cfg->ca_file)
    SET(CURLOPT_CAINFO, cfg->ca_file);
  if (cfg->proxy)
    SET(CURLOPT_PROXY, cfg->proxy);
  if (cfg->bearer_token) {
    SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
    SET(CURLOPT_XOAUTH2_BEARER, cfg->bearer_token);
  } else if (cfg->username) {
    /* Basic only: sent with the first request, no 401 round trip. */
    SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    SET(CURLOPT_USERNAME, cfg->username);
    SET(CURLOPT_PASSWORD, cfg->password ? cfg->password : "");
  }
  return CURLE_OK;
}

#undef SET

void kp_http_close(kp_http *h) {
  if (h->easy) {
    curl_easy_cleanup(h->easy);
    h->easy = NULL;
  }
  curl_slist_free_all(h->headers);
  h->headers = NULL;
  kp_buf_free(&h->body);
}

CURLcode kp_http_get(kp_http *h, const char *url, long *status) {
  CURLcode rc;
  h->body.len = 0;
  h->too_large = 0;
  h->oom = 0;
  h->errbuf[0] = '\0';
  *status = 0;
  if ((rc = curl_easy_setopt(h->easy, CURLOPT_URL, url)) != CURLE_OK)
    return rc;
  rc = curl_easy_perform(h->easy);
  (void)curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, status);
  if (rc == CURLE_OK && kp_buf_terminate(&h->body) != 0) {
    h->oom = 1;
    rc = CURLE_OUT_OF_MEMORY;
  }
  return rc;
}

void kp_http_release_body(kp_http *h) {
  kp_buf_reset(&h->body, KP_BODY_KEEP);
}

const char *kp_http_failure_kind(const kp_http *h, CURLcode rc) {
  if (h->too_large || rc == CURLE_FILESIZE_EXCEEDED)
    return "body_too_large";
  switch (rc) {
  case CURLE_OPERATION_TIMEDOUT:
    return "timeout";
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_USE_SSL_FAILED:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_SHUTDOWN_FAILED:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CLIENTCERT:
    return "tls";
  default:
    return "network";
  }
}

const char *kp_http_failure_message(const kp_http *h, CURLcode rc) {
  if (h->too_large)
    return "response body larger than max_body";
  if (rc == CURLE_FILESIZE_EXCEEDED)
    return "Content-Length larger than max_body";
  return h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc);
}
