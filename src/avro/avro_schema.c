/*
 * avro_schema.c — parsing Avro schemas into the private tree (avro_int.h), Parsing Canonical
 * Form and the CRC-64-AVRO fingerprint (Avro 1.11 specification).
 *
 * The JSON goes through ms_json_parse (strict, with positions); then one recursive pass builds
 * nodes, checks names, namespaces, aliases, symbols, sizes, unions and defaults, and resolves
 * named references to the defining node, so that no later code looks a name up per datum.
 * Names defined so far live in a json-c object used as a hash table (name -> node index).
 */
#include "avro_int.h"
#include "ms_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {"null",   "boolean", "int",    "long",   "float",
                                         "double", "bytes",   "string", "record", "enum",
                                         "array",  "map",     "union",  "fixed"};

const char *av_type_name(av_type t)
{
    return type_names[t];
}

const char *av_node_label(const av_node *n)
{
    return n->fullname ? n->fullname : av_type_name(n->type);
}

/* Parse state: the schema being built, the table of defined names, the error. */
typedef struct pctx {
    ms_avro_schema *s;
    json_object *names; /* fullname -> int index into s->nodes */
    ms_error *err;
    ms_buf path; /* JSON-pointer-like path of the schema being parsed, for messages */
} pctx;

static av_node *new_node(pctx *c, av_type t)
{
    ms_avro_schema *s = c->s;
    av_node *n = ms_xcalloc(1, sizeof *n);
    n->type = t;
    n->enum_default = -1;
    n->id = s->nnodes;
    s->nodes = ms_xrealloc(s->nodes, (s->nnodes + 1) * sizeof *s->nodes);
    s->nodes[s->nnodes++] = n;
    return n;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void free_node(av_node *n)
{
    free(n->fullname);
    free(n->logical);
    free_strv(n->aliases, n->naliases);
    for (size_t i = 0; i < n->nfields; i++) {
        free(n->fields[i].name);
        json_object_put(n->fields[i].def);
        free_strv(n->fields[i].aliases, n->fields[i].naliases);
    }
    free(n->fields);
    free_strv(n->symbols, n->nsymbols);
    free(n->branches);
    free(n->index);
    free(n);
}

void ms_avro_schema_free(ms_avro_schema *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->nnodes; i++)
        free_node(s->nodes[i]);
    free(s->nodes);
    free(s->text);
    free(s);
}

const char *ms_avro_schema_text(const ms_avro_schema *s)
{
    return s->text;
}

const char *ms_avro_schema_name(const ms_avro_schema *s)
{
    return av_node_label(s->root);
}

/* Sets MS_ERR_INVALID_SCHEMA with the current path prefixed to the message. */
#define perr(c, ...) perr_((c), __LINE__, __VA_ARGS__)
static ms_err perr_(pctx *c, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static ms_err perr_(pctx *c, int line, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->err && c->err->code != MS_OK) return c->err->code; /* keep the first error */
    /* A deep path keeps its end, where the problem is, so the message still fits the detail. */
    const char *path = c->path.len ? ms_buf_cstr(&c->path) : "/";
    size_t plen = strlen(path);
    ms_error_set_(c->err, MS_ERR_INVALID_SCHEMA, __FILE__, line, "%s%s: %s", plen > 96 ? "..." : "",
                  plen > 96 ? path + plen - 96 : path, msg);
    return MS_ERR_INVALID_SCHEMA;
}

/* A valid Avro name: [A-Za-z_][A-Za-z0-9_]*. */
static bool valid_name(const char *s, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool alpha = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_';
        if (!alpha && !(i > 0 && ch >= '0' && ch <= '9')) return false;
    }
    return true;
}

/* A valid full name or namespace: names joined by dots (empty allowed when allow_empty). */
static bool valid_dotted(const char *s, bool allow_empty)
{
    if (*s == '\0') return allow_empty;
    const char *p = s;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (!valid_name(p, n)) return false;
        if (!dot) return true;
        p = dot + 1;
    }
}

