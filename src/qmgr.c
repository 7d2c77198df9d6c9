/* qmgr.c - the queue manager process: finds committed messages, routes each pending
 * recipient (route.c) to local Maildir delivery (local.c) or to the SMTP client
 * (outbound.c), records per-recipient results in state/<qid>, retries temporary failures
 * with growing delays, gives up after queue_lifetime, and sends delivery status
 * notifications (notify.c, bounce.c): failures (RFC 3464), delay warnings and success
 * notices as the recipients' NOTIFY asks (RFC 3461 4.1; without NOTIFY: failures and delay
 * warnings), never about a message from "<>".
 *
 * Discovery: inotify on queue/ (IN_MOVED_TO: a commit is a rename) plus a rescan every 30 s
 * as a safety net; the rescan also picks up retries that became due. Startup scans everything,
 * which is the recovery after a crash. Work is a FIFO; one message is started per event-loop
 * iteration. Local recipients are delivered at once; remote ones become jobs (one per
 * destination) that run concurrently on the same event loop; the message is finished (state
 * saved, DSNs queued, or removed) when its last job reports. At most QMGR_MAX_INFLIGHT
 * messages are in progress (each holds its queue file open).
 *
 * Delivery is at-least-once. A crash after a delivery succeeded (Maildir fsync'd, or the
 * remote server's 250) but before the state file reached the disk delivers that recipient
 * again on restart; a crash between queueing a DSN and saving the state may send the DSN
 * twice. Losing mail or a bounce would be worse than a duplicate.
 *
 * SIGTERM: no new work; deliveries in progress get shutdown_grace seconds, then their
 * connections are closed and their undecided recipients stay as they were (retried after a
 * restart). */
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aliases.h"
#include "bounce.h"
#include "control.h"
#include "dns.h"
#include "envelope.h"
#include "local.h"
#include "log.h"
#include "notify.h"
#include "odmr.h"
#include "outbound.h"
#include "pipe.h"
#include "queue.h"
#include "pickup.h"
#include "removal.h"
#include "route.h"
#include "smtp_reply.h"
#include "util.h"

#define QMGR_MAX_INFLIGHT 256     /* messages with deliveries in progress */
#define QMGR_SCAN_INTERVAL 30     /* seconds between safety-net rescans */
#define QMGR_SCAN_NO_INOTIFY 5    /* ... when inotify is unavailable */

/* What the queue manager knows about one queue file. Every known message is in the hash
 * table; a message waiting to be processed is also on the work FIFO. */
struct qnode {
    char qid[QUEUE_ID_MAX];
    time_t due;             /* not worth loading before this (all its retries are later) */
    bool queued;            /* on the work FIFO */
    bool busy;              /* deliveries in progress: not to be started again */
    unsigned gen;           /* the last rescan that saw the file */
    enum control_after after; /* tern queue delete/hold asked during a pass: do it after */
    struct qnode *hnext;    /* hash chain */
    struct qnode *wnext;    /* work FIFO */
};

struct qmgr {
    const struct config *cfg;
    struct event_base *base;
    struct event *ev_work, *ev_scan, *ev_wake, *ev_inotify, *ev_term, *ev_int, *ev_grace;
    struct dns_resolver *dns;
    struct outbound *ob;
    struct control_server *control; /* tern queue (control.c) */
    size_t inflight;        /* messages with deliveries in progress */
    int inotify_fd;
    struct qnode **table;
    size_t tsize, count;
    struct qnode *whead, *wtail;
    unsigned gen;
    time_t wake_at;         /* when ev_wake fires, 0 if not armed */
    bool stopping;
    unsigned long atrn_seq; /* names the outbound destination of each ATRN session */
    struct removal *removal; /* finishes removals off the loop; NULL: done inline */
    struct pickup *pickup;  /* submits the maildrop files (pickup.c); NULL: not running */
};

/* An ATRN pass over a message: deliver only the recipients held for these domains, over the
 * customer's connection (outbound destination key). */
struct atrn_pass {
    const char *domains;    /* comma-separated, lower-case */
    char key[32];
};

/* Held for On-Demand Mail Relay (odmr_domain): never delivered by a normal pass, only over an
 * ATRN session; the queue lifetime still applies. */
static bool rcpt_held(const struct config *cfg, const char *addr)
{
    return config_is_odmr_domain(cfg, route_addr_domain(addr));
}

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
    if (!q->stopping && q->whead && q->inflight < QMGR_MAX_INFLIGHT &&
        !evtimer_pending(q->ev_work, NULL))
        evtimer_add(q->ev_work, &now);
}

static void enqueue(struct qmgr *q, const char *qid)
{
    struct qnode *n = node_get(q, qid);
    n->gen = q->gen;
    if (n->queued || n->busy)
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
    if (n->queued || n->busy)
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
            if (!n->queued && !n->busy && n->gen != q->gen)
                node_delete(q, n);
            n = next;
        }
    }
}

