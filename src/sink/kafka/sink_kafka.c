/*
 * sink_kafka.c — the Kafka changes sink: produces every change record to kafka.changes_topic
 * ("<tenant>.<topic>" when kafka.changes_topic_per_tenant), keyed by the qualified name, with
 * headers `tenant`, `seq`, `cause` (the event id, when there is one) and `traceparent`. The value
 * is the change record as JSON (kafka.changes_format=json) or, for avro, a Confluent frame (the
 * registry id of subject metasync.changes-value) and an Avro datum of
 * schemas/metasync-change.avsc, with before/after as JSON text.
 *
 * Durability: the producer is idempotent with acks=all. deliver() produces the whole batch, then
 * waits for every delivery report, and reports as durable the seq of the last record of the
 * longest prefix (in seq order) that was delivered. Anything after a failed record is offered
 * again (MS_SINK_RETRY), so an outage delays records but never loses one; a record may appear
 * twice on the topic (at least once: consumers dedupe by the `seq` header or field).
 * A record refused for good (too large for message.max.bytes, invalid, topic not writable) is
 * not retried as it is: it is offered again reduced (without `before`, then without `after` too,
 * with a `truncated` header and field; KS_REDUCE_*), logged and counted, so one poison record
 * never stops the sink. See docs/kafka.md.
 *
 * traceparent: there is no tracing in MetaSync yet, so the W3C traceparent is derived from the
 * tenant and seq: version 00, a 128-bit trace id and a 64-bit span id from FNV-1a hashes of
 * "<tenant>/<seq>", flags 01. The same change always carries the same traceparent.
 *
 * Disabled (init leaves *ctx NULL) when kafka.brokers or kafka.changes_topic is empty.
 * Thread rules: callbacks run on the sink runner's thread only (ms_sink.h).
 */
#include "ms_avro.h"
#include "ms_buf.h"
#include "ms_json.h"
#include "ms_metrics.h"
#include "ms_registry.h"
#include "ms_sink.h"
#include "source/kafka/kafka_conf.h"

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct ksink {
    const ms_config *cfg;
    const ms_log *log;
    rd_kafka_t *rk;
    signed char *state; /* per record of the batch being delivered: 0 pending, 1 ok, -1 failed */
    /* kafka.changes_format=avro: the schema of schemas/metasync-change.avsc and its id in the
     * registry (subject metasync.changes-value; looked up again while 0). */
    ms_registry *registry;
    ms_avro_schema *schema;
    uint32_t schema_id;
    size_t cap;
    signed char *level;        /* per record of the batch: how it was reduced (KS_REDUCE_*) */
    rd_kafka_resp_err_t *errs; /* per record of the batch: its delivery error */
    /* A record the broker refused for good (too large, invalid): offered again reduced to
     * reduce_level when its seq comes back (the batch is retried from it). */
    uint64_t reduce_seq;
    int reduce_level;
    ms_metrics *metrics; /* may be NULL */
} ksink;

/* How far a change record too large (or refused) for Kafka is reduced, in this order. */
enum { KS_REDUCE_NONE, KS_REDUCE_BEFORE, KS_REDUCE_BOTH, KS_REDUCE_DROP };

static void on_report(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    ksink *k = opaque;
    size_t i = (size_t)(uintptr_t)m->_private;
    if (i < k->cap) {
        k->state[i] = m->err ? -1 : 1;
        k->errs[i] = m->err;
    }
}

/* Creates the idempotent producer. */
static ms_err producer_new(ksink *k, ms_error *err)
{
    /* message.max.bytes: Kafka's broker default (1 MB); a larger change record is reduced. */
    static const char *const defaults[] = {
        "message.timeout.ms", "10000",   "linger.ms", "5", "partitioner", "murmur2_random",
        "message.max.bytes",  "1000000", NULL};
    static const char *const forced[] = {"enable.idempotence", "true", "acks", "all", NULL};
    rd_kafka_conf_t *conf = ms_kafka_conf_new(k->cfg, defaults, forced, err);
    if (!conf) return MS_ERR_CONFIG;
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_dr_msg_cb(conf, on_report);
    char errstr[512];
    k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!k->rk) {
        rd_kafka_conf_destroy(conf);
        return ms_error_set(err, MS_ERR_CONFIG, "kafka: %s", errstr);
    }
    return MS_OK;
}

