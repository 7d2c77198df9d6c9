/* test_ocsp.c - ocsp_check (src/ocsp.c): which OCSP responses (RFC 6960) tern agrees to
 * staple. Each test builds a real PKI in memory with OpenSSL (a CA, leaves, responder
 * certificates) and signs real responses, so every check runs OpenSSL's own verification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include "ocsp.h"

#define DAY (24L * 3600L)

struct pki {
    EVP_PKEY *ca_key, *leaf_key, *other_key;
    X509 *ca, *leaf, *other; /* other: a second leaf of the same CA */
    STACK_OF(X509) *chain;   /* what the chain file holds after the leaf: the CA */
};

static EVP_PKEY *new_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    return k;
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* A certificate for cn with key, signed by issuer/ikey (NULL: self-signed). eku: NULL or an
 * extendedKeyUsage value. */
static X509 *new_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey, long serial,
                      bool ca, const char *eku)
{
    X509 *c = X509_new();
    assert_non_null(c);
    assert_int_equal(X509_set_version(c, 2), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(c), serial), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(c), -DAY));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(c), 30 * DAY));
    X509_NAME *name = X509_get_subject_name(c);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                (const unsigned char *)cn, -1, -1, 0),
                     1);
    assert_int_equal(X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name), 1);
    assert_int_equal(X509_set_pubkey(c, key), 1);
    add_ext(c, issuer ? issuer : c, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    add_ext(c, issuer ? issuer : c, NID_key_usage,
            ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    if (eku)
        add_ext(c, issuer ? issuer : c, NID_ext_key_usage, eku);
    assert_true(X509_sign(c, ikey ? ikey : key, EVP_sha256()) > 0);
    return c;
}

static int setup(void **state)
{
    struct pki *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->ca_key = new_key();
    p->leaf_key = new_key();
    p->other_key = new_key();
    p->ca = new_cert("Test CA", p->ca_key, NULL, NULL, 1, true, NULL);
    p->leaf = new_cert("mx.tern.test", p->leaf_key, p->ca, p->ca_key, 2, false, "serverAuth");
    p->other = new_cert("other.tern.test", p->other_key, p->ca, p->ca_key, 3, false,
                        "serverAuth");
    p->chain = sk_X509_new_null();
    assert_non_null(p->chain);
    assert_true(sk_X509_push(p->chain, p->ca) > 0);
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    struct pki *p = *state;
    sk_X509_free(p->chain);
    X509_free(p->ca);
    X509_free(p->leaf);
    X509_free(p->other);
    EVP_PKEY_free(p->ca_key);
    EVP_PKEY_free(p->leaf_key);
    EVP_PKEY_free(p->other_key);
    free(p);
    return 0;
}

struct resp_spec {
    X509 *subject;              /* the certificate the response is about */
    X509 *signer;               /* NULL: the CA */
    EVP_PKEY *signer_key;
    int status;                 /* V_OCSP_CERTSTATUS_* */
    long this_off, next_off;    /* seconds from now */
    const EVP_MD *id_md;        /* CertID hash; NULL: SHA-1 */
};

/* A signed, successful OCSP response per spec, DER in a malloc'd buffer. */
static unsigned char *make_resp(struct pki *p, const struct resp_spec *s, size_t *len)
{
    OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
    assert_non_null(bs);
    OCSP_CERTID *id = OCSP_cert_to_id(s->id_md, s->subject, p->ca);
    assert_non_null(id);
    ASN1_TIME *thisupd = X509_gmtime_adj(NULL, s->this_off);
    ASN1_TIME *nextupd = X509_gmtime_adj(NULL, s->next_off);
    ASN1_TIME *revtime = X509_gmtime_adj(NULL, -DAY);
    bool revoked = s->status == V_OCSP_CERTSTATUS_REVOKED;
    assert_non_null(OCSP_basic_add1_status(bs, id, s->status,
                                           revoked ? OCSP_REVOKED_STATUS_KEYCOMPROMISE : -1,
                                           revoked ? revtime : NULL, thisupd, nextupd));
    X509 *signer = s->signer ? s->signer : p->ca;
    EVP_PKEY *key = s->signer ? s->signer_key : p->ca_key;
    /* OCSP_basic_sign includes the signer's certificate in the response */
    assert_int_equal(OCSP_basic_sign(bs, signer, key, EVP_sha256(), NULL, 0), 1);
    OCSP_RESPONSE *resp = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs);
    assert_non_null(resp);
    unsigned char *der = NULL;
    int n = i2d_OCSP_RESPONSE(resp, &der);
    assert_true(n > 0);
    unsigned char *copy = malloc((size_t)n);
    assert_non_null(copy);
    memcpy(copy, der, (size_t)n);
    *len = (size_t)n;
    OPENSSL_free(der);
    OCSP_RESPONSE_free(resp);
    OCSP_BASICRESP_free(bs);
    OCSP_CERTID_free(id);
    ASN1_TIME_free(thisupd);
    ASN1_TIME_free(nextupd);
    ASN1_TIME_free(revtime);
    return copy;
}

/* ocsp_check on spec's response for p->leaf: true, or false with a reason containing want. */
static void expect(struct pki *p, const struct resp_spec *s, const char *want)
{
    size_t len = 0;
    unsigned char *der = make_resp(p, s, &len);
    char why[512] = "";
    time_t next = 0;
    bool ok = ocsp_check(der, len, p->leaf, p->chain, &next, why, sizeof why);
    if (!want) {
        if (!ok)
            fail_msg("refused a usable response: %s", why);
        time_t expect_next = time(NULL) + s->next_off;
        assert_true(next >= expect_next - 5 && next <= expect_next + 5);
    } else {
        assert_false(ok);
        if (!strstr(why, want))
            fail_msg("reason \"%s\" lacks \"%s\"", why, want);
    }
    free(der);
}

