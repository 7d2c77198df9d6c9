/* fuzz_smtp_parse.c - libFuzzer target for smtp_parse.c (RFC 5321 4.1.1 / 4.1.2 parsers,
 * RFC 3461 xtext). Feeds the input to every parser with every flag combination and checks
 * invariants that must hold for any input: outputs stay in bounds and NUL-terminated, a
 * parsed path's canonical form parses back to itself, RFC 3339 times format and parse back, SMTPUTF8 only ever widens what is
 * accepted, and xtext encode/decode round-trip. Any violation aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"
#include "fuzz.h"

enum { F_NULL = 1, F_PM = 2, F_UTF8 = 4 };

static bool terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static void check_bad_keyword(const char *bad, size_t cap)
{
    REQUIRE(terminated(bad, cap));
    for (const char *p = bad; *p; p++)
        REQUIRE(*p > 32 && *p < 127);
}

static void check_params(const char *s, size_t len)
{
    struct mail_params mp;
    struct rcpt_params rp;
    char bad[32];
    enum parse_result r = smtp_parse_mail_params(s, len, &mp, bad, sizeof bad);
    check_bad_keyword(bad, sizeof bad);
    REQUIRE(r == PARSE_OK || r == PARSE_SYNTAX || r == PARSE_UNKNOWN_PARAM || r == PARSE_BAD_PARAM);
    REQUIRE(terminated(mp.envid, sizeof mp.envid));
    if (r == PARSE_OK) {
        REQUIRE(bad[0] == '\0');
        REQUIRE(xtext_valid(mp.envid, strlen(mp.envid)));
        REQUIRE(mp.body >= BODY_UNSPEC && mp.body <= BODY_BINARYMIME);
        REQUIRE(mp.ret >= RET_UNSPEC && mp.ret <= RET_HDRS);
    } else {
        REQUIRE(r == PARSE_SYNTAX || bad[0] != '\0');
    }
    char tiny[3];
    enum parse_result r2 = smtp_parse_mail_params(s, len, &mp, tiny, sizeof tiny);
    REQUIRE(r2 == r);
    REQUIRE(strlen(tiny) <= 2);
    REQUIRE(smtp_parse_mail_params(s, len, &mp, NULL, 0) == r);

    r = smtp_parse_rcpt_params(s, len, &rp, bad, sizeof bad);
    check_bad_keyword(bad, sizeof bad);
    REQUIRE(terminated(rp.orcpt, sizeof rp.orcpt));
    if (r == PARSE_OK) {
        REQUIRE(bad[0] == '\0');
        REQUIRE(!(rp.notify & NOTIFY_NEVER) || rp.notify == NOTIFY_NEVER);
        REQUIRE(rp.notify < 16);
        REQUIRE(rp.orcpt[0] == '\0' || strchr(rp.orcpt, ';') != NULL);
    }
}

static void check_path(const char *arg, size_t len, const char *prefix, int flags)
{
    struct smtp_path p;
    const char *params;
    size_t plen;
    enum parse_result r = smtp_parse_path_arg(arg, len, prefix, flags & F_NULL, flags & F_PM,
                                              flags & F_UTF8, &p, &params, &plen);
    REQUIRE(terminated(p.local, sizeof p.local));
    REQUIRE(terminated(p.domain, sizeof p.domain));
    REQUIRE(terminated(p.addr, sizeof p.addr));
    REQUIRE(params != NULL);
    if (r == PARSE_NEED_UTF8) {
        REQUIRE(!(flags & F_UTF8));
        REQUIRE(p.utf8);
    }
    if (r != PARSE_OK) {
        REQUIRE(plen == 0);
        if (!(flags & F_UTF8)) { /* SMTPUTF8 changes nothing but NEED_UTF8 */
            struct smtp_path q;
            enum parse_result r2 = smtp_parse_path_arg(arg, len, prefix, flags & F_NULL,
                                                       flags & F_PM, true, &q, &params, &plen);
            REQUIRE(r == PARSE_NEED_UTF8 ? r2 == PARSE_OK : r2 == r);
        }
        return;
    }
    REQUIRE(params >= arg && params <= arg + len && params + plen == arg + len);
    REQUIRE(plen == 0 || params[0] != ' ');
    REQUIRE(!p.null || (flags & F_NULL));
    REQUIRE(!p.postmaster || (flags & F_PM));
    REQUIRE(!(p.null && p.postmaster));
    REQUIRE(!p.utf8 || (flags & F_UTF8));
    if (p.null) {
        REQUIRE(p.addr[0] == '\0' && p.local[0] == '\0' && p.domain[0] == '\0');
        return;
    }
    if (p.postmaster) {
        REQUIRE(strcmp(p.addr, p.local) == 0 && strlen(p.local) == 10 && p.domain[0] == '\0');
        return;
    }
    REQUIRE(strlen(p.addr) <= SMTP_PATH_MAX - 2);
    REQUIRE(smtp_valid_domain(p.domain, strlen(p.domain), true));
    REQUIRE(p.domain[0] == '[' || strlen(p.domain) <= SMTP_DOMAIN_MAX);
    /* The canonical form parses back to the same mailbox. */
    char again[SMTP_PATH_MAX + 16];
    int n = snprintf(again, sizeof again, "%s<%s>", prefix, p.addr);
    REQUIRE(n > 0 && (size_t)n < sizeof again);
    struct smtp_path q;
    const char *qp;
    size_t qplen;
    REQUIRE(smtp_parse_path_arg(again, (size_t)n, prefix, false, false, true, &q, &qp, &qplen) ==
            PARSE_OK);
    REQUIRE(strcmp(q.addr, p.addr) == 0);
    REQUIRE(strcmp(q.local, p.local) == 0);
    REQUIRE(strcmp(q.domain, p.domain) == 0);
    REQUIRE(!q.utf8 || p.utf8); /* a UTF-8 source route is dropped from addr */
    REQUIRE(qplen == 0);
}

