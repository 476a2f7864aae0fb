/*
 * test_json.c — unit tests of ms_json: strict parsing (errors, positions, nesting, UTF-8, the
 * json-c laxities we reject), canonical text (key order, exact integers, doubles, escaping),
 * RFC 7396 merge patch (the RFC's own examples), positions and diff paths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ms_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses s (all of it) and returns the error code; *obj receives the value when not NULL. */
static ms_err parse_s(const char *s, ms_error *err, struct json_object **obj)
{
    struct json_object *o = ms_json_parse(s, strlen(s), 0, NULL, err);
    if (obj)
        *obj = o;
    else
        json_object_put(o);
    return err->code;
}

/* Asserts that parsing s fails with code at line/column/offset. */
static void expect_parse_error(const char *s, ms_err code, long line, long col, long off)
{
    ms_error err;
    struct json_object *o = ms_json_parse(s, strlen(s), 0, NULL, &err);
    if (err.code != code || err.line != line || err.column != col || err.offset != off)
        print_error("input %s: got %s '%s' at %ld:%ld (%ld)\n", s, ms_err_code(err.code),
                    err.detail, err.line, err.column, err.offset);
    assert_null(o);
    assert_int_equal(err.code, code);
    assert_int_equal(err.line, line);
    assert_int_equal(err.column, col);
    assert_int_equal(err.offset, off);
    assert_true(err.detail[0] != '\0');
}

/* Returns the canonical text of the JSON s (caller frees). */
static char *canon(const char *s)
{
    ms_error err;
    struct json_object *o = ms_json_parse(s, strlen(s), 0, NULL, &err);
    if (err.code != MS_OK) print_error("parse of %s failed: %s\n", s, err.detail);
    assert_int_equal(err.code, MS_OK);
    ms_buf b = MS_BUF_INIT;
    ms_json_canonical(o, &b);
    json_object_put(o);
    return ms_buf_steal(&b);
}

static void assert_canon(const char *in, const char *want)
{
    char *got = canon(in);
    assert_string_equal(got, want);
    free(got);
}

static void test_parse_valid(void **state)
{
    (void)state;
    ms_error err;
    struct json_object *o = NULL;
    assert_int_equal(parse_s("  {\"a\": [1, 2, {\"b\": null}]}  \r\n", &err, &o), MS_OK);
    assert_true(json_object_is_type(o, json_type_object));
    json_object_put(o);

    /* JSON null comes back as NULL with MS_OK. */
    assert_int_equal(parse_s("null", &err, &o), MS_OK);
    assert_null(o);

    /* Top-level scalars are complete at the end of the input. */
    assert_int_equal(parse_s("123", &err, &o), MS_OK);
    assert_int_equal(json_object_get_int64(o), 123);
    json_object_put(o);
    assert_int_equal(parse_s("-1.5e3", &err, &o), MS_OK);
    json_object_put(o);
    assert_int_equal(parse_s("true", &err, &o), MS_OK);
    assert_true(json_object_get_boolean(o));
    json_object_put(o);
    assert_int_equal(parse_s("\"x\"", &err, &o), MS_OK);
    assert_string_equal(json_object_get_string(o), "x");
    json_object_put(o);
    assert_int_equal(parse_s("\"\\ud83d\\ude00\"", &err, &o), MS_OK); /* a surrogate pair */
    assert_string_equal(json_object_get_string(o), "\xf0\x9f\x98\x80");
    json_object_put(o);
    assert_int_equal(parse_s("{\"\xc3\xa9\":\"\xe2\x82\xac\"}", &err, &o), MS_OK);
    json_object_put(o);
}

static void test_parse_end(void **state)
{
    (void)state;
    ms_error err;
    const char *s = "{\"a\":1} ,{\"b\":2}";
    size_t end = 0;
    struct json_object *o = ms_json_parse(s, strlen(s), 0, &end, &err);
    assert_int_equal(err.code, MS_OK);
    assert_non_null(o);
    assert_true(end >= 7 && end <= 8);
    assert_int_equal(s[end == 7 ? 8 : end], ',');
    json_object_put(o);

    s = "12,3";
    o = ms_json_parse(s, strlen(s), 0, &end, &err);
    assert_int_equal(err.code, MS_OK);
    assert_int_equal(end, 2);
    assert_int_equal(json_object_get_int64(o), 12);
    json_object_put(o);

    /* Without end, trailing content is an error at its offset. */
    expect_parse_error("{\"a\":1} x", MS_ERR_MALFORMED_JSON, 1, 9, 8);
    expect_parse_error("{\"a\":1}\n\n  {", MS_ERR_MALFORMED_JSON, 3, 3, 11);
}

