/*
 * store_sqlite_ckpt.c — the SQLite store's checkpointer: copies committed WAL frames back into
 * the database file on its own thread and connection, so that the writer's commits do not pay
 * for it (SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, on
 * the writer thread, which is the engine's one busy core).
 *
 * How the WAL stays bounded: the writer connection has no automatic checkpoint; its WAL hook
 * (after every commit) wakes the checkpointer once the WAL holds SQ_CKPT_START frames, then every
 * SQ_CKPT_STEP frames, then after every commit near the bound, and the
 * checkpointer runs a PASSIVE checkpoint (it never blocks the writer or readers). SQLite starts
 * the WAL over only when a write transaction begins while every frame is already copied, which
 * a checkpointer running beside a busy writer never achieves on its own (the writer has always
 * committed more since). So once the WAL holds s->wal_max frames (store.wal_max_bytes), the
 * writer waits before its
 * next BEGIN for one checkpoint that started after its last commit; by then the checkpointer has
 * copied all but that commit's frames while the writer worked, so the wait is short, and the
 * BEGIN restarts the WAL. A checkpoint that cannot finish (a reader holds an old snapshot) does
 * not make the writer wait again until the WAL has grown by another s->wal_max frames.
 *
 * Durability is unchanged: a commit is durable once its WAL frames are synced (synchronous=full);
 * checkpoints only move committed pages.
 *
 * @locality sq_ckpt_init/stop: the thread that opens/closes the store (stop: once the writer
 * is done); sq_ckpt_before_begin/after_commit: the writer thread; the WAL hook runs on the
 * writer thread inside its COMMIT and starts the checkpointer thread when first needed.
 */
#include "store_sqlite_int.h"

#include "ms_metrics.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* WAL frames (pages) after which the checkpointer is first woken: SQLite's own default
 * threshold. */
#define SQ_CKPT_START 1000
/* Then it is woken each time the WAL has grown by this many frames (16 MiB), and after every
 * commit once the WAL is within two steps of wal_max, so that little is left to copy when the
 * writer waits there. Waking it after every commit copied the pages that each commit rewrites
 * (the right edges of the indexes) over and over: over 1M assets the checkpointer used 1.3-2.3 s
 * of CPU against 0.9-1.6 s, and ingest was ~5% slower (docs/performance.md). */
#define SQ_CKPT_STEP 4096

static void *ckpt_main(void *arg);

/* The writer connection's WAL hook: records the WAL size and wakes the checkpointer, starting
 * it the first time (a store that is never written to has no extra thread, which also keeps
 * fork() in tests safe). Should the thread not start, it checkpoints here, as SQLite's own
 * automatic checkpoint does. @locality writer thread, inside sqlite3_step(COMMIT). */
static int wal_hook(void *ctx, sqlite3 *db, const char *name, int frames)
{
    sq_store *s = ctx;
    if (frames < s->wal_frames || s->ckpt_next_at < SQ_CKPT_START)
        s->ckpt_next_at = SQ_CKPT_START; /* the WAL started over */
    s->wal_frames = frames;
    if (frames < s->ckpt_next_at && frames < s->wal_max - 2 * SQ_CKPT_STEP) return SQLITE_OK;
    s->ckpt_next_at = frames + SQ_CKPT_STEP;
    if (!s->ckpt_running && !s->ckpt_failed) {
        if (pthread_create(&s->ckpt_thread, NULL, ckpt_main, s) == 0) {
            s->ckpt_running = true;
        } else {
            s->ckpt_failed = true;
            ms_log_warn(s->log, "store: no checkpointer thread; the writer checkpoints itself");
        }
    }
    if (!s->ckpt_running) {
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        return SQLITE_OK;
    }
    pthread_mutex_lock(&s->ckpt_mu);
    s->ckpt_asked++;
    pthread_cond_broadcast(&s->ckpt_cv);
    pthread_mutex_unlock(&s->ckpt_mu);
    return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
    sq_store *s = arg;
    pthread_mutex_lock(&s->ckpt_mu);
    for (;;) {
        while (!s->ckpt_stop && s->ckpt_done == s->ckpt_asked)
            pthread_cond_wait(&s->ckpt_cv, &s->ckpt_mu);
        if (s->ckpt_stop) break;
        uint64_t asked = s->ckpt_asked;
        pthread_mutex_unlock(&s->ckpt_mu);
        int log = 0, copied = 0;
        int rc =
            sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            ms_log_warn(s->log, "store: checkpoint: %s", sqlite3_errmsg(s->ckpt_db));
        pthread_mutex_lock(&s->ckpt_mu);
        s->ckpt_done = asked;
        s->ckpts++;
        pthread_cond_broadcast(&s->ckpt_cv);
    }
    pthread_mutex_unlock(&s->ckpt_mu);
    return NULL;
}