static void check_xtext(const char *s, size_t len)
{
    static char enc[3 * 4096 + 1], dec[4097], dec2[4097];
    if (len > 4096)
        return;
    /* arbitrary bytes encode to valid xtext which decodes back (unless they contain NUL) */
    REQUIRE(xtext_encode(s, len, enc, sizeof enc));
    size_t enclen = strlen(enc);
    REQUIRE(xtext_valid(enc, enclen));
    bool has_nul = memchr(s, '\0', len) != NULL;
    REQUIRE(xtext_decode(enc, enclen, dec, sizeof dec) == !has_nul);
    if (!has_nul)
        REQUIRE(strlen(dec) == len && memcmp(dec, s, len) == 0);
    /* valid xtext decodes, and the decoding re-encodes to something that decodes the same */
    if (xtext_valid(s, len) && xtext_decode(s, len, dec, sizeof dec)) {
        REQUIRE(strlen(dec) <= len);
        REQUIRE(xtext_encode(dec, strlen(dec), enc, sizeof enc));
        REQUIRE(xtext_decode(enc, strlen(enc), dec2, sizeof dec2));
        REQUIRE(strcmp(dec, dec2) == 0);
    } else if (!xtext_valid(s, len)) {
        REQUIRE(!xtext_decode(s, len, dec, sizeof dec));
    }
    /* small buffers fail cleanly and stay terminated */
    char small[5];
    xtext_encode(s, len, small, sizeof small);
    REQUIRE(terminated(small, sizeof small));
    xtext_decode(s, len, small, sizeof small);
    REQUIRE(terminated(small, sizeof small));
}

static void check_domain(const char *s, size_t len)
{
    bool ascii = smtp_valid_domain(s, len, false), utf8 = smtp_valid_domain(s, len, true);
    REQUIRE(!ascii || utf8);
    if (utf8 && len <= SMTP_PATH_MAX - 4) {
        /* a valid domain is a valid mailbox domain */
        char arg[SMTP_PATH_MAX + 16];
        int n = snprintf(arg, sizeof arg, "TO:<a@%.*s>", (int)len, s);
        struct smtp_path p;
        const char *params;
        size_t plen;
        REQUIRE(n > 0 && smtp_parse_path_arg(arg, (size_t)n, "TO:", false, false, true, &p, &params,
                                             &plen) == PARSE_OK);
        REQUIRE(strlen(p.domain) == len && memcmp(p.domain, s, len) == 0);
    }
}

/* RFC 3339 times (RFC 4865 HOLDUNTIL, X-DELIVERY-TIME) and the ETRN argument. */
static void check_times_and_etrn(const char *s, size_t len)
{
    long long t, u;
    if (smtp_parse_rfc3339(s, len, &t) == PARSE_OK) {
        char buf[32];
        /* a parsed time formats (years 1..9999, give or take the offset) and parses back */
        if (smtp_format_rfc3339(t, buf, sizeof buf)) {
            REQUIRE(strlen(buf) == 20);
            REQUIRE(smtp_parse_rfc3339(buf, 20, &u) == PARSE_OK && u == t);
        }
        REQUIRE(smtp_parse_delivery_time(s, len, 0, &u) == PARSE_OK && u == t);
    }
    if (smtp_parse_delivery_time(s, len, 1000, &t) == PARSE_OK && len > 0 && s[0] == '+')
        REQUIRE(t >= 1000 && t <= 1000 + 999999999LL);
    struct etrn_arg e;
    enum parse_result r = smtp_parse_etrn(s, len, &e);
    REQUIRE(terminated(e.node, sizeof e.node));
    if (r == PARSE_OK) {
        REQUIRE(e.node[0] != '\0');
        if (e.kind != ETRN_QUEUE)
            REQUIRE(smtp_valid_domain(e.node, strlen(e.node), false));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;

    struct smtp_cmdline cl;
    if (smtp_split_command(s, size, &cl) == PARSE_OK) {
        size_t v = strlen(cl.verb);
        REQUIRE(v >= 1 && v <= 15);
        for (size_t i = 0; i < v; i++)
            REQUIRE((cl.verb[i] >= 'A' && cl.verb[i] <= 'Z') || (cl.verb[i] >= '0' && cl.verb[i] <= '9') ||
                    cl.verb[i] == '-');
        REQUIRE(cl.arglen == 0 || (cl.arg == s + v + 1 && cl.arglen == size - v - 1));
        REQUIRE(!memchr(s, '\0', size));
        if (strcmp(cl.verb, "MAIL") == 0 || strcmp(cl.verb, "RCPT") == 0)
            for (int f = 0; f < 8; f++)
                check_path(cl.arg, cl.arglen, cl.verb[0] == 'M' ? "FROM:" : "TO:", f);
    }
    for (int f = 0; f < 8; f++) {
        check_path(s, size, "FROM:", f);
        check_path(s, size, "TO:", f);
    }
    check_params(s, size);
    check_xtext(s, size);
    check_domain(s, size);
    check_times_and_etrn(s, size);
    return 0;
}
