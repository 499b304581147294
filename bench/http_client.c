/*
 * bench/http_client.c -- the C reference points of `make bench-http`: how
 * fast plain libcurl fetches a URL, with and without decoding each body by
 * lua-cjson, sequentially or with libcurl's multi interface.
 *
 *   http_client [-k K] [-c CAFILE] [-g GC] MODE URL N
 *   http_client -V
 *
 * MODE
 *   discard        N sequential GETs on one reused easy handle; bodies are
 *                  thrown away (the transport limit)
 *   cjson          the same, each body decoded by cjson.decode in an
 *                  embedded lua_State (the "fetch + decode" limit)
 *   kpayment       the same with kpayment.core.decode (found along
 *                  LUA_CPATH): kpayment's decoder with nothing of its
 *                  client around it
 *   multi-discard  N GETs through a multi handle, K (default 8) in flight;
 *   multi-cjson    each of the K easy handles is reused for the next GET
 *
 * -g incremental or -g generational: the collector mode of the embedded
 * state (Lua 5.4; default: luaL_newstate's, incremental).  The Lua
 * benchmark passes its own, so that both sides collect alike: lua5.4's
 * standalone interpreter runs the generational mode.
 *
 * Sequential modes do one untimed GET first (connection set up, cjson
 * loaded, the body checked); the multi modes time everything, connection
 * set-up included, as a fresh client would.  Every request sends the
 * headers kpayment sends (Accept: application/json, Accept-Encoding with
 * every encoding libcurl decodes) and must answer 200.
 *
 * Prints one line of key=value pairs:
 *   mode=cjson requests=2000 seconds=0.812 rps=2462.1 cpu=0.75 bytes=92176000 offers=10 http=1.1
 * where seconds is wall-clock time and cpu the process's CPU time (both
 * for the timed requests only), offers the length of financeOffers in the
 * first decoded body (-1 in the discard modes) and http the protocol
 * version of the first response (as negotiated: "2" over TLS when the
 * server offers it).  -V prints the versions of libcurl and Lua.
 * Exits 1 on any failed request, 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/* A response body, kept between requests (only its length is reset). */
typedef struct {
  char *data;
  size_t len, cap;
  int keep; /* 0: discard mode, nothing is stored */
} body_buf;

/* One easy handle of a run, with its body. */
typedef struct {
  CURL *easy;
  body_buf body;
} transfer;

/* What a run measures and checks. */
typedef struct {
  lua_State *L; /* NULL in the discard modes */
  long long bytes;
  long offers; /* financeOffers length of the first decoded body, or -1 */
  int checked;
  long http_version; /* CURLINFO_HTTP_VERSION of the first response */
} run_state;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  body_buf *b = (body_buf *)ud;
  size_t n = size * nmemb;
  if (!b->keep)
    return n;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 64 * 1024;
    char *p;
    while (cap < b->len + n)
      cap *= 2;
    p = (char *)realloc(b->data, cap);
    if (p == NULL)
      return 0; /* libcurl aborts the transfer with CURLE_WRITE_ERROR */
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, n);
  b->len += n;
  return n;
}

static int setup_easy(transfer *t, const char *url, const char *cafile,
                      struct curl_slist *headers, int keep) {
  CURL *e = curl_easy_init();
  if (e == NULL)
    return -1;
  t->easy = e;
  memset(&t->body, 0, sizeof t->body);
  t->body.keep = keep;
  if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "") != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)&t->body) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)t) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L) != CURLE_OK)
    return -1;
  if (cafile != NULL && curl_easy_setopt(e, CURLOPT_CAINFO, cafile) != CURLE_OK)
    return -1;
  return 0;
}

/* The outcome of one finished transfer: status 200 required; the body is
 * decoded when a Lua state is present.  Returns 0 or -1 (message printed). */
