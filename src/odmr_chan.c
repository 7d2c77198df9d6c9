/* odmr_chan.c - hand an ATRN connection from a worker to the queue manager over the control
 * socket with SCM_RIGHTS (unix(7)); see odmr_chan.h. The server side is control.c's ATRN. */
#include "odmr_chan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "control.h"
#include "log.h"
#include "util.h"

#define REQ_MAX 1200         /* "ATRN " + ODMR_LIST_MAX + newline, with room to spare */
#define REPLY_MAX 512
#define CLIENT_TIMEOUT 120   /* seconds the queue manager has to answer (it loads envelopes) */

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

struct odmr_req *odmr_chan_request(struct event_base *base, const struct config *cfg,
                                   const char *domains, int fd, odmr_req_cb cb, void *arg,
                                   char *err, size_t errlen)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    const char *path = sun.sun_path;
    char line[REQ_MAX];
    int n = snprintf(line, sizeof line, "ATRN %s\n", domains);
    if (!control_socket_path(cfg, sun.sun_path, sizeof sun.sun_path) || n < 0 ||
        (size_t)n >= sizeof line) {
        errorf(err, errlen, "request or control socket path too long");
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
