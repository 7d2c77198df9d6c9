/* fuzz_sasl.c - libFuzzer target for the SASL exchanges of SMTP AUTH (RFC 4954): base64
 * (RFC 4648, smtp_reply.c), the CRAM-MD5 digest (RFC 2195, users.c) and the SCRAM-SHA-256
 * server (RFC 5802, RFC 7677, scram_server.c) against a fixed users table. (The PLAIN and
 * LOGIN responses are parsed inside session.c: fuzz_session drives them.)
 *
 * Byte 0 picks the mode (byte 0 % 2), the rest is its input:
 *   0  base64: decode must refuse or give octets that encode back to the input; any octets
 *      must encode and decode back to themselves; the CRAM-MD5 digest of them is 32 hex
 *   1  SCRAM: "client-first\nclient-final". In client-final "@N" is replaced by the server's
 *      nonce, "@C" by the base64 GS2 header and a final "@P" by the right proof for ann's
 *      password (computed here, RFC 5802 3), so the fuzzer gets past every check. A right
 *      proof must be accepted for ann (and the server signature must be right), refused for
 *      anyone else; a made-up proof must never be accepted. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "scram_server.h"
#include "smtp_reply.h"
#include "users.h"
#include "util.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct users users;
static unsigned char ann_client_key[32]; /* HMAC(SaltedPassword, "Client Key") */
static unsigned char ann_salted[32];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    /* ann: SCRAM and CRAM-MD5; bob: a crypt hash only (no SCRAM keys) */
    static const char *const who[][2] = {{"ann", "secret"}, {"bob", "hunter2"}};
    for (size_t i = 0; i < ARRAY_LEN(who); i++) {
        struct user_entry e;
        char err[256];
        REQUIRE(users_make_entry(&e, who[i][0], who[i][1], i == 0, 4096, err, sizeof err) == 0);
        if (i == 1)
            e.has_scram = false;
        REQUIRE(users_put(&users, &e, false) == 0);
    }
    const struct user_entry *ann = users_find(&users, "ann");
    unsigned ml = 0;
    REQUIRE(PKCS5_PBKDF2_HMAC("secret", 6, ann->scram_salt, (int)ann->scram_salt_len,
                              (int)ann->scram_iter, EVP_sha256(), 32, ann_salted) == 1);
    REQUIRE(HMAC(EVP_sha256(), ann_salted, 32, (const unsigned char *)"Client Key", 10,
                 ann_client_key, &ml));
    return 0;
}

static void fuzz_base64(const char *in, size_t len)
{
    size_t cap = len + 1;
    unsigned char *out = malloc(cap);
    char *enc = malloc(4 * ((len + 2) / 3) + 1);
    REQUIRE(out && enc);
    long n = smtp_b64_decode(in, len, out, cap);
    if (n >= 0) {
        REQUIRE((size_t)n < cap && out[n] == '\0');
        REQUIRE(smtp_b64_encode(out, (size_t)n, enc) == len);
        /* non-zero pad bits would be accepted but not reproduced; compare by value */
        unsigned char *again = malloc(cap);
        REQUIRE(again);
        REQUIRE(smtp_b64_decode(enc, len, again, cap) == n && memcmp(again, out, (size_t)n) == 0);
        free(again);
        /* too small a buffer is refused, never overrun */
        REQUIRE(smtp_b64_decode(in, len, out, (size_t)n) == -1);
    }
    size_t el = smtp_b64_encode((const unsigned char *)in, len, enc);
    REQUIRE(el == 4 * ((len + 2) / 3) && strlen(enc) == el);
    REQUIRE(smtp_b64_decode(enc, el, out, cap) == (long)len && memcmp(out, in, len) == 0);
    char hex[33];
    users_cram_digest(users_find(&users, "ann"), in, len, hex);
    REQUIRE(strlen(hex) == 32 && strspn(hex, "0123456789abcdef") == 32);
    free(out);
    free(enc);
}

