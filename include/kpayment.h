/*
 * kpayment.h -- the C API for programs that embed Lua and link kpayment
 * into themselves (libkpayment.a, built by `make static`).
 *
 * A host links
 *
 *     libkpayment.a  liblua5.4 (static or shared)  -lcurl -lm -ldl -lpthread
 *
 * and, in each lua_State, after luaL_openlibs (the package library at
 * least):
 *
 *     kpayment_preload(L);
 *     ... require("kpayment") in Lua, with nothing on package.path ...
 *
 * All of kpayment's Lua modules are compiled into the library; nothing is
 * read from disk.  See docs/hosts.md and examples/host/host.c.
 *
 * Threads: every lua_State is independent.  Any number of threads may each
 * run their own lua_State with kpayment at the same time; one lua_State
 * (and the clients made in it) must be used by one thread at a time, as
 * Lua itself requires.  kpayment keeps no process-wide state but libcurl's
 * global initialisation and its version string, both set once under a
 * mutex.
 *
 * libcurl's global state (curl_global_init / curl_global_cleanup):
 *
 * - By default kpayment owns it: the first luaopen_kpayment_core in the
 *   process (in any thread) calls curl_global_init(CURL_GLOBAL_DEFAULT),
 *   once, under a mutex.  kpayment never calls curl_global_cleanup: it
 *   cannot know when the last client in the process is gone, and libcurl
 *   releases nothing that matters at exit.  A host that uses libcurl
 *   directly as well had better own it (below): curl_global_init and
 *   curl_global_cleanup are not safe to call while other threads use
 *   libcurl.
 *
 * - A host that initialises and cleans up libcurl itself calls
 *   kpayment_curl_by_host() after its own curl_global_init and before the
 *   first luaopen_kpayment_core; kpayment then never calls
 *   curl_global_init.  The host must call curl_global_cleanup only after
 *   every lua_State that loaded kpayment is closed (lua_close releases the
 *   clients and their handles).
 *
 * The shared module (kpayment/core.so, for the stock interpreter) exports
 * luaopen_kpayment_core only; the other functions here exist in the static
 * library alone.
 */
#ifndef KPAYMENT_H
#define KPAYMENT_H

#include <lua.h>
#include <poll.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KPAYMENT_VERSION "0.2.0"

/* The C module kpayment.core, as `require` calls it: pushes the module
 * table.  Raises a Lua error if libcurl's global init fails.  The Lua
 * modules call require("kpayment.core"); kpayment_preload registers it. */
int luaopen_kpayment_core(lua_State *L);

/* Registers kpayment.core and every Lua module of kpayment (kpayment,
 * kpayment.client, ...) in package.preload, so that require("kpayment")
 * works with empty package.path and package.cpath; these win over files of
 * the same names on the paths.  Nothing is loaded until required.  Needs
 * the package library (luaL_openlibs, or luaL_requiref of luaopen_package).
 * A lua_CFunction: returns 0 values; raises a Lua error only when out of
 * memory, so call it with lua_pcall when that must not reach the panic
 * function:  lua_pushcfunction(L, kpayment_preload); lua_pcall(L, 0, 0, 0). */
int kpayment_preload(lua_State *L);

/* An event loop's view of the client at stack index idx (a kpayment.Client
 * table): client:watch() as struct pollfd (fd, and POLLIN and/or POLLOUT in
 * events) into fds, up to max of them; returns how many there are (more
 * than max: call again with room), and sets *timeout_ms to how long the
 * host may sleep before the next client:poll is due: 0 now (work ready),
 * -1 nothing pending (timeout_ms may be NULL; fds may be NULL when max is
 * 0, to ask how many there are).  After client:poll, wait with poll(2) (or epoll,
 * libuv, …) on these until one is ready or the timeout passes, then poll
 * again: a host waiting for a slow API sleeps instead of spinning.  No
 * select(), so descriptors above 1024 work.  Raises as client:watch does
 * (call it under lua_pcall when that matters). */
int kpayment_watch(lua_State *L, int idx, struct pollfd *fds, int max, int *timeout_ms);

/* The host owns libcurl's global state (see above).  Call it after
 * curl_global_init and before any lua_State loads kpayment.core.  Returns
 * 1 when kpayment will not initialise libcurl, 0 when it is too late: a
 * lua_State of this process already loaded kpayment.core, which
 * initialised libcurl (then do not clean libcurl up while kpayment runs).
 * Thread-safe; later calls return the same answer. */
int kpayment_curl_by_host(void);

#ifdef __cplusplus
}
#endif

#endif
