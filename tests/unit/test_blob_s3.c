/*
 * test_blob_s3.c — unit tests of the pure parts of the S3 blob store (blob_s3_int.h): s3:// URL
 * parsing and bucket-name rules, the base URL (endpoint, path or virtual-hosted style), SigV4
 * percent-encoding of keys (slash kept) and query values (slash encoded), the canonical query
 * string (encoded, sorted), the shared credentials file (profiles, comments, spacing, CRLF, missing
 * profile or secret, malformed lines, and no secret in any error), the retry decision (5xx, 429,
 * transport errors yes; other 4xx and local errors no), the jittered backoff bounds, SHA-256 hex,
 * and the S3 XML error body. Last, the store itself against an endpoint where nothing listens:
 * open() still succeeds (the sink retries) and put() fails with the retriable MS_ERR_IO. The signed
 * requests themselves are checked against real peers in tests/e2e/test_s3.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "blob/s3/blob_s3_int.h"
#include "ms_blob.h"
#include "ms_config.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

extern const ms_blob_ops ms_blob_s3;

static void test_url_parse(void **state)
{
    (void)state;
    char *b, *p;
    ms_error err;
    assert_int_equal(ms_s3_url_parse("s3://snap-bucket/a b/ü+=~/", &b, &p, &err), MS_OK);
    assert_string_equal(b, "snap-bucket");
    assert_string_equal(p, "a b/ü+=~");
    free(b);
    free(p);
    assert_int_equal(ms_s3_url_parse("s3://my.bucket", &b, &p, &err), MS_OK);
    assert_string_equal(b, "my.bucket");
    assert_string_equal(p, "");
    free(b);
    free(p);
    assert_int_equal(ms_s3_url_parse("s3://bkt///x//", &b, &p, &err), MS_OK);
    assert_string_equal(p, "x");
    free(b);
    free(p);
    const char *bad[] = {"file:///tmp",  "s3://",        "s3://ab/x",
                         "s3://Upper/x", "s3://a_b_c/x", "s3:/bucket"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ms_s3_url_parse(bad[i], &b, &p, &err), MS_ERR_CONFIG);
        assert_null(b);
        assert_null(p);
        assert_non_null(strstr(err.detail, "snapshots.url"));
    }
}

static void check_base(const char *endpoint, const char *region, bool path_style, const char *want)
{
    ms_buf b = MS_BUF_INIT;
    ms_error err;
    ms_err rc = ms_s3_base_url(&b, endpoint, region, "snap.bkt", path_style, &err);
    if (want) {
        assert_int_equal(rc, MS_OK);
        assert_string_equal(ms_buf_cstr(&b), want);
    } else {
        assert_int_equal(rc, MS_ERR_CONFIG);
        assert_true(strstr(err.detail, "s3.endpoint") || strstr(err.detail, "s3.region"));
    }
    ms_buf_free(&b);
}

static void test_base_url(void **state)
{
    (void)state;
    check_base("", "eu-west-1", false, "https://snap.bkt.s3.eu-west-1.amazonaws.com");
    check_base(NULL, "us-east-1", true, "https://s3.us-east-1.amazonaws.com/snap.bkt");
    check_base("http://127.0.0.1:9000/", "us-east-1", true, "http://127.0.0.1:9000/snap.bkt");
    check_base("http://minio.local:9000", "us-east-1", false, "http://snap.bkt.minio.local:9000");
    check_base("https://s3.example.com//", "x1", true, "https://s3.example.com/snap.bkt");
    check_base("ftp://example.com", "us-east-1", true, NULL);
    check_base("example.com", "us-east-1", true, NULL);
    check_base("http://", "us-east-1", true, NULL);
    check_base("http://user:pw@example.com", "us-east-1", true, NULL);
    check_base("http://example.com/?x=1", "us-east-1", true, NULL);
    check_base("", "eu:west", true, NULL);
    check_base("", "EU-WEST-1", true, NULL);
}

static void check_encode(const char *in, bool keep_slash, const char *want)
{
    ms_buf b = MS_BUF_INIT;
    ms_s3_uri_encode(&b, in, strlen(in), keep_slash);
    assert_string_equal(ms_buf_cstr(&b), want);
    ms_buf_free(&b);
}

static void test_uri_encode(void **state)
{
    (void)state;
    check_encode("AZaz09-._~", true, "AZaz09-._~");
    check_encode("pre fix/ü+=~/default/1-2.ndjson", true,
                 "pre%20fix/%C3%BC%2B%3D~/default/1-2.ndjson");
    check_encode("a/b c", false, "a%2Fb%20c");
    check_encode("*!'()%&?#:@,;$", true, "%2A%21%27%28%29%25%26%3F%23%3A%40%2C%3B%24");
    check_encode("\x01\x7f\xff", true, "%01%7F%FF");
    check_encode("", true, "");
}

static void test_canonical_query(void **state)
{
    (void)state;
    ms_s3_param q[] = {{"prefix", "a b/ü+=~/"}, {"max-keys", "1"}, {"list-type", "2"}, {"acl", ""},
                       {"Zeta", "z"},           {"a~b", "2"},      {"a~b", "1"}};
    ms_buf b = MS_BUF_INIT;
    ms_s3_canonical_query(&b, q, sizeof q / sizeof q[0]);
    /* Byte order of the encoded names: upper case before lower case, "acl" before "a~b". */
    assert_string_equal(ms_buf_cstr(&b), "Zeta=z&acl=&a~b=1&a~b=2&list-type=2&max-keys=1&"
                                         "prefix=a%20b%2F%C3%BC%2B%3D~%2F");
    ms_buf_reset(&b);
    ms_s3_canonical_query(&b, q, 0);
    assert_string_equal(ms_buf_cstr(&b), "");
    ms_buf_free(&b);
}

