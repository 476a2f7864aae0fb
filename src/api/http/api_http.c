/*
 * api_http.c — the HTTP API, a source (ingest) and the query API, on libmicrohttpd.
 * The routes and their answers are documented in docs/api.md.
 *
 * Threads: MHD runs one thread per connection (bounded by http.max_connections), so a handler
 * may block: on the engine's commit (POST /api/v1/events answers only after the batch is
 * durable), on a long-poll, or in a Server-Sent Events stream. Request bodies are buffered up to
 * http.max_body_bytes each and http.body_budget_bytes for all connections together; past that
 * the answer is 413 or 503 + Retry-After, so memory stays bounded.
 * Every error answer goes through http_problem.c, except under /registry, which is the schema
 * registry's own API with Confluent's error bodies (built in src/registry/registry_http.c).
 */
#include "http_problem.h"

#include "ms_control.h"
#include "ms_event.h"
#include "ms_json.h"
#include "ms_registry.h"
#include "ms_runtime.h"
#include "ms_source.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct api {
    ms_runtime *rt;
    struct MHD_Daemon *d;
    atomic_llong buffered; /* request body bytes held by all connections */
    atomic_bool stopping;
} api;

/* Per-request state, created on the first call of the access handler. */
typedef struct req {
    ms_buf body;
    bool too_large;    /* over http.max_body_bytes: drain and answer 413 */
    bool over_budget;  /* over http.body_budget_bytes: drain and answer 503 */
    long long counted; /* bytes counted in api->buffered */
    char tenant[64];   /* the request's tenant: `default`, or the API key's (auth.required) */
    unsigned scopes;   /* the API key's MS_CONTROL_SCOPE_* bits (auth.required) */
    bool authed;       /* an API key was verified for this request */
} req;

static const char *tenant_of(const req *q)
{
    return q->tenant;
}

static const char *arg(struct MHD_Connection *c, const char *k)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
}

/* Parses an integer query parameter within [lo, hi]; absent → def. */
static bool int_arg(struct MHD_Connection *c, const char *k, long long def, long long lo,
                    long long hi, long long *out, ms_error *err)
{
    const char *v = arg(c, k);
    if (!v || !*v) {
        *out = def;
        return true;
    }
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (*end || errno == ERANGE || n < lo || n > hi) {
        ms_error_set(err, MS_ERR_BAD_PARAM, "%s must be an integer from %lld to %lld, not '%s'",
                     k, lo, hi, v);
        return false;
    }
    *out = n;
    return true;
}

static enum MHD_Result send_buf(struct MHD_Connection *c, unsigned status, ms_buf *b)
{
    return ms_api_json(c, status, ms_buf_cstr(b), b->len);
}

/* ---- POST /api/v1/events ---------------------------------------------------------------- */

