/* qmgr.c - the queue manager process: finds committed messages, delivers each pending
 * recipient to its local Maildir, records per-recipient results in state/<qid>, retries
 * temporary failures with a doubling delay and removes a message once every recipient is
 * done (delivered or failed).
 *
 * Discovery: inotify on queue/ (IN_MOVED_TO: a commit is a rename) plus a rescan every 30 s
 * as a safety net; the rescan also picks up retries that became due. Startup scans everything,
 * which is the recovery after a crash. Work is a FIFO processed one message per event-loop
 * iteration, so SIGTERM is seen between messages and the current one is always finished.
 *
 * Delivery is at-least-once. A crash after maildir_deliver succeeded but before the state
 * file (or the queue removal) reached the disk delivers that recipient again on restart: the
 * window is between the fsync of new/ in maildir_deliver and the fsync of state/ (or queue/)
 * in queue_save_state (queue_remove). Losing mail would be worse than a duplicate.
 *
 * Remote delivery and bounces (RFC 3464 DSNs) come later: for now a non-local recipient
 * fails and the failure is only logged. */
#include "qmgr.h"

#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "log.h"
#include "maildir.h"
#include "queue.h"
#include "util.h"

#define QMGR_SCAN_INTERVAL 30     /* seconds between safety-net rescans */
#define QMGR_SCAN_NO_INOTIFY 5    /* ... when inotify is unavailable */

/* What the queue manager knows about one queue file. Every known message is in the hash
 * table; a message waiting to be processed is also on the work FIFO. */
struct qnode {
    char qid[QUEUE_ID_MAX];
    time_t due;             /* not worth loading before this (all its retries are later) */
    bool queued;            /* on the work FIFO */
    unsigned gen;           /* the last rescan that saw the file */
    struct qnode *hnext;    /* hash chain */
    struct qnode *wnext;    /* work FIFO */
};

struct qmgr {
    const struct config *cfg;
    struct event_base *base;
    struct event *ev_work, *ev_scan, *ev_wake, *ev_inotify, *ev_term, *ev_int;
    int inotify_fd;
    struct qnode **table;
    size_t tsize, count;
    struct qnode *whead, *wtail;
    unsigned gen;
    time_t wake_at;         /* when ev_wake fires, 0 if not armed */
    bool stopping;
};

/* ---- the table of known messages -------------------------------------------------------- */

static size_t hash_qid(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)h;
}

static struct qnode *node_find(struct qmgr *q, const char *qid)
{
    for (struct qnode *n = q->table[hash_qid(qid) & (q->tsize - 1)]; n; n = n->hnext)
        if (strcmp(n->qid, qid) == 0)
            return n;
    return NULL;
}

static void table_grow(struct qmgr *q)
{
    size_t size = q->tsize * 2;
    struct qnode **t = xcalloc(size, sizeof *t);
    for (size_t i = 0; i < q->tsize; i++) {
        struct qnode *n = q->table[i];
        while (n) {
            struct qnode *next = n->hnext;
            size_t h = hash_qid(n->qid) & (size - 1);
            n->hnext = t[h];
            t[h] = n;
            n = next;
        }
    }
    free(q->table);
    q->table = t;
    q->tsize = size;
}

static struct qnode *node_get(struct qmgr *q, const char *qid)
{
    struct qnode *n = node_find(q, qid);
    if (n)
        return n;
    if (q->count >= q->tsize - q->tsize / 4)
        table_grow(q);
    n = xcalloc(1, sizeof *n);
    str_copy(n->qid, sizeof n->qid, qid);
    n->gen = q->gen;
    size_t h = hash_qid(qid) & (q->tsize - 1);
    n->hnext = q->table[h];
    q->table[h] = n;
    q->count++;
    return n;
}

