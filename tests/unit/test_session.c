/* test_session.c - the SMTP state machine driven with byte strings, through the same entry
 * points the I/O layer uses, with a real configuration and a real spool in a temp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "dovecot_proto.h"
#include "scram.h"
#include "session.h"
#include "smtp_reply.h"
#include "smtp_parse.h"
#include "users.h"
#include "authlock.h"
#include "util.h"

static struct config cfg;
static char spool[256];
static char topdir[64];
static char out[65536];
static size_t outlen;

static void capture(void *ctx, const char *buf, size_t len)
{
    (void)ctx;
    assert_true(outlen + len < sizeof out);
    memcpy(out + outlen, buf, len);
    outlen += len;
    out[outlen] = '\0';
}

static int setup(void **state)
{
    (void)state;
    char *tmpl = strcpy(topdir, "/tmp/tern-session-XXXXXX");
    assert_non_null(mkdtemp(tmpl));
    snprintf(spool, sizeof spool, "%s/spool", tmpl);
    char text[1024], err[256];
    snprintf(text, sizeof text,
             "hostname mx.test\nlisten 127.0.0.1:2525\nlocal_domain example.test\n"
             "mailbox demo@example.test postmaster@example.test\nspool %s\nmaildir %s/mail/%%d/%%u\n"
             "max_message_size 2000\nmax_errors 5\n",
             spool, tmpl);
    int rc = config_parse(&cfg, "test", text, strlen(text), err, sizeof err);
    if (rc != 0)
        fail_msg("config: %s", err);
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    (void)state;
    config_free(&cfg);
    return nftw(topdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct session *start(void)
{
    struct session_io io = {.write = capture, .ctx = NULL};
    struct session *s = session_new(&cfg, &cfg.listen[0], "192.0.2.1", &io);
    assert_non_null(s);
    outlen = 0;
    session_start(s);
    assert_true(strncmp(out, "220 mx.test ", 12) == 0);
    outlen = 0;
    return s;
}

/* Send one line, return the reply text it produced. */
static const char *cmd(struct session *s, const char *line)
{
    outlen = 0;
    out[0] = '\0';
    session_line(s, line, strlen(line));
    return out;
}

static const char *data(struct session *s, const char *bytes, size_t len, size_t *used)
{
    outlen = 0;
    out[0] = '\0';
    *used = session_data(s, bytes, len);
    return out;
}

