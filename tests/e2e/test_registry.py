"""The embedded schema registry over real HTTP (/registry, docs/registry.md): every endpoint and
Confluent error code, compatibility levels as a table, state kept across a restart, the
kafka_schema assets it writes, bad inputs that must leave the server serving, Confluent's own
Python client against it, and a second server configured with registry.url."""
import io
import json
import struct
import urllib.parse

import pytest
import requests

from conftest import wait_until

CT = "application/vnd.schemaregistry.v1+json"

REC_A = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}
REC_AB_DEF = {"type": "record", "name": "R", "fields": [
    {"name": "a", "type": "int"}, {"name": "b", "type": "string", "default": "x"}]}
REC_AC = {"type": "record", "name": "R", "fields": [
    {"name": "a", "type": "int"}, {"name": "c", "type": "long"}]}
REC_EMPTY = {"type": "record", "name": "R", "fields": []}


def base(server):
    return server.url + "/registry"


def call(server, method, path, body=None, params=None, content_type=CT, raw=None):
    """One registry request; body is JSON-encoded unless raw bytes/str are given."""
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    headers = {"Content-Type": content_type} if data is not None and content_type else {}
    return requests.request(method, base(server) + path, data=data, params=params,
                            headers=headers, timeout=30)


def ok(r):
    assert r.status_code == 200, f"{r.status_code}: {r.text}"
    assert r.headers["Content-Type"] == CT
    return r.json()


def err(r, code):
    """Asserts a Confluent error answer with this error_code (HTTP status its first 3 digits)."""
    status = code // 100 if code >= 1000 else code
    assert r.status_code == status, f"expected {status}/{code}, got {r.status_code}: {r.text}"
    assert r.headers["Content-Type"] == CT
    body = r.json()
    assert body["error_code"] == code, body
    assert body["message"], body
    return body


def register(server, subject, schema, expect=200):
    s = schema if isinstance(schema, str) else json.dumps(schema)
    r = call(server, "POST", f"/subjects/{urllib.parse.quote(subject, safe='')}/versions",
             {"schema": s})
    if expect == 200:
        return ok(r)["id"]
    return err(r, expect)


def test_builtin_schemas(server):
    subjects = ok(call(server, "GET", "/subjects"))
    assert {"metasync.events-value", "metasync.changes-value"} <= set(subjects)
    v = ok(call(server, "GET", "/subjects/metasync.changes-value/versions/latest"))
    assert v["version"] == 1 and v["subject"] == "metasync.changes-value"
    raw = ok(call(server, "GET", "/subjects/metasync.changes-value/versions/1/schema"))
    assert raw["type"] == "record" and raw["name"] == "Change"
    assert ok(call(server, "GET", f"/schemas/ids/{v['id']}"))["schema"] == v["schema"]
    assert ok(call(server, "GET", "/schemas/types")) == ["AVRO"]
    assert ok(call(server, "GET", "")) == {}


