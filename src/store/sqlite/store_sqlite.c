/*
 * store_sqlite.c — the embedded store: SQLite 3 in WAL mode with FTS5 (see ms_store.h for the
 * contract and store_sqlite_int.h for the connection rules). This file holds opening, the schema,
 * the connection pool, the shared row helpers and the read side; apply() is in
 * store_sqlite_apply.c. The schema is documented in docs/model.md.
 */
#include "store_sqlite_int.h"

#include "ms_json.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 1: the first schema; 2: + ctl (control-plane records), full-text rows indexed per commit
 * instead of per-row triggers; 3: + source_offsets; 4: a leaner write path (upgrade4 below):
 * the full-text index keeps no positions or column sizes, the type index leaves out the bulk
 * types, and the history index leaves out each asset's first create, found by assets.first_seq;
 * 5: the full-text index moves to a database of its own (store_sqlite_search.c), + fts_log.
 * The DDL is idempotent (IF NOT EXISTS, DROP ... IF EXISTS), so opening an older database adds
 * what is missing and drops what went; upgrade4 rebuilds what changed shape, then the version is
 * bumped. */
#define SQ_SCHEMA_VERSION 5

/* The WHERE terms of schema 4's partial indexes, shared with the queries that must repeat them
 * (SQLite uses a partial index only for a query whose WHERE clause contains its terms). */
#define SQ_NOT_BULK  "type NOT IN ('column', 'bi_field')"
#define SQ_NOT_FIRST "(op <> 'create' OR version <> 1)"

/* Whether assets of type are in assets_type_fast: every type but those SQ_NOT_BULK names. */
static bool in_type_index(const char *type)
{
    return strcmp(type, "column") != 0 && strcmp(type, "bi_field") != 0;
}

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS tenants(tenant TEXT PRIMARY KEY);"
    "CREATE TABLE IF NOT EXISTS assets("
    " id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, qn TEXT NOT NULL, type TEXT NOT NULL,"
    " name TEXT NOT NULL, parent TEXT, attributes TEXT NOT NULL, version INTEGER NOT NULL,"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,"
    " orphan INTEGER NOT NULL DEFAULT 0,"
    " description TEXT GENERATED ALWAYS AS (json_extract(attributes, '$.description')) VIRTUAL,"
    " first_seq INTEGER," /* schema 4: seq of the asset's first create (version 1) */
    " UNIQUE(tenant, qn));"
    "CREATE INDEX IF NOT EXISTS assets_parent ON assets(tenant, parent);"
    /* Schema 4: the bulk types (90% of an estate) are left out; their ?type= pages walk the
     * UNIQUE(tenant, qn) index, where they are dense. sq_asset_list repeats this WHERE term
     * verbatim for the other types, so that the planner may use the index. */
    "CREATE INDEX IF NOT EXISTS assets_type_fast ON assets(tenant, type, qn)"
    " WHERE " SQ_NOT_BULK ";"
    "CREATE INDEX IF NOT EXISTS assets_orphan ON assets(tenant, parent) WHERE orphan = 1;"
    "CREATE TABLE IF NOT EXISTS tags(tenant TEXT NOT NULL, qn TEXT NOT NULL, tag TEXT NOT NULL,"
    " source TEXT NOT NULL, origin TEXT NOT NULL DEFAULT '',"
    " PRIMARY KEY(tenant, qn, tag, origin)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS tags_by_tag ON tags(tenant, tag, qn);"
    "CREATE TABLE IF NOT EXISTS edges(tenant TEXT NOT NULL, src TEXT NOT NULL, dst TEXT NOT NULL,"
    " via TEXT NOT NULL DEFAULT '', PRIMARY KEY(tenant, src, dst, via)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS edges_dst ON edges(tenant, dst);"
    "CREATE TABLE IF NOT EXISTS changes(tenant TEXT NOT NULL, seq INTEGER NOT NULL,"
    " op TEXT NOT NULL, qn TEXT NOT NULL, type TEXT, version INTEGER NOT NULL, before TEXT,"
    " after TEXT, changed TEXT NOT NULL, cause TEXT, ts TEXT NOT NULL,"
    " PRIMARY KEY(tenant, seq)) WITHOUT ROWID;"
    /* Schema 4: a history minus each asset's first create, which assets.first_seq points to
     * (sq_history repeats this WHERE term verbatim). */
    "CREATE INDEX IF NOT EXISTS changes_hist ON changes(tenant, qn, seq)"
    " WHERE " SQ_NOT_FIRST ";"
    "CREATE TABLE IF NOT EXISTS seen(tenant TEXT NOT NULL, id TEXT NOT NULL,"
    " PRIMARY KEY(tenant, id)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS cursors(tenant TEXT NOT NULL, sink TEXT NOT NULL,"
    " seq INTEGER NOT NULL, PRIMARY KEY(tenant, sink)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS types(tenant TEXT NOT NULL, name TEXT NOT NULL,"
    " definition TEXT NOT NULL, PRIMARY KEY(tenant, name)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS ctl(tenant TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,"
    " json TEXT NOT NULL, PRIMARY KEY(tenant, kind, key)) WITHOUT ROWID;"
    /* Schema 3: the positions of sources (Kafka consumer groups), written by apply_at in the
     * transaction of the events they cover. Not a tenant table: a partition carries events of
     * every tenant. */
    "CREATE TABLE IF NOT EXISTS source_offsets(grp TEXT NOT NULL, topic TEXT NOT NULL,"
    " part INTEGER NOT NULL, next_offset INTEGER NOT NULL, updated_at TEXT NOT NULL,"
    " PRIMARY KEY(grp, topic, part)) WITHOUT ROWID;"
    /* Schema 5: full-text search lives in a database of its own, kept by an indexer thread
     * (store_sqlite_search.c); the store keeps, in fts_log, the old values of every indexed
     * field that changes (and of deleted rows), which the indexer needs to update the index.
     * Schema 2-4's in-store index and its triggers go. */
    "DROP TRIGGER IF EXISTS assets_fts_ai;"
    "DROP TRIGGER IF EXISTS assets_fts_ad;"
    "DROP TRIGGER IF EXISTS assets_fts_au;"
    "DROP TRIGGER IF EXISTS assets_fts_ad2;"
    "DROP TRIGGER IF EXISTS assets_fts_au2;"
    "DROP TABLE IF EXISTS assets_fts;"
    "DELETE FROM meta WHERE key = 'fts_indexed_id';"
    /* Pairs the search database with this store (another store's is built again). */
    "INSERT OR IGNORE INTO meta(key, value) VALUES('search_token', lower(hex(randomblob(8))));"
    "CREATE TABLE IF NOT EXISTS fts_log(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " asset INTEGER NOT NULL, name TEXT, qn TEXT, description TEXT);"
    "CREATE TRIGGER IF NOT EXISTS assets_search_ad AFTER DELETE ON assets BEGIN"
    " INSERT INTO fts_log(asset, name, qn, description)"
    " VALUES (old.id, old.name, old.qn, old.description); END;"
    "CREATE TRIGGER IF NOT EXISTS assets_search_au AFTER UPDATE OF name, attributes ON assets"
    " WHEN old.name IS NOT new.name OR old.description IS NOT new.description BEGIN"
    " INSERT INTO fts_log(asset, name, qn, description)"
    " VALUES (old.id, old.name, old.qn, old.description); END;";

