/*
 * source_kafka.c — the Kafka source: consumes events from kafka.topics (fast) and
 * kafka.bulk_topics (bulk), submits them to the engine, dead-letters what cannot be applied to
 * kafka.dlq_topic, and stores its positions (next offset per partition) in the store, in the
 * transaction of the events they cover, only once every message up to them is committed in the
 * store or durably dead-lettered. On assignment it seeks to those positions. See docs/kafka.md.
 *
 * Threads: one consumer thread polls the consumer and hands each message to the worker of its
 * topic's kind (fast or bulk) through a bounded queue; two worker threads each take a batch (up
 * to kafka.batch_max_messages, or whatever is queued), decode it, dead-letter what cannot be
 * decoded, submit it with its positions asynchronously (ms_engine_submit_async) and, while the
 * writer commits it, take and prepare the next batch; then wait for the first (ms_engine_wait),
 * dead-letter what the store rejected, commit the batch's offsets to Kafka asynchronously and
 * submit the next (worker_main). A bulk batch in the engine never delays fast-topic messages.
 * Memory: half of kafka.max_buffered_bytes is librdkafka's prefetch (queued.max.messages.kbytes,
 * unless set in kafka.properties), a quarter each worker (its queue plus its two batches): when
 * a worker holds more than its quarter, the consumer thread pauses the assigned partitions of
 * that worker's topics, and resumes them once it holds less than half of that.
 *
 * Offsets: the store's source_offsets are the truth (ms_store_ops.apply_at: written with the
 * batch, held back at a message the store rejected until its dead letter is delivered and a
 * later batch passes it). Kafka's committed offsets are advisory (lag tools): after a batch, the
 * worker stores offset+1 of its last message per partition (rd_kafka_offsets_store) and commits
 * them asynchronously; a failed commit (on_commit) is retried by the consumer thread from the
 * stored offsets every second until it succeeds. On assign, each partition starts at its stored
 * position (seek_stored), else at the committed offset, else auto.offset.reset.
 *
 * Rebalance: the eager protocol (librdkafka's default range,roundrobin). On revoke the callback
 * (on the consumer thread) drops the messages still queued (not processed, so not committed:
 * they are consumed again from the stored position by whoever gets the partition), waits for
 * each worker's batch in the engine to finish (a batch that is retrying gives up at its next
 * backoff, uncommitted: `revoking`; a prepared batch not yet submitted is dropped), resumes the
 * revoked partitions (librdkafka keeps the pause flag across unassign/assign), commits the stored
 * offsets synchronously, and only then unassigns.
 *
 * Ids: an event without an `id` gets "kafka:<topic>:<partition>:<offset>" (or, when that would
 * not fit in MS_MAX_ID_BYTES, a form with a hash of the topic: derived_id), so a message
 * delivered again (consumed past a position held at a dead letter, or from the committed Kafka
 * offset when the store has no position) is a duplicate, a no-op.
 *
 * Dead letters that the DLQ topic refuses for good are sent truncated (too large) or given up
 * (counted), never retried forever: dlq_redo.
 */
#include "kafka_conf.h"
#include "ms_avro.h"
#include "ms_json.h"
#include "ms_registry.h"
#include "ms_runtime.h"
#include "ms_source.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KS_POLL_MS    100
#define KS_MAX_TOPICS 32

typedef struct ks_node {
    rd_kafka_message_t *m;
    struct ks_node *next;
} ks_node;

struct ksource;

/* A worker: one queue and one thread for the topics of one kind (fast or bulk). */
typedef struct ks_worker {
    struct ksource *s;
    const char *kind; /* "fast" or "bulk" */
    char *topics[KS_MAX_TOPICS];
    size_t ntopics;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t work; /* a message was queued, or quit */
    pthread_cond_t idle; /* a batch finished */
    ks_node *head, *tail;
    size_t queued_bytes;
    size_t held_bytes; /* of the batches taken and not finished (counted with queued_bytes) */
    bool busy;         /* a batch is being processed */
    bool quit;   /* set after the consumer has closed */
    bool paused; /* consumer thread only */
} ks_worker;

typedef struct ksource {
    ms_runtime *rt;
    const ms_log *log;
    rd_kafka_t *consumer;
    rd_kafka_t *dlq;        /* producer of dead letters */
    ms_avro_schema *reader; /* schemas/metasync-event.avsc, to read Avro events with */
    ks_worker w[2];         /* [0] fast, [1] bulk */
    size_t max_queue_bytes; /* per worker */
    size_t batch_max;
    atomic_bool stopping;
    atomic_bool revoking; /* a revoke waits for the in-flight batches: they give up at backoff */
    pthread_t thread;
    bool thread_started;
    /* metrics */
    char *topic_names[2 * KS_MAX_TOPICS];
    atomic_ullong consumed[2 * KS_MAX_TOPICS];
    size_t ntopic_names;
    atomic_ullong dead_letters[MS_ERR__COUNT];
    atomic_ullong dead_letters_lost; /* could never be delivered (permanent produce error) */
    atomic_int paused_partitions;
    atomic_bool uncommitted; /* a worker's commit failed: stored offsets wait for a commit */
} ksource;

/* One message of a batch and what became of it. */
typedef struct ks_item {
    rd_kafka_message_t *m;
    ms_err code; /* MS_OK, or why it is dead-lettered */
    char detail[320];
    atomic_int dlq_state; /* 0 pending, 1 delivered, -1 failed */
    atomic_int dlq_err;   /* the rd_kafka_resp_err_t of the last failed delivery */
    bool truncate;        /* the dead letter is too large: send it cut (see dlq_produce) */
    bool retry; /* decoding failed for a reason that passes (registry unreachable): retry */
    size_t pos; /* 1-based index of its partition's position in the batch */
} ks_item;

/* ---- small helpers ---- */

static void split_topics(const char *list, char **out, size_t *n)
{
    *n = 0;
    const char *p = list ? list : "";
    while (*p && *n < KS_MAX_TOPICS) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t len = strcspn(p, ", ");
        if (len) out[(*n)++] = ms_xstrndup(p, len);
        p += len;
    }
}

static bool in_list(char *const *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0) return true;
    return false;
}

/* True when an in-flight batch must give up without committing: stopping, or a revoke waits. */
static bool giving_up(ksource *s)
{
    return atomic_load(&s->stopping) || atomic_load(&s->revoking);
}

/* Sleeps ms milliseconds unless giving up; returns false when giving up (stopping, or the
 * partitions are being revoked: the batch's messages go, uncommitted, to the next owner). */
static bool backoff(ksource *s, unsigned ms)
{
    for (unsigned slept = 0; slept < ms; slept += 20) {
        if (giving_up(s)) return false;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return !giving_up(s);
}

static unsigned next_backoff(unsigned ms)
{
    return ms >= 5000 ? 5000 : ms * 2;
}

/* The value of header `name` of m as a new string, or NULL. */
static char *header_str(rd_kafka_message_t *m, const char *name)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t len = 0;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR) return NULL;
    if (rd_kafka_header_get_last(h, name, &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR || !v)
        return NULL;
    return ms_xstrndup(v, len);
}

