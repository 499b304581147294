/*
 * host.c -- a C program that embeds Lua and links kpayment statically
 * (make host; docs/hosts.md).
 *
 *   kpayment-host [--script FILE] [--curl-by-host] [--check] [--sleep]
 *                 [--high-fds] [CUSTOMER...]
 *
 * Runs a 60 Hz frame loop, as a game or a simulator would: each frame calls
 * the script's frame() (one client:poll(0): never waits for the network),
 * measures how long the call took, then sleeps until the next frame.
 * With --sleep it runs an event loop instead, as a host with its own would
 * (epoll, libuv, SDL's wait): after each poll it sleeps in poll(2) on the
 * sockets kpayment watches, for as long as kpayment allows
 * (kpayment_watch), so a host waiting for a slow API uses no CPU.  The
 * script (default examples/host/frames.lua) starts one request per
 * customer and prints offers as they arrive; the host prints frame-time
 * statistics at the end.  The default customers suit the mock
 * (examples/with-mock.sh): two ordinary ones, a slow one (half a second),
 * a large one (1 000 offers, about 4.6 MB) and one answering HTTP 500.
 *
 * --curl-by-host  the host initialises and cleans up libcurl itself and
 *                 tells kpayment so (kpayment_curl_by_host)
 * --check         exit 1 unless every request ended and frames kept
 *                 coming for at least half a second (the time mock:stall:0.5,
 *                 one of the defaults, takes to answer); with --sleep, unless
 *                 every request ended using under 2 % of a core
 * --sleep         the event loop above; prints the CPU it used
 * --high-fds      first open 1 100 descriptors, so that kpayment's sockets
 *                 get numbers above 1024 (where select() would fail)
 *
 * Configuration (base URL, credentials) comes from the environment, as for
 * any kpayment client: KPAYMENT_BASE_URL, KPAYMENT_USERNAME, ...
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "kpayment.h"

#ifndef LUA_OK                  /* Lua 5.1 and LuaJIT */
#define LUA_OK 0
#endif

#define HZ 60
#define FRAME_NS (1000000000L / HZ)
#define MAX_FRAMES (HZ * 30)            /* give up after 30 s */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Message handler for lua_pcall: the error with a traceback. */
static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
#if LUA_VERSION_NUM >= 502
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
#else
  lua_pushstring(L, msg ? msg : "(error object is not a string)");
#endif
  return 1;
}

