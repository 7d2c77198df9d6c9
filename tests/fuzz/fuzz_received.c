/* fuzz_received.c - libFuzzer target for the Received: header (received.c, RFC 5321 4.4):
 * the HELO argument and the AUTH user name are client-supplied text copied into a header
 * of every message. Input: "helo\0user" (no NUL: helo only, not authenticated). The header
 * must end with CRLF, every CRLF must be followed by folding white space or the end (no
 * injected header line), and there must be no bare CR or LF. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "received.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1);
    REQUIRE(in);
    memcpy(in, data, size);
    in[size] = '\0';
    const char *user = NULL;
    size_t hl = strlen(in);
    if (hl < size)
        user = in + hl + 1;
    for (int variant = 0; variant < 2; variant++) {
        struct received_info ri = {
            .helo = in,
            .client_addr = "192.0.2.1",
            .by = "mx.test",
            .protocol = received_protocol(variant, user != NULL, user != NULL, variant),
            .qid = "0123456789ABCDEF",
            .tls = variant ? "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" : NULL,
            .for_rcpt = variant ? "demo@example.test" : NULL,
            .when = (time_t)1700000000 + (time_t)size * 86400,
            .auth_user = user,
        };
        char buf[2048];
        size_t n = received_format(buf, sizeof buf, &ri);
        REQUIRE(n > 0 && n < sizeof buf && strlen(buf) == n);
        REQUIRE(strncmp(buf, "Received: from ", 15) == 0);
        REQUIRE(buf[n - 2] == '\r' && buf[n - 1] == '\n');
        for (size_t i = 0; i < n; i++) {
            if (buf[i] == '\r') {
                REQUIRE(buf[i + 1] == '\n');
                REQUIRE(i + 2 == n || buf[i + 2] == '\t' || buf[i + 2] == ' ');
            } else if (buf[i] == '\n') {
                REQUIRE(i > 0 && buf[i - 1] == '\r');
            } else {
                REQUIRE(buf[i] == '\t' || ((unsigned char)buf[i] >= 0x20 && (unsigned char)buf[i] < 0x7f));
            }
        }
        /* a too-small buffer is refused, not overrun */
        char small[64];
        REQUIRE(received_format(small, sizeof small, &ri) == 0);
    }
    free(in);
    return 0;
}
