/*
 * ms_engine.c — lanes, backpressure, the writer thread and its group commits (see ms_engine.h).
 *
 * Locking: one mutex (mu) guards the lanes, the submissions' pending counts, the per-tenant seq
 * table, the commit slots and the flags. The writer holds it only to take jobs and to publish
 * results, never while the store works.
 *
 * Deferred durability (a store with ms_store_ops.apply_deferred, SQLite): the writer applies a
 * batch, hands the commit to the syncer thread through one of MS_SLOTS commit slots and goes on
 * with the next batch, while the syncer waits for the store to make the first durable and then
 * publishes it (results, seqs, wake-ups). Nothing is acknowledged before it is durable; the
 * writer runs at most MS_SLOTS commits ahead. Without it the writer publishes each commit.
 */
#include "ms_engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One submitted batch waiting for its events to be committed: the ticket of an asynchronous
 * submission (heap; freed by ms_engine_wait). */
typedef struct submission {
    size_t pending;  /* events not yet published (committed or refused) */
    size_t queued;   /* events not yet taken by a commit (writer, under mu) */
    ms_event **done; /* events published so far, for the submitter to free (ndone of them) */
    size_t ndone;
    ms_err failure; /* MS_OK, or the store error that failed one of its commits */
    char detail[200];
    ms_srcpos *pos; /* its source positions (a copy, lowered by earlier rejections), or NULL */
    size_t npos;
    size_t taking;   /* writer: its events in the commit being prepared */
    size_t pos_base; /* writer: where its positions start in that commit's positions */
} submission;

typedef struct job {
    ms_event *ev;
    ms_apply_result *res;
    submission *sub;
    unsigned long long enq_ns;
    uint64_t key;   /* qn_key of the event */
    size_t src_pos; /* ev->src_pos as submitted (1-based into sub->pos; 0 none) */
} job;

/* Which lane holds the queued events of a qualified name, and how many: an open-addressing
 * table (linear probing, backward-shift deletion) keyed by qn_key. Two names sharing a key only
 * share a lane, which costs nothing but routing freedom. */
typedef struct pin {
    uint64_t key; /* 0: free slot */
    uint32_t count;
    uint8_t lane;
} pin;

typedef struct pin_table {
    pin *slot;
    size_t cap, n; /* cap: a power of two, or 0 */
} pin_table;

/* 64-bit FNV-1a of tenant and qualified name, never 0. */
static uint64_t qn_key(const char *tenant, const char *qn)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)tenant; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull; /* separator: no byte of a string */
    for (const unsigned char *p = (const unsigned char *)qn; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h ? h : 1;
}

static pin *pin_find(const pin_table *t, uint64_t key)
{
    if (!t->cap) return NULL;
    for (size_t i = key & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        if (t->slot[i].key == key) return &t->slot[i];
        if (!t->slot[i].key) return NULL;
    }
}

/* Counts one more event for key, on lane (the key's lane when it is already there). */
static void pin_add(pin_table *t, uint64_t key, ms_lane lane)
{
    pin *p = pin_find(t, key);
    if (p) {
        p->count++;
        return;
    }
    if ((t->n + 1) * 2 > t->cap) { /* keep the load at most 1/2 */
        pin_table g = {ms_xcalloc(t->cap ? t->cap * 2 : 64, sizeof(pin)), t->cap ? t->cap * 2 : 64,
                       0};
        for (size_t i = 0; i < t->cap; i++)
            if (t->slot[i].key) {
                size_t k = t->slot[i].key & (g.cap - 1);
                while (g.slot[k].key)
                    k = (k + 1) & (g.cap - 1);
                g.slot[k] = t->slot[i];
                g.n++;
            }
        free(t->slot);
        *t = g;
    }
    size_t k = key & (t->cap - 1);
    while (t->slot[k].key)
        k = (k + 1) & (t->cap - 1);
    t->slot[k] = (pin){key, 1, (uint8_t)lane};
    t->n++;
}

/* Counts one event of key less; forgets the key at zero. */
static void pin_drop(pin_table *t, uint64_t key)
{
    pin *p = pin_find(t, key);
    if (!p || --p->count) return;
    size_t mask = t->cap - 1, hole = (size_t)(p - t->slot);
    for (size_t i = (hole + 1) & mask; t->slot[i].key; i = (i + 1) & mask) {
        size_t home = t->slot[i].key & mask;
        /* move slot i into the hole unless its home lies cyclically in (hole, i] */
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            t->slot[hole] = t->slot[i];
            hole = i;
        }
    }
    t->slot[hole] = (pin){0, 0, 0};
    t->n--;
}

