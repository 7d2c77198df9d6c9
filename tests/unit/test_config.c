/* test_config.c - unit tests for src/config.c: the embedded default, every keyword and its
 * default, every error message with its line number, size/duration suffixes and overflow,
 * Maildir path expansion and its refusal to escape, case-insensitive lookups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

/* Every test config needs these two; tests append to them. */
#define BASE "listen 127.0.0.1:2525\nlocal_domain example.org\n"

static int parse(struct config *cfg, const char *text, char *err, size_t errlen)
{
    return config_parse(cfg, "t.conf", text, strlen(text), err, errlen);
}

static void parse_ok(struct config *cfg, const char *text)
{
    char err[512];
    if (parse(cfg, text, err, sizeof err) != 0)
        fail_msg("unexpected error: %s\n--- input:\n%s", err, text);
}

static void expect_error(const char *text, const char *expected)
{
    struct config cfg;
    char err[512] = "unset";
    int rc = parse(&cfg, text, err, sizeof err);
    if (rc != -1)
        fail_msg("parsed without error, expected \"%s\"\n--- input:\n%s", expected, text);
    if (strcmp(err, expected) != 0)
        fail_msg("error \"%s\",\n expected \"%s\"\n--- input:\n%s", err, expected, text);
    /* A failed parse leaves nothing allocated; config_free on it is harmless. */
    assert_null(cfg.hostname);
    assert_null(cfg.mailboxes);
    config_free(&cfg);
}

/* ---- the embedded default (etc/tern.conf) ---------------------------------------------- */

static void test_embedded_default(void **state)
{
    (void)state;
    struct config cfg;
    char err[512];
    int rc = config_load(&cfg, NULL, err, sizeof err);
    if (rc != 0)
        fail_msg("embedded default: %s", err);
    assert_string_equal(cfg.path, "(embedded)");
    assert_string_equal(cfg.hostname, "tern.localhost");
    assert_int_equal(cfg.nlisten, 3);
    assert_string_equal(cfg.listen[0].addr, "127.0.0.1");
    assert_int_equal(cfg.listen[0].port, 2525);
    assert_int_equal(cfg.listen[0].kind, LISTEN_SMTP);
    assert_true(cfg.listen[0].starttls);
    assert_false(cfg.listen[0].require_tls);
    assert_string_equal(cfg.listen[1].addr, "127.0.0.1");
    assert_int_equal(cfg.listen[1].port, 2587);
    assert_int_equal(cfg.listen[1].kind, LISTEN_SUBMISSION);
    assert_true(cfg.listen[1].require_tls);
    assert_int_equal(cfg.listen[2].port, 2465);
    assert_int_equal(cfg.listen[2].kind, LISTEN_SMTPS);
    assert_int_equal(cfg.ntls_certs, 1);
    assert_string_equal(cfg.tls_certs[0].cert, "var/tls/cert.pem");
    assert_string_equal(cfg.tls_certs[0].key, "var/tls/key.pem");
    assert_int_equal(cfg.nlocal_domains, 1);
    assert_string_equal(cfg.local_domains[0], "localhost");
    assert_int_equal(cfg.nmailboxes, 2);
    assert_true(config_has_mailbox(&cfg, "demo", "localhost"));
    assert_true(config_has_mailbox(&cfg, "postmaster", "localhost"));
    assert_string_equal(cfg.spool_dir, "var/spool");
    assert_string_equal(cfg.maildir, "var/mail/%d/%u");
    assert_int_equal(cfg.workers, 2);
    assert_int_equal(cfg.log_target, LOG_TO_STDERR);
    assert_int_equal(cfg.log_level, LOG_INFO);
    char path[256];
    assert_true(config_maildir_path(&cfg, "demo", "localhost", path, sizeof path));
    assert_string_equal(path, "var/mail/localhost/demo");
    config_free(&cfg);
}

/* ---- defaults ------------------------------------------------------------------------------ */

static void test_defaults(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, BASE);
    assert_string_equal(cfg.path, "t.conf");

    /* The default host name is gethostname(), lower-cased, else "localhost". */
    char host[256] = "";
    if (gethostname(host, sizeof host) == 0) {
        host[sizeof host - 1] = '\0';
        for (char *c = host; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
    }
    if (host[0] == '\0' || strchr(host, '_'))
        strcpy(host, "localhost");
    assert_string_equal(cfg.hostname, host);

    assert_string_equal(cfg.user, "tern");
    assert_string_equal(cfg.spool_dir, "var/spool");
    assert_string_equal(cfg.maildir, "var/mail/%d/%u");
    assert_int_equal(cfg.workers, 0);
    assert_int_equal(cfg.nlisten, 1);
    assert_int_equal(cfg.listen[0].kind, LISTEN_SMTP);
    assert_int_equal(cfg.nmailboxes, 0);
    assert_int_equal(cfg.max_message_size, 36700160);
    assert_int_equal(cfg.max_recipients, 1000);
    assert_int_equal(cfg.max_connections, 1000);
    assert_int_equal(cfg.max_connections_per_ip, 20);
    assert_int_equal(cfg.max_errors, 20);
    assert_int_equal(cfg.timeout_command, 300);
    assert_int_equal(cfg.timeout_data_block, 180);
    assert_int_equal(cfg.timeout_data_end, 600);
    assert_int_equal(cfg.shutdown_grace, 10);
    assert_false(cfg.vrfy_enabled);
    assert_int_equal(cfg.retry_min, 60);
    assert_int_equal(cfg.retry_max, 3600);
    assert_int_equal(cfg.queue_lifetime, 5 * 86400);
    assert_int_equal(cfg.log_target, LOG_TO_STDERR);
    assert_int_equal(cfg.log_level, LOG_INFO);
    config_free(&cfg);
}

/* ---- every keyword ------------------------------------------------------------------------- */

static void test_every_keyword(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg,
             "# a full configuration\n"
             "\n"
             "hostname MX1.Example.org   # comment after a value\n"
             "user mail-user\n"
             "spool /var/spool/tern\n"
             "maildir /srv/mail/%d/%u/Maildir\n"
             "workers 4\n"
             "listen 0.0.0.0:25\n"
             "listen [::]:25 smtp\n"
             "listen 192.0.2.1:587 submission\n"
             "listen [2001:db8::1]:465 smtps\n"
             "tls_certificate /etc/tern/cert.pem /etc/tern/key.pem\n"
             "local_domain Example.org example.net\n"
             "local_domain example.com\n"
             "mailbox Alice@Example.ORG bob@example.net\n"
             "mailbox postmaster@example.com\n"
             "max_message_size 50M\n"
             "max_recipients 100\n"
             "max_connections 5000\n"
             "max_connections_per_ip 7\n"
             "max_errors 3\n"
             "timeout_command 5m\n"
             "timeout_data_block 2m\n"
             "timeout_data_end 15m\n"
             "shutdown_grace 0\n"
             "vrfy on\n"
             "retry_min 30s\n"
             "retry_max 2h\n"
             "queue_lifetime 3d\n"
             "log syslog\n"
             "log_level debug\n");
    assert_string_equal(cfg.hostname, "MX1.Example.org");
    assert_string_equal(cfg.user, "mail-user");
    assert_string_equal(cfg.spool_dir, "/var/spool/tern");
    assert_string_equal(cfg.maildir, "/srv/mail/%d/%u/Maildir");
    assert_int_equal(cfg.workers, 4);
    assert_int_equal(cfg.nlisten, 4);
    assert_string_equal(cfg.listen[0].addr, "0.0.0.0");
    assert_int_equal(cfg.listen[0].port, 25);
    assert_int_equal(cfg.listen[0].kind, LISTEN_SMTP);
    assert_string_equal(cfg.listen[1].addr, "::");
    assert_int_equal(cfg.listen[1].kind, LISTEN_SMTP);
    assert_string_equal(cfg.listen[2].addr, "192.0.2.1");
    assert_int_equal(cfg.listen[2].port, 587);
    assert_int_equal(cfg.listen[2].kind, LISTEN_SUBMISSION);
    assert_string_equal(cfg.listen[3].addr, "2001:db8::1");
    assert_int_equal(cfg.listen[3].port, 465);
    assert_int_equal(cfg.listen[3].kind, LISTEN_SMTPS);
    assert_int_equal(cfg.nlocal_domains, 3);
    assert_string_equal(cfg.local_domains[0], "example.org"); /* stored lower-case, in order */
    assert_string_equal(cfg.local_domains[1], "example.net");
    assert_string_equal(cfg.local_domains[2], "example.com");
    assert_int_equal(cfg.nmailboxes, 3);
    for (size_t i = 0; i < cfg.nmailboxes; i++) {
        for (const char *c = cfg.mailboxes[i].local; *c; c++)
            assert_false(*c >= 'A' && *c <= 'Z');
        for (const char *c = cfg.mailboxes[i].domain; *c; c++)
            assert_false(*c >= 'A' && *c <= 'Z');
    }
    assert_true(config_has_mailbox(&cfg, "alice", "example.org"));
    assert_true(config_has_mailbox(&cfg, "bob", "example.net"));
    assert_true(config_has_mailbox(&cfg, "postmaster", "example.com"));
    assert_false(config_has_mailbox(&cfg, "bob", "example.org"));
    assert_int_equal(cfg.max_message_size, 50u << 20);
    assert_int_equal(cfg.max_recipients, 100);
    assert_int_equal(cfg.max_connections, 5000);
    assert_int_equal(cfg.max_connections_per_ip, 7);
    assert_int_equal(cfg.max_errors, 3);
    assert_int_equal(cfg.timeout_command, 300);
    assert_int_equal(cfg.timeout_data_block, 120);
    assert_int_equal(cfg.timeout_data_end, 900);
    assert_int_equal(cfg.shutdown_grace, 0);
    assert_true(cfg.vrfy_enabled);
    assert_int_equal(cfg.retry_min, 30);
    assert_int_equal(cfg.retry_max, 7200);
    assert_int_equal(cfg.queue_lifetime, 3 * 86400);
    assert_int_equal(cfg.log_target, LOG_TO_SYSLOG);
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    config_free(&cfg);
}

