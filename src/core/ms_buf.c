/* ms_buf.c — growable buffer, JSON string escaping, aborting allocators (see ms_buf.h). */
#include "ms_buf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "metasync: out of memory allocating %zu bytes\n", n);
    abort();
}

void *ms_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *ms_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *ms_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *ms_xstrdup(const char *s)
{
    return s ? ms_xstrndup(s, strlen(s)) : NULL;
}

char *ms_xstrndup(const char *s, size_t n)
{
    char *p = ms_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void ms_buf_init(ms_buf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
}

void ms_buf_free(ms_buf *b)
{
    free(b->data);
    ms_buf_init(b);
}

void ms_buf_reset(ms_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void ms_buf_reserve(ms_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    b->data = ms_xrealloc(b->data, cap);
    b->cap = cap;
}

void ms_buf_append(ms_buf *b, const void *p, size_t n)
{
    ms_buf_reserve(b, n);
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void ms_buf_puts(ms_buf *b, const char *s)
{
    ms_buf_append(b, s, strlen(s));
}

void ms_buf_putc(ms_buf *b, char c)
{
    ms_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void ms_buf_vprintf(ms_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    ms_buf_reserve(b, 64);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    if (n >= 0 && (size_t)n >= b->cap - b->len) {
        ms_buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
    }
    va_end(ap2);
    if (n > 0) b->len += (size_t)n;
}

void ms_buf_printf(ms_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ms_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void ms_buf_put_i64(ms_buf *b, int64_t v)
{
    ms_buf_printf(b, "%" PRId64, v);
}

void ms_buf_put_u64(ms_buf *b, uint64_t v)
{
    ms_buf_printf(b, "%" PRIu64, v);
}

void ms_buf_put_jstrn(ms_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    ms_buf_reserve(b, n + 2);
    b->data[b->len++] = '"';
    size_t run = 0; /* start of the pending run of bytes that need no escaping */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        ms_buf_append(b, s + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', 0};
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            ms_buf_append(b, esc, 6);
            continue;
        }
        ms_buf_append(b, esc, 2);
    }
    ms_buf_append(b, s + run, n - run);
    ms_buf_putc(b, '"');
}

void ms_buf_put_jstr(ms_buf *b, const char *s)
{
    if (!s)
        ms_buf_puts(b, "null");
    else
        ms_buf_put_jstrn(b, s, strlen(s));
}

char *ms_buf_steal(ms_buf *b)
{
    char *p = b->data ? b->data : ms_xstrdup("");
    ms_buf_init(b);
    return p;
}

const char *ms_buf_cstr(const ms_buf *b)
{
    return b->data ? b->data : "";
}

void ms_buf_put_pct(ms_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            ms_buf_putc(b, (char)*p);
        } else {
            ms_buf_putc(b, '%');
            ms_buf_putc(b, hex[*p >> 4]);
            ms_buf_putc(b, hex[*p & 15]);
        }
    }
}
