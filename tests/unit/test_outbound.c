/* test_outbound.c - the SMTP client (src/outbound.c) against a small scripted SMTP server on
 * 127.0.0.1 in the same event loop: per-recipient results, PIPELINING or not, HELO fallback,
 * transactions split at outbound_max_rcpts, dot-stuffing, BDAT, DSN parameters, the
 * 8BITMIME and SIZE refusals, greeting and connection failures, connection reuse. Routes are
 * address literals, so no DNS is involved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "outbound.h"

/* ---- the scripted server ------------------------------------------------------------------- */

struct server {
    struct event_base *base;
    struct evconnlistener *lis;
    unsigned short port;
    const char *greeting;     /* "220 fake ESMTP" */
    const char *ehlo;         /* full reply with CRLFs, or NULL: 502 (HELO fallback) */
    const char *mail_reply;   /* default "250 2.1.0 ok" */
    const char *data_reply;   /* after the content; default "250 2.0.0 queued" */
    size_t max_rcpts;         /* 452 beyond this many per transaction; 0 = no limit */
    bool close_after_data;    /* hang up right after the reply to the data */
    char transcript[65536];   /* every line the client sent, "\n"-separated */
    size_t tlen;
    int connections;
    int mails;
    bool pipelined_seen;      /* a command arrived while a reply was still owed */
    /* per connection (one at a time is enough here) */
    bool in_data;
    long bdat_left;
    size_t rcpts;
};

static void tr_add(struct server *s, const char *p, size_t n)
{
    if (s->tlen + n + 2 >= sizeof s->transcript)
        return;
    memcpy(s->transcript + s->tlen, p, n);
    s->tlen += n;
    s->transcript[s->tlen++] = '\n';
    s->transcript[s->tlen] = '\0';
}

static void say(struct bufferevent *bev, const char *text)
{
    bufferevent_write(bev, text, strlen(text));
    bufferevent_write(bev, "\r\n", 2);
}

static void srv_event(struct bufferevent *bev, short what, void *arg);

static void srv_close_when_flushed(struct bufferevent *bev, void *arg)
{
    (void)arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_free(bev);
}

static void srv_line(struct server *s, struct bufferevent *bev, const char *line)
{
    if (s->in_data) {
        if (strcmp(line, ".") == 0) {
            s->in_data = false;
            say(bev, s->data_reply ? s->data_reply : "250 2.0.0 queued");
            if (s->close_after_data) {
                bufferevent_disable(bev, EV_READ);
                bufferevent_setcb(bev, NULL, srv_close_when_flushed, srv_event, s);
            }
        }
        return;
    }
    if (strncmp(line, "EHLO ", 5) == 0) {
        if (s->ehlo)
            bufferevent_write(bev, s->ehlo, strlen(s->ehlo));
        else
            say(bev, "502 5.5.1 EHLO not implemented");
    } else if (strncmp(line, "HELO ", 5) == 0) {
        say(bev, "250 fake.test");
    } else if (strncmp(line, "MAIL FROM:", 10) == 0) {
        s->mails++;
        s->rcpts = 0;
        say(bev, s->mail_reply ? s->mail_reply : "250 2.1.0 ok");
    } else if (strncmp(line, "RCPT TO:<", 9) == 0) {
        char c = line[9];
        if (s->max_rcpts && s->rcpts >= s->max_rcpts)
            say(bev, "452 4.5.3 too many recipients");
        else if (c == 't')
            say(bev, "451 4.2.0 try later");
        else if (c == 'r')
            say(bev, "550 5.1.1 no such user");
        else {
            s->rcpts++;
            say(bev, "250 2.1.5 ok");
        }
    } else if (strcmp(line, "DATA") == 0) {
        s->in_data = true;
        say(bev, "354 go ahead");
    } else if (strncmp(line, "BDAT ", 5) == 0) {
        s->bdat_left = atol(line + 5);
    } else if (strcmp(line, "RSET") == 0) {
        say(bev, "250 2.0.0 reset");
    } else if (strcmp(line, "QUIT") == 0) {
        say(bev, "221 bye");
    } else {
        say(bev, "500 5.5.2 what?");
    }
}

