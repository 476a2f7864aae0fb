/*
 * store_pg_migrate.c — the PostgreSQL schema as numbered migrations (recorded in
 * schema_migrations), applied in order, each in its own transaction, under a session advisory
 * lock so that workers opening the store at the same time never race. The schema is documented
 * in docs/model.md ("PostgreSQL").
 *
 * Roles: the migrations run as the schema's owner. Tenant tables have row-level security
 * enabled (not forced): the owner is not subject to it, the application role is. The three
 * cross-tenant reads the store interface needs are SECURITY DEFINER functions owned by the owner.
 */
#include "ms_store_pg.h"
#include "store_pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Any fixed key: the lock serializes migrations of every MetaSync schema in the database. */
#define PG_MIGRATE_LOCK "7140237100812193"

/* The tenant tables; each gets the isolation policy and the application's grants. */
static const char *const tenant_tables[] = {"tenants", "assets",  "tags",  "edges", "changes",
                                            "seen",    "cursors", "types", "ctl"};

typedef struct migration {
    int version;
    const char *name;
    const char *sql;
} migration;

static const migration migrations[] = {
    {1, "initial schema",
     "CREATE TABLE tenants(tenant text COLLATE \"C\" PRIMARY KEY,"
     " last_seq bigint NOT NULL DEFAULT 0);"
     "CREATE TABLE assets(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     " tenant text COLLATE \"C\" NOT NULL, qn text COLLATE \"C\" NOT NULL,"
     " type text COLLATE \"C\" NOT NULL, name text COLLATE \"C\" NOT NULL,"
     " parent text COLLATE \"C\", attributes text NOT NULL, version bigint NOT NULL,"
     " created_at text NOT NULL, updated_at text NOT NULL, deleted boolean NOT NULL DEFAULT false,"
     " orphan boolean NOT NULL DEFAULT false,"
     /* Words as SQLite's FTS5 unicode61 tokenizer cuts them: runs of letters and digits. */
     " search tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig,"
     " regexp_replace(name || ' ' || qn || ' ' || coalesce(attributes::jsonb->>'description', ''),"
     " '[^[:alnum:]]+', ' ', 'g'))) STORED,"
     " UNIQUE(tenant, qn));"
     "CREATE INDEX assets_parent ON assets(tenant, parent);"
     "CREATE INDEX assets_type ON assets(tenant, type, qn);"
     "CREATE INDEX assets_orphan ON assets(tenant, parent) WHERE orphan;"
     "CREATE INDEX assets_search ON assets USING gin(search);"
     "CREATE TABLE tags(tenant text COLLATE \"C\" NOT NULL, qn text COLLATE \"C\" NOT NULL,"
     " tag text COLLATE \"C\" NOT NULL, source text COLLATE \"C\" NOT NULL,"
     " origin text COLLATE \"C\" NOT NULL DEFAULT '', PRIMARY KEY(tenant, qn, tag, origin));"
     "CREATE INDEX tags_by_tag ON tags(tenant, tag, qn);"
     "CREATE TABLE edges(tenant text COLLATE \"C\" NOT NULL, src text COLLATE \"C\" NOT NULL,"
     " dst text COLLATE \"C\" NOT NULL, via text COLLATE \"C\" NOT NULL DEFAULT '',"
     " PRIMARY KEY(tenant, src, dst, via));"
     "CREATE INDEX edges_dst ON edges(tenant, dst);"
     "CREATE TABLE changes(tenant text COLLATE \"C\" NOT NULL, seq bigint NOT NULL,"
     " op text NOT NULL, qn text COLLATE \"C\" NOT NULL, type text, version bigint NOT NULL,"
     " before text, after text, changed text NOT NULL, cause text, ts text NOT NULL,"
     " PRIMARY KEY(tenant, seq));"
     "CREATE INDEX changes_qn ON changes(tenant, qn, seq);"
     "CREATE TABLE seen(tenant text COLLATE \"C\" NOT NULL, id text COLLATE \"C\" NOT NULL,"
     " PRIMARY KEY(tenant, id));"
     "CREATE TABLE cursors(tenant text COLLATE \"C\" NOT NULL, sink text COLLATE \"C\" NOT NULL,"
     " seq bigint NOT NULL, PRIMARY KEY(tenant, sink));"
     "CREATE TABLE types(tenant text COLLATE \"C\" NOT NULL, name text COLLATE \"C\" NOT NULL,"
     " definition text NOT NULL, PRIMARY KEY(tenant, name));"
     "CREATE TABLE ctl(tenant text COLLATE \"C\" NOT NULL, kind text COLLATE \"C\" NOT NULL,"
     " key text COLLATE \"C\" NOT NULL, json text NOT NULL, PRIMARY KEY(tenant, kind, key));"
     /* Cross-tenant reads (ms_store.h: tenants(), types_load(), ctl_list(NULL tenant)). */
     "CREATE FUNCTION metasync_tenants() RETURNS SETOF text LANGUAGE sql STABLE"
     " SECURITY DEFINER SET search_path FROM CURRENT"
     " AS $$ SELECT tenant FROM tenants ORDER BY tenant $$;"
     "CREATE FUNCTION metasync_types_all() RETURNS TABLE(tenant text, definition text)"
     " LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT"
     " AS $$ SELECT tenant, definition FROM types ORDER BY tenant, name $$;"
     "CREATE FUNCTION metasync_ctl_all(k text) RETURNS TABLE(tenant text, key text, json text)"
     " LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT"
     " AS $$ SELECT tenant, key, json FROM ctl WHERE kind = k ORDER BY tenant, key $$;"},
    /* The positions of sources (Kafka consumer groups), written in the transaction of the
     * events they cover. Not a tenant table: a partition carries events of every tenant. */
    {2, "source offsets",
     "CREATE TABLE source_offsets(grp text COLLATE \"C\" NOT NULL,"
     " topic text COLLATE \"C\" NOT NULL, part integer NOT NULL, next_offset bigint NOT NULL,"
     " updated_at text NOT NULL, PRIMARY KEY(grp, topic, part))"},
};

