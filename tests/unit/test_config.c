/*
 * test_config.c — unit tests of ms_config: defaults, value parsing, YAML, environment, flags,
 * precedence, pass-through of non-config arguments, help and Markdown output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ms_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Per-test state: a config holding defaults and, optionally, a temp file to remove. */
typedef struct fixture {
    ms_config c;
    char path[512];
} fixture;

/* Allocates a fixture with defaults loaded. */
static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    ms_config_defaults(&f->c);
    *state = f;
    return 0;
}

/* Frees the config (twice, to check that it is safe) and removes the temp file if any. */
static int teardown(void **state)
{
    fixture *f = *state;
    ms_config_free(&f->c);
    ms_config_free(&f->c);
    if (f->path[0]) unlink(f->path);
    free(f);
    return 0;
}

/* Writes text to a new temp file (under $MS_TEST_TMP or /tmp) whose path goes to f->path. */
static const char *write_yaml(fixture *f, const char *text)
{
    const char *dir = getenv("MS_TEST_TMP");
    if (!dir || !*dir) dir = "/tmp";
    mkdir(dir, 0777); /* may already exist */
    snprintf(f->path, sizeof f->path, "%s/test_config_XXXXXX.yaml", dir);
    int fd = mkstemps(f->path, 5);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return f->path;
}

/* Runs ms_config_load on f's config; returns the code and fills rest/nrest. */
static ms_err load(fixture *f, char **envp, int argc, char **argv, char **rest, int *nrest,
                   ms_error *err)
{
    return ms_config_load(&f->c, envp, argc, argv, rest, nrest, err);
}

/* ---- defaults and types --------------------------------------------------------------------- */

static void test_defaults(void **state)
{
    ms_config *c = &((fixture *)*state)->c;
    assert_string_equal(c->listen, "127.0.0.1:8080");
    assert_string_equal(c->data_dir, "./data");
    assert_string_equal(c->log_level, "info");
    assert_string_equal(c->server, "http://127.0.0.1:8080");
    assert_int_equal(c->http_max_body_bytes, 64 << 20);
    assert_int_equal(c->http_max_connections, 256);
    assert_int_equal(c->http_body_budget_bytes, 256 << 20);
    assert_int_equal(c->limits_max_event_bytes, 1 << 20);
    assert_int_equal(c->limits_max_depth, 64);
    assert_int_equal(c->lanes_fast_max_bytes, 32 << 20);
    assert_int_equal(c->lanes_bulk_max_bytes, 64 << 20);
    assert_int_equal(c->engine_max_commit_events, 5000);
    assert_int_equal(c->engine_enqueue_timeout_ms, 2000);
    assert_string_equal(c->store_url, "sqlite");
    assert_string_equal(c->store_synchronous, "full");
    assert_int_equal(c->store_cache_mb, 64);
    assert_true(c->snapshots_enabled);
    assert_string_equal(c->snapshots_url, "");
    assert_int_equal(c->snapshots_max_object_bytes, 8 << 20);
    assert_int_equal(c->snapshots_max_object_age_ms, 60000);
    assert_int_equal(c->changes_max_wait_seconds, 60);
}

static void test_load_nothing_keeps_defaults(void **state)
{
    fixture *f = *state;
    ms_error err;
    char *rest[1];
    int nrest = -1;
    assert_int_equal(load(f, NULL, 0, NULL, rest, &nrest, &err), MS_OK);
    assert_int_equal(nrest, 0);
    assert_int_equal(err.code, MS_OK);
    assert_string_equal(f->c.listen, "127.0.0.1:8080");
}

static void test_size_suffixes(void **state)
{
    ms_config *c = &((fixture *)*state)->c;
    ms_error err;
    static const struct {
        const char *text;
        int64_t want;
    } cases[] = {
        {"1048576", 1048576},
        {"0", 0},
        {"64k", 64 << 10},
        {"64K", 64 << 10},
        {"64KiB", 64 << 10},
        {"64m", 64 << 20},
        {"64M", 64 << 20},
        {"64MiB", 64 << 20},
        {"64 MiB", 64 << 20},
        {"2g", (int64_t)2 << 30},
        {"2G", (int64_t)2 << 30},
        {"2GiB", (int64_t)2 << 30},
        {" 7 ", 7},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(ms_config_set(c, "http.max_body_bytes", cases[i].text, "test", &err),
                         MS_OK);
        assert_int_equal(c->http_max_body_bytes, cases[i].want);
    }
}

