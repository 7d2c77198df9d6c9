/* test_smtp_parse.c - unit tests for smtp_parse.c: command splitting, RFC 5321 4.1.2 paths
 * (quoting, literals, limits, SMTPUTF8), ESMTP parameters of MAIL and RCPT, RFC 3461 xtext,
 * and domain validation for HELO/EHLO. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "smtp_parse.h"
#include "util.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static const char *result_name(enum parse_result r)
{
    switch (r) {
    case PARSE_OK: return "OK";
    case PARSE_SYNTAX: return "SYNTAX";
    case PARSE_TOO_LONG: return "TOO_LONG";
    case PARSE_UNKNOWN_PARAM: return "UNKNOWN_PARAM";
    case PARSE_BAD_PARAM: return "BAD_PARAM";
    case PARSE_NEED_UTF8: return "NEED_UTF8";
    }
    return "?";
}

static enum parse_result split(const char *s, struct smtp_cmdline *cl)
{
    return smtp_split_command(s, strlen(s), cl);
}

/* Flags for path_case.flags */
enum { F_NULL = 1, F_PM = 2, F_UTF8 = 4 };

struct path_case {
    const char *arg;
    const char *prefix;
    int flags;
    enum parse_result want;
    const char *addr;   /* expected canonical addr when OK (NULL: not checked) */
    const char *local;  /* expected local when OK (NULL: not checked) */
    const char *domain; /* expected domain when OK (NULL: not checked) */
};

static enum parse_result parse_path(const char *arg, size_t len, const char *prefix, int flags,
                                    struct smtp_path *p, const char **params, size_t *plen)
{
    return smtp_parse_path_arg(arg, len, prefix, flags & F_NULL, flags & F_PM, flags & F_UTF8, p,
                               params, plen);
}

static void run_path_cases(const struct path_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct path_case *c = &cases[i];
        struct smtp_path p;
        const char *params;
        size_t plen;
        enum parse_result r =
            parse_path(c->arg, strlen(c->arg), c->prefix ? c->prefix : "FROM:", c->flags, &p,
                       &params, &plen);
        if (r != c->want)
            fail_msg("case %zu '%s': got %s, want %s", i, c->arg, result_name(r),
                     result_name(c->want));
        if (r != PARSE_OK)
            continue;
        if (c->addr && strcmp(p.addr, c->addr) != 0)
            fail_msg("case %zu '%s': addr '%s', want '%s'", i, c->arg, p.addr, c->addr);
        if (c->local && strcmp(p.local, c->local) != 0)
            fail_msg("case %zu '%s': local '%s', want '%s'", i, c->arg, p.local, c->local);
        if (c->domain && strcmp(p.domain, c->domain) != 0)
            fail_msg("case %zu '%s': domain '%s', want '%s'", i, c->arg, p.domain, c->domain);
    }
}

/* Parse "FROM:<local@domain>" built from parts; lets tests construct exact lengths. */
static enum parse_result path_of(const char *local, const char *domain, int flags,
                                 struct smtp_path *p)
{
    char buf[1024];
    const char *params;
    size_t plen;
    int n = snprintf(buf, sizeof buf, "FROM:<%s@%s>", local, domain);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    return parse_path(buf, (size_t)n, "FROM:", flags, p, &params, &plen);
}

static char *repeat(char *buf, char ch, size_t n)
{
    memset(buf, ch, n);
    buf[n] = '\0';
    return buf;
}

/* ---- smtp_split_command ----------------------------------------------------------------- */

static void split_basic(void **state)
{
    (void)state;
    struct smtp_cmdline cl;
    const char *line = "MAIL FROM:<a@b> SIZE=10";
    assert_int_equal(split(line, &cl), PARSE_OK);
    assert_string_equal(cl.verb, "MAIL");
    assert_ptr_equal(cl.arg, line + 5);
    assert_int_equal(cl.arglen, strlen("FROM:<a@b> SIZE=10"));
}

static void split_verb_uppercased(void **state)
{
    (void)state;
    struct smtp_cmdline cl;
    assert_int_equal(split("eHlo client.example", &cl), PARSE_OK);
    assert_string_equal(cl.verb, "EHLO");
    assert_int_equal(cl.arglen, strlen("client.example"));
    assert_memory_equal(cl.arg, "client.example", cl.arglen);
    assert_int_equal(split("x-foo-1", &cl), PARSE_OK);
    assert_string_equal(cl.verb, "X-FOO-1");
}

static void split_no_argument(void **state)
{
    (void)state;
    struct smtp_cmdline cl;
    assert_int_equal(split("QUIT", &cl), PARSE_OK);
    assert_string_equal(cl.verb, "QUIT");
    assert_non_null(cl.arg);
    assert_string_equal(cl.arg, "");
    assert_int_equal(cl.arglen, 0);
}

static void split_spaces_in_argument_kept(void **state)
{
    (void)state;
    struct smtp_cmdline cl;
    assert_int_equal(split("NOOP ", &cl), PARSE_OK);
    assert_string_equal(cl.verb, "NOOP");
    assert_int_equal(cl.arglen, 0);
    assert_int_equal(split("HELP  topic  ", &cl), PARSE_OK);
    assert_int_equal(cl.arglen, strlen(" topic  "));
    assert_memory_equal(cl.arg, " topic  ", cl.arglen);
}

static void split_empty_line(void **state)
{
    (void)state;
    struct smtp_cmdline cl;
    assert_int_equal(smtp_split_command("", 0, &cl), PARSE_SYNTAX);
    assert_string_equal(cl.verb, "");
}

static void split_bad_verbs(void **state)
{
    (void)state;
    static const char *const bad[] = {
        " MAIL", "MA_IL FROM:<>", "MAIL:FROM", "\tMAIL", "MAIL\tFROM:<a@b>", "ABCDEFGHIJKLMNOP",
        "ABCDEFGHIJKLMNOP arg", "M\xc3\xa4IL", ".", "MAIL,", " ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct smtp_cmdline cl;
        if (split(bad[i], &cl) != PARSE_SYNTAX)
            fail_msg("'%s' should be a syntax error", bad[i]);
    }
}

static void split_verb_length_limit(void **state)
{
    (void)state;
    struct smtp_cmdline cl;
    assert_int_equal(split("ABCDEFGHIJKLMNO", &cl), PARSE_OK); /* 15 */
    assert_string_equal(cl.verb, "ABCDEFGHIJKLMNO");
    assert_int_equal(split("ABCDEFGHIJKLMNOP", &cl), PARSE_SYNTAX); /* 16 */
    assert_int_equal(split("A", &cl), PARSE_OK);
    assert_int_equal(split("8BIT x", &cl), PARSE_OK);
}

static void split_control_characters(void **state)
{
    (void)state;
    struct smtp_cmdline cl;
    static const char nul_line[] = "MAIL FROM:<a@b>\0 SIZE=1";
    assert_int_equal(smtp_split_command(nul_line, sizeof nul_line - 1, &cl), PARSE_SYNTAX);
    static const char nul_verb[] = "NO\0OP";
    assert_int_equal(smtp_split_command(nul_verb, sizeof nul_verb - 1, &cl), PARSE_SYNTAX);
    assert_int_equal(split("NOOP a\rb", &cl), PARSE_SYNTAX);
    assert_int_equal(split("NOOP a\nb", &cl), PARSE_SYNTAX);
    assert_int_equal(split("NOOP \x1b[0m", &cl), PARSE_SYNTAX);
    assert_int_equal(split("NOOP \x7f", &cl), PARSE_SYNTAX);
    assert_int_equal(split("NOOP\r", &cl), PARSE_SYNTAX);
    /* TAB and 8-bit octets in the argument are fine (SMTPUTF8 addresses). */
    assert_int_equal(split("NOOP a\tb", &cl), PARSE_OK);
    assert_int_equal(split("RCPT TO:<j\xc3\xb6ran@example.com>", &cl), PARSE_OK);
}

/* ---- smtp_parse_path_arg ---------------------------------------------------------------- */

