/*
 * store_apply.c — apply() decisions shared by the SQL stores (see store_apply.h): one event at a
 * time, rejections decided before anything of the event is written, change records built from
 * the rows before and after.
 */
#include "store_apply.h"

#include "ms_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ms_srow_free(ms_srow *r)
{
    free(r->type);
    free(r->name);
    free(r->parent);
    free(r->attributes);
    free(r->created_at);
    free(r->updated_at);
    for (size_t i = 0; i < r->ntags; i++) {
        free(r->tags[i].name);
        free(r->tags[i].source);
        free(r->tags[i].origin);
    }
    free(r->tags);
    memset(r, 0, sizeof *r);
}

static int tag_cmp(const void *a, const void *b)
{
    const ms_stag *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->origin, y->origin);
}

void ms_stags_sort(ms_stag *t, size_t n)
{
    if (n > 1) qsort(t, n, sizeof *t, tag_cmp);
}

void ms_srow_tag_add(ms_srow *r, const char *name, const char *source, const char *origin)
{
    r->tags = ms_xrealloc(r->tags, (r->ntags + 1) * sizeof *r->tags);
    r->tags[r->ntags++] =
        (ms_stag){ms_xstrdup(name), ms_xstrdup(source), ms_xstrdup(origin ? origin : "")};
}

void ms_srow_json(ms_buf *out, const char *qn, const ms_srow *r)
{
    ms_buf_puts(out, "{\"qualified_name\":");
    ms_buf_put_jstr(out, qn);
    ms_buf_puts(out, ",\"type\":");
    ms_buf_put_jstr(out, r->type);
    ms_buf_puts(out, ",\"name\":");
    ms_buf_put_jstr(out, r->name);
    ms_buf_puts(out, ",\"parent\":");
    ms_buf_put_jstr(out, r->parent);
    ms_buf_puts(out, ",\"attributes\":");
    ms_buf_puts(out, r->attributes ? r->attributes : "{}");
    ms_buf_puts(out, ",\"tags\":[");
    for (size_t i = 0; i < r->ntags; i++) {
        if (i) ms_buf_putc(out, ',');
        ms_buf_puts(out, "{\"name\":");
        ms_buf_put_jstr(out, r->tags[i].name);
        ms_buf_puts(out, ",\"source\":");
        ms_buf_put_jstr(out, r->tags[i].source);
        if (r->tags[i].origin && r->tags[i].origin[0]) {
            ms_buf_puts(out, ",\"from\":");
            ms_buf_put_jstr(out, r->tags[i].origin);
        }
        ms_buf_putc(out, '}');
    }
    ms_buf_puts(out, "],\"version\":");
    ms_buf_put_i64(out, r->version);
    ms_buf_puts(out, ",\"created_at\":");
    ms_buf_put_jstr(out, r->created_at);
    ms_buf_puts(out, ",\"updated_at\":");
    ms_buf_put_jstr(out, r->updated_at);
    ms_buf_puts(out, r->deleted ? ",\"deleted\":true" : ",\"deleted\":false");
    ms_buf_puts(out, r->orphan ? ",\"orphan\":true}" : ",\"orphan\":false}");
}

/* One event's work in progress. */
typedef struct apply_ctx {
    const ms_sa_backend *ops;
    void *be;
    ms_types *types;
    int max_depth;
    const ms_event *ev;
    const char *now;
    ms_apply_result *res;
    uint64_t *seq;
    int64_t *orphans;
    bool *creating;
    ms_sa_scratch *scratch;
    ms_error *err;
} apply_ctx;

static void reject(apply_ctx *a, ms_err code, const char *fmt, const char *arg)
{
    a->res->status = MS_APPLY_REJECTED;
    a->res->code = code;
    snprintf(a->res->detail, sizeof a->res->detail, fmt, arg);
}

/* Writes one change record and accounts its seq. */
static bool change(apply_ctx *a, const char *op, const char *qn, const char *type, int64_t version,
                   const char *before, const char *after, const char *changed)
{
    ms_change c = {
        .seq = *a->seq + 1,
        .tenant = a->ev->tenant,
        .op = op,
        .qn = qn,
        .type = type,
        .version = version,
        .before = before,
        .after = after,
        .changed = changed,
        .cause = a->ev->id,
        .ts = a->now,
    };
    if (!a->ops->change_add(a->be, &c, a->err)) return false;
    *a->seq = c.seq;
    if (!a->res->seq_first) a->res->seq_first = c.seq;
    a->res->seq_last = c.seq;
    a->res->status = MS_APPLY_APPLIED;
    return true;
}