static const char CREDS[] = "# shared credentials\n"
                            "[default]\n"
                            "aws_access_key_id = AKIDDEFAULT\n"
                            "aws_secret_access_key=secret/default+key\n"
                            "\n"
                            "; another comment\n"
                            "[ ci ]\r\n"
                            "  AWS_ACCESS_KEY_ID\t=  AKIDCI  \r\n"
                            "aws_secret_access_key = s3cr3t ci = with equals\r\n"
                            "aws_session_token = tok/en==\r\n"
                            "region = eu-west-1\r\n"
                            "[nosecret]\n"
                            "aws_access_key_id = AKIDNS\n"
                            "[default2]\n"
                            "aws_access_key_id = X";

static void test_creds_parse(void **state)
{
    (void)state;
    ms_s3_creds c;
    ms_error err;
    assert_int_equal(ms_s3_creds_parse(CREDS, "default", "creds", &c, &err), MS_OK);
    assert_string_equal(c.access_key_id, "AKIDDEFAULT");
    assert_string_equal(c.secret_access_key, "secret/default+key");
    assert_null(c.session_token);
    ms_s3_creds_free(&c);
    assert_null(c.access_key_id);

    assert_int_equal(ms_s3_creds_parse(CREDS, "ci", "creds", &c, &err), MS_OK);
    assert_string_equal(c.access_key_id, "AKIDCI");
    assert_string_equal(c.secret_access_key, "s3cr3t ci = with equals");
    assert_string_equal(c.session_token, "tok/en==");
    ms_s3_creds_free(&c);

    assert_int_equal(ms_s3_creds_parse(CREDS, "prod", "/x/credentials", &c, &err), MS_ERR_CONFIG);
    assert_non_null(strstr(err.detail, "/x/credentials"));
    assert_non_null(strstr(err.detail, "[prod]"));
    assert_null(c.access_key_id);

    assert_int_equal(ms_s3_creds_parse(CREDS, "nosecret", "creds", &c, &err), MS_ERR_CONFIG);
    assert_non_null(strstr(err.detail, "aws_secret_access_key"));
    assert_null(c.access_key_id);

    const char *bad_line = "[default]\naws_access_key_id = A\nthis line has no equals sign\n";
    assert_int_equal(ms_s3_creds_parse(bad_line, "default", "f", &c, &err), MS_ERR_CONFIG);
    assert_non_null(strstr(err.detail, "line 3"));
    const char *bad_section = "[default\naws_access_key_id = A\n";
    assert_int_equal(ms_s3_creds_parse(bad_section, "default", "f", &c, &err), MS_ERR_CONFIG);
    assert_non_null(strstr(err.detail, "line 1"));

    /* An error never carries a secret, even one read before the error. */
    const char *late = "[default]\naws_secret_access_key = TOPSECRET\n";
    assert_int_equal(ms_s3_creds_parse(late, "default", "f", &c, &err), MS_ERR_CONFIG);
    assert_null(strstr(err.detail, "TOPSECRET"));
    assert_non_null(strstr(err.detail, "aws_access_key_id"));
    assert_int_equal(ms_s3_creds_parse("", "default", "f", &c, &err), MS_ERR_CONFIG);
}

static void test_retriable(void **state)
{
    (void)state;
    assert_false(ms_s3_retriable(CURLE_OK, 200));
    assert_false(ms_s3_retriable(CURLE_OK, 400));
    assert_false(ms_s3_retriable(CURLE_OK, 403));
    assert_false(ms_s3_retriable(CURLE_OK, 404));
    assert_false(ms_s3_retriable(CURLE_OK, 409));
    assert_true(ms_s3_retriable(CURLE_OK, 429));
    assert_true(ms_s3_retriable(CURLE_OK, 500));
    assert_true(ms_s3_retriable(CURLE_OK, 503));
    assert_true(ms_s3_retriable(CURLE_COULDNT_CONNECT, 0));
    assert_true(ms_s3_retriable(CURLE_COULDNT_RESOLVE_HOST, 0));
    assert_true(ms_s3_retriable(CURLE_OPERATION_TIMEDOUT, 0));
    assert_true(ms_s3_retriable(CURLE_RECV_ERROR, 0));
    assert_true(ms_s3_retriable(CURLE_SEND_ERROR, 0));
    assert_true(ms_s3_retriable(CURLE_GOT_NOTHING, 0));
    assert_false(ms_s3_retriable(CURLE_URL_MALFORMAT, 0));
    assert_false(ms_s3_retriable(CURLE_UNSUPPORTED_PROTOCOL, 0));
    assert_false(ms_s3_retriable(CURLE_OUT_OF_MEMORY, 0));
    assert_false(ms_s3_retriable(CURLE_ABORTED_BY_CALLBACK, 0));
}

