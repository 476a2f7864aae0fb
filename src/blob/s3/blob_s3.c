/*
 * blob_s3.c — the S3 blob store: snapshot objects are PUT to an S3 bucket (or an S3-compatible
 * server such as MinIO or s3rver), URL s3://BUCKET[/PREFIX]. Object <key> of the sink is stored
 * at PREFIX/<key>.
 *
 * Requests are signed by libcurl (CURLOPT_AWS_SIGV4). curl 7.88 (Debian 12) signs the path and
 * the query exactly as given and hashes only what it is handed as POST fields, so this file does
 * the rest of SigV4 itself (docs/decisions.md, "S3 signing"): it percent-encodes the key per
 * SigV4 (blob_s3_int.h), builds the canonical (sorted, encoded) query, hands the body as POST
 * fields under a PUT, and sends x-amz-content-sha256 with the SHA-256 of the body (OpenSSL
 * libcrypto). No header is ever sent empty (curl 7.88 would sign it and break the signature).
 *
 * Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN, sent as
 * x-amz-security-token), else from the shared credentials file (AWS_SHARED_CREDENTIALS_FILE or
 * ~/.aws/credentials, profile AWS_PROFILE or "default"). Secrets are never logged.
 *
 * open() checks the bucket with one cheap signed request (a ListObjectsV2 of at most one key
 * under the prefix): a missing bucket or rejected credentials fail open() with MS_ERR_CONFIG; an
 * unreachable or failing endpoint only logs a warning, since the snapshot sink retries.
 * put() retries 5xx, 429, timeouts and connection errors with bounded, jittered exponential
 * backoff (s3.max_retries); every failure it returns is MS_ERR_IO, as the blob contract says,
 * so the sink keeps the object and tries again later: an outage delays snapshots, never loses
 * a change.
 *
 * Thread rules: as ms_blob.h — one context is used by one thread at a time; open() and close()
 * run on the main thread (they call curl_global_init/cleanup).
 */
#include "blob_s3_int.h"
#include "ms_blob.h"
#include "ms_buf.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#ifndef MS_VERSION
#define MS_VERSION "dev"
#endif

#define S3_MAX_ERROR_BODY  (64 * 1024) /* only error bodies are read; cap what is kept */
#define S3_MAX_CREDS_FILE  (1024 * 1024)
#define S3_BACKOFF_BASE_MS 200
#define S3_BACKOFF_CAP_MS  5000

/* ---- pure parts (blob_s3_int.h) -------------------------------------------------------------- */

ms_err ms_s3_url_parse(const char *url, char **bucket, char **prefix, ms_error *err)
{
    *bucket = *prefix = NULL;
    if (strncmp(url, "s3://", 5) != 0)
        return ms_error_set(err, MS_ERR_CONFIG, "snapshots.url: '%s' is not s3://BUCKET[/PREFIX]",
                            url);
    const char *b = url + 5, *slash = strchr(b, '/');
    size_t blen = slash ? (size_t)(slash - b) : strlen(b);
    if (blen < 3 || blen > 63)
        return ms_error_set(err, MS_ERR_CONFIG,
                            "snapshots.url: bucket name '%.*s' must be 3 to 63 characters",
                            (int)(blen > 80 ? 80 : blen), b);
    for (size_t i = 0; i < blen; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
            return ms_error_set(err, MS_ERR_CONFIG,
                                "snapshots.url: bucket name '%.*s' may hold only a-z, 0-9, '.' "
                                "and '-'",
                                (int)blen, b);
    }
    const char *p = slash ? slash : "";
    while (*p == '/')
        p++;
    size_t plen = strlen(p);
    while (plen && p[plen - 1] == '/')
        plen--;
    *bucket = ms_xstrndup(b, blen);
    *prefix = ms_xstrndup(p, plen);
    return MS_OK;
}

