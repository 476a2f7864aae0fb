/*
 * store_sqlite_search.c — the SQLite store's full-text index, kept in a database of its own
 * (`<store>-search.db`, a contentless FTS5 table) by an indexer thread, so that indexing runs on
 * another core than the writer's (decision 24).
 *
 * What the index holds: for every asset id up to `asset_mark`, the name, qualified name and
 * description the asset had once every fts_log entry up to `log_mark` was applied. fts_log (in
 * the store, filled by triggers) keeps the old values of each change of an indexed field and of
 * each deleted row; a contentless FTS5 row is removed by giving its old values back.
 *
 * One round: a read of the store (one snapshot, copied into TEMP tables in memory, so that the
 * indexer holds no snapshot while it writes), then one transaction of the search database:
 *   1. the next SQ_IX_ROUND new rows (id > asset_mark) are indexed as they were read;
 *   2. every fts_log entry after log_mark, in order: for an id at or below the asset_mark the
 *      round began with, the first entry of the round removes the values the index holds (its
 *      old values) and indexes the row as it was read; later entries of that id in the round,
 *      and entries of ids the round began without, are already covered by that;
 *   3. both marks are written to the search database, which commits with synchronous=FULL: the
 *      writer deletes fts_log entries only up to a log_mark made durable here.
 * Rounds run SQ_IX_PAUSE_MS apart while the writer commits (larger rounds cost less per row), at
 * once when a search waits, and once a second otherwise. The read is gated by ix_read_mu, which
 * the writer holds while it restarts the store's WAL (SQLite cannot while a reader uses it).
 *
 * Starting: a search database that does not match the store (another store's, by the token in
 * meta; or ahead of it, which a power loss that took back the store's last commits leaves) is
 * emptied and built again from the store, in the background.
 *
 * @locality sq_search_open/start/stop: the thread that opens/closes the store; the indexer's
 * connection (s->ix) and statements: the indexer thread only, once started; sq_search_poke and
 * sq_search_log_mark: the writer; sq_search_wait: any thread, with its own connection.
 */
#include "store_sqlite_int.h"

#include "ms_metrics.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* New rows indexed per round (one transaction of the search database). */
#define SQ_IX_ROUND 20000
/* Rounds start at least this far apart while the writer commits, in ms, unless a search waits:
 * larger rounds cost less per row (one FTS5 segment, one fsync each). */
#define SQ_IX_PAUSE_MS 200
/* How long sq_search_wait waits for the index to reach the store, in ms. */
#define SQ_IX_WAIT_MS 5000

enum { I_UPTO, I_NEW, I_NEWLOG, I_CUR, I_ADD, I_LOG, I_DEL, I_ONE, I_MARK, I__COUNT };
_Static_assert(I__COUNT == SQ_IX_STMTS, "sq_store.is holds every indexer statement");

/* A round reads the store (I_UPTO to I_CUR: what it needs, into TEMP tables, which live in
 * memory), ends that read, then writes the index from the TEMP tables (I_ADD to I_MARK). */
static const char *const isql[I__COUNT] = {
    [I_UPTO] = "SELECT max(id) FROM (SELECT id FROM main.assets WHERE id > ?1 ORDER BY id"
               " LIMIT ?2)",
    [I_NEW] = "INSERT INTO temp.ix_new SELECT id, name, qn, description FROM main.assets"
              " WHERE id > ?1 AND id <= ?2",
    [I_NEWLOG] = "INSERT INTO temp.ix_log SELECT id, asset, name, qn, description"
                 " FROM main.fts_log WHERE id > ?1",
    /* the rows as they are now, of the logged ids that the index holds */
    [I_CUR] = "INSERT INTO temp.ix_cur SELECT id, name, qn, description FROM main.assets"
              " WHERE id IN (SELECT asset FROM temp.ix_log WHERE asset <= ?1)",
    [I_ADD] = "INSERT INTO s.fts(rowid, name, qn, description)"
              " SELECT id, name, qn, description FROM temp.ix_new",
    [I_LOG] = "SELECT id, asset, name, qn, description FROM temp.ix_log ORDER BY id",
    [I_DEL] = "INSERT INTO s.fts(fts, rowid, name, qn, description)"
              " VALUES('delete', ?1, ?2, ?3, ?4)",
    [I_ONE] = "INSERT INTO s.fts(rowid, name, qn, description)"
              " SELECT id, name, qn, description FROM temp.ix_cur WHERE id = ?1",
    [I_MARK] = "UPDATE s.marks SET value = ?2 WHERE key = ?1",
};

