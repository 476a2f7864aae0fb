/*
 * test_registry.c — unit tests of the embedded schema registry (src/registry) over the SQLite
 * store and a running engine: global ids and per-subject versions, re-registration, soft and hard
 * delete, compatibility levels (global and per subject), the REST API's answers and Confluent
 * error codes, persistence across a reopen, the built-in schemas, and the kafka_schema assets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ms_engine.h"
#include "ms_registry.h"
#include "ms_runtime.h"
#include "ms_test_dir.h"
#include "ms_types.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const ms_store_ops ms_store_sqlite;

typedef struct fixture {
    char dir[512];
    ms_config cfg;
    ms_log log;
    ms_metrics metrics;
    ms_types *types;
    void *store;
    ms_engine *engine;
    ms_registry *r;
} fixture;

static void reg_open(fixture *f)
{
    ms_registry_args a = {&f->cfg, &f->log, &ms_store_sqlite, f->store, f->engine};
    ms_error err;
    ms_error_clear(&err);
    assert_int_equal(ms_registry_open(&a, &f->r, &err), MS_OK);
}

static void all_open(fixture *f)
{
    ms_store_open_args oa = {&f->cfg, &f->log, f->cfg.store_url, f->types};
    ms_error err;
    assert_int_equal(ms_store_sqlite.open(&oa, &f->store, &err), MS_OK);
    ms_engine_args ea = {.cfg = &f->cfg,
                         .log = &f->log,
                         .metrics = &f->metrics,
                         .store = &ms_store_sqlite,
                         .store_ctx = f->store,
                         .types = f->types};
    f->engine = ms_engine_new(&ea);
    assert_int_equal(ms_engine_start(f->engine, &err), MS_OK);
    reg_open(f);
}

static void all_close(fixture *f)
{
    ms_registry_free(f->r);
    f->r = NULL;
    ms_engine_stop(f->engine);
    ms_engine_free(f->engine);
    f->engine = NULL;
    ms_store_sqlite.close(f->store);
    f->store = NULL;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || ms_test_mkdtemp(f->dir, sizeof f->dir, "registry") != 0) return -1;
    ms_config_defaults(&f->cfg);
    ms_error err;
    char data[600];
    snprintf(data, sizeof data, "%s/data", f->dir);
    if (ms_config_set(&f->cfg, "data_dir", data, "test", &err) != MS_OK) return -1;
    if (ms_config_set(&f->cfg, "store.synchronous", "normal", "test", &err) != MS_OK) return -1;
    f->log.level = MS_LOG_ERROR;
    f->log.out = stderr;
    ms_metrics_init(&f->metrics);
    f->types = ms_types_new();
    all_open(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    all_close(f);
    ms_types_free(f->types);
    ms_config_free(&f->cfg);
    ms_test_rmtree(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ----------------------------------------------------------------------------------
 */

/* One API call; returns the status and, when want != NULL, the parsed body (caller puts). */
static int call(fixture *f, const char *method, const char *path, const char *query,
                const char *body, json_object **want)
{
    ms_registry_request rq = {.tenant = "default",
                              .method = method,
                              .path = path,
                              .query = query,
                              .body = body,
                              .body_len = body ? strlen(body) : 0};
    int status = 0;
    const char *ct = NULL;
    ms_buf out = MS_BUF_INIT;
    ms_registry_http(f->r, &rq, &status, &ct, &out);
    assert_string_equal(ct, "application/vnd.schemaregistry.v1+json");
    json_object *o = json_tokener_parse(ms_buf_cstr(&out));
    if (!o) print_error("not JSON: %s\n", ms_buf_cstr(&out));
    assert_non_null(o);
    if (status >= 400) { /* every error is a Confluent error body whose code starts with status */
        json_object *c;
        assert_true(json_object_object_get_ex(o, "error_code", &c));
        int code = json_object_get_int(c);
        assert_int_equal(code >= 1000 ? code / 100 : code, status);
        assert_true(json_object_object_get_ex(o, "message", &c));
    }
    if (want)
        *want = o;
    else
        json_object_put(o);
    ms_buf_free(&out);
    return status;
}

/* The error_code of a call that must fail. */
static int err_code(fixture *f, const char *method, const char *path, const char *query,
                    const char *body)
{
    json_object *o = NULL;
    int status = call(f, method, path, query, body, &o);
    assert_true(status >= 400);
    json_object *c;
    json_object_object_get_ex(o, "error_code", &c);
    int code = json_object_get_int(c);
    json_object_put(o);
    return code;
}

