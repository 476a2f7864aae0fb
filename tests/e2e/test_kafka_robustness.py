"""Kafka paths that used to hang or lose data, each on the mock cluster: partitions paused by
backpressure across a rebalance, a change record too large for Kafka, an external registry that
is briefly unreachable (and a revoke while a batch waits for it), a dead letter too large for
the DLQ topic, derived ids of long topic names, the `tenant` header's rule, the built-in change
schema under an operator's strict level, subjects with '/', and replays to the source partition.
"""
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from confluent_kafka import Consumer

from conftest import T, run_cli, wait_until
from kafka_util import MockCluster, produce, producer, read_topic


@pytest.fixture
def kafka():
    mc = MockCluster()
    yield mc
    mc.close()


def kserver(make_server, kafka, *extra, **kw):
    return make_server("--kafka.brokers", kafka.bootstrap, "--kafka.properties.log_level", "3",
                       *extra, **kw)


def upsert(qn, typ="connection", **extra):
    return {"op": "upsert", "type": typ, "qualified_name": qn, **extra}


def metric(server, name):
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", server.metrics(), re.M)
    return float(m.group(1)) if m else 0.0


# The mock's group coordinator waits up to the members' session timeout for a rejoin: short ones
# keep a rebalance to seconds.
FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
FAST_GROUP_ARGS = [a for k, v in FAST_GROUP.items() for a in (f"--kafka.properties.{k}", str(v))]


def join_group_and_leave(bootstrap, topics, group="metasync"):
    """A second member joins the group (subscribed to topics), waits for its assignment, leaves."""
    assigned = []
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **FAST_GROUP,
                  "enable.auto.commit": False, "auto.offset.reset": "latest"})
    c.subscribe(list(topics), on_assign=lambda cons, parts: assigned.append(parts))
    try:
        wait_until(lambda: (c.poll(0.1), assigned)[1], 30, message="the second member's assignment")
    finally:
        c.close()


# ---- an external registry that is not reachable for a while (a stub answering 503) ----

pytest.importorskip("avro.schema")
from test_kafka_avro import OPT, framed as framed_as  # noqa: E402

EVENT = {"type": "record", "name": "Event", "namespace": "io.metasync",
         "fields": [OPT("id"), {"name": "op", "type": "string"}, OPT("type"),
                    OPT("qualified_name")]}


def framed(schema_id, value):
    return framed_as(schema_id, EVENT, value)


class StubRegistry:
    """GET /schemas/ids/7 answers 503 until `up`, then the schema; any other id 404 40403."""

    def __init__(self):
        self.up = False
        self.lookups = 0
        stub = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path == "/schemas/ids/7":
                    stub.lookups += 1
                    code, body = ((200, {"schema": json.dumps(EVENT)}) if stub.up else
                                  (503, {"error_code": 50003, "message": "down"}))
                else:
                    code, body = 404, {"error_code": 40403, "message": "Schema not found"}
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stub_registry():
    s = StubRegistry()
    yield s
    s.close()


def test_paused_partitions_resume_after_a_rebalance(kafka, make_server, stub_registry):
    # The first bulk message waits for the (unreachable) registry, so the bulk queue fills and
    # its partitions are paused for certain when the rebalance comes.
    server = kserver(make_server, kafka, *FAST_GROUP_ARGS, "--registry.url", stub_registry.url,
                     "--kafka.max-buffered-bytes", "1MiB", "--kafka.batch-max-messages", "10")
    base = server.last_seq()
    pad = "p" * 300
    first = (b"k0", framed(7, {"id": "rb-avro", "op": "upsert", "type": "connection",
                               "qualified_name": "rb-avro"}), None)
    produce(kafka.bootstrap, "metasync.events.bulk",
            [first] + [(f"k{i % 64}".encode(),
                        upsert(f"rb-{i}", id=f"rb-{i}", attributes={"pad": pad}), None)
                       for i in range(20000)])
    wait_until(lambda: metric(server, "metasync_kafka_paused_partitions") > 0, 30,
               message="the bulk partitions paused by backpressure")
    join_group_and_leave(kafka.bootstrap, ["metasync.events"])
    stub_registry.up = True
    wait_until(lambda: server.last_seq() >= base + 20001, 120, interval=0.2,
               message="all 20001 events after the rebalance")
    assert server.asset_status("rb-19999") == 200 and server.asset_status("rb-avro") == 200


