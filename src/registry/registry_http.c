/*
 * registry_http.c — the Confluent Schema Registry REST API of the embedded registry (see
 * ms_registry_http in ms_registry.h and docs/registry.md): routing, request bodies, JSON answers,
 * and the one place that builds the registry's error bodies ({"error_code":N,"message":"..."}).
 *
 * Threads: any (one call per request); state is read under the registry's lock and written
 * through registry.c.
 */
#include "registry_int.h"

#include "ms_json.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CT_JSON  "application/vnd.schemaregistry.v1+json"
#define MAX_SEGS 8

/* One request being answered. */
typedef struct rq {
    ms_registry *r;
    const ms_registry_request *req;
    char *seg[MAX_SEGS]; /* decoded path segments */
    size_t nseg;
    int status;
    ms_buf *out;
} rq;

/* The error body: every error answer of the registry is built here. */
static void send_error(rq *q, int code, const char *msg)
{
    ms_buf_reset(q->out);
    ms_buf_printf(q->out, "{\"error_code\":%d,\"message\":", code);
    ms_buf_put_jstr(q->out, msg);
    ms_buf_putc(q->out, '}');
    q->status = code >= 1000 ? code / 100 : code;
}

static void send_fail(rq *q, const rg_fail *f)
{
    send_error(q, f->code, f->msg);
}

/* ---- request parsing --------------------------------------------------------------------------
 */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into a new string ('+' stays '+', as in paths). */
static char *pct_decode(const char *s, size_t n, bool plus_space)
{
    char *o = ms_xmalloc(n + 1), *p = o;
    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (s[i] == '%' && i + 2 < n && (h = hexval((unsigned char)s[i + 1])) >= 0 &&
            (l = hexval((unsigned char)s[i + 2])) >= 0) {
            *p++ = (char)(h * 16 + l);
            i += 2;
        } else {
            *p++ = plus_space && s[i] == '+' ? ' ' : s[i];
        }
    }
    *p = '\0';
    return o;
}

/* Splits the path into decoded segments; false when there are too many, or when one decodes
 * to a NUL byte (%00: it would silently cut the name short). */
static bool split_path(rq *q, const char *path)
{
    const char *p = path ? path : "";
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p) break;
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (q->nseg == MAX_SEGS) return false;
        for (size_t i = 0; i + 2 < n; i++)
            if (p[i] == '%' && p[i + 1] == '0' && p[i + 2] == '0') return false;
        q->seg[q->nseg++] = pct_decode(p, n, false);
        p += n;
    }
    return true;
}

/* The decoded value of query parameter name (caller frees), or NULL. */
static char *qparam(const char *query, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = query; p && *p;) {
        const char *e = strchr(p, '&');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n >= nl && strncmp(p, name, nl) == 0 && (n == nl || p[nl] == '='))
            return n == nl ? ms_xstrdup("") : pct_decode(p + nl + 1, n - nl - 1, true);
        p = e ? e + 1 : NULL;
    }
    return NULL;
}

static bool qbool(const rq *q, const char *name)
{
    char *v = qparam(q->req->query, name);
    bool b = v && strcasecmp(v, "true") == 0;
    free(v);
    return b;
}

/* Parses a version segment: "latest" or -1 → -1, 1..2^31-1. Sends 42202 and returns false
 * otherwise. */
static bool parse_version(rq *q, const char *s, int *v)
{
    if (strcmp(s, "latest") == 0) {
        *v = -1;
        return true;
    }
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (*s && !*end && errno == 0 && (n == -1 || (n >= 1 && n <= 2147483647LL))) {
        *v = (int)n;
        return true;
    }
    ms_buf m = MS_BUF_INIT;
    ms_buf_printf(&m,
                  "The specified version '%.64s' is not a valid version id. Allowed values are "
                  "between [1, 2^31-1] and the string \"latest\"",
                  s);
    send_error(q, RG_INVALID_VERSION, m.data);
    ms_buf_free(&m);
    return false;
}

/* Parses a schema id segment; sends 40403 when it is not one. */
static bool parse_id(rq *q, const char *s, uint32_t *id)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (*s && isdigit((unsigned char)*s) && !*end && errno == 0 && n >= 1 && n <= 0xffffffffULL) {
        *id = (uint32_t)n;
        return true;
    }
    ms_buf m = MS_BUF_INIT;
    ms_buf_printf(&m, "Schema %.64s not found", s);
    send_error(q, RG_SCHEMA_NOT_FOUND, m.data);
    ms_buf_free(&m);
    return false;
}