/* ---- one delivery pass over a message ------------------------------------------------- */

/* What this pass learned about a recipient, for the log and the DSNs. */
struct rnote {
    bool tried;                   /* attempted (or decided) in this pass */
    enum rcpt_status before;
    bool remote;                  /* the result is a remote server's reply */
    bool local;                   /* delivered locally */
    bool peer_dsn;                /* the accepting server does DSN itself (RFC 3461 4.1) */
    char esc[16];
    char mta[ROUTE_NAME_MAX];
};

struct qmsg {
    struct qmgr *q;
    struct qnode *node;
    struct envelope env;
    int fd;
    off_t off, size;
    time_t now;
    struct rnote *notes;
    struct ob_msg obm;
    struct ob_job *jobs;
    size_t njobs;
    struct ob_rcpt *orcpts;
    size_t pending;               /* jobs not reported yet */
    bool changed;
};

/* Delay before attempt number attempts+1: the configured schedule (its last entry repeats),
 * or retry_min * 2^(attempts-1) up to retry_max. */
static time_t retry_delay(const struct config *cfg, int attempts)
{
    if (cfg->nretry_schedule > 0) {
        size_t i = attempts > 0 ? (size_t)attempts - 1 : 0;
        if (i >= cfg->nretry_schedule)
            i = cfg->nretry_schedule - 1;
        return cfg->retry_schedule[i] > 0 ? cfg->retry_schedule[i] : 1;
    }
    long long d = cfg->retry_min > 0 ? cfg->retry_min : 1;
    long long max = cfg->retry_max > d ? cfg->retry_max : d;
    for (int i = 1; i < attempts && d < max; i++)
        d *= 2;
    return (time_t)(d < max ? d : max);
}

/* The enhanced status code in a stored result: "5.1.1 text", or "550 5.1.1 text". */
static void esc_of(const char *reply, char *out, size_t cap, const char *fallback)
{
    const char *p = reply;
    if (p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' &&
        p[2] <= '9' && (p[3] == ' ' || p[3] == '\0'))
        p += p[3] ? 4 : 3;
    int c, s, d;
    size_t n = smtp_esc_parse(p, &c, &s, &d);
    if (n > 0 && n < cap) {
        memcpy(out, p, n);
        out[n] = '\0';
    } else {
        str_copy(out, cap, fallback);
    }
}

static bool is_smtp_reply(const char *s)
{
    return s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' &&
           s[2] <= '9' && (s[3] == ' ' || s[3] == '\0');
}

static long long age(const struct qmsg *m)
{
    return m->now > m->env.arrival ? (long long)(m->now - m->env.arrival) : 0;
}

static void log_result(const struct qmsg *m, const struct envelope_rcpt *r, const char *relay,
                       const char *tls, const char *esc)
{
    const char *status = r->status == RCPT_DELIVERED ? "sent"
                         : r->status == RCPT_FAILED  ? "bounced"
                                                     : "deferred";
    const char *event = r->status == RCPT_DELIVERED ? "delivered"
                        : r->status == RCPT_FAILED  ? "bounced"
                                                    : "deferred";
    /* tls= only for a remote server: "TLSv1.3/CIPHER/verified", or "none" in clear */
    char tlsf[OB_TLS_MAX + 8] = "";
    if (tls)
        snprintf(tlsf, sizeof tlsf, " tls=%s", tls);
    if (r->status == RCPT_PENDING)
        log_info("%s qid=%s to=<%s> relay=%s delay=%lld attempts=%d dsn=%s retry_in=%llds "
                 "status=%s%s reply=%s",
                 event, m->env.qid, r->addr, relay, age(m), r->attempts, esc,
                 (long long)(r->next_try - m->now), status, tlsf, r->last_reply);
    else
        log_info("%s qid=%s to=<%s> relay=%s delay=%lld attempts=%d dsn=%s status=%s%s reply=%s",
                 event, m->env.qid, r->addr, relay, age(m), r->attempts, esc, status, tlsf,
                 r->last_reply);
}

/* Record a result: the envelope's recipient state, the note for DSNs, one log line. tls is
 * the remote connection's TLS, NULL for local deliveries. */
static void set_result_tls(struct qmsg *m, size_t i, enum rcpt_status st, const char *reply,
                           const char *relay, const char *tls)
{
    struct envelope_rcpt *r = &m->env.rcpts[i];
    struct rnote *note = &m->notes[i];
    r->status = st;
    envelope_set(&r->last_reply, reply);
    r->next_try = st == RCPT_PENDING ? m->now + retry_delay(m->q->cfg, r->attempts) : 0;
    if (!note->esc[0])
        esc_of(reply, note->esc, sizeof note->esc,
               st == RCPT_DELIVERED ? "2.0.0" : st == RCPT_PENDING ? "4.0.0" : "5.0.0");
    note->tried = true;
    m->changed = true;
    log_result(m, r, relay, tls, note->esc);
}