def test_a_change_too_large_for_kafka_is_sent_reduced(kafka, make_server):
    server = kserver(make_server, kafka)
    big = lambda ch: upsert("big", attributes={"blob": ch * 600_000})  # noqa: E731
    server.ingest_ok([big("x")])
    server.ingest_ok([big("y")])  # before + after: 1.2 MB, over message.max.bytes
    server.ingest_ok([upsert("small-after-big")])
    msgs = wait_until(lambda: (lambda ms: ms if any(m["key"] == b"small-after-big" for m in ms)
                               else None)(read_topic(kafka.bootstrap, "metasync.changes")),
                      30, message="the small change after the big one")
    big_msgs = [m for m in msgs if m["key"] == b"big"]
    update = next(m for m in big_msgs if json.loads(m["value"])["op"] == "update")
    rec = json.loads(update["value"])
    assert update["headers"]["truncated"] == "before" and rec["truncated"] == ["before"]
    assert rec["before"] is None and rec["after"]["attributes"]["blob"].startswith("y")
    assert rec["seq"] and rec["version"] == 2 and rec["qualified_name"] == "big"
    assert metric(server, "metasync_kafka_changes_reduced_total") >= 1


def test_unreachable_registry_retries_instead_of_dead_lettering(kafka, make_server, stub_registry):
    server = kserver(make_server, kafka, "--registry.url", stub_registry.url)
    produce(kafka.bootstrap, "metasync.events",
            [(b"a", framed(7, {"id": "reg-1", "op": "upsert", "type": "connection",
                               "qualified_name": "reg-1"}), None),
             (b"a", framed(999, {"id": "reg-x", "op": "upsert"}), None)])
    wait_until(lambda: stub_registry.lookups >= 2, 30, message="the lookup retried")
    assert server.asset_status("reg-1") == 404
    stub_registry.up = True
    wait_until(lambda: server.asset_status("reg-1") == 200, 30, message="reg-1 once it is up")
    dl = wait_until(lambda: read_topic(kafka.bootstrap, "metasync.dlq") or None, 30,
                    message="the dead letter of the unknown id")
    assert [d["headers"]["error.code"] for d in dl] == ["unknown_schema_id"]


def test_revoke_does_not_wait_for_a_retrying_batch(kafka, make_server, stub_registry):
    server = kserver(make_server, kafka, *FAST_GROUP_ARGS, "--registry.url", stub_registry.url)
    produce(kafka.bootstrap, "metasync.events",
            [(b"a", framed(7, {"id": "rv-1", "op": "upsert", "type": "connection",
                               "qualified_name": "rv-1"}), None)])
    wait_until(lambda: stub_registry.lookups >= 2, 30, message="the batch retrying")
    join_group_and_leave(kafka.bootstrap, ["metasync.events"])  # hung before: revoke waited
    stub_registry.up = True
    wait_until(lambda: server.asset_status("rv-1") == 200, 30, message="rv-1 after the rebalance")
    assert read_topic(kafka.bootstrap, "metasync.dlq") == []


def test_a_dead_letter_too_large_is_sent_truncated(kafka, make_server):
    server = kserver(make_server, kafka, "--kafka.properties.message.max.bytes", "100000")
    produce(kafka.bootstrap, "metasync.events",
            [(b"huge", b"\xff" * 500_000, [("origin", b"t")]),
             (b"ok", json.dumps(upsert("after-huge")), None)])
    wait_until(lambda: server.asset_status("after-huge") == 200, 30, message="after-huge")
    dl = wait_until(lambda: read_topic(kafka.bootstrap, "metasync.dlq") or None, 30,
                    message="the truncated dead letter")
    h = dl[0]["headers"]
    assert h["error.code"] == "unknown_magic_byte" and h["error.value_truncated"] == "true"
    assert dl[0]["value"] == b"\xff" * 65536 and dl[0]["key"] == b"huge"
    assert h["source.topic"] == "metasync.events"


def test_derived_ids_of_a_long_topic_name_never_collide(kafka, make_server):
    topic = "t" * 247  # "kafka:<topic>:<p>:" alone fills the 256-byte id
    kafka.command(f"topic {topic} 1")
    server = kserver(make_server, kafka, "--kafka.topics", topic)
    produce(kafka.bootstrap, topic, [upsert(f"long-{i}") for i in range(3)])
    wait_until(lambda: all(server.asset_status(f"long-{i}") == 200 for i in range(3)), 30,
               message="the 3 events without an id")
    causes = {server.history(f"long-{i}")[0]["cause"] for i in range(3)}
    assert len(causes) == 3
    assert all(re.match(r"^kafka:~[0-9a-f]{16}:0:[0-2]$", c) for c in causes), causes


