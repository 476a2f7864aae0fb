/*
 * test_metrics.c — unit tests of ms_metrics and its Prometheus text rendering: counters start at
 * zero and render their values, per-code counters render only the codes seen, histogram buckets
 * are cumulative with `le` upper bounds inclusive and +Inf equal to _count, _sum adds the
 * observations, the per-lane ingest-lag histograms carry a lane label, concurrent observations
 * are all counted, every family has one HELP and one TYPE line before its samples, and the
 * header/sample helpers format gauges.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ms_metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value of the sample line that starts with exactly `key` (name and labels) then a space;
 * NAN when there is none. */
static double sample(const char *text, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, key, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : NULL;
    }
    return NAN;
}

static int count_lines_starting(const char *text, const char *prefix)
{
    int c = 0;
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, prefix, n) == 0) c++;
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : NULL;
    }
    return c;
}

static char *render(ms_metrics *m)
{
    ms_buf b = MS_BUF_INIT;
    ms_metrics_render(m, &b);
    return ms_buf_steal(&b);
}

static void test_counters(void **state)
{
    (void)state;
    ms_metrics *m = malloc(sizeof *m);
    ms_metrics_init(m);
    char *t = render(m);
    assert_true(sample(t, "metasync_events_received_total") == 0);
    assert_true(sample(t, "metasync_events_applied_total") == 0);
    assert_true(sample(t, "metasync_commits_total") == 0);
    assert_int_equal(count_lines_starting(t, "metasync_events_rejected_total{"), 0);
    free(t);

    atomic_fetch_add(&m->events_received, 10);
    atomic_fetch_add(&m->events_applied, 7);
    atomic_fetch_add(&m->events_unchanged, 1);
    atomic_fetch_add(&m->events_duplicate, 1);
    atomic_fetch_add(&m->events_rejected[MS_ERR_NOT_FOUND], 2);
    atomic_fetch_add(&m->events_rejected[MS_ERR_VERSION_CONFLICT], 1);
    atomic_fetch_add(&m->http_requests, 123456789);
    atomic_fetch_add(&m->http_problems[MS_ERR_OVERLOADED], 4);
    atomic_fetch_add(&m->commits, 3);
    atomic_fetch_add(&m->changes_written, 9);
    t = render(m);
    assert_true(sample(t, "metasync_events_received_total") == 10);
    assert_true(sample(t, "metasync_events_applied_total") == 7);
    assert_true(sample(t, "metasync_events_unchanged_total") == 1);
    assert_true(sample(t, "metasync_events_duplicate_total") == 1);
    assert_true(sample(t, "metasync_events_rejected_total{code=\"not_found\"}") == 2);
    assert_true(sample(t, "metasync_events_rejected_total{code=\"version_conflict\"}") == 1);
    assert_int_equal(count_lines_starting(t, "metasync_events_rejected_total{"), 2);
    assert_true(sample(t, "metasync_http_requests_total") == 123456789);
    assert_true(sample(t, "metasync_http_problems_total{code=\"overloaded\"}") == 4);
    assert_true(sample(t, "metasync_commits_total") == 3);
    assert_true(sample(t, "metasync_changes_written_total") == 9);
    assert_non_null(strstr(t, "# TYPE metasync_events_received_total counter\n"));
    assert_non_null(strstr(t, "# TYPE metasync_events_rejected_total counter\n"));
    free(t);
    free(m);
}

/* Checks one histogram series: buckets cumulative and ascending, +Inf == _count == want_count,
 * _sum == want_sum. labels is "" or `lane="fast",`. */