/* Forget a message (its file is gone). It must not be on the work FIFO. */
static void node_delete(struct qmgr *q, struct qnode *n)
{
    struct qnode **pp = &q->table[hash_qid(n->qid) & (q->tsize - 1)];
    while (*pp != n)
        pp = &(*pp)->hnext;
    *pp = n->hnext;
    q->count--;
    free(n);
}

/* ---- scheduling ------------------------------------------------------------------------- */

static void schedule_work(struct qmgr *q)
{
    /* A zero timeout rather than event_active: it goes through the poll, so signals and
     * inotify are noticed between two messages. */
    static const struct timeval now = {0, 0};
    if (!q->stopping && q->whead && !evtimer_pending(q->ev_work, NULL))
        evtimer_add(q->ev_work, &now);
}

static void enqueue(struct qmgr *q, const char *qid)
{
    struct qnode *n = node_get(q, qid);
    n->gen = q->gen;
    if (n->queued)
        return;
    n->queued = true;
    n->wnext = NULL;
    if (q->wtail)
        q->wtail->wnext = n;
    else
        q->whead = n;
    q->wtail = n;
    schedule_work(q);
}

/* Make sure a rescan happens by time `due`. */
static void arm_wake(struct qmgr *q, time_t due)
{
    if (q->wake_at != 0 && q->wake_at <= due)
        return;
    time_t now = time(NULL);
    struct timeval tv = {due > now ? due - now : 0, 0};
    q->wake_at = due;
    evtimer_add(q->ev_wake, &tv);
}

static void scan_one(const char *qid, void *arg)
{
    struct qmgr *q = arg;
    struct qnode *n = node_get(q, qid);
    n->gen = q->gen;
    if (n->queued)
        return;
    if (n->due > time(NULL)) {
        arm_wake(q, n->due);
        return;
    }
    enqueue(q, qid);
}

static void rescan(struct qmgr *q)
{
    q->gen++;
    if (queue_scan(q->cfg->spool_dir, scan_one, q) < 0) {
        log_err("cannot scan %s/queue: %s", q->cfg->spool_dir, strerror(errno));
        return;
    }
    /* Forget messages whose file disappeared (removed by hand). */
    for (size_t i = 0; i < q->tsize; i++) {
        struct qnode *n = q->table[i];
        while (n) {
            struct qnode *next = n->hnext;
            if (!n->queued && n->gen != q->gen)
                node_delete(q, n);
            n = next;
        }
    }
}

/* ---- delivery --------------------------------------------------------------------------- */

/* Delay before attempt number attempts+1: retry_min * 2^(attempts-1), at most retry_max. */
static time_t retry_delay(const struct config *cfg, int attempts)
{
    long long d = cfg->retry_min > 0 ? cfg->retry_min : 1;
    long long max = cfg->retry_max > d ? cfg->retry_max : d;
    for (int i = 1; i < attempts && d < max; i++)
        d *= 2;
    return (time_t)(d < max ? d : max);
}

/* Copy s for a header field, replacing what could break the header (CR, LF, controls). */
static void header_safe(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 1 < cap; s++)
        out[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    out[n] = '\0';
}

static void rcpt_result(struct envelope_rcpt *r, enum rcpt_status st, const char *reply)
{
    r->status = st;
    envelope_set(&r->last_reply, reply);
}

