/* check.c - `tern check DOMAIN`: a deliverability report for a mail domain.
 *
 * Looks at what senders and receivers look at, and says OK, WARN or FAIL with a one-line
 * reason for each finding:
 *   mx       MX records (RFC 5321 5.1, implicit MX, null MX RFC 7505) and their addresses
 *   smtp     whether each MX address answers on port 25 with a 2xx greeting and EHLO
 *   tls      STARTTLS offered (RFC 3207), and a certificate valid for the MX name (RFC 6125)
 *   rdns     reverse DNS of the MX addresses, forward-confirmed (RFC 1912 2.1)
 *   spf      the SPF record: one record, syntax, DNS-lookup count (RFC 7208 4.5, 4.6.4)
 *   dmarc    the DMARC policy (RFC 7489 6.3)
 *   dkim     DKIM key records for given (or common) selectors (RFC 6376 3.6)
 *   mta-sts  the _mta-sts TXT record and the policy file over HTTPS (RFC 8461 3)
 *   tls-rpt  the _smtp._tls TXT record (RFC 8460 3)
 * DNS goes through dns.h (--nameserver for tests); record parsing is in spf.c and
 * mailpolicy.c; connections through netclient.c. */
#include "check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "dns.h"
#include "dns_wait.h"
#include "mailpolicy.h"
#include "netclient.h"
#include "smtp_reply.h"
#include "spf.h"
#include "util.h"

#define EXIT_USAGE 64
#define MAX_MX 10        /* hosts checked */
#define MAX_ADDRS 4      /* addresses per host checked */
#define MAX_SELECTORS 16

enum level { L_OK, L_WARN, L_FAIL };
static const char *const level_names[] = {"OK", "WARN", "FAIL"};

struct finding {
    enum level level;
    char area[12];
    char *reason;
};

struct check {
    const char *domain;
    const char *nameserver;
    const char *cafile;
    unsigned port, https_port;
    int timeout_ms;
    bool connect;  /* --no-connect turns the SMTP/HTTPS checks off */
    bool json, color;
    const char *selectors[MAX_SELECTORS];
    size_t nselectors;
    struct event_base *base;
    struct dns_resolver *res;
    struct finding *f;
    size_t nf;
    int count[3];
    bool mtasts_published; /* an _mta-sts record exists: certificate failures matter more */
    char ehlo[300];
    /* the MX hosts, for the MTA-STS policy check */
    char *mxhosts[MAX_MX];
    size_t nmx;
};

