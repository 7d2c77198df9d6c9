/* test_aliases.c - the alias map parsers (aliases(5), virtual, relocated, :include:), the
 * recursive expansion, and what an SMTP session makes of them at RCPT, VRFY and EXPN. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aliases.h"
#include "config.h"
#include "envelope.h"
#include "session.h"
#include "util.h"

static struct config cfg;
static char topdir[64];

static int setup(void **state)
{
    (void)state;
    char *tmp = strcpy(topdir, "/tmp/tern-aliases-XXXXXX");
    assert_non_null(mkdtemp(tmp));
    char text[1024];
    snprintf(text, sizeof text,
             "hostname mx.test\nlisten 127.0.0.1:2525\nlocal_domain example.test\n"
             "local_domain other.test\n"
             "mailbox alice@example.test bob@example.test carol@example.test\n"
             "mailbox postmaster@example.test alice@other.test\n"
             "spool %s/spool\nvrfy on\n", topdir);
    char err[256];
    if (config_parse(&cfg, "test", text, strlen(text), err, sizeof err) != 0)
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

/* A db from literal texts (NULL: that map is empty); finish is asserted to succeed. */
static struct alias_db *make_db(const char *local, const char *virt, const char *reloc,
                                const char *inc_path, const char *inc)
{
    struct alias_db *db = calloc(1, sizeof *db);
    assert_non_null(db);
    db->allow_include = true;
    char err[256];
    if (local && aliases_parse(db, &db->local, ALIAS_FMT_LOCAL, "aliases", local,
                               strlen(local), err, sizeof err) < 0)
        fail_msg("%s", err);
    if (virt && aliases_parse(db, &db->virt, ALIAS_FMT_VIRTUAL, "virtual", virt, strlen(virt),
                              err, sizeof err) < 0)
        fail_msg("%s", err);
    if (reloc && aliases_parse(db, &db->relocated, ALIAS_FMT_RELOCATED, "relocated", reloc,
                               strlen(reloc), err, sizeof err) < 0)
        fail_msg("%s", err);
    if (inc && aliases_parse(db, &db->include, ALIAS_FMT_INCLUDE, inc_path, inc, strlen(inc),
                             err, sizeof err) < 0)
        fail_msg("%s", err);
    if (aliases_finish(db, err, sizeof err) < 0)
        fail_msg("%s", err);
    return db;
}

static void free_db(struct alias_db *db)
{
    aliases_free(db);
    free(db);
}

/* Parse text as an aliases file and return the error ("" if none). */
static const char *parse_error(enum alias_format fmt, const char *text)
{
    static char err[256];
    struct alias_db db = {.allow_include = true};
    struct alias_map *m = fmt == ALIAS_FMT_LOCAL ? &db.local : fmt == ALIAS_FMT_VIRTUAL ? &db.virt
                                                                                 : &db.relocated;
    err[0] = '\0';
    if (aliases_parse(&db, m, fmt, "f", text, strlen(text), err, sizeof err) == 0)
        aliases_finish(&db, err, sizeof err);
    aliases_free(&db);
    return err;
}

