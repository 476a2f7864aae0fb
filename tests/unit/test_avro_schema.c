/*
 * test_avro_schema.c — unit tests of the Avro schema parser (ms_avro.h): the specification's own
 * Parsing Canonical Form and CRC-64-AVRO examples, names and namespaces, aliases, logical types,
 * recursive records, and a catalogue of bad schemas each with the detail it must report.
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

/* Returns the canonical form of text (caller frees). */
static char *canonical_of(const char *text)
{
    ms_avro_schema *s = ms_test_avro_schema(text);
    ms_buf b = MS_BUF_INIT;
    ms_avro_schema_canonical(s, &b);
    ms_avro_schema_free(s);
    return ms_buf_steal(&b);
}

/* The specification's test table (share/test/data/schema-tests.txt of Apache Avro): input,
 * canonical form, fingerprint (signed decimal as Java prints it; 0 = not given). Case 026's
 * boolean default "true" (a string) is written `true` here because we validate defaults. */
static const struct {
    const char *in, *canon;
    int64_t fp;
} spec_cases[] = {
    {"\"null\"", "\"null\"", 7195948357588979594},
    {"{\"type\":\"null\"}", "\"null\"", 0},
    {"\"boolean\"", "\"boolean\"", -6970731678124411036},
    {"\"int\"", "\"int\"", 8247732601305521295},
    {"{\"type\":\"int\"}", "\"int\"", 0},
    {"\"long\"", "\"long\"", -3434872931120570953},
    {"\"float\"", "\"float\"", 5583340709985441680},
    {"\"double\"", "\"double\"", -8181574048448539266},
    {"\"bytes\"", "\"bytes\"", 5746618253357095269},
    {"\"string\"", "\"string\"", -8142146995180207161},
    {"[  ]", "[]", -1241056759729112623},
    {"[ \"int\"  ]", "[\"int\"]", -5232228896498058493},
    {"[ \"int\" , {\"type\":\"boolean\"} ]", "[\"int\",\"boolean\"]", 5392556393470105090},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", -4824392279771201922},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"namespace\":\"x.y\"}",
     "{\"name\":\"x.y.foo\",\"type\":\"record\",\"fields\":[]}", 5916914534497305771},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"a.b.foo\", \"namespace\":\"x.y\"}",
     "{\"name\":\"a.b.foo\",\"type\":\"record\",\"fields\":[]}", -4616218487480524110},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"doc\":\"Useful info\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", -4824392279771201922},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"aliases\":[\"foo\",\"bar\"]}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", -4824392279771201922},
    {"{\"fields\":[{\"type\":{\"type\":\"boolean\"}, \"name\":\"f1\"}], \"type\":\"record\", "
     "\"name\":\"foo\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"}]}",
     7843277075252814651},
    {"{ \"fields\":[{\"type\":\"boolean\", \"aliases\":[], \"name\":\"f1\", \"default\":true},\n"
     "{\"order\":\"descending\",\"name\":\"f2\",\"doc\":\"Hello\",\"type\":\"int\"}],\n"
     "\"type\":\"record\", \"name\":\"foo\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"},{"
     "\"name\":\"f2\",\"type\":\"int\"}]}",
     -4860222112080293046},
    {"{\"type\":\"enum\", \"name\":\"foo\", \"symbols\":[\"A1\"]}",
     "{\"name\":\"foo\",\"type\":\"enum\",\"symbols\":[\"A1\"]}", -6342190197741309591},
    {"{\"namespace\":\"x.y.z\", \"type\":\"enum\", \"name\":\"foo\", \"doc\":\"foo bar\", "
     "\"symbols\":[\"A1\", \"A2\"]}",
     "{\"name\":\"x.y.z.foo\",\"type\":\"enum\",\"symbols\":[\"A1\",\"A2\"]}",
     -4448647247586288245},
    {"{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}",
     "{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}", 1756455273707447556},
    {"{\"namespace\":\"x.y.z\", \"type\":\"fixed\", \"name\":\"foo\", \"doc\":\"foo bar\", "
     "\"size\":32}",
     "{\"name\":\"x.y.z.foo\",\"type\":\"fixed\",\"size\":32}", -3064184465700546786},
    {"{ \"items\":{\"type\":\"null\"}, \"type\":\"array\"}",
     "{\"type\":\"array\",\"items\":\"null\"}", -589620603366471059},
    {"{ \"values\":\"string\", \"type\":\"map\"}", "{\"type\":\"map\",\"values\":\"string\"}",
     -8732877298790414990},
    {"{\"name\":\"PigValue\",\"type\":\"record\",\n\"fields\":[{\"name\":\"value\", "
     "\"type\":[\"null\", \"int\", \"long\", \"PigValue\"]}]}",
     "{\"name\":\"PigValue\",\"type\":\"record\",\"fields\":[{\"name\":\"value\",\"type\":["
     "\"null\","
     "\"int\",\"long\",\"PigValue\"]}]}",
     -1759257747318642341},
};

