/*
 * test_engine.c — unit tests of the engine (ms_engine) over the SQLite store: one result per
 * submitted event, the fast lane overtaking a queued bulk backlog, routing of untyped events
 * (to the lane of an earlier event for the same asset in the batch, or of the stored asset),
 * backpressure (a batch larger than a lane enters an empty lane; a full lane answers
 * MS_ERR_OVERLOADED and enqueues nothing), MS_ERR_UNAVAILABLE after stop, the commit of queued
 * work at stop, ms_engine_wait_seq (true on a commit, false on timeout), store failures
 * (MS_ERR_STORE, safe retry), transforms that drop events, the engine's counters, and
 * asynchronous submissions with source positions (stored with a batch's last commit only, not
 * after a failed one). The engine publishes through its syncer thread (the store's deferred
 * durability); a few tests run again with a real fdatasync per commit (synchronous=full) and
 * with a store without deferred durability, where the writer publishes each commit itself; a
 * failed sync fails its commit and every later one until a restart.
 *
 * Ordering is made deterministic with a "gated" store: the real store behind a wrapper whose
 * apply() can be held closed, so the writer thread is provably busy while the test queues work;
 * lane contents are read from ms_engine_metrics_render. Nothing sleeps a fixed time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ms_config.h"
#include "ms_engine.h"
#include "ms_event.h"
#include "ms_metrics.h"
#include "ms_store.h"
#include "ms_types.h"

#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "ms_test_dir.h"
#include "ms_test_poll.h"

extern const ms_store_ops ms_store_sqlite;

/* ---- the gated store --------------------------------------------------------------------------
 */

static struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool closed;
    int entered;   /* apply() calls that started */
    int fail_next; /* apply() calls to fail with MS_ERR_STORE */
    int limit;     /* apply() calls after this many wait (while it is not raised) */
    int sync_fail; /* sync() calls to fail with MS_ERR_STORE */
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, 0, INT_MAX, 0};

/* The gate of apply() and apply_at(): false when this call is to fail. */
static bool gate_pass(void)
{
    pthread_mutex_lock(&gate.mu);
    int me = ++gate.entered;
    pthread_cond_broadcast(&gate.cv);
    while (gate.closed || me > gate.limit)
        pthread_cond_wait(&gate.cv, &gate.mu);
    bool fail = gate.fail_next > 0;
    if (fail) gate.fail_next--;
    pthread_mutex_unlock(&gate.mu);
    return !fail;
}

static ms_err gated_apply(void *ctx, ms_event *const *evs, size_t n, const char *now_ts,
                          ms_apply_result *res, ms_error *err)
{
    if (!gate_pass()) return ms_error_set(err, MS_ERR_STORE, "injected store failure");
    return ms_store_sqlite.apply(ctx, evs, n, now_ts, res, err);
}

static ms_err gated_apply_at(void *ctx, ms_event *const *evs, size_t n, const char *now_ts,
                             const ms_srcpos *pos, size_t npos, ms_apply_result *res, ms_error *err)
{
    if (!gate_pass()) return ms_error_set(err, MS_ERR_STORE, "injected store failure");
    return ms_store_sqlite.apply_at(ctx, evs, n, now_ts, pos, npos, res, err);
}

static ms_err gated_apply_deferred(void *ctx, ms_event *const *evs, size_t n, const char *now_ts,
                                   const ms_srcpos *pos, size_t npos, ms_apply_result *res,
                                   uint64_t *token, ms_error *err)
{
    if (!gate_pass()) return ms_error_set(err, MS_ERR_STORE, "injected store failure");
    return ms_store_sqlite.apply_deferred(ctx, evs, n, now_ts, pos, npos, res, token, err);
}

/* The store's sync, failing when the test asks (a disk that reports a write error). */
static ms_err gated_sync(void *ctx, uint64_t token, ms_error *err)
{
    pthread_mutex_lock(&gate.mu);
    bool fail = gate.sync_fail > 0;
    if (fail) gate.sync_fail--;
    pthread_mutex_unlock(&gate.mu);
    if (fail) return ms_error_set(err, MS_ERR_STORE, "injected sync failure");
    return ms_store_sqlite.sync(ctx, token, err);
}

static ms_store_ops gated_ops;

static void gate_close(void)
{
    pthread_mutex_lock(&gate.mu);
    gate.closed = true;
    pthread_mutex_unlock(&gate.mu);
}

static void gate_open(void)
{
    pthread_mutex_lock(&gate.mu);
    gate.closed = false;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
}

/* Waits (bounded) until apply() has been entered at least n times. */
static void gate_wait_entered(int n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 20;
    pthread_mutex_lock(&gate.mu);
    while (gate.entered < n)
        if (pthread_cond_timedwait(&gate.cv, &gate.mu, &dl) != 0) break;
    int got = gate.entered;
    pthread_mutex_unlock(&gate.mu);
    assert_true(got >= n);
}

