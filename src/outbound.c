/* outbound.c - the asynchronous SMTP client (see outbound.h for the contract).
 *
 * Structure: destinations (one per route key) own a FIFO of waiting jobs and their sessions
 * (connections). A session takes one job at a time: resolve (RFC 5321 5.1 MX order, implicit
 * MX, RFC 7505 null MX), connect address after address, greeting, EHLO (HELO fallback, RFC
 * 5321 4.1.1.1 / 3.2), STARTTLS (RFC 3207) then EHLO again, AUTH for a configured relay (RFC
 * 4954, PLAIN or LOGIN, only over TLS), then transactions of at most outbound_max_rcpts
 * recipients: MAIL and every RCPT in one write when PIPELINING is offered (RFC 2920), then
 * DATA with dot-stuffing or one BDAT LAST chunk (RFC 3030); 8-bit content for a server
 * without 8BITMIME is converted to quoted-printable first (RFC 6152 3, mime8.c). When the
 * job is done the connection serves the next waiting job of the destination, or waits idle
 * for a few seconds (RSET checks it before reuse), then QUIT.
 *
 * Failure classes: a problem with the connection or the server as a whole (refused, timeout,
 * lost, 4xx/5xx greeting or EHLO, TLS required but missing) moves the undecided recipients
 * on to the next address and the next MX host; a reply to MAIL, RCPT or the data decides for
 * the recipients it concerns. When every host is used up, undecided recipients are deferred
 * if any failure was temporary, else failed. Timeouts follow RFC 5321 4.5.3.2.
 *
 * TLS policy per route (config.h): none, may (RFC 7435: a failed handshake is retried in
 * clear), encrypt, verify. Under verify the chain must reach a trusted CA (outbound_tls_ca_file
 * or the system store) and the certificate must name the MX host or the next-hop domain (a
 * transport's or smarthost's host name; RFC 6125 via X509_VERIFY_PARAM_set1_host); the check
 * is made after the handshake and before any command, so a failure is logged with OpenSSL's
 * reason, the server gets nothing but the TLS close, and the next address is tried. A
 * requirement not met is a temporary failure (4.7.4 no STARTTLS, 4.7.5 handshake or
 * certificate): the mail waits, it is never sent in clear. */
#include "outbound.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bounce.h"
#include "dns.h"
#include "log.h"
#include "smtp_reply.h"
#include "util.h"

#define MAX_ADDRS_PER_HOST 8     /* addresses tried per MX host */
#define MAX_CONNECT_TRIES 10     /* connections tried per job attempt (all hosts) */
#define DATA_CHUNK 65536         /* file read per refill */
#define WRITE_LOWAT 65536        /* refill when the output buffer drains below this */
#define INPUT_LINE_MAX (SMTP_REPLY_LINE_MAX * 2)

enum sstate {
    S_NEW,
    S_RESOLVE_MX,
    S_RESOLVE_HOST,
    S_CONNECT,
    S_GREETING,
    S_EHLO,
    S_HELO,
    S_STARTTLS,
    S_TLS_HANDSHAKE,
    S_AUTH,           /* AUTH PLAIN with initial response, or AUTH LOGIN step 1 */
    S_AUTH_USER,      /* AUTH LOGIN: sent the user name */
    S_AUTH_PASS,      /* AUTH LOGIN: sent the password */
    S_RSET_REUSE,     /* checking an idle connection before reuse */
    S_TXN,            /* MAIL and RCPT replies */
    S_DATA,           /* waiting for 354 */
    S_DATA_BODY,      /* streaming the content */
    S_DATA_END,       /* waiting for the final reply */
    S_RSET,           /* RSET after a transaction without accepted recipients */
    S_IDLE,
    S_QUIT,
};

static const char *const state_what[] = {
    [S_NEW] = "start",
    [S_RESOLVE_MX] = "MX lookup",
    [S_RESOLVE_HOST] = "address lookup",
    [S_CONNECT] = "connect",
    [S_GREETING] = "greeting",
    [S_EHLO] = "EHLO",
    [S_HELO] = "HELO",
    [S_STARTTLS] = "STARTTLS",
    [S_TLS_HANDSHAKE] = "TLS handshake",
    [S_AUTH] = "AUTH",
    [S_AUTH_USER] = "AUTH",
    [S_AUTH_PASS] = "AUTH",
    [S_RSET_REUSE] = "RSET",
    [S_TXN] = "MAIL FROM/RCPT TO",
    [S_DATA] = "DATA",
    [S_DATA_BODY] = "message content",
    [S_DATA_END] = "end of data",
    [S_RSET] = "RSET",
    [S_IDLE] = "idle",
    [S_QUIT] = "QUIT",
};

struct dest;

struct mxhost {
    char name[ROUTE_NAME_MAX];
    unsigned pref;
};

struct session {
    int inuse;                     /* callbacks on the stack: free only when they return */
    bool zombie;                   /* freed while in use */
    struct outbound *ob;
    struct dest *dest;
    struct session *next;          /* in dest->sessions */
    struct ob_job *job;
    enum sstate st;
    struct event *timer;

    /* where to go */
    struct mxhost *hosts;
    size_t nhosts, hi;
    bool implicit_mx;
    struct dns_addr *addrs;
    size_t naddrs, ai;
    int connects;                  /* connections tried for this job */
    struct dns_query *q;
    bool any_temp;                 /* some failure for this job was temporary */
    char last_err[OB_REPLY_MAX];   /* the latest failure, for undecided recipients */
    bool last_remote;
    char last_mta[ROUTE_NAME_MAX];
    char last_relay[OB_RELAY_MAX];

    /* the connection */
    struct bufferevent *bev;
    bool tls;
    char tls_desc[OB_TLS_MAX];     /* for the log: "TLSv1.3/CIPHER/verified", "" in clear */
    bool no_tls;                   /* retrying this address in clear after a failed handshake */
    char peer_name[ROUTE_NAME_MAX];
    char peer_ip[48];
    char relay[OB_RELAY_MAX];
    struct smtp_reply reply;
    struct smtp_caps caps;
    bool have_caps;
    bool pipelining, size_ok, eightbit, smtputf8, binarymime, chunking, dsn, starttls;
    unsigned long long size_limit;
    int txns;                      /* transactions done on this connection */

    /* the current transaction */
    size_t t0, t1;                 /* recipients [t0, t1) of the job */
    size_t *grp;                   /* the group: job indices of the RCPTs sent, in order */
    size_t ngrp;
    size_t sent, replied;          /* commands of the MAIL/RCPT group sent / answered */
    size_t naccepted;
    bool mail_failed;
    bool use_bdat;
    struct mime8_params params;
    char *conv;                    /* the content converted to 7-bit (RFC 6152 3), or NULL */
    size_t conv_len;
    off_t pos;                     /* content bytes sent */
    struct dotstuff ds;
};

struct dest {
    char key[sizeof(((struct route *)0)->key)];
    struct dest *next;
    struct session *sessions;
    size_t nsessions;
    struct ob_job *wait_head, *wait_tail;
    bool fd_dest;                  /* an ATRN connection (outbound_attach_fd) */
    int fd;                        /* ... not taken by its session yet, else -1 */
};

struct cred {
    const struct outbound_dest_cfg *d;
    char *pass;                    /* NULL: the file could not be read */
};

struct outbound {
    const struct config *cfg;
    struct event_base *base;
    struct dns_resolver *dns;
    SSL_CTX *ssl_ctx;
    struct dest *dests;
    size_t nsessions;
    size_t njobs;
    struct event *kick;
    struct cred *creds;
    size_t ncreds;
    bool aborting;
};

/* ---- small helpers ---------------------------------------------------------------------- */

static int cfg_or(int v, int def)
{
    return v > 0 ? v : def;
}

static size_t cfgz_or(size_t v, size_t def)
{
    return v > 0 ? v : def;
}

static void arm(struct session *s, int seconds)
{
    struct timeval tv = {seconds, 0};
    evtimer_add(s->timer, &tv);
}

static int t_command(const struct session *s)
{
    return cfg_or(s->ob->cfg->outbound_timeout_command, 300);
}

/* Send one command line (CRLF added). */
static void send_line(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void send_line(struct session *s, const char *fmt, ...)
{
    char line[SMTP_CMDLINE_MAX * 4];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof line - 3)
        n = (int)(sizeof line - 3);
    log_debug("smtp client %s >>> %.*s", s->relay, n, line);
    line[n++] = '\r';
    line[n++] = '\n';
    bufferevent_write(s->bev, line, (size_t)n);
}

/* The reply on one line: the first line as received, then the text of the others. */
static void reply_text(const struct smtp_reply *r, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->nlines && n + 1 < cap; i++) {
        const char *t = i == 0 ? r->lines[0] : smtp_reply_line_text(r, i);
        if (i > 0 && n + 1 < cap)
            out[n++] = ' ';
        for (; *t && n + 1 < cap; t++)
            out[n++] = ((unsigned char)*t < 0x20 || *t == 0x7f) ? ' ' : *t;
    }
    out[n] = '\0';
    /* "250-PIPELINING" style separators on the first line read better as a space */
    if (n > 3 && out[3] == '-')
        out[3] = ' ';
}

