/*
 * cmd_config.c — `metasync config`: prints the effective configuration keys (--help), or the
 * Markdown reference (--markdown, the source of docs/config.md), or checks a configuration
 * (--check: loads file, environment and flags and reports the first error).
 */
#include "ms_cli.h"
#include "ms_config.h"

#include <stdio.h>
#include <string.h>

int ms_cmd_config(int argc, char **argv, char **envp)
{
    bool markdown = false, check = false;
    ms_config cfg;
    ms_config_defaults(&cfg);
    char *rest[argc + 1];
    int nrest = 0;
    ms_error err;
    ms_error_clear(&err);
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("Usage: metasync config [--markdown | --check] [CONFIG FLAGS...]\n\n"
                   "--markdown  print the configuration reference (docs/config.md)\n"
                   "--check     load --config FILE, METASYNC_* and flags; report the first "
                   "error\n\nExit codes: 0 ok; 2 invalid configuration.\n\nKeys:\n");
            ms_config_print_help(stdout);
            ms_config_free(&cfg);
            return MS_EXIT_OK;
        }
    ms_err rc = ms_config_load(&cfg, envp, argc, argv, rest, &nrest, &err);
    for (int i = 0; rc == MS_OK && i < nrest; i++) {
        if (strcmp(rest[i], "--markdown") == 0)
            markdown = true;
        else if (strcmp(rest[i], "--check") == 0)
            check = true;
        else
            rc = ms_error_set(&err, MS_ERR_USAGE, "unexpected argument '%s'", rest[i]);
    }
    if (rc != MS_OK) {
        fprintf(stderr, "metasync config: %s\n", err.detail);
        ms_config_free(&cfg);
        return MS_EXIT_USAGE;
    }
    if (markdown)
        ms_config_markdown(stdout);
    else if (check)
        printf("configuration ok\n");
    else
        ms_config_print_help(stdout);
    ms_config_free(&cfg);
    return MS_EXIT_OK;
}