static void test_parse_errors_positions(void **state)
{
    (void)state;
    expect_parse_error("", MS_ERR_MALFORMED_JSON, 1, 1, 0);
    expect_parse_error("   ", MS_ERR_MALFORMED_JSON, 1, 4, 3);
    /* Incomplete input: unexpected end at the end offset. */
    expect_parse_error("{\"a\":1", MS_ERR_MALFORMED_JSON, 1, 7, 6);
    expect_parse_error("{\"a\":\n  [1,\n   2", MS_ERR_MALFORMED_JSON, 3, 5, 16);
    expect_parse_error("{\"a\":\"abc", MS_ERR_MALFORMED_JSON, 1, 10, 9);
    /* Syntax errors on later lines. */
    expect_parse_error("{\n  \"a\": 1,\n  \"b\": tru\n}", MS_ERR_MALFORMED_JSON, 3, 11, 22);
    expect_parse_error("{\"a\":1,}", MS_ERR_MALFORMED_JSON, 1, 8, 7);
    expect_parse_error("[1 2]", MS_ERR_MALFORMED_JSON, 1, 4, 3);
    expect_parse_error("{\"a\" 1}", MS_ERR_MALFORMED_JSON, 1, 6, 5);
    expect_parse_error("{\"a\":01}", MS_ERR_MALFORMED_JSON, 1, 6, 5);
    expect_parse_error("[-012]", MS_ERR_MALFORMED_JSON, 1, 2, 1);
    expect_parse_error("\"\\x\"", MS_ERR_MALFORMED_JSON, 1, 3, 2);
    /* The detail carries json-c's description. */
    ms_error err;
    parse_s("[1,]", &err, NULL);
    assert_int_equal(err.code, MS_ERR_MALFORMED_JSON);
    assert_non_null(strstr(err.detail, "unexpected character"));
    parse_s("{\"a\":1", &err, NULL);
    assert_string_equal(err.detail, "unexpected end of input");
}

/* What json-c's strict mode lets through and MetaSync does not. */
static void test_parse_laxities_rejected(void **state)
{
    (void)state;
    expect_parse_error("{\"a\":NaN}", MS_ERR_MALFORMED_JSON, 1, 6, 5);
    expect_parse_error("{\"a\":Infinity}", MS_ERR_MALFORMED_JSON, 1, 6, 5);
    expect_parse_error("{\"a\":-Infinity}", MS_ERR_MALFORMED_JSON, 1, 6, 5);
    expect_parse_error("-Infinity", MS_ERR_MALFORMED_JSON, 1, 1, 0);
    expect_parse_error("{\"a\":1.}", MS_ERR_MALFORMED_JSON, 1, 6, 5);
    expect_parse_error("1.", MS_ERR_MALFORMED_JSON, 1, 3, 2); /* ends inside the number */
    expect_parse_error("{\"a\":1e}", MS_ERR_MALFORMED_JSON, 1, 8, 7);
    expect_parse_error("{'a':1}", MS_ERR_MALFORMED_JSON, 1, 2, 1);
    expect_parse_error("{\"a\":\"x\ty\"}", MS_ERR_MALFORMED_JSON, 1, 8, 7);
    expect_parse_error("{\"a\":\v1}", MS_ERR_MALFORMED_JSON, 1, 6, 5);
    expect_parse_error("\xef\xbb\xbf{}", MS_ERR_MALFORMED_JSON, 1, 1, 0); /* BOM */
    expect_parse_error("{\"a\\u0000b\":1}", MS_ERR_MALFORMED_JSON, 1, 2, 1);
    /* Integers outside the 64-bit range would be clamped by json-c. */
    expect_parse_error("{\"a\":18446744073709551616}", MS_ERR_MALFORMED_JSON, 1, 6, 5);
    expect_parse_error("{\"a\":-9223372036854775809}", MS_ERR_MALFORMED_JSON, 1, 6, 5);
    expect_parse_error("{\"a\":100000000000000000000}", MS_ERR_MALFORMED_JSON, 1, 6, 5);
    /* Unpaired surrogate escapes would become U+FFFD. */
    expect_parse_error("{\"a\":\"\\ud800\"}", MS_ERR_INVALID_UTF8, 1, 7, 6);
    expect_parse_error("{\"a\":\"\\udc00\"}", MS_ERR_INVALID_UTF8, 1, 7, 6);
    expect_parse_error("{\"a\":\"\\ud800\\u0041\"}", MS_ERR_INVALID_UTF8, 1, 7, 6);
    /* A \u0000 in a value is fine. */
    ms_error err;
    struct json_object *o = NULL;
    assert_int_equal(parse_s("{\"a\":\"x\\u0000y\"}", &err, &o), MS_OK);
    struct json_object *a = json_object_object_get(o, "a");
    assert_int_equal(json_object_get_string_len(a), 3);
    json_object_put(o);
    /* Limits that still fit. */
    assert_int_equal(parse_s("[18446744073709551615,-9223372036854775808,1e400,-0]", &err, &o),
                     MS_OK);
    json_object_put(o);
}

