/* test_smtp_reply.c - cmocka tests for src/smtp_reply.c: multi-line assembly and malformed
 * replies (RFC 5321 4.2), enhanced status codes (RFC 3463), EHLO capabilities, the
 * explanation tables and hints, base64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp_reply.h"

/* Feed lines; returns the result of the last feed. */
static enum smtp_feed feed_all(struct smtp_reply *r, const char *const *lines, size_t n)
{
    enum smtp_feed f = SMTP_FEED_BAD;
    for (size_t i = 0; i < n; i++) {
        f = smtp_reply_feed(r, lines[i], strlen(lines[i]), NULL);
        if (f != SMTP_FEED_MORE)
            break;
    }
    return f;
}

static void test_single_line(void **state)
{
    (void)state;
    struct smtp_reply r;
    smtp_reply_init(&r);
    assert_int_equal(smtp_reply_feed(&r, "250 2.1.5 OK\r", 13, NULL), SMTP_FEED_DONE);
    assert_int_equal(r.code, 250);
    assert_string_equal(r.esc, "2.1.5");
    assert_int_equal(r.esc_class, 2);
    assert_int_equal(r.esc_subject, 1);
    assert_int_equal(r.esc_detail, 5);
    assert_true(r.done);
    assert_int_equal(r.nlines, 1);
    assert_string_equal(r.lines[0], "250 2.1.5 OK"); /* the CR is dropped */
    assert_string_equal(smtp_reply_first_text(&r), "OK");
    assert_null(r.warning);
    /* a complete reply takes no more lines */
    assert_int_equal(smtp_reply_feed(&r, "250 x", 5, NULL), SMTP_FEED_BAD);
    smtp_reply_free(&r);
}

static void test_multi_line(void **state)
{
    (void)state;
    const char *lines[] = {"250-mx.example.test Hello", "250-SIZE 1000", "250-8BITMIME",
                           "250 PIPELINING"};
    struct smtp_reply r;
    smtp_reply_init(&r);
    assert_int_equal(smtp_reply_feed(&r, lines[0], strlen(lines[0]), NULL), SMTP_FEED_MORE);
    assert_int_equal(smtp_reply_feed(&r, lines[1], strlen(lines[1]), NULL), SMTP_FEED_MORE);
    assert_int_equal(smtp_reply_feed(&r, lines[2], strlen(lines[2]), NULL), SMTP_FEED_MORE);
    assert_false(r.done);
    assert_int_equal(smtp_reply_feed(&r, lines[3], strlen(lines[3]), NULL), SMTP_FEED_DONE);
    assert_int_equal(r.nlines, 4);
    assert_string_equal(smtp_reply_line_text(&r, 1), "SIZE 1000");
    assert_string_equal(smtp_reply_line_text(&r, 9), "");
    assert_string_equal(r.esc, ""); /* no enhanced code in an EHLO reply */
    smtp_reply_free(&r);
}

static void test_bare_code_and_empty_text(void **state)
{
    (void)state;
    struct smtp_reply r;
    smtp_reply_init(&r);
    /* "250" alone and "250-" with empty text are both legal (RFC 5321 4.2) */
    assert_int_equal(smtp_reply_feed(&r, "354-", 4, NULL), SMTP_FEED_MORE);
    assert_int_equal(smtp_reply_feed(&r, "354", 3, NULL), SMTP_FEED_DONE);
    assert_int_equal(r.code, 354);
    assert_string_equal(smtp_reply_first_text(&r), "");
    smtp_reply_free(&r);
}

static void test_malformed(void **state)
{
    (void)state;
    const char *bad[] = {"", "25", "abc hello", "250hello", "650 nope", "160 nope", "2a0 x",
                         "256x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct smtp_reply r;
        smtp_reply_init(&r);
        const char *why = NULL;
        assert_int_equal(smtp_reply_feed(&r, bad[i], strlen(bad[i]), &why), SMTP_FEED_BAD);
        assert_non_null(why);
        smtp_reply_free(&r);
    }
    /* NUL inside a line */
    struct smtp_reply r;
    smtp_reply_init(&r);
    assert_int_equal(smtp_reply_feed(&r, "250 a\0b", 7, NULL), SMTP_FEED_BAD);
    smtp_reply_free(&r);
}

static void test_mismatched_codes_warn(void **state)
{
    (void)state;
    const char *lines[] = {"250-first", "251 second"};
    struct smtp_reply r;
    smtp_reply_init(&r);
    assert_int_equal(feed_all(&r, lines, 2), SMTP_FEED_DONE);
    assert_int_equal(r.code, 250);
    assert_non_null(r.warning);
    char buf[1024];
    smtp_reply_explain(&r, SMTP_STAGE_OTHER, buf, sizeof buf);
    assert_non_null(strstr(buf, "different codes"));
    smtp_reply_free(&r);
}

