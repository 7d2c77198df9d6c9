/* test_dns.c - unit tests for src/dns.c: the pure helpers (result classes, MX ordering per
 * RFC 5321 5.1, null MX per RFC 7505, name checks, reverse names, nameserver syntax) and
 * the resolver's lifetime rules against real loopback sockets that never answer (no DNS
 * server needed: answers from a real server are tested in tests/integration/test_dns.sh). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ares.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns.h"

/* ---------------------------------------------------------------- classes */

static void test_status_from_ares(void **state)
{
    (void)state;
    assert_int_equal(dns_status_from_ares(ARES_SUCCESS), DNS_OK);
    assert_int_equal(dns_status_from_ares(ARES_ENOTFOUND), DNS_NXDOMAIN);
    assert_int_equal(dns_status_from_ares(ARES_ENODATA), DNS_NODATA);
    assert_int_equal(dns_status_from_ares(ARES_EBADNAME), DNS_BADNAME);
    const int temp[] = {ARES_ESERVFAIL, ARES_EREFUSED, ARES_ETIMEOUT,  ARES_ECONNREFUSED,
                        ARES_EBADRESP,  ARES_EFORMERR, ARES_ENOTIMP,   ARES_ENOMEM,
                        ARES_ECANCELLED, ARES_EDESTRUCTION, ARES_EOF,  ARES_EFILE};
    for (size_t i = 0; i < sizeof(temp) / sizeof(temp[0]); i++)
        assert_int_equal(dns_status_from_ares(temp[i]), DNS_TEMPFAIL);
}

static void test_status_str_permanent(void **state)
{
    (void)state;
    assert_string_equal(dns_status_str(DNS_OK), "ok");
    assert_string_equal(dns_status_str(DNS_NXDOMAIN), "nxdomain");
    assert_string_equal(dns_status_str(DNS_NODATA), "nodata");
    assert_string_equal(dns_status_str(DNS_NULL_MX), "null-mx");
    assert_string_equal(dns_status_str(DNS_TEMPFAIL), "tempfail");
    assert_string_equal(dns_status_str(DNS_BADNAME), "badname");
    assert_false(dns_status_permanent(DNS_OK));
    assert_false(dns_status_permanent(DNS_TEMPFAIL));
    assert_true(dns_status_permanent(DNS_NXDOMAIN));
    assert_true(dns_status_permanent(DNS_NODATA));
    assert_true(dns_status_permanent(DNS_NULL_MX));
    assert_true(dns_status_permanent(DNS_BADNAME));
}

/* ---------------------------------------------------------------- MX ordering */

static uint32_t counter_rnd(void *arg)
{
    uint32_t *c = arg;
    return (*c)++;
}

static uint32_t down_rnd(void *arg)
{
    uint32_t *c = arg;
    return (*c)--;
}

static void test_mx_sort_by_preference(void **state)
{
    (void)state;
    struct dns_mx mx[] = {
        {.pref = 30, .host = "c"}, {.pref = 10, .host = "a"}, {.pref = 65535, .host = "z"},
        {.pref = 20, .host = "b"}, {.pref = 0, .host = "first"},
    };
    uint32_t c = 0;
    dns_mx_sort(mx, 5, counter_rnd, &c);
    assert_int_equal(c, 5); /* one random draw per record */
    const char *want[] = {"first", "a", "b", "c", "z"};
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(mx[i].host, want[i]);
}

static void test_mx_sort_ties_follow_rnd(void **state)
{
    (void)state;
    /* Equal preferences are ordered by the random draw: an increasing source keeps input
     * order, a decreasing one reverses it. Different preferences never move. */
    struct dns_mx a[] = {{.pref = 10, .host = "x"}, {.pref = 5, .host = "p"},
                         {.pref = 10, .host = "y"}, {.pref = 10, .host = "z"}};
    struct dns_mx b[4];
    memcpy(b, a, sizeof(a));
    uint32_t up = 0, down = 100;
    dns_mx_sort(a, 4, counter_rnd, &up);
    dns_mx_sort(b, 4, down_rnd, &down);
    assert_string_equal(a[0].host, "p");
    assert_string_equal(a[1].host, "x");
    assert_string_equal(a[2].host, "y");
    assert_string_equal(a[3].host, "z");
    assert_string_equal(b[0].host, "p");
    assert_string_equal(b[1].host, "z");
    assert_string_equal(b[2].host, "y");
    assert_string_equal(b[3].host, "x");
}

