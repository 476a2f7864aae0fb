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
    int state; /* 1 in progress, 2 compatible, 3 incompatible */
} memo_entry;

typedef struct cctx {
    memo_entry *memo;
    size_t nmemo;
    ms_buf *why;
    ms_buf path;
} cctx;

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
        const av_field *wf = NULL;
        for (size_t k = 0; k < w->nfields && !wf; k++)
            if (strcmp(w->fields[k].name, rf->name) == 0) wf = &w->fields[k];
        for (size_t a = 0; a < rf->naliases && !wf; a++)
            for (size_t k = 0; k < w->nfields && !wf; k++)
                if (strcmp(w->fields[k].name, rf->aliases[a]) == 0) wf = &w->fields[k];
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
            bool found = false;
            for (size_t k = 0; k < r->nsymbols && !found; k++)
                found = strcmp(r->symbols[k], w->symbols[i]) == 0;
            if (!found) {
                why_line(c,
                         "writer symbol '%s' is not in the reader enum '%s', which has no default",
                         w->symbols[i], r->fullname);
                ok = false;
            }
        }
        return ok;
    }
    /* record, memoized */
    for (size_t i = 0; i < c->nmemo; i++)
        if (c->memo[i].r == r->id && c->memo[i].w == w->id) return c->memo[i].state != 3;
    size_t slot = c->nmemo++;
    c->memo = ms_xrealloc(c->memo, c->nmemo * sizeof *c->memo);
    c->memo[slot] = (memo_entry){r->id, w->id, 1};
    bool ok = check_record(c, r, w);
    c->memo[slot].state = ok ? 2 : 3;
    return ok;
}

/* True when data of writer node w reads as reader node r; appends why lines otherwise. */
static bool check(cctx *c, const av_node *r, const av_node *w)
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
        /* Prefer a branch of the same kind and name, as decoding does, then any that reads. */
        ms_buf *saved = c->why;
        c->why = NULL;
        bool ok = false;
        for (size_t i = 0; i < r->nbranches && !ok; i++)
            ok = check(c, r->branches[i], w);
        c->why = saved;
        if (!ok)
            why_line(c, "no branch of the reader union can read the writer's %s%s",
                     av_node_label(w), "");
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
