/*
 * ms_types.c — the registry of asset types (see ms_types.h): the built-in types, built once from
 * a constant table and never changed, and the custom types tenants register at run time, kept in
 * one array sorted by (tenant, name) under a rwlock.
 *
 * Lookups of built-in names take no lock (the hot path: every decoded event looks its type up);
 * custom lookups take the read lock; registration takes the write lock only to check and insert.
 */
#include "ms_types.h"

#include "ms_json.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_TYPE_NAME_MAX   64
#define MS_ATTR_NAME_MAX   128
#define MS_DESCRIPTION_MAX 1024

/* One built-in type: up to 3 parents and 3 required attributes, NULL-terminated. */
typedef struct builtin_def {
    const char *name;
    const char *parents[3];
    const char *required[3];
    ms_lane lane;
    const char *description;
} builtin_def;

static const builtin_def builtin_defs[] = {
    {"connection",
     {NULL},
     {NULL},
     MS_LANE_FAST,
     "A source system: a database server, a BI tool, a message broker"},
    {"database", {"connection"}, {NULL}, MS_LANE_FAST, "A database inside a connection"},
    {"schema", {"database"}, {NULL}, MS_LANE_FAST, "A schema inside a database"},
    {"table", {"schema"}, {NULL}, MS_LANE_FAST, "A table inside a schema"},
    {"view", {"schema"}, {NULL}, MS_LANE_FAST, "A view inside a schema"},
    {"column", {"table", "view"}, {"data_type"}, MS_LANE_BULK, "A column of a table or view"},
    {"dashboard", {"connection"}, {NULL}, MS_LANE_FAST, "A BI dashboard"},
    {"bi_field", {"dashboard"}, {NULL}, MS_LANE_BULK, "A field of a BI dashboard"},
    {"process",
     {NULL},
     {"inputs", "outputs"},
     MS_LANE_FAST,
     "A lineage step that reads its inputs and writes its outputs"},
    {"kafka_subject",
     {NULL},
     {NULL},
     MS_LANE_FAST,
     "A subject of the schema registry (registry/<subject>)"},
    {"kafka_schema",
     {"kafka_subject"},
     {NULL},
     MS_LANE_FAST,
     "A registered schema version of a subject (registry/<subject>/<version>)"},
};

#define N_BUILTIN (sizeof builtin_defs / sizeof builtin_defs[0])

/* Built-ins that take no parent at all (an empty parents list alone means any parent). */
static const char *const root_types[] = {"connection", "kafka_subject"};

static bool is_root_type(const char *name)
{
    for (size_t i = 0; i < sizeof root_types / sizeof root_types[0]; i++)
        if (strcmp(root_types[i], name) == 0) return true;
    return false;
}

struct ms_types {
    ms_type *builtin[N_BUILTIN]; /* immutable after ms_types_new */
    pthread_rwlock_t lock;       /* guards custom, ncustom, cap */
    ms_type **custom;            /* sorted by (tenant, name) */
    size_t ncustom, cap;
};

const char *ms_lane_name(ms_lane l)
{
    switch (l) {
    case MS_LANE_FAST:
        return "fast";
    case MS_LANE_BULK:
        return "bulk";
    default:
        return "unknown";
    }
}

/* Builds t->json, the canonical definition: keys sorted, description omitted when absent. */
static void type_build_json(ms_type *t)
{
    ms_buf b = MS_BUF_INIT;
    ms_buf_putc(&b, '{');
    if (t->description) {
        ms_buf_puts(&b, "\"description\":");
        ms_buf_put_jstr(&b, t->description);
        ms_buf_putc(&b, ',');
    }
    ms_buf_puts(&b, "\"lane\":");
    ms_buf_put_jstr(&b, ms_lane_name(t->lane));
    ms_buf_puts(&b, ",\"name\":");
    ms_buf_put_jstr(&b, t->name);
    ms_buf_puts(&b, ",\"parents\":[");
    for (size_t i = 0; i < t->nparents; i++) {
        if (i) ms_buf_putc(&b, ',');
        ms_buf_put_jstr(&b, t->parents[i]);
    }
    ms_buf_puts(&b, "],\"required_attributes\":[");
    for (size_t i = 0; i < t->nrequired; i++) {
        if (i) ms_buf_putc(&b, ',');
        ms_buf_put_jstr(&b, t->required[i]);
    }
    ms_buf_puts(&b, "]}");
    t->json = ms_buf_steal(&b);
}

