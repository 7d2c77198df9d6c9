/* route.c - the routing decision for one recipient domain, pure: local, held for ODMR (RFC
 * 2645), transport override, smarthost, address literal (RFC 5321 4.1.3), or MX lookup (RFC
 * 5321 5.1). */
#include "route.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

const char *route_addr_domain(const char *addr)
{
    const char *at = addr ? strrchr(addr, '@') : NULL;
    return at && at[1] ? at + 1 : NULL;
}

static void set_err(char *err, size_t errlen, const char *msg, const char *domain)
{
    if (errlen > 0)
        snprintf(err, errlen, "%s: %.255s", msg, domain);
}

/* The transport entry for domain: an exact entry, else ".parent" entries from the closest
 * parent up. */
static const struct outbound_dest_cfg *find_transport(const struct config *cfg, const char *domain)
{
    for (size_t i = 0; i < cfg->ntransports; i++)
        if (cfg->transports[i].domain && str_ieq(cfg->transports[i].domain, domain))
            return &cfg->transports[i];
    for (const char *p = strchr(domain, '.'); p; p = strchr(p + 1, '.'))
        for (size_t i = 0; i < cfg->ntransports; i++)
            if (cfg->transports[i].domain && str_ieq(cfg->transports[i].domain, p))
                return &cfg->transports[i];
    return NULL;
}

static bool is_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static void fixed_host(struct route *out, const struct outbound_dest_cfg *d,
                       enum tls_policy global)
{
    out->kind = ROUTE_HOST;
    str_copy(out->host, sizeof out->host, d->host ? d->host : "");
    str_lower(out->host);
    out->literal = is_ip(out->host);
    out->port = d->port ? d->port : 25;
    out->tls = d->tls != TLS_POLICY_DEFAULT ? d->tls : global;
    out->dest = d;
}

int route_lookup(const struct config *cfg, const char *domain, struct route *out, char *err,
                 size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (errlen > 0)
        err[0] = '\0';
    enum tls_policy global =
        cfg->outbound_tls != TLS_POLICY_DEFAULT ? cfg->outbound_tls : TLS_POLICY_OPPORTUNISTIC;
    if (!domain || !domain[0] || !str_copy(out->domain, sizeof out->domain, domain)) {
        set_err(err, errlen, "5.1.2 bad destination domain", domain ? domain : "");
        return -1;
    }
    str_lower(out->domain);
    size_t dl = strlen(out->domain);
    if (out->domain[dl - 1] == '.' && dl > 1)
        out->domain[--dl] = '\0'; /* "example.org." is "example.org" */
    if (config_is_local_domain(cfg, out->domain)) {
        out->kind = ROUTE_LOCAL;
        snprintf(out->key, sizeof out->key, "local:%s", out->domain);
        return 0;
    }
    if (config_is_odmr_domain(cfg, out->domain)) {
        out->kind = ROUTE_ODMR;
        out->tls = TLS_POLICY_NONE; /* the customer's connection is the worker's business */
        snprintf(out->key, sizeof out->key, "odmr:%s", out->domain);
        return 0;
    }
    out->port = 25;
    out->tls = global;
    if (out->domain[0] != '[') {
        for (const char *c = out->domain; *c; c++) {
            if ((unsigned char)*c >= 0x80) {
                /* A U-label must become an A-label (RFC 5891) before DNS; tern has no IDNA
                 * library, so it cannot route it. */
                set_err(err, errlen, "5.1.2 cannot route a non-ASCII domain (IDNA is not "
                                     "supported)", out->domain);
                return -1;
            }
        }
    }
    /* A transport for the domain wins, then the smarthost; both apply to address literals
     * too (matched on the literal text). */
    const struct outbound_dest_cfg *fixed = find_transport(cfg, out->domain);
    if (!fixed && cfg->smarthost.host)
        fixed = &cfg->smarthost;
    if (fixed) {
        fixed_host(out, fixed, global);
    } else if (out->domain[0] == '[') {
        /* RFC 5321 4.1.3 address literal: [IPv4] or [IPv6:addr]. */
        char ip[ROUTE_NAME_MAX];
        const char *inner = out->domain + 1;
        if (strncmp(inner, "ipv6:", 5) == 0)
            inner += 5;
        size_t il = strlen(inner);
        unsigned char buf[16];
        if (il < 2 || inner[il - 1] != ']' || il - 1 >= sizeof ip) {
            set_err(err, errlen, "5.1.2 bad address literal", out->domain);
            return -1;
        }
        memcpy(ip, inner, il - 1);
        ip[il - 1] = '\0';
        bool v6 = inner != out->domain + 1;
        if (inet_pton(v6 ? AF_INET6 : AF_INET, ip, buf) != 1) {
            set_err(err, errlen, "5.1.2 bad address literal", out->domain);
            return -1;
        }
        out->kind = ROUTE_HOST;
        out->literal = true;
        str_copy(out->host, sizeof out->host, ip);
    } else {
        out->kind = ROUTE_MX;
        str_copy(out->host, sizeof out->host, out->domain);
    }
    if (out->kind == ROUTE_MX)
        snprintf(out->key, sizeof out->key, "mx:%s", out->domain);
    else
        snprintf(out->key, sizeof out->key, "host:%s:%u", out->host, (unsigned)out->port);
    /* Recipients share connections and transactions by key: two next hops on one host with
     * different TLS levels must not, or one level's clear-text connection would carry the
     * other's mail. ("may", the default, keeps the plain key.) */
    if (out->kind == ROUTE_HOST && out->tls != TLS_POLICY_OPPORTUNISTIC) {
        size_t kl = strlen(out->key);
        snprintf(out->key + kl, sizeof out->key - kl, ":tls=%s",
                 config_tls_policy_name(out->tls));
    }
    return 0;
}
