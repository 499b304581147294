/*
 * kp_json.c -- a strict RFC 8259 decoder that builds Lua values directly.
 *
 * Objects become tables with string keys, arrays sequences, integral numbers
 * that fit in 64 bits Lua integers (exactly), other numbers floats.  null is
 * dropped from objects (the key is absent) and kept in arrays as a light
 * userdata NULL (core.null), so arrays stay dense.  Strings must be valid
 * UTF-8; escapes, surrogate pairs included, are decoded to UTF-8.
 *
 * Every parse function takes the cursor and returns the cursor after what it
 * read, or NULL after recording the first error.  On error the top level
 * drops whatever was half built with one lua_settop, so no level needs to
 * clean up after itself.
 */
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kp_json.h"

/*
 * Size hints: the element count and member count that a container at the
 * "same position" had last time, so lua_createtable can size it once
 * instead of rehashing at 1, 2, 4, 8, 16 entries.  A position is the key
 * leading to the container, hashed with its depth; elements of one array
 * share a position, so the second offer is sized by the first.  Collisions
 * only cost a wrong guess.
 */
#define NHINTS 256
#define HINT_MAX 65536

typedef struct hint {
  unsigned narr;
  unsigned nrec;
} hint;

/*
 * Keys repeat in every record, so each lua_State keeps a small direct-mapped
 * cache of key strings: a hit is one array read instead of hashing and
 * interning the bytes again.  The strings live in a table in the registry
 * (so the GC keeps them, and never moves them: the C pointers below stay
 * valid while an entry holds them); the hints live beside them, so the
 * first record of the next response is sized right too.
 */
#define KEY_CACHE 1024          /* entries, a power of two */
#define KEY_MAX 40              /* Lua interns strings up to this length */

typedef struct key_entry {
  const char *s;                /* the cached string's bytes, or NULL */
  size_t n;
} key_entry;

/*
 * Shapes: objects at one position usually list the same keys in the same
 * order, so each position remembers which cached key its i-th member had.
 * The next object's i-th key is then checked against the input with one
 * byte comparison, with no scanning or hashing.  Only keys read without
 * escapes enter a shape, so equal raw bytes always mean the same string.
 */
#define SHAPE_MAX 48

typedef struct memory {
  hint hints[NHINTS];
  key_entry keys[KEY_CACHE];
  unsigned short shapes[NHINTS][SHAPE_MAX];   /* cache index + 1, or 0 */
} memory;

/* Its address is the registry key. */
static const char memory_key = 'k';

typedef struct decoder {
  lua_State *L;
  const char *start;
  const char *end;        /* *end == '\0' */
  int depth;
  int scratch_idx;        /* stack slot holding the unescape buffer */
  char *scratch;
  size_t scratch_cap;
  const kp_json_path *paths;    /* projection trie, or NULL */
  kp_json_error *err;
  int cache_idx;                /* stack slot of the key-string table */
  memory *mem;                  /* hints and key cache of this lua_State */
} decoder;

/* Bytes that a string may hold as they are: printable ASCII except the quote
 * and the backslash.  Control bytes, '"', '\\' and non-ASCII leave the fast
 * loop (non-ASCII to be validated as UTF-8). */
static const unsigned char plain[256] = {
  0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
  1,1,0,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
  1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,0,1,1,1,
  1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
};

#define IS_DIGIT(c) ((unsigned)((unsigned char)(c) - '0') < 10u)

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/*
 * Skip the bytes a string may hold as they are, stopping at the first quote,
 * backslash, control or non-ASCII byte.  With SSE2 (every x86-64) sixteen
 * bytes are tested at once, but only while sixteen remain before the end:
 * nothing is read past the input.  The byte loop finishes on the sentinel.
 */
static const char *skip_plain(const char *p, const char *end) {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i space = _mm_set1_epi8(' ');
  while (end - p >= 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    /* signed compare: bytes >= 0x80 are negative, so below ' ' too */
    __m128i stop = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
        _mm_cmplt_epi8(v, space));
    int mask = _mm_movemask_epi8(stop);
    if (mask != 0)
      return p + __builtin_ctz((unsigned)mask);
    p += 16;
  }
#else
  (void)end;
#endif
  while (plain[(unsigned char)*p])
    p++;
  return p;
}

static const char *fail(decoder *d, const char *at, const char *what) {
  if (d->err->what == NULL) {
    d->err->pos = (size_t)(at - d->start) + 1;
    d->err->what = what;
  }
  return NULL;
}

