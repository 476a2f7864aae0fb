"""The HTTP API over a real server: every op (upsert, patch as an RFC 7396 merge, soft delete
with its descendants, tag/untag, link/unlink) and what it leaves behind (versions 1, 2, 3…,
change records, no-op upserts that change nothing), idempotent event ids, if_version conflicts,
GET of assets with `/` and percent-encoded names, 404 problem+json, the list API (type, parent,
tag, full text with prefixes, orphan filters, cursor pagination over several pages), children,
lineage (directions, depth, a cycle), history with before/after, orphans adopted when their
parent arrives, types (GET, POST, conflicts, persisted), JSON-array / single-object / NDJSON
bodies and the ingest answer's counts.
"""
import json

import pytest

from conftest import NDJSON, T, ndjson, problem, qn_path


def up(qn, type_, id=None, **fields):
    e = {"op": "upsert", "type": type_, "qualified_name": qn}
    if id:
        e["id"] = id
    e.update(fields)
    return e


def col(qn, data_type="int", **fields):
    attrs = {"data_type": data_type, **fields.pop("attributes", {})}
    return up(qn, "column", attributes=attrs, **fields)


def estate(prefix="pg"):
    """A connection, database, schema and table (4 events)."""
    return [up(prefix, "connection"), up(f"{prefix}/sales", "database"),
            up(f"{prefix}/sales/public", "schema"), up(f"{prefix}/sales/public/orders", "table")]


def test_upsert_versions_and_noop(server):
    ans = server.ingest_ok(estate())
    assert ans == {"accepted": 4, "applied": 4, "unchanged": 0, "duplicates": 0, "rejected": [],
                   "last_seq": 4}
    t = server.asset("pg/sales/public/orders")
    assert t["version"] == 1 and t["type"] == "table" and t["name"] == "orders"
    assert t["parent"] == "pg/sales/public" and t["deleted"] is False and t["orphan"] is False
    assert t["attributes"] == {} and t["tags"] == []

    for v, rows in ((2, 10), (3, 20), (4, 30)):
        ans = server.ingest_ok([up("pg/sales/public/orders", "table",
                                   attributes={"rows": rows, "owner": "sales"})])
        assert ans["applied"] == 1
        t = server.asset("pg/sales/public/orders")
        assert t["version"] == v and t["attributes"] == {"rows": rows, "owner": "sales"}

    seq = server.last_seq()
    # The same content again (keys in another order): no change record, no version bump.
    ans = server.ingest_ok(['{"attributes":{"owner":"sales","rows":30},"type":"table",'
                            '"qualified_name":"pg/sales/public/orders","op":"upsert"}'])
    assert ans["accepted"] == 1 and ans["unchanged"] == 1 and ans["applied"] == 0
    assert ans["last_seq"] == seq
    after = server.asset("pg/sales/public/orders")
    assert after["version"] == 4 and after["updated_at"] == t["updated_at"]
    assert [c["version"] for c in server.history("pg/sales/public/orders")] == [1, 2, 3, 4]

    # A name or parent change is a change too.
    ans = server.ingest_ok([up("pg/sales/public/orders", "table", name="Orders",
                               attributes={"rows": 30, "owner": "sales"})])
    assert ans["applied"] == 1
    ch = server.changes(after=seq)["items"]
    assert len(ch) == 1 and ch[0]["op"] == "update" and ch[0]["changed"] == ["name"]
    assert ch[0]["version"] == 5 and ch[0]["before"]["name"] == "orders"
    assert ch[0]["after"]["name"] == "Orders"


def test_upsert_create_change_record(server):
    server.ingest_ok(estate()[:3])
    ans = server.ingest_ok([up("pg/sales/public/t1", "table", id="evt-1",
                               attributes={"description": "Orders", "rows": 1},
                               tags=["B", "A", "B"])])
    ch = server.changes(after=ans["last_seq"] - 1)["items"]
    assert len(ch) == 1
    c = ch[0]
    assert c["seq"] == ans["last_seq"] and c["op"] == "create" and c["version"] == 1
    assert c["tenant"] == "default" and c["type"] == "table" and c["cause"] == "evt-1"
    assert c["before"] is None
    assert c["after"]["attributes"] == {"description": "Orders", "rows": 1}
    assert [t["name"] for t in c["after"]["tags"]] == ["A", "B"]  # sorted, de-duplicated
    assert set(c["changed"]) >= {"type", "name", "parent", "attributes.description",
                                 "attributes.rows", "tags"}
    assert c["ts"].endswith("Z")


def test_upsert_type_conflict_and_invalid_parent(server):
    server.ingest_ok(estate())
    seq = server.last_seq()
    ans = server.post_events([up("pg/sales/public/orders", "view"),
                              up("pg/t", "table", parent="pg"),
                              up("pg/sales/public/ok", "view")])
    codes = {r["index"]: r["code"] for r in ans["rejected"]}
    assert codes == {0: "type_conflict", 1: "invalid_parent"}, ans
    assert ans["accepted"] == 1 and ans["last_seq"] == seq + 1
    assert server.asset("pg/sales/public/orders")["type"] == "table"
    assert server.asset_status("pg/t") == 404


