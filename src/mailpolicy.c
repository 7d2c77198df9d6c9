/* mailpolicy.c - pure parsers for DMARC (RFC 7489 6.3/6.4), DKIM key records (RFC 6376
 * 3.2 tag lists, 3.6.1 key records), MTA-STS (RFC 8461 3.1, 3.2, 4.1) and TLS-RPT (RFC 8460
 * 3) records. No I/O. */
#include "mailpolicy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"
#include "util.h"


static void warn(char *buf, size_t cap, const char *msg)
{
    size_t l = strlen(buf);
    snprintf(buf + l, cap - l, "%s%s", l ? "; " : "", msg);
}

static bool is_wsp(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ---- tag lists ---- */

bool mp_taglist_parse(const char *s, size_t len, struct mp_taglist *out, char *err,
                      size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && s[end] != ';')
            end++;
        size_t a = i, b = end;
        while (a < b && is_wsp(s[a]))
            a++;
        while (b > a && is_wsp(s[b - 1]))
            b--;
        if (a == b) {
            /* an empty spec is only the trailing ";" (and whitespace) */
            if (end < len) {
                size_t k = end + 1;
                while (k < len && is_wsp(s[k]))
                    k++;
                if (k < len) {
                    mp_taglist_free(out);
                    return errorf(err, errlen, "empty tag between two ';'");
                }
            }
            break;
        }
        const char *eq = memchr(s + a, '=', b - a);
        if (!eq) {
            mp_taglist_free(out);
            return errorf(err, errlen, "'%.*s' is not tag=value", (int)(b - a), s + a);
        }
        size_t ne = (size_t)(eq - s);
        while (ne > a && is_wsp(s[ne - 1]))
            ne--;
        size_t nl = ne - a;
        bool name_ok = nl > 0 && nl < sizeof out->v[0].name && is_alpha(s[a]);
        for (size_t k = a; name_ok && k < ne; k++)
            name_ok = is_alpha(s[k]) || is_digit(s[k]) || s[k] == '_';
        if (!name_ok) {
            mp_taglist_free(out);
            return errorf(err, errlen, "bad tag name '%.*s'", (int)nl, s + a);
        }
        for (size_t k = 0; k < out->n; k++) {
            if (strlen(out->v[k].name) == nl && memcmp(out->v[k].name, s + a, nl) == 0) {
                mp_taglist_free(out);
                return errorf(err, errlen, "tag '%.*s' appears twice", (int)nl, s + a);
            }
        }
        size_t va = (size_t)(eq - s) + 1;
        while (va < b && is_wsp(s[va]))
            va++;
        out->v = xrealloc(out->v, (out->n + 1) * sizeof *out->v);
        struct mp_tag *t = &out->v[out->n++];
        memcpy(t->name, s + a, nl);
        t->name[nl] = '\0';
        t->value = xstrndup(s + va, b - va);
        i = end + 1;
    }
    return true;
}

void mp_taglist_free(struct mp_taglist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].value);
    free(l->v);
    memset(l, 0, sizeof *l);
}

const char *mp_tag_get(const struct mp_taglist *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].name, name) == 0)
            return l->v[i].value;
    return NULL;
}

/* "v" then optional spaces, "=", optional spaces, then exactly want, then ';', space or end */
static bool version_is(const char *txt, size_t len, const char *want)
{
    size_t i = 0;
    while (i < len && is_wsp(txt[i]))
        i++;
    if (i >= len || txt[i] != 'v')
        return false;
    i++;
    while (i < len && is_wsp(txt[i]))
        i++;
    if (i >= len || txt[i] != '=')
        return false;
    i++;
    while (i < len && is_wsp(txt[i]))
        i++;
    size_t wl = strlen(want);
    if (len - i < wl || memcmp(txt + i, want, wl) != 0)
        return false;
    i += wl;
    while (i < len && is_wsp(txt[i]))
        i++;
    return i == len || txt[i] == ';';
}

/* ---- DMARC ---- */

bool dmarc_is_record(const char *txt, size_t len)
{
    return version_is(txt, len, "DMARC1");
}

