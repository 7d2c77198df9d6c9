/* dovecot_auth.c - asynchronous client of Dovecot's auth-client socket (auth_backend
 * dovecot): one multiplexed connection per worker on its libevent loop, with the handshake,
 * request ids, per-request timeouts, CANCEL, and reconnection after Dovecot went away.
 * The protocol lines themselves are dovecot_proto.c's job. */
#include "dovecot_auth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "log.h"
#include "util.h"

enum dc_state {
    DC_DOWN,      /* no connection */
    DC_HANDSHAKE, /* connected, waiting for DONE */
    DC_READY,
};

struct dovecot_req {
    struct dovecot_auth *d;
    struct dovecot_req *prev, *next;
    unsigned long id;
    dovecot_auth_cb *cb;
    void *arg;
    struct event *timer;
    char *pending;   /* the AUTH line, held back until the handshake is done */
};

struct dovecot_auth {
    struct event_base *base;
    char *path;
    int timeout;
    enum dc_state state;
    struct bufferevent *bev;
    struct event *hs_timer;       /* the handshake must finish in time */
    struct dovecot_mechs mechs;   /* of the last finished handshake */
    struct dovecot_mechs next;    /* being announced */
    bool have_mechs;
    unsigned long next_id;
    struct dovecot_req *reqs;
    time_t last_warn;             /* "cannot connect" is logged at most every 10 s */
};

/* ---- requests ------------------------------------------------------------------------- */

static void req_destroy(struct dovecot_req *r)
{
    if (r->timer)
        event_free(r->timer);
    free(r->pending);
    free(r);
}

static void req_unlink_free(struct dovecot_req *r)
{
    struct dovecot_auth *d = r->d;
    if (r->prev)
        r->prev->next = r->next;
    else
        d->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    req_destroy(r);
}

static struct dovecot_req *req_find(struct dovecot_auth *d, unsigned long id)
{
    for (struct dovecot_req *r = d->reqs; r; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

static void send_line(struct dovecot_auth *d, const char *line, size_t len)
{
    if (d->bev && bufferevent_write(d->bev, line, len) < 0)
        log_err("dovecot auth: cannot buffer a request: out of memory");
}

/* Finish a request without an answer (NULL to its callback). */
static void req_fail(struct dovecot_req *r)
{
    dovecot_auth_cb *cb = r->cb;
    void *arg = r->arg;
    req_unlink_free(r);
    cb(arg, NULL);
}

/* ---- the connection ------------------------------------------------------------------- */

/* Close the connection and fail every open request: each waiting session answers 454. */
static void dc_down(struct dovecot_auth *d, const char *why)
{
    if (d->state != DC_DOWN)
        log_warn("dovecot auth: connection to %s lost: %s", d->path, why);
    d->state = DC_DOWN;
    if (d->bev) {
        bufferevent_free(d->bev);
        d->bev = NULL;
    }
    if (d->hs_timer)
        event_del(d->hs_timer);
    /* The callbacks may start new requests (a pipelined AUTH): take the list first. */
    struct dovecot_req *list = d->reqs;
    d->reqs = NULL;
    while (list) {
        struct dovecot_req *r = list;
        dovecot_auth_cb *cb = r->cb;
        void *arg = r->arg;
        list = r->next;
        req_destroy(r);
        cb(arg, NULL);
    }
}

static void on_handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    dc_down(arg, "no handshake from the server in time");
}

/* One line from Dovecot. Returns false when the connection was closed meanwhile. */
static bool dc_line(struct dovecot_auth *d, const char *line, size_t len)
{
    struct dovecot_line l;
    switch (dovecot_parse_line(line, len, &l)) {
    case DOVECOT_BAD:
        dc_down(d, "malformed line from the server");
        return false;
    case DOVECOT_OTHER:
        return true;
    case DOVECOT_VERSION:
        if (l.major != 1) {
            log_err("dovecot auth: %s speaks protocol version %u, tern speaks 1", d->path, l.major);
            dc_down(d, "incompatible protocol version");
            return false;
        }
        return true;
    case DOVECOT_MECH:
        if (d->state == DC_HANDSHAKE && d->next.n < DOVECOT_MECHS_MAX)
            d->next.v[d->next.n++] = l.mech;
        return true;
    case DOVECOT_DONE: {
        if (d->state != DC_HANDSHAKE)
            return true;
        d->state = DC_READY;
        event_del(d->hs_timer);
        d->mechs = d->next;
        d->have_mechs = true;
        char names[DOVECOT_MECHS_MAX * (DOVECOT_MECH_NAME_MAX + 1) + 1] = "";
        for (size_t i = 0; i < d->mechs.n; i++) {
            strcat(names, i ? " " : "");
            strcat(names, d->mechs.v[i].name);
        }
        log_info("dovecot auth: connected to %s, mechanisms: %s", d->path, names);
        for (struct dovecot_req *r = d->reqs; r; r = r->next) {
            if (r->pending) {
                send_line(d, r->pending, strlen(r->pending));
                free(r->pending);
                r->pending = NULL;
            }
        }
        return true;
    }
    case DOVECOT_OK:
    case DOVECOT_CONT:
    case DOVECOT_FAIL:
        break;
    }
    struct dovecot_req *r = d->state == DC_READY ? req_find(d, l.id) : NULL;
    if (!r)
        return true; /* cancelled or timed out meanwhile */
    dovecot_auth_cb *cb = r->cb;
    void *arg = r->arg;
    if (l.kind != DOVECOT_CONT)
        req_unlink_free(r);
    else
        event_del(r->timer); /* now the SMTP client's turn, under the session's own timeout */
    cb(arg, &l);
    return d->state != DC_DOWN;
}

static void dc_read(struct bufferevent *bev, void *arg)
{
    struct dovecot_auth *d = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t len;
        char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
        if (!line) {
            if (evbuffer_get_length(in) > DOVECOT_LINE_MAX)
                dc_down(d, "line too long");
            return;
        }
        bool alive = len <= DOVECOT_LINE_MAX ? dc_line(d, line, len)
                                             : (dc_down(d, "line too long"), false);
        free(line);
        if (!alive || d->bev != bev)
            return;
    }
}

