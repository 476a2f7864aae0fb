"""Several workers: `metasync serve` processes in one Kafka consumer group over one PostgreSQL
store and one snapshot directory. Three workers take a stream of events (fast and bulk topics)
while a fourth joins and leaves and one is killed with SIGKILL: every event is applied exactly
once in effect (asset versions), the change seq has no gaps, every change reaches
metasync.changes (deduplicated by seq) and the shared snapshot objects hold every seq — each
(sink, tenant) is delivered by the worker holding its lease, and another takes over when the
holder dies. Also: a long-poll and an SSE stream on one worker woken by a commit on another
(NOTIFY), leases spread over the workers and taken over from a SIGKILLed one, schema
registrations at the same moment on three workers (ids and versions never collide; every worker
answers for every registration), and the first events of new tenants written by three workers at
once (each tenant's seqs 1..N, no batch failing on a duplicate seq or a deadlock). Runs only with
METASYNC_TEST_STORE=postgres.
"""
import json
import os
import threading

import pytest
import requests

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


def test_long_poll_on_one_worker_is_woken_by_a_commit_on_another(make_server):
    """Worker B's long-poll (`wait`) is woken by a commit made through worker A (the store's
    NOTIFY reaches B's listener), before the long-poll's own wait ends."""
    from test_changes import http_requests_total, wait_request_arrived
    url = pg_cluster().new_database(f"workers_notify_{os.getpid()}", migrate_with=BIN)[1]
    a, b = make_server("--store.url", url), make_server("--store.url", url)
    a.ingest_ok([{"op": "upsert", "type": "connection", "qualified_name": "n/first"}])
    seq = b.last_seq()
    wait = 60  # changes.max_wait_seconds
    result = {}

    def poll():
        result["r"] = requests.get(b.url + "/api/v1/changes",
                                   params={"after": seq, "wait": wait}, timeout=T(wait + 30))

    baseline = http_requests_total(b)
    t = threading.Thread(target=poll)
    t.start()
    wait_request_arrived(b, baseline)
    assert t.is_alive(), "the long-poll returned before anything was committed"
    ans = a.ingest_ok([{"id": "n-1", "op": "upsert", "type": "connection",
                        "qualified_name": "n/second"}])
    t.join(min(T(30), wait - 10))  # shorter than the poll's own wait: only a wake-up ends it
    assert not t.is_alive(), "the long-poll on B was not woken by A's commit"
    r = result["r"]
    assert r.status_code == 200, r.text
    page = r.json()
    assert [c["qualified_name"] for c in page["items"]] == ["n/second"]
    assert page["items"][0]["seq"] == ans["last_seq"] == seq + 1
    assert page["items"][0]["cause"] == "n-1"


