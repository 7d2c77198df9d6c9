/* dovecot_proto.c - Dovecot's authentication client protocol, version 1 (Dovecot's
 * "Authentication Protocol" design document): parsing the server's lines (VERSION, MECH, DONE,
 * OK, CONT, FAIL) and formatting the client's (VERSION/CPID handshake, AUTH, CONT, CANCEL),
 * with Dovecot's \001 tab-escaping. Pure: no I/O, fuzzed by tests/fuzz/fuzz_dovecot_auth.c.
 *
 * Everything from the socket is treated as untrusted text: challenges must be base64 before
 * they may reach an SMTP reply, and names are bounded and free of control characters. */
#include "dovecot_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---- escaping ------------------------------------------------------------------------- */

size_t dovecot_tabescape(char *out, size_t cap, const char *in, bool *ok)
{
    size_t o = 0;
    *ok = false;
    if (cap == 0)
        return 0;
    for (; *in; in++) {
        char esc = 0;
        switch (*in) {
        case '\001': esc = '1'; break;
        case '\t': esc = 't'; break;
        case '\r': esc = 'r'; break;
        case '\n': esc = 'n'; break;
        default: break;
        }
        size_t need = esc ? 2 : 1;
        if (o + need >= cap) {
            out[0] = '\0';
            return 0;
        }
        if (esc) {
            out[o++] = '\001';
            out[o++] = esc;
        } else {
            out[o++] = *in;
        }
    }
    out[o] = '\0';
    *ok = true;
    return o;
}

size_t dovecot_tabunescape(char *out, size_t cap, const char *in, size_t len, bool *ok)
{
    size_t o = 0;
    *ok = false;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '\001' && i + 1 < len) {
            switch (in[++i]) {
            case '0': c = '\0'; break;
            case '1': c = '\001'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'n': c = '\n'; break;
            default: c = in[i]; break; /* anything else stands for itself */
            }
        }
        if (c == '\0' || o + 1 >= cap) {
            out[0] = '\0';
            return 0;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    *ok = true;
    return o;
}

/* ---- parsing -------------------------------------------------------------------------- */

bool dovecot_is_base64(const char *s, size_t len)
{
    if (len % 4 != 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '+' || c == '/';
        /* '=' only as the last one or two characters */
        bool pad = c == '=' && i + 2 >= len && (i + 1 == len || s[i + 1] == '=');
        if (!alpha && !pad)
            return false;
    }
    return true;
}

/* The next TAB-separated field of line[*pos..len); false at the end of the line. */
static bool next_field(const char *line, size_t len, size_t *pos, const char **f, size_t *flen)
{
    if (*pos > len)
        return false;
    const char *start = line + *pos;
    const char *tab = memchr(start, '\t', len - *pos);
    *f = start;
    *flen = tab ? (size_t)(tab - start) : len - *pos;
    *pos += *flen + 1;
    return true;
}

static bool field_is(const char *f, size_t flen, const char *word)
{
    return flen == strlen(word) && memcmp(f, word, flen) == 0;
}

/* "name=value": does f start with "name="? Then v and vlen are the value. */
static bool field_value(const char *f, size_t flen, const char *name, const char **v,
                        size_t *vlen)
{
    size_t n = strlen(name);
    if (flen <= n || memcmp(f, name, n) != 0 || f[n] != '=')
        return false;
    *v = f + n + 1;
    *vlen = flen - n - 1;
    return true;
}