static bool load(apply_ctx *a, const char *qn, ms_srow *r)
{
    return a->ops->row_load(a->be, a->ev->tenant, qn, true, r, a->err);
}

static bool save(apply_ctx *a, const char *qn, ms_srow *r, bool existed)
{
    return a->ops->row_save(a->be, a->ev->tenant, qn, r, existed, a->err);
}

/* Accounts the change of the live-orphan count when row b (before; !exists for a new asset)
 * is saved as r. */
static void orphan_count(apply_ctx *a, const ms_srow *b, const ms_srow *r)
{
    if (a->orphans)
        *a->orphans += (!r->deleted && r->orphan) - (b->exists && !b->deleted && b->orphan);
}

static bool str_eq(const char *x, const char *y)
{
    return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

void ms_srow_copy(ms_srow *r, const ms_srow *b)
{
    *r = *b;
    r->type = b->type ? ms_xstrdup(b->type) : NULL;
    r->name = b->name ? ms_xstrdup(b->name) : NULL;
    r->parent = b->parent ? ms_xstrdup(b->parent) : NULL;
    r->attributes = b->attributes ? ms_xstrdup(b->attributes) : NULL;
    r->created_at = b->created_at ? ms_xstrdup(b->created_at) : NULL;
    r->updated_at = b->updated_at ? ms_xstrdup(b->updated_at) : NULL;
    r->tags = ms_xmalloc((b->ntags + 1) * sizeof *r->tags);
    for (size_t i = 0; i < b->ntags; i++)
        r->tags[i] = (ms_stag){ms_xstrdup(b->tags[i].name), ms_xstrdup(b->tags[i].source),
                               ms_xstrdup(b->tags[i].origin)};
}

/* Deep copy of row b as the starting point of its next version: same fields and tags, version
 * + 1, updated_at unset (commit_asset sets it). */
static void row_next(ms_srow *r, const ms_srow *b)
{
    ms_srow_copy(r, b);
    free(r->updated_at);
    r->updated_at = NULL;
    r->version = b->version + 1;
}

/* True when the direct tags of r equal the sorted list want. */
static bool direct_tags_equal(const ms_srow *r, char *const *want, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < r->ntags; i++) {
        if (strcmp(r->tags[i].source, "direct") != 0) continue;
        if (k >= n || strcmp(r->tags[i].name, want[k]) != 0) return false;
        k++;
    }
    return k == n;
}

/* Sets the direct tags of r (in memory) to want, keeping propagated ones. */
static void direct_tags_set(ms_srow *r, char *const *want, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < r->ntags; i++) {
        if (strcmp(r->tags[i].source, "direct") == 0) {
            free(r->tags[i].name);
            free(r->tags[i].source);
            free(r->tags[i].origin);
        } else {
            r->tags[k++] = r->tags[i];
        }
    }
    r->tags = ms_xrealloc(r->tags, (k + n + 1) * sizeof *r->tags);
    for (size_t i = 0; i < n; i++)
        r->tags[k++] = (ms_stag){ms_xstrdup(want[i]), ms_xstrdup("direct"), ms_xstrdup("")};
    r->ntags = k;
    ms_stags_sort(r->tags, r->ntags);
}

/* Parses stored or event attributes with the decoder's strict parser and depth limit (json-c's
 * own parser stops at 32 levels, so deeper attributes the decoder accepted would read as NULL).
 * NULL text, or text that does not parse, gives NULL. */
static struct json_object *attrs_parse(int max_depth, const char *text)
{
    if (!text) return NULL;
    ms_error err;
    ms_error_clear(&err);
    return ms_json_parse(text, strlen(text), max_depth, NULL, &err);
}

/* Returns the end of the JSON string starting at the quote p (just past its closing quote). */
static const char *skip_jstring(const char *p)
{
    for (p++; *p && *p != '"'; p++)
        if (*p == '\\' && p[1]) p++;
    return *p ? p + 1 : p;
}

