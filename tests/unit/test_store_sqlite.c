/*
 * test_store_sqlite.c — unit tests of the embedded SQLite store (ms_store_sqlite) through its
 * ms_store_ops table only: opening a fresh data_dir, apply() of every op (upsert, patch, delete
 * with children, tag, untag, link, unlink) and its outcomes (APPLIED, UNCHANGED, DUPLICATE,
 * REJECTED with version_conflict, not_found, type_conflict, invalid_parent, missing_attribute),
 * gap-free per-tenant seqs, the change records (before/after/changed) read through changes() and
 * history(), asset_get JSON, asset_list filters and paging, lineage over a cycle, orphans counted
 * by stats() and adopted when the parent arrives, sink cursors, custom type persistence,
 * persistence across reopen, and tenant isolation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ms_config.h"
#include "ms_event.h"
#include "ms_json.h"
#include "ms_store.h"
#include "ms_types.h"

#include <sqlite3.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "ms_test_dir.h"
#include "ms_test_offsets.h"
#include <sqlite3.h>
#include "ms_test_poll.h"

extern const ms_store_ops ms_store_sqlite;

#define NOW1 "2026-11-23T19:00:00.000Z"
#define NOW2 "2026-11-23T19:05:00.000Z"

/* ---- fixture ----------------------------------------------------------------------------------
 */

typedef struct fixture {
    char dir[512];
    ms_config cfg;
    ms_types *types;
    void *ctx;
} fixture;

/* Makes a fresh directory under $MS_TEST_TMP (or /tmp) into out. */
static void make_tmpdir(char *out, size_t n, const char *tag)
{
    assert_int_equal(ms_test_mkdtemp(out, n, tag), 0);
}

static void store_open(fixture *f)
{
    ms_store_open_args a = {
        .cfg = &f->cfg, .log = NULL, .url = f->cfg.store_url, .types = f->types};
    ms_error err;
    ms_error_clear(&err);
    ms_err rc = ms_store_sqlite.open(&a, &f->ctx, &err);
    if (rc != MS_OK) print_error("open failed: %s %s\n", ms_err_code(rc), err.detail);
    assert_int_equal(rc, MS_OK);
    assert_non_null(f->ctx);
}

static void store_close(fixture *f)
{
    if (f->ctx) ms_store_sqlite.close(f->ctx);
    f->ctx = NULL;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    make_tmpdir(f->dir, sizeof f->dir, "store");
    ms_config_defaults(&f->cfg);
    ms_error err;
    char data[600];
    snprintf(data, sizeof data, "%s/data", f->dir);
    if (ms_config_set(&f->cfg, "data_dir", data, "test", &err) != MS_OK) return -1;
    if (ms_config_set(&f->cfg, "store.synchronous", "normal", "test", &err) != MS_OK) return -1;
    f->types = ms_types_new();
    store_open(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_close(f);
    ms_types_free(f->types);
    ms_config_free(&f->cfg);
    ms_test_rmtree(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ----------------------------------------------------------------------------------
 */

static ms_event *decode(fixture *f, const char *tenant, const char *json)
{
    ms_decode_opts o = {.tenant = tenant, .types = f->types};
    ms_event *ev = NULL;
    ms_error err;
    ms_error_clear(&err);
    ms_err rc = ms_event_decode(json, strlen(json), &o, &ev, &err);
    if (rc != MS_OK) print_error("decode of %s failed: %s %s\n", json, ms_err_code(rc), err.detail);
    assert_int_equal(rc, MS_OK);
    return ev;
}

/* Applies n events (tenants[i] or "default" when tenants is NULL) in one transaction. */
static ms_err apply_n(fixture *f, const char *const *tenants, const char *const *jsons, size_t n,
                      const char *now, ms_apply_result *res)
{
    ms_event **evs = calloc(n, sizeof *evs);
    assert_non_null(evs);
    for (size_t i = 0; i < n; i++)
        evs[i] = decode(f, tenants ? tenants[i] : "default", jsons[i]);
    ms_error err;
    ms_error_clear(&err);
    ms_err rc = ms_store_sqlite.apply(f->ctx, evs, n, now, res, &err);
    if (rc != MS_OK) print_message("apply: %s %s\n", ms_err_code(rc), err.detail);
    for (size_t i = 0; i < n; i++)
        ms_event_free(evs[i]);
    free(evs);
    return rc;
}

static ms_apply_result apply1t(fixture *f, const char *tenant, const char *json)
{
    ms_apply_result r;
    memset(&r, 0xab, sizeof r);
    const char *t[1] = {tenant};
    const char *j[1] = {json};
    assert_int_equal(apply_n(f, t, j, 1, NOW1, &r), MS_OK);
    return r;
}

static ms_apply_result apply1(fixture *f, const char *json)
{
    return apply1t(f, "default", json);
}

#define assert_applied(r)                                                                          \
    do {                                                                                           \
        ms_apply_result r_ = (r);                                                                  \
        if (r_.status != MS_APPLY_APPLIED)                                                         \
            print_error("status %d code %s: %s\n", r_.status, ms_err_code(r_.code), r_.detail);    \
        assert_int_equal(r_.status, MS_APPLY_APPLIED);                                             \
    } while (0)

#define assert_rejected(r, c)                                                                      \
    do {                                                                                           \
        ms_apply_result r_ = (r);                                                                  \
        if (r_.status != MS_APPLY_REJECTED || r_.code != (c))                                      \
            print_error("status %d code %s: %s\n", r_.status, ms_err_code(r_.code), r_.detail);    \
        assert_int_equal(r_.status, MS_APPLY_REJECTED);                                            \
        assert_int_equal(r_.code, (c));                                                            \
        assert_true(r_.detail[0] != '\0');                                                         \
    } while (0)

/* An owned copy of a change record. */
typedef struct chg {
    uint64_t seq;
    char tenant[64], op[16], qn[256], type[64], cause[64], ts[40];
    bool has_type, has_cause;
    int64_t version;
    char *before, *after, *changed;
} chg;

typedef struct chg_list {
    chg *c;
    size_t n, cap;
    size_t stop_after; /* 0 = never stop early */
} chg_list;

static int collect(void *ud, const ms_change *c)
{
    chg_list *l = ud;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->c = realloc(l->c, l->cap * sizeof *l->c);
        assert_non_null(l->c);
    }
    chg *d = &l->c[l->n++];
    memset(d, 0, sizeof *d);
    d->seq = c->seq;
    snprintf(d->tenant, sizeof d->tenant, "%s", c->tenant ? c->tenant : "");
    snprintf(d->op, sizeof d->op, "%s", c->op);
    snprintf(d->qn, sizeof d->qn, "%s", c->qn);
    d->has_type = c->type != NULL;
    snprintf(d->type, sizeof d->type, "%s", c->type ? c->type : "");
    d->has_cause = c->cause != NULL;
    snprintf(d->cause, sizeof d->cause, "%s", c->cause ? c->cause : "");
    snprintf(d->ts, sizeof d->ts, "%s", c->ts ? c->ts : "");
    d->version = c->version;
    d->before = c->before ? strdup(c->before) : NULL;
    d->after = c->after ? strdup(c->after) : NULL;
    assert_non_null(c->changed);
    d->changed = strdup(c->changed);
    return l->stop_after && l->n >= l->stop_after;
}

static void chg_list_free(chg_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->c[i].before);
        free(l->c[i].after);
        free(l->c[i].changed);
    }
    free(l->c);
    memset(l, 0, sizeof *l);
}

static void changes_of(fixture *f, const char *tenant, uint64_t after, size_t limit, chg_list *l)
{
    ms_error err;
    ms_error_clear(&err);
    assert_int_equal(ms_store_sqlite.changes(f->ctx, tenant, after, limit, collect, l, &err),
                     MS_OK);
}

static void history_of(fixture *f, const char *tenant, const char *qn, chg_list *l)
{
    ms_error err;
    ms_error_clear(&err);
    assert_int_equal(ms_store_sqlite.history(f->ctx, tenant, qn, collect, l, &err), MS_OK);
}

/* Parses JSON text (must be valid); caller puts the result. */
static struct json_object *parse(const char *text)
{
    assert_non_null(text);
    struct json_object *o = json_tokener_parse(text);
    if (!o) print_error("not JSON: %s\n", text);
    assert_non_null(o);
    return o;
}

/* o.key (NULL if absent). */
static struct json_object *get(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *get_str(struct json_object *o, const char *key)
{
    struct json_object *v = get(o, key);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Returns the asset JSON (parsed), or NULL with *rc set when it is not found. */
static struct json_object *asset(fixture *f, const char *tenant, const char *qn, bool deleted,
                                 ms_err *rc_out)
{
    ms_buf b = MS_BUF_INIT;
    ms_error err;
    ms_error_clear(&err);
    ms_err rc = ms_store_sqlite.asset_get(f->ctx, tenant, qn, deleted, &b, &err);
    if (rc_out) *rc_out = rc;
    struct json_object *o = NULL;
    if (rc == MS_OK)
        o = parse(b.data);
    else
        assert_true(err.detail[0] != '\0');
    ms_buf_free(&b);
    return o;
}

/* True when the JSON array text arr contains the string s. */
static bool array_has(const char *arr, const char *s)
{
    struct json_object *a = parse(arr);
    assert_true(json_object_is_type(a, json_type_array));
    bool found = false;
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        const char *e = json_object_get_string(json_object_array_get_idx(a, i));
        if (e && strcmp(e, s) == 0) found = true;
    }
    json_object_put(a);
    return found;
}

static size_t array_len_text(const char *arr)
{
    struct json_object *a = parse(arr);
    size_t n = json_object_array_length(a);
    json_object_put(a);
    return n;
}

/* Lists assets for q; returns the parsed items array and the next cursor (owned). */
static struct json_object *list(fixture *f, const ms_asset_query *q, char **next)
{
    ms_buf items = MS_BUF_INIT, cur = MS_BUF_INIT, arr = MS_BUF_INIT;
    ms_error err;
    ms_error_clear(&err);
    ms_err rc = ms_store_sqlite.asset_list(f->ctx, q, &items, &cur, &err);
    if (rc != MS_OK) print_error("list: %s %s\n", ms_err_code(rc), err.detail);
    assert_int_equal(rc, MS_OK);
    ms_buf_printf(&arr, "[%s]", ms_buf_cstr(&items));
    struct json_object *o = parse(arr.data);
    if (next) *next = strdup(ms_buf_cstr(&cur));
    ms_buf_free(&items);
    ms_buf_free(&cur);
    ms_buf_free(&arr);
    return o;
}

static bool list_has(struct json_object *arr, const char *qn)
{
    for (size_t i = 0; i < json_object_array_length(arr); i++)
        if (strcmp(get_str(json_object_array_get_idx(arr, i), "qualified_name"), qn) == 0)
            return true;
    return false;
}

static uint64_t orphans(fixture *f, const char *tenant)
{
    ms_store_stats st = {0};
    ms_error err;
    assert_int_equal(ms_store_sqlite.stats(f->ctx, tenant, &st, &err), MS_OK);
    return st.orphans;
}

static uint64_t last_seq(fixture *f, const char *tenant)
{
    uint64_t s = 12345;
    ms_error err;
    assert_int_equal(ms_store_sqlite.last_seq(f->ctx, tenant, &s, &err), MS_OK);
    return s;
}

/* Creates pg (connection) / pg/db / pg/db/s / pg/db/s/t (table) / two columns. */
static void make_tree(fixture *f)
{
    assert_applied(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg\"}"));
    assert_applied(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"database\",\"qualified_name\":\"pg/db\"}"));
    assert_applied(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"schema\",\"qualified_name\":\"pg/db/s\"}"));
    assert_applied(apply1(f,
                          "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"pg/db/s/t\","
                          "\"attributes\":{\"description\":\"orders of customers\"}}"));
    assert_applied(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/db/s/t/a\","
                  "\"attributes\":{\"data_type\":\"int\"},\"tags\":[\"PII\"]}"));
    assert_applied(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/db/s/t/b\","
                  "\"attributes\":{\"data_type\":\"text\"}}"));
}

/* ---- tests ------------------------------------------------------------------------------------
 */