static void path_valid(void **state)
{
    (void)state;
    static const struct path_case cases[] = {
        {"FROM:<a@b>", NULL, 0, PARSE_OK, "a@b", "a", "b"},
        {"FROM:<user@example.com>", NULL, 0, PARSE_OK, "user@example.com", "user", "example.com"},
        {"from:<a@b>", NULL, 0, PARSE_OK, "a@b", NULL, NULL},
        {"FrOm:<a@b>", NULL, 0, PARSE_OK, "a@b", NULL, NULL},
        {"FROM: <a@b>", NULL, 0, PARSE_OK, "a@b", NULL, NULL},
        {"TO:<a@b>", "TO:", 0, PARSE_OK, "a@b", NULL, NULL},
        {"to: <a@b>", "TO:", 0, PARSE_OK, "a@b", NULL, NULL},
        {"FROM:<first.last@sub.example.org>", NULL, 0, PARSE_OK, "first.last@sub.example.org",
         NULL, NULL},
        {"FROM:<!#$%&'*+-/=?^_`{|}~@x>", NULL, 0, PARSE_OK, "!#$%&'*+-/=?^_`{|}~@x", NULL, NULL},
        {"FROM:<A.B@Example.COM>", NULL, 0, PARSE_OK, "A.B@Example.COM", "A.B", "Example.COM"},
        {"FROM:<a@x-y.example>", NULL, 0, PARSE_OK, "a@x-y.example", NULL, NULL},
        {"FROM:<a@x--y.example>", NULL, 0, PARSE_OK, "a@x--y.example", NULL, NULL},
        {"FROM:<a@1.2.3.4>", NULL, 0, PARSE_OK, "a@1.2.3.4", NULL, "1.2.3.4"},
        {"FROM:<a@localhost>", NULL, 0, PARSE_OK, "a@localhost", NULL, NULL},
        {"FROM:<1@2>", NULL, 0, PARSE_OK, "1@2", NULL, NULL},
        {"FROM:<a@[1.2.3.4]>", NULL, 0, PARSE_OK, "a@[1.2.3.4]", "a", "[1.2.3.4]"},
        {"FROM:<a@[255.255.255.255]>", NULL, 0, PARSE_OK, NULL, NULL, NULL},
        {"FROM:<a@[0.0.0.0]>", NULL, 0, PARSE_OK, NULL, NULL, NULL},
        {"FROM:<a@[001.002.003.004]>", NULL, 0, PARSE_OK, NULL, NULL, "[001.002.003.004]"},
        {"FROM:<a@[IPv6:2001:db8::1]>", NULL, 0, PARSE_OK, "a@[IPv6:2001:db8::1]", NULL,
         "[IPv6:2001:db8::1]"},
        {"FROM:<a@[ipv6:::1]>", NULL, 0, PARSE_OK, NULL, NULL, "[ipv6:::1]"},
        {"FROM:<a@[IPv6:::]>", NULL, 0, PARSE_OK, NULL, NULL, NULL},
        {"FROM:<a@[IPv6:1:2:3:4:5:6:7:8]>", NULL, 0, PARSE_OK, NULL, NULL, NULL},
        {"FROM:<a@[IPv6:::ffff:192.0.2.1]>", NULL, 0, PARSE_OK, NULL, NULL, NULL},
        {"FROM:<a@[IPv6:fe80::1:2:3:4]>", NULL, 0, PARSE_OK, NULL, NULL, NULL},
        {"FROM:<a@[x-tag:any-content!]>", NULL, 0, PARSE_OK, NULL, NULL, "[x-tag:any-content!]"},
        {"FROM:<a@[tag:a:b:c]>", NULL, 0, PARSE_OK, NULL, NULL, NULL},
        {"FROM:<>", NULL, F_NULL, PARSE_OK, "", "", ""},
        {"FROM: <>", NULL, F_NULL, PARSE_OK, "", "", ""},
        {"TO:<Postmaster>", "TO:", F_PM, PARSE_OK, "Postmaster", "Postmaster", ""},
        {"TO:<postMASTER>", "TO:", F_PM, PARSE_OK, "postMASTER", "postMASTER", ""},
        {"TO:<postmaster@example.com>", "TO:", F_PM, PARSE_OK, "postmaster@example.com",
         "postmaster", "example.com"},
        {"TO:<postmaster@example.com>", "TO:", 0, PARSE_OK, "postmaster@example.com", NULL, NULL},
    };
    run_path_cases(cases, sizeof cases / sizeof cases[0]);
}

