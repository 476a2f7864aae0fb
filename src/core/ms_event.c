/*
 * ms_event.c — the inbound event decoder (see ms_event.h): JSON text → validated, normalized
 * ms_event, and request bodies (NDJSON or JSON) → batches of events and per-event rejections.
 *
 * The wire format is documented in docs/events.md and schemas/event.schema.json; keep the three
 * in step. Checks run in a fixed order so that an event with several problems always reports the
 * same one: size, JSON syntax, object, unknown fields (in document order), op, tenant, then the
 * fields in the order of check_order[] below, then the type's required attributes.
 */
#include "ms_event.h"

#include "ms_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[MS_OP__COUNT] = {
    [MS_OP_UPSERT] = "upsert", [MS_OP_PATCH] = "patch", [MS_OP_DELETE] = "delete",
    [MS_OP_TAG] = "tag",       [MS_OP_UNTAG] = "untag", [MS_OP_LINK] = "link",
    [MS_OP_UNLINK] = "unlink",
};

const char *ms_op_name(ms_op op)
{
    return (unsigned)op < MS_OP__COUNT ? op_names[op] : "unknown";
}

/* The fields of an event. */
typedef enum {
    F_ID,
    F_OP,
    F_TYPE,
    F_QN,
    F_PARENT,
    F_NAME,
    F_ATTRIBUTES,
    F_TAGS,
    F_TAG,
    F_FROM,
    F_TO,
    F_VIA,
    F_IF_VERSION,
    F_TS,
    F_TENANT,
    F__COUNT
} field;

static const char *const field_names[F__COUNT] = {
    [F_ID] = "id",
    [F_OP] = "op",
    [F_TYPE] = "type",
    [F_QN] = "qualified_name",
    [F_PARENT] = "parent",
    [F_NAME] = "name",
    [F_ATTRIBUTES] = "attributes",
    [F_TAGS] = "tags",
    [F_TAG] = "tag",
    [F_FROM] = "from",
    [F_TO] = "to",
    [F_VIA] = "via",
    [F_IF_VERSION] = "if_version",
    [F_TS] = "ts",
    [F_TENANT] = "tenant",
};

#define OPB(op)  (1u << (op))
#define ALL_OPS  ((1u << MS_OP__COUNT) - 1u)
#define LINK_OPS (OPB(MS_OP_LINK) | OPB(MS_OP_UNLINK))
#define TAG_OPS  (OPB(MS_OP_TAG) | OPB(MS_OP_UNTAG))

/* For each field, the ops (bit sets) it may appear in and the ops that require it. */
static const struct {
    unsigned allowed, required;
} field_rules[F__COUNT] = {
    [F_ID] = {ALL_OPS, 0},
    [F_OP] = {ALL_OPS, ALL_OPS},
    [F_TYPE] = {ALL_OPS, OPB(MS_OP_UPSERT)},
    [F_QN] = {ALL_OPS & ~LINK_OPS, ALL_OPS & ~LINK_OPS},
    [F_PARENT] = {ALL_OPS, 0},
    [F_NAME] = {ALL_OPS, 0},
    [F_ATTRIBUTES] = {OPB(MS_OP_UPSERT) | OPB(MS_OP_PATCH), OPB(MS_OP_PATCH)},
    [F_TAGS] = {OPB(MS_OP_UPSERT), 0},
    [F_TAG] = {TAG_OPS, TAG_OPS},
    [F_FROM] = {LINK_OPS, LINK_OPS},
    [F_TO] = {LINK_OPS, LINK_OPS},
    [F_VIA] = {LINK_OPS, 0},
    [F_IF_VERSION] = {ALL_OPS & ~LINK_OPS, 0}, /* edges have no version */
    [F_TS] = {ALL_OPS, 0},
    [F_TENANT] = {ALL_OPS, 0},
};

/* The order in which fields are checked after op and tenant (it fixes which error wins). */
static const field check_order[] = {F_ID,   F_QN,         F_FROM,   F_TO,         F_VIA,
                                    F_TYPE, F_NAME,       F_PARENT, F_ATTRIBUTES, F_TAGS,
                                    F_TAG,  F_IF_VERSION, F_TS};

