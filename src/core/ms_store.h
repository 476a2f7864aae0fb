/*
 * ms_store.h — the store interface: a versioned table of callbacks (like sqlite3_io_methods).
 *
 * A store keeps assets, tags, lineage edges, the change log (outbox), idempotency keys, sink
 * cursors and custom types, every key prefixed by the tenant. The embedded default is SQLite
 * (src/store/sqlite); PostgreSQL comes behind the same table. The core never includes a store's
 * headers: it finds a store by URL scheme through ms_store_find (ms_plugins.c).
 *
 * Thread rules:
 *  - apply() is called by the engine's single writer thread only (@locality writer thread).
 *  - every other callback may be called from any thread at any time; the store keeps its own
 *    connections (a pool) and serializes what must be.
 * Ownership: strings passed in are borrowed for the duration of the call; output goes into
 * caller-owned ms_buf. Add new callbacks at the end and bump MS_STORE_OPS_VERSION.
 */
#ifndef MS_STORE_H
#define MS_STORE_H

#include "ms_buf.h"
#include "ms_change.h"
#include "ms_config.h"
#include "ms_error.h"
#include "ms_event.h"
#include "ms_log.h"

#include <stdbool.h>
#include <stdint.h>

#define MS_STORE_OPS_VERSION 7

typedef enum {
    MS_APPLY_APPLIED,   /* changed the store; seq_last is the last change record it wrote */
    MS_APPLY_UNCHANGED, /* valid, nothing to change, no change record */
    MS_APPLY_DUPLICATE, /* its id was seen before */
    MS_APPLY_REJECTED   /* refused: code and detail say why; nothing was written for it */
} ms_apply_status;

typedef struct ms_apply_result {
    ms_apply_status status;
    ms_err code;
    char detail[200];
    uint64_t seq_first; /* change records written for this event: [seq_first, seq_last] */
    uint64_t seq_last;
} ms_apply_result;

typedef struct ms_asset_query {
    const char *tenant;
    const char *type;   /* NULL = any */
    const char *parent; /* NULL = any */
    const char *tag;    /* NULL = any */
    const char *q;      /* full-text query over name, qualified name, description; NULL = none */
    int orphan;         /* -1 any, 0 not orphan, 1 orphans only */
    bool include_deleted;
    int limit;          /* 1..1000 */
    const char *cursor; /* from a previous page's next_cursor, or NULL */
} ms_asset_query;

typedef enum {
    MS_LINEAGE_UPSTREAM = 1,
    MS_LINEAGE_DOWNSTREAM = 2,
    MS_LINEAGE_BOTH = 3
} ms_lineage_dir;

typedef struct ms_store_stats {
    uint64_t orphans; /* not deleted, parent missing (O(1) once the writer has seen the tenant) */
} ms_store_stats;

typedef struct ms_store_open_args {
    const ms_config *cfg;
    const ms_log *log;
    const char *url; /* the store.url value */
    ms_types *types; /* to check parent types and required attributes at apply time */
} ms_store_open_args;