/* Appends ,"attributes.<key>" for each top-level key of the canonical JSON object text attrs
 * (starting after n paths already written) and returns how many: what ms_json_diff_paths(NULL,
 * parsed attrs) gives for a create, without parsing again what the decoder already checked.
 * Canonical keys come sorted bytewise and escaped by ms_buf_put_jstrn, as diff paths are. */
static size_t create_paths(const char *attrs, ms_buf *out, size_t n)
{
    size_t k = 0;
    int depth = 0;
    for (const char *p = attrs; p && *p;) {
        if (*p == '"') {
            const char *end = skip_jstring(p);
            if (depth == 1 && *end == ':') {
                if (n + k++) ms_buf_putc(out, ',');
                ms_buf_puts(out, "\"attributes.");
                ms_buf_append(out, p + 1, (size_t)(end - p - 1));
            }
            p = end;
            continue;
        }
        if (*p == '{' || *p == '[') depth++;
        if (*p == '}' || *p == ']') depth--;
        p++;
    }
    return k;
}

/* Appends the JSON array of changed paths between before (may be !exists) and after. */
static void changed_paths(int max_depth, const ms_srow *b, const ms_srow *a, bool tags_changed,
                          ms_buf *out)
{
    size_t n = 0;
    ms_buf_putc(out, '[');
#define FIELD(f, label)                                                                            \
    if (!b->exists || !str_eq(b->f, a->f)) {                                                       \
        if (n++) ms_buf_putc(out, ',');                                                            \
        ms_buf_puts(out, "\"" label "\"");                                                         \
    }
    FIELD(type, "type")
    FIELD(name, "name")
    FIELD(parent, "parent")
#undef FIELD
    if (!b->exists) {
        n += create_paths(a->attributes, out, n);
    } else if (!str_eq(b->attributes, a->attributes)) {
        struct json_object *x = attrs_parse(max_depth, b->attributes);
        struct json_object *y = attrs_parse(max_depth, a->attributes);
        ms_buf tmp = MS_BUF_INIT;
        size_t k = ms_json_diff_paths(x, y, "attributes", &tmp, 0);
        if (k) {
            if (n) ms_buf_putc(out, ',');
            ms_buf_append(out, tmp.data, tmp.len);
            n += k;
        }
        ms_buf_free(&tmp);
        json_object_put(x);
        json_object_put(y);
    }
    if (tags_changed) {
        if (n++) ms_buf_putc(out, ',');
        ms_buf_puts(out, "\"tags\"");
    }
    ms_buf_putc(out, ']');
}

/* Decides orphan status and checks the parent's type. Returns false on a database failure;
 * *ok is false after reject(). */
static bool check_parent(apply_ctx *a, const ms_type *t, const char *parent, bool *orphan, bool *ok)
{
    *orphan = false;
    *ok = true;
    if (!parent) {
        *orphan = t && t->nparents > 0;
        return true;
    }
    if (t && t->root) { /* whether or not the parent exists */
        char msg[200];
        snprintf(msg, sizeof msg, "a %s cannot have a parent (parent '%%s')", t->name);
        reject(a, MS_ERR_INVALID_PARENT, msg, parent);
        *ok = false;
        return true;
    }
    char *ptype = NULL;
    if (!a->ops->parent_type(a->be, a->ev->tenant, parent, &ptype, a->err)) return false;
    if (ptype) {
        if (t && !ms_type_allows_parent(t, ptype)) {
            char msg[200];
            snprintf(msg, sizeof msg, "a %s cannot be inside a %s (parent '%%s')", t->name, ptype);
            reject(a, MS_ERR_INVALID_PARENT, msg, parent);
            *ok = false;
        }
    } else {
        *orphan = true;
    }
    free(ptype);
    return true;
}

/* Checks the type's required attributes on an attributes JSON text. */
static bool check_required(apply_ctx *a, const ms_type *t, const char *attrs)
{
    if (!t || !t->nrequired) return true;
    struct json_object *o = attrs_parse(a->max_depth, attrs);
    bool ok = true;
    for (size_t i = 0; ok && i < t->nrequired; i++) {
        struct json_object *v = NULL;
        if (!o || !json_object_object_get_ex(o, t->required[i], &v) || !v) {
            char msg[200];
            snprintf(msg, sizeof msg, "%s requires attributes.%s (asset '%%s')", t->name,
                     t->required[i]);
            reject(a, MS_ERR_MISSING_ATTRIBUTE, msg, a->ev->qn);
            ok = false;
        }
    }
    json_object_put(o);
    return ok;
}