static const char *const temp_clear =
    "DELETE FROM temp.ix_new; DELETE FROM temp.ix_log; DELETE FROM temp.ix_cur;";

/* The search database's path: the store's with "-search" before its ".db" (or at its end). */
static char *search_path(const char *path)
{
    size_t n = strlen(path);
    ms_buf b = MS_BUF_INIT;
    if (n > 3 && strcmp(path + n - 3, ".db") == 0)
        ms_buf_printf(&b, "%.*s-search.db", (int)(n - 3), path);
    else
        ms_buf_printf(&b, "%s-search", path);
    return ms_buf_steal(&b);
}

/* Runs sql on db; false with err set (naming what) when it fails. */
static bool exec(sqlite3 *db, const char *sql, const char *what, ms_error *err)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK) return true;
    sq_fail(err, db, what);
    return false;
}

/* The integer of a one-value query on db (0 when it returns no row or NULL); false on error. */
static bool scalar(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    *out = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return false;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

ms_err sq_search_attach(sq_store *s, sqlite3 *db, ms_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "ATTACH ?1 AS s", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sq_bind_text(st, 1, s->search_path);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? MS_OK : sq_fail(err, db, "attach the search database");
}

/* Empties the index and sets its marks to start over from the store (token: the store's). */
static bool rebuild(sq_store *s, const char *token, int64_t log_top, ms_error *err)
{
    sqlite3_stmt *st = NULL;
    bool ok = exec(s->ix, "INSERT INTO s.fts(fts) VALUES('delete-all')", "empty search", err) &&
              sqlite3_prepare_v2(s->ix,
                                 "INSERT OR REPLACE INTO s.marks(key, value) VALUES"
                                 " ('token', ?1), ('asset_mark', 0), ('log_mark', ?2)",
                                 -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        sq_bind_text(st, 1, token);
        sqlite3_bind_int64(st, 2, log_top); /* entries before the rebuild are about its rows */
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    if (!ok && !err->detail[0]) sq_fail(err, s->ix, "reset search marks");
    s->ix_asset_mark = 0;
    s->ix_log_mark = log_top;
    return ok;
}

/* Checks that the search database matches the store (rebuilding it when not) and loads the
 * marks, in one transaction. */
static ms_err check(sq_store *s, ms_error *err)
{
    if (!exec(s->ix, "BEGIN IMMEDIATE", "begin search check", err)) return MS_ERR_STORE;
    char token[64] = "", have[64] = "";
    int64_t max_id = 0, log_top = 0, asset_mark = 0, log_mark = 0;
    sqlite3_stmt *st = NULL;
    bool ok = sqlite3_prepare_v2(s->ix,
                                 "SELECT (SELECT value FROM main.meta WHERE key = 'search_token'),"
                                 " (SELECT value FROM s.marks WHERE key = 'token'),"
                                 " (SELECT coalesce(max(id), 0) FROM main.assets),"
                                 " (SELECT coalesce(max(seq), 0) FROM main.sqlite_sequence"
                                 "  WHERE name = 'fts_log'),"
                                 " (SELECT value FROM s.marks WHERE key = 'asset_mark'),"
                                 " (SELECT value FROM s.marks WHERE key = 'log_mark')",
                                 -1, &st, NULL) == SQLITE_OK &&
              sqlite3_step(st) == SQLITE_ROW;
    if (ok) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        const char *h = (const char *)sqlite3_column_text(st, 1);
        snprintf(token, sizeof token, "%s", t ? t : "");
        snprintf(have, sizeof have, "%s", h ? h : "");
        max_id = sqlite3_column_int64(st, 2);
        log_top = sqlite3_column_int64(st, 3);
        asset_mark = sqlite3_column_int64(st, 4);
        log_mark = sqlite3_column_int64(st, 5);
    }
    sqlite3_finalize(st);
    if (!ok) {
        sq_fail(err, s->ix, "read search marks");
    } else if (strcmp(token, have) != 0 || asset_mark > max_id || log_mark > log_top) {
        if (have[0])
            ms_log_warn(s->log,
                        "store: search index %s does not match the store (%s); building it"
                        " again in the background",
                        s->search_path,
                        strcmp(token, have) != 0 ? "another store's" : "ahead of the store");
        else if (max_id > 0)
            ms_log_info(s->log,
                        "store: building the search index %s from the store in the"
                        " background",
                        s->search_path);
        ok = rebuild(s, token, log_top, err);
    } else {
        s->ix_asset_mark = asset_mark;
        s->ix_log_mark = log_mark;
    }
    if (ok && exec(s->ix, "COMMIT", "commit search check", err)) return MS_OK;
    sqlite3_exec(s->ix, "ROLLBACK", NULL, NULL, NULL);
    return MS_ERR_STORE;
}

ms_err sq_search_open(sq_store *s, ms_error *err)
{
    s->search_path = search_path(s->path);
    pthread_mutex_init(&s->ix_mu, NULL);
    pthread_mutex_init(&s->ix_read_mu, NULL);
    pthread_cond_init(&s->ix_cv, NULL);
    pthread_cond_init(&s->ix_done_cv, NULL);
    s->ix_init = true;
    if (sq_open_conn(s, &s->ix, err) != MS_OK || sq_search_attach(s, s->ix, err) != MS_OK)
        return MS_ERR_STORE;
    /* The indexer's commits checkpoint the search database's WAL themselves (it is nobody's
     * latency), and are durable when they return (the writer prunes fts_log by them). */
    if (!exec(
            s->ix,
            "PRAGMA s.journal_mode=WAL; PRAGMA s.synchronous=FULL; PRAGMA wal_autocheckpoint=1000;"
            "CREATE TABLE IF NOT EXISTS s.marks(key TEXT PRIMARY KEY, value NOT NULL);"
            "CREATE VIRTUAL TABLE IF NOT EXISTS s.fts USING fts5(name, qn, description,"
            " content='', detail=none, columnsize=0);"
            "CREATE TEMP TABLE ix_new(id INTEGER PRIMARY KEY, name, qn, description);"
            "CREATE TEMP TABLE ix_log(id INTEGER PRIMARY KEY, asset, name, qn, description);"
            "CREATE TEMP TABLE ix_cur(id INTEGER PRIMARY KEY, name, qn, description);",
            "search schema", err))
        return MS_ERR_STORE;
    for (int i = 0; i < I__COUNT; i++)
        if (sqlite3_prepare_v3(s->ix, isql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->is[i], NULL) !=
            SQLITE_OK)
            return sq_fail(err, s->ix, isql[i]);
    return check(s, err);
}

/* Steps st to completion and resets it; false on error. */
static bool run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE;
}

