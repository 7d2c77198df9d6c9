/* scram_server.c - SCRAM-SHA-256 server (RFC 5802 3, 5, 7; RFC 7677) against stored keys:
 * AuthMessage = client-first-bare "," server-first "," client-final-without-proof;
 * ClientKey = proof XOR HMAC(StoredKey, AuthMessage) must hash to StoredKey, and the server
 * proves itself with HMAC(ServerKey, AuthMessage). See scram_server.h. */
#include "scram_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "smtp_reply.h"
#include "util.h"

/* Decode a saslname ("=2C" is ',', "=3D" is '='; RFC 5802 5.1) into out. */
static bool saslname(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '=') {
            if (len - i >= 3 && s[i + 1] == '2' && s[i + 2] == 'C')
                c = ',';
            else if (len - i >= 3 && s[i + 1] == '3' && s[i + 2] == 'D')
                c = '=';
            else
                return false;
            i += 2;
        } else if (c == ',' || c == '\0') {
            return false;
        }
        if (o + 1 >= cap)
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return o > 0;
}

char *scram_server_first(struct scram_server *ss, const struct users *u, const char *msg,
                         size_t len, char *err, size_t errlen)
{
    memset(ss, 0, sizeof *ss);
    if (memchr(msg, '\0', len))
        return errorf(err, errlen, "NUL in client-first message"), NULL;
    /* gs2-header: ("n" / "y") "," [ "a=" saslname ] "," */
    if (len < 3 || (msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',') {
        if (len > 0 && msg[0] == 'p')
            return errorf(err, errlen, "channel binding is not supported"), NULL;
        return errorf(err, errlen, "malformed GS2 header"), NULL;
    }
    const char *comma = memchr(msg + 2, ',', len - 2);
    if (!comma)
        return errorf(err, errlen, "malformed GS2 header"), NULL;
    char authz[USERS_NAME_MAX + 1] = "";
    size_t alen = (size_t)(comma - (msg + 2));
    if (alen > 0 && (alen < 3 || strncmp(msg + 2, "a=", 2) != 0 ||
                     !saslname(msg + 4, alen - 2, authz, sizeof authz)))
        return errorf(err, errlen, "malformed authzid"), NULL;
    const char *bare = comma + 1;
    size_t blen = len - (size_t)(bare - msg);
    /* client-first-bare: "n=" saslname ",r=" nonce ["," extensions]; "m=" is mandatory-to-
     * understand and we understand none. */
    if (blen < 2 || strncmp(bare, "m=", 2) == 0)
        return errorf(err, errlen, "unsupported mandatory extension"), NULL;
    if (blen < 3 || strncmp(bare, "n=", 2) != 0)
        return errorf(err, errlen, "no user name"), NULL;
    const char *c2 = memchr(bare, ',', blen);
    if (!c2 || !saslname(bare + 2, (size_t)(c2 - bare - 2), ss->user, sizeof ss->user))
        return errorf(err, errlen, "malformed user name"), NULL;
    const char *r = c2 + 1, *end = bare + blen;
    if (end - r < 3 || strncmp(r, "r=", 2) != 0)
        return errorf(err, errlen, "no client nonce"), NULL;
    const char *rend = memchr(r, ',', (size_t)(end - r));
    if (!rend)
        rend = end;
    size_t nlen = (size_t)(rend - r - 2);
    if (nlen == 0)
        return errorf(err, errlen, "empty client nonce"), NULL;
    for (size_t i = 0; i < nlen; i++) {
        unsigned char ch = (unsigned char)r[2 + i];
        if (ch < 0x21 || ch > 0x7e)
            return errorf(err, errlen, "client nonce is not printable"), NULL;
    }
    if (authz[0] && strcmp(authz, ss->user) != 0)
        return errorf(err, errlen, "authorization identity differs from the user"), NULL;

    const struct user_entry *e = users_find(u, ss->user);
    ss->known = e && e->has_scram;
    unsigned char salt[USERS_SCRAM_SALT_MAX];
    size_t salt_len = 16;
    unsigned iter = USERS_SCRAM_ITER_DEFAULT;
    if (ss->known) {
        memcpy(salt, e->scram_salt, e->scram_salt_len);
        salt_len = e->scram_salt_len;
        iter = e->scram_iter;
        memcpy(ss->stored_key, e->stored_key, 32);
        memcpy(ss->server_key, e->server_key, 32);
    } else {
        /* A stable fake salt per name (a per-process secret keyed hash), so asking twice
         * does not give away that the name is unknown. */
        static unsigned char secret[32];
        static bool have_secret;
        if (!have_secret && RAND_bytes(secret, sizeof secret) == 1)
            have_secret = true;
        unsigned char mac[32];
        unsigned ml = 0;
        if (!have_secret || !HMAC(EVP_sha256(), secret, sizeof secret,
                                  (const unsigned char *)ss->user, strlen(ss->user), mac, &ml))
            return errorf(err, errlen, "no random numbers"), NULL;
        memcpy(salt, mac, salt_len);
    }
    unsigned char sn[18];
    char snonce[25], salt64[4 * ((USERS_SCRAM_SALT_MAX + 2) / 3) + 1];
    if (RAND_bytes(sn, sizeof sn) != 1)
        return errorf(err, errlen, "no random numbers"), NULL;
    smtp_b64_encode(sn, sizeof sn, snonce);
    smtp_b64_encode(salt, salt_len, salt64);
    ss->gs2_header = xstrndup(msg, (size_t)(bare - msg));
    ss->client_first_bare = xstrndup(bare, blen);
    size_t nn = nlen + strlen(snonce) + 1;
    ss->nonce = xmalloc(nn);
    snprintf(ss->nonce, nn, "%.*s%s", (int)nlen, r + 2, snonce);
    size_t fl = strlen(ss->nonce) + strlen(salt64) + 32;
    ss->server_first = xmalloc(fl);
    snprintf(ss->server_first, fl, "r=%s,s=%s,i=%u", ss->nonce, salt64, iter);
    return xstrdup(ss->server_first);
}

int scram_server_final(struct scram_server *ss, const char *msg, size_t len, char **server_final,
                       char *err, size_t errlen)
{
    *server_final = NULL;
    if (!ss->server_first || memchr(msg, '\0', len))
        return errorf(err, errlen, "unexpected message"), -1;
    /* "c=" base64(gs2-header) ",r=" nonce [extensions] ",p=" proof; p is last */
    const char *p = NULL;
    for (size_t i = len; i >= 3; i--) {
        if (strncmp(msg + i - 3, ",p=", 3) == 0) {
            p = msg + i - 3;
            break;
        }
    }
    if (!p)
        return errorf(err, errlen, "no proof"), -1;
    size_t wlen = (size_t)(p - msg); /* client-final-without-proof */
    char cb[4 * ((USERS_NAME_MAX + 8 + 2) / 3) + 8];
    size_t gl = strlen(ss->gs2_header);
    if (gl > USERS_NAME_MAX + 8)
        return errorf(err, errlen, "GS2 header too long"), -1;
    smtp_b64_encode((const unsigned char *)ss->gs2_header, gl, cb);
    size_t cbl = strlen(cb);
    if (wlen < 2 + cbl + 3 || strncmp(msg, "c=", 2) != 0 || strncmp(msg + 2, cb, cbl) != 0 ||
        msg[2 + cbl] != ',')
        return errorf(err, errlen, "channel binding data does not match the GS2 header"), -1;
    const char *r = msg + 2 + cbl + 1;
    size_t nl = strlen(ss->nonce);
    if ((size_t)(p - r) < 2 + nl || strncmp(r, "r=", 2) != 0 || strncmp(r + 2, ss->nonce, nl) != 0 ||
        (r + 2 + nl != p && r[2 + nl] != ','))
        return errorf(err, errlen, "nonce does not match"), -1;
    unsigned char proof[64];
    size_t plen = len - wlen - 3;
    if (plen > 48 || smtp_b64_decode(p + 3, plen, proof, sizeof proof) != 32)
        return errorf(err, errlen, "malformed proof"), -1;

    size_t al = strlen(ss->client_first_bare) + strlen(ss->server_first) + wlen + 3;
    char *auth = xmalloc(al);
    snprintf(auth, al, "%s,%s,%.*s", ss->client_first_bare, ss->server_first, (int)wlen, msg);
    unsigned char sig[32], client_key[32], h[32], server_sig[32];
    unsigned ml = 0;
    bool ok = HMAC(EVP_sha256(), ss->stored_key, 32, (const unsigned char *)auth, strlen(auth), sig,
                   &ml) != NULL;
    for (int i = 0; i < 32; i++)
        client_key[i] = proof[i] ^ sig[i];
    SHA256(client_key, 32, h);
    ok = ok && ss->known && CRYPTO_memcmp(h, ss->stored_key, 32) == 0;
    if (ok && HMAC(EVP_sha256(), ss->server_key, 32, (const unsigned char *)auth, strlen(auth),
                   server_sig, &ml)) {
        char v[48] = "v=";
        smtp_b64_encode(server_sig, 32, v + 2);
        *server_final = xstrdup(v);
    } else {
        ok = false;
    }
    OPENSSL_cleanse(client_key, sizeof client_key);
    free(auth);
    return ok ? 1 : 0;
}

void scram_server_free(struct scram_server *ss)
{
    free(ss->gs2_header);
    free(ss->client_first_bare);
    free(ss->server_first);
    free(ss->nonce);
    OPENSSL_cleanse(ss, sizeof *ss);
}
