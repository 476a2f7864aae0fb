/*
 * ms_change.h — the change record, the contract every sink reads:
 *   {"seq":S,"tenant":"default","op":"create|update|delete|tag|untag|link|unlink",
 *    "qualified_name":"…","type":"…","version":V,"before":{…}|null,"after":{…}|null,
 *    "changed":["attributes.data_type","tags"],"cause":"e-1","ts":"…"}
 * Written by the store in the same transaction as the asset change (transactional outbox);
 * `seq` is strictly increasing per tenant with no gaps. See docs/events.md.
 *
 * Ownership: every pointer in an ms_change is borrowed from whoever produced it (a store reading
 * its log) and is valid only during the callback that received it.
 */
#ifndef MS_CHANGE_H
#define MS_CHANGE_H

#include "ms_buf.h"

#include <stdint.h>

typedef struct ms_change {
    uint64_t seq;
    const char *tenant;
    const char *op;
    const char *qn;
    const char *type;    /* may be NULL (link to an asset not known yet) */
    int64_t version;
    const char *before;  /* JSON object text or NULL */
    const char *after;   /* JSON object text or NULL */
    const char *changed; /* JSON array text, never NULL */
    const char *cause;   /* the event id, or NULL */
    const char *ts;      /* RFC 3339 time of the commit */
} ms_change;

/* Appends the change record as one JSON object (no trailing newline). */
void ms_change_to_json(const ms_change *c, ms_buf *out);

/* Receives change records in seq order; returns 0 to continue, non-zero to stop early. */
typedef int (*ms_change_cb)(void *ud, const ms_change *c);

/* Most change records one GET /api/v1/changes page may ask for (`limit`); the CLI checks it too. */
#define MS_CHANGES_PAGE_MAX 1000

#endif