static void check_hist(const char *t, const char *name, const char *labels, const ms_hist *h,
                       double want_count, double want_sum)
{
    char key[256];
    double prev = 0;
    for (int i = 0; i < h->nbuckets; i++) {
        char le[64];
        snprintf(le, sizeof le, "%g", h->bounds[i]);
        snprintf(key, sizeof key, "%s_bucket{%sle=\"%s\"}", name, labels, le);
        double v = sample(t, key);
        if (isnan(v)) print_error("no sample %s\n", key);
        assert_false(isnan(v));
        assert_true(v >= prev);
        prev = v;
        if (i) assert_true(h->bounds[i] > h->bounds[i - 1]);
    }
    snprintf(key, sizeof key, "%s_bucket{%sle=\"+Inf\"}", name, labels);
    double inf = sample(t, key);
    assert_true(inf >= prev);
    assert_true(inf == want_count);
    char lb[128] = "";
    if (*labels) snprintf(lb, sizeof lb, "{%.*s}", (int)strlen(labels) - 1, labels);
    snprintf(key, sizeof key, "%s_count%s", name, lb);
    assert_true(sample(t, key) == want_count);
    snprintf(key, sizeof key, "%s_sum%s", name, lb);
    double sum = sample(t, key);
    assert_true(fabs(sum - want_sum) < 1e-6);
}

static void test_histogram_buckets(void **state)
{
    (void)state;
    ms_metrics *m = malloc(sizeof *m);
    ms_metrics_init(m);
    /* batch sizes: bounds 1, 10, 100, ... */
    double obs[] = {0, 1, 1, 2, 10, 11, 5000, 200000};
    double sum = 0;
    for (size_t i = 0; i < sizeof obs / sizeof *obs; i++) {
        ms_hist_observe(&m->batch_size, obs[i]);
        sum += obs[i];
    }
    char *t = render(m);
    check_hist(t, "metasync_batch_events", "", &m->batch_size, 8, sum);
    /* le is inclusive: 0, 1, 1 are <= 1; 2 and 10 are <= 10; 5000 <= 5000 */
    assert_true(sample(t, "metasync_batch_events_bucket{le=\"1\"}") == 3);
    assert_true(sample(t, "metasync_batch_events_bucket{le=\"10\"}") == 5);
    assert_true(sample(t, "metasync_batch_events_bucket{le=\"100\"}") == 6);
    assert_true(sample(t, "metasync_batch_events_bucket{le=\"5000\"}") == 7);
    assert_true(sample(t, "metasync_batch_events_bucket{le=\"100000\"}") == 7);
    /* empty histograms still render, all zero */
    check_hist(t, "metasync_commit_duration_seconds", "", &m->commit_seconds, 0, 0);
    assert_non_null(strstr(t, "# TYPE metasync_batch_events histogram\n"));
    free(t);

    ms_hist_observe(&m->commit_seconds, 0.0001);
    ms_hist_observe(&m->commit_seconds, 0.003);
    ms_hist_observe(&m->commit_seconds, 42);
    ms_hist_observe(&m->ingest_lag[MS_LANE_BULK], 0.2);
    ms_hist_observe(&m->ingest_lag[MS_LANE_BULK], 0.3);
    ms_hist_observe(&m->ingest_lag[MS_LANE_FAST], 0.001);
    t = render(m);
    check_hist(t, "metasync_commit_duration_seconds", "", &m->commit_seconds, 3, 42.0031);
    assert_true(sample(t, "metasync_commit_duration_seconds_bucket{le=\"0.0005\"}") == 1);
    assert_true(sample(t, "metasync_commit_duration_seconds_bucket{le=\"0.005\"}") == 2);
    assert_true(sample(t, "metasync_commit_duration_seconds_bucket{le=\"10\"}") == 2);
    check_hist(t, "metasync_ingest_lag_seconds", "lane=\"fast\",", &m->ingest_lag[MS_LANE_FAST], 1,
               0.001);
    check_hist(t, "metasync_ingest_lag_seconds", "lane=\"bulk\",", &m->ingest_lag[MS_LANE_BULK], 2,
               0.5);
    assert_true(sample(t, "metasync_ingest_lag_seconds_bucket{lane=\"fast\",le=\"0.001\"}") == 1);
    assert_true(sample(t, "metasync_ingest_lag_seconds_bucket{lane=\"bulk\",le=\"0.1\"}") == 0);
    assert_true(sample(t, "metasync_ingest_lag_seconds_bucket{lane=\"bulk\",le=\"0.25\"}") == 1);
    free(t);
    free(m);
}

static ms_metrics *g_m;

static void *observer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        ms_hist_observe(&g_m->commit_seconds, (i % 7) * 0.001);
        atomic_fetch_add(&g_m->commits, 1);
    }
    return NULL;
}

