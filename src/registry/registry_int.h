/*
 * registry_int.h — internals shared by the registry's files: the in-memory state of the embedded
 * registry (registry.c), the Confluent error codes, and the external client (registry_client.c).
 * Not for use outside src/registry.
 *
 * Thread rules: every field of ms_registry below `mu` is guarded by `mu` (@locks_required mu);
 * the fields above it are set at open and read-only afterwards. Schemas are never removed, so an
 * rg_schema pointer (and its parsed ms_avro_schema) stays valid until ms_registry_free.
 */
#ifndef REGISTRY_INT_H
#define REGISTRY_INT_H

#include "ms_registry.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Confluent Schema Registry error codes (error_code in error bodies; HTTP status = the first
 * three digits). */
enum {
    RG_OK = 0,
    RG_BAD_REQUEST = 400, /* malformed JSON body */
    RG_NOT_FOUND = 404,   /* no such route */
    RG_METHOD = 405,
    RG_TOO_LARGE = 413,
    RG_UNSUPPORTED_MEDIA = 415,
    RG_INCOMPATIBLE = 409,
    RG_SUBJECT_NOT_FOUND = 40401,
    RG_VERSION_NOT_FOUND = 40402,
    RG_SCHEMA_NOT_FOUND = 40403,
    RG_SUBJECT_SOFT_DELETED = 40404,
    RG_SUBJECT_NOT_SOFT_DELETED = 40405,
    RG_VERSION_SOFT_DELETED = 40406,
    RG_VERSION_NOT_SOFT_DELETED = 40407,
    RG_SUBJECT_CONFIG_NOT_FOUND = 40408,
    RG_INVALID_SCHEMA = 42201,
    RG_INVALID_VERSION = 42202,
    RG_INVALID_COMPAT = 42203,
    RG_STORE_ERROR = 50001,
    RG_UPSTREAM_ERROR = 50003,
};

/* A failure: Confluent code and message. */
typedef struct rg_fail {
    int code;
    char msg[400];
} rg_fail;

