"""The control plane over real HTTP (docs/api.md "Control plane"): tenants, API keys, connections
and users — CRUD of each, a catalogue of bad inputs with their precise problem+json answers,
isolation between tenants (X-MetaSync-Tenant), and that a connection's credentials never come
back in a response, never reach the server's log, and are not in the store in plain text when a
secrets key is configured (the SQLite file and its WAL, or a pg_dump of the PostgreSQL
database). Runs against both stores (METASYNC_TEST_STORE=postgres)."""
import json
import secrets
import subprocess

import pytest
import requests

import conftest
import pgserver
from conftest import TEST_STORE, run_cli

PROBLEM = "application/problem+json"


def call(server, method, path, body=None, tenant=None, raw=None):
    """One control-plane request below /api/v1; body is JSON-encoded unless raw is given."""
    headers = {"Content-Type": "application/json"}
    if tenant:
        headers["X-MetaSync-Tenant"] = tenant
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    return requests.request(method, server.url + "/api/v1" + path, data=data, headers=headers,
                            timeout=30)


def ok(r, status=200):
    assert r.status_code == status, f"{r.status_code}: {r.text}"
    return r.json() if status != 204 else None


def problem(r, status, code, *words):
    """Asserts a problem+json answer with this status and code whose detail holds every word."""
    assert r.status_code == status, f"expected {status} {code}, got {r.status_code}: {r.text}"
    assert r.headers["Content-Type"].startswith(PROBLEM)
    body = r.json()
    assert body["code"] == code, body
    for w in words:
        assert w in body["detail"], body
    return body


@pytest.fixture
def key_file(tmp_path):
    p = tmp_path / "secrets.key"
    p.write_text(secrets.token_hex(32) + "\n")
    return p


@pytest.fixture
def sealed_server(make_server, key_file):
    return make_server("--secrets.key-file", str(key_file))


# ---- CRUD ------------------------------------------------------------------------------------


