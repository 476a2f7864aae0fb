/* ms_metrics.c — counters, histograms and their Prometheus text rendering (see ms_metrics.h). */
#include "ms_metrics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void hist_init(ms_hist *h, const double *bounds, int n)
{
    h->nbuckets = n;
    for (int i = 0; i < n; i++) h->bounds[i] = bounds[i];
    for (int i = 0; i <= MS_HIST_MAX_BUCKETS; i++) atomic_init(&h->counts[i], 0);
    atomic_init(&h->sum_micro, 0);
    atomic_init(&h->count, 0);
}

void ms_metrics_init(ms_metrics *m)
{
    static const double secs[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                  0.1,    0.25,  0.5,    1,     2.5,  5,     10};
    static const double sizes[] = {1, 10, 100, 1000, 5000, 10000, 50000, 100000};
    static const double lags[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                  0.5,   1,     2.5,  5,     10,   30,  60};
    memset(m, 0, sizeof *m);
    hist_init(&m->batch_size, sizes, (int)(sizeof sizes / sizeof *sizes));
    hist_init(&m->commit_seconds, secs, (int)(sizeof secs / sizeof *secs));
    for (int l = 0; l < MS_LANE_COUNT; l++)
        hist_init(&m->ingest_lag[l], lags, (int)(sizeof lags / sizeof *lags));
}

void ms_hist_observe(ms_hist *h, double v)
{
    int i = 0;
    while (i < h->nbuckets && v > h->bounds[i]) i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_micro, (unsigned long long)llround(v * 1e6),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void ms_metrics_header(ms_buf *out, const char *name, const char *type, const char *help)
{
    ms_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void ms_metrics_sample(ms_buf *out, const char *name, const char *labels, double value)
{
    if (labels && *labels)
        ms_buf_printf(out, "%s{%s} %.17g\n", name, labels, value);
    else
        ms_buf_printf(out, "%s %.17g\n", name, value);
}

static void counter(ms_buf *out, const char *name, const char *help, atomic_ullong *v)
{
    ms_metrics_header(out, name, "counter", help);
    ms_metrics_sample(out, name, "", (double)atomic_load(v));
}

/* Renders one histogram's samples (no header) with an optional extra label. */
static void hist_samples(ms_buf *out, const char *name, const char *label, ms_hist *h)
{
    unsigned long long cum = 0;
    const char *sep = label && *label ? "," : "";
    for (int i = 0; i <= h->nbuckets; i++) {
        cum += atomic_load(&h->counts[i]);
        if (i < h->nbuckets)
            ms_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, label ? label : "", sep,
                          h->bounds[i], cum);
        else
            ms_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, label ? label : "",
                          sep, cum);
    }
    const char *lb = label && *label ? "{" : "", *le = label && *label ? "}" : "";
    ms_buf_printf(out, "%s_sum%s%s%s %.6f\n", name, lb, label ? label : "", le,
                  (double)atomic_load(&h->sum_micro) / 1e6);
    ms_buf_printf(out, "%s_count%s%s%s %llu\n", name, lb, label ? label : "", le,
                  (unsigned long long)atomic_load(&h->count));
}

static void per_code(ms_buf *out, const char *name, const char *help, atomic_ullong *arr)
{
    ms_metrics_header(out, name, "counter", help);
    for (int i = 1; i < MS_ERR__COUNT; i++) {
        unsigned long long v = atomic_load(&arr[i]);
        if (!v) continue;
        char lbl[96];
        snprintf(lbl, sizeof lbl, "code=\"%s\"", ms_err_code((ms_err)i));
        ms_metrics_sample(out, name, lbl, (double)v);
    }
}

void ms_metrics_render(ms_metrics *m, ms_buf *out)
{
    counter(out, "metasync_events_received_total", "Events received by all sources.",
            &m->events_received);
    counter(out, "metasync_events_applied_total", "Events that changed the store.",
            &m->events_applied);
    counter(out, "metasync_events_unchanged_total",
            "Events that were valid but changed nothing (no change record).",
            &m->events_unchanged);
    counter(out, "metasync_events_duplicate_total", "Events whose id was seen before.",
            &m->events_duplicate);
    per_code(out, "metasync_events_rejected_total", "Events rejected, by error code.",
             m->events_rejected);
    counter(out, "metasync_events_overloaded_total",
            "Events of batches answered 503 (lanes full or shutting down), to be sent again.",
            &m->events_overloaded);
    counter(out, "metasync_http_requests_total", "HTTP requests served.", &m->http_requests);
    per_code(out, "metasync_http_problems_total", "HTTP error answers, by error code.",
             m->http_problems);
    counter(out, "metasync_commits_total", "Group commits of the store.", &m->commits);
    counter(out, "metasync_changes_written_total", "Change records written to the change log.",
            &m->changes_written);
    counter(out, "metasync_kafka_changes_reduced_total",
            "Change records too large for Kafka, sent without before (and after).",
            &m->kafka_changes_reduced);
    ms_metrics_header(out, "metasync_batch_events", "histogram", "Events per submitted batch.");
    hist_samples(out, "metasync_batch_events", "", &m->batch_size);
    ms_metrics_header(out, "metasync_commit_duration_seconds", "histogram",
                      "Duration of one group commit (apply and durable write).");
    hist_samples(out, "metasync_commit_duration_seconds", "", &m->commit_seconds);
    ms_metrics_header(out, "metasync_ingest_lag_seconds", "histogram",
                      "Time from an event entering its lane to its commit, per lane.");
    for (int l = 0; l < MS_LANE_COUNT; l++) {
        char lbl[32];
        snprintf(lbl, sizeof lbl, "lane=\"%s\"", ms_lane_name((ms_lane)l));
        hist_samples(out, "metasync_ingest_lag_seconds", lbl, &m->ingest_lag[l]);
    }
}