ms_err sq_fail(ms_error *err, sqlite3 *db, const char *what)
{
    return ms_error_set(err, MS_ERR_STORE, "sqlite: %s: %s", what,
                        db ? sqlite3_errmsg(db) : "no connection");
}

void sq_bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

char *sq_col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? ms_xstrndup((const char *)t, (size_t)sqlite3_column_bytes(st, i)) : NULL;
}

ms_err sq_row_load(sqlite3 *db, sqlite3_stmt *get, sqlite3_stmt *tags_get, const char *tenant,
                   const char *qn, bool with_tags, ms_srow *r, ms_error *err)
{
    memset(r, 0, sizeof *r);
    sq_bind_text(get, 1, tenant);
    sq_bind_text(get, 2, qn);
    int rc = sqlite3_step(get);
    if (rc == SQLITE_ROW) {
        r->exists = true;
        r->id = sqlite3_column_int64(get, 0);
        r->type = sq_col_dup(get, 1);
        r->name = sq_col_dup(get, 2);
        r->parent = sq_col_dup(get, 3);
        r->attributes = sq_col_dup(get, 4);
        r->version = sqlite3_column_int64(get, 5);
        r->deleted = sqlite3_column_int(get, 6) != 0;
        r->created_at = sq_col_dup(get, 7);
        r->orphan = sqlite3_column_int(get, 8) != 0;
        r->updated_at = sq_col_dup(get, 9);
    }
    sqlite3_reset(get);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sq_fail(err, db, "load asset");
    if (!r->exists || !with_tags) return MS_OK;
    return sq_tags_load(db, tags_get, tenant, qn, r, err);
}

ms_err sq_tags_load(sqlite3 *db, sqlite3_stmt *tags_get, const char *tenant, const char *qn,
                    ms_srow *r, ms_error *err)
{
    sq_bind_text(tags_get, 1, tenant);
    sq_bind_text(tags_get, 2, qn);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(tags_get)) == SQLITE_ROW) {
        if (r->ntags == cap) {
            cap = cap ? cap * 2 : 4;
            r->tags = ms_xrealloc(r->tags, cap * sizeof *r->tags);
        }
        ms_stag *t = &r->tags[r->ntags++];
        t->name = sq_col_dup(tags_get, 0);
        t->source = sq_col_dup(tags_get, 1);
        t->origin = sq_col_dup(tags_get, 2);
        if (!t->origin) t->origin = ms_xstrdup("");
    }
    sqlite3_reset(tags_get);
    return rc == SQLITE_DONE ? MS_OK : sq_fail(err, db, "load tags");
}

/* No connection checkpoints the store's WAL when it commits: the checkpointer thread does
 * (store_sqlite_ckpt.c). */
ms_err sq_open_conn(sq_store *s, sqlite3 **out, ms_error *err)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(
        s->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        ms_error_set(err, MS_ERR_STORE, "sqlite: cannot open %s: %s", s->path,
                     db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return MS_ERR_STORE;
    }
    sqlite3_busy_timeout(db, 10000);
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA cache_size=-%d;"
             "PRAGMA temp_store=MEMORY; PRAGMA foreign_keys=OFF; PRAGMA wal_autocheckpoint=0;",
             s->sync_full ? "FULL" : "NORMAL", s->cache_mb * 1024);
    if (sqlite3_exec(db, pragmas, NULL, NULL, NULL) != SQLITE_OK) {
        sq_fail(err, db, "pragmas");
        sqlite3_close(db);
        return MS_ERR_STORE;
    }
    *out = db;
    return MS_OK;
}

sqlite3 *sq_acquire(sq_store *s)
{
    return ms_pool_acquire(&s->pool);
}

void sq_release(sq_store *s, sqlite3 *db)
{
    ms_pool_release(&s->pool, db);
}

static void sq_close(void *ctx)
{
    sq_store *s = ctx;
    if (!s) return;
    sq_search_stop(s);
    sq_ckpt_stop(s);
    sqlite3_close(s->ckpt_db);
    for (int i = 0; i < W__COUNT; i++)
        sqlite3_finalize(s->ws[i]);
    if (s->w) sqlite3_close(s->w);
    for (int i = 0; i < SQ_POOL; i++)
        sqlite3_close(s->pool.conn[i]);
    sq_waiting_free(s);
    for (size_t i = 0; i < s->nseqs; i++)
        free(s->seqs[i].tenant);
    free(s->seqs);
    free(s->path);
    if (s->wal_fd >= 0) close(s->wal_fd);
    ms_sa_scratch_free(&s->scratch);
    ms_pool_destroy(&s->pool);
    pthread_mutex_destroy(&s->stats_mu);
    pthread_mutex_destroy(&s->sync_mu);
    free(s);
}