/* One delivery attempt for one recipient; updates r and logs one line. */
static void deliver_rcpt(struct qmgr *q, const struct envelope *env, struct envelope_rcpt *r,
                         int fd, off_t off, time_t now)
{
    const struct config *cfg = q->cfg;
    long long delay = now > env->arrival ? (long long)(now - env->arrival) : 0;
    char local[SMTP_LOCAL_MAX * 4 + 1], domain[SMTP_DOMAIN_MAX + 1], path[PATH_MAX];
    char reason[PATH_MAX + 256], err[PATH_MAX + 128];
    const char *at = strrchr(r->addr, '@');
    size_t llen = at ? (size_t)(at - r->addr) : 0;
    if (r->attempts < INT_MAX) /* the count comes from a file: never overflow it */
        r->attempts++;
    path[0] = '\0';
    if (!at || llen == 0 || llen >= sizeof local || !str_copy(domain, sizeof domain, at + 1) ||
        domain[0] == '\0') {
        rcpt_result(r, RCPT_FAILED, "5.1.3 malformed recipient address");
        goto failed;
    }
    memcpy(local, r->addr, llen);
    local[llen] = '\0';
    /* Mailboxes are configured lower-cased and matched case-insensitively: DEMO@ and demo@
     * are one mailbox, so they must map to one Maildir. */
    str_lower(local);
    str_lower(domain);
    if (!config_is_local_domain(cfg, domain)) {
        rcpt_result(r, RCPT_FAILED, "5.4.4 not a local domain; remote delivery is not implemented");
        goto failed;
    }
    if (!config_has_mailbox(cfg, local, domain)) {
        rcpt_result(r, RCPT_FAILED, "5.1.1 mailbox unknown");
        goto failed;
    }
    if (!config_maildir_path(cfg, local, domain, path, sizeof path)) {
        rcpt_result(r, RCPT_FAILED, "5.3.5 mailbox path is too long or unsafe");
        goto failed;
    }
    char hdr[2 * SMTP_PATH_MAX + 64], sender[SMTP_PATH_MAX + 1], rcpt[SMTP_PATH_MAX + 1];
    header_safe(sender, sizeof sender, env->sender);
    header_safe(rcpt, sizeof rcpt, r->addr);
    snprintf(hdr, sizeof hdr, "Return-Path: <%s>\r\nDelivered-To: %s\r\n", sender, rcpt);
    enum maildir_result res = maildir_deliver(path, cfg->hostname, hdr, fd, off, err, sizeof err);
    if (res == MAILDIR_OK) {
        rcpt_result(r, RCPT_DELIVERED, "2.0.0 delivered to maildir");
        r->next_try = 0;
        log_info("delivered qid=%s to=<%s> mailbox=%s delay=%lld attempts=%d status=sent",
                 env->qid, r->addr, path, delay, r->attempts);
        return;
    }
    if (res == MAILDIR_TEMPFAIL) {
        snprintf(reason, sizeof reason, "4.3.0 %s", err);
        rcpt_result(r, RCPT_PENDING, reason);
        r->next_try = now + retry_delay(cfg, r->attempts);
        log_info("deferred qid=%s to=<%s> mailbox=%s delay=%lld attempts=%d retry_in=%llds "
                 "status=deferred reason=%s",
                 env->qid, r->addr, path, delay, r->attempts, (long long)(r->next_try - now),
                 reason);
        return;
    }
    snprintf(reason, sizeof reason, "5.3.0 %s", err);
    rcpt_result(r, RCPT_FAILED, reason);
failed:
    /* Bounce messages come with outbound delivery; for now the failure is logged. */
    log_info("bounced qid=%s to=<%s> mailbox=%s delay=%lld attempts=%d status=bounced "
             "reason=%s",
             env->qid, r->addr, path[0] ? path : "-", delay, r->attempts, r->last_reply);
}

/* Attempt every due recipient of one message. Returns false when the message is gone (all
 * done and removed, or the file vanished); else *due is when it is next worth a look. */