/* Returns the field named key, or F__COUNT when it is not one. */
static field field_lookup(const char *key)
{
    for (int f = 0; f < F__COUNT; f++)
        if (key[0] == field_names[f][0] && strcmp(key, field_names[f]) == 0) return (field)f;
    return F__COUNT;
}

static bool json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * Copies at most 64 bytes of s[0..n) into buf (at least 80 bytes) for use in an error detail:
 * cut at a UTF-8 character boundary, "..." marks a cut, control characters become '?'.
 */
static const char *clip(const char *s, size_t n, char *buf)
{
    size_t k = n;
    if (k > 64) {
        k = 64;
        while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
            k--;
    }
    for (size_t i = 0; i < k; i++)
        buf[i] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
    if (k < n) {
        memcpy(buf + k, "...", 4);
    } else
        buf[k] = '\0';
    return buf;
}

static const char *json_type_label(struct json_object *o)
{
    switch (json_object_get_type(o)) {
    case json_type_null:
        return "null";
    case json_type_boolean:
        return "a boolean";
    case json_type_double:
    case json_type_int:
        return "a number";
    case json_type_string:
        return "a string";
    case json_type_array:
        return "an array";
    case json_type_object:
        return "an object";
    }
    return "a value";
}

/*
 * Checks a string value for a field: a JSON string of 1..max bytes without control characters
 * (U+0000..U+001F). label names it in the detail. On success *s and *n point into v.
 */
static ms_err check_str(struct json_object *v, const char *label, size_t max, const char **s,
                        size_t *n, ms_error *err)
{
    if (!json_object_is_type(v, json_type_string))
        return ms_error_set(err, MS_ERR_INVALID_FIELD, "%s must be a string", label);
    const char *p = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    if (len == 0) return ms_error_set(err, MS_ERR_INVALID_FIELD, "%s must not be empty", label);
    if (len > max)
        return ms_error_set(err, MS_ERR_TOO_LONG, "%s is %zu bytes; the limit is %zu", label, len,
                            max);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] < 0x20)
            return ms_error_set(err, MS_ERR_INVALID_FIELD,
                                "%s contains a control character (U+%04X)", label,
                                (unsigned)(unsigned char)p[i]);
    *s = p;
    *n = len;
    return MS_OK;
}

/* check_str, then a heap copy into *dst. */
static ms_err copy_str(struct json_object *v, const char *label, size_t max, char **dst,
                       ms_error *err)
{
    const char *s = NULL;
    size_t n = 0;
    ms_err rc = check_str(v, label, max, &s, &n, err);
    if (rc == MS_OK) *dst = ms_xstrndup(s, n);
    return rc;
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

static int num2(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/*
 * True when s[0..n) looks like an RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS, an optional fraction
 * of 1..9 digits, then Z or ±HH:MM ('T' and 'Z' may be lower case). Field ranges are checked
 * (month 01-12, day 01-31, hour 00-23, minute 00-59, second 00-60), not the calendar.
 */
static bool is_rfc3339(const char *s, size_t n)
{
    if (n < 20) return false;
    if (!digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2) ||
        (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) || s[13] != ':' ||
        !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
        return false;
    int mo = num2(s + 5), d = num2(s + 8), h = num2(s + 11), mi = num2(s + 14), se = num2(s + 17);
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return false;
    size_t i = 19;
    if (s[i] == '.') {
        size_t k = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == k || i - k > 9) return false;
    }
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) return i + 1 == n;
    if (i + 6 != n || (s[i] != '+' && s[i] != '-') || !digits(s + i + 1, 2) || s[i + 3] != ':' ||
        !digits(s + i + 4, 2))
        return false;
    return num2(s + i + 1) <= 23 && num2(s + i + 4) <= 59;
}

