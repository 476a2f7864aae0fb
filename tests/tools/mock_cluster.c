/*
 * mock_cluster.c — a standalone Kafka cluster for tests: librdkafka's in-process mock cluster
 * (rdkafka_mock.h) with 3 brokers on loopback, driven over stdin. Built as build/ms_mock_cluster.
 *
 * Protocol: the first stdout line is the bootstrap list ("127.0.0.1:P1,127.0.0.1:P2,..."),
 * flushed. Then one command per stdin line: `down N` / `up N` take broker N (1-based id) down
 * or up (its connections are closed and new ones refused, the partitions it leads become
 * unavailable), `topic NAME [PARTITIONS]` creates a topic, `quit` exits. Each command answers
 * one line, "ok" or "error: ...". EOF on stdin or SIGTERM/SIGINT exits 0.
 *
 * Limits (the mock's, see docs/kafka.md): no CreateTopics request (topics are auto-created on
 * first use with MS_MOCK_PARTITIONS partitions, set explicitly below), a bounded in-memory log
 * per partition, transactions are not isolated (aborted messages are visible), no persistence.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_MOCK_BROKERS    3
#define MS_MOCK_PARTITIONS 4

/* The one global of this file: set by the SIGTERM/SIGINT handler (which cannot be handed a
 * context), read by the command loop. */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: ms_mock_cluster [--help]\n\n"
            "Runs librdkafka's mock Kafka cluster (%d brokers, topics auto-created with %d\n"
            "partitions) on loopback. Prints the bootstrap list as the first stdout line, then\n"
            "reads commands from stdin, one per line:\n"
            "  down N                 take broker N (1..%d) down\n"
            "  up N                   bring broker N back\n"
            "  topic NAME [PARTS]     create a topic (default %d partitions)\n"
            "  quit                   exit\n"
            "Exits on EOF, `quit`, SIGTERM or SIGINT.\n\n"
            "Example:\n"
            "  (echo down 1; sleep 5; echo up 1) | build/ms_mock_cluster\n",
            MS_MOCK_BROKERS, MS_MOCK_PARTITIONS, MS_MOCK_BROKERS, MS_MOCK_PARTITIONS);
}

/* Runs one command line; writes the answer line to stdout. Returns 1 when asked to quit. */
static int run_command(rd_kafka_mock_cluster_t *mc, char *line)
{
    char *cmd = strtok(line, " \t\r\n");
    char *arg = strtok(NULL, " \t\r\n");
    char *arg2 = strtok(NULL, " \t\r\n");
    if (!cmd) return 0;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (strcmp(cmd, "quit") == 0) return 1;
    if ((strcmp(cmd, "down") == 0 || strcmp(cmd, "up") == 0) && arg) {
        int id = atoi(arg);
        e = cmd[0] == 'd' ? rd_kafka_mock_broker_set_down(mc, id)
                          : rd_kafka_mock_broker_set_up(mc, id);
    } else if (strcmp(cmd, "topic") == 0 && arg) {
        int parts = arg2 ? atoi(arg2) : MS_MOCK_PARTITIONS;
        e = rd_kafka_mock_topic_create(mc, arg, parts, MS_MOCK_BROKERS);
    } else {
        printf("error: unknown command '%s'\n", cmd);
        fflush(stdout);
        return 0;
    }
    if (e)
        printf("error: %s\n", rd_kafka_err2str(e));
    else
        printf("ok\n");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        fprintf(stderr, "ms_mock_cluster: unknown argument '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }
    /* No SA_RESTART: a signal interrupts the blocking read of stdin. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "ms_mock_cluster: %s\n", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, MS_MOCK_BROKERS);
    if (!mc) {
        fprintf(stderr, "ms_mock_cluster: cannot create the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);

    char line[512];
    while (!stop_requested) {
        if (!fgets(line, sizeof line, stdin)) {
            if (errno == EINTR && !stop_requested && !feof(stdin)) {
                clearerr(stdin);
                continue;
            }
            break;
        }
        if (run_command(mc, line)) break;
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
