/*
 * oom_host.c -- out-of-memory sweep of kpayment.
 *
 * A Lua 5.4 host with kpayment's C core compiled in.  For each scenario of
 * test/oom_scenarios.lua it first runs the scenario once with an allocator
 * that never fails, counting the allocations the scenario makes (N_total),
 * then once for every N in 1..N_total, each time in a fresh lua_State whose
 * allocator fails the N-th allocation.  Every run must end in success
 * (with the value the scenario must give -- its check in the scenarios
 * file -- and the same result as the run without failures) or in a Lua
 * error about memory; anything else -- another error, a different result,
 * a crash, a leaked file descriptor -- is a failure.  lua_close ends every
 * run, so the finalizers of whatever the failed run left behind run too.
 * The "recover:" scenarios catch a memory error and repeat the call that
 * raised it, on the same objects: the repeat must give the normal result.
 *
 * Built with -fsanitize=address,undefined, AddressSanitizer catches use
 * after free and LeakSanitizer reports at exit what a failed run leaked
 * (--leak-check-each checks after every run, to name the run).  Built
 * plainly, the same binary runs under valgrind.
 *
 * "Allocation" means a growing request to the lua_State's allocator.  Lua
 * answers a failed request with an emergency collection and one more try
 * of the same request; that retry fails too, so the failure reaches the
 * code that asked.  Later requests succeed again.  libcurl allocates with
 * malloc, outside this sweep.
 *
 * The "load" scenario sweeps the state's setup as well: luaL_openlibs,
 * luaL_requiref of kpayment.core (luaopen_kpayment_core) and
 * require("kpayment"), which loads the modules' bytecode (compiled once
 * per process, see load_cached).
 *
 * Usage: oom_host [options]
 *   --root DIR        repository root (default .): lua/ and test/ are there
 *   --url URL         base URL of a running mock (default $KPAYMENT_OOM_URL;
 *                     without it the network scenarios are skipped)
 *   --fixture FILE    a JSON document to decode (repeatable; default
 *                     spec/fixtures/json/[*].json under the root)
 *   --only TEXT       only scenarios whose name contains TEXT (repeatable)
 *   --from N, --to N  sweep only that part of 1..N_total
 *   --max-runs K      at most K values of N per scenario, evenly spaced
 *                     over the range, first and last included
 *   --leak-check-each run LeakSanitizer after every run (ASan builds) and
 *                     stop at the first run that leaked
 *   --backtrace       print the C stack of each refused allocation (glibc;
 *                     static functions show as offsets: addr2line -f -e BIN)
 *   --verbose         one line per run
 * Exit status: 0 when every run passed, 1 otherwise, 2 on bad usage.
 *
 * The summary gives per scenario: allocations counted (N_total), the N
 * range swept, runs, successes (of which "absorb": the refused allocation
 * did not end the run -- Lua tolerates a failed growth of its string
 * table, a recover: scenario repeated the call), memory errors, failures.
 */
#include <dirent.h>
#include <glob.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OOM_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(OOM_ASAN)
#define OOM_ASAN 1
#endif
#if defined(__GLIBC__)
#include <execinfo.h>
#define OOM_BACKTRACE 1
#endif
#ifdef OOM_ASAN
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#endif

int luaopen_kpayment_core(lua_State *L);

/* ------------------------------------------------------------ allocator */

static int opt_backtrace = 0;    /* print the C stack of the refused request */

typedef struct alloc_state {
  int counting;          /* count (and maybe fail) growing requests */
  unsigned long count;   /* growing requests counted so far */
  unsigned long fail_at; /* 0: never fail */
  int injected;          /* the fail_at-th request was refused */
  int retry_pending;     /* the next identical request is Lua's retry */
  void *retry_ptr;
  size_t retry_osize, retry_nsize;
  long long bytes;       /* live bytes of this state */
} alloc_state;

