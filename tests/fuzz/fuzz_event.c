/*
 * fuzz_event.c — libFuzzer target for the event decoder: runs ms_batch_decode on the input as an
 * NDJSON body and as a JSON body (built-in registry plus one custom type, an event size limit and
 * the default depth limit), checks the batch invariants, and frees everything.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc/core
 *        tests/fuzz/fuzz_event.c src/core/{ms_json,ms_types,ms_event,ms_error,ms_buf}.c
 *        $(pkg-config --cflags --libs json-c) -lpthread
 * Seeds: tests/fuzz/corpus/event. Fuzz a copy (tests/fuzz/corpus-run/ is git-ignored) so that
 * new inputs do not land in the seed directory.
 */
#include "ms_event.h"
#include "ms_json.h"

#include <stdlib.h>
#include <string.h>

/* Checks what must hold for any decoded batch; aborts (a finding) otherwise. */
static void check_batch(const ms_batch *b, ms_err rc, const ms_error *err)
{
    if (rc != MS_OK) {
        if (b->total || b->nevents || b->nrejected || err->code != rc) abort();
        return;
    }
    if (b->total != b->nevents + b->nrejected) abort();
    for (size_t i = 0; i < b->nevents; i++) {
        const ms_event *ev = b->events[i];
        if (!ev || !ev->qn || !ev->tenant || ev->index >= b->total) abort();
        if ((ev->op == MS_OP_UPSERT || ev->op == MS_OP_PATCH) != (ev->attributes != NULL)) abort();
        if (ev->op == MS_OP_UPSERT && (!ev->type || !ev->name)) abort();
        /* Canonical attributes are canonical: parsing and re-canonicalizing is the identity. */
        if (ev->attributes) {
            ms_error e2;
            size_t n = strlen(ev->attributes);
            struct json_object *o = ms_json_parse(ev->attributes, n, 1000, NULL, &e2);
            if (e2.code != MS_OK) abort();
            ms_buf buf = MS_BUF_INIT;
            ms_json_canonical(o, &buf);
            if (buf.len != n || memcmp(buf.data, ev->attributes, n) != 0) abort();
            ms_buf_free(&buf);
            json_object_put(o);
        }
    }
    for (size_t i = 0; i < b->nrejected; i++) {
        const ms_rejection *r = &b->rejected[i];
        if (r->err.code == MS_OK || r->index >= b->total || r->err.line < 1 || r->err.column < 1)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char def[] = "{\"name\":\"kafka_topic\",\"parents\":[\"connection\"],"
                              "\"required_attributes\":[\"partitions\"],\"lane\":\"bulk\"}";
    ms_types *types = ms_types_new();
    ms_error err;
    if (ms_types_register(types, "acme", def, sizeof def - 1, NULL, NULL, &err) != MS_OK) abort();
    ms_decode_opts opts = {.tenant = "acme", .types = types, .max_event_bytes = 4096};

    const char *body = (const char *)data;
    ms_batch b;
    ms_err rc = ms_batch_decode(body, size, MS_BODY_NDJSON, &opts, &b, &err);
    check_batch(&b, rc, &err);
    ms_batch_free(&b);

    rc = ms_batch_decode(body, size, MS_BODY_JSON, &opts, &b, &err);
    check_batch(&b, rc, &err);
    ms_batch_free(&b);

    ms_event *ev = NULL;
    if (ms_event_decode(body, size, &opts, &ev, &err) == MS_OK) {
        if (!ev) abort();
        ms_event_free(ev);
    } else if (ev) {
        abort();
    }
    ms_types_free(types);
    return 0;
}
