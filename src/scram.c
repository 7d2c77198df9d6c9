/* scram.c - SCRAM-SHA-256 client messages (RFC 5802 3 and 5.1, RFC 7677): client-first,
 * client-final with ClientProof, and the ServerSignature check. No I/O. */
#include "scram.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "smtp_reply.h"
#include "util.h"

#define SHA256_LEN 32
#define MIN_ITERATIONS 4096 /* RFC 7677 4 */

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

char *scram_client_first(struct scram *s, const char *user, const char *cnonce)
{
    memset(s, 0, sizeof *s);
    char nonce[33];
    if (!cnonce) {
        unsigned char rnd[18];
        if (RAND_bytes(rnd, sizeof rnd) != 1)
            return NULL;
        smtp_b64_encode(rnd, sizeof rnd, nonce); /* 24 characters, no ',' */
        cnonce = nonce;
    }
    s->cnonce = xstrdup(cnonce);
    /* saslname: "=" -> "=3D", "," -> "=2C" (RFC 5802 5.1); SASLprep is not applied (ASCII) */
    size_t ul = strlen(user);
    char *name = xmalloc(ul * 3 + 1);
    size_t k = 0;
    for (size_t i = 0; i < ul; i++) {
        if (user[i] == '=' || user[i] == ',') {
            memcpy(name + k, user[i] == '=' ? "=3D" : "=2C", 3);
            k += 3;
        } else {
            name[k++] = user[i];
        }
    }
    name[k] = '\0';
    size_t bl = k + strlen(cnonce) + 6;
    s->client_first_bare = xmalloc(bl);
    snprintf(s->client_first_bare, bl, "n=%s,r=%s", name, cnonce);
    free(name);
    size_t fl = bl + 3;
    char *first = xmalloc(fl);
    snprintf(first, fl, "n,,%s", s->client_first_bare);
    return first;
}

/* Value of attribute c ("r", "s", "i") in a comma-separated attribute list; NULL if absent. */
static char *attr(const char *msg, char c)
{
    const char *p = msg;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n >= 2 && p[0] == c && p[1] == '=')
            return xstrndup(p + 2, n - 2);
        p += n;
        if (*p == ',')
            p++;
    }
    return NULL;
}

static bool hmac256(const unsigned char *key, size_t keylen, const void *msg, size_t len,
                    unsigned char out[SHA256_LEN])
{
    unsigned int ol = 0;
    return HMAC(EVP_sha256(), key, (int)keylen, msg, len, out, &ol) && ol == SHA256_LEN;
}

char *scram_client_final(struct scram *s, const char *password, const char *server_first,
                         char *err, size_t errlen)
{
    char *e = attr(server_first, 'e');
    if (e) {
        set_err(err, errlen, "the server reports an error: %s", e);
        free(e);
        return NULL;
    }
    char *nonce = attr(server_first, 'r');
    char *salt64 = attr(server_first, 's');
    char *iter = attr(server_first, 'i');
    char *final = NULL;
    unsigned char salt[256], salted[SHA256_LEN], client_key[SHA256_LEN], stored[SHA256_LEN];
    unsigned char sig[SHA256_LEN], proof[SHA256_LEN];
    long saltlen;
    if (!nonce || !salt64 || !iter) {
        set_err(err, errlen, "the server's first message lacks r=, s= or i=");
        goto out;
    }
    if (strncmp(nonce, s->cnonce, strlen(s->cnonce)) != 0 || strlen(nonce) == strlen(s->cnonce)) {
        set_err(err, errlen, "the server's nonce does not extend ours (a replay or a bug)");
        goto out;
    }
    saltlen = smtp_b64_decode(salt64, strlen(salt64), salt, sizeof salt);
    if (saltlen <= 0) {
        set_err(err, errlen, "the salt is not base64");
        goto out;
    }
    char *end;
    unsigned long it = strtoul(iter, &end, 10);
    if (*end || it == 0 || it > 10000000) {
        set_err(err, errlen, "bad iteration count i=%s", iter);
        goto out;
    }
    if (it < MIN_ITERATIONS) {
        set_err(err, errlen, "the server asks for only %lu iterations; RFC 7677 wants at "
                "least %d", it, MIN_ITERATIONS);
        goto out;
    }
    s->iterations = (unsigned)it;
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)saltlen, (int)it,
                          EVP_sha256(), SHA256_LEN, salted) != 1 ||
        !hmac256(salted, SHA256_LEN, "Client Key", 10, client_key) ||
        !hmac256(salted, SHA256_LEN, "Server Key", 10, s->server_key) ||
        !EVP_Digest(client_key, SHA256_LEN, stored, NULL, EVP_sha256(), NULL)) {
        set_err(err, errlen, "the crypto library failed");
        goto out;
    }
    /* c=biws is base64("n,,"): no channel binding */
    size_t wl = strlen(nonce) + 16;
    char *without = xmalloc(wl);
    snprintf(without, wl, "c=biws,r=%s", nonce);
    size_t al = strlen(s->client_first_bare) + strlen(server_first) + wl + 3;
    free(s->auth_message);
    s->auth_message = xmalloc(al);
    snprintf(s->auth_message, al, "%s,%s,%s", s->client_first_bare, server_first, without);
    if (!hmac256(stored, SHA256_LEN, s->auth_message, strlen(s->auth_message), sig)) {
        set_err(err, errlen, "the crypto library failed");
        free(without);
        goto out;
    }
    for (size_t i = 0; i < SHA256_LEN; i++)
        proof[i] = client_key[i] ^ sig[i];
    char proof64[64];
    smtp_b64_encode(proof, SHA256_LEN, proof64);
    size_t fl = strlen(without) + strlen(proof64) + 4;
    final = xmalloc(fl);
    snprintf(final, fl, "%s,p=%s", without, proof64);
    free(without);
out:
    OPENSSL_cleanse(salted, sizeof salted);
    OPENSSL_cleanse(client_key, sizeof client_key);
    free(nonce);
    free(salt64);
    free(iter);
    return final;
}

bool scram_verify_server(const struct scram *s, const char *server_final, char *err,
                         size_t errlen)
{
    char *e = attr(server_final, 'e');
    if (e) {
        set_err(err, errlen, "the server reports an error: %s", e);
        free(e);
        return false;
    }
    char *v = attr(server_final, 'v');
    unsigned char got[64], want[SHA256_LEN];
    long n = v ? smtp_b64_decode(v, strlen(v), got, sizeof got) : -1;
    free(v);
    if (n != SHA256_LEN || !s->auth_message) {
        set_err(err, errlen, "the server's final message has no valid v= signature");
        return false;
    }
    if (!hmac256(s->server_key, SHA256_LEN, s->auth_message, strlen(s->auth_message), want) ||
        CRYPTO_memcmp(got, want, SHA256_LEN) != 0) {
        set_err(err, errlen, "the server's signature is wrong: it does not know the "
                "password (an impostor, or a man in the middle)");
        return false;
    }
    return true;
}

void scram_free(struct scram *s)
{
    free(s->client_first_bare);
    free(s->cnonce);
    free(s->auth_message);
    OPENSSL_cleanse(s->server_key, sizeof s->server_key);
    memset(s, 0, sizeof *s);
}