__attribute__((format(printf, 4, 5)))
static void report(struct check *c, enum level lv, const char *area, const char *fmt, ...)
{
    char buf[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    c->f = xrealloc(c->f, (c->nf + 1) * sizeof *c->f);
    struct finding *f = &c->f[c->nf++];
    f->level = lv;
    str_copy(f->area, sizeof f->area, area);
    f->reason = xstrdup(buf);
    c->count[lv]++;
    if (c->json)
        return;
    static const char *const colors[] = {"\033[32m", "\033[33m", "\033[1;31m"};
    if (c->color)
        printf("%s%-4s\033[0m  %-8s %s\n", colors[lv], level_names[lv], area, buf);
    else
        printf("%-4s  %-8s %s\n", level_names[lv], area, buf);
    fflush(stdout);
}

static const char *status_text(const struct dns_answer *a)
{
    static char buf[160];
    snprintf(buf, sizeof buf, "%s%s%s", dns_status_str(a->status), a->detail[0] ? ": " : "",
             a->detail);
    return buf;
}

/* ---- MX, addresses, reverse DNS ---- */

static bool addr_in(const struct dns_answer *a, const char *text)
{
    for (size_t i = 0; a->status == DNS_OK && i < a->count; i++)
        if (strcmp(a->addr[i].text, text) == 0)
            return true;
    return false;
}

static void check_rdns(struct check *c, const char *ip)
{
    struct dns_answer p;
    dns_wait_ptr(c->base, c->res, ip, &p);
    if (p.status == DNS_TEMPFAIL) {
        report(c, L_WARN, "rdns", "%s: PTR lookup failed (%s)", ip, status_text(&p));
    } else if (p.status != DNS_OK || p.count == 0) {
        report(c, L_WARN, "rdns", "%s has no PTR record: receivers distrust mail sent from "
               "an address without reverse DNS (if this host also sends)", ip);
    } else {
        bool confirmed = false;
        const char *name = p.names[0];
        for (size_t i = 0; i < p.count && !confirmed; i++) {
            struct dns_answer fwd;
            dns_wait_addr(c->base, c->res, p.names[i], DNS_WANT_ANY, &fwd);
            if (addr_in(&fwd, ip)) {
                confirmed = true;
                name = p.names[i];
            }
            dns_answer_free(&fwd);
        }
        if (confirmed)
            report(c, L_OK, "rdns", "%s -> %s, which resolves back to it", ip, name);
        else
            report(c, L_WARN, "rdns", "%s -> %s, but that name does not resolve back to %s "
                   "(not forward-confirmed)", ip, name, ip);
    }
    dns_answer_free(&p);
}

/* One MX address: greeting, EHLO, STARTTLS, certificate. */
static void check_smtp(struct check *c, const char *host, struct dns_addr *a)
{
    struct netclient nc;
    nc_init(&nc, c->timeout_ms);
    if (a->family == AF_INET)
        ((struct sockaddr_in *)&a->sa)->sin_port = htons((uint16_t)c->port);
    else
        ((struct sockaddr_in6 *)&a->sa)->sin6_port = htons((uint16_t)c->port);
    char where[80];
    nc_addr_text((struct sockaddr *)&a->sa, where, sizeof where);
    if (nc_connect(&nc, (struct sockaddr *)&a->sa, a->salen) < 0) {
        report(c, L_FAIL, "smtp", "%s [%s]: cannot connect: %s", host, where, nc.err);
        return;
    }
    struct smtp_reply r;
    if (nc_read_reply(&nc, &r) < 0) {
        report(c, L_FAIL, "smtp", "%s [%s]: no greeting: %s", host, where, nc.err);
        nc_close(&nc);
        return;
    }
    if (r.code / 100 != 2) {
        report(c, L_FAIL, "smtp", "%s [%s]: greets with \"%.200s\": it refuses mail now",
               host, where, r.lines[0]);
        smtp_reply_free(&r);
        nc_close(&nc);
        return;
    }
    char greeting[256];
    snprintf(greeting, sizeof greeting, "%.200s", r.lines[0]);
    smtp_reply_free(&r);
    char line[400];
    if (c->ehlo[0] == '\0')
        nc_local_literal(&nc, c->ehlo, sizeof c->ehlo);
    snprintf(line, sizeof line, "EHLO %s\r\n", c->ehlo);
    struct smtp_caps caps;
    memset(&caps, 0, sizeof caps);
    if (nc_write(&nc, line, strlen(line)) < 0 || nc_read_reply(&nc, &r) < 0) {
        report(c, L_FAIL, "smtp", "%s [%s]: EHLO failed: %s", host, where, nc.err);
        nc_close(&nc);
        return;
    }
    if (!smtp_caps_parse(&r, &caps)) {
        report(c, L_WARN, "smtp", "%s [%s]: answers (%s) but refuses EHLO: no ESMTP, so no "
               "STARTTLS", host, where, greeting);
        smtp_reply_free(&r);
        nc_close(&nc);
        return;
    }
    smtp_reply_free(&r);
    report(c, L_OK, "smtp", "%s [%s]: answers: %s", host, where, greeting);
    if (!smtp_caps_find(&caps, "STARTTLS")) {
        report(c, c->mtasts_published ? L_FAIL : L_WARN, "tls", "%s [%s]: does not offer "
               "STARTTLS: mail to it travels unencrypted%s", host, where,
               c->mtasts_published ? ", and MTA-STS senders will not deliver" : "");
        nc_write(&nc, "QUIT\r\n", 6);
        smtp_caps_free(&caps);
        nc_close(&nc);
        return;
    }
    smtp_caps_free(&caps);
    if (nc_write(&nc, "STARTTLS\r\n", 10) < 0 || nc_read_reply(&nc, &r) < 0) {
        report(c, L_FAIL, "tls", "%s [%s]: STARTTLS failed: %s", host, where, nc.err);
        nc_close(&nc);
        return;
    }
    if (r.code != 220) {
        report(c, L_FAIL, "tls", "%s [%s]: offers STARTTLS but answers it with \"%.200s\"",
               host, where, r.lines[0]);
        smtp_reply_free(&r);
        nc_close(&nc);
        return;
    }
    smtp_reply_free(&r);
    struct nc_tls_info ti;
    if (nc_start_tls(&nc, host, c->cafile, &ti) < 0) {
        report(c, L_FAIL, "tls", "%s [%s]: TLS handshake failed: %s", host, where, nc.err);
        nc_close(&nc);
        return;
    }
    if (ti.verified) {
        report(c, ti.days_left < 14 ? L_WARN : L_OK, "tls", "%s [%s]: %s, certificate valid "
               "for %s until %s (%ld days%s)", host, where, ti.version, host, ti.not_after,
               ti.days_left, ti.days_left < 14 ? ": renew it soon" : "");
    } else {
        report(c, c->mtasts_published ? L_FAIL : L_WARN, "tls", "%s [%s]: %s, but the "
               "certificate is not valid for %s: %s (%s)%s", host, where, ti.version, host,
               ti.explain, ti.verify_error, c->mtasts_published
               ? "; MTA-STS senders will not deliver" : "; senders that verify (MTA-STS, "
                 "DANE) will not deliver");
    }
    nc_write(&nc, "QUIT\r\n", 6);
    nc_close(&nc);
}

static void check_host(struct check *c, const char *host, unsigned pref, bool implicit)
{
    struct dns_answer a;
    dns_wait_addr(c->base, c->res, host, DNS_WANT_ANY, &a);
    if (a.status != DNS_OK || a.count == 0) {
        report(c, L_FAIL, "mx", "%s%s has no address (%s): mail to it cannot be delivered",
               host, implicit ? "" : " (MX)", status_text(&a));
        dns_answer_free(&a);
        return;
    }
    char list[600] = "";
    for (size_t i = 0, l = 0; i < a.count && l < sizeof list; i++)
        l += (size_t)snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", a.addr[i].text);
    if (implicit)
        report(c, L_OK, "mx", "%s has address %s", host, list);
    else
        report(c, L_OK, "mx", "MX %u %s has address %s%s", pref, host, list,
               a.partial ? " (one address family failed to resolve)" : "");
    size_t n = a.count < MAX_ADDRS ? a.count : MAX_ADDRS;
    for (size_t i = 0; i < n; i++) {
        check_rdns(c, a.addr[i].text);
        if (c->connect)
            check_smtp(c, host, &a.addr[i]);
    }
    dns_answer_free(&a);
}

/* False when the domain does not exist: the other checks would only repeat it. */
static bool check_mx(struct check *c)
{
    struct dns_answer mx;
    dns_wait_mx(c->base, c->res, c->domain, &mx);
    bool go_on = true;
    switch (mx.status) {
    case DNS_OK: {
        char list[800] = "";
        for (size_t i = 0, l = 0; i < mx.count && l < sizeof list; i++)
            l += (size_t)snprintf(list + l, sizeof list - l, "%s%u %s", i ? ", " : "",
                                  mx.mx[i].pref, mx.mx[i].host);
        report(c, L_OK, "mx", "%zu MX record%s: %s", mx.count, mx.count == 1 ? "" : "s", list);
        if (mx.count == 1)
            report(c, L_WARN, "mx", "only one MX: while it is down, senders queue the mail "
                   "(fine if they retry, but a second MX adds resilience)");
        for (size_t i = 0; i < mx.count && i < MAX_MX; i++) {
            c->mxhosts[c->nmx++] = xstrdup(mx.mx[i].host);
            check_host(c, mx.mx[i].host, mx.mx[i].pref, false);
        }
        break;
    }
    case DNS_NODATA:
        report(c, L_WARN, "mx", "no MX records: senders fall back to the domain's own address "
               "(implicit MX, RFC 5321 5.1); publish an MX to make it explicit");
        c->mxhosts[c->nmx++] = xstrdup(c->domain);
        check_host(c, c->domain, 0, true);
        break;
    case DNS_NULL_MX:
        report(c, L_OK, "mx", "null MX (RFC 7505): the domain says it receives no mail; "
               "senders bounce at once");
        break;
    case DNS_NXDOMAIN:
    case DNS_BADNAME:
        report(c, L_FAIL, "mx", "the domain %s does not exist (%s)", c->domain,
               status_text(&mx));
        go_on = false;
        break;
    default:
        report(c, L_FAIL, "mx", "MX lookup failed (%s): senders will defer mail until the "
               "domain's DNS answers", status_text(&mx));
        break;
    }
    dns_answer_free(&mx);
    return go_on;
}

/* ---- SPF ---- */

struct spf_walk {
    unsigned lookups;
    unsigned voids;
    bool macros;
    char *seen[32];
    size_t nseen;
    char problem[1200];/* a permerror found while following includes */
};

static bool spf_seen(struct spf_walk *w, const char *d)
{
    for (size_t i = 0; i < w->nseen; i++)
        if (str_ieq(w->seen[i], d))
            return true;
    if (w->nseen < ARRAY_LEN(w->seen))
        w->seen[w->nseen++] = xstrdup(d);
    return false;
}

/* Fetch the one SPF record of a domain. 1 found, 0 none (void), -1 error (message set). */
static int spf_fetch(struct check *c, const char *domain, char **rec, char *why, size_t cap)
{
    struct dns_answer t;
    dns_wait_txt(c->base, c->res, domain, &t);
    *rec = NULL;
    int found = 0;
    if (t.status == DNS_TEMPFAIL) {
        snprintf(why, cap, "TXT lookup for %s failed (%s)", domain, status_text(&t));
        dns_answer_free(&t);
        return -1;
    }
    for (size_t i = 0; t.status == DNS_OK && i < t.count; i++) {
        if (!spf_is_record(t.txt[i], t.txtlen[i]))
            continue;
        if (++found == 1)
            *rec = xstrndup(t.txt[i], t.txtlen[i]);
    }
    dns_answer_free(&t);
    if (found > 1) {
        free(*rec);
        *rec = NULL;
        snprintf(why, cap, "%s has %d SPF records: permerror (RFC 7208 4.5 allows one)",
                 domain, found);
        return -1;
    }
    return found;
}

/* Add the lookups that evaluating rec (of domain) costs, following include and redirect. */
static void spf_walk(struct check *c, const struct spf_record *rec, struct spf_walk *w,
                     int depth)
{
    w->lookups += rec->lookups;
    for (size_t i = 0; i < rec->n; i++) {
        const struct spf_term *t = &rec->terms[i];
        bool follow = t->kind == SPF_INCLUDE || (t->kind == SPF_REDIRECT && rec->redirect == t);
        if (t->macro) {
            if (spf_kind_counts(t->kind))
                w->macros = true;
            continue;
        }
        if ((t->kind == SPF_A || t->kind == SPF_MX) && t->value[0]) {
            /* a void lookup (NXDOMAIN or no records) counts against the limit of 2 */
            struct dns_answer a;
            if (t->kind == SPF_A)
                dns_wait_addr(c->base, c->res, t->value, DNS_WANT_ANY, &a);
            else
                dns_wait_mx(c->base, c->res, t->value, &a);
            if (a.status == DNS_NXDOMAIN || a.status == DNS_NODATA)
                w->voids++;
            dns_answer_free(&a);
        }
        if (!follow || w->problem[0])
            continue;
        if (depth >= 10 || spf_seen(w, t->value)) {
            snprintf(w->problem, sizeof w->problem, "%s:%s loops back or nests too deep",
                     t->name, t->value);
            continue;
        }
        char *sub = NULL;
        char why[1024];
        int got = spf_fetch(c, t->value, &sub, why, sizeof why);
        if (got < 0) {
            snprintf(w->problem, sizeof w->problem, "%.20s: %.1000s", t->name, why);
            continue;
        }
        if (got == 0) {
            /* RFC 7208 5.2 / 6.1: include/redirect of a domain without SPF: permerror */
            w->voids++;
            snprintf(w->problem, sizeof w->problem, "%s:%s has no SPF record: permerror "
                     "(RFC 7208 5.2)", t->name, t->value);
            continue;
        }
        struct spf_record subrec;
        char err[300];
        if (!spf_parse(sub, strlen(sub), &subrec, err, sizeof err)) {
            snprintf(w->problem, sizeof w->problem, "the record of %s (via %s): %s", t->value,
                     t->name, err);
        } else {
            spf_walk(c, &subrec, w, depth + 1);
            spf_record_free(&subrec);
        }
        free(sub);
    }
}

static void check_spf(struct check *c)
{
    char *txt = NULL;
    char why[1024];
    int got = spf_fetch(c, c->domain, &txt, why, sizeof why);
    if (got < 0) {
        report(c, L_FAIL, "spf", "%s", why);
        return;
    }
    if (got == 0) {
        report(c, L_FAIL, "spf", "no SPF record (TXT \"v=spf1 ...\"): receivers cannot tell "
               "which hosts may send as %s", c->domain);
        return;
    }
    struct spf_record rec;
    char err[300];
    if (!spf_parse(txt, strlen(txt), &rec, err, sizeof err)) {
        report(c, L_FAIL, "spf", "syntax error: %s: receivers return permerror (\"%.200s\")",
               err, txt);
        free(txt);
        return;
    }
    struct spf_walk w;
    memset(&w, 0, sizeof w);
    spf_seen(&w, c->domain);
    spf_walk(c, &rec, &w, 0);
    if (w.problem[0])
        report(c, L_FAIL, "spf", "%s", w.problem);
    if (w.lookups > SPF_LOOKUP_LIMIT)
        report(c, L_FAIL, "spf", "needs %u DNS lookups; RFC 7208 4.6.4 allows %d, so "
               "receivers return permerror: flatten includes or drop mechanisms", w.lookups,
               SPF_LOOKUP_LIMIT);
    else
        report(c, L_OK, "spf", "\"%.300s\" (%u of %d DNS lookups%s)", txt, w.lookups,
               SPF_LOOKUP_LIMIT, w.macros ? "; macros not counted" : "");
    if (w.voids > SPF_VOID_LIMIT)
        report(c, L_FAIL, "spf", "%u lookups find nothing; RFC 7208 4.6.4 allows %d void "
               "lookups", w.voids, SPF_VOID_LIMIT);
    else if (w.voids > 0)
        report(c, L_WARN, "spf", "%u lookup%s find nothing (void lookups; the limit is %d)",
               w.voids, w.voids == 1 ? "" : "s", SPF_VOID_LIMIT);
    if (rec.warnings[0])
        report(c, rec.all && rec.all->qualifier == '+' ? L_FAIL : L_WARN, "spf", "%s",
               rec.warnings);
    for (size_t i = 0; i < w.nseen; i++)
        free(w.seen[i]);
    spf_record_free(&rec);
    free(txt);
}

/* ---- DMARC, DKIM, MTA-STS, TLS-RPT ---- */

/* TXT records at name that pass is_rec. Returns the count; *first gets the first. */
static int fetch_policy(struct check *c, const char *name,
                        bool (*is_rec)(const char *, size_t), char **first, bool *tempfail,
                        char *why, size_t cap)
{
    struct dns_answer t;
    dns_wait_txt(c->base, c->res, name, &t);
    *first = NULL;
    *tempfail = t.status == DNS_TEMPFAIL;
    if (*tempfail)
        snprintf(why, cap, "TXT lookup for %s failed (%s)", name, status_text(&t));
    int n = 0;
    for (size_t i = 0; t.status == DNS_OK && i < t.count; i++) {
        if (!is_rec(t.txt[i], t.txtlen[i]))
            continue;
        if (n++ == 0)
            *first = xstrndup(t.txt[i], t.txtlen[i]);
    }
    dns_answer_free(&t);
    return n;
}

static void check_dmarc(struct check *c)
{
    char name[DNS_NAME_MAX + 16], why[1024];
    snprintf(name, sizeof name, "_dmarc.%s", c->domain);
    char *txt;
    bool tf;
    int n = fetch_policy(c, name, dmarc_is_record, &txt, &tf, why, sizeof why);
    if (tf) {
        report(c, L_FAIL, "dmarc", "%s", why);
    } else if (n == 0) {
        report(c, L_WARN, "dmarc", "no DMARC record at %s: nobody is told what to do with "
               "mail that fails SPF and DKIM, and large mailbox providers expect one", name);
    } else if (n > 1) {
        report(c, L_FAIL, "dmarc", "%d DMARC records at %s: receivers ignore them all "
               "(RFC 7489 6.6.3)", n, name);
    } else {
        struct dmarc_record d;
        char err[300];
        if (!dmarc_parse(txt, strlen(txt), &d, err, sizeof err)) {
            report(c, L_FAIL, "dmarc", "invalid record \"%.200s\": %s", txt, err);
        } else {
            if (d.p == DMARC_NONE)
                report(c, L_WARN, "dmarc", "p=none: monitoring only; failing mail is still "
                       "delivered (use quarantine or reject once reports look clean)");
            else
                report(c, L_OK, "dmarc", "p=%s%s%s, pct=%d", dmarc_policy_name(d.p),
                       d.sp != d.p ? ", sp=" : "", d.sp != d.p ? dmarc_policy_name(d.sp) : "",
                       d.pct);
            if (d.pct < 100)
                report(c, L_WARN, "dmarc", "pct=%d: the policy applies to only part of the "
                       "failing mail", d.pct);
            if (!d.rua[0])
                report(c, L_WARN, "dmarc", "no rua=: you receive no aggregate reports");
            else
                report(c, L_OK, "dmarc", "aggregate reports go to %s", d.rua);
            if (d.warnings[0])
                report(c, L_WARN, "dmarc", "%s", d.warnings);
            dmarc_record_free(&d);
        }
    }
    free(txt);
}

static bool any_txt(const char *s, size_t n)
{
    (void)s;
    (void)n;
    return true;
}

/* Size of an RSA (or other) key from its DER SubjectPublicKeyInfo; 0 if unreadable. */
static int key_bits(const unsigned char *der, size_t len, char *type, size_t cap)
{
    const unsigned char *p = der;
    EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)len);
    if (!k)
        return 0;
    int bits = EVP_PKEY_get_bits(k);
    str_copy(type, cap, EVP_PKEY_get0_type_name(k) ? EVP_PKEY_get0_type_name(k) : "?");
    EVP_PKEY_free(k);
    return bits;
}