/* ---- fixture ----------------------------------------------------------------------------------
 */

typedef struct fixture {
    char dir[512];
    ms_config cfg;
    ms_types *types;
    void *store;
    ms_metrics metrics;
    ms_engine *e;
    const ms_transform *transforms;
    size_t ntransforms;
} fixture;

/* The fixture over a store at synchronous mode sync; deferred: whether the engine sees the
 * store's deferred durability (its syncer thread publishes) or not (the writer publishes). */
static int setup_with(void **state, const char *sync, bool deferred)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    if (ms_test_mkdtemp(f->dir, sizeof f->dir, "engine") != 0) return -1;
    ms_config_defaults(&f->cfg);
    ms_error err;
    if (ms_config_set(&f->cfg, "data_dir", f->dir, "test", &err) != MS_OK) return -1;
    if (ms_config_set(&f->cfg, "store.synchronous", sync, "test", &err) != MS_OK) return -1;
    f->types = ms_types_new();
    ms_store_open_args a = {.cfg = &f->cfg, .url = "sqlite", .types = f->types};
    if (ms_store_sqlite.open(&a, &f->store, &err) != MS_OK) return -1;
    ms_metrics_init(&f->metrics);
    gated_ops = ms_store_sqlite;
    gated_ops.apply = gated_apply;
    gated_ops.apply_at = gated_apply_at;
    gated_ops.apply_deferred = deferred ? gated_apply_deferred : NULL;
    gated_ops.sync = gated_sync;
    pthread_mutex_lock(&gate.mu);
    gate.limit = INT_MAX;
    gate.closed = false;
    gate.entered = 0;
    gate.fail_next = 0;
    gate.sync_fail = 0;
    pthread_mutex_unlock(&gate.mu);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, "normal", true);
}

/* Every commit waits for a real fdatasync before it is published. */
static int setup_full_sync(void **state)
{
    return setup_with(state, "full", true);
}

/* A store without deferred durability (as PostgreSQL): the writer publishes each commit. */
static int setup_direct(void **state)
{
    return setup_with(state, "normal", false);
}

/* Creates and starts the engine (after the test has adjusted f->cfg). */
static void engine_start(fixture *f)
{
    ms_engine_args a = {.cfg = &f->cfg,
                        .log = NULL,
                        .metrics = &f->metrics,
                        .store = &gated_ops,
                        .store_ctx = f->store,
                        .transforms = f->transforms,
                        .ntransforms = f->ntransforms,
                        .types = f->types};
    f->e = ms_engine_new(&a);
    assert_non_null(f->e);
    ms_error err;
    assert_int_equal(ms_engine_start(f->e, &err), MS_OK);
    assert_true(ms_engine_running(f->e));
}

