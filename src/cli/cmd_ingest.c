/*
 * cmd_ingest.c — `metasync ingest FILE|-`: streams an NDJSON file (or stdin) of events to a
 * running server (POST {server}/api/v1/events) in batches, several requests in flight at once
 * through a curl multi handle, and reports what the server accepted, found duplicate or rejected,
 * with rejections mapped back to line numbers of the input.
 *
 * Memory stays bounded whatever the input size: the input is read in chunks, at most --parallel
 * batches are in flight plus the one being filled, and a batch holds at most --batch lines and
 * --batch-bytes bytes. Blank lines are skipped (never sent), so line k of a request body is event
 * k-1 of the batch, and each batch keeps the input line number of each of its events.
 */
#include "cli_http.h"
#include "ms_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_BATCH_LINES 5000
#define DEFAULT_BATCH_BYTES (4L * 1024 * 1024)
#define MAX_BATCH_BYTES     (64L * 1024 * 1024) /* the server's default http.max_body_bytes */
#define DEFAULT_PARALLEL    2
#define MAX_PARALLEL        64
#define KEEP_REJECTIONS     20      /* rejections listed in the summary */
#define REQUEST_TIMEOUT_MS  300000L /* one batch, including the server's commit */
#define READ_CHUNK          (1L * 1024 * 1024)

/* Prints the command's help to out. */
static void usage(FILE *out)
{
    fputs(
        "Usage: metasync ingest [options] FILE|-\n"
        "\n"
        "Streams NDJSON events (one JSON event per line; `-` reads stdin) to the server's\n"
        "POST /api/v1/events in batches, keeping several requests in flight. Blank lines are\n"
        "skipped. Rejections are reported with their line number in FILE. With --parallel > 1,\n"
        "batches may be applied out of order: use --parallel 1 when later lines depend on\n"
        "earlier ones in other batches. 429/503 answers are retried after Retry-After.\n"
        "\n"
        "Options:\n"
        "  --batch N          events per request, 1..1000000 (default 5000)\n"
        "  --batch-bytes N    bytes per request, 1024..67108864 (default 4194304); a single\n"
        "                     line longer than this is rejected locally (event_too_large)\n"
        "  --parallel K       requests in flight, 1..64 (default 2)\n"
        "  --quiet, -q        do not list individual rejections in the summary\n"
        "  --no-progress      no progress bar (it is drawn on stderr only when it is a TTY)\n"
        "  -h, --help         show this help\n"
        "\n"
        "Output: a summary on stdout (events sent, accepted, duplicates, rejected with the\n"
        "first 20 as `line L: code: detail`, elapsed, events/s, last_seq).\n"
        "\n"
        "Exit codes: 0 every event accepted or duplicate; 1 some event rejected (or the server\n"
        "            refused the requests); 2 usage or configuration error (including an\n"
        "            unreadable FILE); 3 server unreachable or 5xx after retries;\n"
        "            4 read error on the input.\n"
        "\n"
        "Configuration flags (e.g. --server URL, METASYNC_SERVER): see `metasync config --help`.\n",
        out);
}

/* ---- input ----------------------------------------------------------------------------------- */

/* Reads lines from a file descriptor in chunks; a line is valid until the next call. */
typedef struct line_reader {
    int fd;
    char *buf;
    size_t cap, start, end; /* unread bytes are buf[start..end) */
    bool eof;
    uint64_t lineno; /* number of the line last returned (1-based) */
    uint64_t bytes;  /* bytes read from fd so far */
    size_t max_line; /* longer lines are reported (and skipped), not returned */
} line_reader;

/* Sets r up to read fd (not owned) with lines of at most max_line bytes; r owns its buffer. */
static void reader_init(line_reader *r, int fd, size_t max_line)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
    r->max_line = max_line;
    r->cap = (size_t)READ_CHUNK < max_line + 1 ? (size_t)READ_CHUNK : max_line + 1;
    r->buf = ms_xmalloc(r->cap);
}

/* Releases r's buffer (the file descriptor is the caller's). */
static void reader_free(line_reader *r)
{
    free(r->buf);
    r->buf = NULL;
}

