/* test_syncmany.c - sync_many on a real file system: every job runs once (more jobs than
 * threads, so each thread takes several), each result lands on its own job, failures are
 * counted and do not stop the others. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "syncmany.h"
#include "util.h"

#define NJOBS (3 * SYNC_MANY_THREADS + 1)

static void test_sync_many(void **state)
{
    (void)state;
    char dir[] = "/tmp/tern-syncmany-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char missing[64];
    snprintf(missing, sizeof missing, "%s/missing", dir);
    struct sync_job jobs[NJOBS];
    int fds[NJOBS];
    for (int i = 0; i < NJOBS; i++) {
        char path[64];
        snprintf(path, sizeof path, "%s/f%d", dir, i);
        fds[i] = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_true(fds[i] >= 0);
        assert_int_equal(write_all(fds[i], "x", 1), 0);
        jobs[i] = (struct sync_job){.fd = fds[i], .err = -1};
    }
    /* Every fifth job a directory, two of them failing in their own way. */
    for (int i = 0; i < NJOBS; i += 5)
        jobs[i] = (struct sync_job){.fd = -1, .dir = dir, .err = -1};
    jobs[5].dir = missing;
    /* A descriptor number never open (above the limit; a closed one could be reused by a
     * directory job's open on another thread): EBADF. */
    jobs[7].fd = (int)sysconf(_SC_OPEN_MAX) + 1000;

    assert_int_equal(sync_many(jobs, NJOBS), 2);
    for (int i = 0; i < NJOBS; i++) {
        int want = i == 5 ? ENOENT : i == 7 ? EBADF : 0;
        assert_int_equal(jobs[i].err, want);
    }
    assert_int_equal(sync_many(jobs, 0), 0); /* nothing to do is fine */

    for (int i = 0; i < NJOBS; i++)
        close(fds[i]);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
