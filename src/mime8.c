/* mime8.c - content checks and encoding for the SMTP client, pure (no I/O).
 *
 * RFC 6152 3 (8BITMIME: an 8-bit message goes only to a server that offers 8BITMIME; else it
 * is converted or returned as undeliverable, 5.6.3), RFC 6531 3.4 (a message that needs
 * SMTPUTF8 - non-ASCII addresses or header fields - is never sent to a server without it:
 * 5.6.7), RFC 3030 3 (BINARYMIME needs BINARYMIME and CHUNKING), RFC 5321 4.5.2 (DATA
 * transparency) and 2.3.8 (CRLF). The decision only ever removes a parameter the content
 * does not need; it never changes the content. The conversion (RFC 6152 3, RFC 2045 6.7
 * quoted-printable, RFC 2046 5.1 multipart syntax) changes only the encoding of 8-bit leaf
 * entities, so the decoded content stays identical. */
#include "mime8.h"

#include "util.h"

#include <stdint.h>
#include <stdlib.h>
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

/* ---- 8-bit to 7-bit conversion --------------------------------------------------------- */

#define CONV_MAX_DEPTH 20   /* nested multiparts; deeper 8-bit content is refused */
#define QP_LINE 76          /* RFC 2045 6.7 (5): encoded lines at most 76 characters */
#define BOUNDARY_MAX 200    /* RFC 2046 5.1.1 says 70; a little slack for sloppy senders */
#define FIELD_MAX 4096      /* unfolded Content-Type / CTE value looked at */

struct obuf {
    char *p;
    size_t len, cap, limit;
    enum mime8_conv err;    /* MIME8_CONV_OK until something failed */
};

static void ob_put(struct obuf *b, const void *d, size_t n)
{
    if (b->err != MIME8_CONV_OK || n == 0)
        return;
    if (n > b->limit - b->len) {
        b->err = MIME8_CONV_TOO_BIG;
        return;
    }
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n)
            cap = cap > b->limit / 2 ? b->limit : cap * 2;
        char *p = realloc(b->p, cap); /* plain realloc: the caller can defer instead of exit */
        if (!p) {
            b->err = MIME8_CONV_NOMEM;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void ob_str(struct obuf *b, const char *s)
{
    ob_put(b, s, strlen(s));
}

static bool has8(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] >= 0x80)
            return true;
    return false;
}

/* Split an entity at its first empty line: header [0, *hlen), body [*boff, n). Without an
 * empty line everything is header. */
static void split_entity(const char *p, size_t n, size_t *hlen, size_t *boff)
{
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(p + i, '\n', n - i);
        if (!nl)
            break;
        size_t end = (size_t)(nl - p) + 1;
        if (end - i == 1 || (end - i == 2 && p[i] == '\r')) {
            *hlen = i;
            *boff = end;
            return;
        }
        i = end;
    }
    *hlen = n;
    *boff = n;
}

/* One header field at *pos: [start, end) including folded lines and the final line end;
 * name_len is 0 when the first line has no colon. */
struct field {
    size_t start, end, name_len, val;
};

static bool next_field(const char *h, size_t hlen, size_t *pos, struct field *f)
{
    if (*pos >= hlen)
        return false;
    size_t i = *pos;
    f->start = i;
    const char *nl = memchr(h + i, '\n', hlen - i);
    size_t eol = nl ? (size_t)(nl - h) : hlen;
    const char *colon = memchr(h + i, ':', eol - i);
    f->name_len = colon ? (size_t)(colon - (h + i)) : 0;
    f->val = colon ? (size_t)(colon - h) + 1 : eol;
    i = nl ? eol + 1 : hlen;
    while (i < hlen && (h[i] == ' ' || h[i] == '\t')) { /* continuation lines */
        nl = memchr(h + i, '\n', hlen - i);
        i = nl ? (size_t)(nl - h) + 1 : hlen;
    }
    f->end = i;
    *pos = i;
    return true;
}

static bool field_is(const char *h, const struct field *f, const char *name)
{
    size_t n = strlen(name);
    size_t len = f->name_len;
    while (len > 0 && (h[f->start + len - 1] == ' ' || h[f->start + len - 1] == '\t'))
        len--; /* "Name :" (obsolete syntax, RFC 5322 4.5) */
    return len == n && str_nieq(h + f->start, name, n);
}

/* The unfolded value of a field, truncated to cap - 1 characters. */
static void field_value(const char *h, const struct field *f, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = f->val; i < f->end && n + 1 < cap; i++)
        if (h[i] != '\r' && h[i] != '\n')
            out[n++] = h[i];
    out[n] = '\0';
}

