/*
 * cmd_serve.c — `metasync serve`: runs the engine with its HTTP API until SIGINT/SIGTERM, then
 * stops taking requests, commits what is queued, flushes the sinks and exits 0.
 * `serve` never loads sample data (that is `metasync demo`, which `make run` calls on a fresh
 * data directory).
 */
#include "ms_cli.h"
#include "ms_runtime.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static void serve_usage(FILE *out)
{
    fprintf(out,
            "Usage: metasync serve [--config FILE] [--listen HOST:PORT] [--data-dir DIR] [KEY "
            "FLAGS...]\n\n"
            "Runs MetaSync: the HTTP ingest and query API (docs/api.md), the embedded store and\n"
            "the snapshot sink. Port 0 picks a free port; the chosen address is logged.\n"
            "Stops cleanly on SIGINT or SIGTERM (queued events are committed first).\n\n"
            "Exit codes: 0 stopped cleanly; 2 bad configuration; 4 could not start (store,\n"
            "port in use).\n\nConfiguration (flag, environment METASYNC_*, or YAML --config):\n");
    ms_config_print_help(out);
}

int ms_cmd_serve(int argc, char **argv, char **envp)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            serve_usage(stdout);
            return MS_EXIT_OK;
        }
    ms_config cfg;
    ms_config_defaults(&cfg);
    char *rest[argc + 1];
    int nrest = 0;
    ms_error err;
    ms_error_clear(&err);
    if (ms_config_load(&cfg, envp, argc, argv, rest, &nrest, &err) != MS_OK) {
        fprintf(stderr, "metasync serve: %s\n", err.detail);
        ms_config_free(&cfg);
        return MS_EXIT_USAGE;
    }
    if (nrest) {
        fprintf(stderr, "metasync serve: unexpected argument '%s' (see --help)\n", rest[0]);
        ms_config_free(&cfg);
        return MS_EXIT_USAGE;
    }
    /* Block the stop signals in every thread; this one waits for them with sigwait. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    ms_runtime rt;
    int code = MS_EXIT_OK;
    if (ms_runtime_open(&rt, &cfg, &err) != MS_OK) {
        fprintf(stderr, "metasync serve: %s: %s\n", ms_err_code(err.code), err.detail);
        ms_config_free(&cfg);
        return err.code == MS_ERR_CONFIG ? MS_EXIT_USAGE : MS_EXIT_INTERNAL;
    }
    if (ms_runtime_start_sources(&rt, &err) != MS_OK) {
        fprintf(stderr, "metasync serve: %s: %s\n", ms_err_code(err.code), err.detail);
        code = err.code == MS_ERR_CONFIG ? MS_EXIT_USAGE : MS_EXIT_INTERNAL;
    } else {
        ms_log_info(&rt.log, "metasync %s ready: data in %s; stop with Ctrl-C", MS_VERSION,
                    cfg.data_dir);
        int sig = 0;
        sigwait(&set, &sig);
        ms_log_info(&rt.log, "metasync: %s received, stopping",
                    sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
    ms_runtime_close(&rt);
    ms_config_free(&cfg);
    return code;
}
