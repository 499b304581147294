/*
 * fuzz_h1.c -- libFuzzer target for the HTTP/1.x response parser (kp_h1.c).
 *
 * The parser reads what a socket handed over, and a socket hands over
 * whatever the kernel had: the same response may come in one piece, in
 * many, or a byte at a time, and each must give what the whole gives.  So
 * this target is a differential one, not only a crash finder.  An input is
 * a few bytes saying how to feed it, then the response:
 *
 *   byte 0   flags: bit 0, the peer closes the connection after the last
 *            byte (EOF); bit 1, also feed it in small pieces; bit 2,
 *            the pieces way passes EOF with its last piece instead of in
 *            an empty feed of its own; bits 4-5 say how byte 1 makes
 *            max_body: b, b * 64, b * 4096, or 1 MiB
 *   byte 1   max_body (b above; 0 too, though Lua never asks for it)
 *   byte 2   low 4 bits: how many cut points follow (0-15)
 *   then     2 bytes per cut point (little endian), a position in the
 *            response modulo its length + 1; any order, repeats allowed
 *            (they make empty pieces)
 *   the rest the response (FUZZ_H1_MAX_LEN bytes in all, at most)
 *
 * The response is fed to kp_h1_feed whole, in the pieces the cut points
 * make (sorted), and (bit 1) in small pieces: one byte at a time, or for a
 * response over SMALL_FEEDS bytes in SMALL_FEEDS pieces of equal size (a
 * byte at a time through a long head costs more than all the rest of an
 * input, and libFuzzer would spend its time there).  Each way gets EOF
 * after the response when bit 0 says so, then more bytes and EOF again
 * once it ended.  Every way must give the same: result code; failure
 * class, message and retryable flag; status and whether the head was final; where in the response the
 * response ended (DONE); kp_h1_reusable; the headers given to the
 * callback, in order, byte for byte; and the body -- byte for byte, except
 * after a body_too_large failure, where a way that had pieces may hold
 * the bytes that fitted before the one that did not (only a prefix of the
 * longest).  After every single feed: the code is MORE, DONE or FAIL; *used
 * <= the piece's length, and == it on MORE; EOF never leaves MORE; the body
 * never shrinks and never passes max_body; a failure has a class and a
 * message, and only EOF makes it retryable; DONE has a final head, and a
 * body of exactly Content-Length when that framed it (none for 204 and
 * 304).  After DONE or FAIL every feed returns the same code again, uses
 * nothing, calls no callback and leaves the body alone.  The callback
 * itself checks what it is given: a final response's header, a name that
 * is a token, a value without LF and without surrounding blanks.
 *
 * Any disagreement or broken promise calls abort(), which libFuzzer
 * reports as a crash, keeping the input.  A response the parser refuses is
 * no finding: it must only be refused alike however it is cut.
 *
 * No Lua here: the parser has none, and its binding (kp_report.c) only
 * copies what this checks into the request's result.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kp_h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CUTS 15
#define SMALL_FEEDS 512

/* One way of feeding the response: its parser and what came out of it. */
typedef struct way {
  const char *name;
  kp_h1 p;
  kp_buf body;
  kp_buf heads;                 /* headers seen: nlen, name, vlen, value... */
  size_t nheads;
  int rc;                       /* of the last feed */
  size_t fed;                   /* response bytes the parser took so far */
  size_t end;                   /* DONE: where in the response it ended */
} way;

static void die(const way *w, const char *what) {
  fprintf(stderr, "fuzz_h1: %s%s%s\n", w ? w->name : "", w ? ": " : "", what);
  abort();
}

static void die2(const way *a, const way *b, const char *what) {
  fprintf(stderr, "fuzz_h1: the %s and %s ways differ: %s\n", a->name, b->name, what);
  abort();
}

static void keep(way *w, const void *s, size_t n) {
  if (kp_buf_append(&w->heads, (const char *)s, n) != 0)
    die(w, "out of memory keeping a header");
}

