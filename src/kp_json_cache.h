/*
 * kp_json_cache.h -- the decoder's speed caches, kept per lua_State: size
 * hints for new tables, a cache of key strings, and key-order shapes.  None
 * of them changes a result, only how fast it is built: a wrong guess costs
 * a rehash or a miss.  static inline, so the parser's hot loops keep them
 * inlined; included through kp_json_int.h.
 */
#ifndef KP_JSON_CACHE_H
#define KP_JSON_CACHE_H

#include <stdint.h>
#include <string.h>
#include "kp_compat.h"

/*
 * Size hints: the element count and member count that a container at the
 * "same position" had last time, so lua_createtable can size it once
 * instead of rehashing at 1, 2, 4, 8, 16 entries.  A position is the key
 * leading to the container, hashed with its depth; elements of one array
 * share a position, so the second offer is sized by the first.  Collisions
 * only cost a wrong guess.
 */
#define KPJ_NHINTS 256
#define KPJ_HINT_MAX 65536

typedef struct kpj_hint {
  unsigned narr;
  unsigned nrec;
} kpj_hint;

/*
 * Keys repeat in every record, so each lua_State keeps a small direct-mapped
 * cache of key strings: a hit is one array read instead of hashing and
 * interning the bytes again.  The strings live in a table in the registry
 * (so the GC keeps them, and never moves them: the C pointers below stay
 * valid while an entry holds them); the hints live beside them, so the
 * first record of the next response is sized right too.
 */
#define KPJ_KEY_CACHE 1024      /* entries, a power of two */
#define KPJ_KEY_MAX 40          /* Lua interns strings up to this length */

typedef struct kpj_key {
  const char *s;                /* the cached string's bytes, or NULL */
  size_t n;
} kpj_key;

/*
 * Shapes: objects at one position usually list the same keys in the same
 * order, so each position remembers which cached key its i-th member had.
 * The next object's i-th key is then checked against the input with one
 * byte comparison, with no scanning or hashing.  Only keys read without
 * escapes enter the cache (kpj_push_key), so equal raw bytes always mean
 * the same string.
 */
#define KPJ_SHAPE_MAX 48

typedef struct kpj_memory {
  kpj_hint hints[KPJ_NHINTS];
  kpj_key keys[KPJ_KEY_CACHE];
  unsigned short shapes[KPJ_NHINTS][KPJ_SHAPE_MAX]; /* cache index + 1, or 0 */
} kpj_memory;

/* Its address is the registry key of this state's cache table (defined in
 * kp_json.c): an address, unlike a name, no other module can share.  Slot 0
 * of that table holds the kpj_memory userdata, 1..KPJ_KEY_CACHE the keys. */
KP_HIDDEN extern const char kpj_memory_key;

/* The hint position of a container reached through key k at depth. */
static inline unsigned kpj_key_slot(const char *k, size_t n, int depth) {
  unsigned h = (unsigned)n * 31u + (unsigned)depth * 0x9E37u;
  if (n > 0)
    h += (unsigned char)k[0] * 7u + (unsigned char)k[n - 1] * 131u +
         (unsigned char)k[n / 2] * 0x2C1Bu;
  h ^= h >> 8;
  return h & (KPJ_NHINTS - 1);
}

/* Elements of an array share one position, distinct from the array's. */
#define KPJ_ELEMENT_SLOT(slot) (((slot) * 5u + 1u) & (KPJ_NHINTS - 1))

static inline unsigned kpj_clamp_hint(lua_Integer n) {
  return n > KPJ_HINT_MAX ? KPJ_HINT_MAX : (unsigned)n;
}

/*
 * The hint after a container of n entries whose hint was old.  Containers
 * at one position differ a little (a member that is null in one record is
 * absent from its table, a list holds one to four items): a hint that
 * followed the last one exactly would size the next, larger one short, and
 * it would be rebuilt once it is full.  So a hint keeps the largest recent
 * size while n stays within about half of it, and follows n otherwise.
 */
static inline unsigned kpj_next_hint(unsigned old, lua_Integer n) {
  unsigned c = kpj_clamp_hint(n);
  return c >= old || old > 2 * c + 4 ? c : old;
}

