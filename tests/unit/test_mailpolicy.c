/* test_mailpolicy.c - cmocka tests for src/mailpolicy.c: tag lists (RFC 6376 3.2), DMARC
 * (RFC 7489 6.3), DKIM key records (RFC 6376 3.6.1), MTA-STS record, policy and MX matching
 * (RFC 8461 3.1, 3.2, 4.1), TLS-RPT (RFC 8460 3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mailpolicy.h"

#define S(x) x, strlen(x)

static void test_taglist(void **state)
{
    (void)state;
    struct mp_taglist l;
    char err[200];
    assert_true(mp_taglist_parse(S(" v = DKIM1 ; k=rsa;p=abc def ; "), &l, err, sizeof err));
    assert_int_equal(l.n, 3);
    assert_string_equal(mp_tag_get(&l, "v"), "DKIM1");
    assert_string_equal(mp_tag_get(&l, "p"), "abc def");
    assert_null(mp_tag_get(&l, "K")); /* names are case-sensitive */
    mp_taglist_free(&l);

    assert_true(mp_taglist_parse(S(""), &l, err, sizeof err));
    assert_int_equal(l.n, 0);
    mp_taglist_free(&l);

    assert_false(mp_taglist_parse(S("a=1;;b=2"), &l, err, sizeof err));
    assert_non_null(strstr(err, "empty"));
    assert_false(mp_taglist_parse(S("a=1; b"), &l, err, sizeof err));
    assert_non_null(strstr(err, "tag=value"));
    assert_false(mp_taglist_parse(S("a=1; a=2"), &l, err, sizeof err));
    assert_non_null(strstr(err, "twice"));
    assert_false(mp_taglist_parse(S("1a=x"), &l, err, sizeof err));
    assert_non_null(strstr(err, "bad tag name"));
    assert_int_equal(l.n, 0);
}

static void test_dmarc(void **state)
{
    (void)state;
    struct dmarc_record d;
    char err[200];
    assert_true(dmarc_is_record(S("v=DMARC1; p=none")));
    assert_true(dmarc_is_record(S("v = DMARC1")));
    assert_false(dmarc_is_record(S("v=dmarc1; p=none"))); /* must match precisely */
    assert_false(dmarc_is_record(S("p=none; v=DMARC1")));
    assert_false(dmarc_is_record(S("v=DMARC10; p=none")));

    assert_true(dmarc_parse(S("v=DMARC1; p=reject; sp=quarantine; adkim=s; pct=50; "
                              "rua=mailto:a@example.org,mailto:b@example.org!10m; fo=1:d"),
                            &d, err, sizeof err));
    assert_int_equal(d.p, DMARC_REJECT);
    assert_int_equal(d.sp, DMARC_QUARANTINE);
    assert_int_equal(d.adkim, 's');
    assert_int_equal(d.aspf, 'r');
    assert_int_equal(d.pct, 50);
    assert_string_equal(d.rua, "mailto:a@example.org,mailto:b@example.org!10m");
    assert_string_equal(d.ruf, "");
    assert_string_equal(d.warnings, "");
    assert_string_equal(dmarc_policy_name(d.p), "reject");
    dmarc_record_free(&d);

    /* sp defaults to p; unknown tags are a warning, not an error */
    assert_true(dmarc_parse(S("v=DMARC1; p=quarantine; foo=bar"), &d, err, sizeof err));
    assert_int_equal(d.sp, DMARC_QUARANTINE);
    assert_non_null(strstr(d.warnings, "unknown tag 'foo'"));
    dmarc_record_free(&d);

    /* no p= but a rua: treated as none (RFC 7489 6.6.3) */
    assert_true(dmarc_parse(S("v=DMARC1; rua=mailto:r@example.org"), &d, err, sizeof err));
    assert_false(d.has_p);
    assert_int_equal(d.p, DMARC_NONE);
    assert_non_null(strstr(d.warnings, "p=none"));
    dmarc_record_free(&d);

    const char *bad[] = {"v=DMARC1", "v=DMARC1; p=block", "v=DMARC1; p=none; pct=101",
                         "v=DMARC1; p=none; pct=x", "v=DMARC1; p=none; adkim=x",
                         "v=DMARC1; p=none; rua=http://x.example.org",
                         "v=DMARC1; p=none; rua=mailto:nobody", "v=DMARC1; p=none; fo=2",
                         "v=DMARC1; p=none; rf=iodef", "v=DMARC1; p=none; ri=1h",
                         "v=DMARC1; p=none; p=reject", "v=DMARC1; p=none; rua=mailto:a@b!x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (dmarc_parse(bad[i], strlen(bad[i]), &d, err, sizeof err)) {
            dmarc_record_free(&d);
            fail_msg("\"%s\" accepted", bad[i]);
        }
        assert_null(d.rua);
    }
}

static void test_dkim(void **state)
{
    (void)state;
    struct dkim_key k;
    char err[200];
    /* a 32-octet ed25519 key (RFC 8463 appendix A) */
    assert_true(dkim_key_parse(S("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="),
                               &k, err, sizeof err));
    assert_string_equal(k.k, "ed25519");
    assert_int_equal(k.keylen, 32);
    assert_false(k.revoked);
    dkim_key_free(&k);

    /* defaults: rsa; whitespace inside p= is folded away; t=y */
    assert_true(dkim_key_parse(S("p=MIGf MA0G; t=y:s"), &k, err, sizeof err));
    assert_string_equal(k.k, "rsa");
    assert_int_equal(k.keylen, 6);
    assert_true(k.testing);
    assert_non_null(strstr(k.warnings, "testing"));
    dkim_key_free(&k);

    /* empty p=: revoked */
    assert_true(dkim_key_parse(S("v=DKIM1; p="), &k, err, sizeof err));
    assert_true(k.revoked);
    assert_null(k.key);
    dkim_key_free(&k);

    const char *bad[] = {"v=DKIM1; k=rsa", "k=rsa; v=DKIM1; p=AAAA", "v=DKIM2; p=AAAA",
                         "v=DKIM1; k=dsa; p=AAAA", "v=DKIM1; p=not!base64",
                         "v=DKIM1; s=tlsrpt; p=AAAA"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (dkim_key_parse(bad[i], strlen(bad[i]), &k, err, sizeof err)) {
            dkim_key_free(&k);
            fail_msg("\"%s\" accepted", bad[i]);
        }
        assert_null(k.key);
    }
}

