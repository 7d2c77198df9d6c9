/* smtp_reply.c - pure helpers for SMTP replies on the client side: multi-line assembly and
 * code parsing (RFC 5321 4.2, 4.2.1), enhanced status codes (RFC 3463, RFC 2034, and the
 * additions in the IANA "SMTP Enhanced Status Codes" registry: RFC 4954, 5248, 6531, 6710,
 * 7293, 7372, 7505, 8689), EHLO capabilities (RFC 5321 4.1.1.1), one-line explanations and
 * hints, and base64 (RFC 4648) for AUTH. No I/O. */
#include "smtp_reply.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void smtp_reply_init(struct smtp_reply *r)
{
    memset(r, 0, sizeof *r);
}

void smtp_reply_free(struct smtp_reply *r)
{
    for (size_t i = 0; i < r->nlines; i++)
        free(r->lines[i]);
    free(r->lines);
    smtp_reply_init(r);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static char ascii_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

size_t smtp_esc_parse(const char *s, int *cls, int *subject, int *detail)
{
    if (!s || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    int val[2] = {0, 0};
    size_t i = 2;
    for (int part = 0; part < 2; part++) {
        size_t start = i;
        while (is_digit(s[i]) && i - start < 4) {
            val[part] = val[part] * 10 + (s[i] - '0');
            i++;
        }
        size_t n = i - start;
        /* 1-3 digits; RFC 3463 writes them without leading zeros */
        if (n == 0 || n > 3 || (n > 1 && s[start] == '0'))
            return 0;
        if (part == 0) {
            if (s[i] != '.')
                return 0;
            i++;
        }
    }
    if (s[i] != '\0' && s[i] != ' ')
        return 0;
    *cls = s[0] - '0';
    *subject = val[0];
    *detail = val[1];
    return i;
}

enum smtp_feed smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len,
                               const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (r->done) {
        *why = "reply already complete";
        return SMTP_FEED_BAD;
    }
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
        !is_digit(line[2])) {
        *why = "the line does not start with a three-digit reply code (RFC 5321 4.2)";
        return SMTP_FEED_BAD;
    }
    if (len > 3 && line[3] != ' ' && line[3] != '-') {
        *why = "the reply code is not followed by a space or '-' (RFC 5321 4.2)";
        return SMTP_FEED_BAD;
    }
    if (len > SMTP_REPLY_LINE_MAX) {
        *why = "reply line too long";
        return SMTP_FEED_BAD;
    }
    if (r->nlines >= SMTP_REPLY_MAX_LINES) {
        *why = "too many lines in one reply";
        return SMTP_FEED_BAD;
    }
    for (size_t i = 0; i < len; i++) {
        if (line[i] == '\0') {
            *why = "NUL byte in a reply line";
            return SMTP_FEED_BAD;
        }
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (r->nlines == 0) {
        r->code = code;
    } else if (code != r->code) {
        r->warning = "the lines of this reply carry different codes (RFC 5321 4.2.1: they must "
                     "all be the same); the first counts";
    }
    r->lines = xrealloc(r->lines, (r->nlines + 1) * sizeof *r->lines);
    r->lines[r->nlines++] = xstrndup(line, len);

    if (r->nlines == 1 && code / 100 != 3) {
        int c = 0, s = 0, d = 0;
        const char *t = len > 4 ? r->lines[0] + 4 : "";
        if (smtp_esc_parse(t, &c, &s, &d) > 0) {
            r->esc_class = c;
            r->esc_subject = s;
            r->esc_detail = d;
            snprintf(r->esc, sizeof r->esc, "%d.%d.%d", c, s, d);
        }
    }
    if (len == 3 || line[3] == ' ') {
        r->done = true;
        return SMTP_FEED_DONE;
    }
    return SMTP_FEED_MORE;
}

const char *smtp_reply_line_text(const struct smtp_reply *r, size_t i)
{
    if (i >= r->nlines)
        return "";
    const char *l = r->lines[i];
    return strlen(l) > 4 ? l + 4 : "";
}

const char *smtp_reply_first_text(const struct smtp_reply *r)
{
    const char *t = smtp_reply_line_text(r, 0);
    int c, s, d;
    size_t n = smtp_esc_parse(t, &c, &s, &d);
    if (n > 0) {
        t += n;
        while (*t == ' ')
            t++;
    }
    return t;
}

/* ---- EHLO capabilities ---- */

static bool ehlo_keyword_char(char c, bool first)
{
    bool alnum = is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    return first ? alnum : (alnum || c == '-');
}

bool smtp_caps_parse(const struct smtp_reply *r, struct smtp_caps *caps)
{
    memset(caps, 0, sizeof *caps);
    if (r->code / 100 != 2 || r->nlines == 0)
        return false;
    const char *first = smtp_reply_line_text(r, 0);
    size_t dl = strcspn(first, " ");
    caps->domain = xstrndup(first, dl);
    caps->greeting = xstrdup(first[dl] == ' ' ? first + dl + 1 : "");
    caps->v = xcalloc(r->nlines, sizeof *caps->v);
    for (size_t i = 1; i < r->nlines; i++) {
        const char *t = smtp_reply_line_text(r, i);
        size_t k = 0;
        while (t[k] && ehlo_keyword_char(t[k], k == 0))
            k++;
        /* "AUTH=LOGIN PLAIN" is an old, pre-standard form some servers still send */
        if (k == 0 || k >= sizeof caps->v[0].keyword || (t[k] != '\0' && t[k] != ' ' &&
                                                         t[k] != '='))
            continue;
        struct smtp_cap *c = &caps->v[caps->n++];
        for (size_t j = 0; j < k; j++)
            c->keyword[j] = ascii_upper(t[j]);
        c->keyword[k] = '\0';
        const char *p = t + k;
        if (*p == ' ' || *p == '=')
            p++;
        c->params = xstrdup(p);
    }
    return true;
}

void smtp_caps_free(struct smtp_caps *caps)
{
    for (size_t i = 0; i < caps->n; i++)
        free(caps->v[i].params);
    free(caps->v);
    free(caps->domain);
    free(caps->greeting);
    memset(caps, 0, sizeof *caps);
}

const struct smtp_cap *smtp_caps_find(const struct smtp_caps *caps, const char *keyword)
{
    for (size_t i = 0; i < caps->n; i++)
        if (str_ieq(caps->v[i].keyword, keyword))
            return &caps->v[i];
    return NULL;
}

/* Is word one of the space-separated words of list (case-insensitive)? */
static bool word_in(const char *list, const char *word)
{
    size_t wl = strlen(word);
    const char *p = list;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n == wl && n > 0 && str_nieq(p, word, n))
            return true;
        p += n;
    }
    return false;
}

