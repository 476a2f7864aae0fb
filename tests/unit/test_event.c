/*
 * test_event.c — unit tests of the event decoder: every op, normalization, every rejection code
 * with its detail, limits (size, depth, UTF-8), exact integers, custom types per tenant, and
 * batch decoding of NDJSON and JSON bodies with body-relative positions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ms_event.h"
#include "ms_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per-test state: a registry with one custom type for tenant "acme", and decode options. */
typedef struct fixture {
    ms_types *types;
    ms_decode_opts opts;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    f->types = ms_types_new();
    const char *def = "{\"name\":\"kafka_topic\",\"parents\":[\"connection\"],"
                      "\"required_attributes\":[\"partitions\"],\"lane\":\"bulk\"}";
    ms_error err;
    if (ms_types_register(f->types, "acme", def, strlen(def), NULL, NULL, &err) != MS_OK) return -1;
    f->opts.tenant = "acme";
    f->opts.types = f->types;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ms_types_free(f->types);
    free(f);
    return 0;
}

/* Decodes json, which must be valid; returns the event (caller frees). */
static ms_event *decode_ok(fixture *f, const char *json)
{
    ms_event *ev = NULL;
    ms_error err;
    ms_err rc = ms_event_decode(json, strlen(json), &f->opts, &ev, &err);
    if (rc != MS_OK)
        print_error("decode of %s failed: %s '%s'\n", json, ms_err_code(rc), err.detail);
    assert_int_equal(rc, MS_OK);
    assert_int_equal(err.code, MS_OK);
    assert_non_null(ev);
    assert_string_equal(ev->tenant, "acme");
    /* lanes count what the decoded event holds: at least the struct and its qualified name */
    assert_int_equal(ev->bytes, ms_event_heap_bytes(ev));
    assert_true(ev->bytes > sizeof *ev + strlen(ev->qn));
    return ev;
}

/* Decodes json, which must fail with code and exactly this detail. */
static void decode_err(fixture *f, const char *json, ms_err code, const char *detail)
{
    ms_event *ev = (ms_event *)f;
    ms_error err;
    ms_err rc = ms_event_decode(json, strlen(json), &f->opts, &ev, &err);
    if (rc != code || strcmp(err.detail, detail) != 0)
        print_error("decode of %s: got %s '%s', want %s '%s'\n", json, ms_err_code(rc), err.detail,
                    ms_err_code(code), detail);
    assert_int_equal(rc, code);
    assert_int_equal(err.code, code);
    assert_string_equal(err.detail, detail);
    assert_null(ev);
}

static void test_upsert(void **state)
{
    fixture *f = *state;
    ms_event *ev = decode_ok(
        f,
        "{\"id\":\"e-1\",\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":"
        "\"pg/sales/public/orders/amount\",\"parent\":\"pg/sales/public/orders\",\"name\":"
        "\"amount\",\"attributes\":{\"data_type\":\"numeric(12,2)\", \"b\": {\"z\":1,\"a\":[2]}},"
        "\"tags\":[\"PII\"],\"ts\":\"2026-11-23T19:00:00Z\",\"tenant\":\"acme\",\"if_version\":3}");
    assert_int_equal(ev->op, MS_OP_UPSERT);
    assert_string_equal(ev->id, "e-1");
    assert_string_equal(ev->qn, "pg/sales/public/orders/amount");
    assert_string_equal(ev->type, "column");
    assert_string_equal(ev->name, "amount");
    assert_string_equal(ev->parent, "pg/sales/public/orders");
    assert_string_equal(ev->attributes,
                        "{\"b\":{\"a\":[2],\"z\":1},\"data_type\":\"numeric(12,2)\"}");
    assert_true(ev->has_tags);
    assert_int_equal(ev->ntags, 1);
    assert_string_equal(ev->tags[0], "PII");
    assert_string_equal(ev->ts, "2026-11-23T19:00:00Z");
    assert_true(ev->has_if_version);
    assert_int_equal(ev->if_version, 3);
    assert_int_equal(ev->lane, MS_LANE_BULK);
    assert_true(ev->lane_known);
    assert_null(ev->tag);
    assert_null(ev->to);
    assert_null(ev->via);
    ms_event_free(ev);
    assert_string_equal(ms_op_name(MS_OP_UPSERT), "upsert");
    assert_string_equal(ms_op_name(MS_OP_UNLINK), "unlink");
}

static void test_upsert_normalization(void **state)
{
    fixture *f = *state;
    /* name and parent derived from the qualified name when the type has parent types. */
    ms_event *ev = decode_ok(f, "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":"
                                "\"pg/sales/public/orders\"}");
    assert_string_equal(ev->name, "orders");
    assert_string_equal(ev->parent, "pg/sales/public");
    assert_string_equal(ev->attributes, "{}");
    assert_false(ev->has_tags);
    assert_null(ev->tags);
    assert_false(ev->has_if_version);
    assert_null(ev->id);
    assert_null(ev->ts);
    assert_int_equal(ev->lane, MS_LANE_FAST);
    assert_true(ev->lane_known);
    ms_event_free(ev);
    /* No '/' → no parent; connection and process have no parent types → no parent either. */
    ev = decode_ok(f, "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"orders\"}");
    assert_string_equal(ev->name, "orders");
    assert_null(ev->parent);
    ms_event_free(ev);
    ev = decode_ok(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg/prod\"}");
    assert_string_equal(ev->name, "prod");
    assert_null(ev->parent);
    ms_event_free(ev);
    ev = decode_ok(f, "{\"op\":\"upsert\",\"type\":\"process\",\"qualified_name\":\"etl/job\","
                      "\"attributes\":{\"inputs\":[],\"outputs\":[]}}");
    assert_null(ev->parent);
    assert_string_equal(ev->name, "job");
    ms_event_free(ev);
    /* Edge cases of the split: leading and trailing '/'. */
    ev = decode_ok(f, "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"/orders\"}");
    assert_string_equal(ev->name, "orders");
    assert_null(ev->parent);
    ms_event_free(ev);
    ev = decode_ok(f, "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"a/b/\"}");
    assert_string_equal(ev->name, "a/b/");
    assert_string_equal(ev->parent, "a/b");
    ms_event_free(ev);
    /* Given name and parent win. */
    ev = decode_ok(f, "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"a/b\","
                      "\"name\":\"B\",\"parent\":\"x/y\"}");
    assert_string_equal(ev->name, "B");
    assert_string_equal(ev->parent, "x/y");
    ms_event_free(ev);
    /* Tags sorted and unique; an empty list is kept (it clears the tags). */
    ev = decode_ok(f,
                   "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"t\","
                   "\"tags\":[\"pii\",\"Gold\",\"pii\",\"\xc3\xa9t\xc3\xa9\",\"gold\",\"Gold\"]}");
    assert_true(ev->has_tags);
    assert_int_equal(ev->ntags, 4);
    assert_string_equal(ev->tags[0], "Gold");
    assert_string_equal(ev->tags[1], "gold");
    assert_string_equal(ev->tags[2], "pii");
    assert_string_equal(ev->tags[3], "\xc3\xa9t\xc3\xa9");
    ms_event_free(ev);
    ev =
        decode_ok(f, "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"t\",\"tags\":[]}");
    assert_true(ev->has_tags);
    assert_int_equal(ev->ntags, 0);
    ms_event_free(ev);
    /* bi_field is bulk; exactly 1024 bytes is allowed; if_version 0 means "must not exist". */
    char qn[1100];
    memset(qn, 'q', 1024);
    qn[1024] = '\0';
    char json[1300];
    snprintf(json, sizeof json,
             "{\"op\":\"upsert\",\"type\":\"bi_field\",\"qualified_name\":\"%s\",\"if_version\":0}",
             qn);
    ev = decode_ok(f, json);
    assert_int_equal(ev->lane, MS_LANE_BULK);
    assert_int_equal(strlen(ev->qn), 1024);
    assert_true(ev->has_if_version);
    assert_int_equal(ev->if_version, 0);
    ms_event_free(ev);
}