static void dc_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct dovecot_auth *d = arg;
    if (what & BEV_EVENT_EOF)
        dc_down(d, "closed by the server");
    else if (what & BEV_EVENT_ERROR)
        dc_down(d, strerror(EVUTIL_SOCKET_ERROR()));
}

/* Connect and send our half of the handshake. A Unix socket connects at once or not at all,
 * so a missing or refusing Dovecot is known here. */
static bool dc_connect(struct dovecot_auth *d)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(d->path) >= sizeof sa.sun_path) {
        log_err("dovecot auth: socket path %s is too long", d->path);
        return false;
    }
    memcpy(sa.sun_path, d->path, strlen(d->path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        time_t now = time(NULL);
        if (now - d->last_warn >= 10) {
            d->last_warn = now;
            log_warn("dovecot auth: cannot connect to %s: %s", d->path, strerror(e));
        }
        if (fd >= 0)
            close(fd);
        return false;
    }
    d->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!d->bev) {
        close(fd);
        log_err("dovecot auth: out of memory");
        return false;
    }
    bufferevent_setcb(d->bev, dc_read, NULL, dc_event, d);
    /* a server that floods us without LF is cut off in dc_read */
    bufferevent_setwatermark(d->bev, EV_READ, 0, DOVECOT_LINE_MAX * 4);
    char hs[64];
    size_t n = dovecot_format_handshake(hs, sizeof hs, (unsigned long)getpid());
    if (bufferevent_enable(d->bev, EV_READ | EV_WRITE) < 0 || n == 0 ||
        bufferevent_write(d->bev, hs, n) < 0 ||
        evtimer_add(d->hs_timer, &(struct timeval){.tv_sec = d->timeout}) < 0) {
        bufferevent_free(d->bev);
        d->bev = NULL;
        log_err("dovecot auth: cannot start the connection");
        return false;
    }
    d->state = DC_HANDSHAKE;
    d->next.n = 0;
    log_debug("dovecot auth: connecting to %s", d->path);
    return true;
}

