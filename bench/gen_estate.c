/*
 * gen_estate.c — writes the benchmark's metadata estate as NDJSON upsert events.
 *
 *   bench_gen_estate --assets N --out FILE [--shuffled FILE] [--seed S]
 *   bench_gen_estate --columns N --out FILE [--tables-out FILE] [--seed S]
 *
 * Estate mode: N assets, 10% containers and 90% fields, in hierarchical order (depth first:
 * connection, its databases, each database's schemas, each schema's tables and views each
 * followed by its columns; BI connections with dashboards each followed by its bi_fields).
 * With --shuffled, the same lines (same event ids) are also written in an order shuffled by a
 * seeded PRNG (Fisher-Yates over xoshiro256**), so every run gets the same file.
 *
 * Columns mode: one connection, database and schema, N/9 tables, then N column events (all in
 * the bulk lane, none orphan), used as the backlog of the fast-lane latency test. With
 * --tables-out the containers go to that file and only the columns to --out, so that the
 * containers can be loaded first and the backlog is columns only.
 *
 * Names, data types and attributes are drawn from word lists with the same seeded PRNG: a
 * column event is about 250 bytes, like the connectors' output.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- PRNG (xoshiro256**, seeded by splitmix64) ------------------------------------------ */

static uint64_t rng_s[4];

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(uint64_t seed)
{
    for (int i = 0; i < 4; i++) rng_s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
    uint64_t r = rotl(rng_s[1] * 5, 7) * 9, t = rng_s[1] << 17;
    rng_s[2] ^= rng_s[0];
    rng_s[3] ^= rng_s[1];
    rng_s[1] ^= rng_s[2];
    rng_s[0] ^= rng_s[3];
    rng_s[2] ^= t;
    rng_s[3] = rotl(rng_s[3], 45);
    return r;
}

/* Uniform in [0, n) (n > 0; the modulo bias is irrelevant here). */
static uint64_t rnd(uint64_t n)
{
    return rng_next() % n;
}

#define PICK(arr) (arr[rnd(sizeof arr / sizeof arr[0])])
#define COUNT(arr) (sizeof arr / sizeof arr[0])

/* ---- word lists --------------------------------------------------------------------------- */

static const char *const db_adapters[] = {"postgresql", "snowflake", "bigquery", "mysql",
                                          "redshift", "sqlserver"};
static const char *const db_codes[] = {"pg", "sf", "bq", "my", "rs", "ms"};
static const char *const bi_adapters[] = {"superset", "tableau", "looker", "metabase"};
static const char *const db_names[] = {"sales", "marketing", "finance", "analytics", "hr",
                                       "product", "ops", "inventory", "support", "billing",
                                       "logistics", "risk"};
static const char *const schema_names[] = {"public", "raw", "staging", "marts", "core",
                                           "reporting", "audit", "archive", "sandbox", "ext",
                                           "intermediate", "snapshots"};
static const char *const table_stems[] = {
    "orders",    "customers", "payments",  "invoices",      "products",  "events",
    "sessions",  "shipments", "accounts",  "subscriptions", "refunds",   "campaigns",
    "clicks",    "users",     "inventory", "suppliers",     "tickets",   "leads",
    "contracts", "employees", "returns",   "carts",         "discounts", "addresses"};
static const char *const owners[] = {"data-platform", "analytics-engineering", "finance-data",
                                     "growth",        "sre",                   "marketing-ops"};
static const char *const dash_stems[] = {"revenue",   "churn",   "funnel", "retention", "pipeline",
                                         "inventory", "support", "ops",    "cohorts",   "kpis"};

typedef struct coldef {
    const char *name, *type, *doc;
    bool pii;
} coldef;

