/*
 * sink_snapshot.c — the snapshot sink: writes every change record (with its before and after
 * JSON) through a blob store as NDJSON objects, rolled by size (snapshots.max_object_bytes) and
 * by age (snapshots.max_object_age_ms), under
 *   <tenant>/<yyyy>/<mm>/<dd>/<hh>/<first-seq>-<last-seq>.ndjson
 * (the hour of the first record's commit time). Records are buffered per tenant; the durable
 * seq moves only when an object is stored, so after a crash the runner re-offers what was
 * buffered and an object may be written again under the same first seq (readers dedupe by seq).
 * While the blob store fails, the buffer stops growing at twice the object size (plus the record
 * that crossed it) and the sink answers RETRY: memory stays bounded and nothing is lost. A
 * delivery may be taken in part before that RETRY; the runner then offers it again from its
 * start, and the records already held (seq <= taken) are skipped.
 */
#include "ms_buf.h"
#include "ms_sink.h"

#include <stdlib.h>
#include <string.h>

typedef struct snap_tenant {
    char *tenant;
    ms_buf data;
    uint64_t first, last;
    uint64_t taken; /* highest seq buffered or stored: re-offered records up to it are skipped */
    char hour[16];  /* yyyy/mm/dd/hh of the first record */
    unsigned long long since_ms;
    unsigned long long retry_at_ms;
} snap_tenant;

typedef struct snap_sink {
    const ms_log *log;
    const ms_blob_ops *blob;
    void *blob_ctx;
    size_t max_bytes;
    unsigned long long max_age_ms;
    snap_tenant *t;
    size_t nt;
} snap_sink;

static ms_err snap_init(const ms_sink_init_args *a, void **ctx, ms_error *err)
{
    if (!a->cfg->snapshots_enabled) return MS_OK; /* disabled: *ctx stays NULL */
    if (!a->blob_ops) return ms_error_set(err, MS_ERR_CONFIG, "snapshot sink needs a blob store");
    snap_sink *s = ms_xcalloc(1, sizeof *s);
    s->log = a->log;
    s->blob = a->blob_ops;
    s->blob_ctx = a->blob;
    s->max_bytes = (size_t)a->cfg->snapshots_max_object_bytes;
    s->max_age_ms = (unsigned long long)a->cfg->snapshots_max_object_age_ms;
    *ctx = s;
    return MS_OK;
}

static snap_tenant *slot(snap_sink *s, const char *tenant)
{
    for (size_t i = 0; i < s->nt; i++)
        if (strcmp(s->t[i].tenant, tenant) == 0) return &s->t[i];
    s->t = ms_xrealloc(s->t, (s->nt + 1) * sizeof *s->t);
    snap_tenant *t = &s->t[s->nt++];
    memset(t, 0, sizeof *t);
    t->tenant = ms_xstrdup(tenant);
    return t;
}

/* Stores the buffered object; on success advances *durable and empties the buffer. */
static bool flush(snap_sink *s, snap_tenant *t, unsigned long long now, uint64_t *durable)
{
    if (!t->data.len) return true;
    if (now != MS_SINK_FLUSH_ALL && now < t->retry_at_ms) return false;
    char key[512];
    snprintf(key, sizeof key, "%s/%s/%llu-%llu.ndjson", t->tenant, t->hour,
             (unsigned long long)t->first, (unsigned long long)t->last);
    ms_error err;
    ms_error_clear(&err);
    if (s->blob->put(s->blob_ctx, key, t->data.data, t->data.len, &err) != MS_OK) {
        ms_log_warn(s->log, "snapshots: cannot store %s (will retry): %s", key, err.detail);
        t->retry_at_ms = now == MS_SINK_FLUSH_ALL ? 0 : now + 1000;
        return false;
    }
    ms_log_debug(s->log, "snapshots: stored %s (%zu bytes)", key, t->data.len);
    *durable = t->last;
    ms_buf_reset(&t->data);
    t->first = t->last = 0;
    return true;
}

static ms_sink_status snap_deliver(void *ctx, const char *tenant, const ms_change *c, size_t n,
                                   unsigned long long now, uint64_t *durable)
{
    snap_sink *s = ctx;
    snap_tenant *t = slot(s, tenant);
    for (size_t i = 0; i < n; i++) {
        if (c[i].seq <= t->taken) continue;
        if (t->data.len >= 2 * s->max_bytes && !flush(s, t, now, durable)) return MS_SINK_RETRY;
        if (!t->data.len) {
            t->first = c[i].seq;
            t->since_ms = now;
            const char *ts = c[i].ts ? c[i].ts : "1970-01-01T00";
            snprintf(t->hour, sizeof t->hour, "%.4s/%.2s/%.2s/%.2s", ts, ts + 5, ts + 8,
                     ts + 11);
        }
        ms_change_to_json(&c[i], &t->data);
        ms_buf_putc(&t->data, '\n');
        t->last = t->taken = c[i].seq;
        if (t->data.len >= s->max_bytes) flush(s, t, now, durable);
    }
    if (t->data.len && (now == MS_SINK_FLUSH_ALL || now - t->since_ms >= s->max_age_ms))
        flush(s, t, now, durable);
    return MS_SINK_OK;
}

static void snap_destroy(void *ctx)
{
    snap_sink *s = ctx;
    if (!s) return;
    for (size_t i = 0; i < s->nt; i++) {
        ms_buf_free(&s->t[i].data);
        free(s->t[i].tenant);
    }
    free(s->t);
    free(s);
}

const ms_sink_ops ms_sink_snapshot = {
    .version = MS_SINK_OPS_VERSION,
    .name = "snapshots",
    .init = snap_init,
    .deliver = snap_deliver,
    .destroy = snap_destroy,
};
