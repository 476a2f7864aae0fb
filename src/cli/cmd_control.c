/*
 * cmd_control.c — `metasync tenant|apikey|connection|user`: manage the control plane of a
 * running server over its HTTP API (/api/v1/tenants, apikeys, connections, users; docs/api.md).
 *
 * One table per command says its route, its verbs and which options become which JSON fields;
 * one driver builds the request, runs it (cli_http.c) and prints the answer pretty-printed.
 * Secrets (a connection's credentials) are read from a file or stdin, never from argv, which
 * any user of the machine can read in `ps`.
 */
#include "cli_http.h"
#include "ms_cli.h"
#include "ms_control.h"
#include "ms_event.h"
#include "ms_plugins.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { O_STR, O_INT, O_JSON, O_CSV, O_TRUE, O_FALSE, O_SECRET_FILE } opt_kind;

typedef struct opt_def {
    const char *flag;  /* "--display-name" */
    const char *field; /* "display_name" */
    opt_kind kind;
} opt_def;

typedef struct verb_def {
    const char *name;   /* "create" */
    const char *method; /* "POST" */
    bool with_id;       /* the positional goes into the path */
    bool body;          /* options become a JSON body */
} verb_def;

typedef struct entity_def {
    const char *cmd;      /* "connection" */
    const char *path;     /* "/api/v1/connections" */
    const char *id_field; /* the field create's positional fills ("name", "email") */
    const verb_def *verbs;
    const opt_def *opts;
    const char *help;
} entity_def;

static const verb_def tenant_verbs[] = {
    {"list", "GET", false, false},      {"get", "GET", true, false},
    {"create", "POST", false, true},    {"update", "PUT", true, true},
    {"disable", "DELETE", true, false}, {NULL, NULL, false, false},
};
static const verb_def apikey_verbs[] = {
    {"list", "GET", false, false},     {"get", "GET", true, false}, {"create", "POST", false, true},
    {"revoke", "DELETE", true, false}, {NULL, NULL, false, false},
};
static const verb_def crud_verbs[] = {
    {"list", "GET", false, false},     {"get", "GET", true, false},
    {"create", "POST", false, true},   {"update", "PUT", true, true},
    {"delete", "DELETE", true, false}, {NULL, NULL, false, false},
};

static const opt_def tenant_opts[] = {
    {"--display-name", "display_name", O_STR},
    {"--disable", "disabled", O_TRUE},
    {"--enable", "disabled", O_FALSE},
    {NULL, NULL, O_STR},
};
static const opt_def apikey_opts[] = {
    {"--scopes", "scopes", O_CSV},
    {NULL, NULL, O_STR},
};
static const opt_def connection_opts[] = {
    {"--adapter", "adapter", O_STR},
    {"--host", "host", O_STR},
    {"--port", "port", O_INT},
    {"--database", "database", O_STR},
    {"--options", "options", O_JSON},
    {"--credentials-file", "credentials", O_SECRET_FILE},
    {NULL, NULL, O_STR},
};
static const opt_def user_opts[] = {
    {"--display-name", "display_name", O_STR},
    {"--role", "role", O_STR},
    {"--disable", "disabled", O_TRUE},
    {"--enable", "disabled", O_FALSE},
    {NULL, NULL, O_STR},
};