/*
 * Upgrades a database of schema 1-3 to 4, inside migrate()'s transaction, after schema_sql (which
 * has already created the partial indexes): fills assets.first_seq from the full history index,
 * and drops the indexes the partial ones replace (schema 5 drops the full-text index schema 4
 * rebuilt here). Returns false with err set.
 */
static bool upgrade4(sq_store *s, ms_error *err)
{
    sqlite3_stmt *st = NULL;
    bool has_col = sqlite3_prepare_v2(s->w,
                                      "SELECT 1 FROM pragma_table_info('assets')"
                                      " WHERE name = 'first_seq'",
                                      -1, &st, NULL) == SQLITE_OK &&
                   sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    /* The column is there when schema_sql created the assets table itself (an older file
     * without an assets table, e.g. a schema 1 one missing tables). */
    if (!has_col && sqlite3_exec(s->w, "ALTER TABLE assets ADD COLUMN first_seq INTEGER", NULL,
                                 NULL, NULL) != SQLITE_OK) {
        sq_fail(err, s->w, "add assets.first_seq");
        return false;
    }
    static const char *const steps[] = {
        ("UPDATE assets SET first_seq = (SELECT min(c.seq) FROM changes c WHERE c.tenant ="
         " assets.tenant AND c.qn = assets.qn AND c.op = 'create' AND c.version = 1)"),
        "DROP INDEX IF EXISTS changes_qn",
        "DROP INDEX IF EXISTS assets_type",
    };
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        if (sqlite3_exec(s->w, steps[i], NULL, NULL, NULL) != SQLITE_OK) {
            sq_fail(err, s->w, steps[i]);
            return false;
        }
    }
    ms_log_info(s->log, "store: %s upgraded from schema 1-3", s->path);
    return true;
}

