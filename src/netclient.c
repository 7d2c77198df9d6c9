/* netclient.c - blocking TCP/TLS client connection with timeouts for the CLI tools: poll()
 * bounds every connect, read and write; TLS through OpenSSL 3 with SNI (RFC 6066 3), host
 * name verification (RFC 6125 through X509_VERIFY_PARAM) and plain-language explanations of
 * certificate verification failures. STARTTLS itself (RFC 3207) is the caller's exchange;
 * this file only does the handshake once the server said 220. */
#include "netclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "util.h"

void nc_init(struct netclient *c, int timeout_ms)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for events or the deadline passes. 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        return 1;
    }
}

void nc_addr_text(const struct sockaddr *sa, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        port = ntohs(s4->sin_port);
        snprintf(buf, cap, "%s:%u", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        port = ntohs(s6->sin6_port);
        snprintf(buf, cap, "[%s]:%u", ip, port);
    } else {
        snprintf(buf, cap, "(unknown address family)");
    }
}

void nc_local_literal(const struct netclient *c, char *buf, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN];
    if (c->fd < 0 || getsockname(c->fd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(buf, cap, "[127.0.0.1]");
        return;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        snprintf(buf, cap, "[IPv6:%s]", ip);
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        snprintf(buf, cap, "[%s]", ip);
    }
}

int nc_connect(struct netclient *c, const struct sockaddr *sa, socklen_t salen)
{
    c->eof = c->timed_out = false;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(c->err, sizeof c->err, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, sa, salen) != 0) {
        if (errno != EINPROGRESS) {
            snprintf(c->err, sizeof c->err, "connect: %s", strerror(errno));
            close(fd);
            return -1;
        }
        int r = wait_fd(fd, POLLOUT, now_ms() + c->timeout_ms);
        if (r <= 0) {
            c->timed_out = r == 0;
            snprintf(c->err, sizeof c->err, "connect: %s",
                     r == 0 ? "timed out (a firewall dropping packets, or the host is down)"
                            : strerror(errno));
            close(fd);
            return -1;
        }
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
            soerr = errno;
        if (soerr != 0) {
            snprintf(c->err, sizeof c->err, "connect: %s%s", strerror(soerr),
                     soerr == ECONNREFUSED ? " (nothing listens on that port)" : "");
            close(fd);
            return -1;
        }
    }
    c->fd = fd;
    c->len = c->pos = 0;
    return 0;
}

static void ssl_error_text(char *buf, size_t cap, const char *what)
{
    unsigned long e = ERR_get_error();
    char tmp[200];
    if (e)
        ERR_error_string_n(e, tmp, sizeof tmp);
    else
        str_copy(tmp, sizeof tmp, "connection closed or protocol error");
    snprintf(buf, cap, "%s: %s", what, tmp);
    ERR_clear_error();
}

/* Drive one SSL call until it completes, waiting on the socket as OpenSSL asks. Returns the
 * call's result (> 0), 0 at a clean close, -1 on error/timeout with c->err set. */
enum ssl_op { OP_READ, OP_WRITE, OP_HANDSHAKE };

static int ssl_drive(struct netclient *c, enum ssl_op op, void *buf, size_t len)
{
    long long deadline = now_ms() + c->timeout_ms;
    for (;;) {
        ERR_clear_error();
        int n;
        if (op == OP_READ)
            n = SSL_read(c->ssl, buf, len > 1 << 30 ? 1 << 30 : (int)len);
        else if (op == OP_WRITE)
            n = SSL_write(c->ssl, buf, len > 1 << 30 ? 1 << 30 : (int)len);
        else
            n = SSL_connect(c->ssl);
        if (n > 0)
            return n;
        int e = SSL_get_error(c->ssl, n);
        short ev;
        if (e == SSL_ERROR_WANT_READ)
            ev = POLLIN;
        else if (e == SSL_ERROR_WANT_WRITE)
            ev = POLLOUT;
        else if (e == SSL_ERROR_ZERO_RETURN) {
            c->eof = true;
            snprintf(c->err, sizeof c->err, "the server closed the TLS session");
            return 0;
        } else {
            if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
                c->eof = true;
                snprintf(c->err, sizeof c->err, "%s: the connection was closed",
                         op == OP_HANDSHAKE ? "TLS handshake" : "TLS");
                ERR_clear_error();
                return -1;
            }
            ssl_error_text(c->err, sizeof c->err, op == OP_HANDSHAKE ? "TLS handshake" : "TLS");
            return -1;
        }
        int w = wait_fd(c->fd, ev, deadline);
        if (w <= 0) {
            c->timed_out = w == 0;
            snprintf(c->err, sizeof c->err, "%s", w == 0 ? "timed out" : strerror(errno));
            return -1;
        }
    }
}

