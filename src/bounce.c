/* bounce.c - delivery status notifications as complete messages, pure (no I/O).
 *
 * RFC 3464 2 (the message/delivery-status body: per-message fields, then one block per
 * recipient), RFC 6522 (multipart/report), RFC 3461 (ENVID -> Original-Envelope-Id, ORCPT ->
 * Original-Recipient, both xtext-decoded; RET), RFC 6533 (message/global-* for SMTPUTF8
 * originals), RFC 3834 (Auto-Submitted), RFC 5322 (header syntax, 78-column folding).
 *
 * Everything that comes from outside (a remote server's reply, addresses, ENVID) is made
 * safe before it goes into a header field: control characters become '?', and long values
 * are folded, so a hostile reply cannot add fields or break the MIME structure. */
#include "bounce.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"
#include "strbuf.h"
#include "util.h"

#define FOLD_AT 78
#define LINE_MAX_OCTETS 998 /* RFC 5322 2.1.1, without the CRLF */


/* A copy of s fit for a header field body: controls (CR, LF, TAB...) become a space or '?',
 * runs of spaces collapse, and octets >= 0x80 survive only when utf8 is allowed. */
static char *clean(const char *s, bool utf8)
{
    if (!s)
        s = "";
    size_t n = strlen(s);
    char *out = xmalloc(n + 1), *o = out;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char w;
        if (c == '\r' || c == '\n' || c == '\t')
            w = ' ';
        else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8))
            w = '?';
        else
            w = (char)c;
        if (w == ' ' && (o == out || o[-1] == ' '))
            continue;
        *o++ = w;
    }
    while (o > out && o[-1] == ' ')
        o--;
    *o = '\0';
    return out;
}

/* Append the words of value (clean: see above) at column col, breaking lines at spaces so
 * that they stay within FOLD_AT columns where possible; a word too long for a whole line is
 * cut, since no line may exceed 998 octets (RFC 5322 2.1.1; a remote server's reply can hold
 * a word of thousands). Continuation lines start with indent (" " folds a header field,
 * RFC 5322 2.2.3). Ends the line with CRLF. */
static void sb_words(struct strbuf *b, size_t col, const char *value, const char *indent)
{
    const char *p = value;
    bool first = true;
    size_t il = strlen(indent);
    while (*p) {
        const char *sp = strchr(p, ' ');
        size_t wl = sp ? (size_t)(sp - p) : strlen(p);
        if (!first) {
            if (col + 1 + wl > FOLD_AT) {
                strbuf_str(b, "\r\n");
                strbuf_str(b, indent);
                col = il;
            } else {
                strbuf_str(b, " ");
                col++;
            }
        }
        while (col + wl > LINE_MAX_OCTETS) {
            size_t part = col < LINE_MAX_OCTETS ? LINE_MAX_OCTETS - col : 0;
            strbuf_add(b, p, part);
            strbuf_str(b, "\r\n");
            strbuf_str(b, indent);
            col = il;
            p += part;
            wl -= part;
        }
        strbuf_add(b, p, wl);
        col += wl;
        first = false;
        p += wl;
        while (*p == ' ')
            p++;
    }
    strbuf_str(b, "\r\n");
}

/* "Name: value" folded (value must be clean). */
static void sb_field(struct strbuf *b, const char *name, const char *value)
{
    strbuf_str(b, name);
    strbuf_str(b, ": ");
    sb_words(b, strlen(name) + 2, value, " ");
}

static void sb_field_clean(struct strbuf *b, const char *name, const char *raw, bool utf8)
{
    char *v = clean(raw, utf8);
    sb_field(b, name, v);
    free(v);
}

void dsn_date(time_t t, char *out, size_t cap)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (cap == 0)
        return;
    if (!gmtime_r(&t, &tm) || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
        tm.tm_mon > 11) {
        str_copy(out, cap, "Thu, 01 Jan 1970 00:00:00 +0000");
        return;
    }
    snprintf(out, cap, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

size_t dsn_header_len(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        /* At the start of the content, or after a line end: an empty line ends the header. */
        if (i == 0 || (i == 1 && buf[0] == '\r'))
            return i + 1;
        if (i + 1 < len && buf[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    return len;
}

bool dsn_has_8bit(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)buf[i] >= 0x80)
            return true;
    return false;
}

const char *dsn_default_status(int code)
{
    if (code >= 200 && code < 300)
        return "2.0.0";
    if (code >= 400 && code < 500)
        return "4.0.0";
    return "5.0.0";
}

/* Does the boundary delimiter occur in s? (RFC 2046 5.1.1: it must not.) */
static bool contains(const char *s, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0 || len < n)
        return false;
    for (size_t i = 0; i + n <= len; i++)
        if (s[i] == needle[0] && memcmp(s + i, needle, n) == 0)
            return true;
    return false;
}

