/*
 * store_sqlite_apply.c — the SQLite store's writer: applies a group of events in one
 * transaction, writing assets, tags, edges and their change records together (the
 * transactional outbox), with per-tenant gap-free seqs. What each event does is decided in
 * store/common/store_apply.c (shared with the PostgreSQL store); this file gives it the row
 * operations over the writer's cached statements.
 *
 * @locality writer thread only: uses the writer connection and its cached statements.
 * An SQLite failure rolls the whole group back.
 */
#include "store_sqlite_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const wsql[W__COUNT] = {
    [W_SEEN_INS] = "INSERT OR IGNORE INTO seen(tenant, id) VALUES(?, ?)",
    [W_SEEN_DEL] = "DELETE FROM seen WHERE tenant=? AND id=?",
    [W_GET] = "SELECT id, type, name, parent, attributes, version, deleted, created_at, orphan,"
              " updated_at FROM assets WHERE tenant=? AND qn=?",
    [W_INS] = "INSERT INTO assets(tenant, qn, type, name, parent, attributes, version, created_at,"
              " updated_at, deleted, orphan, first_seq)"
              " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7, 0, ?8, ?9)"
              " ON CONFLICT(tenant, qn) DO NOTHING", /* be_row_create: the row exists */
    [W_FIRST_SEQ] = "UPDATE assets SET first_seq=? WHERE tenant=? AND qn=?",
    [W_UPD] = "UPDATE assets SET type=?2, name=?3, parent=?4, attributes=?5, version=?6,"
              " created_at=?7, updated_at=?8, deleted=?9, orphan=?10 WHERE id=?1",
    [W_ADOPT] = "UPDATE assets SET orphan=0 WHERE tenant=? AND parent=? AND orphan=1",
    /* Whether the UPDATE has anything to do, and how many live orphans it would adopt: a
     * SELECT costs a fraction of an UPDATE that finds nothing (which still opens a statement
     * journal and the full-text table's savepoint for its trigger: 16% of the writer's time
     * when it ran for every new asset). */
    [W_ADOPT_PROBE] = "SELECT count(*), coalesce(sum(deleted = 0), 0) FROM assets"
                      " INDEXED BY assets_orphan WHERE tenant=? AND parent=? AND orphan=1",
    [W_TAGS_GET] = "SELECT tag, source, origin FROM tags WHERE tenant=? AND qn=?"
                   " ORDER BY tag, origin",
    [W_TAG_INS] = "INSERT OR IGNORE INTO tags(tenant, qn, tag, source, origin)"
                  " VALUES(?, ?, ?, 'direct', '')",
    [W_TAG_DEL] = "DELETE FROM tags WHERE tenant=? AND qn=? AND tag=? AND source='direct'",
    [W_TAGS_CLEAR] = "DELETE FROM tags WHERE tenant=? AND qn=? AND source='direct'",
    [W_EDGE_INS] = "INSERT OR IGNORE INTO edges(tenant, src, dst, via) VALUES(?, ?, ?, ?)",
    [W_EDGE_DEL] = "DELETE FROM edges WHERE tenant=? AND src=? AND dst=? AND via=?",
    [W_CHG_INS] = "INSERT INTO changes(tenant, seq, op, qn, type, version, before, after, changed,"
                  " cause, ts) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    /* Live descendants, nearest first, then by name. Every asset has one parent, so a walk down
     * from the root can meet an asset twice only on a parent loop, and such a loop passes
     * through the root itself: never stepping back onto the root (a.qn <> ?2) ends the walk
     * while each descendant keeps its depth. */
    [W_DESC] = "WITH RECURSIVE d(qn, depth) AS (SELECT ?2, 0 UNION ALL SELECT a.qn, d.depth + 1"
               " FROM assets a JOIN d ON a.tenant = ?1 AND a.parent = d.qn"
               " WHERE a.deleted = 0 AND a.qn <> ?2)"
               " SELECT qn FROM d WHERE depth > 0 ORDER BY depth, qn",
    [W_TENANT_INS] = "INSERT OR IGNORE INTO tenants(tenant) VALUES(?)",
    [W_PARENT] = "SELECT type FROM assets WHERE tenant=? AND qn=? AND deleted=0",
    /* fts_log entries the search index holds durably (sq_search_log_mark). */
    [W_LOG_PRUNE] = "DELETE FROM fts_log WHERE id <= ?",
    /* Once per tenant and process: from then on the writer keeps the count (orphan_count). */
    [W_ORPHANS] = "SELECT count(*) FROM assets WHERE tenant=? AND orphan=1 AND deleted=0",
    /* The parents that orphans wait for (sq_tenant_seq.waiting), loaded once per tenant and
     * after a rollback. */
    [W_ORPHAN_PARENTS] = "SELECT DISTINCT parent FROM assets INDEXED BY assets_orphan"
                         " WHERE tenant=? AND orphan=1 AND parent IS NOT NULL",
    [W_OFFSET_PUT] = "INSERT INTO source_offsets(grp, topic, part, next_offset, updated_at)"
                     " VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(grp, topic, part) DO UPDATE SET"
                     " next_offset = max(next_offset, excluded.next_offset),"
                     " updated_at = excluded.updated_at",
};

