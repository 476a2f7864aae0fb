/*
 * store_pg_apply.c — the PostgreSQL store's writer: one transaction per batch on the writer
 * connection, the decisions shared with the SQLite store (store/common/store_apply.c) over the
 * row operations below (prepared statements), and per-tenant gap-free seqs from the tenants row
 * of each tenant, locked FOR UPDATE for the transaction (concurrent writers on one database
 * queue there instead of racing).
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
    W_TENANT,
    W_SEQ_SET,
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
              " updated_at, deleted, orphan) VALUES($1, $2, $3, $4, $5, $6, 1, $7, $7, false, $8)"
              " RETURNING id",
    [W_UPD] = "UPDATE assets SET type = $2, name = $3, parent = $4, attributes = $5, version = $6,"
              " created_at = $7, updated_at = $8, deleted = $9, orphan = $10 WHERE id = $1",
    [W_ADOPT] = "UPDATE assets SET orphan = false WHERE tenant = $1 AND parent = $2 AND orphan",
    [W_TAGS_CLEAR] = "DELETE FROM tags WHERE tenant = $1 AND qn = $2 AND source = 'direct'",
    [W_TAG_INS] = "INSERT INTO tags(tenant, qn, tag, source, origin)"
                  " VALUES($1, $2, $3, 'direct', '') ON CONFLICT DO NOTHING",
    [W_EDGE_INS] = "INSERT INTO edges(tenant, src, dst, via) VALUES($1, $2, $3, $4)"
                   " ON CONFLICT DO NOTHING",
    [W_EDGE_DEL] = "DELETE FROM edges WHERE tenant = $1 AND src = $2 AND dst = $3 AND via = $4",
    [W_CHG_INS] = "INSERT INTO changes(tenant, seq, op, qn, type, version, before, after, changed,"
                  " cause, ts) VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    /* Live descendants, nearest first, then in creation order. A walk down can meet an asset
     * twice only on a parent loop, which passes through the root: never stepping back onto
     * the root ends it. */
    [W_DESC] = "WITH RECURSIVE d(qn, depth, id) AS (SELECT $2::text COLLATE \"C\", 0, 0::bigint"
               " UNION ALL SELECT a.qn, d.depth + 1, a.id FROM assets a JOIN d ON a.tenant = $1"
               " AND a.parent = d.qn WHERE NOT a.deleted AND a.qn <> $2)"
               " SELECT qn FROM d WHERE depth > 0 ORDER BY depth, id",
    [W_PARENT] = "SELECT type FROM assets WHERE tenant = $1 AND qn = $2 AND NOT deleted",
    /* The tenant's row, created on first sight, locked until commit: its last_seq is the seq
     * counter. */
    [W_TENANT] = "WITH i AS (INSERT INTO tenants(tenant) VALUES($1) ON CONFLICT DO NOTHING)"
                 " SELECT last_seq FROM tenants WHERE tenant = $1 FOR UPDATE",
    [W_SEQ_SET] = "UPDATE tenants SET last_seq = $2 WHERE tenant = $1",
};

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

/* Runs writer statement w with n text parameters; returns the result (caller clears) or NULL
 * with err filled. */