static void test_other_ops(void **state)
{
    fixture *f = *state;
    ms_event *ev = decode_ok(f, "{\"op\":\"patch\",\"qualified_name\":\"pg/a\",\"attributes\":"
                                "{\"z\":null,\"a\":{\"y\":1,\"b\":null}},\"if_version\":7}");
    assert_int_equal(ev->op, MS_OP_PATCH);
    assert_string_equal(ev->attributes, "{\"a\":{\"b\":null,\"y\":1},\"z\":null}");
    assert_null(ev->type);
    assert_null(ev->name);
    assert_null(ev->parent);
    assert_false(ev->lane_known);
    assert_int_equal(ev->lane, MS_LANE_FAST);
    assert_int_equal(ev->if_version, 7);
    ms_event_free(ev);

    ev = decode_ok(f, "{\"op\":\"patch\",\"type\":\"column\",\"qualified_name\":\"pg/a/c\","
                      "\"attributes\":{}}");
    assert_string_equal(ev->attributes, "{}");
    assert_string_equal(ev->type, "column");
    assert_true(ev->lane_known);
    assert_int_equal(ev->lane, MS_LANE_BULK);
    ms_event_free(ev);

    ev = decode_ok(f, "{\"op\":\"delete\",\"qualified_name\":\"pg/a\",\"id\":\"d1\"}");
    assert_int_equal(ev->op, MS_OP_DELETE);
    assert_string_equal(ev->qn, "pg/a");
    assert_string_equal(ev->id, "d1");
    assert_null(ev->attributes);
    assert_null(ev->name);
    ms_event_free(ev);

    ev = decode_ok(f, "{\"op\":\"tag\",\"qualified_name\":\"pg/a\",\"tag\":\"PII\"}");
    assert_int_equal(ev->op, MS_OP_TAG);
    assert_string_equal(ev->tag, "PII");
    assert_false(ev->has_tags);
    ms_event_free(ev);

    ev = decode_ok(f, "{\"op\":\"untag\",\"qualified_name\":\"pg/a\",\"tag\":\"PII\","
                      "\"type\":\"table\"}");
    assert_int_equal(ev->op, MS_OP_UNTAG);
    assert_string_equal(ev->tag, "PII");
    assert_string_equal(ev->type, "table");
    ms_event_free(ev);

    ev = decode_ok(f, "{\"op\":\"link\",\"from\":\"pg/a\",\"to\":\"pg/b\",\"via\":\"etl/job\","
                      "\"ts\":\"2026-11-23T19:00:00.123456+01:00\"}");
    assert_int_equal(ev->op, MS_OP_LINK);
    assert_string_equal(ev->qn, "pg/a");
    assert_string_equal(ev->to, "pg/b");
    assert_string_equal(ev->via, "etl/job");
    assert_string_equal(ev->ts, "2026-11-23T19:00:00.123456+01:00");
    assert_null(ev->attributes);
    ms_event_free(ev);

    ev = decode_ok(f, "{\"op\":\"unlink\",\"from\":\"pg/a\",\"to\":\"pg/b\"}");
    assert_int_equal(ev->op, MS_OP_UNLINK);
    assert_string_equal(ev->qn, "pg/a");
    assert_string_equal(ev->to, "pg/b");
    assert_null(ev->via);
    ms_event_free(ev);

    /* Timestamps that look like RFC 3339. */
    const char *good_ts[] = {"2026-01-01T00:00:00Z", "2026-12-31t23:59:60z",
                             "2026-06-15T12:30:45.1-07:30", "2026-06-15T12:30:45.123456789Z"};
    for (size_t i = 0; i < sizeof good_ts / sizeof good_ts[0]; i++) {
        char json[200];
        snprintf(json, sizeof json, "{\"op\":\"delete\",\"qualified_name\":\"a\",\"ts\":\"%s\"}",
                 good_ts[i]);
        ms_event_free(decode_ok(f, json));
    }
    /* Leading and trailing white space around the event is fine. */
    ms_event_free(decode_ok(f, " \t\r\n{\"op\":\"delete\",\"qualified_name\":\"a\"} \n"));
}

