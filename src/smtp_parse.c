/* smtp_parse.c - pure parsers for SMTP command lines, paths, ESMTP parameters and xtext.
 *
 * RFC 5321 4.1.1 (command syntax), 4.1.2 (Path, Mailbox, Local-part, Domain, address
 * literals), 4.5.3.1 (size limits); RFC 6531 3.3 (UTF-8 in Local-part and Domain);
 * RFC 1870 (SIZE), RFC 6152 / RFC 3030 (BODY), RFC 3461 4 (RET, ENVID, NOTIFY, ORCPT, xtext),
 * RFC 4865 3 (HOLDFOR, HOLDUNTIL) with RFC 3339 5.6 date-times, RFC 1985 3 (the ETRN argument).
 *
 * Everything works on (pointer, length) input that need not be NUL-terminated and writes
 * only into caller structs: no allocation, no I/O, so every function can be fuzzed.
 * Where several things are wrong with one path, a syntax error wins over a length error,
 * which wins over "needs SMTPUTF8": a client should first learn that it sent garbage. */
#include "smtp_parse.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define LABEL_MAX 63 /* RFC 1035 2.3.4 */

static const char empty[] = "";

/* ---- character classes (locale-independent, RFC 5234 core rules) ---------------------- */

static bool is_alpha(unsigned c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(unsigned c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(unsigned c)
{
    return is_alpha(c) || is_digit(c);
}

static bool is_upper_hex(unsigned c)
{
    return is_digit(c) || (c >= 'A' && c <= 'F');
}

/* atext (RFC 5322 3.2.3, used by RFC 5321 Atom), ASCII part only. */
static bool is_atext(unsigned c)
{
    return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", (int)c) != NULL);
}

/* qtextSMTP (RFC 5321 4.1.2): printable ASCII and space, except '"' and '\'. */
static bool is_qtext(unsigned c)
{
    return c == 32 || c == 33 || (c >= 35 && c <= 91) || (c >= 93 && c <= 126);
}

/* Length of the well-formed non-ASCII UTF-8 character at s (RFC 3629 UTF8-2 / UTF8-3 /
 * UTF8-4: no overlong forms, no surrogates, nothing above U+10FFFF), or 0 if there is none. */
static size_t utf8_char_len(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t len;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c == 0xE0)
        len = 3, lo = 0xA0;
    else if (c == 0xED)
        len = 3, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF)
        len = 3;
    else if (c == 0xF0)
        len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
        len = 4;
    else if (c == 0xF4)
        len = 4, hi = 0x8F;
    else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

/* ---- command line (RFC 5321 4.1.1) ------------------------------------------------------ */

enum parse_result smtp_split_command(const char *line, size_t len, struct smtp_cmdline *out)
{
    memset(out, 0, sizeof *out);
    out->arg = empty;
    if (len == 0)
        return PARSE_SYNTAX;
    /* CTLs other than TAB never belong in a command; a NUL in particular would make the
     * C-string view of the line differ from what was received. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 0x20 && c != '\t') || c == 0x7F)
            return PARSE_SYNTAX;
    }
    size_t v = 0;
    while (v < len && (is_alnum((unsigned char)line[v]) || line[v] == '-'))
        v++;
    if (v == 0 || v >= sizeof out->verb || (v < len && line[v] != ' '))
        return PARSE_SYNTAX;
    for (size_t i = 0; i < v; i++) {
        char c = line[i];
        out->verb[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }
    out->verb[v] = '\0';
    if (v < len) {
        out->arg = line + v + 1;
        out->arglen = len - v - 1;
    }
    return PARSE_OK;
}

/* ---- paths (RFC 5321 4.1.2, RFC 6531 3.3) ----------------------------------------------- */

/* A cursor over the argument; utf8 and too_long accumulate what was seen on the way. */
struct cursor {
    const unsigned char *s;
    size_t len;
    size_t pos;
    bool utf8;     /* a non-ASCII character was consumed */
    bool too_long; /* a domain label exceeded 63 octets */
};

static int peek(const struct cursor *c)
{
    return c->pos < c->len ? c->s[c->pos] : -1;
}

/* Consume one well-formed non-ASCII UTF-8 character; false if the octets are not one. */
static bool take_utf8(struct cursor *c)
{
    size_t n = utf8_char_len(c->s + c->pos, c->len - c->pos);
    if (n == 0)
        return false;
    c->pos += n;
    c->utf8 = true;
    return true;
}

/* Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str], or a U-label.
 * U-labels are accepted as any well-formed UTF-8 treated like letters (IDNA validity is
 * the DNS's business); the 63-octet label limit applies to ASCII labels, as the A-label of
 * a U-label may well be shorter than its UTF-8 form. */
static enum parse_result parse_domain_name(struct cursor *c)
{
    for (;;) {
        size_t start = c->pos;
        bool ascii = true, last_letdig = false;
        for (;;) {
            int ch = peek(c);
            if (ch >= 0 && is_alnum((unsigned)ch)) {
                c->pos++;
                last_letdig = true;
            } else if (ch == '-') {
                if (c->pos == start)
                    return PARSE_SYNTAX;
                c->pos++;
                last_letdig = false;
            } else if (ch >= 0x80) {
                if (!take_utf8(c))
                    return PARSE_SYNTAX;
                ascii = false;
                last_letdig = true;
            } else {
                break;
            }
        }
        if (c->pos == start || !last_letdig)
            return PARSE_SYNTAX;
        if (ascii && c->pos - start > LABEL_MAX)
            c->too_long = true;
        if (peek(c) != '.')
            return PARSE_OK;
        c->pos++;
    }
}

/* Snum 3("." Snum), Snum = 1*3DIGIT with value 0..255 (leading zeros allowed by the ABNF). */
static bool valid_ipv4_literal(const unsigned char *s, size_t len)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= len || s[i] != '.')
                return false;
            i++;
        }
        unsigned value = 0, digits = 0;
        while (i < len && is_digit(s[i]) && digits < 3) {
            value = value * 10 + (s[i] - '0');
            digits++;
            i++;
        }
        if (digits == 0 || value > 255)
            return false;
    }
    return i == len;
}

/* Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig, non-empty. */
static bool valid_ldh_str(const unsigned char *s, size_t len)
{
    if (len == 0 || !is_alnum(s[len - 1]))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_alnum(s[i]) && s[i] != '-')
            return false;
    return true;
}

/* address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
 * General-address-literal ) "]". IPv6 addresses are checked by inet_pton, which accepts
 * exactly the RFC 4291 text forms the RFC 5321 IPv6-addr rules describe. */
static enum parse_result parse_address_literal(struct cursor *c)
{
    size_t start = c->pos + 1, end = start;
    /* dcontent = %d33-90 / %d94-126; IPv4 and IPv6 forms are subsets of it. */
    while (end < c->len && c->s[end] != ']') {
        unsigned ch = c->s[end];
        if (ch < 33 || ch > 126 || ch == '[' || ch == '\\')
            return PARSE_SYNTAX;
        end++;
    }
    if (end >= c->len)
        return PARSE_SYNTAX;
    c->pos = end + 1;
    const unsigned char *lit = c->s + start;
    size_t len = end - start;
    const unsigned char *colon = memchr(lit, ':', len);
    if (!colon)
        return valid_ipv4_literal(lit, len) ? PARSE_OK : PARSE_SYNTAX;
    size_t taglen = (size_t)(colon - lit), restlen = len - taglen - 1;
    if (taglen == 4 && str_nieq((const char *)lit, "IPv6", 4)) {
        char buf[64];
        unsigned char addr[16];
        if (restlen == 0 || restlen >= sizeof buf)
            return PARSE_SYNTAX;
        memcpy(buf, colon + 1, restlen);
        buf[restlen] = '\0';
        return inet_pton(AF_INET6, buf, addr) == 1 ? PARSE_OK : PARSE_SYNTAX;
    }
    /* General-address-literal = Standardized-tag ":" 1*dcontent */
    return valid_ldh_str(lit, taglen) && restlen > 0 ? PARSE_OK : PARSE_SYNTAX;
}

