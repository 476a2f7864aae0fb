/*
 * avro_compat.c — the schema-resolution checker (ms_avro_can_read) following the Avro 1.11
 * specification's "Schema Resolution" rules, and the shallow branch match used when decoding
 * into a reader union.
 *
 * Recursive named types make the walk cyclic, so each (reader node, writer node) pair of named
 * types is memoized: a pair under check counts as compatible when met again (the data is finite,
 * so a cycle only recurses through other checks), and a finished pair keeps its answer.
 */
#include "avro_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct memo_entry {
    size_t r, w;
    int state; /* 0 free slot, 1 in progress, 2 compatible, 3 incompatible */
} memo_entry;

typedef struct cctx {
    memo_entry *memo; /* open-addressing hash table of record pairs */
    size_t cap, used;
    ms_buf *why;
    ms_buf path;
    int depth;
} cctx;

/* Checks nest along chains of named references as well as inline; deeper than this, data could
 * not be decoded anyway (MS_AVRO_MAX_DEPTH bounds datums), and the stack stays bounded. */
#define AV_CHECK_MAX_DEPTH (4 * MS_AVRO_MAX_DEPTH)

static size_t memo_hash(size_t r, size_t w, size_t cap)
{
    uint64_t h = (uint64_t)r * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)w + 0x632BE59BD9B4E019ULL);
    h ^= h >> 29;
    return (size_t)(h & (cap - 1));
}

/* The memo slot of the pair (r, w): the existing one, or a free one to fill. */
static memo_entry *memo_slot(cctx *c, size_t r, size_t w)
{
    if (2 * (c->used + 1) > c->cap) {
        size_t ncap = c->cap ? 2 * c->cap : 64;
        memo_entry *nm = ms_xcalloc(ncap, sizeof *nm);
        for (size_t i = 0; i < c->cap; i++) {
            if (!c->memo[i].state) continue;
            size_t h = memo_hash(c->memo[i].r, c->memo[i].w, ncap);
            while (nm[h].state)
                h = (h + 1) & (ncap - 1);
            nm[h] = c->memo[i];
        }
        free(c->memo);
        c->memo = nm;
        c->cap = ncap;
    }
    size_t h = memo_hash(r, w, c->cap);
    while (c->memo[h].state && (c->memo[h].r != r || c->memo[h].w != w))
        h = (h + 1) & (c->cap - 1);
    return &c->memo[h];
}

bool av_names_match(const av_node *r, const av_node *w)
{
    if (strcmp(r->fullname, w->fullname) == 0) return true;
    for (size_t i = 0; i < r->naliases; i++)
        if (strcmp(r->aliases[i], w->fullname) == 0) return true;
    return false;
}

/* The promotions of the specification: writer type w may be read as reader type r. */
static bool promotes(av_type r, av_type w)
{
    switch (w) {
    case AV_INT:
        return r == AV_LONG || r == AV_FLOAT || r == AV_DOUBLE;
    case AV_LONG:
        return r == AV_FLOAT || r == AV_DOUBLE;
    case AV_FLOAT:
        return r == AV_DOUBLE;
    case AV_STRING:
        return r == AV_BYTES;
    case AV_BYTES:
        return r == AV_STRING;
    default:
        return false;
    }
}

bool av_shallow_match(const av_node *r, const av_node *w)
{
    if (r->type == w->type) return !av_is_named(r) || av_names_match(r, w);
    return promotes(r->type, w->type);
}

const av_node *av_pick_branch(const av_node *r, const av_node *w)
{
    for (size_t i = 0; i < r->nbranches; i++) {
        const av_node *b = r->branches[i];
        if (b->type == w->type && (!av_is_named(b) || strcmp(b->fullname, w->fullname) == 0))
            return b;
    }
    for (size_t i = 0; i < r->nbranches; i++)
        if (av_shallow_match(r->branches[i], w)) return r->branches[i];
    return NULL;
}

static void why_line(cctx *c, const char *fmt, const char *a, const char *b)
{
    if (!c->why) return;
    ms_buf_puts(c->why, c->path.len ? ms_buf_cstr(&c->path) : "/");
    ms_buf_puts(c->why, ": ");
    ms_buf_printf(c->why, fmt, a, b);
    ms_buf_putc(c->why, '\n');
}

static size_t push(cctx *c, const char *fmt, size_t i, const char *name)
{
    size_t old = c->path.len;
    ms_buf_printf(&c->path, fmt, i, name);
    return old;
}

static void pop(cctx *c, size_t old)
{
    c->path.len = old;
    if (c->path.data) c->path.data[old] = '\0';
}

static bool check(cctx *c, const av_node *r, const av_node *w);

