/* test_bounce.c - RFC 3464 DSN messages built by src/bounce.c: structure, per-recipient
 * fields, ENVID/ORCPT carried back, RET=HDRS/FULL, RFC 6533 types, header safety. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bounce.h"

static const char original[] =
    "Received: from client (client [127.0.0.1]) by tern.test with ESMTP id QID1\r\n"
    "From: alice@local.test\r\n"
    "To: bob@remote.test\r\n"
    "Subject: hello there\r\n"
    "\r\n"
    "The body line.\r\n";

static struct dsn_msg base_msg(void)
{
    struct dsn_msg m = {
        .kind = DSN_ACTION_FAILED,
        .reporting_mta = "tern.test",
        .qid = "0ABCDEF123456789",
        .sender = "alice@local.test",
        .envid = "env+2Bid42",
        .arrival = 1700000000,
        .now = 1700000600,
        .retry_until = 1700432000,
        .unique = "1",
        .content = original,
        .content_len = sizeof original - 1,
    };
    m.content_len = dsn_header_len(original, sizeof original - 1);
    return m;
}

static bool has_line(const char *msg, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = msg; (p = strstr(p, line)) != NULL; p++)
        if ((p == msg || p[-1] == '\n') && (p[n] == '\r' || p[n] == '\0'))
            return true;
    return false;
}

/* Every line ends in CRLF, none is longer than 998 octets (RFC 5322 2.1.1). */
static void check_lines(const char *msg, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (msg[i] == '\n') {
            assert_true(i > 0 && msg[i - 1] == '\r');
            assert_true(i - start <= 999);
            start = i + 1;
        } else if (msg[i] == '\r') {
            assert_true(i + 1 < len && msg[i + 1] == '\n');
        }
    }
    assert_int_equal(start, len);
}

static void test_failure_report(void **state)
{
    (void)state;
    struct dsn_msg m = base_msg();
    struct dsn_rcpt r[2] = {
        {.addr = "bob@remote.test", .orcpt = "rfc822;Bob+2Bx@remote.test",
         .action = DSN_ACTION_FAILED, .status = "5.1.1", .remote_mta = "mx.remote.test",
         .diagnostic = "550 5.1.1 No such user", .last_attempt = 1700000600},
        {.addr = "carol@nullmx.test", .orcpt = "", .action = DSN_ACTION_FAILED,
         .status = "5.1.10", .reason = "domain has a null MX (RFC 7505)"},
    };
    size_t len;
    char *out = dsn_build(&m, r, 2, &len);
    assert_non_null(out);
    assert_int_equal(strlen(out), len);
    check_lines(out, len);
    assert_non_null(strstr(out, "Content-Type: multipart/report; report-type=delivery-status;"));
    assert_true(has_line(out, "To: <alice@local.test>"));
    assert_true(has_line(out, "From: Mail Delivery System <MAILER-DAEMON@tern.test>"));
    assert_true(has_line(out, "Subject: Undelivered Mail Returned to Sender"));
    assert_true(has_line(out, "Auto-Submitted: auto-replied"));
    assert_true(has_line(out, "Content-Type: message/delivery-status"));
    assert_true(has_line(out, "Content-Type: text/rfc822-headers"));
    assert_true(has_line(out, "Reporting-MTA: dns; tern.test"));
    assert_true(has_line(out, "Original-Envelope-Id: env+id42"));
    assert_true(has_line(out, "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000"));
    assert_true(has_line(out, "Original-Recipient: rfc822; Bob+x@remote.test"));
    assert_true(has_line(out, "Final-Recipient: rfc822; bob@remote.test"));
    assert_true(has_line(out, "Final-Recipient: rfc822; carol@nullmx.test"));
    assert_true(has_line(out, "Action: failed"));
    assert_true(has_line(out, "Status: 5.1.1"));
    assert_true(has_line(out, "Status: 5.1.10"));
    assert_true(has_line(out, "Remote-MTA: dns; mx.remote.test"));
    assert_true(has_line(out, "Diagnostic-Code: smtp; 550 5.1.1 No such user"));
    assert_true(has_line(out, "X-Tern-Diagnostic: domain has a null MX (RFC 7505)"));
    assert_true(has_line(out, "Last-Attempt-Date: Tue, 14 Nov 2023 22:23:20 +0000"));
    assert_non_null(strstr(out, "<bob@remote.test>: host mx.remote.test said: 550 5.1.1"));
    /* RET=HDRS: the header section, not the body */
    assert_true(has_line(out, "Subject: hello there"));
    assert_null(strstr(out, "The body line."));
    /* the multipart ends with the closing delimiter */
    const char *b = strstr(out, "boundary=\"");
    assert_non_null(b);
    b += strlen("boundary=\"");
    const char *e = strchr(b, '"');
    char close[256];
    snprintf(close, sizeof close, "--%.*s--\r\n", (int)(e - b), b);
    assert_int_equal(strcmp(out + len - strlen(close), close), 0);
    /* three parts */
    char delim[256];
    snprintf(delim, sizeof delim, "--%.*s\r\n", (int)(e - b), b);
    int parts = 0;
    for (const char *p = out; (p = strstr(p, delim)) != NULL; p++)
        parts++;
    assert_int_equal(parts, 3);
    free(out);
}