static ms_err ksink_init(const ms_sink_init_args *a, void **ctx, ms_error *err)
{
    const ms_config *cfg = a->cfg;
    *ctx = NULL;
    if (!cfg->kafka_brokers || !*cfg->kafka_brokers || !cfg->kafka_changes_topic ||
        !*cfg->kafka_changes_topic)
        return MS_OK; /* disabled */
    bool avro = strcmp(cfg->kafka_changes_format, "avro") == 0;
    if (avro && !a->registry)
        return ms_error_set(err, MS_ERR_CONFIG,
                            "kafka.changes_format=avro needs a schema registry (registry.enabled "
                            "or registry.url)");
    ksink *k = ms_xcalloc(1, sizeof *k);
    k->cfg = cfg;
    k->log = a->log;
    k->metrics = a->metrics;
    ms_err rc = MS_OK;
    if (avro) {
        const char *avsc = ms_registry_builtin_text("metasync.changes-value");
        k->registry = a->registry;
        rc = avsc ? ms_avro_schema_parse(avsc, strlen(avsc), &k->schema, err)
                  : ms_error_set(err, MS_ERR_INTERNAL, "no built-in metasync.changes-value");
        if (rc == MS_OK)
            k->schema_id = ms_registry_builtin_id(a->registry, "metasync.changes-value");
        /* Embedded, the built-in is registered at open whatever the subject's level: no id
         * means the store refused it, and the sink could never write. External, the registry
         * may come later: deliver asks again (and says so on every retry). */
        if (rc == MS_OK && !k->schema_id && !(cfg->registry_url && *cfg->registry_url))
            rc = ms_error_set(err, MS_ERR_CONFIG,
                              "kafka.changes_format=avro: the built-in schema "
                              "metasync.changes-value could not be registered (see the registry "
                              "log line above)");
    }
    if (rc == MS_OK) rc = producer_new(k, err);
    if (rc != MS_OK) {
        ms_avro_schema_free(k->schema);
        free(k);
        return rc;
    }
    ms_log_info(a->log, "kafka: changes go to %s%s (%s)",
                cfg->kafka_changes_topic_per_tenant ? "<tenant>." : "", cfg->kafka_changes_topic,
                avro ? "avro" : "json");
    *ctx = k;
    return MS_OK;
}

static uint64_t fnv1a(const char *s, uint64_t h)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h ? h : 1;
}

/* The W3C traceparent of a change, derived from tenant and seq (see the file comment). */
static void traceparent(const char *tenant, uint64_t seq, char out[56])
{
    char key[300];
    snprintf(key, sizeof key, "%s/%llu", tenant, (unsigned long long)seq);
    uint64_t a = fnv1a(key, 0xcbf29ce484222325ull);
    uint64_t b = fnv1a(key, 0x84222325cbf29ce4ull);
    uint64_t c = fnv1a(key, 0x9e3779b97f4a7c15ull);
    snprintf(out, 56, "00-%016llx%016llx-%016llx-01", (unsigned long long)a, (unsigned long long)b,
             (unsigned long long)c);
}

static json_object *jstr_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

/* Appends the Confluent frame and the Avro datum (schemas/metasync-change.avsc) of c. */
static bool change_to_avro(ksink *k, const ms_change *c, ms_buf *out)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "seq", json_object_new_int64((int64_t)c->seq));
    json_object_object_add(o, "tenant", json_object_new_string(c->tenant));
    json_object_object_add(o, "op", json_object_new_string(c->op));
    json_object_object_add(o, "qualified_name", json_object_new_string(c->qn));
    json_object_object_add(o, "type", jstr_or_null(c->type));
    json_object_object_add(o, "version", json_object_new_int64(c->version));
    json_object_object_add(o, "before", jstr_or_null(c->before));
    json_object_object_add(o, "after", jstr_or_null(c->after));
    ms_error err;
    ms_error_clear(&err);
    json_object *changed = ms_json_parse(c->changed, strlen(c->changed), 0, NULL, &err);
    json_object_object_add(o, "changed", changed ? changed : json_object_new_array());
    json_object_object_add(o, "cause", jstr_or_null(c->cause));
    json_object_object_add(o, "ts", json_object_new_string(c->ts ? c->ts : ""));
    ms_avro_frame_header(k->schema_id, out);
    bool ok = ms_avro_encode(k->schema, o, out, &err) == MS_OK;
    if (!ok)
        ms_log_error(k->log, "kafka: change %llu does not encode as Avro: %s",
                     (unsigned long long)c->seq, err.detail);
    json_object_put(o);
    return ok;
}