/* A fresh store creates its database under data_dir and starts empty. */
static void test_open_fresh(void **state)
{
    fixture *f = *state;
    char path[700];
    snprintf(path, sizeof path, "%s/data/metasync.db", f->dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(last_seq(f, "default"), 0);
    assert_int_equal(orphans(f, "default"), 0);
    ms_err rc;
    assert_null(asset(f, "default", "pg", false, &rc));
    assert_int_equal(rc, MS_ERR_NOT_FOUND);
    chg_list l = {0};
    changes_of(f, "default", 0, 100, &l);
    assert_int_equal(l.n, 0);
    chg_list_free(&l);
}

/* An upsert creates the asset: APPLIED with one change record, asset_get returns every field. */
static void test_upsert_create_and_get(void **state)
{
    fixture *f = *state;
    ms_apply_result r =
        apply1(f, "{\"id\":\"e-1\",\"op\":\"upsert\",\"type\":\"connection\","
                  "\"qualified_name\":\"pg\",\"attributes\":{\"host\":\"db1\",\"port\":5432},"
                  "\"tags\":[\"prod\",\"core\"]}");
    assert_applied(r);
    assert_int_equal(r.seq_first, 1);
    assert_int_equal(r.seq_last, 1);
    ms_err rc;
    struct json_object *o = asset(f, "default", "pg", false, &rc);
    assert_int_equal(rc, MS_OK);
    assert_string_equal(get_str(o, "qualified_name"), "pg");
    assert_string_equal(get_str(o, "type"), "connection");
    assert_string_equal(get_str(o, "name"), "pg");
    assert_true(json_object_object_get_ex(o, "parent", NULL)); /* present, JSON null */
    assert_null(get(o, "parent"));
    struct json_object *at = get(o, "attributes");
    assert_true(json_object_is_type(at, json_type_object));
    assert_string_equal(get_str(at, "host"), "db1");
    assert_int_equal(json_object_get_int(get(at, "port")), 5432);
    struct json_object *tags = get(o, "tags");
    assert_int_equal(json_object_array_length(tags), 2);
    /* sorted by name, direct */
    assert_string_equal(get_str(json_object_array_get_idx(tags, 0), "name"), "core");
    assert_string_equal(get_str(json_object_array_get_idx(tags, 0), "source"), "direct");
    assert_string_equal(get_str(json_object_array_get_idx(tags, 1), "name"), "prod");
    assert_int_equal(json_object_get_int(get(o, "version")), 1);
    assert_string_equal(get_str(o, "created_at"), NOW1);
    assert_string_equal(get_str(o, "updated_at"), NOW1);
    assert_false(json_object_get_boolean(get(o, "deleted")));
    assert_false(json_object_get_boolean(get(o, "orphan")));
    json_object_put(o);

    char type[64];
    ms_error err;
    assert_int_equal(ms_store_sqlite.asset_type(f->ctx, "default", "pg", type, sizeof type, &err),
                     MS_OK);
    assert_string_equal(type, "connection");
    assert_int_equal(ms_store_sqlite.asset_type(f->ctx, "default", "nope", type, sizeof type, &err),
                     MS_ERR_NOT_FOUND);
    assert_string_equal(type, "");

    chg_list l = {0};
    changes_of(f, "default", 0, 100, &l);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.c[0].seq, 1);
    assert_string_equal(l.c[0].op, "create");
    assert_string_equal(l.c[0].qn, "pg");
    assert_string_equal(l.c[0].type, "connection");
    assert_string_equal(l.c[0].tenant, "default");
    assert_int_equal(l.c[0].version, 1);
    assert_string_equal(l.c[0].cause, "e-1");
    assert_string_equal(l.c[0].ts, NOW1);
    assert_null(l.c[0].before);
    struct json_object *after = parse(l.c[0].after);
    assert_string_equal(get_str(after, "qualified_name"), "pg");
    assert_int_equal(json_object_get_int(get(after, "version")), 1);
    json_object_put(after);
    assert_true(array_has(l.c[0].changed, "type"));
    assert_true(array_has(l.c[0].changed, "attributes.host"));
    assert_true(array_has(l.c[0].changed, "attributes.port"));
    assert_true(array_has(l.c[0].changed, "tags"));
    chg_list_free(&l);
}

/* Every outcome of apply: APPLIED, UNCHANGED, DUPLICATE and each rejection code. */
static void test_apply_outcomes(void **state)
{
    fixture *f = *state;
    make_tree(f);
    uint64_t base = last_seq(f, "default");

    /* identical upsert: nothing to change */
    ms_apply_result r =
        apply1(f, "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/db/s/t/b\","
                  "\"attributes\":{\"data_type\":\"text\"}}");
    assert_int_equal(r.status, MS_APPLY_UNCHANGED);
    assert_int_equal(last_seq(f, "default"), base);

    /* same id twice: the second is a duplicate, even with other content */
    assert_applied(
        apply1(f, "{\"id\":\"dup-1\",\"op\":\"tag\",\"qualified_name\":\"pg\",\"tag\":\"x\"}"));
    r = apply1(f, "{\"id\":\"dup-1\",\"op\":\"tag\",\"qualified_name\":\"pg\",\"tag\":\"y\"}");
    assert_int_equal(r.status, MS_APPLY_DUPLICATE);
    base = last_seq(f, "default");

    /* version_conflict: pg is at version 2 (create + tag) */
    assert_rejected(apply1(f,
                           "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg\","
                           "\"if_version\":1,\"attributes\":{\"a\":1}}"),
                    MS_ERR_VERSION_CONFLICT);
    assert_rejected(apply1(f,
                           "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg\","
                           "\"if_version\":0}"),
                    MS_ERR_VERSION_CONFLICT);
    assert_applied(apply1(f,
                          "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg2\","
                          "\"if_version\":0}"));
    assert_applied(apply1(f, "{\"op\":\"patch\",\"qualified_name\":\"pg\",\"if_version\":2,"
                             "\"attributes\":{\"a\":1}}"));
    base = last_seq(f, "default");

    /* not_found: patch, tag, untag, delete of a missing asset */
    assert_rejected(
        apply1(f, "{\"op\":\"patch\",\"qualified_name\":\"nope\",\"attributes\":{\"a\":1}}"),
        MS_ERR_NOT_FOUND);
    assert_rejected(apply1(f, "{\"op\":\"tag\",\"qualified_name\":\"nope\",\"tag\":\"t\"}"),
                    MS_ERR_NOT_FOUND);
    assert_rejected(apply1(f, "{\"op\":\"untag\",\"qualified_name\":\"nope\",\"tag\":\"t\"}"),
                    MS_ERR_NOT_FOUND);
    assert_rejected(apply1(f, "{\"op\":\"delete\",\"qualified_name\":\"nope\"}"), MS_ERR_NOT_FOUND);

    /* type_conflict: upsert as another type; patch naming another type */
    assert_rejected(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"view\",\"qualified_name\":\"pg/db/s/t\"}"),
        MS_ERR_TYPE_CONFLICT);
    assert_rejected(apply1(f,
                           "{\"op\":\"patch\",\"type\":\"view\",\"qualified_name\":\"pg/db/s/t\","
                           "\"attributes\":{\"a\":1}}"),
                    MS_ERR_TYPE_CONFLICT);

    /* invalid_parent: a table inside a connection; a column inside a schema */
    assert_rejected(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"pg/t2\"}"),
        MS_ERR_INVALID_PARENT);
    assert_rejected(apply1(f, "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"x/c\","
                              "\"parent\":\"pg/db/s\",\"attributes\":{\"data_type\":\"int\"}}"),
                    MS_ERR_INVALID_PARENT);

    /* missing_attribute: a patch that removes the column's data_type */
    assert_rejected(apply1(f, "{\"op\":\"patch\",\"qualified_name\":\"pg/db/s/t/a\","
                              "\"attributes\":{\"data_type\":null}}"),
                    MS_ERR_MISSING_ATTRIBUTE);

    /* no rejection wrote anything */
    assert_int_equal(last_seq(f, "default"), base);
    ms_err rc;
    struct json_object *o = asset(f, "default", "pg/db/s/t/a", false, &rc);
    assert_string_equal(get_str(get(o, "attributes"), "data_type"), "int");
    assert_int_equal(json_object_get_int(get(o, "version")), 1);
    json_object_put(o);
    assert_int_equal(
        ms_store_sqlite.asset_type(f->ctx, "default", "pg/t2", (char[8]){0}, 8, &(ms_error){0}),
        MS_ERR_NOT_FOUND);

    /* a rejected event's id is not burned: the fixed event with the same id applies */
    assert_rejected(
        apply1(f, "{\"id\":\"fix-1\",\"op\":\"tag\",\"qualified_name\":\"later\",\"tag\":\"t\"}"),
        MS_ERR_NOT_FOUND);
    assert_applied(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"later\"}"));
    assert_applied(
        apply1(f, "{\"id\":\"fix-1\",\"op\":\"tag\",\"qualified_name\":\"later\",\"tag\":\"t\"}"));

    /* tag already there / untag absent tag: unchanged */
    assert_int_equal(
        apply1(f, "{\"op\":\"tag\",\"qualified_name\":\"later\",\"tag\":\"t\"}").status,
        MS_APPLY_UNCHANGED);
    assert_int_equal(
        apply1(f, "{\"op\":\"untag\",\"qualified_name\":\"later\",\"tag\":\"zz\"}").status,
        MS_APPLY_UNCHANGED);
}

/* In one batch a rejected event does not stop the others, and the results line up. */
static void test_batch_mixed_results(void **state)
{
    fixture *f = *state;
    const char *j[] = {
        "{\"id\":\"a\",\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"c1\"}",
        "{\"id\":\"b\",\"op\":\"patch\",\"qualified_name\":\"missing\",\"attributes\":{\"x\":1}}",
        "{\"id\":\"a\",\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"c9\"}",
        "{\"id\":\"c\",\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"c1\"}",
        "{\"id\":\"d\",\"op\":\"patch\",\"qualified_name\":\"c1\",\"attributes\":{\"x\":1}}",
    };
    ms_apply_result r[5];
    assert_int_equal(apply_n(f, NULL, j, 5, NOW1, r), MS_OK);
    assert_int_equal(r[0].status, MS_APPLY_APPLIED);
    assert_int_equal(r[0].seq_first, 1);
    assert_int_equal(r[0].seq_last, 1);
    assert_int_equal(r[1].status, MS_APPLY_REJECTED);
    assert_int_equal(r[1].code, MS_ERR_NOT_FOUND);
    assert_int_equal(r[2].status, MS_APPLY_DUPLICATE);
    assert_int_equal(r[3].status, MS_APPLY_UNCHANGED);
    assert_int_equal(r[4].status, MS_APPLY_APPLIED);
    assert_int_equal(r[4].seq_first, 2);
    assert_int_equal(r[4].seq_last, 2);
    ms_err rc;
    assert_null(asset(f, "default", "c9", false, &rc));
    assert_int_equal(rc, MS_ERR_NOT_FOUND);
}

/* patch, tag, untag write versioned change records with before, after and changed paths;
 * history() returns them oldest first. */