/* A set of asset ids (open addressing; 0 is never an id). */
typedef struct idset {
    int64_t *slot;
    size_t cap, n;
} idset;

/* Adds id; false when it was there already. */
static bool idset_add(idset *set, int64_t id)
{
    if ((set->n + 1) * 2 > set->cap) {
        idset old = *set;
        set->cap = old.cap ? old.cap * 2 : 64;
        set->slot = ms_xcalloc(set->cap, sizeof *set->slot);
        set->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.slot[i]) idset_add(set, old.slot[i]);
        free(old.slot);
    }
    size_t i = (size_t)((uint64_t)id * 0x9E3779B97F4A7C15ull) & (set->cap - 1);
    while (set->slot[i]) {
        if (set->slot[i] == id) return false;
        i = (i + 1) & (set->cap - 1);
    }
    set->slot[i] = id;
    set->n++;
    return true;
}

/* Applies the fts_log entries the round read (see the top of the file); *log_mark moves to the
 * last one. */
static bool apply_log(sq_store *s, int64_t asset_mark, int64_t *log_mark, size_t *nlog)
{
    sqlite3_stmt *log = s->is[I_LOG], *del = s->is[I_DEL], *one = s->is[I_ONE];
    idset done = {0};
    bool ok = true;
    int rc;
    while (ok && (rc = sqlite3_step(log)) == SQLITE_ROW) {
        *log_mark = sqlite3_column_int64(log, 0);
        (*nlog)++;
        int64_t id = sqlite3_column_int64(log, 1);
        if (id <= 0 || id > asset_mark || !idset_add(&done, id)) continue;
        sqlite3_bind_int64(del, 1, id);
        for (int c = 2; c <= 4; c++)
            sqlite3_bind_value(del, c, sqlite3_column_value(log, c));
        sqlite3_bind_int64(one, 1, id);
        ok = run(del) && run(one);
    }
    if (ok && rc != SQLITE_DONE) ok = false;
    sqlite3_reset(log);
    sqlite3_clear_bindings(del);
    free(done.slot);
    return ok;
}

