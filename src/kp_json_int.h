/*
 * kp_json_int.h -- what the strict parser (kp_json.c), the envelope walk
 * (kp_json_records.c) and the projection (kp_json_proj.c) share: the
 * decoder's state, the small grammar steps they walk with, and the
 * response-shape checks (kp_json_opts.records).
 * Internal: nothing here is part of kp_json.h's interface.
 */
#ifndef KP_JSON_INT_H
#define KP_JSON_INT_H

#include <string.h>
#include "kp_json.h"
#include "kp_json_cache.h"

/* For the few bodies written once and specialized by a constant flag, so a
 * flag that is 0 costs nothing at all. */
#if defined(__GNUC__)
#define KPJ_FLATTEN inline __attribute__((always_inline))
#else
#define KPJ_FLATTEN inline
#endif

/* For slow paths kept out of a hot caller, whose frame would otherwise
 * save and restore every register they use on each call. */
#if defined(__GNUC__)
#define KPJ_COLD __attribute__((noinline, cold))
#else
#define KPJ_COLD
#endif

typedef struct kpj_decoder {
  lua_State *L;
  const char *start;
  const char *end;              /* *end == '\0' */
  int depth;
  int scratch_idx;              /* stack slot holding the unescape buffer */
  char *scratch;
  size_t scratch_cap;
  const kp_json_path *paths;    /* projection trie, or NULL */
  const char *records;          /* the records member's name, or NULL */
  size_t records_len;
  int meta;                     /* kp_json_opts.meta */
  kp_json_error *err;
  int cache_idx;                /* stack slot of the key-string table */
  kpj_memory *mem;              /* hints and key cache of this lua_State */
} kpj_decoder;

/* Give the table at -1, an empty JSON object, the metatable that tells it
 * from an empty array (core.empty_object); allocates nothing. */
KP_HIDDEN void kpj_mark_empty_object(lua_State *L);
/* The same for the object at -1 when it holds nothing (its members were
 * nulls, or none was selected). */
KP_HIDDEN void kpj_mark_if_empty(lua_State *L);

/* Push member key k, as kpj_member_key read it, and return its cache index
 * + 1, or 0 when it is not cached: a key with escapes was decoded into the
 * scratch, and its bytes are not its text, so it is never cached. */
static inline unsigned kpj_push_member_key(kpj_decoder *d, const char *k, size_t n) {
  return kpj_push_key(d->L, d->mem, d->cache_idx, k, n, k != d->scratch);
}

/* kp_json.c: the grammar.  Each takes the cursor and returns the cursor
 * after what it read, or NULL once the first error is recorded. */
KP_HIDDEN const char *kpj_fail(kpj_decoder *d, const char *at, const char *what);
KP_HIDDEN const char *kpj_enter(kpj_decoder *d, const char *at);
KP_HIDDEN const char *kpj_read_string(kpj_decoder *d, const char *p,
                                      const char **out_s, size_t *out_n);
KP_HIDDEN const char *kpj_parse_value(kpj_decoder *d, const char *p, unsigned slot);
KP_HIDDEN const char *kpj_skip_value(kpj_decoder *d, const char *p);
/* A member's key and value, p on the value: set in the table at -1. */
KP_HIDDEN const char *kpj_parse_member(kpj_decoder *d, const char *p,
                                       const char *k, size_t kn);

/* kp_json_proj.c.  kpj_proj_root: a top-level object or array under
 * d->paths (p on its opening bracket).  kpj_proj_member: one member of an
 * object projected with node, p on its value: set in the table at -1, or
 * skipped.  kpj_proj_records_node: the node each record under top-level
 * member k is projected with, -1 when a path keeps k whole.
 * kpj_proj_record: one record, p on its '{'. */
KP_HIDDEN const char *kpj_proj_root(kpj_decoder *d, const char *p);
KP_HIDDEN const char *kpj_proj_member(kpj_decoder *d, const char *p, int node,
                                      int envelope, const char *k, size_t kn);
KP_HIDDEN int kpj_proj_records_node(const kpj_decoder *d, const char *k, size_t kn);
KP_HIDDEN const char *kpj_proj_record(kpj_decoder *d, const char *p, int node);

