/*
 * ms_test_avro.h — helpers shared by the Avro unit tests (test_avro_*.c). Header-only so that
 * each test stays one file plus this include; include after <cmocka.h>.
 */
#ifndef MS_TEST_AVRO_H
#define MS_TEST_AVRO_H

#include "ms_avro.h"

#include <string.h>

/* Parses schema text that must be valid (fails the test otherwise); caller frees. */
static inline ms_avro_schema *ms_test_avro_schema(const char *text)
{
    ms_avro_schema *s = NULL;
    ms_error err;
    if (ms_avro_schema_parse(text, strlen(text), &s, &err) != MS_OK)
        print_error("schema %s: %s\n", text, err.detail);
    assert_non_null(s);
    return s;
}

#endif