static int cstr_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void ms_event_free(ms_event *ev)
{
    if (!ev) return;
    free(ev->id);
    free(ev->tenant);
    free(ev->qn);
    free(ev->type);
    free(ev->name);
    free(ev->parent);
    free(ev->attributes);
    for (size_t i = 0; i < ev->ntags; i++)
        free(ev->tags[i]);
    free(ev->tags);
    free(ev->tag);
    free(ev->to);
    free(ev->via);
    free(ev->ts);
    free(ev);
}

/* What malloc(n) takes with glibc on 64-bit: an 8-byte header, 16-byte steps, 32 at least. */
static size_t heap_block(size_t n)
{
    size_t c = (n + 8 + 15) / 16 * 16;
    return c < 32 ? 32 : c;
}

static size_t heap_str(const char *s)
{
    return s ? heap_block(strlen(s) + 1) : 0;
}

size_t ms_event_heap_bytes(const ms_event *ev)
{
    size_t n = heap_block(sizeof *ev) + heap_str(ev->id) + heap_str(ev->tenant) + heap_str(ev->qn) +
               heap_str(ev->type) + heap_str(ev->name) + heap_str(ev->parent) +
               heap_str(ev->attributes) + heap_str(ev->tag) + heap_str(ev->to) + heap_str(ev->via) +
               heap_str(ev->ts);
    if (ev->tags) n += heap_block(ev->ntags * sizeof *ev->tags);
    for (size_t i = 0; i < ev->ntags; i++)
        n += heap_str(ev->tags[i]);
    return n;
}

/* Reads `tags` (an array of tag names) into ev: sorted, without duplicates. */
static ms_err read_tags(struct json_object *v, ms_event *ev, ms_error *err)
{
    if (!json_object_is_type(v, json_type_array))
        return ms_error_set(err, MS_ERR_INVALID_FIELD, "tags must be an array of strings");
    size_t n = json_object_array_length(v);
    ev->has_tags = true;
    ev->tags = n ? ms_xcalloc(n, sizeof *ev->tags) : NULL;
    for (size_t i = 0; i < n; i++) {
        char label[32];
        snprintf(label, sizeof label, "tags[%zu]", i);
        ms_err rc = copy_str(json_object_array_get_idx(v, i), label, MS_MAX_TAG_BYTES,
                             &ev->tags[ev->ntags], err);
        if (rc != MS_OK) return rc;
        ev->ntags++;
    }
    if (ev->ntags > 1) {
        qsort(ev->tags, ev->ntags, sizeof *ev->tags, cstr_cmp);
        size_t k = 1;
        for (size_t i = 1; i < ev->ntags; i++) {
            if (strcmp(ev->tags[i], ev->tags[k - 1]) == 0)
                free(ev->tags[i]);
            else
                ev->tags[k++] = ev->tags[i];
        }
        ev->ntags = k;
    }
    return MS_OK;
}

/* Reads the op field (present, a string, a known op). */
static ms_err read_op(struct json_object *const *f, const bool *present, ms_op *op, ms_error *err)
{
    char buf[80];
    if (!present[F_OP]) return ms_error_set(err, MS_ERR_MISSING_FIELD, "op is required");
    if (!json_object_is_type(f[F_OP], json_type_string))
        return ms_error_set(err, MS_ERR_INVALID_FIELD, "op must be a string");
    const char *s = json_object_get_string(f[F_OP]);
    size_t n = (size_t)json_object_get_string_len(f[F_OP]);
    for (int i = 0; i < MS_OP__COUNT; i++)
        if (strlen(op_names[i]) == n && memcmp(op_names[i], s, n) == 0) {
            *op = (ms_op)i;
            return MS_OK;
        }
    return ms_error_set(err, MS_ERR_UNKNOWN_OP, "unknown op '%s'", clip(s, n, buf));
}

/*
 * Validates the decoded JSON value o as an event for opts and builds *out. scratch is a reusable
 * buffer for canonical text. Errors carry no position (the caller adds one).
 */