/* The HTTP status ms_registry_http answers GET path with on registry r. */
static int err_code_of(ms_registry *r, const char *path)
{
    ms_registry_request rq = {.tenant = "default", .method = "GET", .path = path};
    int status = 0;
    const char *ct = NULL;
    ms_buf out = MS_BUF_INIT;
    ms_registry_http(r, &rq, &status, &ct, &out);
    ms_buf_free(&out);
    return status;
}

static int64_t int_field(json_object *o, const char *k)
{
    json_object *v;
    assert_true(json_object_object_get_ex(o, k, &v));
    return json_object_get_int64(v);
}

/* A body {"schema": text}. */
static char *schema_body(const char *text)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "schema", json_object_new_string(text));
    char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return s;
}

/* Registers text under subject over the API; returns the id, or -error_code. */
static int64_t reg(fixture *f, const char *subject, const char *text)
{
    char path[300];
    snprintf(path, sizeof path, "/subjects/%s/versions", subject);
    char *b = schema_body(text);
    json_object *o = NULL;
    int status = call(f, "POST", path, NULL, b, &o);
    free(b);
    int64_t id = status == 200 ? int_field(o, "id") : -int_field(o, "error_code");
    json_object_put(o);
    return id;
}

#define REC_A "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}]}"
/* A with a field b that has a default: both directions compatible. */
#define REC_AB_DEF                                                                                 \
    "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},"           \
    "{\"name\":\"b\",\"type\":\"string\",\"default\":\"x\"}]}"
/* A with a field c without default: forward-compatible only (new can't read old). */
#define REC_AC                                                                                     \
    "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},"           \
    "{\"name\":\"c\",\"type\":\"long\"}]}"
/* Only b, with a default: reads anything of these (backward-compatible with all of them). */
#define REC_B_ANY                                                                                  \
    "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"b\",\"type\":\"string\","         \
    "\"default\":\"x\"}]}"
/* No fields: backward-compatible only (old readers need a). */
#define REC_EMPTY "{\"type\":\"record\",\"name\":\"R\",\"fields\":[]}"

/* ---- tests ------------------------------------------------------------------------------------
 */

/* Ids are global and per distinct schema; versions count per subject; identical re-registration
 * returns the existing id and version. */
static void test_ids_and_versions(void **state)
{
    fixture *f = *state;
    int64_t a = reg(f, "s1", REC_A);
    assert_true(a > 0);
    assert_int_equal(reg(f, "s1", REC_A), a);
    /* the same schema with other white space is the same schema */
    assert_int_equal(reg(f, "s2",
                         "{ \"type\" : \"record\", \"name\":\"R\", \"fields\" : [ "
                         "{\"name\":\"a\",\"type\":\"int\"} ] }"),
                     a);
    int64_t ab = reg(f, "s1", REC_AB_DEF);
    assert_true(ab > a);
    json_object *o = NULL;
    assert_int_equal(call(f, "GET", "/subjects/s1/versions", NULL, NULL, &o), 200);
    assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), "[1,2]");
    json_object_put(o);
    assert_int_equal(call(f, "GET", "/subjects/s1/versions/latest", NULL, NULL, &o), 200);
    assert_int_equal(int_field(o, "version"), 2);
    assert_int_equal(int_field(o, "id"), ab);
    json_object_put(o);
    assert_int_equal(call(f, "GET", "/subjects/s1/versions/-1", NULL, NULL, &o), 200);
    assert_int_equal(int_field(o, "version"), 2);
    json_object_put(o);
    assert_int_equal(call(f, "GET", "/schemas/ids/1", NULL, NULL, NULL), 200); /* built-in */
    char path[64];
    snprintf(path, sizeof path, "/schemas/ids/%lld/versions", (long long)a);
    assert_int_equal(call(f, "GET", path, NULL, NULL, &o), 200);
    assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                        "[{\"subject\":\"s1\",\"version\":1},{\"subject\":\"s2\",\"version\":1}]");
    json_object_put(o);
    snprintf(path, sizeof path, "/schemas/ids/%lld/subjects", (long long)a);
    assert_int_equal(call(f, "GET", path, NULL, NULL, &o), 200);
    assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                        "[\"s1\",\"s2\"]");
    json_object_put(o);

    /* lookup */
    char *b = schema_body(REC_A);
    assert_int_equal(call(f, "POST", "/subjects/s1", NULL, b, &o), 200);
    assert_int_equal(int_field(o, "version"), 1);
    assert_int_equal(int_field(o, "id"), a);
    json_object_put(o);
    assert_int_equal(err_code(f, "POST", "/subjects/nope", NULL, b), 40401);
    free(b);
    b = schema_body(REC_EMPTY);
    assert_int_equal(err_code(f, "POST", "/subjects/s1", NULL, b), 40403);
    free(b);

    /* the C API */
    const ms_avro_schema *s = NULL;
    ms_error err;
    assert_int_equal(ms_registry_schema_by_id(f->r, (uint32_t)a, &s, &err), MS_OK);
    assert_non_null(s);
    assert_int_equal(ms_registry_schema_by_id(f->r, 9999, &s, &err), MS_ERR_UNKNOWN_SCHEMA);
    uint32_t id = 0;
    assert_int_equal(ms_registry_register(f->r, "default", "s3", REC_A, strlen(REC_A), &id, &err),
                     MS_OK);
    assert_int_equal(id, a);
    assert_int_equal(
        ms_registry_register(f->r, "default", "s3", "{\"type\":\"nope\"}", 15, &id, &err),
        MS_ERR_INVALID_SCHEMA);
}

