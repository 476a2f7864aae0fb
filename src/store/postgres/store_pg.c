/*
 * store_pg.c — the PostgreSQL store (libpq): opening (with migrations), the connection pool,
 * the pipelined query helper and the read side; apply() is in store_pg_apply.c, the schema in
 * store_pg_migrate.c and docs/model.md. Observable behaviour is the SQLite store's (ms_store.h):
 * the same JSON, ordering (COLLATE "C": byte order), cursors and full-text matching.
 *
 * Every read is one round trip: set_config('metasync.tenant', …, true) and the query sent
 * together in pipeline mode, which runs them in one implicit transaction.
 */
#include "store_pg_int.h"

#include "store/common/store_apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ms_err pg_fail(ms_error *err, PGconn *c, const PGresult *res, const char *what)
{
    const char *m = res ? PQresultErrorMessage(res) : NULL;
    if (!m || !*m) m = c ? PQerrorMessage(c) : "no connection";
    char msg[256];
    snprintf(msg, sizeof msg, "%s", m);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    return ms_error_set(err, MS_ERR_STORE, "postgres: %s: %s", what, msg);
}

PGconn *pg_connect(const char *url, ms_error *err)
{
    return pg_connect_with(url, NULL, NULL, err);
}

PGconn *pg_connect_with(const char *url, const char *const *kw, const char *const *val,
                        ms_error *err)
{
    /* the defaults first, then url expanded in place of dbname: what url says wins */
    const char *k[16], *v[16];
    int n = 0;
    for (; kw && kw[n] && n < 14; n++) {
        k[n] = kw[n];
        v[n] = val[n];
    }
    k[n] = "dbname";
    v[n++] = url;
    k[n] = v[n] = NULL;
    PGconn *c = PQconnectdbParams(k, v, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        pg_fail(err, c, NULL, "connect");
        PQfinish(c);
        return NULL;
    }
    PGresult *r = PQexec(c, "SET client_encoding = 'UTF8'");
    PQclear(r);
    return c;
}

PGresult *pg_run(PGconn *c, const char *tenant, const pg_q *qs, int n, ms_error *err)
{
    if (PQstatus(c) != CONNECTION_OK) PQreset(c);
    if (!PQenterPipelineMode(c)) {
        pg_fail(err, c, NULL, "pipeline");
        return NULL;
    }
    int nq = 0;
    bool sent = true;
    if (tenant) {
        sent = PQsendQueryParams(c, "SELECT set_config('metasync.tenant', $1, true)", 1, NULL,
                                 &tenant, NULL, NULL, 0);
        nq++;
    }
    for (int i = 0; sent && i < n; i++, nq++)
        sent = PQsendQueryParams(c, qs[i].sql, qs[i].n, NULL, qs[i].params, NULL, NULL, 0);
    sent = sent && PQpipelineSync(c);
    PGresult *last = NULL;
    bool ok = sent;
    if (!sent) pg_fail(err, c, NULL, "send");
    /* Results: one per statement (each followed by NULL), then the sync. */
    for (int i = 0; sent && i < nq; i++) {
        PGresult *r;
        while ((r = PQgetResult(c)) != NULL) {
            ExecStatusType st = PQresultStatus(r);
            if (ok && st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
                pg_fail(err, c, r, "query");
                ok = false;
            }
            if (i == nq - 1 && ok) {
                PQclear(last);
                last = r;
            } else {
                PQclear(r);
            }
        }
    }
    if (sent) {
        PGresult *r;
        while ((r = PQgetResult(c)) != NULL) { /* the sync (and nothing else) */
            ExecStatusType st = PQresultStatus(r);
            PQclear(r);
            if (st == PGRES_PIPELINE_SYNC) break;
        }
    }
    PQexitPipelineMode(c);
    if (!ok) {
        PQclear(last);
        return NULL;
    }
    return last;
}

PGconn *pg_acquire(pg_store *s)
{
    return ms_pool_acquire(&s->pool);
}

void pg_release(pg_store *s, PGconn *c)
{
    ms_pool_release(&s->pool, c);
}

/* Runs one statement on a pool connection in tenant's transaction; see pg_run. */
static PGresult *pool_run(pg_store *s, const char *tenant, const char *sql, int n,
                          const char *const *params, ms_error *err)
{
    PGconn *c = pg_acquire(s);
    pg_q q = {sql, n, params};
    PGresult *r = pg_run(c, tenant, &q, 1, err);
    pg_release(s, c);
    return r;
}

