/*
 * raw_sqlite.c — the raw limit of the benchmark: the rows MetaSync writes for an NDJSON file of
 * upserts, inserted into the very same SQLite schema by a minimal C loop (no HTTP, no JSON, no
 * engine), in transactions of the engine's commit size, with the store's pragmas.
 *
 *   bench_raw_sqlite --file FILE --dir DIR [--txn N] [--sync full|normal] [--cache-mb N]
 *                    [--engine-sql] [--label NAME] [--exec SQL]
 *
 * DIR must be empty or absent: the schema is created by opening the store through
 * ms_store_sqlite.open (so tables, indexes and triggers are exactly the store's), which
 * is then closed. The file is decoded with the server's own decoder (ms_event_decode) *before*
 * the timed region, and the change record's after-JSON is pre-built with the store's own
 * snapshot writer (ms_srow_json), so the timed loop only binds and steps prepared statements.
 *
 * Per asset, default (the minimal loop): INSERT OR IGNORE INTO seen; INSERT INTO assets; INSERT
 * INTO changes (after-JSON, changed paths, cause). The orphan flag is what the engine would store
 * (parent not seen earlier in the file). Full-text search is not in the store's transaction
 * since schema 5 (an indexer thread keeps it in a database of its own, store_sqlite_search.c),
 * so the loop does not write it either: the limit is what the writer's transaction costs.
 *
 * --engine-sql adds every other statement the engine's writer issues for a new asset (lookup of
 * the parent's type, tags rows, adoption of waiting children; no lookup of the asset itself,
 * which a run of creates skips by inserting first), still
 * without any C-side work: the difference to the engine is then the engine's own CPU (decode,
 * JSON, copies, HTTP) and its threads competing for the 2 cores, not SQLite.
 *
 * --exec SQL runs SQL on the connection before the loop, for what-if attributions; the benchmark
 * itself never uses it.
 *
 * Prints a human line, a per-statement time breakdown and one machine line:
 *   RAW label=… rows=… secs=… rows_per_s=… txn=… commit_p50_ms=… commit_p99_ms=… db_bytes=…
 */
#include "ms_buf.h"
#include "ms_config.h"
#include "ms_event.h"
#include "ms_json.h"
#include "ms_log.h"
#include "ms_store.h"
#include "ms_types.h"
#include "store/sqlite/store_sqlite_int.h"

#include <dirent.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

extern const ms_store_ops ms_store_sqlite;

#define TENANT "default"
#define NOW    "2026-03-02T10:00:00.000Z"

/* One pre-built asset: the values the engine binds. */
typedef struct rowv {
    ms_event *ev;
    char *after;   /* change record after-JSON */
    char *changed; /* change record changed paths */
    int orphan;
} rowv;

/* ---- a set of qualified names (open addressing, FNV-1a) --------------------------------- */

typedef struct qset {
    const char **slot;
    size_t cap, n;
} qset;

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static bool qset_has(const qset *q, const char *s)
{
    if (!q->cap) return false;
    for (size_t i = fnv(s) & (q->cap - 1);; i = (i + 1) & (q->cap - 1)) {
        if (!q->slot[i]) return false;
        if (strcmp(q->slot[i], s) == 0) return true;
    }
}

static void qset_add(qset *q, const char *s)
{
    if ((q->n + 1) * 2 > q->cap) {
        qset g = {NULL, q->cap ? q->cap * 2 : 1024, 0};
        g.slot = ms_xcalloc(g.cap, sizeof *g.slot);
        for (size_t i = 0; i < q->cap; i++)
            if (q->slot[i]) qset_add(&g, q->slot[i]);
        free(q->slot);
        *q = g;
    }
    for (size_t i = fnv(s) & (q->cap - 1);; i = (i + 1) & (q->cap - 1)) {
        if (!q->slot[i]) {
            q->slot[i] = s;
            q->n++;
            return;
        }
        if (strcmp(q->slot[i], s) == 0) return;
    }
}

/* ---- loading ------------------------------------------------------------------------------ */