static ms_err decode_value(struct json_object *o, const ms_decode_opts *opts, ms_buf *scratch,
                           ms_event **out, ms_error *err)
{
    char buf[80], buf2[80];
    *out = NULL;
    if (!json_object_is_type(o, json_type_object))
        return ms_error_set(err, MS_ERR_NOT_OBJECT, "an event must be a JSON object, not %s",
                            json_type_label(o));

    struct json_object *f[F__COUNT] = {0};
    bool present[F__COUNT] = {0};
    json_object_object_foreach(o, key, val)
    {
        field k = field_lookup(key);
        if (k == F__COUNT)
            return ms_error_set(err, MS_ERR_UNKNOWN_FIELD, "unknown field '%s'",
                                clip(key, strlen(key), buf));
        f[k] = val;
        present[k] = true;
    }

    ms_op op = MS_OP_UPSERT;
    ms_err rc = read_op(f, present, &op, err);
    if (rc != MS_OK) return rc;

    size_t tenant_len = strlen(opts->tenant);
    if (!ms_tenant_name_valid(opts->tenant, tenant_len))
        return ms_error_set(err, MS_ERR_INVALID_FIELD,
                            "tenant '%s' is not a valid tenant name ([A-Za-z0-9._-], 1 to %d "
                            "characters)",
                            clip(opts->tenant, tenant_len, buf), MS_MAX_TENANT_BYTES);
    if (present[F_TENANT]) {
        if (!json_object_is_type(f[F_TENANT], json_type_string))
            return ms_error_set(err, MS_ERR_INVALID_FIELD, "tenant must be a string");
        const char *t = json_object_get_string(f[F_TENANT]);
        size_t tl = (size_t)json_object_get_string_len(f[F_TENANT]);
        if (tl != tenant_len || memcmp(t, opts->tenant, tl) != 0)
            return ms_error_set(err, MS_ERR_INVALID_FIELD, "event tenant '%s' does not match '%s'",
                                clip(t, tl, buf), clip(opts->tenant, tenant_len, buf2));
    }

    for (size_t i = 0; i < sizeof check_order / sizeof check_order[0]; i++) {
        field k = check_order[i];
        if (present[k] && !(field_rules[k].allowed & OPB(op)))
            return ms_error_set(err, MS_ERR_INVALID_FIELD, "%s is not allowed with op %s",
                                field_names[k], op_names[op]);
        if (!present[k] && (field_rules[k].required & OPB(op)))
            return ms_error_set(err, MS_ERR_MISSING_FIELD, "%s is required for op %s",
                                field_names[k], op_names[op]);
    }

    ms_event *ev = ms_xcalloc(1, sizeof *ev);
    ev->op = op;
    ev->lane = MS_LANE_FAST;
    const ms_type *ty = NULL;

    if (present[F_ID] && (rc = copy_str(f[F_ID], "id", MS_MAX_ID_BYTES, &ev->id, err))) goto fail;
    if (present[F_QN] && (rc = copy_str(f[F_QN], "qualified_name", MS_MAX_QN_BYTES, &ev->qn, err)))
        goto fail;
    if (present[F_FROM] && (rc = copy_str(f[F_FROM], "from", MS_MAX_QN_BYTES, &ev->qn, err)))
        goto fail;
    if (present[F_TO] && (rc = copy_str(f[F_TO], "to", MS_MAX_QN_BYTES, &ev->to, err))) goto fail;
    if (present[F_VIA] && (rc = copy_str(f[F_VIA], "via", MS_MAX_QN_BYTES, &ev->via, err)))
        goto fail;
    if (present[F_TYPE]) {
        struct json_object *v = f[F_TYPE];
        if (!json_object_is_type(v, json_type_string)) {
            rc = ms_error_set(err, MS_ERR_INVALID_FIELD, "type must be a string");
            goto fail;
        }
        const char *s = json_object_get_string(v);
        size_t n = (size_t)json_object_get_string_len(v);
        if (n == 0) {
            rc = ms_error_set(err, MS_ERR_INVALID_FIELD, "type must not be empty");
            goto fail;
        }
        if (strlen(s) == n) ty = ms_types_get(opts->types, opts->tenant, s);
        if (!ty) {
            rc = ms_error_set(err, MS_ERR_UNKNOWN_TYPE, "unknown type '%s'", clip(s, n, buf));
            goto fail;
        }
        ev->type = ms_xstrndup(s, n);
        ev->lane = ty->lane;
        ev->lane_known = true;
    }
    if (present[F_NAME] && (rc = copy_str(f[F_NAME], "name", MS_MAX_QN_BYTES, &ev->name, err)))
        goto fail;
    if (present[F_PARENT] &&
        (rc = copy_str(f[F_PARENT], "parent", MS_MAX_QN_BYTES, &ev->parent, err)))
        goto fail;

    struct json_object *attrs = f[F_ATTRIBUTES];
    if (present[F_ATTRIBUTES] && !json_object_is_type(attrs, json_type_object)) {
        rc = ms_error_set(err, MS_ERR_INVALID_FIELD, "attributes must be an object");
        goto fail;
    }
    if (present[F_TAGS] && (rc = read_tags(f[F_TAGS], ev, err))) goto fail;
    if (present[F_TAG] && (rc = copy_str(f[F_TAG], "tag", MS_MAX_TAG_BYTES, &ev->tag, err)))
        goto fail;
    if (present[F_IF_VERSION]) {
        struct json_object *v = f[F_IF_VERSION];
        int64_t iv = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
        if (iv == INT64_MAX && json_object_get_uint64(v) != (uint64_t)INT64_MAX) iv = -1;
        if (iv < 0) {
            rc = ms_error_set(err, MS_ERR_INVALID_FIELD,
                              "if_version must be an integer between 0 and 9223372036854775807");
            goto fail;
        }
        ev->if_version = iv;
        ev->has_if_version = true;
    }
    if (present[F_TS]) {
        struct json_object *v = f[F_TS];
        if (!json_object_is_type(v, json_type_string)) {
            rc = ms_error_set(err, MS_ERR_INVALID_FIELD, "ts must be a string");
            goto fail;
        }
        const char *s = json_object_get_string(v);
        size_t n = (size_t)json_object_get_string_len(v);
        if (!is_rfc3339(s, n)) {
            rc = ms_error_set(err, MS_ERR_INVALID_FIELD,
                              "ts must be an RFC 3339 date-time such as 2026-11-23T19:00:00Z");
            goto fail;
        }
        ev->ts = ms_xstrndup(s, n);
    }

    if (op == MS_OP_UPSERT) {
        for (size_t i = 0; i < ty->nrequired; i++) {
            struct json_object *a = NULL;
            if (!attrs || !json_object_object_get_ex(attrs, ty->required[i], &a) || !a) {
                rc = ms_error_set(err, MS_ERR_MISSING_ATTRIBUTE, "%s requires attributes.%s",
                                  ty->name, ty->required[i]);
                goto fail;
            }
        }
    }
    if (op == MS_OP_UPSERT || op == MS_OP_PATCH) {
        ms_buf_reset(scratch);
        if (attrs)
            ms_json_canonical(attrs, scratch);
        else
            ms_buf_append(scratch, "{}", 2);
        ev->attributes = ms_xstrndup(scratch->data, scratch->len);
    }
    if (op == MS_OP_UPSERT) {
        const char *slash = strrchr(ev->qn, '/');
        if (!ev->name) ev->name = ms_xstrdup(slash && slash[1] ? slash + 1 : ev->qn);
        if (!ev->parent && slash && slash > ev->qn && ty->nparents > 0)
            ev->parent = ms_xstrndup(ev->qn, (size_t)(slash - ev->qn));
    }
    ev->tenant = ms_xstrndup(opts->tenant, tenant_len);
    *out = ev;
    return MS_OK;
fail:
    ms_event_free(ev);
    return rc;
}

