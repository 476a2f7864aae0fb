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
