/*
 * kp_h1.c -- an HTTP/1.x response read piece by piece (see kp_h1.h).
 *
 * Lines (status, headers, chunk sizes, trailers) are read in place when a
 * piece holds them whole, and gathered in p->line when they are split; a
 * line ends at LF, a CR before it is dropped.  Body bytes go straight to
 * the body buffer, sized once from Content-Length.
 */
#include <string.h>
#include "kp_h1.h"
#include "kp_result.h"

enum {
  S_STATUS, S_HEADER, S_BODY_LEN, S_BODY_EOF, S_CHUNK_SIZE, S_CHUNK_DATA,
  S_CHUNK_END, S_TRAILER, S_DONE, S_FAIL
};

void kp_h1_init(kp_h1 *p, size_t max_body) {
  kp_h1_free(p);
  memset(p, 0, sizeof *p);
  p->state = S_STATUS;
  p->max_body = max_body;
}

void kp_h1_free(kp_h1 *p) {
  kp_buf_free(&p->line);
}

static int fail(kp_h1 *p, int why, const char *message) {
  p->state = S_FAIL;
  p->fail = why;
  p->message = message;
  kp_buf_free(&p->line);
  return KP_H1_FAIL;
}

static int lower(int c) {
  return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Whether s[0..n) is `word`, ignoring case. */
static int is(const char *s, size_t n, const char *word) {
  size_t i;
  if (strlen(word) != n)
    return 0;
  for (i = 0; i < n; i++)
    if (lower((unsigned char)s[i]) != word[i])
      return 0;
  return 1;
}

static void trim(const char **s, size_t *n) {
  while (*n > 0 && (**s == ' ' || **s == '\t')) {
    (*s)++;
    (*n)--;
  }
  while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
    (*n)--;
}

/* The next comma-separated element of a list header, trimmed; 0 at the
 * end.  *s and *n move past it. */
static int next_item(const char **s, size_t *n, const char **item, size_t *len) {
  const char *comma;
  while (*n > 0 && (**s == ',' || **s == ' ' || **s == '\t')) {
    (*s)++;
    (*n)--;
  }
  if (*n == 0)
    return 0;
  comma = memchr(*s, ',', *n);
  *item = *s;
  *len = comma ? (size_t)(comma - *s) : *n;
  *s += *len;
  *n -= *len;
  trim(item, len);
  return 1;
}

/* "HTTP/1.x SSS[ reason]" */
static int status_line(kp_h1 *p, const char *s, size_t n) {
  if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || s[7] < '0' || s[7] > '9' ||
      s[8] != ' ' || s[9] < '1' || s[9] > '9' || s[10] < '0' || s[10] > '9' ||
      s[11] < '0' || s[11] > '9' || (n > 12 && s[12] != ' '))
    return fail(p, KP_H1_BAD, "the server's answer is not an HTTP/1.x status line");
  p->minor = s[7] - '0';
  p->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
  if (p->status == 101)
    return fail(p, KP_H1_BAD, "the server switched protocols (101), which was not asked for");
  p->close = p->keep_alive = p->chunked = p->has_length = 0;
  p->length = 0;
  p->state = S_HEADER;
  return KP_H1_MORE;
}

const char *kp_h1_content_length(const char *v, size_t n, int *has_length, uint64_t *length) {
  const char *item;
  size_t len, i;
  int items = 0;
  while (next_item(&v, &n, &item, &len)) {
    uint64_t x = 0;
    items++;
    if (len == 0 || len > 18)
      return "the response has a bad Content-Length";
    for (i = 0; i < len; i++) {
      if (item[i] < '0' || item[i] > '9')
        return "the response has a bad Content-Length";
      x = x * 10 + (uint64_t)(item[i] - '0');
    }
    if (*has_length && x != *length)
      return "the response has two different Content-Lengths";
    *has_length = 1;
    *length = x;
  }
  return items == 0 ? "the response has a bad Content-Length" : NULL;
}

/* Content-Length: digits, or a list of one value repeated. */
static int content_length(kp_h1 *p, const char *v, size_t n) {
  int has = p->has_length;
  uint64_t length = p->length;
  const char *why = kp_h1_content_length(v, n, &has, &length);
  if (why != NULL)
    return fail(p, KP_H1_BAD, why);
  p->has_length = has;
  p->length = length;
  return KP_H1_MORE;
}

/* Transfer-Encoding: only chunked (last) is read; identity means none. */
static int transfer_encoding(kp_h1 *p, const char *v, size_t n) {
  const char *item;
  size_t len;
  while (next_item(&v, &n, &item, &len)) {
    if (p->chunked)             /* a coding applied after chunked */
      return fail(p, KP_H1_BAD, "the response has a Transfer-Encoding after chunked");
    if (is(item, len, "chunked"))
      p->chunked = 1;
    else if (!is(item, len, "identity"))
      return fail(p, KP_H1_BAD, "the response has a Transfer-Encoding other than chunked");
  }
  return KP_H1_MORE;
}