/* Creates the schema or checks that an existing one is ours. */
static ms_err migrate(sq_store *s, ms_error *err)
{
    char *emsg = NULL;
    if (sqlite3_exec(s->w, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return sq_fail(err, s->w, "begin migration");
    if (sqlite3_exec(s->w, schema_sql, NULL, NULL, &emsg) != SQLITE_OK) {
        ms_error_set(err, MS_ERR_STORE, "sqlite: schema: %s", emsg ? emsg : "?");
        sqlite3_free(emsg);
        sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
        return MS_ERR_STORE;
    }
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(s->w, "SELECT value FROM meta WHERE key='schema_version'", -1, &st, NULL);
    int have = 0;
    if (st && sqlite3_step(st) == SQLITE_ROW) have = atoi((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (have > SQ_SCHEMA_VERSION) {
        sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
        return ms_error_set(err, MS_ERR_STORE,
                            "%s has schema version %d, newer than this binary's %d", s->path, have,
                            SQ_SCHEMA_VERSION);
    }
    if (have > 0 && have < 4 && !upgrade4(s, err)) {
        sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
        return MS_ERR_STORE;
    }
    char sql[128];
    snprintf(sql, sizeof sql,
             "INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', '%d')",
             SQ_SCHEMA_VERSION);
    if (sqlite3_exec(s->w, sql, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(s->w, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sq_fail(err, s->w, "commit migration");
        sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
        return MS_ERR_STORE;
    }
    return MS_OK;
}

/* Creates every directory on the way to the file at path. */
static void mkdir_parents(const char *path)
{
    char *p = ms_xstrdup(path);
    for (char *q = p + 1; *q; q++)
        if (*q == '/') {
            *q = '\0';
            mkdir(p, 0755);
            *q = '/';
        }
    free(p);
}

/* Process-wide SQLite settings, before its first use: every connection is used by one thread
 * at a time (multi-thread mode), and no global memory statistics (their mutex is taken on every
 * allocation and showed up as the top cost of the write path). */
static void sqlite_once(void)
{
    sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3_initialize();
}

static ms_err sq_open(const ms_store_open_args *a, void **ctx, ms_error *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_once);
    sq_store *s = ms_xcalloc(1, sizeof *s);
    s->log = a->log;
    s->types = a->types;
    s->sync_full = strcmp(a->cfg->store_synchronous, "normal") != 0;
    s->cache_mb = (int)a->cfg->store_cache_mb;
    s->max_depth = (int)a->cfg->limits_max_depth;
    ms_pool_init(&s->pool, SQ_POOL);
    pthread_mutex_init(&s->stats_mu, NULL);
    pthread_mutex_init(&s->sync_mu, NULL);
    s->wal_fd = -1;
    const char *url = a->url;
    if (strncmp(url, "sqlite:", 7) == 0 && url[7]) {
        s->path = ms_xstrdup(url + 7);
    } else {
        ms_buf b = MS_BUF_INIT;
        ms_buf_printf(&b, "%s/metasync.db", a->cfg->data_dir);
        s->path = ms_buf_steal(&b);
    }
    mkdir_parents(s->path);
    ms_err rc = sq_open_conn(s, &s->w, err);
    if (rc == MS_OK) rc = migrate(s, err);
    if (rc == MS_OK) rc = sq_search_open(s, err);
    /* The writer's commits are made durable by sq_sync (deferred durability): its own COMMITs
     * only write the WAL. The other connections keep the configured mode. */
    if (rc == MS_OK && s->sync_full &&
        sqlite3_exec(s->w, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK)
        rc = sq_fail(err, s->w, "writer synchronous");
    for (int i = 0; rc == MS_OK && i < SQ_POOL; i++) {
        sqlite3 *db = NULL;
        rc = sq_open_conn(s, &db, err);
        s->pool.conn[i] = db;
        if (rc == MS_OK) rc = sq_search_attach(s, db, err);
    }
    if (rc == MS_OK) rc = sq_apply_prepare(s, err);
    if (rc == MS_OK) rc = sq_open_conn(s, &s->ckpt_db, err);
    if (rc == MS_OK) sq_ckpt_init(s, a->cfg->store_wal_max_bytes);
    if (rc == MS_OK) rc = sq_search_start(s, err);
    if (rc != MS_OK) {
        sq_close(s);
        return rc;
    }
    ms_log_info(a->log, "store: sqlite %s (synchronous=%s)", s->path,
                s->sync_full ? "full" : "normal");
    *ctx = s;
    return MS_OK;
}

/* Prepares sql on db; on failure fills err. */
static sqlite3_stmt *prep(sqlite3 *db, const char *sql, ms_error *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) sq_fail(err, db, "prepare");
    return st;
}

#define ROW_COLS                                                                                   \
    "id, type, name, parent, attributes, version, deleted, created_at, orphan, updated_at"

static ms_err sq_asset_get(void *ctx, const char *tenant, const char *qn, bool include_deleted,
                           ms_buf *out, ms_error *err)
{
    sq_store *s = ctx;
    sqlite3 *db = sq_acquire(s);
    sqlite3_stmt *get = prep(db, "SELECT " ROW_COLS " FROM assets WHERE tenant=? AND qn=?", err);
    sqlite3_stmt *tg = prep(db,
                            "SELECT tag, source, origin FROM tags WHERE tenant=? AND qn=?"
                            " ORDER BY tag, origin",
                            err);
    ms_err rc = MS_ERR_STORE;
    ms_srow r;
    memset(&r, 0, sizeof r);
    if (get && tg) rc = sq_row_load(db, get, tg, tenant, qn, true, &r, err);
    if (rc == MS_OK) {
        if (!r.exists)
            rc = ms_error_set(err, MS_ERR_NOT_FOUND, "no asset '%s'", qn);
        else if (r.deleted && !include_deleted)
            rc = ms_error_set(err, MS_ERR_NOT_FOUND,
                              "asset '%s' was deleted (version %lld); add include_deleted=true "
                              "to see it",
                              qn, (long long)r.version);
        else
            ms_srow_json(out, qn, &r);
    }
    ms_srow_free(&r);
    sqlite3_finalize(get);
    sqlite3_finalize(tg);
    sq_release(s, db);
    return rc;
}

/* Turns free text into an FTS5 query: each word becomes a quoted prefix term, ANDed. */
static void fts_query(const char *q, ms_buf *out)
{
    const unsigned char *p = (const unsigned char *)q;
    while (*p) {
        while (*p && !(*p >= 0x80 || (*p >= '0' && *p <= '9') ||
                       ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z')))
            p++;
        const unsigned char *start = p;
        while (*p >= 0x80 || (*p >= '0' && *p <= '9') || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z'))
            p++;
        if (p > start) {
            if (out->len) ms_buf_putc(out, ' ');
            ms_buf_putc(out, '"');
            ms_buf_append(out, start, (size_t)(p - start));
            ms_buf_puts(out, "\"*");
        }
    }
}

static ms_err sq_asset_list(void *ctx, const ms_asset_query *q, ms_buf *items, ms_buf *next_cursor,
                            ms_error *err)
{
    sq_store *s = ctx;
    ms_buf sql = MS_BUF_INIT, fq = MS_BUF_INIT;
    ms_buf_puts(&sql, "SELECT a.qn, a.id, a.type, a.name, a.parent, a.attributes, a.version,"
                      " a.deleted, a.created_at, a.orphan, a.updated_at FROM ");
    if (q->q) {
        fts_query(q->q, &fq);
        if (!fq.len) {
            ms_buf_free(&sql);
            return ms_error_set(err, MS_ERR_BAD_PARAM, "q has no searchable word");
        }
        /* The matches first, each looked up by id, then sorted: O(matches). Left to itself the
         * planner walked the tenant in qn order and ran the full-text query once per asset
         * (minutes at 300k assets). */
        ms_buf_puts(&sql, "s.fts f CROSS JOIN assets a ON a.id = f.rowid"
                          " WHERE f.fts MATCH ?5 AND a.tenant = ?1");
    } else {
        ms_buf_puts(&sql, "assets a WHERE a.tenant = ?1");
    }
    if (q->type) {
        ms_buf_puts(&sql, " AND a.type = ?2");
        /* Lets the planner use assets_type_fast; a bulk type walks the qn order instead. */
        if (in_type_index(q->type)) ms_buf_puts(&sql, " AND a." SQ_NOT_BULK);
    }
    if (q->parent) ms_buf_puts(&sql, " AND a.parent = ?3");
    if (q->tag)
        ms_buf_puts(&sql, " AND EXISTS (SELECT 1 FROM tags t WHERE t.tenant = a.tenant AND"
                          " t.qn = a.qn AND t.tag = ?4)");
    if (q->orphan >= 0) ms_buf_printf(&sql, " AND a.orphan = %d", q->orphan ? 1 : 0);
    if (!q->include_deleted) ms_buf_puts(&sql, " AND a.deleted = 0");
    if (q->cursor) ms_buf_puts(&sql, " AND a.qn > ?6");
    ms_buf_printf(&sql, " ORDER BY a.qn LIMIT %d", q->limit + 1);

    sqlite3 *db = sq_acquire(s);
    /* The index follows the store a moment behind (store_sqlite_search.c): a search sees what was
     * committed before it, unless the index is far behind (then it answers with what it has). */
    if (q->q && !sq_search_wait(s, db))
        ms_log_debug(s->log, "store: search answered while the index is catching up");
    ms_err rc = MS_OK;
    ms_buf last = MS_BUF_INIT; /* qualified name of the last item shown */
    sqlite3_stmt *st = prep(db, sql.data, err);
    sqlite3_stmt *tg = prep(db,
                            "SELECT tag, source, origin FROM tags WHERE tenant=? AND qn=?"
                            " ORDER BY tag, origin",
                            err);
    if (!st || !tg) rc = MS_ERR_STORE;
    if (rc == MS_OK) {
        sq_bind_text(st, 1, q->tenant);
        if (q->type) sq_bind_text(st, 2, q->type);
        if (q->parent) sq_bind_text(st, 3, q->parent);
        if (q->tag) sq_bind_text(st, 4, q->tag);
        if (q->q) sq_bind_text(st, 5, fq.data);
        if (q->cursor) sq_bind_text(st, 6, q->cursor);
        int n = 0, src;
        while ((src = sqlite3_step(st)) == SQLITE_ROW) {
            const char *qn = (const char *)sqlite3_column_text(st, 0);
            if (n == q->limit) { /* there is more: the next page resumes after the last shown */
                ms_buf_puts(next_cursor, last.data);
                break;
            }
            ms_buf_reset(&last);
            ms_buf_puts(&last, qn);
            ms_srow r;
            memset(&r, 0, sizeof r);
            r.exists = true;
            r.id = sqlite3_column_int64(st, 1);
            r.type = sq_col_dup(st, 2);
            r.name = sq_col_dup(st, 3);
            r.parent = sq_col_dup(st, 4);
            r.attributes = sq_col_dup(st, 5);
            r.version = sqlite3_column_int64(st, 6);
            r.deleted = sqlite3_column_int(st, 7) != 0;
            r.created_at = sq_col_dup(st, 8);
            r.orphan = sqlite3_column_int(st, 9) != 0;
            r.updated_at = sq_col_dup(st, 10);
            if (sq_tags_load(db, tg, q->tenant, qn, &r, err) != MS_OK) rc = MS_ERR_STORE;
            if (n++) ms_buf_putc(items, ',');
            ms_srow_json(items, qn, &r);
            ms_srow_free(&r);
        }
        if (src != SQLITE_ROW && src != SQLITE_DONE) rc = sq_fail(err, db, "list assets");
    }
    sqlite3_finalize(st);
    sqlite3_finalize(tg);
    sq_release(s, db);
    ms_buf_free(&sql);
    ms_buf_free(&fq);
    ms_buf_free(&last);
    return rc;
}

typedef struct lin_node {
    char *qn;
    int depth;
} lin_node;

/* Walks one direction from qn, appending the nodes reached (with their distance). */
static ms_err walk(sqlite3 *db, const char *tenant, const char *qn, bool down, int depth,
                   ms_buf *nodes, size_t *nn, ms_error *err)
{
    const char *sql_down =
        "WITH RECURSIVE w(qn, d) AS (SELECT ?2, 0 UNION SELECT e.dst, w.d + 1 FROM edges e"
        " JOIN w ON e.tenant = ?1 AND e.src = w.qn WHERE w.d < ?3)"
        " SELECT w.qn, MIN(w.d), a.type, a.name FROM w LEFT JOIN assets a ON a.tenant = ?1 AND"
        " a.qn = w.qn AND a.deleted = 0 WHERE w.d > 0 AND w.qn <> ?2 GROUP BY w.qn"
        " ORDER BY MIN(w.d), w.qn";
    const char *sql_up =
        "WITH RECURSIVE w(qn, d) AS (SELECT ?2, 0 UNION SELECT e.src, w.d + 1 FROM edges e"
        " JOIN w ON e.tenant = ?1 AND e.dst = w.qn WHERE w.d < ?3)"
        " SELECT w.qn, MIN(w.d), a.type, a.name FROM w LEFT JOIN assets a ON a.tenant = ?1 AND"
        " a.qn = w.qn AND a.deleted = 0 WHERE w.d > 0 AND w.qn <> ?2 GROUP BY w.qn"
        " ORDER BY MIN(w.d), w.qn";
    sqlite3_stmt *st = prep(db, down ? sql_down : sql_up, err);
    if (!st) return MS_ERR_STORE;
    sq_bind_text(st, 1, tenant);
    sq_bind_text(st, 2, qn);
    sqlite3_bind_int(st, 3, depth);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((*nn)++) ms_buf_putc(nodes, ',');
        ms_buf_puts(nodes, "{\"qualified_name\":");
        ms_buf_put_jstr(nodes, (const char *)sqlite3_column_text(st, 0));
        ms_buf_puts(nodes, ",\"type\":");
        ms_buf_put_jstr(nodes, (const char *)sqlite3_column_text(st, 2));
        ms_buf_puts(nodes, ",\"name\":");
        ms_buf_put_jstr(nodes, (const char *)sqlite3_column_text(st, 3));
        ms_buf_printf(nodes, ",\"direction\":\"%s\",\"distance\":%d}",
                      down ? "downstream" : "upstream", sqlite3_column_int(st, 1));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? MS_OK : sq_fail(err, db, "lineage");
}

/* Appends the edges between the nodes reached by walking dir from qn, each edge once (on a cycle
 * the upstream and downstream walks meet the same edges). */
static ms_err walk_edges(sqlite3 *db, const char *tenant, const char *qn, ms_lineage_dir dir,
                         int depth, ms_buf *edges, ms_error *err)
{
    const char *sql =
        "WITH RECURSIVE dn(qn, d) AS (SELECT ?2, 0 WHERE ?4 UNION SELECT e.dst, dn.d + 1 FROM"
        " edges e JOIN dn ON e.tenant = ?1 AND e.src = dn.qn WHERE dn.d < ?3),"
        " up(qn, d) AS (SELECT ?2, 0 WHERE ?5 UNION SELECT e.src, up.d + 1 FROM edges e"
        " JOIN up ON e.tenant = ?1 AND e.dst = up.qn WHERE up.d < ?3)"
        " SELECT e.src, e.dst, e.via FROM edges e JOIN dn ON e.tenant = ?1 AND e.src = dn.qn"
        " WHERE dn.d < ?3 UNION SELECT e.src, e.dst, e.via FROM edges e JOIN up ON"
        " e.tenant = ?1 AND e.dst = up.qn WHERE up.d < ?3 ORDER BY 1, 2, 3";
    sqlite3_stmt *st = prep(db, sql, err);
    if (!st) return MS_ERR_STORE;
    sq_bind_text(st, 1, tenant);
    sq_bind_text(st, 2, qn);
    sqlite3_bind_int(st, 3, depth);
    sqlite3_bind_int(st, 4, (dir & MS_LINEAGE_DOWNSTREAM) != 0);
    sqlite3_bind_int(st, 5, (dir & MS_LINEAGE_UPSTREAM) != 0);
    size_t ne = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (ne++) ms_buf_putc(edges, ',');
        ms_buf_puts(edges, "{\"from\":");
        ms_buf_put_jstr(edges, (const char *)sqlite3_column_text(st, 0));
        ms_buf_puts(edges, ",\"to\":");
        ms_buf_put_jstr(edges, (const char *)sqlite3_column_text(st, 1));
        const char *via = (const char *)sqlite3_column_text(st, 2);
        ms_buf_puts(edges, ",\"via\":");
        ms_buf_put_jstr(edges, via && *via ? via : NULL);
        ms_buf_putc(edges, '}');
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? MS_OK : sq_fail(err, db, "lineage edges");
}

static ms_err sq_lineage(void *ctx, const char *tenant, const char *qn, ms_lineage_dir dir,
                         int depth, ms_buf *out, ms_error *err)
{
    sq_store *s = ctx;
    sqlite3 *db = sq_acquire(s);
    ms_buf nodes = MS_BUF_INIT, edges = MS_BUF_INIT;
    size_t nn = 0;
    ms_err rc = MS_OK;
    if (dir & MS_LINEAGE_UPSTREAM) rc = walk(db, tenant, qn, false, depth, &nodes, &nn, err);
    if (rc == MS_OK && (dir & MS_LINEAGE_DOWNSTREAM))
        rc = walk(db, tenant, qn, true, depth, &nodes, &nn, err);
    if (rc == MS_OK) rc = walk_edges(db, tenant, qn, dir, depth, &edges, err);
    sq_release(s, db);
    if (rc == MS_OK) {
        ms_buf_puts(out, "{\"root\":");
        ms_buf_put_jstr(out, qn);
        ms_buf_printf(out, ",\"direction\":\"%s\",\"depth\":%d,\"nodes\":[%s],\"edges\":[%s]}",
                      dir == MS_LINEAGE_BOTH       ? "both"
                      : dir == MS_LINEAGE_UPSTREAM ? "upstream"
                                                   : "downstream",
                      depth, ms_buf_cstr(&nodes), ms_buf_cstr(&edges));
    }
    ms_buf_free(&nodes);
    ms_buf_free(&edges);
    return rc;
}

/* Runs a change-log query (columns in ms_change order after tenant) and feeds cb. */
static ms_err feed_changes(sqlite3 *db, sqlite3_stmt *st, const char *tenant, ms_change_cb cb,
                           void *ud, ms_error *err)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ms_change c = {
            .seq = (uint64_t)sqlite3_column_int64(st, 0),
            .tenant = tenant,
            .op = (const char *)sqlite3_column_text(st, 1),
            .qn = (const char *)sqlite3_column_text(st, 2),
            .type = (const char *)sqlite3_column_text(st, 3),
            .version = sqlite3_column_int64(st, 4),
            .before = (const char *)sqlite3_column_text(st, 5),
            .after = (const char *)sqlite3_column_text(st, 6),
            .changed = (const char *)sqlite3_column_text(st, 7),
            .cause = (const char *)sqlite3_column_text(st, 8),
            .ts = (const char *)sqlite3_column_text(st, 9),
        };
        if (cb(ud, &c)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return rc == SQLITE_DONE ? MS_OK : sq_fail(err, db, "read changes");
}

#define CHG_COLS "seq, op, qn, type, version, before, after, changed, cause, ts"

static ms_err sq_history(void *ctx, const char *tenant, const char *qn, ms_change_cb cb, void *ud,
                         ms_error *err)
{
    sq_store *s = ctx;
    sqlite3 *db = sq_acquire(s);
    /* The first create through assets.first_seq, the rest through changes_hist. */
    sqlite3_stmt *st = prep(db,
                            "SELECT " CHG_COLS " FROM changes INDEXED BY changes_hist"
                            " WHERE tenant=?1 AND qn=?2 AND " SQ_NOT_FIRST
                            " UNION ALL SELECT " CHG_COLS " FROM changes"
                            " WHERE tenant=?1 AND seq = (SELECT first_seq FROM assets"
                            " WHERE tenant=?1 AND qn=?2) ORDER BY seq",
                            err);
    ms_err rc = MS_ERR_STORE;
    if (st) {
        sq_bind_text(st, 1, tenant);
        sq_bind_text(st, 2, qn);
        rc = feed_changes(db, st, tenant, cb, ud, err);
    }
    sqlite3_finalize(st);
    sq_release(s, db);
    return rc;
}

static ms_err sq_changes(void *ctx, const char *tenant, uint64_t after, size_t limit,
                         ms_change_cb cb, void *ud, ms_error *err)
{
    sq_store *s = ctx;
    sqlite3 *db = sq_acquire(s);
    /* Only durable changes: what sinks deliver and feeds show never goes back after a crash. */
    uint64_t cap = INT64_MAX;
    sq_durable_seq(s, tenant, &cap);
    sqlite3_stmt *st = prep(db,
                            "SELECT " CHG_COLS " FROM changes WHERE tenant=? AND seq>? AND seq<=?"
                            " ORDER BY seq LIMIT ?",
                            err);
    ms_err rc = MS_ERR_STORE;
    if (st) {
        sq_bind_text(st, 1, tenant);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)after);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)cap);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)limit);
        rc = feed_changes(db, st, tenant, cb, ud, err);
    }
    sqlite3_finalize(st);
    sq_release(s, db);
    return rc;
}

/* Runs a query with text parameters a, b (b may be NULL) returning one integer. */
static ms_err scalar(sq_store *s, const char *sql, const char *a, const char *b, int64_t *v,
                     ms_error *err)
{
    sqlite3 *db = sq_acquire(s);
    sqlite3_stmt *st = prep(db, sql, err);
    ms_err rc = MS_ERR_STORE;
    if (st) {
        sq_bind_text(st, 1, a);
        if (b) sq_bind_text(st, 2, b);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW || r == SQLITE_DONE) {
            *v = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
            rc = MS_OK;
        } else {
            rc = sq_fail(err, db, "query");
        }
    }
    sqlite3_finalize(st);
    sq_release(s, db);
    return rc;
}

static ms_err sq_last_seq(void *ctx, const char *tenant, uint64_t *seq, ms_error *err)
{
    if (sq_durable_seq(ctx, tenant, seq)) return MS_OK;
    int64_t v = 0;
    ms_err rc = scalar(ctx, "SELECT coalesce(max(seq), 0) FROM changes WHERE tenant=?", tenant,
                       NULL, &v, err);
    *seq = (uint64_t)v;
    return rc;
}

/* The orphan count is kept by the writer for every tenant it has written to since open (O(1));
 * only a tenant it has not seen yet is counted with a query. */
static ms_err sq_stats(void *ctx, const char *tenant, ms_store_stats *st, ms_error *err)
{
    sq_store *s = ctx;
    pthread_mutex_lock(&s->stats_mu);
    for (size_t i = 0; i < s->nseqs; i++)
        if (strcmp(s->seqs[i].tenant, tenant) == 0) {
            st->orphans = (uint64_t)s->seqs[i].orphans;
            pthread_mutex_unlock(&s->stats_mu);
            return MS_OK;
        }
    pthread_mutex_unlock(&s->stats_mu);
    int64_t v = 0;
    ms_err rc = scalar(ctx, "SELECT count(*) FROM assets WHERE tenant=? AND orphan=1 AND deleted=0",
                       tenant, NULL, &v, err);
    st->orphans = (uint64_t)v;
    return rc;
}

static ms_err sq_tenants(void *ctx, int (*cb)(void *ud, const char *tenant), void *ud,
                         ms_error *err)
{
    sq_store *s = ctx;
    sqlite3 *db = sq_acquire(s);
    sqlite3_stmt *st = prep(db, "SELECT tenant FROM tenants ORDER BY tenant", err);
    ms_err rc = st ? MS_OK : MS_ERR_STORE;
    int r = SQLITE_DONE;
    while (st && (r = sqlite3_step(st)) == SQLITE_ROW)
        if (cb(ud, (const char *)sqlite3_column_text(st, 0))) break;
    if (st && r != SQLITE_ROW && r != SQLITE_DONE) rc = sq_fail(err, db, "tenants");
    sqlite3_finalize(st);
    sq_release(s, db);
    return rc;
}

static ms_err sq_asset_type(void *ctx, const char *tenant, const char *qn, char *buf, size_t len,
                            ms_error *err)
{
    sq_store *s = ctx;
    sqlite3 *db = sq_acquire(s);
    sqlite3_stmt *st =
        prep(db, "SELECT type FROM assets WHERE tenant=? AND qn=? AND deleted=0", err);
    ms_err rc = MS_ERR_STORE;
    buf[0] = '\0';
    if (st) {
        sq_bind_text(st, 1, tenant);
        sq_bind_text(st, 2, qn);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
            rc = MS_OK;
        } else {
            rc = r == SQLITE_DONE ? ms_error_set(err, MS_ERR_NOT_FOUND, "no asset '%s'", qn)
                                  : sq_fail(err, db, "asset type");
        }
    }
    sqlite3_finalize(st);
    sq_release(s, db);
    return rc;
}