static void check_dkim(struct check *c)
{
    static const char *const common[] = {"default", "mail", "dkim", "s1", "s2", "selector1",
                                         "selector2", "google", "k1"};
    bool given = c->nselectors > 0;
    size_t n = given ? c->nselectors : ARRAY_LEN(common);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        const char *sel = given ? c->selectors[i] : common[i];
        char name[DNS_NAME_MAX + 64], why[1024];
        snprintf(name, sizeof name, "%s._domainkey.%s", sel, c->domain);
        char *txt;
        bool tf;
        int cnt = fetch_policy(c, name, any_txt, &txt, &tf, why, sizeof why);
        if (tf) {
            report(c, L_FAIL, "dkim", "%s", why);
            continue;
        }
        if (cnt == 0) {
            if (given)
                report(c, L_FAIL, "dkim", "no key at %s: signatures with s=%s cannot be "
                       "verified", name, sel);
            free(txt);
            continue;
        }
        found++;
        struct dkim_key k;
        char err[300];
        if (cnt > 1) {
            report(c, L_FAIL, "dkim", "%d TXT records at %s: verifiers cannot pick one", cnt,
                   name);
        } else if (!dkim_key_parse(txt, strlen(txt), &k, err, sizeof err)) {
            report(c, L_FAIL, "dkim", "%s: invalid key record: %s", name, err);
        } else {
            if (k.revoked) {
                report(c, L_WARN, "dkim", "%s: the key is revoked (empty p=)", name);
            } else if (strcmp(k.k, "rsa") == 0) {
                char type[32] = "";
                int bits = key_bits(k.key, k.keylen, type, sizeof type);
                if (bits == 0)
                    report(c, L_FAIL, "dkim", "%s: p= is not a readable RSA public key", name);
                else if (bits < 1024)
                    report(c, L_FAIL, "dkim", "%s: %d-bit RSA key: too short, verifiers "
                           "reject it (RFC 8301: at least 1024)", name, bits);
                else if (bits < 2048)
                    report(c, L_WARN, "dkim", "%s: %d-bit RSA key: use 2048 bits (RFC 8301)",
                           name, bits);
                else
                    report(c, L_OK, "dkim", "%s: %d-bit RSA key", name, bits);
            } else {
                report(c, k.keylen == 32 ? L_OK : L_FAIL, "dkim", "%s: %s key%s", name, k.k,
                       k.keylen == 32 ? "" : " of the wrong length (RFC 8463: 32 octets)");
            }
            if (k.warnings[0])
                report(c, L_WARN, "dkim", "%s: %s", name, k.warnings);
            dkim_key_free(&k);
        }
        free(txt);
    }
    if (!given && found == 0)
        report(c, L_WARN, "dkim", "no DKIM key under the common selectors (default, mail, "
               "dkim, s1, s2, selector1, selector2, google, k1); name yours with "
               "--dkim-selector");
}

