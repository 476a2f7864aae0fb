/*
 * kafka_produce.c — the Kafka benchmark's producer (bench/kafka.sh): reads the NDJSON estate that
 * bench_gen_estate writes, encodes every event as Confluent-framed Avro with our own codec and the
 * schema the server's embedded registry holds for metasync.events-value, and produces it to the
 * fast topic (connections, databases, schemas, tables, views, dashboards; key = the asset itself)
 * or the bulk topic (columns, bi_fields; key = their table or dashboard), as docs/kafka.md asks.
 *
 *   bench_kafka_produce --brokers B --server URL --file NDJSON [--count N] [--rate EV_PER_S]
 *                       [--fast-topic T] [--bulk-topic T] [--timeout-s S]
 *
 * Every event is encoded before the clock starts, so the timed part is librdkafka only.
 *
 * Throughput mode (no --rate): produces everything as fast as librdkafka takes it, then polls the
 * server's /metrics until applied + unchanged + duplicate + rejected events have grown by N.
 *   KPRODUCE events=N produce_s=… produce_per_s=… visible_s=… events_per_s=… applied=… rejected=…
 * (visible_s: first produce → the scrape that saw the last event processed; events_per_s = N /
 * visible_s.)
 *
 * Latency mode (--rate R): produces at R events/s (paced every millisecond) while a second thread
 * follows the change feed (GET /api/v1/changes/stream, Server-Sent Events) and notes when each
 * event's first change record (its `cause` = the event id) arrives. Latency = that arrival minus
 * the time the event was handed to rd_kafka_producev, both on CLOCK_MONOTONIC in this process.
 *   KLATENCY events=… seen=… sample=… sample_seen=… rate=… achieved_rate=… p50_ms=… p90_ms=…
 *            p99_ms=… max_ms=… warmup_s=… warmup_max_ms=…
 * With --dump FILE, one line per event: id, bulk (0/1), sent (ms after the first), latency (ms,
 * -1 when never seen).
 * The events sent in the first --warmup-s seconds (default 0) are left out of the quantiles (the
 * fresh producer's and consumer's connections and first fetches; their worst is warmup_max_ms).
 * Events are identified by the number in their id ("ev-00001234", as gen_estate writes them).
 *
 * Exit: 0 done, 1 timeout or error, 2 usage.
 */
#include "ms_avro.h"
#include "ms_buf.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct kmsg {
    char *key, *val;
    size_t klen, vlen;
    bool bulk;
    uint32_t idnum; /* the number of the event id, index into the send/seen times */
} kmsg;

typedef struct bench {
    const char *brokers, *server, *file, *fast_topic, *bulk_topic;
    const char *dump; /* --dump FILE, or NULL */
    size_t count;
    double rate, timeout_s, warmup_s;
    kmsg *msgs;
    size_t n;
    uint32_t max_id;
    double *sent_ms, *seen_ms; /* by id number; 0 = not yet */
    atomic_size_t seen;
    atomic_bool stop;
} bench;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static size_t on_body(char *d, size_t sz, size_t nm, void *ud)
{
    ms_buf_append(ud, d, sz * nm);
    return sz * nm;
}

