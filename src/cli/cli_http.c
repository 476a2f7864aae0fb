/*
 * cli_http.c — libcurl-based HTTP client of the client commands: transfers, retry policy, URL
 * encoding, problem+json and ingest-answer parsing, and shared command-line helpers
 * (see cli_http.h).
 */
#include "cli_http.h"

#include "ms_cli.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#ifndef MS_VERSION
#define MS_VERSION "dev"
#endif

/* ---- retry policy ---------------------------------------------------------------------------- */

void ms_http_policy_default(ms_http_policy *p)
{
    p->max_attempts = 8;
    p->retry_after_cap_ms = 30000;
    p->backoff_first_ms = 200;
    p->backoff_max_ms = 5000;
    p->connect_window_ms = 10000;
    p->notice = stderr;
}

/* Backoff for the n-th retry (0-based): first * 2^n, capped at max. */
static long backoff_ms(const ms_http_policy *p, int n)
{
    long d = p->backoff_first_ms > 0 ? p->backoff_first_ms : 1;
    for (int i = 0; i < n && d < p->backoff_max_ms; i++)
        d *= 2;
    return d > p->backoff_max_ms ? p->backoff_max_ms : d;
}

/* refused: no connection could be made (server down, name unknown). dropped: the connection
 * broke before a complete answer. transient_status: answers worth retrying. */
static bool refused(CURLcode cc)
{
    return cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
           cc == CURLE_COULDNT_RESOLVE_PROXY;
}

static bool dropped(CURLcode cc)
{
    return cc == CURLE_GOT_NOTHING || cc == CURLE_SEND_ERROR || cc == CURLE_RECV_ERROR ||
           cc == CURLE_PARTIAL_FILE;
}

static bool transient_status(long s)
{
    return s == 429 || s == 502 || s == 503 || s == 504;
}

bool ms_http_transient(const ms_http_resp *r)
{
    if (r->curl_code != CURLE_OK) return refused(r->curl_code) || dropped(r->curl_code);
    return transient_status(r->status);
}

long ms_http_next_delay(const ms_http_policy *p, ms_http_retry *st, const ms_http_resp *r,
                        unsigned long long now_ms)
{
    st->attempts++;
    if (r->curl_code != CURLE_OK && refused(r->curl_code)) {
        if (st->first_refused_ms == 0) st->first_refused_ms = now_ms;
        unsigned long long spent = now_ms - st->first_refused_ms;
        if (spent >= (unsigned long long)(p->connect_window_ms > 0 ? p->connect_window_ms : 0))
            return -1;
        long d = backoff_ms(p, st->connect_failures++);
        long left = (long)((unsigned long long)p->connect_window_ms - spent);
        return d < left ? d : left;
    }
    st->connect_failures = 0;
    st->first_refused_ms = 0;
    if (!ms_http_transient(r) || st->attempts >= p->max_attempts) return -1;
    if (r->curl_code == CURLE_OK && r->retry_after_ms >= 0) {
        long d = r->retry_after_ms < 100 ? 100 : r->retry_after_ms; /* "0" must not spin */
        return d < p->retry_after_cap_ms ? d : p->retry_after_cap_ms;
    }
    return backoff_ms(p, st->attempts - 1);
}

/* ---- transfers ------------------------------------------------------------------------------- */

ms_err ms_http_global_init(ms_error *err)
{
    CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cc != CURLE_OK)
        return ms_error_set(err, MS_ERR_INTERNAL, "libcurl: %s", curl_easy_strerror(cc));
    return MS_OK;
}

void ms_http_global_cleanup(void)
{
    curl_global_cleanup();
}

/* Empties r for a new request (keeps the body's capacity). */
static void resp_clear(ms_http_resp *r)
{
    r->status = 0;
    ms_buf_reset(&r->body);
    r->retry_after_ms = -1;
    r->content_type[0] = '\0';
    r->curl_code = CURLE_OK;
    r->errbuf[0] = '\0';
}

void ms_http_xfer_init(ms_http_xfer *x, volatile sig_atomic_t *stop)
{
    memset(x, 0, sizeof *x);
    x->easy = curl_easy_init();
    if (!x->easy) {
        fprintf(stderr, "metasync: out of memory creating an HTTP handle\n");
        abort();
    }
    ms_buf_init(&x->resp.body);
    resp_clear(&x->resp);
    x->stop = stop;
}

