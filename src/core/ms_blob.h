/*
 * ms_blob.h — the blob-store interface: where snapshot objects go. A versioned table of
 * callbacks. The embedded default writes files under a directory (src/blob/dir, URL
 * file://PATH); S3 comes behind the same table.
 *
 * Thread rules: one blob-store context is used by one sink thread at a time.
 * Ownership: data passed to put() is borrowed for the call.
 */
#ifndef MS_BLOB_H
#define MS_BLOB_H

#include "ms_config.h"
#include "ms_error.h"
#include "ms_log.h"

#include <stddef.h>

#define MS_BLOB_OPS_VERSION 1

typedef struct ms_blob_ops {
    int version;        /* MS_BLOB_OPS_VERSION */
    const char *name;   /* "dir" */
    const char *scheme; /* "file" */
    ms_err (*open)(const char *url, const ms_config *cfg, const ms_log *log, void **ctx,
                   ms_error *err);
    /* Stores the object at key ("default/2026/11/23/19/1-500.ndjson") whole or not at all;
     * replaces an existing object of the same key. Retriable failures return MS_ERR_IO. */
    ms_err (*put)(void *ctx, const char *key, const void *data, size_t len, ms_error *err);
    void (*close)(void *ctx);
} ms_blob_ops;

#endif
