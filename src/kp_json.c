/*
 * kp_json.c -- a strict RFC 8259 decoder that builds Lua values directly,
 * and the entry points.  The walk over a response's envelope, with its
 * shape checks (kp_json_opts.records) and its steps, lives in
 * kp_json_records.c, projection in kp_json_proj.c, the speed caches in
 * kp_json_cache.h.
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
#include "kp_json_int.h"

/* The registry key of the per-state caches (kp_json_cache.h). */
const char kpj_memory_key = 'k';

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

const char *kpj_fail(kpj_decoder *d, const char *at, const char *what) {
  if (d->err->what == NULL) {
    d->err->pos = (size_t)(at - d->start) + 1;
    d->err->what = what;
  }
  return NULL;
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
static char *scratch(kpj_decoder *d, size_t need) {
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
 * to the closing quote bounds the buffer.  Both passes move over runs of
 * plain bytes with skip_plain (embedded JSON escapes every few bytes, with
 * runs between), and stop only at the bytes that need a look.
 */
static KPJ_COLD const char *read_escaped(kpj_decoder *d, const char *s,
                                         const char *p, const char **out_s,
                                         size_t *out_n) {
  const char *q = p;
  char *out, *o;
  while (*q != '"') {           /* find the closing quote first */
    if (q == d->end)
      return kpj_fail(d, q, "unexpected end of input in string");
    if (*q == '\\') {
      if (q + 1 == d->end)
        return kpj_fail(d, q + 1, "unexpected end of input in string");
      q += 2;
    } else {
      q = skip_plain(q + 1, d->end);   /* checked in the second pass */
    }
  }
  out = scratch(d, (size_t)(q - s));
  memcpy(out, s, (size_t)(p - s));
  o = out + (p - s);
  while (p < q) {
    unsigned char c = (unsigned char)*p;
    if (plain[c]) {             /* a run, up to the next byte to look at */
      const char *r = skip_plain(p, q);
      memcpy(o, p, (size_t)(r - p));
      o += r - p;
      p = r;
    } else if (c >= 0x80) {
      const char *n = utf8_next(p);
      if (n == NULL)
        return kpj_fail(d, p, "invalid UTF-8 in string");
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
          return kpj_fail(d, p, "expected four hex digits after \\u");
        if (cp >= 0xDC00 && cp <= 0xDFFF)
          return kpj_fail(d, p, "unpaired low surrogate in \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          long lo = (p[6] == '\\' && p[7] == 'u') ? hex4(p + 8) : -1;
          if (lo < 0xDC00 || lo > 0xDFFF)
            return kpj_fail(d, p, "unpaired high surrogate in \\u escape");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          p += 6;
        }
        o = put_utf8(o, (unsigned long)cp);
        p += 4;
        break;
      default:
        return kpj_fail(d, p, "invalid escape in string");
      }
      p += 2;
    } else {
      return kpj_fail(d, p, "control character in string");
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
const char *kpj_read_string(kpj_decoder *d, const char *p, const char **out_s,
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
        return kpj_fail(d, p, "invalid UTF-8 in string");
      p = n;
    } else if (c == '\\') {
      return read_escaped(d, s, p, out_s, out_n);
    } else {
      return kpj_fail_at(d, p, "control character in string");
    }
  }
}

static const char *parse_string(kpj_decoder *d, const char *p) {
  const char *s;
  size_t n;
  if ((p = kpj_read_string(d, p, &s, &n)) != NULL)
    kp_pushlstring(d->L, s, n);
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
  int neg, integral, dropped;   /* dropped: digits past the 19th, or
                                 * exponent digits past its bound */
} number;

/* Scan a number per RFC 8259's grammar without converting it. */
static const char *scan_number(kpj_decoder *d, const char *p, number *n) {
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
      return kpj_fail(d, s, "leading zero in number");
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
    return kpj_fail_at(d, p, "expected digit in number");
  }
  if (*p == '.') {
    n->integral = 0;
    p++;
    if (!IS_DIGIT(*p))
      return kpj_fail_at(d, p, "expected digit after decimal point");
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
      return kpj_fail_at(d, p, "expected digit in exponent");
    do {
      if (e < 100000)
        e = e * 10 + (*p - '0');
      else                      /* held at its bound: not exact, so */
        n->dropped = 1;         /* the library reads the whole token */
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
static const char *to_double(kpj_decoder *d, const char *s, const char *p,
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
      return kpj_fail(d, s, "number not readable in this locale");
  }
  if (isinf(*out))
    return kpj_fail(d, s, "number out of range");
  return p;
}

/* Whether n needs no conversion to be known in range: every integral token
 * decodes (long ones as strings), and a float the fast path computes
 * exactly is in range. */
static int number_is_simple(const number *n) {
  if (n->integral)
    return 1;
  if (n->dropped)
    return 0;
  return n->m <= ((uint64_t)1 << 53) && n->exp10 >= -22 && n->exp10 <= 22;
}

/*
 * Integral values that fit in int64 become Lua integers; decimals with a
 * mantissa up to 2^53 and a power of ten up to 10^22 are computed exactly
 * with one rounding (Clinger's fast path); the rest take the library's
 * conversion.  Where Lua has no 64-bit integers (kp_compat.h), integral
 * tokens up to 2^53 in magnitude are exact as numbers.  Any other integral
 * token comes back as its own text: a string, never a rounded value (-0
 * is the float -0.0, which is exact).
 */
static const char *parse_number(kpj_decoder *d, const char *p) {
  const char *s = p;
  number n;
  if ((p = scan_number(d, p, &n)) == NULL)
    return NULL;
#if KP_LUA_INT64
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
  if (n.integral && (n.dropped || n.m != 0)) {      /* beyond int64 */
    kp_pushlstring(d->L, s, (size_t)(p - s));
    return p;
  }
#else
  if (n.integral && (n.dropped || n.m > ((uint64_t)1 << 53))) {
    kp_pushlstring(d->L, s, (size_t)(p - s));
    return p;
  }
#endif
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
const char *kpj_enter(kpj_decoder *d, const char *at) {
  if (++d->depth > KP_JSON_MAX_DEPTH)
    return kpj_fail(d, at, "nesting deeper than 1000 levels");
  if (!lua_checkstack(d->L, 4))
    return kpj_fail(d, at, "nesting too deep for the Lua stack");
  return at;
}

/*
 * A scalar other than null, p on its first byte; anything else is "expected
 * a value".  Read right in a container's loop (inner_value), so only a
 * nested container, a null or an error goes through kpj_parse_value, whose
 * frame is the heavy one.  What is built and which error is reported are
 * the same either way.
 */
static KPJ_FLATTEN const char *scalar(kpj_decoder *d, const char *p) {
  switch (*p) {
  case '"':
    return parse_string(d, p + 1);
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
  case '-': case '0': case '1': case '2': case '3': case '4':
  case '5': case '6': case '7': case '8': case '9':
    return parse_number(d, p);
  default:
    break;
  }
  return kpj_fail_at(d, p, "expected a value");
}

/* A value inside a container, p on its first byte.  null is the caller's:
 * its value differs between objects and arrays. */
static KPJ_FLATTEN const char *inner_value(kpj_decoder *d, const char *p,
                                           unsigned slot) {
  if (*p == '{' || *p == '[' || *p == 'n')
    return kpj_parse_value(d, p, slot);
  return scalar(d, p);
}

/* p is just after '['. */
static const char *parse_array(kpj_decoder *d, const char *p, unsigned slot) {
  lua_State *L = d->L;
  lua_Integer n = 0;
  unsigned eslot = KPJ_ELEMENT_SLOT(slot);
  int more;
  if (kpj_enter(d, p - 1) == NULL)
    return NULL;
  lua_createtable(L, (int)d->mem->hints[slot].narr, 0);
  for (p = kpj_open_items(p, ']', &more); more;) {
    if ((p = inner_value(d, p, eslot)) == NULL)
      return NULL;
    lua_rawseti(L, -2, ++n);
    if ((p = kpj_separator(d, p, ']', &more)) == NULL)
      return NULL;
  }
  d->mem->hints[slot].narr = kpj_next_hint(d->mem->hints[slot].narr, n);
  d->depth--;
  return p;
}

/*
 * A member's value, p on its first byte, k its key.  null pushes nil: the
 * key is then absent (a raw set of nil also clears an earlier duplicate,
 * so the last occurrence wins as for values).  Only containers use a size
 * hint: the slot costs nothing else.
 */
static inline const char *member_value(kpj_decoder *d, const char *p,
                                       const char *k, size_t kn) {
  if (p[0] == 'n' && p[1] == 'u' && p[2] == 'l' && p[3] == 'l') {
    lua_pushnil(d->L);
    return p + 4;
  }
  return inner_value(d, p, (*p == '{' || *p == '[')
                              ? kpj_key_slot(k, kn, d->depth) : 0);
}

const char *kpj_parse_member(kpj_decoder *d, const char *p, const char *k,
                             size_t kn) {
  kpj_push_member_key(d, k, kn);
  if ((p = member_value(d, p, k, kn)) != NULL)
    lua_rawset(d->L, -3);
  return p;
}

/* The registry key of core.empty_object: the address of a constant. */
static const char empty_object_key = 0;

void kp_json_push_empty_object(lua_State *L) {
  /* one per state, whichever require made it: tables decoded before a
   * second luaopen keep the metatable core.empty_object is */
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &empty_object_key) == LUA_TTABLE)
    return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushliteral(L, "kpayment.empty_object");
  lua_setfield(L, -2, "__name");
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &empty_object_key);
}

void kpj_mark_empty_object(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &empty_object_key);
  lua_setmetatable(L, -2);
}