static int teardown(void **state)
{
    fixture *f = *state;
    gate_open();
    if (f->e) ms_engine_free(f->e);
    ms_store_sqlite.close(f->store);
    ms_types_free(f->types);
    ms_config_free(&f->cfg);
    ms_test_rmtree(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ----------------------------------------------------------------------------------
 */

static ms_event *decode(fixture *f, const char *json)
{
    ms_decode_opts o = {.tenant = "default", .types = f->types};
    ms_event *ev = NULL;
    ms_error err;
    ms_err rc = ms_event_decode(json, strlen(json), &o, &ev, &err);
    if (rc != MS_OK) print_error("decode %s: %s\n", json, err.detail);
    assert_int_equal(rc, MS_OK);
    return ev;
}

/* A batch of events and their results, submitted (maybe from another thread). */
typedef struct sub {
    fixture *f;
    ms_event **evs;
    ms_apply_result *res;
    size_t n;
    ms_err rc;
    ms_error err;
    pthread_t th;
} sub;

static sub *sub_new(fixture *f, size_t n)
{
    sub *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->f = f;
    s->n = n;
    s->evs = calloc(n, sizeof *s->evs);
    s->res = calloc(n, sizeof *s->res);
    assert_true(s->evs && s->res);
    return s;
}

/* A submission of the n events jsons[0..n), decoded. */
static sub *sub_of(fixture *f, const char *const *jsons, size_t n)
{
    sub *s = sub_new(f, n);
    for (size_t i = 0; i < n; i++)
        s->evs[i] = decode(f, jsons[i]);
    return s;
}

static void sub_free(sub *s)
{
    for (size_t i = 0; i < s->n; i++)
        ms_event_free(s->evs[i]);
    free(s->evs);
    free(s->res);
    free(s);
}

/* n column events pg/db/s/<table>/c<i>. */
static sub *columns(fixture *f, const char *table, size_t n)
{
    sub *s = sub_new(f, n);
    for (size_t i = 0; i < n; i++) {
        char j[300];
        snprintf(j, sizeof j,
                 "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/db/s/%s/c%zu\","
                 "\"attributes\":{\"data_type\":\"varchar(%zu)\"}}",
                 table, i, i + 1);
        s->evs[i] = decode(f, j);
    }
    return s;
}

static sub *one(fixture *f, const char *json)
{
    sub *s = sub_new(f, 1);
    s->evs[0] = decode(f, json);
    return s;
}

static void *submit_main(void *arg)
{
    sub *s = arg;
    ms_error_clear(&s->err);
    s->rc = ms_engine_submit(s->f->e, s->evs, s->n, s->res, &s->err);
    return NULL;
}

static void submit_async(sub *s)
{
    assert_int_equal(pthread_create(&s->th, NULL, submit_main, s), 0);
}

static void submit_join(sub *s)
{
    assert_int_equal(pthread_join(s->th, NULL), 0);
}

static ms_err submit_sync(sub *s)
{
    submit_main(s);
    return s->rc;
}

/* Reads one sample (exact "name{labels}" prefix) from the engine's metrics; -1 if absent. */
static double engine_metric(fixture *f, const char *sample)
{
    ms_buf b = MS_BUF_INIT;
    ms_engine_metrics_render(f->e, &b);
    double v = -1;
    size_t n = strlen(sample);
    for (const char *p = b.data; p && *p;) {
        if (strncmp(p, sample, n) == 0 && p[n] == ' ') {
            v = strtod(p + n + 1, NULL);
            break;
        }
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : NULL;
    }
    ms_buf_free(&b);
    return v;
}

#define FAST_EVENTS "metasync_lane_queue_events{lane=\"fast\"}"
#define BULK_EVENTS "metasync_lane_queue_events{lane=\"bulk\"}"
#define BULK_BYTES  "metasync_lane_queue_bytes{lane=\"bulk\"}"

/* Waits (bounded, polling) until the sample equals want. */
static void wait_metric(fixture *f, const char *sample, double want)
{
    double v = -1;
    for (int i = 0; i < 20000; i++) {
        v = engine_metric(f, sample);
        if (v == want) return;
        ms_test_poll_pause(1); /* every ms, bounded to ~20 s */
    }
    print_error("%s is %g, want %g\n", sample, v, want);
    fail();
}

static uint64_t max_seq(const sub *s)
{
    uint64_t m = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->res[i].seq_last > m) m = s->res[i].seq_last;
    return m;
}

static void assert_all_applied(const sub *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->res[i].status != MS_APPLY_APPLIED)
            print_error("event %zu: status %d %s %s\n", i, s->res[i].status,
                        ms_err_code(s->res[i].code), s->res[i].detail);
        assert_int_equal(s->res[i].status, MS_APPLY_APPLIED);
    }
}

/* ---- tests ------------------------------------------------------------------------------------
 */

/* Every event gets its own outcome; counters follow. */
static void test_submit_results(void **state)
{
    fixture *f = *state;
    engine_start(f);
    sub *s = sub_new(f, 6);
    s->evs[0] = decode(
        f, "{\"id\":\"1\",\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg\"}");
    s->evs[1] = decode(
        f, "{\"id\":\"1\",\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg\"}");
    s->evs[2] = decode(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg\"}");
    s->evs[3] =
        decode(f, "{\"op\":\"patch\",\"qualified_name\":\"nope\",\"attributes\":{\"a\":1}}");
    s->evs[4] = decode(
        f,
        "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg\",\"if_version\":5}");
    s->evs[5] = decode(f, "{\"op\":\"tag\",\"qualified_name\":\"pg\",\"tag\":\"gold\"}");
    assert_int_equal(submit_sync(s), MS_OK);
    for (size_t i = 0; i < s->n; i++)
        assert_null(s->evs[i]); /* ownership taken */
    assert_int_equal(s->res[0].status, MS_APPLY_APPLIED);
    assert_int_equal(s->res[1].status, MS_APPLY_DUPLICATE);
    assert_int_equal(s->res[2].status, MS_APPLY_UNCHANGED);
    assert_int_equal(s->res[3].status, MS_APPLY_REJECTED);
    assert_int_equal(s->res[3].code, MS_ERR_NOT_FOUND);
    assert_int_equal(s->res[4].status, MS_APPLY_REJECTED);
    assert_int_equal(s->res[4].code, MS_ERR_VERSION_CONFLICT);
    assert_int_equal(s->res[5].status, MS_APPLY_APPLIED);
    assert_true(s->res[5].seq_first > s->res[0].seq_last);
    assert_int_equal(ms_engine_last_seq(f->e, "default"), 2);
    assert_int_equal(ms_engine_last_seq(f->e, "other"), 0);
    sub_free(s);

    assert_int_equal(atomic_load(&f->metrics.events_received), 6);
    assert_int_equal(atomic_load(&f->metrics.events_applied), 2);
    assert_int_equal(atomic_load(&f->metrics.events_duplicate), 1);
    assert_int_equal(atomic_load(&f->metrics.events_unchanged), 1);
    assert_int_equal(atomic_load(&f->metrics.events_rejected[MS_ERR_NOT_FOUND]), 1);
    assert_int_equal(atomic_load(&f->metrics.events_rejected[MS_ERR_VERSION_CONFLICT]), 1);
    assert_int_equal(atomic_load(&f->metrics.changes_written), 2);
    assert_true(atomic_load(&f->metrics.commits) >= 1);
    assert_int_equal(engine_metric(f, "metasync_change_seq{tenant=\"default\"}"), 2);

    /* an empty submission is fine */
    ms_error err;
    assert_int_equal(ms_engine_submit(f->e, NULL, 0, NULL, &err), MS_OK);
}