/* Frees the n strings of v (not v). */
static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
}

static void pg_close(void *ctx)
{
    pg_store *s = ctx;
    if (!s) return;
    pg_watch(s, NULL, NULL, NULL);
    if (s->w) PQfinish(s->w);
    for (int i = 0; i < PG_POOL; i++)
        if (s->pool.conn[i]) PQfinish(s->pool.conn[i]);
    if (s->lease) PQfinish(s->lease);
    strv_free(s->leased, s->nleased);
    free(s->leased);
    strv_free(s->deferred, s->ndeferred);
    free(s->deferred);
    free(s->deferred_at);
    free(s->url);
    pthread_mutex_destroy(&s->lease_mu);
    pthread_mutex_destroy(&s->watch_mu);
    ms_pool_destroy(&s->pool);
    free(s);
}

/* Warns when the store's role is not subject to row-level security (it owns the tables or
 * bypasses RLS): tenant isolation then rests on the store's own WHERE clauses alone. */
static void check_role(pg_store *s)
{
    PGresult *r = PQexec(s->w, "SELECT (SELECT rolsuper OR rolbypassrls FROM pg_roles"
                               " WHERE rolname = current_user) OR pg_has_role(current_user,"
                               " (SELECT relowner FROM pg_class WHERE oid = 'assets'::regclass),"
                               " 'USAGE')");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
        strcmp(PQgetvalue(r, 0, 0), "t") == 0)
        ms_log_warn(s->log,
                    "store: postgres role %s owns the tables or bypasses row-level "
                    "security; connect as an application role (docs/model.md)",
                    PQuser(s->w));
    PQclear(r);
}

static ms_err pg_open(const ms_store_open_args *a, void **ctx, ms_error *err)
{
    pg_store *s = ms_xcalloc(1, sizeof *s);
    s->log = a->log;
    s->types = a->types;
    s->url = ms_xstrdup(a->url);
    s->max_depth = (int)a->cfg->limits_max_depth;
    s->listen_check_ms =
        (int)(a->cfg->store_listen_check_ms > 3600000 ? 3600000 : a->cfg->store_listen_check_ms);
    ms_pool_init(&s->pool, PG_POOL);
    pthread_mutex_init(&s->lease_mu, NULL);
    pthread_mutex_init(&s->watch_mu, NULL);
    ms_err rc = (s->w = pg_connect(s->url, err)) ? MS_OK : MS_ERR_STORE;
    if (rc == MS_OK) rc = pg_migrate(s->w, NULL, NULL, NULL, err);
    for (int i = 0; rc == MS_OK && i < PG_POOL; i++)
        rc = (s->pool.conn[i] = pg_connect(s->url, err)) ? MS_OK : MS_ERR_STORE;
    if (rc == MS_OK) rc = pg_apply_prepare(s, err);
    if (rc != MS_OK) {
        pg_close(s);
        return rc;
    }
    check_role(s);
    ms_log_info(a->log, "store: postgres %s@%s:%s/%s", PQuser(s->w), PQhost(s->w), PQport(s->w),
                PQdb(s->w));
    *ctx = s;
    return MS_OK;
}

static const char *col(const PGresult *r, int row, int i)
{
    return PQgetisnull(r, row, i) ? NULL : PQgetvalue(r, row, i);
}

/* The asset columns of every row query, tags as a JSON array of [tag, source, origin]. */
#define ROW_COLS                                                                                   \
    "a.qn, a.id, a.type, a.name, a.parent, a.attributes, a.version, a.deleted, a.created_at,"      \
    " a.orphan, a.updated_at, (SELECT coalesce(json_agg(json_build_array(t.tag, t.source,"         \
    " t.origin) ORDER BY t.tag, t.origin), '[]') FROM tags t WHERE t.tenant = a.tenant AND"        \
    " t.qn = a.qn)"

static ms_err pg_asset_get(void *ctx, const char *tenant, const char *qn, bool include_deleted,
                           ms_buf *out, ms_error *err)
{
    const char *p[] = {tenant, qn};
    PGresult *res =
        pool_run(ctx, tenant, "SELECT " ROW_COLS " FROM assets a WHERE a.tenant = $1 AND a.qn = $2",
                 2, p, err);
    if (!res) return MS_ERR_STORE;
    ms_err rc = MS_OK;
    if (PQntuples(res) == 0) {
        rc = ms_error_set(err, MS_ERR_NOT_FOUND, "no asset '%s'", qn);
    } else {
        ms_srow r;
        pg_row_from(res, 0, 1, true, &r);
        if (r.deleted && !include_deleted)
            rc = ms_error_set(err, MS_ERR_NOT_FOUND,
                              "asset '%s' was deleted (version %lld); add include_deleted=true "
                              "to see it",
                              qn, (long long)r.version);
        else
            ms_srow_json(out, qn, &r);
        ms_srow_free(&r);
    }
    PQclear(res);
    return rc;
}

