/* server.c - the SMTP worker process: one libevent loop, non-blocking sockets, many sessions.
 *
 * Frames input for session.c: command lines end only at CRLF (RFC 5321 2.3.8; a bare LF stays
 * inside the line, so it cannot smuggle a second command); lines over 512 octets are discarded
 * up to their CRLF and answered 500 (RFC 5321 4.5.3.1.4); DATA and BDAT octets are passed
 * through as they come. Applies the RFC 5321 4.5.3.2 timeouts per state, and the limits on
 * connections in total and per client address. On SIGTERM it stops accepting, gives sessions
 * shutdown_grace seconds, then answers 421 to the rest and exits. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>

#include "authlock.h"
#include "authpool.h"
#include "control_async.h"
#include "dovecot_auth.h"
#include "dovecot_proto.h"
#include "commit.h"
#include "log.h"
#include "odmr_chan.h"
#include "peertab.h"
#include "reply.h"
#include "session.h"
#include "smtp_parse.h"
#include "util.h"

#define PEER_BUCKETS 1024
#define RELAY_HIGH (1u << 20) /* ATRN relay: stop reading the queue manager above this */
/* Threads checking AUTH passwords per worker: a second one keeps a legitimate user's check
 * from queueing behind a single guesser's; more would only compete for the same cores. */
#define AUTH_CHECK_THREADS 2

struct peer_count {
    struct peer_count *next;
    unsigned count;
    char addr[64];
};

struct worker {
    const struct config *cfg;
    const struct users *users;    /* SMTP AUTH table, NULL without users_file */
    struct authlock *authlock;    /* failed AUTH attempts per client address (shared) */
    struct dovecot_auth *dovecot; /* auth_backend dovecot: the auth-client connection */
    struct peertab *shared;       /* per-address counts shared with the other workers, or NULL */
    size_t index;                 /* our column in shared */
    int reserve_fd;               /* a spare descriptor, given up to answer 421 at EMFILE */
    struct event *ev_resume;      /* re-enables accepting after a shortage pause */
    struct event_base *base;
    struct tls_server *tls;
    const struct listener_fd *fds;  /* fds[i] is what listeners[i] accepts on */
    struct evconnlistener **listeners;
    size_t nlisteners;
    struct conn *conns;           /* doubly linked list of open connections */
    size_t nconns;
    struct peer_count *peers[PEER_BUCKETS];
    bool stopping;
    struct event *ev_term, *ev_int, *ev_grace;
    struct committer *committer;  /* group commit thread; NULL: sessions commit inline */
    struct authpool *authpool;    /* password check threads; NULL: sessions check inline */
};

struct conn {
    struct worker *w;
    struct conn *prev, *next;
    struct bufferevent *bev;
    struct session *session;
    struct peer_count *peer;
    size_t peer_slot;             /* in w->shared, PEERTAB_NONE when not counted there */
    bool discarding;              /* inside an over-long command line */
    bool closing;                 /* flush the output, then free */
    bool implicit_tls;            /* smtps: greet once the handshake is done */
    bool handshaking;             /* a TLS handshake is in progress */
    bool tls_closed;              /* close_notify sent (or not needed) */
    struct event *close_ev;       /* closing: fires when the output drained, or at the deadline */
    struct event *pause_ev;       /* paused: resumes reading and writing (failed AUTH delay) */
    struct event *deadline_ev;    /* waiting for a command: fires after timeout_command */
    /* Plain connections write their replies straight to the socket (see on_flush); the
     * bufferevent's own writing (EV_WRITE) is on only while a reply is left over. */
    bool direct;
    struct event *flush_ev;       /* direct: replies were added this loop turn */
    struct evbuffer *held;        /* paused: replies held back until pause_ev fires */
    bool paused;
    struct evbuffer_cb_entry *drain_cb;
    struct control_async *ctl;    /* ETRN: a request to the queue manager in progress */
    /* ATRN (RFC 2645): the request to the queue manager, then the relay to it */
    struct odmr_req *atrn_req;
    int atrn_fd;                  /* our end of the socketpair, -1 if none */
    struct bufferevent *pair;     /* relaying: the queue manager's SMTP client */
    struct dovecot_req *sasl_req; /* an AUTH exchange relayed to Dovecot */
    int fd;                       /* the client's socket (the bufferevent owns it) */
    char local_addr[64];          /* for Dovecot's lip/lport and rip/rport, once asked */
    unsigned local_port, peer_port;
    struct commit_req *commit;    /* the message being committed (MODE_COMMIT), or NULL */
    struct authpool_req *check;   /* AUTH PLAIN/LOGIN: the password being checked, or NULL */
};

static void conn_read(struct bufferevent *bev, void *arg);
static void conn_write(struct bufferevent *bev, void *arg);
static void conn_event(struct bufferevent *bev, short what, void *arg);

/* ---- per-address connection counts ------------------------------------------------------ */

static unsigned hash_addr(const char *s)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % PEER_BUCKETS;
}

static struct peer_count *peer_get(struct worker *w, const char *addr)
{
    struct peer_count **slot = &w->peers[hash_addr(addr)];
    for (struct peer_count *p = *slot; p; p = p->next)
        if (strcmp(p->addr, addr) == 0)
            return p;
    struct peer_count *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    str_copy(p->addr, sizeof p->addr, addr);
    p->next = *slot;
    *slot = p;
    return p;
}