/* Skip white space and RFC 822 comments (nested, with quoted pairs). */
static const char *skip_cfws(const char *s)
{
    for (;;) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s != '(')
            return s;
        int depth = 0;
        for (; *s; s++) {
            if (*s == '\\' && s[1]) {
                s++;
            } else if (*s == '(') {
                depth++;
            } else if (*s == ')' && --depth == 0) {
                s++;
                break;
            }
        }
    }
}

/* An RFC 2045 token (lower-cased, truncated to cap - 1). */
static const char *read_token(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    while (*s && !strchr(" \t()<>@,;:\\\"/[]?=", *s)) {
        if (n + 1 < cap)
            out[n++] = (char)((*s >= 'A' && *s <= 'Z') ? *s + 32 : *s);
        s++;
    }
    out[n] = '\0';
    return s;
}

struct ctype {
    char type[64], sub[64];
    char boundary[BOUNDARY_MAX + 1];
    bool has_boundary;
};

/* RFC 2045 5.1: type "/" subtype *(";" parameter); only boundary= matters here. */
static void parse_ctype(const char *v, struct ctype *ct)
{
    const char *s = skip_cfws(v);
    s = read_token(s, ct->type, sizeof ct->type);
    s = skip_cfws(s);
    if (*s == '/')
        s = read_token(skip_cfws(s + 1), ct->sub, sizeof ct->sub);
    while (*s) {
        s = strchr(s, ';');
        if (!s)
            return;
        char name[32], val[BOUNDARY_MAX + 2];
        s = read_token(skip_cfws(s + 1), name, sizeof name);
        s = skip_cfws(s);
        if (*s != '=')
            continue;
        s = skip_cfws(s + 1);
        size_t n = 0;
        bool toolong = false;
        if (*s == '"') {
            for (s++; *s && *s != '"'; s++) {
                if (*s == '\\' && s[1])
                    s++;
                if (n + 1 < sizeof val)
                    val[n++] = *s;
                else
                    toolong = true;
            }
            if (*s == '"')
                s++;
        } else {
            while (*s && !strchr(" \t();", *s)) {
                if (n + 1 < sizeof val)
                    val[n++] = *s;
                else
                    toolong = true;
                s++;
            }
        }
        val[n] = '\0';
        if (strcmp(name, "boundary") == 0 && !ct->has_boundary && n > 0 && n <= BOUNDARY_MAX &&
            !toolong) {
            memcpy(ct->boundary, val, n + 1);
            ct->has_boundary = true;
        }
    }
}

enum cte { CTE_7BIT, CTE_8BIT, CTE_BINARY, CTE_QP, CTE_BASE64, CTE_OTHER };

static enum cte parse_cte(const char *v)
{
    char tok[32];
    read_token(skip_cfws(v), tok, sizeof tok);
    if (strcmp(tok, "7bit") == 0)
        return CTE_7BIT;
    if (strcmp(tok, "8bit") == 0)
        return CTE_8BIT;
    if (strcmp(tok, "binary") == 0)
        return CTE_BINARY;
    if (strcmp(tok, "quoted-printable") == 0)
        return CTE_QP;
    if (strcmp(tok, "base64") == 0)
        return CTE_BASE64;
    return CTE_OTHER;
}

/* Copy a header section, replacing every Content-Transfer-Encoding field by one with the
 * value cte (where the first one was, else at the end) when cte is not NULL, and adding
 * MIME-Version when add_mv. */
static void put_header(const char *h, size_t hlen, const char *cte, bool add_mv, struct obuf *o)
{
    size_t pos = 0;
    struct field f;
    bool done = false;
    while (next_field(h, hlen, &pos, &f)) {
        if (cte && field_is(h, &f, "Content-Transfer-Encoding")) {
            if (!done) {
                ob_str(o, "Content-Transfer-Encoding: ");
                ob_str(o, cte);
                ob_str(o, "\r\n");
                done = true;
            }
            continue;
        }
        ob_put(o, h + f.start, f.end - f.start);
    }
    if (add_mv)
        ob_str(o, "MIME-Version: 1.0\r\n");
    if (cte && !done) {
        ob_str(o, "Content-Transfer-Encoding: ");
        ob_str(o, cte);
        ob_str(o, "\r\n");
    }
}

/* RFC 2045 6.7: quoted-printable. Printable ASCII but '=' stays literal, so do space and
 * tab except at the end of a line; CRLF is a hard line break; anything else (8-bit, '=',
 * bare CR or LF, controls) becomes =XX; soft breaks keep every line within 76 characters. */