def test_register_lookup_and_read(server):
    a = register(server, "orders-value", REC_A)
    assert register(server, "orders-value", REC_A) == a                 # identical: same id
    assert register(server, "copy-value", json.dumps(REC_A, indent=2)) == a  # global ids
    ab = register(server, "orders-value", REC_AB_DEF)
    assert ab > a
    assert ok(call(server, "GET", "/subjects/orders-value/versions")) == [1, 2]
    for v in ("2", "latest", "-1"):
        got = ok(call(server, "GET", f"/subjects/orders-value/versions/{v}"))
        assert got == {"subject": "orders-value", "version": 2, "id": ab,
                       "schema": json.dumps(REC_AB_DEF, separators=(",", ":"))}
    assert ok(call(server, "GET", "/subjects/orders-value/versions/1/schema")) == REC_A
    assert json.loads(ok(call(server, "GET", f"/schemas/ids/{a}"))["schema"]) == REC_A
    assert ok(call(server, "GET", f"/schemas/ids/{a}/schema")) == REC_A
    assert ok(call(server, "GET", f"/schemas/ids/{a}/subjects")) == ["copy-value", "orders-value"]
    assert ok(call(server, "GET", f"/schemas/ids/{a}/versions")) == [
        {"subject": "copy-value", "version": 1}, {"subject": "orders-value", "version": 1}]
    found = ok(call(server, "POST", "/subjects/orders-value", {"schema": json.dumps(REC_A)}))
    assert found["id"] == a and found["version"] == 1 and found["subject"] == "orders-value"
    assert json.loads(found["schema"]) == REC_A
    err(call(server, "POST", "/subjects/orders-value", {"schema": json.dumps(REC_EMPTY)}), 40403)
    err(call(server, "POST", "/subjects/nope", {"schema": json.dumps(REC_A)}), 40401)
    # every accepted request content type
    for ct in ("application/vnd.schemaregistry+json", "application/json",
               "application/octet-stream", "application/vnd.schemaregistry.v1+json; charset=utf-8"):
        r = call(server, "POST", "/subjects/orders-value/versions",
                 {"schema": json.dumps(REC_A)}, content_type=ct)
        assert ok(r)["id"] == a
    err(call(server, "POST", "/subjects/orders-value/versions", {"schema": "\"int\""},
             content_type="text/plain"), 415)
    # percent-encoded subject names
    for name in ("a b+c", "team/orders-value", "100%"):
        assert register(server, name, REC_A) == a
        assert name in ok(call(server, "GET", "/subjects"))
        quoted = urllib.parse.quote(name, safe="")
        assert ok(call(server, "GET", f"/subjects/{quoted}/versions")) == [1]
        # '%' and '/' of the subject are percent-encoded in its asset's qualified name
        qn = "registry/" + name.replace("%", "%25").replace("/", "%2F")
        assert server.asset(qn)["type"] == "kafka_subject"


def test_query_decoded_once_and_nul_in_a_segment_refused(server):
    register(server, "q", REC_A)
    register(server, "q", REC_AB_DEF)
    assert ok(call(server, "DELETE", "/subjects/q/versions/1")) == 1
    assert ok(call(server, "GET", "/subjects/q/versions?deleted=true")) == [1, 2]
    # "%2574rue" is "%74rue" once decoded, not "true": decoded twice it was
    assert ok(call(server, "GET", "/subjects/q/versions?deleted=%2574rue")) == [2]
    # a NUL in a segment would cut "q%00x" down to "q": refused instead
    r = call(server, "GET", "/subjects/q%00x/versions")
    assert r.status_code == 404, r.text


def test_deletes(server):
    a = register(server, "d", REC_A)
    register(server, "d", REC_AB_DEF)
    err(call(server, "DELETE", "/subjects/d/versions/1", params={"permanent": "true"}), 40407)
    assert ok(call(server, "DELETE", "/subjects/d/versions/1")) == 1
    err(call(server, "DELETE", "/subjects/d/versions/1"), 40406)
    err(call(server, "GET", "/subjects/d/versions/1"), 40402)
    assert ok(call(server, "GET", "/subjects/d/versions/1", params={"deleted": "true"}))["id"] == a
    assert ok(call(server, "GET", "/subjects/d/versions")) == [2]
    assert ok(call(server, "GET", "/subjects/d/versions", params={"deleted": "true"})) == [1, 2]
    assert register(server, "d", REC_A) == a  # soft-deleted schema again: new version, same id
    assert ok(call(server, "GET", "/subjects/d/versions")) == [2, 3]
    # the soft-deleted version 1 with the same id is superseded and removed, as Confluent does
    assert ok(call(server, "GET", "/subjects/d/versions", params={"deleted": "true"})) == [2, 3]
    ok(call(server, "DELETE", "/subjects/d/versions/2"))
    assert ok(call(server, "DELETE", "/subjects/d/versions/2",
                   params={"permanent": "true"})) == 2
    assert ok(call(server, "GET", "/subjects/d/versions", params={"deleted": "true"})) == [3]
    register(server, "d", REC_AB_DEF)  # v4
    err(call(server, "DELETE", "/subjects/d", params={"permanent": "true"}), 40405)
    assert ok(call(server, "DELETE", "/subjects/d")) == [3, 4]
    err(call(server, "DELETE", "/subjects/d"), 40404)
    err(call(server, "GET", "/subjects/d/versions"), 40401)
    err(call(server, "GET", "/subjects/d/versions/latest"), 40401)
    assert "d" not in ok(call(server, "GET", "/subjects"))
    assert "d" in ok(call(server, "GET", "/subjects", params={"deleted": "true"}))
    assert ok(call(server, "DELETE", "/subjects/d", params={"permanent": "true"})) == [3, 4]
    err(call(server, "DELETE", "/subjects/d"), 40401)
    assert "d" not in ok(call(server, "GET", "/subjects", params={"deleted": "true"}))
    assert ok(call(server, "GET", f"/schemas/ids/{a}"))  # the id stays resolvable
    err(call(server, "DELETE", "/subjects/nope/versions/1"), 40401)
    register(server, "e", REC_A)
    err(call(server, "DELETE", "/subjects/e/versions/5"), 40402)
    assert ok(call(server, "DELETE", "/subjects/e/versions/latest")) == 1


