/*
 * fuzz_avro_schema.c — libFuzzer target for the Avro schema parser: parses the input as schema
 * JSON; when it parses, checks that its Parsing Canonical Form parses again to the same canonical
 * form and fingerprint, and that the schema can read its own data (ms_avro_can_read(s, s)).
 *
 * One exemption, a known gap of the specification's canonical form: a named type in the null
 * namespace nested inside a namespaced one is printed without a namespace, so it reparses into
 * the enclosing namespace; the round-trip is then not checked (the parse must still not crash).
 *
 * Build: cmake -S . -B /tmp/build-fuzz -DMS_FUZZ=ON -DCMAKE_C_COMPILER=clang (see CMakeLists.txt).
 * Seeds: tests/fuzz/corpus/avro_schema. Fuzz a copy so that new inputs do not land there.
 */
#include "avro_int.h"

#include <stdlib.h>
#include <string.h>

/* True when a named type without a namespace occurs in the schema alongside namespaced ones. */
static bool has_null_namespace_nested(const ms_avro_schema *s)
{
    bool plain = false, dotted = false;
    for (size_t i = 0; i < s->nnodes; i++) {
        const av_node *n = s->nodes[i];
        if (!n->fullname) continue;
        if (strchr(n->fullname, '.'))
            dotted = true;
        else
            plain = true;
    }
    return plain && dotted;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ms_avro_schema *s = NULL;
    ms_error err;
    if (ms_avro_schema_parse((const char *)data, size, &s, &err) != MS_OK) {
        if (s || err.code != MS_ERR_INVALID_SCHEMA || !err.detail[0]) abort();
        return 0;
    }
    if (!ms_avro_can_read(s, s, NULL)) abort();
    ms_buf c1 = MS_BUF_INIT;
    ms_avro_schema_canonical(s, &c1);
    ms_avro_schema *s2 = NULL;
    ms_err rc = ms_avro_schema_parse(c1.data, c1.len, &s2, &err);
    if (!has_null_namespace_nested(s)) {
        if (rc != MS_OK) abort();
        ms_buf c2 = MS_BUF_INIT;
        ms_avro_schema_canonical(s2, &c2);
        if (c1.len != c2.len || memcmp(c1.data, c2.data, c1.len) != 0) abort();
        if (ms_avro_schema_fingerprint(s) != ms_avro_schema_fingerprint(s2)) abort();
        ms_buf_free(&c2);
    }
    ms_avro_schema_free(s2);
    ms_buf_free(&c1);
    ms_avro_schema_free(s);
    return 0;
}