/* Prepares the writer's statements. */
ms_err sq_apply_prepare(sq_store *s, ms_error *err)
{
    for (int i = 0; i < W__COUNT; i++)
        if (sqlite3_prepare_v3(s->w, wsql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->ws[i], NULL) !=
            SQLITE_OK)
            return sq_fail(err, s->w, wsql[i]);
    return MS_OK;
}

/* Steps a write statement to completion and resets it. */
static bool run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE;
}

/* ---- sets of names (sq_nameset) ---- */

static uint64_t name_hash(const char *name)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h ? h : 1;
}

/* The slot of name, or the free slot where it would go. @pre ns->cap > 0 */
static struct sq_name *nameset_slot(const sq_nameset *ns, const char *name, uint64_t h)
{
    for (size_t i = h & (ns->cap - 1);; i = (i + 1) & (ns->cap - 1))
        if (!ns->slot[i].hash || (ns->slot[i].hash == h && strcmp(ns->slot[i].name, name) == 0))
            return &ns->slot[i];
}

static bool nameset_has(const sq_nameset *ns, const char *name)
{
    return ns->all || (ns->n && nameset_slot(ns, name, name_hash(name))->hash);
}

static void nameset_clear(sq_nameset *ns)
{
    for (size_t i = 0; i < ns->cap; i++)
        free(ns->slot[i].name);
    free(ns->slot);
    *ns = (sq_nameset){0};
}

static void nameset_add(sq_nameset *ns, const char *name)
{
    if (ns->all) return;
    if (ns->n >= SQ_NAMESET_MAX) { /* too many to hold: every name counts as present */
        bool valid = ns->valid;
        nameset_clear(ns);
        ns->valid = valid;
        ns->all = true;
        return;
    }
    if ((ns->n + 1) * 2 > ns->cap) { /* keep the load at most 1/2 */
        sq_nameset g = {ms_xcalloc(ns->cap ? ns->cap * 2 : 64, sizeof *g.slot),
                        ns->cap ? ns->cap * 2 : 64, ns->n, ns->valid, false};
        for (size_t i = 0; i < ns->cap; i++)
            if (ns->slot[i].hash)
                *nameset_slot(&g, ns->slot[i].name, ns->slot[i].hash) = ns->slot[i];
        free(ns->slot);
        *ns = g;
    }
    uint64_t h = name_hash(name);
    struct sq_name *e = nameset_slot(ns, name, h);
    if (e->hash) return;
    *e = (struct sq_name){h, ms_xstrdup(name)};
    ns->n++;
}

static void nameset_del(sq_nameset *ns, const char *name)
{
    if (ns->all || !ns->n) return;
    struct sq_name *e = nameset_slot(ns, name, name_hash(name));
    if (!e->hash) return;
    free(e->name);
    size_t mask = ns->cap - 1, hole = (size_t)(e - ns->slot);
    for (size_t i = (hole + 1) & mask; ns->slot[i].hash; i = (i + 1) & mask) {
        size_t home = ns->slot[i].hash & mask;
        /* move slot i into the hole unless its home lies cyclically in (hole, i] */
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            ns->slot[hole] = ns->slot[i];
            hole = i;
        }
    }
    ns->slot[hole] = (struct sq_name){0, NULL};
    ns->n--;
}

