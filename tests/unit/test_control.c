/* test_control.c - the control socket (src/control.c): the pure parts (request splitting,
 * argument forms, domain matching, ages, the LIST entry, dot-stuffing), then real round trips:
 * a server on a libevent loop in a child process over a temporary spool with real queue
 * files, and control_request from the parent (LIST, SHOW, HOLD, RELEASE, FLUSH, DELETE, errors,
 * and "not running"). The queue manager's hooks are stubs that record what they were told. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "control.h"
#include "queue.h"

static void test_split_and_targets(void **state)
{
    (void)state;
    char verb[16];
    const char *arg, *dom;
    assert_true(control_split("list", verb, sizeof verb, &arg));
    assert_string_equal(verb, "LIST");
    assert_string_equal(arg, "");
    assert_true(control_split("FLUSH @example.org", verb, sizeof verb, &arg));
    assert_string_equal(verb, "FLUSH");
    assert_string_equal(arg, "@example.org");
    assert_false(control_split("", verb, sizeof verb, &arg));
    assert_false(control_split("DELETE a b", verb, sizeof verb, &arg));
    assert_false(control_split("DELETE ", verb, sizeof verb, &arg));
    assert_false(control_split("VERYLONGVERBNAMEXX", verb, sizeof verb, &arg));
    assert_false(control_split("LI5T", verb, sizeof verb, &arg));

    assert_int_equal(control_target_of("", &dom), CONTROL_TARGET_NONE);
    assert_int_equal(control_target_of("ALL", &dom), CONTROL_TARGET_ALL);
    assert_int_equal(control_target_of("0ABCDEF123456789", &dom), CONTROL_TARGET_QID);
    assert_int_equal(control_target_of("0abc", &dom), CONTROL_TARGET_BAD);
    assert_int_equal(control_target_of("../etc", &dom), CONTROL_TARGET_BAD);
    assert_int_equal(control_target_of("@example.org", &dom), CONTROL_TARGET_DOMAIN);
    assert_string_equal(dom, "example.org");
    assert_int_equal(control_target_of("@.example.org", &dom), CONTROL_TARGET_SUBDOMAINS);
    assert_string_equal(dom, "example.org");
    assert_int_equal(control_target_of("@", &dom), CONTROL_TARGET_BAD);
    assert_int_equal(control_target_of("@a/b", &dom), CONTROL_TARGET_BAD);
}

static void test_domain_match(void **state)
{
    (void)state;
    assert_true(control_domain_match("bob@Example.ORG", CONTROL_TARGET_DOMAIN, "example.org"));
    assert_false(control_domain_match("bob@mx.example.org", CONTROL_TARGET_DOMAIN, "example.org"));
    assert_true(control_domain_match("bob@mx.example.org", CONTROL_TARGET_SUBDOMAINS, "example.org"));
    assert_true(control_domain_match("bob@example.org", CONTROL_TARGET_SUBDOMAINS, "example.org"));
    assert_false(control_domain_match("bob@badexample.org", CONTROL_TARGET_SUBDOMAINS, "example.org"));
    assert_false(control_domain_match("bob", CONTROL_TARGET_DOMAIN, "example.org"));
}

static void test_age_and_entry(void **state)
{
    (void)state;
    char b[32];
    control_format_age(5, b, sizeof b);
    assert_string_equal(b, "5s");
    control_format_age(180, b, sizeof b);
    assert_string_equal(b, "3m");
    control_format_age(7500, b, sizeof b);
    assert_string_equal(b, "2h5m");
    control_format_age(97200, b, sizeof b);
    assert_string_equal(b, "1d3h");
    control_format_age(-3, b, sizeof b);
    assert_string_equal(b, "0s");

    struct envelope env;
    envelope_init(&env);
    strcpy(env.qid, "0ABC");
    envelope_set(&env.sender, "alice@local.test");
    env.arrival = 1000;
    envelope_add_rcpt(&env, "bob@remote.test", 0, "");
    envelope_add_rcpt(&env, "carol@local.test", 0, "");
    envelope_add_rcpt(&env, "dan@remote.test", 0, "");
    env.rcpts[0].attempts = 2;
    env.rcpts[0].next_try = 1000 + 300 + 60;
    envelope_set(&env.rcpts[0].last_reply, "451 4.3.0 try later");
    env.rcpts[1].status = RCPT_DELIVERED;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    control_format_entry(f, &env, 1234, 1000 + 300, true);
    fclose(f);
    assert_non_null(strstr(text, "0ABC"));
    assert_non_null(strstr(text, "1234"));
    assert_non_null(strstr(text, "5m"));
    assert_non_null(strstr(text, "<alice@local.test>  HELD\n"));
    assert_non_null(strstr(text, "<bob@remote.test> deferred (2 attempts, next try in 1m): "
                                 "451 4.3.0 try later\n"));
    assert_non_null(strstr(text, "<carol@local.test> delivered\n"));
    assert_non_null(strstr(text, "<dan@remote.test> waiting (not tried yet)\n"));
    free(text);
    envelope_free(&env);
}

static void test_write_data(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    static const char in[] = "a\r\n.b\r\n..\n.\nlast";
    control_write_data(f, in, sizeof in - 1);
    fclose(f);
    assert_string_equal(text, "a\n..b\n...\n..\nlast\n");
    free(text);
}

/* ---- round trips ------------------------------------------------------------------------ */