static void peer_put(struct worker *w, struct peer_count *p)
{
    if (--p->count > 0)
        return;
    for (struct peer_count **pp = &w->peers[hash_addr(p->addr)]; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            free(p);
            return;
        }
    }
}

/* ---- connections ------------------------------------------------------------------------ */

static void conn_free(struct conn *c)
{
    struct worker *w = c->w;
    struct bufferevent *under = bufferevent_get_underlying(c->bev);
    if (c->drain_cb && under)
        evbuffer_remove_cb_entry(bufferevent_get_output(under), c->drain_cb);
    if (c->close_ev)
        event_free(c->close_ev);
    if (c->pause_ev)
        event_free(c->pause_ev);
    if (c->deadline_ev)
        event_free(c->deadline_ev);
    if (c->flush_ev)
        event_free(c->flush_ev);
    if (c->held)
        evbuffer_free(c->held);
    /* A commit in flight still completes (the message may be queued without the client
     * hearing 250, as when the connection drops right after it): only its report is dropped. */
    committer_cancel(c->commit);
    control_async_cancel(c->ctl);
    odmr_req_cancel(c->atrn_req);
    if (c->atrn_fd >= 0)
        close(c->atrn_fd);
    if (c->pair)
        bufferevent_free(c->pair);
    session_free(c->session); /* cancels a relayed AUTH exchange (sasl_cancel) */
    if (c->sasl_req)
        dovecot_auth_cancel(c->sasl_req);
    authpool_cancel(c->check); /* the thread may still run it; nobody hears the result */
    bufferevent_free(c->bev); /* closes the socket */
    if (c->peer)
        peer_put(w, c->peer);
    if (w->shared)
        peertab_close(w->shared, w->index, c->peer_slot);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    free(c);
    if (w->stopping && w->nconns == 0)
        event_base_loopexit(w->base, NULL);
}

static void conn_finish(struct conn *c);

/* Direct writing. libevent's bufferevent writes only once epoll said the socket is writable:
 * every reply cost two epoll_ctl calls (write interest on, then off) and a loop turn before
 * its writev. A reply is a few dozen octets and the socket's send buffer is nearly always
 * free, so a plain connection writes at the end of the loop turn in which its replies were
 * added (all of them in one writev, pipelined ones included), and hands the bufferevent
 * only what the kernel did not take. */
static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct conn *c = arg;
    if (!c->direct)
        return; /* became TLS or a relay meanwhile: the bufferevent writes */
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out) > 0) {
        /* A socket bufferevent keeps the start of its output frozen so that only it drains
         * it; it is not writing now (EV_WRITE is off), so we may. */
        evbuffer_unfreeze(out, 1);
        (void)evbuffer_write(out, bufferevent_getfd(c->bev));
        evbuffer_freeze(out, 1);
    }
    if (evbuffer_get_length(out) > 0) {
        /* The kernel took part or nothing (full, or an error): the bufferevent waits for
         * writability, applies the write timeout and reports an error through conn_event. */
        bufferevent_enable(c->bev, EV_WRITE);
        return;
    }
    if (c->closing)
        conn_finish(c);
}

/* Something was added to c->bev's output: a direct connection flushes it this loop turn. */
static void conn_output_added(struct conn *c)
{
    if (c->direct && !(bufferevent_get_enabled(c->bev) & EV_WRITE))
        event_active(c->flush_ev, EV_WRITE, 0);
}

/* From now on the bufferevent does all the writing (STARTTLS, an ATRN relay). */
static void conn_stop_direct(struct conn *c)
{
    if (!c->direct)
        return;
    c->direct = false;
    bufferevent_enable(c->bev, EV_WRITE); /* writes what is left, in order */
}

static void session_write(void *ctx, const char *buf, size_t len)
{
    struct conn *c = ctx;
    if (c->paused && c->held) {
        if (evbuffer_add(c->held, buf, len) < 0)
            log_err("cannot buffer reply: out of memory");
        return;
    }
    if (bufferevent_write(c->bev, buf, len) < 0)
        log_err("cannot buffer reply: out of memory");
    conn_output_added(c);
}

static void process_input(struct conn *c, struct evbuffer *in);

/* The committer made the message durable (or failed): now the session answers 250 (or
 * 451/452), and input the client pipelined behind the message is processed. */
static void on_committed(void *arg, int err)
{
    struct conn *c = arg;
    c->commit = NULL;
    if (c->closing)
        return; /* the session already ended (timeout, shutdown): nobody to answer */
    session_commit_done(c->session, err);
    bufferevent_enable(c->bev, EV_READ);
    process_input(c, bufferevent_get_input(c->bev));
}

/* End of data with a committer: hand the message over and read nothing from this client until
 * it is durable (other sessions go on meanwhile). Reading stays off so a client cannot pile
 * up input, and no read timeout runs while the wait is ours. */
static void session_commit(void *ctx, struct queue_writer *qw)
{
    struct conn *c = ctx;
    bufferevent_disable(c->bev, EV_READ);
    c->commit = committer_submit(c->w->committer, qw, on_committed, c);
}

static void on_pause_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct conn *c = arg;
    c->paused = false;
    if (evbuffer_get_length(c->held) > 0 && bufferevent_write_buffer(c->bev, c->held) < 0)
        log_err("cannot buffer reply: out of memory");
    conn_output_added(c);
    bufferevent_enable(c->bev, EV_READ);
    process_input(c, bufferevent_get_input(c->bev));
}