static void srv_read(struct bufferevent *bev, void *arg)
{
    struct server *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        if (s->bdat_left > 0) {
            size_t have = evbuffer_get_length(in);
            if (have == 0)
                return;
            size_t take = have < (size_t)s->bdat_left ? have : (size_t)s->bdat_left;
            char *buf = malloc(take);
            evbuffer_remove(in, buf, take);
            tr_add(s, buf, take);
            free(buf);
            s->bdat_left -= (long)take;
            if (s->bdat_left == 0)
                say(bev, s->data_reply ? s->data_reply : "250 2.0.0 queued");
            continue;
        }
        size_t n;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT);
        if (!line)
            return;
        tr_add(s, line, n);
        if (!s->in_data && evbuffer_get_length(in) > 0 &&
            evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_CRLF_STRICT).pos >= 0)
            s->pipelined_seen = true;
        srv_line(s, bev, line);
        free(line);
    }
}

static void srv_event(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_free(bev);
}

static void srv_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                       int salen, void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    struct server *s = arg;
    s->connections++;
    s->in_data = false;
    s->bdat_left = 0;
    struct bufferevent *bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, srv_read, NULL, srv_event, s);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    say(bev, s->greeting ? s->greeting : "220 fake.test ESMTP");
}

static void server_start(struct server *s, struct event_base *base)
{
    s->base = base;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->lis = evconnlistener_new_bind(base, srv_accept, s,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                     (struct sockaddr *)&sin, sizeof sin);
    assert_non_null(s->lis);
    socklen_t len = sizeof sin;
    getsockname(evconnlistener_get_fd(s->lis), (struct sockaddr *)&sin, &len);
    s->port = ntohs(sin.sin_port);
}

/* ---- the client side ----------------------------------------------------------------------- */

struct fixture {
    struct event_base *base;
    struct config cfg;
    struct server srv;
    struct outbound *ob;
    int fd;
    off_t size;
    struct ob_msg msg;
    int done;
    int want;
};

static const char content[] =
    "From: a@b.test\r\nSubject: hi\r\n\r\nline one\r\n.starts with a dot\r\nend\r\n";

static void on_done(struct ob_job *job, void *arg)
{
    (void)job;
    struct fixture *f = arg;
    if (++f->done >= f->want)
        event_base_loopexit(f->base, NULL);
}

static struct fixture *fx_new(const char *body)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->base = event_base_new();
    f->cfg.hostname = "client.test";
    f->cfg.outbound_timeout_command = 5;
    f->cfg.outbound_idle = 1;
    server_start(&f->srv, f->base);
    char path[] = "/tmp/test_outbound.XXXXXX";
    f->fd = mkstemp(path);
    assert_true(f->fd >= 0);
    unlink(path);
    const char *c = body ? body : content;
    assert_int_equal(write(f->fd, "ENVELOPE\n", 9), 9);
    assert_int_equal(write(f->fd, c, strlen(c)), (ssize_t)strlen(c));
    f->msg = (struct ob_msg){.qid = "TESTQID", .sender = "s@client.test", .envid = "",
                             .fd = f->fd, .offset = 9, .size = (off_t)strlen(c)};
    return f;
}

static void fx_engine(struct fixture *f)
{
    char err[128];
    f->ob = outbound_new(&f->cfg, f->base, NULL, err, sizeof err);
    assert_non_null(f->ob);
}

static void job_init(struct fixture *f, struct ob_job *job, struct ob_rcpt *r, size_t n,
                     const char *const *addrs, unsigned short port)
{
    memset(job, 0, sizeof *job);
    memset(r, 0, n * sizeof *r);
    for (size_t i = 0; i < n; i++) {
        r[i].addr = addrs[i];
        r[i].orcpt = "";
        r[i].tag = (int)i;
    }
    job->route.kind = ROUTE_HOST;
    job->route.literal = true;
    strcpy(job->route.host, "127.0.0.1");
    strcpy(job->route.domain, "x.test");
    job->route.port = port;
    job->route.tls = TLS_POLICY_NONE;
    snprintf(job->route.key, sizeof job->route.key, "host:127.0.0.1:%u", (unsigned)port);
    job->msg = &f->msg;
    job->rcpts = r;
    job->nrcpts = n;
    job->done = on_done;
    job->arg = f;
}

static void run(struct fixture *f, int want)
{
    f->want = want;
    struct timeval limit = {20, 0};
    event_base_loopexit(f->base, &limit);
    event_base_dispatch(f->base);
    assert_int_equal(f->done, want);
}