static void reply_esc(const struct smtp_reply *r, char *out, size_t cap)
{
    if (r->esc[0] && r->esc_class == r->code / 100)
        str_copy(out, cap, r->esc);
    else
        str_copy(out, cap, dsn_default_status(r->code));
}

/* Our own reason "4.4.1 text": split off the status code. */
static void own_esc(const char *reason, char *out, size_t cap)
{
    size_t n = strcspn(reason, " ");
    if (n == 0 || n >= cap)
        n = 0;
    memcpy(out, reason, n);
    out[n] = '\0';
    if (n == 0)
        str_copy(out, cap, reason[0] == '5' ? "5.0.0" : "4.0.0");
}

/* ---- recipients' results ---------------------------------------------------------------- */

static void rcpt_set(struct session *s, struct ob_rcpt *r, enum ob_status st, const char *text,
                     const char *esc, bool remote)
{
    r->status = st;
    str_copy(r->reply, sizeof r->reply, text);
    str_copy(r->esc, sizeof r->esc, esc);
    r->remote = remote;
    str_copy(r->relay, sizeof r->relay, s->relay[0] ? s->relay : "none");
    str_copy(r->mta, sizeof r->mta, remote ? s->peer_name : "");
    str_copy(r->tls, sizeof r->tls, s->tls_desc[0] ? s->tls_desc : "none");
    r->peer_dsn = s->dsn;
    r->accepted = 0;
}

static void rcpt_set_reply(struct session *s, struct ob_rcpt *r, const struct smtp_reply *rep)
{
    char text[OB_REPLY_MAX], esc[16];
    reply_text(rep, text, sizeof text);
    reply_esc(rep, esc, sizeof esc);
    enum ob_status st = rep->code < 400 ? OB_SENT : rep->code < 500 ? OB_DEFERRED : OB_FAILED;
    rcpt_set(s, r, st, text, esc, true);
}

/* ---- destinations ----------------------------------------------------------------------- */

static struct dest *dest_get(struct outbound *ob, const char *key)
{
    for (struct dest *d = ob->dests; d; d = d->next)
        if (strcmp(d->key, key) == 0)
            return d;
    struct dest *d = xcalloc(1, sizeof *d);
    str_copy(d->key, sizeof d->key, key);
    d->next = ob->dests;
    ob->dests = d;
    return d;
}

static void dest_release(struct dest *d)
{
    if (d->fd_dest && d->fd >= 0)
        close(d->fd);
    free(d);
}

static void dest_maybe_free(struct outbound *ob, struct dest *d)
{
    if (d->sessions || d->wait_head || ob->aborting)
        return;
    for (struct dest **pp = &ob->dests; *pp; pp = &(*pp)->next) {
        if (*pp == d) {
            *pp = d->next;
            dest_release(d);
            return;
        }
    }
}

static struct ob_job *dest_pop(struct dest *d)
{
    struct ob_job *j = d->wait_head;
    if (j) {
        d->wait_head = j->next;
        if (!d->wait_head)
            d->wait_tail = NULL;
        j->next = NULL;
    }
    return j;
}

static void schedule_kick(struct outbound *ob)
{
    static const struct timeval zero = {0, 0};
    if (!ob->aborting)
        evtimer_add(ob->kick, &zero);
}

/* ---- session lifetime ------------------------------------------------------------------- */

static void session_start_job(struct session *s, struct ob_job *job);
static void session_resolve(struct session *s);
static void next_host(struct session *s);
static void try_addr(struct session *s);
static void readcb(struct bufferevent *bev, void *arg);
static void writecb(struct bufferevent *bev, void *arg);
static void eventcb(struct bufferevent *bev, short what, void *arg);

static void close_conn(struct session *s)
{
    if (s->bev) {
        bufferevent_free(s->bev); /* also frees the SSL (BEV_OPT_CLOSE_ON_FREE) */
        s->bev = NULL;
    }
    s->tls = false;
    s->tls_desc[0] = '\0';
    s->have_caps = false;
    smtp_caps_free(&s->caps);
    smtp_reply_free(&s->reply);
    s->txns = 0;
    s->relay[0] = '\0';
    s->peer_name[0] = '\0';
    s->peer_ip[0] = '\0';
    s->pipelining = s->size_ok = s->eightbit = s->smtputf8 = s->binarymime = s->chunking =
        s->dsn = s->starttls = false;
    s->size_limit = 0;
}