static char spool[64];
static struct config cfg;
static pid_t server_pid;

/* In the server child: each hook writes one line to hooks.log, which the parent reads. */
static void note(const char *what, const char *qid)
{
    char path[128];
    snprintf(path, sizeof path, "%s/hooks.log", spool);
    FILE *f = fopen(path, "a");
    if (f) {
        fprintf(f, "%s %s\n", what, qid);
        fclose(f);
    }
}
static bool h_busy(void *arg, const char *qid) { (void)arg; return strcmp(qid, "BUSY") == 0; }
static void h_retry(void *arg, const char *qid) { (void)arg; note("retry", qid); }
static void h_forget(void *arg, const char *qid) { (void)arg; note("forget", qid); }
static void h_after(void *arg, const char *qid, enum control_after w)
{
    (void)arg;
    note(w == CONTROL_AFTER_DELETE ? "after-delete" : "after-hold", qid);
}
static void h_rescan(void *arg) { (void)arg; note("rescan", "-"); }
/* ATRN (RFC 2645): write on the passed connection, so the test sees it arrived. */
static long h_atrn(void *arg, const char *domains, int fd, char *err, size_t errlen)
{
    (void)arg;
    if (strcmp(domains, "none.test") == 0) {
        close(fd);
        snprintf(err, errlen, "none.test is not held for ODMR");
        return -1;
    }
    char line[300];
    int n = snprintf(line, sizeof line, "mail for %s\r\n", domains);
    (void)!write(fd, line, (size_t)n);
    close(fd);
    return 2;
}

static void make_msg(const char *sender, const char *rcpt, char qid[QUEUE_ID_MAX])
{
    struct envelope env;
    envelope_init(&env);
    envelope_set(&env.sender, sender);
    envelope_add_rcpt(&env, rcpt, 0, "");
    env.arrival = time(NULL) - 120;
    struct queue_writer *w = queue_writer_open(spool, &env);
    assert_non_null(w);
    static const char body[] = "Subject: hi\r\n\r\n.dotted line\r\nbody\r\n";
    assert_int_equal(queue_writer_write(w, body, sizeof body - 1), 0);
    assert_int_equal(queue_writer_commit(w), 0);
    /* Deferred once, next try far away. */
    env.rcpts[0].attempts = 1;
    env.rcpts[0].next_try = time(NULL) + 3600;
    envelope_set(&env.rcpts[0].last_reply, "451 4.7.1 greylisted");
    assert_int_equal(queue_save_state(spool, &env), 0);
    strcpy(qid, env.qid);
    envelope_free(&env);
}

static char *hooks_log(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/hooks.log", spool);
    FILE *f = fopen(path, "r");
    static char buf[4096];
    buf[0] = '\0';
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    return buf;
}