static void test_mx_sort_default_rnd_shuffles_ties(void **state)
{
    (void)state;
    /* With arc4random both orders of a tie must show up; 64 rounds all alike has
     * probability 2^-63. */
    int first_x = 0;
    for (int round = 0; round < 64; round++) {
        struct dns_mx mx[] = {{.pref = 10, .host = "x"}, {.pref = 10, .host = "y"},
                              {.pref = 20, .host = "z"}};
        dns_mx_sort(mx, 3, NULL, NULL);
        assert_string_equal(mx[2].host, "z");
        first_x += strcmp(mx[0].host, "x") == 0;
    }
    assert_true(first_x > 0 && first_x < 64);
    dns_mx_sort(NULL, 0, NULL, NULL); /* empty is fine */
}

static void test_mx_null(void **state)
{
    (void)state;
    struct dns_mx null1[] = {{.pref = 0, .host = ""}};
    struct dns_mx null_dot[] = {{.pref = 0, .host = "."}};
    struct dns_mx real[] = {{.pref = 0, .host = "mx.example"}};
    struct dns_mx mixed[] = {{.pref = 0, .host = ""}, {.pref = 10, .host = "mx.example"}};
    assert_true(dns_mx_is_null(null1, 1));
    assert_true(dns_mx_is_null(null_dot, 1));
    assert_false(dns_mx_is_null(real, 1));
    assert_false(dns_mx_is_null(mixed, 2));
    assert_false(dns_mx_is_null(NULL, 0));
}

static void test_mx_drop_null(void **state)
{
    (void)state;
    struct dns_mx mx[] = {{.pref = 0, .host = ""},  {.pref = 10, .host = "a"},
                          {.pref = 0, .host = "."}, {.pref = 20, .host = "b"},
                          {.pref = 5, .host = "c"}};
    size_t n = dns_mx_drop_null(mx, 5);
    assert_int_equal(n, 3);
    assert_string_equal(mx[0].host, "a");
    assert_string_equal(mx[1].host, "b");
    assert_string_equal(mx[2].host, "c");
    /* the roots are kept at the end, so the caller can still free every host */
    assert_true(mx[3].host[0] == '\0' || strcmp(mx[3].host, ".") == 0);
    assert_true(mx[4].host[0] == '\0' || strcmp(mx[4].host, ".") == 0);
    struct dns_mx none[] = {{.pref = 1, .host = "a"}};
    assert_int_equal(dns_mx_drop_null(none, 1), 1);
}

/* ---------------------------------------------------------------- names */

static void test_name_valid(void **state)
{
    (void)state;
    char l63[64], l64[65], long_name[300];
    memset(l63, 'a', 63);
    l63[63] = '\0';
    memset(l64, 'a', 64);
    l64[64] = '\0';
    assert_true(dns_name_valid("example.test"));
    assert_true(dns_name_valid("example.test."));
    assert_true(dns_name_valid("_dmarc.example.test"));
    assert_true(dns_name_valid("localhost"));
    assert_true(dns_name_valid(l63));
    assert_false(dns_name_valid(l64));
    assert_false(dns_name_valid(""));
    assert_false(dns_name_valid("."));
    assert_false(dns_name_valid("a..b"));
    assert_false(dns_name_valid(".a"));
    assert_false(dns_name_valid("a.b.."));
    assert_false(dns_name_valid("a b.test"));
    assert_false(dns_name_valid("a\\.test"));
    assert_false(dns_name_valid("caf\xc3\xa9.test")); /* U-label: convert to xn-- first */
    assert_false(dns_name_valid("a\r\n.test"));
    /* 253 octets is the longest name; 254 is too long (the trailing dot does not count) */
    size_t k = 0;
    while (k < 253) {
        long_name[k++] = 'a';
        if (k < 253 && k % 50 == 49)
            long_name[k++] = '.';
    }
    long_name[253] = '\0';
    assert_int_equal(strlen(long_name), 253);
    assert_true(dns_name_valid(long_name));
    long_name[253] = '.';
    long_name[254] = '\0';
    assert_true(dns_name_valid(long_name));
    long_name[253] = 'a';
    assert_false(dns_name_valid(long_name));
}