/* wait_seq: false on timeout while the commit is held, true once it lands. */
static void test_wait_seq(void **state)
{
    fixture *f = *state;
    engine_start(f);
    uint64_t gen = ms_engine_generation(f->e);
    gate_close();
    sub *s = one(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg\"}");
    submit_async(s);
    gate_wait_entered(1);
    assert_int_equal(ms_engine_last_seq(f->e, "default"), 0);
    assert_false(ms_engine_wait_seq(f->e, "default", 0, 30));
    assert_int_equal(ms_engine_generation(f->e), gen);
    gate_open();
    assert_true(ms_engine_wait_seq(f->e, "default", 0, 20000));
    assert_int_equal(ms_engine_last_seq(f->e, "default"), 1);
    assert_true(ms_engine_generation(f->e) != gen);
    submit_join(s);
    assert_int_equal(s->rc, MS_OK);
    sub_free(s);
    /* nothing after 1 yet: times out; another tenant is unaffected */
    assert_false(ms_engine_wait_seq(f->e, "default", 1, 20));
    assert_true(ms_engine_wait_seq(f->e, "default", 0, 0));
    assert_false(ms_engine_wait_seq(f->e, "acme", 0, 10));
    /* a waiter on a stopped engine returns at once */
    ms_engine_stop(f->e);
    assert_false(ms_engine_wait_seq(f->e, "default", 1, 60000));
}

typedef struct waiter {
    ms_engine *e;
    pthread_t t;
    bool more;
} waiter;

static void *wait_main(void *arg)
{
    waiter *w = arg;
    w->more = ms_engine_wait_seq(w->e, "default", 0, 60000);
    return NULL;
}

/* Another worker's commit, as the store's watch reports it: wakes a long-poll of the tenant with
 * the new seq, and bumps the generation (sink runners) when it is news; a repeat of a known seq
 * changes nothing; "anything may have changed" (NULL) and an unknown tenant wake everyone. */
static void test_notify_seq(void **state)
{
    fixture *f = *state;
    engine_start(f);
    assert_false(ms_engine_wait_seq(f->e, "default", 0, 0));
    waiter w = {.e = f->e};
    assert_int_equal(pthread_create(&w.t, NULL, wait_main, &w), 0);
    uint64_t gen = ms_engine_generation(f->e);
    ms_engine_notify_seq(f->e, "default", 5);
    pthread_join(w.t, NULL);
    assert_true(w.more);
    assert_int_equal(ms_engine_last_seq(f->e, "default"), 5);
    assert_true(ms_engine_generation(f->e) != gen);
    gen = ms_engine_generation(f->e);
    ms_engine_notify_seq(f->e, "default", 5);
    assert_int_equal(ms_engine_generation(f->e), gen);
    ms_engine_notify_seq(f->e, NULL, 0);
    assert_true(ms_engine_generation(f->e) != gen);
    gen = ms_engine_generation(f->e);
    ms_engine_notify_seq(f->e, "acme", 3);
    assert_true(ms_engine_generation(f->e) != gen);
}

