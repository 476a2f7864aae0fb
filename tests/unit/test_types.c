/*
 * test_types.c — unit tests of ms_types: the built-in types, custom type registration (validation,
 * idempotence, conflicts, unknown parents), tenant isolation, the listing JSON and concurrent use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ms_types.h"

#include <json-c/json.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int setup(void **state)
{
    *state = ms_types_new();
    return 0;
}

static int teardown(void **state)
{
    ms_types_free(*state);
    return 0;
}

/* Registers json for tenant; returns the code; out and created as in ms_types_register. */
static ms_err reg(ms_types *t, const char *tenant, const char *json, const ms_type **out,
                  bool *created, ms_error *err)
{
    return ms_types_register(t, tenant, json, strlen(json), out, created, err);
}

static void test_builtins(void **state)
{
    ms_types *t = *state;
    static const struct {
        const char *name, *parents, *required;
        ms_lane lane;
    } want[] = {
        {"connection", "", "", MS_LANE_FAST},
        {"database", "connection", "", MS_LANE_FAST},
        {"schema", "database", "", MS_LANE_FAST},
        {"table", "schema", "", MS_LANE_FAST},
        {"view", "schema", "", MS_LANE_FAST},
        {"column", "table,view", "data_type", MS_LANE_BULK},
        {"dashboard", "connection", "", MS_LANE_FAST},
        {"bi_field", "dashboard", "", MS_LANE_BULK},
        {"process", "", "inputs,outputs", MS_LANE_FAST},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const ms_type *ty = ms_types_get(t, NULL, want[i].name);
        assert_non_null(ty);
        assert_string_equal(ty->name, want[i].name);
        assert_true(ty->builtin);
        assert_null(ty->tenant);
        assert_int_equal(ty->lane, want[i].lane);
        char buf[128] = "";
        for (size_t k = 0; k < ty->nparents; k++) {
            if (k) strcat(buf, ",");
            strcat(buf, ty->parents[k]);
        }
        assert_string_equal(buf, want[i].parents);
        buf[0] = '\0';
        for (size_t k = 0; k < ty->nrequired; k++) {
            if (k) strcat(buf, ",");
            strcat(buf, ty->required[k]);
        }
        assert_string_equal(buf, want[i].required);
        assert_non_null(ty->json);
        /* Built-ins are visible to every tenant, and are the same object. */
        assert_ptr_equal(ms_types_get(t, "acme", want[i].name), ty);
    }
    assert_null(ms_types_get(t, "acme", "kafka_topic"));
    assert_null(ms_types_get(t, NULL, "Table"));
    assert_null(ms_types_get(t, NULL, ""));

    const ms_type *col = ms_types_get(t, NULL, "column");
    assert_string_equal(col->json, "{\"description\":\"A column of a table or view\",\"lane\":"
                                   "\"bulk\",\"name\":\"column\",\"parents\":[\"table\",\"view\"],"
                                   "\"required_attributes\":[\"data_type\"]}");
    assert_true(ms_type_allows_parent(col, "table"));
    assert_true(ms_type_allows_parent(col, "view"));
    assert_false(ms_type_allows_parent(col, "schema"));
    assert_false(ms_type_allows_parent(col, NULL));
    const ms_type *proc = ms_types_get(t, NULL, "process");
    assert_true(ms_type_allows_parent(proc, "schema"));
    assert_true(ms_type_allows_parent(proc, NULL));
    const ms_type *conn = ms_types_get(t, NULL, "connection");
    assert_true(conn->root);
    assert_false(proc->root);
    assert_false(ms_type_allows_parent(conn, NULL));
    assert_false(ms_type_allows_parent(conn, "connection"));
    assert_false(ms_type_allows_parent(conn, "database"));

    assert_string_equal(ms_lane_name(MS_LANE_FAST), "fast");
    assert_string_equal(ms_lane_name(MS_LANE_BULK), "bulk");
}