/* s with every "@N" replaced by nonce and "@C" by cb; caller frees. */
static char *substitute(const char *s, size_t len, const char *nonce, const char *cb, size_t *outlen)
{
    size_t cap = len * (strlen(nonce) + strlen(cb) + 1) + 1, o = 0;
    char *out = xmalloc(cap);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '@' && i + 1 < len && (s[i + 1] == 'N' || s[i + 1] == 'C')) {
            const char *r = s[i + 1] == 'N' ? nonce : cb;
            memcpy(out + o, r, strlen(r));
            o += strlen(r);
            i++;
        } else {
            out[o++] = s[i];
        }
    }
    *outlen = o;
    return out;
}

static void fuzz_scram_hostile(const char *in, size_t len)
{
    const char *nl = memchr(in, '\n', len);
    size_t flen = nl ? (size_t)(nl - in) : len;
    char *first = xmalloc(flen ? flen : 1); /* exact size: ASan sees any overread */
    memcpy(first, in, flen);
    struct scram_server ss;
    char err[256];
    char *sf = scram_server_first(&ss, &users, first, flen, err, sizeof err);
    free(first);
    if (!sf) {
        REQUIRE(err[0]);
        scram_server_free(&ss);
        return;
    }
    REQUIRE(strncmp(sf, "r=", 2) == 0 && strstr(sf, ",s=") && strstr(sf, ",i="));
    if (nl) {
        char cb[1024];
        REQUIRE(strlen(ss.gs2_header) < 700);
        smtp_b64_encode((const unsigned char *)ss.gs2_header, strlen(ss.gs2_header), cb);
        size_t mlen;
        char *m = substitute(nl + 1, len - flen - 1, ss.nonce, cb, &mlen);
        char *auth = NULL;
        bool proved = mlen >= 4 && memcmp(m + mlen - 4, "p=@P", 4) == 0 && !memchr(m, 0, mlen);
        if (proved) {
            /* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
            size_t wl = mlen - 5, al = strlen(ss.client_first_bare) + strlen(sf) + wl + 3;
            auth = xmalloc(al);
            snprintf(auth, al, "%s,%s,%.*s", ss.client_first_bare, sf, (int)wl, m);
            unsigned char sig[32], proof[32];
            unsigned ml = 0;
            REQUIRE(HMAC(EVP_sha256(), users_find(&users, "ann")->stored_key, 32,
                         (const unsigned char *)auth, strlen(auth), sig, &ml));
            for (int i = 0; i < 32; i++)
                proof[i] = ann_client_key[i] ^ sig[i];
            m = xrealloc(m, mlen + 64);
            mlen = mlen - 2 + smtp_b64_encode(proof, 32, m + mlen - 2);
        }
        char *final = NULL;
        int rc = scram_server_final(&ss, m, mlen, &final, err, sizeof err);
        if (!proved || !ss.known || strcmp(ss.user, "ann") != 0) {
            REQUIRE(rc == 0 || rc == -1); /* a made-up proof cannot be right */
            REQUIRE(final == NULL);
        } else if (rc != -1) {
            REQUIRE(rc == 1 && final && strncmp(final, "v=", 2) == 0);
            /* the server proves it knows ServerKey: HMAC(ServerKey, AuthMessage) */
            unsigned char sk[32], ssig[32];
            unsigned ml = 0;
            char want[48] = "v=";
            REQUIRE(HMAC(EVP_sha256(), ann_salted, 32, (const unsigned char *)"Server Key", 10,
                         sk, &ml));
            REQUIRE(HMAC(EVP_sha256(), sk, 32, (const unsigned char *)auth, strlen(auth), ssig,
                         &ml));
            smtp_b64_encode(ssig, 32, want + 2);
            REQUIRE(strcmp(final, want) == 0);
        }
        free(auth);
        free(final);
        free(m);
    }
    free(sf);
    scram_server_free(&ss);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 2) {
    case 0:
        fuzz_base64(in, len);
        break;
    default:
        fuzz_scram_hostile(in, len);
        break;
    }
    return 0;
}
