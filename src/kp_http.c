/*
 * kp_http.c -- the libcurl transport (see kp_http.h).
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "kp_h1.h"
#include "kp_http.h"

/* A body buffer up to this size is kept between uses; a larger one is
 * freed so an idle client does not pin a huge response. */
#define KP_BODY_KEEP (1024 * 1024)

/* The one process-wide state: who initialised libcurl, and what libcurl
 * says of itself.  Written once, under a mutex rather than pthread_once: helgrind
 * does not model pthread_once and would report every later read, ours and
 * libcurl's, of what the once-routine wrote.  A mutex orders them for TSan
 * and helgrind alike, and costs one uncontended lock per client. */
static pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;
static int global_owner = KP_CURL_UNSET;
static CURLcode global_rc = CURLE_OK;
/* curl_version_info writes libcurl's static data: read it once, here.
 * What it points to is libcurl's and never changes afterwards. */
static const curl_version_info_data *curl_info = NULL;

/* With global_lock held, the first time only. */
static void global_init(int owner) {
  global_owner = owner;
  if (owner == KP_CURL_OURS)
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (global_rc == CURLE_OK)
    curl_info = curl_version_info(CURLVERSION_NOW);
}

int kp_http_global_init(void) {
  CURLcode rc;
  pthread_mutex_lock(&global_lock);
  if (global_owner == KP_CURL_UNSET)
    global_init(KP_CURL_OURS);
  rc = global_rc;
  pthread_mutex_unlock(&global_lock);
  return (int)rc;
}

int kp_http_curl_by_host(void) {
  int owner;
  pthread_mutex_lock(&global_lock);
  if (global_owner == KP_CURL_UNSET)
    global_init(KP_CURL_HOST);
  owner = global_owner;
  pthread_mutex_unlock(&global_lock);
  return owner == KP_CURL_HOST;
}

const curl_version_info_data *kp_http_curl_info(void) {
  const curl_version_info_data *cv;
  pthread_mutex_lock(&global_lock);
  cv = curl_info;
  pthread_mutex_unlock(&global_lock);
  return cv;
}

const char *kp_http_curl_version(void) {
  const curl_version_info_data *cv = kp_http_curl_info();
  return cv != NULL && cv->version != NULL ? cv->version : "unknown";
}

/* Runs inside libcurl: touches only the transfer.  Returning less than
 * given makes libcurl abort the transfer (CURLE_WRITE_ERROR). */
static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  kp_transfer *t = (kp_transfer *)ud;
  size_t n = size * nmemb;
  if (t->tp != NULL && t->tp->recv_until >= 0 && kp_monotonic_ms() >= t->tp->recv_until) {
    /* this poll's receiving is done: libcurl keeps these bytes for the
     * next, and the time until then is not the transfer's */
    t->paused = 1;
    t->paused_ms = kp_monotonic_ms();
    t->tp->npaused++;
    return CURL_WRITEFUNC_PAUSE;
  }
  if (n > t->max_body - t->body.len) {
    t->too_large = 1;
    return 0;
  }
  if (t->body.len == 0) {
    /* Size the buffer once from Content-Length (a hint: it may be the
     * compressed size, and the server may lie). */
    curl_off_t cl = -1;
    if (curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) ==
            CURLE_OK &&
        cl > 0 && (curl_off_t)t->max_body >= cl)
      (void)kp_buf_reserve(&t->body, (size_t)cl);
  }
  if (kp_buf_append(&t->body, data, n) != 0) {
    t->res.oom = 1;
    return 0;
  }
  return n;
}

/* Runs inside libcurl, once per header line: the headers go to the one
 * keeper of what is worth keeping (kp_result.c).  A new status line (a
 * redirect, a 100) starts over. */