static void type_free(ms_type *t)
{
    if (!t) return;
    free(t->name);
    for (size_t i = 0; i < t->nparents; i++)
        free(t->parents[i]);
    free(t->parents);
    for (size_t i = 0; i < t->nrequired; i++)
        free(t->required[i]);
    free(t->required);
    free(t->tenant);
    free(t->description);
    free(t->json);
    free(t);
}

/* Copies a NULL-terminated list of at most `max` strings into a new array; returns the count. */
static size_t copy_list(const char *const *src, size_t max, char ***dst)
{
    size_t n = 0;
    while (n < max && src[n])
        n++;
    *dst = n ? ms_xcalloc(n, sizeof **dst) : NULL;
    for (size_t i = 0; i < n; i++)
        (*dst)[i] = ms_xstrdup(src[i]);
    return n;
}

ms_types *ms_types_new(void)
{
    ms_types *r = ms_xcalloc(1, sizeof *r);
    for (size_t i = 0; i < N_BUILTIN; i++) {
        const builtin_def *d = &builtin_defs[i];
        ms_type *t = ms_xcalloc(1, sizeof *t);
        t->name = ms_xstrdup(d->name);
        t->nparents = copy_list(d->parents, 3, &t->parents);
        t->nrequired = copy_list(d->required, 3, &t->required);
        t->lane = d->lane;
        t->root = is_root_type(d->name);
        t->builtin = true;
        t->description = ms_xstrdup(d->description);
        type_build_json(t);
        r->builtin[i] = t;
    }
    if (pthread_rwlock_init(&r->lock, NULL) != 0) {
        fprintf(stderr, "metasync: pthread_rwlock_init failed\n");
        abort();
    }
    return r;
}

void ms_types_free(ms_types *t)
{
    if (!t) return;
    for (size_t i = 0; i < N_BUILTIN; i++)
        type_free(t->builtin[i]);
    for (size_t i = 0; i < t->ncustom; i++)
        type_free(t->custom[i]);
    free(t->custom);
    pthread_rwlock_destroy(&t->lock);
    free(t);
}

static const ms_type *find_builtin(const ms_types *t, const char *name)
{
    for (size_t i = 0; i < N_BUILTIN; i++)
        if (strcmp(t->builtin[i]->name, name) == 0) return t->builtin[i];
    return NULL;
}

/* Binary search of the custom array (lock held): returns the index of (tenant, name) and sets
 * *found, or the index where it would be inserted. */