static int count_queued(void)
{
    char path[300];
    snprintf(path, sizeof path, "%s/queue", spool);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void test_ehlo_lists_extensions(void **state)
{
    (void)state;
    struct session *s = start();
    const char *r = cmd(s, "EHLO client.test");
    assert_non_null(strstr(r, "250-mx.test Hello client.test [192.0.2.1]\r\n"));
    const char *ext[] = {"PIPELINING", "SIZE 2000", "8BITMIME", "SMTPUTF8",
                         "ENHANCEDSTATUSCODES", "CHUNKING", "BINARYMIME", "DSN"};
    for (size_t i = 0; i < ARRAY_LEN(ext); i++)
        assert_non_null(strstr(r, ext[i]));
    assert_non_null(strstr(r, "250 HELP\r\n"));
    session_free(s);
}

static void test_sequence_errors(void **state)
{
    (void)state;
    struct session *s = start();
    assert_true(strncmp(cmd(s, "MAIL FROM:<a@b.test>"), "503 5.5.1 ", 10) == 0);
    cmd(s, "HELO client.test");
    assert_true(strncmp(cmd(s, "RCPT TO:<demo@example.test>"), "503 5.5.1 ", 10) == 0);
    assert_true(strncmp(cmd(s, "DATA"), "503 5.5.1 ", 10) == 0);
    assert_true(strncmp(cmd(s, "MAIL FROM:<a@b.test>"), "250 2.1.0 ", 10) == 0);
    assert_true(strncmp(cmd(s, "MAIL FROM:<a@b.test>"), "503 5.5.1 ", 10) == 0);
    assert_true(strncmp(cmd(s, "DATA"), "503 5.5.1 ", 10) == 0);
    session_free(s);
}

static void test_rcpt_policy(void **state)
{
    (void)state;
    struct session *s = start();
    cmd(s, "EHLO client.test");
    cmd(s, "MAIL FROM:<>");
    assert_true(strncmp(cmd(s, "RCPT TO:<nobody@example.test>"), "550 5.1.1 ", 10) == 0);
    assert_true(strncmp(cmd(s, "RCPT TO:<x@elsewhere.test>"), "554 5.7.1 ", 10) == 0);
    assert_true(strncmp(cmd(s, "RCPT TO:<DEMO@Example.TEST>"), "250 2.1.5 ", 10) == 0);
    assert_true(strncmp(cmd(s, "RCPT TO:<Postmaster>"), "250 2.1.5 ", 10) == 0);
    assert_true(strncmp(cmd(s, "RCPT TO:<demo@example.test> FOO=1"), "555 5.5.4 ", 10) == 0);
    session_free(s);
}

static void test_full_transaction_with_dot_stuffing(void **state)
{
    (void)state;
    int before = count_queued();
    struct session *s = start();
    cmd(s, "EHLO client.test");
    cmd(s, "MAIL FROM:<a@b.test>");
    cmd(s, "RCPT TO:<demo@example.test>");
    assert_true(strncmp(cmd(s, "DATA"), "354 ", 4) == 0);
    assert_int_equal(session_mode(s), MODE_DATA);
    const char msg[] = "Subject: t\r\n\r\n..dot\r\n.\r\nNOOP\r\n";
    size_t used;
    const char *r = data(s, msg, sizeof msg - 1, &used);
    assert_int_equal(used, sizeof msg - 1 - strlen("NOOP\r\n"));
    assert_true(strncmp(r, "250 2.0.0 Ok: queued as ", 24) == 0);
    assert_int_equal(session_mode(s), MODE_LINE);
    assert_int_equal(count_queued(), before + 1);
    session_free(s);
}

static void test_smuggling_is_one_message_refused(void **state)
{
    (void)state;
    int before = count_queued();
    struct session *s = start();
    cmd(s, "EHLO client.test");
    cmd(s, "MAIL FROM:<a@b.test>");
    cmd(s, "RCPT TO:<demo@example.test>");
    cmd(s, "DATA");
    const char msg[] = "Subject: t\r\n\r\nhi\n.\r\nMAIL FROM:<evil@x.test>\r\n"
                       "RCPT TO:<demo@example.test>\r\nDATA\r\nsmuggled\r\n.\r\n";
    size_t used;
    const char *r = data(s, msg, sizeof msg - 1, &used);
    assert_int_equal(used, sizeof msg - 1);
    assert_true(strncmp(r, "550 5.6.0 ", 10) == 0);
    assert_null(strstr(r + 3, "\r\n2")); /* one reply only */
    assert_int_equal(count_queued(), before);
    session_free(s);
}

static void test_size_limit(void **state)
{
    (void)state;
    struct session *s = start();
    cmd(s, "EHLO client.test");
    assert_true(strncmp(cmd(s, "MAIL FROM:<a@b.test> SIZE=5000"), "552 5.3.4 ", 10) == 0);
    cmd(s, "MAIL FROM:<a@b.test> SIZE=100");
    cmd(s, "RCPT TO:<demo@example.test>");
    cmd(s, "DATA");
    char big[3000];
    memset(big, 'x', sizeof big);
    for (size_t i = 70; i < sizeof big; i += 72)
        big[i - 1] = '\r', big[i] = '\n';
    size_t used;
    data(s, big, sizeof big, &used);
    const char *r = data(s, "\r\n.\r\n", 5, &used);
    assert_true(strncmp(r, "552 5.3.4 ", 10) == 0);
    session_free(s);
}

static void test_bdat(void **state)
{
    (void)state;
    int before = count_queued();
    struct session *s = start();
    cmd(s, "EHLO client.test");
    /* refused BDAT still consumes its chunk */
    cmd(s, "BDAT 4");
    assert_int_equal(session_mode(s), MODE_CHUNK);
    size_t used;
    const char *r = data(s, "abcdNOOP\r\n", 10, &used);
    assert_int_equal(used, 4);
    assert_true(strncmp(r, "503 5.5.1 ", 10) == 0);
    cmd(s, "MAIL FROM:<a@b.test> BODY=BINARYMIME");
    cmd(s, "RCPT TO:<demo@example.test>");
    assert_true(strncmp(cmd(s, "DATA"), "503 5.5.1 ", 10) == 0);
    cmd(s, "BDAT 5");
    r = data(s, "ab\0\ncd", 6, &used);
    assert_int_equal(used, 5);
    assert_true(strncmp(r, "250 2.0.0 ", 10) == 0);
    cmd(s, "BDAT 0 LAST");
    assert_true(strncmp(out, "250 2.0.0 Ok: queued as ", 24) == 0);
    assert_int_equal(count_queued(), before + 1);
    session_free(s);
}

static void test_errors_end_session(void **state)
{
    (void)state;
    struct session *s = start();
    for (int i = 0; i < 4; i++)
        assert_true(strncmp(cmd(s, "BOGUS"), "500 5.5.2 ", 10) == 0);
    const char *r = cmd(s, "BOGUS");
    assert_non_null(strstr(r, "421 4.7.0 "));
    assert_int_equal(session_mode(s), MODE_CLOSE);
    session_free(s);
}

static void test_misc_commands(void **state)
{
    (void)state;
    struct session *s = start();
    assert_true(strncmp(cmd(s, "NOOP"), "250 2.0.0 ", 10) == 0);
    assert_true(strncmp(cmd(s, "VRFY demo"), "252 2.1.5 ", 10) == 0);
    assert_true(strncmp(cmd(s, "EXPN list"), "252 2.1.5 ", 10) == 0);
    assert_true(strncmp(cmd(s, "HELP"), "214-2.0.0 ", 10) == 0);
    assert_true(strncmp(cmd(s, "HELP MAIL"), "214 2.0.0 MAIL FROM:", 20) == 0);
    assert_true(strncmp(cmd(s, "RSET"), "250 2.0.0 ", 10) == 0);
    assert_true(strncmp(cmd(s, "TURN"), "502 5.7.0 ", 10) == 0);
    assert_true(strncmp(cmd(s, "quit"), "221 2.0.0 ", 10) == 0);
    assert_int_equal(session_mode(s), MODE_CLOSE);
    session_free(s);
}

static void test_starttls(void **state)
{
    (void)state;
    struct session *s = start();
    cmd(s, "EHLO client.test");
    assert_null(strstr(out, "STARTTLS")); /* listener without a certificate */
    assert_true(strncmp(cmd(s, "STARTTLS"), "502 5.5.1 ", 10) == 0);
    session_free(s);

    /* A submission-style listener: STARTTLS offered and required before MAIL. */
    struct listen_cfg l = cfg.listen[0];
    l.starttls = l.require_tls = true;
    struct session_io io = {.write = capture, .ctx = NULL};
    s = session_new(&cfg, &l, "192.0.2.1", &io);
    session_start(s);
    cmd(s, "EHLO client.test");
    assert_non_null(strstr(out, "250-STARTTLS\r\n"));
    assert_true(strncmp(cmd(s, "MAIL FROM:<a@b.test>"), "530 5.7.0 ", 10) == 0);
    assert_true(strncmp(cmd(s, "STARTTLS now"), "501 5.5.4 ", 10) == 0);
    assert_true(strncmp(cmd(s, "STARTTLS"), "220 2.0.0 ", 10) == 0);
    assert_int_equal(session_mode(s), MODE_STARTTLS);
    session_tls_started(s, "TLSv1.3 with cipher TEST (256/256 bits)");
    assert_int_equal(session_mode(s), MODE_LINE);
    /* Everything from before TLS is forgotten: EHLO again (RFC 3207 4.2). */
    assert_true(strncmp(cmd(s, "MAIL FROM:<a@b.test>"), "503 5.5.1 ", 10) == 0);
    cmd(s, "EHLO client.test");
    assert_null(strstr(out, "STARTTLS"));
    assert_true(strncmp(cmd(s, "STARTTLS"), "503 5.5.1 ", 10) == 0);
    assert_true(strncmp(cmd(s, "MAIL FROM:<a@b.test>"), "250 2.1.0 ", 10) == 0);
    session_free(s);
}

/* relay_networks: clients inside may relay to any domain; everybody else gets 554 5.7.1. */
static void test_relay_networks(void **state)
{
    (void)state;
    struct config rc;
    char text[512], err[256];
    snprintf(text, sizeof text,
             "listen 127.0.0.1:2525\nlocal_domain example.test\nmailbox demo@example.test\n"
             "spool %s\nrelay_networks 192.0.2.0/24 2001:db8::/32\n", spool);
    if (config_parse(&rc, "relay", text, strlen(text), err, sizeof err) != 0)
        fail_msg("config: %s", err);
    struct session_io io = {.write = capture, .ctx = NULL};
    const char *inside[] = {"192.0.2.77", "2001:db8::25"};
    for (size_t i = 0; i < ARRAY_LEN(inside); i++) {
        struct session *s = session_new(&rc, &rc.listen[0], inside[i], &io);
        session_start(s);
        cmd(s, "EHLO client.test");
        cmd(s, "MAIL FROM:<a@example.test>");
        assert_true(strncmp(cmd(s, "RCPT TO:<x@elsewhere.test>"), "250 2.1.5 ", 10) == 0);
        /* local domains still need an existing mailbox */
        assert_true(strncmp(cmd(s, "RCPT TO:<nobody@example.test>"), "550 5.1.1 ", 10) == 0);
        session_free(s);
    }
    struct session *s = session_new(&rc, &rc.listen[0], "198.51.100.1", &io);
    session_start(s);
    cmd(s, "EHLO client.test");
    cmd(s, "MAIL FROM:<a@example.test>");
    assert_true(strncmp(cmd(s, "RCPT TO:<x@elsewhere.test>"), "554 5.7.1 ", 10) == 0);
    session_free(s);
    config_free(&rc);
}

/* AUTH PLAIN and LOGIN (RFC 4954): offered only over TLS, every error reply, relaying and
 * the AUTH line length. */
static void test_auth_plain_login(void **state)
{
    (void)state;
    struct users u = {0};
    struct user_entry e;
    char err[200];
    assert_int_equal(users_make_entry(&e, "ann", "pw 1", false, 4096, err, sizeof err), 0);
    assert_int_equal(users_put(&u, &e, false), 0);
    struct config c2 = cfg; /* shallow copy: this test counts more than max_errors 5 */
    c2.max_errors = 100;
    struct listen_cfg l = cfg.listen[0];
    l.kind = LISTEN_SUBMISSION;
    struct session_io io = {.write = capture, .ctx = NULL};
    struct session *s = session_new(&c2, &l, "192.0.2.1", &io);
    session_start(s);
    assert_true(strncmp(cmd(s, "AUTH PLAIN"), "502 5.5.1 ", 10) == 0); /* no users table */
    session_set_users(s, &u);
    assert_true(strncmp(cmd(s, "AUTH PLAIN"), "503 5.5.1 ", 10) == 0); /* before EHLO */
    assert_int_equal(session_max_line(s), SMTP_CMDLINE_MAX);
    cmd(s, "EHLO client.test");
    assert_non_null(strstr(out, "250-AUTH SCRAM-SHA-256\r\n")); /* no TLS: no PLAIN/LOGIN */
    assert_int_equal(session_max_line(s), AUTH_LINE_MAX);
    assert_true(strncmp(cmd(s, "AUTH PLAIN AGFubgBwdyAx"), "538 5.7.11 ", 11) == 0);
    assert_true(strncmp(cmd(s, "MAIL FROM:<a@b.test>"), "530 5.7.0 ", 10) == 0);
    session_tls_started(s, "TLSv1.3 test");
    cmd(s, "EHLO client.test");
    assert_non_null(strstr(out, "250-AUTH PLAIN LOGIN SCRAM-SHA-256\r\n"));
    assert_true(strncmp(cmd(s, "AUTH X-UNKNOWN"), "504 5.5.4 ", 10) == 0);
    assert_true(strncmp(cmd(s, "AUTH CRAM-MD5"), "504 5.5.4 ", 10) == 0); /* no --cram user */
    assert_true(strncmp(cmd(s, "AUTH PLAIN"), "334 \r\n", 6) == 0);
    assert_true(strncmp(cmd(s, "*"), "501 5.7.0 ", 10) == 0);
    assert_true(strncmp(cmd(s, "AUTH PLAIN AGFubgB3cm9uZw=="), "535 5.7.8 ", 10) == 0);
    assert_null(session_auth_user(s));
    assert_true(strncmp(cmd(s, "AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n", 18) == 0);
    assert_true(strncmp(cmd(s, "YW5u"), "334 UGFzc3dvcmQ6\r\n", 18) == 0);
    assert_true(strncmp(cmd(s, "cHcgMQ=="), "235 2.7.0 ", 10) == 0);
    assert_string_equal(session_auth_user(s), "ann");
    assert_true(strncmp(cmd(s, "AUTH PLAIN AGFubgBwdyAx"), "503 5.5.1 ", 10) == 0);
    cmd(s, "EHLO client.test");
    assert_null(strstr(out, "AUTH")); /* nothing left to offer */
    assert_int_equal(session_max_line(s), SMTP_CMDLINE_MAX);
    assert_true(strncmp(cmd(s, "MAIL FROM:<ann@example.test>"), "250 2.1.0 ", 10) == 0);
    assert_true(strncmp(cmd(s, "RCPT TO:<x@elsewhere.test>"), "250 2.1.5 ", 10) == 0);
    session_free(s);

    /* AUTH in a transaction (smtp listener: MAIL needs no AUTH), and an over-long exchange */
    l.kind = LISTEN_SMTP;
    s = session_new(&c2, &l, "192.0.2.1", &io);
    session_set_users(s, &u);
    session_tls_started(s, "TLSv1.3 test");
    cmd(s, "EHLO client.test");
    assert_true(strncmp(cmd(s, "AUTH PLAIN"), "334 ", 4) == 0);
    assert_int_equal(session_max_line(s), AUTH_LINE_MAX);
    outlen = 0;
    session_line_too_long(s);
    assert_true(strncmp(out, "500 5.5.6 ", 10) == 0);
    assert_true(strncmp(cmd(s, "AUTH PLAIN !!"), "501 5.5.2 ", 10) == 0);
    cmd(s, "MAIL FROM:<a@b.test>");
    assert_true(strncmp(cmd(s, "AUTH PLAIN AGFubgBwdyAx"), "503 5.5.1 ", 10) == 0);
    session_free(s);

    /* loopback without TLS, when configured */
    c2.auth_plaintext_loopback = true;
    s = session_new(&c2, &l, "127.0.0.1", &io);
    session_set_users(s, &u);
    session_start(s);
    cmd(s, "EHLO client.test");
    assert_non_null(strstr(out, "250-AUTH PLAIN LOGIN SCRAM-SHA-256\r\n"));
    assert_true(strncmp(cmd(s, "AUTH PLAIN AGFubgBwdyAx"), "235 2.7.0 ", 10) == 0);
    session_free(s);
    users_free(&u);
}

/* io.check_password: what the session asked to have checked off the loop. */
static char checked_hash[256], checked_pw[256];
static int checks;

static void record_check(void *ctx, const char *hash, const char *password)
{
    (void)ctx;
    assert_true(str_copy(checked_hash, sizeof checked_hash, hash));
    assert_true(str_copy(checked_pw, sizeof checked_pw, password));
    checks++;
}

/* AUTH PLAIN/LOGIN with an asynchronous password check (io.check_password, authpool.h): the
 * session waits (MODE_WAIT) with no reply until session_password_checked, reads no command
 * meanwhile, checks an unknown user against the dummy hash and never lets it in. */
static void test_auth_check_async(void **state)
{
    (void)state;
    struct users u = {0};
    struct user_entry e;
    char err[200];
    assert_int_equal(users_make_entry(&e, "ann", "pw 1", false, 4096, err, sizeof err), 0);
    assert_int_equal(users_put(&u, &e, false), 0);
    const char *ann_hash = users_find(&u, "ann")->crypt_hash;
    struct config c2 = cfg;
    c2.auth_plaintext_loopback = true;
    c2.max_errors = 100;
    struct listen_cfg l = cfg.listen[0];
    l.kind = LISTEN_SUBMISSION;
    struct session_io io = {.write = capture, .ctx = NULL, .check_password = record_check};
    struct session *s = session_new(&c2, &l, "127.0.0.1", &io);
    session_set_users(s, &u);
    session_start(s);
    cmd(s, "EHLO client.test");
    checks = 0;
    assert_string_equal(cmd(s, "AUTH PLAIN AGFubgBwdyAx"), ""); /* "\0ann\0pw 1" */
    assert_int_equal(checks, 1);
    assert_string_equal(checked_hash, ann_hash);
    assert_string_equal(checked_pw, "pw 1");
    assert_int_equal(session_mode(s), MODE_WAIT);
    assert_string_equal(cmd(s, "MAIL FROM:<ann@example.test>"), ""); /* not read meanwhile */
    outlen = 0;
    session_password_checked(s, true);
    assert_true(strncmp(out, "235 2.7.0 ", 10) == 0);
    assert_int_equal(session_mode(s), MODE_LINE);
    assert_string_equal(session_auth_user(s), "ann");
    outlen = 0;
    out[0] = '\0';
    session_password_checked(s, false); /* nobody waits: ignored */
    assert_string_equal(out, "");
    assert_true(strncmp(cmd(s, "MAIL FROM:<ann@example.test>"), "250 ", 4) == 0);
    session_free(s);

    /* an unknown user: the dummy hash is checked (same cost), and "ok" cannot let it in */
    s = session_new(&c2, &l, "127.0.0.1", &io);
    session_set_users(s, &u);
    cmd(s, "EHLO client.test");
    assert_string_equal(cmd(s, "AUTH PLAIN AHplZABwdyAx"), ""); /* "\0zed\0pw 1" */
    assert_int_equal(checks, 2);
    assert_true(strncmp(checked_hash, "$y$", 3) == 0);
    assert_string_not_equal(checked_hash, ann_hash);
    outlen = 0;
    session_password_checked(s, true);
    assert_true(strncmp(out, "535 5.7.8 ", 10) == 0);
    assert_null(session_auth_user(s));
    /* LOGIN waits the same way; a wrong password answers 535 */
    assert_true(strncmp(cmd(s, "AUTH LOGIN YW5u"), "334 UGFzc3dvcmQ6\r\n", 18) == 0);
    assert_string_equal(cmd(s, "d3Jvbmc="), ""); /* "wrong" */
    assert_int_equal(checks, 3);
    assert_string_equal(checked_pw, "wrong");
    assert_int_equal(session_mode(s), MODE_WAIT);
    outlen = 0;
    session_password_checked(s, false);
    assert_true(strncmp(out, "535 5.7.8 ", 10) == 0);
    /* refused before any check: another authorization identity, an empty user */
    assert_true(strncmp(cmd(s, "AUTH PLAIN Ym9iAGFubgBwdyAx"), "535 ", 4) == 0);
    assert_true(strncmp(cmd(s, "AUTH PLAIN AABwdyAx"), "535 ", 4) == 0);
    assert_int_equal(checks, 3);
    /* the connection drops while the check runs: freeing the session is all it takes */
    cmd(s, "AUTH PLAIN AGFubgBwdyAx");
    assert_int_equal(session_mode(s), MODE_WAIT);
    session_abort(s);
    outlen = 0;
    out[0] = '\0';
    session_password_checked(s, true); /* a late answer after the abort is ignored */
    assert_string_equal(out, "");
    assert_null(session_auth_user(s));
    session_free(s);
    users_free(&u);
}

/* The text of a 334 reply, base64-decoded. */
static const char *challenge(char *buf, size_t cap)
{
    assert_true(strncmp(out, "334 ", 4) == 0);
    size_t n = strlen(out + 4);
    assert_true(n >= 2);
    long len = smtp_b64_decode(out + 4, n - 2, (unsigned char *)buf, cap);
    assert_true(len >= 0);
    return buf;
}

static const char *cmd_b64(struct session *s, const char *prefix, const char *msg)
{
    char line[2048];
    size_t pl = strlen(prefix);
    memcpy(line, prefix, pl);
    smtp_b64_encode((const unsigned char *)msg, strlen(msg), line + pl);
    return cmd(s, line);
}

/* CRAM-MD5 and SCRAM-SHA-256 without TLS, driven by real clients: HMAC-MD5 from OpenSSL and
 * tern's own SCRAM client (scram.c). */
static void test_auth_cram_scram(void **state)
{
    (void)state;
    struct users u = {0};
    struct user_entry e;
    char err[200], buf[1024];
    assert_int_equal(users_make_entry(&e, "ann", "pw 1", false, 4096, err, sizeof err), 0);
    assert_int_equal(users_put(&u, &e, false), 0);
    assert_int_equal(users_make_entry(&e, "tim", "tanstaaftanstaaf", true, 4096, err, sizeof err),
                     0);
    assert_int_equal(users_put(&u, &e, false), 0);
    struct config c2 = cfg;
    c2.max_errors = 100;
    struct session_io io = {.write = capture, .ctx = NULL};
    struct session *s = session_new(&c2, &cfg.listen[0], "192.0.2.1", &io);
    session_set_users(s, &u);
    session_start(s);
    cmd(s, "EHLO client.test");
    assert_non_null(strstr(out, "250-AUTH SCRAM-SHA-256 CRAM-MD5\r\n"));

    /* CRAM-MD5: tim answers the challenge */
    cmd(s, "AUTH CRAM-MD5");
    const char *ch = challenge(buf, sizeof buf);
    assert_true(ch[0] == '<' && strstr(ch, "@mx.test>"));
    unsigned char mac[16];
    unsigned ml;
    HMAC(EVP_md5(), "tanstaaftanstaaf", 16, (const unsigned char *)ch, strlen(ch), mac, &ml);
    char resp[64] = "tim ";
    for (int i = 0; i < 16; i++)
        snprintf(resp + 4 + 2 * i, 3, "%02x", mac[i]);
    assert_true(strncmp(cmd_b64(s, "", resp), "235 2.7.0 ", 10) == 0);
    assert_string_equal(session_auth_user(s), "tim");
    session_free(s);

    /* a wrong digest: 535; a user without a CRAM-MD5 secret: 534 */
    s = session_new(&c2, &cfg.listen[0], "192.0.2.1", &io);
    session_set_users(s, &u);
    cmd(s, "EHLO client.test");
    cmd(s, "AUTH CRAM-MD5");
    assert_true(strncmp(cmd_b64(s, "", "tim 00000000000000000000000000000000"), "535 5.7.8 ",
                        10) == 0);
    cmd(s, "AUTH CRAM-MD5");
    assert_true(strncmp(cmd_b64(s, "", "ann 00000000000000000000000000000000"), "534 5.7.9 ",
                        10) == 0);
    assert_true(strncmp(cmd(s, "AUTH CRAM-MD5 dGlt"), "501 ", 4) == 0); /* no initial response */

    /* SCRAM-SHA-256 with the wrong password, then the right one */
    for (int round = 0; round < 2; round++) {
        struct scram sc;
        char *first = scram_client_first(&sc, "ann", NULL);
        assert_non_null(first);
        cmd_b64(s, "AUTH SCRAM-SHA-256 ", first);
        free(first);
        char *final = scram_client_final(&sc, round == 0 ? "pw 2" : "pw 1",
                                         challenge(buf, sizeof buf), err, sizeof err);
        assert_non_null(final);
        cmd_b64(s, "", final);
        free(final);
        if (round == 0) {
            assert_true(strncmp(out, "535 5.7.8 ", 10) == 0);
        } else {
            assert_true(scram_verify_server(&sc, challenge(buf, sizeof buf), err, sizeof err));
            assert_true(strncmp(cmd(s, ""), "235 2.7.0 ", 10) == 0);
            assert_string_equal(session_auth_user(s), "ann");
        }
        scram_free(&sc);
    }
    session_free(s);

    /* SCRAM: an unknown user gets a server-first too, and fails at the end; cancel works */
    s = session_new(&c2, &cfg.listen[0], "192.0.2.1", &io);
    session_set_users(s, &u);
    cmd(s, "EHLO client.test");
    assert_true(strncmp(cmd(s, "AUTH SCRAM-SHA-256"), "334 \r\n", 6) == 0);
    assert_true(strncmp(cmd_b64(s, "", "n,,n=nobody,r=abcdef"), "334 ", 4) == 0);
    assert_non_null(strstr(challenge(buf, sizeof buf), "r=abcdef"));
    assert_true(strncmp(cmd(s, "*"), "501 5.7.0 ", 10) == 0);
    assert_true(strncmp(cmd_b64(s, "AUTH SCRAM-SHA-256 ", "p=tls-unique,,n=ann,r=x"), "535 ", 4)
                == 0); /* channel binding is not offered */
    session_free(s);
    users_free(&u);
}

/* sender_login_match (553 5.7.1) and the per-address lockout after auth_max_failures. */
static void test_auth_sender_and_lockout(void **state)
{
    (void)state;
    struct users u = {0};
    struct user_entry e;
    char err[200];
    assert_int_equal(users_make_entry(&e, "ann", "pw 1", false, 4096, err, sizeof err), 0);
    assert_int_equal(users_put(&u, &e, false), 0);
    struct config c2 = cfg;
    c2.max_errors = 100;
    c2.sender_login_match = true;
    struct listen_cfg l = cfg.listen[0];
    l.kind = LISTEN_SUBMISSION;
    struct session_io io = {.write = capture, .ctx = NULL};
    struct authlock t;
    assert_int_equal(authlock_init(&t, 2, 600, false), 0);
    struct session *s = session_new(&c2, &l, "192.0.2.9", &io);
    session_set_users(s, &u);
    session_set_authlock(s, &t);
    session_tls_started(s, "TLSv1.3 test");
    cmd(s, "EHLO client.test");
    assert_true(strncmp(cmd(s, "AUTH PLAIN AGFubgBwdyAx"), "235 2.7.0 ", 10) == 0);
    assert_true(strncmp(cmd(s, "MAIL FROM:<bob@example.test>"), "553 5.7.1 ", 10) == 0);
    assert_true(strncmp(cmd(s, "MAIL FROM:<>"), "553 5.7.1 ", 10) == 0);
    assert_true(strncmp(cmd(s, "MAIL FROM:<Ann@Example.TEST>"), "250 2.1.0 ", 10) == 0);
    session_free(s);

    /* two failures from one address (over two connections) lock it out: 454 4.7.0 */
    for (int i = 0; i < 2; i++) {
        s = session_new(&c2, &l, "192.0.2.9", &io);
        session_set_users(s, &u);
        session_set_authlock(s, &t);
        session_tls_started(s, "TLSv1.3 test");
        cmd(s, "EHLO client.test");
        assert_true(strncmp(cmd(s, "AUTH PLAIN AGFubgB3cm9uZw=="), "535 5.7.8 ", 10) == 0);
        if (i == 1) /* now even the right password is refused */
            assert_true(strncmp(cmd(s, "AUTH PLAIN AGFubgBwdyAx"), "454 4.7.0 ", 10) == 0);
        session_free(s);
    }
    assert_true(authlock_locked(&t, "192.0.2.9", time(NULL), NULL));
    /* another address is not affected */
    s = session_new(&c2, &l, "192.0.2.10", &io);
    session_set_users(s, &u);
    session_set_authlock(s, &t);
    session_tls_started(s, "TLSv1.3 test");
    cmd(s, "EHLO client.test");
    assert_true(strncmp(cmd(s, "AUTH PLAIN AGFubgBwdyAx"), "235 2.7.0 ", 10) == 0);
    session_free(s);
    authlock_free(&t);
    users_free(&u);
}

/* ---- the rest of the command set (docs/commands.md) ------------------------------------- */

/* A session on a configuration made of the base lines plus extra. */
static struct session *start_with(struct config *c, const char *extra, const char *peer)
{
    char text[1024], err[256];
    snprintf(text, sizeof text,
             "hostname mx.test\nlisten 127.0.0.1:2525\nlocal_domain example.test\n"
             "mailbox demo@example.test\nspool %s\nmaildir %s/mail/%%d/%%u\n%s",
             spool, topdir, extra);
    if (config_parse(c, "cmds", text, strlen(text), err, sizeof err) != 0)
        fail_msg("config: %s", err);
    struct session_io io = {.write = capture, .ctx = NULL};
    struct session *s = session_new(c, &c->listen[0], peer, &io);
    assert_non_null(s);
    session_start(s);
    return s;
}

/* The newest file in spool/queue/, read whole into buf. */
static void read_queued(const char *qid, char *buf, size_t cap)
{
    char path[400];
    snprintf(path, sizeof path, "%s/queue/%s", spool, qid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void test_turn_send_xexps(void **state)
{
    (void)state;
    struct session *s = start();
    cmd(s, "EHLO client.test");
    const char *r = cmd(s, "TURN");
    assert_true(strncmp(r, "502 5.7.0 ", 10) == 0);
    assert_non_null(strstr(r, "ATRN"));
    assert_non_null(strstr(r, "RFC 2821 4.1.1"));
    r = cmd(s, "SEND FROM:<a@b.test>");
    assert_true(strncmp(r, "502 5.5.1 ", 10) == 0);
    assert_non_null(strstr(r, "terminal"));
    r = cmd(s, "X-EXPS GSSAPI");
    assert_true(strncmp(r, "502 5.5.1 ", 10) == 0);
    assert_non_null(strstr(r, "AUTH"));
    /* refusals open no transaction */
    assert_true(strncmp(cmd(s, "RCPT TO:<demo@example.test>"), "503 5.5.1 ", 10) == 0);
    session_free(s);
}

/* SOML and SAML are MAIL (RFC 821 4.1.1: without a terminal, the mailbox). */
static void test_soml_saml(void **state)
{
    (void)state;
    const char *verbs[] = {"SOML", "saml"};
    for (size_t i = 0; i < ARRAY_LEN(verbs); i++) {
        int before = count_queued();
        struct session *s = start();
        char line[128];
        cmd(s, "EHLO client.test");
        snprintf(line, sizeof line, "%s FROM:<a@b.test> BODY=8BITMIME", verbs[i]);
        assert_true(strncmp(cmd(s, line), "250 2.1.0 ", 10) == 0);
        assert_true(strncmp(cmd(s, line), "503 5.5.1 ", 10) == 0); /* nested, like MAIL */
        assert_true(strncmp(cmd(s, "RCPT TO:<demo@example.test>"), "250 2.1.5 ", 10) == 0);
        assert_true(strncmp(cmd(s, "DATA"), "354 ", 4) == 0);
        size_t used;
        const char msg[] = "Subject: soml\r\n\r\nhi\r\n.\r\n";
        assert_true(strncmp(data(s, msg, sizeof msg - 1, &used), "250 2.0.0 ", 10) == 0);
        assert_int_equal(count_queued(), before + 1);
        snprintf(line, sizeof line, "%s TO:<a@b.test>", verbs[i]);
        assert_true(strncmp(cmd(s, line), "501 5.1.7 ", 10) == 0);
        session_free(s);
    }
}

static void test_help_lists_commands(void **state)
{
    (void)state;
    struct session *s = start();
    const char *r = cmd(s, "HELP");
    const char *verbs[] = {" EHLO", " MAIL", " ETRN", " TURN", " SEND", " SOML", " SAML",
                           " X-DELIVERY-TIME", " X-EXPS", " AUTH", " STARTTLS", " HELP"};
    for (size_t i = 0; i < ARRAY_LEN(verbs); i++)
        if (!strstr(r, verbs[i]))
            fail_msg("HELP lacks%s: %s", verbs[i], r);
    assert_non_null(strstr(r, "\r\n214 2.0.0 "));
    const char *topics[] = {"ETRN", "turn", "SEND", "SOML", "SAML", "X-DELIVERY-TIME", "X-EXPS"};
    for (size_t i = 0; i < ARRAY_LEN(topics); i++) {
        char line[64];
        snprintf(line, sizeof line, "HELP %s", topics[i]);
        r = cmd(s, line);
        if (strncmp(r, "214 2.0.0 ", 10) != 0 || !str_nieq(r + 10, topics[i], strlen(topics[i])))
            fail_msg("%s: %s", line, r);
    }
    assert_non_null(strstr(cmd(s, "HELP MAIL"), "HOLDFOR=seconds"));
    assert_true(strncmp(cmd(s, "HELP ATRN"), "214 2.0.0 ATRN", 14) == 0);
    session_free(s);
}

static void test_future_release(void **state)
{
    (void)state;
    struct config c;
    struct session *s = start_with(&c, "future_release_max 1h\nrelay_networks 192.0.2.0/24\n",
                                   "192.0.2.1");
    const char *r = cmd(s, "EHLO client.test");
    const char *kw = strstr(r, "250-FUTURERELEASE 3600 ");
    assert_non_null(kw);
    long long latest;
    assert_int_equal(smtp_parse_rfc3339(kw + 23, 20, &latest), PARSE_OK);
    assert_true(latest > (long long)time(NULL) + 3000 && latest <= (long long)time(NULL) + 3600);
    assert_non_null(strstr(r, "250-ETRN\r\n"));

    /* X-DELIVERY-TIME needs a transaction */
    assert_true(strncmp(cmd(s, "X-DELIVERY-TIME +60"), "503 5.5.1 ", 10) == 0);
    /* beyond the maximum: 554 5.3.4 (RFC 4865); bad syntax: 501 */
    assert_true(strncmp(cmd(s, "MAIL FROM:<a@b.test> HOLDFOR=3700"), "554 5.3.4 ", 10) == 0);
    assert_true(strncmp(cmd(s, "MAIL FROM:<a@b.test> HOLDFOR=soon"), "501 5.5.4 ", 10) == 0);
    assert_true(strncmp(cmd(s, "MAIL FROM:<a@b.test> HOLDFOR=1 HOLDUNTIL=2030-01-01T00:00:00Z"),
                        "501 5.5.4 ", 10) == 0);
    assert_true(strncmp(cmd(s, "MAIL FROM:<a@b.test> HOLDUNTIL=2999-01-01T00:00:00Z"),
                        "554 5.3.4 ", 10) == 0);
    /* a time in the past: delivered at once */
    assert_true(strncmp(cmd(s, "MAIL FROM:<a@b.test> HOLDUNTIL=2001-01-01T00:00:00+01:00"),
                        "250 2.1.0 ", 10) == 0);
    assert_non_null(strstr(cmd(s, "X-DELIVERY-TIME"), "250 2.0.0 No delivery time set"));
    cmd(s, "RSET");

    assert_true(strncmp(cmd(s, "MAIL FROM:<a@b.test> HOLDFOR=600"), "250 2.1.0 ", 10) == 0);
    r = cmd(s, "X-DELIVERY-TIME");
    assert_true(strncmp(r, "250 2.0.0 Delivery time 20", 26) == 0);
    assert_true(strncmp(cmd(s, "X-DELIVERY-TIME +7200"), "554 5.3.4 ", 10) == 0);
    assert_true(strncmp(cmd(s, "X-DELIVERY-TIME tomorrow"), "501 5.5.4 ", 10) == 0);
    cmd(s, "RCPT TO:<demo@example.test>");
    /* the command form changes the hold of this transaction */
    r = cmd(s, "X-DELIVERY-TIME +1800");
    assert_true(strncmp(r, "250 2.0.0 Delivery time set to ", 31) == 0);
    long long want;
    assert_int_equal(smtp_parse_rfc3339(r + 31, 20, &want), PARSE_OK);
    assert_true(strncmp(cmd(s, "DATA"), "354 ", 4) == 0);
    size_t used;
    const char msg[] = "Subject: later\r\n\r\nhi\r\n.\r\n";
    r = data(s, msg, sizeof msg - 1, &used);
    assert_true(strncmp(r, "250 2.0.0 Ok: queued as ", 24) == 0);
    char qid[32], file[4096], line[64];
    snprintf(qid, sizeof qid, "%.16s", r + 24);
    read_queued(qid, file, sizeof file);
    snprintf(line, sizeof line, "\nhold_until %lld\n", want);
    if (!strstr(file, line))
        fail_msg("no '%s' in the queue file:\n%s", line + 1, file);
    /* the hold belongs to that transaction only */
    cmd(s, "MAIL FROM:<a@b.test>");
    assert_non_null(strstr(cmd(s, "X-DELIVERY-TIME"), "No delivery time set"));
    session_free(s);
    config_free(&c);

    /* a client that may not relay may not park mail here either */
    s = start_with(&c, "future_release_max 1h\nrelay_networks 192.0.2.0/24\n", "198.51.100.7");
    cmd(s, "EHLO client.test");
    assert_true(strncmp(cmd(s, "MAIL FROM:<a@b.test> HOLDFOR=60"), "550 5.7.1 ", 10) == 0);
    cmd(s, "MAIL FROM:<a@b.test>");
    assert_true(strncmp(cmd(s, "X-DELIVERY-TIME +60"), "550 5.7.1 ", 10) == 0);
    session_free(s);
    config_free(&c);

    /* not offered at all */
    s = start_with(&c, "future_release_max 0\nrelay_networks 192.0.2.0/24\n", "192.0.2.1");
    assert_null(strstr(cmd(s, "EHLO client.test"), "FUTURERELEASE"));
    assert_true(strncmp(cmd(s, "MAIL FROM:<a@b.test> HOLDFOR=60"), "555 5.5.4 ", 10) == 0);
    cmd(s, "MAIL FROM:<a@b.test>");
    assert_true(strncmp(cmd(s, "X-DELIVERY-TIME +60"), "502 5.5.1 ", 10) == 0);
    session_free(s);
    config_free(&c);
}

static void test_etrn(void **state)
{
    (void)state;
    struct config c;
    struct session *s = start_with(&c, "etrn_networks 192.0.2.0/28\n", "192.0.2.99");
    assert_true(strncmp(cmd(s, "ETRN example.org"), "503 5.5.1 ", 10) == 0);
    cmd(s, "EHLO client.test");
    const char *r = cmd(s, "ETRN example.org");
    assert_true(strncmp(r, "459 4.7.1 Node example.org not allowed", 38) == 0);
    session_free(s);
    config_free(&c);

    s = start_with(&c, "etrn_networks 192.0.2.0/28\n", "192.0.2.9");
    cmd(s, "EHLO client.test");
    assert_true(strncmp(cmd(s, "ETRN"), "501 5.5.4 ", 10) == 0);
    assert_true(strncmp(cmd(s, "ETRN [127.0.0.1]"), "501 5.5.4 ", 10) == 0);
    assert_true(strncmp(cmd(s, "ETRN #deferred"), "459 4.7.1 Node #deferred ", 25) == 0);
    /* no queue manager listens on this spool's control socket: 458, and why */
    r = cmd(s, "ETRN Example.ORG");
    assert_true(strncmp(r, "458 4.3.0 Unable to queue messages for node example.org", 55) == 0);
    r = cmd(s, "ETRN @example.org");
    assert_true(strncmp(r, "458 4.3.0 Unable to queue messages for node @example.org", 56) == 0);
    cmd(s, "MAIL FROM:<a@b.test>");
    assert_true(strncmp(cmd(s, "ETRN example.org"), "503 5.5.1 ", 10) == 0);
    session_free(s);
    config_free(&c);
}

/* What the I/O layer was asked to send to the queue manager (io->control). */
static char control_request_seen[300];

static void record_control(void *ctx, const char *request)
{
    (void)ctx;
    str_copy(control_request_seen, sizeof control_request_seen, request);
}

/* ETRN waits for the queue manager's answer (MODE_WAIT), then replies as RFC 1985 says. */
static void test_etrn_answers(void **state)
{
    (void)state;
    struct config c;
    char text[512], err[256];
    snprintf(text, sizeof text, "listen 127.0.0.1:2525\nlocal_domain example.test\nspool %s\n"
             "etrn_networks 192.0.2.0/24\n", spool);
    if (config_parse(&c, "etrn", text, strlen(text), err, sizeof err) != 0)
        fail_msg("config: %s", err);
    struct session_io io = {.write = capture, .ctx = NULL, .control = record_control};
    struct session *s = session_new(&c, &c.listen[0], "192.0.2.5", &io);
    session_start(s);
    cmd(s, "EHLO client.test");
    const struct {
        const char *line, *request;
        long n;
        const char *reply;
    } cases[] = {
        {"ETRN Example.ORG", "FLUSH @example.org", 1,
         "253 2.0.0 OK, 1 pending message for node example.org started\r\n"},
        {"ETRN @example.org", "FLUSH @.example.org", 4,
         "253 2.0.0 OK, 4 pending messages for node @example.org started\r\n"},
        {"ETRN example.net", "FLUSH @example.net", 0,
         "251 2.0.0 OK, no messages waiting for node example.net\r\n"},
        {"ETRN example.net", "FLUSH @example.net", -1,
         "458 4.3.0 Unable to queue messages for node example.net: busy\r\n"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        control_request_seen[0] = '\0';
        assert_string_equal(cmd(s, cases[i].line), ""); /* no reply before the answer */
        assert_string_equal(control_request_seen, cases[i].request);
        assert_int_equal(session_mode(s), MODE_WAIT);
        outlen = 0;
        session_control_done(s, cases[i].n, "busy");
        assert_string_equal(out, cases[i].reply);
        assert_int_equal(session_mode(s), MODE_LINE);
    }
    /* the connection closed while waiting: nothing is written */
    cmd(s, "ETRN example.org");
    session_abort(s);
    outlen = 0;
    out[0] = '\0';
    session_control_done(s, 2, NULL);
    assert_string_equal(out, "");
    session_free(s);
    config_free(&c);
}

/* ATRN on the ODMR listener (RFC 2645): its command set, AUTH first, entitlement, and the
 * hand-over through io->atrn and session_atrn_result; held domains on the smtp listener. */
static char atrn_asked[256];
static void atrn_cb(void *ctx, const char *domains)
{
    (void)ctx;
    str_copy(atrn_asked, sizeof atrn_asked, domains);
}

static void test_odmr_atrn(void **state)
{
    (void)state;
    struct users u = {0};
    struct user_entry e;
    char err[200];
    assert_int_equal(users_make_entry(&e, "ann", "pw 1", false, 4096, err, sizeof err), 0);
    assert_int_equal(users_put(&u, &e, false), 0);
    char *ann[] = {"ann"}, *bob[] = {"bob"};
    struct odmr_domain_cfg od[] = {{"cust.test", ann, 1}, {"other.test", bob, 1}};
    struct config c2 = cfg;
    c2.odmr_domains = od;
    c2.nodmr_domains = 2;
    c2.auth_plaintext_loopback = true;
    c2.max_errors = 100;
    struct listen_cfg l = cfg.listen[0];
    l.kind = LISTEN_ODMR;
    struct session_io io = {.write = capture, .ctx = NULL, .atrn = atrn_cb};
    struct session *s = session_new(&c2, &l, "127.0.0.1", &io);
    session_set_users(s, &u);
    session_start(s);
    cmd(s, "EHLO customer.test");
    assert_non_null(strstr(out, "250-ATRN\r\n"));
    assert_null(strstr(out, "SIZE"));
    assert_true(strncmp(cmd(s, "MAIL FROM:<a@b.test>"), "502 5.5.1 ", 10) == 0);
    assert_true(strncmp(cmd(s, "ATRN cust.test"), "530 5.7.0 ", 10) == 0);
    assert_true(strncmp(cmd(s, "AUTH PLAIN AGFubgBwdyAx"), "235 2.7.0 ", 10) == 0);
    assert_true(strncmp(cmd(s, "ATRN other.test"), "450 4.7.1 ", 10) == 0);
    assert_true(strncmp(cmd(s, "ATRN cust.test,"), "501 5.5.4 ", 10) == 0);
    atrn_asked[0] = '\0';
    assert_string_equal(cmd(s, "ATRN"), ""); /* waits for the queue manager */
    assert_string_equal(atrn_asked, "cust.test");
    assert_int_equal(session_mode(s), MODE_WAIT);
    outlen = 0;
    session_atrn_result(s, 0, NULL);
    assert_true(strncmp(out, "453 4.0.0 ", 10) == 0);
    assert_int_equal(session_mode(s), MODE_LINE);
    cmd(s, "ATRN cust.test");
    outlen = 0;
    session_atrn_result(s, -1, "no queue manager");
    assert_true(strncmp(out, "451 4.3.0 ", 10) == 0);
    assert_non_null(strstr(out, "no queue manager"));
    atrn_asked[0] = '\0';
    cmd(s, "ATRN CUST.TEST");
    assert_string_equal(atrn_asked, "cust.test");
    outlen = 0;
    session_atrn_result(s, 2, NULL);
    assert_true(strncmp(out, "250 2.0.0 OK now reversing the connection", 41) == 0);
    assert_int_equal(session_mode(s), MODE_RELAY);
    outlen = 0;
    out[0] = '\0';
    session_timeout(s); /* the connection is the queue manager's: nothing written into it */
    assert_int_equal(outlen, 0);
    session_free(s);

    /* The smtp listener: held domains accepted from anyone, no relay, no ATRN. */
    struct session_io io0 = {.write = capture, .ctx = NULL};
    s = session_new(&c2, &cfg.listen[0], "192.0.2.1", &io0);
    session_start(s);
    cmd(s, "EHLO client.test");
    cmd(s, "MAIL FROM:<a@b.test>");
    assert_true(strncmp(cmd(s, "RCPT TO:<x@cust.test>"), "250 2.1.5 ", 10) == 0);
    assert_true(strncmp(cmd(s, "RCPT TO:<x@elsewhere.test>"), "554 5.7.1 ", 10) == 0);
    cmd(s, "RSET");
    assert_true(strncmp(cmd(s, "ATRN cust.test"), "502 5.5.1 ", 10) == 0);
    session_free(s);
    users_free(&u);
}

/* ---- AUTH relayed to an external SASL server (auth_backend dovecot) ----
 * The server's side is played by Dovecot's own protocol lines, parsed by dovecot_proto.c;
 * the real socket client (dovecot_auth.c) is exercised by test_dovecot_auth.py. */

static struct {
    struct dovecot_mechs mechs;
    bool known;          /* a handshake happened: mechs is valid */
    bool reachable;
    int starts, conts, cancels;
    char mech[32], resp[256];
    bool has_resp, secured;
} ext;

static const struct dovecot_mechs *ext_mechs(void *ctx)
{
    (void)ctx;
    return ext.known ? &ext.mechs : NULL;
}

static bool ext_start(void *ctx, const char *mech, const char *resp, bool secured)
{
    (void)ctx;
    ext.starts++;
    str_copy(ext.mech, sizeof ext.mech, mech);
    ext.has_resp = resp != NULL;
    str_copy(ext.resp, sizeof ext.resp, resp ? resp : "");
    ext.secured = secured;
    return ext.reachable;
}

static bool ext_cont(void *ctx, const char *resp)
{
    (void)ctx;
    ext.conts++;
    str_copy(ext.resp, sizeof ext.resp, resp);
    return ext.reachable;
}

static void ext_cancel(void *ctx)
{
    (void)ctx;
    ext.cancels++;
}

static const struct session_sasl ext_ops = {ext_mechs, ext_start, ext_cont, ext_cancel};

/* Dovecot answers with this line; returns the session's reply. */
static const char *answer(struct session *s, const char *line)
{
    struct dovecot_line l;
    outlen = 0;
    out[0] = '\0';
    if (line) {
        assert_int_not_equal(dovecot_parse_line(line, strlen(line), &l), DOVECOT_BAD);
        session_sasl_answer(s, &l);
    } else {
        session_sasl_answer(s, NULL);
    }
    return out;
}

static struct session *relay_session(struct config *c, struct listen_cfg *l, struct authlock *t)
{
    struct session_io io = {.write = capture, .ctx = NULL};
    struct session *s = session_new(c, l, "192.0.2.7", &io);
    assert_non_null(s);
    session_set_sasl(s, &ext_ops);
    session_set_authlock(s, t);
    outlen = 0;
    cmd(s, "EHLO client.test");
    return s;
}

static void test_auth_relay(void **state)
{
    (void)state;
    struct config c2 = cfg;
    c2.max_errors = 100;
    c2.sender_login_match = true;
    struct listen_cfg l = cfg.listen[0];
    l.kind = LISTEN_SUBMISSION;
    struct authlock t;
    assert_int_equal(authlock_init(&t, 0, 600, false), 0);
    memset(&ext, 0, sizeof ext);
    ext.reachable = true;
    const char *hs[] = {"MECH\tPLAIN\tplaintext", "MECH\tLOGIN\tplaintext",
                        "MECH\tCRAM-MD5\tdictionary", "MECH\tANONYMOUS\tanonymous",
                        "MECH\tEXTERNAL", "MECH\tSCRAM-SHA-256-PLUS\tmutual-auth",
                        "MECH\tSCRAM-SHA-256\tmutual-auth"};
    for (size_t i = 0; i < ARRAY_LEN(hs); i++) {
        struct dovecot_line dl;
        assert_int_equal(dovecot_parse_line(hs[i], strlen(hs[i]), &dl), DOVECOT_MECH);
        ext.mechs.v[ext.mechs.n++] = dl.mech;
    }

    /* before any handshake: PLAIN and LOGIN are assumed, and need TLS */
    struct session *s = relay_session(&c2, &l, &t);
    assert_null(strstr(out, "AUTH"));
    assert_true(strncmp(cmd(s, "AUTH PLAIN AGEAYg=="), "538 5.7.11 ", 11) == 0);
    assert_true(strncmp(cmd(s, "MAIL FROM:<a@example.test>"), "530 5.7.0 ", 10) == 0);
    session_free(s);
    ext.known = true;
    s = relay_session(&c2, &l, &t);
    assert_non_null(strstr(out, "250-AUTH CRAM-MD5 SCRAM-SHA-256\r\n"));
    assert_true(strncmp(cmd(s, "AUTH EXTERNAL ="), "504 5.5.4 ", 10) == 0);
    assert_true(strncmp(cmd(s, "AUTH ANONYMOUS"), "504 5.5.4 ", 10) == 0);
    assert_true(strncmp(cmd(s, "AUTH LOGIN"), "538 5.7.11 ", 11) == 0);
    assert_int_equal(ext.starts, 0);
    /* a generic exchange: CONT -> 334, the client's answer canonicalised, OK -> 235 */
    assert_string_equal(cmd(s, "AUTH cram-md5"), "");
    assert_int_equal(session_mode(s), MODE_WAIT);
    assert_string_equal(ext.mech, "CRAM-MD5");
    assert_false(ext.has_resp);
    assert_false(ext.secured);
    assert_string_equal(answer(s, "CONT\t1\tPDEyMz4="), "334 PDEyMz4=\r\n");
    assert_int_equal(session_mode(s), MODE_LINE);
    assert_string_equal(cmd(s, "YWxpY2UgMDEyMzQ1Njc4OWFiY2RlZg=="), "");
    assert_int_equal(ext.conts, 1);
    assert_string_equal(ext.resp, "YWxpY2UgMDEyMzQ1Njc4OWFiY2RlZg==");
    assert_true(strncmp(answer(s, "OK\t1\tuser=alice@example.test"), "235 2.7.0 ", 10) == 0);
    assert_string_equal(session_auth_user(s), "alice@example.test");
    /* Dovecot's name is what sender_login_match uses */
    assert_true(strncmp(cmd(s, "MAIL FROM:<demo@example.test>"), "553 5.7.1 ", 10) == 0);
    assert_true(strncmp(cmd(s, "MAIL FROM:<alice@example.test>"), "250 2.1.0 ", 10) == 0);
    assert_true(strncmp(cmd(s, "RCPT TO:<x@elsewhere.test>"), "250 2.1.5 ", 10) == 0);
    session_free(s);
    assert_int_equal(ext.cancels, 0);

    /* over TLS: PLAIN with an initial response, "secured"; FAIL -> 535; temp -> 454 */
    s = relay_session(&c2, &l, &t);
    session_tls_started(s, "TLSv1.3 test");
    assert_non_null(strstr(cmd(s, "EHLO client.test"),
                           "250-AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256\r\n"));
    assert_string_equal(cmd(s, "AUTH PLAIN =") , "");
    assert_true(ext.has_resp && ext.secured);
    assert_string_equal(ext.resp, "");
    assert_true(strncmp(answer(s, "FAIL\t2\tuser=alice@example.test"), "535 5.7.8 ", 10) == 0);
    assert_string_equal(cmd(s, "AUTH PLAIN AGFsaWNlAHB3"), "");
    assert_string_equal(ext.resp, "AGFsaWNlAHB3");
    assert_true(strncmp(answer(s, "FAIL\t3\ttemp\treason=db down"), "454 4.7.0 ", 10) == 0);
    /* unreachable at the start, or no answer in time: 454 */
    ext.reachable = false;
    assert_true(strncmp(cmd(s, "AUTH PLAIN AGFsaWNlAHB3"), "454 4.7.0 ", 10) == 0);
    ext.reachable = true;
    assert_string_equal(cmd(s, "AUTH LOGIN"), "");
    assert_true(strncmp(answer(s, NULL), "454 4.7.0 ", 10) == 0);
    /* cancel and bad base64 in the middle: the server is told to forget the request */
    assert_string_equal(cmd(s, "AUTH LOGIN"), "");
    answer(s, "CONT\t5\tVXNlcm5hbWU6");
    assert_true(strncmp(cmd(s, "*"), "501 5.7.0 ", 10) == 0);
    assert_int_equal(ext.cancels, 1);
    assert_string_equal(cmd(s, "AUTH LOGIN"), "");
    answer(s, "CONT\t6\tVXNlcm5hbWU6");
    assert_true(strncmp(cmd(s, "a\tb"), "501 5.5.2 ", 10) == 0);
    assert_int_equal(ext.cancels, 2);
    /* OK without a usable user name is not a success */
    assert_string_equal(cmd(s, "AUTH PLAIN AGFsaWNlAHB3"), "");
    assert_true(strncmp(answer(s, "OK\t7\tuser=a\001nb"), "535 5.7.8 ", 10) == 0);
    /* success with final data: 334, then the client's empty response, then 235 */
    assert_string_equal(cmd(s, "AUTH SCRAM-SHA-256 biwsbj1hbGljZSxyPXh5eg=="), "");
    assert_string_equal(answer(s, "OK\t8\tuser=alice@example.test\tresp=dj1hYmM="),
                        "334 dj1hYmM=\r\n");
    assert_null(session_auth_user(s));
    assert_true(strncmp(cmd(s, ""), "235 2.7.0 ", 10) == 0);
    assert_string_equal(session_auth_user(s), "alice@example.test");
    /* a session freed while Dovecot thinks cancels the request */
    session_free(s);
    s = relay_session(&c2, &l, &t);
    cmd(s, "AUTH CRAM-MD5");
    session_free(s);
    assert_int_equal(ext.cancels, 3);
    authlock_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ehlo_lists_extensions),
        cmocka_unit_test(test_sequence_errors),
        cmocka_unit_test(test_rcpt_policy),
        cmocka_unit_test(test_full_transaction_with_dot_stuffing),
        cmocka_unit_test(test_smuggling_is_one_message_refused),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_bdat),
        cmocka_unit_test(test_errors_end_session),
        cmocka_unit_test(test_misc_commands),
        cmocka_unit_test(test_starttls),
        cmocka_unit_test(test_relay_networks),
        cmocka_unit_test(test_auth_plain_login),
        cmocka_unit_test(test_auth_cram_scram),
        cmocka_unit_test(test_auth_sender_and_lockout),
        cmocka_unit_test(test_turn_send_xexps),
        cmocka_unit_test(test_soml_saml),
        cmocka_unit_test(test_help_lists_commands),
        cmocka_unit_test(test_future_release),
        cmocka_unit_test(test_etrn),
        cmocka_unit_test(test_etrn_answers),
        cmocka_unit_test(test_odmr_atrn),
        cmocka_unit_test(test_auth_relay),
        cmocka_unit_test(test_auth_check_async),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
