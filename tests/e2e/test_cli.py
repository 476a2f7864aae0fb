"""The `metasync` command line against a real server: --help of the binary and of every
subcommand, `version`, usage errors (exit 2); `ingest FILE|-` (summary, exit 1 naming the input
line of a rejected event, also across batches and after blank lines; --server or
METASYNC_SERVER); `get QN` (pretty, --raw, not found → 1); `changes --after/--limit`; `demo`
(the sample estate: tables, columns, dashboards, lineage, PII tags; a second run only finds
duplicates; `--print` is valid NDJSON); `config --check` with bad or unknown METASYNC_*
variables (exit 2 naming the key); `serve` on a busy port (non-zero exit, clear message).
"""
import json
import re
import signal
import socket
import subprocess

import pytest

from conftest import BIN, T, child_env, free_port, ndjson, run_cli, wait_until

SUBCOMMANDS = ("serve", "ingest", "get", "changes", "demo", "config")


def conn(qn, **kw):
    return {"op": "upsert", "type": "connection", "qualified_name": qn, **kw}


def summary(out):
    """The `key: value` lines of the ingest summary."""
    d = {}
    for line in out.splitlines():
        m = re.match(r"^([a-z_/ ]+):\s+(\S+)", line)
        if m:
            d[m.group(1).strip()] = m.group(2)
    return d


def test_help_and_version():
    r = run_cli("--help")
    assert r.returncode == 0 and "Usage: metasync COMMAND" in r.stdout
    for cmd in SUBCOMMANDS:
        assert cmd in r.stdout
    for cmd in SUBCOMMANDS:
        r = run_cli(cmd, "--help")
        assert r.returncode == 0, (cmd, r.stderr)
        assert r.stdout.startswith(f"Usage: metasync {cmd}"), (cmd, r.stdout[:200])
        assert "Exit codes" in r.stdout, cmd
        r = run_cli(cmd, "-h")
        assert r.returncode == 0, cmd
    r = run_cli("version")
    assert r.returncode == 0 and re.fullmatch(r"metasync \d+\.\d+\.\d+\n", r.stdout), r.stdout
    assert run_cli("--version").stdout == r.stdout


def test_usage_errors_exit_2():
    r = run_cli()
    assert r.returncode == 2 and "Usage" in r.stderr
    r = run_cli("frobnicate")
    assert r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr
    r = run_cli("get")
    assert r.returncode == 2 and "QUALIFIED_NAME" in r.stderr
    r = run_cli("ingest")
    assert r.returncode == 2 and "FILE" in r.stderr
    r = run_cli("ingest", "/nonexistent/file.ndjson")
    assert r.returncode == 2 and "/nonexistent/file.ndjson" in r.stderr
    r = run_cli("changes", "--limit", "0")
    assert r.returncode == 2 and "--limit" in r.stderr
    r = run_cli("serve", "--frob")
    assert r.returncode == 2 and "--frob" in r.stderr


def test_ingest_file_reports_the_bad_input_line(server, tmp_path):
    lines = [json.dumps(conn("c1")), "", json.dumps(conn("c2")), "   ",
             '{"op":"upsert","type":"connection" "qualified_name":"c3"}',  # line 5
             json.dumps(conn("c4")),
             json.dumps({"op": "upsert", "type": "nope", "qualified_name": "c5"}),  # line 7
             json.dumps(conn("c6"))]
    f = tmp_path / "events.ndjson"
    f.write_text("\n".join(lines) + "\n")
    r = run_cli("ingest", "--server", server.url, f)
    assert r.returncode == 1, r.stdout + r.stderr
    s = summary(r.stdout)
    assert s["events sent"] == "6" and s["accepted"] == "4" and s["rejected"] == "2", r.stdout
    assert "line 5: malformed_json:" in r.stdout, r.stdout
    assert "line 7: unknown_type:" in r.stdout, r.stdout
    assert s["last_seq"] == "4"
    assert server.asset("c6")["version"] == 1 and server.asset_status("c3") == 404

    # Small batches (the bad lines land in later requests) and METASYNC_SERVER.
    f2 = tmp_path / "more.ndjson"
    evs = [json.dumps(conn(f"m{i}")) for i in range(10)]
    evs[6] = json.dumps({"op": "tag", "qualified_name": "m-missing", "tag": "X"})  # line 7
    evs[8] = "not json"                                                          # line 9
    f2.write_text("\n".join(evs) + "\n")
    r = run_cli("ingest", "--batch", "3", "--parallel", "1", f2,
                env={"METASYNC_SERVER": server.url})
    assert r.returncode == 1, r.stdout + r.stderr
    s = summary(r.stdout)
    assert (s["accepted"], s["rejected"]) == ("8", "2"), r.stdout
    assert "line 7: not_found:" in r.stdout and "line 9: malformed_json:" in r.stdout, r.stdout
    assert "in 4 requests)" in r.stdout, r.stdout