static void test_parse_nul(void **state)
{
    (void)state;
    ms_error err;
    const char in1[] = "{\"a\":\"x\0y\"}";
    struct json_object *o = ms_json_parse(in1, sizeof in1 - 1, 0, NULL, &err);
    assert_null(o);
    assert_int_equal(err.code, MS_ERR_MALFORMED_JSON);
    assert_int_equal(err.offset, 7);
    assert_non_null(strstr(err.detail, "NUL"));

    const char in2[] = "{\"a\":1}\0";
    o = ms_json_parse(in2, sizeof in2 - 1, 0, NULL, &err);
    assert_null(o);
    assert_int_equal(err.code, MS_ERR_MALFORMED_JSON);
    assert_int_equal(err.offset, 7);

    const char in3[] = "[1,\0 2]";
    o = ms_json_parse(in3, sizeof in3 - 1, 0, NULL, &err);
    assert_null(o);
    assert_int_equal(err.code, MS_ERR_MALFORMED_JSON);
    assert_int_equal(err.offset, 3);

    const char in4[] = "{\"a\":\"x\0";
    o = ms_json_parse(in4, sizeof in4 - 1, 0, NULL, &err);
    assert_null(o);
    assert_int_equal(err.code, MS_ERR_MALFORMED_JSON);
    assert_int_equal(err.offset, 7);
}

static void test_parse_depth(void **state)
{
    (void)state;
    ms_error err;
    size_t n = 10000;
    char *s = malloc(2 * n + 2);
    memset(s, '[', n);
    memset(s + n, ']', n);
    s[2 * n] = '\0';
    struct json_object *o = ms_json_parse(s, 2 * n, 0, NULL, &err);
    assert_null(o);
    assert_int_equal(err.code, MS_ERR_TOO_DEEP);
    assert_int_equal(err.line, 1);
    assert_int_equal(err.offset, 64); /* the 65th '[' */
    assert_int_equal(err.column, 65);
    assert_string_equal(err.detail, "nesting is deeper than 64 levels");

    /* Unclosed deep nesting is also too deep (not "unexpected end"). */
    o = ms_json_parse(s, n, 0, NULL, &err);
    assert_null(o);
    assert_int_equal(err.code, MS_ERR_TOO_DEEP);

    /* Exactly 64 levels (with a scalar inside) pass; 65 do not. */
    char buf[300];
    memset(buf, '[', 64);
    buf[64] = '1';
    memset(buf + 65, ']', 64);
    o = ms_json_parse(buf, 129, 0, NULL, &err);
    assert_int_equal(err.code, MS_OK);
    json_object_put(o);
    memset(buf, '[', 65);
    buf[65] = '1';
    memset(buf + 66, ']', 65);
    o = ms_json_parse(buf, 131, 0, NULL, &err);
    assert_int_equal(err.code, MS_ERR_TOO_DEEP);
    memset(buf, '[', 65);
    memset(buf + 65, ']', 65);
    o = ms_json_parse(buf, 130, 0, NULL, &err);
    assert_int_equal(err.code, MS_ERR_TOO_DEEP);

    /* A custom limit; objects count like arrays. */
    const char *t = "{\"a\":{\"b\":{\"c\":1}}}";
    o = ms_json_parse(t, strlen(t), 3, NULL, &err);
    assert_int_equal(err.code, MS_OK);
    json_object_put(o);
    o = ms_json_parse(t, strlen(t), 2, NULL, &err);
    assert_int_equal(err.code, MS_ERR_TOO_DEEP);
    assert_int_equal(err.offset, 10);
    free(s);
}