/* A few bytes stand for the key: collisions only cost a miss. */
static inline unsigned kpj_key_hash(const char *k, size_t n) {
  unsigned h = (unsigned)n * 0x9E3779B1u;
  h ^= (unsigned char)k[0] | (unsigned char)k[n - 1] << 8 |
       (unsigned char)k[n / 2] << 16 | (unsigned)(unsigned char)k[n / 3] << 24;
  h ^= h >> 15;
  h *= 0x2C1B3C6Du;
  h ^= h >> 12;
  return h & (KPJ_KEY_CACHE - 1);
}

/* Byte comparison for short keys, without a library call: words, the
 * last one overlapping the one before, so no byte loop and no read outside
 * [a, a + n) or [b, b + n). */
static inline int kpj_same_bytes(const char *a, const char *b, size_t n) {
  uint64_t x, y;
  uint32_t u, v;
  if (n >= 8) {
    size_t i;
    for (i = 0; i + 8 < n; i += 8) {
      memcpy(&x, a + i, 8);
      memcpy(&y, b + i, 8);
      if (x != y)
        return 0;
    }
    memcpy(&x, a + n - 8, 8);
    memcpy(&y, b + n - 8, 8);
    return x == y;
  }
  if (n >= 4) {
    memcpy(&u, a, 4);
    memcpy(&v, b, 4);
    if (u != v)
      return 0;
    memcpy(&u, a + n - 4, 4);
    memcpy(&v, b + n - 4, 4);
    return u == v;
  }
  while (n > 0) {
    if (*a++ != *b++)
      return 0;
    n--;
  }
  return 1;
}

/* Push key k, from the cache (the table at stack index idx) when it holds
 * these bytes.  raw: k is the key's text in the input, read without
 * escapes.  Only such keys enter the cache, so that an entry's bytes are
 * always the text that means them (kpj_predicted_key compares input with
 * them).  Returns the cache index + 1 now holding k, or 0 when k is not
 * cached. */
static inline unsigned kpj_push_key(lua_State *L, kpj_memory *m, int idx,
                                    const char *k, size_t n, int raw) {
  kpj_key *e;
  unsigned h;
  if (n == 0 || n > KPJ_KEY_MAX || !raw) {
    kp_pushlstring(L, k, n);
    return 0;
  }
  h = kpj_key_hash(k, n);
  e = &m->keys[h];
  if (e->n == n && e->s != NULL && kpj_same_bytes(e->s, k, n)) {
    kp_rawgeti(L, idx, (lua_Integer)h + 1);
    return h + 1;
  }
  kp_pushlstring(L, k, n);
  lua_pushvalue(L, -1);
  lua_rawseti(L, idx, (lua_Integer)h + 1);
  e->s = lua_tostring(L, -1);
  e->n = n;
  return h + 1;
}

/*
 * The member key at p (on its opening quote, end the input's end),
 * predicted by cache entry at - 1: on a hit the cached string is pushed,
 * *k / *n give its bytes and the cursor after the closing quote is
 * returned; NULL on a miss (nothing pushed, nothing consumed).
 */
static inline const char *kpj_predicted_key(lua_State *L, const kpj_memory *m,
                                            int idx, const char *p,
                                            const char *end, unsigned short at,
                                            const char **k, size_t *n) {
  const kpj_key *e = &m->keys[at - 1];
  if (e->s == NULL || (size_t)(end - p) <= e->n + 1 ||
      p[e->n + 1] != '"' || !kpj_same_bytes(p + 1, e->s, e->n))
    return NULL;
  kp_rawgeti(L, idx, (lua_Integer)at);
  *k = e->s;
  *n = e->n;
  return p + e->n + 2;
}

/* Push this state's cache table (made on first use) and return its
 * memory. */
static inline kpj_memory *kpj_open_memory(lua_State *L) {
  kpj_memory *m;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &kpj_memory_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, KPJ_KEY_CACHE, 1);
    m = (kpj_memory *)kp_newuserdata(L, sizeof *m);
    memset(m, 0, sizeof *m);
    lua_rawseti(L, -2, 0);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kpj_memory_key);
  }
  lua_rawgeti(L, -1, 0);
  m = (kpj_memory *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return m;
}

#endif
