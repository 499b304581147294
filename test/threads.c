/*
 * threads.c -- kpayment in several threads at once (make test-threads).
 *
 *   threads [--threads N] [--rounds N] [--curl kpayment|host] [--script FILE]
 *
 * Each thread makes its own lua_State (luaL_newstate, luaL_openlibs,
 * kpayment_preload, empty package paths), waits at a barrier so that all
 * load kpayment.core -- and so race for libcurl's global init -- at the
 * same moment, then runs test/threads.lua: clients created, fetching from
 * the mock (KPAYMENT_BASE_URL) and closed, several rounds.  Nothing is
 * shared between the threads but the process: libcurl's global state and
 * kpayment's record of who initialised it.  Run under ThreadSanitizer and
 * under helgrind by test/threads.mk.
 *
 * --curl kpayment (default): the first luaopen_kpayment_core initialises
 *   libcurl; afterwards kpayment_curl_by_host() must answer 0 (too late).
 * --curl host: main calls curl_global_init and kpayment_curl_by_host()
 *   (which must answer 1) before the threads start, and
 *   curl_global_cleanup after every lua_State is closed.
 * Either way every thread must see libcurl's own version string.
 *
 * Exit status 0 when every thread fetched every offer it asked for.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "kpayment.h"

#ifndef LUA_OK                  /* Lua 5.1 and LuaJIT */
#define LUA_OK 0
#endif

#define MAX_THREADS 16
#define OFFERS_PER_ROUND (3 * (1 + 3 + 4))   /* see test/threads.lua */

typedef struct worker {
  pthread_t tid;
  int id;
  long fetched;
  char version[64];
  char error[512];
} worker;

static const char *script = "test/threads.lua";
static int rounds = 3;
static pthread_barrier_t start_line;

static void *run(void *arg) {
  worker *w = (worker *)arg;
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    snprintf(w->error, sizeof w->error, "luaL_newstate failed");
    pthread_barrier_wait(&start_line);
    return NULL;
  }
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "path");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  lua_pushcfunction(L, kpayment_preload);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK || luaL_loadfile(L, script) != LUA_OK) {
    snprintf(w->error, sizeof w->error, "%s", lua_tostring(L, -1));
    pthread_barrier_wait(&start_line);
    lua_close(L);
    return NULL;
  }
  lua_pushinteger(L, w->id);
  lua_pushinteger(L, rounds);
  pthread_barrier_wait(&start_line);
  if (lua_pcall(L, 2, 2, 0) != LUA_OK) {
    snprintf(w->error, sizeof w->error, "%s", lua_tostring(L, -1));
  } else {
    w->fetched = (long)lua_tointeger(L, -2);
    snprintf(w->version, sizeof w->version, "%s", lua_tostring(L, -1));
  }
  lua_close(L);
  return NULL;
}

int main(int argc, char **argv) {
  worker workers[MAX_THREADS];
  int nthreads = 4, host_owns = 0, failed = 0, i;
  const char *version;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
      nthreads = atoi(argv[++i]);
    else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
      rounds = atoi(argv[++i]);
    else if (strcmp(argv[i], "--script") == 0 && i + 1 < argc)
      script = argv[++i];
    else if (strcmp(argv[i], "--curl") == 0 && i + 1 < argc)
      host_owns = strcmp(argv[++i], "host") == 0;
    else {
      fprintf(stderr, "usage: %s [--threads N] [--rounds N] [--curl kpayment|host] [--script FILE]\n",
              argv[0]);
      return 2;
    }
  }
  if (nthreads < 1 || nthreads > MAX_THREADS || rounds < 1) {
    fprintf(stderr, "threads: 1 to %d threads, at least 1 round\n", MAX_THREADS);
    return 2;
  }

  if (host_owns) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      fprintf(stderr, "threads: curl_global_init failed\n");
      return 1;
    }
    if (kpayment_curl_by_host() != 1) {
      fprintf(stderr, "threads: kpayment_curl_by_host() refused before any lua_State\n");
      return 1;
    }
  }

  pthread_barrier_init(&start_line, NULL, (unsigned)nthreads);
  memset(workers, 0, sizeof workers);
  for (i = 0; i < nthreads; i++) {
    workers[i].id = i + 1;
    if (pthread_create(&workers[i].tid, NULL, run, &workers[i]) != 0) {
      fprintf(stderr, "threads: pthread_create failed\n");
      return 1;
    }
  }
  for (i = 0; i < nthreads; i++)
    pthread_join(workers[i].tid, NULL);
  pthread_barrier_destroy(&start_line);

  /* The threads are done: main may call libcurl's global functions. */
  version = curl_version_info(CURLVERSION_NOW)->version;
  for (i = 0; i < nthreads; i++) {
    worker *w = &workers[i];
    if (w->error[0]) {
      printf("thread %d: FAILED: %s\n", w->id, w->error);
      failed++;
    } else if (w->fetched != (long)rounds * OFFERS_PER_ROUND || strcmp(w->version, version) != 0) {
      printf("thread %d: FAILED: %ld offers (expected %ld), libcurl %s (expected %s)\n", w->id,
             w->fetched, (long)rounds * OFFERS_PER_ROUND, w->version, version);
      failed++;
    } else {
      printf("thread %d: %ld offers in %d rounds, libcurl %s\n", w->id, w->fetched, rounds,
             w->version);
    }
  }
  if (!host_owns && kpayment_curl_by_host() != 0) {
    printf("threads: FAILED: kpayment_curl_by_host() accepted after kpayment initialised libcurl\n");
    failed++;
  }
  if (host_owns)
    curl_global_cleanup();      /* every lua_State is closed */
  printf("threads: %d thread(s), libcurl initialised by %s: %s\n", nthreads,
         host_owns ? "the host" : "kpayment", failed ? "FAILED" : "ok");
  return failed ? 1 : 0;
}