def test_config(server):
    assert ok(call(server, "GET", "/config")) == {"compatibilityLevel": "BACKWARD"}
    err(call(server, "GET", "/config/s"), 40408)
    assert ok(call(server, "GET", "/config/s", params={"defaultToGlobal": "true"})) == {
        "compatibilityLevel": "BACKWARD"}
    assert ok(call(server, "PUT", "/config", {"compatibility": "full"})) == {
        "compatibility": "FULL"}
    assert ok(call(server, "GET", "/config")) == {"compatibilityLevel": "FULL"}
    assert ok(call(server, "PUT", "/config/s", {"compatibility": "NONE"})) == {
        "compatibility": "NONE"}
    assert ok(call(server, "GET", "/config/s")) == {"compatibilityLevel": "NONE"}
    assert ok(call(server, "DELETE", "/config/s")) == {"compatibilityLevel": "NONE"}
    err(call(server, "GET", "/config/s"), 40408)
    err(call(server, "PUT", "/config", {"compatibility": "SIDEWAYS"}), 42203)
    err(call(server, "PUT", "/config/s", {"compatibility": None}), 42203)
    err(call(server, "DELETE", "/config"), 405)


REC_B_DEF = {"type": "record", "name": "R", "fields": [
    {"name": "b", "type": "string", "default": "x"}]}
REC_A_STR = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]}
REC_A_INT_DEF = {"type": "record", "name": "R", "fields": [
    {"name": "a", "type": "int", "default": 1}]}
REC_AB_INT = {"type": "record", "name": "R", "fields": [
    {"name": "a", "type": "int"}, {"name": "b", "type": "int"}]}
REC_AB_INT_DEF = {"type": "record", "name": "R", "fields": [
    {"name": "a", "type": "int"}, {"name": "b", "type": "int", "default": 0}]}

# (level, schemas registered in order, expected status of each). The *_TRANSITIVE rows repeat
# a sequence whose last schema fits the latest version but not the first one.
LEVELS = [
    ("NONE", [REC_A, REC_AC, REC_EMPTY], [200, 200, 200]),
    ("BACKWARD", [REC_A, REC_AC], [200, 409]),
    ("BACKWARD", [REC_A, REC_EMPTY, REC_B_DEF], [200, 200, 200]),
    ("FORWARD", [REC_A, REC_EMPTY], [200, 409]),
    ("FORWARD", [REC_A, REC_AC], [200, 200]),
    ("FULL", [REC_A, REC_AC, REC_EMPTY, REC_AB_DEF], [200, 409, 409, 200]),
    ("BACKWARD", [REC_A_STR, REC_EMPTY, REC_A_INT_DEF], [200, 200, 200]),
    ("BACKWARD_TRANSITIVE", [REC_A_STR, REC_EMPTY, REC_A_INT_DEF], [200, 200, 409]),
    ("FORWARD", [REC_AB_DEF, REC_A, REC_AB_INT], [200, 200, 200]),
    ("FORWARD_TRANSITIVE", [REC_AB_DEF, REC_A, REC_AB_INT], [200, 200, 409]),
    ("FULL", [REC_AB_DEF, REC_A, REC_AB_INT_DEF], [200, 200, 200]),
    ("FULL_TRANSITIVE", [REC_AB_DEF, REC_A, REC_AB_INT_DEF], [200, 200, 409]),
]


