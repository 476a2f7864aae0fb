"""Several workers: `metasync serve` processes in one Kafka consumer group over one PostgreSQL
store and one snapshot directory. Three workers take a stream of events (fast and bulk topics)
while a fourth joins and leaves and one is killed with SIGKILL: every event is applied exactly
once in effect (asset versions), the change seq has no gaps, every change reaches
metasync.changes (deduplicated by seq) and the shared snapshot objects hold every seq — each
(sink, tenant) is delivered by the worker holding its lease, and another takes over when the
holder dies. Also: the first events of new tenants written by three workers at once (each
tenant's seqs 1..N, no batch failing on a duplicate seq or a deadlock). Runs only with
METASYNC_TEST_STORE=postgres.
"""
import json
import os
import threading

import pytest

import pgserver
from conftest import BIN, T, TEST_STORE, pg_cluster, read_snapshots, wait_until
from kafka_util import MockCluster, kcat_json, producer

pytestmark = pytest.mark.skipif(TEST_STORE != "postgres",
                                reason="several workers need METASYNC_TEST_STORE=postgres")


@pytest.fixture
def kafka():
    mc = MockCluster()
    yield mc
    mc.close()


def test_workers_share_the_stream_and_survive_a_crash(kafka, make_server, tmp_path):
    url = pg_cluster().new_database(f"workers_{os.getpid()}", migrate_with=BIN)[1]
    snap = tmp_path / "shared"
    snap.mkdir()
    args = ("--store.url", url, "--snapshots.url", f"file://{snap}/snapshots",
            "--snapshots.max-object-age-ms", "200",
            "--kafka.brokers", kafka.bootstrap, "--kafka.batch-max-messages", "20",
            "--kafka.properties.log_level", "3", "--kafka.properties.session.timeout.ms", "6000")
    workers = [make_server(*args) for _ in range(3)]
    base = workers[0].last_seq()  # the registry's built-in schemas are assets too
    assets, rounds, bulk = 30, 12, 200
    p = producer(kafka.bootstrap)

    def produce_round(k):
        for i in range(assets):
            qn = f"wk/c{i}"
            ev = {"id": f"wk-{i}-{k}", "op": "upsert", "type": "connection", "qualified_name": qn,
                  "attributes": {"n": k}}
            p.produce("metasync.events", key=qn, value=json.dumps(ev))
        assert p.flush(T(30)) == 0

    produced = threading.Event()
    errors = []

    def produce_bulk():
        try:
            q = producer(kafka.bootstrap)
            for i in range(bulk):
                ev = {"id": f"wb-{i}", "op": "upsert", "type": "connection",
                      "qualified_name": f"wb/c{i}"}
                q.produce("metasync.events.bulk", key=f"wb/c{i}", value=json.dumps(ev))
            assert q.flush(T(60)) == 0
        except Exception as e:  # reported by the main thread
            errors.append(e)
        finally:
            produced.set()

    t = threading.Thread(target=produce_bulk)
    t.start()
    for k in range(rounds // 3):
        produce_round(k)
    wait_until(lambda: workers[1].last_seq() >= base + assets, 60, message="a first part applied")
    joiner = make_server(*args)  # a fourth worker joins mid-stream...
    for k in range(rounds // 3, 2 * rounds // 3):
        produce_round(k)
    wait_until(lambda: joiner.last_seq() >= base + assets * 2, 60, message="more applied")
    joiner.stop()  # ...and leaves

    def holder():
        held = [w for w in workers if "sink kafka: took the lease of default" in w.stderr()]
        return held[0] if held else None

    crashed = wait_until(holder, 30, message="a worker holding the kafka sink's lease")
    crashed.kill9()  # and the worker delivering the sinks crashes
    for k in range(2 * rounds // 3, rounds):
        produce_round(k)
    t.join(T(120))
    assert not errors, errors
    alive = [w for w in workers if w is not crashed]
    total = base + assets * rounds + bulk

    def version(w, qn):
        r = w.get(f"/api/v1/assets/{qn}")
        return r.json()["version"] if r.status_code == 200 else 0

    wait_until(lambda: all(version(alive[0], f"wk/c{i}") == rounds for i in range(assets)), 120,
               message="every asset at its last version")
    wait_until(lambda: alive[1].last_seq() >= total, 120, message="every bulk event applied")
    for w in alive:  # any worker answers, with the same store behind it
        for i in range(assets):
            a = w.asset(f"wk/c{i}")
            assert a["version"] == rounds and a["attributes"] == {"n": rounds - 1}, a
        assert w.asset("wb/c7")["version"] == 1
    assert [c["seq"] for c in alive[1].all_changes()] == list(range(1, total + 1))

    def every_change_out():
        seqs = {json.loads(m["payload"])["seq"] for m in kcat_json(kafka.bootstrap,
                                                                    "metasync.changes")}
        return seqs if seqs >= set(range(1, total + 1)) else None

    wait_until(every_change_out, 120, message="every change on metasync.changes")

    def snapshots_complete():
        records, _ = read_snapshots(snap)
        return set(records) >= set(range(1, total + 1))

    wait_until(snapshots_complete, 120, message="every seq in the shared snapshot objects")
    # Another worker took the sinks over from the crashed one.
    assert any("sink kafka: took the lease of default" in w.stderr() for w in alive)
    assert any("sink snapshots: took the lease of default" in w.stderr() for w in alive)


def test_schema_registered_on_one_worker_decodes_on_another(kafka, make_server):
    """A schema registered through worker A's /registry is known by id to worker B (it reads the
    store's registry records again on an unknown id): B's registry answers for it, and the Avro
    events framed with it are applied whichever worker consumes them."""
    avro_schema = pytest.importorskip("avro.schema")
    avro_io = pytest.importorskip("avro.io")
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    import io
    import struct
    url = pg_cluster().new_database(f"workers_avro_{os.getpid()}", migrate_with=BIN)[1]
    args = ("--store.url", url, "--kafka.brokers", kafka.bootstrap,
            "--kafka.properties.log_level", "3", "--kafka.properties.session.timeout.ms", "6000")
    a, b = make_server(*args), make_server(*args)
    opt = lambda name: {"name": name, "type": ["null", "string"], "default": None}  # noqa: E731
    schema = {"type": "record", "name": "Event", "namespace": "io.metasync",
              "fields": [opt("id"), {"name": "op", "type": "string"}, opt("type"),
                         opt("qualified_name")]}
    sid = SchemaRegistryClient({"url": a.url + "/registry"}).register_schema(
        "metasync.events-value", Schema(json.dumps(schema), "AVRO"))
    r = b.get(f"/registry/schemas/ids/{sid}")
    assert r.status_code == 200 and json.loads(r.json()["schema"])["name"] == "Event", r.text
    parsed = (getattr(avro_schema, "parse", None) or avro_schema.Parse)(json.dumps(schema))
    p = producer(kafka.bootstrap)
    n = 20  # keys over every partition: both workers consume some
    for i in range(n):
        buf = io.BytesIO()
        buf.write(b"\x00" + struct.pack(">I", sid))
        avro_io.DatumWriter(parsed).write({"id": f"wa-{i}", "op": "upsert", "type": "connection",
                                           "qualified_name": f"wa/c{i}"},
                                          avro_io.BinaryEncoder(buf))
        p.produce("metasync.events", key=f"wa/c{i}", value=buf.getvalue())
    assert p.flush(T(30)) == 0
    wait_until(lambda: all(b.asset_status(f"wa/c{i}") == 200 for i in range(n)), 60,
               message="every Avro event applied")


def test_first_writes_of_new_tenants_on_several_workers(kafka, make_server):
    """Three workers write the first events of brand-new tenants at the same time (every
    partition carries every tenant, batches of several tenants): the tenant's row is created by
    one of them and the others wait for it, and the tenants are locked in one order, so no batch
    fails (on a duplicate seq, or a deadlock) and each tenant's change records are seq 1..N with
    no gap or duplicate."""
    name = f"workers_tenants_{os.getpid()}"
    url = pg_cluster().new_database(name, migrate_with=BIN)[1]
    args = ("--store.url", url, "--kafka.brokers", kafka.bootstrap,
            "--kafka.batch-max-messages", "50", "--kafka.properties.log_level", "3",
            "--kafka.properties.session.timeout.ms", "6000")
    workers = [make_server(*args) for _ in range(3)]

    def settled():  # every worker's last assignment gave it partitions
        lines = [[ln for ln in w.stderr().splitlines() if "kafka: assigned" in ln
                  or "kafka: revoking" in ln] for w in workers]
        return all(ls and "kafka: assigned" in ls[-1] and "assigned 0 " not in ls[-1]
                   for ls in lines)

    wait_until(settled, 60, message="the partitions spread over the three workers")
    tenants, per_tenant = [f"fresh{k}" for k in range(12)], 40
    p = producer(kafka.bootstrap)
    for i in range(per_tenant):  # interleaved: each tenant's first events land everywhere
        for t in tenants:
            ev = {"id": f"{t}-{i}", "op": "upsert", "type": "connection",
                  "qualified_name": f"{t}/c{i}"}
            p.produce("metasync.events", key=f"{t}/c{i}", value=json.dumps(ev),
                      headers=[("tenant", t.encode())])
    assert p.flush(T(30)) == 0

    def seqs():
        r = pg_cluster().psql("SELECT tenant, string_agg(seq::text, ',' ORDER BY seq)"
                              " FROM changes WHERE tenant LIKE 'fresh%' GROUP BY tenant",
                              db=name, user=pgserver.OWNER)
        return dict(line.split("|") for line in r.stdout.split())

    def applied():
        now = seqs()
        return len(now) == len(tenants) and all(len(v.split(",")) >= per_tenant
                                                for v in now.values())

    wait_until(applied, 120, message="every tenant's events applied")
    want = ",".join(str(s) for s in range(1, per_tenant + 1))
    assert seqs() == {t: want for t in tenants}
    last = pg_cluster().psql("SELECT tenant || '=' || last_seq FROM tenants WHERE tenant LIKE"
                             " 'fresh%'", db=name, user=pgserver.OWNER)
    assert sorted(last.stdout.split()) == sorted(f"{t}={per_tenant}" for t in tenants)
    for w in workers:  # no batch was rolled back (and retried)
        failed = [ln for ln in w.stderr().splitlines() if "commit of" in ln and "failed" in ln
                  or "not applied" in ln]
        assert not failed, failed
