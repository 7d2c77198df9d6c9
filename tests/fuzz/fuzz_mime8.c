/* fuzz_mime8.c - libFuzzer target for mime8_convert_7bit: a queued message is whatever a
 * client sent, so malformed MIME (missing boundaries or headers, huge lines, deep nesting)
 * must be converted safely or refused, never crash. Checks: a converted message is 7-bit,
 * converting it again changes nothing, and for a single-part message the QP-decoded body
 * equals the original body (RFC 2045 6.7 round trip). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mime8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t body_off(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && p[i - 1] != '\n')
            continue;
        if (p[i] == '\n')
            return i + 1;
        if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
            return i + 2;
    }
    return n;
}

static size_t qp_decode(const char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] != '=') {
            out[o++] = in[i];
        } else if (i + 2 < n && in[i + 1] == '\r' && in[i + 2] == '\n') {
            i += 2;
        } else {
            const char *a = i + 2 < n ? memchr(hex, in[i + 1], 16) : NULL;
            const char *b = a ? memchr(hex, in[i + 2], 16) : NULL;
            if (!a || !b || !in[i + 1] || !in[i + 2])
                abort(); /* the encoder only writes "=XX" and soft breaks */
            out[o++] = (char)((a - hex) * 16 + (b - hex));
            i += 2;
        }
    }
    return o;
}

/* s occurs in p, ignoring case and CR/LF (which header unfolding removes) */
static bool contains_ci(const uint8_t *p, size_t n, const char *s)
{
    char *t = malloc(n + 1);
    if (!t)
        abort();
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] != '\r' && p[i] != '\n' && p[i] != 0)
            t[m++] = (char)p[i];
    t[m] = '\0';
    bool found = strcasestr(t, s) != NULL;
    free(t);
    return found;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *out = NULL;
    size_t len = 0;
    enum mime8_conv r = mime8_convert_7bit((const char *)data, size, &out, &len);
    if (r != MIME8_CONV_OK) {
        if (out)
            abort();
        return 0;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)out[i] >= 0x80)
            abort();
    char *again = NULL;
    size_t alen = 0;
    if (mime8_convert_7bit(out, len, &again, &alen) != MIME8_CONV_UNCHANGED || again)
        abort();
    /* single part (nothing that could be a multipart header) */
    if (!contains_ci(data, size, "multipart")) {
        size_t ib = body_off((const char *)data, size), ob = body_off(out, len);
        char *dec = malloc(len - ob + 1);
        if (!dec)
            abort();
        size_t dn = qp_decode(out + ob, len - ob, dec);
        if (dn != size - ib || memcmp(dec, data + ib, dn) != 0)
            abort();
        free(dec);
    }
    free(out);
    return 0;
}