bool smtp_caps_has_auth(const struct smtp_caps *caps, const char *mech)
{
    for (size_t i = 0; i < caps->n; i++)
        if (str_ieq(caps->v[i].keyword, "AUTH") && word_in(caps->v[i].params, mech))
            return true;
    return false;
}

bool smtp_caps_size(const struct smtp_caps *caps, unsigned long long *limit)
{
    const struct smtp_cap *c = smtp_caps_find(caps, "SIZE");
    if (!c)
        return false;
    unsigned long long v = 0;
    for (const char *p = c->params; is_digit(*p); p++) {
        if (v > (UINT64_MAX - 9) / 10)
            break;
        v = v * 10 + (unsigned long long)(*p - '0');
    }
    *limit = v;
    return true;
}

/* ---- explanation tables ---- */

const char *smtp_class_text(int code)
{
    switch (code / 100) {
    case 2: return "2xx done";
    case 3: return "3xx more needed";
    case 4: return "4xx temporary: retry later";
    case 5: return "5xx permanent: a bounce";
    default: return "";
    }
}

struct code_text {
    int code;
    const char *text;
};

/* RFC 5321 4.2.2 and 4.2.3, plus RFC 3207 (STARTTLS), RFC 4954 (AUTH), RFC 7504 (521/556). */
static const struct code_text code_texts[] = {
    {211, "system status or help reply"},
    {214, "help message"},
    {220, "service ready"},
    {221, "service closing the connection"},
    {235, "authentication succeeded (RFC 4954)"},
    {250, "requested action okay, completed"},
    {251, "user not local; the server will forward the message"},
    {252, "cannot verify the user, but will accept the message and try delivery"},
    {334, "server challenge: send the next part of the authentication exchange (RFC 4954)"},
    {354, "start mail input; end with <CRLF>.<CRLF>"},
    {421, "service not available, the server is closing the connection"},
    {432, "a password transition is needed (RFC 4954)"},
    {450, "mailbox unavailable for now (busy, or temporarily blocked by policy)"},
    {451, "action aborted: local error in processing"},
    {452, "insufficient system storage (or too many recipients)"},
    {454, "temporary failure of TLS or authentication (RFC 3207, RFC 4954)"},
    {455, "the server cannot accommodate the parameters now"},
    {500, "syntax error, command unrecognized (or line too long)"},
    {501, "syntax error in parameters or arguments"},
    {502, "command not implemented"},
    {503, "bad sequence of commands"},
    {504, "command parameter not implemented"},
    {521, "this host does not accept mail (RFC 7504)"},
    {530, "authentication (or STARTTLS) required first (RFC 4954, RFC 3207)"},
    {534, "authentication mechanism is too weak (RFC 4954)"},
    {535, "authentication credentials invalid (RFC 4954)"},
    {538, "encryption required for the requested authentication mechanism (RFC 4954)"},
    {550, "mailbox unavailable (not found, no access, or refused by policy)"},
    {551, "user not local; try the address the server names"},
    {552, "exceeded storage allocation (message too big or mailbox full)"},
    {553, "mailbox name not allowed (bad address syntax)"},
    {554, "transaction failed (in the greeting: no SMTP service here)"},
    {555, "MAIL FROM/RCPT TO parameters not recognized or not implemented"},
    {556, "the domain does not accept mail (RFC 7504)"},
};

