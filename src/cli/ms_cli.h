/*
 * ms_cli.h — the subcommands of the `metasync` binary. main.c dispatches argv[1] to one of these.
 *
 * Each command receives the arguments after its name (argv[0] is the first of them) and the
 * environment, loads the configuration itself (ms_config_load) so that --config, METASYNC_* and
 * config flags work everywhere, prints its own --help, and returns an exit code:
 *   0 success; 1 the command ran but something was refused (rejected events, asset not found);
 *   2 usage or configuration error; 3 the server could not be reached or answered 5xx;
 *   4 internal error (store could not open, etc.).
 * Client commands (ingest, get, changes, demo) talk to a running server at the config key
 * `server` (default http://127.0.0.1:8080) through libcurl.
 */
#ifndef MS_CLI_H
#define MS_CLI_H

enum { MS_EXIT_OK = 0, MS_EXIT_REFUSED = 1, MS_EXIT_USAGE = 2, MS_EXIT_UNREACHABLE = 3,
       MS_EXIT_INTERNAL = 4 };

int ms_cmd_serve(int argc, char **argv, char **envp);
int ms_cmd_ingest(int argc, char **argv, char **envp);
int ms_cmd_get(int argc, char **argv, char **envp);
int ms_cmd_changes(int argc, char **argv, char **envp);
int ms_cmd_demo(int argc, char **argv, char **envp);
int ms_cmd_config(int argc, char **argv, char **envp);
int ms_cmd_dlq(int argc, char **argv, char **envp);
/* `metasync migrate`: applies the store's pending schema migrations and prints them. */
int ms_cmd_migrate(int argc, char **argv, char **envp);
/* `metasync avro`: developer tools over the Avro codec; needs no configuration or server. */
int ms_cmd_avro(int argc, char **argv, char **envp);
/* `metasync tenant|apikey|connection|user VERB`: the control plane of a running server
 * (cmd_control.c); secrets are read from files or stdin, never from argv. */
int ms_cmd_tenant(int argc, char **argv, char **envp);
int ms_cmd_apikey(int argc, char **argv, char **envp);
int ms_cmd_connection(int argc, char **argv, char **envp);
int ms_cmd_user(int argc, char **argv, char **envp);

#endif