/* The session asks for a delay (after a failed AUTH): hold the replies written from now on
 * and read nothing more until it is over, so a client cannot pipeline guesses past it. */
static void session_pause(void *ctx, unsigned ms)
{
    struct conn *c = ctx;
    if (!c->pause_ev)
        c->pause_ev = evtimer_new(c->w->base, on_pause_over, c);
    if (!c->held)
        c->held = evbuffer_new();
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    if (!c->pause_ev || !c->held || evtimer_add(c->pause_ev, &tv) < 0)
        return; /* no timer: no delay, the rest still works */
    c->paused = true;
    bufferevent_disable(c->bev, EV_READ);
}

/* The answer MODE_WAIT waited for has come (queue manager, Dovecot): read again, and first
 * what the client pipelined meanwhile. */
static void resume_input(struct conn *c)
{
    bufferevent_enable(c->bev, EV_READ);
    process_input(c, bufferevent_get_input(c->bev));
}

/* ETRN (RFC 1985): the session asks the queue manager over its control socket; input waits
 * (MODE_WAIT) until the answer, so the worker's other sessions never do. */
#define CONTROL_WAIT 30 /* seconds before ETRN answers 458 without the queue manager's answer */

static void control_answered(void *arg, long n, const char *err)
{
    struct conn *c = arg;
    c->ctl = NULL;
    session_control_done(c->session, n, err);
    if (!c->closing && !c->handshaking && !c->paused)
        resume_input(c);
}

static void session_control(void *ctx, const char *request)
{
    struct conn *c = ctx;
    char err[256];
    c->ctl = control_async_start(c->w->base, c->w->cfg, request, CONTROL_WAIT, control_answered,
                                 c, err, sizeof err);
    if (!c->ctl)
        session_control_done(c->session, -1, err);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg);

/* Arm the input timeout for the session's state (RFC 5321 4.5.3.2). Data blocks use the
 * bufferevent's read timeout, which every arriving octet renews: that is the data block
 * timeout's meaning. Waiting for a command (or a TLS handshake) uses a deadline renewed only
 * when a whole line was taken (progress), so a command trickled one octet at a time
 * (slowloris) still ends at timeout_command. */
static void set_timeout(struct conn *c, bool progress)
{
    struct timeval wr = {.tv_sec = c->w->cfg->timeout_command};
    enum session_mode mode = session_mode(c->session);
    if (!c->handshaking && (mode == MODE_DATA || mode == MODE_CHUNK)) {
        struct timeval rd = {.tv_sec = session_timeout_seconds(c->session)};
        bufferevent_set_timeouts(c->bev, &rd, &wr);
        if (c->deadline_ev)
            event_del(c->deadline_ev);
        return;
    }
    bufferevent_set_timeouts(c->bev, NULL, &wr);
    if (!c->deadline_ev)
        c->deadline_ev = evtimer_new(c->w->base, on_deadline, c);
    if (!c->deadline_ev)
        return; /* out of memory: the write timeout and the connection limits still apply */
    if (progress || !evtimer_pending(c->deadline_ev, NULL)) {
        struct timeval rd = {.tv_sec = c->w->cfg->timeout_command};
        if (evtimer_add(c->deadline_ev, &rd) < 0)
            log_err("cannot arm the command timeout client=[%s]", c->peer->addr);
    }
}

/* Has every reply reached the socket? Under TLS (a filter over the socket's bufferevent) the
 * encrypted bytes wait in the underlying output buffer, not in ours. */
static bool conn_flushed(struct conn *c)
{
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
        return false;
    struct bufferevent *under = bufferevent_get_underlying(c->bev);
    return !under || evbuffer_get_length(bufferevent_get_output(under)) == 0;
}

static void on_close_ev(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct conn *c = arg;
    if (what & EV_TIMEOUT)
        conn_free(c);
    else
        conn_finish(c);
}

/* Wake on_close_ev (from the loop, never inside libevent's own buffer code) when the
 * underlying output buffer has drained. */
static void on_under_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)info;
    struct conn *c = arg;
    if (evbuffer_get_length(buf) == 0)
        event_active(c->close_ev, EV_READ, 0);
}

/* Free once everything is out: the last reply, then under TLS the close_notify alert
 * (RFC 8446 6.1), or the alert OpenSSL queued when a handshake failed. Called again from the
 * write callback and on_close_ev until it frees. */
static void conn_finish(struct conn *c)
{
    if (!conn_flushed(c))
        return;
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    if (ssl && !c->tls_closed) {
        c->tls_closed = true;
        if (SSL_is_init_finished(ssl)) {
            (void)SSL_shutdown(ssl); /* queues close_notify; the peer's is not awaited */
            ERR_clear_error();
            if (!conn_flushed(c))
                return;
        }
    }
    conn_free(c);
}

/* After the session ended: stop reading, let the reply drain, then free. */
static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->paused) { /* closing ends a failed-AUTH pause: the held replies (and 421) go out */
        c->paused = false;
        event_del(c->pause_ev);
        if (bufferevent_write_buffer(c->bev, c->held) < 0)
            log_err("cannot buffer reply: out of memory");
        conn_output_added(c);
    }
    bufferevent_disable(c->bev, EV_READ);
    /* A client that stops reading cannot keep us: give up after the command timeout. */
    struct timeval deadline = {.tv_sec = c->w->cfg->timeout_command};
    struct bufferevent *under = bufferevent_get_underlying(c->bev);
    c->close_ev = event_new(c->w->base, -1, 0, on_close_ev, c);
    if (!c->close_ev || event_add(c->close_ev, &deadline) < 0) {
        conn_free(c);
        return;
    }
    if (under)
        c->drain_cb = evbuffer_add_cb(bufferevent_get_output(under), on_under_drained, c);
    conn_finish(c);
}