/* Turns free text into a tsquery: each word (letters and digits, as SQLite's store cuts them)
 * becomes a prefix term, ANDed. */
static void ts_query(const char *q, ms_buf *out)
{
    const unsigned char *p = (const unsigned char *)q;
#define WORDCH(c)                                                                                  \
    ((c) >= 0x80 || ((c) >= '0' && (c) <= '9') || (((c) | 0x20) >= 'a' && ((c) | 0x20) <= 'z'))
    while (*p) {
        while (*p && !WORDCH(*p))
            p++;
        const unsigned char *start = p;
        while (*p && WORDCH(*p))
            p++;
        if (p > start) {
            if (out->len) ms_buf_puts(out, " & ");
            ms_buf_putc(out, '\'');
            ms_buf_append(out, start, (size_t)(p - start));
            ms_buf_puts(out, "':*");
        }
    }
#undef WORDCH
}

static ms_err pg_asset_list(void *ctx, const ms_asset_query *q, ms_buf *items, ms_buf *next_cursor,
                            ms_error *err)
{
    ms_buf sql = MS_BUF_INIT, tq = MS_BUF_INIT;
    const char *p[8];
    int n = 0;
    char lim[24];
    snprintf(lim, sizeof lim, "%d", q->limit + 1);
    p[n++] = q->tenant;
    ms_buf_puts(&sql, "SELECT " ROW_COLS " FROM assets a WHERE a.tenant = $1");
    if (q->q) {
        ts_query(q->q, &tq);
        if (!tq.len) {
            ms_buf_free(&sql);
            return ms_error_set(err, MS_ERR_BAD_PARAM, "q has no searchable word");
        }
        p[n++] = tq.data;
        ms_buf_printf(&sql, " AND a.search @@ to_tsquery('simple', $%d)", n);
    }
    if (q->type) {
        p[n++] = q->type;
        ms_buf_printf(&sql, " AND a.type = $%d", n);
    }
    if (q->parent) {
        p[n++] = q->parent;
        ms_buf_printf(&sql, " AND a.parent = $%d", n);
    }
    if (q->tag) {
        p[n++] = q->tag;
        ms_buf_printf(&sql,
                      " AND EXISTS (SELECT 1 FROM tags t WHERE t.tenant = a.tenant AND"
                      " t.qn = a.qn AND t.tag = $%d)",
                      n);
    }
    if (q->orphan >= 0) ms_buf_puts(&sql, q->orphan ? " AND a.orphan" : " AND NOT a.orphan");
    if (!q->include_deleted) ms_buf_puts(&sql, " AND NOT a.deleted");
    if (q->cursor) {
        p[n++] = q->cursor;
        ms_buf_printf(&sql, " AND a.qn > $%d", n);
    }
    p[n++] = lim;
    ms_buf_printf(&sql, " ORDER BY a.qn LIMIT $%d", n);
    PGresult *res = pool_run(ctx, q->tenant, sql.data, n, p, err);
    ms_buf_free(&sql);
    ms_buf_free(&tq);
    if (!res) return MS_ERR_STORE;
    int rows = PQntuples(res);
    for (int i = 0; i < rows; i++) {
        if (i == q->limit) { /* there is more: the next page resumes after the last shown */
            ms_buf_puts(next_cursor, PQgetvalue(res, i - 1, 0));
            break;
        }
        ms_srow r;
        pg_row_from(res, i, 1, true, &r);
        if (i) ms_buf_putc(items, ',');
        ms_srow_json(items, PQgetvalue(res, i, 0), &r);
        ms_srow_free(&r);
    }
    PQclear(res);
    return MS_OK;
}

/* Walks one direction from qn, appending the nodes reached (with their distance). The walk's
 * UNION on (name, distance) and the depth bound end it on cycles. */
