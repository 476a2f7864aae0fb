/*
 * cli_http.h — the small HTTP client behind the client commands (ingest, get, changes, demo),
 * built on libcurl, plus the few helpers those commands share (option parsing, config loading,
 * clocks).
 *
 * A request is described by an ms_http_req and run on an ms_http_xfer, which owns one curl easy
 * handle (kept across requests so connections are reused) and the response of the last request:
 * status, body, Retry-After and Content-Type. Commands either run a request to completion here
 * (ms_http_perform, ms_http_perform_retry) or prepare the easy handle with ms_http_xfer_prepare and
 * drive it themselves with a curl multi handle (ingest keeps several requests in flight), then
 * call ms_http_xfer_done and the same retry policy (ms_http_next_delay).
 *
 * Retry policy: 429, 502, 503 and 504 are retried up to max_attempts, waiting what Retry-After
 * says (capped, at least 100 ms) or an exponential backoff; a refused connection (server not up
 * yet) is retried with backoff for at most connect_window_ms; a connection dropped before an answer
 * is retried up to max_attempts. Everything else is final.
 *
 * URLs: qualified names go into paths one `/`-separated segment at a time, each segment
 * percent-encoded (RFC 3986 unreserved characters kept), the `/` between segments kept.
 *
 * Thread rules: an ms_http_xfer belongs to one thread. ms_http_global_init must run once before
 * any transfer (the commands call it first thing, on the main thread).
 */
#ifndef MS_CLI_HTTP_H
#define MS_CLI_HTTP_H

#include "ms_buf.h"
#include "ms_config.h"
#include "ms_error.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Largest response body kept in memory; a bigger one fails the transfer (CURLE_WRITE_ERROR). */
#define MS_HTTP_MAX_RESPONSE_BYTES (256L * 1024 * 1024)

/* ---- retry policy ---------------------------------------------------------------------------- */

typedef struct ms_http_policy {
    int max_attempts;        /* attempts in all for 429/502/503/504 and dropped connections */
    long retry_after_cap_ms; /* a longer Retry-After is clamped to this */
    long backoff_first_ms;   /* first backoff delay (no Retry-After, refused connection) */
    long backoff_max_ms;     /* backoff doubles up to this */
    long connect_window_ms;  /* keep retrying a refused connection this long in all; 0 = never */
    FILE *notice;            /* where to say "retrying in …" (NULL = silent) */
} ms_http_policy;

/* Fills p with the defaults: 8 attempts, Retry-After capped at 30 s, backoff 200 ms doubling to
 * 5 s, refused connections retried for 10 s, notices on stderr. */
void ms_http_policy_default(ms_http_policy *p);

/* Per-request retry bookkeeping; zero-initialise ({0}) before the first attempt. */
typedef struct ms_http_retry {
    int attempts;                        /* attempts made so far */
    int connect_failures;                /* refused connections in a row */
    unsigned long long first_refused_ms; /* when the first refused connection happened, 0 = none */
} ms_http_retry;

/* ---- responses ------------------------------------------------------------------------------- */

typedef struct ms_http_resp {
    long status;                  /* HTTP status of the final response; 0 when none was received */
    ms_buf body;                  /* response body (owned) */
    long retry_after_ms;          /* Retry-After in milliseconds (uncapped), -1 when absent */
    char content_type[128];       /* Content-Type without parameters, lower case; "" when absent */
    CURLcode curl_code;           /* transport result; CURLE_OK when an HTTP response arrived */
    char errbuf[CURL_ERROR_SIZE]; /* libcurl's detail for curl_code, may be "" */
} ms_http_resp;

/* ---- requests and transfers ------------------------------------------------------------------ */

