/* envelope.h - a queued message's envelope and per-recipient delivery state, and their
 * text serialisation (the first part of every queue file, and the state file).
 *
 * Carries what RFC 5321 and RFC 3461 (DSN) need later: reverse-path, BODY/SMTPUTF8,
 * RET and ENVID, and per recipient NOTIFY and ORCPT. The parser is pure and fuzzed: a
 * queue file is input like any other. */
#ifndef TERN_ENVELOPE_H
#define TERN_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "smtp_parse.h"

#define QUEUE_ID_MAX 24   /* buffer size for a queue ID (IDs are 16 chars, [0-9A-Z]) */

enum rcpt_status { RCPT_PENDING = 0, RCPT_DELIVERED, RCPT_FAILED };

struct envelope_rcpt {
    char *addr;               /* "local@domain" */
    unsigned notify;          /* NOTIFY_* bits */
    char *orcpt;              /* "" if none */
    enum rcpt_status status;
    int attempts;
    time_t next_try;          /* 0 = as soon as possible */
    char *last_reply;         /* last delivery result text, "" if none */
};

struct envelope {
    char qid[QUEUE_ID_MAX];
    char *sender;             /* "" for the null reverse-path */
    enum body_type body;
    bool smtputf8;
    enum dsn_ret ret;
    char *envid;              /* xtext as received, "" if none */
    time_t arrival;
    time_t hold_until;        /* RFC 4865 FUTURERELEASE / X-DELIVERY-TIME: not delivered
                                 before this Unix time; 0 = at once */
    char *client_addr;        /* "127.0.0.1" */
    char *client_helo;        /* HELO/EHLO argument */
    char *protocol;           /* "ESMTP", "UTF8SMTPS", ... (RFC 3848 / 6531 keyword) */
    struct envelope_rcpt *rcpts;
    size_t nrcpts;
    size_t cap_rcpts;
};

void envelope_init(struct envelope *env);
void envelope_free(struct envelope *env);   /* frees members; env itself may be on the stack */
/* Set string members (copied). */
void envelope_set(char **member, const char *value);
void envelope_add_rcpt(struct envelope *env, const char *addr, unsigned notify, const char *orcpt);
size_t envelope_pending(const struct envelope *env);  /* recipients still RCPT_PENDING */

/* Serialise into a malloc'd NUL-terminated buffer (*len excludes the NUL). The format is
 * "tern-envelope 1\n" then "key value\n" lines with values xtext-encoded, ending with an
 * empty line. It includes per-recipient state. */
char *envelope_format(const struct envelope *env, size_t *len);
/* Parse what envelope_format wrote. Returns the number of bytes consumed (through the empty
 * line) or 0 on any error (truncated, unknown version, bad value). env must be initialised. */
size_t envelope_parse(struct envelope *env, const char *buf, size_t len);

#endif
