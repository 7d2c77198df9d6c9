/* ocsp.c - OCSP stapling (see ocsp.h): checking a stored DER OCSP response against its
 * certificate (RFC 6960 3.2, 4.2.2.2), and the TLS status callback that staples it
 * (RFC 6066 8 "certificate status request"; in TLS 1.3 the response rides in the
 * Certificate message, RFC 8446 4.4.2.1 - OpenSSL places it). */
#include "ocsp.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tls.h"
#include "util.h"

/* A response is a few KB; anything much larger is not one. */
#define OCSP_FILE_MAX (256 * 1024)
/* Clock difference tolerated between the responder and us (as `openssl ocsp` does). */
#define OCSP_SKEW_SECONDS 300

struct ocsp_staple {
    unsigned char *der;
    size_t len;
    time_t next_update; /* 0: the response gives none */
    char *path;
    bool expiry_logged; /* per process: say once that it ran out */
};

static bool asn1_to_time(const ASN1_GENERALIZEDTIME *t, time_t *out)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return false;
    *out = timegm(&tm);
    return *out != (time_t)-1;
}

static void format_time(time_t t, char *buf, size_t cap)
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        str_copy(buf, cap, "?");
}

static void describe_asn1_time(const ASN1_GENERALIZEDTIME *t, char *buf, size_t cap)
{
    time_t v;
    if (asn1_to_time(t, &v))
        format_time(v, buf, cap);
    else
        str_copy(buf, cap, t ? "?" : "none");
}

static X509 *find_issuer(X509 *leaf, STACK_OF(X509) *chain)
{
    for (int i = 0; i < sk_X509_num(chain); i++) {
        X509 *c = sk_X509_value(chain, i);
        if (X509_check_issued(c, leaf) == X509_V_OK)
            return c;
    }
    return NULL;
}

/* The signature: by the issuer itself, or by a responder certificate (carried in the
 * response) that the issuer signed for OCSP signing. The issuer is the only trust anchor
 * (partial chain: it may be an intermediate); the rest of the chain file helps build paths. */
static bool verify_signature(OCSP_BASICRESP *bs, X509 *issuer, STACK_OF(X509) *chain,
                             char *why, size_t whylen)
{
    X509_STORE *store = X509_STORE_new();
    if (!store)
        return errorf(why, whylen, "out of memory");
    bool ok = X509_STORE_add_cert(store, issuer) == 1 &&
              X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN) == 1 &&
              OCSP_basic_verify(bs, chain, store, 0) == 1;
    if (!ok) {
        char e[256];
        tls_error_string(e, sizeof e);
        errorf(why, whylen, "signature does not verify against the certificate's issuer: %s", e);
    }
    X509_STORE_free(store);
    return ok;
}

/* The leaf's single response; responders hash the CertID with SHA-1 mostly, some with SHA-2. */
static bool find_status(OCSP_BASICRESP *bs, X509 *leaf, X509 *issuer, int *status, int *reason,
                        ASN1_GENERALIZEDTIME **thisupd, ASN1_GENERALIZEDTIME **nextupd)
{
    const EVP_MD *mds[] = {EVP_sha1(), EVP_sha256(), EVP_sha384(), EVP_sha512()};
    for (size_t i = 0; i < ARRAY_LEN(mds); i++) {
        OCSP_CERTID *id = OCSP_cert_to_id(mds[i], leaf, issuer);
        if (!id)
            continue;
        ASN1_GENERALIZEDTIME *rev = NULL;
        int found = OCSP_resp_find_status(bs, id, status, reason, &rev, thisupd, nextupd);
        OCSP_CERTID_free(id);
        if (found == 1)
            return true;
    }
    ERR_clear_error();
    return false;
}

static bool check_basic(OCSP_BASICRESP *bs, X509 *leaf, STACK_OF(X509) *chain,
                        time_t *next_update, char *why, size_t whylen)
{
    X509 *issuer = find_issuer(leaf, chain);
    if (!issuer)
        return errorf(why, whylen, "the issuer of the certificate is not in its chain file, "
                                   "so the response cannot be checked");
    if (!verify_signature(bs, issuer, chain, why, whylen))
        return false;
    int status = -1, reason = -1;
    ASN1_GENERALIZEDTIME *thisupd = NULL, *nextupd = NULL;
    if (!find_status(bs, leaf, issuer, &status, &reason, &thisupd, &nextupd))
        return errorf(why, whylen, "it is not about this certificate (no matching CertID)");
    if (status != V_OCSP_CERTSTATUS_GOOD)
        return errorf(why, whylen, "certificate status %s%s%s", OCSP_cert_status_str(status),
                      status == V_OCSP_CERTSTATUS_REVOKED && reason >= 0 ? ", reason " : "",
                      status == V_OCSP_CERTSTATUS_REVOKED && reason >= 0
                          ? OCSP_crl_reason_str(reason)
                          : "");
    if (OCSP_check_validity(thisupd, nextupd, OCSP_SKEW_SECONDS, -1) != 1) {
        ERR_clear_error();
        char a[40], b[40];
        describe_asn1_time(thisupd, a, sizeof a);
        describe_asn1_time(nextupd, b, sizeof b);
        return errorf(why, whylen, "expired or not yet valid (this update %s, next update %s)",
                      a, b);
    }
    *next_update = 0;
    if (nextupd && !asn1_to_time(nextupd, next_update))
        return errorf(why, whylen, "unreadable next update time");
    /* The skew above is for the responder's clock; past nextUpdate by ours, clients refuse it,
     * and the workers would not staple it either (on_status_request). */
    if (*next_update && time(NULL) >= *next_update) {
        char b[40];
        format_time(*next_update, b, sizeof b);
        return errorf(why, whylen, "expired (next update %s)", b);
    }
    return true;
}