def test_patch_is_an_rfc7396_merge(server):
    server.ingest_ok(estate()[:3])
    qn = "pg/sales/public/orders"
    server.ingest_ok([up(qn, "table", attributes={
        "description": "Orders", "owner": {"team": "sales", "person": "ann"},
        "tags": ["a", "b"], "rows": 1, "gone": True})])
    seq = server.last_seq()
    ans = server.ingest_ok([{"op": "patch", "qualified_name": qn, "attributes": {
        "owner": {"person": None, "oncall": "bob"},  # nested merge, null deletes a member
        "tags": ["c"],                                 # arrays are replaced whole
        "rows": {"estimate": 5},                       # a scalar replaced by an object
        "gone": None,                                  # deleted
        "absent": None,                                # deleting nothing is fine
        "new": {"x": None, "y": 1}}}])                 # nulls inside new objects vanish
    assert ans["applied"] == 1
    a = server.asset(qn)
    assert a["attributes"] == {"description": "Orders",
                               "owner": {"team": "sales", "oncall": "bob"},
                               "tags": ["c"], "rows": {"estimate": 5}, "new": {"y": 1}}
    assert a["version"] == 2 and a["type"] == "table" and a["name"] == "orders"
    ch = server.changes(after=seq)["items"]
    assert len(ch) == 1 and ch[0]["op"] == "update"
    assert set(ch[0]["changed"]) == {"attributes.owner.person", "attributes.owner.oncall",
                                     "attributes.tags", "attributes.rows", "attributes.gone",
                                     "attributes.new"}
    assert ch[0]["before"]["attributes"]["owner"] == {"team": "sales", "person": "ann"}

    # A patch that changes nothing: no version, no change record.
    ans = server.ingest_ok([{"op": "patch", "qualified_name": qn,
                             "attributes": {"description": "Orders", "gone": None}}])
    assert ans["unchanged"] == 1 and ans["last_seq"] == seq + 1
    assert server.asset(qn)["version"] == 2

    # Patching what does not exist, or with the wrong type, is refused.
    ans = server.post_events([{"op": "patch", "qualified_name": "pg/nope", "attributes": {}},
                              {"op": "patch", "qualified_name": qn, "type": "view",
                               "attributes": {"x": 1}}])
    assert [r["code"] for r in ans["rejected"]] == ["not_found", "type_conflict"], ans
    assert server.asset(qn)["version"] == 2


def test_patch_cannot_remove_a_required_attribute(server):
    server.ingest_ok(estate() + [col("pg/sales/public/orders/id", "bigint")])
    ans = server.post_events([{"op": "patch", "qualified_name": "pg/sales/public/orders/id",
                               "attributes": {"data_type": None}}])
    assert [r["code"] for r in ans["rejected"]] == ["missing_attribute"], ans
    ans = server.ingest_ok([{"op": "patch", "qualified_name": "pg/sales/public/orders/id",
                             "attributes": {"data_type": "text", "nullable": False}}])
    c = server.asset("pg/sales/public/orders/id")
    assert c["attributes"] == {"data_type": "text", "nullable": False} and c["version"] == 2


def test_delete_is_soft_and_takes_descendants(server):
    cols = [col(f"pg/sales/public/orders/c{i}") for i in range(3)]
    server.ingest_ok(estate() + [up("pg/sales/public/items", "table")] + cols +
                     [up("pg/sales/other", "schema")])
    seq = server.last_seq()
    ans = server.ingest_ok([{"op": "delete", "qualified_name": "pg/sales/public", "id": "del-1"}])
    assert ans["applied"] == 1
    gone = ["pg/sales/public", "pg/sales/public/items", "pg/sales/public/orders",
            "pg/sales/public/orders/c0", "pg/sales/public/orders/c1", "pg/sales/public/orders/c2"]
    ch = server.changes(after=seq)["items"]
    assert ans["last_seq"] == seq + len(gone)
    assert sorted(c["qualified_name"] for c in ch) == sorted(gone)
    assert ch[0]["qualified_name"] == "pg/sales/public"  # the asset first, then descendants
    for c in ch:
        assert c["op"] == "delete" and c["after"] is None and c["changed"] == ["deleted"]
        assert c["before"]["qualified_name"] == c["qualified_name"]
        assert c["before"]["deleted"] is False and c["cause"] == "del-1"
        assert c["version"] == 2
    for qn in gone:
        p = problem(server.get(qn_path(qn)), 404, "not_found")
        assert "deleted" in p["detail"]
        a = server.asset(qn, include_deleted="true")
        assert a["deleted"] is True and a["version"] == 2
        assert [h["op"] for h in server.history(qn)] == ["create", "delete"]
    # Siblings and ancestors stay.
    assert server.asset("pg/sales/other")["deleted"] is False
    assert server.asset("pg/sales")["version"] == 1
    listed = {a["qualified_name"] for a in server.list_all()}
    assert not listed & set(gone) and "pg/sales/other" in listed
    listed = {a["qualified_name"] for a in server.list_all(include_deleted="true")}
    assert set(gone) <= listed

    # Deleting again changes nothing; deleting what never existed is refused.
    ans = server.post_events([{"op": "delete", "qualified_name": "pg/sales/public"},
                              {"op": "delete", "qualified_name": "pg/never"}])
    assert ans["unchanged"] == 1 and [r["code"] for r in ans["rejected"]] == ["not_found"]
    assert ans["last_seq"] == seq + len(gone)
    # Ops on a deleted asset are refused.
    ans = server.post_events([{"op": "patch", "qualified_name": "pg/sales/public/orders",
                               "attributes": {"a": 1}},
                              {"op": "tag", "qualified_name": "pg/sales/public/orders",
                               "tag": "X"}])
    assert [r["code"] for r in ans["rejected"]] == ["not_found", "not_found"], ans

    # Upserting it again brings it back with the next version; descendants stay deleted.
    server.ingest_ok([up("pg/sales/public", "schema")])
    s = server.asset("pg/sales/public")
    assert s["deleted"] is False and s["version"] == 3
    assert server.asset_status("pg/sales/public/orders") == 404
    assert [h["op"] for h in server.history("pg/sales/public")] == ["create", "delete", "create"]


