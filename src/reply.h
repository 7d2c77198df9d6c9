/* reply.h - every SMTP reply tern sends, in one table: code (RFC 5321 4.2), enhanced status
 * code (RFC 3463, sent on every reply after the greeting as RFC 2034 asks, except the replies
 * to HELO/EHLO and 3xx intermediate replies), and default text. */
#ifndef TERN_REPLY_H
#define TERN_REPLY_H

#include <stdbool.h>
#include <stddef.h>

enum reply_id {
    RP_GREETING,          /* 220 */
    RP_TLS_READY,         /* 220 2.0.0 */
    RP_BYE,               /* 221 2.0.0 */
    RP_HELP,              /* 214 2.0.0 */
    RP_OK,                /* 250 2.0.0 */
    RP_HELO,              /* 250 (no enhanced code: RFC 2034 3) */
    RP_MAIL_OK,           /* 250 2.1.0 */
    RP_RCPT_OK,           /* 250 2.1.5 */
    RP_QUEUED,            /* 250 2.0.0 */
    RP_CHUNK_OK,          /* 250 2.0.0 */
    RP_VRFY_OK,           /* 250 2.1.5 */
    RP_CANNOT_VRFY,       /* 252 2.1.5 */
    RP_START_DATA,        /* 354 */
    RP_SHUTDOWN,          /* 421 4.3.2 */
    RP_TIMEOUT,           /* 421 4.4.2 */
    RP_TOO_MANY_ERRORS,   /* 421 4.7.0 */
    RP_TOO_MANY_CONN,     /* 421 4.7.0 */
    RP_TLS_UNAVAILABLE,   /* 454 4.7.0 */
    RP_LOCAL_ERROR,       /* 451 4.3.0 */
    RP_NO_STORAGE,        /* 452 4.3.1 */
    RP_TOO_MANY_RCPTS,    /* 452 4.5.3 */
    RP_UNKNOWN_CMD,       /* 500 5.5.2 */
    RP_LINE_TOO_LONG,     /* 500 5.5.2 */
    RP_SYNTAX,            /* 501 5.5.4 */
    RP_BAD_SENDER,        /* 501 5.1.7 */
    RP_BAD_RCPT,          /* 501 5.1.3 */
    RP_NOT_IMPLEMENTED,   /* 502 5.5.1 */
    RP_BAD_SEQUENCE,      /* 503 5.5.1 */
    RP_TLS_REQUIRED,      /* 530 5.7.0 */
    RP_PARAM_NOT_IMPL,    /* 504 5.5.4 */
    RP_NO_MAILBOX,        /* 550 5.1.1 */
    RP_MSG_REFUSED,       /* 550 5.6.0 */
    RP_SIZE_EXCEEDED,     /* 552 5.3.4 */
    R_NEED_UTF8,         /* 553 5.6.7 */
    RP_PATH_TOO_LONG,     /* 553 5.1.0 */
    RP_RELAY_DENIED,      /* 554 5.7.1 */
    RP_PARAM_UNKNOWN,     /* 555 5.5.4 */
    /* SMTP AUTH (RFC 4954 4, 6) */
    RP_AUTH_CONTINUE,     /* 334 (text: the base64 challenge) */
    RP_AUTH_OK,           /* 235 2.7.0 */
    RP_AUTH_REQUIRED,     /* 530 5.7.0 */
    RP_AUTH_FAILED,       /* 535 5.7.8 */
    RP_AUTH_CANCELLED,    /* 501 5.7.0 */
    RP_AUTH_BAD_BASE64,   /* 501 5.5.2 */
    RP_AUTH_LINE_TOO_LONG, /* 500 5.5.6 */
    RP_AUTH_UNKNOWN_MECH, /* 504 5.5.4 */
    RP_AUTH_TOO_WEAK,     /* 534 5.7.9 */
    RP_AUTH_NEED_TLS,     /* 538 5.7.11 */
    RP_AUTH_TEMPFAIL,     /* 454 4.7.0 */
    RP_AUTH_LOCKED,       /* 454 4.7.0 */
    RP_SENDER_NOT_OWNED,  /* 553 5.7.1 */
    /* The rest of the command set (docs/commands.md) */
    RP_TURN_REFUSED,      /* 502 5.7.0 (RFC 2821 4.1.1: TURN is unsafe) */
    RP_SEND_NOT_IMPL,     /* 502 5.5.1 (RFC 821 SEND: to a terminal) */
    RP_XEXPS_NOT_IMPL,    /* 502 5.5.1 (Exchange X-EXPS: use AUTH) */
    RP_HOLD_TOO_LONG,     /* 554 5.3.4 (RFC 4865 4: hold beyond the advertised maximum) */
    RP_HOLD_DENIED,       /* 550 5.7.1 (future release only for trusted clients) */
    RP_ETRN_STARTED,      /* 250 2.0.0 (RFC 1985 5) */
    RP_ETRN_NONE,         /* 251 2.0.0 */
    RP_ETRN_PENDING,      /* 253 2.0.0 */
    RP_ETRN_UNABLE,       /* 458 4.3.0 */
    RP_ETRN_DENIED,       /* 459 4.7.1 */
    RP_ATRN_OK,           /* 250 2.0.0 (RFC 2645: the roles turn) */
    RP_ATRN_REFUSED,      /* 450 4.7.1 */
    RP_ATRN_TEMPFAIL,     /* 451 4.3.0 */
    RP_ATRN_NO_MAIL,      /* 453 4.0.0 */
    RP_ODMR_ONLY,         /* 502 5.5.1 on the ODMR port */
    /* aliases (docs/aliases.md) */
    RP_USER_MOVED,        /* 551 5.1.6 (RFC 5321 3.4, relocated map) */
    RP_ALIAS_LOOP,        /* 550 5.4.6 */
    RP_ALIAS_REFUSED,     /* 550 5.7.1 */
    RP_RESOURCES,         /* 421 4.3.2 */
    RP_HEADER_TOO_BIG,    /* 552 5.3.4 */
    RP_TOO_MANY_HEADERS,  /* 554 5.6.0 */
    RP__COUNT
};

int reply_code(enum reply_id id);
const char *reply_esc(enum reply_id id);  /* "" where none is sent */
const char *reply_text(enum reply_id id); /* default text */

/* Format one reply line "CODE[-| ]ESC text\r\n" into buf. text NULL means the default text.
 * Returns the length, or 0 if it did not fit (callers use buffers of SMTP_REPLY_MAX). */
#define SMTP_REPLY_MAX 512
size_t reply_format(char *buf, size_t cap, enum reply_id id, bool more, const char *text);

#endif
