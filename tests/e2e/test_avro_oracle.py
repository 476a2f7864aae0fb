"""MetaSync's Avro codec checked against python-avro 1.11 (Debian's python3-avro), the oracle.

- Compatibility: every pair of tests/avro/compat_pairs.json (the table the C unit test
  test_avro_compat.c also runs) is given to python-avro's ReaderWriterCompatibilityChecker, which
  must agree with the expected answer, unless the pair is marked "oracle": "skip" with a reason
  (python-avro is known to differ from the specification there; see docs/decisions.md).
- Binary: datums written by python-avro's DatumWriter decode with `metasync avro decode` to the
  same value, and what `metasync avro encode` writes python-avro's DatumReader reads back.

Run: METASYNC_BIN=build/metasync /usr/bin/python3 -m pytest tests/e2e/test_avro_oracle.py
"""
import json
from pathlib import Path

import pytest

avro_schema = pytest.importorskip("avro.schema")
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PAIRS = json.loads((REPO / "tests" / "avro" / "compat_pairs.json").read_text())


def test_table_is_large_enough():
    assert len(PAIRS) >= 60
    for p in PAIRS:
        if p.get("oracle") == "skip":
            assert p.get("reason"), p["name"]


@pytest.mark.parametrize("pair", PAIRS, ids=[p["name"] for p in PAIRS])
def test_oracle_agrees_on_compatibility(pair):
    if pair.get("oracle") == "skip":
        pytest.skip(pair["reason"])
    reader = avro_schema.parse(json.dumps(pair["reader"]))
    writer = avro_schema.parse(json.dumps(pair["writer"]))
    got = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer).compatibility
    assert (got is SchemaCompatibilityType.compatible) == pair["compatible"]


# ---------------------------------------------------------------------------------------------
# Binary datums: python-avro writes, MetaSync reads; MetaSync writes, python-avro reads.
# ---------------------------------------------------------------------------------------------
import io  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402

import avro.io  # noqa: E402

BIN = os.environ.get("METASYNC_BIN") or str(REPO / "build" / "metasync")


def metasync(*args, input=b""):
    return subprocess.run([BIN, "avro", *args], input=input, capture_output=True, timeout=60)


def write_schema(tmp_path, schema, name):
    p = tmp_path / name
    p.write_text(json.dumps(schema))
    return str(p)


def parse(schema):
    return avro_schema.parse(json.dumps(schema))


def py_write(schema, datum):
    buf = io.BytesIO()
    avro.io.DatumWriter(parse(schema)).write(datum, avro.io.BinaryEncoder(buf))
    return buf.getvalue()


def py_read(writer, data, reader=None):
    dr = avro.io.DatumReader(parse(writer), parse(reader) if reader is not None else None)
    dec = avro.io.BinaryDecoder(io.BytesIO(data))
    return dr.read(dec)


def natural(v):
    """python-avro's in-memory value as MetaSync's natural JSON (bytes/fixed as code points)."""
    if isinstance(v, bytes):
        return v.decode("latin-1")
    if isinstance(v, dict):
        return {k: natural(x) for k, x in v.items()}
    if isinstance(v, list):
        return [natural(x) for x in v]
    return v


def to_py(schema, v, names=None):
    """Natural JSON to the value python-avro's DatumWriter expects (bytes for bytes/fixed)."""
    s = parse(schema) if not isinstance(schema, avro_schema.Schema) else schema
    return _to_py(s, v)


def _to_py(s, v):
    t = s.type
    if t in ("bytes", "fixed"):
        return v.encode("latin-1")
    if t == "array":
        return [_to_py(s.items, x) for x in v]
    if t == "map":
        return {k: _to_py(s.values, x) for k, x in v.items()}
    if t in ("record", "error"):
        return {f.name: _to_py(f.type, v[f.name]) for f in s.fields}
    if t == "union":
        for b in s.schemas:
            try:
                c = _to_py(b, v)
            except (AttributeError, KeyError, TypeError, UnicodeEncodeError):
                continue
            if avro.io.validate(b, c):
                return c
        raise ValueError("no branch")
    return v


REC = {"type": "record", "name": "Asset", "namespace": "ms", "fields": [
    {"name": "id", "type": "long"},
    {"name": "name", "type": "string"},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "attrs", "type": {"type": "map", "values": ["null", "long", "string", "double"]}},
    {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["TABLE", "VIEW", "TOPIC"]}},
    {"name": "hash", "type": {"type": "fixed", "name": "H4", "size": 4}},
    {"name": "parent", "type": ["null", "Asset"]},
    {"name": "raw", "type": "bytes"},
    {"name": "ok", "type": "boolean"},
    {"name": "f", "type": "float"},
]}
ASSET = {"id": -(2 ** 63), "name": "tbl ünïcødé ✓ 𝄞", "tags": ["a", "", "ç"],
         "attrs": {"n": None, "l": 2 ** 62, "s": "x", "d": -1.25}, "kind": "VIEW",
         "hash": "\x00\xff\x80\x7f", "ok": True, "f": 0.5, "raw": "\x00\x01\xfe\xff",
         "parent": {"id": 2 ** 63 - 1, "name": "", "tags": [], "attrs": {}, "kind": "TOPIC",
                    "hash": "abcd", "parent": None, "raw": "", "ok": False, "f": -3.75}}

