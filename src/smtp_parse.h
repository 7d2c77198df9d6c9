/* smtp_parse.h - pure parsers for SMTP command lines, paths and ESMTP parameters.
 *
 * RFC 5321 4.1.1 (command syntax), 4.1.2 (Mailbox, Path, Local-part, Domain, address
 * literals), 4.5.3.1 (size limits); RFC 1870 (SIZE), RFC 6152 (BODY=8BITMIME), RFC 3030
 * (BODY=BINARYMIME), RFC 6531 (SMTPUTF8, UTF-8 in addresses), RFC 3461 (RET, ENVID,
 * NOTIFY, ORCPT, xtext), RFC 4865 (HOLDFOR, HOLDUNTIL; RFC 3339 times), RFC 1985 (ETRN
 * argument). No I/O, no allocation: everything is written into caller structs
 * so the functions can be unit-tested and fuzzed. */
#ifndef TERN_SMTP_PARSE_H
#define TERN_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 5321 4.5.3.1 limits */
#define SMTP_LOCAL_MAX 64      /* local part, octets */
#define SMTP_DOMAIN_MAX 255    /* domain, octets */
#define SMTP_PATH_MAX 256      /* whole path including < >, octets */
#define SMTP_CMDLINE_MAX 512   /* command line including CRLF */
#define SMTP_TEXTLINE_MAX 1000 /* text line including CRLF */
#define SMTP_ENVID_MAX 100     /* RFC 3461 4.4 */
#define SMTP_ORCPT_MAX 500     /* RFC 3461 4.2 */

/* Result of every parser; the session maps each to a reply code. */
enum parse_result {
    PARSE_OK = 0,
    PARSE_SYNTAX,          /* malformed (501 5.5.2 / 5.5.4 / 5.1.3 / 5.1.7 as the caller decides) */
    PARSE_TOO_LONG,        /* a component exceeds its RFC 5321 limit (501 / 553) */
    PARSE_UNKNOWN_PARAM,   /* an ESMTP keyword we do not implement (555 5.5.4) */
    PARSE_BAD_PARAM,       /* a known keyword with a bad or missing value, or given twice (501 5.5.4) */
    PARSE_NEED_UTF8,       /* address has non-ASCII octets but SMTPUTF8 was not given (553 5.6.7) */
};

/* A command line split into verb and argument. The verb is upper-cased ASCII. */
struct smtp_cmdline {
    char verb[16];         /* "" if the line is empty */
    const char *arg;       /* points into the input line after the single space, or to "" */
    size_t arglen;
};

/* Split "VERB[ SP argument]" (line without CRLF). Returns PARSE_SYNTAX for an empty line,
 * a verb that is not 1..15 letters/digits/'-', or any NUL or control byte other than TAB
 * in the line. Trailing spaces in arg are kept (callers that care trim them). */
enum parse_result smtp_split_command(const char *line, size_t len, struct smtp_cmdline *out);

/* A mailbox as it appears in a path. The null reverse-path "<>" has null = true. */
struct smtp_path {
    bool null;                              /* "<>" */
    bool postmaster;                        /* RCPT TO:<Postmaster> with no domain (RFC 5321 4.1.1.3) */
    bool utf8;                              /* contains non-ASCII octets */
    char local[SMTP_LOCAL_MAX + 1];         /* as sent, quotes removed: "a b"@x -> a b */
    char domain[SMTP_DOMAIN_MAX + 1];       /* as sent; address literals keep their brackets */
    char addr[SMTP_PATH_MAX + 1];           /* "local@domain" in canonical form (local part
                                               re-quoted when it needs quoting), "" for null */
};

/* Parse the argument of MAIL ("FROM:<path> params") or RCPT ("TO:<path> params").
 * prefix is "FROM:" or "TO:" (matched case-insensitively; one optional space after the colon
 * is tolerated as many clients send it). Source routes ("<@a,@b:user@c>") are accepted and
 * ignored (RFC 5321 4.1.1.3 / appendix C). allow_null: "<>" accepted (MAIL only).
 * allow_postmaster: "<Postmaster>" without domain accepted (RCPT only).
 * smtputf8: non-ASCII allowed (else PARSE_NEED_UTF8; but the MAIL parser cannot know yet
 * whether SMTPUTF8 follows, so for MAIL pass true and check path->utf8 after the params).
 * *params is set to the rest after the path (leading spaces skipped). */
enum parse_result smtp_parse_path_arg(const char *arg, size_t arglen, const char *prefix,
                                      bool allow_null, bool allow_postmaster, bool smtputf8,
                                      struct smtp_path *path, const char **params,
                                      size_t *paramslen);

enum body_type { BODY_UNSPEC = 0, BODY_7BIT, BODY_8BITMIME, BODY_BINARYMIME };
enum dsn_ret { RET_UNSPEC = 0, RET_FULL, RET_HDRS };

