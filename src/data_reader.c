/* data_reader.c - incremental DATA decoder: dot-unstuffing and end-of-data detection
 * (RFC 5321 4.5.2 transparency, 4.1.1.4 DATA, 4.5.3.1.6 text line length).
 *
 * A byte-at-a-time state machine, so input may be split anywhere. Only CR LF ends a line;
 * the data ends at a line that is exactly ".", i.e. at <CRLF>.<CRLF> (or ".<CRLF>" right at
 * the start). Anything else - <LF>.<CRLF>, <CR>.<CRLF>, <LF>.<LF>, <CRLF>.<LF>, ... - is
 * content, flagged DATA_BARE_LF / DATA_BARE_CR, which is what defeats SMTP smuggling.
 *
 * Output never exceeds input within one call. The only octet that is held back is the CR
 * after a stuffing dot (".<CR>" might still become the terminator). When the next octet
 * shows it was not, both the CR and that octet are due, two octets for one: if the held CR
 * came from an earlier call, that call's input budget is gone, so the last octet due is
 * carried over ("owed") and written first in the next call, or as soon as an input octet
 * produces no output (a stuffing dot, or the terminator). At most one octet is ever owed:
 * holding a CR requires two output-free octets just before it, which pay off any debt. */
#include "data_reader.h"

#include <stdint.h>
#include <string.h>

#define LINE_MAX_OCTETS 1000 /* RFC 5321 4.5.3.1.6, including CRLF */

enum {
    S_BOL,        /* at the start of a line (and at the start of the data) */
    S_BOL_DOT,    /* "." at the start of a line, not written */
    S_BOL_DOT_CR, /* ".<CR>" at the start of a line, neither written */
    S_TEXT,       /* inside a line */
    S_CR,         /* a CR was written; LF would end the line */
    S_DONE,       /* <CRLF>.<CRLF> seen */
};

/* r->state packs the machine state (bits 0-7), whether an octet is owed (bit 8) and the
 * owed octet (bits 16-23). */
#define ST_MASK 0xFF
#define ST_OWED 0x100
#define ST_OWED_SHIFT 16

void data_reader_init(struct data_reader *r)
{
    memset(r, 0, sizeof *r);
    r->state = S_BOL;
}

/* Octets that need no state change: everything but CR, LF, NUL and 8-bit. */
static bool plain(unsigned char c)
{
    return c != '\r' && c != '\n' && c != '\0' && c < 0x80;
}

static size_t add_len(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

size_t data_reader_feed(struct data_reader *r, const char *in, size_t len, char *out,
                        size_t *outlen, bool *done)
{
    int st = r->state & ST_MASK;
    bool owed = (r->state & ST_OWED) != 0;
    char owed_c = (char)((r->state >> ST_OWED_SHIFT) & 0xFF);
    unsigned flags = r->flags;
    size_t line_len = r->line_len;
    size_t i = 0, o = 0;

    *outlen = 0;
    *done = st == S_DONE;
    if (st == S_DONE)
        return 0;

    while (i < len) {
        /* Fast path: copy a run of ordinary octets inside a line. o <= i holds whenever
         * nothing is owed, so the copy fits the budget. */
        if (st == S_TEXT && !owed) {
            size_t j = i;
            while (j < len && plain((unsigned char)in[j]))
                j++;
            if (j > i) {
                memcpy(out + o, in + i, j - i);
                o += j - i;
                line_len = add_len(line_len, j - i);
                if (line_len > LINE_MAX_OCTETS)
                    flags |= DATA_LONG_LINE;
                i = j;
                continue;
            }
        }

        unsigned char c = (unsigned char)in[i++];
        /* i octets consumed now, so i octets may have been written; at least one is free. */
        if (owed) {
            out[o++] = owed_c;
            owed = false;
        }
        if (c == '\0')
            flags |= DATA_NUL;
        else if (c >= 0x80)
            flags |= DATA_8BIT;
        line_len = add_len(line_len, 1);
        if (line_len > LINE_MAX_OCTETS)
            flags |= DATA_LONG_LINE;

        if (st == S_BOL) {
            if (c == '.') {
                st = S_BOL_DOT;
                continue;
            }
            st = S_TEXT;
        } else if (st == S_BOL_DOT) {
            if (c == '\r') {
                st = S_BOL_DOT_CR;
                continue;
            }
            st = S_TEXT; /* the stuffing dot is dropped (RFC 5321 4.5.2) */
        } else if (st == S_BOL_DOT_CR) {
            if (c == '\n') {
                st = S_DONE;
                line_len = 0;
                break;
            }
            /* ".<CR>x": dot dropped, the held CR was a bare one. */
            flags |= DATA_BARE_CR;
            out[o++] = '\r';
            st = S_TEXT;
        }

        /* st is S_TEXT or S_CR: c is content. */
        if (o < i) {
            out[o++] = (char)c;
        } else {
            owed = true;
            owed_c = (char)c;
        }
        if (c == '\r') {
            if (st == S_CR)
                flags |= DATA_BARE_CR;
            st = S_CR;
        } else if (c == '\n') {
            if (st == S_CR) {
                st = S_BOL;
                line_len = 0;
            } else {
                flags |= DATA_BARE_LF;
                st = S_TEXT;
            }
        } else {
            if (st == S_CR)
                flags |= DATA_BARE_CR;
            st = S_TEXT;
        }
    }

    r->state = st | (owed ? ST_OWED | ((unsigned char)owed_c << ST_OWED_SHIFT) : 0);
    r->flags = flags;
    r->line_len = line_len;
    r->total += o;
    *outlen = o;
    *done = st == S_DONE;
    return i;
}
