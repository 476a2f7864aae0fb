/*
 * test_avro_compat.c — unit tests of the Avro schema-resolution checker (ms_avro_can_read): the
 * shared table tests/avro/compat_pairs.json (the same table tests/e2e/test_avro_oracle.py checks
 * against python-avro), plus the `why` lines for the main kinds of incompatibility.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ms_avro.h"
#include "ms_test_avro.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* tests/avro/<name>, found next to this source file. */
static void data_path(char *buf, size_t len, const char *name)
{
    const char *slash = strrchr(__FILE__, '/');
    int dir = slash ? (int)(slash - __FILE__) : 0;
    snprintf(buf, len, "%.*s%s../avro/%s", dir, __FILE__, dir ? "/" : "", name);
}

static ms_avro_schema *parse_json(json_object *j)
{
    const char *t = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);
    return ms_test_avro_schema(t);
}

static void test_compat_pairs_table(void **state)
{
    (void)state;
    char path[4096];
    data_path(path, sizeof path, "compat_pairs.json");
    json_object *all = json_object_from_file(path);
    if (!all) print_error("cannot read %s\n", path);
    assert_non_null(all);
    size_t n = json_object_array_length(all);
    assert_true(n >= 60);
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *p = json_object_array_get_idx(all, i), *r, *w, *ok, *name;
        assert_true(json_object_object_get_ex(p, "reader", &r));
        assert_true(json_object_object_get_ex(p, "writer", &w));
        assert_true(json_object_object_get_ex(p, "compatible", &ok));
        assert_true(json_object_object_get_ex(p, "name", &name));
        ms_avro_schema *rs = parse_json(r), *ws = parse_json(w);
        ms_buf why = MS_BUF_INIT;
        bool got = ms_avro_can_read(rs, ws, &why);
        if (got != json_object_get_boolean(ok)) {
            print_error("pair %zu '%s': expected %d, got %d\n%s", i, json_object_get_string(name),
                        json_object_get_boolean(ok), got, ms_buf_cstr(&why));
            wrong++;
        }
        /* A refusal always says why; an acceptance says nothing. */
        assert_true(got ? why.len == 0 : why.len > 0);
        ms_buf_free(&why);
        ms_avro_schema_free(rs);
        ms_avro_schema_free(ws);
    }
    json_object_put(all);
    assert_int_equal(wrong, 0);
}

/* Asserts that reader cannot read writer and that the why text contains want. */
static void expect_why(const char *reader, const char *writer, const char *want)
{
    ms_avro_schema *r = ms_test_avro_schema(reader), *w = ms_test_avro_schema(writer);
    ms_buf why = MS_BUF_INIT;
    assert_false(ms_avro_can_read(r, w, &why));
    assert_false(ms_avro_can_read(r, w, NULL));
    if (!strstr(ms_buf_cstr(&why), want)) print_error("got: %s\nwant: %s\n", why.data, want);
    assert_non_null(strstr(ms_buf_cstr(&why), want));
    ms_buf_free(&why);
    ms_avro_schema_free(r);
    ms_avro_schema_free(w);
}

static void test_why_lines(void **state)
{
    (void)state;
    expect_why("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},"
               "{\"name\":\"b\",\"type\":\"int\"},{\"name\":\"c\",\"type\":\"int\"},"
               "{\"name\":\"owner\",\"type\":\"string\"}]}",
               "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},"
               "{\"name\":\"b\",\"type\":\"int\"},{\"name\":\"c\",\"type\":\"int\"}]}",
               "/fields/3 (field 'owner'): reader field has no default and is missing from the "
               "writer\n");
    expect_why("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
               "{\"type\":\"array\",\"items\":\"int\"}}]}",
               "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
               "{\"type\":\"array\",\"items\":\"long\"}}]}",
               "/fields/0 (field 'a')/items: reader type int cannot read writer type long");
    expect_why("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"]}",
               "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"]}",
               "/: writer symbol 'B' is not in the reader enum 'E', which has no default");
    expect_why("{\"type\":\"fixed\",\"name\":\"F\",\"size\":4}",
               "{\"type\":\"fixed\",\"name\":\"F\",\"size\":8}",
               "/: fixed size 4 in the reader, 8 in the writer");
    expect_why("{\"type\":\"fixed\",\"name\":\"n.F\",\"size\":4}",
               "{\"type\":\"fixed\",\"name\":\"m.F\",\"size\":4}",
               "reader n.F does not match writer name 'm.F'");
    expect_why("[\"null\",\"string\"]", "[\"null\",\"int\"]",
               "/1 (writer branch int): no branch of the reader union can read the writer's int");
}

/* Wide records (fields in opposite orders) and long chains of named references stay cheap. */
static void test_wide_and_deep(void **state)
{
    (void)state;
    ms_buf a = MS_BUF_INIT, b = MS_BUF_INIT;
    ms_buf_puts(&a, "{\"type\":\"record\",\"name\":\"W\",\"fields\":[");
    ms_buf_puts(&b, "{\"type\":\"record\",\"name\":\"W\",\"fields\":[");
    for (int i = 0; i < 5000; i++) {
        ms_buf_printf(&a, "%s{\"name\":\"f%d\",\"type\":\"int\"}", i ? "," : "", i);
        ms_buf_printf(&b, "%s{\"name\":\"f%d\",\"type\":\"long\"}", i ? "," : "", 4999 - i);
    }
    ms_buf_puts(&a, "]}");
    ms_buf_puts(&b, "]}");
    ms_avro_schema *w = ms_test_avro_schema(a.data), *r = ms_test_avro_schema(b.data);
    assert_true(ms_avro_can_read(r, w, NULL));
    assert_false(ms_avro_can_read(w, r, NULL));
    ms_avro_schema_free(w);
    ms_avro_schema_free(r);

    /* R0 <- R1 <- ... <- R1999: each record's field is the previous record. */
    ms_buf_reset(&a);
    ms_buf_puts(&a, "[{\"type\":\"record\",\"name\":\"R0\",\"fields\":[]}");
    for (int i = 1; i < 2000; i++)
        ms_buf_printf(&a,
                      ",{\"type\":\"record\",\"name\":\"R%d\",\"fields\":[{\"name\":\"p\","
                      "\"type\":\"R%d\"}]}",
                      i, i - 1);
    ms_buf_puts(&a, "]");
    ms_avro_schema *deep = ms_test_avro_schema(a.data);
    /* The union's branches are checked in order and each record pair is memoized, so the chain
     * is checked one level at a time (the depth guard of the checker is never reached here). */
    assert_true(ms_avro_can_read(deep, deep, NULL));
    ms_avro_schema_free(deep);
    ms_buf_free(&a);
    ms_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compat_pairs_table),
        cmocka_unit_test(test_why_lines),
        cmocka_unit_test(test_wide_and_deep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