@pytest.mark.parametrize("level,schemas,expected", LEVELS)
def test_compatibility_levels(server, level, schemas, expected):
    ok(call(server, "PUT", "/config/lv", {"compatibility": level}))
    for schema, status in zip(schemas, expected):
        body = {"schema": json.dumps(schema)}
        # the compatibility endpoint (no version: what the level asks) agrees with registration
        if ok(call(server, "GET", "/subjects", params={"deleted": "true"})).count("lv"):
            check = ok(call(server, "POST", "/compatibility/subjects/lv/versions", body))
            assert check["is_compatible"] is (status == 200), (level, schema)
        r = call(server, "POST", "/subjects/lv/versions", body)
        if status == 200:
            ok(r)
        else:
            assert level in err(r, 409)["message"]


def test_compatibility_endpoint(server):
    register(server, "c", REC_A)
    register(server, "c", REC_EMPTY)
    body = {"schema": json.dumps(REC_AC)}
    r = ok(call(server, "POST", "/compatibility/subjects/c/versions/latest",
                body, params={"verbose": "true"}))
    assert r["is_compatible"] is False and r["messages"], r
    assert ok(call(server, "POST", "/compatibility/subjects/c/versions/1", body)) == {
        "is_compatible": False}
    assert ok(call(server, "POST", "/compatibility/subjects/c/versions/latest",
                   {"schema": json.dumps(REC_EMPTY)})) == {"is_compatible": True}
    ok(call(server, "PUT", "/config/c", {"compatibility": "BACKWARD_TRANSITIVE"}))
    # {b with a default} reads both {} and A; AB_DEF reads A but not {} (a has no default)
    assert ok(call(server, "POST", "/compatibility/subjects/c/versions",
                   {"schema": json.dumps(REC_B_DEF)}))["is_compatible"] is True
    assert ok(call(server, "POST", "/compatibility/subjects/c/versions",
                   {"schema": json.dumps(REC_AB_DEF)}))["is_compatible"] is False
    assert ok(call(server, "POST", "/compatibility/subjects/c/versions/1",
                   {"schema": json.dumps(REC_AB_DEF)}))["is_compatible"] is True
    err(call(server, "POST", "/compatibility/subjects/c/versions/7", body), 40402)
    # no such subject: nothing to be incompatible with (Confluent 7), unless a version is named
    assert ok(call(server, "POST", "/compatibility/subjects/zz/versions/latest", body)) == {
        "is_compatible": True}
    assert ok(call(server, "POST", "/compatibility/subjects/zz/versions", body)) == {
        "is_compatible": True}
    err(call(server, "POST", "/compatibility/subjects/zz/versions/1", body), 40401)
    err(call(server, "POST", "/compatibility/subjects/c/versions/one", body), 42202)