/* Soft delete hides, keeps numbers; hard delete only after soft; Confluent's codes. */
static void test_delete(void **state)
{
    fixture *f = *state;
    int64_t a = reg(f, "d", REC_A);
    assert_true(reg(f, "d", REC_AB_DEF) > 0);
    json_object *o = NULL;
    assert_int_equal(err_code(f, "DELETE", "/subjects/d/versions/1", "permanent=true", NULL),
                     40407);
    assert_int_equal(call(f, "DELETE", "/subjects/d/versions/1", NULL, NULL, &o), 200);
    assert_int_equal(json_object_get_int(o), 1);
    json_object_put(o);
    assert_int_equal(err_code(f, "DELETE", "/subjects/d/versions/1", NULL, NULL), 40406);
    assert_int_equal(err_code(f, "GET", "/subjects/d/versions/1", NULL, NULL), 40402);
    assert_int_equal(call(f, "GET", "/subjects/d/versions/1", "deleted=true", NULL, NULL), 200);
    assert_int_equal(call(f, "GET", "/subjects/d/versions", NULL, NULL, &o), 200);
    assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), "[2]");
    json_object_put(o);
    /* re-registering a soft-deleted schema makes a new version with the same id */
    assert_int_equal(reg(f, "d", REC_A), a);
    assert_int_equal(call(f, "GET", "/subjects/d/versions", NULL, NULL, &o), 200);
    assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), "[2,3]");
    json_object_put(o);
    /* ... and, as Confluent does, the soft-deleted version 1 with that id is gone for good */
    assert_int_equal(call(f, "GET", "/subjects/d/versions", "deleted=true", NULL, &o), 200);
    assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), "[2,3]");
    json_object_put(o);

    assert_int_equal(err_code(f, "DELETE", "/subjects/d", "permanent=true", NULL), 40405);
    assert_int_equal(call(f, "DELETE", "/subjects/d", NULL, NULL, &o), 200);
    assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), "[2,3]");
    json_object_put(o);
    assert_int_equal(err_code(f, "DELETE", "/subjects/d", NULL, NULL), 40404);
    assert_int_equal(err_code(f, "GET", "/subjects/d/versions", NULL, NULL), 40401);
    assert_int_equal(call(f, "GET", "/subjects", NULL, NULL, &o), 200);
    assert_null(strstr(json_object_to_json_string(o), "\"d\""));
    json_object_put(o);
    assert_int_equal(call(f, "GET", "/subjects", "deleted=true", NULL, &o), 200);
    assert_non_null(strstr(json_object_to_json_string(o), "\"d\""));
    json_object_put(o);
    assert_int_equal(call(f, "DELETE", "/subjects/d", "permanent=true", NULL, &o), 200);
    assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), "[2,3]");
    json_object_put(o);
    assert_int_equal(err_code(f, "DELETE", "/subjects/d", NULL, NULL), 40401);
    assert_int_equal(err_code(f, "GET", "/subjects/d/versions", "deleted=true", NULL), 40401);
    /* the schema itself stays known by id */
    char path[64];
    snprintf(path, sizeof path, "/schemas/ids/%lld", (long long)a);
    assert_int_equal(call(f, "GET", path, NULL, NULL, NULL), 200);
}

/* The level decides: BACKWARD (default), FORWARD, FULL, NONE, transitive variants; per subject
 * over global; defaultToGlobal; DELETE of the subject level. */