static void test_size_bad(void **state)
{
    ms_config *c = &((fixture *)*state)->c;
    ms_error err;
    assert_int_equal(
        ms_config_set(c, "http.max_body_bytes", "abc", "METASYNC_HTTP_MAX_BODY_BYTES", &err),
        MS_ERR_CONFIG);
    assert_non_null(strstr(err.detail, "http.max_body_bytes: \"abc\" is not a size"));
    assert_non_null(strstr(err.detail, "(from METASYNC_HTTP_MAX_BODY_BYTES)"));
    const char *bad[] = {
        "", "-1", "-1M", "12X", "1.5M", "M", "99999999999999999999", "9000000000000000000G"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ms_config_set(c, "http.max_body_bytes", bad[i], "test", &err),
                         MS_ERR_CONFIG);
        assert_non_null(strstr(err.detail, "http.max_body_bytes"));
        assert_non_null(strstr(err.detail, "(from test)"));
    }
    assert_int_equal(ms_config_set(c, "lanes.fast_max_bytes", "-5", "x", &err), MS_ERR_CONFIG);
    assert_non_null(strstr(err.detail, "must not be negative"));
    assert_int_equal(c->http_max_body_bytes, 64 << 20); /* unchanged by failures */
}

static void test_int_parse(void **state)
{
    ms_config *c = &((fixture *)*state)->c;
    ms_error err;
    assert_int_equal(ms_config_set(c, "engine.max_commit_events", "17", "t", &err), MS_OK);
    assert_int_equal(c->engine_max_commit_events, 17);
    assert_int_equal(ms_config_set(c, "engine.enqueue_timeout_ms", "0", "t", &err), MS_OK);
    assert_int_equal(c->engine_enqueue_timeout_ms, 0);
    assert_int_equal(ms_config_set(c, "changes.max_wait_seconds", "9223372036854775807", "t", &err),
                     MS_OK);
    assert_int_equal(c->changes_max_wait_seconds, INT64_MAX);
    const char *bad[] = {"", "-3", "1k", "ten", "1.0", "9223372036854775808", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ms_config_set(c, "limits.max_depth", bad[i], "--limits.max-depth", &err),
                         MS_ERR_CONFIG);
        assert_non_null(strstr(err.detail, "limits.max_depth: \""));
        assert_non_null(strstr(err.detail, "(from --limits.max-depth)"));
    }
    assert_int_equal(c->limits_max_depth, 64);
}

static void test_bool_parse(void **state)
{
    ms_config *c = &((fixture *)*state)->c;
    ms_error err;
    const char *no[] = {"false", "no", "off", "0", "FALSE", "Off"};
    const char *yes[] = {"true", "yes", "on", "1", "True", "YES"};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(ms_config_set(c, "snapshots.enabled", no[i], "t", &err), MS_OK);
        assert_false(c->snapshots_enabled);
        assert_int_equal(ms_config_set(c, "snapshots.enabled", yes[i], "t", &err), MS_OK);
        assert_true(c->snapshots_enabled);
    }
    assert_int_equal(ms_config_set(c, "snapshots.enabled", "maybe", "t", &err), MS_ERR_CONFIG);
    assert_non_null(strstr(err.detail, "snapshots.enabled: \"maybe\" is not a boolean"));
}

static void test_enum_and_strings(void **state)
{
    ms_config *c = &((fixture *)*state)->c;
    ms_error err;
    assert_int_equal(ms_config_set(c, "log.level", "debug", "t", &err), MS_OK);
    assert_string_equal(c->log_level, "debug");
    assert_int_equal(ms_config_set(c, "log.level", "WARN", "t", &err), MS_OK);
    assert_string_equal(c->log_level, "warn");
    assert_int_equal(ms_config_set(c, "log.level", "verbose", "t", &err), MS_ERR_CONFIG);
    assert_non_null(strstr(err.detail, "log.level: \"verbose\" is not one of error, warn"));
    assert_string_equal(c->log_level, "warn");
    assert_int_equal(ms_config_set(c, "store.synchronous", "normal", "t", &err), MS_OK);
    assert_string_equal(c->store_synchronous, "normal");
    assert_int_equal(ms_config_set(c, "store.synchronous", "off", "t", &err), MS_ERR_CONFIG);
    assert_int_equal(ms_config_set(c, "data_dir", "/var/lib/ms", "t", &err), MS_OK);
    assert_string_equal(c->data_dir, "/var/lib/ms");
    assert_int_equal(ms_config_set(c, "snapshots.url", "", "t", &err), MS_OK);
    assert_string_equal(c->snapshots_url, "");
    assert_int_equal(ms_config_set(c, "no.such.key", "1", "t", &err), MS_ERR_CONFIG);
    assert_non_null(strstr(err.detail, "unknown key 'no.such.key'"));
}