static ms_err walk(pg_store *s, const char *tenant, const char *qn, bool down, int depth,
                   ms_buf *nodes, size_t *nn, ms_error *err)
{
#define WALK(next, here)                                                                           \
    "WITH RECURSIVE w(qn, d) AS (SELECT $2::text COLLATE \"C\", 0 UNION SELECT e." next            \
    ", w.d + 1 FROM edges e JOIN w ON e.tenant = $1 AND e." here " = w.qn WHERE w.d < $3::int)"    \
    " SELECT w.qn, MIN(w.d), a.type, a.name FROM w LEFT JOIN assets a ON a.tenant = $1 AND"        \
    " a.qn = w.qn AND NOT a.deleted WHERE w.d > 0 AND w.qn <> $2 GROUP BY w.qn, a.type, a.name"    \
    " ORDER BY MIN(w.d), w.qn"
    static const char *const nodes_sql[2] = {WALK("src", "dst"), WALK("dst", "src")};
#undef WALK
    char d[16];
    snprintf(d, sizeof d, "%d", depth);
    const char *p[] = {tenant, qn, d};
    PGresult *res = pool_run(s, tenant, nodes_sql[down], 3, p, err);
    if (!res) return MS_ERR_STORE;
    for (int i = 0; i < PQntuples(res); i++) {
        if ((*nn)++) ms_buf_putc(nodes, ',');
        ms_buf_puts(nodes, "{\"qualified_name\":");
        ms_buf_put_jstr(nodes, col(res, i, 0));
        ms_buf_puts(nodes, ",\"type\":");
        ms_buf_put_jstr(nodes, col(res, i, 2));
        ms_buf_puts(nodes, ",\"name\":");
        ms_buf_put_jstr(nodes, col(res, i, 3));
        ms_buf_printf(nodes, ",\"direction\":\"%s\",\"distance\":%s}",
                      down ? "downstream" : "upstream", PQgetvalue(res, i, 1));
    }
    PQclear(res);
    return MS_OK;
}

/* Appends the edges between the nodes reached by walking dir from qn, each edge once (on a cycle
 * the upstream and downstream walks meet the same edges). */
static ms_err walk_edges(pg_store *s, const char *tenant, const char *qn, ms_lineage_dir dir,
                         int depth, ms_buf *edges, ms_error *err)
{
    static const char *const sql =
        "WITH RECURSIVE dn(qn, d) AS (SELECT $2::text COLLATE \"C\", 0 WHERE $4::bool UNION"
        " SELECT e.dst, dn.d + 1 FROM edges e JOIN dn ON e.tenant = $1 AND e.src = dn.qn"
        " WHERE dn.d < $3::int), up(qn, d) AS (SELECT $2::text COLLATE \"C\", 0 WHERE $5::bool"
        " UNION SELECT e.src, up.d + 1 FROM edges e JOIN up ON e.tenant = $1 AND e.dst = up.qn"
        " WHERE up.d < $3::int)"
        " SELECT e.src, e.dst, e.via FROM edges e JOIN dn ON e.tenant = $1 AND e.src = dn.qn"
        " WHERE dn.d < $3::int UNION SELECT e.src, e.dst, e.via FROM edges e JOIN up ON"
        " e.tenant = $1 AND e.dst = up.qn WHERE up.d < $3::int ORDER BY 1, 2, 3";
    char d[16];
    snprintf(d, sizeof d, "%d", depth);
    const char *p[] = {tenant, qn, d, dir & MS_LINEAGE_DOWNSTREAM ? "t" : "f",
                       dir & MS_LINEAGE_UPSTREAM ? "t" : "f"};
    PGresult *res = pool_run(s, tenant, sql, 5, p, err);
    if (!res) return MS_ERR_STORE;
    for (int i = 0; i < PQntuples(res); i++) {
        if (i) ms_buf_putc(edges, ',');
        ms_buf_puts(edges, "{\"from\":");
        ms_buf_put_jstr(edges, col(res, i, 0));
        ms_buf_puts(edges, ",\"to\":");
        ms_buf_put_jstr(edges, col(res, i, 1));
        const char *via = col(res, i, 2);
        ms_buf_puts(edges, ",\"via\":");
        ms_buf_put_jstr(edges, via && *via ? via : NULL);
        ms_buf_putc(edges, '}');
    }
    PQclear(res);
    return MS_OK;
}

