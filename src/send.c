/* send.c - `tern send`: one SMTP session, typed for you and explained.
 *
 * Walks the session RFC 5321 describes (greeting, EHLO with HELO fallback 3.2, MAIL, RCPT,
 * DATA with dot-stuffing 4.5.2), with the extensions a person debugging mail needs: STARTTLS
 * (RFC 3207) and implicit TLS (RFC 8314), AUTH PLAIN/LOGIN/CRAM-MD5 (RFC 4954, 4616, 2195),
 * PIPELINING (RFC 2920), CHUNKING/BDAT (RFC 3030), 8BITMIME (RFC 6152), SIZE (RFC 1870).
 * Without --server the recipient domain's MX records are looked up (RFC 5321 5.1, implicit
 * MX, null MX RFC 7505) and the first host that answers is used.
 *
 * Every reply is printed with one line under it from smtp_reply_explain(). The connection is
 * a blocking socket with timeouts (netclient.c): this is a one-shot tool; the MX lookups go
 * through the asynchronous resolver run to completion (dns_wait.c). */
#include "send.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "dns.h"
#include "dns_wait.h"
#include "mime_build.h"
#include "netclient.h"
#include "received.h"
#include "scram.h"
#include "smtp_reply.h"
#include "util.h"

#define EXIT_OK 0
#define EXIT_REFUSED 1
#define EXIT_TEMP 2
#define EXIT_USAGE 64

enum quit_step { Q_NONE, Q_CONNECT, Q_EHLO, Q_TLS, Q_AUTH, Q_MAIL, Q_RCPT, Q_DATA };
static const char *const quit_names[] = {"", "connect", "ehlo", "tls", "auth", "mail", "rcpt",
                                         "data"};

struct send_opts {
    const char *server;
    unsigned port;
    const char *from;
    char **to;
    size_t nto;
    const char *ehlo;
    bool force_helo;
    bool starttls, tls, insecure;
    bool tls_optional; /* STARTTLS when offered, else go on in clear */
    const char *cafile;
    const char *auth, *user, *password;
    const char *data_file;
    char **headers;
    size_t nheaders;
    const char *body;
    bool bdat, pipelining, eightbit;
    size_t chunk_size;
    enum quit_step quit_after;
    bool json, color;
    const char *nameserver;
    int timeout_s;
    struct attach_opt *attach; /* --attach FILE, each with the --attach-type before it */
    size_t nattach;
    const char *tls_cert, *tls_key; /* client certificate */
    bool lmtp;                      /* --protocol lmtp (RFC 2033) */
    bool proxy;                     /* send a PROXY protocol v1 header first */
    const char *proxy_src, *proxy_dst; /* "IP:PORT" overrides for it */
    char **xclient;                 /* --xclient NAME=VALUE (Postfix XCLIENT) */
    size_t nxclient;
};

struct attach_opt {
    const char *path, *type; /* type: --attach-type, or NULL for the table's guess */
    const char *sent_type;   /* the type it went with */
    size_t size;
};

/* ---- the transcript: printed as it happens, or collected for --json ---- */

enum sdir { SD_INFO, SD_CLIENT, SD_SERVER, SD_ERROR, SD_DATA };
static const char *const sdir_names[] = {"info", "client", "server", "error", "data"};

struct step {
    enum sdir dir;
    char *text;      /* server: lines joined with "\n" */
    int code;
    char esc[16];
    char *explain;
    const char *stage;
    bool tls;
    long long ms;
    const char *rcpt; /* LMTP: the recipient a reply after the data is for */
};

struct out {
    bool json, color;
    struct step *v;
    size_t n;
    long long t0;
    /* the outcome of the last session, for the result line and the JSON summary */
    int rcpt_ok, rcpt_temp, rcpt_perm;
    bool delivered; /* the message was accepted (250 after the data) */
    bool lmtp;      /* LHLO instead of EHLO in the stage names */
};

static const char *const stage_names[] = {"greeting", "ehlo", "helo", "starttls", "auth",
                                          "mail", "rcpt", "data", "data-end", "bdat", "rset",
                                          "quit", "other"};

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define C_RESET "\033[0m"
#define C_DIM "\033[2m"
#define C_RED "\033[1;31m"
#define C_GREEN "\033[32m"
#define C_YELLOW "\033[33m"
#define C_BLUE "\033[34m"
#define C_CYAN "\033[36m"
#define C_MAGENTA "\033[35m"

static struct step *add_step(struct out *o, enum sdir dir, const char *text)
{
    o->v = xrealloc(o->v, (o->n + 1) * sizeof *o->v);
    struct step *s = &o->v[o->n++];
    memset(s, 0, sizeof *s);
    s->dir = dir;
    s->text = xstrdup(text);
    s->ms = mono_ms() - o->t0;
    return s;
}

static void print_line(const struct out *o, const char *color, const char *prefix,
                       const char *text)
{
    if (o->color)
        printf("%s%s%s%s\n", color, prefix, text, C_RESET);
    else
        printf("%s%s\n", prefix, text);
}

/* A line of tern's own (not the protocol's): "===" information or "***" trouble. */
__attribute__((format(printf, 3, 0)))
static void out_note(struct out *o, bool error, const char *fmt, va_list ap)
{
    char buf[2048];
    vsnprintf(buf, sizeof buf, fmt, ap);
    if (o->json)
        add_step(o, error ? SD_ERROR : SD_INFO, buf);
    else
        print_line(o, error ? C_RED : C_MAGENTA, error ? "*** " : "=== ", buf);
}

__attribute__((format(printf, 2, 3)))
static void out_info(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    out_note(o, false, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 2, 3)))
static void out_error(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    out_note(o, true, fmt, ap);
    va_end(ap);
}

/* An explanation that belongs to the previous step (JSON) or prints under it. */
static void out_explain(struct out *o, const char *text)
{
    if (o->json) {
        if (o->n > 0) {
            struct step *s = &o->v[o->n - 1];
            if (s->explain) {
                size_t l = strlen(s->explain) + strlen(text) + 2;
                char *n = xmalloc(l);
                snprintf(n, l, "%s %s", s->explain, text);
                free(s->explain);
                s->explain = n;
            } else {
                s->explain = xstrdup(text);
            }
        }
    } else {
        print_line(o, C_DIM, "    ## ", text);
    }
}

static const char *stage_name(const struct out *o, enum smtp_stage st)
{
    return o->lmtp && st == SMTP_STAGE_EHLO ? "lhlo" : stage_names[st];
}

static void out_client(struct out *o, bool tls, enum smtp_stage st, const char *shown)
{
    if (o->json) {
        struct step *s = add_step(o, SD_CLIENT, shown);
        s->tls = tls;
        s->stage = stage_name(o, st);
    } else {
        print_line(o, C_CYAN, tls ? " ~> " : " -> ", shown);
    }
}

static void out_data_line(struct out *o, bool tls, const char *line)
{
    if (!o->json)
        print_line(o, C_CYAN, tls ? " ~> " : " -> ", line);
}

static void out_reply(struct out *o, bool tls, enum smtp_stage st, const struct smtp_reply *r,
                      const char *extra)
{
    char expl[2048];
    smtp_reply_explain(r, st, expl, sizeof expl);
    if (extra && extra[0]) {
        size_t l = strlen(expl);
        snprintf(expl + l, sizeof expl - l, " %s", extra);
    }
    if (o->json) {
        size_t total = 1;
        for (size_t i = 0; i < r->nlines; i++)
            total += strlen(r->lines[i]) + 1;
        char *joined = xmalloc(total);
        size_t p = 0;
        for (size_t i = 0; i < r->nlines; i++) {
            size_t l = strlen(r->lines[i]);
            if (i)
                joined[p++] = '\n';
            memcpy(joined + p, r->lines[i], l);
            p += l;
        }
        joined[p] = '\0';
        struct step *s = add_step(o, SD_SERVER, joined);
        free(joined);
        s->code = r->code;
        str_copy(s->esc, sizeof s->esc, r->esc);
        s->explain = xstrdup(expl);
        s->stage = stage_name(o, st);
        s->tls = tls;
        return;
    }
    const char *color = r->code / 100 == 2 ? C_GREEN : r->code / 100 == 3 ? C_BLUE
                        : r->code / 100 == 4 ? C_YELLOW : C_RED;
    bool bad = r->code >= 400;
    const char *prefix = tls ? (bad ? "<~* " : "<~  ") : (bad ? "<** " : "<-  ");
    for (size_t i = 0; i < r->nlines; i++)
        print_line(o, color, prefix, r->lines[i]);
    print_line(o, C_DIM, "    ## ", expl);
}

/* JSON string with escapes; invalid UTF-8 becomes U+FFFD so the document always parses. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            fprintf(f, "\\%c", c);
            p++;
        } else if (c == '\n') {
            fputs("\\n", f);
            p++;
        } else if (c == '\r') {
            fputs("\\r", f);
            p++;
        } else if (c == '\t') {
            fputs("\\t", f);
            p++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
            p++;
        } else if (c < 0x80) {
            fputc(c, f);
            p++;
        } else {
            /* validate one UTF-8 sequence (RFC 3629 4) */
            size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
            bool ok = n > 0 && c < 0xf5;
            for (size_t i = 1; ok && i < n; i++)
                ok = (p[i] & 0xc0) == 0x80;
            if (ok && n == 3 && ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f)))
                ok = false;
            if (ok && n == 4 && ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f)))
                ok = false;
            if (ok) {
                fwrite(p, 1, n, f);
                p += n;
            } else {
                fputs("\\ufffd", f);
                p++;
            }
        }
    }
    fputc('"', f);
}

/* ---- the session ---- */

struct sess {
    struct send_opts *opt;
    struct out *o;
    struct netclient nc;
    char host[DNS_NAME_MAX + 1]; /* the name we connect to: SNI and certificate check */
    char addrtext[64];
    struct smtp_caps caps;
    bool have_caps;
    bool esmtp;
    struct nc_tls_info tls;
    bool tls_on;
    bool try_next; /* no session worth keeping: the caller may try another address/MX */
    const char *msg; /* the message, CRLF line ends */
    size_t msglen;
    char ehlo_name[300];
    int accepted_rcpts;
    size_t *accepted; /* indexes into opt->to of the accepted recipients (LMTP replies) */
    bool quit_sent;
    bool closed; /* the server said 421 or hung up: no QUIT */
};

static int classify(int code)
{
    if (code >= 500)
        return EXIT_REFUSED;
    if (code >= 400 || code < 200)
        return EXIT_TEMP;
    return EXIT_OK;
}

static int worse(int a, int b)
{
    /* a permanent refusal outweighs a temporary one: someone gets a bounce */
    if (a == EXIT_REFUSED || b == EXIT_REFUSED)
        return EXIT_REFUSED;
    return a > b ? a : b;
}

/* Send one command line; shown is what the transcript shows (credentials masked). */
static int send_cmd(struct sess *s, enum smtp_stage st, const char *line, const char *shown)
{
    size_t l = strlen(line);
    char *buf = xmalloc(l + 3);
    memcpy(buf, line, l);
    memcpy(buf + l, "\r\n", 3);
    out_client(s->o, s->tls_on, st, shown ? shown : line);
    int rc = nc_write(&s->nc, buf, l + 2);
    free(buf);
    if (rc < 0)
        out_error(s->o, "sending failed: %s", s->nc.err);
    return rc;
}

