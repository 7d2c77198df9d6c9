/* test_data_reader.c - unit tests for data_reader.c: dot-unstuffing and end of data (RFC 5321
 * 4.5.2), the SMTP smuggling sequences, flags, line length, and pipelined bytes after the
 * end. Every case is also fed split at every position, byte by byte and in small chunks,
 * and must give the same result; a line-based reference decoder checks random inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_reader.h"

#define BUF_MAX 200000

struct run {
    char out[BUF_MAX];
    size_t outlen;
    size_t consumed;
    bool done;
    unsigned flags;
    unsigned long long total;
};

/* Feed in[0..len) as a first piece of `first` octets, then pieces of `chunk` octets, until
 * the input is used up or the data ended. Each piece gets an output buffer of exactly its
 * own size (heap, so ASan sees any overrun). */
static void run_chunked(const char *in, size_t len, size_t first, size_t chunk, struct run *res)
{
    struct data_reader r;
    data_reader_init(&r);
    res->outlen = res->consumed = 0;
    res->done = false;
    size_t piece = first;
    while (res->consumed < len && !res->done) {
        if (piece > len - res->consumed)
            piece = len - res->consumed;
        char *in_copy = malloc(piece ? piece : 1), *out = malloc(piece ? piece : 1);
        assert_non_null(in_copy);
        assert_non_null(out);
        memcpy(in_copy, in + res->consumed, piece);
        size_t outlen = 12345;
        bool done = true;
        size_t n = data_reader_feed(&r, in_copy, piece, out, &outlen, &done);
        assert_true(n <= piece);
        assert_true(outlen <= piece);
        if (!done)
            assert_int_equal(n, piece);
        assert_true(res->outlen + outlen <= sizeof res->out);
        memcpy(res->out + res->outlen, out, outlen);
        res->outlen += outlen;
        res->consumed += n;
        res->done = done;
        free(in_copy);
        free(out);
        piece = chunk;
    }
    res->flags = r.flags;
    res->total = r.total;
    if (res->done) { /* once done, the reader takes nothing more */
        char y[4];
        size_t outlen = 99;
        bool done = false;
        assert_int_equal(data_reader_feed(&r, "abc", 3, y, &outlen, &done), 0);
        assert_true(done);
        assert_int_equal(outlen, 0);
    }
}

static struct run one, other; /* large: keep them off the stack */

/* Compare a split run against the one-shot run. Output is identical once the data has ended;
 * before that a split run may still owe the last octet (see data_reader.c). */
static void same_result(const struct run *a, const struct run *b, const char *how, size_t k)
{
    if (a->done != b->done || a->consumed != b->consumed || a->flags != b->flags)
        fail_msg("%s %zu: done %d/%d consumed %zu/%zu flags %u/%u", how, k, a->done, b->done,
                 a->consumed, b->consumed, a->flags, b->flags);
    if (a->done) {
        if (a->outlen != b->outlen || memcmp(a->out, b->out, a->outlen) != 0)
            fail_msg("%s %zu: output differs (%zu vs %zu octets)", how, k, a->outlen, b->outlen);
    } else {
        if (b->outlen > a->outlen || a->outlen - b->outlen > 1 ||
            memcmp(a->out, b->out, b->outlen) != 0)
            fail_msg("%s %zu: output is not the one-shot output (%zu vs %zu octets)", how, k,
                     a->outlen, b->outlen);
    }
    assert_int_equal(b->total, b->outlen);
}

/* Run in every way and check against the expectation. want_out NULL: not checked. */
static void check(const char *in, size_t len, const char *want_out, size_t want_outlen,
                  size_t want_consumed, bool want_done, unsigned want_flags)
{
    run_chunked(in, len, len, len, &one);
    if (one.done != want_done)
        fail_msg("done %d, want %d", one.done, want_done);
    if (one.consumed != want_consumed)
        fail_msg("consumed %zu, want %zu", one.consumed, want_consumed);
    if (one.flags != want_flags)
        fail_msg("flags %#x, want %#x", one.flags, want_flags);
    if (want_out && (one.outlen != want_outlen || memcmp(one.out, want_out, want_outlen) != 0))
        fail_msg("output '%.*s' (%zu), want '%.*s' (%zu)", (int)one.outlen, one.out, one.outlen,
                 (int)want_outlen, want_out, want_outlen);
    assert_int_equal(one.total, one.outlen);
    for (size_t k = 0; k <= len; k++) {
        run_chunked(in, len, k, len, &other);
        same_result(&one, &other, "split at", k);
    }
    static const size_t chunks[] = {1, 2, 3, 5, 7, 64};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        run_chunked(in, len, chunks[i], chunks[i], &other);
        same_result(&one, &other, "chunk", chunks[i]);
    }
}

