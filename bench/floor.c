/*
 * bench/floor.c -- the "floor" of the decode benchmark: building the same
 * Lua tables with nothing left to parse.  Not part of kpayment itself.
 *
 *   local floor = require("kpayment_floor")
 *   local rebuild = floor.tape(kpayment.core.decode(text))
 *   local copy = rebuild()      -- a fresh copy, built from the tape
 *
 * tape() walks a decoded value once into a flat list of operations: every
 * table with its exact array and hash sizes, numbers already converted,
 * keys resolved to existing Lua strings (as the decoder's key cache does),
 * values as pointers to their bytes.  rebuild() then does only what any
 * decoder must: create each table at its final size, create each value
 * string, push each number, and raw-set each field.  What is left between
 * it and a decoder is the parsing.
 */
#include <string.h>
/* The decoder's own view of the Lua API (5.1 and LuaJIT through
 * lua-compat53-dev, and the direct push and get it builds with). */
#include "kp_compat.h"

enum { OP_TABLE, OP_KEY, OP_STR, OP_INT, OP_NUM, OP_BOOL, OP_NULL, OP_SET, OP_SETI };

typedef struct op {
  int code;
  int a, b;                     /* table sizes, key ref, array index */
  const char *s;                /* value string bytes */
  size_t len;
  lua_Integer i;
  lua_Number n;
} op;

typedef struct tape {
  size_t n, cap;
  int depth, maxdepth;
  op ops[1];
} tape;

/* Walk the value at the top of the stack; with t == NULL only count. */
static size_t emit(lua_State *L, tape *t, size_t at, int keys, int *nkeys, int depth) {
  op o;
  memset(&o, 0, sizeof o);
  luaL_checkstack(L, 4, "floor: too deep");
  if (t && depth > t->maxdepth) t->maxdepth = depth;
  switch (lua_type(L, -1)) {
  case LUA_TTABLE: {
    lua_Integer narr = (lua_Integer)lua_rawlen(L, -1), i;
    int nrec = 0;
    size_t head = at++;
    for (i = 1; i <= narr; i++) {
      lua_rawgeti(L, -1, i);
      at = emit(L, t, at, keys, nkeys, depth + 1);
      lua_pop(L, 1);
      if (t) { t->ops[at].code = OP_SETI; t->ops[at].a = (int)i; }
      at++;
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) == LUA_TNUMBER && lua_isinteger(L, -2) &&
          lua_tointeger(L, -2) >= 1 && lua_tointeger(L, -2) <= narr) {
        lua_pop(L, 1);
        continue;
      }
      nrec++;
      if (t) {
        /* resolve the key to one anchored string, by value */
        int ref;
        lua_pushvalue(L, -2);
        if (lua_rawget(L, keys) == LUA_TNUMBER) {
          ref = (int)lua_tointeger(L, -1);
        } else {
          ref = ++*nkeys;
          lua_pushvalue(L, -3);
          lua_rawseti(L, keys + 1, ref);
          lua_pushvalue(L, -3);
          lua_pushinteger(L, ref);
          lua_rawset(L, keys);
        }
        lua_pop(L, 1);
        t->ops[at].code = OP_KEY;
        t->ops[at].a = ref;
      }
      at++;
      at = emit(L, t, at, keys, nkeys, depth + 1);
      if (t) t->ops[at].code = OP_SET;
      at++;
      lua_pop(L, 1);
    }
    o.code = OP_TABLE;
    o.a = (int)narr;
    o.b = nrec;
    if (t) t->ops[head] = o;
    return at;
  }
  case LUA_TSTRING:
    o.code = OP_STR;
    o.s = lua_tolstring(L, -1, &o.len);
    break;
  case LUA_TNUMBER:
    if (lua_isinteger(L, -1)) { o.code = OP_INT; o.i = lua_tointeger(L, -1); }
    else { o.code = OP_NUM; o.n = lua_tonumber(L, -1); }
    break;
  case LUA_TBOOLEAN:
    o.code = OP_BOOL;
    o.a = lua_toboolean(L, -1);
    break;
  default:
    o.code = OP_NULL;
    break;
  }
  if (t) t->ops[at] = o;
  return at + 1;
}

static int rebuild(lua_State *L) {
  const tape *t = (const tape *)lua_touserdata(L, lua_upvalueindex(1));
  size_t k;
  luaL_checkstack(L, 2 * t->maxdepth + 8, "floor");
  for (k = 0; k < t->n; k++) {
    const op *o = &t->ops[k];
    switch (o->code) {
    case OP_TABLE: lua_createtable(L, o->a, o->b); break;
    /* the functions themselves, not compat-5.3's wrappers (which add a
     * lua_type or lua_tostring call), as the decoder calls them */
    case OP_KEY: kp_rawgeti(L, lua_upvalueindex(3), o->a); break;
    case OP_STR: kp_pushlstring(L, o->s, o->len); break;
    case OP_INT: lua_pushinteger(L, o->i); break;
    case OP_NUM: lua_pushnumber(L, o->n); break;
    case OP_BOOL: lua_pushboolean(L, o->a); break;
    case OP_NULL: lua_pushlightuserdata(L, NULL); break;
    case OP_SET: lua_rawset(L, -3); break;
    case OP_SETI: lua_rawseti(L, -2, o->a); break;
    }
  }
  return 1;
}

/* floor.tape(value) -> rebuild */
static int floor_tape(lua_State *L) {
  int nkeys = 0;
  size_t n;
  tape *t;
  lua_settop(L, 1);
  lua_newtable(L);              /* 2: key string -> ref (while taping) */
  lua_newtable(L);              /* 3: ref -> key string (for rebuild) */
  lua_pushvalue(L, 1);
  n = emit(L, NULL, 0, 2, &nkeys, 0);
  lua_pop(L, 1);
  t = (tape *)lua_newuserdata(L, sizeof *t + n * sizeof(op));   /* 4 */
  t->n = n;
  t->cap = n;
  t->depth = t->maxdepth = 0;
  lua_pushvalue(L, 1);
  emit(L, t, 0, 2, &nkeys, 0);
  lua_pop(L, 1);
  lua_pushvalue(L, 4);          /* upvalue 1: the tape */
  lua_pushvalue(L, 1);          /* upvalue 2: the value, keeping the bytes alive */
  lua_pushvalue(L, 3);          /* upvalue 3: the key strings */
  lua_pushcclosure(L, rebuild, 3);
  return 1;
}

int luaopen_kpayment_floor(lua_State *L);

int luaopen_kpayment_floor(lua_State *L) {
  lua_newtable(L);
  lua_pushcfunction(L, floor_tape);
  lua_setfield(L, -2, "tape");
  return 1;
}