/* Wrap the connection in TLS. Anything the client pipelined after STARTTLS is plaintext that
 * arrived before the handshake: it is dropped, never executed (RFC 3207 4.2, CVE-2011-0411).
 * The 220 reply already in the output buffer still goes out in clear, ahead of the handshake. */
static void start_tls(struct conn *c, struct evbuffer *in)
{
    size_t junk = evbuffer_get_length(in);
    if (junk > 0) {
        /* Only the count: the bytes are the attacker's, and would mislead log readers. */
        log_warn("discarded %zu octets sent after STARTTLS before the handshake client=[%s]",
                 junk, c->peer->addr);
        evbuffer_drain(in, junk);
    }
    conn_stop_direct(c); /* the 220 goes out in clear, ahead of the handshake */
    SSL *ssl = tls_server_ssl(c->w->tls);
    struct bufferevent *tb = ssl ? bufferevent_openssl_filter_new(
                                       c->w->base, c->bev, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                       BEV_OPT_CLOSE_ON_FREE)
                                 : NULL;
    if (!tb) {
        log_err("cannot start TLS client=[%s]", c->peer->addr);
        if (ssl)
            SSL_free(ssl);
        session_abort(c->session);
        conn_close(c);
        return;
    }
    c->bev = tb;
    c->handshaking = true;
    bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
    bufferevent_setcb(tb, conn_read, conn_write, conn_event, c);
    set_timeout(c, true);
    bufferevent_enable(tb, EV_READ | EV_WRITE);
}

static void process_input(struct conn *c, struct evbuffer *in);

/* The handshake is done: tell the session, and greet on an implicit-TLS listener. A TLS 1.3
 * client may send its first command with its Finished message; libevent can hand us those
 * decrypted octets before this event, so they wait in the input buffer until now. */
static void tls_ready(struct conn *c)
{
    char desc[128];
    c->handshaking = false;
    tls_describe(bufferevent_openssl_get_ssl(c->bev), desc, sizeof desc);
    session_tls_started(c->session, desc);
    if (c->implicit_tls)
        session_start(c->session);
    set_timeout(c, true); /* the handshake was progress: the first command gets a full wait */
    process_input(c, bufferevent_get_input(c->bev));
}

/* ---- ATRN: the turned connection (RFC 2645) -------------------------------------------- */

/* Queue manager -> customer. */
static void pair_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (bufferevent_write_buffer(c->bev, bufferevent_get_input(bev)) < 0)
        log_err("cannot relay: out of memory");
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > RELAY_HIGH)
        bufferevent_disable(bev, EV_READ); /* conn_write resumes when the customer caught up */
}

/* The queue manager is done (QUIT answered) or gone: let the last bytes out, then close. */
static void pair_event(struct bufferevent *bev, short what, void *arg)
{
    (void)what;
    struct conn *c = arg;
    pair_read(bev, c);
    bufferevent_free(c->pair);
    c->pair = NULL;
    log_info("atrn client=[%s] relay finished", c->peer->addr);
    conn_close(c);
}

/* The roles have turned: from now on the connection carries the queue manager's SMTP
 * client; whatever the customer already sent (its 220) goes first. Its read timeout is the
 * queue manager's business (its client has RFC 5321 timeouts and closes the pair). */
static void relay_start(struct conn *c)
{
    c->pair = bufferevent_socket_new(c->w->base, c->atrn_fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->pair) {
        log_err("cannot relay ATRN client=[%s]: out of memory", c->peer->addr);
        session_abort(c->session);
        conn_close(c);
        return;
    }
    c->atrn_fd = -1;
    conn_stop_direct(c); /* pair_read and conn_write pace the relay through the bufferevent */
    if (c->deadline_ev) /* the command deadline is over: the queue manager's client times out */
        event_del(c->deadline_ev);
    struct timeval wr = {.tv_sec = c->w->cfg->timeout_command};
    bufferevent_set_timeouts(c->bev, NULL, &wr);
    bufferevent_setcb(c->pair, pair_read, NULL, pair_event, c);
    bufferevent_enable(c->pair, EV_READ | EV_WRITE);
    struct evbuffer *in = bufferevent_get_input(c->bev);
    if (evbuffer_get_length(in) > 0 && bufferevent_write_buffer(c->pair, in) < 0)
        log_err("cannot relay: out of memory");
}

static void on_atrn_answer(void *arg, long messages, const char *why)
{
    struct conn *c = arg;
    c->atrn_req = NULL;
    if (messages <= 0 && c->atrn_fd >= 0) {
        close(c->atrn_fd);
        c->atrn_fd = -1;
    }
    session_atrn_result(c->session, messages, why);
    if (session_mode(c->session) == MODE_RELAY) {
        relay_start(c);
        bufferevent_enable(c->bev, EV_READ); /* now the customer's side of the relay */
    } else {
        resume_input(c); /* commands pipelined meanwhile */
    }
}