/* ---- decoding one message ---- */

/*
 * The id of an event without one: "kafka:<topic>:<partition>:<offset>" when that fits in
 * MS_MAX_ID_BYTES - 1, else "kafka:~<16 hex digits of FNV-1a 64 of the topic>:<partition>:
 * <offset>" (at most 56 bytes). Never truncated, so two messages never share an id; '~' is not
 * allowed in a Kafka topic name, so the two forms never collide. Caller frees.
 */
static char *derived_id(const char *topic, int32_t partition, int64_t offset)
{
    char id[MS_MAX_ID_BYTES];
    int n = snprintf(id, sizeof id, "kafka:%s:%d:%lld", topic, partition, (long long)offset);
    if (n < 0 || (size_t)n >= sizeof id) {
        uint64_t h = 0xcbf29ce484222325ull;
        for (const unsigned char *p = (const unsigned char *)topic; *p; p++) {
            h ^= *p;
            h *= 0x100000001b3ull;
        }
        snprintf(id, sizeof id, "kafka:~%016llx:%d:%lld", (unsigned long long)h, partition,
                 (long long)offset);
    }
    return ms_xstrdup(id);
}

/* Records why a message is dead-lettered; returns NULL for the caller to return. */
static ms_event *refuse(ks_item *it, ms_err code, const char *detail)
{
    it->code = code;
    snprintf(it->detail, sizeof it->detail, "%s", detail);
    return NULL;
}

/*
 * Decodes the JSON event text[0..len) of message m. The tenant comes from the `tenant` header,
 * else the event's own `tenant`, else "default". An event without an id gets the derived one.
 */
static ms_event *decode_json(ksource *s, ks_item *it, const char *text, size_t len)
{
    rd_kafka_message_t *m = it->m;
    const ms_config *cfg = s->rt->cfg;
    ms_error err;
    ms_error_clear(&err);
    json_object *o = ms_json_parse(text, len, (int)cfg->limits_max_depth, NULL, &err);
    if (err.code != MS_OK) return refuse(it, err.code, err.detail);
    char *tenant = header_str(m, "tenant");
    json_object *t = NULL;
    if (!tenant && json_object_is_type(o, json_type_object) &&
        json_object_object_get_ex(o, "tenant", &t) && json_object_is_type(t, json_type_string))
        tenant = ms_xstrdup(json_object_get_string(t));
    /* The event rules on the value parsed above (parsed once): they refuse a tenant that is not
     * a valid name (invalid_field), and text over the size limit. */
    ms_decode_opts opts = {tenant ? tenant : MS_DEFAULT_TENANT, s->rt->types,
                           (size_t)cfg->limits_max_event_bytes, (int)cfg->limits_max_depth};
    ms_event *ev = NULL;
    ms_err rc = ms_event_decode_parsed(o, len, &opts, &ev, &err);
    json_object_put(o);
    free(tenant);
    if (rc != MS_OK) return refuse(it, err.code, err.detail);
    if (!ev->id) ev->id = derived_id(rd_kafka_topic_name(m->rkt), m->partition, m->offset);
    return ev;
}

/*
 * Decodes a Confluent-framed Avro event: the writer schema by id from the registry, resolved to
 * the reader schema (schemas/metasync-event.avsc), then mapped to the JSON event (null fields
 * left out, `attributes` parsed from its JSON text) and decoded as one.
 */
static ms_event *decode_avro(ksource *s, ks_item *it)
{
    rd_kafka_message_t *m = it->m;
    ms_error err;
    ms_error_clear(&err);
    uint32_t id = 0;
    const uint8_t *datum = NULL;
    size_t dlen = 0;
    if (ms_avro_frame_parse(m->payload, m->len, &id, &datum, &dlen, &err) != MS_OK)
        return refuse(it, err.code, err.detail);
    if (!s->rt->registry || !s->reader) {
        char d[120];
        snprintf(d, sizeof d, "schema id %u: no schema registry (registry.enabled, registry.url)",
                 (unsigned)id);
        return refuse(it, MS_ERR_UNKNOWN_SCHEMA, d);
    }
    const ms_avro_schema *writer = NULL;
    if (ms_registry_schema_by_id(s->rt->registry, id, &writer, &err) != MS_OK) {
        /* Only an id the registry does not know, or a schema that is not valid, is a dead
         * letter; anything else (unreachable, 5xx) passes: the batch is retried. */
        if (err.code != MS_ERR_UNKNOWN_SCHEMA && err.code != MS_ERR_INVALID_SCHEMA)
            it->retry = true;
        return refuse(it, err.code, err.detail);
    }
    json_object *o = NULL;
    if (ms_avro_decode(writer, s->reader, datum, dlen, &o, &err) != MS_OK)
        return refuse(it, err.code, err.detail);
    json_object *ev = json_object_new_object();
    json_object_object_foreach(o, key, val)
    {
        if (!val) continue;
        if (strcmp(key, "attributes") == 0 && json_object_is_type(val, json_type_string)) {
            const char *text = json_object_get_string(val);
            json_object *attrs = ms_json_parse(text, strlen(text), 0, NULL, &err);
            if (err.code != MS_OK) {
                json_object_put(ev);
                json_object_put(o);
                char d[320];
                snprintf(d, sizeof d, "attributes: not JSON text: %.280s", err.detail);
                return refuse(it, MS_ERR_INVALID_FIELD, d);
            }
            json_object_object_add(ev, key, attrs);
        } else {
            json_object_object_add(ev, key, json_object_get(val));
        }
    }
    json_object_put(o);
    const char *text = json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN);
    ms_event *out = decode_json(s, it, text, strlen(text));
    json_object_put(ev);
    return out;
}

/* Decodes message m into an event (caller frees), or fills code/detail of it. */
static ms_event *decode_message(ksource *s, ks_item *it)
{
    rd_kafka_message_t *m = it->m;
    const char *v = m->payload;
    size_t len = m->payload ? m->len : 0;
    if (len == 0) return refuse(it, MS_ERR_BAD_MAGIC, "the message is empty");
    unsigned char b0 = (unsigned char)v[0];
    if (b0 == 0x00) return decode_avro(s, it);
    if (b0 != '{' && b0 != ' ' && b0 != '\t' && b0 != '\n' && b0 != '\r') {
        char d[120];
        snprintf(d, sizeof d,
                 "first byte 0x%02x: neither 0x00 (Confluent-framed Avro) nor '{' (a JSON event)",
                 b0);
        return refuse(it, MS_ERR_BAD_MAGIC, d);
    }
    return decode_json(s, it, v, len);
}

/* ---- dead letters ---- */