static const entity_def entities[] = {
    {"tenant", "/api/v1/tenants", "name", tenant_verbs, tenant_opts,
     "  list | get NAME | create NAME [--display-name TEXT]\n"
     "  update NAME [--display-name TEXT] [--disable | --enable] | disable NAME\n"
     "\n"
     "Tenants exist implicitly once they hold data (`default` always does); creating one\n"
     "registers it with a display name. Disabling keeps its data; its API keys stop working.\n"},
    {"apikey", "/api/v1/apikeys", "name", apikey_verbs, apikey_opts,
     "  list | get ID | create NAME [--scopes read,write,admin] | revoke ID\n"
     "\n"
     "`create` prints the key (msk_<id>_<secret>) once: the server keeps only a salted hash.\n"
     "Scopes default to read.\n"},
    {"connection", "/api/v1/connections", "name", crud_verbs, connection_opts,
     "  list | get NAME | delete NAME\n"
     "  create NAME --adapter ADAPTER [--host HOST] [--port PORT] [--database DB]\n"
     "         [--options JSON] [--credentials-file FILE]\n"
     "  update NAME [the same options]\n"
     "\n"
     "ADAPTER: postgres, mysql, mariadb, sqlite, kafka, oracle, mssql, snowflake, bigquery,\n"
     "s3, http. --credentials-file FILE reads the credentials as a JSON object\n"
     "({\"username\":\"…\",\"password\":\"…\"}) from FILE, or from stdin when FILE is `-`.\n"
     "Credentials are never taken from the command line (other users can read it in `ps`),\n"
     "and the server never sends them back: answers show \"credentials\":\"set\".\n"},
    {"user", "/api/v1/users", "email", crud_verbs, user_opts,
     "  list | get EMAIL | delete EMAIL\n"
     "  create EMAIL [--display-name TEXT] [--role admin|editor|viewer]\n"
     "  update EMAIL [--display-name TEXT] [--role ROLE] [--disable | --enable]\n"},
};

static void usage(const entity_def *e, FILE *out)
{
    fprintf(out, "Usage: metasync %s VERB [options]\n\nVerbs:\n%s", e->cmd, e->help);
    fputs(
        "\nOptions of every verb:\n"
        "  --tenant NAME        act in this tenant (header X-MetaSync-Tenant; default: default)\n"
        "  --api-key-file FILE  send the API key in FILE (`-` = stdin) as Authorization: Bearer;\n"
        "                       needed when the server runs with auth.required\n"
        "  --direct             run on the store (store.url, data_dir) instead of a server:\n"
        "                       how the first admin API key is made when auth.required is on\n"
        "  -h, --help           show this help\n"
        "\n"
        "Exit codes: 0 done; 1 refused by the server (not found, invalid; detail on stderr);\n"
        "            2 usage or configuration error; 3 server unreachable or 5xx.\n"
        "\n"
        "Configuration flags (e.g. --server URL, METASYNC_SERVER): see `metasync config --help`.\n",
        out);
}

/* Reads all of path ("-" = stdin) into out; false with a message on failure. */
static bool read_all(const char *cmd, const char *path, ms_buf *out)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        fprintf(stderr, "metasync %s: cannot read %s\n", cmd, path);
        return false;
    }
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ms_buf_append(out, chunk, n);
    bool ok = !ferror(f);
    if (f != stdin) fclose(f);
    if (!ok) fprintf(stderr, "metasync %s: cannot read %s\n", cmd, path);
    return ok;
}

/* Parses text as JSON into a new object; NULL with a message (that never quotes the text). */
static struct json_object *parse_json(const char *cmd, const char *what, const char *text,
                                      bool want_object)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o = tok ? json_tokener_parse_ex(tok, text, (int)strlen(text)) : NULL;
    bool ok = tok && json_tokener_get_error(tok) == json_tokener_success &&
              (!want_object || json_object_is_type(o, json_type_object));
    if (tok) json_tokener_free(tok);
    if (!ok) {
        json_object_put(o);
        fprintf(stderr, "metasync %s: %s is not a JSON object\n", cmd, what);
        return NULL;
    }
    return o;
}

