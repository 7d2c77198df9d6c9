/* odmr_chan.c - hand an ATRN connection from a worker to the queue manager over a Unix
 * socket with SCM_RIGHTS (unix(7)); see odmr_chan.h for the protocol. */
#include "odmr_chan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "util.h"

#define REQ_MAX 1200         /* "ATRN " + ODMR_LIST_MAX + newline, with room to spare */
#define REPLY_MAX 512
#define SERVER_TIMEOUT 10    /* seconds a worker has to send its line */
#define CLIENT_TIMEOUT 120   /* seconds the queue manager has to answer (it loads envelopes) */

bool odmr_chan_path(const struct config *cfg, char *out, size_t cap)
{
    struct sockaddr_un sun;
    int n = snprintf(out, cap, "%s/odmr", cfg->spool_dir);
    return n > 0 && (size_t)n < cap && (size_t)n < sizeof sun.sun_path;
}

static bool unix_addr(const char *path, struct sockaddr_un *sun)
{
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    return str_copy(sun->sun_path, sizeof sun->sun_path, path);
}

/* ---- queue manager side ------------------------------------------------------------------ */

struct odmr_chan {
    struct event_base *base;
    int fd;
    struct event *ev;
    odmr_chan_handler fn;
    void *arg;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

struct chan_conn {
    struct odmr_chan *chan;
    int fd;
    int passed;              /* the descriptor received, -1 until then */
    struct event *ev;
    char buf[REQ_MAX];
    size_t len;
};

static void conn_end(struct chan_conn *c)
{
    if (c->passed >= 0)
        close(c->passed);
    event_free(c->ev);
    close(c->fd);
    free(c);
}

static void conn_answer(struct chan_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void conn_answer(struct chan_conn *c, const char *fmt, ...)
{
    char out[REPLY_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, sizeof out - 3, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof out - 4)
        n = (int)(sizeof out - 4);
    memcpy(out + n, "\n.\n", 3);
    /* A fresh socket's buffer holds this small answer: one send is enough. */
    if (send(c->fd, out, (size_t)n + 3, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        log_warn("odmr channel: cannot answer: %s", strerror(errno));
}

static void conn_request(struct chan_conn *c)
{
    char *line = c->buf;
    char err[256] = "";
    if (strncmp(line, "ATRN ", 5) != 0 || line[5] == '\0') {
        conn_answer(c, "ERR expected ATRN domain[,domain...]");
        return;
    }
    if (c->passed < 0) {
        conn_answer(c, "ERR no connection passed with ATRN");
        return;
    }
    int fd = c->passed;
    c->passed = -1; /* the handler owns it now */
    long n = c->chan->fn(c->chan->arg, line + 5, fd, err, sizeof err);
    if (n < 0)
        conn_answer(c, "ERR %s", err[0] ? err : "failed");
    else
        conn_answer(c, "OK %ld", n);
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct chan_conn *c = arg;
    if (what & EV_TIMEOUT) {
        conn_end(c);
        return;
    }
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = c->buf + c->len, .iov_len = sizeof c->buf - 1 - c->len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = sizeof ctl.buf};
    ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    for (struct cmsghdr *cm = n >= 0 ? CMSG_FIRSTHDR(&msg) : NULL; cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfds; i++) {
            int got;
            memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof got);
            if (c->passed < 0)
                c->passed = got;
            else
                close(got); /* one connection per request */
        }
    }
    if (n <= 0 || (msg.msg_flags & MSG_CTRUNC)) {
        conn_end(c);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    char *nl = memchr(c->buf, '\n', c->len);
    if (!nl) {
        if (c->len >= sizeof c->buf - 1) {
            conn_answer(c, "ERR request too long");
            conn_end(c);
        }
        return;
    }
    *nl = '\0';
    conn_request(c);
    conn_end(c);
}

static void accept_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct odmr_chan *ch = arg;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_warn("odmr channel: accept: %s", strerror(errno));
            return;
        }
        /* The socket's mode already limits it to the mail user; check the peer anyway. */
        struct ucred cr;
        socklen_t crlen = sizeof cr;
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0 ||
            (cr.uid != geteuid() && cr.uid != 0)) {
            log_warn("odmr channel: refused a connection from uid %ld", (long)cr.uid);
            close(cfd);
            continue;
        }
        struct chan_conn *c = calloc(1, sizeof *c);
        struct timeval tv = {SERVER_TIMEOUT, 0};
        if (c) {
            c->chan = ch;
            c->fd = cfd;
            c->passed = -1;
            c->ev = event_new(ch->base, cfd, EV_READ | EV_PERSIST, conn_read_cb, c);
        }
        if (!c || !c->ev || event_add(c->ev, &tv) < 0) {
            if (c && c->ev)
                event_free(c->ev);
            free(c);
            close(cfd);
            log_err("odmr channel: out of memory");
        }
    }
}