static bool version_ok(apply_ctx *a, const ms_srow *r)
{
    if (!a->ev->has_if_version) return true;
    int64_t cur = r->exists && !r->deleted ? r->version : 0;
    if (cur == a->ev->if_version) return true;
    char msg[200];
    snprintf(msg, sizeof msg, "if_version %lld but '%%s' is at version %lld",
             (long long)a->ev->if_version, (long long)cur);
    reject(a, MS_ERR_VERSION_CONFLICT, msg, a->ev->qn);
    return false;
}

/* Writes the change for an asset going from before (b) to after (r) and saves the row. With
 * created (a create, b absent) the row goes through ops->row_create: when the asset turns out
 * to exist, *created is false and nothing is written. */
static bool commit_asset(apply_ctx *a, const char *qn, ms_srow *b, ms_srow *r, bool tags_changed,
                         const char *op, bool *created)
{
    bool existed = b->exists;
    if (!r->updated_at) r->updated_at = ms_xstrdup(a->now);
    if (!r->created_at) r->created_at = ms_xstrdup(a->now);
    if (created) {
        if (!a->ops->row_create(a->be, a->ev->tenant, qn, r, created, a->err)) return false;
        if (!*created) return true;
    } else if (!save(a, qn, r, existed)) {
        return false;
    }
    orphan_count(a, b, r);
    if (tags_changed && !a->ops->tags_write(a->be, a->ev->tenant, qn, r, a->err)) return false;
    ms_sa_scratch local = {MS_BUF_INIT, MS_BUF_INIT, MS_BUF_INIT};
    ms_sa_scratch *sc = a->scratch ? a->scratch : &local;
    ms_buf_reset(&sc->before);
    ms_buf_reset(&sc->after);
    ms_buf_reset(&sc->changed);
    bool was_live = existed && !b->deleted;
    if (was_live) ms_srow_json(&sc->before, qn, b);
    if (!r->deleted) ms_srow_json(&sc->after, qn, r);
    if (r->deleted) {
        ms_buf_puts(&sc->changed, "[\"deleted\"]");
    } else {
        ms_srow none = {0};
        changed_paths(a->max_depth, was_live ? b : &none, r, tags_changed, &sc->changed);
    }
    bool ok = change(a, op, qn, r->type, r->version, was_live ? sc->before.data : NULL,
                     r->deleted ? NULL : sc->after.data, sc->changed.data);
    if (!a->scratch) ms_sa_scratch_free(&local);
    return ok;
}

void ms_sa_scratch_free(ms_sa_scratch *sc)
{
    ms_buf_free(&sc->before);
    ms_buf_free(&sc->after);
    ms_buf_free(&sc->changed);
}

/* Children of the asset qn just created that arrived first are no longer orphans. */
static bool adopt_children(apply_ctx *a, const char *qn)
{
    int64_t adopted = 0;
    bool ok = a->ops->adopt(a->be, a->ev->tenant, qn, a->orphans ? &adopted : NULL, a->err);
    if (a->orphans) *a->orphans -= adopted;
    return ok;
}

/* The new row of an upsert: row b (!exists when there is none) with the event's fields. */
static void upsert_row(const ms_event *ev, const ms_srow *b, bool orphan, ms_srow *r)
{
    bool live = b->exists && !b->deleted;
    r->exists = b->exists;
    r->id = b->id;
    r->type = ms_xstrdup(ev->type);
    r->name = ms_xstrdup(ev->name);
    r->parent = ms_xstrdup(ev->parent);
    r->attributes = ms_xstrdup(ev->attributes ? ev->attributes : "{}");
    r->orphan = orphan;
    r->deleted = false;
    r->version = b->exists ? b->version + 1 : 1;
    r->created_at = live ? ms_xstrdup(b->created_at) : NULL;
    if (live) /* carry tags over; the caller applies the event's direct tags */
        for (size_t i = 0; i < b->ntags; i++)
            ms_srow_tag_add(r, b->tags[i].name, b->tags[i].source, b->tags[i].origin);
}

/*
 * The insert-first path of an upsert (ms_sa_args.creating): the event as the create of a new
 * asset, written only when no row (tenant, qn) exists. *done is false when one exists, or when
 * the create would be refused (the lookup path then decides, with its checks in their
 * documented order); res is then as ms_sa_event set it up. Returns false on a database failure.
 */
