/*
 * fuzz_decode.c -- libFuzzer target for the JSON decoder (kp_json.c).
 *
 * Every input is decoded six ways or more:
 *   - kp_json_decode_opts() called directly, whole and with a projection trie,
 *     and kp_json_decode_opts() with records = "financeOffers", whole and
 *     with the trie, then both of those again in steps of one record
 *     (kp_json_decode_step, budget 0, a full GC between two steps), to hold
 *     them to the stack contract in kp_json.h (one
 *     value pushed on success, nothing on failure, a sane error position,
 *     err->member set only by a shape error), which core.decode would hide
 *     behind lua_pcall;
 *   - core.decode(text) and core.decode(text, { fields = ... }), the public
 *     entry point, loaded the way a script gets it (luaL_requiref of
 *     luaopen_kpayment_core), and with { records = ... } when core.decode
 *     takes that option.
 * The C side checks that the direct and the public full decodes agree;
 * fuzz/checker.lua checks the rest: error messages, numbers against
 * tonumber, a round trip through lua-cjson, that a projection agrees with
 * the full decode on validity and keeps only values the full decode has,
 * and that the records check rejects only what breaks the shape, in text
 * order with syntax errors.
 *
 * One lua_State serves every input: building a state with the standard
 * libraries, the module and cjson costs more than decoding a typical input.
 * Between inputs the stack is reset and a full GC runs, so garbage from one
 * input is not freed during the next (libFuzzer's leak heuristic would
 * otherwise re-run inputs looking for leaks that are not there).
 *
 * Any disagreement calls abort(): libFuzzer reports it as a crash and saves
 * the input.  Malformed JSON is not a finding; it must only fail cleanly.
 *
 * cjson.so is loaded by dlopen at run time, so the binary is linked with
 * -Wl,-E to export the statically linked Lua API to it.
 */
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "kp_json.h"

int luaopen_kpayment_core(lua_State *L);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Where Debian's lua-cjson lives; searched first, before the default cpath,
 * so a stray cjson elsewhere cannot shadow it. */
#define CJSON_CPATH "/usr/lib/x86_64-linux-gnu/lua/5.4/?.so;"

/*
 * The Lua half of the oracle, fuzz/checker.lua, one string literal per line
 * as fuzz.mk generates it (build/fuzz/checker.inc): one file to read and
 * lint, nothing to find at run time, and no literal longer than C99
 * promises to support.
 */
static const char *const CHECKER[] = {
#include "checker.inc"
  NULL
};

/* lua_Reader handing lua_load the lines of CHECKER in turn. */
static const char *read_checker(lua_State *S, void *state, size_t *size) {
  const char *const *line = *(const char *const **)state;
  (void)S;
  if (*line == NULL)
    return NULL;
  *(const char *const **)state = line + 1;
  *size = strlen(*line);
  return *line;
}

static lua_State *L;
static int decode_ref = LUA_NOREF;      /* core.decode */
static int check_ref = LUA_NOREF;       /* the function CHECKER returns */
static int trie_ref = LUA_NOREF;        /* PROJECTION's trie, a userdata */

/* The member the records checks name, as kpayment passes it. */
#define RECORDS "financeOffers"

static void die(const char *what, const char *detail) {
  fprintf(stderr, "fuzz_decode: %s%s%s\n", what, detail ? ": " : "",
          detail ? detail : "");
  abort();
}

/* Decode in steps of one record, collecting all garbage between two, as
 * a host's frames would with other Lua code running in between. */
static int decode_in_steps(lua_State *S, const char *text, size_t len,
                           const kp_json_opts *opts, kp_json_error *err) {
  kp_json_slicer s;
  int rc, state;
  kp_json_slicer_init(&s);
  kp_json_push_slices(S);
  state = lua_gettop(S);
  while ((rc = kp_json_decode_step(S, &s, state, text, len, opts, 0)) == KP_JSON_MORE) {
    if (lua_gettop(S) != state)
      die("kp_json_decode_step left values on the stack between steps", NULL);
    lua_gc(S, LUA_GCCOLLECT, 0);
  }
  *err = s.err;
  lua_remove(S, state);
  return rc;
}

/*
 * direct_decode(text, trie|nil, records, steps) -> true, value | false, message
 * Runs kp_json_decode_opts itself (not through core.decode), whole or
 * with records in steps, and checks the promises in kp_json.h that a Lua
 * caller cannot see.  A C function so that
 * it runs under lua_pcall: the decoder may raise (out of memory only), and
 * an unprotected raise would end in Lua's panic handler instead of a report.
 */