static void fx_free(struct fixture *f)
{
    if (f->ob)
        outbound_free(f->ob);
    evconnlistener_free(f->srv.lis);
    /* let the server side see the closes */
    struct timeval t = {0, 50000};
    event_base_loopexit(f->base, &t);
    event_base_dispatch(f->base);
    event_base_free(f->base);
    close(f->fd);
    free(f);
}

static const char caps_pipe[] = "250-fake.test\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n"
                                "250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n";

/* ---- the tests ----------------------------------------------------------------------------- */

static void test_results_per_recipient(void **state)
{
    (void)state;
    struct fixture *f = fx_new(NULL);
    f->srv.ehlo = caps_pipe;
    fx_engine(f);
    static const char *const a[] = {"ann@x.test", "tom@x.test", "rob@x.test"};
    struct ob_rcpt r[3];
    struct ob_job job;
    job_init(f, &job, r, 3, a, f->srv.port);
    outbound_submit(f->ob, &job);
    assert_int_equal(f->done, 0); /* never reported from inside submit */
    run(f, 1);
    assert_int_equal(r[0].status, OB_SENT);
    assert_string_equal(r[0].reply, "250 2.0.0 queued");
    assert_string_equal(r[0].esc, "2.0.0");
    assert_true(r[0].remote);
    assert_int_equal(r[1].status, OB_DEFERRED);
    assert_string_equal(r[1].reply, "451 4.2.0 try later");
    assert_string_equal(r[1].esc, "4.2.0");
    assert_int_equal(r[2].status, OB_FAILED);
    assert_string_equal(r[2].esc, "5.1.1");
    char relay[64];
    snprintf(relay, sizeof relay, "127.0.0.1[127.0.0.1]:%u", (unsigned)f->srv.port);
    assert_string_equal(r[0].relay, relay);
    assert_non_null(strstr(f->srv.transcript, "EHLO client.test\n"));
    char mail[64];
    snprintf(mail, sizeof mail, "MAIL FROM:<s@client.test> SIZE=%lld\n", (long long)f->msg.size);
    assert_non_null(strstr(f->srv.transcript, mail));
    /* dot-stuffed on the wire, CRLF kept */
    assert_non_null(strstr(f->srv.transcript, "\n..starts with a dot\n"));
    assert_non_null(strstr(f->srv.transcript, "\nend\n.\n"));
    assert_false(r[0].peer_dsn);
    fx_free(f);
}