static void session_free(struct session *s)
{
    struct outbound *ob = s->ob;
    struct dest *d = s->dest;
    if (s->q)
        dns_cancel(s->q);
    close_conn(s);
    if (s->timer)
        event_free(s->timer);
    free(s->hosts);
    free(s->addrs);
    free(s->grp);
    free(s->conv);
    for (struct session **pp = &d->sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    d->nsessions--;
    ob->nsessions--;
    s->timer = NULL;
    s->hosts = NULL;
    s->addrs = NULL;
    s->grp = NULL;
    s->q = NULL;
    s->job = NULL;
    if (s->inuse > 0)
        s->zombie = true; /* the callback that holds it frees it (unref) */
    else
        free(s);
    dest_maybe_free(ob, d);
    schedule_kick(ob); /* a slot is free: a waiting job may start */
}

/* Callbacks hold the session while they run: anything they call may end it. */
static void ref(struct session *s)
{
    s->inuse++;
}

/* Returns false if the session ended meanwhile (and is now freed). */
static bool unref(struct session *s)
{
    if (--s->inuse == 0 && s->zombie) {
        free(s);
        return false;
    }
    return !s->zombie;
}

static struct session *session_new(struct outbound *ob, struct dest *d);
static void timer_cb(evutil_socket_t fd, short what, void *arg);

/* The job is finished (every recipient decided, or the engine stops): report it. */
static void job_complete(struct session *s)
{
    struct ob_job *job = s->job;
    s->job = NULL;
    free(s->conv);
    s->conv = NULL;
    free(s->hosts);
    s->hosts = NULL;
    s->nhosts = s->hi = 0;
    free(s->addrs);
    s->addrs = NULL;
    s->naddrs = s->ai = 0;
    s->any_temp = false;
    s->last_err[0] = '\0';
    s->connects = 0;
    s->ob->njobs--;
    job->done(job, job->arg);
}

/* After a job: take the destination's next job on this connection, or wait idle. */
static void session_after_job(struct session *s)
{
    struct outbound *ob = s->ob;
    if (!s->bev || ob->aborting) {
        session_free(s);
        return;
    }
    struct ob_job *next = dest_pop(s->dest);
    if (next) {
        session_start_job(s, next);
        return;
    }
    if (s->dest->fd_dest) { /* ATRN: every held message is through; end the session */
        s->st = S_QUIT;
        send_line(s, "QUIT");
        arm(s, t_command(s));
        return;
    }
    s->st = S_IDLE;
    arm(s, cfg_or(ob->cfg->outbound_idle, 5));
}

/* Every host is used up (or the destination cannot be reached at all): decide the rest. */
static void job_exhausted(struct session *s)
{
    if (s->last_err[0] == '\0') {
        str_copy(s->last_err, sizeof s->last_err, "4.4.0 no server could be reached");
        s->any_temp = true;
    }
    char esc[16];
    if (s->last_remote) {
        /* keep the server's words */
        size_t n = strspn(s->last_err, "0123456789");
        const char *e = s->last_err + n + (s->last_err[n] == ' ');
        int c1, c2, c3;
        size_t el = smtp_esc_parse(e, &c1, &c2, &c3);
        if (el > 0 && el < sizeof esc) {
            memcpy(esc, e, el);
            esc[el] = '\0';
        } else {
            str_copy(esc, sizeof esc, s->last_err[0] == '5' ? "5.0.0" : "4.0.0");
        }
    } else {
        own_esc(s->last_err, esc, sizeof esc);
    }
    enum ob_status st = s->any_temp ? OB_DEFERRED : OB_FAILED;
    if (st == OB_DEFERRED && esc[0] == '5')
        esc[0] = '4'; /* a permanent code on a deferral would confuse the DSN */
    for (size_t i = 0; i < s->job->nrcpts; i++) {
        struct ob_rcpt *r = &s->job->rcpts[i];
        if (r->status != OB_PENDING)
            continue;
        r->status = st;
        str_copy(r->reply, sizeof r->reply, s->last_err);
        str_copy(r->esc, sizeof r->esc, esc);
        r->remote = s->last_remote;
        str_copy(r->relay, sizeof r->relay, s->last_relay[0] ? s->last_relay : "none");
        str_copy(r->mta, sizeof r->mta, s->last_remote ? s->last_mta : "");
        str_copy(r->tls, sizeof r->tls, "none");
        r->peer_dsn = false;
        r->accepted = 0;
    }
    /* Jobs waiting for this destination would meet the same wall: when no server could be
     * reached at all, they are deferred at once instead of each waiting for the timeouts.
     * (A permanent DNS answer, e.g. a null MX, is just as final for them.) */
    bool unreachable = s->connects == 0 || !s->last_remote;
    struct dest *d = s->dest;
    struct ob_job *w;
    while (unreachable && (w = dest_pop(d)) != NULL) {
        for (size_t i = 0; i < w->nrcpts; i++) {
            struct ob_rcpt *r = &w->rcpts[i];
            r->status = st;
            str_copy(r->reply, sizeof r->reply, s->last_err);
            str_copy(r->esc, sizeof r->esc, esc);
            r->remote = false;
            str_copy(r->relay, sizeof r->relay, "none");
            r->mta[0] = '\0';
            str_copy(r->tls, sizeof r->tls, "none");
        }
        s->ob->njobs--;
        w->done(w, w->arg);
    }
    job_complete(s);
    session_free(s);
}

/* Remember a failure of this host/address for the final verdict. */
static void note_failure(struct session *s, bool temp, const char *text, bool remote)
{
    if (temp)
        s->any_temp = true;
    str_copy(s->last_err, sizeof s->last_err, text);
    s->last_remote = remote;
    str_copy(s->last_mta, sizeof s->last_mta, s->peer_name);
    str_copy(s->last_relay, sizeof s->last_relay, s->relay);
}

/* The connection or the server failed as a whole: close it and go on with the next
 * address (recipients accepted in an unfinished transaction are undecided again). */
static void conn_failed(struct session *s, bool temp, const char *text, bool remote)
{
    log_info("smtp client qid=%s relay=%s: %s", s->job ? s->job->msg->qid : "-",
             s->relay[0] ? s->relay : s->dest->key, text);
    note_failure(s, temp, text, remote);
    evtimer_del(s->timer);
    if (!s->job) { /* an idle connection went away */
        close_conn(s);
        session_free(s);
        return;
    }
    for (size_t i = 0; i < s->job->nrcpts; i++)
        s->job->rcpts[i].accepted = 0;
    bool retry_clear = s->st == S_TLS_HANDSHAKE && s->job->route.tls == TLS_POLICY_OPPORTUNISTIC;
    close_conn(s);
    if (s->nhosts == 0) {
        /* The connection came from the previous job: this job has not looked up its
         * servers yet, so it starts over like a new one. */
        session_resolve(s);
        return;
    }
    if (retry_clear && !s->no_tls) {
        /* RFC 7435: opportunistic TLS that fails is retried without it, once per address. */
        s->no_tls = true;
        try_addr(s);
        return;
    }
    s->no_tls = false;
    s->ai++;
    try_addr(s);
}

/* Close without a job (idle timeout, QUIT answered). */
static void session_close(struct session *s)
{
    close_conn(s);
    session_free(s);
}

/* ---- connecting ------------------------------------------------------------------------- */

static void mx_cb(const struct dns_result *res, void *arg);
static void addr_cb(const struct dns_result *res, void *arg);

static bool is_self(const struct session *s, const char *host)
{
    return s->ob->cfg->hostname && str_ieq(host, s->ob->cfg->hostname);
}

static void mx_cb(const struct dns_result *res, void *arg)
{
    struct session *s = arg;
    s->q = NULL;
    const char *domain = s->job->route.domain;
    char text[OB_REPLY_MAX];
    switch (res->status) {
    case DNS_OK: {
        s->hosts = xcalloc(res->count ? res->count : 1, sizeof *s->hosts);
        s->nhosts = 0;
        /* RFC 5321 5.1: if we are in the list, only hosts more preferred than us count. */
        unsigned self_pref = 0;
        bool self = false;
        for (size_t i = 0; i < res->count; i++) {
            if (res->mx[i].host[0] && is_self(s, res->mx[i].host) &&
                (!self || res->mx[i].pref < self_pref)) {
                self = true;
                self_pref = res->mx[i].pref;
            }
        }
        for (size_t i = 0; i < res->count; i++) {
            if (!res->mx[i].host[0] || (self && res->mx[i].pref >= self_pref))
                continue;
            if (!str_copy(s->hosts[s->nhosts].name, sizeof s->hosts[s->nhosts].name,
                          res->mx[i].host))
                continue;
            s->hosts[s->nhosts++].pref = res->mx[i].pref;
        }
        if (s->nhosts == 0) {
            snprintf(text, sizeof text, "5.4.6 mail for %s loops back to myself (%s is its "
                     "best MX host)", domain, s->ob->cfg->hostname);
            note_failure(s, false, text, false);
            job_exhausted(s);
            return;
        }
        break;
    }
    case DNS_NODATA:
        /* RFC 5321 5.1: no MX records: the domain itself is the implicit MX. */
        s->hosts = xcalloc(1, sizeof *s->hosts);
        str_copy(s->hosts[0].name, sizeof s->hosts[0].name, domain);
        s->nhosts = 1;
        s->implicit_mx = true;
        break;
    case DNS_NULL_MX:
        snprintf(text, sizeof text, "5.1.10 domain %s accepts no mail (null MX, RFC 7505)",
                 domain);
        note_failure(s, false, text, false);
        job_exhausted(s);
        return;
    case DNS_NXDOMAIN:
    case DNS_BADNAME:
        snprintf(text, sizeof text, "5.1.2 domain %s not found (MX lookup: %s)", domain,
                 res->detail && res->detail[0] ? res->detail : dns_status_str(res->status));
        note_failure(s, false, text, false);
        job_exhausted(s);
        return;
    case DNS_TEMPFAIL:
    default:
        snprintf(text, sizeof text, "4.4.3 MX lookup of %s failed: %s", domain,
                 res->detail && res->detail[0] ? res->detail : "temporary DNS failure");
        note_failure(s, true, text, false);
        job_exhausted(s);
        return;
    }
    s->hi = 0;
    next_host(s);
}

static void addr_cb(const struct dns_result *res, void *arg)
{
    struct session *s = arg;
    s->q = NULL;
    const char *host = s->hosts[s->hi].name;
    char text[OB_REPLY_MAX];
    if (res->status == DNS_OK && res->count > 0) {
        size_t n = res->count < MAX_ADDRS_PER_HOST ? res->count : MAX_ADDRS_PER_HOST;
        free(s->addrs);
        s->addrs = xcalloc(n, sizeof *s->addrs);
        memcpy(s->addrs, res->addr, n * sizeof *s->addrs);
        s->naddrs = n;
        s->ai = 0;
        try_addr(s);
        return;
    }
    if (res->status == DNS_TEMPFAIL) {
        snprintf(text, sizeof text, "4.4.3 address lookup of %s failed: %s", host,
                 res->detail && res->detail[0] ? res->detail : "temporary DNS failure");
        note_failure(s, true, text, false);
    } else if (s->job->route.kind == ROUTE_HOST) {
        /* A configured relay (transport, smarthost) that does not resolve is our
         * configuration's problem, not the recipient's: defer, do not bounce. */
        snprintf(text, sizeof text, "4.4.3 relay host %s not found (%s)", host,
                 res->detail && res->detail[0] ? res->detail : dns_status_str(res->status));
        note_failure(s, true, text, false);
    } else if (s->implicit_mx) {
        snprintf(text, sizeof text, "5.1.2 domain %s has no MX and no address records",
                 s->job->route.domain);
        note_failure(s, false, text, false);
    } else {
        snprintf(text, sizeof text, "5.4.4 host %s not found (%s)", host,
                 res->detail && res->detail[0] ? res->detail : dns_status_str(res->status));
        note_failure(s, false, text, false);
    }
    s->hi++;
    next_host(s);
}

static void next_host(struct session *s)
{
    if (s->hi >= s->nhosts || s->connects >= MAX_CONNECT_TRIES) {
        job_exhausted(s);
        return;
    }
    s->st = S_RESOLVE_HOST;
    s->q = dns_lookup_addr(s->ob->dns, s->hosts[s->hi].name, DNS_WANT_ANY, addr_cb, s);
    if (!s->q) {
        note_failure(s, true, "4.4.3 resolver unavailable", false);
        job_exhausted(s);
    }
}

static void try_addr(struct session *s)
{
    struct outbound *ob = s->ob;
    while (s->ai < s->naddrs) {
        if (s->connects >= MAX_CONNECT_TRIES)
            break;
        struct dns_addr *a = &s->addrs[s->ai];
        struct sockaddr_storage ss = a->sa;
        unsigned short port = s->job->route.port ? s->job->route.port : 25;
        if (a->family == AF_INET6)
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
        else
            ((struct sockaddr_in *)&ss)->sin_port = htons(port);
        str_copy(s->peer_name, sizeof s->peer_name, s->hosts[s->hi].name);
        str_copy(s->peer_ip, sizeof s->peer_ip, a->text);
        snprintf(s->relay, sizeof s->relay, "%s[%s]:%u", s->peer_name, s->peer_ip,
                 (unsigned)port);
        s->connects++;
        s->bev = bufferevent_socket_new(ob->base, -1,
                                        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (!s->bev) {
            note_failure(s, true, "4.3.0 cannot create a socket", false);
            s->ai++;
            continue;
        }
        bufferevent_setcb(s->bev, readcb, writecb, eventcb, s);
        s->st = S_CONNECT;
        if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&ss, a->salen) < 0) {
            char text[OB_REPLY_MAX];
            snprintf(text, sizeof text, "4.4.1 connect to %s failed: %s", s->relay,
                     strerror(errno));
            note_failure(s, true, text, false);
            close_conn(s);
            s->ai++;
            continue;
        }
        bufferevent_enable(s->bev, EV_READ | EV_WRITE);
        arm(s, cfg_or(ob->cfg->outbound_timeout_connect, 30));
        return;
    }
    s->hi++;
    next_host(s);
}

