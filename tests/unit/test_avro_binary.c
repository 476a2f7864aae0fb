/*
 * test_avro_binary.c — unit tests of Avro binary decoding and encoding (ms_avro.h): hand-made
 * datums of every type, resolution to a reader (defaults, promotions, aliases, enum default,
 * unions on either side), round trips, Confluent framing, and a catalogue of bad datums (each
 * truncation point, varint overflow, negative and huge lengths, union index, UTF-8, trailing
 * bytes, depth bomb) each with its error code, detail and byte offset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ms_avro.h"
#include "ms_test_avro.h"
#include "ms_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Canonical JSON text of v (caller frees). */
static char *jtext(json_object *v)
{
    ms_buf b = MS_BUF_INIT;
    ms_json_canonical(v, &b);
    return ms_buf_steal(&b);
}

/* Decodes bytes with writer (and reader, may be NULL) and asserts the canonical JSON. */
static void expect_decode(const char *wtext, const char *rtext, const void *bytes, size_t n,
                          const char *want)
{
    ms_avro_schema *w = ms_test_avro_schema(wtext), *r = rtext ? ms_test_avro_schema(rtext) : NULL;
    json_object *v = NULL;
    ms_error err;
    ms_err rc = ms_avro_decode(w, r, bytes, n, &v, &err);
    if (rc != MS_OK) print_error("decode: %s\n", err.detail);
    assert_int_equal(rc, MS_OK);
    char *got = jtext(v);
    if (strcmp(got, want) != 0) print_error("got %s want %s\n", got, want);
    assert_string_equal(got, want);
    free(got);
    json_object_put(v);
    ms_avro_schema_free(w);
    ms_avro_schema_free(r);
}

/* Decoding must fail with code, a detail containing want, at byte offset off. */
static void expect_decode_error(const char *wtext, const char *rtext, const void *bytes, size_t n,
                                ms_err code, const char *want, long off)
{
    ms_avro_schema *w = ms_test_avro_schema(wtext), *r = rtext ? ms_test_avro_schema(rtext) : NULL;
    json_object *v = (json_object *)1;
    ms_error err;
    ms_err rc = ms_avro_decode(w, r, bytes, n, &v, &err);
    if (rc != code || !strstr(err.detail, want) || err.offset != off)
        print_error("got %s '%s' at %ld; want '%s' at %ld\n", ms_err_code(rc), err.detail,
                    err.offset, want, off);
    assert_int_equal(rc, code);
    assert_null(v);
    assert_non_null(strstr(err.detail, want));
    assert_int_equal(err.offset, off);
    ms_avro_schema_free(w);
    ms_avro_schema_free(r);
}

static void test_decode_primitives(void **state)
{
    (void)state;
    expect_decode("\"null\"", NULL, "", 0, "null");
    expect_decode("\"boolean\"", NULL, "\x01", 1, "true");
    expect_decode("\"int\"", NULL, "\x7f", 1, "-64");
    expect_decode("\"int\"", NULL, "\xfe\xff\xff\xff\x0f", 5, "2147483647");
    expect_decode("\"long\"", NULL, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10,
                  "-9223372036854775808");
    expect_decode("\"long\"", NULL, "\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10,
                  "9223372036854775807");
    expect_decode("\"float\"", NULL, "\x00\x00\xc0\x3f", 4, "1.5");
    expect_decode("\"double\"", NULL, "\x00\x00\x00\x00\x00\x00\x04\xc0", 8, "-2.5");
    expect_decode("\"string\"", NULL, "\x0a\xc3\xa9t\xc3\xa9", 6, "\"\xc3\xa9t\xc3\xa9\"");
    expect_decode("\"bytes\"", NULL, "\x06\xff\x00\x41", 4, "\"\xc3\xbf\\u0000A\"");
    expect_decode("{\"type\":\"fixed\",\"name\":\"F\",\"size\":2}", NULL, "\x80\x01", 2,
                  "\"\xc2\x80\\u0001\"");
    expect_decode("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"]}", NULL, "\x02", 1,
                  "\"B\"");
    /* Arrays in several blocks, one with a negative count and a byte size. */
    expect_decode("{\"type\":\"array\",\"items\":\"int\"}", NULL, "\x04\x02\x04\x01\x02\x06\x00", 7,
                  "[1,2,3]");
    expect_decode("{\"type\":\"map\",\"values\":\"long\"}", NULL, "\x02\x02k\x02\x00", 5,
                  "{\"k\":1}");
    expect_decode("[\"null\",\"string\"]", NULL, "\x02\x02x", 3, "\"x\"");
    expect_decode(
        "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},"
        "{\"name\":\"n\",\"type\":[\"null\",\"R\"]}]}",
        NULL, "\x02\x02\x04\x00", 4, "{\"a\":1,\"n\":{\"a\":2,\"n\":null}}");
}