/* (Re)loads the parents that tenant's orphans wait for. Returns false on a database failure. */
static bool waiting_load(sq_store *s, const char *tenant, sq_nameset *ns)
{
    nameset_clear(ns);
    sqlite3_stmt *st = s->ws[W_ORPHAN_PARENTS];
    sq_bind_text(st, 1, tenant);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && !ns->all)
        nameset_add(ns, (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    ns->valid = rc == SQLITE_ROW || rc == SQLITE_DONE;
    return ns->valid;
}

void sq_waiting_free(sq_store *s)
{
    for (size_t i = 0; i < s->nseqs; i++)
        nameset_clear(&s->seqs[i].waiting);
}

/* The seq slot of tenant; a new tenant gets its last seq from the log and its orphan count
 * from the assets. */
static sq_tenant_seq *tseq(sq_store *s, const char *tenant)
{
    for (size_t i = 0; i < s->nseqs; i++)
        if (strcmp(s->seqs[i].tenant, tenant) == 0) return &s->seqs[i];
    sqlite3_stmt *st = NULL;
    uint64_t last = 0;
    if (sqlite3_prepare_v2(s->w, "SELECT coalesce(max(seq), 0) FROM changes WHERE tenant=?", -1,
                           &st, NULL) == SQLITE_OK) {
        sq_bind_text(st, 1, tenant);
        if (sqlite3_step(st) == SQLITE_ROW) last = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    int64_t orphans = 0;
    st = s->ws[W_ORPHANS];
    sq_bind_text(st, 1, tenant);
    if (sqlite3_step(st) == SQLITE_ROW) orphans = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    pthread_mutex_lock(&s->stats_mu);
    s->seqs = ms_xrealloc(s->seqs, (s->nseqs + 1) * sizeof *s->seqs);
    s->seqs[s->nseqs] =
        (sq_tenant_seq){.tenant = ms_xstrdup(tenant),
                        .committed = last,
                        .durable = last, /* nothing of it committed by this process yet */
                        .syncing = last,
                        .next = last,
                        .orphans = orphans,
                        .orphans_next = orphans};
    sq_tenant_seq *ts = &s->seqs[s->nseqs++];
    pthread_mutex_unlock(&s->stats_mu);
    return ts;
}

/* ---- the parent-type cache (sq_pcache) ---- */

/* The slot of (tenant, qn), whether or not it holds them; NULL when they do not fit a slot. */
static sq_pcache *pcache_slot(sq_store *s, const char *tenant, const char *qn)
{
    size_t lt = strlen(tenant), lq = strlen(qn);
    if (lt >= sizeof s->pcache[0].tenant || lq >= sizeof s->pcache[0].qn) return NULL;
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)qn; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return &s->pcache[h % SQ_PCACHE];
}

static bool pcache_holds(const sq_pcache *c, const char *tenant, const char *qn)
{
    return c->used && strcmp(c->qn, qn) == 0 && strcmp(c->tenant, tenant) == 0;
}

/* Records that (tenant, qn) is a live asset of type (type NULL: no live asset). */
static void pcache_put(sq_store *s, const char *tenant, const char *qn, const char *type)
{
    sq_pcache *c = pcache_slot(s, tenant, qn);
    if (!c) return;
    if (type && strlen(type) >= sizeof c->type) { /* cannot hold it: forget the name */
        if (pcache_holds(c, tenant, qn)) c->used = false;
        return;
    }
    c->used = true;
    c->live = type != NULL;
    strcpy(c->tenant, tenant);
    strcpy(c->qn, qn);
    strcpy(c->type, type ? type : "");
}

/* ---- the row operations of store_apply.h over the writer's statements ---- */

static bool failed(sq_store *s, ms_error *err, const char *what)
{
    sq_fail(err, s->w, what);
    return false;
}

/* Runs write statement st (bound by the caller); *changed (may be NULL) tells whether it
 * touched a row. */
static bool run_changed(sq_store *s, sqlite3_stmt *st, bool *changed, ms_error *err,
                        const char *what)
{
    if (!run(st)) return failed(s, err, what);
    if (changed) *changed = sqlite3_changes(s->w) != 0;
    return true;
}

static bool be_seen_add(void *be, const char *tenant, const char *id, bool *fresh, ms_error *err)
{
    sq_store *s = be;
    sqlite3_stmt *st = s->ws[W_SEEN_INS];
    sq_bind_text(st, 1, tenant);
    sq_bind_text(st, 2, id);
    return run_changed(s, st, fresh, err, "seen");
}

static bool be_seen_del(void *be, const char *tenant, const char *id, ms_error *err)
{
    sq_store *s = be;
    sqlite3_stmt *st = s->ws[W_SEEN_DEL];
    sq_bind_text(st, 1, tenant);
    sq_bind_text(st, 2, id);
    return run_changed(s, st, NULL, err, "seen");
}

static bool be_row_load(void *be, const char *tenant, const char *qn, bool with_tags, ms_srow *r,
                        ms_error *err)
{
    sq_store *s = be;
    return sq_row_load(s->w, s->ws[W_GET], with_tags ? s->ws[W_TAGS_GET] : NULL, tenant, qn,
                       with_tags, r, err) == MS_OK;
}

/* Keeps the writer's knowledge of the rows in step with row r saved as (tenant, qn). */
static void saved(sq_store *s, const char *tenant, const char *qn, const ms_srow *r)
{
    if (r->orphan && r->parent && s->cur) nameset_add(&s->cur->waiting, r->parent);
    pcache_put(s, tenant, qn, r->deleted ? NULL : r->type);
}

/* Inserts row r as a new asset unless (tenant, qn) has a row; sets r->id when it did. */
static bool be_row_create(void *be, const char *tenant, const char *qn, ms_srow *r, bool *created,
                          ms_error *err)
{
    sq_store *s = be;
    sqlite3_stmt *st = s->ws[W_INS];
    sq_bind_text(st, 1, tenant);
    sq_bind_text(st, 2, qn);
    sq_bind_text(st, 3, r->type);
    sq_bind_text(st, 4, r->name);
    sq_bind_text(st, 5, r->parent);
    sq_bind_text(st, 6, r->attributes);
    sq_bind_text(st, 7, r->updated_at);
    sqlite3_bind_int(st, 8, r->orphan);
    /* The seq its create record will get: the event's next change (checked in be_change_add). */
    sqlite3_bind_int64(st, 9, (sqlite3_int64)s->cur->next + 1);
    if (!run_changed(s, st, created, err, "insert asset")) return false;
    if (!*created) return true;
    s->fresh_first_seq = (int64_t)s->cur->next + 1;
    r->id = sqlite3_last_insert_rowid(s->w);
    s->fresh_id = r->id;
    saved(s, tenant, qn, r);
    return true;
}

/* Writes row r (existing: UPDATE by id; else INSERT) and sets r->id for a new one. */
static bool be_row_save(void *be, const char *tenant, const char *qn, ms_srow *r, bool existed,
                        ms_error *err)
{
    sq_store *s = be;
    if (!existed) {
        bool created;
        if (!be_row_create(be, tenant, qn, r, &created, err)) return false;
        if (!created)
            ms_error_set(err, MS_ERR_STORE, "sqlite: insert asset: '%s' exists already", qn);
        return created;
    }
    sqlite3_stmt *st = s->ws[W_UPD];
    sqlite3_bind_int64(st, 1, r->id);
    sq_bind_text(st, 2, r->type);
    sq_bind_text(st, 3, r->name);
    sq_bind_text(st, 4, r->parent);
    sq_bind_text(st, 5, r->attributes);
    sqlite3_bind_int64(st, 6, r->version);
    sq_bind_text(st, 7, r->created_at);
    sq_bind_text(st, 8, r->updated_at);
    sqlite3_bind_int(st, 9, r->deleted);
    sqlite3_bind_int(st, 10, r->orphan);
    saved(s, tenant, qn, r);
    return run_changed(s, st, NULL, err, "update asset");
}

static bool be_tags_write(void *be, const char *tenant, const char *qn, const ms_srow *r,
                          ms_error *err)
{
    sq_store *s = be;
    sqlite3_stmt *clr = s->ws[W_TAGS_CLEAR], *ins = s->ws[W_TAG_INS];
    sq_bind_text(clr, 1, tenant);
    sq_bind_text(clr, 2, qn);
    /* The row this event just inserted has no tags rows: nothing to clear. */
    if (!(r->id && r->id == s->fresh_id) && !run(clr)) return failed(s, err, "tags");
    for (size_t i = 0; i < r->ntags; i++) {
        if (strcmp(r->tags[i].source, "direct") != 0) continue;
        sq_bind_text(ins, 1, tenant);
        sq_bind_text(ins, 2, qn);
        sq_bind_text(ins, 3, r->tags[i].name);
        if (!run(ins)) return failed(s, err, "tags");
    }
    return true;
}

static bool be_adopt(void *be, const char *tenant, const char *parent, int64_t *live, ms_error *err)
{
    sq_store *s = be;
    sq_nameset *waiting = s->cur ? &s->cur->waiting : NULL;
    if (waiting && !waiting->valid && !waiting_load(s, tenant, waiting))
        return failed(s, err, "orphan parents");
    if (waiting && !nameset_has(waiting, parent)) return true; /* no orphan waits for it */
    sqlite3_stmt *probe = s->ws[W_ADOPT_PROBE];
    sq_bind_text(probe, 1, tenant);
    sq_bind_text(probe, 2, parent);
    int rc = sqlite3_step(probe);
    int64_t rows = rc == SQLITE_ROW ? sqlite3_column_int64(probe, 0) : 0;
    if (live && rc == SQLITE_ROW) *live += sqlite3_column_int64(probe, 1);
    sqlite3_reset(probe);
    if (rc != SQLITE_ROW) return failed(s, err, "adopt");
    if (waiting) nameset_del(waiting, parent); /* after the UPDATE no row with it is an orphan */
    if (!rows) return true;
    sqlite3_stmt *st = s->ws[W_ADOPT];
    sq_bind_text(st, 1, tenant);
    sq_bind_text(st, 2, parent);
    return run(st) || failed(s, err, "adopt");
}

static bool be_edge_set(void *be, const char *tenant, const char *src, const char *dst,
                        const char *via, bool add, bool *changed, ms_error *err)
{
    sq_store *s = be;
    sqlite3_stmt *st = s->ws[add ? W_EDGE_INS : W_EDGE_DEL];
    sq_bind_text(st, 1, tenant);
    sq_bind_text(st, 2, src);
    sq_bind_text(st, 3, dst);
    sq_bind_text(st, 4, via);
    return run_changed(s, st, changed, err, "edge");
}

static bool be_change_add(void *be, const ms_change *c, ms_error *err)
{
    sq_store *s = be;
    sqlite3_stmt *st = s->ws[W_CHG_INS];
    sq_bind_text(st, 1, c->tenant);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)c->seq);
    sq_bind_text(st, 3, c->op);
    sq_bind_text(st, 4, c->qn);
    sq_bind_text(st, 5, c->type);
    sqlite3_bind_int64(st, 6, c->version);
    sq_bind_text(st, 7, c->before);
    sq_bind_text(st, 8, c->after);
    sq_bind_text(st, 9, c->changed);
    sq_bind_text(st, 10, c->cause);
    sq_bind_text(st, 11, c->ts);
    if (!run_changed(s, st, NULL, err, "change record")) return false;
    /* History finds an asset's first create through assets.first_seq (schema 4), which
     * be_row_save set to this seq when it inserted the row; should any other path write a
     * first create, its row is pointed at it here. */
    if (c->version == 1 && strcmp(c->op, "create") == 0 &&
        !(s->fresh_id && (int64_t)c->seq == s->fresh_first_seq)) {
        sqlite3_stmt *fs = s->ws[W_FIRST_SEQ];
        sqlite3_bind_int64(fs, 1, (sqlite3_int64)c->seq);
        sq_bind_text(fs, 2, c->tenant);
        sq_bind_text(fs, 3, c->qn);
        return run_changed(s, fs, NULL, err, "first seq");
    }
    return true;
}

