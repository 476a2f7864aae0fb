/*
 * ms_error.h — the one error enum of MetaSync, and the error object that carries a detail.
 *
 * Every failing function in the program returns an ms_err and, where it has one, fills an ms_error
 * with a human detail, an optional position (for parse errors) and the source line that raised it
 * (like SQLite's SQLITE_CORRUPT_BKPT). Each code has a stable snake_case name used on the wire
 * (problem+json "code", dead-letter "error.code"), an HTTP status and a retriable flag.
 *
 * Thread rules: all functions are thread-safe; the tables are constant.
 */
#ifndef MS_ERROR_H
#define MS_ERROR_H

#include <stdbool.h>
#include <stddef.h>

/* X(name, wire code, http status, retriable, message) — one row per error, the only list. */
#define MS_ERR_LIST(X)                                                                             \
    X(MS_OK, "ok", 200, false, "success")                                                         \
    X(MS_ERR_NOMEM, "out_of_memory", 503, true, "out of memory")                                  \
    X(MS_ERR_IO, "io_error", 500, true, "input/output error")                                     \
    X(MS_ERR_STORE, "store_error", 500, true, "the store failed")                                 \
    X(MS_ERR_INTERNAL, "internal_error", 500, false, "internal error")                            \
    X(MS_ERR_MALFORMED_JSON, "malformed_json", 400, false, "the body is not valid JSON")          \
    X(MS_ERR_INVALID_UTF8, "invalid_utf8", 400, false, "the text is not valid UTF-8")             \
    X(MS_ERR_TOO_DEEP, "nesting_too_deep", 400, false, "JSON nesting is too deep")                \
    X(MS_ERR_EVENT_TOO_LARGE, "event_too_large", 413, false, "an event is larger than allowed")   \
    X(MS_ERR_BODY_TOO_LARGE, "body_too_large", 413, false, "the request body is too large")       \
    X(MS_ERR_NOT_OBJECT, "not_an_object", 400, false, "an event must be a JSON object")           \
    X(MS_ERR_INVALID_FIELD, "invalid_field", 400, false, "a field has the wrong type or value")   \
    X(MS_ERR_MISSING_FIELD, "missing_field", 400, false, "a required field is missing")           \
    X(MS_ERR_UNKNOWN_FIELD, "unknown_field", 400, false, "the event has a field not in the schema") \
    X(MS_ERR_UNKNOWN_OP, "unknown_op", 400, false, "the op is not one MetaSync knows")            \
    X(MS_ERR_UNKNOWN_TYPE, "unknown_type", 400, false, "the asset type is not registered")        \
    X(MS_ERR_MISSING_ATTRIBUTE, "missing_attribute", 400, false,                                  \
      "a required attribute of the type is missing")                                             \
    X(MS_ERR_INVALID_PARENT, "invalid_parent", 409, false,                                        \
      "the parent is of a type that cannot contain this asset")                                  \
    X(MS_ERR_TOO_LONG, "value_too_long", 400, false, "a value is longer than allowed")            \
    X(MS_ERR_NOT_FOUND, "not_found", 404, false, "no such resource")                              \
    X(MS_ERR_ALREADY_EXISTS, "already_exists", 409, false, "a resource with that name exists")     \
    X(MS_ERR_UNAUTHORIZED, "unauthorized", 401, false, "a valid API key is required")              \
    X(MS_ERR_FORBIDDEN, "forbidden", 403, false, "the API key does not allow this")                \
    X(MS_ERR_VERSION_CONFLICT, "version_conflict", 409, false,                                    \
      "if_version does not match the current version")                                            \
    X(MS_ERR_TYPE_CONFLICT, "type_conflict", 409, false,                                          \
      "the asset exists with another type, or the type is already defined differently")          \
    X(MS_ERR_DELETED, "asset_deleted", 409, false, "the asset is deleted")                        \
    X(MS_ERR_OVERLOADED, "overloaded", 503, true, "the engine is at capacity; retry later")       \
    X(MS_ERR_UNAVAILABLE, "unavailable", 503, true, "the service is not ready")                   \
    X(MS_ERR_TIMEOUT, "timeout", 504, true, "the operation timed out")                            \
    X(MS_ERR_UNSUPPORTED_MEDIA, "unsupported_media_type", 415, false,                             \
      "the content type is not supported")                                                       \
    X(MS_ERR_METHOD, "method_not_allowed", 405, false, "the method is not allowed here")          \
    X(MS_ERR_BAD_PARAM, "invalid_parameter", 400, false, "a query parameter is invalid")          \
    X(MS_ERR_CONFIG, "invalid_config", 400, false, "the configuration is invalid")                \
    X(MS_ERR_USAGE, "usage", 400, false, "the command line is invalid")                           \
    X(MS_ERR_CONNECT, "connect_failed", 503, true, "cannot reach the server")                    \
    X(MS_ERR_BAD_MAGIC, "unknown_magic_byte", 400, false,                                         \
      "the message is neither Confluent-framed Avro (0x00) nor a JSON event")                    \
    X(MS_ERR_UNKNOWN_SCHEMA, "unknown_schema_id", 400, false,                                     \
      "the schema id is not known to the registry")                                              \
    X(MS_ERR_AVRO_DECODE, "avro_decode_failed", 400, false,                                       \
      "the Avro datum does not decode with its writer schema")                                   \
    X(MS_ERR_INVALID_SCHEMA, "invalid_schema", 422, false, "the Avro schema is invalid")          \
    X(MS_ERR_INCOMPATIBLE_SCHEMA, "incompatible_schema", 409, false,                              \
      "the schema is not compatible with earlier versions under the subject's level")            \
    X(MS_ERR_KAFKA, "kafka_error", 503, true, "Kafka failed")

typedef enum {
#define MS_ERR_ENUM_(name, code, status, retriable, msg) name,
    MS_ERR_LIST(MS_ERR_ENUM_)
#undef MS_ERR_ENUM_
        MS_ERR__COUNT
} ms_err;

/* The stable wire code ("malformed_json"). Never NULL; "unknown" for an out-of-range value. */
const char *ms_err_code(ms_err e);
/* A short human message for the code. Never NULL. */
const char *ms_err_message(ms_err e);
/* The HTTP status that answers this code. */
int ms_err_http_status(ms_err e);
/* True when the same operation may succeed if tried again later. */
bool ms_err_is_retriable(ms_err e);
/* Looks a wire code up; returns MS_ERR__COUNT when unknown. */
ms_err ms_err_from_code(const char *code);

/*
 * An error with its detail. Owned by the caller (usually on the stack); holds no heap memory.
 * line/column are 1-based positions in the input for parse errors, 0 when not applicable;
 * offset is a byte offset or -1.
 */
typedef struct ms_error {
    ms_err code;
    char detail[320];
    long line;
    long column;
    long offset;
    const char *src_file; /* where the error was raised (static string) */
    int src_line;
} ms_error;

/* Resets e to MS_OK with no detail. e may be NULL. */
void ms_error_clear(ms_error *e);
/* Sets code and printf-style detail; returns code so callers can `return ms_error_set(...)`.
 * e may be NULL (then only code is returned). */
ms_err ms_error_set_(ms_error *e, ms_err code, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
#define ms_error_set(e, code, ...) ms_error_set_((e), (code), __FILE__, __LINE__, __VA_ARGS__)
/* Sets a parse position on e (line/column 1-based, offset in bytes). */
void ms_error_at(ms_error *e, long line, long column, long offset);

#endif
