/*
 * store_pg_apply.c — the PostgreSQL store's writer: one transaction per batch on the writer
 * connection, the decisions shared with the SQLite store (store/common/store_apply.c) over the
 * row operations below, and per-tenant gap-free seqs from the tenants row of each tenant, locked
 * FOR UPDATE for the transaction before anything else is read, in tenant-name order (concurrent
 * writers on one database queue there instead of racing, and never deadlock on it).
 *
 * Speed: the whole batch is one libpq pipeline. At its start, one query per tenant loads every
 * asset row the batch names (its assets and their parents) and one the event ids already seen,
 * each an index probe per key;
 * the decisions then read those from memory, and every write (prepared statements) is queued
 * without waiting for its result. Only what memory cannot answer waits for the server: the
 * descendants of a deleted asset, rows outside the batch, lineage edges (whether the table
 * changed). Results are drained every PG_DRAIN statements so neither side's buffers fill up.
 * A failed statement fails the batch (it is seen at the next drain, at the latest at commit).
 *
 * @locality writer thread only.
 */
#include "store_pg_int.h"

#include "store/common/store_apply.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    W_SEEN_INS,
    W_SEEN_DEL,
    W_GET,
    W_INS,
    W_UPD,
    W_ADOPT,
    W_TAGS_CLEAR,
    W_TAG_INS,
    W_EDGE_INS,
    W_EDGE_DEL,
    W_CHG_INS,
    W_DESC,
    W_PARENT,
    W_TENANT_INS,
    W_TENANT,
    W_SEQ_SET,
    W_PRE_ROWS,
    W_PRE_SEEN,
    W_PRE_KIDS,
    W_INS_MANY,
    W_CHG_MANY,
    W_SEEN_MANY,
    W_TAGS_MANY,
    W_SET_TENANT,
    W_OFFSET_PUT,
    W__COUNT
};

