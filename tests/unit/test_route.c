/* test_route.c - the routing decision (src/route.c): local, transport overrides (exact and
 * ".parent"), smarthost, address literals, MX, and the destination keys. The configuration
 * is built by hand so the test does not depend on the parser's keywords. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "route.h"

static char *local_domains[] = {"local.test", "other.test"};
static struct outbound_dest_cfg transports[] = {
    {.domain = "special.test", .host = "relay.special.test", .port = 2525,
     .tls = TLS_POLICY_REQUIRED},
    {.domain = ".corp.test", .host = "10.1.2.3"},
    {.domain = "deep.corp.test", .host = "::1", .port = 26, .tls = TLS_POLICY_NONE},
};

static struct config base_cfg(void)
{
    struct config c;
    memset(&c, 0, sizeof c);
    c.local_domains = local_domains;
    c.nlocal_domains = 2;
    return c;
}

static void test_local_and_mx(void **state)
{
    (void)state;
    struct config c = base_cfg();
    struct route r;
    char err[256];
    assert_int_equal(route_lookup(&c, "Local.TEST", &r, err, sizeof err), 0);
    assert_int_equal(r.kind, ROUTE_LOCAL);
    assert_int_equal(route_lookup(&c, "Example.ORG.", &r, err, sizeof err), 0);
    assert_int_equal(r.kind, ROUTE_MX);
    assert_string_equal(r.domain, "example.org");
    assert_string_equal(r.host, "example.org");
    assert_int_equal(r.port, 25);
    assert_int_equal(r.tls, TLS_POLICY_OPPORTUNISTIC);
    assert_string_equal(r.key, "mx:example.org");
    c.outbound_tls = TLS_POLICY_NONE;
    assert_int_equal(route_lookup(&c, "example.org", &r, err, sizeof err), 0);
    assert_int_equal(r.tls, TLS_POLICY_NONE);
}

static void test_transports(void **state)
{
    (void)state;
    struct config c = base_cfg();
    c.transports = transports;
    c.ntransports = 3;
    struct route r;
    char err[256];
    assert_int_equal(route_lookup(&c, "special.test", &r, err, sizeof err), 0);
    assert_int_equal(r.kind, ROUTE_HOST);
    assert_string_equal(r.host, "relay.special.test");
    assert_false(r.literal);
    assert_int_equal(r.port, 2525);
    assert_int_equal(r.tls, TLS_POLICY_REQUIRED);
    assert_string_equal(r.key, "host:relay.special.test:2525:tls=encrypt");
    assert_ptr_equal(r.dest, &transports[0]);
    /* ".corp.test" covers subdomains, not corp.test itself */
    assert_int_equal(route_lookup(&c, "a.b.corp.test", &r, err, sizeof err), 0);
    assert_int_equal(r.kind, ROUTE_HOST);
    assert_string_equal(r.host, "10.1.2.3");
    assert_true(r.literal);
    assert_int_equal(r.port, 25);
    assert_int_equal(route_lookup(&c, "corp.test", &r, err, sizeof err), 0);
    assert_int_equal(r.kind, ROUTE_MX);
    /* an exact entry wins over a parent's */
    assert_int_equal(route_lookup(&c, "deep.corp.test", &r, err, sizeof err), 0);
    assert_string_equal(r.host, "::1");
    assert_int_equal(r.tls, TLS_POLICY_NONE);
    assert_string_equal(r.key, "host:::1:26:tls=none");
    /* the closest parent wins */
    assert_int_equal(route_lookup(&c, "x.deep.corp.test", &r, err, sizeof err), 0);
    assert_string_equal(r.host, "10.1.2.3");
}

static void test_smarthost(void **state)
{
    (void)state;
    struct config c = base_cfg();
    c.transports = transports;
    c.ntransports = 1;
    c.smarthost.host = "Relay.ISP.test";
    c.smarthost.port = 587;
    c.smarthost.auth_user = "me";
    struct route r;
    char err[256];
    assert_int_equal(route_lookup(&c, "anywhere.test", &r, err, sizeof err), 0);
    assert_int_equal(r.kind, ROUTE_HOST);
    assert_string_equal(r.host, "relay.isp.test");
    assert_int_equal(r.port, 587);
    assert_ptr_equal(r.dest, &c.smarthost);
    assert_string_equal(r.key, "host:relay.isp.test:587");
    /* the same host at another TLS level is another destination: no shared connection */
    c.smarthost.tls = TLS_POLICY_VERIFY;
    assert_int_equal(route_lookup(&c, "anywhere.test", &r, err, sizeof err), 0);
    assert_int_equal(r.tls, TLS_POLICY_VERIFY);
    assert_string_equal(r.key, "host:relay.isp.test:587:tls=verify");
    c.outbound_tls = TLS_POLICY_REQUIRED; /* the global level: MX keys stay per domain */
    assert_int_equal(route_lookup(&c, "mx.example", &r, err, sizeof err), 0);
    c.smarthost.host = NULL;
    assert_int_equal(route_lookup(&c, "mx.example", &r, err, sizeof err), 0);
    assert_int_equal(r.kind, ROUTE_MX);
    assert_int_equal(r.tls, TLS_POLICY_REQUIRED);
    assert_string_equal(r.key, "mx:mx.example");
    /* transports before the smarthost; local stays local */
    assert_int_equal(route_lookup(&c, "special.test", &r, err, sizeof err), 0);
    assert_string_equal(r.host, "relay.special.test");
    assert_int_equal(route_lookup(&c, "other.test", &r, err, sizeof err), 0);
    assert_int_equal(r.kind, ROUTE_LOCAL);
}

static void test_literals_and_errors(void **state)
{
    (void)state;
    struct config c = base_cfg();
    struct route r;
    char err[256];
    assert_int_equal(route_lookup(&c, "[127.0.0.9]", &r, err, sizeof err), 0);
    assert_int_equal(r.kind, ROUTE_HOST);
    assert_true(r.literal);
    assert_string_equal(r.host, "127.0.0.9");
    assert_int_equal(route_lookup(&c, "[IPv6:::1]", &r, err, sizeof err), 0);
    assert_string_equal(r.host, "::1");
    assert_int_equal(route_lookup(&c, "[300.1.1.1]", &r, err, sizeof err), -1);
    assert_true(strncmp(err, "5.1.2 ", 6) == 0);
    assert_int_equal(route_lookup(&c, "[::1]", &r, err, sizeof err), -1); /* needs IPv6: */
    assert_int_equal(route_lookup(&c, "", &r, err, sizeof err), -1);
    assert_int_equal(route_lookup(&c, "b\xc3\xbc" "cher.test", &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "IDNA"));
    assert_string_equal(route_addr_domain("a@b@c.test"), "c.test");
    assert_null(route_addr_domain("nodomain"));
    assert_null(route_addr_domain("x@"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_and_mx),
        cmocka_unit_test(test_transports),
        cmocka_unit_test(test_smarthost),
        cmocka_unit_test(test_literals_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