/* GET url into out (reset first); returns the HTTP status, 0 on transport error. */
static long http_get(CURL *h, const char *url, ms_buf *out)
{
    ms_buf_reset(out);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    long code = 0;
    if (curl_easy_perform(h) != CURLE_OK) return 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

/* The schema id and parsed schema of metasync.events-value from the embedded registry. */
static ms_avro_schema *fetch_schema(bench *b, uint32_t *id)
{
    CURL *h = curl_easy_init();
    ms_buf body, url;
    ms_buf_init(&body);
    ms_buf_init(&url);
    ms_buf_printf(&url, "%s/registry/subjects/metasync.events-value/versions/latest", b->server);
    long code = http_get(h, ms_buf_cstr(&url), &body);
    curl_easy_cleanup(h);
    json_object *j = code == 200 ? json_tokener_parse(ms_buf_cstr(&body)) : NULL;
    json_object *jid = NULL, *jschema = NULL;
    ms_avro_schema *s = NULL;
    ms_error err;
    memset(&err, 0, sizeof err);
    if (j && json_object_object_get_ex(j, "id", &jid) &&
        json_object_object_get_ex(j, "schema", &jschema)) {
        const char *text = json_object_get_string(jschema);
        if (ms_avro_schema_parse(text, strlen(text), &s, &err) != MS_OK) {
            fprintf(stderr, "kafka_produce: registry schema: %s\n", err.detail);
            s = NULL;
        }
        *id = (uint32_t)json_object_get_int64(jid);
    } else {
        fprintf(stderr, "kafka_produce: GET %s answered %ld\n", ms_buf_cstr(&url), code);
    }
    json_object_put(j);
    ms_buf_free(&body);
    ms_buf_free(&url);
    return s;
}

/* Reads up to b->count lines of the NDJSON file and encodes each as a framed Avro message. */
static bool load(bench *b, const ms_avro_schema *schema, uint32_t schema_id)
{
    FILE *f = fopen(b->file, "rb");
    if (!f) {
        perror(b->file);
        return false;
    }
    size_t cap = b->count ? b->count : 1 << 20;
    b->msgs = ms_xcalloc(cap, sizeof *b->msgs);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    ms_buf out;
    ms_buf_init(&out);
    ms_error err;
    while ((!b->count || b->n < b->count) && (len = getline(&line, &lcap, f)) > 0) {
        json_object *ev = json_tokener_parse(line);
        if (!ev) continue;
        json_object *attrs = NULL, *v = NULL;
        if (json_object_object_get_ex(ev, "attributes", &attrs) &&
            json_object_is_type(attrs, json_type_object)) {
            /* Avro events carry attributes as JSON text (docs/kafka.md). */
            json_object_object_add(ev, "attributes",
                                   json_object_new_string(json_object_to_json_string_ext(
                                       attrs, JSON_C_TO_STRING_PLAIN)));
        }
        const char *type =
            json_object_object_get_ex(ev, "type", &v) ? json_object_get_string(v) : "";
        bool bulk = strcmp(type, "column") == 0 || strcmp(type, "bi_field") == 0;
        const char *qn =
            json_object_object_get_ex(ev, "qualified_name", &v) ? json_object_get_string(v) : "";
        const char *key =
            bulk && json_object_object_get_ex(ev, "parent", &v) ? json_object_get_string(v) : qn;
        const char *id = json_object_object_get_ex(ev, "id", &v) ? json_object_get_string(v) : "";
        ms_buf_reset(&out);
        ms_avro_frame_header(schema_id, &out);
        memset(&err, 0, sizeof err);
        if (ms_avro_encode(schema, ev, &out, &err) != MS_OK) {
            fprintf(stderr, "kafka_produce: encode line %zu: %s\n", b->n + 1, err.detail);
            json_object_put(ev);
            fclose(f);
            return false;
        }
        if (b->n == cap) {
            cap *= 2;
            b->msgs = ms_xrealloc(b->msgs, cap * sizeof *b->msgs);
        }
        kmsg *m = &b->msgs[b->n++];
        m->key = ms_xstrdup(key);
        m->klen = strlen(key);
        m->val = ms_xmalloc(out.len);
        memcpy(m->val, out.data, out.len);
        m->vlen = out.len;
        m->bulk = bulk;
        const char *digits = strpbrk(id, "0123456789");
        m->idnum = digits ? (uint32_t)strtoul(digits, NULL, 10) : 0;
        if (m->idnum > b->max_id) b->max_id = m->idnum;
        json_object_put(ev);
    }
    free(line);
    ms_buf_free(&out);
    fclose(f);
    return b->n > 0;
}

/* Sum of the counters of processed events in a /metrics text. */
static double processed(const char *text, double *applied, double *rejected)
{
    static const char *const names[] = {
        "metasync_events_applied_total", "metasync_events_unchanged_total",
        "metasync_events_duplicate_total", "metasync_events_rejected_total"};
    double sum = 0;
    *applied = *rejected = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (*p == '#') continue;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            size_t k = strlen(names[i]);
            if (strncmp(p, names[i], k) != 0 || (p[k] != ' ' && p[k] != '{')) continue;
            const char *sp = strchr(p, ' ');
            if (p[k] == '{') sp = strchr(strchr(p, '}'), ' ');
            double v = sp ? strtod(sp + 1, NULL) : 0;
            sum += v;
            if (i == 0) *applied += v;
            if (i == 3) *rejected += v;
        }
    }
    return sum;
}