static bool check_record(cctx *c, const av_node *r, const av_node *w)
{
    bool ok = true;
    for (size_t i = 0; i < r->nfields; i++) {
        const av_field *rf = &r->fields[i];
        long k = av_writer_field(w, rf);
        const av_field *wf = k >= 0 ? &w->fields[k] : NULL;
        size_t old = push(c, "/fields/%zu (field '%s')", i, rf->name);
        if (!wf) {
            if (!rf->has_default) {
                why_line(c, "reader field has no default and is missing from the writer%s%s", "",
                         "");
                ok = false;
            }
        } else if (!check(c, rf->type, wf->type)) {
            ok = false;
        }
        pop(c, old);
    }
    return ok;
}

static bool check_named(cctx *c, const av_node *r, const av_node *w)
{
    if (!av_names_match(r, w)) {
        why_line(c, "reader %s does not match writer name '%s' (nor by an alias)", r->fullname,
                 w->fullname);
        return false;
    }
    if (r->type == AV_FIXED) {
        if (r->size != w->size) {
            char a[32], b[32];
            snprintf(a, sizeof a, "%zu", r->size);
            snprintf(b, sizeof b, "%zu", w->size);
            why_line(c, "fixed size %s in the reader, %s in the writer", a, b);
            return false;
        }
        return true;
    }
    if (r->type == AV_ENUM) {
        if (r->enum_default >= 0) return true;
        bool ok = true;
        for (size_t i = 0; i < w->nsymbols; i++) {
            if (av_lookup(r, w->symbols[i]) < 0) {
                why_line(c,
                         "writer symbol '%s' is not in the reader enum '%s', which has no default",
                         w->symbols[i], r->fullname);
                ok = false;
            }
        }
        return ok;
    }
    /* record, memoized (a pair under check counts as compatible when met again) */
    memo_entry *m = memo_slot(c, r->id, w->id);
    if (m->state) return m->state != 3;
    *m = (memo_entry){r->id, w->id, 1};
    c->used++;
    bool ok = check_record(c, r, w);
    memo_slot(c, r->id, w->id)->state = ok ? 2 : 3; /* the table may have moved */
    return ok;
}

/* True when data of writer node w reads as reader node r; appends why lines otherwise. */
static bool check_(cctx *c, const av_node *r, const av_node *w);

static bool check(cctx *c, const av_node *r, const av_node *w)
{
    if (c->depth >= AV_CHECK_MAX_DEPTH) {
        char lim[16];
        snprintf(lim, sizeof lim, "%d", AV_CHECK_MAX_DEPTH);
        why_line(c, "schemas nest deeper than %s levels%s", lim, "");
        return false;
    }
    c->depth++;
    bool ok = check_(c, r, w);
    c->depth--;
    return ok;
}

static bool check_(cctx *c, const av_node *r, const av_node *w)
{
    if (w->type == AV_UNION) {
        bool ok = true;
        for (size_t i = 0; i < w->nbranches; i++) {
            size_t old = push(c, "/%zu (writer branch %s)", i, av_node_label(w->branches[i]));
            if (!check(c, r, w->branches[i])) ok = false;
            pop(c, old);
        }
        return ok;
    }
    if (r->type == AV_UNION) {
        /* The branch decoding will use (av_pick_branch), checked in full: so that a pair judged
         * compatible also decodes. */
        const av_node *rb = av_pick_branch(r, w);
        if (!rb) {
            why_line(c, "no branch of the reader union can read the writer's %s%s",
                     av_node_label(w), "");
            return false;
        }
        size_t bi = 0;
        while (r->branches[bi] != rb)
            bi++;
        size_t old = push(c, "/%zu (reader branch %s)", bi, av_node_label(rb));
        bool ok = check(c, rb, w);
        pop(c, old);
        return ok;
    }
    if (r->type == w->type) {
        switch (r->type) {
        case AV_ARRAY:
        case AV_MAP: {
            size_t old = c->path.len;
            ms_buf_puts(&c->path, r->type == AV_ARRAY ? "/items" : "/values");
            bool ok = check(c, r->items, w->items);
            pop(c, old);
            return ok;
        }
        case AV_RECORD:
        case AV_ENUM:
        case AV_FIXED:
            return check_named(c, r, w);
        default:
            return true;
        }
    }
    if (promotes(r->type, w->type)) return true;
    why_line(c, "reader type %s cannot read writer type %s", av_node_label(r), av_node_label(w));
    return false;
}

bool ms_avro_can_read(const ms_avro_schema *reader, const ms_avro_schema *writer, ms_buf *why)
{
    cctx c = {.why = why, .path = MS_BUF_INIT};
    bool ok = check(&c, reader->root, writer->root);
    free(c.memo);
    ms_buf_free(&c.path);
    return ok;
}