static enum parse_result parse_domain(struct cursor *c, bool allow_literal)
{
    if (peek(c) == '[')
        return allow_literal ? parse_address_literal(c) : PARSE_SYNTAX;
    return parse_domain_name(c);
}

/* Local-part = Dot-string / Quoted-string. */
static enum parse_result parse_local_part(struct cursor *c)
{
    if (peek(c) == '"') {
        c->pos++;
        for (;;) {
            int ch = peek(c);
            if (ch < 0)
                return PARSE_SYNTAX;
            if (ch == '"') {
                c->pos++;
                return PARSE_OK;
            }
            if (ch == '\\') { /* quoted-pairSMTP = %d92 %d32-126 */
                if (c->pos + 1 >= c->len || c->s[c->pos + 1] < 32 || c->s[c->pos + 1] > 126)
                    return PARSE_SYNTAX;
                c->pos += 2;
            } else if (ch >= 0x80) {
                if (!take_utf8(c))
                    return PARSE_SYNTAX;
            } else if (is_qtext((unsigned)ch)) {
                c->pos++;
            } else {
                return PARSE_SYNTAX;
            }
        }
    }
    for (;;) { /* Dot-string = Atom *("." Atom) */
        size_t start = c->pos;
        for (;;) {
            int ch = peek(c);
            if (ch >= 0 && ch < 0x80 && is_atext((unsigned)ch))
                c->pos++;
            else if (ch >= 0x80) {
                if (!take_utf8(c))
                    return PARSE_SYNTAX;
            } else
                break;
        }
        if (c->pos == start)
            return PARSE_SYNTAX;
        if (peek(c) != '.')
            return PARSE_OK;
        c->pos++;
    }
}

/* Would s (already unquoted) parse as a Dot-string, i.e. can it be sent without quotes? */
static bool is_dot_string(const char *s, size_t len)
{
    struct cursor c = {(const unsigned char *)s, len, 0, false, false};
    return len > 0 && s[0] != '"' && parse_local_part(&c) == PARSE_OK && c.pos == len;
}

/* Bounded append for building addr; false if it would not fit (with the NUL). */
static bool append(char *dst, size_t cap, size_t *used, const char *src, size_t n)
{
    if (n >= cap - *used)
        return false;
    memcpy(dst + *used, src, n);
    *used += n;
    dst[*used] = '\0';
    return true;
}

/* Fill local (quotes and backslashes removed), domain and the canonical addr. */
static bool fill_mailbox(struct smtp_path *path, const unsigned char *lp, size_t lplen,
                         const unsigned char *dom, size_t domlen)
{
    size_t n = 0;
    if (lplen > 0 && lp[0] == '"') {
        for (size_t i = 1; i + 1 < lplen; i++) {
            if (lp[i] == '\\')
                i++;
            path->local[n++] = (char)lp[i];
        }
    } else {
        memcpy(path->local, lp, lplen);
        n = lplen;
    }
    path->local[n] = '\0';
    memcpy(path->domain, dom, domlen);
    path->domain[domlen] = '\0';

    /* The canonical form is never longer than what was sent, but check anyway. */
    size_t used = 0;
    bool ok = true;
    if (is_dot_string(path->local, n)) {
        ok = append(path->addr, sizeof path->addr, &used, path->local, n);
    } else {
        ok = append(path->addr, sizeof path->addr, &used, "\"", 1);
        for (size_t i = 0; ok && i < n; i++) {
            if (path->local[i] == '"' || path->local[i] == '\\')
                ok = append(path->addr, sizeof path->addr, &used, "\\", 1);
            ok = ok && append(path->addr, sizeof path->addr, &used, path->local + i, 1);
        }
        ok = ok && append(path->addr, sizeof path->addr, &used, "\"", 1);
    }
    ok = ok && append(path->addr, sizeof path->addr, &used, "@", 1);
    ok = ok && append(path->addr, sizeof path->addr, &used, path->domain, domlen);
    return ok;
}