static void path_quoted_local_parts(void **state)
{
    (void)state;
    static const struct path_case cases[] = {
        {"FROM:<\"a b\"@x>", NULL, 0, PARSE_OK, "\"a b\"@x", "a b", "x"},
        {"FROM:<\"ab\"@x>", NULL, 0, PARSE_OK, "ab@x", "ab", "x"},      /* needless quotes */
        {"FROM:<\"a.b\"@x>", NULL, 0, PARSE_OK, "a.b@x", "a.b", "x"},
        {"FROM:<\"a\\\"b\"@x>", NULL, 0, PARSE_OK, "\"a\\\"b\"@x", "a\"b", "x"},
        {"FROM:<\"a\\\\b\"@x>", NULL, 0, PARSE_OK, "\"a\\\\b\"@x", "a\\b", "x"},
        {"FROM:<\"a\\b\"@x>", NULL, 0, PARSE_OK, "ab@x", "ab", "x"}, /* \b is just b */
        {"FROM:<\"a\\ b\"@x>", NULL, 0, PARSE_OK, "\"a b\"@x", "a b", "x"},
        {"FROM:<\"\"@x>", NULL, 0, PARSE_OK, "\"\"@x", "", "x"},
        {"FROM:<\"a..b\"@x>", NULL, 0, PARSE_OK, "\"a..b\"@x", "a..b", "x"},
        {"FROM:<\".a\"@x>", NULL, 0, PARSE_OK, "\".a\"@x", ".a", "x"},
        {"FROM:<\"a.\"@x>", NULL, 0, PARSE_OK, "\"a.\"@x", "a.", "x"},
        {"FROM:<\"a@b\"@x>", NULL, 0, PARSE_OK, "\"a@b\"@x", "a@b", "x"},
        {"FROM:<\"a>b\"@x>", NULL, 0, PARSE_OK, "\"a>b\"@x", "a>b", "x"},
        {"FROM:<\"a,b:c<d\"@x>", NULL, 0, PARSE_OK, "\"a,b:c<d\"@x", "a,b:c<d", "x"},
        {"FROM:<\"  \"@x>", NULL, 0, PARSE_OK, "\"  \"@x", "  ", "x"},
        {"FROM:<\"Postmaster\">", NULL, F_PM, PARSE_SYNTAX, NULL, NULL, NULL},
        /* broken quoting */
        {"FROM:<\"a@x>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<\"a\"b@x>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a\"b\"@x>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<\"a\".b@x>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<\"a\\\"@x>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<\"a\tb\"@x>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<\"a\\\tb\"@x>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<\"a\x7f\"@x>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
    };
    run_path_cases(cases, sizeof cases / sizeof cases[0]);
}

static void path_syntax_errors(void **state)
{
    (void)state;
    static const struct path_case cases[] = {
        {"", NULL, F_NULL | F_PM | F_UTF8, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:", NULL, F_NULL | F_PM | F_UTF8, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:a@b", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM: a@b", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@b", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:a@b>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM<a@b>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM :<a@b>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:  <a@b>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:\t<a@b>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FRO:<a@b>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"TO:<a@b>", "FROM:", 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@b>", "TO:", 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@b>x", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@b>>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@b>\tSIZE=1", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<<a@b>>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<@b>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@b@c>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a..b@c>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<.a@c>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a.@c>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a b@c>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:< a@b>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@b >", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a(b)@c>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a[b@c>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@b..c>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@.b>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@b.>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@-b>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@b->", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@b.-c>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@b_c>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@b c>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@\"b\">", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"TO:<>", "TO:", F_PM | F_UTF8, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:< >", NULL, F_NULL, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<>x", NULL, F_NULL, PARSE_SYNTAX, NULL, NULL, NULL},
        {"TO:<Postmaster>", "TO:", 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"TO:<Postmaster >", "TO:", F_PM, PARSE_SYNTAX, NULL, NULL, NULL},
        {"TO:<Postmasterx>", "TO:", F_PM, PARSE_SYNTAX, NULL, NULL, NULL},
        {"TO:<@a:Postmaster>", "TO:", F_PM, PARSE_SYNTAX, NULL, NULL, NULL},
        {"TO:<Postmaster>x", "TO:", F_PM, PARSE_SYNTAX, NULL, NULL, NULL},
    };
    run_path_cases(cases, sizeof cases / sizeof cases[0]);
}

static void path_address_literals_invalid(void **state)
{
    (void)state;
    static const struct path_case cases[] = {
        {"FROM:<a@[1.2.3]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[1.2.3.256]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[1.2.3.4.5]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[1.2.3.0004]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[1..2.3]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[1.2.3.4>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[1.2.3.4]x>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[1.2.3.4].b>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[ 1.2.3.4]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[IPv6:1.2.3.4]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[IPv6:gggg::1]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[IPv6:1::2::3]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[IPv6:1:2:3:4:5:6:7:8:9]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[IPv6:]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[IPv6:fe80::1%eth0]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[:x]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[tag:]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[tag-:x]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[t_g:x]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[tag:a[b]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[tag:a\\b]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[tag:a b]>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@[IPv6:::1] >", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
    };
    run_path_cases(cases, sizeof cases / sizeof cases[0]);
}

static void path_general_literal_digit_tag(void **state)
{
    (void)state;
    /* The RFC 5321 grammar makes "[2001:db8::1]" a General-address-literal with the
     * Standardized-tag "2001"; we follow the grammar rather than guess. */
    struct smtp_path p;
    assert_int_equal(path_of("a", "[2001:db8::1]", 0, &p), PARSE_OK);
    assert_string_equal(p.domain, "[2001:db8::1]");
}

static void path_source_routes(void **state)
{
    (void)state;
    static const struct path_case cases[] = {
        {"FROM:<@r1:a@b>", NULL, 0, PARSE_OK, "a@b", "a", "b"},
        {"FROM:<@r1.example,@r2.example:a@b>", NULL, 0, PARSE_OK, "a@b", "a", "b"},
        {"TO:<@r1,@r2,@r3:\"x y\"@[1.2.3.4]>", "TO:", 0, PARSE_OK, "\"x y\"@[1.2.3.4]", NULL, NULL},
        {"FROM:<@r1:>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<@r1,a@b>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<@r1;a@b>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<@r1,:a@b>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<@:a@b>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<@[1.2.3.4]:a@b>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<@-r:a@b>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<@r1,,@r2:a@b>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
    };
    run_path_cases(cases, sizeof cases / sizeof cases[0]);
}

static void path_flags_and_defaults(void **state)
{
    (void)state;
    struct smtp_path p;
    const char *params;
    size_t plen;
    assert_int_equal(parse_path("FROM:<>", 7, "FROM:", F_NULL, &p, &params, &plen), PARSE_OK);
    assert_true(p.null);
    assert_false(p.postmaster);
    assert_false(p.utf8);
    assert_string_equal(p.addr, "");
    assert_int_equal(parse_path("TO:<Postmaster>", 15, "TO:", F_PM, &p, &params, &plen), PARSE_OK);
    assert_false(p.null);
    assert_true(p.postmaster);
    assert_string_equal(p.domain, "");
    assert_int_equal(parse_path("TO:<a@b>", 8, "TO:", F_PM | F_NULL, &p, &params, &plen),
                     PARSE_OK);
    assert_false(p.null);
    assert_false(p.postmaster);
    assert_false(p.utf8);
    /* On error the outputs are reset, not left half-filled. */
    assert_int_equal(parse_path("TO:<a@b>x", 9, "TO:", 0, &p, &params, &plen), PARSE_SYNTAX);
    assert_string_equal(p.addr, "");
    assert_int_equal(plen, 0);
    assert_non_null(params);
}

static void path_params_pointer(void **state)
{
    (void)state;
    struct smtp_path p;
    const char *params;
    size_t plen;
    const char *arg = "FROM:<a@b> SIZE=10 BODY=8BITMIME";
    assert_int_equal(parse_path(arg, strlen(arg), "FROM:", 0, &p, &params, &plen), PARSE_OK);
    assert_ptr_equal(params, arg + 11);
    assert_int_equal(plen, strlen("SIZE=10 BODY=8BITMIME"));

    arg = "FROM:<a@b>    SIZE=1 ";
    assert_int_equal(parse_path(arg, strlen(arg), "FROM:", 0, &p, &params, &plen), PARSE_OK);
    assert_int_equal(plen, strlen("SIZE=1 "));
    assert_memory_equal(params, "SIZE=1 ", plen);

    arg = "FROM:<a@b>";
    assert_int_equal(parse_path(arg, strlen(arg), "FROM:", 0, &p, &params, &plen), PARSE_OK);
    assert_int_equal(plen, 0);
    arg = "FROM:<a@b>   ";
    assert_int_equal(parse_path(arg, strlen(arg), "FROM:", 0, &p, &params, &plen), PARSE_OK);
    assert_int_equal(plen, 0);

    arg = "FROM:<\"x> y\"@c> RET=HDRS";
    assert_int_equal(parse_path(arg, strlen(arg), "FROM:", 0, &p, &params, &plen), PARSE_OK);
    assert_string_equal(p.local, "x> y");
    assert_int_equal(plen, 8);
    assert_memory_equal(params, "RET=HDRS", 8);

    arg = "FROM:<> SMTPUTF8";
    assert_int_equal(parse_path(arg, strlen(arg), "FROM:", F_NULL, &p, &params, &plen), PARSE_OK);
    assert_true(p.null);
    assert_int_equal(plen, 8);
}

static void path_not_nul_terminated(void **state)
{
    (void)state;
    /* The parser must honour arglen: "FROM:<a@b>" followed by junk outside the length. */
    const char buf[] = "FROM:<a@b>XYZ";
    struct smtp_path p;
    const char *params;
    size_t plen;
    assert_int_equal(parse_path(buf, 10, "FROM:", 0, &p, &params, &plen), PARSE_OK);
    assert_string_equal(p.addr, "a@b");
    assert_int_equal(plen, 0);
    assert_int_equal(parse_path(buf, 9, "FROM:", 0, &p, &params, &plen), PARSE_SYNTAX);
    assert_int_equal(parse_path(buf, 3, "FROM:", 0, &p, &params, &plen), PARSE_SYNTAX);
    const char nul[] = "FROM:<a\0b@c>";
    assert_int_equal(parse_path(nul, sizeof nul - 1, "FROM:", 0, &p, &params, &plen),
                     PARSE_SYNTAX);
}

static void path_local_part_limit(void **state)
{
    (void)state;
    char local[128];
    struct smtp_path p;
    assert_int_equal(path_of(repeat(local, 'a', 64), "example.com", 0, &p), PARSE_OK);
    assert_int_equal(strlen(p.local), 64);
    assert_int_equal(path_of(repeat(local, 'a', 65), "example.com", 0, &p), PARSE_TOO_LONG);
    /* The limit applies to the local part as sent, quotes included. */
    char quoted[160];
    snprintf(quoted, sizeof quoted, "\"%s\"", repeat(local, ' ', 62));
    assert_int_equal(path_of(quoted, "x", 0, &p), PARSE_OK);
    assert_int_equal(strlen(p.local), 62);
    assert_int_equal(strlen(p.addr), 64 + 2);
    snprintf(quoted, sizeof quoted, "\"%s\"", repeat(local, ' ', 63));
    assert_int_equal(path_of(quoted, "x", 0, &p), PARSE_TOO_LONG);
    /* UTF-8 counts octets: 32 two-octet characters are 64 octets. */
    local[0] = '\0';
    for (int i = 0; i < 32; i++)
        strcat(local, "\xc3\xa9");
    assert_int_equal(path_of(local, "x", F_UTF8, &p), PARSE_OK);
    strcat(local, "a");
    assert_int_equal(path_of(local, "x", F_UTF8, &p), PARSE_TOO_LONG);
}

/* Build a domain of exactly n octets out of labels of at most 63. */
static char *make_domain(char *buf, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t label = n - i > 63 ? 63 : n - i;
        if (n - i - label == 1) /* don't leave a single trailing octet for a label */
            label--;
        memset(buf + i, 'd', label);
        i += label;
        if (i < n)
            buf[i++] = '.';
    }
    buf[n] = '\0';
    return buf;
}

static void path_domain_and_path_limits(void **state)
{
    (void)state;
    char domain[400], local[100];
    struct smtp_path p;
    /* "<" + 1 + "@" + 252 + ">" = 256: the whole path at its limit */
    assert_int_equal(path_of("a", make_domain(domain, 252), 0, &p), PARSE_OK);
    assert_int_equal(strlen(p.domain), 252);
    assert_int_equal(strlen(p.addr), 254);
    assert_int_equal(path_of("a", make_domain(domain, 253), 0, &p), PARSE_TOO_LONG);
    /* 64 + 1 + 189 + 2 = 256 */
    assert_int_equal(path_of(repeat(local, 'l', 64), make_domain(domain, 189), 0, &p), PARSE_OK);
    assert_int_equal(path_of(repeat(local, 'l', 64), make_domain(domain, 190), 0, &p),
                     PARSE_TOO_LONG);
    assert_int_equal(path_of("a", make_domain(domain, 255), 0, &p), PARSE_TOO_LONG);
    assert_int_equal(path_of("a", make_domain(domain, 256), 0, &p), PARSE_TOO_LONG);
    /* A source route counts towards the path length. */
    char arg[600];
    snprintf(arg, sizeof arg, "FROM:<@%s:a@b>", make_domain(domain, 249)); /* 256 */
    const char *params;
    size_t plen;
    assert_int_equal(parse_path(arg, strlen(arg), "FROM:", 0, &p, &params, &plen), PARSE_OK);
    snprintf(arg, sizeof arg, "FROM:<@%s:a@b>", make_domain(domain, 250));
    assert_int_equal(parse_path(arg, strlen(arg), "FROM:", 0, &p, &params, &plen),
                     PARSE_TOO_LONG);
}

static void path_label_limit(void **state)
{
    (void)state;
    char label[80], domain[100];
    struct smtp_path p;
    snprintf(domain, sizeof domain, "%s.example", repeat(label, 'x', 63));
    assert_int_equal(path_of("a", domain, 0, &p), PARSE_OK);
    snprintf(domain, sizeof domain, "%s.example", repeat(label, 'x', 64));
    assert_int_equal(path_of("a", domain, 0, &p), PARSE_TOO_LONG);
    snprintf(domain, sizeof domain, "example.%s", repeat(label, 'x', 64));
    assert_int_equal(path_of("a", domain, 0, &p), PARSE_TOO_LONG);
}

static void path_syntax_beats_length(void **state)
{
    (void)state;
    char local[200];
    struct smtp_path p;
    repeat(local, 'a', 100);
    local[50] = ' ';
    assert_int_equal(path_of(local, "x", 0, &p), PARSE_SYNTAX);
    char arg[400];
    snprintf(arg, sizeof arg, "FROM:<%s@x", repeat(local, 'a', 100));
    const char *params;
    size_t plen;
    assert_int_equal(parse_path(arg, strlen(arg), "FROM:", 0, &p, &params, &plen), PARSE_SYNTAX);
}

static void path_utf8(void **state)
{
    (void)state;
    static const struct path_case cases[] = {
        {"FROM:<j\xc3\xb6ran@example.com>", NULL, F_UTF8, PARSE_OK, "j\xc3\xb6ran@example.com",
         "j\xc3\xb6ran", NULL},
        {"FROM:<j\xc3\xb6ran@example.com>", NULL, 0, PARSE_NEED_UTF8, NULL, NULL, NULL},
        {"FROM:<a@b\xc3\xbc" "cher.example>", NULL, F_UTF8, PARSE_OK, NULL, NULL,
         "b\xc3\xbc" "cher.example"},
        {"FROM:<a@b\xc3\xbc" "cher.example>", NULL, 0, PARSE_NEED_UTF8, NULL, NULL, NULL},
        {"FROM:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8>", NULL,
         F_UTF8, PARSE_OK, NULL, NULL, NULL},
        {"FROM:<\xf0\x9f\x98\x80@x>", NULL, F_UTF8, PARSE_OK, NULL, NULL, NULL},
        {"FROM:<\xf3\xa0\x80\x81@x>", NULL, F_UTF8, PARSE_OK, NULL, NULL, NULL},
        {"FROM:<\xf4\x8f\xbf\xbf@x>", NULL, F_UTF8, PARSE_OK, NULL, NULL, NULL}, /* U+10FFFF */
        {"FROM:<\xed\x9f\xbf@x>", NULL, F_UTF8, PARSE_OK, NULL, NULL, NULL},         /* U+D7FF */
        {"FROM:<\"\xc3\xa9 x\"@x>", NULL, F_UTF8, PARSE_OK, "\"\xc3\xa9 x\"@x", NULL, NULL},
        {"FROM:<\"\xc3\xa9\"@x>", NULL, F_UTF8, PARSE_OK, "\xc3\xa9@x", NULL, NULL},
        {"FROM:<\"\xc3\xa9\"@x>", NULL, 0, PARSE_NEED_UTF8, NULL, NULL, NULL},
        {"FROM:<a@-\xc3\xa9>", NULL, F_UTF8, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@\xc3\xa9->", NULL, F_UTF8, PARSE_SYNTAX, NULL, NULL, NULL},
        /* Malformed UTF-8 is a syntax error whatever SMTPUTF8 says. */
        {"FROM:<\xc3@x>", NULL, F_UTF8, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<\xc3@x>", NULL, 0, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<\x80@x>", NULL, F_UTF8, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<\xc0\xaf@x>", NULL, F_UTF8, PARSE_SYNTAX, NULL, NULL, NULL},       /* overlong */
        {"FROM:<\xe0\x80\xaf@x>", NULL, F_UTF8, PARSE_SYNTAX, NULL, NULL, NULL},   /* overlong */
        {"FROM:<\xed\xa0\x80@x>", NULL, F_UTF8, PARSE_SYNTAX, NULL, NULL, NULL},   /* surrogate */
        {"FROM:<\xf4\x90\x80\x80@x>", NULL, F_UTF8, PARSE_SYNTAX, NULL, NULL, NULL}, /* >10FFFF */
        {"FROM:<\xf8\x88\x80\x80\x80@x>", NULL, F_UTF8, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<\xff@x>", NULL, F_UTF8, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<a@x\xe2\x82>", NULL, F_UTF8, PARSE_SYNTAX, NULL, NULL, NULL},     /* truncated */
        {"FROM:<\"\xc3\"@x>", NULL, F_UTF8, PARSE_SYNTAX, NULL, NULL, NULL},
        {"FROM:<\"\\\xc3\xa9\"@x>", NULL, F_UTF8, PARSE_SYNTAX, NULL, NULL, NULL}, /* \ + 8bit */
        {"FROM:<a@[\xc3\xa9]>", NULL, F_UTF8, PARSE_SYNTAX, NULL, NULL, NULL},
    };
    run_path_cases(cases, sizeof cases / sizeof cases[0]);
}

static void path_utf8_flag(void **state)
{
    (void)state;
    struct smtp_path p;
    assert_int_equal(path_of("j\xc3\xb6ran", "x", 0, &p), PARSE_NEED_UTF8);
    assert_true(p.utf8);
    assert_int_equal(path_of("j\xc3\xb6ran", "x", F_UTF8, &p), PARSE_OK);
    assert_true(p.utf8);
    assert_int_equal(path_of("joran", "x", F_UTF8, &p), PARSE_OK);
    assert_false(p.utf8);
    /* A syntax error is reported before the missing SMTPUTF8. */
    assert_int_equal(path_of("j\xc3\xb6 ran", "x", 0, &p), PARSE_SYNTAX);
}

/* Every canonical addr must parse back to itself: the session logs and stores it. */
static void path_canonical_round_trip(void **state)
{
    (void)state;
    static const char *const args[] = {
        "FROM:<a@b>", "FROM:<\"a b\"@x>", "FROM:<\"ab\"@x>", "FROM:<\"a\\\"b\"@x>",
        "FROM:<\"a\\\\b\"@x>", "FROM:<\"\"@x>", "FROM:<\".a.\"@x>", "FROM:<@r:\"a@b\"@[1.2.3.4]>",
        "FROM:<a@[IPv6:::1]>", "FROM:<\"\xc3\xa9 \\\"\"@\xc3\xa9.x>", "FROM:<\"a\\ \\b\"@x>",
    };
    for (size_t i = 0; i < sizeof args / sizeof args[0]; i++) {
        struct smtp_path p, q;
        const char *params;
        size_t plen;
        assert_int_equal(parse_path(args[i], strlen(args[i]), "FROM:", F_UTF8, &p, &params, &plen),
                         PARSE_OK);
        char again[SMTP_PATH_MAX + 16];
        snprintf(again, sizeof again, "FROM:<%s>", p.addr);
        if (parse_path(again, strlen(again), "FROM:", F_UTF8, &q, &params, &plen) != PARSE_OK)
            fail_msg("canonical '%s' of '%s' does not parse", p.addr, args[i]);
        assert_string_equal(q.addr, p.addr);
        assert_string_equal(q.local, p.local);
        assert_string_equal(q.domain, p.domain);
    }
}

/* ---- smtp_valid_domain ------------------------------------------------------------------ */

static bool vd(const char *s, bool utf8)
{
    return smtp_valid_domain(s, strlen(s), utf8);
}

static void domain_valid(void **state)
{
    (void)state;
    static const char *const good[] = {
        "example.com", "localhost", "a", "a-b.c", "a--b", "1.2.3.4", "123", "xn--bcher-kva.example",
        "MiXeD.Case.ORG", "[127.0.0.1]", "[IPv6:::1]", "[IPv6:2001:db8::1]", "[tag:value]",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!vd(good[i], false))
            fail_msg("'%s' should be a valid domain", good[i]);
}

static void domain_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "-a", "a-", "a..b", ".a", "a.", ".", "a_b", "a b", " a", "a ", "a@b", "[1.2.3.4",
        "1.2.3.4]", "[300.1.1.1]", "[IPv6:1.2.3.4]", "[IPv6:::1]x", "a.[1.2.3.4]", "<a>", "a\tb",
        "\"a\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (vd(bad[i], true))
            fail_msg("'%s' should be an invalid domain", bad[i]);
    static const char nul[] = "exa\0mple.com";
    assert_false(smtp_valid_domain(nul, sizeof nul - 1, true));
    /* length is honoured: "example.com." cut before the dot is fine */
    assert_true(smtp_valid_domain("example.com.", 11, false));
    assert_false(smtp_valid_domain("example.com.", 12, false));
}

static void domain_utf8(void **state)
{
    (void)state;
    assert_true(vd("b\xc3\xbc" "cher.de", true));
    assert_false(vd("b\xc3\xbc" "cher.de", false));
    assert_false(vd("b\xc3" "cher.de", true));
    assert_false(vd("\xed\xa0\x80.de", true));
    assert_false(vd("\xc3\xbc-.de", true));
}

static void domain_limits(void **state)
{
    (void)state;
    char domain[400], label[80];
    assert_true(vd(make_domain(domain, 255), false));
    assert_false(vd(make_domain(domain, 256), false));
    assert_true(vd(repeat(label, 'x', 63), false));
    assert_false(vd(repeat(label, 'x', 64), false));
}

/* ---- MAIL parameters -------------------------------------------------------------------- */

static enum parse_result mailp(const char *s, struct mail_params *mp, char *bad, size_t cap)
{
    return smtp_parse_mail_params(s, strlen(s), mp, bad, cap);
}

static void mail_params_empty(void **state)
{
    (void)state;
    struct mail_params mp;
    char bad[32] = "junk";
    assert_int_equal(mailp("", &mp, bad, sizeof bad), PARSE_OK);
    assert_false(mp.has_size);
    assert_int_equal(mp.body, BODY_UNSPEC);
    assert_false(mp.smtputf8);
    assert_int_equal(mp.ret, RET_UNSPEC);
    assert_string_equal(mp.envid, "");
    assert_string_equal(bad, "");
    assert_int_equal(mailp("   ", &mp, bad, sizeof bad), PARSE_OK);
}

static void mail_params_all(void **state)
{
    (void)state;
    struct mail_params mp;
    char bad[32];
    assert_int_equal(mailp("SIZE=12345 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ+2B314", &mp, bad,
                           sizeof bad),
                     PARSE_OK);
    assert_true(mp.has_size);
    assert_int_equal(mp.size, 12345);
    assert_int_equal(mp.body, BODY_8BITMIME);
    assert_true(mp.smtputf8);
    assert_int_equal(mp.ret, RET_HDRS);
    assert_string_equal(mp.envid, "QQ+2B314");
    assert_string_equal(bad, "");
    /* Keywords and enumerated values are case-insensitive; extra spaces are tolerated. */
    assert_int_equal(mailp("  size=0   body=binarymime  smtputf8 ret=full ", &mp, bad, sizeof bad),
                     PARSE_OK);
    assert_true(mp.has_size);
    assert_int_equal(mp.size, 0);
    assert_int_equal(mp.body, BODY_BINARYMIME);
    assert_true(mp.smtputf8);
    assert_int_equal(mp.ret, RET_FULL);
    assert_int_equal(mailp("BODY=7bit", &mp, bad, sizeof bad), PARSE_OK);
    assert_int_equal(mp.body, BODY_7BIT);
}

static void mail_params_size(void **state)
{
    (void)state;
    struct mail_params mp;
    char bad[32];
    assert_int_equal(mailp("SIZE=18446744073709551615", &mp, bad, sizeof bad), PARSE_OK);
    assert_true(mp.size == 18446744073709551615ULL);
    /* 20 digits beyond 2^64-1 are syntactically fine and saturate (-> 552, not 501) */
    assert_int_equal(mailp("SIZE=99999999999999999999", &mp, bad, sizeof bad), PARSE_OK);
    assert_true(mp.size == 18446744073709551615ULL);
    assert_int_equal(mailp("SIZE=18446744073709551616", &mp, bad, sizeof bad), PARSE_OK);
    assert_true(mp.size == 18446744073709551615ULL);
    assert_int_equal(mailp("SIZE=00000000000000000007", &mp, bad, sizeof bad), PARSE_OK);
    assert_int_equal(mp.size, 7);
    static const char *const badv[] = {
        "SIZE", "SIZE=", "SIZE=123456789012345678901", "SIZE=12a", "SIZE=-1", "SIZE=+1",
        "SIZE=1.5", "SIZE= 1", "SIZE=1=2", "SIZE=0x10",
    };
    for (size_t i = 0; i < sizeof badv / sizeof badv[0]; i++) {
        enum parse_result r = mailp(badv[i], &mp, bad, sizeof bad);
        if (r != PARSE_BAD_PARAM)
            fail_msg("'%s': got %s, want BAD_PARAM", badv[i], result_name(r));
        assert_string_equal(bad, "SIZE");
    }
}

static void mail_params_bad_values(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        const char *kw;
    } cases[] = {
        {"BODY", "BODY"},          {"BODY=", "BODY"},          {"BODY=9BIT", "BODY"},
        {"BODY=8BITMIMEX", "BODY"}, {"BODY=8BIT", "BODY"},      {"SMTPUTF8=yes", "SMTPUTF8"},
        {"SMTPUTF8=", "SMTPUTF8"},  {"RET", "RET"},             {"RET=NONE", "RET"},
        {"RET=FULLX", "RET"},      {"ENVID", "ENVID"},         {"ENVID=", "ENVID"},
        {"ENVID=a+2b", "ENVID"},    {"ENVID=a+", "ENVID"},      {"ENVID=a+4", "ENVID"},
        {"ENVID=a+GG", "ENVID"},    {"ENVID=\xc3\xa9", "ENVID"}, {"ret=hdrs,full", "ret"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mail_params mp;
        char bad[32];
        enum parse_result r = mailp(cases[i].s, &mp, bad, sizeof bad);
        if (r != PARSE_BAD_PARAM)
            fail_msg("'%s': got %s, want BAD_PARAM", cases[i].s, result_name(r));
        assert_string_equal(bad, cases[i].kw);
    }
}

static void mail_params_envid_limit(void **state)
{
    (void)state;
    char s[200], v[150];
    struct mail_params mp;
    char bad[32];
    snprintf(s, sizeof s, "ENVID=%s", repeat(v, 'e', 100));
    assert_int_equal(mailp(s, &mp, bad, sizeof bad), PARSE_OK);
    assert_int_equal(strlen(mp.envid), 100);
    snprintf(s, sizeof s, "ENVID=%s", repeat(v, 'e', 101));
    assert_int_equal(mailp(s, &mp, bad, sizeof bad), PARSE_BAD_PARAM);
}

static void mail_params_repeated(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "SIZE=1 SIZE=2", "SIZE=1 size=1", "SMTPUTF8 smtputf8", "BODY=7BIT BODY=8BITMIME",
        "RET=FULL RET=FULL", "ENVID=a ENVID=b",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mail_params mp;
        char bad[32];
        if (mailp(cases[i], &mp, bad, sizeof bad) != PARSE_BAD_PARAM)
            fail_msg("'%s' should be BAD_PARAM", cases[i]);
        assert_true(bad[0] != '\0');
    }
}

static void mail_params_unknown(void **state)
{
    (void)state;
    struct mail_params mp;
    char bad[32];
    assert_int_equal(mailp("FOO=bar", &mp, bad, sizeof bad), PARSE_UNKNOWN_PARAM);
    assert_string_equal(bad, "FOO");
    assert_int_equal(mailp("SIZE=1 X-Thing", &mp, bad, sizeof bad), PARSE_UNKNOWN_PARAM);
    assert_string_equal(bad, "X-Thing");
    /* AUTH is not implemented yet, so it is unknown like anything else */
    assert_int_equal(mailp("AUTH=<>", &mp, bad, sizeof bad), PARSE_UNKNOWN_PARAM);
    assert_string_equal(bad, "AUTH");
    /* RCPT keywords are not MAIL keywords */
    assert_int_equal(mailp("NOTIFY=NEVER", &mp, bad, sizeof bad), PARSE_UNKNOWN_PARAM);
    assert_int_equal(mailp("SIZEX=1", &mp, bad, sizeof bad), PARSE_UNKNOWN_PARAM);
    assert_int_equal(mailp("SIZ=1", &mp, bad, sizeof bad), PARSE_UNKNOWN_PARAM);
    /* unknown with a UTF-8 value (RFC 6531 esmtp-value) is still just unknown */
    assert_int_equal(mailp("X=\xc3\xa9", &mp, bad, sizeof bad), PARSE_UNKNOWN_PARAM);
    /* the first error wins */
    assert_int_equal(mailp("FOO=1 SIZE=x", &mp, bad, sizeof bad), PARSE_UNKNOWN_PARAM);
    assert_string_equal(bad, "FOO");
    assert_int_equal(mailp("SIZE=x FOO=1", &mp, bad, sizeof bad), PARSE_BAD_PARAM);
    assert_string_equal(bad, "SIZE");
}

static void mail_params_syntax(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "=foo", "-FOO=1", "FO_O=1", "FOO=a=b", "FOO=", "<c@d>", "SIZE\t=1", "FOO=\xc3", "F\xc3\xa9=1",
        "SIZE=1 =", "X=a\x01",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mail_params mp;
        char bad[32];
        enum parse_result r = mailp(cases[i], &mp, bad, sizeof bad);
        if (r != PARSE_SYNTAX)
            fail_msg("'%s': got %s, want SYNTAX", cases[i], result_name(r));
    }
}

static void params_bad_keyword_buffer(void **state)
{
    (void)state;
    struct mail_params mp;
    char bad[4];
    assert_int_equal(mailp("VERYLONGKEYWORD=1", &mp, bad, sizeof bad), PARSE_UNKNOWN_PARAM);
    assert_string_equal(bad, "VER");
    char big[32];
    assert_int_equal(mailp("FO\x01O=1", &mp, big, sizeof big), PARSE_SYNTAX);
    assert_string_equal(big, "FO?O"); /* unprintable octets never reach a reply line */
    assert_int_equal(mailp("FOO=1", &mp, NULL, 0), PARSE_UNKNOWN_PARAM);
    assert_int_equal(mailp("FOO=1", &mp, big, 0), PARSE_UNKNOWN_PARAM);
    struct rcpt_params rp;
    assert_int_equal(smtp_parse_rcpt_params("X=1", 3, &rp, NULL, 0), PARSE_UNKNOWN_PARAM);
}

static void params_length_honoured(void **state)
{
    (void)state;
    struct mail_params mp;
    char bad[32];
    const char s[] = "SIZE=10 BOGUS";
    assert_int_equal(smtp_parse_mail_params(s, 7, &mp, bad, sizeof bad), PARSE_OK);
    assert_int_equal(mp.size, 10);
    assert_int_equal(smtp_parse_mail_params(s, 6, &mp, bad, sizeof bad), PARSE_OK);
    assert_int_equal(mp.size, 1);
    assert_int_equal(smtp_parse_mail_params(s, sizeof s - 1, &mp, bad, sizeof bad),
                     PARSE_UNKNOWN_PARAM);
}

/* ---- RCPT parameters -------------------------------------------------------------------- */

static enum parse_result rcptp(const char *s, struct rcpt_params *rp, char *bad, size_t cap)
{
    return smtp_parse_rcpt_params(s, strlen(s), rp, bad, cap);
}

static void rcpt_params_valid(void **state)
{
    (void)state;
    struct rcpt_params rp;
    char bad[32] = "x";
    assert_int_equal(rcptp("", &rp, bad, sizeof bad), PARSE_OK);
    assert_int_equal(rp.notify, 0);
    assert_string_equal(rp.orcpt, "");
    assert_string_equal(bad, "");
    assert_int_equal(rcptp("NOTIFY=NEVER", &rp, bad, sizeof bad), PARSE_OK);
    assert_int_equal(rp.notify, NOTIFY_NEVER);
    assert_int_equal(rcptp("NOTIFY=SUCCESS,FAILURE,DELAY", &rp, bad, sizeof bad), PARSE_OK);
    assert_int_equal(rp.notify, NOTIFY_SUCCESS | NOTIFY_FAILURE | NOTIFY_DELAY);
    assert_int_equal(rcptp("notify=delay", &rp, bad, sizeof bad), PARSE_OK);
    assert_int_equal(rp.notify, NOTIFY_DELAY);
    assert_int_equal(rcptp("NOTIFY=failure,failure", &rp, bad, sizeof bad), PARSE_OK);
    assert_int_equal(rp.notify, NOTIFY_FAILURE);
    assert_int_equal(rcptp("ORCPT=rfc822;a@b.example", &rp, bad, sizeof bad), PARSE_OK);
    assert_string_equal(rp.orcpt, "rfc822;a@b.example");
    assert_int_equal(rcptp("NOTIFY=SUCCESS ORCPT=rfc822;a+2Bb@c", &rp, bad, sizeof bad), PARSE_OK);
    assert_int_equal(rp.notify, NOTIFY_SUCCESS);
    assert_string_equal(rp.orcpt, "rfc822;a+2Bb@c");
    assert_int_equal(rcptp("ORCPT=X-Local;joe", &rp, bad, sizeof bad), PARSE_OK);
}

static void rcpt_params_bad_notify(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "NOTIFY",           "NOTIFY=",           "NOTIFY=NEVER,SUCCESS", "NOTIFY=DELAY,NEVER",
        "NOTIFY=SUCCESS,,DELAY", "NOTIFY=,SUCCESS", "NOTIFY=SUCCESS,",   "NOTIFY=FOO",
        "NOTIFY=SUCCES",    "NOTIFY=NEVER NOTIFY=NEVER", "NOTIFY=SUCCESS;DELAY",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rcpt_params rp;
        char bad[32];
        enum parse_result r = rcptp(cases[i], &rp, bad, sizeof bad);
        if (r != PARSE_BAD_PARAM)
            fail_msg("'%s': got %s, want BAD_PARAM", cases[i], result_name(r));
        assert_string_equal(bad, "NOTIFY");
    }
}

static void rcpt_params_bad_orcpt(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "ORCPT", "ORCPT=", "ORCPT=rfc822", "ORCPT=rfc822;", "ORCPT=;a@b", "ORCPT=rf(c;a",
        "ORCPT=rf.c;a", "ORCPT=rfc822;a+2b", "ORCPT=rfc822;a+", "ORCPT=rfc822;\xc3\xa9",
        "ORCPT=rfc822;a ORCPT=rfc822;b",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rcpt_params rp;
        char bad[32];
        enum parse_result r = rcptp(cases[i], &rp, bad, sizeof bad);
        if (r != PARSE_BAD_PARAM)
            fail_msg("'%s': got %s, want BAD_PARAM", cases[i], result_name(r));
        assert_string_equal(bad, "ORCPT");
    }
}