static void test_backoff(void **state)
{
    (void)state;
    uint32_t rnds[] = {0, 1, 77, 199, 200, 201, 4999, 5000, 123456789, UINT32_MAX};
    for (int attempt = 0; attempt < 40; attempt++) {
        long ceil = 200;
        for (int i = 0; i < attempt && ceil < 5000; i++)
            ceil *= 2;
        if (ceil > 5000) ceil = 5000;
        for (size_t r = 0; r < sizeof rnds / sizeof rnds[0]; r++) {
            long d = ms_s3_backoff_ms(attempt, 200, 5000, rnds[r]);
            assert_true(d >= 1 && d <= ceil);
        }
    }
    assert_int_equal(ms_s3_backoff_ms(0, 200, 5000, 150), 150);
    assert_int_equal(ms_s3_backoff_ms(3, 200, 5000, 1600), 1600);  /* ceiling 1600 reachable */
    assert_int_equal(ms_s3_backoff_ms(3, 200, 5000, 1601), 0 + 1); /* 1601 % 1601 = 0 -> 1 */
    assert_int_equal(ms_s3_backoff_ms(30, 200, 5000, 5000), 5000);
    assert_int_equal(ms_s3_backoff_ms(0, 0, 0, 12345), 1);
}

static void test_sha256(void **state)
{
    (void)state;
    char hex[65];
    ms_s3_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ms_s3_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_xml_error(void **state)
{
    (void)state;
    const char *body =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchBucket</Code>"
        "<Message>The specified bucket does not exist &amp; &lt;never&gt; "
        "did\n</Message><BucketName>x</BucketName></Error>";
    char code[32], msg[128];
    ms_s3_xml_error(body, strlen(body), code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "NoSuchBucket");
    assert_string_equal(msg, "The specified bucket does not exist & <never> did ");
    ms_s3_xml_error(body, strlen(body), code, 5, msg, 8);
    assert_string_equal(code, "NoSu");
    assert_string_equal(msg, "The spe");
    ms_s3_xml_error("<html>oops</html>", 17, code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "");
    assert_string_equal(msg, "");
    ms_s3_xml_error("<Code>Unterminated", 18, code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "");
}

/* No server on 127.0.0.1:1: open() only warns, put() fails with the retriable MS_ERR_IO. */
static void test_unreachable_endpoint(void **state)
{
    (void)state;
    ms_config cfg;
    ms_config_defaults(&cfg);
    ms_error err;
    assert_int_equal(ms_config_set(&cfg, "s3.endpoint", "http://127.0.0.1:1", "test", &err), MS_OK);
    assert_int_equal(ms_config_set(&cfg, "s3.path_style", "true", "test", &err), MS_OK);
    assert_int_equal(ms_config_set(&cfg, "s3.max_retries", "1", "test", &err), MS_OK);
    setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SECRETTEST", 1);
    unsetenv("AWS_SESSION_TOKEN");
    void *ctx = NULL;
    assert_int_equal(ms_blob_s3.open("s3://bucket/p", &cfg, NULL, &ctx, &err), MS_OK);
    assert_non_null(ctx);
    ms_error_clear(&err);
    assert_int_equal(ms_blob_s3.put(ctx, "default/x.ndjson", "{}\n", 3, &err), MS_ERR_IO);
    assert_true(ms_err_is_retriable(err.code));
    assert_non_null(strstr(err.detail, "after 2 attempts"));
    ms_blob_s3.close(ctx);

    /* Half of the key pair in the environment is a configuration error. */
    unsetenv("AWS_SECRET_ACCESS_KEY");
    ctx = NULL;
    assert_int_equal(ms_blob_s3.open("s3://bucket/p", &cfg, NULL, &ctx, &err), MS_ERR_CONFIG);
    assert_non_null(strstr(err.detail, "AWS_SECRET_ACCESS_KEY"));
    assert_null(ctx);
    unsetenv("AWS_ACCESS_KEY_ID");
    ms_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse),   cmocka_unit_test(test_base_url),
        cmocka_unit_test(test_uri_encode),  cmocka_unit_test(test_canonical_query),
        cmocka_unit_test(test_creds_parse), cmocka_unit_test(test_retriable),
        cmocka_unit_test(test_backoff),     cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_xml_error),   cmocka_unit_test(test_unreachable_endpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