/* A round's read of the store: the new rows up to *upto and the fts_log entries after the log
 * mark, with the current rows of the logged ids at or below asset_mark, copied into the TEMP
 * tables in one read transaction. The writer may hold s->ix_read_mu while it restarts the WAL:
 * SQLite cannot start the WAL over while a reader uses it. */
static bool round_read(sq_store *s, int64_t asset_mark, int64_t *upto)
{
    pthread_mutex_lock(&s->ix_read_mu);
    bool ok = sqlite3_exec(s->ix, "BEGIN", NULL, NULL, NULL) == SQLITE_OK &&
              sqlite3_exec(s->ix, temp_clear, NULL, NULL, NULL) == SQLITE_OK;
    sqlite3_stmt *st = s->is[I_UPTO];
    sqlite3_bind_int64(st, 1, asset_mark);
    sqlite3_bind_int(st, 2, SQ_IX_ROUND);
    ok = ok && sqlite3_step(st) == SQLITE_ROW;
    if (ok && sqlite3_column_type(st, 0) != SQLITE_NULL) *upto = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (ok && *upto > asset_mark) {
        sqlite3_bind_int64(s->is[I_NEW], 1, asset_mark);
        sqlite3_bind_int64(s->is[I_NEW], 2, *upto);
        ok = run(s->is[I_NEW]);
    }
    sqlite3_bind_int64(s->is[I_NEWLOG], 1, s->ix_log_mark);
    sqlite3_bind_int64(s->is[I_CUR], 1, asset_mark);
    ok = ok && run(s->is[I_NEWLOG]) && run(s->is[I_CUR]) &&
         sqlite3_exec(s->ix, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok) sqlite3_exec(s->ix, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&s->ix_read_mu);
    return ok;
}