static void rcpt_params_orcpt_limit(void **state)
{
    (void)state;
    char s[700], v[600];
    struct rcpt_params rp;
    char bad[32];
    snprintf(s, sizeof s, "ORCPT=rfc822;%s", repeat(v, 'o', 500 - 7));
    assert_int_equal(rcptp(s, &rp, bad, sizeof bad), PARSE_OK);
    assert_int_equal(strlen(rp.orcpt), 500);
    snprintf(s, sizeof s, "ORCPT=rfc822;%s", repeat(v, 'o', 500 - 6));
    assert_int_equal(rcptp(s, &rp, bad, sizeof bad), PARSE_BAD_PARAM);
}

static void rcpt_params_unknown_and_syntax(void **state)
{
    (void)state;
    struct rcpt_params rp;
    char bad[32];
    assert_int_equal(rcptp("SIZE=1", &rp, bad, sizeof bad), PARSE_UNKNOWN_PARAM);
    assert_string_equal(bad, "SIZE");
    assert_int_equal(rcptp("NOTIFY=NEVER XFOO", &rp, bad, sizeof bad), PARSE_UNKNOWN_PARAM);
    assert_string_equal(bad, "XFOO");
    assert_int_equal(rcptp("=NEVER", &rp, bad, sizeof bad), PARSE_SYNTAX);
    assert_int_equal(rcptp("NO_TIFY=NEVER", &rp, bad, sizeof bad), PARSE_SYNTAX);
}