static void dlq_report(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    ks_item *it = m->_private;
    if (!it) return;
    atomic_store(&it->dlq_err, (int)m->err);
    atomic_store(&it->dlq_state, m->err ? -1 : 1);
}

/* The most of the original value a truncated dead letter keeps. */
#define KS_DLQ_CUT_BYTES 65536

/*
 * Produces one dead letter for it: the original key, value and headers plus the error.* and
 * source.* headers. When it->truncate (the whole was too large for the DLQ topic), the original
 * headers are left out, the value is cut to KS_DLQ_CUT_BYTES and header error.value_truncated
 * is "true". A produce refused at once leaves dlq_state -1 and the error in dlq_err.
 */
static void dlq_produce(ksource *s, ks_item *it)
{
    rd_kafka_message_t *m = it->m;
    rd_kafka_headers_t *orig = NULL;
    rd_kafka_headers_t *h =
        !it->truncate && rd_kafka_message_headers(m, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR
            ? rd_kafka_headers_copy(orig)
            : rd_kafka_headers_new(8);
    size_t vlen = m->payload ? m->len : 0;
    if (it->truncate) {
        rd_kafka_header_add(h, MS_DLQ_H_TRUNCATED, -1, "true", -1);
        if (vlen > KS_DLQ_CUT_BYTES) vlen = KS_DLQ_CUT_BYTES;
    }
    char part[24], off[24];
    snprintf(part, sizeof part, "%d", m->partition);
    snprintf(off, sizeof off, "%lld", (long long)m->offset);
    rd_kafka_header_add(h, MS_DLQ_H_CODE, -1, ms_err_code(it->code), -1);
    rd_kafka_header_add(h, MS_DLQ_H_MESSAGE, -1, it->detail, -1);
    rd_kafka_header_add(h, MS_DLQ_H_TOPIC, -1, rd_kafka_topic_name(m->rkt), -1);
    rd_kafka_header_add(h, MS_DLQ_H_PARTITION, -1, part, -1);
    rd_kafka_header_add(h, MS_DLQ_H_OFFSET, -1, off, -1);
    atomic_store(&it->dlq_state, 0);
    rd_kafka_resp_err_t e =
        rd_kafka_producev(s->dlq, RD_KAFKA_V_TOPIC(s->rt->cfg->kafka_dlq_topic),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_VALUE(m->payload, vlen),
                          RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(it), RD_KAFKA_V_END);
    if (e) {
        rd_kafka_headers_destroy(h);
        atomic_store(&it->dlq_err, (int)e);
        atomic_store(&it->dlq_state, -1);
        ms_log_warn(s->log, "kafka: cannot queue a dead letter: %s", rd_kafka_err2str(e));
    }
}

/*
 * Handles a failed dead letter (dlq_state -1): one too large is produced again truncated; one
 * refused for good otherwise (or too large even truncated) is given up (dlq_state -2: logged,
 * counted in metasync_kafka_dead_letters_lost_total) so that it cannot block its worker; any
 * other failure is produced again.
 */
static void dlq_redo(ksource *s, ks_item *it)
{
    rd_kafka_resp_err_t e = (rd_kafka_resp_err_t)atomic_load(&it->dlq_err);
    bool too_large = e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
                     e == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE ||
                     e == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE;
    if (ms_kafka_err_permanent(e) && (!too_large || it->truncate)) {
        ms_log_error(s->log,
                     "kafka: dead letter of %s [%d] @%lld (%s) cannot be delivered to %s, given "
                     "up: %s",
                     rd_kafka_topic_name(it->m->rkt), it->m->partition, (long long)it->m->offset,
                     ms_err_code(it->code), s->rt->cfg->kafka_dlq_topic, rd_kafka_err2str(e));
        atomic_store(&it->dlq_state, -2);
        return;
    }
    if (too_large) it->truncate = true;
    dlq_produce(s, it);
    /* Refused at once (too large for message.max.bytes): the same again, truncated. */
    if (atomic_load(&it->dlq_state) == -1 && !it->truncate &&
        ms_kafka_err_permanent((rd_kafka_resp_err_t)atomic_load(&it->dlq_err)))
        dlq_redo(s, it);
}

/*
 * Dead-letters every failed item of the batch and waits until each is delivered, retrying
 * failures with backoff. Returns false only when stopping before all were delivered (then the
 * batch's offsets must not be committed).
 */
static bool dlq_deliver_all(ksource *s, ks_item *items, size_t n)
{
    unsigned wait_ms = 100;
    for (;;) {
        size_t pending = 0;
        for (size_t i = 0; i < n; i++) {
            if (items[i].code == MS_OK) continue;
            int st = atomic_load(&items[i].dlq_state);
            if (st == -1 && !atomic_load(&s->stopping)) dlq_redo(s, &items[i]);
            st = atomic_load(&items[i].dlq_state);
            if (st != 1 && st != -2) pending++;
        }
        if (!pending) return true;
        /* Wait for the reports of what is in flight (a report always comes, at the latest
         * after message.timeout.ms or after a purge when stopping). */
        bool inflight = true;
        while (inflight) {
            rd_kafka_poll(s->dlq, 50);
            inflight = false;
            for (size_t i = 0; i < n; i++)
                if (items[i].code != MS_OK && atomic_load(&items[i].dlq_state) == 0)
                    inflight = true;
            if (inflight && atomic_load(&s->stopping))
                rd_kafka_purge(s->dlq, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        }
        bool all = true, redo_now = false;
        for (size_t i = 0; i < n; i++) {
            if (items[i].code == MS_OK) continue;
            int st = atomic_load(&items[i].dlq_state);
            if (st == -1 &&
                ms_kafka_err_permanent((rd_kafka_resp_err_t)atomic_load(&items[i].dlq_err)))
                redo_now = true; /* truncated or given up at once, no backoff */
            if (st != 1 && st != -2) all = false;
        }
        if (all) return true;
        if (redo_now) continue;
        ms_log_warn(s->log, "kafka: dead letters to %s not delivered; retrying",
                    s->rt->cfg->kafka_dlq_topic);
        if (!backoff(s, wait_ms)) return false;
        wait_ms = next_backoff(wait_ms);
    }
}

/* ---- one batch ---- */

/*
 * The positions the batch reaches: per partition, one past its last message (dead letters
 * included: they are delivered before the batch is submitted). Sets each item's `pos` to the
 * 1-based index of its partition. Returns how many (pos[] has room for n).
 */
static size_t batch_positions(ksource *s, ks_item *items, size_t n, ms_srcpos *pos)
{
    size_t npos = 0;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_t *m = items[i].m;
        const char *topic = rd_kafka_topic_name(m->rkt);
        size_t k = 0;
        while (k < npos && (pos[k].partition != m->partition || strcmp(pos[k].topic, topic) != 0))
            k++;
        if (k == npos)
            pos[npos++] = (ms_srcpos){s->rt->cfg->kafka_group_id, topic, m->partition, 0};
        if (m->offset + 1 > pos[k].next) pos[k].next = m->offset + 1;
        items[i].pos = k + 1;
    }
    return npos;
}

/* Stores offset+1 of the last message of every partition in the batch and commits them to
 * Kafka asynchronously: advisory only (lag monitoring, tools), the store holds the positions
 * the source resumes from. A failed commit is retried by the consumer thread (on_commit). */
static void commit_batch(ksource *s, const ms_srcpos *pos, size_t npos)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)npos);
    for (size_t k = 0; k < npos; k++)
        rd_kafka_topic_partition_list_add(l, pos[k].topic, pos[k].partition)->offset = pos[k].next;
    /* Stored first: whoever commits next (this worker, the consumer thread's retry, the revoke
     * callback) commits these offsets too. */
    rd_kafka_offsets_store(s->consumer, l);
    rd_kafka_resp_err_t e = rd_kafka_commit(s->consumer, l, 1);
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET) atomic_store(&s->uncommitted, true);
    rd_kafka_topic_partition_list_destroy(l);
}

