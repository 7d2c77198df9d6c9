/* test_dovecot_proto.c - unit tests for src/dovecot_proto.c: the server's handshake lines (as
 * Dovecot 2.3 sends them), OK/CONT/FAIL answers, malformed lines, tab-escaping, mechanism
 * filtering, and the client lines tern formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dovecot_proto.h"

static enum dovecot_kind parse(const char *line, struct dovecot_line *l)
{
    return dovecot_parse_line(line, strlen(line), l);
}

static void test_handshake(void **state)
{
    (void)state;
    struct dovecot_line l;
    assert_int_equal(parse("VERSION\t1\t2", &l), DOVECOT_VERSION);
    assert_int_equal(l.major, 1);
    assert_int_equal(l.minor, 2);
    assert_int_equal(parse("MECH\tPLAIN\tplaintext", &l), DOVECOT_MECH);
    assert_string_equal(l.mech.name, "PLAIN");
    assert_int_equal(l.mech.flags, DMECH_PLAINTEXT);
    assert_int_equal(parse("MECH\tcram-md5\tdictionary\tactive", &l), DOVECOT_MECH);
    assert_string_equal(l.mech.name, "CRAM-MD5");
    assert_int_equal(l.mech.flags, DMECH_DICTIONARY | DMECH_ACTIVE);
    assert_int_equal(parse("MECH\tSCRAM-SHA-256\tmutual-auth\tsome-future-flag", &l),
                     DOVECOT_MECH);
    assert_int_equal(l.mech.flags, DMECH_MUTUAL_AUTH);
    assert_int_equal(parse("SPID\t17023", &l), DOVECOT_OTHER);
    assert_int_equal(parse("CUID\t1", &l), DOVECOT_OTHER);
    assert_int_equal(parse("COOKIE\t45dd064d6e8148c313c88a37cc2c81f1", &l), DOVECOT_OTHER);
    assert_int_equal(parse("DONE", &l), DOVECOT_DONE);
    /* malformed */
    assert_int_equal(parse("VERSION\t1", &l), DOVECOT_BAD);
    assert_int_equal(parse("VERSION\tx\t2", &l), DOVECOT_BAD);
    assert_int_equal(parse("MECH", &l), DOVECOT_BAD);
    assert_int_equal(parse("MECH\t", &l), DOVECOT_BAD);
    assert_int_equal(parse("MECH\tPLA IN", &l), DOVECOT_BAD);
    assert_int_equal(parse("MECH\tABCDEFGHIJKLMNOPQRSTU", &l), DOVECOT_BAD); /* 21 characters */
    assert_int_equal(parse("", &l), DOVECOT_BAD);
    assert_int_equal(dovecot_parse_line("DONE\0x", 6, &l), DOVECOT_BAD);
}

static void test_answers(void **state)
{
    (void)state;
    struct dovecot_line l;
    assert_int_equal(parse("OK\t1\tuser=alice@localhost\toriginal_user=ALICE@localhost", &l),
                     DOVECOT_OK);
    assert_int_equal(l.id, 1);
    assert_string_equal(l.user, "alice@localhost");
    assert_null(l.data);
    /* success with final data (resp=) */
    assert_int_equal(parse("OK\t7\tuser=bob\tresp=dj1hYmM=", &l), DOVECOT_OK);
    assert_int_equal(l.datalen, 8);
    assert_memory_equal(l.data, "dj1hYmM=", 8);
    assert_int_equal(parse("CONT\t4294967295\tVXNlcm5hbWU6", &l), DOVECOT_CONT);
    assert_int_equal(l.id, 4294967295UL);
    assert_int_equal(l.datalen, 12);
    assert_memory_equal(l.data, "VXNlcm5hbWU6", 12);
    assert_int_equal(parse("CONT\t2\t", &l), DOVECOT_CONT); /* an empty challenge */
    assert_int_equal(l.datalen, 0);
    assert_int_equal(parse("CONT\t2", &l), DOVECOT_CONT);
    assert_int_equal(l.datalen, 0);
    assert_int_equal(parse("FAIL\t3\tuser=alice\treason=Password\001tmismatch", &l), DOVECOT_FAIL);
    assert_string_equal(l.user, "alice");
    assert_string_equal(l.reason, "Password?mismatch"); /* the TAB is unescaped, then masked */
    assert_false(l.temp);
    assert_int_equal(parse("FAIL\t3\ttemp", &l), DOVECOT_FAIL);
    assert_true(l.temp);
    assert_int_equal(parse("FAIL\t3\tcode=temp_fail", &l), DOVECOT_FAIL);
    assert_true(l.temp);
    assert_int_equal(parse("FAIL\t3\tcode=authz_fail", &l), DOVECOT_FAIL);
    assert_false(l.temp);
    /* malformed: no id, a bad id, a challenge that is not base64 */
    assert_int_equal(parse("OK", &l), DOVECOT_BAD);
    assert_int_equal(parse("OK\t-1", &l), DOVECOT_BAD);
    assert_int_equal(parse("OK\t99999999999", &l), DOVECOT_BAD);
    assert_int_equal(parse("CONT\t1\t334 injected", &l), DOVECOT_BAD);
    assert_int_equal(parse("CONT\t1\tabc", &l), DOVECOT_BAD);
    assert_int_equal(parse("CONT\t1\tab=c", &l), DOVECOT_BAD);
    /* a user name with a newline or NUL, or too long: no user (the session refuses it) */
    assert_int_equal(parse("OK\t1\tuser=a\001nb", &l), DOVECOT_OK);
    assert_string_equal(l.user, "");
    assert_int_equal(parse("OK\t1\tuser=a\001" "0b", &l), DOVECOT_OK);
    assert_string_equal(l.user, "");
    char longline[400] = "OK\t1\tuser=";
    memset(longline + strlen(longline), 'x', 256);
    assert_int_equal(parse(longline, &l), DOVECOT_OK);
    assert_string_equal(l.user, "");
    assert_int_equal(parse("OK\t1\tresp=not base64", &l), DOVECOT_BAD);
}

