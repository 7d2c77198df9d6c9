/* test_mime8.c - the SMTP client's content decisions (RFC 6152, RFC 6531 3.4, RFC 3030), the
 * 8-bit to quoted-printable conversion (RFC 6152 3, RFC 2045 6.7, RFC 2046 5.1) checked by
 * decoding the result back, and the DATA encoder (RFC 5321 4.5.2 dot-stuffing, CRLF). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

/* ---- conversion --------------------------------------------------------------------------- */

/* An independent RFC 2045 6.7 decoder: "=XX" (either case), "=" CRLF soft break. */
static size_t qp_dec(const char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] != '=') {
            out[o++] = in[i];
            continue;
        }
        if (i + 2 < n && in[i + 1] == '\r' && in[i + 2] == '\n') {
            i += 2;
            continue;
        }
        assert_true(i + 2 < n); /* a complete =XX */
        char h[3] = {in[i + 1], in[i + 2], 0};
        out[o++] = (char)strtol(h, NULL, 16);
        i += 2;
    }
    return o;
}

struct conv {
    enum mime8_conv r;
    char *out; /* NUL-terminated copy */
    size_t len;
};

static struct conv convert(const char *in)
{
    struct conv c = {0};
    char *o = NULL;
    size_t n = 0;
    c.r = mime8_convert_7bit(in, strlen(in), &o, &n);
    if (c.r == MIME8_CONV_OK) {
        c.out = malloc(n + 1);
        assert_non_null(c.out);
        memcpy(c.out, o, n);
        c.out[n] = '\0';
        c.len = n;
        free(o);
        /* every converted message: 7-bit, lines within 998 octets, QP lines within 76 */
        for (size_t i = 0; i < n; i++)
            assert_true((unsigned char)c.out[i] < 0x80);
        struct mime8_scan sc = scan_of(c.out);
        assert_false(sc.body_8bit || sc.header_8bit);
        /* converting again changes nothing */
        char *o2 = NULL;
        size_t n2 = 0;
        assert_int_equal(mime8_convert_7bit(c.out, n, &o2, &n2), MIME8_CONV_UNCHANGED);
    } else {
        assert_null(o);
    }
    return c;
}

/* Decode the QP body that follows the header text hdr in msg, up to "\r\n--" stop (or the
 * end when stop is NULL); compare it to want. Also checks the line lengths. */
static void check_qp_part(const char *msg, const char *hdr, const char *stop, const char *want)
{
    const char *b = strstr(msg, hdr);
    assert_non_null(b);
    b += strlen(hdr);
    const char *e = stop ? strstr(b, stop) : b + strlen(b);
    assert_non_null(e);
    size_t n = (size_t)(e - b);
    for (const char *l = b; l < e;) { /* RFC 2045 6.7 (5) */
        const char *nl = strstr(l, "\r\n");
        size_t ll = nl && nl < e ? (size_t)(nl - l) : (size_t)(e - l);
        assert_true(ll <= 76);
        if (ll > 0)
            assert_true(l[ll - 1] != ' ' && l[ll - 1] != '\t'); /* no trailing white space */
        l += ll + 2;
    }
    char *dec = malloc(n + 1);
    assert_non_null(dec);
    size_t dn = qp_dec(b, n, dec);
    assert_int_equal(dn, strlen(want));
    assert_memory_equal(dec, want, dn);
    free(dec);
}

