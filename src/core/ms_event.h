/*
 * ms_event.h — an inbound event (the unit of ingestion) and the decoder that turns JSON text into
 * validated, normalized events. The wire format is documented in docs/events.md and
 * schemas/event.schema.json.
 *
 *   {"id":"e-1","op":"upsert","type":"column","qualified_name":"pg/sales/public/orders/amount",
 *    "parent":"pg/sales/public/orders","name":"amount",
 *    "attributes":{"data_type":"numeric(12,2)"},"tags":["PII"],"ts":"2026-11-23T19:00:00Z"}
 *
 * Decoding checks everything that needs no stored state: JSON syntax (with position), UTF-8,
 * nesting depth, size, field types, unknown fields, op, type (against the registry), required
 * attributes of the type, lengths. What needs the store (version conflicts, parent types, tags on
 * a missing asset) is checked when the event is applied.
 *
 * Normalization: `name` defaults to the last `/` segment of the qualified name; `parent` defaults
 * to the qualified name up to its last `/` when the type has parent types; `attributes` becomes
 * canonical JSON text (keys sorted, no white space); `tags` are de-duplicated and sorted.
 *
 * Ownership: ms_event_free frees an event and all its strings. An ms_batch owns its events until
 * they are moved out (set the slot to NULL). Decoding is thread-safe given a thread-safe registry.
 */
#ifndef MS_EVENT_H
#define MS_EVENT_H

#include "ms_error.h"
#include "ms_types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    MS_OP_UPSERT,
    MS_OP_PATCH,
    MS_OP_DELETE,
    MS_OP_TAG,
    MS_OP_UNTAG,
    MS_OP_LINK,
    MS_OP_UNLINK,
    MS_OP__COUNT
} ms_op;

const char *ms_op_name(ms_op op); /* "upsert", "patch", ... */

/* Limits on single values (bytes). */
#define MS_MAX_QN_BYTES     1024
#define MS_MAX_TAG_BYTES    128
#define MS_MAX_ID_BYTES     256
#define MS_MAX_TENANT_BYTES 64

/*
 * True when s[0..len) is a valid tenant name: 1 to MS_MAX_TENANT_BYTES characters of
 * [A-Za-z0-9._-]. The one rule for every way a tenant is named (HTTP, the Kafka `tenant` header,
 * an event's `tenant` field), so a tenant can always name a Kafka topic and a path segment.
 */
bool ms_tenant_name_valid(const char *s, size_t len);

typedef struct ms_event {
    ms_op op;
    char *id;         /* idempotency key; NULL if absent */
    char *tenant;     /* never NULL after decoding */
    char *qn;         /* qualified_name; for link/unlink the `from` asset */
    char *type;       /* NULL if absent (allowed for every op but upsert) */
    char *name;       /* upsert: given or derived; else NULL unless given */
    char *parent;     /* upsert: given or derived (may stay NULL); else NULL unless given */
    char *attributes; /* upsert: canonical JSON object text ("{}" if absent); patch: the merge
                         patch as canonical JSON text; else NULL */
    char **tags;      /* upsert: direct tags to set, sorted and unique; valid if has_tags */
    size_t ntags;
    bool has_tags;
    char *tag;        /* tag/untag */
    char *to;         /* link/unlink target */
    char *via;        /* link/unlink: optional process asset */
    int64_t if_version; /* valid if has_if_version; 0 means "must not exist yet" */
    bool has_if_version;
    char *ts;         /* event time as given (RFC 3339), NULL if absent */
    ms_lane lane;     /* from the type; MS_LANE_FAST when the type is unknown (lane_known false) */
    bool lane_known;
    size_t index; /* 0-based index in its batch */
    size_t bytes; /* heap held by the decoded event (ms_event_heap_bytes), for the lanes */
    /* Source position (set by a source such as Kafka, else 0): src_pos is the 1-based index of
     * the ms_srcpos (its partition) among the positions submitted with the event's batch, and
     * src_offset the offset of the message it came from. A rejected event holds its partition's
     * stored position back to its own offset (see ms_srcpos). */
    size_t src_pos;
    int64_t src_offset;
} ms_event;

/*
 * A position of a source (a Kafka consumer group's partition) reached by a submitted batch:
 * `next` is one past the last message of the partition the batch covers. Stored in the store
 * (source_offsets) in the same transaction as the batch's last events, as the highest value
 * ever stored, but never past the offset of an event of the batch that was rejected (its dead
 * letter is not delivered yet). Strings are borrowed for the duration of the call given them.
 */
typedef struct ms_srcpos {
    const char *group;
    const char *topic;
    int32_t partition;
    int64_t next;
} ms_srcpos;

void ms_event_free(ms_event *ev);
/* Heap bytes held by ev: the struct and every string and array it owns, each with the
 * allocator's per-block overhead. What queuing the event costs in memory (lane accounting). */
size_t ms_event_heap_bytes(const ms_event *ev);

typedef struct ms_decode_opts {
    const char *tenant;     /* the tenant events belong to (required) */
    ms_types *types;        /* registry for type checks (required) */
    size_t max_event_bytes; /* 0 = no limit */
    int max_depth;          /* JSON nesting limit; 0 = 64 */
} ms_decode_opts;

/*
 * Decodes one event from text[0..len). On success *out is a new event (caller frees).
 * Errors carry a detail naming the field, and for JSON errors the 1-based line/column relative
 * to text plus the byte offset. An event carrying a "tenant" different from opts->tenant is
 * MS_ERR_INVALID_FIELD.
 */
ms_err ms_event_decode(const char *text, size_t len, const ms_decode_opts *opts, ms_event **out,
                       ms_error *err);

/*
 * ms_event_decode for text the caller has already parsed (ms_json_parse with opts->max_depth) into
 * o, len being the text's length: the size limit, then the event rules, exactly as
 * ms_event_decode after its parse (a JSON error is the caller's to report). o is borrowed.
 */
struct json_object;
ms_err ms_event_decode_parsed(struct json_object *o, size_t len, const ms_decode_opts *opts,
                              ms_event **out, ms_error *err);

typedef enum { MS_BODY_NDJSON, MS_BODY_JSON } ms_body_format;

typedef struct ms_rejection {
    size_t index; /* 0-based event index in the body */
    ms_error err; /* line/column are relative to the whole body */
} ms_rejection;

typedef struct ms_batch {
    ms_event **events; /* valid events in body order; slots may be NULLed when moved out */
    size_t nevents;
    ms_rejection *rejected; /* in body order */
    size_t nrejected;
    size_t total; /* events seen = nevents + nrejected */
} ms_batch;

/*
 * Decodes a request body into a batch. NDJSON: one event per non-blank line; a bad line is a
 * rejection (index, code, detail, line/column) and the others still decode. JSON: an array of
 * events, or a single event object; an element that fails is a rejection, but a body whose array
 * structure is broken is a whole-body error (MS_ERR_MALFORMED_JSON etc. with line/column) and
 * out is left empty. Returns MS_OK when the batch could be split into events.
 */
ms_err ms_batch_decode(const char *body, size_t len, ms_body_format fmt,
                       const ms_decode_opts *opts, ms_batch *out, ms_error *err);
void ms_batch_free(ms_batch *b);

#endif
