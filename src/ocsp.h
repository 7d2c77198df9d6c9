/* ocsp.h - OCSP stapling (RFC 6066 8, "status_request"; RFC 6960 responses): a DER OCSP
 * response fetched by an external job (docs/tls.md has a cron recipe) is read by the
 * supervisor with its certificate, checked, and handed to clients that ask for it.
 *
 * A response that cannot be used (unreadable, not for this certificate, badly signed, not
 * "good", expired) is logged and not stapled; it never stops tern: stapling is an
 * optimisation for the client, which can still ask the CA itself. */
#ifndef TERN_OCSP_H
#define TERN_OCSP_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/ssl.h>

struct ocsp_staple;

/* Check a DER OCSP response for leaf, whose issuer is one of chain: responder status
 * "successful", signed by the issuer or by a responder the issuer delegated to (RFC 6960
 * 4.2.2.2), the leaf's status "good", thisUpdate/nextUpdate around now (5 minutes' skew).
 * Pure: no I/O. true with *next_update (0 when the response gives none), or false with the
 * reason in why. */
bool ocsp_check(const unsigned char *der, size_t len, X509 *leaf, STACK_OF(X509) *chain,
                time_t *next_update, char *why, size_t whylen);

/* Read path and check it against ctx's certificate and chain (ocsp_check); on success
 * install the status callback on ctx and return the staple (free it after ctx). Logs the
 * outcome either way; NULL when there is nothing to staple. */
struct ocsp_staple *ocsp_staple_load(SSL_CTX *ctx, const char *path);
void ocsp_staple_free(struct ocsp_staple *s);

#endif