/* ---- public API ----------------------------------------------------------------------- */

struct dovecot_auth *dovecot_auth_new(struct event_base *base, const char *path, int timeout)
{
    struct dovecot_auth *d = xcalloc(1, sizeof *d);
    d->base = base;
    d->path = xstrdup(path);
    d->timeout = timeout > 0 ? timeout : 30;
    d->hs_timer = evtimer_new(base, on_handshake_timeout, d);
    if (!d->hs_timer) {
        log_err("dovecot auth: cannot create a timer");
        free(d->path);
        free(d);
        return NULL;
    }
    return d;
}

void dovecot_auth_free(struct dovecot_auth *d)
{
    if (!d)
        return;
    while (d->reqs)
        req_unlink_free(d->reqs);
    if (d->bev)
        bufferevent_free(d->bev);
    event_free(d->hs_timer);
    free(d->path);
    free(d);
}

const struct dovecot_mechs *dovecot_auth_mechs(struct dovecot_auth *d)
{
    if (!d)
        return NULL;
    if (d->state == DC_DOWN)
        (void)dc_connect(d);
    return d->have_mechs ? &d->mechs : NULL;
}

static void on_req_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct dovecot_req *r = arg;
    log_warn("dovecot auth: no answer to request %lu from %s within %d s", r->id, r->d->path,
             r->d->timeout);
    if (r->d->state == DC_READY && !r->pending) {
        char line[48];
        size_t n = dovecot_format_cancel(line, sizeof line, r->id);
        send_line(r->d, line, n);
    }
    req_fail(r);
}

struct dovecot_req *dovecot_auth_start(struct dovecot_auth *d, const struct dovecot_auth_params *p,
                                       dovecot_auth_cb *cb, void *arg)
{
    if (!d || (d->state == DC_DOWN && !dc_connect(d)))
        return NULL;
    struct dovecot_auth_params q = *p;
    if (++d->next_id == 0 || d->next_id > 0xffffffffUL)
        d->next_id = 1;
    q.id = d->next_id;
    char *line = xmalloc(DOVECOT_LINE_MAX + 1);
    size_t n = dovecot_format_auth(line, DOVECOT_LINE_MAX + 1, &q);
    if (n == 0) {
        log_warn("dovecot auth: request for mechanism %s does not fit a line", p->mech);
        free(line);
        return NULL;
    }
    struct dovecot_req *r = xcalloc(1, sizeof *r);
    r->d = d;
    r->id = q.id;
    r->cb = cb;
    r->arg = arg;
    r->timer = evtimer_new(d->base, on_req_timeout, r);
    if (!r->timer || evtimer_add(r->timer, &(struct timeval){.tv_sec = d->timeout}) < 0) {
        if (r->timer)
            event_free(r->timer);
        free(r);
        free(line);
        log_err("dovecot auth: cannot create a timer");
        return NULL;
    }
    r->next = d->reqs;
    if (d->reqs)
        d->reqs->prev = r;
    d->reqs = r;
    if (d->state == DC_READY) {
        send_line(d, line, n);
        free(line);
    } else {
        r->pending = line; /* sent when the handshake is done */
    }
    return r;
}

bool dovecot_auth_continue(struct dovecot_req *r, const char *resp)
{
    struct dovecot_auth *d = r->d;
    if (d->state != DC_READY)
        return false;
    size_t cap = strlen(resp) + 32;
    char *line = xmalloc(cap);
    size_t n = dovecot_format_cont(line, cap, r->id, resp);
    if (n > 0)
        send_line(d, line, n);
    free(line);
    if (n > 0 && evtimer_add(r->timer, &(struct timeval){.tv_sec = d->timeout}) < 0)
        log_err("dovecot auth: cannot restart the request timer");
    return n > 0;
}

void dovecot_auth_cancel(struct dovecot_req *r)
{
    struct dovecot_auth *d = r->d;
    if (d->state == DC_READY && !r->pending) {
        char line[48];
        size_t n = dovecot_format_cancel(line, sizeof line, r->id);
        send_line(d, line, n);
    }
    req_unlink_free(r);
}