static int finish(run_state *rs, transfer *t, CURLcode rc) {
  long status = 0;
  curl_off_t got = 0;
  if (rc != CURLE_OK) {
    fprintf(stderr, "http_client: %s\n", curl_easy_strerror(rc));
    return -1;
  }
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) {
    fprintf(stderr, "http_client: HTTP %ld\n", status);
    return -1;
  }
  curl_easy_getinfo(t->easy, CURLINFO_SIZE_DOWNLOAD_T, &got);
  rs->bytes += (long long)got;
  if (rs->http_version == 0)
    curl_easy_getinfo(t->easy, CURLINFO_HTTP_VERSION, &rs->http_version);
  if (rs->L != NULL) {
    lua_State *L = rs->L;
    /* stack: cjson.decode */
    lua_pushvalue(L, 1);
    lua_pushlstring(L, t->body.data ? t->body.data : "", t->body.len);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
      fprintf(stderr, "http_client: cjson.decode: %s\n", lua_tostring(L, -1));
      lua_pop(L, 1);
      return -1;
    }
    if (!rs->checked) {
      if (lua_type(L, -1) != LUA_TTABLE ||
          lua_getfield(L, -1, "financeOffers") != LUA_TTABLE) {
        fprintf(stderr, "http_client: no financeOffers array in the body\n");
        lua_settop(L, 1);
        return -1;
      }
      rs->offers = (long)lua_rawlen(L, -1);
      rs->checked = 1;
    }
    lua_settop(L, 1);
  }
  t->body.len = 0;
  return 0;
}

static int run_sequential(run_state *rs, transfer *t, long n) {
  long i;
  for (i = 0; i < n; i++)
    if (finish(rs, t, curl_easy_perform(t->easy)) != 0)
      return -1;
  return 0;
}

/* n GETs with k easy handles in flight; a finished handle is removed and
 * added again for the next GET, so it keeps its connection in the multi
 * handle's pool. */
static int run_multi(run_state *rs, transfer *ts, int k, long n) {
  CURLM *m = curl_multi_init();
  long started = 0, done = 0;
  int i, running = 0, failed = 0;
  if (m == NULL)
    return -1;
  for (i = 0; i < k && started < n; i++, started++)
    curl_multi_add_handle(m, ts[i].easy);
  while (done < n && !failed) {
    CURLMsg *msg;
    int left;
    if (curl_multi_perform(m, &running) != CURLM_OK) {
      failed = 1;
      break;
    }
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
      char *priv = NULL;
      CURL *e;
      if (msg->msg != CURLMSG_DONE)
        continue;
      e = msg->easy_handle;
      curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
      if (finish(rs, (transfer *)(void *)priv, msg->data.result) != 0) {
        failed = 1;
        break;
      }
      done++;
      curl_multi_remove_handle(m, e);
      if (started < n) {
        curl_multi_add_handle(m, e);
        started++;
      }
    }
    if (!failed && done < n && curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK)
      failed = 1;
  }
  for (i = 0; i < k; i++)
    curl_multi_remove_handle(m, ts[i].easy);
  curl_multi_cleanup(m);
  return failed ? -1 : 0;
}

/* A Lua state with the decode function of `module` at index 1, its
 * collector in mode gc (NULL: the default). */
static lua_State *open_decoder(const char *module, const char *gc) {
  lua_State *L = luaL_newstate();
  if (L == NULL)
    return NULL;
  luaL_openlibs(L);
#if LUA_VERSION_NUM >= 504
  if (gc != NULL && strcmp(gc, "generational") == 0)
    lua_gc(L, LUA_GCGEN, 0, 0);
  else if (gc != NULL)
    lua_gc(L, LUA_GCINC, 0, 0, 0);
#else
  (void)gc;
#endif
  /* stack: the decode function, for the whole run */
  lua_getglobal(L, "require");
  lua_pushstring(L, module);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || lua_getfield(L, -1, "decode") != LUA_TFUNCTION) {
    fprintf(stderr, "http_client: %s.decode: %s\n", module, lua_tostring(L, -1));
    lua_close(L);
    return NULL;
  }
  lua_replace(L, 1);
  lua_settop(L, 1);
  return L;
}

