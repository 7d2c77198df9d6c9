/* received.h - the Received: trace header (RFC 5321 4.4) and the protocol keyword of the
 * "with" clause (RFC 3848: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA; RFC 6531: UTF8SMTP...). */
#ifndef TERN_RECEIVED_H
#define TERN_RECEIVED_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Protocol keyword for the Received "with" clause and the log. Returns a static string. */
const char *received_protocol(bool esmtp, bool tls, bool auth, bool utf8);

struct received_info {
    const char *helo;         /* client's HELO/EHLO argument */
    const char *client_addr;  /* numeric address */
    const char *by;           /* our hostname */
    const char *protocol;     /* received_protocol() */
    const char *qid;
    const char *tls;          /* e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384", NULL if none */
    const char *for_rcpt;     /* the single recipient, or NULL with several (privacy) */
    time_t when;
    const char *auth_user;    /* "(authenticated as USER)" after the from clause; NULL: not
                                 shown (received_auth_user off, or not authenticated) */
};

/* Format the header, folded, ending with CRLF, into buf. Returns the length or 0 if it did
 * not fit. Client-supplied text (helo) is sanitised: only printable ASCII is copied. */
size_t received_format(char *buf, size_t cap, const struct received_info *ri);

/* RFC 5322 3.3 date-time in local time, e.g. "Mon, 23 Nov 2026 07:18:09 +0000". */
size_t rfc5322_date(char *buf, size_t cap, time_t when);
/* The same for now, for a Date: header: never empty (the epoch if the time cannot be
 * formatted; buf holds at least 32 octets). */
void rfc5322_date_now(char *buf, size_t cap);

#endif