static void pin_clear(pin_table *t)
{
    if (t->n) memset(t->slot, 0, t->cap * sizeof *t->slot);
    t->n = 0;
}

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

/* Commits the writer may have applied and the syncer not yet published. One fdatasync covers
 * every commit before it, so while a sync runs the commits behind it queue up and the next sync
 * makes them all durable at once: the writer waits for the disk only when MS_SLOTS are queued. */
#define MS_SLOTS 4

/* One group commit on its way from the writer to its publication (see the top of the file). */
typedef struct commit_slot {
    job *jobs;
    ms_event **evs;
    ms_apply_result *res;
    size_t n;
    ms_err rc;
    ms_error err;
    uint64_t token;              /* the store's name for the commit (deferred durability) */
    unsigned long long t0;       /* when its apply started */
    unsigned long long apply_ns; /* how long its apply took */
    bool busy;                   /* handed to the syncer and not yet published (under mu) */
} commit_slot;

struct ms_engine {
    ms_engine_args a;
    pthread_mutex_t mu;
    pthread_cond_t work; /* the writer waits for jobs */
    pthread_cond_t room; /* submitters wait for lane room */
    pthread_cond_t done; /* submitters wait for their results */
    pthread_cond_t seq;  /* long-polls and sinks wait for new changes */
    lane lanes[MS_LANE_COUNT];
    pin_table pins; /* lanes of the queued events per qualified name */
    tenant_seq *seqs;
    size_t nseqs;
    uint64_t generation;
    bool started, stopping, stopped;
    pthread_t writer;
    /* Deferred durability: the syncer thread, the MS_SLOTS slots it takes in turn, the condition
     * the writer and the syncer wait on for them, and whether a sync ever failed (then no later
     * commit is acknowledged: the store needs a restart to know what is on disk). */
    bool deferred, syncer_started, writer_done, sync_failed;
    pthread_t syncer;
    pthread_cond_t handoff;
    commit_slot slots[MS_SLOTS];
    unsigned long long sync_ns; /* how long the syncer's last sync took (under mu) */
    double ns_per_event; /* moving average of an event's cost to publication; sizes bulk slices */
    unsigned long long quiet_since; /* since when no commit took a fast event; 0: the last did
                                     * (writer only) */
    bool last_served_bulk;          /* the previous commit took bulk events (writer only) */
};

static void lane_push(lane *l, job j)
{
    if (l->count == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 1024;
        job *n = ms_xmalloc(ncap * sizeof *n);
        for (size_t i = 0; i < l->count; i++)
            n[i] = l->ring[(l->head + i) % l->cap];
        free(l->ring);
        l->ring = n;
        l->cap = ncap;
        l->head = 0;
    }
    l->ring[(l->head + l->count) % l->cap] = j;
    l->count++;
    l->bytes += j.ev->bytes;
}