static void test_too_many_lines(void **state)
{
    (void)state;
    struct smtp_reply r;
    smtp_reply_init(&r);
    enum smtp_feed f = SMTP_FEED_MORE;
    size_t i;
    for (i = 0; i < SMTP_REPLY_MAX_LINES + 5 && f == SMTP_FEED_MORE; i++)
        f = smtp_reply_feed(&r, "250-x", 5, NULL);
    assert_int_equal(f, SMTP_FEED_BAD);
    assert_int_equal(r.nlines, SMTP_REPLY_MAX_LINES);
    smtp_reply_free(&r);
}

static void test_esc_parse(void **state)
{
    (void)state;
    int c, s, d;
    assert_int_equal(smtp_esc_parse("5.1.1 No such user", &c, &s, &d), 5);
    assert_int_equal(c * 10000 + s * 100 + d, 50101);
    assert_int_equal(smtp_esc_parse("4.7.27", &c, &s, &d), 6);
    assert_int_equal(d, 27);
    assert_int_equal(smtp_esc_parse("2.0.0", &c, &s, &d), 5);
    assert_int_equal(smtp_esc_parse("5.123.456 x", &c, &s, &d), 9);
    /* not enhanced codes */
    assert_int_equal(smtp_esc_parse("3.1.1 x", &c, &s, &d), 0);  /* class 2/4/5 only */
    assert_int_equal(smtp_esc_parse("5.1 x", &c, &s, &d), 0);
    assert_int_equal(smtp_esc_parse("5.1.1234", &c, &s, &d), 0); /* 1-3 digits */
    assert_int_equal(smtp_esc_parse("5.01.1", &c, &s, &d), 0);   /* leading zero */
    assert_int_equal(smtp_esc_parse("5.1.1x", &c, &s, &d), 0);
    assert_int_equal(smtp_esc_parse("OK", &c, &s, &d), 0);
    assert_int_equal(smtp_esc_parse(NULL, &c, &s, &d), 0);
    /* 3xx replies carry no enhanced code even when the text looks like one */
    struct smtp_reply r;
    smtp_reply_init(&r);
    smtp_reply_feed(&r, "354 2.0.0 go ahead", 18, NULL);
    assert_string_equal(r.esc, "");
    smtp_reply_free(&r);
}

static void test_caps(void **state)
{
    (void)state;
    const char *lines[] = {"250-mx.example.test greets you", "250-SIZE 35882577",
                           "250-auth PLAIN LOGIN", "250-AUTH=CRAM-MD5", "250-8BITMIME",
                           "250--bogus", "250-STARTTLS", "250 CHUNKING"};
    struct smtp_reply r;
    smtp_reply_init(&r);
    assert_int_equal(feed_all(&r, lines, 8), SMTP_FEED_DONE);
    struct smtp_caps caps;
    assert_true(smtp_caps_parse(&r, &caps));
    assert_string_equal(caps.domain, "mx.example.test");
    assert_string_equal(caps.greeting, "greets you");
    assert_int_equal(caps.n, 6); /* "-bogus" is not an ehlo-keyword */
    assert_non_null(smtp_caps_find(&caps, "starttls"));
    assert_non_null(smtp_caps_find(&caps, "CHUNKING"));
    assert_null(smtp_caps_find(&caps, "PIPELINING"));
    assert_string_equal(smtp_caps_find(&caps, "AUTH")->keyword, "AUTH");
    assert_true(smtp_caps_has_auth(&caps, "plain"));
    assert_true(smtp_caps_has_auth(&caps, "LOGIN"));
    assert_true(smtp_caps_has_auth(&caps, "CRAM-MD5")); /* from the old AUTH= form */
    assert_false(smtp_caps_has_auth(&caps, "PLA"));
    assert_false(smtp_caps_has_auth(&caps, "SCRAM-SHA-256"));
    unsigned long long lim = 0;
    assert_true(smtp_caps_size(&caps, &lim));
    assert_true(lim == 35882577ULL);
    smtp_caps_free(&caps);
    smtp_reply_free(&r);

    /* a refusal is not a capability list */
    smtp_reply_init(&r);
    smtp_reply_feed(&r, "502 5.5.1 no EHLO", 17, NULL);
    assert_false(smtp_caps_parse(&r, &caps));
    smtp_reply_free(&r);

    /* a one-line 250: no extensions, SIZE absent */
    smtp_reply_init(&r);
    smtp_reply_feed(&r, "250 old.example.test", 20, NULL);
    assert_true(smtp_caps_parse(&r, &caps));
    assert_int_equal(caps.n, 0);
    assert_false(smtp_caps_size(&caps, &lim));
    smtp_caps_free(&caps);
    smtp_reply_free(&r);
}