static bool try_create(apply_ctx *a, const ms_type *t, bool *done)
{
    const ms_event *ev = a->ev;
    *done = false;
    bool orphan, fine;
    if (!check_parent(a, t, ev->parent, &orphan, &fine)) return false;
    if (!fine) {
        memset(a->res, 0, sizeof *a->res);
        a->res->status = MS_APPLY_UNCHANGED;
        return true;
    }
    /* The new row borrows the event's strings and the commit time (the usual path copies them:
     * these are a third of the writer's allocations for a create). */
    ms_srow r = {0};
    r.type = (char *)ev->type;
    r.name = (char *)ev->name;
    r.parent = (char *)ev->parent;
    r.attributes = (char *)(ev->attributes ? ev->attributes : "{}");
    r.created_at = r.updated_at = (char *)a->now;
    r.orphan = orphan;
    r.version = 1;
    if (ev->has_tags) direct_tags_set(&r, ev->tags, ev->ntags);
    ms_srow none = {0};
    bool ok = commit_asset(a, ev->qn, &none, &r, r.ntags > 0, "create", done);
    if (ok && *done) ok = adopt_children(a, ev->qn);
    r.type = r.name = r.parent = r.attributes = r.created_at = r.updated_at = NULL;
    ms_srow_free(&r);
    return ok;
}

static bool do_upsert(apply_ctx *a)
{
    const ms_event *ev = a->ev;
    const ms_type *t = ms_types_get(a->types, ev->tenant, ev->type);
    bool use_create = a->creating && *a->creating && a->ops->row_create && !ev->has_if_version;
    if (use_create) {
        bool done;
        if (!try_create(a, t, &done)) return false;
        if (done) return true;
    }
    ms_srow b, r;
    memset(&r, 0, sizeof r);
    if (!load(a, ev->qn, &b)) return false;
    if (a->creating) *a->creating = !b.exists;
    bool ok = true, fine;
    bool live = b.exists && !b.deleted;
    if (!version_ok(a, &b)) goto done;
    if (live && strcmp(b.type, ev->type) != 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "'%%s' exists as a %s, not a %s", b.type, ev->type);
        reject(a, MS_ERR_TYPE_CONFLICT, msg, ev->qn);
        goto done;
    }
    bool orphan;
    if (!(ok = check_parent(a, t, ev->parent, &orphan, &fine)) || !fine) goto done;
    upsert_row(ev, &b, orphan, &r);
    bool tags_changed = ev->has_tags && !direct_tags_equal(&b, ev->tags, ev->ntags);
    if (tags_changed || (!live && ev->has_tags)) direct_tags_set(&r, ev->tags, ev->ntags);
    if (!live && b.exists && !direct_tags_equal(&b, NULL, 0)) {
        /* A re-create starts with the event's tags only: drop those the deleted asset had. */
        ms_srow none = {0};
        if (!(ok = a->ops->tags_write(a->be, ev->tenant, ev->qn, &none, a->err))) goto done;
    }
    bool same = live && !tags_changed && str_eq(b.name, r.name) && str_eq(b.parent, r.parent) &&
                str_eq(b.attributes, r.attributes);
    if (same && b.orphan == r.orphan) {
        a->res->status = MS_APPLY_UNCHANGED;
        goto done;
    }
    if (same) {
        /* Only the derived orphan flag moved (the parent appeared or went): no new version. */
        r.version = b.version;
        r.updated_at = ms_xstrdup(b.updated_at);
        ok = save(a, ev->qn, &r, true);
        orphan_count(a, &b, &r);
        a->res->status = MS_APPLY_UNCHANGED;
        goto done;
    }
    ok = commit_asset(a, ev->qn, &b, &r, tags_changed || (!live && r.ntags),
                      live ? "update" : "create", NULL);
    if (ok && !live) ok = adopt_children(a, ev->qn);
done:
    ms_srow_free(&b);
    ms_srow_free(&r);
    return ok;
}

