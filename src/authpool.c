/* authpool.c - crypt(3) password checks for SMTP AUTH (RFC 4954) on a few helper threads, so
 * the worker's event loop never waits for one (see authpool.h).
 *
 * Threading: the loop owns the callbacks and the requesters; a thread takes a request from the
 * queue, runs users_check_hash (crypt_r, reentrant) on the request's own copies and moves it
 * to the finished list. Both lists and the cancelled flag are under mu; the thread wakes the
 * loop through an eventfd, as commit.c does. Requests are answered in the order they finish. */
#include "authpool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "log.h"
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
    int efd;                     /* eventfd: "finished is not empty" */
    struct event *ev;
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
        uint64_t one = 1;
        /* Cannot fail short of a bug: the counter would need 2^64-1 unread wakeups. */
        if (was_empty && write(p->efd, &one, sizeof one) < 0 && errno != EAGAIN)
            log_err("auth check thread: cannot wake the event loop: %s", strerror(errno));
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* On the loop: report finished checks. */
static void on_finished(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct authpool *p = arg;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        log_err("auth check: cannot read eventfd: %s", strerror(errno));
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
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0)
        goto fail;
    p->ev = event_new(base, p->efd, EV_READ | EV_PERSIST, on_finished, p);
    if (!p->ev || event_add(p->ev, NULL) < 0)
        goto fail;
    rc = pthread_mutex_init(&p->mu, NULL);
    if (rc == 0 && (rc = pthread_cond_init(&p->cv, NULL)) != 0)
        pthread_mutex_destroy(&p->mu);
    if (rc != 0)
        goto fail;
    /* Signals stay with the loop's thread (libevent's signal events): block them all here. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (p->nthreads < threads &&
           (rc = pthread_create(&p->threads[p->nthreads], NULL, check_thread, p)) == 0)
        p->nthreads++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (p->nthreads == 0) {
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        goto fail;
    }
    if (p->nthreads < threads) /* fewer threads only make checks wait longer */
        log_warn("auth checks: started %u of %u threads: %s", p->nthreads, threads,
                 strerror(rc));
    return p;
fail:;
    int saved = rc ? rc : errno;
    if (p->ev)
        event_free(p->ev);
    if (p->efd >= 0)
        close(p->efd);
    free(p);
    errno = saved;
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
    event_free(p->ev);
    close(p->efd);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