static void test_tables(void **state)
{
    (void)state;
    assert_string_equal(smtp_class_text(250), "2xx done");
    assert_string_equal(smtp_class_text(354), "3xx more needed");
    assert_string_equal(smtp_class_text(451), "4xx temporary: retry later");
    assert_string_equal(smtp_class_text(550), "5xx permanent: a bounce");
    assert_string_equal(smtp_class_text(150), "");
    /* every RFC 5321 4.2.3 code has a text */
    const int codes[] = {211, 214, 220, 221, 250, 251, 252, 354, 421, 450, 451, 452, 455,
                         500, 501, 502, 503, 504, 550, 551, 552, 553, 554, 555};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        assert_non_null(smtp_code_text(codes[i]));
    assert_null(smtp_code_text(299));
    assert_string_equal(smtp_esc_class_text(5), "permanent failure");
    assert_null(smtp_esc_class_text(3));
    assert_string_equal(smtp_esc_subject_text(7), "security or policy");
    assert_null(smtp_esc_subject_text(8));
    /* every X.Y.Z of RFC 3463 section 3 */
    const int max_detail[] = {0, 8, 4, 5, 7, 5, 5, 7};
    for (int s = 0; s <= 7; s++)
        for (int d = 0; d <= max_detail[s]; d++)
            assert_non_null(smtp_esc_detail_text(s, d));
    assert_string_equal(smtp_esc_detail_text(1, 1), "bad destination mailbox address");
    /* registry additions the brief asks for */
    const int added[] = {8, 9, 10, 11, 14, 23, 24, 25, 26, 27};
    for (size_t i = 0; i < sizeof added / sizeof added[0]; i++)
        assert_non_null(smtp_esc_detail_text(7, added[i]));
    assert_string_equal(smtp_esc_detail_text(7, 23), "SPF validation failed");
    assert_string_equal(smtp_esc_detail_text(1, 10), "recipient address has null MX");
    assert_null(smtp_esc_detail_text(7, 99));
}

static void reply_of(struct smtp_reply *r, const char *line)
{
    smtp_reply_init(r);
    assert_int_equal(smtp_reply_feed(r, line, strlen(line), NULL), SMTP_FEED_DONE);
}