static void test_enumerations(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        int level;
    } levels[] = {
        {"log_level debug\n", LOG_DEBUG},     {"log_level info\n", LOG_INFO},
        {"log_level notice\n", LOG_NOTICE},   {"log_level warning\n", LOG_WARNING},
        {"log_level err\n", LOG_ERR},
    };
    char text[256];
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        struct config cfg;
        snprintf(text, sizeof text, BASE "%s", levels[i].line);
        parse_ok(&cfg, text);
        assert_int_equal(cfg.log_level, levels[i].level);
        config_free(&cfg);
    }
    struct config cfg;
    parse_ok(&cfg, BASE "vrfy off\nlog stderr\n");
    assert_false(cfg.vrfy_enabled);
    assert_int_equal(cfg.log_target, LOG_TO_STDERR);
    config_free(&cfg);
}

/* ---- lexical rules --------------------------------------------------------------------------- */

static void test_comments_whitespace_crlf(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, "   # indented comment\r\n"
                   "\t\r\n"
                   "listen\t127.0.0.1:2525\t  smtp  \r\n"
                   "local_domain example.org # a comment after values\r\n"
                   "spool var/sp#ool\r\n"
                   "#maildir broken%x\n"
                   "mailbox a#b@example.org"); /* '#' is legal in a local part; no final newline */
    assert_int_equal(cfg.nlisten, 1);
    assert_int_equal(cfg.nlocal_domains, 1);
    assert_string_equal(cfg.local_domains[0], "example.org");
    assert_string_equal(cfg.spool_dir, "var/sp#ool");
    assert_string_equal(cfg.maildir, "var/mail/%d/%u");
    assert_true(config_has_mailbox(&cfg, "a#b", "example.org"));
    config_free(&cfg);
}

static void test_hash_inside_word(void **state)
{
    (void)state;
    /* A '#' not preceded by whitespace is part of the word. */
    expect_error("listen 127.0.0.1:2525\nlocal_domain example.org#x\n",
                 "t.conf:2: local_domain: 'example.org#x' is not a valid domain name");
}

static void test_empty_and_comment_only(void **state)
{
    (void)state;
    expect_error("", "t.conf:1: no listen directive (add e.g. 'listen 127.0.0.1:2525 smtp')");
    expect_error("# nothing\n\n# at all\n",
                 "t.conf:3: no listen directive (add e.g. 'listen 127.0.0.1:2525 smtp')");
    expect_error("listen 127.0.0.1:2525\n\n",
                 "t.conf:2: no local_domain directive (add e.g. 'local_domain example.org')");
}

static void test_order_independent(void **state)
{
    (void)state;
    struct config cfg;
    /* A mailbox may come before the local_domain that makes it valid. */
    parse_ok(&cfg, "mailbox a@example.org\nlisten 127.0.0.1:2525\nlocal_domain example.org\n");
    assert_true(config_has_mailbox(&cfg, "a", "example.org"));
    config_free(&cfg);
}

/* ---- sizes and durations -------------------------------------------------------------------- */

static void test_size_suffixes(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        unsigned long long expect;
    } cases[] = {
        {"1", 1},
        {"2000", 2000},
        {"64k", 65536},
        {"64K", 65536},
        {"35M", 36700160},
        {"35m", 36700160},
        {"1G", 1073741824ULL},
        {"1g", 1073741824ULL},
        {"0010", 10},
    };
    char text[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config cfg;
        snprintf(text, sizeof text, BASE "max_message_size %s\n", cases[i].value);
        parse_ok(&cfg, text);
        if ((unsigned long long)cfg.max_message_size != cases[i].expect)
            fail_msg("%s -> %zu, expected %llu", cases[i].value, cfg.max_message_size,
                     cases[i].expect);
        config_free(&cfg);
    }
#if SIZE_MAX > 0xffffffffu
    struct config cfg;
    parse_ok(&cfg, BASE "max_message_size 1024G\n");
    assert_true(cfg.max_message_size == (size_t)1 << 40);
    config_free(&cfg);
#endif
}

static void test_size_errors(void **state)
{
    (void)state;
#define EXPECT_BAD "t.conf:3: max_message_size: expected a size (a number, optionally " \
                   "followed by k, M or G), got '%s'"
    const char *bad[] = {"", "M", "35MB", "35 M", "-1", "+5", "1.5M", "0x10", "35T", "k35", "35s"};
    char text[256], msg[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (bad[i][0] == '\0' || strchr(bad[i], ' '))
            continue; /* covered by the missing/too many value tests */
        snprintf(text, sizeof text, BASE "max_message_size %s\n", bad[i]);
        snprintf(msg, sizeof msg, EXPECT_BAD, bad[i]);
        expect_error(text, msg);
    }
#define RANGE "t.conf:3: max_message_size: '%s' is out of range (1 to %s)"
    const char *limit = SIZE_MAX > 0xffffffffu ? "1099511627776" : "4294967295";
    const char *big[] = {
        "0",
        "1025G",                   /* over the 1 TiB limit */
        "18446744073709551615",    /* ULLONG_MAX: fits the parser, over the limit */
        "18446744073709551616",    /* ULLONG_MAX + 1: overflows while parsing digits */
        "99999999999999999999999", /* far beyond */
        "18446744073709553616",    /* 2^64 + 2000: would wrap to a valid 2000 */
        "17179869184G",            /* 2^34 G = 2^64: overflows in the multiplication */
        "18014398509481984k",      /* 2^54 k = 2^64 */
    };
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        snprintf(text, sizeof text, BASE "max_message_size %s\n", big[i]);
        snprintf(msg, sizeof msg, RANGE, big[i], limit);
        expect_error(text, msg);
    }
}

static void test_duration_suffixes(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        int expect;
    } cases[] = {
        {"1", 1}, {"45s", 45}, {"5m", 300}, {"2h", 7200}, {"1d", 86400}, {"86400", 86400},
    };
    char text[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config cfg;
        snprintf(text, sizeof text, BASE "timeout_command %s\n", cases[i].value);
        parse_ok(&cfg, text);
        assert_int_equal(cfg.timeout_command, cases[i].expect);
        config_free(&cfg);
    }
    struct config cfg;
    parse_ok(&cfg, BASE "queue_lifetime 365d\nretry_max 30d\nretry_min 1d\n");
    assert_int_equal(cfg.queue_lifetime, 365 * 86400);
    assert_int_equal(cfg.retry_max, 30 * 86400);
    assert_int_equal(cfg.retry_min, 86400);
    config_free(&cfg);
}