static void test_convert_single(void **state)
{
    (void)state;
    const char *body = "caf\xc3\xa9 = 1 + 1\r\n"
                       "trailing space \r\n"
                       "trailing tab\t\r\n"
                       ".dot line\r\n"
                       "\r\n"
                       "last\xff";
    char msg[512];
    snprintf(msg, sizeof msg, "From: a@b\r\nSubject: hi\r\nContent-Type: text/plain; "
                              "charset=utf-8\r\n\r\n%s", body);
    struct conv c = convert(msg);
    assert_int_equal(c.r, MIME8_CONV_OK);
    /* the header: kept, plus MIME-Version and the CTE */
    assert_non_null(strstr(c.out, "From: a@b\r\nSubject: hi\r\nContent-Type: text/plain; "
                                  "charset=utf-8\r\nMIME-Version: 1.0\r\n"
                                  "Content-Transfer-Encoding: quoted-printable\r\n\r\n"));
    assert_non_null(strstr(c.out, "caf=C3=A9 =3D 1 + 1\r\ntrailing space=20\r\n"
                                  "trailing tab=09\r\n.dot line\r\n\r\nlast=FF"));
    check_qp_part(c.out, "quoted-printable\r\n\r\n", NULL, body);
    free(c.out);

    /* an existing CTE (8bit, folded) is replaced where it was; MIME-Version not repeated */
    c = convert("MIME-Version: 1.0\r\nContent-Transfer-Encoding:\r\n 8bit\r\nX: y\r\n\r\n\xe9t\xe9\r\n");
    assert_int_equal(c.r, MIME8_CONV_OK);
    assert_string_equal(c.out, "MIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable"
                               "\r\nX: y\r\n\r\n=E9t=E9\r\n");
    free(c.out);
    /* no Content-Type, no MIME headers at all */
    c = convert("Subject: x\r\n\r\n\xe9\r\n");
    assert_int_equal(c.r, MIME8_CONV_OK);
    assert_string_equal(c.out, "Subject: x\r\nMIME-Version: 1.0\r\n"
                               "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9\r\n");
    free(c.out);
    /* mislabelled 7bit with 8-bit octets: converted as well */
    c = convert("Content-Transfer-Encoding: 7bit\r\n\r\n\xe9\r\n");
    assert_int_equal(c.r, MIME8_CONV_OK);
    assert_string_equal(c.out, "Content-Transfer-Encoding: quoted-printable\r\n"
                               "MIME-Version: 1.0\r\n\r\n=E9\r\n");
    free(c.out);
}

static void test_convert_unchanged_and_refused(void **state)
{
    (void)state;
    char *o = NULL;
    size_t n = 0;
    const char *ascii = "Subject: x\r\nContent-Transfer-Encoding: 8bit\r\n\r\nplain = text \r\n";
    assert_int_equal(mime8_convert_7bit(ascii, strlen(ascii), &o, &n), MIME8_CONV_UNCHANGED);
    assert_null(o);
    /* header fields with 8-bit octets: would need RFC 2047, refused */
    assert_int_equal(convert("Subject: caf\xc3\xa9\r\n\r\nbody\r\n").r, MIME8_CONV_HEADER_8BIT);
    /* binary */
    assert_int_equal(convert("Content-Transfer-Encoding: binary\r\n\r\n\xe9\r\n").r,
                     MIME8_CONV_BINARY);
    /* raw 8-bit in a part labelled base64 or QP cannot be re-encoded */
    assert_int_equal(convert("Content-Transfer-Encoding: base64\r\n\r\n\xe9\r\n").r,
                     MIME8_CONV_MALFORMED);
    assert_int_equal(convert("Content-Transfer-Encoding: quoted-printable\r\n\r\n\xe9\r\n").r,
                     MIME8_CONV_MALFORMED);
    assert_int_equal(convert("Content-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\n\xe9\r\n").r,
                     MIME8_CONV_MESSAGE);
    /* only a header, no empty line */
    assert_int_equal(convert("Subject: x\r\nX: \xe9").r, MIME8_CONV_HEADER_8BIT);
    for (int c = MIME8_CONV_OK; c <= MIME8_CONV_NOMEM; c++)
        assert_true(strlen(mime8_conv_text((enum mime8_conv)c)) > 5);
}

