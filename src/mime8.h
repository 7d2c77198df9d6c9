/* mime8.h - what the SMTP client may send to a given server, and how: pure helpers.
 *
 * - The content scan: does the message have 8-bit octets in its header or body, or octets
 *   that only BINARYMIME can carry (NUL, bare CR or LF, lines over 998 octets)?
 * - The decision (RFC 6152 3, RFC 6531 3.4, RFC 3030 3): send as declared, send without the
 *   BODY/SMTPUTF8 parameter because the content does not need it, or refuse with the
 *   enhanced status code of the bounce.
 * - The conversion for a server without 8BITMIME (RFC 6152 3, RFC 2045 6.7, RFC 2046 5.1):
 *   8-bit leaf MIME entities are re-encoded as quoted-printable; what cannot be converted
 *   (8-bit header fields, CTE binary, 8-bit inside message/ parts) is refused, and the
 *   caller bounces with 5.6.3 as before.
 * - The DATA encoder: dot-stuffing (RFC 5321 4.5.2) and CRLF line ends, incrementally. */
#ifndef TERN_MIME8_H
#define TERN_MIME8_H

#include <stdbool.h>
#include <stddef.h>

#include "smtp_parse.h"

struct mime8_scan {
    bool header_8bit;   /* an octet >= 0x80 in the header section */
    bool body_8bit;     /* ... in the body */
    bool binary;        /* NUL, bare CR, bare LF, or a line over 998 octets (without CRLF) */
    /* internal state */
    bool in_body;
    size_t line_len;
    int prev;           /* previous octet, -1 at the start */
    bool line_empty;
};

void mime8_scan_init(struct mime8_scan *s);
void mime8_scan_feed(struct mime8_scan *s, const void *buf, size_t len);

/* What the peer offers (from its EHLO reply). */
struct mime8_peer {
    bool eightbitmime;
    bool smtputf8;
    bool binarymime;
    bool chunking;
};

enum mime8_verdict {
    MIME8_SEND,         /* send with the parameters the envelope has */
    MIME8_SEND_PLAIN,   /* the content is 7-bit after all: send without BODY=8BITMIME */
    MIME8_FAIL_8BIT,    /* 5.6.3: 8-bit content, the peer lacks 8BITMIME, no conversion */
    MIME8_FAIL_BINARY,  /* 5.6.3: BINARYMIME content, the peer lacks BINARYMIME+CHUNKING */
    MIME8_FAIL_UTF8,    /* 5.6.7: SMTPUTF8 needed, the peer lacks it (RFC 6531 3.4) */
};

/* The BODY= and SMTPUTF8 parameters to send (valid with MIME8_SEND / MIME8_SEND_PLAIN). */
struct mime8_params {
    enum body_type body; /* BODY_UNSPEC: send no BODY parameter */
    bool smtputf8;
};

/* addrs_utf8: the sender or one of the recipients has non-ASCII octets. scan may be NULL
 * when the caller has not scanned (it is only needed when the peer lacks something: call
 * mime8_need_scan first). */
bool mime8_need_scan(enum body_type body, bool smtputf8, const struct mime8_peer *peer);
enum mime8_verdict mime8_decide(enum body_type body, bool smtputf8, bool addrs_utf8,
                                const struct mime8_peer *peer, const struct mime8_scan *scan,
                                struct mime8_params *out);
/* "5.6.3 ..." text of a failure verdict, for the bounce. */
const char *mime8_verdict_text(enum mime8_verdict v);

/* ---- 8-bit to 7-bit conversion (RFC 6152 3, RFC 2045 6.7, RFC 2046 5.1) ---- */

enum mime8_conv {
    MIME8_CONV_OK,          /* converted: *out holds the 7-bit message */
    MIME8_CONV_UNCHANGED,   /* no 8-bit octets at all: send as is (*out untouched) */
    MIME8_CONV_HEADER_8BIT, /* 8-bit octets in a header section (would need RFC 2047) */
    MIME8_CONV_BINARY,      /* 8-bit octets in a Content-Transfer-Encoding: binary entity */
    MIME8_CONV_MESSAGE,     /* 8-bit octets inside a message/ part (RFC 2046 5.2: no QP) */
    MIME8_CONV_MALFORMED,   /* 8-bit octets where no re-encoding is possible: in a part
                               labelled base64 / quoted-printable / unknown, in a preamble
                               or epilogue, or nesting too deep */
    MIME8_CONV_TOO_BIG,     /* the result would grow past 3.25 times the input + 64 KiB */
    MIME8_CONV_NOMEM,       /* out of memory (temporary) */
};

/* Convert a message (RFC 5322 header + body, CRLF lines) with 8-bit content to a 7-bit
 * MIME message whose decoded content is identical: each 8-bit leaf entity labelled 7bit,
 * 8bit or nothing gets "Content-Transfer-Encoding: quoted-printable" and a QP body; an
 * 8bit multipart becomes 7bit; "MIME-Version: 1.0" is added to the top header if missing.
 * Everything else is copied byte for byte. Pure: on MIME8_CONV_OK, *out is a malloc'd
 * buffer of *outlen octets (not NUL-terminated) that the caller frees. */
enum mime8_conv mime8_convert_7bit(const char *in, size_t len, char **out, size_t *outlen);
/* A short name of the outcome for logs and bounces ("header field with 8-bit octets"). */
const char *mime8_conv_text(enum mime8_conv c);

/* ---- DATA encoding (RFC 5321 4.5.2 transparency, 2.3.8 line ends) ---- */

struct dotstuff {
    bool bol;      /* at the beginning of a line */
    bool cr;       /* the previous input octet was CR */
};

void dotstuff_init(struct dotstuff *d);
/* Encode len input octets into out (capacity at least 2 * len + 2). A bare LF becomes CRLF,
 * a bare CR becomes CRLF, a '.' at the start of a line is doubled. Returns bytes written. */
size_t dotstuff_encode(struct dotstuff *d, const char *in, size_t len, char *out);
/* The end of data: CRLF if the content did not end with one, then ".\r\n". out needs 5
 * bytes. Returns bytes written. */
size_t dotstuff_finish(struct dotstuff *d, char *out);

#endif