/* The session accepted an ATRN: hand one end of a socketpair to the queue manager. */
static void session_atrn(void *ctx, const char *domains)
{
    struct conn *c = ctx;
    char err[256] = "cannot create a socket pair";
    int sp[2] = {-1, -1};
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0) {
        c->atrn_req = odmr_chan_request(c->w->base, c->w->cfg, domains, sp[1], on_atrn_answer,
                                        c, err, sizeof err);
        close(sp[1]); /* the queue manager has its own copy now */
        if (c->atrn_req && evutil_make_socket_nonblocking(sp[0]) == 0) {
            c->atrn_fd = sp[0];
            return;
        }
        close(sp[0]);
        if (c->atrn_req) {
            odmr_req_cancel(c->atrn_req);
            c->atrn_req = NULL;
        }
    }
    log_warn("atrn client=[%s]: %s", c->peer->addr, err);
    session_atrn_result(c->session, -1, "the queue manager is not available");
}

/* Hand complete command lines or DATA/BDAT octets to the session, as its mode asks. */
static void process_input(struct conn *c, struct evbuffer *in)
{
    bool progress = false; /* a whole line or some data was taken: renew the deadline */
    for (;;) {
        enum session_mode mode = session_mode(c->session);
        if (mode == MODE_CLOSE || mode == MODE_STARTTLS || mode == MODE_WAIT ||
            mode == MODE_RELAY || mode == MODE_COMMIT || c->paused)
            break;
        size_t have = evbuffer_get_length(in);
        if (have == 0)
            break;
        if (mode == MODE_DATA || mode == MODE_CHUNK) {
            struct evbuffer_iovec v;
            if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
                break;
            size_t used = session_data(c->session, v.iov_base, v.iov_len);
            progress = true;
            if (evbuffer_drain(in, used) < 0)
                break;
            continue;
        }
        size_t eol_len = 0;
        struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF_STRICT);
        /* AUTH lines may be longer than commands (RFC 4954 4): the session says how long. */
        size_t max = session_max_line(c->session);
        if (eol.pos < 0) {
            /* No CRLF yet. Past the limit, drop what we have but a trailing CR (the CRLF may be
             * split across reads) and remember to answer 500 at the end of the line. */
            if (have > max) {
                evbuffer_drain(in, have - 1);
                c->discarding = true;
            }
            break;
        }
        size_t len = (size_t)eol.pos;
        if (c->discarding || len + 2 > max) {
            evbuffer_drain(in, len + eol_len);
            c->discarding = false;
            progress = true;
            session_line_too_long(c->session);
            continue;
        }
        const unsigned char *line = evbuffer_pullup(in, (ev_ssize_t)(len + eol_len));
        if (!line)
            break;
        session_line(c->session, (const char *)line, len);
        progress = true;
        if (evbuffer_drain(in, len + eol_len) < 0)
            break;
    }
    enum session_mode mode = session_mode(c->session);
    if (mode == MODE_CLOSE)
        conn_close(c);
    else if (mode == MODE_STARTTLS)
        start_tls(c, in);
    else if (mode == MODE_WAIT)
        bufferevent_disable(c->bev, EV_READ); /* until the answer comes: resume_input */
    else
        set_timeout(c, progress);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct conn *c = arg;
    if (c->closing)
        return;
    if (c->handshaking) {
        log_info("TLS handshake failed client=[%s]: timeout", c->peer->addr);
        session_abort(c->session);
        conn_free(c);
        return;
    }
    session_timeout(c->session);
    conn_close(c);
}

/* ---- AUTH relayed to Dovecot (session_sasl) --------------------------------------------- */

/* The session had the answer its AUTH waited for (MODE_WAIT: Dovecot, a password check):
 * close, wait for the failure delay, or go on with what the client pipelined. */
static void auth_answered(struct conn *c)
{
    if (c->closing)
        return;
    if (session_mode(c->session) == MODE_CLOSE) {
        conn_close(c);
        return;
    }
    if (c->paused)
        return; /* a failed AUTH: on_pause_over resumes */
    resume_input(c);
}

static void on_sasl_answer(void *arg, const struct dovecot_line *answer)
{
    struct conn *c = arg;
    if (!answer || answer->kind != DOVECOT_CONT)
        c->sasl_req = NULL; /* dovecot_auth has forgotten the request */
    session_sasl_answer(c->session, answer);
    auth_answered(c);
}

static const struct dovecot_mechs *sasl_mechs(void *ctx)
{
    struct conn *c = ctx;
    return dovecot_auth_mechs(c->w->dovecot);
}

static void peer_string(const struct sockaddr *sa, char *out, size_t cap)
{
    const void *src = NULL;
    int af = sa->sa_family;
    if (af == AF_INET)
        src = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    else if (af == AF_INET6)
        src = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if (!src || !inet_ntop(af, src, out, (socklen_t)cap))
        str_copy(out, cap, "unknown");
}

static unsigned sa_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
    return 0;
}

/* Our end of the connection, for Dovecot's lip/lport (its logs and penalties). Asked only
 * here: a getsockname per connection is a system call most sessions never need. */
