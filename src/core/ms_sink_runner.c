/*
 * ms_sink_runner.c — the thread that drives one sink over the change log (see ms_sink_runner.h).
 *
 * Per tenant it keeps `cursor` (durably delivered, stored in the store) and `handed` (offered
 * and accepted by the sink, maybe only buffered). After a restart handed starts at the cursor,
 * so whatever was only buffered is offered again: at least once, never lost.
 *
 * With several workers on one store, a tenant is delivered only while this process holds the
 * store's lease of (sink, tenant) (ms_store_ops.lease_hold), checked every LEASE_MS. On taking
 * a lease (or when the store's lease epoch moved: leases may have been lost in between) the
 * runner re-reads the cursor the previous holder stored and resumes after it, as after a
 * restart: at least once, never skipped.
 */
#include "ms_sink_runner.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BATCH    1000
#define LEASE_MS 1000

typedef struct runner_tenant {
    char *tenant;
    uint64_t cursor, handed;
    unsigned long long retry_at_ms;
    unsigned backoff_ms;
    bool held;                      /* this process holds the lease: it delivers the tenant */
    uint64_t epoch;                 /* the store's lease epoch when held was last confirmed */
    unsigned long long lease_at_ms; /* when to ask the store again */
} runner_tenant;

struct ms_sink_runner {
    ms_sink_runner_args a;
    pthread_t thread;
    pthread_mutex_t mu; /* guards tenants[] for metrics and `stop` */
    bool stop;
    bool failed;
    runner_tenant *t;
    size_t nt;
};

/* A batch of copied change records (the store's strings live only during its callback). */
typedef struct batch {
    ms_change c[BATCH];
    size_t n;
} batch;

static char *dup_into(const char *s)
{
    return s ? ms_xstrdup(s) : NULL;
}

static int collect(void *ud, const ms_change *c)
{
    batch *b = ud;
    ms_change *d = &b->c[b->n++];
    *d = *c;
    d->tenant = dup_into(c->tenant);
    d->op = dup_into(c->op);
    d->qn = dup_into(c->qn);
    d->type = dup_into(c->type);
    d->before = dup_into(c->before);
    d->after = dup_into(c->after);
    d->changed = dup_into(c->changed);
    d->cause = dup_into(c->cause);
    d->ts = dup_into(c->ts);
    return b->n == BATCH;
}

static void batch_clear(batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        ms_change *d = &b->c[i];
        free((char *)d->tenant);
        free((char *)d->op);
        free((char *)d->qn);
        free((char *)d->type);
        free((char *)d->before);
        free((char *)d->after);
        free((char *)d->changed);
        free((char *)d->cause);
        free((char *)d->ts);
    }
    b->n = 0;
}

static int add_tenant(void *ud, const char *tenant)
{
    ms_sink_runner *r = ud;
    for (size_t i = 0; i < r->nt; i++)
        if (strcmp(r->t[i].tenant, tenant) == 0) return 0;
    uint64_t cur = 0;
    ms_error err;
    if (r->a.store->cursor_get(r->a.store_ctx, tenant, r->a.ops->name, &cur, &err) != MS_OK) {
        ms_log_warn(r->a.log, "sink %s: cannot read cursor of %s: %s", r->a.ops->name, tenant,
                    err.detail);
        return 0;
    }
    pthread_mutex_lock(&r->mu);
    r->t = ms_xrealloc(r->t, (r->nt + 1) * sizeof *r->t);
    r->t[r->nt++] = (runner_tenant){ms_xstrdup(tenant), cur, cur, 0, 0, false, 0, 0};
    pthread_mutex_unlock(&r->mu);
    ms_log_info(r->a.log, "sink %s: tenant %s resumes after seq %llu", r->a.ops->name, tenant,
                (unsigned long long)cur);
    return 0;
}

/* Stores a durable seq reported by the sink as the cursor. */
static void advance(ms_sink_runner *r, runner_tenant *t, uint64_t durable)
{
    if (durable <= t->cursor) return;
    ms_error err;
    if (r->a.store->cursor_set(r->a.store_ctx, t->tenant, r->a.ops->name, durable, &err) != MS_OK) {
        ms_log_warn(r->a.log, "sink %s: cannot store cursor: %s", r->a.ops->name, err.detail);
        return;
    }
    pthread_mutex_lock(&r->mu);
    t->cursor = durable;
    pthread_mutex_unlock(&r->mu);
}

/*
 * Whether this process may deliver tenant t now: takes or confirms the store's lease (at most
 * every LEASE_MS) and, on taking it, resumes after the stored cursor.
 */