def test_delete_in_a_parent_cycle_terminates(make_server):
    """A recursive custom type can form parent loops; deleting into one must end (it once hung
    the writer thread in the descendant walk)."""
    server = make_server()
    try:
        r = server.post("/api/v1/types", json.dumps({"name": "folder", "parents": ["folder"]}),
                        "application/json")
        assert r.status_code == 201, r.text
        server.ingest_ok([up("c1", "folder", parent="c2"),
                          up("c2", "folder", parent="c1"),
                          up("self", "folder", parent="self")])
        for qn in ("c1", "self"):
            r = server.post("/api/v1/events", ndjson([{"op": "delete", "qualified_name": qn}]),
                            NDJSON, timeout=T(3))
            assert r.status_code == 200 and r.json()["applied"] == 1, r.text
        assert server.asset_status("c1") == 404 and server.asset_status("c2") == 404
        assert server.asset_status("self") == 404
        server.assert_healthy()
    except BaseException:
        server.kill9()  # a wedged writer would also hang the SIGTERM at teardown
        raise


def test_cascading_delete_order_is_nearest_first_then_by_name(server):
    """docs/model.md (Soft delete): descendants are deleted nearest first, then by qualified
    name, each with its own change record."""
    s = "pg/sales/public"
    # Created in an order that is neither by depth nor by name.
    server.ingest_ok(estate()[:3] + [up(f"{s}/t_b", "table"), col(f"{s}/t_b/z"),
                                     col(f"{s}/t_b/a"), up(f"{s}/t_a", "table"),
                                     col(f"{s}/t_a/m"), up(f"{s}/t_c", "view")])
    seq = server.last_seq()
    server.ingest_ok([{"op": "delete", "qualified_name": s}])
    order = [c["qualified_name"] for c in server.changes(after=seq)["items"]]
    assert order == [s, f"{s}/t_a", f"{s}/t_b", f"{s}/t_c",
                     f"{s}/t_a/m", f"{s}/t_b/a", f"{s}/t_b/z"]


def test_connection_is_a_root_type(server):
    """docs/model.md (Built-in types): a connection takes no parent at all, existing or not;
    a process (no parent types either) still takes any."""
    server.ingest_ok([up("pg", "connection")])
    ans = server.post_events([up("other", "connection", parent="pg"),
                              up("lonely", "connection", parent="nowhere")])
    assert [r["code"] for r in ans["rejected"]] == ["invalid_parent", "invalid_parent"], ans
    assert server.asset_status("other") == 404
    server.ingest_ok([up("etl", "process", parent="pg", attributes={"inputs": [], "outputs": []})])
    assert server.asset("etl")["parent"] == "pg"


def test_delete_with_if_version(server):
    server.ingest_ok(estate())
    ans = server.post_events([{"op": "delete", "qualified_name": "pg/sales/public/orders",
                               "if_version": 7}])
    assert [r["code"] for r in ans["rejected"]] == ["version_conflict"]
    assert server.asset("pg/sales/public/orders")["deleted"] is False
    ans = server.ingest_ok([{"op": "delete", "qualified_name": "pg/sales/public/orders",
                             "if_version": 1}])
    assert ans["applied"] == 1 and server.asset_status("pg/sales/public/orders") == 404


def test_tag_and_untag(server):
    server.ingest_ok(estate())
    qn = "pg/sales/public/orders"
    seq = server.last_seq()
    ans = server.ingest_ok([{"op": "tag", "qualified_name": qn, "tag": "PII"},
                            {"op": "tag", "qualified_name": qn, "tag": "GDPR"},
                            {"op": "tag", "qualified_name": qn, "tag": "PII"}])
    assert (ans["applied"], ans["unchanged"]) == (2, 1)
    a = server.asset(qn)
    assert a["tags"] == [{"name": "GDPR", "source": "direct"}, {"name": "PII", "source": "direct"}]
    assert a["version"] == 3
    ch = server.changes(after=seq)["items"]
    assert [c["op"] for c in ch] == ["tag", "tag"] and all(c["changed"] == ["tags"] for c in ch)
    assert ch[0]["before"]["tags"] == [] and ch[0]["after"]["tags"] == [
        {"name": "PII", "source": "direct"}]

    # An upsert without `tags` keeps them; with `tags` sets the direct tags.
    server.ingest_ok([up(qn, "table", attributes={"rows": 1})])
    assert [t["name"] for t in server.asset(qn)["tags"]] == ["GDPR", "PII"]

    ans = server.ingest_ok([{"op": "untag", "qualified_name": qn, "tag": "GDPR"},
                            {"op": "untag", "qualified_name": qn, "tag": "GDPR"},
                            {"op": "untag", "qualified_name": qn, "tag": "never"}])
    assert (ans["applied"], ans["unchanged"]) == (1, 2)
    assert [t["name"] for t in server.asset(qn)["tags"]] == ["PII"]
    assert server.changes(after=ans["last_seq"] - 1)["items"][0]["op"] == "untag"

    server.ingest_ok([up(qn, "table", attributes={"rows": 1}, tags=["Finance"])])
    a = server.asset(qn)
    assert [t["name"] for t in a["tags"]] == ["Finance"]
    assert [x["qualified_name"] for x in server.list_all(tag="Finance")] == [qn]
    assert server.list_all(tag="PII") == []

    ans = server.post_events([{"op": "tag", "qualified_name": "pg/missing", "tag": "X"}])
    assert [r["code"] for r in ans["rejected"]] == ["not_found"]