static void test_escaping(void **state)
{
    (void)state;
    char buf[64];
    bool ok;
    assert_int_equal(dovecot_tabescape(buf, sizeof buf, "a\tb\nc\001d\re", &ok), 13);
    assert_true(ok);
    assert_string_equal(buf, "a\001tb\001nc\0011d\001re");
    char back[64];
    assert_int_equal(dovecot_tabunescape(back, sizeof back, buf, strlen(buf), &ok), 9);
    assert_true(ok);
    assert_string_equal(back, "a\tb\nc\001d\re");
    /* unknown escapes stand for the character; a trailing \001 for itself */
    dovecot_tabunescape(back, sizeof back, "\001x\001", 3, &ok);
    assert_true(ok);
    assert_string_equal(back, "x\001");
    /* does not fit */
    dovecot_tabescape(buf, 4, "a\tb", &ok);
    assert_false(ok);
    dovecot_tabunescape(back, 3, "abc", 3, &ok);
    assert_false(ok);
}

static void test_mechanisms(void **state)
{
    (void)state;
    struct dovecot_mechs ms = {
        .v = {{"PLAIN", DMECH_PLAINTEXT}, {"EXTERNAL", 0}, {"ANONYMOUS", DMECH_ANONYMOUS},
              {"SCRAM-SHA-256-PLUS", DMECH_MUTUAL_AUTH}, {"OTP", DMECH_PRIVATE},
              {"SCRAM-SHA-256", DMECH_MUTUAL_AUTH}},
        .n = 6,
    };
    bool want[] = {true, false, false, false, false, true};
    for (size_t i = 0; i < ms.n; i++)
        assert_int_equal(dovecot_mech_relayable(&ms.v[i]), want[i]);
    assert_ptr_equal(dovecot_mech_find(&ms, "plain"), &ms.v[0]);
    assert_ptr_equal(dovecot_mech_find(&ms, "scram-sha-256"), &ms.v[5]);
    assert_null(dovecot_mech_find(&ms, "LOGIN"));
}

static void test_format(void **state)
{
    (void)state;
    char buf[256];
    assert_int_equal(dovecot_format_handshake(buf, sizeof buf, 42), 20);
    assert_string_equal(buf, "VERSION\t1\t2\nCPID\t42\n");
    struct dovecot_auth_params p = {
        .id = 5, .mech = "PLAIN", .service = "smtp", .local_ip = "127.0.0.1",
        .remote_ip = "::1", .local_port = 587, .remote_port = 40000, .secured = true,
        .no_penalty = true, .resp = "AGEAYg==",
    };
    size_t n = dovecot_format_auth(buf, sizeof buf, &p);
    assert_string_equal(buf, "AUTH\t5\tPLAIN\tservice=smtp\tlip=127.0.0.1\trip=::1\tlport=587"
                             "\trport=40000\tsecured\tno-penalty\tresp=AGEAYg==\n");
    assert_int_equal(n, strlen(buf));
    /* minimal; an empty initial response is "resp=" */
    struct dovecot_auth_params q = {.id = 6, .mech = "LOGIN", .resp = ""};
    dovecot_format_auth(buf, sizeof buf, &q);
    assert_string_equal(buf, "AUTH\t6\tLOGIN\tservice=smtp\tresp=\n");
    /* values are escaped; a response that is not base64 or a mechanism with a TAB refused */
    struct dovecot_auth_params r = {.id = 7, .mech = "PLAIN", .remote_ip = "a\tb"};
    dovecot_format_auth(buf, sizeof buf, &r);
    assert_string_equal(buf, "AUTH\t7\tPLAIN\tservice=smtp\trip=a\001tb\n");
    r.resp = "a\tb";
    assert_int_equal(dovecot_format_auth(buf, sizeof buf, &r), 0);
    r.resp = NULL;
    r.mech = "PL\tAIN";
    assert_int_equal(dovecot_format_auth(buf, sizeof buf, &r), 0);
    assert_int_equal(dovecot_format_auth(buf, 20, &p), 0); /* does not fit */
    assert_int_equal(dovecot_format_cont(buf, sizeof buf, 9, "dGVzdA=="), 16);
    assert_string_equal(buf, "CONT\t9\tdGVzdA==\n");
    assert_int_equal(dovecot_format_cont(buf, sizeof buf, 9, "x\ny"), 0);
    assert_int_equal(dovecot_format_cancel(buf, sizeof buf, 9), 9);
    assert_string_equal(buf, "CANCEL\t9\n");
    assert_true(dovecot_is_base64("", 0));
    assert_true(dovecot_is_base64("YQ==", 4));
    assert_false(dovecot_is_base64("Y===", 4));
    assert_false(dovecot_is_base64("=YQ=", 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake),
        cmocka_unit_test(test_answers),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_mechanisms),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