/* Adds option o with value v to body; false with a message on a bad value. */
static bool add_opt(const char *cmd, const opt_def *o, const char *v, struct json_object *body)
{
    struct json_object *j = NULL;
    switch (o->kind) {
    case O_STR:
        j = json_object_new_string(v);
        break;
    case O_TRUE:
        j = json_object_new_boolean(true);
        break;
    case O_FALSE:
        j = json_object_new_boolean(false);
        break;
    case O_INT: {
        int64_t n;
        if (!ms_cli_parse_i64(cmd, o->flag, v, INT32_MIN, INT32_MAX, &n)) return false;
        j = json_object_new_int64(n);
        break;
    }
    case O_JSON:
        if (!(j = parse_json(cmd, o->flag, v, true))) return false;
        break;
    case O_CSV: {
        j = json_object_new_array();
        char *copy = strdup(v), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            json_object_array_add(j, json_object_new_string(t));
        free(copy);
        break;
    }
    case O_SECRET_FILE: {
        ms_buf b = MS_BUF_INIT;
        if (read_all(cmd, v, &b))
            j = parse_json(cmd, "the credentials file", ms_buf_cstr(&b), true);
        if (b.data) memset(b.data, 0, b.len);
        ms_buf_free(&b);
        if (!j) return false;
        break;
    }
    }
    json_object_object_add(body, o->field, j);
    return true;
}

/* Prints a 2xx answer pretty-printed (nothing for 204). */
static void print_answer(const ms_http_resp *r)
{
    if (r->status == 204 || !r->body.len) return;
    struct json_object *o = json_tokener_parse(ms_buf_cstr(&r->body));
    if (o)
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
    else
        puts(ms_buf_cstr(&r->body));
    json_object_put(o);
    fflush(stdout);
}

/* Runs one request and reports; returns the exit code. */
static int perform(const entity_def *e, const ms_config *cfg, const char *method, const char *path,
                   const char *tenant, const char *api_key, const char *body)
{
    ms_error err;
    ms_error_clear(&err);
    if (ms_http_global_init(&err) != MS_OK) {
        fprintf(stderr, "metasync %s: %s\n", e->cmd, err.detail);
        return MS_EXIT_INTERNAL;
    }
    ms_buf url = MS_BUF_INIT;
    ms_http_url(&url, cfg->server, path);
    char th[200], ah[200];
    const char *hdrs[3] = {NULL, NULL, NULL};
    size_t nh = 0;
    if (tenant) snprintf(th, sizeof th, "X-MetaSync-Tenant: %s", tenant), hdrs[nh++] = th;
    if (api_key) snprintf(ah, sizeof ah, "Authorization: Bearer %s", api_key), hdrs[nh++] = ah;
    ms_http_policy pol;
    ms_http_policy_default(&pol);
    ms_http_xfer x;
    ms_http_xfer_init(&x, NULL);
    ms_http_req req = {.method = method,
                       .url = ms_buf_cstr(&url),
                       .content_type = "application/json",
                       .body = body,
                       .len = body ? strlen(body) : 0,
                       .timeout_ms = 60000,
                       .headers = hdrs};
    /* only idempotent requests are retried on 5xx: a create is not repeated */
    if (strcmp(method, "POST") == 0) pol.max_attempts = 1;
    ms_err rc = ms_http_perform_retry(&x, &req, &pol, &err);
    long st = x.resp.status;
    int out = MS_EXIT_OK;
    if (rc != MS_OK) {
        fprintf(stderr, "metasync %s: %s\n", e->cmd, err.detail);
        out = ms_cli_exit_for(rc);
    } else if (st >= 200 && st < 300) {
        print_answer(&x.resp);
    } else {
        char code[64], detail[400];
        ms_http_problem(&x.resp, code, sizeof code, detail, sizeof detail, NULL, NULL);
        fprintf(stderr, "metasync %s: server answered %ld %s: %s\n", e->cmd, st, code, detail);
        out = st >= 500 || st == 429 ? MS_EXIT_UNREACHABLE : MS_EXIT_REFUSED;
    }
    memset(ah, 0, sizeof ah);
    ms_http_xfer_free(&x);
    ms_buf_free(&url);
    ms_http_global_cleanup();
    return out;
}

/*
 * Runs the request on the store itself (store.url, data_dir) instead of a server: how the first
 * admin API key is made when auth.required is on. Same checks and answers as over HTTP.
 */
