/* test_session.c - the SMTP state machine driven with byte strings, through the same entry
 * points the I/O layer uses, with a real configuration and a real spool in a temp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "session.h"
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
    assert_true(strncmp(cmd(s, "TURN"), "502 5.5.1 ", 10) == 0);
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
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
