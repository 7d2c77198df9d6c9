/* control.c - the queue manager's control socket (see control.h and docs/queue.md): the
 * server side, run inside the queue manager's event loop, the verbs, and the client used by
 * `tern queue`, `mailq` and `sendmail -bp/-q`.
 *
 * Access: the socket lives in the spool (mode 0700, the mail user's), is itself mode 0660,
 * and every connection's peer uid is checked (SO_PEERCRED): root or the queue manager's own
 * user, nobody else, wherever control_socket points.
 *
 * The verbs work on the files (queue/, hold/, state/) and tell the queue manager what changed
 * through its hooks; a message whose delivery pass is running is never touched under it: a
 * DELETE or HOLD of it is done when the pass ends (control_after_pass). Requests are served
 * one at a time on the event loop; LIST and SHOW read the queue files synchronously, which
 * pauses deliveries for as long as that takes (a large queue: a moment). */
#include "control.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "maildrop_dir.h"
#include "notify.h"
#include "queue.h"
#include "util.h"

#define CONTROL_TIMEOUT 30          /* seconds a client gets to send its line / read the reply */
#define CONTROL_CLIENT_TIMEOUT 300  /* seconds the client waits (a LIST of a huge queue) */
#define CONTROL_SYSTEM_CONFIG "/etc/tern/tern.conf"

/* ---- pure parts ------------------------------------------------------------------------- */

bool control_split(const char *line, char *verb, size_t vcap, const char **arg)
{
    size_t n = strcspn(line, " ");
    if (n == 0 || n >= vcap || strlen(line) > CONTROL_LINE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = line[i];
        if (c < 'A' || c > 'Z') {
            if (c >= 'a' && c <= 'z')
                c = (char)(c - 'a' + 'A');
            else
                return false;
        }
        verb[i] = c;
    }
    verb[n] = '\0';
    const char *a = line + n;
    if (*a == ' ')
        a++;
    if (strchr(a, ' ') || (line[n] == ' ' && *a == '\0'))
        return false;
    *arg = a;
    return true;
}

static bool domain_valid(const char *d)
{
    if (!*d || strlen(d) > 255 || *d == '.' || *d == '-')
        return false;
    for (; *d; d++) {
        unsigned char c = (unsigned char)*d;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '[' || c == ']' || c == ':' || c >= 0x80))
            return false;
    }
    return true;
}

enum control_target control_target_of(const char *arg, const char **domain)
{
    *domain = NULL;
    if (!*arg)
        return CONTROL_TARGET_NONE;
    if (strcmp(arg, "ALL") == 0)
        return CONTROL_TARGET_ALL;
    if (arg[0] == '@') {
        bool sub = arg[1] == '.';
        const char *d = arg + (sub ? 2 : 1);
        if (!domain_valid(d))
            return CONTROL_TARGET_BAD;
        *domain = d;
        return sub ? CONTROL_TARGET_SUBDOMAINS : CONTROL_TARGET_DOMAIN;
    }
    return queue_id_valid(arg) && strlen(arg) <= 16 ? CONTROL_TARGET_QID : CONTROL_TARGET_BAD;
}

bool control_domain_match(const char *addr, enum control_target t, const char *domain)
{
    const char *at = strrchr(addr, '@');
    if (!at || !domain)
        return false;
    const char *d = at + 1;
    if (str_ieq(d, domain))
        return true;
    if (t != CONTROL_TARGET_SUBDOMAINS)
        return false;
    size_t dl = strlen(d), l = strlen(domain);
    return dl > l + 1 && d[dl - l - 1] == '.' && str_ieq(d + dl - l, domain);
}

void control_format_age(long long secs, char *out, size_t cap)
{
    if (secs < 0)
        secs = 0;
    if (secs < 60)
        snprintf(out, cap, "%llds", secs);
    else if (secs < 3600)
        snprintf(out, cap, "%lldm", secs / 60);
    else if (secs < 86400)
        snprintf(out, cap, "%lldh%lldm", secs / 3600, secs % 3600 / 60);
    else
        snprintf(out, cap, "%lldd%lldh", secs / 86400, secs % 86400 / 3600);
}

void control_format_entry(FILE *out, const struct envelope *env, long long size, time_t now,
                          bool held)
{
    char agebuf[32];
    control_format_age((long long)(now - env->arrival), agebuf, sizeof agebuf);
    fprintf(out, "%-16s %9lld %7s  <%s>%s\n", env->qid, size, agebuf, env->sender,
            held ? "  HELD" : "");
    for (size_t i = 0; i < env->nrcpts; i++) {
        const struct envelope_rcpt *r = &env->rcpts[i];
        const char *reply = r->last_reply ? r->last_reply : "";
        fprintf(out, "    <%s> ", r->addr);
        if (r->status == RCPT_DELIVERED) {
            fprintf(out, "delivered\n");
        } else if (r->status == RCPT_FAILED) {
            fprintf(out, "failed: %s\n", reply);
        } else if (r->attempts == 0) {
            fprintf(out, "waiting (not tried yet)\n");
        } else {
            char next[32];
            if (r->next_try > now)
                control_format_age((long long)(r->next_try - now), next, sizeof next);
            fprintf(out, "deferred (%d attempt%s, next try %s%s)%s%s\n", r->attempts,
                    r->attempts == 1 ? "" : "s", r->next_try > now ? "in " : "now",
                    r->next_try > now ? next : "", reply[0] ? ": " : "", reply);
        }
    }
}