static bool process_message(struct qmgr *q, const char *qid, time_t *due)
{
    const struct config *cfg = q->cfg;
    struct envelope env;
    int fd;
    off_t off;
    envelope_init(&env);
    if (queue_load(cfg->spool_dir, qid, &env, &fd, &off) < 0) {
        int e = errno;
        envelope_free(&env);
        if (e == ENOENT)
            return false;
        /* A damaged queue file is kept for a human to look at, and looked at again rarely. */
        log_err("cannot load qid=%s: %s", qid, strerror(e));
        *due = time(NULL) + (cfg->retry_max > 0 ? cfg->retry_max : 3600);
        return true;
    }
    time_t now = time(NULL), next = 0;
    bool expired = cfg->queue_lifetime > 0 && now - env.arrival > (time_t)cfg->queue_lifetime;
    bool changed = false;
    for (size_t i = 0; i < env.nrcpts; i++) {
        struct envelope_rcpt *r = &env.rcpts[i];
        if (r->status != RCPT_PENDING)
            continue;
        if (expired) {
            changed = true;
            rcpt_result(r, RCPT_FAILED, "4.4.7 queue lifetime exceeded");
            log_info("bounced qid=%s to=<%s> delay=%lld attempts=%d status=bounced reason=%s",
                     env.qid, r->addr, (long long)(now - env.arrival), r->attempts,
                     r->last_reply);
            continue;
        }
        if (r->next_try <= now) {
            deliver_rcpt(q, &env, r, fd, off, now);
            changed = true;
        }
        if (r->status == RCPT_PENDING && (next == 0 || r->next_try < next))
            next = r->next_try;
    }
    close(fd);
    bool keep = true;
    if (envelope_pending(&env) == 0) {
        if (queue_remove(cfg->spool_dir, qid) == 0) {
            log_info("removed qid=%s", qid);
            keep = false;
        } else {
            log_err("cannot remove qid=%s: %s", qid, strerror(errno));
            if (queue_save_state(cfg->spool_dir, &env) < 0)
                log_err("cannot save state qid=%s: %s", qid, strerror(errno));
            next = now + retry_delay(cfg, 1);
        }
    } else if (changed && queue_save_state(cfg->spool_dir, &env) < 0) {
        /* The results are lost with this process's memory: recipients delivered now are
         * delivered again next time (at-least-once). */
        log_err("cannot save state qid=%s: %s", qid, strerror(errno));
    }
    if (keep) {
        time_t expiry = env.arrival + (time_t)cfg->queue_lifetime + 1;
        if (cfg->queue_lifetime > 0 && (next == 0 || expiry < next))
            next = expiry;
        *due = next;
    }
    envelope_free(&env);
    return keep;
}

/* ---- event callbacks -------------------------------------------------------------------- */

static void work_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct qmgr *q = arg;
    struct qnode *n = q->whead;
    if (!n || q->stopping)
        return;
    q->whead = n->wnext;
    if (!q->whead)
        q->wtail = NULL;
    n->queued = false;
    n->wnext = NULL;
    time_t due = 0;
    if (process_message(q, n->qid, &due)) {
        n->due = due;
        if (due > 0)
            arm_wake(q, due);
    } else {
        node_delete(q, n);
    }
    schedule_work(q);
}

static void scan_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rescan(arg);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct qmgr *q = arg;
    q->wake_at = 0;
    rescan(q);
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct qmgr *q = arg;
    log_info("signal %d: stopping", (int)sig);
    q->stopping = true;
    event_base_loopbreak(q->base);
}

/* ---- setup ------------------------------------------------------------------------------ */

/* Accept only names a queue ID can have; inotify also reports other files. */
static bool name_is_qid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= QUEUE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')))
            return false;
    return true;
}

static void inotify_filtered_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct qmgr *q = arg;
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool overflow = false;
    for (;;) {
        ssize_t len = read(fd, buf, sizeof buf);
        if (len < 0 && errno == EINTR)
            continue;
        if (len <= 0)
            break; /* EAGAIN: drained */
        for (ssize_t i = 0; i + (ssize_t)sizeof(struct inotify_event) <= len;) {
            const struct inotify_event *ev = (const struct inotify_event *)(buf + i);
            if (ev->mask & IN_Q_OVERFLOW)
                overflow = true;
            else if (ev->len > 0 && memchr(ev->name, '\0', ev->len) && name_is_qid(ev->name))
                enqueue(q, ev->name);
            i += (ssize_t)(sizeof(struct inotify_event) + ev->len);
        }
    }
    if (overflow)
        rescan(q);
}