def test_ingest_splits_batches_the_server_finds_too_large(make_server, tmp_path):
    server = make_server("--http.max-body-bytes", "64k")
    lines = [json.dumps(conn(f"x{i}", attributes={"pad": "p" * 500})) for i in range(400)]
    lines[250] = json.dumps({"op": "upsert", "type": "nope", "qualified_name": "x250"})
    lines[300] = json.dumps(conn("huge", attributes={"pad": "h" * 5000}))  # over --batch-bytes
    f = tmp_path / "big.ndjson"
    f.write_text("\n".join(lines) + "\n")
    r = run_cli("ingest", "--server", server.url, "--batch-bytes", "4096000",
                "--parallel", "3", f, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    s = summary(r.stdout)
    assert (s["accepted"], s["rejected"]) == ("399", "1"), r.stdout
    assert "413" in r.stderr, r.stderr
    assert "line 251: unknown_type:" in r.stdout, r.stdout
    assert server.asset("huge")["attributes"]["pad"] == "h" * 5000
    assert len(server.list_all(q="x399")) == 1 and server.asset_status("x250") == 404
    # A line longer than --batch-bytes is refused locally, with its line number.
    r = run_cli("ingest", "--server", server.url, "--batch-bytes", "2048", f, timeout=120)
    assert r.returncode == 1
    assert "line 301: event_too_large:" in r.stdout and "line 251: unknown_type" in r.stdout, \
        r.stdout
    assert summary(r.stdout)["duplicates"] == "0"  # no ids: re-applied as unchanged


def test_ingest_stdin_all_good_and_again_duplicates(server):
    body = ndjson([conn(f"s{i}", id=f"cli-{i}") for i in range(50)])
    r = run_cli("ingest", "--server", server.url, "-", input=body)
    assert r.returncode == 0, r.stdout + r.stderr
    s = summary(r.stdout)
    assert (s["events sent"], s["accepted"], s["duplicates"], s["rejected"]) == (
        "50", "50", "0", "0"), r.stdout
    assert s["last_seq"] == "50"
    r = run_cli("ingest", "--server", server.url, "-", input=body)
    assert r.returncode == 0
    s = summary(r.stdout)
    assert (s["accepted"], s["duplicates"], s["last_seq"]) == ("0", "50", "50"), r.stdout
    assert server.last_seq() == 50


def test_get(server):
    server.ingest_ok([conn("pg"), {"op": "upsert", "type": "database",
                                   "qualified_name": "pg/my db", "attributes": {"a": [1, 2]}}])
    r = run_cli("get", "--server", server.url, "pg/my db")
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)
    assert a["qualified_name"] == "pg/my db" and a["attributes"] == {"a": [1, 2]}
    assert "\n  " in r.stdout  # pretty-printed
    r = run_cli("get", "--raw", "pg", env={"METASYNC_SERVER": server.url})
    assert r.returncode == 0 and r.stdout.count("\n") == 1
    assert json.loads(r.stdout) == server.asset("pg")
    r = run_cli("get", "--server", server.url, "pg/nothing")
    assert r.returncode == 1 and "pg/nothing" in r.stderr and r.stdout == ""
    # Special characters in a segment are percent-encoded by the command.
    weird = "we ird/a%20b#c?d&e=f/ünï+x"
    server.ingest_ok([conn(weird)])
    r = run_cli("get", "--server", server.url, weird)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["qualified_name"] == weird


def test_changes(server):
    server.ingest_ok([conn(f"c{i}") for i in range(8)])
    r = run_cli("changes", "--server", server.url, "--after", "0", "--limit", "5")
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [c["seq"] for c in recs] == [1, 2, 3, 4, 5]
    assert recs[0]["op"] == "create" and recs[0]["qualified_name"] == "c0"
    assert recs == server.changes(after=0, limit=5)["items"]
    r = run_cli("changes", "--server", server.url, "--after", "6")
    assert [json.loads(x)["seq"] for x in r.stdout.splitlines()] == [7, 8]
    r = run_cli("changes", "--server", server.url, "--after", "8")
    assert r.returncode == 0 and r.stdout == ""