static bool opts_ok(const ms_decode_opts *opts, ms_error *err)
{
    if (opts && opts->tenant && opts->types) return true;
    ms_error_set(err, MS_ERR_INTERNAL, "decode options need a tenant and a type registry");
    return false;
}

static ms_err too_large(size_t len, const ms_decode_opts *opts, ms_error *err)
{
    return ms_error_set(err, MS_ERR_EVENT_TOO_LARGE, "the event is %zu bytes; the limit is %zu",
                        len, opts->max_event_bytes);
}

/*
 * Decodes one event from text[0..len): size limit (before parsing), JSON, then the event rules.
 * JSON errors carry a position relative to text; the others none (line 0).
 */
static ms_err decode_text(const char *text, size_t len, const ms_decode_opts *opts, ms_buf *scratch,
                          ms_event **out, ms_error *err)
{
    *out = NULL;
    ms_error_clear(err);
    if (opts->max_event_bytes && len > opts->max_event_bytes) return too_large(len, opts, err);
    struct json_object *o = ms_json_parse(text, len, opts->max_depth, NULL, err);
    if (err->code != MS_OK) return err->code;
    ms_err rc = decode_value(o, opts, scratch, out, err);
    json_object_put(o);
    if (rc == MS_OK) (*out)->bytes = ms_event_heap_bytes(*out);
    return rc;
}

