/*
 * test_control.c — unit tests of the control plane (src/control) over the SQLite store: the
 * salted hash and constant-time comparison of API-key secrets, the AES-256-GCM round trip (and
 * that a wrong key or a changed byte fails), API-key verification end to end (valid, wrong
 * secret, malformed, revoked, disabled tenant), and that sealed credentials never reach the store
 * in plain text and come back with ms_control_connection_credentials. Over a spying store
 * (spy_*): verification never rewrites the key record (a revoke made meanwhile stays), a store
 * failure on the tenant lookup refuses the key, and a create that another worker made first
 * between the check and the write answers 409 instead of replacing it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ms_control.h"
#include "ms_test_dir.h"
#include "ms_types.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const ms_store_ops ms_store_sqlite;

static const char key_hex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

typedef struct fixture {
    char dir[512];
    char keyfile[600];
    ms_config cfg;
    ms_log log;
    ms_types *types;
    void *store;
    ms_control *c;
    struct spy *spy; /* the spying store's context (spy_setup), else NULL */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || ms_test_mkdtemp(f->dir, sizeof f->dir, "control") != 0) return -1;
    ms_config_defaults(&f->cfg);
    ms_error err;
    char data[600];
    snprintf(data, sizeof data, "%s/data", f->dir);
    snprintf(f->keyfile, sizeof f->keyfile, "%s/key", f->dir);
    FILE *k = fopen(f->keyfile, "w");
    if (!k) return -1;
    fprintf(k, "%s\n", key_hex);
    fclose(k);
    if (ms_config_set(&f->cfg, "data_dir", data, "test", &err) != MS_OK) return -1;
    if (ms_config_set(&f->cfg, "store.synchronous", "normal", "test", &err) != MS_OK) return -1;
    if (ms_config_set(&f->cfg, "secrets.key_file", f->keyfile, "test", &err) != MS_OK) return -1;
    f->log.level = MS_LOG_ERROR;
    f->log.out = stderr;
    f->types = ms_types_new();
    ms_store_open_args oa = {&f->cfg, &f->log, f->cfg.store_url, f->types};
    if (ms_store_sqlite.open(&oa, &f->store, &err) != MS_OK) return -1;
    ms_control_args ca = {&f->cfg, &f->log, &ms_store_sqlite, f->store};
    if (ms_control_open(&ca, &f->c, &err) != MS_OK) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ms_control_free(f->c);
    ms_store_sqlite.close(f->store);
    ms_types_free(f->types);
    ms_config_free(&f->cfg);
    ms_test_rmtree(f->dir);
    free(f);
    return 0;
}

/* One control request; returns the status (or the error's HTTP status) and the body in out. */
static int call(fixture *f, const char *method, const char *path, const char *tenant,
                const char *body, ms_buf *out)
{
    ms_control_request rq = {method, path, tenant, body ? body : "", body ? strlen(body) : 0};
    unsigned status;
    const char *allow;
    ms_error err;
    ms_error_clear(&err);
    ms_buf_reset(out);
    if (ms_control_handle(f->c, &rq, &status, out, &allow, &err) != MS_OK) {
        ms_buf_puts(out, err.detail);
        return ms_err_http_status(err.code);
    }
    return (int)status;
}