static int pcall(lua_State *L, int nargs, int nres) {
  int base = lua_gettop(L) - nargs, rc;
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  rc = lua_pcall(L, nargs, nres, base);
  lua_remove(L, base);
  if (rc != LUA_OK) {
    fprintf(stderr, "kpayment-host: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return rc;
}

/* CPU seconds this process used (user and system). */
static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Open descriptors until the next one is above 1024 (raising the limit
 * first): what a host with many files open looks like to kpayment. */
static int high_fds(void) {
  struct rlimit rl;
  int fd = -1;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096 && rl.rlim_max >= 4096) {
    rl.rlim_cur = 4096;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
  while ((fd = dup(0)) >= 0 && fd < 1100)
    ;
  return fd;
}

/* The event loop of --sleep: poll, then sleep in poll(2) on what kpayment
 * watches, until nothing is pending.  The script's table is at -1. */
static int sleeping_loop(lua_State *L, int *frames, double *slowest_poll, int *maxfd) {
  /* Small at first, grown to what kpayment_watch reports: a socket left
   * out of poll(2) would let the host sleep through its response. */
  int cap = 16, pending = 1, status = 0;
  struct pollfd *fds = malloc((size_t)cap * sizeof *fds);
  if (fds == NULL)
    return 1;
  while (pending > 0 && *frames < MAX_FRAMES * 10) {
    int n, i, timeout;
    lua_getfield(L, -1, "frame");
    lua_pushinteger(L, *frames + 1);
    if (pcall(L, 1, 2) != LUA_OK) {
      status = 1;
      break;
    }
    pending = (int)lua_tointeger(L, -2);
    if (lua_tonumber(L, -1) > *slowest_poll)
      *slowest_poll = lua_tonumber(L, -1);
    lua_pop(L, 2);
    (*frames)++;
    fflush(stdout);
    if (pending == 0)
      break;
    lua_getfield(L, -1, "client");
    /* more sockets than room: grow to the count and ask again (the count
     * can change between two calls, hence a loop) */
    while ((n = kpayment_watch(L, -1, fds, cap, &timeout)) > cap) {
      struct pollfd *more = realloc(fds, (size_t)n * sizeof *more);
      if (more == NULL) {       /* cannot watch them all: poll now, don't sleep */
        n = cap;
        timeout = 0;
        break;
      }
      fds = more;
      cap = n;
    }
    lua_pop(L, 1);
    for (i = 0; i < n; i++)
      if (fds[i].fd > *maxfd)
        *maxfd = fds[i].fd;
    /* -1: nothing under way but requests pending (a retry's timer is in
     * the timeout, so this is only a safety net): look again in a second */
    (void)poll(fds, (nfds_t)n, timeout < 0 ? 1000 : timeout);
  }
  free(fds);
  return status;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  static const char *defaults[] = {"cust-a", "cust-b", "mock:stall:0.5",
                                   "mock:offers:1000", "mock:error500"};
  static double work[MAX_FRAMES];
  const char *script = "examples/host/frames.lua";
  int ndefaults = (int)(sizeof defaults / sizeof defaults[0]), ncustomers, first;
  int curl_by_host = 0, check = 0, sleep_mode = 0, i, frames = 0, over = 0, pending = 1;
  int status = 0, maxfd = -1;
  double slowest_poll = 0, slowest = 0, started, took, cpu0;
  struct timespec next;
  lua_State *L;

  for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
    if (strcmp(argv[i], "--script") == 0 && i + 1 < argc)
      script = argv[++i];
    else if (strcmp(argv[i], "--curl-by-host") == 0)
      curl_by_host = 1;
    else if (strcmp(argv[i], "--check") == 0)
      check = 1;
    else if (strcmp(argv[i], "--sleep") == 0)
      sleep_mode = 1;
    else if (strcmp(argv[i], "--high-fds") == 0)
      printf("host: descriptors open up to %d\n", high_fds());
    else {
      fprintf(stderr, "usage: %s [--script FILE] [--curl-by-host] [--check] [--sleep] "
              "[--high-fds] [CUSTOMER...]\n", argv[0]);
      return 2;
    }
  }
  first = i;
  ncustomers = first < argc ? argc - first : ndefaults;

  /* Before any lua_State loads kpayment.core, in one thread. */
  if (curl_by_host) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !kpayment_curl_by_host()) {
      fprintf(stderr, "kpayment-host: could not take libcurl over\n");
      return 1;
    }
  }

  L = luaL_newstate();
  if (L == NULL)
    return 1;
  luaL_openlibs(L);
  /* Everything kpayment needs comes from the library: empty search paths
   * prove it. */
  lua_getglobal(L, "package");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "path");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  lua_pushcfunction(L, kpayment_preload);
  if (pcall(L, 0, 0) != LUA_OK)
    return 1;

  /* The script gets the customers and returns { frame = f, close = g }. */
  if (luaL_loadfile(L, script) != LUA_OK) {
    fprintf(stderr, "kpayment-host: %s\n", lua_tostring(L, -1));
    return 1;
  }
  /* One argument per customer: the stack only promises LUA_MINSTACK (20)
   * free slots, so make room (and one for pcall's message handler). */
  if (!lua_checkstack(L, ncustomers + 1)) {
    fprintf(stderr, "kpayment-host: too many customers (%d) for the Lua stack\n", ncustomers);
    return 1;
  }
  for (i = 0; i < ncustomers; i++)
    lua_pushstring(L, first < argc ? argv[first + i] : defaults[i]);
  if (pcall(L, ncustomers, 1) != LUA_OK || !lua_istable(L, -1)) {
    fprintf(stderr, "kpayment-host: %s did not return its functions\n", script);
    return 1;
  }
  printf("host: %d customer(s), %d Hz, kpayment %s, libcurl initialised by %s\n",
         ncustomers, HZ, KPAYMENT_VERSION, curl_by_host ? "the host" : "kpayment");
  fflush(stdout);

  started = now_s();
  cpu0 = cpu_s();
  if (sleep_mode) {
    status = sleeping_loop(L, &frames, &slowest_poll, &maxfd);
    took = now_s() - started;
    printf("sleep: %d polls in %.2f s, %.2f %% of a core, sockets up to fd %d\n", frames, took,
           100.0 * (cpu_s() - cpu0) / took, maxfd);
    lua_getfield(L, -1, "close");
    if (pcall(L, 0, 0) != LUA_OK)
      status = 1;
    lua_getfield(L, -1, "pending");
    pending = (int)lua_tointeger(L, -1);
    lua_close(L);
    if (curl_by_host)
      curl_global_cleanup();
    if (check) {
      int ok = status == 0 && pending == 0 && 100.0 * (cpu_s() - cpu0) / took < 2.0;
      printf("check: %s\n", ok ? "ok" : "FAILED (requests unfinished or the wait used CPU)");
      if (!ok)
        status = 1;
    }
    return status;
  }
  clock_gettime(CLOCK_MONOTONIC, &next);
  while (pending > 0 && frames < MAX_FRAMES) {
    double t0 = now_s(), dt;
    lua_getfield(L, -1, "frame");
    lua_pushinteger(L, frames + 1);
    if (pcall(L, 1, 2) != LUA_OK) {
      status = 1;
      break;
    }
    pending = (int)lua_tointeger(L, -2);
    if (lua_tonumber(L, -1) > slowest_poll)
      slowest_poll = lua_tonumber(L, -1);
    lua_pop(L, 2);
    fflush(stdout);
    dt = now_s() - t0;
    work[frames++] = dt;
    if (dt > slowest)
      slowest = dt;
    if (dt * 1e9 > FRAME_NS)
      over++;
    /* The rest of the frame is the host's: here, sleep to the next tick
     * (after a long frame, start again from now rather than catch up). */
    next.tv_nsec += FRAME_NS;
    if (next.tv_nsec >= 1000000000L) {
      next.tv_nsec -= 1000000000L;
      next.tv_sec++;
    }
    {
      struct timespec cur;
      clock_gettime(CLOCK_MONOTONIC, &cur);
      if (cur.tv_sec > next.tv_sec || (cur.tv_sec == next.tv_sec && cur.tv_nsec > next.tv_nsec))
        next = cur;
      else
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
  }
  took = now_s() - started;

  lua_getfield(L, -1, "close");
  if (pcall(L, 0, 0) != LUA_OK)
    status = 1;
  lua_close(L);
  if (curl_by_host)
    curl_global_cleanup();      /* every lua_State using kpayment is closed */

  if (frames > 0) {
    qsort(work, (size_t)frames, sizeof work[0], cmp_double);
    printf("frames: %d frames in %.2f s, %d over the %.1f ms budget\n", frames, took, over,
           FRAME_NS / 1e6);
    printf("frames: slowest frame %.2f ms, median %.3f ms, 99th percentile %.2f ms\n",
           slowest * 1e3, work[frames / 2] * 1e3, work[(frames * 99) / 100] * 1e3);
    printf("frames: slowest poll(0) %.2f ms\n", slowest_poll * 1e3);
  }
  if (pending > 0) {
    printf("host: %d request(s) still pending after %d frames\n", pending, frames);
    status = 1;
  }
  if (check) {
    /* the slow customer answers after 0.5 s: 30 frames at 60 Hz, unless
     * the loop blocked */
    int ok = status == 0 && frames >= HZ / 2 - 5;
    printf("check: %s\n", ok ? "ok" : "FAILED (requests unfinished or too few frames)");
    if (!ok)
      status = 1;
  }
  return status;
}