static const coldef columns[] = {
    {"id", "bigint", "Surrogate key.", false},
    {"created_at", "timestamp with time zone", "When the row was created.", false},
    {"updated_at", "timestamp with time zone", "When the row last changed.", false},
    {"customer_id", "bigint", "The customer this row belongs to.", false},
    {"order_id", "bigint", "The order this row belongs to.", false},
    {"amount", "numeric(12,2)", "Amount in the row's currency.", false},
    {"currency", "char(3)", "ISO 4217 currency code.", false},
    {"status", "varchar(32)", NULL, false},
    {"email", "varchar(320)", "Contact e-mail address.", true},
    {"first_name", "varchar(100)", NULL, true},
    {"last_name", "varchar(100)", NULL, true},
    {"country", "char(2)", "ISO 3166-1 alpha-2 country code.", false},
    {"city", "varchar(100)", NULL, false},
    {"postal_code", "varchar(16)", NULL, true},
    {"phone", "varchar(32)", "Contact phone number.", true},
    {"quantity", "integer", NULL, false},
    {"unit_price", "numeric(12,2)", NULL, false},
    {"discount", "numeric(5,2)", "Discount as a percentage.", false},
    {"tax", "numeric(12,2)", NULL, false},
    {"total", "numeric(14,2)", "Amount including tax.", false},
    {"sku", "varchar(64)", "Stock keeping unit.", false},
    {"category", "varchar(64)", NULL, false},
    {"is_active", "boolean", NULL, false},
    {"deleted_at", "timestamp with time zone", "Soft-delete time, NULL while live.", false},
    {"source", "varchar(32)", "System the row came from.", false},
    {"campaign_id", "bigint", NULL, false},
    {"session_id", "uuid", NULL, false},
    {"user_agent", "text", NULL, false},
    {"ip_address", "inet", "Client IP address.", true},
    {"birth_date", "date", NULL, true},
    {"notes", "text", NULL, false},
    {"region", "varchar(32)", NULL, false},
    {"channel", "varchar(32)", "Acquisition channel.", false},
    {"score", "double precision", NULL, false},
    {"external_ref", "varchar(128)", "Identifier in the source system.", false},
    {"loaded_at", "timestamp with time zone", "When the ELT job loaded the row.", false},
};

static const char *const field_stems[] = {"revenue", "orders",  "customers", "margin",
                                          "region",  "country", "month",     "week",
                                          "channel", "product", "category",  "conversion"};
static const char *const field_aggs[] = {"SUM", "COUNT", "AVG", "MAX", "MIN"};

/* ---- output ------------------------------------------------------------------------------- */

/* All lines of the estate: one buffer, lines separated by '\n', with the start of each. */
typedef struct out {
    char *buf;
    size_t len, cap;
    size_t *starts;
    size_t nlines, lcap;
    uint64_t next_id;
    size_t counts[16];
} out;

enum { T_CONN, T_DB, T_SCHEMA, T_TABLE, T_VIEW, T_COLUMN, T_DASH, T_FIELD, T__N };
static const char *const type_names[T__N] = {"connection", "database", "schema",    "table",
                                             "view",       "column",   "dashboard", "bi_field"};

static void grow(out *o, size_t need)
{
    if (o->len + need <= o->cap) return;
    while (o->len + need > o->cap) o->cap = o->cap ? o->cap * 2 : (1u << 24);
    o->buf = realloc(o->buf, o->cap);
    if (!o->buf) {
        perror("gen_estate");
        exit(1);
    }
}

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = o->cap - o->len;
        int n = vsnprintf(o->buf + o->len, room, fmt, ap);
        va_end(ap);
        if (n < 0) exit(1);
        if ((size_t)n < room) {
            o->len += (size_t)n;
            return;
        }
        grow(o, (size_t)n + 1);
    }
}

/* Starts an upsert line; the caller appends ",\"attributes\":{...}" etc. and calls end(). */
static void begin(out *o, int type, const char *qn, const char *parent)
{
    grow(o, 4096);
    if (o->nlines == o->lcap) {
        o->lcap = o->lcap ? o->lcap * 2 : 1 << 20;
        o->starts = realloc(o->starts, o->lcap * sizeof *o->starts);
        if (!o->starts) exit(1);
    }
    o->starts[o->nlines++] = o->len;
    o->counts[type]++;
    const char *name = strrchr(qn, '/');
    name = name ? name + 1 : qn;
    put(o, "{\"id\":\"ev-%08" PRIu64 "\",\"op\":\"upsert\",\"type\":\"%s\",\"qualified_name\":\"%s\"",
        ++o->next_id, type_names[type], qn);
    if (parent) put(o, ",\"parent\":\"%s\"", parent);
    put(o, ",\"name\":\"%s\"", name);
}