static void test_duration_errors(void **state)
{
    (void)state;
    const char *bad[] = {"5M", "5H", "5D", "5S", "5ms", "m", "1w", "-5s", "5k"};
    char text[256], msg[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, BASE "timeout_command %s\n", bad[i]);
        snprintf(msg, sizeof msg,
                 "t.conf:3: timeout_command: expected a duration (a number of seconds, or "
                 "with s, m, h or d), got '%s'",
                 bad[i]);
        expect_error(text, msg);
    }
    expect_error(BASE "timeout_command 0\n",
                 "t.conf:3: timeout_command: '0' is out of range (1 to 86400 seconds)");
    expect_error(BASE "timeout_command 2d\n",
                 "t.conf:3: timeout_command: '2d' is out of range (1 to 86400 seconds)");
    expect_error(BASE "queue_lifetime 366d\n",
                 "t.conf:3: queue_lifetime: '366d' is out of range (1 to 31536000 seconds)");
    /* Values that would overflow an int, and ones that overflow 64 bits. */
    expect_error(BASE "queue_lifetime 2147483648\n",
                 "t.conf:3: queue_lifetime: '2147483648' is out of range (1 to 31536000 seconds)");
    expect_error(BASE "queue_lifetime 213503982334602d\n",
                 "t.conf:3: queue_lifetime: '213503982334602d' is out of range (1 to 31536000 "
                 "seconds)");
    expect_error(BASE "retry_max 99999999999999999999999h\n",
                 "t.conf:3: retry_max: '99999999999999999999999h' is out of range (1 to 2592000 "
                 "seconds)");
    expect_error(BASE "shutdown_grace 2h\n",
                 "t.conf:3: shutdown_grace: '2h' is out of range (0 to 3600 seconds)");
    expect_error(BASE "retry_min 0\n",
                 "t.conf:3: retry_min: '0' is out of range (1 to 86400 seconds)");
    expect_error(BASE "timeout_data_block 0s\n",
                 "t.conf:3: timeout_data_block: '0s' is out of range (1 to 86400 seconds)");
    expect_error(BASE "timeout_data_end 25h\n",
                 "t.conf:3: timeout_data_end: '25h' is out of range (1 to 86400 seconds)");
}

static void test_count_errors(void **state)
{
    (void)state;
    /* RFC 5321 4.5.3.1.8: at least 100 recipients must be accepted. */
    expect_error(BASE "max_recipients 99\n",
                 "t.conf:3: max_recipients: '99' is out of range (100 to 100000)");
    expect_error(BASE "max_recipients 1k\n",
                 "t.conf:3: max_recipients: expected a number, got '1k'");
    expect_error(BASE "max_connections 0\n",
                 "t.conf:3: max_connections: '0' is out of range (1 to 1000000)");
    expect_error(BASE "max_connections_per_ip 18446744073709551616\n",
                 "t.conf:3: max_connections_per_ip: '18446744073709551616' is out of range (1 "
                 "to 1000000)");
    expect_error(BASE "max_errors 0\n", "t.conf:3: max_errors: '0' is out of range (1 to 1000)");
    expect_error(BASE "max_errors ten\n", "t.conf:3: max_errors: expected a number, got 'ten'");
    expect_error(BASE "workers 257\n", "t.conf:3: workers: '257' is out of range (0 to 256)");
    expect_error(BASE "workers -1\n", "t.conf:3: workers: expected a number, got '-1'");
    expect_error(BASE "workers 18446744073709551617\n", /* 2^64 + 1 must not wrap to 1 */
                 "t.conf:3: workers: '18446744073709551617' is out of range (0 to 256)");
    expect_error(BASE "workers 4294967297\n",
                 "t.conf:3: workers: '4294967297' is out of range (0 to 256)");

    struct config cfg;
    parse_ok(&cfg, BASE "max_recipients 100000\nmax_errors 1000\nworkers 256\n");
    assert_int_equal(cfg.max_recipients, 100000);
    assert_int_equal(cfg.max_errors, 1000);
    assert_int_equal(cfg.workers, 256);
    config_free(&cfg);
}

/* ---- errors, each with its line ------------------------------------------------------------- */

static void test_generic_errors(void **state)
{
    (void)state;
    expect_error(BASE "\n# comment\nfrobnicate yes\n", "t.conf:5: unknown keyword 'frobnicate'");
    expect_error(BASE "Hostname mx.example.org\n", "t.conf:3: unknown keyword 'Hostname'");
    expect_error(BASE "hostname\n", "t.conf:3: hostname: missing value");
    expect_error(BASE "hostname   # only a comment\n", "t.conf:3: hostname: missing value");
    expect_error(BASE "hostname a.example b.example\n",
                 "t.conf:3: hostname: expected one value, got 2");
    expect_error(BASE "hostname a.example\n\nhostname b.example\n",
                 "t.conf:5: hostname: duplicate (already set on line 3)");
    expect_error(BASE "vrfy on\nvrfy off\n", "t.conf:4: vrfy: duplicate (already set on line 3)");
    expect_error("listen 127.0.0.1:2525\nlocal_domain example.org\nworkers 1\nworkers 1\n",
                 "t.conf:4: workers: duplicate (already set on line 3)");
    expect_error(BASE "spool a\x01" "b\n", "t.conf:3: control character 0x01 in line");
    expect_error(BASE "spool a\x7f\n", "t.conf:3: control character 0x7f in line");
    expect_error(BASE "spool a\rb\n", "t.conf:3: control character 0x0d in line");

    /* A NUL byte cannot come through strlen: give the length explicitly. */
    static const char nul[] = BASE "spool a\0b\nworkers 1\n";
    struct config cfg;
    char err[256];
    assert_int_equal(config_parse(&cfg, "n.conf", nul, sizeof nul - 1, err, sizeof err), -1);
    assert_string_equal(err, "n.conf:3: NUL byte in line");

    /* Too many words on one line. */
    char text[2048] = BASE "mailbox";
    for (int i = 0; i < 64; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), " u%d@example.org", i);
    strcat(text, "\n");
    expect_error(text, "t.conf:3: too many values on one line (at most 63)");
}

static void test_string_errors(void **state)
{
    (void)state;
    expect_error(BASE "hostname -mx.example.org\n",
                 "t.conf:3: hostname: '-mx.example.org' is not a valid host name (letters, "
                 "digits, '-' and '.')");
    expect_error(BASE "hostname mx..example.org\n",
                 "t.conf:3: hostname: 'mx..example.org' is not a valid host name (letters, "
                 "digits, '-' and '.')");
    expect_error(BASE "hostname mx_1.example.org\n",
                 "t.conf:3: hostname: 'mx_1.example.org' is not a valid host name (letters, "
                 "digits, '-' and '.')");
    expect_error(BASE "user root:x\n", "t.conf:3: user: 'root:x' is not a valid user name");
    expect_error(BASE "user -tern\n", "t.conf:3: user: '-tern' is not a valid user name");
    expect_error(BASE "user abcdefghijklmnopqrstuvwxyz0123456\n",
                 "t.conf:3: user: 'abcdefghijklmnopqrstuvwxyz0123456' is not a valid user name");
    expect_error(BASE "maildir var/mail/%d\n",
                 "t.conf:3: maildir: pattern must contain %u (the local part)");
    expect_error(BASE "maildir var/mail/%%u\n",
                 "t.conf:3: maildir: pattern must contain %u (the local part)");
    expect_error(BASE "maildir var/mail/%x/%u\n",
                 "t.conf:3: maildir: unknown escape '%x' (expected %d, %u or %%)");
    expect_error(BASE "maildir var/mail/%u%\n",
                 "t.conf:3: maildir: pattern ends with a lone '%' (write %% for a literal one)");

    char text[1200] = BASE "spool ";
    size_t n = strlen(text);
    memset(text + n, 'a', 1025);
    strcpy(text + n + 1025, "\n");
    expect_error(text, "t.conf:3: spool: path is longer than 1024 characters");
    struct config cfg;
    text[n + 1024] = '\n';
    text[n + 1025] = '\0';
    parse_ok(&cfg, text); /* exactly 1024 is fine */
    assert_int_equal(strlen(cfg.spool_dir), 1024);
    config_free(&cfg);

    expect_error(BASE "vrfy yes\n", "t.conf:3: vrfy: expected 'on' or 'off', got 'yes'");
    expect_error(BASE "log file\n", "t.conf:3: log: expected 'stderr' or 'syslog', got 'file'");
    expect_error(BASE "log_level warn\n",
                 "t.conf:3: log_level: expected debug, info, notice, warning or err, got 'warn'");
}