def test_link_and_unlink(server):
    server.ingest_ok(estate() + [up("pg/sales/public/items", "table"),
                                 up("etl/load", "process",
                                    attributes={"inputs": [], "outputs": []})])
    a, b = "pg/sales/public/orders", "pg/sales/public/items"
    seq = server.last_seq()
    ans = server.ingest_ok([{"op": "link", "from": a, "to": b, "via": "etl/load"},
                            {"op": "link", "from": a, "to": b, "via": "etl/load"}])
    assert (ans["applied"], ans["unchanged"]) == (1, 1)
    (c,) = server.changes(after=seq)["items"]
    assert c["op"] == "link" and c["qualified_name"] == a and c["changed"] == ["lineage"]
    assert c["before"] is None and c["after"] == {"from": a, "to": b, "via": "etl/load"}
    lin = server.get(qn_path(a) + "/lineage", params={"direction": "downstream"}).json()
    assert [n["qualified_name"] for n in lin["nodes"]] == [b]
    assert lin["edges"] == [{"from": a, "to": b, "via": "etl/load"}]
    # A link to an asset that does not exist (yet) is kept.
    server.ingest_ok([{"op": "link", "from": a, "to": "pg/later"}])
    lin = server.get(qn_path(a) + "/lineage", params={"direction": "downstream"}).json()
    later = [n for n in lin["nodes"] if n["qualified_name"] == "pg/later"]
    assert later and later[0]["type"] is None

    seq = server.last_seq()
    ans = server.ingest_ok([{"op": "unlink", "from": a, "to": b, "via": "etl/load"},
                            {"op": "unlink", "from": a, "to": b, "via": "etl/load"},
                            {"op": "unlink", "from": a, "to": "pg/later"}])
    assert (ans["applied"], ans["unchanged"]) == (2, 1)
    ch = server.changes(after=seq)["items"]
    assert [x["op"] for x in ch] == ["unlink", "unlink"]
    assert ch[0]["before"] == {"from": a, "to": b, "via": "etl/load"} and ch[0]["after"] is None
    lin = server.get(qn_path(a) + "/lineage").json()
    assert lin["nodes"] == [] and lin["edges"] == []
    # Links do not bump the asset's version.
    assert server.asset(a)["version"] == 1


def test_idempotent_event_ids(server):
    evs = [up("pg", "connection", id="e-1"), up("pg/db", "database", id="e-2")]
    ans = server.ingest_ok(evs)
    assert ans["applied"] == 2 and ans["duplicates"] == 0
    seq = ans["last_seq"]
    # The same ids again, even with other content: duplicates, nothing changes.
    again = [up("pg", "connection", id="e-1", attributes={"x": 1}),
             up("pg/db", "database", id="e-2", attributes={"x": 1})]
    ans = server.ingest_ok(again)
    assert ans == {"accepted": 0, "applied": 0, "unchanged": 0, "duplicates": 2,
                   "rejected": [], "last_seq": seq}
    assert server.asset("pg")["attributes"] == {}
    # Within one batch the second use of an id is a duplicate.
    ans = server.ingest_ok([up("pg/db2", "database", id="e-3"),
                            up("pg/db3", "database", id="e-3")])
    assert (ans["applied"], ans["duplicates"]) == (1, 1)
    assert server.asset_status("pg/db3") == 404
    # A rejected event leaves no trace: its id may be used again once fixed.
    ans = server.post_events([{"op": "patch", "id": "e-4", "qualified_name": "pg/db9",
                               "attributes": {"a": 1}}])
    assert [r["code"] for r in ans["rejected"]] == ["not_found"]
    server.ingest_ok([up("pg/db9", "database")])
    ans = server.ingest_ok([{"op": "patch", "id": "e-4", "qualified_name": "pg/db9",
                             "attributes": {"a": 1}}])
    assert ans["applied"] == 1 and ans["duplicates"] == 0
    assert server.asset("pg/db9")["attributes"] == {"a": 1}


def test_if_version_conflict_applies_nothing(server):
    server.ingest_ok(estate())
    qn = "pg/sales/public/orders"
    server.ingest_ok([{"op": "patch", "qualified_name": qn, "attributes": {"a": 1}}])
    before = server.asset(qn)
    seq = server.last_seq()
    ans = server.post_events([
        {"op": "patch", "qualified_name": qn, "if_version": 1, "attributes": {"a": 2}},
        up(qn, "table", if_version=5, attributes={"a": 3}),
        {"op": "tag", "qualified_name": qn, "tag": "T", "if_version": 3},
        up(qn, "table", if_version=0),  # 0 = must not exist yet
    ])
    assert [r["code"] for r in ans["rejected"]] == ["version_conflict"] * 4, ans
    assert [r["index"] for r in ans["rejected"]] == [0, 1, 2, 3]
    assert "version 2" in ans["rejected"][0]["detail"]
    assert ans["accepted"] == 0 and ans["last_seq"] == seq
    assert server.asset(qn) == before
    # The right version applies; if_version 0 creates.
    ans = server.ingest_ok([
        {"op": "patch", "qualified_name": qn, "if_version": 2, "attributes": {"a": 2}},
        up("pg/sales/public/fresh", "table", if_version=0)])
    assert ans["applied"] == 2
    assert server.asset(qn)["attributes"] == {"a": 2} and server.asset(qn)["version"] == 3
    assert server.asset("pg/sales/public/fresh")["version"] == 1


def test_get_asset_with_slashes_and_percent_encoding(server):
    weird = "pg/my db/Sales Data/orders?x=1#frag&y/ünï%20cödé"
    server.ingest_ok([up("pg", "connection"), up("pg/my db", "database"),
                      up("pg/my db/Sales Data", "schema"),
                      up(weird, "table", parent="pg/my db/Sales Data")])
    a = server.asset(weird)  # each segment percent-encoded, '/' kept
    assert a["qualified_name"] == weird and a["parent"] == "pg/my db/Sales Data"
    # A '/' may also come percent-encoded.
    r = server.get("/api/v1/assets/pg%2Fmy%20db%2FSales%20Data")
    assert r.status_code == 200 and r.json()["qualified_name"] == "pg/my db/Sales Data"
    r = server.get("/api/v1/assets/pg/my%20db")
    assert r.status_code == 200 and r.json()["type"] == "database"
    # Sub-resources of such names work too.
    hist = server.get(qn_path(weird) + "/history").json()
    assert hist["qualified_name"] == weird and len(hist["items"]) == 1


