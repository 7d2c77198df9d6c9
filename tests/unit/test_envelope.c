/* test_envelope.c - the envelope text format: round trips (odd characters, per-recipient
 * state) and the strictness of the parser on truncated and garbled input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "util.h"

/* An envelope exercising every field, with characters that need escaping. */
static void make_full(struct envelope *env)
{
    envelope_init(env);
    str_copy(env->qid, sizeof env->qid, "0F3K9Z12AB34CD5E");
    envelope_set(&env->sender, "first last+tag@example.org");
    env->body = BODY_8BITMIME;
    env->smtputf8 = true;
    env->ret = RET_HDRS;
    envelope_set(&env->envid, "QQ314159+2B=");
    env->arrival = 1700000000;
    envelope_set(&env->client_addr, "::1");
    envelope_set(&env->client_helo, "client.example.org");
    envelope_set(&env->protocol, "UTF8SMTPS");
    envelope_add_rcpt(env, "j\xc3\xb6rg@\xc3\xa9xample.test", NOTIFY_SUCCESS | NOTIFY_FAILURE,
                      "rfc822;j+C3+B6rg@example.test");
    envelope_add_rcpt(env, "\"odd local\"@example.test", NOTIFY_NEVER, "");
    envelope_add_rcpt(env, "c=d@example.test", 0, "");
    env->rcpts[1].status = RCPT_DELIVERED;
    env->rcpts[1].attempts = 1;
    envelope_set(&env->rcpts[1].last_reply, "2.0.0 delivered to maildir");
    env->rcpts[2].status = RCPT_PENDING;
    env->rcpts[2].attempts = 3;
    env->rcpts[2].next_try = 1700003600;
    envelope_set(&env->rcpts[2].last_reply, "4.3.0 cannot write: No space\r\nleft\ton device =+%");
}

