"""Backpressure under concurrent load: with tiny lanes and a short enqueue timeout, writers get
`503 overloaded` with Retry-After (and nothing of such a batch is applied); retrying the same
batches (events with ids) ends with every event applied exactly once, a gap-free change feed, and
the 503s counted in metasync_http_problems_total{code="overloaded"} and their events in
metasync_events_overloaded_total, so that received = the sum of the outcomes.
"""
import threading

import requests

from conftest import NDJSON, T, ndjson


def test_overload_answers_503_and_retries_lose_nothing(make_server):
    server = make_server("--lanes.fast-max-bytes", "2k", "--lanes.bulk-max-bytes", "2k",
                         "--engine.enqueue-timeout-ms", "20", "--engine.max-commit-events", "8")
    server.ingest_ok([{"op": "upsert", "type": "connection", "qualified_name": "bp"}])
    n_threads, n_batches, per_batch = 8, 12, 15
    errors, overloaded, ids = [], [], set()
    lock = threading.Lock()

    def writer(w):
        try:
            s = requests.Session()
            for b in range(n_batches):
                evs = [{"id": f"bp-{w}-{b}-{i}", "op": "upsert", "type": "database",
                        "qualified_name": f"bp/w{w}b{b}e{i}"} for i in range(per_batch)]
                with lock:
                    ids.update(e["id"] for e in evs)
                for attempt in range(1000):
                    r = s.post(server.url + "/api/v1/events", data=ndjson(evs),
                               headers={"Content-Type": NDJSON}, timeout=T(60))
                    if r.status_code == 503:
                        p = r.json()
                        assert p["code"] == "overloaded" and r.headers["Retry-After"] == "1", p
                        with lock:
                            overloaded.append(1)
                        continue
                    assert r.status_code == 200, r.text
                    ans = r.json()
                    # A 503 applied nothing, so a retry finds no duplicate.
                    assert ans["applied"] == per_batch and ans["duplicates"] == 0, ans
                    break
                else:
                    raise AssertionError("still overloaded after 1000 attempts")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(T(120))
    assert not errors, errors[0]
    print(f"overloaded answers: {len(overloaded)}")

    changes = server.all_changes()
    total = 1 + n_threads * n_batches * per_batch
    assert [c["seq"] for c in changes] == list(range(1, total + 1))
    causes = [c["cause"] for c in changes[1:]]
    assert len(causes) == len(set(causes)) and set(causes) == ids
    metrics = server.metrics()
    line = [x for x in metrics.splitlines()
            if x.startswith('metasync_http_problems_total{code="overloaded"}')]
    assert (int(float(line[0].split()[1])) if line else 0) == len(overloaded)
    for lane in ("fast", "bulk"):
        assert f'metasync_lane_queue_events{{lane="{lane}"}} 0' in metrics

    # Every received event lands in exactly one outcome, the 503'd ones in overloaded.
    def total(name):
        return sum(int(float(x.split()[-1])) for x in metrics.splitlines()
                   if x.startswith(name + " ") or x.startswith(name + "{"))
    outcomes = ["applied", "unchanged", "duplicate", "rejected", "overloaded"]
    assert total("metasync_events_overloaded_total") == len(overloaded) * per_batch
    assert total("metasync_events_received_total") == sum(
        total(f"metasync_events_{o}_total") for o in outcomes)
    server.assert_healthy()