/* Sets f (may be NULL) and returns code. */
int rg_failf(rg_fail *f, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The ms_err that stands for a Confluent code (for the C API). */
ms_err rg_code_to_err(int code);

/* One distinct schema, global across tenants. */
typedef struct rg_schema {
    uint32_t id;
    char *text; /* normalized JSON text (white space removed): the identity of the schema */
    uint64_t fingerprint;
    ms_avro_schema *avro;
} rg_schema;

typedef struct rg_version {
    int version;
    uint32_t id;
    bool deleted; /* soft-deleted */
} rg_version;

typedef struct rg_subject {
    char *tenant;
    char *name;
    rg_version *v; /* ascending version numbers */
    size_t nv, cap;
    char *compat; /* subject-level compatibility, NULL when not configured */
} rg_subject;

#define RG_GEN_LEN 48 /* a registry generation token (rg_locked_sync) */

typedef struct rg_tenant {
    char *tenant;
    char *compat;                 /* global (tenant-wide) level; NULL = BACKWARD */
    char gen[RG_GEN_LEN];         /* the store's registry generation at the last refresh */
    unsigned long long synced_ms; /* when the last refresh read the store; 0 = never */
} rg_tenant;

#define RG_BUILTIN_MAX    4
#define RG_UNKNOWN_CACHE  16
#define RG_UNKNOWN_TTL_MS 5000
#define RG_REFRESH_MAX_MS 5000 /* rg_locked_sync reads the store at least this often */

struct ms_registry {
    const ms_config *cfg;
    const ms_log *log;
    const ms_store_ops *store;
    void *store_ctx;
    struct ms_engine *engine;
    char *url; /* external registry base URL, NULL when embedded */
    struct {
        const char *subject;
        uint32_t id;
    } builtin[RG_BUILTIN_MAX];
    size_t nbuiltin;
    bool opening; /* true while open registers the built-ins: they get no assets */

    pthread_mutex_t mu;
    rg_schema **schemas; /* ascending ids (embedded), or the cache (external) */
    size_t nschemas, schemas_cap;
    uint32_t next_id;
    /* Ids the registry answered 40403 for (external) or the store did not hold (embedded, on a
     * shared store), not asked again until `until` (ms), so a stream of messages with an unknown
     * id does not become a stream of HTTP calls or store reads. */
    struct {
        uint32_t id;
        unsigned long long until;
    } unknown[RG_UNKNOWN_CACHE];
    size_t unknown_next;
    rg_subject **subjects;
    size_t nsubjects, subjects_cap;
    rg_tenant *tenants;
    size_t ntenants;
};

/* Compatibility levels. */
extern const char *const rg_levels[];
/* True when s names a level (upper case, as Confluent accepts it). */
bool rg_level_valid(const char *s);

/* ---- state (registry.c); functions named rg_locked_* need mu held -----------------------------
 */

rg_schema *rg_locked_schema(ms_registry *r, uint32_t id);
/* The subject of tenant, or NULL; with create, a new empty one. */
rg_subject *rg_locked_subject(ms_registry *r, const char *tenant, const char *name, bool create);
/* Live versions of s (not soft-deleted) */
size_t rg_live_count(const rg_subject *s);
/* The version `v` of s (-1 = latest); include_deleted also finds soft-deleted versions (latest
 * then means the latest of all). NULL when absent. */
rg_version *rg_locked_version(rg_subject *s, int v, bool include_deleted);
/* The effective level of subject (its own, else the tenant's, else BACKWARD). */
const char *rg_locked_level(ms_registry *r, const char *tenant, const rg_subject *s);
/* The tenant's global level, or NULL when never set. */
const char *rg_locked_tenant_level(ms_registry *r, const char *tenant);

/*
 * Parses and normalizes schema text: on success *out is a new parsed schema and *norm the
 * normalized text (caller frees both). Only AVRO: schema_type NULL or "AVRO". Errors: 42201.
 */
int rg_schema_prepare(const char *text, size_t len, const char *schema_type, ms_avro_schema **out,
                      char **norm, rg_fail *f);

/*
 * With several workers on one store (the store has commit notifications, ms_store_ops.watch):
 * reads the stored schemas, and the tenant's versions and levels, again, so that what other
 * workers registered, deleted or configured shows here. Otherwise nothing to do. Errors: 50001.
 */
int rg_locked_refresh(ms_registry *r, const char *tenant, rg_fail *f);
/*
 * rg_locked_refresh only when something may have changed: every registry write of every worker
 * stores a new generation token after its records (one small record), so a request first reads
 * that token and reloads only when it differs from the one of the tenant's last refresh, or
 * that refresh is older than RG_REFRESH_MAX_MS (writers that do not store the token). A flood
 * of reads then costs one small store read each (rg_gen_read, made before taking r->mu), not a
 * reload of every schema under r->mu. gen is what rg_gen_read returned. Errors: 50001.
 */
int rg_locked_sync(ms_registry *r, const char *tenant, const char *gen, rg_fail *f);
/* Reads the store's registry generation token into gen ("" when none is stored or the store is
 * not shared). Does not need r->mu. Errors: 50001. */
int rg_gen_read(ms_registry *r, char gen[RG_GEN_LEN], rg_fail *f);
/*
 * Registers (tenant, subject, text) as POST /subjects/{s}/versions does: the existing id when a
 * live version of the subject has the same schema, else a new version (after the compatibility
 * check of the subject's level) with the id of an identical schema if one exists anywhere, else a
 * new id. Persists, then submits the kafka_schema asset. *version receives the version.
 */
int rg_register(ms_registry *r, const char *tenant, const char *subject, const char *text,
                size_t len, const char *schema_type, uint32_t *id, int *version, rg_fail *f);

/*
 * Checks text against the subject: against version v only (v >= 1), or (v == 0) against what the
 * subject's level asks (the latest, or every live version for *_TRANSITIVE; v == -1 is the
 * latest). A subject without live versions is compatible with anything unless v >= 1 (as
 * Confluent 7 answers). Sets *ok; when why != NULL appends one JSON string element per message
 * (comma separated). Errors: 40401, 40402, 42201.
 */
int rg_check(ms_registry *r, const char *tenant, const char *subject, int v, const char *text,
             size_t len, const char *schema_type, bool *ok, ms_buf *why, rg_fail *f);

/* Soft or hard delete of one version (v == -1: latest). Appends nothing; *deleted = version. */
int rg_delete_version(ms_registry *r, const char *tenant, const char *subject, int v,
                      bool permanent, int *deleted, rg_fail *f);
/* Soft or hard delete of a subject: appends the JSON array of deleted versions to out. */
int rg_delete_subject(ms_registry *r, const char *tenant, const char *subject, bool permanent,
                      ms_buf *out, rg_fail *f);
/* Sets (level != NULL) or removes the level of subject (NULL = the tenant's global level).
 * *prev receives the previous level (static string or NULL). */
int rg_set_level(ms_registry *r, const char *tenant, const char *subject, const char *level,
                 const char **prev, rg_fail *f);

/* ---- external registry (registry_client.c) ----------------------------------------------------
 */

/* GET {url}/schemas/ids/{id}: text of the schema (caller frees). Errors: 40403, 50003. */
int rg_client_fetch(ms_registry *r, uint32_t id, char **text, rg_fail *f);
/* POST {url}/subjects/{s}/versions: the id. Errors: the remote's code, or 50003. */
int rg_client_register(ms_registry *r, const char *subject, const char *text, size_t len,
                       uint32_t *id, rg_fail *f);

#endif