/* The parsed JSON object body, or NULL after sending 400 / 42201. */
static json_object *body_object(rq *q)
{
    ms_error err;
    ms_error_clear(&err);
    json_object *o = ms_json_parse(q->req->body ? q->req->body : "", q->req->body_len,
                                   MS_AVRO_MAX_DEPTH + 2, NULL, &err);
    if (!o && err.code != MS_OK) {
        ms_buf m = MS_BUF_INIT;
        ms_buf_printf(&m, "Malformed JSON body: %s", err.detail);
        if (err.line > 0) ms_buf_printf(&m, " (line %ld, column %ld)", err.line, err.column);
        send_error(q, RG_BAD_REQUEST, m.data);
        ms_buf_free(&m);
        return NULL;
    }
    if (!json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        send_error(q, RG_BAD_REQUEST, "The request body must be a JSON object");
        return NULL;
    }
    return o;
}

/* A schema request body: {"schema":"...","schemaType":"AVRO","references":[]}. On success
 * text and len borrow from the object *o (the caller puts it). */
static bool schema_body(rq *q, json_object **o, const char **text, size_t *len, const char **type)
{
    if (!(*o = body_object(q))) return false;
    json_object *v;
    *type = NULL;
    if (json_object_object_get_ex(*o, "schemaType", &v) &&
        !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_string)) {
            send_error(q, RG_INVALID_SCHEMA, "Invalid schema: schemaType must be a string");
            goto fail;
        }
        *type = json_object_get_string(v);
        if (strcmp(*type, "AVRO") != 0) {
            ms_buf m = MS_BUF_INIT;
            ms_buf_printf(&m, "Invalid schema: schemaType '%.40s' is not supported; only AVRO is",
                          *type);
            send_error(q, RG_INVALID_SCHEMA, m.data);
            ms_buf_free(&m);
            goto fail;
        }
    }
    if (json_object_object_get_ex(*o, "references", &v) &&
        !json_object_is_type(v, json_type_null) &&
        !(json_object_is_type(v, json_type_array) && json_object_array_length(v) == 0)) {
        send_error(q, RG_INVALID_SCHEMA,
                   "Invalid schema: schema references are not supported by this registry");
        goto fail;
    }
    if (!json_object_object_get_ex(*o, "schema", &v) || !json_object_is_type(v, json_type_string) ||
        json_object_get_string_len(v) == 0) {
        send_error(q, RG_INVALID_SCHEMA, "Empty schema");
        goto fail;
    }
    *text = json_object_get_string(v);
    *len = (size_t)json_object_get_string_len(v);
    return true;
fail:
    json_object_put(*o);
    *o = NULL;
    return false;
}

/* ---- answers ----------------------------------------------------------------------------------
 */

static void ok_json(rq *q)
{
    q->status = 200;
}