static size_t on_header(char *line, size_t size, size_t nmemb, void *ud) {
  kp_transfer *t = (kp_transfer *)ud;
  kp_result *r = &t->res;
  size_t n = size * nmemb, k;
  const char *colon, *v;
  if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
    kp_result_header_reset(r);
    t->has_length = 0;
    return n;
  }
  colon = memchr(line, ':', n);
  if (colon == NULL)
    return n;
  k = (size_t)(colon - line);
  v = colon + 1;
  n -= k + 1;
  while (n > 0 && (*v == ' ' || *v == '\t')) {
    v++;
    n--;
  }
  while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
    n--;
  if (k == 14 && strncasecmp(line, "content-length", 14) == 0) {
    /* libcurl takes two different lengths (the last wins); the other
     * transports refuse them, and so does this one: the framing is in doubt */
    t->bad_framing = kp_h1_content_length(v, n, &t->has_length, &t->length);
    if (t->bad_framing != NULL)
      return 0;                 /* CURLE_WRITE_ERROR; finish() says why */
  }
  kp_result_header(r, line, k, v, n);
  return size * nmemb;
}

#define SET(opt, val)                                                      \
  do {                                                                     \
    if ((rc = curl_easy_setopt(e, opt, val)) != CURLE_OK)                  \
      return rc;                                                           \
  } while (0)

/* The options every transfer of this client carries. */
static CURLcode configure(kp_transport *tp, CURL *e, const kp_http_config *cfg) {
  CURLcode rc;
  SET(CURLOPT_SHARE, tp->share);
  /* Accept, Authorization and User-Agent as every transport sends them;
   * libcurl (since 7.58) keeps a custom Authorization to the first host
   * when it follows a redirect. */
  SET(CURLOPT_HTTPHEADER, tp->headers);
  SET(CURLOPT_WRITEFUNCTION, on_body);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  /* No signals: safe in threaded hosts and under nginx. */
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_HTTPGET, 1L);
  /* Every encoding this libcurl can decode. */
  SET(CURLOPT_ACCEPT_ENCODING, "");
  /* TLS verification is on unless the caller said `insecure` (the Lua side
   * then logs a warning with every request). */
  SET(CURLOPT_SSL_VERIFYPEER, cfg->insecure ? 0L : 1L);
  SET(CURLOPT_SSL_VERIFYHOST, cfg->insecure ? 0L : 2L);
  /* The API does not redirect, so by default neither do we.  When asked
   * to, credentials still go only to the original host, and a POST
   * follows nothing (kp_transfer_start): a 307 or 308 would resend its
   * body, which may hold a secret, to wherever it points. */
  SET(CURLOPT_FOLLOWLOCATION, cfg->follow_redirects ? 1L : 0L);
  SET(CURLOPT_MAXREDIRS, 5L);
  SET(CURLOPT_UNRESTRICTED_AUTH, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
  SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  SET(CURLOPT_TCP_KEEPALIVE, 1L);
  /* pool_idle_timeout: at least a second (libcurl counts whole ones) */
  SET(CURLOPT_MAXAGE_CONN, cfg->pool_idle_s > 0 ? cfg->pool_idle_s : 1L);
  /* The attempt's timeout is kpayment's (kp_transfer.deadline_ms): libcurl
   * cannot leave out the time a transfer spends paused by a poll. */
  SET(CURLOPT_TIMEOUT_MS, 0L);
  SET(CURLOPT_CONNECTTIMEOUT_MS, cfg->connect_timeout_ms);
  /* Refuse early when Content-Length already says too much.  With a
   * Content-Encoding it counts compressed bytes, which may exceed the
   * decompressed ones that max_body bounds (on_body) by a framing's worth:
   * deflate's stored blocks add 5 bytes in 65 535, gzip 18 in all. */
  SET(CURLOPT_MAXFILESIZE_LARGE,
      (curl_off_t)cfg->max_body + (curl_off_t)(cfg->max_body / 4096) + 1024);
  if (cfg->ca_file)
    SET(CURLOPT_CAINFO, cfg->ca_file);
  if (cfg->proxy)
    SET(CURLOPT_PROXY, cfg->proxy);
  if (tp->resolve)
    SET(CURLOPT_RESOLVE, tp->resolve);
  return CURLE_OK;
}