static PGresult *wrun(pg_store *s, int w, int n, const char *const *p, ms_error *err)
{
    PGresult *r = PQexecPrepared(s->w, stmt_name[w], n, p, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
    pg_fail(err, s->w, r, wsql[w]);
    PQclear(r);
    return NULL;
}

/* Runs w and reports whether it touched a row. */
static bool wrun_changed(pg_store *s, int w, int n, const char *const *p, bool *changed,
                         ms_error *err)
{
    PGresult *r = wrun(s, w, n, p, err);
    if (!r) return false;
    if (changed) *changed = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    return true;
}

/* Makes tenant the one row-level security lets the writer's transaction see. */
static bool use_tenant(pg_store *s, const char *tenant, ms_error *err)
{
    if (s->w_tenant && strcmp(s->w_tenant, tenant) == 0) return true;
    PGresult *r = PQexecParams(s->w, "SELECT set_config('metasync.tenant', $1, true)", 1, NULL,
                               &tenant, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok) pg_fail(err, s->w, r, "set tenant");
    PQclear(r);
    free(s->w_tenant);
    s->w_tenant = ok ? ms_xstrdup(tenant) : NULL;
    return ok;
}

static bool be_seen_add(void *be, const char *tenant, const char *id, bool *fresh, ms_error *err)
{
    const char *p[] = {tenant, id};
    return wrun_changed(be, W_SEEN_INS, 2, p, fresh, err);
}

static bool be_seen_del(void *be, const char *tenant, const char *id, ms_error *err)
{
    const char *p[] = {tenant, id};
    return wrun_changed(be, W_SEEN_DEL, 2, p, NULL, err);
}

static char *dup_or_null(const PGresult *r, int i)
{
    return PQgetisnull(r, 0, i) ? NULL : ms_xstrdup(PQgetvalue(r, 0, i));
}

/* Parses the JSON array of [tag, source, origin] of W_GET into r. */
static void tags_parse(const char *text, ms_srow *r);

static bool be_row_load(void *be, const char *tenant, const char *qn, bool with_tags, ms_srow *r,
                        ms_error *err)
{
    memset(r, 0, sizeof *r);
    const char *p[] = {tenant, qn, with_tags ? "t" : "f"};
    PGresult *res = wrun(be, W_GET, 3, p, err);
    if (!res) return false;
    if (PQntuples(res) == 1) {
        r->exists = true;
        r->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        r->type = dup_or_null(res, 1);
        r->name = dup_or_null(res, 2);
        r->parent = dup_or_null(res, 3);
        r->attributes = dup_or_null(res, 4);
        r->version = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
        r->deleted = PQgetvalue(res, 0, 6)[0] == 't';
        r->created_at = dup_or_null(res, 7);
        r->orphan = PQgetvalue(res, 0, 8)[0] == 't';
        r->updated_at = dup_or_null(res, 9);
        if (with_tags) tags_parse(PQgetvalue(res, 0, 10), r);
    }
    PQclear(res);
    return true;
}

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

static bool be_row_save(void *be, const char *tenant, const char *qn, ms_srow *r, bool existed,
                        ms_error *err)
{
    pg_store *s = be;
    if (!existed) {
        const char *p[] = {tenant,        qn,
                           r->type,       r->name,
                           r->parent,     r->attributes,
                           r->updated_at, r->orphan ? "t" : "f"};
        PGresult *res = wrun(s, W_INS, 8, p, err);
        if (!res) return false;
        r->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        return true;
    }
    char id[24], ver[24];
    snprintf(id, sizeof id, "%lld", (long long)r->id);
    snprintf(ver, sizeof ver, "%lld", (long long)r->version);
    const char *p[] = {id,
                       r->type,
                       r->name,
                       r->parent,
                       r->attributes,
                       ver,
                       r->created_at,
                       r->updated_at,
                       r->deleted ? "t" : "f",
                       r->orphan ? "t" : "f"};
    return wrun_changed(s, W_UPD, 10, p, NULL, err);
}

static bool be_tags_write(void *be, const char *tenant, const char *qn, const ms_srow *r,
                          ms_error *err)
{
    const char *p[] = {tenant, qn, NULL};
    if (!wrun_changed(be, W_TAGS_CLEAR, 2, p, NULL, err)) return false;
    for (size_t i = 0; i < r->ntags; i++) {
        if (strcmp(r->tags[i].source, "direct") != 0) continue;
        p[2] = r->tags[i].name;
        if (!wrun_changed(be, W_TAG_INS, 3, p, NULL, err)) return false;
    }
    return true;
}

static bool be_adopt(void *be, const char *tenant, const char *parent, ms_error *err)
{
    const char *p[] = {tenant, parent};
    return wrun_changed(be, W_ADOPT, 2, p, NULL, err);
}

static bool be_edge_set(void *be, const char *tenant, const char *src, const char *dst,
                        const char *via, bool add, bool *changed, ms_error *err)
{
    const char *p[] = {tenant, src, dst, via};
    return wrun_changed(be, add ? W_EDGE_INS : W_EDGE_DEL, 4, p, changed, err);
}

static bool be_change_add(void *be, const ms_change *c, ms_error *err)
{
    char seq[24], ver[24];
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)c->seq);
    snprintf(ver, sizeof ver, "%lld", (long long)c->version);
    const char *p[] = {c->tenant, seq,      c->op,      c->qn,    c->type, ver,
                       c->before, c->after, c->changed, c->cause, c->ts};
    return wrun_changed(be, W_CHG_INS, 11, p, NULL, err);
}

