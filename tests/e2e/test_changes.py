"""The change feed: GET /api/v1/changes gives every change record once, seq strictly increasing
from 1 with no gap (also under concurrent writers), paged with `after`/`limit`/`next_after`;
a long-poll (`wait`) returns as soon as a change is committed, and empty when none comes; the
Server-Sent Events stream /api/v1/changes/stream?after=N yields `id:`/`event:`/`data:` events
(backlog first, then live ones) and resumes from Last-Event-ID.
"""
import json
import threading
import time

import requests

from conftest import T, ndjson, problem, wait_until


def conn(qn, **kw):
    return {"op": "upsert", "type": "connection", "qualified_name": qn, **kw}


def http_requests_total(server):
    for line in server.metrics().splitlines():
        if line.startswith("metasync_http_requests_total "):
            return int(float(line.split()[1]))
    raise AssertionError("no metasync_http_requests_total")


def wait_request_arrived(server, baseline):
    """Waits until the server has seen one more request than `baseline` (a value scraped
    before starting it), accounting for the scrapes made while waiting."""
    scrapes = [0]

    def arrived():
        scrapes[0] += 1
        return http_requests_total(server) >= baseline + scrapes[0] + 1

    wait_until(arrived, 10, message="the long-poll request to reach the server")


def test_feed_is_gap_free_under_concurrent_writers(server):
    threads, errors = [], []

    def writer(w):
        try:
            s = requests.Session()
            for b in range(8):
                evs = [conn(f"w{w}/b{b}/e{i}", id=f"w{w}-{b}-{i}") for i in range(5)]
                evs.append({"op": "tag", "qualified_name": f"w{w}/b{b}/e0", "tag": "T"})
                r = s.post(server.url + "/api/v1/events", data=ndjson(evs),
                           headers={"Content-Type": "application/x-ndjson"}, timeout=T(60))
                assert r.status_code == 200, r.text
                assert r.json()["applied"] == 6, r.text
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    for w in range(4):
        threads.append(threading.Thread(target=writer, args=(w,)))
        threads[-1].start()
    for t in threads:
        t.join(T(60))
    assert not errors, errors[0]
    total = 4 * 8 * 6

    items = server.all_changes()
    assert [c["seq"] for c in items] == list(range(1, total + 1))
    assert server.last_seq() == total
    # Every create is followed (later) by its tag; each event's change appears once.
    keys = [(c["qualified_name"], c["op"]) for c in items]
    assert len(set(keys)) == total
    pos = {k: i for i, k in enumerate(keys)}
    for w in range(4):
        for b in range(8):
            assert pos[(f"w{w}/b{b}/e0", "create")] < pos[(f"w{w}/b{b}/e0", "tag")]
    assert all(c["cause"] for c in items if c["op"] == "create")

    # Paging with after/limit/next_after gives the same records.
    paged, after = [], 0
    while True:
        page = server.changes(after=after, limit=7)
        assert len(page["items"]) <= 7 and page["last_seq"] == total
        if not page["items"]:
            assert page["next_after"] == after
            break
        assert page["next_after"] == page["items"][-1]["seq"]
        paged += page["items"]
        after = page["next_after"]
    assert paged == items
    page = server.changes(after=100, limit=3)
    assert [c["seq"] for c in page["items"]] == [101, 102, 103] and page["next_after"] == 103
    page = server.changes(after=total + 50)
    assert page["items"] == [] and page["last_seq"] == total
    # Default limit is 100.
    assert len(server.get("/api/v1/changes").json()["items"]) == 100


def test_bad_feed_parameters(server):
    for params in ({"after": "-1"}, {"after": "x"}, {"limit": "0"}, {"limit": "1001"},
                   {"wait": "-1"}, {"wait": "61"}, {"limit": "1e3"}):
        p = problem(server.get("/api/v1/changes", params=params), 400, "invalid_parameter")
        assert list(params)[0] in p["detail"]
    problem(server.get("/api/v1/changes/stream", params={"after": "z"}), 400, "invalid_parameter")