static void assert_env_equal(const struct envelope *a, const struct envelope *b)
{
    assert_string_equal(a->qid, b->qid);
    assert_string_equal(a->sender, b->sender);
    assert_int_equal(a->body, b->body);
    assert_int_equal(a->smtputf8, b->smtputf8);
    assert_int_equal(a->ret, b->ret);
    assert_string_equal(a->envid, b->envid);
    assert_int_equal(a->arrival, b->arrival);
    assert_int_equal(a->hold_until, b->hold_until);
    assert_string_equal(a->client_addr, b->client_addr);
    assert_string_equal(a->client_helo, b->client_helo);
    assert_string_equal(a->protocol, b->protocol);
    assert_int_equal(a->nrcpts, b->nrcpts);
    for (size_t i = 0; i < a->nrcpts; i++) {
        assert_string_equal(a->rcpts[i].addr, b->rcpts[i].addr);
        assert_int_equal(a->rcpts[i].notify, b->rcpts[i].notify);
        assert_string_equal(a->rcpts[i].orcpt, b->rcpts[i].orcpt);
        assert_int_equal(a->rcpts[i].status, b->rcpts[i].status);
        assert_int_equal(a->rcpts[i].attempts, b->rcpts[i].attempts);
        assert_int_equal(a->rcpts[i].next_try, b->rcpts[i].next_try);
        assert_string_equal(a->rcpts[i].last_reply, b->rcpts[i].last_reply);
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    struct envelope a, b;
    make_full(&a);
    size_t len;
    char *text = envelope_format(&a, &len);
    assert_int_equal(strlen(text), len);
    assert_true(strncmp(text, "tern-envelope 1\n", 16) == 0);
    assert_true(len >= 2 && text[len - 1] == '\n' && text[len - 2] == '\n');
    /* One line per field: no raw space, newline or '+' leaked from a value. */
    assert_non_null(strstr(text, "\nsender first+20last+2Btag@example.org\n"));
    assert_null(strstr(text, "\n\n\n"));
    envelope_init(&b);
    assert_int_equal(envelope_parse(&b, text, len), len);
    assert_env_equal(&a, &b);
    size_t len2;
    char *text2 = envelope_format(&b, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(text, text2, len);
    free(text);
    free(text2);
    envelope_free(&a);
    envelope_free(&b);
}

static void test_round_trip_minimal(void **state)
{
    (void)state;
    struct envelope a, b;
    envelope_init(&a);
    str_copy(a.qid, sizeof a.qid, "A");
    size_t len;
    char *text = envelope_format(&a, &len);
    assert_non_null(strstr(text, "\nsender\n")); /* the null reverse-path */
    envelope_init(&b);
    envelope_set(&b.sender, "overwritten@example.org");
    assert_int_equal(envelope_parse(&b, text, len), len);
    assert_env_equal(&a, &b);
    assert_string_equal(b.sender, "");
    assert_int_equal(b.nrcpts, 0);
    free(text);
    envelope_free(&a);
    envelope_free(&b);
}

/* The parser stops at the empty line: what follows is the message content. */
static void test_parse_consumes_envelope_only(void **state)
{
    (void)state;
    struct envelope a, b;
    make_full(&a);
    size_t len;
    char *text = envelope_format(&a, &len);
    const char content[] = "Received: from x\r\n\r\nbody\n\ntern-envelope 1\n";
    char *buf = xmalloc(len + sizeof content);
    memcpy(buf, text, len);
    memcpy(buf + len, content, sizeof content);
    envelope_init(&b);
    assert_int_equal(envelope_parse(&b, buf, len + sizeof content - 1), len);
    assert_env_equal(&a, &b);
    free(buf);
    free(text);
    envelope_free(&a);
    envelope_free(&b);
}

static void test_pending_and_set(void **state)
{
    (void)state;
    struct envelope e;
    make_full(&e);
    assert_int_equal(envelope_pending(&e), 2);
    e.rcpts[0].status = RCPT_FAILED;
    assert_int_equal(envelope_pending(&e), 1);
    envelope_set(&e.sender, NULL);
    assert_string_equal(e.sender, "");
    for (int i = 0; i < 100; i++)
        envelope_add_rcpt(&e, "x@example.test", 0, NULL);
    assert_int_equal(e.nrcpts, 103);
    assert_int_equal(envelope_pending(&e), 101);
    assert_string_equal(e.rcpts[102].orcpt, "");
    envelope_free(&e);
    envelope_free(&e); /* harmless twice */
}

/* Every proper prefix of a valid envelope is rejected. */
static void test_truncated(void **state)
{
    (void)state;
    struct envelope a, b;
    make_full(&a);
    size_t len;
    char *text = envelope_format(&a, &len);
    envelope_init(&b);
    for (size_t n = 0; n < len; n++) {
        char *copy = xmalloc(n + 1); /* exact size, so ASan catches any over-read */
        memcpy(copy, text, n);
        if (envelope_parse(&b, copy, n) != 0)
            fail_msg("prefix of %zu/%zu bytes accepted", n, len);
        free(copy);
    }
    assert_string_equal(b.sender, ""); /* untouched on failure */
    free(text);
    envelope_free(&a);
    envelope_free(&b);
}

/* Replace the first occurrence of from by to in s (which must contain it). */
static char *replace(const char *s, const char *from, const char *to)
{
    const char *p = strstr(s, from);
    assert_non_null(p);
    size_t pre = (size_t)(p - s), flen = strlen(from), tlen = strlen(to);
    char *out = xmalloc(strlen(s) - flen + tlen + 1);
    memcpy(out, s, pre);
    memcpy(out + pre, to, tlen);
    strcpy(out + pre + tlen, p + flen);
    return out;
}

static void test_garbled(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"tern-envelope 1\n", "tern-envelope 2\n"},
        {"tern-envelope 1\n", "tern-envelope  1\n"},
        {"qid 0F3K9Z12AB34CD5E\n", "qid 0f3k9z12ab34cd5e\n"},
        {"qid 0F3K9Z12AB34CD5E\n", "qid 0F3K9Z12AB34CD5E0F3K9Z12\n"},
        {"qid 0F3K9Z12AB34CD5E\n", "qid\n"},
        {"qid 0F3K9Z12AB34CD5E\n", ""},                                  /* missing key */
        {"protocol UTF8SMTPS\n", "protocol UTF8SMTPS\nprotocol ESMTP\n"}, /* duplicate */
        {"protocol UTF8SMTPS\n", "protocol UTF8SMTPS\ncolour blue\n"},    /* unknown key */
        {"sender first+20last", "sender first last"},
        {"sender first+20last", "sender first+2last"},
        {"sender first+20last", "sender first+2glast"},
        {"sender first+20last", "sender first+00last"},                   /* NUL octet */
        {"sender first+20last", "sender first=last"},
        {"sender first+20last", "sender first\rlast"},
        {"sender first+20last", "sender first\x80last"},
        {"envid QQ", "envid  QQ"},
        {"client_helo client.example.org\n", "client_helo \n"},          /* trailing space */
        {"body 8bitmime", "body 8BITMIME"},
        {"body 8bitmime", "body 9bit"},
        {"smtputf8 1", "smtputf8 2"},
        {"smtputf8 1", "smtputf8 yes"},
        {"ret hdrs", "ret headers"},
        {"arrival 1700000000", "arrival -1700000000"},
        {"arrival 1700000000", "arrival 01700000000"},
        {"arrival 1700000000", "arrival 17000x0000"},
        {"arrival 1700000000", "arrival 1700000000000000000000"},
        {"arrival 1700000000", "arrival "},
        {"notify=6", "notify=16"},
        {"notify=6", "notify=+6"},
        {"notify=6", "notify="},
        {"status=pending", "status=deferred"},
        {"attempts=3", "attempts=99999999999"},
        {"attempts=3", "attempts=3 "},
        {"next_try=1700003600", "next_try=-5"},
        {"rcpt addr=j", "rcpt addr= notify=0 orcpt= status=pending attempts=0 next_try=0 "
                        "last_reply=\nrcpt addr=j"},                      /* empty address */
        {"rcpt addr=j", "rcpt  addr=j"},
        {"rcpt addr=j", "rcpt adr=j"},
        {"rcpt addr=j", "rcpt"},
        {" notify=6 orcpt=", " orcpt=x notify=6 orcpt="},                /* order */
        {" last_reply=2.0.0", " last_reply=2.0.0 extra=1 x"},
        {" last_reply=2.0.0", " last_reply=2.0.0+2"},
        {" last_reply=2.0.0", " next_try=0 last_reply=2.0.0"},
        {"\n\n", "\n \n"},
        {"\n\n", "\n\r\n"},
    };
    struct envelope a, b;
    make_full(&a);
    char *text = envelope_format(&a, NULL);
    envelope_init(&b);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *bad = replace(text, cases[i][0], cases[i][1]);
        if (envelope_parse(&b, bad, strlen(bad)) != 0)
            fail_msg("case %zu accepted: '%s' -> '%s'", i, cases[i][0], cases[i][1]);
        free(bad);
    }
    assert_int_equal(b.nrcpts, 0);
    /* The unmodified text still parses, so the cases above fail for their own reason. */
    assert_int_equal(envelope_parse(&b, text, strlen(text)), strlen(text));
    free(text);
    envelope_free(&a);
    envelope_free(&b);
}

