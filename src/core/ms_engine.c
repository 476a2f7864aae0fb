/*
 * ms_engine.c — lanes, backpressure, the writer thread and its group commits (see ms_engine.h).
 *
 * Locking: one mutex (mu) guards the lanes, the submissions' pending counts, the per-tenant seq
 * table and the flags. The writer holds it only to take jobs and to publish results, never while
 * the store works.
 */
#include "ms_engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One submitted batch waiting for its events to be committed. Lives on the submitter's stack. */
typedef struct submission {
    size_t pending;   /* events not yet committed or refused */
    ms_err failure;   /* MS_OK, or the store error that failed one of its commits */
    char detail[200];
} submission;

typedef struct job {
    ms_event *ev;
    ms_apply_result *res;
    submission *sub;
    unsigned long long enq_ns;
} job;

typedef struct lane {
    job *ring;
    size_t cap, head, count; /* ring buffer */
    size_t bytes;
    size_t max_bytes;
} lane;

typedef struct tenant_seq {
    char *tenant;
    uint64_t seq;
} tenant_seq;

struct ms_engine {
    ms_engine_args a;
    pthread_mutex_t mu;
    pthread_cond_t work; /* the writer waits for jobs */
    pthread_cond_t room; /* submitters wait for lane room */
    pthread_cond_t done; /* submitters wait for their results */
    pthread_cond_t seq;  /* long-polls and sinks wait for new changes */
    lane lanes[MS_LANE_COUNT];
    tenant_seq *seqs;
    size_t nseqs;
    uint64_t generation;
    bool started, stopping, stopped;
    pthread_t writer;
    double ns_per_event; /* moving average of apply cost, sizes the bulk slice */
};

static void lane_push(lane *l, job j)
{
    if (l->count == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 1024;
        job *n = ms_xmalloc(ncap * sizeof *n);
        for (size_t i = 0; i < l->count; i++) n[i] = l->ring[(l->head + i) % l->cap];
        free(l->ring);
        l->ring = n;
        l->cap = ncap;
        l->head = 0;
    }
    l->ring[(l->head + l->count) % l->cap] = j;
    l->count++;
    l->bytes += j.ev->bytes;
}

static job lane_pop(lane *l)
{
    job j = l->ring[l->head];
    l->head = (l->head + 1) % l->cap;
    l->count--;
    l->bytes -= j.ev->bytes;
    return j;
}

ms_engine *ms_engine_new(const ms_engine_args *args)
{
    ms_engine *e = ms_xcalloc(1, sizeof *e);
    e->a = *args;
    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->work, &ca);
    pthread_cond_init(&e->room, &ca);
    pthread_cond_init(&e->done, &ca);
    pthread_cond_init(&e->seq, &ca);
    pthread_condattr_destroy(&ca);
    e->lanes[MS_LANE_FAST].max_bytes = (size_t)args->cfg->lanes_fast_max_bytes;
    e->lanes[MS_LANE_BULK].max_bytes = (size_t)args->cfg->lanes_bulk_max_bytes;
    e->ns_per_event = 20000; /* a cautious first guess: 20 µs per event */
    return e;
}