void kpj_mark_if_empty(lua_State *L) {
  lua_pushnil(L);
  if (lua_next(L, -2) == 0)
    kpj_mark_empty_object(L);
  else
    lua_pop(L, 2);
}

/* p is just after '{'. */
static const char *parse_object(kpj_decoder *d, const char *p, unsigned slot) {
  lua_State *L = d->L;
  lua_Integer n = 0;            /* members set (nulls are not) */
  int i = 0;                    /* members read */
  int more;
  unsigned short *shape = d->mem->shapes[slot];
  if (kpj_enter(d, p - 1) == NULL)
    return NULL;
  lua_createtable(L, 0, (int)d->mem->hints[slot].nrec);
  for (p = kpj_open_items(p, '}', &more); more;) {
    const char *k, *q;
    size_t kn;
    if (i < KPJ_SHAPE_MAX && shape[i] != 0 && *p == '"' &&
        (q = kpj_predicted_key(L, d->mem, d->cache_idx, p, d->end, shape[i],
                               &k, &kn)) != NULL) {
      p = kpj_skip_ws(q);
      if (*p != ':')
        return kpj_fail_at(d, p, "expected ':'");
      p = kpj_skip_ws(p + 1);
    } else {
      unsigned at;
      if ((p = kpj_member_key(d, p, &k, &kn)) == NULL)
        return NULL;
      at = kpj_push_member_key(d, k, kn);   /* 0 for a key with escapes */
      if (i < KPJ_SHAPE_MAX)
        shape[i] = (unsigned short)at;
    }
    i++;
    n += *p != 'n';             /* 'n' starts null (or an error) */
    if ((p = member_value(d, p, k, kn)) == NULL)
      return NULL;
    lua_rawset(L, -3);
    if ((p = kpj_separator(d, p, '}', &more)) == NULL)
      return NULL;
  }
  d->mem->hints[slot].nrec = kpj_next_hint(d->mem->hints[slot].nrec, n);
  /* {} (or nulls only, left out; a key whose later value was null goes
   * too): written back as {}, not [] */
  if (n == 0)
    kpj_mark_empty_object(L);
  else if (n < i)
    kpj_mark_if_empty(L);
  d->depth--;
  return p;
}

