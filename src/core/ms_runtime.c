/* ms_runtime.c — opening and closing one MetaSync in the right order (see ms_runtime.h). */
#include "ms_runtime.h"

#include "ms_control.h"
#include "ms_registry.h"

#include <stdlib.h>
#include <string.h>

static int load_type(void *ud, const char *tenant, const char *json)
{
    ms_runtime *rt = ud;
    ms_error err;
    if (ms_types_register(rt->types, tenant, json, strlen(json), NULL, NULL, &err) != MS_OK)
        ms_log_warn(&rt->log, "types: stored definition for %s not loaded: %s", tenant, err.detail);
    return 0;
}

/* Opens the blob store of the snapshot sink. */
static ms_err open_blob(ms_runtime *rt, ms_error *err)
{
    const ms_config *cfg = rt->cfg;
    ms_buf url = MS_BUF_INIT;
    if (cfg->snapshots_url && *cfg->snapshots_url)
        ms_buf_puts(&url, cfg->snapshots_url);
    else
        ms_buf_printf(&url, "file://%s/snapshots", cfg->data_dir);
    rt->blob = ms_plugins_blob(url.data);
    ms_err rc = MS_OK;
    if (!rt->blob)
        rc = ms_error_set(err, MS_ERR_CONFIG, "snapshots.url: no blob store for '%s'", url.data);
    if (rc == MS_OK) rc = rt->blob->open(url.data, cfg, &rt->log, &rt->blob_ctx, err);
    ms_buf_free(&url);
    return rc;
}

/* Opens the blob store (when snapshots are enabled) and starts a runner for every sink that is
 * configured (a sink whose init leaves its context NULL is disabled and not run). */
static ms_err open_sinks(ms_runtime *rt, ms_error *err)
{
    const ms_config *cfg = rt->cfg;
    if (cfg->sinks_nice < 0 || cfg->sinks_nice > 19)
        return ms_error_set(err, MS_ERR_CONFIG, "sinks.nice: %lld is not a nice value from 0 to 19",
                            (long long)cfg->sinks_nice);
    ms_err rc = cfg->snapshots_enabled ? open_blob(rt, err) : MS_OK;
    if (rc != MS_OK) return rc;
    for (const ms_sink_ops *const *s = ms_plugins_sinks(); *s; s++) {
        if ((*s)->version > MS_SINK_OPS_VERSION) continue;
        void *ctx = NULL;
        ms_sink_init_args ia = {cfg, &rt->log, rt->blob, rt->blob_ctx, rt->registry, &rt->metrics};
        if ((rc = (*s)->init(&ia, &ctx, err)) != MS_OK) return rc;
        if (!ctx) continue;
        ms_sink_runner_args ra = {*s,         ctx,      rt->store, rt->store_ctx,
                                  rt->engine, &rt->log, 250,       (int)cfg->sinks_nice};
        ms_sink_runner *r = ms_sink_runner_start(&ra, err);
        if (!r) {
            (*s)->destroy(ctx);
            return err->code;
        }
        rt->sinks[rt->nsinks++] = r;
    }
    return MS_OK;
}

/* The store's commit notifications (other workers' commits) wake this engine's waiters. */
static void on_commit(void *ud, const char *tenant, uint64_t seq)
{
    ms_engine_notify_seq(ud, tenant, seq);
}

/* Subscribes the engine to the store's commit notifications when the store has them (PostgreSQL:
 * LISTEN/NOTIFY). Without them a waiter is woken by this process's commits only. */
static void watch_store(ms_runtime *rt)
{
    if (rt->store->version < 4 || !rt->store->watch) return;
    ms_error err;
    ms_error_clear(&err);
    if (rt->store->watch(rt->store_ctx, on_commit, rt->engine, &err) == MS_OK)
        rt->watching = true;
    else
        ms_log_warn(&rt->log, "store: no commit notifications (%s); waits end by their timeouts",
                    err.detail);
}

/* Opens the schema registry once the engine runs (it submits kafka_schema assets through it, the
 * built-in schemas at once): embedded when registry.enabled, the client of registry.url when
 * that is set (whatever registry.enabled says: sinks that write Avro need it), else none. */
static ms_err open_registry(ms_runtime *rt, ms_error *err)
{
    const ms_config *cfg = rt->cfg;
    bool external = cfg->registry_url && *cfg->registry_url;
    if (!cfg->registry_enabled && !external) return MS_OK;
    ms_registry_args ra = {cfg, &rt->log, rt->store, rt->store_ctx, rt->engine};
    return ms_registry_open(&ra, &rt->registry, err);
}

ms_err ms_runtime_open(ms_runtime *rt, const ms_config *cfg, ms_error *err)
{
    memset(rt, 0, sizeof *rt);
    pthread_mutex_init(&rt->sources_mu, NULL); /* not destroyed: close may run more than once */
    rt->cfg = cfg;
    rt->log.level = ms_log_level_parse(cfg->log_level);
    rt->log.out = stderr;
    ms_metrics_init(&rt->metrics);
    rt->types = ms_types_new();
    rt->store = ms_plugins_store(cfg->store_url);
    if (!rt->store || rt->store->version > MS_STORE_OPS_VERSION) {
        ms_error_set(err, MS_ERR_CONFIG, "store.url: no store for '%s'", cfg->store_url);
        ms_runtime_close(rt);
        return MS_ERR_CONFIG;
    }
    ms_store_open_args oa = {cfg, &rt->log, cfg->store_url, rt->types};
    ms_err rc = rt->store->open(&oa, &rt->store_ctx, err);
    if (rc == MS_OK) rc = rt->store->types_load(rt->store_ctx, load_type, rt, err);
    if (rc == MS_OK && rt->store->version >= 2 && rt->store->ctl_list) {
        ms_control_args ca = {cfg, &rt->log, rt->store, rt->store_ctx};
        rc = ms_control_open(&ca, &rt->control, err);
    }
    if (rc == MS_OK) {
        ms_engine_args ea = {.cfg = cfg,
                             .log = &rt->log,
                             .metrics = &rt->metrics,
                             .store = rt->store,
                             .store_ctx = rt->store_ctx,
                             .types = rt->types};
        rt->engine = ms_engine_new(&ea);
        rc = ms_engine_start(rt->engine, err);
    }
    if (rc == MS_OK) watch_store(rt);
    if (rc == MS_OK) rc = open_registry(rt, err);
    if (rc == MS_OK) rc = open_sinks(rt, err);
    if (rc != MS_OK) ms_runtime_close(rt);
    return rc;
}