bool ms_tenant_name_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > MS_MAX_TENANT_BYTES) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

ms_err ms_event_decode(const char *text, size_t len, const ms_decode_opts *opts, ms_event **out,
                       ms_error *err)
{
    ms_error local;
    if (!err) err = &local;
    *out = NULL;
    if (!opts_ok(opts, err)) return err->code;
    ms_buf scratch = MS_BUF_INIT;
    ms_err rc = decode_text(text, len, opts, &scratch, out, err);
    ms_buf_free(&scratch);
    return rc;
}

ms_err ms_event_decode_parsed(struct json_object *o, size_t len, const ms_decode_opts *opts,
                              ms_event **out, ms_error *err)
{
    ms_error local;
    if (!err) err = &local;
    *out = NULL;
    ms_error_clear(err);
    if (!opts_ok(opts, err)) return err->code;
    if (opts->max_event_bytes && len > opts->max_event_bytes) return too_large(len, opts, err);
    ms_buf scratch = MS_BUF_INIT;
    ms_err rc = decode_value(o, opts, &scratch, out, err);
    ms_buf_free(&scratch);
    if (rc == MS_OK) (*out)->bytes = ms_event_heap_bytes(*out);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Batches
 * ------------------------------------------------------------------------------------------- */

/* Decoding state of one body. The line cursor turns body offsets into line/column without
 * rescanning: offsets are asked for in increasing order. */
typedef struct batch_ctx {
    const char *body;
    size_t len;
    const ms_decode_opts *opts;
    ms_batch *out;
    ms_buf scratch;
    size_t cap_events, cap_rejected;
    size_t cur_pos;        /* line cursor: offset scanned up to */
    long cur_line;         /* line number at cur_pos */
    size_t cur_line_start; /* offset where that line starts */
} batch_ctx;

/* Sets line/column/offset of err to body offset off (moving the cursor forward). */
static void body_position(batch_ctx *c, size_t off, ms_error *err)
{
    if (off < c->cur_pos) { /* not expected; restart the scan */
        c->cur_pos = c->cur_line_start = 0;
        c->cur_line = 1;
    }
    while (c->cur_pos < off) {
        const char *nl = memchr(c->body + c->cur_pos, '\n', off - c->cur_pos);
        if (!nl) {
            c->cur_pos = off;
            break;
        }
        c->cur_line++;
        c->cur_pos = c->cur_line_start = (size_t)(nl - c->body) + 1;
    }
    ms_error_at(err, c->cur_line, (long)(off - c->cur_line_start) + 1, (long)off);
}

/* Moves an error about the event text starting at body offset start to body coordinates: a
 * positioned error keeps its place, the others point at the start of the event. */
static void rebase_error(batch_ctx *c, size_t start, ms_error *err)
{
    size_t off = start;
    if (err->line > 0 && err->offset >= 0) off += (size_t)err->offset;
    body_position(c, off, err);
}

static void add_event(batch_ctx *c, ms_event *ev)
{
    ms_batch *b = c->out;
    if (b->nevents == c->cap_events) {
        c->cap_events = c->cap_events ? c->cap_events * 2 : 64;
        b->events = ms_xrealloc(b->events, c->cap_events * sizeof *b->events);
    }
    ev->index = b->total++;
    b->events[b->nevents++] = ev;
}

static void add_rejection(batch_ctx *c, const ms_error *err)
{
    ms_batch *b = c->out;
    if (b->nrejected == c->cap_rejected) {
        c->cap_rejected = c->cap_rejected ? c->cap_rejected * 2 : 16;
        b->rejected = ms_xrealloc(b->rejected, c->cap_rejected * sizeof *b->rejected);
    }
    b->rejected[b->nrejected].index = b->total++;
    b->rejected[b->nrejected].err = *err;
    b->nrejected++;
}

/* Decodes the event text body[start..end) and records the event or the rejection. Returns the
 * decode result (err holds it, in body coordinates) so the caller may escalate it. */
static ms_err take_event(batch_ctx *c, size_t start, size_t end, ms_error *err)
{
    ms_event *ev = NULL;
    ms_err rc = decode_text(c->body + start, end - start, c->opts, &c->scratch, &ev, err);
    if (rc == MS_OK) {
        add_event(c, ev);
        return MS_OK;
    }
    rebase_error(c, start, err);
    return rc;
}

/* Splits an NDJSON body on '\n' (a trailing '\r' is dropped); blank lines are skipped. */
static void decode_ndjson(batch_ctx *c)
{
    const char *b = c->body;
    size_t pos = 0;
    while (pos < c->len) {
        const char *nl = memchr(b + pos, '\n', c->len - pos);
        size_t end = nl ? (size_t)(nl - b) : c->len;
        size_t next = nl ? end + 1 : c->len;
        size_t e = end;
        if (e > pos && b[e - 1] == '\r') e--;
        size_t k = pos;
        while (k < e && json_ws(b[k]))
            k++;
        if (k < e) {
            ms_error err;
            if (take_event(c, pos, e, &err) != MS_OK) add_rejection(c, &err);
        }
        pos = next;
    }
}

/*
 * Finds the end of the JSON value starting at b[pos] without validating it: strings are skipped
 * (with escapes), brackets counted, a scalar runs to the next delimiter. Returns the offset just
 * past the value, or 0 when no value can be delimited (the caller then lets the parser explain).
 */
static size_t skip_value(const char *b, size_t len, size_t pos)
{
    size_t i = pos;
    long depth = 0;
    while (i < len) {
        char ch = b[i];
        if (ch == '"') {
            i++;
            for (;;) {
                while (i < len && b[i] != '"' && b[i] != '\\')
                    i++;
                if (i >= len) return 0;
                if (b[i] == '"') break;
                i += 2; /* backslash and the escaped byte */
            }
            i++;
            if (depth == 0) return i;
            continue;
        }
        if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (--depth <= 0) return depth == 0 ? i + 1 : 0;
        } else if (depth == 0) {
            if (json_ws(ch) || ch == ',' || ch == ':') return 0;
            while (i < len && !json_ws(b[i]) && b[i] != ',' && b[i] != ']' && b[i] != '}' &&
                   b[i] != ':' && b[i] != '[' && b[i] != '{' && b[i] != '"')
                i++;
            return i;
        }
        i++;
    }
    return 0;
}

