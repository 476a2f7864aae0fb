/*
 * test_blob_dir.c — unit tests of the directory blob store (ms_blob_dir): opening by file:// URL
 * or plain path, put() creating nested directories and storing the object whole (no temporary
 * file left behind), replacing an existing object, empty objects, rejecting keys that are not
 * relative paths ('..', leading '/'), and failing with the retriable MS_ERR_IO when the directory
 * cannot be created (root under a regular file, which stops even root), then working once fixed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ms_blob.h"
#include "ms_config.h"

#include <dirent.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "ms_test_dir.h"

extern const ms_blob_ops ms_blob_dir;

typedef struct fixture {
    char dir[512];
    char url[600];
    ms_config cfg;
    void *blob;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    if (ms_test_mkdtemp(f->dir, sizeof f->dir, "blob") != 0) return -1;
    snprintf(f->url, sizeof f->url, "file://%s/objects", f->dir);
    ms_config_defaults(&f->cfg);
    ms_error err;
    if (ms_blob_dir.open(f->url, &f->cfg, NULL, &f->blob, &err) != MS_OK) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->blob) ms_blob_dir.close(f->blob);
    ms_config_free(&f->cfg);
    ms_test_rmtree(f->dir);
    free(f);
    return 0;
}

/* Reads a whole file into a new NUL-terminated string; *len gets its size. NULL if absent. */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    if (len) *len = (size_t)n;
    return buf;
}

/* Counts the entries of a directory (without . and ..); those containing ".tmp" go to *tmp. */
static int entries(const char *dir, int *tmp)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        n++;
        if (tmp && strstr(e->d_name, ".tmp")) (*tmp)++;
    }
    closedir(d);
    return n;
}

static ms_err put(fixture *f, const char *key, const char *data, ms_error *err)
{
    ms_error_clear(err);
    return ms_blob_dir.put(f->blob, key, data, strlen(data), err);
}

/* put() creates the nested directories and stores the object whole, with nothing else left. */
static void test_put_atomic(void **state)
{
    fixture *f = *state;
    assert_string_equal(ms_blob_dir.scheme, "file");
    assert_int_equal(ms_blob_dir.version, MS_BLOB_OPS_VERSION);
    ms_error err;
    const char *key = "default/2026/11/23/19/1-500.ndjson";
    const char *data = "{\"seq\":1}\n{\"seq\":2}\n";
    assert_int_equal(put(f, key, data, &err), MS_OK);
    char path[800], leaf[800];
    snprintf(path, sizeof path, "%s/objects/%s", f->dir, key);
    size_t len = 0;
    char *got = slurp(path, &len);
    assert_non_null(got);
    assert_int_equal(len, strlen(data));
    assert_string_equal(got, data);
    free(got);
    snprintf(leaf, sizeof leaf, "%s/objects/default/2026/11/23/19", f->dir);
    int tmp = 0;
    assert_int_equal(entries(leaf, &tmp), 1);
    assert_int_equal(tmp, 0);

    /* binary data with NULs is stored byte for byte */
    const char bin[] = {'a', 0, 'b', '\n', 0, (char)0xff};
    assert_int_equal(ms_blob_dir.put(f->blob, "default/bin", bin, sizeof bin, &err), MS_OK);
    snprintf(path, sizeof path, "%s/objects/default/bin", f->dir);
    got = slurp(path, &len);
    assert_int_equal(len, sizeof bin);
    assert_memory_equal(got, bin, sizeof bin);
    free(got);
}

/* Putting the same key again replaces the object; an empty object is an empty file. */
static void test_put_replace_and_empty(void **state)
{
    fixture *f = *state;
    ms_error err;
    assert_int_equal(put(f, "t/a.ndjson", "first version, longer\n", &err), MS_OK);
    assert_int_equal(put(f, "t/a.ndjson", "second\n", &err), MS_OK);
    char path[800], leaf[800];
    snprintf(path, sizeof path, "%s/objects/t/a.ndjson", f->dir);
    char *got = slurp(path, NULL);
    assert_string_equal(got, "second\n");
    free(got);
    assert_int_equal(ms_blob_dir.put(f->blob, "t/empty", "", 0, &err), MS_OK);
    snprintf(path, sizeof path, "%s/objects/t/empty", f->dir);
    size_t len = 99;
    got = slurp(path, &len);
    assert_non_null(got);
    assert_int_equal(len, 0);
    free(got);
    snprintf(leaf, sizeof leaf, "%s/objects/t", f->dir);
    int tmp = 0;
    assert_int_equal(entries(leaf, &tmp), 2);
    assert_int_equal(tmp, 0);
}