/* Flip every byte to a few values: the parser never crashes (ASan build), and whatever it
 * accepts formats back into something it accepts identically. */
static void test_mutations(void **state)
{
    (void)state;
    static const char repl[] = {'\n', ' ', '+', '=', '0', 'A', '\0', '\x7f'};
    struct envelope a;
    make_full(&a);
    size_t len;
    char *text = envelope_format(&a, &len);
    char *buf = xmalloc(len);
    size_t accepted = 0;
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof repl; k++) {
            memcpy(buf, text, len);
            buf[i] = repl[k];
            struct envelope b;
            envelope_init(&b);
            size_t n = envelope_parse(&b, buf, len);
            if (n > 0) {
                accepted++;
                size_t flen, flen2;
                char *f = envelope_format(&b, &flen);
                struct envelope c;
                envelope_init(&c);
                assert_int_equal(envelope_parse(&c, f, flen), flen);
                char *f2 = envelope_format(&c, &flen2);
                assert_int_equal(flen, flen2);
                assert_memory_equal(f, f2, flen);
                free(f);
                free(f2);
                envelope_free(&c);
            }
            envelope_free(&b);
        }
    }
    assert_true(accepted > 0); /* e.g. a changed digit in a number is still valid */
    free(buf);
    free(text);
    envelope_free(&a);
}

/* hold_until (RFC 4865 future release) is written only when set, so envelopes without it are
 * byte for byte what they were before it existed, and those files still parse. */
static void test_hold_until(void **state)
{
    (void)state;
    struct envelope a, b;
    make_full(&a);
    size_t len;
    char *plain = envelope_format(&a, &len);
    assert_null(strstr(plain, "hold_until"));
    envelope_init(&b);
    assert_int_equal(envelope_parse(&b, plain, len), len);
    assert_int_equal(b.hold_until, 0);
    envelope_free(&b);

    a.hold_until = 1700007200;
    char *text = envelope_format(&a, &len);
    assert_non_null(strstr(text, "\narrival 1700000000\nhold_until 1700007200\n"));
    envelope_init(&b);
    assert_int_equal(envelope_parse(&b, text, len), len);
    assert_env_equal(&a, &b);
    envelope_free(&b);

    /* twice, zero, or not a number: refused like any damaged key */
    const char *bad[] = {"hold_until 1700007200\nhold_until 1700007200\n", "hold_until 0\n",
                         "hold_until\n", "hold_until -5\n", "hold_until 017\n"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char buf[4096];
        const char *at = strstr(plain, "client_addr ");
        int n = snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - plain), plain, bad[i], at);
        assert_true(n > 0 && (size_t)n < sizeof buf);
        envelope_init(&b);
        if (envelope_parse(&b, buf, (size_t)n) != 0)
            fail_msg("accepted %s", bad[i]);
        envelope_free(&b);
    }
    free(plain);
    free(text);
    envelope_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_minimal),
        cmocka_unit_test(test_hold_until),
        cmocka_unit_test(test_parse_consumes_envelope_only),
        cmocka_unit_test(test_pending_and_set),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_garbled),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