static void test_register_and_get(void **state)
{
    ms_types *t = *state;
    ms_error err;
    const ms_type *ty = NULL;
    bool created = false;
    const char *def = "{\"name\":\"kafka_topic\",\"parents\":[\"connection\"],"
                      "\"required_attributes\":[\"partitions\"],\"lane\":\"fast\","
                      "\"description\":\"A Kafka topic\"}";
    assert_int_equal(reg(t, "acme", def, &ty, &created, &err), MS_OK);
    assert_true(created);
    assert_non_null(ty);
    assert_string_equal(ty->name, "kafka_topic");
    assert_string_equal(ty->tenant, "acme");
    assert_false(ty->builtin);
    assert_int_equal(ty->nparents, 1);
    assert_string_equal(ty->parents[0], "connection");
    assert_int_equal(ty->nrequired, 1);
    assert_string_equal(ty->required[0], "partitions");
    assert_int_equal(ty->lane, MS_LANE_FAST);
    assert_string_equal(ty->description, "A Kafka topic");
    assert_string_equal(ty->json, "{\"description\":\"A Kafka topic\",\"lane\":\"fast\",\"name\":"
                                  "\"kafka_topic\",\"parents\":[\"connection\"],"
                                  "\"required_attributes\":[\"partitions\"]}");
    assert_ptr_equal(ms_types_get(t, "acme", "kafka_topic"), ty);

    /* Identical definition (other key order, white space): not created, same type. */
    const ms_type *ty2 = NULL;
    const char *same =
        "{ \"description\":\"A Kafka topic\", \"required_attributes\":[\"partitions\"],"
        " \"parents\":[\"connection\"], \"name\":\"kafka_topic\" }";
    assert_int_equal(reg(t, "acme", same, &ty2, &created, &err), MS_OK);
    assert_false(created);
    assert_ptr_equal(ty2, ty);

    /* A different definition of the same name conflicts. */
    const char *other = "{\"name\":\"kafka_topic\",\"parents\":[\"connection\"],\"lane\":\"bulk\"}";
    assert_int_equal(reg(t, "acme", other, &ty2, &created, &err), MS_ERR_TYPE_CONFLICT);
    assert_false(created);
    assert_null(ty2);
    assert_non_null(strstr(err.detail, "kafka_topic"));

    /* Defaults: no parents (any), no required attributes, fast lane, no description. */
    assert_int_equal(reg(t, "acme", "{\"name\":\"note\"}", &ty2, &created, &err), MS_OK);
    assert_true(created);
    assert_int_equal(ty2->nparents, 0);
    assert_int_equal(ty2->nrequired, 0);
    assert_int_equal(ty2->lane, MS_LANE_FAST);
    assert_null(ty2->description);
    assert_string_equal(ty2->json, "{\"lane\":\"fast\",\"name\":\"note\",\"parents\":[],"
                                   "\"required_attributes\":[]}");

    /* Lists are sorted and de-duplicated; a custom parent of the same tenant and the type itself
     * are allowed; NULL out/created are fine. */
    assert_int_equal(
        reg(t, "acme",
            "{\"name\":\"folder\",\"parents\":[\"folder\",\"kafka_topic\",\"connection\","
            "\"folder\"],\"required_attributes\":[\"b\",\"a\",\"b\"],\"lane\":\"bulk\"}",
            NULL, NULL, &err),
        MS_OK);
    ty2 = ms_types_get(t, "acme", "folder");
    assert_non_null(ty2);
    assert_int_equal(ty2->lane, MS_LANE_BULK);
    assert_string_equal(ty2->json, "{\"lane\":\"bulk\",\"name\":\"folder\",\"parents\":"
                                   "[\"connection\",\"folder\",\"kafka_topic\"],"
                                   "\"required_attributes\":[\"a\",\"b\"]}");
    assert_true(ms_type_allows_parent(ty2, "kafka_topic"));
    assert_false(ms_type_allows_parent(ty2, "table"));
}