ms_err ms_s3_base_url(ms_buf *out, const char *endpoint, const char *region, const char *bucket,
                      bool path_style, ms_error *err)
{
    if (!*region || strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(region))
        return ms_error_set(err, MS_ERR_CONFIG,
                            "s3.region: '%s' may hold only a-z, 0-9 and '-' (like eu-west-1)",
                            region);
    ms_buf e = MS_BUF_INIT;
    if (endpoint && *endpoint)
        ms_buf_puts(&e, endpoint);
    else
        ms_buf_printf(&e, "https://s3.%s.amazonaws.com", region);
    while (e.len && e.data[e.len - 1] == '/')
        e.data[--e.len] = '\0';
    size_t scheme = strncmp(e.data, "https://", 8) == 0  ? 8
                    : strncmp(e.data, "http://", 7) == 0 ? 7
                                                         : 0;
    ms_err rc = MS_OK;
    if (!scheme || e.len == scheme || strpbrk(e.data + scheme, "?#@"))
        rc = ms_error_set(err, MS_ERR_CONFIG,
                          "s3.endpoint: '%s' is not an http:// or https:// URL of a host", e.data);
    else if (path_style)
        ms_buf_printf(out, "%s/%s", e.data, bucket);
    else /* virtual-hosted style: the bucket becomes the first label of the host */
        ms_buf_printf(out, "%.*s%s.%s", (int)scheme, e.data, bucket, e.data + scheme);
    ms_buf_free(&e);
    return rc;
}

void ms_s3_uri_encode(ms_buf *out, const char *s, size_t n, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || (c == '/' && keep_slash)) {
            ms_buf_putc(out, (char)c);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            ms_buf_append(out, esc, 3);
        }
    }
}

/* An encoded query pair, for sorting. */
typedef struct enc_pair {
    char *name, *value;
} enc_pair;

static int enc_pair_cmp(const void *a, const void *b)
{
    const enc_pair *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

void ms_s3_canonical_query(ms_buf *out, const ms_s3_param *p, size_t n)
{
    if (!n) return;
    enc_pair *e = ms_xcalloc(n, sizeof *e);
    for (size_t i = 0; i < n; i++) {
        ms_buf b = MS_BUF_INIT;
        ms_s3_uri_encode(&b, p[i].name, strlen(p[i].name), false);
        e[i].name = ms_buf_steal(&b);
        ms_s3_uri_encode(&b, p[i].value, strlen(p[i].value), false);
        e[i].value = ms_buf_steal(&b);
    }
    qsort(e, n, sizeof *e, enc_pair_cmp);
    for (size_t i = 0; i < n; i++) {
        ms_buf_printf(out, "%s%s=%s", i ? "&" : "", e[i].name, e[i].value);
        free(e[i].name);
        free(e[i].value);
    }
    free(e);
}

/* Frees s after overwriting it, so a secret does not linger in freed memory. */
static void free_secret(char *s)
{
    if (!s) return;
    volatile char *v = s;
    while (*v)
        *v++ = '\0';
    free(s);
}

void ms_s3_creds_free(ms_s3_creds *c)
{
    if (!c) return;
    free(c->access_key_id);
    free_secret(c->secret_access_key);
    free_secret(c->session_token);
    c->access_key_id = c->secret_access_key = c->session_token = NULL;
}

/* Trims spaces and tabs at both ends of s[0..*n); returns the new start. */
static const char *trim(const char *s, size_t *n)
{
    while (*n && (*s == ' ' || *s == '\t'))
        s++, (*n)--;
    while (*n && (s[*n - 1] == ' ' || s[*n - 1] == '\t' || s[*n - 1] == '\r'))
        (*n)--;
    return s;
}

ms_err ms_s3_creds_parse(const char *text, const char *profile, const char *source,
                         ms_s3_creds *out, ms_error *err)
{
    memset(out, 0, sizeof *out);
    bool in_profile = false, seen = false;
    long lineno = 0;
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        const char *next = nl ? nl + 1 : NULL;
        lineno++;
        const char *s = trim(line, &n);
        line = next;
        if (!n || *s == '#' || *s == ';') continue;
        if (*s == '[') {
            if (s[n - 1] != ']') {
                ms_s3_creds_free(out);
                return ms_error_set(err, MS_ERR_CONFIG,
                                    "S3 credentials file %s line %ld: a section header must end "
                                    "with ']'",
                                    source, lineno);
            }
            size_t m = n - 2;
            const char *name = trim(s + 1, &m);
            in_profile = strlen(profile) == m && strncmp(name, profile, m) == 0;
            seen = seen || in_profile;
            continue;
        }
        const char *eq = memchr(s, '=', n);
        if (!eq) {
            ms_s3_creds_free(out);
            return ms_error_set(err, MS_ERR_CONFIG,
                                "S3 credentials file %s line %ld: expected 'key = value'", source,
                                lineno);
        }
        if (!in_profile) continue;
        size_t klen = (size_t)(eq - s), vlen = n - klen - 1;
        const char *key = trim(s, &klen), *val = trim(eq + 1, &vlen);
        char **dst = NULL;
        if (klen == 17 && strncasecmp(key, "aws_access_key_id", klen) == 0)
            dst = &out->access_key_id;
        else if (klen == 21 && strncasecmp(key, "aws_secret_access_key", klen) == 0)
            dst = &out->secret_access_key;
        else if (klen == 17 && strncasecmp(key, "aws_session_token", klen) == 0)
            dst = &out->session_token;
        if (!dst) continue; /* region, output, … belong to other tools */
        free_secret(*dst);
        *dst = vlen ? ms_xstrndup(val, vlen) : NULL;
    }
    const char *missing = !seen                     ? NULL
                          : !out->access_key_id     ? "aws_access_key_id"
                          : !out->secret_access_key ? "aws_secret_access_key"
                                                    : NULL;
    if (!seen || missing) {
        ms_s3_creds_free(out);
        if (!seen)
            return ms_error_set(err, MS_ERR_CONFIG,
                                "S3 credentials file %s has no profile [%s] (set AWS_PROFILE)",
                                source, profile);
        return ms_error_set(err, MS_ERR_CONFIG, "S3 credentials file %s: profile [%s] has no %s",
                            source, profile, missing);
    }
    return MS_OK;
}

