/* fuzz_smtp_reply.c - libFuzzer target for the client side of SMTP replies (smtp_reply.c:
 * RFC 5321 4.2 reply lines, RFC 3463 enhanced status codes, RFC 5321 4.1.1.1 EHLO
 * capabilities, the explanations): what `tern send`, `tern check` and outbound delivery read
 * from remote servers. The input is split into lines at LF and fed reply after reply; every
 * complete reply goes through capability parsing and every explanation, which must stay
 * NUL-terminated and within the buffer. Any violation aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"
#include "fuzz.h"

static void use_reply(const struct smtp_reply *r)
{
    REQUIRE(r->code >= 200 && r->code <= 599 && r->nlines > 0);
    for (size_t i = 0; i <= r->nlines; i++)
        (void)strlen(smtp_reply_line_text(r, i));
    (void)strlen(smtp_reply_first_text(r));
    if (r->esc[0])
        REQUIRE(r->esc_class == 2 || r->esc_class == 4 || r->esc_class == 5);
    /* one stage per reply (the explanation scans the text for many words: all 13 stages
     * for every reply would slow the fuzzer tenfold) */
    enum smtp_stage st = (enum smtp_stage)((r->nlines + strlen(r->lines[0])) %
                                           (SMTP_STAGE_OTHER + 1));
    char small[40], big[2048];
    size_t need = smtp_reply_explain(r, st, small, sizeof small);
    REQUIRE(strlen(small) < sizeof small);
    size_t need2 = smtp_reply_explain(r, st, big, sizeof big);
    REQUIRE(need == need2);
    REQUIRE(strlen(big) == (need < sizeof big ? need : sizeof big - 1));
    struct smtp_caps caps;
    if (smtp_caps_parse(r, &caps)) {
        REQUIRE(caps.n < r->nlines);
        for (size_t i = 0; i < caps.n; i++) {
            REQUIRE(caps.v[i].keyword[0] && caps.v[i].params);
            REQUIRE(smtp_caps_find(&caps, caps.v[i].keyword) != NULL);
        }
        unsigned long long limit;
        bool has_size = smtp_caps_size(&caps, &limit);
        REQUIRE(has_size == (smtp_caps_find(&caps, "size") != NULL));
        static const char *const mechs[] = {"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256", ""};
        for (size_t i = 0; i < sizeof mechs / sizeof mechs[0]; i++)
            (void)smtp_caps_has_auth(&caps, mechs[i]);
        smtp_caps_free(&caps);
    } else {
        REQUIRE(r->code / 100 != 2);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    struct smtp_reply r;
    smtp_reply_init(&r);
    size_t pos = 0;
    while (pos < size) {
        const char *nl = memchr(in + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (in + pos)) : size - pos;
        /* a fresh heap copy of exactly the line, so ASan sees any read past it */
        char *line = malloc(len ? len : 1);
        REQUIRE(line);
        memcpy(line, in + pos, len);
        const char *why = NULL;
        enum smtp_feed f = smtp_reply_feed(&r, line, len, &why);
        free(line);
        pos += len + (nl ? 1 : 0);
        if (f == SMTP_FEED_BAD) {
            REQUIRE(why != NULL);
            smtp_reply_free(&r);
            smtp_reply_init(&r);
        } else if (f == SMTP_FEED_DONE) {
            REQUIRE(r.done);
            use_reply(&r);
            smtp_reply_free(&r);
            smtp_reply_init(&r);
        } else {
            REQUIRE(!r.done);
        }
    }
    smtp_reply_free(&r);

    /* the enhanced status code parser on its own, on a NUL-terminated copy */
    char *s = malloc(size + 1);
    REQUIRE(s);
    memcpy(s, data, size);
    s[size] = '\0';
    int c, sub, det;
    size_t n = smtp_esc_parse(s, &c, &sub, &det);
    REQUIRE(n <= strlen(s));
    if (n) {
        REQUIRE(c == 2 || c == 4 || c == 5);
        (void)smtp_esc_class_text(c);
        (void)smtp_esc_subject_text(sub);
        (void)smtp_esc_detail_text(sub, det);
    }
    free(s);
    return 0;
}
