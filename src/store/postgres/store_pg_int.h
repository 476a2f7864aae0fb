/*
 * store_pg_int.h — internals shared by the PostgreSQL store's files: the context, the connection
 * pool, query helpers and the schema migrations. Not for use outside src/store/postgres.
 *
 * Connections: one writer connection used only by apply() on the engine's writer thread, with
 * its statements prepared at open; a pool of PG_POOL connections for readers and the small
 * writes of other threads (cursors, types, ctl records), each used by one thread at a time
 * (pg_acquire/pg_release); one lease connection (lease_mu) holding this process's sink leases as
 * session advisory locks, so that they end with the process, and its worker lock (the worker is
 * alive while it is held: leases are balanced over the live workers); one listener connection
 * (store_pg_notify.c). Every transaction first sets
 * metasync.tenant (set_config(..., true), local to the transaction): row-level security keys every
 * tenant table on it.
 */
#ifndef STORE_PG_INT_H
#define STORE_PG_INT_H

#include "ms_buf.h"
#include "ms_error.h"
#include "ms_log.h"
#include "ms_store.h"
#include "ms_types.h"
#include "store/common/store_pool.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define PG_POOL 4
/* The NOTIFY channel of commits: payload "<last seq> <tenant>" (store_pg_notify.c). */
#define PG_NOTIFY_CHANNEL "metasync_changes"

typedef void (*pg_watch_cb)(void *ud, const char *tenant, uint64_t seq);

typedef struct pg_store {
    const ms_log *log;
    ms_types *types;
    char *url;
    int max_depth;            /* limits.max_depth: how deep stored attributes are parsed */
    int listen_check_ms;      /* store.listen_check_ms: the listener's ping interval, 0 = none */
    PGconn *w;                /* writer thread only */
    ms_pool pool;             /* PG_POOL PGconn * connections (pg_acquire/pg_release) */
    pthread_mutex_t lease_mu; /* guards the lease connection and what it holds */
    PGconn *lease;            /* NULL until the first lease_hold; replaced when it breaks */
    uint64_t lease_epoch;     /* bumped on every (re)connect of `lease`: leases may be lost */
    char **leased;            /* "sink\ntenant" of every lease held on `lease` */
    size_t nleased;
    char **deferred; /* "sink\ntenant" this worker left to others (over its fair share)... */
    unsigned long long *deferred_at; /* ...since when (ms_now_ms) */
    size_t ndeferred;
    /* The listener (store_pg_notify.c): a thread with a connection of its own that LISTENs on
     * PG_NOTIFY_CHANNEL; watch_cb/watch_ud are fixed while it runs (pg_watch joins it before
     * changing them). watch_mu serializes pg_watch calls. */
    pthread_mutex_t watch_mu;
    bool watching;
    pthread_t watch_thread;
    int watch_pipe[2]; /* a byte written to [1] stops the thread */
    pg_watch_cb watch_cb;
    void *watch_ud;
} pg_store;

/* One statement of a pipelined transaction: SQL text and its text parameters (NULL = SQL NULL). */
typedef struct pg_q {
    const char *sql;
    int n;
    const char *const *params;
} pg_q;

/* Raises MS_ERR_STORE with libpq's message for c (or res's when given). */
ms_err pg_fail(ms_error *err, PGconn *c, const PGresult *res, const char *what);
/* Opens one connection to url; NULL with err filled on failure. */
PGconn *pg_connect(const char *url, ms_error *err);
/* pg_connect with default connection parameters kw[i] = val[i] (kw NULL-terminated, at most
 * 14; kw may be NULL): a parameter url sets itself overrides the default. */
PGconn *pg_connect_with(const char *url, const char *const *kw, const char *const *val,
                        ms_error *err);

/*
 * Runs the statements qs[0..n) in one transaction (one round trip: pipeline mode), the first of
 * them setting metasync.tenant to tenant unless tenant is NULL. Returns the result of the last
 * statement (caller PQclear()s it) or NULL with err filled when any statement failed.
 */
PGresult *pg_run(PGconn *c, const char *tenant, const pg_q *qs, int n, ms_error *err);

PGconn *pg_acquire(pg_store *s);
void pg_release(pg_store *s, PGconn *c);

/* Migrations (store_pg_migrate.c): brings the schema up to date under an advisory lock.
 * app_role (may be NULL) is granted the application's rights. Appends the applied versions to
 * applied (comma-separated, may be NULL). */
ms_err pg_migrate(PGconn *c, const char *app_role, ms_buf *applied, int *current, ms_error *err);

/* Fills r (zeroed first) from row `row` of a result whose asset columns start at column `at`:
 * id, type, name, parent, attributes, version, deleted, created_at, orphan, updated_at, then
 * (with_tags) the tags as a JSON array of [tag, source, origin]. */
struct ms_srow;
void pg_row_from(const PGresult *res, int row, int at, bool with_tags, struct ms_srow *r);

/* Commit notifications (store_pg_notify.c): ms_store_ops.watch. Starts (cb != NULL) or stops
 * (cb == NULL) the listener thread. Any thread; not concurrently with pg_close. */
ms_err pg_watch(void *ctx, pg_watch_cb cb, void *ud, ms_error *err);

/* The writer (store_pg_apply.c). */
ms_err pg_apply(void *ctx, ms_event *const *evs, size_t n, const char *now_ts, ms_apply_result *res,
                ms_error *err);
/* apply() with source positions (ms_store_ops.apply_at). */
ms_err pg_apply_at(void *ctx, ms_event *const *evs, size_t n, const char *now_ts,
                   const ms_srcpos *pos, size_t npos, ms_apply_result *res, ms_error *err);
/* Prepares the writer's statements on s->w; called at open and after a reconnect. */
ms_err pg_apply_prepare(pg_store *s, ms_error *err);

#endif