static void test_parse_local_format(void **state)
{
    (void)state;
    struct alias_db *db = make_db("# comment\n"
                                  "Postmaster: root\n"
                                  "root:\talice, bob@Example.TEST,\n"
                                  "  carol@remote.test\n"
                                  "\n"
                                  "\t# a comment inside does not end the entry\n"
                                  "\tdave\n"
                                  "cmd: \"|/usr/bin/prog -x a,b\", /var/log/mail.txt\n"
                                  "inc: :include:/etc/mail/staff\r\n"
                                  "me: \\alice, <bob@example.test>\n",
                                  NULL, NULL, NULL, NULL);
    assert_int_equal(db->local.n, 5);
    const struct alias_entry *e = aliases_find(&db->local, "postmaster");
    assert_non_null(e);
    assert_int_equal(e->n, 1);
    assert_int_equal(e->t[0].kind, AT_NAME);
    assert_string_equal(e->t[0].value, "root");
    assert_int_equal(e->line, 2);
    e = aliases_find(&db->local, "root");
    assert_non_null(e);
    assert_int_equal(e->n, 4);
    assert_string_equal(e->t[1].value, "bob@example.test");
    assert_int_equal(e->t[2].kind, AT_ADDRESS);
    assert_string_equal(e->t[2].value, "carol@remote.test");
    assert_string_equal(e->t[3].value, "dave");
    e = aliases_find(&db->local, "cmd");
    assert_int_equal(e->n, 2);
    assert_int_equal(e->t[0].kind, AT_PIPE);
    assert_string_equal(e->t[0].value, "/usr/bin/prog -x a,b");
    assert_int_equal(e->t[1].kind, AT_FILE);
    e = aliases_find(&db->local, "inc");
    assert_int_equal(e->t[0].kind, AT_INCLUDE);
    assert_string_equal(e->t[0].value, "/etc/mail/staff");
    e = aliases_find(&db->local, "me");
    assert_true(e->t[0].noexpand);
    assert_string_equal(e->t[1].value, "bob@example.test");
    free_db(db);
}

static void test_parse_errors(void **state)
{
    (void)state;
    assert_string_equal(parse_error(ALIAS_FMT_LOCAL, "a: b\nno colon here\n"),
                        "f:2: missing ':' after the alias name");
    assert_string_equal(parse_error(ALIAS_FMT_LOCAL, "  x\na: b\n"),
                        "f:1: continuation line without an entry before it");
    assert_string_equal(parse_error(ALIAS_FMT_LOCAL, "a:\n"), "f:1: \"a\" has no targets");
    assert_string_equal(parse_error(ALIAS_FMT_LOCAL, "a: \"|cmd\n"),
                        "f:1: unterminated quoted string");
    assert_string_equal(parse_error(ALIAS_FMT_LOCAL, "a: b@\n"), "f:1: invalid address \"b@\"");
    assert_string_equal(parse_error(ALIAS_FMT_LOCAL, "a: :include:relative\n"),
                        "f:1: :include: needs an absolute path");
    assert_string_equal(parse_error(ALIAS_FMT_LOCAL, "a b: c\n"),
                        "f:1: invalid alias name \"a b\"");
    assert_string_equal(parse_error(ALIAS_FMT_LOCAL, "A: b\n\n# x\na: c\n"),
                        "f:4: duplicate entry \"a\" (first at f:1)");
    assert_string_equal(parse_error(ALIAS_FMT_LOCAL, "a: |\n"), "f:1: empty command after '|'");
    assert_string_equal(parse_error(ALIAS_FMT_VIRTUAL, "user nobody@x.test\n"),
                        "f:1: key \"user\" must be user@domain or @domain");
    assert_string_equal(parse_error(ALIAS_FMT_VIRTUAL, "@bad..domain x@y.test\n"),
                        "f:1: invalid domain in \"@bad..domain\"");
    assert_string_equal(parse_error(ALIAS_FMT_RELOCATED, "a@x.test b@y.test c@z.test\n"),
                        "f:1: a relocated entry takes one address");
    assert_string_equal(parse_error(ALIAS_FMT_RELOCATED, "a@x.test\n"),
                        "f:1: missing new address");
    /* a NUL byte inside a line */
    char err[128];
    struct alias_db db = {0};
    assert_int_equal(aliases_parse(&db, &db.local, ALIAS_FMT_LOCAL, "f", "a: b\nc\0: d\n", 11,
                                   err, sizeof err), -1);
    assert_string_equal(err, "f:2: NUL byte in line");
    aliases_free(&db);
    /* :include: refused when allow_include is off */
    struct alias_db db2 = {.allow_include = false};
    const char *t = "a: :include:/x\n";
    assert_int_equal(aliases_parse(&db2, &db2.local, ALIAS_FMT_LOCAL, "f", t, strlen(t), err,
                                   sizeof err), -1);
    assert_non_null(strstr(err, "allow_include no"));
    aliases_free(&db2);
}