static double scrape(CURL *h, const char *url, ms_buf *body, double *applied, double *rejected)
{
    if (http_get(h, url, body) != 200) return -1;
    return processed(ms_buf_cstr(body), applied, rejected);
}

static rd_kafka_t *make_producer(const bench *b)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[][2] = {
        {"bootstrap.servers", b->brokers},
        {"partitioner", "murmur2_random"},
        {"linger.ms", b->rate > 0 ? "1" : "20"},
        {"batch.num.messages", "10000"},
        {"queue.buffering.max.messages", "1000000"},
        {"queue.buffering.max.kbytes", "1048576"},
        {"log_level", "3"},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
        if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], errstr, sizeof errstr) !=
            RD_KAFKA_CONF_OK) {
            fprintf(stderr, "kafka_produce: %s: %s\n", kv[i][0], errstr);
            exit(2);
        }
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "kafka_produce: %s\n", errstr);
        exit(1);
    }
    return rk;
}

/* Produces msgs[i]; on a full queue serves delivery reports until there is room. */
static void produce_one(bench *b, rd_kafka_t *rk, size_t i)
{
    kmsg *m = &b->msgs[i];
    for (;;) {
        rd_kafka_resp_err_t e =
            rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(m->bulk ? b->bulk_topic : b->fast_topic),
                              RD_KAFKA_V_KEY(m->key, m->klen), RD_KAFKA_V_VALUE(m->val, m->vlen),
                              RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            fprintf(stderr, "kafka_produce: %s\n", rd_kafka_err2str(e));
            exit(1);
        }
        rd_kafka_poll(rk, 10);
    }
}