#define CHECK(in, out, consumed, done, flags) \
    check(in, sizeof(in) - 1, out, sizeof(out) - 1, consumed, done, flags)

/* ---- basics ----------------------------------------------------------------------------- */

static void empty_message(void **state)
{
    (void)state;
    CHECK(".\r\n", "", 3, true, 0);
}

static void empty_input(void **state)
{
    (void)state;
    struct data_reader r;
    data_reader_init(&r);
    char out[1];
    size_t outlen = 7;
    bool done = true;
    assert_int_equal(data_reader_feed(&r, "", 0, out, &outlen, &done), 0);
    assert_int_equal(outlen, 0);
    assert_false(done);
}

static void simple_message(void **state)
{
    (void)state;
    CHECK("Subject: hi\r\n\r\nHello\r\n.\r\n", "Subject: hi\r\n\r\nHello\r\n", 25, true, 0);
}

static void empty_lines(void **state)
{
    (void)state;
    CHECK("\r\n.\r\n", "\r\n", 5, true, 0);
    CHECK("\r\n\r\n\r\n.\r\n", "\r\n\r\n\r\n", 9, true, 0);
}

static void incomplete_data(void **state)
{
    (void)state;
    CHECK("abc", "abc", 3, false, 0);
    CHECK("abc\r", "abc\r", 4, false, 0); /* a trailing CR is not yet known to be bare */
    CHECK("abc\r\n", "abc\r\n", 5, false, 0);
    CHECK("abc\r\n.", "abc\r\n", 6, false, 0);
    CHECK("abc\r\n.\r", "abc\r\n", 7, false, 0);
    CHECK(".", "", 1, false, 0);
    CHECK(".\r", "", 2, false, 0);
}

static void total_counts_output(void **state)
{
    (void)state;
    struct data_reader r;
    data_reader_init(&r);
    char out[64];
    size_t outlen;
    bool done;
    const char *a = "ab\r\n..c\r\n";
    assert_int_equal(data_reader_feed(&r, a, strlen(a), out, &outlen, &done), strlen(a));
    assert_false(done);
    assert_int_equal(outlen, 8);
    assert_int_equal(r.total, 8);
    assert_int_equal(data_reader_feed(&r, ".\r\n", 3, out, &outlen, &done), 3);
    assert_true(done);
    assert_int_equal(outlen, 0);
    assert_int_equal(r.total, 8);
    /* init resets everything for the next message */
    data_reader_init(&r);
    assert_int_equal(r.total, 0);
    assert_int_equal(r.flags, 0);
    assert_int_equal(data_reader_feed(&r, ".\r\n", 3, out, &outlen, &done), 3);
    assert_true(done);
}

/* ---- dot-stuffing (RFC 5321 4.5.2) ------------------------------------------------------ */

static void dot_stuffing_removed(void **state)
{
    (void)state;
    CHECK("..foo\r\n.\r\n", ".foo\r\n", 10, true, 0);
    CHECK("..\r\n.\r\n", ".\r\n", 7, true, 0);
    CHECK("...\r\n.\r\n", "..\r\n", 8, true, 0);
    CHECK(". \r\n.\r\n", " \r\n", 7, true, 0);
    CHECK(".x\r\n.\r\n", "x\r\n", 7, true, 0);
    CHECK("a\r\n..\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", 13, true, 0);
}

static void dots_inside_lines_kept(void **state)
{
    (void)state;
    CHECK("a.b\r\n a.\r\n.\r\n", "a.b\r\n a.\r\n", 13, true, 0);
    CHECK("x.\r\n.\r\n", "x.\r\n", 7, true, 0);
    CHECK("a\r\n. \r\n.\r\n", "a\r\n \r\n", 10, true, 0);
}

static void dot_then_bare_cr(void **state)
{
    (void)state;
    /* ".<CR>x" is a stuffed line whose CR is bare; the dot still goes. This is the case
     * where a split run owes an octet for a while. */
    CHECK(".\rx\r\n.\r\n", "\rx\r\n", 8, true, DATA_BARE_CR);
    CHECK("a\r\n.\r\r\n.\r\n", "a\r\n\r\r\n", 10, true, DATA_BARE_CR);
    CHECK(".\r.\r\n.\r\n", "\r.\r\n", 8, true, DATA_BARE_CR);
    CHECK(".\rxyzxyzxyz\r\n..a\r\n.\r\n", "\rxyzxyzxyz\r\n.a\r\n", 21, true, DATA_BARE_CR);
}