#define NMIGRATIONS (sizeof migrations / sizeof *migrations)

/* Runs sql (simple protocol, several statements allowed); false with err filled on failure. */
static bool exec(PGconn *c, const char *sql, ms_error *err, const char *what)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) pg_fail(err, c, r, what);
    PQclear(r);
    return ok;
}

/* The row-level security policy and grants of every tenant table (idempotent). */
static void policies_sql(ms_buf *b, PGconn *c, const char *app_role)
{
    char *role = app_role && *app_role ? PQescapeIdentifier(c, app_role, strlen(app_role)) : NULL;
    for (size_t i = 0; i < sizeof tenant_tables / sizeof *tenant_tables; i++) {
        const char *t = tenant_tables[i];
        ms_buf_printf(b,
                      "ALTER TABLE %s ENABLE ROW LEVEL SECURITY;"
                      "DROP POLICY IF EXISTS tenant_isolation ON %s;"
                      "CREATE POLICY tenant_isolation ON %s"
                      " USING (tenant = current_setting('metasync.tenant', true))"
                      " WITH CHECK (tenant = current_setting('metasync.tenant', true));",
                      t, t, t);
        if (role) ms_buf_printf(b, "GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %s;", t, role);
    }
    if (role) {
        ms_buf_printf(b, "GRANT SELECT ON schema_migrations TO %s;", role);
        ms_buf_printf(b, "GRANT SELECT, INSERT, UPDATE ON source_offsets TO %s;", role);
        ms_buf_printf(b,
                      "GRANT EXECUTE ON FUNCTION metasync_tenants(), metasync_types_all(),"
                      " metasync_ctl_all(text) TO %s;",
                      role);
    }
    PQfreemem(role);
}

/* The highest version recorded, 0 for a database without schema_migrations, -1 on failure. */
static int current_version(PGconn *c, ms_error *err)
{
    PGresult *r = PQexec(c, "SELECT to_regclass('schema_migrations') IS NOT NULL");
    int v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        bool exists = PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (!exists) return 0;
        r = PQexec(c, "SELECT coalesce(max(version), 0) FROM schema_migrations");
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            v = atoi(PQgetvalue(r, 0, 0));
    }
    if (v < 0) pg_fail(err, c, r, "schema version");
    PQclear(r);
    return v;
}

ms_err pg_migrate(PGconn *c, const char *app_role, ms_buf *applied, int *current, ms_error *err)
{
    int have = current_version(c, err);
    if (have < 0) return MS_ERR_STORE;
    int latest = migrations[NMIGRATIONS - 1].version;
    if (have > latest)
        return ms_error_set(err, MS_ERR_STORE,
                            "postgres: schema version %d is newer than this binary's %d", have,
                            latest);
    if (have == latest && !app_role) {
        if (current) *current = have;
        return MS_OK; /* the common case: nothing to do, no lock, no DDL rights needed */
    }
    if (!exec(c, "SELECT pg_advisory_lock(" PG_MIGRATE_LOCK ")", err, "migration lock"))
        return MS_ERR_STORE;
    ms_err rc = MS_OK;
    have = current_version(c, err); /* again: another worker may have migrated meanwhile */
    if (have < 0) rc = MS_ERR_STORE;
    if (rc == MS_OK && have == 0 &&
        !exec(c,
              "CREATE TABLE IF NOT EXISTS schema_migrations(version integer PRIMARY KEY,"
              " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
              err, "create schema_migrations"))
        rc = MS_ERR_STORE;
    bool changed = false;
    for (size_t i = 0; rc == MS_OK && i < NMIGRATIONS; i++) {
        const migration *m = &migrations[i];
        if (m->version <= have) continue;
        ms_buf sql = MS_BUF_INIT;
        char *name = PQescapeLiteral(c, m->name, strlen(m->name));
        ms_buf_printf(&sql, "BEGIN;%s;INSERT INTO schema_migrations(version, name) VALUES(%d, %s);",
                      m->sql, m->version, name ? name : "''");
        PQfreemem(name);
        policies_sql(&sql, c, NULL);
        ms_buf_puts(&sql, "COMMIT");
        char what[64];
        snprintf(what, sizeof what, "migration %d", m->version);
        if (!exec(c, sql.data, err, what)) {
            exec(c, "ROLLBACK", err, "rollback");
            rc = MS_ERR_STORE;
        } else {
            if (applied) ms_buf_printf(applied, "%s%d", applied->len ? "," : "", m->version);
            have = m->version;
            changed = true;
        }
        ms_buf_free(&sql);
    }
    if (rc == MS_OK && (app_role || changed)) {
        ms_buf sql = MS_BUF_INIT;
        policies_sql(&sql, c, app_role);
        if (!exec(c, sql.data, err, "policies and grants")) rc = MS_ERR_STORE;
        ms_buf_free(&sql);
    }
    ms_error ignore;
    exec(c, "SELECT pg_advisory_unlock(" PG_MIGRATE_LOCK ")", &ignore, "unlock");
    if (current) *current = have;
    return rc;
}

ms_err ms_store_pg_migrate(const char *url, const char *app_role, ms_buf *applied, int *current,
                           ms_error *err)
{
    PGconn *c = pg_connect(url, err);
    if (!c) return MS_ERR_STORE;
    ms_err rc = pg_migrate(c, app_role, applied, current, err);
    PQfinish(c);
    return rc;
}