#undef SET

/* libcurl's socket callback: the sockets to watch, kept for drive() and
 * for a host's event loop (kp_transport_watch).  Runs inside libcurl:
 * touches only the transport. */
static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
  kp_transport *tp = (kp_transport *)userp;
  int i;
  (void)e;
  (void)socketp;
  for (i = 0; i < tp->nsocks && tp->socks[i].fd != s; i++)
    ;
  if (what == CURL_POLL_REMOVE) {
    if (i < tp->nsocks)
      tp->socks[i] = tp->socks[--tp->nsocks];
    return 0;
  }
  if (i == tp->nsocks) {
    if (tp->nsocks == tp->capsocks) {
      int cap = tp->capsocks ? tp->capsocks * 2 : 8;
      kp_sock *p = (kp_sock *)realloc(tp->socks, (size_t)cap * sizeof *p);
      if (p == NULL)
        return -1;              /* libcurl fails the transfer */
      tp->socks = p;
      tp->capsocks = cap;
    }
    tp->socks[tp->nsocks++].fd = s;
  }
  tp->socks[i].what = what;
  return 0;
}

/* libcurl's timer callback: when it wants a timeout action. */
static int on_timer(CURLM *m, long timeout_ms, void *userp) {
  kp_transport *tp = (kp_transport *)userp;
  (void)m;
  tp->timer_at = timeout_ms < 0 ? -1 : kp_monotonic_ms() + (double)timeout_ms;
  return 0;
}

/*
 * libcurl's cache limit counts connections in use as well as idle ones:
 * held at pool_size, it closed nearly every connection as its transfer
 * ended once more than pool_size were in flight, and the next request
 * paid a new one (a handshake over TLS).  So the limit follows the handles
 * in the multi.  libcurl checks it as a transfer hands its connection
 * back, while that handle still counts: the others are nadded - 1, and a
 * connection closes only when more than pool_size would be idle.  (Several
 * ending in one call can leave more idle; each later end closes one, and
 * pool_idle_timeout the rest.)  Outside opening, a failure only leaves
 * the previous limit.
 */
static CURLMcode size_cache(kp_transport *tp, int added) {
  tp->nadded += added;
  return curl_multi_setopt(tp->multi, CURLMOPT_MAXCONNECTS,
                           tp->pool_size + (tp->nadded > 1 ? (long)tp->nadded - 1 : 0L));
}