const char *dmarc_policy_name(enum dmarc_policy p)
{
    switch (p) {
    case DMARC_QUARANTINE: return "quarantine";
    case DMARC_REJECT: return "reject";
    default: return "none";
    }
}

static bool dmarc_policy_parse(const char *v, enum dmarc_policy *p)
{
    if (str_ieq(v, "none"))
        *p = DMARC_NONE;
    else if (str_ieq(v, "quarantine"))
        *p = DMARC_QUARANTINE;
    else if (str_ieq(v, "reject"))
        *p = DMARC_REJECT;
    else
        return false;
    return true;
}

/* RFC 7489 6.4: dmarc-uri = URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ], comma-separated. */
static bool uri_list_valid(const char *v, bool mailto_only, const char **bad)
{
    const char *p = v;
    if (*p == '\0') {
        *bad = "empty";
        return false;
    }
    while (*p) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m > 0 && p[m - 1] == ' ')
            m--;
        const char *bang = memchr(p, '!', m);
        size_t ul = bang ? (size_t)(bang - p) : m;
        bool ok = false;
        if (ul > 7 && str_nieq(p, "mailto:", 7))
            ok = memchr(p + 7, '@', ul - 7) != NULL;
        else if (!mailto_only && ul > 8 && str_nieq(p, "https://", 8))
            ok = true;
        if (ok && bang) {
            size_t k = 1;
            while (bang + k < p + m && is_digit(bang[k]))
                k++;
            if (k == 1)
                ok = false;
            else if (bang + k < p + m && strchr("kmgtKMGT", bang[k]))
                k++;
            if (bang + k != p + m)
                ok = false;
        }
        if (!ok) {
            *bad = p;
            return false;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return true;
}

bool dmarc_parse(const char *txt, size_t len, struct dmarc_record *out, char *err,
                 size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->adkim = out->aspf = 'r';
    out->pct = 100;
    if (!dmarc_is_record(txt, len))
        return errorf(err, errlen, "does not start with \"v=DMARC1\" (RFC 7489 6.3)");
    struct mp_taglist tl;
    if (!mp_taglist_parse(txt, len, &tl, err, errlen))
        return false;
    bool ok = true;
    const char *v;
    char tmp[200];
    if ((v = mp_tag_get(&tl, "p"))) {
        out->has_p = true;
        if (!dmarc_policy_parse(v, &out->p))
            ok = errorf(err, errlen, "p=%s: must be none, quarantine or reject", v);
    }
    out->sp = out->p;
    if (ok && (v = mp_tag_get(&tl, "sp")) && !dmarc_policy_parse(v, &out->sp))
        ok = errorf(err, errlen, "sp=%s: must be none, quarantine or reject", v);
    if (ok && (v = mp_tag_get(&tl, "adkim"))) {
        if (strcmp(v, "r") != 0 && strcmp(v, "s") != 0)
            ok = errorf(err, errlen, "adkim=%s: must be r or s", v);
        else
            out->adkim = v[0];
    }
    if (ok && (v = mp_tag_get(&tl, "aspf"))) {
        if (strcmp(v, "r") != 0 && strcmp(v, "s") != 0)
            ok = errorf(err, errlen, "aspf=%s: must be r or s", v);
        else
            out->aspf = v[0];
    }
    if (ok && (v = mp_tag_get(&tl, "pct"))) {
        char *end;
        long n = strtol(v, &end, 10);
        if (!is_digit(v[0]) || *end || n < 0 || n > 100)
            ok = errorf(err, errlen, "pct=%s: must be 0-100", v);
        else
            out->pct = (int)n;
    }
    const char *bad = NULL;
    if (ok && (v = mp_tag_get(&tl, "rua"))) {
        if (!uri_list_valid(v, false, &bad))
            ok = errorf(err, errlen, "rua: '%s' is not a mailto: (or https:) URI", bad);
        else
            out->rua = xstrdup(v);
    }
    if (ok && (v = mp_tag_get(&tl, "ruf"))) {
        if (!uri_list_valid(v, false, &bad))
            ok = errorf(err, errlen, "ruf: '%s' is not a mailto: (or https:) URI", bad);
        else
            out->ruf = xstrdup(v);
    }
    if (ok && (v = mp_tag_get(&tl, "fo"))) {
        /* fo = 0 / 1 / d / s, colon-separated */
        for (const char *p = v; ok && *p; p++)
            if (!strchr("01ds:", *p))
                ok = errorf(err, errlen, "fo=%s: options are 0, 1, d, s separated by ':'", v);
    }
    if (ok && (v = mp_tag_get(&tl, "ri"))) {
        for (const char *p = v; ok && *p; p++)
            if (!is_digit(*p))
                ok = errorf(err, errlen, "ri=%s: must be a number of seconds", v);
    }
    if (ok && (v = mp_tag_get(&tl, "rf")) && !str_ieq(v, "afrf"))
        ok = errorf(err, errlen, "rf=%s: the only format is afrf", v);
    if (ok && !out->has_p) {
        /* 6.6.3: without p, a record with a valid rua is treated as p=none; else ignored */
        if (out->rua)
            warn(out->warnings, sizeof out->warnings,
                 "no p= tag: receivers treat it as p=none (RFC 7489 6.6.3)");
        else
            ok = errorf(err, errlen, "no p= tag (and no rua=): receivers ignore the record");
    }
    if (ok && tl.n >= 2 && strcmp(tl.v[1].name, "p") != 0 && out->has_p)
        warn(out->warnings, sizeof out->warnings,
             "p= should come right after v= (RFC 7489 6.4)");
    if (ok) {
        for (size_t i = 0; i < tl.n; i++) {
            static const char *const known[] = {"v", "p", "sp", "adkim", "aspf", "pct",
                                                "rua", "ruf", "fo", "rf", "ri"};
            bool k = false;
            for (size_t j = 0; j < ARRAY_LEN(known); j++)
                k = k || strcmp(tl.v[i].name, known[j]) == 0;
            if (!k) {
                snprintf(tmp, sizeof tmp, "unknown tag '%s' (ignored by receivers)",
                         tl.v[i].name);
                warn(out->warnings, sizeof out->warnings, tmp);
            }
        }
    }
    mp_taglist_free(&tl);
    if (!ok) {
        dmarc_record_free(out);
        return false;
    }
    if (!out->rua)
        out->rua = xstrdup("");
    if (!out->ruf)
        out->ruf = xstrdup("");
    return true;
}