bool ms_s3_retriable(int curl_code, long status)
{
    switch ((CURLcode)curl_code) {
    case CURLE_OK:
        return status == 429 || status >= 500;
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

long ms_s3_backoff_ms(int attempt, long base_ms, long cap_ms, uint32_t rnd)
{
    if (base_ms < 1) base_ms = 1;
    if (cap_ms < 1) cap_ms = 1;
    long ceil = base_ms;
    for (int i = 0; i < attempt && ceil < cap_ms; i++)
        ceil *= 2;
    if (ceil > cap_ms) ceil = cap_ms;
    long d = (long)(rnd % (uint32_t)(ceil + 1));
    return d < 1 ? 1 : d;
}

void ms_s3_sha256_hex(const void *data, size_t len, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
        fprintf(stderr, "metasync: OpenSSL cannot compute SHA-256\n");
        abort(); /* only on allocation failure inside OpenSSL: the out-of-memory policy */
    }
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* Copies the decoded text of <tag>…</tag> in body[0..len) into dst[dstsz]; "" when absent. */
static void xml_text(const char *body, size_t len, const char *tag, char *dst, size_t dstsz)
{
    char open[32], close[32];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    dst[0] = '\0';
    const char *a = memmem(body, len, open, strlen(open));
    if (!a) return;
    a += strlen(open);
    const char *b = memmem(a, len - (size_t)(a - body), close, strlen(close));
    if (!b) return;
    static const struct {
        const char *ent, ch;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    size_t o = 0;
    while (a < b && o + 1 < dstsz) {
        char c = *a++;
        if (c == '&') {
            for (size_t i = 0; i < sizeof ents / sizeof ents[0]; i++) {
                size_t el = strlen(ents[i].ent);
                if ((size_t)(b - a) + 1 >= el && strncmp(a - 1, ents[i].ent, el) == 0) {
                    c = ents[i].ch;
                    a += el - 1;
                    break;
                }
            }
        }
        dst[o++] = (unsigned char)c < 0x20 ? ' ' : c;
    }
    dst[o] = '\0';
}

void ms_s3_xml_error(const char *body, size_t len, char *code, size_t codesz, char *msg,
                     size_t msgsz)
{
    xml_text(body, len, "Code", code, codesz);
    xml_text(body, len, "Message", msg, msgsz);
}

/* ---- the store ------------------------------------------------------------------------------ */

typedef struct blob_s3 {
    const ms_log *log;
    CURL *easy;
    char *bucket, *prefix;
    char *base;  /* URL up to the object key: "http://h:p/bucket" or "https://bucket.h" */
    char *sigv4; /* "aws:amz:REGION:s3" */
    ms_s3_creds creds;
    long timeout_ms;
    int max_retries;
    uint32_t rng;
    ms_buf resp; /* body of the last response, at most S3_MAX_ERROR_BODY */
    char errbuf[CURL_ERROR_SIZE];
} blob_s3;

/* xorshift32: the jitter of the backoff needs no more. */
static uint32_t next_rand(blob_s3 *s)
{
    uint32_t x = s->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return s->rng = x ? x : 0x9e3779b9u;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    blob_s3 *s = ud;
    size_t n = size * nmemb;
    if (s->resp.len < S3_MAX_ERROR_BODY)
        ms_buf_append(&s->resp, data,
                      n < S3_MAX_ERROR_BODY - s->resp.len ? n : S3_MAX_ERROR_BODY - s->resp.len);
    return n;
}

/* Appends "Name: value" to *h; aborts on allocation failure (the out-of-memory policy). */
static void add_header(struct curl_slist **h, const char *name, const char *value)
{
    ms_buf b = MS_BUF_INIT;
    ms_buf_printf(&b, "%s: %s", name, value);
    struct curl_slist *n = curl_slist_append(*h, b.data);
    ms_buf_free(&b);
    if (!n) {
        fprintf(stderr, "metasync: out of memory building S3 request headers\n");
        abort();
    }
    *h = n;
}

/*
 * Sends one signed request: method GET (body NULL) or PUT (body[0..len)). Returns the CURLcode;
 * *status gets the HTTP status (0 without a response) and s->resp the start of the body.
 */
static CURLcode s3_request(blob_s3 *s, const char *method, const char *url, const void *body,
                           size_t len, long *status)
{
    CURL *e = s->easy;
    curl_easy_reset(e); /* keeps the connection cache */
    ms_buf_reset(&s->resp);
    s->errbuf[0] = '\0';
    *status = 0;

    char hash[65];
    ms_s3_sha256_hex(body ? body : "", body ? len : 0, hash);
    struct curl_slist *h = NULL;
    add_header(&h, "x-amz-content-sha256", hash);
    if (s->creds.session_token) add_header(&h, "x-amz-security-token", s->creds.session_token);
    if (body) add_header(&h, "Content-Type", "application/x-ndjson");

    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "metasync/" MS_VERSION);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, s->timeout_ms < 5000 ? s->timeout_ms : 5000L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, s->sigv4);
    curl_easy_setopt(e, CURLOPT_USERNAME, s->creds.access_key_id);
    curl_easy_setopt(e, CURLOPT_PASSWORD, s->creds.secret_access_key);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    if (body) {
        /* POST fields under a PUT: the one body curl 7.88 hashes into the signature. */
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, (const char *)body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    }
    CURLcode cc = curl_easy_perform(e);
    if (cc == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    return cc;
}

/* Describes the outcome of the last request into out: the transport error, or the HTTP status
 * with the S3 error code and message of the body. */
static void describe(blob_s3 *s, CURLcode cc, long status, char *out, size_t n)
{
    if (cc != CURLE_OK) {
        snprintf(out, n, "%s", s->errbuf[0] ? s->errbuf : curl_easy_strerror(cc));
        return;
    }
    char code[96], msg[200];
    ms_s3_xml_error(s->resp.data ? s->resp.data : "", s->resp.len, code, sizeof code, msg,
                    sizeof msg);
    snprintf(out, n, "HTTP %ld%s%s%s%s", status, *code ? " " : "", code, *msg ? ": " : "", msg);
}

/* Appends the URL of object key (the sink's key, under the prefix) to out. */
static void object_url(const blob_s3 *s, const char *key, ms_buf *out)
{
    ms_buf_printf(out, "%s/", s->base);
    if (*s->prefix) {
        ms_s3_uri_encode(out, s->prefix, strlen(s->prefix), true);
        ms_buf_putc(out, '/');
    }
    ms_s3_uri_encode(out, key, strlen(key), true);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static ms_err s3_put(void *ctx, const char *key, const void *data, size_t len, ms_error *err)
{
    blob_s3 *s = ctx;
    ms_buf url = MS_BUF_INIT;
    object_url(s, key, &url);
    char why[400];
    ms_err rc = MS_OK;
    for (int attempt = 0;; attempt++) {
        long status = 0;
        CURLcode cc = s3_request(s, "PUT", url.data, data ? data : "", len, &status);
        if (cc == CURLE_OK && status >= 200 && status < 300) break;
        describe(s, cc, status, why, sizeof why);
        if (!ms_s3_retriable((int)cc, status)) {
            ms_log_error(s->log,
                         "s3: PUT s3://%s/%s%s%s refused (%s); not a transient failure, but "
                         "reported as a retriable io_error so the snapshot sink keeps the object "
                         "and tries again: fix the bucket or its permissions",
                         s->bucket, s->prefix, *s->prefix ? "/" : "", key, why);
            rc = ms_error_set(err, MS_ERR_IO, "S3 refused PUT %s: %s", key, why);
            break;
        }
        if (attempt >= s->max_retries) {
            rc = ms_error_set(err, MS_ERR_IO, "S3 PUT %s failed after %d attempts: %s", key,
                              attempt + 1, why);
            break;
        }
        long d = ms_s3_backoff_ms(attempt, S3_BACKOFF_BASE_MS, S3_BACKOFF_CAP_MS, next_rand(s));
        ms_log_info(s->log, "s3: PUT %s: %s; retry %d of %d in %ld ms", key, why, attempt + 1,
                    s->max_retries, d);
        sleep_ms(d);
    }
    ms_buf_free(&url);
    return rc;
}

/* Loads credentials: the environment first, then the shared credentials file. */
static ms_err load_creds(blob_s3 *s, ms_error *err)
{
    const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
    const char *token = getenv("AWS_SESSION_TOKEN");
    bool has_id = id && *id, has_secret = secret && *secret;
    if (has_id && has_secret) {
        s->creds.access_key_id = ms_xstrdup(id);
        s->creds.secret_access_key = ms_xstrdup(secret);
        if (token && *token) s->creds.session_token = ms_xstrdup(token);
        ms_log_info(s->log, "s3: credentials from the environment (AWS_ACCESS_KEY_ID%s)",
                    s->creds.session_token ? ", AWS_SESSION_TOKEN" : "");
        return MS_OK;
    }
    if (has_id != has_secret)
        return ms_error_set(err, MS_ERR_CONFIG, "S3 credentials: %s is set but %s is not",
                            has_id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                            has_id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
    const char *file = getenv("AWS_SHARED_CREDENTIALS_FILE"), *home = getenv("HOME");
    const char *profile = getenv("AWS_PROFILE");
    if (!profile || !*profile) profile = "default";
    ms_buf path = MS_BUF_INIT;
    if (file && *file)
        ms_buf_puts(&path, file);
    else
        ms_buf_printf(&path, "%s/.aws/credentials", home && *home ? home : "");
    FILE *f = fopen(path.data, "r");
    if (!f) {
        ms_err rc = ms_error_set(err, MS_ERR_CONFIG,
                                 "no S3 credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are "
                                 "not set and the credentials file %s cannot be read: %s",
                                 path.data, strerror(errno));
        ms_buf_free(&path);
        return rc;
    }
    ms_buf text = MS_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && text.len <= S3_MAX_CREDS_FILE)
        ms_buf_append(&text, chunk, n);
    bool bad = ferror(f) || text.len > S3_MAX_CREDS_FILE;
    fclose(f);
    ms_err rc =
        bad ? ms_error_set(err, MS_ERR_CONFIG,
                           "S3 credentials file %s cannot be read or is over 1 MiB", path.data)
            : ms_s3_creds_parse(ms_buf_cstr(&text), profile, path.data, &s->creds, err);
    if (rc == MS_OK)
        ms_log_info(s->log, "s3: credentials from %s, profile [%s]%s", path.data, profile,
                    s->creds.session_token ? " with a session token" : "");
    if (text.data) memset(text.data, 0, text.len);
    ms_buf_free(&text);
    ms_buf_free(&path);
    return rc;
}

/*
 * The start check: a ListObjectsV2 of one key under the prefix. A missing bucket or rejected
 * credentials are configuration errors; AccessDenied (no s3:ListBucket) and an unreachable or
 * failing endpoint only warn, since PUTs may still work and the sink retries.
 */
static ms_err check_bucket(blob_s3 *s, ms_error *err)
{
    ms_buf prefix = MS_BUF_INIT, url = MS_BUF_INIT;
    if (*s->prefix) ms_buf_printf(&prefix, "%s/", s->prefix);
    ms_s3_param q[] = {{"list-type", "2"}, {"max-keys", "1"}, {"prefix", ms_buf_cstr(&prefix)}};
    ms_buf_printf(&url, "%s/?", s->base);
    ms_s3_canonical_query(&url, q, sizeof q / sizeof q[0]);
    long status = 0;
    CURLcode cc = s3_request(s, "GET", url.data, NULL, 0, &status);
    ms_buf_free(&prefix);
    ms_buf_free(&url);
    char why[400], code[96], msg[8];
    describe(s, cc, status, why, sizeof why);
    ms_s3_xml_error(s->resp.data ? s->resp.data : "", s->resp.len, code, sizeof code, msg,
                    sizeof msg);
    if (cc == CURLE_OK && status >= 200 && status < 300) {
        ms_log_info(s->log, "s3: bucket %s reachable at %s", s->bucket, s->base);
        return MS_OK;
    }
    if (ms_s3_retriable((int)cc, status)) {
        ms_log_warn(s->log,
                    "s3: cannot check bucket %s at %s (%s); starting anyway, snapshots are "
                    "retried until it answers",
                    s->bucket, s->base, why);
        return MS_OK;
    }
    if (cc == CURLE_OK && status == 403 && strcmp(code, "AccessDenied") == 0) {
        ms_log_warn(s->log,
                    "s3: the credentials may not list bucket %s (%s); starting anyway, PUTs "
                    "may still be allowed",
                    s->bucket, why);
        return MS_OK;
    }
    return ms_error_set(err, MS_ERR_CONFIG, "snapshots.url: S3 bucket %s at %s: %s", s->bucket,
                        s->base, why);
}

static void s3_close(void *ctx);

static ms_err s3_open(const char *url, const ms_config *cfg, const ms_log *log, void **ctx,
                      ms_error *err)
{
    char *bucket, *prefix;
    ms_err rc = ms_s3_url_parse(url, &bucket, &prefix, err);
    if (rc != MS_OK) return rc;
    CURLcode gc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (gc != CURLE_OK) {
        free(bucket);
        free(prefix);
        return ms_error_set(err, MS_ERR_INTERNAL, "libcurl: %s", curl_easy_strerror(gc));
    }
    blob_s3 *s = ms_xcalloc(1, sizeof *s);
    s->log = log;
    s->bucket = bucket;
    s->prefix = prefix;
    s->timeout_ms = cfg->s3_timeout_ms > 0 ? (long)cfg->s3_timeout_ms : 30000L;
    s->max_retries = cfg->s3_max_retries > 100 ? 100 : (int)cfg->s3_max_retries;
    s->rng = (uint32_t)(ms_now_ns() ^ (uintptr_t)s);
    const char *region = cfg->s3_region && *cfg->s3_region ? cfg->s3_region : "us-east-1";
    ms_buf b = MS_BUF_INIT;
    ms_buf_printf(&b, "aws:amz:%s:s3", region);
    s->sigv4 = ms_buf_steal(&b);
    rc = ms_s3_base_url(&b, cfg->s3_endpoint, region, bucket, cfg->s3_path_style, err);
    s->base = ms_buf_steal(&b);
    if (rc == MS_OK) {
        s->easy = curl_easy_init();
        if (!s->easy) {
            fprintf(stderr, "metasync: out of memory creating an HTTP handle\n");
            abort();
        }
        rc = load_creds(s, err);
    }
    if (rc == MS_OK) rc = check_bucket(s, err);
    if (rc != MS_OK) {
        s3_close(s);
        return rc;
    }
    ms_log_info(log, "s3: snapshots go to s3://%s/%s (%s, region %s, %d retries)", bucket, prefix,
                s->base, region, s->max_retries);
    *ctx = s;
    return MS_OK;
}

static void s3_close(void *ctx)
{
    blob_s3 *s = ctx;
    if (!s) return;
    if (s->easy) curl_easy_cleanup(s->easy);
    ms_s3_creds_free(&s->creds);
    ms_buf_free(&s->resp);
    free(s->bucket);
    free(s->prefix);
    free(s->base);
    free(s->sigv4);
    free(s);
    curl_global_cleanup();
}

const ms_blob_ops ms_blob_s3 = {
    .version = MS_BLOB_OPS_VERSION,
    .name = "s3",
    .scheme = "s3",
    .open = s3_open,
    .put = s3_put,
    .close = s3_close,
};