/* Takes the oldest job of l. @locks_required mu */
static job lane_pop(ms_engine *e, lane *l)
{
    job j = l->ring[l->head];
    pin_drop(&e->pins, j.key);
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
    pthread_cond_init(&e->handoff, &ca);
    pthread_condattr_destroy(&ca);
    const ms_store_ops *st = args->store;
    e->deferred = st && st->version >= 6 && st->apply_deferred && st->sync;
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

/* How many bulk events the next commit may take at time now, given that it took taken_fast
 * fast events:
 * - none when it took fast events and the previous commit served the bulk lane: a fast event's
 *   own commit stays a few ms instead of a fast one plus a slice; bulk events wait at most every
 *   other commit, so a stream of fast events cannot starve them;
 * - otherwise about 20 ms of work (so a fast event waits at most that long behind the bulk lane),
 *   and once no commit has taken a fast event for 40 ms, as much work as that quiet spell has
 *   lasted less 20 ms, up to engine.max_commit_events: with no fast traffic, bulk commits grow
 *   whole (large transactions amortize the index pages a random-order load dirties), while a
 *   fast event that comes after a quiet spell waits for at most one commit about as long as that
 *   spell. The spell is measured in time, not in commits: commits that do not wait for the disk
 *   (deferred durability) come twice as often;
 * - at least 256 so that the fixed cost of a commit stays small per event.
 * @locality writer thread */
static size_t bulk_slice(const ms_engine *e, size_t taken_fast, unsigned long long now)
{
    size_t max = (size_t)e->a.cfg->engine_max_commit_events;
    if (taken_fast && e->last_served_bulk) return 0;
    double spell = e->quiet_since && now > e->quiet_since ? (double)(now - e->quiet_since) : 0;
    double ns = spell > 40e6 ? spell - 20e6 : 20e6;
    double budget_d = ns / (e->ns_per_event > 1 ? e->ns_per_event : 1);
    size_t budget = budget_d < (double)max ? (size_t)budget_d : max;
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
            case MS_APPLY_UNCHANGED:
                atomic_fetch_add(&m->events_unchanged, 1);
                break;
            case MS_APPLY_DUPLICATE:
                atomic_fetch_add(&m->events_duplicate, 1);
                break;
            case MS_APPLY_REJECTED:
                atomic_fetch_add(&m->events_rejected[j->res->code], 1);
                break;
            }
        }
        ms_hist_observe(&m->ingest_lag[evs[i]->lane], (double)(t_done - j->enq_ns) / 1e9);
        /* A rejected event of a submission that completes in a later commit holds its
         * partition's position back (the later commit stores it; see commit_positions). */
        if (j->src_pos && !evs[i]->src_pos && j->res->status == MS_APPLY_REJECTED &&
            evs[i]->src_offset < j->sub->pos[j->src_pos - 1].next)
            j->sub->pos[j->src_pos - 1].next = evs[i]->src_offset;
        j->sub->done[j->sub->ndone++] = j->ev;
        j->sub->pending--;
    }
    if (wrote) {
        e->generation++;
        pthread_cond_broadcast(&e->seq);
    }
    pthread_cond_broadcast(&e->done);
    pthread_cond_broadcast(&e->room);
}

/*
 * The source positions the commit of jobs[0..n) stores: those of every submission that this
 * commit completes (all its remaining events are in it) and that no earlier commit failed.
 * Rebases each such event's src_pos onto the returned array (*pos, grown as needed) and sets
 * src_pos 0 on the others (their submission's positions wait for a later commit). Returns how
 * many positions. @locks_required mu
 */
static size_t commit_positions(job *jobs, size_t n, ms_srcpos **pos, size_t *cap)
{
    for (size_t i = 0; i < n; i++)
        jobs[i].sub->taking = 0;
    for (size_t i = 0; i < n; i++)
        jobs[i].sub->taking++;
    size_t npos = 0;
    for (size_t i = 0; i < n; i++) {
        submission *sub = jobs[i].sub;
        bool completes = sub->taking == sub->queued && sub->npos && sub->failure == MS_OK;
        if (completes && sub->taking != SIZE_MAX) {
            sub->taking = SIZE_MAX; /* its positions are taken once */
            if (npos + sub->npos > *cap) {
                *cap = (npos + sub->npos) * 2;
                *pos = ms_xrealloc(*pos, *cap * sizeof **pos);
            }
            memcpy(*pos + npos, sub->pos, sub->npos * sizeof **pos);
            sub->pos_base = npos;
            npos += sub->npos;
        }
        bool stored = sub->taking == SIZE_MAX;
        jobs[i].ev->src_pos = stored && jobs[i].src_pos ? sub->pos_base + jobs[i].src_pos : 0;
    }
    for (size_t i = 0; i < n; i++)
        jobs[i].sub->queued--;
    return npos;
}

/* Marks the submissions of a failed commit as failed at once, so that the commits prepared
 * after it do not store their source positions. @locks_required mu */
static void fail_subs(commit_slot *cs, ms_err rc)
{
    for (size_t i = 0; i < cs->n; i++) {
        cs->jobs[i].sub->failure = rc;
        snprintf(cs->jobs[i].sub->detail, sizeof cs->jobs[i].sub->detail, "%.190s", cs->err.detail);
    }
}

/* Publishes commit cs, whose outcome (applied and, if deferred, synced) is rc: results to their
 * submitters, the commit latency. @locks_required mu */