/* Expand addr; return the addresses joined by spaces, or the status name and detail. */
static const char *expand(const struct alias_db *db, const char *addr)
{
    static char buf[2048];
    static const char *const names[] = {"not-found", "expanded", "relocated", "no-such-user",
                                        "loop", "too-deep", "refused", "too-many"};
    struct alias_expansion ex;
    enum alias_status st = aliases_expand(db, &cfg, addr, &ex);
    if (st != ALIAS_EXPANDED) {
        snprintf(buf, sizeof buf, "%s: %s", names[st], ex.detail);
    } else {
        buf[0] = '\0';
        for (size_t i = 0; i < ex.n; i++)
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? " " : "",
                     ex.addrs[i]);
    }
    alias_expansion_free(&ex);
    return buf;
}

static void test_expand(void **state)
{
    (void)state;
    struct alias_db *db = make_db(
        "postmaster: root\n"
        "root: alice, bob, ALICE@example.test, carol@remote.test\n"
        "team: root, carol, :include:/inc/staff\n"
        "loop1: loop2\nloop2: loop3\nloop3: loop1\n"
        "self: self, bob\n"
        "keep: \\bob\n"
        "bob: carol\n"
        "cmd: alice, \"|/bin/prog\"\n"
        "file: /tmp/x\n"
        "nobody: ghost\n",
        "info@virt.test alice@example.test, x@remote.test\n"
        "@virt.test catchall\n"
        "sales@virt.test root@example.test\n"
        "@other.test alice@other.test\n",
        "old@example.test new@elsewhere.test\n"
        "@oldco.test @newco.test\n",
        "/inc/staff", "alice\n# comment\nbob, dave@remote.test\n");
    assert_string_equal(expand(db, "postmaster@example.test"),
                        "alice@example.test carol@example.test carol@remote.test");
    /* duplicates across the levels and the include file go */
    assert_string_equal(expand(db, "team@example.test"),
                        "alice@example.test carol@example.test carol@remote.test "
                        "dave@remote.test");
    /* a bare name stays in the alias's domain (bob -> carol@other.test is caught by the
     * catch-all of other.test); case of local parts is kept, duplicates go regardless */
    assert_string_equal(expand(db, "root@other.test"),
                        "alice@other.test ALICE@example.test carol@remote.test");
    assert_string_equal(expand(db, "loop1@example.test"),
                        "loop: loop1@example.test -> loop2@example.test -> loop3@example.test -> "
                        "loop1@example.test");
    assert_string_equal(expand(db, "self@example.test"), "self@example.test carol@example.test");
    assert_string_equal(expand(db, "keep@example.test"), "bob@example.test");
    assert_string_equal(expand(db, "cmd@example.test"), "refused: |/bin/prog");
    assert_string_equal(expand(db, "file@example.test"), "refused: /tmp/x");
    assert_string_equal(expand(db, "nobody@example.test"), "ghost@example.test");
    assert_string_equal(expand(db, "alice@example.test"), "not-found: ");
    assert_string_equal(expand(db, "root@remote.test"), "not-found: ");
    /* virtual: exact, catch-all (a bare name goes to the first local domain), and an address
     * with a mailbox is not caught */
    assert_string_equal(expand(db, "info@virt.test"), "alice@example.test x@remote.test");
    assert_string_equal(expand(db, "Whoever@virt.test"), "catchall@example.test");
    assert_string_equal(expand(db, "sales@virt.test"),
                        "alice@example.test carol@example.test carol@remote.test");
    assert_string_equal(expand(db, "zed@other.test"), "alice@other.test");
    assert_string_equal(expand(db, "alice@other.test"), "not-found: ");
    /* relocated comes first */
    assert_string_equal(expand(db, "old@example.test"), "relocated: new@elsewhere.test");
    assert_string_equal(expand(db, "Joe@oldco.test"), "relocated: Joe@newco.test");
    assert_string_equal(expand(NULL, "root@example.test"), "not-found: ");
    free_db(db);

    /* no catch-all: a virtual domain answers "no such user" */
    db = make_db(NULL, "info@virt.test alice@example.test\n", NULL, NULL, NULL);
    assert_string_equal(expand(db, "other@virt.test"), "no-such-user: ");
    assert_true(aliases_virtual_domain(db, "VIRT.test"));
    assert_false(aliases_virtual_domain(db, "example.test"));
    free_db(db);
}

