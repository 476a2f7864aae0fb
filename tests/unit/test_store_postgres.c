/*
 * test_store_postgres.c — unit tests of the PostgreSQL store (ms_store_postgres) through its
 * ms_store_ops table, against a real server: env MS_TEST_PG_URL names a migrated database and the
 * application role (scripts/test.sh starts a throwaway cluster with tests/e2e/pgserver.py); each
 * test is skipped when it is unset.
 *
 * The main check is parity: one script of events covering every op and outcome (orphans and
 * adoption, cascade delete, tags, lineage with a cycle, idempotency ids, if_version, rejections,
 * a re-create) is applied both to a fresh SQLite store and to PostgreSQL under a tenant of its
 * own, with the same commit times, and every read must answer byte for byte the same: change
 * records, history, asset_get (deleted too), asset_list pages (filters, full text, cursors),
 * lineage, last_seq, stats, asset_type, cursors, ctl records. Then what only PostgreSQL has:
 * tenants() across tenants, isolation between two tenants of one database, commit
 * notifications across workers and the listener's reconnects (its session ended; its link left
 * half-open by a TCP proxy in the test).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ms_config.h"
#include "ms_event.h"
#include "ms_store.h"
#include "ms_types.h"
#include "ms_test_dir.h"
#include "ms_test_offsets.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "ms_test_poll.h"

extern const ms_store_ops ms_store_sqlite;
extern const ms_store_ops ms_store_postgres;

typedef struct side {
    const ms_store_ops *ops;
    void *ctx;
} side;

typedef struct fixture {
    char dir[512];
    ms_config cfg;
    ms_types *types;
    side sq, pg;
    char tenant[64], other[64];
} fixture;

static int setup(void **state)
{
    const char *url = getenv("MS_TEST_PG_URL");
    if (!url || !*url) {
        *state = NULL;
        return 0;
    }
    fixture *f = calloc(1, sizeof *f);
    assert_int_equal(ms_test_mkdtemp(f->dir, sizeof f->dir, "storepg"), 0);
    ms_config_defaults(&f->cfg);
    ms_error err;
    char data[600];
    snprintf(data, sizeof data, "%s/data", f->dir);
    assert_int_equal(ms_config_set(&f->cfg, "data_dir", data, "test", &err), MS_OK);
    f->types = ms_types_new();
    /* Tenants of their own: the database may hold earlier runs. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(f->tenant, sizeof f->tenant, "ut-%ld-%ld-a", (long)getpid(), (long)ts.tv_nsec);
    snprintf(f->other, sizeof f->other, "ut-%ld-%ld-b", (long)getpid(), (long)ts.tv_nsec);
    ms_store_open_args a = {.cfg = &f->cfg, .url = "sqlite", .types = f->types};
    ms_error_clear(&err);
    assert_int_equal(ms_store_sqlite.open(&a, &f->sq.ctx, &err), MS_OK);
    f->sq.ops = &ms_store_sqlite;
    a.url = url;
    ms_error_clear(&err);
    ms_err rc = ms_store_postgres.open(&a, &f->pg.ctx, &err);
    if (rc != MS_OK) print_error("postgres open: %s\n", err.detail);
    assert_int_equal(rc, MS_OK);
    f->pg.ops = &ms_store_postgres;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (!f) return 0;
    f->sq.ops->close(f->sq.ctx);
    f->pg.ops->close(f->pg.ctx);
    ms_types_free(f->types);
    ms_config_free(&f->cfg);
    ms_test_rmtree(f->dir);
    free(f);
    return 0;
}

#define NEED_PG(f)                                                                                 \
    do {                                                                                           \
        if (!(f)) {                                                                                \
            print_message("MS_TEST_PG_URL is not set\n");                                          \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* Applies the events (one JSON text each) as one batch for tenant on side s; appends each
 * result as "status code seq_first-seq_last;" to out. */
