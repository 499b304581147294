/*
 * kp_compat.h -- every Lua version difference kpayment's C code cares about,
 * in one place.  The sources use the Lua 5.3 C API subset; on 5.1/5.2 and
 * LuaJIT the header from Debian's lua-compat53-dev fills the gaps.  It is
 * used header-only (no COMPAT53_PREFIX), so its functions are static in
 * each object and nothing is exported.
 */
#ifndef KP_COMPAT_H
#define KP_COMPAT_H

#include <lua.h>
#include <lauxlib.h>
#include "kp_common.h"

#if LUA_VERSION_NUM < 503
/* Its bundled source casts const away; not our code to warn about. */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcast-qual"
#endif
#include "compat-5.3.h"
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#endif

/* Whether lua_Integer holds every int64 (5.3 and 5.4 as Debian builds
 * them).  Without it (5.1, 5.2, LuaJIT: integers are doubles underneath)
 * the decoder gives integral values above 2^53 in magnitude as strings of
 * their JSON digits rather than rounding them. */
#if LUA_VERSION_NUM >= 503 && defined(LUA_MAXINTEGER) && LUA_MAXINTEGER >= 9223372036854775807LL
#define KP_LUA_INT64 1
#else
#define KP_LUA_INT64 0
#endif

/*
 * compat-5.3 gives 5.1, 5.2 and LuaJIT the 5.3 return values by wrapping
 * calls: lua_pushlstring becomes a push then a lua_tostring, lua_rawgeti a
 * get then a lua_type, two calls into the VM instead of one.  The decoder's
 * loops push every key and string value that way and never use those
 * results, so they call the functions themselves (the parentheses stop the
 * macros from expanding) and discard what they return.
 */
#if LUA_VERSION_NUM < 503
#define kp_pushlstring(L, s, n) ((void)(lua_pushlstring)((L), (s), (n)))
#define kp_rawgeti(L, i, n) ((void)(lua_rawgeti)((L), (i), (int)(n)))
#else
#define kp_pushlstring(L, s, n) ((void)lua_pushlstring((L), (s), (n)))
#define kp_rawgeti(L, i, n) ((void)lua_rawgeti((L), (i), (n)))
#endif

/* 5.4's userdata with no user values: one less allocation per userdata. */
#if LUA_VERSION_NUM >= 504
#define kp_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 0)
#else
#define kp_newuserdata(L, sz) lua_newuserdata((L), (sz))
#endif

/*
 * A userdata with n slots for Lua values (a request's, kp_request.c).  On
 * 5.4 they are its own user values; elsewhere a table of n slots is its one
 * user value (5.1's environments take nothing else), so there each such
 * userdata costs a table more.  kp_newslots pushes the userdata and makes
 * its slots (each nil); kp_pushslots(L, idx) pushes what kp_slot_get and
 * kp_slot_set take as h: the userdata itself on 5.4, its table elsewhere.
 * Storing into a slot allocates nothing either way.
 */
#if LUA_VERSION_NUM >= 504
#define kp_newslots(L, sz, n) lua_newuserdatauv((L), (sz), (n))
#define kp_pushslots(L, idx) lua_pushvalue((L), (idx))
#define kp_slot_get(L, h, i) lua_getiuservalue((L), (h), (i))
#define kp_slot_set(L, h, i) ((void)lua_setiuservalue((L), (h), (i)))
#else
static inline void *kp_newslots(lua_State *L, size_t sz, int n) {
  void *p = lua_newuserdata(L, sz);
  lua_createtable(L, n, 0);
  lua_setuservalue(L, -2);
  return p;
}
#define kp_pushslots(L, idx) lua_getuservalue((L), (idx))
#define kp_slot_get(L, h, i) lua_rawgeti((L), (h), (i))
#define kp_slot_set(L, h, i) lua_rawseti((L), (h), (i))
#endif

#endif