VALUE_CASES = [
    ("null", None), ("boolean", True), ("boolean", False),
    ("int", 0), ("int", -1), ("int", 2 ** 31 - 1), ("int", -(2 ** 31)),
    ("long", 2 ** 63 - 1), ("long", -(2 ** 63)), ("long", -64), ("long", 1234567890123),
    ("float", 1.5), ("float", -0.0), ("double", 3.141592653589793), ("double", 1e300),
    ("string", ""), ("string", "héllo wörld — ☃ 𝄞 \u0000 end"),
    ("bytes", ""), ("bytes", "".join(chr(i) for i in range(256))),
    ({"type": "array", "items": "long"}, list(range(-300, 300, 7))),
    ({"type": "map", "values": {"type": "array", "items": "int"}}, {"a": [1, 2], "b": [], "ü": [3]}),
    (["null", "string", "long"], None), (["null", "string", "long"], "s"), (["null", "string", "long"], 5),
    ({"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}, "C"),
    ({"type": "fixed", "name": "F", "size": 3}, "\x00\xa0\xff"),
    ({"type": "long", "logicalType": "x-unknown"}, 42),
    (REC, ASSET),
]


@pytest.mark.parametrize("schema,value", VALUE_CASES, ids=[str(i) for i in range(len(VALUE_CASES))])
def test_python_written_decodes_identically(tmp_path, schema, value):
    data = py_write(schema, to_py(schema, value))
    sp = write_schema(tmp_path, schema, "s.avsc")
    r = metasync("decode", sp, input=data)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == value
    assert natural(py_read(schema, data)) == value


@pytest.mark.parametrize("schema,value", VALUE_CASES, ids=[str(i) for i in range(len(VALUE_CASES))])
def test_metasync_written_reads_in_python(tmp_path, schema, value):
    sp = write_schema(tmp_path, schema, "s.avsc")
    r = metasync("encode", sp, input=json.dumps(value).encode())
    assert r.returncode == 0, r.stderr
    assert natural(py_read(schema, r.stdout)) == value
    # Byte-identical too, except where a value fits several union branches: we take the first
    # (as the brief and Java do), python-avro 1.11's write_union the last (2**62 in
    # ["long","double"] becomes a double there).
    if schema is not REC:
        assert r.stdout == py_write(schema, to_py(schema, value))


def zz(n):
    """Avro zigzag varint of n."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def test_arrays_and_maps_in_several_blocks(tmp_path):
    """Writers may split arrays/maps into blocks, and give a negative count with a byte size."""
    items = [zz(i) for i in (1, -2, 3, 300, -5)]
    data = (zz(2) + items[0] + items[1]
            + zz(-2) + zz(len(items[2] + items[3])) + items[2] + items[3]
            + zz(1) + items[4] + zz(0))
    schema = {"type": "array", "items": "long"}
    assert py_read(schema, data) == [1, -2, 3, 300, -5]
    r = metasync("decode", write_schema(tmp_path, schema, "a.avsc"), input=data)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [1, -2, 3, 300, -5]
    mschema = {"type": "map", "values": "string"}
    entry = lambda k, v: zz(len(k)) + k + zz(len(v)) + v  # noqa: E731
    mdata = zz(-1) + zz(len(entry(b"a", b"x"))) + entry(b"a", b"x") + zz(1) + entry(b"b", b"") + zz(0)
    assert py_read(mschema, mdata) == {"a": "x", "b": ""}
    r = metasync("decode", write_schema(tmp_path, mschema, "m.avsc"), input=mdata)
    assert json.loads(r.stdout) == {"a": "x", "b": ""}


W = {"type": "record", "name": "Ev", "namespace": "ms", "fields": [
    {"name": "n", "type": "int"},
    {"name": "old_name", "type": "string"},
    {"name": "dropped", "type": {"type": "map", "values": "long"}},
    {"name": "k", "type": {"type": "enum", "name": "K", "symbols": ["A", "B", "NEW"]}},
    {"name": "u", "type": ["null", "int", "string"]},
    {"name": "fl", "type": "float"},
    {"name": "b", "type": "bytes"},
    {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "It",
                                                           "fields": [{"name": "x", "type": "int"}]}}},
]}
R = {"type": "record", "name": "Event", "namespace": "ms", "aliases": ["ms.Ev"], "fields": [
    {"name": "n", "type": "double"},
    {"name": "name", "type": "string", "aliases": ["old_name"]},
    {"name": "k", "type": {"type": "enum", "name": "K", "symbols": ["A", "B"], "default": "A"}},
    {"name": "u", "type": ["null", "long", "string"]},
    {"name": "fl", "type": "double"},
    {"name": "b", "type": "string"},
    {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "It", "fields": [
        {"name": "x", "type": "long"}, {"name": "y", "type": "string", "default": "dflt"}]}}},
    {"name": "added", "type": ["null", "string"], "default": None},
    {"name": "added_rec", "type": {"type": "record", "name": "Sub", "fields": [
        {"name": "a", "type": "float"}, {"name": "m", "type": {"type": "map", "values": "bytes"}}]},
     # ASCII only: python-avro 1.11 turns a bytes default into the UTF-8 of the string, where
     # the spec (and we) read code points U+0000..U+00FF as bytes (unit-tested in C).
     "default": {"a": 1.5, "m": {"q": "z~"}}},
]}
RES_VALUES = [
    {"n": 7, "old_name": "hi", "dropped": {"z": 1}, "k": "NEW", "u": 5, "fl": 0.1, "b": "text",
     "items": [{"x": 1}, {"x": -2}]},
    {"n": -1, "old_name": "ü", "dropped": {}, "k": "B", "u": None, "fl": -2.5, "b": "",
     "items": []},
    {"n": 0, "old_name": "", "dropped": {}, "k": "A", "u": "s", "fl": 1e10, "b": "abc",
     "items": [{"x": 2 ** 31 - 1}]},
]


def _r_py():
    """R as python-avro 1.11's DatumReader can use it. That reader ignores aliases (records match
    by name, fields by name only), reads no enum default and does not promote bytes to string,
    although its compatibility checker accepts all three. So R_PY names the record and the field
    as the writer does, keeps the writer's extra symbol and reads bytes as bytes; the test then
    maps python's answer the way the specification says (rename, enum default)."""
    r = json.loads(json.dumps(R))
    r["name"] = "Ev"
    del r["aliases"]
    for f in r["fields"]:
        if f["name"] == "name":
            f["name"] = "old_name"
            del f["aliases"]
        elif f["name"] == "k":
            f["type"]["symbols"].append("NEW")
        elif f["name"] == "b":
            f["type"] = "bytes"
    return r


R_PY = _r_py()


@pytest.mark.parametrize("value", RES_VALUES, ids=["0", "1", "2"])
def test_resolution_matches_python(tmp_path, value):
    data = py_write(W, to_py(W, value))
    expected = natural(py_read(W, data, R_PY))
    expected["name"] = expected.pop("old_name")
    if expected["k"] == "NEW":
        expected["k"] = "A"  # the reader enum's default
    r = metasync("decode", write_schema(tmp_path, W, "w.avsc"), "--reader",
                 write_schema(tmp_path, R, "r.avsc"), input=data)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == expected
    # Framed (Confluent) input decodes the same, the schema id aside.
    framed = b"\x00" + (1234).to_bytes(4, "big") + data
    r = metasync("decode", write_schema(tmp_path, W, "w.avsc"), "--framed", "--reader",
                 write_schema(tmp_path, R, "r.avsc"), input=framed)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == expected


PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")


def crc64_avro(text):
    """CRC-64-AVRO as the specification describes it."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for b in text.encode():
        fp = (fp >> 8) ^ table[(fp ^ b) & 0xFF]
    return fp


REPO_SCHEMAS = [json.loads(p.read_text()) for p in sorted((REPO / "schemas").glob("*.avsc"))]


@pytest.mark.parametrize("schema", [s for s, _ in VALUE_CASES] + [W, R] + REPO_SCHEMAS,
                         ids=[str(i) for i in range(len(VALUE_CASES) + 2 + len(REPO_SCHEMAS))])
def test_canonical_form_and_fingerprint(tmp_path, schema):
    r = metasync("fingerprint", write_schema(tmp_path, schema, "s.avsc"))
    assert r.returncode == 0, r.stderr
    canonical, fp = r.stdout.decode().splitlines()
    if isinstance(schema, dict) and schema.get("logicalType") and schema["type"] in PRIMITIVES:
        # python-avro 1.11 prints {"type":"long"} here; the spec's [PRIMITIVES] rule says "long".
        assert canonical == json.dumps(schema["type"])
    else:
        assert canonical == parse(schema).canonical_form
    assert int(fp, 16) == crc64_avro(canonical)


def test_spec_fingerprint_example(tmp_path):
    r = metasync("fingerprint", write_schema(tmp_path, "int", "s.avsc"))
    assert r.stdout.decode().splitlines() == ['"int"', "7275d51a3f395c8f"]


@pytest.mark.parametrize("pair", [p for p in PAIRS if not p.get("oracle")][:20],
                         ids=[p["name"] for p in PAIRS if not p.get("oracle")][:20])
def test_check_command_agrees_with_table(tmp_path, pair):
    r = metasync("check", write_schema(tmp_path, pair["reader"], "r.avsc"),
                 write_schema(tmp_path, pair["writer"], "w.avsc"))
    assert r.returncode == (0 if pair["compatible"] else 1), r.stdout + r.stderr
    assert (r.stdout == b"compatible\n") == pair["compatible"]


def test_help_of_every_subcommand():
    for sub in ("check", "decode", "encode", "fingerprint"):
        r = metasync(sub, "--help")
        assert r.returncode == 0 and b"Usage: metasync avro" in r.stdout