typedef struct ms_store_ops {
    int version;        /* MS_STORE_OPS_VERSION this table was built for */
    const char *name;   /* "sqlite" */
    const char *scheme; /* URL scheme it serves ("sqlite") */

    /* Opens (creating or migrating as needed). On success *ctx is the store's context. */
    ms_err (*open)(const ms_store_open_args *args, void **ctx, ms_error *err);
    /* Closes every connection and frees ctx. No other call may be in progress. */
    void (*close)(void *ctx);

    /*
     * Applies events in one transaction, in order, writing asset changes and their change
     * records together (the transactional outbox). Fills res[i] for every event. A rejected
     * event writes nothing and does not stop the others. now_ts is the commit time (RFC 3339)
     * for updated_at and the change records. Returns MS_OK once the transaction is durable;
     * on failure nothing of the batch is kept (res[] is then meaningless) and the error is
     * returned (retriable store errors are MS_ERR_STORE).
     * @locality writer thread
     */
    ms_err (*apply)(void *ctx, ms_event *const *evs, size_t n, const char *now_ts,
                    ms_apply_result *res, ms_error *err);

    /* Appends the asset as a JSON object to out; MS_ERR_NOT_FOUND if absent (or deleted and
     * include_deleted is false). */
    ms_err (*asset_get)(void *ctx, const char *tenant, const char *qn, bool include_deleted,
                        ms_buf *out, ms_error *err);
    /* Appends the matching assets as comma-separated JSON objects (no brackets) to items, and
     * the cursor of the next page (empty when none) to next_cursor. */
    ms_err (*asset_list)(void *ctx, const ms_asset_query *q, ms_buf *items, ms_buf *next_cursor,
                         ms_error *err);
    /* Appends {"root":qn,"direction":…,"depth":N,"nodes":[…],"edges":[…]} to out. Nodes carry
     * qualified_name, type, name and their distance; cycles are cut. */
    ms_err (*lineage)(void *ctx, const char *tenant, const char *qn, ms_lineage_dir dir, int depth,
                      ms_buf *out, ms_error *err);
    /* Calls cb with every change record of one asset, oldest first. */
    ms_err (*history)(void *ctx, const char *tenant, const char *qn, ms_change_cb cb, void *ud,
                      ms_error *err);
    /* Calls cb with change records of tenant with seq > after, up to limit, in seq order. */
    ms_err (*changes)(void *ctx, const char *tenant, uint64_t after, size_t limit, ms_change_cb cb,
                      void *ud, ms_error *err);
    /* The last seq written for tenant (0 if none). */
    ms_err (*last_seq)(void *ctx, const char *tenant, uint64_t *seq, ms_error *err);
    /* Calls cb with every tenant that has an asset or a change (for sinks and metrics). */
    ms_err (*tenants)(void *ctx, int (*cb)(void *ud, const char *tenant), void *ud, ms_error *err);
    ms_err (*stats)(void *ctx, const char *tenant, ms_store_stats *st, ms_error *err);
    /* Copies the stored type of an asset into buf (""/MS_ERR_NOT_FOUND when absent). */
    ms_err (*asset_type)(void *ctx, const char *tenant, const char *qn, char *buf, size_t len,
                         ms_error *err);

    /* Sink cursors: the last seq a named sink has durably delivered for a tenant (0 if none). */
    ms_err (*cursor_get)(void *ctx, const char *tenant, const char *sink, uint64_t *seq,
                         ms_error *err);
    ms_err (*cursor_set)(void *ctx, const char *tenant, const char *sink, uint64_t seq,
                         ms_error *err);

    /* Custom types: saved as their canonical definition JSON; loaded at start. */
    ms_err (*type_save)(void *ctx, const char *tenant, const char *name, const char *json,
                        ms_error *err);
    ms_err (*types_load)(void *ctx, int (*cb)(void *ud, const char *tenant, const char *json),
                         void *ud, ms_error *err);

    /* ---- version 2 ---- */
    /*
     * Control-plane records: small JSON documents keyed by (tenant, kind, key) — the schema
     * registry's subjects, versions and settings now; tenants, API keys and connections later.
     * ctl_put stores json under the key (replacing it; json == NULL deletes it) and is durable on
     * return. ctl_list calls cb for every record of kind (of every tenant when tenant is NULL),
     * ordered by tenant then key; cb returns non-zero to stop. Any thread.
     */
    ms_err (*ctl_put)(void *ctx, const char *tenant, const char *kind, const char *key,
                      const char *json, ms_error *err);
    ms_err (*ctl_list)(void *ctx, const char *tenant, const char *kind,
                       int (*cb)(void *ud, const char *tenant, const char *key, const char *json),
                       void *ud, ms_error *err);

    /* ---- version 3 ---- */
    /*
     * Sink leases: with several workers (`metasync serve` processes) on one store, each (sink,
     * tenant) is delivered by one worker at a time. lease_hold takes the lease of (tenant, sink)
     * for this process, or confirms it still holds it, and sets *held. A lease is never given
     * up voluntarily: it ends when the process (its store connection) dies, and then another
     * worker's lease_hold gets it. *epoch changes whenever the process may have lost leases in
     * between (a reconnect): a holder then re-reads its cursor. A single-process store grants
     * every lease with a constant epoch. Any thread. NULL (or version < 3) = always held.
     */
    ms_err (*lease_hold)(void *ctx, const char *tenant, const char *sink, bool *held,
                         uint64_t *epoch, ms_error *err);

    /* ---- version 4 ---- */
    /*
     * Commit notifications from the other processes on the store: after watch(ctx, cb, ud), the
     * store calls cb(ud, tenant, seq) from a thread of its own whenever a commit (by any worker,
     * this one included) has written tenant's change records up to seq, so that long-polls,
     * SSE streams and sink runners of every worker wake up. cb(ud, NULL, 0) means notifications
     * may have been missed (the listener reconnected): anything may have changed. cb must not
     * block nor call the store. watch(ctx, NULL, NULL, err) stops the calls and returns only
     * once no call is running; call it before freeing ud (and before close). A second watch
     * replaces the first. NULL (or version < 4): the store has no other writers.
     */
    ms_err (*watch)(void *ctx, void (*cb)(void *ud, const char *tenant, uint64_t seq), void *ud,
                    ms_error *err);
    /*
     * Adds a control-plane record only if none has that (tenant, kind, key): *added tells
     * whether json was stored (durable on return) or another record was there already (left
     * as it is). The store-side guard of allocations shared by several workers: the schema
     * registry's ids and versions. Any thread. NULL: use ctl_put (one process).
     */
    ms_err (*ctl_add)(void *ctx, const char *tenant, const char *kind, const char *key,
                      const char *json, bool *added, ms_error *err);

    /* ---- version 5 ---- */
    /*
     * apply() that also records source positions in the same transaction: for every pos[k],
     * source_offsets(group, topic, partition) becomes the greater of its stored value and
     * pos[k].next lowered to the src_offset of any event of evs whose src_pos is k + 1 and whose
     * result is MS_APPLY_REJECTED (its dead letter is sent after the commit). Events whose
     * src_pos is 0 or > npos do not touch any position. Same contract as apply() otherwise;
     * n may be 0 (positions only). NULL (or version < 5): positions are not stored.
     * @locality writer thread
     */
    ms_err (*apply_at)(void *ctx, ms_event *const *evs, size_t n, const char *now_ts,
                       const ms_srcpos *pos, size_t npos, ms_apply_result *res, ms_error *err);
    /*
     * Reads the stored positions of (group, topic) for partitions parts[0..n): next[i] is the
     * stored next offset of parts[i], or -1 when none is stored. Any thread.
     */
    ms_err (*offsets_get)(void *ctx, const char *group, const char *topic, const int32_t *parts,
                          size_t n, int64_t *next, ms_error *err);

    /* ---- version 6 ---- */
    /*
     * Deferred durability, so that one thread applies the next batch while another waits for the
     * disk. apply_deferred is apply_at() (same arguments and outcome) except that it returns
     * once the transaction is committed but possibly before it is durable, with *token naming
     * the commit; sync(token) returns MS_OK once that commit and every earlier one are durable
     * (an error: they may not be, and their events must not be acknowledged). Until then the
     * commit's assets may already be read, but changes() and last_seq() leave its change
     * records out: sinks and change feeds only ever see durable changes. apply()/apply_at()
     * stay durable on return. NULL (or version < 6): not offered.
     * @locality apply_deferred: writer thread; sync: any thread, one call at a time
     */
    ms_err (*apply_deferred)(void *ctx, ms_event *const *evs, size_t n, const char *now_ts,
                             const ms_srcpos *pos, size_t npos, ms_apply_result *res,
                             uint64_t *token, ms_error *err);
    ms_err (*sync)(void *ctx, uint64_t token, ms_error *err);

    /* ---- version 7 ---- */
    /*
     * Appends the store's own metrics (Prometheus text: ms_metrics_header/sample) to out, e.g.
     * the SQLite store's search-index lag and checkpoints. Any thread. NULL (or version < 7):
     * the store has none.
     */
    void (*metrics)(void *ctx, ms_buf *out);
} ms_store_ops;

#endif