static void test_register_errors(void **state)
{
    ms_types *t = *state;
    ms_error err;
    static const struct {
        const char *json;
        ms_err code;
        const char *detail; /* substring */
    } cases[] = {
        {"{\"name\":\"x\"", MS_ERR_MALFORMED_JSON, "unexpected end"},
        {"[]", MS_ERR_INVALID_FIELD, "must be a JSON object"},
        {"{}", MS_ERR_MISSING_FIELD, "name is required"},
        {"{\"name\":1}", MS_ERR_INVALID_FIELD, "name must be a string"},
        {"{\"name\":\"\"}", MS_ERR_INVALID_FIELD, "[a-z0-9_]"},
        {"{\"name\":\"Kafka\"}", MS_ERR_INVALID_FIELD, "[a-z0-9_]"},
        {"{\"name\":\"a-b\"}", MS_ERR_INVALID_FIELD, "[a-z0-9_]"},
        {"{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
         MS_ERR_INVALID_FIELD, "1..64"},
        {"{\"name\":\"table\"}", MS_ERR_TYPE_CONFLICT, "built-in"},
        {"{\"name\":\"x\",\"color\":\"red\"}", MS_ERR_INVALID_FIELD, "unknown field 'color'"},
        {"{\"name\":\"x\",\"parents\":\"connection\"}", MS_ERR_INVALID_FIELD, "parents must be"},
        {"{\"name\":\"x\",\"parents\":[1]}", MS_ERR_INVALID_FIELD, "parents[0] must be a string"},
        {"{\"name\":\"x\",\"parents\":[\"nope\"]}", MS_ERR_UNKNOWN_TYPE, "'nope'"},
        {"{\"name\":\"x\",\"parents\":[\"Bad Name\"]}", MS_ERR_INVALID_FIELD, "parents[0]"},
        {"{\"name\":\"x\",\"required_attributes\":[\"\"]}", MS_ERR_INVALID_FIELD,
         "required_attributes[0]"},
        {"{\"name\":\"x\",\"required_attributes\":[\"a\\nb\"]}", MS_ERR_INVALID_FIELD,
         "required_attributes[0]"},
        {"{\"name\":\"x\",\"required_attributes\":{}}", MS_ERR_INVALID_FIELD, "array"},
        {"{\"name\":\"x\",\"lane\":\"slow\"}", MS_ERR_INVALID_FIELD, "lane"},
        {"{\"name\":\"x\",\"lane\":1}", MS_ERR_INVALID_FIELD, "lane"},
        {"{\"name\":\"x\",\"description\":7}", MS_ERR_INVALID_FIELD, "description"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const ms_type *ty = (const ms_type *)&err;
        bool created = true;
        ms_err rc = reg(t, "acme", cases[i].json, &ty, &created, &err);
        if (rc != cases[i].code || !strstr(err.detail, cases[i].detail))
            print_error("case %s: got %s '%s'\n", cases[i].json, ms_err_code(rc), err.detail);
        assert_int_equal(rc, cases[i].code);
        assert_int_equal(err.code, cases[i].code);
        assert_non_null(strstr(err.detail, cases[i].detail));
        assert_null(ty);
        assert_false(created);
    }
    /* Malformed JSON carries its position. */
    reg(t, "acme", "{\n\"name\": x}", NULL, NULL, &err);
    assert_int_equal(err.code, MS_ERR_MALFORMED_JSON);
    assert_int_equal(err.line, 2);
    assert_int_equal(err.column, 9);
    /* Nothing got registered; a NULL err is allowed. */
    assert_null(ms_types_get(t, "acme", "x"));
    assert_int_equal(ms_types_register(t, "acme", "{}", 2, NULL, NULL, NULL), MS_ERR_MISSING_FIELD);
    assert_int_equal(reg(t, NULL, "{\"name\":\"x\"}", NULL, NULL, &err), MS_ERR_INVALID_FIELD);
}

static void test_tenant_isolation(void **state)
{
    ms_types *t = *state;
    ms_error err;
    bool created;
    const char *a = "{\"name\":\"topic\",\"parents\":[\"connection\"],\"lane\":\"fast\"}";
    const char *b = "{\"name\":\"topic\",\"parents\":[\"database\"],\"lane\":\"bulk\"}";
    assert_int_equal(reg(t, "acme", a, NULL, &created, &err), MS_OK);
    assert_true(created);
    /* Another tenant may define the same name differently. */
    assert_int_equal(reg(t, "globex", b, NULL, &created, &err), MS_OK);
    assert_true(created);
    const ms_type *ta = ms_types_get(t, "acme", "topic");
    const ms_type *tb = ms_types_get(t, "globex", "topic");
    assert_non_null(ta);
    assert_non_null(tb);
    assert_true(ta != tb);
    assert_int_equal(ta->lane, MS_LANE_FAST);
    assert_int_equal(tb->lane, MS_LANE_BULK);
    assert_null(ms_types_get(t, "initech", "topic"));
    assert_null(ms_types_get(t, NULL, "topic"));
    assert_null(ms_types_get(t, "acm", "topic"));
    /* A parent that only another tenant has is unknown. */
    assert_int_equal(
        reg(t, "initech", "{\"name\":\"part\",\"parents\":[\"topic\"]}", NULL, NULL, &err),
        MS_ERR_UNKNOWN_TYPE);
    assert_int_equal(
        reg(t, "acme", "{\"name\":\"part\",\"parents\":[\"topic\"]}", NULL, NULL, &err), MS_OK);
}

static void test_list_json(void **state)
{
    ms_types *t = *state;
    ms_error err;
    assert_int_equal(reg(t, "acme", "{\"name\":\"zeta\"}", NULL, NULL, &err), MS_OK);
    assert_int_equal(reg(t, "acme", "{\"name\":\"alpha\",\"description\":\"A \\\"quoted\\\" one\"}",
                         NULL, NULL, &err),
                     MS_OK);
    assert_int_equal(reg(t, "globex", "{\"name\":\"beta\"}", NULL, NULL, &err), MS_OK);
    assert_int_equal(reg(t, "acmf", "{\"name\":\"gamma\"}", NULL, NULL, &err), MS_OK);

    ms_buf b = MS_BUF_INIT;
    ms_types_list_json(t, "acme", &b);
    const char *s = ms_buf_cstr(&b);
    /* Valid JSON, built-ins first in their order, then custom by name, with "builtin". */
    struct json_object *o = json_tokener_parse(s);
    assert_non_null(o);
    assert_true(json_object_is_type(o, json_type_array));
    assert_int_equal(json_object_array_length(o), 13);
    const char *names[] = {"connection",   "database",  "schema",   "table",   "view",
                           "column",       "dashboard", "bi_field", "process", "kafka_subject",
                           "kafka_schema", "alpha",     "zeta"};
    for (size_t i = 0; i < 13; i++) {
        struct json_object *e = json_object_array_get_idx(o, i);
        assert_string_equal(json_object_get_string(json_object_object_get(e, "name")), names[i]);
        assert_int_equal(json_object_get_boolean(json_object_object_get(e, "builtin")), i < 11);
    }
    json_object_put(o);
    assert_non_null(strstr(s, "{\"builtin\":false,\"description\":\"A \\\"quoted\\\" one\","
                              "\"lane\":\"fast\",\"name\":\"alpha\",\"parents\":[],"
                              "\"required_attributes\":[]}"));
    assert_non_null(strstr(s, "{\"builtin\":true,\"description\":\"A column of a table or view\","
                              "\"lane\":\"bulk\",\"name\":\"column\""));
    assert_null(strstr(s, "beta"));
    assert_null(strstr(s, "gamma"));

    ms_buf_reset(&b);
    ms_types_list_json(t, NULL, &b);
    o = json_tokener_parse(ms_buf_cstr(&b));
    assert_int_equal(json_object_array_length(o), 11);
    json_object_put(o);
    ms_buf_free(&b);
}

/* Thread body: registers 50 types of its own tenant while looking types up. */
static void *register_many(void *arg)
{
    ms_types *t = ((void **)arg)[0];
    const char *tenant = ((void **)arg)[1];
    for (int i = 0; i < 50; i++) {
        char def[96];
        snprintf(def, sizeof def, "{\"name\":\"t%d\",\"parents\":[\"connection\"]}", i);
        ms_error err;
        bool created;
        if (ms_types_register(t, tenant, def, strlen(def), NULL, &created, &err) != MS_OK ||
            !created)
            return (void *)1;
        snprintf(def, sizeof def, "t%d", i);
        if (!ms_types_get(t, tenant, def) || !ms_types_get(t, tenant, "column")) return (void *)1;
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    ms_types *t = *state;
    pthread_t th[4];
    const char *tenants[4] = {"t0", "t1", "t2", "t3"};
    void *args[4][2];
    for (int i = 0; i < 4; i++) {
        args[i][0] = t;
        args[i][1] = (void *)tenants[i];
        assert_int_equal(pthread_create(&th[i], NULL, register_many, args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        assert_null(rv);
    }
    ms_buf b = MS_BUF_INIT;
    ms_types_list_json(t, "t2", &b);
    struct json_object *o = json_tokener_parse(ms_buf_cstr(&b));
    assert_int_equal(json_object_array_length(o), 61);
    json_object_put(o);
    ms_buf_free(&b);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_builtins),         T(test_register_and_get), T(test_register_errors),
        T(test_tenant_isolation), T(test_list_json),        T(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