static void test_spec_canonical_and_fingerprints(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof spec_cases / sizeof *spec_cases; i++) {
        ms_avro_schema *s = ms_test_avro_schema(spec_cases[i].in);
        ms_buf b = MS_BUF_INIT;
        ms_avro_schema_canonical(s, &b);
        if (strcmp(ms_buf_cstr(&b), spec_cases[i].canon) != 0)
            print_error("case %zu: got %s\n", i, ms_buf_cstr(&b));
        assert_string_equal(ms_buf_cstr(&b), spec_cases[i].canon);
        if (spec_cases[i].fp)
            assert_true(ms_avro_schema_fingerprint(s) == (uint64_t)spec_cases[i].fp);
        assert_string_equal(ms_avro_schema_text(s), spec_cases[i].in);
        ms_buf_free(&b);
        ms_avro_schema_free(s);
    }
}

static void test_names_and_namespaces(void **state)
{
    (void)state;
    /* Nested types inherit the enclosing namespace; a dotted name sets its own; a reference
     * without dots resolves in the enclosing namespace, then in the null namespace. */
    char *c = canonical_of(
        "{\"type\":\"record\",\"name\":\"Outer\",\"namespace\":\"a.b\",\"fields\":["
        "{\"name\":\"in\",\"type\":{\"type\":\"record\",\"name\":\"Inner\",\"fields\":[]}},"
        "{\"name\":\"other\",\"type\":{\"type\":\"enum\",\"name\":\"x.E\",\"symbols\":[\"A\"]}},"
        "{\"name\":\"again\",\"type\":\"Inner\"},"
        "{\"name\":\"e2\",\"type\":\"x.E\"},"
        "{\"name\":\"f\",\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"namespace\":\"\",\"size\":2}"
        "},"
        "{\"name\":\"f2\",\"type\":\"F\"}]}");
    assert_string_equal(
        c, "{\"name\":\"a.b.Outer\",\"type\":\"record\",\"fields\":["
           "{\"name\":\"in\",\"type\":{\"name\":\"a.b.Inner\",\"type\":\"record\",\"fields\":[]}},"
           "{\"name\":\"other\",\"type\":{\"name\":\"x.E\",\"type\":\"enum\",\"symbols\":[\"A\"]}},"
           "{\"name\":\"again\",\"type\":\"a.b.Inner\"},{\"name\":\"e2\",\"type\":\"x.E\"},"
           "{\"name\":\"f\",\"type\":{\"name\":\"F\",\"type\":\"fixed\",\"size\":2}},"
           "{\"name\":\"f2\",\"type\":\"F\"}]}");
    free(c);
    ms_avro_schema *s =
        ms_test_avro_schema("{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"n\","
                            "\"fields\":[]}");
    assert_string_equal(ms_avro_schema_name(s), "n.R");
    ms_avro_schema_free(s);
    s = ms_test_avro_schema("[\"null\",\"string\"]");
    assert_string_equal(ms_avro_schema_name(s), "union");
    ms_avro_schema_free(s);
    /* logicalType is an annotation: canonical form drops it; unknown ones are allowed. */
    c = canonical_of("{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}");
    assert_string_equal(c, "\"long\"");
    free(c);
    c = canonical_of("{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":4}");
    assert_string_equal(c, "\"bytes\"");
    free(c);
    /* Defaults of every kind that are valid. */
    s = ms_test_avro_schema(
        "{\"type\":\"record\",\"name\":\"D\",\"fields\":["
        "{\"name\":\"a\",\"type\":[\"null\",\"int\"],\"default\":null},"
        "{\"name\":\"b\",\"type\":\"float\",\"default\":1},"
        "{\"name\":\"c\",\"type\":\"bytes\",\"default\":\"\\u00ff\\u0000\"},"
        "{\"name\":\"d\",\"type\":{\"type\":\"fixed\",\"name\":\"F2\",\"size\":2},"
        "\"default\":\"ab\"},"
        "{\"name\":\"e\",\"type\":{\"type\":\"map\",\"values\":\"long\"},"
        "\"default\":{\"x\":1}},"
        "{\"name\":\"f\",\"type\":{\"type\":\"array\",\"items\":\"string\"},"
        "\"default\":[\"q\"]},"
        "{\"name\":\"g\",\"type\":{\"type\":\"enum\",\"name\":\"G\",\"symbols\":[\"X\","
        "\"Y\"],\"default\":\"Y\"},\"default\":\"X\"}]}");
    ms_avro_schema_free(s);
}

