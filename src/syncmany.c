/* syncmany.c - parallel fsync of a batch of files and directories (see syncmany.h).
 *
 * Threads are started per batch rather than kept in a pool: a thread costs tens of
 * microseconds, an fsync here milliseconds, and a pool would need its own shutdown path.
 * Jobs are shared out by stride, so each thread touches only its own entries. */
#include "syncmany.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "loopthread.h"
#include "util.h"

struct stride {
    struct sync_job *jobs;
    size_t n, first, step;
};

static void run_job(struct sync_job *j)
{
    int rc = j->fd >= 0 ? fsync(j->fd) : fsync_dir(j->dir);
    j->err = rc < 0 ? (errno ? errno : EIO) : 0;
}

static void *run_stride(void *arg)
{
    const struct stride *s = arg;
    for (size_t i = s->first; i < s->n; i += s->step)
        run_job(&s->jobs[i]);
    return NULL;
}

size_t sync_many(struct sync_job *jobs, size_t n)
{
    size_t nthreads = n < SYNC_MANY_THREADS ? n : SYNC_MANY_THREADS;
    struct stride strides[SYNC_MANY_THREADS];
    pthread_t tids[SYNC_MANY_THREADS];
    bool started[SYNC_MANY_THREADS] = {false};
    for (size_t t = 1; t < nthreads; t++) {
        strides[t] = (struct stride){jobs, n, t, nthreads};
        started[t] = loopthread_start(&tids[t], run_stride, &strides[t]) == 0;
    }
    strides[0] = (struct stride){jobs, n, 0, nthreads ? nthreads : 1};
    run_stride(&strides[0]);
    for (size_t t = 1; t < nthreads; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        else
            run_stride(&strides[t]); /* could not start: do its share here */
    }
    size_t failed = 0;
    for (size_t i = 0; i < n; i++)
        failed += jobs[i].err != 0;
    return failed;
}