CURLcode kp_transport_open(kp_transport *tp, const kp_http_config *cfg) {
  const char *const *h;
  tp->max_body = cfg->max_body;
  tp->snippet = cfg->snippet;
  tp->timeout_ms = cfg->timeout_ms;
  tp->follow_redirects = cfg->follow_redirects;
  tp->external = cfg->external;
  tp->resolve = cfg->resolve;
  tp->recv_until = -1;
  tp->timer_at = -1;
  tp->npaused = 0;
  tp->nadded = 0;
  tp->pool_size = cfg->pool_size;
  for (h = cfg->headers; *h != NULL; h++) {
    struct curl_slist *l = curl_slist_append(tp->headers, *h);
    if (l == NULL)
      return CURLE_OUT_OF_MEMORY;
    tp->headers = l;
  }
  if (tp->external)
    return CURLE_OK;
  if ((tp->multi = curl_multi_init()) == NULL ||
      (tp->share = curl_share_init()) == NULL ||
      (tp->proto = curl_easy_init()) == NULL)
    return CURLE_FAILED_INIT;
  /* Connections and DNS are shared through the multi handle; TLS sessions
   * need the share object.  One client is used from one thread at a time,
   * so no lock callbacks. */
  if (curl_share_setopt(tp->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) !=
      CURLSHE_OK ||
      size_cache(tp, 0) != CURLM_OK ||
      curl_multi_setopt(tp->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
      curl_multi_setopt(tp->multi, CURLMOPT_SOCKETDATA, (void *)tp) != CURLM_OK ||
      curl_multi_setopt(tp->multi, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
      curl_multi_setopt(tp->multi, CURLMOPT_TIMERDATA, (void *)tp) != CURLM_OK)
    return CURLE_FAILED_INIT;
  return configure(tp, tp->proto, cfg);
}

static void link_active(kp_transport *tp, kp_transfer *t) {
  t->tp = tp;
  t->res.state = KP_RUNNING;
  t->prev = NULL;
  t->next = tp->active;
  if (tp->active)
    tp->active->prev = t;
  tp->active = t;
}

static void unlink_active(kp_transfer *t) {
  if (t->prev)
    t->prev->next = t->next;
  else if (t->tp)
    t->tp->active = t->next;
  if (t->next)
    t->next->prev = t->prev;
  t->prev = t->next = NULL;
}

/* Undo what kp_transfer_start set on e for a kp_http_extra, so the handle
 * sends a plain GET again: the client's headers, no body (libcurl frees
 * its copy), redirects as configured. */
static CURLcode uncustomize(const kp_transport *tp, CURL *e) {
  CURLcode rc;
  if ((rc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, tp->headers)) != CURLE_OK ||
      (rc = curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL)) != CURLE_OK ||
      (rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1)) != CURLE_OK ||
      (rc = curl_easy_setopt(e, CURLOPT_HTTPGET, 1L)) != CURLE_OK)
    return rc;
  return curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, tp->follow_redirects ? 1L : 0L);
}

/* Take t's easy handle out of the multi and keep it for another transfer,
 * with nothing of t left in it. */
static void detach(kp_transfer *t) {
  kp_transport *tp = t->tp;
  CURL *e = t->easy;
  int keep;
  if (tp == NULL)
    return;
  unlink_active(t);
  t->tp = NULL;
  if (e == NULL)                /* external: no libcurl handle */
    return;
  curl_multi_remove_handle(tp->multi, e);
  (void)size_cache(tp, -1);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, NULL);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, NULL);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
  curl_easy_setopt(e, CURLOPT_PRIVATE, NULL);
  /* a paused handle holds data of its own transfer: never reused */
  keep = !t->paused && tp->nidle < KP_IDLE_MAX;
  if (t->paused) {
    t->paused = 0;
    tp->npaused--;
  }
  if (t->custom) {
    t->custom = 0;
    if (keep && uncustomize(tp, e) != CURLE_OK)
      keep = 0;                 /* not provably plain again: not reused */
  }
  if (keep)
    tp->idle[tp->nidle++] = e;
  else
    curl_easy_cleanup(e);
  t->easy = NULL;
  if (t->headers != NULL) {     /* no handle refers to them any more */
    curl_slist_free_all(t->headers);
    t->headers = NULL;
  }
}

void kp_transport_close(kp_transport *tp) {
  tp->closed = 1;
  while (tp->active) {
    kp_transfer *t = tp->active;
    detach(t);
    t->res.state = KP_CANCELLED;
  }
  kp_buf_free(&tp->spare);
  while (tp->nidle > 0)
    curl_easy_cleanup(tp->idle[--tp->nidle]);
  if (tp->proto) {
    curl_easy_cleanup(tp->proto);
    tp->proto = NULL;
  }
  if (tp->multi) {
    curl_multi_cleanup(tp->multi);
    tp->multi = NULL;
  }
  if (tp->share) {
    curl_share_cleanup(tp->share);
    tp->share = NULL;
  }
  curl_slist_free_all(tp->headers);
  tp->headers = NULL;
  curl_slist_free_all(tp->resolve);
  tp->resolve = NULL;
  free(tp->socks);
  tp->socks = NULL;
  tp->nsocks = tp->capsocks = 0;
}

/* Append line to *l; 0, or -1 (nothing changed) when out of memory. */
static int append_line(struct curl_slist **l, const char *line) {
  struct curl_slist *n = curl_slist_append(*l, line);
  if (n == NULL)
    return -1;
  *l = n;
  return 0;
}