static void test_full_return(void **state)
{
    (void)state;
    struct dsn_msg m = base_msg();
    m.full = true;
    m.content_len = sizeof original - 1;
    struct dsn_rcpt r = {.addr = "bob@remote.test", .action = DSN_ACTION_FAILED,
                         .status = "5.0.0", .diagnostic = "554 rejected"};
    size_t len;
    char *out = dsn_build(&m, &r, 1, &len);
    check_lines(out, len);
    assert_true(has_line(out, "Content-Type: message/rfc822"));
    assert_true(has_line(out, "The body line."));
    assert_true(has_line(out, "Diagnostic-Code: smtp; 554 rejected"));
    free(out);
}

/* A failed report from "<>" goes to the postmaster: its own subject and words, the failed
 * report returned whole. */
static void test_double_bounce(void **state)
{
    (void)state;
    struct dsn_msg m = base_msg();
    m.sender = "postmaster@local.test";
    m.double_bounce = true;
    m.full = true;
    m.content_len = sizeof original - 1;
    struct dsn_rcpt r = {.addr = "alice@gone.test", .action = DSN_ACTION_FAILED,
                         .status = "5.1.1", .remote_mta = "mx.gone.test",
                         .diagnostic = "550 5.1.1 no such user"};
    size_t len;
    char *out = dsn_build(&m, &r, 1, &len);
    check_lines(out, len);
    assert_true(has_line(out, "To: <postmaster@local.test>"));
    assert_true(has_line(out, "Subject: Undeliverable Delivery Notification (double bounce)"));
    assert_null(strstr(out, "Undelivered Mail Returned to Sender"));
    assert_non_null(strstr(out, "never returned to anyone (RFC 5321 6.1)"));
    assert_true(has_line(out, "Final-Recipient: rfc822; alice@gone.test"));
    assert_true(has_line(out, "Content-Type: message/rfc822"));
    assert_true(has_line(out, "The body line."));
    free(out);
    /* the same report without the flag is an ordinary bounce */
    m.double_bounce = false;
    out = dsn_build(&m, &r, 1, &len);
    assert_true(has_line(out, "Subject: Undelivered Mail Returned to Sender"));
    assert_null(strstr(out, "double bounce"));
    free(out);
}