/* One round (see the top of the file). *more: there are new rows left for another round. */
static bool round_run(sq_store *s, bool *more, ms_error *err)
{
    *more = false;
    int64_t asset_mark = s->ix_asset_mark, log_mark = s->ix_log_mark, upto = asset_mark;
    size_t nlog = 0;
    if (!round_read(s, asset_mark, &upto)) {
        sq_fail(err, s->ix, "search round: read the store");
        return false;
    }
    bool ok = exec(s->ix, "BEGIN", "begin search round", err);
    if (ok && upto > asset_mark) ok = run(s->is[I_ADD]);
    if (ok) ok = apply_log(s, asset_mark, &log_mark, &nlog);
    sqlite3_stmt *st = s->is[I_MARK];
    if (ok && upto > asset_mark) {
        sqlite3_bind_text(st, 1, "asset_mark", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, upto);
        ok = run(st);
    }
    if (ok && nlog) {
        sqlite3_bind_text(st, 1, "log_mark", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, log_mark);
        ok = run(st);
    }
    if (ok) ok = sqlite3_exec(s->ix, temp_clear, NULL, NULL, NULL) == SQLITE_OK;
    if (!ok || sqlite3_exec(s->ix, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        if (!err->detail[0]) sq_fail(err, s->ix, "search round");
        sqlite3_exec(s->ix, "ROLLBACK", NULL, NULL, NULL);
        return false;
    }
    *more = upto - asset_mark >= SQ_IX_ROUND;
    pthread_mutex_lock(&s->ix_mu);
    s->ix_asset_mark = upto;
    s->ix_log_mark = log_mark;
    s->ix_failed = false;
    pthread_cond_broadcast(&s->ix_done_cv);
    pthread_mutex_unlock(&s->ix_mu);
    return true;
}

/* Waits on cv (with ix_mu held) for at most ms milliseconds (CLOCK_REALTIME, cv's clock). */
static void wait_ms(sq_store *s, pthread_cond_t *cv, long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, &s->ix_mu, &until);
}

/* Waits (with ix_mu held) until the next round is due: at once when a search waits for the index
 * or the last round left new rows; SQ_IX_PAUSE_MS after the last round's start when the writer
 * has committed since; else after a second. Returns false when the indexer is to stop. */
static bool round_due(sq_store *s, bool more, unsigned long long last)
{
    for (;;) {
        if (s->ix_stop) return false;
        if (s->ix_urgent || more) return true;
        unsigned long long now = ms_now_ms();
        unsigned long long due = last + (s->ix_poked ? SQ_IX_PAUSE_MS : 1000);
        if (now >= due) return true;
        wait_ms(s, &s->ix_cv, (long)(due - now));
    }
}

/* The indexer: rounds while the writer commits (SQ_IX_PAUSE_MS apart, or at once for a search
 * that waits), and once a second, until stopped. */
static void *indexer(void *arg)
{
    sq_store *s = arg;
    bool more = true, failing = false;
    unsigned long long last = 0;
    for (;;) {
        pthread_mutex_lock(&s->ix_mu);
        bool go = round_due(s, more, last);
        s->ix_poked = s->ix_urgent = false;
        pthread_mutex_unlock(&s->ix_mu);
        if (!go) break;
        last = ms_now_ms();
        ms_error err;
        ms_error_clear(&err);
        if (round_run(s, &more, &err)) {
            if (failing) ms_log_info(s->log, "store: search index: indexing again");
            failing = false;
            continue;
        }
        if (!failing) ms_log_error(s->log, "store: search index: %s (retrying)", err.detail);
        failing = true;
        more = false;
        pthread_mutex_lock(&s->ix_mu);
        s->ix_failed = true;
        pthread_cond_broadcast(&s->ix_done_cv); /* searches answer with what is indexed */
        if (!s->ix_stop) wait_ms(s, &s->ix_cv, 1000);
        pthread_mutex_unlock(&s->ix_mu);
    }
    return NULL;
}

ms_err sq_search_start(sq_store *s, ms_error *err)
{
    int rc = pthread_create(&s->ix_thread, NULL, indexer, s);
    if (rc != 0) return ms_error_set(err, MS_ERR_STORE, "search indexer: %s", strerror(rc));
    s->ix_started = true;
    return MS_OK;
}

