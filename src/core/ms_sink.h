/*
 * ms_sink.h — the sink interface and the sink runner.
 *
 * A sink is a durable cursor over the change log: the runner (ms_sink_runner.c, one thread per
 * sink) reads change records after the sink's stored cursor and hands them to the sink's
 * deliver() callback; the sink reports how far it has *durably* delivered, and the runner stores
 * that as the new cursor. A sink that is down (RETRY) loses nothing: the runner backs off and
 * offers the same records again; after a crash it resumes from the stored cursor, so every
 * change reaches every sink at least once.
 *
 * Result of deliver (fixed stage results, like Fluent Bit's flb_output):
 *   MS_SINK_OK    the records were accepted (written, or buffered by the sink);
 *   MS_SINK_RETRY the records were not accepted; offer them again later;
 *   MS_SINK_ERROR the sink cannot go on (configuration); the runner stops it and logs.
 * deliver() may be called with n == 0 as a tick so a buffering sink can flush by age; at
 * shutdown the runner calls it once more with now_ms == MS_SINK_FLUSH_ALL: flush everything.
 * *durable_seq is set by the sink to the highest seq of this tenant that it has made durable
 * (or left unchanged); never decreases.
 *
 * Thread rules: a sink's callbacks are called from its runner thread only.
 */
#ifndef MS_SINK_H
#define MS_SINK_H

#include "ms_blob.h"
#include "ms_change.h"
#include "ms_config.h"
#include "ms_error.h"
#include "ms_log.h"

#include <stdint.h>

#define MS_SINK_OPS_VERSION 1

#define MS_SINK_FLUSH_ALL (~0ull)

typedef enum { MS_SINK_OK = 0, MS_SINK_RETRY = 1, MS_SINK_ERROR = 2 } ms_sink_status;

typedef struct ms_sink_init_args {
    const ms_config *cfg;
    const ms_log *log;
    const ms_blob_ops *blob_ops; /* for sinks that write objects; may be NULL */
    void *blob;
    struct ms_registry *registry; /* for sinks that write Avro; may be NULL */
    struct ms_metrics *metrics;   /* the process's counters; may be NULL */
} ms_sink_init_args;

typedef struct ms_sink_ops {
    int version;      /* MS_SINK_OPS_VERSION */
    const char *name; /* also the cursor name in the store ("snapshots") */
    /* Creates the sink's context. A sink that is not configured (e.g. Kafka without brokers)
     * returns MS_OK and leaves *ctx NULL: it is disabled and the runtime does not run it. */
    ms_err (*init)(const ms_sink_init_args *args, void **ctx, ms_error *err);
    ms_sink_status (*deliver)(void *ctx, const char *tenant, const ms_change *changes, size_t n,
                              unsigned long long now_ms, uint64_t *durable_seq);
    /* Frees ctx (after the final MS_SINK_FLUSH_ALL delivery). */
    void (*destroy)(void *ctx);
} ms_sink_ops;

#endif
