/* sendmail_msg.h - the pure part of `tern sendmail`: turn what a program piped in into a
 * message fit for SMTP, and find its recipients with -t.
 *
 * Input is whatever cron, PHP's mail() or a script writes: LF or CRLF line ends, maybe a
 * leading mbox "From " line, maybe no header at all, maybe lines over 998 octets. Output is
 * CRLF text with lines of at most 998 octets (RFC 5322 2.1.1; long header lines are folded at
 * whitespace, RFC 5322 2.2.3), Bcc: removed, and From:, Date: and Message-ID: added when
 * missing (RFC 5322 3.6, 6409 8.1-8.3). Address lists follow RFC 5322 3.4 (display names,
 * angle addresses, groups, quoted strings, comments). No I/O: unit-tested and fuzzable. */
#ifndef TERN_SENDMAIL_MSG_H
#define TERN_SENDMAIL_MSG_H

#include <stdbool.h>
#include <stddef.h>

struct sm_opts {
    bool extract;            /* -t: collect To/Cc/Bcc addresses */
    const char *from;        /* the From: address to add when missing */
    const char *full_name;   /* -F: its display name, or NULL */
    const char *date;        /* the Date: value to add when missing */
    const char *message_id;  /* the Message-ID: value (with <>) to add when missing */
};

struct sm_msg {
    char *data;              /* CRLF text, not dot-stuffed */
    size_t len;
    char **rcpts;            /* with -t: the header addresses, in order, no duplicates */
    size_t nrcpts;
    bool eightbit;           /* some octet >= 0x80 */
};

/* Without -i, a line consisting of "." alone ends the input: the length before it (len if
 * there is none). */
size_t sm_dot_end(const char *in, size_t len);
/* Prepare a message. Always succeeds (allocation failure exits); free with sm_msg_free. */
void sm_prepare(const char *in, size_t len, const struct sm_opts *o, struct sm_msg *out);
void sm_msg_free(struct sm_msg *m);
/* Parse an RFC 5322 address list (a header value, unfolded or not) and call fn with each
 * addr-spec (display names, comments and group names removed). Returns the count. */
size_t sm_addresses(const char *value, size_t len, void (*fn)(const char *addr, void *arg),
                    void *arg);

#endif