static const char *const wsql[W__COUNT] = {
    [W_SEEN_INS] = "INSERT INTO seen(tenant, id) VALUES($1, $2) ON CONFLICT DO NOTHING",
    [W_SEEN_DEL] = "DELETE FROM seen WHERE tenant = $1 AND id = $2",
    [W_GET] = "SELECT id, type, name, parent, attributes, version, deleted, created_at, orphan,"
              " updated_at, CASE WHEN $3 THEN (SELECT coalesce(json_agg(json_build_array(t.tag,"
              " t.source, t.origin) ORDER BY t.tag, t.origin), '[]') FROM tags t"
              " WHERE t.tenant = $1 AND t.qn = $2) END"
              " FROM assets WHERE tenant = $1 AND qn = $2",
    [W_INS] = "INSERT INTO assets(tenant, qn, type, name, parent, attributes, version, created_at,"
              " updated_at, deleted, orphan) VALUES($1, $2, $3, $4, $5, $6, 1, $7, $7, false, $8)",
    [W_UPD] = "UPDATE assets SET type = $3, name = $4, parent = $5, attributes = $6, version = $7,"
              " created_at = $8, updated_at = $9, deleted = $10, orphan = $11"
              " WHERE tenant = $1 AND qn = $2",
    [W_ADOPT] = "UPDATE assets SET orphan = false WHERE tenant = $1 AND parent = $2 AND orphan",
    [W_TAGS_CLEAR] = "DELETE FROM tags WHERE tenant = $1 AND qn = $2 AND source = 'direct'",
    [W_TAG_INS] = "INSERT INTO tags(tenant, qn, tag, source, origin)"
                  " VALUES($1, $2, $3, 'direct', '') ON CONFLICT DO NOTHING",
    [W_EDGE_INS] = "INSERT INTO edges(tenant, src, dst, via) VALUES($1, $2, $3, $4)"
                   " ON CONFLICT DO NOTHING",
    [W_EDGE_DEL] = "DELETE FROM edges WHERE tenant = $1 AND src = $2 AND dst = $3 AND via = $4",
    [W_CHG_INS] = "INSERT INTO changes(tenant, seq, op, qn, type, version, before, after, changed,"
                  " cause, ts) VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    /* Live descendants, nearest first, then by name. A walk down can meet an asset
     * twice only on a parent loop, which passes through the root: never stepping back onto
     * the root ends it. */
    [W_DESC] = "WITH RECURSIVE d(qn, depth, id) AS (SELECT $2::text COLLATE \"C\", 0, 0::bigint"
               " UNION ALL SELECT a.qn, d.depth + 1, a.id FROM assets a JOIN d ON a.tenant = $1"
               " AND a.parent = d.qn WHERE NOT a.deleted AND a.qn <> $2)"
               " SELECT qn FROM d WHERE depth > 0 ORDER BY depth, qn",
    [W_PARENT] = "SELECT type FROM assets WHERE tenant = $1 AND qn = $2 AND NOT deleted",
    /* The tenant's row, created on first sight, then locked until commit: its last_seq is the
     * seq counter. Two statements (READ COMMITTED): when another writer creates the row at the
     * same time, the INSERT waits for its commit and does nothing, and only a statement started
     * after that sees the row (in one statement, a CTE's INSERT and the SELECT share the
     * snapshot taken before: the SELECT found no row and the seqs started again at 1). */
    [W_TENANT_INS] = "INSERT INTO tenants(tenant) VALUES($1) ON CONFLICT DO NOTHING",
    [W_TENANT] = "SELECT last_seq FROM tenants WHERE tenant = $1 FOR UPDATE",
    /* The new last seq, and a NOTIFY (sent at COMMIT) that wakes the other workers' waiters
     * (store_pg_notify.c). */
    [W_SEQ_SET] = "WITH u AS (UPDATE tenants SET last_seq = $2 WHERE tenant = $1 RETURNING"
                  " tenant, last_seq) SELECT pg_notify('" PG_NOTIFY_CHANNEL "', u.last_seq ||"
                  " ' ' || u.tenant) FROM u",
    /* The batch's keys, each looked up by the unique index. Written as one probe per key (the
     * LIMIT keeps the planner from flattening the subquery into a join): as a join, the plan
     * (a generic one cached while the table was small, or a custom one costing index probes
     * as random reads) hashes a scan of the tenant's whole table, which grows with every batch. */
    [W_PRE_ROWS] =
        "SELECT a.qn, a.id, a.type, a.name, a.parent, a.attributes, a.version, a.deleted,"
        " a.created_at, a.orphan, a.updated_at, (SELECT coalesce(json_agg("
        "json_build_array(t.tag, t.source, t.origin) ORDER BY t.tag, t.origin), '[]')"
        " FROM tags t WHERE t.tenant = a.tenant AND t.qn = a.qn)"
        " FROM unnest($2::text[]) k(qn), LATERAL (SELECT * FROM assets a WHERE a.tenant = $1"
        " AND a.qn = k.qn LIMIT 1) a",
    [W_PRE_SEEN] = "SELECT s.id FROM unnest($2::text[]) k(id), LATERAL (SELECT s.id FROM seen s"
                   " WHERE s.tenant = $1 AND s.id = k.id LIMIT 1) s",
    /* Which of the batch's assets have orphans waiting for them (adoption needed). */
    [W_PRE_KIDS] = "SELECT k.qn FROM unnest($2::text[]) k(qn), LATERAL (SELECT 1 FROM assets a"
                   " WHERE a.tenant = $1 AND a.parent = k.qn AND a.orphan LIMIT 1) a",
    /* Set-based writes of what a batch buffers: one statement per table and tenant. */
    [W_INS_MANY] = "INSERT INTO assets(tenant, qn, type, name, parent, attributes, version,"
                   " created_at, updated_at, deleted, orphan) SELECT $1, q, t, n, p, a, 1, c, c,"
                   " false, o FROM unnest($2::text[], $3::text[], $4::text[], $5::text[],"
                   " $6::text[], $7::text[], $8::bool[]) AS u(q, t, n, p, a, c, o)",
    [W_CHG_MANY] = "INSERT INTO changes(tenant, seq, op, qn, type, version, before, after, changed,"
                   " cause, ts) SELECT $1, s, o, q, t, v, b, a, c, ca, ts FROM unnest($2::bigint[],"
                   " $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[],"
                   " $9::text[], $10::text[], $11::text[]) AS u(s, o, q, t, v, b, a, c, ca, ts)",
    [W_TAGS_MANY] = "INSERT INTO tags(tenant, qn, tag, source, origin) SELECT $1, q, t, 'direct',"
                    " '' FROM unnest($2::text[], $3::text[]) AS u(q, t) ON CONFLICT DO NOTHING",
    /* No ON CONFLICT (a speculative insertion per row): the ids are distinct and were looked
     * up after the tenant's row was locked, and only a holder of that lock writes seen rows. */
    [W_SEEN_MANY] = "INSERT INTO seen(tenant, id) SELECT $1, unnest($2::text[])",
    [W_SET_TENANT] = "SELECT set_config('metasync.tenant', $1, true)",
    [W_OFFSET_PUT] = "INSERT INTO source_offsets(grp, topic, part, next_offset, updated_at)"
                     " VALUES($1, $2, $3, $4, $5) ON CONFLICT(grp, topic, part) DO UPDATE SET"
                     " next_offset = greatest(source_offsets.next_offset, excluded.next_offset),"
                     " updated_at = excluded.updated_at",
};

/* Statements queued before the writer reads their results. */
#define PG_DRAIN 256
/* Buffered rows sent as soon as there are this many: the server inserts them while the writer
 * works out the rest of the batch (instead of everything after the last event). */
#define PG_SEND_ROWS 256