const char *smtp_code_text(int code)
{
    for (size_t i = 0; i < ARRAY_LEN(code_texts); i++)
        if (code_texts[i].code == code)
            return code_texts[i].text;
    return NULL;
}

const char *smtp_esc_class_text(int cls)
{
    switch (cls) {
    case 2: return "success";
    case 4: return "persistent transient failure";
    case 5: return "permanent failure";
    default: return NULL;
    }
}

static const char *const esc_subjects[] = {
    "other or undefined status",      /* X.0.XXX */
    "addressing",                     /* X.1.XXX */
    "mailbox",                        /* X.2.XXX */
    "mail system",                    /* X.3.XXX */
    "network and routing",            /* X.4.XXX */
    "mail delivery protocol",         /* X.5.XXX */
    "message content or media",       /* X.6.XXX */
    "security or policy",             /* X.7.XXX */
};

const char *smtp_esc_subject_text(int subject)
{
    if (subject < 0 || (size_t)subject >= ARRAY_LEN(esc_subjects))
        return NULL;
    return esc_subjects[subject];
}

struct esc_text {
    unsigned char subject, detail;
    const char *text;
};

/* RFC 3463 section 3, then the IANA registry's additions (reference in the comment). */
static const struct esc_text esc_texts[] = {
    {0, 0, "other undefined status"},
    {1, 0, "other address status"},
    {1, 1, "bad destination mailbox address"},
    {1, 2, "bad destination system address"},
    {1, 3, "bad destination mailbox address syntax"},
    {1, 4, "destination mailbox address ambiguous"},
    {1, 5, "destination address valid"},
    {1, 6, "destination mailbox has moved, no forwarding address"},
    {1, 7, "bad sender's mailbox address syntax"},
    {1, 8, "bad sender's system address"},
    {1, 9, "message relayed to non-compliant mailer"},                      /* RFC 3886 */
    {1, 10, "recipient address has null MX"},                               /* RFC 7505 */
    {2, 0, "other or undefined mailbox status"},
    {2, 1, "mailbox disabled, not accepting messages"},
    {2, 2, "mailbox full"},
    {2, 3, "message length exceeds administrative limit"},
    {2, 4, "mailing list expansion problem"},
    {3, 0, "other or undefined mail system status"},
    {3, 1, "mail system full"},
    {3, 2, "system not accepting network messages"},
    {3, 3, "system not capable of selected features"},
    {3, 4, "message too big for system"},
    {3, 5, "system incorrectly configured"},
    {3, 6, "requested priority was changed"},                               /* RFC 6710 */
    {4, 0, "other or undefined network or routing status"},
    {4, 1, "no answer from host"},
    {4, 2, "bad connection"},
    {4, 3, "directory server failure"},
    {4, 4, "unable to route"},
    {4, 5, "mail system congestion"},
    {4, 6, "routing loop detected"},
    {4, 7, "delivery time expired"},
    {5, 0, "other or undefined protocol status"},
    {5, 1, "invalid command"},
    {5, 2, "syntax error"},
    {5, 3, "too many recipients"},
    {5, 4, "invalid command arguments"},
    {5, 5, "wrong protocol version"},
    {5, 6, "authentication exchange line is too long"},                     /* RFC 4954 */
    {6, 0, "other or undefined media error"},
    {6, 1, "media not supported"},
    {6, 2, "conversion required and prohibited"},
    {6, 3, "conversion required but not supported"},
    {6, 4, "conversion with loss performed"},
    {6, 5, "conversion failed"},
    {6, 6, "message content not accepted"},                                 /* RFC 3886 */
    {6, 7, "non-ASCII addresses not permitted for that sender/recipient"},  /* RFC 6531 */
    {6, 8, "UTF-8 string reply is required, but not permitted by the client"}, /* RFC 6531 */
    {6, 9, "UTF-8 header message cannot be transferred to one or more recipients"}, /* 6531 */
    {7, 0, "other or undefined security status"},
    {7, 1, "delivery not authorized, message refused"},
    {7, 2, "mailing list expansion prohibited"},
    {7, 3, "security conversion required but not possible"},
    {7, 4, "security features not supported"},
    {7, 5, "cryptographic failure"},
    {7, 6, "cryptographic algorithm not supported"},
    {7, 7, "message integrity failure"},
    {7, 8, "authentication credentials invalid"},                           /* RFC 4954 */
    {7, 9, "authentication mechanism is too weak"},                         /* RFC 4954 */
    {7, 10, "encryption needed"},                                           /* RFC 5248 */
    {7, 11, "encryption required for requested authentication mechanism"},  /* RFC 4954 */
    {7, 12, "a password transition is needed"},                            /* RFC 4954 */
    {7, 13, "user account disabled"},                                       /* RFC 5248 */
    {7, 14, "trust relationship required"},                                 /* RFC 5248 */
    {7, 15, "priority level is too low"},                                   /* RFC 6710 */
    {7, 16, "message is too big for the specified priority"},               /* RFC 6710 */
    {7, 17, "mailbox owner has changed"},                                   /* RFC 7293 */
    {7, 18, "domain owner has changed"},                                    /* RFC 7293 */
    {7, 19, "RRVS test cannot be completed"},                               /* RFC 7293 */
    {7, 20, "no passing DKIM signature found"},                             /* RFC 7372 */
    {7, 21, "no acceptable DKIM signature found"},                          /* RFC 7372 */
    {7, 22, "no valid author-matched DKIM signature found"},                /* RFC 7372 */
    {7, 23, "SPF validation failed"},                                       /* RFC 7372 */
    {7, 24, "SPF validation error"},                                        /* RFC 7372 */
    {7, 25, "reverse DNS validation failed"},                               /* RFC 7372 */
    {7, 26, "multiple authentication checks failed"},                       /* RFC 7372 */
    {7, 27, "sender address has null MX"},                                  /* RFC 7505 */
    {7, 28, "mail flood detected"},                                         /* RFC 8651 */
    {7, 29, "ARC validation failure"},                                      /* RFC 8617 */
    {7, 30, "REQUIRETLS support required"},                                 /* RFC 8689 */
};