enum parse_result smtp_parse_path_arg(const char *arg, size_t arglen, const char *prefix,
                                      bool allow_null, bool allow_postmaster, bool smtputf8,
                                      struct smtp_path *path, const char **params,
                                      size_t *paramslen)
{
    memset(path, 0, sizeof *path);
    *params = empty;
    *paramslen = 0;

    size_t plen = strlen(prefix);
    if (arglen < plen || !str_nieq(arg, prefix, plen))
        return PARSE_SYNTAX;
    struct cursor c = {(const unsigned char *)arg, arglen, plen, false, false};
    if (peek(&c) == ' ') /* "MAIL FROM: <a@b>" is common enough to tolerate */
        c.pos++;
    if (peek(&c) != '<') /* the brackets are mandatory (RFC 5321 4.1.2 Path) */
        return PARSE_SYNTAX;
    size_t open = c.pos++;
    size_t lstart = 0, lend = 0, dstart = 0, dend = 0;
    enum parse_result r;

    if (peek(&c) == '>') {
        if (!allow_null)
            return PARSE_SYNTAX;
        c.pos++;
        path->null = true;
    } else if (c.len - c.pos >= 11 && str_nieq(arg + c.pos, "Postmaster>", 11)) {
        if (!allow_postmaster)
            return PARSE_SYNTAX;
        lstart = c.pos;
        lend = c.pos + 10;
        c.pos += 11;
        path->postmaster = true;
    } else {
        if (peek(&c) == '@') {
            /* A-d-l = At-domain *( "," At-domain ) ":" - accepted, then ignored */
            for (;;) {
                c.pos++; /* '@' */
                if ((r = parse_domain(&c, false)) != PARSE_OK)
                    return r;
                if (peek(&c) == ':') {
                    c.pos++;
                    break;
                }
                if (peek(&c) != ',')
                    return PARSE_SYNTAX;
                c.pos++;
                if (peek(&c) != '@')
                    return PARSE_SYNTAX;
            }
        }
        lstart = c.pos;
        if ((r = parse_local_part(&c)) != PARSE_OK)
            return r;
        lend = c.pos;
        if (peek(&c) != '@')
            return PARSE_SYNTAX;
        c.pos++;
        dstart = c.pos;
        if ((r = parse_domain(&c, true)) != PARSE_OK)
            return r;
        dend = c.pos;
        if (peek(&c) != '>')
            return PARSE_SYNTAX;
        c.pos++;
    }
    size_t close = c.pos;
    if (c.pos < c.len) { /* Mail-parameters follow after at least one space */
        if (peek(&c) != ' ')
            return PARSE_SYNTAX;
        while (peek(&c) == ' ')
            c.pos++;
    }
    if (close - open > SMTP_PATH_MAX || lend - lstart > SMTP_LOCAL_MAX ||
        dend - dstart > SMTP_DOMAIN_MAX || c.too_long)
        return PARSE_TOO_LONG;

    if (path->postmaster) {
        memcpy(path->local, arg + lstart, lend - lstart);
        memcpy(path->addr, arg + lstart, lend - lstart);
    } else if (!path->null &&
               !fill_mailbox(path, c.s + lstart, lend - lstart, c.s + dstart, dend - dstart)) {
        memset(path, 0, sizeof *path);
        return PARSE_TOO_LONG;
    }
    if (c.utf8) {
        path->utf8 = true;
        if (!smtputf8)
            return PARSE_NEED_UTF8;
    }
    *params = arg + c.pos;
    *paramslen = c.len - c.pos;
    return PARSE_OK;
}

bool smtp_valid_domain(const char *s, size_t len, bool utf8)
{
    if (len == 0 || len > SMTP_DOMAIN_MAX)
        return false;
    struct cursor c = {(const unsigned char *)s, len, 0, false, false};
    return parse_domain(&c, true) == PARSE_OK && c.pos == len && !c.too_long &&
           (utf8 || !c.utf8);
}

/* ---- xtext (RFC 3461 4) ----------------------------------------------------------------- */

static bool is_xchar(unsigned c)
{
    return c >= 33 && c <= 126 && c != '+' && c != '=';
}

static unsigned hex_value(unsigned c)
{
    return is_digit(c) ? c - '0' : c - 'A' + 10;
}