typedef struct ms_http_req {
    const char *method;       /* "GET", "POST"; PUT with a body; others without */
    const char *url;          /* absolute URL (see ms_http_url) */
    const char *content_type; /* POST body type, e.g. "application/x-ndjson"; NULL for GET */
    const char *body;         /* POST body, borrowed: must stay valid until the transfer ends */
    size_t len;               /* body length in bytes */
    long timeout_ms;          /* whole-transfer timeout; 0 = none */
    const char *const
        *headers; /* more header lines ("X-MetaSync-Tenant: a"), NULL-ended; or NULL */
} ms_http_req;

typedef struct ms_http_xfer {
    CURL *easy;                  /* owned; reused across requests (keeps connections) */
    struct curl_slist *headers;  /* owned; request headers of the current request */
    ms_http_resp resp;           /* response of the current/last request (owned) */
    volatile sig_atomic_t *stop; /* optional: when *stop becomes non-zero, transfers abort */
    void *user;                  /* free for the caller (ingest hangs its batch here) */
} ms_http_xfer;

/* Initialises libcurl for the process. Returns MS_OK or MS_ERR_INTERNAL (err filled). */
ms_err ms_http_global_init(ms_error *err);
/* Releases what ms_http_global_init set up; call once at the end of a command. */
void ms_http_global_cleanup(void);

/* Creates x's easy handle; stop may be NULL. Aborts the process when libcurl can't allocate one
 * (the out-of-memory policy of ms_buf.h). */
void ms_http_xfer_init(ms_http_xfer *x, volatile sig_atomic_t *stop);
/* Releases the easy handle, headers and response of x. x must not be in a multi handle. */
void ms_http_xfer_free(ms_http_xfer *x);

/* Sets x's easy handle up for req (method, URL, headers, body, timeouts, callbacks) and clears
 * x->resp. Does not start anything: run it with curl_easy_perform via ms_http_perform, or add
 * x->easy to a multi handle. req->body is not copied. */
void ms_http_xfer_prepare(ms_http_xfer *x, const ms_http_req *req);
/* Records the end of x's transfer (cc from curl_easy_perform or CURLMSG_DONE) in x->resp:
 * curl_code, status (0 unless cc is CURLE_OK). */
void ms_http_xfer_done(ms_http_xfer *x, CURLcode cc);

/*
 * Classifies the outcome in r. MS_OK when an HTTP response arrived (whatever its status: the
 * caller judges the status). Otherwise a transport error with err->detail naming url:
 * MS_ERR_CONNECT (refused, unresolvable, dropped), MS_ERR_TIMEOUT, MS_ERR_CONFIG (the URL is
 * malformed or not http/https), MS_ERR_IO (anything else, including an abort through x->stop).
 */
ms_err ms_http_outcome(const ms_http_resp *r, const char *url, ms_error *err);

/* True when r is a transient failure a retry may fix: status 429/502/503/504, or a refused or
 * dropped connection. */
bool ms_http_transient(const ms_http_resp *r);

/*
 * Applies policy p to the attempt that just ended with r, updating st (st->attempts counts it).
 * Returns the delay in milliseconds before the next attempt, or -1 when r is final: either not
 * transient, or transient with the budget spent (attempts or connect window).
 */
long ms_http_next_delay(const ms_http_policy *p, ms_http_retry *st, const ms_http_resp *r,
                        unsigned long long now_ms);

/* Runs req once on x (blocking). Returns ms_http_outcome of it; the response is in x->resp. */
ms_err ms_http_perform(ms_http_xfer *x, const ms_http_req *req, ms_error *err);

/*
 * Runs req on x, retrying under p (sleeping in between, interrupted by x->stop). Returns the
 * ms_http_outcome of the last attempt; x->resp holds its response. When the answer is still a
 * 429/5xx after the attempts, returns MS_OK with that status: check x->resp.status.
 */
ms_err ms_http_perform_retry(ms_http_xfer *x, const ms_http_req *req, const ms_http_policy *p,
                             ms_error *err);

/* ---- URLs ------------------------------------------------------------------------------------ */

