/*
 * kafka_conf.h — what the Kafka source, the Kafka changes sink and `metasync dlq` share:
 * building a librdkafka configuration from MetaSync's kafka.* keys, and the names of the
 * dead-letter headers.
 *
 * Ownership: ms_kafka_conf_new returns a new rd_kafka_conf_t the caller passes to rd_kafka_new
 * (which takes it on success) or destroys. Thread-safe (no shared state).
 */
#ifndef MS_KAFKA_CONF_H
#define MS_KAFKA_CONF_H

#include "ms_config.h"
#include "ms_error.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>

/* Headers a dead letter carries besides the original message's own headers. */
#define MS_DLQ_H_CODE      "error.code"
#define MS_DLQ_H_MESSAGE   "error.message"
#define MS_DLQ_H_TOPIC     "source.topic"
#define MS_DLQ_H_PARTITION "source.partition"
#define MS_DLQ_H_OFFSET    "source.offset"
/* "true" on a dead letter whose value was cut because the whole message was too large. */
#define MS_DLQ_H_TRUNCATED "error.value_truncated"

/*
 * A new librdkafka configuration: bootstrap.servers from kafka.brokers, then each name=value
 * pair of `defaults` (a NULL-terminated array of alternating names and values; may be NULL),
 * then every kafka.properties.* pair (so an operator can override a default), then each pair of
 * `forced` (settings MetaSync's guarantees depend on; may be NULL). Errors: MS_ERR_CONFIG naming
 * the property ("kafka.properties.foo: No such configuration property"); NULL is returned.
 */
rd_kafka_conf_t *ms_kafka_conf_new(const ms_config *cfg, const char *const *defaults,
                                   const char *const *forced, ms_error *err);

/*
 * True when a produce (or delivery) error can never pass by retrying the same message: it is too
 * large (MSG_SIZE_TOO_LARGE, RECORD_LIST_TOO_LARGE, INVALID_MSG_SIZE), the broker refuses it
 * (INVALID_RECORD, INVALID_MSG, CORRUPT_MESSAGE), or the topic is invalid or not ours to write
 * (TOPIC_EXCEPTION, TOPIC_AUTHORIZATION_FAILED, INVALID_TOPIC). Everything else is retried.
 */
bool ms_kafka_err_permanent(rd_kafka_resp_err_t e);

/* True when the header name is one MetaSync adds to a dead letter (error.* or source.*). */
bool ms_kafka_is_dlq_header(const char *name);

#endif