static void test_parse_utf8(void **state)
{
    (void)state;
    expect_parse_error("{\"a\":\"\xff\"}", MS_ERR_INVALID_UTF8, 1, 7, 6);
    expect_parse_error("{\"a\":\"ok\xc0\x80\"}", MS_ERR_INVALID_UTF8, 1, 9, 8);   /* overlong */
    expect_parse_error("{\"a\":\"\xed\xa0\x80\"}", MS_ERR_INVALID_UTF8, 1, 7, 6); /* surrogate */
    expect_parse_error("{\"a\":\"\xf4\x90\x80\x80\"}", MS_ERR_INVALID_UTF8, 1, 7, 6); /* > 10FFFF */
    expect_parse_error("{\"a\":\"\xe2\x82\"}", MS_ERR_INVALID_UTF8, 1, 7, 6); /* truncated */
    expect_parse_error("{\"\x80\":1}", MS_ERR_INVALID_UTF8, 1, 3, 2);
    expect_parse_error("{\"a\":1,\n\"b\":\"\xfe\"}", MS_ERR_INVALID_UTF8, 2, 6, 13);
    expect_parse_error("\"\xe2\x82", MS_ERR_INVALID_UTF8, 1, 2, 1); /* the text ends inside it */
    expect_parse_error("[\"\xe2\x82\"]", MS_ERR_INVALID_UTF8, 1, 3, 2);
    expect_parse_error("{\xff}", MS_ERR_INVALID_UTF8, 1, 2, 1);
}

static void test_position(void **state)
{
    (void)state;
    const char *t = "ab\ncd\n\nef";
    long line, col;
    ms_json_position(t, strlen(t), 0, &line, &col);
    assert_int_equal(line, 1);
    assert_int_equal(col, 1);
    ms_json_position(t, strlen(t), 2, &line, &col);
    assert_int_equal(line, 1);
    assert_int_equal(col, 3);
    ms_json_position(t, strlen(t), 3, &line, &col);
    assert_int_equal(line, 2);
    assert_int_equal(col, 1);
    ms_json_position(t, strlen(t), 7, &line, &col);
    assert_int_equal(line, 4);
    assert_int_equal(col, 1);
    ms_json_position(t, strlen(t), 9, &line, &col);
    assert_int_equal(line, 4);
    assert_int_equal(col, 3);
    ms_json_position(t, strlen(t), 99, &line, &col); /* clamped to the end */
    assert_int_equal(line, 4);
    assert_int_equal(col, 3);
}

static void test_canonical_sorting(void **state)
{
    (void)state;
    assert_canon("{ \"b\" : 1 , \"a\" : { \"d\" : [ 3 , { \"z\":1, \"y\":2 } ], \"c\" : true } }",
                 "{\"a\":{\"c\":true,\"d\":[3,{\"y\":2,\"z\":1}]},\"b\":1}");
    /* Bytewise: upper case before lower case, ASCII before multi-byte, prefix first. */
    assert_canon("{\"\xc3\xa9\":1,\"a\":2,\"B\":3,\"ab\":4,\"\":5}",
                 "{\"\":5,\"B\":3,\"a\":2,\"ab\":4,\"\xc3\xa9\":1}");
    /* Many keys (heap path of the sorter). */
    assert_canon(
        "{\"k9\":9,\"k8\":8,\"k7\":7,\"k6\":6,\"k5\":5,\"k4\":4,\"k3\":3,\"k2\":2,\"k1\":1,"
        "\"k0\":0,\"kj\":10,\"ki\":11,\"kh\":12,\"kg\":13,\"kf\":14,\"ke\":15,\"kd\":16,"
        "\"kc\":17,\"kb\":18,\"ka\":19}",
        "{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,"
        "\"k9\":9,\"ka\":19,\"kb\":18,\"kc\":17,\"kd\":16,\"ke\":15,\"kf\":14,\"kg\":13,"
        "\"kh\":12,\"ki\":11,\"kj\":10}");
    assert_canon("{}", "{}");
    assert_canon("[]", "[]");
    assert_canon("[ {} , [ ] , null , false ]", "[{},[],null,false]");
    assert_canon("null", "null");
    /* Duplicate keys: the last one wins (json-c). */
    assert_canon("{\"a\":1,\"a\":2}", "{\"a\":2}");
    ms_buf b = MS_BUF_INIT;
    ms_json_canonical(NULL, &b);
    assert_string_equal(ms_buf_cstr(&b), "null");
    ms_buf_free(&b);
}

