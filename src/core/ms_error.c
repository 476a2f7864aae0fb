/* ms_error.c — names, messages and HTTP statuses of the error enum, and the error object. */
#include "ms_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct err_row {
    const char *code;
    int status;
    bool retriable;
    const char *msg;
};

static const struct err_row err_rows[MS_ERR__COUNT] = {
#define MS_ERR_ROW_(name, code, status, retriable, msg) [name] = {code, status, retriable, msg},
    MS_ERR_LIST(MS_ERR_ROW_)
#undef MS_ERR_ROW_
};

const char *ms_err_code(ms_err e)
{
    return (unsigned)e < MS_ERR__COUNT ? err_rows[e].code : "unknown";
}

const char *ms_err_message(ms_err e)
{
    return (unsigned)e < MS_ERR__COUNT ? err_rows[e].msg : "unknown error";
}

int ms_err_http_status(ms_err e)
{
    return (unsigned)e < MS_ERR__COUNT ? err_rows[e].status : 500;
}

bool ms_err_is_retriable(ms_err e)
{
    return (unsigned)e < MS_ERR__COUNT && err_rows[e].retriable;
}

ms_err ms_err_from_code(const char *code)
{
    for (int i = 0; code && i < MS_ERR__COUNT; i++)
        if (strcmp(err_rows[i].code, code) == 0) return (ms_err)i;
    return MS_ERR__COUNT;
}

void ms_error_clear(ms_error *e)
{
    if (!e) return;
    e->code = MS_OK;
    e->detail[0] = '\0';
    e->line = e->column = 0;
    e->offset = -1;
    e->src_file = NULL;
    e->src_line = 0;
}

ms_err ms_error_set_(ms_error *e, ms_err code, const char *file, int line, const char *fmt, ...)
{
    if (!e) return code;
    e->code = code;
    e->src_file = file;
    e->src_line = line;
    e->line = e->column = 0;
    e->offset = -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof e->detail, fmt, ap);
    va_end(ap);
    return code;
}

void ms_error_at(ms_error *e, long line, long column, long offset)
{
    if (!e) return;
    e->line = line;
    e->column = column;
    e->offset = offset;
}