static int setup_server(void **state)
{
    (void)state;
    strcpy(spool, "/tmp/test_control.XXXXXX");
    if (!mkdtemp(spool) || queue_init(spool) < 0)
        return -1;
    memset(&cfg, 0, sizeof cfg);
    cfg.spool_dir = spool;
    /* Before the server: the client's error when nobody listens. */
    char err[256], *reply;
    if (control_request(&cfg, "LIST", &reply, err, sizeof err) != -1 ||
        !strstr(err, "tern is not running"))
        return -1;
    int ready[2];
    if (pipe(ready) < 0)
        return -1;
    server_pid = fork();
    if (server_pid == 0) {
        close(ready[0]);
        struct event_base *base = event_base_new();
        struct control_hooks hooks = {NULL, h_busy, h_retry, h_forget, h_after, h_rescan, h_atrn};
        struct control_server *s = control_server_new(&cfg, base, &hooks, err, sizeof err);
        if (!s)
            _exit(1);
        (void)!write(ready[1], "x", 1);
        event_base_dispatch(base);
        _exit(0);
    }
    close(ready[1]);
    char c;
    ssize_t r = read(ready[0], &c, 1);
    close(ready[0]);
    return r == 1 ? 0 : -1;
}

static int teardown_server(void **state)
{
    (void)state;
    kill(server_pid, SIGKILL);
    waitpid(server_pid, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", spool);
    return system(cmd) == 0 ? 0 : -1;
}

/* A request with a descriptor attached (pass >= 0), as an SMTP worker sends ATRN; the whole
 * answer into reply. */
static void req_fd(const char *line, int pass, char *reply, size_t cap)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_true(control_socket_path(&cfg, sa.sun_path, sizeof sa.sun_path));
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(s >= 0);
    assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof sa), 0);
    union {
        char b[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {.iov_base = (void *)line, .iov_len = strlen(line)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (pass >= 0) {
        msg.msg_control = ctl.b;
        msg.msg_controllen = sizeof ctl.b;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &pass, sizeof pass);
    }
    assert_int_equal(sendmsg(s, &msg, 0), (ssize_t)strlen(line));
    size_t got = 0;
    ssize_t n;
    while (got + 1 < cap && (n = read(s, reply + got, cap - 1 - got)) > 0)
        got += (size_t)n;
    reply[got] = '\0';
    close(s);
}

static void test_atrn_passes_fd(void **state)
{
    (void)state;
    char reply[512], buf[128] = "";
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    req_fd("ATRN example.net,b.test\n", sp[1], reply, sizeof reply);
    close(sp[1]);
    assert_string_equal(reply, "OK 2\n.\n");
    ssize_t n = read(sp[0], buf, sizeof buf - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "mail for example.net,b.test\r\n"); /* the hook had the fd */
    close(sp[0]);
    req_fd("ATRN example.net\n", -1, reply, sizeof reply);
    assert_non_null(strstr(reply, "ERR ATRN: no connection passed"));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    req_fd("ATRN none.test\n", sp[1], reply, sizeof reply);
    close(sp[1]);
    assert_string_equal(reply, "ERR none.test is not held for ODMR\n.\n");
    assert_int_equal(read(sp[0], buf, sizeof buf), 0); /* closed by the hook */
    close(sp[0]);
    /* an ordinary request still works after descriptor passing */
    req_fd("LIST\n", -1, reply, sizeof reply);
    assert_string_equal(reply, "OK 0\nMail queue is empty\n.\n");
}

static long req(const char *line, char **reply, char *err)
{
    return control_request(&cfg, line, reply, err, 256);
}

static void test_round_trips(void **state)
{
    (void)state;
    char err[256], *reply = NULL;
    struct stat st;
    char path[256];
    char sock[128];
    assert_true(control_socket_path(&cfg, sock, sizeof sock));
    assert_int_equal(stat(sock, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0660);

    assert_int_equal(req("LIST", &reply, err), 0);
    assert_string_equal(reply, "Mail queue is empty\n");
    free(reply);

    char a[QUEUE_ID_MAX], b[QUEUE_ID_MAX];
    make_msg("alice@local.test", "bob@remote.test", a);
    make_msg("", "carol@other.test", b);
    assert_int_equal(req("LIST", &reply, err), 2);
    assert_non_null(strstr(reply, a));
    assert_non_null(strstr(reply, "<alice@local.test>"));
    assert_non_null(strstr(reply, "<bob@remote.test> deferred (1 attempt, next try in"));
    assert_non_null(strstr(reply, "451 4.7.1 greylisted"));
    assert_non_null(strstr(reply, "-- 2 messages (0 held), 2 recipients pending"));
    free(reply);

    /* SHOW: envelope, then content with the leading dot intact (stuffed and unstuffed). */
    char line[64];
    snprintf(line, sizeof line, "show %s", a);
    assert_int_equal(req(line, &reply, err), 1);
    assert_non_null(strstr(reply, "State: queued"));
    assert_non_null(strstr(reply, "\nSubject: hi\n\n.dotted line\nbody\n"));
    free(reply);

    /* HOLD moves the file; LIST marks it; FLUSH refuses it; RELEASE brings it back. */
    snprintf(line, sizeof line, "HOLD %s", a);
    assert_int_equal(req(line, &reply, err), 1);
    free(reply);
    snprintf(path, sizeof path, "%s/hold/%s", spool, a);
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/queue/%s", spool, a);
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(req(line, &reply, err), -1);
    assert_non_null(strstr(err, "already held"));
    assert_int_equal(req("LIST", &reply, err), 2);
    assert_non_null(strstr(reply, "<alice@local.test>  HELD"));
    free(reply);
    snprintf(line, sizeof line, "FLUSH %s", a);
    assert_int_equal(req(line, &reply, err), -1);
    assert_non_null(strstr(err, "is held"));
    snprintf(line, sizeof line, "RELEASE %s", a);
    assert_int_equal(req(line, &reply, err), 1);
    free(reply);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(req(line, &reply, err), -1);
    assert_non_null(strstr(err, "not held"));

    /* FLUSH @domain touches only matching messages and makes their recipients due now. */
    assert_int_equal(req("FLUSH @other.test", &reply, err), 1);
    free(reply);
    assert_int_equal(req("FLUSH @", &reply, err), -1);
    assert_non_null(strstr(err, "bad argument"));
    assert_int_equal(req("FLUSH @nowhere.test", &reply, err), 0);
    free(reply);
    assert_int_equal(req("FLUSH @.other.test", &reply, err), 1);
    free(reply);
    assert_int_equal(req("LIST", &reply, err), 2);
    assert_non_null(strstr(reply, "<carol@other.test> deferred (1 attempt, next try now)"));
    free(reply);
    char *log = hooks_log();
    char want[64];
    snprintf(want, sizeof want, "retry %s\n", b);
    assert_non_null(strstr(log, want));
    snprintf(want, sizeof want, "forget %s\n", a);
    assert_non_null(strstr(log, want)); /* at HOLD */
    snprintf(want, sizeof want, "retry %s\n", a);
    assert_non_null(strstr(log, want)); /* at RELEASE */

    /* Errors. */
    assert_int_equal(req("SHOW 0NOSUCHMESSAGE", &reply, err), -1);
    assert_non_null(strstr(err, "no message 0NOSUCHMESSAGE"));
    assert_int_equal(req("DELETE ../x", &reply, err), -1);
    assert_non_null(strstr(err, "bad argument"));
    assert_int_equal(req("FROB", &reply, err), -1);
    assert_non_null(strstr(err, "unknown request FROB"));
    assert_int_equal(req("HOLD BUSY", &reply, err), 1); /* being delivered: after the pass */
    free(reply);
    assert_non_null(strstr(hooks_log(), "after-hold BUSY\n"));

    /* REQUEUE rescans and schedules everything; DELETE one, then ALL. */
    assert_int_equal(req("REQUEUE", &reply, err), 2);
    free(reply);
    assert_non_null(strstr(hooks_log(), "rescan -\n"));
    snprintf(line, sizeof line, "DELETE %s", a);
    assert_int_equal(req(line, &reply, err), 1);
    free(reply);
    assert_int_equal(stat(path, &st), -1);
    snprintf(path, sizeof path, "%s/state/%s", spool, a);
    assert_int_equal(stat(path, &st), -1);
    snprintf(line, sizeof line, "HOLD %s", b);
    assert_int_equal(req(line, &reply, err), 1);
    free(reply);
    assert_int_equal(req("DELETE ALL", &reply, err), 1); /* the held one too */
    free(reply);
    assert_int_equal(req("LIST", &reply, err), 0);
    free(reply);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_and_targets),
        cmocka_unit_test(test_domain_match),
        cmocka_unit_test(test_age_and_entry),
        cmocka_unit_test(test_write_data),
        cmocka_unit_test_setup_teardown(test_round_trips, setup_server, teardown_server),
        cmocka_unit_test_setup_teardown(test_atrn_passes_fd, setup_server, teardown_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
