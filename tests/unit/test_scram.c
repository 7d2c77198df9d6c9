/* test_scram.c - cmocka tests for src/scram.c against the RFC 7677 section 3 example, plus
 * the failures a client must catch (nonce, iterations, server signature, e=). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "scram.h"

#define SERVER_FIRST \
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"

static void test_rfc7677_example(void **state)
{
    (void)state;
    struct scram s;
    char err[200] = "";
    char *first = scram_client_first(&s, "user", "rOprNGfwEbeRWgbNEkqO");
    assert_string_equal(first, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    char *final = scram_client_final(&s, "pencil", SERVER_FIRST, err, sizeof err);
    assert_non_null(final);
    assert_string_equal(final, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                               "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
    assert_int_equal(s.iterations, 4096);
    assert_true(scram_verify_server(&s, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", err,
                                    sizeof err));
    /* one bit off: an impostor */
    assert_false(scram_verify_server(&s, "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", err,
                                     sizeof err));
    assert_non_null(strstr(err, "signature is wrong"));
    assert_false(scram_verify_server(&s, "e=other-error", err, sizeof err));
    assert_non_null(strstr(err, "other-error"));
    assert_false(scram_verify_server(&s, "x=1", err, sizeof err));
    free(first);
    free(final);
    scram_free(&s);
}

static void test_escaping_and_random_nonce(void **state)
{
    (void)state;
    struct scram s;
    char *first = scram_client_first(&s, "a=b,c", NULL);
    assert_non_null(first);
    assert_memory_equal(first, "n,,n=a=3Db=2Cc,r=", 17);
    assert_int_equal(strlen(first), 17 + 24);
    assert_null(strchr(first + 17, ','));
    free(first);
    scram_free(&s);
}

static void test_bad_server_first(void **state)
{
    (void)state;
    const char *bad[] = {
        "r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",   /* nonce not ours */
        "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", /* not extended */
        "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1024", /* too few iterations */
        "r=rOprNGfwEbeRWgbNEkqOx,s=!!,i=4096",                 /* salt not base64 */
        "r=rOprNGfwEbeRWgbNEkqOx,i=4096",                      /* no salt */
        "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4k",
        "e=unknown-user",
    };
    const char *why[] = {"nonce", "nonce", "iterations", "salt", "lacks", "iteration",
                         "unknown-user"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct scram s;
        char err[200] = "";
        free(scram_client_first(&s, "user", "rOprNGfwEbeRWgbNEkqO"));
        char *final = scram_client_final(&s, "pencil", bad[i], err, sizeof err);
        if (final) {
            free(final);
            fail_msg("accepted %s", bad[i]);
        }
        if (!strstr(err, why[i]))
            fail_msg("%s: error \"%s\" lacks \"%s\"", bad[i], err, why[i]);
        scram_free(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7677_example),
        cmocka_unit_test(test_escaping_and_random_nonce),
        cmocka_unit_test(test_bad_server_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
