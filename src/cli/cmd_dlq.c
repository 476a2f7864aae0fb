/*
 * cmd_dlq.c — `metasync dlq list|replay`: reads the dead-letter topic (kafka.dlq_topic) from the
 * beginning and prints the dead letters as JSON lines, or re-produces them — original key, value
 * and headers, without the error.* and source.* headers MetaSync added — to their source topic
 * (or --to TOPIC), so that the source consumes them again after the cause has been fixed.
 *
 * It reads with assign() and explicit offsets (no consumer group, nothing committed): every run
 * sees the whole topic as it is when the run starts (each partition up to its high watermark at
 * start), so a replay never races with its own output and never disturbs the serving group.
 * Replaying twice re-injects twice: events with an `id` are then duplicates (no-ops); events
 * without one get a new derived id from their new offset, so narrow a replay with the filters.
 */
#include "ms_buf.h"
#include "ms_cli.h"
#include "ms_config.h"
#include "ms_json.h"
#include "source/kafka/kafka_conf.h"

#include "cli_http.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DLQ_TIMEOUT_MS 10000

static void usage(FILE *out)
{
    fputs(
        "Usage: metasync dlq list|replay [options]\n"
        "\n"
        "Reads the dead-letter topic (kafka.dlq_topic, default metasync.dlq) from the beginning\n"
        "up to its end at start, without a consumer group (nothing is committed).\n"
        "  list     prints the matching dead letters as JSON lines: partition, offset, key,\n"
        "           value (or value_base64 when it is not UTF-8 text) and headers.\n"
        "  replay   re-produces each matching dead letter's original key, value and headers\n"
        "           (without error.* and source.*) to its source topic (header source.topic)\n"
        "           or to --to TOPIC, waits until Kafka has them, and prints one JSON line each.\n"
        "\n"
        "Options (filters combine with AND):\n"
        "  --code CODE       only dead letters with this error.code (e.g. unknown_type)\n"
        "  --topic TOPIC     only dead letters that came from this source topic\n"
        "  --since OFFSET    only dead letters at this offset of the DLQ partition or later\n"
        "  --until OFFSET    only dead letters at this offset of the DLQ partition or earlier\n"
        "  --limit N         stop after N matching dead letters\n"
        "  --to TOPIC        replay: produce to TOPIC instead of the source topic\n"
        "  --dry-run         replay: print what would be replayed, produce nothing\n"
        "  -h, --help        show this help\n"
        "\n"
        "Examples:\n"
        "  metasync dlq list --kafka.brokers kafka:9092\n"
        "  metasync dlq list --code unknown_type --limit 10\n"
        "  metasync dlq replay --code unknown_type --dry-run\n"
        "  metasync dlq replay --code unknown_type --topic metasync.events\n"
        "  metasync dlq replay --since 1200 --until 1300 --to metasync.events.retry\n"
        "\n"
        "Exit codes: 0 done; 2 usage or configuration error; 3 Kafka unreachable or a replayed\n"
        "            message was not delivered.\n"
        "\n"
        "Configuration flags (--kafka.brokers, --kafka.dlq-topic, --kafka.properties.NAME):\n"
        "see `metasync config --help`.\n",
        out);
}

typedef struct dlq_opts {
    bool replay;
    bool dry_run;
    const char *code;
    const char *topic;
    const char *to;
    int64_t since, until, limit;
} dlq_opts;