static void test_change_records(void **state)
{
    fixture *f = *state;
    make_tree(f);
    const char *qn = "pg/db/s/t/a";
    ms_apply_result r =
        apply1(f, "{\"id\":\"p1\",\"op\":\"patch\",\"qualified_name\":\"pg/db/s/t/a\","
                  "\"attributes\":{\"data_type\":\"bigint\",\"nullable\":false}}");
    assert_applied(r);
    assert_int_equal(r.seq_first, r.seq_last);
    uint64_t s_patch = r.seq_last;
    const char *t2[1] = {"default"},
               *j2[1] = {"{\"op\":\"tag\",\"qualified_name\":\"pg/db/s/t/a\",\"tag\":\"gold\"}"};
    assert_int_equal(apply_n(f, t2, j2, 1, NOW2, &r), MS_OK);
    assert_applied(r);
    assert_applied(
        apply1(f, "{\"op\":\"untag\",\"qualified_name\":\"pg/db/s/t/a\",\"tag\":\"PII\"}"));
    /* a patch with an identical value changes nothing */
    assert_int_equal(apply1(f, "{\"op\":\"patch\",\"qualified_name\":\"pg/db/s/t/a\","
                               "\"attributes\":{\"data_type\":\"bigint\"}}")
                         .status,
                     MS_APPLY_UNCHANGED);

    chg_list h = {0};
    history_of(f, "default", qn, &h);
    assert_int_equal(h.n, 4);
    /* nested objects are compared key by key (on another asset) */
    assert_applied(apply1(f, "{\"op\":\"patch\",\"qualified_name\":\"pg\","
                             "\"attributes\":{\"cfg\":{\"a\":1,\"b\":2},\"list\":[1,2]}}"));
    r = apply1(f, "{\"op\":\"patch\",\"qualified_name\":\"pg\","
                  "\"attributes\":{\"cfg\":{\"b\":3},\"list\":[1,3]}}");
    assert_applied(r);
    {
        chg_list n = {0};
        changes_of(f, "default", r.seq_first - 1, 1, &n);
        assert_int_equal(array_len_text(n.c[0].changed), 2);
        assert_true(array_has(n.c[0].changed, "attributes.cfg.b"));
        assert_true(array_has(n.c[0].changed, "attributes.list"));
        chg_list_free(&n);
    }
    for (size_t i = 1; i < h.n; i++)
        assert_true(h.c[i].seq > h.c[i - 1].seq);
    for (size_t i = 0; i < h.n; i++) {
        assert_string_equal(h.c[i].qn, qn);
        assert_string_equal(h.c[i].type, "column");
        assert_int_equal(h.c[i].version, (int64_t)i + 1);
    }
    assert_string_equal(h.c[0].op, "create");
    assert_null(h.c[0].before);
    assert_true(array_has(h.c[0].changed, "attributes.data_type"));
    assert_true(array_has(h.c[0].changed, "parent"));

    /* patch: update, before/after, only the attribute paths that changed */
    assert_string_equal(h.c[1].op, "update");
    assert_int_equal(h.c[1].seq, s_patch);
    assert_string_equal(h.c[1].cause, "p1");
    assert_int_equal(array_len_text(h.c[1].changed), 2);
    assert_true(array_has(h.c[1].changed, "attributes.data_type"));
    assert_true(array_has(h.c[1].changed, "attributes.nullable"));
    struct json_object *b = parse(h.c[1].before), *a = parse(h.c[1].after);
    assert_string_equal(get_str(get(b, "attributes"), "data_type"), "int");
    assert_string_equal(get_str(get(a, "attributes"), "data_type"), "bigint");
    assert_int_equal(json_object_get_int(get(b, "version")), 1);
    assert_int_equal(json_object_get_int(get(a, "version")), 2);
    json_object_put(b);
    json_object_put(a);

    /* tag */
    assert_string_equal(h.c[2].op, "tag");
    assert_string_equal(h.c[2].changed, "[\"tags\"]");
    assert_string_equal(h.c[2].ts, NOW2);
    a = parse(h.c[2].after);
    assert_int_equal(json_object_array_length(get(a, "tags")), 2);
    json_object_put(a);

    /* untag */
    assert_string_equal(h.c[3].op, "untag");
    assert_string_equal(h.c[3].changed, "[\"tags\"]");
    b = parse(h.c[3].before);
    a = parse(h.c[3].after);
    assert_int_equal(json_object_array_length(get(b, "tags")), 2);
    assert_int_equal(json_object_array_length(get(a, "tags")), 1);
    assert_string_equal(get_str(json_object_array_get_idx(get(a, "tags"), 0), "name"), "gold");
    json_object_put(b);
    json_object_put(a);
    chg_list_free(&h);

    /* the asset itself */
    ms_err rc;
    struct json_object *o = asset(f, "default", qn, false, &rc);
    assert_int_equal(json_object_get_int(get(o, "version")), 4);
    assert_string_equal(get_str(o, "created_at"), NOW1);
    assert_false(json_object_get_boolean(get(get(o, "attributes"), "nullable")));
    json_object_put(o);
}

/* Deleting an asset deletes its live descendants, each with a delete change record. */
static void test_delete_with_children(void **state)
{
    fixture *f = *state;
    make_tree(f);
    uint64_t before = last_seq(f, "default");
    ms_apply_result r =
        apply1(f, "{\"id\":\"del\",\"op\":\"delete\",\"qualified_name\":\"pg/db/s\"}");
    assert_applied(r);
    /* schema, table, two columns */
    assert_int_equal(r.seq_first, before + 1);
    assert_int_equal(r.seq_last, before + 4);
    assert_int_equal(last_seq(f, "default"), before + 4);

    chg_list l = {0};
    changes_of(f, "default", before, 100, &l);
    assert_int_equal(l.n, 4);
    const char *want[] = {"pg/db/s", "pg/db/s/t", "pg/db/s/t/a", "pg/db/s/t/b"};
    for (size_t i = 0; i < 4; i++) {
        bool found = false;
        for (size_t k = 0; k < l.n; k++)
            found |= strcmp(l.c[k].qn, want[i]) == 0;
        assert_true(found);
        assert_string_equal(l.c[i].op, "delete");
        assert_null(l.c[i].after);
        assert_non_null(l.c[i].before);
        assert_string_equal(l.c[i].changed, "[\"deleted\"]");
        assert_int_equal(l.c[i].seq, before + 1 + i);
        assert_string_equal(l.c[i].cause, "del");
    }
    assert_string_equal(l.c[0].qn, "pg/db/s");
    assert_int_equal(l.c[0].version, 2);
    chg_list_free(&l);

    ms_err rc;
    for (size_t i = 0; i < 4; i++) {
        assert_null(asset(f, "default", want[i], false, &rc));
        assert_int_equal(rc, MS_ERR_NOT_FOUND);
        struct json_object *o = asset(f, "default", want[i], true, &rc);
        assert_int_equal(rc, MS_OK);
        assert_true(json_object_get_boolean(get(o, "deleted")));
        json_object_put(o);
    }
    /* the database and connection are untouched */
    struct json_object *o = asset(f, "default", "pg/db", false, &rc);
    assert_int_equal(json_object_get_int(get(o, "version")), 1);
    json_object_put(o);

    /* deleting again changes nothing; deleted assets are not counted as orphans */
    assert_int_equal(apply1(f, "{\"op\":\"delete\",\"qualified_name\":\"pg/db/s/t\"}").status,
                     MS_APPLY_UNCHANGED);
    assert_int_equal(orphans(f, "default"), 0);
    /* patch/tag of a deleted asset: not_found */
    assert_rejected(
        apply1(f, "{\"op\":\"patch\",\"qualified_name\":\"pg/db/s/t\",\"attributes\":{\"a\":1}}"),
        MS_ERR_NOT_FOUND);
    assert_rejected(apply1(f, "{\"op\":\"tag\",\"qualified_name\":\"pg/db/s/t\",\"tag\":\"x\"}"),
                    MS_ERR_NOT_FOUND);

    /* listing hides deleted assets unless asked */
    ms_asset_query q = {.tenant = "default", .orphan = -1, .limit = 100};
    struct json_object *items = list(f, &q, NULL);
    assert_int_equal(json_object_array_length(items), 2);
    json_object_put(items);
    q.include_deleted = true;
    items = list(f, &q, NULL);
    assert_int_equal(json_object_array_length(items), 6);
    json_object_put(items);

    /* an upsert brings a deleted asset back as a new life (create), with a higher version */
    r = apply1(f, "{\"op\":\"upsert\",\"type\":\"schema\",\"qualified_name\":\"pg/db/s\"}");
    assert_applied(r);
    l = (chg_list){0};
    changes_of(f, "default", r.seq_first - 1, 1, &l);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.c[0].op, "create");
    assert_null(l.c[0].before);
    assert_int_equal(l.c[0].version, 3);
    chg_list_free(&l);

    /* a delete with a stale if_version is refused */
    assert_rejected(apply1(f, "{\"op\":\"delete\",\"qualified_name\":\"pg/db\",\"if_version\":7}"),
                    MS_ERR_VERSION_CONFLICT);
    /* a deleted asset counts as version 0 for if_version */
    assert_applied(apply1(f, "{\"op\":\"delete\",\"qualified_name\":\"pg/db/s\"}"));
    assert_rejected(apply1(f,
                           "{\"op\":\"upsert\",\"type\":\"schema\",\"qualified_name\":\"pg/db/s\","
                           "\"if_version\":4}"),
                    MS_ERR_VERSION_CONFLICT);
    r = apply1(
        f,
        "{\"op\":\"upsert\",\"type\":\"schema\",\"qualified_name\":\"pg/db/s\",\"if_version\":0}");
    assert_applied(r);
    struct json_object *o2 = asset(f, "default", "pg/db/s", false, &rc);
    assert_int_equal(json_object_get_int(get(o2, "version")), 5);
    json_object_put(o2);
}

/* Records which tenants tenants() reported. */
typedef struct tenant_seen {
    int n;
    bool d, a;
} tenant_seen;

static int tenant_seen_cb(void *ud, const char *tn)
{
    tenant_seen *s = ud;
    s->n++;
    if (strcmp(tn, "default") == 0) s->d = true;
    if (strcmp(tn, "acme") == 0) s->a = true;
    return 0;
}

/* seqs are strictly increasing with no gaps per tenant, and each tenant counts on its own. */
static void test_seqs_per_tenant(void **state)
{
    fixture *f = *state;
    const char *t[8], *j[8];
    char buf[8][200];
    for (int i = 0; i < 8; i++) {
        t[i] = (i % 2) ? "acme" : "default";
        if (i == 4)
            snprintf(buf[i], sizeof buf[i], "{\"op\":\"delete\",\"qualified_name\":\"ghost\"}");
        else
            snprintf(buf[i], sizeof buf[i],
                     "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"c%d\"}", i);
        j[i] = buf[i];
    }
    ms_apply_result r[8];
    assert_int_equal(apply_n(f, t, j, 8, NOW1, r), MS_OK);
    /* default: 0, 2, (4 rejected), 6 -> seqs 1, 2, 3; acme: 1, 3, 5, 7 -> 1..4 */
    assert_int_equal(r[0].seq_first, 1);
    assert_int_equal(r[2].seq_first, 2);
    assert_int_equal(r[4].status, MS_APPLY_REJECTED);
    assert_int_equal(r[6].seq_first, 3);
    for (int i = 1; i < 8; i += 2)
        assert_int_equal(r[i].seq_first, (uint64_t)(i / 2 + 1));
    assert_int_equal(last_seq(f, "default"), 3);
    assert_int_equal(last_seq(f, "acme"), 4);

    /* a second batch continues each */
    assert_int_equal(
        apply1t(f, "acme", "{\"op\":\"tag\",\"qualified_name\":\"c1\",\"tag\":\"x\"}").seq_first,
        5);
    assert_int_equal(
        apply1t(f, "default", "{\"op\":\"tag\",\"qualified_name\":\"c0\",\"tag\":\"x\"}").seq_first,
        4);

    const char *tenants[] = {"default", "acme"};
    for (int k = 0; k < 2; k++) {
        chg_list l = {0};
        changes_of(f, tenants[k], 0, 1000, &l);
        assert_int_equal(l.n, last_seq(f, tenants[k]));
        for (size_t i = 0; i < l.n; i++) {
            assert_int_equal(l.c[i].seq, i + 1);
            assert_string_equal(l.c[i].tenant, tenants[k]);
        }
        chg_list_free(&l);
    }

    /* changes(): after and limit page through the log; a callback may stop early */
    chg_list l = {0};
    changes_of(f, "acme", 2, 2, &l);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.c[0].seq, 3);
    assert_int_equal(l.c[1].seq, 4);
    chg_list_free(&l);
    l = (chg_list){.stop_after = 1};
    changes_of(f, "acme", 0, 100, &l);
    assert_int_equal(l.n, 1);
    chg_list_free(&l);
    changes_of(f, "acme", 5, 100, &l);
    assert_int_equal(l.n, 0);
    chg_list_free(&l);

    /* tenants() lists both */
    tenant_seen seen = {0};
    ms_error err;
    assert_int_equal(ms_store_sqlite.tenants(f->ctx, tenant_seen_cb, &seen, &err), MS_OK);
    assert_int_equal(seen.n, 2);
    assert_true(seen.d && seen.a);
}

/* asset_list: filters by type, parent, tag, full text and orphan status; pages with a cursor
 * that neither skips nor repeats an asset. */