def test_an_invalid_tenant_header_is_a_dead_letter(kafka, make_server):
    server = kserver(make_server, kafka)
    produce(kafka.bootstrap, "metasync.events",
            [(b"t", json.dumps(upsert("tn-bad")), [("tenant", b"../etc")]),
             (b"t", json.dumps(upsert("tn-long")), [("tenant", b"a" * 65)]),
             (b"t", json.dumps(upsert("tn-ok")), None)])
    wait_until(lambda: server.asset_status("tn-ok") == 200, 30, message="tn-ok")
    dl = wait_until(lambda: (lambda d: d if len(d) == 2 else None)(
        read_topic(kafka.bootstrap, "metasync.dlq")), 30, message="2 dead letters")
    assert {d["headers"]["error.code"] for d in dl} == {"invalid_field"}


def test_built_in_change_schema_registers_under_a_strict_level(kafka, make_server, tmp_path):
    data = tmp_path / "strict"
    s = kserver(make_server, kafka, data_dir=data)
    subj = "/registry/config/metasync.changes-value"
    ct = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
    assert s.http.put(s.url + subj, json.dumps({"compatibility": "NONE"}), headers=ct).ok
    other = {"type": "record", "name": "Other", "fields": [{"name": "x", "type": "int"}]}
    r = s.post("/registry/subjects/metasync.changes-value/versions",
               json.dumps({"schema": json.dumps(other)}), content_type=ct["Content-Type"])
    assert r.ok, r.text
    assert s.http.delete(s.url + "/registry/subjects/metasync.changes-value/versions/1").ok
    assert s.http.put(s.url + subj, json.dumps({"compatibility": "FULL_TRANSITIVE"}),
                      headers=ct).ok
    s.stop()
    s2 = kserver(make_server, kafka, "--kafka.changes-format", "avro", data_dir=data)
    s2.ingest_ok([upsert("strict-avro")])
    wait_until(lambda: [m for m in read_topic(kafka.bootstrap, "metasync.changes")
                        if m["key"] == b"strict-avro"] or None, 30,
               message="the Avro change under a strict level")


def test_subjects_with_a_slash_have_their_own_asset(kafka, make_server):
    s = kserver(make_server, kafka)
    schema = json.dumps({"schema": json.dumps({"type": "record", "name": "R", "fields": []})})
    ct = "application/vnd.schemaregistry.v1+json"
    for subject in ("a", "a%2F1"):  # subject "a" and subject "a/1"
        r = s.post(f"/registry/subjects/{subject}/versions", schema, content_type=ct)
        assert r.ok, r.text
    wait_until(lambda: s.asset_status("registry/a%2F1") == 200, 30, message="subject a/1's asset")
    assert s.asset("registry/a%2F1")["type"] == "kafka_subject"
    assert s.asset("registry/a%2F1")["name"] == "a/1"
    assert s.asset("registry/a/1")["type"] == "kafka_schema"


def test_replay_goes_back_to_the_source_partition(kafka, make_server):
    kserver(make_server, kafka)
    p = producer(kafka.bootstrap)
    parts = len(Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": "x"})
                .list_topics("metasync.events", timeout=T(10)).topics["metasync.events"]
                .partitions)
    for part in range(parts):
        p.produce("metasync.events", key=b"same", value=b"junk-%d" % part, partition=part)
    assert p.flush(T(30)) == 0
    wait_until(lambda: len(read_topic(kafka.bootstrap, "metasync.dlq")) == parts, 30,
               message="a dead letter per partition")
    r = run_cli("dlq", "replay", "--kafka.brokers", kafka.bootstrap)
    assert r.returncode == 0, r.stderr

    def replayed():
        got = [m for m in read_topic(kafka.bootstrap, "metasync.events")
               if m["value"].startswith(b"junk-")]
        return got if len(got) == 2 * parts else None

    got = wait_until(replayed, 30, message="the replayed messages")
    assert all(m["value"] == b"junk-%d" % m["partition"] for m in got)


def test_a_failed_replay_exits_non_zero(kafka, make_server):
    kserver(make_server, kafka)
    produce(kafka.bootstrap, "metasync.events", [(b"j", b"junk" * 2000, None)])
    wait_until(lambda: read_topic(kafka.bootstrap, "metasync.dlq") or None, 30,
               message="the dead letter")
    r = run_cli("dlq", "replay", "--kafka.brokers", kafka.bootstrap,
                "--kafka.properties.message.max.bytes", "1000")  # the letter is 8000 bytes
    assert r.returncode == 3, (r.returncode, r.stderr)
