"""GET /metrics: the text passes `promtool check metrics` (no lint problem) on a fresh server and
after mixed traffic; it counts events received/applied/unchanged/duplicate and rejected by code
exactly, has the batch size and commit latency histograms (cumulative buckets, +Inf == count),
the change seq, per-lane queue depth/bytes/oldest-age gauges, orphans and the snapshot sink's
cursor.
"""
import json
import re
import shutil
import subprocess

import pytest

from conftest import T, ndjson, wait_until

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, frozenset(labels)): value} of every sample, and {name: type}."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        key = (m.group(1), labels)
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(m.group(3))
    return samples, types


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def promtool_check(text):
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=T(30))
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), \
        f"promtool check metrics: rc={r.returncode}\n{r.stdout}\n{r.stderr}\n---\n{text}"


def conn(qn, **kw):
    return {"op": "upsert", "type": "connection", "qualified_name": qn, **kw}


def test_fresh_server_metrics_pass_promtool(server):
    text = server.metrics()
    promtool_check(text)
    s, types = parse(text)
    for name in ("metasync_events_received_total", "metasync_events_applied_total",
                 "metasync_events_unchanged_total", "metasync_events_duplicate_total",
                 "metasync_commits_total"):
        assert value(s, name) == 0, name
        assert types[name] == "counter"
    assert types["metasync_events_rejected_total"] == "counter"
    assert types["metasync_batch_events"] == "histogram"
    assert types["metasync_commit_duration_seconds"] == "histogram"
    for lane in ("fast", "bulk"):
        assert value(s, "metasync_lane_queue_events", lane=lane) == 0
        assert value(s, "metasync_lane_queue_bytes", lane=lane) == 0
        assert value(s, "metasync_lane_oldest_age_seconds", lane=lane) == 0
    for g in ("metasync_lane_queue_events", "metasync_lane_oldest_age_seconds",
              "metasync_change_seq", "metasync_orphans"):
        assert types[g] == "gauge"


def test_metrics_count_every_outcome(server):
    # 3 applied, 1 unchanged, 1 duplicate, 2 decode rejections, 1 apply rejection.
    body = ndjson([conn("a", id="m-1"), conn("b"), conn("a/db", type="database"),
                   '{"op":"upsert","type":"nope","qualified_name":"x"}',
                   "{broken"])
    ans = server.post_events(body)
    assert ans["applied"] == 3 and len(ans["rejected"]) == 2, ans
    ans = server.post_events([conn("b"), conn("a", id="m-1"),
                              {"op": "patch", "qualified_name": "zzz", "attributes": {}}])
    assert (ans["unchanged"], ans["duplicates"], len(ans["rejected"])) == (1, 1, 1), ans
    # Columns go to the bulk lane; one orphan column.
    server.ingest_ok([{"op": "upsert", "type": "column", "qualified_name": "a/db/s/t/c",
                       "attributes": {"data_type": "int"}}])

    text = server.metrics()
    promtool_check(text)
    s, _ = parse(text)
    assert value(s, "metasync_events_received_total") == 9
    assert value(s, "metasync_events_applied_total") == 4
    assert value(s, "metasync_events_unchanged_total") == 1
    assert value(s, "metasync_events_duplicate_total") == 1
    rejected = {dict(k[1])["code"]: v for k, v in s.items()
                if k[0] == "metasync_events_rejected_total"}
    assert rejected == {"unknown_type": 1, "malformed_json": 1, "not_found": 1}
    assert value(s, "metasync_events_received_total") == (
        value(s, "metasync_events_applied_total") + value(s, "metasync_events_unchanged_total") +
        value(s, "metasync_events_duplicate_total") + sum(rejected.values()))
    assert value(s, "metasync_changes_written_total") == 4
    assert value(s, "metasync_change_seq", tenant="default") == server.last_seq() == 4
    assert value(s, "metasync_orphans", tenant="default") == 1

    # Histograms: 3 batches submitted to the engine.
    for h in ("metasync_batch_events", "metasync_commit_duration_seconds"):
        buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in s.items()
                          if k[0] == h + "_bucket"), key=lambda x: x[0])
        assert buckets and buckets[-1][0] == float("inf")
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), f"{h} buckets are not cumulative"
        assert counts[-1] == value(s, h + "_count")
    assert value(s, "metasync_batch_events_count") == 3
    assert value(s, "metasync_batch_events_sum") == 3 + 3 + 1
    assert value(s, "metasync_batch_events_bucket", le="1") == 1
    assert value(s, "metasync_commit_duration_seconds_count") == value(s, "metasync_commits_total")
    assert value(s, "metasync_commit_duration_seconds_sum") > 0
    lag = {dict(k[1])["lane"]: v for k, v in s.items()
           if k[0] == "metasync_ingest_lag_seconds_count"}
    assert lag == {"fast": 6, "bulk": 1}
    for lane in ("fast", "bulk"):
        assert value(s, "metasync_lane_queue_events", lane=lane) == 0
        assert value(s, "metasync_lane_oldest_age_seconds", lane=lane) == 0
    # HTTP problems are counted by code.
    server.get("/api/v1/assets/nothing")
    server.get("/api/v1/changes", params={"limit": "0"})
    s, _ = parse(server.metrics())
    assert value(s, "metasync_http_problems_total", code="not_found") == 1
    assert value(s, "metasync_http_problems_total", code="invalid_parameter") == 1
    assert value(s, "metasync_http_requests_total") >= 6