static void finish(ms_engine *e, commit_slot *cs, ms_err rc)
{
    if (rc != MS_OK) fail_subs(cs, rc);
    for (size_t i = 0; i < cs->n; i++)
        *cs->jobs[i].res = cs->res[i];
    unsigned long long t = ms_now_ns();
    ms_hist_observe(&e->a.metrics->commit_seconds, (double)(t - cs->t0) / 1e9);
    /* What an event costs until it can be published, apply and sync, sizes the bulk slices: a
     * fast event waits for the bulk slice being applied and for its sync. */
    double ns = (double)(cs->apply_ns + (e->deferred ? e->sync_ns : 0)) / (double)cs->n;
    e->ns_per_event = 0.8 * e->ns_per_event + 0.2 * ns;
    publish(e, cs->jobs, cs->n, cs->evs, rc, &cs->err, t);
}

/* The syncer (deferred durability): takes the slots in turn, waits for the store to make each
 * commit durable (a sync that began after a commit covers it: the store answers the others at
 * once), publishes it and gives the slot back to the writer. */
static void *syncer_main(void *arg)
{
    ms_engine *e = arg;
    unsigned k = 0;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        commit_slot *cs = &e->slots[k];
        while (!cs->busy && !e->writer_done)
            pthread_cond_wait(&e->handoff, &e->mu);
        if (!cs->busy) break; /* the writer has stopped and everything is published */
        bool failed_before = e->sync_failed;
        pthread_mutex_unlock(&e->mu);
        ms_err rc = cs->rc;
        unsigned long long s0 = ms_now_ns(), took = 0;
        if (rc == MS_OK && failed_before) {
            rc = ms_error_set(&cs->err, MS_ERR_STORE,
                              "an earlier sync of the store failed: restart MetaSync");
        } else if (rc == MS_OK) {
            rc = e->a.store->sync(e->a.store_ctx, cs->token, &cs->err);
            took = ms_now_ns() - s0;
            if (rc != MS_OK)
                ms_log_error(e->a.log,
                             "engine: the store could not make a commit durable: %s; no later "
                             "commit will be acknowledged until MetaSync restarts",
                             cs->err.detail);
        }
        pthread_mutex_lock(&e->mu);
        if (took > 100000) e->sync_ns = took; /* a real sync, not one already covered */
        if (rc != MS_OK && cs->rc == MS_OK) e->sync_failed = true;
        finish(e, cs, rc);
        cs->busy = false;
        pthread_cond_broadcast(&e->handoff);
        k = (k + 1) % MS_SLOTS;
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

static void *writer_main(void *arg)
{
    ms_engine *e = arg;
    size_t max = (size_t)e->a.cfg->engine_max_commit_events;
    for (int k = 0; k < (e->deferred ? MS_SLOTS : 1); k++) { /* without a syncer: one */
        e->slots[k].jobs = ms_xmalloc(max * sizeof *e->slots[k].jobs);
        e->slots[k].evs = ms_xmalloc(max * sizeof *e->slots[k].evs);
        e->slots[k].res = ms_xmalloc(max * sizeof *e->slots[k].res);
    }
    ms_srcpos *pos = NULL;
    size_t pos_cap = 0;
    unsigned k = 0;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        commit_slot *cs = &e->slots[k];
        while (cs->busy)
            pthread_cond_wait(&e->handoff, &e->mu); /* the syncer still has it */
        lane *fast = &e->lanes[MS_LANE_FAST], *bulk = &e->lanes[MS_LANE_BULK];
        while (!fast->count && !bulk->count && !e->stopping)
            pthread_cond_wait(&e->work, &e->mu);
        if (!fast->count && !bulk->count) break; /* stopping and drained */
        job *jobs = cs->jobs;
        size_t n = 0;
        while (fast->count && n < max)
            jobs[n++] = lane_pop(e, fast);
        unsigned long long now_ns = ms_now_ns();
        if (n)
            e->quiet_since = 0;
        else if (!e->quiet_since)
            e->quiet_since = now_ns;
        size_t nb = bulk_slice(e, n, now_ns), nf = n;
        while (bulk->count && nb--)
            jobs[n++] = lane_pop(e, bulk);
        e->last_served_bulk = n > nf;
        size_t npos = commit_positions(jobs, n, &pos, &pos_cap);
        pthread_cond_broadcast(&e->room);
        pthread_mutex_unlock(&e->mu);

        for (size_t i = 0; i < n; i++)
            cs->evs[i] = jobs[i].ev;
        memset(cs->res, 0, n * sizeof *cs->res);
        char now[40];
        ms_time_rfc3339(now, sizeof now);
        ms_error_clear(&cs->err);
        const ms_store_ops *st = e->a.store;
        unsigned long long t0 = ms_now_ns();
        ms_err rc;
        if (e->deferred)
            rc = st->apply_deferred(e->a.store_ctx, cs->evs, n, now, pos, npos, cs->res, &cs->token,
                                    &cs->err);
        else if (npos && st->version >= 5 && st->apply_at)
            rc = st->apply_at(e->a.store_ctx, cs->evs, n, now, pos, npos, cs->res, &cs->err);
        else
            rc = st->apply(e->a.store_ctx, cs->evs, n, now, cs->res, &cs->err);
        unsigned long long t_applied = ms_now_ns();
        if (rc != MS_OK)
            ms_log_error(e->a.log, "engine: commit of %zu events failed: %s: %s", n,
                         ms_err_code(rc), cs->err.detail);
        atomic_fetch_add(&e->a.metrics->commits, 1);

        /* Once published, the events are their submitters' again, which free them on their
         * own threads (off the writer's core, and where they were allocated). */
        pthread_mutex_lock(&e->mu);
        cs->n = n;
        cs->rc = rc;
        cs->t0 = t0;
        cs->apply_ns = t_applied - t0;
        if (rc != MS_OK) fail_subs(cs, rc);
        if (e->deferred) {
            cs->busy = true;
            pthread_cond_broadcast(&e->handoff);
            k = (k + 1) % MS_SLOTS;
        } else {
            finish(e, cs, rc);
        }
    }
    for (int i = 0; i < MS_SLOTS; i++)
        while (e->slots[i].busy)
            pthread_cond_wait(&e->handoff, &e->mu);
    e->writer_done = true;
    e->stopped = true;
    pthread_cond_broadcast(&e->handoff);
    pthread_cond_broadcast(&e->done);
    pthread_cond_broadcast(&e->room);
    pthread_cond_broadcast(&e->seq);
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < MS_SLOTS; i++) {
        free(e->slots[i].jobs);
        free(e->slots[i].evs);
        free(e->slots[i].res);
    }
    free(pos);
    return NULL;
}