/* RFC 4865 hold-param: HOLDFOR=seconds or HOLDUNTIL=date-time (one of them at most). */
enum hold_kind { HOLD_NONE = 0, HOLD_FOR, HOLD_UNTIL };
#define SMTP_HOLDFOR_MAX 999999999LL /* future-release-integer = 1*9DIGIT */

struct mail_params {
    enum hold_kind hold;                  /* HOLDFOR= / HOLDUNTIL=, HOLD_NONE if absent */
    long long hold_for;                   /* HOLDFOR: seconds */
    long long hold_until;                 /* HOLDUNTIL: Unix time (the offset applied) */
    bool has_size;
    unsigned long long size;              /* SIZE=n */
    enum body_type body;                  /* BODY= */
    bool smtputf8;                        /* SMTPUTF8 */
    enum dsn_ret ret;                     /* RET= */
    char envid[SMTP_ENVID_MAX + 1];       /* ENVID=, still xtext-encoded, "" if absent */
};

/* NOTIFY bits (RFC 3461 4.1); NEVER must stand alone. 0 = not given. */
enum {
    NOTIFY_NEVER = 1,
    NOTIFY_SUCCESS = 2,
    NOTIFY_FAILURE = 4,
    NOTIFY_DELAY = 8,
};

struct rcpt_params {
    unsigned notify;                      /* NOTIFY_* bits, 0 if absent */
    char orcpt[SMTP_ORCPT_MAX + 1];       /* "addr-type;xtext" as sent, "" if absent */
};

/* Parse MAIL parameters ("SIZE=123 BODY=8BITMIME ..."). Keywords are case-insensitive.
 * Any keyword given twice is PARSE_BAD_PARAM. Values are validated: SIZE digits only (at
 * most 20 digits), BODY one of 7BIT/8BITMIME/BINARYMIME, SMTPUTF8 without value, RET
 * FULL/HDRS, ENVID valid xtext of at most 100 chars, HOLDFOR 1*9DIGIT, HOLDUNTIL an RFC 3339
 * date-time (RFC 4865; not both: PARSE_BAD_PARAM). If bad_keyword is not NULL it receives
 * the offending keyword (NUL-terminated, truncated to cap) for the reply text. */
enum parse_result smtp_parse_mail_params(const char *s, size_t len, struct mail_params *out,
                                         char *bad_keyword, size_t cap);
/* RFC 3339 5.6 date-time ("2026-11-23T10:00:00Z", "2026-11-23t11:00:00.5+01:00") as Unix time
 * (fractions of a second dropped, a leap second counted as the next second). PARSE_SYNTAX for
 * anything else, including impossible dates. Years 0000-9999. */
enum parse_result smtp_parse_rfc3339(const char *s, size_t len, long long *out);
/* Format Unix time t as an RFC 3339 UTC date-time "YYYY-MM-DDTHH:MM:SSZ" (cap >= 21). */
bool smtp_format_rfc3339(long long t, char *out, size_t cap);
/* The argument of X-DELIVERY-TIME: an RFC 3339 date-time, or "+N" (N = 1 to 9 digits:
 * seconds after now). Result as Unix time. */
enum parse_result smtp_parse_delivery_time(const char *s, size_t len, long long now,
                                           long long *out);

/* ETRN argument (RFC 1985 3): "domain", "@domain" (the domain and its subdomains) or
 * "#queue" (a named queue). Domains are returned lower-cased; address literals are refused. */
enum etrn_kind { ETRN_DOMAIN, ETRN_SUBDOMAINS, ETRN_QUEUE };
struct etrn_arg {
    enum etrn_kind kind;
    char node[SMTP_DOMAIN_MAX + 1];       /* without the "@" or "#" */
};
enum parse_result smtp_parse_etrn(const char *s, size_t len, struct etrn_arg *out);

/* Parse RCPT parameters: NOTIFY=NEVER or a comma list of SUCCESS,FAILURE,DELAY;
 * ORCPT=addr-type;xtext (addr-type is an atom, e.g. rfc822; total at most 500 chars). */
enum parse_result smtp_parse_rcpt_params(const char *s, size_t len, struct rcpt_params *out,
                                         char *bad_keyword, size_t cap);

/* RFC 3461 4: xtext is chars 33..126 except '+' and '=', with "+XX" (upper-case hex) escapes. */
bool xtext_valid(const char *s, size_t len);
/* Decode xtext into out (cap bytes incl. NUL). Returns false on invalid input or overflow. */
bool xtext_decode(const char *s, size_t len, char *out, size_t cap);
/* Encode arbitrary bytes as xtext. Returns false on overflow. */
bool xtext_encode(const char *s, size_t len, char *out, size_t cap);

/* Is s a syntactically valid domain (RFC 5321 4.1.2 Domain, or an address literal
 * [1.2.3.4] / [IPv6:...]) ? utf8 allows U-labels (RFC 6531). Used for HELO/EHLO too. */
bool smtp_valid_domain(const char *s, size_t len, bool utf8);

#endif