/* HTTPS GET of the MTA-STS policy (RFC 8461 3.3): the certificate must be valid for
 * mta-sts.DOMAIN, the answer 200, no redirects. Returns the body or NULL with why. */
static char *fetch_policy_file(struct check *c, char *why, size_t cap)
{
    char host[DNS_NAME_MAX + 16];
    snprintf(host, sizeof host, "mta-sts.%s", c->domain);
    struct dns_answer a;
    dns_wait_addr(c->base, c->res, host, DNS_WANT_ANY, &a);
    if (a.status != DNS_OK || a.count == 0) {
        snprintf(why, cap, "%.260s has no address (%.160s)", host, status_text(&a));
        dns_answer_free(&a);
        return NULL;
    }
    struct dns_addr addr = a.addr[0];
    dns_answer_free(&a);
    if (addr.family == AF_INET)
        ((struct sockaddr_in *)&addr.sa)->sin_port = htons((uint16_t)c->https_port);
    else
        ((struct sockaddr_in6 *)&addr.sa)->sin6_port = htons((uint16_t)c->https_port);
    struct netclient nc;
    nc_init(&nc, c->timeout_ms);
    if (nc_connect(&nc, (struct sockaddr *)&addr.sa, addr.salen) < 0) {
        snprintf(why, cap, "cannot connect to %.260s: %.256s", host, nc.err);
        return NULL;
    }
    struct nc_tls_info ti;
    if (nc_start_tls(&nc, host, c->cafile, &ti) < 0) {
        snprintf(why, cap, "TLS with %.260s failed: %.256s", host, nc.err);
        nc_close(&nc);
        return NULL;
    }
    if (!ti.verified) {
        snprintf(why, cap, "the certificate of %.260s is not valid: %.400s (RFC 8461 3.3 requires a "
                 "valid one)", host, ti.explain);
        nc_close(&nc);
        return NULL;
    }
    char req[600];
    int rl = snprintf(req, sizeof req, "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: %s\r\n"
                      "User-Agent: tern-check\r\nConnection: close\r\n\r\n", host);
    char line[2048];
    long n;
    if (nc_write(&nc, req, (size_t)rl) < 0 || (n = nc_read_line(&nc, line, sizeof line)) < 0) {
        snprintf(why, cap, "HTTPS request to %.260s failed: %.256s", host, nc.err);
        nc_close(&nc);
        return NULL;
    }
    int status = 0;
    if (sscanf(line, "HTTP/%*d.%*d %d", &status) != 1 || status != 200) {
        snprintf(why, cap, "https://%.260s/.well-known/mta-sts.txt answered \"%.100s\" (need 200; "
                 "redirects are not followed, RFC 8461 3.3)", host, line);
        nc_close(&nc);
        return NULL;
    }
    long clen = -1;
    bool chunked = false;
    while ((n = nc_read_line(&nc, line, sizeof line)) > 0) {
        if (str_nieq(line, "Content-Length:", 15))
            clen = strtol(line + 15, NULL, 10);
        else if (str_nieq(line, "Transfer-Encoding:", 18) && strstr(line, "chunked"))
            chunked = true;
    }
    /* The body, as lines (the policy is line-based anyway), up to 64 KiB (RFC 8461 3.3
     * suggests a limit). Content-Length, chunked, or until the server closes. */
    size_t cap_body = 65536, bl = 0;
    char *body = xmalloc(cap_body + 1);
    long remaining = chunked ? 0 : clen;
    for (;;) {
        if (chunked && remaining <= 0) {
            long l = nc_read_line(&nc, line, sizeof line);
            if (l < 0)
                break;
            if (l == 0)
                continue; /* the CRLF that ends a chunk's data */
            remaining = strtol(line, NULL, 16);
            if (remaining <= 0)
                break;
        }
        if (!chunked && clen >= 0 && remaining <= 0)
            break;
        long l = nc_read_line(&nc, line, sizeof line);
        if (l < 0 || bl + (size_t)l + 1 > cap_body)
            break; /* end of stream (Connection: close), or too big */
        memcpy(body + bl, line, (size_t)l);
        bl += (size_t)l;
        body[bl++] = '\n';
        remaining -= l + 2; /* CRLF assumed on the wire */
    }
    body[bl] = '\0';
    nc_close(&nc);
    return body;
}

