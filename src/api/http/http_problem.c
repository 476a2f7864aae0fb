/* http_problem.c — problem+json answers, built in one place (see http_problem.h). */
#include "http_problem.h"

#include "ms_buf.h"

#include <stdio.h>
#include <string.h>

enum MHD_Result ms_api_json(struct MHD_Connection *conn, unsigned status, const char *body,
                             size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* Builds and queues the problem answer; allow (405 only) is the Allow header's value. */
static enum MHD_Result problem_send(struct MHD_Connection *conn, const char *path,
                                    const ms_error *err, const char *allow, ms_metrics *metrics)
{
    ms_err code = err->code > MS_OK && err->code < MS_ERR__COUNT ? err->code : MS_ERR_INTERNAL;
    int status = ms_err_http_status(code);
    if (metrics) atomic_fetch_add(&metrics->http_problems[code], 1);
    ms_buf b = MS_BUF_INIT;
    ms_buf_printf(&b, "{\"type\":\"https://metasync.dev/problems/%s\",\"title\":",
                  ms_err_code(code));
    ms_buf_put_jstr(&b, ms_err_message(code));
    ms_buf_printf(&b, ",\"status\":%d,\"code\":\"%s\",\"detail\":", status, ms_err_code(code));
    ms_buf_put_jstr(&b, err->detail[0] ? err->detail : ms_err_message(code));
    if (err->line > 0) ms_buf_printf(&b, ",\"line\":%ld,\"column\":%ld", err->line, err->column);
    if (err->offset >= 0 && (err->line > 0 || code == MS_ERR_MALFORMED_JSON))
        ms_buf_printf(&b, ",\"offset\":%ld", err->offset);
    if (path) {
        ms_buf_puts(&b, ",\"instance\":");
        ms_buf_put_jstr(&b, path);
    }
    ms_buf_putc(&b, '}');
    struct MHD_Response *r =
        MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_COPY);
    ms_buf_free(&b);
    MHD_add_response_header(r, "Content-Type", "application/problem+json");
    if (ms_err_is_retriable(code) && status == 503) MHD_add_response_header(r, "Retry-After", "1");
    if (allow) MHD_add_response_header(r, "Allow", allow);
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

enum MHD_Result ms_problem_send(struct MHD_Connection *conn, const char *path,
                                const ms_error *err, ms_metrics *metrics)
{
    return problem_send(conn, path, err, NULL, metrics);
}

enum MHD_Result ms_problem_send_method(struct MHD_Connection *conn, const char *path,
                                       const char *allow, ms_metrics *metrics)
{
    ms_error e;
    ms_error_clear(&e);
    e.code = MS_ERR_METHOD;
    snprintf(e.detail, sizeof e.detail, "use %s", allow);
    return problem_send(conn, path, &e, allow, metrics);
}

enum MHD_Result ms_problem_send_code(struct MHD_Connection *conn, const char *path, ms_err code,
                                     const char *detail, ms_metrics *metrics)
{
    ms_error e;
    ms_error_clear(&e);
    e.code = code;
    snprintf(e.detail, sizeof e.detail, "%s", detail ? detail : "");
    return ms_problem_send(conn, path, &e, metrics);
}
