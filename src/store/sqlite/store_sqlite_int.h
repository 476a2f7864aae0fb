/*
 * store_sqlite_int.h — internals shared by the SQLite store's files: the context, the schema,
 * the connection pool and the asset row/snapshot helpers. Not for use outside src/store/sqlite.
 *
 * Connections: one writer connection used only by apply() on the engine's writer thread, with
 * its prepared statements cached; a pool of other connections for readers and for the small
 * writes of other threads (cursors, types), each used by one thread at a time (acquire/release).
 * WAL mode lets readers run while the writer commits. The full-text index is in a database of
 * its own, ATTACHed to every pool connection as schema `s` and written only by the indexer's
 * connection, on its thread (store_sqlite_search.c).
 */
#ifndef STORE_SQLITE_INT_H
#define STORE_SQLITE_INT_H

#include "ms_buf.h"
#include "ms_error.h"
#include "ms_log.h"
#include "ms_store.h"
#include "ms_types.h"
#include "store/common/store_pool.h"
#include "store/common/store_apply.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define SQ_POOL 8
/* Prepared statements of the indexer (store_sqlite_search.c). */
#define SQ_IX_STMTS 9

/* Prepared statements of the writer connection. */
enum {
    W_SEEN_INS,
    W_SEEN_DEL,
    W_GET,
    W_INS,
    W_UPD,
    W_ADOPT,
    W_TAGS_GET,
    W_TAG_INS,
    W_TAG_DEL,
    W_TAGS_CLEAR,
    W_EDGE_INS,
    W_EDGE_DEL,
    W_CHG_INS,
    W_DESC,
    W_TENANT_INS,
    W_PARENT,
    W_LOG_PRUNE,
    W_ORPHANS,
    W_ORPHAN_PARENTS,
    W_OFFSET_PUT,
    W_FIRST_SEQ,
    W_ADOPT_PROBE,
    W__COUNT
};

/* A set of names kept by the writer (open addressing, linear probing, backward-shift removal).
 * A superset of what it stands for while valid; not valid (to be loaded again) after a rollback
 * that may have undone a removal. Past SQ_NAMESET_MAX names it gives up holding them (all: every
 * name counts as present) until it is loaded again. */
#define SQ_NAMESET_MAX 50000
typedef struct sq_nameset {
    struct sq_name {
        uint64_t hash; /* 0: free slot */
        char *name;
    } * slot;
    size_t cap, n; /* cap: a power of two, or 0 */
    bool valid, all;
} sq_nameset;

typedef struct sq_tenant_seq {
    char *tenant;
    uint64_t committed;   /* last seq committed (visible to readers of assets) */
    uint64_t durable;     /* last seq durable (sq_sync): what changes() and last_seq() show */
    uint64_t syncing;     /* committed as the running sq_sync began (under stats_mu) */
    uint64_t next;        /* tentative, inside the open transaction */
    int64_t orphans;      /* live orphans, committed (read by stats under stats_mu) */
    int64_t orphans_next; /* tentative, inside the open transaction */
    /* The parents named by the tenant's rows with orphan=1 (deleted ones included): a new
     * asset outside it has no child to adopt, and be_adopt skips its probe. Writer only. */
    sq_nameset waiting;
} sq_tenant_seq;

/* The writer's cache of parent lookups (W_PARENT): the type of the live asset (tenant, qn), or
 * none. Kept coherent by the writer, which saves every asset row (be_row_save updates the
 * entry); emptied at the start of each transaction, so a rollback leaves nothing stale. Names
 * longer than the slots are not cached. */
#define SQ_PCACHE 64
typedef struct sq_pcache {
    bool used, live;
    char tenant[48];
    char qn[208];
    char type[48];
} sq_pcache;