static void check_mtasts(struct check *c)
{
    char name[DNS_NAME_MAX + 16], why[1024];
    snprintf(name, sizeof name, "_mta-sts.%s", c->domain);
    char *txt;
    bool tf;
    int n = fetch_policy(c, name, mtasts_txt_is_record, &txt, &tf, why, sizeof why);
    if (tf) {
        report(c, L_FAIL, "mta-sts", "%s", why);
    } else if (n == 0) {
        report(c, L_WARN, "mta-sts", "no MTA-STS record at %s: senders cannot insist on "
               "verified TLS to your MX (RFC 8461)", name);
    } else if (n > 1) {
        report(c, L_FAIL, "mta-sts", "%d records at %s: senders treat the domain as having "
               "no policy (RFC 8461 3.1)", n, name);
    } else {
        struct mtasts_txt m;
        char err[300];
        if (!mtasts_txt_parse(txt, strlen(txt), &m, err, sizeof err)) {
            report(c, L_FAIL, "mta-sts", "invalid record \"%.200s\": %s", txt, err);
        } else {
            report(c, L_OK, "mta-sts", "record present, id=%s", m.id);
            if (!c->connect) {
                report(c, L_WARN, "mta-sts", "policy file not fetched (--no-connect)");
            } else {
                char *body = fetch_policy_file(c, why, sizeof why);
                struct mtasts_policy pol;
                if (!body) {
                    report(c, L_FAIL, "mta-sts", "policy: %s", why);
                } else if (!mtasts_policy_parse(body, strlen(body), &pol, err, sizeof err)) {
                    report(c, L_FAIL, "mta-sts", "policy file invalid: %s", err);
                } else {
                    char list[600] = "";
                    for (size_t i = 0, l = 0; i < pol.nmx && l < sizeof list; i++)
                        l += (size_t)snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "",
                                              pol.mx[i]);
                    report(c, pol.mode == MTASTS_ENFORCE ? L_OK : L_WARN, "mta-sts",
                           "policy: mode %s, max_age %lu, mx %s%s", mtasts_mode_name(pol.mode),
                           pol.max_age, list[0] ? list : "(none)",
                           pol.mode == MTASTS_TESTING ? " (testing: failures are only "
                           "reported)" : pol.mode == MTASTS_NONE ? " (none: the policy is "
                           "withdrawn)" : "");
                    for (size_t i = 0; pol.mode != MTASTS_NONE && i < c->nmx; i++) {
                        bool ok = false;
                        for (size_t j = 0; j < pol.nmx && !ok; j++)
                            ok = mtasts_mx_match(pol.mx[j], c->mxhosts[i]);
                        if (!ok)
                            report(c, pol.mode == MTASTS_ENFORCE ? L_FAIL : L_WARN, "mta-sts",
                                   "MX %s matches no mx: line of the policy: senders that "
                                   "enforce it will not deliver there", c->mxhosts[i]);
                    }
                    mtasts_policy_free(&pol);
                }
                free(body);
            }
        }
    }
    free(txt);
}