static void connection(kp_h1 *p, const char *v, size_t n) {
  const char *item;
  size_t len;
  while (next_item(&v, &n, &item, &len)) {
    if (is(item, len, "close"))
      p->close = 1;
    else if (is(item, len, "keep-alive"))
      p->keep_alive = 1;
  }
}

/* No Accept-Encoding is sent, so any coding but identity is one the
 * decoder cannot read. */
static int content_encoding(kp_h1 *p, const char *v, size_t n) {
  const char *item;
  size_t len;
  while (next_item(&v, &n, &item, &len))
    if (!is(item, len, "identity"))
      return fail(p, KP_H1_BAD, "the response has a Content-Encoding that was not asked for");
  return KP_H1_MORE;
}

/* One header line of the final response (interim ones are skipped). */
static int header_line(kp_h1 *p, const char *s, size_t n, kp_h1_header_fn fn,
                       void *ud) {
  const char *colon, *v;
  size_t nlen, vlen, i;
  if (s[0] == ' ' || s[0] == '\t')
    return fail(p, KP_H1_BAD, "the response folds a header over two lines");
  colon = memchr(s, ':', n);
  if (colon == NULL || colon == s)
    return fail(p, KP_H1_BAD, "the response has a header line without a name");
  nlen = (size_t)(colon - s);
  for (i = 0; i < nlen; i++)
    if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 127)
      return fail(p, KP_H1_BAD, "the response has a header name that is not a token");
  if (p->status < 200)
    return KP_H1_MORE;
  v = colon + 1;
  vlen = n - nlen - 1;
  trim(&v, &vlen);
  if (is(s, nlen, "content-length")) {
    if (content_length(p, v, vlen) == KP_H1_FAIL)
      return KP_H1_FAIL;
  } else if (is(s, nlen, "transfer-encoding")) {
    if (transfer_encoding(p, v, vlen) == KP_H1_FAIL)
      return KP_H1_FAIL;
  } else if (is(s, nlen, "content-encoding")) {
    if (content_encoding(p, v, vlen) == KP_H1_FAIL)
      return KP_H1_FAIL;
  } else if (is(s, nlen, "connection")) {
    connection(p, v, vlen);
  }
  if (fn != NULL)
    fn(ud, s, nlen, v, vlen);
  return KP_H1_MORE;
}

/* The empty line after the headers: the body's framing. */
static int end_of_head(kp_h1 *p, kp_buf *body) {
  if (p->status < 200) {        /* interim: the real response follows */
    p->state = S_STATUS;
    return KP_H1_MORE;
  }
  p->final = 1;
  /* HTTP/1.0 keeps a connection only when asked, and never one whose body
   * was chunked (RFC 9112 6.1: a 1.0 peer cannot have sent it rightly) */
  if (p->minor == 0 && (!p->keep_alive || p->chunked))
    p->close = 1;
  if (p->status == 204 || p->status == 304) {
    p->state = S_DONE;
    return KP_H1_DONE;
  }
  if (p->chunked) {
    if (p->has_length)          /* RFC 9112 6.3: chunked wins, and no reuse */
      p->close = 1;
    p->state = S_CHUNK_SIZE;
    return KP_H1_MORE;
  }
  if (p->has_length) {
    if (p->length > p->max_body)
      return fail(p, KP_H1_TOO_LARGE, KP_MSG_LENGTH_TOO_LARGE);
    if (p->length == 0) {
      p->state = S_DONE;
      return KP_H1_DONE;
    }
    if (kp_buf_reserve(body, (size_t)p->length) != 0)
      return fail(p, KP_H1_NOMEM, "not enough memory");
    p->left = p->length;
    p->state = S_BODY_LEN;
    return KP_H1_MORE;
  }
  p->close = 1;                 /* the body ends with the connection */
  p->state = S_BODY_EOF;
  return KP_H1_MORE;
}

/* "hex[;extensions]" */
static int chunk_size(kp_h1 *p, const char *s, size_t n, kp_buf *body) {
  uint64_t x = 0;
  size_t i = 0;
  while (i < n && i < 16) {
    int c = lower((unsigned char)s[i]), d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else
      break;
    x = x * 16 + (uint64_t)d;
    i++;
  }
  while (i < n && (s[i] == ' ' || s[i] == '\t'))
    i++;
  if (i == 0 || (i < n && s[i] != ';'))
    return fail(p, KP_H1_BAD, "the response has a bad chunk size");
  if (x == 0) {
    p->state = S_TRAILER;
    return KP_H1_MORE;
  }
  if (x > p->max_body - body->len)
    return fail(p, KP_H1_TOO_LARGE, KP_MSG_TOO_LARGE);
  p->left = x;
  p->state = S_CHUNK_DATA;
  return KP_H1_MORE;
}