static ms_err pg_lineage(void *ctx, const char *tenant, const char *qn, ms_lineage_dir dir,
                         int depth, ms_buf *out, ms_error *err)
{
    ms_buf nodes = MS_BUF_INIT, edges = MS_BUF_INIT;
    size_t nn = 0;
    ms_err rc = MS_OK;
    if (dir & MS_LINEAGE_UPSTREAM) rc = walk(ctx, tenant, qn, false, depth, &nodes, &nn, err);
    if (rc == MS_OK && (dir & MS_LINEAGE_DOWNSTREAM))
        rc = walk(ctx, tenant, qn, true, depth, &nodes, &nn, err);
    if (rc == MS_OK) rc = walk_edges(ctx, tenant, qn, dir, depth, &edges, err);
    if (rc == MS_OK) {
        ms_buf_puts(out, "{\"root\":");
        ms_buf_put_jstr(out, qn);
        ms_buf_printf(out, ",\"direction\":\"%s\",\"depth\":%d,\"nodes\":[%s],\"edges\":[%s]}",
                      dir == MS_LINEAGE_BOTH       ? "both"
                      : dir == MS_LINEAGE_UPSTREAM ? "upstream"
                                                   : "downstream",
                      depth, ms_buf_cstr(&nodes), ms_buf_cstr(&edges));
    }
    ms_buf_free(&nodes);
    ms_buf_free(&edges);
    return rc;
}

#define CHG_COLS "seq, op, qn, type, version, before, after, changed, cause, ts"

/* Runs a change-log query (CHG_COLS) and feeds cb. */
static ms_err feed_changes(pg_store *s, const char *tenant, const char *sql, int n,
                           const char *const *p, ms_change_cb cb, void *ud, ms_error *err)
{
    PGresult *res = pool_run(s, tenant, sql, n, p, err);
    if (!res) return MS_ERR_STORE;
    for (int i = 0; i < PQntuples(res); i++) {
        ms_change c = {
            .seq = strtoull(PQgetvalue(res, i, 0), NULL, 10),
            .tenant = tenant,
            .op = col(res, i, 1),
            .qn = col(res, i, 2),
            .type = col(res, i, 3),
            .version = strtoll(PQgetvalue(res, i, 4), NULL, 10),
            .before = col(res, i, 5),
            .after = col(res, i, 6),
            .changed = col(res, i, 7),
            .cause = col(res, i, 8),
            .ts = col(res, i, 9),
        };
        if (cb(ud, &c)) break;
    }
    PQclear(res);
    return MS_OK;
}

static ms_err pg_history(void *ctx, const char *tenant, const char *qn, ms_change_cb cb, void *ud,
                         ms_error *err)
{
    const char *p[] = {tenant, qn};
    return feed_changes(ctx, tenant,
                        "SELECT " CHG_COLS " FROM changes WHERE tenant = $1 AND qn = $2"
                        " ORDER BY seq",
                        2, p, cb, ud, err);
}

static ms_err pg_changes(void *ctx, const char *tenant, uint64_t after, size_t limit,
                         ms_change_cb cb, void *ud, ms_error *err)
{
    char a[24], l[24];
    snprintf(a, sizeof a, "%llu", (unsigned long long)after);
    snprintf(l, sizeof l, "%llu", (unsigned long long)limit);
    const char *p[] = {tenant, a, l};
    return feed_changes(ctx, tenant,
                        "SELECT " CHG_COLS " FROM changes WHERE tenant = $1 AND seq > $2::bigint"
                        " ORDER BY seq LIMIT $3::bigint",
                        3, p, cb, ud, err);
}

/* Runs a query in tenant's transaction returning one integer (0 when no row). */
static ms_err scalar(pg_store *s, const char *tenant, const char *sql, int n, const char *const *p,
                     int64_t *v, ms_error *err)
{
    PGresult *res = pool_run(s, tenant, sql, n, p, err);
    if (!res) return MS_ERR_STORE;
    *v = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return MS_OK;
}

static ms_err pg_last_seq(void *ctx, const char *tenant, uint64_t *seq, ms_error *err)
{
    int64_t v = 0;
    ms_err rc = scalar(ctx, tenant, "SELECT coalesce(max(seq), 0) FROM changes WHERE tenant = $1",
                       1, &tenant, &v, err);
    *seq = (uint64_t)v;
    return rc;
}

static ms_err pg_stats(void *ctx, const char *tenant, ms_store_stats *st, ms_error *err)
{
    int64_t v = 0;
    ms_err rc = scalar(ctx, tenant,
                       "SELECT count(*) FROM assets WHERE tenant = $1 AND orphan AND NOT deleted",
                       1, &tenant, &v, err);
    st->orphans = (uint64_t)v;
    return rc;
}