def test_bad_inputs_keep_serving(server):
    register(server, "b", REC_A)
    cases = [
        (call(server, "POST", "/subjects/b/versions", raw="{\"schema\": "), 400),
        (call(server, "POST", "/subjects/b/versions", raw="[]"), 400),
        (call(server, "POST", "/subjects/b/versions", {}), 42201),
        (call(server, "POST", "/subjects/b/versions", {"schema": ""}), 42201),
        (call(server, "POST", "/subjects/b/versions", {"schema": "{\"type\":\"record\"}"}),
         42201),
        (call(server, "POST", "/subjects/b/versions", {"schema": "{not json"}), 42201),
        (call(server, "POST", "/subjects/b/versions",
              {"schema": "{\"type\":\"fixed\",\"name\":\"F\",\"size\":-1}"}), 42201),
        (call(server, "POST", "/subjects/b/versions",
              {"schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF"}), 42201),
        (call(server, "POST", "/subjects/b/versions",
              {"schema": "\"int\"", "references": [{"name": "x", "subject": "y",
                                                    "version": 1}]}), 42201),
        (call(server, "POST", "/subjects/b/versions",
              raw=json.dumps({"schema": "\"" + "x" * (2 << 20) + "\""})), 413),
        (call(server, "GET", "/subjects/nope/versions"), 40401),
        (call(server, "GET", "/subjects/b/versions/9"), 40402),
        (call(server, "GET", "/subjects/b/versions/abc"), 42202),
        (call(server, "GET", "/subjects/b/versions/0"), 42202),
        (call(server, "GET", "/subjects/b/versions/99999999999"), 42202),
        (call(server, "GET", "/schemas/ids/424242"), 40403),
        (call(server, "GET", "/schemas/ids/abc"), 40403),
        (call(server, "PUT", "/config", {"compatibility": "MOSTLY"}), 42203),
        (call(server, "PUT", "/config", raw="nope"), 400),
        (call(server, "GET", "/nope"), 404),
        (call(server, "PATCH", "/subjects"), 405),
    ]
    for r, code in cases:
        body = err(r, code)
        if code == 42201 and "PROTOBUF" in r.request.body:
            assert "AVRO" in body["message"]
    assert register(server, "b", REC_A) > 0
    assert ok(call(server, "GET", "/subjects/b/versions")) == [1]
    server.assert_healthy()


def test_restart_keeps_state(make_server):
    s = make_server()
    a = register(s, "keep", REC_A)
    ab = register(s, "keep", REC_AB_DEF)
    ok(call(s, "DELETE", "/subjects/keep/versions/1"))
    ok(call(s, "PUT", "/config/keep", {"compatibility": "FULL"}))
    builtin = ok(call(s, "GET", "/subjects/metasync.changes-value/versions/latest"))
    s.restart()
    assert ok(call(s, "GET", "/subjects/keep/versions")) == [2]
    assert ok(call(s, "GET", "/subjects/keep/versions/latest"))["id"] == ab
    assert ok(call(s, "GET", "/config/keep")) == {"compatibilityLevel": "FULL"}
    assert ok(call(s, "GET", "/subjects/metasync.changes-value/versions")) == [1]
    assert ok(call(s, "GET", "/subjects/metasync.changes-value/versions/latest")) == builtin
    assert register(s, "keep", REC_A) == a
    assert ok(call(s, "GET", "/subjects/keep/versions")) == [2, 3]
    assert register(s, "fresh", REC_EMPTY) > ab


def test_kafka_schema_assets(server):
    a = register(server, "topic-value", REC_A)
    register(server, "topic-value", REC_AB_DEF)

    def schema_assets():
        r = server.get("/api/v1/assets", params={"type": "kafka_schema", "limit": 100})
        assert r.status_code == 200
        return {x["qualified_name"]: x for x in r.json()["items"]}
    items = schema_assets()
    first = items["registry/topic-value/1"]
    assert first["parent"] == "registry/topic-value"
    attrs = first["attributes"]
    assert attrs["subject"] == "topic-value" and attrs["version"] == 1 and attrs["id"] == a
    assert attrs["schema_type"] == "AVRO" and json.loads(attrs["schema"]) == REC_A
    assert len(attrs["fingerprint"]) == 16
    # the built-in schemas are MetaSync's own formats, not the estate's: no assets
    assert "registry/metasync.changes-value/1" not in items
    subj = server.asset("registry/topic-value")
    assert subj["type"] == "kafka_subject"
    ok(call(server, "DELETE", "/subjects/topic-value/versions/1"))
    assert server.asset_status("registry/topic-value/1") == 404
    ops = [c["op"] for c in server.history("registry/topic-value/1")]
    assert ops[0] in ("create", "upsert") and ops[-1] == "delete", ops
    ok(call(server, "DELETE", "/subjects/topic-value"))
    assert server.asset_status("registry/topic-value") == 404


