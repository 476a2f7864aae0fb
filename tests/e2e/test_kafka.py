"""Kafka in and out, against librdkafka's mock cluster (build/ms_mock_cluster, 3 brokers):
JSON events consumed from metasync.events become assets; change records appear on
metasync.changes with key and headers; every kind of bad message becomes a dead letter with the
right headers while consumption goes on; `metasync dlq list|replay` re-injects after a fix; a
broker taken down and back loses nothing.
"""
import json
import re

import pytest

from conftest import T, run_cli, wait_until
from kafka_util import MockCluster, kcat_headers, kcat_json, produce, read_topic

TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")


@pytest.fixture
def kafka():
    mc = MockCluster()
    yield mc
    mc.close()


@pytest.fixture
def kserver(make_server, kafka):
    """A server consuming from and producing to the mock cluster."""
    return make_server("--kafka.brokers", kafka.bootstrap, "--kafka.properties.log_level", "3")


def upsert(qn, typ, **extra):
    return {"op": "upsert", "type": typ, "qualified_name": qn, **extra}


def estate(prefix="pg"):
    return [upsert(prefix, "connection"), upsert(f"{prefix}/sales", "database"),
            upsert(f"{prefix}/sales/public", "schema"),
            upsert(f"{prefix}/sales/public/orders", "table", id=f"{prefix}-orders")]


def dead_letters(bootstrap):
    return read_topic(bootstrap, "metasync.dlq")


def test_json_events_become_assets_and_changes_go_out(kafka, kserver):
    base = kserver.last_seq()  # the registry's built-in schemas are assets too
    evs = estate()
    produce(kafka.bootstrap, "metasync.events", [(b"pg", json.dumps(e), None) for e in evs])
    col = upsert("pg/sales/public/orders/amount", "column", attributes={"data_type": "int"})
    produce(kafka.bootstrap, "metasync.events.bulk", [(b"pg/sales/public/orders", json.dumps(col),
                                                       None)])
    wait_until(lambda: kserver.asset_status("pg/sales/public/orders/amount") == 200, 30,
               message="the column consumed from the bulk topic")
    wait_until(lambda: kserver.asset_status("pg/sales/public/orders") == 200, 30,
               message="the table consumed from the fast topic")
    assert kserver.asset("pg/sales/public/orders")["type"] == "table"
    changes = kserver.all_changes(after=base)
    assert len(changes) == 5

    def on_topic():
        got = [m for m in kcat_json(kafka.bootstrap, "metasync.changes")
               if json.loads(m["payload"])["seq"] > base]
        return got if len(got) >= 5 else None

    out = wait_until(on_topic, 30, message="5 change records on metasync.changes")
    by_seq = {}
    for m in out:
        rec = json.loads(m["payload"])
        h = kcat_headers(m)
        assert m["key"] == rec["qualified_name"]
        assert h["tenant"] == "default" and h["seq"] == str(rec["seq"])
        assert TRACEPARENT.match(h["traceparent"]), h
        assert h["cause"] == rec["cause"]
        by_seq[rec["seq"]] = (rec, h)
    assert sorted(by_seq) == list(range(base + 1, base + 6))
    # An event without an id gets one derived from where it was read; one with an id keeps it.
    orders = next(r for r, _ in by_seq.values() if r["qualified_name"].endswith("orders"))
    assert orders["cause"] == "pg-orders"
    pg = next(r for r, _ in by_seq.values() if r["qualified_name"] == "pg")
    assert re.match(r"^kafka:metasync\.events:\d+:0$", pg["cause"]), pg["cause"]
    # The same change always carries the same traceparent; different changes different ones.
    assert len({h["traceparent"] for _, h in by_seq.values()}) == 5
    m = kserver.metrics()
    assert 'metasync_kafka_messages_consumed_total{topic="metasync.events"} 4' in m
    assert 'metasync_kafka_messages_consumed_total{topic="metasync.events.bulk"} 1' in m
    # The cursor moves when the delivery reports arrive, which may be after a reader sees them.
    cursor = f'metasync_sink_cursor{{sink="kafka",tenant="default"}} {base + 5}'
    wait_until(lambda: cursor in kserver.metrics(), 30, message="the sink cursor past the 5")


