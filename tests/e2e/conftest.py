"""Shared fixtures and helpers of the whole-engine tests.

Every test drives the real `metasync` binary (env METASYNC_BIN, default <repo>/build/metasync)
over loopback HTTP: the `server` fixture starts `metasync serve --listen 127.0.0.1:0 --data-dir
<tmp>` with its own data directory, reads the bound port from the log line "http: listening on
http://127.0.0.1:PORT", waits for /readyz, and at teardown stops it with SIGTERM, checking that
it exits 0 and that its stderr holds no sanitizer report (the suite also runs against an
ASan+UBSan build). `make_server` starts servers with extra flags (and can restart one on the same
data directory).

Nothing here sleeps a fixed time to wait for something: `wait_until` polls a condition with a
deadline. Deadlines scale with METASYNC_TEST_TIMEOUT_MULT (default 1), and x3 when
METASYNC_TEST_SANITIZED=1.
"""
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("METASYNC_BIN") or str(REPO / "build" / "metasync")
SANITIZED = os.environ.get("METASYNC_TEST_SANITIZED") == "1"
TIMEOUT_MULT = float(os.environ.get("METASYNC_TEST_TIMEOUT_MULT") or 1) * (3 if SANITIZED else 1)

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "ERROR: ThreadSanitizer")
LISTEN_RE = re.compile(r"http: listening on http://127\.0\.0\.1:(\d+)")

NDJSON = "application/x-ndjson"


def T(seconds):
    """A timeout of `seconds`, scaled for slow (sanitized) builds."""
    return seconds * TIMEOUT_MULT


def wait_until(predicate, timeout=10, interval=0.01, message="condition"):
    """Polls predicate() until it returns a truthy value (returned) or timeout (scaled) passes."""
    deadline = time.monotonic() + T(timeout)
    delay = interval
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {T(timeout):.1f}s waiting for {message}")
        time.sleep(delay)  # a poll interval, not a wait for the condition
        delay = min(delay * 1.5, 0.2)


def child_env(extra=None):
    """The environment of a metasync process: ours without METASYNC_* variables (every one of
    them must name a config key, and METASYNC_BIN does not), except METASYNC_TEST_*."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("METASYNC_") or k.startswith("METASYNC_TEST_")}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    if extra:
        env.update(extra)
    return env


def run_cli(*args, env=None, input=None, timeout=60, cwd=None):
    """Runs `metasync ARGS...` to completion; returns the CompletedProcess (text mode)."""
    r = subprocess.run([BIN, *map(str, args)], env=child_env(env), input=input,
                       capture_output=True, text=True, timeout=T(timeout), cwd=cwd)
    assert_no_sanitizer_report(r.stderr, f"metasync {' '.join(map(str, args))}")
    return r


def assert_no_sanitizer_report(text, who):
    for marker in SANITIZER_MARKERS:
        assert marker not in text, f"{who}: sanitizer report in stderr:\n{text[-6000:]}"


def qn_path(qn):
    """The URL path of an asset: each segment percent-encoded, '/' kept."""
    return "/api/v1/assets/" + urllib.parse.quote(qn, safe="/")


def ndjson(events):
    """NDJSON text of a list of events (dicts are dumped, strings taken as they are)."""
    return "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events)


# ---- METASYNC_TEST_STORE=postgres: every server on a PostgreSQL database of its own ----

TEST_STORE = os.environ.get("METASYNC_TEST_STORE", "sqlite")
_pg = {"cluster": None, "dbs": {}}


def pg_cluster():
    """The session's PostgreSQL cluster (tests/e2e/pgserver.py), started on first use."""
    if _pg["cluster"] is None:
        import pgserver
        _pg["cluster"] = pgserver.PgCluster().start()
    return _pg["cluster"]


def pg_store_args(data_dir, extra_args):
    """With METASYNC_TEST_STORE=postgres and no store.url of the test's own: --store.url of a
    fresh database for data_dir (the same one again when a server restarts on data_dir),
    migrated by `metasync migrate` as the owner; the server connects as the application role."""
    if TEST_STORE != "postgres" or any(str(a).startswith("--store") for a in extra_args):
        return []
    key = str(Path(data_dir).resolve())
    if key not in _pg["dbs"]:
        name = f"t{len(_pg['dbs'])}_{os.getpid()}"
        _pg["dbs"][key] = pg_cluster().new_database(name, migrate_with=BIN)[1]
    return ["--store.url", _pg["dbs"][key]]


