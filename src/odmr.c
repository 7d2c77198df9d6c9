/* odmr.c - which domains an ATRN asks for, and entitlement (RFC 2645 4.2); see odmr.h. */
#include "odmr.h"

#include <string.h>
#include <strings.h>

#include "smtp_parse.h"
#include "util.h"

bool odmr_list_has(const char *list, const char *domain)
{
    size_t dl = strlen(domain);
    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, ",");
        if (n == dl && strncasecmp(p, domain, n) == 0)
            return true;
        p += n + (p[n] == ',');
    }
    return false;
}

/* Append a domain to the list unless it is already there. */
static bool list_add(char *out, size_t cap, const char *domain)
{
    if (odmr_list_has(out, domain))
        return true;
    size_t used = strlen(out), dl = strlen(domain);
    if (used + (used > 0) + dl + 1 > cap)
        return false;
    if (used > 0)
        out[used++] = ',';
    memcpy(out + used, domain, dl + 1);
    str_lower(out + used);
    return true;
}

enum odmr_result odmr_atrn_domains(const struct config *cfg, const char *user, const char *arg,
                                   size_t arglen, char *out, size_t cap, char *bad,
                                   size_t badcap)
{
    if (cap == 0)
        return ODMR_SYNTAX;
    out[0] = '\0';
    if (badcap > 0)
        bad[0] = '\0';
    while (arglen > 0 && (arg[0] == ' ' || arg[0] == '\t'))
        arg++, arglen--;
    while (arglen > 0 && (arg[arglen - 1] == ' ' || arg[arglen - 1] == '\t'))
        arglen--;
    if (arglen == 0) {
        for (size_t i = 0; i < cfg->nodmr_domains; i++)
            if (config_odmr_entitled(cfg, user, cfg->odmr_domains[i].domain) &&
                !list_add(out, cap, cfg->odmr_domains[i].domain))
                return ODMR_SYNTAX;
        return out[0] ? ODMR_OK : ODMR_NO_DOMAINS;
    }
    /* RFC 2645 4.2: "ATRN" [SP domain *("," domain)]: no blanks inside the list. */
    for (size_t pos = 0; pos <= arglen;) {
        size_t n = 0;
        while (pos + n < arglen && arg[pos + n] != ',')
            n++;
        char d[SMTP_DOMAIN_MAX + 1];
        if (n == 0 || n > SMTP_DOMAIN_MAX)
            return ODMR_SYNTAX;
        memcpy(d, arg + pos, n);
        d[n] = '\0';
        if (!smtp_valid_domain(d, n, false) || d[0] == '[')
            return ODMR_SYNTAX;
        if (!config_odmr_entitled(cfg, user, d)) {
            if (badcap > 0)
                str_copy(bad, badcap, d);
            return ODMR_NOT_ENTITLED;
        }
        if (!list_add(out, cap, d))
            return ODMR_SYNTAX;
        pos += n + 1;
    }
    return ODMR_OK;
}