static void test_concurrent_observations(void **state)
{
    (void)state;
    g_m = malloc(sizeof *g_m);
    ms_metrics_init(g_m);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, observer, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    char *t = render(g_m);
    double sum = 0;
    for (int i = 0; i < 20000; i++)
        sum += (i % 7) * 0.001;
    check_hist(t, "metasync_commit_duration_seconds", "", &g_m->commit_seconds, 80000, 4 * sum);
    assert_true(sample(t, "metasync_commits_total") == 80000);
    free(t);
    free(g_m);
}

/* Every sample line belongs to a family announced by exactly one HELP and one TYPE line before
 * it; sample lines are `name[{labels}] value`. */
static void test_exposition_format(void **state)
{
    (void)state;
    ms_metrics *m = malloc(sizeof *m);
    ms_metrics_init(m);
    atomic_fetch_add(&m->events_rejected[MS_ERR_MALFORMED_JSON], 1);
    ms_hist_observe(&m->batch_size, 3);
    char *t = render(m);
    assert_int_equal(t[strlen(t) - 1], '\n');
    char families[64][96];
    int nf = 0;
    char *copy = strdup(t);
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
        char name[96];
        if (strncmp(line, "# HELP ", 7) == 0) {
            assert_int_equal(sscanf(line + 7, "%95s", name), 1);
            for (int i = 0; i < nf; i++)
                assert_string_not_equal(families[i], name);
            assert_true(nf < 64);
            snprintf(families[nf++], sizeof families[0], "%s", name);
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char type[32];
            assert_int_equal(sscanf(line + 7, "%95s %31s", name, type), 2);
            assert_true(nf > 0);
            assert_string_equal(name, families[nf - 1]); /* right after its HELP */
            assert_true(strcmp(type, "counter") == 0 || strcmp(type, "histogram") == 0 ||
                        strcmp(type, "gauge") == 0);
            continue;
        }
        assert_true(line[0] != '#');
        /* name is the current family, or family_bucket/_sum/_count */
        size_t k = strcspn(line, "{ ");
        assert_true(k > 0 && k < sizeof name);
        memcpy(name, line, k);
        name[k] = '\0';
        const char *fam = families[nf - 1];
        size_t fl = strlen(fam);
        bool ok = strcmp(name, fam) == 0 ||
                  (strncmp(name, fam, fl) == 0 &&
                   (strcmp(name + fl, "_bucket") == 0 || strcmp(name + fl, "_sum") == 0 ||
                    strcmp(name + fl, "_count") == 0));
        if (!ok) print_error("sample %s outside its family %s\n", line, fam);
        assert_true(ok);
        const char *val = line[k] == '{' ? strchr(line, '}') : line + k;
        assert_non_null(val);
        if (*val == '}') val++;
        assert_int_equal(*val, ' ');
        char *end;
        strtod(val + 1, &end);
        assert_true(end > val + 1 && *end == '\0');
    }
    free(copy);
    assert_true(nf >= 12);
    free(t);
    free(m);
}

static void test_gauge_helpers(void **state)
{
    (void)state;
    ms_buf b = MS_BUF_INIT;
    ms_metrics_header(&b, "metasync_x", "gauge", "An example.");
    ms_metrics_sample(&b, "metasync_x", "", 3);
    ms_metrics_sample(&b, "metasync_x", NULL, 4.5);
    ms_metrics_sample(&b, "metasync_x", "lane=\"bulk\"", 1e6);
    ms_metrics_sample(&b, "metasync_x", "a=\"1\",b=\"2\"", 0);
    assert_string_equal(b.data, "# HELP metasync_x An example.\n"
                                "# TYPE metasync_x gauge\n"
                                "metasync_x 3\n"
                                "metasync_x 4.5\n"
                                "metasync_x{lane=\"bulk\"} 1000000\n"
                                "metasync_x{a=\"1\",b=\"2\"} 0\n");
    /* large integers stay exact */
    ms_buf_reset(&b);
    ms_metrics_sample(&b, "n", "", 9007199254740992.0);
    assert_string_equal(b.data, "n 9007199254740992\n");
    ms_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters),
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_concurrent_observations),
        cmocka_unit_test(test_exposition_format),
        cmocka_unit_test(test_gauge_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