/* A put that cannot complete (the key names an existing directory) fails with MS_ERR_IO and
 * leaves neither a partial object nor a temporary file; what was there is untouched. */
static void test_failed_put_leaves_nothing(void **state)
{
    fixture *f = *state;
    ms_error err;
    assert_int_equal(put(f, "t/dir/inner", "keep", &err), MS_OK);
    ms_err rc = put(f, "t/dir", "would replace a directory", &err);
    assert_int_equal(rc, MS_ERR_IO);
    assert_true(err.detail[0] != '\0');
    char leaf[800], path[800];
    snprintf(leaf, sizeof leaf, "%s/objects/t", f->dir);
    int tmp = 0;
    assert_int_equal(entries(leaf, &tmp), 1); /* just dir/ */
    assert_int_equal(tmp, 0);
    snprintf(path, sizeof path, "%s/objects/t/dir/inner", f->dir);
    char *got = slurp(path, NULL);
    assert_string_equal(got, "keep");
    free(got);
}

/* Keys that are not relative paths inside the root are refused and write nothing. */
static void test_rejects_escaping_keys(void **state)
{
    fixture *f = *state;
    ms_error err;
    const char *bad[] = {"../escape", "a/../../escape", "a/..", "..", "/etc/metasync-test"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ms_err rc = put(f, bad[i], "x", &err);
        if (rc == MS_OK) print_error("key %s was accepted\n", bad[i]);
        assert_int_not_equal(rc, MS_OK);
        assert_int_equal(err.code, rc);
        assert_true(err.detail[0] != '\0');
        assert_false(ms_err_is_retriable(rc)); /* retrying cannot help */
    }
    char esc[700];
    snprintf(esc, sizeof esc, "%s/escape", f->dir);
    assert_int_not_equal(access(esc, F_OK), 0);
    assert_int_not_equal(access("/etc/metasync-test", F_OK), 0);
}

/* A root under a regular file cannot be created (ENOTDIR, whatever the privileges): put fails
 * with the retriable MS_ERR_IO, leaves nothing, and works once the file is gone. */
static void test_unwritable_root_then_fixed(void **state)
{
    fixture *f = *state;
    char blocker[700], url[800];
    snprintf(blocker, sizeof blocker, "%s/blocker", f->dir);
    FILE *fp = fopen(blocker, "w");
    assert_non_null(fp);
    fclose(fp);
    snprintf(url, sizeof url, "%s/objects", blocker); /* a plain path works as a URL too */
    void *b = NULL;
    ms_error err;
    assert_int_equal(ms_blob_dir.open(url, &f->cfg, NULL, &b, &err), MS_OK);
    ms_error_clear(&err);
    ms_err rc = ms_blob_dir.put(b, "t/2026/x.ndjson", "data", 4, &err);
    assert_int_equal(rc, MS_ERR_IO);
    assert_int_equal(err.code, MS_ERR_IO);
    assert_true(ms_err_is_retriable(rc));
    assert_non_null(strstr(err.detail, "blocker"));
    int tmp = 0;
    assert_int_equal(entries(f->dir, &tmp), 1); /* only the blocker file: nothing written */
    assert_int_equal(tmp, 0);

    assert_int_equal(unlink(blocker), 0);
    assert_int_equal(ms_blob_dir.put(b, "t/2026/x.ndjson", "data", 4, &err), MS_OK);
    char path[900];
    snprintf(path, sizeof path, "%s/t/2026/x.ndjson", url);
    char *got = slurp(path, NULL);
    assert_string_equal(got, "data");
    free(got);
    ms_blob_dir.close(b);
}

/* An empty path is a configuration error. */
static void test_open_empty_path(void **state)
{
    fixture *f = *state;
    void *b = (void *)1;
    ms_error err;
    ms_error_clear(&err);
    assert_int_equal(ms_blob_dir.open("file://", &f->cfg, NULL, &b, &err), MS_ERR_CONFIG);
    assert_int_equal(err.code, MS_ERR_CONFIG);
    ms_error_clear(&err);
    assert_int_equal(ms_blob_dir.open("", &f->cfg, NULL, &b, &err), MS_ERR_CONFIG);
    ms_blob_dir.close(NULL); /* closing nothing is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_replace_and_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_put_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejects_escaping_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_root_then_fixed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_empty_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
