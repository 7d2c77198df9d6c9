/* commit.c - group commit of queue files on a small pool of per-worker helper threads (commit.h).
 *
 * Why a thread: fsync blocks, and a blocked event loop serves nobody. With the commit on a
 * helper, the loop keeps reading other sessions' DATA while the disk works, and everything
 * that finished meanwhile is committed together in the next round: one syncfs and one
 * directory fsync for the batch instead of two fsyncs per message. The batch is simply
 * "whatever arrived while the previous round was on disk", so a lone message is never
 * delayed waiting for company.
 *
 * Threading: the loop owns sessions and callbacks; the thread only runs queue_commit_batch on
 * writers it was given. Requests move between them on two mutex-protected lists; the thread
 * wakes the loop through an eventfd. */
#include "commit.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* At most this many messages per queue_commit_batch (more simply make a second round). */
#define COMMIT_BATCH_MAX 256
/* Helper threads per worker. Each takes everything pending when it is free, so while one
 * waits for its directory fsync the next batch's sync is already under way: the disk's
 * journal merges concurrent commits. More threads than this only add context switches. */
#ifndef COMMIT_THREADS
#define COMMIT_THREADS 4
#endif

struct commit_req {
    struct commit_req *next;
    struct queue_writer *w;      /* thread: the message; NULL once committed */
    int err;                     /* thread: the result */
    commit_done_fn *done;        /* loop only */
    void *arg;                   /* loop only */
    bool cancelled;              /* loop only */
};

struct req_list {
    struct commit_req *head, **tail;
};

struct committer {
    pthread_t threads[COMMIT_THREADS];
    size_t nthreads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct req_list pending;     /* loop -> thread, under mu */
    struct req_list finished;    /* thread -> loop, under mu */
    bool stop;                   /* under mu */
    int efd;                     /* eventfd: "finished is not empty" */
    struct event *ev;
};

static void list_init(struct req_list *l)
{
    l->head = NULL;
    l->tail = &l->head;
}

static void list_push(struct req_list *l, struct commit_req *r)
{
    r->next = NULL;
    *l->tail = r;
    l->tail = &r->next;
}

/* Append all of src to dst and empty src. */
static void list_splice(struct req_list *dst, struct req_list *src)
{
    if (!src->head)
        return;
    *dst->tail = src->head;
    dst->tail = src->tail;
    list_init(src);
}

/* Commit one round: the requests in list order, COMMIT_BATCH_MAX at a time. */
static void commit_round(struct commit_req *r)
{
    struct queue_writer *ws[COMMIT_BATCH_MAX];
    struct commit_req *rs[COMMIT_BATCH_MAX];
    int errs[COMMIT_BATCH_MAX];
    while (r) {
        size_t n = 0;
        for (; r && n < COMMIT_BATCH_MAX; r = r->next, n++) {
            rs[n] = r;
            ws[n] = r->w;
        }
        queue_commit_batch(ws, n, errs);
        for (size_t i = 0; i < n; i++) {
            rs[i]->w = NULL; /* freed by queue_commit_batch */
            rs[i]->err = errs[i];
        }
    }
}

static void *commit_thread(void *arg)
{
    struct committer *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->pending.head && !c->stop)
            pthread_cond_wait(&c->cv, &c->mu);
        if (!c->pending.head)
            break; /* stopping, and nothing left to commit */
        struct req_list round = c->pending;
        list_init(&c->pending);
        pthread_mutex_unlock(&c->mu);

        commit_round(round.head);

        pthread_mutex_lock(&c->mu);
        list_splice(&c->finished, &round);
        uint64_t one = 1;
        /* Cannot fail short of a bug: the counter would need 2^64-1 unread wakeups. */
        if (write(c->efd, &one, sizeof one) < 0 && errno != EAGAIN)
            log_err("commit thread: cannot wake the event loop: %s", strerror(errno));
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* On the loop: report finished commits. */
static void on_finished(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct committer *c = arg;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        log_err("commit: cannot read eventfd: %s", strerror(errno));
    pthread_mutex_lock(&c->mu);
    struct commit_req *r = c->finished.head;
    list_init(&c->finished);
    pthread_mutex_unlock(&c->mu);
    while (r) {
        struct commit_req *next = r->next;
        if (!r->cancelled)
            r->done(r->arg, r->err);
        free(r);
        r = next;
    }
}

struct committer *committer_new(struct event_base *base)
{
    struct committer *c = xcalloc(1, sizeof *c);
    list_init(&c->pending);
    list_init(&c->finished);
    c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->efd < 0)
        goto fail;
    c->ev = event_new(base, c->efd, EV_READ | EV_PERSIST, on_finished, c);
    if (!c->ev || event_add(c->ev, NULL) < 0)
        goto fail;
    int rc = pthread_mutex_init(&c->mu, NULL);
    if (rc == 0 && (rc = pthread_cond_init(&c->cv, NULL)) != 0)
        pthread_mutex_destroy(&c->mu);
    if (rc != 0) {
        errno = rc;
        goto fail;
    }
    /* Signals stay with the loop's thread (libevent's signal events): block them all here. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (; c->nthreads < COMMIT_THREADS; c->nthreads++)
        if ((rc = pthread_create(&c->threads[c->nthreads], NULL, commit_thread, c)) != 0)
            break;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (c->nthreads == 0) {
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        errno = rc;
        goto fail;
    }
    return c;
fail:;
    int saved = errno;
    if (c->ev)
        event_free(c->ev);
    if (c->efd >= 0)
        close(c->efd);
    free(c);
    errno = saved;
    return NULL;
}

struct commit_req *committer_submit(struct committer *c, struct queue_writer *w,
                                    commit_done_fn *done, void *arg)
{
    struct commit_req *r = xcalloc(1, sizeof *r);
    r->w = w;
    r->done = done;
    r->arg = arg;
    pthread_mutex_lock(&c->mu);
    list_push(&c->pending, r);
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return r;
}

void committer_cancel(struct commit_req *r)
{
    if (r)
        r->cancelled = true;
}

void committer_free(struct committer *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < c->nthreads; i++)
        pthread_join(c->threads[i], NULL); /* they commit what is pending first */
    for (struct commit_req *r = c->finished.head, *next; r; r = next) {
        next = r->next;
        free(r);
    }
    event_free(c->ev);
    close(c->efd);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
