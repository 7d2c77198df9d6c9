/* netclient.h - a blocking TCP client connection with timeouts and an optional TLS layer
 * (OpenSSL 3), for the one-shot command-line tools (`tern send`, `tern check`): connect,
 * write, read lines and whole SMTP replies, start TLS (STARTTLS, RFC 3207, or implicit TLS,
 * RFC 8314) with SNI, verify the server certificate against a host name, and describe the
 * session and certificate for a person. Not for the server: it blocks. */
#ifndef TERN_NETCLIENT_H
#define TERN_NETCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "smtp_reply.h"

struct ssl_st;
struct ssl_ctx_st;

struct netclient {
    int fd;
    struct ssl_ctx_st *ctx;
    struct ssl_st *ssl;
    int timeout_ms;  /* for each connect, read and write */
    bool eof;        /* the peer closed the connection */
    bool timed_out;
    char buf[16384]; /* bytes read but not yet consumed */
    size_t len, pos;
    char err[256];   /* why the last call failed */
    const char *cert_file, *key_file; /* client certificate for nc_start_tls, or NULL */
};

struct nc_tls_info {
    char version[32];    /* "TLSv1.3" */
    char cipher[80];     /* "TLS_AES_256_GCM_SHA384" */
    int bits;
    char subject[256];   /* RFC 2253 form: "CN=mx.example.test" */
    char issuer[256];
    char names[512];     /* subjectAltName DNS names and IPs, comma-separated */
    char not_after[64];  /* "Nov 23 07:56:00 2027 GMT" */
    long days_left;      /* until not_after (negative: expired) */
    bool have_cert;
    bool verified;       /* chain and name verified */
    long verify_code;    /* X509_V_OK or the X509_V_ERR_* code */
    char verify_error[160]; /* OpenSSL's text for verify_code */
    char explain[512];   /* plain-language reason and what to do, when not verified */
    bool client_cert_requested; /* the server sent a CertificateRequest */
    char client_subject[256];   /* our certificate's subject, when one was configured */
};

void nc_init(struct netclient *c, int timeout_ms);
/* Connect (blocking, bounded by the timeout). 0 on success, -1 with c->err. */
int nc_connect(struct netclient *c, const struct sockaddr *sa, socklen_t salen);
/* Write everything (through TLS when started). 0 or -1 with c->err. */
int nc_write(struct netclient *c, const void *buf, size_t len);
/* Read one line ending in LF; the CRLF (or LF) is removed. Returns the line's length,
 * -1 on error, timeout or end of stream (c->err, c->eof, c->timed_out), -2 if the line
 * did not fit in cap (the rest of the line is discarded). */
long nc_read_line(struct netclient *c, char *line, size_t cap);
/* Read a complete reply (all its lines). 0, or -1 with c->err (malformed reply included). */
int nc_read_reply(struct netclient *c, struct smtp_reply *r);
/* Bytes already received and not consumed (after a STARTTLS 220 there must be none: a
 * server or a man in the middle that sends more is attempting command injection). */
size_t nc_buffered(const struct netclient *c);
void nc_discard_buffered(struct netclient *c);

/* TLS handshake as a client. host: the name the certificate must match, also sent as SNI
 * unless it is an IP address (RFC 6066 3). cafile: trust anchors in a PEM file, or NULL for
 * the system store. The certificate is always checked and the result put in info; whether
 * to go on when info->verified is false is the caller's decision. 0 if the handshake
 * completed, -1 with c->err if it failed. */
int nc_start_tls(struct netclient *c, const char *host, const char *cafile,
                 struct nc_tls_info *info);
bool nc_is_tls(const struct netclient *c);
/* Offer a client certificate in the next nc_start_tls (RFC 8446 4.4.2, RFC 5246 7.4.6):
 * cert is a PEM file with the certificate and any intermediates, key its private key (PEM;
 * NULL: the key is in cert too). The strings must outlive the connection. */
void nc_set_client_cert(struct netclient *c, const char *cert, const char *key);
/* Load cert and key as nc_start_tls would, to report a bad file before connecting. 0, or -1
 * with the reason in err. */
int nc_check_client_cert(const char *cert, const char *key, char *err, size_t errcap);
void nc_close(struct netclient *c);

/* "127.0.0.1:25" or "[::1]:25" for a socket address. */
void nc_addr_text(const struct sockaddr *sa, char *buf, size_t cap);
/* The local end's address as an SMTP address literal: "[127.0.0.1]", "[IPv6:::1]". */
void nc_local_literal(const struct netclient *c, char *buf, size_t cap);

#endif
