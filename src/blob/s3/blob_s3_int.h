/*
 * blob_s3_int.h — the pure parts of the S3 blob store (src/blob/s3/blob_s3.c), exposed for its
 * unit tests (tests/unit/test_blob_s3.c): parsing s3:// URLs, SigV4 percent-encoding of object
 * keys and query strings, the shared credentials file, the retry decision and its backoff, the
 * payload hash and the S3 XML error body. Nothing here does I/O or keeps state.
 *
 * Ownership: functions that append to an ms_buf append to the caller's buffer; strings filled
 * into an ms_s3_creds are heap copies released by ms_s3_creds_free.
 * Thread rules: every function is thread-safe (no shared state).
 */
#ifndef MS_BLOB_S3_INT_H
#define MS_BLOB_S3_INT_H

#include "ms_buf.h"
#include "ms_error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Splits url "s3://BUCKET[/PREFIX]" into *bucket and *prefix (heap copies; the prefix has no
 * leading or trailing '/', "" when absent). The bucket must be 3..63 characters of a-z 0-9 . -
 * (the rules S3 enforces; uppercase is refused because SigV4 hosts are lowercase). Returns MS_OK,
 * or MS_ERR_CONFIG with a detail naming snapshots.url; then nothing is allocated.
 */
ms_err ms_s3_url_parse(const char *url, char **bucket, char **prefix, ms_error *err);

/*
 * Appends the URL that object keys are appended to (after a '/'): the endpoint (or
 * https://s3.REGION.amazonaws.com when endpoint is NULL or "") without trailing '/', then with
 * path_style "/BUCKET", else the bucket as the first label of the host ("https://BUCKET.HOST").
 * Returns MS_OK, or MS_ERR_CONFIG when the endpoint is not an http(s) URL without query,
 * fragment or user info, or the region is not a-z 0-9 '-' (it goes into the signing scope).
 */
ms_err ms_s3_base_url(ms_buf *out, const char *endpoint, const char *region, const char *bucket,
                      bool path_style, ms_error *err);

/*
 * Appends s[0..n) percent-encoded the SigV4 way ("UriEncode"): A-Z a-z 0-9 - . _ ~ kept, every
 * other byte as %XX with upper-case hex. keep_slash keeps '/' (object keys in the path) or
 * encodes it as %2F (query names and values).
 */
void ms_s3_uri_encode(ms_buf *out, const char *s, size_t n, bool keep_slash);

/* One query parameter, not encoded. */
typedef struct ms_s3_param {
    const char *name;
    const char *value; /* "" for a parameter without a value */
} ms_s3_param;

/*
 * Appends the SigV4 canonical query string of p[0..n): each name and value encoded with
 * ms_s3_uri_encode (no slash kept), pairs sorted by encoded name then encoded value (byte order),
 * joined as name=value with '&'. Used as the query of the URL itself, since curl 7.88 signs the
 * query exactly as given.
 */
void ms_s3_canonical_query(ms_buf *out, const ms_s3_param *p, size_t n);

/* Credentials; session_token is NULL when there is none. */
typedef struct ms_s3_creds {
    char *access_key_id;
    char *secret_access_key;
    char *session_token;
} ms_s3_creds;

/* Releases the strings of c and zeroes the secret before freeing it. c may be NULL. */
void ms_s3_creds_free(ms_s3_creds *c);

/*
 * Reads profile `profile` from text (an AWS shared credentials file: INI sections "[name]",
 * lines "key = value", comments starting with '#' or ';', blank lines; keys case-insensitive;
 * spaces around '=' and at line ends ignored). Fills aws_access_key_id, aws_secret_access_key and
 * aws_session_token (optional) into *out. `source` names the file in error details. Returns
 * MS_OK, or MS_ERR_CONFIG when the profile is absent or lacks a key or secret (the detail names
 * the file, the profile and the line of a malformed entry, never a secret); then *out is empty.
 */
ms_err ms_s3_creds_parse(const char *text, const char *profile, const char *source,
                         ms_s3_creds *out, ms_error *err);

/*
 * The retry decision for one attempt. curl_code is the CURLcode of the transfer (0 = a response
 * arrived, then status is its HTTP status). Retriable: 5xx, 429, and transport failures that a
 * later attempt may fix (cannot connect or resolve, timed out, connection dropped or reset, TLS
 * handshake failure). Not retriable: 2xx..4xx other than 429, and local errors (bad URL, out of
 * memory, aborted).
 */
bool ms_s3_retriable(int curl_code, long status);

/*
 * The delay before retry number `attempt` (0-based): "full jitter" — a uniform draw in
 * [0, min(cap_ms, base_ms * 2^attempt)] taken from rnd (any 32-bit random value), but at least
 * 1 ms so a retry never spins. base_ms and cap_ms are clamped to >= 1.
 */
long ms_s3_backoff_ms(int attempt, long base_ms, long cap_ms, uint32_t rnd);

/* Writes the lower-case hex SHA-256 of data[0..len) into hex[65] (NUL-terminated). */
void ms_s3_sha256_hex(const void *data, size_t len, char hex[65]);

/*
 * Copies the text of <Code> and <Message> of an S3 XML error body into code[codesz] and
 * msg[msgsz] ("" when absent; XML entities &amp; &lt; &gt; &quot; &apos; decoded; control
 * characters replaced by spaces). body need not be NUL-terminated.
 */
void ms_s3_xml_error(const char *body, size_t len, char *code, size_t codesz, char *msg,
                     size_t msgsz);

#endif