bool ocsp_check(const unsigned char *der, size_t len, X509 *leaf, STACK_OF(X509) *chain,
                time_t *next_update, char *why, size_t whylen)
{
    if (len == 0 || len > LONG_MAX)
        return errorf(why, whylen, "empty or oversized file");
    const unsigned char *p = der;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    if (!resp || p != der + len) {
        OCSP_RESPONSE_free(resp);
        ERR_clear_error();
        return errorf(why, whylen, "not a DER OCSP response");
    }
    bool ok = false;
    OCSP_BASICRESP *bs = NULL;
    int rs = OCSP_response_status(resp);
    if (rs != OCSP_RESPONSE_STATUS_SUCCESSFUL)
        errorf(why, whylen, "the responder answered \"%s\"", OCSP_response_status_str(rs));
    else if (!(bs = OCSP_response_get1_basic(resp)))
        errorf(why, whylen, "not a basic OCSP response");
    else
        ok = check_basic(bs, leaf, chain, next_update, why, whylen);
    ERR_clear_error();
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
    return ok;
}

/* Called (in a worker, during a handshake) only when the client sent status_request. */
static int on_status_request(SSL *ssl, void *arg)
{
    struct ocsp_staple *s = arg;
    if (s->next_update && time(NULL) >= s->next_update) {
        /* The file was not renewed in time: a stale answer would be refused by the client. */
        if (!s->expiry_logged) {
            char t[40];
            format_time(s->next_update, t, sizeof t);
            log_warn("OCSP response %s expired at %s, no longer stapled (renew it and reload)",
                     s->path, t);
            s->expiry_logged = true;
        }
        return SSL_TLSEXT_ERR_NOACK;
    }
    unsigned char *copy = OPENSSL_malloc(s->len); /* OpenSSL frees it with the connection */
    if (!copy)
        return SSL_TLSEXT_ERR_NOACK;
    memcpy(copy, s->der, s->len);
    if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)s->len) != 1) {
        OPENSSL_free(copy);
        return SSL_TLSEXT_ERR_NOACK;
    }
    return SSL_TLSEXT_ERR_OK;
}

struct ocsp_staple *ocsp_staple_load(SSL_CTX *ctx, const char *path)
{
    char why[512];
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    STACK_OF(X509) *chain = NULL;
    if (!leaf || SSL_CTX_get0_chain_certs(ctx, &chain) != 1) {
        log_warn("OCSP response %s not stapled: no certificate loaded", path);
        return NULL;
    }
    size_t len = 0;
    char *buf = read_text_file(path, OCSP_FILE_MAX, &len, why, sizeof why);
    if (!buf) {
        log_warn("OCSP response not stapled: %s", why);
        return NULL;
    }
    time_t next_update = 0;
    if (!ocsp_check((const unsigned char *)buf, len, leaf, chain, &next_update, why,
                    sizeof why)) {
        log_warn("OCSP response %s not stapled: %s", path, why);
        free(buf);
        return NULL;
    }
    struct ocsp_staple *s = xcalloc(1, sizeof *s);
    s->der = (unsigned char *)buf;
    s->len = len;
    s->next_update = next_update;
    s->path = xstrdup(path);
    char t[40];
    if (next_update)
        format_time(next_update, t, sizeof t);
    else
        str_copy(t, sizeof t, "none given");
    log_info("OCSP response %s: certificate status good, next update %s; stapled", path, t);
    SSL_CTX_set_tlsext_status_cb(ctx, on_status_request);
    SSL_CTX_set_tlsext_status_arg(ctx, s);
    return s;
}

void ocsp_staple_free(struct ocsp_staple *s)
{
    if (!s)
        return;
    free(s->der);
    free(s->path);
    free(s);
}
