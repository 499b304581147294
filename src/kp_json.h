/*
 * kp_json.h -- JSON text to native Lua values (Lua C API only, no network),
 * so it can be tested, fuzzed and benchmarked on its own.
 *
 * Sources: kp_json.c (the strict parser and these entry points),
 * kp_json_records.c (a response's envelope walked in steps, with the
 * response-shape checks), kp_json_proj.c (projection: the trie and the
 * projecting walk), kp_json_cache.h (per-state speed caches), kp_json_int.h
 * (what those share).
 */
#ifndef KP_JSON_H
#define KP_JSON_H

#include <stddef.h>
#include "kp_compat.h"

#define KP_JSON_MAX_DEPTH 1000

typedef struct kp_json_error {
  size_t pos;           /* 1-based byte position of the offending byte */
  const char *what;     /* static text: what was wrong or expected */
  const char *member;   /* a shape error's member (opts->records), else NULL */
} kp_json_error;

/* A node of the projection trie (see kp_json_paths). */
typedef struct kp_json_path {
  const char *key;      /* one path segment, not NUL-terminated */
  size_t len;
  int child;            /* first child node, or -1 */
  int next;             /* next sibling, or -1 */
  int leaf;             /* a listed path ends here: keep the whole value */
} kp_json_path;

typedef struct kp_json_opts {
  const kp_json_path *paths;    /* projection trie, or NULL */
  const char *records;          /* NUL-terminated member name, or NULL */
  int meta;                     /* stack index of each record's metatable, or 0 */
} kp_json_opts;

/*
 * Decode text[0..len).  text[len] must be '\0' (true of every Lua string and
 * of a terminated kp_buf): the scanner stops on it instead of bounds-checking
 * every byte.  On success pushes one value and returns 1; on malformed input
 * pushes nothing, fills *err and returns 0.  Raises only for out-of-memory,
 * and then holds nothing that could leak.
 *
 * opts (NULL for the defaults):
 *   paths    NULL to decode everything, or a projection trie from
 *            kp_json_paths.
 *   records  the response's shape, checked while decoding: the top-level
 *            value must be an object, its member of this name, when present
 *            and not null, an array, and every element of that array an
 *            object.  A violation is a decode error at the first byte of the
 *            offending value, with err->member set to records (so it must
 *            outlive *err).  A value's first byte gives its kind, so the
 *            check needs nothing after it; the first error in the text wins
 *            (a syntax error before that byte, not one inside the value).
 *            Same with and without paths; each occurrence of a duplicated
 *            member is checked.
 *   meta     with records: a stack index (absolute) of a table given as
 *            metatable to each record as it is built, in the decode's own
 *            steps, or 0.
 */
KP_HIDDEN int kp_json_decode_opts(lua_State *L, const char *text, size_t len,
                                  const kp_json_opts *opts, kp_json_error *err);

/*
 * A response decoded in steps.  With opts->records set and a top-level
 * object, kp_json_decode_step stops between two records (or two top-level
 * members) once budget_ms milliseconds have passed, after at least one of
 * them, and the next step resumes there; what is built meanwhile waits in
 * the table at stack index state (from kp_json_push_slices), which the
 * caller keeps alive and passes to every step.  Each step must be given the
 * same text, len and opts; text must not change or move in between.  The
 * result and its errors are those of kp_json_decode_opts, which is the same
 * walk in one step.  Other inputs are decoded in one step.
 *
 * Returns 1 with the value pushed, 0 with s->err filled, or KP_JSON_MORE
 * with nothing pushed.  budget_ms < 0: no limit (state may then be 0).
 * After 1 or 0, s is ready for a new decode.  Raises only for out-of-memory
 * (then start again with kp_json_slicer_init).
 */
typedef struct kp_json_slicer {
  int stage;            /* where the walk resumes (kp_json_records.c) */
  size_t pos;           /* byte offset it resumes at */
  lua_Integer n;        /* records built */
  lua_Integer direct;   /* of those, in the array itself: after the first
                         * suspension records go to chunks (kp_json_records.c) */
  int chunks;
  unsigned members;     /* top-level members read */
  unsigned slot;        /* size-hint position of the records array */
  int node;             /* projection node of each record, -1: whole */
  kp_json_error err;
} kp_json_slicer;

#define KP_JSON_MORE (-1)

/* Make core.empty_object, the metatable of the tables that empty JSON
 * objects decode to, and keep it where the decoder finds it; pushes it. */
KP_HIDDEN void kp_json_push_empty_object(lua_State *L);

KP_HIDDEN void kp_json_slicer_init(kp_json_slicer *s);
/* Whether a decode in steps is under way in s. */
KP_HIDDEN int kp_json_slicer_busy(const kp_json_slicer *s);
KP_HIDDEN void kp_json_push_slices(lua_State *L);
KP_HIDDEN int kp_json_decode_step(lua_State *L, kp_json_slicer *s, int state,
                                  const char *text, size_t len,
                                  const kp_json_opts *opts, double budget_ms);

/*
 * The projection trie for the list of dotted paths at stack index idx
 * (`{ "id", "customer.lastName" }`), pushed as a userdata; raises on a bad
 * list.  Decoding with it keeps only those members (see kp_json_proj.c).
 * The trie holds its own copy of the paths: the list may change or be
 * collected afterwards.  Each entry of the list is read once.
 */
KP_HIDDEN const kp_json_path *kp_json_paths(lua_State *L, int idx);

/* "what at byte N" (or "'member' what at byte N") into buf; returns buf. */
KP_HIDDEN const char *kp_json_message(const kp_json_error *err, char *buf,
                                      size_t size);

#endif
