/*
 * store_apply.h — the decisions of apply() shared by the SQL stores: what an event does to an
 * asset (versions, change records with before/after/changed, orphans and adoption, cascade
 * deletes, direct tags, lineage edges, if_version, idempotency ids), written through a small
 * table of row-level callbacks that each store implements over its own database.
 *
 * A store opens its transaction, sets up the tenant's seq counter, calls ms_sa_event() for each
 * event of the batch in order, and commits (or rolls everything back when it returned false).
 * Ownership: ms_srow strings are owned by the row (ms_srow_free); everything passed to the
 * callbacks is borrowed for the duration of the call.
 * @locality the store's writer thread (the callbacks use its writer connection).
 */
#ifndef STORE_APPLY_H
#define STORE_APPLY_H

#include "ms_buf.h"
#include "ms_change.h"
#include "ms_error.h"
#include "ms_event.h"
#include "ms_store.h"
#include "ms_types.h"

#include <stdbool.h>
#include <stdint.h>

/* A tag of an asset as stored. */
typedef struct ms_stag {
    char *name;
    char *source; /* "direct" | "propagated" */
    char *origin; /* "" for direct */
} ms_stag;

/* An asset row as loaded, strings owned. */
typedef struct ms_srow {
    bool exists;
    int64_t id;
    char *type, *name, *parent, *attributes, *created_at, *updated_at;
    int64_t version;
    bool deleted, orphan;
    ms_stag *tags;
    size_t ntags;
} ms_srow;

void ms_srow_free(ms_srow *r);
/* Deep copy of b into r (r's old content is not freed). */
void ms_srow_copy(ms_srow *r, const ms_srow *b);
/* Sorts tags by name then origin (the order of the snapshot's "tags"). */
void ms_stags_sort(ms_stag *t, size_t n);
/* Appends tag (name, source, origin — copied) to r. */
void ms_srow_tag_add(ms_srow *r, const char *name, const char *source, const char *origin);
/* Appends the asset snapshot JSON of row r named qn (the "before"/"after" of change records and
 * the body of GET /assets/{qn}). */
void ms_srow_json(ms_buf *out, const char *qn, const ms_srow *r);

/*
 * Row-level operations of one store, on its writer connection inside the open transaction. Each
 * returns false on a database failure (having filled err), which rolls the batch back.
 */
typedef struct ms_sa_backend {
    /* Records event id as seen; *fresh is false when it already was. */
    bool (*seen_add)(void *be, const char *tenant, const char *id, bool *fresh, ms_error *err);
    bool (*seen_del)(void *be, const char *tenant, const char *id, ms_error *err);
    /* Loads (tenant, qn) into r (zeroed first; r->exists tells), with its tags when asked. */
    bool (*row_load)(void *be, const char *tenant, const char *qn, bool with_tags, ms_srow *r,
                     ms_error *err);
    /* Writes r: UPDATE by r->id when existed, else INSERT (version 1, created=updated). */
    bool (*row_save)(void *be, const char *tenant, const char *qn, ms_srow *r, bool existed,
                     ms_error *err);
    /* Optional (NULL: not offered). Inserts r as row_save(existed = false) does, unless a row
     * (tenant, qn) exists, live or deleted: then writes nothing and sets *created false. Lets
     * a create skip the lookup that would only have found nothing (insert-first). */
    bool (*row_create)(void *be, const char *tenant, const char *qn, ms_srow *r, bool *created,
                       ms_error *err);
    /* Replaces the direct tags of (tenant, qn) by those of r. */
    bool (*tags_write)(void *be, const char *tenant, const char *qn, const ms_srow *r,
                       ms_error *err);
    /* Clears the orphan flag of the children of parent; adds to *live (may be NULL) how many of
     * them are not deleted. */
    bool (*adopt)(void *be, const char *tenant, const char *parent, int64_t *live, ms_error *err);
    /* Adds or removes an edge; *changed tells whether the table changed. */
    bool (*edge_set)(void *be, const char *tenant, const char *src, const char *dst,
                     const char *via, bool add, bool *changed, ms_error *err);
    /* Appends a change record (c->seq assigned by the caller). */
    bool (*change_add)(void *be, const ms_change *c, ms_error *err);
    /* The qualified names of the live descendants of qn, nearest first, then by name (heap
     * array of heap strings). */
    bool (*descendants)(void *be, const char *tenant, const char *qn, char ***kids, size_t *n,
                        ms_error *err);
    /* The type of the live asset qn into *type (heap string), NULL when there is none. */
    bool (*parent_type)(void *be, const char *tenant, const char *qn, char **type, ms_error *err);
    /* Raises source_offsets(group, topic, partition) to next (never lowers it); now is the
     * commit time (updated_at). */
    bool (*offset_put)(void *be, const char *group, const char *topic, int32_t partition,
                       int64_t next, const char *now, ms_error *err);
} ms_sa_backend;

/* Buffers ms_sa_event reuses from one event to the next instead of allocating them for each
 * change record (owned by the store, freed with ms_sa_scratch_free). */
typedef struct ms_sa_scratch {
    ms_buf before, after, changed;
} ms_sa_scratch;

void ms_sa_scratch_free(ms_sa_scratch *sc);

/* What ms_sa_event works with besides the event. */
typedef struct ms_sa_args {
    const ms_sa_backend *ops;
    void *be;         /* the backend's context */
    ms_types *types;  /* parent types and required attributes */
    int max_depth;    /* limits.max_depth: how deep stored attributes are parsed */
    const char *now;  /* commit time (RFC 3339) */
    uint64_t *seq;    /* the tenant's last seq in the open transaction; advanced per record */
    int64_t *orphans; /* the tenant's live-orphan count, kept up to date (may be NULL) */
    /* Insert-first state, owned by the store across its batches (may be NULL: never; only read
     * when ops->row_create is set): true while the last upsert created its asset. An upsert
     * then tries row_create before any lookup, and falls back to the lookup path when the
     * asset exists. A bulk load thus pays no lookups; a stream of updates pays none of the
     * failed inserts, and a mixed one at most one extra statement per switch. */
    bool *creating;
    ms_sa_scratch *scratch; /* may be NULL: buffers are then allocated per change record */
} ms_sa_args;

/*
 * Applies one event through the backend. Fills res (zeroed here). Returns false on a database
 * failure (err filled; the caller rolls back), true otherwise, rejections included.
 */
bool ms_sa_event(const ms_sa_args *args, const ms_event *ev, ms_apply_result *res, ms_error *err);

/*
 * Writes the source positions of an applied batch through ops->offset_put, after its events
 * (res filled): each pos[k].next, lowered to the offset of the first rejected event that names
 * it (ms_store_ops.apply_at). Returns false on a database failure (err filled).
 */
bool ms_sa_positions(const ms_sa_backend *ops, void *be, ms_event *const *evs, size_t n,
                     const ms_apply_result *res, const ms_srcpos *pos, size_t npos, const char *now,
                     ms_error *err);

#endif
