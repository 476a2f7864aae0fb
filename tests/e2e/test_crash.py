"""Crash safety (slow): a producer thread streams acknowledged batches (every event with an id)
while the server runs; the server is killed with SIGKILL mid-stream and restarted on the same
data directory, three times. Every acknowledged event is there (as an asset and as the cause of exactly
one change record), the change feed 1..last has no gap and no duplicate, resending every batch
(the acknowledged ones and the one in flight at the kill) only finds duplicates or fills in what
was lost before acknowledgement, and the snapshot sink catches up (its files cover every seq up
to the last, identical to the feed).
"""
import threading

import pytest
import requests

from conftest import NDJSON, T, ndjson, read_snapshots, wait_until

BATCH = 40


def batch_events(cycle, b):
    """One batch: a new table, its columns (bulk lane), patches and tags of an existing asset."""
    t = f"wh/db/s/t{cycle}_{b}"
    evs = [{"id": f"k{cycle}-{b}-t", "op": "upsert", "type": "table", "qualified_name": t,
            "attributes": {"batch": b, "cycle": cycle}}]
    for i in range(BATCH - 4):
        evs.append({"id": f"k{cycle}-{b}-c{i}", "op": "upsert", "type": "column",
                    "qualified_name": f"{t}/c{i}", "attributes": {"data_type": "int", "i": i}})
    evs.append({"id": f"k{cycle}-{b}-p", "op": "patch", "qualified_name": "wh/db/s/hot",
                "attributes": {"last": f"{cycle}-{b}", "description": f"mark{cycle}x{b}end"}})
    evs.append({"id": f"k{cycle}-{b}-g", "op": "tag", "qualified_name": f"{t}/c0",
                "tag": "PII"})
    evs.append({"id": f"k{cycle}-{b}-l", "op": "link", "from": "wh/db/s/hot", "to": t})
    return evs


class Producer(threading.Thread):
    """Posts batches until the server stops answering; records what was acknowledged."""

    def __init__(self, url, cycle):
        super().__init__(daemon=True)
        self.url, self.cycle = url, cycle
        self.acked, self.unacked, self.errors = [], [], []

    def run(self):
        s = requests.Session()
        b = 0
        while True:
            evs = batch_events(self.cycle, b)
            try:
                r = s.post(self.url + "/api/v1/events", data=ndjson(evs),
                           headers={"Content-Type": NDJSON}, timeout=T(30))
            except requests.RequestException:
                self.unacked.append(evs)
                return
            if r.status_code != 200:
                self.unacked.append(evs)
                if r.status_code < 500:
                    self.errors.append(f"{r.status_code} {r.text}")
                return
            ans = r.json()
            if ans["rejected"] or ans["accepted"] + ans["duplicates"] != len(evs):
                self.errors.append(f"batch {b}: {ans}")
                return
            self.acked.append(evs)
            b += 1


def check_store(server, acked_ids, acked_tables):
    changes = server.all_changes()
    seqs = [c["seq"] for c in changes]
    last = server.last_seq()
    assert seqs == list(range(1, last + 1)), "the change feed has a gap or a duplicate"
    causes = [c["cause"] for c in changes if c["cause"]]
    assert len(causes) == len(set(causes)), "an event applied twice"
    missing = acked_ids - set(causes)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
    for t, attrs in acked_tables:
        a = server.asset(t)
        assert a["attributes"] == attrs and a["version"] == 1
        assert server.asset(t + "/c0")["tags"] == [{"name": "PII", "source": "direct"}]
        assert server.asset(t + f"/c{BATCH - 5}")["attributes"]["i"] == BATCH - 5
    # Full-text search (its own database, kept by the indexer) agrees with the store: every
    # acknowledged table is found, and the hot table by its last description only.
    for t, _ in acked_tables:
        assert t in {a["qualified_name"] for a in server.list_all(q=t, type="table")}, t
    desc = server.asset("wh/db/s/hot")["attributes"]["description"]
    assert [a["qualified_name"] for a in server.list_all(q=desc)] == ["wh/db/s/hot"]
    other = "mark0x0end" if desc != "mark0x0end" else "mark0x1end"
    assert server.list_all(q=other) == []
    return last


@pytest.mark.slow
def test_kill9_mid_stream_loses_no_acknowledged_event(make_server):
    server = make_server("--snapshots.max-object-age-ms", "100")
    server.ingest_ok([{"id": "root-1", "op": "upsert", "type": "connection", "qualified_name": "wh"},
                      {"id": "root-2", "op": "upsert", "type": "database",
                       "qualified_name": "wh/db"},
                      {"id": "root-3", "op": "upsert", "type": "schema", "qualified_name": "wh/db/s"},
                      {"id": "root-4", "op": "upsert", "type": "table",
                       "qualified_name": "wh/db/s/hot"}])
    acked_ids = {"root-1", "root-2", "root-3", "root-4"}
    acked_tables, all_batches = [], []

    for cycle in range(3):
        p = Producer(server.url, cycle)
        p.start()
        wait_until(lambda: len(p.acked) >= 20 or not p.is_alive(), 60,
                   message="20 acknowledged batches")
        assert p.is_alive(), f"the producer stopped early: {p.errors}"
        server.kill9()  # mid-stream: the producer has a request in flight or about to be
        p.join(T(30))
        assert not p.is_alive() and not p.errors, p.errors
        assert p.unacked, "the producer did not notice the crash"
        for evs in p.acked:
            acked_ids.update(e["id"] for e in evs)
            acked_tables.append((evs[0]["qualified_name"], evs[0]["attributes"]))
        all_batches += p.acked + p.unacked

        server.start()  # same data directory, new port
        check_store(server, acked_ids, acked_tables)

    # Resending everything: acknowledged batches are pure duplicates; the batches in flight at
    # the kills apply now if they had not been committed.
    for evs in all_batches:
        ans = server.post_events(evs)
        assert ans["rejected"] == [], ans
        if {e["id"] for e in evs} <= acked_ids:
            assert ans["duplicates"] == len(evs) and ans["accepted"] == 0, ans
        acked_ids.update(e["id"] for e in evs)
    last = check_store(server, acked_ids, acked_tables)
    causes = [c["cause"] for c in server.all_changes() if c["cause"]]
    assert set(causes) == acked_ids and len(causes) == len(acked_ids)

    # The snapshot sink catches up on everything, including what was buffered at the kills.
    def covered():
        records, _ = read_snapshots(server.data_dir)
        return set(range(1, last + 1)) <= set(records)

    wait_until(covered, 60, message=f"snapshot files covering seq 1..{last}")
    records, _ = read_snapshots(server.data_dir)
    assert sorted(records) == list(range(1, last + 1))
    feed = {c["seq"]: c for c in server.all_changes()}
    assert records == feed