static char stmt_name[W__COUNT][8];

ms_err pg_apply_prepare(pg_store *s, ms_error *err)
{
    for (int i = 0; i < W__COUNT; i++) {
        snprintf(stmt_name[i], sizeof stmt_name[i], "w%d", i);
        PGresult *r = PQprepare(s->w, stmt_name[i], wsql[i], 0, NULL);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) pg_fail(err, s->w, r, wsql[i]);
        PQclear(r);
        if (!ok) return MS_ERR_STORE;
    }
    return MS_OK;
}

/* An asset row of the batch, as it stands in the open transaction. */
typedef struct cache_ent {
    const char *tenant, *qn; /* borrowed from the events */
    ms_srow row;             /* row.exists false: no such asset */
    uint64_t save_gen;       /* when the row was last saved in this batch */
    uint64_t adopt_gen;      /* when this asset last adopted its waiting children */
    bool pending;            /* inserted into the buffer, not sent yet */
    bool kids_waiting;       /* orphans with this parent may exist: adoption must run */
} cache_ent;

/* An event id of the batch. */
typedef struct seen_ent {
    const char *tenant, *id;
    bool taken;  /* in the seen table (before the batch, or by an earlier event of it) */
    bool before; /* in the seen table before the batch (or written by a flush) */
} seen_ent;

/* Rows buffered for one multi-row INSERT: each column as a text[] literal being built. */
#define BUF_COLS 10
typedef struct rowbuf {
    ms_buf col[BUF_COLS];
    size_t n;
} rowbuf;

/* The writer's state during one apply(): the backend context of store_apply.h. */
typedef struct wbatch {
    pg_store *s;
    PGconn *c;
    ms_error *err;
    bool failed;
    int pending;        /* statements sent whose results are not read yet */
    const char *tenant; /* the tenant set in the transaction */
    cache_ent *ents;
    size_t nents;
    seen_ent *seen;
    size_t nseen;
    uint64_t gen;
    rowbuf assets;  /* new assets: qn, type, name, parent, attributes, created, orphan */
    rowbuf changes; /* change records: seq … ts */
    rowbuf tags;    /* direct tags: qn, tag */
} wbatch;

static bool flush_assets(struct wbatch *b);
static bool flush_all(struct wbatch *b);

/* Reads the results of the oldest unread statement; returns the first one when keep (caller
 * clears it), NULL otherwise or after a failure (recorded in b). */
static PGresult *read_one(wbatch *b, bool keep)
{
    PGresult *r, *kept = NULL;
    while ((r = PQgetResult(b->c)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && !b->failed) {
            pg_fail(b->err, b->c, r, "write");
            b->failed = true;
        }
        if (keep && !kept && !b->failed)
            kept = r;
        else
            PQclear(r);
    }
    b->pending--;
    return kept;
}

/* Makes the server send what it has and reads every queued result. The results of the
 * statements queued after the first `base` go to out[0..nout) in order (caller clears them); the
 * others are cleared. False after a failure. */
static bool drain_group(wbatch *b, int base, PGresult **out, int nout)
{
    if (!PQsendFlushRequest(b->c) || PQflush(b->c) != 0) {
        if (!b->failed) pg_fail(b->err, b->c, NULL, "flush");
        b->failed = true;
        return false;
    }
    for (int j = 0; b->pending > 0; j++) {
        bool keep = j >= base && j - base < nout;
        PGresult *r = read_one(b, keep);
        if (keep) out[j - base] = r;
    }
    return !b->failed;
}

/* Reads every queued result; returns the last one when keep (caller clears). */
static PGresult *drain(wbatch *b, bool keep)
{
    PGresult *last = NULL;
    drain_group(b, keep ? b->pending - 1 : b->pending, &last, 1);
    return last;
}

/* Queues prepared statement w; false after a failure. */
static bool wsend(wbatch *b, int w, int n, const char *const *p)
{
    if (b->failed) return false;
    if (!PQsendQueryPrepared(b->c, stmt_name[w], n, p, NULL, NULL, 0)) {
        pg_fail(b->err, b->c, NULL, wsql[w]);
        b->failed = true;
        return false;
    }
    if (++b->pending >= PG_DRAIN) drain(b, false);
    return !b->failed;
}

/* Runs w and waits for its result (caller clears); NULL after a failure. */
static PGresult *wread(wbatch *b, int w, int n, const char *const *p)
{
    if (!flush_assets(b) || !wsend(b, w, n, p)) return NULL;
    return drain(b, true);
}

/* Runs w and waits for whether it touched a row. */
static bool wread_changed(wbatch *b, int w, int n, const char *const *p, bool *changed)
{
    PGresult *r = wread(b, w, n, p);
    if (!r) return false;
    *changed = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    return true;
}

