"""A throwaway PostgreSQL 15 cluster for the tests (the PostgreSQL store and its benchmark).

PostgreSQL refuses to run as root, so the cluster runs as the unprivileged user `metasync_test`
(created without a login shell when missing) in a temporary directory: initdb, then pg_ctl
with a unix socket in that directory and a loopback TCP port, readiness by pg_isready (never a
fixed sleep). Two roles: `metasync_owner` owns every database and runs the migrations,
`metasync_app` is what the store connects as — not an owner, so row-level security applies.
Authentication is `trust` on the socket and loopback only.

    with PgCluster() as pg:
        url_owner, url_app = pg.new_database("t1")

Also a command line for shell scripts (scripts/test.sh, bench/run.sh): `pgserver.py start DIR`
prints the port; `pgserver.py database DIR NAME [METASYNC_BIN]` creates (and with the binary,
migrates) a database and prints the application role's URL, then the owner's; `pgserver.py
stop DIR`.
"""
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PG_BIN = Path(os.environ.get("MS_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
USER = "metasync_test"
OWNER = "metasync_owner"
APP = "metasync_app"


def available():
    return (PG_BIN / "initdb").exists()


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _ensure_user():
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        USER], check=True)
        return pwd.getpwnam(USER)


class PgCluster:
    def __init__(self, root=None, port=None):
        self.root = Path(root) if root else None
        self.port = port
        self.started = False
        self._made_root = False

    # ---- running commands as the cluster's user ----

    def _as_user(self, args, **kw):
        if os.getuid() == 0:
            pw = _ensure_user()
            kw.setdefault("user", pw.pw_uid)
            kw.setdefault("group", pw.pw_gid)
            kw.setdefault("extra_groups", [])
        kw.setdefault("check", True)
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("cwd", str(self.root))
        return subprocess.run([str(a) for a in args], **kw)

    def psql(self, sql, db="postgres", user=None, check=True):
        """Runs sql through psql on the unix socket; returns the CompletedProcess."""
        return self._as_user([PG_BIN / "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                              "-h", self.root, "-p", self.port, "-U", user or "postgres",
                              "-d", db, "-c", sql], check=check)

    # ---- life cycle ----

    def start(self):
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="metasync-pg-"))
            self._made_root = True
        self.root.mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0:
            pw = _ensure_user()
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.port = self.port or _free_port()
        data = self.root / "data"
        if not (data / "PG_VERSION").exists():
            self._as_user([PG_BIN / "initdb", "-D", data, "-U", "postgres", "--auth=trust",
                           "-E", "UTF8", "--locale=C.UTF-8"])
        self._as_user([PG_BIN / "pg_ctl", "-D", data, "-l", self.root / "server.log", "-w",
                       "-o", f"-k {self.root} -p {self.port} -c listen_addresses=127.0.0.1"
                             " -c fsync=off -c max_connections=400 -c shared_buffers=256MB",
                       "start"])
        deadline = time.monotonic() + 60
        while self._as_user([PG_BIN / "pg_isready", "-q", "-h", self.root, "-p", self.port],
                            check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not become ready:\n" + self.log())
            time.sleep(0.05)  # a poll interval of the readiness check
        self.started = True
        self.psql(f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{OWNER}')"
                  f" THEN CREATE ROLE {OWNER} LOGIN; END IF; IF NOT EXISTS (SELECT 1 FROM pg_roles"
                  f" WHERE rolname = '{APP}') THEN CREATE ROLE {APP} LOGIN; END IF; END $$")
        return self

    def log(self):
        try:
            return (self.root / "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.started:
            self._as_user([PG_BIN / "pg_ctl", "-D", self.root / "data", "-m", "immediate", "-w",
                           "stop"], check=False)
            self.started = False
        if self._made_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- databases ----

    def url(self, db, user=APP):
        return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"

    def new_database(self, name, migrate_with=None):
        """Creates database `name` owned by metasync_owner; when migrate_with is the metasync
        binary, runs `metasync migrate` as the owner granting metasync_app. Returns (owner URL,
        app URL)."""
        self.psql(f'CREATE DATABASE "{name}" OWNER {OWNER}')
        self.psql(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT ALL ON SCHEMA public TO {OWNER};"
                  f" GRANT USAGE ON SCHEMA public TO {APP}", db=name)
        owner, app = self.url(name, OWNER), self.url(name, APP)
        if migrate_with:
            env = {k: v for k, v in os.environ.items() if not k.startswith("METASYNC_")}
            r = subprocess.run([migrate_with, "migrate", "--store.url", owner, "--app-role", APP],
                               capture_output=True, text=True, env=env)
            if r.returncode != 0:
                raise RuntimeError(f"metasync migrate failed: {r.stdout}{r.stderr}")
        return owner, app


def _main(argv):
    usage = "usage: pgserver.py start DIR | database DIR NAME [METASYNC_BIN] | stop DIR"
    if len(argv) < 3 or argv[1] not in ("start", "database", "stop"):
        sys.exit(usage)
    root = Path(argv[2])
    if argv[1] == "start":
        c = PgCluster(root).start()
        (root / "port").write_text(str(c.port))
        print(c.port)
        return
    c = PgCluster(root, int((root / "port").read_text()))
    c.started = True
    if argv[1] == "stop":
        c.stop()
    elif len(argv) in (4, 5):
        owner, app = c.new_database(argv[3], migrate_with=argv[4] if len(argv) == 5 else None)
        print(app)
        print(owner)
    else:
        sys.exit(usage)


if __name__ == "__main__":
    _main(sys.argv)
