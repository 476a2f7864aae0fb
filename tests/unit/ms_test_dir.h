/*
 * ms_test_dir.h — scratch directories for unit tests: one fresh directory per fixture under
 * $MS_TEST_TMP (set by CTest to <build>/tmp; /tmp otherwise), removed with everything in it at
 * teardown. Header-only so that each test stays one file plus this include.
 */
#ifndef MS_TEST_DIR_H
#define MS_TEST_DIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static int ms_test_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Creates a fresh directory named <base>/<prefix>_XXXXXX into buf; returns 0, or -1. */
static inline int ms_test_mkdtemp(char *buf, size_t len, const char *prefix)
{
    const char *base = getenv("MS_TEST_TMP");
    if (!base || !*base) base = "/tmp";
    mkdir(base, 0777);
    snprintf(buf, len, "%s/%s_XXXXXX", base, prefix);
    return mkdtemp(buf) ? 0 : -1;
}

/* Removes dir and everything below it. */
static inline void ms_test_rmtree(const char *dir)
{
    nftw(dir, ms_test_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