void dmarc_record_free(struct dmarc_record *r)
{
    free(r->rua);
    free(r->ruf);
    r->rua = r->ruf = NULL;
}

/* ---- DKIM keys ---- */

bool dkim_key_parse(const char *txt, size_t len, struct dkim_key *out, char *err,
                    size_t errlen)
{
    memset(out, 0, sizeof *out);
    str_copy(out->k, sizeof out->k, "rsa");
    struct mp_taglist tl;
    if (!mp_taglist_parse(txt, len, &tl, err, errlen))
        return false;
    bool ok = true;
    const char *v = mp_tag_get(&tl, "v");
    if (v && (strcmp(v, "DKIM1") != 0 || strcmp(tl.v[0].name, "v") != 0))
        ok = errorf(err, errlen, "v= must be \"DKIM1\" and the first tag (RFC 6376 3.6.1)");
    if (ok && (v = mp_tag_get(&tl, "k"))) {
        if (strcmp(v, "rsa") != 0 && strcmp(v, "ed25519") != 0)
            ok = errorf(err, errlen, "k=%s: unknown key type (rsa or ed25519)", v);
        else
            str_copy(out->k, sizeof out->k, v);
    }
    if (ok && (v = mp_tag_get(&tl, "t"))) {
        for (const char *p = v; *p; p++)
            if (*p == 'y')
                out->testing = true;
    }
    if (ok && (v = mp_tag_get(&tl, "s")) && !strstr(v, "*") && !strstr(v, "email"))
        ok = errorf(err, errlen, "s=%s: the key is not for email", v);
    if (ok && (v = mp_tag_get(&tl, "h"))) {
        if (!strstr(v, "sha256"))
            warn(out->warnings, sizeof out->warnings, "h= does not allow sha256");
    }
    if (ok) {
        v = mp_tag_get(&tl, "p");
        if (!v) {
            ok = errorf(err, errlen, "no p= tag (the public key) (RFC 6376 3.6.1)");
        } else {
            /* base64 with folding whitespace allowed inside */
            size_t vl = strlen(v);
            char *clean = xmalloc(vl + 1);
            size_t cl = 0;
            for (size_t i = 0; i < vl; i++)
                if (!is_wsp(v[i]))
                    clean[cl++] = v[i];
            clean[cl] = '\0';
            if (cl == 0) {
                out->revoked = true;
            } else {
                out->key = xmalloc(cl);
                long n = smtp_b64_decode(clean, cl, out->key, cl);
                if (n <= 0)
                    ok = errorf(err, errlen, "p= is not valid base64");
                else
                    out->keylen = (size_t)n;
            }
            free(clean);
        }
    }
    if (ok && out->testing)
        warn(out->warnings, sizeof out->warnings, "t=y: testing mode, verifiers may ignore "
             "failures");
    mp_taglist_free(&tl);
    if (!ok)
        dkim_key_free(out);
    return ok;
}

