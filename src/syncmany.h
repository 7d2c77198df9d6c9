/* syncmany.h - fsync several files and directories at once, from parallel threads.
 *
 * One fsync per thread lets the disk take the requests together (this machine: ~1,600
 * fsync'd files/s from one thread, ~3,500 from eight), where a syncfs() would also write
 * out every other program's dirty data on the file system and make the wait unpredictable
 * (docs/performance.md). Used by the queue's group commit for a round of a single sync
 * (on the caller, no thread) and for a round whose syncfs failed. */
#ifndef TERN_SYNCMANY_H
#define TERN_SYNCMANY_H

#include <stddef.h>

struct sync_job {
    int fd;            /* a file to fsync, or -1 */
    const char *dir;   /* else: a directory to open and fsync (fsync_dir) */
    int err;           /* out: 0, or the errno of the failure */
};

/* Run every job, on up to SYNC_MANY_THREADS threads (the caller's included); returns when
 * all are done. If a thread cannot be started, its jobs run on the caller's thread: slower,
 * never skipped. Returns the number of failed jobs. */
#define SYNC_MANY_THREADS 8
size_t sync_many(struct sync_job *jobs, size_t n);

#endif
