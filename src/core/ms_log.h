/*
 * ms_log.h — leveled logging to a stream, one line per message:
 *   2026-11-23T19:00:00.123Z info  http: listening on 127.0.0.1:8080
 * A logger is a small value passed by pointer to whoever logs (no global logger). Lines are
 * written with one fprintf each, so lines from several threads never interleave mid-line.
 */
#ifndef MS_LOG_H
#define MS_LOG_H

#include <stdio.h>

typedef enum { MS_LOG_ERROR = 0, MS_LOG_WARN, MS_LOG_INFO, MS_LOG_DEBUG } ms_log_level;

typedef struct ms_log {
    ms_log_level level;
    FILE *out;
} ms_log;

/* Parses "error|warn|info|debug"; returns MS_LOG_INFO for anything else. */
ms_log_level ms_log_level_parse(const char *s);

/* Writes one line if lvl <= log->level. log may be NULL (then nothing is written). */
void ms_log_write(const ms_log *log, ms_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define ms_log_error(l, ...) ms_log_write((l), MS_LOG_ERROR, __VA_ARGS__)
#define ms_log_warn(l, ...) ms_log_write((l), MS_LOG_WARN, __VA_ARGS__)
#define ms_log_info(l, ...) ms_log_write((l), MS_LOG_INFO, __VA_ARGS__)
#define ms_log_debug(l, ...) ms_log_write((l), MS_LOG_DEBUG, __VA_ARGS__)

/* Formats the current UTC time as RFC 3339 with milliseconds ("2026-11-23T19:00:00.123Z") into
 * buf (at least 32 bytes). Returns buf. */
char *ms_time_rfc3339(char *buf, size_t len);
/* Monotonic clock in milliseconds / nanoseconds. */
unsigned long long ms_now_ms(void);
unsigned long long ms_now_ns(void);

#endif