static void owed_octet_is_delivered(void **state)
{
    (void)state;
    /* ".<CR>" in one call, then "x...": the CR and x are both due but the second call may
     * write only as many octets as it got; nothing may be lost or exceed the buffer. */
    struct data_reader r;
    data_reader_init(&r);
    char out[16];
    size_t outlen, got = 0;
    bool done;
    char all[64];
    assert_int_equal(data_reader_feed(&r, ".\r", 2, out, &outlen, &done), 2);
    assert_int_equal(outlen, 0);
    assert_int_equal(data_reader_feed(&r, "x", 1, out, &outlen, &done), 1);
    assert_int_equal(outlen, 1);
    memcpy(all + got, out, outlen), got += outlen;
    assert_int_equal(data_reader_feed(&r, "y", 1, out, &outlen, &done), 1);
    assert_int_equal(outlen, 1);
    memcpy(all + got, out, outlen), got += outlen;
    assert_int_equal(data_reader_feed(&r, "\r\n.\r\nNEXT", 9, out, &outlen, &done), 5);
    assert_true(done);
    memcpy(all + got, out, outlen), got += outlen;
    assert_int_equal(got, 5);
    assert_memory_equal(all, "\rxy\r\n", 5);
    assert_int_equal(r.total, 5);
    assert_int_equal(r.flags, DATA_BARE_CR);
}

/* ---- end of data and pipelining --------------------------------------------------------- */

static void pipelined_after_end(void **state)
{
    (void)state;
    CHECK("Hi\r\n.\r\nQUIT\r\n", "Hi\r\n", 7, true, 0);
    CHECK(".\r\nRSET\r\n", "", 3, true, 0);
    CHECK("a\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n", "a\r\n", 6, true, 0);
    /* whatever follows is not looked at: not even bare LFs set flags */
    CHECK("a\r\n.\r\n\n\r\0\x80", "a\r\n", 6, true, 0);
    /* a second terminator right after is the next command's business */
    CHECK("a\r\n.\r\n.\r\n", "a\r\n", 6, true, 0);
}

static void crlf_split_across_feeds(void **state)
{
    (void)state;
    struct data_reader r;
    data_reader_init(&r);
    char out[16];
    size_t outlen;
    bool done;
    assert_int_equal(data_reader_feed(&r, "a\r", 2, out, &outlen, &done), 2);
    assert_false(done);
    assert_int_equal(data_reader_feed(&r, "\n.", 2, out, &outlen, &done), 2);
    assert_false(done);
    assert_int_equal(data_reader_feed(&r, "\r", 1, out, &outlen, &done), 1);
    assert_false(done);
    assert_int_equal(data_reader_feed(&r, "\nX", 2, out, &outlen, &done), 1);
    assert_true(done);
    assert_int_equal(r.flags, 0);
    assert_int_equal(r.total, 3);
}

/* The SMTP smuggling sequences (CVE-2023-51764/-51765/-51766 and friends): a sender hides
 * "<x>.<y>MAIL FROM:..." in the data hoping a lenient receiver ends the message there. None
 * of them may end the data; only the real <CRLF>.<CRLF> at the end does. */
static void smuggling_sequences(void **state)
{
    (void)state;
    static const struct {
        const char *seq;
        unsigned flags;
    } seqs[] = {
        {"\n.\r\n", DATA_BARE_LF},
        {"\r.\r\n", DATA_BARE_CR},
        {"\n.\n", DATA_BARE_LF},
        {"\r\n.\n", DATA_BARE_LF},
        {"\r\n.\r", DATA_BARE_CR},
        {"\r.\n", DATA_BARE_CR | DATA_BARE_LF},
        {"\n.\r", DATA_BARE_LF | DATA_BARE_CR},
        {"\r.\r", DATA_BARE_CR},
        {"\r\n.\r\r\n", DATA_BARE_CR},
        {"\r\n\0.\r\n", DATA_NUL},
        {"\r\n .\r\n", 0},
    };
    const char *head = "Subject: x\r\n\r\nhello";
    const char *evil = "MAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\nforged\r\n";
    const char *tail = ".\r\nQUIT\r\n";
    for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
        char in[512];
        size_t seqlen = strlen(seqs[i].seq);
        if (seqs[i].flags & DATA_NUL)
            seqlen = 6;
        size_t n = 0;
        memcpy(in + n, head, strlen(head)), n += strlen(head);
        memcpy(in + n, seqs[i].seq, seqlen), n += seqlen;
        memcpy(in + n, evil, strlen(evil)), n += strlen(evil);
        size_t end = n + 3;
        memcpy(in + n, tail, strlen(tail)), n += strlen(tail);
        check(in, n, NULL, 0, end, true, seqs[i].flags);
        /* the forged commands are message content */
        if (!memmem(one.out, one.outlen, "MAIL FROM:<evil@x>\r\n", 20))
            fail_msg("sequence %zu: forged MAIL FROM is not in the content", i);
        /* and without the real terminator the data never ends */
        check(in, end - 3, NULL, 0, end - 3, false, seqs[i].flags);
    }
}