@pytest.fixture(scope="session", autouse=True)
def _pg_session():
    """Stops the session's PostgreSQL cluster, if one was started."""
    yield
    if _pg["cluster"] is not None:
        _pg["cluster"].stop()


def pytest_collection_modifyitems(config, items):
    """Against PostgreSQL, tests marked sqlite_only (they read SQLite files) are skipped."""
    if TEST_STORE == "postgres":
        skip = pytest.mark.skip(reason="sqlite_only: METASYNC_TEST_STORE=postgres")
        for item in items:
            if "sqlite_only" in item.keywords:
                item.add_marker(skip)


class Server:
    """One `metasync serve` process with its own data directory."""

    def __init__(self, data_dir, extra_args=(), log_path=None):
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args)
        self.extra_args += pg_store_args(self.data_dir, self.extra_args)
        self._log_base = Path(log_path or (self.data_dir.parent / f"{self.data_dir.name}-stderr"))
        self.log_path = None
        self.proc = None
        self.port = None
        self.http = requests.Session()
        self.starts = 0
        self.logs = []  # stderr of earlier runs (restarts)

    # ---- life cycle ----

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.starts += 1
        self.log_path = self._log_base.parent / f"{self._log_base.name}.{self.starts}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir),
             *self.extra_args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
            env=child_env())

        def bound():
            m = LISTEN_RE.search(self.stderr())
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"metasync serve exited with {self.proc.returncode} before listening:\n"
                    f"{self.stderr()}")
            return None

        self.port = wait_until(bound, 20, message="the 'http: listening on' log line")
        self.http = requests.Session()

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"metasync serve exited with {self.proc.returncode}:\n"
                                     f"{self.stderr()}")
            try:
                return self.http.get(self.url + "/readyz", timeout=T(2)).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(ready, 20, message="/readyz")
        return self

    def stderr(self):
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except FileNotFoundError:
            return ""

    def stop(self, check=True):
        """SIGTERM, wait, and (check) assert a clean exit 0 without sanitizer reports."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=T(30))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "timeout"
        self._log.close()
        self.http.close()
        text = self.stderr()
        self.logs.append(text)
        self.proc = None
        if check:
            assert rc == 0, f"metasync serve exited with {rc} after SIGTERM:\n{text[-6000:]}"
            assert_no_sanitizer_report(text, "metasync serve")
        return rc

    def kill9(self):
        """SIGKILL: a crash. Nothing is flushed."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=T(10))
        self._log.close()
        self.http.close()
        self.logs.append(self.stderr())
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # ---- HTTP helpers ----

    def get(self, path, params=None, **kw):
        kw.setdefault("timeout", T(30))
        return self.http.get(self.url + path, params=params, **kw)

    def post(self, path, data=None, content_type=None, **kw):
        kw.setdefault("timeout", T(60))
        headers = kw.pop("headers", {})
        if content_type is not None:
            headers["Content-Type"] = content_type
        if isinstance(data, str):
            data = data.encode()
        return self.http.post(self.url + path, data=data, headers=headers, **kw)

    def post_events(self, events, content_type=NDJSON, expect=200):
        """POSTs events (a list → NDJSON, or raw str/bytes) and returns the JSON answer."""
        body = ndjson(events) if isinstance(events, list) else events
        r = self.post("/api/v1/events", body, content_type)
        if expect is not None:
            assert r.status_code == expect, f"POST /api/v1/events: {r.status_code} {r.text}"
        return r.json()

    def ingest_ok(self, events):
        """POSTs events that must all be accepted (none rejected); returns the answer."""
        ans = self.post_events(events)
        assert ans["rejected"] == [], ans
        return ans

    def asset(self, qn, expect=200, **params):
        r = self.get(qn_path(qn), params=params or None)
        assert r.status_code == expect, f"GET {qn}: {r.status_code} {r.text}"
        return r.json()

    def asset_status(self, qn):
        return self.get(qn_path(qn)).status_code

    def history(self, qn):
        r = self.get(qn_path(qn) + "/history")
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def changes(self, after=0, limit=1000, **params):
        r = self.get("/api/v1/changes", params={"after": after, "limit": limit, **params})
        assert r.status_code == 200, r.text
        return r.json()

    def all_changes(self, after=0):
        """Every change record after `after`, following pages."""
        out = []
        while True:
            page = self.changes(after=after)
            out.extend(page["items"])
            if not page["items"]:
                return out
            after = page["next_after"]

    def list_all(self, **params):
        """Every asset of a list query, following next_cursor."""
        out, cursor = [], None
        while True:
            p = dict(params)
            p.setdefault("limit", 1000)
            if cursor:
                p["cursor"] = cursor
            r = self.get("/api/v1/assets", params=p)
            assert r.status_code == 200, r.text
            page = r.json()
            out.extend(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                return out

    def last_seq(self):
        return self.changes(after=0, limit=1)["last_seq"]

    def metrics(self):
        r = self.get("/metrics")
        assert r.status_code == 200
        return r.text

    def assert_healthy(self):
        """The server still serves: /healthz answers and a valid event is accepted."""
        assert self.alive(), f"metasync serve died:\n{self.stderr()[-4000:]}"
        r = self.get("/healthz")
        assert r.status_code == 200 and r.json() == {"status": "ok"}, r.text
        probe = {"op": "upsert", "type": "connection",
                 "qualified_name": f"healthprobe-{time.monotonic_ns()}"}
        ans = self.post_events([probe])
        assert ans["accepted"] == 1 and ans["rejected"] == [], ans


@pytest.fixture
def make_server(tmp_path):
    """Factory: make_server(*extra_args, data_dir=None, start=True) → Server. Every server it
    made is stopped (and checked) at teardown."""
    made = []

    def make(*extra_args, data_dir=None, start=True):
        d = Path(data_dir) if data_dir else tmp_path / f"data{len(made)}"
        s = Server(d, extra_args, log_path=tmp_path / f"server{len(made)}")
        made.append(s)
        if start:
            s.start()
        return s

    yield make
    errors = []
    for s in made:
        try:
            s.stop(check=True)
        except AssertionError as e:  # check every server, report the first problem
            errors.append(str(e))
    if errors:
        pytest.fail(errors[0])


@pytest.fixture
def server(make_server):
    """A fresh server with default settings."""
    return make_server()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- snapshot files ----

SNAPSHOT_NAME = re.compile(r"^(\d+)-(\d+)\.ndjson$")


def snapshot_files(data_dir, tenant="default"):
    """The snapshot objects of a tenant: data_dir/snapshots/<tenant>/yyyy/mm/dd/hh/F-L.ndjson."""
    root = Path(data_dir) / "snapshots" / tenant
    return sorted(root.glob("*/*/*/*/*.ndjson")) if root.is_dir() else []


def read_snapshots(data_dir, tenant="default"):
    """{seq: record} of every record in every snapshot file, checking each file on the way (its
    name says the seqs it holds, its hour directory is its first record's commit hour, a record
    written twice is identical), and the number of files."""
    records = {}
    files = snapshot_files(data_dir, tenant)
    for f in files:
        m = SNAPSHOT_NAME.match(f.name)
        assert m, f"unexpected snapshot file name {f}"
        first, last = int(m.group(1)), int(m.group(2))
        recs = [json.loads(line) for line in f.read_text().splitlines()]
        seqs = [r["seq"] for r in recs]
        assert seqs == list(range(first, last + 1)), f"{f}: seqs {seqs[:5]}... not {first}-{last}"
        hour = "/".join(f.parts[-5:-1])
        assert recs[0]["ts"][:13].replace("-", "/").replace("T", "/") == hour, (f, recs[0]["ts"])
        for r in recs:
            assert r["tenant"] == tenant
            if r["seq"] in records:  # an object written again must say the same
                assert records[r["seq"]] == r, f"seq {r['seq']} differs between files"
            records[r["seq"]] = r
    return records, len(files)


def problem(r, status, code):
    """Asserts r is an RFC 7807 problem+json answer with this status and code; returns it."""
    assert r.status_code == status, f"expected {status} {code}, got {r.status_code}: {r.text}"
    assert r.headers.get("Content-Type", "").startswith("application/problem+json"), r.headers
    p = r.json()
    assert p["status"] == status and p["code"] == code, p
    assert p.get("detail"), p
    assert p.get("type", "").endswith("/" + code), p
    return p
