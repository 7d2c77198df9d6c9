/* fuzz_data_reader.c - libFuzzer target for data_reader.c (RFC 5321 4.5.2). The first 4
 * octets seed the split pattern, the rest is the DATA stream. Checks that feeding in random
 * pieces gives the one-shot result (consumed, done, flags, content; before the end a split
 * run may still owe its last octet), that no call writes more than it was given, and that
 * the one-shot result equals a simple line-based reference decoder. Any violation aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_reader.h"
#include "fuzz.h"

/* Whole-buffer decoder straight from RFC 5321 4.5.2: lines end at CRLF, ".CRLF" ends the
 * data, a leading dot is dropped. A trailing "." or ".<CR>" is undecided, so not written. */
static size_t reference(const unsigned char *in, size_t len, unsigned char *out, size_t *outlen,
                        bool *done, unsigned *flags)
{
    size_t pos = 0, o = 0;
    *done = false;
    *flags = 0;
    while (pos < len) {
        size_t e = pos;
        while (e + 1 < len && !(in[e] == '\r' && in[e + 1] == '\n'))
            e++;
        bool complete = e + 1 < len;
        size_t end = complete ? e + 2 : len;
        if (complete && end - pos == 3 && in[pos] == '.') {
            pos = end;
            *done = true;
            break;
        }
        size_t from = pos;
        if (in[pos] == '.') {
            from++;
            if (!complete && (len - pos == 1 || (len - pos == 2 && in[pos + 1] == '\r')))
                from = len;
        }
        memcpy(out + o, in + from, end - from);
        o += end - from;
        if (end - pos > 1000)
            *flags |= DATA_LONG_LINE;
        pos = end;
    }
    for (size_t i = 0; i < pos; i++) {
        if (in[i] == 0)
            *flags |= DATA_NUL;
        if (in[i] >= 0x80)
            *flags |= DATA_8BIT;
        if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
            *flags |= DATA_BARE_LF;
        if (in[i] == '\r' && i + 1 < pos && in[i + 1] != '\n')
            *flags |= DATA_BARE_CR;
    }
    *outlen = o;
    return pos;
}

struct result {
    size_t consumed, outlen;
    bool done;
    unsigned flags;
};

/* Feed in pieces chosen by the seed (seed 0: all at once). Each piece is a fresh heap copy
 * with an output buffer of exactly the piece's size, so ASan catches any overrun. */
static void feed(const unsigned char *in, size_t len, uint32_t seed, unsigned char *out,
                 struct result *res)
{
    struct data_reader r;
    data_reader_init(&r);
    memset(res, 0, sizeof *res);
    uint32_t x = seed;
    while (!res->done && res->consumed < len) {
        size_t piece = len - res->consumed;
        if (seed) {
            x = x * 1664525u + 1013904223u;
            size_t max = (x >> 28) < 12 ? 4 : 300; /* mostly tiny pieces, sometimes 0 */
            size_t want = (x >> 8) % (max + 1);
            if (want < piece)
                piece = want;
        }
        unsigned char *ibuf = malloc(piece ? piece : 1), *obuf = malloc(piece ? piece : 1);
        REQUIRE(ibuf && obuf);
        memcpy(ibuf, in + res->consumed, piece);
        size_t outlen = (size_t)-1;
        bool done = false;
        size_t n = data_reader_feed(&r, (const char *)ibuf, piece, (char *)obuf, &outlen, &done);
        REQUIRE(n <= piece);
        REQUIRE(outlen <= piece);
        REQUIRE(done || n == piece);
        memcpy(out + res->outlen, obuf, outlen);
        res->outlen += outlen;
        res->consumed += n;
        res->done = done;
        free(ibuf);
        free(obuf);
    }
    res->flags = r.flags;
    REQUIRE(r.total == res->outlen);
    REQUIRE(res->outlen <= res->consumed);
    if (res->done) {
        size_t outlen;
        bool done;
        unsigned char o[1];
        REQUIRE(data_reader_feed(&r, "x", 1, (char *)o, &outlen, &done) == 0 && done && outlen == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    uint32_t seed;
    memcpy(&seed, data, 4);
    seed |= 1; /* never 0: that means one-shot */
    const unsigned char *in = data + 4;
    size_t len = size - 4;

    unsigned char *a = malloc(len + 1), *b = malloc(len + 1), *ref = malloc(len + 1);
    REQUIRE(a && b && ref);
    struct result one, split;
    feed(in, len, 0, a, &one);

    size_t reflen;
    bool done;
    unsigned flags;
    size_t consumed = reference(in, len, ref, &reflen, &done, &flags);
    REQUIRE(one.consumed == consumed);
    REQUIRE(one.done == done);
    REQUIRE(one.flags == flags);
    REQUIRE(one.outlen == reflen && memcmp(a, ref, reflen) == 0);

    for (int round = 0; round < 3; round++) {
        feed(in, len, seed + 0x9E3779B9u * (uint32_t)round, b, &split);
        REQUIRE(split.consumed == one.consumed);
        REQUIRE(split.done == one.done);
        REQUIRE(split.flags == one.flags);
        if (one.done)
            REQUIRE(split.outlen == one.outlen);
        else
            REQUIRE(split.outlen <= one.outlen && one.outlen - split.outlen <= 1);
        REQUIRE(memcmp(a, b, split.outlen) == 0);
    }
    free(a);
    free(b);
    free(ref);
    return 0;
}
