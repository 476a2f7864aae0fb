/*
 * ms_json.c — JSON helpers on top of json-c (see ms_json.h): bounded strict parsing with
 * positions, canonical text, RFC 7396 merge patch and the path diff used by asset snapshots.
 *
 * json-c 0.16 in JSON_TOKENER_STRICT mode still lets through things RFC 8259 forbids (NaN,
 * Infinity, '1.', single-quoted keys, raw control characters in strings, \v and \f as white
 * space, surrogates and overlong forms in UTF-8) and silently clamps integers outside the 64-bit
 * range. So every parse is json-c (grammar, tree) plus one lexical pass of our own (lex_check)
 * over the same bytes that rejects those, enforces the nesting limit on containers exactly, and
 * reports the earliest error of the two.
 */
#include "ms_json.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_JSON_DEFAULT_DEPTH 64

/* json-c reports allocation failure by returning NULL; the core's policy is to abort (ms_buf.h). */
static void json_oom(const char *what)
{
    fprintf(stderr, "metasync: out of memory in json-c (%s)\n", what);
    abort();
}

/* ---------------------------------------------------------------------------------------------
 * Lexical checking
 * ------------------------------------------------------------------------------------------- */

/* The first problem found by lex_check. */
typedef struct lex_err {
    size_t offset; /* byte offset of the problem */
    ms_err code;
    const char *msg; /* static text */
} lex_err;

/*
 * Length of the well-formed UTF-8 sequence (Unicode table 3-7: no overlong forms, no surrogates,
 * nothing above U+10FFFF) starting at s[0..n), which must begin with a byte >= 0x80.
 * Returns 0 when the bytes are not valid UTF-8, and -1 when they are a valid but truncated
 * prefix (n ends inside the sequence).
 */
static int utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    int len;
    unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) return -1;
        unsigned b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
    }
    return len;
}

bool ms_utf8_valid(const char *s, size_t n, size_t *bad)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int k = u[i] < 0x80 ? 1 : utf8_seq_len(u + i, n - i);
        if (k <= 0) {
            if (bad) *bad = i;
            return false;
        }
        i += (size_t)k;
    }
    return true;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits of a \u escape at s[0..4) (caller checked the length); -1 if bad. */
