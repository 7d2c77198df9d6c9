/* maildrop.c - format and parser of maildrop files (see maildrop.h; docs/queue.md). The
 * parser refuses anything unexpected: a field the pickup would copy into an SMTP command
 * must not smuggle a line end, a space or a second parameter into it (RFC 5321 4.1.2). */
#include "maildrop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "util.h"

bool maildrop_addr_ok(const char *a)
{
    for (const char *p = a; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == 0x7f)
            return false;
    return strlen(a) < MAILDROP_ADDR_MAX;
}

/* A DSN parameter value: printable ASCII without space, '=' allowed (xtext escapes). */
static bool value_ok(const char *v)
{
    if (!v[0] || strlen(v) > 200)
        return false;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
            return false;
    return true;
}

static bool msg_ok(const struct maildrop_msg *m)
{
    if (!maildrop_addr_ok(m->sender) || m->nrcpts == 0 || m->nrcpts > MAILDROP_MAX_RCPTS)
        return false;
    for (size_t i = 0; i < m->nrcpts; i++)
        if (!m->rcpts[i][0] || !maildrop_addr_ok(m->rcpts[i]))
            return false;
    return (!m->notify || value_ok(m->notify)) && (!m->ret || value_ok(m->ret)) &&
           (!m->envid || value_ok(m->envid));
}

/* Append "key value\n" (value may be NULL: the key alone). */
static void put(struct strbuf *b, const char *key, const char *value)
{
    strbuf_fmt(b, "%s%s%s\n", key, value ? " " : "", value ? value : "");
}

char *maildrop_format_head(const struct maildrop_msg *m, size_t *len)
{
    if (!msg_ok(m))
        return NULL;
    struct strbuf b = {0};
    put(&b, "tern-maildrop 1", NULL);
    put(&b, "sender", m->sender); /* "sender \n" for <> */
    for (size_t i = 0; i < m->nrcpts; i++)
        put(&b, "rcpt", m->rcpts[i]);
    if (m->notify)
        put(&b, "notify", m->notify);
    if (m->ret)
        put(&b, "ret", m->ret);
    if (m->envid)
        put(&b, "envid", m->envid);
    if (m->eightbit)
        put(&b, "8bit", NULL);
    char size[32];
    snprintf(size, sizeof size, "%zu", m->len);
    put(&b, "size", size);
    put(&b, "", NULL);
    *len = b.len;
    return b.p;
}

void maildrop_msg_free(struct maildrop_msg *m)
{
    free(m->sender);
    for (size_t i = 0; i < m->nrcpts; i++)
        free(m->rcpts[i]);
    free(m->rcpts);
    free(m->notify);
    free(m->ret);
    free(m->envid);
    *m = (struct maildrop_msg){0};
}

/* A field that may appear once: refuse a repetition. */
static bool set_once(char **field, const char *v, size_t n)
{
    if (*field)
        return false;
    *field = xstrndup(v, n);
    return true;
}

int maildrop_parse(const char *buf, size_t len, struct maildrop_msg *m, char *err,
                   size_t errlen)
{
    *m = (struct maildrop_msg){0};
    size_t ml = strlen(MAILDROP_MAGIC);
    if (len < ml || memcmp(buf, MAILDROP_MAGIC, ml) != 0) {
        errorf(err, errlen, "not a maildrop file (no \"tern-maildrop 1\" line)");
        return -1;
    }
    size_t pos = ml, lineno = 1;
    bool have_size = false;
    unsigned long long size = 0;
    for (;;) {
        lineno++;
        const char *l = buf + pos;
        const char *nl = memchr(l, '\n', len - pos);
        if (!nl) {
            errorf(err, errlen, "line %zu: no end of the header", lineno);
            goto fail;
        }
        size_t n = (size_t)(nl - l);
        pos += n + 1;
        if (n == 0)
            break;
        if (memchr(l, '\0', n)) {
            errorf(err, errlen, "line %zu: NUL octet", lineno);
            goto fail;
        }
        const char *sp = memchr(l, ' ', n);
        size_t kn = sp ? (size_t)(sp - l) : n;
        const char *v = sp ? sp + 1 : l + n;
        size_t vn = sp ? n - kn - 1 : 0;
#define KEY(k) (kn == sizeof k - 1 && memcmp(l, k, kn) == 0)
        bool ok;
        if (KEY("sender")) {
            ok = sp && set_once(&m->sender, v, vn);
        } else if (KEY("rcpt")) {
            ok = sp && vn > 0 && m->nrcpts < MAILDROP_MAX_RCPTS;
            if (ok) {
                m->rcpts = xrealloc(m->rcpts, (m->nrcpts + 1) * sizeof *m->rcpts);
                m->rcpts[m->nrcpts++] = xstrndup(v, vn);
            }
        } else if (KEY("notify")) {
            ok = sp && set_once(&m->notify, v, vn);
        } else if (KEY("ret")) {
            ok = sp && set_once(&m->ret, v, vn);
        } else if (KEY("envid")) {
            ok = sp && set_once(&m->envid, v, vn);
        } else if (KEY("8bit")) {
            ok = !sp && !m->eightbit;
            m->eightbit = true;
        } else if (KEY("size")) {
            ok = sp && !have_size && vn > 0 && vn <= 12;
            for (size_t i = 0; ok && i < vn; i++) {
                ok = v[i] >= '0' && v[i] <= '9';
                size = size * 10 + (unsigned)(v[i] - '0');
            }
            have_size = true;
        } else {
            errorf(err, errlen, "line %zu: unknown field", lineno);
            goto fail;
        }
#undef KEY
        if (!ok) {
            errorf(err, errlen, "line %zu: bad or repeated field", lineno);
            goto fail;
        }
    }
    if (!m->sender || !have_size) {
        errorf(err, errlen, "no %s line", m->sender ? "size" : "sender");
        goto fail;
    }
    if (size != len - pos) {
        errorf(err, errlen, "size %llu but %zu octets of content (truncated file?)", size,
               len - pos);
        goto fail;
    }
    if (!msg_ok(m)) {
        errorf(err, errlen, "an address or DSN parameter is not acceptable");
        goto fail;
    }
    m->data = buf + pos;
    m->len = len - pos;
    return 0;
fail:
    maildrop_msg_free(m);
    return -1;
}