static void apply_batch(fixture *f, side *s, const char *tenant, const char *const *jsons, size_t n,
                        const char *now, ms_buf *out)
{
    ms_event **evs = calloc(n, sizeof *evs);
    ms_apply_result *res = calloc(n, sizeof *res);
    for (size_t i = 0; i < n; i++) {
        ms_decode_opts o = {.tenant = tenant, .types = f->types};
        ms_error err;
        ms_error_clear(&err);
        ms_err rc = ms_event_decode(jsons[i], strlen(jsons[i]), &o, &evs[i], &err);
        if (rc != MS_OK) print_error("decode %s: %s\n", jsons[i], err.detail);
        assert_int_equal(rc, MS_OK);
    }
    ms_error err;
    ms_error_clear(&err);
    ms_err rc = s->ops->apply(s->ctx, evs, n, now, res, &err);
    if (rc != MS_OK) print_error("%s apply: %s\n", s->ops->name, err.detail);
    assert_int_equal(rc, MS_OK);
    for (size_t i = 0; i < n; i++) {
        ms_buf_printf(out, "%d %s %llu-%llu %s;", res[i].status,
                      res[i].status == MS_APPLY_REJECTED ? ms_err_code(res[i].code) : "-",
                      (unsigned long long)res[i].seq_first, (unsigned long long)res[i].seq_last,
                      res[i].detail);
        ms_event_free(evs[i]);
    }
    free(evs);
    free(res);
}

/* The script: batches of events, each with its commit time. */
static const char *const script[][8] = {
    {"{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg\"}",
     "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/db/s/t/a\",\"id\":\"e1\","
     "\"attributes\":{\"data_type\":\"int\"},\"tags\":[\"PII\",\"gold\"]}",
     "{\"op\":\"upsert\",\"type\":\"database\",\"qualified_name\":\"pg/db\"}", NULL},
    {"{\"op\":\"upsert\",\"type\":\"schema\",\"qualified_name\":\"pg/db/s\"}",
     "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"pg/db/s/t\","
     "\"attributes\":{\"description\":\"Orders of customers\"}}",
     "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/db/s/t/b\","
     "\"attributes\":{\"data_type\":\"text\"}}",
     "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/db/s/t/a\",\"id\":\"e1\","
     "\"attributes\":{\"data_type\":\"int\"}}",
     "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"pg/db/s/t2\","
     "\"attributes\":{\"description\":\"customer order items\"},\"tags\":[\"gold\"]}",
     NULL},
    {"{\"op\":\"patch\",\"qualified_name\":\"pg/db/s/t\",\"attributes\":{\"owner\":\"ann\","
     "\"nested\":{\"x\":1}}}",
     "{\"op\":\"tag\",\"qualified_name\":\"pg/db/s/t/b\",\"tag\":\"PII\"}",
     "{\"op\":\"untag\",\"qualified_name\":\"pg/db/s/t/a\",\"tag\":\"gold\"}",
     "{\"op\":\"tag\",\"qualified_name\":\"pg/db/s/t/b\",\"tag\":\"PII\"}",
     "{\"op\":\"link\",\"from\":\"pg/db/s/t\",\"to\":\"pg/db/s/t2\",\"via\":\"etl\"}",
     "{\"op\":\"link\",\"from\":\"pg/db/s/t2\",\"to\":\"pg/db/s/t\"}",
     "{\"op\":\"link\",\"from\":\"pg/db/s/t2\",\"to\":\"x/unknown\"}", NULL},
    {"{\"op\":\"patch\",\"qualified_name\":\"pg/db/s/t\",\"if_version\":1,"
     "\"attributes\":{\"owner\":\"bob\"}}",
     "{\"op\":\"upsert\",\"type\":\"schema\",\"qualified_name\":\"pg/db/s/t\"}",
     "{\"op\":\"patch\",\"qualified_name\":\"nope\",\"attributes\":{\"a\":1}}",
     "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/c\","
     "\"attributes\":{\"data_type\":\"int\"}}",
     "{\"op\":\"delete\",\"qualified_name\":\"nope\"}",
     "{\"op\":\"unlink\",\"from\":\"pg/db/s/t2\",\"to\":\"pg/db/s/t\"}", NULL},
    {"{\"op\":\"delete\",\"qualified_name\":\"pg/db/s\",\"id\":\"e9\"}",
     "{\"op\":\"delete\",\"qualified_name\":\"pg/db/s\"}",
     "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"lost/t\"}", NULL},
    {"{\"op\":\"upsert\",\"type\":\"schema\",\"qualified_name\":\"pg/db/s\",\"tags\":[\"new\"]}",
     "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"pg/db/s/t\",\"if_version\":0}",
     "{\"op\":\"delete\",\"qualified_name\":\"pg/db/s/t\",\"id\":\"e9\"}", NULL},
    /* Within one batch: a child adopted by a parent created after it, then changed; a cascade
     * over assets the batch names later; an id refused, then used, then seen again. */
    {"{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"q/s/t/c\","
     "\"attributes\":{\"data_type\":\"int\"}}",
     "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"q/s/t\"}",
     "{\"op\":\"patch\",\"qualified_name\":\"q/s/t/c\",\"attributes\":{\"n\":1}}",
     "{\"op\":\"delete\",\"qualified_name\":\"pg\"}",
     "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/db/s/t/a\","
     "\"attributes\":{\"data_type\":\"int\"}}",
     "{\"op\":\"tag\",\"qualified_name\":\"pg/db/s\",\"tag\":\"x\",\"id\":\"x1\"}",
     "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"z\",\"id\":\"x1\"}",
     "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"z2\",\"id\":\"x1\"}"},
};
static const char *const times[] = {"2026-11-23T19:00:00.000Z", "2026-11-23T19:01:00.000Z",
                                    "2026-11-23T19:02:00.000Z", "2026-11-23T19:03:00.000Z",
                                    "2026-11-23T19:04:00.000Z", "2026-11-23T19:05:00.000Z",
                                    "2026-11-23T19:06:00.000Z"};