/* A fast event submitted while a big bulk backlog is queued commits before the backlog ends. */
static void test_fast_overtakes_bulk(void **state)
{
    fixture *f = *state;
    ms_error err;
    assert_int_equal(ms_config_set(&f->cfg, "engine.max_commit_events", "64", "test", &err), MS_OK);
    engine_start(f);
    gate_close();
    sub *bulk = columns(f, "t", 3000);
    submit_async(bulk);
    gate_wait_entered(1); /* the writer took a first slice and is busy; the rest is queued */
    double queued = engine_metric(f, BULK_EVENTS);
    assert_true(queued >= 3000 - 64);
    sub *fast =
        one(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"fastconn\"}");
    submit_async(fast);
    wait_metric(f, FAST_EVENTS, 1);
    gate_open();
    submit_join(fast);
    assert_int_equal(fast->rc, MS_OK);
    assert_all_applied(fast);
    /* the fast submission is done; most of the backlog is still to come */
    uint64_t fast_seq = fast->res[0].seq_last;
    submit_join(bulk);
    assert_int_equal(bulk->rc, MS_OK);
    assert_all_applied(bulk);
    uint64_t later = 0;
    for (size_t i = 0; i < bulk->n; i++)
        later += bulk->res[i].seq_last > fast_seq;
    print_message("fast event seq %llu; %llu bulk events committed after it\n",
                  (unsigned long long)fast_seq, (unsigned long long)later);
    assert_true(fast_seq <= 64 + 1); /* at most one commit behind */
    assert_true(later >= 3000 - 2 * 64);
    assert_true(fast_seq < max_seq(bulk));
    assert_int_equal(max_seq(bulk), 3001);
    sub_free(fast);
    sub_free(bulk);
}

/* An untyped event goes to the lane of an earlier event for the same asset in its batch. */
static void test_untyped_follows_batch(void **state)
{
    fixture *f = *state;
    engine_start(f);
    sub *s = sub_new(f, 5);
    s->evs[0] =
        decode(f, "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/db/s/t/c\","
                  "\"attributes\":{\"data_type\":\"int\"}}");
    s->evs[1] = decode(f, "{\"op\":\"tag\",\"qualified_name\":\"pg/db/s/t/c\",\"tag\":\"PII\"}");
    s->evs[2] = decode(f, "{\"op\":\"patch\",\"qualified_name\":\"pg/db/s/t/c\","
                          "\"attributes\":{\"nullable\":true}}");
    s->evs[3] = decode(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg\"}");
    s->evs[4] = decode(f, "{\"op\":\"untag\",\"qualified_name\":\"pg/db/s/t/c\",\"tag\":\"PII\"}");
    assert_int_equal(submit_sync(s), MS_OK);
    /* if the tag, patch or untag had gone to the fast lane they would have run before the
     * column's upsert (fast first) and been refused with not_found */
    assert_all_applied(s);
    assert_true(s->res[0].seq_last < s->res[1].seq_first);
    assert_true(s->res[1].seq_last < s->res[2].seq_first);
    assert_true(s->res[2].seq_last < s->res[4].seq_first);
    /* the connection (fast) went first in the same commit */
    assert_true(s->res[3].seq_last < s->res[0].seq_first);
    sub_free(s);
}

/* An untyped event for a stored column goes to the bulk lane; for a stored connection, fast. */
static void test_untyped_follows_store(void **state)
{
    fixture *f = *state;
    engine_start(f);
    sub *s = sub_new(f, 2);
    s->evs[0] =
        decode(f, "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/db/s/t/c\","
                  "\"attributes\":{\"data_type\":\"int\"}}");
    s->evs[1] = decode(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg\"}");
    assert_int_equal(submit_sync(s), MS_OK);
    assert_all_applied(s);
    sub_free(s);

    gate_close();
    sub *hold = one(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"hold\"}");
    submit_async(hold);
    gate_wait_entered(2); /* the writer is busy with `hold` */
    sub *tag_col = one(f, "{\"op\":\"tag\",\"qualified_name\":\"pg/db/s/t/c\",\"tag\":\"x\"}");
    submit_async(tag_col);
    wait_metric(f, BULK_EVENTS, 1);
    assert_int_equal(engine_metric(f, FAST_EVENTS), 0);
    sub *tag_conn = one(f, "{\"op\":\"tag\",\"qualified_name\":\"pg\",\"tag\":\"x\"}");
    submit_async(tag_conn);
    wait_metric(f, FAST_EVENTS, 1);
    assert_int_equal(engine_metric(f, BULK_EVENTS), 1);
    /* unknown asset: fast */
    sub *tag_none = one(f, "{\"op\":\"tag\",\"qualified_name\":\"nothing\",\"tag\":\"x\"}");
    submit_async(tag_none);
    wait_metric(f, FAST_EVENTS, 2);
    gate_open();
    submit_join(hold);
    submit_join(tag_col);
    submit_join(tag_conn);
    submit_join(tag_none);
    assert_all_applied(hold);
    assert_all_applied(tag_col);
    assert_all_applied(tag_conn);
    assert_int_equal(tag_none->res[0].status, MS_APPLY_REJECTED);
    assert_int_equal(tag_none->res[0].code, MS_ERR_NOT_FOUND);
    sub_free(hold);
    sub_free(tag_col);
    sub_free(tag_conn);
    sub_free(tag_none);
}

