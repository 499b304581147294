/*
 * kp_json.h -- JSON text to native Lua values (Lua C API only, no network),
 * so it can be tested, fuzzed and benchmarked on its own.
 *
 * Sources: kp_json.c (the strict parser and these entry points), kp_json_proj.c (projection: the trie and the projecting
 * walk), kp_json_cache.h (per-state speed caches), kp_json_int.h (what the
 * parser and the projection share).
 */
#ifndef KP_JSON_H
#define KP_JSON_H

#include <stddef.h>
#include "kp_compat.h"

#define KP_JSON_MAX_DEPTH 1000

typedef struct kp_json_error {
  size_t pos;           /* 1-based byte position of the offending byte */
  const char *what;     /* static text: what was wrong or expected */
} kp_json_error;

/* A node of the projection trie (see kp_json_paths). */
typedef struct kp_json_path {
  const char *key;      /* one path segment, not NUL-terminated */
  size_t len;
  int child;            /* first child node, or -1 */
  int next;             /* next sibling, or -1 */
  int leaf;             /* a listed path ends here: keep the whole value */
} kp_json_path;

/*
 * Decode text[0..len).  text[len] must be '\0' (true of every Lua string and
 * of a terminated kp_buf): the scanner stops on it instead of bounds-checking
 * every byte.  On success pushes one value and returns 1; on malformed input
 * pushes nothing, fills *err and returns 0.  Raises only for out-of-memory,
 * and then holds nothing that could leak.  paths: NULL to decode everything,
 * or a projection trie from kp_json_paths.
 */
KP_HIDDEN int kp_json_decode(lua_State *L, const char *text, size_t len,
                             const kp_json_path *paths, kp_json_error *err);

/*
 * The projection trie for the list of dotted paths at stack index idx
 * (`{ "id", "customer.lastName" }`), pushed as a userdata; raises on a bad
 * list.  Decoding with it keeps only those members (see kp_json_proj.c).
 * The trie holds its own copy of the paths: the list may change or be
 * collected afterwards.  Each entry of the list is read once.
 */
KP_HIDDEN const kp_json_path *kp_json_paths(lua_State *L, int idx);

/* "what at byte N" into buf; returns buf. */
KP_HIDDEN const char *kp_json_message(const kp_json_error *err, char *buf,
                                      size_t size);

#endif