/* Begin a job on a session without a connection: find the servers. */
static void session_resolve(struct session *s)
{
    const struct route *rt = &s->job->route;
    free(s->hosts);
    s->hosts = NULL;
    s->nhosts = s->hi = 0;
    s->implicit_mx = false;
    s->no_tls = false;
    if (rt->kind == ROUTE_ODMR) {
        struct dest *d = s->dest;
        if (!d->fd_dest || d->fd < 0) {
            /* Held mail goes only over the customer's connection, and that one is gone (or
             * refused the session): keep it queued, with the customer's words if any. */
            if (!s->last_err[0])
                note_failure(s, true, d->fd_dest ? "4.4.2 the ODMR customer's connection was "
                                                   "lost"
                                                 : "4.4.0 held for ODMR (RFC 2645): waiting "
                                                   "for ATRN",
                             false);
            s->any_temp = true;
            job_exhausted(s);
            return;
        }
        /* No deferred callbacks: the worker closes its end when it stops, often just as we
         * abort; a deferred EOF callback would then hold a reference to the bufferevent that
         * nobody drops once the loop has ended (a leak at exit). */
        s->bev = bufferevent_socket_new(s->ob->base, d->fd, BEV_OPT_CLOSE_ON_FREE);
        if (!s->bev) {
            note_failure(s, true, "4.3.0 cannot use the ODMR connection", false);
            job_exhausted(s);
            return;
        }
        d->fd = -1;
        s->connects++;
        str_copy(s->peer_name, sizeof s->peer_name, rt->domain);
        snprintf(s->relay, sizeof s->relay, "odmr[%s]", rt->domain);
        bufferevent_setcb(s->bev, readcb, writecb, eventcb, s);
        bufferevent_enable(s->bev, EV_READ | EV_WRITE);
        s->st = S_GREETING; /* the customer speaks first, as any SMTP server (RFC 2645 4.3) */
        arm(s, t_command(s));
        return;
    }
    if (rt->kind == ROUTE_MX) {
        if (!s->ob->dns) {
            note_failure(s, true, "4.4.3 no resolver", false);
            job_exhausted(s);
            return;
        }
        s->st = S_RESOLVE_MX;
        s->q = dns_lookup_mx(s->ob->dns, rt->domain, mx_cb, s);
        if (!s->q) {
            note_failure(s, true, "4.4.3 resolver unavailable", false);
            job_exhausted(s);
        }
        return;
    }
    s->hosts = xcalloc(1, sizeof *s->hosts);
    str_copy(s->hosts[0].name, sizeof s->hosts[0].name, rt->host);
    s->nhosts = 1;
    if (rt->literal) {
        struct dns_addr a;
        memset(&a, 0, sizeof a);
        struct sockaddr_in *v4 = (struct sockaddr_in *)&a.sa;
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a.sa;
        if (inet_pton(AF_INET, rt->host, &v4->sin_addr) == 1) {
            a.family = v4->sin_family = AF_INET;
            a.salen = sizeof *v4;
        } else if (inet_pton(AF_INET6, rt->host, &v6->sin6_addr) == 1) {
            a.family = v6->sin6_family = AF_INET6;
            a.salen = sizeof *v6;
        } else {
            note_failure(s, false, "5.4.4 bad address literal", false);
            job_exhausted(s);
            return;
        }
        str_copy(a.text, sizeof a.text, rt->host);
        s->addrs = xmalloc(sizeof a);
        s->addrs[0] = a;
        s->naddrs = 1;
        s->ai = 0;
        try_addr(s);
        return;
    }
    if (!s->ob->dns) {
        note_failure(s, true, "4.4.3 no resolver", false);
        job_exhausted(s);
        return;
    }
    next_host(s);
}

/* ---- the SMTP dialogue ------------------------------------------------------------------ */

static void begin_txn(struct session *s);
static void ready(struct session *s);

static void send_ehlo(struct session *s)
{
    s->st = S_EHLO;
    send_line(s, "EHLO %s", s->ob->cfg->hostname ? s->ob->cfg->hostname : "localhost");
    arm(s, t_command(s));
}

static void read_caps(struct session *s)
{
    s->pipelining = smtp_caps_find(&s->caps, "PIPELINING") != NULL;
    s->eightbit = smtp_caps_find(&s->caps, "8BITMIME") != NULL;
    s->smtputf8 = smtp_caps_find(&s->caps, "SMTPUTF8") != NULL;
    s->binarymime = smtp_caps_find(&s->caps, "BINARYMIME") != NULL;
    s->chunking = smtp_caps_find(&s->caps, "CHUNKING") != NULL;
    s->dsn = smtp_caps_find(&s->caps, "DSN") != NULL;
    s->starttls = smtp_caps_find(&s->caps, "STARTTLS") != NULL;
    s->size_ok = smtp_caps_size(&s->caps, &s->size_limit);
}

static const struct cred *find_cred(const struct outbound *ob, const struct outbound_dest_cfg *d)
{
    for (size_t i = 0; d && i < ob->ncreds; i++)
        if (ob->creds[i].d == d)
            return &ob->creds[i];
    return NULL;
}

/* After EHLO/HELO (and STARTTLS): TLS policy, AUTH, then the first transaction. */
static void after_hello(struct session *s)
{
    const struct route *rt = &s->job->route;
    if (!s->tls && s->starttls && rt->tls != TLS_POLICY_NONE && !s->no_tls && s->ob->ssl_ctx) {
        s->st = S_STARTTLS;
        send_line(s, "STARTTLS");
        arm(s, t_command(s));
        return;
    }
    if (!s->tls && rt->tls >= TLS_POLICY_REQUIRED) {
        conn_failed(s, true,
                    s->starttls ? "4.7.5 TLS is required but the handshake failed"
                                : "4.7.4 TLS is required but the server does not offer STARTTLS",
                    false);
        return;
    }
    const struct outbound_dest_cfg *d = rt->dest;
    if (d && d->auth_user) {
        const struct cred *c = find_cred(s->ob, d);
        if (!c || !c->pass) {
            conn_failed(s, true, "4.7.0 the password file for AUTH could not be read", false);
            return;
        }
        if (!s->tls) {
            conn_failed(s, true, "4.7.0 refusing to send AUTH credentials without TLS", false);
            return;
        }
        bool plain = smtp_caps_has_auth(&s->caps, "PLAIN");
        bool login = smtp_caps_has_auth(&s->caps, "LOGIN");
        if (plain) {
            /* RFC 4616: authzid NUL authcid NUL passwd, with an initial response (RFC 4954). */
            size_t ul = strlen(d->auth_user), pl = strlen(c->pass);
            unsigned char *raw = xmalloc(ul + pl + 2);
            raw[0] = '\0';
            memcpy(raw + 1, d->auth_user, ul);
            raw[ul + 1] = '\0';
            memcpy(raw + ul + 2, c->pass, pl);
            char *b64 = xmalloc(4 * ((ul + pl + 4) / 3) + 4);
            smtp_b64_encode(raw, ul + pl + 2, b64);
            s->st = S_AUTH;
            log_debug("smtp client %s >>> AUTH PLAIN (credentials)", s->relay);
            bufferevent_write(s->bev, "AUTH PLAIN ", 11);
            bufferevent_write(s->bev, b64, strlen(b64));
            bufferevent_write(s->bev, "\r\n", 2);
            explicit_bzero(raw, ul + pl + 2);
            explicit_bzero(b64, strlen(b64));
            free(raw);
            free(b64);
            arm(s, t_command(s));
            return;
        }
        if (login) {
            s->st = S_AUTH;
            send_line(s, "AUTH LOGIN");
            arm(s, t_command(s));
            return;
        }
        conn_failed(s, true, "4.7.0 the server offers no AUTH mechanism tern supports "
                             "(PLAIN, LOGIN)", false);
        return;
    }
    ready(s);
}

static void send_b64(struct session *s, const char *text)
{
    size_t n = strlen(text);
    char *b64 = xmalloc(4 * ((n + 2) / 3) + 4);
    smtp_b64_encode((const unsigned char *)text, n, b64);
    bufferevent_write(s->bev, b64, strlen(b64));
    bufferevent_write(s->bev, "\r\n", 2);
    explicit_bzero(b64, strlen(b64));
    free(b64);
}

/* The names the certificate may carry under "verify": for an MX route the MX host name and
 * the recipient's domain, the next-hop domain (RFC 7672 3.2.3 accepts both); for a fixed
 * next hop (transport, smarthost) its host name only, so a connection verified once serves
 * every domain routed there (they share a route key). An IP address is checked as one. The
 * chain itself is verified by OpenSSL against the context's trust store. */