/* Makes tenant the one row-level security lets the transaction see. */
static bool use_tenant(wbatch *b, const char *tenant)
{
    if (b->tenant && strcmp(b->tenant, tenant) == 0) return true;
    if (b->tenant && !flush_all(b)) return false;
    b->tenant = tenant;
    return wsend(b, W_SET_TENANT, 1, &tenant);
}

static int key_cmp(const char *ta, const char *ka, const char *tb, const char *kb)
{
    int c = strcmp(ta, tb);
    return c ? c : strcmp(ka, kb);
}

static int ent_cmp(const void *x, const void *y)
{
    const cache_ent *a = x, *b = y;
    return key_cmp(a->tenant, a->qn, b->tenant, b->qn);
}

static int seen_cmp(const void *x, const void *y)
{
    const seen_ent *a = x, *b = y;
    return key_cmp(a->tenant, a->id, b->tenant, b->id);
}

static cache_ent *ent_find(wbatch *b, const char *tenant, const char *qn)
{
    cache_ent k = {.tenant = tenant, .qn = qn};
    return bsearch(&k, b->ents, b->nents, sizeof k, ent_cmp);
}

static seen_ent *seen_find(wbatch *b, const char *tenant, const char *id)
{
    seen_ent k = {.tenant = tenant, .id = id};
    return bsearch(&k, b->seen, b->nseen, sizeof k, seen_cmp);
}

/* Appends s (NULL: an SQL NULL) as an element of the array literal being built in a. */
static void array_elem(ms_buf *a, const char *s)
{
    ms_buf_putc(a, a->len ? ',' : '{');
    if (!s) {
        ms_buf_puts(a, "NULL");
        return;
    }
    ms_buf_putc(a, '"');
    while (*s) { /* the runs between quotes and backslashes copied whole */
        size_t run = strcspn(s, "\"\\");
        ms_buf_append(a, s, run);
        s += run;
        if (*s) {
            ms_buf_putc(a, '\\');
            ms_buf_putc(a, *s++);
        }
    }
    ms_buf_putc(a, '"');
}

/* Closes the array literal in a (an empty one is "{}"). */
static void array_end(ms_buf *a)
{
    ms_buf_puts(a, a->len ? "}" : "{}");
}

static void rowbuf_add(rowbuf *rb, int ncols, const char *const *vals)
{
    for (int i = 0; i < ncols; i++)
        array_elem(&rb->col[i], vals[i]);
    rb->n++;
}

static void rowbuf_free(rowbuf *rb)
{
    for (int i = 0; i < BUF_COLS; i++)
        ms_buf_free(&rb->col[i]);
}

static bool wsend(wbatch *b, int w, int n, const char *const *p);

/* Sends the buffered rows of rb (ncols columns) with statement w for the current tenant. */
static bool rowbuf_send(wbatch *b, rowbuf *rb, int ncols, int w)
{
    if (!rb->n) return true;
    const char *p[BUF_COLS + 1] = {b->tenant};
    for (int i = 0; i < ncols; i++) {
        array_end(&rb->col[i]);
        p[i + 1] = rb->col[i].data;
    }
    bool ok = wsend(b, w, ncols + 1, p);
    for (int i = 0; i < ncols; i++)
        ms_buf_reset(&rb->col[i]);
    rb->n = 0;
    return ok;
}

/* Sends the buffered assets (before anything that may read or change them). */
static bool flush_assets(wbatch *b)
{
    if (!rowbuf_send(b, &b->tags, 2, W_TAGS_MANY)) return false;
    if (!b->assets.n) return true;
    for (size_t i = 0; i < b->nents; i++)
        b->ents[i].pending = false;
    return rowbuf_send(b, &b->assets, 7, W_INS_MANY);
}

/* Sends every buffer of the current tenant (before the tenant changes, and at commit). */
static bool flush_all(wbatch *b)
{
    if (!flush_assets(b) || !rowbuf_send(b, &b->changes, 10, W_CHG_MANY)) return false;
    ms_buf ids = MS_BUF_INIT;
    for (size_t i = 0; i < b->nseen; i++)
        if (b->seen[i].taken && !b->seen[i].before && b->tenant &&
            strcmp(b->seen[i].tenant, b->tenant) == 0) {
            array_elem(&ids, b->seen[i].id);
            b->seen[i].before = true;
        }
    bool ok = true;
    if (ids.len) {
        array_end(&ids);
        const char *p[] = {b->tenant, ids.data};
        ok = wsend(b, W_SEEN_MANY, 2, p);
    }
    ms_buf_free(&ids);
    return ok;
}

/* Parses the JSON array of [tag, source, origin] into r. */
static void tags_parse(const char *text, ms_srow *r)
{
    struct json_object *tags = json_tokener_parse(text);
    size_t n =
        tags && json_object_is_type(tags, json_type_array) ? json_object_array_length(tags) : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *t = json_object_array_get_idx(tags, i);
        ms_srow_tag_add(r, json_object_get_string(json_object_array_get_idx(t, 0)),
                        json_object_get_string(json_object_array_get_idx(t, 1)),
                        json_object_get_string(json_object_array_get_idx(t, 2)));
    }
    json_object_put(tags);
}

