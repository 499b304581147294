/*
 * kp_embed.c -- the embedding API of include/kpayment.h, for hosts that
 * link libkpayment.a: the Lua modules compiled in and registered in
 * package.preload beside kpayment.core, and the host's claim on libcurl.
 *
 * Part of the static library only: the shared module keeps
 * luaopen_kpayment_core as its one exported symbol.  Built, like every
 * object, with hidden visibility: a program linking the archive reaches
 * these functions, nothing outside that program does.
 *
 * The module texts are arrays generated at build time from lua/kpayment/
 * by src/kp_embed_gen.lua (kp_embed_modules.inc, under build/).
 */
#include <lauxlib.h>
#include "../include/kpayment.h"   /* the public header, beside src/ */
#include "kp_compat.h"
#include "kp_http.h"

typedef struct kp_module {
  const char *name;             /* as require() names it */
  const char *chunkname;        /* "@lua/kpayment/x.lua": tracebacks show the file */
  const unsigned char *text;    /* Lua source */
  size_t len;
} kp_module;

#include "kp_embed_modules.inc"

#define KP_NMODULES (sizeof kp_modules / sizeof kp_modules[0])

/* package.preload loader: compiles the module's text and runs it with the
 * arguments require gave (the name and ":preload:"). */
static int load_module(lua_State *L) {
  const kp_module *m = &kp_modules[lua_tointeger(L, lua_upvalueindex(1))];
  int nargs = lua_gettop(L);
  if (luaL_loadbuffer(L, (const char *)m->text, m->len, m->chunkname) != 0)
    return lua_error(L);
  lua_insert(L, 1);
  lua_call(L, nargs, 1);
  return 1;
}

int kpayment_preload(lua_State *L) {
  size_t i;
#ifdef LUA_PRELOAD_TABLE
  /* the table package.preload is, also before the package library loads */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
#else
  lua_getglobal(L, "package");
  if (!lua_istable(L, -1))
    return luaL_error(L, "kpayment_preload: open the package library first");
  lua_getfield(L, -1, "preload");
  lua_remove(L, -2);
#endif
  lua_pushcfunction(L, luaopen_kpayment_core);
  lua_setfield(L, -2, "kpayment.core");
  for (i = 0; i < KP_NMODULES; i++) {
    lua_pushinteger(L, (lua_Integer)i);
    lua_pushcclosure(L, load_module, 1);
    lua_setfield(L, -2, kp_modules[i].name);
  }
  lua_pop(L, 1);
  return 0;
}

/* kpayment_watch: client:watch(), its fds as struct pollfd. */
int kpayment_watch(lua_State *L, int idx, struct pollfd *fds, int max, int *timeout_ms) {
  int n, i;
  idx = lua_absindex(L, idx);
  /* a host may call this with its own values on the stack */
  luaL_checkstack(L, 6, "kpayment_watch");
  /* what client:watch says of anything but a client, not a Lua error
   * about indexing or calling nil */
  if (!lua_istable(L, idx))
    return luaL_error(L, "kpayment: watch must be called as client:watch()");
  lua_getfield(L, idx, "watch");
  if (!lua_isfunction(L, -1))
    return luaL_error(L, "kpayment: watch must be called as client:watch()");
  lua_pushvalue(L, idx);
  lua_call(L, 1, 2);                            /* fds, timeout */
  if (timeout_ms)
    *timeout_ms = (int)lua_tointeger(L, -1);
  n = (int)lua_rawlen(L, -2);
  for (i = 0; i < n && i < max; i++) {
    int fd, events = 0;
    lua_rawgeti(L, -2, i + 1);
    lua_getfield(L, -1, "fd");
    fd = (int)lua_tointeger(L, -1);
    lua_getfield(L, -2, "read");
    if (lua_toboolean(L, -1))
      events |= POLLIN;
    lua_getfield(L, -3, "write");
    if (lua_toboolean(L, -1))
      events |= POLLOUT;
    lua_pop(L, 4);
    fds[i].fd = fd;
    fds[i].events = (short)events;
    fds[i].revents = 0;
  }
  lua_pop(L, 2);
  return n;
}

int kpayment_curl_by_host(void) {
  return kp_http_curl_by_host();
}