/* Full name of `name` declared in namespace ns (NULL or "" = none). Caller frees. */
static char *make_fullname(const char *name, const char *ns)
{
    if (strchr(name, '.') || !ns || !*ns) return ms_xstrdup(name);
    ms_buf b = MS_BUF_INIT;
    ms_buf_printf(&b, "%s.%s", ns, name);
    return ms_buf_steal(&b);
}

/* The namespace part of a full name (caller frees; "" when none). */
static char *namespace_of(const char *fullname)
{
    const char *dot = strrchr(fullname, '.');
    return dot ? ms_xstrndup(fullname, (size_t)(dot - fullname)) : ms_xstrdup("");
}

static int primitive_type(const char *s)
{
    for (int t = AV_NULL; t <= AV_STRING; t++)
        if (strcmp(s, type_names[t]) == 0) return t;
    return -1;
}

static ms_err parse_node(pctx *c, json_object *j, const char *ns, int depth, av_node **out);

/* Looks up a named-type reference `name` from namespace ns: ns.name first, then name itself. */
static av_node *lookup_name(pctx *c, const char *name, const char *ns)
{
    char *full = make_fullname(name, ns);
    json_object *idx = NULL;
    bool found = json_object_object_get_ex(c->names, full, &idx);
    if (!found && strcmp(full, name) != 0) found = json_object_object_get_ex(c->names, name, &idx);
    free(full);
    return found ? c->s->nodes[json_object_get_int(idx)] : NULL;
}

static ms_err parse_type_string(pctx *c, const char *str, const char *ns, av_node **out)
{
    int prim = primitive_type(str);
    if (prim >= 0) {
        *out = new_node(c, (av_type)prim);
        return MS_OK;
    }
    av_node *n = lookup_name(c, str, ns);
    if (!n) return perr(c, "unknown type name '%s'", str);
    *out = n;
    return MS_OK;
}

/* Reads a string member key of object o (NULL when absent); error when present but not a string. */
static ms_err get_str(pctx *c, json_object *o, const char *key, bool required, const char **out)
{
    json_object *v = NULL;
    *out = NULL;
    if (!json_object_object_get_ex(o, key, &v)) {
        if (required) return perr(c, "missing \"%s\"", key);
        return MS_OK;
    }
    if (!json_object_is_type(v, json_type_string)) return perr(c, "\"%s\" must be a string", key);
    *out = json_object_get_string(v);
    return MS_OK;
}

/* Reads "aliases" (array of strings) into a fresh vector, qualifying each against ns when
 * qualify; simple names only when !qualify (field aliases). */
static ms_err get_aliases(pctx *c, json_object *o, const char *ns, bool qualify, char ***out,
                          size_t *nout)
{
    json_object *a = NULL;
    *out = NULL;
    *nout = 0;
    if (!json_object_object_get_ex(o, "aliases", &a)) return MS_OK;
    if (!json_object_is_type(a, json_type_array)) return perr(c, "\"aliases\" must be an array");
    size_t n = json_object_array_length(a);
    char **v = ms_xcalloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(a, i);
        const char *s = json_object_is_type(e, json_type_string) ? json_object_get_string(e) : NULL;
        if (!s || !(qualify ? valid_dotted(s, false) : valid_name(s, strlen(s)))) {
            free_strv(v, i);
            return perr(c, "alias %zu is not a valid name", i);
        }
        v[i] = qualify ? make_fullname(s, ns) : ms_xstrdup(s);
    }
    *out = v;
    *nout = n;
    return MS_OK;
}

/* Declares the named node n (fullname set) in the name table; error on a duplicate. */
static ms_err declare(pctx *c, av_node *n)
{
    if (primitive_type(n->fullname) >= 0)
        return perr(c, "'%s' is a primitive type name and cannot be redefined", n->fullname);
    if (json_object_object_get_ex(c->names, n->fullname, NULL))
        return perr(c, "duplicate definition of the name '%s'", n->fullname);
    json_object_object_add(c->names, n->fullname, json_object_new_int((int)n->id));
    return MS_OK;
}

/* Decodes a JSON string of code points U+0000..U+00FF (bytes/fixed in JSON) — returns the byte
 * length, or -1 when a code point is above U+00FF. */