static char *dup_or_null(const PGresult *r, int row, int i)
{
    return PQgetisnull(r, row, i) ? NULL : ms_xstrdup(PQgetvalue(r, row, i));
}

void pg_row_from(const PGresult *res, int row, int at, bool with_tags, ms_srow *r)
{
    memset(r, 0, sizeof *r);
    r->exists = true;
    r->id = strtoll(PQgetvalue(res, row, at), NULL, 10);
    r->type = dup_or_null(res, row, at + 1);
    r->name = dup_or_null(res, row, at + 2);
    r->parent = dup_or_null(res, row, at + 3);
    r->attributes = dup_or_null(res, row, at + 4);
    r->version = strtoll(PQgetvalue(res, row, at + 5), NULL, 10);
    r->deleted = PQgetvalue(res, row, at + 6)[0] == 't';
    r->created_at = dup_or_null(res, row, at + 7);
    r->orphan = PQgetvalue(res, row, at + 8)[0] == 't';
    r->updated_at = dup_or_null(res, row, at + 9);
    if (with_tags) tags_parse(PQgetvalue(res, row, at + 10), r);
}

/* A tenant's seq within the open transaction. */
typedef struct tenant_seq {
    const char *tenant; /* borrowed from the events */
    uint64_t start, next;
} tenant_seq;

static int ts_cmp(const void *x, const void *y)
{
    return strcmp(((const tenant_seq *)x)->tenant, ((const tenant_seq *)y)->tenant);
}

/* The distinct tenants of the batch, in name order, into ts; returns how many. */
static size_t tenants_of(ms_event *const *evs, size_t n, tenant_seq *ts)
{
    for (size_t i = 0; i < n; i++)
        ts[i] = (tenant_seq){.tenant = evs[i]->tenant};
    qsort(ts, n, sizeof *ts, ts_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!k || ts_cmp(&ts[k - 1], &ts[i]) != 0) ts[k++] = ts[i];
    return k;
}

/* Appends the keys of the run of entries of `tenant` starting at *at (entries sorted by tenant)
 * to the array literal a, and moves *at past them. */
#define KEYS_OF(a, arr, len, at, tenant, field)                                                    \
    do {                                                                                           \
        for (; *(at) < (len) && strcmp((arr)[*(at)].tenant, (tenant)) == 0; (*(at))++)             \
            array_elem((a), (arr)[*(at)].field);                                                   \
        array_end(a);                                                                              \
    } while (0)

/* Stores the results of one tenant's locked seq and prefetch reads (r: the statements queued by
 * prefetch, in order) in t and in the batch's entries. */
static bool prefetch_take(wbatch *b, tenant_seq *t, PGresult *const *r)
{
    if (PQntuples(r[1]) != 1) { /* the row was just created or seen: it cannot be missing */
        b->failed = true;
        ms_error_set(b->err, MS_ERR_STORE, "postgres: tenant '%s' has no tenants row", t->tenant);
        return false;
    }
    t->start = t->next = strtoull(PQgetvalue(r[1], 0, 0), NULL, 10);
    for (int row = 0; row < PQntuples(r[2]); row++) {
        cache_ent *e = ent_find(b, t->tenant, PQgetvalue(r[2], row, 0));
        if (e) pg_row_from(r[2], row, 1, true, &e->row);
    }
    for (int row = 0; row < PQntuples(r[3]); row++) {
        cache_ent *e = ent_find(b, t->tenant, PQgetvalue(r[3], row, 0));
        if (e) e->kids_waiting = true;
    }
    for (int row = 0; row < PQntuples(r[4]); row++) {
        seen_ent *e = seen_find(b, t->tenant, PQgetvalue(r[4], row, 0));
        if (e) e->taken = e->before = true;
    }
    return true;
}

/*
 * Locks the row of every tenant of the batch (ts, nts: sorted by name) and loads the asset rows
 * and seen ids the batch names: per tenant one round trip, the lock first, then the reads (a new
 * snapshot per statement: they see what the lock's previous holder committed). In name order,
 * so two batches naming the same tenants in different orders cannot deadlock.
 */