static void end(out *o)
{
    put(o, ",\"ts\":\"2026-03-02T09:%02d:%02dZ\"}\n", (int)rnd(60), (int)rnd(60));
}

/* ---- the estate ---------------------------------------------------------------------------- */

static void emit_columns(out *o, const char *tqn, int ncols)
{
    size_t start = rnd(COUNT(columns));
    char qn[512];
    for (int k = 0; k < ncols; k++) {
        const coldef *c = &columns[(start + (size_t)k) % COUNT(columns)];
        int round = k / (int)COUNT(columns);
        if (round)
            snprintf(qn, sizeof qn, "%s/%s_%d", tqn, c->name, round + 1);
        else
            snprintf(qn, sizeof qn, "%s/%s", tqn, c->name);
        begin(o, T_COLUMN, qn, tqn);
        put(o, ",\"attributes\":{\"data_type\":\"%s\",\"nullable\":%s,\"ordinal\":%d", c->type,
            k == 0 || rnd(3) == 0 ? "false" : "true", k + 1);
        if (c->doc && rnd(2) == 0) put(o, ",\"description\":\"%s\"", c->doc);
        if (rnd(8) == 0) put(o, ",\"default\":\"%s\"", c->type[0] == 't' ? "now()" : "0");
        put(o, "}");
        if (c->pii) put(o, ",\"tags\":[\"PII\"]");
        end(o);
    }
}

static void emit_fields(out *o, const char *dqn, int nfields)
{
    char qn[512];
    for (int k = 0; k < nfields; k++) {
        const char *stem = field_stems[(size_t)k % COUNT(field_stems)];
        snprintf(qn, sizeof qn, "%s/%s_%d", dqn, stem, k + 1);
        begin(o, T_FIELD, qn, dqn);
        bool measure = rnd(2) == 0;
        if (measure)
            put(o, ",\"attributes\":{\"data_type\":\"numeric\",\"expression\":\"%s(%s)\",\"role\":\"measure\"}",
                PICK(field_aggs), stem);
        else
            put(o, ",\"attributes\":{\"data_type\":\"varchar\",\"expression\":\"%s\",\"role\":\"dimension\"}",
                stem);
        end(o);
    }
}

/* Field counts per leaf: about fields/leaves each, varied in pairs so the total stays exact. */
static int *split_fields(size_t leaves, size_t fields)
{
    int *n = malloc((leaves ? leaves : 1) * sizeof *n);
    if (!n) exit(1);
    size_t base = leaves ? fields / leaves : 0, rem = leaves ? fields % leaves : 0;
    for (size_t i = 0; i < leaves; i++) n[i] = (int)base + (i < rem ? 1 : 0);
    for (size_t i = 0; i + 1 < leaves; i += 2) {
        int d = (int)rnd(11) - 5; /* -5..5 */
        if (n[i] + d < 1) d = 1 - n[i];
        if (n[i + 1] - d < 1) d = n[i + 1] - 1;
        n[i] += d;
        n[i + 1] -= d;
    }
    return n;
}