static rowv *load(const char *path, ms_types *types, size_t *nrows)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    ms_decode_opts opts = {TENANT, types, 1 << 20, 64};
    rowv *rows = NULL;
    size_t n = 0, cap = 0, bad = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    qset seen = {0};
    while ((len = getline(&line, &lcap, f)) > 0) {
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (!len) continue;
        ms_event *ev = NULL;
        ms_error err;
        ms_error_clear(&err);
        if (ms_event_decode(line, (size_t)len, &opts, &ev, &err) != MS_OK ||
            ev->op != MS_OP_UPSERT) {
            bad++;
            ms_event_free(ev);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            rows = ms_xrealloc(rows, cap * sizeof *rows);
        }
        rowv *r = &rows[n++];
        r->ev = ev;
        r->orphan = ev->parent ? !qset_has(&seen, ev->parent) : 0;
        qset_add(&seen, ev->qn);
        /* The after-JSON and changed paths, as commit_asset writes them for a create. */
        ms_srow row;
        memset(&row, 0, sizeof row);
        row.exists = true;
        row.type = ev->type;
        row.name = ev->name;
        row.parent = ev->parent;
        row.attributes = ev->attributes;
        row.version = 1;
        row.created_at = row.updated_at = (char *)NOW;
        row.orphan = r->orphan;
        ms_stag tags[16];
        size_t nt = ev->has_tags ? ev->ntags : 0;
        if (nt > 16) nt = 16;
        for (size_t i = 0; i < nt; i++)
            tags[i] = (ms_stag){ev->tags[i], (char *)"direct", (char *)""};
        row.tags = tags;
        row.ntags = nt;
        ms_buf b = MS_BUF_INIT;
        ms_srow_json(&b, ev->qn, &row);
        r->after = ms_buf_steal(&b);
        ms_buf c = MS_BUF_INIT;
        ms_buf_puts(&c, "[\"type\",\"name\",\"parent\"");
        struct json_object *y = json_tokener_parse(ev->attributes);
        ms_buf tmp = MS_BUF_INIT;
        if (ms_json_diff_paths(NULL, y, "attributes", &tmp, 0)) {
            ms_buf_putc(&c, ',');
            ms_buf_append(&c, tmp.data, tmp.len);
        }
        ms_buf_free(&tmp);
        json_object_put(y);
        if (nt) ms_buf_puts(&c, ",\"tags\"");
        ms_buf_putc(&c, ']');
        r->changed = ms_buf_steal(&c);
    }
    free(line);
    free(seen.slot);
    fclose(f);
    if (bad) fprintf(stderr, "raw_sqlite: %zu lines skipped (not decodable upserts)\n", bad);
    *nrows = n;
    return rows;
}

/* ---- the timed loop ------------------------------------------------------------------------- */

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "raw_sqlite: prepare %s: %s\n", sql, sqlite3_errmsg(db));
        exit(4);
    }
    return st;
}

/* Time spent per statement kind (ns), for the breakdown line. */
enum { S_SEEN, S_LOOKUP, S_ASSET, S_TAGS, S_CHANGE, S_ADOPT, S_BEGIN, S_COMMIT, S__N };
static const char *const stage_names[S__N] = {"seen",    "lookups", "assets", "tags",
                                              "changes", "adopt",   "begin",  "commit"};
static unsigned long long stage_ns[S__N];

static void step_done(sqlite3 *db, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "raw_sqlite: step: %s\n", sqlite3_errmsg(db));
        exit(4);
    }
    sqlite3_reset(st);
}

static void exec(sqlite3 *db, const char *sql)
{
    char *e = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &e) != SQLITE_OK) {
        fprintf(stderr, "raw_sqlite: %s: %s\n", sql, e ? e : "?");
        exit(4);
    }
}

static void txt(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
    if (!n) return 0;
    size_t k = (size_t)(p * (double)(n - 1) + 0.5);
    return v[k < n ? k : n - 1];
}

static long long dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    long long total = 0;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) total += (long long)sb.st_blocks * 512;
    }
    closedir(d);
    return total;
}