/* Only characters that need no quoting in a Message-ID or boundary. */
static void token_copy(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; s && *s && n + 1 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            c == '.' || c == '-')
            out[n++] = (char)c;
    }
    out[n] = '\0';
}

/* ORCPT "addr-type;xtext" -> "addr-type; decoded" (RFC 3464 2.3.1), or NULL if malformed. */
static char *orcpt_field(const char *orcpt)
{
    const char *semi = strchr(orcpt, ';');
    if (!semi || semi == orcpt)
        return NULL;
    const char *x = semi + 1;
    size_t xl = strlen(x);
    char *dec = xmalloc(xl + 1);
    if (!xtext_decode(x, xl, dec, xl + 1)) {
        free(dec);
        return NULL;
    }
    size_t tl = (size_t)(semi - orcpt);
    char *out = xmalloc(tl + strlen(dec) + 3);
    memcpy(out, orcpt, tl);
    out[tl] = '\0';
    strcat(out, "; ");
    strcat(out, dec);
    free(dec);
    return out;
}

/* RFC 3464 2.3.4 status-code: class "." subject "." detail, 1-3 digits each. */
static bool valid_status(const char *s)
{
    if (!s || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return false;
    s += 2;
    for (int part = 0; part < 2; part++) {
        int n = 0;
        while (*s >= '0' && *s <= '9' && n < 4) {
            s++;
            n++;
        }
        if (n == 0 || n > 3 || *s != (part == 0 ? '.' : '\0'))
            return false;
        if (part == 0)
            s++;
    }
    return true;
}

static bool is_ascii(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s >= 0x80)
            return false;
    return true;
}

static const char *action_word(enum dsn_action a)
{
    switch (a) {
    case DSN_ACTION_FAILED:
        return "failed";
    case DSN_ACTION_DELAYED:
        return "delayed";
    case DSN_ACTION_DELIVERED:
        return "delivered";
    case DSN_ACTION_RELAYED:
        return "relayed";
    }
    return "failed";
}

static void human_part(struct strbuf *b, const struct dsn_msg *m, const struct dsn_rcpt *r,
                       size_t n)
{
    char host[256], until[40];
    token_copy(host, sizeof host, m->reporting_mta);
    strbuf_fmt(b, "This is the mail system at host %s.\r\n\r\n", host);
    switch (m->kind) {
    case DSN_ACTION_FAILED:
        if (m->double_bounce) {
            strbuf_str(b, "A message from the null sender <> (a delivery status notification or\r\n"
                      "another automatic report) could not be delivered. Such a message is\r\n"
                      "never returned to anyone (RFC 5321 6.1), so it comes to the postmaster\r\n"
                      "instead. It's attached below.\r\n");
            break;
        }
        strbuf_str(b, "I'm sorry to have to inform you that your message could not\r\n"
                  "be delivered to one or more recipients. It's attached below.\r\n");
        break;
    case DSN_ACTION_DELAYED: {
        long long hours = m->now > m->arrival ? (long long)(m->now - m->arrival) / 3600 : 0;
        long long mins = m->now > m->arrival ? (long long)(m->now - m->arrival) % 3600 / 60 : 0;
        dsn_date(m->retry_until, until, sizeof until);
        strbuf_fmt(b, "Your message could not be delivered for %lld hour(s) %lld minute(s).\r\n"
                  "It will be retried until %s.\r\n"
                  "This is only a warning: you do not need to send the message again.\r\n",
               hours, mins, until);
        break;
    }
    case DSN_ACTION_DELIVERED:
    case DSN_ACTION_RELAYED:
        strbuf_str(b, "Your message was successfully delivered to the destination(s)\r\n"
                  "listed below. If the message was delivered to a mailbox you will\r\n"
                  "receive no further notifications. Otherwise you may still receive\r\n"
                  "notifications of mail delivery errors from other systems.\r\n");
        break;
    }
    strbuf_str(b, "\r\n");
    for (size_t i = 0; i < n; i++) {
        char *addr = clean(r[i].addr, m->utf8);
        const char *diag = r[i].diagnostic && r[i].diagnostic[0] ? r[i].diagnostic : NULL;
        char *text = clean(diag ? diag : r[i].reason, m->utf8);
        char *rmta = clean(r[i].remote_mta, false);
        /* One line per recipient, wrapped: the text (a remote reply) may hold one word of
         * thousands of octets. */
        struct strbuf line = {0};
        if (r[i].action == DSN_ACTION_RELAYED)
            strbuf_fmt(&line, "<%s>: relayed to %s, which does not send delivery notifications%s",
                   addr, rmta[0] ? rmta : "the next server", text[0] ? ": " : "");
        else if (r[i].action == DSN_ACTION_DELIVERED)
            strbuf_fmt(&line, "<%s>: delivered%s", addr, text[0] ? ": " : "");
        else if (diag && rmta[0])
            strbuf_fmt(&line, "<%s>: host %s said: ", addr, rmta);
        else
            strbuf_fmt(&line, "<%s>: %s", addr, text[0] ? "" : "delivery failed");
        strbuf_str(&line, text);
        sb_words(b, 0, line.p, "    ");
        free(line.p);
        free(addr);
        free(text);
        free(rmta);
    }
}

