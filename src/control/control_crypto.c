/*
 * control_crypto.c — the control plane's cryptography on libcrypto (OpenSSL): random bytes,
 * the salted SHA-256 of API-key secrets with a constant-time comparison, and AES-256-GCM sealing
 * of connection credentials. docs/decisions.md (entry 17) says why these primitives.
 *
 * Thread rules: stateless; every function is thread-safe. Buffers holding secrets are wiped
 * (OPENSSL_cleanse) before they are freed.
 */
#include "ms_control.h"

#include "ms_json.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define GCM_IV_BYTES  12
#define GCM_TAG_BYTES 16

ms_err ms_control_random(unsigned char *buf, size_t n, ms_error *err)
{
    if (RAND_bytes(buf, (int)n) != 1)
        return ms_error_set(err, MS_ERR_INTERNAL, "the random number generator failed");
    return MS_OK;
}

static void put_hex(ms_buf *b, const unsigned char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        ms_buf_putc(b, digits[p[i] >> 4]);
        ms_buf_putc(b, digits[p[i] & 15]);
    }
}

static int hex_val(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    ch = tolower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Decodes exactly n bytes from the hex string s (2n digits, nothing else); false otherwise. */
static bool get_hex(const char *s, unsigned char *out, size_t n)
{
    if (!s || strlen(s) != 2 * n) return false;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_val((unsigned char)s[2 * i]), lo = hex_val((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

bool ms_control_parse_key(const char *text, unsigned char key[MS_CONTROL_KEY_BYTES])
{
    while (isspace((unsigned char)*text))
        text++;
    size_t n = strlen(text);
    while (n && isspace((unsigned char)text[n - 1]))
        n--;
    if (n != 2 * MS_CONTROL_KEY_BYTES) return false;
    char hex[2 * MS_CONTROL_KEY_BYTES + 1];
    memcpy(hex, text, n);
    hex[n] = '\0';
    bool ok = get_hex(hex, key, MS_CONTROL_KEY_BYTES);
    OPENSSL_cleanse(hex, sizeof hex);
    return ok;
}

void ms_control_hash_secret(const char *salt_hex, const char *secret, char hex[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    if (!m) abort(); /* the out-of-memory policy of ms_buf.h */
    EVP_DigestInit_ex(m, EVP_sha256(), NULL);
    EVP_DigestUpdate(m, salt_hex, strlen(salt_hex));
    EVP_DigestUpdate(m, secret, strlen(secret));
    EVP_DigestFinal_ex(m, md, NULL);
    EVP_MD_CTX_free(m);
    ms_buf b = MS_BUF_INIT;
    put_hex(&b, md, sizeof md);
    memcpy(hex, b.data, 65);
    ms_buf_free(&b);
}

bool ms_control_equal_ct(const char *a, const char *b)
{
    size_t n = strlen(a);
    if (n != strlen(b)) return false;
    return CRYPTO_memcmp(a, b, n) == 0;
}

/* The key id: the first 8 bytes of SHA-256(key), in hex. Tells keys apart, reveals nothing. */
static void key_id(const unsigned char key[MS_CONTROL_KEY_BYTES], ms_buf *out)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(key, MS_CONTROL_KEY_BYTES, md);
    put_hex(out, md, 8);
}

ms_err ms_control_seal(const unsigned char key[MS_CONTROL_KEY_BYTES], const char *plain, size_t n,
                       ms_buf *out, ms_error *err)
{
    unsigned char iv[GCM_IV_BYTES], tag[GCM_TAG_BYTES];
    if (ms_control_random(iv, sizeof iv, err) != MS_OK) return err ? err->code : MS_ERR_INTERNAL;
    unsigned char *ct = ms_xmalloc(n + 16);
    int len = 0, fin = 0;
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    bool ok = x && EVP_EncryptInit_ex(x, EVP_aes_256_gcm(), NULL, key, iv) == 1 &&
              EVP_EncryptUpdate(x, ct, &len, (const unsigned char *)plain, (int)n) == 1 &&
              EVP_EncryptFinal_ex(x, ct + len, &fin) == 1 &&
              EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, GCM_TAG_BYTES, tag) == 1;
    EVP_CIPHER_CTX_free(x);
    if (ok) {
        ms_buf_puts(out, "{\"alg\":\"aes-256-gcm\",\"ct\":\"");
        put_hex(out, ct, (size_t)(len + fin));
        ms_buf_puts(out, "\",\"iv\":\"");
        put_hex(out, iv, sizeof iv);
        ms_buf_puts(out, "\",\"kid\":\"");
        key_id(key, out);
        ms_buf_puts(out, "\",\"tag\":\"");
        put_hex(out, tag, sizeof tag);
        ms_buf_puts(out, "\"}");
    }
    free(ct);
    return ok ? MS_OK : ms_error_set(err, MS_ERR_INTERNAL, "AES-256-GCM encryption failed");
}

static const char *str_field(struct json_object *o, const char *k)
{
    struct json_object *v;
    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

ms_err ms_control_unseal(const unsigned char key[MS_CONTROL_KEY_BYTES], const char *sealed,
                         ms_buf *plain, ms_error *err)
{
    struct json_object *o = ms_json_parse(sealed, strlen(sealed), 0, NULL, NULL);
    const char *cth = o ? str_field(o, "ct") : NULL;
    const char *alg = o ? str_field(o, "alg") : NULL;
    unsigned char iv[GCM_IV_BYTES], tag[GCM_TAG_BYTES];
    size_t n = cth ? strlen(cth) / 2 : 0;
    unsigned char *ct = ms_xmalloc(n + 1), *pt = ms_xmalloc(n + 16);
    bool ok = alg && strcmp(alg, "aes-256-gcm") == 0 && get_hex(cth, ct, n) &&
              get_hex(str_field(o, "iv"), iv, sizeof iv) &&
              get_hex(str_field(o, "tag"), tag, sizeof tag);
    int len = 0, fin = 0;
    if (ok) {
        EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
        ok = x && EVP_DecryptInit_ex(x, EVP_aes_256_gcm(), NULL, key, iv) == 1 &&
             EVP_DecryptUpdate(x, pt, &len, ct, (int)n) == 1 &&
             EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, GCM_TAG_BYTES, tag) == 1 &&
             EVP_DecryptFinal_ex(x, pt + len, &fin) == 1;
        EVP_CIPHER_CTX_free(x);
    }
    if (ok) ms_buf_append(plain, pt, (size_t)(len + fin));
    OPENSSL_cleanse(pt, n + 16);
    free(pt);
    free(ct);
    json_object_put(o);
    return ok ? MS_OK
              : ms_error_set(err, MS_ERR_CONFIG,
                             "the credentials do not open with the configured secrets key "
                             "(another key, or changed data)");
}