static void test_delay_report(void **state)
{
    (void)state;
    struct dsn_msg m = base_msg();
    m.kind = DSN_ACTION_DELAYED;
    m.now = m.arrival + 4 * 3600 + 60;
    struct dsn_rcpt r = {.addr = "bob@remote.test", .action = DSN_ACTION_DELAYED,
                         .status = "4.2.0", .remote_mta = "mx.remote.test",
                         .diagnostic = "451 4.2.0 try later"};
    size_t len;
    char *out = dsn_build(&m, &r, 1, &len);
    check_lines(out, len);
    assert_true(has_line(out, "Subject: Delayed Mail (still being retried)"));
    assert_true(has_line(out, "Action: delayed"));
    assert_true(has_line(out, "Status: 4.2.0"));
    assert_true(has_line(out, "Will-Retry-Until: Sun, 19 Nov 2023 22:13:20 +0000"));
    assert_non_null(strstr(out, "could not be delivered for 4 hour(s) 1 minute(s)"));
    free(out);
}

static void test_success_report(void **state)
{
    (void)state;
    struct dsn_msg m = base_msg();
    m.kind = DSN_ACTION_DELIVERED;
    m.envid = "";
    struct dsn_rcpt r[2] = {
        {.addr = "bob@remote.test", .action = DSN_ACTION_RELAYED, .status = "2.0.0",
         .remote_mta = "mx.remote.test", .diagnostic = "250 2.0.0 OK queued"},
        {.addr = "dave@local.test", .action = DSN_ACTION_DELIVERED, .status = "2.0.0",
         .reason = "delivered to maildir"},
    };
    size_t len;
    char *out = dsn_build(&m, r, 2, &len);
    check_lines(out, len);
    assert_true(has_line(out, "Subject: Successful Mail Delivery Report"));
    assert_true(has_line(out, "Action: relayed"));
    assert_true(has_line(out, "Action: delivered"));
    assert_null(strstr(out, "Original-Envelope-Id"));
    free(out);
}

/* A hostile reply cannot add header fields or end the part early. */
static void test_injection(void **state)
{
    (void)state;
    struct dsn_msg m = base_msg();
    struct dsn_rcpt r = {.addr = "bob@remote.test\r\nBcc: evil@x", .action = DSN_ACTION_FAILED,
                         .status = "5.1.1\r\nX: y", .remote_mta = "mx\r\nBcc: evil@x",
                         .diagnostic = "550 no\r\nBcc: evil@x\r\n\r\n--boundary"};
    size_t len;
    char *out = dsn_build(&m, &r, 1, &len);
    check_lines(out, len);
    for (const char *p = out; (p = strstr(p, "Bcc:")) != NULL; p++)
        assert_true(p > out && p[-1] == ' ');
    assert_true(has_line(out, "Status: 5.0.0"));
    free(out);
}

static void test_folding(void **state)
{
    (void)state;
    struct dsn_msg m = base_msg();
    char diag[2000] = "550 5.7.1";
    for (int i = 0; i < 60; i++)
        strcat(diag, " word");
    struct dsn_rcpt r = {.addr = "bob@remote.test", .action = DSN_ACTION_FAILED,
                         .status = "5.7.1", .diagnostic = diag};
    size_t len;
    char *out = dsn_build(&m, &r, 1, &len);
    check_lines(out, len);
    const char *d = strstr(out, "Diagnostic-Code: smtp; 550 5.7.1 word");
    assert_non_null(d);
    const char *eol = strstr(d, "\r\n");
    assert_true(eol - d <= 78);
    assert_int_equal(eol[2], ' '); /* continuation line */
    free(out);
}

/* A remote reply with one word longer than a line (found by fuzz_bounce): cut, so that no
 * line exceeds 998 octets, in the Diagnostic-Code field and in the human-readable part. */
static void test_long_word(void **state)
{
    (void)state;
    struct dsn_msg m = base_msg();
    char diag[3100] = "550 ";
    memset(diag + 4, 'Z', 3000);
    diag[3004] = '\0';
    struct dsn_rcpt r = {.addr = "bob@remote.test", .action = DSN_ACTION_FAILED,
                         .status = "5.7.1", .remote_mta = "mx.remote.test", .diagnostic = diag};
    size_t len;
    char *out = dsn_build(&m, &r, 1, &len);
    check_lines(out, len);
    size_t zs = 0;
    for (size_t i = 0; i < len; i++)
        zs += out[i] == 'Z';
    assert_int_equal(zs, 2 * 3000); /* nothing lost: both copies are whole */
    free(out);
}