static void test_rejections(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *json;
        ms_err code;
        const char *detail;
    } cases[] = {
        /* shape */
        {"[]", MS_ERR_NOT_OBJECT, "an event must be a JSON object, not an array"},
        {"\"x\"", MS_ERR_NOT_OBJECT, "an event must be a JSON object, not a string"},
        {"null", MS_ERR_NOT_OBJECT, "an event must be a JSON object, not null"},
        {"12", MS_ERR_NOT_OBJECT, "an event must be a JSON object, not a number"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"color\":1}", MS_ERR_UNKNOWN_FIELD,
         "unknown field 'color'"},
        {"{\"Op\":\"delete\"}", MS_ERR_UNKNOWN_FIELD, "unknown field 'Op'"},
        /* op */
        {"{\"qualified_name\":\"a\"}", MS_ERR_MISSING_FIELD, "op is required"},
        {"{}", MS_ERR_MISSING_FIELD, "op is required"},
        {"{\"op\":1,\"qualified_name\":\"a\"}", MS_ERR_INVALID_FIELD, "op must be a string"},
        {"{\"op\":null}", MS_ERR_INVALID_FIELD, "op must be a string"},
        {"{\"op\":\"merge\",\"qualified_name\":\"a\"}", MS_ERR_UNKNOWN_OP, "unknown op 'merge'"},
        {"{\"op\":\"UPSERT\"}", MS_ERR_UNKNOWN_OP, "unknown op 'UPSERT'"},
        /* tenant */
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"tenant\":\"globex\"}", MS_ERR_INVALID_FIELD,
         "event tenant 'globex' does not match 'acme'"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"tenant\":7}", MS_ERR_INVALID_FIELD,
         "tenant must be a string"},
        /* required fields per op */
        {"{\"op\":\"delete\"}", MS_ERR_MISSING_FIELD, "qualified_name is required for op delete"},
        {"{\"op\":\"upsert\",\"qualified_name\":\"a\"}", MS_ERR_MISSING_FIELD,
         "type is required for op upsert"},
        {"{\"op\":\"patch\",\"qualified_name\":\"a\"}", MS_ERR_MISSING_FIELD,
         "attributes is required for op patch"},
        {"{\"op\":\"tag\",\"qualified_name\":\"a\"}", MS_ERR_MISSING_FIELD,
         "tag is required for op tag"},
        {"{\"op\":\"untag\",\"qualified_name\":\"a\"}", MS_ERR_MISSING_FIELD,
         "tag is required for op untag"},
        {"{\"op\":\"link\",\"to\":\"b\"}", MS_ERR_MISSING_FIELD, "from is required for op link"},
        {"{\"op\":\"unlink\",\"from\":\"a\"}", MS_ERR_MISSING_FIELD,
         "to is required for op unlink"},
        /* fields not allowed with the op */
        {"{\"op\":\"link\",\"qualified_name\":\"a\",\"from\":\"a\",\"to\":\"b\"}",
         MS_ERR_INVALID_FIELD, "qualified_name is not allowed with op link"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"tags\":[]}", MS_ERR_INVALID_FIELD,
         "tags is not allowed with op delete"},
        {"{\"op\":\"patch\",\"qualified_name\":\"a\",\"attributes\":{},\"tags\":[]}",
         MS_ERR_INVALID_FIELD, "tags is not allowed with op patch"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"attributes\":{}}", MS_ERR_INVALID_FIELD,
         "attributes is not allowed with op delete"},
        {"{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"a\",\"tag\":\"x\"}",
         MS_ERR_INVALID_FIELD, "tag is not allowed with op upsert"},
        {"{\"op\":\"tag\",\"qualified_name\":\"a\",\"tag\":\"x\",\"to\":\"b\"}",
         MS_ERR_INVALID_FIELD, "to is not allowed with op tag"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"via\":\"p\"}", MS_ERR_INVALID_FIELD,
         "via is not allowed with op delete"},
        {"{\"op\":\"link\",\"from\":\"a\",\"to\":\"b\",\"if_version\":1}", MS_ERR_INVALID_FIELD,
         "if_version is not allowed with op link"},
        /* wrong JSON types */
        {"{\"op\":\"delete\",\"qualified_name\":5}", MS_ERR_INVALID_FIELD,
         "qualified_name must be a string"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"id\":1}", MS_ERR_INVALID_FIELD,
         "id must be a string"},
        {"{\"op\":\"link\",\"from\":[\"a\"],\"to\":\"b\"}", MS_ERR_INVALID_FIELD,
         "from must be a string"},
        {"{\"op\":\"link\",\"from\":\"a\",\"to\":{}}", MS_ERR_INVALID_FIELD, "to must be a string"},
        {"{\"op\":\"link\",\"from\":\"a\",\"to\":\"b\",\"via\":true}", MS_ERR_INVALID_FIELD,
         "via must be a string"},
        {"{\"op\":\"upsert\",\"type\":1,\"qualified_name\":\"a\"}", MS_ERR_INVALID_FIELD,
         "type must be a string"},
        {"{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"a\",\"name\":2}",
         MS_ERR_INVALID_FIELD, "name must be a string"},
        {"{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"a\",\"parent\":null}",
         MS_ERR_INVALID_FIELD, "parent must be a string"},
        {"{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"a\",\"attributes\":[]}",
         MS_ERR_INVALID_FIELD, "attributes must be an object"},
        {"{\"op\":\"patch\",\"qualified_name\":\"a\",\"attributes\":null}", MS_ERR_INVALID_FIELD,
         "attributes must be an object"},
        {"{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"a\",\"tags\":\"pii\"}",
         MS_ERR_INVALID_FIELD, "tags must be an array of strings"},
        {"{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"a\",\"tags\":[\"a\",1]}",
         MS_ERR_INVALID_FIELD, "tags[1] must be a string"},
        {"{\"op\":\"tag\",\"qualified_name\":\"a\",\"tag\":[\"x\"]}", MS_ERR_INVALID_FIELD,
         "tag must be a string"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"ts\":1700000000}", MS_ERR_INVALID_FIELD,
         "ts must be a string"},
        /* values */
        {"{\"op\":\"delete\",\"qualified_name\":\"\"}", MS_ERR_INVALID_FIELD,
         "qualified_name must not be empty"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\\nb\"}", MS_ERR_INVALID_FIELD,
         "qualified_name contains a control character (U+000A)"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\\u0000b\"}", MS_ERR_INVALID_FIELD,
         "qualified_name contains a control character (U+0000)"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\\u001fb\"}", MS_ERR_INVALID_FIELD,
         "qualified_name contains a control character (U+001F)"},
        {"{\"op\":\"link\",\"from\":\"a\",\"to\":\"\"}", MS_ERR_INVALID_FIELD,
         "to must not be empty"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"id\":\"\"}", MS_ERR_INVALID_FIELD,
         "id must not be empty"},
        {"{\"op\":\"tag\",\"qualified_name\":\"a\",\"tag\":\"\"}", MS_ERR_INVALID_FIELD,
         "tag must not be empty"},
        {"{\"op\":\"tag\",\"qualified_name\":\"a\",\"tag\":\"x\\ty\"}", MS_ERR_INVALID_FIELD,
         "tag contains a control character (U+0009)"},
        {"{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"a\",\"tags\":[\"a\",\"\"]}",
         MS_ERR_INVALID_FIELD, "tags[1] must not be empty"},
        {"{\"op\":\"upsert\",\"type\":\"\",\"qualified_name\":\"a\"}", MS_ERR_INVALID_FIELD,
         "type must not be empty"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"if_version\":-1}", MS_ERR_INVALID_FIELD,
         "if_version must be an integer between 0 and 9223372036854775807"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"if_version\":1.0}", MS_ERR_INVALID_FIELD,
         "if_version must be an integer between 0 and 9223372036854775807"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"if_version\":\"1\"}", MS_ERR_INVALID_FIELD,
         "if_version must be an integer between 0 and 9223372036854775807"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"if_version\":9223372036854775808}",
         MS_ERR_INVALID_FIELD, "if_version must be an integer between 0 and 9223372036854775807"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"ts\":\"yesterday\"}", MS_ERR_INVALID_FIELD,
         "ts must be an RFC 3339 date-time such as 2026-11-23T19:00:00Z"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"ts\":\"2026-11-23T19:00:00\"}",
         MS_ERR_INVALID_FIELD, "ts must be an RFC 3339 date-time such as 2026-11-23T19:00:00Z"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"ts\":\"2026-11-23 19:00:00Z\"}",
         MS_ERR_INVALID_FIELD, "ts must be an RFC 3339 date-time such as 2026-11-23T19:00:00Z"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"ts\":\"2026-13-23T19:00:00Z\"}",
         MS_ERR_INVALID_FIELD, "ts must be an RFC 3339 date-time such as 2026-11-23T19:00:00Z"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"ts\":\"2026-11-23T24:00:00Z\"}",
         MS_ERR_INVALID_FIELD, "ts must be an RFC 3339 date-time such as 2026-11-23T19:00:00Z"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"ts\":\"2026-11-23T19:00:00.Z\"}",
         MS_ERR_INVALID_FIELD, "ts must be an RFC 3339 date-time such as 2026-11-23T19:00:00Z"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"ts\":\"2026-11-23T19:00:00.1234567890Z\"}",
         MS_ERR_INVALID_FIELD, "ts must be an RFC 3339 date-time such as 2026-11-23T19:00:00Z"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"ts\":\"2026-11-23T19:00:00+0100\"}",
         MS_ERR_INVALID_FIELD, "ts must be an RFC 3339 date-time such as 2026-11-23T19:00:00Z"},
        {"{\"op\":\"delete\",\"qualified_name\":\"a\",\"ts\":\"2026-11-23T19:00:00Zx\"}",
         MS_ERR_INVALID_FIELD, "ts must be an RFC 3339 date-time such as 2026-11-23T19:00:00Z"},
        /* types */
        {"{\"op\":\"upsert\",\"type\":\"nope\",\"qualified_name\":\"a\"}", MS_ERR_UNKNOWN_TYPE,
         "unknown type 'nope'"},
        {"{\"op\":\"delete\",\"type\":\"nope\",\"qualified_name\":\"a\"}", MS_ERR_UNKNOWN_TYPE,
         "unknown type 'nope'"},
        {"{\"op\":\"upsert\",\"type\":\"table\\u0000x\",\"qualified_name\":\"a\"}",
         MS_ERR_UNKNOWN_TYPE, "unknown type 'table?x'"},
        {"{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"t/c\"}",
         MS_ERR_MISSING_ATTRIBUTE, "column requires attributes.data_type"},
        {"{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"t/c\",\"attributes\":"
         "{\"data_type\":null}}",
         MS_ERR_MISSING_ATTRIBUTE, "column requires attributes.data_type"},
        {"{\"op\":\"upsert\",\"type\":\"process\",\"qualified_name\":\"p\",\"attributes\":"
         "{\"inputs\":[]}}",
         MS_ERR_MISSING_ATTRIBUTE, "process requires attributes.outputs"},
        /* JSON */
        {"{\"op\":\"delete\",", MS_ERR_MALFORMED_JSON, "unexpected end of input"},
        {"{\"op\":\"delete\",\"qualified_name\":\"\xff\"}", MS_ERR_INVALID_UTF8,
         "invalid UTF-8 sequence"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        decode_err(f, cases[i].json, cases[i].code, cases[i].detail);

    /* Precedence: unknown fields before op; op before the rest. */
    decode_err(f, "{\"zzz\":1}", MS_ERR_UNKNOWN_FIELD, "unknown field 'zzz'");
    decode_err(f, "{\"qualified_name\":5,\"op\":\"nope\"}", MS_ERR_UNKNOWN_OP, "unknown op 'nope'");
    /* Long values are clipped in details. */
    char json[400];
    char big[200];
    memset(big, 'x', 150);
    big[150] = '\0';
    snprintf(json, sizeof json, "{\"op\":\"%s\"}", big);
    ms_event *ev = NULL;
    ms_error err;
    assert_int_equal(ms_event_decode(json, strlen(json), &f->opts, &ev, &err), MS_ERR_UNKNOWN_OP);
    assert_true(strlen(err.detail) < 100);
    assert_non_null(strstr(err.detail, "...'"));
}