/* Marks every item that failed (code set) and has no dead letter yet as one to produce. */
static size_t dead_letters_due(ks_item *items, size_t n)
{
    size_t due = 0;
    for (size_t i = 0; i < n; i++) {
        int st = atomic_load(&items[i].dlq_state);
        if (items[i].code == MS_OK || st == 1 || st == -2) continue;
        atomic_store(&items[i].dlq_err, 0);
        atomic_store(&items[i].dlq_state, -1); /* to be produced */
        due++;
    }
    return due;
}

/* A decoded event with what orders it in its batch. */
typedef struct ks_order {
    ms_event *ev;
    size_t of; /* its item: the arrival order */
    const char *key;
    size_t klen;
} ks_order;

/* By message key (bytes, then length), then arrival: qsort is then stable per key. */
static int by_key(const void *a, const void *b)
{
    const ks_order *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = n ? memcmp(x->key, y->key, n) : 0;
    if (!c) c = (x->klen > y->klen) - (x->klen < y->klen);
    return c ? c : (x->of > y->of) - (x->of < y->of);
}

/* By tenant, then qualified name, then arrival. */
static int by_name(const void *a, const void *b)
{
    const ks_order *x = a, *y = b;
    int c = strcmp(x->ev->tenant, y->ev->tenant);
    if (!c) c = strcmp(x->ev->qn, y->ev->qn);
    return c ? c : (x->of > y->of) - (x->of < y->of);
}

/*
 * Puts the decoded events evs[0..k) (and of[] with them) in the order of their message keys,
 * keeping the arrival order of the events of one key. Kafka keeps order per key (the keying
 * rule: a table and its columns share a key), and so does this; what changes is only the order
 * between keys, which Kafka does not keep across partitions either. The writer then inserts the
 * assets of one table together instead of interleaving 80 partitions' worth of tables, which
 * costs it fewer index pages per commit (docs/performance.md, decision 20). When one qualified
 * name comes under two keys in the batch, its events could change order: the batch keeps its
 * arrival order then.
 */
static void sort_batch(const ks_item *items, ms_event **evs, size_t *of, size_t k)
{
    if (k < 2) return;
    ks_order *o = ms_xmalloc(k * sizeof *o);
    for (size_t j = 0; j < k; j++) {
        const rd_kafka_message_t *m = items[of[j]].m;
        o[j] = (ks_order){evs[j], of[j], m->key ? m->key : "", m->key ? m->key_len : 0};
    }
    qsort(o, k, sizeof *o, by_name);
    bool mixed = false; /* one name under two keys */
    for (size_t j = 1; j < k && !mixed; j++) {
        const ks_order *x = &o[j - 1], *y = &o[j];
        bool same_name =
            strcmp(x->ev->tenant, y->ev->tenant) == 0 && strcmp(x->ev->qn, y->ev->qn) == 0;
        mixed = same_name && (x->klen != y->klen || memcmp(x->key, y->key, x->klen) != 0);
    }
    if (!mixed) {
        qsort(o, k, sizeof *o, by_key);
        for (size_t j = 0; j < k; j++) {
            evs[j] = o[j].ev;
            of[j] = o[j].of;
            evs[j]->index = j;
        }
    }
    free(o);
}

/*
 * Decodes the batch's messages into evs (events of items already dead-lettered are skipped) and
 * fills of[] (evs[k] came from items[of[k]]). Returns how many events; *retry is the first item
 * whose decoding failed for a reason that passes.
 */
static size_t decode_batch(ksource *s, ks_item *items, size_t n, ms_event **evs, size_t *of,
                           const ks_item **retry)
{
    size_t k = 0;
    *retry = NULL;
    for (size_t i = 0; i < n; i++) {
        int st = atomic_load(&items[i].dlq_state);
        if (items[i].code != MS_OK && (st == 1 || st == -2)) continue; /* dead-lettered */
        items[i].code = MS_OK;
        items[i].detail[0] = '\0';
        items[i].retry = items[i].truncate = false;
        ms_event *ev = decode_message(s, &items[i]);
        if (ev) {
            ev->index = k;
            ev->src_pos = items[i].pos;
            ev->src_offset = items[i].m->offset;
            evs[k] = ev;
            of[k++] = i;
        }
        if (items[i].retry && !*retry) *retry = &items[i];
    }
    sort_batch(items, evs, of, k);
    return k;
}

/* A batch taken from a worker's queue, from decoding until its offsets are committed. */
typedef struct ks_batch {
    ks_item *items; /* room for batch_max */
    size_t n;
    size_t bytes;   /* of its messages: held against the worker's queue budget until done */
    ms_srcpos *pos; /* its positions (batch_positions) */
    size_t npos;
    ms_event **evs; /* decoded events, until submitted */
    size_t *of;     /* evs[k] came from items[of[k]] */
    size_t k;
    ms_apply_result *res;
    ms_engine_ticket *ticket; /* submitted asynchronously, not yet waited for */
    bool slow;                /* to be done by the retrying path (batch_retry) */
    bool abandon;             /* stopping or revoking before its dead letters were delivered */
} ks_batch;

static void batch_alloc(ks_batch *b, size_t max)
{
    b->items = ms_xcalloc(max, sizeof *b->items);
    b->pos = ms_xcalloc(max, sizeof *b->pos);
    b->evs = ms_xcalloc(max, sizeof *b->evs);
    b->of = ms_xcalloc(max, sizeof *b->of);
    b->res = ms_xcalloc(max, sizeof *b->res);
}

static void batch_free(ks_batch *b)
{
    free(b->items);
    free(b->pos);
    free(b->evs);
    free(b->of);
    free(b->res);
}

/* Frees the decoded events that were not handed to the engine. */
static void batch_drop_events(ks_batch *b)
{
    for (size_t j = 0; j < b->k; j++) {
        ms_event_free(b->evs[j]);
        b->evs[j] = NULL;
    }
    b->k = 0;
}