const char *smtp_esc_detail_text(int subject, int detail)
{
    for (size_t i = 0; i < ARRAY_LEN(esc_texts); i++)
        if (esc_texts[i].subject == subject && esc_texts[i].detail == detail)
            return esc_texts[i].text;
    return NULL;
}

/* ---- hints: what to check ---- */

#define STAGE(s) (1u << (s))
#define ANY_STAGE 0u

struct hint_rule {
    unsigned stages; /* STAGE() bits; 0: any */
    int code;        /* exact code; 0: any; 4 or 5: any code of that class */
    const char *esc; /* "X.Y.Z" with X a digit or 'X' for any class; NULL: any */
    const char *word; /* case-insensitive substring of the reply text; NULL: any */
    const char *hint;
};

/* First match wins, so the specific rules (words in the text, enhanced codes) come before
 * the generic ones (code and stage). */
static const struct hint_rule hint_rules[] = {
    /* words servers use for well-known policies */
    {ANY_STAGE, 4, NULL, "greylist",
     "greylisting: the server wants the same message again in a few minutes; a real MTA "
     "retries by itself, so this is not an error"},
    {ANY_STAGE, 5, NULL, "spamhaus",
     "the sending IP address is on a block list; look it up at the URL in the text and ask "
     "for removal, or send through another server"},
    {ANY_STAGE, 5, NULL, "blocklist",
     "the sending IP address (or domain) is on a block list; the text usually names it"},
    {ANY_STAGE, 5, NULL, "blacklist",
     "the sending IP address (or domain) is on a block list; the text usually names it"},
    {ANY_STAGE, 0, NULL, "must issue a starttls",
     "the server requires TLS before this command: add --starttls"},
    {ANY_STAGE, 0, NULL, "starttls first",
     "the server requires TLS before this command: add --starttls"},

    /* enhanced status codes */
    {ANY_STAGE, 0, "X.1.1", NULL,
     "the recipient address: spelling, and whether the mailbox exists on this server"},
    {ANY_STAGE, 0, "X.1.2", NULL,
     "the recipient's domain: it may be misspelled or have no mail server (tern check DOMAIN)"},
    {ANY_STAGE, 0, "X.1.3", NULL, "the recipient address syntax: local@domain, no spaces"},
    {ANY_STAGE, 0, "X.1.6", NULL, "the recipient has moved; ask them for the new address"},
    {ANY_STAGE, 0, "X.1.7", NULL, "the sender address syntax (--from): local@domain"},
    {ANY_STAGE, 0, "X.1.8", NULL,
     "the sender's domain (--from) must exist and have MX or A records"},
    {ANY_STAGE, 0, "X.1.10", NULL,
     "the recipient's domain publishes a null MX (RFC 7505): it receives no mail at all"},
    {ANY_STAGE, 0, "X.2.1", NULL, "the recipient's mailbox is disabled; contact them another way"},
    {ANY_STAGE, 0, "X.2.2", NULL, "the recipient's mailbox is full; they must make room"},
    {ANY_STAGE, 0, "X.2.3", NULL,
     "the message is larger than the server allows (see SIZE in the EHLO reply)"},
    {ANY_STAGE, 0, "X.3.4", NULL,
     "the message is larger than the server allows (see SIZE in the EHLO reply)"},
    {ANY_STAGE, 0, "X.3.1", NULL, "the server is out of storage; retry later or tell its postmaster"},
    {ANY_STAGE, 0, "X.3.2", NULL, "the server is not accepting mail now (shutting down or paused)"},
    {ANY_STAGE, 0, "X.4.4", NULL, "the server cannot route to that domain: DNS (MX) of the domain"},
    {ANY_STAGE, 0, "X.4.6", NULL, "a mail loop: MX records or forwarding rules point back at each other"},
    {ANY_STAGE, 0, "X.5.3", NULL,
     "too many recipients in one transaction: send the rest in another one"},
    {ANY_STAGE, 0, "X.6.7", NULL, "a non-ASCII address needs SMTPUTF8 (RFC 6531) on both ends"},
    {ANY_STAGE, 0, "X.7.8", NULL,
     "user name and password (--user, --password), and that the account may use this mechanism"},
    {ANY_STAGE, 0, "X.7.9", NULL, "the mechanism is too weak for this account: choose another with --auth"},
    {ANY_STAGE, 0, "X.7.10", NULL, "the server requires encryption: add --starttls (or --tls)"},
    {ANY_STAGE, 0, "X.7.11", NULL,
     "this mechanism needs an encrypted connection: add --starttls (or --tls)"},
    {ANY_STAGE, 0, "X.7.13", NULL, "the account is disabled; ask the server's administrator"},
    {ANY_STAGE, 0, "X.7.14", NULL,
     "the server only accepts mail from peers it trusts (authenticate, or use the right relay)"},
    {ANY_STAGE, 0, "X.7.20", NULL, "DKIM: sign the message with a key published in DNS"},
    {ANY_STAGE, 0, "X.7.21", NULL, "DKIM: the signature is not acceptable (key size, algorithm, domain)"},
    {ANY_STAGE, 0, "X.7.22", NULL, "DKIM: sign with the domain of the From: header"},
    {ANY_STAGE, 0, "X.7.23", NULL,
     "SPF: the sender domain's SPF record does not allow this IP address (tern check DOMAIN)"},
    {ANY_STAGE, 0, "X.7.24", NULL,
     "SPF: the sender domain's SPF record is broken or needs too many lookups (tern check DOMAIN)"},
    {ANY_STAGE, 0, "X.7.25", NULL,
     "reverse DNS: the sending IP needs a PTR record whose name resolves back to it"},
    {ANY_STAGE, 0, "X.7.26", NULL,
     "SPF and DKIM both failed (or DMARC): run tern check on the sender's domain"},
    {ANY_STAGE, 0, "X.7.27", NULL,
     "the sender's domain publishes a null MX, so it cannot receive bounces: use another --from"},
    {ANY_STAGE, 0, "X.7.30", NULL, "the message asked for REQUIRETLS and the path lacks it"},
    {STAGE(SMTP_STAGE_RCPT), 0, "5.7.1", NULL,
     "relaying denied: this server only takes mail for its own domains; send to the "
     "recipient's MX, or authenticate (--auth) on the submission port"},
    {STAGE(SMTP_STAGE_DATA_END) | STAGE(SMTP_STAGE_BDAT), 5, "5.7.1", NULL,
     "the content was refused (spam or virus filter, or policy): the text may say which"},
    {STAGE(SMTP_STAGE_DATA_END) | STAGE(SMTP_STAGE_BDAT), 5, "5.6.0", NULL,
     "the content was refused: bare CR or LF, NUL bytes, over-long lines or bad headers"},

    /* reply codes by stage */
    {STAGE(SMTP_STAGE_GREETING), 554, NULL, NULL,
     "the server refuses this client outright (IP address policy or block list)"},
    {STAGE(SMTP_STAGE_GREETING), 421, NULL, NULL,
     "the server is busy or shutting down; try again later or another MX"},
    {STAGE(SMTP_STAGE_EHLO), 5, NULL, NULL,
     "an old server without ESMTP: HELO still works, but no extensions (TLS, AUTH, SIZE)"},
    {STAGE(SMTP_STAGE_STARTTLS), 454, NULL, NULL,
     "the server's TLS is broken or unavailable (certificate or key configuration)"},
    {STAGE(SMTP_STAGE_STARTTLS), 5, NULL, NULL, "this server or port does not offer STARTTLS"},
    {STAGE(SMTP_STAGE_AUTH), 535, NULL, NULL, "user name and password (--user, --password)"},
    {STAGE(SMTP_STAGE_AUTH), 504, NULL, NULL,
     "the server does not support that mechanism: see AUTH in the EHLO reply"},
    {STAGE(SMTP_STAGE_AUTH), 538, NULL, NULL, "add --starttls (or --tls) before AUTH"},
    {STAGE(SMTP_STAGE_AUTH), 5, NULL, NULL,
     "the mechanism (--auth) against the server's list, and user name and password"},
    {ANY_STAGE, 530, NULL, NULL,
     "the server wants AUTH (--auth, --user, --password) or STARTTLS first"},
    {ANY_STAGE, 421, NULL, NULL,
     "the server closed the session (overload, shutdown, too many errors, or a timeout)"},
    {STAGE(SMTP_STAGE_RCPT), 550, NULL, NULL,
     "the recipient address exists on this server, and that the server accepts mail for "
     "its domain from you"},
    {STAGE(SMTP_STAGE_RCPT), 554, NULL, NULL,
     "relaying denied or policy: send to the recipient's own MX, or authenticate"},
    {STAGE(SMTP_STAGE_RCPT), 551, NULL, NULL, "the recipient is not here; use the address in the text"},
    {STAGE(SMTP_STAGE_RCPT), 452, NULL, NULL,
     "too many recipients or no storage: send the rest later, in another transaction"},
    {ANY_STAGE, 552, NULL, NULL,
     "the message size against the server's SIZE limit, or the recipient's quota"},
    {ANY_STAGE, 553, NULL, NULL, "the address syntax: local@domain inside <>"},
    {ANY_STAGE, 555, NULL, NULL,
     "a MAIL/RCPT parameter the server does not know (BODY=, SMTPUTF8, SIZE=)"},
    {ANY_STAGE, 503, NULL, NULL,
     "the command order: EHLO, MAIL, RCPT, then DATA; DATA needs an accepted recipient"},
    {ANY_STAGE, 500, NULL, NULL, "the command is unknown to the server (or the line is too long)"},
    {ANY_STAGE, 501, NULL, NULL, "the command's arguments; addresses go inside <>"},
    {ANY_STAGE, 502, NULL, NULL, "the server does not implement this command: see its EHLO list"},
    {ANY_STAGE, 521, NULL, NULL, "this host never accepts mail; use the domain's real MX"},
    {ANY_STAGE, 556, NULL, NULL, "the domain accepts no mail (null MX, RFC 7505)"},
    {STAGE(SMTP_STAGE_DATA_END) | STAGE(SMTP_STAGE_BDAT), 554, NULL, NULL,
     "the message was refused after its content was seen (filter or policy)"},
    {STAGE(SMTP_STAGE_MAIL), 5, NULL, NULL,
     "the sender address (--from): its syntax, its domain's DNS, and whether this server "
     "lets you send as that address"},
    {ANY_STAGE, 451, NULL, NULL,
     "a temporary problem at the server; retry later, and tell its postmaster if it persists"},
    {ANY_STAGE, 450, NULL, NULL,
     "the mailbox is busy or temporarily blocked (often greylisting or rate limits); retry later"},
};

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++)
        if (str_nieq(p, needle, n))
            return true;
    return false;
}

