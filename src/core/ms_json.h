/*
 * ms_json.h — JSON helpers on top of json-c: bounded parsing with positions, canonical text,
 * RFC 7396 merge patch, and asset-snapshot comparison helpers.
 *
 * Ownership follows json-c: functions returning a json_object return a new reference the caller
 * must json_object_put(); arguments are borrowed. Thread-safe (no shared state).
 */
#ifndef MS_JSON_H
#define MS_JSON_H

#include "ms_buf.h"
#include "ms_error.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * Parses exactly one JSON value from text[0..len) with strict syntax, UTF-8 validation and a
 * nesting limit (max_depth, 0 = 64). Trailing white space is allowed; anything else after the
 * value is an error unless end is not NULL, in which case parsing stops after the value and
 * *end receives the offset just past it. Errors: MS_ERR_MALFORMED_JSON, MS_ERR_INVALID_UTF8,
 * MS_ERR_TOO_DEEP, with 1-based line/column and byte offset relative to text.
 * Returns the value (JSON null comes back as NULL with MS_OK: check err->code).
 */
struct json_object *ms_json_parse(const char *text, size_t len, int max_depth, size_t *end,
                                  ms_error *err);

/* Appends the canonical text of o: object keys sorted (bytewise) at every level, no white
 * space, numbers as json-c prints them (64-bit integers exact). NULL appends `null`. */
void ms_json_canonical(struct json_object *o, ms_buf *out);

/* RFC 7396: returns target with patch merged in, as a new object; neither argument changes.
 * target may be NULL (treated as absent). */
struct json_object *ms_json_merge_patch(struct json_object *target, struct json_object *patch);

/* True when s[0..n) is well-formed UTF-8 (the same rules as parsing: no overlong forms, surrogates
 * or code points above U+10FFFF); otherwise *bad (when not NULL) gets the first bad byte's offset.
 */
bool ms_utf8_valid(const char *s, size_t n, size_t *bad);

/* 1-based line and column (in bytes) of byte offset `offset` in text[0..len). */
void ms_json_position(const char *text, size_t len, size_t offset, long *line, long *column);

/* Appends to out the dotted paths ("attributes.a", "attributes.b.c") whose values differ between
 * two canonical JSON objects a and b (either may be NULL = {}), as JSON string elements separated
 * by commas (no brackets), prefixing each with `prefix.`; returns how many were appended. Nested
 * objects are compared key by key; other values as a whole. */
size_t ms_json_diff_paths(struct json_object *a, struct json_object *b, const char *prefix,
                          ms_buf *out, size_t already);

#endif