static void test_compatibility_levels(void **state)
{
    fixture *f = *state;
    assert_true(reg(f, "c", REC_A) > 0);
    assert_int_equal(reg(f, "c", REC_AC), -409); /* BACKWARD: new can't read old */
    assert_true(reg(f, "c", REC_EMPTY) > 0);     /* BACKWARD: a field dropped is fine */
    json_object *o = NULL;
    assert_int_equal(call(f, "GET", "/config", NULL, NULL, &o), 200);
    assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                        "{\"compatibilityLevel\":\"BACKWARD\"}");
    json_object_put(o);
    assert_int_equal(err_code(f, "GET", "/config/c", NULL, NULL), 40408);
    assert_int_equal(call(f, "GET", "/config/c", "defaultToGlobal=true", NULL, NULL), 200);
    assert_int_equal(err_code(f, "PUT", "/config/c", NULL, "{\"compatibility\":\"SIDEWAYS\"}"),
                     42203);
    assert_int_equal(err_code(f, "PUT", "/config", NULL, "{\"compatibility\":1}"), 42203);

    assert_int_equal(call(f, "PUT", "/config/f", NULL, "{\"compatibility\":\"forward\"}", &o), 200);
    assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                        "{\"compatibility\":\"FORWARD\"}");
    json_object_put(o);
    assert_true(reg(f, "f", REC_A) > 0);
    assert_int_equal(reg(f, "f", REC_EMPTY), -409); /* FORWARD: old can't read new */
    assert_true(reg(f, "f", REC_AC) > 0);

    assert_int_equal(call(f, "PUT", "/config/full", NULL, "{\"compatibility\":\"FULL\"}", NULL),
                     200);
    assert_true(reg(f, "full", REC_A) > 0);
    assert_int_equal(reg(f, "full", REC_AC), -409);
    assert_int_equal(reg(f, "full", REC_EMPTY), -409);
    assert_true(reg(f, "full", REC_AB_DEF) > 0);

    /* transitive: A, then {} (backward ok), then AC: ok against {} (latest), not against A */
    assert_int_equal(
        call(f, "PUT", "/config/t", NULL, "{\"compatibility\":\"BACKWARD_TRANSITIVE\"}", NULL),
        200);
    const char *rec_c = "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"c\","
                        "\"type\":\"long\",\"default\":0}]}";
    const char *rec_ac2 = "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"c\","
                          "\"type\":\"long\",\"default\":0},{\"name\":\"a\",\"type\":\"int\"}]}";
    assert_true(reg(f, "t", rec_c) > 0);
    assert_true(reg(f, "t", REC_EMPTY) > 0);
    assert_int_equal(reg(f, "t", rec_ac2), -409); /* a has no default: can't read {c} */
    assert_int_equal(call(f, "PUT", "/config/t", NULL, "{\"compatibility\":\"BACKWARD\"}", NULL),
                     200);
    /* plain BACKWARD only checks the latest ({}): a without default can't read it either */
    assert_int_equal(reg(f, "t", rec_ac2), -409);

    /* the compatibility endpoint */
    char *b = schema_body(REC_AC);
    assert_int_equal(
        call(f, "POST", "/compatibility/subjects/c/versions/latest", "verbose=true", b, &o), 200);
    json_object *v;
    assert_true(json_object_object_get_ex(o, "is_compatible", &v));
    assert_false(json_object_get_boolean(v));
    assert_true(json_object_object_get_ex(o, "messages", &v));
    assert_true(json_object_array_length(v) >= 1);
    json_object_put(o);
    assert_int_equal(call(f, "POST", "/compatibility/subjects/c/versions/1", NULL, b, &o), 200);
    assert_false(json_object_object_get_ex(o, "messages", &v));
    json_object_put(o);
    assert_int_equal(err_code(f, "POST", "/compatibility/subjects/c/versions/9", NULL, b), 40402);
    assert_int_equal(err_code(f, "POST", "/compatibility/subjects/zz/versions/1", NULL, b), 40401);
    assert_int_equal(err_code(f, "POST", "/compatibility/subjects/c/versions/x", NULL, b), 42202);
    /* NONE on the subject: anything goes */
    assert_int_equal(call(f, "PUT", "/config/c", NULL, "{\"compatibility\":\"NONE\"}", NULL), 200);
    assert_true(reg(f, "c", REC_AC) > 0);
    assert_int_equal(call(f, "DELETE", "/config/c", NULL, NULL, &o), 200);
    assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                        "{\"compatibilityLevel\":\"NONE\"}");
    json_object_put(o);
    assert_int_equal(err_code(f, "GET", "/config/c", NULL, NULL), 40408);
    free(b);
}

