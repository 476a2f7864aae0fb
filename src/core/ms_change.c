/* ms_change.c — serialization of the change record (see ms_change.h). */
#include "ms_change.h"

void ms_change_to_json(const ms_change *c, ms_buf *out)
{
    ms_buf_puts(out, "{\"seq\":");
    ms_buf_put_u64(out, c->seq);
    ms_buf_puts(out, ",\"tenant\":");
    ms_buf_put_jstr(out, c->tenant);
    ms_buf_puts(out, ",\"op\":");
    ms_buf_put_jstr(out, c->op);
    ms_buf_puts(out, ",\"qualified_name\":");
    ms_buf_put_jstr(out, c->qn);
    ms_buf_puts(out, ",\"type\":");
    ms_buf_put_jstr(out, c->type);
    ms_buf_puts(out, ",\"version\":");
    ms_buf_put_i64(out, c->version);
    ms_buf_puts(out, ",\"before\":");
    ms_buf_puts(out, c->before ? c->before : "null");
    ms_buf_puts(out, ",\"after\":");
    ms_buf_puts(out, c->after ? c->after : "null");
    ms_buf_puts(out, ",\"changed\":");
    ms_buf_puts(out, c->changed ? c->changed : "[]");
    ms_buf_puts(out, ",\"cause\":");
    ms_buf_put_jstr(out, c->cause);
    ms_buf_puts(out, ",\"ts\":");
    ms_buf_put_jstr(out, c->ts);
    ms_buf_putc(out, '}');
}