void control_write_data(FILE *out, const char *text, size_t len)
{
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t stop = end > i && text[end - 1] == '\r' ? end - 1 : end;
        if (text[i] == '.')
            fputc('.', out);
        fwrite(text + i, 1, stop - i, out);
        fputc('\n', out);
        i = nl ? end + 1 : len;
    }
}

/* ---- the verbs -------------------------------------------------------------------------- */

struct control_server {
    const struct config *cfg;
    struct event_base *base;
    struct control_hooks hooks;
    int fd;
    struct event *ev_accept;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    dev_t dev;
    ino_t ino;
};

/* One request being answered. fn returns the n of "OK <n>" and writes data lines to out, or
 * -1 with the text of "ERR" in err. */
struct control_ctx {
    struct control_server *s;
    const char *spool;
    FILE *out;
    char err[512];
    int fd;           /* a descriptor passed with the request (SCM_RIGHTS), or -1 */
};

struct control_verb {
    const char *name;
    unsigned targets; /* bit (1 << enum control_target) per accepted argument form */
    long (*fn)(struct control_ctx *c, enum control_target t, const char *arg, const char *domain);
};

#define T(x) (1u << CONTROL_TARGET_##x)

static long fail(struct control_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long fail(struct control_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return -1;
}

/* Collect the IDs of one area, sorted (oldest first). */
struct idlist {
    char **v;
    size_t n, cap;
};

static void idlist_add(const char *qid, void *arg)
{
    struct idlist *l = arg;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = xstrdup(qid);
}

static int idlist_scan(struct control_ctx *c, enum queue_area area, struct idlist *l)
{
    memset(l, 0, sizeof *l);
    if (queue_scan_in(c->spool, area, idlist_add, l) < 0) {
        fail(c, "cannot read %s/%s: %s", c->spool, area == QUEUE_HOLD ? "hold" : "queue",
             strerror(errno));
        return -1;
    }
    return 0;
}

static void idlist_free(struct idlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

/* Load a message from either area. 0 with *area set, or -1 (c->err says why). */
static int load_any(struct control_ctx *c, const char *qid, struct envelope *env, int *fd,
                    off_t *off, enum queue_area *area)
{
    static const enum queue_area areas[] = {QUEUE_ACTIVE, QUEUE_HOLD};
    for (size_t i = 0; i < ARRAY_LEN(areas); i++) {
        envelope_free(env);
        envelope_init(env);
        if (queue_load_in(c->spool, areas[i], qid, env, fd, off) == 0) {
            *area = areas[i];
            return 0;
        }
        if (errno != ENOENT) {
            fail(c, "cannot read message %s: %s", qid, strerror(errno));
            return -1;
        }
    }
    fail(c, "no message %s in the queue", qid);
    return -1;
}

struct drop_list {
    struct control_ctx *c;
    long count;
    bool header;
    time_t now;
};

/* One maildrop file (sendmail's message while the server was down): "waiting for pickup". */
static void list_drop(const char *name, void *arg)
{
    struct drop_list *l = arg;
    char path[PATH_MAX], err[256];
    if (snprintf(path, sizeof path, "%s/" MAILDROP_DIR "/%s", l->c->spool, name) >=
        (int)sizeof path)
        return;
    struct stat st;
    if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return; /* picked up meanwhile, or a file the pickup will set aside */
    /* The pickup's own bound: a bigger file will be set aside, not read here. */
    size_t max = l->c->s->cfg->max_message_size ? l->c->s->cfg->max_message_size
                                                 : (size_t)64 << 20;
    size_t len = 0;
    char *buf = (size_t)st.st_size <= max + (1 << 20)
                    ? read_text_file(path, max + (1 << 20), &len, err, sizeof err)
                    : NULL;
    if (!buf && (size_t)st.st_size <= max + (1 << 20))
        return;
    if (!l->header)
        fprintf(l->c->out, "%-16s %9s %7s  %s\n", "QUEUE ID", "SIZE", "AGE",
                "SENDER / RECIPIENTS");
    l->header = true;
    char agebuf[32];
    control_format_age((long long)(l->now - st.st_mtime), agebuf, sizeof agebuf);
    struct maildrop_msg m;
    if (!buf)
        str_copy(err, sizeof err, "larger than max_message_size");
    if (!buf || maildrop_parse(buf, len, &m, err, sizeof err) < 0) {
        fprintf(l->c->out, "%-16s %9lld %7s  malformed (%s): it will be set aside\n", name,
                (long long)st.st_size, agebuf, err);
    } else {
        fprintf(l->c->out, "%-16s %9zu %7s  <%s>  waiting for pickup (uid %u)\n", name, m.len,
                agebuf, m.sender, (unsigned)st.st_uid);
        for (size_t i = 0; i < m.nrcpts; i++)
            fprintf(l->c->out, "    <%s> waiting for pickup\n", m.rcpts[i]);
        maildrop_msg_free(&m);
    }
    free(buf);
    l->count++;
}

static long do_list(struct control_ctx *c, enum control_target t, const char *arg,
                    const char *domain)
{
    (void)t, (void)arg, (void)domain;
    time_t now = time(NULL);
    long count = 0, held = 0;
    size_t pending = 0;
    static const enum queue_area areas[] = {QUEUE_ACTIVE, QUEUE_HOLD};
    for (size_t a = 0; a < ARRAY_LEN(areas); a++) {
        struct idlist l;
        if (idlist_scan(c, areas[a], &l) < 0)
            return -1;
        for (size_t i = 0; i < l.n; i++) {
            struct envelope env;
            envelope_init(&env);
            int fd;
            off_t off;
            if (queue_load_in(c->spool, areas[a], l.v[i], &env, &fd, &off) < 0) {
                if (errno != ENOENT) /* ENOENT: delivered meanwhile */
                    fprintf(c->out, "%-16s cannot read: %s\n", l.v[i], strerror(errno));
                envelope_free(&env);
                continue;
            }
            struct stat st;
            long long size =
                fstat(fd, &st) == 0 && st.st_size > off ? (long long)(st.st_size - off) : 0;
            close(fd);
            if (count == 0)
                fprintf(c->out, "%-16s %9s %7s  %s\n", "QUEUE ID", "SIZE", "AGE",
                        "SENDER / RECIPIENTS");
            control_format_entry(c->out, &env, size, now, areas[a] == QUEUE_HOLD);
            count++;
            held += areas[a] == QUEUE_HOLD;
            pending += envelope_pending(&env);
            envelope_free(&env);
        }
        idlist_free(&l);
    }
    struct drop_list dl = {c, 0, count > 0, now};
    maildrop_scan(c->spool, list_drop, &dl); /* no maildrop yet: nothing waits there */
    if (count == 0 && dl.count == 0)
        fprintf(c->out, "Mail queue is empty\n");
    else if (dl.count == 0)
        fprintf(c->out, "-- %ld message%s (%ld held), %zu recipient%s pending\n", count,
                count == 1 ? "" : "s", held, pending, pending == 1 ? "" : "s");
    else
        fprintf(c->out, "-- %ld message%s (%ld held), %zu recipient%s pending; %ld in the "
                "maildrop waiting for pickup\n", count, count == 1 ? "" : "s", held, pending,
                pending == 1 ? "" : "s", dl.count);
    return count + dl.count;
}

static const char *status_name(enum rcpt_status s)
{
    return s == RCPT_DELIVERED ? "delivered" : s == RCPT_FAILED ? "failed" : "pending";
}

static long do_show(struct control_ctx *c, enum control_target t, const char *qid,
                    const char *domain)
{
    (void)t, (void)domain;
    struct envelope env;
    envelope_init(&env);
    int fd;
    off_t off;
    enum queue_area area;
    if (load_any(c, qid, &env, &fd, &off, &area) < 0) {
        envelope_free(&env);
        return -1;
    }
    time_t now = time(NULL);
    char agebuf[32], when[64];
    control_format_age((long long)(now - env.arrival), agebuf, sizeof agebuf);
    struct tm tm;
    if (!gmtime_r(&env.arrival, &tm) ||
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        str_copy(when, sizeof when, "?");
    bool busy = area == QUEUE_ACTIVE && c->s->hooks.busy(c->s->hooks.arg, qid);
    fprintf(c->out, "Queue-ID: %s\nState: %s\nArrival: %s (%s ago)\nSender: <%s>\n", env.qid,
            area == QUEUE_HOLD ? "held" : busy ? "being delivered" : "queued", when, agebuf,
            env.sender);
    fprintf(c->out, "Client: %s (helo %s) %s\n", env.client_addr ? env.client_addr : "?",
            env.client_helo ? env.client_helo : "?", env.protocol ? env.protocol : "?");
    if (env.envid && env.envid[0])
        fprintf(c->out, "Envelope-ID: %s\n", env.envid);
    if (env.ret != RET_UNSPEC)
        fprintf(c->out, "Return: %s\n", env.ret == RET_HDRS ? "headers only" : "full message");
    for (size_t i = 0; i < env.nrcpts; i++) {
        const struct envelope_rcpt *r = &env.rcpts[i];
        fprintf(c->out, "Recipient: <%s> %s, %d attempt%s", r->addr, status_name(r->status),
                r->attempts, r->attempts == 1 ? "" : "s");
        static const struct {
            unsigned bit;
            const char *name;
        } notify[] = {{NOTIFY_NEVER, "never"}, {NOTIFY_SUCCESS, "success"},
                      {NOTIFY_FAILURE, "failure"}, {NOTIFY_DELAY, "delay"}};
        const char *sep = ", notify "; /* RFC 3461 NOTIFY */
        for (size_t k = 0; k < ARRAY_LEN(notify); k++)
            if (r->notify & notify[k].bit) {
                fprintf(c->out, "%s%s", sep, notify[k].name);
                sep = " ";
            }
        if (r->status == RCPT_PENDING && r->next_try > now) {
            control_format_age((long long)(r->next_try - now), agebuf, sizeof agebuf);
            fprintf(c->out, ", next try in %s", agebuf);
        }
        if (r->last_reply && r->last_reply[0])
            fprintf(c->out, ": %s", r->last_reply);
        fputc('\n', c->out);
    }
    fputc('\n', c->out);
    /* The content as it is queued (CRLF shown as LF). */
    char buf[65536];
    off_t pos = off;
    int rc = 0;
    char *carry = NULL; /* a partial last line is written with the next block */
    size_t ncarry = 0;
    for (;;) {
        ssize_t r = pread(fd, buf, sizeof buf, pos);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -1;
            fail(c, "cannot read message %s: %s", qid, strerror(errno));
            break;
        }
        if (r == 0)
            break;
        pos += r;
        carry = xrealloc(carry, ncarry + (size_t)r);
        memcpy(carry + ncarry, buf, (size_t)r);
        ncarry += (size_t)r;
        const char *last = NULL;
        for (size_t k = ncarry; k > 0; k--)
            if (carry[k - 1] == '\n') {
                last = carry + k;
                break;
            }
        if (!last)
            continue;
        size_t done = (size_t)(last - carry);
        control_write_data(c->out, carry, done);
        memmove(carry, last, ncarry - done);
        ncarry -= done;
    }
    if (rc == 0 && ncarry > 0)
        control_write_data(c->out, carry, ncarry);
    free(carry);
    close(fd);
    envelope_free(&env);
    return rc < 0 ? -1 : 1;
}

/* Make the matching pending recipients of an active message due now and schedule it. Returns
 * 1 if it has matching pending recipients (or is being delivered right now), 0 if not, -1. */
static int flush_one(struct control_ctx *c, const char *qid, enum control_target t,
                     const char *domain)
{
    const struct control_hooks *h = &c->s->hooks;
    if (h->busy(h->arg, qid))
        return 1;
    struct envelope env;
    envelope_init(&env);
    int fd;
    off_t off;
    if (queue_load(c->spool, qid, &env, &fd, &off) < 0) {
        int e = errno;
        envelope_free(&env);
        return e == ENOENT ? 0 : -1;
    }
    close(fd);
    bool match = false, changed = false;
    for (size_t i = 0; i < env.nrcpts; i++) {
        struct envelope_rcpt *r = &env.rcpts[i];
        if (r->status != RCPT_PENDING)
            continue;
        if ((t == CONTROL_TARGET_DOMAIN || t == CONTROL_TARGET_SUBDOMAINS) &&
            !control_domain_match(r->addr, t, domain))
            continue;
        match = true;
        if (r->next_try != 0) {
            r->next_try = 0;
            changed = true;
        }
    }
    int rc = match ? 1 : 0;
    if (changed && queue_save_state(c->spool, &env) < 0) {
        log_err("cannot save state qid=%s: %s", qid, strerror(errno));
        rc = -1;
    }
    if (match)
        h->retry_now(h->arg, qid);
    envelope_free(&env);
    return rc;
}

/* Flush every active message (with a domain filter or not); the number that had matches. */
static long flush_all(struct control_ctx *c, enum control_target t, const char *domain)
{
    struct idlist l;
    if (idlist_scan(c, QUEUE_ACTIVE, &l) < 0)
        return -1;
    long n = 0;
    for (size_t i = 0; i < l.n; i++) {
        int r = flush_one(c, l.v[i], t, domain);
        if (r > 0)
            n++;
        else if (r < 0)
            fprintf(c->out, "%s: cannot flush: %s\n", l.v[i], strerror(errno));
    }
    idlist_free(&l);
    return n;
}

static bool is_held(struct control_ctx *c, const char *qid)
{
    char path[PATH_MAX];
    struct stat st;
    int n = snprintf(path, sizeof path, "%s/hold/%s", c->spool, qid);
    return n > 0 && (size_t)n < sizeof path && lstat(path, &st) == 0;
}

static long do_flush(struct control_ctx *c, enum control_target t, const char *arg,
                     const char *domain)
{
    if (t != CONTROL_TARGET_QID) {
        long n = flush_all(c, t, domain);
        if (n >= 0)
            log_info("flush %s: %ld message(s) scheduled now", *arg ? arg : "all", n);
        return n;
    }
    if (is_held(c, arg))
        return fail(c, "message %s is held; release it first", arg);
    int r = flush_one(c, arg, t, domain);
    if (r < 0)
        return fail(c, "cannot flush %s: %s", arg, strerror(errno));
    if (r == 0) {
        char path[PATH_MAX];
        struct stat st;
        int n = snprintf(path, sizeof path, "%s/queue/%s", c->spool, arg);
        if (n < 0 || (size_t)n >= sizeof path || lstat(path, &st) < 0)
            return fail(c, "no message %s in the queue", arg);
        fprintf(c->out, "%s has no recipient left to deliver\n", arg);
    } else {
        log_info("flush qid=%s: scheduled now", arg);
    }
    return r;
}

/* Delete one message of an area. 1 if deleted (or will be after its pass), 0 if gone. */
static int delete_one(struct control_ctx *c, const char *qid, enum queue_area area)
{
    const struct control_hooks *h = &c->s->hooks;
    struct envelope env;
    envelope_init(&env);
    int fd;
    off_t off;
    if (queue_load_in(c->spool, area, qid, &env, &fd, &off) < 0) {
        int e = errno;
        envelope_free(&env);
        if (e == ENOENT)
            return 0;
        if (e != EBADMSG)
            return -1;
        /* A damaged file can be deleted too; there is nothing to log about it. */
    } else {
        close(fd);
    }
    if (area == QUEUE_ACTIVE && h->busy(h->arg, qid)) {
        h->after_pass(h->arg, qid, CONTROL_AFTER_DELETE);
        log_info("delete qid=%s requested: done when the delivery in progress ends", qid);
        fprintf(c->out, "%s: being delivered; deleted when this attempt ends\n", qid);
        envelope_free(&env);
        return 1;
    }
    int rc = queue_remove_in(c->spool, area, qid);
    if (rc == 0) {
        notify_forget(c->spool, qid);
        if (area == QUEUE_ACTIVE)
            h->forget(h->arg, qid);
        /* No bounce: deleting is the administrator's decision; the log keeps the trace. */
        log_info("deleted qid=%s from=<%s> nrcpt=%zu pending=%zu by the administrator "
                 "(tern queue delete; no bounce)",
                 qid, env.sender ? env.sender : "?", env.nrcpts, envelope_pending(&env));
    }
    envelope_free(&env);
    return rc < 0 ? -1 : 1;
}

static long do_delete(struct control_ctx *c, enum control_target t, const char *arg,
                      const char *domain)
{
    (void)domain;
    if (t == CONTROL_TARGET_QID) {
        int r = delete_one(c, arg, QUEUE_ACTIVE);
        if (r == 0)
            r = delete_one(c, arg, QUEUE_HOLD);
        if (r < 0)
            return fail(c, "cannot delete %s: %s", arg, strerror(errno));
        if (r == 0)
            return fail(c, "no message %s in the queue", arg);
        return 1;
    }
    static const enum queue_area areas[] = {QUEUE_ACTIVE, QUEUE_HOLD};
    long n = 0;
    for (size_t a = 0; a < ARRAY_LEN(areas); a++) {
        struct idlist l;
        if (idlist_scan(c, areas[a], &l) < 0)
            return -1;
        for (size_t i = 0; i < l.n; i++) {
            int r = delete_one(c, l.v[i], areas[a]);
            if (r > 0)
                n++;
            else if (r < 0)
                fprintf(c->out, "%s: cannot delete: %s\n", l.v[i], strerror(errno));
        }
        idlist_free(&l);
    }
    return n;
}

static long do_hold(struct control_ctx *c, enum control_target t, const char *qid,
                    const char *domain)
{
    (void)t, (void)domain;
    const struct control_hooks *h = &c->s->hooks;
    if (is_held(c, qid))
        return fail(c, "message %s is already held", qid);
    if (h->busy(h->arg, qid)) {
        h->after_pass(h->arg, qid, CONTROL_AFTER_HOLD);
        log_info("hold qid=%s requested: done when the delivery in progress ends", qid);
        fprintf(c->out, "%s: being delivered; held when this attempt ends\n", qid);
        return 1;
    }
    if (queue_move(c->spool, qid, QUEUE_ACTIVE, QUEUE_HOLD) < 0) {
        if (errno == ENOENT)
            return fail(c, "no message %s in the queue", qid);
        return fail(c, "cannot hold %s: %s", qid, strerror(errno));
    }
    h->forget(h->arg, qid);
    log_info("held qid=%s by the administrator (tern queue hold)", qid);
    return 1;
}

static long do_release(struct control_ctx *c, enum control_target t, const char *qid,
                       const char *domain)
{
    (void)t, (void)domain;
    if (queue_move(c->spool, qid, QUEUE_HOLD, QUEUE_ACTIVE) < 0) {
        if (errno == ENOENT)
            return fail(c, "message %s is not held", qid);
        return fail(c, "cannot release %s: %s", qid, strerror(errno));
    }
    log_info("released qid=%s by the administrator (tern queue release)", qid);
    if (flush_one(c, qid, CONTROL_TARGET_QID, NULL) < 0)
        log_err("released qid=%s, but cannot reset its retry times: %s", qid, strerror(errno));
    return 1;
}

static long do_requeue(struct control_ctx *c, enum control_target t, const char *arg,
                       const char *domain)
{
    (void)t, (void)arg, (void)domain;
    c->s->hooks.rescan(c->s->hooks.arg);
    long n = flush_all(c, CONTROL_TARGET_NONE, NULL);
    if (n >= 0)
        log_info("requeue: queue re-read, %ld message(s) routed again now", n);
    return n;
}

/* ATRN domain[,domain...] with the customer's connection attached (RFC 2645, docs/odmr.md):
 * a worker hands it over; the queue manager delivers the held mail over it. */
static long do_atrn(struct control_ctx *c, enum control_target t, const char *arg,
                    const char *domain)
{
    (void)t, (void)domain;
    const struct control_hooks *h = &c->s->hooks;
    if (c->fd < 0)
        return fail(c, "ATRN: no connection passed with the request");
    if (!h->atrn || !*arg)
        return fail(c, "ATRN: %s", *arg ? "not available" : "no domain");
    int fd = c->fd;
    c->fd = -1; /* the hook owns it now */
    long n = h->atrn(h->arg, arg, fd, c->err, sizeof c->err);
    return n < 0 ? -1 : n;
}

static const struct control_verb verbs[] = {
    {"LIST", T(NONE), do_list},
    {"SHOW", T(QID), do_show},
    {"FLUSH", T(NONE) | T(QID) | T(DOMAIN) | T(SUBDOMAINS), do_flush},
    {"DELETE", T(QID) | T(ALL), do_delete},
    {"HOLD", T(QID), do_hold},
    {"RELEASE", T(QID), do_release},
    {"REQUEUE", T(NONE), do_requeue},
    {"ATRN", ~0u, do_atrn},
};

/* Answer one request line into out ("OK n" / "ERR text", data, "."). */
static void handle_line(struct control_server *s, const char *line, FILE *out, int *fd)
{
    char verb[32];
    const char *arg, *domain;
    char *data = NULL;
    size_t ndata = 0;
    struct control_ctx c = {.s = s, .spool = s->cfg->spool_dir, .fd = *fd};
    long n = -1;
    if (!control_split(line, verb, sizeof verb, &arg)) {
        fail(&c, "malformed request");
    } else {
        const struct control_verb *v = NULL;
        for (size_t i = 0; i < ARRAY_LEN(verbs) && !v; i++)
            if (strcmp(verbs[i].name, verb) == 0)
                v = &verbs[i];
        enum control_target t = control_target_of(arg, &domain);
        if (!v)
            fail(&c, "unknown request %s", verb);
        else if (!(v->targets & (1u << t)))
            fail(&c, "%s: bad argument '%s'", verb, arg);
        else if ((c.out = open_memstream(&data, &ndata)) == NULL)
            fail(&c, "out of memory");
        else {
            n = v->fn(&c, t, arg, domain);
            if (fclose(c.out) != 0 && n >= 0)
                n = fail(&c, "out of memory");
        }
    }
    *fd = c.fd; /* -1 if a verb took it */
    if (n < 0) {
        fprintf(out, "ERR %s\n.\n", c.err);
    } else {
        fprintf(out, "OK %ld\n", n);
        fwrite(data, 1, ndata, out);
        fprintf(out, ".\n");
    }
    free(data);
}

/* ---- the server ------------------------------------------------------------------------- */

static void conn_free(struct bufferevent *bev)
{
    bufferevent_free(bev);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    (void)arg;
    conn_free(bev); /* the whole reply is out */
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)what, (void)arg;
    conn_free(bev);
}

static void send_text(struct bufferevent *bev, const char *text, size_t len)
{
    bufferevent_disable(bev, EV_READ);
    bufferevent_setcb(bev, NULL, conn_write_cb, conn_event_cb, NULL);
    if (bufferevent_write(bev, text, len) < 0)
        conn_free(bev);
}

/* A connection until its request is read: the descriptor that came with it, if any. */
struct ctl_conn {
    struct control_server *s;
    struct bufferevent *bev;
    int passed;
    struct event *ev_first;
};

static void ctl_conn_free(struct ctl_conn *cc)
{
    if (cc->passed >= 0)
        close(cc->passed);
    if (cc->ev_first)
        event_free(cc->ev_first);
    free(cc);
}

static void conn_pending_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)what;
    ctl_conn_free(arg);
    conn_free(bev);
}