/* Bad requests: each gets its Confluent code. */
static void test_bad_requests(void **state)
{
    fixture *f = *state;
    assert_true(reg(f, "b", REC_A) > 0);
    assert_int_equal(err_code(f, "POST", "/subjects/b/versions", NULL, "{\"schema\":"), 400);
    assert_int_equal(err_code(f, "POST", "/subjects/b/versions", NULL, "[1]"), 400);
    assert_int_equal(err_code(f, "POST", "/subjects/b/versions", NULL, "{}"), 42201);
    assert_int_equal(reg(f, "b", "{\"type\":\"record\"}"), -42201);
    assert_int_equal(reg(f, "b", "not json"), -42201);
    assert_int_equal(err_code(f, "POST", "/subjects/b/versions", NULL,
                              "{\"schema\":\"\\\"int\\\"\",\"schemaType\":\"PROTOBUF\"}"),
                     42201);
    assert_int_equal(err_code(f, "POST", "/subjects/b/versions", NULL,
                              "{\"schema\":\"\\\"int\\\"\",\"references\":[{\"name\":\"x\"}]}"),
                     42201);
    assert_int_equal(call(f, "POST", "/subjects/b2/versions", NULL,
                          "{\"schema\":\"\\\"int\\\"\",\"schemaType\":\"AVRO\",\"references\":[]}",
                          NULL),
                     200);
    assert_int_equal(err_code(f, "GET", "/subjects/nope/versions", NULL, NULL), 40401);
    assert_int_equal(err_code(f, "GET", "/subjects/b/versions/7", NULL, NULL), 40402);
    assert_int_equal(err_code(f, "GET", "/subjects/b/versions/abc", NULL, NULL), 42202);
    assert_int_equal(err_code(f, "GET", "/subjects/b/versions/0", NULL, NULL), 42202);
    assert_int_equal(err_code(f, "GET", "/schemas/ids/999", NULL, NULL), 40403);
    assert_int_equal(err_code(f, "GET", "/schemas/ids/x", NULL, NULL), 40403);
    assert_int_equal(err_code(f, "GET", "/nope", NULL, NULL), 404);
    assert_int_equal(err_code(f, "PATCH", "/subjects", NULL, NULL), 405);

    ms_registry_request rq = {.tenant = "default",
                              .method = "POST",
                              .path = "/subjects/b/versions",
                              .body = "{}",
                              .body_len = 2,
                              .too_large = true};
    int status = 0;
    const char *ct;
    ms_buf out = MS_BUF_INIT;
    ms_registry_http(f->r, &rq, &status, &ct, &out);
    assert_int_equal(status, 413);
    ms_buf_reset(&out);
    rq.too_large = false;
    rq.content_type = "text/plain";
    ms_registry_http(f->r, &rq, &status, &ct, &out);
    assert_int_equal(status, 415);
    ms_buf_reset(&out);
    rq.content_type = "application/vnd.schemaregistry.v1+json; charset=utf-8";
    ms_registry_http(f->r, &rq, &status, &ct, &out);
    assert_int_equal(status, 422);
    ms_buf_reset(&out);
    ms_registry_http(NULL, &rq, &status, &ct, &out); /* disabled */
    assert_int_equal(status, 404);
    ms_buf_free(&out);

    /* percent-encoded subjects */
    assert_true(reg(f, "a%2Fb%20c", REC_A) > 0);
    json_object *o = NULL;
    assert_int_equal(call(f, "GET", "/subjects", NULL, NULL, &o), 200);
    assert_non_null(
        strstr(json_object_to_json_string_ext(o, JSON_C_TO_STRING_NOSLASHESCAPE), "\"a/b c\""));
    json_object_put(o);
}

/* Everything survives a reopen: ids, versions, soft deletes, levels, the next id. */
static void test_persistence(void **state)
{
    fixture *f = *state;
    int64_t a = reg(f, "p", REC_A);
    int64_t ab = reg(f, "p", REC_AB_DEF);
    assert_int_equal(call(f, "DELETE", "/subjects/p/versions/1", NULL, NULL, NULL), 200);
    assert_int_equal(call(f, "PUT", "/config/p", NULL, "{\"compatibility\":\"FULL\"}", NULL), 200);
    assert_int_equal(call(f, "PUT", "/config", NULL, "{\"compatibility\":\"NONE\"}", NULL), 200);
    uint32_t builtin = ms_registry_builtin_id(f->r, "metasync.changes-value");
    assert_true(builtin > 0);

    all_close(f);
    all_open(f);

    assert_int_equal(ms_registry_builtin_id(f->r, "metasync.changes-value"), builtin);
    json_object *o = NULL;
    assert_int_equal(call(f, "GET", "/subjects/p/versions", NULL, NULL, &o), 200);
    assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), "[2]");
    json_object_put(o);
    assert_int_equal(call(f, "GET", "/subjects/p/versions/2", NULL, NULL, &o), 200);
    assert_int_equal(int_field(o, "id"), ab);
    json_object_put(o);
    assert_int_equal(call(f, "GET", "/config/p", NULL, NULL, &o), 200);
    assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                        "{\"compatibilityLevel\":\"FULL\"}");
    json_object_put(o);
    assert_int_equal(call(f, "GET", "/config", NULL, NULL, &o), 200);
    assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                        "{\"compatibilityLevel\":\"NONE\"}");
    json_object_put(o);
    assert_int_equal(reg(f, "p", REC_A), a); /* soft-deleted: a new version, same id */
    int64_t e = reg(f, "q", REC_EMPTY);
    assert_true(e > ab); /* ids continue */
    assert_int_equal(call(f, "GET", "/subjects/p/versions/latest", NULL, NULL, &o), 200);
    assert_int_equal(int_field(o, "version"), 3); /* numbers are never reused */
    json_object_put(o);
}

