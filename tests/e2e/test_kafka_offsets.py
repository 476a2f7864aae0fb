"""Kafka positions in the store: the source_offsets table advances with the commits of the
events it covers, and a restarted consumer resumes from the stored offsets even when the group's
offsets committed to Kafka are behind (reset to 0 here); a message the store rejects holds its
partition's stored position back until the next batch passes it. Runs against SQLite and, with
METASYNC_TEST_STORE=postgres, PostgreSQL (the table is read with sqlite3 or psql).
"""
import json
import re
import sqlite3

import pytest
from confluent_kafka import Consumer, TopicPartition

from conftest import TEST_STORE, T, pg_cluster, wait_until
from kafka_util import MockCluster, produce

TOPIC = "metasync.events"
PARTS = 4  # the mock's default partitions per topic
# The mock's group coordinator waits up to the members' session timeout for a rejoin: short ones
# keep the rebalances of a restart to seconds.
FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


@pytest.fixture
def kafka():
    mc = MockCluster()
    yield mc
    mc.close()


def stored_offsets(server, group="metasync", topic=TOPIC):
    """{partition: next_offset} of the store's source_offsets rows for (group, topic)."""
    q = ("SELECT part, next_offset FROM source_offsets WHERE grp = '%s' AND topic = '%s'"
         % (group, topic))
    if TEST_STORE == "postgres":
        url = server.extra_args[server.extra_args.index("--store.url") + 1]
        db = url.rsplit("/", 1)[1].split("?")[0]
        out = pg_cluster().psql(q, db=db).stdout
        rows = [line.split("|") for line in out.splitlines() if line.strip()]
    else:
        con = sqlite3.connect(server.data_dir / "metasync.db", timeout=T(10))
        try:
            rows = con.execute(q).fetchall()
        finally:
            con.close()
    return {int(p): int(n) for p, n in rows}


def high_watermarks(bootstrap, topic=TOPIC):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "offsets-probe"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=T(10))[1]
                for p in range(PARTS)}
    finally:
        c.close()


def reset_committed(bootstrap, group="metasync", topic=TOPIC):
    """Joins `group` (the server has left it), commits offset 0 for every partition, leaves."""
    assigned = []
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **FAST_GROUP,
                  "enable.auto.commit": False, "auto.offset.reset": "latest"})
    try:
        c.subscribe([topic], on_assign=lambda _c, parts: assigned.extend(parts))

        def joined():
            c.poll(0.1)
            return len(assigned) == PARTS

        wait_until(joined, 60, message="the probe consumer's assignment")
        c.commit(offsets=[TopicPartition(topic, p, 0) for p in range(PARTS)],
                 asynchronous=False)
        got = c.committed([TopicPartition(topic, p) for p in range(PARTS)], timeout=T(10))
        assert all(tp.offset == 0 for tp in got), got
    finally:
        c.close()


def metric(server, name, labels=""):
    m = re.search("^" + re.escape(name + labels) + r" (\S+)$", server.metrics(), re.M)
    return float(m.group(1)) if m else 0.0


def kafka_args():
    return ["--kafka.properties.log_level", "3"] + [
        a for k, v in FAST_GROUP.items() for a in (f"--kafka.properties.{k}", str(v))]


def events(prefix, n):
    # No ids: each gets kafka:<topic>:<partition>:<offset>, so consuming a message again would
    # be a duplicate (counted), not a new version.
    return [(f"{prefix}{i}", json.dumps({"op": "upsert", "type": "connection",
                                          "qualified_name": f"{prefix}{i}"}), None)
            for i in range(n)]


def test_restart_resumes_from_stored_offsets_not_kafka_committed(kafka, make_server):
    server = make_server("--kafka.brokers", kafka.bootstrap, *kafka_args())
    produce(kafka.bootstrap, TOPIC, events("off/a", 40))
    wait_until(lambda: server.get("/api/v1/assets/off/a39").status_code == 200, 60,
               message="the first messages applied")
    hw = high_watermarks(kafka.bootstrap)
    assert sum(hw.values()) == 40
    # The table advances with the commits: at the end, every partition at its high watermark.
    wait_until(lambda: stored_offsets(server) == {p: n for p, n in hw.items() if n}, 30,
               message="source_offsets at the high watermarks")
    server.stop()

    # Kafka's committed offsets go back to 0: only the store knows where the group was.
    reset_committed(kafka.bootstrap)
    produce(kafka.bootstrap, TOPIC, events("off/b", 10))
    server.start()
    wait_until(lambda: all(server.get(f"/api/v1/assets/off/b{i}").status_code == 200
                           for i in range(10)), 60, message="the new messages applied")
    hw = high_watermarks(kafka.bootstrap)
    wait_until(lambda: stored_offsets(server) == {p: n for p, n in hw.items() if n}, 30,
               message="source_offsets at the new high watermarks")
    # Only the 10 new messages were consumed: none of the first 40 again.
    assert metric(server, "metasync_kafka_messages_consumed_total", f'{{topic="{TOPIC}"}}') == 10
    assert metric(server, "metasync_events_duplicate_total") == 0
    for i in range(40):
        assert server.asset(f"off/a{i}")["version"] == 1


def test_rejected_message_holds_the_stored_position(kafka, make_server):
    """A patch of a missing asset is rejected by the store: its dead letter is sent after the
    commit, so the position stored in that commit stops at it; the next batch moves it on."""
    server = make_server("--kafka.brokers", kafka.bootstrap, *kafka_args())
    bad = json.dumps({"op": "patch", "qualified_name": "off/missing", "attributes": {"x": 1}})
    produce(kafka.bootstrap, TOPIC, [("k", bad, None)])
    wait_until(lambda: metric(server, "metasync_kafka_dead_letters_total",
                              '{code="not_found"}') == 1, 60, message="the dead letter")
    hw = high_watermarks(kafka.bootstrap)
    (part,) = [p for p, n in hw.items() if n]
    assert stored_offsets(server).get(part, 0) == 0  # held at the rejected message (offset 0)
    ok = json.dumps({"op": "upsert", "type": "connection", "qualified_name": "off/ok"})
    produce(kafka.bootstrap, TOPIC, [("k", ok, None)])  # same key: same partition
    wait_until(lambda: stored_offsets(server).get(part) == 2, 60,
               message="the next batch moves the position past the dead letter")
