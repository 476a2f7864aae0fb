/*
 * cmd_migrate.c — `metasync migrate`: brings the configured store's schema up to date without
 * starting the engine, and prints the versions it applied. For PostgreSQL this is how the
 * schema's owner prepares a database (and grants the application role its rights) before
 * workers connect as the application role; the store also migrates at open when it can.
 */
#include "cli_http.h"
#include "ms_cli.h"
#include "ms_plugins.h"
#include "store/postgres/ms_store_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fputs(
        "Usage: metasync migrate [--app-role ROLE] [--store.url URL]\n"
        "\n"
        "Applies the store's pending schema migrations and prints what it applied, then the\n"
        "schema version. PostgreSQL (store.url=postgres://…): run it as the owner of the schema;\n"
        "migrations take pg_advisory_lock, so concurrent runs and starting workers never race.\n"
        "SQLite: opens the database file, which creates or upgrades it.\n"
        "\n"
        "Options:\n"
        "  --app-role ROLE  (PostgreSQL) grant ROLE what the store needs on every table; the\n"
        "                   store should connect as ROLE, which row-level security applies to\n"
        "  -h, --help       show this help\n"
        "\n"
        "Exit codes: 0 up to date; 2 usage or configuration error; 4 migration failed.\n"
        "\n"
        "Configuration flags (e.g. --store.url URL, METASYNC_STORE_URL): see `metasync config "
        "--help`.\n",
        out);
}

/* Opens and closes a store of another kind: its open() creates or upgrades the schema. */
static int migrate_by_open(const ms_config *cfg, const ms_store_ops *ops)
{
    ms_log log = {ms_log_level_parse(cfg->log_level), stderr};
    ms_store_open_args oa = {cfg, &log, cfg->store_url, NULL};
    ms_error err;
    ms_error_clear(&err);
    void *ctx = NULL;
    if (ops->open(&oa, &ctx, &err) != MS_OK) {
        fprintf(stderr, "metasync migrate: %s\n", err.detail);
        return MS_EXIT_INTERNAL;
    }
    ops->close(ctx);
    printf("%s: schema up to date\n", ops->name);
    return MS_EXIT_OK;
}

int ms_cmd_migrate(int argc, char **argv, char **envp)
{
    if (ms_cli_wants_help(argc, argv)) {
        usage(stdout);
        return MS_EXIT_OK;
    }
    ms_config cfg;
    char **rest;
    int nrest;
    int rc = ms_cli_load_config("migrate", &cfg, argc, argv, envp, &rest, &nrest);
    if (rc != MS_EXIT_OK) return rc;
    const char *role = NULL;
    for (int i = 0; rc == MS_EXIT_OK && i < nrest; i++) {
        int m = ms_cli_opt("metasync migrate", nrest, rest, &i, "--app-role", &role);
        if (m < 0) {
            rc = MS_EXIT_USAGE;
        } else if (m == 0) {
            fprintf(stderr, "metasync migrate: unknown argument %s (see --help)\n", rest[i]);
            rc = MS_EXIT_USAGE;
        }
    }
    const ms_store_ops *ops = rc == MS_EXIT_OK ? ms_plugins_store(cfg.store_url) : NULL;
    if (rc == MS_EXIT_OK && !ops) {
        fprintf(stderr, "metasync migrate: store.url: no store for '%s'\n", cfg.store_url);
        rc = MS_EXIT_USAGE;
    }
    if (rc == MS_EXIT_OK && strcmp(ops->name, "postgres") != 0) {
        rc = role ? (fprintf(stderr, "metasync migrate: --app-role is for PostgreSQL\n"),
                     MS_EXIT_USAGE)
                  : migrate_by_open(&cfg, ops);
    } else if (rc == MS_EXIT_OK) {
        ms_buf applied = MS_BUF_INIT;
        ms_error err;
        ms_error_clear(&err);
        int version = 0;
        if (ms_store_pg_migrate(cfg.store_url, role, &applied, &version, &err) != MS_OK) {
            fprintf(stderr, "metasync migrate: %s\n", err.detail);
            rc = MS_EXIT_INTERNAL;
        } else {
            printf("applied: %s\nschema version: %d\n", applied.len ? applied.data : "none",
                   version);
            if (role) printf("granted: %s\n", role);
        }
        ms_buf_free(&applied);
    }
    free(rest);
    ms_config_free(&cfg);
    return rc;
}