/* kp_json_records.c: the response's envelope, walked in steps. */
typedef struct kpj_walk {
  kp_json_slicer *s;            /* where the walk is */
  int state;                    /* absolute index of the partial values' table, or 0 */
  double deadline;              /* monotonic ms to stop at, or < 0 */
  int progress;                 /* this step has read a member or record */
} kpj_walk;

/* What a walk step returns when its time ran out. */
KP_HIDDEN extern const char kpj_suspended;
#define KPJ_SUSPENDED (&kpj_suspended)

/* One step, the partial values in the table at absolute index state (0:
 * none, and then no deadline either): the cursor after the top-level
 * object with its table pushed, NULL on an error, or KPJ_SUSPENDED. */
KP_HIDDEN const char *kpj_walk_step(kpj_decoder *d, kpj_walk *w, int state);
KP_HIDDEN double kpj_deadline(double budget_ms);

static inline const char *kpj_skip_ws(const char *p) {
  while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
    p++;
  return p;
}

/* End of input and a stray byte deserve different words. */
static inline const char *kpj_fail_at(kpj_decoder *d, const char *p,
                                      const char *expected) {
  return kpj_fail(d, p, p == d->end ? "unexpected end of input" : expected);
}

/*
 * After an element or member: past a ',' and the whitespace after it
 * (*more = 1), or past the closing bracket (*more = 0); NULL on anything
 * else.
 */
static inline const char *kpj_separator(kpj_decoder *d, const char *p,
                                        char close, int *more) {
  p = kpj_skip_ws(p);
  if (*p == ',') {
    *more = 1;
    return kpj_skip_ws(p + 1);
  }
  if (*p == close) {
    *more = 0;
    return p + 1;
  }
  return kpj_fail_at(d, p, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
}

/* At a member's opening quote: its key (see kpj_read_string) and the
 * cursor at its value, past the ':' and whitespace. */
static inline const char *kpj_member_key(kpj_decoder *d, const char *p,
                                         const char **k, size_t *n) {
  if (*p != '"')
    return kpj_fail_at(d, p, "expected string key");
  if ((p = kpj_read_string(d, p + 1, k, n)) == NULL)
    return NULL;
  p = kpj_skip_ws(p);
  if (*p != ':')
    return kpj_fail_at(d, p, "expected ':'");
  return kpj_skip_ws(p + 1);
}

/* Opening a container: its first element, or past an immediate close
 * (*more = 0). */
static inline const char *kpj_open_items(const char *p, char close, int *more) {
  p = kpj_skip_ws(p);
  *more = *p != close;
  return *more ? p : p + 1;
}

/*
 * Response shape.  A value's first byte says its kind ('{' object, '['
 * array, 'n' null, ...), so a value of the wrong kind is rejected there,
 * before anything inside it is read: the first error in text order wins,
 * and at one byte the kind goes first.  A byte that starts no value is left
 * to the grammar.
 */
static inline int kpj_starts_value(const char *p) {
  switch (*p) {
  case '{': case '[': case '"': case '-': case '0': case '1': case '2':
  case '3': case '4': case '5': case '6': case '7': case '8': case '9':
  case 't': case 'f': case 'n':
    return 1;
  default:
    return 0;
  }
}

/* Whether member key k is the records member. */
static inline int kpj_is_records(const kpj_decoder *d, const char *k, size_t n) {
  return n == d->records_len && memcmp(k, d->records, n) == 0;
}

/* A shape error about the records member (kp_json_message names it). */
static inline const char *kpj_fail_shape(kpj_decoder *d, const char *at,
                                         const char *what) {
  if (d->err->what == NULL)
    d->err->member = d->records;
  return kpj_fail(d, at, what);
}

/* At the records member's value: p, unless it is a value other than an
 * array or null. */
static inline const char *kpj_check_records(kpj_decoder *d, const char *p) {
  if (*p == '[' || *p == 'n' || !kpj_starts_value(p))
    return p;
  return kpj_fail_shape(d, p, "is not an array");
}

/* At an element of the records array: p, unless it is a value other than
 * an object. */
static inline const char *kpj_check_record(kpj_decoder *d, const char *p) {
  if (*p == '{' || !kpj_starts_value(p))
    return p;
  return kpj_fail_shape(d, p, "element is not an object");
}

#endif
