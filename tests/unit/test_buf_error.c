/*
 * test_buf_error.c — unit tests of ms_buf (growth, NUL termination, reset/steal/cstr, integer
 * output, the aborting allocators' NULL rules) and its JSON string escaping (quote, backslash,
 * short escapes, \u00XX for the other control characters incl. NUL, UTF-8 passed through
 * unchanged, every output parsing back to the input); and of ms_error (the table of wire codes,
 * HTTP statuses and retriable flags, round-trip through ms_err_from_code, out-of-range values,
 * and the error object: set, at, clear, truncation).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ms_buf.h"
#include "ms_error.h"
#include "ms_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ms_buf -----------------------------------------------------------------------------------
 */

static void test_buf_basics(void **state)
{
    (void)state;
    ms_buf b = MS_BUF_INIT;
    assert_string_equal(ms_buf_cstr(&b), "");
    ms_buf_puts(&b, "abc");
    ms_buf_putc(&b, 'd');
    ms_buf_append(&b, "efgh", 2);
    assert_int_equal(b.len, 6);
    assert_string_equal(b.data, "abcdef");
    assert_int_equal(b.data[b.len], '\0');
    assert_true(b.cap > b.len);

    size_t cap = b.cap;
    ms_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap); /* keeps its memory */
    assert_string_equal(ms_buf_cstr(&b), "");

    /* growth over many doublings keeps content and termination */
    for (int i = 0; i < 10000; i++)
        ms_buf_putc(&b, (char)('a' + i % 26));
    assert_int_equal(b.len, 10000);
    assert_int_equal(strlen(b.data), 10000);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(b.data[i], 'a' + i % 26);

    ms_buf_reserve(&b, 100000);
    assert_true(b.cap >= b.len + 100000 + 1);
    assert_int_equal(b.len, 10000);

    char *s = ms_buf_steal(&b);
    assert_int_equal(strlen(s), 10000);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    free(s);

    /* stealing an empty buffer gives "" the caller frees */
    s = ms_buf_steal(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);

    /* appending nothing still terminates */
    ms_buf_append(&b, NULL, 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    ms_buf_free(&b);
    assert_null(b.data);
    ms_buf_free(&b); /* twice is harmless */
}

