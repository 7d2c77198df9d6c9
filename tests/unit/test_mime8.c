/* test_mime8.c - the SMTP client's content decisions (RFC 6152, RFC 6531 3.4, RFC 3030) and
 * the DATA encoder (RFC 5321 4.5.2 dot-stuffing, CRLF). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mime8.h"

static struct mime8_scan scan_of(const char *s)
{
    struct mime8_scan sc;
    mime8_scan_init(&sc);
    mime8_scan_feed(&sc, s, strlen(s));
    return sc;
}

static void test_scan(void **state)
{
    (void)state;
    struct mime8_scan s = scan_of("Subject: hi\r\n\r\nplain\r\n");
    assert_false(s.header_8bit || s.body_8bit || s.binary);
    s = scan_of("Subject: h\xc3\xa9\r\n\r\nplain\r\n");
    assert_true(s.header_8bit);
    assert_false(s.body_8bit);
    s = scan_of("Subject: hi\r\n\r\ncaf\xc3\xa9\r\n");
    assert_false(s.header_8bit);
    assert_true(s.body_8bit);
    assert_false(s.binary);
    assert_true(scan_of("A: b\r\n\r\nx\ny\r\n").binary);     /* bare LF */
    assert_true(scan_of("A: b\r\n\r\nx\ry\r\n").binary);     /* bare CR */
    struct mime8_scan z;
    mime8_scan_init(&z);
    mime8_scan_feed(&z, "A: b\r\n\r\nx\0y\r\n", 12);
    assert_true(z.binary);                                   /* NUL */
    char longline[1200];
    memset(longline, 'a', sizeof longline);
    strcpy(longline + 999, "\r\n");
    struct mime8_scan l = scan_of(longline);
    assert_true(l.binary);
    longline[998] = '\r';
    longline[999] = '\n';
    longline[1000] = '\0';
    l = scan_of(longline);
    assert_false(l.binary);                                  /* exactly 998 is fine */
    /* fed in pieces, CRLF split across calls */
    struct mime8_scan p;
    mime8_scan_init(&p);
    mime8_scan_feed(&p, "A: b\r", 5);
    mime8_scan_feed(&p, "\n\r", 2);
    mime8_scan_feed(&p, "\n\xff\r\n", 4);
    assert_false(p.binary);
    assert_false(p.header_8bit);
    assert_true(p.body_8bit);
}