void dkim_key_free(struct dkim_key *k)
{
    free(k->key);
    k->key = NULL;
    k->keylen = 0;
}

/* ---- MTA-STS ---- */

bool mtasts_txt_is_record(const char *txt, size_t len)
{
    return len >= 8 && memcmp(txt, "v=STSv1", 7) == 0 && (txt[7] == ';' || txt[7] == ' ');
}

bool mtasts_txt_parse(const char *txt, size_t len, struct mtasts_txt *out, char *err,
                      size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!mtasts_txt_is_record(txt, len))
        return errorf(err, errlen, "does not start with \"v=STSv1;\" (RFC 8461 3.1)");
    struct mp_taglist tl;
    if (!mp_taglist_parse(txt, len, &tl, err, errlen))
        return false;
    bool ok = true;
    const char *id = mp_tag_get(&tl, "id");
    if (!id) {
        ok = errorf(err, errlen, "no id= field (RFC 8461 3.1)");
    } else {
        size_t n = strlen(id);
        bool alnum = n >= 1 && n <= 32;
        for (size_t i = 0; alnum && i < n; i++)
            alnum = is_alpha(id[i]) || is_digit(id[i]);
        if (!alnum)
            ok = errorf(err, errlen, "id=%s: must be 1-32 letters or digits (RFC 8461 3.1)", id);
        else
            str_copy(out->id, sizeof out->id, id);
    }
    mp_taglist_free(&tl);
    return ok;
}

const char *mtasts_mode_name(enum mtasts_mode m)
{
    switch (m) {
    case MTASTS_ENFORCE: return "enforce";
    case MTASTS_TESTING: return "testing";
    default: return "none";
    }
}

