/* test_control_async.c - the non-blocking control socket client used by ETRN: the status line
 * parser, a socket nobody listens on, and whole requests to a real Unix socket server on the
 * same libevent loop (an answer, an ERR, a server that closes without answering, one that
 * never answers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "control_async.h"
#include "util.h"

static char dir[64];
static struct config cfg;
static struct event_base *base;

static void status_line(void **state)
{
    (void)state;
    char err[128];
    assert_int_equal(control_async_status("OK 0", 4, err, sizeof err), 0);
    assert_int_equal(control_async_status("OK 17", 5, err, sizeof err), 17);
    assert_int_equal(control_async_status("ERR no such message", 19, err, sizeof err), -1);
    assert_string_equal(err, "no such message");
    const char *bad[] = {"", "OK", "OK ", "OK -1", "OK 1x", "ok 1", "ERR", "HELLO",
                         "OK 1234567890123456789"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        if (control_async_status(bad[i], strlen(bad[i]), err, sizeof err) != -1)
            fail_msg("accepted '%s'", bad[i]);
        assert_true(strstr(err, "malformed") != NULL);
    }
}

/* A one-connection server: reads the request line, then sends `answer` (NULL: sends nothing
 * and keeps the connection open) and closes. */
struct server {
    int lfd, cfd;
    const char *answer;
    char request[256];
    struct event *ev;
};

static void server_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct server *sv = arg;
    size_t have = strlen(sv->request);
    ssize_t n = read(fd, sv->request + have, sizeof sv->request - have - 1);
    if (n <= 0 || !memchr(sv->request, '\n', have + (size_t)n)) {
        if (n > 0)
            sv->request[have + (size_t)n] = '\0';
        return;
    }
    sv->request[have + (size_t)n] = '\0';
    event_del(sv->ev);
    if (sv->answer) {
        assert_int_equal(write(fd, sv->answer, strlen(sv->answer)), (ssize_t)strlen(sv->answer));
        close(fd);
        sv->cfd = -1;
    }
}

static void server_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct server *sv = arg;
    sv->cfd = accept(fd, NULL, NULL);
    assert_true(sv->cfd >= 0);
    event_free(sv->ev);
    sv->ev = event_new(base, sv->cfd, EV_READ | EV_PERSIST, server_read, sv);
    event_add(sv->ev, NULL);
}

struct result {
    int calls;
    long n;
    char err[256];
};

static void done(void *arg, long n, const char *err)
{
    struct result *r = arg;
    r->calls++;
    r->n = n;
    str_copy(r->err, sizeof r->err, err ? err : "");
}


static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(strcpy(dir, "/tmp/tern-ctlasync-XXXXXX")));
    char text[512], err[256];
    snprintf(text, sizeof text, "listen 127.0.0.1:2525\nlocal_domain example.test\nspool %s\n",
             dir);
    if (config_parse(&cfg, "t", text, strlen(text), err, sizeof err) != 0)
        fail_msg("config: %s", err);
    base = event_base_new();
    assert_non_null(base);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/control", dir);
    unlink(path);
    rmdir(dir);
    event_base_free(base);
    config_free(&cfg);
    return 0;
}

/* Run one request against a fresh server giving `answer`; returns the result. */
static struct result run(const char *answer, int timeout_s, struct server *sv)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/control", dir);
    unlink(sa.sun_path);
    memset(sv, 0, sizeof *sv);
    sv->answer = answer;
    sv->cfd = -1;
    sv->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(sv->lfd >= 0);
    assert_int_equal(bind(sv->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(sv->lfd, 4), 0);
    sv->ev = event_new(base, sv->lfd, EV_READ, server_accept, sv);
    event_add(sv->ev, NULL);
    struct result r = {0};
    char err[256];
    struct control_async *ca = control_async_start(base, &cfg, "FLUSH @.example.org", timeout_s,
                                                   done, &r, err, sizeof err);
    if (!ca)
        fail_msg("start: %s", err);
    assert_int_equal(r.calls, 0); /* never from inside the start call */
    while (r.calls == 0)
        assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
    if (sv->ev)
        event_free(sv->ev);
    if (sv->cfd >= 0)
        close(sv->cfd);
    close(sv->lfd);
    return r;
}

static void requests(void **state)
{
    (void)state;
    struct server sv;
    struct result r = run("OK 3\nabc\n.\n", 5, &sv);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.n, 3);
    assert_string_equal(sv.request, "FLUSH @.example.org\n");
    r = run("ERR unknown verb\n.\n", 5, &sv);
    assert_int_equal(r.n, -1);
    assert_string_equal(r.err, "unknown verb");
    r = run("", 5, &sv);
    assert_int_equal(r.n, -1);
    assert_string_equal(r.err, "the queue manager closed without answering");
    r = run(NULL, 1, &sv); /* keeps the connection open, says nothing */
    assert_int_equal(r.n, -1);
    assert_non_null(strstr(r.err, "timed out"));
}

static void nobody_listens(void **state)
{
    (void)state;
    char path[128], err[256] = "";
    snprintf(path, sizeof path, "%s/control", dir);
    unlink(path);
    struct result r = {0};
    assert_null(control_async_start(base, &cfg, "FLUSH", 5, done, &r, err, sizeof err));
    assert_non_null(strstr(err, "not running"));
    assert_int_equal(r.calls, 0);
    control_async_cancel(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_line),
        cmocka_unit_test(requests),
        cmocka_unit_test(nobody_listens),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
