/* authpool.c - crypt(3) password checks for SMTP AUTH (RFC 4954) on a few helper threads, so
 * the worker's event loop never waits for one (see authpool.h).
 *
 * Threading: the loop owns the callbacks and the requesters; a thread takes a request from the
 * queue, runs users_check_hash (crypt_r, reentrant) on the request's own copies and moves it
 * to the finished list. Both lists and the cancelled flag are under mu; the thread wakes the
 * loop through an eventfd (loopthread.h). Requests are answered in the order they finish. */
#include "authpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "log.h"
#include "loopthread.h"
#include "users.h"
#include "util.h"

#define AUTHPOOL_THREADS_MAX 16

struct authpool_req {
    struct authpool_req *next;
    struct authpool *pool;
    char *hash, *password;       /* the thread's copies; password wiped after the check */
    bool ok;                     /* set by the thread before it moves the request to finished */
    bool cancelled;              /* under mu: set by the loop, read by the thread */
    authpool_done_fn *done;      /* loop only */
    void *arg;                   /* loop only */
};

/* A FIFO of requests. */
struct req_queue {
    struct authpool_req *first, *last;
};

struct authpool {
    pthread_t threads[AUTHPOOL_THREADS_MAX];
    unsigned nthreads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct req_queue todo;       /* loop -> threads, under mu */
    struct req_queue finished;   /* threads -> loop, under mu */
    bool stop;                   /* under mu */
    struct loopthread_wake wake; /* "finished is not empty" */
};

static void queue_append(struct req_queue *q, struct authpool_req *r)
{
    r->next = NULL;
    if (q->last)
        q->last->next = r;
    else
        q->first = r;
    q->last = r;
}

static struct authpool_req *queue_pop(struct req_queue *q)
{
    struct authpool_req *r = q->first;
    if (r) {
        q->first = r->next;
        if (!q->first)
            q->last = NULL;
        r->next = NULL;
    }
    return r;
}

static void req_free(struct authpool_req *r)
{
    if (r->password) {
        OPENSSL_cleanse(r->password, strlen(r->password));
        free(r->password);
    }
    free(r->hash);
    free(r);
}

static void *check_thread(void *arg)
{
    struct authpool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->todo.first && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop)
            break; /* what is still queued belongs to requesters that are gone */
        struct authpool_req *r = queue_pop(&p->todo);
        bool skip = r->cancelled; /* nobody waits for it: spend no CPU on it */
        pthread_mutex_unlock(&p->mu);

        r->ok = !skip && users_check_hash(r->hash, r->password);
        OPENSSL_cleanse(r->password, strlen(r->password));

        pthread_mutex_lock(&p->mu);
        bool was_empty = !p->finished.first;
        queue_append(&p->finished, r);
        if (was_empty)
            loopthread_wake(&p->wake, "auth check");
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* On the loop: report finished checks. */
static void on_finished(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct authpool *p = arg;
    loopthread_wake_clear(fd, "auth check");
    pthread_mutex_lock(&p->mu);
    struct req_queue done = p->finished;
    p->finished.first = p->finished.last = NULL;
    pthread_mutex_unlock(&p->mu);
    /* cancelled is only ever set on this thread, so it is read here without the lock */
    for (struct authpool_req *r; (r = queue_pop(&done));) {
        if (!r->cancelled)
            r->done(r->arg, r->ok);
        else
            log_debug("auth check: result dropped, its session has ended");
        req_free(r);
    }
}

struct authpool *authpool_new(struct event_base *base, unsigned threads)
{
    if (threads == 0)
        threads = 1;
    if (threads > AUTHPOOL_THREADS_MAX)
        threads = AUTHPOOL_THREADS_MAX;
    struct authpool *p = xcalloc(1, sizeof *p);
    int rc = 0;
    if (loopthread_wake_init(&p->wake, base, on_finished, p) < 0)
        goto fail;
    if ((rc = loopthread_sync_init(&p->mu, &p->cv)) != 0) {
        errno = rc;
        goto fail;
    }
    while (p->nthreads < threads &&
           (rc = loopthread_start(&p->threads[p->nthreads], check_thread, p)) == 0)
        p->nthreads++;
    if (p->nthreads == 0) {
        loopthread_sync_destroy(&p->mu, &p->cv);
        errno = rc;
        goto fail;
    }
    if (p->nthreads < threads) /* fewer threads only make checks wait longer */
        log_warn("auth checks: started %u of %u threads: %s", p->nthreads, threads,
                 strerror(rc));
    return p;
fail:
    loopthread_wake_free(&p->wake);
    free(p);
    return NULL;
}

struct authpool_req *authpool_check(struct authpool *p, const char *hash, const char *password,
                                    authpool_done_fn *done, void *arg)
{
    struct authpool_req *r = xcalloc(1, sizeof *r);
    r->pool = p;
    r->hash = xstrdup(hash);
    r->password = xstrdup(password);
    r->done = done;
    r->arg = arg;
    pthread_mutex_lock(&p->mu);
    queue_append(&p->todo, r);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return r;
}

void authpool_cancel(struct authpool_req *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->pool->mu);
    r->cancelled = true;
    pthread_mutex_unlock(&r->pool->mu);
}

void authpool_free(struct authpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL); /* each finishes the check it is running */
    for (struct authpool_req *r; (r = queue_pop(&p->todo)) || (r = queue_pop(&p->finished));)
        req_free(r);
    loopthread_wake_free(&p->wake);
    loopthread_sync_destroy(&p->mu, &p->cv);
    free(p);
}