static void estate(out *o, size_t total)
{
    /* Shape: 10% containers, 90% fields. Upper levels are small and fixed by the size. */
    size_t containers = total / 10, fields = total - containers;
    size_t nconn = total / 50000 < 2 ? 2 : total / 50000;
    size_t nbi = nconn / 5 ? nconn / 5 : 1, ndbc = nconn - nbi;
    size_t dbs_per = 4, schemas_per = 8;
    while (ndbc * dbs_per * schemas_per + nconn + ndbc * dbs_per >= containers / 2 && schemas_per > 1)
        schemas_per /= 2, dbs_per = dbs_per > 1 ? dbs_per - 1 : 1;
    size_t upper = nconn + ndbc * dbs_per + ndbc * dbs_per * schemas_per;
    size_t leaves = containers > upper ? containers - upper : 1;
    size_t ndash = leaves / 20 ? leaves / 20 : 1, ntab = leaves - ndash;
    size_t nschemas = ndbc * dbs_per * schemas_per;
    int *per_leaf = split_fields(leaves, fields);
    size_t leaf = 0;
    char cqn[128], dqn[256], sqn[384], tqn[512];
    for (size_t c = 0; c < ndbc; c++) {
        const char *adapter = db_adapters[c % COUNT(db_adapters)];
        snprintf(cqn, sizeof cqn, "%s-prod-%02zu", db_codes[c % COUNT(db_codes)], c + 1);
        begin(o, T_CONN, cqn, NULL);
        put(o, ",\"attributes\":{\"adapter\":\"%s\",\"host\":\"%s.db.internal.example.com\","
               "\"port\":%d,\"owner\":\"%s\",\"description\":\"Production %s warehouse %zu.\"}",
            adapter, cqn, 5432 + (int)c, PICK(owners), adapter, c + 1);
        end(o);
        for (size_t d = 0; d < dbs_per; d++) {
            snprintf(dqn, sizeof dqn, "%s/%s", cqn, db_names[(c + d) % COUNT(db_names)]);
            begin(o, T_DB, dqn, cqn);
            put(o, ",\"attributes\":{\"encoding\":\"UTF8\",\"owner\":\"%s\"}", PICK(owners));
            end(o);
            for (size_t s = 0; s < schemas_per; s++) {
                snprintf(sqn, sizeof sqn, "%s/%s", dqn,
                         schema_names[(c + d + s) % COUNT(schema_names)]);
                begin(o, T_SCHEMA, sqn, dqn);
                put(o, ",\"attributes\":{\"owner\":\"%s\"}", PICK(owners));
                end(o);
                size_t sidx = (c * dbs_per + d) * schemas_per + s;
                size_t nt = ntab / nschemas + (sidx < ntab % nschemas ? 1 : 0);
                for (size_t t = 0; t < nt; t++) {
                    bool view = rnd(10) == 0;
                    snprintf(tqn, sizeof tqn, "%s/%s%s_%04zu", sqn, view ? "v_" : "",
                             PICK(table_stems), t + 1);
                    begin(o, view ? T_VIEW : T_TABLE, tqn, sqn);
                    put(o, ",\"attributes\":{\"description\":\"%s of the %s domain.\","
                           "\"owner\":\"%s\",\"row_count\":%" PRIu64 ",\"size_bytes\":%" PRIu64 "}",
                        view ? "Reporting view" : "Table", db_names[(c + d) % COUNT(db_names)],
                        PICK(owners), rnd(50000000), rnd(1ULL << 36));
                    end(o);
                    emit_columns(o, tqn, per_leaf[leaf++]);
                }
            }
        }
    }
    for (size_t c = 0; c < nbi; c++) {
        const char *adapter = bi_adapters[c % COUNT(bi_adapters)];
        snprintf(cqn, sizeof cqn, "%s-%02zu", adapter, c + 1);
        begin(o, T_CONN, cqn, NULL);
        put(o, ",\"attributes\":{\"adapter\":\"%s\",\"url\":\"https://%s.bi.example.com\","
               "\"owner\":\"%s\"}",
            adapter, cqn, PICK(owners));
        end(o);
        size_t nd = ndash / nbi + (c < ndash % nbi ? 1 : 0);
        for (size_t d = 0; d < nd; d++) {
            snprintf(dqn, sizeof dqn, "%s/%s_%05zu", cqn, PICK(dash_stems), d + 1);
            begin(o, T_DASH, dqn, cqn);
            put(o, ",\"attributes\":{\"description\":\"Dashboard %zu.\",\"url\":\"https://%s.bi."
                   "example.com/d/%zu\",\"owner\":\"%s\"}",
                d + 1, cqn, d + 1, PICK(owners));
            end(o);
            emit_fields(o, dqn, per_leaf[leaf++]);
        }
    }
    free(per_leaf);
}

/* Lines before this index are the containers of the columns-only mode. */
static size_t first_column_line;

