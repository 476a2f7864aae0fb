/* kafka_conf.c — librdkafka configuration from MetaSync's kafka.* keys (see kafka_conf.h). */
#include "kafka_conf.h"

#include "ms_buf.h"

#include <stdlib.h>
#include <string.h>

/* Sets one property; on failure fills err naming it (origin says where it came from). */
static bool conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, const char *origin,
                     ms_error *err)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof errstr) == RD_KAFKA_CONF_OK)
        return true;
    ms_error_set(err, MS_ERR_CONFIG, "%s%s: %s", origin, name, errstr);
    return false;
}

static bool conf_set_pairs(rd_kafka_conf_t *conf, const char *const *kv, ms_error *err)
{
    for (size_t i = 0; kv && kv[i]; i += 2)
        if (!conf_set(conf, kv[i], kv[i + 1], "kafka: ", err)) return false;
    return true;
}

rd_kafka_conf_t *ms_kafka_conf_new(const ms_config *cfg, const char *const *defaults,
                                   const char *const *forced, ms_error *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    bool ok = conf_set(conf, "bootstrap.servers", cfg->kafka_brokers, "kafka.brokers → ", err) &&
              conf_set_pairs(conf, defaults, err);
    /* kafka.properties holds "name=value\n" lines (checked by the config loader). */
    const char *p = cfg->kafka_properties ? cfg->kafka_properties : "";
    while (ok && *p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (eq) {
            char *name = ms_xstrndup(p, (size_t)(eq - p));
            char *value = ms_xstrndup(eq + 1, len - (size_t)(eq - p) - 1);
            ok = conf_set(conf, name, value, "kafka.properties.", err);
            free(name);
            free(value);
        }
        p += len + (nl ? 1 : 0);
    }
    if (ok) ok = conf_set_pairs(conf, forced, err);
    if (!ok) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

bool ms_kafka_is_dlq_header(const char *name)
{
    return strncmp(name, "error.", 6) == 0 || strncmp(name, "source.", 7) == 0;
}

bool ms_kafka_err_permanent(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR__BAD_MSG:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        return true;
    default:
        return false;
    }
}
