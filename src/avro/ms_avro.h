/*
 * ms_avro.h — MetaSync's Avro codec: schemas, the schema-resolution (compatibility) checker, and
 * binary datums to and from JSON. Written for MetaSync because Avro C 1.11's schema parser drops
 * `default`, `aliases` and `logicalType`, which schema resolution needs (docs/decisions.md).
 *
 * Follows the Avro 1.11 specification: primitive types, records, enums (with symbol defaults),
 * arrays, maps, unions, fixed; named types with namespaces and aliases; logical types are kept as
 * annotations and decoded as their underlying type.
 *
 * "Natural JSON" is how MetaSync represents a datum in memory (json-c): null, boolean, int/long
 * as int64, float/double as double, string as string, bytes and fixed as a string holding the
 * bytes' code points U+0000..U+00FF (as Avro's JSON encoding does), enum as its symbol, array as
 * array, map and record as object, and a union as the value of its branch with no wrapper.
 *
 * Ownership: a parsed ms_avro_schema is immutable and may be read from any thread at once; the
 * caller frees it with ms_avro_schema_free. Functions that fill an ms_buf append to it.
 */
#ifndef MS_AVRO_H
#define MS_AVRO_H

#include "ms_buf.h"
#include "ms_error.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ms_avro_schema ms_avro_schema;

/* Limits that keep hostile input bounded. */
#define MS_AVRO_MAX_DEPTH 64          /* nesting of schemas and of datums */
#define MS_AVRO_MAX_SCHEMA_BYTES (1 << 20)

/*
 * Parses schema JSON text (a JSON string naming a primitive, an object, or a union array).
 * Checks names, namespaces, duplicate names, symbols, fixed sizes, defaults against their types,
 * and references to named types. The text is kept as given (ms_avro_schema_text).
 * Errors: MS_ERR_INVALID_SCHEMA (detail says what and where, position set for JSON errors).
 */
ms_err ms_avro_schema_parse(const char *text, size_t len, ms_avro_schema **out, ms_error *err);
void ms_avro_schema_free(ms_avro_schema *s);
/* The schema text exactly as parsed. */
const char *ms_avro_schema_text(const ms_avro_schema *s);
/* Appends the Parsing Canonical Form (Avro spec) of s to out. */
void ms_avro_schema_canonical(const ms_avro_schema *s, ms_buf *out);
/* The CRC-64-AVRO (Rabin) fingerprint of the Parsing Canonical Form. */
uint64_t ms_avro_schema_fingerprint(const ms_avro_schema *s);
/* Full name of a named top-level schema ("ns.Name"), else the type name ("string", "union"). */
const char *ms_avro_schema_name(const ms_avro_schema *s);

/*
 * Schema resolution check: true when data written with `writer` can be read with `reader` under
 * the specification's resolution rules (field defaults, aliases, enum symbols and default,
 * unions on either side, promotions int→long→float→double and string↔bytes, named types, fixed
 * sizes). When false and why != NULL, appends one line per incompatibility found, each naming
 * the path, e.g. "/fields/3 (field 'owner'): reader field has no default and is missing from
 * the writer".
 */
bool ms_avro_can_read(const ms_avro_schema *reader, const ms_avro_schema *writer, ms_buf *why);

/*
 * Decodes one binary datum written with `writer` into natural JSON. When reader != NULL the
 * datum is resolved to the reader schema (fields matched by name and aliases, reader defaults for
 * absent fields, writer-only fields skipped, promotions applied); the two must be compatible.
 * The whole buffer must be consumed. Errors: MS_ERR_AVRO_DECODE with the byte offset (truncated
 * datum, bad varint, negative length, union index out of range, invalid UTF-8 in a string,
 * trailing bytes, too deep; also a map key holding U+0000, which json-c keys cannot carry, and
 * more than 65536 array items that encode to no bytes, such as nulls), MS_ERR_INCOMPATIBLE_SCHEMA
 * when the datum can't be resolved (checked as the datum is read: a part of the reader the datum
 * does not reach is not checked; use ms_avro_can_read for the whole schemas).
 */
ms_err ms_avro_decode(const ms_avro_schema *writer, const ms_avro_schema *reader,
                      const uint8_t *buf, size_t len, json_object **out, ms_error *err);

/*
 * Encodes natural JSON `value` as a binary datum of schema s, appended to out. A union takes the
 * first branch the value fits exactly (an integer an int/long branch, a double a float branch only
 * when float holds it exactly), else the first branch that accepts it at all. A record field
 * absent from the value takes its default; a key that is not a field is an error. Errors: MS_ERR_INVALID_FIELD naming the path of the value that
 * does not fit the schema (out is then left with a partial datum the caller discards).
 */
ms_err ms_avro_encode(const ms_avro_schema *s, json_object *value, ms_buf *out, ms_error *err);

/* Confluent wire format: magic byte 0x00, 4-byte big-endian schema id, then the datum. */
#define MS_AVRO_FRAME_HEADER 5
/* Splits a framed message. Errors: MS_ERR_BAD_MAGIC (first byte not 0), MS_ERR_AVRO_DECODE
 * (shorter than the header). */
ms_err ms_avro_frame_parse(const uint8_t *buf, size_t len, uint32_t *schema_id,
                           const uint8_t **datum, size_t *datum_len, ms_error *err);
/* Appends the 5-byte header for schema_id to out. */
void ms_avro_frame_header(uint32_t schema_id, ms_buf *out);

#endif