static void usage(void) {
  fprintf(stderr,
          "usage: http_client [-k K] [-c CAFILE] [-g incremental|generational] "
          "discard|cjson|kpayment|multi-discard|multi-cjson URL N\n"
          "       http_client -V\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *cafile = NULL, *gc = NULL, *mode, *url;
  int k = 8, multi = 0, decode, argi = 1, i, rc;
  long n;
  char *end;
  transfer *ts;
  run_state rs;
  struct curl_slist *headers;
  double t0, t1;
  clock_t c0, c1;

  if (argc == 2 && strcmp(argv[1], "-V") == 0) {
    printf("libcurl=%s lua=%s\n", curl_version(), LUA_RELEASE);
    return 0;
  }
  while (argi + 1 < argc && argv[argi][0] == '-') {
    if (strcmp(argv[argi], "-k") == 0)
      k = atoi(argv[argi + 1]);
    else if (strcmp(argv[argi], "-c") == 0)
      cafile = argv[argi + 1];
    else if (strcmp(argv[argi], "-g") == 0 &&
             (strcmp(argv[argi + 1], "incremental") == 0 ||
              strcmp(argv[argi + 1], "generational") == 0))
      gc = argv[argi + 1];
    else
      usage();
    argi += 2;
  }
  if (argc - argi != 3 || k < 1 || k > 1024)
    usage();
  mode = argv[argi];
  url = argv[argi + 1];
  n = strtol(argv[argi + 2], &end, 10);
  if (*end != '\0' || n < 1)
    usage();
  if (strcmp(mode, "multi-discard") == 0 || strcmp(mode, "multi-cjson") == 0)
    multi = 1;
  else if (strcmp(mode, "discard") != 0 && strcmp(mode, "cjson") != 0 &&
           strcmp(mode, "kpayment") != 0)
    usage();
  decode = strstr(mode, "cjson") != NULL || strcmp(mode, "kpayment") == 0;
  if (!multi)
    k = 1;

  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return 1;
  memset(&rs, 0, sizeof rs);
  rs.offers = -1;
  if (decode && (rs.L = open_decoder(strcmp(mode, "kpayment") == 0 ? "kpayment.core" : "cjson",
                                     gc)) == NULL)
    return 1;
  headers = curl_slist_append(NULL, "Accept: application/json");
  ts = (transfer *)calloc((size_t)k, sizeof *ts);
  if (headers == NULL || ts == NULL)
    return 1;
  for (i = 0; i < k; i++)
    if (setup_easy(&ts[i], url, cafile, headers, decode) != 0) {
      fprintf(stderr, "http_client: could not set up a libcurl handle\n");
      return 1;
    }

  if (!multi) {
    /* untimed: connection, TLS, cjson's first call */
    if (run_sequential(&rs, &ts[0], 1) != 0)
      return 1;
    rs.bytes = 0;
  }
  c0 = clock();
  t0 = now();
  rc = multi ? run_multi(&rs, ts, k, n) : run_sequential(&rs, &ts[0], n);
  t1 = now();
  c1 = clock();
  if (rc != 0)
    return 1;
  printf("mode=%s requests=%ld seconds=%.6f rps=%.1f cpu=%.6f bytes=%lld offers=%ld http=%s\n",
         mode, n, t1 - t0, (double)n / (t1 - t0), (double)(c1 - c0) / CLOCKS_PER_SEC, rs.bytes,
         rs.offers,
         rs.http_version == CURL_HTTP_VERSION_2_0   ? "2"
         : rs.http_version == CURL_HTTP_VERSION_1_1 ? "1.1"
         : rs.http_version == CURL_HTTP_VERSION_1_0 ? "1.0"
                                                    : "other");

  for (i = 0; i < k; i++) {
    curl_easy_cleanup(ts[i].easy);
    free(ts[i].body.data);
  }
  free(ts);
  curl_slist_free_all(headers);
  if (rs.L != NULL)
    lua_close(rs.L);
  curl_global_cleanup();
  return 0;
}
