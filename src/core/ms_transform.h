/*
 * ms_transform.h — the transform hook: a versioned table of callbacks run on every decoded event
 * before it is validated against the store and committed.
 *
 * Results (fixed stage results): MS_TRANSFORM_UNTOUCHED (pass on as is), MS_TRANSFORM_MODIFIED
 * (the callback changed the event in place), MS_TRANSFORM_DROP (discard the event; it is reported
 * as rejected with code and detail from the transform). A transform must not block.
 *
 * Thread rules: apply() is called concurrently from request threads; a transform's context must
 * be safe for that (read-only after init, or its own locking).
 * Ownership: the event stays owned by the caller; a transform may replace its strings (free the
 * old one, allocate with ms_xmalloc).
 */
#ifndef MS_TRANSFORM_H
#define MS_TRANSFORM_H

#include "ms_error.h"
#include "ms_event.h"

#define MS_TRANSFORM_OPS_VERSION 1

typedef enum {
    MS_TRANSFORM_UNTOUCHED = 0,
    MS_TRANSFORM_MODIFIED = 1,
    MS_TRANSFORM_DROP = 2
} ms_transform_status;

typedef struct ms_transform_ops {
    int version; /* MS_TRANSFORM_OPS_VERSION */
    const char *name;
    ms_transform_status (*apply)(void *ctx, ms_event *ev, ms_error *err);
} ms_transform_ops;

/* A configured transform: its table and its context. */
typedef struct ms_transform {
    const ms_transform_ops *ops;
    void *ctx;
} ms_transform;

#endif
