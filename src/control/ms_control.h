/*
 * ms_control.h — control-plane data: tenants, API keys (hashed), connections to sources with
 * write-only credentials (encrypted at rest with AES-256-GCM when a secrets key is configured),
 * and users. docs/model.md ("Control-plane records") has the stored shapes, docs/api.md the
 * routes, docs/decisions.md (entry 17) why they live in the store's ctl records.
 *
 * Everything is kept through the store's control-plane records (ms_store_ops.ctl_put/ctl_list),
 * so it lives in the same database as the data (SQLite embedded, PostgreSQL with its row-level
 * security keyed on the tenant), one record per (tenant, kind, key):
 *   kind "tenant"     key ""               one per registered tenant
 *   kind "apikey"     key <key id>         salt + SHA-256(salt || secret), never the secret
 *   kind "apikey_used" key <key id>        {"last_used_at":…}, written by verification only
 *   kind "connection" key <name>           credentials sealed (or, without a key, plain)
 *   kind "user"       key <email, lower>   unique per tenant by construction
 *
 * The HTTP layer hands a request (method, the path below /api/v1, the acting tenant, the body)
 * to ms_control_handle and sends what it answers: a JSON body and a status, or an ms_error that
 * it turns into problem+json. No error detail ever holds a submitted value (only field names),
 * so credentials never reach a response or a log through an error.
 *
 * Secrets: credentials are never returned by any function here except
 * ms_control_connection_credentials (for the source adapters that will connect with them).
 *
 * Thread rules: every function may be called from any thread once ms_control_open returned; the
 * context is read-only after open (the store serializes its own writes). A create (tenant, API
 * key, connection, user) is an add that the store refuses when the key exists (ctl_add, store
 * version >= 4), so two workers creating one name cannot both succeed: the second gets
 * MS_ERR_ALREADY_EXISTS. Updates are read-modify-write, ordered within a process by a mutex in
 * the context; across processes the last writer wins (records are edited by administrators,
 * not by traffic). Verifying an API key never rewrites the key record: it writes last_used_at
 * into the key's "apikey_used" record, so it cannot undo a revoke.
 * Ownership: strings passed in are borrowed for the call; output goes into caller-owned ms_buf.
 */
#ifndef MS_CONTROL_H
#define MS_CONTROL_H

#include "ms_buf.h"
#include "ms_config.h"
#include "ms_error.h"
#include "ms_log.h"
#include "ms_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MS_CONTROL_KEY_BYTES   32    /* AES-256 key and API-key secret length */
#define MS_CONTROL_MAX_BODY    65536 /* largest request body a control route accepts */
#define MS_CONTROL_MAX_NAME    128   /* connection / API-key names */
#define MS_CONTROL_SCOPE_READ  1u
#define MS_CONTROL_SCOPE_WRITE 2u
#define MS_CONTROL_SCOPE_ADMIN 4u

typedef struct ms_control ms_control;

typedef struct ms_control_args {
    const ms_config *cfg; /* secrets.key_file */
    const ms_log *log;
    const ms_store_ops *store;
    void *store_ctx;
} ms_control_args;

/*
 * Opens the control plane on an open store: reads the secrets key from secrets.key_file (64 hex
 * digits, as `openssl rand -hex 32` writes) when set, else logs one warning that connection
 * credentials are stored unencrypted. Errors: MS_ERR_CONFIG (the file is unreadable or not a
 * key; the detail names the file, never its content).
 */
ms_err ms_control_open(const ms_control_args *args, ms_control **out, ms_error *err);
/* Frees c (wiping the key). NULL is allowed. */
void ms_control_free(ms_control *c);

/* One control-plane request, as the HTTP layer saw it. */
typedef struct ms_control_request {
    const char *method; /* "GET", "HEAD", "POST", "PUT", "DELETE" */
    const char *path;   /* below /api/v1, e.g. "/connections/pg1" */
    const char *tenant; /* the acting tenant (valid name) */
    const char *body;   /* NUL-terminated, may be empty */
    size_t len;
} ms_control_request;