static void on_header(void *ud, const char *name, size_t nlen, const char *value,
                      size_t vlen) {
  way *w = (way *)ud;
  size_t i;
  if (w->rc != KP_H1_MORE)
    die(w, "a header after the response ended");
  if (w->p.status < 200 || w->p.final)
    die(w, "a header that is not one of the final response's head");
  if (nlen == 0)
    die(w, "a header without a name");
  for (i = 0; i < nlen; i++)
    if ((unsigned char)name[i] <= ' ' || (unsigned char)name[i] >= 127 || name[i] == ':')
      die(w, "a header name that is not a token");
  if (vlen > 0 && (value[0] == ' ' || value[0] == '\t' || value[vlen - 1] == ' ' ||
                   value[vlen - 1] == '\t'))
    die(w, "a header value with blanks around it");
  if (vlen > 0 && memchr(value, '\n', vlen) != NULL)
    die(w, "a header value with a line feed");
  keep(w, &nlen, sizeof nlen);
  keep(w, name, nlen);
  keep(w, &vlen, sizeof vlen);
  keep(w, value, vlen);
  w->nheads++;
}

/* Feed n bytes (data NULL, n 0: only EOF) and check each promise of
 * kp_h1_feed on the answer. */
static void feed(way *w, const char *data, size_t n, int eof) {
  size_t used = (size_t)-1, before = w->body.len, heads = w->nheads;
  int rc = kp_h1_feed(&w->p, data, n, eof, &used, &w->body, on_header, w);
  if (rc != KP_H1_MORE && rc != KP_H1_DONE && rc != KP_H1_FAIL)
    die(w, "kp_h1_feed returned something else than MORE, DONE or FAIL");
  if (used > n)
    die(w, "*used is over the piece's length");
  if (w->body.len < before)
    die(w, "the body shrank");
  if (w->body.len > w->p.max_body)
    die(w, "the body is over max_body");
  if (w->rc != KP_H1_MORE) {            /* it had ended */
    if (rc != w->rc)
      die(w, "a feed after the end returned another code");
    if (used != 0 || w->body.len != before || w->nheads != heads)
      die(w, "a feed after the end used bytes, filled the body or gave headers");
    return;
  }
  if (rc == KP_H1_MORE && used != n)
    die(w, "MORE without taking the whole piece");
  if (rc == KP_H1_MORE && eof)
    die(w, "MORE after EOF");
  if (rc == KP_H1_FAIL) {
    if (w->p.fail != KP_H1_BAD && w->p.fail != KP_H1_TOO_LARGE && w->p.fail != KP_H1_NOMEM)
      die(w, "a failure without a class");
    if (w->p.message == NULL || w->p.message[0] == '\0')
      die(w, "a failure without a message");
    if (kp_h1_retryable(&w->p) && (!eof || w->p.fail != KP_H1_BAD))
      die(w, "a retryable failure that EOF did not cause");
  }
  if (rc != KP_H1_FAIL && w->p.fail != 0)
    die(w, "a failure class without a failure");
  if (rc == KP_H1_DONE) {
    if (!w->p.final || w->p.status < 200)
      die(w, "DONE without a final head");
    if ((w->p.status == 204 || w->p.status == 304) && w->body.len != 0)
      die(w, "a body for a 204 or 304");
    else if (w->p.status != 204 && w->p.status != 304 && w->p.has_length &&
             !w->p.chunked && w->body.len != w->p.length)
      die(w, "DONE with a body that is not Content-Length long");
    w->end = w->fed + used;
  }
  w->fed += used;
  w->rc = rc;
}

/* After the response: more bytes, and EOF, must change nothing. */
static void feed_after_end(way *w, const char *text, size_t len) {
  if (w->rc == KP_H1_MORE)
    return;
  feed(w, text, len, 0);
  feed(w, "HTTP/1.1 200 OK\r\n\r\n", 19, 0);
  feed(w, NULL, 0, 1);
}

static void start(way *w, const char *name, size_t max_body) {
  memset(w, 0, sizeof *w);
  w->name = name;
  kp_h1_init(&w->p, max_body);
  w->rc = KP_H1_MORE;
}

static void finish(way *w) {
  kp_h1_free(&w->p);
  kp_buf_free(&w->body);
  kp_buf_free(&w->heads);
}