static ms_err pg_tenants(void *ctx, int (*cb)(void *ud, const char *tenant), void *ud,
                         ms_error *err)
{
    PGresult *res = pool_run(ctx, NULL, "SELECT * FROM metasync_tenants()", 0, NULL, err);
    if (!res) return MS_ERR_STORE;
    for (int i = 0; i < PQntuples(res); i++)
        if (cb(ud, PQgetvalue(res, i, 0))) break;
    PQclear(res);
    return MS_OK;
}

static ms_err pg_asset_type(void *ctx, const char *tenant, const char *qn, char *buf, size_t len,
                            ms_error *err)
{
    const char *p[] = {tenant, qn};
    buf[0] = '\0';
    PGresult *res = pool_run(
        ctx, tenant, "SELECT type FROM assets WHERE tenant = $1 AND qn = $2 AND NOT deleted", 2, p,
        err);
    if (!res) return MS_ERR_STORE;
    ms_err rc = MS_OK;
    if (PQntuples(res))
        snprintf(buf, len, "%s", PQgetvalue(res, 0, 0));
    else
        rc = ms_error_set(err, MS_ERR_NOT_FOUND, "no asset '%s'", qn);
    PQclear(res);
    return rc;
}

static ms_err pg_cursor_get(void *ctx, const char *tenant, const char *sink, uint64_t *seq,
                            ms_error *err)
{
    int64_t v = 0;
    const char *p[] = {tenant, sink};
    ms_err rc = scalar(ctx, tenant, "SELECT seq FROM cursors WHERE tenant = $1 AND sink = $2", 2, p,
                       &v, err);
    *seq = (uint64_t)v;
    return rc;
}

/* Runs one write statement in tenant's transaction on a pool connection. */
static ms_err pool_write(pg_store *s, const char *tenant, const char *sql, int n,
                         const char *const *p, ms_error *err)
{
    PGresult *res = pool_run(s, tenant, sql, n, p, err);
    PQclear(res);
    return res ? MS_OK : MS_ERR_STORE;
}

static ms_err pg_cursor_set(void *ctx, const char *tenant, const char *sink, uint64_t seq,
                            ms_error *err)
{
    char v[24];
    snprintf(v, sizeof v, "%llu", (unsigned long long)seq);
    const char *p[] = {tenant, sink, v};
    return pool_write(ctx, tenant,
                      "INSERT INTO cursors(tenant, sink, seq) VALUES($1, $2, $3::bigint)"
                      " ON CONFLICT (tenant, sink) DO UPDATE SET seq = excluded.seq",
                      3, p, err);
}

static ms_err pg_type_save(void *ctx, const char *tenant, const char *name, const char *json,
                           ms_error *err)
{
    const char *p[] = {tenant, name, json};
    return pool_write(ctx, tenant,
                      "INSERT INTO types(tenant, name, definition) VALUES($1, $2, $3)"
                      " ON CONFLICT (tenant, name) DO UPDATE SET definition = excluded.definition",
                      3, p, err);
}

static ms_err pg_types_load(void *ctx, int (*cb)(void *ud, const char *tenant, const char *json),
                            void *ud, ms_error *err)
{
    PGresult *res = pool_run(ctx, NULL, "SELECT * FROM metasync_types_all()", 0, NULL, err);
    if (!res) return MS_ERR_STORE;
    for (int i = 0; i < PQntuples(res); i++)
        if (cb(ud, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1))) break;
    PQclear(res);
    return MS_OK;
}

static ms_err pg_ctl_put(void *ctx, const char *tenant, const char *kind, const char *key,
                         const char *json, ms_error *err)
{
    if (!tenant || !kind || !key)
        return ms_error_set(err, MS_ERR_INTERNAL, "ctl_put: tenant, kind and key are required");
    const char *p[] = {tenant, kind, key, json};
    return pool_write(ctx, tenant,
                      json ? "INSERT INTO ctl(tenant, kind, key, json) VALUES($1, $2, $3, $4)"
                             " ON CONFLICT (tenant, kind, key) DO UPDATE SET json = excluded.json"
                           : "DELETE FROM ctl WHERE tenant = $1 AND kind = $2 AND key = $3",
                      json ? 4 : 3, p, err);
}

static ms_err pg_ctl_list(void *ctx, const char *tenant, const char *kind,
                          int (*cb)(void *ud, const char *tenant, const char *key,
                                    const char *json),
                          void *ud, ms_error *err)
{
    const char *p[] = {kind, tenant};
    PGresult *res =
        tenant ? pool_run(ctx, tenant,
                          "SELECT tenant, key, json FROM ctl WHERE kind = $1 AND tenant = $2"
                          " ORDER BY tenant, key",
                          2, p, err)
               : pool_run(ctx, NULL, "SELECT * FROM metasync_ctl_all($1)", 1, p, err);
    if (!res) return MS_ERR_STORE;
    for (int i = 0; i < PQntuples(res); i++)
        if (cb(ud, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2))) break;
    PQclear(res);
    return MS_OK;
}