int nc_write(struct netclient *c, const void *buf, size_t len)
{
    const char *p = buf;
    long long deadline = now_ms() + c->timeout_ms;
    while (len > 0) {
        ssize_t n;
        if (c->ssl) {
            int r = ssl_drive(c, OP_WRITE, (void *)(uintptr_t)p, len);
            if (r <= 0)
                return -1;
            n = r;
        } else {
            n = send(c->fd, p, len, MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                int w = wait_fd(c->fd, POLLOUT, deadline);
                if (w <= 0) {
                    c->timed_out = w == 0;
                    snprintf(c->err, sizeof c->err, "write: %s",
                             w == 0 ? "timed out" : strerror(errno));
                    return -1;
                }
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                snprintf(c->err, sizeof c->err, "write: %s", strerror(errno));
                return -1;
            }
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read more bytes into the buffer. 1 got some, -1 error/eof/timeout. */
static int fill(struct netclient *c)
{
    if (c->pos > 0) {
        memmove(c->buf, c->buf + c->pos, c->len - c->pos);
        c->len -= c->pos;
        c->pos = 0;
    }
    if (c->len == sizeof c->buf)
        return 1;
    if (c->ssl) {
        int r = ssl_drive(c, OP_READ, c->buf + c->len, sizeof c->buf - c->len);
        if (r <= 0)
            return -1;
        c->len += (size_t)r;
        return 1;
    }
    long long deadline = now_ms() + c->timeout_ms;
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            return 1;
        }
        if (n == 0) {
            c->eof = true;
            snprintf(c->err, sizeof c->err, "the server closed the connection");
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            snprintf(c->err, sizeof c->err, "read: %s", strerror(errno));
            return -1;
        }
        int w = wait_fd(c->fd, POLLIN, deadline);
        if (w <= 0) {
            c->timed_out = w == 0;
            snprintf(c->err, sizeof c->err, "read: %s",
                     w == 0 ? "timed out waiting for the server" : strerror(errno));
            return -1;
        }
    }
}

long nc_read_line(struct netclient *c, char *line, size_t cap)
{
    bool overflow = false;
    size_t out = 0;
    for (;;) {
        char *nl = memchr(c->buf + c->pos, '\n', c->len - c->pos);
        size_t avail = nl ? (size_t)(nl - (c->buf + c->pos)) : c->len - c->pos;
        size_t take = avail;
        if (out + take >= cap) {
            take = out < cap - 1 ? cap - 1 - out : 0;
            overflow = true;
        }
        memcpy(line + out, c->buf + c->pos, take);
        out += take;
        c->pos += avail;
        if (nl) {
            c->pos++; /* the LF */
            if (!overflow && out > 0 && line[out - 1] == '\r')
                out--;
            line[out] = '\0';
            return overflow ? -2 : (long)out;
        }
        if (fill(c) < 0)
            return -1;
    }
}

int nc_read_reply(struct netclient *c, struct smtp_reply *r)
{
    char line[SMTP_REPLY_LINE_MAX + 1];
    smtp_reply_init(r);
    for (;;) {
        long n = nc_read_line(c, line, sizeof line);
        if (n == -2) {
            snprintf(c->err, sizeof c->err, "a reply line longer than %d octets",
                     SMTP_REPLY_LINE_MAX);
            return -1;
        }
        if (n < 0)
            return -1;
        const char *why = NULL;
        enum smtp_feed f = smtp_reply_feed(r, line, (size_t)n, &why);
        if (f == SMTP_FEED_DONE)
            return 0;
        if (f == SMTP_FEED_BAD) {
            snprintf(c->err, sizeof c->err, "malformed reply \"%.60s\": %s", line,
                     why ? why : "?");
            return -1;
        }
    }
}

size_t nc_buffered(const struct netclient *c)
{
    return c->len - c->pos;
}

void nc_discard_buffered(struct netclient *c)
{
    c->len = c->pos = 0;
}

bool nc_is_tls(const struct netclient *c)
{
    return c->ssl != NULL;
}

static bool is_ip_literal(const char *host)
{
    unsigned char b[16];
    return inet_pton(AF_INET, host, b) == 1 || inet_pton(AF_INET6, host, b) == 1;
}

static void name_text(X509_NAME *n, char *buf, size_t cap)
{
    buf[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return;
    if (X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) >= 0) {
        int l = BIO_read(b, buf, (int)cap - 1);
        buf[l > 0 ? l : 0] = '\0';
    }
    BIO_free(b);
}

static void cert_info(X509 *cert, struct nc_tls_info *info)
{
    info->have_cert = true;
    name_text(X509_get_subject_name(cert), info->subject, sizeof info->subject);
    name_text(X509_get_issuer_name(cert), info->issuer, sizeof info->issuer);
    const ASN1_TIME *na = X509_get0_notAfter(cert);
    BIO *b = BIO_new(BIO_s_mem());
    if (b) {
        if (ASN1_TIME_print(b, na)) {
            int l = BIO_read(b, info->not_after, (int)sizeof info->not_after - 1);
            info->not_after[l > 0 ? l : 0] = '\0';
        }
        BIO_free(b);
    }
    int days = 0, secs = 0;
    if (ASN1_TIME_diff(&days, &secs, NULL, na))
        info->days_left = days;
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    size_t used = 0;
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        char one[INET6_ADDRSTRLEN + 8] = "";
        if (g->type == GEN_DNS) {
            const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
            int l = ASN1_STRING_length(g->d.dNSName);
            snprintf(one, sizeof one, "%.*s", l > 64 ? 64 : l, (const char *)d);
        } else if (g->type == GEN_IPADD) {
            int l = ASN1_STRING_length(g->d.iPAddress);
            const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
            if (l == 4 || l == 16)
                inet_ntop(l == 4 ? AF_INET : AF_INET6, d, one, sizeof one);
        }
        if (one[0] && used + strlen(one) + 3 < sizeof info->names) {
            used += (size_t)snprintf(info->names + used, sizeof info->names - used, "%s%s",
                                     used ? ", " : "", one);
        }
    }
    GENERAL_NAMES_free(gens);
}