static int set_verify_names(struct session *s, SSL *ssl)
{
    const struct route *rt = &s->job->route;
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    if (rt->literal)
        return X509_VERIFY_PARAM_set1_ip_asc(param, s->peer_ip) == 1 ? 0 : -1;
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (X509_VERIFY_PARAM_set1_host(param, s->peer_name, 0) != 1)
        return -1;
    if (rt->kind == ROUTE_MX && !str_ieq(rt->domain, s->peer_name) &&
        X509_VERIFY_PARAM_add1_host(param, rt->domain, 0) != 1)
        return -1;
    return 0;
}

/* After the handshake: describe the connection for the log, and under "verify" check what
 * OpenSSL found. Returns false (with the reason in why) when the certificate is refused. */
static bool tls_accept_peer(struct session *s, char *why, size_t whycap)
{
    SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
    bool verify = s->job && s->job->route.tls == TLS_POLICY_VERIFY;
    bool ok = !verify;
    if (ssl && verify) {
        const X509 *cert = SSL_get0_peer_certificate(ssl);
        long res = SSL_get_verify_result(ssl);
        if (!cert)
            snprintf(why, whycap, "4.7.5 %s sent no certificate", s->relay);
        else if (res != X509_V_OK)
            snprintf(why, whycap, "4.7.5 certificate of %s not verified: %s", s->relay,
                     X509_verify_cert_error_string(res));
        else
            ok = true;
    }
    snprintf(s->tls_desc, sizeof s->tls_desc, "%s/%s/%s", ssl ? SSL_get_version(ssl) : "?",
             ssl ? SSL_get_cipher_name(ssl) : "?", verify && ok ? "verified" : "unverified");
    return ok;
}

static void start_tls(struct session *s)
{
    /* Anything the server sent after its 220 would be read as if it came over TLS: a
     * response injection (cf. CVE-2011-0411). Drop it. */
    struct evbuffer *in = bufferevent_get_input(s->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    SSL *ssl = SSL_new(s->ob->ssl_ctx);
    if (!ssl) {
        conn_failed(s, true, "4.7.5 cannot create a TLS session", false);
        return;
    }
    if (s->peer_name[0] && !s->job->route.literal)
        SSL_set_tlsext_host_name(ssl, s->peer_name);
    if (s->job->route.tls == TLS_POLICY_VERIFY && set_verify_names(s, ssl) < 0) {
        SSL_free(ssl);
        conn_failed(s, true, "4.7.5 cannot set the names to verify the certificate against",
                    false);
        return;
    }
    struct bufferevent *tb = bufferevent_openssl_filter_new(
        s->ob->base, s->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!tb) {
        SSL_free(ssl);
        conn_failed(s, true, "4.7.5 cannot start TLS", false);
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
    s->bev = tb;
    bufferevent_setcb(tb, readcb, writecb, eventcb, s);
    bufferevent_enable(tb, EV_READ | EV_WRITE);
    s->st = S_TLS_HANDSHAKE;
    arm(s, t_command(s));
}

/* Connected, greeted, maybe TLS and AUTH: run the job's transactions. */
static void ready(struct session *s)
{
    s->t1 = 0;
    begin_txn(s);
}

static bool has_non_ascii(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s >= 0x80)
            return true;
    return false;
}

/* Read the content once for the 8-bit checks (only when the peer lacks an extension). */
static void scan_content(struct ob_msg *m)
{
    if (m->scanned)
        return;
    mime8_scan_init(&m->scan);
    char *buf = xmalloc(DATA_CHUNK);
    off_t pos = 0;
    m->scanned = 1;
    while (pos < m->size) {
        size_t want = m->size - pos < DATA_CHUNK ? (size_t)(m->size - pos) : DATA_CHUNK;
        ssize_t n = pread(m->fd, buf, want, m->offset + pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            m->scanned = -1;
            break;
        }
        mime8_scan_feed(&m->scan, buf, (size_t)n);
        pos += n;
    }
    free(buf);
}

/* The content as it goes out: converted, or the queue file's. */
static off_t content_size(const struct session *s)
{
    return s->conv ? (off_t)s->conv_len : s->job->msg->size;
}

/* The peer lacks 8BITMIME and the content has 8-bit octets: convert it to 7-bit MIME for
 * this transaction (RFC 6152 3). Returns MIME8_CONV_OK with s->conv set, or why not;
 * *read_err when the queue file could not be read. */
static enum mime8_conv convert_content(struct session *s, bool *read_err)
{
    struct ob_msg *m = s->job->msg;
    *read_err = false;
    if (m->size < 0 || (unsigned long long)m->size > SIZE_MAX / 4)
        return MIME8_CONV_TOO_BIG;
    size_t len = (size_t)m->size;
    char *buf = malloc(len ? len : 1); /* may be large: a failure defers instead of exiting */
    if (!buf)
        return MIME8_CONV_NOMEM;
    size_t pos = 0;
    while (pos < len) {
        ssize_t n = pread(m->fd, buf + pos, len - pos, m->offset + (off_t)pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            *read_err = true;
            return MIME8_CONV_NOMEM;
        }
        pos += (size_t)n;
    }
    char *out = NULL;
    size_t outlen = 0;
    enum mime8_conv c = mime8_convert_7bit(buf, len, &out, &outlen);
    free(buf);
    if (c == MIME8_CONV_OK) {
        s->conv = out;
        s->conv_len = outlen;
        log_info("smtp client qid=%s relay=%s: conv=8bit-to-qp size=%lld converted=%zu",
                 m->qid, s->relay, (long long)m->size, outlen);
    }
    return c;
}

static void format_notify(unsigned notify, char *out, size_t cap)
{
    out[0] = '\0';
    if (notify & NOTIFY_NEVER) {
        str_copy(out, cap, "NEVER");
        return;
    }
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{NOTIFY_SUCCESS, "SUCCESS"}, {NOTIFY_FAILURE, "FAILURE"}, {NOTIFY_DELAY, "DELAY"}};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        if (!(notify & names[i].bit))
            continue;
        if (out[0])
            strncat(out, ",", cap - strlen(out) - 1);
        strncat(out, names[i].name, cap - strlen(out) - 1);
    }
}

static void send_rcpt(struct session *s, size_t i)
{
    const struct ob_rcpt *r = &s->job->rcpts[i];
    char params[SMTP_ORCPT_MAX + 64] = "";
    if (s->dsn) {
        char notify[40];
        format_notify(r->notify, notify, sizeof notify);
        if (notify[0]) {
            strcat(params, " NOTIFY=");
            strcat(params, notify);
        }
        if (r->orcpt && r->orcpt[0] && strlen(r->orcpt) <= SMTP_ORCPT_MAX) {
            strcat(params, " ORCPT=");
            strcat(params, r->orcpt);
        }
    }
    send_line(s, "RCPT TO:<%s>%s", r->addr, params);
}

static void send_mail(struct session *s)
{
    struct ob_msg *m = s->job->msg;
    char params[256] = "";
    size_t n = 0;
    if (s->size_ok)
        n += (size_t)snprintf(params + n, sizeof params - n, " SIZE=%lld",
                              (long long)content_size(s));
    if (s->params.body == BODY_8BITMIME && s->eightbit)
        n += (size_t)snprintf(params + n, sizeof params - n, " BODY=8BITMIME");
    else if (s->params.body == BODY_BINARYMIME)
        n += (size_t)snprintf(params + n, sizeof params - n, " BODY=BINARYMIME");
    else if (s->params.body == BODY_7BIT && s->eightbit)
        n += (size_t)snprintf(params + n, sizeof params - n, " BODY=7BIT");
    if (s->params.smtputf8)
        n += (size_t)snprintf(params + n, sizeof params - n, " SMTPUTF8");
    if (s->dsn && m->ret != RET_UNSPEC)
        n += (size_t)snprintf(params + n, sizeof params - n, " RET=%s",
                              m->ret == RET_FULL ? "FULL" : "HDRS");
    if (s->dsn && m->envid && m->envid[0] && strlen(m->envid) <= SMTP_ENVID_MAX)
        snprintf(params + n, sizeof params - n, " ENVID=%s", m->envid);
    send_line(s, "MAIL FROM:<%s>%s", m->sender ? m->sender : "", params);
}