static int cmp_rej(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static void put_rejection(ms_buf *o, size_t index, ms_err code, const char *detail, long line,
                          long column)
{
    ms_buf_printf(o, "{\"index\":%zu,\"code\":\"%s\",\"detail\":", index, ms_err_code(code));
    ms_buf_put_jstr(o, detail);
    if (line > 0) ms_buf_printf(o, ",\"line\":%ld,\"column\":%ld", line, column);
    ms_buf_putc(o, '}');
}

static enum MHD_Result post_events(api *a, struct MHD_Connection *c, const char *path, req *r)
{
    ms_runtime *rt = a->rt;
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    ms_body_format fmt;
    if (!ct || !*ct) {
        const char *p = ms_buf_cstr(&r->body);
        while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++;
        fmt = *p == '[' ? MS_BODY_JSON : MS_BODY_NDJSON;
    } else if (strncmp(ct, "application/x-ndjson", 20) == 0 ||
               strncmp(ct, "application/ndjson", 18) == 0 ||
               strncmp(ct, "application/jsonl", 17) == 0) {
        fmt = MS_BODY_NDJSON;
    } else if (strncmp(ct, "application/json", 16) == 0) {
        fmt = MS_BODY_JSON;
    } else {
        char d[200];
        snprintf(d, sizeof d, "Content-Type '%.100s' is not application/x-ndjson or application/json",
                 ct);
        return ms_problem_send_code(c, path, MS_ERR_UNSUPPORTED_MEDIA, d, &rt->metrics);
    }
    const char *tenant = tenant_of(r);
    ms_decode_opts opts = {tenant, rt->types, (size_t)rt->cfg->limits_max_event_bytes,
                           (int)rt->cfg->limits_max_depth};
    ms_batch batch;
    memset(&batch, 0, sizeof batch);
    ms_error err;
    ms_error_clear(&err);
    if (ms_batch_decode(ms_buf_cstr(&r->body), r->body.len, fmt, &opts, &batch, &err) != MS_OK) {
        atomic_fetch_add(&rt->metrics.events_rejected[err.code], 1);
        return ms_problem_send(c, path, &err, &rt->metrics);
    }
    /* Decode rejections are counted here; apply-time ones by the engine. */
    for (size_t i = 0; i < batch.nrejected; i++)
        atomic_fetch_add(&rt->metrics.events_rejected[batch.rejected[i].err.code], 1);
    atomic_fetch_add(&rt->metrics.events_received, batch.nrejected);
    size_t n = batch.nevents;
    ms_apply_result *res = ms_xcalloc(n + 1, sizeof *res);
    size_t *idx = ms_xmalloc((n + 1) * sizeof *idx);
    for (size_t i = 0; i < n; i++) idx[i] = batch.events[i]->index;
    ms_err rc = n ? ms_engine_submit(rt->engine, batch.events, n, res, &err) : MS_OK;
    enum MHD_Result out;
    if (rc != MS_OK) {
        out = ms_problem_send(c, path, &err, &rt->metrics);
    } else {
        size_t applied = 0, unchanged = 0, dups = 0, nrej = 0;
        /* Merge decode and apply rejections in body order. */
        size_t *order = ms_xmalloc((batch.nrejected + n + 1) * sizeof *order);
        for (size_t i = 0; i < n; i++) {
            switch (res[i].status) {
            case MS_APPLY_APPLIED: applied++; break;
            case MS_APPLY_UNCHANGED: unchanged++; break;
            case MS_APPLY_DUPLICATE: dups++; break;
            case MS_APPLY_REJECTED: order[nrej++] = idx[i]; break;
            }
        }
        for (size_t i = 0; i < batch.nrejected; i++) order[nrej++] = batch.rejected[i].index;
        qsort(order, nrej, sizeof *order, cmp_rej);
        ms_buf o = MS_BUF_INIT;
        ms_buf_printf(&o,
                      "{\"accepted\":%zu,\"applied\":%zu,\"unchanged\":%zu,\"duplicates\":%zu,"
                      "\"rejected\":[",
                      applied + unchanged, applied, unchanged, dups);
        for (size_t k = 0; k < nrej; k++) {
            if (k) ms_buf_putc(&o, ',');
            bool found = false;
            for (size_t i = 0; i < batch.nrejected && !found; i++)
                if (batch.rejected[i].index == order[k]) {
                    const ms_error *e = &batch.rejected[i].err;
                    put_rejection(&o, order[k], e->code, e->detail, e->line, e->column);
                    found = true;
                }
            for (size_t i = 0; i < n && !found; i++)
                if (idx[i] == order[k]) {
                    put_rejection(&o, order[k], res[i].code, res[i].detail, 0, 0);
                    found = true;
                }
        }
        ms_buf_printf(&o, "],\"last_seq\":%" PRIu64 "}", ms_engine_last_seq(rt->engine, tenant));
        out = send_buf(c, MHD_HTTP_OK, &o);
        ms_buf_free(&o);
        free(order);
    }
    free(res);
    free(idx);
    ms_batch_free(&batch);
    return out;
}

/* ---- assets ------------------------------------------------------------------------------ */

/* True when qn is an asset of tenant, deleted or not (deleted assets keep their history). */
static bool asset_exists(api *a, const char *tenant, const char *qn)
{
    ms_buf b = MS_BUF_INIT;
    bool found = a->rt->store->asset_get(a->rt->store_ctx, tenant, qn, true, &b, NULL) == MS_OK;
    ms_buf_free(&b);
    return found;
}

static enum MHD_Result list_assets(api *a, struct MHD_Connection *c, const req *rq,
                                   const char *path, const char *parent)
{
    ms_runtime *rt = a->rt;
    ms_error err;
    ms_error_clear(&err);
    long long limit;
    if (!int_arg(c, "limit", 100, 1, 1000, &limit, &err))
        return ms_problem_send(c, path, &err, &rt->metrics);
    ms_asset_query q = {
        .tenant = tenant_of(rq),
        .type = arg(c, "type"),
        .parent = parent ? parent : arg(c, "parent"),
        .tag = arg(c, "tag"),
        .q = arg(c, "q"),
        .orphan = -1,
        .include_deleted = false,
        .limit = (int)limit,
        .cursor = arg(c, "cursor"),
    };
    const char *o = arg(c, "orphan");
    if (o) {
        if (strcmp(o, "true") == 0 || strcmp(o, "1") == 0)
            q.orphan = 1;
        else if (strcmp(o, "false") == 0 || strcmp(o, "0") == 0)
            q.orphan = 0;
        else
            return ms_problem_send_code(c, path, MS_ERR_BAD_PARAM, "orphan must be true or false",
                                        &rt->metrics);
    }
    const char *del = arg(c, "include_deleted");
    q.include_deleted = del && strcmp(del, "true") == 0;
    if (q.q && !*q.q) q.q = NULL;
    ms_buf items = MS_BUF_INIT, next = MS_BUF_INIT;
    ms_err rc = rt->store->asset_list(rt->store_ctx, &q, &items, &next, &err);
    enum MHD_Result out;
    if (rc != MS_OK) {
        out = ms_problem_send(c, path, &err, &rt->metrics);
    } else {
        ms_buf b = MS_BUF_INIT;
        ms_buf_printf(&b, "{\"items\":[%s],\"next_cursor\":", ms_buf_cstr(&items));
        ms_buf_put_jstr(&b, next.len ? next.data : NULL);
        ms_buf_putc(&b, '}');
        out = send_buf(c, MHD_HTTP_OK, &b);
        ms_buf_free(&b);
    }
    ms_buf_free(&items);
    ms_buf_free(&next);
    return out;
}

static int history_item(void *ud, const ms_change *ch)
{
    ms_buf *b = ud;
    if (b->data[b->len - 1] != '[') ms_buf_putc(b, ',');
    ms_change_to_json(ch, b);
    return 0;
}

static enum MHD_Result get_asset_route(api *a, struct MHD_Connection *c, const req *q,
                                       const char *path, const char *qn_path)
{
    ms_runtime *rt = a->rt;
    const char *tenant = tenant_of(q);
    static const char *const subs[] = {"/children", "/lineage", "/history"};
    ms_error err;
    ms_error_clear(&err);
    /* A sub-resource only if what precedes it is an asset (a qualified name may itself end in
     * "/history"); otherwise the whole path is the qualified name. */
    for (int s = 0; s < 3; s++) {
        size_t ls = strlen(subs[s]), lq = strlen(qn_path);
        if (lq <= ls || strcmp(qn_path + lq - ls, subs[s]) != 0) continue;
        char *qn = ms_xstrndup(qn_path, lq - ls);
        if (!asset_exists(a, tenant, qn) || asset_exists(a, tenant, qn_path)) {
            free(qn);
            continue;
        }
        enum MHD_Result out;
        if (s == 0) {
            out = list_assets(a, c, q, path, qn);
        } else if (s == 1) {
            const char *dir = arg(c, "direction");
            ms_lineage_dir d = MS_LINEAGE_BOTH;
            long long depth;
            if (dir && strcmp(dir, "upstream") == 0)
                d = MS_LINEAGE_UPSTREAM;
            else if (dir && strcmp(dir, "downstream") == 0)
                d = MS_LINEAGE_DOWNSTREAM;
            else if (dir && strcmp(dir, "both") != 0)
                ms_error_set(&err, MS_ERR_BAD_PARAM,
                             "direction must be upstream, downstream or both, not '%s'", dir);
            ms_buf b = MS_BUF_INIT;
            if (err.code == MS_OK && int_arg(c, "depth", 3, 1, 20, &depth, &err) &&
                rt->store->lineage(rt->store_ctx, tenant, qn, d, (int)depth, &b, &err) == MS_OK)
                out = send_buf(c, MHD_HTTP_OK, &b);
            else
                out = ms_problem_send(c, path, &err, &rt->metrics);
            ms_buf_free(&b);
        } else {
            ms_buf b = MS_BUF_INIT;
            ms_buf_puts(&b, "{\"qualified_name\":");
            ms_buf_put_jstr(&b, qn);
            ms_buf_puts(&b, ",\"items\":[");
            if (rt->store->history(rt->store_ctx, tenant, qn, history_item, &b, &err) == MS_OK) {
                ms_buf_puts(&b, "]}");
                out = send_buf(c, MHD_HTTP_OK, &b);
            } else {
                out = ms_problem_send(c, path, &err, &rt->metrics);
            }
            ms_buf_free(&b);
        }
        free(qn);
        return out;
    }
    const char *del = arg(c, "include_deleted");
    ms_buf b = MS_BUF_INIT;
    enum MHD_Result out;
    if (rt->store->asset_get(rt->store_ctx, tenant, qn_path, del && strcmp(del, "true") == 0, &b,
                             &err) == MS_OK)
        out = send_buf(c, MHD_HTTP_OK, &b);
    else
        out = ms_problem_send(c, path, &err, &rt->metrics);
    ms_buf_free(&b);
    return out;
}

/* ---- change feed ------------------------------------------------------------------------- */

typedef struct feed {
    ms_buf *out;
    uint64_t last;
    bool sse;
} feed;

static int feed_item(void *ud, const ms_change *ch)
{
    feed *f = ud;
    if (f->sse) {
        ms_buf_printf(f->out, "id: %" PRIu64 "\nevent: change\ndata: ", ch->seq);
        ms_change_to_json(ch, f->out);
        ms_buf_puts(f->out, "\n\n");
    } else {
        if (f->out->data[f->out->len - 1] != '[') ms_buf_putc(f->out, ',');
        ms_change_to_json(ch, f->out);
    }
    f->last = ch->seq;
    return 0;
}

/* Waits in short slices so that a stopping server does not hang on a long-poll. */
static bool wait_changes(api *a, const char *tenant, uint64_t after, unsigned long long ms)
{
    unsigned long long until = ms_now_ms() + ms;
    while (!atomic_load(&a->stopping)) {
        unsigned long long now = ms_now_ms();
        if (now >= until) return false;
        unsigned slice = until - now > 500 ? 500 : (unsigned)(until - now);
        if (ms_engine_wait_seq(a->rt->engine, tenant, after, slice)) return true;
    }
    return false;
}

static enum MHD_Result get_changes(api *a, struct MHD_Connection *c, const req *q, const char *path)
{
    ms_runtime *rt = a->rt;
    const char *tenant = tenant_of(q);
    ms_error err;
    ms_error_clear(&err);
    long long after, limit, wait;
    if (!int_arg(c, "after", 0, 0, INT64_MAX, &after, &err) ||
        !int_arg(c, "limit", 100, 1, MS_CHANGES_PAGE_MAX, &limit, &err) ||
        !int_arg(c, "wait", 0, 0, rt->cfg->changes_max_wait_seconds, &wait, &err))
        return ms_problem_send(c, path, &err, &rt->metrics);
    if (wait > 0 && ms_engine_last_seq(rt->engine, tenant) <= (uint64_t)after)
        wait_changes(a, tenant, (uint64_t)after, (unsigned long long)wait * 1000);
    ms_buf b = MS_BUF_INIT;
    ms_buf_puts(&b, "{\"items\":[");
    feed f = {&b, (uint64_t)after, false};
    enum MHD_Result out;
    if (rt->store->changes(rt->store_ctx, tenant, (uint64_t)after, (size_t)limit, feed_item, &f,
                           &err) == MS_OK) {
        ms_buf_printf(&b, "],\"next_after\":%" PRIu64 ",\"last_seq\":%" PRIu64 "}", f.last,
                      ms_engine_last_seq(rt->engine, tenant));
        out = send_buf(c, MHD_HTTP_OK, &b);
    } else {
        out = ms_problem_send(c, path, &err, &rt->metrics);
    }
    ms_buf_free(&b);
    return out;
}

typedef struct sse {
    api *a;
    char tenant[128];
    uint64_t after;
    ms_buf pending;
    size_t off;
} sse;

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    sse *s = cls;
    while (s->off >= s->pending.len) {
        ms_buf_reset(&s->pending);
        s->off = 0;
        if (atomic_load(&s->a->stopping)) return MHD_CONTENT_READER_END_OF_STREAM;
        feed f = {&s->pending, s->after, true};
        if (s->a->rt->store->changes(s->a->rt->store_ctx, s->tenant, s->after, 500, feed_item, &f,
                                     NULL) != MS_OK)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        s->after = f.last;
        if (s->pending.len) break;
        if (!wait_changes(s->a, s->tenant, s->after, 15000)) {
            ms_buf_puts(&s->pending, ": keep-alive\n\n");
            break;
        }
    }
    size_t n = s->pending.len - s->off < max ? s->pending.len - s->off : max;
    memcpy(buf, s->pending.data + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

static void sse_free(void *cls)
{
    sse *s = cls;
    ms_buf_free(&s->pending);
    free(s);
}

static enum MHD_Result stream_changes(api *a, struct MHD_Connection *c, const req *q,
                                      const char *path)
{
    ms_error err;
    ms_error_clear(&err);
    long long after;
    const char *last_id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
    if (!int_arg(c, "after", 0, 0, INT64_MAX, &after, &err))
        return ms_problem_send(c, path, &err, &a->rt->metrics);
    if (last_id && *last_id) after = strtoll(last_id, NULL, 10);
    sse *s = ms_xcalloc(1, sizeof *s);
    s->a = a;
    snprintf(s->tenant, sizeof s->tenant, "%s", tenant_of(q));
    s->after = (uint64_t)after;
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, sse_read, s, sse_free);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

/* ---- types, health, metrics -------------------------------------------------------------- */

static enum MHD_Result types_route(api *a, struct MHD_Connection *c, const char *path,
                                   const char *method, req *r)
{
    ms_runtime *rt = a->rt;
    ms_buf b = MS_BUF_INIT;
    enum MHD_Result out;
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) { /* HEAD never registers */
        ms_buf_puts(&b, "{\"items\":");
        ms_types_list_json(rt->types, tenant_of(r), &b);
        ms_buf_putc(&b, '}');
        out = send_buf(c, MHD_HTTP_OK, &b);
    } else {
        ms_error err;
        ms_error_clear(&err);
        bool created = false;
        if (ms_runtime_register_type(rt, tenant_of(r), ms_buf_cstr(&r->body), r->body.len, &created,
                                     &b, &err) == MS_OK)
            out = send_buf(c, created ? MHD_HTTP_CREATED : MHD_HTTP_OK, &b);
        else
            out = ms_problem_send(c, path, &err, &rt->metrics);
    }
    ms_buf_free(&b);
    return out;
}

static enum MHD_Result metrics_route(api *a, struct MHD_Connection *c)
{
    ms_buf b = MS_BUF_INIT;
    ms_runtime_metrics_render(a->rt, &b);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_COPY);
    ms_buf_free(&b);
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

/* ---- control plane: /api/v1/tenants, apikeys, connections, users (src/control) ----------- */

/*
 * The acting tenant of a control-plane request without auth.required: the X-MetaSync-Tenant
 * header, else `default`. With auth.required, control_tenant_authed decides instead.
 */
static bool control_tenant(struct MHD_Connection *c, const char **tenant)
{
    const char *t = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-MetaSync-Tenant");
    *tenant = t && *t ? t : MS_DEFAULT_TENANT;
    return ms_tenant_name_valid(*tenant, strlen(*tenant));
}

/*
 * The API key of an Authorization header into key[len]: `Bearer <key>`, or `Basic
 * base64(user:password)` whose password (else user name) is the key, as Confluent's clients send
 * with basic.auth.user.info. False when the header holds neither.
 */
static bool auth_key(const char *h, char *key, size_t len)
{
    if (!h) return false;
    if (strncasecmp(h, "Bearer ", 7) == 0) {
        snprintf(key, len, "%s", h + 7);
        return true;
    }
    if (strncasecmp(h, "Basic ", 6) != 0) return false;
    const char *b64 = h + 6;
    size_t n = strlen(b64);
    if (n == 0 || n % 4 != 0 || n / 4 * 3 >= 512) return false;
    unsigned char plain[512];
    int m = EVP_DecodeBlock(plain, (const unsigned char *)b64, (int)n);
    if (m < 0) return false;
    while (m > 0 && b64[n - 1] == '=') /* EVP_DecodeBlock counts the padding as bytes */
        m--, n--;
    plain[m] = '\0';
    char *colon = strchr((char *)plain, ':');
    if (!colon || strlen((char *)plain) != (size_t)m) return false;
    *colon = '\0';
    snprintf(key, len, "%s", strncmp(colon + 1, "msk_", 4) == 0 ? colon + 1 : (char *)plain);
    OPENSSL_cleanse(plain, sizeof plain);
    return true;
}

/*
 * With auth.required, every /api/v1 and /registry request carries its API key, as
 * `Authorization: Bearer <API key>` or HTTP Basic auth with the key as password (auth_key). The
 * key is verified (ms_control_apikey_verify), the request takes the key's tenant, and the key
 * must hold the route's scope: the control plane needs `admin`; other routes need `read` for
 * GET/HEAD and `write` otherwise (`admin` holds both). Returns true to go on; otherwise *out is
 * the 401/403.
 */
static bool authorize(api *a, struct MHD_Connection *c, const char *url, const char *method, req *r,
                      enum MHD_Result *out)
{
    ms_metrics *m = &a->rt->metrics;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    ms_error err;
    ms_error_clear(&err);
    if (!a->rt->control) {
        *out = ms_problem_send_code(c, url, MS_ERR_UNAVAILABLE,
                                    "auth.required needs a store with control-plane records", m);
        return false;
    }
    char key[160];
    if (!auth_key(h, key, sizeof key)) {
        *out = ms_problem_send_code(c, url, MS_ERR_UNAUTHORIZED,
                                    "auth.required is on: send Authorization: Bearer <API key> "
                                    "(or HTTP Basic auth with the API key as password)",
                                    m);
        return false;
    }
    ms_err vrc = ms_control_apikey_verify(a->rt->control, key, r->tenant, sizeof r->tenant,
                                          &r->scopes, &err);
    OPENSSL_cleanse(key, sizeof key);
    if (vrc != MS_OK) {
        *out = ms_problem_send(c, url, &err, m);
        return false;
    }
    r->authed = true;
    bool control = strncmp(url, "/api/v1/", 8) == 0 && ms_control_route(url + 7),
         get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    unsigned need = control ? MS_CONTROL_SCOPE_ADMIN
                    : get   ? MS_CONTROL_SCOPE_READ
                            : MS_CONTROL_SCOPE_WRITE;
    bool registry = strncmp(url, "/registry", 9) == 0;
    if (registry && strcmp(r->tenant, MS_DEFAULT_TENANT) != 0) {
        /* the registry keeps the default tenant's schemas only (docs/registry.md) */
        *out =
            ms_problem_send_code(c, url, MS_ERR_FORBIDDEN,
                                 "the schema registry needs an API key of the default tenant", m);
        return false;
    }
    if (r->scopes & (need | MS_CONTROL_SCOPE_ADMIN)) return true;
    char d[160];
    snprintf(d, sizeof d, "this API key lacks the %s scope",
             need == MS_CONTROL_SCOPE_ADMIN  ? "admin"
             : need == MS_CONTROL_SCOPE_READ ? "read"
                                             : "write");
    *out = ms_problem_send_code(c, url, MS_ERR_FORBIDDEN, d, m);
    return false;
}

/*
 * The control plane's acting tenant under auth.required: the key's own, or, for an admin key of
 * the `default` tenant (the operator), the one X-MetaSync-Tenant names; tenants themselves are
 * managed by the operator only. Returns NULL (and *why, *code: MS_ERR_FORBIDDEN, or
 * MS_ERR_BAD_PARAM for a header that is not a tenant name) when the key may not act there.
 */
static const char *control_tenant_authed(struct MHD_Connection *c, const char *url, req *r,
                                         const char **why, ms_err *code)
{
    const char *t = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-MetaSync-Tenant");
    bool op = strcmp(r->tenant, MS_DEFAULT_TENANT) == 0;
    *why = NULL;
    *code = MS_ERR_FORBIDDEN;
    if (!op && strncmp(url + 7, "/tenants", 8) == 0) {
        *why = "managing tenants needs an admin key of the default tenant";
    } else if (!op && t && *t && strcmp(t, r->tenant) != 0) {
        *why = "this API key belongs to another tenant than X-MetaSync-Tenant names";
    } else if (t && *t && !ms_tenant_name_valid(t, strlen(t))) {
        *why = "the X-MetaSync-Tenant header is not a valid tenant name";
        *code = MS_ERR_BAD_PARAM;
    }
    return *why ? NULL : t && *t ? t : r->tenant;
}

static enum MHD_Result control_route(api *a, struct MHD_Connection *c, const char *url,
                                     const char *method, req *r)
{
    ms_metrics *m = &a->rt->metrics;
    if (!a->rt->control)
        return ms_problem_send_code(c, url, MS_ERR_UNAVAILABLE,
                                    "this store keeps no control-plane records", m);
    if (r->too_large || r->over_budget)
        return ms_problem_send_code(c, url, MS_ERR_BODY_TOO_LARGE, "the body is too large", m);
    ms_control_request rq = {method, url + 7, NULL, ms_buf_cstr(&r->body), r->body.len};
    const char *why = NULL;
    ms_err code = MS_OK;
    if (r->authed && !(rq.tenant = control_tenant_authed(c, url, r, &why, &code)))
        return ms_problem_send_code(c, url, code, why, m);
    if (!r->authed && !control_tenant(c, &rq.tenant))
        return ms_problem_send_code(c, url, MS_ERR_BAD_PARAM,
                                    "the X-MetaSync-Tenant header is not a valid tenant name", m);
    ms_error err;
    ms_error_clear(&err);
    ms_buf out = MS_BUF_INIT;
    unsigned status;
    const char *allow;
    enum MHD_Result res;
    if (ms_control_handle(a->rt->control, &rq, &status, &out, &allow, &err) != MS_OK)
        res = err.code == MS_ERR_METHOD ? ms_problem_send_method(c, url, allow, m)
                                        : ms_problem_send(c, url, &err, m);
    else if (status == MHD_HTTP_NO_CONTENT)
        res = ms_api_json(c, status, "", 0);
    else
        res = send_buf(c, status, &out);
    ms_buf_free(&out);
    return res;
}

/* ---- /registry: the schema registry's own API (Confluent's error bodies, not problem+json) -- */

static enum MHD_Result add_query_arg(void *cls, enum MHD_ValueKind kind, const char *k,
                                     const char *v)
{
    (void)kind;
    ms_buf *q = cls;
    if (q->len) ms_buf_putc(q, '&');
    /* MHD has decoded them; the registry decodes the query string itself, so encoded again (a
     * value holding "%41" or "&" must not be decoded twice or split). */
    ms_buf_put_pct(q, k);
    if (v) {
        ms_buf_putc(q, '=');
        ms_buf_put_pct(q, v);
    }
    return MHD_YES;
}

/* MHD's unescape step, except for /registry paths: those reach the registry still
 * percent-encoded, since a subject may hold '/' (a%2Fb) and the registry decodes each segment
 * itself. Query arguments and every other path are decoded as MHD does by default. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    if (strncmp(s, "/registry", 9) == 0 && (s[9] == '/' || s[9] == '\0')) return strlen(s);
    return MHD_http_unescape(s);
}

static enum MHD_Result registry_route(api *a, struct MHD_Connection *c, const char *url,
                                      const char *method, req *r)
{
    ms_buf query = MS_BUF_INIT, out = MS_BUF_INIT;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_query_arg, &query);
    ms_registry_request rq = {
        .tenant = tenant_of(r),
        .method = method,
        .path = url + 9,
        .query = ms_buf_cstr(&query),
        .body = ms_buf_cstr(&r->body),
        .body_len = r->body.len,
        .content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type"),
        .too_large = r->too_large || r->over_budget,
    };
    int status = 500;
    const char *ct = NULL;
    ms_registry_http(a->rt->registry, &rq, &status, &ct, &out);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(out.len, out.data, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, "Content-Type", ct);
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    ms_buf_free(&query);
    ms_buf_free(&out);
    return rc;
}

/* ---- dispatch ---------------------------------------------------------------------------- */

/* The Allow list of read-only routes: HEAD is GET without the body (MHD drops it). */
#define ALLOW_GET "GET, HEAD"

static enum MHD_Result route(api *a, struct MHD_Connection *c, const char *url, const char *method,
                             req *r)
{
    ms_metrics *m = &a->rt->metrics;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool post = strcmp(method, "POST") == 0;
    enum MHD_Result refused;
    if (strncmp(url, "/registry", 9) == 0 && (url[9] == '/' || url[9] == '\0')) {
        if (a->rt->cfg->auth_required && !authorize(a, c, url, method, r, &refused)) return refused;
        return registry_route(a, c, url, method, r); /* every method: the registry routes them */
    }
    if ((strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0 ||
         strcmp(url, "/metrics") == 0) &&
        !get)
        return ms_problem_send_method(c, url, ALLOW_GET, m);
    if (strcmp(url, "/healthz") == 0 && get)
        return ms_api_json(c, MHD_HTTP_OK, "{\"status\":\"ok\"}", 15);
    if (strcmp(url, "/readyz") == 0 && get) {
        if (ms_engine_running(a->rt->engine) && !atomic_load(&a->stopping))
            return ms_api_json(c, MHD_HTTP_OK, "{\"status\":\"ready\"}", 18);
        return ms_problem_send_code(c, url, MS_ERR_UNAVAILABLE, "not ready", m);
    }
    if (strcmp(url, "/metrics") == 0 && get) return metrics_route(a, c);
    if (a->rt->cfg->auth_required && strncmp(url, "/api/v1/", 8) == 0 &&
        !authorize(a, c, url, method, r, &refused))
        return refused;
    if (strcmp(url, "/api/v1/events") == 0) {
        if (!post) return ms_problem_send_method(c, url, "POST", m);
        if (r->too_large) {
            char d[128];
            snprintf(d, sizeof d, "the body is larger than http.max_body_bytes (%lld bytes)",
                     (long long)a->rt->cfg->http_max_body_bytes);
            return ms_problem_send_code(c, url, MS_ERR_BODY_TOO_LARGE, d, m);
        }
        if (r->over_budget)
            return ms_problem_send_code(c, url, MS_ERR_OVERLOADED,
                                        "too many request bodies in flight; retry shortly", m);
        return post_events(a, c, url, r);
    }
    if (strcmp(url, "/api/v1/types") == 0) {
        if (!get && !post) return ms_problem_send_method(c, url, ALLOW_GET ", POST", m);
        if (r->too_large || r->over_budget)
            return ms_problem_send_code(c, url, MS_ERR_BODY_TOO_LARGE, "the body is too large", m);
        return types_route(a, c, url, method, r);
    }
    if (strcmp(url, "/api/v1/changes") == 0 || strcmp(url, "/api/v1/changes/stream") == 0) {
        if (!get) return ms_problem_send_method(c, url, ALLOW_GET, m);
        return url[15] ? stream_changes(a, c, r, url) : get_changes(a, c, r, url);
    }
    if (strcmp(url, "/api/v1/assets") == 0 || strcmp(url, "/api/v1/assets/") == 0) {
        if (!get) return ms_problem_send_method(c, url, ALLOW_GET, m);
        return list_assets(a, c, r, url, NULL);
    }
    if (strncmp(url, "/api/v1/assets/", 15) == 0) {
        if (!get) return ms_problem_send_method(c, url, ALLOW_GET, m);
        return get_asset_route(a, c, r, url, url + 15);
    }
    if (strncmp(url, "/api/v1/", 8) == 0 && ms_control_route(url + 7))
        return control_route(a, c, url, method, r);
    return ms_problem_send_code(c, url, MS_ERR_NOT_FOUND, "no such route", m);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    api *a = cls;
    req *r = *con_cls;
    if (!r) { /* first call: headers only */
        r = ms_xcalloc(1, sizeof *r);
        snprintf(r->tenant, sizeof r->tenant, "%s", MS_DEFAULT_TENANT);
        *con_cls = r;
        atomic_fetch_add(&a->rt->metrics.http_requests, 1);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoll(cl, NULL, 10) > a->rt->cfg->http_max_body_bytes) r->too_large = true;
        if (cl && strtoll(cl, NULL, 10) > MS_AVRO_MAX_SCHEMA_BYTES &&
            strncmp(url, "/registry", 9) == 0)
            r->too_large = true; /* the registry's own limit (it answers 413 itself) */
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->too_large || r->over_budget) return MHD_YES; /* drain */
        if ((long long)(r->body.len + n) > a->rt->cfg->http_max_body_bytes) {
            r->too_large = true;
        } else if (atomic_fetch_add(&a->buffered, (long long)n) + (long long)n >
                   a->rt->cfg->http_body_budget_bytes) {
            atomic_fetch_sub(&a->buffered, (long long)n);
            r->over_budget = true;
        } else {
            r->counted += (long long)n;
            ms_buf_append(&r->body, upload_data, n);
            return MHD_YES;
        }
        ms_buf_free(&r->body);
        atomic_fetch_sub(&a->buffered, r->counted);
        r->counted = 0;
        return MHD_YES;
    }
    return route(a, c, url, method, r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    api *a = cls;
    req *r = *con_cls;
    if (!r) return;
    atomic_fetch_sub(&a->buffered, r->counted);
    ms_buf_free(&r->body);
    free(r);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    api *a = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = '\0';
    ms_log_debug(&a->rt->log, "http: %s", msg);
}

