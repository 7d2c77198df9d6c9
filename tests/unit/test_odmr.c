/* test_odmr.c - On-Demand Mail Relay (RFC 2645) pure parts: the configuration keywords
 * (odmr_domain, listen ... odmr), which domains an ATRN asks for and entitlement (odmr.c),
 * and the route of a held domain (route.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "odmr.h"
#include "route.h"

static const char base[] = "listen 127.0.0.1:2525 smtp\nlisten 127.0.0.1:2366 odmr\n"
                           "local_domain example.test\n";

static int parse(struct config *cfg, const char *extra, char *err, size_t errlen)
{
    char text[1024];
    snprintf(text, sizeof text, "%s%s", base, extra);
    return config_parse(cfg, "t", text, strlen(text), err, errlen);
}

static void test_config(void **state)
{
    (void)state;
    struct config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, "odmr_domain Cust.Test ann bob\nodmr_domain b.test bob\n", err,
                           sizeof err), 0);
    assert_int_equal(cfg.listen[1].kind, LISTEN_ODMR);
    assert_int_equal(cfg.listen[1].port, 2366);
    assert_int_equal(cfg.nodmr_domains, 2);
    assert_string_equal(cfg.odmr_domains[0].domain, "cust.test");
    assert_true(config_is_odmr_domain(&cfg, "CUST.test"));
    assert_false(config_is_odmr_domain(&cfg, "example.test"));
    assert_false(config_is_odmr_domain(&cfg, NULL));
    assert_true(config_odmr_entitled(&cfg, "ann", "cust.test"));
    assert_true(config_odmr_entitled(&cfg, "bob", "B.TEST"));
    assert_false(config_odmr_entitled(&cfg, "ann", "b.test"));
    assert_false(config_odmr_entitled(&cfg, "Ann", "cust.test")); /* login names are exact */
    config_free(&cfg);

    assert_int_equal(parse(&cfg, "odmr_domain cust.test\n", err, sizeof err), -1);
    assert_non_null(strstr(err, "t:4: odmr_domain: expected a domain and the users"));
    assert_int_equal(parse(&cfg, "odmr_domain bad..test ann\n", err, sizeof err), -1);
    assert_non_null(strstr(err, "not a valid domain"));
    assert_int_equal(parse(&cfg, "odmr_domain a.test ann\nodmr_domain A.test bob\n", err,
                           sizeof err), -1);
    assert_non_null(strstr(err, "t:5: odmr_domain: 'A.test' is already listed"));
    assert_int_equal(parse(&cfg, "odmr_domain example.test ann\n", err, sizeof err), -1);
    assert_non_null(strstr(err, "is a local_domain"));
    config_free(&cfg);
}

static void test_atrn_domains(void **state)
{
    (void)state;
    struct config cfg;
    char err[256], out[ODMR_LIST_MAX], bad[300];
    assert_int_equal(parse(&cfg, "odmr_domain a.test ann\nodmr_domain b.test ann bob\n"
                                 "odmr_domain c.test bob\n", err, sizeof err), 0);
#define ATRN(user, arg) odmr_atrn_domains(&cfg, user, arg, strlen(arg), out, sizeof out, bad, sizeof bad)
    assert_int_equal(ATRN("ann", ""), ODMR_OK);
    assert_string_equal(out, "a.test,b.test");
    assert_int_equal(ATRN("bob", "  "), ODMR_OK);
    assert_string_equal(out, "b.test,c.test");
    assert_int_equal(ATRN("nobody", ""), ODMR_NO_DOMAINS);
    assert_int_equal(ATRN("ann", "B.Test,a.test,b.test "), ODMR_OK);
    assert_string_equal(out, "b.test,a.test"); /* lower-cased, duplicates dropped */
    assert_int_equal(ATRN("ann", "a.test,c.test"), ODMR_NOT_ENTITLED);
    assert_string_equal(bad, "c.test");
    assert_int_equal(ATRN("ann", "unknown.test"), ODMR_NOT_ENTITLED);
    assert_int_equal(ATRN("ann", "a.test,"), ODMR_SYNTAX);
    assert_int_equal(ATRN("ann", ",a.test"), ODMR_SYNTAX);
    assert_int_equal(ATRN("ann", "a.test, b.test"), ODMR_SYNTAX);
    assert_int_equal(ATRN("ann", "[192.0.2.1]"), ODMR_SYNTAX);
    assert_int_equal(ATRN("ann", "a..test"), ODMR_SYNTAX);
#undef ATRN
    assert_true(odmr_list_has("a.test,b.test", "B.TEST"));
    assert_true(odmr_list_has("a.test,b.test", "a.test"));
    assert_false(odmr_list_has("a.test,b.test", "test"));
    assert_false(odmr_list_has("a.test,bb.test", "b.test"));
    assert_false(odmr_list_has("", "a.test"));
    config_free(&cfg);
}

static void test_route(void **state)
{
    (void)state;
    struct config cfg;
    char err[256];
    /* a smarthost does not take held mail: it waits for ATRN */
    assert_int_equal(parse(&cfg, "odmr_domain cust.test ann\nsmarthost relay.test\n", err,
                           sizeof err), 0);
    struct route r;
    assert_int_equal(route_lookup(&cfg, "Cust.Test", &r, err, sizeof err), 0);
    assert_int_equal(r.kind, ROUTE_ODMR);
    assert_string_equal(r.key, "odmr:cust.test");
    assert_int_equal(r.tls, TLS_POLICY_NONE);
    assert_int_equal(route_lookup(&cfg, "sub.cust.test", &r, err, sizeof err), 0);
    assert_int_equal(r.kind, ROUTE_HOST); /* only the domain itself is held */
    assert_int_equal(route_lookup(&cfg, "example.test", &r, err, sizeof err), 0);
    assert_int_equal(r.kind, ROUTE_LOCAL);
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_atrn_domains),
        cmocka_unit_test(test_route),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