def test_not_found_is_problem_json(server):
    p = problem(server.get("/api/v1/assets/no/such/asset"), 404, "not_found")
    assert p["instance"] == "/api/v1/assets/no/such/asset" and "no/such/asset" in p["detail"]
    problem(server.get("/api/v1/nothing-here"), 404, "not_found")
    problem(server.get("/api/v1/assets/no/such/asset/history"), 404, "not_found")
    problem(server.get("/api/v1/assets/no/such/asset/lineage"), 404, "not_found")


def test_list_filters_and_cursor_pagination(server):
    evs = estate()[:3] + [up("pg/sales/mart", "schema")]
    names = [f"customer_{i:02d}" for i in range(12)] + [f"order_{i:02d}" for i in range(13)]
    for n in names:
        evs.append(up(f"pg/sales/public/{n}", "table",
                      attributes={"description": f"Table {n} of the shop"}))
    evs.append(up("pg/sales/mart/revenue", "view",
                  attributes={"description": "Monthly revenue per storefront"}))
    evs.append(col("pg/sales/public/customer_00/email", "text", tags=["PII"]))
    evs.append(col("pg/sales/public/customer_00/phone", "text", tags=["PII", "GDPR"]))
    evs.append(col("pg/sales/mart/revenue/amount", "numeric"))
    server.ingest_ok(evs)

    tables = server.list_all(type="table")
    assert [a["qualified_name"] for a in tables] == sorted(f"pg/sales/public/{n}" for n in names)
    # An exact multiple of the page size ends without an empty extra page.
    p = server.get("/api/v1/assets", params={"type": "table", "limit": 25}).json()
    assert len(p["items"]) == 25 and p["next_cursor"] is None
    p = server.get("/api/v1/assets", params={"type": "table", "limit": 24}).json()
    assert len(p["items"]) == 24 and p["next_cursor"]

    assert [a["qualified_name"] for a in server.list_all(type="view")] == ["pg/sales/mart/revenue"]
    kids = server.list_all(parent="pg/sales/public")
    assert len(kids) == 25 and all(a["parent"] == "pg/sales/public" for a in kids)
    assert [a["qualified_name"] for a in server.list_all(tag="PII")] == [
        "pg/sales/public/customer_00/email", "pg/sales/public/customer_00/phone"]
    assert [a["qualified_name"] for a in server.list_all(tag="GDPR", type="column")] == [
        "pg/sales/public/customer_00/phone"]
    assert server.list_all(tag="PII", type="table") == []

    # Full text over name, qualified name and description, with prefixes.
    q = {a["qualified_name"] for a in server.list_all(q="customer", type="table")}
    assert q == {f"pg/sales/public/customer_{i:02d}" for i in range(12)}
    q = {a["qualified_name"] for a in server.list_all(q="cust", type="table")}
    assert len(q) == 12  # prefix
    q = [a["qualified_name"] for a in server.list_all(q="storefront")]  # description
    assert q == ["pg/sales/mart/revenue"]
    q = [a["qualified_name"] for a in server.list_all(q="monthly rev")]  # words are ANDed
    assert q == ["pg/sales/mart/revenue"]
    assert server.list_all(q="monthly customer") == []
    # A patched description is searchable; the old one is not.
    server.ingest_ok([{"op": "patch", "qualified_name": "pg/sales/mart/revenue",
                       "attributes": {"description": "Quarterly margin"}}])
    assert server.list_all(q="storefront") == []
    assert [a["qualified_name"] for a in server.list_all(q="quarter")] == ["pg/sales/mart/revenue"]

    # Orphan filter: a column whose table has not arrived.
    server.ingest_ok([col("pg/sales/public/later/id")])
    orphans = [a["qualified_name"] for a in server.list_all(orphan="true")]
    assert orphans == ["pg/sales/public/later/id"]
    not_orphans = server.list_all(orphan="false")
    assert "pg/sales/public/later/id" not in {a["qualified_name"] for a in not_orphans}
    assert len(not_orphans) == len(server.list_all()) - 1


def test_children(server):
    server.ingest_ok(estate() + [col(f"pg/sales/public/orders/c{i}") for i in range(5)] +
                     [up("pg/sales/public/orders2", "table")])
    kids = server.get(qn_path("pg/sales/public/orders") + "/children").json()
    assert [a["qualified_name"] for a in kids["items"]] == [
        f"pg/sales/public/orders/c{i}" for i in range(5)]
    assert kids["next_cursor"] is None
    assert all(a["type"] == "column" for a in kids["items"])
    page = server.get(qn_path("pg/sales/public/orders") + "/children", params={"limit": 2}).json()
    assert [a["name"] for a in page["items"]] == ["c0", "c1"] and page["next_cursor"]
    kids = server.get(qn_path("pg/sales/public") + "/children").json()["items"]
    assert [a["name"] for a in kids] == ["orders", "orders2"]
    assert server.get(qn_path("pg/sales/public/orders/c0") + "/children").json()["items"] == []


