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
#include "ms_registry.h"
#include "ms_sink.h"
#include "source/kafka/kafka_conf.h"

#include <librdkafka/rdkafka.h>
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
} ksink;

static void on_report(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    ksink *k = opaque;
    size_t i = (size_t)(uintptr_t)m->_private;
    if (i < k->cap) k->state[i] = m->err ? -1 : 1;
}

/* Creates the idempotent producer. */
static ms_err producer_new(ksink *k, ms_error *err)
{
    static const char *const defaults[] = {"message.timeout.ms", "10000",          "linger.ms", "5",
                                           "partitioner",        "murmur2_random", NULL};
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
    ms_err rc = MS_OK;
    if (avro) {
        const char *avsc = ms_registry_builtin_text("metasync.changes-value");
        k->registry = a->registry;
        rc = avsc ? ms_avro_schema_parse(avsc, strlen(avsc), &k->schema, err)
                  : ms_error_set(err, MS_ERR_INTERNAL, "no built-in metasync.changes-value");
        if (rc == MS_OK)
            k->schema_id = ms_registry_builtin_id(a->registry, "metasync.changes-value");
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

/* Queues record i; returns false if librdkafka refuses it (after waiting for queue room). */
static bool produce_one(ksink *k, const char *topic, const ms_change *c, size_t i, ms_buf *val)
{
    ms_buf_reset(val);
    if (!k->schema)
        ms_change_to_json(c, val);
    else if (!change_to_avro(k, c, val))
        return false;
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    char seq[24], tp[56];
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)c->seq);
    traceparent(c->tenant, c->seq, tp);
    rd_kafka_header_add(h, "tenant", -1, c->tenant, -1);
    rd_kafka_header_add(h, "seq", -1, seq, -1);
    if (c->cause) rd_kafka_header_add(h, "cause", -1, c->cause, -1);
    rd_kafka_header_add(h, "traceparent", -1, tp, -1);
    for (int attempt = 0;; attempt++) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            k->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(c->qn, strlen(c->qn)), RD_KAFKA_V_VALUE(val->data, val->len),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)i), RD_KAFKA_V_END);
        if (!e) return true;
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
        k->state = ms_xcalloc(n, 1);
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
        if (!k->schema_id) return MS_SINK_RETRY;
    }
    ms_buf val = MS_BUF_INIT;
    size_t queued = 0;
    while (queued < n && produce_one(k, topic, &c[queued], queued, &val))
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
    free(k);
}

const ms_sink_ops ms_sink_kafka = {
    .version = MS_SINK_OPS_VERSION,
    .name = "kafka",
    .init = ksink_init,
    .deliver = ksink_deliver,
    .destroy = ksink_destroy,
};