/* A reply could not be read: say so, and why it probably happened. */
static void read_failed(struct sess *s, const char *what)
{
    out_error(s->o, "no reply %s: %s", what, s->nc.err);
    if (s->nc.timed_out)
        out_explain(s->o, "the server took longer than --timeout to answer: it may be "
                    "overloaded, tarpitting, or waiting for something we did not send");
    else if (s->tls_on && s->tls.client_cert_requested)
        out_explain(s->o, "the server asked for a client certificate and then ended TLS: with "
                    "TLS 1.3 the server checks the client certificate after the handshake, so "
                    "this is how it refuses one (none sent, not signed by a CA it trusts, or "
                    "expired)");
    else if (s->nc.eof)
        out_explain(s->o, "the server hung up without a reply: often a policy drop "
                    "(block list, rate limit) or a crash on its side");
}

/* Read and print one reply. extra: more explanation appended. -1 if none could be read. */
static int get_reply(struct sess *s, enum smtp_stage st, struct smtp_reply *r, const char *extra)
{
    if (nc_read_reply(&s->nc, r) < 0) {
        read_failed(s, "from the server");
        smtp_reply_free(r);
        s->closed = true;
        return -1;
    }
    out_reply(s->o, s->tls_on, st, r, extra);
    if (r->code == 421)
        s->closed = true; /* RFC 5321 3.8: the server closes after 421 */
    return 0;
}

static void count_rcpt(struct sess *s, size_t idx, int code)
{
    if (code / 100 == 2) {
        s->accepted = xrealloc(s->accepted, ((size_t)s->accepted_rcpts + 1) * sizeof *s->accepted);
        s->accepted[s->accepted_rcpts] = idx;
        s->accepted_rcpts++;
        s->o->rcpt_ok++;
    } else if (code / 100 == 5) {
        s->o->rcpt_perm++;
    } else {
        s->o->rcpt_temp++;
    }
}

static int cmd_reply(struct sess *s, enum smtp_stage st, const char *line, const char *shown,
                     struct smtp_reply *r)
{
    smtp_reply_init(r);
    if (send_cmd(s, st, line, shown) < 0)
        return -1;
    return get_reply(s, st, r, NULL);
}

static void do_quit(struct sess *s)
{
    if (s->quit_sent || s->closed || s->nc.eof)
        return;
    s->quit_sent = true;
    struct smtp_reply r;
    smtp_reply_init(&r);
    out_client(s->o, s->tls_on, SMTP_STAGE_QUIT, "QUIT");
    if (nc_write(&s->nc, "QUIT\r\n", 6) < 0 || nc_read_reply(&s->nc, &r) < 0) {
        out_info(s->o, "(no reply to QUIT: %s)", s->nc.err);
        smtp_reply_free(&r);
        return;
    }
    out_reply(s->o, s->tls_on, SMTP_STAGE_QUIT, &r, NULL);
    smtp_reply_free(&r);
}

/* A summary of the EHLO capabilities for the explanation line. */
static void caps_summary(const struct smtp_caps *c, char *buf, size_t cap)
{
    size_t l = (size_t)snprintf(buf, cap, "Extensions:");
    if (c->n == 0)
        snprintf(buf + l, cap - l, " none.");
    for (size_t i = 0; i < c->n && l < cap; i++) {
        const struct smtp_cap *e = &c->v[i];
        const char *sep = i ? "," : "";
        if (str_ieq(e->keyword, "SIZE") && e->params[0]) {
            unsigned long long v = strtoull(e->params, NULL, 10);
            l += (size_t)snprintf(buf + l, cap - l, "%s SIZE (max %llu bytes%s)", sep, v,
                                  v == 0 ? ": no limit" : "");
        } else if (e->params[0]) {
            l += (size_t)snprintf(buf + l, cap - l, "%s %s %s", sep, e->keyword, e->params);
        } else {
            l += (size_t)snprintf(buf + l, cap - l, "%s %s", sep, e->keyword);
        }
    }
    if (l < cap)
        snprintf(buf + l, cap - l, ".");
}

static bool has_cap(const struct sess *s, const char *kw)
{
    return s->have_caps && smtp_caps_find(&s->caps, kw) != NULL;
}

/* EHLO, falling back to HELO when the server does not know EHLO (RFC 5321 3.2). Returns an
 * exit code, -1 to go on. */
static int do_ehlo(struct sess *s)
{
    char line[400];
    struct smtp_reply r;
    if (s->have_caps) {
        smtp_caps_free(&s->caps);
        s->have_caps = false;
    }
    if (!s->opt->force_helo) {
        snprintf(line, sizeof line, "%s %s", s->opt->lmtp ? "LHLO" : "EHLO", s->ehlo_name);
        smtp_reply_init(&r);
        if (send_cmd(s, SMTP_STAGE_EHLO, line, NULL) < 0)
            return EXIT_TEMP;
        if (nc_read_reply(&s->nc, &r) < 0) {
            read_failed(s, s->opt->lmtp ? "to LHLO" : "to EHLO");
            return EXIT_TEMP;
        }
        char summary[1200] = "";
        struct smtp_caps caps;
        if (smtp_caps_parse(&r, &caps)) {
            caps_summary(&caps, summary, sizeof summary);
            s->caps = caps;
            s->have_caps = true;
            s->esmtp = true;
        }
        out_reply(s->o, s->tls_on, SMTP_STAGE_EHLO, &r, summary);
        int code = r.code;
        smtp_reply_free(&r);
        if (code / 100 == 2)
            return -1;
        if (code == 421) {
            s->try_next = true;
            return EXIT_TEMP;
        }
        if (code / 100 == 4)
            return EXIT_TEMP;
        if (s->opt->lmtp) {
            out_error(s->o, "LHLO refused: is this an LMTP server? (an SMTP server answers "
                      "EHLO, not LHLO; leave out --protocol lmtp)");
            return classify(code);
        }
        out_info(s->o, "EHLO refused: falling back to HELO (RFC 5321 3.2); no extensions");
    }
    snprintf(line, sizeof line, "HELO %s", s->ehlo_name);
    if (cmd_reply(s, SMTP_STAGE_HELO, line, NULL, &r) < 0)
        return EXIT_TEMP;
    int code = r.code;
    smtp_reply_free(&r);
    s->esmtp = false;
    return code / 100 == 2 ? -1 : classify(code);
}

static void show_tls(struct sess *s)
{
    struct nc_tls_info *t = &s->tls;
    out_info(s->o, "TLS started: %s, cipher %s (%d bits)", t->version, t->cipher, t->bits);
    if (t->have_cert) {
        out_info(s->o, "Certificate: subject %s; issuer %s", t->subject, t->issuer);
        out_info(s->o, "Certificate names: %s; valid until %s (%ld days left)",
                 t->names[0] ? t->names : "(no subjectAltName)", t->not_after, t->days_left);
    }
    if (s->opt->tls_cert && t->client_cert_requested)
        out_info(s->o, "The server asked for a client certificate: sent %s (--tls-cert)",
                 t->client_subject);
    else if (s->opt->tls_cert)
        out_info(s->o, "The server did not ask for a client certificate: %s was not sent",
                 t->client_subject);
    else if (t->client_cert_requested)
        out_info(s->o, "The server asked for a client certificate; none was sent (--tls-cert "
                 "FILE --tls-key FILE to send one)");
    if (t->verified) {
        out_info(s->o, "Certificate verified: trusted chain%s, and it names %s",
                 s->opt->cafile ? " (--cafile)" : "", s->host);
        if (t->days_left < 14)
            out_info(s->o, "Warning: the certificate expires in %ld days", t->days_left);
    } else {
        out_error(s->o, "Certificate NOT verified for %s: %s", s->host, t->verify_error);
        out_explain(s->o, t->explain);
    }
}

/* TLS handshake on the open connection, with the certificate report. Exit code or -1. */
static int tls_handshake(struct sess *s)
{
    if (nc_buffered(&s->nc) > 0) {
        /* RFC 3207 5 / CVE-2011-0411 class: bytes before the handshake must be ignored */
        out_error(s->o, "the server sent %zu bytes after its 220 and before TLS; discarded "
                  "(a broken server, or someone injecting commands)", nc_buffered(&s->nc));
        nc_discard_buffered(&s->nc);
    }
    if (nc_start_tls(&s->nc, s->host, s->opt->cafile, &s->tls) < 0) {
        out_error(s->o, "%s", s->nc.err);
        out_explain(s->o, "the TLS handshake failed: no common protocol version or cipher, a "
                    "broken certificate setup on the server, or not TLS at all on this port");
        return EXIT_TEMP;
    }
    s->tls_on = true;
    show_tls(s);
    if (!s->tls.verified && !s->opt->insecure) {
        out_error(s->o, "stopping: the server's identity is not proven (--insecure to go on "
                  "anyway, --cafile FILE to trust a private CA)");
        do_quit(s);
        return EXIT_TEMP;
    }
    if (!s->tls.verified)
        out_info(s->o, "going on without a verified certificate (--insecure)");
    return -1;
}

static int do_starttls(struct sess *s)
{
    if (!has_cap(s, "STARTTLS") && s->opt->tls_optional) {
        out_info(s->o, "the server does not offer STARTTLS: going on without TLS "
                 "(--tls-optional)");
        return -1;
    }
    if (!has_cap(s, "STARTTLS")) {
        out_error(s->o, "the server does not offer STARTTLS (it is not in the EHLO reply)");
        out_explain(s->o, "this server or port has no TLS configured; try port 587 or 465 "
                    "(--tls), or leave out --starttls");
        do_quit(s);
        return EXIT_TEMP;
    }
    struct smtp_reply r;
    if (cmd_reply(s, SMTP_STAGE_STARTTLS, "STARTTLS", NULL, &r) < 0)
        return EXIT_TEMP;
    int code = r.code;
    smtp_reply_free(&r);
    if (code != 220) {
        do_quit(s);
        return classify(code) == EXIT_OK ? EXIT_TEMP : classify(code);
    }
    int rc = tls_handshake(s);
    if (rc >= 0)
        return rc;
    /* RFC 3207 4.2: forget what was learned before TLS and ask again */
    out_info(s->o, "TLS is up: sending EHLO again, as RFC 3207 4.2 requires");
    return do_ehlo(s);
}

/* ---- AUTH (RFC 4954) ---- */

static char *b64(const void *data, size_t len)
{
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);
    smtp_b64_encode(data, len, out);
    return out;
}

/* The decoded text of a 334 challenge, for the explanation ("Username:"). */
static void challenge_text(const struct smtp_reply *r, char *buf, size_t cap)
{
    const char *t = smtp_reply_line_text(r, 0);
    unsigned char dec[512];
    long n = smtp_b64_decode(t, strlen(t), dec, sizeof dec);
    buf[0] = '\0';
    if (n < 0)
        return;
    size_t o = 0;
    for (long i = 0; i < n && o + 5 < cap; i++) {
        unsigned char c = dec[i];
        o += (size_t)snprintf(buf + o, cap - o, (c >= 0x20 && c < 0x7f) ? "%c" : "\\x%02x", c);
    }
}

