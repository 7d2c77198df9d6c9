/* mime8.c - content checks and encoding for the SMTP client, pure (no I/O).
 *
 * RFC 6152 3 (8BITMIME: an 8-bit message goes only to a server that offers 8BITMIME; else it
 * is converted or returned as undeliverable, 5.6.3), RFC 6531 3.4 (a message that needs
 * SMTPUTF8 - non-ASCII addresses or header fields - is never sent to a server without it:
 * 5.6.7), RFC 3030 3 (BINARYMIME needs BINARYMIME and CHUNKING), RFC 5321 4.5.2 (DATA
 * transparency) and 2.3.8 (CRLF). The decision only ever removes a parameter the content
 * does not need; it never changes the content. */
#include "mime8.h"

#include <string.h>

#define LINE_MAX_OCTETS 998 /* RFC 5322 2.1.1 / RFC 5321 4.5.3.1.6, without CRLF */

void mime8_scan_init(struct mime8_scan *s)
{
    memset(s, 0, sizeof *s);
    s->prev = -1;
    s->line_empty = true;
}

void mime8_scan_feed(struct mime8_scan *s, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    for (size_t i = 0; i < len; i++) {
        int c = p[i];
        if (s->prev == '\r' && c != '\n')
            s->binary = true; /* bare CR */
        if (c == '\n') {
            if (s->prev != '\r')
                s->binary = true; /* bare LF */
            if (s->line_empty)
                s->in_body = true; /* the empty line ends the header section */
            s->line_len = 0;
            s->line_empty = true;
            s->prev = c;
            continue;
        }
        if (c != '\r') {
            s->line_empty = false;
            if (++s->line_len > LINE_MAX_OCTETS)
                s->binary = true;
        }
        if (c == 0)
            s->binary = true;
        if (c >= 0x80) {
            if (s->in_body)
                s->body_8bit = true;
            else
                s->header_8bit = true;
        }
        s->prev = c;
    }
}

bool mime8_need_scan(enum body_type body, bool smtputf8, const struct mime8_peer *peer)
{
    if (smtputf8 && !peer->smtputf8)
        return true;
    if (body == BODY_8BITMIME && !peer->eightbitmime)
        return true;
    if (body == BODY_BINARYMIME && !(peer->binarymime && peer->chunking))
        return true;
    return false;
}

enum mime8_verdict mime8_decide(enum body_type body, bool smtputf8, bool addrs_utf8,
                                const struct mime8_peer *peer, const struct mime8_scan *scan,
                                struct mime8_params *out)
{
    static const struct mime8_scan unknown = {.header_8bit = true, .body_8bit = true,
                                              .binary = true};
    if (!scan)
        scan = &unknown; /* not scanned: assume the worst */
    out->body = body;
    out->smtputf8 = smtputf8;
    bool changed = false;

    if (smtputf8 && !peer->smtputf8) {
        if (addrs_utf8 || scan->header_8bit)
            return MIME8_FAIL_UTF8;
        /* Nothing needs it: send as a plain message (RFC 6531 3.4 allows this). The body may
         * still be 8-bit, which then needs 8BITMIME below. */
        out->smtputf8 = false;
        changed = true;
        if (body != BODY_BINARYMIME && scan->body_8bit)
            body = BODY_8BITMIME;
    }
    if (body == BODY_BINARYMIME) {
        if (peer->binarymime && peer->chunking)
            return changed ? MIME8_SEND_PLAIN : MIME8_SEND;
        if (scan->binary)
            return MIME8_FAIL_BINARY;
        body = BODY_8BITMIME; /* text after all: the 8BITMIME rules apply */
        changed = true;
    }
    if (body == BODY_8BITMIME) {
        if (peer->eightbitmime) {
            out->body = BODY_8BITMIME;
            return changed ? MIME8_SEND_PLAIN : MIME8_SEND;
        }
        if (scan->header_8bit || scan->body_8bit)
            return MIME8_FAIL_8BIT;
        out->body = BODY_UNSPEC;
        return MIME8_SEND_PLAIN;
    }
    /* 7BIT or nothing declared: BODY=7BIT is a parameter of the 8BITMIME extension only. */
    if (body == BODY_7BIT && !peer->eightbitmime) {
        out->body = BODY_UNSPEC;
        changed = true;
    }
    return changed ? MIME8_SEND_PLAIN : MIME8_SEND;
}

const char *mime8_verdict_text(enum mime8_verdict v)
{
    switch (v) {
    case MIME8_FAIL_8BIT:
        return "5.6.3 the message has 8-bit content and the receiving server does not "
               "support 8BITMIME (RFC 6152); conversion required but not supported";
    case MIME8_FAIL_BINARY:
        return "5.6.3 the message has binary content and the receiving server does not "
               "support BINARYMIME and CHUNKING (RFC 3030); conversion required but not "
               "supported";
    case MIME8_FAIL_UTF8:
        return "5.6.7 the message needs SMTPUTF8 (non-ASCII addresses or header fields) and "
               "the receiving server does not support it (RFC 6531)";
    case MIME8_SEND:
    case MIME8_SEND_PLAIN:
        break;
    }
    return "2.0.0 ok";
}

/* ---- DATA encoding ---------------------------------------------------------------------- */

void dotstuff_init(struct dotstuff *d)
{
    d->bol = true;
    d->cr = false;
}

size_t dotstuff_encode(struct dotstuff *d, const char *in, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (d->cr) {
            d->cr = false;
            out[n++] = '\r';
            out[n++] = '\n';
            d->bol = true;
            if (c == '\n')
                continue; /* CRLF: written */
            /* bare CR: ended the line; c starts the next one */
        }
        if (c == '\r') {
            d->cr = true;
            continue;
        }
        if (c == '\n') { /* bare LF */
            out[n++] = '\r';
            out[n++] = '\n';
            d->bol = true;
            continue;
        }
        if (d->bol && c == '.')
            out[n++] = '.';
        out[n++] = c;
        d->bol = false;
    }
    return n;
}

size_t dotstuff_finish(struct dotstuff *d, char *out)
{
    size_t n = 0;
    if (d->cr) {
        d->cr = false;
        d->bol = true;
        out[n++] = '\r';
        out[n++] = '\n';
    }
    if (!d->bol) {
        out[n++] = '\r';
        out[n++] = '\n';
    }
    out[n++] = '.';
    out[n++] = '\r';
    out[n++] = '\n';
    d->bol = true;
    return n;
}