static void local_end(struct conn *c)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (c->local_addr[0] || getsockname(c->fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    peer_string((const struct sockaddr *)&ss, c->local_addr, sizeof c->local_addr);
    c->local_port = sa_port((const struct sockaddr *)&ss);
}

static bool sasl_start(void *ctx, const char *mech, const char *resp, bool secured)
{
    struct conn *c = ctx;
    local_end(c);
    struct dovecot_auth_params p = {
        .mech = mech,
        .service = "smtp",
        .local_ip = c->local_addr[0] && strcmp(c->local_addr, "unknown") ? c->local_addr : NULL,
        .remote_ip = strcmp(c->peer->addr, "unknown") ? c->peer->addr : NULL,
        .local_port = c->local_port,
        .remote_port = c->peer_port,
        .secured = secured,
        /* tern's growing delay and lockout apply; Dovecot's per-address penalty on top would
         * stretch a failure past 15 s (and count SMTP guesses against IMAP users) */
        .no_penalty = true,
        .resp = resp,
    };
    if (c->sasl_req)
        dovecot_auth_cancel(c->sasl_req);
    c->sasl_req = dovecot_auth_start(c->w->dovecot, &p, on_sasl_answer, c);
    return c->sasl_req != NULL;
}

static bool sasl_cont(void *ctx, const char *resp)
{
    struct conn *c = ctx;
    if (c->sasl_req && dovecot_auth_continue(c->sasl_req, resp))
        return true;
    if (c->sasl_req)
        dovecot_auth_cancel(c->sasl_req);
    c->sasl_req = NULL;
    return false;
}

static void sasl_cancel(void *ctx)
{
    struct conn *c = ctx;
    if (c->sasl_req)
        dovecot_auth_cancel(c->sasl_req);
    c->sasl_req = NULL;
}

static const struct session_sasl sasl_ops = {
    .mechs = sasl_mechs,
    .start = sasl_start,
    .cont = sasl_cont,
    .cancel = sasl_cancel,
};

/* ---- AUTH PLAIN/LOGIN against the users file: crypt off the loop (authpool.h) ------------ */

static void on_password_checked(void *arg, bool ok)
{
    struct conn *c = arg;
    c->check = NULL;
    session_password_checked(c->session, ok);
    auth_answered(c);
}

static void session_check_password(void *ctx, const char *hash, const char *password)
{
    struct conn *c = ctx;
    c->check = authpool_check(c->w->authpool, hash, password, on_password_checked, c);
}

static void conn_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->pair) { /* ATRN relay: customer -> queue manager */
        if (bufferevent_write_buffer(c->pair, bufferevent_get_input(bev)) < 0)
            log_err("cannot relay: out of memory");
        return;
    }
    if (c->handshaking || c->closing || c->paused)
        return; /* tls_ready() processes what arrived with the handshake */
    process_input(c, bufferevent_get_input(bev));
}

static void conn_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->direct)
        bufferevent_disable(bev, EV_WRITE); /* the leftover is out: back to direct writes */
    if (c->pair)
        bufferevent_enable(c->pair, EV_READ); /* the customer caught up (RELAY_HIGH) */
    if (c->closing)
        conn_finish(c);
}

static void conn_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    if (c->closing) {
        conn_free(c);
        return;
    }
    if (what & BEV_EVENT_CONNECTED) {
        tls_ready(c);
        return;
    }
    if (c->handshaking) {
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        if (ssl && SSL_is_init_finished(ssl)) {
            /* The client's Finished and its close_notify (or EOF) came in one read: the
             * handshake did succeed, so record it before ending the session normally. */
            tls_ready(c);
            if (c->closing)
                return;
            session_abort(c->session);
            conn_close(c);
            return;
        }
        char why[256] = "connection closed";
        unsigned long e = bufferevent_get_openssl_error(bev);
        if (e)
            ERR_error_string_n(e, why, sizeof why);
        else if (what & BEV_EVENT_TIMEOUT)
            str_copy(why, sizeof why, "timeout");
        log_info("TLS handshake failed client=[%s]: %s", c->peer->addr, why);
        session_abort(c->session);
        if (what & BEV_EVENT_ERROR)
            conn_close(c); /* let OpenSSL's alert (e.g. protocol_version) reach the client */
        else
            conn_free(c);
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING)) {
        session_timeout(c->session);
        conn_close(c);
        return;
    }
    if (what & BEV_EVENT_ERROR)
        log_info("connection error client=[%s]: %s", c->peer ? c->peer->addr : "?",
                 strerror(EVUTIL_SOCKET_ERROR()));
    session_abort(c->session);
    conn_free(c);
}

