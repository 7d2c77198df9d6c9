/* spf.c - pure SPF record parser (RFC 7208 4.5 record selection, 4.6 term syntax and the
 * 4.6.4 lookup count, 5 mechanisms, 6 modifiers, 7.1 macro syntax, 12 ABNF). No I/O. */
#include "spf.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

bool spf_is_record(const char *txt, size_t len)
{
    return len >= 6 && str_nieq(txt, "v=spf1", 6) && (len == 6 || txt[6] == ' ');
}

bool spf_kind_counts(enum spf_kind kind)
{
    switch (kind) {
    case SPF_INCLUDE:
    case SPF_A:
    case SPF_MX:
    case SPF_PTR:
    case SPF_EXISTS:
    case SPF_REDIRECT:
        return true;
    default:
        return false;
    }
}

const char *spf_kind_name(enum spf_kind kind)
{
    static const char *const names[] = {"all", "include", "a", "mx", "ptr", "ip4", "ip6",
                                        "exists", "redirect", "exp", "modifier"};
    return (size_t)kind < ARRAY_LEN(names) ? names[kind] : "?";
}


static void warn(struct spf_record *rec, const char *msg)
{
    size_t l = strlen(rec->warnings);
    snprintf(rec->warnings + l, sizeof rec->warnings - l, "%s%s", l ? "; " : "", msg);
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 7208 7.1 macro-string: visible characters, '%' only in %{...}, %%, %_, %-. */
static bool macro_string_valid(const char *s, bool *has_macro, const char **why)
{
    *has_macro = false;
    for (size_t i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e) {
            *why = "invisible or non-ASCII character";
            return false;
        }
        if (c != '%')
            continue;
        char n = s[i + 1];
        if (n == '%' || n == '_' || n == '-') {
            i++;
            continue;
        }
        if (n != '{') {
            *why = "'%' not followed by {, %, _ or -";
            return false;
        }
        i += 2;
        if (!strchr("slodiphcrtvSLODIPHCRTV", s[i]) || s[i] == '\0') {
            *why = "unknown macro letter";
            return false;
        }
        i++;
        while (is_digit(s[i]))
            i++;
        if (s[i] == 'r' || s[i] == 'R')
            i++;
        while (s[i] && strchr(".-+,/_=", s[i]))
            i++;
        if (s[i] != '}') {
            *why = "unterminated or malformed %{...} macro";
            return false;
        }
        *has_macro = true;
    }
    return true;
}

/* RFC 7208 12: domain-end = ( "." toplabel [ "." ] ) / macro-expand; toplabel is not all
 * digits. A domain-spec without a dot (e.g. "localhost") is therefore invalid. */
static bool domain_spec_valid(const char *s, bool *has_macro, const char **why)
{
    if (*s == '\0') {
        *why = "empty domain";
        return false;
    }
    if (!macro_string_valid(s, has_macro, why))
        return false;
    size_t len = strlen(s);
    if (s[len - 1] == '}')
        return true; /* ends in a macro-expand */
    if (s[len - 1] == '.')
        len--;
    size_t dot = len;
    while (dot > 0 && s[dot - 1] != '.')
        dot--;
    if (dot == 0) {
        *why = "not a fully qualified domain (it needs a dot)";
        return false;
    }
    bool alpha = false;
    for (size_t i = dot; i < len; i++) {
        char c = s[i];
        if (is_alpha(c))
            alpha = true;
        else if (!is_digit(c) && c != '-') {
            *why = "bad character in the top-level label";
            return false;
        }
    }
    if (dot == len || !alpha || s[dot] == '-' || s[len - 1] == '-') {
        *why = "the top-level label must be letters/digits/hyphens with a letter";
        return false;
    }
    return true;
}

/* Parse "/N" (max) at *p; advances. -1 if no slash there; -2 on error. */
static int parse_cidr(const char **p, int max)
{
    if (**p != '/')
        return -1;
    const char *s = *p + 1;
    if (!is_digit(*s))
        return -2;
    if (s[0] == '0' && is_digit(s[1]))
        return -2; /* no leading zeros */
    int v = 0;
    int n = 0;
    while (is_digit(*s) && n < 4) {
        v = v * 10 + (*s - '0');
        s++;
        n++;
    }
    if (v > max)
        return -2;
    *p = s;
    return v;
}

