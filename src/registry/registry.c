/*
 * registry.c — the embedded schema registry's state (see ms_registry.h, registry_int.h): global
 * schema ids, subjects with their versions, compatibility levels; written through to the store's
 * control-plane records and loaded from them at open; every registered version also becomes a
 * `kafka_schema` asset submitted through the engine. Also the public C API, which answers from
 * the external client (registry_client.c) when registry.url is set.
 *
 * Records (ctl_put): kind "registry.schema", tenant "" (ids are global), key the id as 10 digits,
 *   {"id":N,"schema":"...","schemaType":"AVRO"}; kind "registry.version", tenant, key
 *   "<subject>/<version as 10 digits>", {"subject":"s","version":N,"id":N,"deleted":bool};
 *   kind "registry.config", tenant, key "" (tenant-wide) or the subject, {"compatibilityLevel":L}.
 * A write is durable in the store before it shows in memory, so a failed write changes nothing.
 */
#include "registry_int.h"

#include "ms_engine.h"
#include "ms_json.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KIND_SCHEMA  "registry.schema"
#define KIND_VERSION "registry.version"
#define KIND_CONFIG  "registry.config"
#define KIND_GEN     "registry.gen" /* tenant "", key "gen": {"gen":token}, rg_locked_sync */

/* The .avsc files of the repository, embedded at build time (CMake generates the file that
 * defines them from schemas/). */
extern const char ms_avsc_metasync_event[];
extern const char ms_avsc_metasync_change[];

/* Built-in subjects: the Confluent TopicNameStrategy subjects of the default topics. */
static const struct {
    const char *subject;
    const char *text;
} builtin_schemas[] = {
    {"metasync.events-value", ms_avsc_metasync_event},
    {"metasync.changes-value", ms_avsc_metasync_change},
};

const char *const rg_levels[] = {"NONE",
                                 "BACKWARD",
                                 "BACKWARD_TRANSITIVE",
                                 "FORWARD",
                                 "FORWARD_TRANSITIVE",
                                 "FULL",
                                 "FULL_TRANSITIVE",
                                 NULL};

bool rg_level_valid(const char *s)
{
    for (size_t i = 0; s && rg_levels[i]; i++)
        if (strcmp(s, rg_levels[i]) == 0) return true;
    return false;
}

/* The static string of a valid level (so callers may keep it). */
static const char *level_static(const char *s)
{
    for (size_t i = 0; s && rg_levels[i]; i++)
        if (strcmp(s, rg_levels[i]) == 0) return rg_levels[i];
    return NULL;
}