/* Refuse a connection we cannot serve: a best-effort 421 on the raw socket, then close. */
static void refuse(int fd, enum reply_id id, const char *why, const char *addr)
{
    char buf[SMTP_REPLY_MAX];
    size_t n = reply_format(buf, sizeof buf, id, false, why);
    if (n > 0 && send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        log_debug("cannot send 421 to [%s]: %s", addr, strerror(errno));
    close(fd);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)l, (void)salen;
    struct worker *w = arg;
    const struct listen_cfg *lc = NULL;
    char addr[64];
    peer_string(sa, addr, sizeof addr);
    for (size_t i = 0; i < w->nlisteners; i++)
        if (w->listeners[i] == l)
            lc = w->fds[i].cfg;

    if (w->nconns >= w->cfg->max_connections) {
        log_warn("refused client=[%s] reason=max_connections (%zu)", addr, w->nconns);
        refuse(fd, RP_TOO_MANY_CONN, "Too many connections, try again later", addr);
        return;
    }
    struct peer_count *pc = peer_get(w, addr);
    if (!pc) {
        refuse(fd, RP_RESOURCES, NULL, addr);
        return;
    }
    size_t slot = PEERTAB_NONE;
    if (w->shared) {
        unsigned open = 0;
        enum peer_verdict v = peertab_open(w->shared, w->index, addr, time(NULL),
                                           w->cfg->max_connections_per_ip,
                                           w->cfg->max_connection_rate, &slot, &open);
        if (v != PEER_OK) {
            bool many = v == PEER_TOO_MANY;
            log_warn("refused client=[%s] reason=%s (%u open)", addr,
                     many ? "max_connections_per_ip" : "max_connection_rate", open);
            if (pc->count == 0)
                peer_put(w, pc);
            refuse(fd, RP_TOO_MANY_CONN,
                   many ? "Too many connections from your address, try again later"
                        : "Too many connections from your address in the last minute, try "
                          "again later",
                   addr);
            return;
        }
    } else if (pc->count >= w->cfg->max_connections_per_ip) {
        log_warn("refused client=[%s] reason=max_connections_per_ip (%u)", addr, pc->count);
        if (pc->count == 0)
            peer_put(w, pc);
        refuse(fd, RP_TOO_MANY_CONN, "Too many connections from your address, try again later",
               addr);
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    struct bufferevent *bev = NULL;
    bool implicit = lc && lc->kind == LISTEN_SMTPS && w->tls;
    if (c && implicit) {
        SSL *ssl = tls_server_ssl(w->tls);
        bev = ssl ? bufferevent_openssl_socket_new(w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                   BEV_OPT_CLOSE_ON_FREE)
                  : NULL;
        if (!bev && ssl)
            SSL_free(ssl);
        else if (bev)
            bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else if (c) {
        bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    struct session_io io = {.write = session_write, .ctx = c, .pause = session_pause,
                            .control = session_control, .atrn = session_atrn,
                            .commit = w->committer ? session_commit : NULL,
                            .check_password = w->authpool ? session_check_password : NULL};
    struct session *s = bev ? session_new(w->cfg, lc, addr, &io) : NULL;
    if (s) {
        session_set_users(s, w->dovecot ? NULL : w->users);
        if (w->dovecot)
            session_set_sasl(s, &sasl_ops);
        session_set_authlock(s, w->authlock);
    }
    if (!s) {
        log_err("out of memory accepting client=[%s]", addr);
        if (bev) {
            /* Frees the socket too: answer on it first (the bufferevent never wrote). */
            char buf[SMTP_REPLY_MAX];
            size_t n = reply_format(buf, sizeof buf, RP_RESOURCES, false, NULL);
            if (n > 0 && send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
                log_debug("cannot send 421 to [%s]: %s", addr, strerror(errno));
            bufferevent_free(bev);
        } else {
            refuse(fd, RP_RESOURCES, NULL, addr);
        }
        free(c);
        if (pc->count == 0)
            peer_put(w, pc);
        if (w->shared)
            peertab_close(w->shared, w->index, slot);
        return;
    }
    pc->count++;
    c->atrn_fd = -1;
    c->peer_slot = slot;
    c->w = w;
    c->fd = fd;
    c->peer_port = sa_port(sa);
    c->bev = bev;
    c->session = s;
    c->peer = pc;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    log_info("connect client=[%s] listener=%s:%u", addr, lc ? lc->addr : "?", lc ? lc->port : 0);
    bufferevent_setcb(bev, conn_read, conn_write, conn_event, c);
    c->implicit_tls = implicit;
    c->handshaking = implicit;
    c->flush_ev = implicit ? NULL : event_new(w->base, -1, 0, on_flush, c);
    c->direct = c->flush_ev != NULL; /* without the event: the bufferevent writes, as TLS */
    if (c->direct)
        bufferevent_disable(bev, EV_WRITE); /* a new bufferevent starts with writing on */
    if (!implicit)
        session_start(s);
    set_timeout(c, true);
    bufferevent_enable(bev, c->direct ? EV_READ : EV_READ | EV_WRITE);
}

/* The spare descriptor: held while all is well, so that at EMFILE one slot can be freed to
 * accept a waiting client just long enough to tell it 421. */
static void reserve_fd_open(struct worker *w)
{
    if (w->reserve_fd < 0)
        w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct worker *w = arg;
    if (w->stopping)
        return;
    reserve_fd_open(w);
    for (size_t i = 0; i < w->nlisteners; i++)
        evconnlistener_enable(w->listeners[i]);
}

/* Accepting failed. Out of descriptors or memory, the listening socket stays readable while
 * clients wait, so simply going on would spin the loop at 100% CPU: answer the waiting
 * clients 421 (with the spare descriptor), then stop accepting for a second. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct worker *w = arg;
    int e = EVUTIL_SOCKET_ERROR();
    int lfd = (int)evconnlistener_get_fd(l);
    if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM) {
        log_err("accept failed on fd %d: %s", lfd, strerror(e));
        return;
    }
    unsigned shed = 0;
    if (w->reserve_fd >= 0) {
        close(w->reserve_fd);
        w->reserve_fd = -1;
        for (int fd; shed < 64 && (fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0; shed++)
            refuse(fd, RP_RESOURCES, NULL, "?");
        reserve_fd_open(w);
    }
    log_err("accept failed on fd %d: %s (%zu connections open); answered %u waiting "
            "clients 421, not accepting for 1 s", lfd, strerror(e), w->nconns, shed);
    struct timeval tv = {.tv_sec = 1};
    for (size_t i = 0; i < w->nlisteners; i++)
        evconnlistener_disable(w->listeners[i]);
    if (!w->ev_resume || evtimer_add(w->ev_resume, &tv) < 0)
        on_resume(-1, 0, w); /* no timer: better spin than stop serving for good */
}

/* ---- shutdown --------------------------------------------------------------------------- */

static void on_grace_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct worker *w = arg;
    for (struct conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (!c->closing) {
            session_shutdown(c->session);
            conn_close(c);
        }
    }
    /* Whatever could not be flushed by now is dropped. */
    struct timeval tv = {.tv_sec = 2};
    event_base_loopexit(w->base, &tv);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct worker *w = arg;
    if (w->stopping)
        return;
    w->stopping = true;
    log_info("stopping on signal %d: %zu sessions open, grace %d s", (int)sig, w->nconns,
             w->cfg->shutdown_grace);
    for (size_t i = 0; i < w->nlisteners; i++)
        evconnlistener_disable(w->listeners[i]);
    if (w->nconns == 0) {
        event_base_loopexit(w->base, NULL);
        return;
    }
    struct timeval tv = {.tv_sec = w->cfg->shutdown_grace};
    w->ev_grace = evtimer_new(w->base, on_grace_over, w);
    if (!w->ev_grace || evtimer_add(w->ev_grace, &tv) < 0)
        on_grace_over(-1, 0, w);
}

int smtp_worker_run(const struct config *cfg, const struct listener_fd *fds, size_t nfds,
                    struct tls_server *tls, const struct users *users, struct peertab *peers,
                    struct authlock *authlock, size_t index)
{
    struct worker w = {.cfg = cfg, .fds = fds, .tls = tls, .users = users, .reserve_fd = -1,
                       .shared = peers, .authlock = authlock, .index = index};
    reserve_fd_open(&w);
    int status = 1;
    signal(SIGPIPE, SIG_IGN);
    w.base = event_base_new();
    if (!w.base) {
        log_err("cannot create event loop");
        return 1;
    }
    w.listeners = calloc(nfds ? nfds : 1, sizeof *w.listeners);
    if (!w.listeners)
        goto out;
    w.committer = committer_new(w.base);
    if (!w.committer) /* still correct, only slower: each session fsyncs on the loop */
        log_warn("cannot start the commit thread (%s): committing inline", strerror(errno));
    if (users && cfg->auth_backend != AUTH_BACKEND_DOVECOT) {
        w.authpool = authpool_new(w.base, AUTH_CHECK_THREADS);
        if (!w.authpool) /* still correct: AUTH then stalls this worker ~50 ms per check */
            log_warn("cannot start the password check threads (%s): checking on the event loop",
                     strerror(errno));
    }
    for (size_t i = 0; i < nfds; i++) {
        /* libevent accepts until EAGAIN: a blocking listener would stall the whole loop. */
        if (evutil_make_socket_nonblocking(fds[i].fd) < 0) {
            log_err("cannot make fd %d non-blocking", fds[i].fd);
            goto out;
        }
        w.listeners[i] = evconnlistener_new(w.base, on_accept, &w, LEV_OPT_CLOSE_ON_FREE, 0,
                                            fds[i].fd);
        if (!w.listeners[i]) {
            log_err("cannot listen on fd %d", fds[i].fd);
            goto out;
        }
        w.nlisteners++;
        evconnlistener_set_error_cb(w.listeners[i], on_accept_error);
    }
    if (cfg->auth_backend == AUTH_BACKEND_DOVECOT) {
        w.dovecot = dovecot_auth_new(w.base, cfg->dovecot_auth_socket, cfg->dovecot_auth_timeout);
        dovecot_auth_mechs(w.dovecot); /* connect now: EHLO then lists what it offers */
    }
    w.ev_resume = evtimer_new(w.base, on_resume, &w);
    w.ev_term = evsignal_new(w.base, SIGTERM, on_stop, &w);
    w.ev_int = evsignal_new(w.base, SIGINT, on_stop, &w);
    if (!w.ev_term || !w.ev_int || evsignal_add(w.ev_term, NULL) < 0 ||
        evsignal_add(w.ev_int, NULL) < 0) {
        log_err("cannot install signal handlers");
        goto out;
    }
    if (event_base_dispatch(w.base) < 0)
        log_err("event loop failed");
    else
        status = 0;
out:
    while (w.conns)
        conn_free(w.conns);
    committer_free(w.committer); /* after the sessions: finishes the commits in flight */
    authpool_free(w.authpool);    /* after the sessions: nobody waits for a check any more */
    for (size_t i = 0; i < w.nlisteners; i++)
        evconnlistener_free(w.listeners[i]);
    free(w.listeners);
    dovecot_auth_free(w.dovecot);
    if (w.reserve_fd >= 0)
        close(w.reserve_fd);
    if (w.ev_resume)
        event_free(w.ev_resume);
    if (w.ev_term)
        event_free(w.ev_term);
    if (w.ev_int)
        event_free(w.ev_int);
    if (w.ev_grace)
        event_free(w.ev_grace);
    for (size_t i = 0; i < PEER_BUCKETS; i++)
        while (w.peers[i]) {
            struct peer_count *p = w.peers[i];
            w.peers[i] = p->next;
            free(p);
        }
    event_base_free(w.base);
    return status;
}
