/* dns_check.c - resolves the fake domains of tests/integration/dns-zones/ through src/dns.c
 * against a real DNS server (NSD, started by tests/integration/test_dns.sh in a private
 * network namespace) and checks each result class and its data. Prints "PASS name" or
 * "FAIL name: reason" per check; exits 3 if any failed (1 is left to the sanitizers).
 *
 *   dns_check NAMESERVER [SERVFAIL_ZONE_NAME]
 *     NAMESERVER: "127.0.0.53:53" style; the checks of the resolv.conf mode expect
 *     /etc/resolv.conf to name the same server (netns-run -r does that).
 *
 * All lookups start at once on one resolver, so they also test concurrency. */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns.h"

static int passed, failed, pending;

struct check {
    const char *name;
    bool (*verify)(const struct dns_result *res, char *why, size_t cap);
};

static void report(const char *name, bool ok, const char *why)
{
    if (ok) {
        printf("PASS %s\n", name);
        passed++;
    } else {
        printf("FAIL %s: %s\n", name, why);
        failed++;
    }
    fflush(stdout);
}

static void on_result(const struct dns_result *res, void *arg)
{
    const struct check *c = arg;
    char why[512] = "";
    report(c->name, c->verify(res, why, sizeof(why)), why);
    pending--;
}

__attribute__((format(printf, 3, 4))) static bool why_fail(char *why, size_t cap,
                                                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return false;
}

static bool want_status(const struct dns_result *res, enum dns_status st, char *why, size_t cap)
{
    if (res->status != st)
        return why_fail(why, cap, "status %s (%s), want %s", dns_status_str(res->status),
                        res->detail, dns_status_str(st));
    if (st != DNS_OK && st != DNS_NULL_MX && res->count != 0)
        return why_fail(why, cap, "%zu records with status %s", res->count, dns_status_str(st));
    return true;
}

/* ---------------------------------------------------------------- MX */

static bool v_mx_multi(const struct dns_result *res, char *why, size_t cap)
{
    if (!want_status(res, DNS_OK, why, cap))
        return false;
    if (res->count != 4)
        return why_fail(why, cap, "%zu MX, want 4", res->count);
    const unsigned prefs[] = {10, 10, 20, 30};
    for (size_t i = 0; i < 4; i++)
        if (res->mx[i].pref != prefs[i])
            return why_fail(why, cap, "MX %zu has preference %u, want %u", i, res->mx[i].pref,
                            prefs[i]);
    bool a0 = strcmp(res->mx[0].host, "mx1a.multi.test") == 0;
    bool b0 = strcmp(res->mx[0].host, "mx1b.multi.test") == 0;
    const char *other = a0 ? "mx1b.multi.test" : "mx1a.multi.test";
    if (!(a0 || b0) || strcmp(res->mx[1].host, other) != 0)
        return why_fail(why, cap, "first two are %s, %s", res->mx[0].host, res->mx[1].host);
    if (strcmp(res->mx[2].host, "mx2.multi.test") || strcmp(res->mx[3].host, "mx3.multi.test"))
        return why_fail(why, cap, "last two are %s, %s", res->mx[2].host, res->mx[3].host);
    return true;
}

/* The two preference-10 hosts must come in both orders over repeated lookups. */
static int tie_rounds, tie_a_first;
#define TIE_ROUNDS 24

static void on_tie(const struct dns_result *res, void *arg)
{
    (void)arg;
    pending--;
    tie_rounds++;
    if (res->status == DNS_OK && res->count >= 1 && strcmp(res->mx[0].host, "mx1a.multi.test") == 0)
        tie_a_first++;
    if (tie_rounds == TIE_ROUNDS) {
        char why[128];
        snprintf(why, sizeof(why), "mx1a first in %d of %d lookups: ties not shuffled",
                 tie_a_first, TIE_ROUNDS);
        report("mx-ties-random", tie_a_first > 0 && tie_a_first < TIE_ROUNDS, why);
    }
}

static bool v_mx_null(const struct dns_result *res, char *why, size_t cap)
{
    if (!want_status(res, DNS_NULL_MX, why, cap))
        return false;
    if (res->count != 1 || res->mx[0].pref != 0 || res->mx[0].host[0] != '\0')
        return why_fail(why, cap, "want the one record 0 \".\"");
    return true;
}