static int put_change(void *ud, const ms_change *c)
{
    ms_change copy = *c;
    copy.tenant = "T"; /* the tenants differ by name only */
    ms_change_to_json(&copy, ud);
    ms_buf_putc(ud, '\n');
    return 0;
}

static int put_ctl(void *ud, const char *tenant, const char *key, const char *json)
{
    (void)tenant;
    ms_buf_printf(ud, "%s=%s\n", key, json);
    return 0;
}

/* Everything the read side says about tenant on side s, as one text. */
static void dump(side *s, const char *tenant, ms_buf *out)
{
    ms_error err;
    ms_error_clear(&err);
    assert_int_equal(s->ops->changes(s->ctx, tenant, 0, 1000, put_change, out, &err), MS_OK);
    assert_int_equal(s->ops->changes(s->ctx, tenant, 3, 2, put_change, out, &err), MS_OK);
    static const char *const qns[] = {"pg",         "pg/db/s", "pg/db/s/t", "pg/db/s/t/a",
                                      "pg/db/s/t2", "pg/c",    "lost/t",    "nope"};
    for (size_t i = 0; i < sizeof qns / sizeof *qns; i++) {
        for (int del = 0; del < 2; del++) {
            ms_error_clear(&err);
            ms_err rc = s->ops->asset_get(s->ctx, tenant, qns[i], del, out, &err);
            ms_buf_printf(out, "\nget %s %d: %s %s\n", qns[i], del, ms_err_code(rc), err.detail);
        }
        assert_int_equal(s->ops->history(s->ctx, tenant, qns[i], put_change, out, &err), MS_OK);
        char type[64];
        ms_error_clear(&err);
        ms_err rc = s->ops->asset_type(s->ctx, tenant, qns[i], type, sizeof type, &err);
        ms_buf_printf(out, "type %s %s\n", ms_err_code(rc), type);
        for (int dir = 1; dir <= 3; dir++) {
            assert_int_equal(s->ops->lineage(s->ctx, tenant, qns[i], dir, 3, out, &err), MS_OK);
            ms_buf_putc(out, '\n');
        }
    }
    ms_asset_query qs[] = {
        {.tenant = tenant, .orphan = -1, .limit = 2},
        {.tenant = tenant, .orphan = -1, .limit = 1000, .include_deleted = true},
        {.tenant = tenant, .type = "column", .orphan = -1, .limit = 10, .include_deleted = true},
        {.tenant = tenant, .parent = "pg/db/s/t", .orphan = -1, .limit = 10},
        {.tenant = tenant, .tag = "gold", .orphan = -1, .limit = 10, .include_deleted = true},
        {.tenant = tenant, .q = "order", .orphan = -1, .limit = 10, .include_deleted = true},
        {.tenant = tenant, .q = "CUST ord", .orphan = -1, .limit = 10, .include_deleted = true},
        {.tenant = tenant, .q = "pg db", .orphan = -1, .limit = 1},
        {.tenant = tenant, .orphan = 1, .limit = 10},
        {.tenant = tenant, .orphan = 0, .limit = 10},
    };
    for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
        for (int page = 0; page < 10; page++) {
            ms_buf next = MS_BUF_INIT;
            ms_error_clear(&err);
            ms_err rc = s->ops->asset_list(s->ctx, &qs[i], out, &next, &err);
            ms_buf_printf(out, "\nlist %zu: %s next=%s\n", i, ms_err_code(rc), ms_buf_cstr(&next));
            bool more = next.len > 0;
            static char cur[256];
            snprintf(cur, sizeof cur, "%s", ms_buf_cstr(&next));
            qs[i].cursor = cur;
            ms_buf_free(&next);
            if (!more) break;
        }
    }
    uint64_t seq = 0;
    ms_store_stats st = {0};
    assert_int_equal(s->ops->last_seq(s->ctx, tenant, &seq, &err), MS_OK);
    assert_int_equal(s->ops->stats(s->ctx, tenant, &st, &err), MS_OK);
    ms_buf_printf(out, "last_seq %llu orphans %llu\n", (unsigned long long)seq,
                  (unsigned long long)st.orphans);
    assert_int_equal(s->ops->cursor_set(s->ctx, tenant, "snap", 7, &err), MS_OK);
    assert_int_equal(s->ops->cursor_set(s->ctx, tenant, "snap", 9, &err), MS_OK);
    assert_int_equal(s->ops->cursor_get(s->ctx, tenant, "snap", &seq, &err), MS_OK);
    ms_buf_printf(out, "cursor %llu\n", (unsigned long long)seq);
    assert_int_equal(s->ops->cursor_get(s->ctx, tenant, "none", &seq, &err), MS_OK);
    ms_buf_printf(out, "cursor none %llu\n", (unsigned long long)seq);
    assert_int_equal(s->ops->ctl_put(s->ctx, tenant, "subject", "b", "{\"v\":1}", &err), MS_OK);
    assert_int_equal(s->ops->ctl_put(s->ctx, tenant, "subject", "a", "{\"v\":2}", &err), MS_OK);
    assert_int_equal(s->ops->ctl_put(s->ctx, tenant, "subject", "c", "{}", &err), MS_OK);
    assert_int_equal(s->ops->ctl_put(s->ctx, tenant, "subject", "c", NULL, &err), MS_OK);
    assert_int_equal(s->ops->ctl_put(s->ctx, tenant, "subject", "a", "{\"v\":3}", &err), MS_OK);
    assert_int_equal(s->ops->ctl_list(s->ctx, tenant, "subject", put_ctl, out, &err), MS_OK);
}

