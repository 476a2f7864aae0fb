/*
 * control.c — the control plane's records and routes: tenants, API keys, connections, users
 * (ms_control.h has the contract, docs/api.md the routes, docs/model.md the stored shapes).
 *
 * A request body is parsed, checked field by field against a table of the entity's fields
 * (unknown, missing, wrong type, too long, bad value: each error names the field and never
 * quotes a value), merged into the stored record, and written with one ctl_put. Answers are the
 * record's public view: the private members (an API key's salt and hash, a connection's
 * credentials) are never copied into it.
 */
#include "ms_control.h"

#include "ms_event.h"
#include "ms_json.h"

#include <openssl/crypto.h>

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIND_TENANT      "tenant"
#define KIND_APIKEY      "apikey"
#define KIND_APIKEY_USED "apikey_used" /* {"last_used_at":…}: never rewrites the key record */
#define KIND_CONNECTION  "connection"
#define KIND_USER        "user"
#define DEFAULT_TENANT   "default"
#define MAX_CREDENTIALS  8192 /* bytes of the credentials object as JSON */

struct ms_control {
    const ms_log *log;
    const ms_store_ops *store;
    void *store_ctx;
    bool has_key;
    unsigned char key[MS_CONTROL_KEY_BYTES];
    pthread_mutex_t mu; /* orders read-modify-writes of this process (creates, revokes); across
                         * processes a create is guarded by the store (rec_add) */
};

/* ---- open / free ---------------------------------------------------------------------------- */

ms_err ms_control_open(const ms_control_args *a, ms_control **out, ms_error *err)
{
    ms_control *c = ms_xcalloc(1, sizeof *c);
    c->log = a->log;
    c->store = a->store;
    c->store_ctx = a->store_ctx;
    pthread_mutex_init(&c->mu, NULL);
    const char *kf = a->cfg ? a->cfg->secrets_key_file : NULL;
    if (kf && *kf) {
        FILE *f = fopen(kf, "r");
        char text[200] = "";
        size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
        text[n] = '\0';
        if (f) fclose(f);
        c->has_key = f && ms_control_parse_key(text, c->key);
        OPENSSL_cleanse(text, sizeof text);
        if (!c->has_key) {
            ms_control_free(c);
            return ms_error_set(err, MS_ERR_CONFIG,
                                "secrets.key_file: %s is not readable or does not hold 64 hex "
                                "digits (create one with `openssl rand -hex 32`)",
                                kf);
        }
    } else if (a->log) {
        ms_log_warn(a->log, "secrets: no secrets.key_file configured: connection credentials are "
                            "stored unencrypted in the store");
    }
    *out = c;
    return MS_OK;
}

void ms_control_free(ms_control *c)
{
    if (!c) return;
    OPENSSL_cleanse(c->key, sizeof c->key);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* ---- records -------------------------------------------------------------------------------- */

typedef struct rec_find {
    const char *key;
    struct json_object *found; /* new reference */
    char tenant[128];
} rec_find;

static int find_cb(void *ud, const char *tenant, const char *key, const char *json)
{
    rec_find *f = ud;
    if (strcmp(key, f->key) != 0) return 0;
    f->found = ms_json_parse(json, strlen(json), 0, NULL, NULL);
    snprintf(f->tenant, sizeof f->tenant, "%s", tenant);
    return 1;
}

/* The record (tenant, kind, key) as a new object, or NULL (with MS_OK) when absent. tenant NULL
 * searches every tenant; then found_tenant (may be NULL) receives the record's tenant. */
static ms_err rec_get(ms_control *c, const char *tenant, const char *kind, const char *key,
                      struct json_object **out, char *found_tenant, size_t ftlen, ms_error *err)
{
    rec_find f = {key, NULL, ""};
    ms_err rc = c->store->ctl_list(c->store_ctx, tenant, kind, find_cb, &f, err);
    if (rc != MS_OK) {
        json_object_put(f.found);
        return rc;
    }
    if (found_tenant) snprintf(found_tenant, ftlen, "%s", f.tenant);
    *out = f.found;
    return MS_OK;
}

static ms_err rec_put(ms_control *c, const char *tenant, const char *kind, const char *key,
                      struct json_object *o, ms_error *err)
{
    ms_buf b = MS_BUF_INIT;
    if (o) ms_json_canonical(o, &b);
    ms_err rc = c->store->ctl_put(c->store_ctx, tenant, kind, key, o ? ms_buf_cstr(&b) : NULL, err);
    if (b.data) OPENSSL_cleanse(b.data, b.len);
    ms_buf_free(&b);
    return rc;
}

/*
 * Adds (tenant, kind, key) only if no record has that key: with ms_store_ops version >= 4 the
 * store decides (ctl_add), so two workers creating one name cannot both succeed; an older store
 * has one process and c->mu (held by the caller) orders the creates. MS_ERR_ALREADY_EXISTS with
 * "<what> exists" when the key is taken.
 */
static ms_err rec_add(ms_control *c, const char *tenant, const char *kind, const char *key,
                      struct json_object *o, const char *what, ms_error *err)
{
    if (c->store->version < 4 || !c->store->ctl_add) return rec_put(c, tenant, kind, key, o, err);
    ms_buf b = MS_BUF_INIT;
    ms_json_canonical(o, &b);
    bool added = false;
    ms_err rc = c->store->ctl_add(c->store_ctx, tenant, kind, key, ms_buf_cstr(&b), &added, err);
    OPENSSL_cleanse(b.data, b.len);
    ms_buf_free(&b);
    if (rc == MS_OK && !added) rc = ms_error_set(err, MS_ERR_ALREADY_EXISTS, "%s exists", what);
    return rc;
}

typedef struct rec_all {
    struct json_object *arr; /* of {"tenant":…, "key":…, "rec":…} or records */
    bool wrap;
} rec_all;

static int all_cb(void *ud, const char *tenant, const char *key, const char *json)
{
    rec_all *a = ud;
    struct json_object *o = ms_json_parse(json, strlen(json), 0, NULL, NULL);
    if (!o) return 0;
    if (a->wrap) {
        struct json_object *w = json_object_new_object();
        json_object_object_add(w, "tenant", json_object_new_string(tenant));
        json_object_object_add(w, "key", json_object_new_string(key));
        json_object_object_add(w, "rec", o);
        o = w;
    }
    json_object_array_add(a->arr, o);
    return 0;
}

/* Every record of kind of tenant (NULL: of every tenant) into a new array *arr: the records, or
 * with wrap {"tenant":…,"key":…,"rec":…} for each. */
static ms_err rec_list(ms_control *c, const char *tenant, const char *kind, bool wrap,
                       struct json_object **arr, ms_error *err)
{
    rec_all a = {json_object_new_array(), wrap};
    ms_err rc = c->store->ctl_list(c->store_ctx, tenant, kind, all_cb, &a, err);
    if (rc != MS_OK) {
        json_object_put(a.arr);
        return rc;
    }
    *arr = a.arr;
    return MS_OK;
}

static void now_ts(char buf[40])
{
    ms_time_rfc3339(buf, 40);
}

static const char *jstr(struct json_object *o, const char *k)
{
    struct json_object *v;
    return o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

static bool jbool(struct json_object *o, const char *k)
{
    struct json_object *v;
    return o && json_object_object_get_ex(o, k, &v) && json_object_get_boolean(v);
}

/* ---- field checking ------------------------------------------------------------------------- */

typedef enum { F_STR, F_INT, F_BOOL, F_OBJ, F_STRARR } ftype;

typedef struct field {
    const char *name;
    ftype type;
    bool required; /* on create */
    bool fixed;    /* the record's key: given on create, never changed */
    size_t max;    /* strings: bytes; objects: bytes of their JSON text */
    int64_t lo, hi;
} field;

static const field tenant_fields[] = {
    {"name", F_STR, true, true, 63, 0, 0},
    {"display_name", F_STR, false, false, 256, 0, 0},
    {"disabled", F_BOOL, false, false, 0, 0, 0},
    {NULL, F_STR, false, false, 0, 0, 0},
};
static const field apikey_fields[] = {
    {"name", F_STR, true, false, MS_CONTROL_MAX_NAME, 0, 0},
    {"scopes", F_STRARR, false, false, 16, 0, 0},
    {NULL, F_STR, false, false, 0, 0, 0},
};
static const field connection_fields[] = {
    {"name", F_STR, true, true, MS_CONTROL_MAX_NAME, 0, 0},
    {"adapter", F_STR, true, false, 32, 0, 0},
    {"host", F_STR, false, false, 253, 0, 0},
    {"port", F_INT, false, false, 0, 1, 65535},
    {"database", F_STR, false, false, 256, 0, 0},
    {"options", F_OBJ, false, false, 16384, 0, 0},
    {"credentials", F_OBJ, false, false, MAX_CREDENTIALS, 0, 0},
    {NULL, F_STR, false, false, 0, 0, 0},
};
static const field user_fields[] = {
    {"email", F_STR, true, true, 254, 0, 0}, {"display_name", F_STR, false, false, 256, 0, 0},
    {"role", F_STR, false, false, 16, 0, 0}, {"disabled", F_BOOL, false, false, 0, 0, 0},
    {NULL, F_STR, false, false, 0, 0, 0},
};

static const char *const adapters[] = {"postgres", "mysql",  "mariadb", "sqlite",
                                       "kafka",    "oracle", "mssql",   "snowflake",
                                       "bigquery", "s3",     "http",    NULL};
static const char *const roles[] = {"admin", "editor", "viewer", NULL};
static const char *const scope_names[] = {"read", "write", "admin", NULL};

static int one_of(const char *s, const char *const *set)
{
    for (int i = 0; set[i]; i++)
        if (strcmp(s, set[i]) == 0) return i;
    return -1;
}

static void join_set(char *buf, size_t len, const char *const *set)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; set[i] && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "", set[i]);
}