/* The request headers of an attempt with x: the client's, its
 * Authorization replaced when x says so, then a POST's Content-Type (an
 * empty "Content-Type:" drops libcurl's default form type) and an empty
 * "Expect:" (no 100-continue round trip before a larger body).  NULL when
 * out of memory. */
static struct curl_slist *extra_headers(const kp_transport *tp, const kp_http_extra *x) {
  struct curl_slist *l = NULL;
  const struct curl_slist *h;
  for (h = tp->headers; h != NULL; h = h->next) {
    if (x->replace_auth && strncmp(h->data, "Authorization:", 14) == 0)
      continue;
    if (append_line(&l, h->data) != 0)
      goto nomem;
  }
  if (x->replace_auth && x->authorization != NULL && append_line(&l, x->authorization) != 0)
    goto nomem;
  if (x->post && (append_line(&l, x->content_type ? x->content_type : "Content-Type:") != 0 ||
                  append_line(&l, "Expect:") != 0))
    goto nomem;
  return l;
nomem:
  curl_slist_free_all(l);
  return NULL;
}

/* Set x's method, body and headers on e, for t alone: t->custom tells
 * detach to undo them.  A POST follows no redirect. */
static CURLcode customize(kp_transport *tp, kp_transfer *t, CURL *e, const kp_http_extra *x) {
  CURLcode rc;
  t->custom = 1;
  if ((t->headers = extra_headers(tp, x)) == NULL)
    return CURLE_OUT_OF_MEMORY;
  if ((rc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers)) != CURLE_OK)
    return rc;
  if (!x->post)
    return CURLE_OK;
  /* the size first: COPYPOSTFIELDS then copies that many bytes, NULs
   * included, into memory of the handle's own */
  if ((rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len)) !=
          CURLE_OK ||
      (rc = curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, x->body ? x->body : "")) != CURLE_OK)
    return rc;
  return curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
}

CURLcode kp_transfer_start(kp_transport *tp, kp_transfer *t, const char *url,
                           long timeout_ms, const kp_http_extra *x) {
  CURL *e;
  CURLcode rc;
  kp_transfer_cancel(t);
  memset(&t->res, 0, sizeof t->res);
  t->max_body = tp->max_body;
  t->too_large = 0;
  t->has_length = 0;
  t->bad_framing = NULL;
  t->started_ms = kp_monotonic_ms();
  if (timeout_ms < 0)
    timeout_ms = tp->timeout_ms;
  t->deadline_ms = timeout_ms > 0 ? t->started_ms + (double)timeout_ms : -1;
  t->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
  t->armed = tp->external;      /* libcurl's: from the first poll (arm) */
  tp->unarmed |= !t->armed;
  if (t->body.data == NULL) {   /* take the spare: no malloc per request */
    t->body = tp->spare;
    memset(&tp->spare, 0, sizeof tp->spare);
  }
  if (tp->external) {
    (void)url;
    (void)timeout_ms;
    (void)x;
    link_active(tp, t);
    return CURLE_OK;
  }
  if (tp->nidle > 0) {
    e = tp->idle[--tp->nidle];
  } else {
    if ((e = curl_easy_duphandle(tp->proto)) == NULL)
      return CURLE_OUT_OF_MEMORY;
    /* duplicates share nothing by default: name the share object again */
    if ((rc = curl_easy_setopt(e, CURLOPT_SHARE, tp->share)) != CURLE_OK) {
      curl_easy_cleanup(e);
      return rc;
    }
  }
  if ((rc = curl_easy_setopt(e, CURLOPT_URL, url)) != CURLE_OK ||
      (rc = curl_easy_setopt(e, CURLOPT_WRITEDATA, t)) != CURLE_OK ||
      (rc = curl_easy_setopt(e, CURLOPT_HEADERDATA, t)) != CURLE_OK ||
      (rc = curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->res.message)) != CURLE_OK ||
      (rc = curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)t)) != CURLE_OK ||
      /* Over https, concurrent transfers wait for the first connection's
       * ALPN and share it when it is HTTP/2, instead of each opening its
       * own.  Not over http: there the protocol is known only from the
       * first response, and a slow one would hold every other back. */
      (rc = curl_easy_setopt(e, CURLOPT_PIPEWAIT,
                             strncmp(url, "https:", 6) == 0 ? 1L : 0L)) != CURLE_OK ||
      (x != NULL && (rc = customize(tp, t, e, x)) != CURLE_OK)) {
    curl_easy_cleanup(e);       /* whatever customize set goes with it */
    t->custom = 0;
    curl_slist_free_all(t->headers);
    t->headers = NULL;
    return rc;
  }
  if (curl_multi_add_handle(tp->multi, e) != CURLM_OK) {
    curl_easy_cleanup(e);
    t->custom = 0;
    curl_slist_free_all(t->headers);
    t->headers = NULL;
    return CURLE_FAILED_INIT;
  }
  (void)size_cache(tp, 1);
  t->easy = e;
  link_active(tp, t);
  return CURLE_OK;
}