/* Records a whole-body error: err (code, detail) at body offset off; the batch is emptied. */
static ms_err body_error(batch_ctx *c, ms_error *err, ms_err code, size_t off, const char *msg)
{
    ms_error_set(err, code, "%s", msg);
    body_position(c, off, err);
    return code;
}

static size_t skip_ws(const char *b, size_t len, size_t pos)
{
    while (pos < len && json_ws(b[pos]))
        pos++;
    return pos;
}

/*
 * Decodes a JSON body that starts (after white space) at pos with '['. Elements are delimited
 * first, then decoded one by one: an element that is valid JSON but not a valid event (or too
 * large, too deep, not UTF-8) is a rejection; a JSON syntax error anywhere fails the whole body.
 */
static ms_err decode_array(batch_ctx *c, size_t pos, ms_error *err)
{
    const char *b = c->body;
    size_t len = c->len;
    pos = skip_ws(b, len, pos + 1);
    if (pos < len && b[pos] == ']') {
        pos = skip_ws(b, len, pos + 1);
        if (pos < len)
            return body_error(c, err, MS_ERR_MALFORMED_JSON, pos,
                              "unexpected content after the array");
        return MS_OK;
    }
    for (;;) {
        if (pos >= len)
            return body_error(c, err, MS_ERR_MALFORMED_JSON, len, "unexpected end of input");
        size_t end = skip_value(b, len, pos);
        if (end == 0) {
            /* No delimitable value: let the parser say what is wrong and where. */
            size_t stop = 0;
            struct json_object *o =
                ms_json_parse(b + pos, len - pos, c->opts->max_depth, &stop, err);
            json_object_put(o);
            if (err->code != MS_OK) {
                rebase_error(c, pos, err);
                return err->code;
            }
            return body_error(c, err, MS_ERR_MALFORMED_JSON, pos, "invalid array element");
        }
        ms_err rc = take_event(c, pos, end, err);
        if (rc == MS_ERR_MALFORMED_JSON) return rc;
        if (rc != MS_OK) add_rejection(c, err);
        pos = skip_ws(b, len, end);
        if (pos >= len)
            return body_error(c, err, MS_ERR_MALFORMED_JSON, len, "unexpected end of input");
        if (b[pos] == ',') {
            pos = skip_ws(b, len, pos + 1);
            continue;
        }
        if (b[pos] != ']')
            return body_error(c, err, MS_ERR_MALFORMED_JSON, pos,
                              "expected ',' or ']' after an array element");
        pos = skip_ws(b, len, pos + 1);
        if (pos < len)
            return body_error(c, err, MS_ERR_MALFORMED_JSON, pos,
                              "unexpected content after the array");
        return MS_OK;
    }
}