static void test_asset_list(void **state)
{
    fixture *f = *state;
    make_tree(f);
    for (int i = 0; i < 5; i++) {
        char j[200];
        snprintf(j, sizeof j,
                 "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/db/s/u/k%d\","
                 "\"attributes\":{\"data_type\":\"int\"}}",
                 i);
        assert_applied(apply1(f, j));
    }
    ms_asset_query q = {.tenant = "default", .orphan = -1, .limit = 100};
    struct json_object *items;

    q.type = "column";
    items = list(f, &q, NULL);
    assert_int_equal(json_object_array_length(items), 7);
    json_object_put(items);

    q.type = NULL;
    q.parent = "pg/db/s/t";
    items = list(f, &q, NULL);
    assert_int_equal(json_object_array_length(items), 2);
    assert_true(list_has(items, "pg/db/s/t/a") && list_has(items, "pg/db/s/t/b"));
    json_object_put(items);

    q.parent = NULL;
    q.tag = "PII";
    items = list(f, &q, NULL);
    assert_int_equal(json_object_array_length(items), 1);
    assert_true(list_has(items, "pg/db/s/t/a"));
    /* listed items carry their tags like asset_get */
    struct json_object *tags = get(json_object_array_get_idx(items, 0), "tags");
    assert_int_equal(json_object_array_length(tags), 1);
    assert_string_equal(get_str(json_object_array_get_idx(tags, 0), "name"), "PII");
    json_object_put(items);

    q.tag = NULL;
    q.q = "customers";
    items = list(f, &q, NULL);
    assert_int_equal(json_object_array_length(items), 1);
    assert_true(list_has(items, "pg/db/s/t"));
    json_object_put(items);
    q.q = "ord"; /* prefix match */
    items = list(f, &q, NULL);
    assert_int_equal(json_object_array_length(items), 1);
    json_object_put(items);
    q.q = "!!!";
    {
        ms_buf it = MS_BUF_INIT, cur = MS_BUF_INIT;
        ms_error err;
        assert_int_equal(ms_store_sqlite.asset_list(f->ctx, &q, &it, &cur, &err), MS_ERR_BAD_PARAM);
        ms_buf_free(&it);
        ms_buf_free(&cur);
    }
    q.q = NULL;

    q.orphan = 1; /* the five k* columns: their table pg/db/s/u does not exist */
    items = list(f, &q, NULL);
    assert_int_equal(json_object_array_length(items), 5);
    json_object_put(items);
    q.orphan = 0;
    items = list(f, &q, NULL);
    assert_int_equal(json_object_array_length(items), 6);
    json_object_put(items);
    q.orphan = -1;

    /* Paging: 11 assets, 3 per page; every asset exactly once, in qn order. */
    q.limit = 3;
    char *cursor = NULL;
    int seen = 0, pages = 0;
    bool dup = false;
    char last[256] = "";
    char *all[32];
    do {
        char *next = NULL;
        q.cursor = cursor;
        items = list(f, &q, &next);
        pages++;
        assert_true(json_object_array_length(items) <= 3);
        for (size_t i = 0; i < json_object_array_length(items); i++) {
            const char *qn = get_str(json_object_array_get_idx(items, i), "qualified_name");
            if (strcmp(qn, last) <= 0) dup = true;
            snprintf(last, sizeof last, "%s", qn);
            if (seen < 32) all[seen] = strdup(qn);
            seen++;
        }
        json_object_put(items);
        free(cursor);
        cursor = next[0] ? next : NULL;
        if (!cursor) free(next);
    } while (cursor && pages < 20);
    free(cursor);
    assert_false(dup);
    assert_true(pages >= 3);
    for (int i = 0; i < seen && i < 32; i++)
        free(all[i]);
    assert_int_equal(seen, 11);
}

/* A child that arrives before its parent is an orphan (counted by stats) until the parent
 * arrives; then it is adopted. */
static void test_orphans_adopted(void **state)
{
    fixture *f = *state;
    assert_applied(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg\"}"));
    assert_applied(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"database\",\"qualified_name\":\"pg/db\"}"));
    assert_applied(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"schema\",\"qualified_name\":\"pg/db/s\"}"));
    assert_int_equal(orphans(f, "default"), 0);
    assert_applied(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/db/s/t/a\","
                  "\"attributes\":{\"data_type\":\"int\"}}"));
    assert_applied(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/db/s/t/b\","
                  "\"attributes\":{\"data_type\":\"int\"}}"));
    assert_int_equal(orphans(f, "default"), 2);
    assert_int_equal(orphans(f, "acme"), 0);
    ms_err rc;
    struct json_object *o = asset(f, "default", "pg/db/s/t/a", false, &rc);
    assert_true(json_object_get_boolean(get(o, "orphan")));
    assert_string_equal(get_str(o, "parent"), "pg/db/s/t");
    json_object_put(o);

    assert_applied(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"pg/db/s/t\"}"));
    assert_int_equal(orphans(f, "default"), 0);
    o = asset(f, "default", "pg/db/s/t/a", false, &rc);
    assert_false(json_object_get_boolean(get(o, "orphan")));
    assert_int_equal(json_object_get_int(get(o, "version")), 1);
    json_object_put(o);
    ms_asset_query q = {.tenant = "default", .orphan = 1, .limit = 100};
    struct json_object *items = list(f, &q, NULL);
    assert_int_equal(json_object_array_length(items), 0);
    json_object_put(items);

    /* an asset whose type needs a parent but which has none is an orphan too */
    assert_applied(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"database\",\"qualified_name\":\"lonely\"}"));
    assert_int_equal(orphans(f, "default"), 1);

    /* The count is kept by the writer: deleted orphans leave it, and are not counted again when
     * their parent arrives; a re-created one is counted again. */
    assert_applied(apply1(f, "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":"
                             "\"pg/db/s/u/x\",\"attributes\":{\"data_type\":\"int\"}}"));
    assert_int_equal(orphans(f, "default"), 2);
    assert_applied(apply1(f, "{\"op\":\"delete\",\"qualified_name\":\"pg/db/s/u/x\"}"));
    assert_int_equal(orphans(f, "default"), 1);
    assert_applied(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"pg/db/s/u\"}"));
    assert_int_equal(orphans(f, "default"), 1);
    assert_applied(apply1(f, "{\"op\":\"delete\",\"qualified_name\":\"pg/db/s/u\"}"));
    assert_applied(apply1(f, "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":"
                             "\"pg/db/s/u/x\",\"attributes\":{\"data_type\":\"int\"}}"));
    assert_int_equal(orphans(f, "default"), 2);
    /* and it matches a count of the table */
    int64_t n = -1;
    sqlite3 *db = NULL;
    char path[800];
    snprintf(path, sizeof path, "%s/data/metasync.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM assets WHERE orphan=1 AND deleted=0", -1, &st,
                       NULL);
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_int_equal(n, 2);
}

/* A create's changed paths are listed from the canonical attributes text without parsing it
 * again: they must be exactly what ms_json_diff_paths gives, escapes and key order included. */
static void test_create_changed_paths(void **state)
{
    fixture *f = *state;
    const char *ev = "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"p\","
                     "\"attributes\":{\"z\":{\"y\":[1,{\"k\":\"v:w\"}]},\"a\\\"b\":1,"
                     "\"\\u00e9\\n\":\"x,\\\"y\\\":\",\"b\":null,\"a\\\\c\":[]}}";
    assert_applied(apply1(f, ev));
    chg_list l = {0};
    history_of(f, "default", "p", &l);
    assert_int_equal(l.n, 1);
    struct json_object *after = parse(l.c[0].after);
    ms_buf want = MS_BUF_INIT;
    ms_buf_puts(&want, "[\"type\",\"name\",\"parent\"");
    ms_json_diff_paths(NULL, get(after, "attributes"), "attributes", &want, 3);
    ms_buf_putc(&want, ']');
    assert_string_equal(l.c[0].changed, want.data);
    ms_buf_free(&want);
    json_object_put(after);
    chg_list_free(&l);
}

/* Runs FTS5's integrity check of the full-text index on the search database (the store stays
 * open: the check is a read-only write statement on its own connection). */