/* Asserts that text is refused with MS_ERR_INVALID_SCHEMA and a detail containing want. */
static void expect_bad(const char *text, const char *want)
{
    ms_avro_schema *s = (ms_avro_schema *)1;
    ms_error err;
    ms_err rc = ms_avro_schema_parse(text, strlen(text), &s, &err);
    if (rc != MS_ERR_INVALID_SCHEMA || !strstr(err.detail, want))
        print_error("schema %s: got %s '%s', want '%s'\n", text, ms_err_code(rc), err.detail, want);
    assert_int_equal(rc, MS_ERR_INVALID_SCHEMA);
    assert_null(s);
    assert_non_null(strstr(err.detail, want));
}

static void test_bad_schemas(void **state)
{
    (void)state;
    expect_bad("\"strin\"", "unknown type name 'strin'");
    expect_bad(
        "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"Nope\"}]}",
        "/fields/0: unknown type name 'Nope'");
    expect_bad("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},"
               "{\"name\":\"a\",\"type\":\"long\"}]}",
               "/fields/1: duplicate field 'a' in record 'R'");
    expect_bad("{\"type\":\"record\",\"name\":\"my-rec\",\"fields\":[]}", "bad name 'my-rec'");
    expect_bad(
        "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"9a\",\"type\":\"int\"}]}",
        "bad field name '9a'");
    expect_bad("{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"a..b\",\"fields\":[]}",
               "bad namespace 'a..b'");
    expect_bad("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\",\"A\"]}",
               "enum 'E': duplicate symbol 'A'");
    expect_bad("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"b-c\"]}",
               "enum 'E': symbol 1 is not a valid name");
    expect_bad("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"],\"default\":\"Z\"}",
               "enum 'E': default 'Z' is not a symbol");
    expect_bad("{\"type\":\"fixed\",\"name\":\"F\"}", "fixed 'F' needs a \"size\"");
    expect_bad("{\"type\":\"fixed\",\"name\":\"F\",\"size\":-1}", "fixed 'F' needs a \"size\"");
    expect_bad("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\","
               "\"default\":\"x\"}]}",
               "default of field 'a' does not match its type: expected an int");
    expect_bad("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\","
               "\"default\":3000000000}]}",
               "int out of range");
    expect_bad("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":[\"int\","
               "\"null\"],\"default\":null}]}",
               "default of field 'a' does not match its type: expected an int");
    expect_bad("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
               "{\"type\":\"fixed\",\"name\":\"F\",\"size\":2},\"default\":\"abc\"}]}",
               "fixed default has the wrong length");
    expect_bad("[\"null\",[\"int\",\"string\"]]", "/1: a union cannot contain a union directly");
    expect_bad("[\"int\",\"string\",\"int\"]", "/2: union has two branches of type int");
    expect_bad("[{\"type\":\"array\",\"items\":\"int\"},{\"type\":\"array\",\"items\":\"long\"}]",
               "union has two branches of type array");
    expect_bad("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
               "{\"type\":\"record\",\"name\":\"R\",\"fields\":[]}}]}",
               "duplicate definition of the name 'R'");
    expect_bad("{\"type\":\"record\",\"name\":\"int\",\"fields\":[]}",
               "'int' is a primitive type name");
    expect_bad("{\"type\":\"record\",\"name\":\"R\"}", "record 'R' needs a \"fields\" array");
    expect_bad("{\"type\":\"array\"}", "array needs \"items\"");
    expect_bad("{\"type\":\"record\",\"name\":\"R\",\"aliases\":[\"ok\",\"no-t\"],\"fields\":[]}",
               "alias 1 is not a valid name");
    expect_bad("42", "a schema must be a string, an object or an array");

    /* Too deep: 70 nested arrays. */
    ms_buf b = MS_BUF_INIT;
    for (int i = 0; i < 70; i++)
        ms_buf_puts(&b, "{\"type\":\"array\",\"items\":");
    ms_buf_puts(&b, "\"int\"");
    for (int i = 0; i < 70; i++)
        ms_buf_putc(&b, '}');
    expect_bad(ms_buf_cstr(&b), "schema nesting is deeper than 64");
    /* Too large. */
    ms_buf_reset(&b);
    ms_buf_puts(&b, "{\"type\":\"string\",\"doc\":\"");
    for (int i = 0; i < MS_AVRO_MAX_SCHEMA_BYTES; i++)
        ms_buf_putc(&b, 'x');
    ms_buf_puts(&b, "\"}");
    expect_bad(ms_buf_cstr(&b), "more than 1048576");
    ms_buf_free(&b);

    /* Bad JSON: position set. */
    ms_avro_schema *s = NULL;
    ms_error err;
    const char *bad = "{\"type\":\n \"record\",}";
    assert_int_equal(ms_avro_schema_parse(bad, strlen(bad), &s, &err), MS_ERR_INVALID_SCHEMA);
    assert_non_null(strstr(err.detail, "not valid JSON"));
    assert_int_equal(err.line, 2);
    assert_true(err.column > 0 && err.offset > 0);
}

