/* outbound.h - the asynchronous SMTP client: delivers jobs (one message, some recipients, one
 * destination) over libevent bufferevents, with STARTTLS through OpenSSL.
 *
 * A job names a route (route.h). The engine resolves it (MX records in preference order, the
 * implicit MX, null MX, or a fixed host), connects to each address in turn until a server
 * answers, speaks ESMTP (EHLO, HELO fallback, STARTTLS, AUTH for a smarthost, PIPELINING,
 * SIZE, 8BITMIME/SMTPUTF8 checks, DSN parameters, CHUNKING) and reports one result per
 * recipient. Connections are per destination key: at most outbound_concurrency at once, and
 * a finished connection is reused for the next waiting job of the same destination or kept
 * idle for outbound_idle seconds. RFC 5321 2.4, 3.3, 4.1, 4.5.3.2 (timeouts), 5.1 (MX), RFC
 * 7505 (null MX), RFC 3207 (STARTTLS), RFC 2920, 1870, 6152, 6531, 3030, 3461, 4954.
 *
 * Rules for the caller: everything a job points to stays valid until its done callback has
 * run; the callback runs once per job, always from the event loop (never inside
 * outbound_submit). */
#ifndef TERN_OUTBOUND_H
#define TERN_OUTBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "config.h"
#include "mime8.h"
#include "route.h"
#include "smtp_parse.h"

struct event_base;
struct dns_resolver;
struct outbound;

enum ob_status {
    OB_PENDING = 0, /* not attempted (the engine was stopped): leave the recipient as it was */
    OB_SENT,        /* accepted by the remote server */
    OB_DEFERRED,    /* temporary failure: retry later */
    OB_FAILED,      /* permanent failure: bounce */
};

#define OB_REPLY_MAX 512
#define OB_RELAY_MAX 320
#define OB_TLS_MAX 128

struct ob_rcpt {
    const char *addr;              /* "local@domain" */
    unsigned notify;               /* NOTIFY_* bits, 0 if not given */
    const char *orcpt;             /* "rfc822;xtext" or "" */
    int tag;                       /* for the caller (e.g. the envelope index) */
    /* results */
    enum ob_status status;
    char reply[OB_REPLY_MAX];      /* the server's reply on one line ("550 5.1.1 No such
                                      user"), or our own reason ("4.4.1 connection refused") */
    char esc[16];                  /* enhanced status code of the result ("5.1.1") */
    bool remote;                   /* reply came from the remote server */
    char relay[OB_RELAY_MAX];      /* "mx.example.org[192.0.2.1]:25", or "none" */
    char mta[ROUTE_NAME_MAX];      /* host name for the DSN Remote-MTA field, or "" */
    char tls[OB_TLS_MAX];          /* the connection's TLS for the log:
                                      "TLSv1.3/CIPHER/verified" (or "/unverified"), "none" */
    bool peer_dsn;                 /* the accepting server offers DSN (RFC 3461) */
    int accepted;                  /* internal: RCPT accepted in the current transaction */
};

/* The message a job delivers; shared by the jobs of one message. */
struct ob_msg {
    const char *qid;
    const char *sender;            /* "" for the null reverse-path */
    const char *envid;             /* xtext or "" */
    enum body_type body;
    bool smtputf8;
    enum dsn_ret ret;
    int fd;                        /* the queue file, content from offset, size octets */
    off_t offset;
    off_t size;
    /* filled in lazily by the engine */
    int scanned;                   /* 0 not yet, 1 done, -1 read error */
    struct mime8_scan scan;
};

struct ob_job;
typedef void (*ob_done_cb)(struct ob_job *job, void *arg);

struct ob_job {
    struct route route;
    struct ob_msg *msg;
    struct ob_rcpt *rcpts;
    size_t nrcpts;
    ob_done_cb done;
    void *arg;
    struct ob_job *next;           /* internal */
};

/* NULL with a message in err on failure (TLS context). dns may be NULL only if no job ever
 * needs DNS (tests with literal addresses). */
struct outbound *outbound_new(const struct config *cfg, struct event_base *base,
                              struct dns_resolver *dns, char *err, size_t errlen);
/* Check what outbound_new will read, for the supervisor and "tern serve --check": the
 * outbound_tls_ca_file must hold PEM certificates. 0, or -1 with a message in err. */
int outbound_check_config(const struct config *cfg, char *err, size_t errlen);
/* Queue a job; it starts from the event loop. */
void outbound_submit(struct outbound *ob, struct ob_job *job);
/* Jobs submitted and not done yet. */
size_t outbound_jobs(const struct outbound *ob);
/* Stop: close every connection; jobs not finished complete with their undecided recipients
 * OB_PENDING (their callbacks run before this returns). Idle connections get no QUIT. */
void outbound_abort_all(struct outbound *ob);
/* Close idle cached connections (politely, with QUIT) - e.g. before shutting down. */
void outbound_close_idle(struct outbound *ob);
/* Connections open or being opened. */
size_t outbound_connections(const struct outbound *ob);
void outbound_free(struct outbound *ob);
/* On-Demand Mail Relay (RFC 2645): jobs whose route.key is key are delivered over fd, a
 * connection on which the customer is about to send its greeting (no DNS, no connect, no
 * STARTTLS: the worker that relays it handles TLS). One session uses it for every such job in
 * turn and sends QUIT after the last; the engine owns fd from now on. Submit the jobs first,
 * from the same event-loop callback. */
void outbound_attach_fd(struct outbound *ob, const char *key, int fd);

#endif