static int parse_args(int nrest, char **rest, dlq_opts *o)
{
    memset(o, 0, sizeof *o);
    o->until = INT64_MAX;
    o->limit = INT64_MAX;
    if (nrest < 1 || (strcmp(rest[0], "list") != 0 && strcmp(rest[0], "replay") != 0)) {
        fprintf(stderr, "metasync dlq: say `list` or `replay` (see --help)\n");
        return MS_EXIT_USAGE;
    }
    o->replay = strcmp(rest[0], "replay") == 0;
    for (int i = 1; i < nrest;) {
        const char *v = NULL;
        int m;
        if (strcmp(rest[i], "--dry-run") == 0) {
            o->dry_run = true;
            i++;
        } else if ((m = ms_cli_opt("dlq", nrest, rest, &i, "--code", &v)) != 0) {
            if (m < 0) return MS_EXIT_USAGE;
            o->code = v;
        } else if ((m = ms_cli_opt("dlq", nrest, rest, &i, "--topic", &v)) != 0) {
            if (m < 0) return MS_EXIT_USAGE;
            o->topic = v;
        } else if ((m = ms_cli_opt("dlq", nrest, rest, &i, "--to", &v)) != 0) {
            if (m < 0) return MS_EXIT_USAGE;
            o->to = v;
        } else if ((m = ms_cli_opt("dlq", nrest, rest, &i, "--since", &v)) != 0) {
            if (m < 0 || !ms_cli_parse_i64("dlq", "--since", v, 0, INT64_MAX, &o->since))
                return MS_EXIT_USAGE;
        } else if ((m = ms_cli_opt("dlq", nrest, rest, &i, "--until", &v)) != 0) {
            if (m < 0 || !ms_cli_parse_i64("dlq", "--until", v, 0, INT64_MAX, &o->until))
                return MS_EXIT_USAGE;
        } else if ((m = ms_cli_opt("dlq", nrest, rest, &i, "--limit", &v)) != 0) {
            if (m < 0 || !ms_cli_parse_i64("dlq", "--limit", v, 1, INT64_MAX, &o->limit))
                return MS_EXIT_USAGE;
        } else {
            fprintf(stderr, "metasync dlq: unexpected argument %s (see --help)\n", rest[i]);
            return MS_EXIT_USAGE;
        }
    }
    if (!o->replay && (o->to || o->dry_run)) {
        fprintf(stderr, "metasync dlq: --to and --dry-run go with `replay`\n");
        return MS_EXIT_USAGE;
    }
    return MS_EXIT_OK;
}

static void put_base64(ms_buf *b, const unsigned char *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    ms_buf_putc(b, '"');
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        ms_buf_putc(b, tab[v >> 18 & 63]);
        ms_buf_putc(b, tab[v >> 12 & 63]);
        ms_buf_putc(b, i + 1 < n ? tab[v >> 6 & 63] : '=');
        ms_buf_putc(b, i + 2 < n ? tab[v & 63] : '=');
    }
    ms_buf_putc(b, '"');
}

/* Appends `"name":"text"` or `"name_base64":"..."` for bytes that are not UTF-8 text. */
static void put_bytes(ms_buf *b, const char *name, const void *p, size_t n)
{
    if (!p) {
        ms_buf_printf(b, "\"%s\":null", name);
    } else if (ms_utf8_valid(p, n, NULL)) {
        ms_buf_printf(b, "\"%s\":", name);
        ms_buf_put_jstrn(b, p, n);
    } else {
        ms_buf_printf(b, "\"%s_base64\":", name);
        put_base64(b, p, n);
    }
}

/* The value of header name as a new string, or NULL. */
static char *header(rd_kafka_headers_t *h, const char *name)
{
    const void *v = NULL;
    size_t n = 0;
    if (!h || rd_kafka_header_get_last(h, name, &v, &n) || !v) return NULL;
    return ms_xstrndup(v, n);
}

