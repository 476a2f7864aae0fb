/*
 * store_sqlite_apply.c — the SQLite store's writer: applies a group of events in one
 * transaction, writing assets, tags, edges and their change records together (the
 * transactional outbox), with per-tenant gap-free seqs.
 *
 * @locality writer thread only: uses the writer connection and its cached statements.
 * Rejections are decided before anything of the event is written, so a rejected event leaves no
 * trace and the others of the group still apply. An SQLite failure rolls the whole group back.
 */
#include "store_sqlite_int.h"

#include "ms_json.h"

#include <stdlib.h>
#include <string.h>

static const char *const wsql[W__COUNT] = {
    [W_SEEN_INS] = "INSERT OR IGNORE INTO seen(tenant, id) VALUES(?, ?)",
    [W_SEEN_DEL] = "DELETE FROM seen WHERE tenant=? AND id=?",
    [W_GET] = "SELECT id, type, name, parent, attributes, version, deleted, created_at, orphan,"
              " updated_at FROM assets WHERE tenant=? AND qn=?",
    [W_INS] = "INSERT INTO assets(tenant, qn, type, name, parent, attributes, version, created_at,"
              " updated_at, deleted, orphan) VALUES(?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7, 0, ?8)",
    [W_UPD] = "UPDATE assets SET type=?2, name=?3, parent=?4, attributes=?5, version=?6,"
              " created_at=?7, updated_at=?8, deleted=?9, orphan=?10 WHERE id=?1",
    [W_ADOPT] = "UPDATE assets SET orphan=0 WHERE tenant=? AND parent=? AND orphan=1"
                " RETURNING deleted",
    [W_TAGS_GET] = "SELECT tag, source, origin FROM tags WHERE tenant=? AND qn=?"
                   " ORDER BY tag, origin",
    [W_TAG_INS] = "INSERT OR IGNORE INTO tags(tenant, qn, tag, source, origin)"
                  " VALUES(?, ?, ?, 'direct', '')",
    [W_TAG_DEL] = "DELETE FROM tags WHERE tenant=? AND qn=? AND tag=? AND source='direct'",
    [W_TAGS_CLEAR] = "DELETE FROM tags WHERE tenant=? AND qn=? AND source='direct'",
    [W_EDGE_INS] = "INSERT OR IGNORE INTO edges(tenant, src, dst, via) VALUES(?, ?, ?, ?)",
    [W_EDGE_DEL] = "DELETE FROM edges WHERE tenant=? AND src=? AND dst=? AND via=?",
    [W_CHG_INS] = "INSERT INTO changes(tenant, seq, op, qn, type, version, before, after, changed,"
                  " cause, ts) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    /* Live descendants, nearest first, then by name. Every asset has one parent, so a walk down
     * from the root can meet an asset twice only on a parent loop, and such a loop passes
     * through the root itself: never stepping back onto the root (a.qn <> ?2) ends the walk
     * while each descendant keeps its depth. */
    [W_DESC] = "WITH RECURSIVE d(qn, depth) AS (SELECT ?2, 0 UNION ALL SELECT a.qn, d.depth + 1"
               " FROM assets a JOIN d ON a.tenant = ?1 AND a.parent = d.qn"
               " WHERE a.deleted = 0 AND a.qn <> ?2)"
               " SELECT qn FROM d WHERE depth > 0 ORDER BY depth, qn",
    [W_TENANT_INS] = "INSERT OR IGNORE INTO tenants(tenant) VALUES(?)",
    [W_PARENT] = "SELECT type FROM assets WHERE tenant=? AND qn=? AND deleted=0",
    /* The full-text rows of a commit's new assets, in one statement (a per-row trigger made FTS5
     * write and merge one segment per row: half of the writer's time). */
    [W_FTS_ADD] = "INSERT INTO assets_fts(rowid, name, qn, description)"
                  " SELECT id, name, qn, description FROM assets WHERE id > ?",
    [W_FTS_MARK] = "UPDATE meta SET value = ? WHERE key = 'fts_indexed_id'",
    /* Once per tenant and process: from then on the writer keeps the count (orphan_count). */
    [W_ORPHANS] = "SELECT count(*) FROM assets WHERE tenant=? AND orphan=1 AND deleted=0",
};