static void fts_integrity(fixture *f)
{
    char path[800];
    snprintf(path, sizeof path, "%s/data/metasync-search.db", f->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    assert_int_equal(
        sqlite3_exec(db, "INSERT INTO fts(fts) VALUES('integrity-check')", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
}

/* Number of assets a full-text search q finds (the search waits for the index to catch up). */
static size_t search_count(fixture *f, const char *q)
{
    ms_asset_query aq = {.tenant = "default", .q = q, .orphan = -1, .limit = 100};
    struct json_object *items = list(f, &aq, NULL);
    size_t n = json_object_array_length(items);
    json_object_put(items);
    return n;
}

/* Runs sql on the file at path (with a busy timeout: the store may be open); asserts success. */
static void db_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    char *emsg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &emsg);
    if (rc != SQLITE_OK) fprintf(stderr, "%s: %s\n", sql, emsg ? emsg : "?");
    sqlite3_free(emsg);
    sqlite3_close(db);
    assert_int_equal(rc, SQLITE_OK);
}

static void db_text(const char *path, const char *sql, char *out, size_t n);

/* The full-text index, kept in its own database by the indexer thread, follows the store: an
 * asset created and renamed in one commit, renamed twice in another, renamed later again, or
 * given another description is found by its last values only; searches see what was committed
 * before them; the index stays consistent; the store's log of old values is pruned once the
 * index holds it. */
static void test_search_follows_the_store(void **state)
{
    fixture *f = *state;
    const char *evs[] = {
        "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"c1\",\"name\":\"alpha\"}",
        "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"c1\",\"name\":\"beta\"}",
        ("{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"c2\",\"name\":\"delta\","
         "\"attributes\":{\"description\":\"quarterly numbers\"}}")};
    ms_apply_result res[3];
    assert_int_equal(apply_n(f, NULL, evs, 3, NOW1, res), MS_OK);
    assert_int_equal(search_count(f, "alpha"), 0);
    assert_int_equal(search_count(f, "beta"), 1);
    assert_int_equal(search_count(f, "quarterly"), 1);
    const char *twice[] = {
        "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"c1\",\"name\":\"eta\"}",
        "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"c1\",\"name\":\"theta\"}"};
    assert_int_equal(apply_n(f, NULL, twice, 2, NOW1, res), MS_OK);
    assert_int_equal(search_count(f, "beta"), 0);
    assert_int_equal(search_count(f, "eta"), 0);
    assert_int_equal(search_count(f, "theta"), 1);
    assert_applied(apply1(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":"
                             "\"c2\",\"name\":\"gamma\"}"));
    assert_int_equal(search_count(f, "delta"), 0);
    assert_int_equal(search_count(f, "gamma"), 1);
    assert_int_equal(search_count(f, "quarterly"), 0);
    assert_applied(apply1(f, "{\"op\":\"patch\",\"qualified_name\":\"c2\","
                             "\"attributes\":{\"description\":\"yearly totals\"}}"));
    assert_int_equal(search_count(f, "yearly"), 1);
    fts_integrity(f);
    /* The index holds every logged change (the searches waited for it): the writer's next
     * commit deletes them from the store. */
    assert_applied(apply1(f, "{\"op\":\"upsert\",\"type\":\"connection\","
                             "\"qualified_name\":\"c3\"}"));
    char path[800], v[64];
    snprintf(path, sizeof path, "%s/data/metasync.db", f->dir);
    db_text(path, "SELECT count(*) FROM fts_log", v, sizeof v);
    assert_string_equal(v, "0");
    /* across a reopen, the index goes on from its marks */
    store_close(f);
    store_open(f);
    assert_int_equal(search_count(f, "theta"), 1);
    assert_applied(apply1(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":"
                             "\"c1\",\"name\":\"iota\"}"));
    assert_int_equal(search_count(f, "theta"), 0);
    assert_int_equal(search_count(f, "iota"), 1);
    fts_integrity(f);
}

/* A search database that does not match the store is built again from it at open: one ahead of
 * the store (as a power loss that took back the store's last commits leaves it), one of another
 * store, and none at all. */
static void test_search_rebuilt_when_it_does_not_match(void **state)
{
    fixture *f = *state;
    assert_applied(apply1(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":"
                             "\"c1\",\"name\":\"alpha\"}"));
    assert_int_equal(search_count(f, "alpha"), 1);
    char search[800], path[800];
    snprintf(search, sizeof search, "%s/data/metasync-search.db", f->dir);
    snprintf(path, sizeof path, "%s/data/metasync.db", f->dir);
    static const char *const breaks[] = {
        /* ahead: it holds a row the store lost; the store's row 1 is another asset now */
        "UPDATE marks SET value = value + 1 WHERE key = 'asset_mark'",
        "UPDATE marks SET value = value + 5 WHERE key = 'log_mark'",
        "UPDATE marks SET value = 'another' WHERE key = 'token'",
    };
    for (size_t i = 0; i < sizeof breaks / sizeof *breaks; i++) {
        store_close(f);
        db_exec(search, breaks[i]);
        store_open(f);
        assert_int_equal(search_count(f, "alpha"), 1);
        fts_integrity(f);
    }
    store_close(f);
    assert_int_equal(unlink(search), 0);
    store_open(f);
    assert_int_equal(search_count(f, "alpha"), 1);
    assert_applied(apply1(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":"
                             "\"c1\",\"name\":\"beta\"}"));
    assert_int_equal(search_count(f, "alpha"), 0);
    assert_int_equal(search_count(f, "beta"), 1);
    fts_integrity(f);
}

/* Captures the callback's tenant/json pairs of types_load. */
typedef struct type_rows {
    int n;
    char tenant[4][32];
    char json[4][256];
} type_rows;

static int type_cb(void *ud, const char *tenant, const char *json)
{
    type_rows *t = ud;
    if (t->n < 4) {
        snprintf(t->tenant[t->n], sizeof t->tenant[0], "%s", tenant);
        snprintf(t->json[t->n], sizeof t->json[0], "%s", json);
    }
    t->n++;
    return 0;
}

static int tenant_count_cb(void *ud, const char *tenant)
{
    (void)tenant;
    (*(int *)ud)++;
    return 0;
}

/* Cursors and types are stored per tenant and survive a reopen, as do assets and the log;
 * seqs continue after a reopen. */
static void test_cursors_types_reopen(void **state)
{
    fixture *f = *state;
    ms_error err;
    uint64_t s = 99;
    assert_int_equal(ms_store_sqlite.cursor_get(f->ctx, "default", "snapshots", &s, &err), MS_OK);
    assert_int_equal(s, 0);
    assert_int_equal(ms_store_sqlite.cursor_set(f->ctx, "default", "snapshots", 7, &err), MS_OK);
    assert_int_equal(ms_store_sqlite.cursor_set(f->ctx, "acme", "snapshots", 3, &err), MS_OK);
    assert_int_equal(ms_store_sqlite.cursor_set(f->ctx, "default", "other", 1, &err), MS_OK);
    assert_int_equal(ms_store_sqlite.cursor_set(f->ctx, "default", "snapshots", 9, &err), MS_OK);
    assert_int_equal(ms_store_sqlite.cursor_get(f->ctx, "default", "snapshots", &s, &err), MS_OK);
    assert_int_equal(s, 9);

    const char *kt = "{\"name\":\"kafka_topic\",\"parents\":[\"connection\"],\"required_"
                     "attributes\":[\"partitions\"]}";
    const char *bt = "{\"name\":\"bucket\"}";
    assert_int_equal(ms_store_sqlite.type_save(f->ctx, "acme", "kafka_topic", kt, &err), MS_OK);
    assert_int_equal(ms_store_sqlite.type_save(f->ctx, "default", "bucket", bt, &err), MS_OK);

    make_tree(f);
    assert_applied(
        apply1t(f, "acme", "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"k\"}"));
    uint64_t last = last_seq(f, "default");

    store_close(f);
    store_open(f);

    assert_int_equal(ms_store_sqlite.cursor_get(f->ctx, "default", "snapshots", &s, &err), MS_OK);
    assert_int_equal(s, 9);
    assert_int_equal(ms_store_sqlite.cursor_get(f->ctx, "acme", "snapshots", &s, &err), MS_OK);
    assert_int_equal(s, 3);
    assert_int_equal(ms_store_sqlite.cursor_get(f->ctx, "default", "other", &s, &err), MS_OK);
    assert_int_equal(s, 1);

    type_rows tr = {0};
    assert_int_equal(ms_store_sqlite.types_load(f->ctx, type_cb, &tr, &err), MS_OK);
    assert_int_equal(tr.n, 2);
    assert_string_equal(tr.tenant[0], "acme");
    assert_string_equal(tr.json[0], kt);
    assert_string_equal(tr.tenant[1], "default");
    assert_string_equal(tr.json[1], bt);

    assert_int_equal(last_seq(f, "default"), last);
    ms_err rc;
    struct json_object *o = asset(f, "default", "pg/db/s/t/a", false, &rc);
    assert_int_equal(rc, MS_OK);
    json_object_put(o);
    ms_apply_result r =
        apply1(f, "{\"op\":\"tag\",\"qualified_name\":\"pg/db/s/t\",\"tag\":\"after-reopen\"}");
    assert_applied(r);
    assert_int_equal(r.seq_first, last + 1);
    r = apply1t(f, "acme", "{\"op\":\"tag\",\"qualified_name\":\"k\",\"tag\":\"x\"}");
    assert_int_equal(r.seq_first, 2);
    chg_list l = {0};
    changes_of(f, "default", 0, 1000, &l);
    assert_int_equal(l.n, last + 1);
    for (size_t i = 0; i < l.n; i++)
        assert_int_equal(l.c[i].seq, i + 1);
    chg_list_free(&l);
    /* ids seen before the reopen are still duplicates */
    assert_applied(
        apply1(f, "{\"id\":\"once\",\"op\":\"tag\",\"qualified_name\":\"pg\",\"tag\":\"q\"}"));
    store_close(f);
    store_open(f);
    assert_int_equal(
        apply1(f, "{\"id\":\"once\",\"op\":\"untag\",\"qualified_name\":\"pg\",\"tag\":\"q\"}")
            .status,
        MS_APPLY_DUPLICATE);
    int nt = 0;
    assert_int_equal(ms_store_sqlite.tenants(f->ctx, tenant_count_cb, &nt, &err), MS_OK);
    assert_int_equal(nt, 2);
}

/* Tenant B sees nothing of tenant A: get, type, list, changes, history, orphans. Same qualified
 * names in two tenants are two assets. */
static void test_tenant_isolation(void **state)
{
    fixture *f = *state;
    make_tree(f);
    ms_err rc;
    assert_null(asset(f, "b", "pg/db/s/t/a", false, &rc));
    assert_int_equal(rc, MS_ERR_NOT_FOUND);
    assert_null(asset(f, "b", "pg/db/s/t/a", true, &rc));
    assert_int_equal(rc, MS_ERR_NOT_FOUND);
    char type[32];
    ms_error err;
    assert_int_equal(ms_store_sqlite.asset_type(f->ctx, "b", "pg", type, sizeof type, &err),
                     MS_ERR_NOT_FOUND);
    ms_asset_query q = {.tenant = "b", .orphan = -1, .limit = 100, .include_deleted = true};
    struct json_object *items = list(f, &q, NULL);
    assert_int_equal(json_object_array_length(items), 0);
    json_object_put(items);
    q.q = "customers";
    items = list(f, &q, NULL);
    assert_int_equal(json_object_array_length(items), 0);
    json_object_put(items);
    chg_list l = {0};
    changes_of(f, "b", 0, 100, &l);
    assert_int_equal(l.n, 0);
    history_of(f, "b", "pg", &l);
    assert_int_equal(l.n, 0);
    assert_int_equal(last_seq(f, "b"), 0);

    /* tenant B's operations on A's names do not touch A */
    assert_rejected(
        apply1t(f, "b", "{\"op\":\"patch\",\"qualified_name\":\"pg\",\"attributes\":{\"x\":1}}"),
        MS_ERR_NOT_FOUND);
    assert_rejected(apply1t(f, "b", "{\"op\":\"delete\",\"qualified_name\":\"pg\"}"),
                    MS_ERR_NOT_FOUND);
    /* B's own pg is a different asset, may even be another type, and B's column under a missing
     * table is B's orphan only */
    ms_apply_result r =
        apply1t(f, "b",
                "{\"op\":\"upsert\",\"type\":\"dashboard\",\"qualified_name\":\"pg\","
                "\"parent\":\"x\"}");
    assert_applied(r);
    assert_int_equal(r.seq_first, 1);
    assert_applied(
        apply1t(f, "b",
                "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/db/s/t/z\","
                "\"attributes\":{\"data_type\":\"int\"}}"));
    assert_int_equal(orphans(f, "b"), 2);
    assert_int_equal(orphans(f, "default"), 0);
    struct json_object *o = asset(f, "default", "pg", false, &rc);
    assert_string_equal(get_str(o, "type"), "connection");
    json_object_put(o);
    o = asset(f, "b", "pg", false, &rc);
    assert_string_equal(get_str(o, "type"), "dashboard");
    json_object_put(o);
    /* idempotency keys are per tenant */
    assert_applied(apply1t(
        f, "default", "{\"id\":\"same\",\"op\":\"tag\",\"qualified_name\":\"pg\",\"tag\":\"i\"}"));
    assert_applied(apply1t(
        f, "b", "{\"id\":\"same\",\"op\":\"tag\",\"qualified_name\":\"pg\",\"tag\":\"i\"}"));
    /* deleting B's asset leaves A's */
    assert_applied(apply1t(f, "b", "{\"op\":\"delete\",\"qualified_name\":\"pg\"}"));
    o = asset(f, "default", "pg", false, &rc);
    assert_int_equal(rc, MS_OK);
    json_object_put(o);
}

/* Counts how often needle occurs in hay. */
static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* link/unlink write lineage change records; lineage() walks edges both ways and cuts a cycle. */
static void test_link_lineage_cycle(void **state)
{
    fixture *f = *state;
    assert_applied(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"A\"}"));
    assert_applied(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"B\"}"));
    assert_applied(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"C\"}"));
    uint64_t base = last_seq(f, "default");

    /* A -> B -> C -> A */
    const char *j[] = {"{\"id\":\"l1\",\"op\":\"link\",\"from\":\"A\",\"to\":\"B\"}",
                       "{\"op\":\"link\",\"from\":\"B\",\"to\":\"C\"}",
                       "{\"op\":\"link\",\"from\":\"C\",\"to\":\"A\"}"};
    ms_apply_result r[3];
    ms_err rc = apply_n(f, NULL, j, 3, NOW1, r);
    assert_int_equal(rc, MS_OK);
    for (int i = 0; i < 3; i++)
        assert_applied(r[i]);
    assert_int_equal(r[0].seq_first, base + 1);
    assert_int_equal(r[2].seq_last, base + 3);
    /* linking again: unchanged */
    assert_int_equal(apply1(f, j[1]).status, MS_APPLY_UNCHANGED);

    chg_list l = {0};
    history_of(f, "default", "A", &l);
    assert_int_equal(l.n, 2); /* create + link */
    assert_string_equal(l.c[1].op, "link");
    assert_string_equal(l.c[1].changed, "[\"lineage\"]");
    assert_string_equal(l.c[1].cause, "l1");
    assert_null(l.c[1].before);
    struct json_object *e = parse(l.c[1].after);
    assert_string_equal(get_str(e, "from"), "A");
    assert_string_equal(get_str(e, "to"), "B");
    json_object_put(e);
    chg_list_free(&l);

    ms_buf out = MS_BUF_INIT;
    ms_error err;
    assert_int_equal(
        ms_store_sqlite.lineage(f->ctx, "default", "A", MS_LINEAGE_DOWNSTREAM, 10, &out, &err),
        MS_OK);
    struct json_object *lg = parse(out.data);
    assert_string_equal(get_str(lg, "root"), "A");
    assert_string_equal(get_str(lg, "direction"), "downstream");
    struct json_object *nodes = get(lg, "nodes"), *edges = get(lg, "edges");
    assert_non_null(nodes);
    assert_non_null(edges);
    int dist_b = -1, dist_c = -1, root_as_node = 0;
    for (size_t i = 0; i < json_object_array_length(nodes); i++) {
        struct json_object *n = json_object_array_get_idx(nodes, i);
        const char *qn = get_str(n, "qualified_name");
        int d = json_object_get_int(get(n, "distance"));
        if (strcmp(qn, "B") == 0) {
            dist_b = d;
            assert_string_equal(get_str(n, "type"), "connection");
        }
        if (strcmp(qn, "C") == 0) dist_c = d;
        if (strcmp(qn, "A") == 0) root_as_node++;
    }
    assert_int_equal(dist_b, 1);
    assert_int_equal(dist_c, 2);
    assert_int_equal(root_as_node, 0); /* the cycle is cut: the root is not its own node */
    assert_int_equal(json_object_array_length(nodes), 2);
    assert_int_equal(json_object_array_length(edges), 3);
    json_object_put(lg);

    /* both directions over the cycle: every edge listed once */
    ms_buf_reset(&out);
    assert_int_equal(
        ms_store_sqlite.lineage(f->ctx, "default", "A", MS_LINEAGE_BOTH, 10, &out, &err), MS_OK);
    int dup_edges = count_of(out.data, "{\"from\":\"A\",\"to\":\"B\"");
    /* depth limits the walk */
    ms_buf_reset(&out);
    assert_int_equal(
        ms_store_sqlite.lineage(f->ctx, "default", "A", MS_LINEAGE_DOWNSTREAM, 1, &out, &err),
        MS_OK);
    lg = parse(out.data);
    assert_int_equal(json_object_array_length(get(lg, "nodes")), 1);
    json_object_put(lg);

    /* edges do not bump versions */
    ms_err grc;
    struct json_object *ga = asset(f, "default", "A", false, &grc);
    assert_int_equal(json_object_get_int(get(ga, "version")), 1);
    json_object_put(ga);

    /* an edge from a name that is not an asset: type null, version 0; its nodes are typeless */
    ms_apply_result x =
        apply1(f, "{\"op\":\"link\",\"from\":\"nowhere/a\",\"to\":\"A\",\"via\":\"job\"}");
    assert_applied(x);
    l = (chg_list){0};
    changes_of(f, "default", x.seq_first - 1, 1, &l);
    assert_string_equal(l.c[0].qn, "nowhere/a");
    assert_false(l.c[0].has_type);
    assert_int_equal(l.c[0].version, 0);
    e = parse(l.c[0].after);
    assert_string_equal(get_str(e, "via"), "job");
    json_object_put(e);
    chg_list_free(&l);
    ms_buf_reset(&out);
    assert_int_equal(
        ms_store_sqlite.lineage(f->ctx, "default", "A", MS_LINEAGE_UPSTREAM, 1, &out, &err), MS_OK);
    lg = parse(out.data);
    nodes = get(lg, "nodes");
    bool saw_nowhere = false;
    for (size_t i = 0; i < json_object_array_length(nodes); i++) {
        struct json_object *n = json_object_array_get_idx(nodes, i);
        if (strcmp(get_str(n, "qualified_name"), "nowhere/a") == 0) {
            saw_nowhere = true;
            assert_null(get(n, "type"));
            assert_int_equal(json_object_get_int(get(n, "distance")), 1);
        }
    }
    assert_true(saw_nowhere);
    json_object_put(lg);
    /* unlink must name the same via */
    assert_int_equal(apply1(f, "{\"op\":\"unlink\",\"from\":\"nowhere/a\",\"to\":\"A\"}").status,
                     MS_APPLY_UNCHANGED);
    assert_applied(
        apply1(f, "{\"op\":\"unlink\",\"from\":\"nowhere/a\",\"to\":\"A\",\"via\":\"job\"}"));

    /* edges are kept when an asset is deleted; the node loses its type */
    assert_applied(apply1(f, "{\"op\":\"delete\",\"qualified_name\":\"B\"}"));
    ms_buf_reset(&out);
    assert_int_equal(
        ms_store_sqlite.lineage(f->ctx, "default", "A", MS_LINEAGE_DOWNSTREAM, 1, &out, &err),
        MS_OK);
    lg = parse(out.data);
    nodes = get(lg, "nodes");
    assert_int_equal(json_object_array_length(nodes), 1);
    assert_string_equal(get_str(json_object_array_get_idx(nodes, 0), "qualified_name"), "B");
    assert_null(get(json_object_array_get_idx(nodes, 0), "type"));
    json_object_put(lg);

    /* unlink */
    ms_apply_result u = apply1(f, "{\"op\":\"unlink\",\"from\":\"C\",\"to\":\"A\"}");
    assert_applied(u);
    l = (chg_list){0};
    changes_of(f, "default", u.seq_first - 1, 1, &l);
    assert_string_equal(l.c[0].op, "unlink");
    assert_null(l.c[0].after);
    assert_non_null(l.c[0].before);
    chg_list_free(&l);
    ms_buf_reset(&out);
    assert_int_equal(
        ms_store_sqlite.lineage(f->ctx, "default", "A", MS_LINEAGE_UPSTREAM, 10, &out, &err),
        MS_OK);
    lg = parse(out.data);
    assert_int_equal(json_object_array_length(get(lg, "nodes")), 0);
    json_object_put(lg);
    ms_buf_free(&out);

    /* With MS_LINEAGE_BOTH the upstream and downstream walks meet the cycle's edges twice; each
     * is listed once. */
    assert_int_equal(dup_edges, 1);
}