typedef struct sq_store {
    const ms_log *log;
    ms_types *types;
    char *path;
    bool sync_full;
    int cache_mb;
    int max_depth; /* limits.max_depth: how deep stored attributes are parsed */
    sqlite3 *w;
    sqlite3_stmt *ws[W__COUNT];
    int64_t log_pruned;  /* fts_log is deleted up to this id (writer only) */
    int64_t log_pruning; /* ... and will be once the open transaction commits (writer only) */
    sq_tenant_seq *seqs; /* written by the writer thread only, under stats_mu */
    size_t nseqs;
    sq_tenant_seq *cur;          /* the tenant of the event being applied (writer only) */
    int64_t fresh_id;            /* the asset row the writer inserted last (no tags rows yet) */
    int64_t fresh_first_seq;     /* the first_seq it was given */
    bool creating;               /* insert-first state (ms_sa_args.creating; writer only) */
    ms_sa_scratch scratch;       /* ms_sa_args.scratch (writer only) */
    sq_pcache pcache[SQ_PCACHE]; /* writer only */
    pthread_mutex_t stats_mu;    /* lets stats() read seqs[].orphans from other threads */
    /* Deferred durability (sq_apply_deferred, sq_sync): with synchronous=full the writer
     * connection runs at NORMAL, so that a COMMIT writes the WAL without waiting for the disk,
     * and sq_sync makes commits durable with one fdatasync of the WAL file, on whichever thread
     * calls it (the engine's syncer, while the writer applies the next batch). commits: COMMITs
     * so far (under stats_mu); synced: the commits known durable, wal_fd: the WAL file (opened
     * by the first sync), both under sync_mu, which one sync at a time holds. */
    pthread_mutex_t sync_mu;
    uint64_t commits, synced;
    int wal_fd;
    ms_pool pool; /* SQ_POOL sqlite3 * connections for readers and small writes */
    /* The checkpointer (store_sqlite_ckpt.c). wal_frames and wal_wait_at: writer thread only;
     * the counters: under ckpt_mu. */
    sqlite3 *ckpt_db; /* its own connection */
    pthread_t ckpt_thread;
    pthread_mutex_t ckpt_mu;
    pthread_cond_t ckpt_cv;
    bool ckpt_init, ckpt_running, ckpt_stop, ckpt_failed;
    uint64_t ckpt_asked; /* checkpoints asked for so far */
    uint64_t ckpt_done;  /* the ckpt_asked value the last finished checkpoint started at */
    uint64_t ckpts;      /* checkpoints run */
    uint64_t ckpt_waits; /* times the writer waited for one (the WAL reached its bound) */
    unsigned long long ckpt_wait_ns, ckpt_wait_max_ns; /* how long, in all and at most */
    int wal_frames;   /* frames in the WAL after the writer's last commit */
    int ckpt_next_at; /* the WAL size (frames) at which the checkpointer is woken next */
    int wal_max;      /* store.wal_max_bytes in frames */
    int wal_wait_at;  /* the writer waits before BEGIN once wal_frames reaches this */
    bool ckpt_gate;   /* the writer holds ix_read_mu from before_begin to after_begin */
    /* The full-text index (store_sqlite_search.c): its database, the indexer's connection
     * (main: the store; s: the search database) and statements, its thread. Under ix_mu: the
     * marks (what the index holds, durable in the search database), the flags. ix_cv wakes the
     * indexer; ix_done_cv tells searches that the marks moved. */
    char *search_path;
    sqlite3 *ix;
    sqlite3_stmt *is[SQ_IX_STMTS];
    pthread_t ix_thread;
    pthread_mutex_t ix_mu;
    pthread_cond_t ix_cv, ix_done_cv;
    /* Held by the indexer while it reads the store, and by the writer while it waits for a
     * checkpoint and begins the transaction that restarts the WAL (see sq_ckpt_before_begin). */
    pthread_mutex_t ix_read_mu;
    bool ix_init, ix_started, ix_stop, ix_failed;
    bool ix_poked;  /* the writer committed since the last round began */
    bool ix_urgent; /* a search waits for the index */
    int64_t ix_asset_mark, ix_log_mark;
} sq_store;

/* Asset rows are the shared ms_srow (store/common/store_apply.h). */
/* Loads the row of (tenant, qn) with stmt `get` (bound and reset here) and, when with_tags, its
 * tags with `tags_get`. Returns MS_OK (r->exists tells) or MS_ERR_STORE. */
ms_err sq_row_load(sqlite3 *db, sqlite3_stmt *get, sqlite3_stmt *tags_get, const char *tenant,
                   const char *qn, bool with_tags, ms_srow *r, ms_error *err);
/* Loads the tags of (tenant, qn) into r with stmt tags_get (bound and reset here). */
ms_err sq_tags_load(sqlite3 *db, sqlite3_stmt *tags_get, const char *tenant, const char *qn,
                    ms_srow *r, ms_error *err);