/* A complete line s[0..n) (no LF, no CR before it) in state p->state. */
static int line(kp_h1 *p, const char *s, size_t n, kp_buf *body,
                kp_h1_header_fn fn, void *ud) {
  switch (p->state) {
  case S_STATUS:
    return status_line(p, s, n);
  case S_HEADER:
    return n == 0 ? end_of_head(p, body) : header_line(p, s, n, fn, ud);
  case S_CHUNK_SIZE:
    return chunk_size(p, s, n, body);
  case S_CHUNK_END:
    if (n != 0)
      return fail(p, KP_H1_BAD, "the response has a chunk longer than its size");
    p->state = S_CHUNK_SIZE;
    return KP_H1_MORE;
  default:                      /* S_TRAILER: ignored, up to the empty line */
    if (n == 0) {
      p->state = S_DONE;
      return KP_H1_DONE;
    }
    return KP_H1_MORE;
  }
}

/* Bytes of the current body part (Content-Length, chunk, or to the end). */
static int body_bytes(kp_h1 *p, const char *s, size_t n, size_t *took,
                      kp_buf *body) {
  size_t k = n;
  if (p->state != S_BODY_EOF && (uint64_t)k > p->left)
    k = (size_t)p->left;
  if (p->state == S_BODY_EOF && k > p->max_body - body->len)
    return fail(p, KP_H1_TOO_LARGE, KP_MSG_TOO_LARGE);
  if (kp_buf_append(body, s, k) != 0)
    return fail(p, KP_H1_NOMEM, "not enough memory");
  *took = k;
  if (p->state == S_BODY_EOF)
    return KP_H1_MORE;
  p->left -= k;
  if (p->left > 0)
    return KP_H1_MORE;
  if (p->state == S_CHUNK_DATA) {
    p->state = S_CHUNK_END;
    return KP_H1_MORE;
  }
  p->state = S_DONE;
  return KP_H1_DONE;
}

static int line_state(int state) {
  return state == S_STATUS || state == S_HEADER || state == S_CHUNK_SIZE ||
         state == S_CHUNK_END || state == S_TRAILER;
}

/* Lines of the head (and trailers) count against KP_H1_MAX_HEAD. */
static int head_state(int state) {
  return state == S_STATUS || state == S_HEADER || state == S_TRAILER;
}

int kp_h1_feed(kp_h1 *p, const char *data, size_t n, int eof, size_t *used,
               kp_buf *body, kp_h1_header_fn fn, void *ud) {
  size_t at = 0;
  int rc = KP_H1_MORE;
  *used = 0;
  if (p->state == S_DONE)
    return KP_H1_DONE;
  if (p->state == S_FAIL)
    return KP_H1_FAIL;
  while (at < n && rc == KP_H1_MORE) {
    const char *s = data + at;
    size_t avail = n - at;
    if (line_state(p->state)) {
      const char *lf = memchr(s, '\n', avail);
      size_t take = lf ? (size_t)(lf - s) + 1 : avail;
      size_t len;
      /* A line's length counts as its bytes come, the head's size once a
       * line is whole: which limit a response breaks must not depend on
       * where the pieces were cut. */
      if (p->line.len + take > KP_H1_MAX_LINE)
        return fail(p, KP_H1_BAD, "the response has a line over 8192 bytes");
      if (lf != NULL && head_state(p->state) &&
          (p->head += p->line.len + take) > KP_H1_MAX_HEAD)
        return fail(p, KP_H1_BAD, "the response's head is over 65536 bytes");
      at += take;
      if (lf == NULL || p->line.len > 0) {      /* split: gather it */
        if (kp_buf_append(&p->line, s, take) != 0)
          return fail(p, KP_H1_NOMEM, "not enough memory");
        if (lf == NULL)
          break;
        s = p->line.data;
        take = p->line.len;
      }
      len = take - 1;
      if (len > 0 && s[len - 1] == '\r')
        len--;
      rc = line(p, s, len, body, fn, ud);
      p->line.len = 0;
    } else {
      size_t took = 0;
      rc = body_bytes(p, s, avail, &took, body);
      at += took;
    }
  }
  *used = at;
  if (rc != KP_H1_MORE || !eof)
    return rc;
  if (p->state == S_BODY_EOF) {
    p->state = S_DONE;
    return KP_H1_DONE;
  }
  p->retryable = 1;
  if (p->state == S_STATUS && p->head == 0 && p->line.len == 0)
    return fail(p, KP_H1_BAD, "the server closed the connection without answering");
  return fail(p, KP_H1_BAD, "the response was cut short");
}

int kp_h1_reusable(const kp_h1 *p) {
  return p->state == S_DONE && !p->close;
}
