/*
 * avro_binary.c — Avro binary datums to and from natural JSON (ms_avro.h): decoding with
 * optional resolution to a reader schema, encoding, and the Confluent wire-format header.
 *
 * Input is hostile (every Kafka message goes through here): varints are at most 10 bytes and
 * must fit 64 bits; ints must fit 32; every length is checked against the bytes left before
 * anything is allocated; item counts of arrays and maps are bounded by the bytes left (or, for
 * items that take no bytes, by MS_AVRO_MAX_EMPTY_ITEMS); nesting is bounded by MS_AVRO_MAX_DEPTH;
 * strings must be UTF-8; the datum must be consumed exactly.
 *
 * Resolution works on the node pair (writer, reader); decoding without a reader is the pair
 * (writer, writer). The writer→reader field mapping of a record pair is computed once per call
 * and cached in the decoder (with a positional fast path for fields in the same order).
 */
#include "avro_int.h"
#include "ms_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Items that encode to zero bytes (null, empty records, fixed of size 0) cannot be bounded by
 * the input's length, so their count per datum has a fixed bound. */
#define MS_AVRO_MAX_EMPTY_ITEMS (1 << 16)

/* ---------------------------------------------------------------------------------------------
 * UTF-8 and the bytes-as-code-points convention
 * ------------------------------------------------------------------------------------------- */

/* Natural JSON of raw bytes: a string of the code points U+0000..U+00FF, in UTF-8. */
static json_object *bytes_to_natural(const uint8_t *p, size_t n)
{
    size_t extra = 0;
    for (size_t i = 0; i < n; i++)
        extra += p[i] >> 7;
    if (!extra) return json_object_new_string_len((const char *)p, (int)n);
    char *tmp = ms_xmalloc(n + extra);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x80) {
            tmp[k++] = (char)p[i];
        } else {
            tmp[k++] = (char)(0xC0 | (p[i] >> 6));
            tmp[k++] = (char)(0x80 | (p[i] & 0x3F));
        }
    }
    json_object *o = json_object_new_string_len(tmp, (int)k);
    free(tmp);
    return o;
}

/* Converts a natural bytes string back to raw bytes, appended to out; false when the string
 * holds a code point above U+00FF (or is not UTF-8). *nbytes receives the byte count. */
static bool natural_to_bytes(const char *s, size_t n, ms_buf *out, size_t *nbytes)
{
    size_t count = 0;
    for (size_t i = 0; i < n; count++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            if (out) ms_buf_putc(out, (char)c);
            i++;
        } else if ((c == 0xC2 || c == 0xC3) && i + 1 < n &&
                   ((unsigned char)s[i + 1] & 0xC0) == 0x80) {
            if (out) ms_buf_putc(out, (char)(((c & 0x03) << 6) | ((unsigned char)s[i + 1] & 0x3F)));
            i += 2;
        } else {
            return false;
        }
    }
    *nbytes = count;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------------------------- */

/* The writer→reader field mapping of one record pair. */
typedef struct fmap {
    const av_node *w, *r;
    long *w_to_r; /* per writer field: reader field index or -1 (skip) */
} fmap;

typedef struct dec {
    const uint8_t *start, *p, *end;
    ms_error *err;
    int depth;
    size_t empty_items; /* zero-width array items decoded so far */
    fmap *maps;
    size_t nmaps;
} dec;