static int auth_step(struct sess *s, const char *line, const char *shown, struct smtp_reply *r)
{
    smtp_reply_init(r);
    if (send_cmd(s, SMTP_STAGE_AUTH, line, shown) < 0)
        return -1;
    if (nc_read_reply(&s->nc, r) < 0) {
        out_error(s->o, "no reply during AUTH: %s", s->nc.err);
        return -1;
    }
    char extra[600] = "";
    if (r->code == 334) {
        char ch[500];
        challenge_text(r, ch, sizeof ch);
        if (ch[0])
            snprintf(extra, sizeof extra, "The challenge decodes to \"%s\".", ch);
    }
    out_reply(s->o, s->tls_on, SMTP_STAGE_AUTH, r, extra);
    return 0;
}

/* Cancel an exchange in progress (RFC 4954 4: "*") and read the server's answer. */
static void auth_cancel(struct sess *s)
{
    struct smtp_reply r;
    if (auth_step(s, "*", NULL, &r) == 0)
        smtp_reply_free(&r);
}

/* Decode a 334 challenge into buf (NUL-terminated). False if it is not base64. */
static bool challenge_decode(const struct smtp_reply *r, char *buf, size_t cap)
{
    const char *t = smtp_reply_line_text(r, 0);
    long n = smtp_b64_decode(t, strlen(t), (unsigned char *)buf, cap);
    return n >= 0 && memchr(buf, '\0', (size_t)n) == NULL;
}

/* SCRAM-SHA-256 (RFC 7677): the password never crosses the wire, and the server proves it
 * knows it too. Returns the final reply in r (235 on success) or -1 after an error. */
static int auth_scram(struct sess *s, const char *user, const char *pass, struct smtp_reply *r)
{
    struct scram sc;
    char *first = scram_client_first(&sc, user, NULL);
    if (!first) {
        out_error(s->o, "no random numbers for the SCRAM nonce");
        scram_free(&sc);
        return -1;
    }
    char *enc = b64(first, strlen(first));
    free(first);
    size_t ll = strlen(enc) + 32;
    char *line = xmalloc(ll);
    snprintf(line, ll, "AUTH SCRAM-SHA-256 %s", enc);
    free(enc);
    int rc = auth_step(s, line, "AUTH SCRAM-SHA-256 ***", r);
    free(line);
    char buf[1024], err[300];
    if (rc == 0 && r->code == 334) {
        if (!challenge_decode(r, buf, sizeof buf)) {
            out_error(s->o, "SCRAM: the server's challenge is not base64 text");
            smtp_reply_free(r);
            auth_cancel(s);
            scram_free(&sc);
            return -1;
        }
        smtp_reply_free(r);
        char *final = scram_client_final(&sc, pass, buf, err, sizeof err);
        if (!final) {
            out_error(s->o, "SCRAM: %s", err);
            auth_cancel(s);
            scram_free(&sc);
            return -1;
        }
        enc = b64(final, strlen(final));
        free(final);
        rc = auth_step(s, enc, "***", r);
        free(enc);
        if (rc == 0 && r->code == 334) {
            /* server-final: "v=ServerSignature" */
            bool ok = challenge_decode(r, buf, sizeof buf) &&
                      scram_verify_server(&sc, buf, err, sizeof err);
            smtp_reply_free(r);
            if (!ok) {
                out_error(s->o, "SCRAM: %s", err);
                auth_cancel(s);
                scram_free(&sc);
                return -1;
            }
            out_info(s->o, "SCRAM: the server's signature is right: it knows the password "
                     "too (mutual authentication)");
            rc = auth_step(s, "", "(empty response)", r);
        } else if (rc == 0 && r->code == 235) {
            out_info(s->o, "SCRAM: the server sent no signature, so it could not be checked");
        }
    }
    scram_free(&sc);
    return rc;
}

static const char *choose_mech(struct sess *s)
{
    static const char *const with_tls[] = {"SCRAM-SHA-256", "PLAIN", "LOGIN", "CRAM-MD5"};
    static const char *const without[] = {"SCRAM-SHA-256", "CRAM-MD5", "PLAIN", "LOGIN"};
    const char *const *pref = s->tls_on ? with_tls : without;
    for (size_t i = 0; i < 4; i++)
        if (smtp_caps_has_auth(&s->caps, pref[i]))
            return pref[i];
    return NULL;
}

static int do_auth(struct sess *s)
{
    const struct send_opts *o = s->opt;
    if (!s->have_caps || !smtp_caps_find(&s->caps, "AUTH")) {
        out_error(s->o, "the server does not offer AUTH%s", s->tls_on ? "" :
                  " (many servers offer it only after STARTTLS: add --starttls)");
        do_quit(s);
        return EXIT_TEMP;
    }
    const char *mech = o->auth;
    if (!mech) {
        mech = choose_mech(s);
        if (!mech) {
            out_error(s->o, "the server offers no mechanism tern supports (SCRAM-SHA-256, "
                      "PLAIN, LOGIN, CRAM-MD5): AUTH %s",
                      smtp_caps_find(&s->caps, "AUTH")->params);
            do_quit(s);
            return EXIT_TEMP;
        }
        out_info(s->o, "using AUTH %s (offered: %s)", mech,
                 smtp_caps_find(&s->caps, "AUTH")->params);
    } else if (!smtp_caps_has_auth(&s->caps, mech)) {
        out_info(s->o, "warning: the server does not list %s (it offers: %s); trying anyway",
                 mech, smtp_caps_find(&s->caps, "AUTH")->params);
    }
    if (!s->tls_on && (str_ieq(mech, "PLAIN") || str_ieq(mech, "LOGIN")))
        out_info(s->o, "warning: AUTH %s without TLS sends the password readable by anyone "
                 "on the path", mech);
    const char *user = o->user ? o->user : "";
    const char *pass = o->password ? o->password : "";
    struct smtp_reply r;
    char line[1200];
    int rc = -1;
    if (str_ieq(mech, "PLAIN")) {
        /* RFC 4616: authzid NUL authcid NUL passwd, sent as the initial response */
        size_t ul = strlen(user), pl = strlen(pass);
        char *raw = xmalloc(ul + pl + 2);
        raw[0] = '\0';
        memcpy(raw + 1, user, ul);
        raw[1 + ul] = '\0';
        memcpy(raw + 2 + ul, pass, pl);
        char *enc = b64(raw, ul + pl + 2);
        free(raw);
        snprintf(line, sizeof line, "AUTH PLAIN %s", enc);
        free(enc);
        if (auth_step(s, line, "AUTH PLAIN ***", &r) < 0)
            return EXIT_TEMP;
    } else if (str_ieq(mech, "LOGIN")) {
        if (auth_step(s, "AUTH LOGIN", NULL, &r) < 0)
            return EXIT_TEMP;
        for (int i = 0; i < 2 && r.code == 334; i++) {
            smtp_reply_free(&r);
            char *enc = b64(i == 0 ? user : pass, strlen(i == 0 ? user : pass));
            int a = auth_step(s, enc, "***", &r);
            free(enc);
            if (a < 0)
                return EXIT_TEMP;
        }
    } else if (str_ieq(mech, "CRAM-MD5")) {
        if (auth_step(s, "AUTH CRAM-MD5", NULL, &r) < 0)
            return EXIT_TEMP;
        if (r.code == 334) {
            const char *t = smtp_reply_line_text(&r, 0);
            unsigned char ch[1024];
            long n = smtp_b64_decode(t, strlen(t), ch, sizeof ch);
            smtp_reply_free(&r);
            if (n < 0) {
                out_error(s->o, "the CRAM-MD5 challenge is not base64");
                auth_cancel(s);
                do_quit(s);
                return EXIT_TEMP;
            }
            /* RFC 2195: user SP hex(HMAC-MD5(password, challenge)) */
            unsigned char mac[EVP_MAX_MD_SIZE];
            unsigned int maclen = 0;
            if (!HMAC(EVP_md5(), pass, (int)strlen(pass), ch, (size_t)n, mac, &maclen)) {
                out_error(s->o, "HMAC-MD5 is not available in this OpenSSL");
                return EXIT_TEMP;
            }
            char resp[600];
            size_t rl = (size_t)snprintf(resp, sizeof resp, "%.400s ", user);
            for (unsigned i = 0; i < maclen && rl + 3 < sizeof resp; i++)
                rl += (size_t)snprintf(resp + rl, sizeof resp - rl, "%02x", mac[i]);
            char *enc = b64(resp, rl);
            int a = auth_step(s, enc, "***", &r);
            free(enc);
            if (a < 0)
                return EXIT_TEMP;
        }
    } else if (str_ieq(mech, "SCRAM-SHA-256")) {
        if (auth_scram(s, user, pass, &r) < 0) {
            do_quit(s);
            return EXIT_TEMP;
        }
    } else {
        out_error(s->o, "AUTH %s is not implemented in tern send (SCRAM-SHA-256, PLAIN, "
                  "LOGIN, CRAM-MD5)", mech);
        do_quit(s);
        return EXIT_USAGE;
    }
    int code = r.code;
    smtp_reply_free(&r);
    if (code == 235) {
        rc = -1;
    } else {
        if (code == 334) /* the server wants more than this mechanism has to say */
            auth_cancel(s);
        rc = code == 334 ? EXIT_TEMP : classify(code);
    }
    if (rc >= 0)
        do_quit(s);
    return rc;
}

/* ---- the transaction ---- */

/* Show the start of the message as it goes out (the transcript would drown otherwise). */
#define SHOW_LINES 25

static void show_message(struct sess *s, const char *data, size_t len, bool stuffed)
{
    size_t lines = 0, shown = 0;
    const char *p = data, *end = data + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (ll > 0 && p[ll - 1] == '\r')
            ll--;
        if (shown < SHOW_LINES) {
            char buf[1100];
            snprintf(buf, sizeof buf, "%s%.*s", stuffed && p[0] == '.' ? "." : "",
                     (int)(ll > 1000 ? 1000 : ll), p);
            out_data_line(s->o, s->tls_on, buf);
            shown++;
        }
        lines++;
        p = nl ? nl + 1 : end;
    }
    if (lines > shown)
        out_info(s->o, "(%zu more lines not shown)", lines - shown);
    if (s->o->json) {
        char buf[160];
        snprintf(buf, sizeof buf, "message: %zu octets, %zu lines", len, lines);
        struct step *st = add_step(s->o, SD_DATA, buf);
        st->tls = s->tls_on;
    }
}

/* The message with dot-stuffing (RFC 5321 4.5.2) and the terminating ".". */
static char *dot_stuff(const char *m, size_t len, size_t *outlen)
{
    char *o = xmalloc(len * 2 + 8);
    size_t k = 0;
    bool bol = true;
    for (size_t i = 0; i < len; i++) {
        if (bol && m[i] == '.')
            o[k++] = '.';
        o[k++] = m[i];
        bol = m[i] == '\n';
    }
    if (k < 2 || o[k - 2] != '\r' || o[k - 1] != '\n') {
        o[k++] = '\r';
        o[k++] = '\n';
    }
    memcpy(o + k, ".\r\n", 3);
    *outlen = k + 3;
    return o;
}

static int send_data(struct sess *s)
{
    struct smtp_reply r;
    if (cmd_reply(s, SMTP_STAGE_DATA, "DATA", NULL, &r) < 0)
        return EXIT_TEMP;
    int code = r.code;
    smtp_reply_free(&r);
    if (code != 354) {
        do_quit(s);
        return classify(code) == EXIT_OK ? EXIT_TEMP : classify(code);
    }
    return -1;
}