bool xtext_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        if (u[i] == '+') {
            if (len - i < 3 || !is_upper_hex(u[i + 1]) || !is_upper_hex(u[i + 2]))
                return false;
            i += 3;
        } else if (is_xchar(u[i])) {
            i++;
        } else {
            return false;
        }
    }
    return true;
}

/* "+00" is refused: the result is a C string and a NUL inside it would silently cut it. */
bool xtext_decode(const char *s, size_t len, char *out, size_t cap)
{
    if (cap == 0)
        return false;
    out[0] = '\0';
    if (!xtext_valid(s, len))
        return false;
    const unsigned char *u = (const unsigned char *)s;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        unsigned ch = u[i];
        if (ch == '+') {
            ch = hex_value(u[i + 1]) * 16 + hex_value(u[i + 2]);
            i += 3;
        } else {
            i++;
        }
        if (ch == 0 || n + 1 >= cap) {
            out[n] = '\0';
            return false;
        }
        out[n++] = (char)ch;
    }
    out[n] = '\0';
    return true;
}

bool xtext_encode(const char *s, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    if (cap == 0)
        return false;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        size_t need = is_xchar(ch) ? 1 : 3;
        if (need >= cap - n) {
            out[n] = '\0';
            return false;
        }
        if (need == 1) {
            out[n++] = (char)ch;
        } else {
            out[n++] = '+';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        }
    }
    out[n] = '\0';
    return true;
}

/* ---- ESMTP parameters (RFC 5321 4.1.2 Mail-parameters / Rcpt-parameters) --------------- */

struct esmtp_param {
    const char *kw;
    size_t kwlen;
    const char *val; /* NULL when there is no "=" */
    size_t vallen;
    bool val_ok;     /* value matches esmtp-value (or is absent) */
};

/* Next space-separated token; runs of spaces (and trailing ones) are tolerated. */
static bool next_token(const char *s, size_t len, size_t *pos, const char **tok, size_t *toklen)
{
    while (*pos < len && s[*pos] == ' ')
        (*pos)++;
    if (*pos >= len)
        return false;
    size_t start = *pos;
    while (*pos < len && s[*pos] != ' ')
        (*pos)++;
    *tok = s + start;
    *toklen = *pos - start;
    return true;
}

/* esmtp-value = 1*(%d33-60 / %d62-126), plus UTF8-non-ascii (RFC 6531 3.3). */
static bool valid_esmtp_value(const char *v, size_t len)
{
    const unsigned char *u = (const unsigned char *)v;
    if (len == 0)
        return false;
    for (size_t i = 0; i < len;) {
        if (u[i] >= 0x80) {
            size_t n = utf8_char_len(u + i, len - i);
            if (n == 0)
                return false;
            i += n;
        } else if (u[i] >= 33 && u[i] <= 126 && u[i] != '=') {
            i++;
        } else {
            return false;
        }
    }
    return true;
}

/* esmtp-param = esmtp-keyword ["=" esmtp-value]; esmtp-keyword = (ALPHA / DIGIT)
 * *(ALPHA / DIGIT / "-"). PARSE_SYNTAX if the keyword is malformed. */
static enum parse_result split_param(const char *tok, size_t toklen, struct esmtp_param *p)
{
    const char *eq = memchr(tok, '=', toklen);
    p->kw = tok;
    p->kwlen = eq ? (size_t)(eq - tok) : toklen;
    p->val = eq ? eq + 1 : NULL;
    p->vallen = eq ? toklen - p->kwlen - 1 : 0;
    if (p->kwlen == 0 || !is_alnum((unsigned char)tok[0]))
        return PARSE_SYNTAX;
    for (size_t i = 1; i < p->kwlen; i++)
        if (!is_alnum((unsigned char)tok[i]) && tok[i] != '-')
            return PARSE_SYNTAX;
    p->val_ok = !eq || valid_esmtp_value(p->val, p->vallen);
    return PARSE_OK;
}

/* Report the keyword for the reply text; anything unprintable becomes '?' so a reply line
 * can never be split or forged through it. */
static void set_bad(char *bad, size_t cap, const char *kw, size_t n)
{
    if (!bad || cap == 0)
        return;
    size_t i;
    for (i = 0; i < n && i + 1 < cap; i++) {
        unsigned char ch = (unsigned char)kw[i];
        bad[i] = (ch > 32 && ch < 127) ? (char)ch : '?';
    }
    bad[i] = '\0';
}

