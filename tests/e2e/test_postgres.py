"""The PostgreSQL store beyond the shared suite: row-level security proven with deliberately
unfiltered SQL, migrations (the command, its output, concurrent runs under the advisory lock,
the store migrating at open), and a server on PostgreSQL seen from the database.

Runs whenever PostgreSQL 15's binaries are installed (tests/e2e/pgserver.py), whatever
METASYNC_TEST_STORE says; the cluster is the session's (conftest.pg_cluster).
"""
import subprocess
import threading

import pytest

import pgserver
from conftest import BIN, child_env, pg_cluster, run_cli

pytestmark = pytest.mark.skipif(not pgserver.available(), reason="PostgreSQL 15 not installed")

_n = [0]


def fresh_db(migrate=True):
    _n[0] += 1
    return pg_cluster().new_database(f"pgt_{_n[0]}", migrate_with=BIN if migrate else None)


def sql(db, text, user=pgserver.APP, check=True):
    """psql as user; returns the CompletedProcess (stdout: unaligned rows)."""
    return pg_cluster().psql(text, db=db, user=user, check=check)


def test_rls_isolates_tenants_in_unfiltered_queries():
    owner, app = fresh_db()
    db = app.rsplit("/", 1)[1]
    for t in ("A", "B"):
        sql(db, f"BEGIN; SET LOCAL metasync.tenant = '{t}';"
                f" INSERT INTO assets(tenant, qn, type, name, attributes, version, created_at,"
                f" updated_at) VALUES ('{t}', '{t}-1', 'table', 'x', '{{}}', 1, 'now', 'now'),"
                f" ('{t}', '{t}-2', 'table', 'y', '{{}}', 1, 'now', 'now'); COMMIT")
    # No WHERE clause: the policy alone decides what the application role sees.
    r = sql(db, "BEGIN; SET LOCAL metasync.tenant = 'A'; SELECT tenant, qn FROM assets ORDER BY qn;"
                " COMMIT")
    assert r.stdout.split() == ["A|A-1", "A|A-2"]
    assert sql(db, "SELECT count(*) FROM assets").stdout.strip() == "0"  # no tenant set: nothing
    bad = sql(db, "BEGIN; SET LOCAL metasync.tenant = 'A'; INSERT INTO assets(tenant, qn, type,"
                  " name, attributes, version, created_at, updated_at) VALUES ('B', 'B-3',"
                  " 'table', 'z', '{}', 1, 'now', 'now'); COMMIT", check=False)
    assert bad.returncode != 0 and "row-level security" in bad.stderr, bad.stderr
    sql(db, "BEGIN; SET LOCAL metasync.tenant = 'A'; UPDATE assets SET name = 'hacked'; COMMIT")
    upd = sql(db, "SELECT tenant, count(*) FROM assets WHERE name = 'hacked' GROUP BY 1",
              user=pgserver.OWNER)
    assert upd.stdout.split() == ["A|2"]  # only A's two rows were reachable
    moved = sql(db, "BEGIN; SET LOCAL metasync.tenant = 'A'; UPDATE assets SET tenant = 'B';"
                    " COMMIT", check=False)
    assert moved.returncode != 0 and "row-level security" in moved.stderr
    # The owner (who runs migrations) is not subject to the policy; the application role is
    # neither owner nor BYPASSRLS.
    assert sql(db, "SELECT count(*) FROM assets", user=pgserver.OWNER).stdout.strip() == "4"
    assert sql(db, "SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user"
               ).stdout.strip() == "f"
    # The cross-tenant reads the store needs are functions of the owner, and only those.
    assert sql(db, "SELECT string_agg(t, ',') FROM metasync_tenants() t").stdout.strip() == ""
    sql(db, "BEGIN; SET LOCAL metasync.tenant = 'A'; INSERT INTO tenants VALUES ('A');"
            " SET LOCAL metasync.tenant = 'B'; INSERT INTO tenants VALUES ('B'); COMMIT")
    assert sql(db, "SELECT string_agg(t, ',') FROM metasync_tenants() t").stdout.strip() == "A,B"
    assert sql(db, "SELECT count(*) FROM tenants").stdout.strip() == "0"
    every = sql(db, "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = 'public' AND c.relkind = 'r' AND NOT c.relrowsecurity"
                    " ORDER BY 1", user=pgserver.OWNER)
    # every tenant table has RLS on (source_offsets: Kafka positions, no tenant)
    assert every.stdout.split() == ["schema_migrations", "source_offsets"]


def test_server_rows_are_invisible_without_the_tenant(make_server):
    owner, app = fresh_db()
    db = app.rsplit("/", 1)[1]
    s = make_server("--store.url", app)
    s.ingest_ok([{"op": "upsert", "type": "connection", "qualified_name": "c"},
                 {"op": "upsert", "type": "database", "qualified_name": "c/db"}])
    assert sql(db, "SELECT count(*) FROM assets").stdout.strip() == "0"
    r = sql(db, "BEGIN; SET LOCAL metasync.tenant = 'default'; SELECT qn FROM assets ORDER BY 1;"
                " SELECT last_seq FROM tenants; COMMIT")
    assert r.stdout.split() == ["c", "c/db", "2"]
    assert s.asset("c/db")["parent"] == "c"


def test_migrate_command_and_concurrent_runs():
    owner, app = fresh_db(migrate=False)
    db = app.rsplit("/", 1)[1]
    out = []

    def run():
        out.append(subprocess.run([BIN, "migrate", "--store.url", owner, "--app-role",
                                   pgserver.APP], capture_output=True, text=True,
                                  env=child_env()))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in out), [r.stderr for r in out]
    applied = [r.stdout.splitlines()[0] for r in out]
    assert sorted(applied) == ["applied: 1,2"] + ["applied: none"] * 3, applied
    assert all("schema version: 2" in r.stdout for r in out)
    assert sql(db, "SELECT version, name FROM schema_migrations").stdout.split("\n")[0] == \
        "1|initial schema"
    again = run_cli("migrate", "--store.url", owner)
    assert again.returncode == 0 and again.stdout.startswith("applied: none"), again.stdout
    assert "--app-role" in run_cli("migrate", "--help").stdout


def test_app_role_cannot_migrate_but_owner_url_migrates_at_open(make_server):
    owner, app = fresh_db(migrate=False)
    r = run_cli("migrate", "--store.url", app)
    assert r.returncode == 4 and "permission denied" in r.stderr, r.stderr
    s = make_server("--store.url", owner)  # the store migrates at open when it may
    s.ingest_ok([{"op": "upsert", "type": "connection", "qualified_name": "c"}])
    assert "row-level security" in s.stderr()  # warned: the owner is not subject to RLS
