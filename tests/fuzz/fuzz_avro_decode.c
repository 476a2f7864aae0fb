/*
 * fuzz_avro_decode.c — libFuzzer target for Avro binary decoding: the input is tried as a
 * Confluent frame (ms_avro_frame_parse) and as a raw datum under a few fixed schemas (every
 * type, a recursive record, unions, and a writer/reader pair that needs resolution). Whenever a
 * decode succeeds, encoding the value with the schema it was decoded into must succeed, and
 * decoding that again must give the same value (compared as canonical JSON).
 *
 * Build: cmake -S . -B /tmp/build-fuzz -DMS_FUZZ=ON -DCMAKE_C_COMPILER=clang (see CMakeLists.txt).
 * Seeds: tests/fuzz/corpus/avro_decode. Fuzz a copy so that new inputs do not land there.
 */
#include "ms_avro.h"
#include "ms_json.h"

#include <stdlib.h>
#include <string.h>

static const char *const schema_texts[] = {
    /* 0: a record of every type, recursive through a union */
    "{\"type\":\"record\",\"name\":\"A\",\"namespace\":\"f\",\"fields\":["
    "{\"name\":\"l\",\"type\":\"long\"},{\"name\":\"i\",\"type\":\"int\"},"
    "{\"name\":\"s\",\"type\":\"string\"},{\"name\":\"b\",\"type\":\"bytes\"},"
    "{\"name\":\"x\",\"type\":\"float\"},{\"name\":\"d\",\"type\":\"double\"},"
    "{\"name\":\"o\",\"type\":\"boolean\"},"
    "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"P\",\"Q\",\"R\"]}},"
    "{\"name\":\"h\",\"type\":{\"type\":\"fixed\",\"name\":\"H\",\"size\":2}},"
    "{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":[\"null\",\"long\",\"string\"]}},"
    "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"A\"}},"
    "{\"name\":\"n\",\"type\":[\"null\",\"A\"]}]}",
    /* 1: a wide union */
    "[\"null\",\"boolean\",\"int\",\"long\",\"float\",\"double\",\"bytes\",\"string\","
    "{\"type\":\"array\",\"items\":\"null\"},{\"type\":\"map\",\"values\":\"bytes\"}]",
    /* 2: writer of the resolution pair */
    "{\"type\":\"record\",\"name\":\"W\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},"
    "{\"name\":\"gone\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
    "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"X\",\"Y\",\"Z\"]}},"
    "{\"name\":\"u\",\"type\":[\"null\",\"int\",\"string\"]},{\"name\":\"s\",\"type\":\"string\"}]"
    "}",
    /* 3: reader of the resolution pair */
    "{\"type\":\"record\",\"name\":\"R\",\"aliases\":[\"W\"],\"fields\":["
    "{\"name\":\"s2\",\"type\":\"bytes\",\"aliases\":[\"s\"]},{\"name\":\"a\",\"type\":\"double\"},"
    "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"X\"],"
    "\"default\":\"X\"}},{\"name\":\"u\",\"type\":[\"null\",\"long\",\"string\"]},"
    "{\"name\":\"add\",\"type\":{\"type\":\"map\",\"values\":\"float\"},\"default\":{\"k\":1}}]}",
};
#define NSCHEMAS (sizeof schema_texts / sizeof *schema_texts)

static ms_avro_schema *schemas[NSCHEMAS];

static void load_schemas(void)
{
    if (schemas[0]) return;
    for (size_t i = 0; i < NSCHEMAS; i++) {
        ms_error err;
        if (ms_avro_schema_parse(schema_texts[i], strlen(schema_texts[i]), &schemas[i], &err))
            abort();
    }
}

/* Decodes data with writer (and reader); on success checks the encode/decode round trip. */
static void try_decode(const ms_avro_schema *w, const ms_avro_schema *r, const uint8_t *data,
                       size_t size)
{
    json_object *v = NULL;
    ms_error err;
    ms_err rc = ms_avro_decode(w, r, data, size, &v, &err);
    if (rc != MS_OK) {
        if (v || err.code != rc || err.offset < 0 || (size_t)err.offset > size) abort();
        return;
    }
    const ms_avro_schema *as = r ? r : w;
    ms_buf enc = MS_BUF_INIT, t1 = MS_BUF_INIT, t2 = MS_BUF_INIT;
    if (ms_avro_encode(as, v, &enc, &err) != MS_OK) abort();
    json_object *v2 = NULL;
    if (ms_avro_decode(as, NULL, (const uint8_t *)enc.data, enc.len, &v2, &err) != MS_OK) abort();
    ms_json_canonical(v, &t1);
    ms_json_canonical(v2, &t2);
    if (t1.len != t2.len || memcmp(t1.data, t2.data, t1.len) != 0) abort();
    ms_buf_free(&enc);
    ms_buf_free(&t1);
    ms_buf_free(&t2);
    json_object_put(v);
    json_object_put(v2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load_schemas();
    uint32_t id = 0;
    const uint8_t *datum = NULL;
    size_t dlen = 0;
    ms_error err;
    if (ms_avro_frame_parse(data, size, &id, &datum, &dlen, &err) == MS_OK) {
        if (dlen != size - MS_AVRO_FRAME_HEADER) abort();
        try_decode(schemas[id % 3 == 2 ? 2 : id % 2], id % 3 == 2 ? schemas[3] : NULL, datum, dlen);
    }
    try_decode(schemas[0], NULL, data, size);
    try_decode(schemas[1], NULL, data, size);
    try_decode(schemas[2], NULL, data, size);
    try_decode(schemas[2], schemas[3], data, size);
    return 0;
}
