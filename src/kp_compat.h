/*
 * kp_compat.h -- every Lua version difference kpayment's C code cares about,
 * in one place.  The sources use the Lua 5.3 C API subset; on 5.1/5.2 and
 * LuaJIT the header from Debian's lua-compat53-dev fills the gaps.
 */
#ifndef KP_COMPAT_H
#define KP_COMPAT_H

#include <lua.h>
#include <lauxlib.h>
#include "kp_common.h"

#if LUA_VERSION_NUM < 503
#include "compat-5.3.h"
#endif


/* 5.4's userdata with no user values: one less allocation per userdata.
 * kp_newuserdata1 makes one with a single user value, which is always a
 * table (5.1's environments accept nothing else). */
#if LUA_VERSION_NUM >= 504
#define kp_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 0)
#define kp_newuserdata1(L, sz) lua_newuserdatauv((L), (sz), 1)
#define kp_setuservalue(L, idx) lua_setiuservalue((L), (idx), 1)
#define kp_getuservalue(L, idx) lua_getiuservalue((L), (idx), 1)
#else
#define kp_newuserdata(L, sz) lua_newuserdata((L), (sz))
#define kp_newuserdata1(L, sz) lua_newuserdata((L), (sz))
#define kp_setuservalue(L, idx) lua_setuservalue((L), (idx))
#define kp_getuservalue(L, idx) lua_getuservalue((L), (idx))
#endif

#endif