/* Start the next transaction of the job, or finish the job. */
static void begin_txn(struct session *s)
{
    struct ob_job *job = s->job;
    size_t max = cfgz_or(s->ob->cfg->outbound_max_rcpts, 100);
    /* the next undecided recipients */
    size_t t0 = s->t1;
    while (t0 < job->nrcpts && job->rcpts[t0].status != OB_PENDING)
        t0++;
    if (t0 >= job->nrcpts) {
        job_complete(s);
        session_after_job(s);
        return;
    }
    if (!s->bev) { /* the connection was dropped after a transaction: a new one */
        session_resolve(s);
        return;
    }
    size_t t1 = t0, count = 0;
    while (t1 < job->nrcpts && count < max) {
        if (job->rcpts[t1].status == OB_PENDING)
            count++;
        t1++;
    }
    s->t0 = t0;
    s->t1 = t1;

    /* What may be sent to this server (RFC 6152, 6531, 3030, 1870)? */
    struct ob_msg *m = job->msg;
    struct mime8_peer peer = {s->eightbit, s->smtputf8, s->binarymime, s->chunking};
    bool addrs_utf8 = has_non_ascii(m->sender);
    for (size_t i = t0; i < t1; i++)
        if (job->rcpts[i].status == OB_PENDING && has_non_ascii(job->rcpts[i].addr))
            addrs_utf8 = true;
    if (mime8_need_scan(m->body, m->smtputf8, &peer))
        scan_content(m);
    if (m->scanned < 0) {
        for (size_t i = t0; i < t1; i++)
            if (job->rcpts[i].status == OB_PENDING)
                rcpt_set(s, &job->rcpts[i], OB_DEFERRED, "4.3.0 cannot read the queue file",
                         "4.3.0", false);
        begin_txn(s);
        return;
    }
    enum mime8_verdict v = mime8_decide(m->body, m->smtputf8, addrs_utf8, &peer,
                                        m->scanned > 0 ? &m->scan : NULL, &s->params);
    const char *refuse = NULL, *defer = NULL;
    char text[OB_REPLY_MAX];
    free(s->conv);
    s->conv = NULL;
    /* 8-bit content for a server without 8BITMIME: convert to quoted-printable where RFC 6152
     * allows, else 5.6.3 as mime8_decide said. Content sent without BODY=8BITMIME that has
     * 8-bit octets anyway is converted when possible and otherwise sent as before. */
    bool undeclared = false;
    if (v == MIME8_SEND || v == MIME8_SEND_PLAIN) {
        if (!s->eightbit && s->params.body != BODY_BINARYMIME) {
            scan_content(m);
            undeclared = m->scanned > 0 && (m->scan.body_8bit || m->scan.header_8bit);
        }
    }
    if (v == MIME8_FAIL_8BIT || undeclared) {
        bool read_err;
        enum mime8_conv c = convert_content(s, &read_err);
        if (c == MIME8_CONV_OK) {
            v = MIME8_SEND_PLAIN;
            s->params.body = BODY_UNSPEC;
        } else if (read_err) {
            defer = "4.3.0 cannot read the queue file";
        } else if (c == MIME8_CONV_NOMEM) {
            defer = "4.3.0 out of memory converting 8-bit content to 7-bit";
        } else if (!undeclared) {
            snprintf(text, sizeof text, "%s (%s)", mime8_verdict_text(v), mime8_conv_text(c));
            refuse = text;
        }
    }
    if (defer) {
        char esc[16];
        own_esc(defer, esc, sizeof esc);
        for (size_t i = t0; i < t1; i++)
            if (job->rcpts[i].status == OB_PENDING)
                rcpt_set(s, &job->rcpts[i], OB_DEFERRED, defer, esc, false);
        begin_txn(s);
        return;
    }
    if (!refuse && v != MIME8_SEND && v != MIME8_SEND_PLAIN) {
        refuse = mime8_verdict_text(v);
    } else if (!refuse && s->size_ok && s->size_limit > 0 &&
               (unsigned long long)content_size(s) > s->size_limit) {
        snprintf(text, sizeof text, "5.3.4 message size %lld exceeds the limit of %llu of %s",
                 (long long)content_size(s), s->size_limit, s->peer_name);
        refuse = text;
    }
    if (refuse) {
        char esc[16];
        own_esc(refuse, esc, sizeof esc);
        for (size_t i = t0; i < t1; i++)
            if (job->rcpts[i].status == OB_PENDING)
                rcpt_set(s, &job->rcpts[i], OB_FAILED, refuse, esc, false);
        begin_txn(s);
        return;
    }
    s->use_bdat = s->chunking || s->params.body == BODY_BINARYMIME;
    s->naccepted = 0;
    s->mail_failed = false;
    s->replied = 0;
    s->sent = 0;
    for (size_t i = t0; i < t1; i++)
        job->rcpts[i].accepted = 0;
    free(s->grp);
    s->grp = xcalloc(count, sizeof *s->grp);
    s->ngrp = 0;
    for (size_t i = t0; i < t1; i++)
        if (job->rcpts[i].status == OB_PENDING)
            s->grp[s->ngrp++] = i;
    s->st = S_TXN;
    /* The group: MAIL, then each undecided RCPT. With PIPELINING all at once (RFC 2920);
     * without, one at a time as the replies come. */
    send_mail(s);
    s->sent = 1;
    if (s->pipelining) {
        for (size_t k = 0; k < s->ngrp; k++)
            send_rcpt(s, s->grp[k]);
        s->sent += s->ngrp;
    }
    arm(s, t_command(s));
}

static void fill_data(struct session *s);

static void start_content(struct session *s)
{
    s->pos = 0;
    dotstuff_init(&s->ds);
    s->st = S_DATA_BODY;
    bufferevent_setwatermark(s->bev, EV_WRITE, WRITE_LOWAT, 0);
    fill_data(s);
}

static void after_group(struct session *s)
{
    if (s->mail_failed || s->naccepted == 0) {
        s->st = S_RSET;
        send_line(s, "RSET");
        arm(s, t_command(s));
        return;
    }
    if (s->use_bdat) {
        send_line(s, "BDAT %lld LAST", (long long)content_size(s));
        start_content(s);
        return;
    }
    s->st = S_DATA;
    send_line(s, "DATA");
    arm(s, cfg_or(s->ob->cfg->outbound_timeout_data_init, 120));
}

/* Stream more content (DATA: dot-stuffed; BDAT: as is). */
static void fill_data(struct session *s)
{
    struct ob_msg *m = s->job->msg;
    struct evbuffer *out = bufferevent_get_output(s->bev);
    off_t size = content_size(s);
    char *buf = xmalloc(DATA_CHUNK), *enc = s->use_bdat ? NULL : xmalloc(2 * DATA_CHUNK + 8);
    while (evbuffer_get_length(out) < 4 * WRITE_LOWAT && s->pos < size) {
        size_t want = size - s->pos < DATA_CHUNK ? (size_t)(size - s->pos) : DATA_CHUNK;
        ssize_t n;
        if (s->conv) {
            memcpy(buf, s->conv + s->pos, want);
            n = (ssize_t)want;
        } else {
            n = pread(m->fd, buf, want, m->offset + s->pos);
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            free(enc);
            /* The stream cannot be completed (BDAT promised a size): drop the connection. */
            conn_failed(s, true, "4.3.0 cannot read the queue file", false);
            return;
        }
        s->pos += n;
        if (enc) {
            size_t e = dotstuff_encode(&s->ds, buf, (size_t)n, enc);
            evbuffer_add(out, enc, e);
        } else {
            evbuffer_add(out, buf, (size_t)n);
        }
    }
    if (s->pos >= size) {
        if (enc) {
            char fin[8];
            size_t e = dotstuff_finish(&s->ds, fin);
            evbuffer_add(out, fin, e);
        }
        s->st = S_DATA_END;
        bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
        arm(s, cfg_or(s->ob->cfg->outbound_timeout_data_end, 600));
    } else {
        arm(s, cfg_or(s->ob->cfg->outbound_timeout_data_block, 180));
    }
    free(buf);
    free(enc);
}

static void writecb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct session *s = arg;
    ref(s);
    if (s->st == S_DATA_BODY)
        fill_data(s);
    unref(s);
}

/* The final reply to the content decides for the accepted recipients. */
static void data_result(struct session *s, const struct smtp_reply *r)
{
    for (size_t i = s->t0; i < s->t1; i++) {
        struct ob_rcpt *rc = &s->job->rcpts[i];
        if (rc->accepted)
            rcpt_set_reply(s, rc, r);
    }
    s->txns++;
}

/* One reply of the MAIL/RCPT group (replies come in the order the commands were sent). */
static void txn_reply(struct session *s, const struct smtp_reply *r)
{
    size_t k = s->replied++;
    if (k == 0) { /* MAIL */
        if (r->code < 200 || r->code >= 300) {
            s->mail_failed = true;
            for (size_t g = 0; g < s->ngrp; g++)
                rcpt_set_reply(s, &s->job->rcpts[s->grp[g]], r);
        }
    } else if (k - 1 < s->ngrp && !s->mail_failed) {
        struct ob_rcpt *rc = &s->job->rcpts[s->grp[k - 1]];
        if (r->code >= 200 && r->code < 300) {
            rc->accepted = 1;
            s->naccepted++;
        } else {
            rcpt_set_reply(s, rc, r);
        }
    }
    if (!s->pipelining && !s->mail_failed && s->sent < 1 + s->ngrp) {
        send_rcpt(s, s->grp[s->sent - 1]);
        s->sent++;
        arm(s, t_command(s));
        return;
    }
    if (s->replied >= s->sent)
        after_group(s);
    else
        arm(s, t_command(s));
}

/* Handle one complete reply. Returns false when the caller must stop reading from the
 * bufferevent it was reading (the session is gone, or the connection was closed or
 * replaced). */