static bool prefetch(wbatch *b, ms_event *const *evs, size_t n, tenant_seq *ts, size_t nts)
{
    b->ents = ms_xcalloc(2 * n + 1, sizeof *b->ents);
    b->seen = ms_xcalloc(n + 1, sizeof *b->seen);
    for (size_t i = 0; i < n; i++) {
        b->ents[b->nents++] = (cache_ent){.tenant = evs[i]->tenant, .qn = evs[i]->qn};
        if (evs[i]->parent)
            b->ents[b->nents++] = (cache_ent){.tenant = evs[i]->tenant, .qn = evs[i]->parent};
        if (evs[i]->id) b->seen[b->nseen++] = (seen_ent){evs[i]->tenant, evs[i]->id, false, false};
    }
    qsort(b->ents, b->nents, sizeof *b->ents, ent_cmp);
    qsort(b->seen, b->nseen, sizeof *b->seen, seen_cmp);
    size_t k = 0;
    for (size_t i = 0; i < b->nents; i++)
        if (!k || ent_cmp(&b->ents[k - 1], &b->ents[i]) != 0) b->ents[k++] = b->ents[i];
    b->nents = k;
    k = 0;
    for (size_t i = 0; i < b->nseen; i++)
        if (!k || seen_cmp(&b->seen[k - 1], &b->seen[i]) != 0) b->seen[k++] = b->seen[i];
    b->nseen = k;
    bool ok = true;
    size_t ei = 0, si = 0;
    for (size_t t = 0; ok && t < nts; t++) {
        const char *tenant = ts[t].tenant;
        ms_buf qns = MS_BUF_INIT, ids = MS_BUF_INIT;
        KEYS_OF(&qns, b->ents, b->nents, &ei, tenant, qn);
        KEYS_OF(&ids, b->seen, b->nseen, &si, tenant, id);
        const char *pq[] = {tenant, qns.data}, *ps[] = {tenant, ids.data};
        if (b->pending + 8 >= PG_DRAIN) drain(b, false); /* wsend must not drain in between */
        ok = use_tenant(b, tenant);
        int base = b->pending;
        PGresult *r[5] = {NULL};
        ok = ok && wsend(b, W_TENANT_INS, 1, &tenant) && wsend(b, W_TENANT, 1, &tenant) &&
             wsend(b, W_PRE_ROWS, 2, pq) && wsend(b, W_PRE_KIDS, 2, pq) &&
             wsend(b, W_PRE_SEEN, 2, ps) && drain_group(b, base, r, 5) &&
             prefetch_take(b, &ts[t], r);
        for (int i = 0; i < 5; i++)
            PQclear(r[i]);
        ms_buf_free(&qns);
        ms_buf_free(&ids);
    }
    return ok;
}

/* ---- the row operations of store_apply.h ---- */

static bool be_seen_add(void *be, const char *tenant, const char *id, bool *fresh, ms_error *err)
{
    (void)err;
    seen_ent *e = seen_find(be, tenant, id);
    *fresh = !e->taken;
    e->taken = true; /* written by flush_all */
    return true;
}

static bool be_seen_del(void *be, const char *tenant, const char *id, ms_error *err)
{
    (void)err;
    seen_ent *e = seen_find(be, tenant, id);
    e->taken = false;
    if (!e->before) return true; /* never written */
    e->before = false;
    const char *p[] = {tenant, id};
    return wsend(be, W_SEEN_DEL, 2, p);
}

static bool be_row_load(void *be, const char *tenant, const char *qn, bool with_tags, ms_srow *r,
                        ms_error *err)
{
    (void)err;
    wbatch *b = be;
    memset(r, 0, sizeof *r);
    cache_ent *e = ent_find(b, tenant, qn);
    if (e) {
        /* A child saved as an orphan before its parent adopted it is no longer one. */
        cache_ent *pe = e->row.exists && e->row.orphan && e->row.parent
                            ? ent_find(b, tenant, e->row.parent)
                            : NULL;
        if (pe && pe->adopt_gen > e->save_gen) e->row.orphan = false;
        if (!e->row.exists) return true;
        ms_srow_copy(r, &e->row);
        if (!with_tags) {
            ms_srow none = {0};
            none.tags = r->tags;
            none.ntags = r->ntags;
            ms_srow_free(&none);
            r->tags = NULL;
            r->ntags = 0;
        }
        return true;
    }
    const char *p[] = {tenant, qn, with_tags ? "t" : "f"};
    PGresult *res = wread(b, W_GET, 3, p);
    if (!res) return false;
    if (PQntuples(res) == 1) pg_row_from(res, 0, 0, with_tags, r);
    PQclear(res);
    return true;
}