static void test_buf_printf(void **state)
{
    (void)state;
    ms_buf b = MS_BUF_INIT;
    ms_buf_printf(&b, "%s=%d", "x", 42);
    assert_string_equal(b.data, "x=42");
    /* a result longer than the first reservation */
    char big[5000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ms_buf_printf(&b, "[%s]", big);
    assert_int_equal(b.len, 4 + 2 + 4999);
    assert_int_equal(b.data[4], '[');
    assert_int_equal(b.data[b.len - 1], ']');
    assert_int_equal(strlen(b.data), b.len);
    ms_buf_reset(&b);
    ms_buf_printf(&b, "%s", "");
    assert_int_equal(b.len, 0);
    assert_string_equal(ms_buf_cstr(&b), "");

    ms_buf_reset(&b);
    ms_buf_put_i64(&b, INT64_MIN);
    ms_buf_putc(&b, ' ');
    ms_buf_put_i64(&b, INT64_MAX);
    ms_buf_putc(&b, ' ');
    ms_buf_put_u64(&b, UINT64_MAX);
    ms_buf_putc(&b, ' ');
    ms_buf_put_i64(&b, 0);
    assert_string_equal(b.data, "-9223372036854775808 9223372036854775807 18446744073709551615 0");
    ms_buf_free(&b);
}

static void test_xalloc(void **state)
{
    (void)state;
    assert_null(ms_xstrdup(NULL));
    char *s = ms_xstrdup("hello");
    assert_string_equal(s, "hello");
    free(s);
    s = ms_xstrndup("hello world", 5);
    assert_string_equal(s, "hello");
    free(s);
    void *p = ms_xmalloc(0); /* zero bytes still gives a pointer */
    assert_non_null(p);
    free(p);
    int *z = ms_xcalloc(16, sizeof *z);
    for (int i = 0; i < 16; i++)
        assert_int_equal(z[i], 0);
    z = ms_xrealloc(z, 1024 * sizeof *z);
    assert_int_equal(z[15], 0);
    free(z);
}

/* Escapes s[0..n) and returns a heap copy of the JSON text. */
static char *jstrn(const char *s, size_t n)
{
    ms_buf b = MS_BUF_INIT;
    ms_buf_put_jstrn(&b, s, n);
    return ms_buf_steal(&b);
}

static void test_jstr_escapes(void **state)
{
    (void)state;
    ms_buf b = MS_BUF_INIT;
    ms_buf_put_jstr(&b, NULL);
    assert_string_equal(b.data, "null");
    ms_buf_reset(&b);
    ms_buf_put_jstr(&b, "");
    assert_string_equal(b.data, "\"\"");
    ms_buf_reset(&b);
    ms_buf_put_jstr(&b, "say \"hi\" \\ bye");
    assert_string_equal(b.data, "\"say \\\"hi\\\" \\\\ bye\"");
    ms_buf_reset(&b);
    ms_buf_put_jstr(&b, "a\nb\rc\td\be\ff");
    assert_string_equal(b.data, "\"a\\nb\\rc\\td\\be\\ff\"");
    ms_buf_reset(&b);
    ms_buf_put_jstr(&b, "\x01\x1f\x1b[0m");
    assert_string_equal(b.data, "\"\\u0001\\u001f\\u001b[0m\"");
    ms_buf_reset(&b);
    /* DEL and '/' need no escape */
    ms_buf_put_jstr(&b, "a/b\x7f");
    assert_string_equal(b.data, "\"a/b\x7f\"");
    ms_buf_free(&b);

    /* NUL inside a counted string */
    char *j = jstrn("a\0b", 3);
    assert_string_equal(j, "\"a\\u0000b\"");
    free(j);
    /* only the first n bytes */
    j = jstrn("abcdef", 3);
    assert_string_equal(j, "\"abc\"");
    free(j);
    /* appends after existing content */
    ms_buf c = MS_BUF_INIT;
    ms_buf_puts(&c, "{\"k\":");
    ms_buf_put_jstr(&c, "v");
    ms_buf_putc(&c, '}');
    assert_string_equal(c.data, "{\"k\":\"v\"}");
    ms_buf_free(&c);
}

static void test_jstr_utf8_passthrough(void **state)
{
    (void)state;
    const char *u = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac";
    ms_buf b = MS_BUF_INIT;
    ms_buf_put_jstr(&b, u);
    assert_int_equal(b.len, strlen(u) + 2);
    assert_int_equal(b.data[0], '"');
    assert_memory_equal(b.data + 1, u, strlen(u));
    ms_buf_free(&b);
}

/* Every string of single ASCII bytes 1..127, and a mixed UTF-8 one, parses back to itself. */
static void test_jstr_round_trip(void **state)
{
    (void)state;
    char all[128];
    for (int i = 1; i < 128; i++)
        all[i - 1] = (char)i;
    all[127] = '\0';
    const char *inputs[] = {all, "tab\there \"q\" \\ \xc3\xa9\xf0\x9f\x98\x80 \x01\x02\x7f end"};
    for (size_t k = 0; k < 2; k++) {
        ms_buf b = MS_BUF_INIT;
        ms_buf_put_jstr(&b, inputs[k]);
        ms_error err;
        ms_error_clear(&err);
        struct json_object *o = ms_json_parse(b.data, b.len, 0, NULL, &err);
        if (!o) print_error("%s does not parse: %s\n", b.data, err.detail);
        assert_non_null(o);
        assert_true(json_object_is_type(o, json_type_string));
        assert_string_equal(json_object_get_string(o), inputs[k]);
        /* no raw control character in the output */
        for (size_t i = 0; i < b.len; i++)
            assert_true((unsigned char)b.data[i] >= 0x20);
        json_object_put(o);
        ms_buf_free(&b);
    }
    /* an embedded NUL survives the round trip too */
    char *j = jstrn("x\0y", 3);
    struct json_object *o = json_tokener_parse(j);
    assert_non_null(o);
    assert_int_equal(json_object_get_string_len(o), 3);
    assert_memory_equal(json_object_get_string(o), "x\0y", 3);
    json_object_put(o);
    free(j);
}

/* ---- ms_error ---------------------------------------------------------------------------------
 */

static const struct {
    ms_err e;
    const char *code;
    int status;
    bool retriable;
} expected[] = {
    {MS_OK, "ok", 200, false},
    {MS_ERR_NOMEM, "out_of_memory", 503, true},
    {MS_ERR_IO, "io_error", 500, true},
    {MS_ERR_STORE, "store_error", 500, true},
    {MS_ERR_INTERNAL, "internal_error", 500, false},
    {MS_ERR_MALFORMED_JSON, "malformed_json", 400, false},
    {MS_ERR_INVALID_UTF8, "invalid_utf8", 400, false},
    {MS_ERR_TOO_DEEP, "nesting_too_deep", 400, false},
    {MS_ERR_EVENT_TOO_LARGE, "event_too_large", 413, false},
    {MS_ERR_BODY_TOO_LARGE, "body_too_large", 413, false},
    {MS_ERR_NOT_OBJECT, "not_an_object", 400, false},
    {MS_ERR_INVALID_FIELD, "invalid_field", 400, false},
    {MS_ERR_MISSING_FIELD, "missing_field", 400, false},
    {MS_ERR_UNKNOWN_FIELD, "unknown_field", 400, false},
    {MS_ERR_UNKNOWN_OP, "unknown_op", 400, false},
    {MS_ERR_UNKNOWN_TYPE, "unknown_type", 400, false},
    {MS_ERR_MISSING_ATTRIBUTE, "missing_attribute", 400, false},
    {MS_ERR_INVALID_PARENT, "invalid_parent", 409, false},
    {MS_ERR_TOO_LONG, "value_too_long", 400, false},
    {MS_ERR_NOT_FOUND, "not_found", 404, false},
    {MS_ERR_ALREADY_EXISTS, "already_exists", 409, false},
    {MS_ERR_UNAUTHORIZED, "unauthorized", 401, false},
    {MS_ERR_FORBIDDEN, "forbidden", 403, false},
    {MS_ERR_VERSION_CONFLICT, "version_conflict", 409, false},
    {MS_ERR_TYPE_CONFLICT, "type_conflict", 409, false},
    {MS_ERR_DELETED, "asset_deleted", 409, false},
    {MS_ERR_OVERLOADED, "overloaded", 503, true},
    {MS_ERR_UNAVAILABLE, "unavailable", 503, true},
    {MS_ERR_TIMEOUT, "timeout", 504, true},
    {MS_ERR_UNSUPPORTED_MEDIA, "unsupported_media_type", 415, false},
    {MS_ERR_METHOD, "method_not_allowed", 405, false},
    {MS_ERR_BAD_PARAM, "invalid_parameter", 400, false},
    {MS_ERR_CONFIG, "invalid_config", 400, false},
    {MS_ERR_USAGE, "usage", 400, false},
    {MS_ERR_CONNECT, "connect_failed", 503, true},
    {MS_ERR_BAD_MAGIC, "unknown_magic_byte", 400, false},
    {MS_ERR_UNKNOWN_SCHEMA, "unknown_schema_id", 400, false},
    {MS_ERR_AVRO_DECODE, "avro_decode_failed", 400, false},
    {MS_ERR_INVALID_SCHEMA, "invalid_schema", 422, false},
    {MS_ERR_INCOMPATIBLE_SCHEMA, "incompatible_schema", 409, false},
    {MS_ERR_KAFKA, "kafka_error", 503, true},
};

/* The documented table: code, status and retriable flag of every error. */
static void test_error_table(void **state)
{
    (void)state;
    size_t n = sizeof expected / sizeof *expected;
    assert_int_equal(n, MS_ERR__COUNT); /* a new code needs a row here too */
    for (size_t i = 0; i < n; i++) {
        ms_err e = expected[i].e;
        assert_string_equal(ms_err_code(e), expected[i].code);
        assert_int_equal(ms_err_http_status(e), expected[i].status);
        assert_int_equal(ms_err_is_retriable(e), expected[i].retriable);
        const char *m = ms_err_message(e);
        assert_non_null(m);
        assert_true(strlen(m) > 0);
    }
}

/* Every code is unique snake_case and ms_err_from_code gives back the same enum. */
static void test_error_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < MS_ERR__COUNT; i++) {
        const char *c = ms_err_code((ms_err)i);
        assert_true(strlen(c) > 0);
        for (const char *p = c; *p; p++)
            assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_');
        assert_int_equal(ms_err_from_code(c), i);
        for (int k = 0; k < i; k++)
            assert_string_not_equal(c, ms_err_code((ms_err)k));
        /* retriable codes answer 5xx */
        if (ms_err_is_retriable((ms_err)i)) assert_true(ms_err_http_status((ms_err)i) >= 500);
    }
    assert_int_equal(ms_err_from_code("no_such_code"), MS_ERR__COUNT);
    assert_int_equal(ms_err_from_code(""), MS_ERR__COUNT);
    assert_int_equal(ms_err_from_code(NULL), MS_ERR__COUNT);
    assert_int_equal(ms_err_from_code("not_found "), MS_ERR__COUNT);
    /* out of range */
    assert_string_equal(ms_err_code(MS_ERR__COUNT), "unknown");
    assert_string_equal(ms_err_code((ms_err)-1), "unknown");
    assert_string_equal(ms_err_message((ms_err)1000), "unknown error");
    assert_int_equal(ms_err_http_status(MS_ERR__COUNT), 500);
    assert_false(ms_err_is_retriable(MS_ERR__COUNT));
    assert_false(ms_err_is_retriable((ms_err)-5));
}

