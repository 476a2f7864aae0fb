/*
 * registry_client.c — the client of an external Confluent-compatible registry (registry.url):
 * fetches a schema by id and registers a schema under a subject, with libcurl. One easy handle
 * per call (calls are rare: ids are cached by registry.c), so any thread may call.
 */
#include "registry_int.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#ifndef MS_VERSION
#define MS_VERSION "dev"
#endif

#define MAX_ANSWER_BYTES       (4 << 20)
#define RG_LOOKUP_TIMEOUT_MS   3000L
#define RG_REGISTER_TIMEOUT_MS 30000L

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    ms_buf *b = ud;
    if (b->len + size * n > MAX_ANSWER_BYTES) return 0; /* aborts the transfer */
    ms_buf_append(b, p, size * n);
    return size * n;
}

/*
 * One request to url with an optional JSON body; on a 2xx answer *answer is the parsed body (new
 * reference). Errors: the remote's error_code and message, or 50003 when it can't be reached or
 * answers something else than JSON.
 */
static int call(ms_registry *r, const char *url, const char *body, long timeout_ms,
                json_object **answer, rg_fail *f)
{
    *answer = NULL;
    CURL *e = curl_easy_init();
    if (!e) return rg_failf(f, RG_UPSTREAM_ERROR, "libcurl: cannot create a handle");
    ms_buf resp = MS_BUF_INIT;
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *h =
        curl_slist_append(NULL, "Accept: application/vnd.schemaregistry.v1+json");
    h = curl_slist_append(h, "Content-Type: application/vnd.schemaregistry.v1+json");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "metasync/" MS_VERSION);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 5000L ? timeout_ms : 5000L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (body) curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    CURLcode cc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    int rc = RG_OK;
    json_object *o = cc == CURLE_OK ? json_tokener_parse(ms_buf_cstr(&resp)) : NULL, *v;
    if (cc != CURLE_OK) {
        rc = rg_failf(f, RG_UPSTREAM_ERROR, "%s: %s", url,
                      errbuf[0] ? errbuf : curl_easy_strerror(cc));
    } else if (status < 200 || status > 299) {
        int code = o && json_object_object_get_ex(o, "error_code", &v) ? json_object_get_int(v)
                                                                       : (int)status;
        const char *msg = o && json_object_object_get_ex(o, "message", &v)
                              ? json_object_get_string(v)
                              : "no error body";
        rc = rg_failf(f, code > 0 ? code : RG_UPSTREAM_ERROR, "%s", msg);
    } else if (!o) {
        rc = rg_failf(f, RG_UPSTREAM_ERROR, "%s: the answer is not JSON", url);
    }
    if (rc == RG_OK) {
        *answer = o;
        o = NULL;
    } else {
        ms_log_warn(r->log, "registry: %s: %d %s", url, f ? f->code : rc, f ? f->msg : "");
    }
    json_object_put(o);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    ms_buf_free(&resp);
    return rc;
}

int rg_client_fetch(ms_registry *r, uint32_t id, char **text, rg_fail *f)
{
    ms_buf url = MS_BUF_INIT;
    ms_buf_printf(&url, "%s/schemas/ids/%u", r->url, id);
    json_object *o = NULL, *v;
    /* Short: a lookup holds up a Kafka batch, which retries the lookup anyway. */
    int rc = call(r, url.data, NULL, RG_LOOKUP_TIMEOUT_MS, &o, f);
    ms_buf_free(&url);
    if (rc != RG_OK) return rc;
    if (json_object_object_get_ex(o, "schema", &v) && json_object_is_type(v, json_type_string))
        *text = ms_xstrdup(json_object_get_string(v));
    else
        rc = rg_failf(f, RG_UPSTREAM_ERROR, "schema %u: the answer has no \"schema\"", id);
    json_object_put(o);
    return rc;
}

int rg_client_register(ms_registry *r, const char *subject, const char *text, size_t len,
                       uint32_t *id, rg_fail *f)
{
    ms_buf url = MS_BUF_INIT, body = MS_BUF_INIT;
    ms_buf_printf(&url, "%s/subjects/", r->url);
    ms_buf_put_pct(&url, subject);
    ms_buf_puts(&url, "/versions");
    ms_buf_puts(&body, "{\"schema\":");
    ms_buf_put_jstrn(&body, text, len);
    ms_buf_putc(&body, '}');
    json_object *o = NULL, *v;
    int rc = call(r, url.data, body.data, RG_REGISTER_TIMEOUT_MS, &o, f);
    ms_buf_free(&url);
    ms_buf_free(&body);
    if (rc != RG_OK) return rc;
    if (json_object_object_get_ex(o, "id", &v) && json_object_get_int64(v) > 0)
        *id = (uint32_t)json_object_get_int64(v);
    else
        rc = rg_failf(f, RG_UPSTREAM_ERROR, "subject %s: the answer has no \"id\"", subject);
    json_object_put(o);
    return rc;
}
