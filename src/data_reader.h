/* data_reader.h - the DATA transparency decoder (RFC 5321 4.5.2, 4.1.1.4), pure and incremental.
 *
 * Bytes arrive from the network in arbitrary pieces; the reader removes dot-stuffing and
 * finds the end of data. Only <CRLF>.<CRLF> ends the data: a bare LF or bare CR is never a
 * line end, so the SMTP smuggling sequences (<LF>.<CRLF>, <CR>.<CRLF>, <LF>.<LF>, ...)
 * cannot end the message early and start a second transaction. Bare CR/LF, NUL octets,
 * 8-bit octets and over-long lines are recorded in flags so the session can refuse the
 * message once the data has ended (the connection stays in sync either way). */
#ifndef TERN_DATA_READER_H
#define TERN_DATA_READER_H

#include <stdbool.h>
#include <stddef.h>

enum {
    DATA_BARE_LF = 1,     /* an LF not preceded by CR */
    DATA_BARE_CR = 2,     /* a CR not followed by LF */
    DATA_NUL = 4,         /* a NUL octet */
    DATA_8BIT = 8,        /* an octet >= 0x80 */
    DATA_LONG_LINE = 16,  /* a line longer than 1000 octets including CRLF (RFC 5321 4.5.3.1.6) */
};

struct data_reader {
    int state;            /* internal */
    size_t line_len;      /* octets in the current line so far, as received */
    unsigned flags;       /* DATA_* bits seen so far */
    unsigned long long total; /* content octets produced so far */
};

void data_reader_init(struct data_reader *r);

/* Consume up to len bytes of input. Unstuffed content is written to out, which must have
 * room for len bytes (output never exceeds input); *outlen receives how many were written.
 * Returns how many input bytes were consumed: all of them, or fewer when the end of data
 * was reached, in which case *done is set and the bytes after the terminating <CRLF>.<CRLF>
 * belong to the next command (pipelining). The content produced includes the CRLF that
 * ends the last line, not the terminating ".CRLF". */
size_t data_reader_feed(struct data_reader *r, const char *in, size_t len,
                        char *out, size_t *outlen, bool *done);

#endif
