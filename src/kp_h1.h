/*
 * kp_h1.h -- an HTTP/1.x response read piece by piece: the framing of the
 * transports that are not libcurl (nginx's cosockets).  No Lua and no I/O:
 * the caller feeds the bytes it received, in pieces of any size, and the
 * parser fills the body buffer and reports each header to a callback.
 *
 * What it takes: a status line (HTTP/1.0 or 1.1), headers, interim 1xx
 * responses (skipped), a body framed by Content-Length, by chunked
 * transfer coding (extensions and trailers allowed) or by the connection's
 * end.  What it refuses, as a framing error: a status line or header that
 * is not HTTP, a line or head over its limit, a bad or conflicting
 * Content-Length, a bad chunk size, another transfer or content coding
 * (none is asked for), a body cut short, and a body over max_body.
 */
#ifndef KP_H1_H
#define KP_H1_H

#include <stddef.h>
#include <stdint.h>
#include "kp_buf.h"
#include "kp_common.h"

/* Longest line (status, header, chunk size), and the most bytes of
 * status lines and headers all interim responses and the final one may
 * take together: a flood of 1xx responses ends there too. */
#define KP_H1_MAX_LINE 8192
#define KP_H1_MAX_HEAD 65536

/* What kp_h1_feed returns. */
enum { KP_H1_MORE, KP_H1_DONE, KP_H1_FAIL };

/* How a failure is classed: a framing error, a body over max_body, or
 * memory that ran out while storing the body. */
enum { KP_H1_BAD = 1, KP_H1_TOO_LARGE, KP_H1_NOMEM };

/* Called for each header of the final response (name as sent, value
 * without surrounding blanks); interim responses' headers are skipped. */
typedef void (*kp_h1_header_fn)(void *ud, const char *name, size_t nlen,
                                const char *value, size_t vlen);

typedef struct kp_h1 {
  int state;
  int status;                   /* of the response being read */
  int final;                    /* its head is complete, and it is not a 1xx */
  int minor;                    /* HTTP/1.minor */
  int close;                    /* the connection ends after this response */
  int keep_alive;               /* "Connection: keep-alive" (HTTP/1.0) */
  int chunked;
  int has_length;
  uint64_t length;              /* Content-Length */
  uint64_t left;                /* of the body or of the current chunk */
  size_t max_body;
  size_t head;                  /* bytes of status lines and headers so far */
  int fail;                     /* KP_H1_BAD, ... once failed */
  int retryable;                /* the failure may not happen again (cut short) */
  const char *message;          /* why, once failed (a static string) */
  kp_buf line;                  /* a line split across pieces, until its end */
} kp_h1;

/* p must be zeroed or freed; kp_h1_free releases what a split line took
 * (a parser lives in a userdata whose __gc calls it). */
KP_HIDDEN void kp_h1_init(kp_h1 *p, size_t max_body);
KP_HIDDEN void kp_h1_free(kp_h1 *p);

/*
 * Feed n bytes (n == 0 with eof: the peer closed the connection).  Body
 * bytes go to *body.  Returns KP_H1_MORE, KP_H1_DONE (the response is
 * complete; *used bytes of this piece belong to it) or KP_H1_FAIL
 * (p->fail and p->message say why).  Feeding after DONE or FAIL returns
 * the same again.
 */
KP_HIDDEN int kp_h1_feed(kp_h1 *p, const char *data, size_t n, int eof,
                         size_t *used, kp_buf *body, kp_h1_header_fn fn,
                         void *ud);

/* A Content-Length header's value (digits, or a list of one value
 * repeated) against the length already read, if any (*has_length): NULL
 * with the length set, or why it breaks the framing.  libcurl's transport
 * checks its headers with it too, so both frame alike. */
KP_HIDDEN const char *kp_h1_content_length(const char *v, size_t n, int *has_length,
                                           uint64_t *length);

/* Whether the connection may carry another request once the response is
 * complete with nothing after it. */
KP_HIDDEN int kp_h1_reusable(const kp_h1 *p);

/* Whether a failure is one another attempt may not meet: a connection
 * that ended too early (no answer, or a response cut short), as opposed to
 * a server that does not speak HTTP as it should. */
#define kp_h1_retryable(p) ((p)->retryable)

#endif
