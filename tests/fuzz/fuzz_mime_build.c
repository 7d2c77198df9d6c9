/* fuzz_mime_build.c - libFuzzer target for src/mime_build.c (the multipart/mixed message of
 * `tern send --attach`, RFC 2045/2046, RFC 2183/2231 file names). The input is split at NUL
 * bytes into: the text, the boundary seed, then name, type and content of up to 4
 * attachments. Invariants: with an empty text every output line is printable ASCII ending
 * in CRLF, at most 78 characters but for a long Content-Type (names and types never leak
 * raw bytes or line breaks);
 * with the fuzzed text the boundary occurs nowhere in the text, there is one delimiter per
 * part and the close delimiter ends the message. Any violation aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "mime_build.h"

#define MAX_FIELDS 14

static size_t count(const char *hay, size_t len, const char *needle)
{
    size_t n = 0, nl = strlen(needle);
    for (size_t i = 0; nl <= len && i + nl <= len; i++)
        if (memcmp(hay + i, needle, nl) == 0)
            n++;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1);
    if (!in)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    const char *f[MAX_FIELDS];
    size_t flen[MAX_FIELDS], nf = 0, start = 0;
    for (size_t i = 0; i <= size && nf < MAX_FIELDS; i++) {
        if (i == size || in[i] == '\0') {
            f[nf] = in + start;
            flen[nf++] = i - start;
            start = i + 1;
        }
    }
    struct mime_attachment att[4];
    size_t natt = 0;
    for (size_t k = 2; k + 2 < nf && natt < 4; k += 3)
        att[natt++] = (struct mime_attachment){.name = f[k], .type = f[k + 1][0] ? f[k + 1] : NULL,
                                               .data = (const unsigned char *)f[k + 2],
                                               .len = flen[k + 2]};
    const char *seed = nf > 1 ? f[1] : "";

    /* 1: no text: every line is short printable ASCII */
    size_t len;
    char *m = mime_build_mixed("", 0, att, natt, seed, &len);
    REQUIRE(m && strlen(m) == len && len >= 2 && m[len - 2] == '\r' && m[len - 1] == '\n');
    for (size_t p = 0; p < len;) {
        const char *nl = memchr(m + p, '\n', len - p);
        REQUIRE(nl && nl > m + p && nl[-1] == '\r');
        size_t ll = (size_t)(nl - (m + p)) - 1;
        REQUIRE(ll <= 998); /* RFC 5322 2.1.1; the folded file name lines stay below 78 */
        REQUIRE(ll <= 78 || strncmp(m + p, "Content-Type: ", 14) == 0);
        for (size_t i = 0; i < ll; i++)
            REQUIRE(m[p + i] >= 0x20 && m[p + i] < 0x7f);
        p = (size_t)(nl - m) + 1;
    }
    free(m);

    /* 2: the fuzzed text: the boundary avoids it, the delimiters are all there */
    m = mime_build_mixed(f[0], flen[0], att, natt, seed, &len);
    REQUIRE(m);
    const char *b = strstr(m, "boundary=\"");
    REQUIRE(b);
    b += 10;
    const char *e = strchr(b, '"');
    REQUIRE(e && e > b && e - b <= 70);
    char bnd[80], delim[90], close[92];
    memcpy(bnd, b, (size_t)(e - b));
    bnd[e - b] = '\0';
    REQUIRE(count(f[0], flen[0], bnd) == 0);
    snprintf(delim, sizeof delim, "\r\n--%s\r\n", bnd);
    snprintf(close, sizeof close, "\r\n--%s--\r\n", bnd);
    REQUIRE(count(m, len, delim) == 1 + natt);
    REQUIRE(count(m, len, close) == 1);
    REQUIRE(len > strlen(close) && strcmp(m + len - strlen(close), close) == 0);
    free(m);
    free(in);
    return 0;
}