/* Adds a ctl record unless one with the same key exists (ms_store.h, version 4): the unique key
 * (tenant, kind, key) is the guard when two workers allocate the same id or version at once. */
static ms_err pg_ctl_add(void *ctx, const char *tenant, const char *kind, const char *key,
                         const char *json, bool *added, ms_error *err)
{
    *added = false;
    if (!tenant || !kind || !key || !json)
        return ms_error_set(err, MS_ERR_INTERNAL,
                            "ctl_add: tenant, kind, key and json are required");
    const char *p[] = {tenant, kind, key, json};
    PGresult *res = pool_run(ctx, tenant,
                             "INSERT INTO ctl(tenant, kind, key, json) VALUES($1, $2, $3, $4)"
                             " ON CONFLICT (tenant, kind, key) DO NOTHING",
                             4, p, err);
    if (!res) return MS_ERR_STORE;
    *added = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    return MS_OK;
}

/* The advisory-lock class of the worker locks: (WORKER_CLASS, backend pid) on a lease
 * connection says "a worker that delivers sinks is alive". Leases are (hashtext(sink),
 * hashtext(tenant)): every other two-key advisory lock of a worker's lease connection. */
#define WORKER_CLASS "hashtext('metasync.worker')"
/* How long a lease over this worker's fair share stays left to the others before this worker
 * takes it anyway (the others are missing: no sink runner, stopped): a few lease asks. */
#define LEASE_GRACE_MS 3000

/* Forgets the leases of a broken lease connection and opens a new one (a new epoch) holding
 * this worker's worker lock. */
static ms_err lease_reconnect(pg_store *s, ms_error *err)
{
    if (s->lease) PQfinish(s->lease);
    strv_free(s->leased, s->nleased);
    s->nleased = 0;
    s->lease_epoch++;
    s->lease = pg_connect(s->url, err);
    if (!s->lease) return MS_ERR_STORE;
    PGresult *r =
        PQexec(s->lease, "SELECT pg_try_advisory_lock(" WORKER_CLASS ", pg_backend_pid())");
    ms_err rc =
        PQresultStatus(r) == PGRES_TUPLES_OK ? MS_OK : pg_fail(err, s->lease, r, "worker lock");
    PQclear(r);
    if (rc != MS_OK) { /* not counted as live without it: connect again at the next ask */
        PQfinish(s->lease);
        s->lease = NULL;
    }
    return rc;
}

/*
 * Whether this worker may take one more lease (key, not held by it): yes while it holds fewer
 * than its fair share, ceil((leases held by live workers + 1) / live workers), the live workers
 * being those whose worker lock is held (pg_locks). Over its share it leaves the lease to the
 * others, but takes it once it has been left for LEASE_GRACE_MS (nobody took it: the others
 * are missing). When the counts cannot be read it may take it. @locks_required lease_mu
 */
static bool lease_fair(pg_store *s, const char *key)
{
    PGresult *r = PQexec(
        s->lease,
        "WITH a AS (SELECT pid, classid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND objsubid = 2 AND database = (SELECT oid FROM pg_database WHERE datname ="
        " current_database())), w AS (SELECT pid FROM a WHERE classid = " WORKER_CLASS "::oid)"
        " SELECT (SELECT count(*) FROM w), (SELECT count(*) FROM a JOIN w USING (pid) WHERE"
        " a.classid <> " WORKER_CLASS "::oid)");
    bool ok = PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1;
    if (!ok) {
        long long live = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        long long held = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        if (live < 1) live = 1;
        ok = (long long)s->nleased < (held + 1 + live - 1) / live;
    }
    PQclear(r);
    size_t i = 0;
    while (i < s->ndeferred && strcmp(s->deferred[i], key) != 0)
        i++;
    unsigned long long now = ms_now_ms();
    if (!ok && i == s->ndeferred) { /* left to the others from now on */
        s->deferred = ms_xrealloc(s->deferred, (s->ndeferred + 1) * sizeof *s->deferred);
        s->deferred_at = ms_xrealloc(s->deferred_at, (s->ndeferred + 1) * sizeof *s->deferred_at);
        s->deferred[s->ndeferred] = ms_xstrdup(key);
        s->deferred_at[s->ndeferred++] = now;
        return false;
    }
    if (!ok && now - s->deferred_at[i] < LEASE_GRACE_MS) return false;
    if (i < s->ndeferred) { /* may take it now: no longer deferred */
        free(s->deferred[i]);
        s->deferred[i] = s->deferred[--s->ndeferred];
        s->deferred_at[i] = s->deferred_at[s->ndeferred];
    }
    return true;
}