static ms_err sq_cursor_get(void *ctx, const char *tenant, const char *sink, uint64_t *seq,
                            ms_error *err)
{
    int64_t v = 0;
    ms_err rc =
        scalar(ctx, "SELECT seq FROM cursors WHERE tenant=? AND sink=?", tenant, sink, &v, err);
    *seq = (uint64_t)v;
    return rc;
}

/* Runs one write statement on a pool connection (other threads than the writer). */
static ms_err pool_write(sq_store *s, const char *sql, const char *a, const char *b, const char *c,
                         int64_t n, ms_error *err)
{
    sqlite3 *db = sq_acquire(s);
    sqlite3_stmt *st = prep(db, sql, err);
    ms_err rc = MS_ERR_STORE;
    if (st) {
        sq_bind_text(st, 1, a);
        sq_bind_text(st, 2, b);
        if (c)
            sq_bind_text(st, 3, c);
        else
            sqlite3_bind_int64(st, 3, n);
        rc = sqlite3_step(st) == SQLITE_DONE ? MS_OK : sq_fail(err, db, "write");
    }
    sqlite3_finalize(st);
    sq_release(s, db);
    return rc;
}

static ms_err sq_cursor_set(void *ctx, const char *tenant, const char *sink, uint64_t seq,
                            ms_error *err)
{
    return pool_write(ctx, "INSERT OR REPLACE INTO cursors(tenant, sink, seq) VALUES(?, ?, ?)",
                      tenant, sink, NULL, (int64_t)seq, err);
}