def test_connections_crud(server):
    pg = {"name": "warehouse", "adapter": "postgres", "host": "db.internal", "port": 5432,
          "database": "dwh", "options": {"sslmode": "require"},
          "credentials": {"username": "etl", "password": "pw-1"}}
    c = ok(call(server, "POST", "/connections", pg), 201)
    assert c["name"] == "warehouse" and c["adapter"] == "postgres" and c["port"] == 5432
    assert c["options"] == {"sslmode": "require"} and c["credentials"] == "set"
    assert c["credentials_encrypted"] is False and c["created_at"] and c["updated_at"]
    ok(call(server, "POST", "/connections", {"name": "events", "adapter": "kafka",
                                             "host": "broker", "port": 9092}), 201)
    items = ok(call(server, "GET", "/connections"))["items"]
    assert [i["name"] for i in items] == ["events", "warehouse"]
    assert items[0]["credentials"] == "none"
    got = ok(call(server, "GET", "/connections/warehouse"))
    assert got == c
    up = ok(call(server, "PUT", "/connections/warehouse", {"port": 6432, "database": None}))
    assert up["port"] == 6432 and up["database"] is None and up["host"] == "db.internal"
    assert up["credentials"] == "set"  # kept when not given
    up = ok(call(server, "PUT", "/connections/warehouse", {"credentials": None}))
    assert up["credentials"] == "none"
    problem(call(server, "POST", "/connections", pg), 409, "already_exists", "warehouse")
    assert ok(call(server, "DELETE", "/connections/warehouse"), 204) is None
    problem(call(server, "GET", "/connections/warehouse"), 404, "not_found", "connection")
    problem(call(server, "PUT", "/connections/warehouse", {"port": 1}), 404, "not_found")
    problem(call(server, "DELETE", "/connections/warehouse"), 404, "not_found")
    r = call(server, "PATCH", "/connections/events", {})
    problem(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "GET, HEAD, PUT, DELETE"


def test_apikeys_crud(server):
    k = ok(call(server, "POST", "/apikeys", {"name": "ci", "scopes": ["read", "write"]}), 201)
    assert k["key"].startswith(f"msk_{k['id']}_") and len(k["key"]) == 4 + 16 + 1 + 64
    assert k["tenant"] == "default" and k["scopes"] == ["read", "write"]
    assert k["revoked"] is False and k["last_used_at"] is None
    d = ok(call(server, "POST", "/apikeys", {"name": "dash"}), 201)
    assert d["scopes"] == ["read"]  # the default
    items = ok(call(server, "GET", "/apikeys"))["items"]
    assert sorted(i["id"] for i in items) == sorted([k["id"], d["id"]])
    for i in items:
        assert set(i) == {"id", "name", "tenant", "scopes", "created_at", "last_used_at",
                          "revoked"}
    one = ok(call(server, "GET", f"/apikeys/{k['id']}"))
    assert "key" not in one and k["key"][21:] not in json.dumps(one)
    rv = ok(call(server, "DELETE", f"/apikeys/{k['id']}"))
    assert rv["revoked"] is True
    assert ok(call(server, "GET", f"/apikeys/{k['id']}"))["revoked"] is True
    problem(call(server, "GET", "/apikeys/0000000000000000"), 404, "not_found", "API key")
    r = call(server, "PUT", f"/apikeys/{k['id']}", {"name": "x"})
    problem(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "GET, HEAD, DELETE"


def test_users_crud(server):
    u = ok(call(server, "POST", "/users", {"email": "Ada@Example.com", "display_name": "Ada",
                                           "role": "admin"}), 201)
    assert u["email"] == "ada@example.com" and u["role"] == "admin" and u["disabled"] is False
    v = ok(call(server, "POST", "/users", {"email": "bob@example.com"}), 201)
    assert v["role"] == "viewer"
    problem(call(server, "POST", "/users", {"email": "ADA@example.com"}), 409, "already_exists")
    assert [i["email"] for i in ok(call(server, "GET", "/users"))["items"]] == [
        "ada@example.com", "bob@example.com"]
    assert ok(call(server, "GET", "/users/ADA@example.com"))["display_name"] == "Ada"
    up = ok(call(server, "PUT", "/users/bob@example.com", {"role": "editor", "disabled": True}))
    assert up["role"] == "editor" and up["disabled"] is True
    problem(call(server, "PUT", "/users/bob@example.com", {"email": "carl@example.com"}), 400,
            "invalid_field", "email cannot be changed")
    ok(call(server, "DELETE", "/users/bob@example.com"), 204)
    problem(call(server, "GET", "/users/bob@example.com"), 404, "not_found", "user")


def test_tenants(server):
    items = ok(call(server, "GET", "/tenants"))["items"]
    assert [t["name"] for t in items] == ["default"]  # exists without being created
    t = ok(call(server, "POST", "/tenants", {"name": "acme", "display_name": "Acme Corp"}), 201)
    assert t["name"] == "acme" and t["display_name"] == "Acme Corp" and t["created_at"]
    assert t["disabled"] is False and t["registered"] is True
    problem(call(server, "POST", "/tenants", {"name": "acme"}), 409, "already_exists")
    problem(call(server, "POST", "/tenants", {"name": "Bad Name"}), 400, "invalid_field",
            "name must be a tenant name")
    assert ok(call(server, "GET", "/tenants/acme"))["display_name"] == "Acme Corp"
    ok(call(server, "PUT", "/tenants/acme", {"display_name": "ACME"}))
    off = ok(call(server, "DELETE", "/tenants/acme"))
    assert off["disabled"] is True and off["display_name"] == "ACME"
    problem(call(server, "DELETE", "/tenants/default"), 400, "invalid_field", "default")
    problem(call(server, "GET", "/tenants/nope"), 404, "not_found", "tenant")
    # writing into an unknown tenant registers it
    ok(call(server, "POST", "/users", {"email": "x@globex.com"}, tenant="globex"), 201)
    g = ok(call(server, "GET", "/tenants/globex"))
    assert g["registered"] is True and g["created_at"]
    assert [t["name"] for t in ok(call(server, "GET", "/tenants"))["items"]] == [
        "acme", "default", "globex"]
    # data writes go on as before (the data plane's tenant is `default`)
    server.ingest_ok([{"op": "upsert", "type": "database", "qualified_name": "pg/x"}])


# ---- bad input ------------------------------------------------------------------------------

BAD = [
    # (method, path, body (dict or raw str), status, code, words in the detail)
    ("POST", "/connections", {"adapter": "postgres"}, 400, "missing_field", "name is required"),
    ("POST", "/connections", {"name": "c"}, 400, "missing_field", "adapter is required"),
    ("POST", "/connections", {"name": "c", "adapter": "db2"}, 400, "invalid_field",
     "adapter must be one of", "postgres"),
    ("POST", "/connections", {"name": "c", "adapter": "mysql", "port": "3306"}, 400,
     "invalid_field", "port must be an integer"),
    ("POST", "/connections", {"name": "c", "adapter": "mysql", "port": 70000}, 400,
     "invalid_field", "port must be from 1 to 65535"),
    ("POST", "/connections", {"name": "c", "adapter": "mysql", "options": []}, 400,
     "invalid_field", "options must be a JSON object"),
    ("POST", "/connections", {"name": "c", "adapter": "mysql", "credentials": "pw"}, 400,
     "invalid_field", "credentials must be a JSON object"),
    ("POST", "/connections", {"name": "c", "adapter": "mysql", "credentials": {"p": "x" * 9000}},
     400, "value_too_long", "credentials is larger than"),
    ("POST", "/connections", {"name": "a/b", "adapter": "mysql"}, 400, "invalid_field", "name"),
    ("POST", "/connections", {"name": "", "adapter": "mysql"}, 400, "invalid_field",
     "name must not be empty"),
    ("POST", "/connections", {"name": "c" * 129, "adapter": "mysql"}, 400, "value_too_long",
     "name is longer than 128"),
    ("POST", "/connections", {"name": "c", "adapter": "mysql", "hostname": "h"}, 400,
     "unknown_field", "hostname"),
    ("POST", "/connections", {"name": 5, "adapter": "mysql"}, 400, "invalid_field",
     "name must be a string"),
    ("POST", "/connections", "[1,2]", 400, "not_an_object", "JSON object"),
    ("POST", "/connections", '{"name": "c",', 400, "malformed_json"),
    ("POST", "/connections", "x" * 70000, 413, "body_too_large"),
    ("POST", "/users", {"display_name": "x"}, 400, "missing_field", "email is required"),
    ("POST", "/users", {"email": "not-an-email"}, 400, "invalid_field", "email must be"),
    ("POST", "/users", {"email": "a@b"}, 400, "invalid_field", "email must be"),
    ("POST", "/users", {"email": "a b@c.org"}, 400, "invalid_field", "email must be"),
    ("POST", "/users", {"email": "a@c.org", "role": "root"}, 400, "invalid_field",
     "role must be one of: admin, editor, viewer"),
    ("POST", "/users", {"email": "a@c.org", "disabled": "no"}, 400, "invalid_field",
     "disabled must be true or false"),
    ("POST", "/apikeys", {}, 400, "missing_field", "name is required"),
    ("POST", "/apikeys", {"name": "k", "scopes": ["read", "sudo"]}, 400, "invalid_field",
     "scopes[1] must be one of: read, write, admin"),
    ("POST", "/apikeys", {"name": "k", "scopes": "read"}, 400, "invalid_field",
     "scopes must be an array of strings"),
    ("POST", "/apikeys", {"name": "k", "scopes": []}, 400, "invalid_field",
     "scopes must not be empty"),
    ("POST", "/tenants", {"display_name": "x"}, 400, "missing_field", "name is required"),
    ("POST", "/tenants", {"name": "t", "display_name": "x" * 300}, 400, "value_too_long",
     "display_name is longer than 256"),
]


@pytest.mark.parametrize("case", BAD, ids=[f"{c[1]}-{i}" for i, c in enumerate(BAD)])
def test_bad_input(server, case):
    method, path, body, status, code, *words = case
    raw = body if isinstance(body, str) else None
    problem(call(server, method, path, None if raw else body, raw=raw), status, code, *words)
    # nothing was written
    names = [i.get("name") for i in ok(call(server, "GET", path))["items"]]
    assert names == (["default"] if path == "/tenants" else [])
    assert server.alive()


def test_bad_tenant_header(server):
    problem(call(server, "GET", "/users", tenant="No Such/Tenant"), 400, "invalid_parameter",
            "X-MetaSync-Tenant")


# ---- tenant isolation -----------------------------------------------------------------------


def test_tenant_isolation(server):
    ok(call(server, "POST", "/connections", {"name": "db", "adapter": "postgres"}, tenant="a"),
       201)
    ok(call(server, "POST", "/users", {"email": "u@a.org"}, tenant="a"), 201)
    key = ok(call(server, "POST", "/apikeys", {"name": "k"}, tenant="a"), 201)
    for path in ("/connections", "/users", "/apikeys"):
        assert ok(call(server, "GET", path, tenant="b"))["items"] == []
        assert len(ok(call(server, "GET", path, tenant="a"))["items"]) == 1
    problem(call(server, "GET", "/connections/db", tenant="b"), 404, "not_found")
    problem(call(server, "GET", "/users/u@a.org", tenant="b"), 404, "not_found")
    problem(call(server, "GET", f"/apikeys/{key['id']}", tenant="b"), 404, "not_found")
    problem(call(server, "DELETE", f"/apikeys/{key['id']}", tenant="b"), 404, "not_found")
    problem(call(server, "PUT", "/connections/db", {"port": 1}, tenant="b"), 404, "not_found")
    # the same names may exist in both
    ok(call(server, "POST", "/connections", {"name": "db", "adapter": "mysql"}, tenant="b"), 201)
    ok(call(server, "POST", "/users", {"email": "u@a.org"}, tenant="b"), 201)
    assert ok(call(server, "GET", "/connections/db", tenant="a"))["adapter"] == "postgres"
    assert ok(call(server, "GET", "/connections/db", tenant="b"))["adapter"] == "mysql"
    assert ok(call(server, "GET", "/connections"))["items"] == []  # default sees neither


# ---- credentials never leak -----------------------------------------------------------------


def store_bytes(server):
    """Everything the store holds, as bytes: the SQLite files, or a pg_dump of the database."""
    if TEST_STORE == "postgres":
        url = server.extra_args[server.extra_args.index("--store.url") + 1]
        db = url.rsplit("/", 1)[1]
        pg = conftest.pg_cluster()
        r = pg._as_user([pgserver.PG_BIN / "pg_dump", "-h", pg.root, "-p", pg.port,
                         "-U", "postgres", "-d", db])
        assert "CREATE TABLE" in r.stdout and "ctl" in r.stdout
        return r.stdout.encode()
    out = b""
    for f in sorted(server.data_dir.glob("metasync.db*")):
        out += f.read_bytes()
    assert out
    return out


def test_credentials_never_leak(make_server, key_file):
    server = make_server("--secrets.key-file", str(key_file), "--log.level", "debug")
    pw = "pw-" + secrets.token_hex(12)
    user = "user-" + secrets.token_hex(6)
    bodies = []

    def see(r):
        bodies.append(r.text)
        return r

    c = ok(see(call(server, "POST", "/connections", {
        "name": "pg", "adapter": "postgres", "host": "h", "port": 5432,
        "credentials": {"username": user, "password": pw}})), 201)
    assert c["credentials"] == "set" and c["credentials_encrypted"] is True
    see(call(server, "GET", "/connections"))
    see(call(server, "GET", "/connections/pg"))
    see(call(server, "PUT", "/connections/pg", {"credentials": {"username": user, "password": pw},
                                                "host": "h2"}))
    # bad input that carries the password: never echoed
    see(call(server, "POST", "/connections", {"name": "x", "adapter": "postgres",
                                              "credentials": pw}))
    see(call(server, "POST", "/connections", {"name": "x", "adapter": pw,
                                              "credentials": {"password": pw}}))
    see(call(server, "POST", "/connections", {"name": "x", "adapter": "postgres", pw: pw}))
    see(call(server, "PUT", "/connections/pg", raw='{"credentials":{"password":"' + pw + '"'))
    see(call(server, "PUT", "/connections/pg", raw='{"credentials":{"password":' + pw + '}}'))
    see(call(server, "POST", "/connections", {"name": "y", "adapter": "mysql",
                                              "credentials": {"password": pw, "pad": "x" * 9000}}))
    see(call(server, "POST", "/connections", {"name": pw * 10, "adapter": "mysql"}))
    see(call(server, "GET", "/tenants"))
    bodies.append(see(call(server, "GET", "/changes")).text)
    assert json.loads(bodies[-1])["items"] == []  # the control plane writes no change records
    for b in bodies:
        assert pw not in b and user not in b, b
    assert pw.encode() not in store_bytes(server)
    assert user.encode() not in store_bytes(server)
    server.stop()
    log = "".join(server.logs)
    assert "secrets.key_file" not in log  # no "unencrypted" warning with a key
    assert pw not in log and user not in log


def test_unencrypted_without_key(server):
    pw = "pw-" + secrets.token_hex(12)
    c = ok(call(server, "POST", "/connections", {"name": "pg", "adapter": "postgres",
                                                 "credentials": {"password": pw}}), 201)
    assert c["credentials"] == "set" and c["credentials_encrypted"] is False
    assert pw not in json.dumps(ok(call(server, "GET", "/connections")))
    server.stop()
    log = "".join(server.logs)
    assert log.count("credentials are stored unencrypted") == 1
    assert pw not in log


def test_bad_key_file(tmp_path):
    bad = tmp_path / "k"
    bad.write_text("not a key")
    r = run_cli("serve", "--listen", "127.0.0.1:0", "--data-dir", tmp_path / "d",
                "--secrets.key-file", bad, timeout=30)
    assert r.returncode == 2, r.stderr
    assert "secrets.key_file" in r.stderr and "not a key" not in r.stderr


def test_sealed_survives_restart(sealed_server):
    ok(call(sealed_server, "POST", "/connections", {"name": "pg", "adapter": "postgres",
                                                    "credentials": {"password": "p"}}), 201)
    sealed_server.restart()
    c = ok(call(sealed_server, "GET", "/connections/pg"))
    assert c["credentials"] == "set" and c["credentials_encrypted"] is True


# ---- the command line -----------------------------------------------------------------------


def test_cli(server, tmp_path):
    s = ["--server", server.url]
    pw = "pw-" + secrets.token_hex(12)
    cred = tmp_path / "cred.json"
    cred.write_text(json.dumps({"username": "etl", "password": pw}))
    r = run_cli("connection", "create", "pg", "--adapter", "postgres", "--host", "db", "--port",
                "5432", "--options", '{"sslmode":"require"}', "--credentials-file", cred,
                "--tenant", "acme", *s)
    assert r.returncode == 0, r.stderr
    c = json.loads(r.stdout)
    assert c["credentials"] == "set" and c["port"] == 5432 and pw not in r.stdout
    # from stdin
    r = run_cli("connection", "update", "pg", "--port=6432", "--credentials-file", "-",
                "--tenant", "acme", *s, input=json.dumps({"password": pw}))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["port"] == 6432
    r = run_cli("connection", "list", "--tenant", "acme", *s)
    assert [i["name"] for i in json.loads(r.stdout)["items"]] == ["pg"]
    r = run_cli("connection", "create", "x", "--adapter", "db2", *s)
    assert r.returncode == 1 and "adapter must be one of" in r.stderr
    r = run_cli("connection", "get", "nope", *s)
    assert r.returncode == 1 and "not_found" in r.stderr
    r = run_cli("connection", "create", "y", "--adapter", "mysql", "--credentials-file",
                tmp_path / "missing", *s)
    assert r.returncode == 2
    r = run_cli("connection", "delete", "pg", "--tenant", "acme", *s)
    assert r.returncode == 0 and r.stdout == ""

    r = run_cli("apikey", "create", "ci", "--scopes", "read,write", *s)
    assert r.returncode == 0, r.stderr
    key = json.loads(r.stdout)
    assert key["key"].startswith("msk_") and key["scopes"] == ["read", "write"]
    r = run_cli("apikey", "revoke", key["id"], *s)
    assert r.returncode == 0 and json.loads(r.stdout)["revoked"] is True

    r = run_cli("user", "create", "Ada@Example.com", "--role", "admin", "--display-name", "Ada",
                *s)
    assert r.returncode == 0 and json.loads(r.stdout)["email"] == "ada@example.com"
    r = run_cli("user", "update", "ada@example.com", "--disable", *s)
    assert json.loads(r.stdout)["disabled"] is True
    r = run_cli("tenant", "create", "globex", "--display-name", "Globex", *s)
    assert r.returncode == 0, r.stderr
    r = run_cli("tenant", "disable", "globex", *s)
    assert json.loads(r.stdout)["disabled"] is True
    r = run_cli("tenant", "list", *s)
    assert [t["name"] for t in json.loads(r.stdout)["items"]] == ["acme", "default", "globex"]

    for cmd in ("tenant", "apikey", "connection", "user"):
        r = run_cli(cmd, "--help")
        assert r.returncode == 0 and "--tenant" in r.stdout
        assert run_cli(cmd, "frob", *s).returncode == 2
    assert "never taken from the command line" in run_cli("connection", "--help").stdout


# ---- auth.required --------------------------------------------------------------------------


def test_auth_required(make_server):
    server = make_server("--auth.required=true")
    store = [a for i, a in enumerate(server.extra_args)
             if a == "--store.url" or (i and server.extra_args[i - 1] == "--store.url")]
    # the first admin key is made on the store itself
    r = run_cli("apikey", "create", "root", "--scopes", "admin", "--direct", "--data-dir",
                server.data_dir, *store)
    assert r.returncode == 0, r.stderr
    root = json.loads(r.stdout)["key"]

    def req(method, path, key=None, body=None, tenant=None, raw=None):
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = "Bearer " + key
        if tenant:
            headers["X-MetaSync-Tenant"] = tenant
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        return requests.request(method, server.url + path, data=data, headers=headers,
                                timeout=30)

    r = req("GET", "/api/v1/assets")
    problem(r, 401, "unauthorized", "Authorization: Bearer")
    assert r.headers["WWW-Authenticate"] == "Bearer"
    problem(req("GET", "/api/v1/assets", key="msk_nope"), 401, "unauthorized")
    bad = root[:-1] + ("0" if root[-1] != "0" else "1")
    problem(req("GET", "/api/v1/connections", key=bad), 401, "unauthorized")
    assert requests.get(server.url + "/healthz", timeout=10).status_code == 200  # not /api/v1

    # the operator (admin key of `default`) makes keys for tenant acme
    def make_key(name, scopes):
        return ok(req("POST", "/api/v1/apikeys", root, {"name": name, "scopes": scopes},
                      tenant="acme"), 201)

    w = make_key("writer", ["read", "write"])
    ro = make_key("reader", ["read"])
    adm = make_key("admin", ["admin"])
    assert w["tenant"] == "acme"

    # the key's tenant is the request's tenant
    ev = "\n".join(json.dumps(e) for e in [
        {"op": "upsert", "type": "database", "qualified_name": "acme/db"}]) + "\n"
    r = requests.post(server.url + "/api/v1/events", data=ev,
                      headers={"Authorization": "Bearer " + w["key"],
                               "Content-Type": "application/x-ndjson"}, timeout=30)
    assert r.status_code == 200 and r.json()["rejected"] == [], r.text
    assert [a["qualified_name"] for a in ok(req("GET", "/api/v1/assets", ro["key"]))["items"]] \
        == ["acme/db"]
    assert ok(req("GET", "/api/v1/assets", root))["items"] == []  # default sees nothing of acme
    assert ok(req("GET", "/api/v1/changes", ro["key"]))["items"]

    # scopes
    problem(req("POST", "/api/v1/events", ro["key"], raw=ev), 403, "forbidden", "write")
    problem(req("GET", "/api/v1/connections", w["key"]), 403, "forbidden", "admin")
    ok(req("POST", "/api/v1/connections", adm["key"], {"name": "pg", "adapter": "postgres"}), 201)
    assert [c["name"] for c in ok(req("GET", "/api/v1/connections", adm["key"]))["items"]] == ["pg"]
    assert ok(req("GET", "/api/v1/connections", root))["items"] == []
    assert [c["name"] for c in ok(req("GET", "/api/v1/connections", root,
                                      tenant="acme"))["items"]] == ["pg"]
    # a tenant's admin stays in its tenant and cannot manage tenants
    problem(req("GET", "/api/v1/connections", adm["key"], tenant="default"), 403, "forbidden")
    problem(req("GET", "/api/v1/tenants", adm["key"]), 403, "forbidden", "default tenant")
    ok(req("GET", "/api/v1/tenants", root))

    used = ok(req("GET", f"/api/v1/apikeys/{w['id']}", root, tenant="acme"))
    assert used["last_used_at"]

    # revoked and disabled keys stop working
    ok(req("DELETE", f"/api/v1/apikeys/{w['id']}", adm["key"]))
    problem(req("GET", "/api/v1/assets", w["key"]), 401, "unauthorized")
    ok(req("DELETE", "/api/v1/tenants/acme", root))
    problem(req("GET", "/api/v1/assets", ro["key"]), 401, "unauthorized")
    ok(req("PUT", "/api/v1/tenants/acme", root, {"disabled": False}))
    ok(req("GET", "/api/v1/assets", ro["key"]))
    # the CLI sends a key from a file (never argv)
    r = run_cli("connection", "list", "--server", server.url, "--tenant", "acme")
    assert r.returncode == 1 and "unauthorized" in r.stderr
    r = run_cli("connection", "list", "--server", server.url, "--api-key-file", "-",
                input=adm["key"] + "\n")
    assert r.returncode == 0, r.stderr
    assert [c["name"] for c in json.loads(r.stdout)["items"]] == ["pg"]
    server.stop()
    log = "".join(server.logs)
    for k in (root, w["key"], ro["key"], adm["key"]):
        assert k[21:] not in log


def direct_key(server, *args):
    """Runs `apikey create` on the server's store itself (--direct); returns the CLI's result."""
    store = [a for i, a in enumerate(server.extra_args)
             if a == "--store.url" or (i and server.extra_args[i - 1] == "--store.url")]
    return run_cli("apikey", "create", *args, "--direct", "--data-dir", server.data_dir, *store)


def test_auth_required_registry(make_server):
    """With auth.required, /registry needs a key of the default tenant too: read scope for
    GET/HEAD, write for the rest; Bearer or HTTP Basic with the key as password (Confluent's
    basic.auth.user.info). Without auth.required it stays open (test_registry.py)."""
    server = make_server("--auth.required=true")
    r = direct_key(server, "root", "--scopes", "admin")
    assert r.returncode == 0, r.stderr
    root = json.loads(r.stdout)["key"]

    def key(name, scopes, tenant=None):
        return ok(requests.post(server.url + "/api/v1/apikeys",
                                json={"name": name, "scopes": scopes},
                                headers={"Authorization": "Bearer " + root,
                                         **({"X-MetaSync-Tenant": tenant} if tenant else {})},
                                timeout=30), 201)["key"]

    ro, rw, acme = key("ro", ["read"]), key("rw", ["read", "write"]), key("a", ["admin"], "acme")
    ct = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
    body = json.dumps({"schema": json.dumps({"type": "record", "name": "R", "fields": [
        {"name": "a", "type": "string"}]})})
    reg = server.url + "/registry/subjects/s-value/versions"

    problem(requests.get(server.url + "/registry/subjects", timeout=30), 401, "unauthorized")
    problem(requests.post(reg, data=body, headers=ct, timeout=30), 401, "unauthorized")
    problem(requests.get(server.url + "/registry/subjects", auth=("x", "msk_nope"), timeout=30),
            401, "unauthorized")
    problem(requests.post(reg, data=body, headers={**ct, "Authorization": "Bearer " + ro},
                          timeout=30), 403, "forbidden", "write")
    problem(requests.get(server.url + "/registry/subjects", auth=("x", acme), timeout=30), 403,
            "forbidden", "default tenant")
    r = requests.post(reg, data=body, headers={**ct, "Authorization": "Bearer " + rw}, timeout=30)
    assert r.status_code == 200, r.text
    sid = r.json()["id"]
    for auth in (("user", ro), (ro, "")):  # the key as password, or as user name
        r = requests.get(server.url + "/registry/subjects", auth=auth, timeout=30)
        assert r.status_code == 200 and "s-value" in r.json(), r.text
    try:
        from confluent_kafka.schema_registry import SchemaRegistryClient
    except ImportError:
        return
    client = SchemaRegistryClient({"url": server.url + "/registry",
                                   "basic.auth.user.info": "metasync:" + ro})
    assert "s-value" in client.get_subjects()
    assert client.get_schema(sid).schema_str
    server.stop()
    assert ro[21:] not in "".join(server.logs)


def test_tenant_names_checked(make_server, tmp_path):
    """An operator's X-MetaSync-Tenant and `--direct --tenant` must be tenant names (400 /
    exit 2 with a clear message); --direct prints the "stored unencrypted" warning."""
    server = make_server("--auth.required=true")
    r = direct_key(server, "root", "--scopes", "admin", "--tenant", "Bad Name!")
    assert r.returncode == 2 and "invalid_parameter" in r.stderr and "--tenant" in r.stderr, r.stderr
    r = direct_key(server, "root", "--scopes", "admin")
    assert r.returncode == 0, r.stderr
    assert "credentials are stored unencrypted" in r.stderr
    root = json.loads(r.stdout)["key"]
    r = requests.get(server.url + "/api/v1/connections", timeout=30,
                     headers={"Authorization": "Bearer " + root, "X-MetaSync-Tenant": "Bad Name!"})
    problem(r, 400, "invalid_parameter", "X-MetaSync-Tenant")
