/* loopthread.c - helper threads beside an event loop (see loopthread.h). */
#include "loopthread.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"

int loopthread_sync_init(pthread_mutex_t *mu, pthread_cond_t *cv)
{
    int rc = pthread_mutex_init(mu, NULL);
    if (rc == 0 && (rc = pthread_cond_init(cv, NULL)) != 0)
        pthread_mutex_destroy(mu);
    return rc;
}

void loopthread_sync_destroy(pthread_mutex_t *mu, pthread_cond_t *cv)
{
    pthread_cond_destroy(cv);
    pthread_mutex_destroy(mu);
}

int loopthread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int loopthread_wake_init(struct loopthread_wake *w, struct event_base *base,
                         event_callback_fn cb, void *arg)
{
    w->ev = NULL;
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0)
        return -1;
    w->ev = event_new(base, w->efd, EV_READ | EV_PERSIST, cb, arg);
    if (!w->ev || event_add(w->ev, NULL) < 0) {
        if (!errno)
            errno = ENOMEM;
        return -1;
    }
    return 0;
}

void loopthread_wake(struct loopthread_wake *w, const char *who)
{
    uint64_t one = 1;
    /* Cannot fail short of a bug: the counter would need 2^64-1 unread wakeups. */
    if (write(w->efd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_err("%s thread: cannot wake the event loop: %s", who, strerror(errno));
}

void loopthread_wake_clear(evutil_socket_t fd, const char *who)
{
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        log_err("%s: cannot read eventfd: %s", who, strerror(errno));
}

void loopthread_wake_free(struct loopthread_wake *w)
{
    int saved = errno;
    if (w->ev)
        event_free(w->ev);
    if (w->efd >= 0)
        close(w->efd);
    w->ev = NULL;
    w->efd = -1;
    errno = saved;
}