/* Split a trailing dual-cidr-length ("/24", "//64", "/24//64") off value (in place). */
static bool split_dual_cidr(char *value, int *c4, int *c6)
{
    *c4 = *c6 = -1;
    /* find the first '/' that starts a valid dual-cidr running to the end */
    for (char *slash = strchr(value, '/'); slash; slash = strchr(slash + 1, '/')) {
        const char *p = slash;
        int a = -1, b = -1;
        if (p[1] == '/') {
            p++;
            b = parse_cidr(&p, 128);
            if (b < 0)
                continue;
        } else {
            a = parse_cidr(&p, 32);
            if (a < 0)
                continue;
            if (p[0] == '/' && p[1] == '/') {
                p++;
                b = parse_cidr(&p, 128);
                if (b < 0)
                    continue;
            }
        }
        if (*p != '\0')
            continue;
        *c4 = a;
        *c6 = b;
        *slash = '\0';
        return true;
    }
    return true;
}

struct mech_name {
    const char *name;
    enum spf_kind kind;
};

static const struct mech_name mechs[] = {
    {"all", SPF_ALL}, {"include", SPF_INCLUDE}, {"a", SPF_A},   {"mx", SPF_MX},
    {"ptr", SPF_PTR}, {"ip4", SPF_IP4},         {"ip6", SPF_IP6}, {"exists", SPF_EXISTS},
};

/* Parse one term (NUL-terminated copy) into t. */
static bool parse_term(char *s, struct spf_term *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    t->cidr4 = t->cidr6 = -1;
    t->qualifier = '+';
    /* a modifier: name "=" ...; name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) */
    size_t nl = 0;
    if (is_alpha(s[0])) {
        nl = 1;
        while (is_alpha(s[nl]) || is_digit(s[nl]) || s[nl] == '-' || s[nl] == '_' ||
               s[nl] == '.')
            nl++;
    }
    if (nl > 0 && s[nl] == '=') {
        t->name = xstrndup(s, nl);
        t->value = xstrdup(s + nl + 1);
        t->qualifier = 0;
        const char *why = NULL;
        if (str_ieq(t->name, "redirect") || str_ieq(t->name, "exp")) {
            t->kind = str_ieq(t->name, "redirect") ? SPF_REDIRECT : SPF_EXP;
            if (!domain_spec_valid(t->value, &t->macro, &why))
                return errorf(err, errlen, "%s=%s: %s", t->name, t->value, why);
        } else {
            t->kind = SPF_UNKNOWN_MODIFIER;
            if (!macro_string_valid(t->value, &t->macro, &why))
                return errorf(err, errlen, "modifier %s: %s", t->name, why);
        }
        return true;
    }
    if (strchr("+-~?", s[0]))
        t->qualifier = *s++;
    size_t ml = strcspn(s, ":/");
    const struct mech_name *m = NULL;
    for (size_t i = 0; i < ARRAY_LEN(mechs); i++)
        if (strlen(mechs[i].name) == ml && str_nieq(s, mechs[i].name, ml))
            m = &mechs[i];
    if (!m)
        return errorf(err, errlen, "unknown mechanism '%.*s'", (int)ml, s);
    t->kind = m->kind;
    t->name = xstrndup(s, ml);
    const char *rest = s + ml;
    bool colon = *rest == ':';
    t->value = xstrdup(colon ? rest + 1 : rest);
    const char *why = NULL;
    switch (t->kind) {
    case SPF_ALL:
        if (*rest)
            return errorf(err, errlen, "'all' takes no argument");
        break;
    case SPF_INCLUDE:
    case SPF_EXISTS:
        if (!colon)
            return errorf(err, errlen, "'%s' needs ':domain'", t->name);
        if (!domain_spec_valid(t->value, &t->macro, &why))
            return errorf(err, errlen, "%s:%s: %s", t->name, t->value, why);
        break;
    case SPF_A:
    case SPF_MX:
        if (!colon && *rest != '\0' && *rest != '/')
            return errorf(err, errlen, "'%s' must be followed by ':', '/' or a space", t->name);
        if (!split_dual_cidr(t->value, &t->cidr4, &t->cidr6))
            return errorf(err, errlen, "%s: bad prefix length", t->name);
        if (!colon && t->value[0] != '\0')
            return errorf(err, errlen, "%s%s: bad prefix length", t->name, t->value);
        if (colon && !domain_spec_valid(t->value, &t->macro, &why))
            return errorf(err, errlen, "%s:%s: %s", t->name, t->value, why);
        break;
    case SPF_PTR:
        if (!colon && *rest)
            return errorf(err, errlen, "'ptr' must be followed by ':' or a space");
        if (colon && !domain_spec_valid(t->value, &t->macro, &why))
            return errorf(err, errlen, "ptr:%s: %s", t->value, why);
        break;
    case SPF_IP4:
    case SPF_IP6: {
        bool v6 = t->kind == SPF_IP6;
        if (!colon)
            return errorf(err, errlen, "'%s' needs ':network'", t->name);
        char *slash = strchr(t->value, '/');
        if (slash) {
            const char *p = slash;
            int c = parse_cidr(&p, v6 ? 128 : 32);
            if (c < 0 || *p != '\0')
                return errorf(err, errlen, "%s:%s: bad prefix length (0-%d)", t->name,
                            t->value, v6 ? 128 : 32);
            if (v6)
                t->cidr6 = c;
            else
                t->cidr4 = c;
            *slash = '\0';
        }
        unsigned char buf[16];
        if (inet_pton(v6 ? AF_INET6 : AF_INET, t->value, buf) != 1)
            return errorf(err, errlen, "%s:%s is not an IPv%c address", t->name, t->value,
                        v6 ? '6' : '4');
        break;
    }
    default:
        break;
    }
    return true;
}

