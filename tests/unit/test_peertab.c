/* test_peertab.c - unit tests for src/peertab.c: concurrency per address across workers,
 * closing, the per-minute rate, forgetting a dead worker, sharing across fork(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "peertab.h"

static void test_open_limit_across_workers(void **state)
{
    (void)state;
    struct peertab *t = peertab_new(2);
    assert_non_null(t);
    size_t s1, s2, s3;
    unsigned open;
    assert_int_equal(peertab_open(t, 0, "192.0.2.1", 1000, 2, 0, &s1, &open), PEER_OK);
    assert_int_equal(open, 0);
    assert_int_equal(peertab_open(t, 1, "192.0.2.1", 1000, 2, 0, &s2, &open), PEER_OK);
    assert_int_equal(open, 1);
    assert_int_equal(peertab_open(t, 0, "192.0.2.1", 1000, 2, 0, &s3, &open), PEER_TOO_MANY);
    assert_int_equal(open, 2);
    assert_int_equal(s3, PEERTAB_NONE);
    /* another address is not affected */
    assert_int_equal(peertab_open(t, 0, "2001:db8::1", 1000, 2, 0, &s3, &open), PEER_OK);
    peertab_close(t, 1, s2);
    assert_int_equal(peertab_open(t, 0, "192.0.2.1", 1000, 2, 0, &s2, &open), PEER_OK);
    assert_int_equal(open, 1);
    peertab_free(t);
}

static void test_rate(void **state)
{
    (void)state;
    struct peertab *t = peertab_new(1);
    size_t s;
    unsigned open;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(peertab_open(t, 0, "192.0.2.9", 1000 + i, 100, 3, &s, &open), PEER_OK);
        peertab_close(t, 0, s);
    }
    assert_int_equal(peertab_open(t, 0, "192.0.2.9", 1030, 100, 3, &s, &open), PEER_TOO_FAST);
    assert_int_equal(peertab_open(t, 0, "192.0.2.8", 1030, 100, 3, &s, &open), PEER_OK);
    /* a new minute */
    assert_int_equal(peertab_open(t, 0, "192.0.2.9", 1060, 100, 3, &s, &open), PEER_OK);
    peertab_free(t);
}

static void test_forget_worker_and_fork(void **state)
{
    (void)state;
    struct peertab *t = peertab_new(2);
    size_t s;
    unsigned open;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* a "worker" in another process counts two connections, then dies */
        size_t a, b;
        unsigned o;
        int ok = peertab_open(t, 1, "198.51.100.7", 5000, 10, 0, &a, &o) == PEER_OK &&
                 peertab_open(t, 1, "198.51.100.7", 5000, 10, 0, &b, &o) == PEER_OK;
        _exit(ok ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(peertab_open(t, 0, "198.51.100.7", 5000, 10, 0, &s, &open), PEER_OK);
    assert_int_equal(open, 2); /* seen through the shared mapping */
    peertab_forget_worker(t, 1);
    assert_int_equal(peertab_open(t, 0, "198.51.100.7", 5000, 10, 0, &s, &open), PEER_OK);
    assert_int_equal(open, 1); /* only our own first one is left */
    peertab_free(t);
}

static void test_slots_are_reused(void **state)
{
    (void)state;
    struct peertab *t = peertab_new(1);
    char addr[32];
    size_t s;
    unsigned open;
    /* More addresses than slots over time: closed, older than a minute, reused. */
    for (unsigned i = 0; i < 3 * PEERTAB_SLOTS; i++) {
        snprintf(addr, sizeof addr, "10.%u.%u.%u", i >> 16 & 255, i >> 8 & 255, i & 255);
        time_t now = 1000 + (time_t)(i / PEERTAB_SLOTS) * 61;
        assert_int_equal(peertab_open(t, 0, addr, now, 5, 0, &s, &open), PEER_OK);
        assert_true(s != PEERTAB_NONE);
        peertab_close(t, 0, s);
    }
    peertab_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_limit_across_workers),
        cmocka_unit_test(test_rate),
        cmocka_unit_test(test_forget_worker_and_fork),
        cmocka_unit_test(test_slots_are_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