/* Copies the store's rejections into the items (their dead letters). */
static void batch_note_rejections(ks_batch *b)
{
    for (size_t j = 0; j < b->k; j++)
        if (b->res[j].status == MS_APPLY_REJECTED) {
            ks_item *it = &b->items[b->of[j]];
            it->code = b->res[j].code;
            snprintf(it->detail, sizeof it->detail, "%s", b->res[j].detail);
        }
}

/*
 * Gets a batch ready to submit: its positions, its events decoded, and the dead letters of what
 * cannot be decoded delivered (before the batch is submitted, so the positions stored with it
 * may pass those messages). A decoding failure that passes (registry unreachable) leaves the
 * batch to the retrying path (slow); stopping or revoking before the dead letters are
 * delivered abandons it (nothing of it is committed).
 */
static void batch_prepare(ksource *s, ks_batch *b)
{
    for (size_t i = 0; i < b->n; i++) { /* items are reused: nothing of an earlier batch */
        b->items[i].code = MS_OK;
        atomic_store(&b->items[i].dlq_state, -1);
    }
    b->npos = batch_positions(s, b->items, b->n, b->pos);
    b->ticket = NULL;
    b->slow = b->abandon = false;
    const ks_item *retry = NULL;
    b->k = decode_batch(s, b->items, b->n, b->evs, b->of, &retry);
    if (retry) {
        b->slow = true;
        batch_drop_events(b);
    } else if (dead_letters_due(b->items, b->n) && !dlq_deliver_all(s, b->items, b->n)) {
        b->abandon = true; /* the positions must not pass an undelivered dead letter */
        batch_drop_events(b);
    }
}

/* Submits a prepared batch asynchronously; one the engine refuses now goes the retrying path. */
static void batch_launch(ksource *s, ks_batch *b)
{
    if (b->slow || b->abandon) return;
    ms_error err;
    ms_error_clear(&err);
    if (ms_engine_submit_async(s->rt->engine, b->evs, b->k, b->pos, b->npos, b->res, &b->ticket,
                               &err) != MS_OK)
        b->slow = true;
    for (size_t j = 0; j < b->k; j++) {
        ms_event_free(b->evs[j]); /* what submit did not take (it refused the batch) */
        b->evs[j] = NULL;
    }
}

/*
 * The retrying path: decode, submit and wait, again with backoff while the registry is
 * unreachable, the engine overloaded or the store failing (items already dead-lettered are not
 * decoded again). Returns whether the batch was applied; false when giving up (stopping, or
 * revoking: the messages go, uncommitted, to the next owner).
 */
static bool batch_retry(ksource *s, ks_batch *b)
{
    unsigned wait_ms = 50;
    for (;;) {
        const ks_item *retry = NULL;
        b->k = decode_batch(s, b->items, b->n, b->evs, b->of, &retry);
        ms_error err;
        ms_error_clear(&err);
        ms_err rc = MS_OK;
        if (retry) { /* e.g. the registry is unreachable: nothing is a dead letter yet */
            rc = retry->code;
            snprintf(err.detail, sizeof err.detail, "%s", retry->detail);
        } else if (dead_letters_due(b->items, b->n) && !dlq_deliver_all(s, b->items, b->n)) {
            batch_drop_events(b);
            return false; /* the positions must not pass an undelivered dead letter */
        } else {
            rc = ms_engine_submit_at(s->rt->engine, b->evs, b->k, b->pos, b->npos, b->res, &err);
        }
        if (rc == MS_OK) {
            batch_note_rejections(b);
            batch_drop_events(b);
            return true;
        }
        batch_drop_events(b);
        ms_log_warn(s->log, "kafka: %s batch of %zu not applied (%s), retrying: %s",
                    b->n ? "a" : "an empty", b->n, ms_err_code(rc), err.detail);
        if (!backoff(s, wait_ms)) return false;
        wait_ms = next_backoff(wait_ms);
    }
}

/*
 * Finishes a launched batch: waits for its commits (the positions are stored with them, held
 * back at a rejected event), takes the retrying path if needed, dead-letters what the store
 * rejected (the next batch of the partition moves the stored position past them), counts, and
 * commits the offsets to Kafka (advisory). Nothing is committed when it gave up.
 */
static void batch_finish(ksource *s, ks_batch *b)
{
    if (b->abandon) return;
    if (b->ticket) {
        ms_error err;
        ms_error_clear(&err);
        ms_err rc = ms_engine_wait(s->rt->engine, b->ticket, &err);
        b->ticket = NULL;
        if (rc == MS_OK)
            batch_note_rejections(b);
        else
            b->slow = true;
    }
    if (b->slow && !batch_retry(s, b)) return;
    ks_item *items = b->items;
    if (dead_letters_due(items, b->n) && !dlq_deliver_all(s, items, b->n)) return;
    for (size_t i = 0; i < b->n; i++)
        if (items[i].code != MS_OK && atomic_load(&items[i].dlq_state) == -2) {
            atomic_fetch_add(&s->dead_letters_lost, 1);
        } else if (items[i].code != MS_OK) {
            atomic_fetch_add(&s->dead_letters[items[i].code], 1);
            ms_log_debug(s->log, "kafka: dead letter %s [%d] @%lld: %s: %s",
                         rd_kafka_topic_name(items[i].m->rkt), items[i].m->partition,
                         (long long)items[i].m->offset, ms_err_code(items[i].code),
                         items[i].detail);
        }
    commit_batch(s, b->pos, b->npos);
}

/* Ends a batch: frees its messages and gives their bytes back to the worker's budget. */
static void batch_release(ks_worker *w, ks_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        rd_kafka_message_destroy(b->items[i].m);
    pthread_mutex_lock(&w->mu);
    w->held_bytes -= b->bytes;
    pthread_mutex_unlock(&w->mu);
    b->n = b->bytes = 0;
}

/* Moves up to batch_max queued messages into b. @locks_required w->mu */
static void batch_take(ks_worker *w, ks_batch *b)
{
    b->n = b->bytes = 0;
    while (w->head && b->n < w->s->batch_max) {
        ks_node *node = w->head;
        w->head = node->next;
        if (!w->head) w->tail = NULL;
        w->queued_bytes -= node->m->len;
        b->bytes += node->m->len;
        b->items[b->n++].m = node->m;
        free(node);
    }
    w->held_bytes += b->bytes;
}

/*
 * A worker: one batch in the engine while the next one is taken and prepared (decoded, its
 * undecodable messages dead-lettered), so that the writer has the next batch as soon as the
 * previous one is committed. Batches are submitted one after the other, each once the one before
 * it is finished (its dead letters delivered): the positions stored with a batch never pass a
 * message of an earlier batch that is not durable. A prepared batch is dropped, unsubmitted,
 * when the partitions are being revoked.
 */