static int by_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

static void compare(const way *a, const way *b) {
  size_t n;
  if (a->rc != b->rc)
    die2(a, b, "result code");
  if (a->p.fail != b->p.fail)
    die2(a, b, "failure class");
  if (a->rc == KP_H1_FAIL && strcmp(a->p.message, b->p.message) != 0) {
    fprintf(stderr, "fuzz_h1: %s: %s\nfuzz_h1: %s: %s\n", a->name, a->p.message, b->name,
            b->p.message);
    die2(a, b, "failure message");
  }
  if (kp_h1_retryable(&a->p) != kp_h1_retryable(&b->p))
    die2(a, b, "retryable");
  if (a->p.status != b->p.status || a->p.final != b->p.final)
    die2(a, b, "status");
  if (a->rc == KP_H1_DONE && a->end != b->end)
    die2(a, b, "where the response ended");
  if (kp_h1_reusable(&a->p) != kp_h1_reusable(&b->p))
    die2(a, b, "reusable");
  if (a->nheads != b->nheads || a->heads.len != b->heads.len ||
      (a->heads.len > 0 && memcmp(a->heads.data, b->heads.data, a->heads.len) != 0))
    die2(a, b, "headers seen by the callback");
  n = a->body.len < b->body.len ? a->body.len : b->body.len;
  if (n > 0 && memcmp(a->body.data, b->body.data, n) != 0)
    die2(a, b, "body bytes");
  if (a->body.len != b->body.len && !(a->rc == KP_H1_FAIL && a->p.fail == KP_H1_TOO_LARGE))
    die2(a, b, "body length");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static way ways[3];
  size_t cuts[MAX_CUTS + 1];
  size_t ncuts, i, len, max_body, at;
  const char *text;
  int flags, eof, nways = 2;
  if (size < 3)
    return 0;
  flags = data[0];
  eof = flags & 1;
  switch ((flags >> 4) & 3) {
  case 0: max_body = data[1]; break;
  case 1: max_body = (size_t)data[1] * 64; break;
  case 2: max_body = (size_t)data[1] * 4096; break;
  default: max_body = (size_t)1 << 20; break;
  }
  ncuts = data[2] & 15;
  if (size < 3 + 2 * ncuts)
    return 0;
  text = (const char *)data + 3 + 2 * ncuts;
  len = size - 3 - 2 * ncuts;
  for (i = 0; i < ncuts; i++)
    cuts[i] = ((size_t)data[3 + 2 * i] | (size_t)data[4 + 2 * i] << 8) % (len + 1);
  qsort(cuts, ncuts, sizeof cuts[0], by_size);
  cuts[ncuts] = len;

  /* whole, then EOF in a feed of its own */
  start(&ways[0], "whole", max_body);
  feed(&ways[0], text, len, 0);
  if (eof)
    feed(&ways[0], NULL, 0, 1);

  /* in pieces; with bit 2 EOF comes with the last one */
  start(&ways[1], "pieces", max_body);
  for (at = 0, i = 0; i <= ncuts; i++) {
    int last = i == ncuts;
    feed(&ways[1], text + at, cuts[i] - at, last && eof && (flags & 4));
    at = cuts[i];
  }
  if (eof && !(flags & 4))
    feed(&ways[1], NULL, 0, 1);

  if (flags & 2) {
    size_t step = len > SMALL_FEEDS ? (len + SMALL_FEEDS - 1) / SMALL_FEEDS : 1;
    start(&ways[2], step == 1 ? "byte-by-byte" : "small-pieces", max_body);
    for (i = 0; i < len; i += step)
      feed(&ways[2], text + i, len - i < step ? len - i : step, 0);
    if (eof)
      feed(&ways[2], NULL, 0, 1);
    nways = 3;
  }

  for (i = 1; i < (size_t)nways; i++)
    compare(&ways[0], &ways[i]);
  for (i = 0; i < (size_t)nways; i++) {
    feed_after_end(&ways[i], text, len);
    finish(&ways[i]);
  }
  return 0;
}
