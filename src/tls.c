/* tls.c - OpenSSL server contexts (see tls.h). One SSL_CTX per certificate; the first is the
 * default and its servername callback switches to the certificate whose names match the SNI
 * host (X509_check_host handles SANs and wildcards). RFC 3207, RFC 8314, RFC 8996 (no TLS
 * below 1.2), RFC 6066 3 (SNI); each context may staple its own OCSP response (ocsp.c). */
#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "ocsp.h"
#include "util.h"

/* Mozilla "intermediate" TLS 1.2 suites: forward secrecy and AEAD only. TLS 1.3 suites are
 * OpenSSL's defaults, which are all strong. */
#define DEFAULT_CIPHERS                                                                         \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"   \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"

struct tls_server {
    SSL_CTX **ctx;
    struct ocsp_staple **staple; /* per context; NULL: nothing stapled */
    size_t nctx;
};

void tls_error_string(char *buf, size_t cap)
{
    unsigned long e = ERR_get_error();
    if (e == 0)
        str_copy(buf, cap, "unknown TLS error");
    else
        ERR_error_string_n(e, buf, cap);
    ERR_clear_error();
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    struct tls_server *t = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name)
        return SSL_TLSEXT_ERR_NOACK;
    for (size_t i = 0; i < t->nctx; i++) {
        X509 *cert = SSL_CTX_get0_certificate(t->ctx[i]);
        if (cert && X509_check_host(cert, name, 0, 0, NULL) == 1) {
            if (i > 0)
                SSL_set_SSL_CTX(ssl, t->ctx[i]);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_OK; /* unknown name: keep the default certificate */
}

static SSL_CTX *make_ctx(const struct config *cfg, const struct tls_cert_cfg *c, char *err,
                         size_t errlen)
{
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        tls_error_string(why, sizeof why);
        snprintf(err, errlen, "cannot create TLS context: %s", why);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_dh_auto(ctx, 1);
    static const unsigned char sid[] = "tern";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
    const char *ciphers = cfg->tls_ciphers ? cfg->tls_ciphers : DEFAULT_CIPHERS;
    if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        snprintf(err, errlen, "tls_ciphers: no usable cipher in \"%s\"", ciphers);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1) {
        tls_error_string(why, sizeof why);
        snprintf(err, errlen, "cannot load certificate %s: %s", c->cert, why);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1) {
        tls_error_string(why, sizeof why);
        snprintf(err, errlen, "cannot load private key %s: %s", c->key, why);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "private key %s does not match certificate %s", c->key, c->cert);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

struct tls_server *tls_server_new(const struct config *cfg, char *err, size_t errlen)
{
    err[0] = '\0';
    if (cfg->ntls_certs == 0)
        return NULL;
    struct tls_server *t = xcalloc(1, sizeof *t);
    t->ctx = xcalloc(cfg->ntls_certs, sizeof *t->ctx);
    t->staple = xcalloc(cfg->ntls_certs, sizeof *t->staple);
    for (size_t i = 0; i < cfg->ntls_certs; i++) {
        t->ctx[i] = make_ctx(cfg, &cfg->tls_certs[i], err, errlen);
        if (!t->ctx[i]) {
            tls_server_free(t);
            return NULL;
        }
        t->nctx++;
        /* Never fatal: without a usable response the handshake simply has no staple. */
        if (cfg->tls_certs[i].ocsp)
            t->staple[i] = ocsp_staple_load(t->ctx[i], cfg->tls_certs[i].ocsp);
    }
    SSL_CTX_set_tlsext_servername_callback(t->ctx[0], on_servername);
    SSL_CTX_set_tlsext_servername_arg(t->ctx[0], t);
    return t;
}

void tls_server_free(struct tls_server *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nctx; i++)
        SSL_CTX_free(t->ctx[i]);
    /* After the contexts: their status callbacks point at these. */
    for (size_t i = 0; i < t->nctx; i++)
        ocsp_staple_free(t->staple[i]);
    free(t->staple);
    free(t->ctx);
    free(t);
}

SSL *tls_server_ssl(struct tls_server *t)
{
    return SSL_new(t->ctx[0]);
}

void tls_describe(const SSL *ssl, char *buf, size_t cap)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    int alg = 0;
    int bits = c ? SSL_CIPHER_get_bits(c, &alg) : 0;
    snprintf(buf, cap, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
             c ? SSL_CIPHER_get_name(c) : "none", bits, alg);
}
