/*
 * ms_config.c — the configuration table of MetaSync and the loader that fills ms_config from it.
 *
 * One constant table (cfg_rows) lists every key: its type, dotted name, default as text, the
 * offset of its field in ms_config and a one-line description. Everything else is driven by that
 * table: defaults, parsing and validation of values, the YAML file (nested mappings flatten to
 * dotted keys), the METASYNC_* environment, command-line flags, --help and docs/config.md.
 * Sources apply in order defaults < YAML < environment < flags; the first bad value stops loading
 * with an MS_ERR_CONFIG that names the key, the value and where it came from.
 *
 * No global state besides the table; loading is meant to run once on the main thread.
 */
#include "ms_config.h"

#include "ms_buf.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

/* The kinds of value a key can hold; each decides how text is parsed and checked. */
typedef enum {
    CT_STRING,   /* any text, stored as a heap copy */
    CT_INT,      /* decimal int64 >= 0 (counts, milliseconds, seconds) */
    CT_SIZE,     /* int64 bytes >= 0 with optional binary suffix: 64k, 64M, 64MiB, 1G */
    CT_BOOL,     /* true/false, yes/no, on/off, 1/0 */
    CT_ENUM,     /* a string that must be one of the row's allowed values */
    CT_HOSTPORT, /* a string host:port, port 0..65535 */
    CT_PROPS,    /* a family `key.NAME`: free-form NAME=VALUE lines passed to a library as is */
} cfg_type;

/* One configuration key. `allowed` is the '|'-separated value list of a CT_ENUM row. */
typedef struct cfg_row {
    cfg_type type;
    const char *key;
    const char *def;
    size_t off;
    const char *desc;
    const char *allowed;
} cfg_row;

#define ROW(type, key, def, field, desc)                                                           \
    {                                                                                              \
        type, key, def, offsetof(ms_config, field), desc, NULL                                     \
    }
#define ENUM_ROW(key, def, field, allowed, desc)                                                   \
    {                                                                                              \
        CT_ENUM, key, def, offsetof(ms_config, field), desc, allowed                               \
    }