/* Appends the JSON line describing dead letter m (without the newline). */
static void describe(const rd_kafka_message_t *m, rd_kafka_headers_t *h, const char *replay_to,
                     ms_buf *out)
{
    ms_buf_printf(out, "{\"partition\":%d,\"offset\":%" PRId64 ",", m->partition, m->offset);
    put_bytes(out, "key", m->key, m->key_len);
    ms_buf_putc(out, ',');
    put_bytes(out, "value", m->payload, m->len);
    ms_buf_puts(out, ",\"headers\":{");
    const char *name;
    const void *v;
    size_t n;
    for (size_t i = 0; h && rd_kafka_header_get_all(h, i, &name, &v, &n) == 0; i++) {
        if (i) ms_buf_putc(out, ',');
        ms_buf_put_jstr(out, name);
        ms_buf_putc(out, ':');
        if (v)
            ms_buf_put_jstrn(out, v, n);
        else
            ms_buf_puts(out, "null");
    }
    ms_buf_putc(out, '}');
    if (replay_to) {
        ms_buf_puts(out, ",\"replay_to\":");
        ms_buf_put_jstr(out, replay_to);
    }
    ms_buf_putc(out, '}');
}

typedef struct dlq_run {
    const ms_config *cfg;
    dlq_opts *o;
    rd_kafka_t *consumer, *producer;
    int64_t matched;
    int delivery_failures; /* also counts dead letters that could not be queued */
    char *parts_topic;     /* the topic whose partition count is cached in nparts_topic */
    int nparts_topic;
} dlq_run;

static void on_report(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    dlq_run *r = opaque;
    if (m->err) {
        r->delivery_failures++;
        fprintf(stderr, "metasync dlq: replay to %s failed: %s\n", rd_kafka_topic_name(m->rkt),
                rd_kafka_err2str(m->err));
    }
}

/* The number of partitions of topic (cached for the last topic asked), 0 when unknown. */
static int partition_count(dlq_run *r, const char *topic)
{
    if (r->parts_topic && strcmp(r->parts_topic, topic) == 0) return r->nparts_topic;
    free(r->parts_topic);
    r->parts_topic = ms_xstrdup(topic);
    r->nparts_topic = 0;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(r->producer, topic, NULL);
    if (rd_kafka_metadata(r->producer, 0, t, &md, DLQ_TIMEOUT_MS) == 0 && md->topic_cnt == 1 &&
        !md->topics[0].err)
        r->nparts_topic = md->topics[0].partition_cnt;
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    return r->nparts_topic;
}

/*
 * Re-produces m (without MetaSync's headers) to `to`: back to its source partition (header
 * source.partition) when `to` is the source topic and still has that partition, so the order per
 * key holds as it was; else by key with murmur2_random, as the changes sink and Java clients
 * partition. Returns false if it cannot be queued.
 */
static bool replay_one(dlq_run *r, const rd_kafka_message_t *m, rd_kafka_headers_t *h,
                       const char *to, bool to_source)
{
    int32_t partition = RD_KAFKA_PARTITION_UA;
    char *sp = to_source ? header(h, MS_DLQ_H_PARTITION) : NULL;
    if (sp) {
        char *endp = NULL;
        long p = strtol(sp, &endp, 10);
        if (*sp && !*endp && p >= 0 && p < partition_count(r, to)) partition = (int32_t)p;
        free(sp);
    }
    rd_kafka_headers_t *out = rd_kafka_headers_new(8);
    const char *name;
    const void *v;
    size_t n;
    for (size_t i = 0; h && rd_kafka_header_get_all(h, i, &name, &v, &n) == 0; i++)
        if (!ms_kafka_is_dlq_header(name)) rd_kafka_header_add(out, name, -1, v, (ssize_t)n);
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            r->producer, RD_KAFKA_V_TOPIC(to), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(m->key, m->key_len),
            RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_HEADERS(out), RD_KAFKA_V_END);
        if (!e) return true;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            fprintf(stderr, "metasync dlq: cannot produce to %s: %s\n", to, rd_kafka_err2str(e));
            rd_kafka_headers_destroy(out);
            return false;
        }
        rd_kafka_poll(r->producer, 100);
    }
}