/* libcurl's codes in kpayment's kinds, with whether another attempt may
 * fix the failure: the one place that reads them. */
static void classify(CURLcode rc, int *kind, int *retryable) {
  *kind = KP_NETWORK;
  *retryable = 0;
  switch (rc) {
  case CURLE_OPERATION_TIMEDOUT:
    *kind = KP_TIMEOUT;
    *retryable = 1;
    break;
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_CONNECT:
  case CURLE_HTTP2:
  case CURLE_PARTIAL_FILE:      /* a truncated body */
  case CURLE_GOT_NOTHING:
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_HTTP2_STREAM:
    *retryable = 1;
    break;
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
    *kind = KP_TLS;
    break;
  default:
    break;
  }
}

static void finish(kp_transfer *t, CURLcode rc) {
  kp_result *r = &t->res;
  curl_off_t us = 0;
  (void)curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &r->status);
  if (curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME_T, &us) == CURLE_OK)
    r->total_time = (double)us / 1e6;
  detach(t);
  r->bytes = t->body.len;
  if (rc == CURLE_OK && kp_buf_terminate(&t->body) != 0)
    r->oom = 1;
  r->state = KP_DONE;
  if (t->too_large) {
    kp_result_fail(r, KP_TOO_LARGE, 0, KP_MSG_TOO_LARGE, strlen(KP_MSG_TOO_LARGE));
  } else if (t->bad_framing != NULL) {
    kp_result_fail(r, KP_NETWORK, 0, t->bad_framing, strlen(t->bad_framing));
    r->curl_code = (int)rc;
  } else if (rc == CURLE_FILESIZE_EXCEEDED) {
    kp_result_fail(r, KP_TOO_LARGE, 0, KP_MSG_LENGTH_TOO_LARGE,
                   strlen(KP_MSG_LENGTH_TOO_LARGE));
  } else if (rc != CURLE_OK) {
    int kind, retryable;
    const char *why = r->message[0] ? r->message : curl_easy_strerror(rc);
    classify(rc, &kind, &retryable);
    r->curl_code = (int)rc;
    if (why != r->message)
      kp_result_fail(r, kind, retryable, why, strlen(why));
    else
      r->kind = kind, r->retryable = retryable;
  }
}

void kp_transfer_end(kp_transfer *t) {
  kp_result *r = &t->res;
  detach(t);
  r->total_time = (kp_monotonic_ms() - t->started_ms) / 1e3;
  r->bytes = t->body.len;
  if (r->kind == KP_COMPLETE && kp_buf_terminate(&t->body) != 0)
    r->oom = 1;
  r->state = KP_DONE;
}