/* The only list of configuration keys. Order is the order of --help and docs/config.md. */
static const cfg_row cfg_rows[] = {
    ROW(CT_HOSTPORT, "listen", "127.0.0.1:8080", listen,
        "Address the HTTP API listens on, as host:port; port 0 picks a free port"),
    ROW(CT_STRING, "data_dir", "./data", data_dir,
        "Directory holding the embedded store and local snapshots"),
    ENUM_ROW("log.level", "info", log_level, "error|warn|info|debug",
             "Least severe log level written: error, warn, info or debug"),
    ROW(CT_STRING, "server", "http://127.0.0.1:8080", server,
        "URL of a running server, used by client commands (ingest, get, changes, demo)"),
    ROW(CT_SIZE, "http.max_body_bytes", "64MiB", http_max_body_bytes,
        "Largest request body accepted; larger bodies get 413"),
    ROW(CT_INT, "http.max_connections", "256", http_max_connections,
        "Most HTTP connections served at once"),
    ROW(CT_SIZE, "http.body_budget_bytes", "256MiB", http_body_budget_bytes,
        "Total bytes of request bodies buffered at once across all connections; beyond it, 503"),
    ROW(CT_SIZE, "limits.max_event_bytes", "1MiB", limits_max_event_bytes,
        "Largest single event accepted; larger events are rejected with event_too_large"),
    ROW(CT_INT, "limits.max_depth", "64", limits_max_depth,
        "Deepest JSON nesting accepted in an event"),
    ROW(CT_SIZE, "lanes.fast_max_bytes", "32MiB", lanes_fast_max_bytes,
        "Memory held by events queued on the fast (interactive) lane (their decoded size) "
        "before producers get backpressure"),
    ROW(CT_SIZE, "lanes.bulk_max_bytes", "64MiB", lanes_bulk_max_bytes,
        "Memory held by events queued on the bulk lane (their decoded size) before producers get "
        "backpressure"),
    ROW(CT_INT, "engine.max_commit_events", "5000", engine_max_commit_events,
        "Most events written in one group commit"),
    ROW(CT_INT, "engine.enqueue_timeout_ms", "2000", engine_enqueue_timeout_ms,
        "Milliseconds to wait for queue room before answering 503 overloaded"),
    ROW(CT_STRING, "store.url", "sqlite", store_url,
        "Store to use: \"sqlite\" (data_dir/metasync.db), sqlite:PATH, or a PostgreSQL URI "
        "postgres://USER:PASSWORD@HOST:PORT/DATABASE (docs/model.md)"),
    ENUM_ROW("store.synchronous", "full", store_synchronous, "full|normal",
             "SQLite synchronous mode: full (durable on power loss) or normal (faster)"),
    ROW(CT_INT, "store.cache_mb", "64", store_cache_mb, "SQLite page cache size in MiB"),
    ROW(CT_SIZE, "store.wal_max_bytes", "128MiB", store_wal_max_bytes,
        "SQLite: WAL size at which the writer waits for the background checkpoint to catch up, "
        "so that the WAL starts over (a larger WAL makes these short waits rarer)"),
    ROW(CT_INT, "store.listen_check_ms", "30000", store_listen_check_ms,
        "PostgreSQL: after this many quiet milliseconds the commit listener sends SELECT 1; no "
        "answer within as long again counts as a dead connection (0: TCP keepalives only)"),
    ROW(CT_BOOL, "snapshots.enabled", "true", snapshots_enabled,
        "Write snapshot objects of committed changes"),
    ROW(CT_STRING, "snapshots.url", "", snapshots_url,
        "Where snapshot objects go; empty means file://<data_dir>/snapshots"),
    ROW(CT_SIZE, "snapshots.max_object_bytes", "8MiB", snapshots_max_object_bytes,
        "Size at which the current snapshot object is closed and a new one started"),
    ROW(CT_INT, "snapshots.max_object_age_ms", "60000", snapshots_max_object_age_ms,
        "Milliseconds after which a non-empty snapshot object is closed"),
    ROW(CT_INT, "sinks.nice", "10", sinks_nice,
        "CPU priority of the sink threads (snapshots, Kafka changes) as a nice value, 0-19: above "
        "0 they leave the cores to ingest while it is busy and catch up when it pauses"),
    ROW(CT_STRING, "s3.endpoint", "", s3_endpoint,
        "S3 endpoint URL for snapshots.url=s3://...; empty means "
        "https://s3.<region>.amazonaws.com"),
    ROW(CT_STRING, "s3.region", "us-east-1", s3_region,
        "Region the S3 requests are signed for (SigV4)"),
    ROW(CT_BOOL, "s3.path_style", "false", s3_path_style,
        "Put the bucket in the URL path instead of the host name (MinIO, s3rver, buckets with "
        "dots)"),
    ROW(CT_INT, "s3.timeout_ms", "30000", s3_timeout_ms,
        "Milliseconds one S3 request may take, connecting included"),
    ROW(CT_INT, "s3.max_retries", "4", s3_max_retries,
        "Retries of one S3 PUT on 5xx, 429, timeouts and connection errors (jittered backoff), "
        "before the snapshot sink takes over and tries again later"),
    ROW(CT_INT, "changes.max_wait_seconds", "60", changes_max_wait_seconds,
        "Longest wait, in seconds, a long-poll GET /changes may ask for"),
    ROW(CT_STRING, "kafka.brokers", "", kafka_brokers,
        "Kafka bootstrap servers (host:port,...); empty turns the Kafka source and sink off"),
    ROW(CT_STRING, "kafka.group_id", "metasync", kafka_group_id,
        "Consumer group of the Kafka source; every worker of one deployment uses the same"),
    ROW(CT_STRING, "kafka.topics", "metasync.events", kafka_topics,
        "Comma-separated topics of events for the fast path (all types; bulk types still go "
        "to the bulk lane)"),
    ROW(CT_STRING, "kafka.bulk_topics", "metasync.events.bulk", kafka_bulk_topics,
        "Comma-separated topics of bulk events (columns, BI fields), consumed apart so they "
        "never hold up the fast topics"),
    ROW(CT_STRING, "kafka.changes_topic", "metasync.changes", kafka_changes_topic,
        "Topic that receives every change record; empty turns the Kafka changes sink off"),
    ROW(CT_BOOL, "kafka.changes_topic_per_tenant", "false", kafka_changes_topic_per_tenant,
        "Prefix the changes topic with the tenant and a dot (acme.metasync.changes)"),
    ENUM_ROW("kafka.changes_format", "json", kafka_changes_format, "json|avro",
             "Value format of change records on Kafka: json, or avro (Confluent wire format, "
             "schema registered)"),
    ROW(CT_STRING, "kafka.dlq_topic", "metasync.dlq", kafka_dlq_topic,
        "Dead-letter topic for undecodable or invalid messages"),
    ROW(CT_INT, "kafka.batch_max_messages", "5000", kafka_batch_max_messages,
        "Most Kafka messages submitted to the engine as one batch"),
    ROW(CT_SIZE, "kafka.max_buffered_bytes", "64MiB", kafka_max_buffered_bytes,
        "Bytes of consumed, not yet committed messages held before partitions are paused"),
    ROW(CT_PROPS, "kafka.properties", "", kafka_properties,
        "Any librdkafka property, passed through as is (kafka.properties.security.protocol, "
        "kafka.properties.sasl.mechanism, ...)"),
    ROW(CT_BOOL, "registry.enabled", "true", registry_enabled,
        "Serve the embedded Confluent-compatible schema registry under /registry"),
    ROW(CT_STRING, "registry.url", "", registry_url,
        "URL of an external schema registry to use instead of the embedded one"),
    ROW(CT_STRING, "secrets.key_file", "", secrets_key_file,
        "File holding the 256-bit key (64 hex digits, `openssl rand -hex 32`) that encrypts "
        "connection credentials at rest (AES-256-GCM); empty stores them unencrypted"),
    ROW(CT_BOOL, "auth.required", "false", auth_required,
        "Require `Authorization: Bearer <API key>` on every /api/v1 request; the key's tenant "
        "becomes the request's tenant"),
};

#define CFG_NROWS      (sizeof cfg_rows / sizeof cfg_rows[0])
#define ENV_PREFIX     "METASYNC_"
#define YAML_MAX_DEPTH 16

/* ---- names ---------------------------------------------------------------------------------- */

/* True when the first n characters of b equal a[0..n), with '-' and '_' treated as the same. */
static bool name_prefix(const char *a, size_t n, const char *b)
{
    for (size_t i = 0; i < n; i++) {
        if (!b[i]) return false;
        char x = a[i] == '-' ? '_' : a[i], y = b[i] == '-' ? '_' : b[i];
        if (x != y) return false;
    }
    return true;
}

/* True when a[0..alen) equals the NUL-terminated b, with '-' and '_' treated as the same. */
static bool name_eq(const char *a, size_t alen, const char *b)
{
    return name_prefix(a, alen, b) && b[alen] == '\0';
}

/* Returns the row named by name[0..len) ('-' and '_' interchangeable), or NULL. */
static const cfg_row *find_row_n(const char *name, size_t len)
{
    for (size_t i = 0; i < CFG_NROWS; i++)
        if (name_eq(name, len, cfg_rows[i].key)) return &cfg_rows[i];
    return NULL;
}

/* Returns the row named by the NUL-terminated name, or NULL. */
static const cfg_row *find_row(const char *name)
{
    return find_row_n(name, strlen(name));
}