static void real_terminator_after_bare_cr(void **state)
{
    (void)state;
    /* "<CR><CR><LF>.<CRLF>" contains a genuine <CRLF>.<CRLF>: the first CR is bare content. */
    CHECK("a\r\r\n.\r\nX", "a\r\r\n", 7, true, DATA_BARE_CR);
}

/* ---- flags ------------------------------------------------------------------------------ */

static void flag_bare_lf(void **state)
{
    (void)state;
    CHECK("a\nb\r\n.\r\n", "a\nb\r\n", 8, true, DATA_BARE_LF);
    CHECK("\n.\r\n.\r\n", "\n.\r\n", 7, true, DATA_BARE_LF);
    CHECK(".\n.\r\n", "\n.\r\n", 5, false, DATA_BARE_LF); /* ".<LF>" is a stuffed line */
    CHECK("a\n\n\r\n.\r\n", "a\n\n\r\n", 8, true, DATA_BARE_LF);
}

static void flag_bare_cr(void **state)
{
    (void)state;
    CHECK("a\rb\r\n.\r\n", "a\rb\r\n", 8, true, DATA_BARE_CR);
    CHECK("\r\r\r\n.\r\n", "\r\r\r\n", 7, true, DATA_BARE_CR);
    CHECK("a\r", "a\r", 2, false, 0);
    CHECK("a\rb", "a\rb", 3, false, DATA_BARE_CR);
}

static void flag_nul_and_8bit(void **state)
{
    (void)state;
    CHECK("a\0b\r\n.\r\n", "a\0b\r\n", 8, true, DATA_NUL);
    CHECK("\0\r\n.\r\n", "\0\r\n", 6, true, DATA_NUL);
    CHECK("caf\xc3\xa9\r\n.\r\n", "caf\xc3\xa9\r\n", 10, true, DATA_8BIT);
    CHECK(".\xff\r\n.\r\n", "\xff\r\n", 7, true, DATA_8BIT);
    CHECK("\x80\0\n\r\n.\r\n", "\x80\0\n\r\n", 8, true, DATA_8BIT | DATA_NUL | DATA_BARE_LF);
    CHECK("clean\r\n.\r\n", "clean\r\n", 10, true, 0);
}

static char *line_of(char *buf, size_t n, const char *rest)
{
    memset(buf, 'x', n);
    strcpy(buf + n, rest);
    return buf;
}

static void flag_long_line(void **state)
{
    (void)state;
    static char in[5000];
    /* 998 + CRLF = 1000 octets: the limit exactly */
    line_of(in, 998, "\r\n.\r\n");
    check(in, strlen(in), NULL, 0, strlen(in), true, 0);
    line_of(in, 999, "\r\n.\r\n");
    check(in, strlen(in), NULL, 0, strlen(in), true, DATA_LONG_LINE);
    /* counted as received, so a stuffing dot counts */
    line_of(in, 998, "\r\n.\r\n");
    in[0] = '.';
    check(in, strlen(in), NULL, 0, strlen(in), true, 0);
    memmove(in + 1, in, strlen(in) + 1);
    in[0] = '.';
    check(in, strlen(in), NULL, 0, strlen(in), true, DATA_LONG_LINE);
    assert_int_equal(one.outlen, 1000);
    /* the flag sticks once set; short lines after do not clear it */
    line_of(in, 1500, "\r\nshort\r\n.\r\n");
    check(in, strlen(in), NULL, 0, strlen(in), true, DATA_LONG_LINE);
    /* an unfinished over-long line is already flagged */
    line_of(in, 1001, "");
    check(in, strlen(in), NULL, 0, strlen(in), false, DATA_LONG_LINE);
    /* bare LFs do not end lines, so they do not reset the count */
    in[0] = '\0';
    for (int i = 0; i < 600; i++)
        strcat(in, "a\n");
    strcat(in, "\r\n.\r\n");
    check(in, strlen(in), NULL, 0, strlen(in), true, DATA_LONG_LINE | DATA_BARE_LF);
    /* many lines of exactly 1000 octets are fine */
    in[0] = '\0';
    for (int i = 0; i < 4; i++)
        line_of(in + strlen(in), 998, "\r\n");
    strcat(in, ".\r\n");
    check(in, strlen(in), NULL, 0, strlen(in), true, 0);
}