/* Backpressure: a batch larger than the lane enters an empty lane; while the lane holds a batch
 * and the writer is busy, another bulk batch waits enqueue_timeout_ms and gets
 * MS_ERR_OVERLOADED with nothing enqueued; the fast lane is not affected. */
static void test_backpressure(void **state)
{
    fixture *f = *state;
    ms_error err;
    assert_int_equal(ms_config_set(&f->cfg, "lanes.bulk_max_bytes", "1000", "test", &err), MS_OK);
    assert_int_equal(ms_config_set(&f->cfg, "engine.enqueue_timeout_ms", "50", "test", &err),
                     MS_OK);
    engine_start(f);
    gate_close();

    sub *a = columns(f, "ta", 20); /* ~2.5 KB: larger than the lane */
    size_t a_bytes = 0;
    for (size_t i = 0; i < a->n; i++)
        a_bytes += a->evs[i]->bytes;
    assert_true(a_bytes > 1000);
    submit_async(a);
    gate_wait_entered(1); /* admitted into the empty lane, taken by the writer, held */

    sub *b = columns(f, "tb", 20);
    submit_async(b);
    wait_metric(f, BULK_EVENTS, 20); /* the lane was empty again: admitted though too large */
    double bytes = engine_metric(f, BULK_BYTES);
    assert_true(bytes > 1000);

    sub *c = columns(f, "tc", 20);
    unsigned long long t0 = ms_now_ms();
    assert_int_equal(submit_sync(c), MS_ERR_OVERLOADED);
    unsigned long long waited = ms_now_ms() - t0;
    assert_true(waited >= 40); /* it waited for room (about enqueue_timeout_ms) first */
    assert_int_equal(c->err.code, MS_ERR_OVERLOADED);
    assert_true(c->err.detail[0] != '\0');
    assert_true(ms_err_is_retriable(MS_ERR_OVERLOADED));
    /* nothing of it was enqueued, and the caller still owns its events */
    assert_int_equal(engine_metric(f, BULK_EVENTS), 20);
    assert_int_equal(engine_metric(f, BULK_BYTES), bytes);
    for (size_t i = 0; i < c->n; i++)
        assert_non_null(c->evs[i]);

    /* the fast lane still takes work */
    sub *fast = one(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg\"}");
    submit_async(fast);
    wait_metric(f, FAST_EVENTS, 1);

    gate_open();
    submit_join(a);
    submit_join(b);
    submit_join(fast);
    assert_int_equal(a->rc, MS_OK);
    assert_int_equal(b->rc, MS_OK);
    assert_int_equal(fast->rc, MS_OK);
    assert_all_applied(a);
    assert_all_applied(b);
    assert_all_applied(fast);
    /* once the lane drained, the refused batch goes in on retry */
    assert_int_equal(submit_sync(c), MS_OK);
    assert_all_applied(c);
    sub_free(a);
    sub_free(b);
    sub_free(c);
    sub_free(fast);
}

static void *stop_main(void *arg)
{
    ms_engine_stop(arg);
    return NULL;
}

/* Stop refuses new submissions with MS_ERR_UNAVAILABLE but commits what is queued. */
static void test_stop(void **state)
{
    fixture *f = *state;
    engine_start(f);
    gate_close();
    sub *a = one(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"a\"}");
    submit_async(a);
    gate_wait_entered(1);
    sub *b = one(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"b\"}");
    submit_async(b);
    wait_metric(f, FAST_EVENTS, 1);

    pthread_t st;
    assert_int_equal(pthread_create(&st, NULL, stop_main, f->e), 0);
    for (int i = 0; i < 20000 && ms_engine_running(f->e); i++)
        ms_test_poll_pause(1);
    assert_false(ms_engine_running(f->e));
    sub *c = one(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"c\"}");
    assert_int_equal(submit_sync(c), MS_ERR_UNAVAILABLE);
    assert_int_equal(c->err.code, MS_ERR_UNAVAILABLE);
    assert_non_null(c->evs[0]); /* not taken */
    gate_open();
    assert_int_equal(pthread_join(st, NULL), 0);
    submit_join(a);
    submit_join(b);
    assert_int_equal(a->rc, MS_OK);
    assert_int_equal(b->rc, MS_OK);
    assert_all_applied(a);
    assert_all_applied(b);
    ms_engine_stop(f->e); /* idempotent */
    assert_int_equal(submit_sync(c), MS_ERR_UNAVAILABLE);
    sub_free(a);
    sub_free(b);
    sub_free(c);
}