static ms_err sq_offsets_get(void *ctx, const char *group, const char *topic, const int32_t *parts,
                             size_t n, int64_t *next, ms_error *err)
{
    sq_store *s = ctx;
    for (size_t i = 0; i < n; i++)
        next[i] = -1;
    sqlite3 *db = sq_acquire(s);
    sqlite3_stmt *st =
        prep(db, "SELECT part, next_offset FROM source_offsets WHERE grp=? AND topic=?", err);
    ms_err rc = st ? MS_OK : MS_ERR_STORE;
    if (st) {
        sq_bind_text(st, 1, group);
        sq_bind_text(st, 2, topic);
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            int32_t part = (int32_t)sqlite3_column_int(st, 0);
            for (size_t i = 0; i < n; i++)
                if (parts[i] == part) next[i] = sqlite3_column_int64(st, 1);
        }
        if (step != SQLITE_DONE) rc = sq_fail(err, db, "source offsets");
    }
    sqlite3_finalize(st);
    sq_release(s, db);
    return rc;
}

static ms_err sq_type_save(void *ctx, const char *tenant, const char *name, const char *json,
                           ms_error *err)
{
    return pool_write(ctx, "INSERT OR REPLACE INTO types(tenant, name, definition) VALUES(?, ?, ?)",
                      tenant, name, json, 0, err);
}

