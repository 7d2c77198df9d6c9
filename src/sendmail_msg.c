/* sendmail_msg.c - preparing a piped-in message for submission (see sendmail_msg.h): line
 * ends, the header block, -t recipients (RFC 5322 3.4 address lists), Bcc removal, the
 * headers a submission must carry (RFC 5322 3.6: Date and From are required; RFC 6409 8
 * lets the submission agent add Date, Message-ID and From), and line lengths (RFC 5322
 * 2.1.1, folding per 2.2.3). */
#include "sendmail_msg.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define SM_LINE_MAX 998 /* octets before CRLF */

struct buf {
    char *p;
    size_t len, cap;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        while (b->len + n + 1 > b->cap)
            b->cap = b->cap ? b->cap * 2 : 4096;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* One physical line, CRLF added, split so that no line exceeds SM_LINE_MAX. A header line is
 * folded before whitespace when it can be (nothing changes once unfolded), else broken with
 * a space; a body line is simply broken. */
static void put_line(struct buf *b, const char *p, size_t len, bool header)
{
    bool prefix = false;
    for (;;) {
        size_t room = SM_LINE_MAX - (prefix ? 1 : 0);
        if (prefix)
            put(b, " ", 1);
        if (len <= room) {
            put(b, p, len);
            put(b, "\r\n", 2);
            return;
        }
        size_t k = room;
        prefix = header;
        if (header) {
            for (size_t j = room - 1; j > 0; j--)
                if (p[j] == ' ' || p[j] == '\t') {
                    k = j;
                    prefix = false;
                    break;
                }
        }
        put(b, p, k);
        put(b, "\r\n", 2);
        p += k;
        len -= k;
    }
}

size_t sm_dot_end(const char *in, size_t len)
{
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(in + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - in) : len;
        size_t l = end - i;
        if ((l == 1 && in[i] == '.') || (l == 2 && in[i] == '.' && in[i + 1] == '\r'))
            return i;
        i = nl ? end + 1 : len;
    }
    return len;
}

/* ---- addresses -------------------------------------------------------------------------- */

/* Copy a quoted string starting at v[*i] == '"' into out (quotes and escapes kept). */
static void take_quoted(const char *v, size_t len, size_t *i, struct buf *out)
{
    put(out, "\"", 1);
    size_t j = *i + 1;
    while (j < len && v[j] != '"') {
        if (v[j] == '\\' && j + 1 < len) {
            put(out, v + j, 2);
            j += 2;
            continue;
        }
        if (v[j] != '\r' && v[j] != '\n')
            put(out, v + j, 1);
        j++;
    }
    put(out, "\"", 1);
    *i = j < len ? j + 1 : len;
}

static void skip_comment(const char *v, size_t len, size_t *i)
{
    int depth = 0;
    size_t j = *i;
    for (; j < len; j++) {
        if (v[j] == '\\') {
            j++;
            continue;
        }
        if (v[j] == '(')
            depth++;
        else if (v[j] == ')' && --depth == 0) {
            j++;
            break;
        }
    }
    *i = j < len ? j : len;
}

size_t sm_addresses(const char *v, size_t len, void (*fn)(const char *addr, void *arg), void *arg)
{
    struct buf plain = {0}, angle = {0};
    bool have_angle = false;
    size_t count = 0, i = 0;
    put(&plain, "", 0);
    put(&angle, "", 0);
    while (i <= len) {
        char c = i < len ? v[i] : ',';
        if (c == '"') {
            take_quoted(v, len, &i, &plain);
        } else if (c == '(') {
            skip_comment(v, len, &i);
        } else if (c == '<') {
            angle.len = 0;
            angle.p[0] = '\0';
            have_angle = true;
            i++;
            while (i < len && v[i] != '>') {
                if (v[i] == '"')
                    take_quoted(v, len, &i, &angle);
                else if (v[i] == '(')
                    skip_comment(v, len, &i);
                else {
                    if (v[i] != ' ' && v[i] != '\t' && v[i] != '\r' && v[i] != '\n')
                        put(&angle, v + i, 1);
                    i++;
                }
            }
            i++; /* the '>' */
        } else if (c == ',' || c == ';') {
            const char *a = have_angle ? angle.p : plain.p;
            if (have_angle && a[0] == '@' && strchr(a, ':'))
                a = strchr(a, ':') + 1; /* obsolete source route (RFC 5322 4.4) */
            if (a[0]) {
                fn(a, arg);
                count++;
            }
            plain.len = angle.len = 0;
            plain.p[0] = angle.p[0] = '\0';
            have_angle = false;
            i++;
        } else if (c == ':') {
            plain.len = 0; /* "group name:" */
            plain.p[0] = '\0';
            i++;
        } else {
            if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
                put(&plain, &c, 1);
            i++;
        }
    }
    free(plain.p);
    free(angle.p);
    return count;
}

static void add_rcpt(const char *addr, void *arg)
{
    struct sm_msg *m = arg;
    for (size_t i = 0; i < m->nrcpts; i++)
        if (str_ieq(m->rcpts[i], addr))
            return;
    m->rcpts = xrealloc(m->rcpts, (m->nrcpts + 1) * sizeof *m->rcpts);
    m->rcpts[m->nrcpts++] = xstrdup(addr);
}