static bool be_row_save(void *be, const char *tenant, const char *qn, ms_srow *r, bool existed,
                        ms_error *err)
{
    (void)err;
    wbatch *b = be;
    bool ok = true;
    cache_ent *e = ent_find(b, tenant, qn);
    if (!existed && e) { /* buffered: one INSERT for all the new assets of the batch */
        const char *v[] = {
            qn, r->type, r->name, r->parent, r->attributes, r->updated_at, r->orphan ? "t" : "f"};
        rowbuf_add(&b->assets, 7, v);
        e->pending = true;
    } else if (!existed) {
        const char *p[] = {tenant,        qn,
                           r->type,       r->name,
                           r->parent,     r->attributes,
                           r->updated_at, r->orphan ? "t" : "f"};
        ok = wsend(b, W_INS, 8, p);
    } else {
        char ver[24];
        snprintf(ver, sizeof ver, "%lld", (long long)r->version);
        const char *p[] = {tenant,
                           qn,
                           r->type,
                           r->name,
                           r->parent,
                           r->attributes,
                           ver,
                           r->created_at,
                           r->updated_at,
                           r->deleted ? "t" : "f",
                           r->orphan ? "t" : "f"};
        ok = (!e || !e->pending || flush_assets(b)) && wsend(b, W_UPD, 11, p);
    }
    if (r->orphan && r->parent) { /* its parent, once created, must adopt it */
        cache_ent *pe = ent_find(b, tenant, r->parent);
        if (pe) pe->kids_waiting = true;
    }
    if (e) {
        ms_srow_free(&e->row);
        ms_srow_copy(&e->row, r);
        e->row.exists = true;
        e->save_gen = ++b->gen;
    }
    return ok;
}

static bool be_tags_write(void *be, const char *tenant, const char *qn, const ms_srow *r,
                          ms_error *err)
{
    (void)err;
    wbatch *b = be;
    cache_ent *e = ent_find(b, tenant, qn);
    if (!e || !e->pending) { /* it may have tags rows: clear them after what is buffered */
        const char *p[] = {tenant, qn};
        if (!rowbuf_send(b, &b->tags, 2, W_TAGS_MANY) || !wsend(b, W_TAGS_CLEAR, 2, p))
            return false;
    }
    for (size_t i = 0; i < r->ntags; i++) /* buffered: one INSERT per batch */
        if (strcmp(r->tags[i].source, "direct") == 0) {
            const char *v[] = {qn, r->tags[i].name};
            rowbuf_add(&b->tags, 2, v);
        }
    return true;
}

/* PostgreSQL counts orphans with a query (stats()), so live is never asked for here. */
static bool be_adopt(void *be, const char *tenant, const char *parent, int64_t *live, ms_error *err)
{
    (void)err;
    (void)live;
    wbatch *b = be;
    cache_ent *e = ent_find(b, tenant, parent);
    if (e) {
        e->adopt_gen = ++b->gen;
        if (!e->kids_waiting) return true; /* nobody waits for it */
        e->kids_waiting = false;
    }
    const char *p[] = {tenant, parent};
    return flush_assets(b) && wsend(b, W_ADOPT, 2, p);
}

static bool be_edge_set(void *be, const char *tenant, const char *src, const char *dst,
                        const char *via, bool add, bool *changed, ms_error *err)
{
    (void)err;
    const char *p[] = {tenant, src, dst, via};
    return wread_changed(be, add ? W_EDGE_INS : W_EDGE_DEL, 4, p, changed);
}

static bool be_change_add(void *be, const ms_change *c, ms_error *err)
{
    (void)err;
    char seq[24], ver[24];
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)c->seq);
    snprintf(ver, sizeof ver, "%lld", (long long)c->version);
    const char *v[] = {seq,       c->op,    c->qn,      c->type,  ver,
                       c->before, c->after, c->changed, c->cause, c->ts};
    rowbuf_add(&((wbatch *)be)->changes, 10, v); /* written by flush_all */
    return true;
}

static bool be_descendants(void *be, const char *tenant, const char *qn, char ***kids, size_t *n,
                           ms_error *err)
{
    (void)err;
    const char *p[] = {tenant, qn};
    PGresult *res = wread(be, W_DESC, 2, p);
    if (!res) return false;
    *n = (size_t)PQntuples(res);
    *kids = ms_xmalloc((*n + 1) * sizeof **kids);
    for (size_t i = 0; i < *n; i++)
        (*kids)[i] = ms_xstrdup(PQgetvalue(res, (int)i, 0));
    PQclear(res);
    return true;
}

static bool be_parent_type(void *be, const char *tenant, const char *qn, char **type, ms_error *err)
{
    (void)err;
    wbatch *b = be;
    cache_ent *e = ent_find(b, tenant, qn);
    if (e) {
        *type = e->row.exists && !e->row.deleted ? ms_xstrdup(e->row.type) : NULL;
        return true;
    }
    const char *p[] = {tenant, qn};
    PGresult *res = wread(b, W_PARENT, 2, p);
    if (!res) return false;
    *type = PQntuples(res) ? ms_xstrdup(PQgetvalue(res, 0, 0)) : NULL;
    PQclear(res);
    return true;
}

static bool be_offset_put(void *be, const char *group, const char *topic, int32_t partition,
                          int64_t next, const char *now, ms_error *err)
{
    (void)err;
    char part[16], off[24];
    snprintf(part, sizeof part, "%d", partition);
    snprintf(off, sizeof off, "%lld", (long long)next);
    const char *p[] = {group, topic, part, off, now};
    return wsend(be, W_OFFSET_PUT, 5, p);
}

