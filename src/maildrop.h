/* maildrop.h - the maildrop file: a message `tern sendmail` leaves in <spool>/maildrop when
 * the server is not running, for the server's pickup (pickup.c) to submit later.
 *
 * The format is small and line based, written by an unprivileged user and therefore parsed
 * as untrusted input: the pickup never takes the submitter's identity from it (that is the
 * file's owner uid), only the envelope it asks for. No I/O here: unit-tested and fuzzed.
 *
 *   tern-maildrop 1\n
 *   sender ADDR\n          (once; empty for the null sender <>)
 *   rcpt ADDR\n            (one or more)
 *   notify VALUE\n         (optional: DSN NOTIFY, RFC 3461 4.1)
 *   ret FULL|HDRS\n        (optional: DSN RET, RFC 3461 4.3)
 *   envid XTEXT\n          (optional: DSN ENVID, RFC 3461 4.4, already xtext)
 *   8bit\n                 (optional: the content has octets >= 0x80)
 *   size N\n               (the content's length in octets)
 *   \n
 *   N octets of content    (CRLF text as sendmail_msg.c prepared it, not dot-stuffed)
 */
#ifndef TERN_MAILDROP_H
#define TERN_MAILDROP_H

#include <stdbool.h>
#include <stddef.h>

#define MAILDROP_MAGIC "tern-maildrop 1\n"
#define MAILDROP_MAX_RCPTS 10000
#define MAILDROP_ADDR_MAX 512

struct maildrop_msg {
    char *sender;           /* "" for <> */
    char **rcpts;
    size_t nrcpts;
    char *notify, *ret, *envid; /* NULL when absent */
    bool eightbit;
    const char *data;       /* parse: points into the parsed buffer */
    size_t len;
};

/* An envelope address fit for an SMTP command line: no octet <= 0x20, no '<', '>' or DEL,
 * shorter than MAILDROP_ADDR_MAX. */
bool maildrop_addr_ok(const char *a);
/* The header of a file for m (everything before the content). NULL if a field is not
 * acceptable (the same checks as the parser). Free with free(). */
char *maildrop_format_head(const struct maildrop_msg *m, size_t *len);
/* Parse a whole file. 0 and m filled (free with maildrop_msg_free), or -1 with err set and m
 * left empty. */
int maildrop_parse(const char *buf, size_t len, struct maildrop_msg *m, char *err,
                   size_t errlen);
void maildrop_msg_free(struct maildrop_msg *m);

#endif