/* Case-insensitive comparison of a counted string with a literal. */
static bool word_is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && str_nieq(s, word, n);
}

/* Index of p's keyword in names, or -1. */
static int lookup(const struct esmtp_param *p, const char *const *names, int count)
{
    for (int i = 0; i < count; i++)
        if (word_is(p->kw, p->kwlen, names[i]))
            return i;
    return -1;
}

/* The checks every parameter list shares: well-formed keyword, known, not repeated, and a
 * well-formed value. Returns the keyword index through *idx. */
static enum parse_result classify(const char *tok, size_t toklen, const char *const *names,
                                  int count, unsigned *seen, struct esmtp_param *p, int *idx,
                                  char *bad, size_t cap)
{
    enum parse_result r = split_param(tok, toklen, p);
    set_bad(bad, cap, p->kw, p->kwlen);
    if (r != PARSE_OK)
        return r;
    *idx = lookup(p, names, count);
    if (*idx < 0)
        return p->val_ok ? PARSE_UNKNOWN_PARAM : PARSE_SYNTAX;
    if ((*seen & (1u << *idx)) || !p->val_ok)
        return PARSE_BAD_PARAM;
    *seen |= 1u << *idx;
    return PARSE_OK;
}

/* SIZE value: 1*20DIGIT (RFC 1870). Values beyond 2^64-1 saturate so that the caller
 * answers "too big" (552) rather than "syntax error". */
static bool parse_size(const char *v, size_t len, unsigned long long *out)
{
    if (len == 0 || len > 20)
        return false;
    unsigned long long n = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit((unsigned char)v[i]))
            return false;
        unsigned d = (unsigned)(v[i] - '0');
        n = (n > (~0ULL - d) / 10) ? ~0ULL : n * 10 + d;
    }
    *out = n;
    return true;
}

enum parse_result smtp_parse_mail_params(const char *s, size_t len, struct mail_params *out,
                                         char *bad_keyword, size_t cap)
{
    enum { K_SIZE, K_BODY, K_SMTPUTF8, K_RET, K_ENVID, K_HOLDFOR, K_HOLDUNTIL };
    static const char *const names[] = {"SIZE",  "BODY",    "SMTPUTF8", "RET",
                                        "ENVID", "HOLDFOR", "HOLDUNTIL"};
    memset(out, 0, sizeof *out);
    set_bad(bad_keyword, cap, "", 0);
    unsigned seen = 0;
    size_t pos = 0, toklen;
    const char *tok;
    while (next_token(s, len, &pos, &tok, &toklen)) {
        struct esmtp_param p;
        int k = -1;
        enum parse_result r = classify(tok, toklen, names, (int)ARRAY_LEN(names), &seen, &p,
                                       &k, bad_keyword, cap);
        if (r != PARSE_OK)
            return r;
        bool ok = false;
        switch (k) {
        case K_SIZE:
            ok = p.val && parse_size(p.val, p.vallen, &out->size);
            out->has_size = ok;
            break;
        case K_BODY:
            if (!p.val)
                break;
            ok = true;
            if (word_is(p.val, p.vallen, "7BIT"))
                out->body = BODY_7BIT;
            else if (word_is(p.val, p.vallen, "8BITMIME"))
                out->body = BODY_8BITMIME;
            else if (word_is(p.val, p.vallen, "BINARYMIME"))
                out->body = BODY_BINARYMIME;
            else
                ok = false;
            break;
        case K_SMTPUTF8:
            ok = !p.val;
            out->smtputf8 = ok;
            break;
        case K_RET:
            if (!p.val)
                break;
            ok = true;
            if (word_is(p.val, p.vallen, "FULL"))
                out->ret = RET_FULL;
            else if (word_is(p.val, p.vallen, "HDRS"))
                out->ret = RET_HDRS;
            else
                ok = false;
            break;
        case K_ENVID:
            ok = p.val && p.vallen <= SMTP_ENVID_MAX && xtext_valid(p.val, p.vallen);
            if (ok) {
                memcpy(out->envid, p.val, p.vallen);
                out->envid[p.vallen] = '\0';
            }
            break;
        case K_HOLDFOR: {
            /* RFC 4865 3: HOLDFOR and HOLDUNTIL exclude each other */
            unsigned long long v = 0;
            ok = p.val && out->hold == HOLD_NONE && p.vallen <= 9 &&
                 parse_size(p.val, p.vallen, &v);
            if (ok) {
                out->hold = HOLD_FOR;
                out->hold_for = (long long)v;
            }
            break;
        }
        case K_HOLDUNTIL:
            ok = p.val && out->hold == HOLD_NONE &&
                 smtp_parse_rfc3339(p.val, p.vallen, &out->hold_until) == PARSE_OK;
            if (ok)
                out->hold = HOLD_UNTIL;
            break;
        default:
            break;
        }
        if (!ok)
            return PARSE_BAD_PARAM;
    }
    set_bad(bad_keyword, cap, "", 0);
    return PARSE_OK;
}