static long latin1_len(const char *s, size_t n)
{
    long out = 0;
    for (size_t i = 0; i < n; out++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x80)
            i++;
        else if ((ch == 0xC2 || ch == 0xC3) && i + 1 < n)
            i += 2;
        else
            return -1;
    }
    return out;
}

/* Checks that JSON value v is a valid default of node n (spec: union defaults match the first
 * branch). Returns a static reason or NULL when valid. Bounded by the JSON's own depth. */
static const char *check_default(const av_node *n, json_object *v)
{
    json_type jt = v ? json_object_get_type(v) : json_type_null;
    switch (n->type) {
    case AV_NULL:
        return jt == json_type_null ? NULL : "expected null";
    case AV_BOOLEAN:
        return jt == json_type_boolean ? NULL : "expected a boolean";
    case AV_INT:
        if (jt != json_type_int) return "expected an int";
        {
            int64_t x = json_object_get_int64(v);
            return (x >= INT32_MIN && x <= INT32_MAX) ? NULL : "int out of range";
        }
    case AV_LONG:
        return jt == json_type_int ? NULL : "expected a long";
    case AV_FLOAT:
    case AV_DOUBLE:
        return (jt == json_type_int || jt == json_type_double) ? NULL : "expected a number";
    case AV_STRING:
        return jt == json_type_string ? NULL : "expected a string";
    case AV_BYTES:
        if (jt != json_type_string) return "expected a string of bytes";
        return latin1_len(json_object_get_string(v), (size_t)json_object_get_string_len(v)) < 0
                   ? "bytes default has a code point above U+00FF"
                   : NULL;
    case AV_FIXED:
        if (jt != json_type_string) return "expected a string of bytes";
        return latin1_len(json_object_get_string(v), (size_t)json_object_get_string_len(v)) ==
                       (long)n->size
                   ? NULL
                   : "fixed default has the wrong length";
    case AV_ENUM:
        if (jt != json_type_string) return "expected an enum symbol";
        return av_lookup(n, json_object_get_string(v)) >= 0 ? NULL : "not a symbol of the enum";
    case AV_ARRAY:
        if (jt != json_type_array) return "expected an array";
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            const char *r = check_default(n->items, json_object_array_get_idx(v, i));
            if (r) return r;
        }
        return NULL;
    case AV_MAP:
        if (jt != json_type_object) return "expected an object (map)";
        {
            json_object_object_foreach(v, key, val)
            {
                (void)key;
                const char *r = check_default(n->items, val);
                if (r) return r;
            }
        }
        return NULL;
    case AV_RECORD:
        if (jt != json_type_object) return "expected an object (record)";
        for (size_t i = 0; i < n->nfields; i++) {
            json_object *fv = NULL;
            if (json_object_object_get_ex(v, n->fields[i].name, &fv)) {
                const char *r = check_default(n->fields[i].type, fv);
                if (r) return r;
            } else if (!n->fields[i].has_default) {
                return "record default lacks a field that has no default";
            }
        }
        return NULL;
    case AV_UNION:
        return n->nbranches ? check_default(n->branches[0], v) : "an empty union has no values";
    }
    return "unknown type";
}

/* Pushes "/seg" on the path; returns the old length for pop. */
static size_t path_push(pctx *c, const char *fmt, const char *arg, size_t idx)
{
    size_t old = c->path.len;
    ms_buf_putc(&c->path, '/');
    if (arg)
        ms_buf_printf(&c->path, fmt, arg);
    else
        ms_buf_printf(&c->path, fmt, idx);
    return old;
}

static void path_pop(pctx *c, size_t old)
{
    c->path.len = old;
    if (c->path.data) c->path.data[old] = '\0';
}