def test_tenant_header_routes_the_event(kafka, kserver):
    produce(kafka.bootstrap, "metasync.events",
            [(b"acme", json.dumps(upsert("acme-pg", "connection")), [("tenant", b"acme")]),
             upsert("probe-1", "connection")])
    wait_until(lambda: kserver.asset_status("probe-1") == 200, 30, message="probe-1")

    def acme_change():
        for m in kcat_json(kafka.bootstrap, "metasync.changes"):
            if m["key"] == "acme-pg":
                return m
        return None

    m = wait_until(acme_change, 30, message="the change of tenant acme")
    assert kcat_headers(m)["tenant"] == "acme" and json.loads(m["payload"])["tenant"] == "acme"
    assert kserver.asset_status("acme-pg") == 404  # not in the default tenant


BAD = [
    ("garbage", b"\xff\xfe not an event", "unknown_magic_byte"),
    ("wrong-magic", b"\x05\x00\x00\x00\x01abc", "unknown_magic_byte"),
    ("truncated-frame", b"\x00\x00\x01", "avro_decode_failed"),
    ("unknown-schema", b"\x00\x00\x00\x30\x39\x02\x04ab", "unknown_schema_id"),
    ("invalid-json", b'{"op":"upsert","type":', "malformed_json"),
    ("unknown-type", json.dumps(upsert("w1", "widget")).encode(), "unknown_type"),
    ("apply-rejected", json.dumps({"op": "tag", "qualified_name": "nowhere/x",
                                   "tag": "PII"}).encode(), None),
]


def test_bad_messages_become_dead_letters_and_consumption_goes_on(kafka, kserver):
    msgs = [(name.encode(), value, [("trace", name.encode())]) for name, value, _ in BAD]
    msgs.append((b"ok", json.dumps(upsert("after-the-bad", "connection")), None))
    produce(kafka.bootstrap, "metasync.events", msgs)
    wait_until(lambda: kserver.asset_status("after-the-bad") == 200, 30,
               message="the good event after the bad ones")
    dl = wait_until(lambda: (lambda d: d if len(d) >= len(BAD) else None)(
        dead_letters(kafka.bootstrap)), 30, message="every dead letter")
    assert len(dl) == len(BAD)
    by_key = {d["key"].decode(): d for d in dl}
    for name, value, code in BAD:
        d = by_key[name]
        h = d["headers"]
        assert d["value"] == value, name  # the original bytes, untouched
        assert h["trace"] == name  # the original headers are kept
        if code:
            assert h["error.code"] == code, (name, h)
        else:  # refused when applied: the store's code
            assert h["error.code"] not in ("", "ok"), h
        assert h["error.message"], h
        assert h["source.topic"] == "metasync.events"
        assert int(h["source.partition"]) >= 0 and int(h["source.offset"]) >= 0
    # Counted once their delivery is reported, which may be after a reader sees them.
    wait_until(lambda: 'metasync_kafka_dead_letters_total{code="unknown_magic_byte"} 2'
               in kserver.metrics(), 30, message="the dead letters counted")
    kserver.assert_healthy()


def test_dlq_replay_reinjects_after_the_fix(kafka, kserver):
    produce(kafka.bootstrap, "metasync.events",
            [(b"w", json.dumps(upsert("pg-w", "connection")), None),
             (b"w", json.dumps(upsert("pg-w/w1", "widget", id="w-1")), [("origin", b"test")]),
             (b"junk", b"junk", None)])
    wait_until(lambda: len(dead_letters(kafka.bootstrap)) == 2, 30, message="2 dead letters")
    flags = ["--kafka.brokers", kafka.bootstrap]
    r = run_cli("dlq", "list", *flags)
    assert r.returncode == 0, r.stderr
    listed = [json.loads(line) for line in r.stdout.splitlines()]
    assert {x["headers"]["error.code"] for x in listed} == {"unknown_type",
                                                            "unknown_magic_byte"}
    r = run_cli("dlq", "replay", "--code", "unknown_type", "--dry-run", *flags)
    assert r.returncode == 0, r.stderr
    dry = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(dry) == 1 and dry[0]["replay_to"] == "metasync.events"
    # The fix: register the missing type. Then replay only that code.
    t = kserver.post("/api/v1/types", json.dumps({"name": "widget", "parents": ["connection"]}))
    assert t.status_code == 201, t.text
    r = run_cli("dlq", "replay", "--code", "unknown_type", "--topic", "metasync.events", *flags)
    assert r.returncode == 0, r.stderr
    wait_until(lambda: kserver.asset_status("pg-w/w1") == 200, 30, message="the replayed event")
    hist = kserver.history("pg-w/w1")
    assert hist[0]["cause"] == "w-1"
    # The replayed message carries its original headers, not the dead-letter ones.
    replayed = [m for m in read_topic(kafka.bootstrap, "metasync.events") if m["key"] == b"w"]
    assert replayed[-1]["headers"] == {"origin": "test"}
    # The junk was not replayed (filter), so the DLQ still holds 2 letters.
    assert len(dead_letters(kafka.bootstrap)) == 2
    r = run_cli("dlq", "--help")
    assert r.returncode == 0 and "replay" in r.stdout