/* NOTIFY = "NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ) (RFC 3461 4.1). */
static unsigned parse_notify(const char *v, size_t len)
{
    unsigned bits = 0;
    size_t i = 0;
    for (;;) {
        const char *comma = memchr(v + i, ',', len - i);
        size_t n = comma ? (size_t)(comma - (v + i)) : len - i;
        if (word_is(v + i, n, "NEVER"))
            bits |= NOTIFY_NEVER;
        else if (word_is(v + i, n, "SUCCESS"))
            bits |= NOTIFY_SUCCESS;
        else if (word_is(v + i, n, "FAILURE"))
            bits |= NOTIFY_FAILURE;
        else if (word_is(v + i, n, "DELAY"))
            bits |= NOTIFY_DELAY;
        else
            return 0;
        if (!comma)
            break;
        i += n + 1;
    }
    if ((bits & NOTIFY_NEVER) && bits != NOTIFY_NEVER)
        return 0;
    return bits;
}

/* ORCPT = addr-type ";" xtext (RFC 3461 4.2); addr-type is an RFC 822 atom. An empty
 * xtext is refused: an empty original recipient is of no use to anyone. */
static bool valid_orcpt(const char *v, size_t len)
{
    if (len > SMTP_ORCPT_MAX)
        return false;
    const char *semi = memchr(v, ';', len);
    if (!semi || semi == v || semi + 1 == v + len)
        return false;
    for (const char *p = v; p < semi; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= 32 || ch >= 127 || strchr("()<>@,;:\\\".[]", ch))
            return false;
    }
    return xtext_valid(semi + 1, (size_t)(v + len - semi - 1));
}

enum parse_result smtp_parse_rcpt_params(const char *s, size_t len, struct rcpt_params *out,
                                         char *bad_keyword, size_t cap)
{
    enum { K_NOTIFY, K_ORCPT };
    static const char *const names[] = {"NOTIFY", "ORCPT"};
    memset(out, 0, sizeof *out);
    set_bad(bad_keyword, cap, "", 0);
    unsigned seen = 0;
    size_t pos = 0, toklen;
    const char *tok;
    while (next_token(s, len, &pos, &tok, &toklen)) {
        struct esmtp_param p;
        int k = -1;
        enum parse_result r = classify(tok, toklen, names, (int)ARRAY_LEN(names), &seen, &p,
                                       &k, bad_keyword, cap);
        if (r != PARSE_OK)
            return r;
        bool ok = false;
        if (k == K_NOTIFY) {
            out->notify = p.val ? parse_notify(p.val, p.vallen) : 0;
            ok = out->notify != 0;
        } else if (k == K_ORCPT) {
            ok = p.val && valid_orcpt(p.val, p.vallen);
            if (ok) {
                memcpy(out->orcpt, p.val, p.vallen);
                out->orcpt[p.vallen] = '\0';
            }
        }
        if (!ok)
            return PARSE_BAD_PARAM;
    }
    set_bad(bad_keyword, cap, "", 0);
    return PARSE_OK;
}

/* ---- times (RFC 3339 5.6, for RFC 4865 and X-DELIVERY-TIME) ----------------------------- */