static void usage(void)
{
    fputs("usage: bench_raw_sqlite --file FILE --dir DIR [--txn N] [--sync full|normal]"
          " [--cache-mb N] [--engine-sql] [--label NAME] [--exec SQL]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *file = NULL, *dir = NULL, *sync = "full", *label = "raw", *extra_sql = NULL;
    long txn = 5000, cache_mb = 64;
    bool engine_sql = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--engine-sql") == 0) {
            engine_sql = true;
            continue;
        }
        if (i + 1 >= argc) usage();
        if (strcmp(argv[i], "--file") == 0)
            file = argv[++i];
        else if (strcmp(argv[i], "--dir") == 0)
            dir = argv[++i];
        else if (strcmp(argv[i], "--txn") == 0)
            txn = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--sync") == 0)
            sync = argv[++i];
        else if (strcmp(argv[i], "--cache-mb") == 0)
            cache_mb = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--label") == 0)
            label = argv[++i];
        else if (strcmp(argv[i], "--exec") == 0)
            extra_sql = argv[++i];
        else
            usage();
    }
    if (!file || !dir || txn < 1 || cache_mb < 1) usage();

    /* 1. The store creates its schema in DIR, then closes. */
    ms_config cfg;
    ms_config_defaults(&cfg);
    ms_error err;
    ms_error_clear(&err);
    char cm[32];
    snprintf(cm, sizeof cm, "%ld", cache_mb);
    if (ms_config_set(&cfg, "data_dir", dir, "bench", &err) != MS_OK ||
        ms_config_set(&cfg, "store.synchronous", sync, "bench", &err) != MS_OK ||
        ms_config_set(&cfg, "store.cache_mb", cm, "bench", &err) != MS_OK) {
        fprintf(stderr, "raw_sqlite: %s\n", err.detail);
        return 2;
    }
    ms_log log = {MS_LOG_WARN, stderr};
    ms_types *types = ms_types_new();
    ms_store_open_args oa = {&cfg, &log, "sqlite", types};
    void *ctx = NULL;
    if (ms_store_sqlite.open(&oa, &ctx, &err) != MS_OK) {
        fprintf(stderr, "raw_sqlite: open store: %s\n", err.detail);
        return 4;
    }
    ms_store_sqlite.close(ctx);

    /* 2. Decode the input and pre-build every value (not timed). */
    size_t n = 0;
    unsigned long long tl = ms_now_ns();
    rowv *rows = load(file, types, &n);
    fprintf(stderr, "raw_sqlite: %zu rows decoded in %.1f s (not timed)\n", n,
            (double)(ms_now_ns() - tl) / 1e9);

    /* 3. Plain SQLite on the store's file with the store's pragmas. */
    char path[4096];
    snprintf(path, sizeof path, "%s/metasync.db", dir);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        fprintf(stderr, "raw_sqlite: open %s: %s\n", path, sqlite3_errmsg(db));
        return 4;
    }
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA cache_size=-%ld;"
             "PRAGMA temp_store=MEMORY; PRAGMA foreign_keys=OFF;",
             strcmp(sync, "normal") == 0 ? "NORMAL" : "FULL", cache_mb * 1024);
    exec(db, pragmas);
    if (extra_sql) exec(db, extra_sql); /* what-if experiments, e.g. "DROP INDEX assets_parent" */
    sqlite3_stmt *seen = prep(db, "INSERT OR IGNORE INTO seen(tenant, id) VALUES(?, ?)");
    sqlite3_stmt *ins = prep(
        db, "INSERT INTO assets(tenant, qn, type, name, parent, attributes, version, created_at,"
            " updated_at, deleted, orphan, first_seq)"
            " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7, 0, ?8, ?9)"
            " ON CONFLICT(tenant, qn) DO NOTHING");
    sqlite3_stmt *chg =
        prep(db, "INSERT INTO changes(tenant, seq, op, qn, type, version, before,"
                 " after, changed, cause, ts) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    sqlite3_stmt *par = prep(db, "SELECT type FROM assets WHERE tenant=? AND qn=? AND deleted=0");
    sqlite3_stmt *adopt =
        prep(db, "UPDATE assets SET orphan=0 WHERE tenant=? AND parent=? AND orphan=1");
    sqlite3_stmt *tclr = prep(db, "DELETE FROM tags WHERE tenant=? AND qn=? AND source='direct'");
    sqlite3_stmt *tins = prep(db, "INSERT OR IGNORE INTO tags(tenant, qn, tag, source, origin)"
                                  " VALUES(?, ?, ?, 'direct', '')");
    exec(db, "INSERT OR IGNORE INTO tenants(tenant) VALUES('default')");

    size_t ntx = (n + (size_t)txn - 1) / (size_t)txn;
    double *lat = ms_xcalloc(ntx ? ntx : 1, sizeof *lat);
    uint64_t seq = 0;
    unsigned long long t0 = ms_now_ns();
    for (size_t i = 0, k = 0; i < n; k++) {
        unsigned long long c0 = ms_now_ns();
        exec(db, "BEGIN IMMEDIATE");
        stage_ns[S_BEGIN] += ms_now_ns() - c0;
        size_t end = i + (size_t)txn < n ? i + (size_t)txn : n;
        for (; i < end; i++) {
            const rowv *r = &rows[i];
            const ms_event *ev = r->ev;
            unsigned long long a0 = ms_now_ns(), a1;
            txt(seen, 1, TENANT);
            txt(seen, 2, ev->id);
            step_done(db, seen);
            a1 = ms_now_ns();
            stage_ns[S_SEEN] += a1 - a0;
            a0 = a1;
            if (engine_sql) {
                if (ev->parent) {
                    txt(par, 1, TENANT);
                    txt(par, 2, ev->parent);
                    step_done(db, par);
                }
                a1 = ms_now_ns();
                stage_ns[S_LOOKUP] += a1 - a0;
                a0 = a1;
            }
            txt(ins, 1, TENANT);
            txt(ins, 2, ev->qn);
            txt(ins, 3, ev->type);
            txt(ins, 4, ev->name);
            txt(ins, 5, ev->parent);
            txt(ins, 6, ev->attributes);
            txt(ins, 7, NOW);
            sqlite3_bind_int(ins, 8, r->orphan);
            sqlite3_bind_int64(ins, 9, (sqlite3_int64)seq + 1); /* its create record's seq */
            step_done(db, ins);
            a1 = ms_now_ns();
            stage_ns[S_ASSET] += a1 - a0;
            a0 = a1;
            if (engine_sql && ev->has_tags && ev->ntags) {
                txt(tclr, 1, TENANT);
                txt(tclr, 2, ev->qn);
                step_done(db, tclr);
                for (size_t t = 0; t < ev->ntags; t++) {
                    txt(tins, 1, TENANT);
                    txt(tins, 2, ev->qn);
                    txt(tins, 3, ev->tags[t]);
                    step_done(db, tins);
                }
                a1 = ms_now_ns();
                stage_ns[S_TAGS] += a1 - a0;
                a0 = a1;
            }
            txt(chg, 1, TENANT);
            sqlite3_bind_int64(chg, 2, (sqlite3_int64)++seq);
            txt(chg, 3, "create");
            txt(chg, 4, ev->qn);
            txt(chg, 5, ev->type);
            sqlite3_bind_int64(chg, 6, 1);
            txt(chg, 7, NULL);
            txt(chg, 8, r->after);
            txt(chg, 9, r->changed);
            txt(chg, 10, ev->id);
            txt(chg, 11, NOW);
            step_done(db, chg);
            a1 = ms_now_ns();
            stage_ns[S_CHANGE] += a1 - a0;
            a0 = a1;
            if (engine_sql) {
                txt(adopt, 1, TENANT);
                txt(adopt, 2, ev->qn);
                step_done(db, adopt);
                stage_ns[S_ADOPT] += ms_now_ns() - a0;
            }
        }
        unsigned long long cc = ms_now_ns();
        exec(db, "COMMIT");
        stage_ns[S_COMMIT] += ms_now_ns() - cc;
        lat[k] = (double)(ms_now_ns() - c0) / 1e6;
    }
    double secs = (double)(ms_now_ns() - t0) / 1e9;
    long long bytes = dir_bytes(dir);
    qsort(lat, ntx, sizeof *lat, cmp_d);
    double p50 = pct(lat, ntx, 0.50), p99 = pct(lat, ntx, 0.99);
    printf("%s: %zu rows in %.2f s = %.0f rows/s (txn %ld, sync %s%s); commit p50 %.2f ms, "
           "p99 %.2f ms; %.0f bytes/asset on disk (db+wal)\n",
           label, n, secs, secs > 0 ? (double)n / secs : 0, txn, sync,
           engine_sql ? ", with the engine's lookups" : "", p50, p99,
           n ? (double)bytes / (double)n : 0);
    printf("RAW label=%s rows=%zu secs=%.3f rows_per_s=%.0f txn=%ld commit_p50_ms=%.3f "
           "commit_p99_ms=%.3f db_bytes=%lld engine_sql=%d\n",
           label, n, secs, secs > 0 ? (double)n / secs : 0, txn, p50, p99, bytes,
           engine_sql ? 1 : 0);
    printf("%s: time per asset by statement:", label);
    for (int i = 0; i < S__N; i++)
        if (stage_ns[i])
            printf(" %s %.1f us", stage_names[i], n ? (double)stage_ns[i] / 1e3 / (double)n : 0.0);
    printf("\n");
    fflush(stdout);

    sqlite3_stmt *all[] = {seen, ins, chg, par, adopt, tclr, tins};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        sqlite3_finalize(all[i]);
    sqlite3_close(db);
    for (size_t i = 0; i < n; i++) {
        ms_event_free(rows[i].ev);
        free(rows[i].after);
        free(rows[i].changed);
    }
    free(rows);
    free(lat);
    ms_types_free(types);
    ms_config_free(&cfg);
    return 0;
}