static void test_convert_soft_breaks(void **state)
{
    (void)state;
    /* a long line of 8-bit octets, '=' and spaces; an exactly 76-character line; a line
     * whose last token would cross column 76 */
    char body[4000], msg[4100];
    size_t n = 0;
    for (int i = 0; i < 300; i++)
        body[n++] = (char)(i % 3 == 0 ? 0xe9 : i % 3 == 1 ? '=' : ' ');
    body[n++] = '\r';
    body[n++] = '\n';
    for (int i = 0; i < 76; i++)
        body[n++] = 'x';
    body[n++] = '\r';
    body[n++] = '\n';
    for (int i = 0; i < 75; i++)
        body[n++] = 'y';
    body[n++] = (char)0xff;
    body[n++] = '\r';
    body[n++] = '\n';
    for (int i = 0; i < 2000; i++)
        body[n++] = (char)(i % 7 == 0 ? ' ' : 'a' + i % 26);
    body[n++] = ' ';
    body[n] = '\0';
    snprintf(msg, sizeof msg, "Subject: s\r\n\r\n%s", body);
    struct conv c = convert(msg);
    assert_int_equal(c.r, MIME8_CONV_OK);
    /* exactly 76 literal characters: one line, no soft break */
    char x76[80];
    memset(x76, 'x', 76);
    memcpy(x76 + 76, "\r\n", 3);
    assert_non_null(strstr(c.out, x76));
    /* 75 characters + =FF does not fit: soft break before =FF */
    char y75[90];
    memset(y75, 'y', 75);
    memcpy(y75 + 75, "=\r\n=FF\r\n", 9);
    assert_non_null(strstr(c.out, y75));
    check_qp_part(c.out, "quoted-printable\r\n\r\n", NULL, body);
    free(c.out);
    /* bare CR and LF inside an 8-bit body survive as =0D / =0A */
    c = convert("Subject: s\r\n\r\na\rb\nc\xe9\r\n");
    assert_int_equal(c.r, MIME8_CONV_OK);
    assert_non_null(strstr(c.out, "\r\n\r\na=0Db=0Ac=E9\r\n"));
    check_qp_part(c.out, "quoted-printable\r\n\r\n", NULL, "a\rb\nc\xe9\r\n");
    free(c.out);
}

static void test_convert_multipart(void **state)
{
    (void)state;
    const char *msg =
        "From: a@b\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed;\r\n boundary=\"outer b\"\r\n\r\n"
        "preamble\r\n"
        "--outer b\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "first \xc3\xa9 part \r\n"
        "--outer b\r\n"
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        "AAECAw==\r\n"
        "--outer b\r\n"
        "Content-Type: multipart/alternative; boundary=inner\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "--inner\r\n"
        "Content-Type: text/plain; charset=latin1\r\n\r\n"
        "inner \xe9\r\n"
        "--inner\r\n"
        "Content-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        "<p>=C3=A9</p>\r\n"
        "--inner--\r\n"
        "--outer b\r\n"
        "Content-Type: text/plain\r\n\r\n"
        "seven bit\r\n"
        "--outer b--   \r\n"
        "epilogue\r\n";
    struct conv c = convert(msg);
    assert_int_equal(c.r, MIME8_CONV_OK);
    /* the 8-bit leaves: QP, decoded equal */
    check_qp_part(c.out, "charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
                  "\r\n--outer b\r\n", "first \xc3\xa9 part ");
    check_qp_part(c.out, "charset=latin1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
                  "\r\n--inner\r\n", "inner \xe9");
    /* base64, QP and 7-bit parts untouched; the nested multipart says 7bit now */
    assert_non_null(strstr(c.out, "Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--outer b\r\n"));
    assert_non_null(strstr(c.out, "quoted-printable\r\n\r\n<p>=C3=A9</p>\r\n--inner--\r\n"));
    assert_non_null(strstr(c.out, "boundary=inner\r\nContent-Transfer-Encoding: 7bit\r\n\r\n--inner\r\n"));
    assert_non_null(strstr(c.out, "text/plain\r\n\r\nseven bit\r\n--outer b--   \r\nepilogue\r\n"));
    assert_non_null(strstr(c.out, "\r\n\r\npreamble\r\n--outer b\r\n"));
    /* the top header is unchanged (it had MIME-Version, no CTE) */
    assert_memory_equal(c.out, msg, strstr(msg, "preamble") - msg);
    free(c.out);

    /* message/rfc822 with 8-bit inside: refused; without 8-bit it is left alone */
    const char *rfc822 = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                         "--b\r\n\r\nt\xe9xt\r\n"
                         "--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\n\xe9\r\n"
                         "--b--\r\n";
    assert_int_equal(convert(rfc822).r, MIME8_CONV_MESSAGE);
    c = convert("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                "--b\r\n\r\nt\xe9xt\r\n"
                "--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\nascii\r\n"
                "--b--\r\n");
    assert_int_equal(c.r, MIME8_CONV_OK);
    /* a part without any header: gets a CTE field */
    assert_non_null(strstr(c.out, "--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
                                  "t=E9xt\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n"
                                  "Subject: x\r\n\r\nascii\r\n--b--\r\n"));
    free(c.out);
    /* multipart/digest parts default to message/rfc822 */
    assert_int_equal(convert("Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n"
                             "Subject: x\r\n\r\n\xe9\r\n--d--\r\n").r,
                     MIME8_CONV_MESSAGE);
    /* a binary part with 8-bit octets */
    assert_int_equal(convert("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
                             "Content-Transfer-Encoding: binary\r\n\r\n\xe9\r\n--b--\r\n").r,
                     MIME8_CONV_BINARY);
    /* a part header with 8-bit octets */
    assert_int_equal(convert("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
                             "Content-Disposition: attachment; filename=\xe9\r\n\r\nx\r\n--b--\r\n").r,
                     MIME8_CONV_HEADER_8BIT);
}