static bool esc_matches(const struct smtp_reply *r, const char *pat)
{
    if (r->esc[0] == '\0')
        return false;
    if (pat[0] == 'X')
        return strcmp(r->esc + 1, pat + 1) == 0;
    return strcmp(r->esc, pat) == 0;
}

static bool text_contains(const struct smtp_reply *r, const char *word)
{
    for (size_t i = 0; i < r->nlines; i++)
        if (contains_ci(smtp_reply_line_text(r, i), word))
            return true;
    return false;
}

const char *smtp_reply_hint(const struct smtp_reply *r, enum smtp_stage stage)
{
    /* hints describe failures: never attach one to a success */
    if (r->code < 400)
        return NULL;
    for (size_t i = 0; i < ARRAY_LEN(hint_rules); i++) {
        const struct hint_rule *h = &hint_rules[i];
        if (h->stages && !(h->stages & STAGE(stage)))
            continue;
        if (h->code >= 100 && h->code != r->code)
            continue;
        if (h->code > 0 && h->code < 10 && h->code != r->code / 100)
            continue;
        if (h->esc && !esc_matches(r, h->esc))
            continue;
        if (h->word && !text_contains(r, h->word))
            continue;
        return h->hint;
    }
    return NULL;
}

/* Meaning of a code at a particular step, where it differs from the generic text. */
static const char *code_text_at(int code, enum smtp_stage stage)
{
    switch (stage) {
    case SMTP_STAGE_GREETING:
        if (code == 220)
            return "service ready: the server greets you";
        if (code == 554)
            return "no SMTP service here for you";
        break;
    case SMTP_STAGE_EHLO:
        if (code == 250)
            return "hello accepted; the lines after the first list the server's extensions";
        break;
    case SMTP_STAGE_STARTTLS:
        if (code == 220)
            return "ready to start TLS: the handshake follows (RFC 3207)";
        break;
    case SMTP_STAGE_MAIL:
        if (code == 250)
            return "sender accepted";
        break;
    case SMTP_STAGE_RCPT:
        if (code == 250 || code == 251)
            return "recipient accepted";
        break;
    case SMTP_STAGE_DATA_END:
        if (code == 250)
            return "message accepted: from now on the server is responsible for it";
        break;
    case SMTP_STAGE_BDAT:
        if (code == 250)
            return "chunk accepted (after BDAT ... LAST: the message is accepted)";
        break;
    default:
        break;
    }
    return smtp_code_text(code);
}