static void test_reverse_name(void **state)
{
    (void)state;
    char out[128];
    assert_true(dns_reverse_name("127.0.0.16", out, sizeof(out)));
    assert_string_equal(out, "16.0.0.127.in-addr.arpa");
    assert_true(dns_reverse_name("192.0.2.1", out, sizeof(out)));
    assert_string_equal(out, "1.2.0.192.in-addr.arpa");
    assert_true(dns_reverse_name("::1", out, sizeof(out)));
    assert_string_equal(out, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
                             "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa");
    /* RFC 3596 2.5 example */
    assert_true(dns_reverse_name("4321:0:1:2:3:4:567:89ab", out, sizeof(out)));
    assert_string_equal(out, "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0."
                             "2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa");
    /* an IPv4-mapped address is looked up as the IPv4 address */
    assert_true(dns_reverse_name("::ffff:127.0.0.16", out, sizeof(out)));
    assert_string_equal(out, "16.0.0.127.in-addr.arpa");
    assert_false(dns_reverse_name("example.test", out, sizeof(out)));
    assert_false(dns_reverse_name("127.0.0", out, sizeof(out)));
    assert_false(dns_reverse_name("", out, sizeof(out)));
    assert_false(dns_reverse_name("::1", out, 20)); /* too small: refused, not truncated */
    assert_true(dns_reverse_name("1.2.3.4", out, 21));
    assert_false(dns_reverse_name("1.2.3.4", out, 20));
}

static void test_parse_nameserver(void **state)
{
    (void)state;
    int fam;
    unsigned char a[16];
    unsigned port;
    char err[128];

    assert_true(dns_parse_nameserver("127.0.0.53", &fam, a, &port, err, sizeof(err)));
    assert_int_equal(fam, AF_INET);
    assert_int_equal(port, 53);
    assert_memory_equal(a, "\x7f\x00\x00\x35", 4);

    assert_true(dns_parse_nameserver("127.0.0.1:5353", &fam, a, &port, err, sizeof(err)));
    assert_int_equal(fam, AF_INET);
    assert_int_equal(port, 5353);

    assert_true(dns_parse_nameserver("::1", &fam, a, &port, err, sizeof(err)));
    assert_int_equal(fam, AF_INET6);
    assert_int_equal(port, 53);
    assert_int_equal(a[15], 1);

    assert_true(dns_parse_nameserver("[::1]:1053", &fam, a, &port, err, sizeof(err)));
    assert_int_equal(fam, AF_INET6);
    assert_int_equal(port, 1053);

    assert_true(dns_parse_nameserver("[::1]", &fam, a, &port, err, sizeof(err)));
    assert_int_equal(port, 53);

    const char *bad[] = {"",          "localhost",     "127.0.0.1:",    "127.0.0.1:0",
                         "127.0.0.1:65536", "127.0.0.1:53x", "[::1",    "[::1]x",
                         "[::1]:",    "1.2.3",         "[]:53",         "::1:53:x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_false(dns_parse_nameserver(bad[i], &fam, a, &port, err, sizeof(err)));
        assert_true(err[0] != '\0');
    }
    assert_true(dns_parse_nameserver("127.0.0.1:65535", &fam, a, &port, NULL, 0));
    assert_false(dns_parse_nameserver("x", &fam, a, &port, NULL, 0)); /* err is optional */
}

/* ---------------------------------------------------------------- resolver lifetime */

struct seen {
    int calls;
    enum dns_status status;
    char detail[128];
    char name[64];
    size_t count;
};

static void record_cb(const struct dns_result *res, void *arg)
{
    struct seen *s = arg;
    s->calls++;
    s->status = res->status;
    s->count = res->count;
    snprintf(s->detail, sizeof(s->detail), "%s", res->detail);
    snprintf(s->name, sizeof(s->name), "%s", res->name);
}