static bool do_patch(apply_ctx *a)
{
    const ms_event *ev = a->ev;
    ms_srow b, r;
    memset(&r, 0, sizeof r);
    if (!load(a, ev->qn, &b)) return false;
    bool ok = true;
    if (!b.exists || b.deleted) {
        reject(a, MS_ERR_NOT_FOUND, "cannot patch '%s': no such asset", ev->qn);
        goto done;
    }
    if (!version_ok(a, &b)) goto done;
    if (ev->type && strcmp(ev->type, b.type) != 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "'%%s' is a %s, not a %s", b.type, ev->type);
        reject(a, MS_ERR_TYPE_CONFLICT, msg, ev->qn);
        goto done;
    }
    struct json_object *cur = attrs_parse(a->max_depth, b.attributes);
    struct json_object *patch = attrs_parse(a->max_depth, ev->attributes);
    struct json_object *merged = ms_json_merge_patch(cur, patch);
    ms_buf canon = MS_BUF_INIT;
    ms_json_canonical(merged, &canon);
    json_object_put(cur);
    json_object_put(patch);
    json_object_put(merged);
    const ms_type *t = ms_types_get(a->types, ev->tenant, b.type);
    if (strcmp(canon.data, b.attributes) == 0) {
        a->res->status = MS_APPLY_UNCHANGED;
    } else if (check_required(a, t, canon.data)) {
        row_next(&r, &b);
        free(r.attributes);
        r.attributes = ms_buf_steal(&canon);
        ok = commit_asset(a, ev->qn, &b, &r, false, "update", NULL);
    }
    ms_buf_free(&canon);
done:
    ms_srow_free(&b);
    ms_srow_free(&r);
    return ok;
}

/* Soft-deletes one live asset row loaded in b. */
static bool delete_one(apply_ctx *a, const char *qn, ms_srow *b)
{
    ms_srow r;
    row_next(&r, b);
    r.deleted = true;
    bool ok = commit_asset(a, qn, b, &r, false, "delete", NULL);
    ms_srow_free(&r);
    return ok;
}

static bool do_delete(apply_ctx *a)
{
    const ms_event *ev = a->ev;
    ms_srow b;
    if (!load(a, ev->qn, &b)) return false;
    bool ok = true;
    if (!b.exists) {
        reject(a, MS_ERR_NOT_FOUND, "cannot delete '%s': no such asset", ev->qn);
    } else if (b.deleted) {
        a->res->status = MS_APPLY_UNCHANGED;
    } else if (version_ok(a, &b)) {
        /* Collect the live descendants first: deleting changes what the walk would see. */
        char **kids = NULL;
        size_t nk = 0;
        ok = a->ops->descendants(a->be, ev->tenant, ev->qn, &kids, &nk, a->err) &&
             delete_one(a, ev->qn, &b);
        for (size_t i = 0; i < nk; i++) {
            ms_srow k;
            if (ok && (ok = load(a, kids[i], &k)) && k.exists && !k.deleted)
                ok = delete_one(a, kids[i], &k);
            if (ok) ms_srow_free(&k);
            free(kids[i]);
        }
        free(kids);
    }
    ms_srow_free(&b);
    return ok;
}

static bool do_tag(apply_ctx *a, bool add)
{
    const ms_event *ev = a->ev;
    ms_srow b, r;
    memset(&r, 0, sizeof r);
    if (!load(a, ev->qn, &b)) return false;
    bool ok = true;
    if (!b.exists || b.deleted) {
        reject(a, MS_ERR_NOT_FOUND,
               add ? "cannot tag '%s': no such asset" : "cannot untag '%s': no such asset", ev->qn);
        goto done;
    }
    if (!version_ok(a, &b)) goto done;
    /* The direct tags wanted after the event. */
    char **want = ms_xmalloc((b.ntags + 1) * sizeof *want);
    size_t n = 0;
    bool had = false;
    for (size_t i = 0; i < b.ntags; i++) {
        if (strcmp(b.tags[i].source, "direct") != 0) continue;
        if (strcmp(b.tags[i].name, ev->tag) == 0) {
            had = true;
            if (!add) continue;
        }
        want[n++] = b.tags[i].name;
    }
    if (add && !had) want[n++] = ev->tag;
    if (add == had) {
        a->res->status = MS_APPLY_UNCHANGED;
        free(want);
        goto done;
    }
    row_next(&r, &b);
    direct_tags_set(&r, want, n);
    free(want);
    ok = commit_asset(a, ev->qn, &b, &r, true, add ? "tag" : "untag", NULL);
done:
    ms_srow_free(&b);
    ms_srow_free(&r);
    return ok;
}