void sq_search_stop(sq_store *s)
{
    if (s->ix_started) {
        pthread_mutex_lock(&s->ix_mu);
        s->ix_stop = true;
        pthread_cond_broadcast(&s->ix_cv);
        pthread_mutex_unlock(&s->ix_mu);
        pthread_join(s->ix_thread, NULL);
        s->ix_started = false;
    }
    for (int i = 0; i < I__COUNT; i++)
        sqlite3_finalize(s->is[i]);
    if (s->ix) sqlite3_close(s->ix);
    s->ix = NULL;
    if (s->ix_init) {
        pthread_mutex_destroy(&s->ix_mu);
        pthread_mutex_destroy(&s->ix_read_mu);
        pthread_cond_destroy(&s->ix_cv);
        pthread_cond_destroy(&s->ix_done_cv);
        s->ix_init = false;
    }
    free(s->search_path);
    s->search_path = NULL;
}

void sq_search_poke(sq_store *s)
{
    pthread_mutex_lock(&s->ix_mu);
    if (!s->ix_poked) {
        s->ix_poked = true;
        pthread_cond_signal(&s->ix_cv);
    }
    pthread_mutex_unlock(&s->ix_mu);
}

int64_t sq_search_log_mark(sq_store *s)
{
    pthread_mutex_lock(&s->ix_mu);
    int64_t m = s->ix_log_mark;
    pthread_mutex_unlock(&s->ix_mu);
    return m;
}

bool sq_search_wait(sq_store *s, sqlite3 *db)
{
    int64_t max_id = 0, log_top = 0;
    if (!scalar(db, "SELECT coalesce(max(id), 0) FROM main.assets", &max_id) ||
        !scalar(db, "SELECT coalesce(max(seq), 0) FROM main.sqlite_sequence WHERE name = 'fts_log'",
                &log_top))
        return false;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool caught_up;
    pthread_mutex_lock(&s->ix_mu);
    for (;;) {
        caught_up = s->ix_asset_mark >= max_id && s->ix_log_mark >= log_top;
        if (caught_up || s->ix_failed || s->ix_stop) break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long spent = (long)(now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (spent >= SQ_IX_WAIT_MS) break;
        s->ix_urgent = true;
        pthread_cond_signal(&s->ix_cv);
        wait_ms(s, &s->ix_done_cv, SQ_IX_WAIT_MS - spent < 100 ? SQ_IX_WAIT_MS - spent : 100);
    }
    pthread_mutex_unlock(&s->ix_mu);
    return caught_up;
}

void sq_search_metrics(sq_store *s, sqlite3 *db, ms_buf *out)
{
    pthread_mutex_lock(&s->ix_mu);
    int64_t asset_mark = s->ix_asset_mark, log_mark = s->ix_log_mark;
    bool failing = s->ix_failed;
    pthread_mutex_unlock(&s->ix_mu);
    /* From the highest ids (O(1), whatever the backlog): ids are handed out in order. */
    int64_t max_id = 0, log_top = 0;
    scalar(db, "SELECT coalesce(max(id), 0) FROM main.assets", &max_id);
    scalar(db, "SELECT coalesce(max(seq), 0) FROM main.sqlite_sequence WHERE name = 'fts_log'",
           &log_top);
    int64_t assets = max_id > asset_mark ? max_id - asset_mark : 0;
    int64_t log = log_top > log_mark ? log_top - log_mark : 0;
    ms_metrics_header(out, "metasync_search_index_pending", "gauge",
                      "Committed changes the full-text index does not hold yet: new assets, and"
                      " changed names or descriptions.");
    ms_metrics_sample(out, "metasync_search_index_pending", "kind=\"assets\"", (double)assets);
    ms_metrics_sample(out, "metasync_search_index_pending", "kind=\"changes\"", (double)log);
    ms_metrics_header(out, "metasync_search_index_failing", "gauge",
                      "1 while the search indexer's rounds fail (it retries every second).");
    ms_metrics_sample(out, "metasync_search_index_failing", "", failing ? 1 : 0);
}