static void test_listen(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, "local_domain example.org\n"
                   "listen [::1]:2525\n"
                   "listen [::0001]:2526 submission\n" /* stored canonical */
                   "listen 127.0.0.1:65535 smtps\n"
                   "listen 127.0.0.1:1\n"
                   "tls_certificate c.pem k.pem\n");
    assert_int_equal(cfg.nlisten, 4);
    assert_string_equal(cfg.listen[0].addr, "::1");
    assert_int_equal(cfg.listen[0].port, 2525);
    assert_int_equal(cfg.listen[0].kind, LISTEN_SMTP);
    assert_string_equal(cfg.listen[1].addr, "::1");
    assert_int_equal(cfg.listen[1].kind, LISTEN_SUBMISSION);
    assert_int_equal(cfg.listen[2].port, 65535);
    assert_int_equal(cfg.listen[2].kind, LISTEN_SMTPS);
    assert_int_equal(cfg.listen[3].port, 1);
    config_free(&cfg);

    /* Up to CONFIG_MAX_LISTEN, then an error on the next line. */
    char text[2048] = "local_domain example.org\n";
    for (int i = 0; i < CONFIG_MAX_LISTEN; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "listen 127.0.0.1:%d\n",
                 2000 + i);
    parse_ok(&cfg, text);
    assert_int_equal(cfg.nlisten, CONFIG_MAX_LISTEN);
    config_free(&cfg);
    strcat(text, "listen 127.0.0.1:3000\n");
    char msg[128];
    snprintf(msg, sizeof msg, "t.conf:%d: listen: too many listen directives (at most %d)",
             CONFIG_MAX_LISTEN + 2, CONFIG_MAX_LISTEN);
    expect_error(text, msg);

    const char *L = "local_domain example.org\n";
    static const struct {
        const char *line, *msg;
    } errs[] = {
        {"listen\n", "listen: missing value (expected ADDR:PORT [smtp|submission|smtps|odmr] "
                      "[options])"},
        {"listen 127.0.0.1:25 smtp extra\n",
         "listen: unknown option 'extra' (expected starttls, no-starttls, require-tls or "
         "no-require-tls)"},
        {"listen 127.0.0.1\n", "listen: bad address '127.0.0.1' (expected ADDR:PORT, e.g. "
                               "127.0.0.1:2525)"},
        {"listen :25\n", "listen: bad address ':25' (expected a numeric IP address)"},
        {"listen localhost:25\n", "listen: bad address 'localhost:25' (expected a numeric IPv4 "
                                  "address; IPv6 goes in brackets: [::1]:2525)"},
        {"listen ::1:25\n", "listen: bad address '::1:25' (expected a numeric IPv4 address; "
                            "IPv6 goes in brackets: [::1]:2525)"},
        {"listen 256.0.0.1:25\n", "listen: bad address '256.0.0.1:25' (expected a numeric IPv4 "
                                  "address; IPv6 goes in brackets: [::1]:2525)"},
        {"listen [::1]\n", "listen: bad address '[::1]' (expected [IPV6]:PORT, e.g. [::1]:2525)"},
        {"listen [::1:25\n",
         "listen: bad address '[::1:25' (expected [IPV6]:PORT, e.g. [::1]:2525)"},
        {"listen [127.0.0.1]:25\n",
         "listen: bad address '[127.0.0.1]:25' (expected a numeric IPv6 address)"},
        {"listen []:25\n", "listen: bad address '[]:25' (expected a numeric IP address)"},
        {"listen 127.0.0.1:0\n", "listen: bad port in '127.0.0.1:0' (expected 1 to 65535)"},
        {"listen 127.0.0.1:65536\n",
         "listen: bad port in '127.0.0.1:65536' (expected 1 to 65535)"},
        {"listen 127.0.0.1:\n", "listen: bad port in '127.0.0.1:' (expected 1 to 65535)"},
        {"listen 127.0.0.1:smtp\n",
         "listen: bad port in '127.0.0.1:smtp' (expected 1 to 65535)"},
        {"listen 127.0.0.1:99999999999999999999999\n",
         "listen: bad port in '127.0.0.1:99999999999999999999999' (expected 1 to 65535)"},
        {"listen [::1]:25 lmtp\n",
         "listen: unknown kind 'lmtp' (expected smtp, submission, smtps or odmr)"},
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        char t[256], m[512];
        snprintf(t, sizeof t, "%s%s", L, errs[i].line);
        snprintf(m, sizeof m, "t.conf:2: %s", errs[i].msg);
        expect_error(t, m);
    }
    expect_error("local_domain example.org\nlisten 127.0.0.1:25\nlisten 127.0.0.1:25 submission\n",
                 "t.conf:3: listen: '127.0.0.1:25' is already listed");
    expect_error("local_domain example.org\nlisten [::1]:25\nlisten [0::1]:25\n",
                 "t.conf:3: listen: '[0::1]:25' is already listed");
}

static void test_domain_and_mailbox_errors(void **state)
{
    (void)state;
    expect_error(BASE "local_domain\n",
                 "t.conf:3: local_domain: missing value (expected one or more domain names)");
    expect_error(BASE "local_domain example.net exa$mple.com\n",
                 "t.conf:3: local_domain: 'exa$mple.com' is not a valid domain name");
    expect_error(BASE "local_domain [192.0.2.1]\n",
                 "t.conf:3: local_domain: '[192.0.2.1]' is not a valid domain name");
    expect_error(BASE "local_domain example-.net\n",
                 "t.conf:3: local_domain: 'example-.net' is not a valid domain name");
    expect_error(BASE "local_domain example.net.\n",
                 "t.conf:3: local_domain: 'example.net.' is not a valid domain name");
    expect_error(BASE "\nlocal_domain EXAMPLE.ORG\n",
                 "t.conf:4: local_domain: 'EXAMPLE.ORG' is already listed on line 2");
    char label[80];
    memset(label, 'a', 64);
    label[64] = '\0';
    char text[512], msg[512];
    snprintf(text, sizeof text, BASE "local_domain %s.example\n", label);
    snprintf(msg, sizeof msg, "t.conf:3: local_domain: '%s.example' is not a valid domain name",
             label);
    expect_error(text, msg);

    expect_error(BASE "mailbox\n",
                 "t.conf:3: mailbox: missing value (expected one or more addresses local@domain)");
#define MB_MSG "t.conf:3: mailbox: bad address '%s' (expected local@domain, local part " \
               "letters, digits, dots and !#$%%&'*+-=?^_`{|}~)"
    const char *bad[] = {"@example.org",     "a@",        ".a@example.org", "a.@example.org",
                         "a..b@example.org", "a/b@example.org", "a@b@example.org",
                         "\"a\"@example.org", "a@-x.org", "a(b)@example.org"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, BASE "mailbox %s\n", bad[i]);
        snprintf(msg, sizeof msg, MB_MSG, bad[i]);
        expect_error(text, msg);
    }
    expect_error(BASE "mailbox nodomain\n",
                 "t.conf:3: mailbox: bad address 'nodomain' (expected local@domain)");
    char local[80];
    memset(local, 'x', 65);
    local[65] = '\0';
    snprintf(text, sizeof text, BASE "mailbox %s@example.org\n", local);
    snprintf(msg, sizeof msg, "t.conf:3: mailbox: bad address '%s@example.org' (expected "
                              "local@domain, local part letters, digits, dots and "
                              "!#$%%&'*+-=?^_`{|}~)", local);
    expect_error(text, msg);

    /* Whole-file checks name the line of the offending mailbox. */
    expect_error(BASE "mailbox a@example.org\nmailbox b@example.org c@other.org\n",
                 "t.conf:4: mailbox: 'c@other.org': 'other.org' is not a local_domain");
    expect_error("mailbox a@Other.Org\n" BASE,
                 "t.conf:1: mailbox: 'a@other.org': 'other.org' is not a local_domain");
    expect_error(BASE "mailbox a@example.org\nmailbox z@example.org\n\nmailbox A@EXAMPLE.org\n",
                 "t.conf:6: mailbox: 'a@example.org' is already listed on line 3");
    /* The earliest repeated line is reported, whatever the sort order. */
    expect_error(BASE "mailbox z@example.org a@example.org\nmailbox z@example.org\n"
                      "mailbox a@example.org\n",
                 "t.conf:4: mailbox: 'z@example.org' is already listed on line 3");
    expect_error(BASE "mailbox a@example.org z@example.org\nmailbox a@example.org\n"
                      "mailbox z@example.org\n",
                 "t.conf:4: mailbox: 'a@example.org' is already listed on line 3");
    expect_error(BASE "mailbox a@example.org a@example.org\n",
                 "t.conf:3: mailbox: 'a@example.org' is already listed on line 3");
}

static void test_cross_checks(void **state)
{
    (void)state;
    expect_error(BASE "retry_min 2h\nretry_max 1h\n",
                 "t.conf:4: retry_max (3600 s) is less than retry_min (7200 s)");
    expect_error(BASE "retry_min 2h\n",
                 "t.conf:3: retry_max (3600 s) is less than retry_min (7200 s)");
    expect_error(BASE "maildir mail/%u\nlocal_domain example.net\n",
                 "t.conf:3: maildir: pattern 'mail/%u' has no %d but there are 2 local domains");
    expect_error(BASE "local_domain example.net\nmaildir mail/%%d/%u\n",
                 "t.conf:4: maildir: pattern 'mail/%%d/%u' has no %d but there are 2 local "
                 "domains");
    struct config cfg;
    parse_ok(&cfg, BASE "maildir mail/%u\n"); /* one domain: %d is optional */
    char path[64];
    assert_true(config_maildir_path(&cfg, "a", "example.org", path, sizeof path));
    assert_string_equal(path, "mail/a");
    config_free(&cfg);
}