static int direct_decode(lua_State *S) {
  size_t len;
  const char *text = lua_tolstring(S, 1, &len);
  const kp_json_path *paths = (const kp_json_path *)lua_touserdata(S, 2);
  const char *records = lua_toboolean(S, 3) ? RECORDS : NULL;
  int steps = lua_toboolean(S, 4);
  const char *how = paths ? (records ? (steps ? "projected, records, steps" : "projected, records")
                                     : "projected")
                          : (records ? (steps ? "full, records, steps" : "full, records") : "full");
  kp_json_error err;
  char msg[200];
  int top = lua_gettop(S);
  int ok;
  lua_settop(S, 4);
  top = 4;
  err.what = "sentinel: the decoder did not reset err";
  err.member = "sentinel";
  err.pos = (size_t)-1;
  {
    kp_json_opts opts;
    opts.paths = paths;
    opts.records = records;
    opts.meta = 0;
    ok = records != NULL && steps ? decode_in_steps(S, text, len, &opts, &err)
                                  : kp_json_decode_opts(S, text, len, &opts, &err);
  }
  if (lua_gettop(S) != top + (ok ? 1 : 0)) {
    snprintf(msg, sizeof msg, "%s: stack height %d after decode returned %d, expected %d",
             how, lua_gettop(S), ok, top + (ok ? 1 : 0));
    die("kp_json_decode_opts broke its stack contract", msg);
  }
  if (ok) {
    lua_pushboolean(S, 1);
    lua_insert(S, -2);
    return 2;
  }
  if (err.what == NULL || err.pos < 1 || err.pos > len + 1 ||
      (err.member != NULL && err.member != records)) {
    snprintf(msg, sizeof msg, "%s: what=%s member=%s pos=%lu len=%lu",
             how, err.what ? err.what : "(null)",
             err.member ? err.member : "(null)",
             (unsigned long)err.pos, (unsigned long)len);
    die("kp_json_decode_opts failed without a sane error", msg);
  }
  lua_pushboolean(S, 0);
  lua_pushstring(S, kp_json_message(&err, msg, sizeof msg));
  return 2;
}

/* make_trie(list) -> trie: kp_json_paths raises on a bad list, so it runs
 * protected too.  The trie holds its own copy of the paths. */
static int make_trie(lua_State *S) {
  kp_json_paths(S, 1);
  return 1;
}

static void setup(void) {
  /* The decoder's slow number path goes through the C library, which reads
   * the decimal point from LC_NUMERIC; a host application may well have set
   * one that is not '.'.  FUZZ_LC_NUMERIC=de_DE.UTF-8 (for instance) runs
   * every input under such a locale. */
  const char *numeric = getenv("FUZZ_LC_NUMERIC");
  if (numeric != NULL && *numeric != '\0' && setlocale(LC_NUMERIC, numeric) == NULL)
    die("cannot set LC_NUMERIC (FUZZ_LC_NUMERIC)", numeric);

  L = luaL_newstate();
  if (L == NULL)
    die("cannot create a Lua state", NULL);
  luaL_openlibs(L);

  luaL_requiref(L, "kpayment.core", luaopen_kpayment_core, 0);
  lua_getfield(L, -1, "decode");
  decode_ref = luaL_ref(L, LUA_REGISTRYINDEX);

  /* cjson is a real C module: this is where a missing -Wl,-E shows up (as
   * "undefined symbol: lua_..." from dlopen), so say so plainly. */
  if (luaL_dostring(L, "package.cpath = '" CJSON_CPATH "' .. package.cpath\n"
                       "return (require('cjson'))") != LUA_OK)
    die("cannot load lua-cjson (is the binary linked with -Wl,-E?)",
        lua_tostring(L, -1));

  /* require returns a second value (the loader data): one result only, so
   * the stack is exactly core, cjson. */
  if (lua_gettop(L) != 2)
    die("unexpected values on the stack after loading the modules", NULL);
  {
    const char *const *line = CHECKER;
    if (lua_load(L, read_checker, &line, "=fuzz/checker.lua", "t") != LUA_OK)
      die("checker does not compile", lua_tostring(L, -1));
  }
  lua_insert(L, -3);                    /* checker, core, cjson */
  if (lua_pcall(L, 2, 4, 0) != LUA_OK)
    die("checker setup failed", lua_tostring(L, -1));
  /* Said once, so a log shows whether projection was covered at all. */
  fprintf(stderr, "fuzz_decode: core.decode projection checks %s\n",
          lua_toboolean(L, -2) ? "on" : "off (core.decode has no fields option)");
  fprintf(stderr, "fuzz_decode: core.decode records checks %s\n",
          lua_toboolean(L, -1) ? "on" : "off (core.decode has no records option)");
  lua_pop(L, 2);
  /* The checker returns check() and the list of projected paths (so C and
   * Lua project on the very same list), then whether core.decode takes
   * fields and records, said above. */
  lua_pushcfunction(L, make_trie);
  lua_insert(L, -2);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK)
    die("cannot build the projection trie", lua_tostring(L, -1));
  trie_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, 0);
}