/* n decimal digits at s, all required. */
static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static bool leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static long long days_from_epoch(int y, int m, int d)
{
    static const int before[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    /* whole years: 365 each plus the leap days in between, counted from year 0 (y >= 1) */
    long long yy = y - 1;
    long long days = 365LL * y + yy / 4 - yy / 100 + yy / 400 + 1; /* days before Jan 1 of y, from 0000 */
    days += before[m - 1] + (m > 2 && leap_year(y)) + (d - 1);
    return days - 719528; /* days before 1970-01-01, counted the same way */
}

enum parse_result smtp_parse_rfc3339(const char *s, size_t len, long long *out)
{
    /* full-date "T" partial-time time-offset: at least "YYYY-MM-DDTHH:MM:SSZ" (20) */
    int y, mo, d, h, mi, sec;
    if (len < 20 || len > 64 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &sec))
        return PARSE_SYNTAX;
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap_year(y)) || h > 23 ||
        mi > 59 || sec > 60)
        return PARSE_SYNTAX;
    size_t i = 19;
    if (s[i] == '.') { /* time-secfrac = "." 1*DIGIT */
        size_t start = ++i;
        while (i < len && is_digit((unsigned char)s[i]))
            i++;
        if (i == start)
            return PARSE_SYNTAX;
    }
    long long offset = 0;
    if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh, om;
        if (!digits(s + i + 1, 2, &oh) || !digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return PARSE_SYNTAX;
        offset = (oh * 60LL + om) * 60 * (s[i] == '+' ? 1 : -1);
        i += 6;
    }
    if (i != len)
        return PARSE_SYNTAX;
    *out = days_from_epoch(y, mo, d) * 86400 + h * 3600LL + mi * 60LL + sec - offset;
    return PARSE_OK;
}

bool smtp_format_rfc3339(long long t, char *out, size_t cap)
{
    /* civil date from days since the epoch, by counting 400-year eras */
    long long days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    long long rem = t - days * 86400;
    long long z = days + 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    long long d = doy - (153 * mp + 2) / 5 + 1;
    long long m = mp < 10 ? mp + 3 : mp - 9;
    long long y = yoe + era * 400 + (m <= 2);
    if (y < 0 || y > 9999)
        return false;
    int n = snprintf(out, cap, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ", y, m, d, rem / 3600,
                     rem / 60 % 60, rem % 60);
    return n > 0 && (size_t)n < cap;
}

enum parse_result smtp_parse_delivery_time(const char *s, size_t len, long long now,
                                           long long *out)
{
    if (len > 0 && s[0] == '+') {
        unsigned long long v;
        if (len < 2 || len > 10 || !parse_size(s + 1, len - 1, &v))
            return PARSE_SYNTAX;
        *out = now + (long long)v;
        return PARSE_OK;
    }
    return smtp_parse_rfc3339(s, len, out);
}

/* ---- ETRN (RFC 1985) ------------------------------------------------------------------ */

enum parse_result smtp_parse_etrn(const char *s, size_t len, struct etrn_arg *out)
{
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    memset(out, 0, sizeof *out);
    if (len == 0)
        return PARSE_SYNTAX;
    out->kind = s[0] == '@' ? ETRN_SUBDOMAINS : s[0] == '#' ? ETRN_QUEUE : ETRN_DOMAIN;
    if (out->kind != ETRN_DOMAIN) {
        s++;
        len--;
    }
    if (len == 0 || len > SMTP_DOMAIN_MAX)
        return len == 0 ? PARSE_SYNTAX : PARSE_TOO_LONG;
    if (out->kind == ETRN_QUEUE) {
        /* a queue name: printable, no space (the server decides what names exist) */
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)s[i] <= 32 || (unsigned char)s[i] >= 127)
                return PARSE_SYNTAX;
    } else if (s[0] == '[' || !smtp_valid_domain(s, len, false)) {
        return PARSE_SYNTAX;
    }
    memcpy(out->node, s, len);
    out->node[len] = '\0';
    if (out->kind != ETRN_QUEUE)
        for (char *p = out->node; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    return PARSE_OK;
}
