/* control_async.c - a control socket request on the caller's libevent loop (see
 * control_async.h): a non-blocking Unix stream connection in a bufferevent, the request line
 * out, the answer read until the server closes, the status line parsed, one callback. */
#include "control_async.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "util.h"

#define ANSWER_MAX 65536 /* a FLUSH answer is a line or two; more is not worth keeping */

struct control_async {
    struct bufferevent *bev;
    control_async_cb *cb;
    void *arg;
};

long control_async_status(const char *line, size_t len, char *err, size_t errlen)
{
    if (len > 4 && memcmp(line, "ERR ", 4) == 0) {
        errorf(err, errlen, "%.*s", (int)(len - 4), line + 4);
        return -1;
    }
    long n = 0;
    size_t i = 3;
    if (len > 3 && len <= 3 + 18 && memcmp(line, "OK ", 3) == 0) {
        for (; i < len && line[i] >= '0' && line[i] <= '9'; i++)
            n = n * 10 + (line[i] - '0'); /* at most 18 digits: no overflow */
    }
    if (i == 3 || i != len) {
        errorf(err, errlen, "the queue manager's answer was malformed");
        return -1;
    }
    return n;
}

static void finish(struct control_async *r, long n, const char *err)
{
    control_async_cb *cb = r->cb;
    void *arg = r->arg;
    control_async_cancel(r);
    cb(arg, n, err);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct control_async *r = arg;
    if (evbuffer_get_length(bufferevent_get_input(bev)) > ANSWER_MAX)
        finish(r, -1, "the queue manager's answer was too long");
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct control_async *r = arg;
    char err[256] = ""; /* a successful answer leaves it empty */
    if (what & BEV_EVENT_EOF) { /* the server closes after its answer */
        struct evbuffer *in = bufferevent_get_input(bev);
        size_t eol_len;
        struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
        if (eol.pos < 0) {
            finish(r, -1, "the queue manager closed without answering");
            return;
        }
        const char *line = (const char *)evbuffer_pullup(in, eol.pos + 1);
        if (!line) {
            finish(r, -1, "out of memory");
            return;
        }
        long n = control_async_status(line, (size_t)eol.pos, err, sizeof err);
        finish(r, n, err);
    } else if (what & BEV_EVENT_TIMEOUT) {
        finish(r, -1, "no answer from the queue manager (timed out)");
    } else if (what & BEV_EVENT_ERROR) {
        errorf(err, sizeof err, "connection to the queue manager failed: %s",
               strerror(EVUTIL_SOCKET_ERROR()));
        finish(r, -1, err);
    }
}

struct control_async *control_async_start(struct event_base *base, const struct config *cfg,
                                          const char *request, int timeout_s,
                                          control_async_cb *cb, void *arg, char *err,
                                          size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!control_socket_path(cfg, sa.sun_path, sizeof sa.sun_path)) {
        errorf(err, errlen, "the control socket path is too long");
        return NULL;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        errorf(err, errlen, "socket: %s", strerror(errno));
        return NULL;
    }
    /* A Unix socket connects at once or fails at once (EAGAIN: the backlog is full). */
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        if (e == ENOENT || e == ECONNREFUSED)
            errorf(err, errlen, "tern's queue manager is not running (no control socket at %s)",
                   sa.sun_path);
        else
            errorf(err, errlen, "cannot connect to %s: %s", sa.sun_path, strerror(e));
        return NULL;
    }
    struct control_async *r = calloc(1, sizeof *r);
    if (r)
        r->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!r || !r->bev) {
        if (r)
            free(r);
        close(fd);
        errorf(err, errlen, "out of memory");
        return NULL;
    }
    r->cb = cb;
    r->arg = arg;
    struct timeval tv = {timeout_s > 0 ? timeout_s : 1, 0};
    bufferevent_setcb(r->bev, on_read, NULL, on_event, r);
    bufferevent_set_timeouts(r->bev, &tv, &tv);
    if (bufferevent_write(r->bev, request, strlen(request)) < 0 ||
        bufferevent_write(r->bev, "\n", 1) < 0 || bufferevent_enable(r->bev, EV_READ) < 0) {
        control_async_cancel(r);
        errorf(err, errlen, "out of memory");
        return NULL;
    }
    return r;
}

void control_async_cancel(struct control_async *r)
{
    if (!r)
        return;
    bufferevent_free(r->bev);
    free(r);
}