/* Pushes ok, value|message from direct_decode on text (at index t). */
static void run_direct(int t, int with_trie, int records, int steps) {
  lua_pushcfunction(L, direct_decode);
  lua_pushvalue(L, t);
  if (with_trie)
    lua_rawgeti(L, LUA_REGISTRYINDEX, trie_ref);
  else
    lua_pushnil(L);
  lua_pushboolean(L, records);
  lua_pushboolean(L, steps);
  if (lua_pcall(L, 4, 2, 0) != LUA_OK)
    die("kp_json_decode_opts raised", lua_tostring(L, -1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int base, t, direct_ok, api_ok;

  if (L == NULL)
    setup();
  base = lua_gettop(L);

  /* A Lua string: the decoder relies on the '\0' after the last byte. */
  lua_pushlstring(L, (const char *)data, size);
  t = base + 1;

  run_direct(t, 0, 0, 0);                           /* t+1, t+2 */
  direct_ok = lua_toboolean(L, t + 1);

  lua_rawgeti(L, LUA_REGISTRYINDEX, decode_ref);
  lua_pushvalue(L, t);
  api_ok = lua_pcall(L, 1, 1, 0) == LUA_OK;         /* t+3 */

  /* The two paths read the same bytes with the same code: they must agree,
   * down to the error message (core.decode only adds a prefix). */
  if (api_ok != direct_ok)
    die("core.decode and kp_json_decode_opts disagree on success",
        api_ok ? lua_tostring(L, t + 2) : lua_tostring(L, t + 3));
  if (!api_ok) {
    const char *api = lua_tostring(L, t + 3);
    const char *direct = lua_tostring(L, t + 2);
    static const char prefix[] = "kpayment.decode: ";
    if (api == NULL || direct == NULL ||
        strncmp(api, prefix, sizeof prefix - 1) != 0 ||
        strcmp(api + sizeof prefix - 1, direct) != 0)
      die("core.decode's error differs from kp_json_decode_opts's",
          api ? api : "(not a string)");
  }

  run_direct(t, 1, 0, 0);                           /* t+4, t+5 */
  run_direct(t, 0, 1, 0);                           /* t+6, t+7 */
  run_direct(t, 1, 1, 0);                           /* t+8, t+9 */
  run_direct(t, 0, 1, 1);                           /* t+10, t+11 */
  run_direct(t, 1, 1, 1);                           /* t+12, t+13 */

  lua_rawgeti(L, LUA_REGISTRYINDEX, check_ref);
  lua_pushvalue(L, t);
  lua_pushboolean(L, api_ok);
  lua_pushvalue(L, t + 3);
  lua_pushvalue(L, t + 4);
  lua_pushvalue(L, t + 5);
  lua_pushvalue(L, t + 6);
  lua_pushvalue(L, t + 7);
  lua_pushvalue(L, t + 8);
  lua_pushvalue(L, t + 9);
  lua_pushvalue(L, t + 10);
  lua_pushvalue(L, t + 11);
  lua_pushvalue(L, t + 12);
  lua_pushvalue(L, t + 13);
  if (lua_pcall(L, 13, 1, 0) != LUA_OK)
    die("checker raised", lua_tostring(L, -1));
  if (!lua_isnil(L, -1))
    die("check failed", lua_tostring(L, -1));

  /* Everything pushed above, and nothing else: a leftover or a missing slot
   * means some call broke its stack discipline. */
  if (lua_gettop(L) != t + 14) {
    char msg[64];
    snprintf(msg, sizeof msg, "height %d, expected %d", lua_gettop(L), t + 14);
    die("Lua stack out of balance", msg);
  }
  lua_settop(L, base);
  lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}