/* Hand every finished transfer its result; returns how many finished. */
static int collect(kp_transport *tp) {
  CURLMsg *m;
  int left, n = 0;
  while ((m = curl_multi_info_read(tp->multi, &left)) != NULL) {
    char *priv = NULL;
    if (m->msg != CURLMSG_DONE)
      continue;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
    if (priv != NULL) {
      finish((kp_transfer *)(void *)priv, m->data.result);
      n++;
    }
  }
  return n;
}

/* Resume the transfers the last poll paused (what libcurl kept of them is
 * written when they next run), their paused time added to their
 * deadlines, then start this poll's receiving slice. */
static void resume(kp_transport *tp, double budget_ms) {
  kp_transfer *t;
  double now = kp_monotonic_ms();
  tp->recv_until = -1;
  for (t = tp->active; t != NULL && tp->npaused > 0; t = t->next) {
    if (t->paused) {
      t->paused = 0;
      tp->npaused--;
      if (t->deadline_ms >= 0)
        t->deadline_ms += now - t->paused_ms;
      if (curl_easy_pause(t->easy, CURLPAUSE_CONT) != CURLE_OK) {
        t->paused = 1;          /* still paused: again next poll */
        t->paused_ms = now;
        tp->npaused++;
      }
    }
  }
  tp->recv_until = budget_ms < 0 ? -1 : now + KP_RECV_SLICE_MS;
}

static int action(kp_transport *tp, curl_socket_t fd, int events) {
  return curl_multi_socket_action(tp->multi, fd, events, &tp->running) == CURLM_OK ? 0 : -1;
}

/* Wait up to wait_ms (0: not at all) for the sockets libcurl watches, or
 * until its timer is due, and let libcurl act on what happened. */
static int drive(kp_transport *tp, int wait_ms) {
  struct pollfd stack[16], *fds = stack;
  int n = tp->nsocks, i, ready, rc = 0;
  if (tp->timer_at >= 0) {
    double left = tp->timer_at - kp_monotonic_ms();
    if (left <= 0)
      wait_ms = 0;
    else if (left < wait_ms)
      wait_ms = (int)ceil(left);
  }
  if (n > (int)(sizeof stack / sizeof stack[0]) &&
      (fds = (struct pollfd *)malloc((size_t)n * sizeof *fds)) == NULL)
    return -1;
  for (i = 0; i < n; i++) {
    fds[i].fd = tp->socks[i].fd;
    fds[i].events = (short)(((tp->socks[i].what & CURL_POLL_IN) ? POLLIN : 0) |
                            ((tp->socks[i].what & CURL_POLL_OUT) ? POLLOUT : 0));
    fds[i].revents = 0;
  }
  ready = poll(fds, (nfds_t)n, wait_ms);
  if (ready < 0 && errno != EINTR)
    rc = -1;
  /* the copy, not tp->socks: acting may change what libcurl watches */
  for (i = 0; i < n && ready > 0 && rc == 0; i++) {
    int ev = 0;
    if (fds[i].revents == 0)
      continue;
    if (fds[i].revents & (POLLIN | POLLHUP))
      ev |= CURL_CSELECT_IN;
    if (fds[i].revents & POLLOUT)
      ev |= CURL_CSELECT_OUT;
    if (fds[i].revents & (POLLERR | POLLNVAL))
      ev |= CURL_CSELECT_ERR;
    rc = action(tp, fds[i].fd, ev);
  }
  if (fds != stack)
    free(fds);
  if (rc == 0 && tp->timer_at >= 0 && kp_monotonic_ms() >= tp->timer_at) {
    tp->timer_at = -1;
    rc = action(tp, CURL_SOCKET_TIMEOUT, 0);
  }
  return rc;
}