ms_err ms_engine_start(ms_engine *e, ms_error *err)
{
    if (e->deferred) {
        if (pthread_create(&e->syncer, NULL, syncer_main, e) != 0)
            return ms_error_set(err, MS_ERR_INTERNAL, "cannot start the syncer thread");
        e->syncer_started = true;
    }
    if (pthread_create(&e->writer, NULL, writer_main, e) != 0) {
        pthread_mutex_lock(&e->mu);
        e->writer_done = true;
        pthread_cond_broadcast(&e->handoff);
        pthread_mutex_unlock(&e->mu);
        if (e->syncer_started) pthread_join(e->syncer, NULL);
        e->syncer_started = false;
        return ms_error_set(err, MS_ERR_INTERNAL, "cannot start the writer thread");
    }
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
    if (!was && e->syncer_started) pthread_join(e->syncer, NULL);
}

void ms_engine_free(ms_engine *e)
{
    if (!e) return;
    ms_engine_stop(e);
    for (int l = 0; l < MS_LANE_COUNT; l++)
        free(e->lanes[l].ring);
    free(e->pins.slot);
    for (size_t i = 0; i < e->nseqs; i++)
        free(e->seqs[i].tenant);
    free(e->seqs);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->work);
    pthread_cond_destroy(&e->room);
    pthread_cond_destroy(&e->done);
    pthread_cond_destroy(&e->seq);
    pthread_cond_destroy(&e->handoff);
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

/* The lane of each event by itself (own[i]): its type's lane, or for an event whose type is
 * absent the lane of its asset's stored type (fast when unknown). An event that follows an
 * earlier one of the batch for the same name is pinned later anyway: no store lookup for it. */