static const char *type_word(ftype t)
{
    switch (t) {
    case F_STR:
        return "a string";
    case F_INT:
        return "an integer";
    case F_BOOL:
        return "true or false";
    case F_OBJ:
        return "a JSON object";
    case F_STRARR:
        return "an array of strings";
    }
    return "?";
}

/* Checks one present member against its field. null is accepted for optional, non-key fields
 * (it clears them). Never quotes the value. */
static ms_err check_value(const field *f, struct json_object *v, ms_error *err)
{
    if (!v) {
        if (!f->required && !f->fixed) return MS_OK;
        return ms_error_set(err, MS_ERR_INVALID_FIELD, "%s must be %s, not null", f->name,
                            type_word(f->type));
    }
    bool ok = false;
    switch (f->type) {
    case F_STR:
        ok = json_object_is_type(v, json_type_string);
        break;
    case F_INT:
        ok = json_object_is_type(v, json_type_int);
        break;
    case F_BOOL:
        ok = json_object_is_type(v, json_type_boolean);
        break;
    case F_OBJ:
        ok = json_object_is_type(v, json_type_object);
        break;
    case F_STRARR:
        ok = json_object_is_type(v, json_type_array);
        for (size_t i = 0; ok && i < json_object_array_length(v); i++)
            ok = json_object_is_type(json_object_array_get_idx(v, i), json_type_string);
        break;
    }
    if (!ok)
        return ms_error_set(err, MS_ERR_INVALID_FIELD, "%s must be %s", f->name,
                            type_word(f->type));
    if (f->type == F_STR) {
        size_t n = (size_t)json_object_get_string_len(v);
        if (n > f->max)
            return ms_error_set(err, MS_ERR_TOO_LONG, "%s is longer than %zu bytes", f->name,
                                f->max);
        if (n == 0 && (f->required || f->fixed))
            return ms_error_set(err, MS_ERR_INVALID_FIELD, "%s must not be empty", f->name);
    } else if (f->type == F_INT) {
        int64_t n = json_object_get_int64(v);
        if (n < f->lo || n > f->hi)
            return ms_error_set(err, MS_ERR_INVALID_FIELD, "%s must be from %lld to %lld", f->name,
                                (long long)f->lo, (long long)f->hi);
    } else if (f->type == F_OBJ) {
        ms_buf b = MS_BUF_INIT;
        ms_json_canonical(v, &b);
        size_t n = b.len;
        OPENSSL_cleanse(b.data, b.len);
        ms_buf_free(&b);
        if (n > f->max)
            return ms_error_set(err, MS_ERR_TOO_LONG, "%s is larger than %zu bytes as JSON",
                                f->name, f->max);
    } else if (f->type == F_STRARR && json_object_array_length(v) > f->max) {
        return ms_error_set(err, MS_ERR_TOO_LONG, "%s has more than %zu entries", f->name, f->max);
    }
    return MS_OK;
}

