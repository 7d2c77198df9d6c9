/* test_sendmail_msg.c - preparing a piped-in message for `tern sendmail` (src/sendmail_msg.c):
 * address lists (RFC 5322 3.4), -t recipients and Bcc removal, added headers, line ends, the
 * lone-dot end without -i, and line length limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sendmail_msg.h"

struct list {
    char v[8][128];
    size_t n;
};

static void collect(const char *addr, void *arg)
{
    struct list *l = arg;
    if (l->n < 8)
        strncpy(l->v[l->n++], addr, 127);
}

static void test_addresses(void **state)
{
    (void)state;
    struct list l = {0};
    static const char v[] = " \"Doe, John\" <john@example.org>, plain@example.org (comment),\r\n"
                            "\tGroup: a@g.test, B <b@g.test>;, <@route.test:c@example.org>,"
                            " \"quoted local\"@example.org, undisclosed-recipients:;";
    assert_int_equal(sm_addresses(v, sizeof v - 1, collect, &l), 6);
    assert_string_equal(l.v[0], "john@example.org");
    assert_string_equal(l.v[1], "plain@example.org");
    assert_string_equal(l.v[2], "a@g.test");
    assert_string_equal(l.v[3], "b@g.test");
    assert_string_equal(l.v[4], "c@example.org");
    assert_string_equal(l.v[5], "\"quoted local\"@example.org");
    struct list e = {0};
    assert_int_equal(sm_addresses("", 0, collect, &e), 0);
    assert_int_equal(sm_addresses(" , ;", 4, collect, &e), 0);
    assert_int_equal(sm_addresses("root", 4, collect, &e), 1);
    assert_string_equal(e.v[0], "root");
}

static const struct sm_opts opts = {
    .extract = true,
    .from = "cron@local.test",
    .date = "Mon, 23 Nov 2026 10:00:00 +0000",
    .message_id = "<1.2@tern.test>",
};

static void test_extract_and_headers(void **state)
{
    (void)state;
    static const char in[] = "From cron Mon Nov 23 10:00:00 2026\n"
                             "To: a@x.test,\n  b@x.test\n"
                             "Cc: A <a@x.test>, c@y.test\n"
                             "Bcc: hidden@z.test,\n\tother@z.test\n"
                             "Subject: hi\n"
                             "\n"
                             "body\n";
    struct sm_msg m;
    sm_prepare(in, sizeof in - 1, &opts, &m);
    assert_int_equal(m.nrcpts, 5);
    assert_string_equal(m.rcpts[0], "a@x.test");
    assert_string_equal(m.rcpts[1], "b@x.test");
    assert_string_equal(m.rcpts[2], "c@y.test");
    assert_string_equal(m.rcpts[3], "hidden@z.test");
    assert_string_equal(m.rcpts[4], "other@z.test");
    assert_string_equal(m.data, "To: a@x.test,\r\n  b@x.test\r\n"
                                "Cc: A <a@x.test>, c@y.test\r\n"
                                "Subject: hi\r\n"
                                "From: cron@local.test\r\n"
                                "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
                                "Message-ID: <1.2@tern.test>\r\n"
                                "\r\n"
                                "body\r\n");
    assert_false(m.eightbit);
    sm_msg_free(&m);
}

static void test_existing_headers_and_no_header(void **state)
{
    (void)state;
    struct sm_opts o = opts;
    o.extract = false;
    o.full_name = "Cron \"Daemon\"";
    static const char in[] = "from: x@y.test\r\nDATE: today\r\nMessage-Id: <m@y>\r\nTo: t@y.test\r\n\r\nb\xc3\xa9\r\n";
    struct sm_msg m;
    sm_prepare(in, sizeof in - 1, &o, &m);
    assert_int_equal(m.nrcpts, 0);
    assert_string_equal(m.data, "from: x@y.test\r\nDATE: today\r\nMessage-Id: <m@y>\r\nTo: t@y.test\r\n\r\nb\xc3\xa9\r\n");
    assert_true(m.eightbit);
    sm_msg_free(&m);

    /* No header at all: the body starts at once; From with the full name is added. */
    static const char body[] = "just text: not a header? yes it is\nno colon here\n";
    sm_prepare(body, sizeof body - 1, &o, &m);
    assert_non_null(strstr(m.data, "just text: not a header? yes it is\r\n"));
    static const char body2[] = "no colon here\nsecond";
    sm_msg_free(&m);
    sm_prepare(body2, sizeof body2 - 1, &o, &m);
    assert_string_equal(m.data, "From: \"Cron \\\"Daemon\\\"\" <cron@local.test>\r\n"
                                "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
                                "Message-ID: <1.2@tern.test>\r\n"
                                "\r\n"
                                "no colon here\r\nsecond\r\n");
    sm_msg_free(&m);
}

static void test_dot_end(void **state)
{
    (void)state;
    static const char a[] = "x\n.\ny\n";
    assert_int_equal(sm_dot_end(a, sizeof a - 1), 2);
    static const char b[] = "x\n.\r\ny\n";
    assert_int_equal(sm_dot_end(b, sizeof b - 1), 2);
    static const char c[] = "x\n..\n.y\n";
    assert_int_equal(sm_dot_end(c, sizeof c - 1), sizeof c - 1);
    static const char d[] = ".";
    assert_int_equal(sm_dot_end(d, 1), 0);
}

static void test_long_lines(void **state)
{
    (void)state;
    size_t n = 4000;
    char *in = malloc(n + 64);
    assert_non_null(in);
    /* A header of words, then a body line without spaces. */
    strcpy(in, "Subject:");
    size_t len = strlen(in);
    while (len < 1500) {
        memcpy(in + len, " word", 5);
        len += 5;
    }
    in[len++] = '\n';
    in[len++] = '\n';
    memset(in + len, 'x', 2000);
    len += 2000;
    struct sm_msg m;
    struct sm_opts o = {0};
    sm_prepare(in, len, &o, &m);
    size_t xs = 0, words = 0, line = 0, maxline = 0;
    for (size_t i = 0; i < m.len; i++) {
        if (m.data[i] == '\n') {
            if (line > maxline)
                maxline = line;
            line = 0;
            continue;
        }
        line++;
        xs += m.data[i] == 'x';
        words += i + 4 <= m.len && memcmp(m.data + i, "word", 4) == 0;
    }
    assert_true(maxline <= 999); /* 998 + CR */
    assert_int_equal(xs, 2000);
    assert_int_equal(words, (1500 - 8 + 4) / 5);
    /* The header was folded before whitespace: unfolding gives it back. */
    assert_non_null(strstr(m.data, " word\r\n word"));
    sm_msg_free(&m);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_extract_and_headers),
        cmocka_unit_test(test_existing_headers_and_no_header),
        cmocka_unit_test(test_dot_end),
        cmocka_unit_test(test_long_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
