/* test_users.c - unit tests for src/users.c: secret derivation checked against the real
 * SCRAM-SHA-256 client (scram.c) and the RFC 2195 CRAM-MD5 example, crypt(3) yescrypt and
 * bcrypt, the line format round trip, every parse error, and atomic save/load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <crypt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "scram.h"
#include "smtp_reply.h"
#include "users.h"

/* Low iteration count keeps the tests fast; 4096 is the RFC 7677 minimum. */
#define ITER 4096

static void test_password_check(void **state)
{
    (void)state;
    struct user_entry e;
    char err[200];
    assert_int_equal(users_make_entry(&e, "alice@example.org", "s3cret pass", false, ITER, err,
                                      sizeof err), 0);
    assert_string_equal(e.name, "alice@example.org");
    assert_memory_equal(e.crypt_hash, "$y$", 3);
    assert_true(users_check_password(&e, "s3cret pass"));
    assert_false(users_check_password(&e, "s3cret pas"));
    assert_false(users_check_password(&e, ""));
    assert_true(e.has_scram);
    assert_false(e.has_cram);
    users_entry_free(&e);

    assert_int_equal(users_make_entry(&e, "bad:name", "x", false, ITER, err, sizeof err), -1);
    assert_int_equal(users_make_entry(&e, "bad name", "x", false, ITER, err, sizeof err), -1);
    assert_int_equal(users_make_entry(&e, "", "x", false, ITER, err, sizeof err), -1);
}

/* A bcrypt hash made elsewhere (e.g. by htpasswd -B) is accepted too. */
static void test_bcrypt(void **state)
{
    (void)state;
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    assert_non_null(crypt_gensalt_rn("$2b$", 5, NULL, 0, setting, sizeof setting));
    struct crypt_data cd;
    memset(&cd, 0, sizeof cd);
    const char *h = crypt_r("hunter2", setting, &cd);
    assert_non_null(h);
    char text[300];
    snprintf(text, sizeof text, "bob:%s::\n", h);
    struct users u;
    char err[200];
    assert_int_equal(users_parse(&u, text, strlen(text), err, sizeof err), 0);
    const struct user_entry *e = users_find(&u, "bob");
    assert_non_null(e);
    assert_false(e->has_scram);
    assert_true(users_check_password(e, "hunter2"));
    assert_false(users_check_password(e, "hunter3"));
    users_free(&u);
}

/* The stored keys are what a SCRAM server needs: drive the real client (scram.c) against
 * them and check its proof as a server would (RFC 5802 3), and that the client accepts our
 * server signature. */
static void test_scram_keys(void **state)
{
    (void)state;
    struct user_entry e;
    char err[200];
    assert_int_equal(users_make_entry(&e, "user", "pencil", false, ITER, err, sizeof err), 0);
    struct scram s;
    char *first = scram_client_first(&s, "user", "rOprNGfwEbeRWgbNEkqO");
    assert_non_null(first);
    char salt[100], server_first[300];
    smtp_b64_encode(e.scram_salt, e.scram_salt_len, salt);
    snprintf(server_first, sizeof server_first, "r=rOprNGfwEbeRWgbNEkqOserverpart,s=%s,i=%u", salt,
             e.scram_iter);
    char *final = scram_client_final(&s, "pencil", server_first, err, sizeof err);
    assert_non_null(final);
    const char *p = strstr(final, ",p=");
    assert_non_null(p);
    unsigned char proof[64], sig[32], client_key[32], stored[32];
    assert_int_equal(smtp_b64_decode(p + 3, strlen(p + 3), proof, sizeof proof), 32);
    unsigned len;
    HMAC(EVP_sha256(), e.stored_key, 32, (const unsigned char *)s.auth_message,
         strlen(s.auth_message), sig, &len);
    for (int i = 0; i < 32; i++)
        client_key[i] = proof[i] ^ sig[i];
    SHA256(client_key, 32, stored);
    assert_memory_equal(stored, e.stored_key, 32);

    unsigned char server_sig[32];
    HMAC(EVP_sha256(), e.server_key, 32, (const unsigned char *)s.auth_message,
         strlen(s.auth_message), server_sig, &len);
    char v[100] = "v=";
    smtp_b64_encode(server_sig, 32, v + 2);
    assert_true(scram_verify_server(&s, v, err, sizeof err));
    v[3] ^= 1; /* a wrong signature is refused: the check can fail */
    assert_false(scram_verify_server(&s, v, err, sizeof err));
    free(first);
    free(final);
    scram_free(&s);
    users_entry_free(&e);
}