int rg_failf(rg_fail *f, int code, const char *fmt, ...)
{
    if (f) {
        f->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->msg, sizeof f->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

ms_err rg_code_to_err(int code)
{
    switch (code) {
    case RG_OK:
        return MS_OK;
    case RG_INCOMPATIBLE:
        return MS_ERR_INCOMPATIBLE_SCHEMA;
    case RG_INVALID_SCHEMA:
        return MS_ERR_INVALID_SCHEMA;
    case RG_SCHEMA_NOT_FOUND:
        return MS_ERR_UNKNOWN_SCHEMA;
    case RG_STORE_ERROR:
        return MS_ERR_STORE;
    case RG_UPSTREAM_ERROR:
        return MS_ERR_CONNECT;
    case RG_INVALID_VERSION:
    case RG_INVALID_COMPAT:
    case RG_BAD_REQUEST:
        return MS_ERR_BAD_PARAM;
    default:
        return code / 100 == 404 || code == RG_NOT_FOUND ? MS_ERR_NOT_FOUND : MS_ERR_INTERNAL;
    }
}

/* ---- lookups (mu held) ------------------------------------------------------------------------
 */

rg_schema *rg_locked_schema(ms_registry *r, uint32_t id)
{
    size_t lo = 0, hi = r->nschemas;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->schemas[mid]->id == id) return r->schemas[mid];
        if (r->schemas[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static rg_schema *locked_schema_by_text(ms_registry *r, const char *norm)
{
    for (size_t i = 0; i < r->nschemas; i++)
        if (strcmp(r->schemas[i]->text, norm) == 0) return r->schemas[i];
    return NULL;
}

/* Adds s keeping ids ascending (ids are almost always appended). */
static void locked_schema_add(ms_registry *r, rg_schema *s)
{
    if (r->nschemas == r->schemas_cap) {
        r->schemas_cap = r->schemas_cap ? r->schemas_cap * 2 : 16;
        r->schemas = ms_xrealloc(r->schemas, r->schemas_cap * sizeof *r->schemas);
    }
    size_t i = r->nschemas;
    while (i > 0 && r->schemas[i - 1]->id > s->id) {
        r->schemas[i] = r->schemas[i - 1];
        i--;
    }
    r->schemas[i] = s;
    r->nschemas++;
    if (s->id >= r->next_id) r->next_id = s->id + 1;
}

static void schema_free(rg_schema *s)
{
    if (!s) return;
    free(s->text);
    ms_avro_schema_free(s->avro);
    free(s);
}

rg_subject *rg_locked_subject(ms_registry *r, const char *tenant, const char *name, bool create)
{
    for (size_t i = 0; i < r->nsubjects; i++)
        if (strcmp(r->subjects[i]->name, name) == 0 && strcmp(r->subjects[i]->tenant, tenant) == 0)
            return r->subjects[i];
    if (!create) return NULL;
    if (r->nsubjects == r->subjects_cap) {
        r->subjects_cap = r->subjects_cap ? r->subjects_cap * 2 : 16;
        r->subjects = ms_xrealloc(r->subjects, r->subjects_cap * sizeof *r->subjects);
    }
    rg_subject *s = ms_xcalloc(1, sizeof *s);
    s->tenant = ms_xstrdup(tenant);
    s->name = ms_xstrdup(name);
    r->subjects[r->nsubjects++] = s;
    return s;
}

size_t rg_live_count(const rg_subject *s)
{
    size_t n = 0;
    for (size_t i = 0; s && i < s->nv; i++)
        n += !s->v[i].deleted;
    return n;
}

rg_version *rg_locked_version(rg_subject *s, int v, bool include_deleted)
{
    if (!s) return NULL;
    for (size_t i = s->nv; i-- > 0;) {
        rg_version *x = &s->v[i];
        if (x->deleted && !include_deleted) continue;
        if (v == -1 || x->version == v) return x;
    }
    return NULL;
}

/* Inserts version x into s keeping versions ascending. */
static void subject_add_version(rg_subject *s, rg_version x)
{
    if (s->nv == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4;
        s->v = ms_xrealloc(s->v, s->cap * sizeof *s->v);
    }
    size_t i = s->nv;
    while (i > 0 && s->v[i - 1].version > x.version) {
        s->v[i] = s->v[i - 1];
        i--;
    }
    s->v[i] = x;
    s->nv++;
}

static rg_tenant *locked_tenant(ms_registry *r, const char *tenant, bool create)
{
    for (size_t i = 0; i < r->ntenants; i++)
        if (strcmp(r->tenants[i].tenant, tenant) == 0) return &r->tenants[i];
    if (!create) return NULL;
    r->tenants = ms_xrealloc(r->tenants, (r->ntenants + 1) * sizeof *r->tenants);
    rg_tenant *t = &r->tenants[r->ntenants++];
    *t = (rg_tenant){.tenant = ms_xstrdup(tenant)};
    return t;
}

const char *rg_locked_tenant_level(ms_registry *r, const char *tenant)
{
    rg_tenant *t = locked_tenant(r, tenant, false);
    return t ? t->compat : NULL;
}

const char *rg_locked_level(ms_registry *r, const char *tenant, const rg_subject *s)
{
    if (s && s->compat) return s->compat;
    const char *t = rg_locked_tenant_level(r, tenant);
    return t ? t : "BACKWARD";
}

/* ---- persistence ------------------------------------------------------------------------------
 */

/* True when other workers may write the registry's records (the store has commit
 * notifications): then what this one holds in memory is refreshed from the store. */
static bool shared_store(const ms_registry *r)
{
    return !r->url && r->store && r->store->version >= 4 && r->store->watch && r->store->ctl_list;
}

/* Stores a new generation token (rg_locked_sync): after a write, so that a worker that reads
 * the token reads the write too. A failure only delays the others' refresh (RG_REFRESH_MAX_MS). */
static void bump_gen(ms_registry *r)
{
    static atomic_ullong counter;
    char json[96];
    snprintf(json, sizeof json, "{\"gen\":\"%ld-%llu-%llu\"}", (long)getpid(), ms_now_ms(),
             atomic_fetch_add(&counter, 1) + 1);
    ms_error err;
    ms_error_clear(&err);
    if (r->store->ctl_put(r->store_ctx, "", KIND_GEN, "gen", json, &err) != MS_OK)
        ms_log_warn(r->log, "registry: cannot store the generation: %s", err.detail);
}

/* Stores json under (tenant, kind, key), replacing a record there; with added != NULL only if
 * no record has that key (ctl_add: the store-side guard of ids and versions allocated by several
 * workers at once), *added telling whether it was stored. */
static int put_record(ms_registry *r, const char *tenant, const char *kind, const char *key,
                      const char *json, bool *added, rg_fail *f)
{
    if (added) *added = true;
    if (!r->store || !r->store->ctl_put) return RG_OK; /* no store: memory only */
    ms_error err;
    ms_error_clear(&err);
    ms_err rc = added && json && r->store->version >= 4 && r->store->ctl_add
                    ? r->store->ctl_add(r->store_ctx, tenant, kind, key, json, added, &err)
                    : r->store->ctl_put(r->store_ctx, tenant, kind, key, json, &err);
    if (rc != MS_OK)
        return rg_failf(f, RG_STORE_ERROR, "Error while storing the registry record: %s",
                        err.detail);
    if ((!added || *added) && shared_store(r)) bump_gen(r);
    return RG_OK;
}

/* Adds the record of a new schema id; *added is false when the id is taken (another worker). */
static int persist_schema(ms_registry *r, const rg_schema *s, bool *added, rg_fail *f)
{
    char key[16];
    snprintf(key, sizeof key, "%010u", s->id);
    ms_buf b = MS_BUF_INIT;
    ms_buf_printf(&b, "{\"id\":%u,\"schema\":", s->id);
    ms_buf_put_jstr(&b, s->text);
    ms_buf_puts(&b, ",\"schemaType\":\"AVRO\"}");
    int rc = put_record(r, "", KIND_SCHEMA, key, b.data, added, f);
    ms_buf_free(&b);
    return rc;
}

/* Writes (or with remove, deletes) the record of version x of s; with added != NULL only adds
 * it (a new version), *added false when another worker has that version number. */
static int persist_version(ms_registry *r, const rg_subject *s, const rg_version *x, bool remove,
                           bool *added, rg_fail *f)
{
    ms_buf key = MS_BUF_INIT, b = MS_BUF_INIT;
    ms_buf_printf(&key, "%s/%010d", s->name, x->version);
    ms_buf_puts(&b, "{\"subject\":");
    ms_buf_put_jstr(&b, s->name);
    ms_buf_printf(&b, ",\"version\":%d,\"id\":%u,\"deleted\":%s}", x->version, x->id,
                  x->deleted ? "true" : "false");
    int rc = put_record(r, s->tenant, KIND_VERSION, key.data, remove ? NULL : b.data, added, f);
    ms_buf_free(&key);
    ms_buf_free(&b);
    return rc;
}

static int persist_level(ms_registry *r, const char *tenant, const char *subject, const char *level,
                         rg_fail *f)
{
    ms_buf b = MS_BUF_INIT;
    if (level) ms_buf_printf(&b, "{\"compatibilityLevel\":\"%s\"}", level);
    int rc =
        put_record(r, tenant, KIND_CONFIG, subject ? subject : "", level ? b.data : NULL, NULL, f);
    ms_buf_free(&b);
    return rc;
}

/* ---- kafka_schema assets ----------------------------------------------------------------------
 */

static ms_event *asset_event(ms_op op, const char *tenant, const char *qn, const char *type,
                             const char *name, const char *parent, json_object *attrs)
{
    ms_event *ev = ms_xcalloc(1, sizeof *ev);
    ev->op = op;
    ev->tenant = ms_xstrdup(tenant);
    ev->qn = ms_xstrdup(qn);
    ev->type = ms_xstrdup(type);
    if (op == MS_OP_UPSERT) {
        ev->name = ms_xstrdup(name);
        ev->parent = ms_xstrdup(parent);
        ms_buf b = MS_BUF_INIT;
        ms_json_canonical(attrs, &b);
        ev->attributes = ms_buf_steal(&b);
    }
    ev->lane = MS_LANE_FAST;
    ev->lane_known = true;
    ev->bytes = strlen(qn) + (ev->attributes ? strlen(ev->attributes) : 0) + 64;
    return ev;
}

/* Submits evs (taking them) and logs what the engine refused: the registry's own state is
 * already durable, the assets are its mirror in the catalogue. */
static void submit_events(ms_registry *r, ms_event **evs, size_t n)
{
    if (!r->engine) {
        for (size_t i = 0; i < n; i++)
            ms_event_free(evs[i]);
        return;
    }
    ms_apply_result res[4];
    ms_error err;
    ms_error_clear(&err);
    if (ms_engine_submit(r->engine, evs, n, res, &err) != MS_OK) {
        ms_log_warn(r->log, "registry: kafka_schema assets not written: %s", err.detail);
        for (size_t i = 0; i < n; i++)
            ms_event_free(evs[i]);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (res[i].status == MS_APPLY_REJECTED)
            ms_log_warn(r->log, "registry: asset refused: %s %s", ms_err_code(res[i].code),
                        res[i].detail);
}

/*
 * The qualified name of a subject's asset: "registry/<subject>" with '%' and '/' of the subject
 * percent-encoded (%25, %2F), so that subject "a/1" is never taken for version 1 of subject "a"
 * and two subjects never share an asset. The asset's name stays the subject as given.
 */
static void subject_qn(ms_buf *b, const char *subject)
{
    ms_buf_puts(b, "registry/");
    for (const char *p = subject; *p; p++) {
        if (*p == '%')
            ms_buf_puts(b, "%25");
        else if (*p == '/')
            ms_buf_puts(b, "%2F");
        else
            ms_buf_putc(b, *p);
    }
}

/* Upserts registry/<subject> and registry/<subject>/<version>. */
static void submit_version_assets(ms_registry *r, const char *tenant, const char *subject,
                                  int version, const rg_schema *s)
{
    ms_buf sq = MS_BUF_INIT, vq = MS_BUF_INIT, vn = MS_BUF_INIT;
    subject_qn(&sq, subject);
    ms_buf_printf(&vq, "%s/%d", sq.data, version);
    ms_buf_printf(&vn, "%d", version);
    json_object *sa = json_object_new_object();
    json_object_object_add(sa, "subject", json_object_new_string(subject));
    json_object *va = json_object_new_object();
    json_object_object_add(va, "subject", json_object_new_string(subject));
    json_object_object_add(va, "version", json_object_new_int(version));
    json_object_object_add(va, "id", json_object_new_int64(s->id));
    json_object_object_add(va, "schema_type", json_object_new_string("AVRO"));
    json_object_object_add(va, "schema", json_object_new_string(s->text));
    char fp[24];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)s->fingerprint);
    json_object_object_add(va, "fingerprint", json_object_new_string(fp));
    ms_event *evs[2] = {
        asset_event(MS_OP_UPSERT, tenant, sq.data, "kafka_subject", subject, NULL, sa),
        asset_event(MS_OP_UPSERT, tenant, vq.data, "kafka_schema", vn.data, sq.data, va)};
    json_object_put(sa);
    json_object_put(va);
    ms_buf_free(&sq);
    ms_buf_free(&vq);
    ms_buf_free(&vn);
    submit_events(r, evs, 2);
}

/* Deletes registry/<subject>/<v> for each of versions[0..n), then the subject when whole. */
static void submit_delete_assets(ms_registry *r, const char *tenant, const char *subject,
                                 const int *versions, size_t n, bool whole)
{
    ms_buf q = MS_BUF_INIT;
    for (size_t i = 0; i <= n; i++) {
        if (i == n && !whole) break;
        ms_buf_reset(&q);
        subject_qn(&q, subject);
        if (i < n) ms_buf_printf(&q, "/%d", versions[i]);
        ms_event *ev = asset_event(MS_OP_DELETE, tenant, ms_buf_cstr(&q),
                                   i < n ? "kafka_schema" : "kafka_subject", NULL, NULL, NULL);
        submit_events(r, &ev, 1);
    }
    ms_buf_free(&q);
}

/* ---- schemas and compatibility ----------------------------------------------------------------
 */

int rg_schema_prepare(const char *text, size_t len, const char *schema_type, ms_avro_schema **out,
                      char **norm, rg_fail *f)
{
    *out = NULL;
    *norm = NULL;
    if (schema_type && strcmp(schema_type, "AVRO") != 0)
        return rg_failf(f, RG_INVALID_SCHEMA,
                        "Invalid schema: schemaType '%.40s' is not supported; only AVRO is",
                        schema_type);
    if (!text || !len) return rg_failf(f, RG_INVALID_SCHEMA, "Empty schema");
    if (len > MS_AVRO_MAX_SCHEMA_BYTES)
        return rg_failf(f, RG_INVALID_SCHEMA, "Invalid schema: larger than %d bytes",
                        MS_AVRO_MAX_SCHEMA_BYTES);
    ms_error err;
    ms_error_clear(&err);
    if (ms_avro_schema_parse(text, len, out, &err) != MS_OK)
        return rg_failf(f, RG_INVALID_SCHEMA, "Invalid schema: %s", err.detail);
    /* The parser accepted the text, so it is JSON within the depth limit. */
    json_object *o = ms_json_parse(text, len, MS_AVRO_MAX_DEPTH + 2, NULL, &err);
    if (!o) {
        ms_avro_schema_free(*out);
        *out = NULL;
        return rg_failf(f, RG_INVALID_SCHEMA, "Invalid schema: %s", err.detail);
    }
    *norm = ms_xstrdup(
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return RG_OK;
}

/* Appends one JSON string message to why (comma separated), with the lines of detail. */
static void why_add(ms_buf *why, int version, const char *dir, const ms_buf *detail)
{
    if (!why) return;
    const char *p = ms_buf_cstr(detail);
    do {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n || p == ms_buf_cstr(detail)) {
            ms_buf m = MS_BUF_INIT;
            ms_buf_printf(&m, "%s version %d: ", dir, version);
            ms_buf_append(&m, p, n);
            if (!n) ms_buf_puts(&m, "incompatible");
            if (why->len) ms_buf_putc(why, ',');
            ms_buf_put_jstr(why, m.data);
            ms_buf_free(&m);
        }
        p = e ? e + 1 : NULL;
    } while (p && *p);
}

/* Checks the new schema against one existing one under level (its direction only). */
static bool check_pair(const char *level, const ms_avro_schema *neu, const rg_schema *old,
                       int version, ms_buf *why)
{
    bool ok = true;
    ms_buf d = MS_BUF_INIT;
    if (strncmp(level, "BACKWARD", 8) == 0 || strncmp(level, "FULL", 4) == 0) {
        if (!ms_avro_can_read(neu, old->avro, &d)) {
            ok = false;
            why_add(why, version, "BACKWARD: the new schema cannot read data written with", &d);
        }
    }
    ms_buf_reset(&d);
    if (strncmp(level, "FORWARD", 7) == 0 || strncmp(level, "FULL", 4) == 0) {
        if (!ms_avro_can_read(old->avro, neu, &d)) {
            ok = false;
            why_add(why, version, "FORWARD: data written with the new schema cannot be read by",
                    &d);
        }
    }
    ms_buf_free(&d);
    return ok;
}

/* Checks neu against s under level: the latest live version, or every live version when
 * transitive. */
static bool locked_check_level(ms_registry *r, const rg_subject *s, const char *level,
                               const ms_avro_schema *neu, ms_buf *why)
{
    if (strcmp(level, "NONE") == 0 || !s) return true;
    bool transitive = strstr(level, "_TRANSITIVE") != NULL;
    bool ok = true;
    for (size_t i = s->nv; i-- > 0;) {
        if (s->v[i].deleted) continue;
        const rg_schema *old = rg_locked_schema(r, s->v[i].id);
        if (old && !check_pair(level, neu, old, s->v[i].version, why)) ok = false;
        if (!transitive) break;
    }
    return ok;
}

int rg_check(ms_registry *r, const char *tenant, const char *subject, int v, const char *text,
             size_t len, const char *schema_type, bool *ok, ms_buf *why, rg_fail *f)
{
    ms_avro_schema *neu = NULL;
    char *norm = NULL;
    pthread_mutex_lock(&r->mu);
    rg_subject *s = rg_locked_subject(r, tenant, subject, false);
    int rc = RG_OK;
    /* Like Confluent 7: with no version or "latest", a subject without live versions has
     * nothing to be incompatible with; a numbered version must exist. */
    if (!rg_live_count(s) && v > 0)
        rc = rg_failf(f, RG_SUBJECT_NOT_FOUND, "Subject '%s' not found.", subject);
    if (!rg_live_count(s) && v <= 0) v = 0;
    rg_version *x = rc == RG_OK && v != 0 ? rg_locked_version(s, v, false) : NULL;
    if (rc == RG_OK && v != 0 && !x)
        rc = rg_failf(f, RG_VERSION_NOT_FOUND, "Version %d not found.", v);
    pthread_mutex_unlock(&r->mu);
    if (rc == RG_OK) rc = rg_schema_prepare(text, len, schema_type, &neu, &norm, f);
    if (rc != RG_OK) return rc;
    pthread_mutex_lock(&r->mu);
    s = rg_locked_subject(r, tenant, subject, false);
    const char *level = rg_locked_level(r, tenant, s);
    x = v != 0 ? rg_locked_version(s, v, false) : NULL;
    if (v != 0 && x) {
        const rg_schema *old = rg_locked_schema(r, x->id);
        /* Against one version: the level's direction(s), no transitivity; NONE is always
         * compatible. */
        *ok = strcmp(level, "NONE") == 0 || !old || check_pair(level, neu, old, x->version, why);
    } else {
        *ok = locked_check_level(r, s, level, neu, why);
    }
    pthread_mutex_unlock(&r->mu);
    ms_avro_schema_free(neu);
    free(norm);
    return RG_OK;
}

/* ---- writes -----------------------------------------------------------------------------------
 */

static int load_schema(void *ud, const char *tenant, const char *key, const char *json);
static int load_version(void *ud, const char *tenant, const char *key, const char *json);
static int load_config(void *ud, const char *tenant, const char *key, const char *json);

/* How many times a registration starts again after another worker took the id or version it
 * was about to write (each time it has read their records first, so it goes past them). */
#define RG_ALLOC_TRIES 16

/* Reads the stored schemas again: ids other workers allocated become known (load_schema adds
 * the new ones, and next_id passes every stored id). @locks_required mu */
static int locked_reload_schemas(ms_registry *r, rg_fail *f)
{
    if (!r->store || !r->store->ctl_list || r->store->version < 2) return RG_OK;
    ms_error e;
    ms_error_clear(&e);
    if (r->store->ctl_list(r->store_ctx, NULL, KIND_SCHEMA, load_schema, r, &e) != MS_OK)
        return rg_failf(f, RG_STORE_ERROR, "Error while reading the registry records: %s",
                        e.detail);
    return RG_OK;
}

/* A stored record, copied (ctl_list's strings live only during its callback). */
typedef struct rg_rec {
    char *key, *json;
} rg_rec;

typedef struct rg_recs {
    rg_rec *v;
    size_t n;
} rg_recs;

static int collect_rec(void *ud, const char *tenant, const char *key, const char *json)
{
    rg_recs *rs = ud;
    (void)tenant;
    rs->v = ms_xrealloc(rs->v, (rs->n + 1) * sizeof *rs->v);
    rs->v[rs->n++] = (rg_rec){ms_xstrdup(key), ms_xstrdup(json)};
    return 0;
}

static void recs_free(rg_recs *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->v[i].key);
        free(rs->v[i].json);
    }
    free(rs->v);
}

static int gen_cb(void *ud, const char *tenant, const char *key, const char *json)
{
    (void)tenant;
    (void)key;
    struct json_object *o = ms_json_parse(json, strlen(json), 0, NULL, NULL), *g = NULL;
    if (o && json_object_object_get_ex(o, "gen", &g))
        snprintf(ud, RG_GEN_LEN, "%s", json_object_get_string(g));
    json_object_put(o);
    return 1;
}

int rg_gen_read(ms_registry *r, char gen[RG_GEN_LEN], rg_fail *f)
{
    gen[0] = '\0';
    if (!shared_store(r)) return RG_OK;
    ms_error e;
    ms_error_clear(&e);
    if (r->store->ctl_list(r->store_ctx, "", KIND_GEN, gen_cb, gen, &e) != MS_OK)
        return rg_failf(f, RG_STORE_ERROR, "Error while reading the registry records: %s",
                        e.detail);
    return RG_OK;
}

int rg_locked_sync(ms_registry *r, const char *tenant, const char *gen, rg_fail *f)
{
    if (!shared_store(r)) return RG_OK;
    unsigned long long now = ms_now_ms();
    rg_tenant *t = locked_tenant(r, tenant, true);
    if (t->synced_ms && now - t->synced_ms < RG_REFRESH_MAX_MS && strcmp(t->gen, gen) == 0)
        return RG_OK; /* nothing written since the last refresh */
    int rc = rg_locked_refresh(r, tenant, f);
    if (rc == RG_OK) { /* the token read before the records: a later write refreshes again */
        t = locked_tenant(r, tenant, true);
        snprintf(t->gen, sizeof t->gen, "%s", gen);
        t->synced_ms = now;
    }
    return rc;
}

int rg_locked_refresh(ms_registry *r, const char *tenant, rg_fail *f)
{
    if (!shared_store(r)) return RG_OK; /* memory is the truth: no other worker writes these */
    int rc = locked_reload_schemas(r, f);
    rg_recs vers = {0}, confs = {0};
    ms_error e;
    ms_error_clear(&e);
    if (rc == RG_OK &&
        (r->store->ctl_list(r->store_ctx, tenant, KIND_VERSION, collect_rec, &vers, &e) != MS_OK ||
         r->store->ctl_list(r->store_ctx, tenant, KIND_CONFIG, collect_rec, &confs, &e) != MS_OK))
        rc = rg_failf(f, RG_STORE_ERROR, "Error while reading the registry records: %s", e.detail);
    if (rc == RG_OK) { /* the tenant's subjects and levels become what the store holds */
        for (size_t i = 0; i < r->nsubjects; i++)
            if (strcmp(r->subjects[i]->tenant, tenant) == 0) {
                r->subjects[i]->nv = 0;
                r->subjects[i]->compat = NULL;
            }
        rg_tenant *t = locked_tenant(r, tenant, false);
        if (t) t->compat = NULL;
        for (size_t i = 0; i < vers.n; i++)
            load_version(r, tenant, vers.v[i].key, vers.v[i].json);
        for (size_t i = 0; i < confs.n; i++)
            load_config(r, tenant, confs.v[i].key, confs.v[i].json);
    }
    recs_free(&vers);
    recs_free(&confs);
    return rc;
}

int rg_register(ms_registry *r, const char *tenant, const char *subject, const char *text,
                size_t len, const char *schema_type, uint32_t *id, int *version, rg_fail *f)
{
    if (!subject || !*subject || strlen(subject) > 255)
        return rg_failf(f, RG_INVALID_SCHEMA, "Invalid subject: 1 to 255 bytes");
    ms_avro_schema *neu = NULL;
    char *norm = NULL;
    int rc = rg_schema_prepare(text, len, schema_type, &neu, &norm, f);
    if (rc != RG_OK) return rc;
    pthread_mutex_lock(&r->mu);
    bool created = !rg_locked_subject(r, tenant, subject, false);
    rg_subject *s = NULL;
    rg_schema *sch = NULL;
    rg_version x = {0};
    for (int tries = 0;; tries++) {
        s = rg_locked_subject(r, tenant, subject, true);
        sch = locked_schema_by_text(r, norm);
        for (size_t i = s->nv; sch && i-- > 0;)
            if (!s->v[i].deleted && s->v[i].id == sch->id) { /* already registered */
                *id = sch->id;
                *version = s->v[i].version;
                pthread_mutex_unlock(&r->mu);
                ms_avro_schema_free(neu);
                free(norm);
                return RG_OK;
            }
        ms_buf why = MS_BUF_INIT;
        const char *level = rg_locked_level(r, tenant, s);
        /* The built-ins (registered at open) are MetaSync's own wire formats: an operator's
         * level on their subjects cannot refuse them, or the changes sink would have no id to
         * write. */
        if (!r->opening && !locked_check_level(r, s, level, sch ? sch->avro : neu, &why)) {
            rc = rg_failf(f, RG_INCOMPATIBLE,
                          "Schema being registered is incompatible with an earlier schema for "
                          "subject \"%s\" (compatibility %s); details: [%.250s]",
                          subject, level, ms_buf_cstr(&why));
        }
        ms_buf_free(&why);
        /* Other workers on the same store may have registered schemas since this one loaded:
         * read them first, so that the same text gets the same id and a new id starts above
         * theirs. */
        if (rc == RG_OK && !sch && locked_reload_schemas(r, NULL) == RG_OK)
            sch = locked_schema_by_text(r, norm);
        for (int t = 0; rc == RG_OK && !sch; t++) {
            rg_schema *c = ms_xcalloc(1, sizeof *c);
            c->id = r->next_id ? r->next_id : 1;
            c->text = norm;
            c->avro = neu;
            c->fingerprint = ms_avro_schema_fingerprint(c->avro);
            bool added = false;
            rc = persist_schema(r, c, &added, f);
            if (rc == RG_OK && added) {
                locked_schema_add(r, c);
                sch = c;
                norm = ms_xstrdup(c->text); /* still the lookup key if this goes round again */
                neu = NULL;
                break;
            }
            uint32_t taken = c->id;
            free(c); /* its text and schema are still norm and neu */
            if (rc != RG_OK) break;
            ms_log_info(r->log,
                        "registry: schema id %u was just taken by another worker; "
                        "reading the stored schemas again",
                        taken);
            /* The id was taken by another worker at the same moment: read theirs (next_id goes
             * past it; it may even be this very text) and try the next. */
            if (t >= RG_ALLOC_TRIES || (rc = locked_reload_schemas(r, f)) != RG_OK) {
                if (rc == RG_OK)
                    rc = rg_failf(f, RG_STORE_ERROR, "No free schema id after %d tries", t);
                break;
            }
            sch = locked_schema_by_text(r, norm);
        }
        if (rc != RG_OK) break;
        x = (rg_version){.version = s->nv ? s->v[s->nv - 1].version + 1 : 1, .id = sch->id};
        bool added = false;
        rc = persist_version(r, s, &x, false, &added, f);
        if (rc != RG_OK || added) break;
        /* Another worker registered this version number under the subject at the same moment:
         * read the subject again and start over (maybe it registered this very schema, maybe
         * the compatibility check now has a newer version to pass). */
        ms_log_info(r->log,
                    "registry: version %d of %s was just taken by another worker; "
                    "reading the subject again",
                    x.version, subject);
        if (tries >= RG_ALLOC_TRIES) {
            rc = rg_failf(f, RG_STORE_ERROR, "No free version of subject %s after %d tries",
                          subject, tries);
            break;
        }
        if ((rc = rg_locked_refresh(r, tenant, f)) != RG_OK) break;
    }
    if (rc == RG_OK) {
        subject_add_version(s, x);
        /* As Confluent does, the soft-deleted versions of this subject with the same id are
         * removed for good: the new version supersedes them (a failure just leaves them). */
        for (size_t i = 0; i < s->nv;) {
            if (s->v[i].deleted && s->v[i].id == x.id &&
                persist_version(r, s, &s->v[i], true, NULL, NULL) == RG_OK) {
                memmove(&s->v[i], &s->v[i + 1], (s->nv - i - 1) * sizeof *s->v);
                s->nv--;
            } else {
                i++;
            }
        }
    }
    if (rc != RG_OK && created && s && s->nv == 0 && !s->compat && r->nsubjects &&
        r->subjects[r->nsubjects - 1] == s) {
        /* A failed first registration leaves no empty subject behind (it was appended last). */
        r->nsubjects--;
        free(s->tenant);
        free(s->name);
        free(s->v);
        free(s);
        s = NULL;
    }
    rg_schema snapshot = {0};
    if (rc == RG_OK) {
        *id = sch->id;
        *version = x.version;
        snapshot = *sch; /* schemas are immutable and never freed before the registry */
    }
    pthread_mutex_unlock(&r->mu);
    ms_avro_schema_free(neu);
    free(norm);
    if (rc == RG_OK && !r->opening) submit_version_assets(r, tenant, subject, x.version, &snapshot);
    return rc;
}

int rg_delete_version(ms_registry *r, const char *tenant, const char *subject, int v,
                      bool permanent, int *deleted, rg_fail *f)
{
    pthread_mutex_lock(&r->mu);
    rg_subject *s = rg_locked_subject(r, tenant, subject, false);
    int rc = RG_OK;
    rg_version *x = NULL;
    if (!s || !s->nv || (!permanent && !rg_live_count(s)))
        rc = rg_failf(f, RG_SUBJECT_NOT_FOUND, "Subject '%s' not found.", subject);
    else if (!(x = rg_locked_version(s, v, permanent || v != -1)))
        rc = rg_failf(f, RG_VERSION_NOT_FOUND, "Version %d not found.", v);
    else if (!permanent && x->deleted)
        rc = rg_failf(f, RG_VERSION_SOFT_DELETED,
                      "Subject '%s' Version %d was soft deleted. Set permanent=true to delete "
                      "permanently",
                      subject, x->version);
    else if (permanent && !x->deleted)
        rc = rg_failf(f, RG_VERSION_NOT_SOFT_DELETED,
                      "Subject '%s' Version %d was not deleted first before being permanently "
                      "deleted",
                      subject, x->version);
    int ver = x ? x->version : 0;
    if (rc == RG_OK && !permanent) {
        rg_version y = *x;
        y.deleted = true;
        rc = persist_version(r, s, &y, false, NULL, f);
        if (rc == RG_OK) x->deleted = true;
    } else if (rc == RG_OK) {
        rc = persist_version(r, s, x, true, NULL, f);
        if (rc == RG_OK) {
            size_t i = (size_t)(x - s->v);
            memmove(&s->v[i], &s->v[i + 1], (s->nv - i - 1) * sizeof *s->v);
            s->nv--;
        }
    }
    bool whole = rc == RG_OK && !permanent && !rg_live_count(s);
    pthread_mutex_unlock(&r->mu);
    if (rc == RG_OK) *deleted = ver;
    if (rc == RG_OK && !permanent) submit_delete_assets(r, tenant, subject, &ver, 1, whole);
    return rc;
}

int rg_delete_subject(ms_registry *r, const char *tenant, const char *subject, bool permanent,
                      ms_buf *out, rg_fail *f)
{
    pthread_mutex_lock(&r->mu);
    rg_subject *s = rg_locked_subject(r, tenant, subject, false);
    int rc = RG_OK;
    if (!s || !s->nv)
        rc = rg_failf(f, RG_SUBJECT_NOT_FOUND, "Subject '%s' not found.", subject);
    else if (!permanent && !rg_live_count(s))
        rc = rg_failf(f, RG_SUBJECT_SOFT_DELETED,
                      "Subject '%s' was soft deleted. Set permanent=true to delete permanently",
                      subject);
    else if (permanent && rg_live_count(s))
        rc = rg_failf(f, RG_SUBJECT_NOT_SOFT_DELETED,
                      "Subject '%s' was not deleted first before being permanently deleted",
                      subject);
    int *vers = NULL;
    size_t n = 0;
    if (rc == RG_OK) {
        vers = ms_xcalloc(s->nv + 1, sizeof *vers);
        for (size_t i = 0; i < s->nv && rc == RG_OK; i++) {
            rg_version *x = &s->v[i];
            if (!permanent && x->deleted) continue;
            rg_version y = *x;
            y.deleted = true;
            rc = persist_version(r, s, &y, permanent, NULL, f);
            if (rc == RG_OK) {
                x->deleted = true;
                vers[n++] = x->version;
            }
        }
        if (permanent && rc == RG_OK) s->nv = 0;
        /* A partial failure of a permanent delete leaves the versions not yet removed. */
        if (permanent && rc != RG_OK && n) {
            memmove(s->v, s->v + n, (s->nv - n) * sizeof *s->v);
            s->nv -= n;
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (rc == RG_OK) {
        ms_buf_putc(out, '[');
        for (size_t i = 0; i < n; i++)
            ms_buf_printf(out, "%s%d", i ? "," : "", vers[i]);
        ms_buf_putc(out, ']');
        if (!permanent) submit_delete_assets(r, tenant, subject, vers, n, true);
    }
    free(vers);
    return rc;
}

int rg_set_level(ms_registry *r, const char *tenant, const char *subject, const char *level,
                 const char **prev, rg_fail *f)
{
    const char *lv = level_static(level);
    if (level && !lv)
        return rg_failf(f, RG_INVALID_COMPAT,
                        "Invalid compatibility level. Valid values are "
                        "none, backward, forward, full, "
                        "backward_transitive, forward_transitive, and "
                        "full_transitive");
    pthread_mutex_lock(&r->mu);
    int rc = persist_level(r, tenant, subject, lv, f);
    if (rc == RG_OK) {
        if (subject) {
            rg_subject *s = rg_locked_subject(r, tenant, subject, lv != NULL);
            *prev = s ? s->compat : NULL;
            if (s) s->compat = (char *)lv; /* static strings from rg_levels */
        } else {
            rg_tenant *t = locked_tenant(r, tenant, true);
            *prev = t->compat;
            t->compat = (char *)lv;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* ---- open and load ----------------------------------------------------------------------------
 */

static int load_schema(void *ud, const char *tenant, const char *key, const char *json)
{
    ms_registry *r = ud;
    (void)tenant;
    json_object *o = json_tokener_parse(json), *v;
    const char *text =
        o && json_object_object_get_ex(o, "schema", &v) ? json_object_get_string(v) : NULL;
    uint32_t id =
        o && json_object_object_get_ex(o, "id", &v) ? (uint32_t)json_object_get_int64(v) : 0;
    ms_avro_schema *a = NULL;
    char *norm = NULL;
    rg_fail f;
    /* next_id passes every stored id, loaded or not (the key is the id too), so an id is never
     * given out twice even when its record cannot be read. */
    uint32_t kid = (uint32_t)strtoul(key, NULL, 10);
    uint32_t top = kid > id ? kid : id;
    if (top && top >= r->next_id) r->next_id = top + 1;
    if (id && rg_locked_schema(r, id)) {
        /* known already (a refresh: schemas are immutable) */
    } else if (!text || !id ||
               rg_schema_prepare(text, strlen(text), NULL, &a, &norm, &f) != RG_OK) {
        ms_log_warn(r->log, "registry: stored schema %s not loaded", key);
    } else {
        rg_schema *s = ms_xcalloc(1, sizeof *s);
        s->id = id;
        s->text = norm;
        s->avro = a;
        s->fingerprint = ms_avro_schema_fingerprint(a);
        locked_schema_add(r, s);
    }
    json_object_put(o);
    return 0;
}

static int load_version(void *ud, const char *tenant, const char *key, const char *json)
{
    ms_registry *r = ud;
    json_object *o = json_tokener_parse(json), *sj, *vj, *ij, *dj;
    if (o && json_object_object_get_ex(o, "subject", &sj) &&
        json_object_object_get_ex(o, "version", &vj) && json_object_object_get_ex(o, "id", &ij)) {
        rg_subject *s = rg_locked_subject(r, tenant, json_object_get_string(sj), true);
        rg_version x = {json_object_get_int(vj), (uint32_t)json_object_get_int64(ij),
                        json_object_object_get_ex(o, "deleted", &dj) &&
                            json_object_get_boolean(dj)};
        if (x.id >= r->next_id) r->next_id = x.id + 1; /* even if its schema did not load */
        subject_add_version(s, x);
    } else {
        ms_log_warn(r->log, "registry: stored version %s not loaded", key);
    }
    json_object_put(o);
    return 0;
}

static int load_config(void *ud, const char *tenant, const char *key, const char *json)
{
    ms_registry *r = ud;
    json_object *o = json_tokener_parse(json), *v;
    const char *lv = o && json_object_object_get_ex(o, "compatibilityLevel", &v)
                         ? level_static(json_object_get_string(v))
                         : NULL;
    if (lv && *key)
        rg_locked_subject(r, tenant, key, true)->compat = (char *)lv;
    else if (lv)
        locked_tenant(r, tenant, true)->compat = (char *)lv;
    json_object_put(o);
    return 0;
}

static ms_err load(ms_registry *r, ms_error *err)
{
    if (!r->store || !r->store->ctl_list || r->store->version < 2) return MS_OK;
    ms_err rc = r->store->ctl_list(r->store_ctx, NULL, KIND_SCHEMA, load_schema, r, err);
    if (rc == MS_OK)
        rc = r->store->ctl_list(r->store_ctx, NULL, KIND_VERSION, load_version, r, err);
    if (rc == MS_OK) rc = r->store->ctl_list(r->store_ctx, NULL, KIND_CONFIG, load_config, r, err);
    return rc;
}

/* Registers the built-in schemas under the default tenant, without the compatibility check (an
 * operator may have made the subject's level stricter than the built-in's evolution); a failure
 * (the store's) is logged here and fatal for the Avro changes sink. They are
 * MetaSync's own wire formats, not the estate's metadata: no kafka_schema assets, so a fresh
 * store stays empty (its change log starts with what users send). */
static void register_builtins(ms_registry *r)
{
    r->opening = true;
    for (size_t i = 0; i < sizeof builtin_schemas / sizeof builtin_schemas[0]; i++) {
        uint32_t id = 0;
        int version = 0;
        rg_fail f;
        const char *t = builtin_schemas[i].text;
        if (rg_register(r, "default", builtin_schemas[i].subject, t, strlen(t), NULL, &id, &version,
                        &f) != RG_OK) {
            ms_log_warn(r->log, "registry: built-in schema %s not registered: %d %s",
                        builtin_schemas[i].subject, f.code, f.msg);
            continue;
        }
        r->builtin[r->nbuiltin].subject = builtin_schemas[i].subject;
        r->builtin[r->nbuiltin++].id = id;
    }
    r->opening = false;
}

void ms_registry_free(ms_registry *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->nschemas; i++)
        schema_free(r->schemas[i]);
    free(r->schemas);
    for (size_t i = 0; i < r->nsubjects; i++) {
        free(r->subjects[i]->tenant);
        free(r->subjects[i]->name);
        free(r->subjects[i]->v);
        free(r->subjects[i]);
    }
    free(r->subjects);
    for (size_t i = 0; i < r->ntenants; i++)
        free(r->tenants[i].tenant);
    free(r->tenants);
    if (r->url) curl_global_cleanup();
    free(r->url);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

ms_err ms_registry_open(const ms_registry_args *args, ms_registry **out, ms_error *err)
{
    *out = NULL;
    ms_registry *r = ms_xcalloc(1, sizeof *r);
    r->cfg = args->cfg;
    r->log = args->log;
    r->store = args->store;
    r->store_ctx = args->store_ctx;
    r->engine = args->engine;
    r->next_id = 1;
    pthread_mutex_init(&r->mu, NULL);
    if (args->cfg && args->cfg->registry_url && *args->cfg->registry_url) {
        /* Reference-counted by libcurl; open runs on the main thread before any transfer. */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            ms_registry_free(r);
            return ms_error_set(err, MS_ERR_INTERNAL, "registry: libcurl cannot start");
        }
        r->url = ms_xstrdup(args->cfg->registry_url);
        size_t n = strlen(r->url);
        while (n && r->url[n - 1] == '/')
            r->url[--n] = '\0';
        ms_log_info(r->log, "registry: external at %s", r->url);
        *out = r;
        return MS_OK;
    }
    ms_err rc = load(r, err);
    if (rc != MS_OK) {
        ms_registry_free(r);
        return rc;
    }
    register_builtins(r);
    ms_log_info(r->log, "registry: embedded, %zu schemas, %zu subjects", r->nschemas, r->nsubjects);
    *out = r;
    return MS_OK;
}

/* ---- the C API --------------------------------------------------------------------------------
 */

ms_err ms_registry_schema_by_id(ms_registry *r, uint32_t id, const ms_avro_schema **out,
                                ms_error *err)
{
    pthread_mutex_lock(&r->mu);
    rg_schema *s = rg_locked_schema(r, id);
    bool known_unknown = false;
    unsigned long long now = ms_now_ms();
    bool shared = !r->url && r->store && r->store->ctl_list && r->store->version >= 2;
    for (size_t i = 0; !s && (r->url || shared) && i < RG_UNKNOWN_CACHE; i++)
        if (r->unknown[i].id == id && r->unknown[i].until > now) known_unknown = true;
    pthread_mutex_unlock(&r->mu);
    if (known_unknown)
        return ms_error_set(err, MS_ERR_UNKNOWN_SCHEMA,
                            "registry %s: schema %u: 40403 not found (cached)",
                            r->url ? r->url : "embedded", id);
    if (!s && shared) {
        /* Another worker on the same store may have registered it since this one loaded: read
         * the stored schemas again (an id still unknown is not asked again for a while). */
        ms_error e;
        ms_error_clear(&e);
        pthread_mutex_lock(&r->mu);
        ms_err rc = r->store->ctl_list(r->store_ctx, NULL, KIND_SCHEMA, load_schema, r, &e);
        s = rg_locked_schema(r, id);
        if (!s && rc == MS_OK) {
            r->unknown[r->unknown_next].id = id;
            r->unknown[r->unknown_next].until = now + RG_UNKNOWN_TTL_MS;
            r->unknown_next = (r->unknown_next + 1) % RG_UNKNOWN_CACHE;
        }
        pthread_mutex_unlock(&r->mu);
        if (rc != MS_OK) return ms_error_set(err, rc, "registry: schema %u: %s", id, e.detail);
    }
    if (!s && r->url) {
        char *text = NULL;
        rg_fail f;
        ms_avro_schema *a = NULL;
        char *norm = NULL;
        int rc = rg_client_fetch(r, id, &text, &f);
        bool fetched = rc == RG_OK;
        if (rc == RG_OK) rc = rg_schema_prepare(text, strlen(text), NULL, &a, &norm, &f);
        free(text);
        if (rc != RG_OK) {
            /* Only "no such id" (40403) and a schema that is not valid are answers; anything
             * else may pass: unreachable (MS_ERR_CONNECT), 5xx or an odd 4xx (MS_ERR_UNAVAILABLE),
             * both retriable. */
            ms_err code = rc == RG_SCHEMA_NOT_FOUND            ? MS_ERR_UNKNOWN_SCHEMA
                          : fetched || rc == RG_INVALID_SCHEMA ? MS_ERR_INVALID_SCHEMA
                          : rc == RG_UPSTREAM_ERROR            ? MS_ERR_CONNECT
                                                               : MS_ERR_UNAVAILABLE;
            if (code == MS_ERR_UNKNOWN_SCHEMA) {
                pthread_mutex_lock(&r->mu);
                r->unknown[r->unknown_next].id = id;
                r->unknown[r->unknown_next].until = now + RG_UNKNOWN_TTL_MS;
                r->unknown_next = (r->unknown_next + 1) % RG_UNKNOWN_CACHE;
                pthread_mutex_unlock(&r->mu);
            }
            return ms_error_set(err, code, "registry %s: schema %u: %d %s", r->url, id, f.code,
                                f.msg);
        }
        pthread_mutex_lock(&r->mu);
        s = rg_locked_schema(r, id);
        if (!s) {
            s = ms_xcalloc(1, sizeof *s);
            s->id = id;
            s->text = norm;
            s->avro = a;
            s->fingerprint = ms_avro_schema_fingerprint(a);
            locked_schema_add(r, s);
            norm = NULL;
            a = NULL;
        }
        pthread_mutex_unlock(&r->mu);
        free(norm);
        ms_avro_schema_free(a);
    }
    if (!s) return ms_error_set(err, MS_ERR_UNKNOWN_SCHEMA, "schema id %u is not registered", id);
    *out = s->avro;
    return MS_OK;
}

ms_err ms_registry_register(ms_registry *r, const char *tenant, const char *subject,
                            const char *text, size_t len, uint32_t *id, ms_error *err)
{
    rg_fail f;
    int version = 0;
    int rc = r->url ? rg_client_register(r, subject, text, len, id, &f)
                    : rg_register(r, tenant, subject, text, len, NULL, id, &version, &f);
    if (rc != RG_OK)
        return ms_error_set(err, rg_code_to_err(rc), "registry: subject %s: %d %s", subject, f.code,
                            f.msg);
    return MS_OK;
}

const char *ms_registry_builtin_text(const char *subject);

uint32_t ms_registry_builtin_id(ms_registry *r, const char *subject)
{
    if (!r) return 0;
    pthread_mutex_lock(&r->mu);
    uint32_t id = 0;
    for (size_t i = 0; i < r->nbuiltin; i++)
        if (strcmp(r->builtin[i].subject, subject) == 0) id = r->builtin[i].id;
    pthread_mutex_unlock(&r->mu);
    const char *text = ms_registry_builtin_text(subject);
    if (id || !r->url || !text) return id;
    /* External: registered there on first use (the remote may not be up at our start). */
    rg_fail f;
    if (rg_client_register(r, subject, text, strlen(text), &id, &f) != RG_OK) {
        ms_log_warn(r->log, "registry: built-in %s not registered at %s: %d %s", subject, r->url,
                    f.code, f.msg);
        return 0;
    }
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < sizeof builtin_schemas / sizeof builtin_schemas[0]; i++)
        if (strcmp(builtin_schemas[i].subject, subject) == 0 && r->nbuiltin < RG_BUILTIN_MAX) {
            r->builtin[r->nbuiltin].subject = builtin_schemas[i].subject; /* static */
            r->builtin[r->nbuiltin++].id = id;
        }
    pthread_mutex_unlock(&r->mu);
    return id;
}

const char *ms_registry_builtin_text(const char *subject)
{
    for (size_t i = 0; i < sizeof builtin_schemas / sizeof builtin_schemas[0]; i++)
        if (strcmp(builtin_schemas[i].subject, subject) == 0) return builtin_schemas[i].text;
    return NULL;
}
