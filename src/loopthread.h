/* loopthread.h - what the event loops' helper threads share (commit.c, removal.c, authpool.c):
 * their lock and condition variable, starting them with signals left to the loop's thread,
 * and an eventfd through which a helper wakes its loop when it has answers. */
#ifndef TERN_LOOPTHREAD_H
#define TERN_LOOPTHREAD_H

#include <pthread.h>

#include <event2/event.h>

/* Both or neither: 0, or an errno value (then nothing is left to destroy). */
int loopthread_sync_init(pthread_mutex_t *mu, pthread_cond_t *cv);
void loopthread_sync_destroy(pthread_mutex_t *mu, pthread_cond_t *cv);

/* pthread_create with every signal blocked in the new thread: libevent's signal events must
 * run on the loop's thread. 0 or an errno value. */
int loopthread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* A wakeup: cb(fd, what, arg) runs on base's loop after loopthread_wake from any thread, and
 * calls loopthread_wake_clear(fd) first. */
struct loopthread_wake {
    int efd;
    struct event *ev;
};
/* 0, or -1 with errno. w is left freeable either way. */
int loopthread_wake_init(struct loopthread_wake *w, struct event_base *base,
                         event_callback_fn cb, void *arg);
void loopthread_wake(struct loopthread_wake *w, const char *who);
void loopthread_wake_clear(evutil_socket_t fd, const char *who);
void loopthread_wake_free(struct loopthread_wake *w);

#endif