static bool handle_reply(struct session *s, const struct smtp_reply *r)
{
    char text[OB_REPLY_MAX];
    reply_text(r, text, sizeof text);
    log_debug("smtp client %s <<< %s", s->relay, text);
    int code = r->code;
    struct bufferevent *bev = s->bev;
    switch (s->st) {
    case S_GREETING:
        if (code == 220) {
            send_ehlo(s);
            return true;
        }
        conn_failed(s, code < 500, text, true);
        return false;
    case S_EHLO:
        if (code >= 200 && code < 300) {
            smtp_caps_free(&s->caps);
            s->have_caps = smtp_caps_parse(r, &s->caps);
            read_caps(s);
            after_hello(s);
            return !s->zombie && s->bev == bev;
        }
        if (code >= 500 && code != 554) {
            /* RFC 5321 3.2 / 4.1.4: a server that does not know EHLO gets HELO. */
            s->st = S_HELO;
            send_line(s, "HELO %s", s->ob->cfg->hostname ? s->ob->cfg->hostname : "localhost");
            arm(s, t_command(s));
            return true;
        }
        conn_failed(s, code < 500, text, true);
        return false;
    case S_HELO:
        if (code >= 200 && code < 300) {
            smtp_caps_free(&s->caps);
            read_caps(s); /* no extensions after HELO */
            after_hello(s);
            return !s->zombie && s->bev == bev;
        }
        conn_failed(s, code < 500, text, true);
        return false;
    case S_STARTTLS:
        if (code == 220) {
            start_tls(s);
            return false; /* the old bufferevent is now under the TLS filter */
        }
        if (s->job->route.tls >= TLS_POLICY_REQUIRED) {
            conn_failed(s, true, text, true);
            return false;
        }
        s->no_tls = true; /* go on in clear on this connection */
        after_hello(s);
        return !s->zombie && s->bev == bev;
    case S_AUTH:
        if (code == 235) {
            ready(s);
            return !s->zombie && s->bev == bev;
        }
        if (code == 334 && s->job->route.dest && s->job->route.dest->auth_user) {
            /* AUTH LOGIN asks for the user name. */
            s->st = S_AUTH_USER;
            send_b64(s, s->job->route.dest->auth_user);
            arm(s, t_command(s));
            return true;
        }
        break;
    case S_AUTH_USER:
        if (code == 334) {
            const struct cred *c = find_cred(s->ob, s->job->route.dest);
            s->st = S_AUTH_PASS;
            send_b64(s, c && c->pass ? c->pass : "");
            arm(s, t_command(s));
            return true;
        }
        break;
    case S_AUTH_PASS:
        if (code == 235) {
            ready(s);
            return !s->zombie && s->bev == bev;
        }
        break;
    case S_RSET_REUSE:
        if (code >= 200 && code < 300) {
            ready(s);
            return !s->zombie && s->bev == bev;
        }
        /* Not usable any more: start over on a new connection (no failure counted). */
        evtimer_del(s->timer);
        close_conn(s);
        session_resolve(s);
        return false;
    case S_TXN:
        txn_reply(s, r);
        return !s->zombie && s->bev == bev;
    case S_DATA:
        if (code == 354) {
            start_content(s);
            return !s->zombie && s->bev == bev;
        }
        data_result(s, r);
        s->st = S_RSET;
        send_line(s, "RSET");
        arm(s, t_command(s));
        return true;
    case S_DATA_BODY:
    case S_DATA_END: {
        /* A reply in the middle of the content (an early rejection) decides as well, but the
         * stream is out of step then: the connection is not reused. */
        bool early = s->st == S_DATA_BODY;
        data_result(s, r);
        if (early) {
            evtimer_del(s->timer);
            close_conn(s);
        }
        begin_txn(s);
        return !early && !s->zombie && s->bev == bev;
    }
    case S_RSET:
        if (code >= 200 && code < 300) {
            begin_txn(s);
            return !s->zombie && s->bev == bev;
        }
        conn_failed(s, code < 500, text, true);
        return false;
    case S_QUIT:
        session_close(s);
        return false;
    case S_IDLE:
        /* e.g. "421 closing idle connection" */
        session_close(s);
        return false;
    default:
        return true; /* nothing expected: ignore */
    }
    /* AUTH failed */
    char why[OB_REPLY_MAX + 64];
    snprintf(why, sizeof why, "4.7.0 authentication failed: %s", text);
    conn_failed(s, true, why, true);
    return false;
}

static void read_replies(struct session *s, struct bufferevent *bev);

static void readcb(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;
    ref(s);
    read_replies(s, bev);
    unref(s);
}

static void read_replies(struct session *s, struct bufferevent *bev)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t n;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
        if (!line) {
            if (evbuffer_get_length(in) > INPUT_LINE_MAX)
                conn_failed(s, true, "4.5.0 reply line too long", false);
            return;
        }
        const char *why = NULL;
        enum smtp_feed f = smtp_reply_feed(&s->reply, line, n, &why);
        free(line);
        if (f == SMTP_FEED_BAD ||
            (f == SMTP_FEED_MORE && s->reply.nlines >= SMTP_REPLY_MAX_LINES)) {
            char text[OB_REPLY_MAX];
            snprintf(text, sizeof text, "4.5.0 protocol error during %s: %s", state_what[s->st],
                     why ? why : "reply too long");
            smtp_reply_free(&s->reply);
            conn_failed(s, true, text, false);
            return;
        }
        if (f == SMTP_FEED_MORE)
            continue;
        struct smtp_reply r = s->reply;
        smtp_reply_init(&s->reply);
        bool go_on = handle_reply(s, &r);
        smtp_reply_free(&r);
        if (!go_on)
            return;
    }
}

static void session_event(struct session *s, short what);

static void eventcb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct session *s = arg;
    ref(s);
    session_event(s, what);
    unref(s);
}

static void session_event(struct session *s, short what)
{
    char text[OB_REPLY_MAX + 256];
    if (what & BEV_EVENT_CONNECTED) {
        if (s->st == S_CONNECT) {
            s->st = S_GREETING;
            arm(s, t_command(s));
        } else if (s->st == S_TLS_HANDSHAKE) {
            s->tls = true;
            if (!tls_accept_peer(s, text, sizeof text)) {
                conn_failed(s, true, text, false);
                return;
            }
            log_debug("smtp client %s: TLS established (%s)", s->relay, s->tls_desc);
            send_ehlo(s);
        }
        return;
    }
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
        int err = EVUTIL_SOCKET_ERROR();
        if (s->st == S_IDLE || s->st == S_QUIT) {
            session_close(s);
            return;
        }
        if (s->st == S_TLS_HANDSHAKE) {
            unsigned long e = bufferevent_get_openssl_error(s->bev);
            char ebuf[160] = "handshake failed";
            if (e)
                ERR_error_string_n(e, ebuf, sizeof ebuf);
            snprintf(text, sizeof text, "4.7.5 TLS handshake with %s failed: %s", s->relay, ebuf);
        } else if (s->st == S_CONNECT) {
            snprintf(text, sizeof text, "4.4.1 connect to %s: %s", s->relay,
                     err ? evutil_socket_error_to_string(err) : "failed");
        } else {
            snprintf(text, sizeof text, "4.4.2 connection to %s lost during %s%s%s", s->relay,
                     state_what[s->st], (what & BEV_EVENT_ERROR) && err ? ": " : "",
                     (what & BEV_EVENT_ERROR) && err ? evutil_socket_error_to_string(err) : "");
        }
        conn_failed(s, true, text, false);
    }
}

static void session_timeout(struct session *s);

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct session *s = arg;
    ref(s);
    session_timeout(s);
    unref(s);
}

static void session_timeout(struct session *s)
{
    if (s->st == S_IDLE) {
        /* RFC 5321 4.1.1.10: end politely. */
        s->st = S_QUIT;
        send_line(s, "QUIT");
        arm(s, 5);
        return;
    }
    if (s->st == S_QUIT) {
        session_close(s);
        return;
    }
    char text[OB_REPLY_MAX];
    snprintf(text, sizeof text, "4.4.2 timeout with %s during %s", s->relay[0] ? s->relay : "?",
             state_what[s->st]);
    if (s->st == S_RESOLVE_MX || s->st == S_RESOLVE_HOST)
        return; /* c-ares has its own timeouts */
    conn_failed(s, true, text, false);
}

static struct session *session_new(struct outbound *ob, struct dest *d)
{
    struct session *s = xcalloc(1, sizeof *s);
    s->ob = ob;
    s->dest = d;
    s->timer = evtimer_new(ob->base, timer_cb, s);
    if (!s->timer) {
        free(s);
        return NULL;
    }
    smtp_reply_init(&s->reply);
    s->next = d->sessions;
    d->sessions = s;
    d->nsessions++;
    ob->nsessions++;
    return s;
}

static void session_start_job(struct session *s, struct ob_job *job)
{
    s->job = job;
    s->t1 = 0;
    s->connects = 0;
    s->any_temp = false;
    s->last_err[0] = '\0';
    s->last_remote = false;
    for (size_t i = 0; i < job->nrcpts; i++)
        job->rcpts[i].accepted = 0;
    evtimer_del(s->timer);
    if (s->bev && s->st == S_IDLE) {
        /* A cached connection: make sure it is still there (RSET, RFC 5321 4.1.1.5). */
        s->st = S_RSET_REUSE;
        send_line(s, "RSET");
        arm(s, t_command(s));
        return;
    }
    if (s->bev) {
        ready(s); /* straight from the previous job: the server is between transactions */
        return;
    }
    session_resolve(s);
}