static const ms_sa_backend backend = {
    .seen_add = be_seen_add,
    .seen_del = be_seen_del,
    .row_load = be_row_load,
    .row_save = be_row_save,
    .tags_write = be_tags_write,
    .adopt = be_adopt,
    .edge_set = be_edge_set,
    .change_add = be_change_add,
    .descendants = be_descendants,
    .parent_type = be_parent_type,
    .offset_put = be_offset_put,
};

/* Reconnects a broken writer connection (the server restarted) and prepares again. */
static ms_err writer_ready(pg_store *s, ms_error *err)
{
    if (PQstatus(s->w) == CONNECTION_OK) return MS_OK;
    PQreset(s->w);
    if (PQstatus(s->w) != CONNECTION_OK) return pg_fail(err, s->w, NULL, "reconnect");
    return pg_apply_prepare(s, err);
}

/* Sends COMMIT (when ok) and the pipeline's sync, reads everything, leaves pipeline mode;
 * rolls back when anything failed. Returns whether the batch is durable. */
static bool finish(wbatch *b, bool ok)
{
    if (ok && !PQsendQueryParams(b->c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0)) ok = false;
    if (ok) b->pending++;
    if (PQpipelineSync(b->c)) {
        while (b->pending > 0)
            read_one(b, false);
        PGresult *r;
        while ((r = PQgetResult(b->c)) != NULL) {
            ExecStatusType st = PQresultStatus(r);
            PQclear(r);
            if (st == PGRES_PIPELINE_SYNC) break;
        }
    } else {
        b->failed = true;
    }
    ok = ok && !b->failed;
    PQexitPipelineMode(b->c);
    if (!ok) {
        if (!b->err->detail[0]) pg_fail(b->err, b->c, NULL, "apply");
        PQclear(PQexec(b->c, "ROLLBACK"));
    }
    return ok;
}

ms_err pg_apply(void *ctx, ms_event *const *evs, size_t n, const char *now_ts, ms_apply_result *res,
                ms_error *err)
{
    return pg_apply_at(ctx, evs, n, now_ts, NULL, 0, res, err);
}

ms_err pg_apply_at(void *ctx, ms_event *const *evs, size_t n, const char *now_ts,
                   const ms_srcpos *pos, size_t npos, ms_apply_result *res, ms_error *err)
{
    pg_store *s = ctx;
    if (writer_ready(s, err) != MS_OK) return MS_ERR_STORE;
    if (!PQenterPipelineMode(s->w)) return pg_fail(err, s->w, NULL, "pipeline");
    wbatch b = {.s = s, .c = s->w, .err = err};
    bool ok = PQsendQueryParams(s->w, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
    if (ok) b.pending++;
    tenant_seq *ts = ms_xcalloc(n + 1, sizeof *ts);
    size_t nts = tenants_of(evs, n, ts);
    ok = ok && prefetch(&b, evs, n, ts, nts);
    for (size_t i = 0; ok && i < n; i++) {
        const ms_event *ev = evs[i];
        tenant_seq key = {.tenant = ev->tenant};
        tenant_seq *t = bsearch(&key, ts, nts, sizeof key, ts_cmp);
        ok = use_tenant(&b, ev->tenant);
        ms_sa_args args = {&backend, &b,   s->types, s->max_depth, now_ts,
                           &t->next, NULL, NULL,     NULL};
        ok = ok && ms_sa_event(&args, ev, &res[i], err) && !b.failed;
        if (ok && b.assets.n + b.changes.n >= PG_SEND_ROWS) ok = flush_all(&b) && PQflush(b.c) == 0;
    }
    ok = ok && flush_all(&b);
    for (size_t k = 0; ok && k < nts; k++) {
        if (ts[k].next == ts[k].start) continue;
        char v[24];
        snprintf(v, sizeof v, "%llu", (unsigned long long)ts[k].next);
        const char *p[] = {ts[k].tenant, v};
        ok = use_tenant(&b, ts[k].tenant) && wsend(&b, W_SEQ_SET, 2, p);
    }
    /* Other writes that belong to this batch's transaction go here (queued with wsend, after
     * the batch's own rows and seqs, before COMMIT): they commit or roll back with it. The
     * batch's source positions: */
    ok = ok && ms_sa_positions(&backend, &b, evs, n, res, pos, npos, now_ts, err) && !b.failed;
    ok = finish(&b, ok);
    free(ts);
    for (size_t i = 0; i < b.nents; i++)
        ms_srow_free(&b.ents[i].row);
    free(b.ents);
    free(b.seen);
    rowbuf_free(&b.assets);
    rowbuf_free(&b.changes);
    rowbuf_free(&b.tags);
    return ok ? MS_OK : MS_ERR_STORE;
}