/* RFC 2195 2: tim / tanstaaftanstaaf answers the example challenge with b913a6... */
static void test_cram_rfc2195(void **state)
{
    (void)state;
    struct user_entry e;
    char err[200], hex[33];
    assert_int_equal(users_make_entry(&e, "tim", "tanstaaftanstaaf", true, ITER, err, sizeof err),
                     0);
    assert_true(e.has_cram);
    static const char ch[] = "<1896.697170952@postoffice.reston.mci.net>";
    users_cram_digest(&e, ch, strlen(ch), hex);
    assert_string_equal(hex, "b913a602c7eda7a495b4e6e7334d3890");
    users_cram_digest(&e, "<other@x>", 9, hex);
    assert_string_not_equal(hex, "b913a602c7eda7a495b4e6e7334d3890");
    users_entry_free(&e);

    /* a key longer than 64 octets is hashed first (RFC 2104 2): compare with HMAC() */
    char longpw[100];
    memset(longpw, 'k', sizeof longpw - 1);
    longpw[sizeof longpw - 1] = '\0';
    assert_int_equal(users_make_entry(&e, "long", longpw, true, ITER, err, sizeof err), 0);
    users_cram_digest(&e, ch, strlen(ch), hex);
    unsigned char mac[16];
    unsigned len;
    HMAC(EVP_md5(), longpw, (int)strlen(longpw), (const unsigned char *)ch, strlen(ch), mac, &len);
    char want[33];
    for (int i = 0; i < 16; i++)
        snprintf(want + 2 * i, 3, "%02x", mac[i]);
    assert_string_equal(hex, want);
    users_entry_free(&e);
}

static void test_format_roundtrip(void **state)
{
    (void)state;
    struct user_entry e;
    char err[200];
    assert_int_equal(users_make_entry(&e, "carol", "pw", true, ITER, err, sizeof err), 0);
    char *line = users_format(&e);
    struct users u;
    assert_int_equal(users_parse(&u, line, strlen(line), err, sizeof err), 0);
    assert_int_equal(u.n, 1);
    const struct user_entry *g = &u.v[0];
    assert_string_equal(g->name, "carol");
    assert_string_equal(g->crypt_hash, e.crypt_hash);
    assert_true(g->has_scram && g->has_cram);
    assert_int_equal(g->scram_iter, ITER);
    assert_int_equal(g->scram_salt_len, e.scram_salt_len);
    assert_memory_equal(g->scram_salt, e.scram_salt, e.scram_salt_len);
    assert_memory_equal(g->stored_key, e.stored_key, 32);
    assert_memory_equal(g->server_key, e.server_key, 32);
    assert_memory_equal(g->cram, e.cram, 32);
    char *again = users_format(g);
    assert_string_equal(again, line);
    free(again);
    free(line);
    users_free(&u);
    users_entry_free(&e);
}

static void expect_parse_error(const char *text, const char *want)
{
    struct users u;
    char err[300] = "";
    if (users_parse(&u, text, strlen(text), err, sizeof err) != -1)
        fail_msg("parsed: %s", text);
    if (!strstr(err, want))
        fail_msg("error '%s', wanted '%s'", err, want);
    assert_int_equal(u.n, 0);
    assert_null(u.v);
}

#define H "$y$j9T$abc$def"
#define K "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