/* The same events give the same answers from SQLite and PostgreSQL, byte for byte. */
static void test_parity_with_sqlite(void **state)
{
    fixture *f = *state;
    NEED_PG(f);
    ms_buf rs = MS_BUF_INIT, rp = MS_BUF_INIT;
    for (size_t b = 0; b < sizeof script / sizeof *script; b++) {
        size_t n = 0;
        while (n < 8 && script[b][n])
            n++;
        apply_batch(f, &f->sq, f->tenant, script[b], n, times[b], &rs);
        apply_batch(f, &f->pg, f->tenant, script[b], n, times[b], &rp);
        ms_buf_putc(&rs, '\n');
        ms_buf_putc(&rp, '\n');
    }
    assert_string_equal(ms_buf_cstr(&rp), ms_buf_cstr(&rs));
    ms_buf ds = MS_BUF_INIT, dp = MS_BUF_INIT;
    dump(&f->sq, f->tenant, &ds);
    dump(&f->pg, f->tenant, &dp);
    if (strcmp(ms_buf_cstr(&ds), ms_buf_cstr(&dp)) != 0) {
        /* Point at the first difference: the whole texts are long. */
        size_t i = 0;
        while (ds.data[i] && ds.data[i] == dp.data[i])
            i++;
        size_t from = i > 200 ? i - 200 : 0;
        print_error("sqlite:   …%.400s\npostgres: …%.400s\n", ds.data + from, dp.data + from);
    }
    assert_string_equal(ms_buf_cstr(&dp), ms_buf_cstr(&ds));
    ms_buf_free(&rs);
    ms_buf_free(&rp);
    ms_buf_free(&ds);
    ms_buf_free(&dp);
}

static int find_tenant(void *ud, const char *tenant)
{
    const char **want = ud;
    for (int i = 0; i < 2; i++)
        if (want[i] && strcmp(want[i], tenant) == 0) want[i] = NULL;
    return 0;
}

/* Two tenants of one database: separate seqs (both gap-free from 1), neither sees the other's
 * assets, changes or ctl records; tenants() lists both. */