static void test_decode_resolution(void **state)
{
    (void)state;
    const char *w =
        "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},"
        "{\"name\":\"gone\",\"type\":\"string\"},"
        "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"X\","
        "\"Y\",\"Z\"]}},{\"name\":\"u\",\"type\":[\"null\",\"int\"]},"
        "{\"name\":\"old\",\"type\":\"string\"}]}";
    const char *r = "{\"type\":\"record\",\"name\":\"S\",\"aliases\":[\"R\"],\"fields\":["
                    "{\"name\":\"new\",\"type\":\"bytes\",\"aliases\":[\"old\"]},"
                    "{\"name\":\"a\",\"type\":\"double\"},"
                    "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"X\","
                    "\"Y\"],\"default\":\"X\"}},"
                    "{\"name\":\"u\",\"type\":[\"null\",\"long\",\"float\"]},"
                    "{\"name\":\"d\",\"type\":{\"type\":\"map\",\"values\":\"float\"},"
                    "\"default\":{\"k\":2}},"
                    "{\"name\":\"f\",\"type\":[\"null\",\"int\"],\"default\":null}]}";
    /* a=3, gone="zz", e=Z(2), u=branch 1 int 7, old="hi" */
    expect_decode(w, r, "\x06\x04zz\x04\x02\x0e\x04hi", 10,
                  "{\"a\":3.0,\"d\":{\"k\":2.0},\"e\":\"X\",\"f\":null,\"new\":\"hi\",\"u\":7}");
    /* A bytes default is code points U+0000..U+00FF, one byte each (not the UTF-8 of them). */
    expect_decode("{\"type\":\"record\",\"name\":\"R\",\"fields\":[]}",
                  "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"b\",\"type\":"
                  "\"bytes\",\"default\":\"\\u00ff\"}]}",
                  "", 0, "{\"b\":\"\xc3\xbf\"}");
    /* Matching is reader-driven: reader field b takes writer field b by name even though its
     * alias names writer field a, which comes first; a is then skipped. */
    expect_decode("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
                  "\"int\"},{\"name\":\"b\",\"type\":\"int\"}]}",
                  "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"b\",\"type\":"
                  "\"int\",\"aliases\":[\"a\"]}]}",
                  "\x02\x04", 2, "{\"b\":2}");
    /* A reader union prefers the branch of the writer's own full name over one that aliases it. */
    expect_decode("{\"type\":\"record\",\"name\":\"X\",\"fields\":[{\"name\":\"a\",\"type\":"
                  "\"int\"}]}",
                  "[{\"type\":\"record\",\"name\":\"Y\",\"aliases\":[\"X\"],\"fields\":[{\"name\":"
                  "\"a\",\"type\":\"long\"},{\"name\":\"y\",\"type\":\"int\",\"default\":1}]},"
                  "{\"type\":\"record\",\"name\":\"X\",\"fields\":[{\"name\":\"a\",\"type\":"
                  "\"int\"}]}]",
                  "\x04", 1, "{\"a\":2}");
    /* Writer union read by a non-union reader, and the other way round. */
    expect_decode("[\"int\",\"long\"]", "\"long\"", "\x00\x04", 2, "2");
    expect_decode("\"int\"", "[\"null\",\"string\",\"double\"]", "\x04", 1, "2.0");
    expect_decode("\"string\"", "\"bytes\"", "\x04\xc3\xa9", 3, "\"\xc3\x83\xc2\xa9\"");
    /* Incompatible: reader field without default; enum symbol without reader default. */
    expect_decode_error("{\"type\":\"record\",\"name\":\"R\",\"fields\":[]}",
                        "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"x\",\"type\":"
                        "\"int\"}]}",
                        "", 0, MS_ERR_INCOMPATIBLE_SCHEMA, "reader field 'x'", 0);
    expect_decode_error("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"]}",
                        "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"]}", "\x02", 1,
                        MS_ERR_INCOMPATIBLE_SCHEMA, "symbol 'B' is not in the reader enum", 1);
    expect_decode_error("[\"null\",\"string\"]", "\"string\"", "\x00", 1,
                        MS_ERR_INCOMPATIBLE_SCHEMA, "reader string cannot read writer null", 1);
}

