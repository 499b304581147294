/*
 * embed.c -- the C API's contracts that a host meets before its first
 * request (make host-check): kpayment_watch raises as client:watch does
 * on anything but a client, and on a fresh client gives no socket and
 * nothing to wait for.  Exit status 0 when every check holds.
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "kpayment.h"

#ifndef LUA_OK                  /* Lua 5.1 and LuaJIT */
#define LUA_OK 0
#endif

static const char *const WATCH_MESSAGE = "kpayment: watch must be called as client:watch()";

/* kpayment_watch on the value at index 1; pushes the count and timeout. */
static int watch(lua_State *L) {
  struct pollfd fds[4];
  int timeout = 0;
  int n = kpayment_watch(L, 1, fds, 4, &timeout);
  lua_pushinteger(L, n);
  lua_pushinteger(L, timeout);
  return 2;
}

/* Whether kpayment_watch on the value at the top raises WATCH_MESSAGE. */
static int refuses(lua_State *L, const char *what) {
  const char *got;
  lua_pushcfunction(L, watch);
  lua_insert(L, -2);
  if (lua_pcall(L, 1, 2, 0) == LUA_OK) {
    fprintf(stderr, "embed: kpayment_watch on %s did not raise\n", what);
    lua_pop(L, 2);
    return 0;
  }
  got = lua_tostring(L, -1);
  if (got == NULL || strstr(got, WATCH_MESSAGE) == NULL) {
    fprintf(stderr, "embed: kpayment_watch on %s raised '%s', not '%s'\n", what,
            got ? got : "(not a string)", WATCH_MESSAGE);
    lua_pop(L, 1);
    return 0;
  }
  lua_pop(L, 1);
  return 1;
}

int main(void) {
  lua_State *L = luaL_newstate();
  int ok = 1;
  if (L == NULL)
    return 1;
  luaL_openlibs(L);
  kpayment_preload(L);
  lua_pushinteger(L, 7);
  ok &= refuses(L, "a number");
  lua_newtable(L);
  ok &= refuses(L, "a table that is no client");
  if (luaL_dostring(L, "return require('kpayment').new({ base_url = 'http://127.0.0.1:9' })") != LUA_OK) {
    fprintf(stderr, "embed: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  lua_pushcfunction(L, watch);
  lua_insert(L, -2);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
    fprintf(stderr, "embed: kpayment_watch on a client raised '%s'\n", lua_tostring(L, -1));
    ok = 0;
  } else if (lua_tointeger(L, -2) != 0 || lua_tointeger(L, -1) != -1) {
    fprintf(stderr, "embed: a fresh client watches %d sockets for %d ms, not 0 for -1\n",
            (int)lua_tointeger(L, -2), (int)lua_tointeger(L, -1));
    ok = 0;
  }
  lua_close(L);
  if (ok)
    printf("embed: kpayment_watch refuses what is no client and waits on nothing for a fresh one\n");
  return ok ? 0 : 1;
}
