/*
 * http_problem.h — the one place that builds HTTP error answers (application/problem+json,
 * RFC 9457) and counts them per code, like Redis' addReplyError/afterErrorReply:
 *   {"type":"https://metasync.dev/problems/malformed_json","title":"the body is not valid JSON",
 *    "status":400,"code":"malformed_json","detail":"…","line":3,"column":17,"offset":120}
 * Retriable codes answered with 503 carry `Retry-After`; 405 answers carry `Allow` with the
 * route's own methods. Every answer also carries the request path as "instance".
 * @locality any MHD connection thread
 */
#ifndef HTTP_PROBLEM_H
#define HTTP_PROBLEM_H

#include "ms_error.h"
#include "ms_metrics.h"

#include <microhttpd.h>

/* Queues the problem answer for err on conn; returns MHD_queue_response's result. */
enum MHD_Result ms_problem_send(struct MHD_Connection *conn, const char *path,
                                const ms_error *err, ms_metrics *metrics);
/* The 405 answer for a route that allows only the methods in allow ("GET, HEAD"): the Allow
 * header lists them and the detail says "use <allow>". Every 405 goes through here. */
enum MHD_Result ms_problem_send_method(struct MHD_Connection *conn, const char *path,
                                       const char *allow, ms_metrics *metrics);
/* Same as ms_problem_send, from a code and a detail string. */
enum MHD_Result ms_problem_send_code(struct MHD_Connection *conn, const char *path, ms_err code,
                                     const char *detail, ms_metrics *metrics);
/* Queues a JSON answer (body copied) with the given status. */
enum MHD_Result ms_api_json(struct MHD_Connection *conn, unsigned status, const char *body,
                             size_t len);

#endif