static void test_listen(void **state)
{
    ms_config *c = &((fixture *)*state)->c;
    ms_error err;
    const char *good[] = {"0.0.0.0:0", "localhost:65535", "[::1]:8080"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(ms_config_set(c, "listen", good[i], "t", &err), MS_OK);
        assert_string_equal(c->listen, good[i]);
    }
    const char *bad[] = {"8080", ":8080", "host:", "host:65536", "host:-1", "host:80x", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ms_config_set(c, "listen", bad[i], "t", &err), MS_ERR_CONFIG);
        assert_non_null(strstr(err.detail, "listen: \""));
    }
    assert_string_equal(c->listen, "[::1]:8080");
}

/* ---- YAML ----------------------------------------------------------------------------------- */

static void test_yaml_nested_and_dotted(void **state)
{
    fixture *f = *state;
    const char *path = write_yaml(f, "# MetaSync\n"
                                     "listen: 0.0.0.0:9000\n"
                                     "http:\n"
                                     "  max_body_bytes: 1M\n"
                                     "  max-connections: 10\n"
                                     "log:\n"
                                     "  level: debug\n"
                                     "limits.max_depth: 8\n"
                                     "snapshots:\n"
                                     "  enabled: no\n"
                                     "  url:\n"
                                     "store: {url: 'sqlite:/tmp/x.db', synchronous: normal}\n");
    char *argv[] = {"--config", (char *)path};
    char *rest[2];
    int nrest;
    ms_error err;
    ms_config_set(&f->c, "snapshots.url", "s3://b", "t", &err);
    assert_int_equal(load(f, NULL, 2, argv, rest, &nrest, &err), MS_OK);
    assert_int_equal(nrest, 0);
    assert_string_equal(f->c.listen, "0.0.0.0:9000");
    assert_int_equal(f->c.http_max_body_bytes, 1 << 20);
    assert_int_equal(f->c.http_max_connections, 10);
    assert_string_equal(f->c.log_level, "debug");
    assert_int_equal(f->c.limits_max_depth, 8);
    assert_false(f->c.snapshots_enabled);
    assert_string_equal(f->c.snapshots_url, "");
    assert_string_equal(f->c.store_url, "sqlite:/tmp/x.db");
    assert_string_equal(f->c.store_synchronous, "normal");
}

static void test_yaml_config_equals_and_env(void **state)
{
    fixture *f = *state;
    const char *path = write_yaml(f, "data_dir: /srv/a\n");
    char flag[600];
    snprintf(flag, sizeof flag, "--config=%s", path);
    char *argv[] = {flag};
    char *rest[1];
    int nrest;
    ms_error err;
    assert_int_equal(load(f, NULL, 1, argv, rest, &nrest, &err), MS_OK);
    assert_string_equal(f->c.data_dir, "/srv/a");

    char envc[600];
    snprintf(envc, sizeof envc, "METASYNC_CONFIG=%s", path);
    char *envp[] = {envc, NULL};
    ms_config_set(&f->c, "data_dir", "x", "t", &err);
    assert_int_equal(load(f, envp, 0, NULL, rest, &nrest, &err), MS_OK);
    assert_string_equal(f->c.data_dir, "/srv/a");
}

static void test_yaml_empty_file(void **state)
{
    fixture *f = *state;
    char *argv[] = {"--config", (char *)write_yaml(f, "# nothing here\n")};
    char *rest[2];
    int nrest;
    ms_error err;
    assert_int_equal(load(f, NULL, 2, argv, rest, &nrest, &err), MS_OK);
    assert_string_equal(f->c.data_dir, "./data");
}

static void test_yaml_syntax_error(void **state)
{
    fixture *f = *state;
    const char *path = write_yaml(f, "listen: 127.0.0.1:1\ndata_dir: a: b\n");
    char *argv[] = {"--config", (char *)path};
    char *rest[2];
    int nrest;
    ms_error err;
    assert_int_equal(load(f, NULL, 2, argv, rest, &nrest, &err), MS_ERR_CONFIG);
    assert_int_equal(err.line, 2);
    assert_true(err.column > 0);
    char want[600];
    snprintf(want, sizeof want, "%s:2:", path);
    assert_non_null(strstr(err.detail, want));
}