static void test_tenants_isolated(void **state)
{
    fixture *f = *state;
    NEED_PG(f);
    ms_buf r = MS_BUF_INIT;
    const char *a[] = {"{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"c1\"}",
                       "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"c2\"}"};
    const char *b[] = {"{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"c1\","
                       "\"attributes\":{\"b\":true}}"};
    apply_batch(f, &f->pg, f->tenant, a, 2, times[0], &r);
    apply_batch(f, &f->pg, f->other, b, 1, times[1], &r);
    assert_string_equal(ms_buf_cstr(&r), "0 - 1-1 ;0 - 2-2 ;0 - 1-1 ;");
    ms_error err;
    ms_error_clear(&err);
    uint64_t sa = 0, sb = 0;
    assert_int_equal(f->pg.ops->last_seq(f->pg.ctx, f->tenant, &sa, &err), MS_OK);
    assert_int_equal(f->pg.ops->last_seq(f->pg.ctx, f->other, &sb, &err), MS_OK);
    assert_int_equal(sa, 2);
    assert_int_equal(sb, 1);
    ms_buf g = MS_BUF_INIT;
    assert_int_equal(f->pg.ops->asset_get(f->pg.ctx, f->other, "c2", true, &g, &err),
                     MS_ERR_NOT_FOUND);
    ms_error_clear(&err);
    assert_int_equal(f->pg.ops->asset_get(f->pg.ctx, f->other, "c1", false, &g, &err), MS_OK);
    assert_non_null(strstr(ms_buf_cstr(&g), "\"b\":true"));
    const char *want[2] = {f->tenant, f->other};
    assert_int_equal(f->pg.ops->tenants(f->pg.ctx, find_tenant, want, &err), MS_OK);
    assert_null(want[0]);
    assert_null(want[1]);
    ms_buf_free(&r);
    ms_buf_free(&g);
}

/* Leases of two workers (two opens of one database): the first to ask holds a (tenant, sink),
 * the other is refused until the holder closes (dies); SQLite grants every lease. */
static void test_leases_one_holder(void **state)
{
    fixture *f = *state;
    NEED_PG(f);
    ms_error err;
    ms_error_clear(&err);
    bool held = false;
    uint64_t epoch = 0, epoch2 = 0;
    assert_int_equal(f->sq.ops->lease_hold(f->sq.ctx, f->tenant, "kafka", &held, &epoch, &err),
                     MS_OK);
    assert_true(held);
    void *b = NULL;
    ms_store_open_args a = {.cfg = &f->cfg, .url = getenv("MS_TEST_PG_URL"), .types = f->types};
    assert_int_equal(ms_store_postgres.open(&a, &b, &err), MS_OK);
    assert_int_equal(
        ms_store_postgres.lease_hold(f->pg.ctx, f->tenant, "kafka", &held, &epoch, &err), MS_OK);
    assert_true(held);
    assert_int_equal(
        ms_store_postgres.lease_hold(f->pg.ctx, f->tenant, "kafka", &held, &epoch2, &err), MS_OK);
    assert_true(held); /* confirmed, same epoch */
    assert_int_equal(epoch, epoch2);
    assert_int_equal(ms_store_postgres.lease_hold(b, f->tenant, "kafka", &held, &epoch, &err),
                     MS_OK);
    assert_false(held);
    assert_int_equal(ms_store_postgres.lease_hold(b, f->tenant, "snapshots", &held, &epoch, &err),
                     MS_OK);
    assert_true(held); /* another sink: the first worker does not hold it, b takes it */
    assert_int_equal(ms_store_postgres.lease_hold(b, f->other, "kafka", &held, &epoch, &err),
                     MS_OK);
    assert_true(held);           /* another tenant */
    f->pg.ops->close(f->pg.ctx); /* the holder dies: its session locks end */
    f->pg.ctx = NULL;
    /* The server ends the closed session asynchronously: ask again until it has (bounded). */
    held = false;
    for (int i = 0; i < 1000 && !held; i++) {
        assert_int_equal(ms_store_postgres.lease_hold(b, f->tenant, "kafka", &held, &epoch, &err),
                         MS_OK);
        if (!held) ms_test_poll_pause(10);
    }
    assert_true(held);
    assert_int_equal(ms_store_postgres.open(&a, &f->pg.ctx, &err), MS_OK);
    assert_int_equal(
        ms_store_postgres.lease_hold(f->pg.ctx, f->other, "kafka", &held, &epoch, &err), MS_OK);
    assert_false(held);
    ms_store_postgres.close(b);
}