/* Decodes a JSON body: an array of events, a single event object, or nothing. */
static ms_err decode_json(batch_ctx *c, ms_error *err)
{
    size_t pos = skip_ws(c->body, c->len, 0);
    if (pos == c->len) return MS_OK;
    if (c->body[pos] == '[') return decode_array(c, pos, err);
    if (c->body[pos] != '{')
        return body_error(c, err, MS_ERR_MALFORMED_JSON, pos,
                          "expected an event object or an array of events");
    size_t end = c->len;
    while (end > pos && json_ws(c->body[end - 1]))
        end--;
    ms_err rc = take_event(c, pos, end, err);
    if (rc == MS_ERR_MALFORMED_JSON) return rc;
    if (rc != MS_OK) add_rejection(c, err);
    return MS_OK;
}

ms_err ms_batch_decode(const char *body, size_t len, ms_body_format fmt, const ms_decode_opts *opts,
                       ms_batch *out, ms_error *err)
{
    ms_error local;
    if (!err) err = &local;
    memset(out, 0, sizeof *out);
    ms_error_clear(err);
    if (!opts_ok(opts, err)) return err->code;
    batch_ctx c = {.body = body, .len = len, .opts = opts, .out = out, .cur_line = 1};
    ms_buf_init(&c.scratch);
    ms_err rc = MS_OK;
    if (fmt == MS_BODY_NDJSON)
        decode_ndjson(&c);
    else
        rc = decode_json(&c, err);
    ms_buf_free(&c.scratch);
    if (rc != MS_OK) {
        ms_batch_free(out);
        return rc;
    }
    ms_error_clear(err);
    return MS_OK;
}

void ms_batch_free(ms_batch *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->nevents; i++)
        ms_event_free(b->events[i]);
    free(b->events);
    free(b->rejected);
    memset(b, 0, sizeof *b);
}