static void test_too_long(void **state)
{
    fixture *f = *state;
    char v[1100], json[1400];
    memset(v, 'a', sizeof v);
    v[1025] = '\0';
    snprintf(json, sizeof json, "{\"op\":\"delete\",\"qualified_name\":\"%s\"}", v);
    decode_err(f, json, MS_ERR_TOO_LONG, "qualified_name is 1025 bytes; the limit is 1024");
    snprintf(json, sizeof json, "{\"op\":\"link\",\"from\":\"a\",\"to\":\"%s\"}", v);
    decode_err(f, json, MS_ERR_TOO_LONG, "to is 1025 bytes; the limit is 1024");
    snprintf(json, sizeof json,
             "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"a\",\"parent\":\"%s\"}",
             v);
    decode_err(f, json, MS_ERR_TOO_LONG, "parent is 1025 bytes; the limit is 1024");
    v[257] = '\0';
    snprintf(json, sizeof json, "{\"op\":\"delete\",\"qualified_name\":\"a\",\"id\":\"%s\"}", v);
    decode_err(f, json, MS_ERR_TOO_LONG, "id is 257 bytes; the limit is 256");
    v[256] = '\0';
    snprintf(json, sizeof json, "{\"op\":\"delete\",\"qualified_name\":\"a\",\"id\":\"%s\"}", v);
    ms_event_free(decode_ok(f, json));
    v[129] = '\0';
    snprintf(json, sizeof json, "{\"op\":\"tag\",\"qualified_name\":\"a\",\"tag\":\"%s\"}", v);
    decode_err(f, json, MS_ERR_TOO_LONG, "tag is 129 bytes; the limit is 128");
    snprintf(json, sizeof json,
             "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"a\",\"tags\":[\"%s\"]}",
             v);
    decode_err(f, json, MS_ERR_TOO_LONG, "tags[0] is 129 bytes; the limit is 128");
    v[128] = '\0';
    snprintf(json, sizeof json, "{\"op\":\"tag\",\"qualified_name\":\"a\",\"tag\":\"%s\"}", v);
    ms_event_free(decode_ok(f, json));
}