def test_changes_follow_prints_new_changes_and_stops_on_sigterm(server):
    server.ingest_ok([conn("c0")])
    p = subprocess.Popen([BIN, "changes", "--server", server.url, "--follow", "--wait", "5"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=child_env())
    try:
        assert json.loads(p.stdout.readline())["seq"] == 1
        server.ingest_ok([conn("c1")])
        assert json.loads(p.stdout.readline())["qualified_name"] == "c1"
        p.terminate()
        assert p.wait(timeout=T(20)) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_changes_limit_and_wait_over_the_server_caps_are_usage_errors(server):
    """docs/api.md (metasync changes): --limit 1..1000 and --wait 1..changes.max_wait_seconds,
    the server's caps; more is refused before any request (exit 2) with a message saying so."""
    server.ingest_ok([conn(f"c{i}") for i in range(3)])
    r = run_cli("changes", "--server", server.url, "--limit", "1000")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3
    for arg, value, cap in [("--limit", "1001", "1000"), ("--wait", "61", "60")]:
        r = run_cli("changes", "--server", server.url, "--follow", arg, value)
        assert r.returncode == 2, (arg, r.stderr)
        assert arg in r.stderr and cap in r.stderr and "at most" in r.stderr, r.stderr
    r = run_cli("changes", "--server", server.url, "--changes.max-wait-seconds", "120",
                "--wait", "90", "--after", "3")
    assert r.returncode == 0, r.stderr


def test_demo_loads_the_sample_estate_once(server):
    r = run_cli("demo", "--server", server.url, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 rejected" in r.stdout, r.stdout
    m = re.search(r"(\d+) accepted, (\d+) duplicates, 0 rejected \(last_seq (\d+)\)", r.stdout)
    assert m and int(m.group(1)) > 700 and m.group(2) == "0", r.stdout
    last = server.last_seq()
    assert int(m.group(3)) == last

    tables = server.list_all(type="table")
    columns = server.list_all(type="column")
    dashboards = server.list_all(type="dashboard")
    assert len(tables) >= 50 and len(columns) >= 600 and len(dashboards) == 2
    assert len(server.list_all(type="view")) >= 1 and server.list_all(type="bi_field")
    pii = server.list_all(tag="PII")
    assert len(pii) >= 10 and {a["type"] for a in pii} <= {"column", "bi_field"}
    assert server.list_all(orphan="true") == []
    email = server.asset("warehouse/sales/raw/customers/email")
    assert "PII" in [t["name"] for t in email["tags"]]
    lin = server.get("/api/v1/assets/warehouse/analytics/mart/customer_360/lineage",
                     params={"direction": "upstream", "depth": 5}).json()
    assert lin["nodes"] and lin["edges"]
    lin = server.get("/api/v1/assets/warehouse/sales/raw/orders/lineage",
                     params={"direction": "downstream", "depth": 5}).json()
    assert lin["nodes"]
    assert server.list_all(q="customer")

    r = run_cli("demo", "--server", server.url, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    m2 = re.search(r"(\d+) accepted, (\d+) duplicates, 0 rejected", r.stdout)
    assert m2.group(1) == "0" and int(m2.group(2)) == int(m.group(1)), r.stdout
    assert "idempotent" in r.stdout
    assert server.last_seq() == last


def test_demo_print_is_valid_ndjson(tmp_path, server):
    r = run_cli("demo", "--print")
    assert r.returncode == 0
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(events) > 700
    ids = [e["id"] for e in events]
    assert len(set(ids)) == len(ids) and ids[0] == "demo-1"
    # What `ingest` makes of it is what `demo` makes of it.
    f = tmp_path / "demo.ndjson"
    f.write_text(r.stdout)
    r = run_cli("ingest", "--server", server.url, "--parallel", "1", f, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert summary(r.stdout)["accepted"] == str(len(events))
    r = run_cli("demo", "--server", server.url, timeout=120)
    assert r.returncode == 0 and f"0 accepted, {len(events)} duplicates" in r.stdout, r.stdout


def test_config_check():
    r = run_cli("config", "--check")
    assert r.returncode == 0 and "configuration ok" in r.stdout
    r = run_cli("config", "--check", env={"METASYNC_LISTEN": "nonsense"})
    assert r.returncode == 2
    assert "listen" in r.stderr and "METASYNC_LISTEN" in r.stderr and "nonsense" in r.stderr
    r = run_cli("config", "--check", env={"METASYNC_FOO": "1"})
    assert r.returncode == 2 and "METASYNC_FOO" in r.stderr
    r = run_cli("config", "--check", env={"METASYNC_HTTP_MAX_BODY_BYTES": "lots"})
    assert r.returncode == 2 and "http.max_body_bytes" in r.stderr
    r = run_cli("config", "--check", "--listen", "127.0.0.1:99999")
    assert r.returncode == 2 and "listen" in r.stderr
    r = run_cli("config", "--check", env={"METASYNC_LOG_LEVEL": "debug",
                                          "METASYNC_TEST_ANYTHING": "x"})
    assert r.returncode == 0
    # Every command checks the environment the same way.
    r = run_cli("get", "x", env={"METASYNC_FOO": "1"})
    assert r.returncode == 2 and "METASYNC_FOO" in r.stderr
    r = run_cli("serve", env={"METASYNC_LISTEN": "nonsense"})
    assert r.returncode == 2 and "METASYNC_LISTEN" in r.stderr


def test_serve_on_a_busy_port_fails_clearly(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        r = run_cli("serve", "--listen", f"127.0.0.1:{port}", "--data-dir", tmp_path / "d",
                    timeout=30)
        assert r.returncode == 4, r.stderr  # docs/api.md: 4 when it cannot start
        assert f"127.0.0.1:{port}" in r.stderr and "in use" in r.stderr, r.stderr
    finally:
        s.close()


def test_serve_on_the_port_of_another_metasync_fails(server, tmp_path):
    log = tmp_path / "second.stderr"
    with open(log, "wb") as err:
        p = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{server.port}",
                              "--data-dir", str(tmp_path / "second")],
                             stdout=subprocess.DEVNULL, stderr=err, env=child_env())
    try:
        wait_until(lambda: p.poll() is not None or "http: listening" in log.read_text(), 20,
                   message="the second server to exit or listen")
        assert p.poll() is not None and p.returncode != 0, \
            f"a second server started on a busy port:\n{log.read_text()}"
        assert "in use" in log.read_text()
    finally:
        if p.poll() is None:
            p.terminate()
            p.wait(timeout=T(30))


@pytest.mark.slow
def test_client_commands_exit_3_when_the_server_is_unreachable():
    url = f"http://127.0.0.1:{free_port()}"
    r = run_cli("get", "--server", url, "x", timeout=60)
    assert r.returncode == 3, r.stderr
    assert "127.0.0.1" in r.stderr


def test_serve_stops_cleanly_on_sigint(make_server):
    server = make_server()
    server.ingest_ok([conn("x")])
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=T(30)) == 0
    wait_until(lambda: "SIGINT received" in server.stderr(), 5, message="the SIGINT log line")
    server.stop()
    server.start()
    assert server.asset("x")["version"] == 1


def test_serve_stops_cleanly_on_sigterm_and_keeps_data(make_server):
    server = make_server()
    server.ingest_ok([conn("kept", attributes={"x": 1})])
    assert "metasync" in server.stderr() and "ready" in server.stderr()
    server.restart()
    assert "SIGTERM received" in server.logs[-1]
    assert server.asset("kept")["attributes"] == {"x": 1}
    wait_until(lambda: server.get("/readyz").status_code == 200, 5, message="/readyz")


def test_serve_reads_a_yaml_config_file(make_server, tmp_path):
    cfg = tmp_path / "metasync.yaml"
    cfg.write_text("http:\n  max_body_bytes: 64k\nsnapshots:\n  max_object_age_ms: 100\n"
                   "log:\n  level: debug\n")
    server = make_server("--config", str(cfg))
    big = ndjson([conn(f"c{i}", attributes={"pad": "x" * 1000}) for i in range(80)])
    r = server.post("/api/v1/events", big, "application/x-ndjson")
    assert r.status_code == 413 and "65536" in r.json()["detail"]
    server.ingest_ok([conn("small")])
    wait_until(lambda: "snapshots: stored" in server.stderr(), 10,
               message="a snapshot object stored (debug log)")
    bad = tmp_path / "bad.yaml"
    bad.write_text("http:\n  max_body_bytes: 1M\nbogus: 1\n")
    r = run_cli("config", "--check", "--config", bad)
    assert r.returncode == 2 and "bogus" in r.stderr and "line 3" in r.stderr, r.stderr
    r = run_cli("serve", "--config", tmp_path / "missing.yaml")
    assert r.returncode == 2 and "missing.yaml" in r.stderr


def test_serve_with_an_unusable_data_dir_exits_4(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    r = run_cli("serve", "--listen", "127.0.0.1:0", "--data-dir", blocker / "data", timeout=30)
    assert r.returncode == 4, r.stderr
    assert "store_error" in r.stderr and str(blocker) in r.stderr