def test_leases_spread_over_workers_and_move_when_one_dies(kafka, make_server, tmp_path):
    """With three workers and several tenants, the (sink, tenant) leases end up on more than one
    worker (a worker takes no more than its fair share while the others ask too); after the
    worker holding some of them is SIGKILLed, the survivors take each of its leases over."""
    import re
    url = pg_cluster().new_database(f"workers_leases_{os.getpid()}", migrate_with=BIN)[1]
    snap = tmp_path / "shared"
    snap.mkdir()
    args = ("--store.url", url, "--snapshots.url", f"file://{snap}/snapshots",
            "--snapshots.max-object-age-ms", "200", "--kafka.brokers", kafka.bootstrap,
            "--kafka.properties.log_level", "3", "--kafka.properties.session.timeout.ms", "6000")
    workers = [make_server(*args) for _ in range(3)]
    tenants = [f"lt{i}" for i in range(6)]
    p = producer(kafka.bootstrap)
    for t in tenants:
        ev = {"id": f"{t}-1", "op": "upsert", "type": "connection", "qualified_name": f"{t}/c"}
        p.produce("metasync.events", key=f"{t}/c", value=json.dumps(ev),
                  headers=[("tenant", t.encode())])
    assert p.flush(T(30)) == 0
    took = re.compile(r"sink (\w+): took the lease of ([^;\s]+)")

    def leases(w):
        return {m for m in took.findall(w.stderr()) if m[1] in tenants}

    wanted = {(s, t) for s in ("kafka", "snapshots") for t in tenants}
    wait_until(lambda: set().union(*(leases(w) for w in workers)) >= wanted, 60,
               message="every (sink, tenant) lease taken")
    held = [leases(w) for w in workers]
    assert sum(len(h) for h in held) == len(wanted), held  # each lease on one worker
    fair = -(-len(wanted) // len(workers))  # ceil(leases / live workers)
    assert all(len(h) <= fair for h in held), held  # spread, not all on the first worker
    dead = max(range(3), key=lambda i: len(held[i]))
    workers[dead].kill9()
    alive = [w for i, w in enumerate(workers) if i != dead]
    wait_until(lambda: set().union(*(leases(w) for w in alive)) >= wanted, 60,
               message="the dead worker's leases taken over")
    # The sinks go on: a change after the takeover reaches the shared snapshot objects.
    ev = {"id": "lt0-2", "op": "upsert", "type": "connection", "qualified_name": "lt0/d"}
    p.produce("metasync.events", key="lt0/d", value=json.dumps(ev), headers=[("tenant", b"lt0")])
    assert p.flush(T(30)) == 0
    wait_until(lambda: any("lt0/d" in f.read_text() for f in (snap / "snapshots").rglob("*.ndjson")),
               60, message="the change after the takeover in a snapshot object")


def test_registry_registrations_at_once_on_three_workers(make_server):
    """Schemas registered at the same moment through three workers' /registry never share an id
    when they differ, versions of one subject never collide, and every worker answers for every
    subject and version, whichever worker registered it (it reads the store's records)."""
    url = pg_cluster().new_database(f"workers_registry_{os.getpid()}", migrate_with=BIN)[1]
    workers = [make_server("--store.url", url) for _ in range(3)]
    ct = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
    r = requests.put(workers[0].url + "/registry/config/shared-value",
                     data=json.dumps({"compatibility": "NONE"}), headers=ct, timeout=T(10))
    assert r.status_code == 200, r.text

    def schema(w, i):
        return json.dumps({"type": "record", "name": f"R{w}x{i}",
                           "fields": [{"name": f"f{w}x{i}", "type": "string"}]})

    per = 8
    start = threading.Barrier(3 * 2)
    got, errors = {}, []

    def register(w, subject_of):
        try:
            start.wait(T(30))
            for i in range(per):
                subject = subject_of(i)
                r = requests.post(f"{workers[w].url}/registry/subjects/{subject}/versions",
                                  data=json.dumps({"schema": schema(w, i)}), headers=ct,
                                  timeout=T(30))
                assert r.status_code == 200, r.text
                got[(w, i, subject)] = r.json()["id"]
        except Exception as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=register, args=(w, lambda i, w=w: f"own-{w}-{i}-value"))
               for w in range(3)]
    threads += [threading.Thread(target=register, args=(w, lambda i: "shared-value"))
                for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(T(120))
    assert not errors, errors
    # The same text has one id (each schema went to its own subject and to the shared one);
    # different texts never share one.
    by_text = {}
    for (w, i, _), sid in got.items():
        by_text.setdefault(schema(w, i), set()).add(sid)
    assert all(len(ids) == 1 for ids in by_text.values()), by_text
    assert len({next(iter(ids)) for ids in by_text.values()}) == len(by_text) == 3 * per
    for w in workers:  # every worker sees every registration, with one numbering
        vs = requests.get(w.url + "/registry/subjects/shared-value/versions", timeout=T(10))
        assert vs.json() == list(range(1, 3 * per + 1)), vs.text
        ids = set()
        for v in vs.json():
            r = requests.get(f"{w.url}/registry/subjects/shared-value/versions/{v}",
                             timeout=T(10))
            assert r.status_code == 200, r.text
            ids.add(r.json()["id"])
        assert ids == {sid for (_, _, s), sid in got.items() if s == "shared-value"}
        for (k, i, subject), sid in got.items():
            if subject == "shared-value":
                continue
            r = requests.get(f"{w.url}/registry/subjects/{subject}/versions/latest",
                             timeout=T(10))
            assert r.status_code == 200 and r.json()["id"] == sid, (subject, r.text)


def test_sse_stream_on_one_worker_gets_a_commit_on_another(make_server):
    """Worker B's SSE stream sends a change committed through worker A as soon as A commits, not
    at its next 15 s keep-alive round."""
    from test_changes import SSE
    url = pg_cluster().new_database(f"workers_sse_{os.getpid()}", migrate_with=BIN)[1]
    a, b = make_server("--store.url", url), make_server("--store.url", url)
    a.ingest_ok([{"op": "upsert", "type": "connection", "qualified_name": "s/first"}])
    seq = b.last_seq()
    got = {}
    with requests.get(b.url + "/api/v1/changes/stream", params={"after": seq}, stream=True,
                      timeout=(T(5), T(60))) as r:
        assert r.status_code == 200
        sse = SSE(r)
        t = threading.Thread(target=lambda: got.update(sse.next_event()))
        t.start()
        ans = a.ingest_ok([{"id": "s-1", "op": "upsert", "type": "connection",
                            "qualified_name": "s/second"}])
        t.join(min(T(10), 12))  # shorter than the stream's keep-alive round (15 s)
        assert not t.is_alive(), "B's stream was not woken by A's commit"
    assert got["id"] == str(ans["last_seq"]) == str(seq + 1)
    assert json.loads(got["data"])["qualified_name"] == "s/second"


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