static void *oom_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  alloc_state *a = (alloc_state *)ud;
  size_t old = ptr ? osize : 0;   /* for a new block osize is a type tag */
  void *p;
  if (nsize == 0) {
    free(ptr);
    a->bytes -= (long long)old;
    return NULL;
  }
  if (nsize > old && a->counting) {
    if (a->retry_pending) {
      a->retry_pending = 0;
      if (ptr == a->retry_ptr && osize == a->retry_osize && nsize == a->retry_nsize)
        return NULL;          /* Lua's retry after its emergency collection */
    }
    if (++a->count == a->fail_at) {
#ifdef OOM_BACKTRACE
      if (opt_backtrace) {
        void *frames[64];
        int n = backtrace(frames, 64);
        fprintf(stderr, "oom: allocation %lu (%lu bytes) refused at:\n", a->count,
                (unsigned long)nsize);
        backtrace_symbols_fd(frames, n, 2);
      }
#endif
      a->injected = 1;
      a->retry_pending = 1;
      a->retry_ptr = ptr;
      a->retry_osize = osize;
      a->retry_nsize = nsize;
      return NULL;
    }
  }
  p = realloc(ptr, nsize);
  if (p != NULL)
    a->bytes += (long long)nsize - (long long)old;
  return p;
}

/* ----------------------------------------------------- crash reporting */

/* What is running, for a crash report: a copy, kept until exit. */
static char cur_scenario[256] = "";
static unsigned long cur_n = 0;

static void set_current(const char *name, unsigned long n) {
  snprintf(cur_scenario, sizeof cur_scenario, "%s", name);
  cur_n = n;
}

static void write_str(const char *s) {
  ssize_t r = write(2, s, strlen(s));
  (void)r;
}

static void say_where(void) {
  char num[32];
  int i = 0;
  unsigned long n = cur_n;
  char rev[32];
  do {
    rev[i++] = (char)('0' + n % 10);
    n /= 10;
  } while (n > 0);
  {
    int j;
    for (j = 0; j < i; j++)
      num[j] = rev[i - 1 - j];
    num[i] = '\0';
  }
  if (cur_scenario[0] == '\0') {
    write_str("\noom: sanitizer report after the sweep (a leak is reported at exit);"
              " --leak-check-each names the run that leaked\n");
    return;
  }
  write_str("\noom: CRASH in scenario ");
  write_str(cur_scenario);
  write_str(" at N=");
  write_str(num);
  write_str(" (reproduce with --only ");
  write_str(cur_scenario);
  write_str(" --from ");
  write_str(num);
  write_str(" --to ");
  write_str(num);
  write_str(")\n");
}

static void on_signal(int sig) {
  say_where();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void install_crash_reporting(void) {
#ifdef OOM_ASAN
  __sanitizer_set_death_callback(say_where);
#endif
  signal(SIGSEGV, on_signal);
  signal(SIGBUS, on_signal);
  signal(SIGFPE, on_signal);
  signal(SIGILL, on_signal);
  signal(SIGABRT, on_signal);
}

/* ------------------------------------------------------------- options */

#define MAX_LIST 64

static const char *opt_root = ".";
static const char *opt_url = NULL;
static const char *fixtures[MAX_LIST];
static int nfixtures = 0;
static const char *only[MAX_LIST];
static int nonly = 0;
static unsigned long opt_from = 1, opt_to = 0;
static unsigned long opt_max_runs = 0;
static int opt_leak_each = 0;
static int opt_verbose = 0;
static char scenario_file[4096];
static long run_serial = 0;      /* env.run: unique per run of this process */

static int selected(const char *name) {
  int i;
  if (nonly == 0)
    return 1;
  for (i = 0; i < nonly; i++)
    if (strstr(name, only[i]) != NULL)
      return 1;
  return 0;
}

/* -------------------------------------------------------- a Lua state */

/* Warnings: in 5.4 an error inside a finalizer becomes a warning. */
typedef struct run_info {
  alloc_state a;
  char warning[512];
  size_t wlen;
  int warnings;
  int bad_warnings;
} run_info;

static void on_warning(void *ud, const char *msg, int tocont) {
  run_info *r = (run_info *)ud;
  size_t n = strlen(msg);
  if (r->wlen + n >= sizeof r->warning)
    n = sizeof r->warning - 1 - r->wlen;
  memcpy(r->warning + r->wlen, msg, n);
  r->wlen += n;
  r->warning[r->wlen] = '\0';
  if (tocont)
    return;
  if (r->warning[0] != '@') {   /* "@on"/"@off" are control messages */
    r->warnings++;
    if (strstr(r->warning, "memory") == NULL) {
      r->bad_warnings++;
      fprintf(stderr, "oom: %s N=%lu: warning: %s\n", cur_scenario, cur_n, r->warning);
    }
  }
  r->wlen = 0;
  r->warning[0] = '\0';
}

static int on_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "oom: PANIC in scenario %s at N=%lu: %s\n", cur_scenario, cur_n,
          msg ? msg : "(no message)");
  abort();
  return 0;
}