/* Prepares the writer's statements and loads the full-text mark. */
ms_err sq_apply_prepare(sq_store *s, ms_error *err)
{
    for (int i = 0; i < W__COUNT; i++)
        if (sqlite3_prepare_v3(s->w, wsql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->ws[i], NULL) !=
            SQLITE_OK)
            return sq_fail(err, s->w, wsql[i]);
    sqlite3_stmt *st = NULL;
    bool ok = sqlite3_prepare_v2(s->w, "SELECT value FROM meta WHERE key = 'fts_indexed_id'", -1,
                                 &st, NULL) == SQLITE_OK &&
              sqlite3_step(st) == SQLITE_ROW;
    if (ok) s->fts_mark = s->fts_pending = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return ok ? MS_OK : sq_fail(err, s->w, "full-text mark");
}

/* Steps a write statement to completion and resets it. */
static bool run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE;
}

/* The seq slot of tenant; a new tenant gets its last seq from the log and its orphan count
 * from the assets. */
static sq_tenant_seq *tseq(sq_store *s, const char *tenant)
{
    for (size_t i = 0; i < s->nseqs; i++)
        if (strcmp(s->seqs[i].tenant, tenant) == 0) return &s->seqs[i];
    sqlite3_stmt *st = NULL;
    uint64_t last = 0;
    if (sqlite3_prepare_v2(s->w, "SELECT coalesce(max(seq), 0) FROM changes WHERE tenant=?", -1,
                           &st, NULL) == SQLITE_OK) {
        sq_bind_text(st, 1, tenant);
        if (sqlite3_step(st) == SQLITE_ROW) last = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    int64_t orphans = 0;
    st = s->ws[W_ORPHANS];
    sq_bind_text(st, 1, tenant);
    if (sqlite3_step(st) == SQLITE_ROW) orphans = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    pthread_mutex_lock(&s->stats_mu);
    s->seqs = ms_xrealloc(s->seqs, (s->nseqs + 1) * sizeof *s->seqs);
    s->seqs[s->nseqs] = (sq_tenant_seq){ms_xstrdup(tenant), last, last, orphans, orphans};
    sq_tenant_seq *ts = &s->seqs[s->nseqs++];
    pthread_mutex_unlock(&s->stats_mu);
    return ts;
}

/* One event's work in progress. */
typedef struct apply_ctx {
    sq_store *s;
    const ms_event *ev;
    const char *now;
    ms_apply_result *res;
    sq_tenant_seq *seq;
    ms_error *err;
} apply_ctx;

static void reject(apply_ctx *a, ms_err code, const char *fmt, const char *arg)
{
    a->res->status = MS_APPLY_REJECTED;
    a->res->code = code;
    snprintf(a->res->detail, sizeof a->res->detail, fmt, arg);
}

/* Writes one change record and accounts its seq. */
static bool change(apply_ctx *a, const char *op, const char *qn, const char *type,
                   int64_t version, const char *before, const char *after, const char *changed)
{
    sqlite3_stmt *st = a->s->ws[W_CHG_INS];
    uint64_t seq = ++a->seq->next;
    sq_bind_text(st, 1, a->ev->tenant);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    sq_bind_text(st, 3, op);
    sq_bind_text(st, 4, qn);
    sq_bind_text(st, 5, type);
    sqlite3_bind_int64(st, 6, version);
    sq_bind_text(st, 7, before);
    sq_bind_text(st, 8, after);
    sq_bind_text(st, 9, changed);
    sq_bind_text(st, 10, a->ev->id);
    sq_bind_text(st, 11, a->now);
    if (!run(st)) return false;
    if (!a->res->seq_first) a->res->seq_first = seq;
    a->res->seq_last = seq;
    a->res->status = MS_APPLY_APPLIED;
    return true;
}

/* Loads the asset row of qn (with tags) through the writer's statements. */
static bool load(apply_ctx *a, const char *qn, sq_row *r)
{
    return sq_row_load(a->s->w, a->s->ws[W_GET], a->s->ws[W_TAGS_GET], a->ev->tenant, qn, true, r,
                       a->err) == MS_OK;
}

/* Writes row r (existing: UPDATE by id; else INSERT) and sets r->id for a new one. */
static bool save(apply_ctx *a, const char *qn, sq_row *r, bool existed)
{
    sqlite3_stmt *st;
    if (!existed) {
        st = a->s->ws[W_INS];
        sq_bind_text(st, 1, a->ev->tenant);
        sq_bind_text(st, 2, qn);
        sq_bind_text(st, 3, r->type);
        sq_bind_text(st, 4, r->name);
        sq_bind_text(st, 5, r->parent);
        sq_bind_text(st, 6, r->attributes);
        sq_bind_text(st, 7, a->now);
        sqlite3_bind_int(st, 8, r->orphan);
        if (!run(st)) return false;
        r->id = sqlite3_last_insert_rowid(a->s->w);
        if (r->id > a->s->fts_pending) a->s->fts_pending = r->id;
        return true;
    }
    st = a->s->ws[W_UPD];
    sqlite3_bind_int64(st, 1, r->id);
    sq_bind_text(st, 2, r->type);
    sq_bind_text(st, 3, r->name);
    sq_bind_text(st, 4, r->parent);
    sq_bind_text(st, 5, r->attributes);
    sqlite3_bind_int64(st, 6, r->version);
    sq_bind_text(st, 7, r->created_at);
    sq_bind_text(st, 8, a->now);
    sqlite3_bind_int(st, 9, r->deleted);
    sqlite3_bind_int(st, 10, r->orphan);
    return run(st);
}

/* Accounts the change of the live-orphan count when row b (before; !exists for a new asset)
 * is saved as r. */
static void orphan_count(apply_ctx *a, const sq_row *b, const sq_row *r)
{
    a->seq->orphans_next += (!r->deleted && r->orphan) - (b->exists && !b->deleted && b->orphan);
}

static bool str_eq(const char *x, const char *y)
{
    return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

/* Deep copy of row b as the starting point of its next version: same fields and tags, version
 * + 1, updated_at unset (commit_asset sets it). */
static void row_next(sq_row *r, const sq_row *b)
{
    memset(r, 0, sizeof *r);
    r->exists = b->exists;
    r->id = b->id;
    r->type = ms_xstrdup(b->type);
    r->name = ms_xstrdup(b->name);
    r->parent = ms_xstrdup(b->parent);
    r->attributes = ms_xstrdup(b->attributes);
    r->created_at = ms_xstrdup(b->created_at);
    r->version = b->version + 1;
    r->deleted = b->deleted;
    r->orphan = b->orphan;
    r->tags = ms_xmalloc((b->ntags + 1) * sizeof *r->tags);
    for (size_t i = 0; i < b->ntags; i++)
        r->tags[i] = (sq_tag){ms_xstrdup(b->tags[i].name), ms_xstrdup(b->tags[i].source),
                              ms_xstrdup(b->tags[i].origin)};
    r->ntags = b->ntags;
}

/* True when the direct tags of r equal the sorted list want. */
static bool direct_tags_equal(const sq_row *r, char *const *want, size_t n)
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
static void direct_tags_set(sq_row *r, char *const *want, size_t n)
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
        r->tags[k++] = (sq_tag){ms_xstrdup(want[i]), ms_xstrdup("direct"), ms_xstrdup("")};
    r->ntags = k;
    sq_tags_sort(r->tags, r->ntags);
}

/* Writes the direct tags of r to the tags table. */
static bool direct_tags_write(apply_ctx *a, const char *qn, const sq_row *r)
{
    sqlite3_stmt *clr = a->s->ws[W_TAGS_CLEAR], *ins = a->s->ws[W_TAG_INS];
    sq_bind_text(clr, 1, a->ev->tenant);
    sq_bind_text(clr, 2, qn);
    if (!run(clr)) return false;
    for (size_t i = 0; i < r->ntags; i++) {
        if (strcmp(r->tags[i].source, "direct") != 0) continue;
        sq_bind_text(ins, 1, a->ev->tenant);
        sq_bind_text(ins, 2, qn);
        sq_bind_text(ins, 3, r->tags[i].name);
        if (!run(ins)) return false;
    }
    return true;
}

/* Parses stored or event attributes with the decoder's strict parser and depth limit (json-c's
 * own parser stops at 32 levels, so deeper attributes the decoder accepted would read as NULL).
 * NULL text, or text that does not parse, gives NULL. */
static struct json_object *attrs_parse(const sq_store *s, const char *text)
{
    if (!text) return NULL;
    ms_error err;
    ms_error_clear(&err);
    return ms_json_parse(text, strlen(text), s->max_depth, NULL, &err);
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
static void changed_paths(const sq_store *s, const sq_row *b, const sq_row *a, bool tags_changed,
                          ms_buf *out)
{
    size_t n = 0;
    ms_buf_putc(out, '[');
#define FIELD(f, label)                                                                            \
    if (!b->exists || !str_eq(b->f, a->f)) {                                                       \
        if (n++) ms_buf_putc(out, ',');                                                            \
        ms_buf_puts(out, "\"" label "\"");                                                       \
    }
    FIELD(type, "type")
    FIELD(name, "name")
    FIELD(parent, "parent")
#undef FIELD
    if (!b->exists) {
        n += create_paths(a->attributes, out, n);
    } else if (!str_eq(b->attributes, a->attributes)) {
        struct json_object *x = attrs_parse(s, b->attributes);
        struct json_object *y = attrs_parse(s, a->attributes);
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

/* Decides orphan status and checks the parent's type. Returns false after reject(). */
static bool check_parent(apply_ctx *a, const ms_type *t, const char *parent, bool *orphan)
{
    *orphan = false;
    if (!parent) {
        *orphan = t && t->nparents > 0;
        return true;
    }
    if (t && t->root) { /* whether or not the parent exists */
        char msg[200];
        snprintf(msg, sizeof msg, "a %s cannot have a parent (parent '%%s')", t->name);
        reject(a, MS_ERR_INVALID_PARENT, msg, parent);
        return false;
    }
    sqlite3_stmt *st = a->s->ws[W_PARENT];
    sq_bind_text(st, 1, a->ev->tenant);
    sq_bind_text(st, 2, parent);
    int rc = sqlite3_step(st);
    bool ok = true;
    if (rc == SQLITE_ROW) {
        const char *ptype = (const char *)sqlite3_column_text(st, 0);
        if (t && !ms_type_allows_parent(t, ptype)) {
            char msg[200];
            snprintf(msg, sizeof msg, "a %s cannot be inside a %s (parent '%%s')", t->name,
                     ptype);
            reject(a, MS_ERR_INVALID_PARENT, msg, parent);
            ok = false;
        }
    } else {
        *orphan = true;
    }
    sqlite3_reset(st);
    return ok;
}

/* Checks the type's required attributes on an attributes JSON text. */
static bool check_required(apply_ctx *a, const ms_type *t, const char *attrs)
{
    if (!t || !t->nrequired) return true;
    struct json_object *o = attrs_parse(a->s, attrs);
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

static bool version_ok(apply_ctx *a, const sq_row *r)
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

/* Writes the change for an asset going from before (b) to after (r) and saves the row. */
static bool commit_asset(apply_ctx *a, const char *qn, sq_row *b, sq_row *r, bool tags_changed,
                         const char *op)
{
    bool existed = b->exists;
    r->updated_at = ms_xstrdup(a->now);
    if (!r->created_at) r->created_at = ms_xstrdup(a->now);
    if (!save(a, qn, r, existed)) return false;
    orphan_count(a, b, r);
    if (tags_changed && !direct_tags_write(a, qn, r)) return false;
    ms_buf before = MS_BUF_INIT, after = MS_BUF_INIT, changed = MS_BUF_INIT;
    bool was_live = existed && !b->deleted;
    if (was_live) sq_asset_json(&before, qn, b);
    if (!r->deleted) sq_asset_json(&after, qn, r);
    if (r->deleted) {
        ms_buf_puts(&changed, "[\"deleted\"]");
    } else {
        sq_row none = {0};
        changed_paths(a->s, was_live ? b : &none, r, tags_changed, &changed);
    }
    bool ok = change(a, op, qn, r->type, r->version, was_live ? before.data : NULL,
                     r->deleted ? NULL : after.data, changed.data);
    ms_buf_free(&before);
    ms_buf_free(&after);
    ms_buf_free(&changed);
    return ok;
}

static bool do_upsert(apply_ctx *a)
{
    const ms_event *ev = a->ev;
    const ms_type *t = ms_types_get(a->s->types, ev->tenant, ev->type);
    sq_row b, r;
    if (!load(a, ev->qn, &b)) return false;
    bool ok = true;
    memset(&r, 0, sizeof r);
    bool live = b.exists && !b.deleted;
    if (!version_ok(a, &b)) goto done;
    if (live && strcmp(b.type, ev->type) != 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "'%%s' exists as a %s, not a %s", b.type, ev->type);
        reject(a, MS_ERR_TYPE_CONFLICT, msg, ev->qn);
        goto done;
    }
    bool orphan;
    if (!check_parent(a, t, ev->parent, &orphan)) goto done;
    /* The new row: the old one with the event's fields. */
    r.exists = b.exists;
    r.id = b.id;
    r.type = ms_xstrdup(ev->type);
    r.name = ms_xstrdup(ev->name);
    r.parent = ms_xstrdup(ev->parent);
    r.attributes = ms_xstrdup(ev->attributes ? ev->attributes : "{}");
    r.orphan = orphan;
    r.deleted = false;
    r.version = b.exists ? b.version + 1 : 1;
    r.created_at = live ? ms_xstrdup(b.created_at) : NULL;
    r.tags = NULL;
    r.ntags = 0;
    if (live) { /* carry tags over, then apply the event's direct tags */
        r.tags = ms_xmalloc((b.ntags + 1) * sizeof *r.tags);
        for (size_t i = 0; i < b.ntags; i++)
            r.tags[i] = (sq_tag){ms_xstrdup(b.tags[i].name), ms_xstrdup(b.tags[i].source),
                                 ms_xstrdup(b.tags[i].origin)};
        r.ntags = b.ntags;
    }
    bool tags_changed = ev->has_tags && !direct_tags_equal(&b, ev->tags, ev->ntags);
    if (tags_changed || (!live && ev->has_tags)) direct_tags_set(&r, ev->tags, ev->ntags);
    if (!live && b.exists && !direct_tags_equal(&b, NULL, 0)) {
        /* A re-create starts with the event's tags only: drop those the deleted asset had. */
        sqlite3_stmt *clr = a->s->ws[W_TAGS_CLEAR];
        sq_bind_text(clr, 1, ev->tenant);
        sq_bind_text(clr, 2, ev->qn);
        if (!(ok = run(clr))) goto done;
    }
    if (live && !tags_changed && str_eq(b.name, r.name) && str_eq(b.parent, r.parent) &&
        str_eq(b.attributes, r.attributes) && b.orphan == r.orphan) {
        a->res->status = MS_APPLY_UNCHANGED;
        goto done;
    }
    if (live && !tags_changed && str_eq(b.name, r.name) && str_eq(b.parent, r.parent) &&
        str_eq(b.attributes, r.attributes)) {
        /* Only the derived orphan flag moved (the parent appeared or went): no new version. */
        r.version = b.version;
        r.created_at = r.created_at ? r.created_at : ms_xstrdup(b.created_at);
        r.updated_at = ms_xstrdup(b.updated_at);
        ok = save(a, ev->qn, &r, true);
        orphan_count(a, &b, &r);
        a->res->status = MS_APPLY_UNCHANGED;
        goto done;
    }
    ok = commit_asset(a, ev->qn, &b, &r, tags_changed || (!live && r.ntags), live ? "update" : "create");
    if (ok && !live) { /* children that arrived first are no longer orphans */
        sqlite3_stmt *st = a->s->ws[W_ADOPT];
        sq_bind_text(st, 1, ev->tenant);
        sq_bind_text(st, 2, ev->qn);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            if (!sqlite3_column_int(st, 0)) a->seq->orphans_next--;
        sqlite3_reset(st);
        ok = rc == SQLITE_DONE;
    }
done:
    sq_row_free(&b);
    sq_row_free(&r);
    return ok;
}

static bool do_patch(apply_ctx *a)
{
    const ms_event *ev = a->ev;
    sq_row b, r;
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
    struct json_object *cur = attrs_parse(a->s, b.attributes);
    struct json_object *patch = attrs_parse(a->s, ev->attributes);
    struct json_object *merged = ms_json_merge_patch(cur, patch);
    ms_buf canon = MS_BUF_INIT;
    ms_json_canonical(merged, &canon);
    json_object_put(cur);
    json_object_put(patch);
    json_object_put(merged);
    const ms_type *t = ms_types_get(a->s->types, ev->tenant, b.type);
    if (strcmp(canon.data, b.attributes) == 0) {
        a->res->status = MS_APPLY_UNCHANGED;
    } else if (check_required(a, t, canon.data)) {
        row_next(&r, &b);
        free(r.attributes);
        r.attributes = ms_buf_steal(&canon);
        ok = commit_asset(a, ev->qn, &b, &r, false, "update");
    }
    ms_buf_free(&canon);
done:
    sq_row_free(&b);
    sq_row_free(&r);
    return ok;
}

/* Soft-deletes one live asset row loaded in b. */
static bool delete_one(apply_ctx *a, const char *qn, sq_row *b)
{
    sq_row r;
    row_next(&r, b);
    r.deleted = true;
    bool ok = commit_asset(a, qn, b, &r, false, "delete");
    sq_row_free(&r);
    return ok;
}

static bool do_delete(apply_ctx *a)
{
    const ms_event *ev = a->ev;
    sq_row b;
    if (!load(a, ev->qn, &b)) return false;
    bool ok = true;
    if (!b.exists) {
        reject(a, MS_ERR_NOT_FOUND, "cannot delete '%s': no such asset", ev->qn);
    } else if (b.deleted) {
        a->res->status = MS_APPLY_UNCHANGED;
    } else if (version_ok(a, &b)) {
        /* Collect the live descendants first: deleting changes what the walk would see. */
        sqlite3_stmt *st = a->s->ws[W_DESC];
        sq_bind_text(st, 1, ev->tenant);
        sq_bind_text(st, 2, ev->qn);
        char **kids = NULL;
        size_t nk = 0, cap = 0;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (nk == cap) {
                cap = cap ? cap * 2 : 16;
                kids = ms_xrealloc(kids, cap * sizeof *kids);
            }
            kids[nk++] = sq_col_dup(st, 0);
        }
        sqlite3_reset(st);
        ok = rc == SQLITE_DONE && delete_one(a, ev->qn, &b);
        for (size_t i = 0; i < nk; i++) {
            sq_row k;
            if (ok && (ok = load(a, kids[i], &k)) && k.exists && !k.deleted)
                ok = delete_one(a, kids[i], &k);
            if (ok) sq_row_free(&k);
            free(kids[i]);
        }
        free(kids);
        if (!ok && !a->err->detail[0]) sq_fail(a->err, a->s->w, "delete");
    }
    sq_row_free(&b);
    return ok;
}

static bool do_tag(apply_ctx *a, bool add)
{
    const ms_event *ev = a->ev;
    sq_row b, r;
    memset(&r, 0, sizeof r);
    if (!load(a, ev->qn, &b)) return false;
    bool ok = true;
    if (!b.exists || b.deleted) {
        reject(a, MS_ERR_NOT_FOUND, add ? "cannot tag '%s': no such asset"
                                        : "cannot untag '%s': no such asset",
               ev->qn);
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
    ok = commit_asset(a, ev->qn, &b, &r, true, add ? "tag" : "untag");
done:
    sq_row_free(&b);
    sq_row_free(&r);
    return ok;
}

static bool do_link(apply_ctx *a, bool add)
{
    const ms_event *ev = a->ev;
    sqlite3_stmt *st = a->s->ws[add ? W_EDGE_INS : W_EDGE_DEL];
    sq_bind_text(st, 1, ev->tenant);
    sq_bind_text(st, 2, ev->qn);
    sq_bind_text(st, 3, ev->to);
    sq_bind_text(st, 4, ev->via ? ev->via : "");
    if (!run(st)) return false;
    if (sqlite3_changes(a->s->w) == 0) {
        a->res->status = MS_APPLY_UNCHANGED;
        return true;
    }
    sq_row b;
    if (sq_row_load(a->s->w, a->s->ws[W_GET], NULL, ev->tenant, ev->qn, false, &b, a->err) != MS_OK)
        return false;
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
    sq_row_free(&b);
    return ok;
}

/* Applies one event; returns false on an SQLite failure (the group must roll back). */
static bool apply_one(apply_ctx *a)
{
    const ms_event *ev = a->ev;
    if (ev->id) {
        sqlite3_stmt *st = a->s->ws[W_SEEN_INS];
        sq_bind_text(st, 1, ev->tenant);
        sq_bind_text(st, 2, ev->id);
        if (!run(st)) return false;
        if (sqlite3_changes(a->s->w) == 0) {
            a->res->status = MS_APPLY_DUPLICATE;
            return true;
        }
    }
    bool ok;
    switch (ev->op) {
    case MS_OP_UPSERT: ok = do_upsert(a); break;
    case MS_OP_PATCH: ok = do_patch(a); break;
    case MS_OP_DELETE: ok = do_delete(a); break;
    case MS_OP_TAG: ok = do_tag(a, true); break;
    case MS_OP_UNTAG: ok = do_tag(a, false); break;
    case MS_OP_LINK: ok = do_link(a, true); break;
    case MS_OP_UNLINK: ok = do_link(a, false); break;
    default:
        reject(a, MS_ERR_UNKNOWN_OP, "unknown op for '%s'", ev->qn);
        ok = true;
    }
    if (ok && ev->id && a->res->status == MS_APPLY_REJECTED) {
        /* A refused event leaves no trace: the same id may be sent again once fixed. */
        sqlite3_stmt *st = a->s->ws[W_SEEN_DEL];
        sq_bind_text(st, 1, ev->tenant);
        sq_bind_text(st, 2, ev->id);
        ok = run(st);
    }
    return ok;
}

/* Indexes the assets inserted in the open transaction (ids above the mark) for full-text search
 * and moves the mark, inside the transaction: search stays transactional. */
static bool fts_index_new(sq_store *s)
{
    if (s->fts_pending <= s->fts_mark) return true;
    sqlite3_stmt *add = s->ws[W_FTS_ADD], *mark = s->ws[W_FTS_MARK];
    sqlite3_bind_int64(add, 1, s->fts_mark);
    sqlite3_bind_int64(mark, 1, s->fts_pending);
    return run(add) && run(mark);
}

ms_err sq_apply(void *ctx, ms_event *const *evs, size_t n, const char *now_ts, ms_apply_result *res,
                ms_error *err)
{
    sq_store *s = ctx;
    if (sqlite3_exec(s->w, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return sq_fail(err, s->w, "begin");
    for (size_t i = 0; i < s->nseqs; i++) {
        s->seqs[i].next = s->seqs[i].committed;
        s->seqs[i].orphans_next = s->seqs[i].orphans;
    }
    for (size_t i = 0; i < n; i++) {
        sq_tenant_seq *ts = tseq(s, evs[i]->tenant);
        if (ts->next == ts->committed && ts->committed == 0) {
            sqlite3_stmt *st = s->ws[W_TENANT_INS];
            sq_bind_text(st, 1, evs[i]->tenant);
            run(st);
        }
        apply_ctx a = {s, evs[i], now_ts, &res[i], ts, err};
        memset(&res[i], 0, sizeof res[i]);
        res[i].status = MS_APPLY_UNCHANGED;
        if (!apply_one(&a)) {
            if (!err->detail[0]) sq_fail(err, s->w, "apply");
            sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
            s->fts_pending = s->fts_mark;
            return MS_ERR_STORE;
        }
    }
    if (!fts_index_new(s) || sqlite3_exec(s->w, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sq_fail(err, s->w, "commit");
        sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
        s->fts_pending = s->fts_mark;
        return MS_ERR_STORE;
    }
    s->fts_mark = s->fts_pending;
    pthread_mutex_lock(&s->stats_mu);
    for (size_t i = 0; i < s->nseqs; i++) {
        s->seqs[i].committed = s->seqs[i].next;
        s->seqs[i].orphans = s->seqs[i].orphans_next;
    }
    pthread_mutex_unlock(&s->stats_mu);
    return MS_OK;
}
