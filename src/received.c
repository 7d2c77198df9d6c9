/* received.c - Received: header formatting (RFC 5321 4.4, RFC 5322 3.6.7, RFC 3848), and the
 * RFC 5322 3.3 date the Date: headers tern writes use too. */
#include "received.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

const char *received_protocol(bool esmtp, bool tls, bool auth, bool utf8)
{
    static const char *const names[2][2][2][2] = {
        /* [utf8][esmtp][tls][auth] */
        {{{"SMTP", "SMTP"}, {"SMTP", "SMTP"}},
         {{"ESMTP", "ESMTPA"}, {"ESMTPS", "ESMTPSA"}}},
        {{{"UTF8SMTP", "UTF8SMTPA"}, {"UTF8SMTPS", "UTF8SMTPSA"}},
         {{"UTF8SMTP", "UTF8SMTPA"}, {"UTF8SMTPS", "UTF8SMTPSA"}}},
    };
    return names[utf8][esmtp][tls][auth];
}

size_t rfc5322_date(char *buf, size_t cap, time_t when)
{
    struct tm tm;
    if (!localtime_r(&when, &tm))
        return 0;
    /* %a and %b are locale-dependent; tern never calls setlocale, so they are "C". */
    return strftime(buf, cap, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

void rfc5322_date_now(char *buf, size_t cap)
{
    if (rfc5322_date(buf, cap, time(NULL)) == 0)
        str_copy(buf, cap, "Thu, 01 Jan 1970 00:00:00 +0000");
}

/* Copy printable ASCII only, so a hostile HELO cannot inject header lines. */
static void sanitise(char *out, size_t cap, const char *in)
{
    size_t n = 0;
    for (; *in && n + 1 < cap; in++) {
        unsigned char c = (unsigned char)*in;
        out[n++] = (c > 0x20 && c < 0x7f && c != '(' && c != ')') ? (char)c : '_';
    }
    out[n] = '\0';
}

size_t received_format(char *buf, size_t cap, const struct received_info *ri)
{
    char helo[256], date[64], user[300] = "";
    sanitise(helo, sizeof helo, ri->helo && ri->helo[0] ? ri->helo : "unknown");
    if (ri->auth_user) {
        char u[256];
        sanitise(u, sizeof u, ri->auth_user);
        snprintf(user, sizeof user, "\r\n\t(authenticated as %s)", u);
    }
    if (rfc5322_date(date, sizeof date, ri->when) == 0)
        return 0;
    int n = snprintf(buf, cap,
                     "Received: from %s ([%s])%s\r\n"
                     "\tby %s (tern) with %s%s%s%s\r\n"
                     "\tid %s%s%s%s; %s\r\n",
                     helo, ri->client_addr, user, ri->by, ri->protocol,
                     ri->tls ? " (" : "", ri->tls ? ri->tls : "", ri->tls ? ")" : "",
                     ri->qid, ri->for_rcpt ? "\r\n\tfor <" : "", ri->for_rcpt ? ri->for_rcpt : "",
                     ri->for_rcpt ? ">" : "", date);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    return (size_t)n;
}