/* ---- lookups and Maildir paths -------------------------------------------------------------- */

static void test_case_insensitive_lookups(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, "listen 127.0.0.1:2525\nlocal_domain Example.ORG other.test\n"
                   "mailbox Demo@example.org postmaster@EXAMPLE.org x_y@other.test\n"
                   "mailbox b@example.org c@example.org a@example.org\n");
    assert_true(config_is_local_domain(&cfg, "example.org"));
    assert_true(config_is_local_domain(&cfg, "EXAMPLE.org"));
    assert_true(config_is_local_domain(&cfg, "OTHER.TEST"));
    assert_false(config_is_local_domain(&cfg, "example.org.evil"));
    assert_false(config_is_local_domain(&cfg, "example.or"));
    assert_false(config_is_local_domain(&cfg, ""));
    assert_true(config_has_mailbox(&cfg, "demo", "example.org"));
    assert_true(config_has_mailbox(&cfg, "DEMO", "Example.Org"));
    assert_true(config_has_mailbox(&cfg, "PostMaster", "example.org"));
    assert_true(config_has_mailbox(&cfg, "X_Y", "other.test"));
    assert_false(config_has_mailbox(&cfg, "x_y", "example.org"));
    assert_false(config_has_mailbox(&cfg, "demo", "other.test"));
    assert_false(config_has_mailbox(&cfg, "dem", "example.org"));
    assert_false(config_has_mailbox(&cfg, "demox", "example.org"));
    assert_false(config_has_mailbox(&cfg, "", "example.org"));
    const char *all[] = {"a", "b", "c", "demo", "postmaster"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        assert_true(config_has_mailbox(&cfg, all[i], "EXAMPLE.ORG"));
    config_free(&cfg);

    /* No mailboxes at all: nothing matches, nothing crashes. */
    parse_ok(&cfg, BASE);
    assert_false(config_has_mailbox(&cfg, "a", "example.org"));
    config_free(&cfg);
}

static void test_many_mailboxes(void **state)
{
    (void)state;
    /* Enough entries that the sorted lookup is exercised on every branch. */
    size_t cap = 64 * 1024, n = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    n += (size_t)snprintf(text + n, cap - n, BASE "local_domain b.test\n");
    for (int i = 999; i >= 0; i--)
        n += (size_t)snprintf(text + n, cap - n, "mailbox u%d@%s\n", i,
                              i % 2 ? "example.org" : "b.test");
    assert_true(n < cap);
    struct config cfg;
    parse_ok(&cfg, text);
    free(text);
    assert_int_equal(cfg.nmailboxes, 1000);
    char local[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(local, sizeof local, "U%d", i);
        assert_true(config_has_mailbox(&cfg, local, i % 2 ? "example.org" : "B.TEST"));
        assert_false(config_has_mailbox(&cfg, local, i % 2 ? "b.test" : "example.org"));
    }
    assert_false(config_has_mailbox(&cfg, "u1000", "example.org"));
    config_free(&cfg);
}

static void test_maildir_path(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, BASE "local_domain Example.NET\nmaildir /srv/%%/%d/%u/Maildir%%\n");
    char out[256];
    assert_true(config_maildir_path(&cfg, "Alice.Smith", "EXAMPLE.org", out, sizeof out));
    assert_string_equal(out, "/srv/%/example.org/alice.smith/Maildir%");
    /* A '%' in the local part is copied, not expanded again. */
    assert_true(config_maildir_path(&cfg, "a%d", "example.net", out, sizeof out));
    assert_string_equal(out, "/srv/%/example.net/a%d/Maildir%");

    /* Exactly fitting, one byte short. */
    const char *expect = "/srv/%/example.org/bob/Maildir%";
    size_t need = strlen(expect) + 1;
    assert_true(config_maildir_path(&cfg, "bob", "example.org", out, need));
    assert_string_equal(out, expect);
    assert_false(config_maildir_path(&cfg, "bob", "example.org", out, need - 1));
    assert_string_equal(out, "");
    assert_false(config_maildir_path(&cfg, "bob", "example.org", out, 0));

    /* Nothing that could leave the Maildir root. */
    const char *bad_local[] = {"", ".", "..", ".hidden", "a/b", "../../etc", "/", "a\nb", "a\x7f"};
    for (size_t i = 0; i < sizeof bad_local / sizeof bad_local[0]; i++) {
        strcpy(out, "junk");
        if (config_maildir_path(&cfg, bad_local[i], "example.org", out, sizeof out))
            fail_msg("local part '%s' accepted: %s", bad_local[i], out);
        assert_string_equal(out, "");
    }
    const char *bad_domain[] = {"", ".", "..", "../x", "a/b", ".example.org", "x/../../y"};
    for (size_t i = 0; i < sizeof bad_domain / sizeof bad_domain[0]; i++)
        if (config_maildir_path(&cfg, "bob", bad_domain[i], out, sizeof out))
            fail_msg("domain '%s' accepted: %s", bad_domain[i], out);
    /* Dots elsewhere are harmless: no '/' means no new path component. */
    assert_true(config_maildir_path(&cfg, "a..b.", "example.org", out, sizeof out));
    assert_string_equal(out, "/srv/%/example.org/a..b./Maildir%");
    config_free(&cfg);
}

/* ---- files ---------------------------------------------------------------------------------- */

static void test_load_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/tern-config-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/tern.conf", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(BASE "hostname file.example\nworkers 3\n", f);
    assert_int_equal(fclose(f), 0);

    struct config cfg;
    char err[512];
    assert_int_equal(config_load(&cfg, path, err, sizeof err), 0);
    assert_string_equal(cfg.path, path);
    assert_string_equal(cfg.hostname, "file.example");
    assert_int_equal(cfg.workers, 3);
    config_free(&cfg);
    config_free(&cfg); /* freeing twice is harmless: the struct is left zeroed */

    f = fopen(path, "w");
    assert_non_null(f);
    fputs(BASE "workers 3\nworkers x\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(config_load(&cfg, path, err, sizeof err), -1);
    char msg[512];
    snprintf(msg, sizeof msg, "%s:4: workers: duplicate (already set on line 3)", path);
    assert_string_equal(err, msg);
    config_free(&cfg);

    assert_int_equal(unlink(path), 0);
    assert_int_equal(config_load(&cfg, path, err, sizeof err), -1);
    snprintf(msg, sizeof msg, "%s: cannot open: No such file or directory", path);
    assert_string_equal(err, msg);
    config_free(&cfg);

    /* A directory opens but cannot be read. */
    assert_int_equal(config_load(&cfg, dir, err, sizeof err), -1);
    snprintf(msg, sizeof msg, "%s: cannot read: Is a directory", dir);
    assert_string_equal(err, msg);
    assert_int_equal(rmdir(dir), 0);
}

static void test_small_error_buffer(void **state)
{
    (void)state;
    struct config cfg;
    char err[12];
    const char *text = BASE "frobnicate\n";
    assert_int_equal(config_parse(&cfg, "t.conf", text, strlen(text), err, sizeof err), -1);
    assert_string_equal(err, "t.conf:3: u"); /* truncated, still terminated */
    assert_int_equal(config_parse(&cfg, "t.conf", text, strlen(text), err, 0), -1);
}

