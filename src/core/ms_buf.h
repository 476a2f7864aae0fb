/*
 * ms_buf.h — a growable byte buffer, the string builder of MetaSync, with JSON string escaping.
 *
 * Out-of-memory policy for the whole core (written once, here): small allocations go through
 * ms_xmalloc/ms_xrealloc/ms_xstrdup, which abort the process on failure. Memory is bounded by
 * design (bounded queues, body limits), so running out means the host is broken; a crash restarts
 * cleanly because nothing is acknowledged before it is durable.
 *
 * Ownership: an ms_buf owns its data; ms_buf_free releases it; ms_buf_steal hands it to the caller.
 * Not thread-safe: one buffer belongs to one thread at a time.
 */
#ifndef MS_BUF_H
#define MS_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

void *ms_xmalloc(size_t n);
void *ms_xcalloc(size_t n, size_t size);
void *ms_xrealloc(void *p, size_t n);
char *ms_xstrdup(const char *s);               /* NULL in, NULL out */
char *ms_xstrndup(const char *s, size_t n);

typedef struct ms_buf {
    char *data; /* always NUL-terminated when len > 0 or after any append */
    size_t len;
    size_t cap;
} ms_buf;

#define MS_BUF_INIT {NULL, 0, 0}

void ms_buf_init(ms_buf *b);
void ms_buf_free(ms_buf *b);
void ms_buf_reset(ms_buf *b);                  /* len = 0, keeps capacity */
void ms_buf_reserve(ms_buf *b, size_t extra);  /* room for extra more bytes + NUL */
void ms_buf_append(ms_buf *b, const void *p, size_t n);
void ms_buf_puts(ms_buf *b, const char *s);
void ms_buf_putc(ms_buf *b, char c);
void ms_buf_printf(ms_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ms_buf_vprintf(ms_buf *b, const char *fmt, va_list ap);
void ms_buf_put_i64(ms_buf *b, int64_t v);
void ms_buf_put_u64(ms_buf *b, uint64_t v);
/* Appends s as a JSON string literal with quotes; NULL appends `null`. Escapes control
 * characters, quote and backslash; passes valid UTF-8 through unchanged. */
void ms_buf_put_jstr(ms_buf *b, const char *s);
void ms_buf_put_jstrn(ms_buf *b, const char *s, size_t n);
/* Appends s percent-encoded: every byte but the unreserved ones (A-Z a-z 0-9 - _ . ~) as %XX.
 * For a URL path segment or a query parameter. */
void ms_buf_put_pct(ms_buf *b, const char *s);
/* Returns the data (NUL-terminated, never NULL) and leaves b empty; caller frees. */
char *ms_buf_steal(ms_buf *b);
/* Returns b's text, "" when empty. Valid until the next change to b. */
const char *ms_buf_cstr(const ms_buf *b);

#endif