static void check_tlsrpt(struct check *c)
{
    char name[DNS_NAME_MAX + 16], why[1024];
    snprintf(name, sizeof name, "_smtp._tls.%s", c->domain);
    char *txt;
    bool tf;
    int n = fetch_policy(c, name, tlsrpt_is_record, &txt, &tf, why, sizeof why);
    if (tf) {
        report(c, L_FAIL, "tls-rpt", "%s", why);
    } else if (n == 0) {
        report(c, L_WARN, "tls-rpt", "no TLS-RPT record at %s: you hear nothing when senders "
               "fail to set up TLS with your MX (RFC 8460)", name);
    } else if (n > 1) {
        report(c, L_FAIL, "tls-rpt", "%d records at %s: senders ignore them (RFC 8460 3)", n,
               name);
    } else {
        struct tlsrpt_record t;
        char err[300];
        if (!tlsrpt_parse(txt, strlen(txt), &t, err, sizeof err)) {
            report(c, L_FAIL, "tls-rpt", "invalid record \"%.200s\": %s", txt, err);
        } else {
            report(c, L_OK, "tls-rpt", "reports go to %s", t.rua);
            tlsrpt_record_free(&t);
        }
    }
    free(txt);
}

/* ---- output and options ---- */

static void json_str(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            printf("\\u%04x", *p); /* DNS text is bytes: escape everything non-ASCII */
        else
            putchar(*p);
    }
    putchar('"');
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: tern check [options] DOMAIN\n"
"  A deliverability report: MX and their addresses, SMTP greeting, STARTTLS and the\n"
"  certificate, reverse DNS, SPF, DMARC, DKIM, MTA-STS and TLS-RPT. One line per finding:\n"
"  OK, WARN or FAIL, the area, and why. Exit status 0 when nothing FAILs, 1 otherwise.\n"
"  --dkim-selector SEL    check SEL._domainkey.DOMAIN; repeatable (default: common ones)\n"
"  --nameserver IP[:PORT] ask this DNS server (default: /etc/resolv.conf)\n"
"  --port N               SMTP port of the MX hosts (default 25)\n"
"  --https-port N         port of the MTA-STS policy server (default 443)\n"
"  --cafile FILE          trust anchors for certificates (default: system store)\n"
"  --ehlo NAME            name to send in EHLO\n"
"  --timeout SECONDS      per connection step (default 10)\n"
"  --no-connect           DNS checks only: no SMTP or HTTPS connections\n"
"  --json                 the findings as one JSON document\n"
"  --no-color             never colour\n");
}

