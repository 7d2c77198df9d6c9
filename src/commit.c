/* commit.c - group commit of queue files on one helper thread per worker (see commit.h).
 *
 * Why a thread: fsync blocks, and a blocked event loop serves nobody. With the commit on a
 * helper, the loop keeps reading other sessions' DATA while the disk works, and everything
 * that finished meanwhile is committed together in the next round.
 *
 * Rounds are pipelined (queue_commit_round): one sync per round makes the new messages'
 * content durable and, in the same journal commit, the previous round's renames into
 * queue/; only then do those previous messages get their 250. So the disk sees one commit
 * per round however many messages share it, where fsync(file) + fsync(dir) per message cost
 * two each. The batch is "whatever arrived while the previous round was on disk": a lone
 * message is never delayed waiting for company (its second round follows at once).
 *
 * Threading: the loop owns sessions and callbacks; the thread only runs queue_commit_round
 * on writers it was given. Requests move between them on two mutex-protected lists; the
 * thread wakes the loop through an eventfd. */
#include "commit.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loopthread.h"
#include "util.h"

/* At most this many new messages per round (more wait for the next round). */
#define COMMIT_BATCH_MAX 256

struct commit_req {
    struct commit_req *next;
    struct queue_writer *w;      /* thread: the message; NULL once reported */
    int err;                     /* thread: the result */
    commit_done_fn *done;        /* loop only */
    void *arg;                   /* loop only */
    bool cancelled;              /* loop only */
};

struct req_list {
    struct commit_req *head, **tail;
};

struct committer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct req_list pending;     /* loop -> thread, under mu */
    struct req_list finished;    /* thread -> loop, under mu */
    bool stop;                   /* under mu */
    struct loopthread_wake wake; /* "finished is not empty" */
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

/* Move up to max requests from the head of src to the tail of dst; returns how many. */
static size_t list_take(struct req_list *dst, struct req_list *src, size_t max)
{
    size_t n = 0;
    while (src->head && n < max) {
        struct commit_req *r = src->head;
        src->head = r->next;
        list_push(dst, r);
        n++;
    }
    if (!src->head)
        src->tail = &src->head;
    return n;
}

/* One round: fresh (new messages) and pub (renamed last round, awaiting their sync).
 * Reported requests go to done; fresh ones that were renamed become the new pub. */
static void commit_round(struct req_list *fresh, struct req_list *pub, struct req_list *done)
{
    struct queue_writer *fw[COMMIT_BATCH_MAX], *pw[COMMIT_BATCH_MAX];
    int ferr[COMMIT_BATCH_MAX], perr[COMMIT_BATCH_MAX];
    size_t nf = 0, np = 0;
    for (struct commit_req *r = fresh->head; r; r = r->next)
        fw[nf++] = r->w;
    for (struct commit_req *r = pub->head; r; r = r->next)
        pw[np++] = r->w;
    queue_commit_round(fw, nf, ferr, pw, np, perr);
    size_t i = 0;
    for (struct commit_req *r = pub->head; r; r = r->next, i++) {
        r->w = NULL; /* freed by queue_commit_round */
        r->err = perr[i];
    }
    list_splice(done, pub);
    i = 0;
    for (struct commit_req *r = fresh->head, *next; r; r = next, i++) {
        next = r->next;
        if (ferr[i]) { /* failed before its rename: report now */
            r->w = NULL;
            r->err = ferr[i];
            list_push(done, r);
        } else {
            list_push(pub, r);
        }
    }
    list_init(fresh);
}

static void *commit_thread(void *arg)
{
    struct committer *c = arg;
    struct req_list fresh, pub, done;
    list_init(&fresh);
    list_init(&pub);
    list_init(&done);
    pthread_mutex_lock(&c->mu);
    for (;;) {
        /* Renamed messages never wait: their sync round runs at once, new ones or not. */
        while (!c->pending.head && !pub.head && !c->stop)
            pthread_cond_wait(&c->cv, &c->mu);
        if (!c->pending.head && !pub.head)
            break; /* stopping, and nothing left to commit */
        list_take(&fresh, &c->pending, COMMIT_BATCH_MAX);
        pthread_mutex_unlock(&c->mu);

        commit_round(&fresh, &pub, &done);

        pthread_mutex_lock(&c->mu);
        if (done.head) {
            list_splice(&c->finished, &done);
            loopthread_wake(&c->wake, "commit");
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* On the loop: report finished commits. */
static void on_finished(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct committer *c = arg;
    loopthread_wake_clear(fd, "commit");
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
    if (loopthread_wake_init(&c->wake, base, on_finished, c) < 0)
        goto fail;
    int rc = loopthread_sync_init(&c->mu, &c->cv);
    if (rc != 0) {
        errno = rc;
        goto fail;
    }
    rc = loopthread_start(&c->thread, commit_thread, c);
    if (rc != 0) {
        loopthread_sync_destroy(&c->mu, &c->cv);
        errno = rc;
        goto fail;
    }
    return c;
fail:
    loopthread_wake_free(&c->wake);
    free(c);
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
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL); /* it commits what is pending first */
    for (struct commit_req *r = c->finished.head, *next; r; r = next) {
        next = r->next;
        free(r);
    }
    loopthread_wake_free(&c->wake);
    loopthread_sync_destroy(&c->mu, &c->cv);
    free(c);
}