static bool be_descendants(void *be, const char *tenant, const char *qn, char ***kids, size_t *n,
                           ms_error *err)
{
    sq_store *s = be;
    sqlite3_stmt *st = s->ws[W_DESC];
    sq_bind_text(st, 1, tenant);
    sq_bind_text(st, 2, qn);
    size_t cap = 0;
    int rc;
    *kids = NULL;
    *n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *kids = ms_xrealloc(*kids, cap * sizeof **kids);
        }
        (*kids)[(*n)++] = sq_col_dup(st, 0);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE || failed(s, err, "descendants");
}

static bool be_parent_type(void *be, const char *tenant, const char *qn, char **type, ms_error *err)
{
    sq_store *s = be;
    sq_pcache *c = pcache_slot(s, tenant, qn);
    if (c && pcache_holds(c, tenant, qn)) {
        *type = c->live ? ms_xstrdup(c->type) : NULL;
        return true;
    }
    sqlite3_stmt *st = s->ws[W_PARENT];
    sq_bind_text(st, 1, tenant);
    sq_bind_text(st, 2, qn);
    int rc = sqlite3_step(st);
    *type = rc == SQLITE_ROW ? sq_col_dup(st, 0) : NULL;
    sqlite3_reset(st);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        pcache_put(s, tenant, qn, *type);
        return true;
    }
    return failed(s, err, "parent");
}