def test_confluent_client(server):
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError
    client = SchemaRegistryClient({"url": base(server)})
    sid = client.register_schema("client-value", Schema(json.dumps(REC_A), "AVRO"))
    assert sid > 0
    assert client.register_schema("ns/slashed", Schema(json.dumps(REC_A), "AVRO")) == sid
    assert client.get_latest_version("ns/slashed").subject == "ns/slashed"
    got = client.lookup_schema("client-value", Schema(json.dumps(REC_A), "AVRO"))
    assert got.schema_id == sid and got.version == 1 and got.subject == "client-value"
    latest = client.get_latest_version("client-value")
    assert latest.schema_id == sid and latest.version == 1
    assert json.loads(client.get_schema(sid).schema_str) == REC_A
    assert client.get_subjects().count("client-value") == 1
    assert client.get_versions("client-value") == [1]
    client.set_compatibility("client-value", "FORWARD")
    assert client.get_compatibility("client-value") == "FORWARD"
    assert client.test_compatibility("client-value", Schema(json.dumps(REC_AC), "AVRO")) is True
    assert client.test_compatibility("client-value",
                                     Schema(json.dumps(REC_EMPTY), "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as e:
        client.register_schema("client-value", Schema(json.dumps(REC_EMPTY), "AVRO"))
    assert e.value.http_status_code == 409 and e.value.error_code == 409
    with pytest.raises(SchemaRegistryError) as e:
        client.get_latest_version("no-such-subject")
    assert e.value.error_code == 40401
    assert client.register_schema("client-value", Schema(json.dumps(REC_AC), "AVRO")) > sid
    assert client.delete_version("client-value", 1) == 1
    assert client.delete_subject("client-value", permanent=True) == [2]  # soft, then hard
    assert "client-value" not in ok(call(server, "GET", "/subjects", params={"deleted": "true"}))


def test_avro_serializer(server):
    pytest.importorskip("fastavro", reason="confluent_kafka's AvroSerializer needs fastavro, "
                        "which is not installed here")
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    client = SchemaRegistryClient({"url": base(server)})
    ser = AvroSerializer(client, json.dumps(REC_AB_DEF))
    data = ser({"a": 7, "b": "y"}, SerializationContext("ser", MessageField.VALUE))
    assert data[0] == 0
    sid = struct.unpack(">I", data[1:5])[0]
    assert ok(call(server, "GET", "/subjects/ser-value/versions/latest"))["id"] == sid


def test_confluent_framing_with_python_avro(server):
    """What AvroSerializer does, with the python-avro library: the registry's id frames a datum
    that decodes again with the schema fetched back by id."""
    avro_schema = pytest.importorskip("avro.schema")
    avro_io = pytest.importorskip("avro.io")
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    client = SchemaRegistryClient({"url": base(server)})
    sid = client.register_schema("framed-value", Schema(json.dumps(REC_AB_DEF), "AVRO"))
    parse = getattr(avro_schema, "parse", None) or avro_schema.Parse
    buf = io.BytesIO()
    buf.write(b"\x00" + struct.pack(">I", sid))
    avro_io.DatumWriter(parse(json.dumps(REC_AB_DEF))).write(
        {"a": 7, "b": "y"}, avro_io.BinaryEncoder(buf))
    framed = buf.getvalue()
    wid = struct.unpack(">I", framed[1:5])[0]
    writer = parse(client.get_schema(wid).schema_str)
    dec = avro_io.DatumReader(writer).read(avro_io.BinaryDecoder(io.BytesIO(framed[5:])))
    assert dec == {"a": 7, "b": "y"}


def test_registry_disabled_and_external(make_server):
    first = make_server()
    off = make_server("--registry.enabled=false")
    body = err(call(off, "GET", "/subjects"), 404)
    assert "disabled" in body["message"]
    ext = make_server("--registry.url", base(first))
    body = err(call(ext, "GET", "/subjects"), 404)
    assert "registry.url" in body["message"]
    wait_until(lambda: "registry: external at " + base(first) in ext.stderr(),
               message="the external registry log line")
    # the embedded one keeps serving whatever its peers do
    assert ok(call(first, "GET", "/subjects"))