static bool lease(ms_sink_runner *r, runner_tenant *t)
{
    const ms_store_ops *st = r->a.store;
    if (st->version < 3 || !st->lease_hold) return true;
    unsigned long long now = ms_now_ms();
    if (now < t->lease_at_ms) return t->held;
    t->lease_at_ms = now + LEASE_MS;
    bool held = false;
    uint64_t epoch = 0, cur = 0;
    ms_error err;
    ms_error_clear(&err);
    if (st->lease_hold(r->a.store_ctx, t->tenant, r->a.ops->name, &held, &epoch, &err) != MS_OK)
        ms_log_warn(r->a.log, "sink %s: cannot check the lease of %s: %s", r->a.ops->name,
                    t->tenant, err.detail);
    if (held && (!t->held || epoch != t->epoch)) {
        if (st->cursor_get(r->a.store_ctx, t->tenant, r->a.ops->name, &cur, &err) != MS_OK) {
            ms_log_warn(r->a.log, "sink %s: cannot read cursor of %s: %s", r->a.ops->name,
                        t->tenant, err.detail);
            held = false;
        } else {
            pthread_mutex_lock(&r->mu);
            t->cursor = t->handed = cur;
            pthread_mutex_unlock(&r->mu);
            ms_log_info(r->a.log, "sink %s: took the lease of %s; resumes after seq %llu",
                        r->a.ops->name, t->tenant, (unsigned long long)cur);
        }
    } else if (!held && t->held) {
        ms_log_warn(r->a.log, "sink %s: lost the lease of %s", r->a.ops->name, t->tenant);
    }
    t->held = held;
    t->epoch = epoch;
    return held;
}

/* One pass over tenant t: offer the next batch, or tick. Returns true if records moved. */
static bool pass(ms_sink_runner *r, runner_tenant *t, batch *b)
{
    if (!lease(r, t)) return false;
    unsigned long long now = ms_now_ms();
    if (now < t->retry_at_ms) return false;
    ms_error err;
    ms_error_clear(&err);
    if (r->a.store->changes(r->a.store_ctx, t->tenant, t->handed, BATCH, collect, b, &err) !=
        MS_OK) {
        ms_log_warn(r->a.log, "sink %s: cannot read changes: %s", r->a.ops->name, err.detail);
        batch_clear(b);
        return false;
    }
    uint64_t durable = t->cursor;
    ms_sink_status st = r->a.ops->deliver(r->a.sink, t->tenant, b->c, b->n, now, &durable);
    bool moved = false;
    if (st == MS_SINK_OK) {
        if (b->n) t->handed = b->c[b->n - 1].seq;
        moved = b->n > 0;
        t->backoff_ms = 0;
    } else if (st == MS_SINK_RETRY) {
        t->backoff_ms =
            t->backoff_ms ? (t->backoff_ms * 2 > 30000 ? 30000 : t->backoff_ms * 2) : 100;
        t->retry_at_ms = now + t->backoff_ms;
    } else {
        ms_log_error(r->a.log, "sink %s: failed for good; stopping it", r->a.ops->name);
        r->failed = true;
    }
    batch_clear(b);
    advance(r, t, durable);
    return moved;
}

static void *runner_main(void *arg)
{
    ms_sink_runner *r = arg;
    /* A sink is a cursor over the durable log: when it runs a little later nothing is lost,
     * while the writer and the request threads that feed it are the engine's throughput. Linux
     * nice values are per thread; raising one's own needs no privilege. */
    if (r->a.nice > 0 && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), r->a.nice) != 0)
        ms_log_warn(r->a.log, "sink %s: cannot lower its priority: %s", r->a.ops->name,
                    strerror(errno));
    batch *b = ms_xcalloc(1, sizeof *b);
    for (;;) {
        pthread_mutex_lock(&r->mu);
        bool stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop || r->failed) break;
        uint64_t gen = ms_engine_generation(r->a.engine);
        r->a.store->tenants(r->a.store_ctx, add_tenant, r, NULL);
        bool moved = false;
        for (size_t i = 0; i < r->nt && !r->failed; i++)
            moved |= pass(r, &r->t[i], b);
        if (!moved) ms_engine_wait_generation(r->a.engine, gen, r->a.tick_ms);
    }
    /* Final flush of whatever the sink buffered. */
    for (size_t i = 0; i < r->nt && !r->failed; i++) {
        if (!lease(r, &r->t[i])) continue;
        uint64_t durable = r->t[i].cursor;
        r->a.ops->deliver(r->a.sink, r->t[i].tenant, NULL, 0, MS_SINK_FLUSH_ALL, &durable);
        advance(r, &r->t[i], durable);
    }
    free(b);
    return NULL;
}

ms_sink_runner *ms_sink_runner_start(const ms_sink_runner_args *a, ms_error *err)
{
    ms_sink_runner *r = ms_xcalloc(1, sizeof *r);
    r->a = *a;
    pthread_mutex_init(&r->mu, NULL);
    if (pthread_create(&r->thread, NULL, runner_main, r) != 0) {
        ms_error_set(err, MS_ERR_INTERNAL, "cannot start sink %s", a->ops->name);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return NULL;
    }
    return r;
}

void ms_sink_runner_stop(ms_sink_runner *r)
{
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    r->a.ops->destroy(r->a.sink);
    for (size_t i = 0; i < r->nt; i++)
        free(r->t[i].tenant);
    free(r->t);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void ms_sink_runner_metrics_render(ms_sink_runner *r, ms_buf *out, bool header)
{
    if (header) {
        ms_metrics_header(out, "metasync_sink_cursor", "gauge",
                          "Last change seq a sink has durably delivered, per tenant.");
    }
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nt; i++) {
        ms_buf lbl = MS_BUF_INIT;
        ms_buf_printf(&lbl, "sink=\"%s\",tenant=", r->a.ops->name);
        ms_buf_put_jstr(&lbl, r->t[i].tenant);
        ms_metrics_sample(out, "metasync_sink_cursor", lbl.data, (double)r->t[i].cursor);
        ms_buf_free(&lbl);
    }
    pthread_mutex_unlock(&r->mu);
}
