/*
 * ms_config.h — MetaSync's configuration: one struct, one declarative table of keys.
 *
 * Every key is a row of the table in ms_config.c (type, dotted key, default, offsetof into
 * ms_config, description), in the style of Fluent Bit's config_map. Sources, each overriding the
 * one before: built-in defaults, a YAML file (--config FILE), the environment (key `a.b_c` is
 * METASYNC_A_B_C), then command-line flags (`--a.b-c VALUE` or `--a.b-c=VALUE`; `_` and `-` are
 * interchangeable in flags). Unknown keys and bad values are errors that name the key and where it
 * came from. docs/config.md is generated from the table (ms_config_markdown).
 *
 * Ownership: ms_config owns its strings; ms_config_free releases them. Loading happens once at
 * start on the main thread; afterwards the struct is read-only and may be read from any thread.
 */
#ifndef MS_CONFIG_H
#define MS_CONFIG_H

#include "ms_error.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ms_config {
    char *listen;                 /* listen: host:port of the HTTP API; port 0 picks one */
    char *data_dir;               /* data_dir: where the embedded store and snapshots live */
    char *log_level;              /* log.level: error|warn|info|debug */
    char *server;                 /* server: URL of a running server, for client commands */
    int64_t http_max_body_bytes;  /* http.max_body_bytes */
    int64_t http_max_connections; /* http.max_connections */
    int64_t http_body_budget_bytes; /* http.body_budget_bytes: all request bodies buffered at once */
    int64_t limits_max_event_bytes; /* limits.max_event_bytes */
    int64_t limits_max_depth;     /* limits.max_depth: JSON nesting */
    int64_t lanes_fast_max_bytes; /* lanes.fast_max_bytes: queued bytes before backpressure */
    int64_t lanes_bulk_max_bytes; /* lanes.bulk_max_bytes */
    int64_t engine_max_commit_events; /* engine.max_commit_events: events per group commit */
    int64_t engine_enqueue_timeout_ms; /* engine.enqueue_timeout_ms: wait for queue room, then 503 */
    char *store_url;              /* store.url: "sqlite" (data_dir/metasync.db) or sqlite:PATH */
    char *store_synchronous;      /* store.synchronous: full|normal */
    int64_t store_cache_mb;       /* store.cache_mb */
    int64_t store_wal_max_bytes;  /* store.wal_max_bytes: the writer waits for a checkpoint */
    int64_t store_listen_check_ms; /* store.listen_check_ms: PostgreSQL listener's link check */
    bool snapshots_enabled;       /* snapshots.enabled */
    char *snapshots_url;          /* snapshots.url: "" = file://<data_dir>/snapshots */
    int64_t snapshots_max_object_bytes; /* snapshots.max_object_bytes */
    int64_t snapshots_max_object_age_ms; /* snapshots.max_object_age_ms */
    int64_t sinks_nice;                  /* sinks.nice: nice value of the sink runner threads */
    char *s3_endpoint;            /* s3.endpoint: "" = https://s3.<region>.amazonaws.com */
    char *s3_region;              /* s3.region: SigV4 region */
    bool s3_path_style;           /* s3.path_style: bucket in the path, not the host */
    int64_t s3_timeout_ms;        /* s3.timeout_ms: one S3 request */
    int64_t s3_max_retries;       /* s3.max_retries: retries of one PUT */
    int64_t changes_max_wait_seconds; /* changes.max_wait_seconds: long-poll cap */
    char *kafka_brokers;          /* kafka.brokers: "" = no Kafka source or sink */
    char *kafka_group_id;         /* kafka.group_id */
    char *kafka_topics;           /* kafka.topics: comma-separated fast-path topics */
    char *kafka_bulk_topics;      /* kafka.bulk_topics: comma-separated bulk topics */
    char *kafka_changes_topic;    /* kafka.changes_topic: "" = no Kafka changes sink */
    bool kafka_changes_topic_per_tenant; /* kafka.changes_topic_per_tenant */
    char *kafka_changes_format;   /* kafka.changes_format: json|avro */
    char *kafka_dlq_topic;        /* kafka.dlq_topic */
    int64_t kafka_batch_max_messages; /* kafka.batch_max_messages */
    int64_t kafka_max_buffered_bytes; /* kafka.max_buffered_bytes: pause partitions beyond */
    char *kafka_properties;       /* kafka.properties.NAME: "name=value\n" lines for librdkafka */
    bool registry_enabled;        /* registry.enabled: embedded registry under /registry */
    char *registry_url;           /* registry.url: external registry ("" = embedded) */
    char *secrets_key_file;       /* secrets.key_file: AES-256 key for connection credentials */
    bool auth_required;           /* auth.required: an API key on every /api/v1 request */
} ms_config;

/* Fills c with the built-in defaults (strings are heap copies). */
void ms_config_defaults(ms_config *c);

/*
 * Loads the configuration into c (which must hold defaults): the YAML file named by a `--config
 * FILE` flag in argv if any, then envp (NULL-terminated "K=V" strings; may be NULL), then argv
 * flags that name config keys. argv[0..argc) are the arguments after the command name.
 * Arguments that are not config flags (positional arguments and command-specific flags) are
 * copied in order to rest[] (caller-provided, at least argc slots, pointers into argv) and
 * counted in *nrest. A flag that looks like a config key but has a bad value is an error.
 * Returns MS_OK, or MS_ERR_CONFIG with err->detail naming the key and its origin
 * (e.g. "data_dir: ... (from METASYNC_DATA_DIR)"), or MS_ERR_IO when the YAML file can't be read.
 */
ms_err ms_config_load(ms_config *c, char *const *envp, int argc, char **argv, char **rest,
                      int *nrest, ms_error *err);

/* Sets one key from text, as if given by `origin` (used by the loader and by tests). */
ms_err ms_config_set(ms_config *c, const char *key, const char *value, const char *origin,
                     ms_error *err);

/* Releases the strings of c. */
void ms_config_free(ms_config *c);

/* Prints the keys as `  --key VALUE   description (default: X; env METASYNC_KEY)` lines. */
void ms_config_print_help(FILE *out);

/* Prints the Markdown reference of every key (the body of docs/config.md). */
void ms_config_markdown(FILE *out);

#endif