static size_t find_custom(const ms_types *t, const char *tenant, const char *name, bool *found)
{
    size_t lo = 0, hi = t->ncustom;
    *found = false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const ms_type *m = t->custom[mid];
        int c = strcmp(m->tenant, tenant);
        if (c == 0) c = strcmp(m->name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const ms_type *ms_types_get(ms_types *t, const char *tenant, const char *name)
{
    if (!t || !name) return NULL;
    const ms_type *b = find_builtin(t, name);
    if (b || !tenant) return b;
    pthread_rwlock_rdlock(&t->lock);
    bool found;
    size_t i = find_custom(t, tenant, name, &found);
    const ms_type *r = found ? t->custom[i] : NULL;
    pthread_rwlock_unlock(&t->lock);
    return r;
}

bool ms_type_allows_parent(const ms_type *child, const char *parent_type)
{
    if (!child || child->root) return false;
    if (child->nparents == 0) return true;
    if (!parent_type) return false;
    for (size_t i = 0; i < child->nparents; i++)
        if (strcmp(child->parents[i], parent_type) == 0) return true;
    return false;
}

/* True when s[0..n) is 1..64 characters of [a-z0-9_]. */
static bool valid_type_name(const char *s, size_t n)
{
    if (n == 0 || n > MS_TYPE_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    return true;
}

static int str_ptr_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts v[0..n) and removes duplicates (freeing them); returns the new count. */
static size_t sort_unique(char **v, size_t n)
{
    if (n < 2) return n;
    qsort(v, n, sizeof *v, str_ptr_cmp);
    size_t k = 1;
    for (size_t i = 1; i < n; i++) {
        if (strcmp(v[i], v[k - 1]) == 0)
            free(v[i]);
        else
            v[k++] = v[i];
    }
    return k;
}

/*
 * Reads the optional array of strings `field` of def into *out (sorted, unique). `names` selects
 * the check on each element: type-name syntax (parents) or an attribute name (1..128 bytes, no
 * control characters). Returns MS_OK or MS_ERR_INVALID_FIELD with a detail.
 */
static ms_err read_string_list(struct json_object *def, const char *field, bool names, char ***out,
                               size_t *nout, ms_error *err)
{
    *out = NULL;
    *nout = 0;
    struct json_object *a = NULL;
    if (!json_object_object_get_ex(def, field, &a)) return MS_OK;
    if (!json_object_is_type(a, json_type_array))
        return ms_error_set(err, MS_ERR_INVALID_FIELD, "%s must be an array of strings", field);
    size_t n = json_object_array_length(a);
    char **v = n ? ms_xcalloc(n, sizeof *v) : NULL;
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(a, i);
        ms_err rc = MS_OK;
        if (!json_object_is_type(e, json_type_string)) {
            rc = ms_error_set(err, MS_ERR_INVALID_FIELD, "%s[%zu] must be a string", field, i);
        } else {
            const char *s = json_object_get_string(e);
            size_t len = (size_t)json_object_get_string_len(e);
            if (names && !valid_type_name(s, len)) {
                rc = ms_error_set(err, MS_ERR_INVALID_FIELD,
                                  "%s[%zu] must be a type name (1..64 characters of [a-z0-9_])",
                                  field, i);
            } else if (!names) {
                bool ctl = false;
                for (size_t k = 0; k < len; k++)
                    if ((unsigned char)s[k] < 0x20) ctl = true;
                if (len == 0 || len > MS_ATTR_NAME_MAX || ctl)
                    rc = ms_error_set(err, MS_ERR_INVALID_FIELD,
                                      "%s[%zu] must be 1..%d bytes without control characters",
                                      field, i, MS_ATTR_NAME_MAX);
            }
            if (rc == MS_OK) v[i] = ms_xstrndup(s, len);
        }
        if (rc != MS_OK) {
            for (size_t k = 0; k < i; k++)
                free(v[k]);
            free(v);
            return rc;
        }
    }
    *nout = sort_unique(v, n);
    *out = v;
    return MS_OK;
}

/* Parses and validates a definition (everything that needs no registry state) into a new type.
 * err must not be NULL. */
static ms_err parse_definition(const char *tenant, const char *json, size_t len, ms_type **out,
                               ms_error *err)
{
    static const char *const allowed[] = {"name", "parents", "required_attributes", "lane",
                                          "description"};
    *out = NULL;
    struct json_object *def = ms_json_parse(json, len, 0, NULL, err);
    if (err->code != MS_OK) return err->code;
    ms_err rc = MS_OK;
    ms_type *t = NULL;
    if (!json_object_is_type(def, json_type_object)) {
        rc = ms_error_set(err, MS_ERR_INVALID_FIELD, "a type definition must be a JSON object");
        goto done;
    }
    json_object_object_foreach(def, key, val)
    {
        (void)val;
        bool ok = false;
        for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
            if (strcmp(key, allowed[i]) == 0) ok = true;
        if (!ok) {
            rc = ms_error_set(err, MS_ERR_INVALID_FIELD,
                              "unknown field '%.64s' in a type definition", key);
            goto done;
        }
    }
    struct json_object *v = NULL;
    if (!json_object_object_get_ex(def, "name", &v)) {
        rc = ms_error_set(err, MS_ERR_MISSING_FIELD, "name is required");
        goto done;
    }
    if (!json_object_is_type(v, json_type_string)) {
        rc = ms_error_set(err, MS_ERR_INVALID_FIELD, "name must be a string");
        goto done;
    }
    const char *name = json_object_get_string(v);
    size_t name_len = (size_t)json_object_get_string_len(v);
    if (!valid_type_name(name, name_len)) {
        rc = ms_error_set(err, MS_ERR_INVALID_FIELD, "name must be 1..64 characters of [a-z0-9_]");
        goto done;
    }
    for (size_t i = 0; i < N_BUILTIN; i++)
        if (strcmp(builtin_defs[i].name, name) == 0) {
            rc = ms_error_set(err, MS_ERR_TYPE_CONFLICT, "'%s' is a built-in type", name);
            goto done;
        }

    t = ms_xcalloc(1, sizeof *t);
    t->name = ms_xstrndup(name, name_len);
    t->tenant = ms_xstrdup(tenant);
    if ((rc = read_string_list(def, "parents", true, &t->parents, &t->nparents, err)) != MS_OK)
        goto done;
    if ((rc = read_string_list(def, "required_attributes", false, &t->required, &t->nrequired,
                               err)) != MS_OK)
        goto done;
    t->lane = MS_LANE_FAST;
    if (json_object_object_get_ex(def, "lane", &v)) {
        const char *l = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
        if (strcmp(l, "fast") == 0)
            t->lane = MS_LANE_FAST;
        else if (strcmp(l, "bulk") == 0)
            t->lane = MS_LANE_BULK;
        else {
            rc = ms_error_set(err, MS_ERR_INVALID_FIELD, "lane must be \"fast\" or \"bulk\"");
            goto done;
        }
    }
    if (json_object_object_get_ex(def, "description", &v)) {
        if (!json_object_is_type(v, json_type_string)) {
            rc = ms_error_set(err, MS_ERR_INVALID_FIELD, "description must be a string");
            goto done;
        }
        size_t dl = (size_t)json_object_get_string_len(v);
        if (dl > MS_DESCRIPTION_MAX) {
            rc = ms_error_set(err, MS_ERR_INVALID_FIELD, "description is longer than %d bytes",
                              MS_DESCRIPTION_MAX);
            goto done;
        }
        if (memchr(json_object_get_string(v), 0, dl)) {
            rc = ms_error_set(err, MS_ERR_INVALID_FIELD, "description must not contain U+0000");
            goto done;
        }
        t->description = ms_xstrndup(json_object_get_string(v), dl);
    }
    type_build_json(t);
done:
    json_object_put(def);
    if (rc != MS_OK) {
        type_free(t);
        return rc;
    }
    *out = t;
    return MS_OK;
}

ms_err ms_types_register(ms_types *t, const char *tenant, const char *json, size_t len,
                         const ms_type **out, bool *created, ms_error *err)
{
    ms_error local;
    if (!err) err = &local;
    ms_error_clear(err);
    if (out) *out = NULL;
    if (created) *created = false;
    if (!tenant || !*tenant)
        return ms_error_set(err, MS_ERR_INVALID_FIELD, "a tenant is required to register a type");
    ms_type *nt = NULL;
    ms_err rc = parse_definition(tenant, json, len, &nt, err);
    if (rc != MS_OK) return rc;

    pthread_rwlock_wrlock(&t->lock);
    bool found;
    size_t at = find_custom(t, tenant, nt->name, &found);
    if (found) {
        ms_type *old = t->custom[at];
        if (strcmp(old->json, nt->json) == 0) {
            if (out) *out = old;
        } else {
            rc = ms_error_set(err, MS_ERR_TYPE_CONFLICT, "type '%s' is already defined differently",
                              nt->name);
        }
        pthread_rwlock_unlock(&t->lock);
        type_free(nt);
        return rc;
    }
    for (size_t i = 0; i < nt->nparents; i++) {
        const char *p = nt->parents[i];
        bool ok = strcmp(p, nt->name) == 0 || find_builtin(t, p);
        if (!ok) find_custom(t, tenant, p, &ok);
        if (!ok) {
            rc = ms_error_set(err, MS_ERR_UNKNOWN_TYPE, "unknown parent type '%s'", p);
            pthread_rwlock_unlock(&t->lock);
            type_free(nt);
            return rc;
        }
    }
    if (t->ncustom == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->custom = ms_xrealloc(t->custom, t->cap * sizeof *t->custom);
    }
    memmove(t->custom + at + 1, t->custom + at, (t->ncustom - at) * sizeof *t->custom);
    t->custom[at] = nt;
    t->ncustom++;
    pthread_rwlock_unlock(&t->lock);
    if (out) *out = nt;
    if (created) *created = true;
    return MS_OK;
}

/* Appends {"builtin":B, ...rest of the canonical definition}. */
static void put_listed(ms_buf *out, const ms_type *ty, bool first)
{
    if (!first) ms_buf_putc(out, ',');
    ms_buf_puts(out, ty->builtin ? "{\"builtin\":true," : "{\"builtin\":false,");
    ms_buf_puts(out, ty->json + 1);
}

void ms_types_list_json(ms_types *t, const char *tenant, ms_buf *out)
{
    ms_buf_putc(out, '[');
    for (size_t i = 0; i < N_BUILTIN; i++)
        put_listed(out, t->builtin[i], i == 0);
    if (tenant) {
        pthread_rwlock_rdlock(&t->lock);
        bool found;
        for (size_t i = find_custom(t, tenant, "", &found); i < t->ncustom; i++) {
            if (strcmp(t->custom[i]->tenant, tenant) != 0) break;
            put_listed(out, t->custom[i], false);
        }
        pthread_rwlock_unlock(&t->lock);
    }
    ms_buf_putc(out, ']');
}