/* True when k could be a field name (snake_case, at most 40 bytes): only such names are quoted
 * in an error, since anything else may be a value (a password) pasted in the wrong place. */
static bool field_like(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 40 || !islower((unsigned char)k[0])) return false;
    for (const char *p = k; *p; p++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_') return false;
    return true;
}

/*
 * Checks body against fields: every member known and well typed; on create every required field
 * present; on update (key != NULL) a key field, if given, equal to key. Never quotes a value.
 */
static ms_err check_body(struct json_object *body, const field *fields, const char *key,
                         ms_error *err)
{
    json_object_object_foreach(body, k, v)
    {
        const field *f = fields;
        while (f->name && strcmp(f->name, k) != 0)
            f++;
        if (!f->name) {
            char known[200];
            size_t n = 0;
            known[0] = '\0';
            for (const field *g = fields; g->name && n < sizeof known; g++)
                n += (size_t)snprintf(known + n, sizeof known - n, "%s%s", n ? ", " : "", g->name);
            if (field_like(k))
                return ms_error_set(err, MS_ERR_UNKNOWN_FIELD, "unknown field '%s' (known: %s)", k,
                                    known);
            return ms_error_set(err, MS_ERR_UNKNOWN_FIELD,
                                "unknown field (its name is not shown: it does not look like a "
                                "field name and may be a misplaced value; known: %s)",
                                known);
        }
        ms_err rc = check_value(f, v, err);
        if (rc != MS_OK) return rc;
        if (key && f->fixed && strcmp(json_object_get_string(v), key) != 0)
            return ms_error_set(err, MS_ERR_INVALID_FIELD,
                                "%s cannot be changed (it names the record in the path)", f->name);
    }
    for (const field *f = fields; !key && f->name; f++)
        if (f->required && !json_object_object_get_ex(body, f->name, NULL))
            return ms_error_set(err, MS_ERR_MISSING_FIELD, "%s is required", f->name);
    return MS_OK;
}

/* Copies every member of body into rec (null removes it), except those named in skip. */
static void merge_fields(struct json_object *rec, struct json_object *body, const char *skip)
{
    json_object_object_foreach(body, k, v)
    {
        if (skip && strcmp(k, skip) == 0) continue;
        if (v)
            json_object_object_add(rec, k, json_object_get(v));
        else
            json_object_object_del(rec, k);
    }
}

static bool name_valid(const char *s)
{
    if (!*s) return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') return false;
    return true;
}

/* A practical email check: one '@', a non-empty local part of printable ASCII without spaces,
 * a domain of dot-separated labels (letters, digits, '-') with at least one dot. */
static bool email_valid(const char *s)
{
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@') || at - s > 64) return false;
    for (const char *p = s; p < at; p++)
        if (*p <= ' ' || *p >= 127 || strchr("()<>[]:;,\\\"", *p)) return false;
    const char *d = at + 1;
    if (!*d || !strchr(d, '.') || *d == '.' || d[strlen(d) - 1] == '.') return false;
    for (const char *p = d; *p; p++) {
        if (*p == '.' && p[1] == '.') return false;
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.') return false;
    }
    return true;
}

/* ---- request helpers ------------------------------------------------------------------------ */

/* Parses the body as a JSON object. A malformed body's error keeps its position but drops any
 * detail (it could quote the input, and the input may hold a password). */
static ms_err parse_body(const ms_control_request *rq, struct json_object **out, ms_error *err)
{
    if (rq->len > MS_CONTROL_MAX_BODY)
        return ms_error_set(err, MS_ERR_BODY_TOO_LARGE, "the body is larger than %d bytes",
                            MS_CONTROL_MAX_BODY);
    ms_error e;
    ms_error_clear(&e);
    struct json_object *o = ms_json_parse(rq->body, rq->len, 16, NULL, &e);
    if (e.code != MS_OK) {
        ms_error_set(err, e.code, "%s", ms_err_message(e.code));
        ms_error_at(err, e.line, e.column, e.offset);
        return e.code;
    }
    if (!o || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return ms_error_set(err, MS_ERR_NOT_OBJECT, "the body must be a JSON object");
    }
    *out = o;
    return MS_OK;
}

static void send_json(struct json_object *o, ms_buf *out)
{
    ms_buf_puts(out, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* Appends o as JSON to out and releases it. */
static void send_owned(struct json_object *o, ms_buf *out)
{
    send_json(o, out);
    json_object_put(o);
}

/* Appends {"items":items} to out and releases items. */
static void send_items(struct json_object *items, ms_buf *out)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "items", items);
    send_owned(o, out);
}

/* A new object holding the named members of rec (absent ones as null). */
static struct json_object *view_of(struct json_object *rec, const char *const *names)
{
    struct json_object *v = json_object_new_object();
    for (int i = 0; names[i]; i++) {
        struct json_object *m = NULL;
        json_object_object_get_ex(rec, names[i], &m);
        json_object_object_add(v, names[i], json_object_get(m));
    }
    return v;
}

static const char *const tenant_view[] = {"name",       "display_name", "created_at",
                                          "updated_at", "disabled",     NULL};
static const char *const apikey_view[] = {"id",         "name",         "tenant",  "scopes",
                                          "created_at", "last_used_at", "revoked", NULL};
static const char *const connection_view[] = {
    "name", "adapter", "host", "port", "database", "options", "created_at", "updated_at", NULL};
static const char *const user_view[] = {"email",      "display_name", "role", "created_at",
                                        "updated_at", "disabled",     NULL};

static struct json_object *connection_public(struct json_object *rec)
{
    struct json_object *v = view_of(rec, connection_view), *s = NULL;
    bool set = json_object_object_get_ex(rec, "secret", &s) && s;
    json_object_object_add(v, "credentials", json_object_new_string(set ? "set" : "none"));
    json_object_object_add(
        v, "credentials_encrypted",
        json_object_new_boolean(set && json_object_object_get_ex(s, "sealed", NULL)));
    return v;
}

