/*
 * kp_common.h -- what every kpayment C file shares and that needs no Lua:
 * symbol visibility and the limits that options and parameters are checked
 * against (exported to Lua as core.LIMITS, so the Lua validator and the C
 * backstop use the same numbers).
 */
#ifndef KP_COMMON_H
#define KP_COMMON_H

/* Functions shared between our own files stay out of the exported ABI:
 * only luaopen_kpayment_core is public. */
#if defined(__GNUC__) && !defined(_WIN32)
#define KP_HIDDEN __attribute__((visibility("hidden")))
#define KP_EXPORT __attribute__((visibility("default")))
#else
#define KP_HIDDEN
#define KP_EXPORT
#endif

#define KP_VERSION "0.2.0"

/* Longest timeout in seconds: as milliseconds it still fits a 32-bit long. */
#define KP_MAX_SECONDS 86400
/* Largest max_body, in bytes: exact in a double, fits every size_t we run on
 * as a 64-bit build; 32-bit builds clamp to SIZE_MAX / 2. */
#define KP_MAX_BODY 4503599627370496.0      /* 2^52 */
/* Bytes of an undecodable body kept in an error (before redaction the
 * snippet may be asked longer, so a secret cut at the limit is still seen). */
#define KP_SNIPPET 512
#define KP_MAX_SNIPPET 65536

/* The defaults of the options that C applies (exported as core.DEFAULTS,
 * which the Lua side and the docs read). */
#define KP_DEFAULT_TIMEOUT 30             /* seconds per attempt */
#define KP_DEFAULT_CONNECT_TIMEOUT 10     /* seconds */
#define KP_DEFAULT_MAX_BODY 67108864.0    /* 64 MiB */
#define KP_DEFAULT_POOL_SIZE 32           /* idle connections kept */
#define KP_DEFAULT_POOL_IDLE 60           /* seconds an idle one is kept */
#define KP_MAX_POOL_SIZE 10000

#include <time.h>

/* Milliseconds from an arbitrary start, never going back: the clock of
 * every budget (a poll's network work, a decode's steps). */
static inline double kp_monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

#endif