static void *worker_main(void *arg)
{
    ks_worker *w = arg;
    ksource *s = w->s;
    ks_batch b[2];
    memset(b, 0, sizeof b);
    batch_alloc(&b[0], s->batch_max);
    batch_alloc(&b[1], s->batch_max);
    ks_batch *cur = NULL; /* launched, not finished */
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->head && !w->quit && !cur)
            pthread_cond_wait(&w->work, &w->mu);
        ks_batch *next = NULL;
        if (w->head) {
            next = cur == &b[0] ? &b[1] : &b[0];
            batch_take(w, next);
            w->busy = true;
        } else if (!cur) {
            pthread_mutex_unlock(&w->mu);
            break; /* quit, nothing left */
        }
        pthread_mutex_unlock(&w->mu);

        if (next) batch_prepare(s, next);
        if (cur) {
            batch_finish(s, cur);
            batch_release(w, cur);
            cur = NULL;
        }
        if (next && giving_up(s)) {
            batch_drop_events(next); /* its messages go to the next owner, uncommitted */
            batch_release(w, next);
        } else if (next) {
            batch_launch(s, next);
            cur = next;
        }
        if (!cur) {
            pthread_mutex_lock(&w->mu);
            w->busy = false;
            pthread_cond_broadcast(&w->idle);
            pthread_mutex_unlock(&w->mu);
        }
    }
    batch_free(&b[0]);
    batch_free(&b[1]);
    return NULL;
}

/* ---- consumer thread ---- */

/* Pauses (pause=true) or resumes the assigned partitions of w's topics. */
static void flow(ksource *s, ks_worker *w, bool pause, size_t queued)
{
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(s->consumer, &a) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
    rd_kafka_topic_partition_list_t *mine = rd_kafka_topic_partition_list_new(a->cnt);
    for (int i = 0; i < a->cnt; i++)
        if (in_list(w->topics, w->ntopics, a->elems[i].topic))
            rd_kafka_topic_partition_list_add(mine, a->elems[i].topic, a->elems[i].partition);
    if (pause)
        rd_kafka_pause_partitions(s->consumer, mine);
    else
        rd_kafka_resume_partitions(s->consumer, mine);
    atomic_fetch_add(&s->paused_partitions, pause ? mine->cnt : -mine->cnt);
    ms_log_debug(s->log, "kafka: %s %d %s partitions (%zu bytes queued)",
                 pause ? "paused" : "resumed", mine->cnt, w->kind, queued);
    w->paused = pause;
    rd_kafka_topic_partition_list_destroy(mine);
    rd_kafka_topic_partition_list_destroy(a);
}

/* Pauses or resumes each worker's partitions by the size of its queue. */
static void check_flow(ksource *s)
{
    for (int i = 0; i < 2; i++) {
        ks_worker *w = &s->w[i];
        pthread_mutex_lock(&w->mu);
        size_t q = w->queued_bytes + w->held_bytes;
        pthread_mutex_unlock(&w->mu);
        if (!w->paused && q > s->max_queue_bytes)
            flow(s, w, true, q);
        else if (w->paused && q <= s->max_queue_bytes / 2)
            flow(s, w, false, q);
    }
}

static void count_consumed(ksource *s, const char *topic)
{
    for (size_t i = 0; i < s->ntopic_names; i++)
        if (strcmp(s->topic_names[i], topic) == 0) {
            atomic_fetch_add(&s->consumed[i], 1);
            return;
        }
}

static void dispatch(ksource *s, rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    count_consumed(s, topic);
    ks_worker *w = in_list(s->w[1].topics, s->w[1].ntopics, topic) ? &s->w[1] : &s->w[0];
    ks_node *node = ms_xcalloc(1, sizeof *node);
    node->m = m;
    pthread_mutex_lock(&w->mu);
    if (w->tail)
        w->tail->next = node;
    else
        w->head = node;
    w->tail = node;
    w->queued_bytes += m->len;
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mu);
}

/* Drops w's queued messages and waits for its in-flight batch (which commits) to end. */
static void worker_quiesce(ks_worker *w)
{
    pthread_mutex_lock(&w->mu);
    ks_node *node = w->head;
    w->head = w->tail = NULL;
    w->queued_bytes = 0;
    while (w->busy)
        pthread_cond_wait(&w->idle, &w->mu);
    pthread_mutex_unlock(&w->mu);
    while (node) {
        ks_node *next = node->next;
        rd_kafka_message_destroy(node->m);
        free(node);
        node = next;
    }
}

/* Commits the stored offsets of the whole assignment, synchronously (consumer thread). */
static void commit_stored(ksource *s, const char *when)
{
    rd_kafka_resp_err_t e = rd_kafka_commit(s->consumer, NULL, 0);
    if (!e || e == RD_KAFKA_RESP_ERR__NO_OFFSET) {
        atomic_store(&s->uncommitted, false);
        return;
    }
    /* A retry failing during a rebalance is expected (the revoke callback commits): quiet. */
    bool quiet = e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS && strcmp(when, "retry") == 0;
    ms_log_write(s->log, quiet ? MS_LOG_DEBUG : MS_LOG_WARN,
                 "kafka: offset commit %s failed (the messages after the last committed offset "
                 "will be consumed again, as duplicates): %s",
                 when, rd_kafka_err2str(e));
}

/* Async commit results (consumer thread): a failed one is retried from the stored offsets. */
static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    (void)rk;
    (void)offsets;
    ksource *s = opaque;
    if (!e || e == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
    atomic_store(&s->uncommitted, true);
    ms_log_write(s->log, e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ? MS_LOG_DEBUG : MS_LOG_WARN,
                 "kafka: offset commit failed (advisory; retried from the stored offsets): %s",
                 rd_kafka_err2str(e));
}

/*
 * Sets the start offset of every assigned partition to its position in the store (the offsets
 * committed with the events), when the store has one; the others keep RD_KAFKA_OFFSET_INVALID:
 * the group's committed offset, else auto.offset.reset. A store that cannot answer leaves all
 * of them so (the committed offset is never ahead of the stored one: only duplicates follow).
 */
