/*
 * ms_runtime.h — one running MetaSync: the configuration, logger, metrics, type registry, store,
 * engine, blob store, sink runners and sources, opened in order and closed in reverse.
 * `metasync serve` holds one; tests and benchmarks may hold one in-process.
 *
 * Thread rules: open and close on one thread; in between, the fields are read-only pointers to
 * thread-safe parts.
 */
#ifndef MS_RUNTIME_H
#define MS_RUNTIME_H

#include "ms_config.h"
#include "ms_engine.h"
#include "ms_log.h"
#include "ms_metrics.h"
#include "ms_plugins.h"
#include "ms_sink_runner.h"
#include "ms_types.h"

#include <pthread.h>
#include <stdbool.h>

#define MS_DEFAULT_TENANT    "default"
#define MS_RUNTIME_MAX_PARTS 8

typedef struct ms_runtime {
    const ms_config *cfg;
    ms_log log;
    ms_metrics metrics;
    ms_types *types;
    const ms_store_ops *store;
    void *store_ctx;
    ms_engine *engine;
    bool watching; /* the store's commit notifications reach the engine (store->watch) */
    struct ms_registry *registry; /* schema registry (embedded or external); NULL if disabled */
    struct ms_control *control;   /* tenants, API keys, connections, users (src/control) */
    const ms_blob_ops *blob;
    void *blob_ctx;
    ms_sink_runner *sinks[MS_RUNTIME_MAX_PARTS];
    size_t nsinks;
    const ms_source_ops *sources[MS_RUNTIME_MAX_PARTS];
    void *source_ctx[MS_RUNTIME_MAX_PARTS];
    size_t nsources;
    /* Guards sources/source_ctx/nsources between ms_runtime_metrics_render (HTTP threads) and
     * ms_runtime_close: a source is taken out of the list under it before it is stopped. */
    pthread_mutex_t sources_mu;
    char listen_addr[300]; /* set by the HTTP source once bound (port 0 resolved) */
} ms_runtime;

/* Opens store, engine and sinks (not sources). On failure everything opened is closed again. */
ms_err ms_runtime_open(ms_runtime *rt, const ms_config *cfg, ms_error *err);
/* Starts every built-in source (the HTTP API). */
ms_err ms_runtime_start_sources(ms_runtime *rt, ms_error *err);
/* Stops sources, drains the engine, flushes and stops sinks, closes the store. Idempotent. */
void ms_runtime_close(ms_runtime *rt);
/* Appends the whole /metrics text. */
void ms_runtime_metrics_render(ms_runtime *rt, ms_buf *out);
/* Registers a custom type for tenant from its JSON definition and stores it (ms_types_register
 * then store->type_save); *created tells whether it is new. */
ms_err ms_runtime_register_type(ms_runtime *rt, const char *tenant, const char *json, size_t len,
                                bool *created, ms_buf *canonical, ms_error *err);

#endif