void ms_http_xfer_free(ms_http_xfer *x)
{
    if (x->easy) curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    ms_buf_free(&x->resp.body);
    x->easy = NULL;
    x->headers = NULL;
}

/* CURLOPT_WRITEFUNCTION: appends to the response body, refusing more than the cap. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    ms_http_resp *r = ud;
    size_t n = size * nmemb;
    if (r->body.len + n > (size_t)MS_HTTP_MAX_RESPONSE_BYTES) return 0;
    ms_buf_append(&r->body, data, n);
    return n;
}

/* Trims white space at both ends of s[0..*n) in place; returns the new start. */
static const char *trim(const char *s, size_t *n)
{
    while (*n && isspace((unsigned char)*s))
        s++, (*n)--;
    while (*n && isspace((unsigned char)s[*n - 1]))
        (*n)--;
    return s;
}

/* Parses a Retry-After value (delta seconds or an HTTP date) into milliseconds, -1 if invalid. */
static long parse_retry_after(const char *v, size_t n)
{
    char tmp[128];
    if (n == 0 || n >= sizeof tmp) return -1;
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    char *end;
    errno = 0;
    long long s = strtoll(tmp, &end, 10);
    if (end != tmp && *end == '\0') {
        if (s < 0 || errno) return -1;
        return s > 86400 ? 86400L * 1000 : (long)(s * 1000);
    }
    time_t t = curl_getdate(tmp, NULL);
    if (t == (time_t)-1) return -1;
    time_t now = time(NULL);
    return t <= now ? 0 : (t - now > 86400 ? 86400L * 1000 : (long)(t - now) * 1000);
}

/* CURLOPT_HEADERFUNCTION: picks Retry-After and Content-Type out of the final response. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    ms_http_resp *r = ud;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) { /* a new response (after 1xx or redirect) */
        r->retry_after_ms = -1;
        r->content_type[0] = '\0';
        return n;
    }
    const char *colon = memchr(data, ':', n);
    if (!colon) return n;
    size_t klen = (size_t)(colon - data);
    size_t vlen = n - klen - 1;
    const char *v = trim(colon + 1, &vlen);
    if (klen == 11 && strncasecmp(data, "Retry-After", 11) == 0) {
        r->retry_after_ms = parse_retry_after(v, vlen);
    } else if (klen == 12 && strncasecmp(data, "Content-Type", 12) == 0) {
        size_t i = 0;
        for (; i < vlen && v[i] != ';' && i + 1 < sizeof r->content_type; i++)
            r->content_type[i] = (char)tolower((unsigned char)v[i]);
        while (i > 0 && isspace((unsigned char)r->content_type[i - 1]))
            i--;
        r->content_type[i] = '\0';
    }
    return n;
}

/* CURLOPT_XFERINFOFUNCTION: aborts the transfer once the stop flag is set. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    ms_http_xfer *x = ud;
    return x->stop && *x->stop ? 1 : 0;
}

void ms_http_xfer_prepare(ms_http_xfer *x, const ms_http_req *req)
{
    CURL *e = x->easy;
    curl_easy_reset(e); /* keeps live connections */
    curl_slist_free_all(x->headers);
    x->headers = NULL;
    resp_clear(&x->resp);

    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "metasync/" MS_VERSION);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->resp.errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &x->resp);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &x->resp);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (req->timeout_ms > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    if (x->stop) {
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, x);
    }

    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip before bodies */
    for (const char *const *p = req->headers; p && *p; p++)
        h = curl_slist_append(h, *p);
    if (strcmp(req->method, "POST") == 0 || (req->body && strcmp(req->method, "PUT") == 0)) {
        char ct[160];
        snprintf(ct, sizeof ct, "Content-Type: %s",
                 req->content_type ? req->content_type : "application/json");
        h = curl_slist_append(h, ct);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->len);
        if (req->method[1] == 'U') curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
    } else if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    }
    if (!h) {
        fprintf(stderr, "metasync: out of memory building HTTP headers\n");
        abort();
    }
    x->headers = h;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
}

void ms_http_xfer_done(ms_http_xfer *x, CURLcode cc)
{
    x->resp.curl_code = cc;
    x->resp.status = 0;
    if (cc == CURLE_OK) curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->resp.status);
}