/* Message handler: memory errors as they are, others with a traceback. */
static int msgh(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL || strstr(msg, "memory") != NULL)
    return 1;
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/*
 * Compiled chunks, kept for the whole process.  Every run loads the same
 * modules and the scenarios file; compiling them is Lua's parser at work,
 * not kpayment, and costs more than most scenarios.  So each file is
 * compiled once, with counting suspended, and every later load (counted
 * where the run counts) loads the bytecode: the sweep covers loading and
 * running kpayment's modules, not compiling them.  The bytecode is stripped
 * of debug information (line numbers, local names): loading it then takes
 * about half the allocations, which are Lua's loader's, and the setup is
 * most of a run's time.  kpayment reads no debug information, and a run is
 * compared only with a run of the same bytecode.
 */
typedef struct chunk {
  char *path;
  char *code;
  size_t len, cap;
} chunk;

#define MAX_CHUNKS 64
static chunk chunks[MAX_CHUNKS];
static int nchunks = 0;

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud) {
  chunk *c = (chunk *)ud;
  (void)L;
  if (c->len + sz > c->cap) {
    size_t cap = (c->len + sz) * 2;
    char *code = (char *)realloc(c->code, cap);
    if (code == NULL)
      return 1;
    c->code = code;
    c->cap = cap;
  }
  memcpy(c->code + c->len, p, sz);
  c->len += sz;
  return 0;
}

/* Like luaL_loadfile, from the compiled copy of `path` (made here once). */
static int load_cached(lua_State *L, const char *path) {
  int i, status;
  void *ud;
  alloc_state *a;
  int counting;
  for (i = 0; i < nchunks; i++)
    if (strcmp(chunks[i].path, path) == 0)
      return luaL_loadbufferx(L, chunks[i].code, chunks[i].len, path, "b");
  if (nchunks == MAX_CHUNKS)
    return luaL_loadfile(L, path);
  lua_getallocf(L, &ud);
  a = (alloc_state *)ud;
  counting = a->counting;
  a->counting = 0;
  status = luaL_loadfile(L, path);
  if (status == LUA_OK) {
    chunk *c = &chunks[nchunks];
    memset(c, 0, sizeof *c);
    c->path = strdup(path);
    if (c->path == NULL || lua_dump(L, dump_writer, c, 1) != 0) {
      free(c->path);
      free(c->code);
    } else {
      nchunks++;
    }
  }
  a->counting = counting;
  return status;
}

/* A package.searchers entry in place of Lua's own: package.path's files,
 * loaded through load_cached. */
static int search_cached(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *path;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchpath");
  lua_pushstring(L, name);
  lua_getfield(L, -3, "path");
  lua_call(L, 2, 2);
  if (lua_isnil(L, -2))
    return 1;                  /* the message of package.searchpath */
  lua_pop(L, 1);
  path = lua_tostring(L, -1);
  if (load_cached(L, path) != LUA_OK)
    return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, path,
                      lua_tostring(L, -1));
  lua_pushstring(L, path);
  return 2;
}

/*
 * Protected setup, in the new state: the standard libraries, kpayment.core
 * registered as compiled in, package.path on the checkout's lua/ (and no C
 * modules from anywhere else), require("kpayment").  With a scenario name
 * as argument 1 it then loads the scenarios file and returns that module
 * and the scenario's function ("(list)": the list of scenario names).
 */