static const char *skip_ws(const char *p) {
  while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
    p++;
  return p;
}

/* End of input and a stray byte deserve different words. */
static const char *fail_at(decoder *d, const char *p, const char *expected) {
  return fail(d, p, p == d->end ? "unexpected end of input" : expected);
}

/*
 * One well-formed UTF-8 sequence starting at a byte >= 0x80 (RFC 3629: no
 * overlongs, no surrogates, nothing above U+10FFFF).  Returns the byte after
 * it or NULL.  The '\0' sentinel is never a continuation byte, so this never
 * reads past the end.
 */
static const char *utf8_next(const char *p) {
  const unsigned char *s = (const unsigned char *)p;
  unsigned char lo = 0x80, hi = 0xBF;
  int n;
  if (s[0] >= 0xC2 && s[0] <= 0xDF) n = 1;
  else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
    n = 2;
    if (s[0] == 0xE0) lo = 0xA0;
    else if (s[0] == 0xED) hi = 0x9F;
  } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
    n = 3;
    if (s[0] == 0xF0) lo = 0x90;
    else if (s[0] == 0xF4) hi = 0x8F;
  } else
    return NULL;
  if (s[1] < lo || s[1] > hi)
    return NULL;
  if (n >= 2 && (s[2] & 0xC0) != 0x80)
    return NULL;
  if (n == 3 && (s[3] & 0xC0) != 0x80)
    return NULL;
  return p + n + 1;
}