static void route_own(ms_engine *e, ms_event **evs, const uint64_t *keys, size_t n, ms_lane *own)
{
    pin_table seen = {0};
    for (size_t i = 0; i < n; i++) {
        ms_event *ev = evs[i];
        if (!ev) continue;
        own[i] = ev->lane;
        bool follows = pin_find(&seen, keys[i]) != NULL;
        if (!follows) pin_add(&seen, keys[i], ev->lane);
        if (ev->lane_known || follows) continue;
        own[i] = MS_LANE_FAST;
        char type[128];
        const ms_type *t = NULL;
        if (e->a.store->asset_type(e->a.store_ctx, ev->tenant, ev->qn, type, sizeof type, NULL) ==
                MS_OK &&
            e->a.types)
            t = ms_types_get(e->a.types, ev->tenant, type);
        if (t) own[i] = t->lane;
    }
    free(seen.slot);
}

/* Sets each event's lane so that the events for one qualified name keep their arrival order:
 * the lane where events for it are queued, else that of its first event in the batch, else its
 * own; sums the bytes each lane must take. @locks_required mu */
static void route_pinned(ms_engine *e, ms_event **evs, const uint64_t *keys, const ms_lane *own,
                         size_t n, pin_table *batch, size_t need[MS_LANE_COUNT])
{
    pin_clear(batch);
    need[MS_LANE_FAST] = need[MS_LANE_BULK] = 0;
    for (size_t i = 0; i < n; i++) {
        if (!evs[i]) continue;
        const pin *p = pin_find(batch, keys[i]);
        if (!p) p = pin_find(&e->pins, keys[i]);
        ms_lane l = p ? (ms_lane)p->lane : own[i];
        pin_add(batch, keys[i], l);
        evs[i]->lane = l;
        need[l] += evs[i]->bytes;
    }
}

ms_err ms_engine_submit(ms_engine *e, ms_event **evs, size_t n, ms_apply_result *res, ms_error *err)
{
    return ms_engine_submit_at(e, evs, n, NULL, 0, res, err);
}

/* Lowers pos[ev->src_pos - 1].next to the offset of ev, refused before the store. */
static void hold_position(ms_srcpos *pos, size_t npos, const ms_event *ev)
{
    if (ev->src_pos && ev->src_pos <= npos && ev->src_offset < pos[ev->src_pos - 1].next)
        pos[ev->src_pos - 1].next = ev->src_offset;
}

ms_err ms_engine_submit_at(ms_engine *e, ms_event **evs, size_t n, const ms_srcpos *pos,
                           size_t npos, ms_apply_result *res, ms_error *err)
{
    ms_engine_ticket *t = NULL;
    ms_err rc = ms_engine_submit_async(e, evs, n, pos, npos, res, &t, err);
    return rc == MS_OK ? ms_engine_wait(e, t, err) : rc;
}