static ms_err sq_types_load(void *ctx, int (*cb)(void *ud, const char *tenant, const char *json),
                            void *ud, ms_error *err)
{
    sq_store *s = ctx;
    sqlite3 *db = sq_acquire(s);
    sqlite3_stmt *st = prep(db, "SELECT tenant, definition FROM types ORDER BY tenant, name", err);
    ms_err rc = st ? MS_OK : MS_ERR_STORE;
    while (st && sqlite3_step(st) == SQLITE_ROW)
        if (cb(ud, (const char *)sqlite3_column_text(st, 0),
               (const char *)sqlite3_column_text(st, 1)))
            break;
    sqlite3_finalize(st);
    sq_release(s, db);
    return rc;
}

/* Control-plane records (ms_store.h, version 2): one statement in autocommit mode on a pool
 * connection, so the record is durable (per store.synchronous) when this returns. */
static ms_err sq_ctl_put(void *ctx, const char *tenant, const char *kind, const char *key,
                         const char *json, ms_error *err)
{
    sq_store *s = ctx;
    if (!tenant || !kind || !key)
        return ms_error_set(err, MS_ERR_INTERNAL, "ctl_put: tenant, kind and key are required");
    sqlite3 *db = sq_acquire(s);
    sqlite3_stmt *st =
        prep(db,
             json ? "INSERT OR REPLACE INTO ctl(tenant, kind, key, json) VALUES(?, ?, ?, ?)"
                  : "DELETE FROM ctl WHERE tenant=? AND kind=? AND key=?",
             err);
    ms_err rc = MS_ERR_STORE;
    if (st) {
        sq_bind_text(st, 1, tenant);
        sq_bind_text(st, 2, kind);
        sq_bind_text(st, 3, key);
        if (json) sq_bind_text(st, 4, json);
        rc = sqlite3_step(st) == SQLITE_DONE ? MS_OK : sq_fail(err, db, "ctl_put");
    }
    sqlite3_finalize(st);
    sq_release(s, db);
    return rc;
}