/* Returns the CT_PROPS row whose key prefixes name[0..len) followed by '.' and a non-empty
 * property name; *sub is set to that name. NULL when there is none. */
static const cfg_row *find_props_row(const char *name, size_t len, const char **sub)
{
    for (size_t i = 0; i < CFG_NROWS; i++) {
        size_t k = strlen(cfg_rows[i].key);
        if (cfg_rows[i].type == CT_PROPS && len > k + 1 && name_prefix(name, k, cfg_rows[i].key) &&
            name[k] == '.') {
            *sub = name + k + 1;
            return &cfg_rows[i];
        }
    }
    return NULL;
}

/* Sets property sub[0..sublen) of the CT_PROPS row to value: the field holds "name=value\n"
 * lines, one per property, the last setting of a name replacing the earlier one. */
static ms_err set_prop(ms_config *c, const cfg_row *row, const char *sub, size_t sublen,
                       const char *value, ms_error *err)
{
    char **field = (char **)((char *)c + row->off);
    if (strchr(value, '\n') || memchr(sub, '=', sublen) || memchr(sub, '\n', sublen))
        return ms_error_set(err, MS_ERR_CONFIG, "%s.%.*s: a property name or value cannot hold "
                            "'=' (in the name) or a line break", row->key, (int)sublen, sub);
    ms_buf out = MS_BUF_INIT;
    for (const char *p = *field ? *field : ""; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);
        if (!(strncmp(p, sub, sublen) == 0 && p[sublen] == '=')) ms_buf_append(&out, p, n);
        p += n;
    }
    ms_buf_printf(&out, "%.*s=%s\n", (int)sublen, sub, value);
    free(*field);
    *field = ms_xstrdup(ms_buf_cstr(&out));
    ms_buf_free(&out);
    return MS_OK;
}

/* Writes the environment variable of key (`a.b_c` -> METASYNC_A_B_C) into out[0..n). */
static void env_name(const char *key, char *out, size_t n)
{
    size_t j = snprintf(out, n, "%s", ENV_PREFIX);
    for (; *key && j + 1 < n; key++)
        out[j++] = (*key == '.' || *key == '-') ? '_' : (char)toupper((unsigned char)*key);
    out[j < n ? j : n - 1] = '\0';
}

/* Writes the flag spelling of key (`a.b_c` -> --a.b-c) into out[0..n). */
static void flag_name(const char *key, char *out, size_t n)
{
    size_t j = snprintf(out, n, "--");
    for (; *key && j + 1 < n; key++)
        out[j++] = *key == '_' ? '-' : *key;
    out[j < n ? j : n - 1] = '\0';
}

/* ---- value parsing -------------------------------------------------------------------------- */

/* Copies s without leading/trailing ASCII whitespace into out[0..n); false if it doesn't fit. */
static bool trim_copy(const char *s, char *out, size_t n)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    if (len >= n) return false;
    memcpy(out, s, len);
    out[len] = '\0';
    return true;
}

/* Parses the leading decimal digits of s into *v; sets *end past them. Returns false when there
 * are no digits or the number does not fit in int64 (then *overflow is set). */
static bool parse_digits(const char *s, int64_t *v, const char **end, bool *overflow)
{
    int64_t x = 0;
    const char *p = s;
    *overflow = false;
    for (; *p >= '0' && *p <= '9'; p++) {
        int d = *p - '0';
        if (x > (INT64_MAX - d) / 10) {
            *overflow = true;
            return false;
        }
        x = x * 10 + d;
    }
    *end = p;
    *v = x;
    return p != s;
}

/* Case-insensitive equality of two NUL-terminated strings. */
static bool ieq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

/* Returns the byte multiplier of a size suffix ("", "k", "MiB", "GB", case-insensitive; all
 * binary), or 0 when the suffix is not one. */
static int64_t size_multiplier(const char *suffix)
{
    static const struct {
        const char *s;
        int64_t mult;
    } sfx[] = {
        {"", 1},
        {"b", 1},
        {"k", 1024},
        {"kb", 1024},
        {"kib", 1024},
        {"m", 1024 * 1024},
        {"mb", 1024 * 1024},
        {"mib", 1024 * 1024},
        {"g", 1024 * 1024 * 1024},
        {"gb", 1024 * 1024 * 1024},
        {"gib", 1024 * 1024 * 1024},
        {"t", (int64_t)1024 * 1024 * 1024 * 1024},
        {"tb", (int64_t)1024 * 1024 * 1024 * 1024},
        {"tib", (int64_t)1024 * 1024 * 1024 * 1024},
    };
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++)
        if (ieq(suffix, sfx[i].s)) return sfx[i].mult;
    return 0;
}

/* Formats the "(from ORIGIN)" tail of an error into out; empty when origin is NULL. */
static const char *from_tail(const char *origin, char *out, size_t n)
{
    if (origin && *origin)
        snprintf(out, n, " (from %s)", origin);
    else
        out[0] = '\0';
    return out;
}

/* Reports that value is bad for row: `key: "value" WHAT (from ORIGIN)`. Returns MS_ERR_CONFIG. */
static ms_err bad_value(const cfg_row *row, const char *value, const char *what, const char *origin,
                        ms_error *err)
{
    char tail[200];
    return ms_error_set(err, MS_ERR_CONFIG, "%s: \"%.80s\" %s%s", row->key, value, what,
                        from_tail(origin, tail, sizeof tail));
}