static bool v_nodata(const struct dns_result *res, char *why, size_t cap)
{
    return want_status(res, DNS_NODATA, why, cap);
}

static bool v_nxdomain(const struct dns_result *res, char *why, size_t cap)
{
    return want_status(res, DNS_NXDOMAIN, why, cap);
}

static bool v_tempfail_servfail(const struct dns_result *res, char *why, size_t cap)
{
    if (!want_status(res, DNS_TEMPFAIL, why, cap))
        return false;
    if (strcmp(res->detail, "SERVFAIL") != 0)
        return why_fail(why, cap, "detail \"%s\", want SERVFAIL", res->detail);
    return true;
}

static bool v_tempfail(const struct dns_result *res, char *why, size_t cap)
{
    return want_status(res, DNS_TEMPFAIL, why, cap);
}

static bool v_tempfail_refused(const struct dns_result *res, char *why, size_t cap)
{
    if (!want_status(res, DNS_TEMPFAIL, why, cap))
        return false;
    if (strcmp(res->detail, "REFUSED") != 0)
        return why_fail(why, cap, "detail \"%s\", want REFUSED", res->detail);
    return true;
}

static bool v_tempfail_timeout(const struct dns_result *res, char *why, size_t cap)
{
    if (!want_status(res, DNS_TEMPFAIL, why, cap))
        return false;
    if (strcmp(res->detail, "timeout") != 0)
        return why_fail(why, cap, "detail \"%s\", want timeout", res->detail);
    return true;
}

static bool v_badname(const struct dns_result *res, char *why, size_t cap)
{
    return want_status(res, DNS_BADNAME, why, cap);
}

static bool v_mx_spf(const struct dns_result *res, char *why, size_t cap)
{
    if (!want_status(res, DNS_OK, why, cap))
        return false;
    if (res->count != 1 || res->mx[0].pref != 10 || strcmp(res->mx[0].host, "onlya.test"))
        return why_fail(why, cap, "want one MX 10 onlya.test");
    return true;
}

/* ---------------------------------------------------------------- addresses */

/* Expect exactly these addresses, in this order ("::1" style text). */
static bool want_addrs(const struct dns_result *res, char *why, size_t cap, size_t n, ...)
{
    if (!want_status(res, DNS_OK, why, cap))
        return false;
    if (res->count != n)
        return why_fail(why, cap, "%zu addresses, want %zu", res->count, n);
    if (res->partial)
        return why_fail(why, cap, "flagged partial");
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) {
        const char *text = va_arg(ap, const char *);
        const struct dns_addr *a = &res->addr[i];
        if (strcmp(a->text, text) != 0) {
            va_end(ap);
            return why_fail(why, cap, "address %zu is %s, want %s", i, a->text, text);
        }
        /* the sockaddr must say the same as the text */
        char buf[64];
        const void *bytes = a->family == AF_INET
                                ? (const void *)&((const struct sockaddr_in *)&a->sa)->sin_addr
                                : (const void *)&((const struct sockaddr_in6 *)&a->sa)->sin6_addr;
        int fam = a->sa.ss_family;
        socklen_t want_len = fam == AF_INET ? sizeof(struct sockaddr_in)
                                            : sizeof(struct sockaddr_in6);
        if (fam != a->family || a->salen != want_len ||
            !inet_ntop(fam, bytes, buf, sizeof(buf)) || strcmp(buf, text) != 0) {
            va_end(ap);
            return why_fail(why, cap, "sockaddr %zu does not match %s", i, text);
        }
    }
    va_end(ap);
    return true;
}

static bool v_addr_onlya(const struct dns_result *res, char *why, size_t cap)
{
    return want_addrs(res, why, cap, 1, "127.0.0.16");
}

static bool v_addr_v6only(const struct dns_result *res, char *why, size_t cap)
{
    return want_addrs(res, why, cap, 1, "::1");
}

static bool v_addr_dual(const struct dns_result *res, char *why, size_t cap)
{
    return want_addrs(res, why, cap, 2, "::1", "127.0.0.17");
}

static bool v_addr_dual_v4(const struct dns_result *res, char *why, size_t cap)
{
    return want_addrs(res, why, cap, 1, "127.0.0.17");
}

