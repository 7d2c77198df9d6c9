/* removal.c - removing delivered messages on a helper thread (see removal.h).
 *
 * One thread per queue manager, taking everything added since its last round: close the
 * descriptors, one directory fsync for the round, then the state files. Threads are used
 * only for such blocking disk work; deliveries stay on the event loop. */
#include "removal.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envelope.h"
#include "log.h"
#include "loopthread.h"
#include "notify.h"
#include "queue.h"
#include "util.h"

struct gone {
    char qid[QUEUE_ID_MAX];
    int fd;
};

struct removal {
    const char *spool_dir;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct gone *items;     /* under mu */
    size_t n, cap;          /* under mu */
    bool stop;              /* under mu */
};

static void remove_round(const char *spool_dir, struct gone *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (g[i].fd >= 0)
            close(g[i].fd); /* frees the blocks of the unlinked file: the slow part */
    /* If the fsync fails the state files stay: queue_clean_state removes them at the next
     * start, once the queue files are surely gone. */
    if (queue_sync_removals(spool_dir) < 0) {
        log_err("cannot sync %s/queue after removals: %s", spool_dir, strerror(errno));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (queue_drop_state(spool_dir, g[i].qid) < 0)
            log_err("cannot remove the state of qid=%s: %s", g[i].qid, strerror(errno));
        notify_forget(spool_dir, g[i].qid);
    }
}

static void *removal_thread(void *arg)
{
    struct removal *r = arg;
    struct gone *mine = NULL;
    size_t mycap = 0;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (r->n == 0 && !r->stop)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->n == 0)
            break;
        /* Swap buffers: the loop fills the other one meanwhile. */
        struct gone *batch = r->items;
        size_t n = r->n, cap = r->cap;
        r->items = mine;
        r->cap = mycap;
        r->n = 0;
        pthread_mutex_unlock(&r->mu);
        remove_round(r->spool_dir, batch, n);
        mine = batch;
        mycap = cap;
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    free(mine);
    return NULL;
}

struct removal *removal_new(const char *spool_dir)
{
    struct removal *r = xcalloc(1, sizeof *r);
    r->spool_dir = spool_dir;
    int rc = loopthread_sync_init(&r->mu, &r->cv);
    if (rc == 0 && (rc = loopthread_start(&r->thread, removal_thread, r)) != 0)
        loopthread_sync_destroy(&r->mu, &r->cv);
    if (rc != 0) {
        free(r);
        errno = rc;
        return NULL;
    }
    return r;
}

void removal_add(struct removal *r, const char *qid, int fd)
{
    pthread_mutex_lock(&r->mu);
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->items = xrealloc(r->items, r->cap * sizeof *r->items);
    }
    str_copy(r->items[r->n].qid, QUEUE_ID_MAX, qid);
    r->items[r->n].fd = fd;
    r->n++;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void removal_free(struct removal *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL); /* it finishes what is pending first */
    free(r->items);
    loopthread_sync_destroy(&r->mu, &r->cv);
    free(r);
}