struct odmr_chan *odmr_chan_listen(struct event_base *base, const char *path,
                                   odmr_chan_handler fn, void *arg, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    if (!unix_addr(path, &sun)) {
        errorf(err, errlen, "socket path too long: %s", path);
        return NULL;
    }
    struct odmr_chan *ch = xcalloc(1, sizeof *ch);
    ch->base = base;
    ch->fn = fn;
    ch->arg = arg;
    str_copy(ch->path, sizeof ch->path, path);
    ch->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* The supervisor's spool lock makes this the only queue manager: a file left by a
     * crashed one is stale. */
    if (ch->fd < 0 || (unlink(path) < 0 && errno != ENOENT) ||
        bind(ch->fd, (struct sockaddr *)&sun, sizeof sun) < 0 || chmod(path, 0660) < 0 ||
        listen(ch->fd, 64) < 0) {
        errorf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
        if (ch->fd >= 0)
            close(ch->fd);
        free(ch);
        return NULL;
    }
    ch->ev = event_new(base, ch->fd, EV_READ | EV_PERSIST, accept_cb, ch);
    if (!ch->ev || event_add(ch->ev, NULL) < 0) {
        errorf(err, errlen, "cannot watch %s", path);
        odmr_chan_free(ch);
        return NULL;
    }
    return ch;
}

void odmr_chan_free(struct odmr_chan *ch)
{
    if (!ch)
        return;
    if (ch->ev)
        event_free(ch->ev);
    close(ch->fd);
    unlink(ch->path);
    free(ch);
}

/* ---- worker side ---------------------------------------------------------------------- */

struct odmr_req {
    int fd;
    struct event *ev;
    odmr_req_cb cb;
    void *arg;
    char buf[REPLY_MAX];
    size_t len;
};

void odmr_req_cancel(struct odmr_req *r)
{
    if (!r)
        return;
    event_free(r->ev);
    close(r->fd);
    free(r);
}

static void req_done(struct odmr_req *r, long n, const char *why)
{
    odmr_req_cb cb = r->cb;
    void *arg = r->arg;
    odmr_req_cancel(r);
    cb(arg, n, why);
}

static void req_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct odmr_req *r = arg;
    if (what & EV_TIMEOUT) {
        req_done(r, -1, "the queue manager did not answer");
        return;
    }
    ssize_t n = recv(fd, r->buf + r->len, sizeof r->buf - 1 - r->len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0) {
        r->len += (size_t)n;
        r->buf[r->len] = '\0';
        if (!memchr(r->buf, '\n', r->len) && r->len < sizeof r->buf - 1)
            return;
    }
    /* The status line decides; the data lines and "." that follow carry nothing more. */
    r->buf[r->len] = '\0';
    r->buf[strcspn(r->buf, "\n")] = '\0';
    char *end;
    if (strncmp(r->buf, "OK ", 3) == 0) {
        long v = strtol(r->buf + 3, &end, 10);
        if (end != r->buf + 3 && *end == '\0' && v >= 0) {
            req_done(r, v, NULL);
            return;
        }
    } else if (strncmp(r->buf, "ERR ", 4) == 0) {
        char why[REPLY_MAX];
        str_copy(why, sizeof why, r->buf + 4);
        req_done(r, -1, why);
        return;
    }
    req_done(r, -1, r->len == 0 ? "the queue manager closed the channel"
                                : "malformed answer from the queue manager");
}

struct odmr_req *odmr_chan_request(struct event_base *base, const char *path,
                                   const char *domains, int fd, odmr_req_cb cb, void *arg,
                                   char *err, size_t errlen)
{
    struct sockaddr_un sun;
    char line[REQ_MAX];
    int n = snprintf(line, sizeof line, "ATRN %s\n", domains);
    if (!unix_addr(path, &sun) || n < 0 || (size_t)n >= sizeof line) {
        errorf(err, errlen, "request too long");
        return NULL;
    }
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&sun, sizeof sun) < 0) {
        errorf(err, errlen, "the queue manager is not reachable (%s: %s)", path,
               strerror(errno));
        if (s >= 0)
            close(s);
        return NULL;
    }
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {.iov_base = line, .iov_len = (size_t)n};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = sizeof ctl.buf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    /* A fresh Unix socket takes the whole short line at once. */
    if (sendmsg(s, &msg, MSG_NOSIGNAL) != n) {
        errorf(err, errlen, "cannot send to the queue manager: %s", strerror(errno));
        close(s);
        return NULL;
    }
    struct odmr_req *r = calloc(1, sizeof *r);
    struct timeval tv = {CLIENT_TIMEOUT, 0};
    if (r) {
        r->fd = s;
        r->cb = cb;
        r->arg = arg;
        r->ev = event_new(base, s, EV_READ | EV_PERSIST, req_read_cb, r);
    }
    if (!r || !r->ev || event_add(r->ev, &tv) < 0) {
        if (r && r->ev)
            event_free(r->ev);
        free(r);
        close(s);
        errorf(err, errlen, "out of memory");
        return NULL;
    }
    return r;
}