static void set_result(struct qmsg *m, size_t i, enum rcpt_status st, const char *reply,
                       const char *relay)
{
    set_result_tls(m, i, st, reply, relay, NULL);
}

static void finish_message(struct qmsg *m);

static void job_done(struct ob_job *job, void *arg)
{
    struct qmsg *m = arg;
    for (size_t k = 0; k < job->nrcpts; k++) {
        struct ob_rcpt *o = &job->rcpts[k];
        size_t i = (size_t)o->tag;
        struct envelope_rcpt *r = &m->env.rcpts[i];
        struct rnote *note = &m->notes[i];
        if (o->status == OB_PENDING) {
            /* Not attempted after all (stopping): as if this pass never happened. */
            if (r->attempts > 0)
                r->attempts--;
            continue;
        }
        note->remote = o->remote;
        note->peer_dsn = o->peer_dsn;
        str_copy(note->esc, sizeof note->esc, o->esc);
        str_copy(note->mta, sizeof note->mta, o->mta);
        enum rcpt_status st = o->status == OB_SENT       ? RCPT_DELIVERED
                              : o->status == OB_DEFERRED ? RCPT_PENDING
                                                         : RCPT_FAILED;
        set_result_tls(m, i, st, o->reply, o->relay, o->tls);
    }
    if (--m->pending == 0)
        finish_message(m);
}

static bool wants(unsigned notify, unsigned bit)
{
    if (notify & NOTIFY_NEVER)
        return false;
    /* RFC 3461 4.1: without NOTIFY, failures are reported; tern adds delay warnings. */
    if (notify == 0)
        return bit == NOTIFY_FAILURE || bit == NOTIFY_DELAY;
    return (notify & bit) != 0;
}

/* Fill a DSN recipient from the envelope state and this pass's note. text is scratch space
 * for a composed reason. */
static void dsn_rcpt_of(const struct qmsg *m, size_t i, enum dsn_action action,
                        struct dsn_rcpt *d, char *text, size_t textcap)
{
    const struct envelope_rcpt *r = &m->env.rcpts[i];
    const struct rnote *note = &m->notes[i];
    memset(d, 0, sizeof *d);
    d->addr = r->addr;
    d->orcpt = r->orcpt;
    d->action = action;
    d->status = note->esc;
    d->last_attempt = note->tried ? m->now : 0;
    const char *reply = r->last_reply ? r->last_reply : "";
    if (note->tried && note->remote) {
        d->remote_mta = note->mta;
        d->diagnostic = reply;
    } else if (is_smtp_reply(reply)) {
        d->diagnostic = reply; /* a server's words from an earlier attempt */
    } else {
        /* our own reason: drop the status code in front, it is in Status: */
        const char *t = reply;
        if (note->esc[0] && strncmp(t, note->esc, strlen(note->esc)) == 0)
            t += strlen(note->esc);
        while (*t == ' ')
            t++;
        str_copy(text, textcap, t);
        d->reason = text;
    }
}

/* Queue one DSN; 0 on success, -1 (logged) when it could not be queued (disk full...).
 * double_to: a double bounce to this address instead of a report to the sender. */
static int send_dsn(struct qmsg *m, enum dsn_action kind, const size_t *idx,
                    const enum dsn_action *actions, size_t n, const char *double_to)
{
    const struct config *cfg = m->q->cfg;
    struct dsn_rcpt *dr = xcalloc(n, sizeof *dr);
    char (*texts)[OB_REPLY_MAX + 64] = xcalloc(n, sizeof *texts);
    for (size_t k = 0; k < n; k++)
        dsn_rcpt_of(m, idx[k], actions[k], &dr[k], texts[k], sizeof texts[k]);
    char dsn_qid[QUEUE_ID_MAX] = "";
    time_t until = m->env.arrival + (cfg->queue_lifetime > 0 ? cfg->queue_lifetime : 5 * 86400);
    const char *what = kind == DSN_ACTION_FAILED    ? "failure"
                       : kind == DSN_ACTION_DELAYED ? "delay"
                                                    : "success";
    int rc = double_to ? notify_queue_double_bounce(cfg, &m->env, m->fd, m->off, m->size, dr,
                                                    n, m->now, double_to, dsn_qid)
                       : notify_queue(cfg, &m->env, m->fd, m->off, m->size, kind, dr, n,
                                      m->now, until, dsn_qid);
    if (double_to)
        what = "double-bounce";
    const char *to = double_to ? double_to : m->env.sender;
    if (rc == 0)
        log_info("dsn qid=%s kind=%s to=<%s> nrcpt=%zu dsn_qid=%s", m->env.qid, what, to, n,
                 dsn_qid);
    else
        log_err("cannot queue the %s DSN for qid=%s to=<%s>: %s", what, m->env.qid, to,
                strerror(errno));
    free(dr);
    free(texts);
    return rc < 0 ? -1 : 0;
}