static int perform_direct(const entity_def *e, const ms_config *cfg, const char *method,
                          const char *path, const char *tenant, const char *body)
{
    const ms_store_ops *ops = ms_plugins_store(cfg->store_url);
    if (!ops || !ops->ctl_list || ops->version < 2) {
        fprintf(stderr, "metasync %s: store.url: no store with control-plane records for '%s'\n",
                e->cmd, cfg->store_url);
        return MS_EXIT_USAGE;
    }
    const char *t = tenant ? tenant : "default";
    if (!ms_tenant_name_valid(t, strlen(t))) {
        fprintf(stderr,
                "metasync %s: %s: --tenant must be a tenant name: 1 to 63 characters a-z, 0-9, "
                "'-' and '_', starting with a letter or digit\n",
                e->cmd, ms_err_code(MS_ERR_BAD_PARAM));
        return MS_EXIT_USAGE;
    }
    ms_log log = {MS_LOG_ERROR, stderr};
    ms_log warn = {MS_LOG_WARN,
                   stderr}; /* the control plane's warnings (credentials unencrypted) */
    ms_store_open_args oa = {cfg, &log, cfg->store_url, NULL};
    ms_error err;
    ms_error_clear(&err);
    void *ctx = NULL;
    ms_control *c = NULL;
    ms_control_args ca = {cfg, &warn, ops, NULL};
    int rc = MS_EXIT_OK;
    if (ops->open(&oa, &ctx, &err) != MS_OK ||
        (ca.store_ctx = ctx, ms_control_open(&ca, &c, &err)) != MS_OK) {
        fprintf(stderr, "metasync %s: %s\n", e->cmd, err.detail);
        rc = err.code == MS_ERR_CONFIG ? MS_EXIT_USAGE : MS_EXIT_INTERNAL;
    }
    if (rc == MS_EXIT_OK) {
        ms_control_request rq = {method, path, t, body ? body : "", body ? strlen(body) : 0};
        unsigned status;
        const char *allow;
        ms_buf out = MS_BUF_INIT;
        if (ms_control_handle(c, &rq, &status, &out, &allow, &err) == MS_OK) {
            ms_http_resp r = {.status = (long)status, .body = out};
            print_answer(&r);
        } else {
            fprintf(stderr, "metasync %s: %s: %s\n", e->cmd, ms_err_code(err.code), err.detail);
            rc = ms_err_is_retriable(err.code) ? MS_EXIT_INTERNAL : MS_EXIT_REFUSED;
        }
        ms_buf_free(&out);
    }
    ms_control_free(c);
    if (ctx) ops->close(ctx);
    return rc;
}

