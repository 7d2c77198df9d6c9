/* tls.h - server-side TLS for STARTTLS (RFC 3207) and implicit TLS (RFC 8314): OpenSSL 3
 * contexts with TLS 1.2 and 1.3 only, a modern cipher list, and certificate choice by SNI.
 *
 * Contexts are built by the supervisor (which may read root-only keys) before the workers are
 * forked; the workers inherit them in memory and never open the key files. */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "config.h"

struct tls_server;

/* Build contexts for every configured certificate. Returns NULL with err set on failure, and
 * NULL with err "" when no certificate is configured (TLS is then simply not offered). */
struct tls_server *tls_server_new(const struct config *cfg, char *err, size_t errlen);
void tls_server_free(struct tls_server *t);

/* A new SSL object for one connection (server side), or NULL. */
SSL *tls_server_ssl(struct tls_server *t);

/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)", for Received: and the log. */
void tls_describe(const SSL *ssl, char *buf, size_t cap);

/* The oldest queued OpenSSL error as text (clears the queue), for the log. */
void tls_error_string(char *buf, size_t cap);

#endif
