/* test_hdrscan.c - unit tests for src/hdrscan.c: field counting with folding, the end of the
 * header section, sizes, and input split at every position. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hdrscan.h"

static const char msg[] = "Subject: hi\r\n"
                          "To: a@example.org,\r\n"
                          "\tb@example.org\r\n"
                          "From: c@example.org\r\n"
                          "\r\n"
                          "Body: not a header\r\n";

static void test_counts(void **state)
{
    (void)state;
    struct hdrscan h;
    hdrscan_init(&h);
    hdrscan_feed(&h, msg, strlen(msg));
    assert_true(h.done);
    assert_int_equal(h.fields, 3);
    assert_int_equal(h.size, strlen(msg) - strlen("Body: not a header\r\n"));
}

static void test_split_anywhere(void **state)
{
    (void)state;
    size_t n = strlen(msg);
    for (size_t cut = 0; cut <= n; cut++) {
        struct hdrscan h;
        hdrscan_init(&h);
        hdrscan_feed(&h, msg, cut);
        hdrscan_feed(&h, msg + cut, n - cut);
        assert_true(h.done);
        assert_int_equal(h.fields, 3);
    }
}

static void test_unfinished_and_empty(void **state)
{
    (void)state;
    struct hdrscan h;
    hdrscan_init(&h);
    hdrscan_feed(&h, "A: 1\r\nB: 2\r\nC", 13);
    assert_false(h.done);
    assert_int_equal(h.fields, 3);
    assert_int_equal(h.size, 13);
    hdrscan_init(&h); /* no header at all: the first line is empty */
    hdrscan_feed(&h, "\r\nbody\r\n", 8);
    assert_true(h.done);
    assert_int_equal(h.fields, 0);
    assert_int_equal(h.size, 2);
    hdrscan_init(&h); /* bare LF ends lines as well */
    hdrscan_feed(&h, "A: 1\n\nB: 2\n", 11);
    assert_true(h.done);
    assert_int_equal(h.fields, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_split_anywhere),
        cmocka_unit_test(test_unfinished_and_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