/* Parses the verb, its positional and options from rest[], then runs the request. */
static int run_entity(const entity_def *e, const ms_config *cfg, int n, char **rest)
{
    if (n < 1) {
        usage(e, stderr);
        return MS_EXIT_USAGE;
    }
    const verb_def *v = e->verbs;
    while (v->name && strcmp(v->name, rest[0]) != 0)
        v++;
    if (!v->name) {
        fprintf(stderr, "metasync %s: unknown verb '%s' (see --help)\n", e->cmd, rest[0]);
        return MS_EXIT_USAGE;
    }
    bool list = strcmp(v->name, "list") == 0;
    const char *pos = NULL, *tenant = NULL;
    bool direct = false;
    ms_buf key = MS_BUF_INIT; /* the API key (--api-key-file) */
    struct json_object *body = json_object_new_object();
    int rc = MS_EXIT_OK;
    for (int i = 1; i < n && rc == MS_EXIT_OK;) { /* ms_cli_opt moves i past what it took */
        const char *val;
        int m = ms_cli_opt(e->cmd, n, rest, &i, "--tenant", &val);
        if (m == 1) {
            tenant = val;
            continue;
        }
        if ((m = ms_cli_opt(e->cmd, n, rest, &i, "--api-key-file", &val)) != 0) {
            if (m < 0 || !read_all(e->cmd, val, &key)) rc = MS_EXIT_USAGE;
            while (key.len && (unsigned char)key.data[key.len - 1] <= ' ')
                key.data[--key.len] = 0;
            continue;
        }
        if (strcmp(rest[i], "--direct") == 0) {
            direct = true;
            i++;
            continue;
        }
        if (m < 0) {
            rc = MS_EXIT_USAGE;
            break;
        }
        const opt_def *o = v->body ? e->opts : NULL;
        for (; o && o->flag; o++) {
            if (o->kind == O_TRUE || o->kind == O_FALSE) {
                if (strcmp(rest[i], o->flag) != 0) continue;
                i++;
                break;
            }
            int k = ms_cli_opt(e->cmd, n, rest, &i, o->flag, &val);
            if (k < 0) rc = MS_EXIT_USAGE;
            if (k != 0) break;
        }
        if (rc != MS_EXIT_OK) break;
        if (o && o->flag) {
            if (!add_opt(e->cmd, o, o->kind == O_TRUE || o->kind == O_FALSE ? "" : val, body))
                rc = MS_EXIT_USAGE;
        } else if (rest[i][0] == '-' && rest[i][1]) {
            fprintf(stderr, "metasync %s %s: unknown option %s (see --help)\n", e->cmd, v->name,
                    rest[i]);
            rc = MS_EXIT_USAGE;
        } else if (pos || list) {
            fprintf(stderr, "metasync %s %s: unexpected argument '%s'\n", e->cmd, v->name, rest[i]);
            rc = MS_EXIT_USAGE;
        } else {
            pos = rest[i];
        }
        if (!o || !o->flag) i++;
    }
    if (rc == MS_EXIT_OK && !list && (!pos || !*pos)) {
        fprintf(stderr, "metasync %s %s: missing argument (see --help)\n", e->cmd, v->name);
        rc = MS_EXIT_USAGE;
    }
    if (rc == MS_EXIT_OK) {
        ms_buf path = MS_BUF_INIT;
        ms_buf_puts(&path, e->path);
        if (v->with_id) {
            ms_buf_putc(&path, '/');
            ms_buf_put_pct(&path, pos);
        } else if (pos) {
            json_object_object_add(body, e->id_field, json_object_new_string(pos));
        }
        const char *text =
            v->body ? json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN) : NULL;
        if (direct) {
            char raw[600]; /* the path below /api/v1, not percent-encoded */
            snprintf(raw, sizeof raw, "%s%s%s", e->path + 7, v->with_id ? "/" : "",
                     v->with_id ? pos : "");
            rc = perform_direct(e, cfg, v->method, raw, tenant, text);
        } else {
            rc = perform(e, cfg, v->method, ms_buf_cstr(&path), tenant,
                         key.len ? ms_buf_cstr(&key) : NULL, text);
        }
        ms_buf_free(&path);
    }
    if (key.data) memset(key.data, 0, key.len);
    ms_buf_free(&key);
    json_object_put(body);
    return rc;
}

static int run(const char *cmd, int argc, char **argv, char **envp)
{
    const entity_def *e = NULL;
    for (size_t i = 0; i < sizeof entities / sizeof *entities; i++)
        if (strcmp(entities[i].cmd, cmd) == 0) e = &entities[i];
    if (ms_cli_wants_help(argc, argv)) {
        usage(e, stdout);
        return MS_EXIT_OK;
    }
    ms_config cfg;
    char **rest;
    int nrest;
    int rc = ms_cli_load_config(cmd, &cfg, argc, argv, envp, &rest, &nrest);
    if (rc != MS_EXIT_OK) return rc;
    rc = run_entity(e, &cfg, nrest, rest);
    free(rest);
    ms_config_free(&cfg);
    return rc;
}

int ms_cmd_tenant(int argc, char **argv, char **envp)
{
    return run("tenant", argc, argv, envp);
}

int ms_cmd_apikey(int argc, char **argv, char **envp)
{
    return run("apikey", argc, argv, envp);
}

int ms_cmd_connection(int argc, char **argv, char **envp)
{
    return run("connection", argc, argv, envp);
}

int ms_cmd_user(int argc, char **argv, char **envp)
{
    return run("user", argc, argv, envp);
}
