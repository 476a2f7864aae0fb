/*
 * ms_metrics.h — Prometheus counters and histograms of the engine, rendered in the text
 * exposition format (checked by `promtool check metrics` in the tests).
 *
 * One ms_metrics per process, created by `serve` and passed by pointer to every part that counts
 * (no global registry). All updates are lock-free atomics and may come from any thread.
 * Gauges that describe live state (queue depth, change seq, orphans, sink lag) are not stored
 * here: their owners append them at render time (ms_engine_metrics_render etc.), using the
 * helpers below so that the format stays in one place.
 */
#ifndef MS_METRICS_H
#define MS_METRICS_H

#include "ms_buf.h"
#include "ms_error.h"
#include "ms_types.h"

#include <stdatomic.h>
#include <stdint.h>

#define MS_HIST_MAX_BUCKETS 16

typedef struct ms_hist {
    int nbuckets;
    double bounds[MS_HIST_MAX_BUCKETS]; /* upper bounds, ascending; +Inf is implicit */
    atomic_ullong counts[MS_HIST_MAX_BUCKETS + 1];
    atomic_ullong sum_micro; /* sum of observations x 1e6 (seconds → microseconds) */
    atomic_ullong count;
} ms_hist;

typedef struct ms_metrics {
    atomic_ullong events_received;
    atomic_ullong events_applied;
    atomic_ullong events_unchanged;
    atomic_ullong events_duplicate;
    atomic_ullong events_rejected[MS_ERR__COUNT];
    atomic_ullong events_overloaded; /* in batches answered 503 (lanes full, or stopping) */
    atomic_ullong http_requests;
    atomic_ullong http_problems[MS_ERR__COUNT];
    atomic_ullong commits;
    atomic_ullong changes_written;
    atomic_ullong kafka_changes_reduced; /* change records sent without before (and after) */
    ms_hist batch_size;                  /* events per submitted batch */
    ms_hist commit_seconds;              /* duration of one group commit */
    ms_hist ingest_lag[MS_LANE_COUNT];   /* event enqueued → committed, per lane */
} ms_metrics;

/* Initialises all counters to zero and the histogram buckets. */
void ms_metrics_init(ms_metrics *m);
/* Records one observation (seconds, or a count for batch_size). */
void ms_hist_observe(ms_hist *h, double v);

/* Appends every counter and histogram of m in Prometheus text format. */
void ms_metrics_render(ms_metrics *m, ms_buf *out);

/* Format helpers for owners of gauges. `labels` is either "" or a label set without braces
 * (`lane="fast"`); HELP/TYPE lines are written by ms_metrics_header once per family. */
void ms_metrics_header(ms_buf *out, const char *name, const char *type, const char *help);
void ms_metrics_sample(ms_buf *out, const char *name, const char *labels, double value);

#endif