/* What a watcher of the store was told (from the store's listener thread). */
typedef struct heard {
    pthread_mutex_t mu;
    char tenant[64];
    uint64_t seq;
    int resyncs; /* (NULL, 0) calls: the listener (re)connected */
} heard;

static void on_commit(void *ud, const char *tenant, uint64_t seq)
{
    heard *h = ud;
    pthread_mutex_lock(&h->mu);
    if (!tenant) {
        h->resyncs++;
    } else {
        snprintf(h->tenant, sizeof h->tenant, "%s", tenant);
        h->seq = seq;
    }
    pthread_mutex_unlock(&h->mu);
}

static uint64_t heard_seq(heard *h, const char *tenant)
{
    pthread_mutex_lock(&h->mu);
    uint64_t seq = strcmp(h->tenant, tenant) == 0 ? h->seq : 0;
    pthread_mutex_unlock(&h->mu);
    return seq;
}

/* Waits (bounded) until the listener reported n resyncs; returns how many it reported. */
static int wait_resyncs(heard *h, int n)
{
    int got = 0;
    for (int i = 0; i < 3000; i++) {
        pthread_mutex_lock(&h->mu);
        got = h->resyncs;
        pthread_mutex_unlock(&h->mu);
        if (got >= n) break;
        ms_test_poll_pause(10);
    }
    return got;
}

/* Commits one event of tenant f->other through f's store (another worker) at times[t], and
 * waits (bounded) until the watcher h heard seq want of it. */
static void commit_heard(fixture *f, heard *h, const char *name, int t, uint64_t want)
{
    char ev[200];
    snprintf(ev, sizeof ev, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"%s\"}",
             name);
    const char *evs[] = {ev};
    ms_buf r = MS_BUF_INIT;
    apply_batch(f, &f->pg, f->other, evs, 1, times[t], &r);
    ms_buf_free(&r);
    for (int i = 0; i < 1000 && heard_seq(h, f->other) != want; i++)
        ms_test_poll_pause(10);
    assert_int_equal(heard_seq(h, f->other), want);
}

/* Another worker on the database of f: a second open of the PostgreSQL store. */
static void *open_worker(fixture *f)
{
    ms_error err;
    ms_error_clear(&err);
    void *ctx = NULL;
    ms_store_open_args a = {.cfg = &f->cfg, .url = getenv("MS_TEST_PG_URL"), .types = f->types};
    assert_int_equal(ms_store_postgres.open(&a, &ctx, &err), MS_OK);
    return ctx;
}

/* Another worker (a second open of the database) watching the store hears of every commit that
 * wrote change records, with its tenant and last seq, also after its listener's session was
 * ended; watch(NULL) stops the listener. */
static void test_watch_hears_other_workers_commits(void **state)
{
    fixture *f = *state;
    NEED_PG(f);
    ms_error err;
    ms_error_clear(&err);
    void *b = open_worker(f);
    heard h = {.mu = PTHREAD_MUTEX_INITIALIZER};
    assert_int_equal(ms_store_postgres.watch(b, on_commit, &h, &err), MS_OK);
    /* Listening once the first resync is reported: then every commit is heard. */
    assert_int_equal(wait_resyncs(&h, 1), 1);
    ms_buf r = MS_BUF_INIT;
    const char *ev[] = {"{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"w1\"}",
                        "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"w2\"}"};
    apply_batch(f, &f->pg, f->other, ev, 2, times[0], &r);
    for (int i = 0; i < 1000 && heard_seq(&h, f->other) != 2; i++)
        ms_test_poll_pause(10);
    assert_int_equal(heard_seq(&h, f->other), 2);
    /* The listener's session ends (a server restart, an admin): it reconnects, reports a resync
     * (notifications in between are lost) and hears the next commits again. */
    PGconn *admin = PQconnectdb(getenv("MS_TEST_PG_URL"));
    assert_int_equal(PQstatus(admin), CONNECTION_OK);
    PGresult *res = PQexec(admin, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                  " WHERE datname = current_database()"
                                  " AND query = 'LISTEN metasync_changes'");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "1");
    PQclear(res);
    PQfinish(admin);
    assert_int_equal(wait_resyncs(&h, 2), 2);
    commit_heard(f, &h, "w3", 1, 3);
    assert_int_equal(ms_store_postgres.watch(b, NULL, NULL, &err), MS_OK);
    ms_store_postgres.close(b);
    pthread_mutex_destroy(&h.mu);
    ms_buf_free(&r);
}