/* read(2) into buf[end..cap) retrying on EINTR. Returns bytes read, 0 at EOF, -1 on error. */
static ssize_t reader_fill(line_reader *r)
{
    for (;;) {
        ssize_t k = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (k < 0 && errno == EINTR) continue;
        if (k > 0) {
            r->end += (size_t)k;
            r->bytes += (uint64_t)k;
        } else if (k == 0) {
            r->eof = true;
        }
        return k;
    }
}

/* Skips the rest of an over-long line whose first *len bytes were already dropped; adds what it
 * skips to *len. Returns 2, or -1 on a read error. */
static int reader_skip_line(line_reader *r, size_t *len)
{
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (nl) {
            *len += (size_t)(nl - (r->buf + r->start));
            r->start = (size_t)(nl - r->buf) + 1;
            r->lineno++;
            return 2;
        }
        *len += r->end - r->start;
        r->start = r->end = 0;
        if (r->eof) {
            r->lineno++;
            return 2;
        }
        if (reader_fill(r) < 0) return -1;
    }
}

/*
 * Returns the next line (without its '\n') in *line and *len: 1 for a line; 2 for a line longer
 * than max_line, which is skipped (*len gets its full length, *line is NULL); 0 at end of input; -1
 * on a read error (errno set). r->lineno is the number of the line returned.
 */
static int reader_next(line_reader *r, const char **line, size_t *len)
{
    for (;;) {
        char *p = r->buf + r->start;
        char *nl = memchr(p, '\n', r->end - r->start);
        if (nl) {
            *line = p;
            *len = (size_t)(nl - p);
            r->start = (size_t)(nl - r->buf) + 1;
            r->lineno++;
            return 1;
        }
        if (r->eof) {
            if (r->end == r->start) return 0;
            *line = p;
            *len = r->end - r->start;
            r->start = r->end;
            r->lineno++;
            return 1;
        }
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->start = 0;
        }
        if (r->end == r->cap) {
            if (r->cap >= r->max_line + 1) { /* over-long line: skip it without keeping it */
                *line = NULL;
                *len = r->end;
                r->start = r->end = 0;
                return reader_skip_line(r, len);
            }
            size_t cap = r->cap * 2 < r->max_line + 1 ? r->cap * 2 : r->max_line + 1;
            r->buf = ms_xrealloc(r->buf, cap);
            r->cap = cap;
        }
        if (reader_fill(r) < 0) return -1;
    }
}

/* True when s[0..n) holds only spaces, tabs and carriage returns (such lines are not sent). */
static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

/* ---- batches --------------------------------------------------------------------------------- */

/* One request body: n NDJSON lines, each ending in '\n', and the input line of each. */
typedef struct batch {
    ms_buf body;
    uint64_t *lines;
    size_t n, cap;
    ms_http_retry retry;
    unsigned long long not_before; /* earliest time to (re)send, monotonic ms */
    struct batch *next;            /* in the resend queue */
} batch;

/* A new empty batch (caller owns it; batch_free releases it, NULL allowed). */
static batch *batch_new(void)
{
    batch *b = ms_xcalloc(1, sizeof *b);
    ms_buf_init(&b->body);
    return b;
}

static void batch_free(batch *b)
{
    if (!b) return;
    ms_buf_free(&b->body);
    free(b->lines);
    free(b);
}

/* Appends input line `lineno` (line[0..len), no newline) to b as one NDJSON line. */
static void batch_add(batch *b, const char *line, size_t len, uint64_t lineno)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 256;
        b->lines = ms_xrealloc(b->lines, b->cap * sizeof *b->lines);
    }
    b->lines[b->n++] = lineno;
    ms_buf_append(&b->body, line, len);
    ms_buf_putc(&b->body, '\n');
}

/* Splits b (n >= 2) in two halves: b keeps the first, the returned new batch holds the rest. */
static batch *batch_split(batch *b)
{
    size_t k = b->n / 2, off = 0;
    for (size_t seen = 0; seen < k; off++)
        if (b->body.data[off] == '\n') seen++;
    batch *c = batch_new();
    ms_buf_append(&c->body, b->body.data + off, b->body.len - off);
    c->n = c->cap = b->n - k;
    c->lines = ms_xmalloc(c->cap * sizeof *c->lines);
    memcpy(c->lines, b->lines + k, c->n * sizeof *c->lines);
    b->body.len = off;
    b->body.data[off] = '\0';
    b->n = k;
    memset(&b->retry, 0, sizeof b->retry);
    return c;
}

