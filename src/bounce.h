/* bounce.h - delivery status notifications (DSNs) as complete messages, pure (no I/O).
 *
 * RFC 3464 (multipart/report; report-type=delivery-status, the message/delivery-status
 * fields), RFC 3461 (ENVID and ORCPT carried back: Original-Envelope-Id,
 * Original-Recipient; RET=FULL returns the whole message, else only its header section),
 * RFC 3462/6522 (multipart/report), RFC 6533 (message/global-delivery-status and
 * message/global-headers when the original message was SMTPUTF8), RFC 3834
 * (Auto-Submitted: auto-replied). The caller queues the result from the null reverse-path
 * "<>" to the original sender, and never builds one for a message whose sender is "<>". */
#ifndef TERN_BOUNCE_H
#define TERN_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

enum dsn_action {
    DSN_ACTION_FAILED,    /* permanent failure, or queue lifetime exceeded */
    DSN_ACTION_DELAYED,   /* still being retried (delay warning) */
    DSN_ACTION_DELIVERED, /* delivered to a local mailbox */
    DSN_ACTION_RELAYED,   /* handed to a server that does not do DSN (RFC 3461 4.1) */
};

/* One recipient of the report. Strings may be NULL where "" is allowed. */
struct dsn_rcpt {
    const char *addr;       /* final recipient "local@domain" */
    const char *orcpt;      /* ORCPT as received: "rfc822;xtext", or "" */
    enum dsn_action action;
    const char *status;     /* enhanced status code "5.1.1" (RFC 3463) */
    const char *remote_mta; /* host the reply came from ("mx.example.org"), or "" */
    const char *diagnostic; /* the remote server's reply ("550 5.1.1 No such user"), or "" */
    const char *reason;     /* our own explanation when there is no remote reply, or "" */
    time_t last_attempt;    /* 0: not known */
};

struct dsn_msg {
    enum dsn_action kind;       /* which report: FAILED, DELAYED, or DELIVERED/RELAYED (success) */
    const char *reporting_mta;  /* our host name */
    const char *qid;            /* the original message's queue ID */
    const char *sender;         /* original envelope sender: the report's To: */
    const char *envid;          /* ENVID as received (xtext), or "" */
    time_t arrival;             /* when the original was queued */
    time_t now;
    time_t retry_until;         /* DELAYED: when we give up (Will-Retry-Until) */
    const char *unique;         /* makes Message-ID and boundary unique (e.g. a counter) */
    /* The original: its header section (RET=HDRS) or all of it (full). CRLF line ends. */
    const char *content;
    size_t content_len;
    bool full;
    bool utf8;                  /* original was SMTPUTF8: RFC 6533 media types */
    bool double_bounce;         /* the original was itself a report from "<>" that failed;
                                   this one goes to the postmaster (notify.h) */
};

/* Build the whole DSN message (header and body, CRLF line ends) for n recipients. Returns a
 * malloc'd buffer (NUL-terminated; *len excludes the NUL). */
char *dsn_build(const struct dsn_msg *m, const struct dsn_rcpt *r, size_t n, size_t *len);

/* Length of the header section of a message (through the empty line that ends it), or len
 * when there is no empty line (all header). Accepts CRLF or bare LF line ends. */
size_t dsn_header_len(const char *buf, size_t len);

/* Whether buf has any octet >= 0x80 (the DSN must then be sent as 8BITMIME). */
bool dsn_has_8bit(const char *buf, size_t len);

/* The default enhanced status code for a reply code without one (RFC 3463): "2.0.0",
 * "4.0.0" or "5.0.0". */
const char *dsn_default_status(int code);

/* RFC 5322 3.3 date-time in UTC: "Sat, 23 Nov 2024 07:56:01 +0000" (locale-independent).
 * out needs 32 bytes. */
void dsn_date(time_t t, char *out, size_t cap);

#endif