/*
 * A lease is the session advisory lock (hashtext(sink), hashtext(tenant)) on the lease
 * connection: PostgreSQL ends it when the connection (the process) dies, and another worker's
 * pg_try_advisory_lock then succeeds. A lease already held is confirmed by a round trip on the
 * lease connection (not by locking again: session locks count, and are kept anyway). A lease
 * not held is tried only within this worker's fair share (lease_fair).
 */
static ms_err pg_lease_hold(void *ctx, const char *tenant, const char *sink, bool *held,
                            uint64_t *epoch, ms_error *err)
{
    pg_store *s = ctx;
    ms_buf key = MS_BUF_INIT;
    ms_buf_printf(&key, "%s\n%s", sink, tenant);
    *held = false;
    pthread_mutex_lock(&s->lease_mu);
    ms_err rc = MS_OK;
    if (!s->lease || PQstatus(s->lease) != CONNECTION_OK) rc = lease_reconnect(s, err);
    bool known = false;
    for (size_t i = 0; rc == MS_OK && i < s->nleased && !known; i++)
        known = strcmp(s->leased[i], key.data) == 0;
    if (rc == MS_OK && (known || lease_fair(s, key.data))) {
        const char *p[] = {sink, tenant};
        PGresult *res =
            known
                ? PQexec(s->lease, "SELECT true")
                : PQexecParams(s->lease, "SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))",
                               2, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
            rc = pg_fail(err, s->lease, res, "lease");
            if (PQstatus(s->lease) != CONNECTION_OK) lease_reconnect(s, err);
        } else if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
            *held = true;
            if (!known) {
                s->leased = ms_xrealloc(s->leased, (s->nleased + 1) * sizeof *s->leased);
                s->leased[s->nleased++] = ms_xstrdup(key.data);
            }
        }
        PQclear(res);
    }
    *epoch = s->lease_epoch;
    pthread_mutex_unlock(&s->lease_mu);
    ms_buf_free(&key);
    return rc;
}

static ms_err pg_offsets_get(void *ctx, const char *group, const char *topic, const int32_t *parts,
                             size_t n, int64_t *next, ms_error *err)
{
    for (size_t i = 0; i < n; i++)
        next[i] = -1;
    const char *p[] = {group, topic};
    PGresult *res = pool_run(ctx, NULL,
                             "SELECT part, next_offset FROM source_offsets"
                             " WHERE grp = $1 AND topic = $2",
                             2, p, err);
    if (!res) return MS_ERR_STORE;
    for (int r = 0; r < PQntuples(res); r++) {
        int32_t part = (int32_t)atoi(PQgetvalue(res, r, 0));
        for (size_t i = 0; i < n; i++)
            if (parts[i] == part) next[i] = strtoll(PQgetvalue(res, r, 1), NULL, 10);
    }
    PQclear(res);
    return MS_OK;
}

#define PG_OPS(scheme_)                                                                            \
    {                                                                                              \
        .version = MS_STORE_OPS_VERSION, .name = "postgres", .scheme = scheme_, .open = pg_open,   \
        .close = pg_close, .apply = pg_apply, .asset_get = pg_asset_get,                           \
        .asset_list = pg_asset_list, .lineage = pg_lineage, .history = pg_history,                 \
        .changes = pg_changes, .last_seq = pg_last_seq, .tenants = pg_tenants, .stats = pg_stats,  \
        .asset_type = pg_asset_type, .cursor_get = pg_cursor_get, .cursor_set = pg_cursor_set,     \
        .type_save = pg_type_save, .types_load = pg_types_load, .ctl_put = pg_ctl_put,             \
        .ctl_list = pg_ctl_list, .lease_hold = pg_lease_hold, .watch = pg_watch,                   \
        .ctl_add = pg_ctl_add, .apply_at = pg_apply_at, .offsets_get = pg_offsets_get,             \
    }

/* One table per URL scheme libpq accepts. */
const ms_store_ops ms_store_postgres = PG_OPS("postgres");
const ms_store_ops ms_store_postgresql = PG_OPS("postgresql");
