/* mime_build.c - the multipart/mixed message `tern send --attach` sends: the text as the
 * first part, each file base64-encoded after it.
 *
 * RFC 2045 (MIME-Version, Content-Type, Content-Transfer-Encoding, base64 in lines of at
 * most 76 characters: 6.8), RFC 2046 5.1 (multipart: boundary delimiter lines, the closing
 * delimiter, and a boundary that must not occur in any part), RFC 2183 (Content-Disposition:
 * attachment; filename=...), RFC 2231 3 and 4 (file names that are not plain ASCII or are
 * long: filename*=utf-8''percent-encoded, split into filename*0*, filename*1*, ...).
 * Pure: no I/O, any input bytes give a well-formed message (see tests/fuzz/fuzz_mime_build.c). */
#include "mime_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"
#include "strbuf.h"
#include "util.h"


static const struct {
    const char *ext, *type;
} types[] = {
    {"txt", "text/plain"},       {"text", "text/plain"},       {"log", "text/plain"},
    {"csv", "text/csv"},         {"html", "text/html"},        {"htm", "text/html"},
    {"xml", "application/xml"},  {"json", "application/json"}, {"pdf", "application/pdf"},
    {"zip", "application/zip"},  {"gz", "application/gzip"},   {"tar", "application/x-tar"},
    {"png", "image/png"},        {"jpg", "image/jpeg"},        {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},        {"svg", "image/svg+xml"},     {"webp", "image/webp"},
    {"ics", "text/calendar"},    {"doc", "application/msword"},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    {"odt", "application/vnd.oasis.opendocument.text"},
    {"mp3", "audio/mpeg"},       {"mp4", "video/mp4"},
    /* not .eml: message/rfc822 may not be base64-encoded (RFC 2046 5.2.1) */
};

static const char *base_name(const char *name)
{
    const char *slash = name ? strrchr(name, '/') : NULL;
    return slash ? slash + 1 : name ? name : "";
}

const char *mime_type_for_name(const char *name)
{
    const char *b = base_name(name);
    const char *dot = strrchr(b, '.');
    if (dot && dot != b)
        for (size_t i = 0; i < ARRAY_LEN(types); i++)
            if (str_ieq(dot + 1, types[i].ext))
                return types[i].type;
    return "application/octet-stream";
}

/* RFC 2045 5.1 token: printable ASCII except SPACE and tspecials. */
static bool token_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && !strchr("()<>@,;:\\\"/[]?=", c);
}

bool mime_type_valid(const char *s)
{
    const char *slash = strchr(s, '/');
    /* RFC 6838 4.2: type and subtype names of at most 127 characters each */
    if (!slash || slash == s || slash[1] == '\0' || slash - s > 127 || strlen(slash + 1) > 127)
        return false;
    for (const char *p = s; *p; p++)
        if (p != slash && !token_char((unsigned char)*p))
            return false;
    return true;
}

/* RFC 2231 7 attribute-char: a token char other than '*', '\'' and '%'. */
static bool attr_char(unsigned char c)
{
    return token_char(c) && c != '*' && c != '\'' && c != '%';
}

#define QUOTED_MAX 60  /* a filename="..." longer than this goes the RFC 2231 way, folded */
#define SEGMENT_MAX 50 /* characters of one filename*N* continuation: lines stay < 78 */

static void put_filename(struct strbuf *b, const char *name)
{
    size_t n = strlen(name), quoted = n; /* its length with the backslash escapes */
    bool plain = true;
    for (size_t i = 0; plain && i < n; i++) {
        plain = (unsigned char)name[i] >= 0x20 && (unsigned char)name[i] < 0x7f;
        quoted += name[i] == '"' || name[i] == '\\';
    }
    plain = plain && quoted <= QUOTED_MAX;
    if (plain) {
        /* RFC 2183 2 / RFC 822 quoted-string: backslash-escape '"' and '\\' */
        strbuf_str(b, ";\r\n filename=\"");
        for (size_t i = 0; i < n; i++) {
            if (name[i] == '"' || name[i] == '\\')
                strbuf_add(b, "\\", 1);
            strbuf_add(b, name + i, 1);
        }
        strbuf_str(b, "\"");
        return;
    }
    /* RFC 2231: charset''%XX...; the bytes are declared UTF-8 (what file names are today) */
    struct strbuf enc = {0};
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        char x[4];
        if (attr_char(c)) {
            strbuf_add(&enc, name + i, 1);
        } else {
            snprintf(x, sizeof x, "%%%02X", c);
            strbuf_add(&enc, x, 3);
        }
    }
    if (enc.len <= SEGMENT_MAX) {
        strbuf_str(b, ";\r\n filename*=utf-8''");
        strbuf_add(b, enc.p, enc.len);
    } else {
        /* RFC 2231 3: numbered continuations, each on its own folded line; a %XX is
         * never split between two of them */
        size_t pos = 0;
        for (unsigned seg = 0; pos < enc.len; seg++) {
            size_t take = enc.len - pos < SEGMENT_MAX ? enc.len - pos : SEGMENT_MAX;
            if (pos + take < enc.len) {
                if (enc.p[pos + take - 1] == '%')
                    take -= 1;
                else if (take >= 2 && enc.p[pos + take - 2] == '%')
                    take -= 2;
            }
            char head[48];
            snprintf(head, sizeof head, ";\r\n filename*%u*=%s", seg, seg == 0 ? "utf-8''" : "");
            strbuf_str(b, head);
            strbuf_add(b, enc.p + pos, take);
            pos += take;
        }
    }
    free(enc.p);
}

