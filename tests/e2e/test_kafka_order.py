"""Order inside a Kafka batch: the source applies a batch grouped by message key (for index
locality), keeping the produced order of every key and of every qualified name. The messages are
produced to one partition before the server starts, so that they are consumed as one batch.
"""
import json

import pytest

from conftest import T, wait_until
from kafka_util import MockCluster, producer

TOPIC = "metasync.events"


@pytest.fixture
def kafka():
    mc = MockCluster()
    yield mc
    mc.close()


def produce_p0(bootstrap, messages):
    """Produces (key, event) pairs to partition 0, in order, and waits for them."""
    p = producer(bootstrap)
    for key, ev in messages:
        p.produce(TOPIC, key=key, value=json.dumps(ev), partition=0)
    assert p.flush(T(30)) == 0


def upsert(qn, typ, **extra):
    return {"op": "upsert", "type": typ, "qualified_name": qn, **extra}


def deleted(server, qn):
    r = server.get(f"/api/v1/assets/{qn}", params={"include_deleted": "true"})
    return r.status_code == 200 and r.json().get("deleted") is True


def test_batch_keeps_the_order_of_each_key(kafka, make_server):
    produce_p0(kafka.bootstrap, [
        ("zz", upsert("zz", "connection")),  # key order puts it last
        ("pg", upsert("pg", "connection")),
        ("pg", upsert("pg/db", "database")),
        # A database's upsert, then its connection's delete (same key, same lane): the cascade
        # deletes the database. Ordered by name, the delete would come first and pg/db live on.
        ("pg", {"op": "delete", "qualified_name": "pg"}),
        ("a", upsert("a", "connection")),  # key order puts it first
    ])
    server = make_server("--kafka.brokers", kafka.bootstrap, "--kafka.properties.log_level", "3")
    wait_until(lambda: deleted(server, "pg") and all(
        server.get(f"/api/v1/assets/{qn}").status_code == 200 for qn in ("a", "zz")),
        60, message="the batch applied")
    assert deleted(server, "pg/db")


def test_batch_keeps_the_order_of_a_name_under_two_keys(kafka, make_server):
    qn = "pg/db/s/u/c"
    produce_p0(kafka.bootstrap, [
        ("z", upsert(qn, "column", attributes={"data_type": "a"})),
        ("a", upsert(qn, "column", attributes={"data_type": "b"})),
    ])
    server = make_server("--kafka.brokers", kafka.bootstrap, "--kafka.properties.log_level", "3")
    wait_until(lambda: server.get(f"/api/v1/assets/{qn}").status_code == 200 and
               server.asset(qn)["version"] == 2, 60, message="both events applied")
    assert server.asset(qn)["attributes"] == {"data_type": "b"}
