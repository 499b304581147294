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
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "kp_json.h"

typedef struct decoder {
  lua_State *L;
  const char *start;
  const char *end;        /* *end == '\0' */
  int depth;
  int scratch_idx;        /* stack slot holding the unescape buffer */
  char *scratch;
  size_t scratch_cap;
  kp_json_error *err;
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
static const char *parse_escaped(decoder *d, const char *s, const char *p) {
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
  lua_pushlstring(d->L, out, (size_t)(o - out));
  return q + 1;
}

/* p is just after the opening quote.  Strings without escapes are pushed
 * straight from the input: no copy of our own. */
static const char *parse_string(decoder *d, const char *p) {
  const char *s = p;
  for (;;) {
    unsigned char c;
    while (plain[(unsigned char)*p])
      p++;
    c = (unsigned char)*p;
    if (c == '"') {
      lua_pushlstring(d->L, s, (size_t)(p - s));
      return p + 1;
    }
    if (c >= 0x80) {
      const char *n = utf8_next(p);
      if (n == NULL)
        return fail(d, p, "invalid UTF-8 in string");
      p = n;
    } else if (c == '\\') {
      return parse_escaped(d, s, p);
    } else {
      return fail_at(d, p, "control character in string");
    }
  }
}

/* Powers of ten that a double holds exactly. */
static const double exact_pow10[] = {
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* The general case: the C library's correctly rounded conversion, through
 * lua_stringtonumber, which also copes with a locale whose decimal point is
 * not '.'.  The token was validated already. */
static const char *push_float_slow(decoder *d, const char *s, const char *p) {
  lua_State *L = d->L;
  char small[64];
  size_t n = (size_t)(p - s);
  lua_Number v;
  if (n < sizeof small) {
    memcpy(small, s, n);
    small[n] = '\0';
    lua_stringtonumber(L, small);
  } else {
    lua_pushlstring(L, s, n);
    lua_stringtonumber(L, lua_tostring(L, -1));
    lua_remove(L, -2);
  }
  v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (isinf(v))
    return fail(d, s, "number out of range");
  lua_pushnumber(L, v);
  return p;
}

/*
 * Numbers, per RFC 8259's grammar.  Up to 19 significant digits are
 * gathered in an integer: integral values that fit in int64 are pushed as
 * Lua integers, and decimals with a mantissa below 2^53 and a power of ten
 * below 10^22 are computed exactly with one rounding (Clinger's fast path).
 * Everything else takes the library's conversion.
 */
static const char *parse_number(decoder *d, const char *p) {
  const char *s = p;
  uint64_t m = 0;
  int digits = 0, dropped = 0, neg = 0, integral = 1;
  long exp10 = 0;
  if (*p == '-') {
    neg = 1;
    p++;
  }
  if (*p == '0') {
    p++;
    if (IS_DIGIT(*p))
      return fail(d, s, "leading zero in number");
  } else if (IS_DIGIT(*p)) {
    do {
      if (digits < 19) {
        m = m * 10 + (uint64_t)(*p - '0');
        digits++;
      } else {
        dropped = 1;
        exp10++;
      }
      p++;
    } while (IS_DIGIT(*p));
  } else {
    return fail_at(d, p, "expected digit in number");
  }
  if (*p == '.') {
    integral = 0;
    p++;
    if (!IS_DIGIT(*p))
      return fail_at(d, p, "expected digit after decimal point");
    do {
      if (digits < 19) {
        if (m != 0 || *p != '0')
          digits++;
        m = m * 10 + (uint64_t)(*p - '0');
        exp10--;
      } else if (*p != '0') {
        dropped = 1;
      }
      p++;
    } while (IS_DIGIT(*p));
  }
  if (*p == 'e' || *p == 'E') {
    long e = 0;
    int eneg = 0;
    integral = 0;
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
    exp10 += eneg ? -e : e;
  }
  if (integral && !dropped) {
    if (!neg && m <= (uint64_t)INT64_MAX) {
      lua_pushinteger(d->L, (lua_Integer)m);
      return p;
    }
    if (neg && m != 0 && m <= (uint64_t)INT64_MAX + 1) {
      lua_pushinteger(d->L, m == (uint64_t)INT64_MAX + 1
                                ? (lua_Integer)INT64_MIN
                                : -(lua_Integer)m);
      return p;
    }
  }
  if (!dropped && m <= ((uint64_t)1 << 53) && exp10 >= -22 && exp10 <= 22) {
    double v = (double)m;
    v = exp10 < 0 ? v / exact_pow10[-exp10] : v * exact_pow10[exp10];
    lua_pushnumber(d->L, neg ? -v : v);
    return p;
  }
  return push_float_slow(d, s, p);
}

static const char *parse_value(decoder *d, const char *p);

/* Each container takes a depth step and makes room for itself, a key and a
 * value (plus a scratch replacement) once, not per element. */
static const char *enter(decoder *d, const char *at) {
  if (++d->depth > KP_JSON_MAX_DEPTH)
    return fail(d, at, "nesting deeper than 1000 levels");
  if (!lua_checkstack(d->L, 4))
    return fail(d, at, "nesting too deep for the Lua stack");
  return at;
}

/* p is just after '['. */
static const char *parse_array(decoder *d, const char *p) {
  lua_State *L = d->L;
  lua_Integer n = 0;
  if (enter(d, p - 1) == NULL)
    return NULL;
  lua_createtable(L, 0, 0);
  p = skip_ws(p);
  if (*p == ']') {
    d->depth--;
    return p + 1;
  }
  for (;;) {
    if ((p = parse_value(d, p)) == NULL)
      return NULL;
    lua_rawseti(L, -2, ++n);
    p = skip_ws(p);
    if (*p == ',') {
      p = skip_ws(p + 1);
    } else if (*p == ']') {
      d->depth--;
      return p + 1;
    } else {
      return fail_at(d, p, "expected ',' or ']'");
    }
  }
}

/* p is just after '{'. */
static const char *parse_object(decoder *d, const char *p) {
  lua_State *L = d->L;
  if (enter(d, p - 1) == NULL)
    return NULL;
  lua_createtable(L, 0, 0);
  p = skip_ws(p);
  if (*p == '}') {
    d->depth--;
    return p + 1;
  }
  for (;;) {
    if (*p != '"')
      return fail_at(d, p, "expected string key");
    if ((p = parse_string(d, p + 1)) == NULL)
      return NULL;
    p = skip_ws(p);
    if (*p != ':')
      return fail_at(d, p, "expected ':'");
    p = skip_ws(p + 1);
    if (p[0] == 'n' && p[1] == 'u' && p[2] == 'l' && p[3] == 'l') {
      /* null member: the key is absent (a raw set of nil also clears an
       * earlier duplicate, so the last occurrence wins as for values) */
      lua_pushnil(L);
      lua_rawset(L, -3);
      p += 4;
    } else {
      if ((p = parse_value(d, p)) == NULL)
        return NULL;
      lua_rawset(L, -3);
    }
    p = skip_ws(p);
    if (*p == ',') {
      p = skip_ws(p + 1);
    } else if (*p == '}') {
      d->depth--;
      return p + 1;
    } else {
      return fail_at(d, p, "expected ',' or '}'");
    }
  }
}

static const char *parse_value(decoder *d, const char *p) {
  switch (*p) {
  case '{': return parse_object(d, p + 1);
  case '[': return parse_array(d, p + 1);
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

int kp_json_decode(lua_State *L, const char *text, size_t len,
                   kp_json_error *err) {
  decoder d;
  int base = lua_gettop(L);
  const char *p;
  luaL_checkstack(L, 4, "kpayment.decode");
  lua_pushnil(L);               /* the scratch slot, filled on demand */
  d.L = L;
  d.start = text;
  d.end = text + len;
  d.depth = 0;
  d.scratch_idx = base + 1;
  d.scratch = NULL;
  d.scratch_cap = 0;
  d.err = err;
  err->what = NULL;
  err->pos = 0;
  p = parse_value(&d, skip_ws(text));
  if (p != NULL && (p = skip_ws(p)) != d.end)
    p = fail(&d, p, "unexpected data after the value");
  if (p == NULL) {
    lua_settop(L, base);
    return 0;
  }
  lua_remove(L, base + 1);      /* the scratch slot goes; the value stays */
  return 1;
}

const char *kp_json_message(const kp_json_error *err, char *buf, size_t size) {
  snprintf(buf, size, "%s at byte %lu", err->what ? err->what : "error",
           (unsigned long)err->pos);
  return buf;
}