static void test_convert_malformed(void **state)
{
    (void)state;
    /* the close delimiter missing: the last part runs to the end */
    struct conv c = convert("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n\xe9\r\n");
    assert_int_equal(c.r, MIME8_CONV_OK);
    assert_string_equal(c.out, "Content-Type: multipart/mixed; boundary=b\r\nMIME-Version: 1.0\r\n"
                               "\r\n--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
                               "=E9\r\n");
    free(c.out);
    /* no boundary parameter, no delimiter at all, 8-bit preamble / epilogue */
    assert_int_equal(convert("Content-Type: multipart/mixed\r\n\r\n--b\r\n\r\n\xe9\r\n").r,
                     MIME8_CONV_MALFORMED);
    assert_int_equal(convert("Content-Type: multipart/mixed; boundary=zz\r\n\r\n--b\r\n\r\n\xe9\r\n").r,
                     MIME8_CONV_MALFORMED);
    assert_int_equal(convert("Content-Type: multipart/mixed; boundary=b\r\n\r\n\xe9\r\n--b\r\n\r\nx\r\n--b--\r\n").r,
                     MIME8_CONV_MALFORMED);
    assert_int_equal(convert("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n\xe9").r,
                     MIME8_CONV_MALFORMED);
    /* "--bx" is not a delimiter of boundary b: all one part */
    c = convert("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n--bx \xe9\r\n--b--\r\n");
    assert_int_equal(c.r, MIME8_CONV_OK);
    assert_non_null(strstr(c.out, "quoted-printable\r\n\r\n--bx =E9\r\n--b--\r\n"));
    free(c.out);
    /* nesting too deep */
    char deep[8192];
    size_t n = (size_t)snprintf(deep, sizeof deep, "Subject: d\r\n");
    for (int i = 0; i < 30; i++)
        n += (size_t)snprintf(deep + n, sizeof deep - n,
                              "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i);
    snprintf(deep + n, sizeof deep - n, "\r\n\xe9\r\n");
    assert_int_equal(convert(deep).r, MIME8_CONV_MALFORMED);
    /* a huge line: converted with soft breaks */
    size_t big = 200000;
    char *h = malloc(big + 32);
    assert_non_null(h);
    strcpy(h, "Subject: h\r\n\r\n");
    size_t hl = strlen(h);
    memset(h + hl, '\xe9', big);
    h[hl + big] = '\0';
    c = convert(h);
    assert_int_equal(c.r, MIME8_CONV_OK);
    check_qp_part(c.out, "quoted-printable\r\n\r\n", NULL, h + hl);
    free(c.out);
    free(h);
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
        cmocka_unit_test(test_convert_single),
        cmocka_unit_test(test_convert_unchanged_and_refused),
        cmocka_unit_test(test_convert_soft_breaks),
        cmocka_unit_test(test_convert_multipart),
        cmocka_unit_test(test_convert_malformed),
        cmocka_unit_test(test_dotstuff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