def test_long_poll_returns_as_soon_as_a_change_commits(server):
    server.ingest_ok([conn("a")])
    seq = server.last_seq()
    result = {}

    def poll():
        t0 = time.monotonic()
        r = requests.get(server.url + "/api/v1/changes",
                         params={"after": seq, "wait": 30}, timeout=T(60))
        result["elapsed"] = time.monotonic() - t0
        result["r"] = r
        result["done_at"] = time.monotonic()

    baseline = http_requests_total(server)
    t = threading.Thread(target=poll)
    t.start()
    wait_request_arrived(server, baseline)
    assert t.is_alive(), "the long-poll returned before anything was committed"
    posted_at = time.monotonic()
    ans = server.ingest_ok([conn("b", id="lp-1")])
    t.join(T(20))
    assert not t.is_alive(), "the long-poll did not return after the commit"
    r = result["r"]
    assert r.status_code == 200
    page = r.json()
    assert [c["qualified_name"] for c in page["items"]] == ["b"]
    assert page["items"][0]["seq"] == ans["last_seq"] == seq + 1
    assert page["items"][0]["cause"] == "lp-1"
    assert page["next_after"] == seq + 1
    # Returned promptly after the commit, far from the 30 s wait.
    assert result["done_at"] - posted_at < T(5)


def test_long_poll_with_nothing_new_returns_empty_after_wait(server):
    server.ingest_ok([conn("a")])
    t0 = time.monotonic()
    page = server.changes(after=1, wait=1)
    elapsed = time.monotonic() - t0
    assert page["items"] == [] and page["next_after"] == 1 and page["last_seq"] == 1
    assert 0.9 <= elapsed < T(10)
    # With something already there, it answers at once.
    t0 = time.monotonic()
    page = server.changes(after=0, wait=30)
    assert [c["seq"] for c in page["items"]] == [1]
    assert time.monotonic() - t0 < T(5)


class SSE:
    """A minimal Server-Sent Events reader over a streaming requests response."""

    def __init__(self, response):
        self.r = response
        self.chunks = response.iter_content(chunk_size=None)
        self.buf = b""

    def next_event(self):
        """Returns the next event as a dict of its fields (comments skipped)."""
        while True:
            while b"\n\n" not in self.buf:
                self.buf += next(self.chunks)
            block, self.buf = self.buf.split(b"\n\n", 1)
            fields = {}
            for line in block.decode().split("\n"):
                if not line or line.startswith(":"):
                    continue
                k, _, v = line.partition(":")
                fields[k] = v[1:] if v.startswith(" ") else v
            if fields:
                return fields


def test_sse_stream_yields_backlog_then_live_events(server):
    server.ingest_ok([conn(f"c{i}") for i in range(5)])
    with requests.get(server.url + "/api/v1/changes/stream", params={"after": 2},
                      stream=True, timeout=(T(5), T(20))) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        sse = SSE(r)
        got = [sse.next_event() for _ in range(3)]
        assert [e["id"] for e in got] == ["3", "4", "5"]
        for e in got:
            assert e["event"] == "change"
            data = json.loads(e["data"])
            assert str(data["seq"]) == e["id"] and data["op"] == "create"
            assert data["after"]["qualified_name"] == data["qualified_name"]
        # Live: committed after the stream started.
        server.ingest_ok([conn("live-1", id="sse-1"),
                          {"op": "tag", "qualified_name": "live-1", "tag": "X"}])
        live = [sse.next_event() for _ in range(2)]
        assert [e["id"] for e in live] == ["6", "7"]
        a, b = (json.loads(e["data"]) for e in live)
        assert (a["op"], a["cause"]) == ("create", "sse-1")
        assert b["op"] == "tag" and b["before"]["tags"] == [] and b["after"]["tags"]
        server.ingest_ok([conn("live-2")])
        assert sse.next_event()["id"] == "8"


def test_sse_resumes_from_last_event_id(server):
    server.ingest_ok([conn(f"c{i}") for i in range(6)])
    with requests.get(server.url + "/api/v1/changes/stream", params={"after": 0},
                      headers={"Last-Event-ID": "4"}, stream=True,
                      timeout=(T(5), T(20))) as r:
        sse = SSE(r)
        assert [sse.next_event()["id"] for _ in range(2)] == ["5", "6"]


def test_stopping_server_releases_a_held_long_poll(server):
    server.ingest_ok([conn("a")])
    result = {}

    def poll():
        try:
            result["r"] = requests.get(server.url + "/api/v1/changes",
                                       params={"after": 1, "wait": 60}, timeout=T(60))
        except requests.RequestException as e:
            result["error"] = e
        result["at"] = time.monotonic()

    baseline = http_requests_total(server)
    t = threading.Thread(target=poll)
    t.start()
    wait_request_arrived(server, baseline)
    stopped_at = time.monotonic()
    server.stop()  # SIGTERM: must exit 0 without waiting for the 60 s poll
    t.join(T(20))
    assert not t.is_alive()
    assert result["at"] - stopped_at < T(5)
    if "r" in result:
        assert result["r"].status_code in (200, 503)
    server.start()  # for the fixture's clean stop