/* Where the queue lifetime and the delay warning count from: the arrival, or the release
 * time of a message held for future release (RFC 4865), which was not waiting before. */
static time_t queue_start(const struct envelope *env)
{
    return env->hold_until > env->arrival ? env->hold_until : env->arrival;
}

/* When is the message next worth a look: the earliest retry, the lifetime's end, and the
 * delay warning if one is still to come. */
static time_t next_due(const struct qmsg *m, bool warn_pending)
{
    const struct config *cfg = m->q->cfg;
    time_t next = 0;
    for (size_t i = 0; i < m->env.nrcpts; i++) {
        const struct envelope_rcpt *r = &m->env.rcpts[i];
        if (r->status == RCPT_PENDING && !rcpt_held(cfg, r->addr) &&
            (next == 0 || r->next_try < next))
            next = r->next_try;
    }
    if (cfg->queue_lifetime > 0) {
        time_t expiry = queue_start(&m->env) + (time_t)cfg->queue_lifetime + 1;
        /* Past expiry, only recipients kept pending for their bounce remain: their retry
         * time rules, or a full disk would have us loop. */
        if (expiry > m->now && (next == 0 || expiry < next))
            next = expiry;
    }
    if (warn_pending) {
        time_t w = queue_start(&m->env) + (time_t)cfg->delay_warning;
        if (next == 0 || w < next)
            next = w;
    }
    return next;
}

/* All results are in: DSNs, then the state (or removal), then schedule the next look. */
/* Remove a finished message: unlinked here, so no rescan finds it again; closing its file
 * (which frees the blocks), the directory fsync and the state file are the removal
 * helper's (removal.h). Takes over fd. */