/* Parses value as a non-negative int64 (with size suffixes when is_size) into *out. */
static ms_err parse_number(const cfg_row *row, const char *value, bool is_size, const char *origin,
                           int64_t *out, ms_error *err)
{
    const char *what = is_size ? "is not a size (use bytes or a suffix: 64k, 8M, 64MiB, 1G)"
                               : "is not a whole number";
    char t[64];
    if (!trim_copy(value, t, sizeof t)) return bad_value(row, value, what, origin, err);
    if (t[0] == '-') return bad_value(row, value, "must not be negative", origin, err);
    const char *end;
    bool overflow;
    int64_t v;
    if (!parse_digits(t, &v, &end, &overflow))
        return bad_value(row, value, overflow ? "is out of range" : what, origin, err);
    int64_t mult = 1;
    if (is_size) {
        while (*end == ' ' || *end == '\t')
            end++;
        mult = size_multiplier(end);
        if (!mult) return bad_value(row, value, what, origin, err);
    } else if (*end) {
        return bad_value(row, value, what, origin, err);
    }
    if (v > INT64_MAX / mult) return bad_value(row, value, "is out of range", origin, err);
    *out = v * mult;
    return MS_OK;
}

/* Parses value as a boolean word into *out. */
static ms_err parse_bool(const cfg_row *row, const char *value, const char *origin, bool *out,
                         ms_error *err)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    char t[16];
    if (trim_copy(value, t, sizeof t)) {
        for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
            if (ieq(t, yes[i])) return *out = true, MS_OK;
            if (ieq(t, no[i])) return *out = false, MS_OK;
        }
    }
    return bad_value(row, value, "is not a boolean (use true/false, yes/no, on/off, 1/0)", origin,
                     err);
}

/* Finds value among row->allowed (case-insensitive); on success *out is a heap copy of the
 * canonical spelling. */
static ms_err parse_enum(const cfg_row *row, const char *value, const char *origin, char **out,
                         ms_error *err)
{
    char t[64];
    if (trim_copy(value, t, sizeof t)) {
        size_t tlen = strlen(t);
        for (const char *p = row->allowed; *p;) {
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t)(bar - p) : strlen(p);
            if (n == tlen && strncasecmp(p, t, n) == 0) {
                *out = ms_xstrndup(p, n);
                return MS_OK;
            }
            p += n + (bar ? 1 : 0);
        }
    }
    ms_buf what = MS_BUF_INIT;
    ms_buf_puts(&what, "is not one of ");
    for (const char *p = row->allowed; *p; p++)
        ms_buf_puts(&what, *p == '|' ? ", " : (char[]){*p, '\0'});
    ms_err rc = bad_value(row, value, ms_buf_cstr(&what), origin, err);
    ms_buf_free(&what);
    return rc;
}

/* Checks that value looks like host:port with a non-empty host and a port in 0..65535. */
static ms_err check_hostport(const cfg_row *row, const char *value, const char *origin,
                             ms_error *err)
{
    const char *colon = strrchr(value, ':');
    if (!colon || colon == value)
        return bad_value(row, value, "is not host:port (e.g. 127.0.0.1:8080)", origin, err);
    const char *end;
    bool overflow;
    int64_t port;
    if (!parse_digits(colon + 1, &port, &end, &overflow) || *end || port > 65535)
        return bad_value(row, value, "has no port in 0..65535 after the last ':'", origin, err);
    return MS_OK;
}

/* Parses value for row and stores it into c; on error c is unchanged. */
static ms_err set_row(ms_config *c, const cfg_row *row, const char *value, const char *origin,
                      ms_error *err)
{
    void *field = (char *)c + row->off;
    ms_err rc = MS_OK;
    switch (row->type) {
    case CT_INT:
    case CT_SIZE: {
        int64_t v = 0;
        rc = parse_number(row, value, row->type == CT_SIZE, origin, &v, err);
        if (rc == MS_OK) *(int64_t *)field = v;
        break;
    }
    case CT_BOOL: {
        bool b = false;
        rc = parse_bool(row, value, origin, &b, err);
        if (rc == MS_OK) *(bool *)field = b;
        break;
    }
    case CT_ENUM: {
        char *s = NULL;
        rc = parse_enum(row, value, origin, &s, err);
        if (rc == MS_OK) {
            free(*(char **)field);
            *(char **)field = s;
        }
        break;
    }
    case CT_HOSTPORT:
        rc = check_hostport(row, value, origin, err);
        if (rc != MS_OK) break;
        /* fall through */
    case CT_STRING:
    case CT_PROPS: /* set as a whole: "name=value" lines */
        free(*(char **)field);
        *(char **)field = ms_xstrdup(value);
        break;
    }
    return rc;
}

/* ---- public: defaults, set, free ------------------------------------------------------------ */

/* Fills every field of c from the table's defaults; c's previous contents are not freed.
 * A default that does not parse is a bug in the table and aborts. */
void ms_config_defaults(ms_config *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < CFG_NROWS; i++) {
        ms_error err;
        if (set_row(c, &cfg_rows[i], cfg_rows[i].def, "built-in default", &err) != MS_OK) {
            fprintf(stderr, "metasync: bad built-in default: %s\n", err.detail);
            abort();
        }
    }
}

/* Sets the key named `key` ('-' and '_' interchangeable) from text. origin (may be NULL) names
 * the source for error messages, as in "(from ORIGIN)". Unknown key or bad value: MS_ERR_CONFIG,
 * and c is unchanged. */
ms_err ms_config_set(ms_config *c, const char *key, const char *value, const char *origin,
                     ms_error *err)
{
    const char *sub = NULL;
    const cfg_row *prow = key ? find_props_row(key, strlen(key), &sub) : NULL;
    if (prow) return set_prop(c, prow, sub, strlen(sub), value ? value : "", err);
    const cfg_row *row = key ? find_row(key) : NULL;
    if (!row) {
        char tail[200];
        return ms_error_set(err, MS_ERR_CONFIG, "unknown key '%s'%s", key ? key : "(null)",
                            from_tail(origin, tail, sizeof tail));
    }
    if (!value) value = "";
    return set_row(c, row, value, origin, err);
}

/* Frees every string of c and sets it to NULL; numbers and booleans are left as they are.
 * Calling it again (or on a zeroed struct) is harmless. */