static void test_mtasts_txt(void **state)
{
    (void)state;
    struct mtasts_txt m;
    char err[200];
    assert_true(mtasts_txt_is_record(S("v=STSv1; id=1")));
    assert_false(mtasts_txt_is_record(S("v=STSv10; id=1")));
    assert_false(mtasts_txt_is_record(S("id=1; v=STSv1;")));
    assert_true(mtasts_txt_parse(S("v=STSv1; id=20160831085700Z;"), &m, err, sizeof err));
    assert_string_equal(m.id, "20160831085700Z");
    assert_true(mtasts_txt_parse(S("v=STSv1;id=abc; ext=1"), &m, err, sizeof err));
    assert_false(mtasts_txt_parse(S("v=STSv1;"), &m, err, sizeof err));
    assert_non_null(strstr(err, "no id="));
    assert_false(mtasts_txt_parse(S("v=STSv1; id=not-alnum!;"), &m, err, sizeof err));
    assert_false(mtasts_txt_parse(S("v=STSv1; id=123456789012345678901234567890123"), &m, err,
                                  sizeof err));
}

static void test_mtasts_policy(void **state)
{
    (void)state;
    struct mtasts_policy p;
    char err[200];
    const char *pol = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
                      "mx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n";
    assert_true(mtasts_policy_parse(pol, strlen(pol), &p, err, sizeof err));
    assert_int_equal(p.mode, MTASTS_ENFORCE);
    assert_int_equal(p.max_age, 604800);
    assert_int_equal(p.nmx, 3);
    assert_string_equal(p.mx[1], "*.example.net");
    assert_string_equal(mtasts_mode_name(p.mode), "enforce");
    mtasts_policy_free(&p);

    /* LF line ends, extensions ignored, mode none needs no mx */
    const char *none = "version: STSv1\nmode: none\nmax_age: 0\nfoo: bar\n";
    assert_true(mtasts_policy_parse(none, strlen(none), &p, err, sizeof err));
    assert_int_equal(p.mode, MTASTS_NONE);
    mtasts_policy_free(&p);

    const char *bad[] = {
        "mode: enforce\nmx: a.example\nmax_age: 1\n",                 /* no version */
        "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", /* wrong version */
        "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n",  /* bad mode */
        "version: STSv1\nmode: enforce\nmax_age: 1\n",                /* no mx */
        "version: STSv1\nmode: testing\nmx: a.example\n",             /* no max_age */
        "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n",
        "version: STSv1\nmode: enforce\nmx a.example\nmax_age: 1\n",  /* no colon */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (mtasts_policy_parse(bad[i], strlen(bad[i]), &p, err, sizeof err)) {
            mtasts_policy_free(&p);
            fail_msg("policy %zu accepted", i);
        }
        assert_int_equal(p.nmx, 0);
    }
}

static void test_mtasts_match(void **state)
{
    (void)state;
    assert_true(mtasts_mx_match("mail.example.com", "mail.example.com"));
    assert_true(mtasts_mx_match("mail.example.com", "MAIL.Example.com."));
    assert_true(mtasts_mx_match("*.example.com", "mx1.example.com"));
    assert_false(mtasts_mx_match("*.example.com", "a.b.example.com")); /* one label only */
    assert_false(mtasts_mx_match("*.example.com", "example.com"));
    assert_false(mtasts_mx_match("*.example.com", "mx1.example.org"));
    assert_false(mtasts_mx_match("mail.example.com", "mail2.example.com"));
    assert_false(mtasts_mx_match("*.example.com", ".example.com"));
}

static void test_tlsrpt(void **state)
{
    (void)state;
    struct tlsrpt_record t;
    char err[200];
    assert_true(tlsrpt_is_record(S("v=TLSRPTv1; rua=mailto:a@b.example")));
    assert_false(tlsrpt_is_record(S("v=TLSRPTv2; rua=mailto:a@b.example")));
    assert_true(tlsrpt_parse(S("v=TLSRPTv1; rua=mailto:tls@example.com,https://r.example.com/x"),
                             &t, err, sizeof err));
    assert_string_equal(t.rua, "mailto:tls@example.com,https://r.example.com/x");
    tlsrpt_record_free(&t);
    assert_false(tlsrpt_parse(S("v=TLSRPTv1;"), &t, err, sizeof err));
    assert_non_null(strstr(err, "rua"));
    assert_false(tlsrpt_parse(S("v=TLSRPTv1; rua=ftp://x.example"), &t, err, sizeof err));
    assert_null(t.rua);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_taglist),
        cmocka_unit_test(test_dmarc),
        cmocka_unit_test(test_dkim),
        cmocka_unit_test(test_mtasts_txt),
        cmocka_unit_test(test_mtasts_policy),
        cmocka_unit_test(test_mtasts_match),
        cmocka_unit_test(test_tlsrpt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