bool mtasts_policy_parse(const char *text, size_t len, struct mtasts_policy *out, char *err,
                         size_t errlen)
{
    memset(out, 0, sizeof *out);
    bool have_version = false, have_mode = false, have_age = false, ok = true;
    size_t i = 0;
    while (ok && i < len) {
        size_t e = i;
        while (e < len && text[e] != '\n')
            e++;
        size_t le = e;
        if (le > i && text[le - 1] == '\r')
            le--;
        const char *line = text + i;
        size_t ll = le - i;
        i = e + 1;
        if (ll == 0)
            continue;
        const char *colon = memchr(line, ':', ll);
        if (!colon) {
            ok = errorf(err, errlen, "line '%.*s' is not 'key: value'", (int)(ll > 60 ? 60 : ll),
                      line);
            break;
        }
        size_t kl = (size_t)(colon - line);
        const char *v = colon + 1;
        size_t vl = ll - kl - 1;
        while (vl > 0 && is_wsp(*v)) {
            v++;
            vl--;
        }
        while (vl > 0 && is_wsp(v[vl - 1]))
            vl--;
        if (kl == 7 && memcmp(line, "version", 7) == 0) {
            have_version = true;
            if (vl != 5 || memcmp(v, "STSv1", 5) != 0)
                ok = errorf(err, errlen, "version: %.*s (must be STSv1)", (int)vl, v);
        } else if (kl == 4 && memcmp(line, "mode", 4) == 0) {
            have_mode = true;
            if (vl == 7 && memcmp(v, "enforce", 7) == 0)
                out->mode = MTASTS_ENFORCE;
            else if (vl == 7 && memcmp(v, "testing", 7) == 0)
                out->mode = MTASTS_TESTING;
            else if (vl == 4 && memcmp(v, "none", 4) == 0)
                out->mode = MTASTS_NONE;
            else
                ok = errorf(err, errlen, "mode: %.*s (enforce, testing or none)", (int)vl, v);
        } else if (kl == 7 && memcmp(line, "max_age", 7) == 0) {
            have_age = true;
            unsigned long n = 0;
            bool digits = vl > 0 && vl <= 10;
            for (size_t k = 0; digits && k < vl; k++) {
                digits = is_digit(v[k]);
                n = n * 10 + (unsigned long)(v[k] - '0');
            }
            if (!digits || n > 31557600)
                ok = errorf(err, errlen, "max_age: %.*s (0-31557600 seconds)", (int)vl, v);
            out->max_age = n;
        } else if (kl == 2 && memcmp(line, "mx", 2) == 0) {
            if (vl == 0) {
                ok = errorf(err, errlen, "empty mx:");
            } else {
                out->mx = xrealloc(out->mx, (out->nmx + 1) * sizeof *out->mx);
                out->mx[out->nmx++] = xstrndup(v, vl);
            }
        }
        /* other keys: extensions, ignored (RFC 8461 3.2) */
    }
    if (ok && !have_version)
        ok = errorf(err, errlen, "no version: field");
    if (ok && !have_mode)
        ok = errorf(err, errlen, "no mode: field");
    if (ok && !have_age)
        ok = errorf(err, errlen, "no max_age: field");
    if (ok && out->mode != MTASTS_NONE && out->nmx == 0)
        ok = errorf(err, errlen, "no mx: field (required unless mode is none)");
    if (!ok)
        mtasts_policy_free(out);
    return ok;
}

void mtasts_policy_free(struct mtasts_policy *p)
{
    for (size_t i = 0; i < p->nmx; i++)
        free(p->mx[i]);
    free(p->mx);
    memset(p, 0, sizeof *p);
}

bool mtasts_mx_match(const char *pattern, const char *host)
{
    size_t pl = strlen(pattern), hl = strlen(host);
    if (pl > 0 && pattern[pl - 1] == '.')
        pl--;
    if (hl > 0 && host[hl - 1] == '.')
        hl--;
    if (pl >= 2 && pattern[0] == '*' && pattern[1] == '.') {
        /* "*.example.com" matches "mx.example.com", not "a.b.example.com" nor "example.com" */
        const char *dot = memchr(host, '.', hl);
        if (!dot || dot == host)
            return false;
        size_t rest = hl - (size_t)(dot - host);
        return rest == pl - 1 && str_nieq(dot, pattern + 1, rest);
    }
    return pl == hl && str_nieq(pattern, host, hl);
}

/* ---- TLS-RPT ---- */

bool tlsrpt_is_record(const char *txt, size_t len)
{
    return len >= 11 && memcmp(txt, "v=TLSRPTv1", 10) == 0 &&
           (txt[10] == ';' || txt[10] == ' ');
}

bool tlsrpt_parse(const char *txt, size_t len, struct tlsrpt_record *out, char *err,
                  size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!tlsrpt_is_record(txt, len))
        return errorf(err, errlen, "does not start with \"v=TLSRPTv1;\" (RFC 8460 3)");
    struct mp_taglist tl;
    if (!mp_taglist_parse(txt, len, &tl, err, errlen))
        return false;
    bool ok = true;
    const char *rua = mp_tag_get(&tl, "rua");
    const char *bad = NULL;
    if (!rua)
        ok = errorf(err, errlen, "no rua= field (RFC 8460 3)");
    else if (!uri_list_valid(rua, false, &bad))
        ok = errorf(err, errlen, "rua: '%s' is not a mailto: or https: URI", bad);
    else
        out->rua = xstrdup(rua);
    mp_taglist_free(&tl);
    return ok;
}

void tlsrpt_record_free(struct tlsrpt_record *r)
{
    free(r->rua);
    r->rua = NULL;
}