static void qp_encode(const char *p, size_t n, struct obuf *o)
{
    static const char hex[] = "0123456789ABCDEF";
    char line[QP_LINE + 4];
    size_t ll = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') {
            ob_put(o, line, ll);
            ob_put(o, "\r\n", 2);
            ll = 0;
            i++;
            continue;
        }
        unsigned char c = (unsigned char)p[i];
        bool eol = i + 1 == n || (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n');
        char tok[3];
        size_t tl = 1;
        if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !eol)) {
            tok[0] = (char)c;
        } else {
            tok[0] = '=';
            tok[1] = hex[c >> 4];
            tok[2] = hex[c & 15];
            tl = 3;
        }
        /* the last token of a line may use column 76; others leave room for the '=' */
        if (ll + tl > (eol ? QP_LINE : QP_LINE - 1)) {
            line[ll++] = '=';
            ob_put(o, line, ll);
            ob_put(o, "\r\n", 2);
            ll = 0;
        }
        memcpy(line + ll, tok, tl);
        ll += tl;
    }
    ob_put(o, line, ll);
}

static enum mime8_conv conv_entity(const char *p, size_t n, int depth, bool top, bool digest,
                                   struct obuf *o);

/* A boundary delimiter line at or after from (RFC 2046 5.1.1): at the start of a line,
 * "--" boundary, "--" for the close delimiter, white space, then the line end or the end of
 * the data. Returns its offset or n; *close and *line_end describe it. */
static size_t find_delim(const char *p, size_t n, size_t from, const char *b, size_t bl,
                         bool *close, size_t *line_end)
{
    size_t i = from;
    while (i + 2 + bl <= n) {
        const char *hit = memchr(p + i, '-', n - i);
        if (!hit)
            break;
        size_t d = (size_t)(hit - p);
        i = d + 1;
        if (d + 2 + bl > n)
            break;
        if ((d > 0 && p[d - 1] != '\n') || p[d + 1] != '-' || memcmp(p + d + 2, b, bl) != 0)
            continue;
        size_t k = d + 2 + bl;
        bool c = false;
        if (k + 1 < n && p[k] == '-' && p[k + 1] == '-') {
            c = true;
            k += 2;
        }
        while (k < n && (p[k] == ' ' || p[k] == '\t'))
            k++;
        if (k == n || p[k] == '\n' || (p[k] == '\r' && k + 1 < n && p[k + 1] == '\n')) {
            *close = c;
            *line_end = k == n ? n : p[k] == '\n' ? k + 1 : k + 2;
            return d;
        }
    }
    return n;
}

/* The body of a multipart entity: preamble and epilogue copied (refused if 8-bit), each
 * body part converted. A missing close delimiter ends the last part at the end of the data
 * (as mail readers do). */
static enum mime8_conv conv_multipart(const char *p, size_t n, const char *b, int depth,
                                      bool digest, struct obuf *o)
{
    size_t bl = strlen(b), le;
    bool close;
    size_t d = find_delim(p, n, 0, b, bl, &close, &le);
    if (d == n || has8(p, d))
        return MIME8_CONV_MALFORMED; /* no parts, or an 8-bit preamble */
    ob_put(o, p, d);
    for (;;) {
        ob_put(o, p + d, le - d);
        if (close) {
            if (has8(p + le, n - le))
                return MIME8_CONV_MALFORMED; /* 8-bit epilogue */
            ob_put(o, p + le, n - le);
            return o->err;
        }
        size_t start = le;
        size_t next = find_delim(p, n, start, b, bl, &close, &le);
        size_t end = next;
        /* the line break before a delimiter belongs to the delimiter */
        if (end > start && p[end - 1] == '\n') {
            end--;
            if (end > start && p[end - 1] == '\r')
                end--;
        }
        enum mime8_conv r = conv_entity(p + start, end - start, depth + 1, false, digest, o);
        if (r != MIME8_CONV_OK)
            return r;
        ob_put(o, p + end, next - end);
        if (next == n)
            return o->err; /* no close delimiter */
        d = next;
    }
}

