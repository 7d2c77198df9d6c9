/* fuzz_bounce.c - libFuzzer target for delivery status notifications (bounce.c, RFC 3464,
 * RFC 3461, RFC 6533): a DSN carries text from outside - a remote server's reply, the
 * client's ENVID and ORCPT, addresses - and the original message. Input: NUL-separated
 * fields "diagnostic\0reason\0orcpt\0envid\0remote_mta\0status\0content"; byte 0 of the
 * content picks the kind, RET=FULL and SMTPUTF8. The DSN must be CRLF-only when the
 * original is, and no line the DSN itself writes may exceed RFC 5322's 998 octets. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounce.h"
#include "fuzz.h"

/* true if every line ends with CRLF (no bare CR or LF) */
static bool crlf_only(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
            return false;
        if (s[i] == '\r' && (i + 1 >= len || s[i + 1] != '\n'))
            return false;
    }
    return true;
}

static size_t longest_line(const char *s, size_t len)
{
    size_t best = 0, cur = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n') {
            cur = 0;
            continue;
        }
        if (s[i] != '\r' && ++cur > best)
            best = cur;
    }
    return best;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1);
    REQUIRE(in);
    memcpy(in, data, size);
    in[size] = '\0';
    const char *f[7] = {"", "", "", "", "", "", ""};
    size_t pos = 0;
    for (int i = 0; i < 6 && pos <= size; i++) {
        f[i] = in + pos;
        pos += strlen(in + pos) + 1;
    }
    const char *content = pos < size ? in + pos : "";
    size_t clen = pos < size ? size - pos : 0;
    unsigned sel = clen ? (unsigned char)content[0] : 0;
    if (clen)
        content++, clen--;

    struct dsn_rcpt r[2] = {
        {.addr = "demo@example.test", .orcpt = f[2], .action = (enum dsn_action)(sel % 4),
         .status = f[5][0] ? f[5] : "5.1.1", .remote_mta = f[4], .diagnostic = f[0],
         .reason = f[1], .last_attempt = 1700000000},
        {.addr = "x@example.org", .orcpt = "", .action = DSN_ACTION_FAILED, .status = "4.4.1",
         .remote_mta = "", .diagnostic = "", .reason = f[1], .last_attempt = 0},
    };
    struct dsn_msg m = {
        .kind = (enum dsn_action)(sel % 4),
        .reporting_mta = "mx.test",
        .qid = "0123456789ABCDEF",
        .sender = "sender@example.org",
        .envid = f[3],
        .arrival = 1700000000,
        .now = 1700003600,
        .retry_until = 1700400000,
        .unique = "1",
        .content = content,
        .content_len = clen,
        .full = sel & 4,
        .utf8 = sel & 8,
    };
    size_t len = 0;
    char *dsn = dsn_build(&m, r, 1 + ((sel >> 4) & 1), &len);
    REQUIRE(dsn && strlen(dsn) <= len && dsn[len] == '\0');
    if (crlf_only(content, clen))
        REQUIRE(crlf_only(dsn, len));
    if (longest_line(content, clen) <= 998)
        REQUIRE(longest_line(dsn, len) <= 998);
    size_t hl = dsn_header_len(content, clen);
    REQUIRE(hl <= clen);
    (void)dsn_has_8bit(content, clen);
    free(dsn);
    free(in);
    return 0;
}