void ms_config_free(ms_config *c)
{
    if (!c) return;
    for (size_t i = 0; i < CFG_NROWS; i++) {
        const cfg_row *row = &cfg_rows[i];
        if (row->type == CT_STRING || row->type == CT_ENUM || row->type == CT_HOSTPORT ||
            row->type == CT_PROPS) {
            char **field = (char **)((char *)c + row->off);
            free(*field);
            *field = NULL;
        }
    }
}

/* ---- YAML file ------------------------------------------------------------------------------ */

/* State of one YAML file being read. */
typedef struct yaml_ctx {
    yaml_parser_t parser;
    const char *path;
    ms_config *c;
    ms_error *err;
} yaml_ctx;

/* Reads the next event into *ev; on a libyaml error reports it with file:line:column. */
static ms_err yaml_next(yaml_ctx *y, yaml_event_t *ev)
{
    if (yaml_parser_parse(&y->parser, ev)) return MS_OK;
    const yaml_parser_t *p = &y->parser;
    const char *problem = p->problem ? p->problem : "unknown error";
    if (p->error == YAML_READER_ERROR) {
        ms_error_set(y->err, MS_ERR_CONFIG, "%s: invalid YAML: %s at byte %zu", y->path, problem,
                     p->problem_offset);
        ms_error_at(y->err, 0, 0, (long)p->problem_offset);
        return MS_ERR_CONFIG;
    }
    size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;
    if (p->context)
        ms_error_set(y->err, MS_ERR_CONFIG, "%s:%zu:%zu: invalid YAML: %s (%s, line %zu)", y->path,
                     line, col, problem, p->context, p->context_mark.line + 1);
    else
        ms_error_set(y->err, MS_ERR_CONFIG, "%s:%zu:%zu: invalid YAML: %s", y->path, line, col,
                     problem);
    ms_error_at(y->err, (long)line, (long)col, (long)p->problem_mark.index);
    return MS_ERR_CONFIG;
}

/* True when the scalar event is YAML's null (empty, ~, null written without quotes). */
static bool yaml_is_null(const yaml_event_t *ev)
{
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
    const char *v = (const char *)ev->data.scalar.value;
    return !*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

/* True when some key of the table starts with prefix followed by a '.'. */
static bool is_key_prefix(const char *prefix)
{
    size_t n = strlen(prefix);
    const char *sub;
    for (size_t i = 0; i < CFG_NROWS; i++) {
        if (name_prefix(prefix, n, cfg_rows[i].key) && cfg_rows[i].key[n] == '.') return true;
        if (cfg_rows[i].type == CT_PROPS && name_eq(prefix, n, cfg_rows[i].key)) return true;
    }
    return find_props_row(prefix, n, &sub) != NULL;
}

/* Applies one leaf `key: value` met at line (1-based). */
static ms_err yaml_leaf(yaml_ctx *y, const char *key, const yaml_event_t *ev, size_t line)
{
    const char *sub;
    if (!find_row(key) && !find_props_row(key, strlen(key), &sub))
        return ms_error_set(y->err, MS_ERR_CONFIG, "unknown key '%s' (in %s line %zu)", key,
                            y->path, line);
    char origin[300];
    snprintf(origin, sizeof origin, "%s line %zu", y->path, line);
    const char *value = yaml_is_null(ev) ? "" : (const char *)ev->data.scalar.value;
    ms_err rc = ms_config_set(y->c, key, value, origin, y->err);
    if (rc != MS_OK) ms_error_at(y->err, (long)line, (long)ev->start_mark.column + 1, -1);
    return rc;
}

/* Reads the body of a mapping whose MAPPING-START was just consumed, up to its MAPPING-END.
 * prefix is the dotted key of the mapping ("" at top level). */
static ms_err yaml_mapping(yaml_ctx *y, const char *prefix, int depth)
{
    for (;;) {
        yaml_event_t kev, vev;
        ms_err rc = yaml_next(y, &kev);
        if (rc != MS_OK) return rc;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return MS_OK;
        }
        size_t line = kev.start_mark.line + 1;
        if (kev.type != YAML_SCALAR_EVENT) {
            yaml_event_delete(&kev);
            return ms_error_set(y->err, MS_ERR_CONFIG,
                                "%s line %zu: keys must be plain text, not lists or mappings",
                                y->path, line);
        }
        ms_buf full = MS_BUF_INIT;
        if (*prefix) ms_buf_printf(&full, "%s.", prefix);
        ms_buf_puts(&full, (const char *)kev.data.scalar.value);
        yaml_event_delete(&kev);
        const char *key = ms_buf_cstr(&full);

        rc = yaml_next(y, &vev);
        if (rc == MS_OK) {
            switch (vev.type) {
            case YAML_SCALAR_EVENT:
                rc = yaml_leaf(y, key, &vev, line);
                break;
            case YAML_MAPPING_START_EVENT:
                if (find_row(key) && find_row(key)->type != CT_PROPS)
                    rc = ms_error_set(y->err, MS_ERR_CONFIG,
                                      "%s: expected a single value, not a mapping (in %s line %zu)",
                                      key, y->path, line);
                else if (!is_key_prefix(key))
                    rc = ms_error_set(y->err, MS_ERR_CONFIG, "unknown key '%s' (in %s line %zu)",
                                      key, y->path, line);
                else if (depth >= YAML_MAX_DEPTH)
                    rc = ms_error_set(y->err, MS_ERR_CONFIG, "%s line %zu: nested too deeply",
                                      y->path, line);
                else
                    rc = yaml_mapping(y, key, depth + 1);
                break;
            case YAML_SEQUENCE_START_EVENT:
                rc = ms_error_set(y->err, MS_ERR_CONFIG,
                                  "%s: lists are not supported, give a single value (in %s line "
                                  "%zu)",
                                  key, y->path, line);
                break;
            case YAML_ALIAS_EVENT:
                rc = ms_error_set(y->err, MS_ERR_CONFIG,
                                  "%s: YAML aliases are not supported (in %s line %zu)", key,
                                  y->path, line);
                break;
            default:
                rc = ms_error_set(y->err, MS_ERR_CONFIG, "%s: unexpected YAML (in %s line %zu)",
                                  key, y->path, line);
                break;
            }
            yaml_event_delete(&vev);
        }
        ms_buf_free(&full);
        if (rc != MS_OK) {
            if (y->err && y->err->line == 0) ms_error_at(y->err, (long)line, 0, -1);
            return rc;
        }
    }
}

