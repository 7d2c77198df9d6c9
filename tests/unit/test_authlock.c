/* test_authlock.c - unit tests for src/authlock.c: counting, lockout, expiry, success reset,
 * the table bound, and a shared table counting across processes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "authlock.h"

static void test_lockout(void **state)
{
    (void)state;
    struct authlock t;
    assert_int_equal(authlock_init(&t, 3, 600, false), 0);
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
    assert_int_equal(authlock_init(&t, 2, 60, false), 0);
    bool locked;
    assert_int_equal(authlock_fail(&t, "::1", 0, &locked), 1);
    assert_int_equal(authlock_fail(&t, "::1", 61, &locked), 1); /* the first one aged out */
    assert_false(locked);
    authlock_success(&t, "::1");
    assert_int_equal(authlock_fail(&t, "::1", 62, &locked), 1);
    authlock_free(&t);

    assert_int_equal(authlock_init(&t, 0, 60, false), 0); /* 0: count, never lock */
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
    assert_int_equal(authlock_init(&t, 5, 600, false), 0);
    bool locked;
    char addr[64];
    for (int i = 0; i < AUTHLOCK_MAX_ENTRIES + 100; i++) {
        snprintf(addr, sizeof addr, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        authlock_fail(&t, addr, 1000 + i, &locked);
    }
    /* the oldest addresses were forgotten (expired or pushed out), the newest still count */
    time_t now = 1000 + AUTHLOCK_MAX_ENTRIES + 100;
    assert_int_equal(authlock_fail(&t, addr, now, &locked), 2);
    assert_int_equal(authlock_fail(&t, "10.0.0.0", now, &locked), 1);
    authlock_free(&t);
}

/* A shared table: failures counted in other processes (the workers) add up. */
static void test_shared_across_processes(void **state)
{
    (void)state;
    struct authlock t;
    assert_int_equal(authlock_init(&t, 3, 600, true), 0);
    bool locked;
    for (int i = 0; i < 2; i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            bool l;
            _exit(authlock_fail(&t, "198.51.100.7", 1000, &l) == (unsigned)i + 1 ? 0 : 1);
        }
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    assert_false(authlock_locked(&t, "198.51.100.7", 1001, NULL));
    assert_int_equal(authlock_fail(&t, "198.51.100.7", 1001, &locked), 3);
    assert_true(locked);
    assert_true(authlock_locked(&t, "198.51.100.7", 1002, NULL));
    authlock_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lockout),
        cmocka_unit_test(test_window_and_success),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_shared_across_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