/* A UDP socket on 127.0.0.1 that never answers; returns fd and "127.0.0.1:PORT". */
static int silent_server(char *spec, size_t cap)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    socklen_t len = sizeof(sin);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    snprintf(spec, cap, "127.0.0.1:%u", ntohs(sin.sin_port));
    return fd;
}

static struct dns_resolver *fast_resolver(struct event_base *base, const char *spec)
{
    char err[256];
    struct dns_options o = {.nameserver = spec, .timeout_ms = 100, .tries = 1};
    struct dns_resolver *r = dns_resolver_new_opts(base, &o, err, sizeof(err));
    if (!r)
        fail_msg("dns_resolver_new_opts: %s", err);
    return r;
}

static void test_resolver_bad_nameserver(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    assert_non_null(base);
    char err[256] = "";
    assert_null(dns_resolver_new(base, "not-an-ip", err, sizeof(err)));
    assert_non_null(strstr(err, "not-an-ip"));
    event_base_free(base);
}

static void test_badname_is_reported_later(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    char spec[64];
    int fd = silent_server(spec, sizeof(spec));
    struct dns_resolver *r = fast_resolver(base, spec);
    struct seen a = {0}, b = {0};
    assert_non_null(dns_lookup_mx(r, "a..b", record_cb, &a));
    assert_non_null(dns_lookup_ptr(r, "not-an-address", record_cb, &b));
    assert_int_equal(a.calls, 0); /* never from inside the call */
    assert_int_equal(b.calls, 0);
    assert_int_equal(event_base_dispatch(base), 1); /* nothing left to wait for */
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, DNS_BADNAME);
    assert_string_equal(a.name, "a..b");
    assert_int_equal(a.count, 0);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, DNS_BADNAME);
    dns_resolver_free(r);
    event_base_free(base);
    close(fd);
}

static void test_timeout_is_tempfail(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    char spec[64];
    int fd = silent_server(spec, sizeof(spec));
    struct dns_resolver *r = fast_resolver(base, spec);
    struct seen mx = {0}, addr = {0}, txt = {0}, ptr = {0};
    dns_lookup_mx(r, "example.test", record_cb, &mx);
    dns_lookup_addr(r, "example.test", DNS_WANT_ANY, record_cb, &addr);
    dns_lookup_txt(r, "example.test", record_cb, &txt);
    dns_lookup_ptr(r, "127.0.0.1", record_cb, &ptr);
    event_base_dispatch(base); /* returns when the timer and sockets are gone */
    struct seen *all[] = {&mx, &addr, &txt, &ptr};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(all[i]->calls, 1);
        assert_int_equal(all[i]->status, DNS_TEMPFAIL);
        assert_string_equal(all[i]->detail, "timeout");
    }
    dns_resolver_free(r);
    event_base_free(base);
    close(fd);
}

static void test_refused_port_is_tempfail(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    char spec[64];
    close(silent_server(spec, sizeof(spec))); /* a port where nothing listens any more */
    struct dns_resolver *r = fast_resolver(base, spec);
    struct seen s = {0};
    dns_lookup_mx(r, "example.test", record_cb, &s);
    event_base_dispatch(base);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, DNS_TEMPFAIL);
    dns_resolver_free(r);
    event_base_free(base);
}

static void test_cancel(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    char spec[64];
    int fd = silent_server(spec, sizeof(spec));
    struct dns_resolver *r = fast_resolver(base, spec);
    struct seen a = {0}, b = {0}, c = {0};
    struct dns_query *qa = dns_lookup_addr(r, "example.test", DNS_WANT_ANY, record_cb, &a);
    struct dns_query *qb = dns_lookup_mx(r, "..", record_cb, &b); /* waiting for delivery */
    dns_lookup_txt(r, "example.test", record_cb, &c);
    dns_cancel(qa);
    dns_cancel(qb);
    dns_cancel(NULL);
    event_base_dispatch(base);
    assert_int_equal(a.calls, 0);
    assert_int_equal(b.calls, 0);
    assert_int_equal(c.calls, 1); /* the others still complete */
    dns_resolver_free(r);
    event_base_free(base);
    close(fd);
}