static void test_decide(void **state)
{
    (void)state;
    struct mime8_peer full = {true, true, true, true}, bare = {false, false, false, false};
    struct mime8_peer eight = {.eightbitmime = true};
    struct mime8_params out;
    struct mime8_scan ascii = scan_of("A: b\r\n\r\nc\r\n");
    struct mime8_scan body8 = scan_of("A: b\r\n\r\n\xc3\xa9\r\n");
    struct mime8_scan head8 = scan_of("A: \xc3\xa9\r\n\r\nc\r\n");
    struct mime8_scan bin = scan_of("A: b\r\n\r\nc\nd\r\n");

    /* everything offered: sent as declared, no scan needed */
    assert_false(mime8_need_scan(BODY_8BITMIME, true, &full));
    assert_int_equal(mime8_decide(BODY_8BITMIME, true, true, &full, NULL, &out), MIME8_SEND);
    assert_int_equal(out.body, BODY_8BITMIME);
    assert_true(out.smtputf8);

    /* RFC 6152: 8-bit body, no 8BITMIME: refused with 5.6.3 */
    assert_true(mime8_need_scan(BODY_8BITMIME, false, &bare));
    assert_int_equal(mime8_decide(BODY_8BITMIME, false, false, &bare, &body8, &out),
                     MIME8_FAIL_8BIT);
    assert_non_null(strstr(mime8_verdict_text(MIME8_FAIL_8BIT), "5.6.3"));
    /* declared 8BITMIME but 7-bit in fact: sent without BODY= */
    assert_int_equal(mime8_decide(BODY_8BITMIME, false, false, &bare, &ascii, &out),
                     MIME8_SEND_PLAIN);
    assert_int_equal(out.body, BODY_UNSPEC);
    /* not scanned: assume 8-bit */
    assert_int_equal(mime8_decide(BODY_8BITMIME, false, false, &bare, NULL, &out),
                     MIME8_FAIL_8BIT);

    /* RFC 6531 3.4: SMTPUTF8 needed (address or header), peer lacks it: 5.6.7 */
    assert_int_equal(mime8_decide(BODY_8BITMIME, true, true, &eight, &ascii, &out),
                     MIME8_FAIL_UTF8);
    assert_int_equal(mime8_decide(BODY_8BITMIME, true, false, &eight, &head8, &out),
                     MIME8_FAIL_UTF8);
    assert_non_null(strstr(mime8_verdict_text(MIME8_FAIL_UTF8), "5.6.7"));
    /* not needed after all: dropped; the 8-bit body still goes as 8BITMIME */
    assert_int_equal(mime8_decide(BODY_UNSPEC, true, false, &eight, &body8, &out),
                     MIME8_SEND_PLAIN);
    assert_false(out.smtputf8);
    assert_int_equal(out.body, BODY_8BITMIME);
    assert_int_equal(mime8_decide(BODY_UNSPEC, true, false, &bare, &body8, &out),
                     MIME8_FAIL_8BIT);

    /* RFC 3030: BINARYMIME needs both; text content falls back to 8BITMIME */
    assert_int_equal(mime8_decide(BODY_BINARYMIME, false, false, &full, NULL, &out),
                     MIME8_SEND);
    assert_int_equal(mime8_decide(BODY_BINARYMIME, false, false, &eight, &bin, &out),
                     MIME8_FAIL_BINARY);
    assert_int_equal(mime8_decide(BODY_BINARYMIME, false, false, &eight, &body8, &out),
                     MIME8_SEND_PLAIN);
    assert_int_equal(out.body, BODY_8BITMIME);

    /* BODY=7BIT belongs to the 8BITMIME extension */
    assert_int_equal(mime8_decide(BODY_7BIT, false, false, &bare, NULL, &out), MIME8_SEND_PLAIN);
    assert_int_equal(out.body, BODY_UNSPEC);
    assert_int_equal(mime8_decide(BODY_7BIT, false, false, &eight, NULL, &out), MIME8_SEND);
    assert_int_equal(mime8_decide(BODY_UNSPEC, false, false, &bare, NULL, &out), MIME8_SEND);
}

static char *encode_all(const char *in, size_t len, size_t piece)
{
    struct dotstuff d;
    dotstuff_init(&d);
    char *out = malloc(2 * len + 16);
    size_t n = 0;
    for (size_t i = 0; i < len; i += piece) {
        size_t k = len - i < piece ? len - i : piece;
        n += dotstuff_encode(&d, in + i, k, out + n);
    }
    n += dotstuff_finish(&d, out + n);
    out[n] = '\0';
    return out;
}

static void test_dotstuff(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"a\r\n", "a\r\n.\r\n"},
        {"a", "a\r\n.\r\n"},
        {"", ".\r\n"},
        {".\r\n", "..\r\n.\r\n"},
        {"a\r\n.b\r\n..\r\n", "a\r\n..b\r\n...\r\n.\r\n"},
        {"x.y\r\n", "x.y\r\n.\r\n"},
        {"a\nb\n", "a\r\nb\r\n.\r\n"},          /* bare LF */
        {"a\rb\r", "a\r\nb\r\n.\r\n"},          /* bare CR */
        {"a\r\n\r\n.\r\n", "a\r\n\r\n..\r\n.\r\n"},
        {"\r.x", "\r\n..x\r\n.\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t piece = 1; piece <= 4; piece++) {
            char *got = encode_all(cases[i].in, strlen(cases[i].in), piece);
            assert_string_equal(got, cases[i].out);
            free(got);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_dotstuff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