/* Runs in a forked child: opens its own store under dir, makes `loop` its own parent, deletes
 * it. Exit 0: the delete returned APPLIED; 1: another result; 2: setup failed. */
static void self_parent_child(const char *dir)
{
    alarm(8); /* a healthy delete takes milliseconds; never outlive the parent's patience */
    /* cap the address space so a runaway allocation ends the child instead of the host */
    FILE *st = fopen("/proc/self/status", "r");
    unsigned long long vm_kb = 0;
    char line[256];
    while (st && fgets(line, sizeof line, st))
        if (sscanf(line, "VmSize: %llu kB", &vm_kb) == 1) break;
    if (st) fclose(st);
    struct rlimit rl = {(rlim_t)(vm_kb + 256 * 1024) * 1024, (rlim_t)(vm_kb + 256 * 1024) * 1024};
    if (vm_kb) setrlimit(RLIMIT_AS, &rl);

    ms_config cfg;
    ms_config_defaults(&cfg);
    ms_error err;
    if (ms_config_set(&cfg, "data_dir", dir, "test", &err) != MS_OK) _exit(2);
    ms_types *types = ms_types_new();
    ms_store_open_args a = {.cfg = &cfg, .url = "sqlite", .types = types};
    void *ctx = NULL;
    if (ms_store_sqlite.open(&a, &ctx, &err) != MS_OK) _exit(2);
    /* A recursive custom type: loop is its own parent; a and b are each other's, c is b's. */
    const char *folder = "{\"name\":\"folder\",\"parents\":[\"folder\"]}";
    bool created = false;
    if (ms_types_register(types, "default", folder, strlen(folder), NULL, &created, &err) != MS_OK)
        _exit(2);
#define FOLDER(qn, parent)                                                                         \
    "{\"op\":\"upsert\",\"type\":\"folder\",\"qualified_name\":\"" qn "\",\"parent\":\"" parent    \
    "\"}"
    const char *j[] = {FOLDER("loop", "loop"),
                       FOLDER("a", "b"),
                       FOLDER("b", "a"),
                       FOLDER("c", "b"),
                       "{\"op\":\"delete\",\"qualified_name\":\"loop\"}",
                       "{\"op\":\"delete\",\"qualified_name\":\"a\"}"};
#undef FOLDER
    ms_decode_opts o = {.tenant = "default", .types = types};
    for (int i = 0; i < 6; i++) {
        ms_event *ev = NULL;
        if (ms_event_decode(j[i], strlen(j[i]), &o, &ev, &err) != MS_OK) _exit(2);
        ms_apply_result r;
        ms_error_clear(&err);
        unsigned long long t0 = ms_now_ms();
        ms_err rc = ms_store_sqlite.apply(ctx, &ev, 1, NOW1, &r, &err);
        if (rc != MS_OK) {
            fprintf(stderr, "child: %s failed after %llu ms: %s: %s\n",
                    i >= 4 ? "delete" : "upsert", ms_now_ms() - t0, ms_err_code(rc), err.detail);
            _exit(i >= 4 ? 1 : 3);
        }
        ms_event_free(ev);
        if (r.status != MS_APPLY_APPLIED) _exit(i >= 4 ? 4 : 3);
        if (i == 5 && r.seq_last - r.seq_first != 2) _exit(4); /* a, then b, then c */
    }
    ms_store_sqlite.close(ctx);
    ms_types_free(types);
    ms_config_free(&cfg);
    _exit(0);
}

/* An asset may name itself as parent (nothing forbids it and adoption then clears its orphan
 * flag); deleting it must still terminate. Run in a child process with a time and memory cap. */
static void test_delete_self_parent_terminates(void **state)
{
    fixture *f = *state;
    char dir[700];
    snprintf(dir, sizeof dir, "%s/child", f->dir);
    /* No thread may hold a lock across the fork (the fixture's store runs its search indexer;
     * under ASan a lock of its allocator left held hangs the child). */
    store_close(f);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) self_parent_child(dir);
    int status = 0;
    pid_t got = 0;
    for (int i = 0; i < 1500 && got == 0; i++) { /* up to 15 s */
        got = waitpid(pid, &status, WNOHANG);
        if (got == 0) ms_test_poll_pause(10);
    }
    bool hung = got == 0;
    if (hung) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    store_open(f);
    bool ok = !hung && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    assert_false(!hung && WIFEXITED(status) &&
                 (WEXITSTATUS(status) == 2 || WEXITSTATUS(status) == 3)); /* setup worked */
    /* The descendant walk of do_delete never steps back onto the deleted asset: a parent loop
     * always passes through it, so the walk ends (it once ran out of memory here). */
    if (!ok)
        fail_msg("deleting into a parent loop does not terminate (%s)",
                 hung                       ? "timed out"
                 : WIFSIGNALED(status)      ? strsignal(WTERMSIG(status))
                 : WEXITSTATUS(status) == 1 ? "store_error after exhausting memory"
                                            : "wrong result");
}

/* ---- control-plane records (ms_store.h version 2) ---------------------------------------------
 */

typedef struct ctl_rows {
    size_t n, stop_after;
    char tenant[8][32], key[8][64], json[8][128];
} ctl_rows;

static int ctl_cb(void *ud, const char *tenant, const char *key, const char *json)
{
    ctl_rows *r = ud;
    if (r->n < 8) {
        snprintf(r->tenant[r->n], sizeof r->tenant[0], "%s", tenant);
        snprintf(r->key[r->n], sizeof r->key[0], "%s", key);
        snprintf(r->json[r->n], sizeof r->json[0], "%s", json);
    }
    r->n++;
    return r->stop_after && r->n >= r->stop_after;
}

static ctl_rows ctl_list(fixture *f, const char *tenant, const char *kind, size_t stop_after)
{
    ctl_rows r;
    memset(&r, 0, sizeof r);
    r.stop_after = stop_after;
    ms_error err;
    assert_int_equal(ms_store_sqlite.ctl_list(f->ctx, tenant, kind, ctl_cb, &r, &err), MS_OK);
    return r;
}

/* put replaces, NULL deletes, add only adds, list is per kind, ordered by tenant then key, filtered
 * by tenant, stops when the callback asks, and everything survives a reopen. */
static void test_ctl_put_list_reopen(void **state)
{
    fixture *f = *state;
    ms_error err;
    assert_int_equal(ms_store_sqlite.version, MS_STORE_OPS_VERSION);
    assert_int_equal(ctl_list(f, NULL, "registry.schema", 0).n, 0);
    assert_int_equal(
        ms_store_sqlite.ctl_put(f->ctx, "default", "registry.schema", "2", "{\"id\":2}", &err),
        MS_OK);
    assert_int_equal(
        ms_store_sqlite.ctl_put(f->ctx, "default", "registry.schema", "1", "{\"id\":1}", &err),
        MS_OK);
    assert_int_equal(
        ms_store_sqlite.ctl_put(f->ctx, "acme", "registry.schema", "9", "{\"id\":9}", &err), MS_OK);
    assert_int_equal(
        ms_store_sqlite.ctl_put(f->ctx, "default", "registry.config", "", "{\"c\":1}", &err),
        MS_OK);
    assert_int_equal(ms_store_sqlite.ctl_put(f->ctx, "default", "registry.schema", "1",
                                             "{\"id\":1,\"v\":2}", &err),
                     MS_OK);

    /* add stores only a new key: an existing record is left as it is. */
    bool added = true;
    assert_int_equal(ms_store_sqlite.ctl_add(f->ctx, "default", "registry.schema", "1",
                                             "{\"id\":1,\"other\":true}", &added, &err),
                     MS_OK);
    assert_false(added);
    assert_int_equal(ms_store_sqlite.ctl_add(f->ctx, "default", "registry.version", "s/1",
                                             "{\"v\":1}", &added, &err),
                     MS_OK);
    assert_true(added);
    assert_int_equal(ctl_list(f, "default", "registry.version", 0).n, 1);

    ctl_rows r = ctl_list(f, NULL, "registry.schema", 0);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.tenant[0], "acme");
    assert_string_equal(r.key[0], "9");
    assert_string_equal(r.tenant[1], "default");
    assert_string_equal(r.key[1], "1");
    assert_string_equal(r.json[1], "{\"id\":1,\"v\":2}");
    assert_string_equal(r.key[2], "2");
    r = ctl_list(f, "default", "registry.schema", 0);
    assert_int_equal(r.n, 2);
    r = ctl_list(f, NULL, "registry.schema", 1);
    assert_int_equal(r.n, 1);
    r = ctl_list(f, "default", "registry.config", 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.key[0], "");

    assert_int_equal(ms_store_sqlite.ctl_put(f->ctx, "default", "registry.schema", "2", NULL, &err),
                     MS_OK);
    assert_int_equal(
        ms_store_sqlite.ctl_put(f->ctx, "default", "registry.schema", "nope", NULL, &err), MS_OK);

    store_close(f);
    store_open(f);
    r = ctl_list(f, NULL, "registry.schema", 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.key[0], "9");
    assert_string_equal(r.key[1], "1");
    assert_string_equal(r.json[1], "{\"id\":1,\"v\":2}");
    assert_int_equal(ctl_list(f, NULL, "other", 0).n, 0);
}