static void test_free_with_pending_queries(void **state)
{
    (void)state;
    /* Freeing with queries in flight runs no callback and leaks nothing (ASan checks). */
    struct event_base *base = event_base_new();
    char spec[64];
    int fd = silent_server(spec, sizeof(spec));
    struct dns_resolver *r = fast_resolver(base, spec);
    struct seen s = {0};
    dns_lookup_addr(r, "example.test", DNS_WANT_ANY, record_cb, &s);
    dns_lookup_mx(r, "bad..name", record_cb, &s);
    dns_lookup_ptr(r, "::1", record_cb, &s);
    dns_resolver_free(r);
    dns_resolver_free(NULL);
    assert_int_equal(event_base_dispatch(base), 1); /* no event left behind */
    assert_int_equal(s.calls, 0);
    event_base_free(base);
    close(fd);
}

struct free_in_cb {
    struct dns_resolver *r;
    int calls;
};

static void free_resolver_cb(const struct dns_result *res, void *arg)
{
    (void)res;
    struct free_in_cb *f = arg;
    f->calls++;
    dns_resolver_free(f->r); /* later callbacks must not run */
    /* and starting a lookup on a dying resolver is refused */
    assert_null(dns_lookup_mx(f->r, "example.test", free_resolver_cb, f));
}

static void test_free_inside_callback(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    char spec[64];
    int fd = silent_server(spec, sizeof(spec));
    /* From a deferred delivery... */
    struct free_in_cb f = {.r = fast_resolver(base, spec)};
    dns_lookup_mx(f.r, "a..b", free_resolver_cb, &f);
    dns_lookup_mx(f.r, "c..d", free_resolver_cb, &f);
    dns_lookup_mx(f.r, "example.test", free_resolver_cb, &f);
    event_base_dispatch(base);
    assert_int_equal(f.calls, 1);
    /* ...and from inside c-ares (several timeouts in one round). */
    struct free_in_cb g = {.r = fast_resolver(base, spec)};
    for (int i = 0; i < 3; i++)
        dns_lookup_txt(g.r, "example.test", free_resolver_cb, &g);
    event_base_dispatch(base);
    assert_int_equal(g.calls, 1);
    event_base_free(base);
    close(fd);
}

struct chain {
    struct dns_resolver *r;
    int calls;
};

static void chain_cb(const struct dns_result *res, void *arg)
{
    struct chain *c = arg;
    c->calls++;
    /* A callback may start the next lookup (MX, then the hosts' addresses...). */
    if (c->calls < 3)
        assert_non_null(dns_lookup_addr(c->r, res->name, DNS_WANT_V4, chain_cb, c));
}

static void test_lookup_from_callback(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    char spec[64];
    int fd = silent_server(spec, sizeof(spec));
    struct chain c = {.r = fast_resolver(base, spec)};
    dns_lookup_mx(c.r, "example.test", chain_cb, &c); /* times out, then chains twice */
    event_base_dispatch(base);
    assert_int_equal(c.calls, 3);
    dns_resolver_free(c.r);
    event_base_free(base);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_from_ares),
        cmocka_unit_test(test_status_str_permanent),
        cmocka_unit_test(test_mx_sort_by_preference),
        cmocka_unit_test(test_mx_sort_ties_follow_rnd),
        cmocka_unit_test(test_mx_sort_default_rnd_shuffles_ties),
        cmocka_unit_test(test_mx_null),
        cmocka_unit_test(test_mx_drop_null),
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test(test_reverse_name),
        cmocka_unit_test(test_parse_nameserver),
        cmocka_unit_test(test_resolver_bad_nameserver),
        cmocka_unit_test(test_badname_is_reported_later),
        cmocka_unit_test(test_timeout_is_tempfail),
        cmocka_unit_test(test_refused_port_is_tempfail),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_free_with_pending_queries),
        cmocka_unit_test(test_free_inside_callback),
        cmocka_unit_test(test_lookup_from_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