/* Handles one dead letter: filter, then print and/or replay. Returns false to stop. */
static bool handle(dlq_run *r, rd_kafka_message_t *m)
{
    dlq_opts *o = r->o;
    if (m->offset < o->since || m->offset > o->until) return true;
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h)) h = NULL;
    char *code = header(h, MS_DLQ_H_CODE);
    char *src = header(h, MS_DLQ_H_TOPIC);
    bool match = (!o->code || (code && strcmp(code, o->code) == 0)) &&
                 (!o->topic || (src && strcmp(src, o->topic) == 0));
    bool ok = true;
    if (match) {
        const char *to = o->to ? o->to : src;
        ms_buf line = MS_BUF_INIT;
        if (o->replay && !to) {
            fprintf(stderr,
                    "metasync dlq: partition %d offset %" PRId64
                    " has no source.topic header; use --to\n",
                    m->partition, m->offset);
            r->delivery_failures++;
        } else {
            describe(m, h, o->replay ? to : NULL, &line);
            if (o->replay && !o->dry_run) ok = replay_one(r, m, h, to, !o->to);
            if (ok)
                printf("%s\n", line.data);
            else
                r->delivery_failures++; /* the run stops here and exits 3 */
        }
        ms_buf_free(&line);
        r->matched++;
    }
    free(code);
    free(src);
    return ok && r->matched < o->limit;
}

/* Assigns every partition of the DLQ topic that has messages; fills end[] with each
 * partition's high watermark at start. Returns the number assigned, or -1 (message printed). */
static int assign_all(dlq_run *r, const char *topic, int64_t **end, int *nparts)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(r->consumer, topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(r->consumer, 0, t, &md, DLQ_TIMEOUT_MS);
    rd_kafka_topic_destroy(t);
    if (e || md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "metasync dlq: cannot read the metadata of %s from %s: %s\n", topic,
                r->cfg->kafka_brokers,
                rd_kafka_err2str(e               ? e
                                 : md->topic_cnt ? md->topics[0].err
                                                 : e));
        if (md) rd_kafka_metadata_destroy(md);
        return -1;
    }
    *nparts = md->topics[0].partition_cnt;
    *end = ms_xcalloc((size_t)*nparts + 1, sizeof **end);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(*nparts);
    int n = 0;
    for (int i = 0; i < *nparts; i++) {
        int p = md->topics[0].partitions[i].id;
        int64_t lo = 0, hi = 0;
        e = rd_kafka_query_watermark_offsets(r->consumer, topic, p, &lo, &hi, DLQ_TIMEOUT_MS);
        if (e) {
            fprintf(stderr, "metasync dlq: cannot read the offsets of %s [%d]: %s\n", topic, p,
                    rd_kafka_err2str(e));
            n = -1;
            break;
        }
        if (p < *nparts) (*end)[p] = hi;
        int64_t from = lo > r->o->since ? lo : r->o->since;
        if (from >= hi || from > r->o->until) continue;
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = from;
        n++;
    }
    rd_kafka_metadata_destroy(md);
    if (n > 0 && (e = rd_kafka_assign(r->consumer, l))) {
        fprintf(stderr, "metasync dlq: cannot assign %s: %s\n", topic, rd_kafka_err2str(e));
        n = -1;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return n;
}

/* Reads the assigned partitions up to their end at start (or --until), handling each message. */
static int read_all(dlq_run *r, const char *topic)
{
    int64_t *end = NULL;
    int nparts = 0;
    int active = assign_all(r, topic, &end, &nparts);
    if (active < 0) {
        free(end);
        return MS_EXIT_UNREACHABLE;
    }
    bool *done = ms_xcalloc((size_t)nparts + 1, sizeof *done);
    bool go = true;
    while (go && active > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->consumer, 500);
        if (!m) continue;
        if (m->err) {
            /* The end of a partition: done even when no message reached end[p] (compaction,
             * transaction markers at the end). */
            int ep = m->partition;
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && ep >= 0 && ep < nparts && !done[ep]) {
                done[ep] = true;
                active--;
            } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                fprintf(stderr, "metasync dlq: %s\n", rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        int p = m->partition;
        bool inside = p >= 0 && p < nparts && !done[p];
        if (inside) go = handle(r, m);
        if (inside && (m->offset + 1 >= end[p] || m->offset >= r->o->until)) {
            done[p] = true;
            active--;
        }
        rd_kafka_message_destroy(m);
        if (r->producer) rd_kafka_poll(r->producer, 0);
    }
    free(done);
    free(end);
    return MS_EXIT_OK;
}