static ms_err sq_ctl_list(void *ctx, const char *tenant, const char *kind,
                          int (*cb)(void *ud, const char *tenant, const char *key,
                                    const char *json),
                          void *ud, ms_error *err)
{
    sq_store *s = ctx;
    sqlite3 *db = sq_acquire(s);
    sqlite3_stmt *st = prep(db,
                            tenant ? "SELECT tenant, key, json FROM ctl WHERE kind=? AND tenant=?"
                                     " ORDER BY tenant, key"
                                   : "SELECT tenant, key, json FROM ctl WHERE kind=?"
                                     " ORDER BY tenant, key",
                            err);
    ms_err rc = st ? MS_OK : MS_ERR_STORE;
    if (st) {
        sq_bind_text(st, 1, kind);
        if (tenant) sq_bind_text(st, 2, tenant);
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW)
            if (cb(ud, (const char *)sqlite3_column_text(st, 0),
                   (const char *)sqlite3_column_text(st, 1),
                   (const char *)sqlite3_column_text(st, 2)))
                break;
        if (step != SQLITE_ROW && step != SQLITE_DONE) rc = sq_fail(err, db, "ctl_list");
    }
    sqlite3_finalize(st);
    sq_release(s, db);
    return rc;
}

/* Adds a ctl record unless one with the same key exists (ms_store.h, version 4). */
static ms_err sq_ctl_add(void *ctx, const char *tenant, const char *kind, const char *key,
                         const char *json, bool *added, ms_error *err)
{
    sq_store *s = ctx;
    *added = false;
    if (!tenant || !kind || !key || !json)
        return ms_error_set(err, MS_ERR_INTERNAL,
                            "ctl_add: tenant, kind, key and json are required");
    sqlite3 *db = sq_acquire(s);
    sqlite3_stmt *st =
        prep(db, "INSERT OR IGNORE INTO ctl(tenant, kind, key, json) VALUES(?, ?, ?, ?)", err);
    ms_err rc = MS_ERR_STORE;
    if (st) {
        sq_bind_text(st, 1, tenant);
        sq_bind_text(st, 2, kind);
        sq_bind_text(st, 3, key);
        sq_bind_text(st, 4, json);
        rc = sqlite3_step(st) == SQLITE_DONE ? MS_OK : sq_fail(err, db, "ctl_add");
        *added = rc == MS_OK && sqlite3_changes(db) > 0;
    }
    sqlite3_finalize(st);
    sq_release(s, db);
    return rc;
}

/* One process owns an SQLite store (it is opened by one `metasync serve`): every lease is its. */
static ms_err sq_lease_hold(void *ctx, const char *tenant, const char *sink, bool *held,
                            uint64_t *epoch, ms_error *err)
{
    (void)ctx, (void)tenant, (void)sink, (void)err;
    *held = true;
    *epoch = 1;
    return MS_OK;
}

static void sq_metrics(void *ctx, ms_buf *out)
{
    sq_store *s = ctx;
    sqlite3 *db = sq_acquire(s);
    sq_search_metrics(s, db, out);
    sq_release(s, db);
    sq_ckpt_metrics(s, out);
}

const ms_store_ops ms_store_sqlite = {
    .version = MS_STORE_OPS_VERSION,
    .name = "sqlite",
    .scheme = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .apply = sq_apply,
    .asset_get = sq_asset_get,
    .asset_list = sq_asset_list,
    .lineage = sq_lineage,
    .history = sq_history,
    .changes = sq_changes,
    .last_seq = sq_last_seq,
    .tenants = sq_tenants,
    .stats = sq_stats,
    .asset_type = sq_asset_type,
    .cursor_get = sq_cursor_get,
    .cursor_set = sq_cursor_set,
    .type_save = sq_type_save,
    .types_load = sq_types_load,
    .ctl_put = sq_ctl_put,
    .ctl_list = sq_ctl_list,
    .ctl_add = sq_ctl_add,
    .lease_hold = sq_lease_hold,
    .apply_at = sq_apply_at,
    .offsets_get = sq_offsets_get,
    .apply_deferred = sq_apply_deferred,
    .sync = sq_sync,
    .metrics = sq_metrics,
};
