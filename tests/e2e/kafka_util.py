"""Kafka test peers: the standalone mock cluster (build/ms_mock_cluster, next to METASYNC_BIN)
driven over its stdin, and small producer / consumer helpers (confluent_kafka, kcat).

The mock cluster prints its bootstrap list on its first stdout line, then answers each command
(`down N`, `up N`, `topic NAME [PARTS]`) with one line "ok" or "error: ...".
"""
import json
import subprocess
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import BIN, T, child_env

MOCK_BIN = str(Path(BIN).resolve().parent / "ms_mock_cluster")
TOPICS = ("metasync.events", "metasync.events.bulk", "metasync.dlq", "metasync.changes")


class MockCluster:
    def __init__(self, topics=TOPICS):
        self.proc = subprocess.Popen([MOCK_BIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1,
                                     env=child_env())
        self.bootstrap = self.proc.stdout.readline().strip()
        assert self.bootstrap, "ms_mock_cluster printed no bootstrap line"
        for t in topics:
            self.command(f"topic {t}")

    def command(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer == "ok", f"mock cluster: {line}: {answer}"

    def down(self, n):
        self.command(f"down {n}")

    def up(self, n):
        self.command(f"up {n}")

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()  # EOF: the mock exits
            try:
                self.proc.wait(timeout=T(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def producer(bootstrap, **conf):
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                     "linger.ms": 5, **conf})


def produce(bootstrap, topic, messages, **conf):
    """Produces messages (value, or (key, value, headers) tuples; dict values are JSON-dumped)
    and waits until every one is delivered."""
    p = producer(bootstrap, **conf)
    failures = []

    def report(err, msg):
        if err:
            failures.append(err)

    for m in messages:
        key, value, headers = (None, m, None) if not isinstance(m, tuple) else m
        if isinstance(value, dict):
            value = json.dumps(value)
        p.produce(topic, value=value, key=key, headers=headers, on_delivery=report)
        p.poll(0)
    assert p.flush(T(60)) == 0, "messages left undelivered"
    assert not failures, failures


def read_topic(bootstrap, topic):
    """Every message of topic from the beginning to its current end, as dicts with key, value
    (bytes), headers (dict of str) and partition/offset. Reads with assign(), no group."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "metasync-test-reader",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        md = c.list_topics(topic, timeout=T(10))
        parts = sorted(md.topics[topic].partitions)
        ends, todo = {}, []
        for p in parts:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=T(10))
            ends[p] = hi
            if hi > lo:
                todo.append(TopicPartition(topic, p, lo))
        out = []
        if not todo:
            return out
        c.assign(todo)
        left = {tp.partition for tp in todo}
        while left:
            m = c.poll(T(10))
            assert m is not None, f"reading {topic}: no message for a while"
            if m.error():
                continue
            out.append({"key": m.key(), "value": m.value(), "partition": m.partition(),
                        "offset": m.offset(),
                        "headers": {k: (v.decode() if v is not None else None)
                                    for k, v in (m.headers() or [])}})
            if m.offset() + 1 >= ends[m.partition()]:
                left.discard(m.partition())
        return out
    finally:
        c.close()


def kcat_json(bootstrap, topic):
    """Every message of topic read with kcat -J (a separate, independent reader)."""
    r = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e",
                        "-J", "-q"], capture_output=True, text=True, timeout=T(60))
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def kcat_headers(msg):
    """kcat -J gives headers as a flat [k1, v1, k2, v2, ...] list."""
    h = msg.get("headers") or []
    return dict(zip(h[0::2], h[1::2]))