/* Absolute CLOCK_MONOTONIC deadline ms from now. */
static struct timespec deadline_in(unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Finds (or adds, when add) the seq slot of tenant. @locks_required mu */
static tenant_seq *seq_slot(ms_engine *e, const char *tenant, bool add)
{
    for (size_t i = 0; i < e->nseqs; i++)
        if (strcmp(e->seqs[i].tenant, tenant) == 0) return &e->seqs[i];
    if (!add) return NULL;
    e->seqs = ms_xrealloc(e->seqs, (e->nseqs + 1) * sizeof *e->seqs);
    e->seqs[e->nseqs].tenant = ms_xstrdup(tenant);
    e->seqs[e->nseqs].seq = 0;
    uint64_t last = 0;
    if (e->a.store->last_seq(e->a.store_ctx, tenant, &last, NULL) == MS_OK)
        e->seqs[e->nseqs].seq = last;
    return &e->seqs[e->nseqs++];
}

/* How many bulk events the next commit may take: about 20 ms of work (so a fast event waits at
 * most that long behind the bulk lane), at least 256 so that the fixed cost of a commit (fsync)
 * stays small per event. */
static size_t bulk_slice(const ms_engine *e, size_t taken_fast)
{
    size_t max = (size_t)e->a.cfg->engine_max_commit_events;
    size_t budget = (size_t)(20e6 / (e->ns_per_event > 1 ? e->ns_per_event : 1));
    if (budget < 256) budget = 256;
    if (budget > max) budget = max;
    return taken_fast >= max ? 0 : (budget < max - taken_fast ? budget : max - taken_fast);
}

/* Publishes the outcome of one commit. @locks_required mu */
static void publish(ms_engine *e, job *jobs, size_t n, ms_event **evs, ms_err rc,
                    const ms_error *err, unsigned long long t_done)
{
    ms_metrics *m = e->a.metrics;
    bool wrote = false;
    for (size_t i = 0; i < n; i++) {
        job *j = &jobs[i];
        if (rc != MS_OK) {
            j->sub->failure = rc;
            snprintf(j->sub->detail, sizeof j->sub->detail, "%.190s", err->detail);
            j->res->status = MS_APPLY_REJECTED;
            j->res->code = rc;
            snprintf(j->res->detail, sizeof j->res->detail, "%.190s", err->detail);
        } else {
            switch (j->res->status) {
            case MS_APPLY_APPLIED: {
                atomic_fetch_add(&m->events_applied, 1);
                atomic_fetch_add(&m->changes_written, j->res->seq_last - j->res->seq_first + 1);
                tenant_seq *s = seq_slot(e, evs[i]->tenant, true);
                if (j->res->seq_last > s->seq) s->seq = j->res->seq_last;
                wrote = true;
                break;
            }
            case MS_APPLY_UNCHANGED: atomic_fetch_add(&m->events_unchanged, 1); break;
            case MS_APPLY_DUPLICATE: atomic_fetch_add(&m->events_duplicate, 1); break;
            case MS_APPLY_REJECTED: atomic_fetch_add(&m->events_rejected[j->res->code], 1); break;
            }
        }
        ms_hist_observe(&m->ingest_lag[evs[i]->lane], (double)(t_done - j->enq_ns) / 1e9);
        j->sub->pending--;
    }
    if (wrote) {
        e->generation++;
        pthread_cond_broadcast(&e->seq);
    }
    pthread_cond_broadcast(&e->done);
    pthread_cond_broadcast(&e->room);
}

static void *writer_main(void *arg)
{
    ms_engine *e = arg;
    size_t max = (size_t)e->a.cfg->engine_max_commit_events;
    job *jobs = ms_xmalloc(max * sizeof *jobs);
    ms_event **evs = ms_xmalloc(max * sizeof *evs);
    ms_apply_result *res = ms_xmalloc(max * sizeof *res);
    pthread_mutex_lock(&e->mu);
    for (;;) {
        lane *fast = &e->lanes[MS_LANE_FAST], *bulk = &e->lanes[MS_LANE_BULK];
        while (!fast->count && !bulk->count && !e->stopping) pthread_cond_wait(&e->work, &e->mu);
        if (!fast->count && !bulk->count) break; /* stopping and drained */
        size_t n = 0;
        while (fast->count && n < max) jobs[n++] = lane_pop(fast);
        size_t nb = bulk_slice(e, n);
        while (bulk->count && nb--) jobs[n++] = lane_pop(bulk);
        pthread_cond_broadcast(&e->room);
        pthread_mutex_unlock(&e->mu);

        for (size_t i = 0; i < n; i++) evs[i] = jobs[i].ev;
        memset(res, 0, n * sizeof *res);
        char now[40];
        ms_time_rfc3339(now, sizeof now);
        ms_error err;
        ms_error_clear(&err);
        unsigned long long t0 = ms_now_ns();
        ms_err rc = e->a.store->apply(e->a.store_ctx, evs, n, now, res, &err);
        unsigned long long t1 = ms_now_ns();
        if (rc != MS_OK)
            ms_log_error(e->a.log, "engine: commit of %zu events failed: %s: %s", n,
                         ms_err_code(rc), err.detail);
        atomic_fetch_add(&e->a.metrics->commits, 1);
        ms_hist_observe(&e->a.metrics->commit_seconds, (double)(t1 - t0) / 1e9);
        e->ns_per_event = 0.8 * e->ns_per_event + 0.2 * ((double)(t1 - t0) / (double)n);
        for (size_t i = 0; i < n; i++) *jobs[i].res = res[i];

        pthread_mutex_lock(&e->mu);
        publish(e, jobs, n, evs, rc, &err, t1);
        pthread_mutex_unlock(&e->mu);
        for (size_t i = 0; i < n; i++) ms_event_free(evs[i]);
        pthread_mutex_lock(&e->mu);
    }
    e->stopped = true;
    pthread_cond_broadcast(&e->done);
    pthread_cond_broadcast(&e->room);
    pthread_cond_broadcast(&e->seq);
    pthread_mutex_unlock(&e->mu);
    free(jobs);
    free(evs);
    free(res);
    return NULL;
}

ms_err ms_engine_start(ms_engine *e, ms_error *err)
{
    if (pthread_create(&e->writer, NULL, writer_main, e) != 0)
        return ms_error_set(err, MS_ERR_INTERNAL, "cannot start the writer thread");
    e->started = true;
    return MS_OK;
}

void ms_engine_stop(ms_engine *e)
{
    pthread_mutex_lock(&e->mu);
    bool was = e->stopping;
    e->stopping = true;
    pthread_cond_broadcast(&e->work);
    pthread_cond_broadcast(&e->room);
    pthread_cond_broadcast(&e->seq);
    pthread_mutex_unlock(&e->mu);
    if (!was && e->started) pthread_join(e->writer, NULL);
}

void ms_engine_free(ms_engine *e)
{
    if (!e) return;
    ms_engine_stop(e);
    for (int l = 0; l < MS_LANE_COUNT; l++) free(e->lanes[l].ring);
    for (size_t i = 0; i < e->nseqs; i++) free(e->seqs[i].tenant);
    free(e->seqs);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->work);
    pthread_cond_destroy(&e->room);
    pthread_cond_destroy(&e->done);
    pthread_cond_destroy(&e->seq);
    free(e);
}