bool spf_parse(const char *txt, size_t len, struct spf_record *rec, char *err, size_t errlen)
{
    memset(rec, 0, sizeof *rec);
    if (err && errlen)
        err[0] = '\0';
    if (!spf_is_record(txt, len))
        return errorf(err, errlen, "does not start with \"v=spf1\"");
    if (memchr(txt, '\0', len))
        return errorf(err, errlen, "NUL byte in the record");
    char *copy = xstrndup(txt, len);
    bool ok = true;
    size_t nredirect = 0, nexp = 0;
    char *save = NULL;
    /* terms are separated by one or more SP (RFC 7208 12); tabs are not allowed */
    for (const char *c = copy; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            ok = errorf(err, errlen, "control character in the record (terms are separated "
                      "by spaces only)");
            break;
        }
    }
    char *tok = ok ? strtok_r(copy + 6, " ", &save) : NULL;
    for (; ok && tok; tok = strtok_r(NULL, " ", &save)) {
        rec->terms = xrealloc(rec->terms, (rec->n + 1) * sizeof *rec->terms);
        struct spf_term *t = &rec->terms[rec->n++];
        if (!parse_term(tok, t, err, errlen)) {
            ok = false;
            break;
        }
        if (t->kind == SPF_REDIRECT)
            nredirect++;
        if (t->kind == SPF_EXP)
            nexp++;
    }
    free(copy);
    if (ok && (nredirect > 1 || nexp > 1))
        ok = errorf(err, errlen, "'%s' appears more than once (RFC 7208 6)",
                  nredirect > 1 ? "redirect" : "exp");
    if (!ok) {
        spf_record_free(rec);
        return false;
    }

    bool after_all = false, warned_after = false, ptr = false;
    for (size_t i = 0; i < rec->n; i++) {
        const struct spf_term *t = &rec->terms[i];
        if (t->kind == SPF_ALL && !rec->all)
            rec->all = t;
        else if (t->kind == SPF_REDIRECT)
            rec->redirect = t;
        else if (after_all && t->kind <= SPF_EXISTS && !warned_after) {
            warn(rec, "mechanisms after 'all' are never evaluated");
            warned_after = true;
        }
        if (t->kind == SPF_ALL)
            after_all = true;
        if (t->kind == SPF_PTR)
            ptr = true;
    }
    if (rec->all && rec->redirect) {
        warn(rec, "'redirect' is ignored because the record has 'all' (RFC 7208 6.1)");
        rec->redirect = NULL;
    }
    for (size_t i = 0; i < rec->n; i++) {
        const struct spf_term *t = &rec->terms[i];
        if (spf_kind_counts(t->kind) && (t->kind != SPF_REDIRECT || rec->redirect))
            rec->lookups++;
    }
    if (ptr)
        warn(rec, "'ptr' is slow and unreliable and SHOULD NOT be used (RFC 7208 5.5)");
    if (rec->all && rec->all->qualifier == '+')
        warn(rec, "'+all' lets every host on the Internet send as this domain");
    else if (rec->all && rec->all->qualifier == '?')
        warn(rec, "'?all' is neutral: it protects nothing; use '~all' or '-all'");
    else if (!rec->all && !rec->redirect)
        warn(rec, "no 'all' and no 'redirect': unlisted hosts get a neutral result; end "
             "with '~all' or '-all'");
    if (len > 450)
        warn(rec, "longer than 450 octets: the answer may not fit in one UDP packet "
             "(RFC 7208 3.4)");
    return true;
}

void spf_record_free(struct spf_record *rec)
{
    for (size_t i = 0; i < rec->n; i++) {
        free(rec->terms[i].name);
        free(rec->terms[i].value);
    }
    free(rec->terms);
    memset(rec, 0, sizeof *rec);
}