static void test_custom_types(void **state)
{
    fixture *f = *state;
    ms_event *ev = decode_ok(f, "{\"op\":\"upsert\",\"type\":\"kafka_topic\",\"qualified_name\":"
                                "\"kafka/orders\",\"attributes\":{\"partitions\":12}}");
    assert_string_equal(ev->type, "kafka_topic");
    assert_string_equal(ev->parent, "kafka");
    assert_int_equal(ev->lane, MS_LANE_BULK);
    ms_event_free(ev);
    decode_err(f, "{\"op\":\"upsert\",\"type\":\"kafka_topic\",\"qualified_name\":\"k/o\"}",
               MS_ERR_MISSING_ATTRIBUTE, "kafka_topic requires attributes.partitions");
    /* Another tenant does not see acme's type. */
    f->opts.tenant = "globex";
    decode_err(f,
               "{\"op\":\"upsert\",\"type\":\"kafka_topic\",\"qualified_name\":\"k/o\","
               "\"attributes\":{\"partitions\":1}}",
               MS_ERR_UNKNOWN_TYPE, "unknown type 'kafka_topic'");
    decode_err(f, "{\"op\":\"delete\",\"qualified_name\":\"a\",\"tenant\":\"acme\"}",
               MS_ERR_INVALID_FIELD, "event tenant 'acme' does not match 'globex'");
    ev = NULL;
    ms_error err;
    const char *ok = "{\"op\":\"delete\",\"qualified_name\":\"a\",\"tenant\":\"globex\"}";
    assert_int_equal(ms_event_decode(ok, strlen(ok), &f->opts, &ev, &err), MS_OK);
    assert_string_equal(ev->tenant, "globex");
    ms_event_free(ev);
}

static void test_big_integers(void **state)
{
    fixture *f = *state;
    ms_event *ev = decode_ok(
        f, "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"t\",\"attributes\":"
           "{\"rows\":9007199254740993,\"max\":9223372036854775807,\"umax\":18446744073709551615,"
           "\"min\":-9223372036854775808,\"f\":0.1,\"e\":1E+2}}");
    assert_string_equal(ev->attributes, "{\"e\":1E+2,\"f\":0.1,\"max\":9223372036854775807,"
                                        "\"min\":-9223372036854775808,\"rows\":9007199254740993,"
                                        "\"umax\":18446744073709551615}");
    ms_event_free(ev);
    ev = decode_ok(f, "{\"op\":\"delete\",\"qualified_name\":\"a\",\"if_version\":"
                      "9223372036854775807}");
    assert_int_equal(ev->if_version, INT64_MAX);
    ms_event_free(ev);
    decode_err(f,
               "{\"op\":\"patch\",\"qualified_name\":\"a\",\"attributes\":{\"n\":"
               "18446744073709551616}}",
               MS_ERR_MALFORMED_JSON, "integer is outside the 64-bit range");
}

static void test_limits(void **state)
{
    fixture *f = *state;
    ms_event *ev = NULL;
    ms_error err;
    /* 1 MiB string, limit 1 MiB: the event (string plus its JSON) is too large. */
    size_t mib = 1024 * 1024;
    char *json = malloc(mib + 200);
    int n =
        snprintf(json, 200, "{\"op\":\"patch\",\"qualified_name\":\"a\",\"attributes\":{\"s\":\"");
    memset(json + n, 'x', mib);
    strcpy(json + n + mib, "\"}}");
    f->opts.max_event_bytes = mib;
    assert_int_equal(ms_event_decode(json, strlen(json), &f->opts, &ev, &err),
                     MS_ERR_EVENT_TOO_LARGE);
    assert_null(ev);
    char want[120];
    snprintf(want, sizeof want, "the event is %zu bytes; the limit is %zu", strlen(json), mib);
    assert_string_equal(err.detail, want);
    /* Checked before parsing: even broken JSON is just too large. */
    char saved = json[5];
    json[5] = '#';
    assert_int_equal(ms_event_decode(json, strlen(json), &f->opts, &ev, &err),
                     MS_ERR_EVENT_TOO_LARGE);
    json[5] = saved;
    /* Without the limit it decodes. */
    f->opts.max_event_bytes = 0;
    assert_int_equal(ms_event_decode(json, strlen(json), &f->opts, &ev, &err), MS_OK);
    ms_event_free(ev);
    free(json);

    /* 10,000-deep nesting. */
    size_t depth = 10000;
    json = malloc(2 * depth + 200);
    n = snprintf(json, 200, "{\"op\":\"patch\",\"qualified_name\":\"a\",\"attributes\":{\"d\":");
    memset(json + n, '[', depth);
    memset(json + n + depth, ']', depth);
    strcpy(json + n + 2 * depth, "}}");
    assert_int_equal(ms_event_decode(json, strlen(json), &f->opts, &ev, &err), MS_ERR_TOO_DEEP);
    assert_string_equal(ms_err_code(err.code), "nesting_too_deep");
    assert_int_equal(err.line, 1);
    assert_int_equal(err.offset, n + 62); /* the 65th container: event, attributes, 62 arrays */
    /* A smaller configured limit. */
    f->opts.max_depth = 3;
    const char *d3 = "{\"op\":\"patch\",\"qualified_name\":\"a\",\"attributes\":{\"a\":{}}}";
    const char *d4 =
        "{\"op\":\"patch\",\"qualified_name\":\"a\",\"attributes\":{\"a\":{\"b\":[]}}}";
    assert_int_equal(ms_event_decode(d3, strlen(d3), &f->opts, &ev, &err), MS_OK);
    ms_event_free(ev);
    assert_int_equal(ms_event_decode(d4, strlen(d4), &f->opts, &ev, &err), MS_ERR_TOO_DEEP);
    f->opts.max_depth = 0;
    free(json);

    /* Invalid UTF-8 with its position. */
    const char *bad = "{\"op\":\"delete\",\n \"qualified_name\":\"ab\xc3\x28\"}";
    assert_int_equal(ms_event_decode(bad, strlen(bad), &f->opts, &ev, &err), MS_ERR_INVALID_UTF8);
    assert_string_equal(ms_err_code(err.code), "invalid_utf8");
    assert_int_equal(err.line, 2);
    assert_int_equal(err.column, 22);
    assert_int_equal(err.offset, 37);

    /* Missing options. */
    ms_decode_opts none = {0};
    assert_int_equal(ms_event_decode("{}", 2, &none, &ev, &err), MS_ERR_INTERNAL);
}