/* Two workers' registries on one store (both opened before either registers): an id registered
 * through one is found by the other, the same text gets the same id, and a new schema on the
 * other gets an id above the first's. */
static void test_two_workers(void **state)
{
    fixture *f = *state;
    ms_registry *r2 = NULL;
    ms_registry_args a = {&f->cfg, &f->log, &ms_store_sqlite, f->store, f->engine};
    ms_error err;
    ms_error_clear(&err);
    assert_int_equal(ms_registry_open(&a, &r2, &err), MS_OK);
    int64_t id_a = reg(f, "w", REC_A);
    assert_true(id_a > 0);
    const ms_avro_schema *s = NULL;
    assert_int_equal(ms_registry_schema_by_id(r2, (uint32_t)id_a, &s, &err), MS_OK);
    assert_non_null(s);
    uint32_t same = 0, other = 0;
    assert_int_equal(ms_registry_register(r2, "default", "w2", REC_A, strlen(REC_A), &same, &err),
                     MS_OK);
    assert_int_equal(same, id_a);
    assert_int_equal(
        ms_registry_register(r2, "default", "w3", REC_EMPTY, strlen(REC_EMPTY), &other, &err),
        MS_OK);
    assert_true(other > id_a);
    assert_int_equal(ms_registry_schema_by_id(r2, 9999, &s, &err), MS_ERR_UNKNOWN_SCHEMA);
    ms_registry_free(r2);
}

/* A store that looks shared (it has watch) and counts the reloads of the registry's versions. */
typedef struct shared_spy {
    void *inner;
    int version_lists; /* ctl_list calls of kind registry.version */
    ms_store_ops ops;
} shared_spy;

static ms_err spy_ctl_put(void *ctx, const char *tenant, const char *kind, const char *key,
                          const char *json, ms_error *err)
{
    return ms_store_sqlite.ctl_put(((shared_spy *)ctx)->inner, tenant, kind, key, json, err);
}

static ms_err spy_ctl_add(void *ctx, const char *tenant, const char *kind, const char *key,
                          const char *json, bool *added, ms_error *err)
{
    return ms_store_sqlite.ctl_add(((shared_spy *)ctx)->inner, tenant, kind, key, json, added, err);
}

static ms_err spy_ctl_list(void *ctx, const char *tenant, const char *kind,
                           int (*cb)(void *, const char *, const char *, const char *), void *ud,
                           ms_error *err)
{
    shared_spy *s = ctx;
    if (strcmp(kind, "registry.version") == 0) s->version_lists++;
    return ms_store_sqlite.ctl_list(s->inner, tenant, kind, cb, ud, err);
}

static ms_err spy_watch(void *ctx, void (*cb)(void *, const char *, uint64_t), void *ud,
                        ms_error *err)
{
    (void)ctx;
    (void)cb;
    (void)ud;
    (void)err;
    return MS_OK;
}

/* Two workers on a shared store: a /registry request reloads the records only when a registry
 * write happened since (the generation token) — not on every request — and a registration
 * through one worker is still seen at once by the other. */
static void test_refresh_only_on_change(void **state)
{
    fixture *f = *state;
    shared_spy spy = {.inner = f->store, .ops = ms_store_sqlite};
    spy.ops.ctl_put = spy_ctl_put;
    spy.ops.ctl_add = spy_ctl_add;
    spy.ops.ctl_list = spy_ctl_list;
    spy.ops.watch = spy_watch;
    ms_registry_args a = {&f->cfg, &f->log, &spy.ops, &spy, NULL};
    ms_error err;
    ms_error_clear(&err);
    ms_registry *r1 = NULL, *r2 = NULL, *mine = f->r;
    assert_int_equal(ms_registry_open(&a, &r1, &err), MS_OK);
    assert_int_equal(ms_registry_open(&a, &r2, &err), MS_OK);
    f->r = r2;
    assert_int_equal(call(f, "GET", "/subjects", NULL, NULL, NULL), 200); /* first: reloads */
    spy.version_lists = 0;
    for (int i = 0; i < 5; i++)
        assert_int_equal(call(f, "GET", "/subjects", NULL, NULL, NULL), 200);
    assert_int_equal(spy.version_lists, 0);
    uint32_t id = 0;
    assert_int_equal(ms_registry_register(r1, "default", "g", REC_A, strlen(REC_A), &id, &err),
                     MS_OK);
    json_object *o = NULL;
    assert_int_equal(call(f, "GET", "/subjects/g/versions", NULL, NULL, &o), 200);
    assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), "[1]");
    json_object_put(o);
    assert_true(spy.version_lists > 0);
    f->r = mine;
    ms_registry_free(r1);
    ms_registry_free(r2);
}