static void seek_stored(ksource *s, rd_kafka_topic_partition_list_t *parts)
{
    const ms_store_ops *st = s->rt->store;
    if (!st || st->version < 5 || !st->offsets_get || !parts->cnt) return;
    int32_t *ids = ms_xmalloc((size_t)parts->cnt * sizeof *ids);
    int64_t *next = ms_xmalloc((size_t)parts->cnt * sizeof *next);
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        if (i > 0 && strcmp(parts->elems[i - 1].topic, p->topic) == 0) continue; /* done */
        size_t n = 0;
        for (int j = i; j < parts->cnt && strcmp(parts->elems[j].topic, p->topic) == 0; j++)
            ids[n++] = parts->elems[j].partition;
        ms_error err;
        ms_error_clear(&err);
        if (st->offsets_get(s->rt->store_ctx, s->rt->cfg->kafka_group_id, p->topic, ids, n, next,
                            &err) != MS_OK) {
            ms_log_warn(s->log,
                        "kafka: cannot read the stored offsets of %s (%s): starting from "
                        "the committed offsets",
                        p->topic, err.detail);
            continue;
        }
        for (size_t k = 0; k < n; k++) {
            if (next[k] < 0) continue;
            parts->elems[i + (int)k].offset = next[k];
            ms_log_debug(s->log, "kafka: %s [%d] starts at the stored offset %lld", p->topic,
                         ids[k], (long long)next[k]);
        }
    }
    free(ids);
    free(next);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    ksource *s = opaque;
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        ms_log_info(s->log, "kafka: assigned %d partitions", parts->cnt);
        rd_kafka_topic_partition_list_sort(parts, NULL, NULL); /* by topic, then partition */
        seek_stored(s, parts);
        rd_kafka_assign(rk, parts);
        /* librdkafka keeps a partition's pause flag across unassign/assign: a partition paused
         * before an earlier revoke would stay paused for good. The queues are empty now. */
        rd_kafka_resume_partitions(rk, parts);
        return;
    }
    ms_log_info(s->log, "kafka: revoking %d partitions (%s)", parts->cnt, rd_kafka_err2str(e));
    /* An in-flight batch that is retrying (engine overloaded, store failing, registry down)
     * gives up at its next backoff without committing, so the revoke never waits for long. */
    atomic_store(&s->revoking, true);
    for (int i = 0; i < 2; i++) {
        worker_quiesce(&s->w[i]);
        s->w[i].paused = false;
    }
    atomic_store(&s->revoking, false);
    rd_kafka_resume_partitions(rk, parts); /* see the assign branch */
    atomic_store(&s->paused_partitions, 0);
    commit_stored(s, "before giving the partitions up");
    rd_kafka_assign(rk, NULL);
}

static void *consumer_main(void *arg)
{
    ksource *s = arg;
    unsigned long long retry_at = 0;
    while (!atomic_load(&s->stopping)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(s->consumer, KS_POLL_MS);
        if (m && m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                ms_log_warn(s->log, "kafka: consumer: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
        } else if (m) {
            dispatch(s, m);
        }
        check_flow(s);
        if (atomic_load(&s->uncommitted) && ms_now_ms() >= retry_at) {
            retry_at = ms_now_ms() + 1000;
            commit_stored(s, "retry");
        }
    }
    /* Leaves the group: the revoke callback waits for in-flight batches to commit. */
    rd_kafka_consumer_close(s->consumer);
    return NULL;
}

/* ---- start / stop ---- */

/* Frees s once its threads have ended (destroying the consumer may still call on_rebalance). */
static void ks_free(ksource *s)
{
    if (s->consumer) rd_kafka_destroy(s->consumer);
    if (s->dlq) {
        rd_kafka_flush(s->dlq, 5000);
        rd_kafka_purge(s->dlq, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(s->dlq, 1000); /* serves the purge's delivery reports */
        rd_kafka_destroy(s->dlq);
    }
    ms_avro_schema_free(s->reader);
    for (int i = 0; i < 2; i++) {
        ks_worker *w = &s->w[i];
        worker_quiesce(w);
        for (size_t t = 0; t < w->ntopics; t++)
            free(w->topics[t]);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->work);
        pthread_cond_destroy(&w->idle);
    }
    free(s);
}

static void ks_stop(void *ctx)
{
    ksource *s = ctx;
    if (!s) return;
    atomic_store(&s->stopping, true);
    if (s->thread_started) pthread_join(s->thread, NULL);
    for (int i = 0; i < 2; i++) {
        ks_worker *w = &s->w[i];
        pthread_mutex_lock(&w->mu);
        w->quit = true;
        pthread_cond_broadcast(&w->work);
        pthread_mutex_unlock(&w->mu);
        if (w->started) pthread_join(w->thread, NULL);
    }
    ms_log_info(s->log, "kafka: source stopped");
    ks_free(s);
}

static rd_kafka_t *new_handle(ksource *s, rd_kafka_type_t type, rd_kafka_conf_t *conf,
                              ms_error *err)
{
    char errstr[512];
    rd_kafka_conf_set_opaque(conf, s);
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        ms_error_set(err, MS_ERR_CONFIG, "kafka: %s", errstr);
    }
    return rk;
}