/* ---- a TCP proxy that can leave its links half-open ------------------------------------------ */

#define PROXY_MAX 64

/* Forwards every connection made to its port to the server's; freeze() stops forwarding on the
 * links open at that moment while keeping their sockets open (a peer gone without FIN or RST);
 * links made later are forwarded. One thread. */
typedef struct proxy {
    int lfd, port, to_port;
    int a[PROXY_MAX], b[PROXY_MAX]; /* client side, server side; -1 = free */
    bool frozen[PROXY_MAX];
    int pipe[2]; /* "f": freeze, "q": quit */
    pthread_t th;
} proxy;

static int tcp_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *proxy_main(void *arg)
{
    proxy *p = arg;
    for (;;) {
        struct pollfd fds[2 + 2 * PROXY_MAX];
        int map[2 + 2 * PROXY_MAX], n = 0;
        fds[n] = (struct pollfd){.fd = p->pipe[0], .events = POLLIN};
        map[n++] = -1;
        fds[n] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
        map[n++] = -1;
        for (int i = 0; i < PROXY_MAX; i++) {
            if (p->a[i] < 0 || p->frozen[i]) continue;
            fds[n] = (struct pollfd){.fd = p->a[i], .events = POLLIN};
            map[n++] = i;
            fds[n] = (struct pollfd){.fd = p->b[i], .events = POLLIN};
            map[n++] = i;
        }
        if (poll(fds, (nfds_t)n, -1) < 0) continue;
        if (fds[0].revents) {
            char c = 'q';
            if (read(p->pipe[0], &c, 1) == 1 && c == 'f') {
                for (int i = 0; i < PROXY_MAX; i++)
                    p->frozen[i] = p->a[i] >= 0;
                continue;
            }
            break;
        }
        if (fds[1].revents) {
            int c = accept(p->lfd, NULL, NULL), i = 0;
            while (i < PROXY_MAX && p->a[i] >= 0)
                i++;
            int up = c >= 0 && i < PROXY_MAX ? tcp_to(p->to_port) : -1;
            if (up < 0) {
                if (c >= 0) close(c);
            } else {
                p->a[i] = c;
                p->b[i] = up;
                p->frozen[i] = false;
            }
        }
        for (int k = 2; k < n; k++) {
            int i = map[k];
            if (!fds[k].revents || p->a[i] < 0 || p->frozen[i]) continue;
            int from = fds[k].fd, to = from == p->a[i] ? p->b[i] : p->a[i];
            char buf[8192];
            ssize_t r = read(from, buf, sizeof buf);
            if (r <= 0 || write(to, buf, (size_t)r) != r) {
                close(p->a[i]);
                close(p->b[i]);
                p->a[i] = p->b[i] = -1;
            }
        }
    }
    for (int i = 0; i < PROXY_MAX; i++)
        if (p->a[i] >= 0) {
            close(p->a[i]);
            close(p->b[i]);
        }
    return NULL;
}

static void proxy_start(proxy *p, int to_port)
{
    memset(p, 0, sizeof *p);
    for (int i = 0; i < PROXY_MAX; i++)
        p->a[i] = p->b[i] = -1;
    p->to_port = to_port;
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    assert_int_equal(bind(p->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(p->lfd, 16), 0);
    assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&sa, &len), 0);
    p->port = ntohs(sa.sin_port);
    assert_int_equal(pipe(p->pipe), 0);
    assert_int_equal(pthread_create(&p->th, NULL, proxy_main, p), 0);
}

static void proxy_say(proxy *p, char c)
{
    assert_int_equal(write(p->pipe[1], &c, 1), 1);
}

static void proxy_stop(proxy *p)
{
    proxy_say(p, 'q');
    pthread_join(p->th, NULL);
    close(p->lfd);
    close(p->pipe[0]);
    close(p->pipe[1]);
}

/* The listener's link goes half-open (the proxy stops forwarding but keeps the sockets open:
 * no FIN, no RST): the listener's check (store.listen_check_ms) notices it, reconnects, reports
 * a resync and hears the next commits again. */
