/*
 * fuzz_registry_http.c — libFuzzer target for the schema registry's REST API: drives
 * ms_registry_http with an arbitrary method, path, query and body on one embedded registry over a
 * SQLite store in a scratch directory (no engine: no assets), and checks that every answer is a
 * status from 200 to 599 whose error bodies carry {"error_code","message"}.
 *
 * Input format: "METHOD PATH[?QUERY]\n" then the body. State accumulates across inputs (subjects
 * registered by one input are seen by the next), which reaches deeper states; the store lives in
 * a directory removed at exit.
 * Build: cmake -S . -B build-fuzz -DMS_FUZZ=ON -DCMAKE_C_COMPILER=clang. Seeds:
 * tests/fuzz/corpus/registry_http.
 */
#include "ms_registry.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/ms_test_dir.h"

extern const ms_store_ops ms_store_sqlite;

static struct {
    char dir[512];
    ms_config cfg;
    ms_types *types;
    void *store;
    ms_registry *r;
} g;

static void cleanup(void)
{
    ms_registry_free(g.r);
    ms_store_sqlite.close(g.store);
    ms_types_free(g.types);
    ms_config_free(&g.cfg);
    ms_test_rmtree(g.dir);
}

static void init_once(void)
{
    if (g.r) return;
    if (ms_test_mkdtemp(g.dir, sizeof g.dir, "fuzz_registry") != 0) abort();
    ms_config_defaults(&g.cfg);
    ms_error err;
    if (ms_config_set(&g.cfg, "data_dir", g.dir, "fuzz", &err) != MS_OK) abort();
    if (ms_config_set(&g.cfg, "store.synchronous", "normal", "fuzz", &err) != MS_OK) abort();
    g.types = ms_types_new();
    ms_store_open_args oa = {&g.cfg, NULL, g.cfg.store_url, g.types};
    if (ms_store_sqlite.open(&oa, &g.store, &err) != MS_OK) abort();
    ms_registry_args ra = {&g.cfg, NULL, &ms_store_sqlite, g.store, NULL};
    if (ms_registry_open(&ra, &g.r, &err) != MS_OK) abort();
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    const char *nl = memchr(data, '\n', size);
    size_t head = nl ? (size_t)(nl - (const char *)data) : size;
    char *line = strndup((const char *)data, head);
    char *sp = strchr(line, ' ');
    const char *method = "GET", *path = line;
    if (sp) {
        *sp = '\0';
        method = line;
        path = sp + 1;
    }
    char *q = strchr(path, '?');
    if (q) *q++ = '\0';
    const char *body = nl ? nl + 1 : "";
    size_t blen = nl ? size - head - 1 : 0;
    ms_registry_request rq = {.tenant = "default",
                              .method = method,
                              .path = path,
                              .query = q,
                              .body = body,
                              .body_len = blen};
    int status = 0;
    const char *ct = NULL;
    ms_buf out = MS_BUF_INIT;
    ms_registry_http(g.r, &rq, &status, &ct, &out);
    if (status < 200 || status > 599 || !ct) abort();
    if (status >= 400) {
        json_object *o = json_tokener_parse(ms_buf_cstr(&out)), *c, *m;
        if (!o || !json_object_object_get_ex(o, "error_code", &c) ||
            !json_object_object_get_ex(o, "message", &m))
            abort();
        int code = json_object_get_int(c);
        if ((code >= 1000 ? code / 100 : code) != status) abort();
        json_object_put(o);
    }
    ms_buf_free(&out);
    free(line);
    return 0;
}