static int setup(lua_State *L) {
  const char *name = lua_tostring(L, 1);
  luaL_openlibs(L);
  luaL_requiref(L, "kpayment.core", luaopen_kpayment_core, 0);
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua", opt_root, opt_root);
  lua_setfield(L, -2, "path");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  lua_getfield(L, -1, "searchers");
  lua_pushcfunction(L, search_cached);
  lua_rawseti(L, -2, 2);       /* Lua's own file searcher */
  lua_pop(L, 2);
  /* The sweep is about memory, not time: a retry's backoff draws its wait
   * from math.random (full jitter), which kpayment.retry keeps when it
   * loads.  At 0, the flaky scenarios retry at once instead of sleeping up
   * to 0.25 s in each of their hundreds of runs. */
  (void)luaL_dostring(L, "math.random = function() return 0 end");
  lua_getglobal(L, "require");
  lua_pushliteral(L, "kpayment");
  lua_call(L, 1, 1);
  if (name == NULL)            /* the "load" scenario: that was all */
    return 1;
  lua_pop(L, 1);
  if (load_cached(L, scenario_file) != LUA_OK)
    return lua_error(L);
  lua_call(L, 0, 1);           /* the scenarios module */
  /* env = { url = ..., fixtures = { ... }, run = ... } */
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)getpid() * 100000000 + ++run_serial);
  lua_setfield(L, -2, "run");
  if (opt_url) {
    lua_pushstring(L, opt_url);
    lua_setfield(L, -2, "url");
  }
  {
    int i;
    lua_createtable(L, nfixtures, 0);
    for (i = 0; i < nfixtures; i++) {
      lua_pushstring(L, fixtures[i]);
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "fixtures");
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "oom.env");
  if (strcmp(name, "(list)") == 0) {
    lua_getfield(L, -2, "list");
    lua_insert(L, -2);
    lua_call(L, 1, 1);
    return 1;
  }
  lua_getfield(L, -2, "prepare");
  lua_pushstring(L, name);
  lua_pushvalue(L, -3);
  lua_call(L, 2, 1);
  lua_remove(L, -2);           /* env */
  return 2;                    /* scenarios module, run function */
}

static lua_State *new_state(run_info *r) {
  lua_State *L;
  memset(r, 0, sizeof *r);
  L = lua_newstate(oom_alloc, &r->a);
  if (L == NULL) {
    fprintf(stderr, "oom: lua_newstate failed\n");
    exit(2);
  }
  lua_atpanic(L, on_panic);
  lua_setwarnf(L, on_warning, r);
  return L;
}

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  if (d == NULL)
    return -1;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1;                 /* opendir's own descriptor */
}

/* ---------------------------------------------------------------- runs */

enum { RUN_OK, RUN_MEMERR, RUN_FAIL };

typedef struct outcome {
  int kind;
  int injected;
  unsigned long count;
  char message[1024];
  char *summary;                /* malloc'd, on success */
} outcome;

static void set_message(outcome *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(o->message, sizeof o->message, fmt, ap);
  va_end(ap);
}

static int is_memory_message(const char *msg) {
  return msg != NULL && strstr(msg, "memory") != NULL;
}

/*
 * One run of scenario `name` with the fail_at-th allocation failing (0:
 * none).  For "load" the whole setup is swept; otherwise the setup is not
 * counted and only the scenario's function is.
 */