/* Builds the body-relative line/column of offset off, independently of the code under test. */
static void line_col(const char *body, size_t off, long *line, long *col)
{
    *line = 1;
    size_t start = 0;
    for (size_t i = 0; i < off; i++)
        if (body[i] == '\n') {
            (*line)++;
            start = i + 1;
        }
    *col = (long)(off - start) + 1;
}

static void assert_rejection(const ms_batch *b, size_t k, size_t index, ms_err code, long line,
                             long col, long off)
{
    assert_true(k < b->nrejected);
    const ms_rejection *r = &b->rejected[k];
    if (r->index != index || r->err.code != code || r->err.line != line || r->err.column != col ||
        r->err.offset != off)
        print_error("rejection %zu: index %zu %s '%s' at %ld:%ld (%ld)\n", k, r->index,
                    ms_err_code(r->err.code), r->err.detail, r->err.line, r->err.column,
                    r->err.offset);
    assert_int_equal(r->index, index);
    assert_int_equal(r->err.code, code);
    assert_int_equal(r->err.line, line);
    assert_int_equal(r->err.column, col);
    assert_int_equal(r->err.offset, off);
}

static void test_batch_ndjson(void **state)
{
    fixture *f = *state;
    const char *body = "{\"op\":\"delete\",\"qualified_name\":\"a\"}\r\n"           /* line 1 */
                       "\n"                                                         /* line 2 */
                       "   \t\n"                                                    /* line 3 */
                       "{\"op\":\"delete\",\"qualified_name\":\"b\",\"bogus\":1}\n" /* line 4 */
                       "  {\"op\":\"delete\",\"qualified_name\":\"c\" ,}\n"         /* line 5 */
                       "{\"op\":\"delete\",\"qualified_name\":\"\xff\"}\n"          /* line 6 */
                       "[1]\r\n"                                                    /* line 7 */
                       "{\"op\":\"tag\",\"qualified_name\":\"d\",\"tag\":\"x\"}";   /* line 8 */
    ms_batch b;
    ms_error err;
    assert_int_equal(ms_batch_decode(body, strlen(body), MS_BODY_NDJSON, &f->opts, &b, &err),
                     MS_OK);
    assert_int_equal(err.code, MS_OK);
    assert_int_equal(b.total, 6);
    assert_int_equal(b.nevents, 2);
    assert_int_equal(b.nrejected, 4);
    assert_string_equal(b.events[0]->qn, "a");
    assert_int_equal(b.events[0]->index, 0);
    assert_int_equal(b.events[0]->bytes, ms_event_heap_bytes(b.events[0]));
    assert_string_equal(b.events[1]->qn, "d");
    assert_int_equal(b.events[1]->index, 5);
    assert_int_equal(b.events[1]->op, MS_OP_TAG);

    size_t l4 = (size_t)(strstr(body, "{\"op\":\"delete\",\"qualified_name\":\"b\"") - body);
    assert_rejection(&b, 0, 1, MS_ERR_UNKNOWN_FIELD, 4, 1, (long)l4);
    assert_string_equal(b.rejected[0].err.detail, "unknown field 'bogus'");
    size_t bad5 = (size_t)(strstr(body, ",}") - body) + 1; /* the '}' json-c trips on */
    long line, col;
    line_col(body, bad5, &line, &col);
    assert_int_equal(line, 5);
    assert_rejection(&b, 1, 2, MS_ERR_MALFORMED_JSON, 5, col, (long)bad5);
    size_t bad6 = (size_t)(strchr(body, '\xff') - body);
    line_col(body, bad6, &line, &col);
    assert_rejection(&b, 2, 3, MS_ERR_INVALID_UTF8, 6, col, (long)bad6);
    assert_int_equal(col, 34);
    size_t l7 = (size_t)(strstr(body, "[1]") - body);
    assert_rejection(&b, 3, 4, MS_ERR_NOT_OBJECT, 7, 1, (long)l7);

    /* Moving an event out leaves a NULL slot that ms_batch_free skips. */
    ms_event *moved = b.events[0];
    b.events[0] = NULL;
    ms_event_free(moved);
    ms_batch_free(&b);
    assert_int_equal(b.nevents, 0);
    assert_null(b.events);

    /* Blank only, and empty. */
    assert_int_equal(ms_batch_decode("\n\r\n  \n", 6, MS_BODY_NDJSON, &f->opts, &b, &err), MS_OK);
    assert_int_equal(b.total, 0);
    ms_batch_free(&b);
    assert_int_equal(ms_batch_decode("", 0, MS_BODY_NDJSON, &f->opts, &b, &err), MS_OK);
    assert_int_equal(b.total, 0);
    ms_batch_free(&b);
}

static void test_batch_ndjson_limits(void **state)
{
    fixture *f = *state;
    size_t depth = 10000;
    const char *ok = "{\"op\":\"delete\",\"qualified_name\":\"a\"}\n";
    size_t cap = 3 * strlen(ok) + 2 * depth + 100;
    char *body = malloc(cap);
    strcpy(body, ok);
    size_t p = strlen(body);
    memset(body + p, '[', depth);
    memset(body + p + depth, ']', depth);
    p += 2 * depth;
    body[p++] = '\n';
    /* A line over the event limit. */
    size_t l3 = p;
    p += (size_t)sprintf(body + p, "{\"op\":\"delete\",\"qualified_name\":\"%s\"}\n",
                         "0123456789012345678901234567890123456789");
    strcpy(body + p, ok);
    f->opts.max_event_bytes = 60;
    ms_batch b;
    ms_error err;
    assert_int_equal(ms_batch_decode(body, strlen(body), MS_BODY_NDJSON, &f->opts, &b, &err),
                     MS_OK);
    assert_int_equal(b.total, 4);
    assert_int_equal(b.nevents, 2);
    assert_int_equal(b.events[1]->index, 3);
    /* The deep line is bigger than 60 bytes too: size is checked first. */
    assert_rejection(&b, 0, 1, MS_ERR_EVENT_TOO_LARGE, 2, 1, (long)strlen(ok));
    assert_rejection(&b, 1, 2, MS_ERR_EVENT_TOO_LARGE, 3, 1, (long)l3);
    ms_batch_free(&b);
    f->opts.max_event_bytes = 0;
    assert_int_equal(ms_batch_decode(body, strlen(body), MS_BODY_NDJSON, &f->opts, &b, &err),
                     MS_OK);
    assert_int_equal(b.nevents, 3);
    assert_rejection(&b, 0, 1, MS_ERR_TOO_DEEP, 2, 65, (long)strlen(ok) + 64);
    ms_batch_free(&b);
    free(body);
}