/* ---- the run --------------------------------------------------------------------------------- */

typedef struct rejection {
    uint64_t line; /* input line, 0 when unknown */
    char code[48];
    char detail[240];
} rejection;

typedef struct ingest_opts {
    const char *path;
    int64_t batch_lines;
    int64_t batch_bytes;
    int64_t parallel;
    bool quiet;
    bool progress;
} ingest_opts;

typedef struct ingest {
    const ingest_opts *o;
    const char *url;
    ms_http_policy policy;
    line_reader rd;
    int64_t size; /* input size in bytes, -1 when unknown */
    batch *cur;   /* being filled */
    batch *queue; /* to resend, ordered by first line */
    bool input_done;
    unsigned long long pause_until; /* no new request before (overload, server down) */
    size_t max_body;                /* bytes per request: --batch-bytes, lowered after a 413 */
    int fatal;                      /* exit code that stops the run, 0 = none */
    /* counters */
    uint64_t events_read;
    uint64_t events_sent; /* events in batches the server answered */
    uint64_t bytes_sent;
    uint64_t local_rejected; /* lines rejected here, never sent (too long) */
    uint64_t batches;
    int64_t accepted, duplicates, rejected, last_seq;
    uint64_t retries;
    rejection keep[KEEP_REJECTIONS]; /* the rejections with the smallest line numbers */
    size_t nkeep;
    /* progress */
    unsigned long long t0, last_draw;
    bool bar_drawn;
} ingest;

/* Records a rejection at input line `line` (0 = unknown) with code and detail (truncated). */
static void add_rejection(ingest *g, uint64_t line, const char *code, const char *detail)
{
    g->rejected++;
    size_t pos = g->nkeep;
    while (pos > 0 && (g->keep[pos - 1].line > line))
        pos--;
    if (pos >= KEEP_REJECTIONS) return;
    size_t last = g->nkeep < KEEP_REJECTIONS ? g->nkeep : KEEP_REJECTIONS - 1;
    memmove(&g->keep[pos + 1], &g->keep[pos], (last - pos) * sizeof g->keep[0]);
    g->keep[pos].line = line;
    snprintf(g->keep[pos].code, sizeof g->keep[pos].code, "%s", code && *code ? code : "rejected");
    snprintf(g->keep[pos].detail, sizeof g->keep[pos].detail, "%s", detail ? detail : "");
    if (g->nkeep < KEEP_REJECTIONS) g->nkeep++;
}

/* Inserts b into the resend queue, keeping it ordered by first input line. */
static void queue_insert(ingest *g, batch *b)
{
    batch **pp = &g->queue;
    while (*pp && (*pp)->lines[0] < b->lines[0])
        pp = &(*pp)->next;
    b->next = *pp;
    *pp = b;
}

/*
 * Reads input until a batch is complete. Returns the batch (caller owns it) or NULL when the
 * input is exhausted (g->input_done) or unreadable (g->fatal). Over-long lines become local
 * rejections; blank lines are skipped.
 */
static batch *next_input_batch(ingest *g)
{
    const ingest_opts *o = g->o;
    while (!g->input_done) {
        const char *line;
        size_t len;
        int k = reader_next(&g->rd, &line, &len);
        if (k < 0) {
            fprintf(stderr, "%smetasync ingest: reading %s: %s\n", g->bar_drawn ? "\n" : "",
                    o->path, strerror(errno));
            g->bar_drawn = false;
            g->fatal = MS_EXIT_INTERNAL;
            g->input_done = true;
            break;
        }
        if (k == 0) {
            g->input_done = true;
            break;
        }
        if (k == 2) {
            char d[160];
            g->events_read++;
            g->local_rejected++;
            snprintf(d, sizeof d,
                     "the line is %zu bytes, more than --batch-bytes allows (%" PRId64 ")", len,
                     o->batch_bytes);
            add_rejection(g, g->rd.lineno, "event_too_large", d);
            continue;
        }
        if (blank(line, len)) continue;
        g->events_read++;
        batch *cur = g->cur;
        if (cur && cur->n > 0 && cur->body.len + len + 1 > g->max_body) {
            g->cur = batch_new();
            batch_add(g->cur, line, len, g->rd.lineno);
            return cur;
        }
        if (!cur) cur = g->cur = batch_new();
        batch_add(cur, line, len, g->rd.lineno);
        if ((int64_t)cur->n >= o->batch_lines) {
            g->cur = NULL;
            return cur;
        }
    }
    batch *b = g->cur;
    g->cur = NULL;
    if (b && g->fatal) {
        batch_free(b);
        b = NULL;
    }
    return b;
}

