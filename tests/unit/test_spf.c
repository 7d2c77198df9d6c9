/* test_spf.c - cmocka tests for src/spf.c: record selection (RFC 7208 4.5), term syntax
 * (4.6, 5, 6, 7.1, 12), the DNS-lookup count (4.6.4) and the warnings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "spf.h"

static bool parse(const char *txt, struct spf_record *rec, char *err, size_t errlen)
{
    return spf_parse(txt, strlen(txt), rec, err, errlen);
}

static void test_is_record(void **state)
{
    (void)state;
    assert_true(spf_is_record("v=spf1", 6));
    assert_true(spf_is_record("v=spf1 -all", 11));
    assert_true(spf_is_record("V=SPF1 -all", 11));
    assert_false(spf_is_record("v=spf10 -all", 12));
    assert_false(spf_is_record("v=spf1-all", 10));
    assert_false(spf_is_record("spf2.0/pra -all", 15));
    assert_false(spf_is_record("v=DMARC1; p=none", 16));
    assert_false(spf_is_record("", 0));
}

static void test_valid_records(void **state)
{
    (void)state;
    const char *ok[] = {
        "v=spf1",
        "v=spf1 -all",
        "v=spf1  ip4:192.0.2.0/24   ip6:2001:db8::/32 ~all ",
        "v=spf1 a mx a:mail.example.org mx:example.org/24 a/24//64 mx//128 -all",
        "v=spf1 include:_spf.example.org ?include:example.net +all",
        "v=spf1 exists:%{i}._spf.%{d} -all",
        "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d2} -all",
        "v=spf1 redirect=_spf.example.org",
        "v=spf1 -all exp=explain._spf.%{d}",
        "v=spf1 ptr ptr:example.org -all",
        "v=spf1 IP4:192.0.2.1 INCLUDE:example.org -ALL",
        "v=spf1 foo=bar-%%-%_-%- -all",
        "v=spf1 a:example.org. -all",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct spf_record rec;
        char err[200] = "";
        if (!parse(ok[i], &rec, err, sizeof err))
            fail_msg("\"%s\" rejected: %s", ok[i], err);
        spf_record_free(&rec);
    }
}

static void test_invalid_records(void **state)
{
    (void)state;
    struct {
        const char *txt, *why;
    } bad[] = {
        {"v=spf1 ip:192.0.2.1 -all", "unknown mechanism 'ip'"},
        {"v=spf1 ip4:300.1.2.3 -all", "not an IPv4 address"},
        {"v=spf1 ip4:192.0.2.0/33", "prefix length"},
        {"v=spf1 ip4:192.0.2.0/024", "prefix length"},
        {"v=spf1 ip6:2001:db8::/129", "prefix length"},
        {"v=spf1 ip6:192.0.2.1", "not an IPv6 address"},
        {"v=spf1 ip4", "needs ':network'"},
        {"v=spf1 include", "needs ':domain'"},
        {"v=spf1 include:localhost", "fully qualified"},
        {"v=spf1 include:example.123", "top-level label"},
        {"v=spf1 a:exa mple.org", "fully qualified"},
        {"v=spf1 all:example.org", "takes no argument"},
        {"v=spf1 a/33", "prefix length"},
        {"v=spf1 mxfoo", "unknown mechanism"},
        {"v=spf1 exists:%{x}.example.org", "macro letter"},
        {"v=spf1 exists:%{i.example.org", "macro"},
        {"v=spf1 exists:%zexample.org", "'%'"},
        {"v=spf1 redirect=a.example.org redirect=b.example.org", "more than once"},
        {"v=spf1 exp=a.example.org exp=b.example.org -all", "more than once"},
        {"v=spf1 mx\t-all", "control character"},
        {"v=spf2 -all", "v=spf1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct spf_record rec;
        char err[200] = "";
        if (parse(bad[i].txt, &rec, err, sizeof err)) {
            spf_record_free(&rec);
            fail_msg("\"%s\" accepted", bad[i].txt);
        }
        if (!strstr(err, bad[i].why))
            fail_msg("\"%s\": error \"%s\" lacks \"%s\"", bad[i].txt, err, bad[i].why);
        assert_int_equal(rec.n, 0); /* nothing left to free */
    }
}