/* TLS: certificates, and how each listener's STARTTLS / require-TLS options resolve. */
static void test_tls(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, "local_domain example.org\n"
                   "listen 127.0.0.1:25\n"
                   "listen 127.0.0.1:587 submission\n"
                   "listen 127.0.0.1:465 smtps\n"
                   "listen 127.0.0.1:26 smtp no-starttls\n"
                   "listen 127.0.0.1:27 smtp require-tls\n"
                   "listen 127.0.0.1:588 submission no-require-tls\n"
                   "tls_certificate a.pem a.key\n"
                   "tls_certificate b.pem b.key\n"
                   "tls_ciphers ECDHE+AESGCM\n");
    assert_int_equal(cfg.ntls_certs, 2);
    assert_string_equal(cfg.tls_certs[1].cert, "b.pem");
    assert_string_equal(cfg.tls_certs[1].key, "b.key");
    assert_string_equal(cfg.tls_ciphers, "ECDHE+AESGCM");
    static const bool want[][2] = {{true, false}, {true, true}, {false, false},
                                   {false, false}, {true, true}, {true, false}};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(cfg.listen[i].starttls, want[i][0]);
        assert_int_equal(cfg.listen[i].require_tls, want[i][1]);
    }
    config_free(&cfg);

    /* Without a certificate nothing offers TLS, and submission does not demand it. */
    parse_ok(&cfg, "local_domain example.org\nlisten 127.0.0.1:587 submission\n");
    assert_false(cfg.listen[0].starttls);
    assert_false(cfg.listen[0].require_tls);
    config_free(&cfg);

    const char *L = "local_domain example.org\n";
    static const struct {
        const char *lines, *msg;
    } errs[] = {
        {"listen 127.0.0.1:465 smtps\n",
         "t.conf:2: listen 127.0.0.1:465 smtps: implicit TLS needs a tls_certificate"},
        {"listen 127.0.0.1:25 smtp starttls\n",
         "t.conf:2: listen 127.0.0.1:25: starttls needs a tls_certificate"},
        {"listen 127.0.0.1:25 smtp require-tls\n",
         "t.conf:2: listen 127.0.0.1:25: require-tls needs a tls_certificate"},
        {"listen 127.0.0.1:25 smtp no-starttls require-tls\ntls_certificate a b\n",
         "t.conf:3: listen 127.0.0.1:25: require-tls with no-starttls would refuse all mail"},
        {"listen 127.0.0.1:465 smtps starttls\ntls_certificate a b\n",
         "t.conf:3: listen 127.0.0.1:465 smtps: starttls makes no sense on implicit TLS"},
        {"listen 127.0.0.1:25\ntls_certificate a\n",
         "t.conf:3: tls_certificate: expected CERTIFICATE-FILE KEY-FILE, got 1 values"},
        {"listen 127.0.0.1:25\ntls_ciphers\n",
         "t.conf:3: tls_ciphers: expected one OpenSSL cipher list, e.g. ECDHE+AESGCM"},
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "%s%s", L, errs[i].lines);
        expect_error(text, errs[i].msg);
    }
}


/* tls_ocsp_response belongs to the tls_certificate above it (docs/tls.md, OCSP stapling). */
static void test_tls_ocsp_response(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, "local_domain example.org\n"
                   "listen 127.0.0.1:465 smtps\n"
                   "tls_certificate a.pem a.key\n"
                   "tls_ocsp_response /var/lib/tern/a.der\n"
                   "tls_certificate b.pem b.key\n"
                   "tls_certificate c.pem c.key\n"
                   "tls_ocsp_response c.der\n");
    assert_int_equal(cfg.ntls_certs, 3);
    assert_string_equal(cfg.tls_certs[0].ocsp, "/var/lib/tern/a.der");
    assert_null(cfg.tls_certs[1].ocsp);
    assert_string_equal(cfg.tls_certs[2].ocsp, "c.der");
    config_free(&cfg);

    static const struct {
        const char *lines, *msg;
    } errs[] = {
        {"tls_ocsp_response a.der\ntls_certificate a b\n",
         "t.conf:3: tls_ocsp_response: must follow the tls_certificate it belongs to"},
        {"tls_certificate a b\ntls_ocsp_response a.der\ntls_ocsp_response b.der\n",
         "t.conf:5: tls_ocsp_response: certificate a already has one"},
        {"tls_certificate a b\ntls_ocsp_response a.der b.der\n",
         "t.conf:4: tls_ocsp_response: expected one file (a DER OCSP response)"},
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "local_domain example.org\nlisten 127.0.0.1:25\n%s",
                 errs[i].lines);
        expect_error(text, errs[i].msg);
    }
}


/* ---- outbound delivery keywords (docs/delivery.md) ------------------------------------------ */

static void test_outbound_defaults(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, BASE);
    assert_null(cfg.smarthost.host);
    assert_int_equal(cfg.ntransports, 0);
    assert_int_equal(cfg.nrelay_networks, 0);
    assert_null(cfg.resolver);
    assert_int_equal(cfg.delay_warning, 4 * 3600);
    assert_int_equal(cfg.nretry_schedule, 0);
    assert_int_equal(cfg.outbound_tls, TLS_POLICY_OPPORTUNISTIC);
    assert_int_equal(cfg.outbound_concurrency, 5);
    assert_int_equal(cfg.outbound_max_connections, 100);
    assert_int_equal(cfg.outbound_max_rcpts, 100);
    assert_int_equal(cfg.outbound_timeout_connect, 30);
    assert_int_equal(cfg.outbound_timeout_command, 300);
    assert_int_equal(cfg.outbound_timeout_data_init, 120);
    assert_int_equal(cfg.outbound_timeout_data_block, 180);
    assert_int_equal(cfg.outbound_timeout_data_end, 600);
    assert_int_equal(cfg.outbound_idle, 5);
    assert_false(config_relay_allowed(&cfg, "127.0.0.1"));
    config_free(&cfg);
}

static void test_outbound_keywords(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, BASE
             "smarthost Relay.ISP.example:587 starttls=required auth=me:/etc/tern/relay.pass\n"
             "transport special.example [2001:db8::25]:2525 starttls=none\n"
             "transport .corp.example 192.0.2.7\n"
             "relay_networks 192.0.2.0/24 2001:db8::/32\n"
             "relay_networks 127.0.0.1 10.1.2.3/8\n"
             "resolver 127.0.0.53:5353\n"
             "delay_warning 2h\n"
             "retry_schedule 1m 5m 5m 1h\n"
             "outbound_tls required\n"
             "outbound_concurrency 3\n"
             "outbound_max_connections 50\n"
             "outbound_max_rcpts 250\n"
             "outbound_timeout_connect 10s\n"
             "outbound_timeout_command 4m\n"
             "outbound_timeout_data_init 3m\n"
             "outbound_timeout_data_block 5m\n"
             "outbound_timeout_data_end 20m\n"
             "outbound_idle 10s\n");
    assert_string_equal(cfg.smarthost.host, "relay.isp.example");
    assert_int_equal(cfg.smarthost.port, 587);
    assert_int_equal(cfg.smarthost.tls, TLS_POLICY_REQUIRED);
    assert_string_equal(cfg.smarthost.auth_user, "me");
    assert_string_equal(cfg.smarthost.auth_passfile, "/etc/tern/relay.pass");
    assert_int_equal(cfg.ntransports, 2);
    assert_string_equal(cfg.transports[0].domain, "special.example");
    assert_string_equal(cfg.transports[0].host, "2001:db8::25");
    assert_int_equal(cfg.transports[0].port, 2525);
    assert_int_equal(cfg.transports[0].tls, TLS_POLICY_NONE);
    assert_null(cfg.transports[0].auth_user);
    assert_string_equal(cfg.transports[1].domain, ".corp.example");
    assert_string_equal(cfg.transports[1].host, "192.0.2.7");
    assert_int_equal(cfg.transports[1].port, 25);
    assert_int_equal(cfg.transports[1].tls, TLS_POLICY_DEFAULT);
    assert_int_equal(cfg.nrelay_networks, 4);
    assert_string_equal(cfg.resolver, "127.0.0.53:5353");
    assert_int_equal(cfg.delay_warning, 7200);
    assert_int_equal(cfg.nretry_schedule, 4);
    assert_int_equal(cfg.retry_schedule[0], 60);
    assert_int_equal(cfg.retry_schedule[3], 3600);
    assert_int_equal(cfg.outbound_tls, TLS_POLICY_REQUIRED);
    assert_int_equal(cfg.outbound_concurrency, 3);
    assert_int_equal(cfg.outbound_max_connections, 50);
    assert_int_equal(cfg.outbound_max_rcpts, 250);
    assert_int_equal(cfg.outbound_timeout_connect, 10);
    assert_int_equal(cfg.outbound_timeout_command, 240);
    assert_int_equal(cfg.outbound_timeout_data_init, 180);
    assert_int_equal(cfg.outbound_timeout_data_block, 300);
    assert_int_equal(cfg.outbound_timeout_data_end, 1200);
    assert_int_equal(cfg.outbound_idle, 10);
    /* relay_networks lookups: prefixes, host bits, IPv4-mapped IPv6 */
    assert_true(config_relay_allowed(&cfg, "192.0.2.200"));
    assert_false(config_relay_allowed(&cfg, "192.0.3.1"));
    assert_true(config_relay_allowed(&cfg, "2001:db8:ffff::1"));
    assert_false(config_relay_allowed(&cfg, "2001:db9::1"));
    assert_true(config_relay_allowed(&cfg, "127.0.0.1"));
    assert_false(config_relay_allowed(&cfg, "127.0.0.2"));
    assert_true(config_relay_allowed(&cfg, "10.200.0.1")); /* 10.1.2.3/8 is 10.0.0.0/8 */
    assert_true(config_relay_allowed(&cfg, "::ffff:192.0.2.9"));
    assert_false(config_relay_allowed(&cfg, "not an address"));
    assert_false(config_relay_allowed(&cfg, NULL));
    config_free(&cfg);

    parse_ok(&cfg, BASE "delay_warning 0\nsmarthost 192.0.2.1\n");
    assert_int_equal(cfg.delay_warning, 0);
    assert_string_equal(cfg.smarthost.host, "192.0.2.1");
    assert_int_equal(cfg.smarthost.port, 25);
    config_free(&cfg);
}