/* Lists the public views of every record of kind of tenant as {"items":[…]}. */
static ms_err list_route(ms_control *c, const char *tenant, const char *kind,
                         struct json_object *(*pub)(struct json_object *), const char *const *names,
                         ms_buf *out, ms_error *err)
{
    struct json_object *arr;
    ms_err rc = rec_list(c, tenant, kind, false, &arr, err);
    if (rc != MS_OK) return rc;
    struct json_object *items = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        struct json_object *r = json_object_array_get_idx(arr, i);
        json_object_array_add(items, pub ? pub(r) : view_of(r, names));
    }
    send_items(items, out);
    json_object_put(arr);
    return MS_OK;
}

static ms_err not_found(ms_error *err, const char *what)
{
    return ms_error_set(err, MS_ERR_NOT_FOUND, "no such %s", what);
}

/* ---- tenants -------------------------------------------------------------------------------- */

typedef struct name_set {
    char **v;
    size_t n, cap;
} name_set;

static int add_name(void *ud, const char *t)
{
    name_set *s = ud;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], t) == 0) return 0;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->v = ms_xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = ms_xstrdup(t);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void name_set_free(name_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

/* The view of a tenant that has data (or is `default`) but no record of its own. */
static struct json_object *implicit_tenant(const char *name)
{
    struct json_object *v = json_object_new_object();
    json_object_object_add(v, "name", json_object_new_string(name));
    json_object_object_add(v, "display_name", NULL);
    json_object_object_add(v, "created_at", NULL);
    json_object_object_add(v, "updated_at", NULL);
    json_object_object_add(v, "disabled", json_object_new_boolean(false));
    json_object_object_add(v, "registered", json_object_new_boolean(false));
    return v;
}

static struct json_object *tenant_public(struct json_object *rec)
{
    struct json_object *v = view_of(rec, tenant_view);
    json_object_object_add(v, "registered", json_object_new_boolean(true));
    return v;
}

/* True when tenant t is known without a record: `default`, or it has data in the store. */
static bool tenant_implicit(ms_control *c, const char *t)
{
    if (strcmp(t, DEFAULT_TENANT) == 0) return true;
    name_set s = {0};
    c->store->tenants(c->store_ctx, add_name, &s, NULL);
    bool found = false;
    for (size_t i = 0; i < s.n && !found; i++)
        found = strcmp(s.v[i], t) == 0;
    name_set_free(&s);
    return found;
}

/* Registers tenant t (a record with created_at now) unless it has one. Caller holds c->mu. */
static ms_err tenant_ensure(ms_control *c, const char *t, ms_error *err)
{
    struct json_object *rec = NULL;
    ms_err rc = rec_get(c, t, KIND_TENANT, "", &rec, NULL, 0, err);
    if (rc != MS_OK || rec) {
        json_object_put(rec);
        return rc;
    }
    char ts[40];
    now_ts(ts);
    rec = json_object_new_object();
    json_object_object_add(rec, "name", json_object_new_string(t));
    json_object_object_add(rec, "created_at", json_object_new_string(ts));
    json_object_object_add(rec, "updated_at", json_object_new_string(ts));
    json_object_object_add(rec, "disabled", json_object_new_boolean(false));
    ms_error e;
    ms_error_clear(&e);
    rc = rec_add(c, t, KIND_TENANT, "", rec, "tenant", &e);
    json_object_put(rec);
    if (rc == MS_ERR_ALREADY_EXISTS) return MS_OK; /* another worker registered it meanwhile */
    if (rc != MS_OK && err) *err = e;
    return rc;
}

static ms_err tenants_list(ms_control *c, ms_buf *out, ms_error *err)
{
    rec_all a = {json_object_new_array(), true};
    ms_err rc = c->store->ctl_list(c->store_ctx, NULL, KIND_TENANT, all_cb, &a, err);
    name_set s = {0};
    add_name(&s, DEFAULT_TENANT);
    if (rc == MS_OK) rc = c->store->tenants(c->store_ctx, add_name, &s, err);
    for (size_t i = 0; rc == MS_OK && i < json_object_array_length(a.arr); i++)
        add_name(&s, jstr(json_object_array_get_idx(a.arr, i), "tenant"));
    if (rc == MS_OK) {
        qsort(s.v, s.n, sizeof *s.v, cmp_str);
        struct json_object *items = json_object_new_array();
        for (size_t i = 0; i < s.n; i++) {
            struct json_object *v = NULL, *r;
            for (size_t j = 0; !v && j < json_object_array_length(a.arr); j++) {
                struct json_object *w = json_object_array_get_idx(a.arr, j);
                if (strcmp(jstr(w, "tenant"), s.v[i]) == 0 &&
                    json_object_object_get_ex(w, "rec", &r))
                    v = tenant_public(r);
            }
            json_object_array_add(items, v ? v : implicit_tenant(s.v[i]));
        }
        send_items(items, out);
    }
    name_set_free(&s);
    json_object_put(a.arr);
    return rc;
}

/* Creates (POST), updates (PUT) or disables (DELETE) tenant name. Caller holds c->mu. */
static ms_err tenant_write_locked(ms_control *c, const char *method, const char *name,
                                  struct json_object *body, unsigned *status, ms_buf *out,
                                  ms_error *err)
{
    struct json_object *rec = NULL;
    ms_err rc = rec_get(c, name, KIND_TENANT, "", &rec, NULL, 0, err);
    if (rc != MS_OK) return rc;
    bool post = strcmp(method, "POST") == 0;
    if (post && rec) {
        json_object_put(rec);
        return ms_error_set(err, MS_ERR_ALREADY_EXISTS, "tenant %s exists", name);
    }
    if (!post && !rec && !tenant_implicit(c, name)) return not_found(err, "tenant");
    if (strcmp(name, DEFAULT_TENANT) == 0 &&
        (strcmp(method, "DELETE") == 0 || jbool(body, "disabled"))) {
        json_object_put(rec);
        return ms_error_set(err, MS_ERR_INVALID_FIELD, "the default tenant cannot be disabled");
    }
    char ts[40];
    now_ts(ts);
    *status = rec || !post ? 200 : 201;
    if (!rec) {
        rec = json_object_new_object();
        json_object_object_add(rec, "name", json_object_new_string(name));
        json_object_object_add(rec, "created_at", json_object_new_string(ts));
        json_object_object_add(rec, "disabled", json_object_new_boolean(false));
        if (post) *status = 201;
    }
    if (body) merge_fields(rec, body, "name");
    if (strcmp(method, "DELETE") == 0)
        json_object_object_add(rec, "disabled", json_object_new_boolean(true));
    json_object_object_add(rec, "updated_at", json_object_new_string(ts));
    char what[100];
    snprintf(what, sizeof what, "tenant %s", name);
    rc = post ? rec_add(c, name, KIND_TENANT, "", rec, what, err)
              : rec_put(c, name, KIND_TENANT, "", rec, err);
    if (rc == MS_OK) {
        send_owned(tenant_public(rec), out);
    }
    json_object_put(rec);
    return rc;
}

static ms_err tenant_write(ms_control *c, const char *method, const char *name,
                           struct json_object *body, unsigned *status, ms_buf *out, ms_error *err)
{
    pthread_mutex_lock(&c->mu);
    ms_err rc = tenant_write_locked(c, method, name, body, status, out, err);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static ms_err tenants_route(ms_control *c, const ms_control_request *rq, const char *id,
                            struct json_object *body, unsigned *status, ms_buf *out,
                            const char **allow, ms_error *err)
{
    const char *m = rq->method;
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    if (!id) {
        if (get) return tenants_list(c, out, err);
        if (strcmp(m, "POST") != 0) {
            *allow = "GET, HEAD, POST";
            return ms_error_set(err, MS_ERR_METHOD, "use GET or POST");
        }
        ms_err rc = check_body(body, tenant_fields, NULL, err);
        if (rc != MS_OK) return rc;
        const char *name = jstr(body, "name");
        if (!ms_tenant_name_valid(name, strlen(name)))
            return ms_error_set(err, MS_ERR_INVALID_FIELD,
                                "name must be a tenant name: 1 to 63 characters a-z, 0-9, '-' "
                                "and '_', starting with a letter or digit");
        return tenant_write(c, m, name, body, status, out, err);
    }
    if (!ms_tenant_name_valid(id, strlen(id))) return not_found(err, "tenant");
    if (get) {
        struct json_object *rec = NULL;
        ms_err rc = rec_get(c, id, KIND_TENANT, "", &rec, NULL, 0, err);
        if (rc != MS_OK) return rc;
        struct json_object *v = rec                      ? tenant_public(rec)
                                : tenant_implicit(c, id) ? implicit_tenant(id)
                                                         : NULL;
        json_object_put(rec);
        if (!v) return not_found(err, "tenant");
        send_json(v, out);
        json_object_put(v);
        return MS_OK;
    }
    if (strcmp(m, "PUT") == 0) {
        ms_err rc = check_body(body, tenant_fields, id, err);
        return rc != MS_OK ? rc : tenant_write(c, m, id, body, status, out, err);
    }
    if (strcmp(m, "DELETE") == 0) return tenant_write(c, m, id, NULL, status, out, err);
    *allow = "GET, HEAD, PUT, DELETE";
    return ms_error_set(err, MS_ERR_METHOD, "use GET, PUT or DELETE");
}

/* ---- API keys ------------------------------------------------------------------------------- */

static unsigned scope_bits(struct json_object *scopes)
{
    unsigned bits = 0;
    for (size_t i = 0; scopes && i < json_object_array_length(scopes); i++) {
        int k = one_of(json_object_get_string(json_object_array_get_idx(scopes, i)), scope_names);
        if (k >= 0) bits |= 1u << k;
    }
    return bits;
}

static void put_hex(char *dst, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        snprintf(dst + 2 * i, 3, "%02x", p[i]);
}

static ms_err apikey_create(ms_control *c, const char *tenant, struct json_object *body,
                            unsigned *status, ms_buf *out, ms_error *err)
{
    ms_err rc = check_body(body, apikey_fields, NULL, err);
    if (rc != MS_OK) return rc;
    struct json_object *scopes = NULL;
    json_object_object_get_ex(body, "scopes", &scopes);
    char allowed[64];
    join_set(allowed, sizeof allowed, scope_names);
    for (size_t i = 0; scopes && i < json_object_array_length(scopes); i++) {
        const char *s = json_object_get_string(json_object_array_get_idx(scopes, i));
        if (one_of(s, scope_names) < 0)
            return ms_error_set(err, MS_ERR_INVALID_FIELD, "scopes[%zu] must be one of: %s", i,
                                allowed);
    }
    if (scopes && json_object_array_length(scopes) == 0)
        return ms_error_set(err, MS_ERR_INVALID_FIELD, "scopes must not be empty");
    unsigned char idb[8], sec[MS_CONTROL_KEY_BYTES], salt[16];
    if ((rc = ms_control_random(idb, sizeof idb, err)) != MS_OK ||
        (rc = ms_control_random(sec, sizeof sec, err)) != MS_OK ||
        (rc = ms_control_random(salt, sizeof salt, err)) != MS_OK)
        return rc;
    char id[17], secret[65], salt_hex[33], hash[65], key[100];
    put_hex(id, idb, sizeof idb);
    put_hex(secret, sec, sizeof sec);
    put_hex(salt_hex, salt, sizeof salt);
    ms_control_hash_secret(salt_hex, secret, hash);
    snprintf(key, sizeof key, "msk_%s_%s", id, secret);
    char ts[40];
    now_ts(ts);
    struct json_object *rec = json_object_new_object();
    json_object_object_add(rec, "id", json_object_new_string(id));
    json_object_object_add(rec, "name", json_object_get(json_object_object_get(body, "name")));
    json_object_object_add(rec, "tenant", json_object_new_string(tenant));
    struct json_object *sc = json_object_new_array();
    unsigned bits = scopes ? scope_bits(scopes) : MS_CONTROL_SCOPE_READ;
    for (int k = 0; scope_names[k]; k++)
        if (bits & 1u << k) json_object_array_add(sc, json_object_new_string(scope_names[k]));
    json_object_object_add(rec, "scopes", sc);
    json_object_object_add(rec, "created_at", json_object_new_string(ts));
    json_object_object_add(rec, "last_used_at", NULL);
    json_object_object_add(rec, "revoked", json_object_new_boolean(false));
    json_object_object_add(rec, "salt", json_object_new_string(salt_hex));
    json_object_object_add(rec, "hash", json_object_new_string(hash));
    pthread_mutex_lock(&c->mu);
    rc = tenant_ensure(c, tenant, err);
    if (rc == MS_OK) rc = rec_add(c, tenant, KIND_APIKEY, id, rec, "API key id", err);
    pthread_mutex_unlock(&c->mu);
    if (rc == MS_OK) {
        struct json_object *v = view_of(rec, apikey_view);
        json_object_object_add(v, "key", json_object_new_string(key));
        send_json(v, out);
        json_object_put(v);
        *status = 201;
    }
    OPENSSL_cleanse(sec, sizeof sec);
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(key, sizeof key);
    json_object_put(rec);
    return rc;
}

/*
 * Sets rec's last_used_at from the apikey_used records of its tenant (used: their wrapped list,
 * {"key":id,"rec":{"last_used_at":…}}), which ms_control_apikey_verify writes instead of
 * rewriting the key record (a rewrite could undo a revoke made meanwhile).
 */
static void apikey_last_used(struct json_object *rec, struct json_object *used)
{
    const char *id = jstr(rec, "id");
    for (size_t i = 0; id && i < json_object_array_length(used); i++) {
        struct json_object *w = json_object_array_get_idx(used, i), *u = NULL;
        const char *at = json_object_object_get_ex(w, "rec", &u) ? jstr(u, "last_used_at") : NULL;
        if (at && strcmp(jstr(w, "key"), id) == 0)
            json_object_object_add(rec, "last_used_at", json_object_new_string(at));
    }
}

/* The apikey_used records of tenant, wrapped ({"tenant","key","rec"}). */
static ms_err apikey_used_list(ms_control *c, const char *tenant, struct json_object **used,
                               ms_error *err)
{
    return rec_list(c, tenant, KIND_APIKEY_USED, true, used, err);
}

/* Lists tenant's API keys with their last_used_at as {"items":[…]}. */
static ms_err apikeys_list(ms_control *c, const char *tenant, ms_buf *out, ms_error *err)
{
    struct json_object *arr = NULL, *used = NULL;
    ms_err rc = rec_list(c, tenant, KIND_APIKEY, false, &arr, err);
    if (rc == MS_OK) rc = apikey_used_list(c, tenant, &used, err);
    if (rc == MS_OK) {
        struct json_object *items = json_object_new_array();
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
            struct json_object *r = json_object_array_get_idx(arr, i);
            apikey_last_used(r, used);
            json_object_array_add(items, view_of(r, apikey_view));
        }
        send_items(items, out);
    }
    json_object_put(arr);
    json_object_put(used);
    return rc;
}

static ms_err apikeys_route(ms_control *c, const ms_control_request *rq, const char *id,
                            struct json_object *body, unsigned *status, ms_buf *out,
                            const char **allow, ms_error *err)
{
    const char *m = rq->method;
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    if (!id) {
        if (get) return apikeys_list(c, rq->tenant, out, err);
        if (strcmp(m, "POST") == 0) return apikey_create(c, rq->tenant, body, status, out, err);
        *allow = "GET, HEAD, POST";
        return ms_error_set(err, MS_ERR_METHOD, "use GET or POST");
    }
    if (!get && strcmp(m, "DELETE") != 0) {
        *allow = "GET, HEAD, DELETE";
        return ms_error_set(err, MS_ERR_METHOD, "use GET or DELETE (revokes)");
    }
    struct json_object *rec = NULL, *used = NULL;
    pthread_mutex_lock(&c->mu); /* a revoke is a read-modify-write of the key record */
    ms_err rc = rec_get(c, rq->tenant, KIND_APIKEY, id, &rec, NULL, 0, err);
    if (rc == MS_OK && !rec) rc = not_found(err, "API key");
    if (rc == MS_OK && !get) {
        json_object_object_add(rec, "revoked", json_object_new_boolean(true));
        rc = rec_put(c, rq->tenant, KIND_APIKEY, id, rec, err);
    }
    pthread_mutex_unlock(&c->mu);
    if (rc == MS_OK) rc = apikey_used_list(c, rq->tenant, &used, err);
    if (rc == MS_OK) {
        apikey_last_used(rec, used);
        send_owned(view_of(rec, apikey_view), out);
    }
    json_object_put(rec);
    json_object_put(used);
    return rc;
}

ms_err ms_control_apikey_verify(ms_control *c, const char *key, char *tenant, size_t tenant_len,
                                unsigned *scopes, ms_error *err)
{
    static const char refused[] = "the API key is not valid (unknown, revoked or malformed)";
    char id[17];
    if (!key || strncmp(key, "msk_", 4) != 0 || strlen(key) != 4 + 16 + 1 + 64 || key[20] != '_')
        return ms_error_set(err, MS_ERR_UNAUTHORIZED, refused);
    memcpy(id, key + 4, 16);
    id[16] = '\0';
    const char *secret = key + 21;
    struct json_object *rec = NULL;
    char t[128];
    ms_err rc = rec_get(c, NULL, KIND_APIKEY, id, &rec, t, sizeof t, err);
    if (rc != MS_OK) return rc;
    char hash[65] = "";
    const char *salt = jstr(rec, "salt"), *want = jstr(rec, "hash");
    if (salt) ms_control_hash_secret(salt, secret, hash);
    bool ok = rec && want && ms_control_equal_ct(hash, want) && !jbool(rec, "revoked");
    struct json_object *trec = NULL, *urec = NULL;
    if (ok) { /* a store failure here refuses the key too (its tenant may be disabled) */
        rc = rec_get(c, t, KIND_TENANT, "", &trec, NULL, 0, err);
        if (rc != MS_OK || jbool(trec, "disabled")) ok = false;
    }
    json_object_put(trec);
    if (ok) {
        snprintf(tenant, tenant_len, "%s", t);
        *scopes = scope_bits(json_object_object_get(rec, "scopes"));
        char ts[40];
        now_ts(ts);
        /* last_used_at lives in its own record: the key record is never rewritten here, so a
         * revoke made meanwhile (by any worker) cannot be undone by a stale copy */
        rec_get(c, t, KIND_APIKEY_USED, id, &urec, NULL, 0, NULL);
        const char *last = jstr(urec, "last_used_at");
        if (!last || strncmp(last, ts, 16) != 0) { /* once a minute at most */
            struct json_object *u = json_object_new_object();
            json_object_object_add(u, "last_used_at", json_object_new_string(ts));
            rec_put(c, t, KIND_APIKEY_USED, id, u, NULL);
            json_object_put(u);
        }
        json_object_put(urec);
    }
    json_object_put(rec);
    if (rc != MS_OK) return rc;
    return ok ? MS_OK : ms_error_set(err, MS_ERR_UNAUTHORIZED, refused);
}

/* ---- connections ---------------------------------------------------------------------------- */

/* Moves body's credentials (if present) into rec's private "secret" member: sealed with the
 * secrets key when there is one, else kept plain. null removes them. */
static ms_err connection_secret(ms_control *c, struct json_object *rec, struct json_object *body,
                                ms_error *err)
{
    struct json_object *cred = NULL;
    if (!json_object_object_get_ex(body, "credentials", &cred)) return MS_OK;
    if (!cred) {
        json_object_object_del(rec, "secret");
        return MS_OK;
    }
    struct json_object *s = json_object_new_object();
    if (c->has_key) {
        ms_buf plain = MS_BUF_INIT, sealed = MS_BUF_INIT;
        ms_json_canonical(cred, &plain);
        ms_err rc = ms_control_seal(c->key, plain.data, plain.len, &sealed, err);
        OPENSSL_cleanse(plain.data, plain.len);
        ms_buf_free(&plain);
        struct json_object *so =
            rc == MS_OK ? ms_json_parse(sealed.data, sealed.len, 0, NULL, NULL) : NULL;
        ms_buf_free(&sealed);
        if (rc != MS_OK) {
            json_object_put(s);
            return rc;
        }
        json_object_object_add(s, "sealed", so);
    } else {
        json_object_object_add(s, "plain", json_object_get(cred));
    }
    json_object_object_add(rec, "secret", s);
    return MS_OK;
}

static ms_err connection_write(ms_control *c, const ms_control_request *rq, const char *id,
                               struct json_object *body, unsigned *status, ms_buf *out,
                               ms_error *err)
{
    bool post = !id;
    ms_err rc = check_body(body, connection_fields, id, err);
    if (rc != MS_OK) return rc;
    const char *name = post ? jstr(body, "name") : id;
    if (post && !name_valid(name))
        return ms_error_set(err, MS_ERR_INVALID_FIELD,
                            "name may hold only letters, digits, '.', '-' and '_'");
    const char *adapter = jstr(body, "adapter");
    char set[200];
    join_set(set, sizeof set, adapters);
    if (adapter && one_of(adapter, adapters) < 0)
        return ms_error_set(err, MS_ERR_INVALID_FIELD, "adapter must be one of: %s", set);
    if (!post && json_object_object_get_ex(body, "adapter", NULL) && !adapter)
        return ms_error_set(err, MS_ERR_INVALID_FIELD, "adapter must be a string, not null");
    pthread_mutex_lock(&c->mu);
    struct json_object *rec = NULL;
    rc = rec_get(c, rq->tenant, KIND_CONNECTION, name, &rec, NULL, 0, err);
    if (rc == MS_OK && post && rec)
        rc = ms_error_set(err, MS_ERR_ALREADY_EXISTS, "connection %s exists", name);
    if (rc == MS_OK && !post && !rec) rc = not_found(err, "connection");
    char ts[40];
    now_ts(ts);
    if (rc == MS_OK && post) {
        rec = json_object_new_object();
        json_object_object_add(rec, "created_at", json_object_new_string(ts));
        rc = tenant_ensure(c, rq->tenant, err);
    }
    if (rc == MS_OK) {
        merge_fields(rec, body, "credentials");
        json_object_object_add(rec, "updated_at", json_object_new_string(ts));
        rc = connection_secret(c, rec, body, err);
    }
    char what[200];
    snprintf(what, sizeof what, "connection %s", name);
    if (rc == MS_OK)
        rc = post ? rec_add(c, rq->tenant, KIND_CONNECTION, name, rec, what, err)
                  : rec_put(c, rq->tenant, KIND_CONNECTION, name, rec, err);
    pthread_mutex_unlock(&c->mu);
    if (rc == MS_OK) {
        send_owned(connection_public(rec), out);
        *status = post ? 201 : 200;
    }
    json_object_put(rec);
    return rc;
}

/* GET or DELETE of one record of kind; DELETE answers 204. */
static ms_err one_route(ms_control *c, const ms_control_request *rq, const char *kind,
                        const char *key, const char *what,
                        struct json_object *(*pub)(struct json_object *), const char *const *names,
                        unsigned *status, ms_buf *out, ms_error *err)
{
    struct json_object *rec = NULL;
    ms_err rc = rec_get(c, rq->tenant, kind, key, &rec, NULL, 0, err);
    if (rc != MS_OK) return rc;
    if (!rec) return not_found(err, what);
    if (strcmp(rq->method, "DELETE") == 0) {
        rc = rec_put(c, rq->tenant, kind, key, NULL, err);
        *status = 204;
    } else {
        send_owned(pub ? pub(rec) : view_of(rec, names), out);
    }
    json_object_put(rec);
    return rc;
}

ms_err ms_control_connection_credentials(ms_control *c, const char *tenant, const char *name,
                                         ms_buf *out, ms_error *err)
{
    struct json_object *rec = NULL, *s = NULL, *v = NULL;
    ms_err rc = rec_get(c, tenant, KIND_CONNECTION, name, &rec, NULL, 0, err);
    if (rc != MS_OK) return rc;
    if (!rec || !json_object_object_get_ex(rec, "secret", &s) || !s) {
        json_object_put(rec);
        return ms_error_set(err, MS_ERR_NOT_FOUND, "connection %s has no credentials", name);
    }
    if (json_object_object_get_ex(s, "plain", &v)) {
        ms_json_canonical(v, out);
    } else if (json_object_object_get_ex(s, "sealed", &v) && c->has_key) {
        rc = ms_control_unseal(c->key, json_object_to_json_string(v), out, err);
    } else {
        rc = ms_error_set(err, MS_ERR_CONFIG,
                          "the credentials of %s are encrypted and no secrets.key_file is set",
                          name);
    }
    json_object_put(rec);
    return rc;
}

/* ---- users ---------------------------------------------------------------------------------- */

static ms_err user_write(ms_control *c, const ms_control_request *rq, const char *id,
                         struct json_object *body, unsigned *status, ms_buf *out, ms_error *err)
{
    bool post = !id;
    char key[256];
    if (!post) {
        snprintf(key, sizeof key, "%s", id);
        for (char *p = key; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
    /* the email in a PUT body may differ in case only: compare it lower-cased */
    struct json_object *em = NULL;
    if (!post && json_object_object_get_ex(body, "email", &em) && em &&
        json_object_is_type(em, json_type_string) &&
        strcasecmp(json_object_get_string(em), key) == 0)
        json_object_object_del(body, "email");
    ms_err rc = check_body(body, user_fields, post ? NULL : key, err);
    if (rc != MS_OK) return rc;
    if (post) {
        const char *email = jstr(body, "email");
        if (!email_valid(email))
            return ms_error_set(err, MS_ERR_INVALID_FIELD,
                                "email must be an address like name@example.com");
        snprintf(key, sizeof key, "%s", email);
        for (char *p = key; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
    const char *role = jstr(body, "role");
    char set[64];
    join_set(set, sizeof set, roles);
    if ((role && one_of(role, roles) < 0) ||
        (json_object_object_get_ex(body, "role", NULL) && !role))
        return ms_error_set(err, MS_ERR_INVALID_FIELD, "role must be one of: %s", set);
    pthread_mutex_lock(&c->mu);
    struct json_object *rec = NULL;
    rc = rec_get(c, rq->tenant, KIND_USER, key, &rec, NULL, 0, err);
    if (rc == MS_OK && post && rec)
        rc = ms_error_set(err, MS_ERR_ALREADY_EXISTS, "a user with that email exists in tenant %s",
                          rq->tenant);
    if (rc == MS_OK && !post && !rec) rc = not_found(err, "user");
    char ts[40];
    now_ts(ts);
    if (rc == MS_OK && post) {
        rec = json_object_new_object();
        json_object_object_add(rec, "email", json_object_new_string(key));
        json_object_object_add(rec, "role", json_object_new_string("viewer"));
        json_object_object_add(rec, "disabled", json_object_new_boolean(false));
        json_object_object_add(rec, "created_at", json_object_new_string(ts));
        rc = tenant_ensure(c, rq->tenant, err);
    }
    if (rc == MS_OK) {
        merge_fields(rec, body, "email");
        json_object_object_add(rec, "updated_at", json_object_new_string(ts));
        rc = post ? rec_add(c, rq->tenant, KIND_USER, key, rec, "a user with that email", err)
                  : rec_put(c, rq->tenant, KIND_USER, key, rec, err);
    }
    pthread_mutex_unlock(&c->mu);
    if (rc == MS_OK) {
        send_owned(view_of(rec, user_view), out);
        *status = post ? 201 : 200;
    }
    json_object_put(rec);
    return rc;
}

/* ---- dispatch ------------------------------------------------------------------------------- */

typedef struct route_def {
    const char *prefix; /* "/connections" */
    const char *kind;
    const char *what;
    const char *const *names;
    struct json_object *(*pub)(struct json_object *);
    ms_err (*write)(ms_control *, const ms_control_request *, const char *, struct json_object *,
                    unsigned *, ms_buf *, ms_error *);
} route_def;

static const route_def crud_routes[] = {
    {"/connections", KIND_CONNECTION, "connection", NULL, connection_public, connection_write},
    {"/users", KIND_USER, "user", user_view, NULL, user_write},
};

/* The segment after prefix: NULL for the collection, the id for /prefix/{id}; *ok false when
 * path is not under prefix at all or has more segments. */
static const char *split(const char *path, const char *prefix, bool *ok)
{
    size_t n = strlen(prefix);
    *ok = false;
    if (strncmp(path, prefix, n) != 0) return NULL;
    const char *rest = path + n;
    if (!*rest || strcmp(rest, "/") == 0) {
        *ok = true;
        return NULL;
    }
    if (*rest != '/' || strchr(rest + 1, '/')) return NULL;
    *ok = true;
    return rest + 1;
}

bool ms_control_route(const char *path)
{
    static const char *const prefixes[] = {"/tenants", "/apikeys", "/connections", "/users", NULL};
    for (int i = 0; prefixes[i]; i++) {
        bool ok;
        split(path, prefixes[i], &ok);
        if (ok) return true;
    }
    return false;
}

ms_err ms_control_handle(ms_control *c, const ms_control_request *rq, unsigned *status, ms_buf *out,
                         const char **allow, ms_error *err)
{
    *status = 200;
    *allow = NULL;
    const char *m = rq->method;
    bool has_body = strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0;
    struct json_object *body = NULL;
    bool ok;
    const char *id;
    if (has_body) {
        ms_err rc = parse_body(rq, &body, err);
        if (rc != MS_OK) return rc;
    }
    ms_err rc = MS_ERR_NOT_FOUND;
    if ((id = split(rq->path, "/tenants", &ok)), ok) {
        rc = tenants_route(c, rq, id, body, status, out, allow, err);
    } else if ((id = split(rq->path, "/apikeys", &ok)), ok) {
        rc = apikeys_route(c, rq, id, body, status, out, allow, err);
    } else {
        for (size_t i = 0; i < sizeof crud_routes / sizeof *crud_routes; i++) {
            const route_def *r = &crud_routes[i];
            if ((id = split(rq->path, r->prefix, &ok)), !ok) continue;
            bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
            if (!id && get)
                rc = list_route(c, rq->tenant, r->kind, r->pub, r->names, out, err);
            else if (!id && strcmp(m, "POST") == 0)
                rc = r->write(c, rq, NULL, body, status, out, err);
            else if (id && strcmp(m, "PUT") == 0)
                rc = r->write(c, rq, id, body, status, out, err);
            else if (id && (get || strcmp(m, "DELETE") == 0)) {
                char key[256];
                snprintf(key, sizeof key, "%s", id);
                if (strcmp(r->kind, KIND_USER) == 0)
                    for (char *p = key; *p; p++)
                        *p = (char)tolower((unsigned char)*p);
                rc = one_route(c, rq, r->kind, key, r->what, r->pub, r->names, status, out, err);
            } else {
                *allow = id ? "GET, HEAD, PUT, DELETE" : "GET, HEAD, POST";
                rc = ms_error_set(err, MS_ERR_METHOD, "use %s", *allow);
            }
            break;
        }
        if (rc == MS_ERR_NOT_FOUND && err->code == MS_OK)
            ms_error_set(err, MS_ERR_NOT_FOUND, "no such route");
    }
    json_object_put(body);
    return rc;
}