/* "Name: dns; host" (RFC 3464 2.2.2, 2.3.5: a name type, then the name). */
static void sb_dns_field(struct strbuf *b, const char *name, const char *host)
{
    char *h = clean(host, false);
    size_t hl = strlen(h);
    char *v = xmalloc(hl + 6);
    memcpy(v, "dns; ", 5);
    memcpy(v + 5, h, hl + 1);
    sb_field(b, name, v);
    free(v);
    free(h);
}

static void status_part(struct strbuf *b, const struct dsn_msg *m, const struct dsn_rcpt *r,
                        size_t n)
{
    char date[40];
    sb_dns_field(b, "Reporting-MTA", m->reporting_mta);
    sb_field_clean(b, "X-Tern-Queue-ID", m->qid, false);
    if (m->envid && m->envid[0]) {
        size_t el = strlen(m->envid);
        char *dec = xmalloc(el + 1);
        if (xtext_decode(m->envid, el, dec, el + 1))
            sb_field_clean(b, "Original-Envelope-Id", dec, m->utf8);
        free(dec);
    }
    if (m->arrival > 0) {
        dsn_date(m->arrival, date, sizeof date);
        sb_field(b, "Arrival-Date", date);
    }
    for (size_t i = 0; i < n; i++) {
        strbuf_str(b, "\r\n");
        if (r[i].orcpt && r[i].orcpt[0]) {
            char *o = orcpt_field(r[i].orcpt);
            if (o)
                sb_field_clean(b, "Original-Recipient", o, m->utf8);
            free(o);
        }
        /* RFC 6533 3: a non-ASCII address is typed "utf-8". */
        bool ascii = is_ascii(r[i].addr);
        char *addr = clean(r[i].addr, m->utf8);
        size_t al = strlen(addr);
        char *v = xmalloc(al + 16);
        snprintf(v, al + 16, "%s; %s", ascii || !m->utf8 ? "rfc822" : "utf-8", addr);
        sb_field(b, "Final-Recipient", v);
        free(v);
        free(addr);
        sb_field(b, "Action", action_word(r[i].action));
        sb_field(b, "Status", valid_status(r[i].status) ? r[i].status
                              : r[i].action == DSN_ACTION_FAILED  ? "5.0.0"
                              : r[i].action == DSN_ACTION_DELAYED ? "4.0.0"
                                                                  : "2.0.0");
        if (r[i].remote_mta && r[i].remote_mta[0])
            sb_dns_field(b, "Remote-MTA", r[i].remote_mta);
        if (r[i].diagnostic && r[i].diagnostic[0]) {
            char *d = clean(r[i].diagnostic, m->utf8);
            size_t dl = strlen(d);
            char *dv = xmalloc(dl + 7);
            memcpy(dv, "smtp; ", 6);
            memcpy(dv + 6, d, dl + 1);
            sb_field(b, "Diagnostic-Code", dv);
            free(dv);
            free(d);
        } else if (r[i].reason && r[i].reason[0]) {
            /* RFC 3464 2.3.5 wants a diagnostic type; ours is not an SMTP reply, so it goes
             * in an extension field instead of pretending to be one. */
            sb_field_clean(b, "X-Tern-Diagnostic", r[i].reason, m->utf8);
        }
        if (r[i].last_attempt > 0) {
            dsn_date(r[i].last_attempt, date, sizeof date);
            sb_field(b, "Last-Attempt-Date", date);
        }
        if (r[i].action == DSN_ACTION_DELAYED && m->retry_until > 0) {
            dsn_date(m->retry_until, date, sizeof date);
            sb_field(b, "Will-Retry-Until", date);
        }
    }
}