static enum mime8_conv conv_entity(const char *p, size_t n, int depth, bool top, bool digest,
                                   struct obuf *o)
{
    if (!has8(p, n)) {
        ob_put(o, p, n);
        return o->err;
    }
    size_t hlen, boff;
    split_entity(p, n, &hlen, &boff);
    if (has8(p, hlen))
        return MIME8_CONV_HEADER_8BIT;
    if (depth > CONV_MAX_DEPTH)
        return MIME8_CONV_MALFORMED;
    struct ctype ct;
    memset(&ct, 0, sizeof ct);
    bool have_ct = false, have_cte = false, have_mv = false;
    enum cte cte = CTE_7BIT; /* RFC 2045 6.1: the default */
    char val[FIELD_MAX];
    size_t pos = 0;
    struct field f;
    while (next_field(p, hlen, &pos, &f)) {
        if (!have_ct && field_is(p, &f, "Content-Type")) {
            field_value(p, &f, val, sizeof val);
            parse_ctype(val, &ct);
            have_ct = ct.type[0] != '\0';
        } else if (!have_cte && field_is(p, &f, "Content-Transfer-Encoding")) {
            field_value(p, &f, val, sizeof val);
            cte = parse_cte(val);
            have_cte = true;
        } else if (field_is(p, &f, "MIME-Version")) {
            have_mv = true;
        }
    }
    if (!have_ct) /* RFC 2046 5.1.5: parts of a digest default to message/rfc822 */
        strcpy(ct.type, digest ? "message" : "text");
    bool add_mv = top && !have_mv;
    if (strcmp(ct.type, "multipart") == 0) {
        /* RFC 2045 6.4: a multipart is 7bit, 8bit or binary; once its parts are converted
         * an 8bit one is 7bit. */
        if (cte == CTE_BINARY)
            return MIME8_CONV_BINARY;
        if (cte != CTE_7BIT && cte != CTE_8BIT)
            return MIME8_CONV_MALFORMED;
        if (!ct.has_boundary)
            return MIME8_CONV_MALFORMED;
        put_header(p, hlen, cte == CTE_8BIT ? "7bit" : NULL, add_mv, o);
        ob_put(o, p + hlen, boff - hlen);
        return conv_multipart(p + boff, n - boff, ct.boundary, depth, strcmp(ct.sub, "digest") == 0,
                              o);
    }
    if (strcmp(ct.type, "message") == 0)
        return MIME8_CONV_MESSAGE; /* RFC 2046 5.2: message/ parts take no QP/base64 */
    if (cte == CTE_BINARY)
        return MIME8_CONV_BINARY;
    if (cte != CTE_7BIT && cte != CTE_8BIT)
        return MIME8_CONV_MALFORMED; /* raw 8-bit octets in a base64/QP/unknown part */
    put_header(p, hlen, "quoted-printable", add_mv, o);
    ob_put(o, p + hlen, boff - hlen);
    qp_encode(p + boff, n - boff, o);
    return o->err;
}

enum mime8_conv mime8_convert_7bit(const char *in, size_t len, char **out, size_t *outlen)
{
    if (!has8(in, len))
        return MIME8_CONV_UNCHANGED;
    if (len > (SIZE_MAX - 65536) / 4)
        return MIME8_CONV_TOO_BIG;
    /* QP of all-8-bit text is 3 characters per octet plus a soft break every 25 octets */
    struct obuf o = {.limit = 3 * len + len / 4 + 65536};
    enum mime8_conv r = conv_entity(in, len, 0, true, false, &o);
    if (r == MIME8_CONV_OK && has8(o.p, o.len))
        r = MIME8_CONV_MALFORMED; /* cannot happen; never send 8-bit after "converting" */
    if (r == MIME8_CONV_OK && !o.p)
        r = MIME8_CONV_MALFORMED;
    if (r != MIME8_CONV_OK) {
        free(o.p);
        return r;
    }
    *out = o.p;
    *outlen = o.len;
    return MIME8_CONV_OK;
}

const char *mime8_conv_text(enum mime8_conv c)
{
    switch (c) {
    case MIME8_CONV_OK:
        return "converted to quoted-printable";
    case MIME8_CONV_UNCHANGED:
        return "no 8-bit content";
    case MIME8_CONV_HEADER_8BIT:
        return "a header field has 8-bit octets";
    case MIME8_CONV_BINARY:
        return "a MIME part with Content-Transfer-Encoding binary has 8-bit octets";
    case MIME8_CONV_MESSAGE:
        return "an attached message (message/rfc822) has 8-bit octets";
    case MIME8_CONV_MALFORMED:
        return "8-bit octets in a part that cannot be re-encoded (malformed MIME)";
    case MIME8_CONV_TOO_BIG:
        return "the converted message would be too large";
    case MIME8_CONV_NOMEM:
        return "out of memory";
    }
    return "unknown";
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