static void test_bad_datums(void **state)
{
    (void)state;
    const char *rec = "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
                      "\"long\"},{\"name\":\"s\",\"type\":\"string\"},{\"name\":\"m\",\"type\":"
                      "{\"type\":\"map\",\"values\":{\"type\":\"array\",\"items\":\"double\"}}}]}";
    const char good[] = "\x80\x01\x06"
                        "abc"
                        "\x02\x02k\x02\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00";
    size_t n = sizeof good - 1;
    expect_decode(rec, NULL, good, n, "{\"a\":64,\"m\":{\"k\":[1.0]},\"s\":\"abc\"}");
    /* Every truncation fails cleanly with avro_decode_failed. */
    ms_avro_schema *s = ms_test_avro_schema(rec);
    for (size_t cut = 0; cut < n; cut++) {
        json_object *v = NULL;
        ms_error err;
        assert_int_equal(ms_avro_decode(s, NULL, (const uint8_t *)good, cut, &v, &err),
                         MS_ERR_AVRO_DECODE);
        assert_null(v);
        assert_true(err.offset >= 0 && (size_t)err.offset <= cut);
    }
    ms_avro_schema_free(s);
    expect_decode_error("\"long\"", NULL, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10,
                        MS_ERR_AVRO_DECODE, "varint overflows 64 bits", 9);
    expect_decode_error("\"long\"", NULL, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11,
                        MS_ERR_AVRO_DECODE, "varint overflows 64 bits", 9);
    expect_decode_error("\"int\"", NULL, "\x80\x80\x80\x80\x10", 5, MS_ERR_AVRO_DECODE,
                        "does not fit 32 bits", 0);
    expect_decode_error("\"string\"", NULL, "\x01", 1, MS_ERR_AVRO_DECODE, "negative length -1", 0);
    expect_decode_error("\"bytes\"", NULL, "\xfe\xff\xff\xff\xff\xff\xff\xff\x7f", 9,
                        MS_ERR_AVRO_DECODE, "only 0 bytes left", 0);
    expect_decode_error("{\"type\":\"array\",\"items\":\"long\"}", NULL, "\xfe\xff\xff\xff\x0f", 5,
                        MS_ERR_AVRO_DECODE, "block of 2147483647 items but only 0 bytes left", 0);
    expect_decode_error("{\"type\":\"array\",\"items\":\"null\"}", NULL, "\xfe\xff\xff\xff\x0f", 5,
                        MS_ERR_AVRO_DECODE, "zero-width array items", 0);
    expect_decode_error("{\"type\":\"array\",\"items\":\"int\"}", NULL, "\x03\x7f\x02", 3,
                        MS_ERR_AVRO_DECODE, "bad block size", 0);
    expect_decode_error("[\"null\",\"int\"]", NULL, "\x04", 1, MS_ERR_AVRO_DECODE,
                        "union index 2 out of range (2 branches)", 0);
    expect_decode_error("[\"null\",\"int\"]", NULL, "\x01", 1, MS_ERR_AVRO_DECODE,
                        "union index -1 out of range", 0);
    expect_decode_error("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"]}", NULL, "\x02", 1,
                        MS_ERR_AVRO_DECODE, "enum index 1 out of range", 0);
    expect_decode_error("\"string\"", NULL, "\x06\x61\xc3\x28", 4, MS_ERR_AVRO_DECODE,
                        "string is not valid UTF-8", 2);
    expect_decode_error("\"string\"", NULL, "\x06\xed\xa0\x80", 4, MS_ERR_AVRO_DECODE,
                        "string is not valid UTF-8", 1);
    expect_decode_error("\"int\"", NULL, "\x02\x00", 2, MS_ERR_AVRO_DECODE,
                        "1 trailing bytes after the datum", 1);
    expect_decode_error("\"boolean\"", NULL, "\x02", 1, MS_ERR_AVRO_DECODE, "boolean byte is 2", 0);
    expect_decode_error("{\"type\":\"map\",\"values\":\"int\"}", NULL,
                        "\x02\x06"
                        "a\x00"
                        "b\x02\x00",
                        7, MS_ERR_AVRO_DECODE, "map key contains U+0000", 3);
    /* Depth bomb: a recursive record nested 100 deep. */
    ms_buf b = MS_BUF_INIT;
    for (int i = 0; i < 100; i++)
        ms_buf_putc(&b, 2);
    expect_decode_error("{\"type\":\"record\",\"name\":\"N\",\"fields\":[{\"name\":\"n\",\"type\":"
                        "[\"null\",\"N\"]}]}",
                        NULL, b.data, b.len, MS_ERR_AVRO_DECODE, "deeper than 64", 32);
    ms_buf_free(&b);
}