static void test_batch_json_array(void **state)
{
    fixture *f = *state;
    const char *body = "[\n"
                       "  {\"op\":\"delete\",\"qualified_name\":\"a\"},\n"
                       "  {\"op\":\"delete\",\n"
                       "   \"qualified_name\":5},\n"
                       "  42 ,\n"
                       "  {\"op\":\"delete\",\n"
                       "   \"qualified_name\":\"x\xc3\"},\n"
                       "  {\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"t/c\","
                       "\"attributes\":{\"data_type\":\"int\",\"n\":9223372036854775807}}\n"
                       "]\n";
    ms_batch b;
    ms_error err;
    assert_int_equal(ms_batch_decode(body, strlen(body), MS_BODY_JSON, &f->opts, &b, &err), MS_OK);
    assert_int_equal(b.total, 5);
    assert_int_equal(b.nevents, 2);
    assert_int_equal(b.nrejected, 3);
    assert_string_equal(b.events[0]->qn, "a");
    assert_int_equal(b.events[0]->index, 0);
    assert_int_equal(b.events[0]->bytes, ms_event_heap_bytes(b.events[0]));
    assert_string_equal(b.events[1]->qn, "t/c");
    assert_int_equal(b.events[1]->index, 4);
    assert_string_equal(b.events[1]->attributes,
                        "{\"data_type\":\"int\",\"n\":9223372036854775807}");
    assert_int_equal(b.events[1]->lane, MS_LANE_BULK);
    /* A field error points at the start of its element (line 3, column 3). */
    assert_rejection(&b, 0, 1, MS_ERR_INVALID_FIELD, 3, 3, 44);
    assert_string_equal(b.rejected[0].err.detail, "qualified_name must be a string");
    assert_rejection(&b, 1, 2, MS_ERR_NOT_OBJECT, 5, 3, (long)(strstr(body, "42") - body));
    /* A JSON error inside an element points at the byte, on its own line. */
    size_t bad = (size_t)(strchr(body, '\xc3') - body);
    assert_rejection(&b, 2, 3, MS_ERR_INVALID_UTF8, 7, 23, (long)bad);
    ms_batch_free(&b);

    /* Empty arrays and bodies. */
    const char *empties[] = {"", "  \n ", "[]", " [ \n ] \n"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(
            ms_batch_decode(empties[i], strlen(empties[i]), MS_BODY_JSON, &f->opts, &b, &err),
            MS_OK);
        assert_int_equal(b.total, 0);
        assert_int_equal(b.nevents, 0);
        ms_batch_free(&b);
    }

    /* A single object is a batch of one; an invalid one is a rejection. */
    const char *one = "\n {\"op\":\"delete\",\"qualified_name\":\"a\"} \n";
    assert_int_equal(ms_batch_decode(one, strlen(one), MS_BODY_JSON, &f->opts, &b, &err), MS_OK);
    assert_int_equal(b.nevents, 1);
    assert_int_equal(b.events[0]->bytes, ms_event_heap_bytes(b.events[0]));
    ms_batch_free(&b);
    one = "{\"op\":\"nope\"}";
    assert_int_equal(ms_batch_decode(one, strlen(one), MS_BODY_JSON, &f->opts, &b, &err), MS_OK);
    assert_int_equal(b.nevents, 0);
    assert_rejection(&b, 0, 0, MS_ERR_UNKNOWN_OP, 1, 1, 0);
    ms_batch_free(&b);

    /* An oversized element is rejected by itself. */
    const char *big =
        "[{\"op\":\"delete\",\"qualified_name\":\"a\"},"
        "{\"op\":\"delete\",\"qualified_name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"},"
        "{\"op\":\"delete\",\"qualified_name\":\"c\"}]";
    f->opts.max_event_bytes = 50;
    assert_int_equal(ms_batch_decode(big, strlen(big), MS_BODY_JSON, &f->opts, &b, &err), MS_OK);
    assert_int_equal(b.nevents, 2);
    assert_rejection(&b, 0, 1, MS_ERR_EVENT_TOO_LARGE, 1, 39, 38);
    ms_batch_free(&b);
    f->opts.max_event_bytes = 0;

    /* A too-deep element is rejected by itself. */
    char deep[400];
    int n = snprintf(deep, sizeof deep, "[{\"op\":\"delete\",\"qualified_name\":\"a\"},");
    memset(deep + n, '[', 100);
    memset(deep + n + 100, ']', 100);
    strcpy(deep + n + 200, ",{\"op\":\"delete\",\"qualified_name\":\"c\"}]");
    assert_int_equal(ms_batch_decode(deep, strlen(deep), MS_BODY_JSON, &f->opts, &b, &err), MS_OK);
    assert_int_equal(b.nevents, 2);
    assert_rejection(&b, 0, 1, MS_ERR_TOO_DEEP, 1, n + 65, n + 64);
    ms_batch_free(&b);
}

/* Decodes body as JSON, expecting a whole-body error code at line:col (offset off). */
static void expect_body_error(fixture *f, const char *body, ms_err code, long line, long col,
                              long off, const char *detail)
{
    ms_batch b;
    ms_error err;
    ms_err rc = ms_batch_decode(body, strlen(body), MS_BODY_JSON, &f->opts, &b, &err);
    if (rc != code || err.line != line || err.column != col || err.offset != off)
        print_error("body %s: got %s '%s' at %ld:%ld (%ld)\n", body, ms_err_code(rc), err.detail,
                    err.line, err.column, err.offset);
    assert_int_equal(rc, code);
    assert_int_equal(err.code, code);
    assert_int_equal(err.line, line);
    assert_int_equal(err.column, col);
    assert_int_equal(err.offset, off);
    if (detail) assert_string_equal(err.detail, detail);
    assert_int_equal(b.total, 0);
    assert_int_equal(b.nevents, 0);
    assert_int_equal(b.nrejected, 0);
    assert_null(b.events);
    assert_null(b.rejected);
    ms_batch_free(&b);
}