/* ---- the message ------------------------------------------------------------------------ */

/* Length of the field name if line starts a header field ("Name:"), else 0. */
static size_t field_name_len(const char *p, size_t len)
{
    size_t i = 0;
    while (i < len && p[i] > 32 && p[i] < 127 && p[i] != ':')
        i++;
    return i > 0 && i < len && p[i] == ':' ? i : 0;
}

static bool name_is(const char *p, size_t n, const char *name)
{
    return strlen(name) == n && str_nieq(p, name, n);
}

/* The next line of in from *pos: its start and length without CR LF. false at the end. */
static bool next_line(const char *in, size_t len, size_t *pos, const char **line, size_t *n)
{
    if (*pos >= len)
        return false;
    const char *s = in + *pos;
    const char *nl = memchr(s, '\n', len - *pos);
    size_t l = nl ? (size_t)(nl - s) : len - *pos;
    *pos += l + (nl ? 1 : 0);
    if (l > 0 && s[l - 1] == '\r')
        l--;
    *line = s;
    *n = l;
    return true;
}

static void put_display_name(struct buf *b, const char *name)
{
    put(b, "\"", 1);
    for (const char *p = name; *p; p++) {
        if (*p == '\r' || *p == '\n')
            continue;
        if (*p == '"' || *p == '\\')
            put(b, "\\", 1);
        put(b, p, 1);
    }
    put(b, "\" ", 2);
}

void sm_prepare(const char *in, size_t len, const struct sm_opts *o, struct sm_msg *out)
{
    memset(out, 0, sizeof *out);
    struct buf b = {0};
    size_t pos = 0;
    if (len >= 5 && memcmp(in, "From ", 5) == 0) { /* an mbox separator, not a header */
        const char *l;
        size_t n;
        next_line(in, len, &pos, &l, &n);
    }
    bool have_from = false, have_date = false, have_msgid = false;
    bool drop = false;       /* inside a Bcc field being removed */
    bool in_field = false;
    const char *line = NULL, *fstart = NULL;
    size_t n = 0, fname = 0;
    bool body_first = false; /* the header block ended at a non-header line */
    bool more = false;
    /* Headers: each field is its first line and continuations. */
    while ((more = next_line(in, len, &pos, &line, &n))) {
        if (n == 0)
            break;
        if ((line[0] == ' ' || line[0] == '\t') && in_field) {
            if (!drop)
                put_line(&b, line, n, true);
            continue;
        }
        size_t nl = field_name_len(line, n);
        if (nl == 0) {
            body_first = true;
            break;
        }
        /* A new field: first finish the address collection of the previous one. */
        in_field = true;
        fstart = line;
        fname = nl;
        bool is_bcc = name_is(line, nl, "Bcc");
        if (o->extract && (is_bcc || name_is(line, nl, "To") || name_is(line, nl, "Cc"))) {
            /* The value runs to the end of the field: scan ahead over continuations. */
            size_t end = pos;
            const char *l2;
            size_t n2, p2 = pos;
            while (next_line(in, len, &p2, &l2, &n2) && n2 > 0 && (l2[0] == ' ' || l2[0] == '\t'))
                end = p2;
            const char *v = fstart + fname + 1;
            sm_addresses(v, (size_t)(in + end - v), add_rcpt, out);
        }
        have_from |= name_is(line, nl, "From");
        have_date |= name_is(line, nl, "Date");
        have_msgid |= name_is(line, nl, "Message-ID");
        drop = is_bcc;
        if (!drop)
            put_line(&b, line, n, true);
    }
    if (!have_from && o->from) {
        puts_(&b, "From: ");
        if (o->full_name && o->full_name[0])
            put_display_name(&b, o->full_name);
        puts_(&b, o->full_name && o->full_name[0] ? "<" : "");
        puts_(&b, o->from);
        puts_(&b, o->full_name && o->full_name[0] ? ">\r\n" : "\r\n");
    }
    if (!have_date && o->date) {
        puts_(&b, "Date: ");
        puts_(&b, o->date);
        puts_(&b, "\r\n");
    }
    if (!have_msgid && o->message_id) {
        puts_(&b, "Message-ID: ");
        puts_(&b, o->message_id);
        puts_(&b, "\r\n");
    }
    put(&b, "\r\n", 2);
    if (body_first)
        put_line(&b, line, n, false);
    if (more)
        while (next_line(in, len, &pos, &line, &n))
            put_line(&b, line, n, false);
    for (size_t i = 0; i < b.len; i++)
        if ((unsigned char)b.p[i] >= 0x80) {
            out->eightbit = true;
            break;
        }
    out->data = b.p;
    out->len = b.len;
}

void sm_msg_free(struct sm_msg *m)
{
    free(m->data);
    for (size_t i = 0; i < m->nrcpts; i++)
        free(m->rcpts[i]);
    free(m->rcpts);
    memset(m, 0, sizeof *m);
}