static void test_hash_and_compare(void **state)
{
    (void)state;
    char h1[65], h2[65], h3[65];
    ms_control_hash_secret("00ff", "secret", h1);
    ms_control_hash_secret("00ff", "secret", h2);
    ms_control_hash_secret("00fe", "secret", h3);
    assert_int_equal(strlen(h1), 64);
    assert_string_equal(h1, h2);
    assert_true(ms_control_equal_ct(h1, h2));
    assert_false(ms_control_equal_ct(h1, h3)); /* the salt matters */
    assert_false(ms_control_equal_ct(h1, "abc"));
    /* SHA-256("abc") with an empty salt: the FIPS 180-2 test vector */
    ms_control_hash_secret("", "abc", h1);
    assert_string_equal(h1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_seal_round_trip(void **state)
{
    (void)state;
    unsigned char key[MS_CONTROL_KEY_BYTES], other[MS_CONTROL_KEY_BYTES];
    assert_true(ms_control_parse_key(key_hex, key));
    assert_true(
        ms_control_parse_key("  "
                             "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n",
                             other));
    assert_false(ms_control_parse_key("abc", other));
    assert_false(ms_control_parse_key(
        "zz02030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", other));
    const char *plain = "{\"password\":\"hunter2\",\"username\":\"u\"}";
    ms_buf s1 = MS_BUF_INIT, s2 = MS_BUF_INIT, p = MS_BUF_INIT;
    ms_error err;
    assert_int_equal(ms_control_seal(key, plain, strlen(plain), &s1, &err), MS_OK);
    assert_int_equal(ms_control_seal(key, plain, strlen(plain), &s2, &err), MS_OK);
    assert_null(strstr(s1.data, "hunter2"));
    assert_string_not_equal(s1.data, s2.data); /* a fresh IV each time */
    assert_int_equal(ms_control_unseal(key, s1.data, &p, &err), MS_OK);
    assert_string_equal(ms_buf_cstr(&p), plain);
    ms_buf_reset(&p);
    assert_int_equal(ms_control_unseal(other, s1.data, &p, &err), MS_ERR_CONFIG);
    /* flip one hex digit of the ciphertext: the tag no longer matches */
    char *ct = strstr(s1.data, "\"ct\":\"") + 6;
    *ct = *ct == '0' ? '1' : '0';
    assert_int_equal(ms_control_unseal(key, s1.data, &p, &err), MS_ERR_CONFIG);
    assert_int_equal(ms_control_unseal(key, "not json", &p, &err), MS_ERR_CONFIG);
    ms_buf_free(&s1);
    ms_buf_free(&s2);
    ms_buf_free(&p);
}

static char *member(const char *json, const char *k)
{
    json_object *o = json_tokener_parse(json), *v;
    char *s = o && json_object_object_get_ex(o, k, &v) ? strdup(json_object_get_string(v)) : NULL;
    json_object_put(o);
    return s;
}

static void test_apikey_verify(void **state)
{
    fixture *f = *state;
    ms_buf out = MS_BUF_INIT;
    assert_int_equal(
        call(f, "POST", "/apikeys", "acme", "{\"name\":\"ci\",\"scopes\":[\"write\"]}", &out), 201);
    char *key = member(out.data, "key"), *id = member(out.data, "id");
    assert_non_null(key);
    assert_int_equal(strncmp(key, "msk_", 4), 0);
    /* listing never shows the key, its hash or salt */
    assert_int_equal(call(f, "GET", "/apikeys", "acme", NULL, &out), 200);
    assert_null(strstr(out.data, key + 21));
    assert_null(strstr(out.data, "hash"));
    assert_null(strstr(out.data, "salt"));

    char tenant[64];
    unsigned scopes = 0;
    ms_error err;
    assert_int_equal(ms_control_apikey_verify(f->c, key, tenant, sizeof tenant, &scopes, &err),
                     MS_OK);
    assert_string_equal(tenant, "acme");
    assert_int_equal(scopes, MS_CONTROL_SCOPE_WRITE);
    assert_int_equal(call(f, "GET", "/apikeys", "acme", NULL, &out), 200);
    assert_null(strstr(out.data, "\"last_used_at\":null")); /* recorded */

    char bad[128];
    snprintf(bad, sizeof bad, "%s", key);
    bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == '0' ? '1' : '0';
    assert_int_equal(ms_control_apikey_verify(f->c, bad, tenant, sizeof tenant, &scopes, &err),
                     MS_ERR_UNAUTHORIZED);
    assert_int_equal(ms_control_apikey_verify(f->c, "msk_x", tenant, sizeof tenant, &scopes, &err),
                     MS_ERR_UNAUTHORIZED);
    assert_int_equal(ms_control_apikey_verify(f->c, NULL, tenant, sizeof tenant, &scopes, &err),
                     MS_ERR_UNAUTHORIZED);

    /* a disabled tenant's keys stop working; enabled again, they work */
    assert_int_equal(call(f, "DELETE", "/tenants/acme", "default", NULL, &out), 200);
    assert_int_equal(ms_control_apikey_verify(f->c, key, tenant, sizeof tenant, &scopes, &err),
                     MS_ERR_UNAUTHORIZED);
    assert_int_equal(call(f, "PUT", "/tenants/acme", "default", "{\"disabled\":false}", &out), 200);
    assert_int_equal(ms_control_apikey_verify(f->c, key, tenant, sizeof tenant, &scopes, &err),
                     MS_OK);

    /* revoked: refused, and another tenant cannot revoke it */
    char path[64];
    snprintf(path, sizeof path, "/apikeys/%s", id);
    assert_int_equal(call(f, "DELETE", path, "other", NULL, &out), 404);
    assert_int_equal(call(f, "DELETE", path, "acme", NULL, &out), 200);
    assert_int_equal(ms_control_apikey_verify(f->c, key, tenant, sizeof tenant, &scopes, &err),
                     MS_ERR_UNAUTHORIZED);
    free(key);
    free(id);
    ms_buf_free(&out);
}

static int find_secret(void *ud, const char *tenant, const char *key, const char *json)
{
    (void)tenant;
    (void)key;
    if (strstr(json, "hunter2")) *(int *)ud = 1;
    return 0;
}

static int find_other(void *ud, const char *tenant, const char *key, const char *json)
{
    (void)tenant;
    (void)key;
    if (strstr(json, "\"by\":\"other\"")) *(int *)ud = 1;
    return 0;
}

static void test_connection_credentials_sealed(void **state)
{
    fixture *f = *state;
    ms_buf out = MS_BUF_INIT;
    assert_int_equal(call(f, "POST", "/connections", "default",
                          "{\"name\":\"pg\",\"adapter\":\"postgres\",\"host\":\"db\",\"port\":5432,"
                          "\"credentials\":{\"username\":\"u\",\"password\":\"hunter2\"}}",
                          &out),
                     201);
    assert_null(strstr(out.data, "hunter2"));
    assert_non_null(strstr(out.data, "\"credentials\":\"set\""));
    assert_non_null(strstr(out.data, "\"credentials_encrypted\":true"));
    int seen = 0;
    ms_error err;
    assert_int_equal(
        ms_store_sqlite.ctl_list(f->store, NULL, "connection", find_secret, &seen, &err), MS_OK);
    assert_int_equal(seen, 0);
    ms_buf cred = MS_BUF_INIT;
    assert_int_equal(ms_control_connection_credentials(f->c, "default", "pg", &cred, &err), MS_OK);
    assert_string_equal(ms_buf_cstr(&cred), "{\"password\":\"hunter2\",\"username\":\"u\"}");
    /* a bad value never appears in the error */
    assert_int_equal(
        call(f, "PUT", "/connections/pg", "default", "{\"credentials\":\"hunter2\"}", &out), 400);
    assert_null(strstr(out.data, "hunter2"));
    assert_int_equal(call(f, "POST", "/connections", "default",
                          "{\"name\":\"x\",\"credentials\":{\"p\":\"hunter2\"", &out),
                     400);
    assert_null(strstr(out.data, "hunter2"));
    ms_buf_free(&cred);
    ms_buf_free(&out);
}

/* ---- a store that spies on, and interferes with, the control plane's record calls ---------- */

typedef struct spy {
    void *inner;      /* the SQLite store */
    int apikey_puts;  /* ctl_put calls on kind "apikey" */
    bool fail_tenant; /* ctl_list of kind "tenant" fails */
    bool sneak;       /* ctl_add: another worker stores the same key just before */
    ms_store_ops ops; /* ms_store_sqlite with the spy_* callbacks */
} spy;

static ms_err spy_ctl_put(void *ctx, const char *tenant, const char *kind, const char *key,
                          const char *json, ms_error *err)
{
    spy *s = ctx;
    if (strcmp(kind, "apikey") == 0) s->apikey_puts++;
    return ms_store_sqlite.ctl_put(s->inner, tenant, kind, key, json, err);
}

static ms_err spy_ctl_list(void *ctx, const char *tenant, const char *kind,
                           int (*cb)(void *, const char *, const char *, const char *), void *ud,
                           ms_error *err)
{
    spy *s = ctx;
    if (s->fail_tenant && strcmp(kind, "tenant") == 0)
        return ms_error_set(err, MS_ERR_STORE, "spy: the store is down");
    return ms_store_sqlite.ctl_list(s->inner, tenant, kind, cb, ud, err);
}

static ms_err spy_ctl_add(void *ctx, const char *tenant, const char *kind, const char *key,
                          const char *json, bool *added, ms_error *err)
{
    spy *s = ctx;
    if (s->sneak && strcmp(kind, "tenant") != 0 &&
        ms_store_sqlite.ctl_put(s->inner, tenant, kind, key, "{\"by\":\"other\"}", err) != MS_OK)
        return MS_ERR_STORE;
    return ms_store_sqlite.ctl_add(s->inner, tenant, kind, key, json, added, err);
}

static int spy_setup(void **state)
{
    if (setup(state) != 0) return -1;
    fixture *f = *state;
    spy *s = calloc(1, sizeof *s);
    s->inner = f->store;
    s->ops = ms_store_sqlite;
    s->ops.ctl_put = spy_ctl_put;
    s->ops.ctl_list = spy_ctl_list;
    s->ops.ctl_add = spy_ctl_add;
    ms_control_free(f->c);
    ms_control_args ca = {&f->cfg, &f->log, &s->ops, s};
    ms_error err;
    if (ms_control_open(&ca, &f->c, &err) != MS_OK) return -1;
    f->spy = s;
    return 0;
}

static int spy_teardown(void **state)
{
    fixture *f = *state;
    spy *s = f->spy;
    int rc = teardown(state);
    free(s);
    return rc;
}

/* Verification never rewrites the key record (last_used_at is a record of its own), so a
 * revoke made between its read and a write cannot be undone; last_used_at still shows. */
static void test_verify_keeps_revoke(void **state)
{
    fixture *f = *state;
    ms_buf out = MS_BUF_INIT;
    assert_int_equal(call(f, "POST", "/apikeys", "acme", "{\"name\":\"ci\"}", &out), 201);
    char *key = member(out.data, "key"), *id = member(out.data, "id");
    f->spy->apikey_puts = 0;
    char tenant[64], path[64];
    unsigned scopes = 0;
    ms_error err;
    assert_int_equal(ms_control_apikey_verify(f->c, key, tenant, sizeof tenant, &scopes, &err),
                     MS_OK);
    assert_int_equal(f->spy->apikey_puts, 0);
    snprintf(path, sizeof path, "/apikeys/%s", id);
    assert_int_equal(call(f, "GET", path, "acme", NULL, &out), 200);
    assert_null(strstr(out.data, "\"last_used_at\":null"));
    assert_int_equal(call(f, "GET", "/apikeys", "acme", NULL, &out), 200);
    assert_null(strstr(out.data, "\"last_used_at\":null"));
    assert_int_equal(call(f, "DELETE", path, "acme", NULL, &out), 200);
    assert_non_null(strstr(out.data, "\"revoked\":true"));
    assert_int_equal(ms_control_apikey_verify(f->c, key, tenant, sizeof tenant, &scopes, &err),
                     MS_ERR_UNAUTHORIZED);
    free(key);
    free(id);
    ms_buf_free(&out);
}

/* A store failure while looking up the key's tenant (it may be disabled) refuses the key. */
static void test_verify_refuses_on_store_error(void **state)
{
    fixture *f = *state;
    ms_buf out = MS_BUF_INIT;
    assert_int_equal(call(f, "POST", "/apikeys", "acme", "{\"name\":\"ci\"}", &out), 201);
    char *key = member(out.data, "key");
    char tenant[64];
    unsigned scopes = 0;
    ms_error err;
    f->spy->fail_tenant = true;
    assert_int_equal(ms_control_apikey_verify(f->c, key, tenant, sizeof tenant, &scopes, &err),
                     MS_ERR_STORE);
    f->spy->fail_tenant = false;
    assert_int_equal(ms_control_apikey_verify(f->c, key, tenant, sizeof tenant, &scopes, &err),
                     MS_OK);
    free(key);
    ms_buf_free(&out);
}

/* Another worker creates the same connection / user between this one's check and its write:
 * 409, and the other's record stays. The default tenant cannot be disabled by PUT either. */
static void test_create_race_and_default_tenant(void **state)
{
    fixture *f = *state;
    ms_buf out = MS_BUF_INIT;
    ms_error err;
    f->spy->sneak = true;
    assert_int_equal(
        call(f, "POST", "/connections", "acme", "{\"name\":\"pg\",\"adapter\":\"postgres\"}", &out),
        409);
    assert_non_null(strstr(out.data, "connection pg exists"));
    assert_int_equal(call(f, "POST", "/users", "acme", "{\"email\":\"a@example.com\"}", &out), 409);
    assert_int_equal(call(f, "POST", "/tenants", "default", "{\"name\":\"globex\"}", &out), 201);
    f->spy->sneak = false;
    int other = 0;
    assert_int_equal(
        ms_store_sqlite.ctl_list(f->spy->inner, "acme", "connection", find_other, &other, &err),
        MS_OK);
    assert_int_equal(other, 1);
    assert_int_equal(call(f, "POST", "/tenants", "default", "{\"name\":\"globex\"}", &out), 409);
    assert_int_equal(call(f, "PUT", "/tenants/default", "default", "{\"disabled\":true}", &out),
                     400);
    assert_int_equal(call(f, "PUT", "/tenants/default", "default", "{\"disabled\":false}", &out),
                     200);
    ms_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_and_compare),
        cmocka_unit_test(test_seal_round_trip),
        cmocka_unit_test_setup_teardown(test_apikey_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_credentials_sealed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_keeps_revoke, spy_setup, spy_teardown),
        cmocka_unit_test_setup_teardown(test_verify_refuses_on_store_error, spy_setup,
                                        spy_teardown),
        cmocka_unit_test_setup_teardown(test_create_race_and_default_tenant, spy_setup,
                                        spy_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