static bool be_offset_put(void *be, const char *group, const char *topic, int32_t partition,
                          int64_t next, const char *now, ms_error *err)
{
    (void)err;
    sq_store *s = be;
    sqlite3_stmt *st = s->ws[W_OFFSET_PUT];
    sq_bind_text(st, 1, group);
    sq_bind_text(st, 2, topic);
    sqlite3_bind_int(st, 3, partition);
    sqlite3_bind_int64(st, 4, next);
    sq_bind_text(st, 5, now);
    return run(st);
}

static const ms_sa_backend backend = {
    .seen_add = be_seen_add,
    .seen_del = be_seen_del,
    .row_load = be_row_load,
    .row_save = be_row_save,
    .row_create = be_row_create,
    .tags_write = be_tags_write,
    .adopt = be_adopt,
    .edge_set = be_edge_set,
    .change_add = be_change_add,
    .descendants = be_descendants,
    .parent_type = be_parent_type,
    .offset_put = be_offset_put,
};

/* Deletes, in the open transaction, the fts_log entries the search index holds durably. */
static bool log_prune(sq_store *s)
{
    s->log_pruning = sq_search_log_mark(s);
    if (s->log_pruning <= s->log_pruned) return true;
    sqlite3_stmt *st = s->ws[W_LOG_PRUNE];
    sqlite3_bind_int64(st, 1, s->log_pruning);
    return run(st);
}