static void run_once(const char *name, unsigned long fail_at, outcome *o) {
  run_info r;
  lua_State *L = new_state(&r);
  int is_load = strcmp(name, "load") == 0;
  int status;
  memset(o, 0, sizeof *o);
  r.a.fail_at = fail_at;

  lua_pushcfunction(L, setup);
  if (is_load)
    lua_pushnil(L);
  else
    lua_pushstring(L, name);
  if (is_load) {
    r.a.counting = 1;
    status = lua_pcall(L, 1, 1, 0);
    r.a.counting = 0;
  } else {
    status = lua_pcall(L, 1, 2, 0);
    if (status != LUA_OK) {
      set_message(o, "setup failed: %s", lua_tostring(L, -1));
      o->kind = RUN_FAIL;
      lua_close(L);
      return;
    }
    /* stack: scenarios, run */
    lua_gc(L, LUA_GCCOLLECT);   /* the same start for every run */
    lua_pushcfunction(L, msgh);
    lua_insert(L, -2);
    r.a.counting = 1;
    status = lua_pcall(L, 0, 1, -2);
    r.a.counting = 0;
    lua_remove(L, -2);          /* msgh */
  }
  o->injected = r.a.injected;
  o->count = r.a.count;

  if (status == LUA_OK) {
    /* stack: [scenarios,] value */
    if (is_load) {
      lua_getfield(L, -1, "_VERSION");
      o->summary = strdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
      o->kind = RUN_OK;
    } else {
      /* stack: scenarios, value; check(name, value), then summarize */
      int bad;
      lua_getfield(L, -2, "check");
      lua_pushstring(L, name);
      lua_pushvalue(L, -3);
      bad = lua_pcall(L, 2, 1, 0) != LUA_OK || !lua_isnil(L, -1);
      if (bad) {
        set_message(o, "%s", lua_tostring(L, -1));
        o->kind = RUN_FAIL;
      } else {
        lua_pop(L, 1);
        lua_getfield(L, -2, "summarize");
        lua_insert(L, -2);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
          set_message(o, "summarize failed: %s", lua_tostring(L, -1));
          o->kind = RUN_FAIL;
        } else {
          o->summary = strdup(lua_tostring(L, -1));
          o->kind = RUN_OK;
        }
      }
    }
  } else {
    const char *msg = lua_tostring(L, -1);
    if (status == LUA_ERRMEM || (status == LUA_ERRRUN && is_memory_message(msg))) {
      o->kind = RUN_MEMERR;
      set_message(o, "%s", msg ? msg : "(memory error without a message)");
    } else {
      o->kind = RUN_FAIL;
      set_message(o, "status %d: %s", status,
                  msg ? msg : lua_typename(L, lua_type(L, -1)));
    }
  }
  lua_close(L);

  if (r.a.bytes != 0 && o->kind != RUN_FAIL) {
    set_message(o, "%lld bytes of the state still allocated after lua_close", r.a.bytes);
    o->kind = RUN_FAIL;
  }
  if (r.bad_warnings > 0 && o->kind != RUN_FAIL) {
    set_message(o, "a warning that is not about memory (see above)");
    o->kind = RUN_FAIL;
  }
  if (o->kind == RUN_MEMERR && !o->injected) {
    set_message(o, "a memory error although no allocation was refused: %s", o->message);
    o->kind = RUN_FAIL;
  }
}

/* ------------------------------------------------------------ scenarios */

/* The values of N that failed, as "50-427, 431" (within its size). */
typedef struct ranges {
  char text[200];
  unsigned long first, last;    /* the open range; first == 0: none */
} ranges;

static void flush_range(ranges *r) {
  size_t len = strlen(r->text);
  if (r->first == 0)
    return;
  if (len + 48 > sizeof r->text) {   /* full: mark it once */
    if (len < 5 || strcmp(r->text + len - 5, ", ...") != 0)
      snprintf(r->text + len, sizeof r->text - len, ", ...");
    r->first = r->last = 0;
    return;
  }
  if (r->first == r->last)
    snprintf(r->text + len, sizeof r->text - len, "%s%lu", len ? ", " : "", r->first);
  else
    snprintf(r->text + len, sizeof r->text - len, "%s%lu-%lu", len ? ", " : "", r->first,
             r->last);
  r->first = r->last = 0;
}

static void add_to_ranges(ranges *r, unsigned long n) {
  if (r->first != 0 && n == r->last + 1) {
    r->last = n;
    return;
  }
  flush_range(r);
  r->first = r->last = n;
}

typedef struct result {
  const char *name;
  unsigned long total, from, to, runs;
  unsigned long ok, ok_absorbed, memerr, failed, not_reached;
} result;

