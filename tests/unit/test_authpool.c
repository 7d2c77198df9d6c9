/* test_authpool.c - the password check threads (authpool.c) with real yescrypt hashes and a
 * real libevent loop: right and wrong passwords, many checks at once on two threads, the
 * caller's buffers reused at once (the pool keeps copies), cancelled requests whose callback
 * never runs, and freeing the pool with checks still queued. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "authpool.h"
#include "users.h"
#include "util.h"

#define NCHECKS 8

struct answer {
    int calls;
    bool ok;
};

static int answered;

static void on_done(void *arg, bool ok)
{
    struct answer *a = arg;
    a->calls++;
    a->ok = ok;
    answered++;
}

static void never(void *arg, bool ok)
{
    (void)arg, (void)ok;
    fail_msg("the callback of a cancelled check ran");
}

static char *make_hash(const char *password)
{
    struct user_entry e;
    char err[128];
    assert_int_equal(users_make_entry(&e, "u", password, false, 4096, err, sizeof err), 0);
    char *h = xstrdup(e.crypt_hash);
    users_entry_free(&e);
    return h;
}

/* Run the loop until want answers arrived. */
static void wait_answers(struct event_base *base, int want)
{
    while (answered < want)
        assert_true(event_base_loop(base, EVLOOP_ONCE) >= 0);
}

static void checks_answer_on_the_loop(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    assert_non_null(base);
    struct authpool *p = authpool_new(base, 2);
    assert_non_null(p);
    char *hash = make_hash("right one");
    struct answer a[NCHECKS] = {{0}};
    answered = 0;
    for (int i = 0; i < NCHECKS; i++) {
        char pw[32];
        strcpy(pw, i % 2 ? "wrong one" : "right one");
        authpool_check(p, hash, pw, on_done, &a[i]);
        memset(pw, 'x', sizeof pw - 1); /* the pool must have its own copy */
    }
    assert_int_equal(answered, 0); /* never from inside authpool_check */
    /* a cancelled check: its callback never runs, whether or not it was checked */
    authpool_cancel(authpool_check(p, hash, "right one", never, NULL));
    wait_answers(base, NCHECKS);
    for (int i = 0; i < NCHECKS; i++) {
        assert_int_equal(a[i].calls, 1);
        assert_true(a[i].ok == (i % 2 == 0));
    }
    authpool_cancel(NULL);
    authpool_free(p); /* the cancelled one may still be running: it is joined and freed */
    free(hash);
    event_base_free(base);
}

/* The hash string too is copied, and an unusable hash is simply a failed check. */
static void bad_hash_fails(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct authpool *p = authpool_new(base, 1);
    assert_non_null(p);
    char hash[] = "not a crypt hash";
    struct answer a[2] = {{0}};
    answered = 0;
    authpool_check(p, hash, "anything", on_done, &a[0]);
    authpool_check(p, "*", "", on_done, &a[1]);
    memset(hash, 0, sizeof hash);
    wait_answers(base, 2);
    assert_int_equal(a[0].calls, 1);
    assert_false(a[0].ok);
    assert_int_equal(a[1].calls, 1);
    assert_false(a[1].ok);
    authpool_free(p);
    event_base_free(base);
}

/* Freed with checks queued and answers not yet reported: no callback, nothing leaks. */
static void free_with_checks_pending(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct authpool *p = authpool_new(base, 1);
    assert_non_null(p);
    char *hash = make_hash("pw");
    for (int i = 0; i < 4; i++)
        authpool_check(p, hash, "pw", never, NULL);
    authpool_free(p);
    authpool_free(NULL);
    free(hash);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(checks_answer_on_the_loop),
        cmocka_unit_test(bad_hash_fails),
        cmocka_unit_test(free_with_checks_pending),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