ms_err sq_apply(void *ctx, ms_event *const *evs, size_t n, const char *now_ts, ms_apply_result *res,
                ms_error *err)
{
    return sq_apply_at(ctx, evs, n, now_ts, NULL, 0, res, err);
}

/* Rolls the open transaction back; err gets SQLite's message for `what` unless already set. */
static ms_err rollback(sq_store *s, const char *what, ms_error *err)
{
    if (!err->detail[0]) sq_fail(err, s->w, what);
    sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
    for (size_t i = 0; i < s->nseqs; i++) /* an adoption it undid may have left its set */
        s->seqs[i].waiting.valid = false;
    return MS_ERR_STORE;
}

ms_err sq_apply_deferred(void *ctx, ms_event *const *evs, size_t n, const char *now_ts,
                         const ms_srcpos *pos, size_t npos, ms_apply_result *res, uint64_t *token,
                         ms_error *err)
{
    sq_store *s = ctx;
    sq_ckpt_before_begin(s);
    int begun = sqlite3_exec(s->w, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    sq_ckpt_after_begin(s);
    if (begun != SQLITE_OK) return sq_fail(err, s->w, "begin");
    for (size_t i = 0; i < s->nseqs; i++) {
        s->seqs[i].next = s->seqs[i].committed;
        s->seqs[i].orphans_next = s->seqs[i].orphans;
    }
    for (size_t i = 0; i < SQ_PCACHE; i++)
        s->pcache[i].used = false;
    for (size_t i = 0; i < n; i++) {
        sq_tenant_seq *ts = tseq(s, evs[i]->tenant);
        s->cur = ts;
        s->fresh_id = 0;
        if (ts->next == ts->committed && ts->committed == 0) {
            sqlite3_stmt *st = s->ws[W_TENANT_INS];
            sq_bind_text(st, 1, evs[i]->tenant);
            run(st);
        }
        ms_sa_args args = {&backend,   s,         s->types,          s->max_depth,
                           now_ts,     &ts->next, &ts->orphans_next, &s->creating,
                           &s->scratch};
        if (!ms_sa_event(&args, evs[i], &res[i], err)) return rollback(s, "apply", err);
    }
    if (!ms_sa_positions(&backend, s, evs, n, res, pos, npos, now_ts, err))
        return rollback(s, "source offsets", err);
    if (!log_prune(s) || sqlite3_exec(s->w, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return rollback(s, "commit", err);
    if (s->log_pruning > s->log_pruned) s->log_pruned = s->log_pruning;
    sq_search_poke(s);
    sq_ckpt_after_commit(s);
    pthread_mutex_lock(&s->stats_mu);
    for (size_t i = 0; i < s->nseqs; i++) {
        s->seqs[i].committed = s->seqs[i].next;
        s->seqs[i].orphans = s->seqs[i].orphans_next;
        if (!s->sync_full) s->seqs[i].durable = s->seqs[i].committed; /* no sync is owed */
    }
    *token = ++s->commits;
    pthread_mutex_unlock(&s->stats_mu);
    return MS_OK;
}

ms_err sq_apply_at(void *ctx, ms_event *const *evs, size_t n, const char *now_ts,
                   const ms_srcpos *pos, size_t npos, ms_apply_result *res, ms_error *err)
{
    uint64_t token = 0;
    ms_err rc = sq_apply_deferred(ctx, evs, n, now_ts, pos, npos, res, &token, err);
    return rc == MS_OK ? sq_sync(ctx, token, err) : rc;
}

/* One fdatasync of the WAL covers every commit whose COMMIT returned before it started: the
 * commits counted (and the seqs they reached) before the sync are durable after it. The WAL file
 * keeps its inode while the store is open (SQLite restarts it in place, and removes it only when
 * the last connection closes), so the descriptor opened once stays valid. Should the sync fail,
 * nothing is declared durable: the caller reports the commits as failed. */
ms_err sq_sync(void *ctx, uint64_t token, ms_error *err)
{
    sq_store *s = ctx;
    pthread_mutex_lock(&s->sync_mu);
    if (s->synced >= token) {
        pthread_mutex_unlock(&s->sync_mu);
        return MS_OK;
    }
    pthread_mutex_lock(&s->stats_mu);
    uint64_t upto = s->commits;
    for (size_t i = 0; i < s->nseqs; i++)
        s->seqs[i].syncing = s->seqs[i].committed;
    pthread_mutex_unlock(&s->stats_mu);
    ms_err rc = MS_OK;
    if (s->sync_full) {
        if (s->wal_fd < 0) {
            char wal[4096];
            snprintf(wal, sizeof wal, "%s-wal", s->path);
            s->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
        }
        if (s->wal_fd < 0 || fdatasync(s->wal_fd) != 0)
            rc = ms_error_set(err, MS_ERR_STORE, "sqlite: cannot sync %s-wal: %s", s->path,
                              strerror(errno));
    }
    if (rc == MS_OK) {
        pthread_mutex_lock(&s->stats_mu);
        for (size_t i = 0; i < s->nseqs; i++)
            if (s->seqs[i].syncing > s->seqs[i].durable) s->seqs[i].durable = s->seqs[i].syncing;
        pthread_mutex_unlock(&s->stats_mu);
        s->synced = upto;
    }
    pthread_mutex_unlock(&s->sync_mu);
    return rc;
}

bool sq_durable_seq(sq_store *s, const char *tenant, uint64_t *seq)
{
    bool known = false;
    pthread_mutex_lock(&s->stats_mu);
    for (size_t i = 0; i < s->nseqs && !known; i++)
        if (strcmp(s->seqs[i].tenant, tenant) == 0) {
            *seq = s->seqs[i].durable;
            known = true;
        }
    pthread_mutex_unlock(&s->stats_mu);
    return known;
}