static ms_err http_start(ms_runtime *rt, void **ctx, ms_error *err)
{
    const char *listen = rt->cfg->listen;
    const char *colon = strrchr(listen, ':');
    if (!colon) return ms_error_set(err, MS_ERR_CONFIG, "listen: '%s' is not host:port", listen);
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    if (host[0] == '[') { /* [::1] */
        memmove(host, host + 1, strlen(host));
        host[strcspn(host, "]")] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE},
                    *ai = NULL;
    if (getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai) != 0 || !ai)
        return ms_error_set(err, MS_ERR_CONFIG, "listen: cannot resolve '%s'", listen);
    api *a = ms_xcalloc(1, sizeof *a);
    a->rt = rt;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ERROR_LOG | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    uint16_t port = (uint16_t)atoi(colon + 1);
    a->d = MHD_start_daemon(flags, port, NULL, NULL, on_request, a,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)rt->cfg->http_max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, a,
                            MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!a->d) {
        free(a);
        return ms_error_set(err, MS_ERR_IO, "listen: cannot listen on %s (in use?)", listen);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned bound = info ? info->port : port;
    snprintf(rt->listen_addr, sizeof rt->listen_addr, "%s:%u",
             host[0] ? host : "0.0.0.0", bound);
    ms_log_info(&rt->log, "http: listening on http://%s%s%s:%u", strchr(host, ':') ? "[" : "",
                host[0] ? host : "0.0.0.0", strchr(host, ':') ? "]" : "", bound);
    *ctx = a;
    return MS_OK;
}

static void http_stop(void *ctx)
{
    api *a = ctx;
    if (!a) return;
    atomic_store(&a->stopping, true);
    MHD_stop_daemon(a->d);
    free(a);
}

const ms_source_ops ms_source_http = {
    .version = MS_SOURCE_OPS_VERSION,
    .name = "http",
    .start = http_start,
    .stop = http_stop,
};