/* Appends s[0..n) percent-encoded as one path segment (or query value): A-Z a-z 0-9 - . _ ~ are
 * kept, every other byte becomes %XX. A segment that is all dots ("." or "..") is encoded whole
 * so that nothing normalises it away. */
void ms_http_put_segment(ms_buf *out, const char *s, size_t n);
/* Appends qualified name qn as a path: each `/`-separated segment encoded, the `/` kept. */
void ms_http_put_qn(ms_buf *out, const char *qn);
/* Appends server (without its trailing `/`s) then path (which starts with `/`) to out. */
void ms_http_url(ms_buf *out, const char *server, const char *path);

/* ---- server answers -------------------------------------------------------------------------- */

/*
 * Reads a problem+json body (or any JSON object with code/title/detail) from r: copies "code"
 * (or "" ) into code[codesz] and "detail" (else "title", else the body's first 200 bytes, else
 * "HTTP <status>") into detail[detailsz]; line/column (may be NULL) get "line"/"column" or 0.
 */
void ms_http_problem(const ms_http_resp *r, char *code, size_t codesz, char *detail,
                     size_t detailsz, long *line, long *column);

/* Summary of an ingest answer (200 from POST /api/v1/events). */
typedef struct ms_ingest_reply {
    int64_t accepted;
    int64_t duplicates;
    int64_t nrejected;
    int64_t last_seq; /* -1 when absent */
} ms_ingest_reply;

/* Called once per element of "rejected", in order. index/line/column are -1 when absent; code
 * and detail are never NULL (may be ""). Pointers are valid only during the call. */
typedef void (*ms_reject_fn)(void *ud, long index, long line, long column, const char *code,
                             const char *detail);

/* Parses an ingest answer body[0..len) into out, calling on_reject (may be NULL) per rejected
 * event. Returns MS_OK or MS_ERR_MALFORMED_JSON (err says what is wrong with the answer). */
ms_err ms_http_parse_ingest_reply(const char *body, size_t len, ms_ingest_reply *out,
                                  ms_reject_fn on_reject, void *ud, ms_error *err);

/* ---- helpers shared by the client commands --------------------------------------------------- */

/* Monotonic clock in milliseconds. */
unsigned long long ms_cli_now_ms(void);
/* Sleeps ms milliseconds in short slices; returns early (false) once stop (may be NULL) is set. */
bool ms_cli_sleep_ms(long ms, volatile sig_atomic_t *stop);

/* True when argv[0..argc) holds --help or -h before any "--". */
bool ms_cli_wants_help(int argc, char **argv);

/*
 * Matches argv[*i] against option `name` ("--batch"), in the forms `--batch VALUE` and
 * `--batch=VALUE`. Returns 1 and sets *value (pointing into argv) and advances *i past the value
 * when it matches; 0 when argv[*i] is another argument; -1 when it matches but the value is
 * missing (a usage error; a message is printed to stderr with cmd as prefix).
 */
int ms_cli_opt(const char *cmd, int argc, char **argv, int *i, const char *name,
               const char **value);

/* Parses a decimal integer in [min, max] (the whole string). Returns false (and prints
 * "<cmd>: <what>: ..." to stderr) when s is not one. */
bool ms_cli_parse_i64(const char *cmd, const char *what, const char *s, int64_t min, int64_t max,
                      int64_t *out);

/*
 * Loads the configuration for a client command: ms_config_defaults then ms_config_load with argv.
 * On success returns MS_EXIT_OK (0), *rest is a new array (caller frees; pointers into argv) of
 * *nrest arguments that were not config flags. On failure prints "metasync <cmd>: <detail>" to
 * stderr, frees what it made and returns MS_EXIT_USAGE; cfg needs no ms_config_free then.
 */
int ms_cli_load_config(const char *cmd, ms_config *cfg, int argc, char **argv, char **envp,
                       char ***rest, int *nrest);

/* Maps a transport outcome to a command exit code: MS_ERR_CONFIG → 2, others → 3. */
int ms_cli_exit_for(ms_err e);

#endif