char *dsn_build(const struct dsn_msg *m, const struct dsn_rcpt *r, size_t n, size_t *len)
{
    struct strbuf b = {0};
    char host[256], qid[64], uniq[64], date[40], boundary[96];
    token_copy(host, sizeof host, m->reporting_mta);
    if (!host[0])
        str_copy(host, sizeof host, "localhost");
    token_copy(qid, sizeof qid, m->qid);
    token_copy(uniq, sizeof uniq, m->unique);
    const char *kind = m->kind == DSN_ACTION_FAILED    ? "failed"
                       : m->kind == DSN_ACTION_DELAYED ? "delayed"
                                                       : "success";
    /* A boundary that does not occur in what is enclosed (RFC 2046 5.1.1). */
    for (unsigned k = 0;; k++) {
        /* At most 70 characters (RFC 2046 5.1.1); "=_" cannot occur in quoted-printable. */
        snprintf(boundary, sizeof boundary, "=_%.16s/%lld/%.8s/%s/%u", qid, (long long)m->now,
                 uniq, kind, k);
        if (!contains(m->content, m->content_len, boundary))
            break;
    }
    bool utf8 = m->utf8;

    dsn_date(m->now, date, sizeof date);
    sb_field(&b, "Date", date);
    strbuf_fmt(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host);
    char *to = clean(m->sender, utf8);
    strbuf_fmt(&b, "To: <%s>\r\n", to);
    free(to);
    strbuf_fmt(&b, "Subject: %s\r\n",
           m->double_bounce                ? "Undeliverable Delivery Notification (double bounce)"
           : m->kind == DSN_ACTION_FAILED  ? "Undelivered Mail Returned to Sender"
           : m->kind == DSN_ACTION_DELAYED ? "Delayed Mail (still being retried)"
                                           : "Successful Mail Delivery Report");
    strbuf_fmt(&b, "Message-ID: <%lld.%s.%s.%s@%s>\r\n", (long long)m->now, qid, kind, uniq, host);
    strbuf_str(&b, "Auto-Submitted: auto-replied\r\n");
    strbuf_str(&b, "MIME-Version: 1.0\r\n");
    strbuf_fmt(&b, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
               " boundary=\"%s\"\r\n", boundary);
    strbuf_str(&b, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

    strbuf_fmt(&b, "--%s\r\n", boundary);
    strbuf_str(&b, "Content-Description: Notification\r\n");
    strbuf_fmt(&b, "Content-Type: text/plain; charset=%s\r\n", utf8 ? "utf-8" : "us-ascii");
    if (utf8)
        strbuf_str(&b, "Content-Transfer-Encoding: 8bit\r\n");
    strbuf_str(&b, "\r\n");
    human_part(&b, m, r, n);
    strbuf_str(&b, "\r\n");

    strbuf_fmt(&b, "--%s\r\n", boundary);
    strbuf_str(&b, "Content-Description: Delivery report\r\n");
    strbuf_fmt(&b, "Content-Type: %s\r\n",
           utf8 ? "message/global-delivery-status" : "message/delivery-status");
    if (utf8)
        strbuf_str(&b, "Content-Transfer-Encoding: 8bit\r\n");
    strbuf_str(&b, "\r\n");
    status_part(&b, m, r, n);
    strbuf_str(&b, "\r\n");

    if (m->content && m->content_len > 0) {
        bool eight = dsn_has_8bit(m->content, m->content_len);
        strbuf_fmt(&b, "--%s\r\n", boundary);
        strbuf_fmt(&b, "Content-Description: %s\r\n",
               m->full ? "Undelivered Message" : "Undelivered Message Headers");
        if (m->full)
            strbuf_fmt(&b, "Content-Type: %s\r\n", utf8 ? "message/global" : "message/rfc822");
        else
            strbuf_fmt(&b, "Content-Type: %s\r\n",
                   utf8 ? "message/global-headers" : "text/rfc822-headers");
        if (eight)
            strbuf_str(&b, "Content-Transfer-Encoding: 8bit\r\n");
        strbuf_str(&b, "\r\n");
        strbuf_add(&b, m->content, m->content_len);
        if (m->content[m->content_len - 1] != '\n')
            strbuf_str(&b, "\r\n");
        strbuf_str(&b, "\r\n");
    }
    strbuf_fmt(&b, "--%s--\r\n", boundary);
    if (len)
        *len = b.len;
    return b.p;
}