static void columns_only(out *o, size_t total)
{
    /* The containers first (one connection, database and schema, then every table), so that the
     * columns that follow find their parents: the backlog is columns only, none of them orphans. */
    size_t ntables = (total + 8) / 9;
    unsigned char *stem = malloc(ntables ? ntables : 1);
    if (!stem) exit(1);
    begin(o, T_CONN, "backlog-db", NULL);
    put(o, ",\"attributes\":{\"adapter\":\"postgresql\",\"owner\":\"%s\"}", PICK(owners));
    end(o);
    begin(o, T_DB, "backlog-db/warehouse", "backlog-db");
    put(o, ",\"attributes\":{\"encoding\":\"UTF8\"}");
    end(o);
    begin(o, T_SCHEMA, "backlog-db/warehouse/staging", "backlog-db/warehouse");
    put(o, ",\"attributes\":{\"owner\":\"%s\"}", PICK(owners));
    end(o);
    char tqn[256];
    for (size_t t = 0; t < ntables; t++) {
        stem[t] = (unsigned char)rnd(COUNT(table_stems));
        snprintf(tqn, sizeof tqn, "backlog-db/warehouse/staging/%s_%06zu", table_stems[stem[t]], t);
        begin(o, T_TABLE, tqn, "backlog-db/warehouse/staging");
        put(o, ",\"attributes\":{\"owner\":\"%s\",\"row_count\":%" PRIu64 "}", PICK(owners),
            rnd(50000000));
        end(o);
    }
    size_t done = 0;
    first_column_line = o->nlines;
    for (size_t t = 0; done < total; t++) {
        snprintf(tqn, sizeof tqn, "backlog-db/warehouse/staging/%s_%06zu", table_stems[stem[t]], t);
        size_t n = 9;
        if (n > total - done) n = total - done;
        emit_columns(o, tqn, (int)n);
        done += n;
    }
    free(stem);
}

/* ---- writing -------------------------------------------------------------------------------- */

/* Writes lines [from, to) of o (through order when given) to path. */
static void write_lines(const out *o, const size_t *order, size_t from, size_t to, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    for (size_t i = from; i < to; i++) {
        size_t k = order ? order[i] : i;
        size_t s = o->starts[k], e = k + 1 < o->nlines ? o->starts[k + 1] : o->len;
        fwrite(o->buf + s, 1, e - s, f);
    }
    if (fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void usage(void)
{
    fputs("usage: bench_gen_estate (--assets N | --columns N) --out FILE [--shuffled FILE]"
          " [--tables-out FILE] [--seed S]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    size_t assets = 0, cols = 0;
    const char *outp = NULL, *shuf = NULL, *tables = NULL;
    uint64_t seed = 20260302;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        if (strcmp(argv[i], "--assets") == 0)
            assets = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--columns") == 0)
            cols = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--out") == 0)
            outp = argv[++i];
        else if (strcmp(argv[i], "--shuffled") == 0)
            shuf = argv[++i];
        else if (strcmp(argv[i], "--tables-out") == 0)
            tables = argv[++i];
        else if (strcmp(argv[i], "--seed") == 0)
            seed = strtoull(argv[++i], NULL, 10);
        else
            usage();
    }
    if (!outp || (!assets == !cols) || (assets && assets < 100)) usage();
    rng_seed(seed);
    out o;
    memset(&o, 0, sizeof o);
    if (assets)
        estate(&o, assets);
    else
        columns_only(&o, cols);
    if (tables && cols) { /* containers and columns in two files */
        write_lines(&o, NULL, 0, first_column_line, tables);
        write_lines(&o, NULL, first_column_line, o.nlines, outp);
    } else {
        write_lines(&o, NULL, 0, o.nlines, outp);
    }
    if (shuf) {
        size_t *order = malloc(o.nlines * sizeof *order);
        if (!order) exit(1);
        for (size_t i = 0; i < o.nlines; i++) order[i] = i;
        for (size_t i = o.nlines; i > 1; i--) {
            size_t j = rnd(i);
            size_t t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
        write_lines(&o, order, 0, o.nlines, shuf);
        free(order);
    }
    fprintf(stderr,
            "gen_estate: %zu events, %zu bytes (%.0f B/event): %zu connections, %zu databases, "
            "%zu schemas, %zu tables, %zu views, %zu dashboards, %zu columns, %zu bi_fields\n",
            o.nlines, o.len, o.nlines ? (double)o.len / (double)o.nlines : 0.0, o.counts[T_CONN],
            o.counts[T_DB], o.counts[T_SCHEMA], o.counts[T_TABLE], o.counts[T_VIEW],
            o.counts[T_DASH], o.counts[T_COLUMN], o.counts[T_FIELD]);
    free(o.buf);
    free(o.starts);
    return 0;
}