static int hexval(unsigned char c) {
  if (IS_DIGIT(c)) return c - '0';
  c |= 0x20;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Four hex digits after "\u"; -1 if any is missing. */
static long hex4(const char *p) {
  long v = 0;
  int i, h;
  for (i = 0; i < 4; i++) {
    if ((h = hexval((unsigned char)p[i])) < 0)
      return -1;
    v = v << 4 | h;
  }
  return v;
}

static char *put_utf8(char *o, unsigned long cp) {
  if (cp < 0x80) {
    *o++ = (char)cp;
  } else if (cp < 0x800) {
    *o++ = (char)(0xC0 | cp >> 6);
    *o++ = (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *o++ = (char)(0xE0 | cp >> 12);
    *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
    *o++ = (char)(0x80 | (cp & 0x3F));
  } else {
    *o++ = (char)(0xF0 | cp >> 18);
    *o++ = (char)(0x80 | (cp >> 12 & 0x3F));
    *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
    *o++ = (char)(0x80 | (cp & 0x3F));
  }
  return o;
}

/*
 * The unescape buffer is a userdata in a fixed stack slot: the GC owns it,
 * so an out-of-memory raise while it is in use leaks nothing.  It only grows
 * when a string with escapes is longer than any before it in this call.
 */
static char *scratch(decoder *d, size_t need) {
  if (need > d->scratch_cap) {
    size_t cap = d->scratch_cap * 2;
    if (cap < need) cap = need;
    if (cap < 256) cap = 256;
    d->scratch = (char *)kp_newuserdata(d->L, cap);
    d->scratch_cap = cap;
    lua_replace(d->L, d->scratch_idx);
  }
  return d->scratch;
}

/*
 * Slow path of a string: s is its first content byte, p its first backslash.
 * Decoded text is never longer than its escaped form, so the raw length up
 * to the closing quote bounds the buffer.
 */
static const char *read_escaped(decoder *d, const char *s, const char *p,
                                const char **out_s, size_t *out_n) {
  const char *q = p;
  char *out, *o;
  while (*q != '"') {           /* find the closing quote first */
    if (q == d->end)
      return fail(d, q, "unexpected end of input in string");
    if (*q == '\\') {
      if (q + 1 == d->end)
        return fail(d, q + 1, "unexpected end of input in string");
      q++;
    }
    q++;
  }
  out = scratch(d, (size_t)(q - s));
  memcpy(out, s, (size_t)(p - s));
  o = out + (p - s);
  while (p < q) {
    unsigned char c = (unsigned char)*p;
    if (plain[c]) {
      *o++ = (char)c;
      p++;
    } else if (c >= 0x80) {
      const char *n = utf8_next(p);
      if (n == NULL)
        return fail(d, p, "invalid UTF-8 in string");
      while (p < n)
        *o++ = *p++;
    } else if (c == '\\') {
      long cp;
      switch (p[1]) {
      case '"': *o++ = '"'; break;
      case '\\': *o++ = '\\'; break;
      case '/': *o++ = '/'; break;
      case 'b': *o++ = '\b'; break;
      case 'f': *o++ = '\f'; break;
      case 'n': *o++ = '\n'; break;
      case 'r': *o++ = '\r'; break;
      case 't': *o++ = '\t'; break;
      case 'u':
        if ((cp = hex4(p + 2)) < 0)
          return fail(d, p, "expected four hex digits after \\u");
        if (cp >= 0xDC00 && cp <= 0xDFFF)
          return fail(d, p, "unpaired low surrogate in \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          long lo = (p[6] == '\\' && p[7] == 'u') ? hex4(p + 8) : -1;
          if (lo < 0xDC00 || lo > 0xDFFF)
            return fail(d, p, "unpaired high surrogate in \\u escape");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          p += 6;
        }
        o = put_utf8(o, (unsigned long)cp);
        p += 4;
        break;
      default:
        return fail(d, p, "invalid escape in string");
      }
      p += 2;
    } else {
      return fail(d, p, "control character in string");
    }
  }
  *out_s = out;
  *out_n = (size_t)(o - out);
  return q + 1;
}

/*
 * A string's content, p just after the opening quote, without pushing it:
 * *out_s points into the input when there is no escape (no copy at all),
 * into the scratch buffer otherwise, valid until the next string.
 */
static const char *read_string(decoder *d, const char *p, const char **out_s,
                               size_t *out_n) {
  const char *s = p;
  for (;;) {
    unsigned char c;
    p = skip_plain(p, d->end);
    c = (unsigned char)*p;
    if (c == '"') {
      *out_s = s;
      *out_n = (size_t)(p - s);
      return p + 1;
    }
    if (c >= 0x80) {
      const char *n = utf8_next(p);
      if (n == NULL)
        return fail(d, p, "invalid UTF-8 in string");
      p = n;
    } else if (c == '\\') {
      return read_escaped(d, s, p, out_s, out_n);
    } else {
      return fail_at(d, p, "control character in string");
    }
  }
}

static const char *parse_string(decoder *d, const char *p) {
  const char *s;
  size_t n;
  if ((p = read_string(d, p, &s, &n)) != NULL)
    lua_pushlstring(d->L, s, n);
  return p;
}

/* Powers of ten that a double holds exactly. */
static const double exact_pow10[] = {
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* A number token, validated, with up to 19 significant digits gathered. */
typedef struct number {
  uint64_t m;             /* the significant digits */
  long exp10;             /* value = m * 10^exp10 (before the sign) */
  int neg, integral, dropped;   /* dropped: digits past the 19th */
} number;

/* Scan a number per RFC 8259's grammar without converting it. */
static const char *scan_number(decoder *d, const char *p, number *n) {
  const char *s = p;
  int digits = 0;
  n->m = 0;
  n->exp10 = 0;
  n->neg = n->dropped = 0;
  n->integral = 1;
  if (*p == '-') {
    n->neg = 1;
    p++;
  }
  if (*p == '0') {
    p++;
    if (IS_DIGIT(*p))
      return fail(d, s, "leading zero in number");
  } else if (IS_DIGIT(*p)) {
    do {
      if (digits < 19) {
        n->m = n->m * 10 + (uint64_t)(*p - '0');
        digits++;
      } else {
        n->dropped = 1;
        n->exp10++;
      }
      p++;
    } while (IS_DIGIT(*p));
  } else {
    return fail_at(d, p, "expected digit in number");
  }
  if (*p == '.') {
    n->integral = 0;
    p++;
    if (!IS_DIGIT(*p))
      return fail_at(d, p, "expected digit after decimal point");
    do {
      if (digits < 19) {
        if (n->m != 0 || *p != '0')
          digits++;
        n->m = n->m * 10 + (uint64_t)(*p - '0');
        n->exp10--;
      } else if (*p != '0') {
        n->dropped = 1;
      }
      p++;
    } while (IS_DIGIT(*p));
  }
  if (*p == 'e' || *p == 'E') {
    long e = 0;
    int eneg = 0;
    n->integral = 0;
    p++;
    if (*p == '+' || *p == '-')
      eneg = *p++ == '-';
    if (!IS_DIGIT(*p))
      return fail_at(d, p, "expected digit in exponent");
    do {
      if (e < 100000)
        e = e * 10 + (*p - '0');
      p++;
    } while (IS_DIGIT(*p));
    n->exp10 += eneg ? -e : e;
  }
  return p;
}

/*
 * The general case: the C library's correctly rounded strtod, on a copy
 * of the token (the scratch buffer when it is long).  strtod reads the
 * locale's decimal point, so when a host has set LC_NUMERIC to a locale
 * with another one, the '.' is swapped for it.  No Lua stack is used: the
 * skipper checks ranges with it too.
 */
static const char *to_double(decoder *d, const char *s, const char *p,
                             double *out) {
  size_t n = (size_t)(p - s);
  char small[64];
  char *buf = n < sizeof small ? small : scratch(d, n + 1);
  char *end;
  memcpy(buf, s, n);
  buf[n] = '\0';
  *out = strtod(buf, &end);
  if (end != buf + n) {
    char *dot = strchr(buf, '.');
    const char *dp = localeconv()->decimal_point;
    if (dot != NULL && dp[0] != '\0' && dp[1] == '\0') {
      *dot = dp[0];
      *out = strtod(buf, &end);
    }
    if (end != buf + n)
      return fail(d, s, "number not readable in this locale");
  }
  if (isinf(*out))
    return fail(d, s, "number out of range");
  return p;
}

/* Whether n is an int64 or a float the fast path computes exactly: either
 * way it is in range with no conversion needed. */
static int number_is_simple(const number *n) {
  if (n->dropped)
    return 0;
  if (n->integral && n->m <= (uint64_t)INT64_MAX + 1)
    return 1;
  return n->m <= ((uint64_t)1 << 53) && n->exp10 >= -22 && n->exp10 <= 22;
}

/*
 * Integral values that fit in int64 become Lua integers; decimals with a
 * mantissa up to 2^53 and a power of ten up to 10^22 are computed exactly
 * with one rounding (Clinger's fast path); the rest take the library's
 * conversion.
 */
static const char *parse_number(decoder *d, const char *p) {
  const char *s = p;
  number n;
  if ((p = scan_number(d, p, &n)) == NULL)
    return NULL;
  if (n.integral && !n.dropped) {
    if (!n.neg && n.m <= (uint64_t)INT64_MAX) {
      lua_pushinteger(d->L, (lua_Integer)n.m);
      return p;
    }
    if (n.neg && n.m != 0 && n.m <= (uint64_t)INT64_MAX + 1) {
      lua_pushinteger(d->L, n.m == (uint64_t)INT64_MAX + 1
                                ? (lua_Integer)INT64_MIN
                                : -(lua_Integer)n.m);
      return p;
    }
  }
  if (!n.dropped && n.m <= ((uint64_t)1 << 53) && n.exp10 >= -22 &&
      n.exp10 <= 22) {
    double v = (double)n.m;
    v = n.exp10 < 0 ? v / exact_pow10[-n.exp10] : v * exact_pow10[n.exp10];
    lua_pushnumber(d->L, n.neg ? -v : v);
    return p;
  }
  {
    double v;
    if ((p = to_double(d, s, p, &v)) != NULL)
      lua_pushnumber(d->L, v);
    return p;
  }
}

/* Each container takes a depth step and makes room for itself, a key and a
 * value (plus a scratch replacement) once, not per element. */
static const char *enter(decoder *d, const char *at) {
  if (++d->depth > KP_JSON_MAX_DEPTH)
    return fail(d, at, "nesting deeper than 1000 levels");
  if (!lua_checkstack(d->L, 4))
    return fail(d, at, "nesting too deep for the Lua stack");
  return at;
}

static unsigned key_slot(const char *k, size_t n, int depth) {
  unsigned h = (unsigned)n * 31u + (unsigned)depth * 0x9E37u;
  if (n > 0)
    h += (unsigned char)k[0] * 7u + (unsigned char)k[n - 1] * 131u;
  return h & (NHINTS - 1);
}

/* Elements of an array share one position, distinct from the array's. */
#define ELEMENT_SLOT(slot) (((slot) * 5u + 1u) & (NHINTS - 1))

/* A few bytes stand for the key: collisions only cost a miss. */
static unsigned key_hash(const char *k, size_t n) {
  unsigned h = (unsigned)n * 0x9E3779B1u;
  h ^= (unsigned char)k[0] | (unsigned char)k[n - 1] << 8 |
       (unsigned char)k[n / 2] << 16 | (unsigned)(unsigned char)k[n / 3] << 24;
  h ^= h >> 15;
  h *= 0x2C1B3C6Du;
  h ^= h >> 12;
  return h & (KEY_CACHE - 1);
}

/* Byte comparison for short keys, without a library call: words, the
 * last one overlapping the one before, so no byte loop and no read outside
 * [a, a + n) or [b, b + n). */
static int same_bytes(const char *a, const char *b, size_t n) {
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

/* Push key k, from the cache when it holds these bytes.  Returns the cache
 * index + 1 now holding k, or 0 when k is not cached. */
static unsigned push_key(decoder *d, const char *k, size_t n) {
  lua_State *L = d->L;
  key_entry *e;
  unsigned h;
  if (n == 0 || n > KEY_MAX) {
    lua_pushlstring(L, k, n);
    return 0;
  }
  h = key_hash(k, n);
  e = &d->mem->keys[h];
  if (e->n == n && e->s != NULL && same_bytes(e->s, k, n)) {
    lua_rawgeti(L, d->cache_idx, (lua_Integer)h + 1);
    return h + 1;
  }
  lua_pushlstring(L, k, n);
  lua_pushvalue(L, -1);
  lua_rawseti(L, d->cache_idx, (lua_Integer)h + 1);
  e->s = lua_tostring(L, -1);
  e->n = n;
  return h + 1;
}

/*
 * The member key at p (on its opening quote), predicted by the shape of
 * this position: on a hit the cached string is pushed, *k / *n give its
 * bytes and the cursor after the closing quote is returned; NULL on a miss
 * (nothing pushed, nothing consumed).
 */
static const char *predicted_key(decoder *d, const char *p, unsigned short at,
                                 const char **k, size_t *n) {
  const key_entry *e = &d->mem->keys[at - 1];
  if (e->s == NULL || (size_t)(d->end - p) <= e->n + 1 ||
      p[e->n + 1] != '"' || !same_bytes(p + 1, e->s, e->n))
    return NULL;
  lua_rawgeti(d->L, d->cache_idx, (lua_Integer)at);
  *k = e->s;
  *n = e->n;
  return p + e->n + 2;
}

/* Push this state's cache table (made on first use) and find its memory. */
static void open_memory(decoder *d) {
  lua_State *L = d->L;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &memory_key) != LUA_TTABLE) {
    memory *m;
    lua_pop(L, 1);
    lua_createtable(L, KEY_CACHE, 1);
    m = (memory *)kp_newuserdata(L, sizeof *m);
    memset(m, 0, sizeof *m);
    lua_rawseti(L, -2, 0);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &memory_key);
  }
  lua_rawgeti(L, -1, 0);
  d->mem = (memory *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  d->cache_idx = lua_gettop(L);
}

static unsigned clamp_hint(lua_Integer n) {
  return n > HINT_MAX ? HINT_MAX : (unsigned)n;
}

/*
 * After an element or member: past a ',' and the whitespace after it
 * (*more = 1), or past the closing bracket (*more = 0); NULL on anything
 * else.
 */
static inline const char *separator(decoder *d, const char *p, char close, int *more) {
  p = skip_ws(p);
  if (*p == ',') {
    *more = 1;
    return skip_ws(p + 1);
  }
  if (*p == close) {
    *more = 0;
    return p + 1;
  }
  return fail_at(d, p, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
}

/* At a member's opening quote: its key (see read_string) and the cursor
 * at its value, past the ':' and whitespace. */
static inline const char *member_key(decoder *d, const char *p, const char **k, size_t *n) {
  if (*p != '"')
    return fail_at(d, p, "expected string key");
  if ((p = read_string(d, p + 1, k, n)) == NULL)
    return NULL;
  p = skip_ws(p);
  if (*p != ':')
    return fail_at(d, p, "expected ':'");
  return skip_ws(p + 1);
}

/* Opening a container: its first element, or past an immediate close
 * (*more = 0). */
static inline const char *open_items(const char *p, char close, int *more) {
  p = skip_ws(p);
  *more = *p != close;
  return *more ? p : p + 1;
}

static const char *parse_value(decoder *d, const char *p, unsigned slot);

/* p is just after '['. */
static const char *parse_array(decoder *d, const char *p, unsigned slot) {
  lua_State *L = d->L;
  lua_Integer n = 0;
  unsigned eslot = ELEMENT_SLOT(slot);
  int more;
  if (enter(d, p - 1) == NULL)
    return NULL;
  lua_createtable(L, (int)d->mem->hints[slot].narr, 0);
  for (p = open_items(p, ']', &more); more;) {
    if ((p = parse_value(d, p, eslot)) == NULL)
      return NULL;
    lua_rawseti(L, -2, ++n);
    if ((p = separator(d, p, ']', &more)) == NULL)
      return NULL;
  }
  d->mem->hints[slot].narr = clamp_hint(n);
  d->depth--;
  return p;
}

/* p is just after '{'. */
static const char *parse_object(decoder *d, const char *p, unsigned slot) {
  lua_State *L = d->L;
  lua_Integer n = 0;            /* members set (nulls are not) */
  int i = 0;                    /* members read */
  int more;
  unsigned short *shape = d->mem->shapes[slot];
  if (enter(d, p - 1) == NULL)
    return NULL;
  lua_createtable(L, 0, (int)d->mem->hints[slot].nrec);
  for (p = open_items(p, '}', &more); more;) {
    const char *k, *q;
    size_t kn;
    if (i < SHAPE_MAX && shape[i] != 0 && *p == '"' &&
        (q = predicted_key(d, p, shape[i], &k, &kn)) != NULL) {
      p = skip_ws(q);
      if (*p != ':')
        return fail_at(d, p, "expected ':'");
      p = skip_ws(p + 1);
    } else {
      unsigned at;
      if ((p = member_key(d, p, &k, &kn)) == NULL)
        return NULL;
      at = push_key(d, k, kn);
      if (i < SHAPE_MAX)        /* a key with escapes, decoded into the */
        shape[i] = (unsigned short)(k == d->scratch ? 0 : at);  /* scratch */
    }
    i++;
    if (p[0] == 'n' && p[1] == 'u' && p[2] == 'l' && p[3] == 'l') {
      /* null member: the key is absent (a raw set of nil also clears an
       * earlier duplicate, so the last occurrence wins as for values) */
      lua_pushnil(L);
      p += 4;
    } else {
      /* only containers use a size hint: the slot costs nothing else */
      unsigned vslot = (*p == '{' || *p == '[') ? key_slot(k, kn, d->depth) : 0;
      if ((p = parse_value(d, p, vslot)) == NULL)
        return NULL;
      n++;
    }
    lua_rawset(L, -3);
    if ((p = separator(d, p, '}', &more)) == NULL)
      return NULL;
  }
  d->mem->hints[slot].nrec = clamp_hint(n);
  d->depth--;
  return p;
}

static const char *parse_value(decoder *d, const char *p, unsigned slot) {
  switch (*p) {
  case '{': return parse_object(d, p + 1, slot);
  case '[': return parse_array(d, p + 1, slot);
  case '"': return parse_string(d, p + 1);
  case 't':
    if (p[1] == 'r' && p[2] == 'u' && p[3] == 'e') {
      lua_pushboolean(d->L, 1);
      return p + 4;
    }
    break;
  case 'f':
    if (p[1] == 'a' && p[2] == 'l' && p[3] == 's' && p[4] == 'e') {
      lua_pushboolean(d->L, 0);
      return p + 5;
    }
    break;
  case 'n':
    if (p[1] == 'u' && p[2] == 'l' && p[3] == 'l') {
      lua_pushlightuserdata(d->L, NULL);
      return p + 4;
    }
    break;
  case '-': case '0': case '1': case '2': case '3': case '4':
  case '5': case '6': case '7': case '8': case '9':
    return parse_number(d, p);
  default:
    break;
  }
  return fail_at(d, p, "expected a value");
}

/*
 * Skipping: the same grammar, checked as strictly (UTF-8, escapes, number
 * syntax), with nothing built.  Used for what a projection leaves out.
 */
static const char *skip_value(decoder *d, const char *p) {
  const char *s;
  size_t n;
  number num;
  switch (*p) {
  case '"':
    return read_string(d, p + 1, &s, &n);
  case '{':
  case '[': {
    char close = *p == '{' ? '}' : ']';
    int more;
    if (++d->depth > KP_JSON_MAX_DEPTH)
      return fail(d, p, "nesting deeper than 1000 levels");
    for (p = open_items(p + 1, close, &more); more;) {
      if (close == '}' && (p = member_key(d, p, &s, &n)) == NULL)
        return NULL;
      if ((p = skip_value(d, p)) == NULL ||
          (p = separator(d, p, close, &more)) == NULL)
        return NULL;
    }
    d->depth--;
    return p;
  }
  case 't':
    if (p[1] == 'r' && p[2] == 'u' && p[3] == 'e')
      return p + 4;
    break;
  case 'f':
    if (p[1] == 'a' && p[2] == 'l' && p[3] == 's' && p[4] == 'e')
      return p + 5;
    break;
  case 'n':
    if (p[1] == 'u' && p[2] == 'l' && p[3] == 'l')
      return p + 4;
    break;
  case '-': case '0': case '1': case '2': case '3': case '4':
  case '5': case '6': case '7': case '8': case '9': {
    /* as strict as decoding: a number that does not fit is an error here
     * too, even though nothing is built */
    const char *q = scan_number(d, p, &num);
    double v;
    if (q != NULL && !number_is_simple(&num))
      q = to_double(d, p, q, &v);
    return q;
  }
  default:
    break;
  }
  return fail_at(d, p, "expected a value");
}

/*
 * Projection.  A trie node says which members of an object to keep: a leaf
 * keeps the whole value, an inner node descends.  Arrays are transparent:
 * their elements are projected with the array's node.  Above the first
 * record (while `envelope` is set) members no path names that hold a
 * container are descended too, so { "financeOffers": [ … ] } needs no
 * "financeOffers" in the paths; inside a record, unnamed members are skipped
 * without building anything.
 */
static int find_child(const kp_json_path *t, int node, const char *k, size_t n) {
  int c;
  for (c = t[node].child; c >= 0; c = t[c].next)
    if (t[c].len == n && memcmp(t[c].key, k, n) == 0)
      return c;
  return -1;
}

static const char *proj_array(decoder *d, const char *p, int node);

/* p is just after '{'; always pushes a table. */
static const char *proj_object(decoder *d, const char *p, int node,
                               int envelope) {
  lua_State *L = d->L;
  const kp_json_path *t = d->paths;
  int more;
  if (enter(d, p - 1) == NULL)
    return NULL;
  lua_createtable(L, 0, 0);
  for (p = open_items(p, '}', &more); more;) {
    const char *k;
    size_t kn;
    int c;
    if ((p = member_key(d, p, &k, &kn)) == NULL)
      return NULL;
    c = find_child(t, node, k, kn);
    if (c >= 0 && t[c].leaf) {
      push_key(d, k, kn);       /* a null still clears an earlier duplicate */
      if ((p = parse_value(d, p, key_slot(k, kn, d->depth))) == NULL)
        return NULL;
      if (lua_type(L, -1) == LUA_TLIGHTUSERDATA) {
        lua_pop(L, 1);
        lua_pushnil(L);
      }
      lua_rawset(L, -3);
    } else if (c >= 0 || envelope) {
      int next = c >= 0 ? c : node;
      push_key(d, k, kn);
      if (*p == '{' || *p == '[') {
        p = *p == '{' ? proj_object(d, p + 1, next, c < 0)
                      : proj_array(d, p + 1, next);
      } else {
        /* nothing to select in a scalar: like the full decode's last
         * occurrence, it leaves the key absent */
        p = skip_value(d, p);
        lua_pushnil(L);
      }
      if (p == NULL)
        return NULL;
      lua_rawset(L, -3);
    } else if ((p = skip_value(d, p)) == NULL) {
      return NULL;
    }
    if ((p = separator(d, p, '}', &more)) == NULL)
      return NULL;
  }
  d->depth--;
  return p;
}

/* p is just after '['; always pushes a table.  Elements that are not
 * containers have nothing a path could select, and are skipped. */
static const char *proj_array(decoder *d, const char *p, int node) {
  lua_State *L = d->L;
  lua_Integer n = 0;
  int more;
  if (enter(d, p - 1) == NULL)
    return NULL;
  lua_createtable(L, 0, 0);
  for (p = open_items(p, ']', &more); more;) {
    if (*p == '{' || *p == '[') {
      p = *p == '{' ? proj_object(d, p + 1, node, 0)
                    : proj_array(d, p + 1, node);
      if (p == NULL)
        return NULL;
      lua_rawseti(L, -2, ++n);
    } else if ((p = skip_value(d, p)) == NULL) {
      return NULL;
    }
    if ((p = separator(d, p, ']', &more)) == NULL)
      return NULL;
  }
  d->depth--;
  return p;
}

/* The top-level value: a scalar is returned as it is under a projection. */
static const char *root_value(decoder *d, const char *p) {
  if (d->paths == NULL || (*p != '{' && *p != '['))
    return parse_value(d, p, 0);
  return *p == '{' ? proj_object(d, p + 1, 0, 1) : proj_array(d, p + 1, 0);
}

int kp_json_decode(lua_State *L, const char *text, size_t len,
                   const kp_json_path *paths, kp_json_error *err) {
  decoder d;
  int base = lua_gettop(L);
  const char *p;
  luaL_checkstack(L, 8, "kpayment.decode");
  lua_pushnil(L);               /* the scratch slot, filled on demand */
  d.L = L;
  d.start = text;
  d.end = text + len;
  d.depth = 0;
  d.scratch_idx = base + 1;
  d.scratch = NULL;
  d.scratch_cap = 0;
  d.paths = paths;
  d.err = err;
  d.cache_idx = 0;              /* both set by open_memory */
  d.mem = NULL;
  open_memory(&d);
  err->what = NULL;
  err->pos = 0;
  p = root_value(&d, skip_ws(text));
  if (p != NULL && (p = skip_ws(p)) != d.end)
    p = fail(&d, p, "unexpected data after the value");
  if (p == NULL) {
    lua_settop(L, base);
    return 0;
  }
  lua_replace(L, base + 1);     /* scratch and cache slots go; the value */
  lua_settop(L, base + 1);      /* stays */
  return 1;
}

const char *kp_json_message(const kp_json_error *err, char *buf, size_t size) {
  snprintf(buf, size, "%s at byte %lu", err->what ? err->what : "error",
           (unsigned long)err->pos);
  return buf;
}

#define MAX_PATHS 256
#define MAX_PATH_LEN 1024

/*
 * Build the trie for a list of dotted paths (the Lua array at idx) in a
 * userdata pushed on the stack, so the GC owns it.  Keys point into the
 * path strings, which the caller keeps alive (they are in its argument).
 */
const kp_json_path *kp_json_paths(lua_State *L, int idx) {
  kp_json_path *t;
  lua_Integer i, npaths;
  size_t nodes = 1;
  int used = 1;
  idx = lua_absindex(L, idx);
  luaL_checktype(L, idx, LUA_TTABLE);
  npaths = (lua_Integer)lua_rawlen(L, idx);
  if (npaths < 1 || npaths > MAX_PATHS)
    luaL_error(L, "fields: expected a list of 1 to %d paths", MAX_PATHS);
  for (i = 1; i <= npaths; i++) {
    size_t n, j;
    const char *s;
    if (lua_rawgeti(L, idx, i) != LUA_TSTRING)   /* no number coercion */
      luaL_error(L, "fields: bad path #%d (string expected)", (int)i);
    s = lua_tolstring(L, -1, &n);
    if (n == 0 || n > MAX_PATH_LEN ||
        s[0] == '.' || s[n - 1] == '.' || strstr(s, "..") != NULL ||
        strlen(s) != n)
      luaL_error(L, "fields: bad path #%d (dotted names expected, e.g. "
                    "\"customer.lastName\")", (int)i);
    for (j = 0; j < n; j++)
      nodes += s[j] == '.';
    nodes++;
    lua_pop(L, 1);
  }
  t = (kp_json_path *)kp_newuserdata(L, nodes * sizeof *t);
  t[0].key = NULL;
  t[0].len = 0;
  t[0].child = t[0].next = -1;
  t[0].leaf = 0;
  for (i = 1; i <= npaths; i++) {
    size_t n;
    const char *s, *e;
    int node = 0;
    lua_rawgeti(L, idx, i);
    s = lua_tolstring(L, -1, &n);
    lua_pop(L, 1);              /* still referenced by the list */
    for (;;) {
      int c;
      e = memchr(s, '.', n);
      size_t seg = e ? (size_t)(e - s) : n;
      if ((c = find_child(t, node, s, seg)) < 0) {
        c = used++;
        t[c].key = s;
        t[c].len = seg;
        t[c].child = -1;
        t[c].leaf = 0;
        t[c].next = t[node].child;
        t[node].child = c;
      }
      node = c;
      if (e == NULL)
        break;
      n -= seg + 1;
      s = e + 1;
    }
    t[node].leaf = 1;
  }
  return t;
}