static int sweep(const char *name, result *res) {
  outcome o;
  char *reference;
  unsigned long n, from, to, step = 1, shown = 0;
  ranges fails = {"", 0, 0};
  int fds0, fds;
  memset(res, 0, sizeof *res);
  res->name = name;
  set_current(name, 0);

  run_once(name, 0, &o);
  if (o.kind != RUN_OK) {
    fprintf(stderr, "oom: %s: the run without failures failed: %s\n", name, o.message);
    res->failed = 1;
    return 1;
  }
  reference = o.summary;
  res->total = o.count;
  /* a second clean run: the count must not depend on the previous run.
   * The sweep takes the larger count: the first run compiled (uncounted)
   * the modules a scenario requires lazily, later runs load their bytecode
   * (counted; see load_cached). */
  run_once(name, 0, &o);
  if (o.kind != RUN_OK || strcmp(o.summary, reference) != 0)
    fprintf(stderr, "oom: %s: two runs without failures differ\n", name);
  else if (o.count != res->total) {
    fprintf(stderr, "oom: %s: note: allocation count varies (%lu, then %lu)\n", name,
            res->total, o.count);
    if (o.count > res->total)
      res->total = o.count;
  }
  free(o.summary);
  fds0 = count_fds();
#ifdef OOM_ASAN
  if (opt_leak_each && __lsan_do_recoverable_leak_check()) {
    fprintf(stderr, "oom: FAIL %s: the runs without failures leaked (above)\n", name);
    res->failed = 1;
    free(reference);
    return 1;
  }
#endif

  from = opt_from;
  to = opt_to && opt_to < res->total ? opt_to : res->total;
  if (from < 1)
    from = 1;
  res->from = from;
  res->to = to;
  if (opt_max_runs > 1 && to >= from && to - from + 1 > opt_max_runs)
    step = (to - from + opt_max_runs - 2) / (opt_max_runs - 1);

  for (n = from; n <= to; n = n + step < to ? n + step : to) {
    set_current(name, n);
    run_once(name, n, &o);
    res->runs++;
    if (o.kind == RUN_OK && strcmp(o.summary, reference) != 0) {
      o.kind = RUN_FAIL;
      set_message(&o, "succeeded with a different result");
    }
    fds = count_fds();
    if (fds > fds0 && o.kind != RUN_FAIL) {
      o.kind = RUN_FAIL;
      set_message(&o, "%d file descriptors open after the run, %d before", fds, fds0);
    }
#ifdef OOM_ASAN
    /* later checks would report the same leak again: stop at the first */
    if (opt_leak_each && __lsan_do_recoverable_leak_check()) {
      fprintf(stderr, "oom: FAIL %s N=%lu: LeakSanitizer reported a leak (above); stopping\n",
              name, n);
      res->failed++;
      free(o.summary);
      free(reference);
      return 1;
    }
#endif
    switch (o.kind) {
    case RUN_OK:
      res->ok++;
      if (!o.injected)
        res->not_reached++;
      else
        res->ok_absorbed++;
      break;
    case RUN_MEMERR:
      res->memerr++;
      break;
    default:
      res->failed++;
      /* the first report in full (a traceback, say), then first lines */
      add_to_ranges(&fails, n);
      if (shown < 5) {
        const char *nl = strchr(o.message, '\n');
        int len = shown > 0 && nl ? (int)(nl - o.message) : (int)strlen(o.message);
        fprintf(stderr, "oom: FAIL %s N=%lu: %.*s\n", name, n, len, o.message);
      }
      shown++;
      break;
    }
    if (opt_verbose)
      fprintf(stderr, "oom: %s N=%lu: %s%s%s\n", name, n,
              o.kind == RUN_OK ? "ok" : o.kind == RUN_MEMERR ? "memory error" : "FAIL",
              o.kind == RUN_OK ? "" : ": ", o.kind == RUN_OK ? "" : o.message);
    free(o.summary);
    if (n == to)
      break;
  }
  free(reference);
  if (res->failed) {
    flush_range(&fails);
    fprintf(stderr, "oom: %s: %lu runs failed, N = %s\n", name, res->failed, fails.text);
  }
  return res->failed != 0;
}

/* The scenario names from the scenarios file, "load" first. */
static int list_scenarios(char ***out) {
  run_info r;
  lua_State *L = new_state(&r);
  char **names;
  int n, i;
  lua_pushcfunction(L, setup);
  lua_pushliteral(L, "(list)");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "oom: cannot list the scenarios: %s\n", lua_tostring(L, -1));
    exit(2);
  }
  n = (int)lua_rawlen(L, -1);
  names = (char **)calloc((size_t)n + 2, sizeof *names);
  names[0] = strdup("load");
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    names[i] = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  lua_close(L);
  *out = names;
  return n + 1;
}

static void usage(void) {
  fprintf(stderr,
          "usage: oom_host [--root DIR] [--url URL] [--fixture FILE]... [--only TEXT]...\n"
          "                [--from N] [--to N] [--max-runs K] [--leak-check-each] [--backtrace]\n"
          "                [--verbose]\n");
  exit(2);
}