static void test_parse_errors(void **state)
{
    (void)state;
    struct users u;
    char err[200];
    const char *ok = "# comment\n\nann:" H "::\r\nben:" H ":4096,c2FsdA==," K "," K ":\n";
    assert_int_equal(users_parse(&u, ok, strlen(ok), err, sizeof err), 0);
    assert_int_equal(u.n, 2);
    assert_true(u.v[1].has_scram);
    assert_int_equal(u.v[1].scram_salt_len, 4);
    assert_null(users_find(&u, "Ann")); /* names are case-sensitive */
    users_free(&u);

    expect_parse_error("ann:" H ":\n", "line 1: expected 4");
    expect_parse_error("\nann:" H ":::\n", "line 2: too many");
    expect_parse_error("a b:" H "::\n", "invalid user name");
    expect_parse_error(":" H "::\n", "invalid user name");
    expect_parse_error("ann:plain::\n", "not a crypt(3) hash");
    expect_parse_error("ann:" H "::\nann:" H "::\n", "line 2: duplicate user 'ann'");
    expect_parse_error("ann:" H ":4095,c2FsdA==," K "," K ":\n", "malformed SCRAM");
    expect_parse_error("ann:" H ":4096,c2FsdA==," K ":\n", "malformed SCRAM");
    expect_parse_error("ann:" H ":4096,c2FsdA==,AAAA," K ":\n", "malformed SCRAM");
    expect_parse_error("ann:" H ":4096,!!!!," K "," K ":\n", "malformed SCRAM");
    expect_parse_error("ann:" H "::abcd\n", "64 hex digits");
    expect_parse_error("ann:" H "::"
                       "zz000000000000000000000000000000000000000000000000000000000000000\n",
                       "64 hex digits");
}

static void test_put_remove(void **state)
{
    (void)state;
    struct users u = {0};
    struct user_entry a, b;
    char err[200];
    assert_int_equal(users_make_entry(&a, "a", "1", false, ITER, err, sizeof err), 0);
    assert_int_equal(users_put(&u, &a, false), 0);
    assert_int_equal(users_make_entry(&b, "a", "2", false, ITER, err, sizeof err), 0);
    assert_int_equal(users_put(&u, &b, false), -1);
    assert_int_equal(users_put(&u, &b, true), 0);
    assert_int_equal(u.n, 1);
    assert_true(users_check_password(users_find(&u, "a"), "2"));
    assert_true(users_remove(&u, "a"));
    assert_false(users_remove(&u, "a"));
    assert_int_equal(u.n, 0);
    users_entry_free(&b);
    users_free(&u);
}

static void test_save_load(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_users.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[100];
    snprintf(path, sizeof path, "%s/users", dir);
    struct users u = {0}, back;
    char err[300];
    assert_int_equal(users_load(&back, path, false, err, sizeof err), -1); /* missing */
    assert_int_equal(users_load(&back, path, true, err, sizeof err), 0);
    assert_int_equal(back.n, 0);
    for (int i = 0; i < 3; i++) {
        struct user_entry e;
        char name[8];
        snprintf(name, sizeof name, "u%d", i);
        assert_int_equal(users_make_entry(&e, name, name, i == 1, ITER, err, sizeof err), 0);
        assert_int_equal(users_put(&u, &e, false), 0);
    }
    assert_int_equal(users_save(&u, path, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(users_load(&back, path, false, err, sizeof err), 0);
    assert_int_equal(back.n, 3);
    assert_true(users_check_password(users_find(&back, "u2"), "u2"));
    assert_true(users_find(&back, "u1")->has_cram);
    assert_false(users_find(&back, "u0")->has_cram);
    users_free(&back);
    users_free(&u);
    /* no temporary file left behind */
    char tmp[140];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_check), cmocka_unit_test(test_bcrypt),
        cmocka_unit_test(test_scram_keys),     cmocka_unit_test(test_cram_rfc2195),
        cmocka_unit_test(test_format_roundtrip), cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_put_remove),     cmocka_unit_test(test_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