static void test_explain(void **state)
{
    (void)state;
    struct smtp_reply r;
    char buf[2048];
    reply_of(&r, "550 5.1.1 <bob@example.test>: Recipient address rejected");
    size_t n = smtp_reply_explain(&r, SMTP_STAGE_RCPT, buf, sizeof buf);
    assert_int_equal(n, strlen(buf));
    assert_non_null(strstr(buf, "5xx permanent: a bounce."));
    assert_non_null(strstr(buf, "550: mailbox unavailable"));
    assert_non_null(strstr(buf, "5.1.1: addressing: bad destination mailbox address."));
    assert_non_null(strstr(buf, "Check: the recipient address"));
    smtp_reply_free(&r);

    /* success: no hint */
    reply_of(&r, "250 2.0.0 Ok: queued as ABC");
    smtp_reply_explain(&r, SMTP_STAGE_DATA_END, buf, sizeof buf);
    assert_non_null(strstr(buf, "2xx done. 250: message accepted"));
    assert_non_null(strstr(buf, "2.0.0: other undefined status."));
    assert_null(strstr(buf, "Check:"));
    smtp_reply_free(&r);

    /* an unregistered code: only the class */
    reply_of(&r, "559 weird");
    smtp_reply_explain(&r, SMTP_STAGE_OTHER, buf, sizeof buf);
    assert_non_null(strstr(buf, "not a code defined"));
    smtp_reply_free(&r);

    /* enhanced class contradicting the reply code */
    reply_of(&r, "550 4.2.2 mailbox full");
    smtp_reply_explain(&r, SMTP_STAGE_RCPT, buf, sizeof buf);
    assert_non_null(strstr(buf, "contradicts"));
    smtp_reply_free(&r);

    /* truncation: snprintf semantics */
    reply_of(&r, "550 5.1.1 x");
    char small[16];
    size_t need = smtp_reply_explain(&r, SMTP_STAGE_RCPT, small, sizeof small);
    assert_true(need > sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
    smtp_reply_free(&r);
}

static void test_hints(void **state)
{
    (void)state;
    struct smtp_reply r;
    struct {
        const char *line;
        enum smtp_stage stage;
        const char *want; /* substring of the hint, NULL: no hint */
    } cases[] = {
        {"451 4.7.1 Greylisted, see http://example.test", SMTP_STAGE_RCPT, "greylisting"},
        {"554 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org",
         SMTP_STAGE_RCPT, "block list"},
        {"554 5.7.1 Relay access denied", SMTP_STAGE_RCPT, "relaying denied"},
        {"554 5.7.1 Message rejected as spam", SMTP_STAGE_DATA_END, "content was refused"},
        {"530 5.7.0 Must issue a STARTTLS command first", SMTP_STAGE_MAIL, "--starttls"},
        {"530 5.7.0 Authentication required", SMTP_STAGE_MAIL, "AUTH"},
        {"535 5.7.8 Authentication credentials invalid", SMTP_STAGE_AUTH, "password"},
        {"550 5.7.23 SPF check failed", SMTP_STAGE_RCPT, "SPF"},
        {"550 5.7.25 no PTR", SMTP_STAGE_MAIL, "PTR"},
        {"550 5.7.26 Unauthenticated email is not accepted", SMTP_STAGE_DATA_END, "DKIM"},
        {"550 5.7.27 sender domain has null MX", SMTP_STAGE_MAIL, "null MX"},
        {"556 5.1.10 null MX", SMTP_STAGE_RCPT, "null MX"},
        {"552 5.3.4 Message size exceeds fixed limit", SMTP_STAGE_DATA_END, "SIZE"},
        {"452 4.5.3 Too many recipients", SMTP_STAGE_RCPT, "in another one"},
        {"421 4.3.2 Service shutting down", SMTP_STAGE_GREETING, "shutting down"},
        {"421 Too busy", SMTP_STAGE_GREETING, "another MX"},
        {"421 4.4.2 timeout", SMTP_STAGE_MAIL, "closed the session"},
        {"554 No SMTP service here", SMTP_STAGE_GREETING, "refuses this client"},
        {"502 5.5.2 Error: command not recognized", SMTP_STAGE_EHLO, "HELO"},
        {"454 4.7.0 TLS not available", SMTP_STAGE_STARTTLS, "TLS"},
        {"503 5.5.1 Error: need RCPT command", SMTP_STAGE_DATA, "command order"},
        {"555 5.5.4 Unsupported option: BODY=8BITMIME", SMTP_STAGE_MAIL, "parameter"},
        {"250 2.1.5 Ok", SMTP_STAGE_RCPT, NULL},
        {"354 go ahead", SMTP_STAGE_DATA, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reply_of(&r, cases[i].line);
        const char *h = smtp_reply_hint(&r, cases[i].stage);
        if (!cases[i].want) {
            assert_null(h);
        } else {
            if (!h || !strstr(h, cases[i].want))
                fail_msg("%s: hint \"%s\" lacks \"%s\"", cases[i].line, h ? h : "(none)",
                         cases[i].want);
        }
        smtp_reply_free(&r);
    }
}

static void test_base64(void **state)
{
    (void)state;
    char out[64];
    unsigned char dec[64];
    struct {
        const char *in, *out;
    } v[] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
             {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
             {"foobar", "Zm9vYmFy"}}; /* RFC 4648 10 */
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        size_t n = smtp_b64_encode((const unsigned char *)v[i].in, strlen(v[i].in), out);
        assert_int_equal(n, strlen(v[i].out));
        assert_string_equal(out, v[i].out);
        long d = smtp_b64_decode(v[i].out, strlen(v[i].out), dec, sizeof dec);
        assert_int_equal(d, (long)strlen(v[i].in));
        assert_memory_equal(dec, v[i].in, (size_t)d);
    }
    /* PLAIN with NULs survives */
    const unsigned char plain[] = {0, 'u', 0, 'p'};
    smtp_b64_encode(plain, 4, out);
    assert_string_equal(out, "AHUAcA==");
    assert_int_equal(smtp_b64_decode("AHUAcA==", 8, dec, sizeof dec), 4);
    assert_memory_equal(dec, plain, 4);
    /* invalid */
    assert_int_equal(smtp_b64_decode("Zm9", 3, dec, sizeof dec), -1);
    assert_int_equal(smtp_b64_decode("Zm9v!A==", 8, dec, sizeof dec), -1);
    assert_int_equal(smtp_b64_decode("Z===", 4, dec, sizeof dec), -1);
    assert_int_equal(smtp_b64_decode("Zg==Zm9v", 8, dec, sizeof dec), -1);
    assert_int_equal(smtp_b64_decode("Zm9vYmFy", 8, dec, 6), -1); /* no room for NUL */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_line),
        cmocka_unit_test(test_multi_line),
        cmocka_unit_test(test_bare_code_and_empty_text),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_mismatched_codes_warn),
        cmocka_unit_test(test_too_many_lines),
        cmocka_unit_test(test_esc_parse),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_explain),
        cmocka_unit_test(test_hints),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