def _pages(server, path, **params):
    """Follows next_cursor from the first page; returns (pages, qualified names)."""
    pages, cursor, seen = 0, None, []
    while True:
        p = dict(params)
        if cursor:
            p["cursor"] = cursor
        r = server.get(path, params=p)
        assert r.status_code == 200, r.text
        page = r.json()
        pages += 1
        assert len(page["items"]) <= params.get("limit", 100)
        seen += [a["qualified_name"] for a in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            return pages, seen
        assert pages < 100, "pagination does not end"


def test_cursor_pagination_visits_every_asset_once(server):
    names = [f"t{i:02d}" for i in range(25)]
    server.ingest_ok(estate()[:3] + [up(f"pg/sales/public/{n}", "table") for n in names] +
                     [col(f"pg/sales/public/t00/c{i}") for i in range(5)])
    pages, seen = _pages(server, "/api/v1/assets", type="table", limit=10)
    assert seen == [f"pg/sales/public/{n}" for n in names]
    assert pages == 3
    pages, seen = _pages(server, qn_path("pg/sales/public/t00") + "/children", limit=2)
    assert seen == [f"pg/sales/public/t00/c{i}" for i in range(5)]
    assert pages == 3


def test_lineage_directions_depth_and_cycle(server):
    t = lambda n: f"pg/sales/public/{n}"  # noqa: E731
    server.ingest_ok(estate()[:3] + [up(t(n), "table") for n in "abcdex"])
    # a → b → c → d → a (a cycle) and c → e; x → a
    server.ingest_ok([{"op": "link", "from": t("a"), "to": t("b")},
                      {"op": "link", "from": t("b"), "to": t("c")},
                      {"op": "link", "from": t("c"), "to": t("d")},
                      {"op": "link", "from": t("d"), "to": t("a")},
                      {"op": "link", "from": t("c"), "to": t("e")},
                      {"op": "link", "from": t("x"), "to": t("a")}])

    def lineage(qn, **params):
        r = server.get(qn_path(qn) + "/lineage", params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def nodes(lin):
        return {(n["qualified_name"], n["direction"], n["distance"]) for n in lin["nodes"]}

    down1 = lineage(t("a"), direction="downstream", depth=1)
    assert down1["root"] == t("a") and down1["direction"] == "downstream" and down1["depth"] == 1
    assert nodes(down1) == {(t("b"), "downstream", 1)}
    assert down1["edges"] == [{"from": t("a"), "to": t("b"), "via": None}]

    down = lineage(t("a"), direction="downstream", depth=10)
    assert nodes(down) == {(t("b"), "downstream", 1), (t("c"), "downstream", 2),
                           (t("d"), "downstream", 3), (t("e"), "downstream", 3)}
    assert all(n["type"] == "table" for n in down["nodes"])
    assert {(e["from"], e["to"]) for e in down["edges"]} == {
        (t("a"), t("b")), (t("b"), t("c")), (t("c"), t("d")), (t("d"), t("a")), (t("c"), t("e"))}

    up_ = lineage(t("a"), direction="upstream", depth=2)
    assert nodes(up_) == {(t("d"), "upstream", 1), (t("x"), "upstream", 1),
                          (t("c"), "upstream", 2)}

    both = lineage(t("c"), depth=1)  # default direction: both
    assert both["direction"] == "both"
    assert nodes(both) == {(t("b"), "upstream", 1), (t("d"), "downstream", 1),
                           (t("e"), "downstream", 1)}
    # The root never appears as a node, even on a cycle; the default depth is 3.
    assert t("a") not in {n["qualified_name"] for n in lineage(t("a"))["nodes"]}
    assert lineage(t("a"))["depth"] == 3
    # The longest depth on a cycle terminates, each node once per direction.
    deep = nodes(lineage(t("a"), depth=20))
    assert deep == {(t("b"), "downstream", 1), (t("c"), "downstream", 2),
                    (t("d"), "downstream", 3), (t("e"), "downstream", 3),
                    (t("d"), "upstream", 1), (t("x"), "upstream", 1),
                    (t("c"), "upstream", 2), (t("b"), "upstream", 3)}


def test_history_has_before_and_after(server):
    server.ingest_ok(estate())
    qn = "pg/sales/public/orders"
    server.ingest_ok([{"op": "patch", "qualified_name": qn, "attributes": {"a": 1}},
                      {"op": "tag", "qualified_name": qn, "tag": "T"},
                      up(qn, "table", attributes={"a": 2}),
                      {"op": "untag", "qualified_name": qn, "tag": "T"},
                      {"op": "delete", "qualified_name": qn}])
    h = server.get(qn_path(qn) + "/history").json()
    assert h["qualified_name"] == qn
    items = h["items"]
    assert [c["op"] for c in items] == ["create", "update", "tag", "update", "untag", "delete"]
    assert [c["version"] for c in items] == [1, 2, 3, 4, 5, 6]
    seqs = [c["seq"] for c in items]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert items[0]["before"] is None and items[-1]["after"] is None
    for prev, cur in zip(items, items[1:]):
        assert cur["before"] == prev["after"], (prev, cur)
        assert cur["before"]["version"] == cur["version"] - 1
    assert items[3]["after"]["attributes"] == {"a": 2}
    assert items[3]["changed"] == ["attributes.a"]
    # The change feed holds the same records.
    feed = {c["seq"]: c for c in server.all_changes()}
    for c in items:
        assert feed[c["seq"]] == c


def test_orphan_column_adopted_when_its_table_arrives(server):
    server.ingest_ok(estate()[:3])
    server.ingest_ok([col("pg/sales/public/orders/id", "bigint"),
                      col("pg/sales/public/orders/total", "numeric")])
    c = server.asset("pg/sales/public/orders/id")
    assert c["orphan"] is True and c["parent"] == "pg/sales/public/orders" and c["version"] == 1
    assert len(server.list_all(orphan="true")) == 2
    assert 'metasync_orphans{tenant="default"} 2' in server.metrics()
    server.ingest_ok([up("pg/sales/public/orders", "table")])
    c = server.asset("pg/sales/public/orders/id")
    assert c["orphan"] is False and c["version"] == 1
    assert server.list_all(orphan="true") == []
    assert 'metasync_orphans{tenant="default"} 0' in server.metrics()
    kids = server.get(qn_path("pg/sales/public/orders") + "/children").json()["items"]
    assert [k["name"] for k in kids] == ["id", "total"]
    # The whole chain can arrive bottom-up.
    server.ingest_ok([col("x/d/s/t/c"), up("x/d/s/t", "table"), up("x/d/s", "schema"),
                      up("x/d", "database"), up("x", "connection")])
    assert server.list_all(orphan="true") == []


def test_types_get_and_post(make_server):
    server = make_server()
    r = server.get("/api/v1/types")
    assert r.status_code == 200
    builtin = {t["name"]: t for t in r.json()["items"]}
    assert {"connection", "database", "schema", "table", "view", "column", "dashboard",
            "bi_field", "process"} <= set(builtin)
    assert builtin["column"]["required_attributes"] == ["data_type"]
    assert builtin["column"]["lane"] == "bulk" and builtin["table"]["parents"] == ["schema"]
    assert all(t["builtin"] for t in builtin.values())

    definition = {"name": "kafka_topic", "parents": ["connection"],
                  "required_attributes": ["partitions"], "lane": "fast",
                  "description": "A Kafka topic"}
    r = server.post("/api/v1/types", json.dumps(definition), "application/json")
    assert r.status_code == 201, r.text
    assert r.json() == definition
    r = server.post("/api/v1/types", json.dumps(definition), "application/json")
    assert r.status_code == 200 and r.json() == definition
    p = problem(server.post("/api/v1/types", json.dumps({**definition, "lane": "bulk"}),
                            "application/json"), 409, "type_conflict")
    assert "kafka_topic" in p["detail"]
    problem(server.post("/api/v1/types", '{"name":"table"}', "application/json"),
            409, "type_conflict")
    problem(server.post("/api/v1/types", '{"name":"Bad Name"}', "application/json"),
            400, "invalid_field")
    problem(server.post("/api/v1/types", '{"name":"t2","parents":["nope"]}', "application/json"),
            400, "unknown_type")
    problem(server.post("/api/v1/types", '{"name":', "application/json"), 400, "malformed_json")
    problem(server.post("/api/v1/types", '{"parents":[]}', "application/json"),
            400, "missing_field")

    types = {t["name"]: t for t in server.get("/api/v1/types").json()["items"]}
    assert types["kafka_topic"]["builtin"] is False

    ans = server.post_events([up("kafka", "connection"),
                              up("kafka/orders", "kafka_topic"),
                              up("kafka/payments", "kafka_topic", attributes={"partitions": 6})])
    assert [(r["index"], r["code"]) for r in ans["rejected"]] == [(1, "missing_attribute")]
    t = server.asset("kafka/payments")
    assert t["type"] == "kafka_topic" and t["parent"] == "kafka" and t["orphan"] is False
    assert [a["qualified_name"] for a in server.list_all(type="kafka_topic")] == ["kafka/payments"]

    # Custom types survive a restart.
    server.restart()
    types = {t["name"]: t for t in server.get("/api/v1/types").json()["items"]}
    assert types["kafka_topic"]["required_attributes"] == ["partitions"]
    server.ingest_ok([up("kafka/clicks", "kafka_topic", attributes={"partitions": 1})])
    assert server.asset("kafka/payments")["attributes"] == {"partitions": 6}


def test_json_array_single_object_and_ndjson_bodies(server):
    arr = [up("a", "connection", id="j-1"), up("a/db", "database", id="j-2")]
    r = server.post("/api/v1/events", json.dumps(arr), "application/json")
    assert r.status_code == 200
    assert r.json() == {"accepted": 2, "applied": 2, "unchanged": 0, "duplicates": 0,
                        "rejected": [], "last_seq": 2}
    r = server.post("/api/v1/events", json.dumps(up("b", "connection")), "application/json")
    assert r.status_code == 200 and r.json()["applied"] == 1 and r.json()["last_seq"] == 3
    r = server.post("/api/v1/events", "[]", "application/json")
    assert r.status_code == 200 and r.json()["accepted"] == 0 and r.json()["last_seq"] == 3
    # NDJSON: blank lines and CRLF are fine.
    body = "\r\n".join([json.dumps(up("c", "connection")), "", "   ",
                        json.dumps(up("a/db", "database", id="j-2")),
                        json.dumps({"op": "frob"}), json.dumps(up("a", "connection"))]) + "\r\n"
    r = server.post("/api/v1/events", body, NDJSON)
    assert r.status_code == 200
    ans = r.json()
    assert (ans["accepted"], ans["applied"], ans["unchanged"], ans["duplicates"]) == (2, 1, 1, 1)
    assert len(ans["rejected"]) == 1
    rej = ans["rejected"][0]
    assert rej["index"] == 2 and rej["code"] == "unknown_op" and rej["line"] == 5
    assert ans["last_seq"] == 4
    # No Content-Type: the body's first character decides.
    r = server.post("/api/v1/events", json.dumps([up("d", "connection")]))
    assert r.status_code == 200 and r.json()["applied"] == 1
    r = server.post("/api/v1/events", ndjson([up("e", "connection"), up("f", "connection")]))
    assert r.status_code == 200 and r.json()["applied"] == 2
    # Other NDJSON media types.
    for ct in ("application/ndjson", "application/jsonl", "application/x-ndjson; charset=utf-8"):
        r = server.post("/api/v1/events", ndjson([up("g", "connection", attributes={"ct": ct})]),
                        ct)
        assert r.status_code == 200 and r.json()["applied"] == 1, (ct, r.text)
    assert server.last_seq() == 10


def test_head_health_and_readiness(server):
    server.ingest_ok([up("pg", "connection")])
    for path in ("/healthz", "/readyz", qn_path("pg"), "/api/v1/assets", "/api/v1/changes",
                 "/metrics", qn_path("pg") + "/history"):
        r = server.http.head(server.url + path, timeout=T(10))
        assert r.status_code == 200, (path, r.status_code)
        assert r.content == b""
    assert server.http.head(server.url + qn_path("nope"), timeout=T(10)).status_code == 404
    assert server.get("/readyz").json() == {"status": "ready"}
    assert server.get("/healthz").json() == {"status": "ok"}


def test_head_on_types_lists_and_registers_nothing(server):
    r = server.http.head(server.url + "/api/v1/types", timeout=T(10))
    assert r.status_code == 200, r.status_code
    r = server.http.request("HEAD", server.url + "/api/v1/types", data='{"name":"via_head"}',
                            headers={"Content-Type": "application/json"}, timeout=T(10))
    assert r.status_code == 200, r.status_code
    names = [t["name"] for t in server.get("/api/v1/types").json()["items"]]
    assert "via_head" not in names


def test_events_for_one_asset_apply_in_body_order(server):
    """docs/events.md (Ordering): events without a type follow the lane of an earlier event for
    the same qualified name, so one asset's events keep their order across the lanes."""
    server.ingest_ok(estate())
    c = "pg/sales/public/orders/amount"
    ans = server.ingest_ok([
        col(c, "int"),                                                 # bulk lane
        up("pg/sales/public/items", "table"),                          # fast lane
        {"op": "patch", "qualified_name": c, "attributes": {"n": 1}},  # no type: follows c
        {"op": "tag", "qualified_name": c, "tag": "PII"},
        {"op": "delete", "qualified_name": c},
        col(c, "bigint"),
        {"op": "patch", "qualified_name": c, "attributes": {"n": 2}},
    ])
    assert ans["applied"] == 7
    assert [(h["op"], h["version"]) for h in server.history(c)] == [
        ("create", 1), ("update", 2), ("tag", 3), ("delete", 4), ("create", 5), ("update", 6)]
    a = server.asset(c)
    assert a["attributes"] == {"data_type": "bigint", "n": 2}
    assert a["tags"] == []  # a re-create starts with its own tags only (docs/model.md)


def test_events_for_one_asset_keep_their_order_even_when_typed_on_another_lane(server):
    x = "pg/sales/public/t9/x"  # an orphan column (no table t9)
    server.ingest_ok(estate()[:3] + [col(x, "int")])
    ans = server.post_events([{"op": "delete", "qualified_name": x}, up(x, "table")])
    assert ans["rejected"] == [] and ans["applied"] == 2, ans
    a = server.asset(x)
    assert a["type"] == "table" and a["deleted"] is False


def _lane_commits(server, lane):
    for line in server.get("/metrics").text.splitlines():
        if line.startswith(f'metasync_ingest_lag_seconds_count{{lane="{lane}"}}'):
            return int(float(line.split()[1]))
    return 0


def test_untyped_events_of_a_custom_bulk_type_go_to_the_bulk_lane(server):
    """docs/events.md: an event without a type follows its asset's stored type's lane, custom
    types included."""
    r = server.post("/api/v1/types", json.dumps({"name": "metric_field", "lane": "bulk"}),
                    "application/json")
    assert r.status_code == 201, r.text
    server.ingest_ok([up("m/f1", "metric_field")])
    bulk, fast = _lane_commits(server, "bulk"), _lane_commits(server, "fast")
    server.ingest_ok([{"op": "tag", "qualified_name": "m/f1", "tag": "PII"}])
    server.ingest_ok([{"op": "patch", "qualified_name": "m/f1", "attributes": {"n": 1}}])
    assert _lane_commits(server, "bulk") == bulk + 2
    assert _lane_commits(server, "fast") == fast


def test_recreate_starts_with_the_tags_of_its_own_event(server):
    """docs/model.md (Soft delete): a re-created asset does not get its old direct tags back."""
    server.ingest_ok(estate())
    qn = "pg/sales/public/orders"
    server.ingest_ok([{"op": "tag", "qualified_name": qn, "tag": "PII"},
                      {"op": "delete", "qualified_name": qn}])
    server.ingest_ok([up(qn, "table")])
    assert server.asset(qn)["tags"] == []
    server.ingest_ok([{"op": "delete", "qualified_name": qn}, up(qn, "table", tags=["GDPR"])])
    assert [t["name"] for t in server.asset(qn)["tags"]] == ["GDPR"]
    assert server.changes(after=0, limit=1000)["items"][-1]["changed"].count("tags") == 1


def test_deep_attributes_survive_a_patch(server):
    """Attributes nested deeper than json-c's own 32 levels (the decoder takes 64) are read back
    with the decoder's parser: a later patch merges into them instead of dropping them."""
    deep = {"leaf": True}
    for _ in range(58):  # event → attributes → 58 levels: 60 deep
        deep = {"d": deep}
    server.ingest_ok([up("deep", "process", attributes={"inputs": [], "outputs": [],
                                                          "deep": deep})])
    ans = server.ingest_ok([{"op": "patch", "qualified_name": "deep", "attributes": {"n": 1}}])
    assert ans["applied"] == 1, ans
    a = server.asset("deep")["attributes"]
    assert a["deep"] == deep and a["n"] == 1 and a["inputs"] == []
    assert server.history("deep")[-1]["changed"] == ["attributes.n"]
