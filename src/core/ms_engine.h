/*
 * ms_engine.h — the pipeline core: transform hook → lane routing → two bounded lanes → one writer
 * thread that group-commits to the store → change notifications for sinks and long-polls.
 *
 * Lanes: `fast` (every type but columns and BI fields) and `bulk` (columns, BI fields). Each
 * commit takes every queued fast event first (up to engine.max_commit_events); a commit that
 * took fast events takes no bulk event unless the one before it was fast-only too (so bulk
 * cannot starve). Otherwise bulk events go in slices sized so that one commit stays short
 * (about 20 ms, from the measured cost per event), doubled for each further commit in a row
 * without fast events, up to engine.max_commit_events: a bulk backlog delays a fast event by at
 * most one commit about as long as the quiet spell before it (~20 ms while fast events flow),
 * never by the backlog, and a load without fast events gets whole commits. Events
 * for one qualified name keep their arrival order, whatever their types: an event goes to the lane
 * where events for its qualified name are still queued, else to the lane of the first event for it
 * in the same batch, else to its own type's lane; an event whose type is absent (tag, link, patch…)
 * to the lane of its asset's stored type (built-in or custom).
 *
 * Backpressure: each lane is bounded in bytes (lanes.*_max_bytes). ms_engine_submit waits up to
 * engine.enqueue_timeout_ms for room and then fails with MS_ERR_OVERLOADED, enqueuing nothing (its
 * events are counted in metasync_events_overloaded_total, so received = sum of outcomes); a
 * batch larger than a lane is admitted only into an empty lane. Memory stays flat whatever is
 * offered.
 *
 * Thread rules: ms_engine_submit, the wait and metrics functions may be called from any thread.
 * The writer thread is the only caller of the store's apply().
 */
#ifndef MS_ENGINE_H
#define MS_ENGINE_H

#include "ms_buf.h"
#include "ms_config.h"
#include "ms_error.h"
#include "ms_event.h"
#include "ms_log.h"
#include "ms_metrics.h"
#include "ms_store.h"
#include "ms_transform.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ms_engine ms_engine;

typedef struct ms_engine_args {
    const ms_config *cfg;
    const ms_log *log;
    ms_metrics *metrics;
    const ms_store_ops *store;
    void *store_ctx;
    const ms_transform *transforms; /* run in order on every event; may be NULL */
    size_t ntransforms;
    ms_types *types; /* the lanes of stored types, for events without a type; NULL: all fast */
} ms_engine_args;

/* Creates an engine (not yet running). The args' pointers must outlive the engine. */
ms_engine *ms_engine_new(const ms_engine_args *args);
/* Starts the writer thread. */
ms_err ms_engine_start(ms_engine *e, ms_error *err);
/* Stops accepting new submissions, commits what is queued, joins the writer. Idempotent. */
void ms_engine_stop(ms_engine *e);
void ms_engine_free(ms_engine *e);

/*
 * Runs events through transforms, routes them to lanes, and blocks until every one of them is
 * committed or refused. Takes ownership of each event (sets evs[i] to NULL). res[i] receives the
 * outcome of evs[i]. Returns MS_OK when every event has an outcome in res; MS_ERR_OVERLOADED
 * (nothing enqueued, retry later), MS_ERR_UNAVAILABLE (stopping), or MS_ERR_STORE (a commit
 * failed: some events may not be applied; retrying with the same ids is safe).
 */
ms_err ms_engine_submit(ms_engine *e, ms_event **evs, size_t n, ms_apply_result *res,
                        ms_error *err);

/*
 * ms_engine_submit that also stores source positions (ms_srcpos, borrowed for the call) in the
 * store, in the transaction that commits the last of the batch's events (the events of one
 * batch may be split over several commits, by lane): once the call returns MS_OK, every event
 * is committed and the positions are stored with them (lowered to the offset of the first
 * rejected event of each partition, see ms_store_ops.apply_at). An event names its position by
 * src_pos (1-based; 0 none) and its own offset by src_offset. When a commit fails, the
 * positions are not stored. A batch with no event left after the transforms stores none.
 * Needs a store of version 4 with apply_at, else the positions are dropped.
 */
ms_err ms_engine_submit_at(ms_engine *e, ms_event **evs, size_t n, const ms_srcpos *pos,
                           size_t npos, ms_apply_result *res, ms_error *err);

/*
 * Asynchronous ms_engine_submit_at: enqueues the batch (waiting for lane room as
 * ms_engine_submit does) and returns without waiting for the commits. On MS_OK, *ticket is the
 * batch's ticket (NULL when no event was left to commit: res is then complete) and res[] must
 * stay valid until ms_engine_wait(ticket) returns; ms_engine_wait must be called exactly once
 * per ticket, from any thread. On failure (MS_ERR_OVERLOADED, MS_ERR_UNAVAILABLE) nothing is
 * enqueued and *ticket is NULL. Several batches may be in flight; events of one qualified name
 * keep their submission order, but two batches may complete in either order (by lane), and the
 * positions of each are stored with its own last commit.
 */
typedef struct ms_engine_ticket ms_engine_ticket;
ms_err ms_engine_submit_async(ms_engine *e, ms_event **evs, size_t n, const ms_srcpos *pos,
                              size_t npos, ms_apply_result *res, ms_engine_ticket **ticket,
                              ms_error *err);
/* Waits until every event of the ticket's batch has its outcome in res, frees the ticket and the
 * batch's events (each commit's as soon as it is published: the writer does not free them), and
 * returns what ms_engine_submit would have (MS_OK, or MS_ERR_STORE when a commit failed: the
 * positions are then not stored; retrying with the same ids is safe). NULL ticket: MS_OK. */
ms_err ms_engine_wait(ms_engine *e, ms_engine_ticket *ticket, ms_error *err);

/* The last change seq committed for tenant (0 if none): by any worker on the store (it asks the
 * store; what this process committed is known even if that fails). */
uint64_t ms_engine_last_seq(ms_engine *e, const char *tenant);
/* Waits until tenant's last seq is greater than `after`, or timeout_ms passes, or the engine
 * stops. Returns true when there is something after `after`. */
bool ms_engine_wait_seq(ms_engine *e, const char *tenant, uint64_t after, unsigned timeout_ms);
/* A counter bumped by every commit that wrote change records; ms_engine_wait_generation waits
 * until it differs from gen (or timeout / stop). Used by sink runners. */
uint64_t ms_engine_generation(ms_engine *e);
void ms_engine_wait_generation(ms_engine *e, uint64_t gen, unsigned timeout_ms);
/* Learns that tenant's change records up to seq are committed (by another worker on the same
 * store: ms_store_ops.watch calls this): raises the tenant's last seq and wakes long-polls, SSE
 * streams and sink runners. tenant NULL: something may have been committed; wakes every waiter
 * (they read the store again). Any thread; takes the engine's mutex, never calls the store. */
void ms_engine_notify_seq(ms_engine *e, const char *tenant, uint64_t seq);
/* True while the writer runs and accepts work. */
bool ms_engine_running(ms_engine *e);
/* Appends lane depth, queued bytes, age of the oldest queued event and change seq gauges. */
void ms_engine_metrics_render(ms_engine *e, ms_buf *out);

#endif