static int setup_inotify(struct qmgr *q)
{
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof dir, "%s/queue", q->cfg->spool_dir);
    if (n < 0 || (size_t)n >= sizeof dir)
        return -1;
    q->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (q->inotify_fd < 0)
        return -1;
    /* A commit is a rename (IN_MOVED_TO); the link() fallback shows as IN_CREATE. */
    if (inotify_add_watch(q->inotify_fd, dir, IN_MOVED_TO | IN_CREATE) < 0)
        return -1;
    q->ev_inotify = event_new(q->base, q->inotify_fd, EV_READ | EV_PERSIST, inotify_filtered_cb, q);
    if (!q->ev_inotify || event_add(q->ev_inotify, NULL) < 0)
        return -1;
    return 0;
}

static void qmgr_free(struct qmgr *q)
{
    struct event *evs[] = {q->ev_work, q->ev_scan, q->ev_wake, q->ev_inotify, q->ev_term, q->ev_int};
    for (size_t i = 0; i < ARRAY_LEN(evs); i++)
        if (evs[i])
            event_free(evs[i]);
    if (q->inotify_fd >= 0)
        close(q->inotify_fd);
    for (size_t i = 0; i < q->tsize; i++) {
        struct qnode *n = q->table[i];
        while (n) {
            struct qnode *next = n->hnext;
            free(n);
            n = next;
        }
    }
    free(q->table);
    if (q->base)
        event_base_free(q->base);
}

int qmgr_run(const struct config *cfg)
{
    struct qmgr q = {.cfg = cfg, .inotify_fd = -1, .tsize = 1024};
    log_set_ident("tern/qmgr");
    if (queue_init(cfg->spool_dir) < 0) {
        log_err("cannot create spool directories under %s: %s", cfg->spool_dir, strerror(errno));
        return 1;
    }
    int orphans = queue_clean_state(cfg->spool_dir);
    if (orphans > 0)
        log_info("removed %d state files without queue file", orphans);
    q.table = xcalloc(q.tsize, sizeof *q.table);
    q.base = event_base_new();
    if (!q.base) {
        log_err("cannot create event base");
        qmgr_free(&q);
        return 1;
    }
    q.ev_work = evtimer_new(q.base, work_cb, &q);
    q.ev_wake = evtimer_new(q.base, wake_cb, &q);
    q.ev_scan = event_new(q.base, -1, EV_PERSIST, scan_cb, &q);
    q.ev_term = evsignal_new(q.base, SIGTERM, stop_cb, &q);
    q.ev_int = evsignal_new(q.base, SIGINT, stop_cb, &q);
    if (!q.ev_work || !q.ev_wake || !q.ev_scan || !q.ev_term || !q.ev_int ||
        event_add(q.ev_term, NULL) < 0 || event_add(q.ev_int, NULL) < 0) {
        log_err("cannot set up events");
        qmgr_free(&q);
        return 1;
    }
    /* Watch before the first scan, so nothing committed in between is missed. */
    int interval = QMGR_SCAN_INTERVAL;
    if (setup_inotify(&q) < 0) {
        log_warn("inotify on %s/queue unavailable (%s); scanning every %d s", cfg->spool_dir,
                 strerror(errno), QMGR_SCAN_NO_INOTIFY);
        interval = QMGR_SCAN_NO_INOTIFY;
    }
    struct timeval tv = {interval, 0};
    if (event_add(q.ev_scan, &tv) < 0) {
        log_err("cannot set up events");
        qmgr_free(&q);
        return 1;
    }
    log_info("queue manager started spool=%s", cfg->spool_dir);
    rescan(&q); /* recovery: everything committed before we started */
    int rc = event_base_dispatch(q.base);
    qmgr_free(&q);
    if (rc < 0) {
        log_err("event loop failed");
        return 1;
    }
    log_info("queue manager stopped");
    return 0;
}
