/*
 * ms_plugins.h — the list of built-in plugins, by kind. The core asks here for a store or blob
 * store by URL scheme and for the sinks and sources to run; the list itself is compiled in
 * src/plugins.c, outside the core, so the core never includes a plugin or a transport.
 */
#ifndef MS_PLUGINS_H
#define MS_PLUGINS_H

#include "ms_blob.h"
#include "ms_sink.h"
#include "ms_source.h"
#include "ms_store.h"

/* The store whose scheme matches url ("sqlite", "sqlite:PATH"); NULL if none. */
const ms_store_ops *ms_plugins_store(const char *url);
/* The blob store whose scheme matches url ("file://…"); NULL if none. */
const ms_blob_ops *ms_plugins_blob(const char *url);
/* NULL-terminated list of the sinks and sources built in. */
const ms_sink_ops *const *ms_plugins_sinks(void);
const ms_source_ops *const *ms_plugins_sources(void);

#endif