static void test_canonical_numbers(void **state)
{
    (void)state;
    assert_canon("{\"a\":9007199254740993}", "{\"a\":9007199254740993}");
    assert_canon("{\"a\":9223372036854775807}", "{\"a\":9223372036854775807}");
    assert_canon("{\"a\":-9223372036854775808}", "{\"a\":-9223372036854775808}");
    assert_canon("{\"a\":9223372036854775808}", "{\"a\":9223372036854775808}");
    assert_canon("{\"a\":18446744073709551615}", "{\"a\":18446744073709551615}");
    assert_canon("[0,-0,-1,12345678901234567]", "[0,0,-1,12345678901234567]");
    /* Parsed doubles keep their text. */
    assert_canon("[1.50,1e400,1.0E+2,-0.0,0.1,5e-324]", "[1.50,1e400,1.0E+2,-0.0,0.1,5e-324]");
}

static void test_canonical_strings(void **state)
{
    (void)state;
    assert_canon("\"a\\\"b\\\\c\\/d\\n\\t\\u0001\\u001f\"",
                 "\"a\\\"b\\\\c/d\\n\\t\\u0001\\u001f\"");
    assert_canon("\"x\\u0000y\"", "\"x\\u0000y\"");
    assert_canon("\"\\u00e9\\u20ac\\ud83d\\ude00\"", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    assert_canon("{\"k\\n\":\"\x7f\"}", "{\"k\\n\":\"\x7f\"}");
}

/* Applies patch to target (texts; "-" means NULL target) and compares with want. */
static void check_merge(const char *target, const char *patch, const char *want)
{
    ms_error err;
    struct json_object *t = NULL, *p, *w;
    if (strcmp(target, "-") != 0) {
        t = ms_json_parse(target, strlen(target), 0, NULL, &err);
        assert_int_equal(err.code, MS_OK);
    }
    p = ms_json_parse(patch, strlen(patch), 0, NULL, &err);
    assert_int_equal(err.code, MS_OK);
    w = ms_json_parse(want, strlen(want), 0, NULL, &err);
    assert_int_equal(err.code, MS_OK);

    ms_buf bt = MS_BUF_INIT, bp = MS_BUF_INIT;
    ms_json_canonical(t, &bt);
    ms_json_canonical(p, &bp);

    struct json_object *r = ms_json_merge_patch(t, p);
    ms_buf br = MS_BUF_INIT, bw = MS_BUF_INIT, bt2 = MS_BUF_INIT, bp2 = MS_BUF_INIT;
    ms_json_canonical(r, &br);
    ms_json_canonical(w, &bw);
    if (strcmp(ms_buf_cstr(&br), ms_buf_cstr(&bw)) != 0)
        print_error("merge %s + %s: got %s want %s\n", target, patch, ms_buf_cstr(&br),
                    ms_buf_cstr(&bw));
    assert_string_equal(ms_buf_cstr(&br), ms_buf_cstr(&bw));
    /* Neither argument changed, and the result shares nothing with them. */
    ms_json_canonical(t, &bt2);
    ms_json_canonical(p, &bp2);
    assert_string_equal(ms_buf_cstr(&bt), ms_buf_cstr(&bt2));
    assert_string_equal(ms_buf_cstr(&bp), ms_buf_cstr(&bp2));
    if (r) assert_true(r != t && r != p);
    json_object_put(t);
    json_object_put(p);
    json_object_put(w);
    ms_buf_reset(&br);
    ms_json_canonical(r, &br);
    assert_string_equal(ms_buf_cstr(&br), ms_buf_cstr(&bw));
    json_object_put(r);
    ms_buf_free(&bt);
    ms_buf_free(&bp);
    ms_buf_free(&br);
    ms_buf_free(&bw);
    ms_buf_free(&bt2);
    ms_buf_free(&bp2);
}

static void test_merge_patch_rfc7396(void **state)
{
    (void)state;
    /* RFC 7396 appendix A. */
    check_merge("{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
    check_merge("{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}");
    check_merge("{\"a\":\"b\"}", "{\"a\":null}", "{}");
    check_merge("{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}");
    check_merge("{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
    check_merge("{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}");
    check_merge("{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}",
                "{\"a\":{\"b\":\"d\"}}");
    check_merge("{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}");
    check_merge("[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]");
    check_merge("{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]");
    check_merge("{\"a\":\"foo\"}", "null", "null");
    check_merge("{\"a\":\"foo\"}", "\"bar\"", "\"bar\"");
    check_merge("{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}");
    check_merge("[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}");
    check_merge("{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}");
    /* RFC 7396 section 3. */
    check_merge(
        "{\"title\":\"Goodbye!\",\"author\":{\"givenName\":\"John\",\"familyName\":\"Doe\"},"
        "\"tags\":[\"example\",\"sample\"],\"content\":\"This will be unchanged\"}",
        "{\"title\":\"Hello!\",\"phoneNumber\":\"+01-123-456-7890\",\"author\":"
        "{\"familyName\":null},\"tags\":[\"example\"]}",
        "{\"title\":\"Hello!\",\"author\":{\"givenName\":\"John\"},\"tags\":[\"example\"],"
        "\"content\":\"This will be unchanged\",\"phoneNumber\":\"+01-123-456-7890\"}");
    /* Absent target; exact numbers survive. */
    check_merge("-", "{\"a\":{\"b\":null,\"c\":9223372036854775807}}",
                "{\"a\":{\"c\":9223372036854775807}}");
    check_merge("{\"n\":1.50,\"m\":18446744073709551615}", "{\"x\":2}",
                "{\"m\":18446744073709551615,\"n\":1.50,\"x\":2}");
    check_merge("-", "null", "null");
    check_merge("-", "[1]", "[1]");
}

static void test_diff_paths(void **state)
{
    (void)state;
    ms_error err;
    const char *as = "{\"a\":1,\"b\":{\"c\":1,\"d\":2},\"e\":[1],\"f\":\"x\",\"g\":{\"h\":1}}";
    const char *bs = "{\"a\":1,\"b\":{\"c\":1,\"d\":3,\"z\":0},\"e\":[2],\"g\":5,\"i\":null}";
    struct json_object *a = ms_json_parse(as, strlen(as), 0, NULL, &err);
    struct json_object *b = ms_json_parse(bs, strlen(bs), 0, NULL, &err);
    ms_buf out = MS_BUF_INIT;
    size_t n = ms_json_diff_paths(a, b, "attributes", &out, 0);
    assert_int_equal(n, 6);
    assert_string_equal(ms_buf_cstr(&out),
                        "\"attributes.b.d\",\"attributes.b.z\",\"attributes.e\",\"attributes.f\","
                        "\"attributes.g\",\"attributes.i\"");
    /* Identical: nothing. */
    ms_buf_reset(&out);
    assert_int_equal(ms_json_diff_paths(a, a, "attributes", &out, 0), 0);
    assert_string_equal(ms_buf_cstr(&out), "");
    /* NULL is {}; already > 0 puts a comma first. */
    ms_buf_puts(&out, "\"x\"");
    n = ms_json_diff_paths(NULL, a, "attributes", &out, 1);
    assert_int_equal(n, 5);
    assert_string_equal(ms_buf_cstr(&out),
                        "\"x\",\"attributes.a\",\"attributes.b\",\"attributes.e\",\"attributes.f\","
                        "\"attributes.g\"");
    ms_buf_reset(&out);
    assert_int_equal(ms_json_diff_paths(NULL, NULL, "attributes", &out, 0), 0);
    /* Exact integers and number text are compared exactly; no prefix. */
    const char *cs = "{\"n\":9007199254740993,\"m\":1.5}";
    const char *ds = "{\"n\":9007199254740992,\"m\":1.50}";
    struct json_object *c = ms_json_parse(cs, strlen(cs), 0, NULL, &err);
    struct json_object *d = ms_json_parse(ds, strlen(ds), 0, NULL, &err);
    ms_buf_reset(&out);
    assert_int_equal(ms_json_diff_paths(c, d, NULL, &out, 0), 2);
    assert_string_equal(ms_buf_cstr(&out), "\"m\",\"n\"");
    json_object_put(a);
    json_object_put(b);
    json_object_put(c);
    json_object_put(d);
    ms_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_end),
        cmocka_unit_test(test_parse_errors_positions),
        cmocka_unit_test(test_parse_laxities_rejected),
        cmocka_unit_test(test_parse_nul),
        cmocka_unit_test(test_parse_depth),
        cmocka_unit_test(test_parse_utf8),
        cmocka_unit_test(test_position),
        cmocka_unit_test(test_canonical_sorting),
        cmocka_unit_test(test_canonical_numbers),
        cmocka_unit_test(test_canonical_strings),
        cmocka_unit_test(test_merge_patch_rfc7396),
        cmocka_unit_test(test_diff_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
