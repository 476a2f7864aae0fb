/*
 * fastlane_probe.c — fast-lane latency under a bulk backlog: posts one table event at a time to a
 * running server and measures posted → visible (GET /api/v1/assets/<qn> answers 200), while
 * something else (bench/run.sh starts `metasync ingest` of a columns-only file) keeps the bulk
 * lane full.
 *
 *   bench_fastlane_probe --server URL [--count N] [--interval-ms MS] [--watch-pid PID]
 *                        [--prefix NAME] [--wait-backlog-s S]
 *
 * Before probing it waits (up to --wait-backlog-s) for metasync_lane_queue_events{lane="bulk"}
 * to be non-zero and the fast lane to be empty (the backlog file starts with its tables). Before each probe it reads that gauge (outside the timed region) so that the
 * report says how much backlog each probe met. It stops early when --watch-pid (the backlog
 * producer) has exited. Prints a human summary and one machine line:
 *   FASTLANE probes=… under_backlog=… p50_ms=… p90_ms=… p99_ms=… max_ms=… post_p99_ms=…
 *            bulk_queue_min=… bulk_queue_median=… bulk_queue_max=… server_lag_p50_ms=…
 *            server_lag_p99_ms=…
 * (server_lag_*: the probes' enqueue → commit time from the server's fast-lane histogram,
 * the difference between a scrape before the first probe and one after the last).
 */
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static size_t on_write(char *d, size_t sz, size_t nm, void *ud)
{
    sbuf *b = ud;
    size_t k = sz * nm;
    if (b->n + k + 1 > b->cap) {
        b->cap = (b->n + k + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) return 0;
    }
    memcpy(b->p + b->n, d, k);
    b->n += k;
    b->p[b->n] = '\0';
    return k;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Runs one request on the reused handle h; returns the HTTP status (0 on transport error). */
static long request(CURL *h, const char *url, const char *body, sbuf *out)
{
    out->n = 0;
    if (out->p) out->p[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 60000L);
    static struct curl_slist *hdr = NULL;
    if (!hdr) hdr = curl_slist_append(NULL, "Content-Type: application/x-ndjson");
    if (body) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    }
    if (curl_easy_perform(h) != CURLE_OK) return 0;
    long st = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
    return st;
}

/* The depth of a lane ("bulk" or "fast") in the last /metrics answer, -1 when absent. */
static long lane_depth(const sbuf *b, const char *lane)
{
    char key[96];
    snprintf(key, sizeof key, "metasync_lane_queue_events{lane=\"%s\"} ", lane);
    const char *k = b->p ? strstr(b->p, key) : NULL;
    return k ? (long)strtod(k + strlen(key), NULL) : -1;
}

/* The bulk lane depth from /metrics (and the fast one in *fast), -1 when unreadable. */
static long bulk_depth(CURL *h, const char *server, sbuf *b, long *fast)
{
    char url[1024];
    snprintf(url, sizeof url, "%s/metrics", server);
    *fast = -1;
    if (request(h, url, NULL, b) != 200 || !b->p) return -1;
    *fast = lane_depth(b, "fast");
    return lane_depth(b, "bulk");
}

/* The cumulative buckets of metasync_ingest_lag_seconds{lane="fast"} in a /metrics answer. */
#define MAXB 32
typedef struct hist {
    int n;
    double le[MAXB]; /* upper bounds; the last is +Inf (stored as -1) */
    double cum[MAXB];
} hist;

static void fast_lag_hist(const sbuf *b, hist *h)
{
    h->n = 0;
    const char *key = "metasync_ingest_lag_seconds_bucket{lane=\"fast\",le=\"";
    for (const char *p = b->p ? strstr(b->p, key) : NULL; p && h->n < MAXB; p = strstr(p, key)) {
        p += strlen(key);
        h->le[h->n] = strncmp(p, "+Inf", 4) == 0 ? -1 : strtod(p, NULL);
        const char *v = strchr(p, ' ');
        h->cum[h->n++] = v ? strtod(v + 1, NULL) : 0;
    }
}