ms_err ms_http_outcome(const ms_http_resp *r, const char *url, ms_error *err)
{
    CURLcode cc = r->curl_code;
    if (cc == CURLE_OK) return MS_OK;
    const char *why = r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc);
    if (refused(cc) || dropped(cc))
        return ms_error_set(err, MS_ERR_CONNECT, "cannot reach the server at %s: %s", url, why);
    if (cc == CURLE_OPERATION_TIMEDOUT)
        return ms_error_set(err, MS_ERR_TIMEOUT, "no answer from %s in time: %s", url, why);
    if (cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL)
        return ms_error_set(err, MS_ERR_CONFIG,
                            "server: %s is not a valid http(s) URL (%s); set --server or "
                            "METASYNC_SERVER",
                            url, why);
    if (cc == CURLE_ABORTED_BY_CALLBACK)
        return ms_error_set(err, MS_ERR_IO, "interrupted while talking to %s", url);
    return ms_error_set(err, MS_ERR_IO, "request to %s failed: %s", url, why);
}

ms_err ms_http_perform(ms_http_xfer *x, const ms_http_req *req, ms_error *err)
{
    ms_http_xfer_prepare(x, req);
    ms_http_xfer_done(x, curl_easy_perform(x->easy));
    return ms_http_outcome(&x->resp, req->url, err);
}

ms_err ms_http_perform_retry(ms_http_xfer *x, const ms_http_req *req, const ms_http_policy *p,
                             ms_error *err)
{
    ms_http_retry st = {0};
    for (;;) {
        ms_err rc = ms_http_perform(x, req, err);
        if (x->stop && *x->stop) return rc;
        long d = ms_http_next_delay(p, &st, &x->resp, ms_cli_now_ms());
        if (d < 0) return rc;
        if (p->notice) {
            if (rc != MS_OK)
                fprintf(p->notice, "metasync: %s; retrying in %.1f s\n", err->detail, d / 1000.0);
            else
                fprintf(p->notice,
                        "metasync: server answered %ld; retrying in %.1f s (attempt %d of %d)\n",
                        x->resp.status, d / 1000.0, st.attempts + 1, p->max_attempts);
        }
        if (!ms_cli_sleep_ms(d, x->stop)) return rc;
    }
}

/* ---- URLs ------------------------------------------------------------------------------------ */

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

void ms_http_put_segment(ms_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    bool all_dots = n > 0 && n <= 2;
    for (size_t i = 0; i < n && all_dots; i++)
        all_dots = s[i] == '.';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) && !all_dots) {
            ms_buf_putc(out, (char)c);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            ms_buf_append(out, esc, 3);
        }
    }
}

void ms_http_put_qn(ms_buf *out, const char *qn)
{
    const char *seg = qn;
    for (;;) {
        const char *slash = strchr(seg, '/');
        size_t n = slash ? (size_t)(slash - seg) : strlen(seg);
        ms_http_put_segment(out, seg, n);
        if (!slash) break;
        ms_buf_putc(out, '/');
        seg = slash + 1;
    }
}

void ms_http_url(ms_buf *out, const char *server, const char *path)
{
    size_t n = strlen(server);
    while (n > 0 && server[n - 1] == '/')
        n--;
    ms_buf_append(out, server, n);
    ms_buf_puts(out, path);
}

/* ---- server answers -------------------------------------------------------------------------- */

/* Copies the string member `key` of o into dst[dstsz]; returns false when absent/not a string. */
static bool copy_str(struct json_object *o, const char *key, char *dst, size_t dstsz)
{
    struct json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return false;
    snprintf(dst, dstsz, "%s", json_object_get_string(v));
    return true;
}

/* The integer member `key` of o, or dflt when absent or not a number. */
static int64_t get_i64(struct json_object *o, const char *key, int64_t dflt)
{
    struct json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v)) return dflt;
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
        return dflt;
    return json_object_get_int64(v);
}