/* RFC 2033 4.2: after the data an LMTP server answers once for every recipient it accepted,
 * in RCPT order; each recipient's delivery succeeds or fails on its own. The recipient
 * counts become those of the deliveries. */
static int lmtp_replies(struct sess *s)
{
    struct out *o = s->o;
    o->rcpt_ok = 0;
    int result = EXIT_OK;
    for (int i = 0; i < s->accepted_rcpts; i++) {
        const char *rcpt = s->opt->to[s->accepted[i]];
        char extra[700];
        snprintf(extra, sizeof extra, "LMTP: this is the delivery status for <%.500s> "
                 "(recipient %d of %d accepted; RFC 2033 4.2: one reply each).", rcpt, i + 1,
                 s->accepted_rcpts);
        struct smtp_reply r;
        smtp_reply_init(&r);
        if (get_reply(s, SMTP_STAGE_DATA_END, &r, extra) < 0) {
            o->rcpt_temp += s->accepted_rcpts - i; /* their fate is unknown: retry */
            return worse(result, EXIT_TEMP);
        }
        if (o->json)
            o->v[o->n - 1].rcpt = rcpt;
        int code = r.code;
        smtp_reply_free(&r);
        if (code / 100 == 2)
            o->rcpt_ok++;
        else if (code / 100 == 5)
            o->rcpt_perm++;
        else
            o->rcpt_temp++;
        result = worse(result, classify(code));
    }
    o->delivered = o->rcpt_ok > 0;
    do_quit(s);
    return result;
}

static int send_body_and_finish(struct sess *s)
{
    if (s->opt->quit_after == Q_DATA) {
        /* after 354 the server reads message text: QUIT would be part of it */
        out_info(s->o, "--quit-after data: closing the connection without sending the "
                 "message (nothing is delivered)");
        return EXIT_OK;
    }
    size_t sl;
    char *stuffed = dot_stuff(s->msg, s->msglen, &sl);
    show_message(s, s->msg, s->msglen, true);
    out_data_line(s->o, s->tls_on, ".");
    int rc = nc_write(&s->nc, stuffed, sl);
    free(stuffed);
    if (rc < 0) {
        out_error(s->o, "sending the message failed: %s", s->nc.err);
        return EXIT_TEMP;
    }
    if (s->opt->lmtp)
        return lmtp_replies(s);
    struct smtp_reply r;
    if (get_reply(s, SMTP_STAGE_DATA_END, &r, NULL) < 0)
        return EXIT_TEMP;
    int code = r.code;
    smtp_reply_free(&r);
    s->o->delivered = code / 100 == 2;
    do_quit(s);
    return classify(code);
}

static int send_bdat(struct sess *s, bool pipe)
{
    if (s->opt->quit_after == Q_DATA) {
        out_info(s->o, "--quit-after data: stopping before the first BDAT chunk (nothing is "
                 "delivered)");
        do_quit(s);
        return EXIT_OK;
    }
    size_t chunk = s->opt->chunk_size ? s->opt->chunk_size : s->msglen;
    if (chunk == 0)
        chunk = 1;
    size_t nchunks = s->msglen == 0 ? 1 : (s->msglen + chunk - 1) / chunk;
    show_message(s, s->msg, s->msglen, false);
    out_info(s->o, "the message goes as %zu BDAT chunk(s) of up to %zu octets, not "
             "dot-stuffed (RFC 3030)", nchunks, chunk);
    int result = EXIT_OK;
    size_t sent = 0, replies = 0;
    for (size_t i = 0; i < nchunks; i++) {
        size_t n = s->msglen - i * chunk < chunk ? s->msglen - i * chunk : chunk;
        bool last = i + 1 == nchunks;
        char line[80];
        snprintf(line, sizeof line, "BDAT %zu%s", n, last ? " LAST" : "");
        if (send_cmd(s, SMTP_STAGE_BDAT, line, NULL) < 0 ||
            nc_write(&s->nc, s->msg + i * chunk, n) < 0) {
            out_error(s->o, "sending the chunk failed: %s", s->nc.err);
            return EXIT_TEMP;
        }
        sent++;
        if (pipe && !last)
            continue;
        /* read the replies owed so far */
        while (replies < sent) {
            struct smtp_reply r;
            if (get_reply(s, SMTP_STAGE_BDAT, &r, NULL) < 0)
                return EXIT_TEMP;
            replies++;
            int code = r.code;
            smtp_reply_free(&r);
            if (code / 100 != 2) {
                result = worse(result, classify(code));
                if (!pipe) {
                    do_quit(s);
                    return result;
                }
            } else if (replies == nchunks) {
                s->o->delivered = result == EXIT_OK;
            }
        }
    }
    do_quit(s);
    return result;
}

static int transaction(struct sess *s)
{
    const struct send_opts *o = s->opt;
    bool pipe = false;
    if (o->pipelining) {
        pipe = has_cap(s, "PIPELINING");
        if (!pipe)
            out_info(s->o, "the server does not advertise PIPELINING (RFC 2920): sending one "
                     "command at a time");
    }
    if (o->bdat && !has_cap(s, "CHUNKING")) {
        out_error(s->o, "--bdat: the server does not advertise CHUNKING (RFC 3030), so it "
                  "does not accept BDAT; leave out --bdat to send with DATA");
        do_quit(s);
        return EXIT_TEMP;
    }
    char params[200] = "";
    if (o->eightbit) {
        if (has_cap(s, "8BITMIME"))
            str_copy(params, sizeof params, " BODY=8BITMIME");
        else
            out_info(s->o, "--8bitmime: the server does not advertise 8BITMIME (RFC 6152); "
                     "sending without BODY=8BITMIME");
    } else if (mime_has_8bit(s->msg, s->msglen)) {
        out_info(s->o, "warning: the message has 8-bit bytes but is declared 7-bit; add "
                 "--8bitmime if the server offers 8BITMIME");
    }
    unsigned long long limit = 0;
    if (s->have_caps && smtp_caps_size(&s->caps, &limit)) {
        size_t l = strlen(params);
        snprintf(params + l, sizeof params - l, " SIZE=%zu", s->msglen);
        if (limit && s->msglen > limit)
            out_info(s->o, "warning: the message (%zu octets) is larger than the server's "
                     "SIZE limit (%llu)", s->msglen, limit);
    }
    char mail[700];
    snprintf(mail, sizeof mail, "MAIL FROM:<%s>%s", o->from, params);

    bool want_rcpt = o->quit_after == Q_NONE || o->quit_after >= Q_RCPT;
    bool want_data = o->quit_after == Q_NONE || o->quit_after == Q_DATA;
    size_t nrcpt = want_rcpt ? o->nto : 0;
    int result = EXIT_OK;
    struct smtp_reply r;

    if (pipe) {
        /* RFC 2920 3.1: MAIL, RCPT... and DATA may go in one batch */
        size_t cap = 64 + strlen(mail);
        for (size_t i = 0; i < nrcpt; i++)
            cap += strlen(o->to[i]) + 16;
        char *batch = xmalloc(cap);
        size_t bl = (size_t)snprintf(batch, cap, "%s\r\n", mail);
        out_client(s->o, s->tls_on, SMTP_STAGE_MAIL, mail);
        for (size_t i = 0; i < nrcpt; i++) {
            char line[600];
            snprintf(line, sizeof line, "RCPT TO:<%s>", o->to[i]);
            out_client(s->o, s->tls_on, SMTP_STAGE_RCPT, line);
            bl += (size_t)snprintf(batch + bl, cap - bl, "%s\r\n", line);
        }
        bool data_in_batch = want_data && !o->bdat;
        if (data_in_batch) {
            out_client(s->o, s->tls_on, SMTP_STAGE_DATA, "DATA");
            bl += (size_t)snprintf(batch + bl, cap - bl, "DATA\r\n");
        }
        out_info(s->o, "(pipelined: the %zu commands above went in one write; replies follow "
                 "in order)", 1 + nrcpt + (data_in_batch ? 1 : 0));
        int w = nc_write(&s->nc, batch, bl);
        free(batch);
        if (w < 0) {
            out_error(s->o, "sending failed: %s", s->nc.err);
            return EXIT_TEMP;
        }
        if (get_reply(s, SMTP_STAGE_MAIL, &r, NULL) < 0)
            return EXIT_TEMP;
        result = classify(r.code);
        smtp_reply_free(&r);
        for (size_t i = 0; i < nrcpt; i++) {
            if (get_reply(s, SMTP_STAGE_RCPT, &r, NULL) < 0)
                return EXIT_TEMP;
            count_rcpt(s, i, r.code);
            result = worse(result, classify(r.code));
            smtp_reply_free(&r);
        }
        if (data_in_batch) {
            if (get_reply(s, SMTP_STAGE_DATA, &r, NULL) < 0)
                return EXIT_TEMP;
            int code = r.code;
            smtp_reply_free(&r);
            if (code != 354) {
                do_quit(s);
                return worse(result, classify(code) == EXIT_OK ? EXIT_TEMP : classify(code));
            }
            if (s->accepted_rcpts == 0) {
                /* cannot happen with a correct server (RFC 2920 3.1), but a broken one
                 * would otherwise receive the message for nobody */
                out_error(s->o, "354 without any accepted recipient; aborting");
                return EXIT_TEMP;
            }
            int fin = send_body_and_finish(s);
            return worse(result, fin);
        }
        if (o->quit_after == Q_MAIL || o->quit_after == Q_RCPT || s->accepted_rcpts == 0) {
            do_quit(s);
            return result;
        }
        if (o->bdat)
            return worse(result, send_bdat(s, pipe));
        do_quit(s);
        return result;
    }

    if (cmd_reply(s, SMTP_STAGE_MAIL, mail, NULL, &r) < 0)
        return EXIT_TEMP;
    int code = r.code;
    smtp_reply_free(&r);
    if (code / 100 != 2 || o->quit_after == Q_MAIL) {
        do_quit(s);
        return classify(code);
    }
    for (size_t i = 0; i < nrcpt; i++) {
        char line[600];
        snprintf(line, sizeof line, "RCPT TO:<%s>", o->to[i]);
        if (cmd_reply(s, SMTP_STAGE_RCPT, line, NULL, &r) < 0)
            return EXIT_TEMP;
        count_rcpt(s, i, r.code);
        result = worse(result, classify(r.code));
        smtp_reply_free(&r);
    }
    if (s->accepted_rcpts == 0) {
        out_info(s->o, "no recipient was accepted: the message is not sent");
        do_quit(s);
        return result;
    }
    if (o->quit_after == Q_RCPT) {
        do_quit(s);
        return result;
    }
    if (o->bdat)
        return worse(result, send_bdat(s, false));
    int d = send_data(s);
    if (d >= 0)
        return worse(result, d);
    return worse(result, send_body_and_finish(s));
}

static bool split_server(const char *spec, char *host, size_t cap, unsigned *port);

/* Split "IP:PORT" or "[IPv6]:PORT" into a numeric address and port; the family in *fam.
 * False if it is not that. */
static bool split_ip_port(const char *spec, char *ip, size_t cap, unsigned *port, int *fam)
{
    unsigned char b[16];
    *port = 0;
    /* the --server syntax, then insist on a literal address and a port */
    if (!split_server(spec, ip, cap, port) || *port == 0)
        return false;
    if (inet_pton(AF_INET, ip, b) == 1)
        *fam = AF_INET;
    else if (inet_pton(AF_INET6, ip, b) == 1)
        *fam = AF_INET6;
    else
        return false;
    return true;
}

