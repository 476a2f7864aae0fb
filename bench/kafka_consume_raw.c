/*
 * kafka_consume_raw.c — the transport limit of the Kafka benchmark (bench/kafka.sh): reads every
 * message of the given topics, from the low to the high watermark each partition has at the start,
 * with a minimal librdkafka loop (assign, rd_kafka_consumer_poll, count, destroy): no decoding, no
 * store. The consumer uses librdkafka's defaults, like MetaSync's source (which sets only the
 * prefetch budget and the offset policy).
 *
 *   bench_kafka_consume_raw --brokers B --topics T1,T2 [--timeout-s S]
 *
 * Prints one line:
 *   KRAW messages=… bytes=… seconds=… msgs_per_s=… mib_per_s=… partitions=… dropped=…
 * (seconds: assign → last message; dropped: messages the mock cluster no longer holds, the sum of
 * the low watermarks — they are not counted in `messages`.) Exit 0, or 1 on a timeout or error.
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *brokers = NULL;
    char *topics = NULL;
    double timeout_s = 600;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--brokers") == 0)
            brokers = argv[i + 1];
        else if (strcmp(argv[i], "--topics") == 0)
            topics = argv[i + 1];
        else if (strcmp(argv[i], "--timeout-s") == 0)
            timeout_s = strtod(argv[i + 1], NULL);
    }
    if (!brokers || !topics || argc % 2 == 0) {
        fputs("usage: bench_kafka_consume_raw --brokers B --topics T1,T2 [--timeout-s S]\n",
              stderr);
        return 2;
    }
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "group.id", "bench-raw", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "kafka_consume_raw: %s\n", errstr);
        return 1;
    }
    rd_kafka_poll_set_consumer(rk);

    /* Every partition of every topic, from its low watermark; remember the high ones. */
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(64);
    long long expect = 0, dropped = 0;
    for (char *t = strtok(topics, ","); t; t = strtok(NULL, ",")) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, t, NULL);
        const rd_kafka_metadata_t *md = NULL;
        if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
            md->topic_cnt != 1) {
            fprintf(stderr, "kafka_consume_raw: no metadata for %s\n", t);
            return 1;
        }
        for (int p = 0; p < md->topics[0].partition_cnt; p++) {
            int64_t lo = 0, hi = 0;
            rd_kafka_query_watermark_offsets(rk, t, p, &lo, &hi, 10000);
            expect += hi - lo;
            dropped += lo;
            rd_kafka_topic_partition_list_add(parts, t, p)->offset = lo;
        }
        rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
    }
    double t0 = now_s(), t_last = t0;
    rd_kafka_assign(rk, parts);
    long long n = 0, bytes = 0;
    while (n < expect && now_s() - t0 < timeout_s) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (!m->err) {
            n++;
            bytes += (long long)m->len;
            t_last = now_s();
        }
        rd_kafka_message_destroy(m);
    }
    double secs = t_last - t0;
    printf("KRAW messages=%lld bytes=%lld seconds=%.2f msgs_per_s=%.0f mib_per_s=%.1f "
           "partitions=%d dropped=%lld\n",
           n, bytes, secs, secs > 0 ? (double)n / secs : 0.0,
           secs > 0 ? (double)bytes / secs / 1048576.0 : 0.0, parts->cnt, dropped);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n == expect ? 0 : 1;
}