/* The built-in schemas are registered under their subjects, once. */
static void test_builtins(void **state)
{
    fixture *f = *state;
    uint32_t ev = ms_registry_builtin_id(f->r, "metasync.events-value");
    uint32_t ch = ms_registry_builtin_id(f->r, "metasync.changes-value");
    assert_true(ev > 0 && ch > 0 && ev != ch);
    assert_int_equal(ms_registry_builtin_id(f->r, "other"), 0);
    assert_non_null(strstr(ms_registry_builtin_text("metasync.changes-value"), "\"record\""));
    ms_registry *first = f->r;
    reg_open(f); /* a second registry on the same store: no new versions */
    ms_registry *second = f->r;
    json_object *o = NULL;
    assert_int_equal(call(f, "GET", "/subjects/metasync.changes-value/versions", NULL, NULL, &o),
                     200);
    assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), "[1]");
    json_object_put(o);
    assert_int_equal(ms_registry_builtin_id(second, "metasync.changes-value"), ch);
    ms_registry_free(second);
    f->r = first;
}

/* Registered versions are kafka_schema assets; deletes delete them. */
static void test_assets(void **state)
{
    fixture *f = *state;
    int64_t a = reg(f, "x", REC_A);
    ms_buf b = MS_BUF_INIT;
    ms_error err;
    assert_int_equal(
        ms_store_sqlite.asset_get(f->store, "default", "registry/x/1", false, &b, &err), MS_OK);
    json_object *o = json_tokener_parse(b.data), *attrs, *v;
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "type", &v));
    assert_string_equal(json_object_get_string(v), "kafka_schema");
    assert_true(json_object_object_get_ex(o, "parent", &v));
    assert_string_equal(json_object_get_string(v), "registry/x");
    assert_true(json_object_object_get_ex(o, "attributes", &attrs));
    assert_int_equal(int_field(attrs, "id"), a);
    assert_int_equal(int_field(attrs, "version"), 1);
    assert_true(json_object_object_get_ex(attrs, "fingerprint", &v));
    assert_int_equal(strlen(json_object_get_string(v)), 16);
    json_object_put(o);
    ms_buf_reset(&b);
    assert_int_equal(ms_store_sqlite.asset_get(f->store, "default", "registry/x", false, &b, &err),
                     MS_OK);
    assert_int_equal(call(f, "DELETE", "/subjects/x", NULL, NULL, NULL), 200);
    ms_buf_reset(&b);
    assert_int_equal(
        ms_store_sqlite.asset_get(f->store, "default", "registry/x/1", false, &b, &err),
        MS_ERR_NOT_FOUND);
    assert_int_equal(ms_store_sqlite.asset_get(f->store, "default", "registry/x", false, &b, &err),
                     MS_ERR_NOT_FOUND);
    ms_buf_free(&b);
}

/* An external registry (registry.url) answered by an embedded one served over HTTP by a whole
 * runtime in this process: register, resolve ids (then cached), built-in ids, errors. */