/* ---- xtext ------------------------------------------------------------------------------ */

static void xtext_validity(void **state)
{
    (void)state;
    static const char *const good[] = {"", "abc", "+2B", "a+3Db", "!~", "+00", "+FF", "a+2B+3D"};
    static const char *const bad[] = {"+", "+2", "+2b", "+g0", "+G0", "a b", "=", "a=b", "\x80",
                                      "\x7f", "a+2"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!xtext_valid(good[i], strlen(good[i])))
            fail_msg("'%s' should be valid xtext", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (xtext_valid(bad[i], strlen(bad[i])))
            fail_msg("'%s' should be invalid xtext", bad[i]);
    /* length honoured: "+2" of "+2B" is incomplete */
    assert_false(xtext_valid("+2B", 2));
}

static void xtext_decoding(void **state)
{
    (void)state;
    char out[16];
    assert_true(xtext_decode("a+2Bb+3D+20", 11, out, sizeof out));
    assert_string_equal(out, "a+b= ");
    assert_true(xtext_decode("", 0, out, sizeof out));
    assert_string_equal(out, "");
    assert_false(xtext_decode("a+2b", 4, out, sizeof out));
    assert_false(xtext_decode("a+00b", 5, out, sizeof out)); /* NUL cannot be a C string */
    assert_true(xtext_decode("abc", 3, out, 4));
    assert_false(xtext_decode("abcd", 4, out, 4));
    assert_string_equal(out, "abc"); /* still terminated */
    assert_false(xtext_decode("a", 1, out, 0));
}

static void xtext_encoding(void **state)
{
    (void)state;
    char out[64];
    assert_true(xtext_encode("a+b=c d", 7, out, sizeof out));
    assert_string_equal(out, "a+2Bb+3Dc+20d");
    assert_true(xtext_encode("", 0, out, sizeof out));
    assert_string_equal(out, "");
    assert_true(xtext_encode("\xc3\xa9\x01", 3, out, sizeof out));
    assert_string_equal(out, "+C3+A9+01");
    assert_true(xtext_encode("abc", 3, out, 4));
    assert_false(xtext_encode("abcd", 4, out, 4));
    assert_false(xtext_encode("+", 1, out, 3));
    assert_true(xtext_encode("+", 1, out, 4));
    assert_false(xtext_encode("a", 1, out, 0));
}

static void xtext_round_trip(void **state)
{
    (void)state;
    char raw[255], enc[255 * 3 + 1], dec[256];
    for (int i = 0; i < 255; i++)
        raw[i] = (char)(i + 1);
    assert_true(xtext_encode(raw, sizeof raw, enc, sizeof enc));
    assert_true(xtext_valid(enc, strlen(enc)));
    assert_true(xtext_decode(enc, strlen(enc), dec, sizeof dec));
    assert_int_equal(strlen(dec), sizeof raw);
    assert_memory_equal(dec, raw, sizeof raw);
    /* and the other way: valid xtext re-encodes to itself when escapes are minimal */
    const char *x = "user+2Btag+3Dx+20y@example.com";
    assert_true(xtext_decode(x, strlen(x), dec, sizeof dec));
    assert_true(xtext_encode(dec, strlen(dec), enc, sizeof enc));
    assert_string_equal(enc, x);
}

/* ---- RFC 4865 future release, RFC 3339 times, X-DELIVERY-TIME, ETRN ------------------------ */

static long long t3339(const char *s)
{
    long long t = -1;
    if (smtp_parse_rfc3339(s, strlen(s), &t) != PARSE_OK)
        return -1;
    return t;
}

static void rfc3339_valid(void **state)
{
    (void)state;
    assert_true(t3339("1970-01-01T00:00:00Z") == 0);
    assert_true(t3339("2001-09-09T01:46:40Z") == 1000000000LL);
    assert_true(t3339("2026-11-23T10:00:00Z") == 1795428000LL);
    /* lower-case t and z (RFC 3339 5.6 note), fractions dropped, offsets applied */
    assert_true(t3339("2026-11-23t10:00:00.999z") == 1795428000LL);
    assert_true(t3339("2026-11-23T11:30:00+01:30") == 1795428000LL);
    assert_true(t3339("2026-11-23T05:00:00-05:00") == 1795428000LL);
    /* leap days and a leap second */
    assert_true(t3339("2024-02-29T00:00:00Z") == 1709164800LL);
    assert_true(t3339("2000-02-29T00:00:00Z") == 951782400LL);
    assert_true(t3339("2016-12-31T23:59:60Z") == 1483228800LL);
    assert_true(t3339("1969-12-31T23:59:59Z") == -1); /* before the epoch: negative */
    long long t;
    assert_int_equal(smtp_parse_rfc3339("1969-12-31T23:59:58Z", 20, &t), PARSE_OK);
    assert_true(t == -2);
}

static void rfc3339_invalid(void **state)
{
    (void)state;
    const char *bad[] = {
        "", "2026-11-23", "2026-11-23T10:00:00", "2026-11-23 10:00:00Z", "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z", "2026-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z", "2026-11-23T24:00:00Z", "2026-11-23T10:60:00Z",
        "2026-11-23T10:00:61Z", "2026-11-23T10:00:00.Z", "2026-11-23T10:00:00+0100",
        "2026-11-23T10:00:00+24:00", "2026-11-23T10:00:00Zjunk", "26-11-23T10:00:00Z",
        "2026-1-23T10:00:00Z", "0000-01-01T00:00:00Z", "2026-11-23T10:00:00+01:00 ",
        "+2026-11-23T10:00:00Z", "2026-11-23T1a:00:00Z",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        long long t = 42;
        if (smtp_parse_rfc3339(bad[i], strlen(bad[i]), &t) != PARSE_SYNTAX)
            fail_msg("accepted '%s'", bad[i]);
        assert_true(t == 42);
    }
    /* the length given is honoured: a valid prefix is not enough */
    long long t;
    assert_int_equal(smtp_parse_rfc3339("2026-11-23T10:00:00Z", 19, &t), PARSE_SYNTAX);
}

static void rfc3339_format_round_trip(void **state)
{
    (void)state;
    char buf[32];
    assert_true(smtp_format_rfc3339(0, buf, sizeof buf));
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    assert_true(smtp_format_rfc3339(1795428000LL, buf, sizeof buf));
    assert_string_equal(buf, "2026-11-23T10:00:00Z");
    assert_true(smtp_format_rfc3339(951782400LL + 86399, buf, sizeof buf));
    assert_string_equal(buf, "2000-02-29T23:59:59Z");
    assert_true(smtp_format_rfc3339(-1, buf, sizeof buf));
    assert_string_equal(buf, "1969-12-31T23:59:59Z");
    assert_false(smtp_format_rfc3339(1795428000LL, buf, 20)); /* no room for the NUL */
    assert_false(smtp_format_rfc3339(400000000000LL, buf, sizeof buf)); /* year > 9999 */
    /* every day of several years, both ways */
    for (long long t = 1600000000LL; t < 1600000000LL + 5 * 366 * 86400LL; t += 86400 + 3671) {
        assert_true(smtp_format_rfc3339(t, buf, sizeof buf));
        assert_true(t3339(buf) == t);
    }
}

static void delivery_time(void **state)
{
    (void)state;
    long long t;
    assert_int_equal(smtp_parse_delivery_time("+30", 3, 1000, &t), PARSE_OK);
    assert_true(t == 1030);
    assert_int_equal(smtp_parse_delivery_time("+0", 2, 1000, &t), PARSE_OK);
    assert_true(t == 1000);
    assert_int_equal(smtp_parse_delivery_time("+999999999", 10, 0, &t), PARSE_OK);
    assert_true(t == 999999999LL);
    assert_int_equal(smtp_parse_delivery_time("2001-09-09T01:46:40Z", 20, 5, &t), PARSE_OK);
    assert_true(t == 1000000000LL);
    const char *bad[] = {"", "+", "+1000000000", "+-1", "+1s", "30", "-30", "tomorrow"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        if (smtp_parse_delivery_time(bad[i], strlen(bad[i]), 0, &t) != PARSE_SYNTAX)
            fail_msg("accepted '%s'", bad[i]);
}

static void mail_params_hold(void **state)
{
    (void)state;
    struct mail_params mp;
    char bad[32];
    assert_int_equal(mailp("HOLDFOR=3600", &mp, bad, sizeof bad), PARSE_OK);
    assert_int_equal(mp.hold, HOLD_FOR);
    assert_true(mp.hold_for == 3600);
    assert_int_equal(mailp("SIZE=10 holduntil=2026-11-23T10:00:00Z", &mp, bad, sizeof bad),
                     PARSE_OK);
    assert_int_equal(mp.hold, HOLD_UNTIL);
    assert_true(mp.hold_until == 1795428000LL);
    assert_int_equal(mailp("HOLDFOR=999999999", &mp, bad, sizeof bad), PARSE_OK);
    assert_int_equal(mailp("", &mp, bad, sizeof bad), PARSE_OK);
    assert_int_equal(mp.hold, HOLD_NONE);
    /* bad values, missing values, 10 digits, and both at once (RFC 4865 3) */
    const char *badv[] = {"HOLDFOR=", "HOLDFOR", "HOLDFOR=-1", "HOLDFOR=1h", "HOLDFOR=1000000000",
                          "HOLDUNTIL=tomorrow", "HOLDUNTIL", "HOLDUNTIL=2026-11-23T10:00:00",
                          "HOLDFOR=10 HOLDUNTIL=2026-11-23T10:00:00Z",
                          "HOLDUNTIL=2026-11-23T10:00:00Z HOLDFOR=10", "HOLDFOR=1 HOLDFOR=2"};
    for (size_t i = 0; i < ARRAY_LEN(badv); i++)
        if (mailp(badv[i], &mp, bad, sizeof bad) != PARSE_BAD_PARAM)
            fail_msg("accepted '%s'", badv[i]);
    mailp("HOLDFOR=10 HOLDUNTIL=2026-11-23T10:00:00Z", &mp, bad, sizeof bad);
    assert_string_equal(bad, "HOLDUNTIL");
}

static enum parse_result etrn(const char *s, struct etrn_arg *e)
{
    return smtp_parse_etrn(s, strlen(s), e);
}

static void etrn_argument(void **state)
{
    (void)state;
    struct etrn_arg e;
    assert_int_equal(etrn("Example.ORG", &e), PARSE_OK);
    assert_int_equal(e.kind, ETRN_DOMAIN);
    assert_string_equal(e.node, "example.org");
    assert_int_equal(etrn("@example.org  ", &e), PARSE_OK);
    assert_int_equal(e.kind, ETRN_SUBDOMAINS);
    assert_string_equal(e.node, "example.org");
    assert_int_equal(etrn("#Queue1", &e), PARSE_OK);
    assert_int_equal(e.kind, ETRN_QUEUE);
    assert_string_equal(e.node, "Queue1"); /* queue names keep their case */
    const char *bad[] = {"", "  ", "@", "#", "[127.0.0.1]", "@[127.0.0.1]", "exa mple.org",
                         "example..org", "-example.org", "@@example.org", "#a b"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        if (etrn(bad[i], &e) == PARSE_OK)
            fail_msg("accepted '%s'", bad[i]);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(etrn(longname, &e), PARSE_TOO_LONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_basic),
        cmocka_unit_test(split_verb_uppercased),
        cmocka_unit_test(split_no_argument),
        cmocka_unit_test(split_spaces_in_argument_kept),
        cmocka_unit_test(split_empty_line),
        cmocka_unit_test(split_bad_verbs),
        cmocka_unit_test(split_verb_length_limit),
        cmocka_unit_test(split_control_characters),
        cmocka_unit_test(path_valid),
        cmocka_unit_test(path_quoted_local_parts),
        cmocka_unit_test(path_syntax_errors),
        cmocka_unit_test(path_address_literals_invalid),
        cmocka_unit_test(path_general_literal_digit_tag),
        cmocka_unit_test(path_source_routes),
        cmocka_unit_test(path_flags_and_defaults),
        cmocka_unit_test(path_params_pointer),
        cmocka_unit_test(path_not_nul_terminated),
        cmocka_unit_test(path_local_part_limit),
        cmocka_unit_test(path_domain_and_path_limits),
        cmocka_unit_test(path_label_limit),
        cmocka_unit_test(path_syntax_beats_length),
        cmocka_unit_test(path_utf8),
        cmocka_unit_test(path_utf8_flag),
        cmocka_unit_test(path_canonical_round_trip),
        cmocka_unit_test(domain_valid),
        cmocka_unit_test(domain_invalid),
        cmocka_unit_test(domain_utf8),
        cmocka_unit_test(domain_limits),
        cmocka_unit_test(mail_params_empty),
        cmocka_unit_test(mail_params_all),
        cmocka_unit_test(mail_params_size),
        cmocka_unit_test(mail_params_bad_values),
        cmocka_unit_test(mail_params_envid_limit),
        cmocka_unit_test(mail_params_repeated),
        cmocka_unit_test(mail_params_unknown),
        cmocka_unit_test(mail_params_syntax),
        cmocka_unit_test(params_bad_keyword_buffer),
        cmocka_unit_test(params_length_honoured),
        cmocka_unit_test(rcpt_params_valid),
        cmocka_unit_test(rcpt_params_bad_notify),
        cmocka_unit_test(rcpt_params_bad_orcpt),
        cmocka_unit_test(rcpt_params_orcpt_limit),
        cmocka_unit_test(rcpt_params_unknown_and_syntax),
        cmocka_unit_test(xtext_validity),
        cmocka_unit_test(xtext_decoding),
        cmocka_unit_test(xtext_encoding),
        cmocka_unit_test(xtext_round_trip),
        cmocka_unit_test(rfc3339_valid),
        cmocka_unit_test(rfc3339_invalid),
        cmocka_unit_test(rfc3339_format_round_trip),
        cmocka_unit_test(delivery_time),
        cmocka_unit_test(mail_params_hold),
        cmocka_unit_test(etrn_argument),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