static unsigned long parse_count(const char *s) {
  char *end;
  unsigned long v = strtoul(s, &end, 10);
  if (*s == '\0' || *end != '\0')
    usage();
  return v;
}

int main(int argc, char **argv) {
  char **names;
  result *results;
  int i, nnames, failed = 0;
  glob_t g;
  int globbed = 0;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--leak-check-each") == 0) {
      opt_leak_each = 1;
      continue;
    }
    if (strcmp(a, "--verbose") == 0) {
      opt_verbose = 1;
      continue;
    }
    if (strcmp(a, "--backtrace") == 0) {
      opt_backtrace = 1;
      continue;
    }
    if (v == NULL)
      usage();
    i++;
    if (strcmp(a, "--root") == 0)
      opt_root = v;
    else if (strcmp(a, "--url") == 0)
      opt_url = v;
    else if (strcmp(a, "--fixture") == 0 && nfixtures < MAX_LIST)
      fixtures[nfixtures++] = v;
    else if (strcmp(a, "--only") == 0 && nonly < MAX_LIST)
      only[nonly++] = v;
    else if (strcmp(a, "--from") == 0)
      opt_from = parse_count(v);
    else if (strcmp(a, "--to") == 0)
      opt_to = parse_count(v);
    else if (strcmp(a, "--max-runs") == 0)
      opt_max_runs = parse_count(v);
    else
      usage();
  }
  if (opt_url == NULL && getenv("KPAYMENT_OOM_URL") && *getenv("KPAYMENT_OOM_URL"))
    opt_url = getenv("KPAYMENT_OOM_URL");
  if (nfixtures == 0) {
    char pattern[4096];
    size_t k;
    snprintf(pattern, sizeof pattern, "%s/spec/fixtures/json/*.json", opt_root);
    if (glob(pattern, 0, NULL, &g) == 0) {
      globbed = 1;
      for (k = 0; k < g.gl_pathc && nfixtures < MAX_LIST; k++)
        fixtures[nfixtures++] = g.gl_pathv[k];
    }
  }
  snprintf(scenario_file, sizeof scenario_file, "%s/test/oom_scenarios.lua", opt_root);
  install_crash_reporting();

  set_current("(listing the scenarios)", 0);
  nnames = list_scenarios(&names);
  set_current("", 0);
  results = (result *)calloc((size_t)nnames, sizeof *results);
  printf("oom: %d fixture(s), mock %s\n", nfixtures, opt_url ? opt_url : "(none: no network scenarios)");
  fflush(stdout);
  for (i = 0; i < nnames; i++) {
    if (!selected(names[i])) {
      results[i].name = NULL;
      continue;
    }
    failed |= sweep(names[i], &results[i]);
    set_current("", 0);
    printf("oom: %-40s N 1..%-6lu swept %lu..%lu (%lu runs): %lu ok, %lu memory errors, %lu failed\n",
           names[i], results[i].total, results[i].from, results[i].to, results[i].runs,
           results[i].ok, results[i].memerr, results[i].failed);
    fflush(stdout);
  }

  printf("\n%-40s %8s %15s %7s %7s %9s %7s %7s\n", "scenario", "allocs", "N swept", "runs",
         "ok", "(absorb)", "memerr", "failed");
  for (i = 0; i < nnames; i++) {
    char range[64];
    result *r = &results[i];
    if (r->name == NULL)
      continue;
    snprintf(range, sizeof range, "%lu..%lu", r->from, r->to);
    printf("%-40s %8lu %15s %7lu %7lu %9lu %7lu %7lu\n", r->name, r->total, range, r->runs,
           r->ok, r->ok_absorbed, r->memerr, r->failed);
  }
  printf("oom: %s\n", failed ? "FAILED" : "every run ended in success or a memory error");
#ifdef OOM_ASAN
  printf("oom: LeakSanitizer checks the whole sweep at exit (exit status 23 on a leak)\n");
#endif
  fflush(stdout);

  for (i = 0; i < nnames; i++)
    free(names[i]);
  free(names);
  free(results);
  if (globbed)
    globfree(&g);
  return failed ? 1 : 0;
}
