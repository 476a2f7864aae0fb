/*
 * cmd_avro.c — `metasync avro`: developer subcommands over the Avro codec (src/avro/ms_avro.h),
 * used by tests/e2e/test_avro_oracle.py to compare MetaSync with python-avro, and by people
 * checking a schema change by hand:
 *   check READER WRITER        can READER read data written with WRITER? (exit 0 yes, 1 no)
 *   decode WRITER [--reader R] [--framed]   binary datum on stdin -> natural JSON on stdout
 *   encode SCHEMA              natural JSON on stdin -> binary datum on stdout
 *   fingerprint SCHEMA         Parsing Canonical Form and CRC-64-AVRO fingerprint
 * Needs no configuration and no server.
 */
#include "ms_avro.h"
#include "ms_cli.h"
#include "ms_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fputs("Usage: metasync avro SUBCOMMAND [options]\n"
          "\n"
          "Developer tools for MetaSync's Avro codec (schemas are .avsc files of JSON):\n"
          "  check READER.avsc WRITER.avsc\n"
          "      prints \"compatible\" (exit 0), or one line per incompatibility (exit 1)\n"
          "  decode WRITER.avsc [--reader READER.avsc] [--framed] < datum > value.json\n"
          "      decodes one binary datum (with --framed, a Confluent frame: 0x00, 4-byte schema\n"
          "      id, datum) into natural JSON, resolved to READER when given\n"
          "  encode SCHEMA.avsc < value.json > datum\n"
          "      encodes natural JSON as one binary datum (no frame)\n"
          "  fingerprint SCHEMA.avsc\n"
          "      prints the Parsing Canonical Form, then the CRC-64-AVRO fingerprint in hex\n"
          "\n"
          "Natural JSON: unions without a wrapper, bytes and fixed as strings of code points\n"
          "U+0000..U+00FF, enums as their symbol.\n"
          "\n"
          "Exit codes: 0 ok; 1 incompatible, or the datum/value was refused (detail on stderr);\n"
          "            2 usage error or unreadable/invalid schema file.\n",
          out);
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return true;
    return false;
}

/* Reads all of f into b; false on a read error. */
static bool slurp(FILE *f, ms_buf *b)
{
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        ms_buf_append(b, tmp, n);
    return !ferror(f);
}

/* Loads and parses a schema file; prints the error and returns NULL on failure. */
static ms_avro_schema *load_schema(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "metasync avro: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    ms_buf b = MS_BUF_INIT;
    bool ok = slurp(f, &b);
    fclose(f);
    if (!ok) {
        fprintf(stderr, "metasync avro: cannot read %s\n", path);
        ms_buf_free(&b);
        return NULL;
    }
    ms_avro_schema *s = NULL;
    ms_error err;
    if (ms_avro_schema_parse(ms_buf_cstr(&b), b.len, &s, &err) != MS_OK) {
        if (err.line)
            fprintf(stderr, "metasync avro: %s:%ld:%ld: %s\n", path, err.line, err.column,
                    err.detail);
        else
            fprintf(stderr, "metasync avro: %s: %s\n", path, err.detail);
    }
    ms_buf_free(&b);
    return s;
}

static int cmd_check(int argc, char **argv)
{
    if (argc != 2) {
        usage(stderr);
        return MS_EXIT_USAGE;
    }
    ms_avro_schema *r = load_schema(argv[0]), *w = r ? load_schema(argv[1]) : NULL;
    if (!r || !w) {
        ms_avro_schema_free(r);
        return MS_EXIT_USAGE;
    }
    ms_buf why = MS_BUF_INIT;
    bool ok = ms_avro_can_read(r, w, &why);
    fputs(ok ? "compatible\n" : ms_buf_cstr(&why), stdout);
    ms_buf_free(&why);
    ms_avro_schema_free(r);
    ms_avro_schema_free(w);
    return ok ? MS_EXIT_OK : MS_EXIT_REFUSED;
}

