/*
 * test_kafka_conf.c — unit tests of the librdkafka configuration built from MetaSync's kafka.*
 * keys (src/source/kafka/kafka_conf.c): bootstrap servers, defaults that kafka.properties.*
 * override, forced settings that win over both, errors naming the offending property, and the
 * dead-letter header names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ms_config.h"
#include "source/kafka/kafka_conf.h"

#include <string.h>

/* The value of property name in conf (a static buffer). */
static const char *get(rd_kafka_conf_t *conf, const char *name)
{
    static char buf[512];
    size_t len = sizeof buf;
    assert_int_equal(rd_kafka_conf_get(conf, name, buf, &len), RD_KAFKA_CONF_OK);
    return buf;
}

static void set(ms_config *c, const char *key, const char *value)
{
    ms_error err;
    assert_int_equal(ms_config_set(c, key, value, "test", &err), MS_OK);
}

static void test_layers(void **state)
{
    (void)state;
    ms_config c;
    ms_config_defaults(&c);
    set(&c, "kafka.brokers", "h1:9092,h2:9092");
    set(&c, "kafka.properties.linger.ms", "42");
    set(&c, "kafka.properties.acks", "1");
    static const char *const defaults[] = {"linger.ms", "5", "client.id", "metasync", NULL};
    static const char *const forced[] = {"acks", "all", NULL};
    ms_error err;
    ms_error_clear(&err);
    rd_kafka_conf_t *conf = ms_kafka_conf_new(&c, defaults, forced, &err);
    assert_non_null(conf);
    assert_string_equal(get(conf, "bootstrap.servers"), "h1:9092,h2:9092");
    assert_string_equal(get(conf, "linger.ms"), "42");       /* property beats default */
    assert_string_equal(get(conf, "client.id"), "metasync"); /* default kept */
    assert_string_equal(get(conf, "acks"), "-1");            /* forced beats property */
    rd_kafka_conf_destroy(conf);
    ms_config_free(&c);
}

static void test_errors_name_the_property(void **state)
{
    (void)state;
    ms_config c;
    ms_config_defaults(&c);
    set(&c, "kafka.brokers", "h1:9092");
    set(&c, "kafka.properties.no.such.property", "x");
    ms_error err;
    ms_error_clear(&err);
    assert_null(ms_kafka_conf_new(&c, NULL, NULL, &err));
    assert_int_equal(err.code, MS_ERR_CONFIG);
    assert_non_null(strstr(err.detail, "kafka.properties.no.such.property"));
    ms_config_free(&c);

    ms_config_defaults(&c);
    set(&c, "kafka.brokers", "h1:9092");
    set(&c, "kafka.properties.linger.ms", "not-a-number");
    ms_error_clear(&err);
    assert_null(ms_kafka_conf_new(&c, NULL, NULL, &err));
    assert_non_null(strstr(err.detail, "kafka.properties.linger.ms"));
    ms_config_free(&c);
}

static void test_dlq_headers(void **state)
{
    (void)state;
    assert_true(ms_kafka_is_dlq_header(MS_DLQ_H_CODE));
    assert_true(ms_kafka_is_dlq_header(MS_DLQ_H_MESSAGE));
    assert_true(ms_kafka_is_dlq_header(MS_DLQ_H_TOPIC));
    assert_true(ms_kafka_is_dlq_header(MS_DLQ_H_PARTITION));
    assert_true(ms_kafka_is_dlq_header(MS_DLQ_H_OFFSET));
    assert_false(ms_kafka_is_dlq_header("tenant"));
    assert_false(ms_kafka_is_dlq_header("errors"));
    assert_false(ms_kafka_is_dlq_header("traceparent"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layers),
        cmocka_unit_test(test_errors_name_the_property),
        cmocka_unit_test(test_dlq_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