static void test_yaml_unknown_key(void **state)
{
    fixture *f = *state;
    const char *path = write_yaml(f, "http:\n  max_body_bytes: 1M\n  max_bodee: 2\n");
    char *argv[] = {"--config", (char *)path};
    char *rest[2];
    int nrest;
    ms_error err;
    assert_int_equal(load(f, NULL, 2, argv, rest, &nrest, &err), MS_ERR_CONFIG);
    char want[700];
    snprintf(want, sizeof want, "unknown key 'http.max_bodee' (in %s line 3)", path);
    assert_string_equal(err.detail, want);
    assert_int_equal(err.line, 3);
}

static void test_yaml_unknown_section(void **state)
{
    fixture *f = *state;
    char *argv[] = {"--config", (char *)write_yaml(f, "htpp:\n  max_body_bytes: 1M\n")};
    char *rest[2];
    int nrest;
    ms_error err;
    assert_int_equal(load(f, NULL, 2, argv, rest, &nrest, &err), MS_ERR_CONFIG);
    assert_non_null(strstr(err.detail, "unknown key 'htpp'"));
    assert_non_null(strstr(err.detail, "line 1"));
}

static void test_yaml_sequence_and_bad_value(void **state)
{
    fixture *f = *state;
    char *argv[] = {"--config", (char *)write_yaml(f, "data_dir: x\nlisten:\n  - a:1\n")};
    char *rest[2];
    int nrest;
    ms_error err;
    assert_int_equal(load(f, NULL, 2, argv, rest, &nrest, &err), MS_ERR_CONFIG);
    assert_non_null(strstr(err.detail, "listen:"));
    assert_non_null(strstr(err.detail, "line 2"));
    unlink(f->path);

    argv[1] = (char *)write_yaml(f, "\nengine:\n  max_commit_events: lots\n");
    assert_int_equal(load(f, NULL, 2, argv, rest, &nrest, &err), MS_ERR_CONFIG);
    char want[700];
    snprintf(want, sizeof want,
             "engine.max_commit_events: \"lots\" is not a whole number (from %s line 3)", f->path);
    assert_string_equal(err.detail, want);
    assert_int_equal(err.line, 3);
}

static void test_yaml_missing_file(void **state)
{
    fixture *f = *state;
    char *argv[] = {"--config", "/nonexistent/metasync.yaml"};
    char *rest[2];
    int nrest;
    ms_error err;
    assert_int_equal(load(f, NULL, 2, argv, rest, &nrest, &err), MS_ERR_IO);
    assert_non_null(strstr(err.detail, "/nonexistent/metasync.yaml"));
    assert_non_null(strstr(err.detail, strerror(ENOENT)));
    char *argv2[] = {"--config", "/tmp"};
    assert_int_equal(load(f, NULL, 2, argv2, rest, &nrest, &err), MS_ERR_IO);
    char *argv3[] = {"--config"};
    assert_int_equal(load(f, NULL, 1, argv3, rest, &nrest, &err), MS_ERR_CONFIG);
}

/* ---- environment and flags ------------------------------------------------------------------ */

static void test_env_over_yaml_flag_over_env(void **state)
{
    fixture *f = *state;
    const char *path = write_yaml(f, "data_dir: from-yaml\nlisten: h:1\nserver: http://yaml\n");
    char *envp[] = {"HOME=/root", "METASYNC_DATA_DIR=from-env", "METASYNC_LISTEN=h:2",
                    "METASYNC_TEST_WHATEVER=1", NULL};
    char *argv[] = {"--config", (char *)path, "--listen", "h:3"};
    char *rest[4];
    int nrest;
    ms_error err;
    assert_int_equal(load(f, envp, 4, argv, rest, &nrest, &err), MS_OK);
    assert_string_equal(f->c.server, "http://yaml");
    assert_string_equal(f->c.data_dir, "from-env");
    assert_string_equal(f->c.listen, "h:3");
    assert_int_equal(nrest, 0);
}

static void test_env_bad_value_names_variable(void **state)
{
    fixture *f = *state;
    char *envp[] = {"METASYNC_HTTP_MAX_BODY_BYTES=abc", NULL};
    char *rest[1];
    int nrest;
    ms_error err;
    assert_int_equal(load(f, envp, 0, NULL, rest, &nrest, &err), MS_ERR_CONFIG);
    assert_string_equal(err.detail, "http.max_body_bytes: \"abc\" is not a size (use bytes or a "
                                    "suffix: 64k, 8M, 64MiB, 1G) (from "
                                    "METASYNC_HTTP_MAX_BODY_BYTES)");
}

