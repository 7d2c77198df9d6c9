/* test_mime_build.c - cmocka tests for src/mime_build.c: the multipart/mixed message of
 * `tern send --attach` (RFC 2045/2046), file names (RFC 2183, RFC 2231), the type table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mime_build.h"
#include "smtp_reply.h"

static char *build(const char *body, const struct mime_attachment *a, size_t n, size_t *len)
{
    char *m = mime_build_mixed(body, strlen(body), a, n, "seed42", len);
    assert_non_null(m);
    assert_int_equal(strlen(m), *len);
    return m;
}

/* The boundary declared in the header. */
static void boundary_of(const char *m, char *out, size_t cap)
{
    const char *p = strstr(m, "boundary=\"");
    assert_non_null(p);
    p += 10;
    const char *q = strchr(p, '"');
    assert_non_null(q);
    assert_true((size_t)(q - p) < cap);
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_types(void **state)
{
    (void)state;
    assert_string_equal(mime_type_for_name("report.PDF"), "application/pdf");
    assert_string_equal(mime_type_for_name("/tmp/dir.d/logo.png"), "image/png");
    assert_string_equal(mime_type_for_name("notes.txt"), "text/plain");
    assert_string_equal(mime_type_for_name("archive.tar.gz"), "application/gzip");
    assert_string_equal(mime_type_for_name("Makefile"), "application/octet-stream");
    assert_string_equal(mime_type_for_name(".txt"), "application/octet-stream"); /* hidden file */
    assert_string_equal(mime_type_for_name("dir.txt/blob"), "application/octet-stream");
    assert_string_equal(mime_type_for_name("mail.eml"), "application/octet-stream");
    assert_true(mime_type_valid("text/plain"));
    assert_true(mime_type_valid("application/vnd.ms-excel"));
    char longtype[300];
    memset(longtype, 'a', sizeof longtype);
    longtype[0] = 'x', longtype[1] = '/', longtype[129] = '\0';
    assert_true(mime_type_valid(longtype)); /* 127-character subtype */
    longtype[129] = 'a', longtype[130] = '\0';
    assert_false(mime_type_valid(longtype));
    assert_false(mime_type_valid("text"));
    assert_false(mime_type_valid("/plain"));
    assert_false(mime_type_valid("text/"));
    assert_false(mime_type_valid("text/plain; charset=utf-8"));
    assert_false(mime_type_valid("text/pl\r\nain"));
    assert_false(mime_type_valid("a/b/c"));
}

static void test_structure(void **state)
{
    (void)state;
    const unsigned char bin[] = {0x00, 0xff, 0x10, 'a', '\r', '\n', 0x80};
    struct mime_attachment a[] = {
        {.name = "/some/dir/data.bin", .type = NULL, .data = bin, .len = sizeof bin},
        {.name = "page.html", .type = "text/x-custom", .data = (const unsigned char *)"<p>",
         .len = 3},
    };
    size_t len;
    char *m = build("Hello.\r\n", a, 2, &len);
    char bnd[80], delim[90], close[94];
    boundary_of(m, bnd, sizeof bnd);
    assert_true(strlen(bnd) <= 70); /* RFC 2046 5.1.1 */
    assert_non_null(strstr(bnd, "seed42"));
    snprintf(delim, sizeof delim, "\r\n--%s\r\n", bnd);
    snprintf(close, sizeof close, "\r\n--%s--\r\n", bnd);
    assert_int_equal(count(m, delim), 3);
    assert_int_equal(count(m, close), 1);
    /* the close delimiter ends the message */
    assert_string_equal(m + len - strlen(close), close);
    assert_true(strncmp(m, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed;", 49) == 0);
    assert_non_null(strstr(m, "Content-Type: text/plain; charset=us-ascii\r\n"
                              "Content-Transfer-Encoding: 7bit\r\n\r\nHello.\r\n\r\n--"));
    /* the first attachment: type from the table's default, base name, base64 */
    assert_non_null(strstr(m, "Content-Type: application/octet-stream\r\n"
                              "Content-Transfer-Encoding: base64\r\n"
                              "Content-Disposition: attachment;\r\n filename=\"data.bin\"\r\n\r\n"
                              "AP8QYQ0KgA==\r\n--"));
    assert_null(strstr(m, "/some/dir"));
    /* the second: the given type wins over the .html extension */
    assert_non_null(strstr(m, "Content-Type: text/x-custom\r\n"));
    assert_non_null(strstr(m, "filename=\"page.html\"\r\n\r\nPHA+\r\n--"));
    /* every line ends in CRLF and is short */
    for (const char *p = m; *p;) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_true(nl > m && nl[-1] == '\r');
        assert_true(nl - p <= 78);
        p = nl + 1;
    }
    free(m);
}

static void test_8bit_text_and_base64_lines(void **state)
{
    (void)state;
    unsigned char big[1000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7);
    struct mime_attachment a = {.name = "big", .data = big, .len = sizeof big};
    size_t len;
    char *m = build("Gr\xc3\xbc\xc3\x9f" "e\r\n", &a, 1, &len);
    assert_non_null(strstr(m, "charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"));
    /* the base64 decodes back to the bytes, in lines of exactly 76 but the last */
    const char *p = strstr(m, "filename=\"big\"\r\n\r\n");
    assert_non_null(p);
    p += strlen("filename=\"big\"\r\n\r\n");
    unsigned char out[sizeof big];
    size_t got = 0;
    for (;;) {
        const char *e = strstr(p, "\r\n");
        assert_non_null(e);
        if (e - p == 0 || p[0] == '-')
            break;
        unsigned char tmp[64];
        long n = smtp_b64_decode(p, (size_t)(e - p), tmp, sizeof tmp);
        assert_true(n > 0);
        if (got + (size_t)n < sizeof big)
            assert_int_equal(e - p, 76);
        memcpy(out + got, tmp, (size_t)n);
        got += (size_t)n;
        p = e + 2;
    }
    assert_int_equal(got, sizeof big);
    assert_memory_equal(out, big, sizeof big);
    free(m);
}

static void test_filenames(void **state)
{
    (void)state;
    struct mime_attachment a[] = {
        {.name = "say \"hi\"\\.txt", .data = (const unsigned char *)"x", .len = 1},
        {.name = "r\xc3\xa9sum\xc3\xa9 2.pdf", .data = (const unsigned char *)"x", .len = 1},
        {.name = "evil\r\nBcc: x.txt", .data = (const unsigned char *)"x", .len = 1},
        {.name = "dir/", .data = (const unsigned char *)"", .len = 0},
    };
    size_t len;
    char *m = build("", a, 4, &len);
    assert_non_null(strstr(m, "filename=\"say \\\"hi\\\"\\\\.txt\""));
    assert_non_null(strstr(m, "filename*=utf-8''r%C3%A9sum%C3%A9%202.pdf\r\n"));
    assert_string_equal(mime_type_for_name(a[1].name), "application/pdf");
    assert_non_null(strstr(m, "filename*=utf-8''evil%0D%0ABcc%3A%20x.txt\r\n"));
    assert_null(strstr(m, "\nBcc"));
    assert_non_null(strstr(m, "filename=\"attachment\"\r\n\r\n\r\n--")); /* empty file */
    free(m);
}

static void test_long_filename_continuations(void **state)
{
    (void)state;
    char name[256];
    /* 100 x "\xc3\xa9" (é) -> 600 encoded characters: 12 continuations of 48-50, no %XX
     * split */
    for (size_t i = 0; i < 100; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2);
    name[200] = '\0';
    struct mime_attachment a = {.name = name, .data = (const unsigned char *)"x", .len = 1};
    size_t len;
    char *m = build("text\r\n", &a, 1, &len);
    assert_non_null(strstr(m, "filename*0*=utf-8''%C3%A9"));
    assert_non_null(strstr(m, "filename*12*=%"));
    assert_null(strstr(m, "filename*13*"));
    /* reassemble the segments */
    char joined[700] = "";
    for (unsigned seg = 0; seg < 13; seg++) {
        char key[32];
        snprintf(key, sizeof key, seg ? "filename*%u*=" : "filename*%u*=utf-8''", seg);
        const char *p = strstr(m, key);
        assert_non_null(p);
        p += strlen(key);
        size_t n = strcspn(p, ";\r");
        assert_true(n <= 50);
        assert_true(n % 3 == 0); /* whole %XX triples only */
        strncat(joined, p, n);
    }
    assert_int_equal(strlen(joined), 600);
    for (size_t i = 0; i < 600; i += 6)
        assert_memory_equal(joined + i, "%C3%A9", 6);
    free(m);
}

static void test_boundary_avoids_text(void **state)
{
    (void)state;
    size_t len;
    char *first = build("nothing special\r\n", NULL, 0, &len);
    char bnd[80];
    boundary_of(first, bnd, sizeof bnd);
    /* a text that contains that boundary and its next candidates gets another one */
    char body[400];
    snprintf(body, sizeof body, "--%s\r\n=_tern_seed42_000001 =_tern_seed42_000002\r\n", bnd);
    char *m = build(body, NULL, 0, &len);
    char bnd2[80];
    boundary_of(m, bnd2, sizeof bnd2);
    assert_string_not_equal(bnd, bnd2);
    assert_null(strstr(body, bnd2));
    assert_string_equal(bnd2, "=_tern_seed42_000003");
    free(first);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_8bit_text_and_base64_lines),
        cmocka_unit_test(test_filenames),
        cmocka_unit_test(test_long_filename_continuations),
        cmocka_unit_test(test_boundary_avoids_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
