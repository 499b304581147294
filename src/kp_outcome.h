/*
 * kp_outcome.h -- a finished transfer as one named Lua value: success, or
 * which kind of failure and whether another attempt may help, with the
 * body decoded.  A response is judged here, from its status and body
 * (http, decode; kp_status_retryable in kp_result.c); a transport failure
 * arrives already classified by its transport (libcurl's codes: classify
 * in kp_http.c; the others: kp_report.c) and is only copied out.
 */
#ifndef KP_OUTCOME_H
#define KP_OUTCOME_H

#include "kp_compat.h"
#include "kp_buf.h"
#include "kp_result.h"
#include "kp_json.h"

/* The member of a 2xx body that holds the offers: it must be an array of
 * objects when present, and the body an object. */
#define KP_RECORDS "financeOffers"

/*
 * The records' metatable, set once per state by core.record_metatable
 * (the wrapper's Offer): pushed (nil when none), and its absolute index
 * returned for kp_json_opts.meta, 0 when none.
 */
KP_HIDDEN int kp_outcome_push_meta(lua_State *L);
KP_HIDDEN void kp_outcome_set_meta(lua_State *L, int idx);

/*
 * Push the outcome table of a transfer that ended with *r and whose body
 * is *body (r and body must stay valid across Lua allocations: the caller
 * copies r and keeps body in a userdata anchored on the stack).  paths: a
 * projection for a 2xx body, or NULL.  snippet: bytes of an undecodable body
 * kept.  Fields:
 *   kind        nil on success; "network", "timeout", "tls",
 *               "body_too_large", "cancelled", "http" or "decode"
 *   retryable   whether another attempt may succeed
 *   status      HTTP status, when a response arrived
 *   value       the decoded body of a 2xx
 *   errors, warnings  the API's arrays from an error body
 *   message     the transport's or the decoder's message, for those kinds
 *   curl_code   libcurl's code, for failures of the libcurl transport
 *   body        the first bytes of a body that did not decode or is not the
 *               API's error
 *   total_time, retry_after, request_id   what the response said
 * Raises only for out-of-memory (a body that could not be stored too).
 */
KP_HIDDEN void kp_outcome_push(lua_State *L, const kp_result *r, const kp_buf *body,
                               const kp_json_path *paths, size_t snippet);

/*
 * The same for a 2xx (kp_result_success) whose body the caller decoded
 * itself, in steps (kp_json_decode_step with records KP_RECORDS): decoded
 * is what the decode returned, with the value at -1 (replaced by the
 * outcome) when 1, or the error in *jerr when 0.
 */
KP_HIDDEN void kp_outcome_push_decoded(lua_State *L, const kp_result *r,
                                       const kp_buf *body, int decoded,
                                       const kp_json_error *jerr, size_t snippet);

#endif