static long hex4(const unsigned char *s)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(s[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

static bool set_lex(lex_err *e, size_t off, ms_err code, const char *msg)
{
    e->offset = off;
    e->code = code;
    e->msg = msg;
    return false;
}

/*
 * Scans t[0..n) token by token and reports the first lexical problem json-c's strict mode misses
 * (or reports less precisely). `complete` says t[n] is the true end of the value: a token cut at n
 * is then an error; otherwise (n is where json-c already failed) a cut token is not reported.
 * UTF-8 sequences are judged on all the text there is (t[0..len), len >= n), since json-c may
 * stop just after a broken one.
 * Grammar (commas, colons, matching brackets) is left to json-c. Returns true when nothing was
 * found; otherwise fills *e and returns false.
 */
static bool lex_check(const unsigned char *t, size_t n, size_t len, bool complete, int max_depth,
                      lex_err *e)
{
    size_t i = 0;
    long depth = 0;
    while (i < n) {
        unsigned c = t[i];
        switch (c) {
        case ' ':
        case '\t':
        case '\n':
        case '\r':
        case ':':
        case ',':
            i++;
            continue;
        case '{':
        case '[':
            if (++depth > max_depth)
                return set_lex(e, i, MS_ERR_TOO_DEEP, "nesting is deeper than the limit");
            i++;
            continue;
        case '}':
        case ']':
            depth--;
            i++;
            continue;
        case '"': {
            size_t start = i++;
            bool nul_escape = false;
            for (;;) {
                while (i < n && t[i] >= 0x20 && t[i] < 0x80 && t[i] != '"' && t[i] != '\\')
                    i++;
                if (i >= n) goto cut;
                c = t[i];
                if (c == '"') {
                    i++;
                    break;
                }
                if (c == '\\') {
                    if (i + 1 >= n) goto cut;
                    unsigned x = t[i + 1];
                    if (strchr("\"\\/bfnrt", (int)x) && x) {
                        i += 2;
                        continue;
                    }
                    if (x != 'u')
                        return set_lex(e, i, MS_ERR_MALFORMED_JSON, "invalid escape in a string");
                    if (i + 6 > n) goto cut;
                    long u = hex4(t + i + 2);
                    if (u < 0)
                        return set_lex(e, i, MS_ERR_MALFORMED_JSON,
                                       "invalid \\u escape in a string");
                    if (u == 0) nul_escape = true;
                    if (u >= 0xDC00 && u <= 0xDFFF)
                        return set_lex(e, i, MS_ERR_INVALID_UTF8,
                                       "\\u escape is an unpaired low surrogate");
                    if (u >= 0xD800 && u <= 0xDBFF) {
                        if (i + 12 > n && !complete) goto cut;
                        long lo = (i + 12 <= n && t[i + 6] == '\\' && t[i + 7] == 'u')
                                      ? hex4(t + i + 8)
                                      : -1;
                        if (lo < 0xDC00 || lo > 0xDFFF)
                            return set_lex(e, i, MS_ERR_INVALID_UTF8,
                                           "\\u escape is an unpaired high surrogate");
                        i += 12;
                    } else
                        i += 6;
                    continue;
                }
                if (c < 0x20)
                    return set_lex(e, i, MS_ERR_MALFORMED_JSON,
                                   c == 0 ? "NUL byte in the text"
                                          : "control character in a string must be escaped");
                int k = utf8_seq_len(t + i, len - i);
                if (k < 0) goto cut;
                if (k == 0) return set_lex(e, i, MS_ERR_INVALID_UTF8, "invalid UTF-8 sequence");
                i += (size_t)k;
            }
            if (nul_escape) {
                /* json-c keeps object keys as C strings: a \u0000 would silently cut the key. */
                size_t j = i;
                while (j < n && (t[j] == ' ' || t[j] == '\t' || t[j] == '\n' || t[j] == '\r'))
                    j++;
                if (j < n && t[j] == ':')
                    return set_lex(e, start, MS_ERR_MALFORMED_JSON,
                                   "object keys must not contain \\u0000");
            }
            continue;
        }
        case '-':
        case '0':
        case '1':
        case '2':
        case '3':
        case '4':
        case '5':
        case '6':
        case '7':
        case '8':
        case '9': {
            size_t start = i;
            bool neg = false, is_int = true;
            if (c == '-') {
                neg = true;
                i++;
            }
            size_t dstart = i;
            if (i >= n) goto cut;
            if (t[i] == '0')
                i++;
            else if (t[i] >= '1' && t[i] <= '9')
                while (i < n && t[i] >= '0' && t[i] <= '9')
                    i++;
            else
                return set_lex(e, start, MS_ERR_MALFORMED_JSON, "invalid number");
            size_t dend = i;
            if (i < n && t[i] == '.') {
                is_int = false;
                i++;
                if (i >= n) goto cut;
                if (t[i] < '0' || t[i] > '9')
                    return set_lex(e, start, MS_ERR_MALFORMED_JSON, "invalid number");
                while (i < n && t[i] >= '0' && t[i] <= '9')
                    i++;
            }
            if (i < n && (t[i] == 'e' || t[i] == 'E')) {
                is_int = false;
                i++;
                if (i < n && (t[i] == '+' || t[i] == '-')) i++;
                if (i >= n) goto cut;
                if (t[i] < '0' || t[i] > '9')
                    return set_lex(e, start, MS_ERR_MALFORMED_JSON, "invalid number");
                while (i < n && t[i] >= '0' && t[i] <= '9')
                    i++;
            }
            if (i < n && t[i] >= '0' && t[i] <= '9')
                return set_lex(e, start, MS_ERR_MALFORMED_JSON, "invalid number (leading zero)");
            if (is_int) {
                /* json-c clamps out-of-range integers; MetaSync keeps integers exact. */
                const char *lim = neg ? "9223372036854775808" : "18446744073709551615";
                size_t nd = dend - dstart, nl = strlen(lim);
                if (nd > nl || (nd == nl && memcmp(t + dstart, lim, nl) > 0))
                    return set_lex(e, start, MS_ERR_MALFORMED_JSON,
                                   "integer is outside the 64-bit range");
            }
            if (i >= n && !complete) goto cut; /* the number may go on past n */
            continue;
        }
        case 't':
        case 'f':
        case 'n': {
            const char *lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
            size_t ll = strlen(lit);
            for (size_t k = 0; k < ll; k++) {
                if (i + k >= n) goto cut;
                if (t[i + k] != (unsigned char)lit[k])
                    return set_lex(e, i, MS_ERR_MALFORMED_JSON, "invalid literal");
            }
            i += ll;
            continue;
        }
        default:
            if (c >= 0x80) {
                int k = utf8_seq_len(t + i, len - i);
                if (k == 0) return set_lex(e, i, MS_ERR_INVALID_UTF8, "invalid UTF-8 sequence");
                if (k < 0) goto cut;
            }
            return set_lex(e, i, MS_ERR_MALFORMED_JSON,
                           c == 0 ? "NUL byte in the text" : "unexpected character");
        }
    }
    return true;
cut:
    if (!complete) return true;
    return set_lex(e, n, MS_ERR_MALFORMED_JSON, "unexpected end of input");
}

/* ---------------------------------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------------------------------- */

void ms_json_position(const char *text, size_t len, size_t offset, long *line, long *column)
{
    if (offset > len) offset = len;
    long ln = 1;
    size_t line_start = 0;
    const char *p = text, *stop = text + offset;
    while (p < stop) {
        const char *nl = memchr(p, '\n', (size_t)(stop - p));
        if (!nl) break;
        ln++;
        line_start = (size_t)(nl - text) + 1;
        p = nl + 1;
    }
    if (line) *line = ln;
    if (column) *column = (long)(offset - line_start) + 1;
}

/* Sets err to code/msg at byte offset off of text, with its line and column. */
static void parse_error(ms_error *err, const char *text, size_t len, size_t off, ms_err code,
                        const char *msg)
{
    long line, col;
    ms_json_position(text, len, off, &line, &col);
    ms_error_set(err, code, "%s", msg);
    ms_error_at(err, line, col, (long)off);
}

struct json_object *ms_json_parse(const char *text, size_t len, int max_depth, size_t *end,
                                  ms_error *err)
{
    ms_error_clear(err);
    if (max_depth <= 0) max_depth = MS_JSON_DEFAULT_DEPTH;
    if (len > (size_t)INT_MAX - 1) {
        parse_error(err, text, len, 0, MS_ERR_MALFORMED_JSON, "the text is too large to parse");
        return NULL;
    }
    /* json-c counts a level for every value, scalars included: N containers holding scalars
     * need N + 1. The exact container limit is enforced by lex_check. */
    struct json_tokener *tok = json_tokener_new_ex(max_depth + 1);
    if (!tok) json_oom("json_tokener_new_ex");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8 |
                                    (end ? JSON_TOKENER_ALLOW_TRAILING_CHARS : 0));
    struct json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t pos = json_tokener_get_parse_end(tok);
    if (jerr == json_tokener_continue) {
        /* All input consumed: a top-level scalar may be complete, which json-c only admits once
         * it sees a terminator. Feed one NUL; anything still open is an early end. */
        obj = json_tokener_parse_ex(tok, "", 1);
        jerr = json_tokener_get_error(tok);
        pos = len;
        if (jerr != json_tokener_success) jerr = json_tokener_error_parse_eof;
    }
    json_tokener_free(tok);

    ms_err code = MS_OK;
    const char *msg = NULL;
    bool ok = jerr == json_tokener_success;
    if (ok && !end && pos < len) {
        /* json-c stops without complaint at a NUL byte after the value. */
        ok = false;
        code = MS_ERR_MALFORMED_JSON;
        msg = text[pos] ? "unexpected content after the JSON value" : "NUL byte in the text";
    } else if (!ok) {
        switch (jerr) {
        case json_tokener_error_depth:
            code = MS_ERR_TOO_DEEP;
            msg = "nesting is deeper than the limit";
            break;
        case json_tokener_error_parse_utf8_string: {
            /* json-c may notice a broken sequence a few bytes after it starts: point at its
             * first byte. It also says this for valid UTF-8 met outside a string. */
            const unsigned char *u = (const unsigned char *)text;
            for (size_t j = pos + 1; j-- > 0 && j + 4 > pos;) {
                if (j < len && u[j] >= 0x80 && (u[j] & 0xC0) != 0x80) {
                    if (utf8_seq_len(u + j, len - j) <= 0) pos = j;
                    break;
                }
            }
            int k = pos < len ? utf8_seq_len(u + pos, len - pos) : 0;
            code = k > 0 ? MS_ERR_MALFORMED_JSON : MS_ERR_INVALID_UTF8;
            msg = k > 0 ? "unexpected character" : "invalid UTF-8 sequence";
            break;
        }
        case json_tokener_error_parse_eof: {
            /* json-c treats a NUL byte as the end of the input. */
            const char *nul = pos < len ? memchr(text, 0, pos + 1) : NULL;
            code = MS_ERR_MALFORMED_JSON;
            if (nul) {
                pos = (size_t)(nul - text);
                msg = "NUL byte in the text";
            } else {
                msg = "unexpected end of input";
            }
            break;
        }
        default:
            code = MS_ERR_MALFORMED_JSON;
            msg = json_tokener_error_desc(jerr);
            break;
        }
    }

    /* Our own lexical pass over what json-c read; its error wins when it comes first. */
    lex_err le;
    if (!lex_check((const unsigned char *)text, pos, len, ok, max_depth, &le)) {
        if (ok || le.offset < pos) {
            ok = false;
            pos = le.offset;
            code = le.code;
            msg = le.msg;
        }
    }
    if (!ok) {
        json_object_put(obj);
        char deep[64];
        if (code == MS_ERR_TOO_DEEP) {
            snprintf(deep, sizeof deep, "nesting is deeper than %d levels", max_depth);
            msg = deep;
        }
        parse_error(err, text, len, pos, code, msg);
        return NULL;
    }
    if (end) *end = pos;
    return obj;
}

/* ---------------------------------------------------------------------------------------------
 * Canonical text
 * ------------------------------------------------------------------------------------------- */

/* One object member, for sorting. */
typedef struct member {
    const char *key;
    struct json_object *val;
} member;

static int member_cmp(const void *a, const void *b)
{
    return strcmp(((const member *)a)->key, ((const member *)b)->key); /* bytewise (unsigned) */
}

/* Collects the members of object o into an array sorted by key: *buf when it holds them (stack
 * space of `cap` slots), else a new heap array the caller frees. Returns the array; *n = count. */
static member *sorted_members(struct json_object *o, member *buf, size_t cap, size_t *n)
{
    size_t cnt = (size_t)json_object_object_length(o);
    member *m = cnt <= cap ? buf : ms_xmalloc(cnt * sizeof *m);
    size_t i = 0;
    json_object_object_foreach(o, k, v)
    {
        m[i].key = k;
        m[i].val = v;
        i++;
    }
    if (i > 1) {
        if (i <= 8) { /* insertion sort: most objects are small */
            for (size_t a = 1; a < i; a++) {
                member x = m[a];
                size_t b = a;
                while (b > 0 && strcmp(m[b - 1].key, x.key) > 0) {
                    m[b] = m[b - 1];
                    b--;
                }
                m[b] = x;
            }
        } else
            qsort(m, i, sizeof *m, member_cmp);
    }
    *n = i;
    return m;
}

/* Appends an integer exactly: json-c stores values above INT64_MAX as uint64. */
static void put_int(struct json_object *o, ms_buf *out)
{
    int64_t v = json_object_get_int64(o);
    if (v >= 0)
        ms_buf_put_u64(out, json_object_get_uint64(o));
    else
        ms_buf_put_i64(out, v);
}

void ms_json_canonical(struct json_object *o, ms_buf *out)
{
    switch (json_object_get_type(o)) {
    case json_type_null:
        ms_buf_append(out, "null", 4);
        break;
    case json_type_boolean:
        if (json_object_get_boolean(o))
            ms_buf_append(out, "true", 4);
        else
            ms_buf_append(out, "false", 5);
        break;
    case json_type_int:
        put_int(o, out);
        break;
    case json_type_double: {
        /* Parsed doubles keep their original text (json_object_new_double_s). */
        size_t n = 0;
        const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &n);
        ms_buf_append(out, s, n);
        break;
    }
    case json_type_string:
        ms_buf_put_jstrn(out, json_object_get_string(o), (size_t)json_object_get_string_len(o));
        break;
    case json_type_array: {
        size_t n = json_object_array_length(o);
        ms_buf_putc(out, '[');
        for (size_t i = 0; i < n; i++) {
            if (i) ms_buf_putc(out, ',');
            ms_json_canonical(json_object_array_get_idx(o, i), out);
        }
        ms_buf_putc(out, ']');
        break;
    }
    case json_type_object: {
        member stack[16];
        size_t n;
        member *m = sorted_members(o, stack, 16, &n);
        ms_buf_putc(out, '{');
        for (size_t i = 0; i < n; i++) {
            if (i) ms_buf_putc(out, ',');
            ms_buf_put_jstrn(out, m[i].key, strlen(m[i].key));
            ms_buf_putc(out, ':');
            ms_json_canonical(m[i].val, out);
        }
        ms_buf_putc(out, '}');
        if (m != stack) free(m);
        break;
    }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Merge patch
 * ------------------------------------------------------------------------------------------- */

/* A deep copy of o (NULL stays NULL); aborts on OOM like the rest of the core. */
static struct json_object *deep_copy(struct json_object *o)
{
    if (!o) return NULL;
    struct json_object *c = NULL;
    if (json_object_deep_copy(o, &c, NULL) != 0 || !c) json_oom("json_object_deep_copy");
    return c;
}

/* Applies object patch to object res in place (res is owned and unshared). */
static void merge_into(struct json_object *res, struct json_object *patch)
{
    json_object_object_foreach(patch, k, v)
    {
        if (!v) {
            json_object_object_del(res, k);
        } else if (json_object_is_type(v, json_type_object)) {
            struct json_object *cur = NULL;
            if (json_object_object_get_ex(res, k, &cur) &&
                json_object_is_type(cur, json_type_object)) {
                merge_into(cur, v);
            } else {
                struct json_object *fresh = json_object_new_object();
                if (!fresh) json_oom("json_object_new_object");
                merge_into(fresh, v);
                json_object_object_add(res, k, fresh);
            }
        } else {
            json_object_object_add(res, k, deep_copy(v));
        }
    }
}

struct json_object *ms_json_merge_patch(struct json_object *target, struct json_object *patch)
{
    if (!json_object_is_type(patch, json_type_object)) return deep_copy(patch);
    struct json_object *res = json_object_is_type(target, json_type_object)
                                  ? deep_copy(target)
                                  : json_object_new_object();
    if (!res) json_oom("json_object_new_object");
    merge_into(res, patch);
    return res;
}

/* ---------------------------------------------------------------------------------------------
 * Diff
 * ------------------------------------------------------------------------------------------- */

/* Deep equality as canonical text would see it (key order ignored, numbers by their text). */
static bool json_same(struct json_object *a, struct json_object *b)
{
    if (a == b) return true;
    enum json_type ta = json_object_get_type(a), tb = json_object_get_type(b);
    if (ta != tb) return false;
    switch (ta) {
    case json_type_null:
        return true;
    case json_type_boolean:
        return json_object_get_boolean(a) == json_object_get_boolean(b);
    case json_type_int: {
        int64_t x = json_object_get_int64(a), y = json_object_get_int64(b);
        if (x != y) return false;
        return x < 0 || json_object_get_uint64(a) == json_object_get_uint64(b);
    }
    case json_type_double: {
        size_t na = 0, nb = 0;
        const char *sa = json_object_to_json_string_length(a, JSON_C_TO_STRING_PLAIN, &na);
        const char *sb = json_object_to_json_string_length(b, JSON_C_TO_STRING_PLAIN, &nb);
        return na == nb && memcmp(sa, sb, na) == 0;
    }
    case json_type_string: {
        int la = json_object_get_string_len(a), lb = json_object_get_string_len(b);
        return la == lb &&
               memcmp(json_object_get_string(a), json_object_get_string(b), (size_t)la) == 0;
    }
    case json_type_array: {
        size_t n = json_object_array_length(a);
        if (n != json_object_array_length(b)) return false;
        for (size_t i = 0; i < n; i++)
            if (!json_same(json_object_array_get_idx(a, i), json_object_array_get_idx(b, i)))
                return false;
        return true;
    }
    case json_type_object: {
        if (json_object_object_length(a) != json_object_object_length(b)) return false;
        json_object_object_foreach(a, k, va)
        {
            struct json_object *vb = NULL;
            if (!json_object_object_get_ex(b, k, &vb) || !json_same(va, vb)) return false;
        }
        return true;
    }
    }
    return false;
}

/* Appends one path element `"prefix.key"` to out, after a comma when not the first. */
static void put_path(ms_buf *out, const char *prefix, size_t plen, const char *key, size_t nth)
{
    if (nth) ms_buf_putc(out, ',');
    size_t klen = strlen(key);
    if (!plen) {
        ms_buf_put_jstrn(out, key, klen);
        return;
    }
    char small[256];
    char *p = plen + 1 + klen <= sizeof small ? small : ms_xmalloc(plen + 1 + klen);
    memcpy(p, prefix, plen);
    p[plen] = '.';
    memcpy(p + plen + 1, key, klen);
    ms_buf_put_jstrn(out, p, plen + 1 + klen);
    if (p != small) free(p);
}

/* Worker of ms_json_diff_paths: a and b are objects or NULL; returns how many were appended. */
static size_t diff_objects(struct json_object *a, struct json_object *b, const char *prefix,
                           ms_buf *out, size_t already)
{
    member sa[16], sb[16];
    size_t na = 0, nb = 0;
    member *ma = a ? sorted_members(a, sa, 16, &na) : sa;
    member *mb = b ? sorted_members(b, sb, 16, &nb) : sb;
    size_t plen = prefix ? strlen(prefix) : 0, added = 0, i = 0, j = 0;
    while (i < na || j < nb) {
        int c = i >= na ? 1 : j >= nb ? -1 : strcmp(ma[i].key, mb[j].key);
        if (c < 0) {
            put_path(out, prefix, plen, ma[i++].key, already + added++);
        } else if (c > 0) {
            put_path(out, prefix, plen, mb[j++].key, already + added++);
        } else {
            struct json_object *va = ma[i].val, *vb = mb[j].val;
            const char *key = ma[i].key;
            i++;
            j++;
            if (json_object_is_type(va, json_type_object) &&
                json_object_is_type(vb, json_type_object)) {
                size_t klen = strlen(key);
                char *sub = ms_xmalloc(plen + klen + 2);
                if (plen) {
                    memcpy(sub, prefix, plen);
                    sub[plen] = '.';
                    memcpy(sub + plen + 1, key, klen + 1);
                } else
                    memcpy(sub, key, klen + 1);
                added += diff_objects(va, vb, sub, out, already + added);
                free(sub);
            } else if (!json_same(va, vb)) {
                put_path(out, prefix, plen, key, already + added++);
            }
        }
    }
    if (ma != sa) free(ma);
    if (mb != sb) free(mb);
    return added;
}

size_t ms_json_diff_paths(struct json_object *a, struct json_object *b, const char *prefix,
                          ms_buf *out, size_t already)
{
    if (!json_object_is_type(a, json_type_object)) a = NULL;
    if (!json_object_is_type(b, json_type_object)) b = NULL;
    return diff_objects(a, b, prefix, out, already);
}
