/*
 * main.c — the `metasync` command: dispatches to a subcommand (src/cli/cmd_*.c).
 */
#include "ms_cli.h"

#include <stdio.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv, char **envp);
    const char *help;
} command;

static const command commands[] = {
    {"serve", ms_cmd_serve, "run the engine and its HTTP API"},
    {"ingest", ms_cmd_ingest, "stream NDJSON events (FILE or -) to a running server"},
    {"get", ms_cmd_get, "print one asset by qualified name"},
    {"changes", ms_cmd_changes, "print the change feed (--follow to keep reading)"},
    {"demo", ms_cmd_demo, "load a sample estate into a running server"},
    {"dlq", ms_cmd_dlq, "list or replay Kafka dead letters (dlq list|replay)"},
    {"config", ms_cmd_config, "print or check the configuration keys"},
    {"migrate", ms_cmd_migrate, "bring the store's schema up to date (PostgreSQL: as its owner)"},
    {"avro", ms_cmd_avro, "check, decode, encode or fingerprint Avro schemas and datums"},
    {"tenant", ms_cmd_tenant, "list, create, update or disable tenants"},
    {"apikey", ms_cmd_apikey, "list, create or revoke API keys"},
    {"connection", ms_cmd_connection, "manage connections to sources (credentials from a file)"},
    {"user", ms_cmd_user, "manage the users of a tenant"},
    {"version", NULL, "print the version"},
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: metasync COMMAND [OPTIONS]\n\nMetaSync %s — real-time metadata sync "
            "engine.\n\nCommands:\n",
            MS_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\nRun `metasync COMMAND --help` for a command's options.\n"
                 "Exit codes: 0 ok; 1 refused (rejected events, not found); 2 usage or "
                 "configuration;\n3 server unreachable; 4 internal error.\n");
}

int main(int argc, char **argv, char **envp)
{
    if (argc < 2) {
        usage(stderr);
        return MS_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return MS_EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("metasync %s\n", MS_VERSION);
        return MS_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (commands[i].run && strcmp(commands[i].name, cmd) == 0)
            return commands[i].run(argc - 2, argv + 2, envp);
    fprintf(stderr, "metasync: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return MS_EXIT_USAGE;
}
