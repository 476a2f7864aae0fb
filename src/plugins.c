/*
 * plugins.c — the built-in plugins, by kind (see ms_plugins.h). Adding a store, blob store,
 * sink or source is adding its folder and one line here; the core does not change.
 */
#include "ms_plugins.h"

#include <string.h>

extern const ms_store_ops ms_store_sqlite;
extern const ms_store_ops ms_store_postgres, ms_store_postgresql;
extern const ms_blob_ops ms_blob_dir;
extern const ms_blob_ops ms_blob_s3;
extern const ms_sink_ops ms_sink_snapshot;
extern const ms_source_ops ms_source_http;
extern const ms_source_ops ms_source_kafka;
extern const ms_sink_ops ms_sink_kafka;

static const ms_store_ops *const stores[] = {&ms_store_sqlite, &ms_store_postgres,
                                              &ms_store_postgresql, NULL};
static const ms_blob_ops *const blobs[] = {&ms_blob_dir, &ms_blob_s3, NULL};
static const ms_sink_ops *const sinks[] = {&ms_sink_snapshot, &ms_sink_kafka, NULL};
static const ms_source_ops *const sources[] = {&ms_source_http, &ms_source_kafka, NULL};

/* True when url starts with scheme followed by ':' or is exactly scheme. */
static int scheme_is(const char *url, const char *scheme)
{
    size_t n = strlen(scheme);
    return strncmp(url, scheme, n) == 0 && (url[n] == ':' || url[n] == '\0');
}

const ms_store_ops *ms_plugins_store(const char *url)
{
    for (int i = 0; stores[i]; i++)
        if (scheme_is(url, stores[i]->scheme)) return stores[i];
    return NULL;
}

const ms_blob_ops *ms_plugins_blob(const char *url)
{
    for (int i = 0; blobs[i]; i++)
        if (scheme_is(url, blobs[i]->scheme)) return blobs[i];
    return NULL;
}

const ms_sink_ops *const *ms_plugins_sinks(void)
{
    return sinks;
}

const ms_source_ops *const *ms_plugins_sources(void)
{
    return sources;
}