static void test_batch_json_body_errors(void **state)
{
    fixture *f = *state;
    /* A syntax error inside an element (after valid and rejected ones) fails the whole body. */
    expect_body_error(f,
                      "[\n {\"op\":\"delete\",\"qualified_name\":\"a\"},\n {\"op\":\"nope\"},\n"
                      " {\"op\":\"delete\",\n  \"qualified_name\" \"b\"}\n]",
                      MS_ERR_MALFORMED_JSON, 5, 20, 93, NULL);
    expect_body_error(f, "[{\"op\":\"delete\",\"qualified_name\":\"a\"},]", MS_ERR_MALFORMED_JSON,
                      1, 39, 38, NULL);
    expect_body_error(f, "[{\"op\":\"delete\",\"qualified_name\":\"a\"}", MS_ERR_MALFORMED_JSON, 1,
                      38, 37, "unexpected end of input");
    expect_body_error(f, "[{\"op\":\"delete\",\"qualified_name\":\"a\"", MS_ERR_MALFORMED_JSON, 1,
                      37, 36, "unexpected end of input");
    expect_body_error(f, "[", MS_ERR_MALFORMED_JSON, 1, 2, 1, "unexpected end of input");
    expect_body_error(f, "[{\"op\":\"delete\",\"qualified_name\":\"a\"} {}]", MS_ERR_MALFORMED_JSON,
                      1, 39, 38, "expected ',' or ']' after an array element");
    expect_body_error(f, "[{\"op\":\"delete\",\"qualified_name\":\"a\"}]\n x",
                      MS_ERR_MALFORMED_JSON, 2, 2, 40, "unexpected content after the array");
    expect_body_error(f, "[] []", MS_ERR_MALFORMED_JSON, 1, 4, 3,
                      "unexpected content after the array");
    expect_body_error(f, "[,]", MS_ERR_MALFORMED_JSON, 1, 2, 1, NULL);
    expect_body_error(f, "[{\"a\":1]", MS_ERR_MALFORMED_JSON, 1, 8, 7, NULL);
    expect_body_error(f, "\"event\"", MS_ERR_MALFORMED_JSON, 1, 1, 0,
                      "expected an event object or an array of events");
    expect_body_error(f, "\n\n  42", MS_ERR_MALFORMED_JSON, 3, 3, 4,
                      "expected an event object or an array of events");
    expect_body_error(f, "{\"op\":\"delete\",\n\"qualified_name\":\"a\"", MS_ERR_MALFORMED_JSON, 2,
                      21, 36, "unexpected end of input");
    expect_body_error(f, "{\"op\":\"delete\",\"qualified_name\":\"a\"} {}", MS_ERR_MALFORMED_JSON,
                      1, 38, 37, NULL);
    /* NUL bytes. */
    ms_batch b;
    ms_error err;
    const char nul[] = "[{\"op\":\"delete\",\"qualified_name\":\"a\0\"}]";
    assert_int_equal(ms_batch_decode(nul, sizeof nul - 1, MS_BODY_JSON, &f->opts, &b, &err),
                     MS_ERR_MALFORMED_JSON);
    assert_int_equal(err.offset, 35);
    ms_batch_free(&b);
}

/* The one tenant rule: [A-Za-z0-9._-]{1,64}, also applied by the decoder to opts->tenant. */
static void test_tenant_names(void **state)
{
    (void)state;
    assert_true(ms_tenant_name_valid("default", 7));
    assert_true(ms_tenant_name_valid("Acme-1.eu_west", 14));
    char max[MS_MAX_TENANT_BYTES + 2];
    memset(max, 'a', sizeof max);
    assert_true(ms_tenant_name_valid(max, MS_MAX_TENANT_BYTES));
    assert_false(ms_tenant_name_valid(max, MS_MAX_TENANT_BYTES + 1));
    assert_false(ms_tenant_name_valid("", 0));
    assert_false(ms_tenant_name_valid("a/b", 3));
    assert_false(ms_tenant_name_valid("a b", 3));
    assert_false(ms_tenant_name_valid("a\0b", 3));
    assert_false(ms_tenant_name_valid("caf\xc3\xa9", 5));
    assert_false(ms_tenant_name_valid(NULL, 1));
}

/* ms_event_decode_parsed answers as ms_event_decode: the same event, the same refusals, the size
 * limit on the given text length. */
static void test_decode_parsed(void **state)
{
    fixture *f = *state;
    const char *json =
        "{\"id\":\"e\",\"op\":\"upsert\",\"type\":\"column\","
        "\"qualified_name\":\"pg/db/s/t/c\",\"attributes\":{\"data_type\":\"int\",\"a\":2},"
        "\"tags\":[\"Y\",\"X\",\"X\"]}";
    ms_error err;
    json_object *o = ms_json_parse(json, strlen(json), 0, NULL, &err);
    assert_non_null(o);
    ms_event *a = decode_ok(f, json), *b = NULL;
    assert_int_equal(ms_event_decode_parsed(o, strlen(json), &f->opts, &b, &err), MS_OK);
    assert_string_equal(a->qn, b->qn);
    assert_string_equal(a->parent, b->parent);
    assert_string_equal(a->attributes, b->attributes);
    assert_int_equal(a->ntags, b->ntags);
    assert_int_equal(a->lane, b->lane);
    assert_int_equal(a->bytes, b->bytes);
    ms_event_free(a);
    ms_event_free(b);
    f->opts.max_event_bytes = strlen(json) - 1;
    assert_int_equal(ms_event_decode_parsed(o, strlen(json), &f->opts, &b, &err),
                     MS_ERR_EVENT_TOO_LARGE);
    assert_null(b);
    json_object_put(o);
    const char *bad = "{\"op\":\"upsert\",\"qualified_name\":\"x\"}";
    o = ms_json_parse(bad, strlen(bad), 0, NULL, &err);
    f->opts.max_event_bytes = 0;
    assert_int_equal(ms_event_decode_parsed(o, strlen(bad), &f->opts, &b, &err),
                     ms_event_decode(bad, strlen(bad), &f->opts, &a, &err));
    assert_null(a);
    assert_null(b);
    json_object_put(o);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_upsert),           T(test_upsert_normalization),
        T(test_other_ops),        T(test_rejections),
        T(test_too_long),         T(test_custom_types),
        T(test_big_integers),     T(test_limits),
        T(test_batch_ndjson),     T(test_batch_ndjson_limits),
        T(test_batch_json_array), T(test_batch_json_body_errors),
        T(test_tenant_names),     T(test_decode_parsed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