/* Reads the single document of the stream: a top-level mapping, or nothing at all. */
static ms_err yaml_document(yaml_ctx *y)
{
    yaml_event_t ev;
    ms_err rc = yaml_next(y, &ev);
    if (rc != MS_OK) return rc;
    yaml_event_type_t type = ev.type;
    bool is_null = type == YAML_SCALAR_EVENT && yaml_is_null(&ev);
    size_t line = ev.start_mark.line + 1;
    yaml_event_delete(&ev);
    if (type == YAML_MAPPING_START_EVENT) {
        rc = yaml_mapping(y, "", 0);
        if (rc != MS_OK) return rc;
    } else if (!is_null) {
        return ms_error_set(y->err, MS_ERR_CONFIG,
                            "%s line %zu: the top level must be a mapping of keys to values",
                            y->path, line);
    }
    rc = yaml_next(y, &ev); /* DOCUMENT-END: the parser guarantees it here */
    if (rc == MS_OK) yaml_event_delete(&ev);
    return rc;
}

/* Loads the YAML file at path into c. Missing/unreadable: MS_ERR_IO; bad YAML or values:
 * MS_ERR_CONFIG. */
static ms_err load_yaml(ms_config *c, const char *path, ms_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ms_error_set(err, MS_ERR_IO, "cannot read config file %s: %s", path,
                            strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return ms_error_set(err, MS_ERR_IO, "cannot read config file %s: %s", path,
                            strerror(EISDIR));
    }
    yaml_ctx y = {.path = path, .c = c, .err = err};
    if (!yaml_parser_initialize(&y.parser)) {
        fclose(f);
        return ms_error_set(err, MS_ERR_NOMEM, "cannot initialise the YAML parser");
    }
    yaml_parser_set_input_file(&y.parser, f);

    yaml_event_t ev;
    ms_err rc = yaml_next(&y, &ev); /* STREAM-START */
    if (rc == MS_OK) yaml_event_delete(&ev);
    int docs = 0;
    while (rc == MS_OK) {
        rc = yaml_next(&y, &ev);
        if (rc != MS_OK) break;
        yaml_event_type_t type = ev.type;
        size_t line = ev.start_mark.line + 1;
        yaml_event_delete(&ev);
        if (type == YAML_STREAM_END_EVENT) break;
        if (++docs > 1) {
            rc = ms_error_set(err, MS_ERR_CONFIG,
                              "%s line %zu: only one YAML document is allowed in a config file",
                              path, line);
            break;
        }
        rc = yaml_document(&y); /* type is DOCUMENT-START */
    }
    if (rc != MS_OK && ferror(f)) {
        int e = errno;
        rc = ms_error_set(err, MS_ERR_IO, "cannot read config file %s: %s", path, strerror(e));
    }
    yaml_parser_delete(&y.parser);
    fclose(f);
    return rc;
}

/* ---- environment ---------------------------------------------------------------------------- */

/* Applies every METASYNC_* variable of envp (NULL-terminated; may be NULL). A variable that
 * names no key is an error, except METASYNC_CONFIG and METASYNC_TEST_*. */
static ms_err load_env(ms_config *c, char *const *envp, ms_error *err)
{
    const size_t plen = strlen(ENV_PREFIX);
    for (size_t i = 0; envp && envp[i]; i++) {
        const char *var = envp[i];
        const char *eq = strchr(var, '=');
        if (!eq || strncmp(var, ENV_PREFIX, plen) != 0) continue;
        size_t nlen = (size_t)(eq - var);
        if ((nlen == strlen(ENV_PREFIX "CONFIG") && strncmp(var, ENV_PREFIX "CONFIG", nlen) == 0) ||
            strncmp(var, ENV_PREFIX "TEST_", strlen(ENV_PREFIX "TEST_")) == 0)
            continue;
        const cfg_row *row = NULL;
        char name[128];
        for (size_t r = 0; r < CFG_NROWS && !row; r++) {
            env_name(cfg_rows[r].key, name, sizeof name);
            if (strlen(name) == nlen && strncmp(name, var, nlen) == 0) row = &cfg_rows[r];
        }
        for (size_t r = 0; r < CFG_NROWS && !row; r++) {
            env_name(cfg_rows[r].key, name, sizeof name);
            size_t k = strlen(name);
            if (cfg_rows[r].type == CT_PROPS && nlen > k + 1 && strncmp(name, var, k) == 0 &&
                var[k] == '_') {
                /* METASYNC_KAFKA_PROPERTIES_SASL_MECHANISM -> sasl.mechanism */
                ms_buf sub = MS_BUF_INIT;
                for (const char *p = var + k + 1; p < eq; p++)
                    ms_buf_putc(&sub, *p == '_' ? '.' : (char)tolower((unsigned char)*p));
                ms_err rc = set_prop(c, &cfg_rows[r], ms_buf_cstr(&sub), sub.len, eq + 1, err);
                ms_buf_free(&sub);
                if (rc != MS_OK) return rc;
                row = &cfg_rows[r];
            }
        }
        if (row && row->type == CT_PROPS) continue;
        if (!row) {
            ms_buf guess = MS_BUF_INIT;
            for (const char *p = var + plen; p < eq; p++)
                ms_buf_putc(&guess, (char)tolower((unsigned char)*p));
            ms_error_set(err, MS_ERR_CONFIG, "unknown environment variable %.*s (no config key %s)",
                         (int)nlen, var, ms_buf_cstr(&guess));
            ms_buf_free(&guess);
            return MS_ERR_CONFIG;
        }
        env_name(row->key, name, sizeof name);
        ms_err rc = set_row(c, row, eq + 1, name, err);
        if (rc != MS_OK) return rc;
    }
    return MS_OK;
}