static void test_watch_notices_half_open_link(void **state)
{
    fixture *f = *state;
    NEED_PG(f);
    const char *url = getenv("MS_TEST_PG_URL");
    const char *hp = strstr(url, "@127.0.0.1:");
    if (!hp) skip(); /* the proxy needs postgresql://USER@127.0.0.1:PORT/DB */
    proxy p;
    proxy_start(&p, atoi(hp + 11));
    char purl[512];
    snprintf(purl, sizeof purl, "%.*s@127.0.0.1:%d%s", (int)(hp - url), url, p.port,
             strchr(hp + 11, '/'));
    ms_error err;
    ms_error_clear(&err);
    assert_int_equal(ms_config_set(&f->cfg, "store.listen_check_ms", "200", "test", &err), MS_OK);
    void *b = NULL;
    ms_store_open_args a = {.cfg = &f->cfg, .url = purl, .types = f->types};
    assert_int_equal(ms_store_postgres.open(&a, &b, &err), MS_OK);
    heard h = {.mu = PTHREAD_MUTEX_INITIALIZER};
    assert_int_equal(ms_store_postgres.watch(b, on_commit, &h, &err), MS_OK);
    assert_int_equal(wait_resyncs(&h, 1), 1);
    proxy_say(&p, 'f');
    assert_int_equal(wait_resyncs(&h, 2), 2);
    commit_heard(f, &h, "h1", 0, 1);
    assert_int_equal(ms_store_postgres.watch(b, NULL, NULL, &err), MS_OK);
    proxy_stop(&p); /* closes the frozen links: the store's other connections see them end */
    ms_store_postgres.close(b);
    pthread_mutex_destroy(&h.mu);
}

/* Asks store ctx for the lease of (tenant, sink); returns whether it is held. */
static bool ask(void *ctx, const char *tenant, const char *sink)
{
    ms_error err;
    ms_error_clear(&err);
    bool held = false;
    uint64_t epoch = 0;
    assert_int_equal(ms_store_postgres.lease_hold(ctx, tenant, sink, &held, &epoch, &err), MS_OK);
    return held;
}

/* Asks for the lease until it is held, for at most 10 s; returns whether it is. */
static bool ask_until(void *ctx, const char *tenant, const char *sink)
{
    for (int i = 0; i < 1000; i++) {
        if (ask(ctx, tenant, sink)) return true;
        ms_test_poll_pause(10);
    }
    return false;
}

/* Leases are balanced over the live workers: a worker takes at most ceil((held + 1) / live),
 * leaves the rest to the others, and takes a lease left for a few seconds anyway (the others
 * are missing); a dead worker's leases go to the survivor. */
static void test_leases_balanced(void **state)
{
    fixture *f = *state;
    NEED_PG(f);
    void *b = open_worker(f);
    void *pa = f->pg.ctx;
    assert_true(ask(b, "t0", "s"));   /* b is a live worker from now on: 1 lease of 1 */
    assert_true(ask(pa, "t1", "s"));  /* share of a: ceil(2 / 2) = 1 */
    assert_true(ask(pa, "t2", "s"));  /* ceil(3 / 2) = 2 */
    assert_false(ask(pa, "t3", "s")); /* ceil(4 / 2) = 2: left to b */
    assert_true(ask(b, "t3", "s"));
    assert_true(ask(b, "t4", "s"));        /* ceil(5 / 2) = 3 */
    assert_true(ask(pa, "t5", "s"));       /* ceil(6 / 2) = 3 */
    assert_true(ask(pa, "t6", "s"));       /* ceil(7 / 2) = 4 */
    assert_false(ask(pa, "t7", "s"));      /* ceil(8 / 2) = 4, a holds 4: left to b... */
    assert_true(ask_until(pa, "t7", "s")); /* ...which never asks: a takes it after the grace */
    ms_store_postgres.close(b); /* b dies: a takes its leases (the session ends asynchronously) */
    assert_true(ask_until(pa, "t0", "s"));
    assert_true(ask_until(pa, "t3", "s"));
    assert_true(ask_until(pa, "t4", "s"));
}

/* Source positions: the same answers from both stores (group named after the test's tenant). */
static void test_source_offsets(void **state)
{
    fixture *f = *state;
    NEED_PG(f);
    check_source_offsets(f->sq.ops, f->sq.ctx, f->types, f->tenant, f->tenant);
    check_source_offsets(f->pg.ops, f->pg.ctx, f->types, f->tenant, f->tenant);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parity_with_sqlite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenants_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leases_one_holder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_hears_other_workers_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_notices_half_open_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leases_balanced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_source_offsets, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