static void test_terms(void **state)
{
    (void)state;
    struct spf_record rec;
    char err[200];
    assert_true(parse("v=spf1 ~a:mail.example.org/24//64 ip6:2001:db8::/48 -all", &rec, err,
                      sizeof err));
    assert_int_equal(rec.n, 3);
    assert_int_equal(rec.terms[0].kind, SPF_A);
    assert_int_equal(rec.terms[0].qualifier, '~');
    assert_string_equal(rec.terms[0].value, "mail.example.org");
    assert_int_equal(rec.terms[0].cidr4, 24);
    assert_int_equal(rec.terms[0].cidr6, 64);
    assert_int_equal(rec.terms[1].kind, SPF_IP6);
    assert_int_equal(rec.terms[1].cidr6, 48);
    assert_string_equal(rec.terms[1].value, "2001:db8::");
    assert_int_equal(rec.terms[2].qualifier, '-');
    assert_ptr_equal(rec.all, &rec.terms[2]);
    spf_record_free(&rec);

    assert_true(parse("v=spf1 exists:%{i}.x.example.org redirect=_spf.example.org", &rec, err,
                      sizeof err));
    assert_true(rec.terms[0].macro);
    assert_false(rec.terms[1].macro);
    assert_non_null(rec.redirect);
    assert_string_equal(rec.redirect->value, "_spf.example.org");
    assert_string_equal(spf_kind_name(rec.terms[1].kind), "redirect");
    spf_record_free(&rec);
}

static void test_lookup_count(void **state)
{
    (void)state;
    struct {
        const char *txt;
        unsigned lookups;
    } v[] = {
        {"v=spf1 ip4:192.0.2.1 ip6:::1 -all", 0},
        {"v=spf1 a mx -all", 2},
        {"v=spf1 include:a.example.org include:b.example.org ptr exists:%{i}.e.example.org "
         "-all", 4},
        {"v=spf1 mx redirect=_spf.example.org", 2},
        /* redirect is ignored (and so not counted) when "all" is present (RFC 7208 6.1) */
        {"v=spf1 mx -all redirect=_spf.example.org", 1},
        /* exp does not count: it is only fetched after a fail */
        {"v=spf1 a -all exp=e.example.org", 1},
        {"v=spf1 a a a a a a a a a a a -all", 11},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        struct spf_record rec;
        char err[200];
        assert_true(parse(v[i].txt, &rec, err, sizeof err));
        if (rec.lookups != v[i].lookups)
            fail_msg("\"%s\": %u lookups, want %u", v[i].txt, rec.lookups, v[i].lookups);
        spf_record_free(&rec);
    }
    assert_true(spf_kind_counts(SPF_INCLUDE));
    assert_true(spf_kind_counts(SPF_REDIRECT));
    assert_false(spf_kind_counts(SPF_IP4));
    assert_false(spf_kind_counts(SPF_ALL));
    assert_false(spf_kind_counts(SPF_EXP));
}

static void test_warnings(void **state)
{
    (void)state;
    struct {
        const char *txt, *warn; /* warn NULL: no warnings */
    } v[] = {
        {"v=spf1 mx -all", NULL},
        {"v=spf1 mx ~all", NULL},
        {"v=spf1 redirect=_spf.example.org", NULL},
        {"v=spf1 +all", "every host"},
        {"v=spf1 mx ?all", "neutral"},
        {"v=spf1 mx", "no 'all'"},
        {"v=spf1 ptr -all", "SHOULD NOT"},
        {"v=spf1 -all mx", "never evaluated"},
        {"v=spf1 mx -all redirect=x.example.org", "ignored"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        struct spf_record rec;
        char err[200];
        assert_true(parse(v[i].txt, &rec, err, sizeof err));
        if (!v[i].warn && rec.warnings[0])
            fail_msg("\"%s\": unexpected warning \"%s\"", v[i].txt, rec.warnings);
        if (v[i].warn && !strstr(rec.warnings, v[i].warn))
            fail_msg("\"%s\": warnings \"%s\" lack \"%s\"", v[i].txt, rec.warnings, v[i].warn);
        spf_record_free(&rec);
    }
    /* a long record */
    char big[600] = "v=spf1";
    while (strlen(big) < 480)
        strcat(big, " ip4:192.0.2.1");
    strcat(big, " -all");
    struct spf_record rec;
    char err[200];
    assert_true(parse(big, &rec, err, sizeof err));
    assert_non_null(strstr(rec.warnings, "450 octets"));
    spf_record_free(&rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_record),
        cmocka_unit_test(test_valid_records),
        cmocka_unit_test(test_invalid_records),
        cmocka_unit_test(test_terms),
        cmocka_unit_test(test_lookup_count),
        cmocka_unit_test(test_warnings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