/* The numeric address and port of a socket address. */
static void sa_ip_port(const struct sockaddr_storage *ss, char *ip, size_t cap, unsigned *port,
                       int *fam)
{
    *fam = ss->ss_family;
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, (socklen_t)cap);
        *port = ntohs(a->sin6_port);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, (socklen_t)cap);
        *port = ntohs(a->sin_port);
    }
}

/* The HAProxy PROXY protocol v1 header (haproxy's proxy-protocol.txt, 2.1): one line
 * before anything else, telling the server the client's "real" addresses, as a load
 * balancer in front of it would. By default the addresses of this connection. */
static int send_proxy_header(struct sess *s)
{
    struct sockaddr_storage ls, ps;
    socklen_t ll = sizeof ls, pl = sizeof ps;
    char sip[INET6_ADDRSTRLEN], dip[INET6_ADDRSTRLEN];
    unsigned sport = 0, dport = 0;
    int sfam = 0, dfam = 0;
    if (getsockname(s->nc.fd, (struct sockaddr *)&ls, &ll) != 0 ||
        getpeername(s->nc.fd, (struct sockaddr *)&ps, &pl) != 0) {
        out_error(s->o, "cannot read the connection's addresses: %s", strerror(errno));
        return EXIT_TEMP;
    }
    if (s->opt->proxy_src)
        split_ip_port(s->opt->proxy_src, sip, sizeof sip, &sport, &sfam); /* checked before */
    else
        sa_ip_port(&ls, sip, sizeof sip, &sport, &sfam);
    if (s->opt->proxy_dst)
        split_ip_port(s->opt->proxy_dst, dip, sizeof dip, &dport, &dfam);
    else
        sa_ip_port(&ps, dip, sizeof dip, &dport, &dfam);
    if (sfam != dfam) {
        out_error(s->o, "PROXY header: the source %s and the destination %s are not of the "
                  "same address family", sip, dip);
        return EXIT_USAGE;
    }
    char line[200];
    snprintf(line, sizeof line, "PROXY %s %s %s %u %u", sfam == AF_INET6 ? "TCP6" : "TCP4", sip,
             dip, sport, dport);
    if (send_cmd(s, SMTP_STAGE_OTHER, line, NULL) < 0)
        return EXIT_TEMP;
    out_info(s->o, "PROXY protocol v1 header sent: the server should take %s as the client's "
             "address (it answers nothing; its greeting follows)", sip);
    return -1;
}

/* Postfix XCLIENT (www.postfix.org/XCLIENT_README.html): a trusted client (a proxy, a
 * content filter, a test tool) tells the server whose session it is relaying, so the
 * server's access rules can be tested for another address or name. The values are xtext
 * (RFC 3461 4); a 220 greeting follows and the session starts again with EHLO. Exit code
 * or -1 to go on. */
static int do_xclient(struct sess *s)
{
    const struct smtp_cap *cap = s->have_caps ? smtp_caps_find(&s->caps, "XCLIENT") : NULL;
    if (!cap) {
        out_error(s->o, "the server does not offer XCLIENT (it is not in the EHLO reply)");
        out_explain(s->o, "XCLIENT is a Postfix extension, offered only to the hosts in "
                    "smtpd_authorized_xclient_hosts");
        do_quit(s);
        return EXIT_TEMP;
    }
    char line[1000] = "XCLIENT";
    size_t len = strlen(line);
    for (size_t i = 0; i < s->opt->nxclient; i++) {
        const char *a = s->opt->xclient[i], *eq = strchr(a, '=');
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
        bool listed = false;
        char params[512];
        str_copy(params, sizeof params, cap->params);
        char *save = NULL;
        for (char *t = strtok_r(params, " ", &save); t; t = strtok_r(NULL, " ", &save))
            listed = listed || str_ieq(t, name);
        if (!listed)
            out_info(s->o, "warning: the server does not list the XCLIENT attribute %s (it "
                     "offers: %s); sending it anyway", name, cap->params);
        if (len + strlen(name) + 2 < sizeof line)
            len += (size_t)snprintf(line + len, sizeof line - len, " %s=", name);
        for (const unsigned char *v = (const unsigned char *)eq + 1; *v; v++) {
            bool plain = *v > 0x20 && *v < 0x7f && *v != '+' && *v != '=';
            if (len + 4 >= sizeof line)
                break;
            len += (size_t)snprintf(line + len, sizeof line - len, plain ? "%c" : "+%02X", *v);
        }
    }
    struct smtp_reply r;
    if (cmd_reply(s, SMTP_STAGE_OTHER, line, NULL, &r) < 0)
        return EXIT_TEMP;
    int code = r.code;
    smtp_reply_free(&r);
    if (code != 220) {
        out_error(s->o, "XCLIENT refused%s", code / 100 == 5 ? ": is this host in the server's "
                  "smtpd_authorized_xclient_hosts?" : "");
        do_quit(s);
        return classify(code) == EXIT_OK ? EXIT_TEMP : classify(code);
    }
    out_info(s->o, "XCLIENT accepted: the server now treats the session as coming from the "
             "given client, and greets again; EHLO again");
    return do_ehlo(s);
}

/* The whole session on a connected socket. */
static int session(struct sess *s)
{
    const struct send_opts *o = s->opt;
    int rc;
    if (o->proxy && (rc = send_proxy_header(s)) >= 0)
        return rc;
    s->o->rcpt_ok = s->o->rcpt_temp = s->o->rcpt_perm = 0;
    s->o->delivered = false;
    if (s->ehlo_name[0] == '\0')
        nc_local_literal(&s->nc, s->ehlo_name, sizeof s->ehlo_name);
    if (o->tls) {
        out_info(s->o, "implicit TLS (RFC 8314): the handshake comes before the greeting");
        if ((rc = tls_handshake(s)) >= 0)
            return rc;
    }
    struct smtp_reply r;
    smtp_reply_init(&r);
    if (get_reply(s, SMTP_STAGE_GREETING, &r, NULL) < 0) {
        if (s->nc.timed_out && !o->proxy && !o->tls)
            out_explain(s->o, "a server that never greets may be waiting for the client to "
                        "speak first: a TLS handshake (--tls, port 465) or a PROXY protocol "
                        "header (--proxy, behind a load balancer)");
        s->try_next = true;
        return EXIT_TEMP;
    }
    int code = r.code;
    smtp_reply_free(&r);
    if (code / 100 != 2) {
        s->try_next = true;
        do_quit(s);
        return classify(code);
    }
    if (o->quit_after == Q_CONNECT) {
        do_quit(s);
        return EXIT_OK;
    }
    if ((rc = do_ehlo(s)) >= 0) {
        if (rc != EXIT_OK)
            do_quit(s);
        return rc;
    }
    if (o->quit_after == Q_EHLO) {
        do_quit(s);
        return EXIT_OK;
    }
    if (o->starttls && (rc = do_starttls(s)) >= 0) {
        if (rc != EXIT_OK && s->tls_on)
            do_quit(s);
        return rc;
    }
    if (o->quit_after == Q_TLS) {
        do_quit(s);
        return EXIT_OK;
    }
    if (o->nxclient && (rc = do_xclient(s)) >= 0)
        return rc;
    if (o->user || o->auth) {
        if ((rc = do_auth(s)) >= 0)
            return rc;
    }
    if (o->quit_after == Q_AUTH) {
        do_quit(s);
        return EXIT_OK;
    }
    return transaction(s);
}

/* ---- the message ---- */

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 8192, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(f)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* Bare LF -> CRLF (files written on Unix); CRLF stays. */
static char *to_crlf(const char *in, size_t len, size_t *outlen)
{
    char *o = xmalloc(len * 2 + 3);
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
            o[k++] = '\r';
        o[k++] = in[i];
    }
    if (k > 0 && (k < 2 || o[k - 1] != '\n')) {
        o[k++] = '\r';
        o[k++] = '\n';
    }
    *outlen = k;
    return o;
}

static bool header_given(const struct send_opts *o, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < o->nheaders; i++)
        if (str_nieq(o->headers[i], name, nl) && o->headers[i][nl] == ':')
            return true;
    return false;
}

/* Read the --attach files and build the multipart body around the text (mime_build.c).
 * NULL after a message on stderr if a file cannot be read. */
static char *attach_files(const struct send_opts *o, const char *text, size_t tlen,
                          size_t *len)
{
    struct mime_attachment *a = xcalloc(o->nattach, sizeof *a);
    char **data = xcalloc(o->nattach, sizeof *data);
    char *out = NULL;
    size_t i;
    for (i = 0; i < o->nattach; i++) {
        struct attach_opt *ao = &o->attach[i];
        FILE *f = fopen(ao->path, "rb");
        if (!f) {
            fprintf(stderr, "tern send: --attach %s: %s\n", ao->path, strerror(errno));
            goto done;
        }
        size_t n = 0;
        data[i] = read_all(f, &n);
        fclose(f);
        if (!data[i]) {
            fprintf(stderr, "tern send: --attach %s: read error\n", ao->path);
            goto done;
        }
        a[i] = (struct mime_attachment){.name = ao->path, .type = ao->type,
                                        .data = (const unsigned char *)data[i], .len = n};
        ao->size = n;
        ao->sent_type = ao->type ? ao->type : mime_type_for_name(ao->path);
    }
    unsigned char rnd[9];
    char seed[24];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        memset(rnd, 0x5a, sizeof rnd);
    smtp_b64_encode(rnd, sizeof rnd, seed); /* '+' and '/' are dropped by the builder */
    out = mime_build_mixed(text, tlen, a, o->nattach, seed, len);
done:
    for (size_t j = 0; j < o->nattach; j++)
        free(data[j]);
    free(data);
    free(a);
    return out;
}