static void conn_read_cb(struct bufferevent *bev, void *arg);

/* The first read, before libevent's: recvmsg, so a descriptor sent with the request (ATRN)
 * is received rather than discarded (unix(7)); it comes with the request's first octet. */
static void conn_first_read(evutil_socket_t fd, short what, void *arg)
{
    struct ctl_conn *cc = arg;
    struct bufferevent *bev = cc->bev;
    event_free(cc->ev_first);
    cc->ev_first = NULL;
    char buf[CONTROL_LINE_MAX + 2];
    union {
        char b[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                         .msg_controllen = sizeof ctl.b};
    ssize_t n = (what & EV_READ) ? recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT) : -1;
    for (struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL; cm; cm = CMSG_NXTHDR(&msg, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len == CMSG_LEN(sizeof(int)) && cc->passed < 0)
            memcpy(&cc->passed, CMSG_DATA(cm), sizeof(int));
    /* The input buffer is frozen at its end for anyone but the bufferevent; it is empty, so
     * prepending is adding. */
    if (n <= 0 || evbuffer_prepend(bufferevent_get_input(bev), buf, (size_t)n) < 0) {
        ctl_conn_free(cc);
        conn_free(bev);
        return;
    }
    bufferevent_setcb(bev, conn_read_cb, NULL, conn_pending_event_cb, cc);
    bufferevent_enable(bev, EV_READ);
    conn_read_cb(bev, cc);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct ctl_conn *cc = arg;
    struct control_server *s = cc->s;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len;
    char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
    if (!line) {
        if (evbuffer_get_length(in) > CONTROL_LINE_MAX) {
            static const char too_long[] = "ERR request too long\n.\n";
            ctl_conn_free(cc);
            send_text(bev, too_long, sizeof too_long - 1);
        }
        return;
    }
    char *reply = NULL;
    size_t nreply = 0;
    FILE *out = open_memstream(&reply, &nreply);
    if (!out) {
        free(line);
        ctl_conn_free(cc);
        conn_free(bev);
        return;
    }
    if (len > CONTROL_LINE_MAX || memchr(line, '\0', len)) {
        fprintf(out, "ERR malformed request\n.\n");
    } else {
        if (len > 0 && line[len - 1] == '\r')
            line[len - 1] = '\0';
        handle_line(s, line, out, &cc->passed);
    }
    free(line);
    ctl_conn_free(cc);
    if (fclose(out) != 0) {
        free(reply);
        conn_free(bev);
        return;
    }
    send_text(bev, reply, nreply);
    free(reply);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    struct control_server *s = arg;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_warn("control socket: accept: %s", strerror(errno));
            if (errno == EINTR)
                continue;
            return;
        }
        struct ucred cred = {.pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1};
        socklen_t clen = sizeof cred;
        bool allowed = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0 &&
                       (cred.uid == 0 || cred.uid == geteuid());
        struct bufferevent *bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!bev) {
            close(fd);
            continue;
        }
        struct timeval tv = {CONTROL_TIMEOUT, 0};
        bufferevent_set_timeouts(bev, &tv, &tv);
        if (!allowed) {
            log_warn("control socket: refused a client (uid %ld): only root and the mail user",
                     clen == sizeof cred ? (long)cred.uid : -1L);
            static const char denied[] = "ERR permission denied: only root and the mail user\n.\n";
            send_text(bev, denied, sizeof denied - 1);
            continue;
        }
        struct ctl_conn *cc = calloc(1, sizeof *cc);
        if (cc) {
            cc->s = s;
            cc->bev = bev;
            cc->passed = -1;
            cc->ev_first = event_new(s->base, fd, EV_READ, conn_first_read, cc);
        }
        if (!cc || !cc->ev_first || event_add(cc->ev_first, &tv) < 0) {
            if (cc)
                ctl_conn_free(cc);
            conn_free(bev);
        }
    }
}

