/* test_maildrop.c - the maildrop file format (src/maildrop.c): what `tern sendmail` writes
 * parses back to the same envelope and content, and the parser refuses what an unprivileged
 * user could plant to smuggle SMTP into the pickup's commands or to mislead it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "maildrop.h"

/* head + content as one file. */
static char *file_of(const struct maildrop_msg *m, size_t *len)
{
    size_t hlen;
    char *head = maildrop_format_head(m, &hlen);
    if (!head)
        return NULL;
    char *f = malloc(hlen + m->len + 1);
    assert_non_null(f);
    memcpy(f, head, hlen);
    memcpy(f + hlen, m->data, m->len);
    *len = hlen + m->len;
    free(head);
    return f;
}

static void test_round_trip(void **state)
{
    (void)state;
    char *rcpts[] = {"alice@example.org", "\"odd local\"@example.org"};
    rcpts[1] = "bob+tag@example.net";
    static const char body[] = "Subject: hi\r\n\r\nline\r\n.\r\nsize 3\r\n";
    struct maildrop_msg m = {.sender = "cron@example.org", .rcpts = rcpts, .nrcpts = 2,
                             .notify = "SUCCESS,FAILURE", .ret = "HDRS", .envid = "id+2B1",
                             .eightbit = true, .data = body, .len = sizeof body - 1};
    size_t len = 0;
    char *f = file_of(&m, &len);
    assert_non_null(f);
    assert_memory_equal(f, "tern-maildrop 1\nsender cron@example.org\nrcpt alice@example.org\n",
                        61);
    struct maildrop_msg p;
    char err[256];
    assert_int_equal(maildrop_parse(f, len, &p, err, sizeof err), 0);
    assert_string_equal(p.sender, "cron@example.org");
    assert_int_equal(p.nrcpts, 2);
    assert_string_equal(p.rcpts[1], "bob+tag@example.net");
    assert_string_equal(p.notify, "SUCCESS,FAILURE");
    assert_string_equal(p.ret, "HDRS");
    assert_string_equal(p.envid, "id+2B1");
    assert_true(p.eightbit);
    assert_int_equal(p.len, sizeof body - 1);
    assert_memory_equal(p.data, body, p.len);
    maildrop_msg_free(&p);
    free(f);
}

static void test_null_sender_minimal(void **state)
{
    (void)state;
    static const char f[] = "tern-maildrop 1\nsender \nrcpt postmaster@example.org\nsize 0\n\n";
    struct maildrop_msg p;
    char err[256];
    assert_int_equal(maildrop_parse(f, sizeof f - 1, &p, err, sizeof err), 0);
    assert_string_equal(p.sender, "");
    assert_null(p.notify);
    assert_false(p.eightbit);
    assert_int_equal(p.len, 0);
    maildrop_msg_free(&p);
}

/* Each of these must be refused, with a reason. */
static void test_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "garbage\n",
        "tern-maildrop 2\nsender a@b\nrcpt c@d\nsize 0\n\n",
        "tern-maildrop 1\nsender a@b\nrcpt c@d\nsize 0\n",            /* no end of header */
        "tern-maildrop 1\nrcpt c@d\nsize 0\n\n",                       /* no sender */
        "tern-maildrop 1\nsender a@b\nsize 0\n\n",                     /* no recipient */
        "tern-maildrop 1\nsender a@b\nrcpt c@d\n\n",                   /* no size */
        "tern-maildrop 1\nsender a@b\nrcpt c@d\nsize 5\n\nabc",        /* truncated */
        "tern-maildrop 1\nsender a@b\nrcpt c@d\nsize 1\n\nabc",        /* longer */
        "tern-maildrop 1\nsender a@b\nsender e@f\nrcpt c@d\nsize 0\n\n", /* twice */
        "tern-maildrop 1\nsender a@b\nrcpt c@d> NOTIFY=NEVER\nsize 0\n\n", /* smuggling */
        "tern-maildrop 1\nsender a@b\r\nrcpt c@d\nsize 0\n\n",         /* CR in a field */
        "tern-maildrop 1\nsender <a@b>\nrcpt c@d\nsize 0\n\n",
        "tern-maildrop 1\nsender a@b\nrcpt \nsize 0\n\n",              /* empty recipient */
        "tern-maildrop 1\nsender a@b\nrcpt c@d\nnotify NEVER SUCCESS\nsize 0\n\n",
        "tern-maildrop 1\nsender a@b\nrcpt c@d\nsize -1\n\n",
        "tern-maildrop 1\nsender a@b\nrcpt c@d\nsize 99999999999999999999\n\n",
        "tern-maildrop 1\nsender a@b\nrcpt c@d\nsize 0\nfrom-uid 0\n\n", /* unknown field */
        "tern-maildrop 1\nsender a@b\nrcpt c@d\n8bit yes\nsize 0\n\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct maildrop_msg p;
        char err[256] = "";
        if (maildrop_parse(bad[i], strlen(bad[i]), &p, err, sizeof err) != -1)
            fail_msg("accepted case %zu", i);
        assert_true(err[0] != '\0');
        assert_null(p.sender);
        assert_int_equal(p.nrcpts, 0);
    }
    /* A NUL inside the header. */
    static const char nul[] = "tern-maildrop 1\nsender a\0b\nrcpt c@d\nsize 0\n\n";
    struct maildrop_msg p;
    char err[256];
    assert_int_equal(maildrop_parse(nul, sizeof nul - 1, &p, err, sizeof err), -1);
}

static void test_format_refuses(void **state)
{
    (void)state;
    char *rcpts[] = {"c@d"};
    size_t len = 0;
    struct maildrop_msg m = {.sender = "a b@c", .rcpts = rcpts, .nrcpts = 1};
    assert_null(maildrop_format_head(&m, &len));
    m.sender = "a@b";
    m.nrcpts = 0;
    assert_null(maildrop_format_head(&m, &len));
    m.nrcpts = 1;
    m.notify = "NEVER\r\nRCPT TO:<x@y>";
    assert_null(maildrop_format_head(&m, &len));
    assert_false(maildrop_addr_ok("a@b\n"));
    assert_false(maildrop_addr_ok("<a@b>"));
    assert_true(maildrop_addr_ok(""));
    assert_true(maildrop_addr_ok("a@b"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_null_sender_minimal),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_format_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