static bool do_link(apply_ctx *a, bool add)
{
    const ms_event *ev = a->ev;
    bool changed = false;
    if (!a->ops->edge_set(a->be, ev->tenant, ev->qn, ev->to, ev->via ? ev->via : "", add, &changed,
                          a->err))
        return false;
    if (!changed) {
        a->res->status = MS_APPLY_UNCHANGED;
        return true;
    }
    ms_srow b;
    if (!a->ops->row_load(a->be, ev->tenant, ev->qn, false, &b, a->err)) return false;
    ms_buf edge = MS_BUF_INIT;
    ms_buf_puts(&edge, "{\"from\":");
    ms_buf_put_jstr(&edge, ev->qn);
    ms_buf_puts(&edge, ",\"to\":");
    ms_buf_put_jstr(&edge, ev->to);
    ms_buf_puts(&edge, ",\"via\":");
    ms_buf_put_jstr(&edge, ev->via);
    ms_buf_putc(&edge, '}');
    bool ok = change(a, add ? "link" : "unlink", ev->qn, b.exists ? b.type : NULL,
                     b.exists ? b.version : 0, add ? NULL : edge.data, add ? edge.data : NULL,
                     "[\"lineage\"]");
    ms_buf_free(&edge);
    ms_srow_free(&b);
    return ok;
}

bool ms_sa_event(const ms_sa_args *args, const ms_event *ev, ms_apply_result *res, ms_error *err)
{
    const ms_sa_backend *ops = args->ops;
    void *be = args->be;
    apply_ctx a = {.ops = ops,
                   .be = be,
                   .types = args->types,
                   .max_depth = args->max_depth,
                   .ev = ev,
                   .now = args->now,
                   .res = res,
                   .seq = args->seq,
                   .orphans = args->orphans,
                   .creating = args->creating,
                   .scratch = args->scratch,
                   .err = err};
    memset(res, 0, sizeof *res);
    res->status = MS_APPLY_UNCHANGED;
    if (ev->id) {
        bool fresh = true;
        if (!ops->seen_add(be, ev->tenant, ev->id, &fresh, err)) return false;
        if (!fresh) {
            res->status = MS_APPLY_DUPLICATE;
            return true;
        }
    }
    bool ok;
    switch (ev->op) {
    case MS_OP_UPSERT:
        ok = do_upsert(&a);
        break;
    case MS_OP_PATCH:
        ok = do_patch(&a);
        break;
    case MS_OP_DELETE:
        ok = do_delete(&a);
        break;
    case MS_OP_TAG:
        ok = do_tag(&a, true);
        break;
    case MS_OP_UNTAG:
        ok = do_tag(&a, false);
        break;
    case MS_OP_LINK:
        ok = do_link(&a, true);
        break;
    case MS_OP_UNLINK:
        ok = do_link(&a, false);
        break;
    default:
        reject(&a, MS_ERR_UNKNOWN_OP, "unknown op for '%s'", ev->qn);
        ok = true;
    }
    /* A refused event leaves no trace: the same id may be sent again once fixed. */
    if (ok && ev->id && res->status == MS_APPLY_REJECTED)
        ok = ops->seen_del(be, ev->tenant, ev->id, err);
    return ok;
}

bool ms_sa_positions(const ms_sa_backend *ops, void *be, ms_event *const *evs, size_t n,
                     const ms_apply_result *res, const ms_srcpos *pos, size_t npos, const char *now,
                     ms_error *err)
{
    if (!npos) return true;
    int64_t *next = ms_xmalloc(npos * sizeof *next);
    for (size_t k = 0; k < npos; k++)
        next[k] = pos[k].next;
    /* A rejected event's dead letter is sent after this commit: until it is delivered the
     * stored position must not pass it (the message is consumed again after a crash). */
    for (size_t i = 0; i < n; i++) {
        size_t k = evs[i]->src_pos;
        if (k && k <= npos && res[i].status == MS_APPLY_REJECTED &&
            evs[i]->src_offset < next[k - 1])
            next[k - 1] = evs[i]->src_offset;
    }
    bool ok = true;
    for (size_t k = 0; ok && k < npos; k++)
        if (next[k] > 0)
            ok = ops->offset_put(be, pos[k].group, pos[k].topic, pos[k].partition, next[k], now,
                                 err);
    free(next);
    return ok;
}
