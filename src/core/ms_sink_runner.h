/*
 * ms_sink_runner.h — runs one sink over the change log: a thread that reads change records
 * after the sink's stored cursor (per tenant), hands them to the sink, stores the sink's durable
 * progress as the new cursor, backs off on RETRY, and wakes on new commits. See ms_sink.h.
 */
#ifndef MS_SINK_RUNNER_H
#define MS_SINK_RUNNER_H

#include "ms_engine.h"
#include "ms_sink.h"
#include "ms_store.h"

typedef struct ms_sink_runner ms_sink_runner;

typedef struct ms_sink_runner_args {
    const ms_sink_ops *ops;
    void *sink; /* the sink's context (from ops->init); the runner destroys it at free */
    const ms_store_ops *store;
    void *store_ctx;
    ms_engine *engine;
    const ms_log *log;
    unsigned tick_ms; /* how often to tick an idle sink (flush by age) */
    int nice;         /* the thread's nice value (sinks.nice, 0-19; 0: unchanged) */
} ms_sink_runner_args;

/* Starts the runner thread. Returns NULL (and fills err) if the thread can't start. */
ms_sink_runner *ms_sink_runner_start(const ms_sink_runner_args *a, ms_error *err);
/* Stops the thread after a final flush, destroys the sink and frees the runner. */
void ms_sink_runner_stop(ms_sink_runner *r);
/* Appends the metasync_sink_cursor{sink,tenant} gauge (lag = metasync_change_seq - cursor). */
void ms_sink_runner_metrics_render(ms_sink_runner *r, ms_buf *out, bool header);

#endif