/* End the transfers whose deadline passed, as libcurl would have. */
static int expire(kp_transport *tp) {
  kp_transfer *t = tp->active, *next;
  double now = kp_monotonic_ms();
  int n = 0;
  for (; t != NULL; t = next) {
    next = t->next;
    if (t->easy != NULL && !t->paused && t->deadline_ms >= 0 && now >= t->deadline_ms) {
      snprintf(t->res.message, sizeof t->res.message,
               "Operation timed out after %.0f milliseconds with %lu bytes received",
               now - t->started_ms, (unsigned long)t->body.len);
      finish(t, CURLE_OPERATION_TIMEDOUT);
      n++;
    }
  }
  return n;
}

/* Milliseconds to the earliest deadline of a running transfer, or -1. */
static double next_deadline(const kp_transport *tp) {
  const kp_transfer *t;
  double soonest = -1, now = kp_monotonic_ms();
  for (t = tp->active; t != NULL; t = t->next)
    if (t->easy != NULL && !t->paused && t->deadline_ms >= 0 &&
        (soonest < 0 || t->deadline_ms - now < soonest))
      soonest = t->deadline_ms > now ? t->deadline_ms - now : 0;
  return soonest;
}

static int running(const kp_transport *tp) {
  const kp_transfer *t;
  int n = 0;
  for (t = tp->active; t != NULL; t = t->next)
    n++;
  return n;
}

/* Start the clocks of the transfers no poll has driven yet: a timeout
 * counts from the wire, not from the call that started the attempt, so a
 * host that starts requests and then spends a long frame elsewhere finds
 * them sent at its next poll, not timed out unsent. */
static void arm(kp_transport *tp) {
  kp_transfer *t;
  double now;
  if (!tp->unarmed)             /* the usual poll: no walk of the transfers */
    return;
  tp->unarmed = 0;
  now = kp_monotonic_ms();
  for (t = tp->active; t != NULL; t = t->next) {
    if (!t->armed) {
      t->armed = 1;
      t->started_ms = now;
      t->deadline_ms = t->timeout_ms > 0 ? now + (double)t->timeout_ms : -1;
    }
  }
}

int kp_transport_poll(kp_transport *tp, int timeout_ms, double budget_ms) {
  int ended;
  arm(tp);
  resume(tp, budget_ms);
  if (drive(tp, 0) != 0)
    return -1;
  ended = collect(tp) + expire(tp);
  /* A transfer that just ended is news enough: do not wait then, nor
   * when one was paused (the next poll resumes it). */
  if (ended == 0 && timeout_ms > 0 && tp->active != NULL && tp->npaused == 0) {
    double d = next_deadline(tp);
    int wait = d >= 0 && d < timeout_ms ? (int)ceil(d) : timeout_ms;
    if (drive(tp, wait) != 0)
      return -1;
    collect(tp);
    expire(tp);
  }
  tp->recv_until = -1;
  return running(tp);
}

int kp_transport_watch(const kp_transport *tp, int *fds, int *what, int max,
                       long *timeout_ms) {
  int i;
  double t = -1;
  for (i = 0; i < tp->nsocks && i < max; i++) {
    fds[i] = (int)tp->socks[i].fd;
    what[i] = tp->socks[i].what;
  }
  if (tp->npaused > 0) {
    t = 0;
  } else if (tp->active != NULL) {
    double d = next_deadline(tp);
    if (tp->timer_at >= 0) {
      double left = tp->timer_at - kp_monotonic_ms();
      t = left > 0 ? left : 0;
    }
    if (d >= 0 && (t < 0 || d < t))
      t = d;
  }
  *timeout_ms = t < 0 ? -1 : (long)ceil(t);
  return tp->nsocks;
}

void kp_transfer_cancel(kp_transfer *t) {
  if (t->res.state == KP_RUNNING) {
    detach(t);
    t->res.state = KP_CANCELLED;
  }
  kp_buf_free(&t->body);
}

void kp_transport_recycle(kp_transport *tp, kp_buf *b) {
  if (tp != NULL && !tp->closed && tp->spare.data == NULL &&
      b->cap <= KP_BODY_KEEP) {
    b->len = 0;
    tp->spare = *b;
    memset(b, 0, sizeof *b);
  } else {
    kp_buf_free(b);
  }
}