/* The TLS security levels (Postfix's names) and tern's first names for two of them. */
static void test_outbound_tls_levels(void **state)
{
    (void)state;
    assert_int_equal(config_tls_policy("none"), TLS_POLICY_NONE);
    assert_int_equal(config_tls_policy("may"), TLS_POLICY_OPPORTUNISTIC);
    assert_int_equal(config_tls_policy("opportunistic"), TLS_POLICY_OPPORTUNISTIC);
    assert_int_equal(config_tls_policy("encrypt"), TLS_POLICY_REQUIRED);
    assert_int_equal(config_tls_policy("required"), TLS_POLICY_REQUIRED);
    assert_int_equal(config_tls_policy("verify"), TLS_POLICY_VERIFY);
    assert_int_equal(config_tls_policy("secure"), TLS_POLICY_DEFAULT); /* not offered */
    assert_int_equal(config_tls_policy(""), TLS_POLICY_DEFAULT);
    assert_string_equal(config_tls_policy_name(TLS_POLICY_NONE), "none");
    assert_string_equal(config_tls_policy_name(TLS_POLICY_OPPORTUNISTIC), "may");
    assert_string_equal(config_tls_policy_name(TLS_POLICY_REQUIRED), "encrypt");
    assert_string_equal(config_tls_policy_name(TLS_POLICY_VERIFY), "verify");

    struct config cfg;
    parse_ok(&cfg, BASE
             "outbound_tls verify\n"
             "outbound_tls_ca_file /etc/tern/ca.pem\n"
             "smarthost relay.example starttls=encrypt\n"
             "transport a.example mx.a.example starttls=may\n"
             "transport b.example mx.b.example starttls=verify\n"
             "double_bounce_recipient Admin@Example.net\n");
    assert_int_equal(cfg.outbound_tls, TLS_POLICY_VERIFY);
    assert_string_equal(cfg.outbound_tls_ca_file, "/etc/tern/ca.pem");
    assert_int_equal(cfg.smarthost.tls, TLS_POLICY_REQUIRED);
    assert_int_equal(cfg.transports[0].tls, TLS_POLICY_OPPORTUNISTIC);
    assert_int_equal(cfg.transports[1].tls, TLS_POLICY_VERIFY);
    assert_string_equal(cfg.double_bounce_recipient, "Admin@Example.net");
    config_free(&cfg);

    parse_ok(&cfg, BASE "double_bounce_recipient none\n");
    assert_string_equal(cfg.double_bounce_recipient, "");
    config_free(&cfg);
    parse_ok(&cfg, BASE);
    assert_null(cfg.outbound_tls_ca_file);
    assert_null(cfg.double_bounce_recipient);
    config_free(&cfg);
}

static void test_outbound_errors(void **state)
{
    (void)state;
    expect_error(BASE "smarthost\n",
                 "t.conf:3: smarthost: missing value (expected HOST[:PORT] [starttls=...] "
                 "[auth=USER:PASSWORD-FILE])");
    expect_error(BASE "smarthost relay..example\n",
                 "t.conf:3: smarthost: bad host 'relay..example' (expected a host name or an IP "
                 "address)");
    expect_error(BASE "smarthost relay.example:0\n",
                 "t.conf:3: smarthost: bad port in 'relay.example:0' (expected 1 to 65535)");
    expect_error(BASE "smarthost 2001:db8::1\n",
                 "t.conf:3: smarthost: bad host '2001:db8::1' (IPv6 addresses go in brackets: "
                 "[::1]:25)");
    expect_error(BASE "smarthost [2001:db8::1\n",
                 "t.conf:3: smarthost: bad host '[2001:db8::1' (expected [IPV6] or [IPV6]:PORT)");
    expect_error(BASE "smarthost r.example starttls=maybe\n",
                 "t.conf:3: smarthost: bad option 'starttls=maybe' (expected starttls=none, "
                 "starttls=may, starttls=encrypt or starttls=verify)");
    expect_error(BASE "smarthost r.example auth=nopass\n",
                 "t.conf:3: smarthost: bad option 'auth=nopass' (expected "
                 "auth=USER:PASSWORD-FILE)");
    expect_error(BASE "smarthost r.example starttls=none auth=u:/p\n",
                 "t.conf:3: smarthost: auth= needs TLS: tern never sends a password in clear "
                 "text");
    expect_error(BASE "smarthost r.example frobnicate\n",
                 "t.conf:3: smarthost: unknown option 'frobnicate' (expected starttls=... or "
                 "auth=...)");
    expect_error(BASE "smarthost a.example\nsmarthost b.example\n",
                 "t.conf:4: smarthost: duplicate (already set on line 3)");
    expect_error(BASE "transport x.example\n",
                 "t.conf:3: transport: expected DOMAIN HOST[:PORT] [starttls=...] "
                 "[auth=USER:PASSWORD-FILE]");
    expect_error(BASE "transport -x.example h.example\n",
                 "t.conf:3: transport: '-x.example' is not a valid domain (or .domain for its "
                 "subdomains)");
    expect_error(BASE "transport x.example h.example\ntransport X.example h2.example\n",
                 "t.conf:4: transport: 'X.example' is already listed");
    expect_error(BASE "relay_networks 192.0.2.0/33\n",
                 "t.conf:3: relay_networks: bad prefix length in '192.0.2.0/33' (0 to 32)");
    expect_error(BASE "relay_networks example.org\n",
                 "t.conf:3: relay_networks: bad network 'example.org' (expected "
                 "ADDRESS[/PREFIX])");
    expect_error(BASE "relay_networks\n",
                 "t.conf:3: relay_networks: missing value (expected networks such as "
                 "192.0.2.0/24 ::1/128)");
    expect_error(BASE "retry_schedule 5m 1m\n",
                 "t.conf:3: retry_schedule: delays must not shrink ('1m' after 300 s)");
    expect_error(BASE "retry_schedule 0s\n",
                 "t.conf:3: retry_schedule: '0s' is not a duration from 1s to 30d");
    expect_error(BASE "outbound_tls maybe\n",
                 "t.conf:3: outbound_tls: expected none, may, encrypt or verify, got 'maybe'");
    expect_error(BASE "outbound_tls Verify\n",
                 "t.conf:3: outbound_tls: expected none, may, encrypt or verify, got 'Verify'");
    expect_error(BASE "outbound_tls_ca_file\n", "t.conf:3: outbound_tls_ca_file: missing value");
    expect_error(BASE "double_bounce_recipient postmaster\n",
                 "t.conf:3: double_bounce_recipient: 'postmaster' is not an address "
                 "local@domain (or none)");
    expect_error(BASE "double_bounce_recipient @example.org\n",
                 "t.conf:3: double_bounce_recipient: '@example.org' is not an address "
                 "local@domain (or none)");
    expect_error(BASE "double_bounce_recipient a@b.example c@d.example\n",
                 "t.conf:3: double_bounce_recipient: expected one value, got 2");
    expect_error(BASE "outbound_concurrency 0\n",
                 "t.conf:3: outbound_concurrency: '0' is out of range (1 to 1000)");
    expect_error(BASE "delay_warning 31d\n",
                 "t.conf:3: delay_warning: '31d' is out of range (0 to 2592000 seconds)");
}

/* ---- SMTP AUTH keywords (docs/auth.md) --------------------------------------------------- */

static void test_dovecot_keywords(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, BASE);
    assert_int_equal(cfg.auth_backend, AUTH_BACKEND_USERS);
    assert_string_equal(cfg.dovecot_auth_socket, "/run/dovecot/auth-client");
    assert_int_equal(cfg.dovecot_auth_timeout, 30);
    config_free(&cfg);
    parse_ok(&cfg, BASE "auth_backend dovecot\ndovecot_auth_socket /var/spool/tern/auth\n"
                        "dovecot_auth_timeout 5s\n");
    assert_int_equal(cfg.auth_backend, AUTH_BACKEND_DOVECOT);
    assert_string_equal(cfg.dovecot_auth_socket, "/var/spool/tern/auth");
    assert_int_equal(cfg.dovecot_auth_timeout, 5);
    config_free(&cfg);
    expect_error(BASE "auth_backend ldap\n",
                 "t.conf:3: auth_backend: expected users or dovecot, got 'ldap'");
    expect_error(BASE "auth_backend dovecot\nusers_file /etc/tern/users\n",
                 "t.conf:4: users_file is not used with auth_backend dovecot (Dovecot checks "
                 "the passwords): remove one of them");
}