ms_err ms_runtime_start_sources(ms_runtime *rt, ms_error *err)
{
    for (const ms_source_ops *const *s = ms_plugins_sources(); *s; s++) {
        if ((*s)->version > MS_SOURCE_OPS_VERSION) continue;
        void *ctx = NULL;
        ms_err rc = (*s)->start(rt, &ctx, err);
        if (rc != MS_OK) return rc;
        pthread_mutex_lock(&rt->sources_mu);
        rt->sources[rt->nsources] = *s;
        rt->source_ctx[rt->nsources++] = ctx;
        pthread_mutex_unlock(&rt->sources_mu);
    }
    return MS_OK;
}

void ms_runtime_close(ms_runtime *rt)
{
    for (;;) {
        /* Out of the list first (a /metrics render in progress finishes before), then stopped:
         * the HTTP source is stopped last, so renders go on while the others stop. */
        pthread_mutex_lock(&rt->sources_mu);
        if (!rt->nsources) {
            pthread_mutex_unlock(&rt->sources_mu);
            break;
        }
        rt->nsources--;
        const ms_source_ops *ops = rt->sources[rt->nsources];
        void *ctx = rt->source_ctx[rt->nsources];
        rt->source_ctx[rt->nsources] = NULL;
        pthread_mutex_unlock(&rt->sources_mu);
        ops->stop(ctx);
    }
    /* With the sources stopped nothing writes to the registry any more (its writes come from HTTP
     * threads), so the engine may stop; sinks may still resolve schema ids until they stop, so the
     * registry is freed after them. */
    if (rt->engine) ms_engine_stop(rt->engine); /* commits what is queued */
    while (rt->nsinks)
        ms_sink_runner_stop(rt->sinks[--rt->nsinks]);
    ms_registry_free(rt->registry);
    rt->registry = NULL;
    if (rt->blob && rt->blob_ctx) rt->blob->close(rt->blob_ctx);
    rt->blob_ctx = NULL;
    if (rt->watching) rt->store->watch(rt->store_ctx, NULL, NULL, NULL);
    rt->watching = false;
    ms_engine_free(rt->engine);
    rt->engine = NULL;
    ms_control_free(rt->control);
    rt->control = NULL;
    if (rt->store && rt->store_ctx) rt->store->close(rt->store_ctx);
    rt->store_ctx = NULL;
    ms_types_free(rt->types);
    rt->types = NULL;
}

static int orphan_gauge(void *ud, const char *tenant)
{
    void **args = ud;
    ms_runtime *rt = args[0];
    ms_buf *out = args[1];
    ms_store_stats st = {0};
    if (rt->store->stats(rt->store_ctx, tenant, &st, NULL) != MS_OK) return 0;
    ms_buf lbl = MS_BUF_INIT;
    ms_buf_puts(&lbl, "tenant=");
    ms_buf_put_jstr(&lbl, tenant);
    ms_metrics_sample(out, "metasync_orphans", lbl.data, (double)st.orphans);
    ms_buf_free(&lbl);
    return 0;
}

void ms_runtime_metrics_render(ms_runtime *rt, ms_buf *out)
{
    ms_metrics_render(&rt->metrics, out);
    ms_engine_metrics_render(rt->engine, out);
    ms_metrics_header(out, "metasync_orphans", "gauge",
                      "Assets whose parent has not arrived yet, per tenant.");
    void *args[2] = {rt, out};
    rt->store->tenants(rt->store_ctx, orphan_gauge, args, NULL);
    if (rt->store->version >= 7 && rt->store->metrics) rt->store->metrics(rt->store_ctx, out);
    for (size_t i = 0; i < rt->nsinks; i++)
        ms_sink_runner_metrics_render(rt->sinks[i], out, i == 0);
    pthread_mutex_lock(&rt->sources_mu);
    for (size_t i = 0; i < rt->nsources; i++)
        if (rt->sources[i]->version >= 2 && rt->sources[i]->metrics && rt->source_ctx[i])
            rt->sources[i]->metrics(rt->source_ctx[i], out);
    pthread_mutex_unlock(&rt->sources_mu);
}

ms_err ms_runtime_register_type(ms_runtime *rt, const char *tenant, const char *json, size_t len,
                                bool *created, ms_buf *canonical, ms_error *err)
{
    const ms_type *t = NULL;
    ms_err rc = ms_types_register(rt->types, tenant, json, len, &t, created, err);
    if (rc != MS_OK) return rc;
    if (*created) rc = rt->store->type_save(rt->store_ctx, tenant, t->name, t->json, err);
    if (rc == MS_OK && canonical) ms_buf_puts(canonical, t->json);
    return rc;
}
