/*
 * ms_registry.h — the schema registry: Confluent Schema Registry compatible subjects, versions,
 * global schema ids and compatibility levels, embedded in `metasync serve` under /registry, or a
 * client of an external registry (registry.url) behind the same functions.
 *
 * Embedded: state lives in memory, written through to the store's control-plane records
 * (ctl_put/ctl_list, kind "registry.*") so it survives restarts; every version registered
 * through the API or ms_registry_register also becomes an asset of type `kafka_schema` (submitted
 * through the engine, so it has history and change records; the built-in schemas registered at
 * open do not). docs/registry.md describes the API, the records and the semantics. Subjects belong
 * to a tenant; schema ids are global (one id per distinct schema text, as Confluent does), so a
 * decoder can resolve an id before it knows the tenant. External: lookups by id are fetched over
 * HTTP (libcurl) once and cached.
 *
 * Thread rules: every function may be called from any thread (one internal lock). Schemas
 * returned by ms_registry_schema_by_id stay valid until ms_registry_free.
 */
#ifndef MS_REGISTRY_H
#define MS_REGISTRY_H

#include "ms_avro.h"
#include "ms_buf.h"
#include "ms_config.h"
#include "ms_error.h"
#include "ms_log.h"
#include "ms_store.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ms_registry ms_registry;
struct ms_engine;

typedef struct ms_registry_args {
    const ms_config *cfg;
    const ms_log *log;
    const ms_store_ops *store; /* control-plane persistence (embedded mode) */
    void *store_ctx;
    struct ms_engine *engine; /* for kafka_schema assets; may be NULL (then none are written) */
} ms_registry_args;

/* Opens the registry (embedded unless cfg->registry_url is set), loads its state and registers
 * the built-in schemas (embedded mode). Call after the engine has started; free before the store
 * closes. Errors: the store's, when its records can't be read. */
ms_err ms_registry_open(const ms_registry_args *args, ms_registry **out, ms_error *err);
void ms_registry_free(ms_registry *r);

/* The parsed schema with global id `id`. MS_ERR_UNKNOWN_SCHEMA when there is none. Embedded, an
 * id not in memory is looked up in the store's records again (another worker on the same store
 * may have registered it; an id still unknown is not looked up again for RG_UNKNOWN_TTL_MS). */
ms_err ms_registry_schema_by_id(ms_registry *r, uint32_t id, const ms_avro_schema **out,
                                ms_error *err);

/*
 * Registers schema text under tenant's subject (as POST /subjects/{s}/versions does): returns
 * the existing id when the subject already has this schema, checks compatibility otherwise
 * (MS_ERR_INCOMPATIBLE_SCHEMA), MS_ERR_INVALID_SCHEMA for a bad schema.
 */
ms_err ms_registry_register(ms_registry *r, const char *tenant, const char *subject,
                            const char *text, size_t len, uint32_t *id, ms_error *err);

/*
 * The global id of a built-in schema (the repository's .avsc files in schemas/, embedded in the
 * binary and registered at open under the default tenant): "metasync.events-value" (schemas/
 * metasync-event.avsc) and "metasync.changes-value" (schemas/metasync-change.avsc). 0 when the
 * subject is not built in or could not be registered. With an external registry the schema is
 * registered there on the first call (and the id cached); that call does HTTP.
 */
uint32_t ms_registry_builtin_id(ms_registry *r, const char *subject);
/* The embedded text of a built-in schema, or NULL. */
const char *ms_registry_builtin_text(const char *subject);

/*
 * One HTTP request to the registry API, path relative to /registry ("/subjects"), its segments
 * percent-encoded (decoded here: "/subjects/a%2Fb/versions" names subject "a/b"); query the raw
 * query string without '?' (may be NULL). content_type is the request's Content-Type (NULL =
 * none; application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json,
 * application/json and application/octet-stream are accepted, else 415). too_large tells that
 * the body was over the transport's limit and was dropped; bodies over MS_AVRO_MAX_SCHEMA_BYTES
 * are refused the same way (413). Fills *status and the JSON body (content type
 * application/vnd.schemaregistry.v1+json, or text for the /schema routes that return raw schema
 * text); *content_type is a static string. Never fails: errors are Confluent error bodies
 * {"error_code":N,"message":"..."} with HTTP status the first three digits of N.
 * r may be NULL (registry disabled) or external (registry.url): every request then answers 404
 * with error_code 404 saying so.
 */
typedef struct ms_registry_request {
    const char *tenant;
    const char *method;
    const char *path;
    const char *query;
    const char *body;
    size_t body_len;
    const char *content_type;
    bool too_large;
} ms_registry_request;
void ms_registry_http(ms_registry *r, const ms_registry_request *req, int *status,
                      const char **content_type, ms_buf *out);

#endif