static int throughput(bench *b)
{
    CURL *h = curl_easy_init();
    ms_buf url, body;
    ms_buf_init(&url);
    ms_buf_init(&body);
    ms_buf_printf(&url, "%s/metrics", b->server);
    double applied0, rejected0, applied, rejected;
    double base = scrape(h, ms_buf_cstr(&url), &body, &applied0, &rejected0);
    if (base < 0) {
        fprintf(stderr, "kafka_produce: cannot scrape %s\n", ms_buf_cstr(&url));
        return 1;
    }
    rd_kafka_t *rk = make_producer(b);
    double t0 = now_ms();
    for (size_t i = 0; i < b->n; i++) {
        produce_one(b, rk, i);
        if ((i & 1023) == 0) rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 60000);
    double t_prod = now_ms();
    double done = base, t_vis = 0;
    while (now_ms() - t0 < b->timeout_s * 1e3) {
        done = scrape(h, ms_buf_cstr(&url), &body, &applied, &rejected);
        if (done >= base + (double)b->n) {
            t_vis = now_ms();
            break;
        }
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    rd_kafka_destroy(rk);
    int rc = 0;
    if (!t_vis) {
        fprintf(stderr, "kafka_produce: timeout: %.0f of %zu events processed\n", done - base,
                b->n);
        t_vis = now_ms();
        rc = 1;
    }
    double ps = (t_prod - t0) / 1e3, vs = (t_vis - t0) / 1e3;
    printf("KPRODUCE events=%zu produce_s=%.2f produce_per_s=%.0f visible_s=%.2f events_per_s=%.0f "
           "applied=%.0f rejected=%.0f processed=%.0f\n",
           b->n, ps, (double)b->n / ps, vs, (done - base) / vs, applied - applied0,
           rejected - rejected0, done - base);
    curl_easy_cleanup(h);
    ms_buf_free(&url);
    ms_buf_free(&body);
    return rc;
}

/* ---- latency mode: follow the change feed ------------------------------------------------ */

/* Scans SSE text for `"cause":"ev-NNN"` and notes the first time each id is seen. A record
 * split across two callbacks is kept in the carry buffer. */
typedef struct follower {
    bench *b;
    ms_buf carry;
} follower;

static size_t on_sse(char *d, size_t sz, size_t nm, void *ud)
{
    follower *f = ud;
    bench *b = f->b;
    size_t n = sz * nm;
    double t = now_ms();
    ms_buf_append(&f->carry, d, n);
    char *p = f->carry.data, *end = f->carry.data + f->carry.len;
    char *last_nl = NULL;
    for (char *q = end; q > p; q--)
        if (q[-1] == '\n') {
            last_nl = q;
            break;
        }
    if (!last_nl) return atomic_load(&b->stop) ? 0 : n;
    char save = *last_nl;
    *last_nl = '\0';
    for (char *c = strstr(p, "\"cause\":\""); c; c = strstr(c + 1, "\"cause\":\"")) {
        const char *digits = c + 9;
        while (*digits && *digits != '"' && (*digits < '0' || *digits > '9'))
            digits++;
        if (*digits < '0' || *digits > '9') continue;
        unsigned long id = strtoul(digits, NULL, 10);
        if (id <= b->max_id && b->sent_ms[id] > 0 && b->seen_ms[id] == 0) {
            b->seen_ms[id] = t;
            atomic_fetch_add(&b->seen, 1);
        }
    }
    *last_nl = save;
    size_t rest = (size_t)(end - last_nl);
    memmove(f->carry.data, last_nl, rest);
    f->carry.len = rest;
    return atomic_load(&b->stop) ? 0 : n;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b2, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b2, (void)c, (void)d;
    return atomic_load(&((bench *)ud)->stop) ? 1 : 0;
}

static void *follow(void *arg)
{
    bench *b = arg;
    follower f = {.b = b};
    ms_buf_init(&f.carry);
    ms_buf url;
    ms_buf_init(&url);
    /* From the current end of the feed: earlier records are not ours. */
    ms_buf_printf(&url, "%s/api/v1/changes?limit=1", b->server);
    CURL *h = curl_easy_init();
    ms_buf body;
    ms_buf_init(&body);
    long long last = 0;
    if (http_get(h, ms_buf_cstr(&url), &body) == 200) {
        const char *ls = strstr(ms_buf_cstr(&body), "\"last_seq\":");
        if (ls) last = strtoll(ls + 11, NULL, 10);
    }
    ms_buf_reset(&url);
    ms_buf_printf(&url, "%s/api/v1/changes/stream?after=%lld", b->server, last);
    curl_easy_setopt(h, CURLOPT_URL, ms_buf_cstr(&url));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_sse);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &f);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, b);
    while (!atomic_load(&b->stop))
        curl_easy_perform(h); /* reconnects if the stream ends */
    curl_easy_cleanup(h);
    ms_buf_free(&f.carry);
    ms_buf_free(&url);
    ms_buf_free(&body);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int latency(bench *b)
{
    b->sent_ms = ms_xcalloc((size_t)b->max_id + 1, sizeof(double));
    b->seen_ms = ms_xcalloc((size_t)b->max_id + 1, sizeof(double));
    rd_kafka_t *rk = make_producer(b);
    /* Metadata of every topic before the clock starts, so that the first events do not wait
     * for the producer's topic lookups. */
    const rd_kafka_metadata_t *md = NULL;
    if (rd_kafka_metadata(rk, 1, NULL, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_metadata_destroy(md);
    pthread_t th;
    pthread_create(&th, NULL, follow, b);
    struct timespec pause = {0, 200 * 1000000}; /* let the stream connect */
    nanosleep(&pause, NULL);
    double t0 = now_ms();
    size_t i = 0;
    while (i < b->n) {
        double due = (now_ms() - t0) * b->rate / 1e3; /* events that should be out by now */
        while (i < b->n && (double)i < due) {
            b->sent_ms[b->msgs[i].idnum] = now_ms();
            produce_one(b, rk, i++);
        }
        rd_kafka_poll(rk, 0);
        struct timespec ms1 = {0, 1000000};
        nanosleep(&ms1, NULL);
    }
    double t_end = now_ms();
    rd_kafka_flush(rk, 60000);
    while (atomic_load(&b->seen) < b->n && now_ms() - t_end < b->timeout_s * 1e3) {
        struct timespec ms20 = {0, 20 * 1000000};
        nanosleep(&ms20, NULL);
    }
    atomic_store(&b->stop, true);
    pthread_join(th, NULL);
    rd_kafka_destroy(rk);
    FILE *dump = b->dump ? fopen(b->dump, "w") : NULL;
    if (dump) {
        for (size_t j = 0; j < b->n; j++) {
            uint32_t id = b->msgs[j].idnum;
            fprintf(dump, "%u %d %.3f %.3f\n", id, b->msgs[j].bulk, b->sent_ms[id] - t0,
                    b->seen_ms[id] > 0 ? b->seen_ms[id] - b->sent_ms[id] : -1.0);
        }
        fclose(dump);
    }
    double *lat = ms_xcalloc(b->n, sizeof *lat);
    size_t k = 0, sample = 0, seen_all = 0;
    double warm_max = 0;
    for (size_t j = 0; j < b->n; j++) {
        uint32_t id = b->msgs[j].idnum;
        double l = b->seen_ms[id] > 0 ? b->seen_ms[id] - b->sent_ms[id] : -1;
        seen_all += l >= 0;
        if (b->sent_ms[id] - t0 < b->warmup_s * 1e3) { /* warm-up: not in the sample */
            if (l > warm_max) warm_max = l;
            continue;
        }
        sample++;
        if (l >= 0) lat[k++] = l;
    }
    qsort(lat, k, sizeof *lat, cmp_double);
#define Q(q) (k ? lat[(size_t)((double)(k - 1) * (q))] : 0.0)
    printf("KLATENCY events=%zu seen=%zu sample=%zu sample_seen=%zu rate=%.0f achieved_rate=%.0f "
           "p50_ms=%.1f "
           "p90_ms=%.1f p99_ms=%.1f max_ms=%.1f warmup_s=%.1f warmup_max_ms=%.1f\n",
           b->n, seen_all, sample, k, b->rate, (double)b->n / ((t_end - t0) / 1e3), Q(0.50),
           Q(0.90), Q(0.99), k ? lat[k - 1] : 0.0, b->warmup_s, warm_max);
#undef Q
    free(lat);
    return seen_all == b->n ? 0 : 1;
}

static void usage(void)
{
    fputs("usage: bench_kafka_produce --brokers B --server URL --file NDJSON [--count N]\n"
          "         [--rate EV_PER_S] [--fast-topic T] [--bulk-topic T] [--timeout-s S] "
          "[--warmup-s S]\n"
          "         [--dump FILE]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    bench b = {
        .fast_topic = "metasync.events", .bulk_topic = "metasync.events.bulk", .timeout_s = 600};
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        const char *a = argv[i], *v = argv[++i];
        if (strcmp(a, "--brokers") == 0)
            b.brokers = v;
        else if (strcmp(a, "--server") == 0)
            b.server = v;
        else if (strcmp(a, "--file") == 0)
            b.file = v;
        else if (strcmp(a, "--count") == 0)
            b.count = strtoull(v, NULL, 10);
        else if (strcmp(a, "--rate") == 0)
            b.rate = strtod(v, NULL);
        else if (strcmp(a, "--fast-topic") == 0)
            b.fast_topic = v;
        else if (strcmp(a, "--bulk-topic") == 0)
            b.bulk_topic = v;
        else if (strcmp(a, "--warmup-s") == 0)
            b.warmup_s = strtod(v, NULL);
        else if (strcmp(a, "--dump") == 0)
            b.dump = v;
        else if (strcmp(a, "--timeout-s") == 0)
            b.timeout_s = strtod(v, NULL);
        else
            usage();
    }
    if (!b.brokers || !b.server || !b.file) usage();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    uint32_t schema_id = 0;
    ms_avro_schema *schema = fetch_schema(&b, &schema_id);
    if (!schema) return 1;
    double t = now_ms();
    if (!load(&b, schema, schema_id)) return 1;
    size_t bytes = 0;
    for (size_t i = 0; i < b.n; i++)
        bytes += b.msgs[i].vlen;
    fprintf(stderr,
            "kafka_produce: %zu events encoded (schema id %u, %.0f B/event Avro) in %.1f s\n", b.n,
            schema_id, (double)bytes / (double)b.n, (now_ms() - t) / 1e3);
    int rc = b.rate > 0 ? latency(&b) : throughput(&b);
    ms_avro_schema_free(schema);
    return rc;
}