ms_err ms_engine_wait(ms_engine *e, ms_engine_ticket *t, ms_error *err)
{
    if (!t) return MS_OK;
    submission *sub = (submission *)t;
    /* Free each commit's events as it is published, here rather than on the writer's core (and
     * in the thread that allocated them): done[] only grows, and the writer no longer touches
     * what it has published. */
    size_t freed = 0;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        size_t upto = sub->ndone;
        if (upto > freed) {
            pthread_mutex_unlock(&e->mu);
            for (; freed < upto; freed++)
                ms_event_free(sub->done[freed]);
            pthread_mutex_lock(&e->mu);
            continue;
        }
        if (!sub->pending) break;
        pthread_cond_wait(&e->done, &e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    ms_err rc = sub->failure;
    if (rc != MS_OK) ms_error_set(err, rc, "%s", sub->detail);
    free(sub->done);
    free(sub->pos);
    free(sub);
    return rc;
}

ms_err ms_engine_submit_async(ms_engine *e, ms_event **evs, size_t n, const ms_srcpos *pos,
                              size_t npos, ms_apply_result *res, ms_engine_ticket **ticket,
                              ms_error *err)
{
    *ticket = NULL;
    atomic_fetch_add(&e->a.metrics->events_received, n);
    ms_srcpos *mine = NULL;
    if (npos) {
        mine = ms_xmalloc(npos * sizeof *mine);
        memcpy(mine, pos, npos * sizeof *mine);
    }
    ms_hist_observe(&e->a.metrics->batch_size, (double)n);
    size_t need[MS_LANE_COUNT] = {0, 0};
    size_t live = 0;
    for (size_t i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof res[i]);
        if (evs[i]->src_pos > npos) evs[i]->src_pos = 0;
        if (!run_transforms(e, evs[i], &res[i])) {
            atomic_fetch_add(&e->a.metrics->events_rejected[res[i].code], 1);
            if (mine) hold_position(mine, npos, evs[i]);
            ms_event_free(evs[i]);
            evs[i] = NULL;
        } else {
            live++;
        }
    }
    if (!live) {
        free(mine); /* nothing to commit: the positions are not stored (docs/kafka.md) */
        return MS_OK;
    }
    uint64_t *keys = ms_xmalloc(n * sizeof *keys);
    ms_lane *own = ms_xmalloc(n * sizeof *own);
    for (size_t i = 0; i < n; i++)
        keys[i] = evs[i] ? qn_key(evs[i]->tenant, evs[i]->qn) : 0;
    route_own(e, evs, keys, n, own);
    pin_table batch = {0};

    submission *sub = ms_xcalloc(1, sizeof *sub);
    *sub =
        (submission){.pending = live, .queued = live, .failure = MS_OK, .pos = mine, .npos = npos};
    struct timespec dl = deadline_in((unsigned)e->a.cfg->engine_enqueue_timeout_ms);
    ms_err refused = MS_OK;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        if (e->stopping) {
            refused = ms_error_set(err, MS_ERR_UNAVAILABLE, "the engine is shutting down");
            break;
        }
        /* Again after each wait: what is queued, and so the pins, may have changed. */
        route_pinned(e, evs, keys, own, n, &batch, need);
        bool fits = true;
        for (int l = 0; l < MS_LANE_COUNT; l++) {
            lane *q = &e->lanes[l];
            if (need[l] && q->count && q->bytes + need[l] > q->max_bytes) fits = false;
        }
        if (fits) break;
        if (pthread_cond_timedwait(&e->room, &e->mu, &dl) != 0) {
            refused = ms_error_set(err, MS_ERR_OVERLOADED,
                                   "the ingest lanes are full; retry after a short pause");
            break;
        }
    }
    free(batch.slot);
    free(own);
    if (refused != MS_OK) {
        pthread_mutex_unlock(&e->mu);
        free(keys);
        free(mine);
        free(sub);
        atomic_fetch_add(&e->a.metrics->events_overloaded, live);
        return refused;
    }
    unsigned long long now = ms_now_ns();
    sub->done = ms_xmalloc(live * sizeof *sub->done);
    for (size_t i = 0; i < n; i++) {
        if (!evs[i]) continue;
        pin_add(&e->pins, keys[i], evs[i]->lane);
        lane_push(&e->lanes[evs[i]->lane], (job){.ev = evs[i],
                                                 .res = &res[i],
                                                 .sub = sub,
                                                 .enq_ns = now,
                                                 .key = keys[i],
                                                 .src_pos = evs[i]->src_pos});
        evs[i] = NULL;
    }
    free(keys);
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->mu);
    *ticket = (ms_engine_ticket *)sub;
    return MS_OK;
}

uint64_t ms_engine_last_seq(ms_engine *e, const char *tenant)
{
    /* Other workers on the same store write too: the store, not this writer, knows the last. */
    uint64_t stored = 0;
    if (e->a.store->last_seq(e->a.store_ctx, tenant, &stored, NULL) != MS_OK) stored = 0;
    pthread_mutex_lock(&e->mu);
    tenant_seq *t = seq_slot(e, tenant, true);
    if (stored > t->seq) t->seq = stored;
    uint64_t s = t->seq;
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

void ms_engine_notify_seq(ms_engine *e, const char *tenant, uint64_t seq)
{
    pthread_mutex_lock(&e->mu);
    tenant_seq *t = tenant ? seq_slot(e, tenant, false) : NULL;
    /* A slot exists for every tenant a long-poll waits on; sink runners follow `generation`. */
    bool news = !t || seq > t->seq;
    if (t && seq > t->seq) t->seq = seq;
    if (news) {
        e->generation++;
        pthread_cond_broadcast(&e->seq);
    }
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
    ms_metrics_header(out, "metasync_lane_queue_bytes", "gauge",
                      "Memory held by the queued events per lane (decoded size).");
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