/* ---- against a reference decoder -------------------------------------------------------- */

/* A straightforward whole-buffer decoder written from RFC 5321 4.5.2: split at CRLF, stop at
 * ".CRLF", drop a leading dot. Returns consumed, fills out/flags/done. */
static size_t reference(const unsigned char *in, size_t len, char *out, size_t *outlen,
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
        size_t end = complete ? e + 2 : len; /* line is in[pos..end) */
        if (complete && end - pos == 3 && in[pos] == '.') {
            pos = end;
            *done = true;
            break;
        }
        size_t from = pos;
        if (in[pos] == '.') {
            from++;
            if (!complete && (len - pos == 1 || (len - pos == 2 && in[pos + 1] == '\r')))
                from = len; /* "." or ".<CR>": undecided, nothing written yet */
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

static uint32_t rng_state = 12345;

static uint32_t rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

static void random_against_reference(void **state)
{
    (void)state;
    static const char alphabet[] = "..\r\r\r\n\n\nab \0\x80";
    static unsigned char in[3000];
    static char ref[3000];
    for (int iter = 0; iter < 400; iter++) {
        size_t len = rng() % (iter < 300 ? 40 : sizeof in);
        for (size_t i = 0; i < len; i++)
            in[i] = (unsigned char)alphabet[rng() % (sizeof alphabet - 1)];
        size_t reflen;
        bool done;
        unsigned flags;
        size_t consumed = reference(in, len, ref, &reflen, &done, &flags);
        if (len <= 40)
            check((const char *)in, len, ref, reflen, consumed, done, flags);
        else {
            run_chunked((const char *)in, len, len, len, &one);
            assert_int_equal(one.consumed, consumed);
            assert_int_equal(one.done, done);
            assert_int_equal(one.flags, flags);
            assert_int_equal(one.outlen, reflen);
            assert_memory_equal(one.out, ref, reflen);
            size_t chunk = 1 + rng() % 17;
            run_chunked((const char *)in, len, chunk, chunk, &other);
            same_result(&one, &other, "random chunk", chunk);
        }
    }
}

static void large_message(void **state)
{
    (void)state;
    /* ~150 KB of lines, every 7th starting with a stuffed dot, fed in odd-sized pieces. */
    static char in[BUF_MAX], want[BUF_MAX];
    size_t n = 0, w = 0;
    for (int line = 0; n < 150000; line++) {
        int len = line % 97;
        if (line % 7 == 0) {
            in[n++] = '.';
            in[n++] = '.';
            want[w++] = '.';
        }
        for (int i = 0; i < len; i++)
            in[n++] = want[w++] = (char)('a' + (line + i) % 26);
        memcpy(in + n, "\r\n", 2), n += 2;
        memcpy(want + w, "\r\n", 2), w += 2;
    }
    memcpy(in + n, ".\r\nQUIT\r\n", 9);
    size_t end = n + 3;
    n += 9;
    static const size_t chunks[] = {1, 13, 512, 4096, 16384, BUF_MAX};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        run_chunked(in, n, chunks[i], chunks[i], &other);
        assert_true(other.done);
        assert_int_equal(other.consumed, end);
        assert_int_equal(other.flags, 0);
        assert_int_equal(other.outlen, w);
        assert_memory_equal(other.out, want, w);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_message),
        cmocka_unit_test(empty_input),
        cmocka_unit_test(simple_message),
        cmocka_unit_test(empty_lines),
        cmocka_unit_test(incomplete_data),
        cmocka_unit_test(total_counts_output),
        cmocka_unit_test(dot_stuffing_removed),
        cmocka_unit_test(dots_inside_lines_kept),
        cmocka_unit_test(dot_then_bare_cr),
        cmocka_unit_test(owed_octet_is_delivered),
        cmocka_unit_test(pipelined_after_end),
        cmocka_unit_test(crlf_split_across_feeds),
        cmocka_unit_test(smuggling_sequences),
        cmocka_unit_test(real_terminator_after_bare_cr),
        cmocka_unit_test(flag_bare_lf),
        cmocka_unit_test(flag_bare_cr),
        cmocka_unit_test(flag_nul_and_8bit),
        cmocka_unit_test(flag_long_line),
        cmocka_unit_test(random_against_reference),
        cmocka_unit_test(large_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