static bool be_descendants(void *be, const char *tenant, const char *qn, char ***kids, size_t *n,
                           ms_error *err)
{
    const char *p[] = {tenant, qn};
    PGresult *res = wrun(be, W_DESC, 2, p, err);
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
    const char *p[] = {tenant, qn};
    PGresult *res = wrun(be, W_PARENT, 2, p, err);
    if (!res) return false;
    *type = PQntuples(res) ? ms_xstrdup(PQgetvalue(res, 0, 0)) : NULL;
    PQclear(res);
    return true;
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
};

/* A tenant's seq within the open transaction. */
typedef struct tenant_seq {
    const char *tenant; /* borrowed from the events */
    uint64_t start, next;
} tenant_seq;

static bool exec_simple(pg_store *s, const char *sql, ms_error *err)
{
    PGresult *r = PQexec(s->w, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok && err) pg_fail(err, s->w, r, sql);
    PQclear(r);
    return ok;
}

/* Locks tenant's row (creating it) and reads its last seq into t. */
static bool seq_begin(pg_store *s, tenant_seq *t, ms_error *err)
{
    PGresult *r = wrun(s, W_TENANT, 1, &t->tenant, err);
    if (!r) return false;
    t->start = t->next = PQntuples(r) ? strtoull(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return true;
}

/* Reconnects a broken writer connection (the server restarted) and prepares again. */
static ms_err writer_ready(pg_store *s, ms_error *err)
{
    if (PQstatus(s->w) == CONNECTION_OK) return MS_OK;
    PQreset(s->w);
    if (PQstatus(s->w) != CONNECTION_OK) return pg_fail(err, s->w, NULL, "reconnect");
    return pg_apply_prepare(s, err);
}

ms_err pg_apply(void *ctx, ms_event *const *evs, size_t n, const char *now_ts, ms_apply_result *res,
                ms_error *err)
{
    pg_store *s = ctx;
    if (writer_ready(s, err) != MS_OK) return MS_ERR_STORE;
    free(s->w_tenant);
    s->w_tenant = NULL;
    if (!exec_simple(s, "BEGIN", err)) return MS_ERR_STORE;
    tenant_seq *ts = ms_xcalloc(n + 1, sizeof *ts);
    size_t nts = 0;
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        const ms_event *ev = evs[i];
        tenant_seq *t = NULL;
        for (size_t k = 0; k < nts && !t; k++)
            if (strcmp(ts[k].tenant, ev->tenant) == 0) t = &ts[k];
        ok = use_tenant(s, ev->tenant, err);
        if (ok && !t) {
            t = &ts[nts++];
            t->tenant = ev->tenant;
            ok = seq_begin(s, t, err);
        }
        ok = ok && ms_sa_event(&backend, s, s->types, ev, now_ts, &t->next, &res[i], err);
    }
    for (size_t k = 0; ok && k < nts; k++) {
        if (ts[k].next == ts[k].start) continue;
        char v[24];
        snprintf(v, sizeof v, "%llu", (unsigned long long)ts[k].next);
        const char *p[] = {ts[k].tenant, v};
        ok = use_tenant(s, ts[k].tenant, err) && wrun_changed(s, W_SEQ_SET, 2, p, NULL, err);
    }
    free(ts);
    free(s->w_tenant);
    s->w_tenant = NULL;
    if (ok && exec_simple(s, "COMMIT", err)) return MS_OK;
    if (!err->detail[0]) pg_fail(err, s->w, NULL, "apply");
    exec_simple(s, "ROLLBACK", NULL);
    return MS_ERR_STORE;
}