/* Raises MS_ERR_STORE with SQLite's message for db. */
ms_err sq_fail(ms_error *err, sqlite3 *db, const char *what);
/* Binds text (NULL binds NULL) — SQLITE_STATIC: the caller keeps s alive until reset. */
void sq_bind_text(sqlite3_stmt *st, int i, const char *s);
/* Copies column i as a heap string (NULL stays NULL). */
char *sq_col_dup(sqlite3_stmt *st, int i);

/* Opens one connection to the store with MetaSync's pragmas (no automatic checkpoint). */
ms_err sq_open_conn(sq_store *s, sqlite3 **out, ms_error *err);
sqlite3 *sq_acquire(sq_store *s);
void sq_release(sq_store *s, sqlite3 *db);

/* The writer's apply() (store_sqlite_apply.c). */
ms_err sq_apply(void *ctx, ms_event *const *evs, size_t n, const char *now_ts, ms_apply_result *res,
                ms_error *err);
/* Frees the writer's sets of waiting parents (sq_tenant_seq.waiting), at close. */
void sq_waiting_free(sq_store *s);
/* apply_at() whose durability is deferred to sq_sync (ms_store_ops.apply_deferred). */
ms_err sq_apply_deferred(void *ctx, ms_event *const *evs, size_t n, const char *now_ts,
                         const ms_srcpos *pos, size_t npos, ms_apply_result *res, uint64_t *token,
                         ms_error *err);
/* Returns once commit token and all before it are durable (ms_store_ops.sync). */
ms_err sq_sync(void *ctx, uint64_t token, ms_error *err);
/* The last durable seq of tenant into *seq; false when the writer has not met the tenant
 * since open (then every change of it in the database is durable). Any thread. */
bool sq_durable_seq(sq_store *s, const char *tenant, uint64_t *seq);
/* apply() with source positions (ms_store_ops.apply_at). */
ms_err sq_apply_at(void *ctx, ms_event *const *evs, size_t n, const char *now_ts,
                   const ms_srcpos *pos, size_t npos, ms_apply_result *res, ms_error *err);
/* Prepares the writer statements; called by open. */
ms_err sq_apply_prepare(sq_store *s, ms_error *err);

/* The checkpointer (store_sqlite_ckpt.c). init: hooks the writer connection's commits (the
 * thread, on s->ckpt_db opened by the caller, starts at the first commit that needs it); stop:
 * joins it (safe when init never ran or the thread never started). before_begin/after_commit: the
 * writer calls them around each transaction; before_begin may wait for a checkpoint when the WAL
 * has reached wal_max_bytes, and then keeps the search indexer from reading the store (it holds
 * ix_read_mu) until after_begin, called right after the BEGIN that restarts the WAL. */
void sq_ckpt_init(sq_store *s, int64_t wal_max_bytes);
void sq_ckpt_stop(sq_store *s);
void sq_ckpt_before_begin(sq_store *s);
void sq_ckpt_after_begin(sq_store *s);
void sq_ckpt_after_commit(sq_store *s);
/* Appends the checkpointer's counters (metasync_store_checkpoint*) to out. Any thread. */
void sq_ckpt_metrics(sq_store *s, ms_buf *out);

/* The full-text index (store_sqlite_search.c). open: after the schema migration, opens the
 * search database (creating it), checks it against the store (emptying it to be built again when
 * it does not match) and prepares the indexer; start: starts the indexer thread; stop: joins it
 * and closes the search database (safe whatever open reached). attach: ATTACHes the search
 * database to db as schema `s`. poke: the writer tells the indexer that it committed.
 * log_mark: the fts_log entries up to it are applied to the index durably (the writer may
 * delete them). wait: waits (up to a few seconds) until the index holds every row and fts_log
 * entry committed when it is called, as seen by db (the caller's connection, outside a
 * transaction); false when it does not (then the index lags: a search finds less). */
ms_err sq_search_open(sq_store *s, ms_error *err);
ms_err sq_search_start(sq_store *s, ms_error *err);
void sq_search_stop(sq_store *s);
ms_err sq_search_attach(sq_store *s, sqlite3 *db, ms_error *err);
void sq_search_poke(sq_store *s);
int64_t sq_search_log_mark(sq_store *s);
bool sq_search_wait(sq_store *s, sqlite3 *db);
/* Appends the index's lag (metasync_search_index_pending{kind}, _failing) to out, as seen by db
 * (the caller's connection, outside a transaction). Any thread. */
void sq_search_metrics(sq_store *s, sqlite3 *db, ms_buf *out);

#endif