static void test_recursive_and_canonical_reparse(void **state)
{
    (void)state;
    const char *t = "{\"type\":\"record\",\"name\":\"Node\",\"namespace\":\"q\",\"doc\":\"d\","
                    "\"fields\":[{\"name\":\"v\",\"type\":\"int\",\"default\":0},"
                    "{\"name\":\"kids\",\"type\":{\"type\":\"array\",\"items\":\"Node\"}},"
                    "{\"name\":\"next\",\"type\":[\"null\",\"q.Node\"]}]}";
    ms_avro_schema *s = ms_test_avro_schema(t);
    ms_buf b = MS_BUF_INIT;
    ms_avro_schema_canonical(s, &b);
    assert_string_equal(
        ms_buf_cstr(&b),
        "{\"name\":\"q.Node\",\"type\":\"record\",\"fields\":[{\"name\":\"v\","
        "\"type\":\"int\"},{\"name\":\"kids\",\"type\":{\"type\":\"array\","
        "\"items\":\"q.Node\"}},{\"name\":\"next\",\"type\":[\"null\",\"q.Node\"]}]}");
    ms_avro_schema *s2 = ms_test_avro_schema(ms_buf_cstr(&b));
    assert_true(ms_avro_schema_fingerprint(s) == ms_avro_schema_fingerprint(s2));
    ms_buf_free(&b);
    ms_avro_schema_free(s2);
    ms_avro_schema_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_canonical_and_fingerprints),
        cmocka_unit_test(test_names_and_namespaces),
        cmocka_unit_test(test_bad_schemas),
        cmocka_unit_test(test_recursive_and_canonical_reparse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
