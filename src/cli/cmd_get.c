/*
 * cmd_get.c — `metasync get QN`: fetches one asset from a running server
 * (GET {server}/api/v1/assets/{qualified_name}) and prints it, pretty-printed or as received.
 */
#include "cli_http.h"
#include "ms_cli.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints the command's help to out. */
static void usage(FILE *out)
{
    fputs(
        "Usage: metasync get [options] QUALIFIED_NAME\n"
        "\n"
        "Fetches one asset from the server (GET /api/v1/assets/QUALIFIED_NAME) and prints it\n"
        "as pretty-printed JSON on stdout. Each `/`-separated segment of the name is\n"
        "percent-encoded, so names with spaces or other special characters work as typed.\n"
        "\n"
        "Options:\n"
        "  --raw         print the body exactly as the server sent it\n"
        "  -h, --help    show this help\n"
        "\n"
        "Exit codes: 0 printed; 1 not found or refused by the server (detail on stderr);\n"
        "            2 usage or configuration error; 3 server unreachable or 5xx.\n"
        "\n"
        "Configuration flags (e.g. --server URL, METASYNC_SERVER): see `metasync config --help`.\n",
        out);
}

/* Writes the asset in r to stdout: raw bytes (plus a final newline if missing) or json-c pretty
 * printed; falls back to raw when the body is not JSON. Returns false on a write error. */
static bool print_asset(const ms_http_resp *r, bool raw)
{
    const char *body = ms_buf_cstr(&r->body);
    struct json_object *o = NULL;
    if (!raw) {
        struct json_tokener *tok = json_tokener_new();
        if (tok) {
            o = json_tokener_parse_ex(tok, body, (int)r->body.len);
            if (json_tokener_get_error(tok) != json_tokener_success && o) {
                json_object_put(o);
                o = NULL;
            }
            json_tokener_free(tok);
        }
    }
    if (o) {
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
    } else {
        fwrite(body, 1, r->body.len, stdout);
        if (r->body.len == 0 || body[r->body.len - 1] != '\n') putchar('\n');
    }
    return fflush(stdout) == 0 && !ferror(stdout);
}

int ms_cmd_get(int argc, char **argv, char **envp)
{
    if (ms_cli_wants_help(argc, argv)) {
        usage(stdout);
        return MS_EXIT_OK;
    }
    ms_config cfg;
    char **rest;
    int nrest;
    int rc = ms_cli_load_config("get", &cfg, argc, argv, envp, &rest, &nrest);
    if (rc != MS_EXIT_OK) return rc;

    bool raw = false, dashdash = false;
    const char *qn = NULL;
    for (int i = 0; i < nrest; i++) {
        const char *a = rest[i];
        if (!dashdash && strcmp(a, "--") == 0) {
            dashdash = true;
        } else if (!dashdash && strcmp(a, "--raw") == 0) {
            raw = true;
        } else if (!dashdash && a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "metasync get: unknown option %s (see --help)\n", a);
            rc = MS_EXIT_USAGE;
        } else if (qn) {
            fprintf(stderr, "metasync get: one qualified name only (got '%s' and '%s')\n", qn, a);
            rc = MS_EXIT_USAGE;
        } else {
            qn = a;
        }
    }
    if (rc == MS_EXIT_OK && (!qn || !*qn)) {
        fprintf(stderr, "metasync get: missing QUALIFIED_NAME (see --help)\n");
        rc = MS_EXIT_USAGE;
    }
    if (rc != MS_EXIT_OK) {
        free(rest);
        ms_config_free(&cfg);
        return rc;
    }

    ms_error err;
    ms_error_clear(&err);
    if (ms_http_global_init(&err) != MS_OK) {
        fprintf(stderr, "metasync get: %s\n", err.detail);
        free(rest);
        ms_config_free(&cfg);
        return MS_EXIT_INTERNAL;
    }
    ms_buf url = MS_BUF_INIT;
    ms_http_url(&url, cfg.server, "/api/v1/assets/");
    ms_http_put_qn(&url, qn);

    ms_http_policy pol;
    ms_http_policy_default(&pol);
    ms_http_xfer x;
    ms_http_xfer_init(&x, NULL);
    ms_http_req req = {.method = "GET", .url = ms_buf_cstr(&url), .timeout_ms = 60000};
    ms_err e = ms_http_perform_retry(&x, &req, &pol, &err);
    long st = x.resp.status;
    if (e != MS_OK) {
        fprintf(stderr, "metasync get: %s\n", err.detail);
        rc = ms_cli_exit_for(e);
    } else if (st >= 200 && st < 300) {
        if (!print_asset(&x.resp, raw)) {
            fprintf(stderr, "metasync get: cannot write to stdout\n");
            rc = MS_EXIT_INTERNAL;
        }
    } else {
        char code[64], detail[400];
        ms_http_problem(&x.resp, code, sizeof code, detail, sizeof detail, NULL, NULL);
        if (st == 404)
            fprintf(stderr, "metasync get: %s: %s\n", qn, detail);
        else
            fprintf(stderr, "metasync get: server answered %ld%s%s: %s\n", st, code[0] ? " " : "",
                    code, detail);
        rc = st >= 500 || st == 429 ? MS_EXIT_UNREACHABLE : MS_EXIT_REFUSED;
    }
    ms_http_xfer_free(&x);
    ms_buf_free(&url);
    ms_http_global_cleanup();
    free(rest);
    ms_config_free(&cfg);
    return rc;
}