static void test_env_unknown_variable(void **state)
{
    fixture *f = *state;
    char *envp[] = {"METASYNC_FOO=1", NULL};
    char *rest[1];
    int nrest;
    ms_error err;
    assert_int_equal(load(f, envp, 0, NULL, rest, &nrest, &err), MS_ERR_CONFIG);
    assert_string_equal(err.detail,
                        "unknown environment variable METASYNC_FOO (no config key foo)");
    char *ok[] = {"METASYNC_SNAPSHOTS_ENABLED=off", "METASYNC_LOG_LEVEL=error",
                  "METASYNC_STORE_CACHE_MB=8", "NOT_METASYNC_X=1", NULL};
    assert_int_equal(load(f, ok, 0, NULL, rest, &nrest, &err), MS_OK);
    assert_false(f->c.snapshots_enabled);
    assert_string_equal(f->c.log_level, "error");
    assert_int_equal(f->c.store_cache_mb, 8);
}

static void test_flag_forms(void **state)
{
    fixture *f = *state;
    char *argv[] = {"--data-dir",
                    "/d1",
                    "--http.max-body-bytes=1M",
                    "--http.max_connections",
                    "3",
                    "--log.level=warn",
                    "--store-cache-mb=1"};
    char *rest[7];
    int nrest;
    ms_error err;
    /* --store-cache-mb is not the key (store.cache_mb): it passes through */
    assert_int_equal(load(f, NULL, 7, argv, rest, &nrest, &err), MS_OK);
    assert_string_equal(f->c.data_dir, "/d1");
    assert_int_equal(f->c.http_max_body_bytes, 1 << 20);
    assert_int_equal(f->c.http_max_connections, 3);
    assert_string_equal(f->c.log_level, "warn");
    assert_int_equal(nrest, 1);
    assert_string_equal(rest[0], "--store-cache-mb=1");

    char *argv2[] = {"--data_dir=/d2", "--store.cache-mb", "5", "--engine.max_commit-events=9"};
    assert_int_equal(load(f, NULL, 4, argv2, rest, &nrest, &err), MS_OK);
    assert_string_equal(f->c.data_dir, "/d2");
    assert_int_equal(f->c.store_cache_mb, 5);
    assert_int_equal(f->c.engine_max_commit_events, 9);
    assert_int_equal(nrest, 0);
}

static void test_flag_bad_value(void **state)
{
    fixture *f = *state;
    char *argv[] = {"--http.max-body-bytes", "-1"};
    char *rest[2];
    int nrest;
    ms_error err;
    assert_int_equal(load(f, NULL, 2, argv, rest, &nrest, &err), MS_ERR_CONFIG);
    assert_non_null(strstr(err.detail, "http.max_body_bytes: \"-1\""));
    assert_non_null(strstr(err.detail, "(from --http.max-body-bytes)"));
}

static void test_bool_flags(void **state)
{
    fixture *f = *state;
    char *argv[] = {"--no-snapshots.enabled"};
    char *rest[3];
    int nrest;
    ms_error err;
    assert_int_equal(load(f, NULL, 1, argv, rest, &nrest, &err), MS_OK);
    assert_false(f->c.snapshots_enabled);
    char *argv2[] = {"--snapshots.enabled", "pos"};
    assert_int_equal(load(f, NULL, 2, argv2, rest, &nrest, &err), MS_OK);
    assert_true(f->c.snapshots_enabled);
    assert_int_equal(nrest, 1);
    assert_string_equal(rest[0], "pos");
    char *argv3[] = {"--snapshots.enabled=off"};
    assert_int_equal(load(f, NULL, 1, argv3, rest, &nrest, &err), MS_OK);
    assert_false(f->c.snapshots_enabled);
    char *argv4[] = {"--no_snapshots.enabled=1"};
    assert_int_equal(load(f, NULL, 1, argv4, rest, &nrest, &err), MS_ERR_CONFIG);
    char *argv5[] = {"--no-data-dir"};
    assert_int_equal(load(f, NULL, 1, argv5, rest, &nrest, &err), MS_OK);
    assert_int_equal(nrest, 1);
}

