/* test_authlock.c - unit tests for src/authlock.c: counting, lockout, expiry, success reset,
 * and the table bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "authlock.h"

static void test_lockout(void **state)
{
    (void)state;
    struct authlock t;
    authlock_init(&t, 3, 600);
    bool locked;
    time_t until = 0;
    assert_int_equal(authlock_fail(&t, "192.0.2.1", 1000, &locked), 1);
    assert_false(locked);
    assert_int_equal(authlock_fail(&t, "192.0.2.1", 1001, &locked), 2);
    assert_false(authlock_locked(&t, "192.0.2.1", 1001, NULL));
    assert_int_equal(authlock_fail(&t, "192.0.2.2", 1001, &locked), 1); /* another address */
    assert_int_equal(authlock_fail(&t, "192.0.2.1", 1002, &locked), 3);
    assert_true(locked);
    assert_true(authlock_locked(&t, "192.0.2.1", 1002, &until));
    assert_int_equal(until, 1602);
    assert_false(authlock_locked(&t, "192.0.2.2", 1002, NULL));
    assert_true(authlock_locked(&t, "192.0.2.1", 1601, NULL));
    assert_false(authlock_locked(&t, "192.0.2.1", 1602, NULL)); /* over */
    /* after the lockout the count starts again */
    assert_int_equal(authlock_fail(&t, "192.0.2.1", 1700, &locked), 1);
    assert_false(locked);
    authlock_free(&t);
}

static void test_window_and_success(void **state)
{
    (void)state;
    struct authlock t;
    authlock_init(&t, 2, 60);
    bool locked;
    assert_int_equal(authlock_fail(&t, "::1", 0, &locked), 1);
    assert_int_equal(authlock_fail(&t, "::1", 61, &locked), 1); /* the first one aged out */
    assert_false(locked);
    authlock_success(&t, "::1");
    assert_int_equal(authlock_fail(&t, "::1", 62, &locked), 1);
    authlock_free(&t);

    authlock_init(&t, 0, 60); /* 0: count, never lock */
    for (int i = 0; i < 50; i++)
        authlock_fail(&t, "198.51.100.7", 5, &locked);
    assert_false(locked);
    assert_false(authlock_locked(&t, "198.51.100.7", 5, NULL));
    authlock_free(&t);
}

static void test_bounded(void **state)
{
    (void)state;
    struct authlock t;
    authlock_init(&t, 5, 600);
    bool locked;
    char addr[64];
    for (int i = 0; i < AUTHLOCK_MAX_ENTRIES + 100; i++) {
        snprintf(addr, sizeof addr, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        authlock_fail(&t, addr, 1000 + i, &locked);
    }
    assert_true(t.n <= AUTHLOCK_MAX_ENTRIES);
    authlock_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lockout),
        cmocka_unit_test(test_window_and_success),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