/* Erases the progress bar line (before printing something else on stderr). */
static void bar_clear(ingest *g)
{
    if (g->bar_drawn) fputs("\r\033[K", stderr);
    g->bar_drawn = false;
}

/* Formats a byte count as "12.3 MiB" into out[n]. */
static void human_bytes(double b, char *out, size_t n)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4)
        b /= 1024, i++;
    snprintf(out, n, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

/* Draws the progress bar on stderr (at most every 200 ms unless force). */
static void bar_draw(ingest *g, bool force)
{
    if (!g->o->progress) return;
    unsigned long long now = ms_cli_now_ms();
    if (!force && now - g->last_draw < 200) return;
    g->last_draw = now;
    double secs = (double)(now - g->t0) / 1000.0;
    double rate = secs > 0 ? (double)g->events_sent / secs : 0;
    char bytes[32];
    human_bytes((double)g->rd.bytes, bytes, sizeof bytes);
    char line[256];
    int n = 0;
    if (g->size > 0) {
        double frac = (double)g->rd.bytes / (double)g->size;
        if (frac > 1) frac = 1;
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        n = snprintf(line, sizeof line, "%3d%% [%s] ", (int)(frac * 100), bar);
    }
    snprintf(line + n, sizeof line - (size_t)n,
             "%" PRIu64 " events sent  %.0f events/s  %s read  %" PRId64 " rejected",
             g->events_sent, rate, bytes, g->rejected);
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
    g->bar_drawn = true;
}

/* Context of the rejection callback: the run and the batch the answer is for. */
typedef struct reject_ctx {
    ingest *g;
    const batch *b;
} reject_ctx;

/* ms_reject_fn: maps a batch-relative line (or index) to the input line and records it. */
static void on_reject(void *ud, long index, long line, long column, const char *code,
                      const char *detail)
{
    (void)column;
    reject_ctx *c = ud;
    uint64_t in_line = 0;
    if (line >= 1 && (size_t)line <= c->b->n)
        in_line = c->b->lines[line - 1];
    else if (index >= 0 && (size_t)index < c->b->n)
        in_line = c->b->lines[index];
    add_rejection(c->g, in_line, code, detail);
}

/* Stops the run with exit code rc after printing msg on stderr. */
static void fail(ingest *g, int rc, const char *msg)
{
    bar_clear(g);
    fprintf(stderr, "metasync ingest: %s\n", msg);
    if (!g->fatal) g->fatal = rc;
}

/* Handles the final state of one transfer of batch b (ownership of b passes here). */
static void finish(ingest *g, ms_http_xfer *x, batch *b)
{
    const ms_http_resp *r = &x->resp;
    unsigned long long now = ms_cli_now_ms();
    ms_error err;
    ms_error_clear(&err);
    ms_err out = ms_http_outcome(r, g->url, &err);
    char msg[600];

    if (ms_http_transient(r)) {
        long d = ms_http_next_delay(&g->policy, &b->retry, r, now);
        if (d >= 0 && !g->fatal) {
            g->retries++;
            b->not_before = now + (unsigned long long)d;
            if (b->not_before > g->pause_until) g->pause_until = b->not_before;
            bar_clear(g);
            if (out != MS_OK)
                fprintf(stderr, "metasync ingest: %s; retrying in %.1f s\n", err.detail,
                        d / 1000.0);
            else
                fprintf(stderr,
                        "metasync ingest: server answered %ld for the batch at line %" PRIu64
                        "; retrying in %.1f s (attempt %d of %d)\n",
                        r->status, b->lines[0], d / 1000.0, b->retry.attempts + 1,
                        g->policy.max_attempts);
            queue_insert(g, b);
            return;
        }
        if (out != MS_OK) {
            snprintf(msg, sizeof msg, "%s (giving up)", err.detail);
        } else {
            char code[64], detail[400];
            ms_http_problem(r, code, sizeof code, detail, sizeof detail, NULL, NULL);
            snprintf(msg, sizeof msg, "server answered %ld after %d attempts: %s", r->status,
                     b->retry.attempts, detail);
        }
        if (!g->fatal) fail(g, MS_EXIT_UNREACHABLE, msg);
        batch_free(b);
        return;
    }
    if (out != MS_OK) {
        if (!g->fatal) fail(g, ms_cli_exit_for(out), err.detail);
        batch_free(b);
        return;
    }
    long st = r->status;
    if (st >= 200 && st < 300) {
        ms_ingest_reply rep;
        reject_ctx ctx = {g, b};
        if (ms_http_parse_ingest_reply(r->body.data, r->body.len, &rep, on_reject, &ctx, &err) !=
            MS_OK) {
            fail(g, MS_EXIT_UNREACHABLE, err.detail);
        } else {
            g->accepted += rep.accepted;
            g->duplicates += rep.duplicates;
            if (rep.last_seq > g->last_seq) g->last_seq = rep.last_seq;
            g->events_sent += b->n;
            g->bytes_sent += b->body.len;
            g->batches++;
        }
        batch_free(b);
        return;
    }
    char code[64], detail[400];
    long pline = 0;
    ms_http_problem(r, code, sizeof code, detail, sizeof detail, &pline, NULL);
    if (st == 413 && b->n > 1) { /* the server takes less than --batch-bytes: halve and resend */
        if (b->body.len / 2 < g->max_body) {
            g->max_body = b->body.len / 2 > 1024 ? b->body.len / 2 : 1024;
            bar_clear(g);
            fprintf(stderr,
                    "metasync ingest: the server refused a %zu-byte request (413); sending at most "
                    "%zu bytes per request from now on\n",
                    b->body.len, g->max_body);
        }
        batch *c = batch_split(b);
        b->not_before = c->not_before = now;
        queue_insert(g, b);
        queue_insert(g, c);
        return;
    }
    if (st == 400 || st == 409 || st == 413 || st == 422) { /* the whole batch was refused */
        reject_ctx ctx = {g, b};
        if (pline >= 1 && (size_t)pline <= b->n) { /* the body broke at one line */
            on_reject(&ctx, -1, pline, 0, code, detail);
            for (size_t i = 0; i < b->n; i++)
                if (i != (size_t)pline - 1)
                    add_rejection(g, b->lines[i], code, "batch refused because of another line");
        } else {
            for (size_t i = 0; i < b->n; i++)
                add_rejection(g, b->lines[i], code, detail);
        }
        g->events_sent += b->n;
        g->bytes_sent += b->body.len;
        g->batches++;
        batch_free(b);
        return;
    }
    snprintf(msg, sizeof msg, "server answered %ld%s%s: %s", st, code[0] ? " " : "", code, detail);
    fail(g, st >= 500 ? MS_EXIT_UNREACHABLE : MS_EXIT_REFUSED, msg);
    batch_free(b);
}

/* Picks the next batch to send now: a due resend first, else fresh input. NULL when nothing can
 * be sent now. */
static batch *next_batch(ingest *g, unsigned long long now)
{
    if (g->fatal || now < g->pause_until) return NULL;
    if (g->queue) {
        if (g->queue->not_before > now) return NULL;
        batch *b = g->queue;
        g->queue = b->next;
        b->next = NULL;
        return b;
    }
    return next_input_batch(g);
}

/* Prints the summary on stdout. */
static void summary(ingest *g)
{
    bar_clear(g);
    double secs = (double)(ms_cli_now_ms() - g->t0) / 1000.0;
    char bytes[32];
    human_bytes((double)g->bytes_sent, bytes, sizeof bytes);
    printf("events sent: %" PRIu64 " (%s in %" PRIu64 " request%s)\n", g->events_sent, bytes,
           g->batches, g->batches == 1 ? "" : "s");
    uint64_t unsent = g->events_read - g->events_sent - g->local_rejected;
    if (g->fatal && unsent > 0) printf("not sent:    %" PRIu64 " (stopped early)\n", unsent);
    printf("accepted:    %" PRId64 "\n", g->accepted);
    printf("duplicates:  %" PRId64 "\n", g->duplicates);
    printf("rejected:    %" PRId64 "\n", g->rejected);
    if (!g->o->quiet) {
        for (size_t i = 0; i < g->nkeep; i++) {
            if (g->keep[i].line)
                printf("  line %" PRIu64 ": %s: %s\n", g->keep[i].line, g->keep[i].code,
                       g->keep[i].detail);
            else
                printf("  line ?: %s: %s\n", g->keep[i].code, g->keep[i].detail);
        }
        if (g->rejected > (int64_t)g->nkeep)
            printf("  ... and %" PRId64 " more\n", g->rejected - (int64_t)g->nkeep);
    }
    if (g->retries) printf("retries:     %" PRIu64 "\n", g->retries);
    printf("elapsed:     %.2f s\n", secs);
    printf("events/s:    %.0f\n", secs > 0 ? (double)g->events_sent / secs : 0.0);
    if (g->last_seq >= 0)
        printf("last_seq:    %" PRId64 "\n", g->last_seq);
    else
        printf("last_seq:    -\n");
    fflush(stdout);
}

/* Parses the command's own arguments. Returns MS_EXIT_OK or MS_EXIT_USAGE (message printed). */
static int parse_args(int nrest, char **rest, ingest_opts *o)
{
    o->path = NULL;
    o->batch_lines = DEFAULT_BATCH_LINES;
    o->batch_bytes = DEFAULT_BATCH_BYTES;
    o->parallel = DEFAULT_PARALLEL;
    o->quiet = false;
    o->progress = true;
    bool dashdash = false;
    for (int i = 0; i < nrest;) {
        const char *a = rest[i], *v = NULL;
        int m = 0;
        if (dashdash || strcmp(a, "-") == 0 || a[0] != '-') {
            if (o->path) {
                fprintf(stderr, "metasync ingest: one input only (got '%s' and '%s')\n", o->path,
                        a);
                return MS_EXIT_USAGE;
            }
            o->path = a;
            i++;
        } else if (strcmp(a, "--") == 0) {
            dashdash = true;
            i++;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            o->quiet = true;
            i++;
        } else if (strcmp(a, "--no-progress") == 0) {
            o->progress = false;
            i++;
        } else if ((m = ms_cli_opt("ingest", nrest, rest, &i, "--batch-bytes", &v)) != 0) {
            if (m < 0 || !ms_cli_parse_i64("ingest", "--batch-bytes", v, 1024, MAX_BATCH_BYTES,
                                           &o->batch_bytes))
                return MS_EXIT_USAGE;
        } else if ((m = ms_cli_opt("ingest", nrest, rest, &i, "--batch", &v)) != 0) {
            if (m < 0 || !ms_cli_parse_i64("ingest", "--batch", v, 1, 1000000, &o->batch_lines))
                return MS_EXIT_USAGE;
        } else if ((m = ms_cli_opt("ingest", nrest, rest, &i, "--parallel", &v)) != 0) {
            if (m < 0 ||
                !ms_cli_parse_i64("ingest", "--parallel", v, 1, MAX_PARALLEL, &o->parallel))
                return MS_EXIT_USAGE;
        } else {
            fprintf(stderr, "metasync ingest: unknown option %s (see --help)\n", a);
            return MS_EXIT_USAGE;
        }
    }
    if (!o->path) {
        fprintf(stderr, "metasync ingest: missing FILE (or - for stdin); see --help\n");
        return MS_EXIT_USAGE;
    }
    return MS_EXIT_OK;
}

/* Runs the transfer loop until the input is sent or the run fails. Returns the exit code. */
static int run(ingest *g)
{
    const ingest_opts *o = g->o;
    CURLM *multi = curl_multi_init();
    if (!multi) {
        fprintf(stderr, "metasync ingest: cannot create a curl multi handle\n");
        return MS_EXIT_INTERNAL;
    }
    size_t nx = (size_t)o->parallel, active = 0;
    ms_http_xfer *xs = ms_xcalloc(nx, sizeof *xs);
    for (size_t i = 0; i < nx; i++)
        ms_http_xfer_init(&xs[i], NULL);

    for (;;) {
        unsigned long long now = ms_cli_now_ms();
        for (size_t i = 0; i < nx && active < nx; i++) {
            if (xs[i].user) continue;
            batch *b = next_batch(g, now);
            if (!b) break;
            ms_http_req req = {.method = "POST",
                               .url = g->url,
                               .content_type = "application/x-ndjson",
                               .body = b->body.data,
                               .len = b->body.len,
                               .timeout_ms = REQUEST_TIMEOUT_MS};
            ms_http_xfer_prepare(&xs[i], &req);
            xs[i].user = b;
            curl_multi_add_handle(multi, xs[i].easy);
            active++;
        }
        if (active == 0 && (g->fatal || (g->input_done && !g->queue && !g->cur))) break;

        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            for (size_t i = 0; i < nx; i++) {
                if (xs[i].easy != msg->easy_handle || !xs[i].user) continue;
                CURLcode cc = msg->data.result;
                curl_multi_remove_handle(multi, xs[i].easy);
                ms_http_xfer_done(&xs[i], cc);
                batch *b = xs[i].user;
                xs[i].user = NULL;
                active--;
                finish(g, &xs[i], b);
                break;
            }
        }
        bar_draw(g, false);
        now = ms_cli_now_ms();
        if (active == 0 && !g->fatal && (g->queue || now < g->pause_until)) {
            /* only waiting for a resend time */
            unsigned long long due = g->pause_until;
            if (g->queue && g->queue->not_before > due) due = g->queue->not_before;
            if (due > now) ms_cli_sleep_ms((long)(due - now < 200 ? due - now : 200), NULL);
            continue;
        }
        if (active > 0) curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    bar_draw(g, true);
    if (g->bar_drawn) { /* leave the final state of the bar on screen */
        fputc('\n', stderr);
        g->bar_drawn = false;
    }
    for (size_t i = 0; i < nx; i++)
        ms_http_xfer_free(&xs[i]);
    free(xs);
    curl_multi_cleanup(multi);
    while (g->queue) {
        batch *b = g->queue;
        g->queue = b->next;
        batch_free(b);
    }
    batch_free(g->cur);
    g->cur = NULL;
    summary(g);
    if (g->fatal) return g->fatal;
    return g->rejected ? MS_EXIT_REFUSED : MS_EXIT_OK;
}

int ms_cmd_ingest(int argc, char **argv, char **envp)
{
    if (ms_cli_wants_help(argc, argv)) {
        usage(stdout);
        return MS_EXIT_OK;
    }
    ms_config cfg;
    char **rest;
    int nrest;
    int rc = ms_cli_load_config("ingest", &cfg, argc, argv, envp, &rest, &nrest);
    if (rc != MS_EXIT_OK) return rc;
    ingest_opts o;
    rc = parse_args(nrest, rest, &o);
    if (rc != MS_EXIT_OK) {
        free(rest);
        ms_config_free(&cfg);
        return rc;
    }
    int fd = 0;
    if (strcmp(o.path, "-") != 0) {
        fd = open(o.path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fprintf(stderr, "metasync ingest: cannot open %s: %s\n", o.path, strerror(errno));
            free(rest);
            ms_config_free(&cfg);
            return MS_EXIT_USAGE;
        }
    }
    ms_error err;
    ms_error_clear(&err);
    if (ms_http_global_init(&err) != MS_OK) {
        fprintf(stderr, "metasync ingest: %s\n", err.detail);
        if (fd != 0) close(fd);
        free(rest);
        ms_config_free(&cfg);
        return MS_EXIT_INTERNAL;
    }
    o.progress = o.progress && isatty(2);

    ingest g;
    memset(&g, 0, sizeof g);
    g.o = &o;
    ms_buf url = MS_BUF_INIT;
    ms_http_url(&url, cfg.server, "/api/v1/events");
    g.url = ms_buf_cstr(&url);
    ms_http_policy_default(&g.policy);
    g.policy.notice = NULL; /* finish() reports retries itself, around the progress bar */
    g.last_seq = -1;
    struct stat sb;
    g.size = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) ? (int64_t)sb.st_size : -1;
    reader_init(&g.rd, fd, (size_t)o.batch_bytes - 1);
    g.max_body = (size_t)o.batch_bytes;
    g.t0 = ms_cli_now_ms();

    rc = run(&g);

    reader_free(&g.rd);
    if (fd != 0) close(fd);
    ms_buf_free(&url);
    ms_http_global_cleanup();
    free(rest);
    ms_config_free(&cfg);
    return rc;
}