/* Plain-language reason for a verification failure, and what to do about it. */
static void explain_verify(long code, const char *host, const char *cafile,
                           struct nc_tls_info *info)
{
    const char *e;
    char tmp[512];
    switch (code) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        snprintf(tmp, sizeof tmp, "the certificate is for %.160s, not for %.100s: the server needs a "
                 "certificate that names it (or connect using a name it lists)",
                 info->names[0] ? info->names : info->subject, host);
        e = tmp;
        break;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        e = "the certificate is self-signed: no certificate authority vouches for it "
            "(--cafile FILE trusts it explicitly, --insecure goes on anyway)";
        break;
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        e = cafile ? "the certificate's issuer is not in the --cafile trust anchors"
                   : "the certificate was issued by a CA that is not in the system trust "
                     "store (a private CA? give its certificate with --cafile)";
        break;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        e = "the chain is incomplete: the server must send its intermediate certificate(s) "
            "along with its own";
        break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        snprintf(tmp, sizeof tmp, "the certificate expired on %s: the server's "
                 "administrator must renew it", info->not_after);
        e = tmp;
        break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        e = "the certificate is not valid yet: a wrong clock on the server or here";
        break;
    case X509_V_ERR_CERT_REVOKED:
        e = "the certificate was revoked";
        break;
    case X509_V_ERR_INVALID_PURPOSE:
        e = "the certificate may not be used for a TLS server (extended key usage)";
        break;
    case X509_V_ERR_CA_KEY_TOO_SMALL:
    case X509_V_ERR_EE_KEY_TOO_SMALL:
    case X509_V_ERR_CA_MD_TOO_WEAK:
        e = "the certificate uses a key or signature that is too weak today";
        break;
    default:
        e = "the certificate could not be verified";
        break;
    }
    str_copy(info->explain, sizeof info->explain, e);
}

void nc_set_client_cert(struct netclient *c, const char *cert, const char *key)
{
    c->cert_file = cert;
    c->key_file = key ? key : cert;
}