bool control_socket_path(const struct config *cfg, char *out, size_t cap)
{
    int n = cfg->control_socket ? snprintf(out, cap, "%s", cfg->control_socket)
                                : snprintf(out, cap, "%s/control", cfg->spool_dir);
    return n > 0 && (size_t)n < cap;
}

static int unix_addr(const struct config *cfg, struct sockaddr_un *sa, char *err, size_t errlen)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (!control_socket_path(cfg, sa->sun_path, sizeof sa->sun_path)) {
        errorf(err, errlen, "the control socket path is longer than %zu characters "
                            "(set control_socket to a shorter path)", sizeof sa->sun_path - 1);
        return -1;
    }
    return 0;
}

struct control_server *control_server_new(const struct config *cfg, struct event_base *base,
                                          const struct control_hooks *hooks, char *err,
                                          size_t errlen)
{
    struct sockaddr_un sa;
    if (unix_addr(cfg, &sa, err, errlen) < 0)
        return NULL;
    struct control_server *s = xcalloc(1, sizeof *s);
    s->cfg = cfg;
    s->base = base;
    s->hooks = *hooks;
    str_copy(s->path, sizeof s->path, sa.sun_path);
    s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        errorf(err, errlen, "socket: %s", strerror(errno));
        free(s);
        return NULL;
    }
    /* Only one tern uses a spool (serve.c locks it), so a socket file here is a leftover. */
    struct stat st;
    if (lstat(s->path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(s->path);
    mode_t old = umask(0117); /* born 0660: no window where others could connect */
    int rc = bind(s->fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc < 0 || chmod(s->path, 0660) < 0 || listen(s->fd, 16) < 0 ||
        lstat(s->path, &st) < 0) {
        errorf(err, errlen, "cannot listen on %s: %s", s->path, strerror(errno));
        close(s->fd);
        free(s);
        return NULL;
    }
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->ev_accept = event_new(base, s->fd, EV_READ | EV_PERSIST, accept_cb, s);
    if (!s->ev_accept || event_add(s->ev_accept, NULL) < 0) {
        errorf(err, errlen, "cannot watch %s", s->path);
        control_server_free(s);
        return NULL;
    }
    return s;
}

void control_server_free(struct control_server *s)
{
    if (!s)
        return;
    if (s->ev_accept)
        event_free(s->ev_accept);
    close(s->fd);
    /* Remove the file only if it is still ours. */
    struct stat st;
    if (lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
        unlink(s->path);
    free(s);
}

int control_after_pass(const struct config *cfg, const char *qid, enum control_after what)
{
    if (what == CONTROL_AFTER_DELETE) {
        if (queue_remove(cfg->spool_dir, qid) < 0) {
            log_err("cannot delete qid=%s: %s", qid, strerror(errno));
            return -1;
        }
        notify_forget(cfg->spool_dir, qid);
        log_info("deleted qid=%s by the administrator (tern queue delete; no bounce)", qid);
        return 0;
    }
    if (what == CONTROL_AFTER_HOLD) {
        if (queue_move(cfg->spool_dir, qid, QUEUE_ACTIVE, QUEUE_HOLD) < 0) {
            log_err("cannot hold qid=%s: %s", qid, strerror(errno));
            return -1;
        }
        log_info("held qid=%s by the administrator (tern queue hold)", qid);
        return 0;
    }
    return -1;
}

/* ---- the client ------------------------------------------------------------------------- */

int control_config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
    if (!path || !*path)
        path = getenv("TERN_CONFIG");
    if ((!path || !*path) && access(CONTROL_SYSTEM_CONFIG, F_OK) == 0)
        path = CONTROL_SYSTEM_CONFIG;
    return config_load(cfg, path && *path ? path : NULL, err, errlen);
}

long control_request(const struct config *cfg, const char *request, char **reply, char *err,
                     size_t errlen)
{
    *reply = NULL;
    struct sockaddr_un sa;
    if (unix_addr(cfg, &sa, err, errlen) < 0)
        return -1;
    if (strchr(request, '\n') || strlen(request) > CONTROL_LINE_MAX) {
        errorf(err, errlen, "malformed request");
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        errorf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        if (e == ENOENT || e == ECONNREFUSED)
            errorf(err, errlen, "tern is not running (no control socket at %s)", sa.sun_path);
        else if (e == EACCES || e == EPERM)
            errorf(err, errlen, "permission denied on the control socket %s: run this as root "
                                "or as the mail user", sa.sun_path);
        else
            errorf(err, errlen, "cannot connect to %s: %s", sa.sun_path, strerror(e));
        return -1;
    }
    struct timeval tv = {CONTROL_CLIENT_TIMEOUT, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    size_t rlen = strlen(request);
    char *line = xmalloc(rlen + 2);
    memcpy(line, request, rlen);
    line[rlen] = '\n';
    int wrc = write_all(fd, line, rlen + 1);
    free(line);
    if (wrc < 0) {
        errorf(err, errlen, "cannot send to %s: %s", sa.sun_path, strerror(errno));
        close(fd);
        return -1;
    }
    /* Read the whole answer: the server closes after it. */
    size_t cap = 65536, len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap)
            buf = xrealloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            errorf(err, errlen, "no answer from the queue manager on %s: %s", sa.sun_path,
                   errno == EAGAIN ? "timed out" : strerror(errno));
            close(fd);
            free(buf);
            return -1;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    /* Status line, data lines (un-dot-stuffed), ".". */
    char *nl = memchr(buf, '\n', len);
    long n = -1;
    bool ok = false;
    if (nl) {
        *nl = '\0';
        if (strncmp(buf, "OK ", 3) == 0) {
            char *end;
            errno = 0;
            n = strtol(buf + 3, &end, 10);
            ok = errno == 0 && end != buf + 3 && *end == '\0' && n >= 0;
        } else if (strncmp(buf, "ERR ", 4) == 0) {
            errorf(err, errlen, "%s", buf + 4);
            free(buf);
            return -1;
        }
    }
    char *out = xmalloc(len + 1);
    size_t olen = 0;
    bool ended = false;
    for (char *p = nl ? nl + 1 : buf + len; ok && p < buf + len && !ended;) {
        char *e = memchr(p, '\n', (size_t)(buf + len - p));
        if (!e)
            break; /* a last line without LF: truncated */
        *e = '\0';
        if (strcmp(p, ".") == 0) {
            ended = true;
            break;
        }
        if (*p == '.')
            p++;
        size_t l = (size_t)(e - p);
        memcpy(out + olen, p, l);
        olen += l;
        out[olen++] = '\n';
        p = e + 1;
    }
    free(buf);
    if (!ok || !ended) {
        free(out);
        errorf(err, errlen, "the queue manager's answer on %s was malformed or cut short",
               sa.sun_path);
        return -1;
    }
    out[olen] = '\0';
    *reply = out;
    return n;
}