static void test_external_client(void **state)
{
    fixture *f = *state;
    ms_config scfg;
    ms_config_defaults(&scfg);
    ms_error err;
    char d[600];
    snprintf(d, sizeof d, "%s/server", f->dir);
    assert_int_equal(ms_config_set(&scfg, "data_dir", d, "test", &err), MS_OK);
    assert_int_equal(ms_config_set(&scfg, "listen", "127.0.0.1:0", "test", &err), MS_OK);
    assert_int_equal(ms_config_set(&scfg, "log.level", "error", "test", &err), MS_OK);
    ms_runtime rt;
    assert_int_equal(ms_runtime_open(&rt, &scfg, &err), MS_OK);
    assert_int_equal(ms_runtime_start_sources(&rt, &err), MS_OK);
    assert_non_null(rt.registry);

    ms_config ccfg;
    ms_config_defaults(&ccfg);
    char url[400];
    snprintf(url, sizeof url, "http://%s/registry/", rt.listen_addr);
    assert_int_equal(ms_config_set(&ccfg, "registry.url", url, "test", &err), MS_OK);
    ms_registry_args a = {&ccfg, &f->log, NULL, NULL, NULL};
    ms_registry *ext = NULL;
    assert_int_equal(ms_registry_open(&a, &ext, &err), MS_OK);

    uint32_t id = 0, id2 = 0;
    assert_int_equal(
        ms_registry_register(ext, "default", "ext/value", REC_A, strlen(REC_A), &id, &err), MS_OK);
    assert_int_equal(
        ms_registry_register(rt.registry, "default", "ext/value", REC_A, strlen(REC_A), &id2, &err),
        MS_OK);
    assert_int_equal(id, id2); /* it landed in the served registry, slash in the name and all */
    assert_int_equal(
        ms_registry_register(ext, "default", "ext/value", REC_AC, strlen(REC_AC), &id2, &err),
        MS_ERR_INCOMPATIBLE_SCHEMA);
    assert_int_equal(
        ms_registry_register(ext, "default", "ext/value", "{\"type\":1}", 10, &id2, &err),
        MS_ERR_INVALID_SCHEMA);
    const ms_avro_schema *s1 = NULL, *s2 = NULL;
    assert_int_equal(ms_registry_schema_by_id(ext, id, &s1, &err), MS_OK);
    assert_int_equal(ms_registry_schema_by_id(ext, id, &s2, &err), MS_OK);
    assert_ptr_equal(s1, s2); /* cached */
    assert_int_equal(ms_registry_schema_by_id(ext, 987654, &s1, &err), MS_ERR_UNKNOWN_SCHEMA);
    assert_int_equal(ms_registry_builtin_id(ext, "metasync.changes-value"),
                     ms_registry_builtin_id(rt.registry, "metasync.changes-value"));
    assert_int_equal(err_code_of(ext, "/subjects"), 404); /* its own /registry is off */
    ms_registry_free(ext);
    ms_config_free(&ccfg);

    /* an unreachable external registry is an error, not a crash */
    ms_runtime_close(&rt);
    assert_int_equal(ms_config_set(&ccfg, "registry.url", url, "test", &err), MS_OK);
    assert_int_equal(ms_registry_open(&a, &ext, &err), MS_OK);
    assert_int_equal(ms_registry_schema_by_id(ext, 1, &s1, &err), MS_ERR_CONNECT);
    assert_int_equal(ms_registry_builtin_id(ext, "metasync.changes-value"), 0);
    ms_registry_free(ext);
    ms_config_free(&ccfg);
    ms_config_free(&scfg);
}

/* Thread body of test_concurrent: registers 3 schemas under its own subject and under a shared
 * one, through the C API. */
typedef struct reg_job {
    fixture *f;
    int n;
    uint32_t ids[3];
    ms_err rc;
} reg_job;

static void *register_job(void *arg)
{
    reg_job *j = arg;
    char subject[32];
    snprintf(subject, sizeof subject, "own-%d", j->n);
    const char *texts[3] = {REC_A, REC_EMPTY, REC_B_ANY};
    ms_error err;
    for (int i = 0; i < 3 && j->rc == MS_OK; i++) {
        uint32_t shared = 0;
        j->rc = ms_registry_register(j->f->r, "default", subject, texts[i], strlen(texts[i]),
                                     &j->ids[i], &err);
        if (j->rc == MS_OK)
            j->rc = ms_registry_register(j->f->r, "default", "shared", texts[i], strlen(texts[i]),
                                         &shared, &err);
        if (j->rc == MS_OK && shared != j->ids[i]) j->rc = MS_ERR_INTERNAL;
    }
    return NULL;
}

/* Registrations from several threads at once: one id per distinct schema, each subject gets its
 * versions, the shared subject gets each schema once. */
static void test_concurrent(void **state)
{
    fixture *f = *state;
    enum { N = 6 };
    pthread_t th[N];
    reg_job jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (reg_job){.f = f, .n = i, .rc = MS_OK};
        assert_int_equal(pthread_create(&th[i], NULL, register_job, &jobs[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i].rc, MS_OK);
        for (int k = 0; k < 3; k++)
            assert_int_equal(jobs[i].ids[k], jobs[0].ids[k]);
        char path[64];
        snprintf(path, sizeof path, "/subjects/own-%d/versions", i);
        json_object *o = NULL;
        assert_int_equal(call(f, "GET", path, NULL, NULL, &o), 200);
        assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), "[1,2,3]");
        json_object_put(o);
    }
    json_object *o = NULL;
    assert_int_equal(call(f, "GET", "/subjects/shared/versions", NULL, NULL, &o), 200);
    assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), "[1,2,3]");
    json_object_put(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ids_and_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compatibility_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_builtins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_external_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_only_on_change, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