static int cmd_decode(int argc, char **argv)
{
    const char *writer_path = NULL, *reader_path = NULL;
    bool framed = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--framed") == 0)
            framed = true;
        else if (strcmp(argv[i], "--reader") == 0 && i + 1 < argc)
            reader_path = argv[++i];
        else if (argv[i][0] != '-' && !writer_path)
            writer_path = argv[i];
        else {
            usage(stderr);
            return MS_EXIT_USAGE;
        }
    }
    if (!writer_path) {
        usage(stderr);
        return MS_EXIT_USAGE;
    }
    ms_avro_schema *w = load_schema(writer_path);
    ms_avro_schema *r = w && reader_path ? load_schema(reader_path) : NULL;
    if (!w || (reader_path && !r)) {
        ms_avro_schema_free(w);
        return MS_EXIT_USAGE;
    }
    ms_buf in = MS_BUF_INIT;
    int rc = MS_EXIT_OK;
    ms_error err;
    const uint8_t *datum = (const uint8_t *)in.data;
    if (!slurp(stdin, &in)) {
        fprintf(stderr, "metasync avro: cannot read stdin\n");
        rc = MS_EXIT_USAGE;
        goto out;
    }
    datum = (const uint8_t *)in.data;
    size_t len = in.len;
    if (framed) {
        uint32_t id;
        if (ms_avro_frame_parse(datum, len, &id, &datum, &len, &err) != MS_OK) {
            fprintf(stderr, "metasync avro: %s: %s\n", ms_err_code(err.code), err.detail);
            rc = MS_EXIT_REFUSED;
            goto out;
        }
        fprintf(stderr, "schema id %" PRIu32 "\n", id);
    }
    json_object *v = NULL;
    if (ms_avro_decode(w, r, datum ? datum : (const uint8_t *)"", len, &v, &err) != MS_OK) {
        fprintf(stderr, "metasync avro: %s: %s\n", ms_err_code(err.code), err.detail);
        rc = MS_EXIT_REFUSED;
        goto out;
    }
    puts(v ? json_object_to_json_string_ext(v,
                                            JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
           : "null");
    json_object_put(v);
out:
    ms_buf_free(&in);
    ms_avro_schema_free(w);
    ms_avro_schema_free(r);
    return rc;
}

static int cmd_encode(int argc, char **argv)
{
    if (argc != 1) {
        usage(stderr);
        return MS_EXIT_USAGE;
    }
    ms_avro_schema *s = load_schema(argv[0]);
    if (!s) return MS_EXIT_USAGE;
    ms_buf in = MS_BUF_INIT, out = MS_BUF_INIT;
    int rc = MS_EXIT_OK;
    ms_error err;
    if (!slurp(stdin, &in)) {
        fprintf(stderr, "metasync avro: cannot read stdin\n");
        rc = MS_EXIT_USAGE;
        goto done;
    }
    json_object *v = ms_json_parse(ms_buf_cstr(&in), in.len, 0, NULL, &err);
    if (err.code != MS_OK) {
        fprintf(stderr, "metasync avro: stdin:%ld:%ld: %s\n", err.line, err.column, err.detail);
        rc = MS_EXIT_REFUSED;
        goto done;
    }
    if (ms_avro_encode(s, v, &out, &err) != MS_OK) {
        fprintf(stderr, "metasync avro: %s: %s\n", ms_err_code(err.code), err.detail);
        rc = MS_EXIT_REFUSED;
    } else if (fwrite(out.data ? out.data : "", 1, out.len, stdout) != out.len ||
               fflush(stdout) != 0) {
        rc = MS_EXIT_INTERNAL;
    }
    json_object_put(v);
done:
    ms_buf_free(&in);
    ms_buf_free(&out);
    ms_avro_schema_free(s);
    return rc;
}

static int cmd_fingerprint(int argc, char **argv)
{
    if (argc != 1) {
        usage(stderr);
        return MS_EXIT_USAGE;
    }
    ms_avro_schema *s = load_schema(argv[0]);
    if (!s) return MS_EXIT_USAGE;
    ms_buf b = MS_BUF_INIT;
    ms_avro_schema_canonical(s, &b);
    printf("%s\n%016" PRIx64 "\n", ms_buf_cstr(&b), ms_avro_schema_fingerprint(s));
    ms_buf_free(&b);
    ms_avro_schema_free(s);
    return MS_EXIT_OK;
}

int ms_cmd_avro(int argc, char **argv, char **envp)
{
    (void)envp;
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } subs[] = {{"check", cmd_check},
                {"decode", cmd_decode},
                {"encode", cmd_encode},
                {"fingerprint", cmd_fingerprint}};
    if (argc < 1 || wants_help(argc, argv)) {
        usage(argc < 1 ? stderr : stdout);
        return argc < 1 ? MS_EXIT_USAGE : MS_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
        if (strcmp(argv[0], subs[i].name) == 0) return subs[i].run(argc - 1, argv + 1);
    fprintf(stderr, "metasync avro: unknown subcommand '%s'\n\n", argv[0]);
    usage(stderr);
    return MS_EXIT_USAGE;
}