/* A failed commit answers MS_ERR_STORE; retrying the same ids is safe. */
static void test_store_failure_retry(void **state)
{
    fixture *f = *state;
    engine_start(f);
    pthread_mutex_lock(&gate.mu);
    gate.fail_next = 1;
    pthread_mutex_unlock(&gate.mu);
    const char *j0 =
        "{\"id\":\"x1\",\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg\"}";
    const char *j1 = "{\"id\":\"x2\",\"op\":\"tag\",\"qualified_name\":\"pg\",\"tag\":\"t\"}";
    const char *pair[] = {j0, j1};
    sub *s = sub_of(f, pair, 2);
    assert_int_equal(submit_sync(s), MS_ERR_STORE);
    assert_true(ms_err_is_retriable(s->rc));
    assert_int_equal(s->res[0].status, MS_APPLY_REJECTED);
    assert_int_equal(s->res[0].code, MS_ERR_STORE);
    assert_int_equal(ms_engine_last_seq(f->e, "default"), 0);
    sub_free(s);
    s = sub_of(f, pair, 2);
    assert_int_equal(submit_sync(s), MS_OK);
    assert_all_applied(s);
    sub_free(s);
    s = sub_of(f, pair, 2);
    assert_int_equal(submit_sync(s), MS_OK);
    assert_int_equal(s->res[0].status, MS_APPLY_DUPLICATE);
    assert_int_equal(s->res[1].status, MS_APPLY_DUPLICATE);
    sub_free(s);
    assert_int_equal(ms_engine_last_seq(f->e, "default"), 2);
}

/* A sync that fails (the disk reported an error): that commit is not acknowledged, nor is any
 * later one (after a failed fdatasync the kernel may have dropped the pages, so a later success
 * proves nothing); after a restart, which reads back what the WAL holds, resending is safe. */
static void test_sync_failure_sticky(void **state)
{
    fixture *f = *state;
    engine_start(f);
    pthread_mutex_lock(&gate.mu);
    gate.sync_fail = 1;
    pthread_mutex_unlock(&gate.mu);
    const char *j0 =
        "{\"id\":\"y1\",\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg\"}";
    const char *j1 = "{\"id\":\"y2\",\"op\":\"tag\",\"qualified_name\":\"pg\",\"tag\":\"t\"}";
    const char *j2 =
        "{\"id\":\"y3\",\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg2\"}";
    const char *pair[] = {j0, j1};
    sub *s = sub_of(f, pair, 2);
    assert_int_equal(submit_sync(s), MS_ERR_STORE);
    assert_int_equal(s->res[0].status, MS_APPLY_REJECTED);
    assert_int_equal(s->res[0].code, MS_ERR_STORE);
    sub_free(s);
    assert_int_equal(ms_engine_last_seq(f->e, "default"), 0); /* nothing durable to show */
    s = sub_of(f, &j2, 1); /* the store would sync it now, but the engine no longer trusts it */
    assert_int_equal(submit_sync(s), MS_ERR_STORE);
    assert_non_null(strstr(s->res[0].detail, "restart"));
    sub_free(s);
    /* restart: the store reopens and recovers the WAL; resending is answered as duplicates */
    ms_engine_free(f->e);
    f->e = NULL;
    ms_store_sqlite.close(f->store);
    ms_error err;
    ms_store_open_args a = {.cfg = &f->cfg, .url = "sqlite", .types = f->types};
    assert_int_equal(ms_store_sqlite.open(&a, &f->store, &err), MS_OK);
    engine_start(f);
    const char *all[] = {j0, j1, j2};
    s = sub_of(f, all, 3);
    assert_int_equal(submit_sync(s), MS_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s->res[i].status, MS_APPLY_DUPLICATE);
    sub_free(s);
    assert_int_equal(ms_engine_last_seq(f->e, "default"), 3);
}

static ms_transform_status drop_apply(void *ctx, ms_event *ev, ms_error *err)
{
    (void)ctx;
    if (strncmp(ev->qn, "drop", 4) == 0) {
        ms_error_set(err, MS_ERR_INVALID_FIELD, "no drops allowed");
        return MS_TRANSFORM_DROP;
    }
    return MS_TRANSFORM_UNTOUCHED;
}

static const ms_transform_ops drop_ops = {MS_TRANSFORM_OPS_VERSION, "dropper", drop_apply};

/* A transform that drops an event makes it rejected with the transform's code; the rest go on. */
static void test_transform_drop(void **state)
{
    fixture *f = *state;
    ms_transform tr = {&drop_ops, NULL};
    f->transforms = &tr;
    f->ntransforms = 1;
    engine_start(f);
    sub *s = sub_new(f, 2);
    s->evs[0] =
        decode(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"drop-me\"}");
    s->evs[1] =
        decode(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"keep\"}");
    assert_int_equal(submit_sync(s), MS_OK);
    assert_int_equal(s->res[0].status, MS_APPLY_REJECTED);
    assert_int_equal(s->res[0].code, MS_ERR_INVALID_FIELD);
    assert_non_null(strstr(s->res[0].detail, "no drops allowed"));
    assert_int_equal(s->res[1].status, MS_APPLY_APPLIED);
    assert_null(s->evs[0]);
    assert_int_equal(atomic_load(&f->metrics.events_rejected[MS_ERR_INVALID_FIELD]), 1);
    sub_free(s);
    /* all dropped: nothing to commit */
    s = one(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"drop2\"}");
    assert_int_equal(submit_sync(s), MS_OK);
    assert_int_equal(s->res[0].status, MS_APPLY_REJECTED);
    sub_free(s);
    ms_engine_free(f->e); /* before tr goes out of scope */
    f->e = NULL;
}