/* Encodes the JSON text with schema text and compares with the expected bytes, then decodes. */
static void expect_encode(const char *stext, const char *json, const void *bytes, size_t n)
{
    ms_avro_schema *s = ms_test_avro_schema(stext);
    ms_error err;
    json_object *v = ms_json_parse(json, strlen(json), 0, NULL, &err);
    assert_int_equal(err.code, MS_OK);
    ms_buf out = MS_BUF_INIT;
    ms_err rc = ms_avro_encode(s, v, &out, &err);
    if (rc) print_error("encode %s: %s\n", json, err.detail);
    assert_int_equal(rc, MS_OK);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, bytes, n);
    json_object *back = NULL;
    assert_int_equal(ms_avro_decode(s, NULL, (const uint8_t *)out.data, out.len, &back, &err),
                     MS_OK);
    char *a = jtext(back);
    ms_buf_free(&out);
    json_object_put(back);
    json_object_put(v);
    ms_avro_schema_free(s);
    free(a);
}

static void expect_encode_error(const char *stext, const char *json, const char *want)
{
    ms_avro_schema *s = ms_test_avro_schema(stext);
    ms_error err;
    json_object *v = ms_json_parse(json, strlen(json), 0, NULL, &err);
    ms_buf out = MS_BUF_INIT;
    ms_err rc = ms_avro_encode(s, v, &out, &err);
    if (rc != MS_ERR_INVALID_FIELD || !strstr(err.detail, want))
        print_error("got %s '%s', want '%s'\n", ms_err_code(rc), err.detail, want);
    assert_int_equal(rc, MS_ERR_INVALID_FIELD);
    assert_non_null(strstr(err.detail, want));
    ms_buf_free(&out);
    json_object_put(v);
    ms_avro_schema_free(s);
}