static int ix_cmp(const void *a, const void *b)
{
    const av_name_ix *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* Builds n->index from names[0..count) (field names or symbols). Returns the index of a name
 * that repeats an earlier one (the later of the two), or -1 when all are distinct. */
static long build_index(av_node *n, char *const *names, size_t stride, size_t count)
{
    n->index = ms_xmalloc((count ? count : 1) * sizeof *n->index);
    for (size_t i = 0; i < count; i++)
        n->index[i] = (av_name_ix){*(char *const *)((const char *)names + i * stride), i};
    qsort(n->index, count, sizeof *n->index, ix_cmp);
    long dup = -1;
    for (size_t i = 1; i < count; i++)
        if (strcmp(n->index[i - 1].name, n->index[i].name) == 0 &&
            (dup < 0 || (long)n->index[i].idx < dup))
            dup = (long)n->index[i].idx;
    return dup;
}

long av_lookup(const av_node *n, const char *name)
{
    size_t lo = 0, hi = n->type == AV_RECORD ? n->nfields : n->nsymbols;
    if (!n->index) return -1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(n->index[mid].name, name);
        if (c == 0) return (long)n->index[mid].idx;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

long av_writer_field(const av_node *w, const av_field *rf)
{
    long k = av_lookup(w, rf->name);
    for (size_t a = 0; k < 0 && a < rf->naliases; a++)
        k = av_lookup(w, rf->aliases[a]);
    return k;
}

static ms_err parse_fields(pctx *c, json_object *j, av_node *n, const char *ns, int depth)
{
    json_object *fa = NULL;
    if (!json_object_object_get_ex(j, "fields", &fa) || !json_object_is_type(fa, json_type_array))
        return perr(c, "record '%s' needs a \"fields\" array", n->fullname);
    size_t nf = json_object_array_length(fa);
    n->fields = ms_xcalloc(nf ? nf : 1, sizeof *n->fields);
    for (size_t i = 0; i < nf; i++) {
        json_object *fj = json_object_array_get_idx(fa, i);
        size_t old = path_push(c, "fields/%zu", NULL, i);
        av_field *f = &n->fields[i];
        const char *name = NULL;
        if (!json_object_is_type(fj, json_type_object)) return perr(c, "a field must be an object");
        if (get_str(c, fj, "name", true, &name)) return c->err->code;
        if (!valid_name(name, strlen(name))) return perr(c, "bad field name '%s'", name);
        f->name = ms_xstrdup(name);
        n->nfields = i + 1;
        if (get_aliases(c, fj, ns, false, &f->aliases, &f->naliases)) return c->err->code;
        json_object *tj = NULL;
        if (!json_object_object_get_ex(fj, "type", &tj))
            return perr(c, "field '%s' has no \"type\"", name);
        ms_err rc = parse_node(c, tj, ns, depth + 1, &f->type);
        if (rc) return rc;
        json_object *dj = NULL;
        if (json_object_object_get_ex(fj, "default", &dj)) {
            const char *why = check_default(f->type, dj);
            if (why) return perr(c, "default of field '%s' does not match its type: %s", name, why);
            f->has_default = true;
            f->def = json_object_get(dj);
        }
        path_pop(c, old);
    }
    long dup = build_index(n, &n->fields[0].name, sizeof *n->fields, n->nfields);
    if (dup >= 0) {
        path_push(c, "fields/%zu", NULL, (size_t)dup);
        return perr(c, "duplicate field '%s' in record '%s'", n->fields[dup].name, n->fullname);
    }
    return MS_OK;
}

static ms_err parse_named(pctx *c, json_object *j, av_type t, const char *ns, int depth,
                          av_node **out)
{
    const char *name = NULL, *jns = NULL, *logical = NULL;
    if (get_str(c, j, "name", true, &name) || get_str(c, j, "namespace", false, &jns) ||
        get_str(c, j, "logicalType", false, &logical))
        return c->err->code;
    if (!valid_dotted(name, false)) return perr(c, "bad name '%s'", name);
    if (jns && !strchr(name, '.') && !valid_dotted(jns, true))
        return perr(c, "bad namespace '%s'", jns);
    av_node *n = new_node(c, t);
    *out = n;
    n->fullname = make_fullname(name, strchr(name, '.') ? NULL : (jns ? jns : ns));
    if (logical) n->logical = ms_xstrdup(logical);
    char *myns = namespace_of(n->fullname);
    ms_err rc = get_aliases(c, j, myns, true, &n->aliases, &n->naliases);
    if (!rc) rc = declare(c, n);
    if (rc) goto out;
    if (t == AV_RECORD) {
        rc = parse_fields(c, j, n, myns, depth);
    } else if (t == AV_ENUM) {
        json_object *sa = NULL;
        if (!json_object_object_get_ex(j, "symbols", &sa) ||
            !json_object_is_type(sa, json_type_array)) {
            rc = perr(c, "enum '%s' needs a \"symbols\" array", n->fullname);
            goto out;
        }
        size_t ns_ = json_object_array_length(sa);
        n->symbols = ms_xcalloc(ns_ ? ns_ : 1, sizeof *n->symbols);
        for (size_t i = 0; i < ns_; i++) {
            json_object *e = json_object_array_get_idx(sa, i);
            const char *sym =
                json_object_is_type(e, json_type_string) ? json_object_get_string(e) : NULL;
            if (!sym || !valid_name(sym, strlen(sym))) {
                rc = perr(c, "enum '%s': symbol %zu is not a valid name", n->fullname, i);
                goto out;
            }
            n->symbols[i] = ms_xstrdup(sym);
            n->nsymbols = i + 1;
        }
        long dup = build_index(n, n->symbols, sizeof *n->symbols, n->nsymbols);
        if (dup >= 0) {
            rc = perr(c, "enum '%s': duplicate symbol '%s'", n->fullname, n->symbols[dup]);
            goto out;
        }
        const char *def = NULL;
        if ((rc = get_str(c, j, "default", false, &def))) goto out;
        if (def) {
            n->enum_default = av_lookup(n, def);
            if (n->enum_default < 0) {
                rc = perr(c, "enum '%s': default '%s' is not a symbol", n->fullname, def);
                goto out;
            }
        }
    } else { /* fixed */
        json_object *sz = NULL;
        if (!json_object_object_get_ex(j, "size", &sz) || !json_object_is_type(sz, json_type_int) ||
            json_object_get_int64(sz) < 0 || json_object_get_int64(sz) > INT32_MAX) {
            rc = perr(c, "fixed '%s' needs a \"size\" (a non-negative integer)", n->fullname);
            goto out;
        }
        n->size = (size_t)json_object_get_int64(sz);
    }
out:
    free(myns);
    return rc;
}

static ms_err parse_union(pctx *c, json_object *j, const char *ns, int depth, av_node **out)
{
    size_t nb = json_object_array_length(j);
    av_node *n = new_node(c, AV_UNION);
    *out = n;
    /* An empty union is legal (the spec's own canonical-form tests have one); it has no values. */
    n->branches = ms_xcalloc(nb ? nb : 1, sizeof *n->branches);
    for (size_t i = 0; i < nb; i++) {
        size_t old = path_push(c, "%zu", NULL, i);
        av_node *b = NULL;
        ms_err rc = parse_node(c, json_object_array_get_idx(j, i), ns, depth + 1, &b);
        if (rc) return rc;
        if (b->type == AV_UNION) return perr(c, "a union cannot contain a union directly");
        for (size_t k = 0; k < i; k++) {
            const av_node *o = n->branches[k];
            if (o->type != b->type) continue;
            if (!av_is_named(b))
                return perr(c, "union has two branches of type %s", av_type_name(b->type));
            if (strcmp(o->fullname, b->fullname) == 0)
                return perr(c, "union has the type '%s' twice", b->fullname);
        }
        n->branches[i] = b;
        n->nbranches = i + 1;
        path_pop(c, old);
    }
    return MS_OK;
}

/* Parses one schema (string, object or union array) in the enclosing namespace ns. */
static ms_err parse_node(pctx *c, json_object *j, const char *ns, int depth, av_node **out)
{
    *out = NULL;
    if (depth > MS_AVRO_MAX_DEPTH)
        return perr(c, "schema nesting is deeper than %d", MS_AVRO_MAX_DEPTH);
    if (json_object_is_type(j, json_type_string))
        return parse_type_string(c, json_object_get_string(j), ns, out);
    if (json_object_is_type(j, json_type_array)) return parse_union(c, j, ns, depth, out);
    if (!json_object_is_type(j, json_type_object))
        return perr(c, "a schema must be a string, an object or an array");
    json_object *tj = NULL;
    if (!json_object_object_get_ex(j, "type", &tj)) return perr(c, "missing \"type\"");
    if (!json_object_is_type(tj, json_type_string)) {
        /* {"type": {...}} or {"type": [...]}: the schema is the nested one. */
        return parse_node(c, tj, ns, depth + 1, out);
    }
    const char *t = json_object_get_string(tj);
    const char *logical = NULL;
    if (get_str(c, j, "logicalType", false, &logical)) return c->err->code;
    if (strcmp(t, "record") == 0 || strcmp(t, "error") == 0)
        return parse_named(c, j, AV_RECORD, ns, depth, out);
    if (strcmp(t, "enum") == 0) return parse_named(c, j, AV_ENUM, ns, depth, out);
    if (strcmp(t, "fixed") == 0) return parse_named(c, j, AV_FIXED, ns, depth, out);
    if (strcmp(t, "array") == 0 || strcmp(t, "map") == 0) {
        bool arr = t[0] == 'a';
        const char *key = arr ? "items" : "values";
        av_node *n = new_node(c, arr ? AV_ARRAY : AV_MAP);
        *out = n;
        if (logical) n->logical = ms_xstrdup(logical);
        json_object *ij = NULL;
        if (!json_object_object_get_ex(j, key, &ij)) return perr(c, "%s needs \"%s\"", t, key);
        size_t old = path_push(c, "%s", key, 0);
        ms_err rc = parse_node(c, ij, ns, depth + 1, &n->items);
        if (!rc) path_pop(c, old);
        return rc;
    }
    ms_err rc = parse_type_string(c, t, ns, out);
    if (!rc && logical && !av_is_named(*out) && !(*out)->logical)
        (*out)->logical = ms_xstrdup(logical);
    return rc;
}

ms_err ms_avro_schema_parse(const char *text, size_t len, ms_avro_schema **out, ms_error *err)
{
    *out = NULL;
    ms_error_clear(err);
    if (len > MS_AVRO_MAX_SCHEMA_BYTES)
        return ms_error_set(err, MS_ERR_INVALID_SCHEMA, "schema is %zu bytes, more than %d", len,
                            MS_AVRO_MAX_SCHEMA_BYTES);
    ms_error jerr;
    json_object *j = ms_json_parse(text, len, 4 * MS_AVRO_MAX_DEPTH + 16, NULL, &jerr);
    if (jerr.code != MS_OK) {
        ms_error_set(err, MS_ERR_INVALID_SCHEMA, "schema is not valid JSON: %s", jerr.detail);
        ms_error_at(err, jerr.line, jerr.column, jerr.offset);
        return MS_ERR_INVALID_SCHEMA;
    }
    ms_avro_schema *s = ms_xcalloc(1, sizeof *s);
    s->text = ms_xstrndup(text, len);
    s->text_len = len;
    pctx c = {.s = s, .names = json_object_new_object(), .err = err, .path = MS_BUF_INIT};
    ms_error local;
    if (!c.err) {
        ms_error_clear(&local);
        c.err = &local;
    }
    ms_err rc = parse_node(&c, j, "", 0, &s->root);
    json_object_put(c.names);
    json_object_put(j);
    ms_buf_free(&c.path);
    if (rc) {
        ms_avro_schema_free(s);
        return rc;
    }
    *out = s;
    return MS_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Parsing Canonical Form and fingerprint
 * ------------------------------------------------------------------------------------------- */

static void canon(const av_node *n, bool *seen, ms_buf *out)
{
    if (av_is_named(n) && seen[n->id]) {
        ms_buf_put_jstr(out, n->fullname);
        return;
    }
    switch (n->type) {
    case AV_RECORD:
    case AV_ENUM:
    case AV_FIXED:
        seen[n->id] = true;
        ms_buf_puts(out, "{\"name\":");
        ms_buf_put_jstr(out, n->fullname);
        ms_buf_printf(out, ",\"type\":\"%s\"", av_type_name(n->type));
        if (n->type == AV_RECORD) {
            ms_buf_puts(out, ",\"fields\":[");
            for (size_t i = 0; i < n->nfields; i++) {
                ms_buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
                ms_buf_put_jstr(out, n->fields[i].name);
                ms_buf_puts(out, ",\"type\":");
                canon(n->fields[i].type, seen, out);
                ms_buf_putc(out, '}');
            }
            ms_buf_puts(out, "]}");
        } else if (n->type == AV_ENUM) {
            ms_buf_puts(out, ",\"symbols\":[");
            for (size_t i = 0; i < n->nsymbols; i++) {
                if (i) ms_buf_putc(out, ',');
                ms_buf_put_jstr(out, n->symbols[i]);
            }
            ms_buf_puts(out, "]}");
        } else {
            ms_buf_printf(out, ",\"size\":%zu}", n->size);
        }
        return;
    case AV_ARRAY:
    case AV_MAP:
        ms_buf_puts(out, n->type == AV_ARRAY ? "{\"type\":\"array\",\"items\":"
                                             : "{\"type\":\"map\",\"values\":");
        canon(n->items, seen, out);
        ms_buf_putc(out, '}');
        return;
    case AV_UNION:
        ms_buf_putc(out, '[');
        for (size_t i = 0; i < n->nbranches; i++) {
            if (i) ms_buf_putc(out, ',');
            canon(n->branches[i], seen, out);
        }
        ms_buf_putc(out, ']');
        return;
    default:
        ms_buf_printf(out, "\"%s\"", av_type_name(n->type));
    }
}

void ms_avro_schema_canonical(const ms_avro_schema *s, ms_buf *out)
{
    bool *seen = ms_xcalloc(s->nnodes ? s->nnodes : 1, sizeof *seen);
    canon(s->root, seen, out);
    free(seen);
}

/* CRC-64-AVRO as the specification defines it: the empty value 0xc15d213aa4d7a795, a
 * byte-wise table built from it, bits consumed least significant first. */
#define AV_FP_EMPTY 0xc15d213aa4d7a795ULL

uint64_t ms_avro_schema_fingerprint(const ms_avro_schema *s)
{
    uint64_t table[256];
    for (unsigned i = 0; i < 256; i++) {
        uint64_t fp = i;
        for (int k = 0; k < 8; k++)
            fp = (fp >> 1) ^ (AV_FP_EMPTY & (0 - (fp & 1)));
        table[i] = fp;
    }
    ms_buf b = MS_BUF_INIT;
    ms_avro_schema_canonical(s, &b);
    uint64_t fp = AV_FP_EMPTY;
    for (size_t i = 0; i < b.len; i++)
        fp = (fp >> 8) ^ table[(fp ^ (unsigned char)b.data[i]) & 0xff];
    ms_buf_free(&b);
    return fp;
}

json_object *av_default_to_natural(const av_node *n, json_object *def)
{
    switch (n->type) {
    case AV_FLOAT:
    case AV_DOUBLE:
        return json_object_new_double(json_object_get_double(def));
    case AV_UNION:
        return av_default_to_natural(n->branches[0], def);
    case AV_ARRAY: {
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < json_object_array_length(def); i++)
            json_object_array_add(
                a, av_default_to_natural(n->items, json_object_array_get_idx(def, i)));
        return a;
    }
    case AV_MAP: {
        json_object *o = json_object_new_object();
        json_object_object_foreach(def, k, v)
            json_object_object_add(o, k, av_default_to_natural(n->items, v));
        return o;
    }
    case AV_RECORD: {
        json_object *o = json_object_new_object();
        for (size_t i = 0; i < n->nfields; i++) {
            const av_field *f = &n->fields[i];
            json_object *v = NULL;
            if (!json_object_object_get_ex(def, f->name, &v)) v = f->def;
            json_object_object_add(o, f->name, av_default_to_natural(f->type, v));
        }
        return o;
    }
    case AV_NULL:
        return NULL;
    default: {
        /* A copy, not a new reference: json-c reference counts are not atomic, and the schema
         * is shared between threads. */
        json_object *copy = NULL;
        if (json_object_deep_copy(def, &copy, NULL) != 0) abort();
        return copy;
    }
    }
}