/* Append with snprintf semantics: *len keeps counting past cap. */
__attribute__((format(printf, 4, 5)))
static void append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = *len < cap ? cap - *len : 0;
    int n = vsnprintf(room ? buf + *len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len += (size_t)n;
}

size_t smtp_reply_explain(const struct smtp_reply *r, enum smtp_stage stage, char *buf,
                          size_t cap)
{
    size_t len = 0;
    if (cap > 0)
        buf[0] = '\0';
    if (r->code == 0) {
        append(buf, cap, &len, "no reply");
        return len;
    }
    append(buf, cap, &len, "%s.", smtp_class_text(r->code));
    const char *ct = code_text_at(r->code, stage);
    if (ct)
        append(buf, cap, &len, " %d: %s.", r->code, ct);
    else
        append(buf, cap, &len, " %d: not a code defined by the SMTP RFCs; only its class "
               "counts.", r->code);
    if (r->esc[0]) {
        const char *subj = smtp_esc_subject_text(r->esc_subject);
        const char *det = smtp_esc_detail_text(r->esc_subject, r->esc_detail);
        if (det && r->esc_detail == 0) /* "X.Y.0" texts already name their subject */
            append(buf, cap, &len, " %s: %s.", r->esc, det);
        else
            append(buf, cap, &len, " %s: %s: %s.", r->esc, subj ? subj : "unknown subject",
                   det ? det : "detail not in the registry");
        if (r->esc_class != r->code / 100)
            append(buf, cap, &len, " (the enhanced code's class %d contradicts the reply "
                   "code; the reply code wins.)", r->esc_class);
    }
    const char *hint = smtp_reply_hint(r, stage);
    if (hint)
        append(buf, cap, &len, " Check: %s.", hint);
    if (r->warning)
        append(buf, cap, &len, " Note: %s.", r->warning);
    return len;
}

/* ---- base64 (RFC 4648 4) ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t smtp_b64_encode(const unsigned char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64_alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long smtp_b64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    if (len % 4 != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = in[i + (size_t)k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad > 0 || (v[k] = b64_value(c)) < 0) {
                return -1; /* data after padding, or not in the alphabet */
            }
        }
        uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) | ((uint32_t)v[2] << 6) |
                     (uint32_t)v[3];
        int nbytes = 3 - pad;
        if (o + (size_t)nbytes >= cap)
            return -1;
        out[o++] = (unsigned char)(w >> 16);
        if (nbytes > 1)
            out[o++] = (unsigned char)(w >> 8);
        if (nbytes > 2)
            out[o++] = (unsigned char)w;
    }
    if (o >= cap)
        return -1;
    out[o] = '\0';
    return (long)o;
}