/* A database of schema version 1 (before ctl existed) is migrated on open. */
static void test_ctl_migrates_v1(void **state)
{
    fixture *f = *state;
    store_close(f);
    char path[700];
    snprintf(path, sizeof path, "%s/data/metasync.db", f->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DROP TABLE ctl; UPDATE meta SET value='1' "
                                  "WHERE key='schema_version'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    store_open(f);
    ms_error err;
    assert_int_equal(ms_store_sqlite.ctl_put(f->ctx, "default", "k", "a", "{}", &err), MS_OK);
    assert_int_equal(ctl_list(f, "default", "k", 0).n, 1);
    store_close(f);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key='schema_version'", -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "5");
    sqlite3_finalize(st);
    sqlite3_close(db);
    store_open(f);
}

/* Reads one text value of the store's file at path (SQL returning one row), into out. */
static void db_text(const char *path, const char *sql, char *out, size_t n)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* A database as schema 3 left it (full history and type indexes, a full-text index with
 * positions, no assets.first_seq) is upgraded to schema 5 on open: history still starts with each
 * asset's create, ?type= and search still find what they found, and new writes go on. */
static void test_schema3_upgraded(void **state)
{
    fixture *f = *state;
    const char *evs[] = {
        "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg\"}",
        "{\"op\":\"upsert\",\"type\":\"database\",\"qualified_name\":\"pg/db\","
        "\"parent\":\"pg\"}",
        "{\"op\":\"upsert\",\"type\":\"schema\",\"qualified_name\":\"pg/db/s\","
        "\"parent\":\"pg/db\"}",
        "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"pg/db/s/orders\","
        "\"parent\":\"pg/db/s\",\"attributes\":{\"description\":\"customer orders\"}}",
        "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/db/s/orders/amount\","
        "\"parent\":\"pg/db/s/orders\",\"attributes\":{\"data_type\":\"int\"}}",
        "{\"op\":\"patch\",\"qualified_name\":\"pg/db/s/orders\","
        "\"attributes\":{\"owner\":\"finance\"}}"};
    ms_apply_result res[6];
    assert_int_equal(apply_n(f, NULL, evs, 6, NOW1, res), MS_OK);
    store_close(f);
    char path[800], search[800], v[64];
    snprintf(path, sizeof path, "%s/data/metasync.db", f->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "ALTER TABLE assets DROP COLUMN first_seq;"
                     "DROP INDEX changes_hist; DROP INDEX assets_type_fast;"
                     "CREATE INDEX changes_qn ON changes(tenant, qn, seq);"
                     "CREATE INDEX assets_type ON assets(tenant, type, qn);"
                     "DROP TRIGGER assets_search_ad; DROP TRIGGER assets_search_au;"
                     "DROP TABLE fts_log; DELETE FROM meta WHERE key = 'search_token';"
                     "CREATE VIRTUAL TABLE assets_fts USING fts5(name, qn, description,"
                     " content='assets', content_rowid='id');"
                     "INSERT INTO assets_fts(assets_fts) VALUES('rebuild');"
                     "INSERT INTO meta(key, value) SELECT 'fts_indexed_id', max(id) FROM assets;"
                     "CREATE TRIGGER assets_fts_ad2 AFTER DELETE ON assets BEGIN"
                     " INSERT INTO assets_fts(assets_fts, rowid, name, qn, description)"
                     " VALUES ('delete', old.id, old.name, old.qn, old.description); END;"
                     "UPDATE meta SET value='3' WHERE key='schema_version'",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    snprintf(search, sizeof search, "%s/data/metasync-search.db", f->dir);
    assert_int_equal(unlink(search), 0);

    store_open(f);
    db_text(path, "SELECT value FROM meta WHERE key='schema_version'", v, sizeof v);
    assert_string_equal(v, "5");
    db_text(path, "SELECT count(*) FROM sqlite_master WHERE name IN ('changes_qn', 'assets_type')",
            v, sizeof v);
    assert_string_equal(v, "0");
    /* schema 5: the full-text index is in the search database, built there from the store */
    db_text(path, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'assets_fts%'", v, sizeof v);
    assert_string_equal(v, "0");
    chg_list h = {0};
    history_of(f, "default", "pg/db/s/orders", &h);
    assert_int_equal(h.n, 2);
    assert_string_equal(h.c[0].op, "create");
    assert_string_equal(h.c[1].op, "update");
    chg_list_free(&h);
    assert_int_equal(search_count(f, "orders"), 2);
    assert_int_equal(search_count(f, "custom"), 1);
    ms_asset_query tq = {.tenant = "default", .type = "table", .orphan = -1, .limit = 10};
    struct json_object *items = list(f, &tq, NULL);
    assert_int_equal(json_object_array_length(items), 1);
    json_object_put(items);
    tq.type = "column";
    items = list(f, &tq, NULL);
    assert_true(list_has(items, "pg/db/s/orders/amount"));
    json_object_put(items);
    /* writes go on, and the new asset has its own first create */
    assert_applied(apply1(f, "{\"op\":\"upsert\",\"type\":\"view\","
                             "\"qualified_name\":\"pg/db/s/orders_v\",\"parent\":\"pg/db/s\"}"));
    history_of(f, "default", "pg/db/s/orders_v", &h);
    assert_int_equal(h.n, 1);
    assert_string_equal(h.c[0].op, "create");
    chg_list_free(&h);
    assert_int_equal(search_count(f, "orders"), 3);
    fts_integrity(f);
}

/* History after re-creates: a deleted asset created again keeps one history, its first create
 * (through first_seq) then every later version. */
static void test_history_recreated(void **state)
{
    fixture *f = *state;
    assert_applied(apply1(f, "{\"op\":\"upsert\",\"type\":\"connection\","
                             "\"qualified_name\":\"c\"}"));
    assert_applied(apply1(f, "{\"op\":\"delete\",\"qualified_name\":\"c\"}"));
    assert_applied(apply1(f, "{\"op\":\"upsert\",\"type\":\"connection\","
                             "\"qualified_name\":\"c\",\"name\":\"again\"}"));
    assert_applied(apply1(f, "{\"op\":\"tag\",\"qualified_name\":\"c\",\"tag\":\"PII\"}"));
    chg_list h = {0};
    history_of(f, "default", "c", &h);
    assert_int_equal(h.n, 4);
    const char *ops[] = {"create", "delete", "create", "tag"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(h.c[i].op, ops[i]);
        if (i) assert_true(h.c[i].seq > h.c[i - 1].seq);
    }
    assert_int_equal(h.c[0].version, 1);
    assert_true(h.c[2].version > 1);
    chg_list_free(&h);
}

/* Insert-first (ms_sa_args.creating): once an upsert has created its asset, the next one tries
 * an INSERT before any lookup. Every upsert that meets an existing row must come out as on the
 * lookup path: unchanged, updated, re-created, or refused with the code the lookup path gives. */
static void test_insert_first_falls_back(void **state)
{
    fixture *f = *state;
    make_tree(f); /* ends with creates: the writer is in its insert-first streak */
    uint64_t base = last_seq(f, "default");
    const char *col_b = "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":"
                        "\"pg/db/s/t/b\",\"attributes\":{\"data_type\":\"text\"}}";
    const char *fresh = "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":"
                        "\"pg/db/s/t/n%d\",\"attributes\":{\"data_type\":\"int\"}}";
    char ev[256];
    /* an identical upsert right after a create: unchanged, no record */
    snprintf(ev, sizeof ev, fresh, 1);
    assert_applied(apply1(f, ev));
    base = last_seq(f, "default");
    assert_int_equal(apply1(f, col_b).status, MS_APPLY_UNCHANGED);
    assert_int_equal(last_seq(f, "default"), base);
    /* an update right after a create: version 2, an "update" record */
    snprintf(ev, sizeof ev, fresh, 2);
    assert_applied(apply1(f, ev));
    assert_applied(apply1(f, "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":"
                             "\"pg/db/s/t/n1\",\"attributes\":{\"data_type\":\"bigint\"}}"));
    ms_err rc;
    struct json_object *o = asset(f, "default", "pg/db/s/t/n1", false, &rc);
    assert_int_equal(json_object_get_int(get(o, "version")), 2);
    json_object_put(o);
    /* a type conflict whose parent would also be refused: the lookup path's code */
    snprintf(ev, sizeof ev, fresh, 3);
    assert_applied(apply1(f, ev));
    assert_rejected(apply1(f, "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":"
                              "\"pg/db/s/t/n2\"}"),
                    MS_ERR_TYPE_CONFLICT);
    /* a re-create of a deleted asset in the streak: its row exists, so the lookup path
     * re-creates it with a version above the old one and a "create" record */
    assert_applied(apply1(f, "{\"op\":\"delete\",\"qualified_name\":\"pg/db/s/t/n3\"}"));
    snprintf(ev, sizeof ev, fresh, 4);
    assert_applied(apply1(f, ev));
    snprintf(ev, sizeof ev, fresh, 3);
    ms_apply_result r = apply1(f, ev);
    assert_applied(r);
    o = asset(f, "default", "pg/db/s/t/n3", false, &rc);
    assert_int_equal(json_object_get_int(get(o, "version")), 3);
    json_object_put(o);
    chg_list h = {0};
    history_of(f, "default", "pg/db/s/t/n3", &h);
    assert_int_equal(h.n, 3);
    assert_string_equal(h.c[2].op, "create");
    assert_int_equal(h.c[0].version, 1);
    chg_list_free(&h);
    /* if_version on a new asset skips insert-first and is still checked */
    assert_rejected(apply1(f, "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":"
                              "\"pg/db/s/t/n5\",\"if_version\":1,"
                              "\"attributes\":{\"data_type\":\"int\"}}"),
                    MS_ERR_VERSION_CONFLICT);
    /* a refused parent in the streak, then creates go on (orphans counted once each) */
    assert_rejected(apply1(f, "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":"
                              "\"pg/t9\"}"),
                    MS_ERR_INVALID_PARENT);
    assert_applied(apply1(f, "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":"
                             "\"x/y/c\",\"attributes\":{\"data_type\":\"int\"}}"));
    ms_store_stats st = {0};
    assert_int_equal(ms_store_sqlite.stats(f->ctx, "default", &st, &(ms_error){0}), MS_OK);
    assert_int_equal(st.orphans, 1);
}

/* Deferred durability: a commit of apply_deferred can be read at once, but its change records
 * reach changes() and last_seq() only once sync() has made it durable (one sync covers every
 * commit before it); a tenant first written by an unsynced commit shows nothing yet either. */
static void test_deferred_sync(void **state)
{
    fixture *f = *state;
    store_close(f); /* the fixture runs at synchronous=normal, where nothing waits for a sync */
    ms_error cerr;
    assert_int_equal(ms_config_set(&f->cfg, "store.synchronous", "full", "test", &cerr), MS_OK);
    store_open(f);
    make_tree(f);
    uint64_t base = last_seq(f, "default");
    const char *j[] = {
        "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"d1\"}",
        "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"d2\"}",
    };
    const char *tenants[] = {"default", "other"};
    uint64_t tok[2] = {0, 0};
    for (size_t i = 0; i < 2; i++) {
        ms_event *ev = decode(f, tenants[i], j[i]);
        ms_apply_result r;
        ms_error err;
        ms_error_clear(&err);
        assert_int_equal(
            ms_store_sqlite.apply_deferred(f->ctx, &ev, 1, NOW1, NULL, 0, &r, &tok[i], &err),
            MS_OK);
        assert_applied(r);
        ms_event_free(ev);
    }
    assert_true(tok[1] > tok[0]);
    /* readable, but not in the change log's durable view */
    ms_err rc;
    struct json_object *o = asset(f, "default", "d1", false, &rc);
    assert_int_equal(rc, MS_OK);
    json_object_put(o);
    assert_int_equal(last_seq(f, "default"), base);
    assert_int_equal(last_seq(f, "other"), 0);
    chg_list l = {0};
    changes_of(f, "default", base, 100, &l);
    assert_int_equal(l.n, 0);
    changes_of(f, "other", 0, 100, &l);
    assert_int_equal(l.n, 0);
    /* one sync of the later token covers both */
    ms_error err;
    ms_error_clear(&err);
    assert_int_equal(ms_store_sqlite.sync(f->ctx, tok[1], &err), MS_OK);
    assert_int_equal(ms_store_sqlite.sync(f->ctx, tok[0], &err), MS_OK);
    assert_int_equal(last_seq(f, "default"), base + 1);
    assert_int_equal(last_seq(f, "other"), 1);
    changes_of(f, "default", base, 100, &l);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.c[0].qn, "d1");
    chg_list_free(&l);
    /* apply() is durable on return */
    assert_applied(apply1(f, "{\"op\":\"upsert\",\"type\":\"connection\","
                             "\"qualified_name\":\"d3\"}"));
    assert_int_equal(last_seq(f, "default"), base + 2);
}

/* The writer remembers parent lookups and whether any row is an orphan inside a batch: what it
 * remembers must follow the batch's own writes (a parent deleted, re-created as another type; an
 * orphan created and adopted in the same batch; tags of a row created and updated in it). */
static void test_writer_memory_in_one_batch(void **state)
{
    fixture *f = *state;
    const char *j[] = {
        "{\"op\":\"upsert\",\"type\":\"connection\",\"qualified_name\":\"pg\"}",
        "{\"op\":\"upsert\",\"type\":\"database\",\"qualified_name\":\"pg/db\"}",
        "{\"op\":\"upsert\",\"type\":\"schema\",\"qualified_name\":\"pg/db/s\"}",
        "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"pg/db/s/t\"}",
        /* 4: the parent is known from the row just saved */
        "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/db/s/t/a\","
        "\"attributes\":{\"data_type\":\"int\"},\"tags\":[\"PII\"]}",
        /* 5: the same row again in the batch: its tags are replaced, not added to */
        "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/db/s/t/a\","
        "\"attributes\":{\"data_type\":\"int\"},\"tags\":[\"GDPR\"]}",
        /* 6: deleting the table (and a) makes the next child an orphan */
        "{\"op\":\"delete\",\"qualified_name\":\"pg/db/s/t\"}",
        "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/db/s/t/b\","
        "\"attributes\":{\"data_type\":\"int\"}}",
        /* 8: re-created as a view, which adopts b */
        "{\"op\":\"upsert\",\"type\":\"view\",\"qualified_name\":\"pg/db/s/t\"}",
        /* 9: a dashboard known to the writer, re-created as a database: no bi_field inside */
        "{\"op\":\"upsert\",\"type\":\"dashboard\",\"qualified_name\":\"pg/d\"}",
        "{\"op\":\"upsert\",\"type\":\"bi_field\",\"qualified_name\":\"pg/d/f\"}",
        "{\"op\":\"delete\",\"qualified_name\":\"pg/d\"}",
        "{\"op\":\"upsert\",\"type\":\"database\",\"qualified_name\":\"pg/d\"}",
        "{\"op\":\"upsert\",\"type\":\"bi_field\",\"qualified_name\":\"pg/d/g\"}",
    };
    size_t n = sizeof j / sizeof *j;
    ms_apply_result r[14];
    assert_int_equal(apply_n(f, NULL, j, n, NOW1, r), MS_OK);
    for (size_t i = 0; i < 13; i++)
        assert_applied(r[i]);
    ms_err rc;
    struct json_object *o = asset(f, "default", "pg/db/s/t/a", true, &rc);
    struct json_object *tags = get(o, "tags");
    assert_int_equal(json_object_array_length(tags), 1);
    assert_string_equal(get_str(json_object_array_get_idx(tags, 0), "name"), "GDPR");
    assert_true(json_object_get_boolean(get(o, "deleted")));
    json_object_put(o);
    chg_list h = {0}; /* b came while t was deleted... */
    history_of(f, "default", "pg/db/s/t/b", &h);
    assert_int_equal(h.n, 1);
    assert_non_null(strstr(h.c[0].after, "\"orphan\":true"));
    chg_list_free(&h);
    o = asset(f, "default", "pg/db/s/t/b", false, &rc);
    assert_false(json_object_get_boolean(get(o, "orphan"))); /* ...and the view adopted it */
    json_object_put(o);
    assert_int_equal(orphans(f, "default"), 0);
    assert_rejected(r[13], MS_ERR_INVALID_PARENT);
}

/* Whether adoption can find anything is read from the database when a store opens: an orphan
 * left by an earlier process is adopted when its parent comes. */
/* The writer skips adoption for a new asset that no orphan waits for, by the set of parents
 * that rows with orphan=1 name. Checked where the set must be right: a deleted orphan (adoption
 * clears its flag too), a parent re-created after adopting, a parent whose orphans moved away,
 * and past the set's size limit (SQ_NAMESET_MAX parents), before and after a reopen. */
static void test_adoption_waiting_set(void **state)
{
    fixture *f = *state;
    ms_err rc;
    /* a deleted orphan is adopted too (as the UPDATE has always done) */
    assert_applied(apply1(f, "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":"
                             "\"w/t/gone\",\"attributes\":{\"data_type\":\"int\"}}"));
    assert_applied(apply1(f, "{\"op\":\"delete\",\"qualified_name\":\"w/t/gone\"}"));
    assert_applied(apply1(f, "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":"
                             "\"w/t\"}"));
    struct json_object *o = asset(f, "default", "w/t/gone", true, &rc);
    assert_false(json_object_get_boolean(get(o, "orphan")));
    json_object_put(o);
    /* an orphan whose parent was adopted once, deleted and re-created: adopted again */
    assert_applied(apply1(f, "{\"op\":\"delete\",\"qualified_name\":\"w/t\"}"));
    assert_applied(apply1(f, "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":"
                             "\"w/t/again\",\"attributes\":{\"data_type\":\"int\"}}"));
    assert_applied(apply1(f, "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":"
                             "\"w/t\"}"));
    o = asset(f, "default", "w/t/again", false, &rc);
    assert_false(json_object_get_boolean(get(o, "orphan")));
    json_object_put(o);
    int64_t base = orphans(f, "default"); /* w/t itself: w does not exist */

    /* more waiting parents than the set holds */
    enum { N = 50000 + 10, B = 2000 };
    char(*js)[160] = calloc(B, sizeof *js);
    const char **jp = calloc(B, sizeof *jp);
    ms_apply_result *r = calloc(B, sizeof *r);
    assert_true(js && jp && r);
    for (int k = 0; k < N; k += B) {
        int m = N - k < B ? N - k : B;
        for (int i = 0; i < m; i++) {
            snprintf(js[i], sizeof js[i],
                     "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":"
                     "\"m/t%d/c\",\"attributes\":{\"data_type\":\"int\"}}",
                     k + i);
            jp[i] = js[i];
        }
        assert_int_equal(apply_n(f, NULL, jp, (size_t)m, NOW1, r), MS_OK);
    }
    free(js);
    free(jp);
    free(r);
    assert_int_equal(orphans(f, "default"), base + N);
    assert_applied(apply1(f, "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":"
                             "\"m/t5\"}"));
    o = asset(f, "default", "m/t5/c", false, &rc);
    assert_false(json_object_get_boolean(get(o, "orphan")));
    json_object_put(o);
    assert_int_equal(orphans(f, "default"), base + N); /* -1 adopted, +1 the table */
    store_close(f);
    store_open(f);
    assert_applied(apply1(f, "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":"
                             "\"m/t7\"}"));
    o = asset(f, "default", "m/t7/c", false, &rc);
    assert_false(json_object_get_boolean(get(o, "orphan")));
    json_object_put(o);
    assert_int_equal(orphans(f, "default"), base + N);
}

static void test_orphan_adopted_after_reopen(void **state)
{
    fixture *f = *state;
    assert_applied(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":\"pg/db/s/t/a\","
                  "\"attributes\":{\"data_type\":\"int\"}}"));
    store_close(f);
    store_open(f);
    assert_int_equal(orphans(f, "default"), 1);
    assert_applied(
        apply1(f, "{\"op\":\"upsert\",\"type\":\"table\",\"qualified_name\":\"pg/db/s/t\"}"));
    ms_err rc;
    struct json_object *o = asset(f, "default", "pg/db/s/t/a", false, &rc);
    assert_false(json_object_get_boolean(get(o, "orphan")));
    json_object_put(o);
    assert_int_equal(orphans(f, "default"), 1); /* the table: pg/db/s does not exist */
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* The WAL is checkpointed by the store's own thread, and the writer keeps it bounded: once it
 * holds store.wal_max_bytes (32 MiB here) the writer waits for a checkpoint and the WAL starts
 * over, so it never holds much more than that plus a commit or two, however much is written. */
static void test_wal_bounded(void **state)
{
    fixture *f = *state;
    enum { COMMITS = 40, PER = 500, FRAME = 4096 + 24, MAX = (32 << 20) / FRAME };
    ms_error err;
    store_close(f);
    assert_int_equal(ms_config_set(&f->cfg, "store.wal_max_bytes", "32MiB", "test", &err), MS_OK);
    store_open(f);
    char wal[700];
    snprintf(wal, sizeof wal, "%s/data/metasync.db-wal", f->dir);
    char *blob = malloc(3001);
    assert_non_null(blob);
    memset(blob, 'x', 3000);
    blob[3000] = '\0';
    char **j = calloc(PER, sizeof *j);
    ms_apply_result *r = calloc(PER, sizeof *r);
    assert_true(j && r);
    off_t first = 0, most = 0;
    for (int c = 0; c < COMMITS; c++) {
        for (int i = 0; i < PER; i++) {
            free(j[i]);
            assert_true(asprintf(&j[i],
                                 "{\"op\":\"upsert\",\"type\":\"column\",\"qualified_name\":"
                                 "\"t/c%d_%d\",\"attributes\":{\"data_type\":\"int\",\"blob\":"
                                 "\"%s\"}}",
                                 c, i, blob) > 0);
        }
        assert_int_equal(apply_n(f, NULL, (const char *const *)j, PER, NOW1, r), MS_OK);
        for (int i = 0; i < PER; i++)
            assert_applied(r[i]);
        off_t sz = file_size(wal);
        if (!first) first = sz; /* one commit's frames */
        if (sz > most) most = sz;
    }
    /* Unbounded, the WAL would hold every commit: COMMITS × first. */
    assert_true(first > 0 && (off_t)COMMITS * first > (MAX + 3 * first / FRAME) * FRAME);
    if (most > (MAX + 3 * first / FRAME) * FRAME)
        print_error("WAL reached %lld bytes (one commit: %lld)\n", (long long)most,
                    (long long)first);
    assert_true(most <= (MAX + 3 * first / FRAME) * FRAME);
    ms_asset_query q = {.tenant = "default", .type = "column", .orphan = -1, .limit = 10};
    struct json_object *items = list(f, &q, NULL);
    assert_int_equal(json_object_array_length(items), 10);
    json_object_put(items);
    for (int i = 0; i < PER; i++)
        free(j[i]);
    free(j);
    free(r);
    free(blob);
}

/* Source positions: written in the batch's transaction, persisted across reopen. */
static void test_source_offsets(void **state)
{
    fixture *f = *state;
    check_source_offsets(&ms_store_sqlite, f->ctx, f->types, "default", "g");
    store_close(f);
    store_open(f);
    int64_t next[3];
    offsets_read(&ms_store_sqlite, f->ctx, "g", "t", next);
    assert_int_equal(next[0], 14);
    assert_int_equal(next[1], 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_fresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upsert_create_and_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_outcomes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_mixed_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_with_children, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seqs_per_tenant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_asset_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orphans_adopted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_follows_the_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_rebuilt_when_it_does_not_match, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_create_changed_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursors_types_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenant_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_lineage_cycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_self_parent_terminates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ctl_put_list_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ctl_migrates_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema3_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_recreated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_first_falls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_memory_in_one_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orphan_adopted_after_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adoption_waiting_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_source_offsets, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