/* Runs the transforms on ev; returns false (and fills res) when a transform drops it. */
static bool run_transforms(ms_engine *e, ms_event *ev, ms_apply_result *res)
{
    for (size_t t = 0; t < e->a.ntransforms; t++) {
        const ms_transform *tr = &e->a.transforms[t];
        ms_error err;
        ms_error_clear(&err);
        if (tr->ops->apply(tr->ctx, ev, &err) == MS_TRANSFORM_DROP) {
            res->status = MS_APPLY_REJECTED;
            res->code = err.code != MS_OK ? err.code : MS_ERR_INVALID_FIELD;
            snprintf(res->detail, sizeof res->detail, "dropped by transform %.40s: %.120s",
                     tr->ops->name, err.detail[0] ? err.detail : "no reason given");
            return false;
        }
    }
    return true;
}

/* Chooses the lane of events whose type is absent: the lane of an earlier event of the batch for
 * the same qualified name, else that of the stored asset, else fast. */
static void route_untyped(ms_engine *e, ms_event **evs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ms_event *ev = evs[i];
        if (!ev || ev->lane_known) continue;
        bool found = false;
        for (size_t k = i; k-- > 0 && !found;) {
            if (evs[k] && strcmp(evs[k]->qn, ev->qn) == 0) {
                ev->lane = evs[k]->lane;
                found = true;
            }
        }
        if (found) continue;
        char type[128];
        if (e->a.store->asset_type(e->a.store_ctx, ev->tenant, ev->qn, type, sizeof type, NULL) ==
                MS_OK &&
            (strcmp(type, "column") == 0 || strcmp(type, "bi_field") == 0))
            ev->lane = MS_LANE_BULK;
    }
}

ms_err ms_engine_submit(ms_engine *e, ms_event **evs, size_t n, ms_apply_result *res,
                        ms_error *err)
{
    atomic_fetch_add(&e->a.metrics->events_received, n);
    ms_hist_observe(&e->a.metrics->batch_size, (double)n);
    size_t need[MS_LANE_COUNT] = {0, 0};
    size_t live = 0;
    for (size_t i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof res[i]);
        if (!run_transforms(e, evs[i], &res[i])) {
            atomic_fetch_add(&e->a.metrics->events_rejected[res[i].code], 1);
            ms_event_free(evs[i]);
            evs[i] = NULL;
        }
    }
    route_untyped(e, evs, n);
    for (size_t i = 0; i < n; i++)
        if (evs[i]) {
            need[evs[i]->lane] += evs[i]->bytes;
            live++;
        }
    if (!live) return MS_OK;

    submission sub = {.pending = live, .failure = MS_OK};
    struct timespec dl = deadline_in((unsigned)e->a.cfg->engine_enqueue_timeout_ms);
    pthread_mutex_lock(&e->mu);
    for (;;) {
        if (e->stopping) {
            pthread_mutex_unlock(&e->mu);
            return ms_error_set(err, MS_ERR_UNAVAILABLE, "the engine is shutting down");
        }
        bool fits = true;
        for (int l = 0; l < MS_LANE_COUNT; l++) {
            lane *q = &e->lanes[l];
            if (need[l] && q->count && q->bytes + need[l] > q->max_bytes) fits = false;
        }
        if (fits) break;
        if (pthread_cond_timedwait(&e->room, &e->mu, &dl) != 0) {
            pthread_mutex_unlock(&e->mu);
            return ms_error_set(err, MS_ERR_OVERLOADED,
                                "the ingest lanes are full; retry after a short pause");
        }
    }
    unsigned long long now = ms_now_ns();
    for (size_t i = 0; i < n; i++) {
        if (!evs[i]) continue;
        lane_push(&e->lanes[evs[i]->lane],
                  (job){.ev = evs[i], .res = &res[i], .sub = &sub, .enq_ns = now});
        evs[i] = NULL;
    }
    pthread_cond_signal(&e->work);
    while (sub.pending) pthread_cond_wait(&e->done, &e->mu);
    pthread_mutex_unlock(&e->mu);
    if (sub.failure != MS_OK) return ms_error_set(err, sub.failure, "%s", sub.detail);
    return MS_OK;
}