def test_broker_down_and_up_loses_nothing(kafka, kserver):
    base = kserver.last_seq()
    produce(kafka.bootstrap, "metasync.events", [upsert(f"bd-{i}", "connection") for i in range(20)])
    wait_until(lambda: kserver.asset_status("bd-19") == 200, 30, message="the first 20")
    kafka.down(1)
    # Produce while a broker is down: the producer retries until its partitions are back.
    import threading
    t = threading.Thread(target=produce, args=(kafka.bootstrap, "metasync.events",
                                               # distinct keys spread the events over every
                                               # partition, so some have a live leader
                                               [(f"bd-{i}".encode(),
                                                 upsert(f"bd-{i}", "connection", id=f"bd-{i}"),
                                                 None) for i in range(20, 60)]),
                         kwargs={"message.timeout.ms": int(T(120) * 1000)})
    t.start()
    wait_until(lambda: kserver.asset_status("bd-59") == 200 or
               any(kserver.asset_status(f"bd-{i}") == 200 for i in range(20, 60)), 60,
               message="some events produced during the outage")
    kafka.up(1)
    t.join(T(120))
    assert not t.is_alive()
    wait_until(lambda: all(kserver.asset_status(f"bd-{i}") == 200 for i in range(60)), 60,
               message="every event after the broker is back")
    assert kserver.last_seq() == base + 60

    def all_changes_out():
        seqs = {json.loads(m["payload"])["seq"] for m in kcat_json(kafka.bootstrap,
                                                                    "metasync.changes")}
        return seqs if seqs >= set(range(1, base + 61)) else None

    wait_until(all_changes_out, 60, message="every change on metasync.changes")
    kserver.assert_healthy()


def test_changes_topic_per_tenant(kafka, make_server):
    server = make_server("--kafka.brokers", kafka.bootstrap, "--kafka.changes-topic-per-tenant=true",
                         "--kafka.properties.log_level", "3")
    produce(kafka.bootstrap, "metasync.events",
            [(b"t", json.dumps(upsert("tt-1", "connection")), [("tenant", b"acme")]),
             upsert("tt-2", "connection")])
    wait_until(lambda: server.asset_status("tt-2") == 200, 30, message="tt-2")

    def on(topic, qn):
        try:
            return [m for m in read_topic(kafka.bootstrap, topic) if m["key"] == qn.encode()]
        except Exception:  # the topic is created by the first produce
            return None

    acme = wait_until(lambda: on("acme.metasync.changes", "tt-1"), 30, message="acme's topic")
    assert acme[0]["headers"]["tenant"] == "acme"
    assert wait_until(lambda: on("default.metasync.changes", "tt-2"), 30,
                      message="default's topic")


def test_bad_kafka_property_is_named(kafka, make_server):
    server = make_server("--kafka.brokers", kafka.bootstrap, "--kafka.properties.no.such.thing",
                         "1", start=False)
    with pytest.raises(AssertionError, match="kafka.properties.no.such.thing"):
        server.start()
    assert server.stop(check=False) == 2


def test_dlq_filters_by_offset_and_limit(kafka, kserver):
    produce(kafka.bootstrap, "metasync.events",
            [(b"same-key", f"junk-{i}".encode(), None) for i in range(5)])
    wait_until(lambda: len(dead_letters(kafka.bootstrap)) == 5, 30, message="5 dead letters")
    flags = ["--kafka.brokers", kafka.bootstrap]

    def listed(*args):
        r = run_cli("dlq", "list", *args, *flags)
        assert r.returncode == 0, r.stderr
        return [json.loads(line) for line in r.stdout.splitlines()]

    everything = listed()
    assert [x["value"] for x in everything] == [f"junk-{i}" for i in range(5)]  # one partition
    assert [x["value"] for x in listed("--since", "1", "--until", "3")] == \
        ["junk-1", "junk-2", "junk-3"]
    assert len(listed("--limit", "2")) == 2
    assert listed("--code", "no_such_code") == []
    r = run_cli("dlq", "replay", "--to", "elsewhere", *flags)
    assert r.returncode == 0, r.stderr
    assert [m["value"] for m in read_topic(kafka.bootstrap, "elsewhere")] == \
        [f"junk-{i}".encode() for i in range(5)]
    r = run_cli("dlq", "list", "--to", "x", *flags)
    assert r.returncode == 2 and "replay" in r.stderr