static char *build_message(const struct send_opts *o, const char *ehlo, size_t *len)
{
    if (o->data_file) {
        FILE *f = strcmp(o->data_file, "-") == 0 ? stdin : fopen(o->data_file, "rb");
        if (!f) {
            fprintf(stderr, "tern send: cannot open %s: %s\n", o->data_file, strerror(errno));
            return NULL;
        }
        size_t rl = 0;
        char *raw = read_all(f, &rl);
        if (f != stdin)
            fclose(f);
        if (!raw) {
            fprintf(stderr, "tern send: cannot read %s\n", o->data_file);
            return NULL;
        }
        char *m = to_crlf(raw, rl, len);
        free(raw);
        return m;
    }
    size_t cap = 4096 + (o->body ? strlen(o->body) * 2 : 0);
    for (size_t i = 0; i < o->nheaders; i++)
        cap += strlen(o->headers[i]) + 2;
    char *m = xmalloc(cap);
    size_t k = 0;
    char date[64];
    time_t now = time(NULL);
    rfc5322_date_now(date, sizeof date);
    const char *at = strrchr(o->from, '@');
    const char *mid_domain = at && at[1] ? at + 1 : ehlo;
    unsigned char rnd[6] = {0};
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        memset(rnd, 0x5a, sizeof rnd);
    char tolist[1024] = "";
    for (size_t i = 0, l = 0; i < o->nto && l < sizeof tolist; i++)
        l += (size_t)snprintf(tolist + l, sizeof tolist - l, "%s%s", i ? ", " : "", o->to[i]);
    if (!header_given(o, "Date"))
        k += (size_t)snprintf(m + k, cap - k, "Date: %s\r\n", date);
    if (!header_given(o, "Message-ID"))
        k += (size_t)snprintf(m + k, cap - k,
                              "Message-ID: <%lld.%d.%02x%02x%02x%02x%02x%02x@%.200s>\r\n",
                              (long long)now, (int)getpid(), rnd[0], rnd[1], rnd[2], rnd[3],
                              rnd[4], rnd[5], mid_domain);
    if (!header_given(o, "From"))
        k += (size_t)snprintf(m + k, cap - k, "From: <%.300s>\r\n", o->from[0] ? o->from :
                              "MAILER-DAEMON");
    if (!header_given(o, "To"))
        k += (size_t)snprintf(m + k, cap - k, "To: %.1000s\r\n", tolist);
    if (!header_given(o, "Subject"))
        k += (size_t)snprintf(m + k, cap - k, "Subject: test %s from tern send\r\n", date);
    for (size_t i = 0; i < o->nheaders; i++)
        k += (size_t)snprintf(m + k, cap - k, "%s\r\n", o->headers[i]);
    const char *body = o->body ? o->body : "This is a test message sent by tern send.\n";
    size_t bl;
    char *b = to_crlf(body, strlen(body), &bl);
    if (o->nattach) {
        /* the MIME header fields, the empty line and the multipart body replace "\r\n"+b */
        char *mime = attach_files(o, b, bl, &bl);
        free(b);
        if (!mime) {
            free(m);
            return NULL;
        }
        b = mime;
    } else {
        k += (size_t)snprintf(m + k, cap - k, "\r\n");
    }
    if (k + bl + 1 > cap) {
        cap = k + bl + 1;
        m = xrealloc(m, cap);
    }
    memcpy(m + k, b, bl);
    free(b);
    k += bl;
    *len = k;
    return m;
}

/* ---- options ---- */

static void usage(FILE *f)
{
    fprintf(f,
"usage: tern send --to ADDR [--to ADDR]... [options]\n"
"  Walks one SMTP session, prints the transcript and explains every reply.\n"
"  --server HOST[:PORT]   server to talk to (default: the recipient domain's MX)\n"
"  --port N               port (default 25, or 465 with --tls)\n"
"  --from ADDR            envelope sender (default: $USER@hostname; '' for <>)\n"
"  --to ADDR              recipient; repeatable or comma-separated\n"
"  --ehlo NAME            name to send in EHLO (default: host name, or [address])\n"
"  --helo                 send HELO instead of EHLO\n"
"  --starttls             upgrade with STARTTLS (RFC 3207); --tls: implicit TLS (RFC 8314)\n"
"  --tls-optional         STARTTLS when the server offers it, else go on unencrypted\n"
"  --cafile FILE          trust anchors for the certificate check (default: system store);\n"
"                         --tls-ca FILE is the same\n"
"  --insecure             go on when the certificate does not verify (= --no-tls-verify;\n"
"                         --tls-verify, the default, stops)\n"
"  --tls-cert FILE        client certificate (PEM, with intermediates) for TLS\n"
"  --tls-key FILE         its private key (default: in the --tls-cert file)\n"
"  --auth MECH            SCRAM-SHA-256, PLAIN, LOGIN or CRAM-MD5 (default: the best the\n"
"                         server offers)\n"
"  --user U --password P  credentials (or TERN_SEND_PASSWORD in the environment)\n"
"  --data FILE            the message from FILE ('-': standard input)\n"
"  --header 'Name: value' add or replace a header of the generated message; repeatable\n"
"  --body TEXT            body of the generated message\n"
"  --attach FILE          attach FILE (multipart/mixed, base64); repeatable\n"
"  --attach-type TYPE     content type of the --attach options after it (default: from\n"
"                         the file name, else application/octet-stream)\n"
"  --proxy                send a PROXY protocol v1 header first (HAProxy); the addresses\n"
"                         are this connection's unless --proxy-source/--proxy-dest IP:PORT\n"
"  --xclient NAME=VALUE   Postfix XCLIENT after EHLO (ADDR=, NAME=, HELO=, ...); repeatable\n"
"  --protocol lmtp        speak LMTP (RFC 2033: LHLO, one reply per recipient after the\n"
"                         data; port 24 by default; needs --server)\n"
"  --bdat [--chunk-size N] send with BDAT (RFC 3030) instead of DATA\n"
"  --pipelining           send MAIL, RCPT and DATA in one batch (RFC 2920)\n"
"  --8bitmime             declare BODY=8BITMIME (RFC 6152)\n"
"  --quit-after STEP      connect, ehlo, tls, auth, mail, rcpt or data\n"
"  --timeout SECONDS      for each connect and reply (default 30)\n"
"  --nameserver IP[:PORT] DNS server for the MX lookup (default: /etc/resolv.conf)\n"
"  --json                 print the session as one JSON document\n"
"  --no-color             never colour (colour is used on a terminal unless NO_COLOR is set)\n"
"Exit status: 0 accepted, 1 refused (5xx), 2 temporary failure (4xx) or a connection,\n"
"TLS or DNS problem, 64 usage error.\n");
}

static void add_list(char ***v, size_t *n, const char *item)
{
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = xstrdup(item);
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Split "HOST[:PORT]", "[v6]:PORT", "v6". False if malformed. */
static bool split_server(const char *spec, char *host, size_t cap, unsigned *port)
{
    const char *colon = strrchr(spec, ':');
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || (size_t)(close - spec - 1) >= cap)
            return false;
        memcpy(host, spec + 1, (size_t)(close - spec - 1));
        host[close - spec - 1] = '\0';
        if (close[1] == '\0')
            return true;
        if (close[1] != ':')
            return false;
        colon = close + 1;
    } else if (colon && strchr(spec, ':') == colon) {
        if ((size_t)(colon - spec) >= cap)
            return false;
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = '\0';
    } else {
        return str_copy(host, cap, spec); /* a name, or a bare IPv6 address */
    }
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end || p == 0 || p > 65535)
        return false;
    *port = (unsigned)p;
    return host[0] != '\0';
}

static void set_port(struct dns_addr *a, unsigned port)
{
    if (a->family == AF_INET)
        ((struct sockaddr_in *)&a->sa)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&a->sa)->sin6_port = htons((uint16_t)port);
}

/* Addresses of host: an IP literal as is; else the resolver (--nameserver) or getaddrinfo
 * (which honours /etc/hosts, what a person typing "localhost" expects). */
static size_t resolve_host(struct out *o, struct event_base *base, struct dns_resolver *res,
                           const char *host, struct dns_addr **out)
{
    *out = NULL;
    unsigned char b[16];
    struct dns_addr a;
    memset(&a, 0, sizeof a);
    if (inet_pton(AF_INET, host, b) == 1 || inet_pton(AF_INET6, host, b) == 1) {
        struct addrinfo hints = {.ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM};
        struct addrinfo *ai = NULL;
        if (getaddrinfo(host, NULL, &hints, &ai) != 0 || !ai)
            return 0;
        a.family = ai->ai_family;
        memcpy(&a.sa, ai->ai_addr, ai->ai_addrlen);
        a.salen = ai->ai_addrlen;
        str_copy(a.text, sizeof a.text, host);
        freeaddrinfo(ai);
        *out = xmalloc(sizeof a);
        **out = a;
        return 1;
    }
    if (res) {
        struct dns_answer ans;
        dns_wait_addr(base, res, host, DNS_WANT_ANY, &ans);
        if (ans.status != DNS_OK) {
            out_error(o, "%s: no address (%s%s%s)", host, dns_status_str(ans.status),
                      ans.detail[0] ? ": " : "", ans.detail);
            dns_answer_free(&ans);
            return 0;
        }
        size_t n = ans.count;
        *out = xcalloc(n, sizeof **out);
        memcpy(*out, ans.addr, n * sizeof **out);
        dns_answer_free(&ans);
        return n;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int e = getaddrinfo(host, NULL, &hints, &ai);
    if (e != 0) {
        out_error(o, "%s: no address (%s)", host, gai_strerror(e));
        return 0;
    }
    size_t n = 0;
    for (struct addrinfo *p = ai; p; p = p->ai_next)
        n++;
    *out = xcalloc(n ? n : 1, sizeof **out);
    n = 0;
    for (struct addrinfo *p = ai; p; p = p->ai_next) {
        if (p->ai_family != AF_INET && p->ai_family != AF_INET6)
            continue;
        struct dns_addr *d = &(*out)[n++];
        d->family = p->ai_family;
        memcpy(&d->sa, p->ai_addr, p->ai_addrlen);
        d->salen = p->ai_addrlen;
        if (p->ai_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)p->ai_addr)->sin_addr, d->text,
                      sizeof d->text);
        else
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)p->ai_addr)->sin6_addr,
                      d->text, sizeof d->text);
    }
    freeaddrinfo(ai);
    return n;
}

/* Try each address of one host until a session gets somewhere. Returns the exit code and
 * sets *next when the caller should try another host. */
static int try_host(struct send_opts *opt, struct out *o, struct event_base *base,
                    struct dns_resolver *res, const char *host, unsigned port,
                    const char *msg, size_t msglen, bool *next)
{
    struct dns_addr *addrs = NULL;
    size_t n = resolve_host(o, base, res, host, &addrs);
    int rc = EXIT_TEMP;
    *next = true;
    for (size_t i = 0; i < n; i++) {
        set_port(&addrs[i], port);
        struct sess s;
        memset(&s, 0, sizeof s);
        s.opt = opt;
        s.o = o;
        s.msg = msg;
        s.msglen = msglen;
        str_copy(s.host, sizeof s.host, host);
        nc_addr_text((struct sockaddr *)&addrs[i].sa, s.addrtext, sizeof s.addrtext);
        if (opt->ehlo)
            str_copy(s.ehlo_name, sizeof s.ehlo_name, opt->ehlo);
        nc_init(&s.nc, opt->timeout_s * 1000);
        if (opt->tls_cert)
            nc_set_client_cert(&s.nc, opt->tls_cert, opt->tls_key);
        out_info(o, "Trying %s (%s)...", s.addrtext, host);
        if (nc_connect(&s.nc, (struct sockaddr *)&addrs[i].sa, addrs[i].salen) < 0) {
            out_error(o, "cannot connect to %s: %s", s.addrtext, s.nc.err);
            continue;
        }
        out_info(o, "Connected to %s", s.addrtext);
        rc = session(&s);
        nc_close(&s.nc);
        free(s.accepted);
        if (s.have_caps)
            smtp_caps_free(&s.caps);
        if (!s.try_next) {
            *next = false;
            break;
        }
    }
    free(addrs);
    return rc;
}

