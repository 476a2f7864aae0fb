"""The snapshot sink: change records reach NDJSON files under
data_dir/snapshots/<tenant>/<yyyy>/<mm>/<dd>/<hh>/<first>-<last>.ndjson. With a small
snapshots.max_object_age_ms the files appear on their own; the union of the files (deduped by
seq) covers seq 1..N exactly, each record identical to the change feed's (with before/after),
each file's name matching the seqs it holds. Objects also roll by size, the buffer is flushed on
a clean shutdown, a restart writes nothing twice, and snapshots.enabled=false writes nothing.
The sink's thread runs at sinks.nice.
"""
from pathlib import Path

from conftest import read_snapshots, run_cli, snapshot_files, wait_until


def covers(data_dir, last):
    records, _ = read_snapshots(data_dir)
    return set(records) >= set(range(1, last + 1))


def traffic(server, rounds=4):
    """Mixed ops over a few batches; returns the last seq."""
    server.ingest_ok([{"op": "upsert", "type": "connection", "qualified_name": "pg"},
                      {"op": "upsert", "type": "database", "qualified_name": "pg/db"},
                      {"op": "upsert", "type": "schema", "qualified_name": "pg/db/s"}])
    for r in range(rounds):
        t = f"pg/db/s/t{r}"
        server.ingest_ok([{"op": "upsert", "type": "table", "qualified_name": t,
                           "attributes": {"description": f"table {r}"}, "id": f"snap-{r}"}] +
                         [{"op": "upsert", "type": "column", "qualified_name": f"{t}/c{i}",
                           "attributes": {"data_type": "int"}} for i in range(5)] +
                         [{"op": "patch", "qualified_name": t, "attributes": {"rows": r}},
                          {"op": "tag", "qualified_name": f"{t}/c0", "tag": "PII"},
                          {"op": "link", "from": "pg/db/s/t0", "to": t if r else "pg/x"}])
    server.ingest_ok([{"op": "delete", "qualified_name": f"pg/db/s/t{rounds - 1}"}])
    return server.last_seq()


def test_snapshot_files_cover_every_change(make_server):
    server = make_server("--snapshots.max-object-age-ms", "200")
    last = traffic(server)
    assert last > 40
    wait_until(lambda: covers(server.data_dir, last), 20,
               message=f"snapshot files covering seq 1..{last}")
    records, nfiles = read_snapshots(server.data_dir)
    assert sorted(records) == list(range(1, last + 1)), "records beyond the change log"
    assert nfiles >= 1
    feed = {c["seq"]: c for c in server.all_changes()}
    assert records == feed
    ops = {r["op"] for r in records.values()}
    assert ops == {"create", "update", "tag", "link", "delete"}
    for r in records.values():
        assert "before" in r and "after" in r and "changed" in r
        if r["op"] == "create":
            assert r["before"] is None and r["after"]["qualified_name"] == r["qualified_name"]
        if r["op"] in ("update", "tag"):
            assert r["before"]["version"] + 1 == r["after"]["version"] == r["version"]
        if r["op"] == "delete":
            assert r["after"] is None and r["before"]["deleted"] is False
    # More changes later go to new objects.
    server.ingest_ok([{"op": "patch", "qualified_name": "pg", "attributes": {"late": True}}])
    wait_until(lambda: covers(server.data_dir, last + 1), 20, message="the late change")
    records, _ = read_snapshots(server.data_dir)
    assert records[last + 1]["after"]["attributes"] == {"late": True}
    assert max(records) == last + 1


def test_snapshots_roll_by_size(make_server):
    server = make_server("--snapshots.max-object-bytes", "4k",
                         "--snapshots.max-object-age-ms", "200")
    last = traffic(server, rounds=6)
    wait_until(lambda: covers(server.data_dir, last), 20,
               message=f"snapshot files covering seq 1..{last}")
    records, nfiles = read_snapshots(server.data_dir)
    assert sorted(records) == list(range(1, last + 1))
    assert nfiles >= 5, f"only {nfiles} objects for {last} records with 4 KiB objects"
    for f in snapshot_files(server.data_dir):
        lines = f.read_bytes().splitlines(keepends=True)
        # Closed once it reached the size: everything but its last record fits under it.
        assert sum(map(len, lines[:-1])) < 4096, f"{f} is {f.stat().st_size} bytes"


def test_buffer_is_flushed_on_clean_shutdown_and_not_rewritten(make_server):
    server = make_server()  # default max_object_age_ms: 60 s, nothing written yet
    last = traffic(server, rounds=2)
    assert snapshot_files(server.data_dir) == []
    server.stop()
    records, nfiles = read_snapshots(server.data_dir)
    assert sorted(records) == list(range(1, last + 1)) and nfiles == 1
    before = {f: f.stat().st_mtime_ns for f in snapshot_files(server.data_dir)}

    # After a restart the sink resumes after its cursor: the same files, then new ones.
    server.start()
    server.ingest_ok([{"op": "upsert", "type": "connection", "qualified_name": "after-restart"}])
    server.stop()
    records, nfiles = read_snapshots(server.data_dir)
    assert sorted(records) == list(range(1, last + 2)) and nfiles == 2
    for f, mtime in before.items():
        assert f.stat().st_mtime_ns == mtime, f"{f} was rewritten"
    (new,) = set(snapshot_files(server.data_dir)) - set(before)
    assert new.name == f"{last + 1}-{last + 1}.ndjson"
    server.start()  # the fixture stops it cleanly


def test_snapshots_disabled_writes_nothing(make_server):
    server = make_server("--no-snapshots.enabled", "--snapshots.max-object-age-ms", "1")
    traffic(server, rounds=1)
    server.stop()
    assert not (server.data_dir / "snapshots").exists()
    assert "metasync_sink_cursor" not in (server.start().metrics())


def thread_nices(pid):
    """{tid: nice} of the threads of process pid (/proc/PID/task/TID/stat, field 19)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        out[int(task.name)] = int(stat.rsplit(")", 1)[1].split()[16])
    return out


def test_sink_threads_run_at_sinks_nice(make_server):
    """The snapshot sink's thread runs at sinks.nice (default 10), the rest of the server at 0,
    and the sink still delivers every change."""
    server = make_server("--snapshots.max-object-age-ms", "1")
    wait_until(lambda: 10 in thread_nices(server.proc.pid).values(), message="a thread at nice 10")
    nices = thread_nices(server.proc.pid)
    assert sorted(nices.values()).count(10) == 1, nices  # the one sink of this configuration
    assert set(nices.values()) == {0, 10}, nices
    traffic(server, rounds=1)
    last = server.last_seq()
    wait_until(lambda: covers(server.data_dir, last), message="snapshots up to the last seq")
    server.stop()
    other = make_server("--sinks.nice", "0")
    wait_until(lambda: "metasync_sink_cursor" in other.metrics(), message="the sink runs")
    assert set(thread_nices(other.proc.pid).values()) == {0}


def test_sinks_nice_out_of_range_is_a_config_error(tmp_path):
    """A nice value outside 0-19 stops `serve` at start with exit 2 and names the key."""
    r = run_cli("serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"),
                "--sinks.nice", "25", timeout=30)
    assert r.returncode == 2, r.stderr
    assert "sinks.nice: 25 is not a nice value from 0 to 19" in r.stderr