/* ---- scheduling ------------------------------------------------------------------------- */

/* Start waiting jobs where the limits allow. */
static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct outbound *ob = arg;
    size_t per_dest = cfgz_or(ob->cfg->outbound_concurrency, 5);
    size_t global = cfgz_or(ob->cfg->outbound_max_connections, 100);
    bool progress = true;
    while (progress && !ob->aborting) {
        progress = false;
        for (struct dest *d = ob->dests; d; d = d->next) {
            if (!d->wait_head)
                continue;
            /* an idle connection of this destination first */
            struct session *idle = NULL;
            for (struct session *s = d->sessions; s; s = s->next)
                if (s->st == S_IDLE && !s->job)
                    idle = s;
            if (idle) {
                session_start_job(idle, dest_pop(d));
                progress = true;
                break; /* the lists may have changed */
            }
            if (d->nsessions >= (d->fd_dest ? 1 : per_dest))
                continue; /* an ATRN connection is one connection */
            if (ob->nsessions >= global && !d->fd_dest) {
                /* make room by closing an idle connection of another destination */
                struct session *victim = NULL;
                for (struct dest *o = ob->dests; o && !victim; o = o->next)
                    for (struct session *s = o->sessions; s && !victim; s = s->next)
                        if (s->st == S_IDLE && !s->job)
                            victim = s;
                if (!victim)
                    return;
                session_close(victim);
                progress = true;
                break;
            }
            struct session *s = session_new(ob, d);
            if (!s)
                return;
            session_start_job(s, dest_pop(d));
            progress = true;
            break;
        }
    }
}

void outbound_submit(struct outbound *ob, struct ob_job *job)
{
    for (size_t i = 0; i < job->nrcpts; i++) {
        job->rcpts[i].status = OB_PENDING;
        job->rcpts[i].accepted = 0;
        job->rcpts[i].reply[0] = '\0';
        job->rcpts[i].esc[0] = '\0';
        job->rcpts[i].relay[0] = '\0';
        job->rcpts[i].mta[0] = '\0';
        job->rcpts[i].remote = false;
        job->rcpts[i].peer_dsn = false;
    }
    struct dest *d = dest_get(ob, job->route.key);
    job->next = NULL;
    if (d->wait_tail)
        d->wait_tail->next = job;
    else
        d->wait_head = job;
    d->wait_tail = job;
    ob->njobs++;
    schedule_kick(ob);
}

void outbound_attach_fd(struct outbound *ob, const char *key, int fd)
{
    struct dest *d = dest_get(ob, key);
    if (d->fd_dest && d->fd >= 0)
        close(d->fd);
    d->fd_dest = true;
    d->fd = fd;
    dest_maybe_free(ob, d); /* no job for it: closes fd at once */
}

size_t outbound_jobs(const struct outbound *ob)
{
    return ob->njobs;
}

size_t outbound_connections(const struct outbound *ob)
{
    return ob->nsessions;
}

void outbound_close_idle(struct outbound *ob)
{
    for (struct dest *d = ob->dests; d; d = d->next)
        for (struct session *s = d->sessions; s; s = s->next)
            if (s->st == S_IDLE && s->bev) {
                s->st = S_QUIT;
                send_line(s, "QUIT");
                arm(s, 2);
            }
}

void outbound_abort_all(struct outbound *ob)
{
    ob->aborting = true; /* no kicks, and destinations stay until the end */
    evtimer_del(ob->kick);
    while (ob->dests) {
        struct dest *d = ob->dests;
        struct ob_job *w;
        while ((w = dest_pop(d)) != NULL) {
            ob->njobs--;
            w->done(w, w->arg); /* all its recipients are still OB_PENDING */
        }
        while (d->sessions) {
            struct session *s = d->sessions;
            struct ob_job *job = s->job;
            if (job) {
                /* undecided and unconfirmed recipients stay as they were */
                for (size_t i = 0; i < job->nrcpts; i++) {
                    if (job->rcpts[i].accepted) {
                        job->rcpts[i].accepted = 0;
                        job->rcpts[i].status = OB_PENDING;
                    }
                }
            }
            session_free(s);
            if (job) {
                ob->njobs--;
                job->done(job, job->arg);
            }
        }
        if (d->wait_head)
            continue; /* a callback queued more: go round again */
        for (struct dest **pp = &ob->dests; *pp; pp = &(*pp)->next) {
            if (*pp == d) {
                *pp = d->next;
                break;
            }
        }
        dest_release(d);
    }
    ob->aborting = false;
}

static char *read_password(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    char line[1024];
    char *p = fgets(line, sizeof line, f) ? xstrdup(line) : NULL;
    fclose(f);
    explicit_bzero(line, sizeof line);
    if (p)
        p[strcspn(p, "\r\n")] = '\0';
    return p;
}

static void add_cred(struct outbound *ob, const struct outbound_dest_cfg *d)
{
    if (!d->host || !d->auth_user)
        return;
    ob->creds = xrealloc(ob->creds, (ob->ncreds + 1) * sizeof *ob->creds);
    struct cred *c = &ob->creds[ob->ncreds++];
    c->d = d;
    c->pass = d->auth_passfile ? read_password(d->auth_passfile) : NULL;
    if (!c->pass)
        log_err("cannot read the AUTH password file %s for %s: %s",
                d->auth_passfile ? d->auth_passfile : "(none)", d->host, strerror(errno));
}

/* The CAs "verify" trusts: outbound_tls_ca_file, or the system store - its hashed directory,
 * which OpenSSL reads one certificate at a time as a chain needs it (loading the whole bundle
 * file would cost every start of the queue manager a second under the sanitizers). */
static int load_cas(SSL_CTX *ctx, const struct config *cfg, char *err, size_t errlen)
{
    const char *ca = cfg->outbound_tls_ca_file;
    if (ca ? SSL_CTX_load_verify_locations(ctx, ca, NULL) == 1
           : SSL_CTX_set_default_verify_dir(ctx) == 1)
        return 0;
    char ebuf[160] = "";
    ERR_error_string_n(ERR_get_error(), ebuf, sizeof ebuf);
    ERR_clear_error();
    snprintf(err, errlen, "cannot load the trusted CAs %s: %s", ca ? ca : "of the system store",
             ebuf);
    return -1;
}

/* Whether any route can be "verify": only then are CAs needed. */
static bool uses_verify(const struct config *cfg)
{
    if (cfg->outbound_tls == TLS_POLICY_VERIFY || cfg->smarthost.tls == TLS_POLICY_VERIFY)
        return true;
    for (size_t i = 0; i < cfg->ntransports; i++)
        if (cfg->transports[i].tls == TLS_POLICY_VERIFY)
            return true;
    return false;
}

int outbound_check_config(const struct config *cfg, char *err, size_t errlen)
{
    if (!cfg->outbound_tls_ca_file)
        return 0;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS client context");
        return -1;
    }
    int rc = load_cas(ctx, cfg, err, errlen);
    SSL_CTX_free(ctx);
    return rc;
}

struct outbound *outbound_new(const struct config *cfg, struct event_base *base,
                              struct dns_resolver *dns, char *err, size_t errlen)
{
    struct outbound *ob = xcalloc(1, sizeof *ob);
    ob->cfg = cfg;
    ob->base = base;
    ob->dns = dns;
    ob->kick = evtimer_new(base, kick_cb, ob);
    ob->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!ob->kick || !ob->ssl_ctx) {
        snprintf(err, errlen, "cannot create the %s", ob->kick ? "TLS client context" : "event");
        outbound_free(ob);
        return NULL;
    }
    /* Opportunistic security (RFC 7435): encrypt, do not authenticate; a certificate that
     * does not verify is still better than clear text. TLS 1.2 at least. The handshake never
     * fails on the certificate: "verify" routes read OpenSSL's verdict afterwards
     * (tls_accept_peer), against these trusted CAs. */
    SSL_CTX_set_min_proto_version(ob->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ob->ssl_ctx, SSL_VERIFY_NONE, NULL);
    if (uses_verify(cfg) && load_cas(ob->ssl_ctx, cfg, err, errlen) < 0) {
        outbound_free(ob);
        return NULL;
    }
    SSL_CTX_set_options(ob->ssl_ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    add_cred(ob, &cfg->smarthost);
    for (size_t i = 0; i < cfg->ntransports; i++)
        add_cred(ob, &cfg->transports[i]);
    return ob;
}

void outbound_free(struct outbound *ob)
{
    if (!ob)
        return;
    outbound_abort_all(ob);
    if (ob->kick)
        event_free(ob->kick);
    if (ob->ssl_ctx)
        SSL_CTX_free(ob->ssl_ctx);
    for (size_t i = 0; i < ob->ncreds; i++) {
        if (ob->creds[i].pass) {
            explicit_bzero(ob->creds[i].pass, strlen(ob->creds[i].pass));
            free(ob->creds[i].pass);
        }
    }
    free(ob->creds);
    free(ob);
}