static void test_error_object(void **state)
{
    (void)state;
    ms_error e;
    ms_error_clear(&e);
    assert_int_equal(e.code, MS_OK);
    assert_string_equal(e.detail, "");
    assert_int_equal(e.line, 0);
    assert_int_equal(e.column, 0);
    assert_int_equal(e.offset, -1);
    assert_null(e.src_file);

    int here = __LINE__ + 1;
    ms_err rc = ms_error_set(&e, MS_ERR_NOT_FOUND, "no asset '%s' (%d)", "pg", 7);
    assert_int_equal(rc, MS_ERR_NOT_FOUND);
    assert_int_equal(e.code, MS_ERR_NOT_FOUND);
    assert_string_equal(e.detail, "no asset 'pg' (7)");
    assert_string_equal(e.src_file, __FILE__);
    assert_int_equal(e.src_line, here);

    ms_error_at(&e, 3, 14, 40);
    assert_int_equal(e.line, 3);
    assert_int_equal(e.column, 14);
    assert_int_equal(e.offset, 40);
    /* a new set resets the position */
    ms_error_set(&e, MS_ERR_IO, "x");
    assert_int_equal(e.line, 0);
    assert_int_equal(e.offset, -1);

    /* long details are cut, still terminated */
    char big[1000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ms_error_set(&e, MS_ERR_INTERNAL, "%s", big);
    assert_int_equal(strlen(e.detail), sizeof e.detail - 1);

    /* NULL error objects are allowed */
    assert_int_equal(ms_error_set(NULL, MS_ERR_TIMEOUT, "ignored %d", 1), MS_ERR_TIMEOUT);
    ms_error_at(NULL, 1, 1, 1);
    ms_error_clear(NULL);
    ms_error_clear(&e);
    assert_int_equal(e.code, MS_OK);
    assert_string_equal(e.detail, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_basics),
        cmocka_unit_test(test_buf_printf),
        cmocka_unit_test(test_xalloc),
        cmocka_unit_test(test_jstr_escapes),
        cmocka_unit_test(test_jstr_utf8_passthrough),
        cmocka_unit_test(test_jstr_round_trip),
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_error_round_trip),
        cmocka_unit_test(test_error_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