uint64_t ms_engine_last_seq(ms_engine *e, const char *tenant)
{
    pthread_mutex_lock(&e->mu);
    uint64_t s = seq_slot(e, tenant, true)->seq;
    pthread_mutex_unlock(&e->mu);
    return s;
}

bool ms_engine_wait_seq(ms_engine *e, const char *tenant, uint64_t after, unsigned timeout_ms)
{
    struct timespec dl = deadline_in(timeout_ms);
    pthread_mutex_lock(&e->mu);
    tenant_seq *s = seq_slot(e, tenant, true);
    size_t idx = (size_t)(s - e->seqs); /* the table may move when it grows */
    while (e->seqs[idx].seq <= after && !e->stopping)
        if (pthread_cond_timedwait(&e->seq, &e->mu, &dl) != 0) break;
    bool more = e->seqs[idx].seq > after;
    pthread_mutex_unlock(&e->mu);
    return more;
}

uint64_t ms_engine_generation(ms_engine *e)
{
    pthread_mutex_lock(&e->mu);
    uint64_t g = e->generation;
    pthread_mutex_unlock(&e->mu);
    return g;
}

void ms_engine_wait_generation(ms_engine *e, uint64_t gen, unsigned timeout_ms)
{
    struct timespec dl = deadline_in(timeout_ms);
    pthread_mutex_lock(&e->mu);
    while (e->generation == gen && !e->stopping)
        if (pthread_cond_timedwait(&e->seq, &e->mu, &dl) != 0) break;
    pthread_mutex_unlock(&e->mu);
}

bool ms_engine_running(ms_engine *e)
{
    pthread_mutex_lock(&e->mu);
    bool r = e->started && !e->stopping;
    pthread_mutex_unlock(&e->mu);
    return r;
}

void ms_engine_metrics_render(ms_engine *e, ms_buf *out)
{
    pthread_mutex_lock(&e->mu);
    unsigned long long now = ms_now_ns();
    ms_metrics_header(out, "metasync_lane_queue_events", "gauge", "Events queued per lane.");
    for (int l = 0; l < MS_LANE_COUNT; l++) {
        char lbl[32];
        snprintf(lbl, sizeof lbl, "lane=\"%s\"", ms_lane_name((ms_lane)l));
        ms_metrics_sample(out, "metasync_lane_queue_events", lbl, (double)e->lanes[l].count);
    }
    ms_metrics_header(out, "metasync_lane_queue_bytes", "gauge", "Bytes queued per lane.");
    for (int l = 0; l < MS_LANE_COUNT; l++) {
        char lbl[32];
        snprintf(lbl, sizeof lbl, "lane=\"%s\"", ms_lane_name((ms_lane)l));
        ms_metrics_sample(out, "metasync_lane_queue_bytes", lbl, (double)e->lanes[l].bytes);
    }
    ms_metrics_header(out, "metasync_lane_oldest_age_seconds", "gauge",
                      "Age of the oldest queued event per lane (0 when empty).");
    for (int l = 0; l < MS_LANE_COUNT; l++) {
        char lbl[32];
        snprintf(lbl, sizeof lbl, "lane=\"%s\"", ms_lane_name((ms_lane)l));
        const lane *q = &e->lanes[l];
        double age = q->count ? (double)(now - q->ring[q->head].enq_ns) / 1e9 : 0;
        ms_metrics_sample(out, "metasync_lane_oldest_age_seconds", lbl, age);
    }
    ms_metrics_header(out, "metasync_change_seq", "gauge",
                      "Last change record seq committed, per tenant.");
    for (size_t i = 0; i < e->nseqs; i++) {
        ms_buf lbl = MS_BUF_INIT;
        ms_buf_puts(&lbl, "tenant=");
        ms_buf_put_jstr(&lbl, e->seqs[i].tenant);
        ms_metrics_sample(out, "metasync_change_seq", lbl.data, (double)e->seqs[i].seq);
        ms_buf_free(&lbl);
    }
    pthread_mutex_unlock(&e->mu);
}