def test_a_whole_body_error_counts_as_one_rejection_and_no_event_received(server):
    """As documented in docs/api.md: a whole-body error counts once in events_rejected_total
    and not at all in events_received_total."""
    server.ingest_ok([conn("a")])
    s0, _ = parse(server.metrics())
    r = server.post("/api/v1/events", '[{"op":"upsert","type":"connection","qualified_name":"b"}'
                    ',{"op":"upsert"', "application/json")
    assert r.status_code == 400
    s1, _ = parse(server.metrics())
    assert value(s1, "metasync_events_received_total") == value(
        s0, "metasync_events_received_total") == 1
    assert value(s1, "metasync_events_rejected_total", code="malformed_json") == 1
    assert value(s1, "metasync_http_problems_total", code="malformed_json") == 1
    assert value(s1, "metasync_events_applied_total") == 1


def test_sink_cursor_and_metrics_after_load(make_server):
    server = make_server("--snapshots.max-object-age-ms", "100")
    for b in range(5):
        server.ingest_ok([conn(f"c{b}-{i}") for i in range(20)] +
                         [{"op": "upsert", "type": "database", "qualified_name": f"c{b}-0/db{i}"}
                          for i in range(10)])
    last = server.last_seq()
    assert last == 150

    def cursor():
        s, _ = parse(server.metrics())
        return value(s, "metasync_sink_cursor", sink="snapshots", tenant="default") == last

    wait_until(cursor, 20, message="metasync_sink_cursor to reach the last seq")
    text = server.metrics()
    promtool_check(text)
    s, _ = parse(text)
    assert value(s, "metasync_change_seq", tenant="default") == last
    assert value(s, "metasync_events_applied_total") == 150
    assert value(s, "metasync_batch_events_count") == 5
    assert value(s, "metasync_batch_events_bucket", le="10") == 0
    assert value(s, "metasync_batch_events_bucket", le="100") == 5
    assert json.loads(server.get("/healthz").text) == {"status": "ok"}


@pytest.mark.sqlite_only
def test_search_index_and_checkpoint_metrics(make_server):
    """The embedded store's own metrics: how far the full-text index (kept by the indexer thread
    in metasync-search.db) is behind, and its checkpoints; the index catches up on its own."""
    server = make_server()
    s, types = parse(server.metrics())
    assert types["metasync_search_index_pending"] == "gauge"
    assert types["metasync_search_index_failing"] == "gauge"
    for c in ("metasync_store_checkpoints_total", "metasync_store_checkpoint_waits_total",
              "metasync_store_checkpoint_wait_seconds_total"):
        assert types[c] == "counter" and value(s, c) == 0, c
    server.ingest_ok([conn(f"ix{i}", attributes={"description": f"first {i}"})
                      for i in range(200)])
    server.ingest_ok([conn(f"ix{i}", attributes={"description": f"second {i}"})
                      for i in range(50)])

    def caught_up():
        s, _ = parse(server.metrics())
        return (value(s, "metasync_search_index_pending", kind="assets") == 0 and
                value(s, "metasync_search_index_pending", kind="changes") == 0)

    wait_until(caught_up, 20, message="the search index to catch up")
    text = server.metrics()
    promtool_check(text)
    s, _ = parse(text)
    assert value(s, "metasync_search_index_failing") == 0
    assert {a["qualified_name"] for a in server.list_all(q="second")} == {
        f"ix{i}" for i in range(50)}