static int remove_message(struct qmgr *q, const char *qid, int fd)
{
    if (!q->removal) { /* no helper: the one-at-a-time way */
        close(fd);
        if (queue_remove(q->cfg->spool_dir, qid) < 0)
            return -1;
        notify_forget(q->cfg->spool_dir, qid);
        return 0;
    }
    if (queue_unlink(q->cfg->spool_dir, qid) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    removal_add(q->removal, qid, fd);
    return 0;
}

static void finish_message(struct qmsg *m)
{
    struct qmgr *q = m->q;
    const struct config *cfg = q->cfg;
    struct envelope *env = &m->env;
    size_t n = env->nrcpts;
    size_t *idx = xcalloc(n ? n : 1, sizeof *idx);
    enum dsn_action *act = xcalloc(n ? n : 1, sizeof *act);
    bool can_notify = env->sender && env->sender[0] != '\0';

    /* Failures (RFC 3464) and successes (RFC 3461 4.1) of this pass. */
    size_t k = 0;
    for (size_t i = 0; i < n && can_notify; i++) {
        if (m->notes[i].before == RCPT_PENDING && env->rcpts[i].status == RCPT_FAILED &&
            wants(env->rcpts[i].notify, NOTIFY_FAILURE)) {
            idx[k] = i;
            act[k++] = DSN_ACTION_FAILED;
        }
    }
    /* A message from "<>" that failed is never bounced (RFC 5321 6.1): the postmaster hears
     * of it instead (the double bounce, notify.h), unless it was such a notice itself. */
    char pm[SMTP_PATH_MAX + 16];
    const char *double_to = NULL;
    for (size_t i = 0; i < n && !can_notify; i++) {
        if (m->notes[i].before != RCPT_PENDING || env->rcpts[i].status != RCPT_FAILED)
            continue;
        if (k == 0) {
            if (!notify_is_double_bounce(env))
                double_to = notify_double_bounce_rcpt(cfg, pm, sizeof pm);
            if (!double_to) {
                log_info("double-bounce qid=%s dropped: %s", env->qid,
                         notify_is_double_bounce(env)
                             ? "a double-bounce notice is never reported again"
                             : "no double_bounce_recipient");
                break;
            }
        }
        idx[k] = i;
        act[k++] = DSN_ACTION_FAILED;
    }
    if (k > 0 && send_dsn(m, DSN_ACTION_FAILED, idx, act, k, double_to) < 0) {
        /* Recording the failure now would lose the bounce (RFC 5321 6.1: the sender MUST
         * be told): keep the recipients pending, so a later pass fails them again and
         * queues the bounce once the spool has room. */
        for (size_t j = 0; j < k; j++) {
            struct envelope_rcpt *r = &env->rcpts[idx[j]];
            r->status = RCPT_PENDING;
            r->next_try = m->now + retry_delay(cfg, r->attempts);
        }
    }
    k = 0;
    for (size_t i = 0; i < n && can_notify; i++) {
        const struct rnote *note = &m->notes[i];
        if (note->before != RCPT_PENDING || env->rcpts[i].status != RCPT_DELIVERED ||
            !wants(env->rcpts[i].notify, NOTIFY_SUCCESS))
            continue;
        if (note->remote && note->peer_dsn)
            continue; /* the next server took NOTIFY over and reports itself */
        idx[k] = i;
        act[k++] = note->local ? DSN_ACTION_DELIVERED : DSN_ACTION_RELAYED;
    }
    if (k > 0)
        send_dsn(m, DSN_ACTION_DELIVERED, idx, act, k, NULL);

    /* The delay warning: once, when the message is older than delay_warning. */
    bool warn_pending = false;
    if (can_notify && cfg->delay_warning > 0 && envelope_pending(env) > 0 &&
        !notify_delay_sent(cfg->spool_dir, env->qid)) {
        k = 0;
        for (size_t i = 0; i < n; i++) {
            if (env->rcpts[i].status == RCPT_PENDING && !rcpt_held(cfg, env->rcpts[i].addr) &&
                wants(env->rcpts[i].notify, NOTIFY_DELAY)) {
                idx[k] = i;
                act[k++] = DSN_ACTION_DELAYED;
            }
        }
        if (k > 0 && m->now >= queue_start(env) + (time_t)cfg->delay_warning) {
            for (size_t j = 0; j < k; j++)
                if (!m->notes[idx[j]].esc[0])
                    esc_of(env->rcpts[idx[j]].last_reply ? env->rcpts[idx[j]].last_reply : "",
                           m->notes[idx[j]].esc, sizeof m->notes[idx[j]].esc, "4.0.0");
            if (send_dsn(m, DSN_ACTION_DELAYED, idx, act, k, NULL) == 0)
                notify_mark_delay(cfg->spool_dir, env->qid);
        } else if (k > 0) {
            warn_pending = true;
        }
    }
    free(idx);
    free(act);

    struct qnode *node = m->node;
    bool keep = true;
    time_t due = 0;
    if (envelope_pending(env) == 0) {
        int fd = m->fd;
        m->fd = -1;
        if (remove_message(q, env->qid, fd) == 0) {
            log_info("removed qid=%s", env->qid);
            keep = false;
        } else {
            log_err("cannot remove qid=%s: %s", env->qid, strerror(errno));
            if (queue_save_state(cfg->spool_dir, env) < 0)
                log_err("cannot save state qid=%s: %s", env->qid, strerror(errno));
            due = m->now + retry_delay(cfg, 1);
        }
    } else {
        if (m->changed && queue_save_state(cfg->spool_dir, env) < 0)
            /* The results are lost with this process's memory: recipients delivered now
             * are delivered again next time (at-least-once). */
            log_err("cannot save state qid=%s: %s", env->qid, strerror(errno));
        due = next_due(m, warn_pending);
    }
    if (keep && node->after != CONTROL_AFTER_NONE &&
        control_after_pass(cfg, env->qid, node->after) == 0)
        keep = false;
    node->after = CONTROL_AFTER_NONE;
    if (m->fd >= 0)
        close(m->fd);
    node->busy = false;
    if (keep) {
        node->due = due;
        if (due > 0)
            arm_wake(q, due);
    } else {
        node_delete(q, node);
    }
    envelope_free(env);
    free(m->notes);
    free(m->jobs);
    free(m->orcpts);
    free(m);
    q->inflight--;
    if (q->stopping && q->inflight == 0)
        event_base_loopbreak(q->base);
    schedule_work(q);
}

/* The lifetime is over: every pending recipient fails (RFC 5321 4.5.4.1: give up after
 * 4-5 days), with the last error in the report. */
static void expire_rcpt(struct qmsg *m, size_t i)
{
    struct envelope_rcpt *r = &m->env.rcpts[i];
    char reason[OB_REPLY_MAX + 80];
    snprintf(reason, sizeof reason, "4.4.7 queue lifetime exceeded%s%s",
             r->last_reply && r->last_reply[0] ? "; last error: " : "",
             r->last_reply ? r->last_reply : "");
    str_copy(m->notes[i].esc, sizeof m->notes[i].esc, "4.4.7");
    set_result(m, i, RCPT_FAILED, reason, "none");
}

/* Future release (RFC 4865, X-DELIVERY-TIME): a message held until a later time is not
 * delivered before then; the wake-up timer brings it back at that time. */
static bool release_later(struct qmgr *q, struct qnode *node, struct envelope *env, int fd)
{
    time_t now = time(NULL);
    if (env->hold_until <= now)
        return false;
    log_debug("held qid=%s release_in=%llds", env->qid, (long long)(env->hold_until - now));
    node->due = env->hold_until;
    arm_wake(q, node->due);
    close(fd);
    envelope_free(env);
    return true;
}

/* Start a pass over one message: local recipients now, remote ones as jobs. An ATRN pass
 * (atrn not NULL) takes only the recipients held for its domains, due or not, and returns
 * whether it submitted any. */
static bool start_message(struct qmgr *q, struct qnode *node, const struct atrn_pass *atrn)
{
    const struct config *cfg = q->cfg;
    struct qmsg *m = xcalloc(1, sizeof *m);
    m->q = q;
    m->node = node;
    envelope_init(&m->env);
    if (queue_load(cfg->spool_dir, node->qid, &m->env, &m->fd, &m->off) < 0) {
        int e = errno;
        envelope_free(&m->env);
        free(m);
        if (e == ENOENT) {
            notify_forget(cfg->spool_dir, node->qid);
            node_delete(q, node);
            return false;
        }
        /* A damaged queue file is kept for a human to look at, and looked at again rarely. */
        log_err("cannot load qid=%s: %s", node->qid, strerror(e));
        node->due = time(NULL) + (cfg->retry_max > 0 ? cfg->retry_max : 3600);
        arm_wake(q, node->due);
        return false;
    }
    if (release_later(q, node, &m->env, m->fd)) {
        free(m);
        return false;
    }
    struct stat st;
    m->size = fstat(m->fd, &st) == 0 && st.st_size > m->off ? st.st_size - m->off : 0;
    m->now = time(NULL);
    struct envelope *env = &m->env;
    m->notes = xcalloc(env->nrcpts ? env->nrcpts : 1, sizeof *m->notes);
    m->orcpts = xcalloc(env->nrcpts ? env->nrcpts : 1, sizeof *m->orcpts);
    struct route *routes = xcalloc(env->nrcpts ? env->nrcpts : 1, sizeof *routes);
    bool *remote = xcalloc(env->nrcpts ? env->nrcpts : 1, sizeof *remote);
    node->busy = true;
    q->inflight++;

    bool expired = cfg->queue_lifetime > 0 &&
                   m->now - queue_start(env) > (time_t)cfg->queue_lifetime;
    size_t nremote = 0;
    for (size_t i = 0; i < env->nrcpts; i++) {
        struct envelope_rcpt *r = &env->rcpts[i];
        m->notes[i].before = r->status;
        if (r->status != RCPT_PENDING)
            continue;
        if (expired) {
            expire_rcpt(m, i);
            continue;
        }
        bool held = rcpt_held(cfg, r->addr);
        if (atrn ? !held || !odmr_list_has(atrn->domains, route_addr_domain(r->addr)) : held)
            continue;
        if (r->next_try > m->now && !atrn) /* the customer is online now: no waiting */
            continue;
        if (r->attempts < INT_MAX) /* the count comes from a file: never overflow it */
            r->attempts++;
        char err[OB_REPLY_MAX];
        if (r->addr[0] == '|' && aliases_pipe_allowed(cfg->aliases, r->addr + 1)) {
            /* a command of the aliases file (docs/aliases.md); checked again here, so only
             * the commands the administrator configured ever run */
            char reply[OB_REPLY_MAX];
            enum rcpt_status rs = pipe_deliver(env, r, r->addr + 1, m->fd, m->off, reply,
                                               sizeof reply);
            m->notes[i].local = true;
            set_result(m, i, rs, reply, "pipe");
            continue;
        }
        if (r->addr[0] == '|' && !strchr(r->addr, '@')) {
            set_result(m, i, RCPT_FAILED, "5.7.1 delivery to this command is no longer allowed "
                       "(allow_pipe_aliases, aliases file)", "none");
            continue;
        }
        const char *domain = route_addr_domain(r->addr);
        if (route_lookup(cfg, domain, &routes[i], err, sizeof err) < 0) {
            set_result(m, i, RCPT_FAILED, err, "none");
            continue;
        }
        if (atrn) /* over this customer's connection (outbound_attach_fd) */
            str_copy(routes[i].key, sizeof routes[i].key, atrn->key);
        if (routes[i].kind == ROUTE_LOCAL) {
            char reply[OB_REPLY_MAX + PATH_MAX], mailbox[PATH_MAX], relay[PATH_MAX + 16];
            enum rcpt_status rs = local_deliver(cfg, env, r, m->fd, m->off, reply,
                                                sizeof reply, mailbox, sizeof mailbox);
            m->notes[i].local = true;
            snprintf(relay, sizeof relay, "local:%s", mailbox);
            set_result(m, i, rs, reply, relay);
            continue;
        }
        remote[i] = true;
        nremote++;
    }

    if (nremote > 0) {
        m->obm = (struct ob_msg){
            .qid = env->qid,
            .sender = env->sender,
            .envid = env->envid ? env->envid : "",
            .body = env->body,
            .smtputf8 = env->smtputf8,
            .ret = env->ret,
            .fd = m->fd,
            .offset = m->off,
            .size = m->size,
        };
        /* One job per destination: its recipients side by side in orcpts. */
        m->jobs = xcalloc(nremote, sizeof *m->jobs);
        size_t used = 0;
        for (size_t i = 0; i < env->nrcpts; i++) {
            if (!remote[i])
                continue;
            struct ob_job *job = &m->jobs[m->njobs++];
            job->route = routes[i];
            job->msg = &m->obm;
            job->rcpts = &m->orcpts[used];
            job->done = job_done;
            job->arg = m;
            for (size_t j = i; j < env->nrcpts; j++) {
                if (!remote[j] || strcmp(routes[j].key, routes[i].key) != 0)
                    continue;
                remote[j] = false;
                struct ob_rcpt *o = &m->orcpts[used++];
                o->addr = env->rcpts[j].addr;
                o->notify = env->rcpts[j].notify;
                o->orcpt = env->rcpts[j].orcpt ? env->rcpts[j].orcpt : "";
                o->tag = (int)j;
                job->nrcpts++;
            }
        }
        m->pending = m->njobs;
        for (size_t j = 0; j < m->njobs; j++)
            outbound_submit(q->ob, &m->jobs[j]);
    }
    free(routes);
    free(remote);
    bool submitted = m->njobs > 0;
    if (m->njobs == 0)
        finish_message(m);
    return submitted;
}

/* An ATRN request from a worker (control socket, odmr_chan.h): one pass over every idle message with mail
 * held for the domains, all of it over fd. Messages in a delivery pass right now are left
 * for the next ATRN. At most QMGR_MAX_INFLIGHT messages per session: the customer asks
 * again for the rest. */
static long atrn_request(void *arg, const char *domains, int fd, char *err, size_t errlen)
{
    struct qmgr *q = arg;
    for (const char *p = domains; *p;) {
        size_t n = strcspn(p, ",");
        char d[ROUTE_NAME_MAX];
        if (n == 0 || n >= sizeof d) {
            close(fd);
            errorf(err, errlen, "bad domain list");
            return -1;
        }
        memcpy(d, p, n);
        d[n] = '\0';
        if (!config_is_odmr_domain(q->cfg, d)) {
            close(fd);
            errorf(err, errlen, "%s is not held for ODMR", d);
            return -1;
        }
        p += n + (p[n] == ',');
    }
    if (q->stopping) {
        close(fd);
        errorf(err, errlen, "the queue manager is stopping");
        return -1;
    }
    struct atrn_pass pass = {.domains = domains};
    snprintf(pass.key, sizeof pass.key, "atrn:%lu", ++q->atrn_seq);
    rescan(q); /* messages committed a moment ago count too */
    /* start_message may delete its own node (and only that one): collect first. */
    struct qnode **idle = xcalloc(q->count ? q->count : 1, sizeof *idle);
    size_t nidle = 0;
    for (size_t i = 0; i < q->tsize; i++)
        for (struct qnode *n = q->table[i]; n; n = n->hnext)
            if (!n->busy && nidle < q->count)
                idle[nidle++] = n;
    long messages = 0;
    for (size_t i = 0; i < nidle && messages < QMGR_MAX_INFLIGHT; i++)
        if (start_message(q, idle[i], &pass))
            messages++;
    free(idle);
    outbound_attach_fd(q->ob, pass.key, fd); /* closes fd when there is nothing */
    log_info("atrn domains=%s messages=%ld session=%s", domains, messages, pass.key);
    return messages;
}

/* ---- event callbacks -------------------------------------------------------------------- */

static void work_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct qmgr *q = arg;
    struct qnode *n = q->whead;
    if (!n || q->stopping || q->inflight >= QMGR_MAX_INFLIGHT)
        return;
    q->whead = n->wnext;
    if (!q->whead)
        q->wtail = NULL;
    n->queued = false;
    n->wnext = NULL;
    if (!n->busy) /* busy: an ATRN pass has it; its end schedules the next look */
        start_message(q, n, NULL);
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
    if (q->stopping)
        return;
    q->stopping = true;
    if (q->inflight == 0) {
        log_info("signal %d: stopping", (int)sig);
        event_base_loopbreak(q->base);
        return;
    }
    /* Deliveries in progress get a moment to finish. */
    int grace = q->cfg->shutdown_grace > 0 ? q->cfg->shutdown_grace : 0;
    log_info("signal %d: stopping after %zu message(s) in delivery (at most %d s)", (int)sig,
             q->inflight, grace);
    struct timeval tv = {grace, 0};
    evtimer_add(q->ev_grace, &tv);
}

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct qmgr *q = arg;
    log_info("stopping: closing %zu connection(s) with deliveries in progress",
             outbound_connections(q->ob));
    outbound_abort_all(q->ob); /* every job reports; the messages finish */
    event_base_loopbreak(q->base);
}

