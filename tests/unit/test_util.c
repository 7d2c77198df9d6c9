/* test_util.c - util.c's clock and process helpers: self_pid stays right across fork() (a
 * child of a child too) and in threads; wall_now never lags the precise clock read before it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/* In a child: exit 0 when self_pid is the child's own pid, with a grandchild checked too. */
static int check_in_child(int depth)
{
    if (self_pid() != (long)getpid())
        return 1;
    if (depth == 0)
        return 0;
    pid_t pid = fork();
    if (pid < 0)
        return 2;
    if (pid == 0)
        _exit(check_in_child(depth - 1));
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return 3;
    return WEXITSTATUS(status);
}

static void test_self_pid_across_fork(void **state)
{
    (void)state;
    assert_int_equal(self_pid(), (long)getpid()); /* cached in the parent first */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(check_in_child(1));
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(self_pid(), (long)getpid()); /* the parent's is untouched */
}

static void *pid_in_thread(void *arg)
{
    *(long *)arg = self_pid();
    return NULL;
}

static void test_self_pid_in_thread(void **state)
{
    (void)state;
    long seen = 0;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, pid_in_thread, &seen), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(seen, (long)getpid());
}

static void test_wall_now_not_behind(void **state)
{
    (void)state;
    /* time() lags up to a tick behind just after a second begins; wall_now may not
     * (X-DELIVERY-TIME counts from it). Read across the next change of second. */
    struct timespec start, ts;
    assert_int_equal(clock_gettime(CLOCK_REALTIME, &start), 0);
    do {
        assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
        assert_true(wall_now() >= (long long)ts.tv_sec);
    } while (ts.tv_sec < start.tv_sec + 1 || ts.tv_nsec < 20000000L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self_pid_across_fork),
        cmocka_unit_test(test_self_pid_in_thread),
        cmocka_unit_test(test_wall_now_not_behind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