static int print_json(struct out *o, const struct send_opts *opt, int rc)
{
    FILE *f = stdout;
    static const char *const results[] = {"accepted", "refused", "deferred"};
    fprintf(f, "{\n  \"tool\": \"tern send\",\n  \"server\": ");
    json_str(f, opt->server ? opt->server : "");
    fprintf(f, ",\n  \"from\": ");
    json_str(f, opt->from);
    fprintf(f, ",\n  \"to\": [");
    for (size_t i = 0; i < opt->nto; i++) {
        fprintf(f, "%s", i ? ", " : "");
        json_str(f, opt->to[i]);
    }
    fprintf(f, "],\n  \"protocol\": \"%s\",\n  \"attachments\": [", opt->lmtp ? "lmtp" : "smtp");
    for (size_t i = 0; i < opt->nattach; i++) {
        fprintf(f, "%s{\"file\": ", i ? ", " : "");
        json_str(f, opt->attach[i].path);
        fprintf(f, ", \"type\": ");
        json_str(f, opt->attach[i].sent_type);
        fprintf(f, ", \"octets\": %zu}", opt->attach[i].size);
    }
    fprintf(f, "],\n  \"client_certificate\": ");
    if (opt->tls_cert)
        json_str(f, opt->tls_cert);
    else
        fputs("null", f);
    fprintf(f, ",\n  \"proxy\": %s,\n  \"xclient\": [", opt->proxy ? "true" : "false");
    for (size_t i = 0; i < opt->nxclient; i++) {
        fprintf(f, "%s", i ? ", " : "");
        json_str(f, opt->xclient[i]);
    }
    fprintf(f, "],\n  \"recipients\": {\"accepted\": %d, \"refused\": %d, \"deferred\": %d},"
            "\n  \"delivered\": %s,", o->rcpt_ok, o->rcpt_perm, o->rcpt_temp,
            o->delivered ? "true" : "false");
    fprintf(f, "\n  \"result\": \"%s\",\n  \"exit\": %d,\n  \"steps\": [",
            rc == EXIT_USAGE ? "usage" : rc == EXIT_OK && opt->quit_after ? "stopped"
                                                                           : results[rc <= 2 ? rc : 2],
            rc);
    for (size_t i = 0; i < o->n; i++) {
        const struct step *s = &o->v[i];
        fprintf(f, "%s\n    {\"dir\": \"%s\", \"ms\": %lld", i ? "," : "", sdir_names[s->dir],
                s->ms);
        if (s->stage)
            fprintf(f, ", \"stage\": \"%s\"", s->stage);
        if (s->dir == SD_CLIENT || s->dir == SD_SERVER || s->dir == SD_DATA)
            fprintf(f, ", \"tls\": %s", s->tls ? "true" : "false");
        fprintf(f, ", \"text\": ");
        json_str(f, s->text);
        if (s->dir == SD_SERVER) {
            fprintf(f, ", \"code\": %d, \"enhanced\": ", s->code);
            if (s->esc[0])
                json_str(f, s->esc);
            else
                fputs("null", f);
        }
        if (s->rcpt) {
            fprintf(f, ", \"rcpt\": ");
            json_str(f, s->rcpt);
        }
        if (s->explain) {
            fprintf(f, ", \"explanation\": ");
            json_str(f, s->explain);
        }
        fputc('}', f);
    }
    fprintf(f, "\n  ]\n}\n");
    return rc;
}

static bool parse_quit_step(const char *s, enum quit_step *q)
{
    for (size_t i = 1; i < ARRAY_LEN(quit_names); i++) {
        if (str_ieq(s, quit_names[i])) {
            *q = (enum quit_step)i;
            return true;
        }
    }
    return false;
}

enum {
    O_SERVER = 1000, O_PORT, O_FROM, O_TO, O_EHLO, O_HELO, O_STARTTLS, O_TLS, O_INSECURE,
    O_CAFILE, O_AUTH, O_USER, O_PASSWORD, O_DATA, O_HEADER, O_BODY, O_BDAT, O_CHUNK,
    O_PIPELINING, O_8BIT, O_QUIT_AFTER, O_JSON, O_NOCOLOR, O_TIMEOUT, O_NAMESERVER, O_HELP,
    O_TLS_OPTIONAL, O_ATTACH, O_ATTACH_TYPE, O_TLS_CERT, O_TLS_KEY, O_TLS_CA, O_TLS_VERIFY,
    O_NO_TLS_VERIFY, O_PROTOCOL, O_PROXY, O_PROXY_SRC, O_PROXY_DST, O_XCLIENT
};

static const struct option long_opts[] = {
    {"server", required_argument, NULL, O_SERVER},
    {"port", required_argument, NULL, O_PORT},
    {"from", required_argument, NULL, O_FROM},
    {"to", required_argument, NULL, O_TO},
    {"ehlo", required_argument, NULL, O_EHLO},
    {"helo", no_argument, NULL, O_HELO},
    {"starttls", no_argument, NULL, O_STARTTLS},
    {"tls", no_argument, NULL, O_TLS},
    {"insecure", no_argument, NULL, O_INSECURE},
    {"tls-optional", no_argument, NULL, O_TLS_OPTIONAL},
    {"cafile", required_argument, NULL, O_CAFILE},
    {"auth", required_argument, NULL, O_AUTH},
    {"user", required_argument, NULL, O_USER},
    {"password", required_argument, NULL, O_PASSWORD},
    {"data", required_argument, NULL, O_DATA},
    {"header", required_argument, NULL, O_HEADER},
    {"body", required_argument, NULL, O_BODY},
    {"bdat", no_argument, NULL, O_BDAT},
    {"chunk-size", required_argument, NULL, O_CHUNK},
    {"pipelining", no_argument, NULL, O_PIPELINING},
    {"8bitmime", no_argument, NULL, O_8BIT},
    {"quit-after", required_argument, NULL, O_QUIT_AFTER},
    {"json", no_argument, NULL, O_JSON},
    {"no-color", no_argument, NULL, O_NOCOLOR},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"nameserver", required_argument, NULL, O_NAMESERVER},
    {"help", no_argument, NULL, O_HELP},
    {"attach", required_argument, NULL, O_ATTACH},
    {"attach-type", required_argument, NULL, O_ATTACH_TYPE},
    {"tls-cert", required_argument, NULL, O_TLS_CERT},
    {"tls-key", required_argument, NULL, O_TLS_KEY},
    {"tls-ca", required_argument, NULL, O_TLS_CA},
    {"tls-verify", no_argument, NULL, O_TLS_VERIFY},
    {"no-tls-verify", no_argument, NULL, O_NO_TLS_VERIFY},
    {"protocol", required_argument, NULL, O_PROTOCOL},
    {"proxy", no_argument, NULL, O_PROXY},
    {"xclient", required_argument, NULL, O_XCLIENT},
    {"proxy-source", required_argument, NULL, O_PROXY_SRC},
    {"proxy-dest", required_argument, NULL, O_PROXY_DST},
    {NULL, 0, NULL, 0},
};

__attribute__((format(printf, 1, 2)))
static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tern send: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(tern send --help for the options)\n");
    return EXIT_USAGE;
}

/* https://no-color.org: NO_COLOR set and not empty */
static bool no_color_env(void)
{
    const char *v = getenv("NO_COLOR");
    return v && v[0];
}