void sq_ckpt_init(sq_store *s, int64_t wal_max_bytes)
{
    pthread_mutex_init(&s->ckpt_mu, NULL);
    pthread_cond_init(&s->ckpt_cv, NULL);
    s->ckpt_init = true;
    sqlite3_stmt *st = NULL;
    int64_t page = 4096;
    if (sqlite3_prepare_v2(s->w, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        page = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    int64_t frames = wal_max_bytes / (page + 24); /* a frame: a page and its 24-byte header */
    s->wal_max = frames < SQ_CKPT_START ? SQ_CKPT_START
                 : frames > INT_MAX / 2 ? INT_MAX / 2
                                        : (int)frames;
    s->wal_wait_at = s->wal_max;
    sqlite3_wal_hook(s->w, wal_hook, s); /* replaces the automatic checkpoint (off anyway) */
}

void sq_ckpt_stop(sq_store *s)
{
    if (!s->ckpt_init) return;
    if (s->ckpt_running) {
        pthread_mutex_lock(&s->ckpt_mu);
        s->ckpt_stop = true;
        pthread_cond_broadcast(&s->ckpt_cv);
        pthread_mutex_unlock(&s->ckpt_mu);
        pthread_join(s->ckpt_thread, NULL);
        s->ckpt_running = false;
        ms_log_info(s->log,
                    "store: %llu checkpoints; the writer waited for %llu of them (%.1f ms in all, "
                    "%.1f ms at most)",
                    (unsigned long long)s->ckpts, (unsigned long long)s->ckpt_waits,
                    (double)s->ckpt_wait_ns / 1e6, (double)s->ckpt_wait_max_ns / 1e6);
    }
    pthread_mutex_destroy(&s->ckpt_mu);
    pthread_cond_destroy(&s->ckpt_cv);
    s->ckpt_init = false;
}

void sq_ckpt_before_begin(sq_store *s)
{
    if (!s->ckpt_running || s->wal_frames < s->wal_wait_at) return;
    unsigned long long t0 = ms_now_ns();
    /* No reader of the search indexer may use the WAL when the BEGIN below restarts it: the
     * gate is held until sq_ckpt_after_begin (an indexer read in progress ends first). */
    pthread_mutex_lock(&s->ix_read_mu);
    s->ckpt_gate = true;
    pthread_mutex_lock(&s->ckpt_mu);
    uint64_t want = ++s->ckpt_asked; /* a checkpoint that starts after the last commit */
    pthread_cond_broadcast(&s->ckpt_cv);
    while (s->ckpt_done < want && !s->ckpt_stop)
        pthread_cond_wait(&s->ckpt_cv, &s->ckpt_mu);
    unsigned long long waited = ms_now_ns() - t0;
    s->ckpt_waits++;
    s->ckpt_wait_ns += waited;
    if (waited > s->ckpt_wait_max_ns) s->ckpt_wait_max_ns = waited;
    pthread_mutex_unlock(&s->ckpt_mu);
    /* When the checkpoint could not copy everything (an old reader), the BEGIN below cannot
     * restart the WAL: wait again only after another wal_max frames. */
    s->wal_wait_at = s->wal_frames + s->wal_max;
}

void sq_ckpt_metrics(sq_store *s, ms_buf *out)
{
    uint64_t ckpts = 0, waits = 0;
    unsigned long long wait_ns = 0;
    if (s->ckpt_init) {
        pthread_mutex_lock(&s->ckpt_mu);
        ckpts = s->ckpts;
        waits = s->ckpt_waits;
        wait_ns = s->ckpt_wait_ns;
        pthread_mutex_unlock(&s->ckpt_mu);
    }
    ms_metrics_header(out, "metasync_store_checkpoints_total", "counter",
                      "Checkpoints of the embedded store's WAL into its database file.");
    ms_metrics_sample(out, "metasync_store_checkpoints_total", "", (double)ckpts);
    ms_metrics_header(out, "metasync_store_checkpoint_waits_total", "counter",
                      "Times the writer waited for a checkpoint (the WAL reached"
                      " store.wal_max_bytes).");
    ms_metrics_sample(out, "metasync_store_checkpoint_waits_total", "", (double)waits);
    ms_metrics_header(out, "metasync_store_checkpoint_wait_seconds_total", "counter",
                      "Time the writer spent waiting for checkpoints.");
    ms_metrics_sample(out, "metasync_store_checkpoint_wait_seconds_total", "",
                      (double)wait_ns / 1e9);
}

void sq_ckpt_after_begin(sq_store *s)
{
    if (!s->ckpt_gate) return;
    s->ckpt_gate = false;
    pthread_mutex_unlock(&s->ix_read_mu);
}

void sq_ckpt_after_commit(sq_store *s)
{
    if (s->wal_frames < s->wal_max) s->wal_wait_at = s->wal_max; /* the WAL started over */
}