static void test_helo_fallback_no_pipelining(void **state)
{
    (void)state;
    struct fixture *f = fx_new(NULL);
    f->srv.ehlo = NULL; /* 502 to EHLO */
    fx_engine(f);
    static const char *const a[] = {"ann@x.test", "bob@x.test", "cid@x.test"};
    struct ob_rcpt r[3];
    struct ob_job job;
    job_init(f, &job, r, 3, a, f->srv.port);
    outbound_submit(f->ob, &job);
    run(f, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(r[i].status, OB_SENT);
    assert_non_null(strstr(f->srv.transcript, "HELO client.test\n"));
    assert_false(f->srv.pipelined_seen); /* one command at a time */
    assert_null(strstr(f->srv.transcript, "SIZE=")); /* no extensions after HELO */
    fx_free(f);
}

static void test_split_transactions(void **state)
{
    (void)state;
    struct fixture *f = fx_new(NULL);
    f->srv.ehlo = caps_pipe;
    f->cfg.outbound_max_rcpts = 2;
    fx_engine(f);
    static const char *const a[] = {"a1@x.test", "a2@x.test", "a3@x.test", "a4@x.test",
                                    "a5@x.test"};
    struct ob_rcpt r[5];
    struct ob_job job;
    job_init(f, &job, r, 5, a, f->srv.port);
    outbound_submit(f->ob, &job);
    run(f, 1);
    for (int i = 0; i < 5; i++)
        assert_int_equal(r[i].status, OB_SENT);
    assert_int_equal(f->srv.mails, 3);
    assert_int_equal(f->srv.connections, 1);
    fx_free(f);
}

static void test_dsn_parameters_and_bdat(void **state)
{
    (void)state;
    struct fixture *f = fx_new(NULL);
    f->srv.ehlo = "250-fake.test\r\n250-PIPELINING\r\n250-DSN\r\n250-CHUNKING\r\n"
                  "250 8BITMIME\r\n";
    fx_engine(f);
    f->msg.ret = RET_HDRS;
    f->msg.envid = "id+2B1";
    f->msg.body = BODY_8BITMIME;
    static const char *const a[] = {"ann@x.test"};
    struct ob_rcpt r[1];
    struct ob_job job;
    job_init(f, &job, r, 1, a, f->srv.port);
    r[0].notify = NOTIFY_SUCCESS | NOTIFY_DELAY;
    r[0].orcpt = "rfc822;Ann@x.test";
    outbound_submit(f->ob, &job);
    run(f, 1);
    assert_int_equal(r[0].status, OB_SENT);
    assert_true(r[0].peer_dsn);
    assert_non_null(strstr(f->srv.transcript,
                           "MAIL FROM:<s@client.test> BODY=8BITMIME RET=HDRS ENVID=id+2B1\n"));
    assert_non_null(strstr(f->srv.transcript,
                           "RCPT TO:<ann@x.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Ann@x.test\n"));
    char bdat[64];
    snprintf(bdat, sizeof bdat, "BDAT %lld LAST\n", (long long)f->msg.size);
    assert_non_null(strstr(f->srv.transcript, bdat));
    /* the content as it is: no dot-stuffing in a chunk */
    assert_non_null(strstr(f->srv.transcript, "\r\n.starts with a dot\r\n"));
    fx_free(f);
}

static void test_8bit_and_size_refused(void **state)
{
    (void)state;
    struct fixture *f = fx_new("Subject: caf\xc3\xa9\r\n\r\nbody\r\n");
    f->srv.ehlo = "250-fake.test\r\n250 PIPELINING\r\n";
    fx_engine(f);
    f->msg.body = BODY_8BITMIME;
    static const char *const a[] = {"ann@x.test"};
    struct ob_rcpt r[1];
    struct ob_job job;
    job_init(f, &job, r, 1, a, f->srv.port);
    outbound_submit(f->ob, &job);
    run(f, 1);
    assert_int_equal(r[0].status, OB_FAILED);
    assert_string_equal(r[0].esc, "5.6.3");
    assert_false(r[0].remote);
    assert_int_equal(f->srv.mails, 0);
    fx_free(f);

    /* SIZE: larger than the server's limit */
    f = fx_new(NULL);
    f->srv.ehlo = "250-fake.test\r\n250 SIZE 10\r\n";
    fx_engine(f);
    job_init(f, &job, r, 1, a, f->srv.port);
    outbound_submit(f->ob, &job);
    run(f, 1);
    assert_int_equal(r[0].status, OB_FAILED);
    assert_string_equal(r[0].esc, "5.3.4");
    assert_int_equal(f->srv.mails, 0);
    fx_free(f);
}

static void test_server_failures(void **state)
{
    (void)state;
    /* 421 greeting: temporary, with the server's words */
    struct fixture *f = fx_new(NULL);
    f->srv.greeting = "421 4.3.2 busy";
    fx_engine(f);
    static const char *const a[] = {"ann@x.test"};
    struct ob_rcpt r[1];
    struct ob_job job;
    job_init(f, &job, r, 1, a, f->srv.port);
    outbound_submit(f->ob, &job);
    run(f, 1);
    assert_int_equal(r[0].status, OB_DEFERRED);
    assert_string_equal(r[0].reply, "421 4.3.2 busy");
    assert_string_equal(r[0].esc, "4.3.2");
    assert_true(r[0].remote);

    /* 554 after the data: the accepted recipients fail */
    f->srv.greeting = NULL;
    f->srv.ehlo = caps_pipe;
    f->srv.data_reply = "554 5.7.1 spam";
    job_init(f, &job, r, 1, a, f->srv.port);
    f->done = 0;
    outbound_submit(f->ob, &job);
    run(f, 1);
    assert_int_equal(r[0].status, OB_FAILED);
    assert_string_equal(r[0].reply, "554 5.7.1 spam");

    /* MAIL refused: every recipient */
    f->srv.data_reply = NULL;
    f->srv.mail_reply = "550 5.7.1 sender refused";
    static const char *const b[] = {"ann@x.test", "bob@x.test"};
    struct ob_rcpt r2[2];
    job_init(f, &job, r2, 2, b, f->srv.port);
    f->done = 0;
    outbound_submit(f->ob, &job);
    run(f, 1);
    assert_int_equal(r2[0].status, OB_FAILED);
    assert_int_equal(r2[1].status, OB_FAILED);
    assert_string_equal(r2[1].reply, "550 5.7.1 sender refused");
    fx_free(f);
}

static void test_connection_refused(void **state)
{
    (void)state;
    struct fixture *f = fx_new(NULL);
    fx_engine(f);
    /* a port that was just free: bind, read the number, close */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof sin), 0);
    getsockname(s, (struct sockaddr *)&sin, &len);
    close(s);
    static const char *const a[] = {"ann@x.test"};
    struct ob_rcpt r[1];
    struct ob_job job;
    job_init(f, &job, r, 1, a, ntohs(sin.sin_port));
    outbound_submit(f->ob, &job);
    run(f, 1);
    assert_int_equal(r[0].status, OB_DEFERRED);
    assert_non_null(strstr(r[0].reply, "4.4.1"));
    assert_false(r[0].remote);
    assert_int_equal(outbound_jobs(f->ob), 0);
    fx_free(f);
}