/* {"subject","version","id","schema"} of version x of s (mu held). */
static void put_version(ms_registry *r, ms_buf *out, const rg_subject *s, const rg_version *x)
{
    const rg_schema *sch = rg_locked_schema(r, x->id);
    ms_buf_puts(out, "{\"subject\":");
    ms_buf_put_jstr(out, s->name);
    ms_buf_printf(out, ",\"version\":%d,\"id\":%u,\"schema\":", x->version, x->id);
    ms_buf_put_jstr(out, sch ? sch->text : "");
    ms_buf_putc(out, '}');
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_subject(const void *a, const void *b)
{
    return strcmp((*(rg_subject *const *)a)->name, (*(rg_subject *const *)b)->name);
}

/* GET /subjects */
static void get_subjects(rq *q)
{
    ms_registry *r = q->r;
    bool deleted = qbool(q, "deleted");
    pthread_mutex_lock(&r->mu);
    const char **names = ms_xcalloc(r->nsubjects + 1, sizeof *names);
    size_t n = 0;
    for (size_t i = 0; i < r->nsubjects; i++) {
        rg_subject *s = r->subjects[i];
        if (strcmp(s->tenant, q->req->tenant) != 0) continue;
        if (rg_live_count(s) || (deleted && s->nv)) names[n++] = s->name;
    }
    qsort(names, n, sizeof *names, cmp_str);
    ms_buf_putc(q->out, '[');
    for (size_t i = 0; i < n; i++) {
        if (i) ms_buf_putc(q->out, ',');
        ms_buf_put_jstr(q->out, names[i]);
    }
    ms_buf_putc(q->out, ']');
    pthread_mutex_unlock(&r->mu);
    free(names);
    ok_json(q);
}

/* The subject if it is visible (live versions, or any when deleted); else sends 40401. mu held. */
static rg_subject *visible_subject(rq *q, const char *name, bool deleted)
{
    rg_subject *s = rg_locked_subject(q->r, q->req->tenant, name, false);
    if (s && (rg_live_count(s) || (deleted && s->nv))) return s;
    ms_buf m = MS_BUF_INIT;
    ms_buf_printf(&m, "Subject '%s' not found.", name);
    send_error(q, RG_SUBJECT_NOT_FOUND, m.data);
    ms_buf_free(&m);
    return NULL;
}

/* GET /subjects/{s}/versions */
static void get_versions(rq *q, const char *subject)
{
    ms_registry *r = q->r;
    bool deleted = qbool(q, "deleted");
    pthread_mutex_lock(&r->mu);
    rg_subject *s = visible_subject(q, subject, deleted);
    if (s) {
        ms_buf_putc(q->out, '[');
        bool first = true;
        for (size_t i = 0; i < s->nv; i++) {
            if (s->v[i].deleted && !deleted) continue;
            ms_buf_printf(q->out, "%s%d", first ? "" : ",", s->v[i].version);
            first = false;
        }
        ms_buf_putc(q->out, ']');
        ok_json(q);
    }
    pthread_mutex_unlock(&r->mu);
}

/* GET /subjects/{s}/versions/{v}[/schema] */
static void get_version(rq *q, const char *subject, const char *vs, bool raw)
{
    int v;
    if (!parse_version(q, vs, &v)) return;
    ms_registry *r = q->r;
    bool deleted = qbool(q, "deleted");
    pthread_mutex_lock(&r->mu);
    rg_subject *s = visible_subject(q, subject, deleted);
    rg_version *x = s ? rg_locked_version(s, v, deleted) : NULL;
    if (s && !x) {
        ms_buf m = MS_BUF_INIT;
        ms_buf_printf(&m, "Version %s not found.", vs);
        send_error(q, RG_VERSION_NOT_FOUND, m.data);
        ms_buf_free(&m);
    } else if (x && raw) {
        const rg_schema *sch = rg_locked_schema(r, x->id);
        ms_buf_puts(q->out, sch ? sch->text : "");
        ok_json(q);
    } else if (x) {
        put_version(r, q->out, s, x);
        ok_json(q);
    }
    pthread_mutex_unlock(&r->mu);
}

/* POST /subjects/{s}/versions */
static void post_register(rq *q, const char *subject)
{
    json_object *o;
    const char *text, *type;
    size_t len;
    if (!schema_body(q, &o, &text, &len, &type)) return;
    uint32_t id = 0;
    int version = 0;
    rg_fail f;
    if (rg_register(q->r, q->req->tenant, subject, text, len, type, &id, &version, &f) != RG_OK) {
        send_fail(q, &f);
    } else {
        ms_buf_printf(q->out, "{\"id\":%u}", id);
        ok_json(q);
    }
    json_object_put(o);
}

/* POST /subjects/{s}: is this schema registered under the subject? */
static void post_lookup(rq *q, const char *subject)
{
    json_object *o;
    const char *text, *type;
    size_t len;
    if (!schema_body(q, &o, &text, &len, &type)) return;
    bool deleted = qbool(q, "deleted");
    ms_registry *r = q->r;
    pthread_mutex_lock(&r->mu);
    rg_subject *s = visible_subject(q, subject, deleted);
    pthread_mutex_unlock(&r->mu);
    ms_avro_schema *a = NULL;
    char *norm = NULL;
    rg_fail f;
    if (s && rg_schema_prepare(text, len, type, &a, &norm, &f) != RG_OK) {
        send_fail(q, &f);
        s = NULL;
    }
    if (s) {
        pthread_mutex_lock(&r->mu);
        rg_version *hit = NULL;
        for (size_t i = s->nv; i-- > 0 && !hit;) {
            if (s->v[i].deleted && !deleted) continue;
            const rg_schema *sch = rg_locked_schema(r, s->v[i].id);
            if (sch && strcmp(sch->text, norm) == 0) hit = &s->v[i];
        }
        if (hit) {
            put_version(r, q->out, s, hit);
            ok_json(q);
        } else {
            send_error(q, RG_SCHEMA_NOT_FOUND, "Schema not found");
        }
        pthread_mutex_unlock(&r->mu);
    }
    ms_avro_schema_free(a);
    free(norm);
    json_object_put(o);
}

/* GET /schemas/ids/{id}[/schema|/subjects|/versions] */
static void get_schema_id(rq *q, const char *ids, const char *what)
{
    uint32_t id;
    if (!parse_id(q, ids, &id)) return;
    ms_registry *r = q->r;
    bool deleted = qbool(q, "deleted");
    const ms_avro_schema *known = NULL;
    ms_error e;
    ms_registry_schema_by_id(r, id, &known, &e); /* an id new to this worker: read the store */
    pthread_mutex_lock(&r->mu);
    rg_schema *sch = rg_locked_schema(r, id);
    if (!sch) {
        ms_buf m = MS_BUF_INIT;
        ms_buf_printf(&m, "Schema %u not found", id);
        send_error(q, RG_SCHEMA_NOT_FOUND, m.data);
        ms_buf_free(&m);
    } else if (!what) {
        ms_buf_puts(q->out, "{\"schema\":");
        ms_buf_put_jstr(q->out, sch->text);
        ms_buf_putc(q->out, '}');
        ok_json(q);
    } else if (strcmp(what, "schema") == 0) {
        ms_buf_puts(q->out, sch->text);
        ok_json(q);
    } else {
        bool versions = strcmp(what, "versions") == 0;
        rg_subject **subs = ms_xcalloc(r->nsubjects + 1, sizeof *subs);
        size_t n = 0;
        for (size_t i = 0; i < r->nsubjects; i++)
            if (strcmp(r->subjects[i]->tenant, q->req->tenant) == 0) subs[n++] = r->subjects[i];
        qsort(subs, n, sizeof *subs, cmp_subject);
        ms_buf_putc(q->out, '[');
        bool first = true;
        for (size_t i = 0; i < n; i++) {
            const rg_subject *s = subs[i];
            for (size_t k = 0; k < s->nv; k++) {
                if (s->v[k].id != id || (s->v[k].deleted && !deleted)) continue;
                if (!first) ms_buf_putc(q->out, ',');
                first = false;
                if (versions) {
                    ms_buf_puts(q->out, "{\"subject\":");
                    ms_buf_put_jstr(q->out, s->name);
                    ms_buf_printf(q->out, ",\"version\":%d}", s->v[k].version);
                } else {
                    ms_buf_put_jstr(q->out, s->name);
                    break;
                }
            }
        }
        ms_buf_putc(q->out, ']');
        free(subs);
        ok_json(q);
    }
    pthread_mutex_unlock(&r->mu);
}

/* DELETE /subjects/{s}[/versions/{v}] */
static void delete_route(rq *q, const char *subject, const char *vs)
{
    bool permanent = qbool(q, "permanent");
    rg_fail f;
    if (vs) {
        int v, deleted = 0;
        if (!parse_version(q, vs, &v)) return;
        if (rg_delete_version(q->r, q->req->tenant, subject, v, permanent, &deleted, &f) != RG_OK) {
            send_fail(q, &f);
            return;
        }
        ms_buf_printf(q->out, "%d", deleted);
    } else if (rg_delete_subject(q->r, q->req->tenant, subject, permanent, q->out, &f) != RG_OK) {
        {
            send_fail(q, &f);
            return;
        }
    }
    ok_json(q);
}

/* GET|PUT /config, GET|PUT|DELETE /config/{s} */
static void config_route(rq *q, const char *method, const char *subject)
{
    ms_registry *r = q->r;
    const char *tenant = q->req->tenant;
    if (strcmp(method, "GET") == 0) {
        pthread_mutex_lock(&r->mu);
        rg_subject *s = subject ? rg_locked_subject(r, tenant, subject, false) : NULL;
        const char *lv = subject ? (s ? s->compat : NULL) : rg_locked_level(r, tenant, NULL);
        if (!lv && qbool(q, "defaultToGlobal")) lv = rg_locked_level(r, tenant, NULL);
        if (lv) {
            ms_buf_printf(q->out, "{\"compatibilityLevel\":\"%s\"}", lv);
            ok_json(q);
        } else {
            ms_buf m = MS_BUF_INIT;
            ms_buf_printf(&m, "Subject '%s' does not have subject-level compatibility configured",
                          subject);
            send_error(q, RG_SUBJECT_CONFIG_NOT_FOUND, m.data);
            ms_buf_free(&m);
        }
        pthread_mutex_unlock(&r->mu);
        return;
    }
    const char *prev = NULL;
    rg_fail f;
    if (strcmp(method, "DELETE") == 0) {
        if (!subject) {
            send_error(q, RG_METHOD, "Method not allowed: use GET or PUT");
            return;
        }
        if (rg_set_level(r, tenant, subject, NULL, &prev, &f) != RG_OK) {
            send_fail(q, &f);
            return;
        }
        if (!prev) {
            pthread_mutex_lock(&r->mu);
            prev = rg_locked_level(r, tenant, NULL);
            pthread_mutex_unlock(&r->mu);
        }
        ms_buf_printf(q->out, "{\"compatibilityLevel\":\"%s\"}", prev);
        {
            ok_json(q);
            return;
        }
    }
    json_object *o = body_object(q), *v;
    if (!o) return;
    const char *lv = json_object_object_get_ex(o, "compatibility", &v) &&
                             json_object_is_type(v, json_type_string)
                         ? json_object_get_string(v)
                         : NULL;
    char up[32] = "";
    for (size_t i = 0; lv && lv[i] && i + 1 < sizeof up; i++)
        up[i] = (char)toupper((unsigned char)lv[i]), up[i + 1] = '\0';
    if (!lv || strlen(lv) >= sizeof up || !rg_level_valid(up)) {
        json_object_put(o);
        {
            send_error(q, RG_INVALID_COMPAT,
                       "Invalid compatibility level. Valid values are none, backward, forward, "
                       "full, backward_transitive, forward_transitive, and full_transitive");
            return;
        }
    }
    json_object_put(o);
    if (rg_set_level(r, tenant, subject, up, &prev, &f) != RG_OK) {
        send_fail(q, &f);
        return;
    }
    ms_buf_printf(q->out, "{\"compatibility\":\"%s\"}", up);
    ok_json(q);
}

/* POST /compatibility/subjects/{s}/versions[/{v}] */
static void compat_route(rq *q, const char *subject, const char *vs)
{
    int v = 0;
    if (vs && !parse_version(q, vs, &v)) return;
    json_object *o;
    const char *text, *type;
    size_t len;
    if (!schema_body(q, &o, &text, &len, &type)) return;
    bool verbose = qbool(q, "verbose"), ok = false;
    ms_buf why = MS_BUF_INIT;
    rg_fail f;
    if (rg_check(q->r, q->req->tenant, subject, v, text, len, type, &ok, &why, &f) != RG_OK) {
        send_fail(q, &f);
    } else {
        ms_buf_printf(q->out, "{\"is_compatible\":%s", ok ? "true" : "false");
        if (verbose) ms_buf_printf(q->out, ",\"messages\":[%s]", ms_buf_cstr(&why));
        ms_buf_putc(q->out, '}');
        ok_json(q);
    }
    ms_buf_free(&why);
    json_object_put(o);
}

/* ---- dispatch ---------------------------------------------------------------------------------
 */

static bool is(const rq *q, size_t i, const char *s)
{
    return i < q->nseg && strcmp(q->seg[i], s) == 0;
}

/* Routes q; sends 404/405 for what matches nothing. */
static void route(rq *q, const char *m)
{
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    bool post = strcmp(m, "POST") == 0, put = strcmp(m, "PUT") == 0;
    bool del = strcmp(m, "DELETE") == 0;
    size_t n = q->nseg;
    char **s = q->seg;
    const char *allow = NULL;
    if (n == 0) {
        if (get) {
            ms_buf_puts(q->out, "{}");
            ok_json(q);
            return;
        }
        allow = "GET";
    } else if (is(q, 0, "subjects")) {
        if (n == 1) {
            if (get) {
                get_subjects(q);
                return;
            }
            allow = "GET";
        } else if (n == 2) {
            if (post) {
                post_lookup(q, s[1]);
                return;
            }
            if (del) {
                delete_route(q, s[1], NULL);
                return;
            }
            allow = "POST, DELETE";
        } else if (n == 3 && is(q, 2, "versions")) {
            if (get) {
                get_versions(q, s[1]);
                return;
            }
            if (post) {
                post_register(q, s[1]);
                return;
            }
            allow = "GET, POST";
        } else if (n == 4 && is(q, 2, "versions")) {
            if (get) {
                get_version(q, s[1], s[3], false);
                return;
            }
            if (del) {
                delete_route(q, s[1], s[3]);
                return;
            }
            allow = "GET, DELETE";
        } else if (n == 5 && is(q, 2, "versions") && is(q, 4, "schema")) {
            if (get) {
                get_version(q, s[1], s[3], true);
                return;
            }
            allow = "GET";
        } else if (n == 5 && is(q, 2, "versions") && is(q, 4, "referencedby")) {
            if (get) {
                int v;
                if (!parse_version(q, s[3], &v)) return;
                {
                    ms_buf_puts(q->out, "[]");
                    ok_json(q);
                    return;
                } /* references unsupported */
            }
            allow = "GET";
        }
    } else if (is(q, 0, "schemas")) {
        if (n == 2 && is(q, 1, "types")) {
            if (get) {
                ms_buf_puts(q->out, "[\"AVRO\"]");
                ok_json(q);
                return;
            }
            allow = "GET";
        } else if ((n == 3 || n == 4) && is(q, 1, "ids")) {
            bool known =
                n == 3 || is(q, 3, "schema") || is(q, 3, "subjects") || is(q, 3, "versions");
            if (known && get) {
                get_schema_id(q, s[2], n == 4 ? s[3] : NULL);
                return;
            }
            if (known) allow = "GET";
        }
    } else if (is(q, 0, "config") && n <= 2) {
        if (get || put || (del && n == 2)) {
            config_route(q, get ? "GET" : m, n == 2 ? s[1] : NULL);
            return;
        }
        allow = n == 2 ? "GET, PUT, DELETE" : "GET, PUT";
    } else if (is(q, 0, "compatibility") && is(q, 1, "subjects") && is(q, 3, "versions") &&
               (n == 4 || n == 5)) {
        if (post) {
            compat_route(q, s[2], n == 5 ? s[4] : NULL);
            return;
        }
        allow = "POST";
    }
    if (allow) {
        ms_buf m2 = MS_BUF_INIT;
        ms_buf_printf(&m2, "HTTP 405 Method Not Allowed: use %s", allow);
        send_error(q, RG_METHOD, m2.data);
        ms_buf_free(&m2);
        return;
    }
    send_error(q, RG_NOT_FOUND, "HTTP 404 Not Found: no such registry route");
}

/* True when the request's Content-Type is one the registry reads. */
static bool media_ok(const char *ct)
{
    static const char *const ok[] = {"application/vnd.schemaregistry.v1+json",
                                     "application/vnd.schemaregistry+json", "application/json",
                                     "application/octet-stream", NULL};
    if (!ct || !*ct) return true;
    for (size_t i = 0; ok[i]; i++) {
        size_t n = strlen(ok[i]);
        if (strncasecmp(ct, ok[i], n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' '))
            return true;
    }
    return false;
}

void ms_registry_http(ms_registry *r, const ms_registry_request *req, int *status,
                      const char **content_type, ms_buf *out)
{
    rq q = {.r = r, .req = req, .out = out, .status = 500};
    *content_type = CT_JSON;
    const char *method = req->method ? req->method : "GET";
    bool has_body = strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0;
    if (!r || r->url) {
        send_error(&q, RG_NOT_FOUND,
                   !r ? "The schema registry is disabled (registry.enabled=false)"
                      : "The embedded schema registry is off: registry.url names an external "
                        "registry; use it directly");
    } else if (!req->tenant || !split_path(&q, req->path)) {
        send_error(&q, RG_NOT_FOUND, "HTTP 404 Not Found: no such registry route");
    } else if (req->too_large || req->body_len > MS_AVRO_MAX_SCHEMA_BYTES) {
        ms_buf m = MS_BUF_INIT;
        ms_buf_printf(&m, "Request body too large: the registry accepts at most %d bytes",
                      MS_AVRO_MAX_SCHEMA_BYTES);
        send_error(&q, RG_TOO_LARGE, m.data);
        ms_buf_free(&m);
    } else if (has_body && !media_ok(req->content_type)) {
        send_error(&q, RG_UNSUPPORTED_MEDIA,
                   "HTTP 415 Unsupported Media Type: use application/vnd.schemaregistry.v1+json");
    } else {
        /* Several workers on one store: answer from what the store holds now (read-through,
         * when its generation says something was written). */
        rg_fail f;
        char gen[RG_GEN_LEN];
        int rc = rg_gen_read(r, gen, &f);
        pthread_mutex_lock(&r->mu);
        if (rc == RG_OK) rc = rg_locked_sync(r, req->tenant, gen, &f);
        pthread_mutex_unlock(&r->mu);
        if (rc == RG_OK)
            route(&q, method);
        else
            send_error(&q, rc, f.msg);
    }
    for (size_t i = 0; i < q.nseg; i++)
        free(q.seg[i]);
    *status = q.status;
}
