/*
 * test_sink_snapshot.c — unit tests of the sink runner (ms_sink_runner) driving the snapshot
 * sink (ms_sink_snapshot) into the directory blob store (ms_blob_dir), over a real engine and
 * SQLite store: objects rolled by size land under
 * <tenant>/<yyyy>/<mm>/<dd>/<hh>/<first>-<last>.ndjson and together hold every change seq exactly
 * once; the sink cursor is stored per tenant; objects are rolled by age; the final flush at stop
 * writes the buffered remainder; a restarted runner resumes after the stored cursor; a failing blob
 * store (a wrapper failing the first puts, or the real dir store pointed under a regular file)
 * makes the sink answer RETRY and loses nothing once the blob store works again; the runner's
 * metrics.
 *
 * The sink and blob store are wrapped (same names, same behaviour) only to observe what was
 * offered, what the sink answered and what was put. Waits poll with bounded deadlines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ms_blob.h"
#include "ms_config.h"
#include "ms_engine.h"
#include "ms_event.h"
#include "ms_json.h"
#include "ms_metrics.h"
#include "ms_sink.h"
#include "ms_sink_runner.h"
#include "ms_store.h"
#include "ms_types.h"

#include <dirent.h>
#include <ftw.h>
#include <pthread.h>
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
extern const ms_blob_ops ms_blob_dir;
extern const ms_sink_ops ms_sink_snapshot;

/* ---- observing wrappers -----------------------------------------------------------------------
 */

static struct obs {
    pthread_mutex_t mu;
    /* sink */
    uint64_t handed[2]; /* highest seq accepted (MS_SINK_OK) per tenant: [0] default, [1] acme */
    int retries;        /* MS_SINK_RETRY answers */
    int flush_all;      /* MS_SINK_FLUSH_ALL deliveries */
    /* blob */
    int fail_first; /* puts to fail before delegating */
    int puts, failed, real_failed;
    size_t max_put_len;
} obs = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int tenant_ix(const char *t)
{
    return strcmp(t, "acme") == 0;
}

static ms_sink_status obs_deliver(void *ctx, const char *tenant, const ms_change *c, size_t n,
                                  unsigned long long now, uint64_t *durable)
{
    ms_sink_status st = ms_sink_snapshot.deliver(ctx, tenant, c, n, now, durable);
    pthread_mutex_lock(&obs.mu);
    if (st == MS_SINK_OK && n) obs.handed[tenant_ix(tenant)] = c[n - 1].seq;
    if (st == MS_SINK_RETRY) obs.retries++;
    if (now == MS_SINK_FLUSH_ALL) obs.flush_all++;
    pthread_mutex_unlock(&obs.mu);
    return st;
}

static ms_sink_ops obs_sink; /* ms_sink_snapshot with obs_deliver; same name "snapshots" */

static ms_err obs_put(void *ctx, const char *key, const void *data, size_t len, ms_error *err)
{
    pthread_mutex_lock(&obs.mu);
    obs.puts++;
    if (obs.failed < obs.fail_first) {
        obs.failed++;
        pthread_mutex_unlock(&obs.mu);
        return ms_error_set(err, MS_ERR_IO, "injected failure of put %s", key);
    }
    pthread_mutex_unlock(&obs.mu);
    ms_err rc = ms_blob_dir.put(ctx, key, data, len, err);
    pthread_mutex_lock(&obs.mu);
    if (rc != MS_OK)
        obs.real_failed++;
    else if (len > obs.max_put_len)
        obs.max_put_len = len;
    pthread_mutex_unlock(&obs.mu);
    return rc;
}

static ms_blob_ops obs_blob;

static uint64_t handed(int t)
{
    pthread_mutex_lock(&obs.mu);
    uint64_t v = obs.handed[t];
    pthread_mutex_unlock(&obs.mu);
    return v;
}

static int obs_int(const int *field)
{
    pthread_mutex_lock(&obs.mu);
    int v = *field;
    pthread_mutex_unlock(&obs.mu);
    return v;
}

