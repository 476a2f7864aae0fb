/*
 * cmd_changes.c — `metasync changes`: reads the server's change feed
 * (GET {server}/api/v1/changes?after=SEQ&limit=N[&wait=S]) and prints the change records as
 * NDJSON on stdout, one page, or forever with --follow (long polling from the last next_after).
 */
#include "cli_http.h"
#include "ms_change.h"
#include "ms_cli.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The one global of this file: set by the SIGINT/SIGTERM handler, read by the transfer's progress
 * callback and the retry sleeps so that Ctrl-C ends a long poll promptly and the command exits 0.
 * A signal handler cannot be handed a context, hence a file-scope volatile sig_atomic_t.
 */
static volatile sig_atomic_t changes_stop;

/* SIGINT/SIGTERM handler: only sets changes_stop (async-signal-safe). */
static void on_signal(int sig)
{
    (void)sig;
    changes_stop = 1;
}

/* Prints the command's help to out. */
static void usage(FILE *out)
{
    fputs(
        "Usage: metasync changes [options]\n"
        "\n"
        "Prints the server's change feed (GET /api/v1/changes) as NDJSON on stdout, one change\n"
        "record per line ({\"seq\":...,\"op\":...,\"qualified_name\":...,\"after\":...}).\n"
        "Without --follow prints one page and exits; with --follow keeps long-polling from the\n"
        "last position, flushing stdout after each batch, until interrupted (Ctrl-C exits 0).\n"
        "\n"
        "Options:\n"
        "  --after SEQ     start after this sequence number (default 0: from the beginning)\n"
        "  --limit N       records per request, 1..1000 (default 100; the server's cap)\n"
        "  --follow, -f    keep polling for new changes forever\n"
        "  --wait SECONDS  long-poll wait per request with --follow, 1..changes.max_wait_seconds\n"
        "                  (default 30; the server's cap, 60 unless configured)\n"
        "  -h, --help      show this help\n"
        "\n"
        "Exit codes: 0 done or interrupted; 1 the server refused the request (bad parameter);\n"
        "            2 usage or configuration error; 3 server unreachable or 5xx.\n"
        "\n"
        "Configuration flags (e.g. --server URL, METASYNC_SERVER): see `metasync config --help`.\n",
        out);
}

typedef struct changes_opts {
    int64_t after;
    int64_t limit;
    int64_t wait;
    bool follow;
} changes_opts;

/* Parses the command's own arguments (rest[0..nrest)) into o, within the server's caps: the page
 * size MS_CHANGES_PAGE_MAX and max_wait (changes.max_wait_seconds, read from the same
 * configuration as the server's). Returns MS_EXIT_OK or MS_EXIT_USAGE (message printed). */
static int parse_args(int nrest, char **rest, int64_t max_wait, changes_opts *o)
{
    o->after = 0;
    o->limit = 100;
    o->wait = max_wait < 30 ? max_wait : 30;
    o->follow = false;
    for (int i = 0; i < nrest;) {
        const char *v = NULL;
        int m;
        if (strcmp(rest[i], "--follow") == 0 || strcmp(rest[i], "-f") == 0) {
            o->follow = true;
            i++;
        } else if ((m = ms_cli_opt("changes", nrest, rest, &i, "--after", &v)) != 0) {
            if (m < 0 || !ms_cli_parse_i64("changes", "--after", v, 0, INT64_MAX, &o->after))
                return MS_EXIT_USAGE;
        } else if ((m = ms_cli_opt("changes", nrest, rest, &i, "--limit", &v)) != 0) {
            if (m < 0) return MS_EXIT_USAGE;
            if (!ms_cli_parse_i64("changes", "--limit", v, 1, MS_CHANGES_PAGE_MAX, &o->limit)) {
                fprintf(stderr,
                        "metasync changes: the server sends at most %d records per "
                        "request; --follow pages through more\n",
                        MS_CHANGES_PAGE_MAX);
                return MS_EXIT_USAGE;
            }
        } else if ((m = ms_cli_opt("changes", nrest, rest, &i, "--wait", &v)) != 0) {
            if (m < 0) return MS_EXIT_USAGE;
            if (!ms_cli_parse_i64("changes", "--wait", v, 1, max_wait, &o->wait)) {
                fprintf(stderr,
                        "metasync changes: the server waits at most "
                        "changes.max_wait_seconds (%lld) per request\n",
                        (long long)max_wait);
                return MS_EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "metasync changes: unexpected argument %s (see --help)\n", rest[i]);
            return MS_EXIT_USAGE;
        }
    }
    return MS_EXIT_OK;
}

/*
 * Prints the items of one page (body of a 200 answer) as NDJSON lines and advances *after to the
 * page's next_after (or the last item's seq); *count gets the number of records. Returns 0 when
 * printed, 1 when stdout is gone (EPIPE: the reader left, which is a normal end), -1 when the page
 * is not the expected JSON (message printed), -2 on another write error.
 */
