/* smtp_reply.h - the client side of SMTP replies, pure (no I/O): assemble a multi-line reply
 * from its lines, parse the reply code (RFC 5321 4.2) and the enhanced status code (RFC 3463,
 * RFC 2034), parse the EHLO capability list (RFC 5321 4.1.1.1), and explain a reply in one
 * line: its class, the RFC 5321 4.2.2/4.2.3 meaning of the code, the RFC 3463 (and IANA
 * registry) text of the enhanced code, and for common failures what to check.
 *
 * Used by `tern send`, `tern check` and (later) the outbound delivery client. Nothing here
 * reads or writes a socket or a file; lines go in, structures and text come out. */
#ifndef TERN_SMTP_REPLY_H
#define TERN_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 5321 4.5.3.1.5: a reply line is at most 512 octets with CRLF; be lenient when reading
 * (real servers exceed it), but bound what one reply may hold. */
#define SMTP_REPLY_LINE_MAX 4096
#define SMTP_REPLY_MAX_LINES 256

/* One reply, assembled line by line. */
struct smtp_reply {
    int code;            /* 0 until the first line is parsed, then 200..599 */
    char esc[16];        /* enhanced status code of the first line ("5.1.1"), or "" */
    int esc_class;       /* 2, 4 or 5 when esc is set */
    int esc_subject;
    int esc_detail;
    size_t nlines;
    char **lines;        /* each line as received, without CRLF: "250-PIPELINING" */
    bool done;           /* the last line (code followed by SP or nothing) has been added */
    const char *warning; /* a tolerated deviation ("lines carry different codes"), or NULL */
};

enum smtp_feed {
    SMTP_FEED_MORE,  /* a continuation line: feed the next one */
    SMTP_FEED_DONE,  /* the reply is complete */
    SMTP_FEED_BAD,   /* not an SMTP reply line; *why says why. The reply is unusable */
};

void smtp_reply_init(struct smtp_reply *r);
void smtp_reply_free(struct smtp_reply *r); /* frees the lines; r can be fed again after init */

/* Add one line (without CRLF; a trailing CR is dropped). RFC 5321 4.2:
 *   Reply-line = *( Reply-code "-" [ textstring ] CRLF ) Reply-code [ SP textstring ] CRLF
 * with Reply-code %x32-35 %x30-35 %x30-39. Lines after the first that carry another code are
 * accepted with r->warning set (the first code counts); a line that does not start with a
 * code, or has anything but '-', ' ' or the end after it, is SMTP_FEED_BAD. */
enum smtp_feed smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len,
                               const char **why);

/* Text of line i after the code and separator ("250-SIZE 1000" -> "SIZE 1000"). */
const char *smtp_reply_line_text(const struct smtp_reply *r, size_t i);
/* Text of the first line after the enhanced status code, if any ("5.1.1 No such user" ->
 * "No such user"). */
const char *smtp_reply_first_text(const struct smtp_reply *r);

/* Parse an enhanced status code at the start of s (RFC 3463 2: class "." subject "." detail,
 * class 2/4/5, subject and detail 1-3 digits without leading zeros beyond "0", followed by
 * SP or the end). Returns the number of characters it spans (0 if there is none). */
size_t smtp_esc_parse(const char *s, int *cls, int *subject, int *detail);

/* ---- EHLO capabilities (RFC 5321 4.1.1.1, 2.2.2) ---- */

struct smtp_cap {
    char keyword[32]; /* upper-cased ("SIZE", "AUTH") */
    char *params;     /* the rest of the line after one space, "" if none */
};

struct smtp_caps {
    char *domain;   /* the server's name from the first line ("" if none) */
    char *greeting; /* the rest of the first line */
    size_t n;
    struct smtp_cap *v;
};

/* Parse a complete 250 reply to EHLO. Lines whose keyword is not an ehlo-keyword
 * (ALPHA / DIGIT then ALPHA / DIGIT / "-") are skipped. Returns false if r is not a 2xx. */
bool smtp_caps_parse(const struct smtp_reply *r, struct smtp_caps *caps);
void smtp_caps_free(struct smtp_caps *caps);
/* The capability with this keyword (case-insensitive), or NULL. */
const struct smtp_cap *smtp_caps_find(const struct smtp_caps *caps, const char *keyword);
/* Whether an AUTH mechanism is offered, in "AUTH m1 m2" or the old "AUTH=m1 m2" form. */
bool smtp_caps_has_auth(const struct smtp_caps *caps, const char *mech);
/* SIZE limit (RFC 1870): true and *limit (0: no fixed limit) if SIZE is advertised. */
bool smtp_caps_size(const struct smtp_caps *caps, unsigned long long *limit);

/* ---- explanations ---- */

/* Which command a reply answers: the same code means different things at different steps. */
enum smtp_stage {
    SMTP_STAGE_GREETING,
    SMTP_STAGE_EHLO,
    SMTP_STAGE_HELO,
    SMTP_STAGE_STARTTLS,
    SMTP_STAGE_AUTH,
    SMTP_STAGE_MAIL,
    SMTP_STAGE_RCPT,
    SMTP_STAGE_DATA,     /* the reply to the DATA command (354 expected) */
    SMTP_STAGE_DATA_END, /* the reply after the final "." */
    SMTP_STAGE_BDAT,     /* reply to a BDAT chunk (the LAST one is the message's verdict) */
    SMTP_STAGE_RSET,
    SMTP_STAGE_QUIT,
    SMTP_STAGE_OTHER,
};

/* "2xx done", "3xx more needed", "4xx temporary: retry later", "5xx permanent: a bounce";
 * "" for a code outside 200..599. */
const char *smtp_class_text(int code);
/* The RFC 5321 4.2.2/4.2.3 (and extensions') meaning of a reply code, or NULL if the code is
 * not a registered one (the class text is then all there is). */
const char *smtp_code_text(int code);
/* RFC 3463 texts: class ("permanent failure"), subject ("addressing"), detail ("bad
 * destination mailbox address"). NULL where the code is not defined. */
const char *smtp_esc_class_text(int cls);
const char *smtp_esc_subject_text(int subject);
const char *smtp_esc_detail_text(int subject, int detail);
/* What to check for a common failure (or a notable success), or NULL. Looks at the stage,
 * the code, the enhanced code and a few well-known words in the text (greylisting, block
 * lists, SPF, DMARC). */
const char *smtp_reply_hint(const struct smtp_reply *r, enum smtp_stage stage);

/* The one-line explanation printed under a reply:
 *   "5xx permanent: a bounce. 550: mailbox unavailable (not found, no access, or refused
 *    by policy). 5.1.1: addressing: bad destination mailbox address. Check: ..."
 * Always NUL-terminated; returns the length it needed (like snprintf). */
size_t smtp_reply_explain(const struct smtp_reply *r, enum smtp_stage stage, char *buf,
                          size_t cap);

/* ---- encodings the client needs (RFC 4648 base64, for AUTH) ---- */

/* Encode len bytes; out needs 4 * ((len + 2) / 3) + 1 bytes. Returns the encoded length. */
size_t smtp_b64_encode(const unsigned char *in, size_t len, char *out);
/* Decode; ignores nothing (whitespace is an error). Returns the decoded length or -1 if the
 * input is not base64 or does not fit in cap. out is NUL-terminated when it fits. */
long smtp_b64_decode(const char *in, size_t len, unsigned char *out, size_t cap);

#endif