/* Parses body[0..len) as JSON with json-c; NULL when it is not JSON. Caller puts the result. */
static struct json_object *parse_json(const char *body, size_t len)
{
    if (len == 0 || len > (size_t)MS_HTTP_MAX_RESPONSE_BYTES) return NULL;
    struct json_tokener *tok = json_tokener_new_ex(128);
    if (!tok) return NULL;
    struct json_object *o = json_tokener_parse_ex(tok, body, (int)len);
    if (json_tokener_get_error(tok) != json_tokener_success) {
        if (o) json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

void ms_http_problem(const ms_http_resp *r, char *code, size_t codesz, char *detail,
                     size_t detailsz, long *line, long *column)
{
    struct json_object *o = parse_json(r->body.data, r->body.len);
    if (o && !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        o = NULL;
    }
    if (!copy_str(o, "code", code, codesz)) code[0] = '\0';
    if (!copy_str(o, "detail", detail, detailsz) && !copy_str(o, "title", detail, detailsz)) {
        size_t n = r->body.len;
        if (n > 200) n = 200;
        if (!o && n > 0) {
            snprintf(detail, detailsz, "HTTP %ld: %.*s", r->status, (int)n, r->body.data);
            for (char *p = detail; *p; p++)
                if (*p == '\n' || *p == '\r') *p = ' ';
        } else {
            snprintf(detail, detailsz, "HTTP %ld", r->status);
        }
    }
    if (line) *line = (long)get_i64(o, "line", 0);
    if (column) *column = (long)get_i64(o, "column", 0);
    if (o) json_object_put(o);
}

ms_err ms_http_parse_ingest_reply(const char *body, size_t len, ms_ingest_reply *out,
                                  ms_reject_fn on_reject, void *ud, ms_error *err)
{
    memset(out, 0, sizeof *out);
    out->last_seq = -1;
    struct json_object *o = parse_json(body, len);
    if (!o || !json_object_is_type(o, json_type_object)) {
        if (o) json_object_put(o);
        return ms_error_set(err, MS_ERR_MALFORMED_JSON,
                            "the server's answer to an ingest is not a JSON object");
    }
    out->accepted = get_i64(o, "accepted", 0);
    out->duplicates = get_i64(o, "duplicates", 0);
    out->last_seq = get_i64(o, "last_seq", -1);
    struct json_object *rej;
    if (json_object_object_get_ex(o, "rejected", &rej) &&
        json_object_is_type(rej, json_type_array)) {
        size_t n = json_object_array_length(rej);
        out->nrejected = (int64_t)n;
        for (size_t i = 0; i < n && on_reject; i++) {
            struct json_object *e = json_object_array_get_idx(rej, i);
            char code[64], detail[400];
            if (!copy_str(e, "code", code, sizeof code)) code[0] = '\0';
            if (!copy_str(e, "detail", detail, sizeof detail)) detail[0] = '\0';
            on_reject(ud, (long)get_i64(e, "index", -1), (long)get_i64(e, "line", -1),
                      (long)get_i64(e, "column", -1), code, detail);
        }
    }
    json_object_put(o);
    return MS_OK;
}

/* ---- helpers shared by the client commands --------------------------------------------------- */

unsigned long long ms_cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000ULL + (unsigned long long)ts.tv_nsec / 1000000ULL;
}

bool ms_cli_sleep_ms(long ms, volatile sig_atomic_t *stop)
{
    while (ms > 0) {
        if (stop && *stop) return false;
        long slice = ms > 50 ? 50 : ms;
        struct timespec ts = {slice / 1000, (slice % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        ms -= slice;
    }
    return !(stop && *stop);
}

bool ms_cli_wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) return false;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return true;
    }
    return false;
}

int ms_cli_opt(const char *cmd, int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        (*i)++;
        return 1;
    }
    if (a[n] != '\0') return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "metasync %s: %s needs a value (see --help)\n", cmd, name);
        return -1;
    }
    *value = argv[*i + 1];
    *i += 2;
    return 1;
}

bool ms_cli_parse_i64(const char *cmd, const char *what, const char *s, int64_t min, int64_t max,
                      int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno || v < min || v > max) {
        fprintf(stderr, "metasync %s: %s: '%s' is not an integer in [%lld, %lld]\n", cmd, what, s,
                (long long)min, (long long)max);
        return false;
    }
    *out = v;
    return true;
}

int ms_cli_load_config(const char *cmd, ms_config *cfg, int argc, char **argv, char **envp,
                       char ***rest, int *nrest)
{
    ms_error err;
    ms_error_clear(&err);
    ms_config_defaults(cfg);
    *rest = ms_xcalloc((size_t)argc + 1, sizeof **rest);
    *nrest = 0;
    if (ms_config_load(cfg, envp, argc, argv, *rest, nrest, &err) != MS_OK) {
        fprintf(stderr, "metasync %s: %s\n", cmd,
                err.detail[0] ? err.detail : ms_err_message(err.code));
        ms_config_free(cfg);
        free(*rest);
        *rest = NULL;
        return MS_EXIT_USAGE;
    }
    return MS_EXIT_OK;
}

int ms_cli_exit_for(ms_err e)
{
    return e == MS_ERR_CONFIG ? MS_EXIT_USAGE : MS_EXIT_UNREACHABLE;
}