static bool contains(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
    for (size_t i = 0; nlen <= hlen && i <= hlen - nlen; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, nlen) == 0)
            return true;
    return false;
}

bool mime_has_8bit(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] >= 0x80)
            return true;
    return false;
}

#define B64_LINE 57 /* input bytes per 76-character base64 line */

char *mime_build_mixed(const char *body, size_t body_len, const struct mime_attachment *att,
                       size_t natt, const char *seed, size_t *len)
{
    /* the boundary: "=_" never occurs in base64, so only the text can clash with it. The
     * candidates "=_tern_SEED_kkkkkk" all have the same length, so each place in the text
     * rules out at most one of them: trying k = 0, 1, ... ends within len/8 + 1 tries. */
    char prefix[48];
    size_t pl = (size_t)snprintf(prefix, sizeof prefix, "=_tern_");
    for (const char *p = seed ? seed : ""; *p && pl < 40; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))
            prefix[pl++] = *p;
    prefix[pl] = '\0';
    char bnd[64];
    for (unsigned long k = 0;; k++) {
        snprintf(bnd, sizeof bnd, "%s_%06lx", prefix, k & 0xffffffUL);
        if (!contains(body, body_len, bnd, strlen(bnd)) || k > 0xffffffUL)
            break;
    }
    size_t blen = strlen(bnd);

    struct strbuf b = {0};
    strbuf_str(&b, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n boundary=\"");
    strbuf_add(&b, bnd, blen);
    strbuf_str(&b, "\"\r\n\r\nThis is a multi-part message in MIME format.\r\n");

    /* the text */
    bool eight = mime_has_8bit(body, body_len);
    strbuf_str(&b, "\r\n--");
    strbuf_add(&b, bnd, blen);
    strbuf_str(&b, eight ? "\r\nContent-Type: text/plain; charset=utf-8\r\n"
                      "Content-Transfer-Encoding: 8bit\r\n\r\n"
                    : "\r\nContent-Type: text/plain; charset=us-ascii\r\n"
                      "Content-Transfer-Encoding: 7bit\r\n\r\n");
    strbuf_add(&b, body, body_len);
    /* the CRLF before a delimiter belongs to the delimiter (RFC 2046 5.1.1): the text keeps
     * its own last line end only if it has one */

    for (size_t i = 0; i < natt; i++) {
        const struct mime_attachment *a = &att[i];
        const char *type = a->type && mime_type_valid(a->type) ? a->type
                                                               : mime_type_for_name(a->name);
        const char *fname = base_name(a->name);
        strbuf_str(&b, "\r\n--");
        strbuf_add(&b, bnd, blen);
        strbuf_str(&b, "\r\nContent-Type: ");
        strbuf_str(&b, type);
        strbuf_str(&b, "\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment");
        put_filename(&b, fname[0] ? fname : "attachment");
        strbuf_str(&b, "\r\n\r\n");
        for (size_t off = 0; off < a->len; off += B64_LINE) {
            size_t n = a->len - off < B64_LINE ? a->len - off : B64_LINE;
            char line[80];
            size_t l = smtp_b64_encode(a->data + off, n, line);
            strbuf_add(&b, line, l);
            if (off + n < a->len)
                strbuf_str(&b, "\r\n");
        }
    }
    strbuf_str(&b, "\r\n--");
    strbuf_add(&b, bnd, blen);
    strbuf_str(&b, "--\r\n");
    *len = b.len;
    return b.p;
}