/* Quantile q of the observations between two scrapes (a before b), linear inside a bucket. */
static double hist_delta_q(const hist *a, const hist *b, double q)
{
    if (b->n == 0 || a->n != b->n) return -1;
    double total = b->cum[b->n - 1] - a->cum[a->n - 1];
    if (total <= 0) return -1;
    double rank = q * total, prevb = 0, prevc = 0;
    for (int i = 0; i < b->n; i++) {
        double c = b->cum[i] - a->cum[i];
        if (c >= rank) {
            if (b->le[i] < 0) return prevb;
            return c == prevc ? b->le[i] : prevb + (b->le[i] - prevb) * (rank - prevc) / (c - prevc);
        }
        if (b->le[i] >= 0) prevb = b->le[i];
        prevc = c;
    }
    return prevb;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_l(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
    if (!n) return 0;
    size_t k = (size_t)(p * (double)(n - 1) + 0.5);
    return v[k < n ? k : n - 1];
}

static bool alive(pid_t pid)
{
    return pid <= 0 || kill(pid, 0) == 0 || errno == EPERM;
}

int main(int argc, char **argv)
{
    const char *server = NULL, *prefix = "probe";
    long count = 200, interval = 20, wait_s = 30;
    pid_t watch = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--server") == 0)
            server = argv[i + 1];
        else if (strcmp(argv[i], "--count") == 0)
            count = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--interval-ms") == 0)
            interval = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--watch-pid") == 0)
            watch = (pid_t)strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--prefix") == 0)
            prefix = argv[i + 1];
        else if (strcmp(argv[i], "--wait-backlog-s") == 0)
            wait_s = strtol(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "fastlane_probe: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!server || count < 1) {
        fputs("usage: bench_fastlane_probe --server URL [--count N] [--interval-ms MS]"
              " [--watch-pid PID] [--prefix NAME] [--wait-backlog-s S]\n",
              stderr);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *h = curl_easy_init(), *m = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(m, CURLOPT_TCP_NODELAY, 1L);
    sbuf b = {0}, mb = {0};

    /* Wait for the backlog to build (bulk lane non-empty, fast lane drained). */
    double w0 = now_ms();
    long d = 0, f = 0;
    while (((d = bulk_depth(m, server, &mb, &f)) <= 0 || f > 0) &&
           now_ms() - w0 < (double)wait_s * 1000 && alive(watch))
        usleep(50000);
    fprintf(stderr, "fastlane_probe: bulk lane holds %ld events (fast %ld) after %.1f s; probing\n",
            d, f, (now_ms() - w0) / 1000);
    hist h0, h1;
    fast_lag_hist(&mb, &h0);

    double *vis = calloc((size_t)count, sizeof *vis), *post = calloc((size_t)count, sizeof *post);
    long *depth = calloc((size_t)count, sizeof *depth);
    size_t n = 0, under = 0, failed = 0;
    char body[512], url[1024], qn[256];
    for (long i = 0; i < count && alive(watch); i++) {
        long dep = bulk_depth(m, server, &mb, &f);
        snprintf(qn, sizeof qn, "%s-%d/db/schema/t_%05ld", prefix, (int)getpid(), i);
        snprintf(body, sizeof body,
                 "{\"id\":\"%s-%d-%ld\",\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":"
                 "\"%s\",\"attributes\":{\"owner\":\"probe\",\"description\":\"fast-lane probe "
                 "%ld\"}}\n",
                 prefix, (int)getpid(), i, qn, i);
        snprintf(url, sizeof url, "%s/api/v1/events", server);
        double t0 = now_ms();
        long st = request(h, url, body, &b);
        double t1 = now_ms();
        if (st != 200 || !b.p || !strstr(b.p, "\"applied\":1")) {
            failed++;
            fprintf(stderr, "fastlane_probe: POST answered %ld: %.200s\n", st, b.p ? b.p : "");
            continue;
        }
        snprintf(url, sizeof url, "%s/api/v1/assets/%s", server, qn);
        long gst;
        int tries = 0;
        while ((gst = request(h, url, NULL, &b)) != 200 && tries++ < 1000) usleep(1000);
        double t2 = now_ms();
        if (gst != 200) {
            failed++;
            continue;
        }
        vis[n] = t2 - t0;
        post[n] = t1 - t0;
        depth[n] = dep;
        if (dep > 0) under++;
        n++;
        if (interval > 0) usleep((useconds_t)interval * 1000);
    }
    long final_depth = bulk_depth(m, server, &mb, &f);
    fast_lag_hist(&mb, &h1);
    /* The server's own view of the probes: enqueue → commit, from its fast-lane histogram. */
    double lag50 = hist_delta_q(&h0, &h1, 0.5) * 1e3, lag99 = hist_delta_q(&h0, &h1, 0.99) * 1e3;
    curl_easy_cleanup(h);
    curl_easy_cleanup(m);
    curl_global_cleanup();

    qsort(vis, n, sizeof *vis, cmp_d);
    qsort(post, n, sizeof *post, cmp_d);
    long *ds = calloc(n ? n : 1, sizeof *ds);
    memcpy(ds, depth, n * sizeof *ds);
    qsort(ds, n, sizeof *ds, cmp_l);
    double p50 = pct(vis, n, 0.5), p90 = pct(vis, n, 0.9), p99 = pct(vis, n, 0.99),
           mx = n ? vis[n - 1] : 0, pp99 = pct(post, n, 0.99);
    long dmin = n ? ds[0] : 0, dmed = n ? ds[n / 2] : 0, dmax = n ? ds[n - 1] : 0;
    printf("fast lane: %zu probes (%zu met a bulk backlog, %zu failed): posted -> visible p50 %.1f "
           "ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms (POST alone p99 %.1f ms); bulk queue "
           "min/median/max %ld/%ld/%ld events (at the end %ld); server fast-lane lag (enqueue -> "
           "commit) of the probes p50 %.1f ms, p99 %.1f ms (histogram buckets)\n",
           n, under, failed, p50, p90, p99, mx, pp99, dmin, dmed, dmax, final_depth, lag50, lag99);
    printf("FASTLANE probes=%zu under_backlog=%zu failed=%zu p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f "
           "max_ms=%.2f post_p99_ms=%.2f bulk_queue_min=%ld bulk_queue_median=%ld "
           "bulk_queue_max=%ld server_lag_p50_ms=%.2f server_lag_p99_ms=%.2f\n",
           n, under, failed, p50, p90, p99, mx, pp99, dmin, dmed, dmax, lag50, lag99);
    free(vis);
    free(post);
    free(depth);
    free(ds);
    free(b.p);
    free(mb.p);
    return n ? 0 : 1;
}