/* allow_pipe_aliases on: commands of the aliases file become "|command" recipients; those
 * of :include: files and the virtual map stay refused. */
static void test_pipes_allowed(void **state)
{
    (void)state;
    struct alias_db *db = make_db("cmd: alice, \"|/bin/prog -x\"\n"
                                  "inc: :include:/inc/cmds\n",
                                  "v@virt.test \"|/bin/virt\"\n", NULL, "/inc/cmds",
                                  "\"|/bin/included\"\n");
    assert_string_equal(expand(db, "cmd@example.test"), "refused: |/bin/prog -x");
    assert_false(aliases_pipe_allowed(db, "/bin/prog -x"));
    db->allow_pipe = true;
    assert_string_equal(expand(db, "cmd@example.test"), "alice@example.test |/bin/prog -x");
    assert_string_equal(expand(db, "inc@example.test"), "refused: |/bin/included");
    assert_string_equal(expand(db, "v@virt.test"), "refused: |/bin/virt");
    assert_true(aliases_pipe_allowed(db, "/bin/prog -x"));
    assert_false(aliases_pipe_allowed(db, "/bin/prog"));
    assert_false(aliases_pipe_allowed(db, "/bin/included"));
    assert_false(aliases_pipe_allowed(db, "/bin/virt"));
    free_db(db);
}

static void test_depth_limit(void **state)
{
    (void)state;
    char text[4096] = "";
    for (int i = 0; i < ALIAS_MAX_DEPTH + 5; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "a%d: a%d\n", i, i + 1);
    struct alias_db *db = make_db(text, NULL, NULL, NULL, NULL);
    assert_string_equal(expand(db, "a0@example.test"), "too-deep: more than 20 levels of aliases");
    assert_string_equal(expand(db, "a10@example.test"), "a25@example.test");
    free_db(db);
}

/* ---- the session --------------------------------------------------------------------------- */

static char out[16384];
static size_t outlen;

static void capture(void *ctx, const char *buf, size_t len)
{
    (void)ctx;
    assert_true(outlen + len < sizeof out);
    memcpy(out + outlen, buf, len);
    outlen += len;
    out[outlen] = '\0';
}

static const char *cmd(struct session *s, const char *line)
{
    outlen = 0;
    out[0] = '\0';
    session_line(s, line, strlen(line));
    return out;
}