static ms_err ks_start(ms_runtime *rt, void **ctx, ms_error *err)
{
    const ms_config *cfg = rt->cfg;
    *ctx = NULL;
    if (!cfg->kafka_brokers || !*cfg->kafka_brokers) return MS_OK;
    ksource *s = ms_xcalloc(1, sizeof *s);
    s->rt = rt;
    s->log = &rt->log;
    s->batch_max = cfg->kafka_batch_max_messages > 0 ? (size_t)cfg->kafka_batch_max_messages : 1;
    /* kafka.max_buffered_bytes: half for librdkafka's prefetch, a quarter per worker queue. */
    s->max_queue_bytes = (size_t)(cfg->kafka_max_buffered_bytes / 4);
    const char *kinds[2] = {"fast", "bulk"};
    for (int i = 0; i < 2; i++) {
        ks_worker *w = &s->w[i];
        w->s = s;
        w->kind = kinds[i];
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->work, NULL);
        pthread_cond_init(&w->idle, NULL);
    }
    const char *avsc = ms_registry_builtin_text("metasync.events-value");
    if (avsc && ms_avro_schema_parse(avsc, strlen(avsc), &s->reader, err) != MS_OK) {
        ks_free(s);
        return MS_ERR_INTERNAL;
    }
    split_topics(cfg->kafka_topics, s->w[0].topics, &s->w[0].ntopics);
    split_topics(cfg->kafka_bulk_topics, s->w[1].topics, &s->w[1].ntopics);
    for (int i = 0; i < 2; i++)
        for (size_t t = 0; t < s->w[i].ntopics; t++)
            s->topic_names[s->ntopic_names++] = s->w[i].topics[t];
    if (!s->ntopic_names) {
        ks_free(s);
        return ms_error_set(err, MS_ERR_CONFIG, "kafka.topics and kafka.bulk_topics are empty");
    }

    /* librdkafka's prefetch queue counts against the same memory budget: half of it. */
    char prefetch_kb[24];
    long long kb = cfg->kafka_max_buffered_bytes / 2 / 1024;
    snprintf(prefetch_kb, sizeof prefetch_kb, "%lld", kb < 1024 ? 1024 : kb);
    const char *const consumer_defaults[] = {"auto.offset.reset", "earliest",
                                             "queued.max.messages.kbytes", prefetch_kb, NULL};
    static const char *const consumer_forced[] = {"enable.auto.commit", "false",
                                                  "enable.auto.offset.store", "false", NULL};
    rd_kafka_conf_t *cc = ms_kafka_conf_new(cfg, consumer_defaults, consumer_forced, err);
    if (!cc) {
        ks_free(s);
        return MS_ERR_CONFIG;
    }
    char errstr[256];
    if (rd_kafka_conf_set(cc, "group.id", cfg->kafka_group_id, errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(cc);
        ks_free(s);
        return ms_error_set(err, MS_ERR_CONFIG, "kafka.group_id: %s", errstr);
    }
    rd_kafka_conf_set_rebalance_cb(cc, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(cc, on_commit);
    static const char *const dlq_defaults[] = {
        "acks", "all", "enable.idempotence", "true", "message.timeout.ms", "30000", NULL};
    rd_kafka_conf_t *pc = ms_kafka_conf_new(cfg, dlq_defaults, NULL, err);
    if (!pc) {
        rd_kafka_conf_destroy(cc);
        ks_free(s);
        return MS_ERR_CONFIG;
    }
    /* A dead letter is the message consumed plus headers: let the DLQ producer take what the
     * consumer takes, with room for the headers (one still refused is sent truncated). */
    char mmb[32];
    size_t mmb_len = sizeof mmb;
    if (rd_kafka_conf_get(cc, "message.max.bytes", mmb, &mmb_len) == RD_KAFKA_CONF_OK) {
        long long v = atoll(mmb) + 65536;
        snprintf(mmb, sizeof mmb, "%lld", v > 1000000000 ? 1000000000 : v);
        rd_kafka_conf_set(pc, "message.max.bytes", mmb, errstr, sizeof errstr);
    }
    rd_kafka_conf_set_dr_msg_cb(pc, dlq_report);
    s->consumer = new_handle(s, RD_KAFKA_CONSUMER, cc, err);
    if (s->consumer)
        s->dlq = new_handle(s, RD_KAFKA_PRODUCER, pc, err);
    else
        rd_kafka_conf_destroy(pc);
    if (!s->dlq) {
        ks_free(s);
        return MS_ERR_CONFIG;
    }
    rd_kafka_poll_set_consumer(s->consumer);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new((int)s->ntopic_names);
    for (size_t i = 0; i < s->ntopic_names; i++)
        rd_kafka_topic_partition_list_add(sub, s->topic_names[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(s->consumer, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (e) {
        ks_free(s);
        return ms_error_set(err, MS_ERR_KAFKA, "kafka: cannot subscribe: %s", rd_kafka_err2str(e));
    }
    for (int i = 0; i < 2; i++) {
        if (pthread_create(&s->w[i].thread, NULL, worker_main, &s->w[i]) != 0) {
            ks_stop(s);
            return ms_error_set(err, MS_ERR_INTERNAL, "kafka: cannot start a worker thread");
        }
        s->w[i].started = true;
    }
    if (pthread_create(&s->thread, NULL, consumer_main, s) != 0) {
        ks_stop(s);
        return ms_error_set(err, MS_ERR_INTERNAL, "kafka: cannot start the consumer thread");
    }
    s->thread_started = true;
    ms_log_info(s->log, "kafka: consuming %s (fast) and %s (bulk) from %s as group %s",
                cfg->kafka_topics, cfg->kafka_bulk_topics, cfg->kafka_brokers, cfg->kafka_group_id);
    *ctx = s;
    return MS_OK;
}

/* Appends the source's counters and gauges (consumed, dead letters, paused, lag). */
static void ks_metrics(void *ctx, ms_buf *out)
{
    ksource *s = ctx;
    if (!s) return;
    ms_metrics_header(out, "metasync_kafka_messages_consumed_total", "counter",
                      "Messages consumed from Kafka, per topic.");
    for (size_t i = 0; i < s->ntopic_names; i++) {
        ms_buf lbl = MS_BUF_INIT;
        ms_buf_puts(&lbl, "topic=");
        ms_buf_put_jstr(&lbl, s->topic_names[i]);
        ms_metrics_sample(out, "metasync_kafka_messages_consumed_total", lbl.data,
                          (double)atomic_load(&s->consumed[i]));
        ms_buf_free(&lbl);
    }
    ms_metrics_header(out, "metasync_kafka_dead_letters_total", "counter",
                      "Messages sent to the dead-letter topic, per error code.");
    for (int c = 0; c < MS_ERR__COUNT; c++) {
        unsigned long long v = atomic_load(&s->dead_letters[c]);
        if (!v) continue;
        char lbl[96];
        snprintf(lbl, sizeof lbl, "code=\"%s\"", ms_err_code((ms_err)c));
        ms_metrics_sample(out, "metasync_kafka_dead_letters_total", lbl, (double)v);
    }
    ms_metrics_header(out, "metasync_kafka_dead_letters_lost_total", "counter",
                      "Dead letters given up: the DLQ topic refused them for good.");
    ms_metrics_sample(out, "metasync_kafka_dead_letters_lost_total", "",
                      (double)atomic_load(&s->dead_letters_lost));
    ms_metrics_header(out, "metasync_kafka_paused_partitions", "gauge",
                      "Partitions paused because the source's queue is full.");
    ms_metrics_sample(out, "metasync_kafka_paused_partitions", "",
                      (double)atomic_load(&s->paused_partitions));
    /* Lag from librdkafka's cached high watermarks and fetch positions: no network call. */
    ms_metrics_header(out, "metasync_kafka_consumer_lag", "gauge",
                      "Messages behind the high watermark, summed over assigned partitions.");
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(s->consumer, &a) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
    rd_kafka_position(s->consumer, a);
    for (size_t t = 0; t < s->ntopic_names; t++) {
        long long lag = 0;
        for (int i = 0; i < a->cnt; i++) {
            if (strcmp(a->elems[i].topic, s->topic_names[t]) != 0) continue;
            int64_t lo = 0, hi = 0;
            if (rd_kafka_get_watermark_offsets(s->consumer, a->elems[i].topic,
                                               a->elems[i].partition, &lo, &hi) ||
                hi < 0)
                continue;
            /* No position yet (just assigned, or paused before the first fetch): the low
             * watermark, where a group without a committed offset starts (auto.offset.reset
             * earliest), so such a partition counts whole rather than as 0. */
            int64_t pos = a->elems[i].offset >= 0 ? a->elems[i].offset : lo;
            if (pos >= 0 && hi > pos) lag += hi - pos;
        }
        ms_buf lbl = MS_BUF_INIT;
        ms_buf_puts(&lbl, "topic=");
        ms_buf_put_jstr(&lbl, s->topic_names[t]);
        ms_metrics_sample(out, "metasync_kafka_consumer_lag", lbl.data, (double)lag);
        ms_buf_free(&lbl);
    }
    rd_kafka_topic_partition_list_destroy(a);
}

const ms_source_ops ms_source_kafka = {
    .version = MS_SOURCE_OPS_VERSION,
    .name = "kafka",
    .start = ks_start,
    .stop = ks_stop,
    .metrics = ks_metrics,
};