static void test_utf8_types(void **state)
{
    (void)state;
    struct dsn_msg m = base_msg();
    m.utf8 = true;
    struct dsn_rcpt r = {.addr = "j\xc3\xb6rg@remote.test", .action = DSN_ACTION_FAILED,
                         .status = "5.1.1", .diagnostic = "550 unknown"};
    size_t len;
    char *out = dsn_build(&m, &r, 1, &len);
    assert_true(has_line(out, "Content-Type: message/global-delivery-status"));
    assert_true(has_line(out, "Content-Type: message/global-headers"));
    assert_true(has_line(out, "Final-Recipient: utf-8; j\xc3\xb6rg@remote.test"));
    assert_true(dsn_has_8bit(out, len));
    free(out);
    /* without utf8 the address is made ASCII */
    m.utf8 = false;
    out = dsn_build(&m, &r, 1, &len);
    assert_true(has_line(out, "Final-Recipient: rfc822; j??rg@remote.test"));
    assert_false(dsn_has_8bit(out, len));
    free(out);
}

/* RFC 2046 5.1.1: the boundary must not occur in the enclosed content. */
static void test_boundary_unique(void **state)
{
    (void)state;
    struct dsn_msg m = base_msg();
    struct dsn_rcpt r = {.addr = "b@r.test", .action = DSN_ACTION_FAILED, .status = "5.0.0"};
    size_t len;
    char *out = dsn_build(&m, &r, 1, &len);
    const char *b = strstr(out, "boundary=\"") + strlen("boundary=\"");
    const char *e = strchr(b, '"');
    char content[512];
    snprintf(content, sizeof content, "Subject: x\r\nX-Evil: --%.*s\r\n\r\n", (int)(e - b), b);
    char first[256];
    snprintf(first, sizeof first, "%.*s", (int)(e - b), b);
    free(out);
    m.content = content;
    m.content_len = strlen(content);
    out = dsn_build(&m, &r, 1, &len);
    b = strstr(out, "boundary=\"") + strlen("boundary=\"");
    e = strchr(b, '"');
    assert_false((size_t)(e - b) == strlen(first) && memcmp(b, first, strlen(first)) == 0);
    free(out);
}

static void test_header_len(void **state)
{
    (void)state;
    assert_int_equal(dsn_header_len("A: b\r\n\r\nbody", 13), 8);
    assert_int_equal(dsn_header_len("A: b\n\nbody", 10), 6);
    assert_int_equal(dsn_header_len("A: b\r\nC: d\r\n", 12), 12);
    assert_int_equal(dsn_header_len("\r\nbody", 6), 2);
    assert_int_equal(dsn_header_len("", 0), 0);
}

static void test_date_and_status(void **state)
{
    (void)state;
    char d[40];
    dsn_date(0, d, sizeof d);
    assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 +0000");
    dsn_date(1732348561, d, sizeof d);
    assert_string_equal(d, "Sat, 23 Nov 2024 07:56:01 +0000");
    assert_string_equal(dsn_default_status(250), "2.0.0");
    assert_string_equal(dsn_default_status(451), "4.0.0");
    assert_string_equal(dsn_default_status(554), "5.0.0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failure_report),  cmocka_unit_test(test_full_return),
        cmocka_unit_test(test_delay_report),    cmocka_unit_test(test_success_report),
        cmocka_unit_test(test_injection),       cmocka_unit_test(test_folding),
        cmocka_unit_test(test_utf8_types),      cmocka_unit_test(test_boundary_unique),
        cmocka_unit_test(test_header_len),      cmocka_unit_test(test_date_and_status),
        cmocka_unit_test(test_long_word),       cmocka_unit_test(test_double_bounce),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