static int parse_args(int argc, char **argv, struct send_opts *o)
{
    bool color_off = false, verify_on = false;
    const char *attach_type = NULL; /* the last --attach-type: for the --attach after it */
    bool type_used = true;
    optind = 0; /* 0: full reinitialisation of glibc getopt, whatever ran before */
    opterr = 1;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (c) {
        case O_SERVER: o->server = optarg; break;
        case O_PORT: {
            unsigned long p = strtoul(optarg, &end, 10);
            if (*end || p == 0 || p > 65535)
                return bad_usage("--port %s: not a port number", optarg);
            o->port = (unsigned)p;
            break;
        }
        case O_FROM: o->from = optarg; break;
        case O_TO: {
            char *copy = xstrdup(optarg), *save = NULL;
            for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
                add_list(&o->to, &o->nto, t);
            free(copy);
            break;
        }
        case O_EHLO: o->ehlo = optarg; break;
        case O_HELO: o->force_helo = true; break;
        case O_STARTTLS: o->starttls = true; break;
        case O_TLS: o->tls = true; break;
        case O_INSECURE: o->insecure = true; break;
        case O_TLS_OPTIONAL: o->starttls = o->tls_optional = true; break;
        case O_CAFILE: o->cafile = optarg; break;
        case O_AUTH: o->auth = optarg; break;
        case O_USER: o->user = optarg; break;
        case O_PASSWORD: o->password = optarg; break;
        case O_DATA: o->data_file = optarg; break;
        case O_HEADER:
            if (!strchr(optarg, ':') || optarg[0] == ':' || strpbrk(optarg, "\r\n"))
                return bad_usage("--header '%s': want 'Name: value'", optarg);
            add_list(&o->headers, &o->nheaders, optarg);
            break;
        case O_BODY: o->body = optarg; break;
        case O_BDAT: o->bdat = true; break;
        case O_CHUNK: {
            unsigned long n = strtoul(optarg, &end, 10);
            if (*end || n == 0 || n > 1UL << 30)
                return bad_usage("--chunk-size %s: want a positive number of octets", optarg);
            o->chunk_size = n;
            break;
        }
        case O_PIPELINING: o->pipelining = true; break;
        case O_8BIT: o->eightbit = true; break;
        case O_QUIT_AFTER:
            if (!parse_quit_step(optarg, &o->quit_after))
                return bad_usage("--quit-after %s: one of connect, ehlo, tls, auth, mail, "
                                 "rcpt, data", optarg);
            break;
        case O_JSON: o->json = true; break;
        case O_NOCOLOR: color_off = true; break;
        case O_TIMEOUT: {
            long t = strtol(optarg, &end, 10);
            if (*end || t <= 0 || t > 3600)
                return bad_usage("--timeout %s: want 1-3600 seconds", optarg);
            o->timeout_s = (int)t;
            break;
        }
        case O_NAMESERVER: o->nameserver = optarg; break;
        case O_ATTACH:
            o->attach = xrealloc(o->attach, (o->nattach + 1) * sizeof *o->attach);
            o->attach[o->nattach++] = (struct attach_opt){.path = optarg, .type = attach_type};
            type_used = true;
            break;
        case O_ATTACH_TYPE:
            if (!mime_type_valid(optarg))
                return bad_usage("--attach-type %s: want type/subtype, e.g. "
                                 "application/pdf", optarg);
            attach_type = optarg;
            type_used = false;
            break;
        case O_TLS_CERT: o->tls_cert = optarg; break;
        case O_TLS_KEY: o->tls_key = optarg; break;
        case O_TLS_CA: o->cafile = optarg; break;
        case O_TLS_VERIFY: verify_on = true; break;
        case O_NO_TLS_VERIFY: o->insecure = true; break;
        case O_PROTOCOL:
            if (str_ieq(optarg, "lmtp"))
                o->lmtp = true;
            else if (!str_ieq(optarg, "smtp") && !str_ieq(optarg, "esmtp"))
                return bad_usage("--protocol %s: smtp or lmtp", optarg);
            break;
        case O_PROXY: o->proxy = true; break;
        case O_XCLIENT: {
            /* one NAME=VALUE each; the value may hold anything (it is sent as xtext) */
            const char *eq = strchr(optarg, '=');
            size_t nl = eq ? (size_t)(eq - optarg) : 0;
            bool ok = nl > 0 && nl < 32;
            for (size_t i = 0; ok && i < nl; i++)
                ok = (optarg[i] >= 'A' && optarg[i] <= 'Z') ||
                     (optarg[i] >= 'a' && optarg[i] <= 'z') || optarg[i] == '_';
            if (!ok)
                return bad_usage("--xclient %s: want NAME=VALUE (ADDR, NAME, PORT, PROTO, "
                                 "HELO, LOGIN, DESTADDR, DESTPORT)", optarg);
            add_list(&o->xclient, &o->nxclient, optarg);
            break;
        }
        case O_PROXY_SRC:
        case O_PROXY_DST: {
            char ip[INET6_ADDRSTRLEN + 2];
            unsigned pt;
            int fam;
            if (!split_ip_port(optarg, ip, sizeof ip, &pt, &fam))
                return bad_usage("--%s %s: want IP:PORT or [IPv6]:PORT",
                                 c == O_PROXY_SRC ? "proxy-source" : "proxy-dest", optarg);
            *(c == O_PROXY_SRC ? &o->proxy_src : &o->proxy_dst) = optarg;
            o->proxy = true;
            break;
        }
        case 'h':
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            return bad_usage("%s", "unknown option");
        }
    }
    if (optind < argc)
        return bad_usage("unexpected argument '%s'", argv[optind]);
    if (!type_used)
        return bad_usage("--attach-type %s: no --attach after it (it sets the type of the "
                         "--attach options that follow it)", attach_type);
    if (o->nattach && o->data_file)
        return bad_usage("%s", "--attach builds the message: it excludes --data FILE");
    if (o->nattach && (header_given(o, "Content-Type") || header_given(o, "MIME-Version") ||
                       header_given(o, "Content-Transfer-Encoding")))
        return bad_usage("%s", "--attach sets Content-Type, MIME-Version and "
                         "Content-Transfer-Encoding: leave them out of --header");
    if (verify_on && o->insecure)
        return bad_usage("%s", "--tls-verify excludes --no-tls-verify and --insecure");
    if (o->tls_key && !o->tls_cert)
        return bad_usage("%s", "--tls-key needs --tls-cert");
    if (o->tls_cert && !o->starttls && !o->tls)
        return bad_usage("%s", "--tls-cert needs --starttls, --tls-optional or --tls (a "
                         "client certificate is only sent inside TLS)");
    if (o->tls_cert) {
        char err[300];
        if (nc_check_client_cert(o->tls_cert, o->tls_key, err, sizeof err) < 0)
            return bad_usage("%s: %s", o->tls_cert, err);
    }
    if (o->proxy_src && o->proxy_dst) {
        char ip[INET6_ADDRSTRLEN + 2];
        unsigned pt;
        int f1 = 0, f2 = 0;
        split_ip_port(o->proxy_src, ip, sizeof ip, &pt, &f1);
        split_ip_port(o->proxy_dst, ip, sizeof ip, &pt, &f2);
        if (f1 != f2)
            return bad_usage("%s", "--proxy-source and --proxy-dest must both be IPv4 or both "
                             "IPv6");
    }
    if (o->lmtp && !o->server)
        return bad_usage("%s", "--protocol lmtp needs --server: LMTP talks to a local "
                         "delivery agent, never to an MX (RFC 2033 5)");
    if (o->lmtp && o->force_helo)
        return bad_usage("%s", "--protocol lmtp has no HELO: it starts with LHLO");
    if (o->lmtp && o->bdat)
        return bad_usage("%s", "--bdat with --protocol lmtp is not supported by tern send");
    if (o->nto == 0)
        return bad_usage("%s", "--to ADDR is required");
    if (o->starttls && o->tls)
        return bad_usage("%s", "--starttls and --tls exclude each other");
    if (o->data_file && (o->nheaders || o->body))
        return bad_usage("%s", "--data FILE excludes --header and --body");
    if ((o->chunk_size) && !o->bdat)
        return bad_usage("%s", "--chunk-size needs --bdat");
    if (o->quit_after == Q_TLS && !o->starttls && !o->tls)
        return bad_usage("%s", "--quit-after tls needs --starttls or --tls");
    if (o->quit_after == Q_AUTH && !o->user && !o->auth)
        return bad_usage("%s", "--quit-after auth needs --auth/--user");
    if ((o->user || o->auth) && !o->password)
        o->password = getenv("TERN_SEND_PASSWORD");
    if (o->user && !o->password)
        return bad_usage("%s", "--user needs --password (or TERN_SEND_PASSWORD)");
    if (o->auth && !o->user)
        return bad_usage("%s", "--auth needs --user and --password");
    for (size_t i = 0; i < o->nto; i++)
        if (!strchr(o->to[i], '@') && !str_ieq(o->to[i], "postmaster"))
            return bad_usage("--to %s: want local@domain", o->to[i]);
    o->color = !o->json && !color_off && isatty(STDOUT_FILENO) && !no_color_env();
    return -1;
}

int send_main(int argc, char **argv)
{
    /* a server that drops the connection must give an error from write, not kill us */
    signal(SIGPIPE, SIG_IGN);
    struct send_opts opt;
    memset(&opt, 0, sizeof opt);
    opt.timeout_s = 30;
    int rc = parse_args(argc, argv, &opt);
    char from_default[300];
    char hostname[256] = "";
    if (gethostname(hostname, sizeof hostname - 1) != 0)
        hostname[0] = '\0';
    if (rc < 0 && !opt.from) {
        const char *u = getenv("USER");
        snprintf(from_default, sizeof from_default, "%s@%s", u && u[0] ? u : "root",
                 strchr(hostname, '.') ? hostname : "localhost");
        opt.from = from_default;
    }
    if (rc < 0 && !opt.ehlo && strchr(hostname, '.'))
        opt.ehlo = hostname; /* else the local address literal, set after connect */
    if (rc >= 0) {
        free_list(opt.to, opt.nto);
        free_list(opt.headers, opt.nheaders);
        free_list(opt.xclient, opt.nxclient);
        free(opt.attach);
        return rc;
    }
    size_t msglen = 0;
    char *msg = build_message(&opt, opt.ehlo ? opt.ehlo : "localhost", &msglen);
    if (!msg) {
        free_list(opt.to, opt.nto);
        free_list(opt.headers, opt.nheaders);
        free_list(opt.xclient, opt.nxclient);
        free(opt.attach);
        return EXIT_USAGE;
    }
    unsigned port = opt.port ? opt.port : opt.tls ? 465 : opt.lmtp ? 24 : 25;

    struct out o;
    memset(&o, 0, sizeof o);
    o.json = opt.json;
    o.color = opt.color;
    o.lmtp = opt.lmtp;
    for (size_t i = 0; i < opt.nattach; i++)
        out_info(&o, "Attaching %s as %s, %zu octets (base64, RFC 2045 6.8)", opt.attach[i].path,
                 opt.attach[i].sent_type, opt.attach[i].size);
    o.t0 = mono_ms();

    struct event_base *base = NULL;
    struct dns_resolver *res = NULL;
    char err[256];
    if (!opt.server || opt.nameserver) {
        base = event_base_new();
        if (base) {
            struct dns_options dopt = {.nameserver = opt.nameserver, .timeout_ms = 2000,
                                       .tries = 2};
            res = dns_resolver_new_opts(base, &dopt, err, sizeof err);
        }
        if (!res) {
            out_error(&o, "cannot start the DNS resolver: %s", base ? err : "no event base");
            rc = EXIT_TEMP;
            goto done;
        }
    }

    if (opt.server) {
        char host[DNS_NAME_MAX + 1];
        unsigned p = port;
        if (!split_server(opt.server, host, sizeof host, &p)) {
            fprintf(stderr, "tern send: --server %s: want HOST, HOST:PORT or [IPv6]:PORT\n",
                    opt.server);
            rc = EXIT_USAGE;
            goto done;
        }
        bool next;
        rc = try_host(&opt, &o, base, res, host, opt.port ? opt.port : p, msg, msglen, &next);
    } else {
        const char *at = strrchr(opt.to[0], '@');
        const char *domain = at ? at + 1 : "";
        for (size_t i = 1; i < opt.nto; i++) {
            const char *a2 = strrchr(opt.to[i], '@');
            if (a2 && !str_ieq(a2 + 1, domain))
                out_info(&o, "note: recipients are in several domains; using the MX of %s "
                         "for all of them", domain);
        }
        out_info(&o, "Looking up the MX records of %s", domain);
        struct dns_answer mx;
        dns_wait_mx(base, res, domain, &mx);
        if (mx.status == DNS_OK) {
            for (size_t i = 0; i < mx.count; i++)
                out_info(&o, "MX %u %s", mx.mx[i].pref, mx.mx[i].host);
            rc = EXIT_TEMP;
            for (size_t i = 0; i < mx.count; i++) {
                bool next = true;
                rc = try_host(&opt, &o, base, res, mx.mx[i].host, port, msg, msglen, &next);
                if (!next)
                    break;
                if (i + 1 < mx.count)
                    out_info(&o, "%s did not give a usable session; trying the next MX",
                             mx.mx[i].host);
            }
        } else if (mx.status == DNS_NODATA) {
            out_info(&o, "%s has no MX records: using its own address (implicit MX, RFC 5321 "
                     "5.1)", domain);
            bool next;
            rc = try_host(&opt, &o, base, res, domain, port, msg, msglen, &next);
        } else if (mx.status == DNS_NULL_MX) {
            out_error(&o, "%s publishes a null MX (\"MX 0 .\", RFC 7505): it accepts no mail",
                      domain);
            rc = EXIT_REFUSED;
        } else if (mx.status == DNS_NXDOMAIN || mx.status == DNS_BADNAME) {
            out_error(&o, "the domain %s does not exist (%s)", domain,
                      dns_status_str(mx.status));
            out_explain(&o, "check the recipient address for a typo in the domain");
            rc = EXIT_REFUSED;
        } else {
            out_error(&o, "the MX lookup for %s failed temporarily: %s", domain, mx.detail);
            out_explain(&o, "the domain's DNS servers did not answer (or answered SERVFAIL): "
                        "a real MTA would retry later");
            rc = EXIT_TEMP;
        }
        dns_answer_free(&mx);
    }

done:
    if (o.delivered && (o.rcpt_perm || o.rcpt_temp))
        out_info(&o, "Result: accepted for %d of %d recipients; %d refused (they bounce), %d "
                 "deferred (a real MTA would retry them)", o.rcpt_ok,
                 o.rcpt_ok + o.rcpt_perm + o.rcpt_temp, o.rcpt_perm, o.rcpt_temp);
    else if (rc == EXIT_OK)
        out_info(&o, "Result: %s", opt.quit_after ? "stopped as asked (--quit-after), every "
                 "reply so far positive" : "the message was accepted");
    else if (rc == EXIT_REFUSED)
        out_info(&o, "Result: refused (permanent failure: the sender gets a bounce)");
    else if (rc == EXIT_TEMP)
        out_info(&o, "Result: not delivered (temporary failure or connection problem: a real "
                 "MTA would retry)");
    if (opt.json)
        print_json(&o, &opt, rc);
    fflush(stdout);
    for (size_t i = 0; i < o.n; i++) {
        free(o.v[i].text);
        free(o.v[i].explain);
    }
    free(o.v);
    if (res)
        dns_resolver_free(res);
    if (base)
        event_base_free(base);
    free(msg);
    free_list(opt.to, opt.nto);
    free_list(opt.headers, opt.nheaders);
    free_list(opt.xclient, opt.nxclient);
    free(opt.attach);
    return rc;
}