/* ---- flags ---------------------------------------------------------------------------------- */

/* True when arg is `--config` or `--config=...`; then *value is the text after '=' or NULL. */
static bool is_config_flag(const char *arg, const char **value)
{
    if (strncmp(arg, "--config", 8) != 0 || (arg[8] && arg[8] != '=')) return false;
    *value = arg[8] == '=' ? arg + 9 : NULL;
    return true;
}

/* Finds the YAML file named by `--config FILE` / `--config=FILE` in argv (the last one wins;
 * scanning stops at `--`), else by METASYNC_CONFIG in envp. *path is NULL when there is none. */
static ms_err find_config_path(char *const *envp, int argc, char **argv, const char **path,
                               ms_error *err)
{
    *path = NULL;
    for (int i = 0; i < argc; i++) {
        const char *value;
        if (strcmp(argv[i], "--") == 0) break;
        if (!is_config_flag(argv[i], &value)) continue;
        if (!value) value = i + 1 < argc ? argv[++i] : NULL;
        if (!value || !*value)
            return ms_error_set(err, MS_ERR_CONFIG,
                                "--config: missing value (the YAML file to read)");
        *path = value;
    }
    if (*path) return MS_OK;
    const char *name = ENV_PREFIX "CONFIG=";
    for (size_t i = 0; envp && envp[i]; i++)
        if (strncmp(envp[i], name, strlen(name)) == 0 && envp[i][strlen(name)])
            *path = envp[i] + strlen(name);
    return MS_OK;
}

/* Applies config-key flags of argv and copies everything else to rest[] (see ms_config_load). */
static ms_err load_flags(ms_config *c, int argc, char **argv, char **rest, int *nrest,
                         ms_error *err)
{
    for (int i = 0; i < argc; i++) {
        char *arg = argv[i];
        const char *cval;
        if (strcmp(arg, "--") == 0) {
            while (i < argc)
                rest[(*nrest)++] = argv[i++];
            break;
        }
        if (is_config_flag(arg, &cval)) {
            if (!cval) i++; /* its value, checked by find_config_path */
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            rest[(*nrest)++] = arg;
            continue;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        char origin[160];
        snprintf(origin, sizeof origin, "--%.*s", (int)(nlen < 150 ? nlen : 150), name);
        const char *sub;
        const cfg_row *row = find_props_row(name, nlen, &sub);
        if (row) {
            const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!value)
                return ms_error_set(err, MS_ERR_CONFIG, "%s: missing value (from %s)", origin + 2,
                                    origin);
            ms_err rc = set_prop(c, row, sub, (size_t)(name + nlen - sub), value, err);
            if (rc != MS_OK) return rc;
            continue;
        }
        row = find_row_n(name, nlen);
        if (row) {
            const char *value;
            if (eq)
                value = eq + 1;
            else if (row->type == CT_BOOL)
                value = "true";
            else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                value = argv[++i];
            else
                return ms_error_set(err, MS_ERR_CONFIG, "%s: missing value (from %s)", row->key,
                                    origin);
            ms_err rc = set_row(c, row, value, origin, err);
            if (rc != MS_OK) return rc;
            continue;
        }
        if (nlen > 3 && (strncmp(name, "no-", 3) == 0 || strncmp(name, "no_", 3) == 0)) {
            row = find_row_n(name + 3, nlen - 3);
            if (row && row->type == CT_BOOL) {
                if (eq)
                    return ms_error_set(err, MS_ERR_CONFIG, "%s: %s takes no value", row->key,
                                        origin);
                ms_err rc = set_row(c, row, "false", origin, err);
                if (rc != MS_OK) return rc;
                continue;
            }
        }
        rest[(*nrest)++] = arg; /* a flag of the command, not of the configuration */
    }
    return MS_OK;
}

/* ---- public: load --------------------------------------------------------------------------- */

/* See ms_config.h. Sources apply in order YAML file < envp < argv flags; the first error stops
 * loading, leaving c with the values applied so far (still valid to use or free). */
ms_err ms_config_load(ms_config *c, char *const *envp, int argc, char **argv, char **rest,
                      int *nrest, ms_error *err)
{
    ms_error_clear(err);
    *nrest = 0;
    const char *path;
    ms_err rc = find_config_path(envp, argc, argv, &path, err);
    if (rc == MS_OK && path) rc = load_yaml(c, path, err);
    if (rc == MS_OK) rc = load_env(c, envp, err);
    if (rc == MS_OK) rc = load_flags(c, argc, argv, rest, nrest, err);
    return rc;
}

/* ---- help and docs -------------------------------------------------------------------------- */

/* The placeholder shown after a flag for a value of row's type. */
static const char *metavar(const cfg_row *row)
{
    switch (row->type) {
    case CT_INT:
        return "N";
    case CT_SIZE:
        return "BYTES";
    case CT_BOOL:
        return "BOOL";
    case CT_ENUM:
        return row->allowed;
    case CT_HOSTPORT:
        return "HOST:PORT";
    case CT_PROPS:
        return "VALUE";
    case CT_STRING:
        break;
    }
    return "TEXT";
}