/* ---- the control socket's hooks (control.c does the work) ------------------------------ */

static bool ctl_busy(void *arg, const char *qid)
{
    struct qnode *n = node_find(arg, qid);
    return n && n->busy;
}

static void ctl_retry_now(void *arg, const char *qid)
{
    struct qmgr *q = arg;
    node_get(q, qid)->due = 0;
    enqueue(q, qid);
}

static void ctl_forget(void *arg, const char *qid)
{
    struct qmgr *q = arg;
    struct qnode *n = node_find(q, qid);
    /* One on the work FIFO is dropped when start_message finds its file gone. */
    if (n && !n->busy && !n->queued)
        node_delete(q, n);
}

static void ctl_after_pass(void *arg, const char *qid, enum control_after what)
{
    struct qnode *n = node_find(arg, qid);
    if (n)
        n->after = what;
}

static void ctl_rescan(void *arg)
{
    struct qmgr *q = arg;
    for (size_t i = 0; i < q->tsize; i++)
        for (struct qnode *n = q->table[i]; n; n = n->hnext)
            if (!n->busy)
                n->due = 0;
    rescan(q);
}

/* ---- setup ------------------------------------------------------------------------------ */

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
            else if (ev->len > 0 && memchr(ev->name, '\0', ev->len) && queue_id_valid(ev->name))
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
    pickup_free(q->pickup); /* first: it submits to the workers, not to us */
    control_server_free(q->control);
    if (q->ob)
        outbound_free(q->ob); /* reports unfinished jobs: their messages finish first */
    removal_free(q->removal); /* after the last message finished */
    if (q->dns)
        dns_resolver_free(q->dns);
    struct event *evs[] = {q->ev_work, q->ev_scan, q->ev_wake, q->ev_inotify,
                           q->ev_term, q->ev_int, q->ev_grace};
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
    if (q->base) {
        /* A bufferevent freed while a deferred callback of it was pending (outbound.c uses
         * BEV_OPT_DEFER_CALLBACKS) is released only when that callback has run; with every
         * other event gone, one pass of the loop runs them, or they leak at exit. */
        if (event_base_loop(q->base, EVLOOP_NONBLOCK) < 0)
            log_warn("cannot run the last deferred callbacks");
        event_base_free(q->base);
    }
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
    notify_clean(cfg->spool_dir);
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
    q.ev_grace = evtimer_new(q.base, grace_cb, &q);
    q.removal = removal_new(cfg->spool_dir);
    if (!q.removal)
        log_warn("cannot start the removal thread (%s): removing inline", strerror(errno));
    if (!q.ev_work || !q.ev_wake || !q.ev_scan || !q.ev_term || !q.ev_int || !q.ev_grace ||
        event_add(q.ev_term, NULL) < 0 || event_add(q.ev_int, NULL) < 0) {
        log_err("cannot set up events");
        qmgr_free(&q);
        return 1;
    }
    /* DNS for MX lookups; without it remote deliveries are deferred, local ones go on. */
    char err[256];
    struct dns_options dopts = {.nameserver = cfg->resolver};
    q.dns = dns_resolver_new_opts(q.base, &dopts, err, sizeof err);
    if (!q.dns)
        log_err("cannot start the DNS resolver: %s; remote delivery will be deferred", err);
    q.ob = outbound_new(cfg, q.base, q.dns, err, sizeof err);
    if (!q.ob) {
        log_err("cannot start the SMTP client: %s", err);
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
    /* Queue management (tern queue); mail is delivered without it. */
    struct control_hooks hooks = {&q, ctl_busy, ctl_retry_now, ctl_forget, ctl_after_pass,
                                  ctl_rescan, atrn_request};
    q.control = control_server_new(cfg, q.base, &hooks, err, sizeof err);
    if (!q.control)
        log_err("control socket unavailable, tern queue will not work: %s", err);
    /* Messages sendmail left in the maildrop while we were down, and later ones. */
    q.pickup = pickup_new(cfg);
    if (!q.pickup)
        log_err("cannot start the maildrop pickup (%s): sendmail's messages left in %s/maildrop "
                "wait until it can start", strerror(errno), cfg->spool_dir);
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
