/*
 * ms_source.h — the source interface: something that receives events from outside (the HTTP
 * API, later Kafka and webhooks) and submits them to the engine. A versioned table of callbacks.
 *
 * Contract: a source acknowledges to its peer (HTTP answer, Kafka offset commit) only after
 * ms_engine_submit has returned for those events, i.e. after the store commit.
 * start() may leave *ctx NULL when the source is not configured (stop and metrics then get NULL).
 * Thread rules: start() may create threads; stop() must return only when they have ended.
 */
#ifndef MS_SOURCE_H
#define MS_SOURCE_H

#include "ms_config.h"
#include "ms_error.h"

#define MS_SOURCE_OPS_VERSION 2

struct ms_runtime;
struct ms_buf;

typedef struct ms_source_ops {
    int version; /* MS_SOURCE_OPS_VERSION */
    const char *name;
    ms_err (*start)(struct ms_runtime *rt, void **ctx, ms_error *err);
    void (*stop)(void *ctx);
    /* ---- version 2 ---- */
    /* Appends the source's own metrics (Prometheus text, ms_metrics_header/sample) to out; may
     * be NULL. Called from any thread while the source runs; ctx may be NULL (see start). */
    void (*metrics)(void *ctx, struct ms_buf *out);
} ms_source_ops;

#endif
