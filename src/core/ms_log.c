/* ms_log.c — leveled logging and clocks (see ms_log.h). */
#include "ms_log.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

static const char *const level_names[] = {"error", "warn ", "info ", "debug"};

ms_log_level ms_log_level_parse(const char *s)
{
    if (!s) return MS_LOG_INFO;
    if (strcmp(s, "error") == 0) return MS_LOG_ERROR;
    if (strcmp(s, "warn") == 0) return MS_LOG_WARN;
    if (strcmp(s, "debug") == 0) return MS_LOG_DEBUG;
    return MS_LOG_INFO;
}

char *ms_time_rfc3339(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
    return buf;
}

unsigned long long ms_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

unsigned long long ms_now_ms(void)
{
    return ms_now_ns() / 1000000ull;
}

void ms_log_write(const ms_log *log, ms_log_level lvl, const char *fmt, ...)
{
    if (!log || lvl > log->level) return;
    char msg[1024], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(log->out ? log->out : stderr, "%s %s %s\n", ms_time_rfc3339(ts, sizeof ts),
            level_names[lvl], msg);
    fflush(log->out ? log->out : stderr);
}