/*
 * The value of c reduced to `level`: without `before` (KS_REDUCE_BEFORE), or without `before`
 * and `after` (KS_REDUCE_BOTH); JSON gets a field "truncated" naming what was left out (Avro: the
 * `truncated` header only). The full record stays in the change log (GET /api/v1/changes) and
 * the asset's state in GET /api/v1/assets/{qn} and .../history.
 */
static bool change_value(ksink *k, const ms_change *c, int level, ms_buf *val)
{
    ms_change r = *c;
    if (level >= KS_REDUCE_BEFORE) r.before = NULL;
    if (level >= KS_REDUCE_BOTH) r.after = NULL;
    ms_buf_reset(val);
    if (k->schema) return change_to_avro(k, &r, val);
    ms_change_to_json(&r, val);
    if (level >= KS_REDUCE_BEFORE) {
        val->len--; /* the closing brace */
        ms_buf_puts(val, level >= KS_REDUCE_BOTH ? ",\"truncated\":[\"before\",\"after\"]}"
                                                 : ",\"truncated\":[\"before\"]}");
    }
    return true;
}

/*
 * Queues record i, reduced to `level` or further when librdkafka refuses it for good (too large
 * for message.max.bytes); the level used is left in k->level[i]. Returns false if it cannot be
 * queued (after waiting for queue room).
 */
static bool produce_one(ksink *k, const char *topic, const ms_change *c, size_t i, int level,
                        ms_buf *val)
{
    k->level[i] = (signed char)level;
    k->errs[i] = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (level >= KS_REDUCE_DROP) { /* refused even without before and after: given up */
        ms_log_error(k->log,
                     "kafka: change %llu of %s cannot be produced to %s even reduced; skipped "
                     "(it stays in GET /api/v1/changes)",
                     (unsigned long long)c->seq, c->qn, topic);
        k->state[i] = 1;
        return true;
    }
    if (!change_value(k, c, level, val)) return false;
    rd_kafka_headers_t *h = rd_kafka_headers_new(5);
    char seq[24], tp[56];
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)c->seq);
    traceparent(c->tenant, c->seq, tp);
    rd_kafka_header_add(h, "tenant", -1, c->tenant, -1);
    rd_kafka_header_add(h, "seq", -1, seq, -1);
    if (c->cause) rd_kafka_header_add(h, "cause", -1, c->cause, -1);
    rd_kafka_header_add(h, "traceparent", -1, tp, -1);
    if (level > KS_REDUCE_NONE) {
        rd_kafka_header_add(h, "truncated", -1, level >= KS_REDUCE_BOTH ? "before,after" : "before",
                            -1);
        ms_log_warn(k->log,
                    "kafka: change %llu of %s is too large for %s (or refused): sent without %s; "
                    "the full record: GET /api/v1/changes, the asset: GET /api/v1/assets/...",
                    (unsigned long long)c->seq, c->qn, topic,
                    level >= KS_REDUCE_BOTH ? "before and after" : "before");
        if (k->metrics) atomic_fetch_add(&k->metrics->kafka_changes_reduced, 1);
    }
    for (int attempt = 0;; attempt++) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            k->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(c->qn, strlen(c->qn)), RD_KAFKA_V_VALUE(val->data, val->len),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)i), RD_KAFKA_V_END);
        if (!e) return true;
        if (ms_kafka_err_permanent(e)) { /* e.g. over message.max.bytes: reduce it, in order */
            rd_kafka_headers_destroy(h);
            return produce_one(k, topic, c, i, level + 1, val);
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt > 100) {
            ms_log_warn(k->log, "kafka: cannot produce change %llu to %s: %s",
                        (unsigned long long)c->seq, topic, rd_kafka_err2str(e));
            rd_kafka_headers_destroy(h);
            return false;
        }
        rd_kafka_poll(k->rk, 100); /* serves delivery reports, making room */
    }
}