int ms_cmd_dlq(int argc, char **argv, char **envp)
{
    if (ms_cli_wants_help(argc, argv)) {
        usage(stdout);
        return MS_EXIT_OK;
    }
    ms_config cfg;
    char **rest;
    int nrest;
    int rc = ms_cli_load_config("dlq", &cfg, argc, argv, envp, &rest, &nrest);
    if (rc != MS_EXIT_OK) return rc;
    dlq_opts o;
    rc = parse_args(nrest, rest, &o);
    free(rest);
    if (rc == MS_EXIT_OK && (!cfg.kafka_brokers || !*cfg.kafka_brokers)) {
        fprintf(stderr, "metasync dlq: kafka.brokers is empty (--kafka.brokers HOST:PORT)\n");
        rc = MS_EXIT_USAGE;
    }
    if (rc != MS_EXIT_OK) {
        ms_config_free(&cfg);
        return rc;
    }
    dlq_run r = {.cfg = &cfg, .o = &o};
    ms_error err;
    ms_error_clear(&err);
    static const char *const cdefaults[] = {"group.id", "metasync-dlq-cli", NULL};
    static const char *const cforced[] = {"enable.auto.commit", "false", "enable.partition.eof",
                                          "true", NULL};
    static const char *const pdefaults[] = {"partitioner", "murmur2_random", NULL};
    static const char *const pforced[] = {"acks", "all", "enable.idempotence", "true", NULL};
    char errstr[512];
    rd_kafka_conf_t *cc = ms_kafka_conf_new(&cfg, cdefaults, cforced, &err);
    if (cc) {
        r.consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, errstr, sizeof errstr);
        if (!r.consumer) {
            rd_kafka_conf_destroy(cc);
            ms_error_set(&err, MS_ERR_CONFIG, "kafka: %s", errstr);
        }
    }
    if (r.consumer && o.replay && !o.dry_run) {
        rd_kafka_conf_t *pc = ms_kafka_conf_new(&cfg, pdefaults, pforced, &err);
        if (pc) {
            rd_kafka_conf_set_opaque(pc, &r);
            rd_kafka_conf_set_dr_msg_cb(pc, on_report);
            r.producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, sizeof errstr);
            if (!r.producer) {
                rd_kafka_conf_destroy(pc);
                ms_error_set(&err, MS_ERR_CONFIG, "kafka: %s", errstr);
            }
        }
    }
    if (!r.consumer || (o.replay && !o.dry_run && !r.producer)) {
        fprintf(stderr, "metasync dlq: %s\n", err.detail);
        rc = MS_EXIT_USAGE;
    } else {
        rc = read_all(&r, cfg.kafka_dlq_topic);
    }
    if (r.producer) {
        while (rd_kafka_outq_len(r.producer) > 0)
            rd_kafka_flush(r.producer, 1000);
        if (r.delivery_failures) rc = MS_EXIT_UNREACHABLE;
        rd_kafka_destroy(r.producer);
    }
    free(r.parts_topic);
    if (r.consumer) {
        rd_kafka_consumer_close(r.consumer);
        rd_kafka_destroy(r.consumer);
    }
    fflush(stdout);
    fprintf(stderr, "metasync dlq: %" PRId64 " dead letters %s\n", r.matched,
            !o.replay   ? "listed"
            : o.dry_run ? "would be replayed"
                        : "replayed");
    ms_config_free(&cfg);
    return rc;
}