/* True when path (below /api/v1) is a control-plane route: /tenants, /apikeys, /connections,
 * /users, with or without a trailing /{id}. */
bool ms_control_route(const char *path);

/*
 * Serves one request. On MS_OK, *status is the HTTP status and out holds the JSON body (empty
 * for 204). Otherwise err says why (MS_ERR_MISSING_FIELD / MS_ERR_INVALID_FIELD /
 * MS_ERR_UNKNOWN_FIELD name the field; MS_ERR_NOT_FOUND, MS_ERR_ALREADY_EXISTS, MS_ERR_METHOD
 * with *allow set to the route's methods, MS_ERR_BODY_TOO_LARGE, MS_ERR_MALFORMED_JSON with a
 * position but no quoted input, MS_ERR_STORE).
 */
ms_err ms_control_handle(ms_control *c, const ms_control_request *rq, unsigned *status, ms_buf *out,
                         const char **allow, ms_error *err);

/*
 * Verifies an API key ("msk_<id>_<secret>"): finds its record, compares SHA-256(salt || secret)
 * with the stored hash in constant time, refuses revoked keys and keys of disabled tenants, and
 * records last_used_at (at most once a minute). On success copies the key's tenant into
 * tenant[tenant_len] and sets *scopes (MS_CONTROL_SCOPE_*). Every refusal is MS_ERR_UNAUTHORIZED
 * with the same detail, so a caller learns nothing about which part was wrong; a store failure
 * (also on the tenant lookup) returns the store's error and the key is refused. Cost: one
 * listing of the apikey records, one read of the tenant and one of the apikey_used record, and
 * at most once a minute one write of it (docs/performance.md).
 */
ms_err ms_control_apikey_verify(ms_control *c, const char *key, char *tenant, size_t tenant_len,
                                unsigned *scopes, ms_error *err);

/*
 * Decrypts (or, when stored unencrypted, copies) the credentials object of connection name of
 * tenant into out as JSON. For the source adapters only: never send this anywhere. Errors:
 * MS_ERR_NOT_FOUND (no connection, or it has no credentials), MS_ERR_CONFIG (sealed with a key
 * that is not the configured one, or tampered with).
 */
ms_err ms_control_connection_credentials(ms_control *c, const char *tenant, const char *name,
                                         ms_buf *out, ms_error *err);

/* ---- crypto primitives (control_crypto.c), public for the unit tests ---------------------- */

/* Fills buf with n cryptographically random bytes (RAND_bytes). MS_ERR_INTERNAL on failure. */
ms_err ms_control_random(unsigned char *buf, size_t n, ms_error *err);
/* Lower-case hex of SHA-256(salt || secret) into hex[65]. */
void ms_control_hash_secret(const char *salt_hex, const char *secret, char hex[65]);
/* Constant-time equality of two NUL-terminated strings of the same length (false otherwise). */
bool ms_control_equal_ct(const char *a, const char *b);
/*
 * Seals plain[0..n) with AES-256-GCM under key into out as JSON
 * {"alg":"aes-256-gcm","kid":…,"iv":…,"ct":…,"tag":…} (hex; kid = first 16 hex digits of
 * SHA-256(key), to tell keys apart when rotating). A fresh random 96-bit IV every time.
 */
ms_err ms_control_seal(const unsigned char key[MS_CONTROL_KEY_BYTES], const char *plain, size_t n,
                       ms_buf *out, ms_error *err);
/* Opens what ms_control_seal produced (the JSON text); MS_ERR_CONFIG when the key is not the
 * one it was sealed with or the data was changed. */
ms_err ms_control_unseal(const unsigned char key[MS_CONTROL_KEY_BYTES], const char *sealed,
                         ms_buf *plain, ms_error *err);
/* Parses 64 hex digits (surrounding white space allowed) into key. */
bool ms_control_parse_key(const char *text, unsigned char key[MS_CONTROL_KEY_BYTES]);

#endif