static void test_good(void **state)
{
    struct pki *p = *state;
    struct resp_spec s = {p->leaf, NULL, NULL, V_OCSP_CERTSTATUS_GOOD, -3600, 6 * DAY, NULL};
    expect(p, &s, NULL);
    s.id_md = EVP_sha256(); /* a responder hashing the CertID with SHA-256 */
    expect(p, &s, NULL);
}

static void test_status_not_good(void **state)
{
    struct pki *p = *state;
    struct resp_spec s = {p->leaf, NULL, NULL, V_OCSP_CERTSTATUS_REVOKED, -3600, 6 * DAY, NULL};
    expect(p, &s, "certificate status revoked, reason keyCompromise");
    s.status = V_OCSP_CERTSTATUS_UNKNOWN;
    expect(p, &s, "certificate status unknown");
}

static void test_times(void **state)
{
    struct pki *p = *state;
    struct resp_spec s = {p->leaf, NULL, NULL, V_OCSP_CERTSTATUS_GOOD, -7 * DAY, -DAY, NULL};
    expect(p, &s, "expired or not yet valid");
    s.this_off = DAY; /* thisUpdate tomorrow */
    s.next_off = 7 * DAY;
    expect(p, &s, "expired or not yet valid");
    s.this_off = -DAY; /* past nextUpdate by a minute: OpenSSL's skew allows it, tern not */
    s.next_off = -60;
    expect(p, &s, "expired (next update");
}

static void test_wrong_certificate(void **state)
{
    struct pki *p = *state;
    struct resp_spec s = {p->other, NULL, NULL, V_OCSP_CERTSTATUS_GOOD, -3600, DAY, NULL};
    expect(p, &s, "not about this certificate");
}

static void test_signers(void **state)
{
    struct pki *p = *state;
    EVP_PKEY *rk = new_key();
    /* a delegated responder (RFC 6960 4.2.2.2): issued by the CA for OCSPSigning */
    X509 *responder = new_cert("OCSP responder", rk, p->ca, p->ca_key, 10, false, "OCSPSigning");
    struct resp_spec s = {p->leaf, responder, rk, V_OCSP_CERTSTATUS_GOOD, -3600, DAY, NULL};
    expect(p, &s, NULL);
    /* a certificate of the same CA without that usage may not sign for it */
    X509 *web = new_cert("web", rk, p->ca, p->ca_key, 11, false, "serverAuth");
    s.signer = web;
    expect(p, &s, "signature does not verify");
    /* the leaf's own key, and another CA with the same name */
    s.signer = p->leaf;
    s.signer_key = p->leaf_key;
    expect(p, &s, "signature does not verify");
    X509 *rogue = new_cert("Test CA", rk, NULL, NULL, 1, true, NULL);
    s.signer = rogue;
    s.signer_key = rk;
    expect(p, &s, "signature does not verify");
    X509_free(rogue);
    X509_free(web);
    X509_free(responder);
    EVP_PKEY_free(rk);
}

static void test_no_issuer_in_chain(void **state)
{
    struct pki *p = *state;
    struct resp_spec s = {p->leaf, NULL, NULL, V_OCSP_CERTSTATUS_GOOD, -3600, DAY, NULL};
    size_t len = 0;
    unsigned char *der = make_resp(p, &s, &len);
    STACK_OF(X509) *empty = sk_X509_new_null();
    assert_non_null(empty);
    char why[512];
    time_t next;
    assert_false(ocsp_check(der, len, p->leaf, empty, &next, why, sizeof why));
    assert_non_null(strstr(why, "issuer of the certificate is not in its chain file"));
    sk_X509_free(empty);
    free(der);
}

static void test_malformed(void **state)
{
    struct pki *p = *state;
    char why[512];
    time_t next;
    static const unsigned char junk[] = "this is not DER";
    assert_false(ocsp_check(junk, sizeof junk, p->leaf, p->chain, &next, why, sizeof why));
    assert_string_equal(why, "not a DER OCSP response");
    assert_false(ocsp_check(junk, 0, p->leaf, p->chain, &next, why, sizeof why));
    assert_string_equal(why, "empty or oversized file");
    /* OCSPResponse { responseStatus tryLater(3) }: well-formed, but no answer */
    static const unsigned char try_later[] = {0x30, 0x03, 0x0a, 0x01, 0x03};
    assert_false(ocsp_check(try_later, sizeof try_later, p->leaf, p->chain, &next, why,
                            sizeof why));
    assert_string_equal(why, "the responder answered \"trylater\"");
    /* a good response with a byte after it, and one cut short */
    struct resp_spec s = {p->leaf, NULL, NULL, V_OCSP_CERTSTATUS_GOOD, -3600, DAY, NULL};
    size_t len = 0;
    unsigned char *der = make_resp(p, &s, &len);
    unsigned char *longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, der, len);
    longer[len] = 0;
    assert_false(ocsp_check(longer, len + 1, p->leaf, p->chain, &next, why, sizeof why));
    assert_string_equal(why, "not a DER OCSP response");
    assert_false(ocsp_check(der, len - 1, p->leaf, p->chain, &next, why, sizeof why));
    assert_string_equal(why, "not a DER OCSP response");
    assert_true(ocsp_check(der, len, p->leaf, p->chain, &next, why, sizeof why));
    free(longer);
    free(der);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_not_good, setup, teardown),
        cmocka_unit_test_setup_teardown(test_times, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_issuer_in_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