static ms_sink_status ksink_deliver(void *ctx, const char *tenant, const ms_change *c, size_t n,
                                    unsigned long long now_ms, uint64_t *durable_seq)
{
    (void)now_ms;
    ksink *k = ctx;
    if (!n) {
        rd_kafka_poll(k->rk, 0);
        return MS_SINK_OK;
    }
    if (n > k->cap) {
        free(k->state);
        free(k->level);
        free(k->errs);
        k->state = ms_xcalloc(n, 1);
        k->level = ms_xcalloc(n, 1);
        k->errs = ms_xcalloc(n, sizeof *k->errs);
        k->cap = n;
    }
    memset(k->state, 0, k->cap);
    char topic[512];
    if (k->cfg->kafka_changes_topic_per_tenant)
        snprintf(topic, sizeof topic, "%s.%s", tenant, k->cfg->kafka_changes_topic);
    else
        snprintf(topic, sizeof topic, "%s", k->cfg->kafka_changes_topic);
    if (k->schema && !k->schema_id) { /* an external registry that was not reachable yet */
        k->schema_id = ms_registry_builtin_id(k->registry, "metasync.changes-value");
        if (!k->schema_id) {
            ms_log_error(k->log,
                         "kafka: no id for schema metasync.changes-value in registry %s yet; "
                         "changes wait (will retry)",
                         k->cfg->registry_url ? k->cfg->registry_url : "(embedded)");
            return MS_SINK_RETRY;
        }
    }
    ms_buf val = MS_BUF_INIT;
    size_t queued = 0;
    while (queued < n &&
           produce_one(k, topic, &c[queued], queued,
                       c[queued].seq == k->reduce_seq ? k->reduce_level : KS_REDUCE_NONE, &val))
        queued++;
    ms_buf_free(&val);
    /* Every queued record gets a report (delivered, or failed after message.timeout.ms). */
    for (;;) {
        size_t pending = 0;
        for (size_t i = 0; i < queued; i++)
            pending += k->state[i] == 0;
        if (!pending) break;
        rd_kafka_flush(k->rk, 100);
    }
    size_t ok = 0;
    while (ok < queued && k->state[ok] == 1)
        ok++;
    /* The first failed record refused for good is offered again, reduced one level further
     * (the records after it are offered again too: at least once). */
    if (ok < queued && ms_kafka_err_permanent(k->errs[ok])) {
        k->reduce_seq = c[ok].seq;
        k->reduce_level = k->level[ok] + 1;
    }
    if (ok) *durable_seq = c[ok - 1].seq;
    char fatal[256];
    if (rd_kafka_fatal_error(k->rk, fatal, sizeof fatal)) {
        /* The idempotent producer cannot go on (e.g. a sequence gap): start a new one. */
        ms_log_warn(k->log, "kafka: changes producer failed (%s); recreating it", fatal);
        rd_kafka_destroy(k->rk);
        k->rk = NULL;
        ms_error err;
        if (producer_new(k, &err) != MS_OK) {
            ms_log_error(k->log, "kafka: %s", err.detail);
            return MS_SINK_ERROR;
        }
        return MS_SINK_RETRY;
    }
    if (ok < n) {
        ms_log_warn(k->log, "kafka: %zu of %zu changes of %s delivered to %s; will retry", ok, n,
                    tenant, topic);
        return MS_SINK_RETRY;
    }
    return MS_SINK_OK;
}

static void ksink_destroy(void *ctx)
{
    ksink *k = ctx;
    if (!k) return;
    if (k->rk) {
        rd_kafka_flush(k->rk, 5000);
        rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        k->cap = 0; /* late reports of purged records are ignored */
        rd_kafka_flush(k->rk, 1000);
        rd_kafka_destroy(k->rk);
    }
    ms_avro_schema_free(k->schema);
    free(k->state);
    free(k->level);
    free(k->errs);
    free(k);
}

const ms_sink_ops ms_sink_kafka = {
    .version = MS_SINK_OPS_VERSION,
    .name = "kafka",
    .init = ksink_init,
    .deliver = ksink_deliver,
    .destroy = ksink_destroy,
};