const char *kpj_parse_value(kpj_decoder *d, const char *p, unsigned slot) {
  switch (*p) {
  case '{': return parse_object(d, p + 1, slot);
  case '[': return parse_array(d, p + 1, slot);
  case 'n':
    if (p[1] == 'u' && p[2] == 'l' && p[3] == 'l') {
      lua_pushlightuserdata(d->L, NULL);
      return p + 4;
    }
    return kpj_fail_at(d, p, "expected a value");
  default:
    return scalar(d, p);
  }
}

/*
 * Skipping: the same grammar, checked as strictly (UTF-8, escapes, number
 * syntax), with nothing built.  Used for what a projection leaves out.
 */
const char *kpj_skip_value(kpj_decoder *d, const char *p) {
  const char *s;
  size_t n;
  number num;
  switch (*p) {
  case '"':
    return kpj_read_string(d, p + 1, &s, &n);
  case '{':
  case '[': {
    char close = *p == '{' ? '}' : ']';
    int more;
    if (++d->depth > KP_JSON_MAX_DEPTH)
      return kpj_fail(d, p, "nesting deeper than 1000 levels");
    for (p = kpj_open_items(p + 1, close, &more); more;) {
      if (close == '}' && (p = kpj_member_key(d, p, &s, &n)) == NULL)
        return NULL;
      if ((p = kpj_skip_value(d, p)) == NULL ||
          (p = kpj_separator(d, p, close, &more)) == NULL)
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
  return kpj_fail_at(d, p, "expected a value");
}

/*
 * The top-level value.  A response's object (opts->records) is walked by
 * kp_json_records.c; under records any other value is an error; a
 * projection walks containers itself; a scalar is returned as it is.
 */
static const char *root_value(kpj_decoder *d, const char *p) {
  if (d->records != NULL && *p != '{' && kpj_starts_value(p))
    return kpj_fail(d, p, "top-level value is not an object");
  if (d->paths != NULL && (*p == '{' || *p == '['))
    return kpj_proj_root(d, p);
  return kpj_parse_value(d, p, 0);
}

/* Whether text is decoded by the records walk (it can stop and resume). */
static int walked(const kp_json_opts *opts, const char *text) {
  return opts != NULL && opts->records != NULL && *kpj_skip_ws(text) == '{';
}

int kp_json_decode_step(lua_State *L, kp_json_slicer *s, int state,
                        const char *text, size_t len, const kp_json_opts *opts,
                        double budget_ms) {
  kpj_decoder d;
  kpj_walk w;
  int base = lua_gettop(L);
  const char *p;
  if (state != 0)
    state = lua_absindex(L, state);
  luaL_checkstack(L, 12, "kpayment.decode");
  lua_pushnil(L);               /* the scratch slot, filled on demand */
  d.L = L;
  d.start = text;
  d.end = text + len;
  d.depth = 0;
  d.scratch_idx = base + 1;
  d.scratch = NULL;
  d.scratch_cap = 0;
  d.paths = opts != NULL ? opts->paths : NULL;
  d.records = opts != NULL ? opts->records : NULL;
  d.records_len = d.records != NULL ? strlen(d.records) : 0;
  d.meta = opts != NULL ? opts->meta : 0;
  d.err = &s->err;
  d.mem = kpj_open_memory(L);   /* pushes the key-string table */
  d.cache_idx = base + 2;
  if (!kp_json_slicer_busy(s)) {
    s->err.what = NULL;
    s->err.member = NULL;
    s->err.pos = 0;
  }
  w.s = s;
  w.state = state;
  w.progress = 0;
  w.deadline = state != 0 ? kpj_deadline(budget_ms) : -1;
  if (walked(opts, text))
    p = kpj_walk_step(&d, &w, state);
  else
    p = root_value(&d, kpj_skip_ws(text));
  if (p == KPJ_SUSPENDED) {
    lua_settop(L, base);
    return KP_JSON_MORE;
  }
  {                             /* done either way: a new walk next */
    kp_json_error e = s->err;
    kp_json_slicer_init(s);
    s->err = e;
  }
  if (p != NULL && (p = kpj_skip_ws(p)) != d.end)
    p = kpj_fail(&d, p, "unexpected data after the value");
  if (p == NULL) {
    lua_settop(L, base);
    return 0;
  }
  lua_replace(L, base + 1);     /* scratch and cache slots go; the value */
  lua_settop(L, base + 1);      /* stays */
  return 1;
}

int kp_json_decode_opts(lua_State *L, const char *text, size_t len,
                        const kp_json_opts *opts, kp_json_error *err) {
  kp_json_slicer s;
  int ok;
  kp_json_slicer_init(&s);
  ok = kp_json_decode_step(L, &s, 0, text, len, opts, -1);
  *err = s.err;
  return ok;
}

const char *kp_json_message(const kp_json_error *err, char *buf, size_t size) {
  if (err->member != NULL)
    snprintf(buf, size, "'%s' %s at byte %lu", err->member,
             err->what ? err->what : "error", (unsigned long)err->pos);
  else
    snprintf(buf, size, "%s at byte %lu", err->what ? err->what : "error",
             (unsigned long)err->pos);
  return buf;
}