static int print_page(const ms_http_resp *r, int64_t *after, size_t *count)
{
    *count = 0;
    struct json_tokener *tok = json_tokener_new();
    if (!tok) return -1;
    struct json_object *o = json_tokener_parse_ex(tok, ms_buf_cstr(&r->body), (int)r->body.len);
    bool ok = json_tokener_get_error(tok) == json_tokener_success && o &&
              json_object_is_type(o, json_type_object);
    json_tokener_free(tok);
    struct json_object *items = NULL, *next = NULL;
    if (ok)
        ok = json_object_object_get_ex(o, "items", &items) &&
             json_object_is_type(items, json_type_array);
    if (!ok) {
        fprintf(stderr, "metasync changes: the server's answer is not {\"items\":[...]}\n");
        if (o) json_object_put(o);
        return -1;
    }
    size_t n = json_object_array_length(items);
    *count = n;
    int64_t last = *after;
    for (size_t i = 0; i < n; i++) {
        struct json_object *it = json_object_array_get_idx(items, i), *seq;
        fputs(json_object_to_json_string_ext(it, JSON_C_TO_STRING_PLAIN |
                                                     JSON_C_TO_STRING_NOSLASHESCAPE),
              stdout);
        putchar('\n');
        if (json_object_object_get_ex(it, "seq", &seq) && json_object_get_int64(seq) > last)
            last = json_object_get_int64(seq);
    }
    if (json_object_object_get_ex(o, "next_after", &next) &&
        (json_object_is_type(next, json_type_int) || json_object_is_type(next, json_type_double)))
        last = json_object_get_int64(next) > last ? json_object_get_int64(next) : last;
    *after = last;
    json_object_put(o);
    if (fflush(stdout) != 0 || ferror(stdout)) return errno == EPIPE ? 1 : -2;
    return 0;
}

int ms_cmd_changes(int argc, char **argv, char **envp)
{
    if (ms_cli_wants_help(argc, argv)) {
        usage(stdout);
        return MS_EXIT_OK;
    }
    ms_config cfg;
    char **rest;
    int nrest;
    int rc = ms_cli_load_config("changes", &cfg, argc, argv, envp, &rest, &nrest);
    if (rc != MS_EXIT_OK) return rc;
    changes_opts o;
    rc = parse_args(nrest, rest, cfg.changes_max_wait_seconds, &o);
    free(rest);
    if (rc != MS_EXIT_OK) {
        ms_config_free(&cfg);
        return rc;
    }
    ms_error err;
    ms_error_clear(&err);
    if (ms_http_global_init(&err) != MS_OK) {
        fprintf(stderr, "metasync changes: %s\n", err.detail);
        ms_config_free(&cfg);
        return MS_EXIT_INTERNAL;
    }

    struct sigaction sa, old_int, old_term, old_pipe;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: blocking calls return EINTR */
    sigemptyset(&sa.sa_mask);
    changes_stop = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sa.sa_handler = SIG_IGN; /* a closed stdout shows up as EPIPE on write */
    sigaction(SIGPIPE, &sa, &old_pipe);

    ms_http_policy pol;
    ms_http_policy_default(&pol);
    if (o.follow) pol.connect_window_ms = 60000; /* ride out a server restart */
    ms_http_xfer x;
    ms_http_xfer_init(&x, &changes_stop);
    ms_buf url = MS_BUF_INIT;
    int64_t after = o.after;
    while (!changes_stop) {
        ms_buf_reset(&url);
        ms_http_url(&url, cfg.server, "/api/v1/changes");
        ms_buf_printf(&url, "?after=%" PRId64 "&limit=%" PRId64, after, o.limit);
        if (o.follow) ms_buf_printf(&url, "&wait=%" PRId64, o.wait);
        ms_http_req req = {.method = "GET",
                           .url = ms_buf_cstr(&url),
                           .timeout_ms = (long)(o.follow ? o.wait + 30 : 60) * 1000};
        unsigned long long t0 = ms_cli_now_ms();
        ms_err e = ms_http_perform_retry(&x, &req, &pol, &err);
        if (changes_stop) break;
        long st = x.resp.status;
        if (e != MS_OK) {
            fprintf(stderr, "metasync changes: %s\n", err.detail);
            rc = ms_cli_exit_for(e);
            break;
        }
        if (st < 200 || st >= 300) {
            char code[64], detail[400];
            ms_http_problem(&x.resp, code, sizeof code, detail, sizeof detail, NULL, NULL);
            fprintf(stderr, "metasync changes: server answered %ld%s%s: %s\n", st,
                    code[0] ? " " : "", code, detail);
            rc = st >= 500 || st == 429 ? MS_EXIT_UNREACHABLE : MS_EXIT_REFUSED;
            break;
        }
        size_t count;
        int p = print_page(&x.resp, &after, &count);
        if (p == 1) break; /* reader went away: a normal end */
        if (p == -1) {
            rc = MS_EXIT_UNREACHABLE;
            break;
        }
        if (p == -2) {
            fprintf(stderr, "metasync changes: cannot write to stdout: %s\n", strerror(errno));
            rc = MS_EXIT_INTERNAL;
            break;
        }
        if (!o.follow) break;
        /* A server that does not hold empty polls open must not make this loop spin. */
        if (count == 0 && ms_cli_now_ms() - t0 < 500) ms_cli_sleep_ms(1000, &changes_stop);
    }
    ms_buf_free(&url);
    ms_http_xfer_free(&x);
    ms_http_global_cleanup();
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    ms_config_free(&cfg);
    return rc;
}
