/*
 * ms_types.h — the registry of asset types: the built-in ones and those registered at run time.
 *
 * A type has a name, the types its parent may have, the attributes every asset of the type must
 * carry, and its lane (bulk for columns and BI fields, fast otherwise). Parents: a root type
 * (`root`) takes no parent at all; otherwise an empty list means any parent (or none).
 * Built-ins: connection (root); database (parent connection); schema (database); table and view
 * (schema); column (table or view; requires data_type); dashboard (connection); bi_field
 * (dashboard); process (a lineage step, any parent; requires inputs and outputs); kafka_subject
 * (a subject of the schema registry) and kafka_schema (parent kafka_subject; one registered
 * version). Custom types are never root: an empty or absent "parents" keeps meaning any parent.
 *
 * Custom types are per tenant: a tenant sees the built-ins plus its own. The definition JSON is
 *   {"name":"kafka_topic","parents":["connection"],"required_attributes":["partitions"],
 *    "lane":"fast","description":"A Kafka topic"}
 * name: 1..64 chars of [a-z0-9_], not a built-in; parents: existing type names; lane optional
 * (default fast). Re-registering an identical definition is a no-op; a different definition of an
 * existing name is MS_ERR_TYPE_CONFLICT.
 *
 * Thread rules: a registry may be read from any thread while another registers (internal rwlock).
 * Returned ms_type pointers stay valid until ms_types_free (types are never removed).
 */
#ifndef MS_TYPES_H
#define MS_TYPES_H

#include "ms_buf.h"
#include "ms_error.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum { MS_LANE_FAST = 0, MS_LANE_BULK = 1, MS_LANE_COUNT = 2 } ms_lane;

const char *ms_lane_name(ms_lane l); /* "fast" | "bulk" */

typedef struct ms_type {
    char *name;
    char **parents; /* allowed parent types; nparents == 0 means any */
    size_t nparents;
    char **required; /* required attribute names */
    size_t nrequired;
    ms_lane lane;
    bool root; /* no parent allowed: a parent is MS_ERR_INVALID_PARENT (built-ins only) */
    bool builtin;
    char *tenant;      /* NULL for built-ins */
    char *description; /* may be NULL */
    char *json;        /* canonical definition JSON (owned) */
} ms_type;

typedef struct ms_types ms_types;

/* Creates a registry holding the built-in types. Never NULL (aborts on OOM). */
ms_types *ms_types_new(void);
void ms_types_free(ms_types *t);

/* Finds the type `name` visible to `tenant` (built-in or the tenant's own); NULL if none. */
const ms_type *ms_types_get(ms_types *t, const char *tenant, const char *name);

/*
 * Parses and validates a definition JSON (json, len) for tenant and adds it. On success *out (if
 * not NULL) points to the registered type and *created tells whether it is new (false when an
 * identical definition existed). Errors: MS_ERR_MALFORMED_JSON (with position), MS_ERR_INVALID_FIELD,
 * MS_ERR_MISSING_FIELD, MS_ERR_UNKNOWN_TYPE (a parent that does not exist), MS_ERR_TYPE_CONFLICT.
 */
ms_err ms_types_register(ms_types *t, const char *tenant, const char *json, size_t len,
                         const ms_type **out, bool *created, ms_error *err);

/* Appends a JSON array of every type visible to tenant (built-ins first, then custom by name) to
 * out; each element is the type's canonical definition JSON plus "builtin":true|false. */
void ms_types_list_json(ms_types *t, const char *tenant, ms_buf *out);

/* True when a child of type `child` may have a parent of type `parent_type` (never for a root
 * type). */
bool ms_type_allows_parent(const ms_type *child, const char *parent_type);

#endif