static bool v_addr_mx2(const struct dns_result *res, char *why, size_t cap)
{
    return want_addrs(res, why, cap, 2, "::1", "127.0.0.13");
}

static bool v_addr_ns(const struct dns_result *res, char *why, size_t cap)
{
    return want_addrs(res, why, cap, 1, "127.0.0.53");
}

/* ---------------------------------------------------------------- TXT */

static bool want_txt(const struct dns_result *res, char *why, size_t cap, const char *t)
{
    if (!want_status(res, DNS_OK, why, cap))
        return false;
    if (res->count != 1)
        return why_fail(why, cap, "%zu TXT records, want 1", res->count);
    if (res->txt[0].len != strlen(t) || strcmp(res->txt[0].data, t) != 0)
        return why_fail(why, cap, "TXT \"%s\", want \"%s\"", res->txt[0].data, t);
    return true;
}

static bool v_txt_spf(const struct dns_result *res, char *why, size_t cap)
{
    return want_txt(res, why, cap, "v=spf1 ip4:127.0.0.0/8 ip6:::1 -all");
}

static bool v_txt_dmarc(const struct dns_result *res, char *why, size_t cap)
{
    return want_txt(res, why, cap, "v=DMARC1; p=reject; rua=mailto:dmarc@spf.test");
}

static bool v_txt_multi(const struct dns_result *res, char *why, size_t cap)
{
    if (!want_status(res, DNS_OK, why, cap))
        return false;
    if (res->count != 2)
        return why_fail(why, cap, "%zu TXT records, want 2", res->count);
    const char *a = res->txt[0].data, *b = res->txt[1].data;
    if (strcmp(a, "second record") == 0) { /* record order in an RRset is not defined */
        const char *t = a;
        a = b;
        b = t;
    }
    if (strcmp(a, "first record") || strcmp(b, "second record"))
        return why_fail(why, cap, "records \"%s\", \"%s\"", res->txt[0].data, res->txt[1].data);
    return true;
}

static bool v_txt_big(const struct dns_result *res, char *why, size_t cap)
{
    if (!want_status(res, DNS_OK, why, cap))
        return false;
    if (res->count != 1 || res->txt[0].len != 1500)
        return why_fail(why, cap, "want one record of 1500 octets, got %zu records",
                        res->count);
    for (size_t i = 0; i < 1500; i++)
        if (res->txt[0].data[i] != (char)('a' + i / 250))
            return why_fail(why, cap, "octet %zu is wrong", i);
    return true;
}

/* ---------------------------------------------------------------- PTR */

static bool want_names(const struct dns_result *res, char *why, size_t cap, size_t n, ...)
{
    if (!want_status(res, DNS_OK, why, cap))
        return false;
    if (res->count != n)
        return why_fail(why, cap, "%zu names, want %zu (first: %s)", res->count, n,
                        res->count ? res->names[0] : "-");
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) {
        const char *want = va_arg(ap, const char *);
        bool found = false;
        for (size_t j = 0; j < res->count; j++)
            found = found || strcmp(res->names[j], want) == 0;
        if (!found) {
            va_end(ap);
            return why_fail(why, cap, "%s missing", want);
        }
    }
    va_end(ap);
    return true;
}

static bool v_ptr_onlya(const struct dns_result *res, char *why, size_t cap)
{
    return want_names(res, why, cap, 1, "onlya.test");
}

static bool v_ptr_dual(const struct dns_result *res, char *why, size_t cap)
{
    return want_names(res, why, cap, 2, "dual.test", "dual-alias.test");
}

static bool v_ptr_v6(const struct dns_result *res, char *why, size_t cap)
{
    return want_names(res, why, cap, 1, "v6only.test");
}

/* ---------------------------------------------------------------- main */

static int cancelled_calls;

static void on_cancelled(const struct dns_result *res, void *arg)
{
    (void)res;
    (void)arg;
    cancelled_calls++;
}

struct job {
    struct check c;
    const char *query;
    char kind; /* M, A (any), 4, 6, T, P */
    int resolver; /* 0: explicit nameserver, 1: resolv.conf, 2: silent server, 3: two */
};