/* Called by OpenSSL only when the server asks for a client certificate: record that, so a
 * refusal after the handshake (TLS 1.3 sends it then) can be explained. */
static int cert_requested_cb(SSL *ssl, void *arg)
{
    (void)ssl;
    ((struct nc_tls_info *)arg)->client_cert_requested = true;
    return 1;
}

/* Load a client certificate and its key into ctx; the certificate's subject into subject.
 * -1 with err. */
static int load_client_cert(SSL_CTX *ctx, const char *cert, const char *key, char *subject,
                            size_t subjcap, char *err, size_t errcap)
{
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ssl_error_text(err, errcap, "cannot load the client certificate (--tls-cert)");
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ssl_error_text(err, errcap, "cannot load the client key (--tls-key)");
        return -1;
    }
    X509 *mine = SSL_CTX_get0_certificate(ctx);
    if (mine)
        name_text(X509_get_subject_name(mine), subject, subjcap);
    return 0;
}

int nc_check_client_cert(const char *cert, const char *key, char *err, size_t errcap)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ssl_error_text(err, errcap, "SSL_CTX_new");
        return -1;
    }
    char subject[256];
    int rc = load_client_cert(ctx, cert, key ? key : cert, subject, sizeof subject, err, errcap);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

int nc_start_tls(struct netclient *c, const char *host, const char *cafile,
                 struct nc_tls_info *info)
{
    memset(info, 0, sizeof *info);
    info->verify_code = -1;
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx) {
        ssl_error_text(c->err, sizeof c->err, "SSL_CTX_new");
        return -1;
    }
    /* Verification result is read after the handshake (SSL_VERIFY_NONE still verifies and
     * records the result), so a failure can be explained rather than just aborting. */
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    if (cafile) {
        if (SSL_CTX_load_verify_locations(c->ctx, cafile, NULL) != 1) {
            ssl_error_text(c->err, sizeof c->err, "cannot load --cafile");
            return -1;
        }
    } else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
        ERR_clear_error(); /* no system store: every chain will fail to verify, explained */
    }
    if (c->cert_file && load_client_cert(c->ctx, c->cert_file, c->key_file, info->client_subject,
                                         sizeof info->client_subject, c->err,
                                         sizeof c->err) < 0)
        return -1;
    SSL_CTX_set_cert_cb(c->ctx, cert_requested_cb, info);
    c->ssl = SSL_new(c->ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
        ssl_error_text(c->err, sizeof c->err, "SSL_new");
        return -1;
    }
    if (host && host[0]) {
        if (is_ip_literal(host)) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host);
        } else {
            SSL_set_tlsext_host_name(c->ssl, host);
            SSL_set1_host(c->ssl, host);
            /* RFC 6125 6.4.3: a wildcard matches one whole leftmost label only */
            SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        }
    }
    if (ssl_drive(c, OP_HANDSHAKE, NULL, 0) <= 0)
        return -1;
    str_copy(info->version, sizeof info->version, SSL_get_version(c->ssl));
    const SSL_CIPHER *ciph = SSL_get_current_cipher(c->ssl);
    if (ciph) {
        str_copy(info->cipher, sizeof info->cipher, SSL_CIPHER_get_name(ciph));
        info->bits = SSL_CIPHER_get_bits(ciph, NULL);
    }
    X509 *cert = SSL_get1_peer_certificate(c->ssl);
    if (cert) {
        cert_info(cert, info);
        X509_free(cert);
    }
    info->verify_code = SSL_get_verify_result(c->ssl);
    if (!cert) {
        info->verify_code = X509_V_ERR_UNSPECIFIED;
        str_copy(info->verify_error, sizeof info->verify_error, "no certificate");
        str_copy(info->explain, sizeof info->explain, "the server sent no certificate");
    } else if (info->verify_code == X509_V_OK) {
        info->verified = true;
    } else {
        str_copy(info->verify_error, sizeof info->verify_error,
                 X509_verify_cert_error_string(info->verify_code));
        explain_verify(info->verify_code, host ? host : "", cafile, info);
    }
    return 0;
}

void nc_close(struct netclient *c)
{
    if (c->ssl) {
        /* a quick close_notify; do not wait for the peer's */
        if (c->fd >= 0)
            SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->ctx) {
        SSL_CTX_free(c->ctx);
        c->ctx = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    ERR_clear_error();
}