static void test_encode(void **state)
{
    (void)state;
    expect_encode("\"long\"", "-9223372036854775808", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
                  10);
    expect_encode("[\"null\",\"long\",\"string\"]", "\"x\"", "\x04\x02x", 3);
    expect_encode("[\"null\",\"long\",\"string\"]", "null", "\x00", 1);
    expect_encode("[\"int\",\"double\"]", "1.5", "\x02\x00\x00\x00\x00\x00\x00\xf8\x3f", 9);
    expect_encode("\"bytes\"", "\"\\u00ff\\u0000\"", "\x04\xff\x00", 3);
    /* Union choice: exact fits first, then any branch that takes the value. */
    expect_encode("[\"float\",\"long\"]", "3", "\x02\x06", 2);
    expect_encode("[\"float\",\"double\"]", "0.5", "\x00\x00\x00\x00\x3f", 5);
    expect_encode("[\"float\",\"double\"]", "0.1", "\x02\x9a\x99\x99\x99\x99\x99\xb9\x3f", 9);
    expect_encode("[\"null\",\"float\"]", "0.1", "\x02\xcd\xcc\xcc\x3d", 5);
    expect_encode("[\"null\",\"double\"]", "7", "\x02\x00\x00\x00\x00\x00\x00\x1c\x40", 9);
    expect_encode("{\"type\":\"array\",\"items\":\"int\"}", "[1,2]", "\x04\x02\x04\x00", 4);
    expect_encode("{\"type\":\"array\",\"items\":\"int\"}", "[]", "\x00", 1);
    expect_encode(
        "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\","
        "\"default\":5},{\"name\":\"b\",\"type\":\"boolean\"}]}",
        "{\"b\":true}", "\x0a\x01", 2);
    expect_encode_error("\"int\"", "2147483648", "/: integer does not fit 32 bits");
    expect_encode_error("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
                        "{\"type\":\"array\",\"items\":\"string\"}}]}",
                        "{\"a\":[\"x\",3]}", "/a/1: expected a string");
    expect_encode_error("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
                        "\"int\"}]}",
                        "{\"a\":1,\"zz\":2}", "/zz: no such field in the record");
    expect_encode_error("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
                        "\"int\"}]}",
                        "{}", "/a: missing field with no default");
    expect_encode_error("[\"null\",\"int\"]", "\"s\"", "the value fits no branch of the union");
    expect_encode_error("\"bytes\"", "\"\\u0100\"", "code points U+0000..U+00FF");
    expect_encode_error("{\"type\":\"fixed\",\"name\":\"F\",\"size\":3}", "\"ab\"",
                        "wrong number of bytes");
    expect_encode_error("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"]}", "\"B\"",
                        "expected a symbol of the enum");
}

static void test_frames(void **state)
{
    (void)state;
    ms_buf b = MS_BUF_INIT;
    ms_avro_frame_header(0x01020304, &b);
    ms_buf_append(&b, "\x02", 1);
    uint32_t id = 0;
    const uint8_t *d = NULL;
    size_t n = 0;
    ms_error err;
    assert_int_equal(ms_avro_frame_parse((const uint8_t *)b.data, b.len, &id, &d, &n, &err), MS_OK);
    assert_int_equal(id, 0x01020304);
    assert_int_equal(n, 1);
    assert_ptr_equal(d, (const uint8_t *)b.data + 5);
    assert_int_equal(ms_avro_frame_parse((const uint8_t *)b.data, 4, &id, &d, &n, &err),
                     MS_ERR_AVRO_DECODE);
    assert_non_null(strstr(err.detail, "shorter than the 5-byte header"));
    assert_int_equal(ms_avro_frame_parse((const uint8_t *)"{\"a\"", 4, &id, &d, &n, &err),
                     MS_ERR_BAD_MAGIC);
    assert_non_null(strstr(err.detail, "0x7b"));
    ms_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_primitives),
        cmocka_unit_test(test_decode_resolution),
        cmocka_unit_test(test_bad_datums),
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