#define dfail(d, ...)     dfail_((d), MS_ERR_AVRO_DECODE, __LINE__, __VA_ARGS__)
#define dincompat(d, ...) dfail_((d), MS_ERR_INCOMPATIBLE_SCHEMA, __LINE__, __VA_ARGS__)
static ms_err dfail_(dec *d, ms_err code, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static ms_err dfail_(dec *d, ms_err code, int line, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    long off = (long)(d->p - d->start);
    ms_error_set_(d->err, code, __FILE__, line, "%s (at byte %ld)", msg, off);
    ms_error_at(d->err, 0, 0, off);
    return code;
}

static size_t left(const dec *d)
{
    return (size_t)(d->end - d->p);
}

static ms_err read_long(dec *d, int64_t *out)
{
    uint64_t v = 0;
    for (int i = 0;; i++) {
        if (d->p >= d->end) return dfail(d, "truncated datum: a varint is cut short");
        uint8_t b = *d->p;
        if (i == 9 && b > 1) return dfail(d, "varint overflows 64 bits");
        d->p++;
        v |= (uint64_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) break;
    }
    *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
    return MS_OK;
}

static ms_err read_int(dec *d, int32_t *out)
{
    const uint8_t *at = d->p;
    int64_t v;
    ms_err rc = read_long(d, &v);
    if (rc) return rc;
    if (v < INT32_MIN || v > INT32_MAX) {
        d->p = at;
        return dfail(d, "int value %lld does not fit 32 bits", (long long)v);
    }
    *out = (int32_t)v;
    return MS_OK;
}

/* Reads a length and checks it against the bytes left. */
static ms_err read_len(dec *d, size_t *out)
{
    const uint8_t *at = d->p;
    int64_t n;
    ms_err rc = read_long(d, &n);
    if (rc) return rc;
    if (n < 0) {
        d->p = at;
        return dfail(d, "negative length %lld", (long long)n);
    }
    if ((uint64_t)n > left(d)) {
        size_t rem = left(d);
        d->p = at;
        return dfail(d, "truncated datum: length %lld but only %zu bytes left", (long long)n, rem);
    }
    if (n > INT32_MAX) { /* json-c string lengths are ints (> 2 GiB input only) */
        d->p = at;
        return dfail(d, "length %lld is more than MetaSync takes", (long long)n);
    }
    *out = (size_t)n;
    return MS_OK;
}

/* True when values of n may encode to zero bytes (bounded walk; cyclic types say false). */
static bool zero_width(const av_node *n, int depth)
{
    if (depth > MS_AVRO_MAX_DEPTH) return false;
    if (n->type == AV_NULL) return true;
    if (n->type == AV_FIXED) return n->size == 0;
    if (n->type != AV_RECORD) return false;
    for (size_t i = 0; i < n->nfields; i++)
        if (!zero_width(n->fields[i].type, depth + 1)) return false;
    return true;
}

static const long *field_map(dec *d, const av_node *w, const av_node *r)
{
    for (size_t i = 0; i < d->nmaps; i++)
        if (d->maps[i].w == w && d->maps[i].r == r) return d->maps[i].w_to_r;
    /* Reader-driven, as the checker matches: each reader field takes the writer field of its
     * name, else of its first alias the writer has. */
    long *m = ms_xmalloc((w->nfields ? w->nfields : 1) * sizeof *m);
    for (size_t i = 0; i < w->nfields; i++)
        m[i] = -1;
    for (size_t k = 0; k < r->nfields; k++) {
        const av_field *rf = &r->fields[k];
        long i = k < w->nfields && strcmp(w->fields[k].name, rf->name) == 0
                     ? (long)k /* same position: the common case of near-identical schemas */
                     : av_writer_field(w, rf);
        if (i >= 0) m[i] = (long)k;
    }
    d->maps = ms_xrealloc(d->maps, (d->nmaps + 1) * sizeof *d->maps);
    d->maps[d->nmaps++] = (fmap){w, r, m};
    return m;
}

static ms_err dec_value(dec *d, const av_node *w, const av_node *r, json_object **out);

static ms_err dec_record(dec *d, const av_node *w, const av_node *r, json_object **out)
{
    if (w != r && !av_names_match(r, w))
        return dincompat(d, "writer record '%s' does not match reader record '%s'", w->fullname,
                         r->fullname);
    json_object *stackv[16];
    json_object **vals = r->nfields <= 16 ? stackv : ms_xcalloc(r->nfields, sizeof *vals);
    bool stackseen[16];
    bool *seen = r->nfields <= 16 ? stackseen : ms_xcalloc(r->nfields, sizeof *seen);
    memset(seen, 0, r->nfields * sizeof *seen);
    const long *map = w == r ? NULL : field_map(d, w, r);
    ms_err rc = MS_OK;
    size_t i;
    for (i = 0; i < w->nfields && !rc; i++) {
        long k = map ? map[i] : (long)i;
        json_object *v = NULL;
        if (k < 0) { /* writer-only field: decode and drop */
            rc = dec_value(d, w->fields[i].type, w->fields[i].type, &v);
            json_object_put(v);
        } else {
            rc = dec_value(d, w->fields[i].type, r->fields[k].type, &v);
            if (!rc) {
                if (seen[k]) json_object_put(vals[k]);
                vals[k] = v;
                seen[k] = true;
            }
        }
    }
    json_object *o = rc ? NULL : json_object_new_object();
    for (i = 0; i < r->nfields; i++) {
        const av_field *f = &r->fields[i];
        if (!o) {
            if (seen[i]) json_object_put(vals[i]);
            continue;
        }
        if (!seen[i]) {
            if (!f->has_default) {
                rc = dincompat(d,
                               "reader field '%s' of '%s' is missing from the writer and has "
                               "no default",
                               f->name, r->fullname);
                json_object_put(o);
                o = NULL;
                continue;
            }
            vals[i] = av_default_to_natural(f->type, f->def);
        }
        json_object_object_add(o, f->name, vals[i]);
    }
    if (vals != stackv) free(vals);
    if (seen != stackseen) free(seen);
    *out = o;
    return rc;
}

/* Reads the blocks of an array (values == false) or a map. */
static ms_err dec_blocks(dec *d, const av_node *w, const av_node *r, bool is_map, json_object *o)
{
    bool empty = !is_map && zero_width(w->items, 0);
    for (;;) {
        const uint8_t *at = d->p;
        int64_t count;
        ms_err rc = read_long(d, &count);
        if (rc) return rc;
        if (count == 0) return MS_OK;
        if (count < 0) {
            int64_t bytes;
            if (count == INT64_MIN) return dfail(d, "block count out of range");
            count = -count;
            if ((rc = read_long(d, &bytes))) return rc;
            if (bytes < 0 || (uint64_t)bytes > left(d)) {
                d->p = at;
                return dfail(d, "bad block size %lld", (long long)bytes);
            }
        }
        if (empty) {
            d->empty_items += (uint64_t)count > MS_AVRO_MAX_EMPTY_ITEMS
                                  ? MS_AVRO_MAX_EMPTY_ITEMS + 1
                                  : (size_t)count;
            if (d->empty_items > MS_AVRO_MAX_EMPTY_ITEMS) {
                d->p = at;
                return dfail(d, "more than %d zero-width array items", MS_AVRO_MAX_EMPTY_ITEMS);
            }
        } else if ((uint64_t)count > left(d)) {
            size_t rem = left(d);
            d->p = at;
            return dfail(d, "truncated datum: block of %lld items but only %zu bytes left",
                         (long long)count, rem);
        }
        for (int64_t i = 0; i < count; i++) {
            json_object *v = NULL;
            if (is_map) {
                size_t n;
                if ((rc = read_len(d, &n))) return rc;
                size_t bad;
                if (!ms_utf8_valid((const char *)d->p, n, &bad)) {
                    d->p += bad;
                    return dfail(d, "map key is not valid UTF-8");
                }
                if (memchr(d->p, 0, n)) {
                    d->p += (const uint8_t *)memchr(d->p, 0, n) - d->p;
                    return dfail(d, "map key contains U+0000, which natural JSON cannot hold");
                }
                char *key = ms_xstrndup((const char *)d->p, n);
                d->p += n;
                rc = dec_value(d, w->items, r->items, &v);
                if (!rc) json_object_object_add(o, key, v);
                free(key);
            } else {
                rc = dec_value(d, w->items, r->items, &v);
                if (!rc) json_object_array_add(o, v);
            }
            if (rc) return rc;
        }
    }
}

static double read_double_le(const uint8_t *p, int n)
{
    uint64_t bits = 0;
    for (int i = n - 1; i >= 0; i--)
        bits = (bits << 8) | p[i];
    if (n == 4) {
        uint32_t b32 = (uint32_t)bits;
        float f;
        memcpy(&f, &b32, 4);
        return (double)f;
    }
    double x;
    memcpy(&x, &bits, 8);
    return x;
}

/* Decodes one value of writer node w as reader node r (r == w: no resolution). */
static ms_err dec_value(dec *d, const av_node *w, const av_node *r, json_object **out)
{
    *out = NULL;
    if (d->depth >= MS_AVRO_MAX_DEPTH)
        return dfail(d, "datum nesting is deeper than %d", MS_AVRO_MAX_DEPTH);
    d->depth++;
    ms_err rc = MS_OK;
    if (w->type == AV_UNION) {
        const uint8_t *at = d->p;
        int64_t idx;
        if ((rc = read_long(d, &idx))) goto out;
        if (idx < 0 || (uint64_t)idx >= w->nbranches) {
            d->p = at;
            rc = dfail(d, "union index %lld out of range (%zu branches)", (long long)idx,
                       w->nbranches);
            goto out;
        }
        const av_node *wb = w->branches[idx];
        rc = dec_value(d, wb, w == r ? wb : r, out);
        goto out;
    }
    if (r->type == AV_UNION) {
        const av_node *rb = av_pick_branch(r, w);
        if (!rb) {
            rc = dincompat(d, "no branch of the reader union reads the writer's %s",
                           av_node_label(w));
            goto out;
        }
        rc = dec_value(d, w, rb, out);
        goto out;
    }
    if (r->type != w->type && !av_shallow_match(r, w)) {
        rc = dincompat(d, "reader %s cannot read writer %s", av_node_label(r), av_node_label(w));
        goto out;
    }
    switch (w->type) {
    case AV_NULL:
        break;
    case AV_BOOLEAN:
        if (!left(d)) {
            rc = dfail(d, "truncated datum: boolean expected");
        } else if (*d->p > 1) {
            rc = dfail(d, "boolean byte is %u, not 0 or 1", *d->p);
        } else {
            *out = json_object_new_boolean(*d->p++);
        }
        break;
    case AV_INT:
    case AV_LONG: {
        int64_t v;
        if (w->type == AV_INT) {
            int32_t v32;
            rc = read_int(d, &v32);
            v = v32;
        } else {
            rc = read_long(d, &v);
        }
        if (rc) break;
        *out = (r->type == AV_FLOAT || r->type == AV_DOUBLE)
                   ? json_object_new_double(r->type == AV_FLOAT ? (double)(float)v : (double)v)
                   : json_object_new_int64(v);
        break;
    }
    case AV_FLOAT:
    case AV_DOUBLE: {
        int n = w->type == AV_FLOAT ? 4 : 8;
        if (left(d) < (size_t)n) {
            rc = dfail(d, "truncated datum: %s needs %d bytes", av_type_name(w->type), n);
            break;
        }
        *out = json_object_new_double(read_double_le(d->p, n));
        d->p += n;
        break;
    }
    case AV_BYTES:
    case AV_STRING: {
        size_t n;
        if ((rc = read_len(d, &n))) break;
        if (r->type == AV_STRING) {
            size_t bad;
            if (!ms_utf8_valid((const char *)d->p, n, &bad)) {
                d->p += bad;
                rc = dfail(d, "string is not valid UTF-8");
                break;
            }
            *out = json_object_new_string_len((const char *)d->p, (int)n);
        } else {
            *out = bytes_to_natural(d->p, n);
        }
        d->p += n;
        break;
    }
    case AV_FIXED:
        if (w != r && (!av_names_match(r, w) || r->size != w->size)) {
            rc = dincompat(d, "writer fixed '%s' (%zu) does not match reader fixed '%s' (%zu)",
                           w->fullname, w->size, r->fullname, r->size);
            break;
        }
        if (left(d) < w->size) {
            rc = dfail(d, "truncated datum: fixed '%s' needs %zu bytes", w->fullname, w->size);
            break;
        }
        *out = bytes_to_natural(d->p, w->size);
        d->p += w->size;
        break;
    case AV_ENUM: {
        const uint8_t *at = d->p;
        int32_t idx;
        if ((rc = read_int(d, &idx))) break;
        if (idx < 0 || (size_t)idx >= w->nsymbols) {
            d->p = at;
            rc = dfail(d, "enum index %d out of range (%zu symbols)", idx, w->nsymbols);
            break;
        }
        const char *sym = w->symbols[idx];
        if (w != r) {
            if (!av_names_match(r, w)) {
                rc = dincompat(d, "writer enum '%s' does not match reader enum '%s'", w->fullname,
                               r->fullname);
                break;
            }
            long k = av_lookup(r, sym);
            if (k < 0) k = r->enum_default;
            if (k < 0) {
                rc = dincompat(d, "symbol '%s' is not in the reader enum '%s'", sym, r->fullname);
                break;
            }
            sym = r->symbols[k];
        }
        *out = json_object_new_string(sym);
        break;
    }
    case AV_ARRAY:
        *out = json_object_new_array();
        rc = dec_blocks(d, w, r, false, *out);
        break;
    case AV_MAP:
        *out = json_object_new_object();
        rc = dec_blocks(d, w, r, true, *out);
        break;
    case AV_RECORD:
        rc = dec_record(d, w, r, out);
        break;
    case AV_UNION:
        break; /* handled above */
    }
out:
    if (rc) {
        json_object_put(*out);
        *out = NULL;
    }
    d->depth--;
    return rc;
}

ms_err ms_avro_decode(const ms_avro_schema *writer, const ms_avro_schema *reader,
                      const uint8_t *buf, size_t len, json_object **out, ms_error *err)
{
    ms_error local;
    dec d = {.start = buf, .p = buf, .end = buf + len, .err = err ? err : &local};
    ms_error_clear(d.err);
    *out = NULL;
    json_object *v = NULL;
    ms_err rc = dec_value(&d, writer->root, reader ? reader->root : writer->root, &v);
    if (!rc && d.p != d.end) {
        rc = dfail(&d, "%zu trailing bytes after the datum", left(&d));
        json_object_put(v);
        v = NULL;
    }
    for (size_t i = 0; i < d.nmaps; i++)
        free(d.maps[i].w_to_r);
    free(d.maps);
    *out = v;
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------------------------- */

typedef struct enc {
    ms_buf *out; /* NULL: only check that the value fits */
    ms_error *err;
    ms_buf path; /* JSON pointer of the value being encoded */
    int depth;
    bool strict; /* choosing a union branch, first pass: numbers only where they stay exact */
} enc;

static bool efail(enc *e, const char *what, const av_node *n)
{
    if (e->out && e->err && e->err->code == MS_OK)
        ms_error_set(e->err, MS_ERR_INVALID_FIELD, "%s: %s (schema type %s)",
                     e->path.len ? ms_buf_cstr(&e->path) : "/", what, av_node_label(n));
    return false;
}

static void put_long(ms_buf *b, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    char tmp[10];
    int n = 0;
    while (z >= 0x80) {
        tmp[n++] = (char)((z & 0x7F) | 0x80);
        z >>= 7;
    }
    tmp[n++] = (char)z;
    ms_buf_append(b, tmp, (size_t)n);
}

static bool enc_value(enc *e, const av_node *n, json_object *v);

static bool enc_push(enc *e, const char *key, size_t idx, size_t *old)
{
    *old = e->path.len;
    ms_buf_putc(&e->path, '/');
    if (key)
        ms_buf_puts(&e->path, key);
    else
        ms_buf_printf(&e->path, "%zu", idx);
    return true;
}

static void enc_pop(enc *e, size_t old)
{
    e->path.len = old;
    if (e->path.data) e->path.data[old] = '\0';
}

static bool enc_record(enc *e, const av_node *n, json_object *v)
{
    if (!json_object_is_type(v, json_type_object)) return efail(e, "expected an object", n);
    size_t matched = 0;
    for (size_t i = 0; i < n->nfields; i++) {
        const av_field *f = &n->fields[i];
        json_object *fv = NULL;
        size_t old;
        enc_push(e, f->name, 0, &old);
        bool ok;
        if (json_object_object_get_ex(v, f->name, &fv)) {
            matched++;
            ok = enc_value(e, f->type, fv);
        } else if (f->has_default) {
            json_object *dv = av_default_to_natural(f->type, f->def);
            ok = enc_value(e, f->type, dv);
            json_object_put(dv);
        } else {
            ok = efail(e, "missing field with no default", f->type);
        }
        enc_pop(e, old);
        if (!ok) return false;
    }
    if (matched != (size_t)json_object_object_length(v)) {
        json_object_object_foreach(v, key, val)
        {
            (void)val;
            bool known = false;
            for (size_t i = 0; i < n->nfields && !known; i++)
                known = strcmp(n->fields[i].name, key) == 0;
            if (!known) {
                size_t old;
                enc_push(e, key, 0, &old);
                efail(e, "no such field in the record", n);
                enc_pop(e, old);
                return false;
            }
        }
    }
    return true;
}

static bool enc_value(enc *e, const av_node *n, json_object *v)
{
    if (e->depth >= MS_AVRO_MAX_DEPTH) return efail(e, "value nesting is too deep", n);
    e->depth++;
    bool ok = true;
    json_type jt = v ? json_object_get_type(v) : json_type_null;
    switch (n->type) {
    case AV_NULL:
        ok = jt == json_type_null || efail(e, "expected null", n);
        break;
    case AV_BOOLEAN:
        ok = jt == json_type_boolean || efail(e, "expected a boolean", n);
        if (ok && e->out) ms_buf_putc(e->out, json_object_get_boolean(v) ? 1 : 0);
        break;
    case AV_INT:
    case AV_LONG: {
        int64_t x = jt == json_type_int ? json_object_get_int64(v) : 0;
        if (jt != json_type_int)
            ok = efail(e, "expected an integer", n);
        else if (n->type == AV_INT && (x < INT32_MIN || x > INT32_MAX))
            ok = efail(e, "integer does not fit 32 bits", n);
        else if (e->out)
            put_long(e->out, x);
        break;
    }
    case AV_FLOAT:
    case AV_DOUBLE:
        if (jt != json_type_int && jt != json_type_double) {
            ok = efail(e, "expected a number", n);
        } else if (e->strict) {
            /* An integer belongs to an int/long branch, a double to a branch keeping it exact. */
            double x = json_object_get_double(v);
            ok =
                jt == json_type_double && (n->type == AV_DOUBLE || x != x || (double)(float)x == x);
        } else if (e->out) {
            double x = json_object_get_double(v);
            uint8_t tmp[8];
            uint64_t bits;
            int len = n->type == AV_FLOAT ? 4 : 8;
            if (len == 4) {
                float f = (float)x;
                uint32_t b32;
                memcpy(&b32, &f, 4);
                bits = b32;
            } else {
                memcpy(&bits, &x, 8);
            }
            for (int i = 0; i < len; i++)
                tmp[i] = (uint8_t)(bits >> (8 * i));
            ms_buf_append(e->out, tmp, (size_t)len);
        }
        break;
    case AV_STRING: {
        size_t bad;
        if (jt != json_type_string) {
            ok = efail(e, "expected a string", n);
        } else if (!ms_utf8_valid(json_object_get_string(v), (size_t)json_object_get_string_len(v),
                                  &bad)) {
            ok = efail(e, "string is not valid UTF-8", n);
        } else if (e->out) {
            put_long(e->out, json_object_get_string_len(v));
            ms_buf_append(e->out, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        }
        break;
    }
    case AV_BYTES:
    case AV_FIXED: {
        size_t nb;
        const char *s = jt == json_type_string ? json_object_get_string(v) : NULL;
        size_t sl = s ? (size_t)json_object_get_string_len(v) : 0;
        if (!s || !natural_to_bytes(s, sl, NULL, &nb)) {
            ok = efail(e, "expected a string of code points U+0000..U+00FF", n);
        } else if (n->type == AV_FIXED && nb != n->size) {
            ok = efail(e, "wrong number of bytes for the fixed", n);
        } else if (e->out) {
            if (n->type == AV_BYTES) put_long(e->out, (int64_t)nb);
            natural_to_bytes(s, sl, e->out, &nb);
        }
        break;
    }
    case AV_ENUM: {
        long idx = jt == json_type_string ? av_lookup(n, json_object_get_string(v)) : -1;
        if (idx < 0)
            ok = efail(e, "expected a symbol of the enum", n);
        else if (e->out)
            put_long(e->out, idx);
        break;
    }
    case AV_ARRAY: {
        if (jt != json_type_array) {
            ok = efail(e, "expected an array", n);
            break;
        }
        size_t len = json_object_array_length(v);
        if (len && e->out) put_long(e->out, (int64_t)len);
        for (size_t i = 0; i < len && ok; i++) {
            size_t old;
            enc_push(e, NULL, i, &old);
            ok = enc_value(e, n->items, json_object_array_get_idx(v, i));
            enc_pop(e, old);
        }
        if (ok && e->out) put_long(e->out, 0);
        break;
    }
    case AV_MAP: {
        if (jt != json_type_object) {
            ok = efail(e, "expected an object (map)", n);
            break;
        }
        int len = json_object_object_length(v);
        if (len && e->out) put_long(e->out, len);
        json_object_object_foreach(v, key, val)
        {
            size_t old;
            enc_push(e, key, 0, &old);
            if (e->out) {
                put_long(e->out, (int64_t)strlen(key));
                ms_buf_puts(e->out, key);
            }
            ok = enc_value(e, n->items, val);
            enc_pop(e, old);
            if (!ok) break;
        }
        if (ok && e->out) put_long(e->out, 0);
        break;
    }
    case AV_RECORD:
        ok = enc_record(e, n, v);
        break;
    case AV_UNION: {
        /* The first branch the value fits, checked without writing: exact fits first (3 goes
         * to "long" rather than "float", 0.1 to "double" rather than "float"), then the first
         * branch that takes the value at all. */
        ms_buf *saved = e->out;
        bool saved_strict = e->strict;
        e->out = NULL;
        size_t b = 0;
        e->strict = true;
        while (b < n->nbranches && !enc_value(e, n->branches[b], v))
            b++;
        e->strict = saved_strict;
        if (b == n->nbranches && !saved_strict) {
            b = 0;
            while (b < n->nbranches && !enc_value(e, n->branches[b], v))
                b++;
        }
        e->out = saved;
        if (b == n->nbranches) {
            ok = efail(e, "the value fits no branch of the union", n);
        } else if (e->out) {
            put_long(e->out, (int64_t)b);
            ok = enc_value(e, n->branches[b], v);
        }
        break;
    }
    }
    e->depth--;
    return ok;
}

ms_err ms_avro_encode(const ms_avro_schema *s, json_object *value, ms_buf *out, ms_error *err)
{
    ms_error local;
    enc e = {.out = out, .err = err ? err : &local, .path = MS_BUF_INIT};
    ms_error_clear(e.err);
    bool ok = enc_value(&e, s->root, value);
    ms_buf_free(&e.path);
    if (!ok && e.err->code == MS_OK)
        ms_error_set(e.err, MS_ERR_INVALID_FIELD, "value does not fit");
    return ok ? MS_OK : e.err->code;
}

/* ---------------------------------------------------------------------------------------------
 * Confluent framing
 * ------------------------------------------------------------------------------------------- */

ms_err ms_avro_frame_parse(const uint8_t *buf, size_t len, uint32_t *schema_id,
                           const uint8_t **datum, size_t *datum_len, ms_error *err)
{
    if (len >= 1 && buf[0] != 0)
        return ms_error_set(err, MS_ERR_BAD_MAGIC, "first byte is 0x%02x, not the magic byte 0x00",
                            buf[0]);
    if (len < MS_AVRO_FRAME_HEADER) {
        ms_error_set(err, MS_ERR_AVRO_DECODE,
                     "message is %zu bytes, shorter than the %d-byte header", len,
                     MS_AVRO_FRAME_HEADER);
        ms_error_at(err, 0, 0, (long)len);
        return MS_ERR_AVRO_DECODE;
    }
    *schema_id = (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 8 | buf[4];
    *datum = buf + MS_AVRO_FRAME_HEADER;
    *datum_len = len - MS_AVRO_FRAME_HEADER;
    return MS_OK;
}

void ms_avro_frame_header(uint32_t schema_id, ms_buf *out)
{
    char h[MS_AVRO_FRAME_HEADER] = {0, (char)(schema_id >> 24), (char)(schema_id >> 16),
                                    (char)(schema_id >> 8), (char)schema_id};
    ms_buf_append(out, h, sizeof h);
}