static void deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: dns_check NAMESERVER\n");
        return 2;
    }
    const char *servfail_zone = argc > 2 ? argv[2] : "servfail.test";
    char sf_name[300];
    snprintf(sf_name, sizeof(sf_name), "x.%s", servfail_zone);
    char long_label[80];
    memset(long_label, 'a', 64);
    strcpy(long_label + 64, ".test");

    struct event_base *base = event_base_new();
    if (!base)
        return 1;
    char err[256];
    struct dns_resolver *r[4];
    r[0] = dns_resolver_new(base, argv[1], err, sizeof(err));
    if (!r[0]) {
        printf("FAIL dns-resolver-new: %s\n", err);
        return 1;
    }
    /* NULL: servers from /etc/resolv.conf (netns-run -r points it at our server). */
    r[1] = dns_resolver_new(base, NULL, err, sizeof(err));
    if (!r[1]) {
        printf("FAIL dns-resolver-resolvconf: %s\n", err);
        return 1;
    }
    /* A server that never answers: a bound UDP socket nobody reads. */
    int silent = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof(sin);
    if (silent < 0 || bind(silent, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        getsockname(silent, (struct sockaddr *)&sin, &slen) != 0) {
        printf("FAIL dns-silent-server: cannot bind\n");
        return 1;
    }
    char silent_spec[64];
    snprintf(silent_spec, sizeof(silent_spec), "127.0.0.1:%u", ntohs(sin.sin_port));
    struct dns_options so = {.nameserver = silent_spec, .timeout_ms = 200, .tries = 2};
    r[2] = dns_resolver_new_opts(base, &so, err, sizeof(err));
    if (!r[2]) {
        printf("FAIL dns-resolver-opts: %s\n", err);
        return 1;
    }

    /* Two servers, the first unreachable: c-ares must move on to the second. */
    char rc_path[] = "/tmp/dns_check_resolv.XXXXXX";
    int rc_fd = mkstemp(rc_path);
    static const char two[] = "nameserver 127.0.0.54\nnameserver 127.0.0.53\n";
    if (rc_fd < 0 || write(rc_fd, two, sizeof(two) - 1) != (ssize_t)(sizeof(two) - 1)) {
        printf("FAIL dns-resolv-conf-file: cannot write %s\n", rc_path);
        return 1;
    }
    close(rc_fd);
    struct dns_options two_opts = {.resolv_conf = rc_path, .timeout_ms = 500, .tries = 2};
    r[3] = dns_resolver_new_opts(base, &two_opts, err, sizeof(err));
    unlink(rc_path); /* read at creation */
    if (!r[3]) {
        printf("FAIL dns-resolver-two-servers: %s\n", err);
        return 1;
    }

    const struct job jobs[] = {
        {{"mx-multi-sorted", v_mx_multi}, "multi.test", 'M', 0},
        {{"mx-null", v_mx_null}, "nullmx.test", 'M', 0},
        {{"mx-nodata-implicit", v_nodata}, "onlya.test", 'M', 0},
        {{"mx-implicit-addr", v_addr_onlya}, "onlya.test", 'A', 0},
        {{"mx-nxdomain", v_nxdomain}, "nope.test", 'M', 0},
        {{"mx-nxdomain-deep", v_nxdomain}, "a.b.nope.test", 'M', 0},
        {{"mx-servfail", v_tempfail_servfail}, sf_name, 'M', 0},
        {{"mx-refused", v_tempfail_refused}, "example.invalid", 'M', 0},
        {{"mx-badname", v_badname}, long_label, 'M', 0},
        {{"mx-trailing-dot", v_mx_spf}, "spf.test.", 'M', 0},
        {{"mx-timeout", v_tempfail_timeout}, "multi.test", 'M', 2},
        {{"addr-v6only", v_addr_v6only}, "v6only.test", 'A', 0},
        {{"addr-v6only-want-v4", v_nodata}, "v6only.test", '4', 0},
        {{"addr-dual", v_addr_dual}, "dual.test", 'A', 0},
        {{"addr-dual-want-v4", v_addr_dual_v4}, "dual.test", '4', 0},
        {{"addr-dual-want-v6", v_addr_v6only}, "dual.test", '6', 0},
        {{"addr-mx-host", v_addr_mx2}, "mx2.multi.test", 'A', 0},
        {{"addr-cname", v_addr_onlya}, "alias.test", 'A', 0},
        {{"addr-nxdomain", v_nxdomain}, "nope.test", 'A', 0},
        {{"addr-nodata", v_nodata}, "multi.test", 'A', 0},
        {{"addr-servfail", v_tempfail_servfail}, sf_name, 'A', 0},
        {{"addr-timeout", v_tempfail_timeout}, "dual.test", 'A', 2},
        {{"txt-spf", v_txt_spf}, "spf.test", 'T', 0},
        {{"txt-dmarc", v_txt_dmarc}, "_dmarc.spf.test", 'T', 0},
        {{"txt-multi-record", v_txt_multi}, "multitxt.test", 'T', 0},
        {{"txt-big-tcp", v_txt_big}, "big.test", 'T', 0},
        {{"txt-nodata", v_nodata}, "onlya.test", 'T', 0},
        {{"txt-nxdomain", v_nxdomain}, "_dmarc.nope.test", 'T', 0},
        {{"ptr-v4", v_ptr_onlya}, "127.0.0.16", 'P', 0},
        {{"ptr-v4-two-names", v_ptr_dual}, "127.0.0.17", 'P', 0},
        {{"ptr-v6", v_ptr_v6}, "::1", 'P', 0},
        {{"ptr-v4-mapped", v_ptr_onlya}, "::ffff:127.0.0.16", 'P', 0},
        {{"ptr-nxdomain", v_nxdomain}, "127.0.0.99", 'P', 0},
        {{"ptr-badname", v_badname}, "127.0.0.300", 'P', 0},
        {{"resolvconf-mx", v_mx_multi}, "multi.test", 'M', 1},
        {{"resolvconf-addr", v_addr_ns}, "ns.test", 'A', 1},
        {{"resolvconf-servfail", v_tempfail_servfail}, sf_name, 'M', 1},
        {{"resolvconf-nxdomain", v_nxdomain}, "nope.test", 'A', 1},
        {{"two-servers-mx", v_mx_multi}, "multi.test", 'M', 3},
        {{"two-servers-nxdomain", v_nxdomain}, "nope.test", 'M', 3},
        {{"two-servers-servfail", v_tempfail}, sf_name, 'M', 3},
    };

    for (size_t i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++) {
        const struct job *j = &jobs[i];
        struct dns_resolver *rr = r[j->resolver];
        void *arg = (void *)&j->c;
        struct dns_query *q = NULL;
        switch (j->kind) {
        case 'M':
            q = dns_lookup_mx(rr, j->query, on_result, arg);
            break;
        case 'A':
            q = dns_lookup_addr(rr, j->query, DNS_WANT_ANY, on_result, arg);
            break;
        case '4':
            q = dns_lookup_addr(rr, j->query, DNS_WANT_V4, on_result, arg);
            break;
        case '6':
            q = dns_lookup_addr(rr, j->query, DNS_WANT_V6, on_result, arg);
            break;
        case 'T':
            q = dns_lookup_txt(rr, j->query, on_result, arg);
            break;
        case 'P':
            q = dns_lookup_ptr(rr, j->query, on_result, arg);
            break;
        }
        if (q)
            pending++;
        else
            report(j->c.name, false, "lookup refused to start");
    }
    for (int i = 0; i < TIE_ROUNDS; i++)
        if (dns_lookup_mx(r[0], "multi.test", on_tie, NULL))
            pending++;

    /* a cancelled lookup never calls back, even though its answer arrives */
    dns_cancel(dns_lookup_mx(r[0], "multi.test", on_cancelled, NULL));

    /* Everything should be done within a second or two; do not hang a test run. */
    struct timeval limit = {10, 0};
    struct event *t = evtimer_new(base, deadline, base);
    if (!t || evtimer_add(t, &limit) != 0)
        return 1;
    while (pending > 0 && event_base_loop(base, EVLOOP_ONCE) == 0)
        if (event_base_got_break(base))
            break;
    if (pending > 0)
        report("all-answered", false, "lookups still pending after 10 s");
    else
        report("all-answered", true, "");
    report("cancel", cancelled_calls == 0, "a cancelled lookup called back");

    event_free(t);
    for (int i = 0; i < 4; i++)
        dns_resolver_free(r[i]);
    event_base_free(base);
    close(silent);
    fprintf(stderr, "dns_check: %d passed, %d failed\n", passed, failed);
    return failed ? 3 : 0; /* not 1: that is what a sanitizer exits with */
}