static void test_rest_passthrough(void **state)
{
    fixture *f = *state;
    char *argv[] = {"pos1", "--follow", "--listen", "h:9", "-v", "pos2", "--", "--data-dir", "x"};
    char *rest[9];
    int nrest;
    ms_error err;
    assert_int_equal(load(f, NULL, 9, argv, rest, &nrest, &err), MS_OK);
    assert_string_equal(f->c.listen, "h:9");
    assert_string_equal(f->c.data_dir, "./data");
    assert_int_equal(nrest, 7);
    const char *want[] = {"pos1", "--follow", "-v", "pos2", "--", "--data-dir", "x"};
    for (int i = 0; i < 7; i++) {
        assert_ptr_equal(rest[i], argv[i < 2 ? i : i + 2]);
        assert_string_equal(rest[i], want[i]);
    }
}

static void test_missing_flag_value(void **state)
{
    fixture *f = *state;
    char *rest[3];
    int nrest;
    ms_error err;
    char *argv[] = {"pos", "--data-dir"};
    assert_int_equal(load(f, NULL, 2, argv, rest, &nrest, &err), MS_ERR_CONFIG);
    assert_non_null(strstr(err.detail, "data_dir: missing value (from --data-dir)"));
    char *argv2[] = {"--listen", "--follow"};
    assert_int_equal(load(f, NULL, 2, argv2, rest, &nrest, &err), MS_ERR_CONFIG);
    assert_non_null(strstr(err.detail, "listen: missing value"));
}

/* ---- help and docs -------------------------------------------------------------------------- */

static const char *const all_keys[] = {
    "listen",
    "data_dir",
    "log.level",
    "server",
    "http.max_body_bytes",
    "http.max_connections",
    "http.body_budget_bytes",
    "limits.max_event_bytes",
    "limits.max_depth",
    "lanes.fast_max_bytes",
    "lanes.bulk_max_bytes",
    "engine.max_commit_events",
    "engine.enqueue_timeout_ms",
    "store.url",
    "store.synchronous",
    "store.cache_mb",
    "snapshots.enabled",
    "snapshots.url",
    "snapshots.max_object_bytes",
    "snapshots.max_object_age_ms",
    "changes.max_wait_seconds",
};

static void test_markdown(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    ms_config_markdown(out);
    fclose(out);
    assert_non_null(strstr(text, "| Key | Type | Default | Environment | Flag | Description |"));
    assert_non_null(strstr(text, "METASYNC_HTTP_MAX_BODY_BYTES"));
    assert_non_null(strstr(text, "`--http.max-body-bytes`"));
    for (size_t i = 0; i < sizeof all_keys / sizeof all_keys[0]; i++) {
        char cell[100];
        snprintf(cell, sizeof cell, "| `%s` |", all_keys[i]);
        assert_non_null(strstr(text, cell));
    }
    free(text);
}

static void test_help(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    ms_config_print_help(out);
    fclose(out);
    assert_non_null(strstr(text, "--data-dir TEXT"));
    assert_non_null(strstr(text, "[default: 64MiB] (env METASYNC_HTTP_MAX_BODY_BYTES)"));
    assert_non_null(strstr(text, "--[no-]snapshots.enabled"));
    for (size_t i = 0; i < sizeof all_keys / sizeof all_keys[0]; i++) {
        char env[100] = "METASYNC_";
        size_t j = strlen(env);
        for (const char *k = all_keys[i]; *k; k++)
            env[j++] = *k == '.' ? '_' : (char)(*k >= 'a' && *k <= 'z' ? *k - 32 : *k);
        env[j] = '\0';
        assert_non_null(strstr(text, env));
    }
    free(text);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_load_nothing_keeps_defaults),
        T(test_size_suffixes),
        T(test_size_bad),
        T(test_int_parse),
        T(test_bool_parse),
        T(test_enum_and_strings),
        T(test_listen),
        T(test_yaml_nested_and_dotted),
        T(test_yaml_config_equals_and_env),
        T(test_yaml_empty_file),
        T(test_yaml_syntax_error),
        T(test_yaml_unknown_key),
        T(test_yaml_unknown_section),
        T(test_yaml_sequence_and_bad_value),
        T(test_yaml_missing_file),
        T(test_env_over_yaml_flag_over_env),
        T(test_env_bad_value_names_variable),
        T(test_env_unknown_variable),
        T(test_flag_forms),
        T(test_flag_bad_value),
        T(test_bool_flags),
        T(test_rest_passthrough),
        T(test_missing_flag_value),
        T(test_markdown),
        T(test_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