static bool parse_ulong(const char *f, size_t flen, unsigned long max, unsigned long *out)
{
    if (flen == 0 || flen > 10)
        return false;
    unsigned long v = 0;
    for (size_t i = 0; i < flen; i++) {
        if (f[i] < '0' || f[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(f[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

/* A printable copy for logs and user names: unescaped, control characters are refused (user)
 * or replaced (reason). */
static bool copy_user(char *out, size_t cap, const char *v, size_t vlen)
{
    bool ok;
    size_t n = dovecot_tabunescape(out, cap, v, vlen, &ok);
    for (size_t i = 0; ok && i < n; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            ok = false;
    if (!ok || n == 0)
        out[0] = '\0'; /* nothing half-checked stays behind */
    return ok && n > 0;
}

static void copy_reason(char *out, size_t cap, const char *v, size_t vlen)
{
    bool ok;
    size_t n = dovecot_tabunescape(out, cap, v, vlen < cap - 1 ? vlen : cap - 1, &ok);
    if (!ok) {
        str_copy(out, cap, "(unreadable reason)");
        return;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            out[i] = '?';
}

static enum dovecot_kind parse_mech(const char *line, size_t len, size_t pos,
                                    struct dovecot_line *out)
{
    const char *f;
    size_t flen;
    if (!next_field(line, len, &pos, &f, &flen) || flen == 0 || flen > DOVECOT_MECH_NAME_MAX)
        return out->kind = DOVECOT_BAD;
    for (size_t i = 0; i < flen; i++) {
        char c = f[i];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return out->kind = DOVECOT_BAD; /* RFC 4422 3.1 mechanism name characters */
        out->mech.name[i] = c;
    }
    out->mech.name[flen] = '\0';
    static const struct {
        const char *word;
        unsigned flag;
    } flags[] = {
        {"plaintext", DMECH_PLAINTEXT}, {"anonymous", DMECH_ANONYMOUS},
        {"private", DMECH_PRIVATE}, {"dictionary", DMECH_DICTIONARY},
        {"active", DMECH_ACTIVE}, {"forward-secrecy", DMECH_FORWARD_SECRECY},
        {"mutual-auth", DMECH_MUTUAL_AUTH},
    };
    while (next_field(line, len, &pos, &f, &flen))
        for (size_t i = 0; i < ARRAY_LEN(flags); i++)
            if (field_is(f, flen, flags[i].word))
                out->mech.flags |= flags[i].flag;
    return out->kind = DOVECOT_MECH;
}

/* OK, CONT, FAIL: "<cmd>\t<id>[\t<data or params>...]" */
static enum dovecot_kind parse_answer(enum dovecot_kind kind, const char *line, size_t len,
                                      size_t pos, struct dovecot_line *out)
{
    const char *f, *v;
    size_t flen, vlen;
    if (!next_field(line, len, &pos, &f, &flen) || !parse_ulong(f, flen, 0xffffffffUL, &out->id))
        return out->kind = DOVECOT_BAD;
    if (kind == DOVECOT_CONT) {
        /* The challenge is the whole rest of the line (base64 never holds a TAB). */
        out->data = pos <= len ? line + pos : line + len;
        out->datalen = pos <= len ? len - pos : 0;
        if (!dovecot_is_base64(out->data, out->datalen))
            return out->kind = DOVECOT_BAD;
        return out->kind = kind;
    }
    while (next_field(line, len, &pos, &f, &flen)) {
        if (field_value(f, flen, "user", &v, &vlen)) {
            /* an unusable name (too long, control characters) is left empty: that one
             * request fails, the connection and the other requests are fine */
            (void)copy_user(out->user, sizeof out->user, v, vlen);
        } else if (field_value(f, flen, "resp", &v, &vlen)) {
            if (!dovecot_is_base64(v, vlen))
                return out->kind = DOVECOT_BAD;
            out->data = v;
            out->datalen = vlen;
        } else if (field_value(f, flen, "reason", &v, &vlen)) {
            copy_reason(out->reason, sizeof out->reason, v, vlen);
        } else if (field_is(f, flen, "temp")) {
            out->temp = true;
        } else if (field_value(f, flen, "code", &v, &vlen)) {
            if (vlen == 9 && memcmp(v, "temp_fail", 9) == 0)
                out->temp = true;
        }
        /* other parameters (authz, pass=, userdb fields ...) are not for us */
    }
    if (kind == DOVECOT_FAIL)
        out->data = NULL, out->datalen = 0; /* a FAIL carries no final server data */
    return out->kind = kind;
}

enum dovecot_kind dovecot_parse_line(const char *line, size_t len, struct dovecot_line *out)
{
    memset(out, 0, sizeof *out);
    if (memchr(line, '\0', len) || memchr(line, '\n', len))
        return out->kind = DOVECOT_BAD;
    size_t pos = 0;
    const char *cmd;
    size_t clen;
    if (!next_field(line, len, &pos, &cmd, &clen) || clen == 0)
        return out->kind = DOVECOT_BAD;
    if (field_is(cmd, clen, "VERSION")) {
        const char *f;
        size_t flen;
        unsigned long major, minor;
        if (!next_field(line, len, &pos, &f, &flen) || !parse_ulong(f, flen, 65535, &major) ||
            !next_field(line, len, &pos, &f, &flen) || !parse_ulong(f, flen, 65535, &minor))
            return out->kind = DOVECOT_BAD;
        out->major = (unsigned)major;
        out->minor = (unsigned)minor;
        return out->kind = DOVECOT_VERSION;
    }
    if (field_is(cmd, clen, "MECH"))
        return parse_mech(line, len, pos, out);
    if (field_is(cmd, clen, "DONE"))
        return out->kind = DOVECOT_DONE;
    if (field_is(cmd, clen, "OK"))
        return parse_answer(DOVECOT_OK, line, len, pos, out);
    if (field_is(cmd, clen, "CONT"))
        return parse_answer(DOVECOT_CONT, line, len, pos, out);
    if (field_is(cmd, clen, "FAIL"))
        return parse_answer(DOVECOT_FAIL, line, len, pos, out);
    return out->kind = DOVECOT_OTHER; /* SPID, CUID, COOKIE, and whatever a newer server adds */
}

/* ---- mechanisms ----------------------------------------------------------------------- */

bool dovecot_mech_relayable(const struct dovecot_mech *m)
{
    size_t n = strlen(m->name);
    if (m->flags & (DMECH_ANONYMOUS | DMECH_PRIVATE))
        return false;
    if (strcmp(m->name, "EXTERNAL") == 0 || strcmp(m->name, "ANONYMOUS") == 0)
        return false;
    return !(n > 5 && strcmp(m->name + n - 5, "-PLUS") == 0); /* channel binding */
}

const struct dovecot_mech *dovecot_mech_find(const struct dovecot_mechs *ms, const char *name)
{
    for (size_t i = 0; i < ms->n; i++)
        if (str_ieq(ms->v[i].name, name))
            return &ms->v[i];
    return NULL;
}

/* ---- formatting ----------------------------------------------------------------------- */

size_t dovecot_format_handshake(char *buf, size_t cap, unsigned long pid)
{
    int n = snprintf(buf, cap, "VERSION\t1\t2\nCPID\t%lu\n", pid);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Append "\t<name>=<escaped value>" (or "\t<name>" when value is NULL). */
static bool add_param(char *buf, size_t cap, size_t *len, const char *name, const char *value)
{
    int n = snprintf(buf + *len, cap - *len, "\t%s%s", name, value ? "=" : "");
    if (n < 0 || (size_t)n >= cap - *len)
        return false;
    *len += (size_t)n;
    if (!value)
        return true;
    bool ok;
    *len += dovecot_tabescape(buf + *len, cap - *len, value, &ok);
    return ok;
}

size_t dovecot_format_auth(char *buf, size_t cap, const struct dovecot_auth_params *p)
{
    char mech[DOVECOT_MECH_NAME_MAX + 1], num[16];
    bool ok;
    if (!p->mech || strlen(p->mech) > DOVECOT_MECH_NAME_MAX || strpbrk(p->mech, "\t\n\001"))
        return 0;
    str_copy(mech, sizeof mech, p->mech);
    int n = snprintf(buf, cap, "AUTH\t%lu\t%s", p->id, mech);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    size_t len = (size_t)n;
    ok = add_param(buf, cap, &len, "service", p->service ? p->service : "smtp");
    if (ok && p->local_ip)
        ok = add_param(buf, cap, &len, "lip", p->local_ip);
    if (ok && p->remote_ip)
        ok = add_param(buf, cap, &len, "rip", p->remote_ip);
    if (ok && p->local_port) {
        snprintf(num, sizeof num, "%u", p->local_port);
        ok = add_param(buf, cap, &len, "lport", num);
    }
    if (ok && p->remote_port) {
        snprintf(num, sizeof num, "%u", p->remote_port);
        ok = add_param(buf, cap, &len, "rport", num);
    }
    if (ok && p->secured)
        ok = add_param(buf, cap, &len, "secured", NULL);
    if (ok && p->no_penalty)
        ok = add_param(buf, cap, &len, "no-penalty", NULL);
    if (ok && p->resp)
        ok = dovecot_is_base64(p->resp, strlen(p->resp)) && add_param(buf, cap, &len, "resp",
                                                                      p->resp);
    if (!ok || len + 2 > cap)
        return 0;
    buf[len++] = '\n';
    buf[len] = '\0';
    return len;
}

size_t dovecot_format_cont(char *buf, size_t cap, unsigned long id, const char *resp)
{
    if (!dovecot_is_base64(resp, strlen(resp)))
        return 0;
    int n = snprintf(buf, cap, "CONT\t%lu\t%s\n", id, resp);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t dovecot_format_cancel(char *buf, size_t cap, unsigned long id)
{
    int n = snprintf(buf, cap, "CANCEL\t%lu\n", id);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}