/* Polls cond(ud) every 2 ms for at most 30 s. */
#define WAIT_FOR(cond)                                                                             \
    do {                                                                                           \
        int w_ = 0;                                                                                \
        while (!(cond) && w_++ < 15000)                                                            \
            ms_test_poll_pause(2);                                                                 \
        if (!(cond)) print_error("timed out waiting for %s\n", #cond);                             \
        assert_true(cond);                                                                         \
    } while (0)

/* ---- fixture ----------------------------------------------------------------------------------
 */

typedef struct fixture {
    char dir[512];
    char snap[600]; /* blob root */
    ms_config cfg;
    ms_types *types;
    void *store;
    ms_metrics metrics;
    ms_engine *e;
    void *blob;
    ms_sink_runner *runner;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    if (ms_test_mkdtemp(f->dir, sizeof f->dir, "sink") != 0) return -1;
    snprintf(f->snap, sizeof f->snap, "%s/snapshots", f->dir);
    ms_config_defaults(&f->cfg);
    ms_error err;
    if (ms_config_set(&f->cfg, "data_dir", f->dir, "test", &err) != MS_OK) return -1;
    if (ms_config_set(&f->cfg, "store.synchronous", "normal", "test", &err) != MS_OK) return -1;
    if (ms_config_set(&f->cfg, "snapshots.max_object_bytes", "2048", "test", &err) != MS_OK)
        return -1;
    if (ms_config_set(&f->cfg, "snapshots.max_object_age_ms", "3600000", "test", &err) != MS_OK)
        return -1;
    f->types = ms_types_new();
    ms_store_open_args a = {.cfg = &f->cfg, .url = "sqlite", .types = f->types};
    if (ms_store_sqlite.open(&a, &f->store, &err) != MS_OK) return -1;
    ms_metrics_init(&f->metrics);
    ms_engine_args ea = {
        .cfg = &f->cfg, .metrics = &f->metrics, .store = &ms_store_sqlite, .store_ctx = f->store};
    f->e = ms_engine_new(&ea);
    if (ms_engine_start(f->e, &err) != MS_OK) return -1;
    obs_sink = ms_sink_snapshot;
    obs_sink.deliver = obs_deliver;
    obs_blob = ms_blob_dir;
    obs_blob.put = obs_put;
    pthread_mutex_lock(&obs.mu);
    memset(obs.handed, 0, sizeof obs.handed);
    obs.retries = obs.flush_all = obs.fail_first = obs.puts = obs.failed = obs.real_failed = 0;
    obs.max_put_len = 0;
    pthread_mutex_unlock(&obs.mu);
    *state = f;
    return 0;
}

/* Opens the blob store at root (default f->snap) and starts the runner. */
static void runner_start(fixture *f, const char *root)
{
    ms_error err;
    ms_error_clear(&err);
    if (!f->blob) {
        char url[700];
        snprintf(url, sizeof url, "file://%s", root ? root : f->snap);
        assert_int_equal(obs_blob.open(url, &f->cfg, NULL, &f->blob, &err), MS_OK);
    }
    void *sink = NULL;
    ms_sink_init_args ia = {.cfg = &f->cfg, .blob_ops = &obs_blob, .blob = f->blob};
    assert_int_equal(obs_sink.init(&ia, &sink, &err), MS_OK);
    ms_sink_runner_args ra = {.ops = &obs_sink,
                              .sink = sink,
                              .store = &ms_store_sqlite,
                              .store_ctx = f->store,
                              .engine = f->e,
                              .tick_ms = 20};
    f->runner = ms_sink_runner_start(&ra, &err);
    assert_non_null(f->runner);
}

static void runner_stop(fixture *f)
{
    if (f->runner) ms_sink_runner_stop(f->runner);
    f->runner = NULL;
}

static int teardown(void **state)
{
    fixture *f = *state;
    runner_stop(f);
    ms_engine_free(f->e);
    if (f->blob) ms_blob_dir.close(f->blob);
    ms_store_sqlite.close(f->store);
    ms_types_free(f->types);
    ms_config_free(&f->cfg);
    ms_test_rmtree(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ----------------------------------------------------------------------------------
 */

/* Submits n upserts of connections <prefix><i> for tenant in one batch; returns the last seq. */
static uint64_t ingest(fixture *f, const char *tenant, const char *prefix, int n)
{
    ms_event **evs = calloc((size_t)n, sizeof *evs);
    ms_apply_result *res = calloc((size_t)n, sizeof *res);
    assert_true(evs && res);
    ms_decode_opts o = {.tenant = tenant, .types = f->types};
    for (int i = 0; i < n; i++) {
        char j[400];
        snprintf(j, sizeof j,
                 "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"%s%d\","
                 "\"attributes\":{\"description\":\"connection number %d of the snapshot test, "
                 "with some text to make the record longer\"}}",
                 prefix, i, i);
        ms_error err;
        assert_int_equal(ms_event_decode(j, strlen(j), &o, &evs[i], &err), MS_OK);
    }
    ms_error err;
    assert_int_equal(ms_engine_submit(f->e, evs, (size_t)n, res, &err), MS_OK);
    uint64_t last = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(res[i].status, MS_APPLY_APPLIED);
        if (res[i].seq_last > last) last = res[i].seq_last;
    }
    free(evs);
    free(res);
    return last;
}

static uint64_t cursor(fixture *f, const char *tenant)
{
    uint64_t s = 0;
    ms_error err;
    assert_int_equal(ms_store_sqlite.cursor_get(f->store, tenant, "snapshots", &s, &err), MS_OK);
    return s;
}

/* What the objects under a blob root hold. */
typedef struct scan {
    const char *root;
    int objects, tmp_files, bad_names;
    unsigned counts[2][512]; /* per tenant, per seq: how many objects hold it */
    size_t max_len;          /* largest object */
    size_t max_line;         /* longest record line */
    int oversize;            /* objects that went on past max bytes by more than one record */
    size_t max_bytes;
} scan;

static scan *g_scan;

/* Checks one object file: name, hour directory, lines in seq order matching the name. */
static void scan_file(scan *s, const char *path, const char *rel)
{
    char tenant[64];
    int y, mo, d, h;
    unsigned long long first, last;
    int used = 0;
    if (sscanf(rel, "%63[^/]/%4d/%2d/%2d/%2d/%llu-%llu.ndjson%n", tenant, &y, &mo, &d, &h, &first,
               &last, &used) != 7 ||
        (size_t)used != strlen(rel)) {
        print_message("unexpected object name %s\n", rel);
        s->bad_names++;
        return;
    }
    char expect_dirs[160];
    snprintf(expect_dirs, sizeof expect_dirs, "%s/%04d/%02d/%02d/%02d/", tenant, y, mo, d, h);
    assert_int_equal(strncmp(rel, expect_dirs, strlen(expect_dirs)), 0); /* 2-digit parts */
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char *line = NULL;
    size_t cap = 0, total = 0, lastlen = 0;
    ssize_t len;
    uint64_t expect = first;
    int nlines = 0;
    while ((len = getline(&line, &cap, fp)) > 0) {
        assert_int_equal(line[len - 1], '\n');
        total += (size_t)len;
        lastlen = (size_t)len;
        if ((size_t)len > s->max_line) s->max_line = (size_t)len;
        struct json_object *o = json_tokener_parse(line);
        assert_non_null(o);
        struct json_object *v;
        assert_true(json_object_object_get_ex(o, "seq", &v));
        uint64_t seq = (uint64_t)json_object_get_int64(v);
        assert_int_equal(seq, expect); /* consecutive, starting at <first> */
        expect++;
        assert_true(json_object_object_get_ex(o, "tenant", &v));
        assert_string_equal(json_object_get_string(v), tenant);
        assert_true(json_object_object_get_ex(o, "op", &v));
        assert_true(json_object_object_get_ex(o, "after", &v));
        if (nlines == 0) { /* the hour directory is the first record's commit hour */
            assert_true(json_object_object_get_ex(o, "ts", &v));
            char hour[64];
            snprintf(hour, sizeof hour, "%04d-%02d-%02dT%02d", y, mo, d, h);
            assert_int_equal(strncmp(json_object_get_string(v), hour, 13), 0);
        }
        int t = tenant_ix(tenant);
        assert_true(seq < 512);
        s->counts[t][seq]++;
        json_object_put(o);
        nlines++;
    }
    free(line);
    fclose(fp);
    assert_true(nlines > 0);
    assert_int_equal(expect - 1, last); /* the name's last seq is the last line */
    if (total > s->max_len) s->max_len = total;
    if (s->max_bytes && total - lastlen >= s->max_bytes) s->oversize++;
    s->objects++;
}

static int scan_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (flag != FTW_F) return 0;
    const char *rel = path + strlen(g_scan->root) + 1;
    if (strstr(rel, ".tmp")) {
        g_scan->tmp_files++;
        return 0;
    }
    scan_file(g_scan, path, rel);
    return 0;
}

static void scan_root(scan *s, const char *root, size_t max_bytes)
{
    memset(s, 0, sizeof *s);
    s->root = root;
    s->max_bytes = max_bytes;
    g_scan = s;
    struct stat sb;
    if (stat(root, &sb) == 0) nftw(root, scan_cb, 16, FTW_PHYS);
    assert_int_equal(s->tmp_files, 0);
    assert_int_equal(s->bad_names, 0);
}

/* Every seq 1..last of tenant t is in exactly one object (and nothing beyond last). */
static void assert_covered_once(const scan *s, int t, uint64_t last)
{
    for (uint64_t q = 1; q < 512; q++) {
        unsigned want = q <= last ? 1 : 0;
        if (s->counts[t][q] != want)
            print_error("tenant %d seq %llu in %u objects\n", t, (unsigned long long)q,
                        s->counts[t][q]);
        assert_int_equal(s->counts[t][q], want);
    }
}

/* ---- tests ------------------------------------------------------------------------------------
 */

/* Objects rolled by size hold every seq of every tenant once; cursors follow what is stored;
 * the final flush at stop writes the rest. */
static void test_objects_cover_every_seq(void **state)
{
    fixture *f = *state;
    runner_start(f, NULL);
    uint64_t last_d = ingest(f, "default", "c", 30);
    last_d = ingest(f, "default", "d", 30);
    uint64_t last_a = ingest(f, "acme", "a", 25);
    assert_int_equal(last_d, 60);
    assert_int_equal(last_a, 25);
    WAIT_FOR(handed(0) == last_d && handed(1) == last_a);
    /* objects were already rolled by size before the stop, and the cursor is their end */
    WAIT_FOR(cursor(f, "default") > 0);
    /* everything is offered; what is stored now stays until the stop (age is an hour) */
    scan s;
    scan_root(&s, f->snap, 2048);
    assert_true(s.objects >= 2);
    uint64_t stored = 0;
    while (stored < last_d && s.counts[0][stored + 1] == 1)
        stored++;
    for (uint64_t q = stored + 1; q <= last_d; q++)
        assert_int_equal(s.counts[0][q], 0);
    assert_true(stored > 0);
    WAIT_FOR(cursor(f, "default") == stored); /* the cursor is the end of the stored objects */
    uint64_t cur = stored;

    ms_buf m = MS_BUF_INIT;
    ms_sink_runner_metrics_render(f->runner, &m, true);
    assert_non_null(strstr(m.data, "# TYPE metasync_sink_cursor gauge"));
    char want[128];
    snprintf(want, sizeof want,
             "metasync_sink_cursor{sink=\"snapshots\",tenant=\"default\"} %llu\n",
             (unsigned long long)cur);
    assert_non_null(strstr(m.data, want));
    ms_buf_free(&m);

    runner_stop(f); /* final flush */
    assert_true(obs_int(&obs.flush_all) >= 2);
    assert_int_equal(cursor(f, "default"), last_d);
    assert_int_equal(cursor(f, "acme"), last_a);
    scan_root(&s, f->snap, 2048);
    assert_covered_once(&s, 0, last_d);
    assert_covered_once(&s, 1, last_a);
    assert_int_equal(s.oversize, 0); /* no object went on past the size limit */
    assert_true(s.objects >= 4);
}

/* Without reaching the size, nothing is stored until the stop; the final flush stores it all. */
static void test_final_flush_at_stop(void **state)
{
    fixture *f = *state;
    ms_error err;
    assert_int_equal(ms_config_set(&f->cfg, "snapshots.max_object_bytes", "1MiB", "test", &err),
                     MS_OK);
    runner_start(f, NULL);
    uint64_t last = ingest(f, "default", "c", 20);
    WAIT_FOR(handed(0) == last);
    scan s;
    scan_root(&s, f->snap, 0);
    assert_int_equal(s.objects, 0);
    assert_int_equal(cursor(f, "default"), 0);
    runner_stop(f);
    assert_int_equal(cursor(f, "default"), last);
    scan_root(&s, f->snap, 0);
    assert_int_equal(s.objects, 1);
    assert_covered_once(&s, 0, last);
}

/* A buffered object older than max_object_age_ms is stored without a stop. */
static void test_age_roll(void **state)
{
    fixture *f = *state;
    ms_error err;
    assert_int_equal(ms_config_set(&f->cfg, "snapshots.max_object_bytes", "1MiB", "test", &err),
                     MS_OK);
    assert_int_equal(ms_config_set(&f->cfg, "snapshots.max_object_age_ms", "30", "test", &err),
                     MS_OK);
    runner_start(f, NULL);
    uint64_t last = ingest(f, "default", "c", 10);
    WAIT_FOR(cursor(f, "default") == last);
    scan s;
    scan_root(&s, f->snap, 0);
    assert_covered_once(&s, 0, last);
    runner_stop(f);
}

/* A new runner resumes after the stored cursor: nothing is written twice, nothing skipped. */
static void test_resume_after_cursor(void **state)
{
    fixture *f = *state;
    runner_start(f, NULL);
    uint64_t first = ingest(f, "default", "c", 15);
    WAIT_FOR(handed(0) == first);
    runner_stop(f);
    assert_int_equal(cursor(f, "default"), first);
    uint64_t last = ingest(f, "default", "d", 15);
    runner_start(f, NULL);
    WAIT_FOR(handed(0) == last);
    runner_stop(f);
    assert_int_equal(cursor(f, "default"), last);
    scan s;
    scan_root(&s, f->snap, 2048);
    assert_covered_once(&s, 0, last);
}

/* The blob store fails the first two puts: the sink answers RETRY, stores nothing and moves
 * no cursor meanwhile, then stores everything once puts work. */
static void test_blob_failure_retry(void **state)
{
    fixture *f = *state;
    ms_error err;
    assert_int_equal(ms_config_set(&f->cfg, "snapshots.max_object_bytes", "1024", "test", &err),
                     MS_OK);
    pthread_mutex_lock(&obs.mu);
    obs.fail_first = 2;
    pthread_mutex_unlock(&obs.mu);
    runner_start(f, NULL);
    uint64_t last = ingest(f, "default", "c", 40); /* one commit: offered in one delivery */
    WAIT_FOR(obs_int(&obs.failed) >= 1 && obs_int(&obs.retries) >= 1);
    assert_int_equal(cursor(f, "default"), 0);
    scan s;
    scan_root(&s, f->snap, 0);
    assert_int_equal(s.objects, 0);
    WAIT_FOR(obs_int(&obs.failed) == 2 && obs_int(&obs.puts) > 2 && cursor(f, "default") > 0);
    WAIT_FOR(handed(0) == last);
    runner_stop(f);
    assert_int_equal(cursor(f, "default"), last);
    scan_root(&s, f->snap, 1024);
    assert_covered_once(&s, 0, last);
    /* While the blob store fails the buffer, and so the object written once it recovers, stops
     * at twice the object size plus the record that crossed it (it once took whole deliveries). */
    size_t bound = 2 * 1024 + s.max_line;
    if (s.max_len > bound)
        fail_msg("snapshot buffer grew to %zu bytes while the blob store failed "
                 "(bound 2 x max_object_bytes + one record = %zu)",
                 s.max_len, bound);
}

/* The real dir blob store under a regular file: mkdir fails (even as root), the sink retries;
 * once the file is gone the objects are stored and nothing is lost. */
static void test_blob_dir_unwritable_then_fixed(void **state)
{
    fixture *f = *state;
    char blocker[700], root[800];
    snprintf(blocker, sizeof blocker, "%s/blocker", f->dir);
    snprintf(root, sizeof root, "%s/snap", blocker);
    FILE *fp = fopen(blocker, "w");
    assert_non_null(fp);
    fputs("not a directory\n", fp);
    fclose(fp);
    runner_start(f, root);
    uint64_t last = ingest(f, "default", "c", 12);
    WAIT_FOR(obs_int(&obs.real_failed) >= 1 && obs_int(&obs.retries) >= 1);
    assert_int_equal(cursor(f, "default"), 0);
    assert_int_equal(unlink(blocker), 0); /* fix it */
    WAIT_FOR(cursor(f, "default") > 0);
    WAIT_FOR(handed(0) == last);
    runner_stop(f);
    assert_int_equal(cursor(f, "default"), last);
    scan s;
    scan_root(&s, root, 0);
    assert_covered_once(&s, 0, last);
}

/* The snapshot sink needs a blob store. */
static void test_init_needs_blob(void **state)
{
    fixture *f = *state;
    void *ctx = NULL;
    ms_error err;
    ms_error_clear(&err);
    ms_sink_init_args ia = {.cfg = &f->cfg};
    assert_int_equal(ms_sink_snapshot.init(&ia, &ctx, &err), MS_ERR_CONFIG);
    assert_int_equal(err.code, MS_ERR_CONFIG);
    assert_string_equal(ms_sink_snapshot.name, "snapshots");
    assert_int_equal(ms_sink_snapshot.version, MS_SINK_OPS_VERSION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_objects_cover_every_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_final_flush_at_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_age_roll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_after_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob_failure_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob_dir_unwritable_then_fixed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_needs_blob, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
