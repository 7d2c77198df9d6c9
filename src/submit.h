/* submit.h - submitting one message to the running server over SMTP on a loopback listener
 * of the configuration: what `tern sendmail` does, and what the pickup of maildrop files
 * (pickup.c) does, so both go through the server's usual checks (aliases, relay policy for
 * a loopback client) and its fsync before the 250. */
#ifndef TERN_SUBMIT_H
#define TERN_SUBMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "netclient.h"

struct submit_req {
    const char *sender;      /* "" for <> */
    char *const *rcpts;
    size_t nrcpts;
    const char *data;        /* CRLF text, not dot-stuffed */
    size_t len;
    bool eightbit;
    const char *notify;      /* DSN parameters, each NULL when absent; envid already xtext */
    const char *ret;
    const char *envid;
    int timeout_ms;          /* per read or write */
};

/* Connect to the first loopback listener where plain SMTP is allowed. 0, or -1 with err set
 * and *refused true when a listener exists but nobody answered (the server is not running). */
int submit_connect(const struct config *cfg, struct netclient *nc, int timeout_ms,
                   bool *refused, char *err, size_t errlen);
/* One all-or-nothing transaction. 0 when queued (final holds the server's 250 line), else a
 * sysexits.h code (75 temporary, 67 recipient, 77 sender, 65 content, 69 other refusal) with
 * err set; *refused as for submit_connect. */
int submit_message(const struct config *cfg, const struct submit_req *r, char *final,
                   size_t finallen, bool *refused, char *err, size_t errlen);

#endif