/* The name of row's type in docs/config.md. */
static const char *type_name(const cfg_row *row)
{
    switch (row->type) {
    case CT_INT:
        return "int";
    case CT_SIZE:
        return "size";
    case CT_BOOL:
        return "bool";
    case CT_ENUM:
        return "enum";
    case CT_HOSTPORT:
        return "host:port";
    case CT_PROPS:
        return "properties";
    case CT_STRING:
        break;
    }
    return "string";
}

/* Writes the flag column of --help for row into out: `--key VALUE` or `--[no-]key`. */
static void help_flag(const cfg_row *row, char *out, size_t n)
{
    char flag[96];
    flag_name(row->key, flag, sizeof flag);
    if (row->type == CT_BOOL)
        snprintf(out, n, "--[no-]%s", flag + 2);
    else if (row->type == CT_PROPS)
        snprintf(out, n, "%s.NAME VALUE", flag);
    else
        snprintf(out, n, "%s %s", flag, metavar(row));
}

/* Prints one aligned line per key: `  --key VALUE  description [default: X] (env METASYNC_KEY)`. */
void ms_config_print_help(FILE *out)
{
    char col[160], env[128];
    int width = 0;
    for (size_t i = 0; i < CFG_NROWS; i++) {
        help_flag(&cfg_rows[i], col, sizeof col);
        if ((int)strlen(col) > width) width = (int)strlen(col);
    }
    fprintf(out, "  %-*s  %s\n", width, "--config FILE",
            "Read settings from this YAML file (env METASYNC_CONFIG)");
    for (size_t i = 0; i < CFG_NROWS; i++) {
        const cfg_row *row = &cfg_rows[i];
        help_flag(row, col, sizeof col);
        env_name(row->key, env, sizeof env);
        if (row->type == CT_PROPS) strncat(env, "_NAME", sizeof env - strlen(env) - 1);
        fprintf(out, "  %-*s  %s [default: %s] (env %s)\n", width, col, row->desc,
                *row->def ? row->def : "\"\"", env);
    }
}

/* Prints text escaped for a Markdown table cell ('|' and HTML-significant characters). */
static void md_cell(FILE *out, const char *text)
{
    for (; *text; text++) {
        if (*text == '<')
            fputs("&lt;", out);
        else if (*text == '>')
            fputs("&gt;", out);
        else if (*text == '&')
            fputs("&amp;", out);
        else {
            if (*text == '|') fputc('\\', out);
            fputc(*text, out);
        }
    }
}

/* Prints the Markdown body of docs/config.md: precedence, naming rules, value syntax, and a table
 * of every key (key | type | default | environment | flag | description). */
void ms_config_markdown(FILE *out)
{
    fputs("MetaSync reads its configuration from four sources; each overrides the one before:\n"
          "\n"
          "1. built-in defaults (below);\n"
          "2. a YAML file named by `--config FILE` (or the `METASYNC_CONFIG` environment "
          "variable);\n"
          "3. environment variables;\n"
          "4. command-line flags.\n"
          "\n"
          "**Names.** Every key has a dotted name such as `http.max_body_bytes`.\n"
          "\n"
          "- *YAML:* nested mappings flatten to dotted keys, so `http: {max_body_bytes: 1M}` "
          "and a top-level `http.max_body_bytes: 1M` are the same. Values must be single "
          "scalars.\n"
          "- *Environment:* `METASYNC_` followed by the key in upper case, with dots and "
          "underscores as `_`: `http.max_body_bytes` is `METASYNC_HTTP_MAX_BODY_BYTES`. A "
          "`METASYNC_*` variable that names no key is an error (except `METASYNC_CONFIG` and "
          "`METASYNC_TEST_*`).\n"
          "- *Flags:* `--key VALUE` or `--key=VALUE`, where `-` and `_` are interchangeable: "
          "`--data-dir`, `--data_dir`, `--http.max-body-bytes=1M`. Boolean keys also take a bare "
          "`--key` (true) and `--no-key` (false).\n"
          "\n"
          "**Values.** *int* is a whole number >= 0 (milliseconds or seconds where the name "
          "says so). *size* is a number of bytes >= 0 with an optional binary suffix: `k`/`K`/"
          "`KiB` (1024), `m`/`M`/`MiB`, `g`/`G`/`GiB`, `t`/`T`/`TiB`, e.g. `64MiB`. *bool* is "
          "`true`/`false`, `yes`/`no`, `on`/`off` or `1`/`0`. *enum* is one of the listed "
          "values. *host:port* takes a port in 0..65535. Unknown keys and bad values are errors "
          "that name the key, the value and where it came from.\n"
          "\n"
          "| Key | Type | Default | Environment | Flag | Description |\n"
          "|-----|------|---------|-------------|------|-------------|\n",
          out);
    for (size_t i = 0; i < CFG_NROWS; i++) {
        const cfg_row *row = &cfg_rows[i];
        char env[128], flag[96];
        env_name(row->key, env, sizeof env);
        flag_name(row->key, flag, sizeof flag);
        if (row->type == CT_PROPS) {
            strncat(env, "_<NAME>", sizeof env - strlen(env) - 1);
            strncat(flag, ".<name>", sizeof flag - strlen(flag) - 1);
        }
        fprintf(out, row->type == CT_PROPS ? "| `%s.<name>` | " : "| `%s` | ", row->key);
        if (row->type == CT_ENUM) {
            fputs("enum: ", out);
            for (const char *p = row->allowed; *p; p++)
                if (*p == '|')
                    fputs(", ", out);
                else
                    fputc(*p, out);
        } else {
            md_cell(out, type_name(row));
        }
        if (*row->def)
            fprintf(out, " | `%s` | ", row->def);
        else
            fputs(" | *(empty)* | ", out);
        fprintf(out, "`%s` | ", env);
        if (row->type == CT_BOOL)
            fprintf(out, "`%s`, `--no-%s` | ", flag, flag + 2);
        else
            fprintf(out, "`%s` | ", flag);
        md_cell(out, row->desc);
        fputs(" |\n", out);
    }
}