/* The stored next offset of partition 0 of (g, t), -1 when none. */
static int64_t stored_offset(fixture *f)
{
    const int32_t part = 0;
    int64_t next = -2;
    ms_error err;
    assert_int_equal(ms_store_sqlite.offsets_get(f->store, "g", "t", &part, 1, &next, &err), MS_OK);
    return next;
}

/* An asynchronous batch whose events are split over two commits by lane stores its positions
 * with the second commit only; a batch whose commit fails stores none. */
static void test_async_positions_with_last_commit(void **state)
{
    fixture *f = *state;
    engine_start(f);
    gate_close();
    sub *x = columns(f, "x", 1); /* the writer takes it alone (a bulk commit) and is held */
    ms_engine_ticket *tx = NULL, *tb = NULL;
    ms_error err;
    assert_int_equal(ms_engine_submit_async(f->e, x->evs, 1, NULL, 0, x->res, &tx, &err), MS_OK);
    gate_wait_entered(1);
    sub *b = sub_new(f, 2);
    b->evs[0] =
        decode(f, "{\"op\":\"upsert\",\"type\":\"column\","
                  "\"qualified_name\":\"pg/db/s/t/c0\",\"attributes\":{\"data_type\":\"int\"}}");
    b->evs[1] = decode(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"kc\"}");
    for (size_t i = 0; i < 2; i++) {
        b->evs[i]->src_pos = 1;
        b->evs[i]->src_offset = 8 + (int64_t)i;
    }
    const ms_srcpos pos = {"g", "t", 0, 10};
    assert_int_equal(ms_engine_submit_async(f->e, b->evs, 2, &pos, 1, b->res, &tb, &err), MS_OK);
    assert_non_null(tb);
    /* Commit 2 takes the fast event only (the one before served the bulk lane); commit 3, the
     * column, is held at the gate: the batch is not complete, its position not stored. */
    pthread_mutex_lock(&gate.mu);
    gate.limit = 2;
    pthread_mutex_unlock(&gate.mu);
    gate_open();
    gate_wait_entered(3);
    assert_int_equal(ms_engine_wait(f->e, tx, &err), MS_OK);
    assert_int_equal(stored_offset(f), -1);
    pthread_mutex_lock(&gate.mu);
    gate.limit = INT_MAX;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
    assert_int_equal(ms_engine_wait(f->e, tb, &err), MS_OK);
    assert_int_equal(b->res[0].status, MS_APPLY_APPLIED);
    assert_int_equal(b->res[1].status, MS_APPLY_APPLIED);
    assert_int_equal(stored_offset(f), 10);

    /* A failed commit: MS_ERR_STORE, the position stays. */
    sub *c = one(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"kd\"}");
    c->evs[0]->src_pos = 1;
    c->evs[0]->src_offset = 10;
    const ms_srcpos pos2 = {"g", "t", 0, 11};
    pthread_mutex_lock(&gate.mu);
    gate.fail_next = 1;
    pthread_mutex_unlock(&gate.mu);
    assert_int_equal(ms_engine_submit_at(f->e, c->evs, 1, &pos2, 1, c->res, &err), MS_ERR_STORE);
    assert_int_equal(stored_offset(f), 10);
    sub_free(x);
    sub_free(b);
    sub_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_submit_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fast_overtakes_bulk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_untyped_follows_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_untyped_follows_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_failure_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transform_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_positions_with_last_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_failure_sticky, setup_full_sync, teardown),
        cmocka_unit_test_setup_teardown(test_submit_results, setup_full_sync, teardown),
        cmocka_unit_test_setup_teardown(test_fast_overtakes_bulk, setup_full_sync, teardown),
        cmocka_unit_test_setup_teardown(test_async_positions_with_last_commit, setup_full_sync,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_submit_results, setup_direct, teardown),
        cmocka_unit_test_setup_teardown(test_stop, setup_direct, teardown),
        cmocka_unit_test_setup_teardown(test_store_failure_retry, setup_direct, teardown),
        cmocka_unit_test_setup_teardown(test_async_positions_with_last_commit, setup_direct,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