static void test_session(void **state)
{
    (void)state;
    struct alias_db *db = make_db("staff: alice, bob, friend@remote.test\n"
                                  "loop: loop2\nloop2: loop\n"
                                  "cmd: \"|/bin/prog\"\n",
                                  "@virt.test carol@example.test\n",
                                  "old@example.test new@elsewhere.test\n", NULL, NULL);
    cfg.aliases = db;
    struct session_io io = {.write = capture};
    struct session *s = session_new(&cfg, &cfg.listen[0], "192.0.2.1", &io);
    session_start(s);
    cmd(s, "EHLO client.test");
    assert_string_equal(cmd(s, "EXPN staff"), "250-2.1.5 <alice@example.test>\r\n"
                                              "250-2.1.5 <bob@example.test>\r\n"
                                              "250 2.1.5 <friend@remote.test>\r\n");
    assert_true(strncmp(cmd(s, "EXPN alice"), "550 5.1.1 ", 10) == 0);
    assert_true(strncmp(cmd(s, "EXPN nobody"), "550 5.1.1 ", 10) == 0);
    assert_true(strncmp(cmd(s, "VRFY staff@example.test"), "250 2.1.5 ", 10) == 0);
    assert_true(strncmp(cmd(s, "VRFY alice"), "250 2.1.5 <alice@example.test>", 30) == 0);
    assert_string_equal(cmd(s, "EXPN old@example.test"),
                        "551 5.1.6 <old@example.test>: User has moved; please try "
                        "<new@elsewhere.test>\r\n");
    cmd(s, "MAIL FROM:<sender@client.test>");
    /* the remote target is accepted although this client may not relay */
    assert_true(strncmp(cmd(s, "RCPT TO:<staff@example.test>"), "250 2.1.5 ", 10) == 0);
    assert_true(strncmp(cmd(s, "RCPT TO:<friend@remote.test>"), "554 5.7.1 ", 10) == 0);
    assert_true(strncmp(cmd(s, "RCPT TO:<bob@example.test>"), "250 2.1.5 ", 10) == 0);
    assert_true(strncmp(cmd(s, "RCPT TO:<anyone@virt.test> NOTIFY=NEVER"), "250 2.1.5 ", 10) == 0);
    assert_string_equal(cmd(s, "RCPT TO:<old@example.test>"),
                        "551 5.1.6 <old@example.test>: User has moved; please try "
                        "<new@elsewhere.test>\r\n");
    assert_true(strncmp(cmd(s, "RCPT TO:<loop@example.test>"), "550 5.4.6 ", 10) == 0);
    assert_true(strncmp(cmd(s, "RCPT TO:<cmd@example.test>"), "550 5.7.1 ", 10) == 0);
    assert_non_null(strstr(out, "command"));
    assert_true(strncmp(cmd(s, "RCPT TO:<nobody@example.test>"), "550 5.1.1 ", 10) == 0);
    assert_true(strncmp(cmd(s, "DATA"), "354 ", 4) == 0);
    outlen = 0;
    const char *msg = "Subject: t\r\n\r\nhi\r\n.\r\n";
    assert_int_equal(session_data(s, msg, strlen(msg)), strlen(msg));
    const char *q = strstr(out, "queued as ");
    assert_non_null(q);
    char qid[32], path[512];
    sscanf(q + 10, "%31[0-9A-Z]", qid);
    session_free(s);

    /* every target is its own recipient, ORCPT the address the client gave, NOTIFY kept */
    snprintf(path, sizeof path, "%s/spool/queue/%s", topdir, qid);
    size_t len;
    char *text = read_text_file(path, 1 << 20, &len, NULL, 0);
    assert_non_null(text);
    struct envelope env;
    envelope_init(&env);
    assert_true(envelope_parse(&env, text, len) > 0);
    free(text);
    assert_int_equal(env.nrcpts, 4);
    const char *want[][2] = {{"alice@example.test", "rfc822;staff@example.test"},
                             {"bob@example.test", "rfc822;staff@example.test"},
                             {"friend@remote.test", "rfc822;staff@example.test"},
                             {"carol@example.test", "rfc822;anyone@virt.test"}};
    for (size_t i = 0; i < env.nrcpts; i++) {
        assert_string_equal(env.rcpts[i].addr, want[i][0]);
        assert_string_equal(env.rcpts[i].orcpt, want[i][1]);
    }
    assert_int_equal(env.rcpts[3].notify, NOTIFY_NEVER);
    envelope_free(&env);

    /* VRFY/EXPN disabled: 252 as before */
    cfg.vrfy_enabled = false;
    s = session_new(&cfg, &cfg.listen[0], "192.0.2.1", &io);
    session_start(s);
    cmd(s, "EHLO client.test");
    assert_true(strncmp(cmd(s, "EXPN staff"), "252 2.1.5 ", 10) == 0);
    session_free(s);
    cfg.vrfy_enabled = true;
    cfg.aliases = NULL;
    free_db(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_local_format),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_pipes_allowed),
        cmocka_unit_test(test_session),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
