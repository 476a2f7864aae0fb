"""Avro over Kafka: producers register their schemas in the embedded registry
(http://127.0.0.1:PORT/registry, with confluent_kafka's SchemaRegistryClient) and send
Confluent-framed Avro events; a schema evolved twice (a field added with a default, an optional
field removed) with old and new producers interleaved; and the changes sink writing Avro
(kafka.changes_format=avro) read back by a Python consumer with the schema fetched by id.

(confluent_kafka's AvroSerializer needs fastavro, not installed here; the framing it does —
magic byte, 4-byte id, binary datum — is done with python-avro, as AvroSerializer would.)
"""
import io
import json
import struct

import pytest

from conftest import wait_until
from kafka_util import MockCluster, produce, read_topic

avro_schema = pytest.importorskip("avro.schema")
avro_io = pytest.importorskip("avro.io")
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient  # noqa: E402

parse = getattr(avro_schema, "parse", None) or avro_schema.Parse


def record(fields):
    return {"type": "record", "name": "Event", "namespace": "io.metasync", "fields": fields}


OPT = lambda name: {"name": name, "type": ["null", "string"], "default": None}  # noqa: E731
V1 = record([OPT("id"), {"name": "op", "type": "string"}, OPT("type"), OPT("qualified_name"),
             OPT("attributes")])
V2 = record(V1["fields"] + [{"name": "owner_note", "type": "string", "default": ""}])
V3 = record([f for f in V2["fields"] if f["name"] != "attributes"])


@pytest.fixture
def kafka():
    mc = MockCluster()
    yield mc
    mc.close()


def framed(schema_id, schema, value):
    buf = io.BytesIO()
    buf.write(b"\x00" + struct.pack(">I", schema_id))
    avro_io.DatumWriter(parse(json.dumps(schema))).write(value, avro_io.BinaryEncoder(buf))
    return buf.getvalue()


def test_avro_events_with_an_evolving_schema(kafka, make_server):
    server = make_server("--kafka.brokers", kafka.bootstrap, "--kafka.properties.log_level", "3")
    client = SchemaRegistryClient({"url": server.url + "/registry"})
    ids = [client.register_schema("metasync.events-value", Schema(json.dumps(s), "AVRO"))
           for s in (V1, V2, V3)]
    assert len(set(ids)) == 3
    msgs = []
    for i in range(6):  # old and new producers interleaved
        v = i % 3
        ev = {"id": f"av-{i}", "op": "upsert", "type": "connection",
              "qualified_name": f"avro/c{i}"}
        if v < 2:
            ev["attributes"] = json.dumps({"i": i})
        if v > 0:
            ev["owner_note"] = "new field"
        msgs.append((f"avro/c{i}".encode(), framed(ids[v], (V1, V2, V3)[v], ev), None))
    produce(kafka.bootstrap, "metasync.events", msgs)
    wait_until(lambda: all(server.asset_status(f"avro/c{i}") == 200 for i in range(6)), 30,
               message="the Avro events")
    for i in range(6):
        a = server.asset(f"avro/c{i}")
        assert a["attributes"] == ({"i": i} if i % 3 < 2 else {}), a
        assert server.history(f"avro/c{i}")[0]["cause"] == f"av-{i}"
    # An id the registry does not know, and a datum that does not decode, are dead letters.
    produce(kafka.bootstrap, "metasync.events",
            [(b"x", b"\x00" + struct.pack(">I", 999999) + b"\x02", None),
             (b"y", b"\x00" + struct.pack(">I", ids[0]) + b"\x07", None),
             ({"op": "upsert", "type": "connection", "qualified_name": "avro/after"})])
    wait_until(lambda: server.asset_status("avro/after") == 200, 30, message="avro/after")
    codes = wait_until(lambda: (lambda d: d if len(d) == 2 else None)(
        {m["key"]: m["headers"]["error.code"] for m in read_topic(kafka.bootstrap,
                                                                   "metasync.dlq")}),
        30, message="2 dead letters")
    assert codes == {b"x": "unknown_schema_id", b"y": "avro_decode_failed"}


def test_changes_as_avro(kafka, make_server):
    server = make_server("--kafka.brokers", kafka.bootstrap, "--kafka.changes-format", "avro",
                         "--kafka.properties.log_level", "3")
    server.ingest_ok([{"id": "c-1", "op": "upsert", "type": "connection",
                       "qualified_name": "avro-out", "attributes": {"k": "v"}}])
    client = SchemaRegistryClient({"url": server.url + "/registry"})
    msgs = wait_until(lambda: [m for m in read_topic(kafka.bootstrap, "metasync.changes")
                               if m["key"] == b"avro-out"], 30,
                      message="the change of avro-out on metasync.changes")
    m = msgs[0]
    assert m["value"][0] == 0 and m["key"] == b"avro-out"
    sid = struct.unpack(">I", m["value"][1:5])[0]
    latest = client.get_latest_version("metasync.changes-value")
    assert latest.schema_id == sid
    writer = parse(client.get_schema(sid).schema_str)
    rec = avro_io.DatumReader(writer).read(avro_io.BinaryDecoder(io.BytesIO(m["value"][5:])))
    assert rec["seq"] == server.last_seq() and rec["op"] == "create" and rec["qualified_name"] == "avro-out"
    assert rec["cause"] == "c-1" and rec["before"] is None
    assert json.loads(rec["after"])["attributes"] == {"k": "v"}
    assert m["headers"]["cause"] == "c-1" and m["headers"]["seq"] == str(rec["seq"])