static void test_auth_keywords(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, BASE);
    assert_null(cfg.users_file);
    assert_false(cfg.auth_plaintext_loopback);
    config_free(&cfg);
    parse_ok(&cfg, BASE "users_file /etc/tern/users\nauth_plaintext_loopback on\n");
    assert_string_equal(cfg.users_file, "/etc/tern/users");
    assert_true(cfg.auth_plaintext_loopback);
    config_free(&cfg);
    expect_error(BASE "auth_plaintext_loopback maybe\n",
                 "t.conf:3: auth_plaintext_loopback: expected 'on' or 'off', got 'maybe'");
    expect_error(BASE "users_file a\nusers_file b\n",
                 "t.conf:4: users_file: duplicate (already set on line 3)");

    parse_ok(&cfg, BASE);
    assert_false(cfg.sender_login_match);
    assert_int_equal(cfg.auth_max_failures, 10);
    assert_int_equal(cfg.auth_lockout, 900);
    config_free(&cfg);
    parse_ok(&cfg, BASE "sender_login_match on\nauth_max_failures 0\nauth_lockout 1h\n"
                        "sender_login bob Bob.Smith@Example.COM @lists.example.net\n"
                        "sender_login carol carol@elsewhere.test\n");
    assert_true(cfg.sender_login_match);
    assert_false(cfg.received_auth_user);
    assert_int_equal(cfg.auth_max_failures, 0);
    assert_int_equal(cfg.auth_lockout, 3600);
    assert_int_equal(cfg.nsender_logins, 3);
    /* the login name itself, at any local domain when it has none */
    assert_true(config_sender_owned(&cfg, "bob", "bob@example.org"));
    assert_true(config_sender_owned(&cfg, "bob", "BOB@EXAMPLE.ORG"));
    assert_false(config_sender_owned(&cfg, "bob", "bob@elsewhere.test"));
    assert_true(config_sender_owned(&cfg, "alice@x.test", "Alice@X.test"));
    assert_false(config_sender_owned(&cfg, "alice@x.test", "alice@example.org"));
    /* sender_login entries: an address, or any address of a domain */
    assert_true(config_sender_owned(&cfg, "bob", "bob.smith@example.com"));
    assert_true(config_sender_owned(&cfg, "bob", "anything@lists.example.net"));
    assert_false(config_sender_owned(&cfg, "carol", "anything@lists.example.net"));
    assert_true(config_sender_owned(&cfg, "carol", "carol@elsewhere.test"));
    assert_false(config_sender_owned(&cfg, "bob", "")); /* <> belongs to nobody */
    config_free(&cfg);
    expect_error(BASE "sender_login bob\n",
                 "t.conf:3: sender_login: expected a user and one or more addresses");
    expect_error(BASE "sender_login bob nobody\n",
                 "t.conf:3: sender_login: 'nobody' is not an address or @domain");
    expect_error(BASE "auth_lockout 0\n", "t.conf:3: auth_lockout: '0' is out of range (1 to 86400 seconds)");
}

/* ---- the rest of the command set (docs/commands.md) --------------------------------------- */

static void test_command_set_keywords(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, BASE);
    assert_int_equal(cfg.future_release_max, 7 * 86400);
    assert_int_equal(cfg.netrn_networks, 0);
    assert_false(config_etrn_allowed(&cfg, "127.0.0.1"));
    config_free(&cfg);

    parse_ok(&cfg, BASE "future_release_max 2h\netrn_networks 192.0.2.0/28 2001:db8::1\n"
                        "etrn_networks 198.51.100.7\nrelay_networks 10.0.0.0/8\n");
    assert_int_equal(cfg.future_release_max, 7200);
    assert_int_equal(cfg.netrn_networks, 3);
    assert_true(config_etrn_allowed(&cfg, "192.0.2.15"));
    assert_false(config_etrn_allowed(&cfg, "192.0.2.16"));
    assert_true(config_etrn_allowed(&cfg, "2001:db8::1"));
    assert_false(config_etrn_allowed(&cfg, "2001:db8::2"));
    assert_true(config_etrn_allowed(&cfg, "198.51.100.7"));
    assert_true(config_etrn_allowed(&cfg, "10.9.9.9")); /* relay_networks may ETRN too */
    assert_false(config_relay_allowed(&cfg, "192.0.2.1")); /* but not the other way round */
    config_free(&cfg);

    parse_ok(&cfg, BASE "future_release_max 0\n");
    assert_int_equal(cfg.future_release_max, 0);
    config_free(&cfg);
    expect_error(BASE "etrn_networks 192.0.2.0/40\n",
                 "t.conf:3: etrn_networks: bad prefix length in '192.0.2.0/40' (0 to 32)");
    expect_error(BASE "etrn_networks\n",
                 "t.conf:3: etrn_networks: missing value (expected networks such as "
                 "192.0.2.0/24 ::1/128)");
    expect_error(BASE "future_release_max 400d\n",
                 "t.conf:3: future_release_max: '400d' is out of range (0 to 31536000 seconds)");
}

static void test_abuse_keywords(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, BASE);
    assert_int_equal(cfg.max_connection_rate, 0);
    assert_int_equal(cfg.min_free_space, 16u << 20);
    assert_int_equal(cfg.max_header_size, 256u << 10);
    assert_int_equal(cfg.max_header_count, 1000);
    config_free(&cfg);
    parse_ok(&cfg, BASE "max_connection_rate 60\nmin_free_space 0\nmax_header_size 100k\n"
                        "max_header_count 50\n");
    assert_int_equal(cfg.max_connection_rate, 60);
    assert_int_equal(cfg.min_free_space, 0);
    assert_int_equal(cfg.max_header_size, 102400);
    assert_int_equal(cfg.max_header_count, 50);
    config_free(&cfg);
    parse_ok(&cfg, BASE "min_free_space 1G\n");
    assert_int_equal(cfg.min_free_space, 1u << 30);
    config_free(&cfg);
    expect_error(BASE "max_header_size 100\n",
                 "t.conf:3: max_header_size: '100' is out of range (1024 to 1099511627776)");
    expect_error(BASE "max_header_count 5\n",
                 "t.conf:3: max_header_count: '5' is out of range (10 to 1000000)");
}

/* trusted_users (the maildrop pickup, docs/queue.md): login names, repeatable. */
static void test_trusted_users(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, BASE);
    assert_int_equal(cfg.ntrusted_users, 0);
    config_free(&cfg);
    parse_ok(&cfg, BASE "trusted_users www-data cron\ntrusted_users backup\n");
    assert_int_equal(cfg.ntrusted_users, 3);
    assert_string_equal(cfg.trusted_users[0], "www-data");
    assert_string_equal(cfg.trusted_users[2], "backup");
    config_free(&cfg);
    expect_error(BASE "trusted_users\n",
                 "t.conf:3: trusted_users: missing value (expected one or more user names)");
    expect_error(BASE "trusted_users bob@example.org\n",
                 "t.conf:3: trusted_users: 'bob@example.org' is not a user name");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedded_default),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_keyword),
        cmocka_unit_test(test_command_set_keywords),
        cmocka_unit_test(test_enumerations),
        cmocka_unit_test(test_comments_whitespace_crlf),
        cmocka_unit_test(test_hash_inside_word),
        cmocka_unit_test(test_empty_and_comment_only),
        cmocka_unit_test(test_order_independent),
        cmocka_unit_test(test_size_suffixes),
        cmocka_unit_test(test_size_errors),
        cmocka_unit_test(test_duration_suffixes),
        cmocka_unit_test(test_duration_errors),
        cmocka_unit_test(test_count_errors),
        cmocka_unit_test(test_generic_errors),
        cmocka_unit_test(test_string_errors),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_tls_ocsp_response),
        cmocka_unit_test(test_domain_and_mailbox_errors),
        cmocka_unit_test(test_cross_checks),
        cmocka_unit_test(test_case_insensitive_lookups),
        cmocka_unit_test(test_many_mailboxes),
        cmocka_unit_test(test_maildir_path),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_small_error_buffer),
        cmocka_unit_test(test_outbound_defaults),
        cmocka_unit_test(test_outbound_keywords),
        cmocka_unit_test(test_outbound_errors),
        cmocka_unit_test(test_outbound_tls_levels),
        cmocka_unit_test(test_auth_keywords),
        cmocka_unit_test(test_dovecot_keywords),
        cmocka_unit_test(test_abuse_keywords),
        cmocka_unit_test(test_trusted_users),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