static void test_reuse_and_limit(void **state)
{
    (void)state;
    struct fixture *f = fx_new(NULL);
    f->srv.ehlo = caps_pipe;
    f->cfg.outbound_concurrency = 1;
    fx_engine(f);
    static const char *const a[] = {"ann@x.test"}, *const b[] = {"bob@x.test"};
    struct ob_rcpt r1[1], r2[1];
    struct ob_job j1, j2;
    job_init(f, &j1, r1, 1, a, f->srv.port);
    job_init(f, &j2, r2, 1, b, f->srv.port);
    outbound_submit(f->ob, &j1);
    outbound_submit(f->ob, &j2);
    assert_int_equal(outbound_jobs(f->ob), 2);
    run(f, 2);
    assert_int_equal(r1[0].status, OB_SENT);
    assert_int_equal(r2[0].status, OB_SENT);
    assert_int_equal(f->srv.connections, 1); /* the second job took the first's connection */
    assert_int_equal(f->srv.mails, 2);
    assert_int_equal(outbound_connections(f->ob), 1); /* kept idle */
    /* a third job later reuses the idle connection after an RSET */
    struct ob_rcpt r3[1];
    struct ob_job j3;
    job_init(f, &j3, r3, 1, a, f->srv.port);
    f->done = 0;
    outbound_submit(f->ob, &j3);
    run(f, 1);
    assert_int_equal(r3[0].status, OB_SENT);
    assert_int_equal(f->srv.connections, 1);
    assert_non_null(strstr(f->srv.transcript, "RSET\n"));
    fx_free(f);
}

/* The next job on a connection the server has dropped starts over on a new one. */
static void test_reuse_after_hangup(void **state)
{
    (void)state;
    struct fixture *f = fx_new(NULL);
    f->srv.ehlo = caps_pipe;
    f->srv.close_after_data = true;
    f->cfg.outbound_concurrency = 1;
    fx_engine(f);
    static const char *const a[] = {"ann@x.test"}, *const b[] = {"bob@x.test"};
    struct ob_rcpt r1[1], r2[1];
    struct ob_job j1, j2;
    job_init(f, &j1, r1, 1, a, f->srv.port);
    job_init(f, &j2, r2, 1, b, f->srv.port);
    outbound_submit(f->ob, &j1);
    outbound_submit(f->ob, &j2);
    run(f, 2);
    assert_int_equal(r1[0].status, OB_SENT);
    assert_int_equal(r2[0].status, OB_SENT);
    assert_int_equal(f->srv.connections, 2);
    fx_free(f);
}

static void test_abort(void **state)
{
    (void)state;
    struct fixture *f = fx_new(NULL);
    f->srv.ehlo = caps_pipe;
    fx_engine(f);
    static const char *const a[] = {"ann@x.test"};
    struct ob_rcpt r[1];
    struct ob_job job;
    job_init(f, &job, r, 1, a, f->srv.port);
    outbound_submit(f->ob, &job);
    f->want = 1;
    outbound_abort_all(f->ob); /* before it ever ran: reported, recipient untouched */
    assert_int_equal(f->done, 1);
    assert_int_equal(r[0].status, OB_PENDING);
    assert_int_equal(outbound_jobs(f->ob), 0);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_results_per_recipient),
        cmocka_unit_test(test_helo_fallback_no_pipelining),
        cmocka_unit_test(test_split_transactions),
        cmocka_unit_test(test_dsn_parameters_and_bdat),
        cmocka_unit_test(test_8bit_and_size_refused),
        cmocka_unit_test(test_server_failures),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_reuse_and_limit),
        cmocka_unit_test(test_reuse_after_hangup),
        cmocka_unit_test(test_abort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