enum {
    O_SEL = 1000, O_NS, O_PORT, O_HTTPS_PORT, O_CAFILE, O_EHLO, O_TIMEOUT, O_NOCONNECT,
    O_JSON, O_NOCOLOR, O_HELP
};

static const struct option long_opts[] = {
    {"dkim-selector", required_argument, NULL, O_SEL},
    {"selector", required_argument, NULL, O_SEL},
    {"nameserver", required_argument, NULL, O_NS},
    {"port", required_argument, NULL, O_PORT},
    {"https-port", required_argument, NULL, O_HTTPS_PORT},
    {"cafile", required_argument, NULL, O_CAFILE},
    {"ehlo", required_argument, NULL, O_EHLO},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"no-connect", no_argument, NULL, O_NOCONNECT},
    {"json", no_argument, NULL, O_JSON},
    {"no-color", no_argument, NULL, O_NOCOLOR},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

static bool parse_port(const char *s, unsigned *out)
{
    char *end;
    unsigned long p = strtoul(s, &end, 10);
    if (*s == '\0' || *end || p == 0 || p > 65535)
        return false;
    *out = (unsigned)p;
    return true;
}

int check_main(int argc, char **argv)
{
    struct check c;
    memset(&c, 0, sizeof c);
    c.port = 25;
    c.https_port = 443;
    c.timeout_ms = 10000;
    c.connect = true;
    bool nocolor = false;
    optind = 0; /* 0: full reinitialisation of glibc getopt, whatever ran before */
    int opt;
    char *end;
    while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (opt) {
        case O_SEL:
            if (c.nselectors == MAX_SELECTORS || !dns_name_valid(optarg)) {
                fprintf(stderr, "tern check: --dkim-selector %s: bad or too many\n", optarg);
                return EXIT_USAGE;
            }
            c.selectors[c.nselectors++] = optarg;
            break;
        case O_NS: c.nameserver = optarg; break;
        case O_PORT:
        case O_HTTPS_PORT:
            if (!parse_port(optarg, opt == O_PORT ? &c.port : &c.https_port)) {
                fprintf(stderr, "tern check: %s: not a port number\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case O_CAFILE: c.cafile = optarg; break;
        case O_EHLO: str_copy(c.ehlo, sizeof c.ehlo, optarg); break;
        case O_TIMEOUT: {
            long t = strtol(optarg, &end, 10);
            if (*end || t <= 0 || t > 600) {
                fprintf(stderr, "tern check: --timeout %s: want 1-600 seconds\n", optarg);
                return EXIT_USAGE;
            }
            c.timeout_ms = (int)t * 1000;
            break;
        }
        case O_NOCONNECT: c.connect = false; break;
        case O_JSON: c.json = true; break;
        case O_NOCOLOR: nocolor = true; break;
        case 'h':
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    char domain[DNS_NAME_MAX + 2];
    str_copy(domain, sizeof domain, argv[optind]);
    size_t dl = strlen(domain);
    if (dl > 0 && domain[dl - 1] == '.')
        domain[dl - 1] = '\0';
    if (!dns_name_valid(domain) || !strchr(domain, '.')) {
        fprintf(stderr, "tern check: %s is not a domain name\n", argv[optind]);
        return EXIT_USAGE;
    }
    c.domain = domain;
    const char *no_color = getenv("NO_COLOR"); /* https://no-color.org: set, not empty */
    c.color = !c.json && !nocolor && isatty(STDOUT_FILENO) && !(no_color && no_color[0]);
    if (c.ehlo[0] == '\0') {
        char hn[256] = "";
        if (gethostname(hn, sizeof hn - 1) == 0 && strchr(hn, '.'))
            str_copy(c.ehlo, sizeof c.ehlo, hn);
    }

    char err[256] = "";
    c.base = event_base_new();
    struct dns_options dopt = {.nameserver = c.nameserver, .timeout_ms = 2000, .tries = 2};
    if (c.base)
        c.res = dns_resolver_new_opts(c.base, &dopt, err, sizeof err);
    if (!c.res) {
        fprintf(stderr, "tern check: cannot start the DNS resolver: %s\n", err);
        if (c.base)
            event_base_free(c.base);
        return 2;
    }
    if (!c.json)
        printf("tern check %s\n", domain);

    /* Whether MTA-STS is published changes how bad a certificate problem is: look first. */
    {
        char name[DNS_NAME_MAX + 16], why[1024];
        snprintf(name, sizeof name, "_mta-sts.%s", domain);
        char *txt;
        bool tf;
        c.mtasts_published = fetch_policy(&c, name, mtasts_txt_is_record, &txt, &tf, why,
                                          sizeof why) == 1;
        free(txt);
    }
    if (check_mx(&c)) {
        check_spf(&c);
        check_dmarc(&c);
        check_dkim(&c);
        check_mtasts(&c);
        check_tlsrpt(&c);
    }

    if (c.json) {
        printf("{\n  \"tool\": \"tern check\",\n  \"domain\": ");
        json_str(domain);
        printf(",\n  \"findings\": [");
        for (size_t i = 0; i < c.nf; i++) {
            printf("%s\n    {\"level\": \"%s\", \"area\": ", i ? "," : "",
                   level_names[c.f[i].level]);
            json_str(c.f[i].area);
            printf(", \"reason\": ");
            json_str(c.f[i].reason);
            putchar('}');
        }
        printf("\n  ],\n  \"ok\": %d, \"warn\": %d, \"fail\": %d\n}\n", c.count[L_OK],
               c.count[L_WARN], c.count[L_FAIL]);
    } else {
        printf("%d OK, %d WARN, %d FAIL\n", c.count[L_OK], c.count[L_WARN], c.count[L_FAIL]);
    }
    fflush(stdout);
    int rc = c.count[L_FAIL] > 0 ? 1 : 0;
    for (size_t i = 0; i < c.nf; i++)
        free(c.f[i].reason);
    free(c.f);
    for (size_t i = 0; i < c.nmx; i++)
        free(c.mxhosts[i]);
    dns_resolver_free(c.res);
    event_base_free(c.base);
    return rc;
}
